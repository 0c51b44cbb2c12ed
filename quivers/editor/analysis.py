"""What an editor asks of a QVR document, answered without any editor.

A :class:`Document` is one QVR source. It knows its diagnostics (the
errors ``qvr check`` reports, with the same messages and locations), its
symbols (objects, programs and the steps of each program, found by a
generic walk over the syntax tree, so a construct added to the language is
a symbol without touching this module), the name under a position, where
that name is defined, what to show when hovering it, and what may be
completed there. The language server (:mod:`quivers.editor.lsp`), the REPL
and the notebook magic all read documents through this class.

Positions here are 1-based lines and columns, like :class:`~quivers.errors.Span`.

Laws
----
- A document that ``qvr check`` accepts has no diagnostics; one it rejects
  has exactly the error ``qvr check`` prints, at the same line and column.
- ``definition(p)`` of a position inside a symbol's name is that symbol.

Examples
--------
>>> doc = Document('''object K : FinSet 2
... program p : K -> K
...     sample mu : K <- Normal(0.0, 1.0)
...     return mu
... ''')
>>> doc.diagnostics
[]
>>> [(s.name, s.kind) for s in doc.symbols]
[('K', 'object'), ('p', 'program'), ('mu', 'sample')]
>>> doc.definition(4, 12).span.line  # `mu` in `return mu`
3
>>> print(doc.hover(4, 12))
sample mu : K <- Normal(0.0, 1.0)
(sample site of program `p`, line 3; support: real)
>>> Document("object K : FinSet\\n").diagnostics[0].span.line
1
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from quivers.dsl import ast
from quivers.errors import QuiversError, Span

__all__ = ["Diagnostic", "Symbol", "Completion", "Document", "error_message"]

_WORD = re.compile(r"[A-Za-z_][A-Za-z_0-9]*")

# The names the syntax tree gives each kind of definition; a node class not
# listed here that has a `name` is a symbol of its lower-cased class name.
_KINDS = {
    "ObjectDecl": "object",
    "ObjectDef": "object",
    "EnumObject": "object",
    "ResiduatedObject": "object",
    "SchemaDecl": "schema",
    "BundleDecl": "bundle",
    "ProgramDecl": "program",
    "CompositeDecl": "program",
    "DefineDecl": "morphism",
    "Sample": "sample",
    "Observe": "observe",
    "Marginalize": "marginalize",
    "Markov": "markov",
    "Let": "let",
    "IndexMap": "index",
}
_REFERENCES = {"Export", "ProgramRef", "Name", "SetName", "OptionName", "FamilyCall", "Keyword", "Option"}


def error_message(err: QuiversError) -> str:
    """The message ``qvr check`` prints for ``err``, without its location."""
    return err.message + (f"; {err.hint}" if err.hint else "")


@dataclass(frozen=True)
class Diagnostic:
    """An error in a document: where, and what ``qvr check`` says of it."""

    span: Span
    message: str


@dataclass(frozen=True)
class Symbol:
    """A name a document defines: ``span`` is its whole declaration,
    ``name_span`` the name itself, ``container`` the program it belongs to."""

    name: str
    kind: str
    span: Span
    name_span: Span
    container: str | None
    node: ast.Node = dataclasses.field(compare=False, repr=False)


@dataclass(frozen=True)
class Completion:
    """Something that may be typed at a position: its label, its kind
    (``object``, ``program``, a step kind, ``family``, ``option``,
    ``keyword``) and a short detail."""

    label: str
    kind: str
    detail: str = ""


class Document:
    """One QVR source and what an editor asks of it."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.lines = text.splitlines()
        self.tree: ast.Module | None = None
        self.diagnostics: list[Diagnostic] = []
        self.symbols: list[Symbol] = []
        self._extents: dict[str, tuple[int, int]] = {}
        self._analyse()

    def _analyse(self) -> None:
        from quivers.dsl import compile_module, parse

        try:
            self.tree = parse(self.text)
        except QuiversError as err:
            self.diagnostics = [self._diagnostic(err)]
            return
        self.symbols = list(self._walk(self.tree, None))
        # A declaration's span covers its header; it reaches down to the line
        # before the next top-level declaration.
        starts = [d.span.line for d in self.tree.items if d.span is not None] + [len(self.lines) + 1]
        self._extents = {d.name: (d.span.line, nxt - 1) for d, nxt in zip(self.tree.items, starts[1:])
                         if d.span is not None and isinstance(getattr(d, "name", None), str)
                         and type(d).__name__ not in _REFERENCES}
        try:  # checked and compiled from the tree just parsed, as `loads` would
            compile_module(self.tree, self.text)
        except QuiversError as err:
            self.diagnostics = [self._diagnostic(err)]

    def _diagnostic(self, err: QuiversError) -> Diagnostic:
        span = err.span
        if span is None:  # an error of the whole module: its first line
            span = Span(1, 1, 1, len(self.lines[0]) + 1 if self.lines else 1)
        return Diagnostic(span, error_message(err))

    def _walk(self, node: object, container: str | None):
        """Every definition under ``node``, in source order (a generic walk
        over the dataclass fields of the syntax tree)."""
        if isinstance(node, tuple):
            for item in node:
                yield from self._walk(item, container)
            return
        if not isinstance(node, ast.Node):
            return
        cls = type(node).__name__
        name = getattr(node, "name", None)
        if isinstance(name, str) and node.span is not None and cls not in _REFERENCES:
            kind = _KINDS.get(cls, cls.lower())
            yield Symbol(name, kind, node.span, self._name_span(node.span, name), container, node)
            if kind == "program":
                container = name
        for f in dataclasses.fields(node):
            if f.name != "span":
                yield from self._walk(getattr(node, f.name), container)

    def _name_span(self, span: Span, name: str) -> Span:
        """Where ``name`` is written in the first line of a declaration."""
        line = self.lines[span.line - 1] if span.line <= len(self.lines) else ""
        match = re.compile(rf"\b{re.escape(name)}\b").search(line, max(span.column - 1, 0))
        if match is None:
            return Span(span.line, span.column, span.line, span.column + len(name))
        return Span(span.line, match.start() + 1, span.line, match.end() + 1)

    # -------------------------------------------------------------- queries

    def word_at(self, line: int, column: int) -> tuple[str, Span] | None:
        """The name written at ``(line, column)``, and where."""
        if not 1 <= line <= len(self.lines):
            return None
        for match in _WORD.finditer(self.lines[line - 1]):
            if match.start() + 1 <= column <= match.end():
                return match.group(), Span(line, match.start() + 1, line, match.end() + 1)
        return None

    def program_at(self, line: int) -> str | None:
        """The program whose declaration contains ``line``."""
        for s in self.symbols:
            first, last = self._extents.get(s.name, (0, -1))
            if s.kind == "program" and s.container is None and first <= line <= last:
                return s.name
        return None

    def definition(self, line: int, column: int) -> Symbol | None:
        """The symbol that the name at ``(line, column)`` refers to: a step of
        the program there, or else an object or program of the module."""
        found = self.word_at(line, column)
        if found is None:
            return None
        name, _ = found
        here = self.program_at(line)
        local = [s for s in self.symbols if s.name == name and s.container == here and here is not None]
        top = [s for s in self.symbols if s.name == name and s.container is None]
        return (local or top or [None])[0]

    def hover(self, line: int, column: int) -> str | None:
        """What to show for the name at ``(line, column)``: its declaration and
        what it is (kind, program, line, support), or a family's parameters."""
        symbol = self.definition(line, column)
        if symbol is not None:
            return f"{_declaration(symbol.node)}\n({_describe(symbol)})"
        found = self.word_at(line, column)
        if found is None:
            return None
        from quivers.distributions import FAMILIES

        spec = FAMILIES.get(found[0])
        if spec is None:
            return None
        params = ", ".join(spec.param_names)
        kind = "discrete" if spec.discrete else "continuous"
        return f"{spec.name}({params})\n({kind} distribution family{'; improper' if spec.improper else ''})"

    def completions(self, line: int, column: int) -> list[Completion]:
        """Names in scope at ``(line, column)`` (objects, programs, the steps
        of the program there defined above the line), families, options and
        keywords."""
        from quivers.distributions import FAMILIES
        from quivers.dsl.checker import OPTIONS
        from quivers.dsl.lexer import grammar_keywords

        here = self.program_at(line)
        out = [Completion(s.name, s.kind, _first_line(s.node)) for s in self.symbols
               if s.container is None or (s.container == here and s.span.line < line)]
        out += [Completion(name, "family", f"{name}({', '.join(spec.param_names)})")
                for name, spec in sorted(FAMILIES.items())]
        options = sorted({key for keys in OPTIONS.values() for key in keys})
        out += [Completion(key, "option") for key in options]
        out += [Completion(word, "keyword") for word in grammar_keywords()]
        seen: set[str] = set()
        return [c for c in out if not (c.label in seen or seen.add(c.label))]


def _first_line(node: ast.Node) -> str:
    return _declaration(node).splitlines()[0]


def _declaration(node: ast.Node) -> str:
    """The declaration's first line as QVR writes it."""
    from quivers.dsl import dumps

    try:
        text = dumps(node)
    except (TypeError, AttributeError, KeyError):  # a node the printer has no rule for
        return getattr(node, "name", type(node).__name__)
    return text.strip().splitlines()[0]


def _describe(symbol: Symbol) -> str:
    where = f"line {symbol.span.line}"
    if symbol.kind == "object" or symbol.kind == "program":
        return f"{symbol.kind}, {where}"
    owner = f" of program `{symbol.container}`" if symbol.container else ""
    text = f"{symbol.kind} site{owner}, {where}"
    family = getattr(symbol.node, "family", None) or getattr(symbol.node, "prior", None)
    if isinstance(family, ast.FamilyCall):
        support = _support(family.name)
        if support:
            text += f"; support: {support}"
    return text


def _support(family: str) -> str | None:
    """The support of a family whose support does not depend on its parameters."""
    from quivers.distributions import FAMILIES

    spec = FAMILIES.get(family)
    if spec is None or not spec.static_support:
        return None
    try:
        support = spec.support({})
    except (KeyError, TypeError, IndexError):
        return None
    return _constraint_name(support)


def _constraint_name(c: object) -> str:
    names = {"Real": "real", "GreaterThan": "positive", "GreaterThanEq": "non-negative", "Simplex": "simplex",
             "UnitInterval": "(0, 1)", "Boolean": "{0, 1}", "IntegerGreaterThan": "non-negative integers",
             "PositiveDefinite": "positive definite", "CorrCholesky": "Cholesky factor of a correlation"}
    name = type(c).__name__.lstrip("_")
    return names.get(name, name)
