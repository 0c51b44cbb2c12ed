"""Hamiltonian dynamics for a batch of chains with a diagonal or dense metric.

A batch of chains is a position ``z`` of shape ``(C, D)``, a momentum ``p``
of the same shape, a per-chain step size of shape ``(C, 1)`` (its sign is
the direction of integration) and a per-chain inverse mass matrix
``inv_mass``: its diagonal, shape ``(C, D)``, or the whole matrix, shape
``(C, D, D)`` (Stan's ``dense_e`` metric). The Hamiltonian is
``H(z, p) = U(z) + p^T M^{-1} p / 2``; every function below takes either
form and tells them apart by the number of axes.

Laws (up to rounding):

- the leapfrog map is reversible: integrating from ``(z1, -p1)`` with the
  same step returns ``(z0, -p0)``;
- it conserves ``H`` to second order in the step size.

Every potential evaluation is one call on the whole batch and one backward
pass, whatever ``C`` is.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from quivers.errors import QuiversTypeError, ShapeError

__all__ = [
    "potential_and_grad",
    "kinetic_energy",
    "energy",
    "sample_momentum",
    "leapfrog",
    "finite_or_inf",
    "sharp",
    "scaled",
    "momentum_factor",
]

Potential = Callable[[Tensor], Tensor]


def potential_and_grad(potential: Potential, z: Tensor) -> tuple[Tensor, Tensor]:
    """Evaluate ``potential`` on the batch ``z`` and its gradient, detached.

    Examples
    --------
    >>> u, g = potential_and_grad(lambda z: 0.5 * (z**2).sum(-1), torch.tensor([[1.0, 2.0]]))
    >>> u, g
    (tensor([2.5000]), tensor([[1., 2.]]))

    A potential that carries its own ``value_and_grad`` (a
    :class:`~quivers.inference.mcmc.compiled.CompiledPotential`) is called
    through it.
    """
    value_and_grad = getattr(potential, "value_and_grad", None)
    if value_and_grad is not None:
        return value_and_grad(z)
    with torch.enable_grad():
        zg = z.detach().requires_grad_(True)
        u = potential(zg)
        if not isinstance(u, Tensor):
            raise QuiversTypeError(
                f"the potential returned {type(u).__name__}; expected a tensor of shape "
                f"({z.shape[0]},), one negative log density per chain"
            )
        if u.shape != z.shape[:1]:
            raise ShapeError(
                f"the potential returned shape {tuple(u.shape)} for a batch of {z.shape[0]} "
                f"chains; expected ({z.shape[0]},)",
                hint="sum over the coordinates (the last axis) but keep the chain axis",
            )
        if u.requires_grad:
            # rows do not interact, so the gradient of each row's potential is
            # one backward pass seeded with ones (no sum node to build and undo)
            (g,) = torch.autograd.grad(u, zg, torch.ones_like(u), allow_unused=True)
            if g is None:
                g = torch.zeros_like(z)
        else:
            g = torch.zeros_like(z)
    u = u.detach()
    return (u if u.dtype == z.dtype else u.to(z.dtype)), g


def finite_or_inf(h: Tensor) -> Tensor:
    """Replace NaN and ``-inf`` energies by ``+inf``, the energy of an
    impossible point, so that a bad evaluation reads as a divergence.

    Examples
    --------
    >>> finite_or_inf(torch.tensor([1.0, float("nan"), -float("inf")]))
    tensor([1., inf, inf])
    """
    # NaN > -inf is false too: three recorded operations, where
    # nan_to_num's decomposition is nine
    return torch.where(h > -torch.inf, h, torch.inf)


def sharp(p: Tensor, inv_mass: Tensor) -> Tensor:
    """``M^{-1} p`` per chain (the velocity), for a diagonal ``(C, D)`` or
    dense ``(C, D, D)`` inverse mass matrix.

    Examples
    --------
    >>> p = torch.tensor([[1.0, 2.0]])
    >>> sharp(p, torch.tensor([[1.0, 0.5]]))
    tensor([[1., 1.]])
    >>> sharp(p, torch.tensor([[[1.0, 0.0], [0.0, 0.5]]]))
    tensor([[1., 1.]])
    """
    if inv_mass.dim() == 2:
        return inv_mass * p
    return torch.matmul(inv_mass, p.unsqueeze(-1)).squeeze(-1)


def scaled(inv_mass: Tensor, step: Tensor) -> Tensor:
    """The inverse mass matrix of each chain times its step ``(C, 1)``: the
    ``drift`` of :func:`leapfrog`.

    Examples
    --------
    >>> scaled(torch.ones(2, 3, 3), torch.tensor([[0.5], [2.0]]))[:, 0, 0]
    tensor([0.5000, 2.0000])
    """
    return step * inv_mass if inv_mass.dim() == 2 else step.unsqueeze(-1) * inv_mass


def momentum_factor(inv_mass: Tensor) -> Tensor:
    """A factor ``S`` of the mass matrix ``M = S S^T`` for drawing momenta:
    ``1 / sqrt`` of a diagonal, and for a dense ``A = M^{-1} = L L^T``
    (Cholesky) ``S = L^{-T}``, so that ``S S^T = (L L^T)^{-1} = M``.

    Examples
    --------
    >>> momentum_factor(torch.tensor([[4.0, 0.25]]))
    tensor([[0.5000, 2.0000]])
    >>> a = torch.tensor([[[2.0, 0.5], [0.5, 1.0]]], dtype=torch.float64)
    >>> s = momentum_factor(a)
    >>> torch.allclose(s @ s.mT, torch.linalg.inv(a))
    True
    """
    if inv_mass.dim() == 2:
        return inv_mass.rsqrt()
    chol = torch.linalg.cholesky(inv_mass)
    eye = torch.eye(inv_mass.shape[-1], dtype=inv_mass.dtype, device=inv_mass.device).expand_as(inv_mass)
    return torch.linalg.solve_triangular(chol.mT, eye, upper=True)


def kinetic_energy(p: Tensor, inv_mass: Tensor) -> Tensor:
    """``p^T M^{-1} p / 2`` per chain.

    Examples
    --------
    >>> kinetic_energy(torch.tensor([[1.0, 2.0]]), torch.tensor([[1.0, 0.5]]))
    tensor([1.5000])
    """
    return 0.5 * torch.linalg.vecdot(p, sharp(p, inv_mass))


def energy(u: Tensor, p: Tensor, inv_mass: Tensor) -> Tensor:
    """``U + p^T M^{-1} p / 2`` per chain, the potential ``u`` plus
    :func:`kinetic_energy`, in one operation fewer: halving is exact, so
    adding half the dot product rounds once, as adding the kinetic energy
    does, and the values are the same.

    Examples
    --------
    >>> energy(torch.tensor([0.25]), torch.tensor([[1.0, 2.0]]), torch.tensor([[1.0, 0.5]]))
    tensor([1.7500])
    """
    return torch.add(u, torch.linalg.vecdot(p, sharp(p, inv_mass)), alpha=0.5)


def sample_momentum(mass_sqrt: Tensor, generator: torch.Generator) -> Tensor:
    """Draw ``p ~ N(0, M)`` per chain, given the factor ``S`` of
    :func:`momentum_factor`: ``(C, D)`` for a diagonal metric, ``(C, D, D)``
    for a dense one.

    Examples
    --------
    >>> p = sample_momentum(torch.full((2, 3), 2.0), torch.Generator().manual_seed(0))
    >>> p.shape
    torch.Size([2, 3])
    """
    noise = torch.randn(
        mass_sqrt.shape[:2], generator=generator, dtype=mass_sqrt.dtype, device=mass_sqrt.device
    )
    if mass_sqrt.dim() == 2:
        return noise * mass_sqrt
    return torch.matmul(mass_sqrt, noise.unsqueeze(-1)).squeeze(-1)


def leapfrog(
    z: Tensor,
    p: Tensor,
    grad: Tensor,
    half_step: Tensor,
    drift: Tensor,
    potential: Potential,
    *,
    valid: Tensor | None = None,
    fallback: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """One leapfrog step of every chain; returns ``(z, p, potential, grad)``.

    ``half_step`` is half the signed step size, shape ``(C, 1)``; ``drift``
    is the signed step size times the inverse mass (:func:`scaled`), shape
    ``(C, D)`` or, for a dense metric, ``(C, D, D)``. Both
    stay fixed along a trajectory, so callers compute them once. Where
    ``valid`` (shape ``(C,)``) is False the potential is evaluated at
    ``fallback`` instead of the new position: chains already known to have
    diverged can hold NaN momenta, and the potential should only ever see
    finite points. Their results are garbage that the caller masks out.

    Examples
    --------
    >>> U = lambda z: 0.5 * (z**2).sum(-1)
    >>> z0, p0 = torch.tensor([[1.0]]), torch.tensor([[0.5]])
    >>> _, g0 = potential_and_grad(U, z0)
    >>> half, drift = torch.tensor([[0.05]]), torch.tensor([[0.1]])
    >>> z1, p1, _, g1 = leapfrog(z0, p0, g0, half, drift, U)
    >>> z2, p2, _, _ = leapfrog(z1, -p1, g1, half, drift, U)
    >>> torch.allclose(z2, z0), torch.allclose(-p2, p0)
    (True, True)
    """
    p = torch.addcmul(p, half_step, grad, value=-1.0)
    if drift.dim() == 2:
        z = torch.addcmul(z, drift, p)
    else:
        z = torch.baddbmm(z.unsqueeze(-1), drift, p.unsqueeze(-1)).squeeze(-1)
    if valid is not None:
        z = torch.where(valid.unsqueeze(-1), z, fallback)
    u, grad = potential_and_grad(potential, z)
    p = torch.addcmul(p, half_step, grad, value=-1.0)
    return z, p, u, grad
