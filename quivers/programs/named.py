"""Tensors with named trailing axes: the values a program computes with.

A :class:`Value` is a torch tensor whose trailing axes are named by plates
(finite sets such as ``Item``) or by enumerated latents (``z``), and whose
leading axes are an unnamed batch (particles, chains, observation batches).
Operations align named axes by name and batch axes from the right, so a
K-indexed parameter meets an Item-indexed observation as a (K, Item) grid
without the user writing a single ``unsqueeze``.

Laws
----
- ``align`` is idempotent and order-insensitive up to a permutation of the
  union of names.
- Indexing ``x[i]`` where ``i`` enumerates the axis it indexes (``mu_k[z]``
  for a marginalized ``z``) renames that axis; no gather is performed.
- ``logsumexp`` over an axis of all ``-inf`` gives ``-inf`` with zero (not
  NaN) gradients.

Examples
--------
>>> import torch
>>> mu = Value(torch.tensor([-2.0, 2.0]), ("K",))
>>> y = Value(torch.tensor([0.0, 1.0, 3.0]), ("Item",))
>>> (tensors, dims, batch) = align([mu, y])
>>> dims, tensors[0].shape, tensors[1].shape
(('K', 'Item'), torch.Size([2, 1]), torch.Size([1, 3]))
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from quivers.capture import capturing
from quivers.categories import LOG, FinFunction, FinSet, pullback, right_kan
from quivers.categories import monoid
from quivers.errors import DataError, ShapeError

__all__ = [
    "Value", "align", "to_layout", "gather", "rename", "reduce_sum", "logsumexp", "reduce_max", "REDUCTIONS", "merge_axes",
    "scatter_sum", "plate_dims",
]


def plate_dims(index_set: FinSet | None) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """The named axes and sizes of a plate (products give several axes).

    A set that occurs more than once in a product names its later copies
    with primes, so that every axis has its own name: ``K * K`` (a
    transition matrix) has the axes ``K`` and ``K'``.

    Examples
    --------
    >>> K, T = FinSet("K", 2), FinSet("T", 3)
    >>> plate_dims(K * K * T)
    (('K', "K'", 'T'), (2, 2, 3))
    """
    if index_set is None:
        return (), ()
    factors = tuple(index_set.factors)
    names = [f.name + "'" * [g.name for g in factors[:i]].count(f.name) for i, f in enumerate(factors)]
    return tuple(names), tuple(f.size for f in factors)


@dataclass(frozen=True, slots=True)
class Value:
    """A tensor whose last ``len(dims)`` axes are named.

    ``values_in`` names the finite set an integer-valued tensor takes its
    values in (an index map ``Item -> G`` holds values in ``G``), which is
    how ``x[group]`` knows to index ``x``'s ``G`` axis. ``enumerates`` is
    set on the enumeration of a marginalized latent: it is ``arange`` along
    its own axis.
    """

    tensor: torch.Tensor
    dims: tuple[str, ...] = ()
    values_in: str | None = None
    enumerates: bool = False

    @property
    def batch_ndim(self) -> int:
        return self.tensor.dim() - len(self.dims)

    @property
    def batch_shape(self) -> torch.Size:
        return self.tensor.shape[: self.batch_ndim]

    def size(self, dim: str) -> int:
        return self.tensor.shape[self.batch_ndim + self.dims.index(dim)]

    def sizes(self) -> dict[str, int]:
        b = self.batch_ndim
        return {d: self.tensor.shape[b + i] for i, d in enumerate(self.dims)}


def _union(values: Sequence[Value]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for v in values:
        for d in v.dims:
            seen.setdefault(d, None)
    return tuple(seen)


def to_layout(v: Value, batch_ndim: int, dims: Sequence[str]) -> torch.Tensor:
    """``v``'s tensor with ``batch_ndim`` batch axes and named axes ``dims``
    (missing names become size-1 axes), ready to broadcast."""
    t = v.tensor
    b = t.dim() - len(v.dims)
    if b == batch_ndim and v.dims == tuple(dims):
        return t
    if b > batch_ndim:
        raise ShapeError(f"value with batch shape {tuple(v.batch_shape)} has more batch axes than {batch_ndim}")
    key = (v.dims, b, batch_ndim, tuple(dims))
    how = _LAYOUTS.get(key)
    if how is None:
        how = _LAYOUTS[key] = _layout_of(*key)
    perm, take = how
    if perm is not None:
        t = t.permute(perm)
    shape = t.shape
    # the new shape from the axes it takes (-1: a new axis of size 1); a
    # reshape to the same shape would still be a node of autograd
    shape = tuple(1 if i < 0 else shape[i] for i in take)
    return t if t.shape == shape else t.reshape(shape)


_LAYOUTS: dict[tuple, tuple] = {}


def _layout_of(names: tuple[str, ...], b: int, batch_ndim: int, dims: tuple[str, ...]) -> tuple:
    """How :func:`to_layout` moves a tensor with ``b`` batch axes and the
    named axes ``names``: the permutation of its axes (None when they are
    in order), and for each axis of the result the axis of the permuted
    tensor it is (-1 for a new axis of size 1). A function of the names
    alone, made once for each."""
    pos = {d: i for i, d in enumerate(dims)}
    order = sorted(range(len(names)), key=lambda i: pos[names[i]])
    perm = None if order == list(range(len(names))) else (*range(b), *(b + i for i in order))
    where = {names[i]: b + k for k, i in enumerate(order)}
    take = (-1,) * (batch_ndim - b) + tuple(range(b)) + tuple(where.get(d, -1) for d in dims)
    if len(_LAYOUTS) > 4096:
        _LAYOUTS.clear()
    return perm, take


def align(values: Sequence[Value]) -> tuple[list[torch.Tensor], tuple[str, ...], int]:
    """Tensors of ``values`` laid out on the union of their names.

    Returns the tensors, the union of names (first appearance order) and the
    common number of batch axes.
    """
    dims = _union(values)
    batch_ndim = max((v.batch_ndim for v in values), default=0)
    return [to_layout(v, batch_ndim, dims) for v in values], dims, batch_ndim


def rename(v: Value, old: str, new: str) -> Value:
    """``v`` with axis ``old`` called ``new``."""
    return Value(v.tensor, tuple(new if d == old else d for d in v.dims), v.values_in)


def gather(x: Value, index: Value, axis: str) -> Value:
    """Index ``x`` along its named ``axis`` by the integers in ``index``.

    The result has ``x``'s names without ``axis``, together with
    ``index``'s names.
    """
    if axis not in x.dims:
        raise ShapeError(f"cannot index axis `{axis}`: value has axes {list(x.dims)}")
    if index.enumerates and index.dims and index.values_in == axis:
        if index.dims[0] in x.dims:
            raise ShapeError(f"value already has axis `{index.dims[0]}`")
        return rename(x, axis, index.dims[0])
    size = x.size(axis)
    if axis in index.dims:
        # x[perm] for perm : A -> A: keep the input axis apart from the output one.
        x = rename(x, axis, axis + "'")
        axis = axis + "'"
    rest = tuple(d for d in x.dims if d != axis)
    dims = _union([Value(x.tensor, rest), index]) if rest else index.dims
    b = max(x.batch_ndim, index.batch_ndim)
    xt = to_layout(x, b, dims + (axis,))
    it = to_layout(index, b, dims).long()
    if index.values_in != axis.rstrip("'") and not capturing():
        # Integers of unchecked provenance (a Poisson draw, a let): a torch
        # gather out of range would be an opaque RuntimeError. Not while
        # capturing: the graph cannot read them, and in a potential they are
        # data or constants, checked by its eager first call.
        bad = (it < 0) | (it >= size)
        if bool(bad.any()):
            where = tuple(int(i) for i in torch.nonzero(bad)[0])
            raise DataError(
                f"index value {int(it[where])} at {where} is out of range for axis `{axis.rstrip(chr(39))}` of size {size}"
            )
    return Value(pullback(xt, it, check=False), dims)


def reduce_sum(v: Value, dims: Sequence[str] | None = None) -> Value:
    """Sum over the named axes ``dims`` (all named axes when None)."""
    dims = v.dims if dims is None else tuple(dims)
    if not dims:
        return v
    b = v.batch_ndim
    axes = [b + v.dims.index(d) for d in dims]
    return Value(v.tensor.sum(dim=axes), tuple(d for d in v.dims if d not in dims))


def logsumexp(v: Value, dim: str) -> Value:
    """Log-sum-exp over the named axis ``dim``, safe for all ``-inf`` slices
    (:func:`quivers.categories.logsumexp`)."""
    out = monoid.logsumexp(v.tensor, v.batch_ndim + v.dims.index(dim))
    return Value(out, tuple(d for d in v.dims if d != dim))


def reduce_max(v: Value, dim: str) -> Value:
    """The maximum over the named axis ``dim``: the sum of ``MAX_PLUS``, a
    block's reduction when it keeps the best value of its latent.

    Examples
    --------
    >>> reduce_max(Value(torch.tensor([[0.0, -1.0], [-3.0, -2.0]]), ("n", "z")), "z").tensor
    tensor([ 0., -2.])
    """
    axis = v.batch_ndim + v.dims.index(dim)
    return Value(v.tensor.amax(axis), tuple(d for d in v.dims if d != dim))


REDUCTIONS = {"logsumexp": logsumexp, "max": reduce_max}
"""The reductions a block can sum its latent out with, on log weights:
``logsumexp`` (the sum of ``LOG``: the marginal) and ``max`` (the sum of
``MAX_PLUS``: the best value, as in a most probable explanation)."""


def scatter_sum(v: Value, f: FinFunction) -> Value:
    """Carry the log-weight ``v`` along the function ``f : A -> B`` on its
    named axis ``A``: the sum over each fibre, i.e. the right Kan extension
    of :mod:`quivers.categories` in ``LOG``; the axis becomes ``B`` and an
    empty fibre gives ``0`` (``log 1``). A product domain ``A = M * T`` is
    read from the axes ``M`` and ``T`` of ``v`` (row-major, as the
    elements of ``M * T`` are numbered), which become the one axis ``B``;
    a product codomain ``B = G * H`` becomes the axes ``G`` and ``H``.

    Examples
    --------
    >>> from quivers.categories import FinSet
    >>> f = FinFunction(FinSet("Item", 3), FinSet("G", 2), [1, 1, 1])
    >>> out = scatter_sum(Value(torch.tensor([[-1.0, -2.0, -3.0]]), ("K", "Item")), f)
    >>> out.dims, out.tensor
    (('K', 'G'), tensor([[ 0., -6.]]))
    """
    doms, cod = plate_dims(f.dom)[0], f.cod.name
    missing = [d for d in doms if d not in v.dims]
    if missing:
        raise ShapeError(f"cannot carry a value on axes {list(v.dims)} along `{f.dom.name} -> {cod}`: no axis {missing}")
    b = v.batch_ndim
    axes = [b + v.dims.index(d) for d in doms]
    t = v.tensor.movedim(axes, list(range(len(axes))))
    t = t.reshape(f.dom.size, *t.shape[len(axes):])
    first = min(axes)
    rest = [d for d in v.dims if d not in doms]
    out = right_kan(f, t, LOG).movedim(0, first)
    at = first - b
    cods, sizes = plate_dims(f.cod)
    if len(cods) > 1:  # one group per pair: the axes of G and H, row-major
        out = out.reshape(*out.shape[:first], *sizes, *out.shape[first + 1:])
        return Value(out, tuple(rest[:at]) + cods + tuple(rest[at:]))
    return Value(out, tuple(rest[:at]) + (cod,) + tuple(rest[at:]))


def merge_axes(v: Value, dims: Sequence[str], sizes: Sequence[int], name: str) -> Value:
    """``v`` with its axes ``dims`` (of sizes ``sizes``) made one axis
    ``name``, row-major as the elements of a product ``G * H`` are numbered:
    a value on a product grouping read through a product map. A factor
    ``v`` lacks is broadcast.

    Examples
    --------
    >>> v = Value(torch.tensor([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]), ("G", "H"))
    >>> out = merge_axes(v, ("G", "H"), (2, 3), "G*H")
    >>> out.dims, out.tensor
    (('G*H',), tensor([0., 1., 2., 3., 4., 5.]))
    >>> merge_axes(Value(torch.tensor([1.0, 2.0]), ("G",)), ("G", "H"), (2, 3), "G*H").tensor
    tensor([1., 1., 1., 2., 2., 2.])
    """
    rest = tuple(d for d in v.dims if d not in dims)
    b = v.batch_ndim
    t = to_layout(v, b, rest + tuple(dims))
    t = t.expand(*t.shape[: b + len(rest)], *sizes)
    t = t.reshape(*t.shape[: b + len(rest)], math.prod(sizes))
    return Value(t, rest + (name,))
