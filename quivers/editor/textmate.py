"""The TextMate grammar of QVR, for editors that highlight with TextMate
grammars (VS Code, Sublime Text, and GitHub's linguist), generated from
the same lists as the pygments lexer (:mod:`quivers.dsl.lexer`): the
keywords of ``qvr.lark`` and the effect names. A keyword added to the
grammar is highlighted by both without touching either.

Write it with ``python -m quivers.editor.textmate -o qvr.tmLanguage.json``.

Laws
----
- Every keyword of ``grammar_keywords()`` is a keyword here and in the
  pygments lexer, and nothing else is.

Examples
--------
>>> g = grammar()
>>> g["scopeName"], g["fileTypes"]
('source.qvr', ['qvr'])
>>> import re
>>> bool(re.fullmatch(g["repository"]["keyword"]["match"], "marginalize"))
True
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from quivers.dsl.lexer import EFFECT_NAMES, grammar_keywords

__all__ = ["grammar", "keyword_pattern", "main"]

_NAME = r"[A-Za-z_][A-Za-z_0-9]*"
_TYPES = ("FinSet",)
_DECLARATIONS = {"object": "entity.name.type.qvr", "program": "entity.name.function.qvr",
                 "export": "entity.name.function.qvr"}
_BINDS = ("sample", "observe", "marginalize", "let", "index")


def keyword_pattern() -> str:
    """The regular expression of QVR's keywords (types excluded)."""
    words = [k for k in grammar_keywords() if k not in _TYPES]
    return rf"\b({'|'.join(words)})\b"


def grammar() -> dict:
    """The grammar as a JSON-ready dict."""
    declarations = [
        {"match": rf"\b({word})\s+({_NAME})",
         "captures": {"1": {"name": "keyword.declaration.qvr"}, "2": {"name": scope}}}
        for word, scope in _DECLARATIONS.items() if word in grammar_keywords()
    ]
    binds = [w for w in _BINDS if w in grammar_keywords()]
    return {
        "$schema": "https://raw.githubusercontent.com/martinring/tmlanguage/master/tmlanguage.json",
        "name": "QVR",
        "scopeName": "source.qvr",
        "fileTypes": ["qvr"],
        "patterns": [{"include": f"#{name}"} for name in
                     ("comment", "declaration", "binding", "type", "keyword", "effect", "attribute", "family",
                      "function", "number", "operator")],
        "repository": {
            "comment": {"match": "#.*$", "name": "comment.line.number-sign.qvr"},
            "declaration": {"patterns": declarations},
            "binding": {"match": rf"\b({'|'.join(binds)})\s+({_NAME})",
                        "captures": {"1": {"name": "keyword.control.qvr"}, "2": {"name": "variable.other.qvr"}}},
            "type": {"match": rf"\b({'|'.join(_TYPES)})\b", "name": "storage.type.qvr"},
            "keyword": {"match": keyword_pattern(), "name": "keyword.control.qvr"},
            "effect": {"match": rf"\b({'|'.join(EFFECT_NAMES)})\b(?!\s*\()", "name": "constant.language.qvr"},
            "attribute": {"match": rf"{_NAME}(?=\s*=[^=])", "name": "variable.parameter.qvr"},
            "family": {"match": r"\b[A-Z][A-Za-z_0-9]*(?=\s*\()", "name": "support.class.qvr"},
            "function": {"match": r"\b[a-z_][A-Za-z_0-9]*(?=\s*\()", "name": "support.function.qvr"},
            "number": {"match": r"\b([0-9]+\.[0-9]*|\.[0-9]+|[0-9]+)([eE][+-]?[0-9]+)?\b",
                       "name": "constant.numeric.qvr"},
            "operator": {"match": r"<-|->|>>|[+\-*/^=@]", "name": "keyword.operator.qvr"},
        },
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Write the TextMate grammar of QVR.")
    p.add_argument("-o", "--output", type=Path, help="where to write it (default: stdout)")
    args = p.parse_args(argv)
    text = json.dumps(grammar(), indent=2) + "\n"
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
