"""Base change along semiring homomorphisms: functors between matrix
categories.

A :class:`SemiringHom` ``h: S -> T`` is an elementwise map with
``h(a + b) == h(a) + h(b)``, ``h(a * b) == h(a) * h(b)``, ``h(zero) == zero``
and ``h(one) == one``. Applied to every entry of a morphism's tensor it is a
functor from morphisms over ``S`` to morphisms over ``T``: it preserves
``>>``, ``@`` and identities, because the matrix product and the Kronecker
product are built from ``+`` and ``*`` alone.

The homomorphisms here:

- ``LOG_TO_PROB`` (``exp``) and ``PROB_TO_LOG`` (``log``), inverse to each
  other; ``MAX_PLUS_TO_MAX_TIMES`` (``exp``) and ``MAX_TIMES_TO_MAX_PLUS``
  (``log``), likewise;
- ``MAX_PLUS_TO_MIN_PLUS`` and ``MIN_PLUS_TO_MAX_PLUS`` (negation);
- the supports ``PROB_TO_BOOL``, ``LOG_TO_BOOL``, ``MAX_PLUS_TO_BOOL``,
  ``MIN_PLUS_TO_BOOL``, ``MAX_TIMES_TO_BOOL``, ``GODEL_TO_BOOL``
  (``x != zero``), which are homomorphisms because those semirings have no
  zero divisors and no two non-zero elements summing to zero
  (``LUKASIEWICZ`` has zero divisors, so it has none);
- the indicators ``BOOL_TO_X`` (``True -> one``, ``False -> zero``) into
  every idempotent X (``1 + 1 = 1`` needs idempotent ``+``).

In floating point the exp/log maps are homomorphisms up to rounding, and a
support only as long as no product underflows to zero.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from quivers.categories.function import FinFunction
from quivers.categories.kernel import KERNEL_SEMIRINGS, Kernel
from quivers.categories.morphism import Arrow, Morphism
from quivers.categories.semiring import (
    BOOL,
    GODEL,
    LOG,
    LUKASIEWICZ,
    MAX_PLUS,
    MAX_TIMES,
    MIN_PLUS,
    PROB,
    Semiring,
)
from quivers.errors import CompositionError, QuiversTypeError, UnknownNameError

__all__ = [
    "SemiringHom",
    "base_change",
    "HOMOMORPHISMS",
    "LOG_TO_PROB",
    "PROB_TO_LOG",
    "PROB_TO_BOOL",
    "LOG_TO_BOOL",
    "MAX_PLUS_TO_MAX_TIMES",
    "MAX_TIMES_TO_MAX_PLUS",
    "MAX_PLUS_TO_MIN_PLUS",
    "MIN_PLUS_TO_MAX_PLUS",
    "MAX_PLUS_TO_BOOL",
    "MIN_PLUS_TO_BOOL",
    "MAX_TIMES_TO_BOOL",
    "GODEL_TO_BOOL",
    "BOOL_TO_MAX_PLUS",
    "BOOL_TO_MIN_PLUS",
    "BOOL_TO_MAX_TIMES",
    "BOOL_TO_LUKASIEWICZ",
    "BOOL_TO_GODEL",
]


@dataclass(frozen=True, repr=False)
class SemiringHom:
    """A semiring homomorphism ``source -> target``, applied entrywise.

    Parameters
    ----------
    name
        The module constant's name; ``repr`` returns it.
    source, target
        The semirings it maps between.
    map
        The elementwise map on tensors.

    Examples
    --------
    >>> from quivers.categories.finset import FinSet
    >>> A = FinSet("A", 2)
    >>> f = Morphism(A, A, torch.tensor([[0.5, 0.5], [0.0, 1.0]]))
    >>> PROB_TO_LOG(f).tensor
    tensor([[-0.6931, -0.6931],
            [   -inf,  0.0000]])
    >>> PROB_TO_BOOL(f).semiring
    BOOL
    >>> LOG_TO_PROB(f)
    Traceback (most recent call last):
    ...
    quivers.errors.CompositionError: LOG_TO_PROB maps morphisms in `LOG`, but `A -> A` is in `PROB`
    """

    name: str
    source: Semiring
    target: Semiring
    map: Callable[[Tensor], Tensor]

    def __call__(self, x: Tensor | Arrow) -> Tensor | Morphism:
        """Map a tensor of ``source`` weights, or a morphism over ``source``
        (a function becomes its matrix over ``target``)."""
        if isinstance(x, FinFunction):
            return x.as_morphism(self.target)
        if isinstance(x, Morphism):
            if x.semiring != self.source:
                raise CompositionError(
                    f"{self.name} maps morphisms in `{self.source}`, but "
                    f"`{x.dom} -> {x.cod}` is in `{x.semiring}`"
                )
            stays_kernel = x.is_stochastic and self.target in KERNEL_SEMIRINGS
            cls = Kernel if stays_kernel else Morphism
            return cls._trusted(x.dom, x.cod, self.map(x.tensor), self.target)
        if isinstance(x, Tensor):
            return self.map(self.source.check_dtype(x, f"the argument of {self.name}"))
        raise QuiversTypeError(f"{self.name} maps tensors and morphisms, got {type(x).__name__}")

    def __repr__(self) -> str:
        return self.name

    def _repr_pretty_(self, printer, cycle: bool) -> None:
        # IPython's protocol, which hypothesis also follows: show the
        # evaluable repr rather than the dataclass fields.
        printer.text(repr(self))


def _indicator(target: Semiring) -> Callable[[Tensor], Tensor]:
    def indicator(t: Tensor) -> Tensor:
        dtype = target.tensor_dtype()
        return torch.where(t, torch.tensor(target.one, dtype=dtype), torch.tensor(target.zero, dtype=dtype))

    return indicator


LOG_TO_PROB = SemiringHom("LOG_TO_PROB", LOG, PROB, torch.exp)
PROB_TO_LOG = SemiringHom("PROB_TO_LOG", PROB, LOG, torch.log)
PROB_TO_BOOL = SemiringHom("PROB_TO_BOOL", PROB, BOOL, lambda t: t > 0)
LOG_TO_BOOL = SemiringHom("LOG_TO_BOOL", LOG, BOOL, lambda t: t > -torch.inf)
MAX_PLUS_TO_MAX_TIMES = SemiringHom("MAX_PLUS_TO_MAX_TIMES", MAX_PLUS, MAX_TIMES, torch.exp)
MAX_TIMES_TO_MAX_PLUS = SemiringHom("MAX_TIMES_TO_MAX_PLUS", MAX_TIMES, MAX_PLUS, torch.log)
MAX_PLUS_TO_MIN_PLUS = SemiringHom("MAX_PLUS_TO_MIN_PLUS", MAX_PLUS, MIN_PLUS, torch.neg)
MIN_PLUS_TO_MAX_PLUS = SemiringHom("MIN_PLUS_TO_MAX_PLUS", MIN_PLUS, MAX_PLUS, torch.neg)
MAX_PLUS_TO_BOOL = SemiringHom("MAX_PLUS_TO_BOOL", MAX_PLUS, BOOL, lambda t: t > -torch.inf)
MIN_PLUS_TO_BOOL = SemiringHom("MIN_PLUS_TO_BOOL", MIN_PLUS, BOOL, lambda t: t < torch.inf)
MAX_TIMES_TO_BOOL = SemiringHom("MAX_TIMES_TO_BOOL", MAX_TIMES, BOOL, lambda t: t > 0)
GODEL_TO_BOOL = SemiringHom("GODEL_TO_BOOL", GODEL, BOOL, lambda t: t > 0)
BOOL_TO_MAX_PLUS = SemiringHom("BOOL_TO_MAX_PLUS", BOOL, MAX_PLUS, _indicator(MAX_PLUS))
BOOL_TO_MIN_PLUS = SemiringHom("BOOL_TO_MIN_PLUS", BOOL, MIN_PLUS, _indicator(MIN_PLUS))
BOOL_TO_MAX_TIMES = SemiringHom("BOOL_TO_MAX_TIMES", BOOL, MAX_TIMES, _indicator(MAX_TIMES))
BOOL_TO_LUKASIEWICZ = SemiringHom("BOOL_TO_LUKASIEWICZ", BOOL, LUKASIEWICZ, _indicator(LUKASIEWICZ))
BOOL_TO_GODEL = SemiringHom("BOOL_TO_GODEL", BOOL, GODEL, _indicator(GODEL))

HOMOMORPHISMS: tuple[SemiringHom, ...] = (
    LOG_TO_PROB, PROB_TO_LOG, PROB_TO_BOOL, LOG_TO_BOOL,
    MAX_PLUS_TO_MAX_TIMES, MAX_TIMES_TO_MAX_PLUS, MAX_PLUS_TO_MIN_PLUS, MIN_PLUS_TO_MAX_PLUS,
    MAX_PLUS_TO_BOOL, MIN_PLUS_TO_BOOL, MAX_TIMES_TO_BOOL, GODEL_TO_BOOL,
    BOOL_TO_MAX_PLUS, BOOL_TO_MIN_PLUS, BOOL_TO_MAX_TIMES, BOOL_TO_LUKASIEWICZ, BOOL_TO_GODEL,
)
"""Every homomorphism defined here."""


def base_change(arrow: Arrow, target: Semiring) -> Morphism:
    """Move ``arrow`` to ``target`` along the homomorphism from its semiring.

    A :class:`FinFunction` lives in every semiring and becomes its matrix
    over ``target``; a morphism already over ``target`` is returned as is.

    Examples
    --------
    >>> from quivers.categories.finset import FinSet
    >>> A = FinSet("A", 1)
    >>> base_change(Morphism(A, A, torch.tensor([[0.0]]), LOG), PROB).tensor
    tensor([[1.]])
    >>> base_change(Morphism(A, A, torch.tensor([[0.5]])), MIN_PLUS)
    Traceback (most recent call last):
    ...
    quivers.errors.UnknownNameError: no homomorphism from `PROB` to `MIN_PLUS`; from `PROB` there are: BOOL, LOG
    """
    if isinstance(arrow, FinFunction):
        return arrow.as_morphism(target)
    if not isinstance(arrow, Morphism):
        raise QuiversTypeError(f"base_change moves morphisms, got {type(arrow).__name__}")
    if arrow.semiring == target:
        return arrow
    targets = {h.target.name: h for h in HOMOMORPHISMS if h.source == arrow.semiring}
    if target.name not in targets:
        raise UnknownNameError(
            f"no homomorphism from `{arrow.semiring}` to `{target}`; from `{arrow.semiring}` "
            f"there are: {', '.join(sorted(targets)) or 'none'}",
            name=target.name,
            candidates=targets,
        )
    return targets[target.name](arrow)  # type: ignore[return-value]
