"""A Pygments lexer for QVR, used to highlight the documentation.

The keywords are read from the grammar (``qvr.lark``): every alphabetic
string literal of a rule is a keyword, so a keyword added to the grammar is
highlighted without touching this module. Declared names get their own
token types (``object K`` a class, ``program gmm`` a function, the name a
step defines a variable); a capitalized name before ``(`` is a distribution
family, a lower-case one a function; ``key=`` in options and keyword
arguments is an attribute; the four effects are constants.

Laws
----
- The tokens concatenate back to the input, character for character.
- Every file in ``examples/`` and every ``qvr`` block of the documentation
  lexes without an ``Error`` token.

Examples
--------
>>> from pygments.token import Keyword, Name
>>> tokens = list(QVRLexer().get_tokens("sample mu : K <- Normal(0.0, 1.0)  # prior\\n"))
>>> tokens[0], tokens[2]
((Token.Keyword, 'sample'), (Token.Name.Variable, 'mu'))
>>> [t for t in tokens if t[0] is Name.Builtin]
[(Token.Name.Builtin, 'Normal')]
"""

from __future__ import annotations

import re
from pathlib import Path

from pygments.lexer import RegexLexer, bygroups, words
from pygments.token import (
    Comment,
    Error,
    Keyword,
    Name,
    Number,
    Operator,
    Punctuation,
    String,
    Whitespace,
)

__all__ = ["QVRLexer", "grammar_keywords", "EFFECT_NAMES"]

EFFECT_NAMES = ("Pure", "Sample", "Score", "Marginal")
"""The effects of :class:`quivers.programs.Effect`, highlighted as constants."""

_BINDS = ("sample", "observe", "marginalize", "let", "index", "data")
_NAME = r"[A-Za-z_][A-Za-z_0-9]*"


def grammar_keywords() -> tuple[str, ...]:
    """The alphabetic string literals of ``qvr.lark``, sorted.

    Examples
    --------
    >>> "marginalize" in grammar_keywords() and "FinSet" in grammar_keywords()
    True
    """
    text = Path(__file__).with_name("qvr.lark").read_text(encoding="utf-8")
    rules = "\n".join(line.split("//", 1)[0] for line in text.splitlines())
    return tuple(sorted(set(re.findall(r'"([A-Za-z_][A-Za-z_0-9]*)"', rules))))


def _keywords() -> tuple[str, ...]:
    return tuple(k for k in grammar_keywords() if k != "FinSet")


class QVRLexer(RegexLexer):
    """Lexer for QVR, the modeling language of quivers (``*.qvr``)."""

    name = "QVR"
    aliases = ["qvr", "qvr-error"]
    filenames = ["*.qvr"]
    mimetypes = ["text/x-qvr"]

    tokens = {
        "root": [
            (r"[ \t\f]+", Whitespace),
            (r"\r?\n", Whitespace),
            (r"#\[[^\]\n]*\]", Name.Decorator),
            (r"#[^\n]*", Comment.Single),
            (r'"[^"\n]*"', String),
            (rf"(object)(\s+)({_NAME})", bygroups(Keyword.Declaration, Whitespace, Name.Class)),
            (rf"(program|export|deduction|morphism|define)(\s+)({_NAME})",
             bygroups(Keyword.Declaration, Whitespace, Name.Function)),
            (rf"^(composition|algebra)(\s+)({_NAME})", bygroups(Keyword.Declaration, Whitespace, Name.Constant)),
            (rf"({'|'.join(_BINDS)})(\s+)({_NAME})", bygroups(Keyword, Whitespace, Name.Variable)),
            (r"FinSet\b", Keyword.Type),
            (words(_keywords(), suffix=r"\b"), Keyword),
            (words(EFFECT_NAMES, suffix=r"\b(?!\s*\()"), Name.Constant),
            (rf"{_NAME}(?=\s*=(?!=))", Name.Attribute),
            (rf"[A-Z][A-Za-z_0-9]*(?=\s*\()", Name.Builtin),
            (rf"[a-z_][A-Za-z_0-9]*(?=\s*\()", Name.Function),
            (r"([0-9]+\.[0-9]*|\.[0-9]+|[0-9]+)[eE][+-]?[0-9]+", Number.Float),
            (r"[0-9]+\.[0-9]*|\.[0-9]+", Number.Float),
            (r"[0-9]+", Number.Integer),
            (r"<=|>=|==|!=|<-|->|>>|\|-|<|>", Operator),
            (r"[+\-*/^=@\\~.!]", Operator),  # `!` opens an effect row, `!{Score}`
            (r"[:,()\[\]{}]", Punctuation),
            (_NAME, Name),
            (r".", Error),
        ],
    }

    def analyse_text(text: str) -> float:  # noqa: N805 (pygments calls it unbound)
        if re.search(r"^object\s+\w+\s*:\s*FinSet", text, re.M) and re.search(r"^program\s", text, re.M):
            return 0.9
        return 0.0
