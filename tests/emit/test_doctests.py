"""The Examples sections of the tooling modules run (emit, CLI, plots,
lexer, formatter, graph drawing)."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "quivers.emit.stan",
    "quivers.emit.stan_expr",
    "quivers.cli",
    "quivers.dsl.lexer",
    "quivers.dsl.format",
    "quivers.programs.draw",
    "quivers.inference.plots",
]


@pytest.mark.parametrize("name", MODULES)
def test_examples_run(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
