"""The language server driven over stdio by a pygls client, as an editor
would: diagnostics equal to `qvr check`'s, hover, go-to-definition,
completion, formatting and document symbols."""

from __future__ import annotations

import asyncio
import sys

from lsprotocol import types as t
from pygls.lsp.client import LanguageClient

from quivers.cli import main as qvr

URI = "file:///work/model.qvr"
GOOD = """object Item : FinSet 20
object K : FinSet 2
program gmm : Item -> Item [effects=[Sample, Score, Marginal]]
    sample probs : K <- HalfNormal(1.0)
    sample mu_k : K <- Normal(0.0, 5.0)
    marginalize z : K <- Categorical(probs)
        observe y : Item <- Normal(mu_k[z], 1.0)
    return y
export gmm
"""
BAD = GOOD.replace("Normal(mu_k[z], 1.0)", "Normal(mu_kk[z], 1.0)")
UGLY = "object K : FinSet 2\nprogram p : K -> K\n    sample mu : K <- Normal(0.0,   1.0)\n    return mu\n"


def run_session(script):
    """Start `python -m quivers.editor.lsp`, initialize it, run ``script(client,
    diagnostics)`` and shut the server down; returns what the script returns."""

    async def session():
        client = LanguageClient("quivers-tests", "0")
        published: asyncio.Queue = asyncio.Queue()

        @client.feature(t.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
        def diagnostics(params: t.PublishDiagnosticsParams) -> None:
            published.put_nowait(params)

        await client.start_io(sys.executable, "-m", "quivers.editor.lsp")
        try:
            await client.initialize_async(t.InitializeParams(capabilities=t.ClientCapabilities(), process_id=None))
            client.initialized(t.InitializedParams())
            return await asyncio.wait_for(script(client, published), timeout=60)
        finally:
            await client.shutdown_async(None)
            client.exit(None)
            await client.stop()

    return asyncio.run(session())


def open_doc(client, text: str, version: int = 1) -> None:
    client.text_document_did_open(t.DidOpenTextDocumentParams(t.TextDocumentItem(URI, "qvr", version, text)))


def at(line: int, needle: str) -> dict:
    """The position of the first ``needle`` on 0-based ``line`` of GOOD."""
    character = GOOD.splitlines()[line].index(needle)
    return dict(text_document=t.TextDocumentIdentifier(URI), position=t.Position(line, character))


def test_diagnostics_are_those_of_qvr_check(tmp_path, capsys):
    async def script(client, published):
        open_doc(client, BAD)
        first = await published.get()
        client.text_document_did_change(t.DidChangeTextDocumentParams(
            t.VersionedTextDocumentIdentifier(version=2, uri=URI), [t.TextDocumentContentChangeWholeDocument(GOOD)]))
        second = await published.get()
        return first.diagnostics, second.diagnostics

    bad, good = run_session(script)
    assert list(good) == []
    (d,) = bad
    path = tmp_path / "bad.qvr"
    path.write_text(BAD)
    assert qvr(["check", str(path)]) == 1
    printed = capsys.readouterr().err.splitlines()[0]
    # `qvr check` prints FILE:LINE:COL: message; the editor shows the same message at the same place
    assert printed == f"{path}:{d.range.start.line + 1}:{d.range.start.character + 1}: {d.message}"
    assert "mu_kk" in d.message and "did you mean `mu_k`" in d.message
    assert d.range.start.line == 6 and d.severity == t.DiagnosticSeverity.Error


def test_hover_definition_completion_symbols_and_formatting():
    async def script(client, published):
        open_doc(client, GOOD)
        await published.get()
        hover = await client.text_document_hover_async(t.HoverParams(**at(6, "mu_k[z]")))
        definition = await client.text_document_definition_async(t.DefinitionParams(**at(5, "probs")))
        completion = await client.text_document_completion_async(t.CompletionParams(**at(6, "Normal")))
        symbols = await client.text_document_document_symbol_async(
            t.DocumentSymbolParams(text_document=t.TextDocumentIdentifier(URI)))
        client.text_document_did_change(t.DidChangeTextDocumentParams(
            t.VersionedTextDocumentIdentifier(version=2, uri=URI), [t.TextDocumentContentChangeWholeDocument(UGLY)]))
        await published.get()
        edits = await client.text_document_formatting_async(t.DocumentFormattingParams(
            text_document=t.TextDocumentIdentifier(URI), options=t.FormattingOptions(tab_size=4, insert_spaces=True)))
        return hover, definition, completion, symbols, edits

    hover, definition, completion, symbols, edits = run_session(script)
    assert "sample mu_k : K <- Normal(0.0, 5.0)" in hover.contents.value
    assert "line 5" in hover.contents.value and "support: real" in hover.contents.value
    assert definition.range.start == t.Position(3, 11) and definition.range.end == t.Position(3, 16)
    labels = {item.label for item in completion.items}
    assert {"probs", "mu_k", "z", "K", "Item", "gmm", "Normal", "Dirichlet", "marginalize", "over"} <= labels
    assert "y" not in labels  # defined on this very line
    assert [(s.name, [c.name for c in s.children or []]) for s in symbols] == [
        ("Item", []), ("K", []), ("gmm", ["probs", "mu_k", "z", "y"])]
    (edit,) = edits
    assert "Normal(0.0, 1.0)" in edit.new_text
