"""Emission of quivers programs into other probabilistic languages.

:func:`to_stan` writes a Stan program with the same posterior as a
:class:`~quivers.programs.Program`, so that a model can be cross-checked in
Stan; :func:`stan_data` writes the data to run it with. Constructs without
a faithful translation raise :class:`~quivers.errors.UnsupportedError`.
"""

from quivers.emit.stan import STAN_FAMILIES, stan_data, to_stan

__all__ = ["to_stan", "stan_data", "STAN_FAMILIES"]
