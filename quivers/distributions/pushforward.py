"""A point mass, and the law of a function of a random variable.

``PointMass(v)`` is the Dirac measure at ``v``. ``Pushforward(F, f)`` is
the law of ``f(X)`` for ``X ~ F``: a draw is ``f`` of a draw of ``F``, and
an observed ``y`` is scored through the inverse of ``f`` by the change of
variables formula, which needs ``f`` invertible with a known Jacobian.
The transforms are elementwise and named as QVR's functions are (``exp``,
``log``, ``sigmoid``, ``logit``, ``tanh``, ``softplus``, ``affine(loc,
scale)``; the peer's capitalized spellings ``Exp``, ``Affine`` too);
``abs`` and ``square`` are not invertible: they can be drawn from, and
scoring them is an :class:`~quivers.errors.UnsupportedError`.

Laws
----
- ``PointMass(v).log_prob(x)`` is ``0`` where ``x == v`` and ``-inf``
  elsewhere; every draw is ``v``.
- For ``f`` invertible, ``Pushforward(F, f).log_prob(y) =
  F.log_prob(f^-1(y)) + log |d f^-1 / dy|`` on the image of ``F``'s
  support and ``-inf`` off it: ``Pushforward(Normal(m, s), exp)`` is
  ``LogNormal(m, s)``, ``Pushforward(Normal(m, s), sigmoid)`` is
  ``LogitNormal(m, s)``.
- Its support is the image of ``F``'s support under ``f`` (``f`` is
  monotone), so a latent drawn from it is unconstrained by the bijection
  onto that image.

Examples
--------
>>> import torch
>>> from quivers.distributions import family
>>> d = family("Pushforward", family("Normal", 0.0, 1.0), "exp")
>>> d
Pushforward(loc=0.0, scale=1.0, transform='exp')
>>> lp = d.build({"loc": torch.tensor(0.0), "scale": torch.tensor(1.0)}).log_prob(torch.tensor(1.0))
>>> round(float(lp), 4)  # the standard LogNormal at 1
-0.9189
>>> family("PointMass", 2.0).build({"value": torch.tensor(2.0)}).log_prob(torch.tensor([2.0, 3.0]))
tensor([0., -inf])
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch.distributions import Distribution, constraints

from quivers.capture import capturing
from quivers.distributions.families import FAMILIES, Family, FamilySpec, ParamSpec, bind, register
from quivers.errors import QuiversTypeError, UnknownNameError, UnsupportedError

__all__ = ["Transform", "TRANSFORMS", "transform", "BoundTransform", "Dirac", "Pushed", "pushforward_spec", "image"]

Fn = Callable[..., torch.Tensor]


@dataclass(frozen=True)
class Transform:
    """An elementwise function ``forward(x, *params)``; where it is
    invertible, ``inverse(y, *params)`` and ``log_det(y, *params)``, the
    log of ``|d inverse / dy|``. It is increasing in ``x`` for every
    parameter value, except ``affine`` with a negative scale."""

    name: str
    forward: Fn
    inverse: Fn | None = None
    log_det: Fn | None = None
    params: tuple[str, ...] = ()
    stan: str | None = None
    """Stan's function of the inverse, with ``{y}`` and the parameters."""
    stan_log_det: str | None = None

    @property
    def invertible(self) -> bool:
        return self.inverse is not None


def _log1mexp(x: torch.Tensor) -> torch.Tensor:
    """``log(1 - exp(-x))`` for ``x > 0``."""
    return torch.log(-torch.expm1(-x))


TRANSFORMS: dict[str, Transform] = {
    t.name: t
    for t in (
        Transform("exp", torch.exp, torch.log, lambda y: -torch.log(y), stan="log({y})", stan_log_det="-log({y})"),
        Transform("log", torch.log, torch.exp, lambda y: y, stan="exp({y})", stan_log_det="{y}"),
        Transform("sigmoid", torch.sigmoid, torch.logit, lambda y: -torch.log(y) - torch.log1p(-y),
                  stan="logit({y})", stan_log_det="-log({y}) - log1m({y})"),
        Transform("logit", torch.logit, torch.sigmoid, lambda y: F.logsigmoid(y) + F.logsigmoid(-y),
                  stan="inv_logit({y})", stan_log_det="log_inv_logit({y}) + log1m_inv_logit({y})"),
        Transform("tanh", torch.tanh, torch.atanh, lambda y: -torch.log1p(-y * y),
                  stan="atanh({y})", stan_log_det="-log1m(square({y}))"),
        Transform("softplus", F.softplus, lambda y: y + _log1mexp(y), lambda y: -_log1mexp(y),
                  stan="({y} + log1m_exp(-{y}))", stan_log_det="-log1m_exp(-{y})"),
        Transform("affine", lambda x, a, b: a + b * x, lambda y, a, b: (y - a) / b,
                  lambda y, a, b: -torch.log(torch.abs(b)) + 0 * y, ("loc_f", "scale_f"),
                  stan="({y} - {loc_f}) / {scale_f}", stan_log_det="-log(abs({scale_f}))"),
        Transform("abs", torch.abs),
        Transform("square", torch.square),
    )
}
"""The transforms ``Pushforward`` takes, by name."""

_SPELLINGS = {"Exp": "exp", "Log": "log", "Sigmoid": "sigmoid", "Logit": "logit", "Tanh": "tanh",
              "Softplus": "softplus", "Affine": "affine", "Abs": "abs", "Square": "square"}
"""The peer's names of the transforms (its bijectors are capitalized)."""


def transform_name(name: str) -> str | None:
    """The transform ``name`` stands for, or None.

    >>> transform_name("Exp"), transform_name("exp"), transform_name("mu")
    ('exp', 'exp', None)
    """
    name = _SPELLINGS.get(name, name)
    return name if name in TRANSFORMS else None


@dataclass(frozen=True)
class BoundTransform:
    """A transform with its parameters (numbers or expressions), as a
    ``Pushforward`` argument: ``transform("affine", 1.0, 2.0)``."""

    transform: Transform
    args: tuple[Any, ...] = ()

    def __repr__(self) -> str:
        inner = ", ".join(repr(a) for a in self.args)
        return f"transform({self.transform.name!r}{', ' + inner if inner else ''})"


def transform(name: str, *args: Any) -> BoundTransform:
    """The transform ``name`` applied to its parameters.

    Examples
    --------
    >>> transform("affine", 1.0, 2.0)
    transform('affine', 1.0, 2.0)
    >>> transform("cube")
    Traceback (most recent call last):
    ...
    quivers.errors.UnknownNameError: unknown transform `cube` of `Pushforward`; transforms are exp, log, sigmoid, logit, tanh, softplus, affine, abs, square
    """
    canonical = transform_name(name) if isinstance(name, str) else None
    if canonical is None:
        raise UnknownNameError(
            f"unknown transform `{name}` of `Pushforward`; transforms are {', '.join(TRANSFORMS)}",
            name=str(name), candidates=TRANSFORMS,
        )
    t = TRANSFORMS[canonical]
    if len(args) != len(t.params):
        want = f"({', '.join(p[:-2] for p in t.params)})" if t.params else "no parameters"
        raise QuiversTypeError(f"the transform `{t.name}` takes {want}, got {len(args)} arguments")
    return BoundTransform(t, tuple(args))


# ------------------------------------------------------------ distributions


class Dirac(Distribution):
    """The point mass at ``value``: every draw is ``value``; the log
    density is 0 there and ``-inf`` elsewhere.

    Examples
    --------
    >>> d = Dirac(torch.tensor([1.0, 2.0]))
    >>> d.sample((2,))
    tensor([[1., 2.],
            [1., 2.]])
    """

    arg_constraints: dict = {}
    has_rsample = True
    support = constraints.real

    def __init__(self, value: torch.Tensor, validate_args=None) -> None:
        self.value = torch.as_tensor(value)
        super().__init__(self.value.shape, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None) -> Dirac:
        return Dirac(self.value.expand(torch.Size(batch_shape)), False)

    def rsample(self, sample_shape=torch.Size()) -> torch.Tensor:
        return self.value.expand(torch.Size(sample_shape) + self.batch_shape)

    def sample(self, sample_shape=torch.Size()) -> torch.Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape).clone()

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        dtype = self.value.dtype if self.value.is_floating_point() else torch.get_default_dtype()
        at = torch.as_tensor(x) == self.value
        return torch.where(at, torch.zeros((), dtype=dtype), torch.tensor(-math.inf, dtype=dtype))

    @property
    def mean(self) -> torch.Tensor:
        return self.value

    @property
    def variance(self) -> torch.Tensor:
        return torch.zeros_like(self.value)


def _bounds(c: constraints.Constraint) -> tuple[Any, Any]:
    """The lower and upper ends of a support on the real line."""
    if c is constraints.real:
        return -math.inf, math.inf
    if c in (constraints.positive, constraints.nonnegative):
        return 0.0, math.inf
    if c is constraints.unit_interval:
        return 0.0, 1.0
    lo, hi = getattr(c, "lower_bound", -math.inf), getattr(c, "upper_bound", math.inf)
    if not hasattr(c, "lower_bound") and not hasattr(c, "upper_bound"):
        raise QuiversTypeError(f"`Pushforward` takes a family on an interval of the real line, not one on {c}")
    return lo, hi


class _Image(constraints.Constraint):
    """The interval from ``lo`` to ``hi`` with the ends of :func:`_interval`
    (an infinite end open, a finite one open when the other is infinite),
    chosen per element: no branch on the ends' values, which a captured
    graph cannot keep (the ends move with an affine transform's latents)."""

    def __init__(self, lo: torch.Tensor, hi: torch.Tensor) -> None:
        self.lo, self.hi = lo, hi
        super().__init__()

    def check(self, value: torch.Tensor) -> torch.Tensor:
        lo, hi = self.lo, self.hi
        low, high = torch.isinf(lo), torch.isinf(hi)
        closed = (lo <= value) & (value <= hi)
        return torch.where(low & high, value == value,
                           torch.where(high, value > lo, torch.where(low, value < hi, closed)))


def _interval(lo: torch.Tensor, hi: torch.Tensor) -> constraints.Constraint:
    """The constraint of the interval from ``lo`` to ``hi`` (either may be infinite)."""
    if capturing():
        return _Image(lo, hi)
    low, high = bool(torch.isinf(lo).all()), bool(torch.isinf(hi).all())
    if low and high:
        return constraints.real
    if high:
        return constraints.positive if bool((lo == 0).all()) else constraints.greater_than(lo)
    if low:
        return constraints.less_than(hi)
    if bool((lo == 0).all()) and bool((hi == 1).all()):
        return constraints.unit_interval
    return constraints.interval(lo, hi)


def image(t: Transform, support: constraints.Constraint, params: tuple = ()) -> constraints.Constraint:
    """The image of ``support`` under the monotone transform ``t``.

    >>> image(TRANSFORMS["exp"], constraints.real)
    GreaterThan(lower_bound=0.0)
    >>> image(TRANSFORMS["logit"], constraints.unit_interval)
    Real()
    """
    if not t.invertible:
        return constraints.real
    lo, hi = (torch.as_tensor(b, dtype=torch.get_default_dtype()) for b in _bounds(support))
    a, b = t.forward(lo, *params), t.forward(hi, *params)
    return _interval(torch.minimum(a, b), torch.maximum(a, b))


class Pushed(Distribution):
    """The law of ``t(X)`` for ``X ~ base``.

    Examples
    --------
    >>> from torch.distributions import Normal
    >>> d = Pushed(Normal(torch.tensor(0.0), torch.tensor(1.0)), TRANSFORMS["abs"])
    >>> bool((d.sample((5,)) >= 0).all())
    True
    >>> d.log_prob(torch.tensor(1.0))
    Traceback (most recent call last):
    ...
    quivers.errors.UnsupportedError: cannot score a value of `Pushforward(..., abs)`: `abs` is not invertible, so the value has no density by a change of variables; draw `x` from the base family and write `let y = abs(x)`
    """

    arg_constraints: dict = {}

    def __init__(self, base: Distribution, t: Transform, params: tuple[torch.Tensor, ...] = (),
                 validate_args=None) -> None:
        self.base, self.t, self.params = base, t, tuple(params)
        batch = torch.broadcast_shapes(base.batch_shape, *(torch.as_tensor(p).shape for p in self.params))
        if batch != base.batch_shape:
            self.base = base.expand(batch)
        super().__init__(batch, validate_args=validate_args)

    @property
    def has_rsample(self) -> bool:  # type: ignore[override]
        return self.base.has_rsample

    def expand(self, batch_shape, _instance=None) -> Pushed:
        s = torch.Size(batch_shape)
        return Pushed(self.base.expand(s), self.t, tuple(torch.as_tensor(p).expand(s) for p in self.params), False)

    def rsample(self, sample_shape=torch.Size()) -> torch.Tensor:
        return self.t.forward(self.base.rsample(sample_shape), *self.params)

    def sample(self, sample_shape=torch.Size()) -> torch.Tensor:
        with torch.no_grad():
            return self.t.forward(self.base.sample(sample_shape), *self.params)

    def _ends(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The ends of the base's support, as tensors, and a point inside it."""
        lo, hi = (torch.as_tensor(b, dtype=self._dtype()).expand(self.batch_shape) for b in _bounds(self.base.support))
        inside = torch.where(torch.isfinite(lo) & torch.isfinite(hi), (lo + hi) / 2,
                             torch.where(torch.isfinite(lo), lo + 1, torch.where(torch.isfinite(hi), hi - 1, 0.0)))
        return lo, hi, inside

    def _dtype(self) -> torch.dtype:
        ref = getattr(self.base, "loc", None)
        if ref is None:
            ref = next((v for v in vars(self.base).values() if isinstance(v, torch.Tensor) and v.is_floating_point()),
                       None)
        return ref.dtype if ref is not None else torch.get_default_dtype()

    @constraints.dependent_property(is_discrete=False, event_dim=0)
    def support(self) -> constraints.Constraint:
        return image(self.t, self.base.support, self.params)

    def log_prob(self, y: torch.Tensor) -> torch.Tensor:
        if not self.t.invertible:
            raise UnsupportedError(
                f"cannot score a value of `Pushforward(..., {self.t.name})`: `{self.t.name}` is not invertible, "
                "so the value has no density by a change of variables; draw `x` from the base family and write "
                f"`let y = {self.t.name}(x)`"
            )
        y = torch.as_tensor(y)
        inside = self.support.check(y)
        safe = torch.where(inside, y, self.t.forward(self._ends()[2], *self.params))
        x = self.t.inverse(safe, *self.params)
        lp = self.base.log_prob(x) + self.t.log_det(safe, *self.params)
        # at an end of an open image (sigmoid's 0) the two terms are -inf + inf: the density's limit is 0
        return torch.where(inside & ~torch.isnan(lp), lp, torch.tensor(-math.inf, dtype=lp.dtype))


# ------------------------------------------------------------ registry

_DERIVED: dict[tuple, FamilySpec] = {}


def pushforward_spec(base: FamilySpec, t: Transform | str) -> FamilySpec:
    """The spec of ``base`` pushed forward by ``t`` (a transform or its
    name): its parameters, then the transform's (``loc_f``, ``scale_f`` of
    ``affine``).

    Examples
    --------
    >>> [p.name for p in pushforward_spec(FAMILIES["Normal"], TRANSFORMS["affine"]).params]
    ['loc', 'scale', 'loc_f', 'scale_f']
    """
    if base.discrete or base.event_rank or base.improper or base.combine is not None:
        raise QuiversTypeError(f"`Pushforward` takes a proper continuous family of scalars, not `{base.name}`")
    t = TRANSFORMS[t] if isinstance(t, str) else t
    key = (id(base), t.name)
    if key not in _DERIVED:
        own = set(t.params)

        def split(p: Mapping[str, torch.Tensor]) -> tuple[dict, tuple]:
            return {k: v for k, v in p.items() if k not in own}, tuple(p[k] for k in t.params)

        def make(p: dict[str, torch.Tensor]) -> Distribution:
            inner, params = split(p)
            return Pushed(base.make(inner), t, params)

        _DERIVED[key] = FamilySpec(
            "Pushforward",
            base.params + tuple(ParamSpec(n) for n in t.params),
            make,
            lambda p: image(t, base.support(split(p)[0]), split(p)[1]),
            alternatives=base.alternatives,
            dependent=bool(t.params) or not base.static_support,
            support_params=tuple(dict.fromkeys([*t.params, *(() if base.static_support else
                                                             base.support_params or [q.name for q in base.params])])),
            parts=(base,),
            transform=t,
            recipe=(pushforward_spec, (base, t.name)),
        )
    return _DERIVED[key]


def _push(*args: Any, **kwargs: Any) -> Family:
    given = dict(zip(("base", "transform"), args))
    if len(args) > 2:
        raise QuiversTypeError(f"`Pushforward` takes 2 arguments (base, transform), got {len(args)}")
    for key, value in kwargs.items():
        key = "transform" if key == "f" else key
        if key not in ("base", "transform"):
            raise UnknownNameError(f"`Pushforward` has no parameter `{key}`; it takes `base`, `transform`",
                                   name=key, candidates=("base", "transform"))
        if key in given:
            raise QuiversTypeError(f"`Pushforward` got two values for parameter `{key}`")
        given[key] = value
    base, t = given.get("base"), given.get("transform")
    if not isinstance(base, Family):
        raise QuiversTypeError(
            f"`Pushforward` takes a family first, e.g. `Pushforward(Normal(0.0, 1.0), exp)`, got {base!r}")
    if isinstance(t, str):
        t = transform(t)
    if not isinstance(t, BoundTransform):
        raise QuiversTypeError(
            f"`Pushforward` takes a transform second ({', '.join(TRANSFORMS)}), got {t!r}")
    derived = pushforward_spec(base.spec, t.transform)
    return bind(derived, (), {**base.args, **dict(zip(t.transform.params, t.args))})


register(FamilySpec("Pushforward", (ParamSpec("base"), ParamSpec("transform")), None, None, combine=_push))
register(FamilySpec("PointMass", (ParamSpec("value"),), lambda p: Dirac(p["value"]), lambda p: constraints.real))
