"""NUTS and HMC recover closed-form posterior moments."""

from __future__ import annotations

import pytest
import torch

from quivers.inference.mcmc import HMC, MCMC, NUTS
from tests.inference.mcmc.targets import (
    SCALES,
    GammaAdaptor,
    check_moments,
    correlated_gaussian,
    normal_normal_posterior,
    normal_normal_potential,
    standard_normal,
)

# HMC's fixed trajectory length resonates on Gaussians without jitter.
KERNELS = {
    "nuts": lambda **kw: NUTS(**kw),
    "hmc": lambda **kw: HMC(num_steps=8, step_size_jitter=0.3, **kw),
}


def _run(kernel, *args, seed: int, num_warmup: int = 300, num_samples: int = 1000) -> MCMC:
    mcmc = MCMC(
        kernel, num_warmup=num_warmup, num_samples=num_samples, num_chains=4, seed=seed,
        progress_bar=False,
    )
    mcmc.run(*args)
    return mcmc


@pytest.mark.parametrize("kind", sorted(KERNELS))
def test_standard_normal_5d(kind):
    mcmc = _run(KERNELS[kind](potential_fn=standard_normal, dim=5), seed=1)
    z = mcmc.get_samples(group_by_chain=True)["z"]
    assert z.shape == (4, 1000, 5)
    check_moments(z, 0.0, 1.0)
    assert int(mcmc.get_sample_stats()["diverging"].sum()) == 0


@pytest.mark.parametrize("kind", sorted(KERNELS))
def test_correlated_gaussian_adapts_mass_to_variances(kind):
    mcmc = _run(KERNELS[kind](potential_fn=correlated_gaussian, dim=2), seed=2, num_warmup=600)
    check_moments(mcmc.get_samples(group_by_chain=True)["z"], 0.0, SCALES.float())
    inv_mass = mcmc.kernel.inverse_mass_matrix
    ratio = inv_mass / SCALES.to(inv_mass.dtype) ** 2
    # Each chain's last window holds 300 autocorrelated draws: a rough
    # estimate (HMC chains are off by 40% now and then), but the 100-fold
    # difference in scale must be there, and the chains agree on average.
    assert bool(((ratio > 0.5) & (ratio < 2.0)).all()), ratio
    assert abs(float(ratio.mean()) - 1.0) < 0.2, ratio


@pytest.mark.parametrize("kind", sorted(KERNELS))
def test_gamma_through_log_transform(kind):
    adaptor = GammaAdaptor(shape=3.0, rate=2.0)
    mcmc = _run(KERNELS[kind](model=adaptor), seed=3)
    x = mcmc.get_samples(group_by_chain=True)["x"]
    assert x.shape == (4, 1000) and x.dtype == torch.float64
    assert bool((x > 0).all())
    check_moments(x, adaptor.mean, adaptor.sd)


@pytest.mark.parametrize("kind", sorted(KERNELS))
def test_conjugate_normal_normal_with_data_as_run_argument(kind):
    y = 3.0 + torch.randn(20, generator=torch.Generator().manual_seed(0))
    mean, sd = normal_normal_posterior(y)
    mcmc = _run(KERNELS[kind](potential_fn=normal_normal_potential, dim=1), y, seed=4)
    check_moments(mcmc.get_samples(group_by_chain=True)["z"], mean, sd)
