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

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import networkx as nx
import torch
from torch import nn

from quivers.categories import LOG, Arrow, FinSet, Morphism, Semiring
from quivers.errors import EffectError, GradientError, QuiversError, QuiversTypeError, Span
from quivers.programs import compose as C
from quivers.programs.binding import Bindings, reference
from quivers.programs.build import compile_steps
from quivers.programs.chain import MarkovStep
from quivers.programs.effects import Effect
from quivers.programs.expr import REF, Expr, var
from quivers.programs.graph import dependency_graph
from quivers.programs.kernels import program_kernel
from quivers.programs.named import Value, to_layout
from quivers.programs.plan import LogJointPlan
from quivers.programs.runtime import RETURN, Run
from quivers.programs.sites import Site, analyze
from quivers.programs.subsample import subsample
from quivers.programs.steps import InputStep, LetStep, ReturnStep, SampleStep, Step, _check_name, ret

__all__ = ["Program"]


class Program(Bindings, Arrow, nn.Module):
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
        self.likelihood_scale: float = 1.0  # all but the priors, on a data-parallel shard
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
                f"`{t.kind} {t.defines or ''}`".replace(" `", "`")
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
        built = compile_steps(self.steps, analysis.sites, analysis.index_maps)
        self.sites = built.sites
        self._constant_dims = built.constant_dims
        self._constant_sizes = built.constant_sizes
        for buf, tensor in built.buffers.items():
            self.register_buffer(buf, tensor)
        self._compiled = built.compiled
        self._validated: dict[tuple, bool] = {}
        self._plan: LogJointPlan | None = None
        self._generation = getattr(self, "_generation", 0)

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
            env[REF] = reference(dtype, device or torch.device("cpu"))
            for sym, (buf, dims) in self._constant_dims.items():
                t = getattr(self, buf)
                env[sym] = Value(t.to(dtype) if torch.is_floating_point(t) else t, dims)
            for s in steps:
                env[s.name] = compiled.exprs[id(s)](env)
            params = {k: f(env) for k, f in compiled.params[id(step)].items()}
            batch = max(v.batch_ndim for v in params.values())
            return {k: to_layout(v, batch, site.dims) for k, v in params.items()}

        return tuple(n for n in order if n in latents), evaluate

    def _run_sites(self) -> dict[str, Site]:
        """The sites a run binds and returns: :attr:`sites`, but for a
        program whose public sites are not its steps' (a planned program
        names the sites of a chain its block sums)."""
        return self.sites

    @property
    def observed_sites(self) -> list[Site]:
        return [s for s in self.sites.values() if s.kind == "observed"]

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
        return self._execute(env, maps, torch.Size(sample_shape) + batch, mode, check_latents, **kw)

    def _execute(self, env, maps, batch_shape, mode: str = "density", check_latents: bool = True, **kw) -> Run:
        """Run the steps on an environment :meth:`_env` made."""
        try:
            run = Run(
                self._compiled, env, mode, batch_shape=batch_shape, maps=maps,
                scales=self.term_scales, likelihood_scale=self.likelihood_scale, **kw,
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

    def compile_log_joint(self, observations: Mapping[str, Any] | None = None, x: Any = None) -> LogJointPlan:
        """The log joint on the data ``observations`` as a function of the
        latents, planned once (:mod:`quivers.programs.plan`): the data are
        validated and bound at the first call, and later calls only bind
        the latents and run the steps. ``plan(latents)`` equals
        ``log_joint(x, observations, latents, check_latents=False)``.

        Examples
        --------
        >>> from quivers.distributions import Normal
        >>> from quivers.programs import observe, sample, var
        >>> I = FinSet("I", 2)
        >>> p = Program("p", I, I, [sample("mu", None, Normal(0.0, 1.0)),
        ...                         observe("y", I, Normal(var("mu"), 1.0))])
        >>> obs, mu = {"y": torch.tensor([0.0, 1.0])}, {"mu": torch.tensor(0.5)}
        >>> plan = p.compile_log_joint(obs)
        >>> torch.equal(plan(mu), p.log_joint(None, obs, mu))
        True
        """
        return LogJointPlan(self, observations, x)

    def planned_log_joint(self, x: Any = None, observations: Mapping[str, Any] | None = None) -> LogJointPlan:
        """The plan of :meth:`compile_log_joint` for this data, kept
        between calls: a loop that passes the same data tensors every step
        plans once (data written in place since, or other tensors, are
        planned afresh)."""
        plan = self._plan
        if plan is None or not plan.matches(x, observations):
            plan = self._plan = LogJointPlan(self, observations, x)
        return plan

    # ------------------------------------------------------------ copies

    # What _compile derives from the steps: closures (which pickle cannot
    # write) and tables keyed by ``id(step)`` (which a copy's steps do not
    # share). A copy drops them and derives them again for its own steps.
    _derived = ("_compiled", "_plan", "_validated", "_subsampled")

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        for name in self._derived:
            state.pop(name, None)
        return state

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        buffers = dict(self._buffers)
        self._subsampled = {}
        self._compile(analyze(self.steps))
        self._buffers.update(buffers)  # the copied values, on their device and dtype

    def _apply(self, fn, *args, **kw):
        # a move or a cast makes new buffers: plans made before bind afresh
        self._generation = getattr(self, "_generation", 0) + 1
        return super()._apply(fn, *args, **kw)

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
        what = f"`{step.kind} {step.name}`" if getattr(step, "name", None) else f"`{step.kind}`"
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
        # this class's marginals: a subclass's may name its latents otherwise (a planned program's chains)
        out = {k: v.argmax(-1) for k, v in Program.posterior_latents(self, x, observations, latents).items()}
        if any(isinstance(self._run_sites()[k].step, MarkovStep) for k in out):
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
        sites = self._run_sites()
        return {
            k: v.tensor
            for k, v in run.env.items()
            if k in sites and sites[k].kind not in ("index", "data")
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
        >>> from quivers.programs import lift
        >>> A = FinSet("A", 2)
        >>> flip = lift(FinFunction(A, A, [1, 0]))
        >>> (flip >> lift(FinFunction(A, A, [1, 0]))).as_morphism(PROB).tensor
        tensor([[1., 0.],
                [0., 1.]])
        """
        return program_kernel(self, semiring).as_morphism(semiring, dtype, device)


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
