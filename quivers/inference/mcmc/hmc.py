"""Static Hamiltonian Monte Carlo: a fixed number of leapfrog steps, then
a Metropolis correction, for every chain of the batch at once.

Law: the Metropolis correction makes the target distribution invariant for
any step size and number of steps; those only change how fast chains mix.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from quivers.errors import InvalidValueError
from quivers.inference.mcmc.hamiltonian import energy, finite_or_inf, leapfrog, sample_momentum, scaled
from quivers.inference.mcmc.init import InitStrategy
from quivers.inference.mcmc.kernel import ChainState, HamiltonianKernel, _positive

__all__ = ["HMC"]


class HMC(HamiltonianKernel):
    """Hamiltonian Monte Carlo with ``num_steps`` leapfrog steps per iteration.

    Parameters are those of :class:`~quivers.inference.mcmc.kernel.HamiltonianKernel`,
    and:

    num_steps
        The number of leapfrog steps of each trajectory.
    step_size_jitter
        Each iteration, every chain's step size is multiplied by a uniform
        draw from ``[1 - jitter, 1 + jitter]`` (Stan's ``stepsize_jitter``,
        in ``[0, 1)``). A fixed trajectory length can resonate with the
        target: on a standard normal, ``num_steps * step_size`` near a
        multiple of ``pi`` brings chains back where they started. Jitter
        breaks that.

    Examples
    --------
    >>> from quivers.inference.mcmc import MCMC
    >>> kernel = HMC(potential_fn=lambda z: 0.5 * (z**2).sum(-1), dim=2, num_steps=5)
    >>> mcmc = MCMC(kernel, num_warmup=50, num_samples=20, num_chains=3, seed=0,
    ...             progress_bar=False)
    >>> mcmc.run()
    >>> mcmc.get_samples()["z"].shape
    torch.Size([60, 2])
    >>> sorted(mcmc.get_sample_stats())
    ['accept_prob', 'diverging', 'energy', 'lp', 'n_steps', 'step_size']
    """

    stat_names = ("accept_prob", "diverging", "energy", "lp", "n_steps", "step_size")

    def __init__(
        self,
        model: Any = None,
        potential_fn: Callable[..., Tensor] | None = None,
        *,
        step_size: float = 1.0,
        num_steps: int = 10,
        step_size_jitter: float = 0.0,
        adapt_step_size: bool = True,
        adapt_mass_matrix: bool = True,
        target_accept: float = 0.8,
        inverse_mass_matrix: Tensor | None = None,
        max_energy_error: float = 1000.0,
        initial_params: Tensor | None = None,
        dim: int | None = None,
        dense_mass: bool = False,
        init_strategy: InitStrategy | None = None,
        jit_compile: bool = False,
    ) -> None:
        _positive("num_steps", num_steps, integer=True)
        if isinstance(step_size_jitter, bool) or not isinstance(step_size_jitter, (int, float)) or not (
            0.0 <= step_size_jitter < 1.0
        ):
            raise InvalidValueError(
                f"`step_size_jitter` must lie in [0, 1), got {step_size_jitter!r}"
            )
        super().__init__(
            model,
            potential_fn,
            step_size=step_size,
            adapt_step_size=adapt_step_size,
            adapt_mass_matrix=adapt_mass_matrix,
            target_accept=target_accept,
            inverse_mass_matrix=inverse_mass_matrix,
            max_energy_error=max_energy_error,
            initial_params=initial_params,
            dim=dim,
            dense_mass=dense_mass,
            init_strategy=init_strategy,
            jit_compile=jit_compile,
        )
        self.num_steps = num_steps
        self.step_size_jitter = float(step_size_jitter)

    def transition(self, state: ChainState) -> tuple[ChainState, dict[str, Tensor]]:
        """One trajectory of ``num_steps`` leapfrog steps per chain and its correction."""
        z0, u0, g0 = state
        inv_mass = self.inverse_mass_matrix
        step_size = self.step_size
        if self.step_size_jitter:
            u = torch.rand(u0.shape, generator=self.generator, dtype=u0.dtype, device=u0.device)
            step_size = step_size * (1.0 + self.step_size_jitter * (2.0 * u - 1.0))
        step = step_size.unsqueeze(-1)
        half, drift = 0.5 * step, scaled(inv_mass, step)
        p = sample_momentum(self.mass_sqrt, self.generator)
        h0 = energy(u0, p, inv_mass)
        z, u, g = z0, u0, g0
        finite = torch.ones_like(u0, dtype=torch.bool)
        for _ in range(self.num_steps):
            z, p, u, g = leapfrog(z, p, g, half, drift, self._potential, valid=finite, fallback=z0)
            # Once a chain leaves the finite region its momenta are garbage:
            # it has diverged, and the potential must not see its positions.
            finite = finite & torch.isfinite(u) & torch.isfinite(g).all(-1)
        h = finite_or_inf(torch.where(finite, energy(u, p, inv_mass), torch.inf))
        log_accept = (h0 - h).clamp(max=0.0)
        accept_prob = torch.exp(log_accept)
        uniform = torch.rand(u0.shape, generator=self.generator, dtype=u0.dtype, device=u0.device)
        accept = torch.log(uniform) < log_accept
        keep = accept.unsqueeze(-1)
        new = ChainState(
            torch.where(keep, z, z0), torch.where(accept, u, u0), torch.where(keep, g, g0)
        )
        stats = {
            "accept_prob": accept_prob,
            "diverging": (h - h0) > self.max_energy_error,
            "energy": torch.where(accept, h, h0),
            "lp": -new.potential,
            "n_steps": torch.full_like(u0, self.num_steps, dtype=torch.long),
            "step_size": step_size,
        }
        return new, stats
