"""SVI with the automatic guides against closed forms."""

from __future__ import annotations

import math

import pytest
import torch

from quivers.categories.finset import FinSet
from quivers.distributions import Categorical, HalfNormal, Normal
from quivers.errors import QuiversError
from quivers.inference import (
    ELBO,
    SVI,
    AutoDelta,
    AutoLowRankMultivariateNormal,
    AutoMultivariateNormal,
    AutoNormalGuide,
)
from quivers.programs import Program, marginalize, observe, ret, sample, var


def normal_normal(n: int) -> Program:
    """mu ~ N(0, 2^2); y_i ~ N(mu, 1): posterior N(m, s^2) in closed form."""
    I = FinSet("I", n)
    return Program("nn", I, I, [sample("mu", None, Normal(0.0, 2.0)), observe("y", I, Normal(var("mu"), 1.0))])


def closed_form(y: torch.Tensor) -> tuple[float, float]:
    precision = 1 / 4 + len(y)
    return float(y.sum() / precision), math.sqrt(1 / precision)


def fit(model, guide, obs, steps=1500, lr=0.05, particles=4):
    torch.manual_seed(1)
    opt = torch.optim.Adam(list(guide.parameters()), lr=lr)
    svi = SVI(model, guide, opt, ELBO(num_particles=particles))
    for _ in range(steps):
        svi.step(None, obs)
    return svi


def test_mean_field_recovers_conjugate_posterior():
    torch.manual_seed(0)
    y = torch.randn(10) + 1.0
    model = normal_normal(10)
    guide = AutoNormalGuide(model, observed_names={"y"})
    fit(model, guide, {"y": y}, steps=2000, lr=0.03, particles=8)
    m, s = closed_form(y)
    assert abs(float(guide.median()["mu"]) - m) < 0.05
    q = guide.quantiles([0.1587, 0.8413])["mu"]
    assert abs(float(q[1] - q[0]) / 2 - s) < 0.05


def test_delta_guide_is_map():
    torch.manual_seed(0)
    y = torch.randn(5) + 2.0
    model = normal_normal(5)
    guide = AutoDelta(model, observed_names={"y"})
    fit(model, guide, {"y": y}, steps=800, lr=0.05, particles=1)
    m, _ = closed_form(y)  # the posterior is normal: its mode is its mean
    assert abs(float(guide.median()["mu"]) - m) < 1e-3


def regression() -> tuple[Program, dict, torch.Tensor, torch.Tensor]:
    """Two correlated coefficients: b ~ N(0, 10^2 I); y ~ N(X b, 1)."""
    torch.manual_seed(0)
    n = 20
    xs = torch.randn(n) + 3.0  # off-centre covariate: intercept and slope correlate
    I, P = FinSet("I", n), FinSet("P", 2)
    X = torch.stack([torch.ones(n), xs], -1)
    y = X @ torch.tensor([1.0, -0.5]) + torch.randn(n)
    b = var("b")
    model = Program("reg", I, I, [
        sample("b", P, Normal(0.0, 10.0)),
        sample("x", I, Normal(0.0, 1.0)),
        observe("y", I, Normal(b[0] + b[1] * var("x"), 1.0)),
    ])
    cov = torch.linalg.inv(X.T @ X + torch.eye(2) / 100)
    mean = cov @ X.T @ y
    return model, {"y": y, "x": xs}, mean, cov


@pytest.mark.parametrize("guide_cls", [AutoMultivariateNormal, AutoLowRankMultivariateNormal])
def test_full_rank_guides_capture_correlation(guide_cls):
    model, obs, mean, cov = regression()
    kwargs = {"rank": 2} if guide_cls is AutoLowRankMultivariateNormal else {}
    guide = guide_cls(model, observed_names={"y", "x"}, **kwargs)
    fit(model, guide, obs, steps=1500, lr=0.03, particles=8)
    draws = guide.sample_posterior(20000)["b"]
    torch.testing.assert_close(draws.mean(0), mean, atol=0.1, rtol=0)
    emp = torch.cov(draws.T)
    corr = emp[0, 1] / emp.diag().prod().sqrt()
    want = cov[0, 1] / cov.diag().prod().sqrt()
    assert abs(float(corr - want)) < 0.1
    torch.testing.assert_close(emp.diag().sqrt(), cov.diag().sqrt(), rtol=0.2, atol=0)


def test_score_function_learns_a_sampled_discrete_latent():
    """z ~ Categorical(1/2, 1/2) sampled (not marginalized); y ~ N(mu[z], 1)."""
    K, I = FinSet("K", 2), FinSet("I", 1)
    model = Program("disc", I, I, [
        sample("mu", K, Normal(0.0, 1.0)),
        sample("w", K, HalfNormal(1.0)),
        sample("z", None, Categorical(var("w"))),
        observe("y", I, Normal(var("mu")[var("z")], 1.0)),
    ])
    obs = {"y": torch.tensor([0.8]), "mu": torch.tensor([-1.0, 1.0]), "w": torch.tensor([1.0, 1.0])}
    guide = AutoNormalGuide(model, observed_names={"y", "mu", "w"})
    assert [s.name for s in guide.discrete_sites] == ["z"]
    fit(model, guide, obs, steps=1500, lr=0.03, particles=64)
    lik = torch.distributions.Normal(torch.tensor([-1.0, 1.0]), 1.0).log_prob(torch.tensor(0.8))
    want = torch.softmax(lik, 0)
    got = torch.softmax(guide.logits["z"].detach(), -1)
    assert abs(float(got[1] - want[1])) < 0.05


def test_seed_gmm_fit_recovers_components():
    """The seed chapter's fit (Python combinators): 3000 steps recover mu and sd."""
    Item, K = FinSet("Item", 500), FinSet("K", 2)
    mu, sd, z = var("mu_k"), var("sd_k"), var("z")
    model = Program("gmm", Item, Item, [
        sample("probs", K, HalfNormal(1.0)),
        sample("mu_k", K, Normal(0.0, 5.0)),
        sample("sd_k", K, HalfNormal(1.0)),
        marginalize("z", K, Categorical(var("probs")), [observe("y", Item, Normal(mu[z], sd[z]))]),
        ret("y"),
    ])
    torch.manual_seed(0)
    true_mu = torch.tensor([-2.0, 2.0])
    true_sd = torch.tensor([0.5, 0.7])
    z_true = torch.bernoulli(torch.full((500,), 0.6)).long()
    y_data = (torch.randn(500) * true_sd[z_true] + true_mu[z_true]).unsqueeze(0)
    guide = AutoNormalGuide(model, observed_names={"y"})
    opt = torch.optim.Adam(list(model.parameters()) + list(guide.parameters()), lr=1e-2)
    svi = SVI(model, guide, opt, ELBO(num_particles=1))
    losses = [svi.step(torch.zeros(1, 1), {"y": y_data}) for _ in range(3000)]
    assert losses[-1] < losses[0]
    med = guide.median()
    order = med["mu_k"].argsort()
    torch.testing.assert_close(med["mu_k"][order], true_mu, atol=0.15, rtol=0)
    torch.testing.assert_close(med["sd_k"][order], true_sd, atol=0.15, rtol=0)


def test_guide_summaries_have_site_shapes():
    model = normal_normal(3)
    guide = AutoNormalGuide(model, observed_names={"y"})
    assert guide.median()["mu"].shape == ()
    assert guide.quantiles([0.05, 0.5, 0.95])["mu"].shape == (3,)
    assert guide.sample_posterior(7)["mu"].shape == (7,)


def test_bad_inputs_are_quivers_errors():
    model = normal_normal(3)
    with pytest.raises(QuiversError, match="observed name `yy`.*did you mean `y`"):
        AutoNormalGuide(model, observed_names={"yy"})
    with pytest.raises(QuiversError, match="num_particles"):
        ELBO(num_particles=0)
    guide = AutoNormalGuide(model, observed_names={"y"})
    with pytest.raises(QuiversError, match="quantiles"):
        guide.quantiles([0.0, 0.5])
    svi = SVI(model, guide, torch.optim.Adam(guide.parameters()), ELBO())
    with pytest.raises(QuiversError, match="observation `y` is missing"):
        svi.step(None, {})
    with pytest.raises(QuiversError, match="non-finite"):
        svi.step(None, {"y": torch.tensor([0.0, float("nan"), 1.0])})


def test_adam_is_the_fused_one_and_falls_back_where_torch_has_none(monkeypatch):
    from quivers.inference import svi as svi_module
    from quivers.inference.optim import FusedAdam

    p = [torch.nn.Parameter(torch.zeros(2))]
    opt = svi_module.adam(p, lr=0.1)
    assert type(opt) is FusedAdam and opt.defaults["fused"] is True
    made = []

    class NoFused(FusedAdam):
        def __init__(self, params, lr):
            made.append("fused")
            raise RuntimeError("`fused=True` requires all the params to be floating point Tensors of supported devices")

    monkeypatch.setattr(svi_module, "FusedAdam", NoFused)
    opt = svi_module.adam(p, lr=0.1)
    assert made == ["fused"] and type(opt) is torch.optim.Adam and not opt.defaults["fused"]
