"""The steps of a program, as frozen dataclasses, and their constructors.

A program is a sequence of steps: ``sample`` (a latent per element of an
index set), ``observe`` (a scored observation), ``marginalize`` (a discrete
latent integrated out of its body), ``let`` (a deterministic value),
``factor`` (an arbitrary log-density term), ``return`` and ``index_map`` (an
integer map between finite sets supplied as data: a fibration).

Every step knows the names it defines and reads, which is all the
dependency graph needs, and its effect.

Examples
--------
>>> from quivers.categories import FinSet
>>> from quivers.distributions import Normal
>>> K = FinSet("K", 2)
>>> s = sample("mu_k", K, Normal(0.0, 5.0))
>>> s.defines, sorted(s.reads), s.effect
('mu_k', [], Effect.Sample)
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

from torch.distributions import constraints

from quivers.categories import FinSet
from quivers.distributions import Family
from quivers.distributions.bijections import CONSTRAINTS
from quivers.errors import InvalidValueError, QuiversTypeError, ShapeError, Span, UnknownNameError, UnsupportedError, span_at
from quivers.programs.effects import Effect
from quivers.programs.expr import Expr, as_expr, stack

__all__ = [
    "Step", "StepVisitor", "step_kinds", "SampleStep", "ObserveStep", "MarginalizeStep", "LetStep", "FactorStep",
    "ReturnStep", "IndexMapStep", "DataStep", "InputStep",
    "sample", "observe", "marginalize", "let", "factor", "ret", "index_map", "data",
]


REFERENCE = {"ref": True}
"""Metadata of a field that holds the name of another step (``via``,
``until``), or a tuple of names (``via`` with one index map per factor of
a product grouping): :meth:`Step.reads` reads them and :meth:`Step.rename`
renames them."""


@dataclass(frozen=True)
class Step:
    """Base of all steps; ``span`` locates the step in QVR source.

    The traversal is generic, derived from the dataclass fields as stanc3's
    middle IR derives ``map`` and ``fold``: an :class:`Expr` field, or a
    :class:`Family` whose arguments are expressions, holds expressions
    (:meth:`exprs`, :meth:`map_exprs`); a :class:`FinSet` field is a set
    (:meth:`sets`, :meth:`map_sets`); a tuple of steps is a body
    (:meth:`children`, :meth:`map_children`); a field marked :data:`REFERENCE`
    names another step. A new kind of step declares its fields and is
    read, renamed, resized and walked without further code.

    Examples
    --------
    >>> from quivers.categories import FinSet
    >>> from quivers.distributions import Categorical, Normal
    >>> from quivers.programs.expr import var
    >>> K, I = FinSet("K", 2), FinSet("I", 3)
    >>> m = marginalize("z", K, Categorical(var("w")), [observe("y", I, Normal(var("mu")[var("z")], 1.0))])
    >>> [str(e.sympy) for e in m.exprs()], [t.name for t in m.children()]
    (['w'], ['y'])
    >>> sorted(m.rename({"w": "v", "y": "x", "mu": "m"}).walk_reads())
    ['m', 'v', 'z']
    >>> m.law.name, let("a", 1.0).law is None
    ('Categorical', True)
    """

    @property
    def defines(self) -> str | None:
        return getattr(self, "name", None) if _defining(self) else None

    @property
    def reads(self) -> frozenset[str]:
        """The names this step's own expressions and references read (a
        block's body reads for itself: see :func:`quivers.programs.graph`)."""
        out: set[str] = set()
        for e in self.exprs():
            out |= e.names()
        for f in _fields(self):
            v = getattr(self, f.name)
            if f.metadata.get("ref") and v is not None:
                out.update(v) if isinstance(v, tuple) else out.add(v)
        return frozenset(out)

    @property
    def law(self) -> Family | None:
        """The family this step draws, scores or sums out with: its first
        family field (a sample's or an observe's family, a block's prior, a
        chain's transition), or None for a step without one."""
        return next((getattr(self, f.name) for f in _fields(self) if isinstance(getattr(self, f.name), Family)), None)

    @property
    def effect(self) -> Effect:
        return Effect.Pure

    @property
    def kind(self) -> str:
        """The step's keyword: ``sample``, ``marginalize``, ``markov``..."""
        return type(self).__name__.removesuffix("Step").lower()

    def label(self) -> str:
        """One line that says what the step is, for drawings and messages."""
        name = self.defines
        return self.kind if name is None else f"{self.kind} {name}"

    def walk(self) -> Iterator[Step]:
        """This step and, for blocks, every step nested in it."""
        yield self
        for c in self.children():
            yield from c.walk()

    def walk_reads(self) -> frozenset[str]:
        """Every name this step or a step nested in it reads."""
        return frozenset().union(*(t.reads for t in self.walk()))

    # ------------------------------------------------ the generic traversal

    def exprs(self) -> Iterator[Expr]:
        """The expressions of this step (not of its body), fields in order."""
        for f in _fields(self):
            v = getattr(self, f.name)
            if isinstance(v, Expr):
                yield v
            elif isinstance(v, Family):
                yield from (a for a in v.args.values() if isinstance(a, Expr))

    def map_exprs(self, fn: Callable[[Expr], Expr]) -> Step:
        """This step with ``fn`` applied to each of its own expressions."""
        changes: dict[str, Any] = {}
        for f in _fields(self):
            v = getattr(self, f.name)
            if isinstance(v, Expr):
                changes[f.name] = fn(v)
            elif isinstance(v, Family):
                changes[f.name] = Family(v.spec, {k: fn(a) if isinstance(a, Expr) else a for k, a in v.args.items()})
        return replace(self, **changes) if changes else self

    def sets(self) -> Iterator[FinSet]:
        """The finite sets this step is declared on (index sets, supports,
        grouping plates, domains), fields in order."""
        for f in _fields(self):
            v = getattr(self, f.name)
            if isinstance(v, FinSet):
                yield v

    def map_sets(self, fn: Callable[[FinSet], FinSet]) -> Step:
        """This step with ``fn`` applied to each of its own sets."""
        changes = {f.name: fn(getattr(self, f.name)) for f in _fields(self) if isinstance(getattr(self, f.name), FinSet)}
        return replace(self, **changes) if changes else self

    def children(self) -> tuple[Step, ...]:
        """The steps of this step's body (empty for a step without one)."""
        out: tuple[Step, ...] = ()
        for f in _fields(self):
            v = getattr(self, f.name)
            if isinstance(v, tuple) and v and all(isinstance(t, Step) for t in v):
                out += v
        return out

    def map_children(self, fn: Callable[[Step], Step]) -> Step:
        """This step with ``fn`` applied to each step of its body."""
        changes = {}
        for f in _fields(self):
            v = getattr(self, f.name)
            if isinstance(v, tuple) and v and all(isinstance(t, Step) for t in v):
                changes[f.name] = tuple(fn(t) for t in v)
        return replace(self, **changes) if changes else self

    def rename(self, mapping: Mapping[str, str]) -> Step:
        """This step and its body with every name in ``mapping`` renamed:
        what it defines, what it references and what its expressions read."""
        out = self.map_exprs(lambda e: e.rename(mapping)).map_children(lambda t: t.rename(mapping))
        changes = {}
        for f in _fields(out):
            v = getattr(out, f.name)
            if (f.name == "name" or f.metadata.get("ref")) and isinstance(v, str) and v in mapping:
                changes[f.name] = mapping[v]
            elif f.metadata.get("ref") and isinstance(v, tuple) and set(v) & set(mapping):
                changes[f.name] = tuple(mapping.get(n, n) for n in v)
        return replace(out, **changes) if changes else out


class StepVisitor:
    """A pass over steps with one rule per kind of step, as stanc3's passes
    match on every statement kind: :meth:`visit` calls the method
    ``visit_<kind>`` (``visit_sample``, ``visit_markov``...) with the step
    and the arguments it is given.

    The interpreter, the site analysis, the shape checker, the compiler of
    parameters and Stan emission are such passes. A new kind of step is
    taught to each by adding its ``visit_<kind>`` method there;
    :meth:`missing` lists the kinds a pass has no rule for, and a test
    holds every pass of the package to every kind of step.

    Examples
    --------
    >>> class Kinds(StepVisitor):
    ...     def visit_let(self, s):
    ...         return f"let {s.name}"
    ...     def visit_factor(self, s):
    ...         return "factor"
    >>> Kinds().visit(let("a", 1.0))
    'let a'
    >>> Kinds.missing(["let", "factor", "return"])
    ['return']
    >>> Kinds().visit(ret("a"))
    Traceback (most recent call last):
        ...
    quivers.errors.UnsupportedError: Kinds has no rule for `return` steps
    """

    def visit(self, step: Step, *args: Any, **kwargs: Any) -> Any:
        """Apply this pass's rule for the kind of ``step``."""
        rule = _RULES.get((type(self), type(step)))
        if rule is None:
            rule = type(self).rule(step)
        return rule(self, step, *args, **kwargs)

    @classmethod
    def rule(cls, step: Step) -> Callable[..., Any]:
        """This pass's rule for the kind of ``step``, a function of the
        pass, the step and the pass's arguments."""
        key = (cls, type(step))
        rule = _RULES.get(key)
        if rule is None:  # looked up once per pass and kind: the interpreter visits every step of every run
            rule = getattr(cls, "visit_" + step.kind, None)
            if rule is None:
                raise UnsupportedError(f"{cls.__name__} has no rule for `{step.kind}` steps", span=step.span)
            _RULES[key] = rule
        return rule

    @classmethod
    def missing(cls, kinds: Sequence[str] | None = None) -> list[str]:
        """The kinds among ``kinds`` (every kind of :func:`step_kinds` by
        default) this pass has no ``visit_<kind>`` method for."""
        return [k for k in (step_kinds() if kinds is None else kinds) if not hasattr(cls, "visit_" + k)]


_RULES: dict[tuple[type, type], Callable[..., Any]] = {}


def step_kinds(package: str = "quivers") -> dict[str, type[Step]]:
    """The kinds of step declared in ``package``: each subclass of
    :class:`Step` its modules define, by its keyword.

    Examples
    --------
    >>> kinds = step_kinds()
    >>> kinds["sample"] is SampleStep, "markov" in kinds
    (True, True)
    """
    out: dict[str, type[Step]] = {}
    todo = list(Step.__subclasses__())
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        module = sys.modules.get(cls.__module__)
        inside = cls.__module__ == package or cls.__module__.startswith(package + ".")
        if inside and getattr(module, cls.__name__, None) is cls:  # declared by the module, not by a doctest
            out[cls.__name__.removesuffix("Step").lower()] = cls
    return out


def _fields(step: Step) -> tuple:
    return _FIELDS.get(type(step)) or _FIELDS.setdefault(type(step), tuple(
        f for f in fields(step) if f.name != "span"
    ))


_FIELDS: dict[type, tuple] = {}


def _defining(step: Step) -> bool:
    """Whether the ``name`` field of ``step`` defines a name (a factor or a
    return has none)."""
    return any(f.name == "name" for f in _fields(step))


def _symbolic(fam: Family) -> Family:
    if not isinstance(fam, Family):
        raise QuiversTypeError(f"expected a distribution family, got `{fam!r}`")
    return Family(fam.spec, {k: as_expr(v) for k, v in fam.args.items()})


def _check_name(name: Any, what: str = "a step") -> None:
    """Names are identifiers; a leading double underscore is reserved for
    the runtime (``__return__``, enumeration axes, constants)."""
    if not isinstance(name, str):
        raise QuiversTypeError(f"the name of {what} must be a string, got {type(name).__name__} `{name!r}`")
    if not name.isidentifier() or name.startswith("__"):
        raise QuiversTypeError(
            f"`{name}` is not a valid name for {what}: use a Python identifier not starting with `__`"
        )


def _check_set(what: str, s: Any, allow_none: bool = True) -> None:
    if s is None and allow_none:
        return
    if not isinstance(s, FinSet):
        raise QuiversTypeError(f"{what} must be a FinSet, got `{s!r}`")


@dataclass(frozen=True)
class SampleStep(Step):
    """A latent drawn from ``family``, one per element of ``index_set``;
    ``constraint`` (a key of :data:`quivers.distributions.bijections.CONSTRAINTS`)
    restricts its values along the last axis (``ordered`` means, simplexes)."""

    name: str
    index_set: FinSet | None
    family: Family
    constraint: str | None = None
    span: Span | None = field(default=None, compare=False, repr=False)

    def label(self) -> str:
        plate = f" : {self.index_set.name}" if self.index_set is not None else ""
        via = f" [via={self.via}]" if getattr(self, "via", None) else ""
        constrained = f" [constraint={self.constraint}]" if self.constraint else ""
        return f"{self.kind} {self.name}{plate} <- {self.family.name}{via}{constrained}"

    @property
    def effect(self) -> Effect:
        return Effect.Sample


@dataclass(frozen=True)
class ObserveStep(Step):
    name: str
    index_set: FinSet | None
    family: Family
    via: str | tuple[str, ...] | None = field(default=None, metadata=REFERENCE)
    span: Span | None = field(default=None, compare=False, repr=False)

    def label(self) -> str:
        plate = f" : {self.index_set.name}" if self.index_set is not None else ""
        via = f" [via={self.via}]" if getattr(self, "via", None) else ""
        return f"{self.kind} {self.name}{plate} <- {self.family.name}{via}"

    @property
    def effect(self) -> Effect:
        return Effect.Score


@dataclass(frozen=True)
class MarginalizeStep(Step):
    name: str
    support: FinSet
    prior: Family
    body: tuple[Step, ...]
    over: FinSet | None = None
    reduction: str = "logsumexp"
    span: Span | None = field(default=None, compare=False, repr=False)

    def label(self) -> str:
        return f"marginalize {self.name} : {self.support.name}"

    @property
    def effect(self) -> Effect:
        return Effect.Marginal


@dataclass(frozen=True)
class LetStep(Step):
    name: str
    expr: Expr
    span: Span | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class FactorStep(Step):
    expr: Expr
    span: Span | None = field(default=None, compare=False, repr=False)

    @property
    def effect(self) -> Effect:
        return Effect.Score


@dataclass(frozen=True)
class ReturnStep(Step):
    expr: Expr
    span: Span | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class IndexMapStep(Step):
    name: str
    dom: FinSet
    cod: FinSet
    span: Span | None = field(default=None, compare=False, repr=False)

    def label(self) -> str:
        return f"index_map {self.name} : {self.dom.name} -> {self.cod.name}"


@dataclass(frozen=True)
class DataStep(Step):
    """Real numbers supplied at run time, one per element of ``index_set``
    (a covariate on a plate; a scalar constant when ``None``). Data is read,
    never scored and never drawn: it has no density. With ``broadcast``, one
    number stands for the same value on every element of ``index_set``."""

    name: str
    index_set: FinSet | None
    broadcast: bool = False
    span: Span | None = field(default=None, compare=False, repr=False)

    def label(self) -> str:
        plate = f" : {self.index_set.name}" if self.index_set is not None else ""
        return f"data {self.name}{plate}"


@dataclass(frozen=True)
class InputStep(Step):
    """The input of a program ``dom -> cod``: ``name`` is bound to one
    element of ``dom`` (an integer in ``[0, |dom|)``), supplied as ``x``.
    :class:`~quivers.programs.Program` puts it first when built with
    ``input=name``."""

    name: str
    dom: FinSet
    span: Span | None = field(default=None, compare=False, repr=False)


def sample(
    name: str, index_set: FinSet | None, family: Family, *, constraint: str | None = None, span: Span | None = None
) -> SampleStep | LetStep:
    """Draw ``name`` from ``family``, one draw per element of ``index_set``
    (a plate; ``None`` or a unit set for a single draw).

    A draw from ``PointMass(v)`` is the value ``v``: the step is
    ``let name = v`` (a latent of one value has no density for NUTS or SVI
    to explore), with the axes of ``v``; a number is repeated along
    ``index_set``.

    ``constraint`` restricts the values along the last factor of
    ``index_set`` (the last two for ``cholesky_corr``) to one of the sets of
    :data:`~quivers.distributions.bijections.CONSTRAINTS`; the density is
    ``family``'s there (Stan's ``ordered[K] mu; mu ~ normal(0, 5);``, the
    constant that normalizes it on the smaller set left out, as Stan does).

    Examples
    --------
    >>> from quivers.categories import FinSet
    >>> from quivers.distributions import HalfNormal, Normal
    >>> K = FinSet("K", 3)
    >>> sample("mu", K, Normal(0.0, 5.0), constraint="ordered").constraint
    'ordered'
    >>> sample("mu", K, HalfNormal(1.0), constraint="ordered")
    Traceback (most recent call last):
    ...
    quivers.errors.QuiversTypeError: `mu` has [constraint=ordered], which takes a continuous family on the real line, or Flat(); HalfNormal has values in positive
    """
    _check_name(name, "a sample step")
    _check_set(f"the index set of `{name}`", index_set)
    fam = _symbolic(family)
    if fam.name == "PointMass":
        # a latent with one value has no density to explore: NUTS and SVI
        # see the value, as of a `let`
        if constraint is not None:
            raise QuiversTypeError(f"`{name}` is drawn from a PointMass, which takes no [constraint=...]", span=span)
        value = fam.args["value"]
        if index_set is not None and value.sympy.is_Number and 1 < index_set.size <= 4096:
            value = stack(index_set, [value] * index_set.size)  # a number, one per element of the plate
        return LetStep(name, value, span=span)
    _check_scored(name, fam, span)
    if constraint is not None:
        _check_constraint(name, index_set, fam, constraint, span)
    return SampleStep(name, index_set, fam, constraint, span=span)


def _check_constraint(name: str, index_set: FinSet | None, fam: Family, constraint: str, span: Span | None) -> None:
    """``constraint`` is known, fits the family and the index set of ``name``."""
    spec = CONSTRAINTS.get(constraint)
    if spec is None:
        raise UnknownNameError(
            f"unknown constraint `{constraint}` on `{name}`; constraints are " + ", ".join(CONSTRAINTS),
            name=constraint, candidates=CONSTRAINTS, span=span,
        )
    support = None
    if fam.spec.static_support:
        s = fam.support()
        support = "real" if s is constraints.real else "positive" if s in (constraints.positive, constraints.nonnegative) else None
    if not spec.accepts(fam.name, fam.event_rank, fam.discrete, support):
        if spec.families is not None:
            takes = " or ".join(f"{f}(...)" for f in spec.families) + ", or Flat()"
        else:
            line = "the real line" if spec.supports == ("real",) else "the positive reals"
            takes = f"a continuous family on {line}, or Flat()"
        raise QuiversTypeError(
            f"`{name}` has [constraint={constraint}], which takes {takes}; {fam.name} has values in "
            + (support or "another set" if not fam.discrete else "the integers"),
            span=span,
        )
    factors = index_set.factors if index_set is not None else ()
    if len(factors) < spec.event_rank or (spec.event_rank == 2 and factors[-1] != factors[-2]):
        need = "a plate whose last factor is the vector's axis, e.g. `K`" if spec.event_rank == 1 else (
            "the square plate `K * K` of the matrix's axes")
        on = f"`{index_set.name}`" if index_set is not None else "no plate"
        raise ShapeError(f"`{name}` has [constraint={constraint}], which needs {need}; it is on {on}", span=span)
    if factors[-1].size < spec.min_size:
        raise ShapeError(
            f"`{name}` has [constraint={constraint}] along `{factors[-1].name}` of size {factors[-1].size}; "
            f"it needs at least {spec.min_size} elements",
            span=span,
        )


def observe(
    name: str,
    index_set: FinSet | None,
    family: Family,
    via: str | Sequence[str] | None = None,
    *,
    span: Span | None = None,
) -> ObserveStep:
    """Score the observation ``name`` under ``family``; ``via`` names the
    index map that fibres its rows over a grouping plate, or, for a block
    grouped by pairs ``over=G * H``, one map per factor (``("g", "h")``).

    Examples
    --------
    >>> from quivers.distributions import Normal
    >>> sorted(observe("y", FinSet("Item", 4), Normal(0.0, 1.0), via=["g", "h"]).reads)
    ['g', 'h']
    """
    _check_name(name, "an observe step")
    _check_set(f"the index set of `{name}`", index_set)
    if via is not None and not isinstance(via, str):
        via = tuple(via)
        for v in via:
            _check_name(v, f"an index map in [via=...] of `{name}`")
    elif via is not None:
        _check_name(via, f"the index map in [via=...] of `{name}`")
    fam = _symbolic(family)
    _check_scored(name, fam, span)
    return ObserveStep(name, index_set, fam, via, span=span)


def _check_scored(name: str, fam: Family, span: Span | None) -> None:
    """A site's value is scored by its family: a ``Pushforward`` (alone or
    in a mixture) through a transform that has no inverse cannot be."""
    specs = [fam.spec, *fam.spec.parts]
    t = next((s.transform for s in specs if s.transform is not None and not s.transform.invertible), None)
    if t is not None:
        raise UnsupportedError(
            f"`{name}` is scored under `Pushforward(..., {t.name})`, but `{t.name}` is not invertible, so its "
            "values have no density by a change of variables",
            hint=f"draw `x` from the base family and write `let {name} = {t.name}(x)`", span=span,
        )


def marginalize(
    name: str,
    support: FinSet,
    prior: Family,
    body: Sequence[Step],
    over: FinSet | None = None,
    *,
    reduction: str = "logsumexp",
    span: Span | None = None,
) -> MarginalizeStep:
    """Integrate the discrete latent ``name`` (values in ``support``, prior
    ``prior``) out of ``body``; per row by default, per group with ``over``
    (a product ``G * H`` groups by pairs: one latent per ``(g, h)``).
    ``reduction`` is ``"logsumexp"`` (the marginal, the sum of ``LOG``) or
    ``"max"`` (the best value of the latent, the sum of ``MAX_PLUS``).

    Examples
    --------
    >>> from quivers.distributions import Categorical, Normal
    >>> from quivers.programs.expr import var
    >>> K, I = FinSet("K", 2), FinSet("I", 3)
    >>> m = marginalize("z", K, Categorical(var("w")), [observe("y", I, Normal(var("z") * 1.0, 1.0))],
    ...                 reduction="max")
    >>> m.reduction
    'max'
    """
    _check_name(name, "a marginalized latent")
    check_reduction(reduction, name, span)
    _check_set(f"the support of `{name}`", support, allow_none=False)
    _check_set(f"the grouping plate of `{name}`", over)
    if support.size == 0:
        raise InvalidValueError(f"marginalize `{name}` sums over `{support.name}`, which is empty", span=span)
    if len(support.factors) != 1:
        raise QuiversTypeError(
            f"the support of marginalize `{name}` must be a plain FinSet, not the product `{support.name}`",
            span=span,
        )
    if over is not None and len({f.name for f in over.factors}) != len(over.factors):
        raise QuiversTypeError(
            f"marginalize `{name}` groups over `{over.name}`, a product with a repeated factor; "
            "group over distinct sets (one latent per pair of them)",
            span=span,
        )
    if not isinstance(prior, Family) or prior.name != "Categorical":
        got = prior.name if isinstance(prior, Family) else repr(prior)
        continuous = isinstance(prior, Family) and not prior.discrete
        raise QuiversTypeError(
            f"marginalize `{name}` needs a Categorical prior, got `{got}`"
            + (", a continuous family: only a latent with finitely many values is summed out" if continuous else ""),
            span=span_at(span, "prior"),
            hint=("draw it with `sample`; for extra zeros in counts, observe `ZeroInflatedPoisson(zero_prob, rate)`"
                  if continuous else None),
        )
    body = tuple(body)
    for s in body:
        if not isinstance(s, Step):
            raise QuiversTypeError(f"the body of marginalize `{name}` holds `{s!r}`, not a step")
    return MarginalizeStep(name, support, _symbolic(prior), body, over, reduction, span=span)


REDUCTIONS = ("logsumexp", "max")
"""The reductions a block sums its latent out with (on log weights)."""


def check_reduction(reduction: Any, name: str, span: Span | None = None) -> None:
    """``reduction`` is one of :data:`REDUCTIONS`, else a QuiversTypeError naming block ``name``."""
    if reduction not in REDUCTIONS:
        raise QuiversTypeError(
            f"the reduction of `{name}` must be one of {', '.join(REDUCTIONS)}, got `{reduction!r}`", span=span
        )


def let(name: str, expr: Any, *, span: Span | None = None) -> LetStep:
    """Bind ``name`` to the value of ``expr``."""
    _check_name(name, "a let step")
    return LetStep(name, as_expr(expr), span=span)


def factor(expr: Any, *, span: Span | None = None) -> FactorStep:
    """Add ``expr`` (summed over its axes) to the log density."""
    return FactorStep(as_expr(expr), span=span)


def ret(expr: Any, *, span: Span | None = None) -> ReturnStep:
    """Return ``expr`` (a name or an expression) as the program's value."""
    return ReturnStep(as_expr(expr), span=span)


def data(
    name: str, index_set: FinSet | None = None, *, broadcast: bool = False, span: Span | None = None
) -> DataStep:
    """Declare ``name``, real numbers supplied with the observations: one per
    element of ``index_set`` (a covariate), or a single number when it is
    ``None`` (a known constant such as a measurement's scale). With
    ``broadcast``, a single number is also accepted for a plate (QVR infers
    data this way, since a use on a plate does not say which is meant).

    Examples
    --------
    >>> from quivers.categories import FinSet
    >>> data("x", FinSet("Item", 3))
    DataStep(name='x', index_set=FinSet('Item', 3), broadcast=False)
    >>> data("sigma").defines
    'sigma'
    """
    _check_name(name, "a data name")
    _check_set(f"the index set of `{name}`", index_set)
    return DataStep(name, index_set, bool(broadcast), span=span)


def index_map(name: str, dom: FinSet, cod: FinSet, *, span: Span | None = None) -> IndexMapStep:
    """Declare ``name``, an integer map ``dom -> cod`` supplied as data.

    A product domain ``M * T`` is given as a tensor of shape ``(|M|, |T|)``
    and groups observations on the plate ``M * T`` as they are.
    """
    _check_name(name, "an index map")
    _check_set(f"the domain of `{name}`", dom, allow_none=False)
    _check_set(f"the codomain of `{name}`", cod, allow_none=False)
    return IndexMapStep(name, dom, cod, span=span)
