"""The language reference (docs/reference.md) is checked against the
grammar and the registries: every rule, keyword and operator of qvr.lark,
every distribution family, function, effect and option key is on it."""

from __future__ import annotations

import re

import pytest

from quivers.distributions import FAMILIES
from quivers.dsl.checker import OPTIONS
from quivers.dsl.parser import grammar_text
from quivers.programs import BUILDERS, FUNCTIONS, Effect

from tests.docs.blocks import DOCS

REFERENCE = DOCS / "reference.md"


def grammar() -> str:
    return "\n".join(line.split("//", 1)[0] for line in grammar_text().splitlines())


def rules() -> set[str]:
    """Rule names and aliases; those starting with `_` are inlined and unnamed."""
    text = grammar()
    names = set(re.findall(r"^\??([a-z][a-z_0-9]*)\s*:", text, re.M))
    names |= set(re.findall(r"->\s*([a-z][a-z_0-9]*)", text))
    return names


def literals() -> set[str]:
    return set(re.findall(r'"([^"]+)"', grammar()))


def backticked() -> set[str]:
    text = REFERENCE.read_text(encoding="utf-8")
    spans = set(re.findall(r"`([^`\n]+)`", text))
    return spans


def code_text() -> str:
    """Everything on the page in backticks or in code blocks."""
    text = REFERENCE.read_text(encoding="utf-8")
    blocks = re.findall(r"```[^\n]*\n(.*?)```", text, re.S)
    return "\n".join(blocks) + "\n" + "\n".join(backticked())


def test_the_grammar_has_rules_to_check():
    assert {"program_decl", "sample_step", "marginalize_step", "expr", "subscript"} <= rules()
    assert {"sample", "marginalize", "<-", "->"} <= literals()


@pytest.mark.parametrize("rule", sorted(rules()))
def test_every_grammar_rule_is_documented(rule):
    assert rule in backticked(), f"docs/reference.md does not name the grammar rule `{rule}` (write it in backticks)"


@pytest.mark.parametrize("literal", sorted(literals()))
def test_every_keyword_and_operator_is_documented(literal):
    if literal.isidentifier():
        assert literal in backticked(), f"docs/reference.md does not name the keyword `{literal}`"
    else:
        assert literal in code_text(), f"docs/reference.md never shows the operator `{literal}`"


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_every_family_is_documented(name):
    assert name in backticked(), f"docs/reference.md does not list the family `{name}`"


@pytest.mark.parametrize("name", sorted(FUNCTIONS) + sorted(BUILDERS))
def test_every_function_is_documented(name):
    assert name in backticked(), f"docs/reference.md does not list the function `{name}`"


@pytest.mark.parametrize("name", sorted(e.name for e in Effect))
def test_every_effect_is_documented(name):
    assert name in backticked()


@pytest.mark.parametrize("key", sorted({k for keys in OPTIONS.values() for k in keys}))
def test_every_option_is_documented(key):
    assert key in backticked(), f"docs/reference.md does not document the option `{key}`"


def test_the_keywords_listed_are_the_grammars():
    from quivers.dsl.lexer import grammar_keywords

    text = REFERENCE.read_text(encoding="utf-8")
    listed = re.search(r"keywords cannot be names: (.*?)\.\n", text, re.S).group(1)
    assert set(re.findall(r"`([^`]+)`", listed)) == set(grammar_keywords())
