"""The quivers families as Stan distributions.

:data:`STAN_FAMILIES` maps a quivers family to the Stan distribution that
scores it and the order of its arguments (Stan's ``weibull(shape, scale)``
swaps torch's). Families Stan does not ship are written as user-defined
functions (:data:`STAN_FUNCTIONS`, emitted in the ``functions`` block):
``LogitNormal``, ``Kumaraswamy`` and ``ContinuousBernoulli``. Families made
of families are translated through their parts: a truncation through the
family it truncates (Stan's ``T[low, high]``), a zero-inflated or hurdle
count through its count family, and a ``Mixture`` component by component
(:func:`components`).

Laws
----
- Each user-defined ``_lpdf`` equals the quivers family's ``log_prob``
  (normalizing constants included), one value at a time; ``LogitNormal``
  also has ``_lcdf`` and ``_lccdf``, so that ``T[low, high]`` truncates it.
- ``components(Mixture(w, p_0, ..., p_{K-1}))`` are ``p_0, ..., p_{K-1}``
  with their own parameter names (``loc_1`` is component 1's ``loc``).

Examples
--------
>>> from quivers.distributions import Mixture, Normal, Poisson
>>> STAN_FAMILIES["Weibull"].args
('concentration', 'scale')
>>> [c.name for c in components(Mixture([0.5, 0.5], Normal(0.0, 1.0), Normal(2.0, 1.0)))]
['Normal', 'Normal']
>>> print(STAN_FUNCTIONS["kumaraswamy"])
real kumaraswamy_lpdf(real y, real a, real b) {
  return log(a) + log(b) + (a - 1) * log(y) + (b - 1) * log1m(pow(y, a));
}
"""

from __future__ import annotations

from dataclasses import dataclass

from quivers.distributions.families import Family

__all__ = ["STAN_FAMILIES", "STAN_FUNCTIONS", "StanDist", "components", "stan_family", "stan_name", "truncated_base",
           "ZEROS"]


@dataclass(frozen=True)
class StanDist:
    """A quivers family as a Stan distribution: its name (and the name for
    ``logits``), and its arguments as parameter names or literal code
    (``=0``). ``half``: scored on half the line, so a term inside a sum
    adds ``log(2)``. ``scalar``: a user-defined function of one value,
    called one value at a time."""

    stan: str
    args: tuple[str, ...]
    logit_stan: str | None = None
    half: bool = False
    scalar: bool = False


STAN_FAMILIES: dict[str, StanDist] = {
    "Normal": StanDist("normal", ("loc", "scale")),
    "HalfNormal": StanDist("normal", ("=0", "scale"), half=True),
    "LogNormal": StanDist("lognormal", ("loc", "scale")),
    "Exponential": StanDist("exponential", ("rate",)),
    "Gamma": StanDist("gamma", ("concentration", "rate")),
    "InverseGamma": StanDist("inv_gamma", ("concentration", "rate")),
    "Beta": StanDist("beta", ("concentration1", "concentration0")),
    "StudentT": StanDist("student_t", ("df", "loc", "scale")),
    "Cauchy": StanDist("cauchy", ("loc", "scale")),
    "HalfCauchy": StanDist("cauchy", ("=0", "scale"), half=True),
    "Laplace": StanDist("double_exponential", ("loc", "scale")),
    "Uniform": StanDist("uniform", ("low", "high")),
    "Poisson": StanDist("poisson", ("rate",)),
    "Bernoulli": StanDist("bernoulli", ("probs",), "bernoulli_logit"),
    "Binomial": StanDist("binomial", ("total_count", "probs"), "binomial_logit"),
    "NegativeBinomial": StanDist("neg_binomial", ("total_count", "probs"), "neg_binomial"),
    "Categorical": StanDist("categorical", ("weights",), "categorical_logit"),
    "Dirichlet": StanDist("dirichlet", ("concentration",)),
    "Logistic": StanDist("logistic", ("loc", "scale")),
    "Gumbel": StanDist("gumbel", ("loc", "scale")),
    "Weibull": StanDist("weibull", ("concentration", "scale")),
    "VonMises": StanDist("von_mises", ("loc", "concentration")),
    "Chi2": StanDist("chi_square", ("df",)),
    "HalfStudentT": StanDist("student_t", ("df", "=0", "scale"), half=True),
    "BetaBinomial": StanDist("beta_binomial", ("total_count", "concentration1", "concentration0")),
    "OrderedLogistic": StanDist("ordered_logistic", ("predictor", "cutpoints")),  # Stan counts grades from 1
    # The count is sum(y), read from the data (stan_data checks it is total_count).
    "Multinomial": StanDist("multinomial", ("probs",), "multinomial_logit"),
    "DirichletMultinomial": StanDist("dirichlet_multinomial", ("concentration",)),  # Stan 2.34 or later
    "LKJCholesky": StanDist("lkj_corr_cholesky", ("concentration",)),
    # multi_normal_cholesky or multi_normal_prec by the matrix it is given
    "MultivariateNormal": StanDist("multi_normal", ("loc", "covariance_matrix")),
    # failures before the first success: neg_binomial(1, p / (1 - p))
    "Geometric": StanDist("neg_binomial", ("=1", "probs"), "neg_binomial"),
    "LogitNormal": StanDist("logit_normal", ("loc", "scale"), scalar=True),
    "Kumaraswamy": StanDist("kumaraswamy", ("concentration1", "concentration0"), scalar=True),
    "ContinuousBernoulli": StanDist("continuous_bernoulli", ("probs",), "continuous_bernoulli_logit", scalar=True),
}
"""The families Stan emission translates, by quivers name (and ``Mixture``,
``Truncated``, the zero-inflated and hurdle counts through their parts)."""

STAN_FUNCTIONS: dict[str, str] = {
    "logit_normal": """real logit_normal_lpdf(real y, real mu, real sigma) {
  return normal_lpdf(logit(y) | mu, sigma) - log(y) - log1m(y);
}
real logit_normal_lcdf(real y, real mu, real sigma) {
  return normal_lcdf(logit(y) | mu, sigma);
}
real logit_normal_lccdf(real y, real mu, real sigma) {
  return normal_lccdf(logit(y) | mu, sigma);
}""",
    "kumaraswamy": """real kumaraswamy_lpdf(real y, real a, real b) {
  return log(a) + log(b) + (a - 1) * log(y) + (b - 1) * log1m(pow(y, a));
}""",
    # Its normalizer log(2 atanh(1 - 2p) / (1 - 2p)), by its Taylor series
    # near p = 1/2 where the closed form is 0 / 0 (as torch computes it).
    "continuous_bernoulli": """real continuous_bernoulli_lpdf(real y, real p) {
  real lp = y * log(p) + (1 - y) * log1m(p);
  if (abs(p - 0.5) < 0.001) {
    real d2 = square(p - 0.5);
    return lp + log(2) + (4.0 / 3.0 + 104.0 / 45.0 * d2) * d2;
  }
  return lp + log(abs(log1m(p) - log(p))) - log(abs(1 - 2 * p));
}""",
    # The same law from its logit l = logit(p), finite where inv_logit(l) rounds to 0 or 1.
    "continuous_bernoulli_logit": """real continuous_bernoulli_logit_lpdf(real y, real l) {
  if (abs(l) < 0.004) {
    real d2 = square(inv_logit(l) - 0.5);
    return y * l - log1p_exp(l) + log(2) + (4.0 / 3.0 + 104.0 / 45.0 * d2) * d2;
  }
  return y * l - log1p_exp(l) + log(abs(l)) - log(abs(tanh(l / 2)));
}""",
}
"""Stan's source of the user-defined distributions, by Stan name."""


ZEROS = {
    "ZeroInflatedPoisson": "Poisson", "HurdlePoisson": "Poisson",
    "ZeroInflatedNegativeBinomial": "NegativeBinomial", "HurdleNegativeBinomial": "NegativeBinomial",
}
"""The count families with extra zeros, and the family they add them to."""


def truncated_base(fam: Family) -> Family | None:
    """The family spec a truncation truncates (``Truncated(Normal(...),
    ...)``, ``TruncatedNormal``), or None."""
    if fam.name in ("Truncated", "TruncatedNormal") and fam.spec.parts:
        return fam.spec.parts[0]
    return None


def pushed_base(fam: Family) -> Family | None:
    """The family a ``Pushforward`` pushes forward, with its arguments, or None."""
    t = fam.spec.transform
    if t is None:
        return None
    return Family(fam.spec.parts[0], {k: v for k, v in fam.args.items() if k not in t.params})


def stan_name(fam: Family) -> str:
    """The quivers family whose Stan distribution ``fam`` is written with:
    the family a truncation truncates or a pushforward pushes forward, or
    a zero-inflated or hurdle count's."""
    base = truncated_base(fam)
    if base is None and fam.spec.transform is not None:
        base = fam.spec.parts[0]
    return base.name if base is not None else ZEROS.get(fam.name, fam.name)


def stan_family(fam: Family) -> StanDist:
    """The Stan distribution of ``fam`` (see :func:`stan_name`)."""
    return STAN_FAMILIES[stan_name(fam)]


def components(fam: Family) -> list[Family]:
    """The component families of a ``Mixture``, each with its own
    parameter names and the mixture's arguments for them."""
    out = []
    for k, part in enumerate(fam.spec.parts):
        suffix = f"_{k}"
        out.append(Family(part, {n[: -len(suffix)]: v for n, v in fam.args.items() if n.endswith(suffix)}))
    return out
