"""The Laplace approximation: a normal at the posterior mode with the
curvature of the log posterior there.

:class:`AutoLaplaceApproximation` is a point mass at ``loc`` in the
unconstrained space whose objective counts the Jacobian of the map to
constrained values, so SVI with it finds the mode of the posterior density
of the unconstrained vector ``u`` (Pyro's ``AutoLaplaceApproximation``).
:meth:`AutoLaplaceApproximation.laplace_approximation` polishes that mode
with L-BFGS, takes the Hessian ``H`` of ``log p(y, x(u)) + log |dx/du|`` at
it by autograd, and returns an
:class:`~quivers.inference.AutoMultivariateNormal` with mean the mode and
covariance ``(-H)^-1``; a Hessian that is not negative definite (no mode:
a flat or improper direction, or an optimization that had not arrived) is
an :class:`~quivers.errors.InvalidValueError` naming the latents whose
curvature fails.

Laws
----
- On a Gaussian posterior (a linear-Gaussian model) the approximation is
  exact: its mean and covariance are the posterior's.
- The returned guide's ``loc`` is a stationary point of the unconstrained
  log posterior (its gradient vanishes up to the optimizer's tolerance).

Examples
--------
>>> import torch
>>> from quivers.categories.finset import FinSet
>>> from quivers.distributions import Normal
>>> from quivers.programs import Program, sample, observe, var
>>> I = FinSet("I", 4)
>>> prog = Program("p", I, I, [sample("mu", None, Normal(0.0, 1.0)),
...                            observe("y", I, Normal(var("mu"), 1.0))])
>>> guide = AutoLaplaceApproximation(prog, observed_names={"y"})
>>> normal = guide.laplace_approximation(None, {"y": torch.ones(4)})
>>> round(float(normal.loc.detach()), 4), round(float(normal.scale_tril().detach()[0, 0] ** 2), 4)  # 4/5 and 1/5 exactly
(0.8, 0.2)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn

from quivers.errors import InvalidValueError, QuiversTypeError
from quivers.inference.guides import AutoGuide, AutoMultivariateNormal, _softplus_inv
from quivers.programs import Program

__all__ = ["AutoLaplaceApproximation"]


class AutoLaplaceApproximation(AutoGuide):
    """A point mass at the mode of the unconstrained posterior, and the
    normal of the Laplace approximation there (see the module's text).

    Parameters
    ----------
    model, observed_names, init_scale, sites
        As for every automatic guide; ``init_scale`` is unused (a point
        mass has none) and kept for a common signature.
    """

    def __init__(
        self, model: Program, observed_names: Iterable[str] = (), init_scale: float = 0.1, *,
        sites: Iterable[str] | None = None,
    ) -> None:
        super().__init__(model, observed_names, init_scale, sites=sites)
        if self.discrete_sites:
            names = [s.name for s in self.discrete_sites]
            raise QuiversTypeError(
                f"a Laplace approximation needs continuous latents, but {names} are sampled discrete latents",
                hint="marginalize them (exactly), or use AutoNormal",
            )
        self.loc = nn.Parameter(self._init_loc.clone())

    def _base_draw(self, num: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.loc.expand(num, self.dim), self.loc.new_zeros(num)

    def stopped_log_prob(self, u: torch.Tensor) -> torch.Tensor:
        return u.new_zeros(u.shape[:-1])

    def log_prob(self, u: torch.Tensor) -> torch.Tensor:
        raise QuiversTypeError(
            "a point mass has no density to reweight; take its laplace_approximation() first",
        )

    def _loc(self) -> torch.Tensor:
        return self.loc

    def _marginal_scale(self) -> torch.Tensor:
        return torch.zeros_like(self.loc)

    def log_density(self, u: torch.Tensor, x: Any = None, observations: Mapping[str, Any] | None = None) -> torch.Tensor:
        """The log posterior density of the unconstrained ``u`` (up to the
        evidence): the log joint at ``u``'s constrained values plus the log
        Jacobian of the map."""
        latents, logdet = self.layout.unpack(u[None])
        log_joint = self.model.log_joint(x, observations, latents)
        return log_joint.reshape(1, -1).sum(-1)[0] + logdet[0]

    def laplace_approximation(
        self,
        x: Any = None,
        observations: Mapping[str, Any] | None = None,
        *,
        map_steps: int = 100,
    ) -> AutoMultivariateNormal:
        """The Laplace approximation at the mode: an
        :class:`~quivers.inference.AutoMultivariateNormal` with mean the
        mode and covariance the inverse of the negated Hessian.

        ``map_steps`` L-BFGS iterations first move ``loc`` to the mode
        (from wherever SVI left it; 0 keeps it where it is).

        Raises
        ------
        InvalidValueError
            The negated Hessian is not positive definite: no mode at
            ``loc`` (the latents whose coordinates fail are named).
        """
        if int(map_steps) < 0:
            raise QuiversTypeError(f"map_steps must be at least 0, got {map_steps}")
        if int(map_steps) > 0:
            self._find_mode(x, observations, int(map_steps))
        loc = self.loc.detach()
        hessian = torch.autograd.functional.hessian(lambda u: self.log_density(u, x, observations), loc)
        precision = -0.5 * (hessian + hessian.T)
        chol, info = torch.linalg.cholesky_ex(precision)
        if int(info) != 0 or not bool(torch.isfinite(precision).all()):
            raise InvalidValueError(
                f"the Laplace approximation has no normal at `loc`: the log posterior's Hessian is not negative "
                f"definite there (curvature fails along {self._failing(precision)})",
                hint="fit the MAP longer (map_steps, or more SVI steps), or give the flat latents a proper prior",
            )
        cov = torch.cholesky_inverse(chol)
        scale_tril = torch.linalg.cholesky(0.5 * (cov + cov.T))
        guide = AutoMultivariateNormal(self.model, self._observed(), self.init_scale)
        with torch.no_grad():
            guide.loc.copy_(loc)
            diag = scale_tril.diagonal()
            guide.raw_diag.copy_(torch.tensor([_softplus_inv(float(d)) for d in diag], dtype=diag.dtype))
            guide.offdiag.copy_(torch.tril(scale_tril, -1))
        return guide

    def _observed(self) -> list[str]:
        covered = set(self.layout.names)
        return [s.name for s in self.model.latent_sites() if s.name not in covered]

    def _failing(self, precision: torch.Tensor) -> str:
        """The latents whose diagonal curvature is not positive, or all of
        them when only a combination fails."""
        diag = precision.diagonal()
        names = [s.name for s in self.layout.slices if not bool((diag[s.start:s.start + s.size] > 0).all())
                 or not bool(torch.isfinite(diag[s.start:s.start + s.size]).all())]
        return ", ".join(f"`{n}`" for n in (names or self.layout.names))

    def _find_mode(self, x: Any, observations: Any, steps: int) -> None:
        optimizer = torch.optim.LBFGS([self.loc], max_iter=steps, line_search_fn="strong_wolfe",
                                      tolerance_grad=1e-10, tolerance_change=1e-14)

        def closure() -> torch.Tensor:
            loss = -self.log_density(self.loc, x, observations)
            # the mode's gradient alone: the model's own parameters are left untouched
            (self.loc.grad,) = torch.autograd.grad(loss, self.loc)
            return loss.detach()

        optimizer.step(closure)
