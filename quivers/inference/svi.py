"""Stochastic variational inference: gradient steps on the ELBO.

``SVI(model, guide, optimizer, loss)`` follows Pyro's interface: each
:meth:`SVI.step` estimates ``-ELBO``, back-propagates through the model's
exact marginal density and the guide's reparameterized draws, takes one
optimizer step and returns the loss as a float.

Examples
--------
>>> import torch
>>> from quivers.categories.finset import FinSet
>>> from quivers.distributions import Normal
>>> from quivers.programs import Program, sample, observe, var
>>> from quivers.inference.guides import AutoNormalGuide
>>> from quivers.inference.elbo import ELBO
>>> I = FinSet("I", 1)
>>> prog = Program("p", I, I, [sample("mu", None, Normal(0.0, 1.0)),
...                            observe("y", I, Normal(var("mu"), 1.0))])
>>> guide = AutoNormalGuide(prog, observed_names={"y"})
>>> svi = SVI(prog, guide, torch.optim.Adam(guide.parameters(), lr=0.05), ELBO())
>>> isinstance(svi.step(None, {"y": torch.tensor([1.0])}), float)
True
"""

from __future__ import annotations

import functools
import math
import operator
from typing import Any

import torch

from quivers.errors import GradientError, QuiversTypeError
from quivers.inference.devices import DataOnDevice, device_of
from quivers.inference.elbo import ELBO
from quivers.inference.optim import FusedAdam
from quivers.nn import MorphismModule
from quivers.programs import Program

__all__ = ["SVI", "adam"]


def adam(params: Any, lr: float) -> torch.optim.Adam:
    """Adam as :func:`~quivers.inference.fit` makes it: torch's fused
    implementation (one kernel per step for every parameter, where the
    default runs about ten operations per parameter tensor), as a
    :class:`~quivers.inference.optim.FusedAdam` that :class:`SVI` steps
    without the optimizer's per-call bookkeeping, when the parameters'
    device and dtypes have it, else the default one. The two round
    differently in the last bits, so a seeded fit moves by an ulp or so per
    step between them.

    Examples
    --------
    >>> import torch
    >>> opt = adam([torch.nn.Parameter(torch.zeros(3))], lr=0.01)
    >>> opt.defaults["fused"]
    True
    """
    params = list(params)
    try:
        return FusedAdam(params, lr=lr)
    except RuntimeError:  # a device or dtype without the fused kernel
        return torch.optim.Adam(params, lr=lr)


class SVI:
    """Pyro-style SVI driver.

    Parameters
    ----------
    model
        The program (its own parameters, if any, are optimized too when
        the optimizer holds them), or a morphism module (a QVR
        ``morphism``/``define``, a kernel program) whose parameters the
        optimizer holds; :meth:`step` then takes its inputs and outputs
        (``svi.step(xs, ys)``; the inputs alone for a morphism into ``1``)
        and the loss is its exact negative log density
        (:mod:`quivers.inference.morphisms`).
    guide
        An automatic guide; ``None`` for a morphism module, whose
        parameters are point estimates.
    optimizer
        A ``torch.optim`` optimizer over the parameters to learn.
    loss
        An :class:`ELBO`.
    """

    def __init__(self, model: Program, guide: Any, optimizer: torch.optim.Optimizer, loss: ELBO) -> None:
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise QuiversTypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
        if not hasattr(loss, "differentiable_loss"):
            raise QuiversTypeError(f"loss must be an ELBO, got {type(loss).__name__}")
        self.model, self.guide, self.optimizer, self.loss = model, guide, optimizer, loss
        self._data = DataOnDevice()

    @property
    def device(self) -> torch.device | None:
        """Where the steps run: the device of the guide's parameters (or of
        the model's, for a guide without any). Data given elsewhere is
        moved here, once per data set; move the model and the guide with
        ``.to(device)``, as any ``torch.nn.Module``."""
        for module in (self.guide, self.model):
            if isinstance(module, torch.nn.Module) and (device := device_of(module)) is not None:
                return device
        return None

    def step(self, x: Any = None, observations: Any = None, subsample: Any = None) -> float:
        """One gradient step; returns the estimate of ``-ELBO`` before it.

        ``subsample={"Item": b}`` marks the observations as a mini-batch of
        ``b`` rows of the plate ``Item``; the likelihood is rescaled so the
        loss stays an unbiased estimate of the full ``-ELBO``.
        """
        lean = type(self.optimizer) is FusedAdam  # a subclass may step otherwise
        if lean:
            self.optimizer.clear_grads()
        else:
            self.optimizer.zero_grad(set_to_none=True)
        observations = self._data(observations, self.device)
        jit = getattr(self.loss, "jit_compile", False)
        if jit:  # the compiled step writes the gradients itself
            value = self.loss.loss_and_grads(self.model, self.guide, x, observations, subsample)
        else:
            surrogate, value = self.loss.differentiable_loss(self.model, self.guide, x, observations, subsample)
            surrogate.backward()
        grads = [p.grad for g in self.optimizer.param_groups for p in g["params"] if p.grad is not None]
        # one sum, one synchronization: NaN or inf anywhere makes it non-finite
        if grads and not math.isfinite(float(functools.reduce(operator.add, [g.sum() for g in grads]))):
            if jit:  # the eager step at the same draws, to name the culprit
                self.loss.retake_eagerly(self.model, self.guide, x, observations, subsample)
            self._check_gradients(x, observations, subsample)
        if lean:
            self.optimizer.fused_step()
        else:
            self.optimizer.step()
        return value

    def _check_gradients(self, x: Any, observations: Any, subsample: Any) -> None:
        """Raise a :class:`GradientError` naming the latent and the step
        whose term has a non-finite gradient at the draw just taken (none
        is raised when every gradient is finite after all: a sum that
        overflowed)."""
        guide = self.guide.named_parameters() if self.guide is not None else ()
        bad = [f"`{name}`" for name, p in guide if p.grad is not None and not bool(torch.isfinite(p.grad).all())]
        if isinstance(self.model, MorphismModule):  # its parameters are the ones fitted: name them
            bad += [f"`{name}`" for name, p in self.model.named_parameters()
                    if p.grad is not None and not bool(torch.isfinite(p.grad).all())]
            if bad:
                raise GradientError(f"the gradient of the loss is not finite in the parameters {', '.join(sorted(bad))}")
            return
        bad += ["of the model" for p in self.model.parameters() if p.grad is not None and not bool(torch.isfinite(p.grad).all())]
        if not bad:
            return
        model = self.model.subsample(subsample) if subsample else self.model
        latents = getattr(self.loss, "last_latents", None)
        if latents:
            latents = {k: v.detach() for k, v in latents.items() if isinstance(v, torch.Tensor)}
        err = model.gradient_error(x, observations, latents, " at a draw of the guide") if latents else None
        if err is None:
            raise GradientError(
                f"the gradient of the ELBO is not finite in the parameters {', '.join(sorted(set(bad)))}",
                hint="the log density's terms have finite gradients at the draw; look at the guide's parameters",
            )
        raise err

    def evaluate_loss(self, x: Any = None, observations: Any = None) -> float:
        """``-ELBO`` without a step."""
        return self.loss.loss(self.model, self.guide, x, self._data(observations, self.device))
