"""Every pass over steps has a rule for every kind of step (issue 15):
the interpreter, the site analysis, the shape checker, the compiler of
parameters and Stan emission dispatch through
:class:`~quivers.programs.steps.StepVisitor`, so a new kind of step that
one of them forgets is named here, not found by a user. Every module of
the package is imported first, so a pass anywhere in it is counted."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from dataclasses import dataclass, field

import pytest

import quivers
import quivers.emit.stan
from quivers.errors import Span, UnsupportedError
from quivers.programs import let
from quivers.programs.build import _Compile
from quivers.programs.runtime import Run
from quivers.programs.shapes import _Checker
from quivers.programs.sites import _SiteOf
from quivers.programs.steps import Step, StepVisitor, step_kinds

def _passes_in_package() -> list[type]:
    for module in pkgutil.walk_packages(quivers.__path__, "quivers."):  # every pass joins the census
        importlib.import_module(module.name)
    out, todo = set(), list(StepVisitor.__subclasses__())
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        # a pass of the package is a class its module defines (not one a doctest declares)
        if cls.__module__.startswith("quivers.") and getattr(sys.modules[cls.__module__], cls.__name__, None) is cls:
            out.add(cls)
    return sorted(out, key=lambda c: (c.__module__, c.__name__))


PASSES = _passes_in_package()


def test_the_census_knows_every_kind_of_step():
    kinds = step_kinds()
    assert {"sample", "observe", "marginalize", "markov", "let", "factor", "return", "indexmap", "data",
            "input"} <= set(kinds)
    assert all(issubclass(c, Step) for c in kinds.values())


def test_the_census_finds_the_passes_of_the_package():
    known = {Run, _SiteOf, _Checker, _Compile, quivers.emit.stan._Admit, quivers.emit.stan._Statements,
             quivers.emit.stan._BodyPart}
    assert known <= set(PASSES)


@pytest.mark.parametrize("visitor", PASSES, ids=lambda c: f"{c.__module__}.{c.__name__}")
def test_every_pass_has_a_rule_for_every_kind_of_step(visitor):
    assert visitor.missing() == []


@dataclass(frozen=True)
class NoteStep(Step):
    """A kind of step no pass knows (declared here, outside the package)."""

    name: str
    span: Span | None = field(default=None, compare=False, repr=False)


def test_a_new_kind_is_named_by_every_pass_that_lacks_it():
    assert "note" not in step_kinds()  # a test's kind does not join the package's census
    for visitor in PASSES:
        assert visitor.missing(["note", "let"]) == ["note"]


def test_visiting_a_kind_without_a_rule_is_a_clear_error():
    class Lets(StepVisitor):
        def visit_let(self, s):
            return s.name

    assert Lets().visit(let("a", 1.0)) == "a"
    with pytest.raises(UnsupportedError, match="Lets has no rule for `note` steps"):
        Lets().visit(NoteStep("n"))
