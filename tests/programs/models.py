"""The programs the tests share: the seed's two mixtures at any size."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from quivers.categories import FinSet
from quivers.distributions import Categorical, HalfNormal, Normal
from quivers.programs import Program, index_map, marginalize, observe, ret, sample, var


def gmm(n: int = 4, k: int = 2, **kw) -> Program:
    """The seed's flat Gaussian mixture (chapter 4, first program)."""
    Item, K = FinSet("Item", n), FinSet("K", k)
    mu, sd, z = var("mu_k"), var("sd_k"), var("z")
    return Program("gmm", Item, Item, [
        sample("probs", K, HalfNormal(1.0)),
        sample("mu_k", K, Normal(0.0, 5.0)),
        sample("sd_k", K, HalfNormal(1.0)),
        marginalize("z", K, Categorical(var("probs")), [observe("y", Item, Normal(mu[z], sd[z]))]),
        ret("y"),
    ], **kw)


def grouped(n: int = 6, g: int = 3, k: int = 2, declared: bool = False, **kw) -> Program:
    """The seed's grouped mixture; ``declared`` uses ``index_map`` for the
    group map instead of the seed's ``sample group : Item`` idiom."""
    Item, G, K = FinSet("Item", n), FinSet("G", g), FinSet("K", k)
    mu, sd, z = var("mu_k"), var("sd_k"), var("z")
    group = index_map("group", Item, G) if declared else sample("group", Item, HalfNormal(1.0))
    return Program("grouped_mixture", Item, Item, [
        group,
        sample("probs", G, HalfNormal(1.0)),
        sample("mu_k", K, Normal(0.0, 5.0)),
        sample("sd_k", K, HalfNormal(1.0)),
        marginalize("z", K, Categorical(var("probs")), [observe("y", Item, Normal(mu[z], sd[z]), via="group")], over=G),
        ret("y"),
    ], **kw)


def seed_mixture(n: int = 40) -> tuple[Program, dict[str, torch.Tensor]]:
    """The seed chapter's mixture as QVR (examples/gmm.qvr) with ``Item`` cut
    to ``n`` rows, and the first ``n`` rows of its data (examples/gmm_data.json)."""
    from quivers.dsl import loads

    examples = Path(__file__).resolve().parents[2] / "examples"
    src = (examples / "gmm.qvr").read_text().replace("FinSet 500", f"FinSet {n}")
    y = json.loads((examples / "gmm_data.json").read_text())["y"][:n]
    return loads(src).morphism, {"y": torch.tensor(y)}
