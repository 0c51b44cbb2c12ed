"""Formatting QVR source: the canonical form of :func:`~quivers.dsl.dumps`,
with the comments kept.

The AST holds no comments, so :func:`format_source` puts them back by line:
a comment on a line of its own goes before the next statement, at that
statement's indentation (or at the end of the file when none follows); a
comment after code stays at the end of the statement it follows. A
``deduction`` block is printed whole, and the comments inside it go before
it. A ``#`` starts a comment except inside a lexicon word's quotes and in a
``#[...]`` annotation of a rule or lexicon entry.

Laws
----
- ``parse(format_source(t)) == parse(t)``: formatting changes no meaning.
- ``format_source(format_source(t)) == format_source(t)``.
- Without comments, ``format_source(t) == dumps(parse(t))``.
- Every comment of ``t`` appears, in order, in ``format_source(t)``.

Examples
--------
>>> print(format_source('''
... # two clusters
... object K:FinSet 2
... program p:K->K
...   sample mu:K<-Normal(0.0,1.0)   # the means
...   return mu
... '''), end="")
# two clusters
object K : FinSet 2
<BLANKLINE>
program p : K -> K
    sample mu : K <- Normal(0.0, 1.0)  # the means
    return mu
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass

from quivers.dsl import ast
from quivers.dsl.parser import parse
from quivers.dsl.printer import INDENT, dumps

__all__ = ["format_source", "comments"]


@dataclass(frozen=True)
class Comment:
    """A comment: its 1-based line, its text from ``#``, and whether it
    stands alone (nothing before it on its line, outside any bracket)."""

    line: int
    text: str
    alone: bool


def comments(text: str) -> list[Comment]:
    """The comments of QVR source, in order.

    Examples
    --------
    >>> comments("object K : FinSet 2  # sizes\\n# end\\n")
    [Comment(line=1, text='# sizes', alone=False), Comment(line=2, text='# end', alone=True)]
    """
    out, depth = [], 0
    for i, line in enumerate(text.splitlines(), start=1):
        at = _comment_start(line)
        code = line if at < 0 else line[:at]
        if at >= 0:
            out.append(Comment(i, line[at:].rstrip(), not code.strip() and depth == 0))
        depth = max(depth + code.count("(") + code.count("[") - code.count(")") - code.count("]"), 0)
    return out


def _comment_start(line: str) -> int:
    """Where the comment of a line starts, or -1. On a deduction rule or
    lexicon line, a `#` inside a string or starting a `#[...]` annotation
    is not a comment."""
    code = line.lstrip()
    if not (code.startswith('"') or code.startswith("rule ")):
        return line.find("#")
    i, quoted = 0, False
    while i < len(line):
        ch = line[i]
        if ch == '"':
            quoted = not quoted
        elif ch == "#" and not quoted:
            close = line.find("]", i)
            if line.startswith("#[", i) and close > 0:
                i = close
            else:
                return i
        i += 1
    return -1


@dataclass
class _Statement:
    head: str
    depth: int
    line: int
    end_line: int
    is_program: bool = False
    # a block printed whole (a deduction): comments inside it go before it
    opaque: bool = False


def _statements(module: ast.Module) -> Iterator[_Statement]:
    def steps(body, depth):
        for i, s in enumerate(body):
            if isinstance(s, (ast.Marginalize, ast.Markov)):
                head = dumps(dataclasses.replace(s, body=()))
                end = s.body[0].span.line - 1 if s.body and s.body[0].span else s.span.line
                yield _Statement(head, depth, s.span.line, max(end, s.span.line))
                yield from steps(s.body, depth + 1)
            else:
                yield _Statement(dumps(s), depth, s.span.line, s.span.end_line)

    for d in module.items:
        if isinstance(d, ast.ProgramDecl):
            head = dumps(dataclasses.replace(d, body=()))
            end = d.body[0].span.line - 1 if d.body and d.body[0].span else d.span.line
            yield _Statement(head, 0, d.span.line, max(end, d.span.line), is_program=True)
            yield from steps(d.body, 1)
        elif isinstance(d, ast.ComputationDecl):
            yield _Statement(dumps(dataclasses.replace(d, body=())), 0, d.span.line, d.span.line, is_program=True)
            yield from steps(d.body, 1)
        elif isinstance(d, ast.DeductionDecl):
            yield _Statement(dumps(d), 0, d.span.line, d.span.end_line, opaque=True)
        else:  # the algebra is set apart like a program
            yield _Statement(dumps(d), 0, d.span.line, d.span.end_line, is_program=isinstance(d, ast.CompositionDecl))


def format_source(text: str) -> str:
    """``text`` in canonical form, comments kept; raises ``QVRSyntaxError``
    on text that does not parse."""
    module = parse(text)
    statements = list(_statements(module))
    lines = text.splitlines()
    for s, following in zip(statements, statements[1:] + [None]):
        if s.opaque:  # it runs to its last line of code before the next statement
            end = following.line - 1 if following is not None else len(lines)
            while end > s.line and (not lines[end - 1].strip() or lines[end - 1].lstrip().startswith("#")):
                end -= 1
            s.end_line = end
    pending = comments(text)
    before: dict[int, list[str]] = {i: [] for i in range(len(statements))}
    after: dict[int, list[str]] = {i: [] for i in range(len(statements))}
    tail: list[str] = []
    for c in pending:
        owner = next((i for i, s in enumerate(statements) if s.line <= c.line <= s.end_line), None)
        if owner is not None and statements[owner].opaque:
            before[owner].append(c.text)
            continue
        if owner is not None and not c.alone:
            after[owner].append(c.text)
            continue
        following = next((i for i, s in enumerate(statements) if s.line > c.line or s.line == c.line), None)
        if c.alone and following is not None:
            before[following].append(c.text)
        elif c.alone:
            tail.append(c.text)
        else:
            last = max((i for i, s in enumerate(statements) if s.line <= c.line), default=None)
            (after[last] if last is not None else tail).append(c.text)
    out: list[str] = []
    after_program = False
    for i, s in enumerate(statements):
        if s.depth == 0 and out and (s.is_program or after_program):
            out.append("")
        if s.depth == 0:
            after_program = s.is_program
        pad = INDENT * s.depth
        out.extend(pad + c for c in before[i])
        line = pad + s.head
        if after[i]:
            line += "  " + " ".join(after[i])
        out.append(line)
    if tail:
        if out and after_program:
            out.append("")
        out.extend(tail)
    return "".join(line + "\n" for line in out)
