"""The parser reads every construct of QVR into the expected tree."""

from __future__ import annotations

from pathlib import Path

import pytest

from quivers.dsl import ast
from quivers.dsl.ast import (
    BinOp, Call, Export, Factor, FamilyCall, IndexMap, Keyword, Let, Marginalize, Module,
    Name, Neg, Number, ObjectDecl, ObjectDef, Observe, Option, OptionList, OptionName,
    OptionNumber, ProgramDecl, Return, Sample, SetName, SetProduct, SetSum, Subscript,
)
from quivers.dsl.parser import parse
from quivers.errors import Span

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

K, G, ITEM = SetName("K"), SetName("G"), SetName("Item")
EFFECTS = Option(
    "effects", OptionList((OptionName("Sample"), OptionName("Score"), OptionName("Marginal")))
)


def _normal_z() -> FamilyCall:
    return FamilyCall(
        "Normal",
        (Subscript(Name("mu_k"), (Name("z"),)), Subscript(Name("sd_k"), (Name("z"),))),
    )


def _body(program: str, *lines: str) -> tuple[ast.Step, ...]:
    text = "object K : FinSet 2\nprogram p : K -> K\n" + "".join(f"    {ln}\n" for ln in lines)
    (_, decl) = parse(text).items
    assert isinstance(decl, ProgramDecl)
    return decl.body


def test_gmm_seed_parses_to_the_expected_tree() -> None:
    module = parse((EXAMPLES / "gmm.qvr").read_text())
    expected = Module((
        ObjectDecl("Item", 500),
        ObjectDecl("K", 2),
        ProgramDecl("gmm", ITEM, ITEM, (EFFECTS,), (
            Sample("probs", K, FamilyCall("HalfNormal", (Number(1.0),))),
            Sample("mu_k", K, FamilyCall("Normal", (Number(0.0), Number(5.0)))),
            Sample("sd_k", K, FamilyCall("HalfNormal", (Number(1.0),))),
            Marginalize("z", K, FamilyCall("Categorical", (Name("probs"),)), (), (
                Observe("y", ITEM, _normal_z()),
            )),
            Return(Name("y")),
        )),
        Export("gmm"),
    ))
    assert module == expected


def test_grouped_mixture_seed_parses_with_over_and_via() -> None:
    module = parse((EXAMPLES / "grouped_mixture.qvr").read_text())
    objects = [d for d in module.items if isinstance(d, ObjectDecl)]
    assert [(o.name, o.size) for o in objects] == [("Item", 1000), ("G", 20), ("K", 3)]
    (program,) = [d for d in module.items if isinstance(d, ProgramDecl)]
    assert program.body[0] == Sample("group", ITEM, FamilyCall("HalfNormal", (Number(1.0),)))
    marg = program.body[4]
    assert marg == Marginalize(
        "z", K, FamilyCall("Categorical", (Name("probs"),)), (Option("over", OptionName("G")),),
        (Observe("y", ITEM, _normal_z(), (Option("via", OptionName("group")),)),),
    )
    assert module.items[-1] == Export("grouped_mixture")


def test_spans_point_at_the_source() -> None:
    module = parse((EXAMPLES / "gmm.qvr").read_text())  # canonical: a blank line after the objects
    program = module.items[2]
    assert program.span == Span(4, 1, 4, 63)
    marg = program.body[3]
    assert marg.span == Span(8, 5, 8, 44)
    observe = marg.body[0]
    assert observe.span == Span(9, 9, 9, 53)
    mu = observe.family.args[0]
    assert mu.span == Span(9, 36, 9, 43)
    assert mu.indices[0].span == Span(9, 41, 9, 42)


def test_product_and_coproduct_objects() -> None:
    module = parse(
        "object A : FinSet 2\nobject B : FinSet 3\n"
        "object P : FinSet = A * B\nobject S : FinSet = A + B * (A + B)\n"
    )
    assert module.items[2] == ObjectDef("P", SetProduct(SetName("A"), SetName("B")))
    assert module.items[3] == ObjectDef(
        "S",
        SetSum(SetName("A"), SetProduct(SetName("B"), SetSum(SetName("A"), SetName("B")))),
    )


def test_steps_may_range_over_product_sets() -> None:
    (step,) = _body("p", "sample w : G * K <- Normal(0.0, 1.0)")
    assert step.index_set == SetProduct(G, K)


def test_sample_and_observe_without_an_index_set() -> None:
    s, o = _body("p", "sample sigma <- HalfNormal(1.0)", "observe y <- Normal(0.0, sigma)")
    assert s.index_set is None and o.index_set is None
    assert o.family.args[1] == Name("sigma")


def test_let_factor_return_and_index_steps() -> None:
    steps = _body(
        "p",
        "index group : Item -> G",
        "let mu_k_sorted = sort(mu_k)",
        "factor -0.5 * (x - 1) ^ 2",
        "return exp(mu_k_sorted[0]) / 2",
    )
    assert steps[0] == IndexMap("group", ITEM, G)
    assert steps[1] == Let("mu_k_sorted", Call("sort", (Name("mu_k"),)))
    assert steps[2] == Factor(
        BinOp("*", Neg(Number(0.5)), BinOp("^", BinOp("-", Name("x"), Number(1)), Number(2)))
    )
    assert steps[3] == Return(
        BinOp("/", Call("exp", (Subscript(Name("mu_k_sorted"), (Number(0),)),)), Number(2))
    )


def test_keyword_arguments_follow_positional_ones() -> None:
    (a, b) = _body("p", "sample a <- Normal(loc=0.0, scale=1.0)", "sample b <- Normal(mu, scale=2)")
    assert a.family == FamilyCall(
        "Normal", (), (Keyword("loc", Number(0.0)), Keyword("scale", Number(1.0)))
    )
    assert b.family == FamilyCall("Normal", (Name("mu"),), (Keyword("scale", Number(2)),))


def test_operator_precedence_and_associativity() -> None:
    (step,) = _body("p", "let a = -x ^ 2 * 3 + b[i, j] / c - d - e ^ f ^ g")
    x, b, c, d, e = (Name(n) for n in "xbcde")
    expected = BinOp(
        "-",
        BinOp(
            "-",
            BinOp(
                "+",
                BinOp("*", Neg(BinOp("^", x, Number(2))), Number(3)),
                BinOp("/", Subscript(b, (Name("i"), Name("j"))), c),
            ),
            d,
        ),
        BinOp("^", e, BinOp("^", Name("f"), Name("g"))),
    )
    assert step.value == expected


def test_numbers_keep_their_kind() -> None:
    (step,) = _body("p", "let a = 2 + 2.0 + 1e-3 + .5")
    values = []
    node = step.value
    while isinstance(node, BinOp):
        values.append(node.right.value)
        node = node.left
    values.append(node.value)
    assert values[::-1] == [2, 2.0, 0.001, 0.5]
    assert [type(v) for v in values[::-1]] == [int, float, float, float]


def test_option_blocks_hold_names_numbers_and_lists() -> None:
    (step,) = _body("p", "sample a <- Normal(0.0, 1.0) [x=1, y=[], z=[A, [2.5]]]")
    assert step.options == (
        Option("x", OptionNumber(1)),
        Option("y", OptionList(())),
        Option("z", OptionList((OptionName("A"), OptionList((OptionNumber(2.5),))))),
    )


def test_nested_marginalize_blocks() -> None:
    (outer,) = _body(
        "p",
        "marginalize z : K <- Categorical(w)",
        "    marginalize u : K <- Categorical(v)",
        "        observe y <- Normal(z, u)",
        "    factor z",
    )
    assert isinstance(outer.body[0], Marginalize)
    assert outer.body[0].body == (Observe("y", None, FamilyCall("Normal", (Name("z"), Name("u")))),)
    assert outer.body[1] == Factor(Name("z"))


@pytest.mark.parametrize(
    "text",
    [
        # comments, blank lines and stray spaces inside the body
        "object K : FinSet 2   # two\n\nprogram p : K -> K\n    # prior\n\n"
        "    sample a : K <- Normal(0.0, 1.0)\n  \n    # done\n    return a\n\n# end",
        # CRLF line endings and no final newline
        "object K : FinSet 2\r\nprogram p : K -> K\r\n    sample a : K <- Normal(0.0, 1.0)\r\n"
        "    return a",
        # a call wrapped over lines inside its parentheses, other indentation widths
        "object K : FinSet 2\nprogram p : K -> K\n  sample a : K <- Normal(\n0.0,\n"
        "          1.0)\n  return a\n",
    ],
)
def test_layout_does_not_change_the_tree(text: str) -> None:
    expected = parse(
        "object K : FinSet 2\nprogram p : K -> K\n"
        "    sample a : K <- Normal(0.0, 1.0)\n    return a\n"
    )
    assert parse(text) == expected


def test_empty_source_is_an_empty_module() -> None:
    assert parse("") == Module(())
    assert parse("# only a comment\n\n") == Module(())


def test_the_transformer_has_one_method_per_rule_and_no_others() -> None:
    from lark import Transformer

    from quivers.dsl.parser import _parser
    from quivers.dsl.transformer import QVRTransformer

    built = set()
    for rule in _parser().rules:
        name = rule.alias or rule.origin.name
        # `?rule` alternatives without an alias are inlined, as are `_rule`s.
        if name.startswith("_") or (rule.options.expand1 and rule.alias is None):
            continue
        built.add(str(name))
    methods = {
        m for m in vars(QVRTransformer)
        if not m.startswith("_") and m not in vars(Transformer) and m.islower()
    }
    assert methods == built
