"""The QVR language server: ``qvr lsp``, over stdio, built on pygls.

It answers from :class:`~quivers.editor.analysis.Document`: diagnostics on
open, change and save (the errors of ``qvr check``, each with its range and
hint), hover, go-to-definition, completion of names in scope, families,
options and keywords, document formatting (``qvr fmt``'s canonical form)
and document symbols (objects, programs and their steps, nested).

LSP positions are 0-based; :class:`~quivers.errors.Span` is 1-based with
an exclusive end, so a span ``(l, c, el, ec)`` is the range
``(l - 1, c - 1) .. (el - 1, ec - 1)``.

pygls is an optional dependency (``pip install "quivers[editor]"``):
:func:`build_server` says so by name when it is missing.

Examples
--------
>>> r = to_range(Span(3, 5, 3, 9))
>>> (r.start.line, r.start.character), (r.end.line, r.end.character)
((2, 4), (2, 8))
"""

from __future__ import annotations

from typing import Any

from quivers import __version__
from quivers.editor.analysis import Document, Symbol
from quivers.errors import QuiversError, Span, UnsupportedError

__all__ = ["build_server", "main", "to_range"]

_SYMBOL_KINDS = {"object": "Class", "program": "Function", "let": "Variable", "index": "Field"}
_COMPLETION_KINDS = {"object": "Class", "program": "Function", "family": "Constructor", "option": "Property",
                     "keyword": "Keyword"}


def _types() -> Any:
    try:
        from lsprotocol import types
    except ImportError:
        raise UnsupportedError(
            "the QVR language server needs pygls", hint='install it with `pip install "quivers[editor]"`'
        ) from None
    return types


def to_range(span: Span) -> Any:
    """The LSP range of a source span."""
    t = _types()
    return t.Range(t.Position(span.line - 1, span.column - 1), t.Position(span.end_line - 1, span.end_column - 1))


def _symbol(t: Any, s: Symbol, children: list[Any]) -> Any:
    kind = getattr(t.SymbolKind, _SYMBOL_KINDS.get(s.kind, "Variable"))
    return t.DocumentSymbol(name=s.name, kind=kind, range=to_range(s.span), selection_range=to_range(s.name_span),
                            detail=s.kind, children=children or None)


def document_symbols(doc: Document) -> list[Any]:
    """Top-level symbols, each program with its steps as children."""
    t = _types()
    steps: dict[str, list[Any]] = {}
    for s in doc.symbols:
        if s.container is not None:
            steps.setdefault(s.container, []).append(_symbol(t, s, []))
    return [_symbol(t, s, steps.get(s.name, [])) for s in doc.symbols if s.container is None]


def formatting_edits(doc: Document) -> list[Any]:
    """One edit replacing the document by its canonical form, or none when
    the document does not parse or is already canonical."""
    from quivers.dsl import dumps

    t = _types()
    if doc.tree is None:
        return []
    formatted = dumps(doc.tree)
    if formatted == doc.text:
        return []
    end = t.Position(len(doc.lines), 0)
    return [t.TextEdit(t.Range(t.Position(0, 0), end), formatted)]


def build_server() -> Any:
    """A pygls ``LanguageServer`` with every QVR feature registered."""
    t = _types()
    from pygls.lsp.server import LanguageServer

    server = LanguageServer("qvr", __version__)

    analysed: dict[str, tuple[int | None, str, Document]] = {}

    def document(uri: str) -> Document:
        """The analysis of the document's current text, made once per version."""
        text = server.workspace.get_text_document(uri)
        version, source = text.version, text.source
        cached = analysed.get(uri)
        if cached is None or cached[0] != version or cached[1] != source:
            cached = analysed[uri] = (version, source, Document(source))
        return cached[2]

    def publish(uri: str) -> None:
        doc = document(uri)
        diagnostics = [t.Diagnostic(range=to_range(d.span), message=d.message, severity=t.DiagnosticSeverity.Error,
                                    source="qvr") for d in doc.diagnostics]
        server.text_document_publish_diagnostics(t.PublishDiagnosticsParams(uri=uri, diagnostics=diagnostics))

    @server.feature(t.TEXT_DOCUMENT_DID_OPEN)
    def did_open(params: t.DidOpenTextDocumentParams) -> None:
        publish(params.text_document.uri)

    @server.feature(t.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(params: t.DidChangeTextDocumentParams) -> None:
        publish(params.text_document.uri)

    @server.feature(t.TEXT_DOCUMENT_DID_SAVE)
    def did_save(params: t.DidSaveTextDocumentParams) -> None:
        publish(params.text_document.uri)

    @server.feature(t.TEXT_DOCUMENT_HOVER)
    def hover(params: t.HoverParams) -> t.Hover | None:
        doc = document(params.text_document.uri)
        line, col = params.position.line + 1, params.position.character + 1
        text = doc.hover(line, col)
        if text is None:
            return None
        word = doc.word_at(line, col)
        head, _, rest = text.partition("\n")
        value = f"```qvr\n{head}\n```\n{rest}"
        return t.Hover(contents=t.MarkupContent(kind=t.MarkupKind.Markdown, value=value),
                       range=to_range(word[1]) if word else None)

    @server.feature(t.TEXT_DOCUMENT_DEFINITION)
    def definition(params: t.DefinitionParams) -> t.Location | None:
        doc = document(params.text_document.uri)
        found = doc.definition(params.position.line + 1, params.position.character + 1)
        return None if found is None else t.Location(uri=params.text_document.uri, range=to_range(found.name_span))

    @server.feature(t.TEXT_DOCUMENT_COMPLETION, t.CompletionOptions(trigger_characters=["(", "[", " "]))
    def completion(params: t.CompletionParams) -> t.CompletionList:
        doc = document(params.text_document.uri)
        items = [
            t.CompletionItem(label=c.label, detail=c.detail or c.kind,
                             kind=getattr(t.CompletionItemKind, _COMPLETION_KINDS.get(c.kind, "Variable")))
            for c in doc.completions(params.position.line + 1, params.position.character + 1)
        ]
        return t.CompletionList(is_incomplete=False, items=items)

    @server.feature(t.TEXT_DOCUMENT_FORMATTING)
    def formatting(params: t.DocumentFormattingParams) -> list[t.TextEdit]:
        return formatting_edits(document(params.text_document.uri))

    @server.feature(t.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
    def symbols(params: t.DocumentSymbolParams) -> list[t.DocumentSymbol]:
        return document_symbols(document(params.text_document.uri))

    return server


def main() -> int:
    """Serve over stdio until the client exits."""
    try:
        server = build_server()
    except QuiversError as err:
        import sys

        print(f"qvr lsp: {err}", file=sys.stderr)
        return 1
    server.start_io()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
