"""Families made of families: truncation to bounds and finite mixtures.

``Truncated(Normal(mu, sigma), low, high)`` and ``Mixture(w, Normal(a, s),
Normal(b, s))`` are written in QVR and Python alike. The registry stores
flat parameter dictionaries, so a combinator family is a *derived*
:class:`~quivers.distributions.families.FamilySpec` whose parameters are
those of its parts (renamed ``loc_0``, ``loc_1``, ... for the components
of a mixture) plus its own (``low``, ``high``; ``weights`` or ``logits``):
the program layer evaluates, lays out and checks them like those of any
family.

Laws
----
- ``Truncated(base, low, high).log_prob(x) = base.log_prob(x) -
  log(F(high) - F(low))`` on ``[low, high]`` and ``-inf`` outside, ``F``
  the base's cumulative distribution function (for a Normal computed with
  ``log_ndtr`` in the tail the bounds lie in, so far tails stay finite).
- ``Mixture(w, p_0, ..., p_{K-1}).log_prob(x) = logsumexp_k(log w_k -
  log sum w + log p_k(x))``.

Examples
--------
>>> import torch
>>> from torch.distributions import Normal
>>> d = Truncated(Normal(torch.tensor(0.0), torch.tensor(1.0)), low=torch.tensor(0.0))
>>> d.log_prob(torch.tensor([-1.0, 0.0]))
tensor([   -inf, -0.2258])
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch.distributions import Distribution, Normal, constraints
from torch.distributions.utils import broadcast_all

from torch.special import log_ndtr, ndtri

from quivers.distributions.densities import log_normalized
from quivers.errors import ShapeError, UnsupportedError

__all__ = ["Truncated", "Mixture"]


def _log_diff(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``log(exp(a) - exp(b))`` for ``a >= b``."""
    return a + torch.log(-torch.expm1(b - a))


def _ndtr(z: torch.Tensor) -> torch.Tensor:
    """The standard normal cdf, precise in the lower tail (torch's ``ndtr``
    at -8 is off by 2%; ``exp(log_ndtr)`` is not)."""
    return log_ndtr(z).exp()


class Truncated(Distribution):
    """``base`` (continuous, scalar) conditioned on ``low <= x <= high``;
    a missing bound is no bound.

    Examples
    --------
    >>> from torch.distributions import Exponential
    >>> d = Truncated(Exponential(torch.tensor(1.0)), high=torch.tensor(1.0))
    >>> bool((d.sample((100,)) <= 1.0).all())
    True
    """

    arg_constraints: dict = {}
    has_rsample = False

    def __init__(self, base: Distribution, low=None, high=None, validate_args=None) -> None:
        given = next((torch.as_tensor(b) for b in (low, high) if b is not None), torch.tensor(0.0))
        dtype = given.dtype if given.is_floating_point() else torch.get_default_dtype()
        low = torch.tensor(-math.inf, dtype=dtype) if low is None else torch.as_tensor(low)
        high = torch.tensor(math.inf, dtype=dtype) if high is None else torch.as_tensor(high)
        low, high = broadcast_all(low, high)
        batch = torch.broadcast_shapes(base.batch_shape, low.shape)
        self.base = base.expand(batch)
        self.low, self.high = low.expand(batch), high.expand(batch)
        super().__init__(batch, validate_args=validate_args)

    @constraints.dependent_property(is_discrete=False, event_dim=0)
    def support(self) -> constraints.Constraint:
        return constraints.interval(self.low, self.high)

    def expand(self, batch_shape, _instance=None) -> Truncated:
        s = torch.Size(batch_shape)
        return Truncated(self.base.expand(s), self.low.expand(s), self.high.expand(s), False)

    def _cdf(self, x: torch.Tensor, edge: float) -> torch.Tensor:
        """The base's cdf at ``x``: ``edge`` where ``x`` is infinite, 0 below
        the base's support (a cdf there is negative or NaN)."""
        finite = torch.isfinite(x)
        f = self.base.cdf(torch.where(finite, x, 0.0))
        f = torch.nan_to_num(f, nan=0.0).clamp(0.0, 1.0)
        return torch.where(finite, f, edge)

    def log_mass(self) -> torch.Tensor:
        """``log(F(high) - F(low))``, the log probability of the bounds."""
        if isinstance(self.base, Normal):
            from torch.special import log_ndtr

            a, b = self._standard(self.low, -1e3), self._standard(self.high, 1e3)
            upper_tail = a > 0  # both bounds above the mean: mirror, Phi(-a) - Phi(-b)
            hi = torch.where(upper_tail, log_ndtr(-a), log_ndtr(b))
            lo = torch.where(upper_tail, log_ndtr(-b), log_ndtr(a))
            return _log_diff(hi, lo)
        return torch.log(self._cdf(self.high, 1.0) - self._cdf(self.low, 0.0))

    def _standard(self, bound: torch.Tensor, edge: float) -> torch.Tensor:
        """``(bound - loc) / scale`` of a Normal base; an infinite bound is
        ``edge`` (+-1e3, where log_ndtr is 0 or about -5e5), kept out of the
        arithmetic so that its gradient is 0, not NaN."""
        finite = torch.isfinite(bound)
        z = (torch.where(finite, bound, 0.0) - self.base.loc) / self.base.scale
        return torch.where(finite, z, edge)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        inside = (value >= self.low) & (value <= self.high)
        lp = self.base.log_prob(torch.where(inside, value, self._inner())) - self.log_mass()
        return torch.where(inside, lp, -math.inf)

    def _inner(self) -> torch.Tensor:
        """A point inside the bounds (and the base's support)."""
        lo, hi = self.low, self.high
        mid = torch.where(torch.isfinite(lo) & torch.isfinite(hi), (lo + hi) / 2, torch.where(torch.isfinite(lo), lo + 1, hi - 1))
        return torch.where(torch.isfinite(lo) | torch.isfinite(hi), mid, torch.zeros_like(mid))

    def sample(self, sample_shape=torch.Size()) -> torch.Tensor:
        """Exact draws by inversion, ``F^-1(F(low) + u (F(high) - F(low)))``
        in float64: with the base's quantile function, or its cdf inverted
        by bisection where it has none (Gamma). A Normal's bounds above its
        mean are mirrored below it, where ``ndtr`` keeps its precision, so a
        far tail (``low=8``) is drawn as exactly as its center. A base
        without a cdf, or bounds whose probability float64 cannot resolve,
        is an :class:`~quivers.errors.UnsupportedError`, never a clamped
        draw; only the rounding of a draw back into ``[low, high]`` is
        clamped."""
        with torch.no_grad():
            shape = self._extended_shape(sample_shape)
            low, high = self.low.double(), self.high.double()
            if isinstance(self.base, Normal):
                loc, scale = self.base.loc.double(), self.base.scale.double()
                a, b = (low - loc) / scale, (high - loc) / scale
                upper = a > 0  # both bounds above the mean: draw -z between -high and -low
                lo = torch.where(upper, _ndtr(-b), _ndtr(a))
                hi = torch.where(upper, _ndtr(-a), _ndtr(b))
                def quantile(u: torch.Tensor) -> torch.Tensor:
                    z = ndtri(u)
                    return loc + scale * torch.where(upper, -z, z)
            else:
                try:
                    lo, hi = self._cdf(low, 0.0), self._cdf(high, 1.0)
                except NotImplementedError:
                    raise UnsupportedError(
                        f"cannot draw from a truncated {type(self.base).__name__}: it has no cumulative "
                        "distribution function to invert",
                        hint="truncate a family with a cdf (see quivers.distributions.catalog.TRUNCATABLE)",
                    ) from None
                def quantile(u: torch.Tensor) -> torch.Tensor:
                    try:
                        return self.base.icdf(u)
                    except NotImplementedError:
                        return self._bisect(u, low, high)
            self._check_mass(lo, hi)
            x = self._invert(quantile, lo, hi, shape)
            return torch.minimum(torch.maximum(x, low), high).to(torch.promote_types(self.low.dtype, self.high.dtype))

    def _check_mass(self, lo: torch.Tensor, hi: torch.Tensor) -> None:
        """The bounds hold enough probability that inversion in float64
        draws from a continuum, not from a handful of values."""
        resolution = torch.finfo(torch.float64).eps * hi.abs().clamp_min(torch.finfo(torch.float64).tiny)
        if bool(((hi - lo) < resolution * 2.0**20).any()):
            mass = float((hi - lo).min())
            raise UnsupportedError(
                f"cannot draw from a truncated {type(self.base).__name__}: its bounds hold probability {mass:.3g} "
                "under it, too far in its upper tail for inversion in float64 to resolve",
                hint="move the bounds toward the bulk of the family, or reparametrize",
            )

    @staticmethod
    def _invert(quantile, lo: torch.Tensor, hi: torch.Tensor, shape: torch.Size) -> torch.Tensor:
        """``quantile`` at uniform points between ``lo`` and ``hi``; a point
        that lands on an open end (probability zero, an infinite quantile)
        is drawn again."""
        def draw() -> torch.Tensor:
            return quantile(lo + (hi - lo) * torch.rand(shape, dtype=torch.float64, device=lo.device))

        x = draw()
        for _ in range(16):
            bad = ~torch.isfinite(x)
            if not bool(bad.any()):
                return x
            x = torch.where(bad, draw(), x)
        raise UnsupportedError("cannot draw from the truncation: its quantile function gives non-finite values")

    def _bisect(self, u: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        """The base's cdf inverted at ``u`` by bisection, to the precision of
        float64: bracketed by the bounds (or the base's support), an open
        side widened until it holds ``u``."""
        support = self.base.support
        s_lo, s_hi = getattr(support, "lower_bound", None), getattr(support, "upper_bound", None)
        a = torch.where(torch.isfinite(low), low, float(s_lo) if s_lo is not None else -1.0).expand(u.shape)
        b = torch.where(torch.isfinite(high), high, float(s_hi) if s_hi is not None else math.inf).expand(u.shape)
        b = torch.where(torch.isfinite(b), b, a + 1.0)
        for _ in range(2100):  # doubling reaches any float64
            wide_a, wide_b = self._cdf(a, 0.0) > u, self._cdf(b, 1.0) < u
            if not bool((wide_a | wide_b).any()):
                break
            w = b - a
            a, b = torch.where(wide_a, a - w, a), torch.where(wide_b, b + w, b)
        for _ in range(2100):
            m = (a + b) / 2
            done = (m <= a) | (m >= b)
            if bool(done.all()):
                break
            left = self._cdf(m, 0.0) >= u
            a, b = torch.where(~left & ~done, m, a), torch.where(left & ~done, m, b)
        return (a + b) / 2


class Mixture(Distribution):
    """A finite mixture: component ``k`` of ``components`` with probability
    proportional to the last axis of ``weights`` (or ``softmax(logits)``).

    Examples
    --------
    >>> from torch.distributions import Normal
    >>> d = Mixture(torch.tensor([1.0, 1.0]), [Normal(torch.tensor(-1.0), torch.tensor(1.0)),
    ...                                         Normal(torch.tensor(1.0), torch.tensor(1.0))])
    >>> d.mean
    tensor(0.)
    """

    arg_constraints: dict = {}

    def __init__(self, weights: torch.Tensor, components: Sequence[Distribution], key: str = "weights",
                 validate_args=None) -> None:
        if weights.dim() == 0 or weights.shape[-1] != len(components):
            raise ShapeError(
                f"`Mixture` has {len(components)} components but its {key} have "
                f"{weights.shape[-1] if weights.dim() else 'no'} entries along their last axis",
                hint="give one weight per component",
            )
        batch = torch.broadcast_shapes(weights.shape[:-1], *(c.batch_shape for c in components))
        self.log_weights = log_normalized(weights, key).expand(batch + weights.shape[-1:])
        self.components = [c.expand(batch) for c in components]
        super().__init__(batch, validate_args=validate_args)

    @constraints.dependent_property(event_dim=0)
    def support(self) -> constraints.Constraint:
        return self.components[0].support

    def expand(self, batch_shape, _instance=None) -> Mixture:
        s = torch.Size(batch_shape)
        return Mixture(self.log_weights.expand(s + self.log_weights.shape[-1:]), [c.expand(s) for c in self.components],
                       "logits", False)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        parts = torch.stack(torch.broadcast_tensors(*(c.log_prob(value) for c in self.components)), -1)
        return torch.logsumexp(self.log_weights + parts, -1)

    def sample(self, sample_shape=torch.Size()) -> torch.Tensor:
        with torch.no_grad():
            shape = self._extended_shape(sample_shape)
            draws = torch.stack([c.sample(sample_shape).expand(shape).to(self.log_weights.dtype) for c in self.components], -1)
            k = torch.distributions.Categorical(logits=self.log_weights.expand(shape + draws.shape[-1:])).sample()
            return draws.gather(-1, k[..., None])[..., 0]

    @property
    def mean(self) -> torch.Tensor:
        means = torch.stack(torch.broadcast_tensors(*(c.mean for c in self.components)), -1)
        return (self.log_weights.exp() * means).sum(-1)
