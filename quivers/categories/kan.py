"""Kan extensions of weights along functions: grouped marginalization.

For a function ``f: A -> B`` and a weight ``w`` over ``A`` (a tensor whose
leading axis is ``A``; trailing axes are carried along), in a semiring S:

- the left Kan extension sums each fibre,
  ``left_kan(f, w, S)[b] = S-sum of w[a] over f(a) == b``;
- the right Kan extension multiplies each fibre,
  ``right_kan(f, w, S)[b] = S-product of w[a] over f(a) == b``;
- an empty fibre gives ``S.zero`` (left) or ``S.one`` (right).

In ``LOG``, ``right_kan`` is a scatter-add of log-weights (independent
factors of a group multiply) and ``left_kan`` a scatter-logsumexp
(alternatives of a group add): exactly the per-group accumulation of a
grouped marginalization, where rows of a response are fibred over a
grouping plate by an index map. :func:`fibre_sum` and :func:`fibre_prod`
are the same operations on a bare index tensor, checked, for callers that
hold an index rather than a :class:`~quivers.categories.function.FinFunction`.
:func:`pullback` is the other direction, ``f* w = w[f]``, on a table's
last axis, broadcast over its others without copying the table.

Laws
----
- Functoriality: ``right_kan(f >> g, w) == right_kan(g, right_kan(f, w))``
  and likewise for ``left_kan``; the identity function changes nothing.
- Adjunctions, with ``f*`` the pullback ``w -> w[f]`` and ``<=`` the natural
  order: ``left_kan(f, -) -| f*`` in every idempotent semiring, and
  ``f* -| right_kan(f, -)`` where ``mul`` is the meet (``BOOL``,
  ``GODEL``). Where ``mul`` is not the meet (``MAX_PLUS``: ``+``) the
  product over a fibre is not a right adjoint, because ``v <= w1 + w2``
  does not follow from ``v <= w1`` and ``v <= w2``.
"""

from __future__ import annotations

import operator

import torch  # noqa: F401  (the doctests use it)
from torch import Tensor

from quivers.categories.finset import FinSet
from quivers.categories.function import FinFunction, _as_index, _check_range
from quivers.categories.semiring import Semiring
from quivers.errors import InvalidValueError, QuiversTypeError, ShapeError

__all__ = ["left_kan", "right_kan", "fibre_sum", "fibre_prod", "pullback"]


def left_kan(f: FinFunction, w: Tensor, semiring: Semiring) -> Tensor:
    """Sum ``w`` over the fibres of ``f``: a weight over ``f.cod``.

    Parameters
    ----------
    f
        The function ``A -> B`` to extend along.
    w
        A weight of shape ``(|A|, *trailing)``.
    semiring
        Where the weights live.

    Returns
    -------
    Tensor
        Shape ``(|B|, *trailing)``.

    Examples
    --------
    >>> from quivers.categories.semiring import LOG, PROB
    >>> f = FinFunction(FinSet("Item", 3), FinSet("G", 3), [0, 0, 2])
    >>> left_kan(f, torch.tensor([1.0, 2.0, 3.0]), PROB)
    tensor([3., 0., 3.])
    >>> left_kan(f, torch.tensor([0.0, 0.0, -1.0]), LOG)
    tensor([ 0.6931,    -inf, -1.0000])
    """
    w = _check_weight(f, w, semiring, "left")
    return semiring.fibre_sum(f.mapping.to(w.device), w, f.cod.size)


def right_kan(f: FinFunction, w: Tensor, semiring: Semiring) -> Tensor:
    """Multiply ``w`` over the fibres of ``f``: a weight over ``f.cod``.

    Parameters
    ----------
    f
        The function ``A -> B`` to extend along.
    w
        A weight of shape ``(|A|, *trailing)``.
    semiring
        Where the weights live.

    Returns
    -------
    Tensor
        Shape ``(|B|, *trailing)``.

    Examples
    --------
    >>> from quivers.categories.semiring import LOG
    >>> f = FinFunction(FinSet("Item", 3), FinSet("G", 3), [0, 0, 2])
    >>> right_kan(f, torch.tensor([-1.0, -2.0, -float("inf")]), LOG)
    tensor([-3.,  0., -inf])
    """
    w = _check_weight(f, w, semiring, "right")
    return semiring.fibre_prod(f.mapping.to(w.device), w, f.cod.size)


def fibre_sum(index: Tensor, w: Tensor, num_groups: int, semiring: Semiring) -> Tensor:
    """``left_kan`` along the function ``a -> index[a]`` into ``range(num_groups)``.

    Examples
    --------
    >>> from quivers.categories.semiring import MAX_PLUS
    >>> fibre_sum(torch.tensor([1, 1, 0]), torch.tensor([4.0, 5.0, 6.0]), 3, MAX_PLUS)
    tensor([6., 5., -inf])
    >>> fibre_sum(torch.tensor([1, 3]), torch.tensor([4.0, 5.0]), 3, MAX_PLUS)
    Traceback (most recent call last):
    ...
    quivers.errors.InvalidValueError: image of element 1 of the weight's leading axis under `index` is 3, out of range for `groups` (size 3)
    """
    index, w, groups = _check_index(index, w, num_groups, semiring)
    return semiring.fibre_sum(index, w, groups)


def fibre_prod(index: Tensor, w: Tensor, num_groups: int, semiring: Semiring) -> Tensor:
    """``right_kan`` along the function ``a -> index[a]`` into ``range(num_groups)``.

    Examples
    --------
    >>> from quivers.categories.semiring import LOG
    >>> fibre_prod(torch.tensor([1, 1, 0]), torch.tensor([-1.0, -2.0, -3.0]), 3, LOG)
    tensor([-3., -3.,  0.])
    """
    index, w, groups = _check_index(index, w, num_groups, semiring)
    return semiring.fibre_prod(index, w, groups)


def pullback(table: Tensor, index: Tensor, check: bool = True) -> Tensor:
    """The pullback ``table[..., index]`` of the last axis of ``table``
    along the integers ``index``, elementwise over the other axes:
    ``out[b] = table[b, index[b]]`` for every ``b`` of the broadcast of
    ``table.shape[:-1]`` and ``index.shape``.

    Neither operand is expanded to the other's shape: the axes only the
    index has (the rows of the data) are read as one gathered axis of the
    table as it is, so a forward and backward pass cost
    ``O(|table| + |out|)`` and allocate nothing of the output's size but
    the output. A gather on the table expanded to the index's shape would
    cost ``O(|out| * table.shape[-1])`` in its backward (the gradient of
    a gather is written into a zero tensor of its input's shape): for a
    table over a latent's values meeting an index over the rows of the
    data (LDA's ``phi[z]`` and its words), ``O(N K V)`` instead of
    ``O(N K + K V)``. The result is a view laid out with the table's axes
    outermost; the gradient of each entry of the table adds its terms in
    the row-major order of the broadcast shape.

    Parameters
    ----------
    table
        Shape ``(*batch, V)``.
    index
        Integers in ``[0, V)``, of a shape that broadcasts with ``batch``.
    check
        Whether to check the range of ``index`` (callers that know it skip
        the check, which waits for the values on an accelerator).

    Examples
    --------
    >>> table = torch.tensor([[0.0, 1.0, 2.0], [10.0, 11.0, 12.0]])[:, None, :]   # (K=2, 1, V=3)
    >>> pullback(table, torch.tensor([2, 0, 0, 1]))                                # (K, N=4)
    tensor([[ 2.,  0.,  0.,  1.],
            [12., 10., 10., 11.]])
    >>> pullback(table, torch.tensor([3]))
    Traceback (most recent call last):
    ...
    quivers.errors.InvalidValueError: index 3 at (0,) is out of range for an axis of size 3
    """
    size = table.shape[-1]
    index = index.long()
    if check:
        bad = (index < 0) | (index >= size)
        if bool(bad.any()):
            where = tuple(int(i) for i in torch.nonzero(bad)[0])
            raise InvalidValueError(f"index {int(index[where])} at {where} is out of range for an axis of size {size}")
    how = _PULLBACKS.get((table.shape, index.shape))
    if how is None:
        how = _pullback_of(table.shape, index.shape)
    squeezed, i_shape, perm, lead, flat, gathered, back, shape = how
    # each view of the table only where it changes the shape: each is a
    # node of autograd that every call would run again
    t = table if squeezed is None else table.reshape(squeezed)
    i = index if i_shape is None else index.reshape(i_shape)
    if perm is not None:
        i = i.permute(perm)
    # the index's own axes made one gathered axis: the table is read as it is, never expanded
    out = torch.gather(t, -1, i.reshape(*i.shape[: len(lead)], flat).expand(*lead, flat))
    if gathered is not None:
        out = out.view(gathered)
    if back is not None:
        out = out.permute(back)
    return out if shape is None else out.reshape(shape)


_PULLBACKS: dict[tuple, tuple] = {}


def _pullback_of(table: torch.Size, index: torch.Size) -> tuple:
    """How :func:`pullback` reads a table of shape ``table`` at an index of
    shape ``index``, made once for each pair of shapes: the table without
    its axes of size 1 (None when it has none), the index at the common
    rank (None when it has it), the permutation that puts the index's
    axes shared with the table first and its own axes after them (None
    when they are in order), the table's axes, the number of entries
    gathered per row, the gathered result's shape (None when it is
    already that), the permutation back and the final shape (None where
    not needed)."""
    size = table[-1]
    rank = max(len(table) - 1, len(index))
    rows = (1,) * (rank + 1 - len(table)) + tuple(table[:-1])
    cols = (1,) * (rank - len(index)) + tuple(index)
    own = [d for d in range(rank) if rows[d] != 1]  # the table's axes, shared with the index or not
    only = [d for d in range(rank) if rows[d] == 1 and cols[d] != 1]  # the index's own axes
    order = own + only  # the axes of size 1 in both go last, and are restored by the last reshape
    rest = [d for d in range(rank) if d not in order]
    flat = 1
    for d in only:
        flat *= cols[d]
    lead = tuple(rows[d] for d in own)
    how = (
        # the table's own axes keep their order: it only loses its axes of size 1
        None if len(table) == len(lead) + 1 else lead + (size,),
        None if len(index) == rank else cols,
        None if order + rest == list(range(rank)) else (*order, *rest),
        lead,
        flat,
        None if len(only) == 1 else lead + tuple(cols[d] for d in only),
        None if order == sorted(order) else tuple(sorted(range(len(order)), key=order.__getitem__)),
        torch.broadcast_shapes(rows, cols) if rest else None,
    )
    if len(_PULLBACKS) > 4096:
        _PULLBACKS.clear()
    _PULLBACKS[(table, index)] = how
    return how


def _check_weight(f: object, w: object, semiring: object, side: str) -> Tensor:
    if not isinstance(f, FinFunction):
        raise QuiversTypeError(
            f"{side}_kan extends along a FinFunction, got {type(f).__name__} {f!r}"
        )
    _check_is_semiring(semiring)
    w = semiring.check_dtype(w, f"the weight of {side}_kan along `{f.dom} -> {f.cod}`")
    if w.dim() == 0 or w.shape[0] != f.dom.size:
        raise ShapeError(
            f"{side}_kan along `{f.dom} -> {f.cod}`: the weight has shape {tuple(w.shape)}, "
            f"but its leading axis must be `{f.dom}` (size {f.dom.size})"
        )
    return w


def _check_index(index: object, w: object, num_groups: object, semiring: object) -> tuple[Tensor, Tensor, int]:
    try:
        groups = operator.index(num_groups)  # type: ignore[arg-type]
    except TypeError:
        raise QuiversTypeError(f"`num_groups` must be an integer, got {num_groups!r}") from None
    if groups < 0:
        raise InvalidValueError(f"`num_groups` must be non-negative, got {groups}")
    _check_is_semiring(semiring)
    w = semiring.check_dtype(w, "the weight of a fibre reduction")
    index = _as_index(index, "`index`")
    if index.dim() != 1 or w.dim() == 0 or index.shape[0] != w.shape[0]:
        raise ShapeError(
            f"`index` of shape {tuple(index.shape)} does not index the leading axis of a weight "
            f"of shape {tuple(w.shape)}; expected `index` of shape ({w.shape[0] if w.dim() else '?'},)"
        )
    index = index.to(w.device)
    _check_range(index, FinSet("groups", groups), "under `index`", "of the weight's leading axis")
    return index, w, groups


def _check_is_semiring(semiring: object) -> None:
    if not isinstance(semiring, Semiring):
        raise QuiversTypeError(f"expected a Semiring such as `LOG` or `PROB`, got {semiring!r}")
