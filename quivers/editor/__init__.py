"""QVR in the editor and the notebook: the layer above the DSL that editors,
terminals and notebooks talk to.

- :mod:`~quivers.editor.analysis`: a document's diagnostics, symbols,
  definitions, hovers and completions, with no editor involved;
- :mod:`~quivers.editor.lsp`: the language server (``qvr lsp``, over
  stdio, on pygls);
- :mod:`~quivers.editor.repl`: the interactive session (``qvr repl``);
- :mod:`~quivers.editor.magic`: the IPython magic (``%load_ext quivers``,
  ``%%qvr`` cells);
- :mod:`~quivers.editor.textmate`: the TextMate grammar of QVR, generated
  from the same keyword lists as the pygments lexer.

Every error an editor shows is the one ``qvr check`` prints, from the same
checker.
"""

from __future__ import annotations

from quivers.editor.analysis import Completion, Diagnostic, Document, Symbol

__all__ = ["Document", "Diagnostic", "Symbol", "Completion"]
