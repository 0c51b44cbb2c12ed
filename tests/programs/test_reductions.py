"""A block's reduction and its grouping by pairs, built with the Python
combinators: ``reduction="max"`` is the best joint assignment's log weight
(brute-force maximization over every assignment, float64), and a block
grouped by pairs ``over=G * H`` equals the same block grouped over the flat
product with the map ``g * |H| + h``, and brute-force enumeration."""

from __future__ import annotations

import torch
from hypothesis import given
from hypothesis import strategies as st

from quivers.categories import FinSet
from quivers.distributions import Categorical
from quivers.distributions import HalfNormal as HN
from quivers.distributions import Normal as N
from quivers.programs import Program, index_map, marginalize, observe, ret, sample, var
from tests.programs import brute
from tests.programs.test_marginalize_exact import flat_case, gmm, grouped_case, priors, t


def gmm_max(n: int, k: int) -> Program:
    base = gmm(n, k)
    steps = [s if s.kind != "marginalize" else marginalize(s.name, s.support, Categorical(var("probs")), s.body,
                                                           reduction="max") for s in base.steps]
    return Program("gmm_max", base.dom, base.cod, steps)


@given(flat_case())
def test_a_max_block_is_the_best_assignment(case):
    y, probs, mu, sd = case
    got = gmm_max(len(y), len(probs)).log_joint(None, {"y": t(y)}, {"probs": t(probs), "mu_k": t(mu), "sd_k": t(sd)})
    want = priors(probs, mu, sd) + brute.per_row_mixture(y, probs, mu, sd, reduce=max)
    assert abs(float(got) - want) < 1e-10 * max(1.0, abs(want))


def pairs(n: int, g: int, h: int, k: int, maps: str) -> Program:
    """One latent per pair of ``G * H``: read through one map into the
    product (``maps="product"``), one map per factor (``"factors"``), or
    grouped over a flat set of ``|G| |H|`` elements (``"flat"``)."""
    Item, K = FinSet("Item", n), FinSet("K", k)
    over = FinSet("G", g) * FinSet("H", h) if maps != "flat" else FinSet("GH", g * h)
    mu, sd, z = var("mu_k"), var("sd_k"), var("z")
    if maps == "factors":
        steps, via = [index_map("g", Item, over.factors[0]), index_map("h", Item, over.factors[1])], ("g", "h")
    else:
        steps, via = [index_map("gh", Item, over)], "gh"
    steps += [
        sample("probs", over, HN(1.0)),
        sample("mu_k", K, N(0.0, 5.0)),
        sample("sd_k", K, HN(1.0)),
        marginalize("z", K, Categorical(var("probs")), [observe("y", Item, N(mu[z], sd[z]), via=via)], over=over),
        ret("y"),
    ]
    return Program("pairs", Item, Item, steps)


@given(grouped_case(), st.integers(1, 2))
def test_grouping_by_pairs_is_grouping_over_the_flat_product(case, h):
    """Each pair's rows are those its map sends there, whichever way the map
    is given; empty pairs contribute nothing but their prior."""
    y, group, w, mu, sd = case
    g = len(w)
    flat = [row for row in w for _ in range(h)]  # weights of the pairs, row-major
    gh = torch.tensor([x * h + (i % h) for i, x in enumerate(group)])
    latents = {"mu_k": t(mu), "sd_k": t(sd)}
    want = priors([v for row in flat for v in row], mu, sd) + brute.grouped_mixture(
        [(y, gh.tolist())], flat, mu, sd)
    for maps, given_maps in (("flat", {"gh": gh}), ("product", {"gh": gh}), ("factors", {"g": gh // h, "h": gh % h})):
        prog = pairs(len(y), g, h, len(mu), maps)
        shape = (g * h, len(mu)) if maps == "flat" else (g, h, len(mu))
        got = prog.log_joint(None, {"y": t(y), **given_maps}, {"probs": t(flat).reshape(shape), **latents})
        assert abs(float(got) - want) < 1e-10 * max(1.0, abs(want)), maps
