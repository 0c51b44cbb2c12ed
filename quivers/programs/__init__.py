"""Programs: the IR of quivers as Python combinators.

Build a program from steps and get a torch module whose ``log_joint`` is the
exact log density with every discrete latent of a ``marginalize`` block
summed out.
"""

from quivers.programs.chain import MarkovStep, markov
from quivers.programs.effects import Effect
from quivers.programs.expr import FUNCTIONS, Expr, call, const, var
from quivers.programs.graph import to_dot
from quivers.programs.program import Program
from quivers.programs.sites import Site
from quivers.programs.steps import (
    FactorStep,
    IndexMapStep,
    LetStep,
    MarginalizeStep,
    ObserveStep,
    ReturnStep,
    SampleStep,
    Step,
    factor,
    index_map,
    let,
    marginalize,
    observe,
    ret,
    sample,
)

return_ = ret

__all__ = [
    "Program", "Effect", "Site", "Expr", "var", "const", "call", "FUNCTIONS",
    "sample", "observe", "marginalize", "markov", "let", "factor", "ret", "return_", "index_map",
    "MarkovStep",
    "Step", "SampleStep", "ObserveStep", "MarginalizeStep", "LetStep", "FactorStep",
    "ReturnStep", "IndexMapStep", "to_dot",
]
