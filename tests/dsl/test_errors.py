"""Every error a QVR author can provoke, with its full message.

Messages give the line and column, show the source line with a caret
under the offending text, say what was expected, and suggest a fix where
one is close.
"""

from __future__ import annotations

import textwrap

import pytest

from quivers.dsl.parser import parse
from quivers.errors import QuiversError, QVRSyntaxError

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
        line 4, column 9: unexpected indentation; expected a step (`sample`, `observe`, `marginalize`, `let`, `factor`, `return`, `index`) or the end of the block after `let x = 1`
                    let y = 2
                    ^
    """)


def test_dedent_to_no_enclosing_block() -> None:
    _expect(QVRSyntaxError, HEAD + "    let x = 1\n  let y = 2\n", """
        line 4, column 3: this line is indented by 2 spaces, which matches no enclosing block; indent it by 0 or 4 spaces
              let y = 2
              ^
    """)


def test_step_outside_a_program() -> None:
    _expect(QVRSyntaxError, "object K : FinSet 2\nsample x : K <- Normal(0, 1)\n", """
        line 2, column 1: unexpected `sample`; expected a declaration (`object`, `program` or `export`); steps belong in the indented body of a `program`
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
