"""Running a plan on named values, in a semiring.

The operations are those of a ``marginalize`` block, in the same order:
factors are laid out on common axes (:func:`quivers.programs.named.align`)
and multiplied (``+`` in the log semiring), a variable is summed along its
axis (``logsumexp`` in ``LOG``, ``max`` in ``MAX_PLUS``: the semiring's
``sum``), a plate is multiplied out (its ``prod``, a sum of logs, scaled by
``N / b`` on a mini-batch) and a plate is carried along an index map by
:func:`quivers.programs.named.scatter_sum`, the right Kan extension.

Examples
--------
>>> import torch
>>> from quivers.categories import LOG
>>> from quivers.planning.plan import Scope, make_plan
>>> from quivers.programs.named import Value
>>> prior = Value(torch.tensor([0.25, 0.75]).log(), ("z",))
>>> like = Value(torch.tensor([[0.5, 0.1], [0.5, 0.1]]).log(), ("Item", "z"))
>>> p = make_plan([Scope(prior.dims), Scope(like.dims)], {"z": ()}, {"z": 2, "Item": 2})
>>> float(run_plan(p, [prior, like], LOG).exp())
0.07000000029802322
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from quivers.categories import LOG, FinFunction, Semiring
from quivers.planning.plan import Carry, Eliminate, Finish, Plan
from quivers.programs.named import Value, align, logsumexp, scatter_sum

__all__ = ["run_plan"]


def run_plan(
    plan: Plan,
    factors: Sequence[Value],
    semiring: Semiring = LOG,
    maps: Mapping[str, FinFunction] | None = None,
    scales: Mapping[str, float] | None = None,
) -> torch.Tensor:
    """The total of ``plan`` over ``factors`` (in the order of its scopes):
    a tensor of the factors' broadcast batch shape."""
    maps, scales = maps or {}, scales or {}
    live: dict[int, Value] = dict(enumerate(factors))
    total: torch.Tensor | None = None
    for op in plan.steps:
        if isinstance(op, Eliminate):
            v = _product([live.pop(i) for i in op.inputs], semiring)
            if semiring is LOG:  # the sum a marginalize block takes, with its zero-safe gradient
                live[op.output] = logsumexp(v, op.var)
            else:
                axis = v.batch_ndim + v.dims.index(op.var)
                live[op.output] = Value(semiring.sum(v.tensor, axis), tuple(d for d in v.dims if d != op.var))
        elif isinstance(op, Carry):
            v = _out(live.pop(op.input), op.plates, semiring, scales)
            for name, dom, _ in op.along:
                if dom in scales:
                    v = Value(v.tensor * scales[dom], v.dims)
                v = scatter_sum(v, maps[name])
            live[op.output] = v
        elif isinstance(op, Finish):
            v = _out(live.pop(op.input), op.plates, semiring, scales)
            total = v.tensor if total is None else semiring.mul(total, v.tensor)
    if total is None:
        return factors[0].tensor.new_zeros(()) if factors else torch.zeros(())
    return total


def _product(values: Sequence[Value], semiring: Semiring) -> Value:
    tensors, dims, _ = align(values)
    out = tensors[0]
    for t in tensors[1:]:
        out = semiring.mul(out, t)
    return Value(out, dims)


def _out(v: Value, plates: Sequence[str], semiring: Semiring, scales: Mapping[str, float]) -> Value:
    """``v`` multiplied out over ``plates`` (each scaled by its ``N / b``)."""
    for p in plates:
        axis = v.batch_ndim + v.dims.index(p)
        t = semiring.prod(v.tensor, axis)
        v = Value(t * scales[p] if p in scales else t, tuple(d for d in v.dims if d != p))
    return v
