"""Count and ordinal families torch does not ship, written out.

``BetaBinomial``, ``Multinomial`` (with a count that may differ per row,
unlike torch's), ``DirichletMultinomial``, ``OrderedLogistic`` and the
two ways of adding zeros to a count family: :class:`ZeroInflated` (a zero
with probability ``gate``, else a draw of the base, which may itself be
zero) and :class:`Hurdle` (a zero with probability ``gate``, else a draw
of the base conditioned to be positive).

Laws
----
- Every log probability sums to one over the support (checked by
  enumeration in the tests) and is ``-inf`` outside it, exactly.
- ``ZeroInflated(base, gate).log_prob(0) = log(gate + (1 - gate) p(0))``
  and ``log(1 - gate) + log p(k)`` for ``k > 0``.
- ``Hurdle(base, gate).log_prob(0) = log gate`` and
  ``log(1 - gate) + log p(k) - log(1 - p(0))`` for ``k > 0``.
- ``OrderedLogistic(eta, c)`` puts ``sigmoid(eta - c[k-1]) - sigmoid(eta - c[k])``
  on ``k = 0 .. K`` (``K = len(c)``, ``c[-1] = -inf``, ``c[K] = inf``):
  Stan's ``ordered_logistic``, counted from 0.

Examples
--------
>>> import torch
>>> d = BetaBinomial(torch.tensor(4.0), torch.tensor(1.0), torch.tensor(1.0))
>>> d.log_prob(torch.arange(5.0)).exp()
tensor([0.2000, 0.2000, 0.2000, 0.2000, 0.2000])
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.distributions import Binomial, Dirichlet, Distribution, Poisson, constraints
from torch.distributions.utils import broadcast_all

from quivers.distributions.densities import log_or_zero, xlogy

__all__ = ["CountVector", "BetaBinomial", "Multinomial", "DirichletMultinomial", "OrderedLogistic", "ZeroInflated", "Hurdle"]


def _lchoose(n: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    return torch.lgamma(n + 1) - torch.lgamma(k + 1) - torch.lgamma((n - k).clamp(min=0) + 1)


def _lbeta(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.lgamma(a) + torch.lgamma(b) - torch.lgamma(a + b)


class BetaBinomial(Distribution):
    """Successes in ``total_count`` trials whose success probability is
    ``Beta(concentration1, concentration0)``: the Binomial with its
    probability integrated out.

    Examples
    --------
    >>> d = BetaBinomial(torch.tensor(10.0), torch.tensor(2.0), torch.tensor(3.0))
    >>> d.mean
    tensor(4.)
    """

    arg_constraints = {
        "total_count": constraints.nonnegative_integer,
        "concentration1": constraints.positive,
        "concentration0": constraints.positive,
    }

    def __init__(self, total_count, concentration1, concentration0, validate_args=None) -> None:
        self.total_count, self.concentration1, self.concentration0 = broadcast_all(
            total_count, concentration1, concentration0
        )
        super().__init__(self.total_count.shape, validate_args=validate_args)

    @constraints.dependent_property(is_discrete=True, event_dim=0)
    def support(self) -> constraints.Constraint:
        return constraints.integer_interval(0, self.total_count)

    def expand(self, batch_shape, _instance=None) -> BetaBinomial:
        s = torch.Size(batch_shape)
        return BetaBinomial(self.total_count.expand(s), self.concentration1.expand(s), self.concentration0.expand(s), False)

    def sample(self, sample_shape=torch.Size()) -> torch.Tensor:
        with torch.no_grad():
            shape = self._extended_shape(sample_shape)
            a, b = self.concentration1.expand(shape), self.concentration0.expand(shape)
            p = Dirichlet(torch.stack([a, b], -1)).sample()[..., 0]
            return Binomial(self.total_count.expand(shape), probs=p, validate_args=False).sample()

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        n, a, b = self.total_count, self.concentration1, self.concentration0
        inside = (value >= 0) & (value <= n)
        k = torch.where(inside, value, 0.0)
        lp = _lchoose(n, k) + _lbeta(k + a, n - k + b) - _lbeta(a, b)
        return torch.where(inside, lp, -math.inf)

    @property
    def mean(self) -> torch.Tensor:
        return self.total_count * self.concentration1 / (self.concentration1 + self.concentration0)


def _multinomial_sample(n: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
    """Counts over the last axis of ``probs`` summing to ``n`` (any shape
    broadcasting with the batch): one conditional Binomial per category."""
    out = []
    left = n.to(probs.dtype)
    mass = torch.ones_like(probs[..., 0])
    for k in range(probs.shape[-1] - 1):
        p = (probs[..., k] / mass.clamp(min=1e-30)).clamp(0.0, 1.0)
        x = Binomial(left, probs=p, validate_args=False).sample()
        out.append(x)
        left = left - x
        mass = mass - probs[..., k]
    out.append(left)
    return torch.stack(out, -1)


class CountVector(constraints.Constraint):
    """Vectors of non-negative integers along the last axis summing to
    ``total_count``: the support of a Multinomial.

    Examples
    --------
    >>> CountVector(torch.tensor(3.0)).check(torch.tensor([[1.0, 2.0], [2.0, 2.0]]))
    tensor([ True, False])
    """

    is_discrete = True
    event_dim = 1

    def __init__(self, total_count: torch.Tensor) -> None:
        self.total_count = total_count
        super().__init__()

    def check(self, value: torch.Tensor) -> torch.Tensor:
        whole = (value >= 0) & (value == value.floor())
        return whole.all(-1) & (value.sum(-1) == self.total_count)

    def __repr__(self) -> str:
        return f"CountVector(total_count={self.total_count.tolist()})"


class _Counts(Distribution):
    """Counts over the last axis of a parameter ``self._param``, summing to
    ``total_count`` (which may differ per row)."""

    _param = "probs"

    def __init__(self, total_count, param: torch.Tensor, validate_args=None) -> None:
        batch = torch.broadcast_shapes(torch.as_tensor(total_count).shape, param.shape[:-1])
        setattr(self, self._param, param.expand(batch + param.shape[-1:]))
        self.total_count = torch.as_tensor(total_count, dtype=param.dtype, device=param.device).expand(batch)
        super().__init__(batch, param.shape[-1:], validate_args=validate_args)

    @constraints.dependent_property(is_discrete=True, event_dim=1)
    def support(self) -> constraints.Constraint:
        return CountVector(self.total_count)

    def expand(self, batch_shape, _instance=None):
        s = torch.Size(batch_shape)
        return type(self)(self.total_count.expand(s), getattr(self, self._param).expand(s + self.event_shape), False)

    def _on_simplex(self, value: torch.Tensor, lp: torch.Tensor) -> torch.Tensor:
        """``lp`` where ``value`` counts ``total_count`` draws, else ``-inf``."""
        return torch.where((value.sum(-1) == self.total_count) & (value >= 0).all(-1), lp, -math.inf)


class Multinomial(_Counts):
    """Counts of ``total_count`` draws over the categories of the last axis
    of ``probs`` (normalized there); the count may differ per row.

    Examples
    --------
    >>> d = Multinomial(torch.tensor(3.0), torch.tensor([0.5, 0.5]))
    >>> d.log_prob(torch.tensor([1.0, 2.0])).exp()
    tensor(0.3750)
    >>> d.log_prob(torch.tensor([1.0, 1.0]))
    tensor(-inf)
    """

    arg_constraints = {"total_count": constraints.nonnegative_integer, "probs": constraints.simplex}

    def __init__(self, total_count, probs, validate_args=None) -> None:
        super().__init__(total_count, probs / probs.sum(-1, keepdim=True), validate_args)

    def sample(self, sample_shape=torch.Size()) -> torch.Tensor:
        with torch.no_grad():
            shape = self._extended_shape(sample_shape)
            return _multinomial_sample(self.total_count.expand(shape[:-1]), self.probs.expand(shape))

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        n = self.total_count
        return self._on_simplex(value, torch.lgamma(n + 1) - torch.lgamma(value + 1).sum(-1) + xlogy(value, self.probs).sum(-1))

    @property
    def mean(self) -> torch.Tensor:
        return self.total_count[..., None] * self.probs


class DirichletMultinomial(_Counts):
    """Counts of ``total_count`` draws from category probabilities that are
    ``Dirichlet(concentration)``, integrated out.

    Examples
    --------
    >>> d = DirichletMultinomial(torch.tensor(2.0), torch.tensor([1.0, 1.0]))
    >>> d.log_prob(torch.tensor([[0.0, 2.0], [1.0, 1.0]])).exp()
    tensor([0.3333, 0.3333])
    """

    arg_constraints = {"total_count": constraints.nonnegative_integer, "concentration": constraints.positive}
    _param = "concentration"

    def sample(self, sample_shape=torch.Size()) -> torch.Tensor:
        with torch.no_grad():
            shape = self._extended_shape(sample_shape)
            p = Dirichlet(self.concentration.expand(shape)).sample()
            return _multinomial_sample(self.total_count.expand(shape[:-1]), p)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        a, n = self.concentration, self.total_count
        s = a.sum(-1)
        lp = (
            torch.lgamma(n + 1) + torch.lgamma(s) - torch.lgamma(n + s)
            + (torch.lgamma(value + a) - torch.lgamma(a) - torch.lgamma(value + 1)).sum(-1)
        )
        return self._on_simplex(value, lp)

    @property
    def mean(self) -> torch.Tensor:
        a = self.concentration
        return self.total_count[..., None] * a / a.sum(-1, keepdim=True)


class OrderedLogistic(Distribution):
    """An ordinal outcome ``0 .. K`` from a latent ``predictor`` crossing
    ``K`` increasing ``cutpoints`` (the last axis), with logistic noise.

    Examples
    --------
    >>> d = OrderedLogistic(torch.tensor(0.0), torch.tensor([-1.0, 1.0]))
    >>> p = d.log_prob(torch.arange(3.0)).exp()
    >>> round(float(p.sum()), 6)
    1.0
    """

    arg_constraints = {"predictor": constraints.real, "cutpoints": constraints.real_vector}

    def __init__(self, predictor, cutpoints, validate_args=None) -> None:
        batch = torch.broadcast_shapes(predictor.shape, cutpoints.shape[:-1])
        self.predictor = predictor.expand(batch)
        self.cutpoints = cutpoints.expand(batch + cutpoints.shape[-1:])
        super().__init__(batch, validate_args=validate_args)

    @constraints.dependent_property(is_discrete=True, event_dim=0)
    def support(self) -> constraints.Constraint:
        return constraints.integer_interval(0, self.cutpoints.shape[-1])

    def expand(self, batch_shape, _instance=None) -> OrderedLogistic:
        s = torch.Size(batch_shape)
        return OrderedLogistic(self.predictor.expand(s), self.cutpoints.expand(s + self.cutpoints.shape[-1:]), False)

    def log_probs(self) -> torch.Tensor:
        """The log probabilities of ``0 .. K`` along a new last axis."""
        c = self.cutpoints
        inf = torch.full_like(c[..., :1], math.inf)
        upper = torch.cat([-inf, c], -1)  # c[k - 1]
        lower = torch.cat([c, inf], -1)  # c[k]
        eta = self.predictor[..., None]
        a, b = eta - upper, eta - lower
        # sigmoid(a) - sigmoid(b) = sigmoid(a) sigmoid(-b) (1 - exp(b - a)), each factor in log space
        return F.logsigmoid(a) + F.logsigmoid(-b) + torch.log(-torch.expm1(b - a))

    def sample(self, sample_shape=torch.Size()) -> torch.Tensor:
        with torch.no_grad():
            logits = self.log_probs().expand(self._extended_shape(sample_shape) + (self.cutpoints.shape[-1] + 1,))
            return torch.distributions.Categorical(logits=logits, validate_args=False).sample().to(self.predictor.dtype)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        table = self.log_probs()
        k = self.cutpoints.shape[-1]
        inside = (value >= 0) & (value <= k) & (value == value.floor())
        idx = torch.where(inside, value, 0.0).long()
        shape = torch.broadcast_shapes(idx.shape, table.shape[:-1])
        lp = table.expand(shape + table.shape[-1:]).gather(-1, idx.expand(shape)[..., None])[..., 0]
        return torch.where(inside, lp, -math.inf)


class ZeroInflated(Distribution):
    """``0`` with probability ``gate``, else a draw of the count family
    ``base`` (which may be 0 too).

    Examples
    --------
    >>> d = ZeroInflated(Poisson(torch.tensor(2.0)), torch.tensor(0.5))
    >>> round(float(d.log_prob(torch.tensor(0.0)).exp()), 4)
    0.5677
    """

    arg_constraints = {"gate": constraints.unit_interval}
    support = constraints.nonnegative_integer

    def __init__(self, base: Distribution, gate, validate_args=None) -> None:
        batch = torch.broadcast_shapes(base.batch_shape, torch.as_tensor(gate).shape)
        self.base = base.expand(batch)
        self.gate = torch.as_tensor(gate).expand(batch)
        super().__init__(batch, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None) -> ZeroInflated:
        s = torch.Size(batch_shape)
        return type(self)(self.base.expand(s), self.gate.expand(s), False)

    def sample(self, sample_shape=torch.Size()) -> torch.Tensor:
        with torch.no_grad():
            x = self.base.sample(sample_shape)
            zero = torch.rand_like(x) < self.gate.expand(x.shape)
            return torch.where(zero, 0.0, x)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        g = self.gate
        base = self.base.log_prob(value.clamp(min=0))
        zero = torch.logaddexp(log_or_zero(g), log_or_zero(1 - g) + base)
        lp = torch.where(value == 0, zero, log_or_zero(1 - g) + base)
        return torch.where(value >= 0, lp, -math.inf)

    @property
    def mean(self) -> torch.Tensor:
        return (1 - self.gate) * self.base.mean


class Hurdle(ZeroInflated):
    """``0`` with probability ``gate``, else a draw of the count family
    ``base`` conditioned to be positive: every zero comes from the gate.

    Examples
    --------
    >>> d = Hurdle(Poisson(torch.tensor(2.0)), torch.tensor(0.5))
    >>> d.log_prob(torch.tensor(0.0)).exp()
    tensor(0.5000)
    """

    def _positive(self, shape: torch.Size) -> torch.Tensor:
        """Draws of the base conditioned on ``> 0``: exact for a Poisson (the
        first arrival of its process falls in ``[0, 1]``, the rest is a
        Poisson on what remains), by rejection otherwise."""
        base = self.base
        if isinstance(base, Poisson):
            rate = base.rate.expand(shape)
            u = torch.rand(shape, dtype=rate.dtype, device=rate.device)
            first = -torch.log1p(-u * -torch.expm1(-rate)) / rate
            return 1.0 + Poisson((rate * (1 - first)).clamp(min=0), validate_args=False).sample()
        x = base.sample(shape[: len(shape) - len(self.batch_shape)])
        for _ in range(256):
            zero = x == 0
            if not bool(zero.any()):
                return x
            x = torch.where(zero, base.sample(shape[: len(shape) - len(self.batch_shape)]), x)
        # a base that is almost surely 0: its positive part is almost surely 1
        return torch.where(x == 0, 1.0, x)

    def sample(self, sample_shape=torch.Size()) -> torch.Tensor:
        with torch.no_grad():
            shape = self._extended_shape(sample_shape)
            x = self._positive(shape)
            zero = torch.rand(shape, dtype=x.dtype, device=x.device) < self.gate.expand(shape)
            return torch.where(zero, 0.0, x)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        g = self.gate
        base = self.base.log_prob(value.clamp(min=0))
        p0 = self.base.log_prob(torch.zeros_like(base))
        positive = log_or_zero(1 - g) + base - torch.log(-torch.expm1(p0))
        lp = torch.where(value == 0, log_or_zero(g), positive)
        return torch.where(value >= 0, lp, -math.inf)

    @property
    def mean(self) -> torch.Tensor:
        p0 = self.base.log_prob(torch.zeros_like(self.gate)).exp()
        return (1 - self.gate) * self.base.mean / (1 - p0)

