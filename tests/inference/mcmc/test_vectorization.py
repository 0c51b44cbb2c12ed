"""Chains run as one batch: one potential call per leapfrog step for all."""

from __future__ import annotations

import pytest
import torch

from quivers.inference.mcmc import HMC, MCMC, NUTS
from tests.inference.mcmc.targets import correlated_gaussian, standard_normal


class CountingPotential:
    """Records the batch size of every call."""

    def __init__(self, potential):
        self.potential = potential
        self.batch_sizes: list[int] = []

    def __call__(self, z):
        self.batch_sizes.append(z.shape[0])
        return self.potential(z)


@pytest.mark.parametrize("num_chains", [1, 7, 32])
def test_nuts_calls_the_potential_once_per_step_of_the_longest_chain(num_chains):
    counter = CountingPotential(correlated_gaussian)
    kernel = NUTS(potential_fn=counter, dim=2, step_size=0.5, adapt_step_size=False)
    state = kernel.setup(num_chains, 0, torch.Generator().manual_seed(0))
    total_calls = total_steps = 0
    for _ in range(10):
        counter.batch_sizes.clear()
        with torch.no_grad():
            state, stats = kernel.transition(state)
        # Not the sum over chains: the batch stops with its longest trajectory.
        assert counter.batch_sizes == [num_chains] * int(stats["n_steps"].max())
        total_calls += len(counter.batch_sizes)
        total_steps += int(stats["n_steps"].sum())
    if num_chains > 1:
        assert total_calls < total_steps


def test_hmc_calls_the_potential_once_per_step():
    counter = CountingPotential(standard_normal)
    kernel = HMC(potential_fn=counter, dim=3, num_steps=6, adapt_step_size=False, step_size=0.3)
    state = kernel.setup(16, 0, torch.Generator().manual_seed(0))
    counter.batch_sizes.clear()
    with torch.no_grad():
        kernel.transition(state)
    assert counter.batch_sizes == [16] * 6


def test_calls_per_iteration_do_not_scale_with_chains():
    calls = {}
    for num_chains in (1, 64):
        counter = CountingPotential(standard_normal)
        mcmc = MCMC(NUTS(potential_fn=counter, dim=4), num_warmup=100, num_samples=100,
                    num_chains=num_chains, seed=0, progress_bar=False)
        mcmc.run()
        assert set(counter.batch_sizes) == {num_chains}
        calls[num_chains] = len(counter.batch_sizes)
    # 64 chains cost the longest of their trees per iteration, a small
    # factor over one chain's, never 64 times as many calls.
    assert calls[64] < 4 * calls[1], calls
