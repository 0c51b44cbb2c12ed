"""Distribution families, their supports and bijections to unconstrained space."""

from quivers.distributions.bijections import CONSTRAINTS, ConstraintSpec
from quivers.distributions.families import (
    FAMILIES,
    Bernoulli,
    Beta,
    Binomial,
    Categorical,
    Cauchy,
    Dirichlet,
    Exponential,
    Flat,
    HalfFlat,
    ImproperFlat,
    Family,
    FamilySpec,
    Gamma,
    Geometric,
    HalfCauchy,
    HalfNormal,
    InverseGamma,
    Laplace,
    LKJCholesky,
    LogNormal,
    MultivariateNormal,
    NegativeBinomial,
    Normal,
    ParamSpec,
    Poisson,
    StudentT,
    Uniform,
    bind,
    biject,
    constructor,
    family,
    register,
)
from quivers.distributions import catalog as _catalog
from quivers.distributions import pushforward as _pushforward
from quivers.distributions.pushforward import TRANSFORMS, transform

LogitNormal = constructor("LogitNormal")
HalfStudentT = constructor("HalfStudentT")
Logistic = constructor("Logistic")
Weibull = constructor("Weibull")
Kumaraswamy = constructor("Kumaraswamy")
Gumbel = constructor("Gumbel")
VonMises = constructor("VonMises")
Chi2 = constructor("Chi2")
ContinuousBernoulli = constructor("ContinuousBernoulli")
BetaBinomial = constructor("BetaBinomial")
Multinomial = constructor("Multinomial")
DirichletMultinomial = constructor("DirichletMultinomial")
OrderedLogistic = constructor("OrderedLogistic")
ZeroInflatedPoisson = constructor("ZeroInflatedPoisson")
ZeroInflatedNegativeBinomial = constructor("ZeroInflatedNegativeBinomial")
HurdlePoisson = constructor("HurdlePoisson")
HurdleNegativeBinomial = constructor("HurdleNegativeBinomial")
TruncatedNormal = constructor("TruncatedNormal")
Truncated = constructor("Truncated")
Mixture = constructor("Mixture")
PointMass = constructor("PointMass")
Pushforward = constructor("Pushforward")

__all__ = [
    "FAMILIES", "Family", "FamilySpec", "ParamSpec", "family", "bind", "register", "biject", "constructor",
    "Normal", "HalfNormal", "LogNormal", "Exponential", "Gamma", "InverseGamma", "Beta",
    "Dirichlet", "Categorical", "Bernoulli", "Binomial", "Poisson", "NegativeBinomial", "Geometric",
    "StudentT", "Cauchy", "HalfCauchy", "Uniform", "Laplace", "MultivariateNormal",
    "LKJCholesky", "Flat", "HalfFlat", "ImproperFlat", "CONSTRAINTS", "ConstraintSpec", *_catalog.NEW,
    "PointMass", "Pushforward", "TRANSFORMS", "transform",
]
