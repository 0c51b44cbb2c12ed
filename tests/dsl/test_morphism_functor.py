"""The functor from QVR morphism expressions to matrices: a random
well-typed `define` read by QVR evaluates to what an independent
interpreter computes from its leaves with the matrices of
quivers.categories, in every semiring a latent kernel lives in."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from quivers.categories import LOG, MAX_PLUS, MIN_PLUS, PROB, FinSet, Morphism, identity
from quivers.dsl import loads

HEAD = """\
object A : FinSet 2
object B : FinSet 3
morphism f : A -> B
morphism g : B -> A
morphism t : A -> A
morphism u : B -> B
"""
LEAVES = {("A", "B"): ["f"], ("B", "A"): ["g"], ("A", "A"): ["t"], ("B", "B"): ["u"]}
SINGLE = ("A", "B")
OBJECTS = SINGLE + tuple(f"{x} * {y}" for x in SINGLE for y in SINGLE)
F64 = torch.float64


def typed(dom: str, cod: str, depth: int) -> st.SearchStrategy[str]:
    """QVR text of an expression `dom -> cod` (a name or `X * Y`)."""
    options = []
    if dom == cod:
        options.append(st.just(f"identity({dom})") if dom in SINGLE else st.nothing())
    if (dom, cod) in LEAVES:
        options.append(st.sampled_from(LEAVES[dom, cod]))
    if "*" in dom and "*" in cod:
        (x, y), (z, w) = dom.split(" * "), cod.split(" * ")
        options.append(st.tuples(typed(x, z, depth - 1), typed(y, w, depth - 1)).map(lambda p: f"({p[0]}) @ ({p[1]})"))
    if depth > 0:
        options.append(st.sampled_from(OBJECTS).flatmap(
            lambda mid: st.tuples(typed(dom, mid, depth - 1), typed(mid, cod, depth - 1))
        ).map(lambda p: f"({p[0]}) >> ({p[1]})"))
        options.append(typed(cod, dom, depth - 1).map(lambda e: f"({e}).dagger"))
        if dom == cod and dom in SINGLE:
            options.append(st.tuples(typed(dom, dom, depth - 1), st.integers(0, 3)).map(
                lambda p: f"repeat({p[0]}, {p[1]})"))
    return st.one_of(*options)


def interpret(text: str, leaves: dict[str, Morphism], sets: dict[str, FinSet], semiring) -> Morphism:
    """An independent reading of the expression, by Python's own parser:
    `>>` and `@` are Morphism's, `.dagger` a transpose, `repeat` a loop."""

    class Term:
        def __init__(self, m):
            self.m = m

        def __rshift__(self, other):
            return Term(self.m >> other.m)

        def __matmul__(self, other):
            return Term(self.m @ other.m)

        @property
        def dagger(self):
            return Term(Morphism(self.m.cod, self.m.dom, self.m.tensor.transpose(-1, -2), semiring))

    def repeat(term, n):
        out = Term(identity(term.m.dom, semiring, F64))
        for _ in range(n):
            out = out >> term
        return out

    env = {k: Term(v) for k, v in leaves.items()}
    env.update(A=sets["A"], B=sets["B"], repeat=repeat,
               identity=lambda obj: Term(identity(obj, semiring, F64)))
    return eval(text, {"__builtins__": {}}, env).m


@pytest.mark.parametrize("semiring", [PROB, LOG, MAX_PLUS, MIN_PLUS])
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_qvr_expressions_mean_their_matrices(semiring, data):
    dom, cod = data.draw(st.sampled_from(OBJECTS), label="dom"), data.draw(st.sampled_from(OBJECTS), label="cod")
    text = data.draw(typed(dom, cod, 3), label="expression")
    m = loads(HEAD + f"define h = {text}\n")
    leaves = {n: m[n].as_morphism(semiring, F64) for n in ("f", "g", "t", "u")}
    expected = interpret(text, leaves, {"A": m.A, "B": m.B}, semiring)
    got = m.h.as_morphism(semiring, F64)
    assert (got.dom.size, got.cod.size) == (expected.dom.size, expected.cod.size)
    torch.testing.assert_close(got.tensor, expected.tensor)
