"""Contractions join several morphisms along the objects they share: an
einsum in the semiring, checked against loops in float64; in QVR a
`contraction` declaration is applied in a `define`."""

from __future__ import annotations

import itertools

import pytest
import torch

from quivers.categories import LOG, MAX_PLUS, PROB, REAL, FinSet
from quivers.dsl import loads
from quivers.dsl.format import format_source
from quivers.errors import CompositionError, QuiversError, QuiversTypeError, UnknownNameError
from quivers.nn import contraction, latent, weights

F64 = torch.float64
Doc, Topic, Word, Tag = FinSet("Doc", 3), FinSet("Topic", 2), FinSet("Word", 4), FinSet("Tag", 2)


def test_a_contraction_is_the_sum_of_products_over_shared_objects():
    torch.manual_seed(0)
    theta, phi, tag = latent(Doc, Topic), latent(Topic * Tag, Word), latent(Doc, Tag)
    c = contraction([theta, phi, tag], Doc, Word)
    t, f, g = (m.as_morphism(PROB, F64).tensor for m in (theta, phi, tag))
    f = f.reshape(2, 2, 4)
    loops = torch.zeros(3, 4, dtype=F64)
    for d, w, k, s in itertools.product(range(3), range(4), range(2), range(2)):
        loops[d, w] += t[d, k] * g[d, s] * f[k, s, w]
    torch.testing.assert_close(c.as_morphism(PROB, F64).tensor, loops)
    # the same in the log semiring, and the order of the parts does not matter
    torch.testing.assert_close(c.as_morphism(LOG, F64).tensor, loops.log())
    swapped = contraction([phi, tag, theta], Doc, Word)
    torch.testing.assert_close(swapped.as_morphism(MAX_PLUS, F64).tensor, c.as_morphism(MAX_PLUS, F64).tensor)


def test_two_parts_chained_through_one_object_are_their_composite():
    f, g = latent(Doc, Topic), latent(Topic, Word)
    for s in (PROB, LOG, MAX_PLUS):
        torch.testing.assert_close(contraction([f, g], Doc, Word).as_morphism(s, F64).tensor,
                                   (f >> g).as_morphism(s, F64).tensor)


def test_bad_contractions_say_which_object():
    with pytest.raises(CompositionError, match="keeps the object `Tag`, which no part has"):
        contraction([latent(Doc, Topic)], Doc, Tag)
    with pytest.raises(QuiversTypeError, match="object `Topic` on two axes"):
        contraction([latent(Topic, Topic)], Topic, FinSet.unit())
    with pytest.raises(QuiversTypeError, match="read it in REAL"):
        contraction([weights(Doc, Topic)], Doc, Topic, REAL).as_morphism(LOG)


SOURCE = """
composition real
object Doc : FinSet 3
object Left, Right : FinSet 2
object Label : FinSet 4
morphism left : Doc -> Left [role=latent]
morphism right : Doc -> Right [role=latent]
morphism core : Left * Right -> Label [role=latent]
contraction score(l : Doc -> Left, r : Doc -> Right, c : Left * Right -> Label,) : Doc -> Label [rule=real]
define scored = score(left, right, core)
"""


def test_a_qvr_contraction_is_the_bilinear_score_and_round_trips():
    m = loads(SOURCE)
    l, r, c = m.left.weight.double(), m.right.weight.double(), m.core.weight.double().reshape(2, 2, 4)
    torch.testing.assert_close(m.scored.as_morphism(REAL, F64).tensor, torch.einsum("db,dc,bcj->dj", l, r, c))
    text = format_source(SOURCE)
    assert "contraction score(l : Doc -> Left, r : Doc -> Right, c : Left * Right -> Label) : Doc -> Label" in text
    assert format_source(text) == text


@pytest.mark.parametrize(
    "define, cls, message",
    [
        ("define s = score(right, left, core)", CompositionError, "is given for parameter `l : Doc -> Left`"),
        ("define s = score(left, right)", QuiversTypeError, "takes 3 morphisms"),
        ("define s = scor(left, right, core)", UnknownNameError, "did you mean `score`"),
    ],
)
def test_bad_applications_are_located(define, cls, message):
    text = SOURCE + define + "\n"
    with pytest.raises(cls, match=message) as err:
        loads(text)
    assert err.value.span is not None and err.value.span.line == len(text.splitlines())


def test_a_bad_rule_is_located():
    with pytest.raises(QuiversError, match="`rule` must be one of") as err:
        loads(SOURCE.replace("[rule=real]", "[rule=reals]"))
    assert err.value.span.line == 9
