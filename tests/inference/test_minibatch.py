"""Mini-batch SVI: the rescaled likelihood is unbiased, and fits converge."""

from __future__ import annotations

import pytest
import torch

from quivers.categories import FinSet
from quivers.distributions import Categorical, HalfNormal, Normal
from quivers.errors import QuiversError
from quivers.inference import ELBO, SVI, AutoNormalGuide
from quivers.programs import Program, index_map, marginalize, observe, sample, var


def gmm(n: int) -> Program:
    Item, K = FinSet("Item", n), FinSet("K", 2)
    mu, sd, z = var("mu_k"), var("sd_k"), var("z")
    return Program("gmm", Item, Item, [
        sample("probs", K, HalfNormal(1.0)),
        sample("mu_k", K, Normal(0.0, 5.0)),
        sample("sd_k", K, HalfNormal(1.0)),
        marginalize("z", K, Categorical(var("probs")), [observe("y", Item, Normal(mu[z], sd[z]))]),
    ])


def test_minibatch_estimates_average_to_the_full_log_joint():
    torch.manual_seed(0)
    model = gmm(120)
    y = torch.randn(120, dtype=torch.float64) * 2
    lat = {"probs": torch.tensor([0.3, 0.9], dtype=torch.float64),
           "mu_k": torch.tensor([-1.0, 1.5], dtype=torch.float64),
           "sd_k": torch.tensor([0.8, 1.2], dtype=torch.float64)}
    full = model.log_joint(None, {"y": y}, lat)
    perm = torch.randperm(120)
    mini = model.subsample({"Item": 30})
    # over a partition into batches, the scaled estimates average to the full value exactly
    estimates = [mini.log_joint(None, {"y": y[perm[i:i + 30]]}, lat) for i in range(0, 120, 30)]
    torch.testing.assert_close(torch.stack(estimates).mean(), full)
    assert model.subsample({"Item": 30}) is mini  # cached


def test_minibatch_svi_recovers_the_mixture():
    torch.manual_seed(0)
    n = 2000
    z = torch.bernoulli(torch.full((n,), 0.6)).long()
    y = torch.randn(n) * torch.tensor([0.5, 0.7])[z] + torch.tensor([-2.0, 2.0])[z]
    model = gmm(n)
    guide = AutoNormalGuide(model, observed_names={"y"})
    svi = SVI(model, guide, torch.optim.Adam(guide.parameters(), lr=0.01), ELBO())
    for _ in range(2500):
        idx = torch.randint(0, n, (100,))
        svi.step(None, {"y": y[idx]}, subsample={"Item": 100})
    med = guide.median()
    order = med["mu_k"].argsort()
    torch.testing.assert_close(med["mu_k"][order], torch.tensor([-2.0, 2.0]), atol=0.15, rtol=0)
    torch.testing.assert_close(med["sd_k"][order], torch.tensor([0.5, 0.7]), atol=0.15, rtol=0)


def test_subsampling_refuses_what_does_not_factor():
    Item, G, K = FinSet("Item", 10), FinSet("G", 3), FinSet("K", 2)
    local = Program("local", Item, Item, [
        sample("u", Item, Normal(0.0, 1.0)),
        observe("y", Item, Normal(var("u"), 1.0)),
    ])
    with pytest.raises(QuiversError, match="latent `u` lies on the subsampled plate `Item`"):
        local.subsample({"Item": 5})
    grouped = Program("g", Item, Item, [
        index_map("group", Item, G),
        sample("probs", G * K, HalfNormal(1.0)),
        sample("mu", K, Normal(0.0, 1.0)),
        marginalize("z", K, Categorical(var("probs")), [
            observe("y", Item, Normal(var("mu")[var("z")], 1.0), via="group")], over=G),
    ])
    with pytest.raises(QuiversError, match="index map `group` groups rows"):
        grouped.subsample({"Item": 5})
    with pytest.raises(QuiversError, match="did you mean `Item`"):
        gmm(10).subsample({"Itme": 5})
    with pytest.raises(QuiversError, match="between 1 and 10"):
        gmm(10).subsample({"Item": 11})
    mini = gmm(10).subsample({"Item": 5})
    with pytest.raises(QuiversError, match="shape"):
        mini.log_joint(None, {"y": torch.zeros(10)}, {"probs": torch.ones(2), "mu_k": torch.zeros(2), "sd_k": torch.ones(2)})
