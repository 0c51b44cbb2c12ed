"""Functions between finite sets, and the deterministic structure maps.

A :class:`FinFunction` ``A -> B`` sends each element of ``A`` to one of
``B``. It is a morphism in every semiring at once (the matrix with ``one``
at ``(a, f(a))`` and ``zero`` elsewhere) and a deterministic kernel, so it
composes with any :class:`~quivers.categories.morphism.Morphism` or
:class:`~quivers.categories.kernel.Kernel` without being turned into a
matrix: ``f >> m`` reindexes the rows of ``m`` (the pullback ``f*``) and
``m >> f`` sums the columns of ``m`` over the fibres of ``f``.

The structure maps of a Markov category are functions: :func:`copy`
``A -> A*A``, :func:`delete` ``A -> 1``, :func:`swap` ``A*B -> B*A`` and the
:func:`projections` ``A*B -> A``, ``A*B -> B``; :func:`injections` are the
coproduct's.

Laws
----
- ``f.as_morphism(S)`` is a functor: composites and products of functions
  go to composites and products of matrices, in every semiring ``S``;
- counit: ``copy(A) >> (delete(A) @ id(A)) == id(A) == copy(A) >> (id(A) @ delete(A))``;
- coassociativity and commutativity of ``copy``, ``swap >> swap == id``.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from quivers.categories.finset import FinSet
from quivers.categories.kernel import KERNEL_SEMIRINGS, Kernel
from quivers.categories.morphism import Arrow, Morphism, _check_objects
from quivers.categories.semiring import PROB, Semiring
from quivers.errors import InvalidValueError, QuiversTypeError, ShapeError

__all__ = [
    "FinFunction",
    "identity",
    "copy",
    "delete",
    "swap",
    "projections",
    "injections",
]


@dataclass(frozen=True, eq=False, init=False, repr=False)
class FinFunction(Arrow):
    """A function ``dom -> cod``: ``mapping[a]`` is the image of ``a``.

    Parameters
    ----------
    dom, cod
        The domain and codomain.
    mapping
        ``|dom|`` integers in ``range(|cod|)``: a sequence or an integer
        tensor. It is stored as a ``LongTensor``.

    Examples
    --------
    >>> A, B = FinSet("A", 3), FinSet("B", 2)
    >>> f = FinFunction(A, B, [0, 1, 1])
    >>> f(2)
    1
    >>> f.as_morphism(PROB).tensor
    tensor([[1., 0.],
            [0., 1.],
            [0., 1.]])
    >>> f.pullback(torch.tensor([10.0, 20.0]))
    tensor([10., 20., 20.])
    >>> FinFunction(A, B, [0, 2, 1])
    Traceback (most recent call last):
    ...
    quivers.errors.InvalidValueError: image of element 1 of `A` under `A -> B` is 2, out of range for `B` (size 2)
    """

    dom: FinSet
    cod: FinSet
    mapping: Tensor

    def __init__(self, dom: FinSet, cod: FinSet, mapping: Sequence[int] | Tensor) -> None:
        _check_objects(type(self).__name__, dom, cod, PROB)
        mapping = _as_index(mapping, f"the mapping of `{dom} -> {cod}`")
        if tuple(mapping.shape) != (dom.size,):
            raise ShapeError(
                f"the mapping of `{dom} -> {cod}` has shape {tuple(mapping.shape)}; "
                f"expected ({dom.size},), one image per element of `{dom}`"
            )
        _check_range(mapping, cod, f"under `{dom} -> {cod}`", f"of `{dom}`")
        self._set(dom, cod, mapping)

    def _set(self, dom: FinSet, cod: FinSet, mapping: Tensor) -> None:
        object.__setattr__(self, "dom", dom)
        object.__setattr__(self, "cod", cod)
        object.__setattr__(self, "mapping", mapping)

    @classmethod
    def _trusted(cls, dom: FinSet, cod: FinSet, mapping: Tensor) -> FinFunction:
        out = cls.__new__(cls)
        out._set(dom, cod, mapping)
        return out

    @classmethod
    def id(cls, obj: FinSet) -> FinFunction:
        """The identity function on ``obj``.

        Examples
        --------
        >>> FinFunction.id(FinSet("A", 3)).mapping
        tensor([0, 1, 2])
        """
        return cls._trusted(obj, obj, torch.arange(obj.size))

    @property
    def is_stochastic(self) -> bool:
        return True

    def __call__(self, element: int) -> int:
        try:
            element = operator.index(element)
        except TypeError:
            raise QuiversTypeError(f"{element!r} is not an element of `{self.dom}`") from None
        if not 0 <= element < self.dom.size:
            raise InvalidValueError(
                f"{element!r} is not an element of `{self.dom}` (size {self.dom.size})"
            )
        return int(self.mapping[element])

    def then(self, other: Arrow) -> Arrow:
        """Compose: functions compose as functions; before a morphism, a
        function reindexes its rows."""
        self._check_composable(other)
        if isinstance(other, FinFunction):
            return FinFunction._trusted(self.dom, other.cod, other.mapping[self.mapping])
        if isinstance(other, Morphism):
            rows = other.tensor[..., self.mapping.to(other.tensor.device), :]
            return type(other)._trusted(self.dom, other.cod, rows, other.semiring)
        raise QuiversTypeError(
            f"cannot compose `{self.dom} -> {self.cod}` with {type(other).__name__} {other!r}"
        )

    def par(self, other: Arrow) -> Arrow:
        """The product function ``(a, b) -> (f(a), g(b))``, or, beside a
        morphism, this function's matrix in that morphism's semiring."""
        if isinstance(other, FinFunction):
            pairs = self.mapping[:, None] * other.cod.size + other.mapping[None, :]
            return FinFunction._trusted(self.dom * other.dom, self.cod * other.cod, pairs.reshape(-1))
        if isinstance(other, Morphism):
            theirs = other.tensor
            return self.as_morphism(other.semiring, theirs.dtype, theirs.device).par(other)
        raise QuiversTypeError(
            f"cannot tensor `{self.dom} -> {self.cod}` with {type(other).__name__} {other!r}"
        )

    def _after(self, first: Morphism) -> Morphism:
        # m >> f sums each row of m over the fibres of f: the left Kan
        # extension along f, applied to the codomain axis.
        columns = first.tensor.movedim(-1, 0)
        pushed = first.semiring.fibre_sum(self.mapping.to(columns.device), columns, self.cod.size)
        return first._result_type(self)._trusted(
            first.dom, self.cod, pushed.movedim(0, -1), first.semiring
        )

    def as_morphism(
        self, semiring: Semiring, dtype: torch.dtype | None = None, device: torch.device | None = None
    ) -> Morphism:
        """The matrix of this function in ``semiring``: a :class:`Kernel` in
        ``PROB`` and ``LOG``, a :class:`Morphism` elsewhere.

        Examples
        --------
        >>> from quivers.categories.semiring import BOOL
        >>> delete(FinSet("A", 2)).as_morphism(BOOL).tensor
        tensor([[True],
                [True]])
        """
        dtype = semiring.tensor_dtype(dtype)
        mapping = self.mapping.to(device)
        hits = mapping[:, None] == torch.arange(self.cod.size, device=mapping.device)[None, :]
        one = torch.tensor(semiring.one, dtype=dtype, device=mapping.device)
        zero = torch.tensor(semiring.zero, dtype=dtype, device=mapping.device)
        cls = Kernel if semiring in KERNEL_SEMIRINGS else Morphism
        return cls._trusted(self.dom, self.cod, torch.where(hits, one, zero), semiring)

    def pullback(self, w: Tensor) -> Tensor:
        """Reindex a weight over ``cod`` to one over ``dom``:
        ``(f* w)[a] = w[f(a)]``. ``w``'s leading axis is ``cod``; trailing
        axes are carried along.

        Examples
        --------
        >>> f = FinFunction(FinSet("A", 2), FinSet("B", 1), [0, 0])
        >>> f.pullback(torch.tensor([[1.0, 2.0]]))
        tensor([[1., 2.],
                [1., 2.]])
        """
        if not isinstance(w, Tensor) or w.dim() == 0 or w.shape[0] != self.cod.size:
            shape = tuple(w.shape) if isinstance(w, Tensor) else type(w).__name__
            raise ShapeError(
                f"cannot pull back a weight of shape {shape} along `{self.dom} -> {self.cod}`: "
                f"its leading axis must be `{self.cod}` (size {self.cod.size})"
            )
        return w[self.mapping.to(w.device)]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FinFunction):
            return NotImplemented
        return (self.dom, self.cod) == (other.dom, other.cod) and torch.equal(
            self.mapping, other.mapping
        )

    def __hash__(self) -> int:
        return hash((self.dom, self.cod, tuple(self.mapping.tolist())))

    def __repr__(self) -> str:
        return f"FinFunction({self.dom!r}, {self.cod!r}, {self.mapping.tolist()!r})"


def _as_index(values: object, what: str) -> Tensor:
    """``values`` as a 1-D-or-more LongTensor, or a QuiversTypeError."""
    if isinstance(values, Tensor):
        if values.dtype == torch.bool or values.is_floating_point() or values.is_complex():
            raise QuiversTypeError(f"{what} must hold integers, got dtype {values.dtype}")
        return values.long()
    try:
        return torch.tensor([operator.index(v) for v in values], dtype=torch.long)  # type: ignore[attr-defined]
    except TypeError:
        raise QuiversTypeError(f"{what} must be a sequence of integers, got {values!r}") from None


def _check_range(index: Tensor, cod: FinSet, under: str, of: str) -> None:
    bad = (index < 0) | (index >= cod.size)
    if bool(bad.any()):
        where = int(bad.nonzero()[0, 0])
        raise InvalidValueError(
            f"image of element {where} {of} {under} is {int(index[where])}, "
            f"out of range for `{cod}` (size {cod.size})"
        )


def identity(
    obj: FinSet,
    semiring: Semiring = PROB,
    dtype: torch.dtype | None = None,
    device: torch.device | None = None,
) -> Morphism:
    """The identity morphism on ``obj`` in ``semiring`` (a Kernel in PROB
    and LOG).

    Examples
    --------
    >>> from quivers.categories.semiring import MAX_PLUS
    >>> identity(FinSet("A", 2), MAX_PLUS).tensor
    tensor([[0., -inf],
            [-inf, 0.]])
    """
    _check_objects("identity", obj, obj, semiring)
    kind = Kernel if semiring in KERNEL_SEMIRINGS else Morphism
    return kind.id(obj, semiring, dtype, device)


def copy(obj: FinSet) -> FinFunction:
    """The diagonal ``obj -> obj * obj``, ``a -> (a, a)``.

    Examples
    --------
    >>> copy(FinSet("A", 2)).mapping
    tensor([0, 3])
    """
    elements = torch.arange(obj.size)
    return FinFunction._trusted(obj, obj * obj, elements * obj.size + elements)


def delete(obj: FinSet) -> FinFunction:
    """The unique function ``obj -> 1``.

    Examples
    --------
    >>> delete(FinSet("A", 3)).cod
    FinSet.unit()
    """
    return FinFunction._trusted(obj, FinSet.unit(), torch.zeros(obj.size, dtype=torch.long))


def swap(left: FinSet, right: FinSet) -> FinFunction:
    """The symmetry ``left * right -> right * left``, ``(a, b) -> (b, a)``.

    Examples
    --------
    >>> swap(FinSet("A", 2), FinSet("B", 3)).mapping
    tensor([0, 2, 4, 1, 3, 5])
    """
    a = torch.arange(left.size)[:, None]
    b = torch.arange(right.size)[None, :]
    return FinFunction._trusted(left * right, right * left, (b * left.size + a).reshape(-1))


def projections(left: FinSet, right: FinSet) -> tuple[FinFunction, FinFunction]:
    """The projections ``left * right -> left`` and ``left * right -> right``.

    In a Markov category these are ``id @ delete`` and ``delete @ id``.

    Examples
    --------
    >>> first, second = projections(FinSet("A", 2), FinSet("B", 3))
    >>> first.mapping, second.mapping
    (tensor([0, 0, 0, 1, 1, 1]), tensor([0, 1, 2, 0, 1, 2]))
    """
    both = left * right
    first = torch.arange(left.size).repeat_interleave(right.size)
    second = torch.arange(right.size).repeat(left.size)
    return FinFunction._trusted(both, left, first), FinFunction._trusted(both, right, second)


def injections(left: FinSet, right: FinSet) -> tuple[FinFunction, FinFunction]:
    """The coproduct injections ``left -> left + right`` and
    ``right -> left + right``.

    Examples
    --------
    >>> inl, inr = injections(FinSet("A", 2), FinSet("B", 1))
    >>> inl.mapping, inr.mapping
    (tensor([0, 1]), tensor([2]))
    """
    both = left + right
    return (
        FinFunction._trusted(left, both, torch.arange(left.size)),
        FinFunction._trusted(right, both, torch.arange(right.size) + left.size),
    )
