"""The evidence lower bound, estimated with vectorized particles.

``ELBO(num_particles)`` draws all particles from the guide in one batched
call and scores them with one call of the model's exact ``log_joint`` (every
marginalize block integrated out), so the estimator has no Monte Carlo
variance from marginalized latents. Sampled discrete latents contribute a
score-function (REINFORCE) term with a moving-average baseline.

Laws
----
- For a guide equal to the posterior, the ELBO equals the log evidence and
  its variance over particles is zero.
- The loss returned is ``-ELBO``; its gradient is unbiased for the
  reparameterized part and, with the score-function term, for discrete
  guide parameters.

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
from quivers.programs import Program
from quivers.programs.data import check_one_data_set, first_bad

__all__ = ["ELBO", "Trace_ELBO"]


class ELBO:
    """Monte Carlo ELBO with ``num_particles`` vectorized particles.

    Parameters
    ----------
    num_particles
        Guide draws per estimate (one batched model call).
    baseline_decay
        Decay of the moving-average baseline of the score-function term.
    """

    def __init__(self, num_particles: int = 1, baseline_decay: float = 0.9) -> None:
        if int(num_particles) != num_particles or num_particles < 1:
            raise QuiversTypeError(f"num_particles must be a positive integer, got {num_particles!r}")
        if not 0.0 <= baseline_decay < 1.0:
            raise QuiversTypeError(f"baseline_decay must lie in [0, 1), got {baseline_decay}")
        self.num_particles = int(num_particles)
        self.baseline_decay = baseline_decay
        self._baseline: float | None = None

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
        """
        if subsample:
            model = model.subsample(subsample)
        check_one_data_set(observations, model.sites, "the particles of SVI")
        draw = guide(self.num_particles)
        # The guide's draws come through its own bijections, so they lie in
        # their supports unless they are not finite; the checks run only
        # when the ELBO is not finite, to name the culprit.
        log_joint = model.log_joint(x, observations, draw.latents, check_latents=False)
        if log_joint.dim() > 1:
            log_joint = log_joint.reshape(self.num_particles, -1).sum(-1)
        elbo = log_joint - draw.log_q
        loss = -elbo.mean()
        value = loss.item()
        if not math.isfinite(value):
            with torch.no_grad():
                model.log_joint(x, observations, draw.latents)
        if value != value:  # NaN: name the culprit instead of training on it
            raise DataError(
                "the ELBO is NaN; check the observations and the model's parameters for invalid values"
            )
        if value == math.inf:  # a zero-probability draw: the gradient would be NaN
            raise DataError(
                f"the ELBO is -inf: {_zero_probability(model, x, observations, draw.latents)}",
                hint="check the data against the model's supports, or start the guide elsewhere",
            )
        if not guide.discrete_sites:
            return loss, value
        signal = elbo.detach()
        baseline = signal.mean() if self._baseline is None else torch.tensor(self._baseline, dtype=signal.dtype)
        surrogate = elbo + draw.log_q_discrete * (signal - baseline)
        mean = float(signal.mean())
        self._baseline = mean if self._baseline is None else (
            self.baseline_decay * self._baseline + (1 - self.baseline_decay) * mean
        )
        return -surrogate.mean(), value

    def loss(self, model: Program, guide: Any, x: Any = None, observations=None) -> float:
        """``-ELBO`` estimated without gradients."""
        with torch.no_grad():
            return self.differentiable_loss(model, guide, x, observations)[1]

    def __call__(self, model, guide, x=None, observations=None) -> torch.Tensor:
        return self.differentiable_loss(model, guide, x, observations)[0]


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
