"""examples/lda.qvr (latent Dirichlet allocation written with ``iid_over``)
loads, puts one Dirichlet row per document and per topic, and its log
density equals brute-force enumeration of every token's topic in float64,
with the example's own data (examples/lda.json)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch.distributions import Dirichlet

from quivers.dsl import load

ROOT = Path(__file__).resolve().parents[2]
F64 = torch.float64


def test_the_lda_example_loads_with_its_rows_on_their_plates():
    m = load(ROOT / "examples" / "lda.qvr")
    p = m.morphism
    assert p.sites["theta"].dims == ("Doc", "Topic") and p.sites["theta"].event_dims == ("Topic",)
    assert p.sites["phi"].dims == ("Topic", "Vocab") and p.sites["phi"].event_dims == ("Vocab",)
    assert p.sites["z"].values_in == "Topic" and p.sites["z"].dims == ("Token",)
    assert {n: r.kind for n, r in m.data["lda"].items()} == {"alpha": "real", "beta": "real", "doc": "index"}


def test_the_lda_example_log_density_is_exact():
    p = load(ROOT / "examples" / "lda.qvr").morphism
    data = json.loads((ROOT / "examples" / "lda.json").read_text())
    doc, w = torch.tensor(data["doc"]), torch.tensor(data["w"])
    alpha, beta = torch.tensor(data["alpha"], dtype=F64), torch.tensor(data["beta"], dtype=F64)
    torch.manual_seed(3)
    theta = Dirichlet(torch.ones(4, 3, dtype=F64)).sample()
    phi = Dirichlet(torch.ones(3, 12, dtype=F64)).sample()
    got = p.log_joint(None, {"doc": doc, "w": w, "alpha": alpha, "beta": beta}, {"theta": theta, "phi": phi})
    brute = sum(Dirichlet(alpha.expand(3)).log_prob(r) for r in theta)
    brute = brute + sum(Dirichlet(beta.expand(12)).log_prob(r) for r in phi)
    for n in range(len(w)):  # every token's topic, one at a time, in probability space
        brute = brute + torch.log(sum(theta[doc[n], k] * phi[k, w[n]] for k in range(3)))
    torch.testing.assert_close(got, brute, rtol=1e-12, atol=1e-12)
