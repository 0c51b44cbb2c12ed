"""QVR in IPython and Jupyter: ``%load_ext quivers``, then ``%%qvr`` cells.

A ``%%qvr`` cell is a whole QVR module: it is parsed, checked and
compiled, and its objects and programs are put into the notebook's
namespace by name (``gmm``, ``K``), beside the module itself
(``qvr_module``, or the name given on the magic line: ``%%qvr mixture``).
A cell does not see the declarations of earlier cells, so running it again
redefines what it defined. A cell with an error defines
nothing and shows the error as ``qvr check`` does, the offending line with
a caret under it.

Examples
--------
>>> from IPython.core.interactiveshell import InteractiveShell
>>> shell = InteractiveShell.instance()
>>> load_ipython_extension(shell)  # what `%load_ext quivers` does, once per shell
>>> shell.run_cell_magic("qvr", "m", "object K : FinSet 2")
>>> shell.user_ns["K"], shell.user_ns["m"].objects["K"].size
(FinSet('K', 2), 2)
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["load_ipython_extension", "qvr_cell"]


def qvr_cell(shell: Any, line: str, cell: str) -> None:
    """Run one ``%%qvr`` cell in ``shell``'s namespace."""
    from quivers.cli import format_error
    from quivers.dsl import loads
    from quivers.errors import QuiversError

    target = line.strip() or "qvr_module"
    if not target.isidentifier():
        print(f"%%qvr: `{target}` is not a Python name to keep the module under", file=sys.stderr)
        return
    try:
        module = loads(cell)
    except QuiversError as err:
        print(format_error(err, "<cell>", cell), file=sys.stderr)
        return
    shell.user_ns.update(module.objects)
    shell.user_ns.update(module.programs)
    shell.user_ns[target] = module


def load_ipython_extension(shell: Any) -> None:
    """Register the ``%%qvr`` cell magic (``%load_ext quivers`` calls this)."""
    shell.register_magic_function(lambda line, cell: qvr_cell(shell, line, cell), magic_kind="cell",
                                  magic_name="qvr")
