"""Potentials that are infinite or NaN on part of the space: divergences
are counted, never raised, and never leave the support."""

from __future__ import annotations

import math

import pytest
import torch

from quivers.inference.mcmc import HMC, MCMC, NUTS
from tests.inference.mcmc.targets import check_moments


def inf_outside(z):
    """A standard normal cut to the half-space z0 < 0; +inf beyond."""
    u = 0.5 * (z * z).sum(-1)
    return torch.where(z[:, 0] < 0, u, torch.full_like(u, math.inf))


def nan_outside(z):
    """Rayleigh in -z0 (density -z0 exp(-z0^2 / 2)) times a normal in z1;
    log(-z0) makes both the value and the gradient NaN where z0 > 0."""
    return 0.5 * (z * z).sum(-1) - torch.log(-z[:, 0])


@pytest.mark.parametrize("potential", [inf_outside, nan_outside], ids=["inf", "nan"])
@pytest.mark.parametrize("kernel_cls", [NUTS, HMC], ids=["nuts", "hmc"])
def test_half_space_support_counts_divergences_without_raising(kernel_cls, potential):
    # Random starts land in the bad half for about half the chains: they are
    # redrawn until finite, as Stan does.
    kernel = kernel_cls(potential_fn=potential, dim=2)
    mcmc = MCMC(kernel, num_warmup=100, num_samples=100, num_chains=4, seed=0, progress_bar=False)
    mcmc.run()
    z = mcmc.get_samples()["z"]
    stats = mcmc.get_sample_stats()
    assert bool((z[:, 0] < 0).all()) and bool(torch.isfinite(z).all())
    assert int(stats["diverging"].sum()) > 0
    assert bool(torch.isfinite(stats["lp"]).all())
    assert bool(((stats["accept_prob"] >= 0) & (stats["accept_prob"] <= 1)).all())


@pytest.mark.slow
def test_posterior_with_a_log_barrier_is_still_recovered():
    # Rayleigh(1) in -z0: mean sqrt(pi / 2), sd sqrt(2 - pi / 2); z1 standard normal.
    mcmc = MCMC(NUTS(potential_fn=nan_outside, dim=2), num_warmup=500, num_samples=1000,
                num_chains=4, seed=1, progress_bar=False)
    mcmc.run()
    z = mcmc.get_samples(group_by_chain=True)["z"]
    check_moments(
        torch.stack([-z[..., 0], z[..., 1]], -1),
        torch.tensor([math.sqrt(math.pi / 2), 0.0]),
        torch.tensor([math.sqrt(2 - math.pi / 2), 1.0]),
    )


def test_nan_everywhere_after_the_start_is_a_divergence_every_time():
    def cliff(z):
        # Finite only on a sliver around the start, NaN elsewhere.
        u = 0.5 * (z * z).sum(-1)
        return torch.where(z.abs().max(-1).values < 1e-3, u, torch.full_like(u, math.nan))

    kernel = NUTS(potential_fn=cliff, initial_params=torch.zeros(2), step_size=0.5,
                  adapt_step_size=False)
    mcmc = MCMC(kernel, num_warmup=0, num_samples=20, num_chains=3, seed=0, progress_bar=False)
    mcmc.run()
    stats = mcmc.get_sample_stats()
    assert bool(stats["diverging"].all())
    assert bool((stats["n_steps"] == 1).all()) and bool((stats["tree_depth"] == 0).all())
    assert bool((mcmc.get_samples()["z"] == 0).all())
