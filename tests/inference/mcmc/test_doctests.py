"""The Examples sections of the MCMC modules run."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "quivers.inference.mcmc",
    "quivers.inference.mcmc.adaptor",
    "quivers.inference.mcmc.hamiltonian",
    "quivers.inference.mcmc.adaptation",
    "quivers.inference.mcmc.kernel",
    "quivers.inference.mcmc.hmc",
    "quivers.inference.mcmc.nuts",
    "quivers.inference.mcmc.mcmc",
    "quivers.inference.diagnostics",
]


@pytest.mark.parametrize("name", MODULES)
def test_examples_run(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
