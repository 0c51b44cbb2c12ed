"""Prior and posterior predictive draws, and the posterior of marginalized
latents averaged over posterior draws.

``Predictive(model, guide=...)`` or ``Predictive(model, posterior_samples=...)``
draws latents from the posterior and then every observed site afresh from
the model, as Pyro's ``Predictive`` does; with neither it draws from the
prior. Data that are not observations (index maps, covariates conditioned
on) are kept.

:func:`infer_discrete` gives, for each marginalized latent, its exact
posterior responsibilities averaged over posterior draws of the other
latents and the MAP assignment: the recovery of discrete parameters that
Stan's user's guide describes for mixtures.

Examples
--------
>>> import torch
>>> from quivers.categories.finset import FinSet
>>> from quivers.distributions import Normal
>>> from quivers.programs import Program, sample, observe, var
>>> I = FinSet("I", 3)
>>> prog = Program("p", I, I, [sample("mu", None, Normal(0.0, 1.0)),
...                            observe("y", I, Normal(var("mu"), 1.0))])
>>> draws = Predictive(prog, num_samples=5)()
>>> draws["y"].shape, draws["mu"].shape
(torch.Size([5, 3]), torch.Size([5]))
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from quivers.errors import DataError, QuiversTypeError, ShapeError, UnknownNameError
from quivers.programs import MarkovStep, Program
from quivers.programs.data import check_names, check_one_data_set, check_value

__all__ = ["Predictive", "DiscretePosterior", "infer_discrete"]


def _keep_non_observed(model: Program, observations: Mapping[str, Any] | None) -> dict[str, Any]:
    """The data a predictive draw conditions on. Observations of observed
    sites are redrawn, not used, but are still checked: bad data is an
    error wherever it is passed."""
    if observations is None:
        return {}
    check_names(observations, model.sites, "observations")
    check_one_data_set(observations, model.sites, "the posterior draws of Predictive")
    for k, v in observations.items():
        if model.sites[k].kind == "observed":
            check_value(model.sites[k], v, "observation")
    return {k: v for k, v in observations.items() if model.sites[k].kind != "observed"}


def _num_draws(samples: Mapping[str, torch.Tensor]) -> int:
    sizes = {int(v.shape[0]) for v in samples.values() if v.dim() > 0}
    if len(sizes) != 1:
        raise ShapeError(f"posterior samples must share one leading draw axis, got sizes {sorted(sizes)}")
    return sizes.pop()


class Predictive:
    """Predictive draws of a program's sites.

    Parameters
    ----------
    model
        The program.
    guide
        A fitted guide to draw latents from.
    posterior_samples
        Posterior draws (e.g. ``mcmc.get_samples()``), each with a leading
        draw axis.
    num_samples
        Number of draws (required without ``posterior_samples``).
    return_sites
        Names to return (all sites when omitted).
    """

    def __init__(
        self,
        model: Program,
        guide: Any = None,
        posterior_samples: Mapping[str, torch.Tensor] | None = None,
        num_samples: int | None = None,
        return_sites: Iterable[str] | None = None,
    ) -> None:
        if guide is not None and posterior_samples is not None:
            raise QuiversTypeError("give either a guide or posterior_samples, not both")
        if posterior_samples is None and num_samples is None:
            raise QuiversTypeError("num_samples is needed unless posterior_samples are given")
        if num_samples is not None and int(num_samples) <= 0:
            raise QuiversTypeError(f"num_samples must be positive, got {num_samples}")
        if posterior_samples is not None:
            for name in posterior_samples:
                if name not in model.sites:
                    raise UnknownNameError(
                        f"posterior sample `{name}` is no site of `{model.name}`", name=name, candidates=model.sites
                    )
                if model.sites[name].kind in ("data", "index"):
                    raise DataError(
                        f"posterior sample `{name}` is data of `{model.name}`, which has no posterior",
                        hint="pass it with the observations when calling the Predictive",
                    )
        self.model, self.guide = model, guide
        self.posterior_samples = posterior_samples
        self.num_samples = num_samples
        self.return_sites = None if return_sites is None else list(return_sites)

    @torch.no_grad()
    def __call__(self, x: Any = None, observations: Mapping[str, Any] | None = None) -> dict[str, torch.Tensor]:
        data = _keep_non_observed(self.model, observations)
        if self.guide is not None:
            latents = self.guide.sample_posterior(self.num_samples)
            out = self.model.sample(x, latents=latents, observations=data)
        elif self.posterior_samples is not None:
            latents = {k: v for k, v in self.posterior_samples.items() if self.model.sites[k].kind == "latent"}
            n = _num_draws(latents)
            if self.num_samples is not None and self.num_samples < n:
                latents = {k: v[: self.num_samples] for k, v in latents.items()}
            out = self.model.sample(x, latents=latents, observations=data)
        else:
            out = self.model.sample(x, sample_shape=(self.num_samples,), observations=data)
        if self.return_sites is not None:
            missing = [s for s in self.return_sites if s not in out]
            if missing:
                raise QuiversTypeError(f"return_sites {missing} are not drawn by `{self.model.name}`")
            out = {k: out[k] for k in self.return_sites}
        return out


@dataclass
class DiscretePosterior:
    """The posterior of one marginalized latent.

    ``probs`` has shape ``rows + (|K|,)`` (averaged over posterior draws);
    ``map`` is its argmax; ``draws`` holds one exact draw of the latent per
    posterior draw, shape ``(S,) + rows`` (for a Markov latent, a path
    drawn by forward filtering, backward sampling).
    """

    probs: torch.Tensor
    map: torch.Tensor
    draws: torch.Tensor


@torch.no_grad()
def infer_discrete(
    model: Program,
    posterior_samples: Mapping[str, torch.Tensor],
    x: Any = None,
    observations: Mapping[str, Any] | None = None,
    seed: int | None = None,
) -> dict[str, DiscretePosterior]:
    """Posterior of every marginalized latent, averaged over posterior draws
    of the sampled latents (``posterior_samples``, leading draw axis)."""
    latents = {k: v for k, v in posterior_samples.items() if k in model.sites and model.sites[k].kind == "latent"}
    n = _num_draws(latents) if latents else 1
    check_one_data_set(observations, model.sites, "the posterior draws of infer_discrete")
    resp = model.posterior_latents(x, observations, latents)
    gen = torch.Generator().manual_seed(seed) if seed is not None else None
    out = {}
    for name, r in resp.items():
        rows = model.sites[name].shape
        r = r.reshape((-1,) + tuple(r.shape[r.dim() - len(rows) - 1 :])) if latents else r.unsqueeze(0)
        r = r.expand((n,) + tuple(r.shape[1:])) if r.shape[0] == 1 and n > 1 else r
        probs = r.mean(0)
        # Drawn on the CPU, where the seeded generator lives: the same seed
        # then gives the same draws whichever device the model is on.
        flat = r.reshape(-1, r.shape[-1]).to("cpu", torch.float64)
        draws = torch.multinomial(flat, 1, generator=gen).reshape(r.shape[:-1]).to(r.device)
        if isinstance(model.sites[name].step, MarkovStep) or name in model.summed:
            # a path, or sites summed by a plan: their values are not independent across rows
            draws = _paths(model, name, x, observations, latents, seed)
        out[name] = DiscretePosterior(probs, probs.argmax(-1), draws)
    return out


def _paths(model: Program, name: str, x: Any, observations, latents, seed: int | None) -> torch.Tensor:
    """One posterior path of the Markov latent ``name`` per posterior draw
    (forward filtering, backward sampling): the states of a path are not
    independent, so draws from each step's marginal would not be one."""
    with torch.random.fork_rng():
        if seed is not None:
            torch.manual_seed(seed)
        path = model.sample(x, latents=latents, observations=observations)[name]
    return path if latents else path.unsqueeze(0)
