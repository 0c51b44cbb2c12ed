"""Warmup adaptation of the step size and the mass matrix, as Stan does it.

Every quantity is per chain: chains adapt independently, as Stan's do, but
in one batch.

- :class:`DualAveraging`: Nesterov dual averaging of ``log(step_size)``
  towards a target acceptance statistic (Hoffman & Gelman 2014, Stan's
  constants ``gamma=0.05, t0=10, kappa=0.75, mu=log(10 * eps0)``).
- :class:`WelfordDiagonal`: running per-coordinate variance of the draws,
  with Stan's shrinkage towards ``1e-3``; :class:`WelfordCovariance`: the
  running covariance for a dense metric, shrunk as Stan does,
  ``(n / (n + 5)) cov + 1e-3 (5 / (n + 5)) I``.
- :class:`WarmupSchedule`: Stan's windows: an initial buffer (75), slow
  windows doubling from 25, a terminal buffer (50), scaled down to 15% /
  75% / 10% of a warmup too short for them.
- :func:`find_reasonable_step_size`: Stan's heuristic, doubling or halving
  the step size until one leapfrog step's acceptance crosses 0.8.

Laws: the windows of a schedule are disjoint, consecutive, start at the end
of the initial buffer and end where the terminal buffer begins; dual
averaging fed an acceptance equal to its target leaves ``log(eps)`` at
``mu``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from quivers.errors import InvalidValueError
from quivers.inference.mcmc.hamiltonian import (
    Potential,
    energy,
    finite_or_inf,
    leapfrog,
    momentum_factor,
    sample_momentum,
    scaled,
)

__all__ = [
    "DualAveraging",
    "WelfordDiagonal",
    "WelfordCovariance",
    "WarmupSchedule",
    "find_reasonable_step_size",
]


class DualAveraging:
    """Dual averaging of ``log(step_size)`` for a batch of chains.

    Parameters
    ----------
    step_size
        The initial step size of each chain, shape ``(C,)``; ``mu`` is
        ``log(10 * step_size)``.
    target_accept
        The acceptance statistic aimed at (``delta``).

    Examples
    --------
    >>> da = DualAveraging(torch.tensor([1.0, 1.0]), target_accept=0.8)
    >>> for _ in range(200):
    ...     eps = da.update(torch.tensor([1.0, 0.0]))
    >>> bool(eps[0] > 1.0 > eps[1])
    True
    """

    def __init__(
        self,
        step_size: Tensor,
        target_accept: float = 0.8,
        *,
        gamma: float = 0.05,
        t0: float = 10.0,
        kappa: float = 0.75,
    ) -> None:
        self.target_accept = target_accept
        self.gamma, self.t0, self.kappa = gamma, t0, kappa
        self.restart(step_size)

    def restart(self, step_size: Tensor) -> None:
        """Forget the history and centre the averaging on ``log(10 * step_size)``."""
        self.mu = torch.log(10.0 * step_size)
        self.step_size = step_size
        self.count = 0
        self.s_bar = torch.zeros_like(step_size)
        self.x_bar = torch.zeros_like(step_size)

    def update(self, accept_prob: Tensor) -> Tensor:
        """Feed one acceptance statistic per chain; return the next step sizes."""
        accept_prob = torch.nan_to_num(accept_prob, nan=0.0).clamp(max=1.0)
        self.count += 1
        eta = 1.0 / (self.count + self.t0)
        self.s_bar = (1.0 - eta) * self.s_bar + eta * (self.target_accept - accept_prob)
        x = self.mu - self.s_bar * (math.sqrt(self.count) / self.gamma)
        x_eta = self.count ** (-self.kappa)
        self.x_bar = (1.0 - x_eta) * self.x_bar + x_eta * x
        self.step_size = torch.exp(x)
        return self.step_size

    def final(self) -> Tensor:
        """The averaged step sizes, used after warmup."""
        if self.count == 0:
            return self.step_size
        return torch.exp(self.x_bar)


class WelfordDiagonal:
    """Welford's running mean and variance, per chain and coordinate.

    Examples
    --------
    >>> w = WelfordDiagonal()
    >>> for x in ([[0.0]], [[1.0]], [[2.0]]):
    ...     w.update(torch.tensor(x))
    >>> w.variance(regularize=False)
    tensor([[1.]])
    >>> w.variance()  # Stan: (n / (n + 5)) var + 1e-3 (5 / (n + 5))
    tensor([[0.3756]])
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget every sample."""
        self.count = 0
        self.mean: Tensor | None = None
        self.m2: Tensor | None = None

    def update(self, x: Tensor) -> None:
        """Add one sample per chain, ``x`` of shape ``(C, D)``."""
        self.count += 1
        if self.mean is None:
            self.mean = x.clone()
            self.m2 = torch.zeros_like(x)
            return
        delta = x - self.mean
        self.mean += delta / self.count
        self.m2 += delta * (x - self.mean)

    def variance(self, regularize: bool = True) -> Tensor:
        """The sample variance, shrunk towards ``1e-3`` as Stan does when
        ``regularize``."""
        if self.count < 2:
            raise InvalidValueError(
                f"a variance needs at least 2 samples, got {self.count}"
            )
        n = self.count
        var = self.m2 / (n - 1)
        if regularize:
            var = (n / (n + 5.0)) * var + 1e-3 * (5.0 / (n + 5.0))
        return var


class WelfordCovariance(WelfordDiagonal):
    """Welford's running mean and covariance, per chain: the estimate of a
    dense metric (Stan's ``welford_covar_estimator``).

    Examples
    --------
    >>> w = WelfordCovariance()
    >>> for x in ([[0.0, 0.0]], [[1.0, 2.0]], [[2.0, 4.0]]):
    ...     w.update(torch.tensor(x))
    >>> w.variance(regularize=False)
    tensor([[[1., 2.],
             [2., 4.]]])
    >>> w.variance()[0, 0]  # Stan: (n / (n + 5)) cov + 1e-3 (5 / (n + 5)) I
    tensor([0.3756, 0.7500])
    """

    def update(self, x: Tensor) -> None:
        """Add one sample per chain, ``x`` of shape ``(C, D)``."""
        self.count += 1
        if self.mean is None:
            self.mean = x.clone()
            self.m2 = x.new_zeros(x.shape + x.shape[-1:])
            return
        delta = x - self.mean
        self.mean += delta / self.count
        self.m2 += delta.unsqueeze(-1) * (x - self.mean).unsqueeze(-2)

    def variance(self, regularize: bool = True) -> Tensor:
        """The sample covariance ``(C, D, D)``, shrunk towards ``1e-3 I`` as
        Stan does when ``regularize``."""
        cov = super().variance(regularize=False)
        cov = 0.5 * (cov + cov.mT)  # exactly symmetric, for the Cholesky factor
        if regularize:
            n = self.count
            eye = torch.eye(cov.shape[-1], dtype=cov.dtype, device=cov.device)
            cov = (n / (n + 5.0)) * cov + (1e-3 * (5.0 / (n + 5.0))) * eye
        return cov


@dataclass(frozen=True)
class WarmupSchedule:
    """Stan's windowed warmup schedule for ``num_warmup`` iterations.

    Iterations are numbered from 0. Draws of iterations inside a window feed
    the variance estimate; at each window's last iteration the mass matrix
    is updated. Every window holds at least ``base_window`` draws.

    Examples
    --------
    >>> s = WarmupSchedule.stan(1000)
    >>> s.window_ends
    (99, 149, 249, 449, 949)
    >>> WarmupSchedule.stan(100).window_ends  # 15 / 75 / 10 split
    (89,)
    >>> WarmupSchedule.stan(10).window_ends  # too short to estimate anything
    ()
    """

    num_warmup: int
    init_buffer: int
    term_buffer: int
    base_window: int
    window_ends: tuple[int, ...]

    @classmethod
    def stan(
        cls,
        num_warmup: int,
        init_buffer: int = 75,
        term_buffer: int = 50,
        base_window: int = 25,
    ) -> WarmupSchedule:
        """The schedule Stan's ``windowed_adaptation`` would follow."""
        if num_warmup < 20:
            return cls(num_warmup, num_warmup, 0, 0, ())
        if init_buffer + base_window + term_buffer > num_warmup:
            init_buffer = int(0.15 * num_warmup)
            term_buffer = int(0.1 * num_warmup)
            base_window = num_warmup - (init_buffer + term_buffer)
        last = num_warmup - term_buffer - 1
        size = base_window
        end = init_buffer + size - 1
        ends = []
        while True:
            # A window whose successor (twice its size) would not fit absorbs
            # the rest. Stan skips this look-ahead for the first window, which
            # can leave a last window of a single draw (151 iterations: the
            # first window ends at 99, the last at 100); here it applies to all.
            if end + 2 * size >= num_warmup - term_buffer:
                end = last
            ends.append(end)
            if end == last:
                break
            size *= 2
            end += size
        return cls(num_warmup, init_buffer, term_buffer, base_window, tuple(ends))

    def in_window(self, iteration: int) -> bool:
        """Whether the draw of ``iteration`` feeds the variance estimate."""
        return self.init_buffer <= iteration < self.num_warmup - self.term_buffer


def find_reasonable_step_size(
    z: Tensor,
    potential_value: Tensor,
    grad: Tensor,
    step_size: Tensor,
    inv_mass: Tensor,
    potential: Potential,
    generator: torch.Generator,
    *,
    max_halvings: int = 100,
    acceptance: Callable[[Tensor, Tensor], Tensor] | None = None,
) -> Tensor:
    """Stan's ``init_stepsize``, for each chain at once.

    From the current point, one leapfrog step with fresh momentum is taken;
    if its acceptance ``min(1, exp(-dH))`` exceeds 0.8 the step size
    doubles until it does not, otherwise it halves until it does.
    ``inv_mass`` is diagonal ``(C, D)`` or dense ``(C, D, D)``.
    ``acceptance``, where given, takes that step instead of the eager
    leapfrog here (a sampler's compiled step, say): it maps the momenta
    ``(C, D)`` and step sizes ``(C,)`` to each chain's acceptance.

    Examples
    --------
    >>> U = lambda z: 0.5 * (z**2).sum(-1) / 0.01  # sd 0.1: needs small steps
    >>> z = torch.ones(2, 3) * 0.1
    >>> eps = find_reasonable_step_size(z, U(z), z / 0.01, torch.ones(2), torch.ones(2, 3),
    ...                                 U, torch.Generator().manual_seed(0))
    >>> bool((eps < 0.5).all())
    True
    """
    mass_sqrt = momentum_factor(inv_mass)
    threshold = 0.8

    def one_step(p: Tensor, eps: Tensor) -> Tensor:
        h0 = energy(potential_value, p, inv_mass)
        step = eps.unsqueeze(-1)
        _, p1, u1, _ = leapfrog(z, p, grad, 0.5 * step, scaled(inv_mass, step), potential)
        return (h0 - finite_or_inf(energy(u1, p1, inv_mass))).clamp(max=0.0).exp()

    step_acceptance = one_step if acceptance is None else acceptance

    def accept(eps: Tensor) -> Tensor:
        return step_acceptance(sample_momentum(mass_sqrt, generator), eps)

    eps = step_size.clone()
    grow = accept(eps) > threshold
    done = torch.zeros_like(grow)
    for _ in range(max_halvings):
        a = accept(eps)
        done = done | torch.where(grow, a <= threshold, a >= threshold)
        if bool(done.all()):
            return eps
        eps = torch.where(done, eps, torch.where(grow, 2.0 * eps, 0.5 * eps))
        if bool((eps > 1e7).any()):
            raise InvalidValueError(
                "the step size grew past 1e7 while searching for one: the posterior looks "
                "improper (flat in some direction)",
                hint="check that every parameter has a proper prior",
            )
    raise InvalidValueError(
        f"no usable step size after {max_halvings} halvings: the potential is not finite "
        "or not smooth around the initial point of chains "
        f"{torch.nonzero(~done).flatten().tolist()}"
    )
