"""Constrained latents in the IR: scored by their family, laid out through
their bijection, drawn by their own rules, and refused where they do not fit."""

from __future__ import annotations

import math

import pytest
import torch

from quivers.categories import FinSet
from quivers.distributions import CONSTRAINTS, Dirichlet, Flat, HalfNormal, LKJCholesky, Normal, Poisson
from quivers.errors import DataError, QuiversTypeError, ShapeError, UnknownNameError, UnsupportedError
from quivers.inference.layout import Layout
from quivers.programs import Program, observe, sample, var

K = FinSet("K", 3)
Item = FinSet("Item", 5)


def _ordered_program() -> Program:
    return Program("p", Item, Item, [
        sample("mu", K, Normal(0.0, 5.0), constraint="ordered"),
        sample("s", K, HalfNormal(2.0), constraint="positive_ordered"),
        sample("w", K, Dirichlet(1.0), constraint="simplex"),
    ])


def test_the_density_is_the_familys_on_the_constrained_values():
    torch.set_default_dtype(torch.float64)
    try:
        p = _ordered_program()
        mu, s, w = torch.tensor([-1.0, 0.5, 2.0]), torch.tensor([0.1, 0.4, 3.0]), torch.tensor([0.2, 0.3, 0.5])
        got = p.log_joint(latents={"mu": mu, "s": s, "w": w})
        want = (torch.distributions.Normal(0.0, 5.0).log_prob(mu).sum()
                + torch.distributions.HalfNormal(2.0).log_prob(s).sum()
                + torch.distributions.Dirichlet(torch.ones(3)).log_prob(w))
        torch.testing.assert_close(got, want)
    finally:
        torch.set_default_dtype(torch.float32)


def test_the_layout_maps_onto_the_sets_with_the_log_jacobian():
    p = _ordered_program()
    layout = Layout(p.latent_sites())
    assert layout.dim == 3 + 3 + 2
    u = torch.randn(7, layout.dim, dtype=torch.float64)
    values, logdet = layout.unpack(u)
    for name, c in (("mu", "ordered"), ("s", "positive_ordered"), ("w", "simplex")):
        assert bool(CONSTRAINTS[c].constraint.check(values[name]).all())
    t = {n: torch.distributions.biject_to(CONSTRAINTS[n].constraint) for n in ("ordered", "positive_ordered", "simplex")}
    want = (t["ordered"].log_abs_det_jacobian(u[:, :3], None) + t["positive_ordered"].log_abs_det_jacobian(u[:, 3:6], None)
            + t["simplex"].log_abs_det_jacobian(u[:, 6:], values["w"]))
    torch.testing.assert_close(logdet, want)
    torch.testing.assert_close(layout.pack(values), u)


def test_prior_draws_are_sorted_and_lie_in_the_sets():
    torch.manual_seed(0)
    p = Program("p", K, K, [
        sample("mu", Item * K, Normal(0.0, 5.0), constraint="ordered"),
        sample("u", K, Flat(), constraint="unit_vector"),
        sample("L", K * K, Flat(), constraint="cholesky_corr"),
        sample("w", K, Flat(), constraint="simplex"),
    ])
    d = p.sample(sample_shape=(50,))
    assert d["mu"].shape == (50, 5, 3)
    for name, c in (("mu", "ordered"), ("u", "unit_vector"), ("L", "cholesky_corr"), ("w", "simplex")):
        assert bool(CONSTRAINTS[c].constraint.check(d[name]).all()), name
    # the sorted draws are the order statistics of Normal(0, 5): the middle one has mean 0
    assert abs(float(d["mu"][..., 1].mean())) < 1.0
    assert float(d["mu"][..., 2].mean()) > 3.0


def test_a_flat_cholesky_factor_is_drawn_from_the_law_it_is_scored_by(float64):
    """Flat() on `cholesky_corr` scores 0 in the strictly lower entries of
    L (the measure of the bijection's log Jacobian), so its draws must be
    uniform there: row i's free entries uniform in the unit ball, whose
    squared radius to the power (i - 1) / 2 is uniform on (0, 1). And, with
    q the uniform density 1 / volume, E_q[p / q] = 1 for LKJCholesky's
    density p (torch's, on the same measure). LKJCholesky(K, 1) draws,
    which these were before, fail both for K = 4."""
    from scipy import stats

    k, n = 4, 20000
    G = FinSet("G", 2)
    p = Program("p", G, G, [sample("L", G * FinSet("K", k) * FinSet("K", k), Flat(), constraint="cholesky_corr")])
    torch.manual_seed(0)
    L = p.sample(sample_shape=(n // 2,))["L"]
    assert L.shape == (n // 2, 2, k, k) and L.dtype == torch.float64
    assert bool(CONSTRAINTS["cholesky_corr"].constraint.check(L).all())
    L = L.reshape(n, k, k)
    for i in range(1, k):
        r2 = (L[:, i, :i] ** 2).sum(-1)
        assert stats.kstest((r2 ** (i / 2)).numpy(), "uniform").pvalue > 1e-3, i
    volume = 1 * 2 * math.pi * (4 * math.pi / 3)  # the unit balls of dimension 0, 1, 2, 3
    ratio = torch.distributions.LKJCholesky(k, torch.tensor(1.0, dtype=torch.float64)).log_prob(L).exp() * volume
    assert abs(float(ratio.mean()) - 1) < 4 * float(ratio.std()) / math.sqrt(n)


def test_draws_that_would_not_follow_the_restricted_law_are_refused():
    p = Program("p", K, K, [sample("m0", K, Normal(0.0, 1.0)), sample("mu", K, Normal(var("m0"), 1.0), constraint="ordered")])
    with pytest.raises(UnsupportedError, match="vary along `K`"):
        p.sample()
    q = Program("q", K, K, [sample("u", K, Normal(0.0, 1.0), constraint="unit_vector")])
    with pytest.raises(UnsupportedError, match="no sampler"):
        q.sample()
    r = Program("r", K, K, [sample("mu", K, Flat(), constraint="ordered")])
    with pytest.raises(UnsupportedError, match="improper"):
        r.sample()


def test_a_given_value_outside_the_set_is_a_data_error():
    p = _ordered_program()
    with pytest.raises(DataError, match=r"`mu` has a value outside \[constraint=ordered\]"):
        p.log_joint(latents={"mu": torch.tensor([2.0, 1.0, 3.0]), "s": torch.tensor([1.0, 2.0, 3.0]),
                             "w": torch.tensor([0.2, 0.3, 0.5])})


@pytest.mark.parametrize("build, error, match", [
    (lambda: sample("mu", K, Normal(0.0, 1.0), constraint="sorted"), UnknownNameError, "unknown constraint `sorted`"),
    (lambda: sample("mu", K, HalfNormal(1.0), constraint="ordered"), QuiversTypeError, "HalfNormal has values in positive"),
    (lambda: sample("mu", K, Normal(0.0, 1.0), constraint="positive_ordered"), QuiversTypeError, "positive reals"),
    (lambda: sample("mu", K, Poisson(1.0), constraint="ordered"), QuiversTypeError, "the integers"),
    (lambda: sample("w", K, Normal(0.0, 1.0), constraint="simplex"), QuiversTypeError, r"Dirichlet\(\.\.\.\), or Flat"),
    (lambda: sample("mu", None, Normal(0.0, 1.0), constraint="ordered"), ShapeError, "on no plate"),
    (lambda: sample("L", K, LKJCholesky(1.0), constraint="cholesky_corr"), ShapeError, "square plate"),
    (lambda: sample("u", FinSet("One", 1), Flat(), constraint="unit_vector"), ShapeError, "at least 2"),
])
def test_constraints_that_do_not_fit_are_refused(build, error, match):
    with pytest.raises(error, match=match):
        build()
