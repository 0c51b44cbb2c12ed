"""The family registry: binding, validation, supports and bijections."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch.distributions import constraints

import quivers.distributions as qd
from quivers.distributions import FAMILIES, biject, family
from quivers.errors import InvalidValueError, QuiversError, QuiversTypeError, UnknownNameError

EYE = torch.eye(2)

# name -> (positional args, keyword args, the torch class it builds)
VALID = {
    "Normal": ((0.0, 2.0), {}, torch.distributions.Normal),
    "HalfNormal": ((1.5,), {}, torch.distributions.HalfNormal),
    "LogNormal": ((0.0, 0.5), {}, torch.distributions.LogNormal),
    "Exponential": ((2.0,), {}, torch.distributions.Exponential),
    "Gamma": ((2.0, 3.0), {}, torch.distributions.Gamma),
    "InverseGamma": ((2.0, 3.0), {}, torch.distributions.InverseGamma),
    "Beta": ((2.0, 3.0), {}, torch.distributions.Beta),
    "Dirichlet": (([1.0, 2.0, 3.0],), {}, torch.distributions.Dirichlet),
    "Categorical": (([1.0, 3.0],), {}, torch.distributions.Categorical),
    "Bernoulli": ((0.3,), {}, torch.distributions.Bernoulli),
    "Binomial": ((10, 0.3), {}, torch.distributions.Binomial),
    "Poisson": ((4.0,), {}, torch.distributions.Poisson),
    "NegativeBinomial": ((3.0, 0.4), {}, torch.distributions.NegativeBinomial),
    "StudentT": ((3.0, 1.0, 2.0), {}, torch.distributions.StudentT),
    "Cauchy": ((0.0, 1.0), {}, torch.distributions.Cauchy),
    "HalfCauchy": ((1.0,), {}, torch.distributions.HalfCauchy),
    "Uniform": ((-1.0, 2.0), {}, torch.distributions.Uniform),
    "Laplace": ((0.0, 1.0), {}, torch.distributions.Laplace),
    "MultivariateNormal": ((torch.zeros(2), EYE), {}, torch.distributions.MultivariateNormal),
    "LKJCholesky": ((2.0,), {}, torch.distributions.LKJCholesky),
}


def built(fam):
    params = {k: torch.as_tensor(v, dtype=torch.get_default_dtype()) for k, v in fam.args.items()}
    if fam.name == "LKJCholesky":
        params["dim"] = torch.tensor(3)
    return fam.build(params)


def test_every_family_of_the_issue_is_registered_and_exported():
    assert set(VALID) <= set(FAMILIES)
    for name in VALID:
        assert getattr(qd, name)(*VALID[name][0], **VALID[name][1]).name == name


@pytest.mark.parametrize("name", sorted(VALID))
def test_each_family_builds_its_torch_distribution(name):
    args, kwargs, cls = VALID[name]
    dist = built(family(name, *args, **kwargs))
    assert isinstance(dist, cls)
    x = dist.sample()
    assert bool(torch.isfinite(dist.log_prob(x)).all())
    assert bool(dist.support.check(x).all())


@pytest.mark.parametrize("name", sorted(VALID))
def test_positional_and_keyword_arguments_bind_alike(name):
    args, _, _ = VALID[name]
    spec = FAMILIES[name]
    positional = [p.name for p in spec.params] + [g[0].name for g in spec.alternatives]
    by_position = family(name, *args)
    by_keyword = family(name, **dict(zip(positional, args)))
    assert list(by_position.args) == list(by_keyword.args)
    for key in by_position.args:
        torch.testing.assert_close(
            torch.as_tensor(by_position.args[key]), torch.as_tensor(by_keyword.args[key])
        )


def test_defaults_fill_trailing_parameters():
    assert dict(family("StudentT", 3.0).args) == {"df": 3.0, "loc": 0.0, "scale": 1.0}
    assert dict(family("LKJCholesky").args) == {"concentration": 1.0}


def test_missing_parameter_names_the_family_and_the_parameter():
    with pytest.raises(QuiversTypeError, match=r"`Normal` is missing parameter `scale`"):
        family("Normal", 0.0)


def test_extra_positional_arguments_are_an_error():
    with pytest.raises(QuiversTypeError, match=r"`Normal` takes at most 2 positional arguments \(loc, scale\), got 3"):
        family("Normal", 0.0, 1.0, 2.0)


def test_a_parameter_given_twice_is_an_error():
    with pytest.raises(QuiversTypeError, match=r"`Normal` got two values for parameter `loc`"):
        family("Normal", 0.0, 1.0, loc=2.0)


def test_unknown_parameter_lists_the_parameters_and_suggests():
    with pytest.raises(UnknownNameError, match=r"`Normal` has no parameter `sd`; it takes `loc`, `scale`"):
        family("Normal", 0.0, sd=1.0)
    with pytest.raises(UnknownNameError, match=r"did you mean `scale`\?"):
        family("Normal", 0.0, scal=1.0)


def test_unknown_family_suggests_the_closest():
    with pytest.raises(UnknownNameError, match=r"unknown distribution family `Normall`; did you mean `Normal`\?"):
        family("Normall", 0.0, 1.0)
    with pytest.raises(QuiversTypeError, match="a family name must be a string"):
        family(3)


def test_alternatives_need_exactly_one():
    with pytest.raises(QuiversTypeError, match=r"`Categorical` needs exactly one of `weights`, `logits`, got 2"):
        family("Categorical", weights=[1.0, 1.0], logits=[0.0, 0.0])
    with pytest.raises(QuiversTypeError, match=r"needs exactly one of `probs`, `logits`, got 0"):
        family("Bernoulli")
    with pytest.raises(QuiversTypeError, match=r"two values for parameter `weights` \(`probs` is another name of"):
        family("Categorical", probs=[0.5, 0.5], weights=[1.0, 1.0])
    with pytest.raises(QuiversTypeError, match=r"needs exactly one of `weights`, `logits`, got 2"):
        family("Categorical", probs=[0.5, 0.5], logits=[0.0, 0.0])


def test_categorical_probs_is_its_weights():
    """Pyro's and NumPyro's ``Categorical(probs=...)`` is the same law as ``weights``."""
    probs = torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64)
    fam = family("Categorical", probs=probs)
    assert list(fam.args) == ["weights"]
    x = torch.arange(3)
    torch.testing.assert_close(fam.build({"weights": probs}).log_prob(x), probs.log())


# (family, positional args with one bad value, the bad parameter)
INVALID = [
    ("Normal", (0.0, -1.0), "scale"),
    ("Normal", (0.0, 0.0), "scale"),
    ("HalfNormal", (-1.0,), "scale"),
    ("LogNormal", (0.0, -2.0), "scale"),
    ("Exponential", (-2.0,), "rate"),
    ("Gamma", (-2.0, 1.0), "concentration"),
    ("Gamma", (2.0, 0.0), "rate"),
    ("InverseGamma", (2.0, -1.0), "rate"),
    ("Beta", (0.0, 1.0), "concentration1"),
    ("Dirichlet", ([1.0, -1.0],), "concentration"),
    ("Dirichlet", (-1.0,), "concentration"),
    ("Bernoulli", (1.5,), "probs"),
    ("Binomial", (2.5, 0.5), "total_count"),
    ("Binomial", (-1, 0.5), "total_count"),
    ("Poisson", (-1.0,), "rate"),
    ("NegativeBinomial", (-3.0, 0.5), "total_count"),
    ("StudentT", (-3.0,), "df"),
    ("Cauchy", (0.0, -1.0), "scale"),
    ("HalfCauchy", (-1.0,), "scale"),
    ("Laplace", (0.0, -1.0), "scale"),
    ("MultivariateNormal", (torch.zeros(2), -EYE), "covariance_matrix"),
    ("LKJCholesky", (-2.0,), "concentration"),
]


@pytest.mark.parametrize("name,args,param", INVALID)
def test_constants_outside_their_constraint_name_family_and_parameter(name, args, param):
    with pytest.raises(InvalidValueError, match=rf"`{name}` parameter `{param}`"):
        family(name, *args)


@pytest.mark.parametrize("name", sorted(VALID))
def test_nan_constants_are_rejected_for_every_family(name):
    args, _, _ = VALID[name]
    bad = list(args)
    bad[0] = torch.full_like(torch.as_tensor(bad[0], dtype=torch.float64), math.nan)
    with pytest.raises(InvalidValueError, match=rf"`{name}` parameter `\w+` = .*(not finite|constraint)"):
        family(name, *bad)


def test_odd_argument_types_are_type_errors_not_torch_errors():
    with pytest.raises(QuiversTypeError, match=r"`Normal` parameter `loc` must be a number, a tensor or an expression, got NoneType"):
        family("Normal", None, 1.0)
    with pytest.raises(QuiversTypeError, match=r"`Normal` parameter `loc` must be a number, got the boolean True"):
        family("Normal", True, 1.0)
    with pytest.raises(QuiversTypeError, match=r"`Normal` parameter `loc` is not an array of numbers"):
        family("Normal", [[0.0], [1.0, 2.0]], 1.0)
    with pytest.raises(QuiversTypeError, match=r"`Normal` parameter `loc` must be a number, a tensor or an expression, got dict"):
        family("Normal", {"a": 1}, 1.0)


def test_numpy_and_list_arguments_become_checked_tensors():
    fam = family("Normal", np.float64(1.0), np.array([1.0, 2.0]))
    assert fam.args["loc"] == 1.0 and isinstance(fam.args["scale"], torch.Tensor)
    with pytest.raises(InvalidValueError, match=r"`Normal` parameter `scale`"):
        family("Normal", 0.0, np.array([1.0, -2.0]))
    fam = family("Poisson", [1, 2, 3])
    assert fam.args["rate"].dtype == torch.get_default_dtype()


def test_uniform_needs_low_below_high():
    with pytest.raises(InvalidValueError, match=r"`Uniform` needs `low` < `high`, got low=1.0, high=0.0"):
        family("Uniform", 1.0, 0.0)
    with pytest.raises(InvalidValueError, match=r"`Uniform` needs `low` < `high`"):
        family("Uniform", torch.tensor([0.0, 2.0]), torch.tensor([1.0, 2.0]))


def test_categorical_weights_must_be_a_positive_measure():
    for bad in ([0.0, 0.0], [-1.0, 3.0], [[1.0, 2.0], [0.0, 0.0]], []):
        with pytest.raises(InvalidValueError, match=r"(?s)`Categorical` parameter `weights` .* must be non-negative with a positive sum"):
            family("Categorical", bad)


def test_logits_may_be_minus_infinity_but_not_nan_or_plus_infinity():
    family("Categorical", logits=[0.0, -math.inf])
    with pytest.raises(InvalidValueError, match="`Categorical` parameter `logits`.*never NaN or \\+inf"):
        family("Categorical", logits=[0.0, math.inf])
    with pytest.raises(InvalidValueError, match="all -inf"):
        family("Categorical", logits=[-math.inf, -math.inf])


@given(st.lists(st.floats(0.01, 100.0), min_size=1, max_size=6))
def test_unnormalized_weights_equal_normalized_probabilities(w):
    weights = torch.tensor(w, dtype=torch.float64)
    dist = family("Categorical", weights).build({"weights": weights})
    expected = torch.distributions.Categorical(probs=weights / weights.sum())
    values = torch.arange(len(w))
    torch.testing.assert_close(dist.log_prob(values), expected.log_prob(values))
    torch.testing.assert_close(dist.log_prob(values).exp().sum(), torch.tensor(1.0, dtype=torch.float64))


@given(st.lists(st.floats(-20.0, 20.0), min_size=1, max_size=6))
def test_logits_equal_softmax_probabilities(lg):
    logits = torch.tensor(lg, dtype=torch.float64)
    dist = family("Categorical", logits=logits).build({"logits": logits})
    values = torch.arange(len(lg))
    torch.testing.assert_close(dist.log_prob(values), torch.log_softmax(logits, -1))


def test_supports_are_torchs():
    assert family("Normal", 0.0, 1.0).support() is constraints.real
    assert family("HalfNormal", 1.0).support() is constraints.positive
    assert family("Beta", 1.0, 1.0).support() is constraints.unit_interval
    assert family("Dirichlet", [1.0, 1.0]).support() is constraints.simplex
    assert family("Poisson", 1.0).support() is constraints.nonnegative_integer
    assert family("LKJCholesky", 1.0).support() is constraints.corr_cholesky


def test_dependent_supports_follow_their_parameters():
    s = family("Uniform", -1.0, 2.0).support()
    assert isinstance(s, constraints.interval)
    assert (float(s.lower_bound), float(s.upper_bound)) == (-1.0, 2.0)
    s = family("Binomial", 7, 0.5).support()
    assert isinstance(s, constraints.integer_interval) and int(s.upper_bound) == 7
    s = family("Categorical", [1.0, 1.0, 1.0]).support()
    assert (int(s.lower_bound), int(s.upper_bound)) == (0, 2)
    with pytest.raises(QuiversTypeError, match=r"the support of `Uniform` depends on non-constant parameters \['low'\]"):
        family("Uniform", "a", 1.0).support()


positive = st.floats(0.1, 10.0)
reals = st.floats(-50.0, 50.0)


@st.composite
def continuous_case(draw):
    """A continuous family with drawn parameters and an unconstrained point."""
    name = draw(st.sampled_from([
        "Normal", "HalfNormal", "LogNormal", "Exponential", "Gamma", "InverseGamma", "Beta",
        "Dirichlet", "StudentT", "Cauchy", "HalfCauchy", "Uniform", "Laplace",
        "MultivariateNormal", "LKJCholesky",
    ]))
    if name == "Uniform":
        # Bounds in the point's float64: float32 bounds would put the image of
        # a saturated sigmoid a rounding past the upper bound.
        low = torch.tensor(draw(st.floats(-10.0, 10.0)), dtype=torch.float64)
        fam = family(name, low, low + draw(positive))
    elif name == "Dirichlet":
        fam = family(name, draw(st.lists(positive, min_size=2, max_size=4)))
    elif name == "MultivariateNormal":
        fam = family(name, torch.zeros(3), torch.eye(3))
    else:
        spec = FAMILIES[name]
        fam = family(name, *(draw(positive) for p in spec.params if p.default is None))
    support = fam.support()
    t = biject(support)
    event = {"MultivariateNormal": (3,), "LKJCholesky": (3, 3)}.get(name, ())
    if name == "Dirichlet":
        event = tuple(fam.args["concentration"].shape)
    shape = t.inverse_shape(torch.Size(event))
    u = torch.tensor(draw(st.lists(reals, min_size=max(1, shape.numel()), max_size=max(1, shape.numel()))),
                     dtype=torch.float64)[: shape.numel()].reshape(shape)
    return name, support, t, u


@given(continuous_case())
def test_biject_maps_unconstrained_points_into_the_support(case):
    name, support, t, u = case
    x = t(u)
    assert bool(torch.as_tensor(support.check(x)).all()), (name, u, x)
    back = t.inv(x)
    assert back.shape == u.shape
    # Round trip where the map is not saturated by rounding.
    if name not in ("Dirichlet", "LKJCholesky", "Beta", "Uniform") and bool((u.abs() < 20).all()):
        torch.testing.assert_close(back, u, rtol=1e-6, atol=1e-6)


def test_every_error_is_a_quivers_error():
    for call in (lambda: family("Normal", 0.0), lambda: family("Nope"), lambda: family("HalfNormal", -1.0)):
        with pytest.raises(QuiversError):
            call()
