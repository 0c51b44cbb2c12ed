"""The part of every Hamiltonian kernel that is not its trajectory.

:class:`HamiltonianKernel` holds the model adaptor, starts the chains
(retrying non-finite starting points as Stan does), keeps the per-chain step
sizes and inverse mass matrices (diagonal, or dense with ``dense_mass=True``),
and runs Stan's warmup: dual averaging of the step size every iteration
and, at the end of each slow window, a new mass matrix (the regularized
variances or covariance of the window's draws) followed by a fresh
step-size search. Subclasses
(:class:`~quivers.inference.mcmc.hmc.HMC`,
:class:`~quivers.inference.mcmc.nuts.NUTS`) only implement
:meth:`HamiltonianKernel.transition`.

The driver (:class:`~quivers.inference.mcmc.mcmc.MCMC`) calls, in order:
``setup`` once, then per iteration ``transition`` and, during warmup,
``adapt``; then ``end_warmup`` once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch import Tensor

from quivers.errors import InvalidValueError, QuiversTypeError, ShapeError
from quivers.inference.mcmc.adaptation import (
    DualAveraging,
    WarmupSchedule,
    WelfordCovariance,
    WelfordDiagonal,
    find_reasonable_step_size,
)
from quivers.inference.mcmc.adaptor import ModelAdaptor, resolve_adaptor
from quivers.inference.mcmc.compiled import compile_potential
from quivers.inference.mcmc.hamiltonian import momentum_factor, potential_and_grad
from quivers.inference.mcmc.init import InitStrategy

__all__ = ["ChainState", "HamiltonianKernel"]

_MAX_INIT_ATTEMPTS = 100


class ChainState(NamedTuple):
    """Where the chains are: positions ``(C, D)``, potentials ``(C,)``, gradients ``(C, D)``.

    Examples
    --------
    >>> state = ChainState(torch.zeros(2, 3), torch.zeros(2), torch.zeros(2, 3))
    >>> state.z.shape, state.potential.shape
    (torch.Size([2, 3]), torch.Size([2]))
    """

    z: Tensor
    potential: Tensor
    grad: Tensor


def _positive(name: str, value: Any, *, integer: bool = False) -> None:
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or not value > 0:
        what = "a positive integer" if integer else "a positive number"
        raise InvalidValueError(f"`{name}` must be {what}, got {value!r}")


class HamiltonianKernel:
    """Base of the Hamiltonian Monte Carlo kernels; see :class:`~quivers.inference.mcmc.nuts.NUTS`.

    Parameters
    ----------
    model
        Any object implementing :class:`~quivers.inference.mcmc.adaptor.ModelAdaptor`
        (or convertible by ``as_model_adaptor``).
    potential_fn
        A plain potential ``f(z (C, D), *args, **kwargs) -> (C,)`` instead of
        ``model``; then ``dim`` or ``initial_params`` says where to start.
    step_size
        The initial step size (the search for a reasonable one starts there
        when ``adapt_step_size``), or one per chain ``(C,)``.
    adapt_step_size, adapt_mass_matrix
        Which parts of Stan's warmup to run.
    target_accept
        The mean acceptance statistic dual averaging aims at.
    inverse_mass_matrix
        The initial inverse mass matrix: its diagonal, ``(D,)`` or
        ``(C, D)``, or with ``dense_mass`` the matrix ``(D, D)``; a dense
        one per chain ``(C, D, D)`` either way. The identity by default.
    max_energy_error
        A trajectory whose energy rises by more than this has diverged.
    dense_mass
        Adapt a dense inverse mass matrix (the regularized covariance of
        each slow window's draws, Stan's ``dense_e``) instead of its
        diagonal: better on correlated posteriors, ``O(D^2)`` per step.
    init_strategy
        Where chains start (:mod:`quivers.inference.mcmc.init`): by default
        the model adaptor's own choice (Stan's uniform in ``(-2, 2)``).
    jit_compile
        Record the potential and its gradient once, at the run's first
        point, and compile them with ``torch.compile``
        (:mod:`quivers.inference.mcmc.compiled`): each leapfrog step is then
        one call of fused code instead of every operation of the model
        dispatched from Python. Compiling takes seconds, so it pays on long
        runs; the draws agree with the eager run's up to rounding, not bit
        for bit. A potential that cannot be compiled runs eagerly, with a
        :class:`~quivers.inference.mcmc.compiled.CompileWarning`.

    Examples
    --------
    Driving a kernel by hand, as :class:`~quivers.inference.mcmc.mcmc.MCMC` does:

    >>> from quivers.inference.mcmc import NUTS
    >>> kernel = NUTS(potential_fn=lambda z: 0.5 * (z**2).sum(-1), dim=2)
    >>> state = kernel.setup(num_chains=3, num_warmup=10, generator=torch.Generator().manual_seed(0))
    >>> with torch.no_grad():
    ...     for i in range(10):
    ...         state, stats = kernel.transition(state)
    ...         kernel.adapt(i, state, stats)
    >>> kernel.end_warmup()
    >>> state.z.shape, kernel.step_size.shape, sorted(stats)[:3]
    (torch.Size([3, 2]), torch.Size([3]), ['accept_prob', 'diverging', 'energy'])
    """

    stat_names: tuple[str, ...] = ()
    #: the ``torch.compile`` backend of ``jit_compile``; ``"eager"`` replays
    #: the recorded graph without generating code (how tests check a recording)
    jit_backend: str = "inductor"

    def __init__(
        self,
        model: Any = None,
        potential_fn: Callable[..., Tensor] | None = None,
        *,
        step_size: float | Tensor = 1.0,
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
        if not isinstance(jit_compile, bool):
            raise QuiversTypeError(f"`jit_compile` must be True or False, got {jit_compile!r}")
        if init_strategy is not None and not callable(init_strategy):
            raise QuiversTypeError(
                f"`init_strategy` must be a strategy such as `init_to_median()`, got {type(init_strategy).__name__}"
            )
        if isinstance(step_size, Tensor):  # one per chain, as a run's adaptation left them
            if step_size.dim() != 1 or not bool((step_size > 0).all() & torch.isfinite(step_size).all()):
                raise InvalidValueError(
                    f"a tensor `step_size` must hold one positive step size per chain, got {step_size!r}"
                )
        else:
            _positive("step_size", step_size)
        _positive("max_energy_error", max_energy_error)
        if isinstance(target_accept, bool) or not isinstance(target_accept, (int, float)) or not (
            0.0 < target_accept < 1.0
        ):
            raise InvalidValueError(
                f"`target_accept` must lie strictly between 0 and 1, got {target_accept!r}"
            )
        self.adaptor: ModelAdaptor = resolve_adaptor(
            model, potential_fn, dim=dim, initial_params=initial_params
        )
        self.initial_step_size = step_size.detach().clone() if isinstance(step_size, Tensor) else float(step_size)
        self.adapt_step_size = bool(adapt_step_size)
        self.adapt_mass_matrix = bool(adapt_mass_matrix)
        self.target_accept = float(target_accept)
        self.initial_inverse_mass_matrix = inverse_mass_matrix
        self.max_energy_error = float(max_energy_error)
        self.dense_mass = bool(dense_mass)
        self.init_strategy = init_strategy
        self.jit_compile = jit_compile
        #: seconds the last :meth:`setup` spent recording, compiling and
        #: checking the compiled code at the first point (0 without
        #: ``jit_compile``): the part of a run's wall time that a rerun
        #: with inductor's on-disk cache shortens
        self.compile_seconds = 0.0
        self.step_size: Tensor | None = None
        self.inverse_mass_matrix: Tensor | None = None

    # -- the potential -------------------------------------------------------------

    def potential_and_grad(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """The potential of each chain at ``z`` and its gradient, in one batched call."""
        return potential_and_grad(self._potential, z)

    # -- setup ---------------------------------------------------------------------

    def setup(
        self,
        num_chains: int,
        num_warmup: int,
        generator: torch.Generator,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> ChainState:
        """Start ``num_chains`` chains; ``generator`` is the run's CPU generator."""
        kwargs = kwargs or {}
        adaptor = self.adaptor
        bind = getattr(adaptor, "bind", None)  # optional: lets an adaptor follow the run's data
        if bind is not None:
            bind(*args, **kwargs)
        plan = getattr(adaptor, "potential_for", None)  # optional: the data checked once per run
        if plan is not None:
            self._potential = plan(*args, **kwargs)
        else:
            self._potential = lambda z: adaptor.potential(z, *args, **kwargs)
        self._args = (args, kwargs)
        z = self._initial_points(num_chains, generator)
        # Momenta and uniforms are drawn where the chains live; seeding this
        # generator from the run's keeps a seed reproducible on any device.
        self.generator = torch.Generator(device=z.device)
        self.generator.manual_seed(int(torch.randint(2**62, (1,), generator=generator)))
        u, g = self.potential_and_grad(z)
        bad = ~(torch.isfinite(u) & torch.isfinite(g).all(-1))
        for _ in range(_MAX_INIT_ATTEMPTS - 1):
            if not bool(bad.any()):
                break
            fresh = self._initial_points(num_chains, generator)
            z = torch.where(bad.unsqueeze(-1), fresh, z)
            u, g = self.potential_and_grad(z)
            bad = ~(torch.isfinite(u) & torch.isfinite(g).all(-1))
        if bool(bad.any()):
            chains = torch.nonzero(bad).flatten().tolist()
            explain = getattr(adaptor, "explain", None)
            first = chains[0]
            if explain is not None and bool(torch.isfinite(u[first])):  # the density is finite, its gradient not
                err = explain(z[first : first + 1], *args, **kwargs)
                if err is not None:
                    raise err
            raise InvalidValueError(
                f"the potential or its gradient is not finite at the initial point of chains "
                f"{chains} (potential {u[bad].tolist()}) after {_MAX_INIT_ATTEMPTS} attempts",
                hint="start inside the support, e.g. with `initial_params` where the density is positive",
            )
        if isinstance(self.initial_step_size, Tensor):
            if self.initial_step_size.shape != (num_chains,):
                raise ShapeError(
                    f"`step_size` holds {self.initial_step_size.shape[0]} step sizes; the run has {num_chains} chains"
                )
            self.step_size = self.initial_step_size.to(dtype=z.dtype, device=z.device)
        else:
            self.step_size = torch.full((num_chains,), self.initial_step_size, dtype=z.dtype, device=z.device)
        self.inverse_mass_matrix = self._initial_inverse_mass(z)
        self._mass_changed()
        state = ChainState(z, u, g)
        self.compile_seconds = 0.0
        if self.jit_compile:
            start = time.perf_counter()
            self._compile(state)
            self.compile_seconds = time.perf_counter() - start
        if self.adapt_step_size:
            self.step_size = self._find_step_size(state)
        self._schedule = WarmupSchedule.stan(num_warmup)
        self._welford = WelfordCovariance() if self.inverse_mass_matrix.dim() == 3 else WelfordDiagonal()
        self._dual = DualAveraging(self.step_size, self.target_accept)
        return state

    def _initial_points(self, num_chains: int, generator: torch.Generator) -> Tensor:
        if self.init_strategy is not None:
            args, kwargs = self._args
            z = self.init_strategy(self.adaptor, num_chains, generator, args, kwargs)
        else:
            z = self.adaptor.init_unconstrained(num_chains, generator)
        if not isinstance(z, Tensor):
            raise QuiversTypeError(
                f"`init_unconstrained` returned {type(z).__name__}; expected a tensor"
            )
        if z.dim() != 2 or z.shape[0] != num_chains or z.shape[1] == 0:
            raise ShapeError(
                f"the initial points have shape {tuple(z.shape)}; expected "
                f"({num_chains}, D) with D >= 1, one row per chain"
            )
        if not z.is_floating_point():
            z = z.to(torch.get_default_dtype())
        return z.detach()

    def _initial_inverse_mass(self, z: Tensor) -> Tensor:
        init = self.initial_inverse_mass_matrix
        (c, d), dense = z.shape, self.dense_mass
        if init is None:
            if dense:
                return torch.eye(d, dtype=z.dtype, device=z.device).expand(c, d, d).clone()
            return torch.ones_like(z)
        init = torch.as_tensor(init, dtype=z.dtype, device=z.device)
        if init.shape == (c, d, d) or (dense and init.shape == (d, d)):  # a dense matrix
            if not bool(torch.isfinite(init).all() and torch.equal(init, init.mT)) or bool(
                torch.linalg.cholesky_ex(init).info.any()
            ):
                raise InvalidValueError("a dense `inverse_mass_matrix` must be finite, symmetric and positive definite")
            return init.expand(c, d, d).clone()
        diagonal = ((d,), (c, d)) if not dense else ((d,),)
        if init.shape not in diagonal:
            expected = f"({d},) or ({c}, {d})" if not dense else f"the diagonal ({d},) or the matrix ({d}, {d})"
            raise ShapeError(
                f"`inverse_mass_matrix` has shape {tuple(init.shape)}; expected {expected}, "
                f"or one matrix per chain ({c}, {d}, {d})"
            )
        if not bool((init > 0).all() & torch.isfinite(init).all()):
            raise InvalidValueError("`inverse_mass_matrix` must be finite and positive")
        init = init.expand_as(z)
        return torch.diag_embed(init) if dense else init.clone()

    @property
    def compiled(self) -> bool:
        """Whether the run set up last calls compiled code (``jit_compile``
        and nothing made it fall back to the eager code)."""
        return bool(getattr(getattr(self, "_potential", None), "compiled", False))

    def _compile(self, state: ChainState) -> None:
        """With ``jit_compile``: compile what a transition calls most, here
        the potential and its gradient (a kernel may compile more of its
        step)."""
        self._potential = compile_potential(self._potential, state.z, backend=self.jit_backend)

    def _mass_changed(self) -> None:
        self.mass_sqrt = momentum_factor(self.inverse_mass_matrix)

    def _find_step_size(self, state: ChainState) -> Tensor:
        return find_reasonable_step_size(
            state.z,
            state.potential,
            state.grad,
            self.step_size,
            self.inverse_mass_matrix,
            self._potential,
            self.generator,
            acceptance=self._trial_step(state),
        )

    def _trial_step(self, state: ChainState) -> Callable[[Tensor, Tensor], Tensor] | None:
        """How the step size search takes its trial steps from ``state``
        (:func:`find_reasonable_step_size`'s ``acceptance``): ``None``, the
        eager leapfrog through the potential, unless a kernel has a step
        of its own."""
        return None

    # -- one iteration -------------------------------------------------------------

    def transition(self, state: ChainState) -> tuple[ChainState, dict[str, Tensor]]:
        """Move every chain once; return the new state and per-chain statistics."""
        raise NotImplementedError

    # -- warmup --------------------------------------------------------------------

    def adapt(self, iteration: int, state: ChainState, stats: dict[str, Tensor]) -> None:
        """Adapt after warmup iteration ``iteration`` (from 0), as Stan does."""
        if self.adapt_step_size:
            self.step_size = self._dual.update(stats["accept_prob"])
        if not self.adapt_mass_matrix:
            return
        schedule = self._schedule
        if schedule.in_window(iteration):
            self._welford.update(state.z)
        if iteration in schedule.window_ends:
            self.inverse_mass_matrix = self._welford.variance()
            self._welford.reset()
            self._mass_changed()
            if self.adapt_step_size:
                self.step_size = self._find_step_size(state)
                self._dual.restart(self.step_size)

    def end_warmup(self) -> None:
        """Fix the step size at its dual average."""
        if self.adapt_step_size:
            self.step_size = self._dual.final()
