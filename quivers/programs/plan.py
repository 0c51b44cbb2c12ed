"""A program's log joint planned once for one data set.

An inference engine evaluates a program's log joint at new latents many
times on the same data: an SVI step per particle draw, a leapfrog step of
NUTS. :meth:`Program.compile_log_joint(observations)
<quivers.programs.Program.compile_log_joint>` returns a
:class:`LogJointPlan` that does the work that depends only on the data
once, at its first call: the data and index maps validated, the constants
cast to the dtype and device of the run, every name bound. Each later call
binds the latents to their sites' axes and replays the steps as the first
call ran them (:class:`_Replay`: the torch call each step ends in where
what leads to it is fixed by the binding, else the interpreter's rule
for the step); nothing is checked but that the latents have the names,
trailing shapes, dtype and device the plan was made for.

Laws
----
- ``plan(latents)`` equals ``program.log_joint(x, observations, latents,
  check_latents=False)`` bit for bit, and so does its gradient: the plan
  makes the same torch calls on the same environment.
- A plan never answers for other data: data written in place since, a
  program moved (``.to``, ``.double``), or latents of another trailing
  shape, dtype or device make it bind afresh (validating again); latents
  with other names get the errors of the unplanned path.
- Like ``check_latents=False``, latents are taken as an inference engine's
  own transforms produce them: a value outside its support gives a
  non-finite density rather than an error.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any

import torch

from quivers.programs.data import check_value
from quivers.programs.expr import REF
from quivers.errors import QuiversError
from quivers.programs.named import Value
from quivers.programs import fused
from quivers.programs.runtime import Run, _lay_out
from quivers.programs.steps import MarginalizeStep, ObserveStep, SampleStep, Step

__all__ = ["LogJointPlan", "data_key"]


def data_key(x: Any, observations: Mapping[str, Any] | None) -> tuple:
    """What identifies a data set for a plan: each value's identity and,
    for a tensor, its version (bumped by every write in place)."""
    obs = () if observations is None else tuple(
        (k, id(v), v._version) if isinstance(v, torch.Tensor) else (k, id(v)) for k, v in observations.items()
    )
    return (id(x), x._version if isinstance(x, torch.Tensor) else None) + obs


class LogJointPlan:
    """The log joint of ``program`` on the data ``observations`` (and the
    input ``x``), as a function of the latents: see the module's laws.

    Parameters
    ----------
    program
        The program.
    observations
        The data (observations, data and index maps) every call conditions
        on; the plan holds these tensors.
    x
        The program's input, if it takes one.

    Examples
    --------
    >>> import torch
    >>> from quivers.categories import FinSet
    >>> from quivers.distributions import Normal
    >>> from quivers.programs import Program, observe, sample, var
    >>> I = FinSet("I", 2)
    >>> p = Program("p", I, I, [sample("mu", None, Normal(0.0, 1.0)),
    ...                         observe("y", I, Normal(var("mu"), 1.0))])
    >>> plan = LogJointPlan(p, {"y": torch.zeros(2)})
    >>> plan.latent_names
    ('mu',)
    >>> plan({"mu": torch.zeros(4)}).shape  # a batch of four
    torch.Size([4])
    """

    def __init__(self, program: Any, observations: Mapping[str, Any] | None = None, x: Any = None) -> None:
        self.program = program
        self.x = x
        self.observations = dict(observations or {})
        self.key = data_key(x, observations)
        names = [n for n, s in program.sites.items()
                 if s.kind in ("latent", "marginal") and n not in self.observations and n not in program.summed]
        self.latent_names: tuple[str, ...] = tuple(n for n in names if program.sites[n].kind == "latent")
        self._bound: tuple | None = None  # what the first call bound: see _bind

    def matches(self, x: Any, observations: Mapping[str, Any] | None) -> bool:
        """Whether this plan is for the data ``x`` and ``observations``."""
        return data_key(x, observations) == self.key

    def _bind(self, latents: Mapping[str, Any]) -> torch.Tensor:
        """The unplanned run at ``latents``, keeping what the later calls
        reuse: the environment without the latents, the index maps, the
        program's generation and the latents' trailing shapes, dtypes and
        devices."""
        program = self.program
        self._bound = None
        for name, t in latents.items():  # the shapes the unchecked path would meet as a bare torch error
            site = program.sites.get(name)
            if type(t) in (torch.Tensor, torch.nn.Parameter) and site is not None and site.kind == "latent":
                n = t.dim() - len(site.shape)
                if n < 0 or tuple(t.shape[n:]) != tuple(site.shape):
                    check_value(site, t, "latent")  # raises the ShapeError naming the site
        env, maps, batch = program._env(self.observations, latents, "density", False, self.x)
        base = {k: v for k, v in env.items() if k not in latents}  # before the run adds its own names
        run = program._execute(env, maps, batch, check_latents=False)
        out = run.log_density
        if set(latents) != set(self.latent_names) or not all(type(latents[n]) is torch.Tensor or
                                                              type(latents[n]) is torch.nn.Parameter
                                                              for n in self.latent_names):
            return out  # relaxed or discrete draws, extra names: always the unplanned path
        sites = program.sites
        specs = tuple(
            (n, sites[n].dims, sites[n].values_in, tuple(sites[n].shape), latents[n].dtype, latents[n].device)
            for n in self.latent_names
        )
        shapes = {latents[n].shape[: latents[n].dim() - len(s[3])] for n, s in zip(self.latent_names, specs)}
        device = env[REF].tensor.device
        if len(shapes) > 1 or any(s[5] != device for s in specs):
            return out  # latents moved to the run's device, or batches broadcast: the unplanned path
        data = tuple(v for v in self.observations.values() if isinstance(v, torch.Tensor))
        versions = tuple(t._version for t in data)
        latent_batch = shapes.pop() if shapes else torch.Size()  # no latent (a grid posterior): no batch of them
        replay = _Replay(run, self.observations.keys(), self.latent_names) if _Replay.can_replay(run) else None
        self._bound = (program._generation, base, maps, specs, data, versions, latent_batch, batch, replay)
        return out

    def __call__(self, latents: Mapping[str, Any]) -> torch.Tensor:
        """The log joint at ``latents`` (a batch of them, on leading axes)."""
        bound = self._bound
        if bound is None or len(latents) != len(bound[3]) or bound[0] != self.program._generation:
            return self._bind(latents)
        generation, base, maps, specs, data, versions, latent_batch, batch, replay = bound
        values = {}
        for name, dims, values_in, shape, dtype, device in specs:
            t = latents.get(name)
            if t is None or t.dtype != dtype or t.device != device:
                return self._bind(latents)
            n = t.dim() - len(shape)
            if n < 0 or t.shape[n:] != shape:
                return self._bind(latents)
            if t.shape[:n] != latent_batch:  # another batch: bound afresh
                return self._bind(latents)
            values[name] = Value(t, dims, values_in=values_in)
        for t, v in zip(data, versions):
            if t._version != v:  # written in place: validate again
                return self._bind(latents)
        if replay is not None:
            try:
                return replay(base | values)
            except QuiversError:
                pass  # the interpreter raises it again, placed at its step and line
        return self.program._execute(base | values, maps, batch, check_latents=False).log_density


class _Replay:
    """A bound plan's top-level steps run straight through, as recorded
    from the binding run.

    Each step is replayed by its interpreter rule (:meth:`Run.rule
    <quivers.programs.steps.StepVisitor.rule>`, looked up once) on a
    fresh :class:`Run` of the same settings, the terms totalled by
    :meth:`Run.total` as :meth:`Run.execute` does; two kinds of step are
    replayed by the torch call their rule ends in, recorded once, since
    what leads to it depends only on what the binding fixes (the names,
    axes, batch shapes, dtypes and device of the latents, and the data):

    - a sample or an observe of a family whose density is written out,
      whose parameters read only data and constants, and whose value the
      layout leaves as it is: ``family.log_prob(parameters, value)``, the
      parameters laid out once;
    - a block that a fused kernel sums out: the kernel, called on the
      latents' tensors where the recorded call read them and on the same
      tensors as recorded elsewhere (checked by a second recording on
      copies of the latents).

    What is skipped is the dispatch on each step's kind, the evaluation
    and layout of parameters that cannot change, and the checks that
    lead to the same call. Runs that total their terms otherwise (a
    planned program's contraction) or record more than the density are
    not replayed; neither are steps of a sharded likelihood (whose prior
    terms are told apart by the rule)."""

    __slots__ = ("steps", "recorded", "compiled", "maps", "batch", "scales", "likelihood_scale")

    @staticmethod
    def can_replay(run: Run) -> bool:
        """Whether the bound ``run`` is a plain density run."""
        return (type(run) is Run and run.mode == "density" and run.contract is None and not run.enumerated
                and not (run.record or run.pointwise or run.record_paths or run._partial) and run.trace is None)

    def __init__(self, run: Run, data: Collection[str], latent_names: tuple[str, ...]) -> None:
        self.compiled, self.maps, self.batch = run.compiled, run.maps, run.batch_shape
        self.scales, self.likelihood_scale = run.scales, run.likelihood_scale
        recorded = [(s, self._record(run, s, data, latent_names)) for s in run.compiled.order[0]]
        self.steps = tuple(step for _, step in recorded)
        # the names of the steps replayed by their recorded torch call
        self.recorded = tuple(s.name for s, step in recorded if not isinstance(step, _Rule))

    def __call__(self, env: dict[str, Value]) -> torch.Tensor:
        run = Run(self.compiled, env, batch_shape=self.batch, maps=self.maps, scales=self.scales,
                  likelihood_scale=self.likelihood_scale, diagnose=False)
        terms: list = []
        for step in self.steps:
            step(run, terms)
        return run.total(terms)

    def _record(self, run: Run, s: Step, data: Collection[str], latents: tuple[str, ...]) -> Callable:
        """How to replay the step ``s`` of the binding ``run``, whose
        ``data`` the plan watches for writes in place."""
        rule = Run.rule(s)
        straight = None
        if run.likelihood_scale == 1.0 and isinstance(s, (SampleStep, ObserveStep)):
            straight = _scored(run, s, data)
        elif run.likelihood_scale == 1.0 and isinstance(s, MarginalizeStep) and s.name not in run.env:
            straight = _kernel(run, s, latents, rule)
        return straight or _Rule(rule, s)


class _Rule:
    """A step replayed by its interpreter rule."""

    __slots__ = ("rule", "step")

    def __init__(self, rule: Callable, step: Step) -> None:
        self.rule, self.step = rule, step

    def __call__(self, run: Run, terms: list) -> None:
        self.rule(run, self.step, terms)


def _scored(run: Run, s: SampleStep | ObserveStep, data: Collection[str]) -> Callable | None:
    """The replay of a scored site whose density is ``log_prob(parameters,
    value)`` with parameters that read only constants and ``data`` (fixed
    for the binding) and a value the layout leaves as it is (see
    :func:`quivers.programs.runtime.site_log_prob`), or None."""
    site = run.compiled.sites[s.name]
    if site.kind not in ("latent", "observed"):
        return None
    spec, value = site.family.spec, run.env.get(s.name)
    # the parameters are kept from this run: they read no latent, hold no
    # tensor or function of their own (a learned constant, a network), and
    # carry no gradient
    if (getattr(s, "via", None) is not None or spec.log_prob is None or (spec.discrete and not spec.static_support)
            or type(value) is not Value or not s.reads <= data or any(e.tables for e in s.exprs())):
        return None
    tensors, axes, _, x = _lay_out(site, run.params(s), value)
    if x is not value.tensor or any(t.requires_grad for t in tensors.values() if isinstance(t, torch.Tensor)):
        return None
    name, log_prob = s.name, spec.log_prob
    return lambda r, terms: terms.append((Value(log_prob(tensors, r.env[name].tensor), axes), None))


def _kernel(run: Run, s: MarginalizeStep, latents: tuple[str, ...], rule: Callable) -> Callable | None:
    """The replay of a block summed out by a fused kernel: the recorded
    call, each argument the tensor of the latent it was or the recorded
    tensor itself (the same in a recording on copies of the latents), or
    None where an argument is neither."""
    call = run.fused_call(s)
    copies = dict(run.env)
    for n in latents:
        v = copies[n]
        copies[n] = Value(v.tensor.detach().clone(), v.dims, values_in=v.values_in)
    again = Run(run.compiled, copies, batch_shape=run.batch_shape, maps=run.maps).fused_call(s)
    if call is None or again is None or call[0] is not again[0] or call[2:] != again[2:]:
        return None
    reads: list[str | Any] = []
    for a, b in zip(call[1], again[1]):
        name = next((n for n in latents if a is run.env[n].tensor and b is copies[n].tensor), None)
        if name is None and not _same(a, b):
            return None
        reads.append(a if name is None else name)
    kernel, kw, dims = call[0], call[2], call[3]

    def replay(r: Run, terms: list) -> None:
        if not fused.enabled():  # switched off since: the general path
            return rule(r, s, terms)
        env = r.env
        args = [env[a].tensor if type(a) is str else a for a in reads]
        terms.append((Value(kernel(*args, **kw), dims), None))

    return replay


def _same(a: Any, b: Any) -> bool:
    """Whether the two recordings' arguments are one: the same object, or
    views without gradient of the same memory in the same layout (data
    laid out anew on every call)."""
    if a is b:
        return True
    return (type(a) is torch.Tensor and type(b) is torch.Tensor and not (a.requires_grad or b.requires_grad)
            and a.data_ptr() == b.data_ptr() and a.shape == b.shape and a.stride() == b.stride()
            and a.dtype == b.dtype and a.device == b.device)
