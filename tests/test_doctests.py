"""Every Examples section in the package runs: each module is found by
walking ``quivers``, not listed by hand, so a new module's doctests cannot
be left out of CI."""

from __future__ import annotations

import doctest
import importlib
import inspect
import pkgutil

import pytest

import quivers

MODULES = sorted(m.name for m in pkgutil.walk_packages(quivers.__path__, "quivers."))


@pytest.mark.parametrize("name", MODULES)
def test_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    # A module that writes examples must have them collected.
    assert result.attempted > 0 or ">>>" not in inspect.getsource(module)


def test_the_walk_finds_the_package():
    assert {"quivers.categories.markov", "quivers.dsl.compiler", "quivers.inference.mcmc.nuts"} <= set(MODULES)
