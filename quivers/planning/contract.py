"""Running a plan on named values, in a semiring.

The operations are those of a ``marginalize`` block, in the same order:
factors are laid out on common axes (:func:`quivers.programs.named.align`)
and multiplied (``+`` in the log semiring), a variable is summed along its
axis (``logsumexp`` in ``LOG``, ``max`` in ``MAX_PLUS``: the semiring's
``sum``), a plate is multiplied out (its ``prod``, a sum of logs, scaled by
``N / b`` on a mini-batch) and a plate is carried along an index map by
:func:`quivers.programs.named.scatter_sum`, the right Kan extension.

A run of eliminations along a chain of shared variables that
:mod:`quivers.planning.chains` does not write as a ``markov`` block (its
steps have tables of their own, or the plan is general: ``auto(...,
lower=False)``) is run in ``LOG``
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
            n = _chains(plan).get(i - 1, 0)
            if n and _one_batch(steps[i : i - 1 + n], live):
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
_CHAINS: dict[int, tuple[Plan, dict[int, int]]] = {}  # id(plan) -> (plan, its chain runs): kept alive, so no id reuse


def _chains(plan: Plan) -> dict[int, int]:
    """The runs of eliminations of ``plan`` that form a chain, by the index
    of their first step: their lengths (at least ``_MIN_CHAIN``).

    Step ``m`` of a run sums a shared variable ``v`` out of the previous
    step's message on ``v`` (except the first), factors on ``(v, w)`` and
    factors on ``v``, where ``w`` is the next step's variable, of as many
    values as ``v``; every step after the first has as many factors of
    each kind."""
    hit = _CHAINS.get(id(plan))
    if hit is not None and hit[0] is plan:
        return hit[1]
    dims = {i: sc.dims for i, sc in enumerate(plan.scopes)}
    for op in plan.steps:
        if isinstance(op, Eliminate):
            dims[op.output] = tuple(d for d in op.dims if d != op.var)
    links = []  # whether steps[j] continues a chain into steps[j + 1], and its pattern
    for j, op in enumerate(plan.steps):
        nxt = plan.steps[j + 1] if j + 1 < len(plan.steps) else None
        links.append(_link(op, nxt, dims, plan))
    runs: dict[int, int] = {}
    j = 0
    while j < len(links):
        if links[j] is None:
            j += 1
            continue
        n, pattern = 1, None
        while j + n < len(links) and links[j + n] is not None and plan.steps[j + n - 1].output in plan.steps[j + n].inputs:
            if pattern is not None and links[j + n] != pattern:
                break
            pattern, n = links[j + n], n + 1
        if n >= _MIN_CHAIN:
            runs[j] = n
        j += n
    if len(_CHAINS) > 256:
        _CHAINS.clear()
    _CHAINS[id(plan)] = (plan, runs)
    return runs


def _link(op, nxt, dims: Mapping[int, tuple[str, ...]], plan: Plan) -> tuple | None:
    """The kinds of factors (how many axes each) of ``op`` if it is a step of
    a chain that ``nxt`` continues, else None."""
    if not isinstance(op, Eliminate) or not isinstance(nxt, Eliminate) or len(op.dims) != 2 or op.var not in op.dims:
        return None
    (w,) = [d for d in op.dims if d != op.var]
    if nxt.var != w or op.output not in nxt.inputs or plan.variables.get(op.var) != () or plan.variables.get(w) != ():
        return None
    if plan.sizes.get(op.var) != plan.sizes.get(w):
        return None
    ins = [dims.get(i) for i in op.inputs]  # a carried factor's axes are not known here: no chain
    if any(d not in ((op.var,), (op.var, w), (w, op.var)) for d in ins) or not any(len(d) == 2 for d in ins):
        return None
    return tuple(sorted(len(d) for d in ins))


def _one_batch(ops: Sequence[Eliminate], live: Mapping[int, Value]) -> bool:
    """Whether the factors of ``ops`` (but the messages) share a batch shape."""
    shapes = {live[i].tensor.shape[: live[i].batch_ndim] for op in ops for i in op.inputs if i in live}
    return len(shapes) == 1


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
