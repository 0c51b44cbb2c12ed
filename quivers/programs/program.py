"""Programs: stochastic morphisms ``dom -> cod`` built from steps.

A :class:`Program` checks its steps when it is built (names, dependency
graph, effects, shapes) and then offers the exact log density with every
``marginalize`` block integrated out, ancestral draws, and the posterior of
its marginalized latents.

Examples
--------
>>> import torch
>>> from quivers.categories import LOG, PROB, Arrow, FinFunction, FinSet, Morphism, Semiring
>>> from quivers.distributions import Normal, HalfNormal, Categorical
>>> from quivers.programs import sample, observe, marginalize, ret, var
>>> Item, K = FinSet("Item", 3), FinSet("K", 2)
>>> mu_k, sd_k, z = var("mu_k"), var("sd_k"), var("z")
>>> gmm = Program("gmm", Item, Item, [
...     sample("probs", K, HalfNormal(1.0)),
...     sample("mu_k", K, Normal(0.0, 5.0)),
...     sample("sd_k", K, HalfNormal(1.0)),
...     marginalize("z", K, Categorical(var("probs")), [
...         observe("y", Item, Normal(mu_k[z], sd_k[z]))]),
...     ret("y")])
>>> sorted(e.name for e in gmm.effects)
['Marginal', 'Sample', 'Score']
>>> latents = {"probs": torch.tensor([1.0, 1.0]), "mu_k": torch.tensor([-2.0, 2.0]),
...            "sd_k": torch.tensor([1.0, 1.0])}
>>> lj = gmm.log_joint(None, {"y": torch.tensor([-2.0, 2.0, 0.0])}, latents)
>>> round(float(lj), 4)
-14.2624
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import networkx as nx
import torch
from torch import nn

from quivers.categories import LOG, PROB, Arrow, FinFunction, FinSet, Morphism, Semiring
from quivers.errors import (
    did_you_mean, DataError, EffectError, GradientError, QuiversError, QuiversTypeError, ShapeError, Span,
    UnknownNameError,
)
from quivers.programs import compose as C
from quivers.programs.data import check_data, check_index_map, check_names, check_value, common_batch, data_source
from quivers.programs.expr import apply, var
from quivers.programs.kernels import program_kernel
from quivers.programs.chain import MarkovStep
from quivers.programs.effects import Effect
from quivers.programs.expr import REF, Expr, compile_expr
from quivers.programs.graph import block_order, dependency_graph
from quivers.programs.named import Value, to_layout
from quivers.programs.relaxed import Relaxed, relaxed_value
from quivers.programs.runtime import RETURN, Compiled, Run, in_step
from quivers.programs.shapes import check_shapes, index_set_sizes
from quivers.programs.sites import Site, analyze
from quivers.programs.subsample import subsample
from quivers.programs.steps import (
    FactorStep,
    InputStep,
    LetStep,
    MarginalizeStep,
    ObserveStep,
    ReturnStep,
    SampleStep,
    Step,
    _check_name,
    ret,
)

__all__ = ["Program", "identity", "lift", "rename"]

_REFERENCES: dict[tuple[torch.dtype, torch.device], Value] = {}


def _reference(dtype: torch.dtype, device: torch.device) -> Value:
    """The run's reference value (a zero of the dtype and device its
    constants follow; read, never written), made once per pair."""
    v = _REFERENCES.get((dtype, device))
    if v is None:
        with torch.inference_mode(False):
            v = _REFERENCES[(dtype, device)] = Value(torch.zeros((), dtype=dtype, device=device))
    return v


class Program(Arrow, nn.Module):
    """A probabilistic program: a stochastic morphism ``dom -> cod``.

    Parameters
    ----------
    name
        The program's name.
    dom, cod
        Its domain and codomain (finite sets).
    steps
        Its body: steps built with :func:`sample`, :func:`observe`,
        :func:`marginalize`, :func:`let`, :func:`factor`, :func:`ret` and
        :func:`index_map`.
    effects
        Declared effects; they must cover the inferred ones. Inferred when
        omitted.
    input
        The name bound to the program's input, one element of ``dom`` (an
        integer in ``[0, |dom|)`` that indexes ``dom``-axes by name), given
        as ``x`` to :meth:`log_joint`, :meth:`sample` and the others. A
        program without one ignores ``x``. With an input and a ``return``
        of an element of ``cod``, a program is a stochastic map
        ``dom -> cod`` that composes with ``>>`` and ``@`` (see
        :mod:`quivers.programs.compose`).
    span, source
        Where the program was written in QVR, so that errors show the line.
    """

    def __init__(
        self,
        name: str,
        dom: FinSet,
        cod: FinSet,
        steps: Sequence[Step],
        effects: Iterable[Effect | str] | None = None,
        *,
        input: str | None = None,
        span: Span | None = None,
        source: str | None = None,
    ) -> None:
        super().__init__()
        self.name, self.dom, self.cod = name, dom, cod
        self.term_scales: dict[str, float] = {}  # plate -> N / b, for mini-batches (subsample)
        self._subsampled: dict[tuple, Program] = {}
        self.span, self.source = span, source
        try:
            self._build(_with_input(name, dom, input, tuple(steps), span), effects)
        except QuiversError as err:
            raise err.relocated(span, source) from None

    # ------------------------------------------------------------ build

    def _build(self, steps: tuple[Step, ...], effects) -> None:
        for s in steps:
            if not isinstance(s, Step):
                raise QuiversTypeError(f"program `{self.name}` has `{s!r}` among its steps, which is not a step")
        returns = [s for s in steps if isinstance(s, ReturnStep)]
        if len(returns) > 1:
            raise QuiversTypeError(f"program `{self.name}` has {len(returns)} return steps", span=returns[1].span)
        for s in steps:
            for t in s.walk():
                if isinstance(t, ReturnStep) and t not in steps:
                    raise QuiversTypeError("`return` must be at the top level of a program", span=t.span)
        self.steps = steps
        self.graph: nx.DiGraph = dependency_graph(steps)
        analysis = analyze(steps)
        self.sites: dict[str, Site] = analysis.sites
        self.index_maps = analysis.index_maps
        self._check_effects(effects)
        self._compile(analysis)

    def step_effect(self, step: Step) -> Effect:
        """The effect of ``step`` in this program: a ``sample`` step that
        declares an index map (the seed's idiom) reads data and is Pure."""
        if isinstance(step, SampleStep) and self.sites[step.name].kind == "index":
            return Effect.Pure
        return step.effect

    def _check_effects(self, declared) -> None:
        walked = [t for s in self.steps for t in s.walk()]
        inferred = {self.step_effect(t) for t in walked} - {Effect.Pure}
        self.inferred_effects = frozenset(inferred) or frozenset({Effect.Pure})
        if declared is None:
            self.effects = self.inferred_effects
            return
        if isinstance(declared, (str, Effect)):
            declared = [declared]
        declared = Effect.parse(declared)
        missing = inferred - declared
        if missing:
            offending = [
                f"`{type(t).__name__.removesuffix('Step').lower()} {t.defines or ''}`".replace(" `", "`")
                + f" ({self.step_effect(t).name})"
                for t in walked
                if self.step_effect(t) in missing
            ]
            first = next(t for t in walked if self.step_effect(t) in missing)
            raise EffectError(
                f"program `{self.name}` declares effects [{', '.join(sorted(e.name for e in declared))}] "
                f"but has {', '.join(sorted(e.name for e in missing))}: {', '.join(offending)}",
                span=getattr(first, "span", None) or self.span,
                hint=f"add {', '.join(sorted(e.name for e in missing))} to its effects",
            )
        self.effects = declared

    def _compile(self, analysis) -> None:
        order: dict[int, list[Step]] = {0: block_order(self.steps)}
        params: dict[int, dict] = {}
        exprs: dict[int, Any] = {}
        self._constant_dims: dict[str, tuple[str, ...]] = {}
        self._constant_sizes: dict[str, int] = {}
        n_buffers = 0

        def visit(block: Sequence[Step]) -> None:
            nonlocal n_buffers
            for s in block:
                try:
                    compile_step(s)
                except QuiversError as err:
                    raise in_step(err, s) from None

        def compile_step(s: Step) -> None:
            law = _law(s)
            if law is not None:
                target = self._param_target(s)
                params[id(s)] = {}
                for key, e in law.args.items():
                    params[id(s)][key] = compile_expr(e)
                    kind = "step" if isinstance(s, (SampleStep, ObserveStep)) else s.kind
                    where = f"{kind} `{s.name}`, parameter `{key}`"
                    self._register_constants(e, target, law.spec.param(key).event_rank, where)
            if isinstance(s, MarkovStep):
                site, k = self.sites[s.name], s.support
                seq = (site.dims[:-1], site.shape[:-1])
                laws = [(s.init, "initial law", (k.name,)), (s.first, "first step", (k.name, k.name + "'"))]
                for law, what, axes in laws:
                    if law is None:
                        continue
                    target = (seq[0] + axes, seq[1] + (k.size,) * len(axes))
                    params[id(law)] = {key: compile_expr(e) for key, e in law.args.items()}
                    for key, e in law.args.items():
                        self._register_constants(e, target, 0, f"markov `{s.name}`, {what} `{key}`")
            if isinstance(s, (LetStep, FactorStep, ReturnStep)):
                exprs[id(s)] = compile_expr(s.expr)
                where = f"let `{s.name}`" if isinstance(s, LetStep) else s.kind
                self._register_constants(s.expr, None, 0, where)
            if s.children():
                order[id(s)] = block_order(s.children())
                visit(s.children())

        visit(self.steps)
        lets = check_shapes(
            self.steps, order, self.sites, self.index_maps, {k: d for k, (_, d) in self._constant_dims.items()},
            self._constant_sizes,
        )
        sizes = {**self._constant_sizes, **index_set_sizes(self.steps)}
        for name, axes in lets.items():
            if all(d in sizes for d in axes.dims):
                shape = tuple(sizes[d] for d in axes.dims)
                # A let of an element of a finite set (or a Categorical on
                # weights over a set) takes its values in that set.
                values_in = axes.values_in if axes.values_in in sizes else None
                self.sites[name] = dataclasses.replace(
                    self.sites[name], dims=axes.dims, shape=shape, values_in=values_in,
                    num_values=sizes.get(values_in) if values_in is not None else None,
                )
        self._compiled = Compiled(order, params, exprs, self.sites, self.index_maps, self.steps)
        self._validated: dict[tuple, bool] = {}

    def _param_target(self, s: Step) -> tuple[tuple[str, ...], tuple[int, ...]]:
        if isinstance(s, MarkovStep):  # a transition: rows the state(s) before, columns the state after
            site, k = self.sites[s.name], s.support
            axes = (k.name, k.name + "'", k.name + "''")[: s.order + 1]
            return site.dims + axes, site.shape + (k.size,) * len(axes)
        if isinstance(s, MarginalizeStep):
            site = self.sites[s.name]
            return site.dims + (s.support.name,), site.shape + (s.support.size,)
        site = self.sites[s.name]
        return site.dims, site.shape

    def _register_constants(self, e: Expr, target, rank: int, where: str) -> None:
        """Give each tensor constant of ``e`` its named axes: its trailing
        sizes must match the trailing axes of ``target`` (the site's axes;
        for a marginalize prior, its rows and support), and a bare matrix
        argument keeps its two matrix axes."""
        for sym, constant in e.constants().items():
            tensor = constant.tensor
            if constant.over is not None:  # const(value, over): its axes are named by `over`
                factors = constant.over
                # a repeated factor is primed, as on plates: K * K has axes K, K'
                dims = tuple(f.name + "'" * [g.name for g in factors[:i]].count(f.name) for i, f in enumerate(factors))
                for d, f in zip(dims, factors):
                    if self._constant_sizes.setdefault(d, f.size) != f.size:
                        raise ShapeError(f"{where}: two constants lie on sets named `{f.name}` of different sizes")
                buf = self._constant_dims[sym][0] if sym in self._constant_dims else f"_const{len(self._constant_dims)}"
                self.register_buffer(buf, tensor.detach().clone())
                self._constant_dims[sym] = (buf, dims)
                continue
            matrix = 2 if rank == 2 and e.sympy.is_Symbol else 0
            if tensor.dim() < matrix:
                raise ShapeError(f"{where}: the constant of shape {tuple(tensor.shape)} must be a matrix")
            nd = tensor.dim() - matrix
            dims: tuple[str, ...] = ()
            if nd:
                if target is None:
                    raise ShapeError(
                        f"{where}: the tensor constant of shape {tuple(tensor.shape)} has no named axes",
                        hint="pass it as a family argument of a site on its plate, or supply it as an observation",
                    )
                names, sizes = target
                if nd > len(names) or tuple(tensor.shape[:nd]) != tuple(sizes[len(sizes) - nd :]):
                    raise ShapeError(
                        f"{where}: the constant of shape {tuple(tensor.shape)} does not fit the axes "
                        f"{list(names)} of sizes {list(sizes)}",
                        hint="its trailing sizes must match the trailing axes",
                    )
                dims = tuple(names[len(names) - nd :])
            if matrix:
                dims = dims + ("__r", "__c")
            buf = self._constant_dims[sym][0] if sym in self._constant_dims else f"_const{len(self._constant_dims)}"
            self.register_buffer(buf, tensor.detach().clone())
            self._constant_dims[sym] = (buf, dims)

    @property
    def constants(self) -> dict[str, tuple[torch.Tensor, tuple[str, ...]]]:
        """The tensor constants of the program's expressions, by the symbol
        that stands for each in them: the buffer that holds its value (it
        moves with the module) and the names of its axes (``__r``, ``__c``
        for the two axes of a bare matrix argument)."""
        return {sym: (getattr(self, buf), dims) for sym, (buf, dims) in self._constant_dims.items()}

    # ------------------------------------------------------------ sites

    def latent_sites(self, observed_names: Iterable[str] = ()) -> list[Site]:
        """The sampled latents a guide or MCMC must provide values for, in
        topological order: every ``sample`` site that is neither an index
        map nor among ``observed_names``."""
        observed = set(observed_names)
        order = [n for n in nx.topological_sort(self.graph)]
        return [
            self.sites[n]
            for n in order
            if n in self.sites and self.sites[n].kind == "latent" and n not in observed
        ]

    def parameters_of(self, name: str) -> tuple[tuple[str, ...], Any]:
        """The latents the family parameters of the sample site ``name``
        read (directly or through ``let`` steps), in the program's order,
        and a function that evaluates the parameters from values of those
        latents: a dict of tensors laid out on the site's axes, after the
        values' leading batch axes. Guides and MCMC use it for a support
        that depends on other latents (``Uniform(0, 1 - a)``).

        Parameters that read anything else (data, an index map, a
        marginalized latent) are a :class:`QuiversTypeError` naming it.

        Examples
        --------
        >>> from quivers.distributions import Uniform
        >>> from quivers.programs import let, sample, var
        >>> p = Program("p", FinSet("I", 1), FinSet("I", 1), [
        ...     sample("a", None, Uniform(0.0, 1.0)), let("b", 1 - var("a")),
        ...     sample("c", None, Uniform(0.0, var("b")))])
        >>> reads, evaluate = p.parameters_of("c")
        >>> reads
        ('a',)
        >>> evaluate({"a": torch.tensor([0.25, 0.5])})["high"]
        tensor([0.7500, 0.5000])
        """
        site = self.sites.get(name)
        if site is None or site.kind != "latent" or not isinstance(site.step, SampleStep):
            raise QuiversTypeError(f"`{name}` is not a sampled latent of `{self.name}`")
        step = site.step
        lets = {s.name: s for s in self.steps if isinstance(s, LetStep)}
        latents: set[str] = set()
        needed: set[str] = set()
        todo = list(step.reads)
        while todo:
            n = todo.pop()
            if n in lets:
                if n not in needed:
                    needed.add(n)
                    todo.extend(lets[n].reads)
            elif n in self.sites and self.sites[n].kind == "latent":
                latents.add(n)
            else:
                kind = self.sites[n].kind if n in self.sites else "unknown"
                raise QuiversTypeError(
                    f"the parameters of `{name}` read `{n}` ({kind}); a support that varies may depend only "
                    "on sampled latents and constants",
                    span=step.span,
                )
        order = [n for n in nx.topological_sort(self.graph) if n in latents or n in needed]
        steps = [lets[n] for n in order if n in needed]
        compiled = self._compiled

        def evaluate(values: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            ref = next(iter(values.values()), None) if values else None
            dtype = ref.dtype if ref is not None else torch.get_default_dtype()
            device = ref.device if ref is not None else None
            env: dict[str, Value] = {n: Value(values[n], self.sites[n].dims) for n in latents}
            env[REF] = _reference(dtype, device or torch.device("cpu"))
            for sym, (buf, dims) in self._constant_dims.items():
                t = getattr(self, buf)
                env[sym] = Value(t.to(dtype) if torch.is_floating_point(t) else t, dims)
            for s in steps:
                env[s.name] = compiled.exprs[id(s)](env)
            params = {k: f(env) for k, f in compiled.params[id(step)].items()}
            batch = max(v.batch_ndim for v in params.values())
            return {k: to_layout(v, batch, site.dims) for k, v in params.items()}

        return tuple(n for n in order if n in latents), evaluate

    @property
    def observed_sites(self) -> list[Site]:
        return [s for s in self.sites.values() if s.kind == "observed"]

    # ------------------------------------------------------------- data

    def _env(self, observations, latents, mode: str, check_latents: bool = True, x: Any = None):
        """Validate the data and build the environment of a run; returns
        ``(env, maps, batch)``: the values, the index maps as
        :class:`FinFunction` s, and the broadcast batch shape of the given
        values. A name given both as an observation and as a latent is
        conditioned on (the observation wins, as with Pyro's ``condition``)."""
        observations = {} if observations is None else observations
        latents = {} if latents is None else latents
        check_names(observations, self.sites, "observations")
        check_names(latents, self.sites, "latents")
        env: dict[str, Value] = {}
        maps: dict[str, FinFunction] = {}
        for name, site in self.sites.items():
            if site.kind == "index":
                dom, cod = self.index_maps[name]
                self._require(name, f"index map `{name}` ({dom.name} -> {site.values_in})", observations, latents)
                env[name], maps[name] = self._cached(
                    name, observations[name], lambda v: self._read_by(name, lambda: check_index_map(site, v, dom, cod))
                )
            elif site.kind == "data":
                on = f" (on {' * '.join(site.dims)})" if site.dims else " (a number)"
                self._require(name, f"data `{name}`{on}", observations, latents)
                env[name] = self._cached(name, observations[name], lambda v: self._read_by(name, lambda: check_data(site, v)))
            elif site.kind == "input":
                if x is None:
                    raise DataError(
                        f"program `{self.name}` takes an input `{name}` in `{self.dom.name}`, but x is None",
                        hint=f"pass an element of `{self.dom.name}` (an integer in [0, {self.dom.size})) as x",
                    )
                env[name] = check_value(site, x, "input")
            elif name in observations and site.kind in ("observed", "latent", "marginal"):
                env[name] = self._cached(name, observations[name], lambda v: check_value(site, v, "observation"))
            elif name in latents and isinstance(latents[name], Relaxed):
                env[name] = relaxed_value(site, latents[name], check_latents)
            elif name in latents and site.kind in ("latent", "marginal"):
                if check_latents or site.kind == "marginal":
                    env[name] = check_value(site, latents[name], "latent")
                else:  # values from an inference engine's own transforms
                    env[name] = Value(latents[name], site.dims, values_in=site.values_in)
            elif site.kind == "observed" and mode == "density":
                raise DataError(f"observation `{name}` is missing", hint=f"give `{name}` in {data_source()}")
            elif site.kind == "latent" and mode == "density":
                raise DataError(f"latent `{name}` has no value", hint="pass it in latents or in observations")
        batch = common_batch(env, self.sites)
        ref = next((v.tensor for v in env.values() if torch.is_floating_point(v.tensor)), None)
        if ref is None:
            buf = next(iter(self.buffers()), None)
            ref = torch.zeros((), device=buf.device if buf is not None else None)
        for name, v in env.items():
            if v.tensor.device != ref.device:
                env[name] = dataclasses.replace(v, tensor=v.tensor.to(ref.device))
        for name, f in maps.items():
            if f.mapping.device != ref.device:
                maps[name] = FinFunction(f.dom, f.cod, f.mapping.to(ref.device))
        env[REF] = _reference(ref.dtype, ref.device)
        for sym, (buf, dims) in self._constant_dims.items():
            t = getattr(self, buf)
            if torch.is_floating_point(t) and t.dtype != ref.dtype:
                t = t.to(ref.dtype)
            env[sym] = Value(t.to(ref.device), dims)
        return env, maps, batch

    def reader(self, name: str) -> Step | None:
        """The first step that reads ``name`` (in source order), or None."""
        return next((t for s in self.steps for t in s.walk() if name in t.reads), None)

    def _at_reader(self, err: QuiversError, name: str) -> QuiversError:
        """``err`` located at the first step that reads the data ``name``
        (with the source line, for a program written in QVR), saying so."""
        t = self.reader(name)
        if err.span is not None or t is None:
            return err
        kind = type(t).__name__.removesuffix("Step").lower()
        label = f"{kind} {t.defines}" if t.defines else kind
        out = type(err).__new__(type(err))
        out.__dict__.update(err.__dict__)
        span = getattr(t, "span", None)
        message = err.message + f" (`{name}` is read by `{label}`)"
        QuiversError.__init__(out, message, span=span, source=self.source if span is not None else None, hint=err.hint)
        return out

    def _require(self, name: str, what: str, observations: Mapping, latents: Mapping) -> None:
        """Data (an index map, real numbers) must be among the observations:
        a missing name is an error naming it and the step that reads it,
        never a silent latent."""
        if name in latents:
            raise self._at_reader(DataError(
                f"{what} is given in latents; data is no random variable",
                hint=f"give `{name}` in {data_source()}",
            ), name)
        if name in observations:
            return
        close = did_you_mean(name, [n for n, s in self.sites.items() if s.kind not in ("data", "index")])
        err = DataError(
            f"{what} is missing from {data_source()}" + (f" (did you mean the site `{close}`?)" if close else ""),
            hint=f"data is given, never sampled: give `{name}` in {data_source()}",
        )
        raise self._at_reader(err, name)

    def _read_by(self, name: str, check):
        """Run ``check``; an error it raises is located at the step that reads ``name``."""
        try:
            return check()
        except QuiversError as err:
            raise self._at_reader(err, name) from None

    def _cached(self, name: str, value: Any, check) -> Any:
        if not isinstance(value, torch.Tensor):
            return check(value)
        key = (name, id(value), value._version, value.data_ptr(), tuple(value.shape), value.dtype)
        hit = self._validated.get(key)
        if hit is not None:
            return hit
        out = check(value)
        if len(self._validated) > 256:
            self._validated.clear()
        self._validated[key] = out
        return out

    def _run(
        self,
        observations,
        latents,
        mode: str = "density",
        check_latents: bool = True,
        sample_shape: torch.Size = torch.Size(),
        x: Any = None,
        **kw,
    ) -> Run:
        env, maps, batch = self._env(observations, latents, mode, check_latents, x)
        try:
            run = Run(
                self._compiled, env, mode, batch_shape=torch.Size(sample_shape) + batch, maps=maps,
                scales=self.term_scales, **kw,
            )
            if not check_latents:
                run.diagnose = False
            return run.execute()
        except QuiversError as err:
            raise err.relocated(None, self.source) from None

    # -------------------------------------------------------------- API

    def subsample(self, sizes: Mapping[str, int]) -> Program:
        """This program on mini-batches: each plate in ``sizes`` cut to that
        many rows, its terms scaled by ``N / b`` (see
        :func:`quivers.programs.subsample.subsample`). Cached per sizes."""
        key = tuple(sorted(sizes.items()))
        if key not in self._subsampled:
            self._subsampled[key] = subsample(self, sizes)
        return self._subsampled[key]

    def log_joint(
        self,
        x: Any = None,
        observations: Mapping[str, Any] | None = None,
        latents: Mapping[str, Any] | None = None,
        *,
        check_latents: bool = True,
    ) -> torch.Tensor:
        """The exact log joint density, every marginalized latent summed out.

        Returns a tensor of the batch shape of the latents and observations
        (leading axes beyond each site's own shape). Inference engines that
        produce latents through their own bijections pass
        ``check_latents=False``: a non-finite density then signals a
        divergence instead of raising.
        """
        return self._run(observations, latents, check_latents=check_latents, x=x).log_density

    def nonfinite_gradient(self, x: Any = None, observations=None, latents=None) -> tuple[str, Step] | None:
        """Where the gradient of the log density in the ``latents`` is not
        finite: the first latent and the step whose own term has it (the
        steps of a block's body are tried before the block), or None when
        every term's gradient is finite. The entries of a term that are
        ``-inf`` take part with weight 0, as a logsumexp gives them, so a
        branch of probability 0 whose gradient is ``0 * inf`` is found.

        Examples
        --------
        >>> from quivers.distributions import HalfNormal, Normal
        >>> from quivers.programs import call, observe, sample, var
        >>> I = FinSet("I", 2)
        >>> p = Program("p", I, I, [sample("s", None, HalfNormal(1.0)),
        ...                         observe("y", I, Normal(call("sqrt", var("s")), 1.0))])
        >>> name, step = p.nonfinite_gradient(None, {"y": torch.zeros(2)}, {"s": torch.tensor(0.0)})
        >>> name, step.name
        ('s', 'y')
        """
        leaves = {
            k: torch.as_tensor(v).detach().clone().requires_grad_()
            for k, v in (latents or {}).items()
            if isinstance(v, torch.Tensor) and torch.is_floating_point(v)
        }
        names = list(leaves)
        with torch.enable_grad():
            run = self._run(observations, {**(latents or {}), **leaves}, check_latents=False, x=x, trace=[])
            for step, terms in run.trace:
                total = sum(torch.where(torch.isfinite(v.tensor), v.tensor, 0.0).sum() for v in terms)
                if not total.requires_grad:
                    continue
                grads = torch.autograd.grad(total, [leaves[n] for n in names], allow_unused=True, retain_graph=True)
                for name, g in zip(names, grads):
                    if g is not None and not bool(torch.isfinite(g).all()):
                        return name, step
        return None

    def gradient_error(self, x: Any = None, observations=None, latents=None, where: str = "") -> QuiversError | None:
        """A :class:`GradientError` at the step that :meth:`nonfinite_gradient`
        finds (``where`` says whose point it is), or None."""
        found = self.nonfinite_gradient(x, observations, latents)
        if found is None:
            return None
        name, step = found
        kind = type(step).__name__.removesuffix("Step").lower()
        what = f"`{kind} {step.name}`" if getattr(step, "name", None) else f"`{kind}`"
        return GradientError(
            f"the gradient of the log density in `{name}` is not finite{where}: it comes from the term of {what}",
            hint="the density is finite there but its derivative is not: look for a sqrt, log, power or "
            "division at 0 among that step's parameters",
        ).located(getattr(step, "span", None), self.source)

    def pointwise_log_likelihood(self, x: Any = None, observations=None, latents=None) -> dict[str, torch.Tensor]:
        """Log likelihood of each observed site, per element of its plate
        (for ArviZ's loo/waic): sites outside every marginalize block, and
        the single observation of a top-level per-row block, whose pointwise
        term is its row's mixture density ``log sum_k pi_k p(y_n | k)``."""
        run = self._run(observations, latents, pointwise=True, x=x)
        return {name: v.tensor for name, v in run.site_terms.items()}

    def posterior_latents(self, x: Any = None, observations=None, latents=None) -> dict[str, torch.Tensor]:
        """Exact posterior of each marginalized latent given the rest.

        For a latent ``z : K`` the result has shape ``batch + rows + (|K|,)``
        (rows: the per-row plate or the ``over`` plate) and sums to one over
        its last axis. A nested latent's posterior is conditional on its
        enclosing latents, whose values are extra axes before its own.
        """
        run = self._run(observations, latents, record=True, x=x)
        out = {}
        for name, v in run.responsibilities.items():
            order = tuple(d for d in v.dims if d != name) + (name,)
            out[name] = to_layout(v, v.batch_ndim, order)
        return out

    def map_latents(self, x: Any = None, observations=None, latents=None) -> dict[str, torch.Tensor]:
        """The most probable value of each marginalized latent given the rest;
        for a Markov latent its most probable path (Viterbi), which need not
        be the argmax of each step's marginal."""
        out = {k: v.argmax(-1) for k, v in self.posterior_latents(x, observations, latents).items()}
        if any(isinstance(self.sites[k].step, MarkovStep) for k in out):
            run = self._run(observations, latents, record_paths=True, x=x)
            out.update({k: v.tensor for k, v in run.paths.items()})
        return out

    @torch.no_grad()
    def sample(
        self,
        x: Any = None,
        sample_shape: Sequence[int] | torch.Size = (),
        latents: Mapping[str, Any] | None = None,
        observations: Mapping[str, Any] | None = None,
    ) -> dict[str, torch.Tensor]:
        """Ancestral draws of every site not given, marginalized latents
        included; the program's value is returned under ``"_return"``.

        Drawn sites get the batch shape ``sample_shape + batch``, where
        ``batch`` is the broadcast batch shape of the given latents and
        observations. Given values are kept. A marginalized latent whose
        body has given observations is drawn from its exact posterior given
        them (one value per row, or per group); otherwise from its prior.
        Index maps must be given in ``observations``.
        """
        run = self._run(observations, latents, "sample", sample_shape=torch.Size(sample_shape), x=x)
        return {
            k: v.tensor
            for k, v in run.env.items()
            if k in self.sites and self.sites[k].kind not in ("index", "data")
        } | ({"_return": run.env[RETURN].tensor} if RETURN in run.env else {})

    def forward(self, x: Any = None, observations=None, latents=None) -> torch.Tensor:
        """The program's log joint density (as :meth:`log_joint`)."""
        return self.log_joint(x, observations, latents)

    def extra_repr(self) -> str:
        effects = ", ".join(sorted(e.name for e in self.effects))
        head = self.name if self.input is None else f"{self.name}({self.input})"
        return f"{head} : {self.dom.name} -> {self.cod.name} [effects=[{effects}]]"

    @property
    def input(self) -> str | None:
        """The name bound to the program's input, or None."""
        first = self.steps[0] if self.steps else None
        return first.name if isinstance(first, InputStep) else None

    @property
    def returns(self) -> Expr | None:
        """The expression the program returns, or None."""
        return next((s.expr for s in self.steps if isinstance(s, ReturnStep)), None)

    # ------------------------------------------------------- composition
    # The operators >>, @ and their reflections are Arrow's, defined once.

    def then(self, other: Arrow, *, name: str | None = None, effects=None) -> Program:
        """``self >> other``: Kleisli composition (see :func:`quivers.programs.compose.then`)."""
        return C.then(self, C._check_program(other, "right", "compose"), name=name, effects=effects)

    def par(self, other: Arrow, *, name: str | None = None, effects=None) -> Program:
        """``self @ other``: side by side (see :func:`quivers.programs.compose.tensor`)."""
        return C.tensor(self, C._check_program(other, "right", "tensor"), name=name, effects=effects)

    def _not_an_arrow(self, verb: str, other: object, role: str) -> QuiversError:
        return QuiversTypeError(f"cannot {verb} a program with {type(other).__name__} `{other!r}` ({role} operand)")

    @classmethod
    def id(cls, obj: FinSet, *, name: str | None = None) -> Program:
        """The ``Pure`` program ``obj -> obj`` that returns its input."""
        if not isinstance(obj, FinSet):
            raise QuiversTypeError(f"identity takes a FinSet, got `{obj!r}`")
        x = C._input_name()
        return cls(name or f"identity({obj.name})", obj, obj, [ret(var(x))], input=x)

    def as_morphism(
        self, semiring: Semiring = LOG, dtype: torch.dtype | None = None, device: torch.device | None = None
    ) -> Morphism:
        """The functor from programs to exact kernels: this program's kernel
        ``dom -> cod`` in ``semiring`` (:func:`~quivers.programs.kernels.program_kernel`),
        so that ``(p >> q).as_morphism(S) == p.as_morphism(S) >> q.as_morphism(S)``.

        Examples
        --------
        >>> from quivers.categories import LOG, PROB, Arrow, FinFunction, FinSet, Morphism, Semiring
        >>> A = FinSet("A", 2)
        >>> flip = lift(FinFunction(A, A, [1, 0]))
        >>> (flip >> lift(FinFunction(A, A, [1, 0]))).as_morphism(PROB).tensor
        tensor([[1., 0.],
                [0., 1.]])
        """
        return program_kernel(self, semiring).as_morphism(semiring, dtype, device)


def _law(s: Step):
    """The family a step draws, scores or sums out with (a chain's
    transition), or None."""
    if isinstance(s, (SampleStep, ObserveStep)):
        return s.family
    if isinstance(s, (MarginalizeStep, MarkovStep)):
        return s.prior
    return None


def _with_input(name: str, dom: FinSet, input: str | None, steps: tuple, span: Span | None) -> tuple:
    """The steps with the input binding first: an :class:`InputStep` for
    ``input``, or the one already among ``steps`` (a rebuilt program)."""
    given = [s for s in steps if isinstance(s, InputStep)]
    if input is not None:
        if given:
            raise QuiversTypeError(f"program `{name}` is given `input={input}` and an input step `{given[0].name}`")
        _check_name(input, f"the input of program `{name}`")
        return (InputStep(input, dom, span=span),) + steps
    if len(given) > 1 or (given and steps[0] is not given[0]):
        raise QuiversTypeError(f"program `{name}` has its input step `{given[0].name}` elsewhere than first, or twice")
    if given and given[0].dom != dom:
        raise QuiversTypeError(
            f"the input `{given[0].name}` of program `{name}` is in `{given[0].dom.name}`, not in its domain `{dom.name}`"
        )
    return steps


def identity(obj: FinSet, *, name: str | None = None) -> Program:
    """The ``Pure`` program ``obj -> obj`` that returns its input.

    Examples
    --------
    >>> from quivers.categories import FinSet
    >>> i = identity(FinSet("A", 3))
    >>> i.name, sorted(e.name for e in i.effects), int(i.sample(torch.tensor(2))["_return"])
    ('identity(A)', ['Pure'], 2)
    """
    return Program.id(obj, name=name)


def lift(f: FinFunction, *, name: str | None = None) -> Program:
    """The ``Pure`` program ``f.dom -> f.cod`` that returns ``f`` of its
    input: a deterministic map as a program.

    Examples
    --------
    >>> from quivers.categories import FinSet, FinFunction
    >>> g = lift(FinFunction(FinSet("A", 3), FinSet("B", 2), [1, 1, 0]))
    >>> g.name, int(g.sample(torch.tensor(2))["_return"])
    ('lift(A -> B)', 0)
    """
    if not isinstance(f, FinFunction):
        raise QuiversTypeError(f"lift takes a FinFunction, got `{f!r}`")
    x = C._input_name()
    return Program(name or f"lift({f.dom.name} -> {f.cod.name})", f.dom, f.cod, [ret(apply(f, var(x)))], input=x)


def rename(program: Program, names: Mapping[str, str] | str, *, name: str | None = None) -> Program:
    """``program`` with its sites (and input) renamed: ``names`` maps old
    names to new ones, or is a prefix put before every name. Use it to
    compose a program with itself, ``p >> rename(p, "second_")``.

    Examples
    --------
    >>> from quivers.categories import FinSet
    >>> from quivers.distributions import Bernoulli
    >>> from quivers.programs import ret, sample
    >>> A = FinSet("A", 2)
    >>> p = Program("p", A, A, [sample("u", None, Bernoulli(0.5)), ret("u")], input="a")
    >>> q = rename(p, "q_")
    >>> q.input, sorted(q.sites), (p >> q).name
    ('q_a', ['q_a', 'q_u'], 'p >> p')
    """
    C._check_program(program, "first", "rename")
    defined = C._defined(program)
    mapping = {n: names + n for n in defined} if isinstance(names, str) else dict(names)
    unknown = sorted(set(mapping) - defined)
    if unknown:
        raise UnknownNameError(
            f"cannot rename `{unknown[0]}`: it is no site of `{program.name}`", name=unknown[0], candidates=defined
        )
    out = Program(
        name or program.name, program.dom, program.cod, [s.rename(mapping) for s in program.steps], program.effects,
        span=program.span, source=program.source,
    )
    if hasattr(program, "_composite_op"):
        out._composite_op = program._composite_op
    return out
