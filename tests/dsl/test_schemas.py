"""QVR ``schema``, ``bundle``, named-element and ``FreeResiduated`` objects
and ``parser(...)``: what they compile to, printing, and located errors."""

from __future__ import annotations

import math

import pytest
import torch

from quivers.categories import MAX_PLUS
from quivers.deduction import ChartParser, Schema, Var
from quivers.dsl import dumps, loads
from quivers.dsl import ast
from quivers.dsl.format import format_source
from quivers.dsl.parser import parse
from quivers.errors import QuiversError, QuiversTypeError, QVRSyntaxError, UnknownNameError

SOURCE = """\
# a tiny categorial grammar
object Basic : {NP, S, N}
object Cats : FreeResiduated(Basic, depth=1)
object Word : {she, a, cat, sees}

schema apply_right (A, B : Cats) : (A / B) * B -> A   # forward
schema apply_left (A, B : Cats) : B * (A \\ B) -> A
schema swap (A, B : Cats) : A / B -> A \\ B

bundle application : [apply_right, apply_left]
bundle everything = [application, swap]

define g = parser(rules=[everything], terminal=Word, start=S)
define g_best = parser(rules=[application, swap], terminal=Word, start=S, depth=1, semiring=Viterbi)

export g
"""


def test_the_module_compiles_to_the_python_parser():
    m = loads(SOURCE)
    g = m.g
    assert isinstance(g, ChartParser) and m.morphism is g
    assert m.Basic.size == 3 and m.Word.size == 4
    a, b = Var("A"), Var("B")
    python = ChartParser(
        [Schema("apply_right", (("Fwd", a, b), b), a), Schema("apply_left", (b, ("Bwd", a, b)), a),
         Schema("swap", (("Fwd", a, b),), ("Bwd", a, b))],
        ["she", "a", "cat", "sees"], "S", atoms=["NP", "S", "N"], depth=1,
    )
    assert g.binary_rules == python.binary_rules and g.unary_rules == python.unary_rules
    assert g.categories == python.categories and g.terminals == python.terminals
    for sentence in (["she", "sees"], ["a", "cat", "sees", "she"]):
        torch.testing.assert_close(g.weight(sentence), python.weight(sentence))


def test_a_bundle_is_spliced_and_the_semiring_option_is_read():
    m = loads(SOURCE)
    assert m.g.binary_rules == m.g_best.binary_rules and m.g.unary_rules == m.g_best.unary_rules
    assert m.g_best.semiring is MAX_PLUS
    # every weight starts at log 0: the best derivation weighs 0, and "she sees" has nine derivations
    assert float(m.g_best.weight(["she", "sees"]).detach()) == 0.0
    assert float(m.g.weight(["she", "sees"]).detach()) == pytest.approx(math.log(9))


def test_the_parser_scores_token_batches_and_learns():
    g = loads(SOURCE).g
    corpus = torch.tensor([[0, 3, 1], [1, 2, 3]])
    before = g(corpus)
    assert before.shape == (2,)
    opt = torch.optim.Adam(g.parameters(), lr=0.1)
    for _ in range(5):
        opt.zero_grad()
        loss = -(g(corpus) - torch.logsumexp(g.lexical, 1).sum()).sum()
        loss.backward()
        opt.step()
    assert bool((g(corpus) - torch.logsumexp(g.lexical, 1).sum() > before - 4 * math.log(21)).all())


def test_printing_round_trips():
    tree = parse(SOURCE)
    assert parse(dumps(tree)) == tree
    text = dumps(tree)
    assert "object Basic : {NP, S, N}" in text
    assert "object Cats : FreeResiduated(Basic, depth=1)" in text
    assert "schema apply_left (A, B : Cats) : B * (A\\B) -> A" in text
    assert "bundle everything : [application, swap]" in text
    assert "parser(rules=[everything], terminal=Word, start=S)" in text
    formatted = format_source(SOURCE)
    assert parse(formatted) == tree and "# forward" in formatted and format_source(formatted) == formatted


def test_the_ast_of_a_schema():
    (d,) = [i for i in parse(SOURCE).items if isinstance(i, ast.SchemaDecl) and i.name == "apply_right"]
    assert d.params == (ast.SchemaParam(("A", "B"), "Cats"),)
    assert d.domain == (ast.TermSlash("/", ast.TermName("A"), ast.TermName("B")), ast.TermName("B"))
    assert eval(repr(d), vars(ast)) == d


def _error(text: str, cls: type[QuiversError] = QuiversError) -> QuiversError:
    with pytest.raises(cls) as info:
        loads(text)
    return info.value


HEAD = "object Basic : {NP, S}\nobject Cats : FreeResiduated(Basic)\nobject Word : {she, runs}\n"


@pytest.mark.parametrize("line, cls, message, column", [
    ("schema r (A, B : Cats) : (A / Q) * B -> A", UnknownNameError, "unknown atom `Q` in schema `r`", 31),
    ("schema r (A, B : Cats) : A * B * A -> A", QuiversTypeError, "a product of 3 categories", 1),
    ("schema r (A, B) : A * B -> A", QuiversTypeError, "need their universe", 11),
    ("schema r (A, B : Basic) : A * B -> A", UnknownNameError, "`Basic` in schema `r` is not a universe", 11),
    ("schema r (A : Cats) : A * f(A) -> A", QuiversTypeError, "a variable, an atom or a slash", 27),
    ("bundle b : [nothing]", UnknownNameError, "`nothing` in bundle `b`", 1),
])
def test_a_bad_schema_or_bundle_is_located(line, cls, message, column):
    err = _error(HEAD + line + "\n", cls)
    assert message in err.message
    assert (err.span.line, err.span.column) == (4, column)


SCHEMA = "schema r (A, B : Cats) : B * (A \\ B) -> A\n"


@pytest.mark.parametrize("call, cls, message", [
    ("parser([r], terminal=Word, start=S)", QuiversTypeError, "keywords only"),
    ("parser(rules=[r], terminal=Word, start=S, width=3)", UnknownNameError, "no keyword `width`"),
    ("parser(rules=[r], start=S)", QuiversTypeError, "needs `terminal=`"),
    ("parser(rules=[r], terminal=Word, start=NP2)", UnknownNameError, "start category `NP2`"),
    ("parser(rules=[q], terminal=Word, start=S)", UnknownNameError, "`q` in `parser(rules=...)`"),
    ("parser(rules=[r], terminal=Words, start=S)", UnknownNameError, "`terminal=Words`"),
    ("parser(rules=[r], terminal=Word, start=S, depth=0)", QuiversError, "no instance"),
    ("parser(rules=[r], terminal=Word, start=S, depth=1.5)", QuiversTypeError, "whole number"),
    ("parser(rules=[r], terminal=Word, start=S, semiring=Tropical)", UnknownNameError, "unknown semiring"),
    ("parser(rules=[r], terminal=Word, start=S) >> f", QuiversTypeError, "value of its own"),
])
def test_a_bad_parser_call_is_located(call, cls, message):
    err = _error(HEAD + SCHEMA + f"define p = {call}\n", cls)
    assert message in err.message
    assert err.span is not None and err.span.line == 5


def test_other_bad_declarations():
    err = _error("object Cats : FreeResiduated(Nothing)\n", UnknownNameError)
    assert "needs a set of named atoms" in err.message and err.span.line == 1
    err = _error("object Basic : {NP}\nobject Cats : FreeResiduated(Basic, width=2)\n", UnknownNameError)
    assert "unknown option `width`" in err.message and err.span.line == 2
    err = _error("object Basic : {NP, S, NP}\n", QVRSyntaxError)
    assert "listed twice" in err.message and (err.span.line, err.span.column) == (1, 24)
    err = _error(HEAD + SCHEMA + "define p = parser(rules=[r], terminal=Word, start=S)\ndefine q = p >> p\n",
                 QuiversTypeError)
    assert "is a parser" in err.message and err.span.line == 6
    err = _error(HEAD + SCHEMA + "morphism f : Cats -> Word\n", UnknownNameError)
    assert "`Cats` in `morphism f : Cats -> Word` is a universe of categories" in err.message
    assert (err.span.line, err.span.column) == (5, 14)
    m = loads(HEAD + SCHEMA + "define p = parser(rules=[r], terminal=Word, start=S)\n")
    with pytest.raises(UnknownNameError, match="`walks`"):
        m.p.weight(["she", "walks"])
    assert bool(torch.isfinite(m.p.weight(["she", "runs"])))
