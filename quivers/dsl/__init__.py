"""QVR, the surface language of quivers.

The pipeline is ``parse`` (text to :mod:`~quivers.dsl.ast`), ``check``
(names, objects, families, options, effects), ``compile_module`` (AST to
the combinators of :mod:`quivers.programs`); ``loads`` and ``load`` run all
three and return a :class:`QVRModule`. ``dumps`` writes an AST back out.

Laws
----
- ``parse(dumps(m)) == m`` for every module ``m``.
- A program loaded from QVR and the same program built with the
  combinators have the same ``log_joint``.

Examples
--------
>>> import torch
>>> m = loads('''
... object Item : FinSet 3
... object K : FinSet 2
... program gmm : Item -> Item [effects=[Sample, Score, Marginal]]
...     sample probs : K <- HalfNormal(1.0)
...     sample mu_k : K <- Normal(0.0, 5.0)
...     sample sd_k : K <- HalfNormal(1.0)
...     marginalize z : K <- Categorical(probs)
...         observe y : Item <- Normal(mu_k[z], sd_k[z])
...     return y
... export gmm
... ''')
>>> latents = {"probs": torch.tensor([1.0, 1.0]), "mu_k": torch.tensor([-2.0, 2.0]),
...            "sd_k": torch.tensor([1.0, 1.0])}
>>> round(float(m.morphism.log_joint(None, {"y": torch.tensor([-2.0, 2.0, 0.0])}, latents)), 4)
-14.2624
>>> print(dumps(m.ast).splitlines()[3])
program gmm : Item -> Item [effects=[Sample, Score, Marginal]]
"""

from __future__ import annotations

from quivers.dsl.checker import CheckedModule, check
from quivers.dsl.compiler import compile_module
from quivers.dsl.module import QVRModule, load, loads
from quivers.dsl.parser import parse
from quivers.dsl.printer import dumps

__all__ = ["loads", "load", "parse", "dumps", "check", "compile_module", "QVRModule", "CheckedModule"]
