"""The printer and the parser agree: ``parse(dumps(m)) == m``."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from quivers.dsl import ast
from quivers.dsl.parser import parse
from quivers.dsl.printer import dump_expr, dumps

from .strategies import exprs, modules


@given(modules)
def test_parse_inverts_dumps(module: ast.Module) -> None:
    assert parse(dumps(module)) == module


@given(modules)
def test_canonical_source_is_a_fixed_point(module: ast.Module) -> None:
    text = dumps(module)
    assert dumps(parse(text)) == text


@given(modules, st.data())
def test_comments_and_blank_lines_change_nothing(module: ast.Module, data: st.DataObject) -> None:
    lines = dumps(module).splitlines()
    noisy = []
    for line in lines:
        if data.draw(st.booleans(), label="blank line before"):
            noisy.append("")
        if data.draw(st.booleans(), label="comment line before"):
            indent = line[: len(line) - len(line.lstrip())]
            noisy.append(f"{indent}# a comment")
        suffix = data.draw(st.sampled_from(["", "  ", "  # trailing"]), label="suffix")
        noisy.append(line + suffix)
    assert parse("\n".join(noisy)) == module


@given(modules)
def test_repr_is_python_that_rebuilds_the_tree(module: ast.Module) -> None:
    assert eval(repr(module), vars(ast)) == module


@given(exprs)
def test_expressions_round_trip_inside_a_let(e: ast.Expr) -> None:
    text = f"object K : FinSet 1\nprogram p : K -> K\n    let x = {dump_expr(e)}\n"
    (_, program) = parse(text).items
    assert program.body[0].value == e


def test_precedence_needs_parentheses_only_where_it_binds_differently() -> None:
    x, y, z = ast.Name("x"), ast.Name("y"), ast.Name("z")
    cases = {
        ast.BinOp("-", ast.BinOp("-", x, y), z): "x - y - z",
        ast.BinOp("-", x, ast.BinOp("-", y, z)): "x - (y - z)",
        ast.BinOp("*", ast.BinOp("+", x, y), z): "(x + y) * z",
        ast.BinOp("^", x, ast.BinOp("^", y, z)): "x ^ y ^ z",
        ast.BinOp("^", ast.BinOp("^", x, y), z): "(x ^ y) ^ z",
        ast.Neg(ast.BinOp("^", x, y)): "-x ^ y",
        ast.BinOp("^", ast.Neg(x), y): "(-x) ^ y",
        ast.BinOp("^", x, ast.Neg(y)): "x ^ -y",
        ast.BinOp("*", ast.Neg(x), y): "-x * y",
        ast.Neg(ast.BinOp("*", x, y)): "-(x * y)",
        ast.BinOp("^", ast.Number(-2), x): "(-2) ^ x",
    }
    for tree, text in cases.items():
        assert dump_expr(tree) == text


def test_the_issue_25_pieces_round_trip() -> None:
    # vector/matrix builders, flat priors and an index map on a product domain
    text = (
        "object M : FinSet 3\nobject T : FinSet 2\nobject K : FinSet 2\n\n"
        "program p : M -> M\n"
        "    index cell : M * T -> K\n"
        "    sample s <- HalfFlat()\n"
        "    sample a <- Flat()\n"
        "    let w = vector(K, s, 1 - s)\n"
        "    let c = matrix(K, s ^ 2, a, a, 1.0)\n"
    )
    module = parse(text)
    assert dumps(module) == text
    assert parse(dumps(module)) == module
