"""The import graph of ``quivers/programs/``, read with ``ast``, has no
cycle: every import counts (function-level ones too, since they run when
the function does), except those under ``if TYPE_CHECKING:``, which never
run. A cycle is how composition code that imports the class it builds
starts (issue 15)."""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

import quivers.programs

PACKAGE = "quivers.programs"
ROOT = Path(quivers.programs.__file__).parent


def _module(path: Path) -> str:
    return PACKAGE if path.stem == "__init__" else f"{PACKAGE}.{path.stem}"


def _type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
    )


def _imports(tree: ast.AST):
    """Every import statement of ``tree`` outside ``if TYPE_CHECKING:``."""
    for node in ast.iter_child_nodes(tree):
        if _type_checking(node):
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        yield from _imports(node)


def import_graph() -> nx.DiGraph:
    modules = {_module(p) for p in ROOT.glob("*.py")}
    g = nx.DiGraph()
    g.add_nodes_from(modules)
    for path in ROOT.glob("*.py"):
        here = _module(path)
        for node in _imports(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif node.module == PACKAGE:  # a submodule by name, or a name the package exports
                targets = [f"{PACKAGE}.{a.name}" if f"{PACKAGE}.{a.name}" in modules else PACKAGE for a in node.names]
            else:
                targets = [node.module or ""]
            for t in targets:
                if t in modules and t != here:
                    g.add_edge(here, t)
    return g


def test_the_graph_sees_the_imports_it_should():
    g = import_graph()
    assert g.has_edge(f"{PACKAGE}.program", f"{PACKAGE}.compose")
    assert g.has_edge(f"{PACKAGE}.binding", f"{PACKAGE}.data")  # `from quivers.programs.data import ...`
    assert g.has_edge(PACKAGE, f"{PACKAGE}.program")


def test_programs_has_no_import_cycle():
    cycles = list(nx.simple_cycles(import_graph()))
    assert cycles == [], " ; ".join(" -> ".join(c + c[:1]) for c in cycles)
