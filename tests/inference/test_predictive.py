"""Predictive draws and the posterior of marginalized latents."""

from __future__ import annotations

import pytest
import torch

from quivers.categories.finset import FinSet
from quivers.distributions import Categorical, HalfNormal, Normal
from quivers.errors import QuiversError
from quivers.inference import AutoNormalGuide, Predictive, infer_discrete
from quivers.programs import Program, marginalize, observe, ret, sample, var


def gmm(n: int) -> Program:
    Item, K = FinSet("Item", n), FinSet("K", 2)
    mu, sd, z = var("mu_k"), var("sd_k"), var("z")
    return Program("gmm", Item, Item, [
        sample("probs", K, HalfNormal(1.0)),
        sample("mu_k", K, Normal(0.0, 5.0)),
        sample("sd_k", K, HalfNormal(1.0)),
        marginalize("z", K, Categorical(var("probs")), [observe("y", Item, Normal(mu[z], sd[z]))]),
        ret("y"),
    ])


def data(n: int = 200):
    torch.manual_seed(0)
    z = torch.bernoulli(torch.full((n,), 0.6)).long()
    y = torch.randn(n) * torch.tensor([0.5, 0.7])[z] + torch.tensor([-2.0, 2.0])[z]
    return y, z


def test_prior_predictive_shapes():
    draws = Predictive(gmm(7), num_samples=11)()
    assert draws["y"].shape == (11, 7)
    assert draws["z"].shape == (11, 7)
    assert draws["mu_k"].shape == (11, 2)


def test_posterior_predictive_from_samples_follows_the_mixture():
    model = gmm(200)
    y, _ = data()
    s = 400
    post = {
        "probs": torch.tensor([0.4, 0.6]).expand(s, 2),
        "mu_k": torch.tensor([-2.0, 2.0]).expand(s, 2),
        "sd_k": torch.tensor([0.5, 0.7]).expand(s, 2),
    }
    draws = Predictive(model, posterior_samples=post)(None, {"y": y})
    assert draws["y"].shape == (s, 200)
    # the observed y is redrawn, not copied
    assert not torch.equal(draws["y"][0], y)
    mean = 0.4 * -2.0 + 0.6 * 2.0
    assert abs(float(draws["y"].mean()) - mean) < 0.05


def test_posterior_predictive_from_a_guide():
    model = gmm(50)
    guide = AutoNormalGuide(model, observed_names={"y"})
    draws = Predictive(model, guide=guide, num_samples=9, return_sites=["y"])()
    assert set(draws) == {"y"} and draws["y"].shape == (9, 50)


def test_infer_discrete_recovers_assignments():
    model = gmm(200)
    y, z = data()
    s = 5
    post = {
        "probs": torch.tensor([0.4, 0.6]).expand(s, 2),
        "mu_k": torch.tensor([-2.0, 2.0]).expand(s, 2),
        "sd_k": torch.tensor([0.5, 0.7]).expand(s, 2),
    }
    out = infer_discrete(model, post, None, {"y": y}, seed=0)["z"]
    assert out.probs.shape == (200, 2)
    torch.testing.assert_close(out.probs.sum(-1), torch.ones(200))
    assert float((out.map == z).float().mean()) > 0.97
    lik = torch.distributions.Normal(torch.tensor([-2.0, 2.0]), torch.tensor([0.5, 0.7])).log_prob(y[:, None])
    want = torch.softmax(lik + torch.tensor([0.4, 0.6]).log(), -1)
    torch.testing.assert_close(out.probs, want)
    assert out.draws.shape == (s, 200)


def test_predictive_bad_input():
    model = gmm(5)
    with pytest.raises(QuiversError, match="num_samples"):
        Predictive(model)
    with pytest.raises(QuiversError, match="did you mean `mu_k`"):
        Predictive(model, posterior_samples={"mu_kk": torch.zeros(3, 2)})
