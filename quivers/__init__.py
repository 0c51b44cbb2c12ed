"""quivers: category-theoretic modeling and probabilistic programming for PyTorch.

The package is layered bottom up; each layer imports only from those below:

- :mod:`quivers.categories`: finite sets, semirings, morphisms, kernels and
  Kan extensions (pure tensor algebra).
- :mod:`quivers.distributions`: families, supports and bijections.
- :mod:`quivers.programs`: the program IR, its dependency graph, effects and
  the exact log density with marginalization.
- :mod:`quivers.inference`: guides, ELBO, SVI, MCMC, predictive.
- :mod:`quivers.dsl`: the QVR language, compiled into the Python combinators.
- :mod:`quivers.editor`: QVR in editors, terminals and notebooks (language
  server, REPL, IPython magic, TextMate grammar).
"""

from typing import Any

from quivers.errors import QuiversError

__all__ = ["QuiversError", "__version__", "load_ipython_extension"]
__version__ = "0.1.0"


def load_ipython_extension(shell: Any) -> None:
    """``%load_ext quivers``: the ``%%qvr`` cell magic (:mod:`quivers.editor.magic`)."""
    from quivers.editor.magic import load_ipython_extension as load

    load(shell)
