"""Static analysis of a program: its sites, index maps and marginal rows.

A *site* is a named random quantity: a sampled latent, an observation, an
index map or real numbers supplied as data, a marginalized latent, or a deterministic
``let``. Its named axes (``dims``) come from its index set, with two rules:

- **Shape rule.** A sampled site used directly as the weights of a
  ``Categorical`` prior for a latent ``z : K`` gets ``K`` appended when its
  index set lacks it: ``sample probs : G <- HalfNormal(1.0)`` feeding
  ``Categorical(probs) [over=G]`` has axes ``(G, K)``.
- **Index maps.** A name used in ``via=`` (or declared with ``index_map``)
  is an integer map ``dom -> cod`` read from the observations and never
  scored; for the seed's idiom (declared with ``sample``), ``dom`` is its
  index set and ``cod`` the ``over`` plate of the enclosing block.

Marginalized latents live on their *rows*: per-row blocks on the plate of
the observations in their body, grouped blocks on their ``over`` plate.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import torch
from torch.distributions import constraints

from quivers.categories import FinSet
from quivers.distributions import CONSTRAINTS, Family
from quivers.errors import QuiversTypeError, ShapeError, span_at
from quivers.programs.chain import MarkovStep
from quivers.programs.expr import Expr, constant_tensors
from quivers.programs.named import plate_dims
from quivers.programs.steps import (
    DataStep,
    FactorStep,
    IndexMapStep,
    InputStep,
    LetStep,
    MarginalizeStep,
    ObserveStep,
    ReturnStep,
    SampleStep,
    Step,
    StepVisitor,
)

__all__ = ["Site", "analyze", "plate_dims"]


@dataclass(frozen=True)
class Site:
    """A named random quantity of a program.

    ``kind`` is one of ``"latent"``, ``"observed"``, ``"index"``,
    ``"data"`` (real numbers supplied at run time, never scored),
    ``"marginal"``, ``"deterministic"``, ``"input"`` (the program's input,
    one element of its domain). ``values_in`` names the finite set
    an integer-valued site takes its values in and ``num_values`` is its
    size. ``blocks`` lists the marginalized latents whose body holds the
    site.

    Examples
    --------
    >>> from quivers.categories import FinSet
    >>> from quivers.distributions import Categorical, HalfNormal, Normal
    >>> from quivers.programs import Program, marginalize, observe, sample, var
    >>> Item, K = FinSet("Item", 3), FinSet("K", 2)
    >>> p = Program("m", Item, Item, [
    ...     sample("w", K, HalfNormal(1.0)),
    ...     marginalize("z", K, Categorical(var("w")), [
    ...         observe("y", Item, Normal(var("z") * 1.0, 1.0))])])
    >>> p.sites["z"]
    Site(name='z', kind='marginal', dims=('Item',), shape=(3,), values_in='K', blocks=(), num_values=2)
    >>> p.sites["z"].support()
    IntegerInterval(lower_bound=0, upper_bound=1)
    """

    name: str
    kind: str
    dims: tuple[str, ...]
    shape: tuple[int, ...]
    step: Step = field(repr=False)
    family: Family | None = field(default=None, repr=False)
    values_in: str | None = None
    blocks: tuple[str, ...] = ()
    num_values: int | None = None

    @property
    def discrete(self) -> bool:
        return self.kind in ("index", "marginal", "input") or bool(self.family and self.family.discrete)

    @property
    def constraint(self) -> str | None:
        """The name of the set a constrained latent's values lie in
        (``ordered``, ``simplex``, ...: :data:`~quivers.distributions.CONSTRAINTS`), or None."""
        return getattr(self.step, "constraint", None)

    @property
    def event_dims(self) -> tuple[str, ...]:
        rank = self.family.event_rank if self.family is not None else 0
        return self.dims[len(self.dims) - rank :] if rank else ()

    def support(self) -> constraints.Constraint:
        """The site's support (for latents fed to guides and MCMC).

        A support that depends on parameters (``Uniform(low, high)``) is
        fixed when they are constants, numbers or tensors, however written
        (``Uniform(0.0, 1.0)`` holds the expressions ``0.0`` and ``1.0``);
        bounds that read other names raise :class:`QuiversTypeError` naming
        them (guides and MCMC then evaluate them per draw, see
        :class:`quivers.inference.layout.Layout`).
        """
        if self.num_values is not None:
            return constraints.integer_interval(0, self.num_values - 1)
        if self.constraint is not None:
            return CONSTRAINTS[self.constraint].constraint
        if self.family is None:
            return constraints.real
        fam = self.family
        if fam.spec.static_support:
            return fam.support()
        values = {k: _constant(v) for k, v in fam.args.items() if k in fam.support_reads()}
        free = sorted(k for k, v in values.items() if v is None)
        if free:
            reads = sorted({n for k in free for n in getattr(fam.args[k], "names", frozenset)()})
            raise QuiversTypeError(
                f"the support of `{self.name}` depends on its parameters {free}, which read {reads}"
            )
        return fam.spec.support(values)


def _constant(value: object) -> torch.Tensor | None:
    """The value of a family argument that reads no name (a number, or a
    tensor constant), else None."""
    if not isinstance(value, Expr):
        return value if isinstance(value, torch.Tensor) else torch.tensor(float(value))
    e = value.sympy
    if e.is_number:
        return torch.tensor(float(e))
    tensors = constant_tensors(value)
    if e.is_Symbol and e.name in tensors:
        return tensors[e.name]
    return None


@dataclass
class Analysis:
    sites: dict[str, Site]
    index_maps: dict[str, tuple[FinSet, FinSet]]
    rows: dict[str, tuple[tuple[str, ...], tuple[int, ...]]]


def _walk(steps: Sequence[Step], blocks: tuple[Step, ...] = ()) -> Iterator[tuple[Step, tuple[Step, ...]]]:
    """Every step with the blocks (steps with a body) that enclose it."""
    for s in steps:
        yield s, blocks
        yield from _walk(s.children(), blocks + (s,))


def _bare_name(e: object) -> str | None:
    if isinstance(e, Expr):
        names = e.names()
        if len(names) == 1 and e.sympy.is_Symbol:
            return next(iter(names))
    return None


def analyze(steps: Sequence[Step]) -> Analysis:
    """Sites, index maps and marginal rows of a program's steps."""
    walked = list(_walk(steps))
    defining = {s.defines: s for s, _ in walked if s.defines is not None}
    index_maps = _index_maps(walked, defining)
    rule = _SiteOf(defining, index_maps, _shape_rule(walked, defining), _rows(walked, index_maps))
    sites: dict[str, Site] = {}
    for s, blocks in walked:
        site = rule.visit(s, tuple(b.name for b in blocks))
        if site is not None:
            sites[s.name] = site
    return Analysis(sites, index_maps, rule.rows)


@dataclass
class _SiteOf(StepVisitor):
    """The site a step defines (None for a step that defines none), given
    the names of the blocks that enclose it."""

    defining: dict[str, Step]
    index_maps: dict[str, tuple[FinSet, FinSet]]
    extra: dict[str, FinSet]  # the category axis a sample of a block's weights gains
    rows: dict[str, tuple[tuple[str, ...], tuple[int, ...]]]

    def visit_sample(self, s: SampleStep | ObserveStep, blocks: tuple[str, ...]) -> Site:
        if s.name in self.index_maps:
            dom, cod = self.index_maps[s.name]
            return Site(s.name, "index", (dom.name,), (dom.size,), s, None, cod.name, blocks, cod.size)
        dims, shape = plate_dims(s.index_set)
        if s.name in self.extra:
            dims, shape = dims + (self.extra[s.name].name,), shape + (self.extra[s.name].size,)
        _check_event(s, dims, shape)
        kind = "latent" if isinstance(s, SampleStep) else "observed"
        axis = _categorical_axis(s, self.defining)
        values_in, num = (axis.name, axis.size) if axis is not None else (None, None)
        return Site(s.name, kind, dims, shape, s, s.family, values_in, blocks, num)

    visit_observe = visit_sample

    def visit_indexmap(self, s: IndexMapStep, blocks: tuple[str, ...]) -> Site:
        dims, shape = plate_dims(s.dom)
        return Site(s.name, "index", dims, shape, s, None, s.cod.name, blocks, s.cod.size)

    def visit_data(self, s: DataStep, blocks: tuple[str, ...]) -> Site:
        dims, shape = plate_dims(s.index_set)
        return Site(s.name, "data", dims, shape, s, None, None, blocks)

    def visit_input(self, s: InputStep, blocks: tuple[str, ...]) -> Site:
        return Site(s.name, "input", (), (), s, None, s.dom.name, blocks, s.dom.size)

    def visit_marginalize(self, s: MarginalizeStep | MarkovStep, blocks: tuple[str, ...]) -> Site:
        dims, shape = self.rows[s.name]
        return Site(s.name, "marginal", dims, shape, s, s.prior, s.support.name, blocks, s.support.size)

    visit_markov = visit_marginalize

    def visit_let(self, s: LetStep, blocks: tuple[str, ...]) -> Site:
        return Site(s.name, "deterministic", (), (), s, None, None, blocks)

    def visit_factor(self, s: FactorStep | ReturnStep, blocks: tuple[str, ...]) -> None:
        return None

    visit_return = visit_factor


def _index_maps(walked, defining) -> dict[str, tuple[FinSet, FinSet]]:
    maps: dict[str, tuple[FinSet, FinSet]] = {}
    for s, _ in walked:
        if isinstance(s, IndexMapStep):
            maps[s.name] = (s.dom, s.cod)
    for s, blocks in walked:
        if not isinstance(s, ObserveStep) or s.via is None:
            continue
        grouped = [b for b in blocks if getattr(b, "over", None) is not None]
        if not grouped:
            raise QuiversTypeError(
                f"observe `{s.name}` has [via={s.via}] but no enclosing marginalize has [over=...]",
                span=span_at(s.span, "via"),
                hint="add [over=G] to the marginalize block, or drop via for per-row marginalization",
            )
        over = grouped[-1].over
        if isinstance(s.via, tuple):  # one map per factor of a grouping by pairs
            if len(s.via) != len(over.factors):
                raise ShapeError(
                    f"observe `{s.name}` has {len(s.via)} index maps in [via=...], but its block groups over "
                    f"`{over.name}`, which has {len(over.factors)} factors: give one map per factor",
                    span=span_at(s.span, "via"),
                )
            for name, factor in zip(s.via, over.factors):
                _register(maps, s, name, factor, defining)
        else:
            _register(maps, s, s.via, over, defining)
    return maps


def _register(maps: dict, s: ObserveStep, via: str, over: FinSet, defining) -> None:
    """Record the index map ``via`` of the observation ``s`` into ``over``."""
    src = defining[via]
    if isinstance(src, IndexMapStep):
        dom, cod = src.dom, src.cod
        if cod != over:
            raise ShapeError(
                f"index map `{via}` maps into `{cod.name}`, but the block of `{s.name}` groups over `{over.name}`",
                span=span_at(s.span, "via"),
            )
    elif isinstance(src, SampleStep):
        if src.index_set is None or len(src.index_set.factors) != 1:
            raise ShapeError(
                f"index map `{via}` must be declared on one plate (its rows), got `{src.index_set}`",
                span=src.span,
            )
        dom, cod = src.index_set, over
    else:
        raise QuiversTypeError(
            f"`{via}` in [via={via}] of `{s.name}` must be an index map or a sampled name, not a {src.kind}",
            span=span_at(s.span, "via"),
            hint=f"declare `{via}` with index_map(...) (in QVR: `index {via} : A -> B`, or leave it "
            "undefined: a name the program never defines is data)",
        )
    obs_dims, _ = plate_dims(s.index_set)
    if not set(plate_dims(dom)[0]) <= set(obs_dims):
        raise ShapeError(
            f"index map `{via}` has domain `{dom.name}`, but `{s.name}` is on `{s.index_set}`",
            span=s.span,
        )
    if via in maps and maps[via] != (dom, cod):
        raise ShapeError(f"index map `{via}` is used with two different shapes", span=s.span)
    maps[via] = (dom, cod)


def _shape_rule(walked, defining) -> dict[str, FinSet]:
    extra: dict[str, FinSet] = {}
    for s, _ in walked:
        if not isinstance(s, MarginalizeStep):
            continue
        arg = next(iter(s.prior.args.values()))
        name = _bare_name(arg)
        src = defining.get(name) if name else None
        if isinstance(src, SampleStep):
            dims, _ = plate_dims(src.index_set)
            if s.support.name not in dims:
                if name in extra and extra[name] != s.support:
                    raise ShapeError(f"`{name}` is the weights of latents on `{extra[name].name}` and `{s.support.name}`")
                extra[name] = s.support
    return extra


def _rows(walked, index_maps) -> dict[str, tuple[tuple[str, ...], tuple[int, ...]]]:
    rows = {}
    for s, blocks in walked:
        if isinstance(s, MarkovStep):
            rows[s.name] = markov_rows(s, blocks, index_maps)
            continue
        if not isinstance(s, MarginalizeStep):
            continue
        if s.over is not None:
            rows[s.name] = plate_dims(s.over)
            for t, blocks in _walk(s.body):
                if isinstance(t, ObserveStep) and t.via is None:
                    dims, _ = plate_dims(t.index_set)
                    if not set(dims) <= set(plate_dims(s.over)[0]):
                        raise ShapeError(
                            f"observe `{t.name}` on `{t.index_set}` in a block grouped over `{s.over.name}` "
                            f"needs [via=...] naming an index map into `{s.over.name}`",
                            span=t.span,
                        )
            continue
        plates = {}
        for t, _ in _walk(s.body):
            if isinstance(t, ObserveStep):
                plates[plate_dims(t.index_set)] = t
        if len(plates) > 1:
            names = ", ".join(f"`{t.name}` on {list(d[0])}" for d, t in plates.items())
            raise ShapeError(
                f"per-row marginalize `{s.name}` has observations on different plates: {names}",
                span=s.span,
                hint="use [over=G] with a via map on each observe",
            )
        rows[s.name] = next(iter(plates), ((), ()))
    return rows


def markov_rows(s: MarkovStep, blocks: tuple, index_maps) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """The axes of the latent path of ``s`` (its domain's), after checking
    where ``s`` stands, where its body observes and what ``until`` names."""
    if blocks:
        raise QuiversTypeError(
            f"markov `{s.name}` is inside the block of `{blocks[-1].name}`; a chain must stand at the "
            "top level of a program",
            span=s.span,
        )
    dims = plate_dims(s.index_set)
    for b in s.body:
        for t in b.walk():
            if isinstance(t, ObserveStep) and plate_dims(t.index_set)[0] != dims[0]:
                on = f"`{t.index_set.name}`" if t.index_set is not None else "no plate"
                raise ShapeError(
                    f"observe `{t.name}` in the body of markov `{s.name}` is on {on}, but the path is "
                    f"over `{s.index_set.name}`",
                    span=t.span or s.span,
                    hint=f"observe on `{s.index_set.name}`: each step scores its own state",
                )
    if s.until is not None:
        seq, time = s.index_set.factors
        if s.until not in index_maps:
            raise QuiversTypeError(
                f"until={s.until} of markov `{s.name}` must name an index map `{seq.name} -> {time.name}` "
                "(the last step of each sequence)",
                span=span_at(s.span, "until"),
                hint=f"declare it with index_map({s.until!r}, {seq.name}, {time.name}) "
                f"(in QVR: `index {s.until} : {seq.name} -> {time.name}`) and pass it as data",
            )
        dom, cod = index_maps[s.until]
        if (dom, cod) != (seq, time):
            raise ShapeError(
                f"until={s.until} of markov `{s.name}` is an index map `{dom.name} -> {cod.name}`, "
                f"but the path needs `{seq.name} -> {time.name}` (the last step of each sequence)",
                span=span_at(s.span, "until"),
            )
    return dims


def _check_event(s: SampleStep | ObserveStep, dims, shape) -> None:
    rank = s.family.event_rank
    if rank > len(dims):
        raise ShapeError(
            f"`{s.name}` has a {s.family.name} value with {rank} event axes, "
            f"but its index set `{s.index_set}` has {len(dims)}",
            span=s.span,
            hint=f"declare `{s.name}` on a plate whose last factor is the event axis",
        )
    if rank == 2 and shape[-1] != shape[-2]:
        raise ShapeError(f"`{s.name}` needs square event axes, got {shape[-2:]}", span=s.span)


def _categorical_axis(s: SampleStep | ObserveStep, defining) -> FinSet | None:
    if s.family.name != "Categorical":
        return None
    name = _bare_name(next(iter(s.family.args.values())))
    src = defining.get(name) if name else None
    if isinstance(src, SampleStep) and src.index_set is not None:
        return src.index_set.factors[-1]
    return None
