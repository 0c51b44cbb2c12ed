"""The evidence lower bound, estimated with vectorized particles.

``ELBO(num_particles)`` draws all particles from the guide in one batched
call and scores them with one call of the model's exact ``log_joint`` (every
marginalize block integrated out), so the estimator has no Monte Carlo
variance from marginalized latents. Sampled discrete latents contribute a
score-function (REINFORCE) term with a moving-average baseline, or, with
``discrete="relaxed"``, are drawn from the Gumbel-softmax relaxation of the
guide's categorical and differentiated through (for large ``K``, where
marginalizing costs ``K`` runs of the body; see the seed chapter's table).

Laws
----
- For a guide equal to the posterior, the ELBO equals the log evidence and
  its variance over particles is zero.
- The loss returned is ``-ELBO``; its gradient is unbiased for the
  reparameterized part and, with the score-function term, for discrete
  guide parameters.
- With ``discrete="relaxed"`` the loss is the relaxed objective
  ``-(E[log p~(x, theta, y)] - E[log q(theta)] + H(q_z))``, where ``y`` is
  a relaxed one-hot draw of each discrete latent ``z``, ``p~`` reads it as
  :mod:`quivers.programs.relaxed` says and ``H(q_z)`` is the exact entropy
  of the guide's categorical; it is differentiable in the guide's logits
  and tends to ``-ELBO`` as the temperature goes to zero.

Examples
--------
>>> import torch
>>> from quivers.categories.finset import FinSet
>>> from quivers.distributions import Normal
>>> from quivers.programs import Program, sample, observe, var
>>> I = FinSet("I", 1)
>>> prog = Program("p", I, I, [sample("mu", None, Normal(0.0, 1.0)),
...                            observe("y", I, Normal(var("mu"), 1.0))])
>>> from quivers.inference.guides import AutoNormalGuide
>>> guide = AutoNormalGuide(prog, observed_names={"y"})
>>> elbo = ELBO(num_particles=8)
>>> loss = elbo.loss(prog, guide, None, {"y": torch.tensor([0.5])})
>>> isinstance(loss, float)
True
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from quivers.errors import DataError, QuiversError, QuiversTypeError
from quivers.inference.jit import CompiledELBO
from quivers.inference.morphisms import morphism_loss
from quivers.nn import MorphismModule
from quivers.programs import Program
from quivers.programs.data import check_one_data_set, first_bad
from quivers.programs.relaxed import Relaxed

__all__ = ["ELBO", "Trace_ELBO"]


class ELBO:
    """Monte Carlo ELBO with ``num_particles`` vectorized particles.

    Parameters
    ----------
    num_particles
        Guide draws per estimate (one batched model call).
    baseline_decay
        Decay of the moving-average baseline of the score-function term.
    discrete
        How sampled (not marginalized) discrete latents get gradients:
        ``"score"`` (the default), the score-function estimator with a
        baseline, unbiased but noisy; or ``"relaxed"``, the Gumbel-softmax
        (Concrete) relaxation of each Categorical latent: the guide draws
        ``y ~ RelaxedOneHotCategorical(temperature, logits)`` by
        reparameterization, the model indexes by ``y`` as a convex
        combination (``mu[z]`` is ``sum_k y_k mu_k``) and scores it as
        ``sum_k y_k log pi_k``, and the guide's categorical contributes its
        exact entropy. Biased for a positive temperature, with low-variance
        gradients; only Categorical latents can be relaxed.
    temperature
        The relaxation's temperature (``discrete="relaxed"`` only; default
        0.5), a finite positive number. Lower is closer to the discrete
        model and noisier; it may be annealed during training by setting
        ``elbo.temperature``.
    estimator
        The gradient estimator of the continuous latents: ``"reparam"``
        (the default), the reparameterized gradient of ``log p - log q``;
        or ``"stl"``, sticking the landing (Roeder et al., 2017), the path
        derivative, which holds the guide's parameters fixed inside
        ``log q`` (it drops the score term ``grad log q``, zero in
        expectation): still unbiased, and of zero variance when the guide
        is the posterior, so its noise vanishes near the optimum.
    jit_compile
        Record the step (the guide's draw, the log joint, the loss and
        their gradients) once per model, guide, data set and parameter
        layout, compile it (inductor, ``torch.compile``'s code generator)
        and run each later
        :meth:`SVI.step <quivers.inference.SVI.step>` as one call of it,
        as Pyro's ``JitTrace_ELBO`` does (:mod:`quivers.inference.jit`).
        The draws are the eager step's, from torch's generator, so a seeded
        run draws the same numbers; the first step is eager and checks
        the compiled one. What cannot be recorded (sampled discrete
        latents, ``subsample``, a morphism model, a host read in the
        model) runs eagerly with a :class:`~quivers.capture.CompileWarning`
        saying why. Compiling takes seconds (inductor, once); it pays
        for small models run for many steps.
    jit_backend
        The compiler of ``jit_compile``: ``"inductor"`` (the default,
        :data:`quivers.inference.jit.BACKEND`: fused generated code, called
        directly), ``"eager"`` (the recorded graph replayed without a
        compiler), or another ``torch.compile`` backend.

    Examples
    --------
    >>> import torch
    >>> from quivers.categories.finset import FinSet
    >>> from quivers.distributions import Categorical, Normal
    >>> from quivers.programs import Program, const, observe, sample, var
    >>> from quivers.inference.guides import AutoNormalGuide
    >>> K, I = FinSet("K", 50), FinSet("I", 1)
    >>> mu = const(torch.linspace(-5.0, 5.0, 50), K)
    >>> prog = Program("p", I, I, [sample("z", None, Categorical(const(torch.ones(50), K))),
    ...                            observe("y", I, Normal(mu[var("z")], 0.5))])
    >>> guide = AutoNormalGuide(prog, observed_names={"y"})
    >>> elbo = ELBO(num_particles=16, discrete="relaxed", temperature=0.5)
    >>> surrogate, value = elbo.differentiable_loss(prog, guide, None, {"y": torch.tensor([1.2])})
    >>> surrogate.backward()
    >>> bool(guide.logits["z"].grad.abs().sum() > 0)  # through the relaxed draw
    True
    >>> ELBO(discrete="relaxed", temperature=0.0)
    Traceback (most recent call last):
    ...
    quivers.errors.QuiversTypeError: temperature must be a finite positive number, got 0.0
    """

    estimators: tuple[str, ...] = ("reparam", "stl")

    def __init__(
        self,
        num_particles: int = 1,
        baseline_decay: float = 0.9,
        *,
        discrete: str = "score",
        temperature: float | None = None,
        estimator: str = "reparam",
        jit_compile: bool = False,
        jit_backend: str | None = None,
    ) -> None:
        if not isinstance(jit_compile, bool):
            raise QuiversTypeError(f"jit_compile must be True or False, got {jit_compile!r}")
        if jit_backend is not None and (not isinstance(jit_backend, str) or not jit_backend):
            raise QuiversTypeError(f"jit_backend must name a torch.compile backend, got {jit_backend!r}")
        if estimator not in self.estimators:
            names = ", ".join(f"`{e}`" for e in self.estimators)
            raise QuiversTypeError(
                f"unknown estimator `{estimator}` for {type(self).__name__}; its estimators are {names}",
                hint='"stl" suits the ELBO, "dreg" the IWAE bound' if estimator in ("stl", "dreg") else None,
            )
        self.estimator = estimator
        if int(num_particles) != num_particles or num_particles < 1:
            raise QuiversTypeError(f"num_particles must be a positive integer, got {num_particles!r}")
        if not 0.0 <= baseline_decay < 1.0:
            raise QuiversTypeError(f"baseline_decay must lie in [0, 1), got {baseline_decay}")
        if discrete not in ("score", "relaxed"):
            raise QuiversTypeError(
                f"unknown discrete estimator `{discrete}`; estimators are `score` and `relaxed`"
            )
        if discrete == "score" and temperature is not None:
            raise QuiversTypeError(
                "temperature applies to relaxed discrete latents only",
                hint='pass discrete="relaxed" to relax them',
            )
        self.num_particles = int(num_particles)
        self.baseline_decay = baseline_decay
        self.discrete = discrete
        self._temperature: float | None = None
        if discrete == "relaxed":
            self.temperature = 0.5 if temperature is None else temperature
        self._baseline: float | None = None
        self.jit_compile = jit_compile
        self._jit = CompiledELBO(self, jit_backend) if jit_compile else None

    @property
    def compiled(self) -> bool:
        """Whether steps run as one call of a compiled graph: with
        ``jit_compile``, from the second step on a data set the step
        could be recorded for."""
        return self._jit is not None and self._jit.step is not None

    def loss_and_grads(
        self,
        model: Program,
        guide: Any,
        x: Any = None,
        observations: Mapping[str, Any] | None = None,
        subsample: Mapping[str, int] | None = None,
    ) -> float:
        """``-ELBO`` at a fresh draw, with the gradients of the loss added
        to the ``.grad`` of the guide's and the model's parameters (as
        Pyro's ``loss_and_grads``): by ``backward`` of
        :meth:`differentiable_loss`, or with ``jit_compile`` by the
        compiled step.

        Examples
        --------
        >>> import torch
        >>> from quivers.categories.finset import FinSet
        >>> from quivers.distributions import Normal
        >>> from quivers.programs import Program, observe, sample, var
        >>> from quivers.inference.guides import AutoNormalGuide
        >>> I = FinSet("I", 1)
        >>> prog = Program("p", I, I, [sample("mu", None, Normal(0.0, 1.0)),
        ...                            observe("y", I, Normal(var("mu"), 1.0))])
        >>> guide = AutoNormalGuide(prog, observed_names={"y"})
        >>> value = ELBO().loss_and_grads(prog, guide, None, {"y": torch.tensor([0.5])})
        >>> guide.loc.grad.shape
        torch.Size([1])
        """
        if self._jit is not None:
            return self._jit.loss_and_grads(model, guide, x, observations, subsample)
        surrogate, value = self.differentiable_loss(model, guide, x, observations, subsample)
        surrogate.backward()
        return value

    def retake_eagerly(self, model: Program, guide: Any, x: Any = None, observations: Any = None,
                       subsample: Any = None) -> None:
        """Take the last step again eagerly at the same draws if it was
        compiled, its gradients replacing the compiled ones and its
        latents in ``last_latents``: what SVI names a non-finite gradient
        from. Nothing for an eager step."""
        if self._jit is not None:
            self._jit.again(model, guide, x, observations, subsample)

    @property
    def temperature(self) -> float | None:
        """The relaxation's temperature (None unless ``discrete="relaxed"``)."""
        return self._temperature

    @temperature.setter
    def temperature(self, value: float) -> None:
        if self.discrete != "relaxed":
            raise QuiversTypeError(
                "temperature applies to relaxed discrete latents only",
                hint='build the ELBO with discrete="relaxed"',
            )
        try:
            t = float(value)
        except (TypeError, ValueError):
            raise QuiversTypeError(f"temperature must be a finite positive number, got {value!r}") from None
        if not (math.isfinite(t) and t > 0):
            raise QuiversTypeError(f"temperature must be a finite positive number, got {value!r}")
        self._temperature = t

    def differentiable_loss(
        self,
        model: Program,
        guide: Any,
        x: Any = None,
        observations: Mapping[str, Any] | None = None,
        subsample: Mapping[str, int] | None = None,
    ) -> tuple[torch.Tensor, float]:
        """A surrogate loss to differentiate, and the value of ``-ELBO``.

        With ``subsample={"Item": b}`` the observations hold a mini-batch of
        ``b`` rows of the plate ``Item`` and the likelihood is rescaled by
        ``N / b`` (see :meth:`quivers.programs.Program.subsample`).

        A morphism model (a :class:`~quivers.nn.MorphismModule`, with
        ``guide=None``) is scored by its log density of the data, as
        :mod:`quivers.inference.morphisms` says.
        """
        if isinstance(model, MorphismModule):  # no latent sites: the log density itself, exactly
            if subsample:
                raise QuiversTypeError("subsample applies to a program's plates; a morphism model has none")
            return morphism_loss(model, guide, x, observations, self.num_particles)
        draw, neg_elbo, model = self._particles(model, guide, x, observations, subsample)
        loss = self._mean(neg_elbo)
        value = loss.item()
        self._check_finite(value, "ELBO", model, x, observations, draw)
        relaxed = self.discrete == "relaxed" and bool(guide.discrete_sites)
        if not guide.discrete_sites or relaxed:
            return loss, value
        elbo = -neg_elbo
        signal = elbo.detach()
        baseline = signal.mean() if self._baseline is None else torch.tensor(self._baseline, dtype=signal.dtype)
        surrogate = elbo + draw.log_q_discrete * (signal - baseline)
        mean = float(signal.mean())
        self._baseline = mean if self._baseline is None else (
            self.baseline_decay * self._baseline + (1 - self.baseline_decay) * mean
        )
        return -surrogate.mean(), value

    def _particles(
        self, model: Program, guide: Any, x: Any, observations: Any, subsample: Mapping[str, int] | None
    ) -> tuple[Any, torch.Tensor, Program]:
        """``num_particles`` draws of the guide and ``log q - log p`` of each
        (the negated log importance weights), with the model they were
        scored by (the subsampled one when ``subsample`` is given)."""
        if subsample:
            model = model.subsample(subsample)
        check_one_data_set(observations, model.sites, "the particles of SVI")
        draw, neg_elbo = self._neg_elbo(guide, model.planned_log_joint(x, observations))
        # kept to name the step of a non-finite gradient (detached there, not on every step)
        self.last_latents = draw.latents
        return draw, neg_elbo, model

    def _neg_elbo(self, guide: Any, log_joint: Any) -> tuple[Any, torch.Tensor]:
        """The guide's particles and ``log q - log p`` of each, ``log p``
        by the plan ``log_joint`` (what a compiled step records)."""
        draw = self._draw(guide)
        # The guide's draws come through its own bijections, so they lie in
        # their supports unless they are not finite; the checks run only
        # when the objective is not finite, to name the culprit.
        log_joint = log_joint(draw.latents)
        if log_joint.dim() > 1:
            log_joint = log_joint.reshape(self.num_particles, -1).sum(-1)
        return draw, draw.log_q - log_joint  # no negation node

    @staticmethod
    def _mean(neg_elbo: torch.Tensor) -> torch.Tensor:
        """The loss: the particles' mean (one particle's mean is itself,
        ``x / 1`` is ``x``: a view, where mean is two operations each way)."""
        return neg_elbo.reshape(()) if neg_elbo.numel() == 1 else neg_elbo.mean()

    def _draw(self, guide: Any) -> Any:
        """The guide's particles, as this objective's estimator reads them."""
        draw = guide(self.num_particles)
        if self.estimator != "reparam":
            draw = _stop_guide_parameters(guide, draw, self.estimator)
        if self.discrete == "relaxed" and guide.discrete_sites:
            draw = _relax(guide, draw, self.num_particles, self._temperature)
        return draw

    @staticmethod
    def _check_finite(value: float, what: str, model: Program, x: Any, observations: Any, draw: Any) -> None:
        """Name the culprit of a NaN or -inf objective instead of training on it."""
        if math.isfinite(value):
            return
        with torch.no_grad():
            model.log_joint(x, observations, draw.latents)
        if value != value:
            raise DataError(
                f"the {what} is NaN; check the observations and the model's parameters for invalid values"
            )
        if value == math.inf:  # a zero-probability draw: the gradient would be NaN
            raise DataError(
                f"the {what} is -inf: {_zero_probability(model, x, observations, draw.latents)}",
                hint="check the data against the model's supports, or start the guide elsewhere",
            )

    def loss(self, model: Program, guide: Any, x: Any = None, observations=None) -> float:
        """``-ELBO`` estimated without gradients."""
        with torch.no_grad():
            return self.differentiable_loss(model, guide, x, observations)[1]

    def __call__(self, model, guide, x=None, observations=None) -> torch.Tensor:
        return self.differentiable_loss(model, guide, x, observations)[0]


def _stop_guide_parameters(guide: Any, draw: Any, estimator: str) -> Any:
    """``draw`` with its base log density recomputed with the guide's
    parameters held fixed, so that gradients reach them only through the
    draw (the path derivative)."""
    u = getattr(draw, "u", None)
    if u is None or getattr(draw, "log_base", None) is None or not hasattr(guide, "stopped_log_prob"):
        raise QuiversTypeError(
            f"estimator `{estimator}` needs a guide that draws through a base distribution "
            f"(an automatic guide); {type(guide).__name__} does not expose its unconstrained draw",
            hint='use estimator="reparam"',
        )
    stopped = guide.stopped_log_prob(u)
    draw.log_q = draw.log_q - draw.log_base + stopped
    draw.log_base = stopped
    return draw


def _relax(guide: Any, draw: Any, num: int, temperature: float) -> Any:
    """``draw`` with each discrete latent redrawn from the Gumbel-softmax
    relaxation of the guide's categorical (by ``rsample``, so gradients
    reach the logits through the draw), and its categorical's log density
    replaced by the exact entropy: ``log_q`` becomes the continuous part
    less ``H(q)``, whose expectation the discrete part's log density has."""
    latents = dict(draw.latents)
    entropy = draw.log_q.new_zeros(())
    for s in guide.discrete_sites:
        logits = guide.logits[s.name]
        if s.family is None or s.family.name != "Categorical":
            raise QuiversTypeError(
                f"latent `{s.name}` has a {s.family.name if s.family else 'non-family'} prior; "
                "only Categorical latents can be relaxed",
                hint=f'marginalize `{s.name}`, or use discrete="score"',
            )
        t = torch.as_tensor(temperature, dtype=logits.dtype, device=logits.device)
        # validate_args=False: the guide's logits are finite by construction
        y = torch.distributions.RelaxedOneHotCategorical(t, logits=logits, validate_args=False).rsample((num,))
        latents[s.name] = Relaxed(y)
        entropy = entropy + torch.distributions.Categorical(logits=logits, validate_args=False).entropy().sum()
    log_q = draw.log_q - draw.log_q_discrete - entropy
    return type(draw)(latents, log_q, torch.zeros_like(log_q))


def _zero_probability(model: Program, x: Any, observations: Any, latents: Mapping[str, torch.Tensor]) -> str:
    """Where the log joint is -inf at the guide's draws: the first
    observation with zero probability, by its index after the particle
    axis, when the pointwise terms show one."""
    try:
        with torch.no_grad():
            terms = model.pointwise_log_likelihood(x, observations, latents)
    except QuiversError:
        terms = {}
    for name, t in terms.items():
        bad = t == -math.inf
        if bool(bad.any()):
            i = first_bad(bad)
            return f"observation `{name}` has zero probability at index {i[1:]} (under particle {i[0]})"
    return "the log joint density is -inf at a draw of the guide"


Trace_ELBO = ELBO
