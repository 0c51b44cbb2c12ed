"""Markov chain Monte Carlo on the unconstrained space, vectorized over chains.

- :class:`NUTS` and :class:`HMC`: Hamiltonian kernels moving a batch of
  chains ``z`` of shape ``(C, D)`` with one batched potential call per
  leapfrog step.
- :class:`DiscreteHMCGibbs`: Gibbs steps for discrete latents between the
  transitions of a Hamiltonian kernel on the continuous ones.
- :class:`MCMC`: the driver (Stan's warmup, draws, sample statistics,
  ArviZ diagnostics).
- :class:`ModelAdaptor`: what a kernel needs from a model (starting points,
  potential, constraining map); :class:`PotentialAdaptor` adapts a plain
  potential function, and :func:`as_model_adaptor` is the hook through which
  other model types are converted.
- :func:`init_to_median`, :func:`init_to_value`, :func:`init_to_uniform`:
  where chains start (``NUTS(model, init_strategy=...)``).

Examples
--------
>>> import torch
>>> kernel = NUTS(potential_fn=lambda z: 0.5 * (z**2).sum(-1), dim=2)
>>> mcmc = MCMC(kernel, num_warmup=50, num_samples=50, num_chains=4, seed=0,
...             progress_bar=False)
>>> mcmc.run()
>>> mcmc.get_samples()["z"].shape
torch.Size([200, 2])
"""

from __future__ import annotations

from quivers.inference.mcmc.adaptation import (
    DualAveraging,
    WarmupSchedule,
    WelfordCovariance,
    WelfordDiagonal,
    find_reasonable_step_size,
)
from quivers.inference.mcmc.adaptor import ModelAdaptor, PotentialAdaptor, as_model_adaptor
from quivers.inference.mcmc.gibbs import DiscreteHMCGibbs
from quivers.inference.mcmc.hmc import HMC
from quivers.inference.mcmc.init import InitStrategy, init_to_median, init_to_uniform, init_to_value
from quivers.inference.mcmc.kernel import ChainState, HamiltonianKernel
from quivers.inference.mcmc.mcmc import MCMC
from quivers.inference.mcmc.nuts import NUTS

__all__ = [
    "MCMC",
    "NUTS",
    "HMC",
    "DiscreteHMCGibbs",
    "HamiltonianKernel",
    "ChainState",
    "ModelAdaptor",
    "PotentialAdaptor",
    "as_model_adaptor",
    "DualAveraging",
    "WelfordDiagonal",
    "WelfordCovariance",
    "InitStrategy",
    "init_to_median",
    "init_to_uniform",
    "init_to_value",
    "WarmupSchedule",
    "find_reasonable_step_size",
]
