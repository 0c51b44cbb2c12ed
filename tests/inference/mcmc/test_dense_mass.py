"""Stan's dense metric: the regularized covariance of each slow window, and
that it beats the diagonal metric on a correlated Gaussian in effective
samples per gradient evaluation."""

from __future__ import annotations

import warnings

import arviz as az
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from quivers.errors import InvalidValueError, ShapeError
from quivers.inference.mcmc import HMC, MCMC, NUTS, WelfordCovariance
from quivers.inference.mcmc.hamiltonian import energy, kinetic_energy, momentum_factor, sample_momentum
from tests.inference.mcmc.targets import check_moments


def _gaussian(dim: int, rho: float, scales: torch.Tensor):
    """A Gaussian with correlation ``rho`` between every pair of coordinates."""
    corr = torch.full((dim, dim), rho, dtype=torch.float64).fill_diagonal_(1.0)
    cov = scales[:, None] * corr * scales[None, :]
    precision = torch.linalg.inv(cov)

    def potential(z):
        return 0.5 * ((z @ precision.to(z.dtype)) * z).sum(-1)

    return cov, potential


def _ess_per_gradient(mcmc: MCMC) -> float:
    draws = mcmc.get_samples(group_by_chain=True)["z"].double().numpy()
    ess = float(az.ess(az.convert_to_dataset({"z": draws}))["z"].values.min())
    return ess / float(mcmc.get_sample_stats()["n_steps"].sum())


def test_welford_covariance_is_stans_regularized_estimate():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(40, 3, 2, generator=gen, dtype=torch.float64)  # 40 draws of 3 chains
    w = WelfordCovariance()
    for row in x:
        w.update(row)
    n = 40
    for c in range(3):
        cov = torch.cov(x[:, c].T)
        expected = (n / (n + 5.0)) * cov + 1e-3 * (5.0 / (n + 5.0)) * torch.eye(2, dtype=torch.float64)
        torch.testing.assert_close(w.variance()[c], expected)
        torch.testing.assert_close(w.variance(regularize=False)[c], cov)


def test_dense_momenta_have_the_mass_matrix_as_covariance():
    a = torch.tensor([[[2.0, 0.9], [0.9, 1.0]]], dtype=torch.float64)  # M^-1
    factor = momentum_factor(a.expand(20_000, 2, 2))
    p = sample_momentum(factor, torch.Generator().manual_seed(0))
    torch.testing.assert_close(torch.cov(p.T), torch.linalg.inv(a[0]), atol=0.03, rtol=0.03)
    # and the kinetic energy reads the same matrix: E[p^T M^-1 p / 2] = D / 2
    assert abs(float(kinetic_energy(p, a.expand(20_000, 2, 2)).mean()) - 1.0) < 0.03



@given(st.integers(min_value=0, max_value=2**16 - 1), st.booleans())
def test_the_energy_is_the_potential_plus_the_kinetic_energy_bit_for_bit(seed, dense):
    """``energy`` adds half the dot product in one operation: halving is
    exact, so it rounds as adding the kinetic energy does, for a diagonal
    and a dense metric."""
    gen = torch.Generator().manual_seed(seed)
    u, p = torch.randn(5, generator=gen, dtype=torch.float64), torch.randn(5, 3, generator=gen, dtype=torch.float64)
    inv_mass = torch.rand(5, 3, generator=gen, dtype=torch.float64) + 0.1
    if dense:
        a = torch.randn(5, 3, 3, generator=gen, dtype=torch.float64)
        inv_mass = a @ a.mT + 0.1 * torch.eye(3, dtype=torch.float64)
    assert torch.equal(energy(u, p, inv_mass), u + kinetic_energy(p, inv_mass))

@pytest.mark.slow
def test_dense_adaptation_learns_the_covariance_and_samples_the_target():
    cov, potential = _gaussian(2, 0.99, torch.tensor([1.0, 10.0], dtype=torch.float64))
    kernel = NUTS(potential_fn=potential, dim=2, dense_mass=True, initial_params=torch.zeros(2, dtype=torch.float64))
    mcmc = MCMC(kernel, num_warmup=300, num_samples=400, num_chains=4, seed=0, progress_bar=False)
    mcmc.run()
    assert kernel.inverse_mass_matrix.shape == (4, 2, 2)
    # the last window's regularized covariance is near the target's
    torch.testing.assert_close(kernel.inverse_mass_matrix.mean(0), cov, rtol=0.35, atol=0.1)
    check_moments(mcmc.get_samples(group_by_chain=True)["z"], 0.0, cov.diagonal().sqrt(), sd_rtol=0.15)


def test_dense_beats_diagonal_in_ess_per_gradient_2d():
    # Correlation 0.98: the diagonal metric can only shrink the step to the
    # narrow direction (deep trees); the dense one makes the target round.
    # Trees are capped at depth 6 to keep the diagonal run short; the cap
    # only helps the diagonal metric's count of gradients.
    _, potential = _gaussian(2, 0.98, torch.tensor([1.0, 10.0], dtype=torch.float64))
    rates = {}
    for dense in (False, True):
        kernel = NUTS(potential_fn=potential, dim=2, dense_mass=dense, max_tree_depth=6,
                      initial_params=torch.zeros(2, dtype=torch.float64))
        mcmc = MCMC(kernel, num_warmup=100, num_samples=150, num_chains=2, seed=1, progress_bar=False)
        with warnings.catch_warnings():  # the diagonal run hits the depth cap; short runs warn
            warnings.simplefilter("ignore")
            mcmc.run()
        rates[dense] = _ess_per_gradient(mcmc)
    assert rates[True] > 3 * rates[False], rates


@pytest.mark.slow
def test_dense_beats_diagonal_in_ess_per_gradient_10d():
    scales = torch.logspace(0, 1, 10, dtype=torch.float64)
    _, potential = _gaussian(10, 0.9, scales)
    rates = {}
    for dense in (False, True):
        kernel = NUTS(potential_fn=potential, dim=10, dense_mass=dense, initial_params=torch.zeros(10, dtype=torch.float64))
        mcmc = MCMC(kernel, num_warmup=500, num_samples=500, num_chains=4, seed=2, progress_bar=False)
        mcmc.run()
        rates[dense] = _ess_per_gradient(mcmc)
    assert rates[True] > 3 * rates[False], rates


def test_hmc_takes_a_dense_metric():
    cov, potential = _gaussian(2, 0.9, torch.tensor([1.0, 2.0], dtype=torch.float64))
    kernel = HMC(potential_fn=potential, dim=2, num_steps=8, step_size_jitter=0.2, dense_mass=True,
                 initial_params=torch.zeros(2, dtype=torch.float64))
    mcmc = MCMC(kernel, num_warmup=300, num_samples=500, num_chains=4, seed=0, progress_bar=False)
    mcmc.run()
    check_moments(mcmc.get_samples(group_by_chain=True)["z"], 0.0, cov.diagonal().sqrt(), sd_rtol=0.15)


def test_a_given_dense_matrix_is_checked():
    z0 = torch.zeros(2, dtype=torch.float64)
    potential = lambda z: 0.5 * (z**2).sum(-1)  # noqa: E731
    gen = torch.Generator().manual_seed(0)
    kernel = NUTS(potential_fn=potential, initial_params=z0, dense_mass=True,
                  inverse_mass_matrix=torch.tensor([[2.0, 0.5], [0.5, 1.0]], dtype=torch.float64))
    kernel.setup(3, 0, gen)
    assert kernel.inverse_mass_matrix.shape == (3, 2, 2)
    kernel = NUTS(potential_fn=potential, initial_params=z0, dense_mass=True,
                  inverse_mass_matrix=torch.tensor([[1.0, 2.0], [2.0, 1.0]], dtype=torch.float64))
    with pytest.raises(InvalidValueError, match="positive definite"):
        kernel.setup(3, 0, gen)
    kernel = NUTS(potential_fn=potential, initial_params=z0, dense_mass=True, inverse_mass_matrix=torch.ones(3, 3))
    with pytest.raises(ShapeError, match="inverse_mass_matrix"):
        kernel.setup(3, 0, gen)
    # a diagonal given to a dense kernel starts it at that diagonal
    kernel = NUTS(potential_fn=potential, initial_params=z0, dense_mass=True, inverse_mass_matrix=torch.tensor([2.0, 3.0]))
    kernel.setup(1, 0, gen)
    assert torch.equal(kernel.inverse_mass_matrix[0], torch.diag(torch.tensor([2.0, 3.0], dtype=torch.float64)))
    assert np.isfinite(kernel.mass_sqrt.numpy()).all()
