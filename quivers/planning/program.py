"""Programs whose discrete ``sample`` sites are summed out by a plan.

:func:`auto` turns a :class:`~quivers.programs.Program` into a
:class:`PlannedProgram`: the same steps, with every discrete sample site
that can be summed (:func:`quivers.planning.sites.choose`) bound, in each
run, to the enumeration of its values on its own plate, as a
``marginalize`` block binds its latent. The run's terms are then contracted
by the plan (:mod:`quivers.planning.plan`) instead of added up: the log
joint is exact, and the summed sites are no latents for guides or MCMC.

The posterior of a summed site comes from the same contraction: its
marginals are the derivative of the log normalizer in a zero factor added
on the site's axis (the sum-product's adjoint), its most probable values
those of the max-plus contraction, and joint draws clamp one site at a time,
the outermost first, each from its marginal given those clamped before.

Laws
----
- ``auto(p).log_joint(...)`` equals the brute-force sum over every value of
  the summed sites of ``p.log_joint(...)`` with them given (float64).
- Where the program can be written with ``marginalize`` blocks, the planned
  program's log joint and posteriors equal theirs.

Examples
--------
>>> import torch
>>> from quivers.categories import FinSet
>>> from quivers.distributions import Categorical, HalfNormal, Normal
>>> from quivers.programs import Program, observe, sample, var
>>> Item, K = FinSet("Item", 4), FinSet("K", 2)
>>> p = Program("mix", Item, Item, [
...     sample("w", K, HalfNormal(1.0)),
...     sample("z", Item, Categorical(var("w"))),
...     observe("y", Item, Normal(var("mu")[var("z")], 1.0)),
...     sample("mu", K, Normal(0.0, 5.0))])
>>> q = auto(p)
>>> [s.name for s in q.latent_sites()]
['w', 'mu']
>>> given = {"w": torch.tensor([0.3, 0.7]), "mu": torch.tensor([0.0, 0.0])}
>>> q.log_joint(None, {"y": torch.zeros(4)}, given).shape
torch.Size([])
>>> q.posterior_latents(None, {"y": torch.zeros(4)}, given)["z"][0]
tensor([0.3000, 0.7000])
"""

from __future__ import annotations

import dataclasses
import functools
import math
import warnings
from collections.abc import Iterable, Mapping
from typing import Any

import sympy
import torch

from quivers.categories import LOG, MAX_PLUS, FinSet, Semiring
from quivers.errors import QuiversTypeError, QuiversWarning
from quivers.planning.chains import Chain, lower_chains, unstacked
from quivers.planning.contract import run_plan
from quivers.planning.plan import Plan, PlanError, Scope, make_plan
from quivers.planning.sites import choose
from quivers.programs import Program
from quivers.programs.expr import INDEX
from quivers.programs.named import Value, to_layout
from quivers.programs.effects import Effect
from quivers.programs.steps import LetStep, ObserveStep, Step, StepVisitor, marginalize

__all__ = ["PlannedProgram", "auto", "DEFAULT_BUDGET"]

DEFAULT_BUDGET = 2**27
"""The default memory budget of a plan's largest intermediate, in bytes
(128 MiB; float32 entries)."""


class PlannedProgram(Program):
    """A program whose discrete sample sites are summed out by a plan.

    Build one with :func:`auto`. It is a :class:`Program` (the same steps,
    sites, composition and inference), whose :meth:`log_joint` sums the
    planned sites out, whose :meth:`latent_sites` leaves them out, and whose
    :meth:`posterior_latents`, :meth:`map_latents` and :meth:`sample` give
    their exact posterior. :meth:`plan` shows the contraction.
    """

    # a PlannedProgram built by composition or renaming before `auto` configures it plans nothing
    _values: dict = {}
    _lowered: dict = {}
    _chains: tuple[Chain, ...] = ()
    _sampled: dict = {}
    _exclude: tuple = ()
    _variables: dict = {}
    _maps: dict = {}
    budget: int = DEFAULT_BUDGET

    def then(self, other, *, name: str | None = None, effects=None) -> PlannedProgram:
        """``self >> other`` (:meth:`Program.then`), planned again: the
        composite's discrete sample sites are summed by its own plan."""
        return self._replanned(super().then(other, name=name, effects=effects))

    def par(self, other, *, name: str | None = None, effects=None) -> PlannedProgram:
        """``self @ other`` (:meth:`Program.par`), planned again."""
        return self._replanned(super().par(other, name=name, effects=effects))

    def _replanned(self, composite: Program) -> PlannedProgram:
        exclude = [n for n in self._exclude if n in composite.sites]
        out = auto(composite, budget=self.budget, exclude=exclude)
        return out._carry(self)

    def _carry(self, source: PlannedProgram) -> PlannedProgram:
        """This program (planned from one of ``source``'s, whose blocks are
        now its steps) configured with ``source``'s lowered blocks too."""
        chains = self._chains + tuple(c for c in source._chains if c.name in self._run_sites())
        lowered = {**{k: v for k, v in source._lowered.items() if k in self.sites}, **self._lowered}
        self._configure(self._values, self._sampled, self.budget, lowered, chains)
        return self

    def subsample(self, sizes: Mapping[str, int]) -> PlannedProgram:
        """This program on mini-batches (:meth:`Program.subsample`), planned
        again: the plan of the cut plates, each term scaled by ``N / b``."""
        key = tuple(sorted(sizes.items()))
        if key not in self._subsampled:
            out = auto(super().subsample(sizes), budget=self.budget, exclude=self._exclude)
            self._subsampled[key] = out._carry(self)
        return self._subsampled[key]

    def _configure(
        self, summed: Mapping[str, FinSet], sampled: Mapping[str, str], budget: int, lowered: Mapping[str, str],
        chains: tuple[Chain, ...] = (),
    ) -> None:
        self._chains = tuple(chains)
        self._publish()
        self.summed = frozenset(summed) | frozenset(lowered) | frozenset(n for c in chains for n in c.latents)
        self._values = dict(summed)
        self._sampled = dict(sampled)
        self._lowered = dict(lowered)
        self.budget = budget
        self._variables = {n: self.sites[n].dims for n in summed}
        self._maps = {id(s): _maps_read(s, self) for s in self.steps}
        self._plans: dict[tuple, Plan] = {}

    _derived = (*Program._derived, "_maps", "_plans", "_steps_sites", "_stacks")

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        self._publish()
        self._maps = {id(s): _maps_read(s, self) for s in self.steps}
        self._plans = {}

    def _publish(self) -> None:
        """The public sites: a chain's sites, not its block's latent and
        observation, which only runs bind (:meth:`_run_sites`)."""
        own = self.__dict__.setdefault("_steps_sites", self.sites)
        hidden = {n for c in self._chains for n in (c.name, c.obs)}
        self.sites = {**{n: s for n, s in own.items() if n not in hidden},
                      **{s.name: s for c in self._chains for s in c.sites}}
        self._stacks: dict = {}  # a chain's observations stacked, for the same data again

    # ------------------------------------------------------------ plans

    def plan(self) -> Plan:
        """The contraction plan, from the program's shapes (no data needed):
        the summed sites, their order, the largest intermediate tensor and
        its memory, the sites left to sampling and why.

        Examples
        --------
        >>> from quivers.categories import FinSet
        >>> from quivers.distributions import Bernoulli, Normal
        >>> from quivers.programs import Program, observe, sample, var
        >>> I = FinSet("I", 5)
        >>> p = auto(Program("p", I, I, [sample("b", None, Bernoulli(0.5)),
        ...                              observe("y", I, Normal(var("b") * 2.0, 1.0))]))
        >>> print(p.plan())
        plan: sum b
          b : 2 values, shared
          largest intermediate: I(5) * b(2) = 10 entries (40 bytes in float32)
          treewidth: 0
        """
        made = [(s, _static_scope(s, self)) for s in self.steps]
        made = [(s, sc) for s, sc in made if sc is not None]
        scopes = [sc for _, sc in made]
        sizes = {d: n for site in self.sites.values() for d, n in zip(site.dims, site.shape)}
        sizes.update({n: v.size for n, v in self._values.items()})
        plan = make_plan(scopes, self._variables, sizes)
        largest = (plan.largest, plan.largest_size)
        for name in self._lowered:  # a block's accumulator: its rows by its latent's values
            site = self.sites[name]
            n = math.prod(site.shape) * site.num_values
            if n > largest[1]:
                largest = (site.dims + (name,), n)
        sizes = {**plan.sizes, **{n: self.sites[n].num_values for n in self._lowered}}
        lowered = dict(self._lowered)
        for c in self._chains:  # the forward algorithm's product of one (T, K, K) tensor
            step = self._run_sites()[c.name].step
            axes = (step.time.name, step.support.name, step.support.name + "'")
            sizes.update(dict(zip(axes, (len(c.latents), c.states, c.states))))
            n = len(c.latents) * c.states**2
            if n > largest[1]:
                largest = (axes, n)
            lowered[c.name] = str(c)
        return dataclasses.replace(
            plan, sampled=dict(self._sampled), lowered=lowered, labels=tuple(s.label() for s, _ in made),
            largest=largest[0], largest_size=largest[1], sizes=sizes,
        )

    def _contract(self, run, terms, steps, *, semiring: Semiring = LOG, extra=()) -> torch.Tensor:
        values = [v for v, _ in terms]
        scopes = [Scope(v.dims, tuple(m for m in self._maps.get(id(s), ()) if m[1] in v.dims)) for v, s in zip(values, steps)]
        if extra:
            # fixed factors (clamps) first: their batch (draws) is the probes' too
            made = [make(None, values[0].tensor) for make in extra]
            batch = torch.broadcast_shapes(*(v.batch_shape for v in values + [v for v in made if v is not None]))
            for make, v in zip(extra, made):
                v = make(batch, values[0].tensor) if v is None else v
                values.append(v)
                scopes.append(Scope(v.dims))
        key = tuple(scopes)
        plan = self._plans.get(key)
        if plan is None:
            sizes = {d: n for v in values for d, n in v.sizes().items()}
            plan = make_plan(scopes, self._variables, sizes)
            if len(self._plans) > 64:
                self._plans.clear()
            self._plans[key] = plan
        return run_plan(plan, values, semiring, run.maps, run.scales)

    def _run_sites(self):
        return self.__dict__.get("_steps_sites", self.sites)

    def _env(self, observations, latents, mode: str, check_latents: bool = True, x: Any = None):
        # a lowered chain's block observes (and is given) its sites' values as one tensor each
        if self._chains:
            observations, latents = dict(observations or {}), dict(latents or {})
            for c in self._chains:
                c.stack(observations, c.observed, c.obs, "observations", self._stacks)
                c.stack(latents, c.latents, c.name, "values")
        return super()._env(observations, latents, mode, check_latents, x)

    def _execute(self, env, maps, batch_shape, mode: str = "density", *args, **kw):
        if mode == "density" and self._values:
            kw.setdefault("enumerated", self._values)
            kw.setdefault("contract", self._contract)
        return super()._execute(env, maps, batch_shape, mode, *args, **kw)

    # ------------------------------------------------------------ sites

    def latent_sites(self, observed_names: Iterable[str] = ()):
        """The sampled latents a guide or MCMC provides: the summed sites
        are not among them."""
        return [s for s in super().latent_sites(observed_names) if s.name not in self.summed]

    def pointwise_log_likelihood(self, x: Any = None, observations=None, latents=None) -> dict[str, torch.Tensor]:
        """Pointwise terms of the observations whose density does not read a
        summed site (those that do share the sum, as in a ``marginalize``
        block, and have no term of their own)."""
        run = self._run(observations, latents, pointwise=True, x=x)
        shared = {c.obs for c in self._chains}
        return {n: v.tensor for n, v in run.site_terms.items() if not set(v.dims) & set(self._values) and n not in shared}

    # --------------------------------------------------------- posterior

    def _adjoint(self, x, observations, latents, semiring: Semiring, clamps: Mapping[str, torch.Tensor]):
        """The derivative of the contraction in ``semiring`` in a zero factor
        on each summed site's axis, ``clamps`` (site -> values) fixed."""
        probes: dict[str, torch.Tensor] = {}

        def probe(name: str, batch: torch.Size | None, ref: torch.Tensor) -> Value | None:
            site = self.sites[name]
            k = self._values[name].size
            if name in clamps:
                c = clamps[name]
                t = torch.full(tuple(c.shape) + (k,), -torch.inf, dtype=ref.dtype, device=ref.device)
                t = t.scatter(-1, c.unsqueeze(-1).to(ref.device), 0.0)
            elif batch is None:
                return None
            else:
                t = torch.zeros(tuple(batch) + tuple(site.shape) + (k,), dtype=ref.dtype, device=ref.device,
                                requires_grad=True)
                probes[name] = t
            return Value(t, site.dims + (name,))

        extra = [functools.partial(probe, n) for n in self._variables]
        contract = functools.partial(self._contract, semiring=semiring, extra=extra)
        with torch.enable_grad():
            run = self._run(observations, latents, x=x, contract=contract)
            names = list(probes)
            if not names:
                return {}
            grads = torch.autograd.grad(run.log_density.sum(), [probes[n] for n in names])
        return dict(zip(names, grads))

    def posterior_latents(self, x: Any = None, observations=None, latents=None) -> dict[str, torch.Tensor]:
        """Exact posterior marginals of each summed site (shape ``batch +
        plate + (values,)``, summing to one over the last axis) and of each
        ``marginalize`` latent, given the rest."""
        out = super().posterior_latents(x, observations, latents)
        out.update({n: g.detach() for n, g in self._adjoint(x, observations, latents, LOG, {}).items()})
        return unstacked(out, self._chains, 1)

    def map_latents(self, x: Any = None, observations=None, latents=None) -> dict[str, torch.Tensor]:
        """The most probable joint values of the summed sites (by the
        max-plus contraction of the same plan), and of each ``marginalize``
        latent as :meth:`Program.map_latents` gives them."""
        out = unstacked(super().map_latents(x, observations, latents), self._chains, 0)
        out.update({n: g.argmax(-1) for n, g in self._adjoint(x, observations, latents, MAX_PLUS, {}).items()})
        return out

    def posterior_draws(self, x: Any = None, observations=None, latents=None, sample_shape=()) -> dict[str, torch.Tensor]:
        """Joint draws of the summed sites from their exact posterior: one
        site at a time, outermost plates first (the plan's order reversed),
        each from its marginal given those drawn before; then the sites
        summed by blocks, given those."""
        clamps: dict[str, torch.Tensor] = {}
        for name in reversed(self.plan().order):
            probs = self._adjoint(x, observations, latents, LOG, clamps)[name]
            probs = probs.clamp_min(0)
            clamps[name] = torch.distributions.Categorical(probs=probs).sample(torch.Size(sample_shape))
            sample_shape = ()
        if self._lowered or self._chains:  # blocks draw their latent from its posterior given the rest
            drawn = unstacked(super().sample(x, sample_shape, {**(latents or {}), **clamps}, observations),
                              self._chains, 0)
            clamps.update({n: drawn[n] for n in self._lowered})
            clamps.update({n: drawn[n] for c in self._chains for n in c.latents})
        return clamps

    @torch.no_grad()
    def sample(self, x: Any = None, sample_shape=(), latents=None, observations=None) -> dict[str, torch.Tensor]:
        """Ancestral draws, as :meth:`Program.sample`; when observations are
        given and every other latent is, the summed sites are drawn jointly
        from their exact posterior (as a ``marginalize`` latent is)."""
        latents, observations = dict(latents or {}), dict(observations or {})
        given = set(latents) | set(observations)
        observed = [s.name for s in self.observed_sites if s.name in observations]
        need = [s.name for s in self.latent_sites(observations)]
        if self._values and observed and all(n in given for n in need) and not (self.summed & given):
            draws = self.posterior_draws(x, observations, latents, sample_shape)
            return unstacked(super().sample(x, (), {**latents, **draws}, observations), self._chains, 0)
        return unstacked(super().sample(x, sample_shape, latents, observations), self._chains, 0)


def auto(
    program: Program, *, budget: int = DEFAULT_BUDGET, exclude: Iterable[str] = (), lower: bool = True
) -> PlannedProgram:
    """``program`` with its discrete sample sites summed out by a plan.

    Parameters
    ----------
    program
        A :class:`Program`.
    budget
        The most bytes the plan's largest intermediate may take (float32
        entries). Over it, the sites with the most values in the largest
        intermediate are left to sampling, one at a time, with a
        :class:`~quivers.errors.QuiversWarning` naming them and the size.
    exclude
        Sites to leave to sampling (``enumerate=False``).
    lower
        Write a site that is a latent per row (or per group, read through an
        index map) read only by observations as the ``marginalize`` block a
        user would write (the default), or sum every site by the general
        plan (``False``).

    Sites that cannot be summed (infinite support, inside a block) stay
    sampled latents: SVI draws them with its discrete estimators; the plan
    says why (:meth:`PlannedProgram.plan`).

    Examples
    --------
    >>> from quivers.categories import FinSet
    >>> from quivers.distributions import Bernoulli, Normal
    >>> from quivers.programs import Program, observe, sample, var
    >>> I = FinSet("I", 3)
    >>> p = auto(Program("p", I, I, [sample("b", None, Bernoulli(0.5)),
    ...                              observe("y", I, Normal(var("b") * 1.0, 1.0))]))
    >>> sorted(p.summed)
    ['b']
    """
    if not isinstance(program, Program):
        raise QuiversTypeError(f"auto takes a Program, got {type(program).__name__} `{program!r}`")
    if not isinstance(budget, int) or isinstance(budget, bool) or budget <= 0:
        raise QuiversTypeError(f"the memory budget of a plan must be a positive number of bytes, got `{budget!r}`")
    exclude = tuple(exclude)
    choice = choose(program, exclude)
    summed, sampled = dict(choice.summed), dict(choice.sampled)
    while True:
        general = dict(summed)  # less the sites a block sums
        steps, lowered = _lower(program, general) if lower else (program.steps, {})
        steps, chains = lower_chains(program, steps, general) if lower else (steps, ())
        out = _planned(program, steps, bool(lowered or chains))
        out._exclude = tuple(exclude)
        out._configure(general, sampled, budget, lowered, chains)
        try:
            plan = out.plan()
        except PlanError as err:
            raise err.relocated(program.span, program.source) from None
        # a block's accumulator counts too: a tiny budget leaves a per-row latent to sampling
        over = [d for d in plan.largest if d in summed]
        if plan.memory(4) <= budget or not over:
            return out
        biggest = max(over, key=lambda d: (summed[d].size, d))
        why = (f"the plan's largest intermediate {' * '.join(plan.largest)} takes {plan.memory(4)} bytes, "
               f"over the budget of {budget}")
        warnings.warn(f"`{biggest}` is sampled, not summed: {why}", QuiversWarning, stacklevel=2)
        sampled[biggest] = why
        del summed[biggest]


def _planned(program: Program, steps: tuple[Step, ...], blocks: bool) -> PlannedProgram:
    """A :class:`PlannedProgram` with ``steps`` (``program``'s, with some
    sites in blocks where ``blocks``); a block adds the effect ``Marginal``."""
    effects = set(program.effects) | ({Effect.Marginal} if blocks else set())
    out = PlannedProgram(
        program.name, program.dom, program.cod, steps, effects, span=program.span, source=program.source,
    )
    out.term_scales = dict(program.term_scales)  # a mini-batch's N / b per plate
    return out


def _lower(program: Program, summed: dict[str, FinSet]) -> tuple[tuple[Step, ...], dict[str, str]]:
    """The steps with each summed Categorical site that is a latent per row
    read only by observations on its row (the seed's mixture) written as
    the ``marginalize`` block a user would write: the same machinery (its
    fused kernels included), so the same numbers. Removes those sites from
    ``summed``; returns the steps and how each lowered site is summed."""
    steps = list(program.steps)
    lowered: dict[str, str] = {}
    for name in list(summed):
        site = program.sites[name]
        step = site.step
        if site.family.name != "Categorical" or site.values_in is None or len(site.dims) != 1:
            continue
        readers = [s for s in steps if s is not step and name in s.walk_reads()]
        others = set(summed) - {name}
        if not readers or step.reads & others or any(
            not isinstance(s, ObserveStep) or s.via is not None or s.walk_reads() & others for s in readers
        ):
            continue
        values = FinSet(site.values_in, site.num_values)
        if all(s.index_set == step.index_set for s in readers):
            block = marginalize(name, values, step.family, readers, span=step.span)
            how = f"a marginalize block, one per element of {step.index_set.name}"
        else:
            via = _read_through(name, readers, step.index_set, program)
            if via is None:
                continue
            z, g = sympy.Symbol(name, real=True), sympy.Symbol(via, real=True)
            body = [dataclasses.replace(s.map_exprs(lambda e: e._with(e.sympy.xreplace({INDEX(z, g): z}))), via=via)
                    for s in readers]
            block = marginalize(name, values, step.family, body, over=step.index_set, span=step.span)
            how = f"a marginalize block over {step.index_set.name}, its rows carried along `{via}`"
        ids = {id(s) for s in readers}
        steps = [block if s is step else s for s in steps if id(s) not in ids]
        lowered[name] = how
        del summed[name]
    return tuple(steps), lowered


def _read_through(name: str, readers: list[Step], plate: FinSet, program: Program) -> str | None:
    """The one index map ``g : P -> plate`` through which every reader (an
    observation on ``P``) reads ``name``, only as ``name[g]`` (the grouped
    mixture's ``mu_k[z[group]]``), or None."""
    z = sympy.Symbol(name, real=True)
    found: set[str] = set()
    for s in readers:
        for e in s.exprs():
            uses = [a for a in e.sympy.atoms(sympy.Function) if a.func == INDEX and a.args[0] == z]
            if any(len(a.args) != 2 or not isinstance(a.args[1], sympy.Symbol) for a in uses):
                return None
            rest = e.sympy.xreplace({a: sympy.Symbol("__read", real=True) for a in uses})
            if z in rest.free_symbols:
                return None  # read otherwise than through a map
            found |= {a.args[1].name for a in uses}
    if len(found) != 1:
        return None
    (via,) = found
    dom, cod = program.index_maps.get(via, (None, None))
    if cod != plate or any(s.index_set != dom for s in readers):
        return None
    return via


# ------------------------------------------------------- static analysis


def _closure(step: Step, program: Program) -> set[str]:
    """The names ``step`` (and its body) reads, through ``let`` steps."""
    lets = {s.name: s for s in program.steps if isinstance(s, LetStep)}
    seen: set[str] = set()
    todo = list(step.walk_reads())
    while todo:
        n = todo.pop()
        if n in seen:
            continue
        seen.add(n)
        if n in lets:
            todo.extend(lets[n].reads)
    return seen


def _maps_read(step: Step, program: Program) -> tuple[tuple[str, str, str], ...]:
    """The index maps ``dom -> cod`` (single plates) that ``step`` reads."""
    out = []
    for n in sorted(_closure(step, program)):
        if n in program.index_maps and program.sites[n].kind == "index":
            dom, cod = program.index_maps[n]
            if len(dom.factors) == 1:
                out.append((n, dom.name, cod.name))
    return tuple(out)


class _TermRows(StepVisitor):
    """The rows of the term a step adds to a run (None: it adds none)."""

    def visit_sample(self, step: Step, program: PlannedProgram) -> tuple[str, ...] | None:
        site = program._run_sites()[step.name]
        return site.dims if site.kind in ("latent", "observed") else None

    visit_observe = visit_sample

    def visit_marginalize(self, step: Step, program: PlannedProgram) -> tuple[str, ...]:
        return program._run_sites()[step.name].dims

    def visit_markov(self, step: Step, program: PlannedProgram) -> tuple[str, ...]:
        return program._run_sites()[step.name].dims[:-1]  # the time axis is summed inside the chain

    def visit_factor(self, step: Step, program: PlannedProgram) -> tuple[str, ...]:
        sites = program._run_sites()
        read = (n for n in _closure(step, program) if n in sites and sites[n].kind != "index")
        return tuple(dict.fromkeys(d for n in read for d in sites[n].dims))

    def _none(self, step: Step, program: PlannedProgram) -> None:
        return None

    visit_let = visit_input = visit_data = visit_indexmap = visit_return = _none


def _static_scope(step: Step, program: PlannedProgram) -> Scope | None:
    """The axes of the term ``step`` adds to a run, from the program's
    shapes: its rows and the summed sites it reads."""
    rows = _TermRows().visit(step, program)
    if rows is None:
        return None
    read = _closure(step, program)
    planned = set(program._values)
    own = {step.name} if getattr(step, "name", None) in planned else set()
    summed = sorted((read & planned) | own)
    maps = tuple(m for m in program._maps.get(id(step), ()) if m[1] in rows)
    rows = tuple(d for d in rows if d not in planned)
    return Scope(rows + tuple(summed), maps)

