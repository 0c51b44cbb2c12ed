"""Named finite sets: the objects of every category in quivers.

A :class:`FinSet` is a name and a size. Products and coproducts are FinSets
too, and remember what they were built from:

- ``A * B`` has size ``|A| * |B|``; its element ``(a, b)`` sits at the
  row-major index ``a * |B| + b``, so a weight over ``A * B`` reshapes to
  an ``(|A|, |B|)`` tensor. ``(A * B).factors == (A, B)``.
- ``A + B`` has size ``|A| + |B|``; ``A``'s elements come first.
- The unit ``FinSet.unit()`` (name ``"1"``, size 1) is the empty product and
  the empty set ``FinSet.empty()`` (name ``"0"``, size 0) the empty
  coproduct.

Laws
----
Products and coproducts are flattened, so both monoidal structures are
strict: ``(A * B) * C == A * (B * C)`` with factors ``(A, B, C)``, and
``A * FinSet.unit() == A == A + FinSet.empty()``. Row-major indexing makes
the associator the identity on indices, which is why it needs no tensor.

Two FinSets are equal when their names and sizes are; ``factors`` and
``summands`` do not take part, so a product compares equal to a plain set of
the same name and size.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field

from quivers.errors import InvalidValueError, QuiversTypeError

__all__ = ["FinSet"]

_UNIT_NAME = "1"
_EMPTY_NAME = "0"


@dataclass(frozen=True)
class FinSet:
    """A finite set with a name: the elements are ``0, ..., size - 1``.

    Parameters
    ----------
    name
        How the set is shown in messages and reprs.
    size
        The number of elements, a non-negative integer.

    Examples
    --------
    >>> A, B = FinSet("A", 2), FinSet("B", 3)
    >>> A * B
    FinSet('A', 2) * FinSet('B', 3)
    >>> (A * B).name, (A * B).size, (A * B).shape
    ('A*B', 6, (2, 3))
    >>> (A + B).size
    5
    >>> A * FinSet.unit() == A
    True
    >>> FinSet("A", -1)
    Traceback (most recent call last):
    ...
    quivers.errors.InvalidValueError: size of `A` must be a non-negative integer, got -1
    """

    name: str
    size: int
    _factors: tuple[FinSet, ...] | None = field(default=None, compare=False, repr=False)
    _summands: tuple[FinSet, ...] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise QuiversTypeError(f"the name of a FinSet must be a non-empty string, got {self.name!r}")
        size = self.size
        if isinstance(size, bool):
            raise InvalidValueError(f"size of `{self.name}` must be a non-negative integer, got {size!r}")
        try:
            size = operator.index(size)
        except TypeError:
            raise InvalidValueError(
                f"size of `{self.name}` must be a non-negative integer, got {size!r}"
            ) from None
        if size < 0:
            raise InvalidValueError(f"size of `{self.name}` must be a non-negative integer, got {size}")
        object.__setattr__(self, "size", size)
        # A user's FinSet("1", 1) is the unit and compares equal to it, so it
        # must also behave like it under products (no axis of its own).
        if self._factors is None and (self.name, size) == (_UNIT_NAME, 1):
            object.__setattr__(self, "_factors", ())
        if self._summands is None and (self.name, size) == (_EMPTY_NAME, 0):
            object.__setattr__(self, "_summands", ())

    @classmethod
    def unit(cls) -> FinSet:
        """The one-element set, the unit of ``*`` (the empty product).

        Examples
        --------
        >>> FinSet.unit(), FinSet.unit().size, FinSet.unit().factors
        (FinSet.unit(), 1, ())
        """
        return cls(_UNIT_NAME, 1, ())

    @classmethod
    def empty(cls) -> FinSet:
        """The empty set, the unit of ``+`` (the empty coproduct).

        Examples
        --------
        >>> FinSet.empty().size, FinSet("A", 2) + FinSet.empty()
        (0, FinSet('A', 2))
        """
        return cls(_EMPTY_NAME, 0, None, ())

    @property
    def factors(self) -> tuple[FinSet, ...]:
        """The sets this one is the product of; ``(self,)`` for a plain set.

        A plate over ``A * B * C`` has one axis per factor.

        Examples
        --------
        >>> A, B, C = FinSet("A", 2), FinSet("B", 3), FinSet("C", 4)
        >>> (A * B * C).factors == (A, B, C)
        True
        >>> A.factors == (A,)
        True
        """
        return (self,) if self._factors is None else self._factors

    @property
    def summands(self) -> tuple[FinSet, ...]:
        """The sets this one is the coproduct of; ``(self,)`` for a plain set.

        Examples
        --------
        >>> A, B = FinSet("A", 2), FinSet("B", 3)
        >>> (A + B).summands == (A, B)
        True
        """
        return (self,) if self._summands is None else self._summands

    @property
    def shape(self) -> tuple[int, ...]:
        """The sizes of the factors: the shape a weight over this set
        reshapes to, row-major.

        Examples
        --------
        >>> (FinSet("A", 2) * FinSet("B", 3)).shape
        (2, 3)
        >>> FinSet.unit().shape
        ()
        """
        return tuple(f.size for f in self.factors)

    def __mul__(self, other: FinSet) -> FinSet:
        if not isinstance(other, FinSet):
            return NotImplemented
        factors = self.factors + other.factors
        if len(factors) == 1:
            return factors[0]
        if not factors:
            return FinSet.unit()
        name = "*".join(_product_operand(f) for f in factors)
        return FinSet(name, math.prod(f.size for f in factors), factors)

    def __add__(self, other: FinSet) -> FinSet:
        if not isinstance(other, FinSet):
            return NotImplemented
        summands = self.summands + other.summands
        if len(summands) == 1:
            return summands[0]
        if not summands:
            return FinSet.empty()
        name = "+".join(s.name for s in summands)
        return FinSet(name, sum(s.size for s in summands), None, summands)

    def __repr__(self) -> str:
        if self._factors is not None:
            if not self._factors:
                return "FinSet.unit()"
            return " * ".join(_repr_operand(f) for f in self._factors)
        if self._summands is not None:
            if not self._summands:
                return "FinSet.empty()"
            return " + ".join(repr(s) for s in self._summands)
        return f"FinSet({self.name!r}, {self.size!r})"

    def __str__(self) -> str:
        return self.name

    def _repr_pretty_(self, printer, cycle: bool) -> None:
        # IPython's protocol, which hypothesis also follows: show the
        # evaluable repr rather than the dataclass fields.
        printer.text(repr(self))


def _product_operand(factor: FinSet) -> str:
    # A coproduct inside a product needs brackets: "(A+B)*C", not "A+B*C".
    return f"({factor.name})" if len(factor.summands) > 1 else factor.name


def _repr_operand(factor: FinSet) -> str:
    return f"({factor!r})" if len(factor.summands) > 1 else repr(factor)
