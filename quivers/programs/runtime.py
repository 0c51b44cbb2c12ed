"""The interpreter: exact log densities, ancestral draws, responsibilities.

A program runs block by block over an environment of named
:class:`~quivers.programs.named.Value` s. In *density* mode every scored
step contributes a log-density term; a ``marginalize`` block binds its
latent to the enumeration of its support (a named axis, never a Python loop
over values), collects its body's terms and combines them with the log
prior weights:

- per row: ``sum_n log sum_k exp(log pi_{n,k} + sum_{terms} l_{n,k})``;
- grouped over ``G``: each observe's per-row terms are first carried along
  its index map ``g : Item -> G`` by the right Kan extension in the log
  semiring (:func:`quivers.categories.right_kan`: the sum over each fibre,
  an empty fibre giving ``0 = log 1``) into a ``(G, K)`` accumulator:
  ``sum_g log sum_k exp(log pi_{g,k} + sum_{n: g(n) = g} l_{n,k})``.

Values on the grouping plate ``G`` that an ``observe ... [via=g]`` reads
are pulled back along ``g`` (``x[g]``), the adjoint direction.

A marginalized latent given a value (in the observations) is conditioned
on instead: its block scores ``log pi[z] + body(z)``.

In *sample* mode the same steps draw every site not already given. A
marginalized latent is drawn from its prior, or, when observations in its
body are given, from its exact posterior given them (Pyro's
``infer_discrete``); one value per row, or per group.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import sympy
import torch
from torch.distributions import constraints

from quivers.capture import capturing
from quivers.categories import FinFunction, FinSet
from quivers.distributions import Family
from quivers.errors import DataError, InvalidValueError, QuiversError, ShapeError, UnknownNameError, UnsupportedError
from quivers.distributions import densities
from quivers.programs.expr import INDEX, REF, Evaluator
from quivers.programs import fused
from quivers.programs.fused import group_moments, grouped_normal_mixture, normal_mixture
from quivers.programs.named import (
    REDUCTIONS, Value, align, gather, merge_axes, plate_dims, reduce_sum, rename, scatter_sum, to_layout,
)
from quivers.programs.relaxed import RelaxedValue, relaxed_log_prob
from quivers.programs.sites import Site
from quivers.programs.chain import MarkovStep, run_markov
from quivers.programs.constrained import draw_constrained
from quivers.programs.steps import (
    FactorStep,
    DataStep,
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

__all__ = ["Compiled", "Run", "RETURN", "place", "site_log_prob", "in_step"]

RETURN = "__return__"
_MATRIX = ("__row", "__col")


@dataclass
class Compiled:
    """What a program's steps need at run time, prepared once at build."""

    order: dict[int, list[Step]]  # id(block owner or 0) -> steps in run order
    params: dict[int, dict[str, Evaluator]]  # id(step) -> family parameter evaluators
    exprs: dict[int, Evaluator]  # id(step) -> expression evaluator
    sites: dict[str, Site]
    index_maps: dict[str, tuple]
    steps: tuple[Step, ...]
    # id(block) -> its fusable observe (or None) and the names of its parameters written a[z]
    fusable: dict[int, tuple[ObserveStep | None, dict[str, str]]] = field(default_factory=dict)
    moments: dict[tuple, tuple] = field(default_factory=dict)  # per-group moments of data, per data tensor
    # id(block) -> the names (w, i) of its weights written w[i], or None
    indexed: dict[int, tuple[str, str] | None] = field(default_factory=dict)
    # data tensors found inside a support with constant integer bounds: the
    # check of an observation against Categorical(K) is made once per tensor
    supported: dict[tuple, torch.Tensor] = field(default_factory=dict)


def in_step(err: QuiversError, step: Step) -> QuiversError:
    """``err`` located at ``step``: its span when it has one, else its name
    prefixed to the message (unless the message names it already)."""
    span = getattr(step, "span", None)
    if span is not None:
        return err.relocated(span)
    name = getattr(step, "name", None) or step.kind
    if f"`{name}`" in err.message or err.span is not None:
        return err
    return err.relocated(prefix=f"step `{name}`: ")


@dataclass
class Run(StepVisitor):
    """One execution of a program over an environment.

    ``mode`` is ``"density"`` or ``"sample"``. ``maps`` holds the index
    maps as :class:`~quivers.categories.FinFunction` s. In sample mode every
    drawn site gets the batch shape ``batch_shape`` (the sample shape
    followed by the batch of the given values). After :meth:`execute`,
    ``env`` holds every value and, in density mode, ``log_density`` the
    batch-shaped total and ``responsibilities`` the posterior of each
    marginalized latent (when ``record`` is set).
    """

    compiled: Compiled
    env: dict[str, Value]
    mode: str = "density"
    batch_shape: torch.Size = field(default_factory=torch.Size)
    record: bool = False
    pointwise: bool = False
    maps: dict[str, FinFunction] = field(default_factory=dict)
    log_density: torch.Tensor | None = None
    responsibilities: dict[str, Value] = field(default_factory=dict)
    record_paths: bool = False  # Viterbi paths of Markov latents, into ``paths``
    paths: dict[str, Value] = field(default_factory=dict)
    site_terms: dict[str, Value] = field(default_factory=dict)
    diagnose: bool = True
    scales: dict[str, float] = field(default_factory=dict)  # plate -> N / b on mini-batches
    # every top-level term but a latent's prior is multiplied by this: a
    # data-parallel shard's likelihood weighted by the number of shards
    likelihood_scale: float = 1.0
    _priors: set = field(default_factory=set)  # ids of the latents' prior terms
    # with ``trace``, the terms each step added, in the order the steps ran
    # (a block's body before the block): to find where a gradient breaks
    trace: list[tuple[Step, list[Value]]] | None = None
    # sample sites a plan sums out (quivers.planning): each is bound to the
    # enumeration of its values (named after the site) on its own plate,
    # and scores its prior there, in density mode
    enumerated: Mapping[str, FinSet] = field(default_factory=dict)
    # with ``contract``, the top block's terms and the step of each go to
    # ``contract(run, terms, steps)`` for the total, instead of a plain sum
    contract: Callable | None = None
    _partial: bool = False  # scoring only what is given (a posterior draw)

    def execute(self) -> Run:
        if self.contract is not None:
            if self.likelihood_scale != 1.0:
                raise UnsupportedError(
                    "a planned program cannot be sharded across processes",
                    hint="shard the program before planning it with `auto`",
                )
            if self.trace is None:
                self.trace = []
            terms = self._block(0)
            top = {id(s) for s in self.compiled.order[0]}
            steps = [s for s, vs in self.trace if id(s) in top for _ in vs]
            self.log_density = self.contract(self, terms, steps)
            return self
        self.log_density = self.total(self._block(0))
        if self.diagnose and self.mode == "density" and bool(torch.isnan(self.log_density.detach()).any()):
            self._diagnose_nan()
        return self

    def total(self, terms: list[tuple[Value, str | None]]) -> torch.Tensor:
        """The log density of the top block's ``terms``: each summed over
        its axes and scaled (mini-batch plates, a shard's likelihood), in
        the order the steps made them."""
        total = None
        for v, _ in terms:
            t = v.tensor
            if v.dims:
                t = t.sum(dim=tuple(range(t.dim() - len(v.dims), t.dim())))
            for d in v.dims:
                if d in self.scales:
                    t = t * self.scales[d]
            if self.likelihood_scale != 1.0 and id(v) not in self._priors:
                t = t * self.likelihood_scale
            total = t if total is None else total + t
        return total if total is not None else self.env[REF].tensor.new_zeros(())

    # ------------------------------------------------------------ blocks

    def _block(self, key: int) -> list[tuple[Value, str | None]]:
        terms: list[tuple[Value, str | None]] = []
        for s in self.compiled.order[key]:
            before = len(terms)
            try:
                self.visit(s, terms)
            except QuiversError as err:
                raise in_step(err, s) from None
            if self.trace is not None and len(terms) > before:
                self.trace.append((s, [v for v, _ in terms[before:]]))
        return terms

    # ---------------------------------------- operations blocks are run with

    def params(self, owner: object) -> dict[str, Value]:
        """The parameters compiled for ``owner`` (a step, or a law of a
        chain such as its ``init``), evaluated in this run's environment."""
        return {k: f(self.env) for k, f in self.compiled.params[id(owner)].items()}

    def law(self, owner: object) -> tuple[str, Value]:
        """The one parameter of the Categorical law of ``owner``: its key
        (``logits``, or weights under their name) and its value."""
        ((key, f),) = self.compiled.params[id(owner)].items()
        return key, f(self.env)

    def body(
        self, s: Step, *, enumerate: bool = False, density: bool = False, partial: bool = False
    ) -> list[tuple[Value, str | None]]:
        """Run the body of the block ``s`` and return its terms. With
        ``enumerate``, ``s``'s latent is bound to the enumeration of its
        support (a named axis) meanwhile; with ``density``, the body is
        scored whatever the run's mode; with ``partial``, observations not
        given are left out (they integrate to one in a posterior)."""
        mode, was_partial = self.mode, self._partial
        if density:
            self.mode = "density"
        self._partial = partial or was_partial
        if enumerate:
            self.env[s.name] = _enumeration(s.name, s.support, self.env[REF].tensor.device)
        try:
            return self._block(id(s))
        finally:
            if enumerate:
                del self.env[s.name]
            self.mode, self._partial = mode, was_partial

    def body_given(self, s: Step) -> bool:
        """Whether any observation in the body of ``s`` has a value."""
        return any(isinstance(t, ObserveStep) and t.name in self.env for t in s.walk())

    # --------------------------------------------- the rule of each step kind

    def visit_sample(self, s: SampleStep | ObserveStep, terms: list) -> None:
        env, site = self.env, self.compiled.sites[s.name]
        if site.kind == "index":
            return
        params = self.params(s)
        via = getattr(s, "via", None)
        if via is not None:
            params = {k: self._pull_back(v, via) for k, v in params.items()}
        if self.mode == "sample" and s.name not in env:
            env[s.name] = self._draw(site, params)
            return
        if s.name in self.enumerated and s.name not in env:
            env[s.name], lp = _enumerate_site(
                site, params, self.enumerated[s.name], env[REF].tensor.device, self.enumerated
            )
            self._priors.add(id(lp))
            terms.append((lp, None))
            return
        if self._partial and s.name not in env:
            return  # not given: integrates to one in a posterior draw
        lp = site_log_prob(site, params, env[s.name], self.compiled.supported)
        if self.pointwise and site.kind == "observed":
            self.site_terms[s.name] = lp
        if site.kind == "latent":
            self._priors.add(id(lp))
        terms.append((lp, via))

    visit_observe = visit_sample

    def visit_let(self, s: LetStep, terms: list) -> None:
        self.env[s.name] = self.compiled.exprs[id(s)](self.env)

    def visit_factor(self, s: FactorStep, terms: list) -> None:
        if self.mode == "density":
            terms.append((self.compiled.exprs[id(s)](self.env), None))

    def visit_return(self, s: ReturnStep, terms: list) -> None:
        self.env[RETURN] = self.compiled.exprs[id(s)](self.env)

    def visit_markov(self, s: MarkovStep, terms: list) -> None:
        run_markov(self, s, terms)

    def visit_marginalize(self, s: MarginalizeStep, terms: list) -> None:
        if s.name in self.env:
            terms.extend(self._conditioned(s))
        elif self.mode == "sample":
            self._draw_marginal(s)
            self.body(s)
        else:
            terms.extend(self._marginalize(s))

    def visit_indexmap(self, s: IndexMapStep | DataStep | InputStep, terms: list) -> None:
        """Data, index maps and the input are bound before the run."""

    visit_data = visit_input = visit_indexmap

    def _pull_back(self, v: Value, via: str | tuple[str, ...]) -> Value:
        """A value on the codomain ``G`` of the index map ``via`` seen from
        its domain: ``v[via]`` along ``G`` (the pullback ``via*``)."""
        f, index = self._via(via)
        dims, sizes = plate_dims(f.cod)
        if not set(dims) & set(v.dims):
            return v
        if len(dims) > 1:  # a map into pairs reads the pair's entry: G and H made one axis first
            v = merge_axes(v, dims, sizes, f.cod.name)
        return gather(v, index, f.cod.name)

    def _via(self, via: str | tuple[str, ...]) -> tuple[FinFunction, Value]:
        """The index map of ``via`` and its value: one map, or, for one map
        per factor of a grouping by pairs, their pairing ``n -> (g(n), h(n))``
        numbered row-major as the elements of ``G * H`` are."""
        if isinstance(via, str):
            return self.maps[via], self.env[via]
        maps = [self.maps[v] for v in via]
        cod = maps[0].cod
        flat = maps[0].mapping
        for f in maps[1:]:
            cod, flat = cod * f.cod, flat * f.cod.size + f.mapping
        first = self.env[via[0]]
        return FinFunction(maps[0].dom, cod, flat), Value(flat.reshape(first.tensor.shape), first.dims, values_in=cod.name)

    # ------------------------------------------------------- marginalize

    def _weights(self, s: MarginalizeStep, axis_name: str) -> tuple[str, Value, int]:
        """The prior of a block as given: its parameter's name (``logits``
        or ``probs``), its value with the latent's axis named
        ``axis_name``, and that axis's position."""
        key, v = self.law(s)
        k = s.support.name
        if k not in v.dims:  # the shape checker rules this out at build time
            raise ShapeError(f"the weights of `{s.name}` have axes {list(v.dims)}, none of them `{k}`")
        axis = v.batch_ndim + v.dims.index(k)
        return key, rename(v, k, axis_name), axis

    def _log_weights(self, s: MarginalizeStep, axis_name: str) -> Value:
        pulled = self._normalized_then_indexed(s, axis_name)
        if pulled is not None:
            return pulled
        key, v, axis = self._weights(s, axis_name)
        return Value(densities.log_normalized(v.tensor, key, axis), v.dims)

    def _normalized_then_indexed(self, s: MarginalizeStep, axis_name: str) -> Value | None:
        """Weights written ``w[i]`` with ``i`` an index into another axis of
        ``w`` than the latent's (LDA's ``theta[doc]``, a table per document
        read for every word) normalized before they are indexed: the same
        numbers, computed on the table rather than on every row. None (the
        general path) for anything else."""
        indexed = self.compiled.indexed
        if id(s) not in indexed:
            indexed[id(s)] = _indexed_weights(s)
        names = indexed[id(s)]
        if names is None:
            return None
        w, i = self.env.get(names[0]), self.env.get(names[1])
        k = s.support.name
        if (type(w) is not Value or type(i) is not Value or k not in w.dims or i.values_in == k
                or i.values_in not in w.dims):
            return None
        key = next(iter(s.prior.args))
        lw = densities.log_normalized(w.tensor, key, w.batch_ndim + w.dims.index(k))
        return rename(gather(Value(lw, w.dims), i, i.values_in), k, axis_name)

    def _accumulate(self, s: MarginalizeStep, partial: bool = False) -> tuple[Value, set]:
        """The ``(rows, z)`` accumulator of a block: log prior weights plus
        the body's terms, observe terms of a grouped block carried to the
        groups by the right Kan extension along their index maps (with
        ``partial``, only the terms of what is given, scored)."""
        z = s.name
        inner = self.body(s, enumerate=True, density=partial, partial=partial)
        parts = [self._log_weights(s, z)]
        vias = {via for _, via in inner}
        for v, via in inner:
            if s.over is not None and via is not None:
                v = scatter_sum(v, self._via(via)[0])
            parts.append(v)
        tensors, dims, _ = align(parts)
        return Value(sum(tensors[1:], tensors[0]), dims), vias

    def _marginalize(self, s: MarginalizeStep) -> list[tuple[Value, str | None]]:
        call = self.fused_call(s)
        if call is not None:
            kernel, args, kw, dims = call
            return [(Value(kernel(*args, **kw), dims), None)]
        acc, vias = self._accumulate(s)
        z = s.name
        if self.record:
            axis = acc.batch_ndim + acc.dims.index(z)
            self.responsibilities[z] = Value(torch.softmax(acc.tensor, axis), acc.dims)
        out = REDUCTIONS[s.reduction](acc, z)
        via = next(iter(vias)) if s.over is None and len(vias) == 1 else None
        if self.pointwise and not self.compiled.sites[z].blocks:
            self._block_pointwise(s, out)
        return [(out, via)]

    def _block_pointwise(self, s: MarginalizeStep, out: Value) -> None:
        """The pointwise term of a top-level block: the likelihood factors
        over its rows (per row, or per group of ``over``), not over the rows
        of its observations, so a lone observation's term is the block's
        value, one per row or group. Observations that share a block with
        others (or sit in a nested one) have no term of their own; the
        per-component terms recorded inside the block are dropped."""
        observed = [t.name for t in s.walk() if isinstance(t, ObserveStep)]
        for name in observed:
            self.site_terms.pop(name, None)
        if len(observed) == 1 and all(not isinstance(t, MarginalizeStep) for t in s.body):
            self.site_terms[observed[0]] = out

    def fused_call(self, s: MarginalizeStep) -> tuple[Callable, tuple, dict, tuple[str, ...]] | None:
        """The call of a kernel of :mod:`quivers.programs.fused` that gives
        the value of the block ``s`` (summed out by logsumexp) when its body
        is one Normal observation of data whose parameters lie on the
        latent's axis alone: the kernel, its arguments and keywords, and
        the axes of its result. None (the general path) otherwise,
        including whenever anything would raise, so that errors keep their
        place."""
        single = s.over is None or len(s.over.factors) == 1  # the fused kernels group by one axis
        if s.reduction != "logsumexp" or not single or not fused.enabled() or (
                self.record or self.pointwise or self._partial or self.trace is not None):
            return None
        fusable = self.compiled.fusable
        if id(s) not in fusable:
            fusable[id(s)] = _fusable_observe(s, self.compiled.sites)
        o, direct = fusable[id(s)]
        y = self.env.get(o.name) if o is not None else None
        if y is None or y.tensor.requires_grad or not torch.is_floating_point(y.tensor):
            return None
        z, rows = s.name, y.dims
        try:
            params = self._direct_params(s, direct) if direct else None
            if params is None:
                self.env[z] = _enumeration(z, s.support, y.tensor.device)
                try:
                    params = self.params(o)
                finally:
                    del self.env[z]
            if s.over is None:  # the kernel normalizes and logs the weights itself
                key, lw, _ = self._weights(s, z)
            else:
                key, lw = "logits", self._log_weights(s, z)
        except QuiversError:
            return None
        loc, scale = params["loc"], params["scale"]
        group = () if s.over is None else (s.over.name,)
        if any(d != z for d in loc.dims + scale.dims) or any(d != z and d not in group for d in lw.dims):
            return None
        b = max(v.batch_ndim for v in (loc, scale, lw, y))
        loc_t, scale_t = to_layout(loc, b, (z,)), to_layout(scale, b, (z,))
        if s.over is None:
            w = to_layout(lw, b, (z,))
            if key == "logits":
                w = torch.log_softmax(w, -1)
            return normal_mixture, (w, loc_t, scale_t, to_layout(y, b, rows)), {"weights": key != "logits"}, rows
        g = self.env[o.via].tensor
        key = (id(y.tensor), y.tensor._version, id(g), g._version, s.over.size)
        hit = self.compiled.moments.get(key)
        if hit is None or hit[0] is not y.tensor or hit[1] is not g:
            if len(self.compiled.moments) > 16:
                self.compiled.moments.clear()
            hit = (y.tensor, g, group_moments(to_layout(y, b, rows), g, s.over.size))
            self.compiled.moments[key] = hit
        return grouped_normal_mixture, (to_layout(lw, b, group + (z,)), loc_t, scale_t, hit[2]), {}, group

    def _direct_params(self, s: MarginalizeStep, direct: Mapping[str, str]) -> dict[str, Value] | None:
        """The parameters ``a[z]`` of a fused block's observation read
        straight from the environment: indexing ``a``'s axis ``K`` by the
        enumeration of ``z : K`` renames that axis ``z``. None (the
        evaluators then run, and raise where they should) for anything
        else: a name that is not a value, or a value without the axis."""
        k, z = s.support.name, s.name
        out = {}
        for key, name in direct.items():
            v = self.env.get(name)
            if v is None or type(v) is not Value or k not in v.dims or z in v.dims:
                return None
            out[key] = rename(v, k, z)  # as gather renames for an enumeration
        return out

    def _conditioned(self, s: MarginalizeStep) -> list[tuple[Value, str | None]]:
        """A marginalized latent with a given value: ``log pi[z] + body(z)``."""
        inner = self.body(s)
        if self.mode == "sample":
            return []
        lw = gather(self._log_weights(s, s.support.name), self.env[s.name], s.support.name)
        return [(lw, None)] + inner

    # ------------------------------------------------------------ draws

    def _draw(self, site: Site, params: dict[str, Value]) -> Value:
        if site.constraint is not None:
            drawn = draw_constrained(site, params, self.batch_shape, self.env[REF].tensor)
            if drawn is not None:
                return drawn
        if site.family.spec.improper:
            raise UnsupportedError(
                f"cannot draw `{site.name}`: its prior {site.family.name}() is improper, so there is "
                "no distribution to draw it from",
                hint=f"give `{site.name}` a value (in latents, e.g. posterior draws), or a proper prior",
            )
        dist, plate, _ = place(site, params, None)
        sizes = dict(zip(site.dims, site.shape))
        full = self.batch_shape + torch.Size(sizes[d] for d in plate)
        try:
            x = dist.expand(full).sample()
        except RuntimeError as err:
            raise ShapeError(
                f"cannot draw `{site.name}` with batch shape {tuple(self.batch_shape)}: its parameters have "
                f"batch shape {tuple(dist.batch_shape)} ({err})"
            ) from None
        if site.constraint in ("ordered", "positive_ordered"):
            # iid draws, sorted: the family restricted to the increasing vectors
            x = x.sort(-1).values
        return Value(x, plate + site.event_dims, values_in=site.values_in)

    def _draw_marginal(self, s: MarginalizeStep) -> None:
        site = self.compiled.sites[s.name]
        if self.body_given(s):
            logits = self._posterior_logits(s)
        else:
            logits = self._log_weights(s, "__k")
        stray = [d for d in logits.dims if d != "__k" and d not in site.dims]
        if stray:  # the shape checker rules this out at build time
            raise ShapeError(f"the weights of `{s.name}` vary over {stray}, but `{s.name}` lives on {list(site.dims)}")
        t = to_layout(logits, logits.batch_ndim, site.dims + ("__k",))
        full = self.batch_shape + torch.Size(site.shape) + t.shape[-1:]
        try:
            t = t.expand(full)
        except RuntimeError:
            raise ShapeError(
                f"cannot draw `{s.name}` with batch shape {tuple(self.batch_shape)}: its weights have "
                f"batch shape {tuple(t.shape[: t.dim() - len(site.shape) - 1])}"
            ) from None
        nan = torch.isnan(t)
        if bool(nan.any()):  # torch's sampler would fail with a bare RuntimeError
            _check_weights(s, self.params(s))
            bad = tuple(int(i) for i in torch.nonzero(nan)[0][:-1])
            raise InvalidValueError(f"cannot draw `{s.name}`: its log weights are NaN at index {bad}")
        x = torch.distributions.Categorical(logits=t, validate_args=False).sample()
        self.env[s.name] = Value(x, site.dims, values_in=s.support.name)

    def _posterior_logits(self, s: MarginalizeStep) -> Value:
        """The log posterior of ``s``'s latent given what its body observes
        (observes not given integrate to one and are left out)."""
        try:
            acc, _ = self._accumulate(s, partial=True)
        except UnknownNameError as err:
            raise DataError(
                f"cannot draw `{s.name}` from its posterior: {err.message}",
                hint="give every value its body's observations depend on, or none of them",
            ) from None
        return Value(acc.tensor, tuple("__k" if d == s.name else d for d in acc.dims))

    # ------------------------------------------------------- diagnostics

    def _diagnose_nan(self) -> None:
        """A NaN log density comes from a parameter outside its constraint
        (a negative scale computed by a ``let``) or from overflow. Name the
        first parameter outside its constraint; leave overflow NaNs to the
        caller (MCMC treats them as divergences)."""
        for key in self.compiled.order:
            for s in self.compiled.order[key]:
                fam = s.law
                if fam is None or isinstance(s, MarkovStep):  # a chain checks its weights as it normalizes them
                    continue
                try:
                    params = self.params(s)
                except QuiversError:
                    continue  # names bound only inside an enumeration
                if isinstance(s, MarginalizeStep):
                    _check_weights(s, params)
                for name, v in params.items():
                    spec = fam.spec.param(name)
                    t = v.tensor.detach()
                    if torch.is_floating_point(t) and spec.constraint is constraints.positive_definite and t.dim() >= 2:
                        info = torch.linalg.cholesky_ex(t)[1]
                        if bool((info != 0).any()):
                            bad = tuple(int(i) for i in torch.nonzero(info != 0)[0])
                            raise InvalidValueError(
                                f"parameter `{name}` of `{s.name}` is not positive definite"
                                + (f" at batch index {bad}" if bad else "") + "; the log density is NaN"
                            )
                    if not torch.is_floating_point(t) or spec.event_rank:
                        continue
                    ok = spec.constraint.check(t) | ~torch.isfinite(t)
                    if not bool(ok.all()):
                        bad = tuple(int(i) for i in torch.nonzero(~ok)[0])
                        raise InvalidValueError(
                            f"parameter `{name}` of `{s.name}` is {float(t[bad])} at index {bad}, "
                            f"outside its constraint {spec.constraint}; the log density is NaN"
                        )


def _check_weights(s: MarginalizeStep, params: Mapping[str, Value]) -> None:
    """Name the row of a marginalize step's weights that has no finite log
    normalizer: a negative weight, or weights that sum to zero."""
    if "logits" in params:
        return
    ((_, v),) = params.items()
    t = v.tensor.detach()
    axis = v.batch_ndim + v.dims.index(s.support.name)
    negative = t < 0
    if bool(negative.any()):
        bad = tuple(int(i) for i in torch.nonzero(negative)[0])
        raise InvalidValueError(
            f"the weights of `{s.name}` have a negative entry {float(t[bad])} at index {bad}; the log density is NaN"
        )
    empty = t.sum(axis) == 0
    if bool(empty.any()):
        bad = tuple(int(i) for i in torch.nonzero(empty)[0])
        raise InvalidValueError(
            f"the weights of `{s.name}` sum to zero at index {bad} (axes {list(v.dims)} without "
            f"`{s.support.name}`); the log density is NaN",
            hint="give every row a positive weight, or use logits",
        )


def _param_event(site: Site, family: Family, name: str, v: Value, plate: tuple[str, ...]) -> tuple[Value, tuple[str, ...]]:
    rank = family.spec.param(name).event_rank
    if rank == 0:
        return v, ()
    if rank == 2:
        if len(v.dims) < 2:
            raise ShapeError(f"parameter `{name}` of `{site.name}` must be a matrix on two axes, got {list(v.dims)}")
        d = v.dims
        return Value(v.tensor, d[:-2] + _MATRIX), _MATRIX
    event = site.event_dims
    if event:
        return v, ((event[-1],) if event[-1] in v.dims else ("__event",))
    extra = [d for d in v.dims if d not in plate and not d.startswith("__")]
    cats = [d for d in extra if d == site.values_in] or extra[-1:]
    if not cats:
        raise ShapeError(
            f"the weights of `{site.name}` need a category axis beyond its plate {list(plate)}, got {list(v.dims)}"
        )
    return v, (cats[0],)


def _lay_out_scalars(site: Site, params: Mapping[str, Value], value: Value | None):
    """:func:`_lay_out` for a family of scalars (no event axes): the
    common case, on every call, without the event bookkeeping. A parameter
    that is a 0-dimensional tensor broadcasts as it is."""
    plate = axes = site.dims
    batch = 0 if value is None else value.tensor.dim() - len(value.dims)
    for v in params.values():
        b = v.tensor.dim() - len(v.dims)
        batch = b if b > batch else batch
        for d in v.dims:
            if d not in axes:
                axes = axes + (d,)
    tensors = {name: v.tensor if v.tensor.dim() == 0 else to_layout(v, batch, axes) for name, v in params.items()}
    if value is None:
        if axes != plate:
            extra = [d for d in axes if d not in plate]
            raise ShapeError(
                f"the parameters of `{site.name}` vary over {extra}, which `{site.name}` is not declared on"
            )
        return tensors, plate, batch, None
    return tensors, axes, batch, to_layout(value, batch, axes)


def place(site: Site, params: Mapping[str, Value], value: Value | None):
    """Lay the parameters (and the value) of ``site`` out on common axes and
    build the torch distribution. Returns ``(dist, axes, batch_ndim)`` or,
    with a value, ``(dist, axes, batch_ndim, value_tensor)``."""
    tensors, axes, batch, x = _lay_out(site, params, value)
    dist = site.family.build(tensors)
    if value is None:
        return dist, axes, batch
    return dist, axes, batch, x


_SCALAR_FAMILIES: dict[int, bool] = {}


def _scalar_family(spec) -> bool:
    """Whether every parameter and the value of the family are scalars."""
    hit = _SCALAR_FAMILIES.get(id(spec))
    if hit is None:
        ranks = [p.event_rank for p in spec.params] + [p.event_rank for g in spec.alternatives for p in g]
        hit = _SCALAR_FAMILIES[id(spec)] = spec.event_rank == 0 and not any(ranks)
    return hit


def _lay_out(site: Site, params: Mapping[str, Value], value: Value | None):
    """The parameter tensors of ``site`` on common axes, the axes, the
    number of batch axes, and the value's tensor on them (None without a
    value; then the axes are the site's plate)."""
    family = site.family
    if _scalar_family(family.spec):
        return _lay_out_scalars(site, params, value)
    event = site.event_dims
    plate = tuple(d for d in site.dims if d not in event)
    laid: dict[str, tuple[Value, tuple[str, ...]]] = {}
    extra: dict[str, None] = {}
    for name, v in params.items():
        v, ev = _param_event(site, family, name, v, plate)
        laid[name] = (v, ev)
        for d in v.dims:
            if d not in plate and d not in ev and d not in event:
                extra.setdefault(d, None)
    axes = plate + tuple(extra)
    batch = max([v.batch_ndim for v, _ in laid.values()] + ([value.batch_ndim] if value is not None else []))
    tensors = {}
    sizes = dict(zip(site.dims, site.shape))
    for name, (v, ev) in laid.items():
        if ev == ("__event",):
            t = to_layout(v, batch, axes).unsqueeze(-1).expand(*([-1] * (batch + len(axes))), sizes[event[-1]])
        else:
            t = to_layout(v, batch, axes + ev)
        tensors[name] = t
    if family.name == "LKJCholesky":
        tensors["dim"] = torch.tensor(site.shape[-1])
    if value is None:
        if extra:
            raise ShapeError(
                f"the parameters of `{site.name}` vary over {list(extra)}, which `{site.name}` is not declared on"
            )
        return tensors, plate, batch, None
    return tensors, axes, batch, to_layout(value, batch, axes + event)


_ENUMERATIONS: dict[tuple, Value] = {}


def _enumeration(z: str, support: FinSet, device: torch.device) -> Value:
    """The enumeration of a marginalized latent ``z``: ``arange`` along its
    own axis. Made once per latent and device; values are never written."""
    key = (z, support.name, support.size, device)
    v = _ENUMERATIONS.get(key)
    if v is None:
        if len(_ENUMERATIONS) > 1024:
            _ENUMERATIONS.clear()
        v = _ENUMERATIONS[key] = Value(torch.arange(support.size, device=device), (z,), values_in=support.name, enumerates=True)
    return v


def _enumerate_site(
    site: Site, params: Mapping[str, Value], values: FinSet, device, others: Mapping[str, FinSet]
) -> tuple[Value, Value]:
    """A sample site summed out by a plan: its value, the enumeration of
    ``values`` on an axis named after the site (the binding a
    ``marginalize`` block gives its latent; it stands for the site at every
    element of its plate, so ``z[group]`` reads it unchanged), and its log
    prior on the site's plate and that axis. A Categorical's prior is its
    weights normalized as a block's are; another family's is scored by
    :func:`site_log_prob` at each value."""
    value = _enumeration(site.name, values, device)
    if site.family.name == "Categorical" and site.values_in is not None:
        ((key, v),) = params.items()
        # the category axis, as the shape checker reads it: the site's set, else the last axis
        # off its plate that is no other summed site's (the K' of a K * K table read as A[z0])
        cats = [d for d in v.dims if d not in site.dims and d not in others]
        prior = rename(v, site.values_in if site.values_in in cats else cats[-1], site.name)
        prior = Value(densities.log_normalized(prior.tensor, key, prior.batch_ndim + prior.dims.index(site.name)),
                      prior.dims)
    else:
        prior = _scored(site, params, values.size, device)
    missing = tuple(d for d in site.dims if d not in prior.dims)
    if missing:  # the same prior at every element of the plate: a view, not a copy
        b = prior.batch_ndim
        t = prior.tensor.reshape(prior.batch_shape + (1,) * len(missing) + prior.tensor.shape[b:])
        sizes = dict(zip(site.dims, site.shape))
        t = t.expand(*prior.batch_shape, *(sizes[d] for d in missing), *prior.tensor.shape[b:])
        prior = Value(t, missing + prior.dims)
    return value, prior


def _scored(site: Site, params: Mapping[str, Value], k: int, device) -> Value:
    """The log prior of each of the ``k`` values of ``site``: the values
    are laid on a leading batch axis for the scoring, then moved to the
    axis named after the site."""
    batch = max((v.batch_ndim for v in params.values()), default=0)
    x = torch.arange(k, device=device).reshape((k,) + (1,) * (batch + len(site.shape)))
    lp = site_log_prob(site, params, Value(x.expand((k,) + (1,) * batch + tuple(site.shape)), site.dims, site.values_in))
    return Value(lp.tensor.movedim(0, -1), lp.dims + (site.name,))


def _indexed_weights(s: MarginalizeStep) -> tuple[str, str] | None:
    """The names ``(w, i)`` of a block whose weights are written ``w[i]``."""
    (e,) = s.prior.args.values()
    e = getattr(e, "sympy", None)
    if (isinstance(e, sympy.Function) and e.func == INDEX and len(e.args) == 2
            and all(isinstance(a, sympy.Symbol) for a in e.args)):
        return e.args[0].name, e.args[1].name
    return None


def _fusable_observe(s: MarginalizeStep, sites: Mapping[str, Site]) -> tuple[ObserveStep | None, dict[str, str]]:
    """The observation of a block that the fused kernels can score (the
    block's whole body, a Normal on one plate, read through an index map
    exactly when the block is grouped) or None, and the names ``a`` of its
    parameters written ``a[z]`` with ``z`` the block's latent, when all
    are (empty otherwise)."""
    if len(s.body) != 1 or not isinstance(s.body[0], ObserveStep):
        return None, {}
    o = s.body[0]
    site = sites.get(o.name)
    if o.family.spec.log_prob is not densities.normal or site is None or site.kind != "observed":
        return None, {}
    if len(site.dims) != 1 or (o.via is None) != (s.over is None):
        return None, {}
    direct = {}
    for key, e in o.family.args.items():
        e = getattr(e, "sympy", None)
        if not (isinstance(e, sympy.Function) and e.func == INDEX and len(e.args) == 2
                and all(isinstance(a, sympy.Symbol) for a in e.args) and e.args[1].name == s.name):
            return o, {}
        direct[key] = e.args[0].name
    return o, direct


def site_log_prob(
    site: Site, params: Mapping[str, Value], value: Value, supported: dict[tuple, torch.Tensor] | None = None
) -> Value:
    """The log density of ``value`` at ``site``, on the site's plate axes
    and any enumerated axes its parameters carry.

    A value outside the support of the family at its parameters has log
    density ``-inf`` (a ``Uniform`` value outside its bounds, a success of
    ``Bernoulli(0)``). For the discrete families whose support depends on
    their parameters (Categorical, Binomial) a value outside the support
    of every enumerated component is a :class:`DataError` naming the site
    and the first index: it is a count or an index that no parameter can
    explain, as Stan raises. With ``supported`` (a program's cache), a
    tensor found inside a support whose bounds are constant integers is
    not checked again against the same bounds. Nor is any while a graph is
    captured: the graph cannot read values, and a potential's data was
    checked by its eager first call.
    """
    if type(value) is RelaxedValue:  # sum_k y_k log pi_k (quivers.programs.relaxed)
        hard = Value(value.tensor.argmax(-1), site.dims, values_in=value.values_in)
        dist, axes, batch, _ = place(site, params, hard)
        return relaxed_log_prob(site, dist.logits, axes, batch, value)
    spec = site.family.spec
    if spec.log_prob is not None:
        # The log density written out: no torch distribution to build.
        tensors, axes, batch, x = _lay_out(site, params, value)
        if not spec.static_support and spec.discrete and not capturing():
            _check_dependent_support(site, spec.support(tensors), axes, batch, x, value.tensor, supported)
        return Value(spec.log_prob(tensors, x), axes)
    dist, axes, batch, x = place(site, params, value)
    if not spec.static_support and spec.discrete and not capturing():
        _check_dependent_support(site, dist.support, axes, batch, x, value.tensor, supported)
    return Value(dist.log_prob(x), axes)


def _check_dependent_support(
    site: Site, support, axes, batch: int, x: torch.Tensor, data: torch.Tensor,
    supported: dict[tuple, torch.Tensor] | None,
) -> None:
    key = None
    bounds = (getattr(support, "lower_bound", None), getattr(support, "upper_bound", None))
    if supported is not None and not data.requires_grad and all(type(b) is int for b in bounds):
        # The check reads only the data and the bounds. The entry holds the
        # tensor, so its id is not reused while the entry lives.
        key = (id(data), data._version, tuple(data.shape), type(support), bounds)
        if supported.get(key) is data:
            return
    _check_support(site, support, axes, batch, x)
    if key is not None:
        if len(supported) > 64:
            supported.clear()
        supported[key] = data


def _check_support(site: Site, support, axes, batch: int, x: torch.Tensor) -> None:
    inside = support.check(x.detach())
    shape = x.shape[: x.dim() - len(site.event_dims)]
    if inside.shape != shape:  # a check that varies with the parameters, or a scalar one
        inside = inside.expand(torch.broadcast_shapes(inside.shape, shape))
    enumerated = [batch + i for i, d in enumerate(axes) if d not in site.dims]
    if enumerated:
        inside = inside.any(dim=enumerated, keepdim=True)
    if not bool(inside.all()):
        bad = tuple(int(i) for i in torch.nonzero(~inside)[0])
        kind = {"observed": "observation", "latent": "latent"}.get(site.kind, "value of")
        raise DataError(
            f"{kind} `{site.name}` has a value outside the support of {site.family.name} "
            f"({support}) at index {bad}"
        )
