"""Draws of ``Truncated``: exact inversion of the base's cdf (its quantile
function, or bisection where it has none), far tails included, and a
clear error where inversion cannot work, never clamped draws."""

from __future__ import annotations

import math

import pytest
import torch
from scipy import stats
from torch.distributions import Exponential, Gamma, Normal, StudentT

from quivers.distributions.catalog import TRUNCATABLE
from quivers.distributions.combinators import Truncated
from quivers.distributions.families import FAMILIES
from quivers.errors import UnsupportedError

F64 = torch.float64
ARGS = {"loc": 0.5, "scale": 1.5, "rate": 0.7, "concentration": 2.5}


def t(x: float, dtype=F64) -> torch.Tensor:
    return torch.tensor(x, dtype=dtype)


@pytest.mark.parametrize("name", sorted(TRUNCATABLE))
@pytest.mark.parametrize("bounds", [(0.3, 2.0), (0.8, None), (None, 1.2)])
def test_draws_of_every_truncatable_family_are_uniform_under_its_cdf(name, bounds):
    """The probability integral transform of the draws, (F(x) - F(low)) /
    (F(high) - F(low)) with the base's own cdf, is uniform (Kolmogorov-Smirnov),
    and every draw lies within the bounds."""
    spec = FAMILIES[name]
    base = spec.make({p.name: t(ARGS[p.name]) for p in spec.params})
    if name == "LogitNormal":
        bounds = tuple(None if b is None else b / 2.5 for b in bounds)
    low, high = (None if b is None else t(b) for b in bounds)
    d = Truncated(base, low, high)
    torch.manual_seed(0)
    x = d.sample((4000,))
    assert x.dtype == F64 and bool(torch.isfinite(x).all())
    assert bool((x >= d.low).all() & (x <= d.high).all())
    lo = base.cdf(d.low) if low is not None else t(0.0)
    hi = base.cdf(d.high) if high is not None else t(1.0)
    u = ((base.cdf(x) - lo) / (hi - lo)).numpy()
    assert stats.kstest(u, "uniform").pvalue > 1e-3


TAILS = [(8.0, math.inf), (-math.inf, -8.0), (8.0, 8.5)]


@pytest.mark.parametrize("dtype, low, high", [(dt, *b) for dt in (torch.float32, F64) for b in TAILS]
                         + [(F64, -30.0, -29.0)])
def test_a_normal_far_tail_is_drawn_exactly(dtype, low, high):
    """At 8 sd, F(low) is 1 in float32 (the quantile at 1 is inf, which the
    old sampler clamped) and torch's ndtr is 2% off: the bounds are
    mirrored below the mean and computed with log_ndtr in float64."""
    d = Truncated(Normal(t(0.0, dtype), t(1.0, dtype)), t(low, dtype), t(high, dtype))
    torch.manual_seed(1)
    x = d.sample((20000,))
    assert x.dtype == dtype and bool(torch.isfinite(x).all())
    assert bool((x >= low).all() & (x <= high).all())
    assert stats.kstest(x.double().numpy(), stats.truncnorm(low, high).cdf).pvalue > 1e-3


def test_a_base_without_quantile_function_is_inverted_by_bisection():
    """Gamma has a cdf and no icdf: bisection reaches scipy's quantiles."""
    d = Truncated(Gamma(t(2.5), t(0.7)), low=t(1.0))
    u = torch.tensor([1e-12, 0.01, 0.3, 0.5, 0.9, 0.999999], dtype=F64)
    lo = float(stats.gamma.cdf(1.0, 2.5, scale=1 / 0.7))
    p = lo + (1 - lo) * u
    got = d._bisect(p, d.low.double(), d.high.double())
    want = torch.tensor(stats.gamma.ppf(p.numpy(), 2.5, scale=1 / 0.7))
    torch.testing.assert_close(got, want, rtol=1e-9, atol=0)


def test_a_base_without_a_cdf_cannot_be_drawn():
    d = Truncated(StudentT(t(3.0)), low=t(0.0))
    with pytest.raises(UnsupportedError, match=r"truncated StudentT: it has no cumulative distribution function"):
        d.sample((3,))


def test_bounds_float64_cannot_resolve_are_an_error_not_clamped_draws():
    """Above 40, an Exponential's cdf is 1 in float64: no draw is possible
    by inversion, and none is made up."""
    d = Truncated(Exponential(t(1.0)), low=t(40.0))
    with pytest.raises(UnsupportedError, match=r"truncated Exponential: its bounds hold probability 0 under it"):
        d.sample((3,))
