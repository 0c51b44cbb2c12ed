"""PointMass and Pushforward in Stan, run by tests/emit/stan_eval.py and
compared with ``Program.log_joint``: a pushforward is its base family's
density at the inverse plus the log Jacobian, a point-mass latent a
transformed parameter, and an observed point mass is refused by name."""

from __future__ import annotations

import pytest
import torch

from quivers.dsl import loads
from quivers.emit import to_stan
from quivers.errors import UnsupportedError
from tests.emit.test_stan import assert_well_formed, blocks
from tests.emit.test_stan_evaluated import compare

PUSHED = """
object Item : FinSet 5
object K : FinSet 2
program p : Item -> Item
    sample mu <- Normal(0.0, 1.0)
    sample s <- Pushforward(Normal(-0.5, 0.5), exp)
    sample u <- Pushforward(Normal(0.0, 1.0), Sigmoid)
    sample r <- Pushforward(Normal(0.0, 1.0), tanh)
    sample c <- PointMass(1.5)
    sample w : K <- Dirichlet(1.0)
    observe y : Item <- Pushforward(Normal(mu, s), exp)
    observe z : Item <- Pushforward(Normal(0.0, s), affine(mu + c, 2.0 * s))
    observe v : Item <- Pushforward(Beta(2.0, 3.0), logit)
    observe q : Item <- Pushforward(Normal(mu, 1.0), softplus)
    marginalize k : K <- Categorical(w)
        observe x : Item <- Pushforward(Normal(mu * k, 1.0), exp)
    return y
export p
"""


def observations():
    g = torch.Generator().manual_seed(11)
    return {"y": torch.rand(5, generator=g) * 2 + 0.1, "z": torch.randn(5, generator=g) + 3.0,
            "v": torch.randn(5, generator=g), "q": torch.rand(5, generator=g) + 0.2,
            "x": torch.rand(5, generator=g) * 2 + 0.1}


def test_a_pushforward_is_its_base_at_the_inverse_plus_the_log_jacobian(float64):
    p = loads(PUSHED).p
    code = to_stan(p)
    assert_well_formed(code)
    b = blocks(code)
    assert "real<lower=0> s;" in b["parameters"] and "real<lower=0, upper=1> u;" in b["parameters"]
    assert "real<lower=-1, upper=1> r;" in b["parameters"] or "real<lower=-1.0, upper=1.0> r;" in b["parameters"]
    assert "real c;" in b["transformed data"] and "c = 1.5;" in b["transformed data"]  # a let, not a parameter
    for line in ("target += normal_lpdf(log(s) | -0.5, 0.5) + -log(s);",
                 "target += normal_lpdf(log(y[i]) | mu, s) + -log(y[i]);",
                 "target += normal_lpdf((z[i] - (c + mu)) / (2.0 * s) | 0.0, s) + -log(abs((2.0 * s)));",
                 "target += beta_lpdf(inv_logit(v[i]) | 2.0, 3.0) + log_inv_logit(v[i]) + log1m_inv_logit(v[i]);"):
        assert line in b["model"], line
    diffs = compare(p, observations(), ["mu", "s", "u", "r", "w"])
    torch.testing.assert_close(torch.tensor(diffs), torch.full((4,), diffs[0]), rtol=0, atol=1e-8)
    # every term written out with its constants: the targets agree exactly
    assert diffs[0] == pytest.approx(0.0, abs=1e-8)


def test_an_observed_point_mass_is_refused_by_name():
    src = """object Item : FinSet 3
program p : Item -> Item
    observe y : Item <- PointMass(0.0)
    return y
export p
"""
    with pytest.raises(UnsupportedError, match=r"line 3, .*`y` has the family PointMass, which Stan emission does "
                                                r"not translate"):
        to_stan(loads(src).p)


def test_a_point_mass_in_a_count_mixture_is_its_atom_in_stan(float64):
    from tests.distributions.test_pushforward import ZIP

    p = loads(ZIP).zip
    code = to_stan(p)
    assert ("target += log_sum_exp(log(w / sum(w)) + [(y[i] == 0 ? 0 : negative_infinity()), "
            "poisson_lpmf(y[i] | rate)]');") in blocks(code)["model"]
    diffs = compare(p, {"y": torch.tensor([0, 0, 3, 1, 0, 5])}, ["w", "rate"])
    torch.testing.assert_close(torch.tensor(diffs), torch.zeros(4), rtol=0, atol=1e-8)


def test_a_pushforward_latent_is_declared_on_the_image_of_its_support(float64):
    """Affine maps move and flip the bounds of the base's support; log of a
    Gamma is on the whole line."""
    p = loads("""
object Item : FinSet 3
program p : Item -> Item
    sample a <- Pushforward(Exponential(2.0), affine(1.0, 2.0))
    sample b <- Pushforward(Gamma(2.0, 1.0), log)
    sample c <- Pushforward(Beta(2.0, 2.0), affine(-1.0, 2.0))
    sample d <- Pushforward(Exponential(1.0), affine(0.0, -1.0))
    observe y : Item <- Normal(a + b + c + d, 1.0)
    return y
export p
""").p
    params = blocks(to_stan(p))["parameters"]
    assert params == ["real<lower=1> a;", "real b;", "real<lower=-1, upper=1> c;", "real<upper=0> d;"]
    diffs = compare(p, {"y": torch.tensor([0.3, -1.0, 2.0])}, ["a", "b", "c", "d"])
    torch.testing.assert_close(torch.tensor(diffs), torch.zeros(4), rtol=0, atol=1e-8)
