"""The TextMate grammar and the pygments lexer agree on every keyword."""

from __future__ import annotations

import json
import re
import subprocess
import sys

from pygments.token import Keyword

from quivers.dsl.lexer import QVRLexer, grammar_keywords
from quivers.editor.textmate import grammar, keyword_pattern


def textmate_scope(word: str) -> str | None:
    """The scope the grammar gives ``word`` standing alone."""
    repo = grammar()["repository"]
    for name in ("type", "keyword", "effect"):
        if re.fullmatch(repo[name]["match"], word):
            return repo[name]["name"]
    return None


def test_every_grammar_keyword_is_a_keyword_in_both():
    for word in grammar_keywords():
        token = next(iter(QVRLexer().get_tokens(word)))[0]
        assert token in Keyword, (word, token)
        assert textmate_scope(word) in ("keyword.control.qvr", "storage.type.qvr"), word


def test_the_textmate_keywords_are_the_grammar_keywords_and_nothing_else():
    listed = set(re.fullmatch(r"\\b\((.*)\)\\b", keyword_pattern()).group(1).split("|"))
    assert listed | {"FinSet"} == set(grammar_keywords())
    # `over` and `iid` are keywords of a latent matrix's axis clause (`over cod iid over dom`)
    for word in ("mu", "Normal", "reduction", "Sample"):
        assert textmate_scope(word) != "keyword.control.qvr"
        assert next(iter(QVRLexer().get_tokens(word)))[0] not in Keyword or word == "Sample"


def test_declared_names_take_the_same_roles_as_in_the_lexer():
    from pygments.token import Name

    decl = grammar()["repository"]["declaration"]["patterns"]
    for line, scope, token in [("program gmm : Item -> Item", "entity.name.function.qvr", Name.Function),
                               ("object K : FinSet 2", "entity.name.type.qvr", Name.Class)]:
        name = line.split()[1]
        pattern = next(p for p in decl if re.match(p["match"], line))
        assert re.match(pattern["match"], line).group(2) == name and pattern["captures"]["2"]["name"] == scope
        assert (token, name) in list(QVRLexer().get_tokens(line))


def test_the_command_writes_valid_json(tmp_path):
    out = tmp_path / "qvr.tmLanguage.json"
    subprocess.run([sys.executable, "-m", "quivers.editor.textmate", "-o", str(out)], check=True)
    assert json.loads(out.read_text()) == grammar()
