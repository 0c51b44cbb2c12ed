"""Continuous objects: the reals of a given dimension, and products of them
with finite sets.

Laws
----
- ``(A * B) * C == A * (B * C)``: products are flattened, as FinSets' are;
- a product's ``dim`` is the sum of its factors' widths (a finite set counts
  its size: its elements are encoded as one-hot rows).

Examples
--------
>>> from quivers.categories import FinSet
>>> H = Real("H", 2)
>>> (FinSet("T", 4) * H * H).factors
(FinSet('T', 4), Real(name='H', dim=2), Real(name='H', dim=2))
"""

from __future__ import annotations

from dataclasses import dataclass, field

from quivers.categories import FinSet
from quivers.errors import QuiversTypeError

__all__ = ["Real", "width", "is_continuous", "matches"]


@dataclass(frozen=True)
class Real:
    """The continuous object of ``dim`` reals (QVR's ``object X : Real n``).

    A product with other objects (``E * H``, ``Token * H``) is a ``Real``
    whose ``factors`` remember its parts; its ``dim`` is the width of the
    encoded input (a finite set counts its size, as a one-hot row).

    Examples
    --------
    >>> E, H = Real("E", 3), Real("H", 2)
    >>> (E * H).dim, (E * H).factors == (E, H)
    (5, True)
    >>> (FinSet("T", 4) * H).dim
    6
    """

    name: str
    dim: int
    _factors: tuple[FinSet | Real, ...] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.dim, bool) or not isinstance(self.dim, int) or self.dim < 1:
            raise QuiversTypeError(f"the dimension of `{self.name}` must be a positive integer, got {self.dim!r}")

    @property
    def factors(self) -> tuple[FinSet | Real, ...]:
        """The objects this one is the product of; ``(self,)`` for a plain one."""
        return self._factors if self._factors is not None else (self,)

    @property
    def size(self) -> int:
        """The width of an encoded point (so code that reads ``.size`` of an
        object gets the number of coordinates)."""
        return self.dim

    def __mul__(self, other: FinSet | Real) -> Real:
        if not isinstance(other, (FinSet, Real)):
            return NotImplemented
        return _product(self.factors + tuple(other.factors))

    def __rmul__(self, other: FinSet) -> Real:
        if not isinstance(other, FinSet):
            return NotImplemented
        return _product(tuple(other.factors) + self.factors)

    def __str__(self) -> str:
        return self.name


def _product(factors: tuple[FinSet | Real, ...]) -> Real:
    name = "*".join(f.name for f in factors)
    return Real(name, sum(width(f) for f in factors), factors)


def width(obj: FinSet | Real) -> int:
    """The width of an encoded value of ``obj``: its dimension, or the size of
    a finite set (one-hot rows)."""
    return obj.dim if isinstance(obj, Real) else obj.size




def is_continuous(obj: object) -> bool:
    """Whether ``obj`` is (or has a factor that is) a :class:`Real` object.

    Examples
    --------
    >>> is_continuous(FinSet("A", 2)), is_continuous(Real("X", 1))
    (False, True)
    """
    return isinstance(obj, Real)


def matches(a: FinSet | Real, b: FinSet | Real) -> bool:
    """Whether a value of ``a`` can be fed where ``b`` is expected: finite
    sets must be equal; continuous objects need the same dimension (a point
    of ``Real 16`` is a point of every ``Real 16``, so four heads into
    ``Real 4`` feed a map from ``Real 16``).

    Examples
    --------
    >>> matches(Real("X", 4) * Real("Y", 4), Real("Z", 8)), matches(FinSet("A", 2), FinSet("B", 2))
    (True, False)
    """
    if isinstance(a, Real) and isinstance(b, Real):
        return a.dim == b.dim
    return a == b
