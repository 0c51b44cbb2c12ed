"""``fit``: the common path from a program and data to a posterior.

One call runs SVI (with an automatic guide) or NUTS, shows a tqdm progress
bar with the loss or the acceptance rate, and returns a :class:`FitResult`
whose :meth:`FitResult.summary` is ArviZ's table (mean, sd, quantiles,
R-hat, ESS) and whose :meth:`FitResult.discrete_posterior` recovers the
marginalized latents.

Examples
--------
>>> import torch
>>> from quivers.categories.finset import FinSet
>>> from quivers.distributions import Normal
>>> from quivers.programs import Program, sample, observe, var
>>> I = FinSet("I", 5)
>>> prog = Program("p", I, I, [sample("mu", None, Normal(0.0, 1.0)),
...                            observe("y", I, Normal(var("mu"), 1.0))])
>>> result = fit(prog, {"y": torch.ones(5)}, steps=600, lr=0.05, seed=0, progress_bar=False)
>>> abs(float(result.samples["mu"].mean()) - 5 / 6) < 0.05  # the conjugate posterior mean
True
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from quivers.errors import QuiversTypeError, UnknownNameError
from quivers.inference.elbo import ELBO
from quivers.inference.guides import (
    AutoDelta,
    AutoGuide,
    AutoLowRankMultivariateNormal,
    AutoMultivariateNormal,
    AutoNormalGuide,
)
from quivers.inference.mcmc import MCMC, NUTS
from quivers.inference.predictive import DiscretePosterior, infer_discrete
from quivers.inference.program_adaptor import ProgramAdaptor
from quivers.inference.svi import SVI
from quivers.programs import Program

__all__ = ["fit", "FitResult", "GUIDES"]

GUIDES: dict[str, type[AutoGuide]] = {
    "normal": AutoNormalGuide,
    "delta": AutoDelta,
    "mvn": AutoMultivariateNormal,
    "lowrank": AutoLowRankMultivariateNormal,
}


@dataclass
class FitResult:
    """What :func:`fit` found.

    ``samples`` maps each latent to posterior draws of shape
    ``(chains, draws, *site)`` (one chain of guide draws for SVI).
    """

    model: Program
    method: str
    samples: dict[str, torch.Tensor]
    observations: Mapping[str, Any]
    x: Any = None
    guide: AutoGuide | None = None
    mcmc: MCMC | None = None
    losses: list[float] = field(default_factory=list)

    def flat_samples(self) -> dict[str, torch.Tensor]:
        return {k: v.reshape((-1,) + tuple(v.shape[2:])) for k, v in self.samples.items()}

    def to_inference_data(self, log_likelihood: bool = True) -> Any:
        """The posterior as ``arviz.InferenceData``: posterior, sample
        statistics (NUTS), observed data, and the pointwise log likelihood
        of each observed site, which ArviZ's ``loo`` and ``waic`` read: per
        row; for a per-row mixture, each row's mixture density; for a
        grouped mixture (``marginalize ... [over=G]``), one term per group,
        the group's mixture density ``log sum_k pi_gk prod_{n in g} p(y_n | k)``
        (its rows share the latent, so they are left out together)."""
        from quivers.inference.diagnostics import to_inference_data

        observed = {
            k: v for k, v in self.observations.items()
            if k in self.model.sites and self.model.sites[k].kind == "observed"
        }
        stats = self.mcmc.get_sample_stats(group_by_chain=True) if self.mcmc is not None else None
        pointwise = None
        if log_likelihood:
            lead = tuple(next(iter(self.samples.values())).shape[:2])
            with torch.no_grad():
                terms = self.model.pointwise_log_likelihood(self.x, self.observations, self.flat_samples())
            pointwise = {}
            for name, t in terms.items():
                rows = _likelihood_rows(self.model, name)
                t = t.reshape((-1,) + tuple(t.shape[t.dim() - len(rows) :]))
                t = t.expand((lead[0] * lead[1],) + tuple(t.shape[1:]))  # a term no draw changes
                pointwise[name] = t.reshape(lead + tuple(t.shape[1:]))
        return to_inference_data(
            self.samples, sample_stats=stats, observed_data=observed, log_likelihood=pointwise
        )

    def summary(self, prob: float = 0.9) -> Any:
        """ArviZ's summary table (a pandas DataFrame). For SVI the draws are
        independent guide draws, so R-hat and ESS are left out."""
        from quivers.inference.diagnostics import summary

        if self.method == "svi":
            import arviz as az

            return az.summary(self.to_inference_data(), kind="stats", hdi_prob=prob)
        return summary(self.to_inference_data(), prob=prob)

    def discrete_posterior(self, seed: int | None = None) -> dict[str, DiscretePosterior]:
        """The posterior of each marginalized latent, averaged over draws."""
        return infer_discrete(self.model, self.flat_samples(), self.x, self.observations, seed=seed)


def _likelihood_rows(model: Program, name: str) -> tuple[int, ...]:
    """The shape of the pointwise terms of observation ``name``: its plate,
    or the ``over`` plate of a grouped block, whose likelihood factors over
    groups, not rows (the latent is shared by every row of a group)."""
    site = model.sites[name]
    if site.blocks:
        over = getattr(model.sites[site.blocks[0]].step, "over", None)
        if over is not None:
            return (over.size,)
    return tuple(site.shape)


def fit(
    model: Program,
    observations: Mapping[str, Any],
    x: Any = None,
    *,
    method: str = "svi",
    guide: str | AutoGuide = "normal",
    steps: int = 3000,
    lr: float = 1e-2,
    num_particles: int = 1,
    discrete: str = "score",
    temperature: float | None = None,
    num_samples: int = 1000,
    num_warmup: int = 1000,
    num_chains: int = 4,
    seed: int | None = None,
    progress_bar: bool = True,
) -> FitResult:
    """Fit ``model`` to ``observations`` by SVI or NUTS.

    Parameters
    ----------
    method
        ``"svi"`` or ``"nuts"``.
    guide
        For SVI: ``"normal"``, ``"delta"``, ``"mvn"``, ``"lowrank"`` or a guide.
    steps, lr, num_particles
        SVI's number of Adam steps, learning rate and particles per step.
    discrete, temperature
        SVI's estimator for sampled discrete latents: ``"score"`` or
        ``"relaxed"`` with its temperature (see :class:`ELBO`).
    num_samples, num_warmup, num_chains
        Posterior draws to keep (per chain for NUTS), warmup iterations,
        chains.
    seed
        Makes the run reproducible.
    """
    if not isinstance(model, Program):
        raise QuiversTypeError(f"fit needs a quivers Program, got {type(model).__name__}")
    if not isinstance(observations, Mapping):
        raise QuiversTypeError(f"observations must be a dict of site names to data, got {type(observations).__name__}")
    observed = {k for k in observations if k in model.sites and model.sites[k].kind in ("observed", "latent")}
    if method == "svi":
        elbo = ELBO(num_particles=num_particles, discrete=discrete, temperature=temperature)
        return _fit_svi(model, observations, x, guide, observed, steps, lr, elbo, num_samples, seed, progress_bar)
    if discrete != "score" or temperature is not None:
        raise QuiversTypeError(
            f"`discrete` and `temperature` are options of SVI, not of `{method}`",
            hint="NUTS marginalizes discrete latents; sampled ones need SVI",
        )
    if method == "nuts":
        kernel = NUTS(ProgramAdaptor(model, observed_names=observed))
        mcmc = MCMC(kernel, num_warmup=num_warmup, num_samples=num_samples, num_chains=num_chains,
                    seed=seed, progress_bar=progress_bar)
        mcmc.run(x, observations)
        return FitResult(model, "nuts", mcmc.get_samples(group_by_chain=True), observations, x, mcmc=mcmc)
    raise QuiversTypeError(f"unknown method `{method}`; methods are `svi` and `nuts`")


def _fit_svi(model, observations, x, guide, observed, steps, lr, elbo, num_samples, seed, progress_bar):
    from tqdm.auto import tqdm

    if int(steps) <= 0:
        raise QuiversTypeError(f"steps must be positive, got {steps}")
    if seed is not None:
        torch.manual_seed(seed)
    if isinstance(guide, str):
        if guide not in GUIDES:
            raise UnknownNameError(f"unknown guide `{guide}`", name=guide, candidates=GUIDES)
        guide = GUIDES[guide](model, observed_names=observed)
    optimizer = torch.optim.Adam(list(model.parameters()) + list(guide.parameters()), lr=lr)
    svi = SVI(model, guide, optimizer, elbo)
    losses = []
    bar = tqdm(range(int(steps)), desc="svi", disable=None if progress_bar else True, dynamic_ncols=True)
    for i in bar:
        losses.append(svi.step(x, observations))
        if not bar.disable and (i % 50 == 0 or i == steps - 1):
            bar.set_postfix(loss=f"{losses[-1]:.4g}", refresh=False)
    draws = guide.sample_posterior(num_samples)
    samples = {k: v.unsqueeze(0) for k, v in draws.items()}
    return FitResult(model, "svi", samples, observations, x, guide=guide, losses=losses)
