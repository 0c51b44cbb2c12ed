"""Inference: automatic guides, ELBO, SVI, MCMC, predictive, diagnostics."""

from quivers.inference.elbo import ELBO, Trace_ELBO
from quivers.inference.guides import (
    AutoDelta,
    AutoGuide,
    AutoLowRankMultivariateNormal,
    AutoMultivariateNormal,
    AutoNormal,
    AutoNormalGuide,
    GuideDraw,
)
from quivers.inference.flows import AutoFlowGuide, AutoIAFNormal, AutoMAFNormal, AutoNSFNormal
from quivers.inference.laplace import AutoLaplaceApproximation
from quivers.inference.structured import AutoGuideList, AutoStructuredNormal, compose_guides
from quivers.inference.fit import GUIDES, FitResult, fit
from quivers.inference.checking import SBCResult, compare, loo, loo_pit, ppc_pvalue, sbc, waic
from quivers.inference.layout import Layout
from quivers.inference.predictive import DiscretePosterior, Predictive, infer_discrete
from quivers.inference.mcmc import (
    HMC,
    MCMC,
    NUTS,
    DiscreteHMCGibbs,
    init_to_median,
    init_to_uniform,
    init_to_value,
)
from quivers.inference.objectives import CUBO, IWAE, RWS, RenyiELBO, ReweightedWakeSleep
from quivers.inference.program_adaptor import ProgramAdaptor  # also registers NUTS(program)
from quivers.inference.gibbs import GibbsAdaptor  # also registers DiscreteHMCGibbs(program)
from quivers.inference.svi import SVI

__all__ = [
    "ELBO", "Trace_ELBO", "SVI", "Layout", "GuideDraw", "AutoGuide", "AutoNormalGuide", "AutoNormal",
    "AutoDelta", "AutoMultivariateNormal", "AutoLowRankMultivariateNormal",
    "AutoFlowGuide", "AutoIAFNormal", "AutoMAFNormal", "AutoNSFNormal", "AutoLaplaceApproximation",
    "AutoStructuredNormal", "AutoGuideList", "compose_guides",
    "Predictive", "DiscretePosterior", "infer_discrete", "MCMC", "NUTS", "HMC", "ProgramAdaptor",
    "DiscreteHMCGibbs", "GibbsAdaptor", "init_to_median", "init_to_uniform", "init_to_value",
    "fit", "FitResult", "GUIDES", "IWAE", "RenyiELBO", "CUBO", "RWS", "ReweightedWakeSleep",
    "loo", "waic", "compare", "loo_pit", "ppc_pvalue", "sbc", "SBCResult",
]
