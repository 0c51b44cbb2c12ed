"""Gibbs steps for discrete latents inside a Hamiltonian kernel.

:class:`DiscreteHMCGibbs` samples a model whose latents are continuous
``z`` (the unconstrained coordinates a Hamiltonian kernel moves) and
discrete ``d`` (values no gradient reaches) by alternating, in every
iteration and for every chain of the batch,

1. a Gibbs sweep over the discrete sites, each drawn from its exact full
   conditional ``p(d_s | z, d_-s, data)`` (or moved by a Metropolis step
   where its values are infinitely many), and
2. one transition of the inner kernel (:class:`~quivers.inference.mcmc.nuts.NUTS`
   by default) on ``z`` with ``d`` fixed,

as NumPyro's ``DiscreteHMCGibbs`` does. Each half leaves the joint
posterior invariant, so their composition does; warmup adapts the inner
kernel's step size and mass matrix on ``z`` alone.

The model is a :class:`GibbsModel`: a
:class:`~quivers.inference.mcmc.adaptor.ModelAdaptor` whose potential reads
the discrete values last given to ``set_discrete``, plus the initial
discrete values and the Gibbs sweep. The chains' state holds ``z`` and then
``d`` (as floats) in one row, so the driver records and constrains both;
:func:`as_gibbs_model` converts what the kernel is given, and the programs
layer registers its own conversion (see :mod:`quivers.inference.gibbs`).

Laws: the target ``exp(-potential(z | d))`` over ``(z, d)`` is invariant
(checked in the tests against exact enumeration and a closed form).

Examples
--------
A two-state switch ``d`` and a Normal ``z`` whose mean it sets: the Gibbs
step draws ``d`` given ``z`` exactly, NUTS moves ``z`` given ``d``.

>>> import torch
>>> from quivers.inference.mcmc import MCMC
>>> class Switch:
...     num_discrete = 1
...     def init_unconstrained(self, num_chains, generator):
...         return torch.zeros(num_chains, 1)
...     def init_discrete(self, num_chains, generator):
...         return torch.zeros(num_chains, 1)
...     def set_discrete(self, d):
...         self.d = d
...     def potential(self, z):
...         return 0.5 * ((z - 3.0 * self.d) ** 2).sum(-1)
...     def gibbs(self, z, d, generator):  # p(d | z) from the two potentials
...         lp = torch.stack([-0.5 * (z - 3.0 * k).pow(2).sum(-1) for k in (0.0, 1.0)], -1)
...         u = torch.rand(z.shape[0], generator=generator)
...         return (u < torch.softmax(lp, -1)[:, 1]).to(z.dtype).unsqueeze(-1)
...     def constrain(self, zd):
...         return {"z": zd[..., :1], "d": zd[..., 1:]}
>>> mcmc = MCMC(DiscreteHMCGibbs(Switch()), num_warmup=100, num_samples=200, num_chains=2,
...             seed=0, progress_bar=False)
>>> mcmc.run()
>>> draws = mcmc.get_samples()
>>> sorted(draws), sorted(draws["d"].unique().tolist())
(['d', 'z'], [0.0, 1.0])
"""

from __future__ import annotations

import functools
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

from quivers.errors import QuiversTypeError
from quivers.inference.mcmc.kernel import ChainState, HamiltonianKernel
from quivers.inference.mcmc.nuts import NUTS

__all__ = ["DiscreteHMCGibbs", "GibbsModel", "as_gibbs_model"]

_METHODS = ("init_unconstrained", "potential", "constrain", "init_discrete", "set_discrete", "gibbs")


@runtime_checkable
class GibbsModel(Protocol):
    """What :class:`DiscreteHMCGibbs` needs of a model: the three methods
    of a :class:`~quivers.inference.mcmc.adaptor.ModelAdaptor` (its
    ``potential`` reading the discrete values last set), and

    - ``init_discrete(num_chains, generator, *args, **kwargs) -> (C, M)``:
      starting discrete values (``M`` numbers per chain);
    - ``set_discrete(d)``: the values ``(C, M)`` the potential reads;
    - ``gibbs(z, d, generator, *args, **kwargs) -> (C, M)``: one sweep,
      each discrete site from its full conditional given ``z`` and the rest;
    - ``constrain(zd)`` takes rows of ``z`` followed by ``d``.
    """

    def init_discrete(self, num_chains: int, generator: torch.Generator, *args: Any, **kwargs: Any) -> Tensor: ...

    def set_discrete(self, d: Tensor) -> None: ...

    def gibbs(self, z: Tensor, d: Tensor, generator: torch.Generator, *args: Any, **kwargs: Any) -> Tensor: ...


@functools.singledispatch
def as_gibbs_model(model: Any) -> GibbsModel:
    """The :class:`GibbsModel` for ``model``: itself when it has the
    methods; layers above register conversions of their own types.

    Examples
    --------
    >>> as_gibbs_model(3.0)
    Traceback (most recent call last):
    ...
    quivers.errors.QuiversTypeError: `model` of type float is not a model DiscreteHMCGibbs can sample: it lacks `init_unconstrained`, `potential`, `constrain`, `init_discrete`, `set_discrete`, `gibbs`
    """
    missing = [m for m in _METHODS if not callable(getattr(model, m, None))]
    if not missing:
        return model
    names = ", ".join(f"`{m}`" for m in missing)
    raise QuiversTypeError(
        f"`model` of type {type(model).__name__} is not a model DiscreteHMCGibbs can sample: it lacks {names}"
    )


class DiscreteHMCGibbs(HamiltonianKernel):
    """Gibbs steps for the discrete latents, a Hamiltonian kernel for the rest.

    Parameters
    ----------
    model
        A :class:`GibbsModel`, or anything :func:`as_gibbs_model` converts
        (a quivers ``Program`` with discrete latents).
    inner
        The kernel class moving the continuous latents, :class:`NUTS` by
        default.
    **options
        The inner kernel's options (``target_accept``, ``max_tree_depth``,
        ``step_size``, ...).

    The driver sees the inner kernel's step size, mass matrix and
    statistics; its draws hold each chain's continuous coordinates followed
    by its discrete values.
    """

    def __init__(self, model: Any, inner: type[HamiltonianKernel] = NUTS, **options: Any) -> None:
        if not (isinstance(inner, type) and issubclass(inner, HamiltonianKernel)):
            raise QuiversTypeError(f"`inner` must be a Hamiltonian kernel class such as NUTS, got {inner!r}")
        if options.get("jit_compile"):
            # the potential reads the discrete values of the last sweep: a
            # recorded graph would keep those of the first as constants
            raise QuiversTypeError(
                "`jit_compile` is not available with Gibbs steps: the potential changes with the discrete values"
            )
        self.adaptor = as_gibbs_model(model)
        self.inner = inner(self.adaptor, **options)
        self.stat_names = self.inner.stat_names
        self._inner_state: ChainState | None = None

    def __getattr__(self, name: str) -> Any:
        # tree depth, target, generator, ...: the inner kernel's
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    # read and written by the driver (parallel chains gather them here)
    step_size = property(lambda self: self.inner.step_size, lambda self, v: setattr(self.inner, "step_size", v))
    inverse_mass_matrix = property(lambda self: self.inner.inverse_mass_matrix,
                                   lambda self, v: setattr(self.inner, "inverse_mass_matrix", v))

    def setup(
        self,
        num_chains: int,
        num_warmup: int,
        generator: torch.Generator,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> ChainState:
        """Draw starting discrete values, then start the inner kernel given them."""
        kwargs = kwargs or {}
        self._args, self._kwargs = tuple(args), dict(kwargs)
        bind = getattr(self.adaptor, "bind", None)
        if bind is not None:
            bind(*args, **kwargs)
        d = self.adaptor.init_discrete(num_chains, generator, *args, **kwargs)
        self.adaptor.set_discrete(d)
        self._inner_state = self.inner.setup(num_chains, num_warmup, generator, args, kwargs)
        return self._joined(self._inner_state, d)

    @staticmethod
    def _joined(state: ChainState, d: Tensor) -> ChainState:
        d = d.to(dtype=state.z.dtype, device=state.z.device)
        return ChainState(torch.cat([state.z, d], -1), state.potential, torch.cat([state.grad, torch.zeros_like(d)], -1))

    def transition(self, state: ChainState) -> tuple[ChainState, dict[str, Tensor]]:
        """A Gibbs sweep of the discrete sites given ``z``, then one inner
        transition of ``z`` given them."""
        inner = self.inner
        z = self._inner_state.z
        d = self.adaptor.gibbs(z, state.z[:, z.shape[1]:], inner.generator, *self._args, **self._kwargs)
        self.adaptor.set_discrete(d)
        u, g = inner.potential_and_grad(z)  # the potential changed with d
        self._inner_state, stats = inner.transition(ChainState(z, u, g))
        return self._joined(self._inner_state, d), stats

    def adapt(self, iteration: int, state: ChainState, stats: dict[str, Tensor]) -> None:
        """The inner kernel's warmup, on the continuous coordinates."""
        self.inner.adapt(iteration, self._inner_state, stats)

    def end_warmup(self) -> None:
        self.inner.end_warmup()
