"""Automatic guides: variational families over a program's latents.

Every guide lives on the unconstrained space of the program's sampled
continuous latents (see :mod:`quivers.inference.layout`); marginalized
latents never appear in a guide, since the model integrates them out
exactly. Sampled discrete latents get a categorical factor with learnable
logits (their gradients come from the score-function term of the ELBO).

- :class:`AutoNormalGuide`: mean-field normal (Pyro's ``AutoNormal``).
- :class:`AutoDelta`: a point mass (MAP estimation).
- :class:`AutoMultivariateNormal`: full-rank normal.
- :class:`AutoLowRankMultivariateNormal`: low rank plus diagonal.

As in Pyro, :meth:`AutoGuide.median`, :meth:`AutoGuide.quantiles` and
:meth:`AutoGuide.sample_posterior` return dicts keyed by site name, in the
constrained space.

Examples
--------
>>> import torch
>>> from quivers.categories.finset import FinSet
>>> from quivers.distributions import HalfNormal, Normal
>>> from quivers.programs import Program, sample, observe, var
>>> I = FinSet("I", 3)
>>> prog = Program("p", I, I, [sample("mu", None, Normal(0.0, 1.0)),
...                            observe("y", I, Normal(var("mu"), 1.0))])
>>> guide = AutoNormalGuide(prog, observed_names={"y"})
>>> draw = guide(num_particles=4)
>>> draw.latents["mu"].shape, draw.log_q.shape
(torch.Size([4]), torch.Size([4]))
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Distribution, constraints

from quivers.errors import QuiversError, QuiversTypeError, UnknownNameError
from quivers.inference.layout import Layout
from quivers.programs import Program, Site

__all__ = [
    "GuideDraw",
    "AutoGuide",
    "AutoNormalGuide",
    "AutoNormal",
    "AutoDelta",
    "AutoMultivariateNormal",
    "AutoLowRankMultivariateNormal",
]

@dataclass
class GuideDraw:
    """Draws from a guide: constrained latents with a leading particle axis,
    their log density under the guide, and the part of it that belongs to
    discrete sites (the score-function term).

    ``u`` is the unconstrained draw and ``log_base`` its log density under
    the guide's base distribution (the part of ``log_q`` that depends on the
    guide's parameters other than through the draw); the path-derivative
    estimators recompute it with the parameters held fixed. Guides that do
    not draw through a base distribution leave them ``None``."""

    latents: dict[str, torch.Tensor]
    log_q: torch.Tensor
    log_q_discrete: torch.Tensor
    u: torch.Tensor | None = None
    log_base: torch.Tensor | None = None

def _num_values(site: Site) -> int:
    support = site.support()
    if support is constraints.boolean:
        return 2
    if isinstance(support, constraints.integer_interval):
        return int(support.upper_bound) - int(support.lower_bound) + 1
    raise QuiversTypeError(
        f"discrete latent `{site.name}` has unbounded support {support}; a guide cannot enumerate it",
        hint=f"marginalize `{site.name}` or give it a bounded family",
    )

def _covered(model: Program, latents: list[Site], names: Iterable[str] | None) -> list[Site]:
    """The latents among ``latents`` that ``names`` picks (all by default),
    in the program's order."""
    if names is None:
        return latents
    names = [names] if isinstance(names, str) else list(names)
    if not names:
        raise QuiversTypeError("a guide over no latents: `sites` is empty")
    known = {s.name for s in latents}
    for name in names:
        if name not in known:
            raise UnknownNameError(
                f"`{name}` is no latent of `{model.name}` a guide can cover (observed, or not a site)",
                name=name, candidates=sorted(known),
            )
    picked = set(names)
    return [s for s in latents if s.name in picked]


class AutoGuide(nn.Module):
    """Base of the automatic guides.

    Parameters
    ----------
    model
        The program to approximate the posterior of.
    observed_names
        Sites observed in the data (never part of the guide).
    init_scale
        Initial scale of the unconstrained posterior.
    sites
        The latents this guide covers (default all of them): a guide over
        some of them is one block of a composed guide
        (:func:`~quivers.inference.compose_guides`).
    """

    # whether log q counts the Jacobian of the map to constrained values (a
    # density on the constrained space); a point mass has none
    _jacobian = True
    # whether the class, the observed names, init_scale and options() rebuild it
    rebuildable = True

    def __init__(
        self,
        model: Program,
        observed_names: Iterable[str] = (),
        init_scale: float = 0.1,
        *,
        sites: Iterable[str] | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(model, Program):
            raise QuiversTypeError(f"a guide needs a quivers Program, got {type(model).__name__}")
        observed = set(observed_names)
        for name in observed:
            if name not in model.sites:
                raise UnknownNameError(f"observed name `{name}` is no site of `{model.name}`", name=name, candidates=model.sites)
        self._model = (model,)  # a tuple keeps the model's parameters out of the guide's
        sites = _covered(model, model.latent_sites(observed), sites)
        self.discrete_sites = [s for s in sites if s.discrete]
        self.layout = Layout([s for s in sites if not s.discrete], model.parameters_of)
        self.init_scale = init_scale
        self.logits = nn.ParameterDict(
            {s.name: nn.Parameter(torch.zeros(*s.shape, _num_values(s))) for s in self.discrete_sites}
        )
        self._init_loc = self._initial_loc(model)

    @property
    def model(self) -> Program:
        return self._model[0]

    def options(self) -> dict[str, Any]:
        """The options this guide was built with beyond the model, the
        observed names and ``init_scale`` (plain values: checkpoints and
        saved fits rebuild the guide from them)."""
        return {}

    @property
    def dim(self) -> int:
        return self.layout.dim

    def _initial_loc(self, model: Program) -> torch.Tensor:
        """Pyro's ``init_to_median``: the median of prior draws, mapped to
        unconstrained space; zeros where the prior cannot be drawn without
        data (programs with index maps)."""
        if self.layout.dim == 0:
            return torch.zeros(0)
        try:
            draws = model.sample(None, sample_shape=(15,))
        except QuiversError:
            return torch.zeros(self.layout.dim)
        u = self.layout.pack({n: draws[n] for n in self.layout.names})
        u = u.reshape(-1, self.layout.dim)
        u = torch.where(torch.isfinite(u), u, torch.zeros_like(u))
        return u.median(0).values.to(torch.get_default_dtype())

    # ---------------------------------------------------------- subclasses

    def base(self) -> Distribution:
        """The guide's distribution over the unconstrained vector."""
        raise NotImplementedError

    def _base_draw(self, num: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``num`` reparameterized unconstrained draws ``u`` and their log
        density under the guide's base distribution."""
        base = self.base()
        u = base.rsample((num,))
        return u, base.log_prob(u)

    def _transform_draws(self, u: torch.Tensor, log_base: torch.Tensor, num: int) -> GuideDraw:
        latents, logdet = self.layout.unpack(u)
        log_q = log_base - logdet if self._jacobian else log_base
        log_q_discrete = log_q.new_zeros(log_q.shape)
        for s in self.discrete_sites:
            cat = torch.distributions.Categorical(logits=self.logits[s.name])
            z = cat.sample((num,))
            lp = cat.log_prob(z).reshape(num, -1).sum(-1)
            latents[s.name] = z
            log_q_discrete = log_q_discrete + lp
        if self.discrete_sites:
            log_q = log_q + log_q_discrete
        return GuideDraw(latents, log_q, log_q_discrete, u, log_base)

    def stopped_log_prob(self, u: torch.Tensor) -> torch.Tensor:
        """The base log density at ``u`` with the guide's parameters held
        fixed: gradients reach only ``u`` (the path derivative of
        sticking-the-landing and DReG; Roeder et al., 2017)."""
        fixed = {name: p.detach() for name, p in self.named_parameters()}
        return torch.func.functional_call(_BaseLogProb(self), {f"guide.{k}": v for k, v in fixed.items()}, (u,))

    def log_prob(self, u: torch.Tensor) -> torch.Tensor:
        """The base log density at a given unconstrained ``u``, differentiable
        in the guide's parameters (the wake-phi term of reweighted wake-sleep)."""
        return self.base().log_prob(u)

    def forward(self, num_particles: int = 1) -> GuideDraw:
        """``num_particles`` reparameterized draws (one batched call)."""
        u, log_base = self._base_draw(num_particles)
        return self._transform_draws(u, log_base, num_particles)

    # ------------------------------------------------------------ summaries

    def _loc(self) -> torch.Tensor:
        return self.base().mean

    @torch.no_grad()
    def median(self) -> dict[str, torch.Tensor]:
        """The posterior median of each latent, constrained (copies: a
        real-valued site's median would otherwise be a view of the guide's
        parameters, and change as training goes on)."""
        out = {k: v.clone() for k, v in self.layout.constrain(self._loc().detach()).items()}
        for s in self.discrete_sites:
            out[s.name] = self.logits[s.name].argmax(-1)
        return out

    @torch.no_grad()
    def quantiles(self, qs: Sequence[float]) -> dict[str, torch.Tensor]:
        """Marginal quantiles of each latent, constrained; shape ``(len(qs), *site)``."""
        q = torch.as_tensor(list(qs), dtype=self._loc().dtype)
        if bool(((q <= 0) | (q >= 1)).any()):
            raise QuiversTypeError(f"quantiles must lie strictly between 0 and 1, got {list(qs)}")
        z = torch.distributions.Normal(0.0, 1.0).icdf(q).to(q)
        u = self._loc().detach() + z[:, None] * self._marginal_scale().detach()
        return self.layout.constrain(u)

    @torch.no_grad()
    def sample_posterior(self, num_samples: int) -> dict[str, torch.Tensor]:
        """``num_samples`` posterior draws of each latent, constrained."""
        if int(num_samples) <= 0:
            raise QuiversTypeError(f"num_samples must be positive, got {num_samples}")
        return self(int(num_samples)).latents

    def _marginal_scale(self) -> torch.Tensor:
        return self.base().variance.sqrt()

class _BaseLogProb(nn.Module):
    """``guide.log_prob(u)`` as a module call, so that
    :func:`torch.func.functional_call` can swap in fixed parameters."""

    def __init__(self, guide: AutoGuide) -> None:
        super().__init__()
        self.guide = guide

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return self.guide.log_prob(u)


_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def _softplus_inv(x: float) -> float:
    return math.log(math.expm1(x))

class AutoNormalGuide(AutoGuide):
    """Mean-field normal guide on the unconstrained space."""

    def __init__(
        self, model: Program, observed_names: Iterable[str] = (), init_scale: float = 0.1, *,
        sites: Iterable[str] | None = None,
    ) -> None:
        super().__init__(model, observed_names, init_scale, sites=sites)
        self.loc = nn.Parameter(self._init_loc.clone())
        self.raw_scale = nn.Parameter(torch.full((self.dim,), _softplus_inv(init_scale)))

    def base(self) -> Distribution:
        scale = F.softplus(self.raw_scale)
        return torch.distributions.Independent(torch.distributions.Normal(self.loc, scale), 1)

    def _base_draw(self, num: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The normal written out: the draw is ``loc + eps * scale`` (the
        same draw as ``base().rsample``) and its log density that of ``eps``
        less ``sum log scale``."""
        loc = self.loc
        scale = F.softplus(self.raw_scale)
        eps = torch.empty((num, self.dim), dtype=loc.dtype, device=loc.device).normal_()
        u = loc + eps * scale
        # the part without gradients first: one node of autograd fewer
        return u, (-0.5 * (eps * eps).sum(-1) - self.dim * _HALF_LOG_2PI) - scale.log().sum()

    def stopped_log_prob(self, u: torch.Tensor) -> torch.Tensor:
        loc, scale = self.loc.detach(), F.softplus(self.raw_scale.detach())
        eps = (u - loc) / scale
        return (-0.5 * (eps * eps).sum(-1) - self.dim * _HALF_LOG_2PI) - scale.log().sum()

    def _marginal_scale(self) -> torch.Tensor:
        return F.softplus(self.raw_scale)

AutoNormal = AutoNormalGuide

class AutoDelta(AutoGuide):
    """A point mass: SVI with it is MAP estimation (the ELBO's entropy is 0)."""

    _jacobian = False  # a point mass contributes no entropy: the MAP of the constrained density

    def __init__(
        self, model: Program, observed_names: Iterable[str] = (), init_scale: float = 0.1, *,
        sites: Iterable[str] | None = None,
    ) -> None:
        super().__init__(model, observed_names, init_scale, sites=sites)
        self.loc = nn.Parameter(self._init_loc.clone())

    def _base_draw(self, num: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.loc.expand(num, self.dim), self.loc.new_zeros(num)

    def stopped_log_prob(self, u: torch.Tensor) -> torch.Tensor:
        return u.new_zeros(u.shape[:-1])  # log_base is zero: nothing to stop

    def log_prob(self, u: torch.Tensor) -> torch.Tensor:
        raise QuiversTypeError(
            "a point mass has no density to reweight; reweighted wake-sleep needs a guide with a density",
            hint="use AutoNormal or AutoMultivariateNormal",
        )

    def _loc(self) -> torch.Tensor:
        return self.loc

    def _marginal_scale(self) -> torch.Tensor:
        return torch.zeros_like(self.loc)

class AutoMultivariateNormal(AutoGuide):
    """Full-rank normal guide: captures posterior correlations."""

    def __init__(
        self, model: Program, observed_names: Iterable[str] = (), init_scale: float = 0.1, *,
        sites: Iterable[str] | None = None,
    ) -> None:
        super().__init__(model, observed_names, init_scale, sites=sites)
        self.loc = nn.Parameter(self._init_loc.clone())
        self.raw_diag = nn.Parameter(torch.full((self.dim,), _softplus_inv(init_scale)))
        self.offdiag = nn.Parameter(torch.zeros(self.dim, self.dim))

    def scale_tril(self) -> torch.Tensor:
        return torch.tril(self.offdiag, -1) + torch.diag_embed(F.softplus(self.raw_diag))

    def base(self) -> Distribution:
        return torch.distributions.MultivariateNormal(self.loc, scale_tril=self.scale_tril())

class AutoLowRankMultivariateNormal(AutoGuide):
    """Normal guide with covariance ``W W^T + diag(d)`` of rank ``rank``."""

    def __init__(
        self,
        model: Program,
        observed_names: Iterable[str] = (),
        init_scale: float = 0.1,
        rank: int | None = None,
        *,
        sites: Iterable[str] | None = None,
    ) -> None:
        super().__init__(model, observed_names, init_scale, sites=sites)
        rank = rank if rank is not None else max(1, int(round(math.sqrt(self.dim))))
        if rank <= 0:
            raise QuiversTypeError(f"rank must be positive, got {rank}")
        self.loc = nn.Parameter(self._init_loc.clone())
        self.cov_factor = nn.Parameter(torch.randn(self.dim, rank) * init_scale / math.sqrt(rank) * 0.5)
        self.raw_diag = nn.Parameter(torch.full((self.dim,), _softplus_inv(init_scale**2 * 0.75)))

    def options(self) -> dict[str, Any]:
        return {"rank": int(self.cov_factor.shape[1])}

    def base(self) -> Distribution:
        return torch.distributions.LowRankMultivariateNormal(
            self.loc, self.cov_factor, F.softplus(self.raw_diag)
        )
