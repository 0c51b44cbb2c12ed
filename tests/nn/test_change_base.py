"""Changes of base as values: `softmax(B)`, `l1_normalize(B)` and
`expectation`, chained by `>>>` and applied by `f.change_base(t)`."""

from __future__ import annotations

import pytest
import torch

from quivers.categories import PROB, PRODUCT_FUZZY
from quivers.dsl import loads
from quivers.dsl.format import format_source
from quivers.errors import CompositionError, QuiversError, QuiversTypeError

SOURCE = """
composition product_fuzzy
object Cue : FinSet 3
object Act : FinSet 2
morphism affinity : Cue -> Act [role=latent]
let norm = l1_normalize(Act)
let policy = affinity.change_base(norm >>> expectation)
let sharp = affinity.change_base(softmax(Act))
"""


def test_a_change_of_base_rewrites_the_matrix_row_by_row():
    m = loads(SOURCE)
    w = m.affinity.as_morphism(PRODUCT_FUZZY, torch.float64).tensor
    torch.testing.assert_close(m.policy.as_morphism(PRODUCT_FUZZY, torch.float64).tensor, w / w.sum(-1, keepdim=True))
    # softmax alone ends in probabilities: the composite is read in PROB
    sharp = m.sharp.as_morphism(PROB, torch.float64).tensor
    torch.testing.assert_close(sharp, w.softmax(-1))
    torch.testing.assert_close(sharp.sum(-1), torch.ones(3, dtype=torch.float64))
    with pytest.raises(QuiversTypeError, match="read it there"):
        m.sharp.as_morphism(PRODUCT_FUZZY)
    assert format_source(format_source(SOURCE)) == format_source(SOURCE)
    assert "let policy = affinity.change_base(norm >>> expectation)" in format_source(SOURCE)


@pytest.mark.parametrize(
    "line, cls, message",
    [
        ("let bad = affinity.change_base(softmax(Act) >>> softmax(Act))", CompositionError, "ends in PROB"),
        ("let bad = affinity.change_base(softmax(Cue))", CompositionError, "normalizes rows over `Cue`"),
        ("let bad = affinity >> norm", QuiversTypeError, "is a change of base, not a morphism"),
        ("let bad = affinity.change_base(affinity)", QuiversTypeError, "is not a change of base"),
        ("let bad = affinity.normalize(norm)", QuiversError, "unknown postfix `.normalize`"),
    ],
)
def test_bad_changes_of_base_are_located(line, cls, message):
    text = SOURCE + line + "\n"
    with pytest.raises(cls, match=message) as err:
        loads(text)
    assert err.value.span is not None and err.value.span.line == len(text.splitlines())


def test_expectation_needs_an_algebra_on_the_unit_interval():
    with pytest.raises(QuiversTypeError, match="algebra on \\[0, 1\\]"):
        loads("composition log_prob\nobject A : FinSet 2\nmorphism f : A -> A\n"
              "let g = f.change_base(softmax(A) >>> expectation)\n")
