"""Hypothesis strategies shared by the categories tests, and the one place
that decides how two results are compared in each semiring.

Each semiring gets a :class:`Case`: a strategy for its elements on bounded
inputs (the zero, e.g. ``-inf`` in ``LOG``, is drawn on purpose) and whether
its arithmetic is exact on them. Exact cases (Boolean, tropical over
integers, Goedel's min/max) are compared with ``torch.equal``; the others
with ``torch.testing.assert_close``.
"""

from __future__ import annotations

import math
from functools import lru_cache
import torch
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from quivers.categories import (
    BOOL,
    GODEL,
    KERNEL_SEMIRINGS,
    LOG,
    LUKASIEWICZ,
    MAX_PLUS,
    MAX_TIMES,
    MIN_PLUS,
    PROB,
    PRODUCT_FUZZY,
    REAL,
    FinFunction,
    FinSet,
    Kernel,
    Morphism,
    Semiring,
)
from quivers.categories.morphism import Arrow

INF = math.inf
DTYPE = torch.float64


class Case:
    """A semiring, how to draw its elements, and how to compare results.

    A plain class, so that hypothesis reports a case by its semiring's name.
    """

    def __init__(self, semiring: Semiring, elements: SearchStrategy, exact: bool) -> None:
        self.semiring, self.elements, self.exact = semiring, elements, exact

    def __repr__(self) -> str:
        return self.semiring.name


# Each element is one primitive draw, mapped: the semiring's zero (and, in
# the unit interval, both ends) come from an interval at the edge of the
# range, which hypothesis visits often because it likes bounds.
def _below_becomes(threshold: float, value: float):
    return lambda x: value if x < threshold else x


_UNIT_INTERVAL = st.floats(0.0, 1.0)
_NON_NEGATIVE = st.floats(-1.0, 4.0).map(_below_becomes(0.125, 0.0))
_LOG_WEIGHTS = st.floats(-25.0, 20.0).map(_below_becomes(-20.0, -INF))
_INTEGERS_OR_NEG_INF = st.integers(-25, 20).map(lambda i: -INF if i < -20 else float(i))
_INTEGERS_OR_POS_INF = st.integers(-20, 25).map(lambda i: INF if i > 20 else float(i))

CASES: tuple[Case, ...] = (
    Case(PROB, _NON_NEGATIVE, exact=False),
    Case(LOG, _LOG_WEIGHTS, exact=False),
    Case(BOOL, st.booleans(), exact=True),
    Case(MAX_PLUS, _INTEGERS_OR_NEG_INF, exact=True),
    Case(MIN_PLUS, _INTEGERS_OR_POS_INF, exact=True),
    Case(MAX_TIMES, _NON_NEGATIVE, exact=False),
    Case(LUKASIEWICZ, _UNIT_INTERVAL, exact=False),
    Case(GODEL, _UNIT_INTERVAL, exact=True),
    Case(PRODUCT_FUZZY, _UNIT_INTERVAL, exact=False),
    Case(REAL, st.floats(-4.0, 4.0).map(lambda x: 0.0 if abs(x) < 0.25 else x), exact=False),
)
CASE_OF = {case.semiring: case for case in CASES}
IDEMPOTENT = tuple(c for c in CASES if c.semiring.idempotent)
LATTICES = tuple(c for c in CASES if c.semiring.is_lattice)
KERNEL_CASES = tuple(c for c in CASES if c.semiring in KERNEL_SEMIRINGS)


def dtype_of(semiring: Semiring) -> torch.dtype:
    return semiring.tensor_dtype(DTYPE)


# Strategies are cached: hypothesis validates every new strategy object,
# which costs more than drawing from it.
@lru_cache(maxsize=None)
def tensors(case: Case, shape: tuple[int, ...]) -> SearchStrategy[torch.Tensor]:
    """Tensors of ``shape`` with entries drawn from ``case.elements``."""
    n = math.prod(shape)
    dtype = dtype_of(case.semiring)
    return st.lists(case.elements, min_size=n, max_size=n).map(
        lambda xs: torch.tensor(xs, dtype=dtype).reshape(shape)
    )


_FINSETS = tuple(FinSet(name, size) for size in range(4) for name in "ABCDE")


@lru_cache(maxsize=None)
def finsets(min_size: int = 0, max_size: int = 3) -> SearchStrategy[FinSet]:
    """Named sets of a size in ``[min_size, max_size]``, shrinking towards
    ``FinSet('A', min_size)``; one draw each, which keeps examples cheap."""
    return st.sampled_from([s for s in _FINSETS if min_size <= s.size <= max_size])


@lru_cache(maxsize=None)
def morphisms(case: Case, dom: FinSet, cod: FinSet, batch: bool = True) -> SearchStrategy[Morphism]:
    """Morphisms ``dom -> cod`` over ``case``; with ``batch``, sometimes
    with a leading batch axis of 2 (which broadcasts against none)."""
    shapes = [(), (2,)] if batch else [()]
    return st.one_of(
        [tensors(case, (*s, dom.size, cod.size)) for s in shapes]
    ).map(lambda t: Morphism(dom, cod, t, case.semiring))


@lru_cache(maxsize=None)
def functions(dom: FinSet, cod: FinSet) -> SearchStrategy[FinFunction]:
    """Functions ``dom -> cod``; needs ``cod`` non-empty unless ``dom`` is empty."""
    if cod.size == 0:
        return st.just(FinFunction(dom, cod, []))
    images = st.lists(st.integers(0, cod.size - 1), min_size=dom.size, max_size=dom.size)
    return images.map(lambda m: FinFunction(dom, cod, m))


def _normalize(weights: torch.Tensor) -> torch.Tensor:
    weights = weights.clamp(max=1.0)
    dead = weights.sum(-1, keepdim=True) == 0
    weights = torch.where(dead, torch.ones_like(weights), weights)
    return weights / weights.sum(-1, keepdim=True)


@lru_cache(maxsize=None)
def probabilities(rows: int, cols: int) -> SearchStrategy[torch.Tensor]:
    """A ``(rows, cols)`` row-stochastic float64 matrix; ``cols > 0`` unless ``rows == 0``."""
    return tensors(CASE_OF[PROB], (rows, cols)).map(_normalize)


@lru_cache(maxsize=None)
def kernels(semiring: Semiring, dom: FinSet, cod: FinSet) -> SearchStrategy[Kernel]:
    return probabilities(dom.size, cod.size).map(
        lambda p: Kernel(dom, cod, p if semiring == PROB else p.log(), semiring)
    )


def can_map(dom: FinSet, cod: FinSet) -> bool:
    """Whether a function (or kernel) ``dom -> cod`` exists."""
    return cod.size > 0 or dom.size == 0


@lru_cache(maxsize=None)
def arrows(case: Case, dom: FinSet, cod: FinSet) -> SearchStrategy[Arrow]:
    """Every kind of arrow ``dom -> cod`` that exists over ``case``: weighted
    morphisms, functions, and kernels where the semiring has them."""
    kinds = [morphisms(case, dom, cod)]
    if can_map(dom, cod):
        kinds.append(functions(dom, cod))
        if case.semiring in KERNEL_SEMIRINGS:
            kinds.append(kernels(case.semiring, dom, cod))
    return st.one_of(kinds)


def assert_tensors_equal(case: Case, actual: torch.Tensor, expected: torch.Tensor) -> None:
    """Exact equality in exact semirings, ``assert_close`` in float ones."""
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    if case.exact:
        assert actual.dtype == expected.dtype, (actual.dtype, expected.dtype)
        assert torch.equal(actual, expected), (actual, expected)
    else:
        torch.testing.assert_close(actual, expected)


def assert_arrows_equal(case: Case, f: Arrow, g: Arrow) -> None:
    """Same domain, codomain (with factors) and matrix over ``case``."""
    assert (f.dom, f.cod) == (g.dom, g.cod), ((f.dom, f.cod), (g.dom, g.cod))
    assert (f.dom.factors, f.cod.factors) == (g.dom.factors, g.cod.factors)
    assert_tensors_equal(case, matrix(case, f), matrix(case, g))


def matrix(case: Case, f: Arrow) -> torch.Tensor:
    """The tensor of ``f`` over ``case`` (functions in the tests' dtype)."""
    if isinstance(f, FinFunction):
        return f.as_morphism(case.semiring, DTYPE).tensor
    return f.as_morphism(case.semiring).tensor
