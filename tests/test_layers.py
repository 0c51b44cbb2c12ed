"""The layers of quivers import only from the layers below them, read from
the source with ``ast`` (every import counts, function-level ones too,
except under ``if TYPE_CHECKING:``), in the order the README's layout
lists them: categories -> distributions -> nn -> programs -> planning ->
deduction -> inference -> distributed -> emit -> dsl -> editor. A lower
layer that reaches up is how an import cycle starts."""

from __future__ import annotations

import ast
from pathlib import Path

import quivers

ROOT = Path(quivers.__file__).parent
LAYERS = [
    "categories", "distributions", "nn", "programs", "planning", "deduction", "inference", "distributed", "emit",
    "dsl", "editor",
]


def _imports(tree: ast.AST):
    for node in ast.iter_child_nodes(tree):
        test = getattr(node, "test", None)
        if isinstance(node, ast.If) and getattr(test, "id", getattr(test, "attr", None)) == "TYPE_CHECKING":
            continue
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
        yield from _imports(node)


def _reaches_up(layer: str) -> list[str]:
    above = LAYERS[LAYERS.index(layer) + 1:]
    out = []
    for path in sorted((ROOT / layer).rglob("*.py")):
        for module in _imports(ast.parse(path.read_text())):
            parts = module.split(".")
            if parts[0] == "quivers" and len(parts) > 1 and parts[1] in above:
                out.append(f"{path.relative_to(ROOT)} imports {module}")
    return out


def test_each_layer_imports_only_from_the_layers_below():
    bad = [line for layer in LAYERS for line in _reaches_up(layer)]
    assert bad == [], "\n".join(bad)


def test_the_check_sees_an_import_upward(tmp_path):
    tree = ast.parse("def f():\n    from quivers.planning import auto\n")
    assert list(_imports(tree)) == ["quivers.planning"]


def test_every_folder_of_the_package_is_a_layer():
    folders = {p.parent.name for p in ROOT.glob("*/__init__.py")}
    assert folders == set(LAYERS)


def test_the_readme_lists_the_layers_in_their_order():
    readme = (ROOT.parent / "README.md").read_text()
    listed = [line.split("`quivers/")[1].split("/")[0] for line in readme.splitlines() if line.startswith("- `quivers/")]
    assert listed == LAYERS
