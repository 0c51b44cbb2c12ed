"""Bad input raises a QuiversError subclass that names the objects and shapes
involved, never a bare torch, Index or Type error."""

from __future__ import annotations

import math

import pytest
import torch

from quivers.categories import (
    BOOL,
    LOG,
    MAX_PLUS,
    PROB,
    FinFunction,
    FinSet,
    Kernel,
    Morphism,
    fibre_sum,
    left_kan,
    right_kan,
    then,
)
from quivers.errors import (
    CompositionError,
    InvalidValueError,
    QuiversError,
    QuiversTypeError,
    ShapeError,
)

A, B, C = FinSet("A", 2), FinSet("B", 3), FinSet("C", 4)


def raises(kind: type[QuiversError], *fragments: str):
    """Expect ``kind`` with every fragment in its message (literally)."""

    class Check:
        def __enter__(self):
            self.ctx = pytest.raises(kind)
            self.info = self.ctx.__enter__()
            return self.info

        def __exit__(self, *exc):
            handled = self.ctx.__exit__(*exc)
            message = str(self.info.value)
            for fragment in fragments:
                assert fragment in message, (fragment, message)
            return handled

    return Check()


@pytest.mark.parametrize("size", [-1, 2.5, "3", True, None])
def test_finset_sizes_must_be_natural_numbers(size):
    with raises(InvalidValueError, "size of `A`", repr(size) if size != -1 else "-1"):
        FinSet("A", size)


def test_finset_names_must_be_strings():
    with raises(QuiversTypeError, "name of a FinSet"):
        FinSet("", 2)


def test_tensor_must_fit_the_objects():
    with raises(ShapeError, "(3, 2)", "`A -> B`", "(..., 2, 3)"):
        Morphism(A, B, torch.zeros(3, 2))
    with raises(ShapeError, "(2,)", "`A -> B`"):
        Morphism(A, B, torch.zeros(2))
    with raises(QuiversTypeError, "`A -> B`", "torch.Tensor", "list"):
        Morphism(A, B, [[0.0] * 3] * 2)


def test_tensor_dtype_must_fit_the_semiring():
    with raises(QuiversTypeError, "`A -> B`", "`BOOL`", "torch.bool"):
        Morphism(A, B, torch.zeros(2, 3), BOOL)
    with raises(QuiversTypeError, "`A -> B`", "`LOG`", "floating point", "torch.int64"):
        Morphism(A, B, torch.zeros(2, 3, dtype=torch.long), LOG)


@pytest.mark.parametrize(
    "semiring, bad",
    [(PROB, -0.5), (PROB, math.nan), (PROB, math.inf), (LOG, math.inf), (LOG, math.nan), (MAX_PLUS, math.inf)],
)
def test_entries_must_lie_in_the_semiring(semiring, bad):
    t = torch.zeros(2, 3)
    t[1, 2] = bad
    with raises(InvalidValueError, "entry (1, 2)", "`A -> B`", f"`{semiring}`"):
        Morphism(A, B, t, semiring)


def test_composition_needs_matching_objects():
    f, g = Morphism(A, B, torch.ones(2, 3)), Morphism(C, A, torch.ones(4, 2))
    with raises(CompositionError, "`A -> B`", "`C -> A`", "codomain `B` (size 3)", "domain `C` (size 4)"):
        f >> g
    h = FinFunction(C, A, [0, 1, 0, 1])
    with raises(CompositionError, "`A -> B`", "`C -> A`"):
        f >> h
    with raises(CompositionError, "`C -> A`", "`C -> A`"):
        h >> h
    with raises(QuiversTypeError, "`A -> B`", "Tensor"):
        f >> torch.ones(3, 3)


def test_composition_needs_matching_semirings():
    f = Morphism(A, B, torch.ones(2, 3))
    g = Morphism(B, C, torch.zeros(3, 4), LOG)
    with raises(CompositionError, "`A -> B` in `PROB`", "`B -> C` in `LOG`", "base-change"):
        f >> g
    with raises(CompositionError, "`PROB`", "`LOG`"):
        f @ g


def test_batches_must_broadcast():
    f = Morphism(A, B, torch.ones(2, 2, 3))
    g = Morphism(B, C, torch.ones(3, 3, 4))
    with raises(ShapeError, "(2,)", "(3,)", "`A -> B`", "`B -> C`"):
        f >> g


def test_then_needs_an_arrow():
    with raises(QuiversTypeError, "`then`"):
        then()


def test_kernel_rows_must_be_distributions():
    with raises(InvalidValueError, "entry (0, 1)", "`A -> A`", "`PROB`"):
        Kernel(A, A, torch.tensor([[1.5, -0.5], [0.5, 0.5]]))
    with raises(InvalidValueError, "row (1,)", "`A -> A`", "sums to"):
        Kernel(A, A, torch.tensor([[0.5, 0.5], [0.5, 0.6]]))
    with raises(InvalidValueError, "row (0,)", "log-sum-exps"):
        Kernel(A, A, torch.tensor([[0.0, 0.0], [0.0, -math.inf]]), LOG)
    with raises(InvalidValueError, "`A -> 0`", "empty"):
        Kernel(A, FinSet.empty(), torch.zeros(2, 0))
    with raises(QuiversTypeError, "`A -> A`", "`PROB` or `LOG`", "MAX_PLUS"):
        Kernel(A, A, torch.eye(2), MAX_PLUS)


def test_kernel_logits_must_give_distributions():
    with raises(InvalidValueError, "entry (0, 1)", "NaN"):
        Kernel.from_logits(A, A, torch.tensor([[0.0, math.nan], [0.0, 0.0]]))
    with raises(InvalidValueError, "entry (1,)", "no finite logit"):
        Kernel.from_logits(A, A, torch.tensor([[0.0, 0.0], [-math.inf, -math.inf]]))
    with raises(ShapeError, "(2, 2)", "`A -> B`"):
        Kernel.from_logits(A, B, torch.zeros(2, 2))


def test_function_images_must_be_in_range():
    with raises(InvalidValueError, "element 2 of `B`", "`B -> A`", "is 2", "`A` (size 2)"):
        FinFunction(B, A, [0, 1, 2])
    with raises(InvalidValueError, "element 0", "is -1"):
        FinFunction(B, A, torch.tensor([-1, 0, 0]))
    with raises(ShapeError, "(2,)", "`B -> A`", "(3,)"):
        FinFunction(B, A, [0, 1])
    with raises(QuiversTypeError, "`B -> A`", "integers"):
        FinFunction(B, A, [0, 1.5, 1])
    with raises(QuiversTypeError, "`B -> A`", "torch.float32"):
        FinFunction(B, A, torch.tensor([0.0, 1.0, 1.0]))
    with raises(InvalidValueError, "7", "`B` (size 3)"):
        FinFunction(B, A, [0, 1, 1])(7)


def test_kan_extensions_check_their_weight():
    f = FinFunction(B, A, [0, 1, 1])
    with raises(ShapeError, "`B -> A`", "(2, 5)", "`B` (size 3)"):
        right_kan(f, torch.zeros(2, 5), LOG)
    with raises(QuiversTypeError, "`B -> A`", "`BOOL`", "torch.bool"):
        left_kan(f, torch.zeros(3), BOOL)
    with raises(QuiversTypeError, "FinFunction", "Morphism"):
        left_kan(Morphism(B, A, torch.ones(3, 2)), torch.zeros(3), PROB)
    with raises(QuiversTypeError, "Semiring"):
        left_kan(f, torch.zeros(3), "LOG")
    with raises(ShapeError, "(3,)", "`B -> A`", "`A` (size 2)"):
        f.pullback(torch.zeros(3))


def test_fibre_reductions_check_their_index():
    w = torch.zeros(3, 2)
    with raises(InvalidValueError, "element 2", "is 5", "size 4"):
        fibre_sum(torch.tensor([0, 1, 5]), w, 4, LOG)
    with raises(ShapeError, "(2,)", "(3, 2)"):
        fibre_sum(torch.tensor([0, 1]), w, 4, LOG)
    with raises(InvalidValueError, "`num_groups`", "-1"):
        fibre_sum(torch.tensor([0, 1, 1]), w, -1, LOG)
    with raises(QuiversTypeError, "`index`", "torch.float32"):
        fibre_sum(torch.tensor([0.0, 1.0, 1.0]), w, 4, LOG)


def test_every_error_is_a_quivers_error():
    # The hierarchy is rooted in QuiversError, so callers can catch it once.
    for kind in (ShapeError, CompositionError, InvalidValueError, QuiversTypeError):
        assert issubclass(kind, QuiversError)
