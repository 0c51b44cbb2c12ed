"""Stan's improper flat priors: ``Flat()`` and ``HalfFlat()``.

They score 0 (``-inf`` below 0 for ``HalfFlat``), so the log joint is the
likelihood alone; inference runs on them (``HalfFlat`` through ``exp``);
anything that would draw one raises an error naming the site.
"""

from __future__ import annotations

import math

import pytest
import torch

from quivers.categories import FinSet
from quivers.distributions import FAMILIES, Flat, HalfFlat, Normal, biject
from quivers.dsl import loads
from quivers.errors import UnsupportedError
from quivers.inference import MCMC, NUTS, Predictive, ProgramAdaptor, fit
from quivers.programs import Program, observe, ret, sample, var

SOURCE = """
object N : FinSet 20
program flat : N -> N
    sample mu <- Flat()
    sample sigma <- HalfFlat()
    observe y : N <- Normal(mu, sigma)
    return y
"""


def _python() -> Program:
    N = FinSet("N", 20)
    return Program("flat", N, N, [
        sample("mu", None, Flat()),
        sample("sigma", None, HalfFlat()),
        observe("y", N, Normal(var("mu"), var("sigma"))),
        ret(var("y")),
    ])


@pytest.mark.parametrize("build", [lambda: loads(SOURCE).morphism, _python], ids=["qvr", "python"])
def test_the_log_joint_is_the_likelihood_alone(build):
    model = build()
    y = torch.linspace(-1.0, 3.0, 20, dtype=torch.float64)
    mu, sigma = torch.tensor(0.7, dtype=torch.float64), torch.tensor(1.3, dtype=torch.float64)
    got = model.log_joint(None, {"y": y}, {"mu": mu, "sigma": sigma})
    want = torch.distributions.Normal(mu, sigma).log_prob(y).sum()
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)


def test_half_flat_is_minus_infinity_below_zero_and_zero_on_the_half_line():
    lp = FAMILIES["HalfFlat"].log_prob({}, torch.tensor([-1e-9, 0.0, 5.0]))
    assert lp.tolist() == [-math.inf, 0.0, 0.0]
    assert FAMILIES["Flat"].log_prob({}, torch.tensor([-1e30, 0.0, 1e30])).tolist() == [0.0, 0.0, 0.0]
    assert HalfFlat().build({}).log_prob(torch.tensor([-2.0, 2.0])).tolist() == [-math.inf, 0.0]


def test_half_flat_is_unconstrained_through_exp():
    u = torch.tensor([-3.0, 0.0, 2.5], dtype=torch.float64)
    torch.testing.assert_close(biject(HalfFlat().support())(u), u.exp(), rtol=1e-15, atol=0)
    assert Flat().support() is torch.distributions.constraints.real


def test_nuts_recovers_the_flat_prior_posterior_of_a_normal_mean():
    # y ~ Normal(mu, 1), mu ~ Flat(): the posterior of mu is Normal(mean(y), 1 / sqrt(n)).
    N = FinSet("N", 25)
    model = Program("m", N, N, [sample("mu", None, Flat()), observe("y", N, Normal(var("mu"), 1.0))])
    y = torch.randn(25, generator=torch.Generator().manual_seed(3)) + 4.0
    mcmc = MCMC(NUTS(ProgramAdaptor(model, observed_names={"y"})), num_warmup=300, num_samples=400,
                num_chains=2, seed=1, progress_bar=False)
    mcmc.run(None, {"y": y})
    draws = mcmc.get_samples()["mu"]
    assert abs(float(draws.mean()) - float(y.mean())) < 0.08
    assert abs(float(draws.std()) - 1 / math.sqrt(25)) < 0.04


def test_svi_fits_a_half_flat_scale():
    model = loads(SOURCE).morphism
    y = torch.randn(20, generator=torch.Generator().manual_seed(0)) * 2.0 + 1.0
    result = fit(model, {"y": y}, steps=700, lr=0.05, guide="delta", seed=0, progress_bar=False)
    sigma = result.samples["sigma"].detach().mean()
    # The MAP of a flat prior is the maximum likelihood: the sample mean and deviation.
    assert abs(float(result.samples["mu"].detach().mean()) - float(y.mean())) < 0.05
    assert abs(float(sigma) - float(y.std(unbiased=False))) < 0.05


def test_prior_and_predictive_draws_refuse_a_flat_site_by_name():
    model = loads(SOURCE).morphism
    with pytest.raises(UnsupportedError, match=r"cannot draw `mu`: its prior Flat\(\) is improper") as info:
        model.sample(None)
    assert info.value.span is not None and info.value.span.line == 4
    with pytest.raises(UnsupportedError, match=r"cannot draw `sigma`: its prior HalfFlat\(\) is improper"):
        Predictive(model, num_samples=3)(None, {"mu": torch.tensor(0.0)})
    with pytest.raises(UnsupportedError, match="improper"):
        HalfFlat().build({}).sample()


def test_posterior_predictive_draws_with_given_flat_sites():
    model = loads(SOURCE).morphism
    post = {"mu": torch.tensor([0.0, 10.0]), "sigma": torch.tensor([1e-6, 1e-6])}
    y = Predictive(model, posterior_samples=post)(None)["y"]
    assert y.shape == (2, 20)
    torch.testing.assert_close(y.mean(-1), torch.tensor([0.0, 10.0]), atol=1e-4, rtol=0)
