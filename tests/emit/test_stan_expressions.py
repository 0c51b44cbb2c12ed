"""Stan emission of comparisons, `where`, step functions, reductions along
one axis, dot products and constrained latents (issue 16, part 7)."""

from __future__ import annotations

import pytest

from quivers.dsl import loads
from quivers.emit import to_stan

REGRESSION = """
object Item : FinSet 6
object P : FinSet 2
object K : FinSet 3
program reg : Item -> Item
    data X : Item * P
    sample alpha <- Normal(0.0, 5.0)
    sample beta : P <- Normal(0.0, 2.0)
    sample mu : K <- Normal(0.0, 5.0) [constraint=ordered]
    sample s : K <- HalfNormal(1.0) [constraint=positive_ordered]
    sample w : K <- Flat() [constraint=simplex]
    sample u : K <- Flat() [constraint=unit_vector]
    sample sigma <- HalfNormal(1.0)
    let eta = alpha + dot(X, beta)
    let m = where(eta > 0, log1p(eta), eta) + step(eta) - int_step(eta) + sum(mu * w) + logsumexp(mu, K)
    observe y : Item <- Normal(m, sigma)
    return y
export reg
"""


@pytest.fixture(scope="module")
def stan():
    return to_stan(loads(REGRESSION).morphism)


def test_constrained_latents_are_declared_with_stans_types(stan):
    for line in ("ordered[K] mu;", "positive_ordered[K] s;", "simplex[K] w;", "unit_vector[K] u;"):
        assert line in stan
    assert "mu ~ normal(0.0, 5.0);" in stan
    assert "\n  w ~" not in stan and "\n  u ~" not in stan  # Flat(): the uniform law, no statement


def test_a_design_matrix_product_sums_each_row(stan):
    assert "matrix[Item, P] X;" in stan
    assert "eta[i] = alpha + sum(X[i, :]' .* beta);" in stan


def test_comparisons_where_and_steps_are_stans(stan):
    assert "((eta[i] > 0) ? log1p(eta[i]) : eta[i])" in stan
    assert "step(eta[i])" in stan and "int_step(eta[i])" in stan
    assert "log_sum_exp(mu)" in stan and "sum(mu .* w)" in stan


def test_functions_along_an_axis_read_one_element():
    src = """object K : FinSet 3
program c : K -> K
    sample z0 : K <- Normal(0.0, 1.0)
    sample z : K <- Normal(softmax(z0, K) + cumsum(z0, K) + where(z0, 1, 0), 1.0)
    return z
export c
"""
    stan = to_stan(loads(src).morphism)
    assert "cumulative_sum(z0)[k] + softmax(z0)[k]" in stan
    assert "(z0[k] != 0 ? 1 : 0)" in stan


def test_a_cholesky_factor_is_stans_cholesky_factor_corr():
    """The square plate ``K * K`` (its second axis ``K'``) is one size
    ``K``; Flat() is Stan's implicit prior, LKJCholesky its
    lkj_corr_cholesky (with or without the constraint written)."""
    src = """object K : FinSet 3
object G : FinSet 2
program c : K -> K
    sample L : K * K <- Flat() [constraint=cholesky_corr]
    sample M : G * K * K <- LKJCholesky(2.0) [constraint=cholesky_corr]
    sample N : K * K <- LKJCholesky(2.0)
    return L
export c
"""
    stan = to_stan(loads(src).morphism)
    assert "data {\n  int<lower=0> K;\n  int<lower=0> G;\n}" in stan
    for line in ("cholesky_factor_corr[K] L;", "array[G] cholesky_factor_corr[K] M;", "cholesky_factor_corr[K] N;",
                 "M[g] ~ lkj_corr_cholesky(2.0);", "N ~ lkj_corr_cholesky(2.0);"):
        assert line in stan
    assert "L ~" not in stan


def test_relu_and_clamp_are_fmax_and_fmin():
    src = """object K : FinSet 3
program c : K -> K
    sample z0 : K <- Normal(0.0, 1.0)
    sample z : K <- Normal(relu(z0) + clamp(z0, -1.0, 1.0), 1.0)
    return z
export c
"""
    stan = to_stan(loads(src).morphism)
    assert "fmin(fmax(z0[k], -1.0), 1.0) + fmax(z0[k], 0)" in stan


def test_the_mixture_of_regressions_example_emits_ordered_intercepts():
    from pathlib import Path

    from quivers.dsl import load

    stan = to_stan(load(Path(__file__).resolve().parents[2] / "examples" / "mixture_regression.qvr").morphism)
    assert "ordered[K] alpha;" in stan and "simplex[K] w;" in stan
    assert "normal_lpdf(y[i] | x[i] * beta[k] + alpha[k], sigma)" in stan
