"""Distribution families, their supports and bijections to unconstrained space."""

from quivers.distributions.families import (
    FAMILIES,
    Bernoulli,
    Beta,
    Binomial,
    Categorical,
    Cauchy,
    Dirichlet,
    Exponential,
    Family,
    FamilySpec,
    Gamma,
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
    biject,
    family,
    register,
)

__all__ = [
    "FAMILIES", "Family", "FamilySpec", "ParamSpec", "family", "register", "biject",
    "Normal", "HalfNormal", "LogNormal", "Exponential", "Gamma", "InverseGamma", "Beta",
    "Dirichlet", "Categorical", "Bernoulli", "Binomial", "Poisson", "NegativeBinomial",
    "StudentT", "Cauchy", "HalfCauchy", "Uniform", "Laplace", "MultivariateNormal",
    "LKJCholesky",
]
