"""Continuous families torch does not ship: LogitNormal, HalfStudentT, Logistic.

Each is a :class:`torch.distributions.Distribution` with its log density
written out, a sampler, and (for truncation) a cumulative distribution
function where it has a closed form.

Laws
----
- ``LogitNormal(loc, scale)`` is the law of ``sigmoid(x)`` for ``x ~
  Normal(loc, scale)``: its log density is the Normal's at ``logit(y)``
  less ``log y + log(1 - y)``.
- ``HalfStudentT(df, scale)`` is the law of ``|x|`` for ``x ~
  StudentT(df, 0, scale)``: twice its density on ``x >= 0``.
- ``Logistic(loc, scale)`` has ``cdf(x) = sigmoid((x - loc) / scale)`` and
  ``icdf`` its inverse.

Examples
--------
>>> import torch
>>> d = Logistic(torch.tensor(0.0), torch.tensor(1.0))
>>> d.log_prob(torch.tensor(0.0))
tensor(-1.3863)
>>> d.cdf(torch.tensor(0.0))
tensor(0.5000)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.distributions import Distribution, Normal, StudentT, constraints
from torch.distributions.utils import broadcast_all

__all__ = ["LogitNormal", "HalfStudentT", "Logistic"]

_LOG_2 = math.log(2.0)


class _LocScale(Distribution):
    """A family with a location and a positive scale."""

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    has_rsample = True

    def __init__(self, loc, scale, validate_args=None) -> None:
        self.loc, self.scale = broadcast_all(loc, scale)
        super().__init__(self.loc.shape, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        shape = torch.Size(batch_shape)
        return type(self)(self.loc.expand(shape), self.scale.expand(shape), validate_args=False)


class LogitNormal(_LocScale):
    """The law of ``sigmoid(x)``, ``x ~ Normal(loc, scale)``: a prior on a
    probability that is Normal on the logit scale.

    Examples
    --------
    >>> d = LogitNormal(torch.tensor(0.0), torch.tensor(1.0))
    >>> round(float(d.log_prob(torch.tensor(0.5)).exp()), 4)
    1.5958
    """

    support = constraints.unit_interval

    def rsample(self, sample_shape=torch.Size()) -> torch.Tensor:
        shape = self._extended_shape(sample_shape)
        eps = torch.randn(shape, dtype=self.loc.dtype, device=self.loc.device)
        return torch.sigmoid(self.loc + self.scale * eps)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        inside = (value > 0) & (value < 1)
        y = torch.where(inside, value, 0.5)
        x = torch.log(y) - torch.log1p(-y)
        lp = Normal(self.loc, self.scale, validate_args=False).log_prob(x) - torch.log(y) - torch.log1p(-y)
        return torch.where(inside, lp, -math.inf)

    def cdf(self, value: torch.Tensor) -> torch.Tensor:
        y = value.clamp(0.0, 1.0)
        x = torch.log(y) - torch.log1p(-y)
        return Normal(self.loc, self.scale, validate_args=False).cdf(x)

    def icdf(self, value: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(Normal(self.loc, self.scale, validate_args=False).icdf(value))


class HalfStudentT(Distribution):
    """The law of ``|x|``, ``x ~ StudentT(df, 0, scale)``: the weakly
    informative prior on a scale (Gelman 2006).

    Examples
    --------
    >>> d = HalfStudentT(torch.tensor(3.0), torch.tensor(1.0))
    >>> d.log_prob(torch.tensor(-1.0))
    tensor(-inf)
    >>> bool(d.sample((5,)).min() >= 0)
    True
    """

    arg_constraints = {"df": constraints.positive, "scale": constraints.positive}
    support = constraints.nonnegative
    has_rsample = True

    def __init__(self, df, scale, validate_args=None) -> None:
        self.df, self.scale = broadcast_all(df, scale)
        super().__init__(self.df.shape, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None) -> HalfStudentT:
        shape = torch.Size(batch_shape)
        return HalfStudentT(self.df.expand(shape), self.scale.expand(shape), validate_args=False)

    def _t(self) -> StudentT:
        return StudentT(self.df, torch.zeros_like(self.scale), self.scale, validate_args=False)

    def rsample(self, sample_shape=torch.Size()) -> torch.Tensor:
        return self._t().rsample(sample_shape).abs()

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        lp = self._t().log_prob(value) + _LOG_2
        return torch.where(value >= 0, lp, -math.inf)

    @property
    def mean(self) -> torch.Tensor:
        df = self.df
        m = (
            2.0 * self.scale * torch.sqrt(df / math.pi)
            * torch.exp(torch.lgamma((df + 1) / 2) - torch.lgamma(df / 2)) / (df - 1)
        )
        return torch.where(df > 1, m, math.inf)


class Logistic(_LocScale):
    """The logistic distribution: ``cdf(x) = sigmoid((x - loc) / scale)``,
    a Normal-like law with exponential tails.

    Examples
    --------
    >>> d = Logistic(torch.tensor(1.0), torch.tensor(2.0))
    >>> d.icdf(torch.tensor(0.5))
    tensor(1.)
    """

    support = constraints.real

    def rsample(self, sample_shape=torch.Size()) -> torch.Tensor:
        shape = self._extended_shape(sample_shape)
        tiny = torch.finfo(self.loc.dtype).tiny
        u = torch.rand(shape, dtype=self.loc.dtype, device=self.loc.device).clamp(tiny, 1 - 1e-7)
        return self.icdf(u)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        z = (value - self.loc) / self.scale
        return -z - 2.0 * F.softplus(-z) - torch.log(self.scale)

    def cdf(self, value: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid((value - self.loc) / self.scale)

    def icdf(self, value: torch.Tensor) -> torch.Tensor:
        return self.loc + self.scale * (torch.log(value) - torch.log1p(-value))

    @property
    def mean(self) -> torch.Tensor:
        return self.loc

    @property
    def variance(self) -> torch.Tensor:
        return (math.pi * self.scale) ** 2 / 3.0
