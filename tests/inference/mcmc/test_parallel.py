"""Chains in separate processes (``chain_method="parallel"``) sample the
same distribution as the batched chains."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from quivers.errors import InvalidValueError
from quivers.inference.mcmc import MCMC, NUTS
from tests.inference.mcmc.targets import check_moments, correlated_gaussian, SCALES, CORRELATION


def _run(method: str, seed: int = 0, warmup: int = 150, samples: int = 300) -> MCMC:
    kernel = NUTS(potential_fn=correlated_gaussian, dim=2, initial_params=torch.zeros(2, dtype=torch.float64))
    mcmc = MCMC(kernel, num_warmup=warmup, num_samples=samples, num_chains=3, seed=seed, progress_bar=False,
                chain_method=method)
    mcmc.run()
    return mcmc


def test_parallel_chains_sample_what_batched_chains_sample():
    parallel, batched = _run("parallel"), _run("vectorized")
    draws = parallel.get_samples(group_by_chain=True)["z"]
    assert draws.shape == (3, 300, 2)
    check_moments(draws, 0.0, SCALES, sd_rtol=0.15, max_rhat=1.05)
    p, b = draws.reshape(-1, 2).numpy(), batched.get_samples()["z"].numpy()
    assert abs(np.corrcoef(p.T)[0, 1] - CORRELATION) < 0.1
    np.testing.assert_allclose(p.std(0), b.std(0), rtol=0.2)
    # every chain adapted on its own; the kernel holds each one's state
    kernel = parallel.kernel
    assert kernel.step_size.shape == (3,) and kernel.inverse_mass_matrix.shape == (3, 2)
    stats = parallel.get_sample_stats(group_by_chain=True)
    assert stats["tree_depth"].shape == (3, 300) and parallel.warmup_divergences.shape == (3,)


def test_a_parallel_run_is_fixed_by_its_seed():
    a, b = (_run("parallel", seed=3, warmup=30, samples=20) for _ in range(2))
    assert torch.equal(a.unconstrained_draws, b.unconstrained_draws)
    assert not torch.equal(a.unconstrained_draws[0], a.unconstrained_draws[1])  # chains differ


def test_an_error_in_a_chain_is_raised_here():
    def broken(z):
        return torch.full(z.shape[:1], float("nan"), dtype=z.dtype)

    mcmc = MCMC(NUTS(potential_fn=broken, dim=2), num_warmup=5, num_samples=5, num_chains=2,
                progress_bar=False, chain_method="parallel")
    with pytest.raises(InvalidValueError, match="not finite at the initial point"):
        mcmc.run()


def test_unknown_chain_method():
    with pytest.raises(InvalidValueError, match="chain_method"):
        MCMC(NUTS(potential_fn=correlated_gaussian, dim=2), chain_method="sequential")
