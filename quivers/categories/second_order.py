"""Second-order Markov chains: a chain on ``K`` whose state at ``t`` depends
on the states at ``t - 1`` and ``t - 2`` is a first-order chain on pairs.

A second-order chain on states ``K`` over ``T`` steps has an initial law
``init`` on ``K`` (the state at 0), a kernel ``first : K -> K`` (the state
at 1 given the state at 0) and kernels ``trans[t] : K * K -> K`` (the state
at ``t`` given the states at ``t - 2`` and ``t - 1``, for ``t >= 2``).
Its pair ``(z[t-1], z[t])`` is a first-order chain on ``K * K``, whose
state ``i * K + j`` is the pair ``(i, j)``: a step leads from ``(i, j)``
to ``(j, k)`` with weight ``trans[t][i, j, k]`` and to nothing else, and
the state at 0 is the pair ``(0, z[0])`` (a placeholder before the
start). :func:`second_order` builds that chain, so the forward
algorithm, forward-backward, Viterbi and FFBS of
:mod:`quivers.categories.markov` apply unchanged, at ``O(T K^6)`` work
with dense pair kernels (``O(log T)`` depth still); :func:`states` and
:func:`state_marginals` read paths and marginals on ``K`` back off the
pairs, and :func:`pair_path` lifts a path on ``K`` to one on pairs.

Shapes
------
``emit`` is ``(..., T, K)``; ``init`` is ``(..., K)`` (``None``: uniform);
``first`` is ``(..., K, K)`` (``None``: uniform); ``trans`` is
``(..., K, K, K)``, one kernel for every step, or ``(..., T, K, K, K)``,
one per step (``trans[..., 0, ...]`` and ``trans[..., 1, ...]`` are
unused). The leading axes are independent sequences and broadcast as in
:mod:`quivers.categories.markov`.

Laws
----
- ``forward(*second_order(init, first, trans, emit))`` is the sum over
  all ``K ** T`` paths ``z`` of ``init[z0] + first[z0, z1] + sum_t
  trans[t][z(t-2), z(t-1), z(t)] + sum_t emit[t, z(t)]``.
- ``states(pair_path(z)) == z``; the pair chain gives every pair path of a
  state path ``z`` the weight that the second-order chain gives ``z``.

Examples
--------
>>> from quivers.categories.markov import forward, viterbi
>>> init = torch.tensor([0.5, 0.5]).log()
>>> first = torch.tensor([[0.5, 0.5], [0.5, 0.5]]).log()
>>> trans = torch.tensor([[[0.9, 0.1], [0.1, 0.9]], [[0.9, 0.1], [0.1, 0.9]]]).log()  # z[t] = z[t-1], mostly
>>> chain = second_order(init, first, trans, torch.zeros(4, 2))
>>> chain.trans.shape  # per step, on pairs
torch.Size([4, 4, 4])
>>> abs(float(forward(*chain, check=False))) < 1e-6  # no evidence: the paths' probabilities sum to one
True
>>> states(viterbi(*chain, check=False).path, 2)
tensor([0, 0, 0, 0])
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from quivers.capture import capturing
from quivers.categories.markov import _check_law, _emissions, _log_weights, _where
from quivers.categories.monoid import logsumexp
from quivers.errors import DataError, InvalidValueError, QuiversTypeError, ShapeError

__all__ = ["PairChain", "second_order", "states", "state_marginals", "pair_path"]


class PairChain(NamedTuple):
    """A first-order chain on pairs ``K * K``: log ``init`` ``(..., K*K)``,
    log ``trans`` ``(..., T, K*K, K*K)`` and ``emit`` ``(..., T, K*K)``,
    to be passed to :func:`~quivers.categories.markov.forward` and the rest
    (with ``check=False``: :func:`second_order` checked the laws)."""

    init: Tensor
    trans: Tensor
    emit: Tensor


def _check_pairs(trans: Tensor, first_step: int | None) -> None:
    """Each row ``trans[..., (t,) i, j, :]`` is a law (a stack of kernels
    from step ``first_step`` on, or one kernel when that is None); name the
    first that is not."""
    total = logsumexp(trans.detach(), -1)
    off = ~(total.abs() <= torch.finfo(trans.dtype).eps ** 0.5)
    if not bool(off.any()):
        return
    where = _where(off)
    seq = where[:-2] if first_step is None else where[:-3]
    place = f"row {where[-2:]}" + ("" if first_step is None else f" at step {where[-3] + first_step}")
    place += f" of sequence {seq}" if seq else ""
    raise InvalidValueError(
        f"{place} of `trans` sums to {math.exp(float(total[where])):.6g}, not 1",
        hint="`trans[..., i, j, :]` is the log law of z[t] given z[t-2] = i and z[t-1] = j",
    )


def second_order(
    init: Tensor | None, first: Tensor | None, trans: Tensor, emit: Tensor, check: bool = True
) -> PairChain:
    """The first-order chain on pairs ``(z[t-1], z[t])`` of a second-order
    chain on ``K``; see the module docstring for the shapes.

    Parameters
    ----------
    init, first, trans, emit
        Log law of ``z[0]``, log kernel of ``z[1]`` given ``z[0]``, log
        kernels of ``z[t]`` given ``(z[t-2], z[t-1])`` and log emission
        weights of each state at each step.
    check
        Check that ``init``, the rows of ``first`` and the rows of ``trans``
        are laws and that ``emit`` has no NaN or ``+inf``.

    Raises
    ------
    ShapeError, InvalidValueError
        Shapes that do not fit; rows that are not laws.

    Examples
    --------
    >>> from quivers.categories.markov import forward_backward
    >>> trans = torch.tensor([[0.0, 1.0], [1.0, 0.0]]).log().expand(2, 2, 2)  # z[t] = 1 - z[t-1]
    >>> fb = forward_backward(*second_order(None, None, trans, torch.zeros(3, 2)), check=False)
    >>> state_marginals(fb.marginals, 2)
    tensor([[0.5000, 0.5000],
            [0.5000, 0.5000],
            [0.5000, 0.5000]])
    """
    emit, steps, k = _emissions(emit)
    trans = _log_weights(trans, "trans")
    if trans.dim() < 3 or tuple(trans.shape[-3:]) != (k, k, k):
        raise ShapeError(
            f"`trans` has shape {tuple(trans.shape)}, but the emissions of shape {tuple(emit.shape)} have "
            f"{k} states: a second-order transition is (..., {k}, {k}, {k}) or (..., T, {k}, {k}, {k})",
            hint="trans[..., i, j, l] is the law of z[t] = l given z[t-2] = i and z[t-1] = j",
        )
    if trans.dim() >= 4 and trans.shape[-4] not in (1, steps):
        raise ShapeError(
            f"`trans` of shape {tuple(trans.shape)} has {trans.shape[-4]} steps on its axis -4, "
            f"but the emissions have {steps}",
            hint="the axis before the three state axes is time; give (..., 1, K, K, K) for one kernel per sequence",
        )
    dtype = emit.dtype
    first = emit.new_full((k, k), -math.log(k)) if first is None else _log_weights(first, "first")
    if first.dim() < 2 or tuple(first.shape[-2:]) != (k, k):
        raise ShapeError(f"`first` has shape {tuple(first.shape)}; the emissions have {k} states, so it must be (..., {k}, {k})")
    init = emit.new_full((k,), -math.log(k)) if init is None else _log_weights(init, "init")
    if init.dim() < 1 or init.shape[-1] != k:
        raise ShapeError(f"`init` has shape {tuple(init.shape)}; the emissions have {k} states, so it must be (..., {k})")
    for t in (init, first, trans):
        dtype = torch.promote_types(dtype, t.dtype)
    init, first, trans, emit = init.to(dtype), first.to(dtype), trans.to(dtype), emit.to(dtype)
    if check:
        bad = torch.isnan(emit.detach()) | (emit.detach() == math.inf)
        if bool(bad.any()):
            raise InvalidValueError(f"`emit` is {float(emit[_where(bad)])} at {_where(bad)}; log weights are reals or -inf")
        _check_law(init, "init", None)
        _check_law(first, "first", None)
        per_step = trans.dim() >= 4 and trans.shape[-4] > 1
        if per_step:
            _check_pairs(trans[..., 2:, :, :, :], 2)
        else:
            _check_pairs(trans, None if trans.dim() < 4 else 0)
    # Per-step kernels on K * K * K: step 1 is `first` (the same for every
    # placeholder row i), steps from 2 on `trans`; step 0 is unused.
    if trans.dim() < 4:
        trans = trans.unsqueeze(-4)
    lead = torch.broadcast_shapes(tuple(trans.shape[:-4]), tuple(first.shape[:-2]))
    rest = trans.expand(*lead, steps, k, k, k) if trans.shape[-4] == 1 else trans.expand(*lead, *trans.shape[-4:])
    one = first.unsqueeze(-3).expand(*lead, k, k, k).unsqueeze(-4)
    kernels = torch.cat([rest[..., :1, :, :, :], one, rest[..., 2:, :, :, :]], -4)[..., :steps, :, :, :]
    # (i, j) -> (j', l): kernels[i, j, l] where j == j', else impossible
    eye = torch.eye(k, dtype=torch.bool, device=emit.device)[:, :, None]
    pair = torch.where(eye, kernels.unsqueeze(-2), torch.tensor(-math.inf, dtype=dtype, device=emit.device))
    pair_trans = pair.reshape(*pair.shape[:-5], steps, k * k, k * k)
    start = torch.full((*init.shape[:-1], k, k), -math.inf, dtype=dtype, device=emit.device)
    start = torch.cat([init.unsqueeze(-2), start[..., 1:, :]], -2)  # the pair (0, z[0])
    pair_emit = emit.unsqueeze(-2).expand(*emit.shape[:-1], k, k)
    return PairChain(start.flatten(-2), pair_trans, pair_emit.flatten(-2))


def states(pairs: Tensor, k: int) -> Tensor:
    """The states ``z[t]`` of a path of pairs ``(z[t-1], z[t])``.

    Examples
    --------
    >>> states(torch.tensor([1, 5, 7]), 3)
    tensor([1, 2, 1])
    """
    return pairs % k


def state_marginals(pair_marginals: Tensor, k: int) -> Tensor:
    """Marginals ``(..., T, K)`` of the states from those of the pairs
    ``(..., T, K*K)``: the sum over the state before.

    Examples
    --------
    >>> state_marginals(torch.tensor([[0.1, 0.2, 0.3, 0.4]]), 2)
    tensor([[0.4000, 0.6000]])
    """
    return pair_marginals.unflatten(-1, (k, k)).sum(-2)


def pair_path(path: Tensor, k: int) -> Tensor:
    """The path of pairs ``(z[t-1], z[t])`` of a path ``z`` on ``K``
    (``(..., T)`` integers in ``[0, k)``), with the placeholder 0 before the
    start: the path of :func:`second_order`'s chain that ``z`` walks.

    Examples
    --------
    >>> pair_path(torch.tensor([1, 2, 1]), 3)
    tensor([1, 5, 7])
    """
    path = torch.as_tensor(path)
    if path.dim() < 1 or path.is_floating_point() or path.dtype == torch.bool:
        raise QuiversTypeError(f"`path` must be an integer tensor (..., T), got dtype {path.dtype}, shape {tuple(path.shape)}")
    bad = (path < 0) | (path >= k)
    # not while capturing: a graph cannot read the path, which in a
    # potential is data, checked by the potential's eager first call
    if not capturing() and bool(bad.any()):
        raise DataError(f"`path` has state {int(path[_where(bad)])} at {_where(bad)}, outside [0, {k})")
    before = torch.cat([torch.zeros_like(path[..., :1]), path[..., :-1]], -1)
    return before * k + path
