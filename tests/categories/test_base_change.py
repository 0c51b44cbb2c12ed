"""Semiring homomorphisms: the homomorphism laws on elements, and base change
as a functor (it preserves composition, identities and the tensor)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from quivers.categories import (
    HOMOMORPHISMS,
    LOG,
    LOG_TO_PROB,
    MIN_PLUS,
    PROB,
    PROB_TO_LOG,
    FinFunction,
    FinSet,
    Kernel,
    Morphism,
    base_change,
    identity,
)
from quivers.errors import CompositionError, UnknownNameError
from tests.categories.strategies import (
    CASE_OF,
    Case,
    DTYPE,
    assert_tensors_equal,
    finsets,
    kernels,
    morphisms,
    tensors,
)

every_hom = pytest.mark.parametrize("hom", HOMOMORPHISMS, ids=repr)


def cases(hom):
    """How to draw the source, and how to compare in the target: exactly
    only when both sides are exact (exp and log round)."""
    source, target = CASE_OF[hom.source], CASE_OF[hom.target]
    return source, Case(target.semiring, target.elements, source.exact and target.exact)


@every_hom
@given(data=st.data())
def test_homomorphism_laws(hom, data):
    source, target = cases(hom)
    a, b = data.draw(tensors(source, (4,))), data.draw(tensors(source, (4,)))
    S, T = hom.source, hom.target
    assert_tensors_equal(target, hom(S.add(a, b)), T.add(hom(a), hom(b)))
    assert_tensors_equal(target, hom(S.mul(a, b)), T.mul(hom(a), hom(b)))
    units = torch.tensor([S.zero, S.one], dtype=a.dtype)
    expected = torch.tensor([T.zero, T.one], dtype=hom(units).dtype)
    assert_tensors_equal(target, hom(units), expected)


@every_hom
@given(data=st.data())
def test_base_change_is_a_functor(hom, data):
    source, target = cases(hom)
    A, B, C = (data.draw(finsets()) for _ in range(3))
    # Batches are left out here: how they broadcast is the category tests' job.
    f, g = data.draw(morphisms(source, A, B, False)), data.draw(morphisms(source, B, C, False))
    h = data.draw(morphisms(source, C, A, False))
    assert_tensors_equal(target, hom(f >> g).tensor, (hom(f) >> hom(g)).tensor)
    assert_tensors_equal(target, hom(f @ h).tensor, (hom(f) @ hom(h)).tensor)
    image = hom(identity(A, hom.source, DTYPE))
    assert image.semiring == hom.target
    assert_tensors_equal(target, image.tensor, identity(A, hom.target, image.tensor.dtype).tensor)
    assert base_change(f, hom.target).tensor.equal(hom(f).tensor)


@given(data=st.data())
def test_exp_and_log_are_inverse_and_keep_kernels(data):
    A, B = data.draw(finsets()), data.draw(finsets(min_size=1))
    k = data.draw(kernels(PROB, A, B))
    logged = PROB_TO_LOG(k)
    assert type(logged) is Kernel and logged.semiring == LOG
    torch.testing.assert_close(LOG_TO_PROB(logged).tensor, k.tensor)
    m = data.draw(morphisms(CASE_OF[LOG], A, B))
    torch.testing.assert_close(PROB_TO_LOG(LOG_TO_PROB(m)).tensor, m.tensor)


def test_gradients_pass_through_base_change():
    A = FinSet("A", 3)
    x = torch.randn(3, 3, dtype=DTYPE, generator=torch.Generator().manual_seed(1), requires_grad=True)
    fn = lambda x: LOG_TO_PROB(Morphism(A, A, x, LOG) >> Morphism(A, A, x, LOG)).tensor  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x,))


def test_functions_change_base_to_their_matrices():
    f = FinFunction(FinSet("A", 2), FinSet("B", 2), [1, 1])
    assert torch.equal(base_change(f, MIN_PLUS).tensor, torch.tensor([[torch.inf, 0.0], [torch.inf, 0.0]]))
    assert torch.equal(LOG_TO_PROB(f).tensor, f.as_morphism(PROB).tensor)


def test_base_change_refuses_what_it_cannot_do():
    m = Morphism(FinSet("A", 1), FinSet("B", 1), torch.tensor([[0.5]]))
    with pytest.raises(UnknownNameError, match="from `PROB` to `MIN_PLUS`"):
        base_change(m, MIN_PLUS)
    with pytest.raises(CompositionError, match="LOG_TO_PROB maps morphisms in `LOG`.*`A -> B` is in `PROB`"):
        LOG_TO_PROB(m)
    assert base_change(m, PROB) is m
