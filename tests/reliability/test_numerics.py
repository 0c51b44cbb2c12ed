"""Numerical safety of the exact marginal density and its gradients.

Zero-probability components (log weights of ``-inf``), components and
groups that no data reach, and extreme scales (data of order 1e6, scales
of order 1e-6), in float32 and float64, give finite losses and finite
gradients that agree with closed forms computed independently in float64;
where no finite answer exists, the error names the culprit.
"""

from __future__ import annotations

import math

import pytest
import torch

from quivers.categories import FinSet
from quivers.distributions import Categorical, HalfNormal, Normal, Poisson
from quivers.errors import QuiversError
from quivers.inference import ELBO, MCMC, NUTS, SVI, AutoNormalGuide
from quivers.programs import Program, call, index_map, let, marginalize, observe, sample, var

from tests.programs.models import gmm

TOL = {torch.float32: dict(rtol=1e-4, atol=1e-4), torch.float64: dict(rtol=1e-9, atol=1e-9)}


# the fixture `dtype` (float32, then float64) is in tests/conftest.py


def leaves(**values) -> dict[str, torch.Tensor]:
    return {k: torch.tensor(v, dtype=torch.get_default_dtype(), requires_grad=True) for k, v in values.items()}


def mixture_reference(y, probs, mu, sd):
    """The seed mixture's log joint ``sum_n log sum_k p_k N(y_n | mu_k,
    sd_k) / S`` plus its priors, and its gradients, in float64 by closed
    form (no autograd, no logsumexp of the runtime)."""
    y, p, m, s = (torch.as_tensor(a, dtype=torch.float64) for a in (y, probs, mu, sd))
    lik = torch.distributions.Normal(m, s).log_prob(y[:, None])  # (N, K)
    top = lik.max(1, keepdim=True).values
    dens = torch.exp(lik - top)  # N_nk up to the row's factor exp(top)
    mix = (p * dens).sum(1)  # sum_k p_k N_nk / exp(top)
    value = (torch.log(mix) + top[:, 0]).sum() - len(y) * torch.log(p.sum())
    half = torch.distributions.HalfNormal(torch.tensor(1.0, dtype=torch.float64))
    value = value + half.log_prob(p).sum() + torch.distributions.Normal(0.0, 5.0).log_prob(m).sum() + half.log_prob(s).sum()
    resp = p * dens / mix[:, None]  # posterior responsibilities
    z = (y[:, None] - m) / s
    grads = {
        "probs": (dens / mix[:, None]).sum(0) - len(y) / p.sum() - p,
        "mu_k": (resp * z / s).sum(0) - m / 25.0,
        "sd_k": (resp * (z**2 - 1) / s).sum(0) - s,
    }
    return value, grads


def check_against_reference(y, probs, mu, sd, dtype):
    p = gmm(len(y), len(probs))
    lat = leaves(probs=probs, mu_k=mu, sd_k=sd)
    data = torch.tensor(y)
    value = p.log_joint(None, {"y": data}, lat)
    assert torch.isfinite(value), value
    value.backward()
    # The reference starts from the inputs as rounded to the working dtype:
    # float32 holds 1e6 only to 0.06, and that rounding is the data's, not
    # an error of the runtime.
    want, want_grads = mixture_reference(data, *(lat[k].detach() for k in ("probs", "mu_k", "sd_k")))
    torch.testing.assert_close(value.double(), want, **TOL[dtype])
    for name, g in want_grads.items():
        got = lat[name].grad
        assert torch.isfinite(got).all(), (name, got)
        scale = g.abs().max().clamp(min=1.0)  # compare relative to the largest component
        torch.testing.assert_close(got.double() / scale, g / scale, **TOL[dtype])
    return lat


# ---------------------------------------------------------------- zero weights


def underflowing_weights(n: int) -> Program:
    """Mixture weights computed in the program, ``w = exp(a)``: a weight
    whose ``a`` is very negative underflows to exactly 0, log weight -inf."""
    Item, K = FinSet("Item", n), FinSet("K", 3)
    mu, z = var("mu_k"), var("z")
    return Program("p", Item, Item, [
        sample("a", K, Normal(0.0, 1000.0)),
        sample("mu_k", K, Normal(0.0, 5.0)),
        let("w", call("exp", var("a"))),
        marginalize("z", K, Categorical(var("w")), [observe("y", Item, Normal(mu[z], 1.0))]),
    ])


@pytest.mark.parametrize("weights", ["exp", "softmax"])
def test_a_weight_that_underflows_to_zero(dtype, weights):
    """One weight is exactly 0 in the working precision: the density is the
    two-component mixture, and the gradients are the closed form's (the
    dead weight's own gradient ``e^a (N/mix - 1/S)`` is 0 to that precision),
    not NaN."""
    dead = -200.0 if dtype is torch.float32 else -800.0
    y = torch.tensor([-2.0, -1.5, 0.3, 2.2, 1.9])
    p = underflowing_weights(len(y))
    if weights == "softmax":
        p = Program("p", p.dom, p.cod, [
            s if getattr(s, "name", None) != "w" else let("w", call("softmax", var("a"))) for s in p.steps
        ])
    lat = leaves(a=[0.0, 0.0, dead], mu_k=[-2.0, 2.0, 0.0])
    lj = p.log_joint(None, {"y": y}, lat)
    lj.backward()
    two = torch.distributions.Normal(torch.tensor([-2.0, 2.0], dtype=torch.float64), 1.0).log_prob(y.double()[:, None])
    resp = torch.softmax(two, 1)
    want = (torch.logsumexp(two, 1) - math.log(2)).sum()
    want = want + torch.distributions.Normal(0.0, 1000.0).log_prob(torch.tensor([0.0, 0.0, dead], dtype=torch.float64)).sum()
    want = want + torch.distributions.Normal(0.0, 5.0).log_prob(torch.tensor([-2.0, 2.0, 0.0], dtype=torch.float64)).sum()
    torch.testing.assert_close(lj.detach().double(), want, **TOL[dtype])
    # d/da_j = sum_n (resp_nj - 1/2) for the live weights; 0 for the dead one (plus each prior).
    ga = torch.cat([(resp - 0.5).sum(0), torch.zeros(1, dtype=torch.float64)])
    ga = ga - torch.tensor([0.0, 0.0, dead], dtype=torch.float64) / 1000.0**2
    assert torch.isfinite(lat["a"].grad).all(), lat["a"].grad
    torch.testing.assert_close(lat["a"].grad.double(), ga, **TOL[dtype])
    gmu = torch.cat([(resp * (y.double()[:, None] - torch.tensor([-2.0, 2.0], dtype=torch.float64))).sum(0),
                     torch.zeros(1, dtype=torch.float64)])
    gmu = gmu - torch.tensor([-2.0, 2.0, 0.0], dtype=torch.float64) / 25.0
    torch.testing.assert_close(lat["mu_k"].grad.double(), gmu, **TOL[dtype])


def test_constant_weights_with_a_zero_and_logits_of_minus_infinity(dtype):
    Item, K = FinSet("Item", 4), FinSet("K", 3)
    y = torch.tensor([-2.0, -1.5, 2.2, 1.9])
    for prior in (Categorical([1.0, 1.0, 0.0]), Categorical(logits=torch.tensor([0.0, 0.0, -math.inf]))):
        p = Program("p", Item, Item, [
            sample("mu_k", K, Normal(0.0, 5.0)),
            marginalize("z", K, prior, [observe("y", Item, Normal(var("mu_k")[var("z")], 1.0))]),
        ])
        lat = leaves(mu_k=[-2.0, 2.0, 0.0])
        lj = p.log_joint(None, {"y": y}, lat)
        lj.backward()
        two = torch.distributions.Normal(torch.tensor([-2.0, 2.0]), 1.0).log_prob(y[:, None])
        want = (torch.logsumexp(two, 1) - math.log(2)).sum()
        want = want + torch.distributions.Normal(0.0, 5.0).log_prob(lat["mu_k"].detach()).sum()
        torch.testing.assert_close(lj.detach(), want, **TOL[dtype])
        assert torch.isfinite(lat["mu_k"].grad).all()
        # Only the prior acts on the dead component's location.
        torch.testing.assert_close(lat["mu_k"].grad[2], torch.tensor(0.0), **TOL[dtype])


def dead_component_mixture() -> Program:
    """Three components, the third of log weight -inf."""
    Item, K = FinSet("Item", 4), FinSet("K", 3)
    return Program("p", Item, Item, [
        sample("mu_k", K, Normal(0.0, 5.0)),
        marginalize("z", K, Categorical(logits=torch.tensor([0.0, 0.0, -math.inf])),
                    [observe("y", Item, Normal(var("mu_k")[var("z")], 1.0))]),
    ])


def test_svi_and_nuts_with_a_component_of_log_weight_minus_infinity():
    """Inference, not only the density: every SVI loss and gradient is
    finite, and NUTS's draws of the dead component's location follow its
    prior Normal(0, 5), which is all the data say about it."""
    y = {"y": torch.tensor([-2.0, -1.5, 2.2, 1.9])}
    torch.manual_seed(0)
    p = dead_component_mixture()
    guide = AutoNormalGuide(p, observed_names={"y"})
    svi = SVI(p, guide, torch.optim.Adam(guide.parameters(), lr=0.05), ELBO(num_particles=2))
    for _ in range(30):
        loss = svi.step(None, y)
        assert math.isfinite(loss)
        assert all(q.grad is None or torch.isfinite(q.grad).all() for q in guide.parameters())
    mcmc = MCMC(NUTS(p), num_warmup=100, num_samples=200, num_chains=2, seed=0, progress_bar=False)
    mcmc.run(None, y)
    dead = mcmc.get_samples()["mu_k"][:, 2]
    assert torch.isfinite(mcmc.get_samples()["mu_k"]).all()
    # 400 draws of N(0, 5): the mean within ~4 standard errors, the sd within 25%.
    assert abs(float(dead.mean())) < 1.5, dead.mean()
    assert 3.75 < float(dead.std()) < 6.25, dead.std()


def test_weights_that_all_underflow_are_a_named_error(dtype):
    """No finite answer: every weight of the row is 0, so the normalizer is
    log 0 and the density NaN; the error names the latent."""
    dead = -200.0 if dtype is torch.float32 else -800.0
    p = underflowing_weights(3)
    lat = {"a": torch.full((3,), dead), "mu_k": torch.zeros(3)}
    with pytest.raises(QuiversError, match=r"the weights of `z` sum to zero"):
        p.log_joint(None, {"y": torch.zeros(3)}, lat)
    guide = AutoNormalGuide(p, observed_names={"y"})
    with torch.no_grad():
        guide.loc[:3] = dead  # the guide's draws of `a` all underflow
        guide.raw_scale.fill_(-30.0)
    svi = SVI(p, guide, torch.optim.Adam(guide.parameters(), lr=0.01), ELBO())
    with pytest.raises(QuiversError, match=r"the weights of `z` sum to zero"):
        svi.step(None, {"y": torch.zeros(3)})


# ---------------------------------------------------------------- components no data reach


def test_all_but_one_component_is_empty(dtype):
    """Every point sits on component 0; the other components' likelihood
    terms are ~1e-12-sized log weights below it, their responsibilities
    underflow to exactly zero, and the gradients stay finite and right."""
    y = [0.0, 0.001, -0.002, 0.0005]
    check_against_reference(y, [1.0, 1.0, 1.0], [0.0, 1000.0, -1000.0], [0.01, 0.01, 0.01], dtype)


def test_all_but_one_group_is_empty(dtype):
    """Grouped marginalization where every row maps to group 0: the empty
    fibres contribute ``log 1 = 0`` after the prior's normalisation."""
    Item, G, K = FinSet("Item", 4), FinSet("G", 3), FinSet("K", 2)
    mu, sd, z = var("mu_k"), var("sd_k"), var("z")
    p = Program("g", Item, Item, [
        index_map("group", Item, G),
        sample("w", K, HalfNormal(1.0)),
        sample("mu_k", K, Normal(0.0, 5.0)),
        sample("sd_k", K, HalfNormal(1.0)),
        marginalize("z", K, Categorical(var("w")), [observe("y", Item, Normal(mu[z], sd[z]), via="group")], over=G),
    ])
    y = torch.tensor([0.1, -0.2, 0.3, 0.05])
    lat = leaves(w=[1.0, 3.0], mu_k=[0.0, 50.0], sd_k=[1.0, 1.0])
    lj = p.log_joint(None, {"y": y, "group": torch.zeros(4, dtype=torch.long)}, lat)
    lj.backward()
    # Reference: one group holds all rows, the two empty groups add log(sum w / S) = 0.
    w = torch.tensor([1.0, 3.0], dtype=torch.float64)
    lik = torch.distributions.Normal(torch.tensor([0.0, 50.0], dtype=torch.float64), 1.0).log_prob(y.double()[:, None]).sum(0)
    want = torch.logsumexp(torch.log(w / w.sum()) + lik, 0)
    want = want + torch.distributions.HalfNormal(torch.tensor(1.0, dtype=torch.float64)).log_prob(w).sum()
    want = want + torch.distributions.Normal(0.0, 5.0).log_prob(torch.tensor([0.0, 50.0], dtype=torch.float64)).sum()
    want = want + torch.distributions.HalfNormal(torch.tensor(1.0, dtype=torch.float64)).log_prob(torch.ones(2, dtype=torch.float64)).sum()
    torch.testing.assert_close(lj.detach().double(), want, **TOL[dtype])
    for name, leaf in lat.items():
        assert torch.isfinite(leaf.grad).all(), (name, leaf.grad)


# ---------------------------------------------------------------- extreme scales


@pytest.mark.parametrize("offset, sd", [(1e6, 1.0), (0.0, 1e-6), (1e6, 1e-3), (1e6, 1e6)])
def test_extreme_scales_in_the_density(dtype, offset, sd):
    """Data of order 1e6 and scales of order 1e-6: the closed form's
    value and gradients, finite."""
    y = [offset + sd * t for t in (-0.3, 0.1, 9.8, 10.4)]
    check_against_reference(y, [1.0, 1.0], [offset, offset + 10 * sd], [sd, sd], dtype)


@pytest.mark.parametrize("offset, sd", [(1e6, 1.0), (0.0, 1e-6)])
def test_svi_on_extreme_data_has_finite_losses_and_parameters(dtype, offset, sd):
    torch.manual_seed(0)
    y = offset + sd * torch.cat([torch.randn(20) - 3, torch.randn(20) + 3])
    p = gmm(40)
    guide = AutoNormalGuide(p, observed_names={"y"})
    svi = SVI(p, guide, torch.optim.Adam(guide.parameters(), lr=0.05), ELBO(num_particles=2))
    losses = [svi.step(None, {"y": y}) for _ in range(20)]
    assert all(math.isfinite(v) for v in losses), losses
    assert all(torch.isfinite(q).all() for q in guide.parameters())


def test_nuts_on_data_of_order_a_million(dtype):
    """The potential is of order 1e12 at the start; the chains still move
    to finite draws."""
    y = 1e6 + torch.tensor([-1.0, 0.5, 0.2, 1.1, -0.4])
    Item = FinSet("Item", 5)
    p = Program("p", Item, Item, [sample("mu", None, Normal(1e6, 10.0)), observe("y", Item, Normal(var("mu"), 1.0))])
    mcmc = MCMC(NUTS(p), num_warmup=30, num_samples=20, num_chains=2, seed=0, progress_bar=False)
    mcmc.run(None, {"y": y})
    draws = mcmc.get_samples()["mu"]
    assert torch.isfinite(draws).all()
    assert float((draws.double() - y.double().mean()).abs().max()) < 3.0


def test_a_draw_of_zero_probability_is_a_named_error_in_svi(dtype):
    """The guide draws a rate that underflows to 0 for counts that are
    observed positive: the log joint is -inf (a fact, returned as such by
    ``log_joint``), but an ELBO of -inf has NaN gradients, so SVI names the
    observation instead of training on it."""
    dead = -200.0 if dtype is torch.float32 else -800.0
    Item = FinSet("Item", 3)
    p = Program("p", Item, Item, [
        sample("a", None, Normal(0.0, 1000.0)),
        let("rate", call("exp", var("a"))),
        observe("c", Item, Poisson(var("rate"))),
    ])
    c = torch.tensor([0.0, 0.0, 2.0])
    assert p.log_joint(None, {"c": c}, {"a": torch.tensor(dead)}) == -math.inf
    guide = AutoNormalGuide(p, observed_names={"c"})
    with torch.no_grad():
        guide.loc.fill_(dead)
        guide.raw_scale.fill_(-30.0)
    svi = SVI(p, guide, torch.optim.Adam(guide.parameters(), lr=0.01), ELBO(num_particles=2))
    with pytest.raises(QuiversError, match=r"the ELBO is -inf: observation `c` has zero probability at index \(2,\)"):
        svi.step(None, {"c": c})
    assert torch.isfinite(guide.loc).all()  # no step was taken on it
