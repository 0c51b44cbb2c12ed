"""Planning: exact sum-product over the dependency graph for discrete
latents written as plain ``sample`` sites.

The layer above :mod:`quivers.programs` (it reads programs, their sites
and dependency graph, and runs them through the interpreter's public
operations) and below :mod:`quivers.inference` and :mod:`quivers.dsl`
(which build planned programs for ``[marginalize=auto]``):

- :mod:`~quivers.planning.sites` chooses the sites with finitely many
  values and says why the others are sampled;
- :mod:`~quivers.planning.plan` plans plated variable elimination with a
  treewidth-heuristic order, as an inspectable :class:`Plan`;
- :mod:`~quivers.planning.chains` finds chains of sites (an HMM written
  site by site) and writes each as the ``markov`` block a user would, summed
  by the forward algorithm;
- :mod:`~quivers.planning.contract` runs a plan on named values in a
  semiring (``LOG`` for the density, ``MAX_PLUS`` for the most probable
  values);
- :mod:`~quivers.planning.program` gives :func:`auto` and
  :class:`PlannedProgram`: the log joint, the posterior marginals, the MAP
  values and joint posterior draws of the summed sites.

Examples
--------
>>> from quivers.categories import FinSet
>>> from quivers.distributions import Categorical, HalfNormal, Normal
>>> from quivers.programs import Program, observe, sample, var
>>> Item, K = FinSet("Item", 3), FinSet("K", 2)
>>> p = auto(Program("mix", Item, Item, [
...     sample("mu", K, Normal(0.0, 5.0)),
...     sample("w", K, HalfNormal(1.0)),
...     sample("z", Item, Categorical(var("w"))),
...     observe("y", Item, Normal(var("mu")[var("z")], 1.0))]))
>>> p.plan().lowered  # a latent per row that only its row reads: the block a user would write
{'z': 'a marginalize block, one per element of Item'}
"""

from quivers.planning.contract import run_plan
from quivers.planning.plan import Carry, Eliminate, Finish, Plan, PlanError, Scope, make_plan
from quivers.planning.program import DEFAULT_BUDGET, PlannedProgram, auto
from quivers.planning.sites import Choice, choose

__all__ = [
    "auto", "PlannedProgram", "DEFAULT_BUDGET", "Plan", "PlanError", "Scope", "Eliminate", "Carry", "Finish",
    "make_plan", "run_plan", "Choice", "choose",
]
