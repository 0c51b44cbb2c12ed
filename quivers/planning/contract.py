"""Running a plan on named values, in a semiring.

The operations are those of a ``marginalize`` block, in the same order:
factors are laid out on common axes (:func:`quivers.programs.named.align`)
and multiplied (``+`` in the log semiring), a variable is summed along its
axis (``logsumexp`` in ``LOG``, ``max`` in ``MAX_PLUS``: the semiring's
``sum``), a plate is multiplied out (its ``prod``, a sum of logs, scaled by
``N / b`` on a mini-batch) and a plate is carried along an index map by
:func:`quivers.programs.named.scatter_sum`, the right Kan extension.

A run of eliminations along a chain of shared variables (an HMM written
as ``sample`` sites, ``z[t] ~ Categorical(A[z[t-1]])``) is run in ``LOG``
as a chain: each step's pairwise and unary factors are stacked into one
``(steps, K, K)`` tensor and multiplied by
:func:`quivers.categories.markov.semiring_product` (a balanced product, the
one a ``markov`` block uses), instead of one product and one sum per step.

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
from quivers.categories.markov import semiring_product
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
    steps, i = plan.steps, 0
    while i < len(steps):
        op = steps[i]
        i += 1
        if semiring is LOG and isinstance(op, Eliminate):
            n = _chain_length(steps, i - 1, live, plan)
            if n:
                live[steps[i - 1 + n - 1].output] = _run_chain(steps[i - 1 : i - 1 + n], live)
                i += n - 1
                continue
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


_MIN_CHAIN = 3  # shorter runs cost more to stack than to eliminate one by one


def _chain_length(steps, start: int, live: Mapping[int, Value], plan: Plan) -> int:
    """The number of eliminations from ``steps[start]`` that form a chain
    (0 if fewer than ``_MIN_CHAIN``): step ``m`` sums a shared variable
    ``v`` out of the previous step's message on ``v`` (except the first),
    factors on ``(v, w)`` and factors on ``v``, where ``w`` is the next
    step's variable; every step has as many factors of each kind, of the
    same shapes, and ``v`` and ``w`` have as many values."""
    n, pattern, prev = 0, None, None
    for op in steps[start:]:
        if not isinstance(op, Eliminate) or len(op.dims) != 2 or op.var not in op.dims:
            break
        (w,) = [d for d in op.dims if d != op.var]
        if plan.variables.get(op.var, None) != () or plan.variables.get(w, None) != ():
            break
        nxt = steps[start + n + 1] if start + n + 1 < len(steps) else None
        if not isinstance(nxt, Eliminate) or nxt.var != w or op.output not in nxt.inputs:
            break
        ins = [i for i in op.inputs if i != prev]
        if prev is not None and prev not in op.inputs:
            break
        vals = [live.get(i) for i in ins]
        if any(v is None or v.dims not in ((op.var,), (op.var, w), (w, op.var)) for v in vals):
            break
        if len({v.tensor.shape[: v.batch_ndim] for v in vals}) != 1:
            break
        kinds = tuple(sorted((len(v.dims), tuple(v.tensor.shape[: v.batch_ndim])) for v in vals))
        if n > 1 and kinds != pattern:  # the first step's factors (the initial law) differ
            break
        if not any(len(v.dims) == 2 for v in vals) or vals[0].sizes()[op.var] != plan.sizes.get(w):
            break
        pattern, prev, n = kinds, op.output, n + 1
    return n if n >= _MIN_CHAIN else 0


def _run_chain(ops: Sequence[Eliminate], live: dict[int, Value]) -> Value:
    """The message of the last of ``ops`` (a chain, :func:`_chain_length`):
    the first step sums its own factors as the plan does; the rest are
    stacked and multiplied in one balanced product."""
    first = ops[0]
    msg = logsumexp(_product([live.pop(i) for i in first.inputs], LOG), first.var)
    pairs: list[torch.Tensor] = []
    units: list[torch.Tensor] = []
    prev = first.output
    for op in ops[1:]:
        (w,) = [d for d in op.dims if d != op.var]
        for i in op.inputs:
            if i == prev:
                continue
            v = live.pop(i)
            if len(v.dims) == 1:
                units.append(v.tensor)
            else:
                pairs.append(v.tensor if v.dims == (op.var, w) else v.tensor.transpose(-1, -2))
        prev = op.output
    n = len(ops) - 1
    k = pairs[0].shape[-1]
    batch = pairs[0].shape[:-2]
    mats = torch.stack(pairs, -3).reshape(*batch, n, len(pairs) // n, k, k).sum(-3)
    if units:
        mats = mats + torch.stack(units, -2).reshape(*batch, n, len(units) // n, k).sum(-2).unsqueeze(-1)
    last = ops[-1]
    (end,) = [d for d in last.dims if d != last.var]
    start = msg.tensor
    joint = Value(start.unsqueeze(-1) + semiring_product(mats, LOG), (msg.dims[0], end))
    return logsumexp(joint, msg.dims[0])


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
