"""The families of quivers.distributions.catalog against scipy (or, where
scipy has no such family, a closed form written here in float64): log
densities, normalization by enumeration, sampled moments, binding errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate, special, stats

from quivers.distributions import FAMILIES, family
from quivers.distributions.catalog import NEW, TRUNCATABLE
from quivers.errors import InvalidValueError, QuiversError, QuiversTypeError, ShapeError, UnknownNameError

F64 = torch.float64


def t(x) -> torch.Tensor:
    return torch.as_tensor(x, dtype=F64)


def dist(fam):
    """The torch distribution of a family bound to constants, in float64."""
    return fam.build({k: t(v) for k, v in fam.args.items()})


def _kumaraswamy(x, a, b):
    return np.log(a) + np.log(b) + (a - 1) * np.log(x) + (b - 1) * np.log1p(-x**a)


def _continuous_bernoulli(x, lam):
    c = 2.0 if lam == 0.5 else 2 * np.arctanh(1 - 2 * lam) / (1 - 2 * lam)
    return x * np.log(lam) + (1 - x) * np.log1p(-lam) + np.log(c)


def _ordered_logistic(k, eta, cuts):
    c = np.concatenate([[-np.inf], cuts, [np.inf]])
    return np.log(special.expit(eta - c[k]) - special.expit(eta - c[k + 1]))


def _mixture(x):
    w = np.array([0.2, 0.8])
    parts = [stats.norm(-1.0, 0.5).logpdf(x), stats.logistic(2.0, 1.5).logpdf(x)]
    return special.logsumexp(np.stack(parts, -1) + np.log(w), -1)


def _nb(r, p):  # torch's NegativeBinomial(r, probs=p) counts successes of probability p
    return stats.nbinom(r, 1 - p)


def _zi(base, gate, k):
    return np.where(k == 0, np.log(gate + (1 - gate) * base.pmf(0)), np.log1p(-gate) + base.logpmf(k))


def _hurdle(base, gate, k):
    return np.where(k == 0, np.log(gate), np.log1p(-gate) + base.logpmf(k) - np.log1p(-base.pmf(0)))


X01 = np.array([0.05, 0.3, 0.5, 0.9])
XPOS = np.array([0.2, 1.0, 2.5, 7.0])
XREAL = np.array([-3.0, -0.4, 0.0, 1.7, 5.0])
COUNTS = np.arange(0, 12)

# name -> (family, values, reference log density of the values)
CONTINUOUS = {
    "LogitNormal": (family("LogitNormal", 0.4, 1.3), X01,
                    lambda x: stats.norm(0.4, 1.3).logpdf(special.logit(x)) - np.log(x) - np.log1p(-x)),
    "HalfStudentT": (family("HalfStudentT", 3.0, 2.0), XPOS, lambda x: np.log(2) + stats.t(3.0, 0, 2.0).logpdf(x)),
    "Logistic": (family("Logistic", 1.0, 2.0), XREAL, stats.logistic(1.0, 2.0).logpdf),
    "Weibull": (family("Weibull", 2.0, 1.5), XPOS, stats.weibull_min(1.5, scale=2.0).logpdf),
    "Kumaraswamy": (family("Kumaraswamy", 2.0, 3.0), X01, lambda x: _kumaraswamy(x, 2.0, 3.0)),
    "Gumbel": (family("Gumbel", 0.5, 2.0), XREAL, stats.gumbel_r(0.5, 2.0).logpdf),
    "VonMises": (family("VonMises", 0.5, 2.0), np.array([-3.0, -1.0, 0.0, 0.5, 3.0]), stats.vonmises(2.0, 0.5).logpdf),
    "Chi2": (family("Chi2", 3.0), XPOS, stats.chi2(3.0).logpdf),
    "ContinuousBernoulli": (family("ContinuousBernoulli", 0.3), X01, lambda x: _continuous_bernoulli(x, 0.3)),
    "TruncatedNormal": (family("TruncatedNormal", 1.0, 2.0, -1.0, 4.0), XREAL[1:4],
                        stats.truncnorm(-1.0, 1.5, 1.0, 2.0).logpdf),
    "TruncatedNormal-tail": (family("TruncatedNormal", 0.0, 1.0, 8.0, 9.0), np.array([8.0, 8.1, 8.5]),
                             stats.truncnorm(8.0, 9.0).logpdf),
    "Truncated-Gamma": (family("Truncated", family("Gamma", 2.0, 1.0), 0.5, 4.0), np.array([0.6, 1.0, 3.9]),
                        lambda x: stats.gamma(2.0).logpdf(x) - np.log(stats.gamma(2.0).cdf(4.0) - stats.gamma(2.0).cdf(0.5))),
    "Truncated-Exponential-high": (family("Truncated", family("Exponential", 2.0), high=1.0), np.array([0.1, 0.9]),
                                   lambda x: stats.expon(scale=0.5).logpdf(x) - np.log(stats.expon(scale=0.5).cdf(1.0))),
    "Mixture": (family("Mixture", [1.0, 4.0], family("Normal", -1.0, 0.5), family("Logistic", 2.0, 1.5)), XREAL, _mixture),
}

DISCRETE = {
    "BetaBinomial": (family("BetaBinomial", 10, 2.0, 3.0), COUNTS[:11], stats.betabinom(10, 2.0, 3.0).logpmf),
    "OrderedLogistic": (family("OrderedLogistic", 0.3, [-1.0, 0.5, 2.0]), np.arange(4),
                        lambda k: _ordered_logistic(k, 0.3, np.array([-1.0, 0.5, 2.0]))),
    "ZeroInflatedPoisson": (family("ZeroInflatedPoisson", 0.3, 2.5), COUNTS, lambda k: _zi(stats.poisson(2.5), 0.3, k)),
    "ZeroInflatedNegativeBinomial": (family("ZeroInflatedNegativeBinomial", 0.2, 3.0, 0.6), COUNTS,
                                     lambda k: _zi(_nb(3.0, 0.6), 0.2, k)),
    "HurdlePoisson": (family("HurdlePoisson", 0.4, 1.5), COUNTS, lambda k: _hurdle(stats.poisson(1.5), 0.4, k)),
    "HurdleNegativeBinomial": (family("HurdleNegativeBinomial", 0.4, 2.0, logits=0.5), COUNTS,
                               lambda k: _hurdle(_nb(2.0, special.expit(0.5)), 0.4, k)),
    "Mixture-counts": (family("Mixture", [1.0, 1.0], family("Poisson", 1.0), family("Poisson", 6.0)), COUNTS,
                       lambda k: np.log(0.5 * stats.poisson(1.0).pmf(k) + 0.5 * stats.poisson(6.0).pmf(k))),
}

MULTIVARIATE = {
    "Multinomial": (family("Multinomial", 5, [1.0, 2.0, 2.0]), np.array([[1, 2, 2], [5, 0, 0], [0, 3, 2]]),
                    lambda x: stats.multinomial(5, [0.2, 0.4, 0.4]).logpmf(x)),
    "Multinomial-logits": (family("Multinomial", 4, logits=[0.0, 1.0]), np.array([[1, 3], [4, 0]]),
                           lambda x: stats.multinomial(4, special.softmax([0.0, 1.0])).logpmf(x)),
    "DirichletMultinomial": (family("DirichletMultinomial", 6, [0.5, 2.0, 1.0]), np.array([[1, 3, 2], [6, 0, 0]]),
                             lambda x: stats.dirichlet_multinomial([0.5, 2.0, 1.0], 6).logpmf(x)),
}

DENSITIES = {**CONTINUOUS, **DISCRETE, **MULTIVARIATE}


def test_every_new_family_is_registered_and_covered_here():
    assert set(NEW) <= set(FAMILIES)
    covered = {k.split("-")[0] for k in DENSITIES}
    assert set(NEW) - covered == set()


@pytest.mark.parametrize("case", sorted(DENSITIES))
def test_log_density_matches_the_reference(case):
    fam, values, reference = DENSITIES[case]
    got = dist(fam).log_prob(t(values))
    np.testing.assert_allclose(got.numpy(), reference(values), rtol=1e-7, atol=1e-8)


@pytest.mark.parametrize("case", ["BetaBinomial", "OrderedLogistic", "ZeroInflatedPoisson",
                                  "ZeroInflatedNegativeBinomial", "HurdlePoisson", "HurdleNegativeBinomial"])
def test_count_families_sum_to_one_and_give_minus_infinity_outside(case):
    fam = DISCRETE[case][0]
    d = dist(fam)
    total = torch.logsumexp(d.log_prob(torch.arange(0, 400, dtype=F64)), 0)
    torch.testing.assert_close(total, t(0.0), atol=1e-10, rtol=0)
    assert d.log_prob(t(-1.0)) == -math.inf


def test_multinomial_counts_that_do_not_sum_to_the_total_are_impossible():
    assert dist(family("Multinomial", 5, [1.0, 1.0])).log_prob(t([2.0, 2.0])) == -math.inf
    assert dist(family("DirichletMultinomial", 5, [1.0, 1.0])).log_prob(t([6.0, -1.0])) == -math.inf


@pytest.mark.parametrize("case", ["LogitNormal", "Kumaraswamy", "ContinuousBernoulli", "TruncatedNormal", "Mixture"])
def test_continuous_densities_integrate_to_one(case):
    fam = CONTINUOUS[case][0]
    d = dist(fam)
    lo, hi = {"TruncatedNormal": (-1.0, 4.0), "Mixture": (-40.0, 60.0)}.get(case, (0.0, 1.0))
    mass, _ = integrate.quad(lambda x: float(d.log_prob(t(x)).exp()), lo, hi, limit=200)
    assert mass == pytest.approx(1.0, abs=1e-6)


CB_LOGITS = [0.0, 1e-4, -1e-4, 1.0, 10.0, 30.0, -30.0, 100.0, -100.0]


def _cb_reference(logit: float, x: float) -> float:
    """The continuous Bernoulli log density from its logit, in 50 digits:
    ``e x - log((exp(e) - 1) / e)`` (0 at ``e = 0``)."""
    import mpmath

    with mpmath.workdps(50):
        e = mpmath.mpf(logit)
        return 0.0 if e == 0 else float(e * mpmath.mpf(x) - mpmath.log(mpmath.expm1(e) / e))


@pytest.mark.parametrize("logit", CB_LOGITS)
def test_continuous_bernoulli_is_exact_from_its_logit(logit):
    """torch's normalizer goes through the probability and is off by 2e-6
    (relative) at logit 30 and by 1 at 100; ours follows the logit."""
    d = dist(family("ContinuousBernoulli", logits=logit))
    for x in (0.0, 0.3, 0.999, 1.0):
        want = _cb_reference(logit, x)
        assert float(d.log_prob(t(x))) == pytest.approx(want, rel=1e-13, abs=1e-15), x
    if abs(logit) <= 10:  # the same law from its probability, while 1 - p keeps its digits
        p = float(special.expit(logit))
        q = dist(family("ContinuousBernoulli", p))
        assert float(q.log_prob(t(0.3))) == pytest.approx(_cb_reference(logit, 0.3), rel=1e-9)


@pytest.mark.parametrize("logit", CB_LOGITS)
def test_continuous_bernoulli_integrates_to_one_and_samples_its_moments(logit):
    d = dist(family("ContinuousBernoulli", logits=logit))
    # the mass sits within a few 1 / |logit| of one end: tell quad where
    edge = [] if abs(logit) < 1 else [1 / abs(logit), 10 / abs(logit)] if logit < 0 else [1 - 10 / abs(logit), 1 - 1 / abs(logit)]
    mass, _ = integrate.quad(lambda x: math.exp(float(d.log_prob(t(x)))), 0.0, 1.0, points=edge or None, limit=200)
    assert mass == pytest.approx(1.0, abs=1e-9)
    m = integrate.quad(lambda x: x * math.exp(float(d.log_prob(t(x)))), 0.0, 1.0, points=edge or None, limit=200)[0]
    v = integrate.quad(lambda x: (x - m) ** 2 * math.exp(float(d.log_prob(t(x)))), 0.0, 1.0, points=edge or None,
                       limit=200)[0]
    assert float(d.mean) == pytest.approx(m, rel=1e-9) and float(d.variance) == pytest.approx(v, rel=1e-7)
    torch.manual_seed(1)
    x = d.sample((40_000,))
    assert bool(((x >= 0) & (x <= 1)).all())
    assert abs(float(x.mean()) - m) < 5 * math.sqrt(v / 40_000)


def test_continuous_bernoulli_has_a_finite_gradient_at_logit_zero():
    """d/de (e x - A(e)) = x - A'(e), and A'(0) = 1/2 (the series, not 0 / 0)."""
    e = t(0.0).requires_grad_(True)
    d = family("ContinuousBernoulli", logits=0.0).build({"logits": e})
    (g,) = torch.autograd.grad(d.log_prob(t(0.8)), e)
    assert float(g) == pytest.approx(0.3, abs=1e-15)


def _moments(case):
    """(mean, variance) of each family, from scipy or numerical integration."""
    if case == "LogitNormal":
        f = lambda x: stats.norm(0.4, 1.3).pdf(special.logit(x)) / (x * (1 - x))  # noqa: E731
        m = integrate.quad(lambda x: x * f(x), 0, 1)[0]
        return m, integrate.quad(lambda x: (x - m) ** 2 * f(x), 0, 1)[0]
    if case == "Kumaraswamy":
        m1 = 3.0 * special.beta(1 + 1 / 2.0, 3.0)
        m2 = 3.0 * special.beta(1 + 2 / 2.0, 3.0)
        return m1, m2 - m1**2
    if case == "ContinuousBernoulli":
        f = lambda x: math.exp(_continuous_bernoulli(x, 0.3))  # noqa: E731
        m = integrate.quad(lambda x: x * f(x), 0, 1)[0]
        return m, integrate.quad(lambda x: (x - m) ** 2 * f(x), 0, 1)[0]
    if case == "VonMises":  # torch draws angles in [-pi, pi): the linear moments there
        f = stats.vonmises(2.0, 0.5).pdf
        m = integrate.quad(lambda x: x * f(x), -math.pi, math.pi)[0]
        return m, integrate.quad(lambda x: (x - m) ** 2 * f(x), -math.pi, math.pi)[0]
    if case == "Mixture":
        w = [0.2, 0.8]
        parts = [stats.norm(-1.0, 0.5), stats.logistic(2.0, 1.5)]
        m = sum(wi * p.mean() for wi, p in zip(w, parts))
        return m, sum(wi * (p.var() + p.mean() ** 2) for wi, p in zip(w, parts)) - m**2
    ref = {
        "Logistic": stats.logistic(1.0, 2.0),
        "Weibull": stats.weibull_min(1.5, scale=2.0),
        "Gumbel": stats.gumbel_r(0.5, 2.0),
        "Chi2": stats.chi2(3.0),
        "TruncatedNormal": stats.truncnorm(-1.0, 1.5, 1.0, 2.0),
        "BetaBinomial": stats.betabinom(10, 2.0, 3.0),
    }.get(case)
    if case == "HalfStudentT":  # |t| with df 5 (finite variance): E|T| and E T^2 = s^2 df / (df - 2)
        s, df = 2.0, 5.0
        m = 2 * s * math.sqrt(df / math.pi) * math.exp(special.gammaln((df + 1) / 2) - special.gammaln(df / 2)) / (df - 1)
        return m, s**2 * df / (df - 2) - m**2
    if case == "Truncated-Gamma":
        g = stats.gamma(2.0)
        z = g.cdf(4.0) - g.cdf(0.5)
        m = integrate.quad(lambda x: x * g.pdf(x) / z, 0.5, 4.0)[0]
        return m, integrate.quad(lambda x: (x - m) ** 2 * g.pdf(x) / z, 0.5, 4.0)[0]
    if ref is not None:
        return ref.mean(), ref.var()
    fam, values, reference = DISCRETE[case]
    k = np.arange(0, 4 if case == "OrderedLogistic" else 400)
    p = np.exp(reference(k))
    m = (k * p).sum()
    return m, ((k - m) ** 2 * p).sum()


MOMENT_CASES = {
    **{k: CONTINUOUS[k][0] for k in ["LogitNormal", "Logistic", "Weibull", "Kumaraswamy", "Gumbel", "VonMises", "Chi2",
                                      "ContinuousBernoulli", "TruncatedNormal", "Truncated-Gamma", "Mixture"]},
    "HalfStudentT": family("HalfStudentT", 5.0, 2.0),
    **{k: DISCRETE[k][0] for k in ["BetaBinomial", "ZeroInflatedPoisson", "ZeroInflatedNegativeBinomial",
                                    "HurdlePoisson", "HurdleNegativeBinomial", "OrderedLogistic"]},
}


@pytest.mark.parametrize("case", sorted(MOMENT_CASES))
def test_sampled_moments_match(case):
    torch.manual_seed(0)
    d = dist(MOMENT_CASES[case])
    n = 40_000
    x = d.sample((n,)).to(F64)
    mean, var = _moments(case)
    assert bool(torch.isfinite(d.log_prob(x)).all()), "a draw outside the support"
    se = math.sqrt(var / n)
    assert abs(float(x.mean()) - mean) < 5 * se, (float(x.mean()), mean)
    assert float(x.var()) == pytest.approx(var, rel=0.06)


def test_multinomial_draws_keep_their_total_and_mean():
    torch.manual_seed(0)
    for fam in (family("Multinomial", torch.tensor([3, 7]), [1.0, 2.0, 2.0]),
                family("DirichletMultinomial", 6, [0.5, 2.0, 1.0])):
        d = dist(fam)
        x = d.sample((20_000,))
        torch.testing.assert_close(x.sum(-1), d.total_count.expand(x.shape[:-1]))
        torch.testing.assert_close(x.mean(0), d.mean, atol=0.06, rtol=0)


def test_truncation_keeps_draws_inside_far_in_the_tail_and_for_every_truncatable_family():
    torch.manual_seed(0)
    x = dist(family("TruncatedNormal", 0.0, 1.0, 3.0, 3.5)).sample((2000,))
    assert float(x.min()) >= 3.0 and float(x.max()) <= 3.5
    args = {"Normal": (0.0, 1.0), "HalfNormal": (1.0,), "LogNormal": (0.0, 1.0), "Exponential": (1.0,),
            "Gamma": (2.0, 1.0), "Cauchy": (0.0, 1.0), "HalfCauchy": (1.0,), "Laplace": (0.0, 1.0),
            "Weibull": (1.0, 2.0), "Gumbel": (0.0, 1.0), "Logistic": (0.0, 1.0), "LogitNormal": (0.0, 1.0)}
    assert set(args) == TRUNCATABLE
    for name, a in args.items():
        lo, hi = (0.2, 0.7) if name == "LogitNormal" else (0.5, 2.0)
        d = dist(family("Truncated", family(name, *a), lo, hi))
        x = d.sample((500,))
        assert float(x.min()) >= lo and float(x.max()) <= hi, name
        mass, _ = integrate.quad(lambda v: float(d.log_prob(t(v)).exp()), lo, hi)
        assert mass == pytest.approx(1.0, abs=1e-6), name


def test_gradients_of_a_truncation_with_one_open_side_are_finite():
    loc, scale = t(0.3).requires_grad_(), t(1.2).requires_grad_()
    fam = family("Truncated", family("Normal", 0.0, 1.0), low=0.0)
    lp = fam.build({"loc": loc, "scale": scale, "low": t(0.0)}).log_prob(t(0.5))
    lp.backward()
    assert bool(torch.isfinite(loc.grad)) and bool(torch.isfinite(scale.grad))


def test_zero_probability_gates_are_exact():
    d = dist(family("ZeroInflatedPoisson", 0.0, 2.0))
    torch.testing.assert_close(d.log_prob(t([0.0, 3.0])), torch.distributions.Poisson(t(2.0)).log_prob(t([0.0, 3.0])))
    d = dist(family("HurdlePoisson", 1.0, 2.0))
    assert d.log_prob(t(0.0)) == 0.0 and d.log_prob(t(2.0)) == -math.inf


# ---------------------------------------------------------------- binding errors


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: family("Weibull", 1.0), QuiversTypeError, r"`Weibull` is missing parameter `concentration`"),
        (lambda: family("Logistic", 0.0, 1.0, 2.0), QuiversTypeError, r"`Logistic` takes at most 2 positional"),
        (lambda: family("Logistic", 0.0, scal=1.0), UnknownNameError, r"no parameter `scal`.*did you mean `scale`\?"),
        (lambda: family("ZeroInflatedPoisson", 1.5, 2.0), InvalidValueError, r"`ZeroInflatedPoisson` parameter `zero_prob`"),
        (lambda: family("HalfStudentT", -1.0, 1.0), InvalidValueError, r"`HalfStudentT` parameter `df`"),
        (lambda: family("BetaBinomial", 2.5, 1.0, 1.0), InvalidValueError, r"`BetaBinomial` parameter `total_count`"),
        (lambda: family("OrderedLogistic", 0.0, [1.0, -1.0]), InvalidValueError, r"`cutpoints` .* must increase"),
        (lambda: family("TruncatedNormal", 0.0, 1.0, 2.0, 1.0), InvalidValueError, r"`TruncatedNormal` needs `low` < `high`"),
        (lambda: family("Truncated", family("Normal", 0.0, 1.0), lo=0.0), UnknownNameError, r"did you mean `low`\?"),
        (lambda: family("Truncated", 0.0, 1.0), QuiversTypeError, r"`Truncated` takes a family first"),
        (lambda: family("Truncated", family("Normal", 0.0, 1.0)), QuiversTypeError, r"needs `low`, `high` or both"),
        (lambda: family("Truncated", family("Poisson", 1.0), low=1.0), QuiversTypeError, r"continuous family of scalars"),
        (lambda: family("Truncated", family("StudentT", 3.0), low=0.0), QuiversTypeError, r"`StudentT` has none"),
        (lambda: family("Truncated", family("Normal", 0.0, 1.0), 1.0, 0.0), InvalidValueError, r"`Truncated` needs `low` < `high`"),
        (lambda: family("Mixture", [1.0, 1.0]), QuiversTypeError, r"needs at least one component"),
        (lambda: family("Mixture", family("Normal", 0.0, 1.0)), QuiversTypeError, r"needs exactly one of `weights`, `logits`"),
        (lambda: family("Mixture", [1.0], family("Normal", 0.0, 1.0), weigths=[1.0]), UnknownNameError, r"did you mean `weights`\?"),
        (lambda: family("Mixture", [1.0, 1.0], family("Normal", 0.0, 1.0), family("Poisson", 1.0)), QuiversTypeError,
         r"all be discrete or all continuous"),
        (lambda: family("Mixture", [1.0, 1.0], family("Normal", 0.0, 1.0), family("Gamma", 1.0, 1.0)), QuiversTypeError,
         r"must share a support"),
        (lambda: family("Normal", family("Normal", 0.0, 1.0), 1.0), QuiversTypeError, r"`Normal` takes numbers or expressions"),
    ],
)
def test_bad_parameters_are_quivers_errors_that_name_them(call, error, message):
    with pytest.raises(error, match=message) as info:
        call()
    assert isinstance(info.value, QuiversError)


def test_a_mixture_with_the_wrong_number_of_weights_is_a_shape_error():
    fam = family("Mixture", [1.0, 1.0, 1.0], family("Normal", 0.0, 1.0), family("Normal", 1.0, 1.0))
    with pytest.raises(ShapeError, match=r"`Mixture` has 2 components but its weights have 3 entries"):
        dist(fam)


# ---------------------------------------------------------------- laws, property-tested

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

positive = st.floats(0.05, 20.0)
real = st.floats(-30.0, 30.0)


@given(real, real, st.lists(st.floats(0.01, 10.0), max_size=4))
def test_ordered_logistic_is_a_distribution_even_far_from_its_cutpoints(eta, first, gaps):
    cuts = list(np.cumsum([first, *gaps]))
    lp = dist(family("OrderedLogistic", eta, cuts)).log_prob(t(np.arange(len(cuts) + 1)))
    assert not bool(torch.isnan(lp).any())
    torch.testing.assert_close(torch.logsumexp(lp, 0), t(0.0), atol=1e-9, rtol=0)


@given(st.floats(-5.0, 5.0), positive, st.floats(-6.0, 6.0), st.floats(0.05, 6.0))
@settings(max_examples=40)
def test_truncated_normal_is_scipys_wherever_its_bounds_lie(loc, scale, low, width):
    """Bounds hundreds of scales into a tail included: the normalizer is
    computed in the tail the bounds lie in."""
    low, high = float(np.float32(low)), float(np.float32(low + width))  # as the family stores them
    loc, scale = float(np.float32(loc)), float(np.float32(scale))
    d = dist(family("TruncatedNormal", loc, scale, low, high))
    x = np.linspace(low, high, 7)
    ref = stats.truncnorm((low - loc) / scale, (high - loc) / scale, loc, scale).logpdf(x)
    np.testing.assert_allclose(d.log_prob(t(x)).numpy(), ref, rtol=1e-6, atol=1e-6)


@given(st.floats(0.0, 1.0), st.floats(0.01, 30.0))
def test_zero_inflation_and_hurdle_are_distributions_that_agree_with_their_base(gate, rate):
    k = t(np.arange(0, 200))
    base = torch.distributions.Poisson(t(rate)).log_prob(k)
    zi = dist(family("ZeroInflatedPoisson", gate, rate)).log_prob(k)
    hurdle = dist(family("HurdlePoisson", gate, rate)).log_prob(k)
    for lp in (zi, hurdle):
        torch.testing.assert_close(torch.logsumexp(lp, 0), t(0.0), atol=1e-8, rtol=0)
    # above zero both are the base, scaled: by 1 - gate, and by (1 - gate) / P(k > 0)
    if gate < 1.0:
        torch.testing.assert_close(zi[1:] - base[1:], torch.full_like(base[1:], math.log1p(-gate)))
        torch.testing.assert_close(hurdle[1:] - zi[1:], torch.full_like(base[1:], -math.log(-math.expm1(-rate))))


@given(st.lists(st.tuples(real, positive, positive), min_size=1, max_size=4), st.randoms())
def test_a_mixture_is_unchanged_by_the_order_of_its_components(parts, rnd):
    comps = [(family("Normal", m, s), w) for m, s, w in parts]
    order = list(range(len(comps)))
    rnd.shuffle(order)
    x = t(np.linspace(-40, 40, 9))
    one = dist(family("Mixture", [w for _, w in comps], *(c for c, _ in comps))).log_prob(x)
    two = dist(family("Mixture", [comps[i][1] for i in order], *(comps[i][0] for i in order))).log_prob(x)
    torch.testing.assert_close(one, two)
    if len(comps) == 1:
        torch.testing.assert_close(one, dist(comps[0][0]).log_prob(x))
