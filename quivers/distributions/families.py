"""Distribution families: a registry over :mod:`torch.distributions`.

A :class:`FamilySpec` says what torch already knows about a family (its
class, parameter constraints, support) plus the three facts quivers needs
to place it on named plates: the event rank of each parameter, the event
rank of its value, and whether it is discrete. A :class:`Family` is a spec
applied to arguments; arguments may be numbers, tensors, or symbolic
expressions of the program layer, which evaluates them before calling
:meth:`Family.build`.

Laws
----
- ``family(name, *args)`` binds positional arguments in the order torch
  declares them; keyword arguments use torch's names.
- A constant argument outside its constraint is rejected when the family is
  built, naming the family and the parameter.
- ``Categorical`` takes positive unnormalized ``weights`` (normalized along
  the category axis) or ``logits``.

Examples
--------
>>> import torch
>>> fam = family("Normal", 0.0, 5.0)
>>> fam
Normal(loc=0.0, scale=5.0)
>>> fam.build({"loc": torch.tensor(0.0), "scale": torch.tensor(5.0)}).mean
tensor(0.)
>>> family("Categorical", torch.tensor([1.0, 3.0])).build(
...     {"weights": torch.tensor([1.0, 3.0])}).probs
tensor([0.2500, 0.7500])
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import pickle
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.distributions import Distribution, constraints
from torch.distributions import transforms as T

from quivers.capture import may_read
from quivers.distributions.densities import LOG_PROB, flat, half_flat, log_or_zero
from quivers.errors import InvalidValueError, QuiversTypeError, UnknownNameError, UnsupportedError

__all__ = ["ParamSpec", "FamilySpec", "Family", "FAMILIES", "family", "bind", "register", "ImproperFlat"]

_real = constraints.real
_positive = constraints.positive
_weights = constraints.independent(constraints.greater_than_eq(0.0), 1)


@dataclass(frozen=True, slots=True)
class ParamSpec:
    """One parameter of a family.

    ``event_rank`` counts the trailing axes that belong to one draw (a
    Dirichlet concentration has rank 1, a covariance matrix rank 2).
    """

    name: str
    constraint: constraints.Constraint = _real
    event_rank: int = 0
    default: float | None = None


@dataclass(frozen=True)
class FamilySpec:
    """What quivers knows about one distribution family.

    Parameters
    ----------
    name
        The family's name in QVR and in :data:`FAMILIES`.
    params
        Positional parameters, in order.
    make
        Builds the torch distribution from a dict of tensors.
    support
        The support, as a function of the parameter tensors.
    event_rank
        Trailing axes of a value that form one draw.
    alternatives
        Groups of parameters of which exactly one must be given (the first
        is positional), e.g. ``("weights", "logits")``.
    discrete
        Whether values are integers.
    log_prob
        The log density written out (:mod:`quivers.distributions.densities`),
        used instead of building the torch distribution to score a value;
        None to always build it.
    improper
        Whether the density does not integrate to one (Stan's flat priors):
        it scores values but cannot be drawn from.
    dependent
        Whether the support moves with the parameters (``TruncatedNormal``'s
        bounds, ``OrderedLogistic``'s number of cutpoints).
    support_params
        The parameters a dependent support reads (None: all of them), so a
        latent whose other parameters read names still has a fixed support.
    combine
        For a family made of families (``Truncated``, ``Mixture``): binds
        the arguments, families among them, into a :class:`Family` of a
        derived spec (see :mod:`quivers.distributions.combinators`).
    parts
        The specs a derived spec is made of (the truncated family, the
        components of a mixture), for emitters that translate them.
    transform
        For a ``Pushforward``: the transform the family's draws go through
        (:mod:`quivers.distributions.pushforward`).
    aliases
        Other names of parameters, as Pyro and NumPyro spell them: a
        Categorical's ``probs`` is its ``weights``; the peer's QVR
        writes the Normal under a ``LogitNormal`` with ``mu`` and ``sigma``.
    recipe
        For a derived spec: the call (function and arguments) that derives
        it, so that a pickled program reads it back.
    """

    name: str
    params: tuple[ParamSpec, ...]
    make: Callable[[dict[str, torch.Tensor]], Distribution]
    support: Callable[[dict[str, torch.Tensor]], constraints.Constraint]
    event_rank: int = 0
    alternatives: tuple[tuple[ParamSpec, ...], ...] = ()
    discrete: bool = False
    log_prob: Callable[[Mapping[str, torch.Tensor], torch.Tensor], torch.Tensor] | None = None
    improper: bool = False
    dependent: bool = False
    support_params: tuple[str, ...] | None = None
    combine: Callable[..., Family] | None = None
    parts: tuple[FamilySpec, ...] = ()
    aliases: Mapping[str, str] = field(default_factory=dict)
    transform: Any = None
    recipe: tuple[Callable[..., FamilySpec], tuple] | None = field(default=None, compare=False, repr=False)

    # A spec holds functions, which pickle cannot write by value: a
    # registered spec is written as its name, a derived one as the call that
    # derives it (its ``recipe``). Specs are immutable, so copies share them.
    def __reduce__(self) -> tuple:
        if FAMILIES.get(self.name) is self:
            return (registered, (self.name,))
        if self.recipe is not None:
            return self.recipe
        raise pickle.PicklingError(
            f"the family `{self.name}` is neither registered nor derived by a combinator, so it cannot be pickled; "
            "register it with quivers.distributions.families.register"
        )

    def __copy__(self) -> FamilySpec:
        return self

    def __deepcopy__(self, memo: dict) -> FamilySpec:
        return self

    @property
    def param_names(self) -> tuple[str, ...]:
        names = [p.name for p in self.params]
        for group in self.alternatives:
            names.extend(p.name for p in group)
        return tuple(names)

    def param(self, name: str) -> ParamSpec:
        for p in self.params + tuple(p for g in self.alternatives for p in g):
            if p.name == name:
                return p
        raise UnknownNameError(
            f"`{self.name}` has no parameter `{name}`; it takes {', '.join(f'`{n}`' for n in self.param_names)}",
            name=name,
            candidates=self.param_names,
        )

    @property
    def static_support(self) -> bool:
        """Whether the support is the same for every parameter value."""
        return not self.dependent and self.name not in {"Uniform", "Binomial", "Categorical"}


@dataclass(frozen=True)
class Family:
    """A family applied to arguments (numbers, tensors or expressions).

    Examples
    --------
    >>> HalfNormal(1.0)
    HalfNormal(scale=1.0)
    >>> HalfNormal(-1.0)
    Traceback (most recent call last):
    ...
    quivers.errors.InvalidValueError: `HalfNormal` parameter `scale` = -1.0 violates its constraint GreaterThan(lower_bound=0.0)
    """

    spec: FamilySpec
    args: Mapping[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def discrete(self) -> bool:
        return self.spec.discrete

    @property
    def event_rank(self) -> int:
        return self.spec.event_rank

    def build(self, params: Mapping[str, torch.Tensor]) -> Distribution:
        """The torch distribution for evaluated, broadcast parameters."""
        return self.spec.make(dict(params))

    def support(self, params: Mapping[str, torch.Tensor] | None = None) -> constraints.Constraint:
        """The support; ``params`` are needed only for dependent supports."""
        if params is None:
            params = {k: _as_tensor(v) for k, v in self.args.items() if _is_constant(v)}
            free = sorted(k for k in self.support_reads() if k not in params)
            if not self.spec.static_support and free:
                raise QuiversTypeError(
                    f"the support of `{self.name}` depends on non-constant parameters {free}"
                )
        return self.spec.support(dict(params))

    def support_reads(self) -> tuple[str, ...]:
        """The arguments the support depends on (none for a fixed support)."""
        if self.spec.static_support:
            return ()
        reads = self.spec.support_params
        return tuple(self.args) if reads is None else tuple(k for k in reads if k in self.args)

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={_short(v)}" for k, v in self.args.items())
        if self.spec.transform is not None:
            inner += f", transform={self.spec.transform.name!r}"
        return f"{self.name}({inner})"


def _short(value: Any) -> str:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return repr(value.item())
    return repr(value)


def _is_constant(value: Any) -> bool:
    return isinstance(value, (numbers.Number, torch.Tensor))


def _as_tensor(value: Any) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    return torch.tensor(float(value))


def _is_symbolic(value: Any) -> bool:
    # Names (str) and expressions of the program layer, which sits above this
    # one: anything carrying a sympy tree is evaluated later by the program.
    return isinstance(value, str) or hasattr(value, "sympy") or type(value).__module__.startswith("sympy")


def _bind_value(spec: FamilySpec, p: ParamSpec, value: Any) -> Any:
    """``value`` as the family will hold it: numbers stay numbers, arrays and
    lists become tensors (floating point unless the parameter counts), names
    and expressions stay symbolic; anything else is an error."""
    where = f"`{spec.name}` parameter `{p.name}`"
    if isinstance(value, bool) or (isinstance(value, torch.Tensor) and value.dtype == torch.bool):
        raise QuiversTypeError(f"{where} must be a number, got the boolean {value!r}")
    if isinstance(value, numbers.Real):
        return value.item() if hasattr(value, "item") else value  # numpy scalars become Python numbers
    if _is_symbolic(value):
        return value
    if not isinstance(value, torch.Tensor):
        if not isinstance(value, (list, tuple)) and not hasattr(value, "__array__"):
            raise QuiversTypeError(
                f"{where} must be a number, a tensor or an expression, got {type(value).__name__} `{value!r}`"
            )
        try:
            value = torch.as_tensor(value)
        except (TypeError, ValueError, RuntimeError) as err:
            raise QuiversTypeError(f"{where} is not an array of numbers: {err}") from None
    if torch.is_complex(value):
        raise QuiversTypeError(f"{where} must be real, got dtype {value.dtype}")
    counts = p.constraint in (constraints.nonnegative_integer, constraints.positive_integer)
    if not torch.is_floating_point(value) and not counts:
        value = value.to(torch.get_default_dtype())
    elif torch.is_floating_point(value) and value.dtype not in (torch.float32, torch.float64):
        value = value.to(torch.get_default_dtype())
    return value


def _check_constant(spec: FamilySpec, p: ParamSpec, value: Any) -> None:
    if not _is_constant(value):
        return
    t = _as_tensor(value)
    where = f"`{spec.name}` parameter `{p.name}` = {_short(value)}"
    if p.name == "logits":
        # -inf is a legitimate logit (a category of probability zero).
        if bool(torch.isnan(t).any()) or bool((t == float("inf")).any()):
            raise InvalidValueError(f"{where} is not finite (logits may be -inf, never NaN or +inf)")
        if t.dim() and t.shape[-1] and bool((t == float("-inf")).all(-1).any()):
            raise InvalidValueError(f"{where} has a row of logits that are all -inf")
        return
    if torch.is_floating_point(t) and not torch.isfinite(t).all():
        raise InvalidValueError(f"{where} is not finite")
    if p.event_rank == 2 and t.dim() < 2:
        raise InvalidValueError(f"{where} must be a matrix (a tensor with two trailing axes)")
    if p.name == "weights":
        ok = bool((t >= 0).all()) and (bool((t.sum(-1) > 0).all()) if t.dim() else bool(t > 0))
        if not ok or (t.dim() and t.shape[-1] == 0):
            raise InvalidValueError(
                f"{where} must be non-negative with a positive sum along its last (category) axis"
            )
        return
    constraint = p.constraint
    if p.event_rank and t.dim() < p.event_rank:
        # A scalar broadcasts to the event axis of the site: check it entrywise.
        while isinstance(constraint, constraints.independent):
            constraint = constraint.base_constraint
    ok = constraint.check(t)
    if not bool(torch.as_tensor(ok).all()):
        raise InvalidValueError(f"{where} violates its constraint {constraint}")


def _check_dependent(spec: FamilySpec, bound: Mapping[str, Any]) -> None:
    """Constraints that tie parameters together (a Uniform, or a truncation
    to both sides, needs low < high; cutpoints increase)."""
    if _is_constant(bound.get("low")) and _is_constant(bound.get("high")):
        low, high = _as_tensor(bound["low"]), _as_tensor(bound["high"])
        try:
            ok = bool((low < high).all())
        except RuntimeError:
            raise QuiversTypeError(
                f"`{spec.name}` parameters `low` {tuple(low.shape)} and `high` {tuple(high.shape)} do not broadcast"
            ) from None
        if not ok:
            raise InvalidValueError(
                f"`{spec.name}` needs `low` < `high`, got low={_short(bound['low'])}, high={_short(bound['high'])}"
            )
    cuts = bound.get("cutpoints")
    if _is_constant(cuts) and _as_tensor(cuts).dim() and not bool((_as_tensor(cuts).diff(dim=-1) > 0).all()):
        raise InvalidValueError(
            f"`{spec.name}` parameter `cutpoints` = {_short(cuts)} must increase along its last axis",
            hint="declare the cutpoints `ordered`, or sort them",
        )


FAMILIES: dict[str, FamilySpec] = {}


def register(spec: FamilySpec) -> FamilySpec:
    """Add a family to :data:`FAMILIES` (later registrations replace earlier)."""
    FAMILIES[spec.name] = spec
    return spec


def registered(name: str) -> FamilySpec:
    """The registered family ``name`` (how a pickled spec is read back).

    Examples
    --------
    >>> registered("Normal") is FAMILIES["Normal"]
    True
    """
    return FAMILIES[name]


def family(name: str, *args: Any, **kwargs: Any) -> Family:
    """Apply the registered family ``name`` to arguments.

    Positional arguments bind in the family's declared order; for families
    with alternative parameterizations (``probs``/``logits``), a positional
    argument binds to the first alternative.

    Examples
    --------
    >>> family("Categorical", logits=[0.0, 1.0]).args.keys()
    dict_keys(['logits'])
    >>> family("Categorical", probs=[0.25, 0.75]).args.keys()
    dict_keys(['weights'])
    >>> family("Normall", 0.0, 1.0)
    Traceback (most recent call last):
    ...
    quivers.errors.UnknownNameError: unknown distribution family `Normall`; did you mean `Normal`?
    """
    if not isinstance(name, str):
        raise QuiversTypeError(f"a family name must be a string, got {type(name).__name__} `{name!r}`")
    spec = FAMILIES.get(name)
    if spec is None:
        raise UnknownNameError(f"unknown distribution family `{name}`", name=name, candidates=FAMILIES)
    if spec.combine is not None:
        return spec.combine(*args, **kwargs)
    for value in (*args, *kwargs.values()):
        if isinstance(value, Family):
            raise QuiversTypeError(
                f"`{name}` takes numbers or expressions, not the family {value!r}",
                hint="families take families only in `Truncated(...)` and `Mixture(...)`",
            )
    return bind(spec, args, kwargs)


def bind(spec: FamilySpec, args: tuple | list, kwargs: Mapping[str, Any]) -> Family:
    """Bind arguments to ``spec`` (what :func:`family` does once it has
    found the spec; the combinators call it with their derived specs).

    Examples
    --------
    >>> bind(FAMILIES["Normal"], (0.0,), {"scale": 2.0})
    Normal(loc=0.0, scale=2.0)
    """
    name = spec.name
    positional = list(spec.params) + [g[0] for g in spec.alternatives]
    if len(args) > len(positional):
        raise QuiversTypeError(
            f"`{name}` takes at most {len(positional)} positional arguments "
            f"({', '.join(p.name for p in positional)}), got {len(args)}"
        )
    bound: dict[str, Any] = {}
    for p, value in zip(positional, args):
        bound[p.name] = value
    for key, value in kwargs.items():
        p = spec.param(spec.aliases.get(key, key))
        if p.name in bound:
            other = next((a for a, n in spec.aliases.items() if n == p.name and a in kwargs), None)
            also = f" (`{other}` is another name of `{p.name}`)" if other is not None else ""
            raise QuiversTypeError(f"`{name}` got two values for parameter `{p.name}`{also}")
        bound[p.name] = value
    for p in spec.params:
        if p.name not in bound:
            if p.default is None:
                raise QuiversTypeError(
                    f"`{name}` is missing parameter `{p.name}`; it takes "
                    f"({', '.join(q.name for q in spec.params)})"
                )
            bound[p.name] = p.default
    for group in spec.alternatives:
        given = [p.name for p in group if p.name in bound]
        if len(given) != 1:
            raise QuiversTypeError(
                f"`{name}` needs exactly one of {', '.join(f'`{p.name}`' for p in group)}, got {len(given)}"
                + (f" ({', '.join(f'`{g}`' for g in given)})" if given else "")
            )
    for key in list(bound):
        p = spec.param(key)
        bound[key] = _bind_value(spec, p, bound[key])
        _check_constant(spec, p, bound[key])
    _check_dependent(spec, bound)
    order = [p.name for p in spec.params] + [n for g in spec.alternatives for n in (p.name for p in g)]
    return Family(spec, {k: bound[k] for k in order if k in bound})


def _simple(name: str, cls: type, params: tuple[ParamSpec, ...], **kw: Any) -> FamilySpec:
    def make(p: dict[str, torch.Tensor]) -> Distribution:
        return cls(**p, validate_args=False)

    support = cls.support
    return register(
        FamilySpec(name, params, make, kw.pop("support_fn", lambda p: support), **kw)
    )


def _make_categorical(p: dict[str, torch.Tensor]) -> Distribution:
    if "logits" in p:
        return torch.distributions.Categorical(logits=p["logits"], validate_args=False)
    # From log weights, not probs=: torch clamps probs to [eps, 1 - eps], so a
    # zero weight would get log probability log(eps) instead of -inf; and
    # with a gradient of 0 there, not 1 / 0 (see log_or_zero).
    return torch.distributions.Categorical(logits=log_or_zero(p["weights"]), validate_args=False)


def _categorical_support(p: dict[str, torch.Tensor]) -> constraints.Constraint:
    w = p.get("weights", p.get("logits"))
    n = 1 if w is None or w.dim() == 0 else w.shape[-1]
    return constraints.integer_interval(0, n - 1)


def _with_probs(name: str, cls: type, params: tuple[ParamSpec, ...], support_fn: Callable) -> FamilySpec:
    def make(p: dict[str, torch.Tensor]) -> Distribution:
        return cls(**p, validate_args=False)

    group = (ParamSpec("probs", constraints.unit_interval), ParamSpec("logits"))
    return register(FamilySpec(name, params, make, support_fn, alternatives=(group,), discrete=True))


def _make_lkj(p: dict[str, torch.Tensor]) -> Distribution:
    dim = int(p["dim"].reshape(-1)[0].item()) if p["dim"].dim() else int(p["dim"].item())
    # torch's LKJCholesky builds a Beta that validates by default: a sampler's
    # trajectory that sends the concentration out of range must get a
    # non-finite density (a divergence), not torch's ValueError
    previous = Distribution._validate_args
    Distribution.set_default_validate_args(False)
    try:
        return torch.distributions.LKJCholesky(dim, p["concentration"], validate_args=False)
    finally:
        Distribution.set_default_validate_args(previous)


def _make_mvn(p: dict[str, torch.Tensor]) -> Distribution:
    cov = p.get("covariance_matrix")
    if cov is None:
        return torch.distributions.MultivariateNormal(**p, validate_args=False)
    # torch's own factorization raises on a matrix that is not positive
    # definite (a covariance built from parameters, at an extreme draw); such
    # a batch element gets a NaN factor instead, so its density is NaN: a
    # divergence to MCMC, an error naming the site to log_joint.
    tril, info = torch.linalg.cholesky_ex(cov)
    if not may_read(info) or bool((info != 0).any()):
        bad = (info != 0)[..., None, None]
        tril = torch.where(bad, torch.full_like(tril, math.nan), tril)
    return torch.distributions.MultivariateNormal(p["loc"], scale_tril=tril, validate_args=False)


class ImproperFlat(Distribution):
    """Stan's flat prior: log density 0 on the real line, or with ``half``
    0 on the half line ``x >= 0`` and ``-inf`` off it. It is improper (its
    integral is infinite), so :meth:`sample` raises.

    Examples
    --------
    >>> d = ImproperFlat(half=True)
    >>> d.log_prob(torch.tensor([2.0, -1.0]))
    tensor([0., -inf])
    >>> d.sample()
    Traceback (most recent call last):
    ...
    quivers.errors.UnsupportedError: a flat prior is improper: there is no distribution to draw from
    """

    arg_constraints: dict = {}

    def __init__(self, half: bool = False, batch_shape: torch.Size = torch.Size()) -> None:
        self.half = half
        super().__init__(torch.Size(batch_shape), validate_args=False)

    @constraints.dependent_property(is_discrete=False, event_dim=0)
    def support(self) -> constraints.Constraint:
        return constraints.positive if self.half else constraints.real

    def expand(self, batch_shape, _instance=None) -> ImproperFlat:
        return ImproperFlat(self.half, torch.Size(batch_shape))

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        return (half_flat if self.half else flat)({}, value)

    def sample(self, sample_shape=torch.Size()) -> torch.Tensor:
        raise UnsupportedError("a flat prior is improper: there is no distribution to draw from")


def _bound_support(p: dict[str, torch.Tensor]) -> constraints.Constraint:
    return constraints.interval(p["low"], p["high"])


D = torch.distributions
_loc, _scale = ParamSpec("loc"), ParamSpec("scale", _positive)
_simple("Normal", D.Normal, (_loc, _scale))
_simple("HalfNormal", D.HalfNormal, (_scale,), support_fn=lambda p: constraints.positive)
_simple("LogNormal", D.LogNormal, (_loc, _scale))
_simple("Exponential", D.Exponential, (ParamSpec("rate", _positive),), support_fn=lambda p: constraints.positive)
_simple(
    "Gamma",
    D.Gamma,
    (ParamSpec("concentration", _positive), ParamSpec("rate", _positive)),
    support_fn=lambda p: constraints.positive,
)
_simple("InverseGamma", D.InverseGamma, (ParamSpec("concentration", _positive), ParamSpec("rate", _positive)))
_simple("Beta", D.Beta, (ParamSpec("concentration1", _positive), ParamSpec("concentration0", _positive)))
_simple("Dirichlet", D.Dirichlet, (ParamSpec("concentration", _positive, event_rank=1),), event_rank=1)
_simple("StudentT", D.StudentT, (ParamSpec("df", _positive), ParamSpec("loc", default=0.0), ParamSpec("scale", _positive, default=1.0)))
_simple("Cauchy", D.Cauchy, (_loc, _scale))
_simple("HalfCauchy", D.HalfCauchy, (_scale,), support_fn=lambda p: constraints.positive)
_simple("Laplace", D.Laplace, (_loc, _scale))
_simple("Uniform", D.Uniform, (ParamSpec("low"), ParamSpec("high")), support_fn=_bound_support)
_simple("Poisson", D.Poisson, (ParamSpec("rate", constraints.nonnegative),), discrete=True)
register(
    FamilySpec(
        "Categorical",
        (),
        _make_categorical,
        _categorical_support,
        alternatives=((ParamSpec("weights", _weights, event_rank=1), ParamSpec("logits", event_rank=1)),),
        discrete=True,
        aliases={"probs": "weights"},  # normalized along the category axis either way, as torch does
    )
)
_with_probs("Bernoulli", D.Bernoulli, (), lambda p: constraints.boolean)
_with_probs(
    "Binomial",
    D.Binomial,
    (ParamSpec("total_count", constraints.nonnegative_integer),),
    lambda p: constraints.integer_interval(0, int(p["total_count"].max()) if "total_count" in p else 0),
)
_with_probs("Geometric", D.Geometric, (), lambda p: constraints.nonnegative_integer)
_with_probs(
    "NegativeBinomial",
    D.NegativeBinomial,
    (ParamSpec("total_count", _positive),),
    lambda p: constraints.nonnegative_integer,
)
register(
    FamilySpec(
        "MultivariateNormal",
        (ParamSpec("loc", event_rank=1),),
        _make_mvn,
        lambda p: constraints.independent(constraints.real, 1),
        event_rank=1,
        alternatives=(
            (
                ParamSpec("covariance_matrix", constraints.positive_definite, event_rank=2),
                ParamSpec("scale_tril", constraints.lower_cholesky, event_rank=2),
                ParamSpec("precision_matrix", constraints.positive_definite, event_rank=2),
            ),
        ),
    )
)
register(FamilySpec("Flat", (), lambda p: ImproperFlat(), lambda p: constraints.real, improper=True))
register(FamilySpec("HalfFlat", (), lambda p: ImproperFlat(half=True), lambda p: constraints.positive, improper=True))
register(
    FamilySpec(
        "LKJCholesky",
        (ParamSpec("concentration", _positive, default=1.0),),
        _make_lkj,
        lambda p: constraints.corr_cholesky,
        event_rank=2,
    )
)

for _name, _log_prob in LOG_PROB.items():
    FAMILIES[_name] = dataclasses.replace(FAMILIES[_name], log_prob=_log_prob)


def _constructor(name: str) -> Callable[..., Family]:
    def make(*args: Any, **kwargs: Any) -> Family:
        return family(name, *args, **kwargs)

    make.__name__ = make.__qualname__ = name
    make.__doc__ = f"The `{name}` family; see :func:`family`."
    return make


Normal = _constructor("Normal")
HalfNormal = _constructor("HalfNormal")
LogNormal = _constructor("LogNormal")
Exponential = _constructor("Exponential")
Gamma = _constructor("Gamma")
InverseGamma = _constructor("InverseGamma")
Beta = _constructor("Beta")
Dirichlet = _constructor("Dirichlet")
Categorical = _constructor("Categorical")
Bernoulli = _constructor("Bernoulli")
Binomial = _constructor("Binomial")
Poisson = _constructor("Poisson")
NegativeBinomial = _constructor("NegativeBinomial")
Geometric = _constructor("Geometric")
StudentT = _constructor("StudentT")
Cauchy = _constructor("Cauchy")
HalfCauchy = _constructor("HalfCauchy")
Uniform = _constructor("Uniform")
Laplace = _constructor("Laplace")
MultivariateNormal = _constructor("MultivariateNormal")
LKJCholesky = _constructor("LKJCholesky")
Flat = _constructor("Flat")
HalfFlat = _constructor("HalfFlat")


def constructor(name: str) -> Callable[..., Family]:
    """The Python constructor of the registered family ``name``.

    Examples
    --------
    >>> constructor("Normal")(0.0, 1.0)
    Normal(loc=0.0, scale=1.0)
    """
    return _constructor(name)


def biject(constraint: constraints.Constraint) -> T.Transform:
    """The bijection from unconstrained space onto ``constraint`` (torch's ``biject_to``)."""
    return torch.distributions.biject_to(constraint)
