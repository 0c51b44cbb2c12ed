"""The QVR Pygments lexer: lossless, keywords from the grammar, no error
tokens on real QVR."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pygments.token import Comment, Error, Keyword, Name, Number, Operator, Punctuation

from quivers.dsl import dumps
from quivers.dsl.lexer import EFFECT_NAMES, QVRLexer, grammar_keywords
from quivers.dsl.transformer import CONTEXTUAL_KEYWORDS, KEYWORDS
from quivers.programs import Effect

from tests.dsl.strategies import modules

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.qvr"))


def lex(text: str) -> list[tuple[object, str]]:
    return [(t, v) for t, v in QVRLexer().get_tokens(text) if v.strip()]


def test_keywords_are_the_grammars():
    assert set(grammar_keywords()) == set(KEYWORDS) | set(CONTEXTUAL_KEYWORDS)


def test_effect_names_are_the_effects():
    assert set(EFFECT_NAMES) == {e.name for e in Effect}


def test_token_types_of_a_program():
    text = (
        "object K : FinSet 2  # components\n"
        "program p : K -> K [effects=[Sample, Score]]\n"
        "    sample mu : K <- Normal(0.0, scale=1e-3)\n"
        "    let s = exp(mu[0]) ^ 2\n"
        "    return s\n"
        "export p\n"
    )
    tokens = lex(text)
    kinds = dict((v, t) for t, v in tokens)
    assert kinds["object"] is Keyword.Declaration and kinds["program"] is Keyword.Declaration
    assert kinds["export"] is Keyword.Declaration
    assert kinds["sample"] is Keyword and kinds["let"] is Keyword and kinds["return"] is Keyword
    assert kinds["FinSet"] is Keyword.Type
    assert kinds["K"] in (Name.Class, Name)
    assert kinds["p"] is Name.Function
    assert kinds["mu"] in (Name.Variable, Name) and kinds["s"] in (Name.Variable, Name)
    assert kinds["Normal"] is Name.Builtin and kinds["exp"] is Name.Function
    assert kinds["effects"] is Name.Attribute and kinds["scale"] is Name.Attribute
    assert kinds["Sample"] is Name.Constant and kinds["Score"] is Name.Constant
    assert kinds["2"] is Number.Integer and kinds["0.0"] is Number.Float and kinds["1e-3"] is Number.Float
    assert kinds["# components"] is Comment.Single
    assert kinds["<-"] is Operator and kinds["->"] is Operator and kinds["^"] is Operator
    assert kinds[":"] is Punctuation and kinds["["] is Punctuation
    assert not [v for t, v in tokens if t is Error]


def test_a_defined_name_is_a_variable_and_a_read_name_is_a_name():
    tokens = lex("    observe y : Item <- Normal(mu_k[z], sd_k[z]) [via=group]\n")
    assert tokens[1] == (Name.Variable, "y")
    assert (Name, "mu_k") in tokens and (Name, "z") in tokens
    assert (Name.Attribute, "via") in tokens and (Name, "group") in tokens


def test_characters_outside_qvr_are_error_tokens():
    # `@` and `>>` compose programs (program h = p @ q >> r), `~` gives a
    # morphism's family; `?` and `$` are nothing
    assert [v for t, v in lex("sample x ? Normal(0, 1) $ 2\n") if t is Error] == ["?", "$"]


def test_a_keyword_prefix_does_not_make_a_keyword():
    tokens = lex("let letter = sampled + index_of\n")
    assert (Name, "sampled") in tokens and (Name, "index_of") in tokens
    assert tokens[1] == (Name.Variable, "letter")


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_lex_without_errors(path):
    assert [v for t, v in lex(path.read_text()) if t is Error] == []


@given(modules, st.lists(st.sampled_from(["# a note", "#", "  # indented"]), max_size=3))
def test_tokens_concatenate_to_the_input(module, comments):
    text = dumps(module) + "\n".join(comments)
    out = "".join(v for _, _, v in QVRLexer().get_tokens_unprocessed(text))
    assert out == text


@given(modules)
def test_canonical_source_has_no_error_tokens(module):
    assert [v for t, v in lex(dumps(module)) if t is Error] == []


def test_analyse_text_recognizes_qvr():
    text = Path(EXAMPLES[0]).read_text()
    assert QVRLexer.analyse_text(text) > 0.5
    assert QVRLexer.analyse_text("def f():\n    return 1\n") == 0.0
