"""Semirings as values: one code path for probability, log, Boolean,
tropical and fuzzy algebras.

A :class:`Semiring` is two commutative :class:`Monoid` values, ``plus`` and
``times``, with the data a tensor program needs: the binary operations
(``add``, ``mul``), their units (``zero``, ``one``), reductions along an
axis (``sum``, ``prod``), reductions over the fibres of an index map
(``fibre_sum``, ``fibre_prod``) and the matrix product ``contract``.

Laws
----
For all ``a, b, c`` in the semiring's domain:

- ``add`` and ``mul`` are associative and commutative, with units ``zero``
  and ``one``;
- ``mul`` distributes over ``add``: ``a * (b + c) == a * b + a * c``;
- ``zero`` annihilates: ``zero * a == zero``.

When ``add`` is idempotent (every semiring here except ``PROB`` and
``LOG``), ``a <= b`` iff ``a + b == b`` is a partial order with ``add`` as
its join; :meth:`Semiring.leq` computes it. When ``mul`` is idempotent too
(``BOOL``, ``GODEL``) the semiring is a bounded distributive lattice and
``mul`` is the meet.

Numerics
--------
``PROB`` contracts with ``torch.matmul``. ``LOG`` contracts by
``log(exp(a - max_a) @ exp(b - max_b)) + max_a + max_b`` and recomputes, per
entry, the few outputs whose shifted sum fell below ``eps**2`` (where the
separate shifts lose precision) with their own maximum; a row that is
entirely ``-inf`` gives ``-inf`` with zero gradient, never NaN. The other
semirings materialize an ``(..., n, m, k)`` tensor, which is meant for the
small state spaces they are used on.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from quivers.categories.monoid import (
    AND,
    LOGSUMEXP,
    LUKASIEWICZ_AND,
    OR,
    PRODUCT,
    SUM,
    Monoid,
    logsumexp,
    max_monoid,
    min_monoid,
)
from quivers.capture import may_read
from quivers.errors import InvalidValueError, QuiversTypeError

_INF = math.inf
# Up to this inner size a log-space product is one broadcast logsumexp.
_BROADCAST_INNER = 4

__all__ = [
    "Semiring",
    "PROB",
    "LOG",
    "BOOL",
    "MAX_PLUS",
    "MIN_PLUS",
    "MAX_TIMES",
    "LUKASIEWICZ",
    "GODEL",
    "PRODUCT_FUZZY",
    "REAL",
    "SEMIRINGS",
]


@dataclass(frozen=True, repr=False)
class Semiring:
    """A commutative semiring on tensors, given by its two monoids.

    Parameters
    ----------
    name
        The name of the module constant; ``repr`` returns it, so
        ``eval(repr(S)) is S`` where the constants are imported.
    plus, times
        The additive and multiplicative monoids.
    contains
        ``contains(t)`` is the elementwise test for the semiring's domain.
    domain
        The domain in words, for error messages.
    dtype
        The tensor dtype the semiring needs (``torch.bool`` for ``BOOL``);
        ``None`` means any floating dtype.
    matmul
        A specialized contraction; ``None`` materializes ``(..., n, m, k)``.

    Examples
    --------
    >>> a = torch.tensor([[0.0, -1.0]])
    >>> b = torch.tensor([[1.0], [5.0]])
    >>> MAX_PLUS.contract(a, b)
    tensor([[4.]])
    >>> LOG.add(torch.tensor(0.0), torch.tensor(0.0))
    tensor(0.6931)
    >>> LOG
    LOG
    """

    name: str
    plus: Monoid
    times: Monoid
    contains: Callable[[Tensor], Tensor] = field(compare=False)
    domain: str = field(compare=False)
    dtype: torch.dtype | None = None
    matmul: Callable[[Tensor, Tensor], Tensor] | None = field(default=None, compare=False)

    @property
    def add(self) -> Callable[[Tensor, Tensor], Tensor]:
        """The elementwise semiring sum."""
        return self.plus.op

    @property
    def mul(self) -> Callable[[Tensor, Tensor], Tensor]:
        """The elementwise semiring product."""
        return self.times.op

    @property
    def zero(self) -> float | bool:
        """The unit of ``add``, which annihilates under ``mul``."""
        return self.plus.unit

    @property
    def one(self) -> float | bool:
        """The unit of ``mul``."""
        return self.times.unit

    @property
    def idempotent(self) -> bool:
        """Whether ``add`` is idempotent, making ``leq`` a partial order."""
        return self.plus.idempotent

    @property
    def is_lattice(self) -> bool:
        """Whether ``add`` and ``mul`` are join and meet of a lattice."""
        return self.plus.idempotent and self.times.idempotent

    def sum(self, t: Tensor, dim: int) -> Tensor:
        """Semiring sum along ``dim``; an empty axis gives ``zero``.

        Examples
        --------
        >>> LOG.sum(torch.tensor([0.0, -math.inf]), 0)
        tensor(0.)
        """
        return self.plus.reduce(t, dim)

    def prod(self, t: Tensor, dim: int) -> Tensor:
        """Semiring product along ``dim``; an empty axis gives ``one``.

        Examples
        --------
        >>> LOG.prod(torch.tensor([-1.0, -2.0]), 0)
        tensor(-3.)
        """
        return self.times.reduce(t, dim)

    def fibre_sum(self, index: Tensor, w: Tensor, num_groups: int) -> Tensor:
        """``out[g] = sum of w[a] over a with index[a] == g``; unchecked.

        See :func:`quivers.categories.kan.fibre_sum` for the checked form.
        """
        return self.plus.scatter(index, w, num_groups, self.zero)

    def fibre_prod(self, index: Tensor, w: Tensor, num_groups: int) -> Tensor:
        """``out[g] = product of w[a] over a with index[a] == g``; unchecked.

        See :func:`quivers.categories.kan.fibre_prod` for the checked form.
        """
        return self.times.scatter(index, w, num_groups, self.one)

    def contract(self, a: Tensor, b: Tensor) -> Tensor:
        """The semiring matrix product of ``(..., n, m)`` and ``(..., m, k)``,
        broadcasting leading batch axes.

        Examples
        --------
        >>> a = torch.tensor([[True, False]])
        >>> b = torch.tensor([[False], [True]])
        >>> BOOL.contract(a, b)
        tensor([[False]])
        """
        if a.shape[-1] == 0:
            batch = torch.broadcast_shapes(tuple(a.shape[:-2]), tuple(b.shape[:-2]))
            return a.new_full((*batch, a.shape[-2], b.shape[-1]), self.zero)
        if self.matmul is not None:
            return self.matmul(a, b)
        return self.sum(self.mul(a.unsqueeze(-1), b.unsqueeze(-3)), -2)

    def leq(self, a: Tensor, b: Tensor) -> Tensor:
        """The natural order ``a <= b`` iff ``a + b == b``, elementwise.

        Examples
        --------
        >>> MIN_PLUS.leq(torch.tensor(3.0), torch.tensor(1.0))
        tensor(True)
        """
        if not self.idempotent:
            raise InvalidValueError(
                f"`{self.name}` has no natural order: its addition is not idempotent"
            )
        return self.add(a, b) == b

    def check_dtype(self, t: object, what: str) -> Tensor:
        """Return ``t`` if it is a tensor of a dtype this semiring accepts,
        else raise a :class:`~quivers.errors.QuiversTypeError` about ``what``.

        Examples
        --------
        >>> BOOL.check_dtype(torch.zeros(2), "the weight of `A`")
        Traceback (most recent call last):
        ...
        quivers.errors.QuiversTypeError: the weight of `A` in `BOOL` must have dtype torch.bool, got torch.float32
        """
        if not isinstance(t, Tensor):
            raise QuiversTypeError(f"{what} must be a torch.Tensor, got {type(t).__name__}")
        if self.dtype is not None and t.dtype != self.dtype:
            raise QuiversTypeError(f"{what} in `{self}` must have dtype {self.dtype}, got {t.dtype}")
        if self.dtype is None and not t.is_floating_point():
            raise QuiversTypeError(f"{what} in `{self}` must be floating point, got {t.dtype}")
        return t

    def tensor_dtype(self, dtype: torch.dtype | None = None) -> torch.dtype:
        """The dtype tensors of this semiring use, given a preference."""
        if self.dtype is not None:
            return self.dtype
        return dtype if dtype is not None else torch.get_default_dtype()

    def __repr__(self) -> str:
        return self.name

    def _repr_pretty_(self, printer, cycle: bool) -> None:
        # IPython's protocol, which hypothesis also follows: show the
        # evaluable repr rather than the dataclass fields.
        printer.text(repr(self))


def _log_matmul(a: Tensor, b: Tensor) -> Tensor:
    if not may_read(a) or a.shape[-1] <= _BROADCAST_INNER:
        # every entry its own logsumexp: exact without a branch on the values
        # (what a captured graph needs), and for a small inner axis fewer
        # operations than the shifted product below
        return logsumexp(a.unsqueeze(-1) + b.unsqueeze(-3), -2)
    # shifts by the row and column maxima; an infinite maximum shifts by 0
    shift_a = a.detach().amax(-1, keepdim=True).nan_to_num_(nan=0.0, posinf=0.0, neginf=0.0)
    shift_b = b.detach().amax(-2, keepdim=True).nan_to_num_(nan=0.0, posinf=0.0, neginf=0.0)
    total = torch.matmul((a - shift_a).exp(), (b - shift_b).exp())
    # Where the best (i, j) and (j, k) pairs are far from the row and column
    # maxima the total underflows or its log is dominated by the shifts'
    # rounding; those entries are redone with their own maximum below.
    tiny = torch.finfo(total.dtype).eps ** 2
    if total.numel() == 0 or bool(total.amin() >= tiny):  # amin is NaN if any entry is
        # the usual case: one pass to check, no mask, no node of autograd for it
        return total.log() + (shift_a + shift_b)
    low = ~(total >= tiny)
    # An entry whose every product is a zero of the semiring is exactly -inf
    # (with zero gradient): only the others are worth an exact redo. Sparse
    # weights (a grammar's absent rules) make many such entries.
    support = torch.matmul((a > -_INF).to(total.dtype), (b > -_INF).to(total.dtype)) > 0
    redo = low & support
    out = torch.where(low, torch.ones_like(total), total).log() + (shift_a + shift_b)
    out = torch.where(low & ~support, torch.full_like(out, -_INF), out)
    if not bool(redo.any()):
        return out
    batch = out.shape[:-2]
    where = redo.nonzero(as_tuple=True)
    rows = a.expand(*batch, *a.shape[-2:])[where[:-1]]
    cols = b.expand(*batch, *b.shape[-2:]).transpose(-1, -2)[(*where[:-2], where[-1])]
    return out.index_put(where, logsumexp(rows + cols, -1))


def _bool_matmul(a: Tensor, b: Tensor) -> Tensor:
    # Counts of witnesses; rounding can never turn a positive count into 0.
    return torch.matmul(a.float(), b.float()) > 0


def _between_0_and_1(t: Tensor) -> Tensor:
    return (t >= 0) & (t <= 1)


PROB = Semiring(
    "PROB", SUM, PRODUCT,
    contains=lambda t: torch.isfinite(t) & (t >= 0),
    domain="finite non-negative reals",
    matmul=torch.matmul,
)
LOG = Semiring(
    "LOG", LOGSUMEXP, SUM,
    contains=lambda t: t < _INF,
    domain="reals and -inf",
    matmul=_log_matmul,
)
BOOL = Semiring(
    "BOOL", OR, AND,
    contains=lambda t: torch.ones_like(t, dtype=torch.bool),
    domain="booleans",
    dtype=torch.bool,
    matmul=_bool_matmul,
)
MAX_PLUS = Semiring(
    "MAX_PLUS", max_monoid(-_INF), SUM, contains=lambda t: t < _INF, domain="reals and -inf"
)
MIN_PLUS = Semiring(
    "MIN_PLUS", min_monoid(_INF), SUM, contains=lambda t: t > -_INF, domain="reals and +inf"
)
MAX_TIMES = Semiring(
    "MAX_TIMES", max_monoid(0.0), PRODUCT,
    contains=lambda t: torch.isfinite(t) & (t >= 0),
    domain="finite non-negative reals",
)
LUKASIEWICZ = Semiring(
    "LUKASIEWICZ", max_monoid(0.0), LUKASIEWICZ_AND, contains=_between_0_and_1, domain="[0, 1]"
)
GODEL = Semiring("GODEL", max_monoid(0.0), min_monoid(1.0), contains=_between_0_and_1, domain="[0, 1]")
# The product t-norm on [0, 1] with the lattice's join, max: the quantale of
# product fuzzy logic. (A noisy-OR sum, 1 - (1 - a)(1 - b), is not a semiring
# addition under the product: 0.5 * (0.5 (+) 0.5) = 0.375 but
# 0.25 (+) 0.25 = 0.4375, so composition with it would not be associative.)
PRODUCT_FUZZY = Semiring(
    "PRODUCT_FUZZY", max_monoid(0.0), PRODUCT, contains=_between_0_and_1, domain="[0, 1]"
)
# The ring of real numbers: matrices of any sign under the ordinary product,
# as in matrix factorization (``U.dagger >> V`` is ``U^T V``).
REAL = Semiring("REAL", SUM, PRODUCT, contains=torch.isfinite, domain="finite reals", matmul=torch.matmul)

SEMIRINGS: tuple[Semiring, ...] = (
    PROB, LOG, BOOL, MAX_PLUS, MIN_PLUS, MAX_TIMES, LUKASIEWICZ, GODEL, PRODUCT_FUZZY, REAL,
)
"""Every semiring constant, in a fixed order (for tests and lookups)."""
