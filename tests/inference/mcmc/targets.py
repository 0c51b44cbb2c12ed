"""Targets with known moments for the MCMC tests, and the moment check.

Each target is a potential on the unconstrained space with closed-form
posterior moments. The check compares a run's draws with them, using
ArviZ's effective sample size for the Monte Carlo standard error.
"""

from __future__ import annotations

import math

import arviz as az
import numpy as np
import torch
from torch import Tensor


def standard_normal(z: Tensor) -> Tensor:
    return 0.5 * (z * z).sum(-1)


# A correlated 2-d Gaussian with scales (1, 10) and correlation 0.5.
SCALES = torch.tensor([1.0, 10.0], dtype=torch.float64)
CORRELATION = 0.5
_COV = torch.tensor(
    [[1.0, CORRELATION * 10.0], [CORRELATION * 10.0, 100.0]], dtype=torch.float64
)
_PRECISION = torch.linalg.inv(_COV)


def correlated_gaussian(z: Tensor) -> Tensor:
    precision = _PRECISION.to(z.dtype)
    return 0.5 * ((z @ precision) * z).sum(-1)


class GammaAdaptor:
    """x ~ Gamma(shape, rate), sampled as z = log x (a model adaptor with a
    constraining map and a Jacobian)."""

    def __init__(self, shape: float = 3.0, rate: float = 2.0) -> None:
        self.shape, self.rate = shape, rate
        self.mean = shape / rate
        self.sd = math.sqrt(shape) / rate

    def init_unconstrained(self, num_chains: int, generator: torch.Generator) -> Tensor:
        return torch.rand(num_chains, 1, generator=generator, dtype=torch.float64) * 4 - 2

    def potential(self, z: Tensor) -> Tensor:
        # log p(z) = shape * z - rate * exp(z): the density of x times dx/dz = x.
        return (self.rate * torch.exp(z) - self.shape * z).sum(-1)

    def constrain(self, z: Tensor) -> dict[str, Tensor]:
        return {"x": torch.exp(z[..., 0])}


def normal_normal_potential(z: Tensor, y: Tensor, prior_sd: float = 10.0) -> Tensor:
    """mu ~ Normal(0, prior_sd), y_i ~ Normal(mu, 1); ``z[:, 0]`` is mu."""
    mu = z[:, :1]
    return 0.5 * (mu[:, 0] / prior_sd) ** 2 + 0.5 * ((y - mu) ** 2).sum(-1)


def normal_normal_posterior(y: Tensor, prior_sd: float = 10.0) -> tuple[float, float]:
    precision = 1.0 / prior_sd**2 + len(y)
    return float(y.sum()) / precision, 1.0 / math.sqrt(precision)


def check_moments(
    draws_by_chain: Tensor,
    mean: Tensor | float,
    sd: Tensor | float,
    *,
    mcse_tol: float = 4.0,
    sd_rtol: float = 0.10,
    max_rhat: float = 1.01,
) -> None:
    """Draws ``(chains, draws, D)`` have the given means (within ``mcse_tol``
    Monte Carlo standard errors), sds (within ``sd_rtol``) and R-hat."""
    x = draws_by_chain.detach().cpu().double().numpy()
    if x.ndim == 2:
        x = x[..., None]
    mean = np.broadcast_to(np.asarray(mean, dtype=float), x.shape[-1:])
    sd = np.broadcast_to(np.asarray(sd, dtype=float), x.shape[-1:])
    data = az.convert_to_dataset({"x": x})
    ess = az.ess(data)["x"].values
    rhat = az.rhat(data)["x"].values
    est_mean = x.mean(axis=(0, 1))
    est_sd = x.reshape(-1, x.shape[-1]).std(axis=0, ddof=1)
    mcse = est_sd / np.sqrt(ess)
    assert np.all(np.abs(est_mean - mean) < mcse_tol * mcse), (est_mean, mean, mcse)
    assert np.all(np.abs(est_sd / sd - 1.0) < sd_rtol), (est_sd, sd)
    assert np.all(rhat < max_rhat), rhat
