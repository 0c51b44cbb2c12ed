"""Fuzzing the parser, checker and compiler: any text either loads or
raises a :class:`~quivers.errors.QuiversError` that gives a line and a
column; never another exception, never a hang.

The mutated-source test is marked ``slow`` and draws as many examples as
the active hypothesis profile allows (``tests/conftest.py``): 40 under
``dev``, 60 under ``ci`` (what ``.ci/run`` selects), 10,000 under ``slow``.
The 10,000-case run::

    HYPOTHESIS_PROFILE=slow timeout 5400 python -m pytest \
        tests/reliability/test_fuzz_parser.py -m slow --hypothesis-show-statistics

Its statistics should read "10000 passing examples, 0 failing examples".
On 2026-11-24 it took 13.5 minutes on a shared two-core machine, and of
the 10,000 sources 14% loaded and the rest raised located errors (69%
QVRSyntaxError, 9% UnknownNameError, 3% QuiversTypeError, the rest
InvalidValueError, ShapeError and EffectError).

Every example runs under a wall-clock alarm, so a hang (an exact power
tower folded by sympy, a pathological regex) fails the test with the
source that caused it instead of stalling the run.
"""

from __future__ import annotations

import contextlib
import signal

import pytest
from hypothesis import event, example, given, settings
from hypothesis.errors import InvalidArgument
from hypothesis import strategies as st

from quivers.dsl import loads
from quivers.dsl.format import format_source
from quivers.dsl.parser import parse
from quivers.errors import InvalidValueError, QuiversError, QVRSyntaxError

from .strategies import SEEDS, _deep, mutated_sources, valid_sources

TIME_BOUND_S = 10.0
"""Seconds one source may take to load. Loading takes milliseconds; the
bound is loose so that a loaded machine does not fail the test, and tight
enough that a hang does."""


class Hang(BaseException):
    """Raised by the alarm; a BaseException so no ``except Exception`` in
    lark, sympy or quivers can swallow it."""


@contextlib.contextmanager
def time_bound(seconds: float = TIME_BOUND_S):
    def alarm(signum, frame):
        raise Hang(f"loading took more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def note(outcome: str) -> None:
    """Count outcomes in hypothesis's statistics (``--hypothesis-show-statistics``),
    so a run shows how many sources got past the parser and the checker."""
    try:
        event(outcome)
    except InvalidArgument:  # called outside a hypothesis test
        pass


def loads_or_located_error(text: str) -> QuiversError | None:
    """Load ``text``; return None, or the QuiversError it raised after
    checking that the error says where: a span inside the text, rendered as
    ``line L, column C:`` in the message."""
    try:
        with time_bound():
            loads(text)
    except QuiversError as err:
        note(f"raised {type(err).__name__}")
        assert err.span is not None, f"{type(err).__name__} without a line and column: {err}"
        assert f"line {err.span.line}, column {err.span.column}: " in str(err)
        assert 1 <= err.span.line <= text.count("\n") + 2, (err.span, text)
        assert err.span.column >= 1
        return err
    note("loaded")
    return None


def test_the_seeds_load() -> None:
    for text in SEEDS:
        assert loads_or_located_error(text) is None


@given(valid_sources)
def test_valid_sources_load_or_raise_located_errors(text: str) -> None:
    """Random modules parse (the printer writes valid syntax), and the
    checker or compiler either accepts them or says where they are wrong."""
    loads_or_located_error(text)


@pytest.mark.slow
@given(mutated_sources())
@example("")
@example("\ufeffobject K : FinSet 2\n")
@example("object K : FinSet " + "9" * 5000 + "\n")
def test_mutated_sources_load_or_raise_located_errors(text: str) -> None:
    loads_or_located_error(text)


@settings(max_examples=200)
@given(st.text(max_size=60))
def test_arbitrary_text_loads_or_raises_located_errors(text: str) -> None:
    loads_or_located_error(text)


@given(st.one_of(mutated_sources(), valid_sources))
def test_formatting_fuzzed_sources_keeps_their_meaning(text: str) -> None:
    """``qvr fmt`` reads the same text as the parser: it either raises a
    located error, or writes a fixed point of itself that parses to the
    same syntax tree and loads (or fails to load) as the original did."""
    try:
        with time_bound():
            out = format_source(text)
    except QuiversError as err:
        assert err.span is not None and f"line {err.span.line}, column {err.span.column}: " in str(err), err
        return
    with time_bound():
        assert format_source(out) == out
        assert parse(out) == parse(text)
    before, after = loads_or_located_error(text), loads_or_located_error(out)  # each under its own bound
    assert type(before) is type(after), (before, after)


def test_the_slow_profile_runs_ten_thousand_mutated_sources_and_ci_fewer() -> None:
    """The mutated-source test takes its number of examples from the active
    profile (it has no ``@settings`` of its own), so ``slow`` runs at
    least 10,000 of them and ``ci`` a small number."""
    assert settings.get_profile("slow").max_examples >= 10_000
    assert settings.get_profile("ci").max_examples <= 100
    test = test_mutated_sources_load_or_raise_located_errors
    assert getattr(test.hypothesis.inner_test, "_hypothesis_internal_use_settings", None) is None
    assert test._hypothesis_internal_use_settings.max_examples == settings().max_examples


# ---------------------------------------------------------------- regressions

HEAD = "object K : FinSet 2\nobject Item : FinSet 3\nprogram p : Item -> Item\n    sample x : K <- Normal(0.0, 1.0)\n"


@pytest.mark.parametrize("expr", [
    "9 ^ 9 ^ 9", "2 ^ 2 ^ 2 ^ 2 ^ 2 ^ 2", "2 ^ 100000000", "10 ^ 400", "(10 ^ 300) * (10 ^ 300)",
    "exp(exp(exp(1000)))", "exp(1000)", "1e308 * 10", "10 ^ -100000000", "x + 7 ^ 7 ^ 7",
])
def test_constants_beyond_floating_point_are_invalid_values_not_hangs(expr: str) -> None:
    err = loads_or_located_error(HEAD + f"    let a = {expr}\n")
    assert isinstance(err, InvalidValueError), err
    assert err.span.line == 5
    assert "floating point" in err.message or "not finite" in err.message


@pytest.mark.parametrize("expr", ["2 ^ 1000", "10 ^ -300", "(-2) ^ 3", "1e308", "0 ^ 0", "x ^ 1e10"])
def test_constants_inside_floating_point_still_load(expr: str) -> None:
    assert loads_or_located_error(HEAD + f"    let a = {expr}\n") is None


@pytest.mark.parametrize("kind", ["neg", "sum", "paren", "call", "pow", "index"])
def test_deep_nesting_is_a_located_syntax_error_or_loads(kind: str) -> None:
    shallow = loads_or_located_error(HEAD + f"    let a = {_deep(50, kind)}\n")
    assert shallow is None or not isinstance(shallow, QVRSyntaxError), shallow
    deep = loads_or_located_error(HEAD + f"    let a = {_deep(5000, kind)}\n")
    if kind != "paren":  # parentheses add no depth to the tree
        assert isinstance(deep, QVRSyntaxError) and "nested" in deep.message, deep
        assert deep.span.line == 5


@pytest.mark.parametrize("text", [
    "object K : FinSet " + "9" * 5000 + "\n",
    "object K : FinSet 2\nprogram p : K -> K\n    let a = " + "9" * 5000 + "\n",
])
def test_integers_with_thousands_of_digits(text: str) -> None:
    assert isinstance(loads_or_located_error(text), QuiversError)


@pytest.mark.parametrize("text", ["", "\n\n", "   \n", "# nothing\n", "\t\n"])
def test_empty_files_load_to_empty_modules(text: str) -> None:
    assert loads_or_located_error(text) is None
    assert not loads(text).programs
