"""The semiring axioms, each written once and checked in every semiring,
and the reductions and contraction against their definitions as folds."""

from __future__ import annotations

import functools

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from quivers.categories import (
    BOOL,
    GODEL,
    LOG,
    LUKASIEWICZ,
    MAX_PLUS,
    MAX_TIMES,
    MIN_PLUS,
    PROB,
    PRODUCT_FUZZY,
    REAL,
    SEMIRINGS,
)
from tests.categories.strategies import (
    CASES,
    IDEMPOTENT,
    LATTICES,
    Case,
    assert_tensors_equal,
    dtype_of,
    tensors,
)

every_semiring = pytest.mark.parametrize("case", CASES, ids=repr)
N = 4  # elements per draw: each law is checked on a vector of independent triples


def triples(case: Case):
    return st.tuples(*(tensors(case, (N,)) for _ in range(3)))


def constant(case: Case, value) -> torch.Tensor:
    return torch.full((N,), value, dtype=dtype_of(case.semiring))


@every_semiring
@given(data=st.data())
def test_addition_is_associative_and_commutative(case, data):
    a, b, c = data.draw(triples(case))
    S = case.semiring
    assert_tensors_equal(case, S.add(S.add(a, b), c), S.add(a, S.add(b, c)))
    assert_tensors_equal(case, S.add(a, b), S.add(b, a))


@every_semiring
@given(data=st.data())
def test_multiplication_is_associative_and_commutative(case, data):
    a, b, c = data.draw(triples(case))
    S = case.semiring
    assert_tensors_equal(case, S.mul(S.mul(a, b), c), S.mul(a, S.mul(b, c)))
    assert_tensors_equal(case, S.mul(a, b), S.mul(b, a))


@every_semiring
@given(data=st.data())
def test_units(case, data):
    a, _, _ = data.draw(triples(case))
    S = case.semiring
    assert_tensors_equal(case, S.add(a, constant(case, S.zero)), a)
    assert_tensors_equal(case, S.mul(a, constant(case, S.one)), a)


@every_semiring
@given(data=st.data())
def test_distributivity(case, data):
    a, b, c = data.draw(triples(case))
    S = case.semiring
    assert_tensors_equal(case, S.mul(a, S.add(b, c)), S.add(S.mul(a, b), S.mul(a, c)))
    assert_tensors_equal(case, S.mul(S.add(b, c), a), S.add(S.mul(b, a), S.mul(c, a)))


@every_semiring
@given(data=st.data())
def test_zero_annihilates(case, data):
    a, _, _ = data.draw(triples(case))
    S = case.semiring
    zero = constant(case, S.zero)
    assert_tensors_equal(case, S.mul(zero, a), zero)
    assert_tensors_equal(case, S.mul(a, zero), zero)


@pytest.mark.parametrize("case", IDEMPOTENT, ids=repr)
@given(data=st.data())
def test_natural_order_has_addition_as_join(case, data):
    a, b, c = data.draw(triples(case))
    S = case.semiring
    assert bool(S.leq(a, a).all())
    assert bool(S.leq(a, S.add(a, b)).all()) and bool(S.leq(b, S.add(a, b)).all())
    assert bool(S.leq(constant(case, S.zero), a).all())
    # The join is the least upper bound: a, b <= c implies a + b <= c.
    bounded = S.leq(a, c) & S.leq(b, c)
    assert bool((~bounded | S.leq(S.add(a, b), c)).all())
    antisymmetric = ~(S.leq(a, b) & S.leq(b, a)) | (a == b)
    assert bool(antisymmetric.all())


@pytest.mark.parametrize("case", LATTICES, ids=repr)
@given(data=st.data())
def test_lattices_have_multiplication_as_meet(case, data):
    a, b, _ = data.draw(triples(case))
    S = case.semiring
    assert_tensors_equal(case, S.mul(a, a), a)
    assert_tensors_equal(case, S.add(a, S.mul(a, b)), a)
    assert bool(S.leq(S.mul(a, b), a).all()) and bool(S.leq(a, constant(case, S.one)).all())


# One element per semiring whose square (sum, product) is not itself: the
# flags must not claim idempotence the operations do not have.
NOT_IDEMPOTENT_SUM = {PROB: 1.0, LOG: 0.0, REAL: 1.0}
NOT_IDEMPOTENT_PRODUCT = {
    PROB: 2.0, LOG: 1.0, MAX_PLUS: 1.0, MIN_PLUS: 1.0, MAX_TIMES: 2.0, LUKASIEWICZ: 0.5, PRODUCT_FUZZY: 0.5, REAL: 2.0,
}


@pytest.mark.parametrize("S", SEMIRINGS, ids=repr)
def test_idempotence_flags_are_honest(S):
    assert S.idempotent == (S not in NOT_IDEMPOTENT_SUM)
    assert S.is_lattice == (S not in NOT_IDEMPOTENT_PRODUCT)
    if S in NOT_IDEMPOTENT_SUM:
        x = torch.tensor(NOT_IDEMPOTENT_SUM[S])
        assert S.add(x, x) != x
    if S in NOT_IDEMPOTENT_PRODUCT:
        x = torch.tensor(NOT_IDEMPOTENT_PRODUCT[S])
        assert S.mul(x, x) != x


def test_natural_order_needs_idempotent_addition():
    from quivers.errors import InvalidValueError

    with pytest.raises(InvalidValueError, match="PROB"):
        PROB.leq(torch.tensor(1.0), torch.tensor(2.0))


@pytest.mark.parametrize("S", SEMIRINGS, ids=repr)
def test_repr_evaluates_to_the_constant(S):
    import quivers.categories as C

    assert eval(repr(S), vars(C)) is S


def fold(op, t: torch.Tensor, dim: int, unit, dtype) -> torch.Tensor:
    """The reduction by definition: a left fold of the binary operation."""
    slices = t.unbind(dim)
    if not slices:
        shape = list(t.shape)
        del shape[dim]
        return torch.full(shape, unit, dtype=dtype)
    return functools.reduce(op, slices)


@every_semiring
@given(data=st.data())
def test_reductions_are_folds(case, data):
    rows, cols = data.draw(st.integers(0, 4)), data.draw(st.integers(1, 3))
    t = data.draw(tensors(case, (rows, cols)))
    S, dtype = case.semiring, dtype_of(case.semiring)
    assert_tensors_equal(case, S.sum(t, 0), fold(S.add, t, 0, S.zero, dtype))
    assert_tensors_equal(case, S.prod(t, 0), fold(S.mul, t, 0, S.one, dtype))


@every_semiring
@given(data=st.data())
def test_contraction_is_the_matrix_product(case, data):
    n, m, k = (data.draw(st.integers(0, 3)) for _ in range(3))
    a = data.draw(tensors(case, (n, m)))
    b = data.draw(tensors(case, (m, k)))
    S, dtype = case.semiring, dtype_of(case.semiring)
    expected = torch.full((n, k), S.zero, dtype=dtype)
    for i in range(n):
        for j in range(k):
            expected[i, j] = fold(S.add, S.mul(a[i], b[:, j]), 0, S.zero, dtype)
    assert_tensors_equal(case, S.contract(a, b), expected)


@every_semiring
@given(data=st.data())
def test_contraction_broadcasts_batches(case, data):
    a = data.draw(tensors(case, (2, 1, 2, 3)))
    b = data.draw(tensors(case, (3, 3, 2)))
    S = case.semiring
    expected = torch.stack([torch.stack([S.contract(a[i, 0], b[j]) for j in range(3)]) for i in range(2)])
    assert_tensors_equal(case, S.contract(a, b), expected)


class LargestTensor(TorchDispatchMode):
    """Records the largest tensor any torch operation produces."""

    def __init__(self) -> None:
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


@pytest.mark.parametrize("S", [PROB, LOG], ids=repr)
def test_contraction_does_not_materialize_the_product_tensor(S):
    # PROB goes through matmul, and so does LOG where its shifts are
    # accurate: nothing the size of the (n, m, k) product may appear.
    n, m, k = 7, 11, 13
    gen = torch.Generator().manual_seed(0)
    a, b = torch.rand(n, m, generator=gen), torch.rand(m, k, generator=gen)
    with LargestTensor() as spy:
        S.contract(a, b)
    assert spy.largest <= max(n * m, m * k, n * k)


@pytest.mark.parametrize("S", [BOOL, GODEL, MAX_PLUS], ids=repr)
def test_empty_reductions_give_units(S):
    dtype = S.tensor_dtype(torch.float64)
    empty = torch.zeros(0, 2, dtype=dtype)
    assert torch.equal(S.sum(empty, 0), torch.full((2,), S.zero, dtype=dtype))
    assert torch.equal(S.prod(empty, 0), torch.full((2,), S.one, dtype=dtype))


def test_product_fuzzy_is_the_quantale_join_not_noisy_or():
    # The peer's pages name noisy-OR as product_fuzzy's sum; under the
    # product it does not distribute, so the algebra's sum is the join, max.
    a = b = c = torch.tensor(0.5)
    noisy_or = lambda x, y: 1 - (1 - x) * (1 - y)  # noqa: E731
    assert a * noisy_or(b, c) != noisy_or(a * b, a * c)
    assert PRODUCT_FUZZY.add(b, c) == 0.5 and PRODUCT_FUZZY.mul(a, b) == 0.25
    assert REAL.contract(torch.tensor([[1.0, -2.0]]), torch.tensor([[3.0], [4.0]])).item() == -5.0
