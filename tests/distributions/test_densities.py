"""The closed-form log densities equal torch.distributions' log_prob."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from quivers.distributions import FAMILIES
from quivers.distributions.densities import LOG_PROB

POSITIVE = st.floats(0.05, 20.0)
REAL = st.floats(-30.0, 30.0)
UNIT = st.floats(0.01, 0.99)
COUNT = st.integers(0, 12).map(float)
SUPPORT = {"Normal": REAL, "Cauchy": REAL, "Laplace": REAL, "StudentT": REAL, "Beta": UNIT,
           "Bernoulli": st.sampled_from([0.0, 1.0]), "Geometric": COUNT, "NegativeBinomial": COUNT,
           "Poisson": COUNT}
# written with torch's operations in torch's order: the same bits; the
# others (exact at the edges of their supports) agree to rounding
SAME_BITS = {"Normal", "HalfNormal", "LogNormal", "Cauchy", "HalfCauchy", "Laplace", "Exponential", "Gamma", "StudentT"}


def _tensor(draw, elements, shape):
    n = math.prod(shape)
    return torch.tensor(draw(st.lists(elements, min_size=n, max_size=n)), dtype=torch.float64).reshape(shape)


@st.composite
def case(draw, name: str):
    """Parameters inside their constraints on shapes that broadcast against
    the value's, and values in the support (and, for the half families,
    outside it)."""
    spec = FAMILIES[name]
    value_shape = draw(st.sampled_from([(), (3,), (2, 3)]))
    if name == "Categorical":
        return draw(categorical_case(value_shape))
    params = {}
    given = list(spec.params) + [g[draw(st.integers(0, len(g) - 1))] for g in spec.alternatives]
    for p in given:
        shape = draw(st.sampled_from([(), value_shape[-1:], (1,) + value_shape[-1:]]))
        if p.name == "probs":
            params[p.name] = _tensor(draw, UNIT, shape)
        elif p.name == "logits":  # torch goes to probabilities and back: digits lost at large logits
            params[p.name] = _tensor(draw, st.floats(-8.0, 8.0), shape)
        elif p.name == "total_count" and name == "Binomial":
            params[p.name] = _tensor(draw, st.integers(12, 20).map(float), shape)
        elif p.event_rank:
            params[p.name] = _tensor(draw, POSITIVE, value_shape[:-1] + (4,))
        else:
            positive = p.constraint is not torch.distributions.constraints.real
            params[p.name] = _tensor(draw, POSITIVE if positive else REAL, shape)
    if name == "Uniform":
        params["high"] = params["low"] + _tensor(draw, POSITIVE, params["low"].shape)
        x = params["low"] + (params["high"] - params["low"]) * _tensor(draw, UNIT, value_shape)
    elif name == "Dirichlet":
        w = _tensor(draw, POSITIVE, value_shape[:-1] + (4,))
        x = w / w.sum(-1, keepdim=True)
    elif name == "Binomial":
        x = _tensor(draw, COUNT, value_shape)
    else:
        x = _tensor(draw, SUPPORT.get(name, POSITIVE), value_shape)
    if name.startswith("Half") and value_shape:
        x = x * torch.tensor(draw(st.lists(st.sampled_from([-1.0, 1.0]), min_size=value_shape[-1],
                                           max_size=value_shape[-1])), dtype=torch.float64)
    return params, x


@st.composite
def categorical_case(draw, value_shape):
    """Weights (zeros included, one positive per row) or logits on a table
    whose rows broadcast against the values, and values in range."""
    size = draw(st.integers(1, 4))
    rows = draw(st.sampled_from([(), value_shape[-1:], (2, 1), (1,) + value_shape[-1:]]))
    if draw(st.booleans()):
        params = {"logits": _tensor(draw, REAL, rows + (size,))}
    else:
        table = _tensor(draw, st.one_of(st.just(0.0), POSITIVE), rows + (size,))
        table[..., draw(st.integers(0, size - 1))] += 1.0
        params = {"weights": table}
    x = torch.tensor(draw(st.lists(st.integers(0, size - 1), min_size=math.prod(value_shape),
                                   max_size=math.prod(value_shape)))).reshape(value_shape)
    return params, x


@pytest.mark.parametrize("name", sorted(LOG_PROB))
@given(data=st.data())
def test_closed_form_equals_torch_distributions(name, data):
    params, x = data.draw(case(name))
    spec = FAMILIES[name]
    expected = spec.make(dict(params)).log_prob(x)
    got = spec.log_prob(params, x)
    assert got.shape == expected.shape
    if "scale" in params or name not in SAME_BITS:
        # a fixed scale is folded once (its log, its square), so the
        # operations differ from torch's: the same value to rounding
        torch.testing.assert_close(got, expected, rtol=1e-11, atol=1e-11)
    else:
        torch.testing.assert_close(got, expected, rtol=0.0, atol=0.0)  # the same operations: the same bits
    if name not in SAME_BITS:
        return
    learned = {k: v.clone().requires_grad_() for k, v in params.items()}
    torch.testing.assert_close(spec.log_prob(learned, x), spec.make(dict(learned)).log_prob(x), rtol=0.0, atol=0.0)


@pytest.mark.parametrize("name", ["Normal", "HalfNormal", "Cauchy", "HalfCauchy", "LogNormal"])
def test_folded_constants_follow_a_scale_written_in_place(name):
    """The folded constant part of a density is keyed by the scale's
    version: writing the scale in place gives the new density."""
    spec = FAMILIES[name]
    params = {p.name: torch.tensor(1.5 if p.name == "scale" else 0.25, dtype=torch.float64) for p in spec.params}
    x = torch.tensor([0.5, 2.0], dtype=torch.float64)
    before = spec.log_prob(params, x)
    params["scale"].fill_(3.0)
    torch.testing.assert_close(spec.log_prob(params, x), spec.make(dict(params)).log_prob(x), rtol=1e-13, atol=1e-13)
    assert not torch.equal(before, spec.log_prob(params, x))


@pytest.mark.parametrize("name", ["Normal", "HalfNormal", "Cauchy", "HalfCauchy", "LogNormal"])
@pytest.mark.parametrize("shape", [(), (3,)])
def test_folded_densities_have_torchs_gradient_in_the_value_and_location(name, shape):
    spec = FAMILIES[name]
    g = torch.Generator().manual_seed(0)
    params = {p.name: (torch.rand(shape, generator=g, dtype=torch.float64) + 0.5) for p in spec.params}
    loc = "loc" in params
    if loc:
        params["loc"] = params["loc"].clone().requires_grad_()  # learned: only the scale is folded
    x = (torch.rand((2, 3), generator=g, dtype=torch.float64) + 0.1).requires_grad_()
    wrt = [x] + ([params["loc"]] if loc else [])
    got = torch.autograd.grad(spec.log_prob(params, x).sum(), wrt)
    want = torch.autograd.grad(spec.make(dict(params)).log_prob(x).sum(), wrt)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_a_learned_scalar_scale_keeps_torchs_bits_and_gradient():
    scale = torch.tensor(1.7, dtype=torch.float64, requires_grad=True)
    x = torch.tensor([-0.3, 0.8], dtype=torch.float64)
    got = LOG_PROB["Normal"]({"loc": torch.tensor(0.1, dtype=torch.float64), "scale": scale}, x)
    expected = torch.distributions.Normal(0.1, scale).log_prob(x)
    torch.testing.assert_close(got, expected, rtol=0.0, atol=0.0)
    (g,) = torch.autograd.grad(got.sum(), scale)
    (h,) = torch.autograd.grad(expected.sum(), scale)
    torch.testing.assert_close(g, h)


def test_a_fixed_dirichlet_concentration_is_folded_and_follows_writes_in_place():
    """Dirichlet's constants (``a - 1`` and its normalizer) are made once
    for a fixed concentration, laid out as a view of one number as a
    program does, even when the first call runs under inference mode: a
    later call still differentiates through them, and a concentration
    written in place is folded again."""
    spec = FAMILIES["Dirichlet"]
    a0 = torch.tensor(0.7, dtype=torch.float64)
    a = a0.expand(2, 4)
    x = torch.distributions.Dirichlet(torch.ones(2, 4, dtype=torch.float64)).sample()
    with torch.inference_mode():
        spec.log_prob({"concentration": a}, x)
    xg = x.clone().requires_grad_()
    got = spec.log_prob({"concentration": a}, xg)
    want = torch.distributions.Dirichlet(a).log_prob(xg)
    torch.testing.assert_close(got, want, rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(torch.autograd.grad(got.sum(), xg)[0], torch.autograd.grad(want.sum(), xg)[0])
    a0.fill_(2.5)
    torch.testing.assert_close(spec.log_prob({"concentration": a}, x), torch.distributions.Dirichlet(a).log_prob(x),
                               rtol=1e-13, atol=1e-13)


def test_every_closed_form_is_registered():
    assert {n for n, s in FAMILIES.items() if s.log_prob is not None} == set(LOG_PROB)
