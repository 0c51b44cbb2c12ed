"""Continuous families torch does not ship (LogitNormal, HalfStudentT,
Logistic) or ships with a normalizer that loses digits (ContinuousBernoulli).

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
- ``ContinuousBernoulli`` with logit ``e`` has density
  ``e exp(e x) / (exp(e) - 1)`` on ``[0, 1]`` (the uniform law at ``e = 0``),
  which is ``C(p) p^x (1 - p)^(1 - x)`` with ``C(p) = 2 atanh(1 - 2p) / (1 - 2p)
  = e / tanh(e / 2)`` for ``p = sigmoid(e)``. Its log density is
  ``e x - A(e)`` with ``A(e) = log((exp(e) - 1) / e)``, computed from the
  logit: ``max(e, 0) + log(-expm1(-|e|)) - log|e|``, and its Taylor series
  ``e / 2 + e^2 / 24 - e^4 / 2880 + e^6 / 181440 - e^8 / 9676800`` near 0. torch's
  ``ContinuousBernoulli`` goes through ``p``: it loses digits past
  ``|e| = 10`` (a relative error of 3e-5 at 30) and clamps ``p`` past 36.

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

__all__ = ["LogitNormal", "HalfStudentT", "Logistic", "ContinuousBernoulli"]

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


_SERIES = 0.1  # |logit| below which the normalizer and moments take their Taylor series


class ContinuousBernoulli(Distribution):
    """The continuous Bernoulli law on ``[0, 1]`` (Loaiza-Ganem and
    Cunningham 2019), given ``probs`` or ``logits``: density proportional
    to ``p^x (1 - p)^(1 - x)``, normalized from the logit so that it stays
    exact in float64 at any logit (see the module docstring).

    Examples
    --------
    >>> d = ContinuousBernoulli(logits=torch.tensor(0.0, dtype=torch.float64))
    >>> d.log_prob(torch.tensor([0.2, 0.9], dtype=torch.float64))
    tensor([0., 0.], dtype=torch.float64)
    >>> d = ContinuousBernoulli(logits=torch.tensor(100.0, dtype=torch.float64))
    >>> round(float(d.log_prob(torch.tensor(1.0, dtype=torch.float64))), 10)  # log 100
    4.605170186
    """

    arg_constraints = {"probs": constraints.unit_interval, "logits": constraints.real}
    support = constraints.unit_interval
    has_rsample = True

    def __init__(self, probs=None, logits=None, validate_args=None) -> None:
        if (probs is None) == (logits is None):
            raise ValueError("give ContinuousBernoulli either `probs` or `logits`")
        if logits is None:
            (p,) = broadcast_all(probs)
            self.logits = torch.log(p) - torch.log1p(-p)
        else:
            (self.logits,) = broadcast_all(logits)
        super().__init__(self.logits.shape, validate_args=validate_args)

    @property
    def probs(self) -> torch.Tensor:
        return torch.sigmoid(self.logits)

    def expand(self, batch_shape, _instance=None) -> ContinuousBernoulli:
        return ContinuousBernoulli(logits=self.logits.expand(torch.Size(batch_shape)), validate_args=False)

    def _split(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The logit, whether it is in the series' range, and the logit with
        those replaced by 1 (so the closed forms, taken everywhere by
        ``torch.where``, give no inf or NaN to differentiate)."""
        e = self.logits
        small = e.abs() < _SERIES
        return e, small, torch.where(small, torch.ones_like(e), e)

    def log_normalizer(self) -> torch.Tensor:
        """``A(e) = log((exp(e) - 1) / e)``, so that ``log_prob(x) = e x - A(e)``."""
        e, small, far = self._split()
        closed = far.clamp(min=0) + torch.log(-torch.expm1(-far.abs())) - torch.log(far.abs())
        e2 = e * e
        series = e / 2 + e2 * (1 / 24 + e2 * (-1 / 2880 + e2 * (1 / 181440 - e2 / 9676800)))
        return torch.where(small, series, closed)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        lp = self.logits * value - self.log_normalizer()
        return torch.where((value >= 0) & (value <= 1), lp, -math.inf)

    def _nonzero(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Where the logit is 0 (the uniform law), and the logit with those
        replaced by -1: ``expm1`` and ``log1p`` keep every digit of the
        closed forms below at any other logit, however small."""
        zero = self.logits == 0
        return zero, torch.where(zero, -torch.ones_like(self.logits), self.logits)

    def cdf(self, value: torch.Tensor) -> torch.Tensor:
        """``expm1(e x) / expm1(e)`` for ``e < 0``, ``1 - cdf(1 - x)`` at
        ``-e`` for ``e > 0`` (so ``expm1`` never overflows), ``x`` at ``e = 0``."""
        zero, e = self._nonzero()
        x = value.clamp(0.0, 1.0)
        neg, y = -e.abs(), torch.where(e < 0, x, 1 - x)
        c = torch.expm1(neg * y) / torch.expm1(neg)
        return torch.where(zero, x, torch.where(e < 0, c, 1 - c))

    def icdf(self, value: torch.Tensor) -> torch.Tensor:
        """``log1p(u expm1(e)) / e`` for ``e < 0``, ``1 - icdf(1 - u)`` at
        ``-e`` for ``e > 0``, ``u`` at ``e = 0``."""
        zero, e = self._nonzero()
        neg, u = -e.abs(), torch.where(e < 0, value, 1 - value)
        y = torch.log1p(u * torch.expm1(neg)) / neg
        return torch.where(zero, value, torch.where(e < 0, y, 1 - y))

    def rsample(self, sample_shape=torch.Size()) -> torch.Tensor:
        shape = self._extended_shape(sample_shape)
        u = torch.rand(shape, dtype=self.logits.dtype, device=self.logits.device)
        return self.icdf(u)

    @property
    def mean(self) -> torch.Tensor:
        e, small, far = self._split()
        e2 = e * e
        series = 0.5 + e * (1 / 12 + e2 * (-1 / 720 + e2 / 30240))
        return torch.where(small, series, -1 / torch.expm1(-far) - 1 / far)

    @property
    def variance(self) -> torch.Tensor:
        e, small, far = self._split()
        e2 = e * e
        series = 1 / 12 + e2 * (-1 / 240 + e2 / 6048)
        return torch.where(small, series, 1 / far**2 - 1 / (4 * torch.sinh(far / 2) ** 2))
