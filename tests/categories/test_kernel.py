"""Markov kernels: closure under composition and tensor, totality, and
trainable kernels built from logits."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from quivers.categories import (
    LOG,
    PROB,
    FinSet,
    Kernel,
    Morphism,
    delete,
    logsumexp,
)
from tests.categories.strategies import (
    DTYPE,
    KERNEL_CASES,
    assert_arrows_equal,
    finsets,
    functions,
    kernels,
)

kernel_semirings = pytest.mark.parametrize("case", KERNEL_CASES, ids=repr)


def assert_rows_normalized(k: Kernel) -> None:
    totals = k.tensor.sum(-1) if k.semiring == PROB else logsumexp(k.tensor, -1)
    target = 1.0 if k.semiring == PROB else 0.0
    torch.testing.assert_close(totals, torch.full_like(totals, target))
    if k.semiring == PROB:
        assert bool((k.tensor >= 0).all())


@kernel_semirings
@given(data=st.data())
def test_kernels_are_closed_under_composition_and_tensor(case, data):
    A, B, C = (data.draw(finsets(min_size=1)) for _ in range(3))
    S = case.semiring
    k, h = data.draw(kernels(S, A, B)), data.draw(kernels(S, B, C))
    for composite in (k >> h, k @ h, k >> data.draw(functions(B, C)), data.draw(functions(C, A)) >> k):
        assert type(composite) is Kernel and composite.semiring == S
        assert_rows_normalized(composite)


@kernel_semirings
@given(data=st.data())
def test_kernels_are_total(case, data):
    # The defining property of morphisms in a Markov category: discarding
    # the output of k is discarding its input.
    A, B = data.draw(finsets()), data.draw(finsets(min_size=1))
    k = data.draw(kernels(case.semiring, A, B))
    assert_arrows_equal(case, k >> delete(B), delete(A))


@kernel_semirings
def test_logit_kernels_are_trainable_softmaxes(case):
    A, B, C = FinSet("A", 2), FinSet("B", 3), FinSet("C", 2)
    S = case.semiring
    k = Kernel.from_logits(A, B, semiring=S, dtype=DTYPE)
    h = Kernel.from_logits(B, C, torch.randn(3, 2, dtype=DTYPE), semiring=S)
    (param,) = k.parameters()
    assert isinstance(param, torch.nn.Parameter) and h.parameters() == ()
    expected = torch.full((2, 3), 1 / 3, dtype=DTYPE)
    torch.testing.assert_close(k.tensor, expected if S == PROB else expected.log())
    # The tensor is read out of the parameter on every access, so a kernel
    # survives optimizer steps and repeated backward passes.
    optimizer = torch.optim.SGD([param], lr=1.0)
    target = 0 if S == PROB else 1
    for _ in range(2):
        optimizer.zero_grad()
        loss = -(k >> h).tensor[0, target]
        loss.backward()
        optimizer.step()
    assert not torch.allclose(k.tensor, expected if S == PROB else expected.log())
    assert_rows_normalized(k)


def test_logit_kernels_compose_differentiably():
    A, B, C = FinSet("A", 2), FinSet("B", 3), FinSet("C", 2)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, dtype=DTYPE, generator=gen, requires_grad=True)
    y = torch.randn(3, 2, dtype=DTYPE, generator=gen, requires_grad=True)

    def composite(x, y, semiring):
        k, h = Kernel.from_logits(A, B, x, semiring), Kernel.from_logits(B, C, y, semiring)
        return ((k >> h) @ k).tensor

    assert torch.autograd.gradcheck(lambda x, y: composite(x, y, PROB), (x, y))
    assert torch.autograd.gradcheck(lambda x, y: composite(x, y, LOG), (x, y))
    torch.testing.assert_close(composite(x, y, LOG).exp(), composite(x, y, PROB))


def test_logit_kernels_allow_impossible_transitions():
    A, B = FinSet("A", 1), FinSet("B", 3)
    k = Kernel.from_logits(A, B, torch.tensor([[0.0, -torch.inf, 0.0]]), LOG)
    assert k.tensor[0, 1].item() == -torch.inf
    torch.testing.assert_close(k.tensor[0, 0], torch.tensor(0.5).log())


def test_identity_kernel():
    A = FinSet("A", 3)
    k = Kernel.id(A)
    assert type(k) is Kernel and torch.equal(k.tensor, torch.eye(3))
    assert torch.equal(Kernel.id(A, LOG).tensor.exp(), torch.eye(3))


def test_a_kernel_beside_a_weighted_morphism_is_only_a_morphism():
    A = FinSet("A", 2)
    k = Kernel(A, A, torch.tensor([[0.5, 0.5], [1.0, 0.0]]))
    m = Morphism(A, A, torch.tensor([[2.0, 0.0], [0.0, 2.0]]))
    assert type(k >> m) is Morphism and type(m >> k) is Morphism
    assert torch.equal((k >> m).tensor.sum(-1), torch.tensor([2.0, 2.0]))
