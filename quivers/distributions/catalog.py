"""The families beyond the core registry: bounded, heavy-tailed and
circular laws, count and ordinal models, zero inflation and hurdles,
truncation and mixtures.

torch's classes are used where torch has the family (Weibull, Kumaraswamy,
Gumbel, VonMises, Chi2); the rest, and ContinuousBernoulli (whose torch
normalizer loses digits at large logits), are written in
:mod:`quivers.distributions.continuous`, :mod:`~quivers.distributions.discrete`
and :mod:`~quivers.distributions.combinators`. Registering happens on import
of :mod:`quivers.distributions`.

Laws
----
- Parameters keep torch's names where torch has the family, and the
  peer's QVR names otherwise: ``ZeroInflatedPoisson(zero_prob, rate)``,
  ``BetaBinomial(total_count, concentration1, concentration0)``,
  ``OrderedLogistic(predictor, cutpoints)``, ``HalfStudentT(df, scale)``.
- ``Truncated(base, low, high)`` has the parameters of ``base`` plus the
  bounds given; ``Mixture(weights, c_0, ..., c_{K-1})`` has ``weights`` (or
  ``logits``) plus those of each component ``c_k`` suffixed ``_k``.
- A count family's hurdle or inflation ``zero_prob`` is a probability;
  ``OrderedLogistic``'s constant cutpoints must increase.

Examples
--------
>>> from quivers.distributions import family
>>> family("Truncated", family("Normal", 0.0, 1.0), low=0.0)
Truncated(loc=0.0, scale=1.0, low=0.0)
>>> family("Mixture", [1.0, 3.0], family("Normal", -1.0, 1.0), family("Normal", 1.0, 1.0))
Mixture(loc_0=-1.0, scale_0=1.0, loc_1=1.0, scale_1=1.0, weights=tensor([1., 3.]))
>>> family("Truncated", family("StudentT", 3.0), low=0.0)
Traceback (most recent call last):
...
quivers.errors.QuiversTypeError: `Truncated` needs a family with a cumulative distribution function; `StudentT` has none (truncatable: Cauchy, Exponential, Gamma, Gumbel, HalfCauchy, HalfNormal, Laplace, LogNormal, Logistic, LogitNormal, Normal, Weibull)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import torch
from torch.distributions import Distribution, constraints

from quivers.distributions import combinators, continuous, discrete
from quivers.distributions.families import FAMILIES, Family, FamilySpec, ParamSpec, bind, register
from quivers.errors import QuiversTypeError

__all__ = ["TRUNCATABLE", "truncated_spec", "mixture_spec"]

D = torch.distributions
_real = constraints.real
_positive = constraints.positive
_unit = constraints.unit_interval
_count = constraints.nonnegative_integer
_weights = constraints.independent(constraints.greater_than_eq(0.0), 1)


def _float(p: dict[str, torch.Tensor], key: str = "total_count") -> dict[str, torch.Tensor]:
    """``p`` with its count as floating point (lgamma of a long fails)."""
    t = p.get(key)
    if t is not None and not torch.is_floating_point(t):
        ref = next((v for v in p.values() if torch.is_floating_point(v)), None)
        p = {**p, key: t.to(ref.dtype if ref is not None else torch.get_default_dtype())}
    return p


def _spec(name: str, params, make, support, **kw) -> FamilySpec:
    def build(p: dict[str, torch.Tensor]) -> Distribution:
        return make(_float(p))

    return register(FamilySpec(name, tuple(params), build, support, **kw))


def _nb(p: Mapping[str, torch.Tensor]) -> Distribution:
    if "logits" in p:
        return D.NegativeBinomial(p["total_count"], logits=p["logits"], validate_args=False)
    return D.NegativeBinomial(p["total_count"], probs=p["probs"], validate_args=False)


_probs = (ParamSpec("probs", _unit), ParamSpec("logits"))
_gate = ParamSpec("zero_prob", _unit)
_loc, _scale = ParamSpec("loc"), ParamSpec("scale", _positive)
_fixed = {
    "positive": lambda p: _positive,
    "unit": lambda p: _unit,
    "real": lambda p: _real,
    "count": lambda p: _count,
}

_PEER = {"mu": "loc", "sigma": "scale"}  # the peer's keywords for the Normal underneath
_spec("LogitNormal", (_loc, _scale), lambda p: continuous.LogitNormal(p["loc"], p["scale"]), _fixed["unit"],
      aliases=_PEER)
_spec("HalfStudentT", (ParamSpec("df", _positive), _scale), lambda p: continuous.HalfStudentT(p["df"], p["scale"]),
      _fixed["positive"])
_spec("Logistic", (_loc, _scale), lambda p: continuous.Logistic(p["loc"], p["scale"]), _fixed["real"])
_spec("Weibull", (_scale, ParamSpec("concentration", _positive)),
      lambda p: D.Weibull(p["scale"], p["concentration"], validate_args=False), _fixed["positive"])
_spec("Kumaraswamy", (ParamSpec("concentration1", _positive), ParamSpec("concentration0", _positive)),
      lambda p: D.Kumaraswamy(p["concentration1"], p["concentration0"], validate_args=False), _fixed["unit"])
_spec("Gumbel", (_loc, _scale), lambda p: D.Gumbel(p["loc"], p["scale"], validate_args=False), _fixed["real"])
_spec("VonMises", (_loc, ParamSpec("concentration", _positive)),
      lambda p: D.VonMises(p["loc"], p["concentration"], validate_args=False),
      # an angle: on the real line its density would repeat forever (improper)
      lambda p: constraints.interval(-math.pi, math.pi))
_spec("Chi2", (ParamSpec("df", _positive),), lambda p: D.Chi2(p["df"], validate_args=False), _fixed["positive"])
_spec("ContinuousBernoulli", (), lambda p: continuous.ContinuousBernoulli(**p), _fixed["unit"],
      alternatives=(_probs,))
_spec(
    "BetaBinomial",
    (ParamSpec("total_count", _count), ParamSpec("concentration1", _positive), ParamSpec("concentration0", _positive)),
    lambda p: discrete.BetaBinomial(p["total_count"], p["concentration1"], p["concentration0"]),
    lambda p: constraints.integer_interval(0, int(p["total_count"].max()) if "total_count" in p else 0),
    discrete=True, dependent=True, support_params=("total_count",),
)


def _multinomial(p: Mapping[str, torch.Tensor]) -> Distribution:
    probs = torch.softmax(p["logits"], -1) if "logits" in p else p["probs"]
    return discrete.Multinomial(p["total_count"], probs)


_spec(
    "Multinomial",
    (ParamSpec("total_count", _count),),
    _multinomial,
    lambda p: discrete.CountVector(p["total_count"]) if "total_count" in p else constraints.independent(_count, 1),
    alternatives=((ParamSpec("probs", _weights, event_rank=1), ParamSpec("logits", event_rank=1)),),
    event_rank=1, discrete=True, dependent=True, support_params=("total_count",),
)
_spec(
    "DirichletMultinomial",
    (ParamSpec("total_count", _count), ParamSpec("concentration", constraints.independent(_positive, 1), event_rank=1)),
    lambda p: discrete.DirichletMultinomial(p["total_count"], p["concentration"]),
    lambda p: discrete.CountVector(p["total_count"]) if "total_count" in p else constraints.independent(_count, 1),
    event_rank=1, discrete=True, dependent=True, support_params=("total_count",),
)
_spec(
    "OrderedLogistic",
    (ParamSpec("predictor"), ParamSpec("cutpoints", constraints.real_vector, event_rank=1)),
    lambda p: discrete.OrderedLogistic(p["predictor"], p["cutpoints"]),
    lambda p: constraints.integer_interval(0, p["cutpoints"].shape[-1] if "cutpoints" in p and p["cutpoints"].dim() else 1),
    discrete=True, dependent=True, support_params=("cutpoints",),
)
_spec("ZeroInflatedPoisson", (_gate, ParamSpec("rate", constraints.nonnegative)),
      lambda p: discrete.ZeroInflated(D.Poisson(p["rate"], validate_args=False), p["zero_prob"]),
      _fixed["count"], discrete=True)
_spec("HurdlePoisson", (_gate, ParamSpec("rate", _positive)),
      lambda p: discrete.Hurdle(D.Poisson(p["rate"], validate_args=False), p["zero_prob"]),
      _fixed["count"], discrete=True)
_nb_params = (_gate, ParamSpec("total_count", _positive))
_spec("ZeroInflatedNegativeBinomial", _nb_params,
      lambda p: discrete.ZeroInflated(_nb(p), p["zero_prob"]), _fixed["count"], discrete=True, alternatives=(_probs,))
_spec("HurdleNegativeBinomial", _nb_params,
      lambda p: discrete.Hurdle(_nb(p), p["zero_prob"]), _fixed["count"], discrete=True, alternatives=(_probs,))


# ---------------------------------------------------------------- truncation

TRUNCATABLE = frozenset({
    "Normal", "HalfNormal", "LogNormal", "Exponential", "Gamma", "Cauchy", "HalfCauchy", "Laplace",
    "Weibull", "Gumbel", "Logistic", "LogitNormal",
})
"""The families ``Truncated`` takes: those with a cumulative distribution function."""

_DERIVED: dict[tuple, FamilySpec] = {}


def _bounds_support(base: FamilySpec, p: dict[str, torch.Tensor]) -> constraints.Constraint:
    """``[low, high]`` cut to the base's support."""
    inner = base.support({k: v for k, v in p.items() if k not in ("low", "high")})
    lo = getattr(inner, "lower_bound", None)
    hi = getattr(inner, "upper_bound", None)
    low, high = p.get("low"), p.get("high")
    if low is not None and lo is not None:
        low = torch.maximum(torch.as_tensor(low), torch.as_tensor(lo, dtype=torch.as_tensor(low).dtype))
    low = lo if low is None else low
    if high is not None and hi is not None:
        high = torch.minimum(torch.as_tensor(high), torch.as_tensor(hi, dtype=torch.as_tensor(high).dtype))
    high = hi if high is None else high
    if low is not None and high is not None:
        return constraints.interval(low, high)
    if low is not None:
        return constraints.greater_than(low)
    if high is not None:
        return constraints.less_than(high)
    return _real


def truncated_spec(base: FamilySpec, bounds: tuple[str, ...], name: str = "Truncated") -> FamilySpec:
    """The spec of ``base`` truncated to the ``bounds`` given (``low``,
    ``high`` or both): its parameters, then the bounds.

    Examples
    --------
    >>> [p.name for p in truncated_spec(FAMILIES["Normal"], ("low",)).params]
    ['loc', 'scale', 'low']
    """
    if base.name not in TRUNCATABLE:
        raise QuiversTypeError(
            f"`Truncated` needs a family with a cumulative distribution function; `{base.name}` has none "
            f"(truncatable: {', '.join(sorted(TRUNCATABLE))})"
        )
    key = (id(base), bounds, name)
    if key not in _DERIVED:
        names = [p.name for p in base.params]

        def make(p: dict[str, torch.Tensor]) -> Distribution:
            inner = base.make({k: v for k, v in p.items() if k not in ("low", "high")})
            return combinators.Truncated(inner, p.get("low"), p.get("high"))

        _DERIVED[key] = FamilySpec(
            name,
            base.params + tuple(ParamSpec(b) for b in bounds),
            make,
            lambda p: _bounds_support(base, p),
            alternatives=base.alternatives,
            dependent=True,
            support_params=tuple(dict.fromkeys([*bounds, *(n for n in names if not base.static_support)])),
            parts=(base,),
            recipe=(truncated_spec, (base, bounds, name)),
        )
    return _DERIVED[key]


def _truncate(*args: Any, **kwargs: Any) -> Family:
    spec = FAMILIES["Truncated"]
    given = dict(zip(("base", "low", "high"), args))
    if len(args) > 3:
        raise QuiversTypeError(f"`Truncated` takes at most 3 positional arguments (base, low, high), got {len(args)}")
    for key, value in kwargs.items():
        p = spec.param(key)
        if p.name in given:
            raise QuiversTypeError(f"`Truncated` got two values for parameter `{key}`")
        given[p.name] = value
    base = given.pop("base", None)
    if not isinstance(base, Family):
        raise QuiversTypeError(
            f"`Truncated` takes a family first, e.g. `Truncated(Normal(0.0, 1.0), low=0.0)`, got {base!r}"
        )
    if base.spec.combine is not None or base.spec.discrete or base.event_rank:
        raise QuiversTypeError(f"`Truncated` takes a continuous family of scalars, not {base!r}")
    if not given:
        raise QuiversTypeError("`Truncated` needs `low`, `high` or both")
    bounds = tuple(b for b in ("low", "high") if b in given)
    derived = truncated_spec(base.spec, bounds)
    return bind(derived, (), {**base.args, **given})


register(FamilySpec("Truncated", (ParamSpec("base"), ParamSpec("low"), ParamSpec("high")), None, None,
                    combine=_truncate))
register(dataclasses.replace(truncated_spec(FAMILIES["Normal"], ("low", "high"), "TruncatedNormal"), aliases=_PEER))


# ---------------------------------------------------------------- mixtures


def mixture_spec(parts: tuple[FamilySpec, ...]) -> FamilySpec:
    """The spec of a mixture of ``parts``: ``weights`` or ``logits`` along
    the component axis, then each part's parameters suffixed ``_k``.

    Examples
    --------
    >>> spec = mixture_spec((FAMILIES["Normal"], FAMILIES["Poisson"]))
    Traceback (most recent call last):
    ...
    quivers.errors.QuiversTypeError: the components of `Mixture` must all be discrete or all continuous: Normal, Poisson
    """
    names = ", ".join(p.name for p in parts)
    # a PointMass is an atom: a mass where counts have masses, no density beside a continuous law
    rest = [p for p in parts if p.name != "PointMass"]
    if not rest or not all(p.discrete for p in rest) and len(rest) < len(parts):
        raise QuiversTypeError(
            f"a `PointMass` in `Mixture` is an atom, which has a mass and no density, so it mixes with discrete "
            f"components only: {names}", hint="a zero-inflated count is `Mixture(w, PointMass(0), Poisson(rate))`")
    if len({p.discrete for p in rest}) > 1:
        raise QuiversTypeError(f"the components of `Mixture` must all be discrete or all continuous: {names}")
    for p in parts:
        if p.event_rank or p.improper or p.combine is not None:
            raise QuiversTypeError(f"`Mixture` takes proper families of scalars, not `{p.name}`")
    static = [p for p in rest if p.static_support]
    if len(static) == len(rest) and len({repr(p.support({})) for p in rest}) > 1:
        raise QuiversTypeError(f"the components of `Mixture` must share a support: {names}")
    first = parts.index(rest[0])  # the component whose support is the mixture's
    key = ("Mixture",) + tuple(id(p) for p in parts)
    if key not in _DERIVED:
        def rename(p: ParamSpec, k: int) -> ParamSpec:
            return dataclasses.replace(p, name=f"{p.name}_{k}")

        params = tuple(rename(q, k) for k, part in enumerate(parts) for q in part.params)
        groups = tuple(tuple(rename(q, k) for q in g) for k, part in enumerate(parts) for g in part.alternatives)
        own = (ParamSpec("weights", _weights, event_rank=1), ParamSpec("logits", event_rank=1))

        def split(p: Mapping[str, torch.Tensor], k: int) -> dict[str, torch.Tensor]:
            suffix = f"_{k}"
            return {n[: -len(suffix)]: v for n, v in p.items() if n.endswith(suffix)}

        def make(p: dict[str, torch.Tensor]) -> Distribution:
            key = "logits" if "logits" in p else "weights"
            return combinators.Mixture(p[key], [part.make(split(p, k)) for k, part in enumerate(parts)], key)

        _DERIVED[key] = FamilySpec(
            "Mixture",
            params,
            make,
            lambda p: parts[first].support(split(p, first)),
            alternatives=(own,) + groups,
            discrete=parts[first].discrete,
            dependent=len(static) < len(rest),
            parts=parts,
            aliases={"probs": "weights"},
            support_params=tuple(f"{q.name}_{first}" for q in parts[first].params
                                 + tuple(x for g in parts[first].alternatives for x in g)),
            recipe=(mixture_spec, (parts,)),
        )
    return _DERIVED[key]


def _mix(*args: Any, **kwargs: Any) -> Family:
    spec = FAMILIES["Mixture"]
    for key in kwargs:
        spec.param(spec.aliases.get(key, key))
    parts = [a for a in args if isinstance(a, Family)]
    rest = [a for a in args if not isinstance(a, Family)]
    if len(rest) > 1 or (rest and args[0] is not rest[0]):
        raise QuiversTypeError(
            "`Mixture` takes its weights first, then its component families: `Mixture(w, Normal(a, s), Normal(b, s))`"
        )
    if not parts:
        raise QuiversTypeError("`Mixture` needs at least one component family, e.g. `Mixture(w, Normal(a, s), Normal(b, s))`")
    derived = mixture_spec(tuple(p.spec for p in parts))
    given = {f"{k}_{i}": v for i, part in enumerate(parts) for k, v in part.args.items()}
    if rest:
        if "weights" in kwargs or "probs" in kwargs:
            raise QuiversTypeError("`Mixture` got two values for parameter `weights`")
        given["weights"] = rest[0]
    return bind(derived, (), {**given, **kwargs})


register(FamilySpec("Mixture", (), None, None, alternatives=((ParamSpec("weights", _weights, event_rank=1),
                                                               ParamSpec("logits", event_rank=1)),),
                    combine=_mix, aliases={"probs": "weights"}))


NEW = (
    "LogitNormal", "HalfStudentT", "Logistic", "Weibull", "Kumaraswamy", "Gumbel", "VonMises", "Chi2",
    "ContinuousBernoulli", "BetaBinomial", "Multinomial", "DirichletMultinomial", "OrderedLogistic",
    "ZeroInflatedPoisson", "ZeroInflatedNegativeBinomial", "HurdlePoisson", "HurdleNegativeBinomial",
    "TruncatedNormal", "Truncated", "Mixture",
)
"""The families this module registers."""
