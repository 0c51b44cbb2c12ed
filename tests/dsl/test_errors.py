"""Every error a QVR author can provoke, with its full message.

Messages give the line and column, show the source line with a caret
under the offending text, say what was expected, and suggest a fix where
one is close.
"""

from __future__ import annotations

import textwrap

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quivers.dsl import ast, dumps, load, loads
from quivers.dsl.parser import parse
from quivers.errors import (
    DataError,
    EffectError,
    GraphError,
    InvalidValueError,
    QuiversError,
    QuiversTypeError,
    QVRSyntaxError,
    ShapeError,
    UnknownNameError,
)

from .strategies import qvr_fragments, scoped_modules

HEAD = "object K : FinSet 2\nprogram p : K -> K\n"


def _message(exc_type: type[QuiversError], text: str) -> str:
    with pytest.raises(exc_type) as info:
        parse(text)
    return str(info.value)


def _expect(exc_type: type[QuiversError], text: str, expected: str) -> None:
    assert _message(exc_type, text) == textwrap.dedent(expected).strip("\n")


# ---------------------------------------------------------------- syntax


def test_missing_colon_names_what_was_expected() -> None:
    _expect(QVRSyntaxError, HEAD + "    sample probs K <- HalfNormal(1.0)\n", """
        line 3, column 18: unexpected name `K`; expected `:` or `<-` after `sample probs`
                sample probs K <- HalfNormal(1.0)
                             ^
    """)


def test_missing_comma_in_arguments() -> None:
    _expect(QVRSyntaxError, HEAD + "    sample x : K <- Normal(0 1)\n", """
        line 3, column 30: unexpected number `1`; expected `)`, `,` or an operator after `sample x : K <- Normal(0`
                sample x : K <- Normal(0 1)
                                         ^
    """)


def test_unexpected_character() -> None:
    _expect(QVRSyntaxError, HEAD + "    sample x : K ~ Normal(0, 1)\n", """
        line 3, column 18: unexpected character `~`; draws are written `sample x : I <- Family(...)`
                sample x : K ~ Normal(0, 1)
                             ^
    """)


def test_python_power_operator_suggests_caret() -> None:
    _expect(QVRSyntaxError, HEAD + "    let x = a ** 2\n", """
        line 3, column 16: unexpected `*`; expected an expression after `let x = a *`; write powers with `^`
                let x = a ** 2
                           ^
    """)


def test_incomplete_expression_at_end_of_line() -> None:
    _expect(QVRSyntaxError, HEAD + "    let x = 1 +\n", """
        line 3, column 16: unexpected end of line; expected an expression after `let x = 1 +`
                let x = 1 +
                           ^
    """)


def test_unclosed_bracket_is_named() -> None:
    _expect(QVRSyntaxError, HEAD + "    let x = (1 + 2\n    return x\n", """
        line 3, column 13: `(` is never closed
                let x = (1 + 2
                        ^
    """)


def test_program_without_a_body() -> None:
    _expect(QVRSyntaxError, "object K : FinSet 2\nprogram p : K -> K\nexport p\n", """
        line 3, column 1: unexpected `export`; expected an indented body after `program p : K -> K`
            export p
            ^^^^^^
    """)


def test_marginalize_without_an_indented_body() -> None:
    text = HEAD + "    marginalize z : K <- Categorical(w)\n    observe y <- Normal(0, 1)\n"
    _expect(QVRSyntaxError, text, """
        line 4, column 5: unexpected `observe`; expected an indented body after `marginalize z : K <- Categorical(w)`
                observe y <- Normal(0, 1)
                ^^^^^^^
    """)


def test_unexpected_indentation() -> None:
    _expect(QVRSyntaxError, HEAD + "    let x = 1\n        let y = 2\n", """
        line 4, column 9: unexpected indentation; expected a step (`sample`, `observe`, `marginalize`, `let`, `factor`, `score`, `return`, `index`, `data`, `name <- Family(...)`) or the end of the block after `let x = 1`
                    let y = 2
                    ^
    """)


def test_dedent_to_no_enclosing_block() -> None:
    _expect(QVRSyntaxError, HEAD + "    let x = 1\n  let y = 2\n", """
        line 4, column 3: this line is indented by 2 spaces, which matches no enclosing block; indent it by 0 or 4 spaces
              let y = 2
              ^
    """)


def test_misspelled_keyword_suggests_the_keyword() -> None:
    _expect(QVRSyntaxError, HEAD + "    marginalise z : K <- Categorical(w)\n", """
        line 3, column 5: unexpected name `marginalise`; expected a step (`sample`, `observe`, `marginalize`, `let`, `factor`, `score`, `return`, `index`, `data`, `name <- Family(...)`); did you mean `marginalize`?
                marginalise z : K <- Categorical(w)
                ^^^^^^^^^^^
    """)


def test_step_outside_a_program() -> None:
    _expect(QVRSyntaxError, "object K : FinSet 2\nsample x : K <- Normal(0, 1)\n", """
        line 2, column 1: unexpected `sample`; expected a declaration (`object`, `program`, `morphism`, `define`, `deduction`, `schema`, `bundle`, `export`, `composition` or `algebra`); steps belong in the indented body of a `program`
            sample x : K <- Normal(0, 1)
            ^^^^^^
    """)


def test_keyword_used_as_a_name() -> None:
    _expect(QVRSyntaxError, HEAD + "    let sample = 1\n", """
        line 3, column 9: `sample` is a keyword and cannot be used as a name; rename it, e.g. `sample_`
                let sample = 1
                    ^^^^^^
    """)


def test_fractional_object_size() -> None:
    _expect(QVRSyntaxError, "object K : FinSet 2.5\n", """
        line 1, column 19: the size of object `K` must be a whole number, got `2.5`
            object K : FinSet 2.5
                              ^^^
    """)


def test_number_too_large() -> None:
    _expect(QVRSyntaxError, HEAD + "    factor 1e999\n", """
        line 3, column 12: number `1e999` is too large to represent
                factor 1e999
                       ^^^^^
    """)


def test_option_without_a_value() -> None:
    _expect(QVRSyntaxError, HEAD + "    sample x : K <- Normal(0, 1) [over G]\n", """
        line 3, column 40: unexpected name `G`; expected `=` after `sample x : K <- Normal(0, 1) [over`
                sample x : K <- Normal(0, 1) [over G]
                                                   ^
    """)


def test_syntax_errors_are_quivers_errors_not_lark_errors() -> None:
    import lark

    for text in ["program", "object K : FinSet", ")(", "object K : FinSet 2\n  export", "\x00"]:
        with pytest.raises(QVRSyntaxError) as info:
            parse(text)
        assert not isinstance(info.value, lark.exceptions.LarkError)
        assert info.value.span is not None


# ---------------------------------------------------------------- checking

OBJ = "object Item : FinSet 4\nobject K : FinSet 2\nobject G : FinSet 2\n"


def prog(*lines: str, header: str = "program p : Item -> Item", tail: str = "export p\n") -> str:
    """A module with the objects Item, K, G and one program with ``lines``."""
    return OBJ + header + "\n" + "".join("    " + ln + "\n" for ln in lines) + tail


CHECK_ERRORS = [
    pytest.param(
        prog("sample mu : KK <- Normal(0.0, 1.0)"),
        UnknownNameError,
        """
        line 5, column 17: unknown object `KK` in `sample mu : KK`; objects in scope: Item, K, G; did you mean `K`?
                sample mu : KK <- Normal(0.0, 1.0)
                            ^^
        """,
        id="unknown-object",
    ),
    pytest.param(
        "object P : FinSet = A * B\nobject A : FinSet 2\nobject B : FinSet 2\n",
        UnknownNameError,
        """
        line 1, column 21: object `A` is used before it is declared in `object P : FinSet = A * B`; objects in scope: none
            object P : FinSet = A * B
                                ^
        """,
        id="object-before-decl",
    ),
    pytest.param(
        prog("sample mu : p <- Normal(0.0, 1.0)"),
        UnknownNameError,
        """
        line 5, column 17: `p` in `sample mu : p` is a program, not an object; objects in scope: Item, K, G
                sample mu : p <- Normal(0.0, 1.0)
                            ^
        """,
        id="program-as-object",
    ),
    pytest.param(
        prog("sample mu_k : K <- Normal(0.0, 1.0)", "let m = mu_kk[0]"),
        UnknownNameError,
        """
        line 6, column 13: unknown name `mu_kk` in program `p`; names in scope: mu_k; did you mean `mu_k`? (if `mu_kk` is data, declare it: `data mu_kk : ...`)
                let m = mu_kk[0]
                        ^^^^^
        """,
        id="unknown-name",
    ),
    pytest.param(
        prog("let m = mu_k + 1", "sample mu_k : K <- Normal(0.0, 1.0)"),
        UnknownNameError,
        """
        line 5, column 13: `mu_k` is used before it is defined on line 6; move its definition above this step
                let m = mu_k + 1
                        ^^^^
        """,
        id="before-defined",
    ),
    pytest.param(
        prog("sample sigma : K <- HalfNormal(sigma)"),
        GraphError,
        """
        line 5, column 36: `sigma` is read by its own definition, a recursion; a recursion over a sequence needs `scan`, which quivers does not have yet (a chain of discrete states is a `markov` block)
                sample sigma : K <- HalfNormal(sigma)
                                               ^^^^^
        """,
        id="self-reference-sample",
    ),
    pytest.param(
        prog("let a = 2 * a", "observe y : Item <- Normal(a, 1.0)"),
        GraphError,
        """
        line 5, column 17: `a` is read by its own definition, a recursion; a recursion over a sequence needs `scan`, which quivers does not have yet (a chain of discrete states is a `markov` block)
                let a = 2 * a
                            ^
        """,
        id="self-reference-let",
    ),
    pytest.param(
        prog("sample w : K <- HalfNormal(1.0)", "marginalize z : K <- Categorical(w)",
             "    observe y : Item <- Normal(y, 1.0)"),
        GraphError,
        """
        line 7, column 36: `y` is read by its own definition, a recursion; a recursion over a sequence needs `scan`, which quivers does not have yet (a chain of discrete states is a `markov` block)
                    observe y : Item <- Normal(y, 1.0)
                                               ^
        """,
        id="self-reference-in-a-block",
    ),
    pytest.param(
        prog("sample w : K <- HalfNormal(1.0)", "marginalize z : K <- Categorical(w)", "    observe y : Item <- Normal(z, 1.0)", "factor z"),
        QuiversTypeError,
        """
        line 8, column 12: `z` is marginalized out by the block on line 6 and is only in scope inside it
                factor z
                       ^
        """,
        id="latent-after-block",
    ),
    pytest.param(
        prog("sample mu : K <- Normal(0.0, 1.0)", "let mu = 2"),
        QuiversTypeError,
        """
        line 6, column 5: `mu` is defined twice in program `p`; it is already defined by `sample mu` on line 5
                let mu = 2
                ^^^^^^^^^^
        """,
        id="dup-name",
    ),
    pytest.param(
        OBJ + "object K : FinSet 3\n",
        QuiversTypeError,
        """
        line 4, column 1: `K` is declared twice; it is already declared on line 2; objects and programs share one namespace
            object K : FinSet 3
            ^^^^^^^^^^^^^^^^^^^
        """,
        id="dup-decl",
    ),
    pytest.param(
        prog("sample mu : K <- Normall(0.0, 1.0)"),
        UnknownNameError,
        """
        line 5, column 22: unknown distribution family `Normall`; did you mean `Normal`?
                sample mu : K <- Normall(0.0, 1.0)
                                 ^^^^^^^^^^^^^^^^^
        """,
        id="unknown-family",
    ),
    pytest.param(
        prog("sample mu : K <- Normal(loc=0.0, scal=1.0)"),
        UnknownNameError,
        """
        line 5, column 38: `Normal` has no parameter `scal`; its parameters are loc, scale; did you mean `scale`?
                sample mu : K <- Normal(loc=0.0, scal=1.0)
                                                 ^^^^^^^^
        """,
        id="unknown-kw",
    ),
    pytest.param(
        prog("sample mu : K <- Normal(0.0)"),
        QuiversTypeError,
        """
        line 5, column 22: `Normal` is missing parameter `scale`; it takes (loc, scale)
                sample mu : K <- Normal(0.0)
                                 ^^^^^^^^^^^
        """,
        id="missing-param",
    ),
    pytest.param(
        prog("sample mu : K <- HalfNormal(1.0, 2.0)"),
        QuiversTypeError,
        """
        line 5, column 22: `HalfNormal` takes at most 1 positional arguments (scale), got 2
                sample mu : K <- HalfNormal(1.0, 2.0)
                                 ^^^^^^^^^^^^^^^^^^^^
        """,
        id="too-many",
    ),
    pytest.param(
        prog("sample mu : K <- HalfNormal(-1.0)"),
        InvalidValueError,
        """
        line 5, column 22: `HalfNormal` parameter `scale` = -1.0 violates its constraint GreaterThan(lower_bound=0.0)
                sample mu : K <- HalfNormal(-1.0)
                                 ^^^^^^^^^^^^^^^^
        """,
        id="invalid-const",
    ),
    pytest.param(
        prog("sample mu : K <- Normal(0.0, 1.0)", "let e = exq(mu)"),
        UnknownNameError,
        """
        line 6, column 13: unknown function `exq`; functions are exp, log, sqrt, abs, tanh, sigmoid, log1p, expm1, softplus, logit, step, int_step, relu, clamp, sum, mean, prod, logsumexp, softmax, log_softmax, sort, cumsum, where, dot, vector, matrix; did you mean `exp`?
                let e = exq(mu)
                        ^^^^^^^
        """,
        id="unknown-fn",
    ),
    pytest.param(
        prog("sample mu : K <- Normal(0.0, 1.0)", "let e = Normal(mu)"),
        UnknownNameError,
        """
        line 6, column 13: unknown function `Normal` (distribution families go after `<-`); functions are exp, log, sqrt, abs, tanh, sigmoid, log1p, expm1, softplus, logit, step, int_step, relu, clamp, sum, mean, prod, logsumexp, softmax, log_softmax, sort, cumsum, where, dot, vector, matrix
                let e = Normal(mu)
                        ^^^^^^^^^^
        """,
        id="family-as-fn",
    ),
    pytest.param(
        prog("sample mu : K <- Normal(0.0, 1.0)", "let e = exp(mu, 2)"),
        QuiversTypeError,
        """
        line 6, column 13: `exp` takes one argument, got 2
                let e = exp(mu, 2)
                        ^^^^^^^^^^
        """,
        id="fn-arity",
    ),
    pytest.param(
        prog("sample w : K <- HalfNormal(1.0)", "marginalize z : K <- Categorical(w) [ovr=G]", "    observe y : Item <- Normal(z, 1.0)"),
        UnknownNameError,
        """
        line 6, column 42: unknown option `ovr` for `marginalize`; known options: over, reduction; did you mean `over`?
                marginalize z : K <- Categorical(w) [ovr=G]
                                                     ^^^^^
        """,
        id="unknown-option",
    ),
    pytest.param(
        prog("sample w : K <- HalfNormal(1.0) [via=g]"),
        UnknownNameError,
        """
        line 5, column 38: unknown option `via` for `sample`; known options: over, iid_over, enumerate, constraint
                sample w : K <- HalfNormal(1.0) [via=g]
                                                 ^^^^^
        """,
        id="sample-unknown-option",
    ),
    pytest.param(
        prog("sample w : K <- HalfNormal(1.0)", "marginalize z : K <- Categorical(w) [over=G, over=G]", "    observe y : Item <- Normal(z, 1.0)"),
        QuiversTypeError,
        """
        line 6, column 50: option `over` is given twice
                marginalize z : K <- Categorical(w) [over=G, over=G]
                                                             ^^^^^^
        """,
        id="dup-option",
    ),
    pytest.param(
        prog("sample w : K <- HalfNormal(1.0)", header="program p : Item -> Item [effects=Sample]"),
        QuiversTypeError,
        """
        line 4, column 35: option `effects` takes a list of effect names, e.g. `effects=[Sample, Score]`
            program p : Item -> Item [effects=Sample]
                                              ^^^^^^
        """,
        id="effects-kind",
    ),
    pytest.param(
        prog("sample w : K <- HalfNormal(1.0)", "marginalize z : K <- Categorical(w) [over=[G]]", "    observe y : Item <- Normal(z, 1.0)"),
        QuiversTypeError,
        """
        line 6, column 47: option `over` takes an object, e.g. `over=G`, or a product of them, `over=G * H`
                marginalize z : K <- Categorical(w) [over=[G]]
                                                          ^^^
        """,
        id="over-kind",
    ),
    pytest.param(
        prog("sample w : K <- HalfNormal(1.0)", "marginalize z : K <- Categorical(w) [over=G]", "    observe y : Item <- Normal(z, 1.0) [via=3]"),
        QuiversTypeError,
        """
        line 7, column 49: option `via` takes the name of an index map, e.g. `via=group`, or one per factor of a grouping by pairs, `via=[g, h]`
                    observe y : Item <- Normal(z, 1.0) [via=3]
                                                            ^
        """,
        id="via-kind",
    ),
    pytest.param(
        prog("sample w : K <- HalfNormal(1.0)", header="program p : Item -> Item [effects=[Sampel]]"),
        UnknownNameError,
        """
        line 4, column 36: unknown effect `Sampel`; effects are Pure, Sample, Score, Marginal; did you mean `Sample`?
            program p : Item -> Item [effects=[Sampel]]
                                               ^^^^^^
        """,
        id="unknown-effect",
    ),
    pytest.param(
        prog("sample w : K <- HalfNormal(1.0)", "marginalize z : K <- Categorical(w)", "    observe y : Item <- Normal(z, 1.0)", header="program p : Item -> Item [effects=[Sample, Score]]"),
        EffectError,
        """
        line 6, column 5: program `p` declares effects [Sample, Score] but has Marginal: `marginalize z` (Marginal); add Marginal to its effects
                marginalize z : K <- Categorical(w)
                ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
        """,
        id="effect-missing",
    ),
    pytest.param(
        prog("sample w : K <- HalfNormal(1.0)", tail="export pp\n"),
        UnknownNameError,
        """
        line 6, column 1: cannot export `pp`: it is not declared; `export` takes a program, a morphism or a deduction; programs: p; did you mean `p`?
            export pp
            ^^^^^^^^^
        """,
        id="unknown-export",
    ),
    pytest.param(
        prog("sample w : K <- HalfNormal(1.0)", tail="export K\n"),
        UnknownNameError,
        """
        line 6, column 1: cannot export `K`: it is an object; `export` takes a program, a morphism or a deduction; programs: p
            export K
            ^^^^^^^^
        """,
        id="export-object",
    ),
    pytest.param(
        prog("sample w : K <- HalfNormal(1.0)", tail="export p\nexport p\n"),
        QuiversTypeError,
        """
        line 7, column 1: `p` is already exported on line 6
            export p
            ^^^^^^^^
        """,
        id="two-exports",
    ),
    pytest.param(
        prog("index g : Item -> G", "sample w : K <- HalfNormal(1.0)", "marginalize z : K <- Categorical(w)", "    observe y : Item <- Normal(z, 1.0) [via=g]"),
        QuiversTypeError,
        """
        line 8, column 49: observe `y` has [via=g] but no enclosing marginalize has [over=...]; add [over=G] to the marginalize block, or drop via for per-row marginalization
                    observe y : Item <- Normal(z, 1.0) [via=g]
                                                            ^
        """,
        id="via-no-over",
    ),
    pytest.param(
        prog("let g = 1", "sample w : K <- HalfNormal(1.0)", "marginalize z : K <- Categorical(w) [over=G]", "    observe y : Item <- Normal(z, 1.0) [via=g]"),
        QuiversTypeError,
        """
        line 8, column 49: `g` in [via=g] of `y` must be an index map or a sampled name, not a let; declare `g` with index_map(...) (in QVR: `index g : A -> B`, or leave it undefined: a name the program never defines is data)
                    observe y : Item <- Normal(z, 1.0) [via=g]
                                                            ^
        """,
        id="via-let",
    ),
    pytest.param(
        prog("index g : Item -> K", "sample w : K <- HalfNormal(1.0)", "marginalize z : K <- Categorical(w) [over=G]", "    observe y : Item <- Normal(z, 1.0) [via=g]"),
        ShapeError,
        """
        line 8, column 49: index map `g` maps into `K`, but the block of `y` groups over `G`
                    observe y : Item <- Normal(z, 1.0) [via=g]
                                                            ^
        """,
        id="via-cod",
    ),
    pytest.param(
        prog("index group : Item -> G", "sample w : K <- HalfNormal(1.0)", "marginalize z : K <- Categorical(w) [over=G]", "    observe y : Item <- Normal(z, 1.0) [via=grop]"),
        UnknownNameError,
        """
        line 8, column 49: unknown name `grop` in program `p`; names in scope: group, w, z; did you mean `group`? (if `grop` is data, declare it: `data grop : ...`)
                    observe y : Item <- Normal(z, 1.0) [via=grop]
                                                            ^^^^
        """,
        id="via-unknown",
    ),
    pytest.param(
        prog("marginalize z : K <- Normal(0.0, 1.0)", "    observe y : Item <- Normal(z, 1.0)"),
        QuiversTypeError,
        """
        line 5, column 26: marginalize `z` needs a Categorical prior, got `Normal`, a continuous family: only a latent with finitely many values is summed out; draw it with `sample`; for extra zeros in counts, observe `ZeroInflatedPoisson(zero_prob, rate)`
                marginalize z : K <- Normal(0.0, 1.0)
                                     ^^^^^^^^^^^^^^^^
        """,
        id="non-categorical",
    ),
    pytest.param(
        prog("sample w : K <- HalfNormal(1.0)", "return w", "factor w"),
        QuiversTypeError,
        """
        line 6, column 5: `return` must be the last step of program `p`
                return w
                ^^^^^^^^
        """,
        id="return-not-last",
    ),
    pytest.param(
        prog("sample w : K <- HalfNormal(1.0)", "marginalize z : K <- Categorical(w)", "    observe y : Item <- Normal(z, 1.0)", "    return y"),
        QuiversTypeError,
        """
        line 8, column 9: `return` must be at the top level of a program
                    return y
                    ^^^^^^^^
        """,
        id="return-in-block",
    ),
    pytest.param(
        prog("sample w : K <- HalfNormal(1.0)", "marginalize z : K <- Categorical(w) [over=GG]", "    observe y : Item <- Normal(z, 1.0)"),
        UnknownNameError,
        """
        line 6, column 47: unknown object `GG` in `over=GG`; objects in scope: Item, K, G; did you mean `G`?
                marginalize z : K <- Categorical(w) [over=GG]
                                                          ^^
        """,
        id="unknown-over",
    ),
    pytest.param(
        prog("sample w : K <- HalfNormal(1.0)", "marginalize G : K <- Categorical(w)", "    factor 1"),
        QuiversTypeError,
        """
        line 6, column 5: `G` names an object on line 3, so `marginalize G` cannot use it as a value name; rename the value, e.g. `g_`
                marginalize G : K <- Categorical(w)
                ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
        """,
        id="value-named-like-an-object",
    ),
    pytest.param(
        prog("sample x <- Normal(0.0, 1.0)", "factor x + log(0)"),
        InvalidValueError,
        """
        line 6, column 12: `x + log(0)` folds to `zoo`, which is not finite and real
                factor x + log(0)
                       ^^^^^^^^^^
        """,
        id="constant-not-finite",
    ),
    pytest.param(
        prog("sample w : K <- HalfNormal(1.0)", "marginalize z : K <- Categorical(w)", "    observe y : Item <- Normal(z, 1.0)", "    observe v : G <- Normal(z, 1.0)"),
        ShapeError,
        """
        line 6, column 5: per-row marginalize `z` has observations on different plates: `y` on ['Item'], `v` on ['G']; use [over=G] with a via map on each observe
                marginalize z : K <- Categorical(w)
                ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
        """,
        id="runtime-plates",
    ),
]


@pytest.mark.parametrize(("text", "exc_type", "expected"), CHECK_ERRORS)
def test_checking_and_building_errors(text: str, exc_type: type[QuiversError], expected: str) -> None:
    with pytest.raises(QuiversError) as info:
        loads(text)
    assert type(info.value) is exc_type
    assert str(info.value) == textwrap.dedent(expected).strip("\n")


def test_source_that_is_not_text() -> None:
    with pytest.raises(QuiversTypeError, match="QVR source must be a str, got bytes"):
        parse(b"object K : FinSet 2")


def test_unreadable_file(tmp_path) -> None:
    missing = tmp_path / "missing.qvr"
    with pytest.raises(DataError, match=f"cannot read QVR file `{missing}`: No such file"):
        load(missing)


def test_unknown_names_carry_their_candidates() -> None:
    with pytest.raises(UnknownNameError) as info:
        loads(prog("sample mu : KK <- Normal(0.0, 1.0)"))
    assert info.value.name == "KK"
    assert set(info.value.candidates) == {"Item", "K", "G"}


# ---------------------------------------------------------------- no raw tracebacks


@given(st.lists(qvr_fragments, max_size=40))
def test_any_text_parses_or_raises_a_located_syntax_error(fragments: list[str]) -> None:
    text = " ".join(fragments)
    try:
        parse(text)
    except QVRSyntaxError as err:
        assert err.span is not None and err.source == text


@given(scoped_modules)
def test_any_module_loads_or_raises_a_quivers_error(module: ast.Module) -> None:
    text = dumps(module)
    try:
        loads(text)
    except QuiversError as err:
        assert err.span is not None
        assert f"line {err.span.line}, column {err.span.column}: " in str(err)
