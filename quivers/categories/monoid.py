"""Commutative monoids on tensors: the two halves of a semiring.

A :class:`Monoid` is an elementwise operation with its unit, together with
the two ways a tensor program folds it: along an axis (:meth:`Monoid.reduce`)
and over the fibres of an index map (:attr:`Monoid.scatter`, a vectorized
group-by). The constants here are the monoids the semirings are built from:
``SUM``, ``PRODUCT``, ``LOGSUMEXP``, ``OR``, ``AND``, ``LUKASIEWICZ_AND``
and ``max_monoid(unit)``, ``min_monoid(unit)``.

Laws
----
``op`` is associative and commutative with unit ``unit``; ``reduce`` and
``scatter`` are its folds, so an empty axis or an empty fibre gives
``unit``. ``logsumexp`` (and the ``LOGSUMEXP`` folds) shift by the maximum
and give ``-inf`` with zero, not NaN, gradient where everything is ``-inf``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from quivers.capture import capturing, may_read

__all__ = [
    "Monoid",
    "SUM",
    "PRODUCT",
    "LOGSUMEXP",
    "OR",
    "AND",
    "LUKASIEWICZ_AND",
    "max_monoid",
    "min_monoid",
    "logsumexp",
]

_INF = math.inf


def logsumexp(t: Tensor, dim: int) -> Tensor:
    """``log(sum(exp(t), dim))`` with zero (not NaN) gradient where every
    entry along ``dim`` is ``-inf``.

    ``torch.logsumexp`` returns ``-inf`` there too, but its gradient is
    ``exp(-inf - -inf) = NaN``. Its node is taken wherever every slice has a
    finite term (the same value and gradient, without a Python backward);
    a tensor that may not be read on the host (on an accelerator, or while
    a graph is captured) always takes the safe node.

    Examples
    --------
    >>> x = torch.tensor([[0.0, 0.0], [-math.inf, -math.inf]], requires_grad=True)
    >>> y = logsumexp(x, 1)
    >>> y.detach()
    tensor([0.6931,   -inf])
    >>> y[1].backward(); x.grad
    tensor([[0., 0.],
            [0., 0.]])
    """
    if t.shape[dim] == 0:
        return t.new_full(_drop(t.shape, dim), -_INF)
    if not t.requires_grad:
        return torch.logsumexp(t, dim)
    if may_read(t):
        out = torch.logsumexp(t, dim)
        if not bool((out == -_INF).any()):
            return out
    return _SafeLogSumExp.apply(t, dim)


class _SafeLogSumExp(torch.autograd.Function):
    """``torch.logsumexp`` whose gradient is zero, not NaN, where every term
    is ``-inf``. Recorded in a graph, it is a sixth of the operations that
    autograd of a shifted sum with masks for that case would be."""

    @staticmethod
    def forward(ctx, t: Tensor, dim: int) -> Tensor:
        if capturing():
            # written out, the shift clamped into the finite range instead of
            # torch's test for an infinite one (eight recorded operations,
            # not eleven): a shift of -max (every term -inf) leaves the
            # terms -inf, one of +max keeps +inf, and a finite one is exact
            big = torch.finfo(t.dtype).max
            shift = t.amax(dim, keepdim=True).clamp(-big, big)
            out = (t - shift).exp().sum(dim).log() + shift.squeeze(dim)
        else:
            out = torch.logsumexp(t, dim)
        ctx.save_for_backward(t, out)
        ctx.dim = dim
        return out

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        t, out = ctx.saved_tensors
        # exp(t - out), with out clamped to the most negative finite value
        # where it is -inf (every term -inf: then every weight is exp(-inf)
        # = 0, not exp(-inf + inf) = NaN); one operation on the reduced
        # shape. Out of place, so that a second derivative (create_graph)
        # can be taken.
        out = out.clamp(min=-torch.finfo(out.dtype).max).unsqueeze(ctx.dim)
        return torch.exp(t - out) * grad.unsqueeze(ctx.dim), None


def _log_or_neg_inf(total: Tensor) -> Tensor:
    # log(0) = -inf is right, but its backward divides by zero; routing the
    # zeros through a constant keeps their gradient at exactly zero.
    empty = total == 0
    return torch.where(empty, -_INF, torch.where(empty, torch.ones_like(total), total).log())


def _drop(shape: torch.Size, dim: int) -> tuple[int, ...]:
    dims = list(shape)
    del dims[dim]
    return tuple(dims)


def _expand_index(index: Tensor, w: Tensor) -> Tensor:
    return index.view(-1, *([1] * (w.dim() - 1))).expand_as(w)


def _scatter_reduce(kind: str) -> Callable[[Tensor, Tensor, int, float], Tensor]:
    def scatter(index: Tensor, w: Tensor, groups: int, unit: float) -> Tensor:
        out = w.new_full((groups, *w.shape[1:]), unit)
        if kind == "sum":
            return out.index_add(0, index, w)
        return out.scatter_reduce(0, _expand_index(index, w), w, kind, include_self=True)

    return scatter


def _scatter_logsumexp(index: Tensor, w: Tensor, groups: int, unit: float) -> Tensor:
    shape = (groups, *w.shape[1:])
    shift = w.new_full(shape, -_INF).scatter_reduce(
        0, _expand_index(index, w), w.detach(), "amax", include_self=True
    )
    shift = torch.where(torch.isfinite(shift), shift, torch.zeros_like(shift))
    total = w.new_zeros(shape).index_add(0, index, (w - shift[index]).exp())
    return _log_or_neg_inf(total) + shift


def _scatter_any(index: Tensor, w: Tensor, groups: int, unit: float) -> Tensor:
    counts = torch.zeros((groups, *w.shape[1:]), dtype=torch.long, device=w.device)
    return counts.index_add(0, index, w.long()) > 0


def _scatter_all(index: Tensor, w: Tensor, groups: int, unit: float) -> Tensor:
    counts = torch.zeros((groups, *w.shape[1:]), dtype=torch.long, device=w.device)
    return counts.index_add(0, index, (~w).long()) == 0


def _lukasiewicz(a: Tensor, b: Tensor) -> Tensor:
    return (a + b - 1).clamp(min=0)


def _lukasiewicz_reduce(t: Tensor, dim: int) -> Tensor:
    # max(0, a1 + ... + an - (n - 1)): once the running value clamps to 0 it
    # stays there, because every further term is at most 1.
    return ((t - 1).sum(dim) + 1).clamp(min=0)


def _scatter_lukasiewicz(index: Tensor, w: Tensor, groups: int, unit: float) -> Tensor:
    return (w.new_zeros((groups, *w.shape[1:])).index_add(0, index, w - 1) + 1).clamp(min=0)


def _logaddexp(a: Tensor, b: Tensor) -> Tensor:
    return logsumexp(torch.stack(torch.broadcast_tensors(a, b)), 0)


@dataclass(frozen=True, repr=False)
class Monoid:
    """A commutative monoid on tensors: an elementwise operation, its unit,
    and the reductions along an axis and over the fibres of an index map.

    Parameters
    ----------
    name
        Shown in reprs and messages.
    op
        The elementwise binary operation, broadcasting.
    unit
        Its unit, a Python scalar.
    reduce_nonempty
        ``reduce_nonempty(t, dim)`` folds ``op`` along a non-empty axis.
    scatter
        ``scatter(index, w, groups, unit)`` folds ``op`` over the rows of
        ``w`` that ``index`` sends to each group (empty groups get ``unit``).
    idempotent
        Whether ``op(a, a) == a``.

    Examples
    --------
    >>> top = max_monoid(-math.inf)
    >>> top.reduce(torch.tensor([[1.0, 3.0], [2.0, 0.0]]), 0)
    tensor([2., 3.])
    >>> top.reduce(torch.zeros(0, 2), 0)
    tensor([-inf, -inf])
    >>> top.scatter(torch.tensor([1, 1, 0]), torch.tensor([4.0, 5.0, 6.0]), 3, top.unit)
    tensor([6., 5., -inf])
    """

    name: str
    op: Callable[[Tensor, Tensor], Tensor]
    unit: float | bool
    reduce_nonempty: Callable[[Tensor, int], Tensor]
    scatter: Callable[[Tensor, Tensor, int, float], Tensor]
    idempotent: bool = False

    def reduce(self, t: Tensor, dim: int) -> Tensor:
        """Fold ``op`` along ``dim``; an empty axis gives ``unit``."""
        if t.shape[dim] == 0:
            return t.new_full(_drop(t.shape, dim), self.unit)
        return self.reduce_nonempty(t, dim)

    def __repr__(self) -> str:
        return f"<monoid {self.name}>"


SUM = Monoid("sum", torch.add, 0.0, torch.sum, _scatter_reduce("sum"))
PRODUCT = Monoid("product", torch.mul, 1.0, torch.prod, _scatter_reduce("prod"))
LOGSUMEXP = Monoid("logsumexp", _logaddexp, -_INF, logsumexp, _scatter_logsumexp)
OR = Monoid("or", torch.logical_or, False, torch.any, _scatter_any, idempotent=True)
AND = Monoid("and", torch.logical_and, True, torch.all, _scatter_all, idempotent=True)
LUKASIEWICZ_AND = Monoid(
    "lukasiewicz", _lukasiewicz, 1.0, _lukasiewicz_reduce, _scatter_lukasiewicz
)


def max_monoid(unit: float) -> Monoid:
    """``max`` with the bottom ``unit`` of its domain (``-inf``, or ``0`` on
    non-negative weights).

    Examples
    --------
    >>> max_monoid(0.0).reduce(torch.tensor([0.2, 0.7]), 0)
    tensor(0.7000)
    """
    return Monoid(f"max{unit:g}", torch.maximum, unit, torch.amax, _scatter_reduce("amax"), True)


def min_monoid(unit: float) -> Monoid:
    """``min`` with the top ``unit`` of its domain (``+inf``, or ``1`` on
    ``[0, 1]``).

    Examples
    --------
    >>> min_monoid(1.0).reduce(torch.zeros(0), 0)
    tensor(1.)
    """
    return Monoid(f"min{unit:g}", torch.minimum, unit, torch.amin, _scatter_reduce("amin"), True)
