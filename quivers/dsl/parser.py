"""Reading QVR text into its AST.

The grammar is ``qvr.lark``; the parser is an LALR parser built once and
cached, with an :class:`~lark.indenter.Indenter` postlexer that turns
indentation into ``_INDENT``/``_DEDENT`` tokens. Every lark error is
translated into a :class:`~quivers.errors.QVRSyntaxError` that gives the
line and column, shows the line with a caret, and names in words what
would have been accepted there.

Laws
----
- ``parse`` either returns a :class:`~quivers.dsl.ast.Module` or raises a
  ``QVRSyntaxError``; no lark exception escapes.
- Comments, blank lines and a missing final newline change nothing.

Examples
--------
>>> m = parse('''
... object K : FinSet 2
... program p : K -> K
...     sample mu : K <- Normal(0.0, 1.0)  # a prior
...     return mu
... ''')
>>> [type(d).__name__ for d in m.items]
['ObjectDecl', 'ProgramDecl']
>>> parse("object K : FinSet 2\\nprogram p : K -> K\\n    sample probs K <- HalfNormal(1.0)\\n")
Traceback (most recent call last):
...
quivers.errors.QVRSyntaxError: line 3, column 18: unexpected name `K`; expected `:` or `<-` after `sample probs`
        sample probs K <- HalfNormal(1.0)
                     ^
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
from importlib import resources

from lark import Lark, Token, Tree
from lark.exceptions import (
    UnexpectedCharacters,
    UnexpectedEOF,
    UnexpectedInput,
    UnexpectedToken,
    VisitError,
)
from lark.indenter import Indenter
from lark.lexer import PatternStr

from quivers.dsl.ast import Module
from quivers.dsl.transformer import QVRTransformer
from quivers.errors import QuiversError, QuiversTypeError, QVRSyntaxError, Span, did_you_mean

__all__ = ["parse", "grammar_text"]

_STEP_KEYWORDS = ("sample", "observe", "marginalize", "let", "factor", "score", "return", "index", "data")
_DECL_KEYWORDS = ("object", "program", "morphism", "define", "deduction", "schema", "bundle", "export", "composition",
                  "algebra")
# declarations read but not listed in "expected a declaration (...)": the
# peer's older spellings, and the rarer `contraction`
_LEGACY_KEYWORDS = ("type", "embed", "kernel", "continuous", "latent", "contraction")
_OPERATORS = frozenset({"+", "-", "*", "/", "^", "[", "."})  # `[` and `.` (a method) are postfix
_NAMED = {
    "NAME": "a name",
    "NUMBER": "a number",
    "_NL": "end of line",
    "_INDENT": "an indented body",
    "_DEDENT": "the end of the block",
    "$END": "end of input",
}


class _BadIndent(Exception):
    """A dedent to a column that no enclosing block starts at."""

    def __init__(self, line: int, indent: int, levels: list[int]) -> None:
        super().__init__(line, indent, levels)
        self.line, self.indent, self.levels = line, indent, levels


class QVRIndenter(Indenter):
    """Indentation to ``_INDENT``/``_DEDENT``, ignoring newlines in brackets.

    It also remembers the brackets still open, so that an error at the end
    of input can name the bracket that was never closed.
    """

    NL_type = "_NL"
    OPEN_PAREN_types = ["LPAR", "LSQB"]
    CLOSE_PAREN_types = ["RPAR", "RSQB"]
    INDENT_type = "_INDENT"
    DEDENT_type = "_DEDENT"
    tab_len = 8

    def __init__(self) -> None:
        super().__init__()
        self.open_brackets: list[Token] = []

    def handle_NL(self, token: Token) -> Iterator[Token]:
        if self.paren_level > 0:
            return
        yield token
        indent_str = token.rsplit("\n", 1)[1]
        indent = indent_str.count(" ") + indent_str.count("\t") * self.tab_len
        if indent > self.indent_level[-1]:
            self.indent_level.append(indent)
            yield Token.new_borrow_pos(self.INDENT_type, indent_str, token)
            return
        if indent not in self.indent_level:
            raise _BadIndent(token.end_line, indent, list(self.indent_level))
        while indent < self.indent_level[-1]:
            self.indent_level.pop()
            yield Token.new_borrow_pos(self.DEDENT_type, indent_str, token)

    def _process(self, stream: Iterable[Token]) -> Iterator[Token]:
        self.open_brackets = []
        token = None
        # A `{` on a `marginalize` line opens a block (its lines keep their
        # newlines); any other `{` is a bracket. A line ending in `in`
        # (`factor v : V in`) goes on on the next line.
        head: Token | None = None
        blocks: list[bool] = []
        previous: Token | None = None
        for token in stream:
            if token.type == self.NL_type:
                if previous is not None and previous.type == "IN" and self.paren_level == 0 and not (
                        head is not None and head.type == "MARGINALIZE"):
                    continue
                yield from self.handle_NL(token)
                if self.paren_level == 0:
                    head = None
                previous = token
                continue
            if head is None:
                head = token
            previous = token
            yield token
            if token.type == "LBRACE":
                blocks.append(head is not None and head.type == "MARGINALIZE" and self.paren_level == 0)
                if blocks[-1]:
                    continue
            elif token.type == "RBRACE" and blocks:
                if blocks.pop():
                    continue
            if token.type in self.OPEN_PAREN_types + ["LBRACE"]:
                self.paren_level += 1
                self.open_brackets.append(token)
            elif token.type in self.CLOSE_PAREN_types + ["RBRACE"] and self.paren_level > 0:
                self.paren_level -= 1
                self.open_brackets.pop()
        while len(self.indent_level) > 1:
            self.indent_level.pop()
            yield Token.new_borrow_pos(self.DEDENT_type, "", token)


def grammar_text() -> str:
    """The text of ``qvr.lark``.

    Examples
    --------
    >>> "program_decl" in grammar_text()
    True
    """
    return resources.files("quivers.dsl").joinpath("qvr.lark").read_text(encoding="utf-8")


@functools.cache
def _parser() -> Lark:
    return Lark(
        grammar_text(),
        parser="lalr",
        postlex=QVRIndenter(),
        propagate_positions=True,
        maybe_placeholders=True,
    )


def parse(text: str) -> Module:
    """Parse QVR source into a :class:`~quivers.dsl.ast.Module`.

    Parameters
    ----------
    text
        QVR source.

    Returns
    -------
    Module
        The syntax tree; nothing is resolved or checked yet.

    Raises
    ------
    QVRSyntaxError
        When ``text`` is not QVR; the message gives the line, the column,
        a caret, and what was expected there.

    Examples
    --------
    >>> parse("object K : FinSet 3").items
    (ObjectDecl(name='K', size=3),)
    """
    if not isinstance(text, str):
        raise QuiversTypeError(f"QVR source must be a str, got {type(text).__name__}")
    parser = _parser()
    padded = text if text.endswith("\n") else text + "\n"
    try:
        tree = parser.parse(padded)
    except _BadIndent as err:
        raise _bad_indent(err, text) from None
    except UnexpectedInput as err:
        raise _syntax_error(err, text, parser) from None
    _check_depth(tree, text)
    try:
        return QVRTransformer(text).transform(tree)
    except VisitError as err:
        if isinstance(err.orig_exc, QuiversError):
            raise err.orig_exc from None
        raise


# ---------------------------------------------------------------- errors


MAX_DEPTH = 100
"""How deeply the parse tree may nest (operators, calls, subscripts, blocks).
The transformer, checker, compiler and sympy all recurse over the tree, so
a deeper one would exhaust Python's stack; no program a person writes
comes near it."""


def _check_depth(tree: Tree, text: str) -> None:
    """Raise a located QVRSyntaxError at the first node nested deeper than
    :data:`MAX_DEPTH`. Iterative, so that it cannot itself overflow."""
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            meta = node.meta
            line, column = getattr(meta, "line", 1), getattr(meta, "column", 1)
            raise QVRSyntaxError(
                f"this is nested more than {MAX_DEPTH} levels deep (operators, calls, subscripts, blocks)",
                span=Span(line, column, line, column + 1),
                source=text,
                hint="break it up with `let` steps",
            )
        stack.extend((c, depth + 1) for c in node.children if isinstance(c, Tree))


def _bad_indent(err: _BadIndent, text: str) -> QVRSyntaxError:
    levels = [str(n) for n in err.levels]
    choices = levels[0] if len(levels) == 1 else ", ".join(levels[:-1]) + " or " + levels[-1]
    lines = text.splitlines()
    width = len(lines[err.line - 1]) - len(lines[err.line - 1].lstrip()) if err.line <= len(lines) else 0
    return QVRSyntaxError(
        f"this line is indented by {err.indent} spaces, which matches no enclosing block",
        span=Span(err.line, width + 1, err.line, width + 2),
        source=text,
        hint=f"indent it by {choices} spaces",
    )


def _describe(terminal: str, parser: Lark) -> str:
    if terminal in _NAMED:
        return _NAMED[terminal]
    pattern = parser.get_terminal(terminal).pattern
    if isinstance(pattern, PatternStr):
        return f"`{pattern.value}`"
    return terminal.lower()


def _literal(terminal: str, parser: Lark) -> str | None:
    if terminal in _NAMED:
        return None
    pattern = parser.get_terminal(terminal).pattern
    return pattern.value if isinstance(pattern, PatternStr) else None


def _expected_words(expected: Iterable[str], parser: Lark) -> str:
    """Terminal names as the words an author would use, grouped."""
    literals = {t: _literal(t, parser) for t in expected}
    words: list[str] = []
    values = set(literals.values())
    rest = set(expected)
    if set(_STEP_KEYWORDS) <= values:
        # a step may also start with a name: `theta <- Normal(0.0, 1.0)` is a sample
        bind = ", `name <- Family(...)`" if "NAME" in rest else ""
        words.append("a step (" + ", ".join(f"`{k}`" for k in _STEP_KEYWORDS) + bind + ")")
        rest = {t for t in rest if literals[t] not in _STEP_KEYWORDS and t != "NAME"}
    if set(_DECL_KEYWORDS) <= values:
        words.append(
            "a declaration (" + ", ".join(f"`{k}`" for k in _DECL_KEYWORDS[:-1]) + f" or `{_DECL_KEYWORDS[-1]}`)"
        )
        # a top-level `let` is a `define`
        rest = {
            t for t in rest
            if literals[t] not in (*_DECL_KEYWORDS, *_LEGACY_KEYWORDS, "let") and t not in {"_NL", "$END"}
        }
    if {"NAME", "NUMBER"} <= rest and values >= {"(", "-"}:
        words.append("an expression")
        rest = {t for t in rest if t not in {"NAME", "NUMBER"} and literals[t] not in {"(", "-", "["}}
    operators = {t for t in rest if literals[t] in _OPERATORS or t == "COMPARE"}
    if len(operators) >= 3:
        rest -= operators
    described = sorted(_describe(t, parser) for t in rest)
    words.extend(described)
    if len(operators) >= 3:
        words.append("an operator")
    if not words:
        return "nothing more"
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + " or " + words[-1]


def _got(token: Token, parser: Lark) -> str:
    if token.type == "NAME":
        return f"name `{token}`"
    if token.type == "NUMBER":
        return f"number `{token}`"
    if token.type == "_INDENT":
        return "indentation"
    return _describe(token.type, parser)


def _context(text: str, line: int, column: int, previous: bool) -> str:
    """What precedes ``line:column`` on its line, for "after `...`"; with
    ``previous``, the last statement line when nothing precedes it."""
    lines = text.splitlines()
    if not 1 <= line <= len(lines):
        return ""
    before = lines[line - 1][: column - 1].split("#", 1)[0].strip()
    if not before and previous:
        for previous in reversed(lines[: line - 1]):
            previous = previous.split("#", 1)[0].strip()
            if previous:
                before = previous
                break
    if len(before) > 48:
        before = "..." + before[-45:]
    return before


def _syntax_error(err: UnexpectedInput, text: str, parser: Lark) -> QVRSyntaxError:
    if isinstance(err, UnexpectedCharacters):
        char = text[err.pos_in_stream] if err.pos_in_stream < len(text) else ""
        return QVRSyntaxError(
            f"unexpected character `{char}`",
            span=Span(err.line, err.column, err.line, err.column + 1),
            source=text,
            hint=_char_hint(char),
        )
    if isinstance(err, UnexpectedEOF):
        line = max(len(text.splitlines()), 1)
        return QVRSyntaxError("unexpected end of input", span=Span(line, 1, line, 1), source=text)
    assert isinstance(err, UnexpectedToken)
    token = err.token
    try:
        expected = err.interactive_parser.accepts()
    except Exception:  # accepts() replays the parser; fall back to lark's table
        expected = err.expected
    if token.type in {"_INDENT", "_DEDENT"} or (token.type == "$END" and token.end_line):
        line, column = token.end_line or 1, token.end_column or 1
    else:
        line, column = token.line or 1, token.column or 1
    if token.type == "_NL" or token.type == "$END":
        line, column = token.line or line, token.column or column
    unclosed = _unclosed_bracket(parser)
    starts_statement = str(token) in _STEP_KEYWORDS + _DECL_KEYWORDS and token.type != "NAME"
    if unclosed is not None and (token.type in {"$END", "_DEDENT"} or starts_statement):
        # Inside brackets newlines are ignored, so the next statement reads
        # as a continuation; the real mistake is the bracket left open.
        return QVRSyntaxError(
            f"`{unclosed}` is never closed",
            span=Span(unclosed.line, unclosed.column, unclosed.line, unclosed.column + 1),
            source=text,
        )
    if str(token) == "~":  # `~` only follows a morphism's signature; elsewhere it is Stan's draw
        return QVRSyntaxError(
            "unexpected character `~`", span=Span(line, column, line, column + 1), source=text, hint=_char_hint("~")
        )
    misspelt = _misspelt_step(text, line, column, expected, parser)
    if misspelt is not None:
        return misspelt
    message = f"unexpected {_got(token, parser)}; expected {_expected_words(expected, parser)}"
    context = _context(text, line, column, previous="_INDENT" in expected or token.type == "_INDENT")
    if context:
        message += f" after `{context}`"
    width = len(str(token)) if token.type not in {"_NL", "_INDENT", "_DEDENT", "$END"} else 1
    hint = None
    if token.type == "STAR" and text[token.start_pos - 1 : token.start_pos] == "*":
        hint = "write powers with `^`"
    elif str(token) in _STEP_KEYWORDS and _DECL_KEYWORDS[0] in {_literal(t, parser) for t in expected}:
        hint = "steps belong in the indented body of a `program`"
    elif token.type == "NAME":
        keywords = [w for w in (_literal(t, parser) for t in expected) if w and w.isidentifier()]
        close = did_you_mean(str(token), keywords)
        if close is not None:
            hint = f"did you mean `{close}`?"
    return QVRSyntaxError(
        message, span=Span(line, column, line, column + max(width, 1)), source=text, hint=hint
    )


def _misspelt_step(text: str, line: int, column: int, expected: Iterable[str], parser: Lark) -> QVRSyntaxError | None:
    """A step keyword misspelt (`marginalise z : K <- ...`) reads as the name
    of a bind (`z <- ...`) until the next token; report the misspelling."""
    if {_literal(t, parser) for t in expected} != {":", "<-"}:
        return None
    lines = text.splitlines()
    before = lines[line - 1][: column - 1] if 1 <= line <= len(lines) else ""
    word = before.strip()
    close = did_you_mean(word, _STEP_KEYWORDS) if word.isidentifier() else None
    if close is None:
        return None
    start = len(before) - len(before.lstrip()) + 1
    return QVRSyntaxError(
        f"unexpected name `{word}`; expected a step (" + ", ".join(f"`{k}`" for k in _STEP_KEYWORDS)
        + ", `name <- Family(...)`)",
        span=Span(line, start, line, start + len(word)), source=text, hint=f"did you mean `{close}`?",
    )


def _unclosed_bracket(parser: Lark) -> Token | None:
    postlex = parser.options.postlex
    brackets = getattr(postlex, "open_brackets", [])
    return brackets[-1] if brackets else None


def _char_hint(char: str) -> str | None:
    if char == "~":
        return "draws are written `sample x : I <- Family(...)`"
    if char in "\"'":
        return "QVR has no strings"
    if char == "{" or char == "}":
        return "blocks are indented, not braced"
    return None
