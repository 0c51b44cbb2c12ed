"""The ELBO's step recorded once per data set and compiled (``ELBO(jit_compile=True)``).

An eager SVI step dispatches every tensor operation of the guide's draw,
the model's log joint, the ELBO and their backward pass from Python,
about 150 operations of a few microseconds each on the seed mixture
whatever the data size; NumPyro's step is one call of compiled code, as
is Pyro's under ``JitTrace_ELBO``. Here, at the first step for a model,
guide, data set and parameter layout, the function

    (parameters of the guide and the model, the draw's standard normal noise) -> (loss, gradients)

is recorded as one graph of aten operations
(:func:`quivers.capture.record`: forward and backward, the data and
everything bound by the program's plan as constants) and compiled
(:func:`quivers.capture.compile_graph`). Each later step draws the noise
eagerly from torch's generator, with the calls the eager draw makes, so
that a seeded run draws the same numbers; calls the compiled graph once;
and writes the gradients where ``backward`` would have.

Laws
----
- The default (``jit_compile=False``) is the eager step, unchanged.
- The first step for a key is the eager step itself (its draws, loss
  and gradients); the compiled step is used from the second on only if
  it gave that step's loss and gradients to within :func:`quivers.capture.agree`.
- A recorded step is never used for another model, guide, data set (a
  tensor written in place since counts as another), particle count,
  estimator, program generation (``.to``, ``.double``), or parameters of
  other tensors, shapes, dtypes or devices: those record afresh.
- What cannot be recorded runs eagerly, and a
  :class:`~quivers.capture.CompileWarning` says why, once: sampled
  discrete latents (their estimators read the draws on the host, or draw
  other noise), a ``subsample`` step, a morphism model, a guide that is
  not a torch module, a graph that reads a value on the host, draws
  other random numbers or reads a tensor that requires gradients but is
  no parameter of the model or the guide, a compiler that fails, a compiled step that
  disagrees with the eager one, and data that keep changing (more than
  :data:`MAX_RECORDINGS` recordings).
- A step whose loss is not finite is taken again eagerly at the same
  draws, so that it raises the eager step's located error.

Examples
--------
>>> import torch
>>> from quivers.categories.finset import FinSet
>>> from quivers.distributions import Normal
>>> from quivers.programs import Program, sample, observe, var
>>> from quivers.inference import ELBO, SVI, AutoNormalGuide
>>> I = FinSet("I", 3)
>>> prog = Program("p", I, I, [sample("mu", None, Normal(0.0, 1.0)),
...                            observe("y", I, Normal(var("mu"), 1.0))])
>>> guide = AutoNormalGuide(prog, observed_names={"y"})
>>> elbo = ELBO(jit_compile=True, jit_backend="eager")
>>> svi = SVI(prog, guide, torch.optim.Adam(guide.parameters(), lr=0.05), elbo)
>>> losses = [svi.step(None, {"y": torch.ones(3)}) for _ in range(3)]
>>> elbo.compiled
True
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from quivers.capture import CompileWarning, agree, compile_graph, first_line, record
from quivers.nn import MorphismModule
from quivers.programs.plan import LogJointPlan, data_key

__all__ = ["BACKEND", "CompiledELBO", "MAX_RECORDINGS"]

# the backend of an ELBO built without one
BACKEND = "inductor"

# recordings an ELBO makes before it takes every step eagerly: data that
# change at every step would otherwise be compiled at every step
MAX_RECORDINGS = 8


class _Noise(TorchFunctionMode):
    """The standard normal draws of a block (``Tensor.normal_()`` with its
    defaults, which every automatic guide and torch's ``rsample`` make):
    kept as they are drawn, or, given ``noise``, replaced by it in order."""

    def __init__(self, noise: Sequence[Tensor] | None = None) -> None:
        super().__init__()
        self.given = None if noise is None else list(noise)
        self.drawn: list[Tensor] = []
        self.into_views = False  # a draw into a view, whose layout a fresh tensor would not repeat

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is not torch.Tensor.normal_ or not _standard(args, kwargs):
            return func(*args, **kwargs)
        target = args[0]
        if self.given is None:
            self.into_views |= not target.is_contiguous()
            out = func(*args, **kwargs)
            self.drawn.append(out.detach().clone())
            return out
        i = len(self.drawn)
        if i >= len(self.given) or self.given[i].shape != target.shape:
            raise RuntimeError("the draw makes other standard normal draws than the recorded step")
        self.drawn.append(self.given[i])
        return target.copy_(self.given[i])


def _standard(args: tuple, kwargs: dict) -> bool:
    """Whether ``normal_(*args, **kwargs)`` draws from N(0, 1) with torch's generator."""
    mean = args[1] if len(args) > 1 else kwargs.get("mean", 0.0)
    std = args[2] if len(args) > 2 else kwargs.get("std", 1.0)
    return mean == 0 and std == 1 and kwargs.get("generator") is None


class _Pair(nn.Module):
    """The model and the guide as one module, so that one
    :func:`torch.func.functional_call` swaps the parameters of both."""

    def __init__(self, model: nn.Module, guide: nn.Module) -> None:
        super().__init__()
        self.model, self.guide = model, guide

    def forward(self, elbo: Any, plan: LogJointPlan) -> Tensor:
        return elbo._mean(elbo._neg_elbo(self.guide, plan)[1])


class _Step:
    """A compiled step: ``fn(*params, *noise) -> (loss, *grads)`` of the
    parameters listed in ``grad_params``."""

    __slots__ = ("key", "params", "layout", "grad_params", "noise", "fn")

    def __init__(self, key: tuple, params: list[Tensor], grad_params: list[Tensor],
                 noise: list[Tensor], fn: Callable[..., Any]) -> None:
        self.key, self.params, self.grad_params, self.fn = key, params, grad_params, fn
        self.layout = [(p.shape, p.dtype, p.device, p.requires_grad) for p in params]
        self.noise = [(tuple(t.shape), t.stride(), t.dtype, t.device) for t in noise]

    def fits(self, params: list[Tensor]) -> bool:
        """Whether ``params`` are the tensors recorded, as they were."""
        return len(params) == len(self.params) and all(
            p is q and p.shape == s and p.dtype == d and p.device == v and p.requires_grad == r
            for p, q, (s, d, v, r) in zip(params, self.params, self.layout)
        )

    def draw(self) -> list[Tensor]:
        """The noise of one step, drawn as the eager step draws it."""
        return [torch.empty_strided(s, st, dtype=d, device=v).normal_() for s, st, d, v in self.noise]

    def __call__(self, noise: list[Tensor]) -> tuple[Tensor, ...]:
        with torch.no_grad():
            return self.fn(*self.params, *noise)


class CompiledELBO:
    """The compiled steps of one :class:`~quivers.inference.ELBO`: see the
    module's laws. ``backend`` is ``torch.compile``'s (``"eager"`` replays
    the recorded graph without a compiler; by default :data:`BACKEND`)."""

    def __init__(self, elbo: Any, backend: str | None = None) -> None:
        self.elbo, self.backend = elbo, BACKEND if backend is None else backend
        self.step: _Step | None = None
        self.recordings = 0
        self._failed: set[tuple] = set()
        self._warned: set[str] = set()
        self._noise: list[Tensor] | None = None  # the last compiled step's, to take it again eagerly
        self._last_pair: _Pair | None = None

    def loss_and_grads(self, model: Any, guide: Any, x: Any, observations: Mapping[str, Any] | None,
                       subsample: Mapping[str, int] | None) -> float:
        """``-ELBO`` at a fresh draw, its gradients written into the
        ``.grad`` of the guide's and the model's parameters (added to what
        is there, as ``backward`` adds)."""
        self._noise = None
        why = _unsupported(self.elbo, model, guide, subsample)
        if why is not None:
            self._warn(why)
            return self._eager(model, guide, x, observations, subsample)
        pair = self._pair(model, guide)
        named = list(pair.named_parameters())
        names, params = [n for n, _ in named], [p for _, p in named]
        key = (id(model), id(guide), getattr(model, "_generation", 0), data_key(x, observations),
               self.elbo.num_particles, self.elbo.estimator)
        step = self.step
        if step is None or step.key != key or not step.fits(params):
            if (key, tuple(id(p) for p in params)) in self._failed:
                return self._eager(model, guide, x, observations, subsample)
            if self.recordings >= MAX_RECORDINGS:
                self.step = None
                self._warn(f"the data or the parameters changed {MAX_RECORDINGS} times, and each change records "
                           "and compiles the step anew")
                return self._eager(model, guide, x, observations, subsample)
            return self._record(pair, names, params, key, x, observations)
        noise = step.draw()
        out = step(noise)
        value = float(out[0])
        if not math.isfinite(value):  # the eager step at the same draws raises the located error
            with _Noise(noise):
                return self._eager(model, guide, x, observations, subsample)
        _write(step.grad_params, out[1:])
        self._noise = noise
        return value

    def again(self, model: Any, guide: Any, x: Any, observations: Any, subsample: Any) -> None:
        """The last step, if it was compiled, taken again eagerly at the same
        draws, its gradients replacing the compiled ones: what a
        non-finite gradient is explained from. (An eager step needs
        nothing: its draws are the ELBO's ``last_latents``.)"""
        if self._noise is None:
            return
        for p in self._pair(model, guide).parameters():
            p.grad = None
        with _Noise(self._noise):
            self._eager(model, guide, x, observations, subsample)

    def _pair(self, model: Any, guide: Any) -> _Pair:
        pair = self._last_pair
        if pair is None or pair.model is not model or pair.guide is not guide:
            pair = self._last_pair = _Pair(model, guide)
        return pair

    def _eager(self, model: Any, guide: Any, x: Any, observations: Any, subsample: Any) -> float:
        surrogate, value = self.elbo.differentiable_loss(model, guide, x, observations, subsample)
        surrogate.backward()
        return value

    def _record(self, pair: _Pair, names: list[str], params: list[Tensor], key: tuple, x: Any,
                observations: Any) -> float:
        """The eager step, its noise kept; then the step recorded at its
        draws, compiled and checked against it."""
        elbo, model, guide = self.elbo, pair.model, pair.guide
        self.step = None
        want = [p for p in params if p.requires_grad]
        if not want:  # nothing to learn: the eager step says what it says
            return self._eager(model, guide, x, observations, None)
        self.recordings += 1
        before = [None if p.grad is None else p.grad.clone() for p in want]  # backward adds to them
        with _Noise() as kept:
            surrogate, value = elbo.differentiable_loss(model, guide, x, observations)
        surrogate.backward()  # the eager step, exactly: every leaf it reaches gets its gradient
        grads = [p.grad if b is None or p.grad is None else p.grad - b for p, b in zip(want, before)]
        latents = {k: v.detach() for k, v in elbo.last_latents.items()}
        noise = kept.drawn
        if kept.into_views:
            self._failed.add((key, tuple(id(p) for p in params)))
            self._warn("the guide draws its noise into views of other tensors")
            return value
        cuda = sorted({p.device.index or 0 for p in params if p.device.type == "cuda"})
        # a recording runs the step, and a step that draws other noise would
        # move the generator: the run goes on as if no recording were made
        with torch.random.fork_rng(devices=cuda):
            why, step = self._compile(pair, names, params, key, x, observations, latents, noise,
                                      [surrogate.detach(), *(g for g in grads if g is not None)])
        if step is None:
            self._failed.add((key, tuple(id(p) for p in params)))
            self._warn(why)
        self.step = step
        return value

    def _compile(self, pair: _Pair, names: list[str], params: list[Tensor], key: tuple, x: Any,
                 observations: Any, latents: dict[str, Tensor], noise: list[Tensor],
                 expected: list[Tensor]) -> tuple[str, _Step | None]:
        elbo = self.elbo
        plan = LogJointPlan(pair.model, observations, x)  # the recording's own: bound here, eagerly
        with torch.no_grad():
            plan(latents)
        wanted = [i for i, p in enumerate(params) if p.requires_grad]
        used: list[int] = []

        def step(*inputs: Tensor) -> tuple[Tensor, ...]:
            n = len(names)
            with _Noise(inputs[n:]) as given:
                loss = torch.func.functional_call(pair, dict(zip(names, inputs[:n])), (elbo, plan))
            if len(given.drawn) != len(noise):
                raise RuntimeError("the draw makes other standard normal draws than the recorded step")
            grads = torch.autograd.grad(loss, [inputs[i] for i in wanted], allow_unused=True)
            used[:] = [i for i, g in zip(wanted, grads) if g is not None]
            return (loss, *(g for g in grads if g is not None))

        inputs = [p.detach().requires_grad_(p.requires_grad) for p in params]
        try:
            graph = record(step, *inputs, *noise)
        except Exception as err:  # noqa: BLE001 - any failure to record means: stay eager
            return f"it could not be recorded as a graph ({type(err).__name__}: {first_line(err)})", None
        drawn = _random_ops(graph)
        if drawn:
            return f"it draws random numbers other than the guide's standard normal noise ({', '.join(drawn)})", None
        held = _learnable_constants(graph)
        if held:
            return (f"it reads {held} tensor(s) that require gradients but are no parameters of the model or "
                    "the guide (the graph would hold them fixed; register them on a module to learn them)"), None
        try:
            fn = compile_graph(graph, self.backend, [p.detach() for p in params] + noise)
            with torch.no_grad():  # as the steps call it, so that torch.compile's guards hold for them
                got = fn(*params, *noise)
        except Exception as err:  # noqa: BLE001 - a compiler that fails means: stay eager
            return f"torch.compile failed ({type(err).__name__}: {first_line(err)})", None
        if not agree(list(got), expected):
            return "its compiled loss or gradients differ from the eager ones at the first step", None
        return "", _Step(key, params, [params[i] for i in used], noise, fn)

    def _warn(self, why: str) -> None:
        if why not in self._warned:
            self._warned.add(why)
            warnings.warn(f"the ELBO's step runs eagerly: {why}", CompileWarning, stacklevel=5)


def _write(params: Sequence[Tensor], grads: Sequence[Tensor]) -> None:
    """The gradients into ``.grad``, added to what is there as ``backward`` adds."""
    for p, g in zip(params, grads):
        if p.grad is None:
            p.grad = g
        else:
            p.grad = p.grad + g


def _unsupported(elbo: Any, model: Any, guide: Any, subsample: Any) -> str | None:
    """Why the step cannot be recorded before trying, or None."""
    if isinstance(model, MorphismModule):
        return "a morphism model's loss is not recorded"
    if subsample:
        return "a `subsample` step rescales the likelihood at every call"
    if not isinstance(guide, nn.Module) or not isinstance(model, nn.Module):
        return "the guide is not a torch module, so its parameters cannot be inputs of a graph"
    discrete = getattr(guide, "discrete_sites", ())
    if discrete:
        names = ", ".join(f"`{s.name}`" for s in discrete)
        how = ("the score-function estimator reads each draw's value" if elbo.discrete == "score"
               else "their relaxed draws take uniform noise")
        return f"the guide samples discrete latents ({names}), and {how}"
    return None


def _learnable_constants(graph: torch.fx.GraphModule) -> int:
    """How many tensors the recorded graph holds as constants although
    they require gradients: tensors the step reads besides the model's and
    the guide's parameters (a ``const`` of a learnable tensor), which the
    eager step differentiates and the graph would hold fixed."""
    held = {id(t) for n in graph.graph.nodes if n.op == "get_attr"
            for t in [getattr(graph, n.target, None)] if isinstance(t, Tensor) and t.requires_grad}
    return len(held)


def _random_ops(graph: torch.fx.GraphModule) -> list[str]:
    """The random operations left in a recorded graph (a compiled graph
    would draw them from its own generator, not from torch's)."""
    seeded = torch.Tag.nondeterministic_seeded
    return sorted({str(n.target) for n in graph.graph.nodes
                   if n.op == "call_function" and seeded in getattr(n.target, "tags", ())})
