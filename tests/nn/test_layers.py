"""quivers/nn sits between the distributions and the programs: it imports
only the layers below it, and none of them imports it."""

from __future__ import annotations

import ast
from pathlib import Path

import quivers

ROOT = Path(quivers.__file__).parent
BELOW = ("quivers.categories", "quivers.distributions", "quivers.errors", "quivers.nn")


def _imported(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
    return {m for m in out if m.startswith("quivers")}


def test_nn_imports_only_the_layers_below_it():
    for path in (ROOT / "nn").glob("*.py"):
        bad = {m for m in _imported(path) if not m.startswith(BELOW)}
        assert not bad, f"{path.name} imports {bad}"


def test_the_layers_below_do_not_import_nn():
    for layer in ("categories", "distributions"):
        for path in (ROOT / layer).glob("*.py"):
            assert not any(m.startswith("quivers.nn") for m in _imported(path)), path.name
