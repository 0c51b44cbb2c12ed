"""A potential and its gradient, or a whole leapfrog step, captured once
per run and compiled.

An eager potential-and-gradient call dispatches every tensor operation of
the model's forward and backward pass from Python: a hundred to several
hundred operations of a few microseconds each, whatever the data size, on
every leapfrog step. NumPyro's step is one call of compiled code. Here the
call is made once, at the run's first point, with every operation recorded
(``torch.fx``'s ``make_fx``: forward and backward, the data as constants,
inside :func:`quivers.capture.capture` so that no shortcut chosen by
reading a value is frozen into the graph), and the recorded graph is
compiled by inductor, ``torch.compile``'s code generator (fused loops in
C++ on the CPU, Triton on a GPU), for that batch shape, dtype and device
(:func:`quivers.capture.compile_graph`). NUTS records a whole leaf of its
subtree this way, potential included (:class:`~quivers.inference.mcmc.nuts.NUTS`);
HMC records the potential and its gradient (:func:`compile_potential`).

Before it is used the compiled call is checked against the eager one at
the run's starting points. Where the potential cannot be recorded (it
reads a value on the host to choose what to compute), where compilation
fails (no C++ compiler), or where the check disagrees, the run goes on
with the eager call and :class:`CompileWarning` says why.

Examples
--------
>>> U = lambda z: 0.5 * (z**2).sum(-1)
>>> vg = compile_potential(U, torch.ones(2, 3), backend="eager")
>>> u, g = vg.value_and_grad(torch.tensor([[1.0, 2.0, 2.0], [0.0, 0.0, 1.0]]))
>>> u, g
(tensor([4.5000, 0.5000]), tensor([[1., 2., 2.],
        [0., 0., 1.]]))
>>> vg.compiled
True
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
from torch import Tensor

from quivers.capture import CompileWarning, agree, compile_graph, first_line, record
from quivers.inference.mcmc.hamiltonian import potential_and_grad

__all__ = ["CompileWarning", "CompiledPotential", "compile_potential", "compile_recorded", "warn_eager"]

Potential = Callable[[Tensor], Tensor]


class CompiledPotential:
    """``z -> (potential, gradient)`` for one batch shape, dtype and device.

    A batch of another shape, dtype or device is evaluated eagerly.
    ``compiled`` says whether the compiled call is in use.
    """

    def __init__(self, potential: Potential, fn: Callable[[Tensor], tuple[Tensor, Tensor]] | None, like: Tensor):
        self.potential = potential
        self._fn = fn
        self._key = (like.shape, like.dtype, like.device)

    @property
    def compiled(self) -> bool:
        return self._fn is not None

    def __call__(self, z: Tensor) -> Tensor:
        """The potential alone, eagerly."""
        return self.potential(z)

    def value_and_grad(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """The potential and its gradient, detached: what
        :func:`~quivers.inference.mcmc.hamiltonian.potential_and_grad` returns."""
        if self._fn is not None and (z.shape, z.dtype, z.device) == self._key and z.is_contiguous():
            return self._fn(z)
        return potential_and_grad(self.potential, z)

    def __repr__(self) -> str:
        shape, dtype, device = self._key
        state = "compiled" if self.compiled else "eager"
        return f"CompiledPotential({state}, batch {tuple(shape)}, {dtype}, {device})"


def compile_recorded(
    fn: Callable[..., tuple[Tensor, ...]], args: tuple[Tensor, ...], *, backend: str = "inductor", what: str
) -> tuple[Callable[..., tuple[Tensor, ...]] | None, str]:
    """Record ``fn`` at ``args`` as one graph of tensor operations and
    compile it for their shapes; return ``(compiled, "")``, or ``(None,
    why)`` where it cannot be recorded, compiled, or does not reproduce
    ``fn(*args)``. ``what`` names ``fn`` in ``why``.

    ``fn`` takes and returns tensors only; it may call
    ``torch.autograd.grad`` (the backward pass is recorded too). Its
    outputs are checked against an eager call on the same ``args``
    (:func:`quivers.capture.agree`). ``backend``: ``"inductor"`` generates
    fused code, called directly (its inputs must be laid out as ``args``
    are: contiguous, for one); ``"eager"`` only replays the recorded graph
    (what tests use to check a recording without a compiler); another
    name is given to ``torch.compile``.

    Examples
    --------
    >>> double, why = compile_recorded(lambda x: (2 * x,), (torch.ones(3),), backend="eager", what="x -> 2x")
    >>> double(torch.arange(3.0)), why
    ((tensor([0., 2., 4.]),), '')
    """
    # fresh tensors: the eager call is made on the same ones as the recording
    args = tuple(a.detach().clone() for a in args)
    eager = fn(*args)
    try:
        graph = record(fn, *args, decompose=backend == "inductor")
    except Exception as err:  # noqa: BLE001 - any failure to record means: stay eager
        return None, f"{what} could not be recorded as a graph ({type(err).__name__}: {first_line(err)})"
    try:
        compiled = compile_graph(graph, backend, inputs=args)
        got = compiled(*args)
    except Exception as err:  # noqa: BLE001 - a compiler that fails means: stay eager
        return None, f"torch.compile failed on {what} ({type(err).__name__}: {first_line(err)})"
    if not agree(tuple(got), tuple(eager)):
        return None, f"the compiled {what} differs from the eager one at the first point"
    return compiled, ""


def compile_potential(potential: Potential, z: Tensor, *, backend: str = "inductor") -> CompiledPotential:
    """Record ``potential`` and its gradient at the batch ``z`` ``(C, D)``
    and compile them (:func:`compile_recorded`); what cannot be compiled is
    warned of (:class:`CompileWarning`) and evaluated eagerly.

    Examples
    --------
    A potential that reads a value to decide what to compute cannot be
    recorded, and stays eager:

    >>> def U(z):
    ...     return (z**2).sum(-1) if bool((z > 0).all()) else z.abs().sum(-1)
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     vg = compile_potential(U, torch.ones(1, 2), backend="eager")
    >>> vg.compiled, caught[0].category.__name__
    (False, 'CompileWarning')
    >>> vg.value_and_grad(torch.tensor([[-1.0, 2.0]]))[0]
    tensor([3.])
    """

    def value_and_grad(z: Tensor) -> tuple[Tensor, Tensor]:
        return potential_and_grad(potential, z)

    z = z.detach()
    fn, why = compile_recorded(value_and_grad, (z,), backend=backend, what="potential")
    if fn is None:
        warn_eager(why)
    return CompiledPotential(potential, fn, z)


def warn_eager(why: str) -> None:
    """Say that the run evaluates eagerly, and why."""
    warnings.warn(f"the run evaluates eagerly: {why}", CompileWarning, stacklevel=3)
