"""The evidence lower bound of a latent-variable model built from kernels.

For a decoder ``p(x | z)`` (a kernel ``Z -> X``), a prior ``p(z)`` (a
kernel ``1 -> Z``, or the standard normal) and an amortized guide
``q(z | x)`` (an encoder, a kernel ``X -> Z``), :func:`elbo` estimates

``ELBO(x) = E_{z ~ q(z | x)} [log p(x | z) + log p(z) - log q(z | x)]``

with reparameterized draws, so ``-elbo(...).sum()`` is a loss whose
gradient trains encoder and decoder together (stochastic variational
inference, as Pyro's ``Trace_ELBO`` with an amortized guide).

Laws
----
- ``elbo <= log p(x)``; with a guide equal to the exact posterior the bound
  is tight and its Monte Carlo estimate has zero variance.

Examples
--------
>>> import torch
>>> from quivers.nn import NeuralKernel, Real
>>> X, Z = Real("X", 4), Real("Z", 2)
>>> encoder = NeuralKernel(X, Z, "Normal")
>>> decoder = NeuralKernel(Z, X, "Bernoulli")
>>> elbo(encoder, decoder, torch.ones(3, 4)).shape
torch.Size([3])
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.distributions import Independent, Normal

from quivers.categories import FinSet
from quivers.errors import CompositionError
from quivers.nn.arrows import MorphismModule

__all__ = ["elbo"]


def elbo(
    encoder: MorphismModule,
    decoder: MorphismModule,
    x: Tensor,
    prior: MorphismModule | None = None,
    num_particles: int = 1,
) -> Tensor:
    """A Monte Carlo estimate of the ELBO of each datum in ``x``.

    Parameters
    ----------
    encoder
        The guide ``q(z | x)``, a kernel ``X -> Z`` with ``distribution``.
    decoder
        The likelihood ``p(x | z)``, a kernel ``Z -> X``.
    x
        Data, ``(..., |X|)``.
    prior
        ``p(z)``, a kernel ``1 -> Z``; the standard normal on ``Z`` when None.
    num_particles
        Draws of ``z`` per datum, averaged.
    """
    if encoder.cod != decoder.dom or encoder.dom != decoder.cod:
        raise CompositionError(
            f"an encoder `X -> Z` and a decoder `Z -> X` fit together; got `{encoder.dom} -> {encoder.cod}` "
            f"and `{decoder.dom} -> {decoder.cod}`"
        )
    q = encoder.distribution(x)
    z = q.rsample((num_particles,)) if q.has_rsample else q.sample((num_particles,))
    if prior is None:
        zero = torch.zeros_like(z)
        p_z = Independent(Normal(zero, torch.ones_like(z)), 1)
    else:
        if prior.dom != FinSet.unit() or prior.cod != encoder.cod:
            raise CompositionError(f"a prior is a kernel `1 -> {encoder.cod}`, got `{prior.dom} -> {prior.cod}`")
        p_z = prior.distribution(torch.zeros(z.shape[:-1], dtype=torch.long))
    log_w = decoder.distribution(z).log_prob(x) + p_z.log_prob(z) - q.log_prob(z)
    return log_w.mean(0)
