"""Variational objectives tighter than the ELBO, on the ELBO's particle plan.

Each draws ``K`` particles from the guide in one batched call and scores
them with one call of the model's exact ``log_joint`` (marginalized
latents integrated out, so they add no variance), exactly as
:class:`~quivers.inference.ELBO` does; only the reduction of the log
importance weights ``log w_k = log p(x, z_k) - log q(z_k)`` differs.

- :class:`RenyiELBO` (Li and Turner, 2016), the variational Rényi bound
  ``L_alpha = 1 / (1 - alpha) * log mean_k w_k^(1 - alpha)``;
- :class:`IWAE` (Burda et al., 2016), ``L_K = log mean_k w_k``, the Rényi
  bound at ``alpha = 0``;
- :class:`CUBO` (Dieng et al., 2017), the chi upper bound
  ``CUBO_n = 1 / n * log mean_k w_k^n``, an upper bound on ``log p(x)``
  for ``n >= 1`` (minimized, it fits the guide's tails).

Laws
----
- ``RenyiELBO(alpha)`` tends to the ELBO as ``alpha -> 1`` and ``IWAE``
  with one particle is the ELBO, draw for draw.
- In expectation ``ELBO <= IWAE_K <= IWAE_{K+1} <= log p(x) <= CUBO_n``,
  with ``IWAE_K -> log p(x)`` as ``K`` grows; tested against the closed
  form of a conjugate normal model.
- Every objective equals ``log p(x)`` exactly when the guide is the
  posterior.

Sampled (not marginalized) discrete latents have no reparameterized
gradient under these bounds: a model with one is refused by name
(marginalize it, or use :class:`~quivers.inference.ELBO`).

Examples
--------
>>> import torch
>>> from quivers.categories.finset import FinSet
>>> from quivers.distributions import Normal
>>> from quivers.programs import Program, observe, sample, var
>>> from quivers.inference import AutoNormalGuide
>>> I = FinSet("I", 1)
>>> prog = Program("p", I, I, [sample("mu", None, Normal(0.0, 1.0)),
...                            observe("y", I, Normal(var("mu"), 1.0))])
>>> guide = AutoNormalGuide(prog, observed_names={"y"})
>>> loss = IWAE(num_particles=16).loss(prog, guide, None, {"y": torch.tensor([0.5])})
>>> isinstance(loss, float)
True
>>> RenyiELBO(alpha=1.0)
Traceback (most recent call last):
...
quivers.errors.QuiversTypeError: alpha must be a finite number other than 1 (the ELBO), got 1.0; use ELBO for alpha = 1
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from quivers.errors import QuiversTypeError
from quivers.inference.elbo import ELBO
from quivers.nn import MorphismModule
from quivers.programs import Program

__all__ = ["RenyiELBO", "IWAE", "CUBO", "RWS", "ReweightedWakeSleep"]


class _WeightedBound(ELBO):
    """An objective that reduces the particles' log weights ``log w`` to one
    number; subclasses give :meth:`bound`. The loss is ``-bound`` for lower
    bounds and ``bound`` for upper ones (``sign``)."""

    name = "bound"
    sign = -1.0
    estimators: tuple[str, ...] = ("reparam",)

    def bound(self, log_w: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def differentiable_loss(
        self,
        model: Program,
        guide: Any,
        x: Any = None,
        observations: Mapping[str, Any] | None = None,
        subsample: Mapping[str, int] | None = None,
    ) -> tuple[torch.Tensor, float]:
        """The loss to differentiate, and its value."""
        if isinstance(model, MorphismModule):  # no latents: every bound is the exact log density
            return ELBO.differentiable_loss(self, model, guide, x, observations, subsample)
        if guide.discrete_sites:
            names = [s.name for s in guide.discrete_sites]
            raise QuiversTypeError(
                f"{type(self).__name__} needs reparameterized latents, but {names} are sampled discrete latents",
                hint="marginalize them (exactly, with no variance), or fit with ELBO",
            )
        draw, neg_log_w, model = self._particles(model, guide, x, observations, subsample)
        loss = self.sign * self.bound(-neg_log_w)
        value = loss.item()
        self._check_finite(value if self.sign < 0 else -value, self.name, model, x, observations, draw)
        if self.estimator == "dreg":
            return _dreg_surrogate(draw, -neg_log_w, getattr(self, "alpha", 0.0)), value
        return loss, value


def _dreg_surrogate(draw: Any, log_w: torch.Tensor, alpha: float = 0.0) -> torch.Tensor:
    """The doubly-reparameterized surrogate of the Rényi bound (Tucker et
    al., 2019, for IWAE, ``alpha = 0``).

    ``log_w`` holds ``log q`` with the guide's parameters fixed (the path
    derivative), and ``w~`` are the normalized weights ``softmax((1 -
    alpha) log w)``. Differentiating ``-sum_k w~_k log w_k`` with ``w~``
    fixed gives the model's parameters the bound's gradient ``sum_k w~_k
    grad log p(x, z_k)``. The guide's gradient of the bound is ``sum_k
    w~_k d log w_k``, whose score part ``-sum_k w~_k grad log q(z_k)``
    becomes, by the reparameterization identity ``E[f(z) grad log q(z)] =
    E[df/dz dz/dphi]``, a path term with ``d w~_k / d log w_k = (1 - alpha)
    (w~_k - w~_k^2)``: in all ``sum_k (alpha w~_k + (1 - alpha) w~_k^2)
    grad_z log w_k dz_k``. A hook on the unconstrained draw scales what
    reaches the guide's parameters by ``alpha + (1 - alpha) w~_k``: DReG's
    ``w~_k^2`` at ``alpha = 0``, sticking the landing's ``1 / K`` at
    ``alpha = 1``."""
    weights = torch.softmax((1.0 - alpha) * log_w.detach(), 0)
    u = draw.u
    if u.requires_grad:
        factor = alpha + (1.0 - alpha) * weights
        scale = factor.reshape(factor.shape + (1,) * (u.dim() - 1)).to(u.dtype)
        u.register_hook(lambda g: g * scale)
    return -(weights * log_w).sum()


def _log_mean_exp(t: torch.Tensor) -> torch.Tensor:
    return torch.logsumexp(t, 0) - math.log(t.shape[0])


class RenyiELBO(_WeightedBound):
    """The variational Rényi bound with ``num_particles`` particles.

    ``alpha`` in ``(0, 1)`` interpolates between IWAE (``alpha = 0``) and the
    ELBO (``alpha -> 1``); a negative ``alpha`` gives a looser but still
    lower bound on ``log p(x)`` for one particle and, with many, a
    mass-covering fit. ``alpha = 1`` is the ELBO itself: use
    :class:`~quivers.inference.ELBO`. ``estimator="dreg"`` is the
    doubly-reparameterized gradient, generalized from IWAE to every
    ``alpha`` (see :func:`_dreg_surrogate`).
    """

    name = "Rényi bound"

    estimators = ("reparam", "dreg")

    def __init__(self, alpha: float = 0.0, num_particles: int = 2, *, estimator: str = "reparam") -> None:
        super().__init__(num_particles, estimator=estimator)
        try:
            a = float(alpha)
        except (TypeError, ValueError):
            raise QuiversTypeError(f"alpha must be a number, got {alpha!r}") from None
        if not math.isfinite(a) or a == 1.0:
            raise QuiversTypeError(
                f"alpha must be a finite number other than 1 (the ELBO), got {alpha!r}", hint="use ELBO for alpha = 1"
            )
        self.alpha = a

    def bound(self, log_w: torch.Tensor) -> torch.Tensor:
        return _log_mean_exp((1.0 - self.alpha) * log_w) / (1.0 - self.alpha)


class IWAE(RenyiELBO):
    """The importance-weighted bound ``log mean_k w_k`` (Rényi at ``alpha = 0``)."""

    name = "IWAE bound"

    estimators = ("reparam", "dreg")

    def __init__(self, num_particles: int = 8, *, estimator: str = "reparam") -> None:
        super().__init__(0.0, num_particles, estimator=estimator)

    def bound(self, log_w: torch.Tensor) -> torch.Tensor:
        return _log_mean_exp(log_w)


class CUBO(_WeightedBound):
    """The chi upper bound ``1 / n * log mean_k w_k^n`` (``n >= 1``), minimized."""

    name = "CUBO"
    sign = 1.0

    def __init__(self, n: float = 2.0, num_particles: int = 8) -> None:
        super().__init__(num_particles)
        try:
            order = float(n)
        except (TypeError, ValueError):
            raise QuiversTypeError(f"n must be a number, got {n!r}") from None
        if not (math.isfinite(order) and order >= 1.0):
            raise QuiversTypeError(f"n must be at least 1 for an upper bound, got {n!r}")
        self.n = order

    def bound(self, log_w: torch.Tensor) -> torch.Tensor:
        return _log_mean_exp(self.n * log_w) / self.n


class RWS(ELBO):
    """Reweighted wake-sleep (Bornschein and Bengio, 2015; Le et al., 2019)
    with ``num_particles`` particles.

    The model's parameters follow the IWAE gradient (wake-theta),
    ``sum_k w~_k grad log p(x, z_k)``; the guide's follow the
    self-normalized importance estimate of ``-grad KL(p(z | x) || q(z))``
    (wake-phi), ``sum_k w~_k grad log q(z_k)`` with the draws held fixed,
    where ``w~`` are the normalized importance weights. No gradient passes
    through the draws, so sampled discrete latents need no relaxation and
    no baseline, and the guide is fitted to cover the posterior's mass.
    The reported loss is ``-IWAE_K``; with one particle it is the ELBO,
    draw for draw, as Pyro's ``ReweightedWakeSleep`` estimates it.

    Examples
    --------
    >>> import torch
    >>> from quivers.categories.finset import FinSet
    >>> from quivers.distributions import Normal
    >>> from quivers.programs import Program, observe, sample, var
    >>> from quivers.inference import AutoNormalGuide
    >>> I = FinSet("I", 1)
    >>> prog = Program("p", I, I, [sample("mu", None, Normal(0.0, 1.0)),
    ...                            observe("y", I, Normal(var("mu"), 1.0))])
    >>> guide = AutoNormalGuide(prog, observed_names={"y"})
    >>> surrogate, value = RWS(num_particles=8).differentiable_loss(prog, guide, None, {"y": torch.tensor([0.5])})
    >>> surrogate.backward()
    >>> bool(guide.loc.grad.abs() > 0)
    True
    """

    name = "RWS"
    estimators = ("reparam",)

    def __init__(self, num_particles: int = 8) -> None:
        super().__init__(num_particles)

    def _draw(self, guide: Any) -> Any:
        """The guide's particles held fixed, with ``log q`` differentiable
        in the guide's parameters at them."""
        draw = guide(self.num_particles)
        if getattr(draw, "u", None) is None or getattr(draw, "log_base", None) is None:
            raise QuiversTypeError(
                f"RWS needs a guide that draws through a base distribution (an automatic guide); "
                f"{type(guide).__name__} does not expose its unconstrained draw"
            )
        u = draw.u.detach()
        minus_logdet = (draw.log_q - draw.log_base - draw.log_q_discrete).detach()
        log_q = guide.log_prob(u) + minus_logdet + draw.log_q_discrete
        latents = {k: v.detach() if isinstance(v, torch.Tensor) else v for k, v in draw.latents.items()}
        return type(draw)(latents, log_q, draw.log_q_discrete, u, None)

    def differentiable_loss(
        self,
        model: Program,
        guide: Any,
        x: Any = None,
        observations: Mapping[str, Any] | None = None,
        subsample: Mapping[str, int] | None = None,
    ) -> tuple[torch.Tensor, float]:
        """The wake-theta plus wake-phi surrogate, and the value of ``-IWAE_K``."""
        if isinstance(model, MorphismModule):  # no latents: wake-theta is the exact log density's gradient
            return ELBO.differentiable_loss(self, model, guide, x, observations, subsample)
        draw, neg_log_w, model = self._particles(model, guide, x, observations, subsample)
        log_w = -neg_log_w
        value = -float(_log_mean_exp(log_w.detach()))
        self._check_finite(value, self.name, model, x, observations, draw)
        weights = torch.softmax(log_w.detach(), 0)
        log_p = log_w + draw.log_q  # the model's log joint at the fixed draws
        return -(weights * (log_p + draw.log_q)).sum(), value


ReweightedWakeSleep = RWS
