"""Category and Markov-category laws, each written once and checked in every
semiring with every kind of arrow (weighted morphisms, functions, kernels)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from quivers.categories import (
    FinFunction,
    FinSet,
    Kernel,
    Morphism,
    copy,
    delete,
    identity,
    injections,
    projections,
    swap,
    then,
)
from tests.categories.strategies import (
    CASES,
    DTYPE,
    KERNEL_CASES,
    arrows,
    assert_arrows_equal,
    assert_tensors_equal,
    can_map,
    finsets,
    functions,
    kernels,
    matrix,
    morphisms,
    tensors,
)

every_semiring = pytest.mark.parametrize("case", CASES, ids=repr)


def objects(data, n: int, min_size: int = 0) -> list[FinSet]:
    """``n`` objects such that every consecutive pair admits a function."""
    objs = [data.draw(finsets(min_size=min_size))]
    for _ in range(n - 1):
        lo = 1 if objs[-1].size > 0 else 0
        objs.append(data.draw(finsets(min_size=max(lo, min_size))))
    return objs


@every_semiring
@given(data=st.data())
def test_composition_is_associative(case, data):
    A, B, C, D = objects(data, 4)
    f, g, h = data.draw(arrows(case, A, B)), data.draw(arrows(case, B, C)), data.draw(arrows(case, C, D))
    assert_arrows_equal(case, (f >> g) >> h, f >> (g >> h))
    assert_arrows_equal(case, then(f, g, h), (f >> g) >> h)


@every_semiring
@given(data=st.data())
def test_identities_are_units(case, data):
    A, B = objects(data, 2)
    f = data.draw(arrows(case, A, B))
    S = case.semiring
    for left in (identity(A, S, DTYPE), FinFunction.id(A)):
        assert_arrows_equal(case, left >> f, f)
    for right in (identity(B, S, DTYPE), FinFunction.id(B)):
        assert_arrows_equal(case, f >> right, f)


@every_semiring
@given(data=st.data())
def test_interchange(case, data):
    A, B, C = objects(data, 3)
    D, E, F = objects(data, 3)
    f, h = data.draw(arrows(case, A, B)), data.draw(arrows(case, B, C))
    g, k = data.draw(arrows(case, D, E)), data.draw(arrows(case, E, F))
    assert_arrows_equal(case, (f @ g) >> (h @ k), (f >> h) @ (g >> k))


@every_semiring
@given(data=st.data())
def test_tensor_is_strictly_associative_and_unital(case, data):
    # Products of FinSets flatten and index row-major, so the canonical
    # reindexing ((a, b), c) -> (a, (b, c)) is the identity on indices.
    A, B, C = objects(data, 3)
    D, E, F = objects(data, 3)
    f, g, h = (data.draw(arrows(case, X, Y)) for X, Y in ((A, D), (B, E), (C, F)))
    assert_arrows_equal(case, (f @ g) @ h, f @ (g @ h))
    unit = FinSet.unit()
    assert_arrows_equal(case, f @ identity(unit, case.semiring, DTYPE), f)
    assert_arrows_equal(case, identity(unit, case.semiring, DTYPE) @ f, f)


@every_semiring
@given(data=st.data())
def test_tensor_pairs_entries_row_major(case, data):
    A, B = objects(data, 2)
    C, D = objects(data, 2)
    f, g = data.draw(arrows(case, A, B)), data.draw(arrows(case, C, D))
    fg, mf, mg = matrix(case, f @ g), matrix(case, f), matrix(case, g)
    S = case.semiring
    for a in range(A.size):
        for c in range(C.size):
            for b in range(B.size):
                for d in range(D.size):
                    expected = S.mul(mf[..., a, b], mg[..., c, d])
                    assert_tensors_equal(case, fg[..., a * C.size + c, b * D.size + d], expected)


@every_semiring
@given(data=st.data())
def test_functions_act_as_their_matrices(case, data):
    # The embedding of functions into every semiring is a functor, and the
    # shortcuts (reindexing rows, summing over fibres) agree with matmul.
    A, B, C = objects(data, 3, min_size=1)
    f, g = data.draw(functions(A, B)), data.draw(functions(B, C))
    S, as_m = case.semiring, (lambda x: Morphism(x.dom, x.cod, matrix(case, x), case.semiring))
    assert_arrows_equal(case, f >> g, as_m(f) >> as_m(g))
    assert_arrows_equal(case, f @ g, as_m(f) @ as_m(g))
    m = data.draw(morphisms(case, B, C))
    assert_arrows_equal(case, f >> m, as_m(f) >> m)
    n = data.draw(morphisms(case, C, A))
    assert_arrows_equal(case, n >> f, n >> as_m(f))
    assert isinstance(f >> g, FinFunction) and S == (f >> m).semiring


@every_semiring
@given(data=st.data())
def test_batches_broadcast_like_separate_morphisms(case, data):
    A, B, C = objects(data, 3)
    f = Morphism(A, B, data.draw(tensors(case, (2, A.size, B.size))), case.semiring)
    g = data.draw(morphisms(case, B, C, batch=False))
    h = data.draw(morphisms(case, C, A, batch=False))
    composite, product = f >> g, f @ h
    assert composite.batch_shape == product.batch_shape == (2,)
    slices = [Morphism(A, B, f.tensor[i], case.semiring) for i in range(2)]
    assert_tensors_equal(case, composite.tensor, torch.stack([(fi >> g).tensor for fi in slices]))
    assert_tensors_equal(case, product.tensor, torch.stack([(fi @ h).tensor for fi in slices]))


@every_semiring
@given(data=st.data())
def test_copy_and_delete_form_a_commutative_comonoid(case, data):
    A = data.draw(finsets())
    S = case.semiring
    idA = identity(A, S, DTYPE)
    # counit laws, in the semiring and as functions
    assert_arrows_equal(case, copy(A) >> (delete(A) @ idA), idA)
    assert_arrows_equal(case, copy(A) >> (idA @ delete(A)), idA)
    assert_arrows_equal(case, copy(A) >> (delete(A) @ FinFunction.id(A)), FinFunction.id(A))
    # coassociativity and commutativity
    assert_arrows_equal(case, copy(A) >> (copy(A) @ idA), copy(A) >> (idA @ copy(A)))
    assert_arrows_equal(case, copy(A) >> swap(A, A), copy(A))


@every_semiring
@given(data=st.data())
def test_swap_is_a_natural_involution(case, data):
    A, B = objects(data, 2)
    C, D = objects(data, 2)
    f, g = data.draw(arrows(case, A, B)), data.draw(arrows(case, C, D))
    assert_arrows_equal(case, (f @ g) >> swap(B, D), swap(A, C) >> (g @ f))
    assert_arrows_equal(case, swap(A, C) >> swap(C, A), identity(A * C, case.semiring, DTYPE))


@every_semiring
@given(data=st.data())
def test_projections_are_identity_beside_delete(case, data):
    A, B = data.draw(finsets()), data.draw(finsets())
    first, second = projections(A, B)
    S = case.semiring
    assert_arrows_equal(case, first, identity(A, S, DTYPE) @ delete(B))
    assert_arrows_equal(case, second, delete(A) @ identity(B, S, DTYPE))
    # and they recover the factors of a product of functions
    if can_map(A, A) and can_map(B, B):
        f, g = data.draw(functions(A, A)), data.draw(functions(B, B))
        assert_arrows_equal(case, (f @ g) >> first, first >> f)
        assert_arrows_equal(case, (f @ g) >> second, second >> g)


@given(data=st.data())
def test_injections_partition_the_coproduct(data):
    A, B = data.draw(finsets()), data.draw(finsets())
    inl, inr = injections(A, B)
    images = torch.cat([inl.mapping, inr.mapping])
    assert torch.equal(images.sort().values, torch.arange(A.size + B.size))
    assert (inl.cod, inr.cod) == (A + B, A + B)


@pytest.mark.parametrize("case", KERNEL_CASES, ids=repr)
@given(data=st.data())
def test_kinds_are_preserved(case, data):
    A, B, C = objects(data, 3, min_size=1)
    f = data.draw(functions(A, B))
    k = data.draw(kernels(case.semiring, B, C))
    m = data.draw(morphisms(case, C, A))
    assert type(f >> k) is Kernel and type(k >> FinFunction.id(C)) is Kernel
    assert type(k >> m) is Morphism and type(m >> f) is Morphism
    assert type(k @ f) is Kernel and type(f @ k) is Kernel and type(k @ m) is Morphism
