"""Programs: the IR of quivers as Python combinators.

Build a program from steps and get a torch module whose ``log_joint`` is the
exact log density with every discrete latent of a ``marginalize`` block
summed out. Programs with an input compose like morphisms (``>>``, ``@``,
:mod:`~quivers.programs.compose`) and, when discrete, have an exact kernel
in any of several semirings (:mod:`~quivers.programs.kernels`).
"""

from quivers.programs.chain import MarkovStep, markov
from quivers.programs.effects import Effect
from quivers.programs.expr import (
    BUILDERS, FUNCTIONS, Expr, apply, call, compare, const, matrix, pair, stack, table, var, vector,
)
from quivers.programs.graph import to_dot
from quivers.programs.arrows import identity, lift, rename
from quivers.programs.program import Program
from quivers.programs.sites import Site
from quivers.programs.steps import (
    DataStep,
    FactorStep,
    IndexMapStep,
    InputStep,
    LetStep,
    MarginalizeStep,
    ObserveStep,
    ReturnStep,
    SampleStep,
    Step,
    data,
    factor,
    index_map,
    let,
    marginalize,
    observe,
    ret,
    sample,
)
from quivers.programs.compose import tensor, then
from quivers.programs.kernels import program_kernel

return_ = ret

__all__ = [
    "Program", "Effect", "Site", "Expr", "var", "const", "call", "compare", "FUNCTIONS",
    "sample", "observe", "marginalize", "markov", "let", "factor", "ret", "return_", "index_map", "data",
    "MarkovStep",
    "Step", "SampleStep", "ObserveStep", "MarginalizeStep", "LetStep", "FactorStep",
    "ReturnStep", "IndexMapStep", "DataStep", "InputStep", "to_dot",
    "apply", "pair", "stack", "table", "vector", "matrix", "BUILDERS", "then", "tensor", "identity", "lift", "rename",
    "program_kernel",
]
