"""Comparisons, `where`, step functions, reductions along one axis, dot
products, vector literals and `[constraint=...]` in QVR: their log density
against a hand-written torch computation in float64, their gradients, and
the located errors of their misuse."""

from __future__ import annotations

import pytest
import torch

from quivers.dsl import dumps, loads, parse
from quivers.errors import QuiversError, QuiversTypeError, QVRSyntaxError, ShapeError, UnknownNameError

D = torch.distributions

SOURCE = """
object Item : FinSet 6
object P : FinSet 2
object K : FinSet 3
program reg : Item -> Item
    data X : Item * P
    sample alpha <- Normal(0.0, 5.0)
    sample beta : P <- Normal(0.0, 2.0)
    sample mu : K <- Normal([0, 1, 2.5], 5.0) [constraint=ordered]
    sample w : K <- Dirichlet([1, 2, 3.5])
    sample sigma <- HalfNormal(1.0)
    let eta = alpha + sum(X * beta, P) - dot(X, beta, P) + dot(X, beta)
    let m = where(eta > 0, log1p(eta), eta) + step(eta) - int_step(eta) + (eta <= x0) * 2 + relu(eta) - clamp(eta, -1, 0.5)
    observe y : Item <- Normal(m + sum(mu * w) + logsumexp(mu, K), sigma)
    return y
export reg
"""


def _hand_written(X, x0, y, alpha, beta, mu, w, sigma):
    eta = alpha + X @ beta
    m = (torch.where(eta > 0, torch.log1p(eta), eta) + (eta >= 0).double() - (eta > 0).double() + (eta <= x0).double() * 2
         + torch.relu(eta) - eta.clamp(-1.0, 0.5))
    loc = m + (mu * w).sum() + torch.logsumexp(mu, 0)
    return (D.Normal(0.0, 5.0).log_prob(alpha) + D.Normal(0.0, 2.0).log_prob(beta).sum()
            + D.Normal(torch.tensor([0.0, 1.0, 2.5]), 5.0).log_prob(mu).sum()
            + D.Dirichlet(torch.tensor([1.0, 2.0, 3.5])).log_prob(w) + D.HalfNormal(1.0).log_prob(sigma)
            + D.Normal(loc, sigma).log_prob(y).sum())


def test_the_log_density_is_the_hand_written_one():
    torch.set_default_dtype(torch.float64)
    try:
        g = torch.Generator().manual_seed(1)
        X, y = torch.randn(6, 2, generator=g), torch.randn(6, generator=g)
        x0 = torch.tensor(0.3)
        latents = {"alpha": torch.tensor(0.2), "beta": torch.tensor([1.5, -0.7]), "mu": torch.tensor([-1.0, 0.0, 2.0]),
                   "w": torch.tensor([0.2, 0.3, 0.5]), "sigma": torch.tensor(1.3)}
        p = loads(SOURCE).morphism
        assert p.sites["X"].dims == ("Item", "P") and p.sites["x0"].dims == ("Item",)
        got = p.log_joint(observations={"X": X, "y": y, "x0": x0}, latents=latents)
        torch.testing.assert_close(got, _hand_written(X, x0, y, **latents), rtol=1e-12, atol=1e-12)
    finally:
        torch.set_default_dtype(torch.float32)


def test_it_prints_back_to_itself():
    m = parse(SOURCE)
    assert parse(dumps(m)) == m
    assert "(eta <= x0) * 2" in dumps(m) and "Normal([0, 1, 2.5], 5.0) [constraint=ordered]" in dumps(m)


def test_where_gives_finite_gradients_where_the_taken_branch_is_defined():
    src = """
object Item : FinSet 4
program p : Item -> Item
    data x : Item
    sample a <- Normal(0.0, 1.0)
    let u = x * a
    factor where(u > 0, log(u) + sqrt(u), -u ^ 2)
"""
    p = loads(src).morphism
    a = torch.tensor(1.5, requires_grad=True)
    x = torch.tensor([-1.0, 0.0, 2.0, 3.0])
    lp = p.log_joint(observations={"x": x}, latents={"a": a})
    (grad,) = torch.autograd.grad(lp, a)
    u = x[2:] * 1.5
    want = -1.5 + (x[2:] * (1 / u + 0.5 / u.sqrt())).sum() + (-2 * 1.5 * x[:2] ** 2).sum()
    assert torch.isfinite(grad)
    torch.testing.assert_close(grad, want)


@pytest.mark.parametrize("line, error, message", [
    ("let v = a < b < c", QVRSyntaxError, "line 5"),
    ("let v = [1.0, 2.0]", QuiversTypeError, "has no object to run along"),
    ("sample v : K <- Dirichlet([1.0, 2.0])", QuiversTypeError, "`K`, which has 3 elements; it has 2 entries"),
    ("observe v : K <- Normal(1 < 2 < 3, 1.0)", QVRSyntaxError, "line 5"),
    ("let v = sum(mu, Q)", QuiversTypeError, "`Q` is not an object"),
    ("let v = sum(mu, 2)", QuiversTypeError, "names the axis it runs along"),
    ("let v = sum(mu, Item)", ShapeError, "runs along `Item`, but `mu` has the axes ['K']"),
    ("let v = dot(mu, mu2)", ShapeError, "share none"),
    ("let v = where(mu > 0, mu)", QuiversTypeError, "`where` takes three arguments, got 2"),
    ("let v = sum(mu, K, K)", QuiversTypeError, "`sum` takes one or two arguments, got 3"),
    ("sample v : K <- Normal(0.0, 1.0) [constraint=sorted]", UnknownNameError, "unknown constraint `sorted`"),
    ("sample v : K <- HalfNormal(1.0) [constraint=ordered]", QuiversTypeError, "HalfNormal has values in positive"),
    ("sample v <- Normal(0.0, 1.0) [constraint=ordered]", ShapeError, "on no plate"),
])
def test_misuse_is_a_located_error(line, error, message):
    src = f"""object K, Item : FinSet 3
program p : K -> K
    sample mu : K <- Normal(0.0, 1.0)
    sample mu2 : Item <- Normal(0.0, 1.0)
    {line}
    return mu
"""
    with pytest.raises(QuiversError) as info:
        loads(src)
    assert type(info.value) is error
    assert message in str(info.value)
    assert "line 5" in str(info.value)


def test_a_reduction_along_a_set_parameter_follows_the_set_it_is_given():
    src = """object Subject : FinSet 4
object Item : FinSet 3
program pooled(G : FinSet, scale : Real) : G -> 1
    sample u : G <- Normal(0.0, scale)
    factor -0.5 * sum(u, G) ^ 2
    return u
program main : Item -> Item
    sample by_subject <- pooled(Subject, 2.0)
    observe y : Item <- Normal(0.0, 1.0)
    return y
export main
"""
    p = loads(src).morphism
    u, y = torch.tensor([0.1, 0.2, -0.3, 0.5]), torch.tensor([0.0, 1.0, -1.0])
    got = p.log_joint(observations={"y": y}, latents={"by_subject_u": u})
    want = D.Normal(0.0, 2.0).log_prob(u).sum() - 0.5 * u.sum() ** 2 + D.Normal(0.0, 1.0).log_prob(y).sum()
    torch.testing.assert_close(got, want)
