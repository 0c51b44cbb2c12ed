"""Finite sets: products and coproducts are strict (flattened) monoidal
structures, and reprs evaluate back to the same set."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from quivers.categories import FinSet
from tests.categories.strategies import finsets

# Expressions over a few named sets, the unit and the empty set.
expressions = st.recursive(
    st.one_of(finsets(), st.just(FinSet.unit()), st.just(FinSet.empty())),
    lambda inner: st.one_of(
        st.tuples(inner, inner).map(lambda p: p[0] * p[1]),
        st.tuples(inner, inner).map(lambda p: p[0] + p[1]),
    ),
    max_leaves=5,
)


@given(expressions)
def test_repr_evaluates_back(x):
    y = eval(repr(x), {"FinSet": FinSet})
    assert y == x and y.factors == x.factors and y.summands == x.summands


@given(expressions)
def test_sizes_agree_with_factors_and_summands(x):
    assert x.size == math.prod(f.size for f in x.factors) == math.prod(x.shape)
    assert x.size == sum(s.size for s in x.summands)


@given(expressions, expressions, expressions)
def test_products_and_coproducts_are_strictly_associative_and_unital(a, b, c):
    for op, unit in ((FinSet.__mul__, FinSet.unit()), (FinSet.__add__, FinSet.empty())):
        left, right = op(op(a, b), c), op(a, op(b, c))
        assert left == right
        assert (left.factors, left.summands) == (right.factors, right.summands)
        assert op(a, unit) == a == op(unit, a)
        assert op(a, unit).factors == a.factors


def test_products_remember_their_factors_as_plate_axes():
    A, B, C = FinSet("A", 2), FinSet("B", 3), FinSet("C", 4)
    abc = A * B * C
    assert abc.factors == (A, B, C) and abc.shape == (2, 3, 4) and abc.name == "A*B*C"
    assert A.factors == (A,) and FinSet.unit().factors == ()
    assert (A + B) * C == FinSet("(A+B)*C", 20)
    assert ((A + B) * C).factors == (A + B, C)


def test_a_user_defined_one_is_the_unit():
    one = FinSet("1", 1)
    A = FinSet("A", 2)
    assert one == FinSet.unit() and one * A == A and A * one == A
    assert FinSet("0", 0) + A == A


def test_sets_compare_and_hash_by_name_and_size():
    assert FinSet("A", 2) == FinSet("A", 2) != FinSet("A", 3)
    assert len({FinSet("A", 2), FinSet("A", 2), FinSet("B", 2)}) == 2
    assert FinSet("A*B", 6) == FinSet("A", 2) * FinSet("B", 3)
