"""The benchmarked models: QVR sources, simulated data, and the parts of the
hand-written baselines they share.

The hand-written baselines fit the same model with the same variational
family as quivers: a mean-field normal on the unconstrained space (each
positive latent through ``exp``, with its log Jacobian), one reparameterized
particle, Adam (torch's fused one, which ``fit()`` gives quivers), the loss
returned as a float after each step. They start from quivers' own initial
guide parameters, so both run the same arithmetic on the same numbers.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["gmm_source", "grouped_source", "simulate_gmm", "simulate_grouped", "MeanField", "LOG_2PI",
           "numpyro_gmm_model"]

LOG_2PI = math.log(2 * math.pi)
HALF_LOG_2PI = 0.5 * LOG_2PI
LOG_2 = math.log(2.0)


def gmm_source(n: int, k: int) -> str:
    """The seed chapter's Gaussian mixture (examples/gmm.qvr) on ``n`` points and ``k`` components."""
    return f"""object Item : FinSet {n}
object K : FinSet {k}
program gmm : Item -> Item [effects=[Sample, Score, Marginal]]
    sample probs : K <- HalfNormal(1.0)
    sample mu_k : K <- Normal(0.0, 5.0)
    sample sd_k : K <- HalfNormal(1.0)
    marginalize z : K <- Categorical(probs)
        observe y : Item <- Normal(mu_k[z], sd_k[z])
    return y
export gmm
"""


def grouped_source(n: int, g: int, k: int) -> str:
    """The grouped mixture (examples/grouped_mixture.qvr): one component per group."""
    return f"""object Item : FinSet {n}
object G : FinSet {g}
object K : FinSet {k}
program grouped_mixture : Item -> Item [effects=[Sample, Score, Marginal]]
    sample group : Item <- HalfNormal(1.0)
    sample probs : G <- HalfNormal(1.0)
    sample mu_k : K <- Normal(0.0, 5.0)
    sample sd_k : K <- HalfNormal(1.0)
    marginalize z : K <- Categorical(probs) [over=G]
        observe y : Item <- Normal(mu_k[z], sd_k[z]) [via=group]
    return y
export grouped_mixture
"""


def simulate_gmm(n: int, k: int, seed: int = 0) -> torch.Tensor:
    """``n`` points from ``k`` well-separated unit-variance-ish components."""
    g = torch.Generator().manual_seed(seed)
    means = torch.linspace(-3.0 * k, 3.0 * k, k)
    z = torch.randint(k, (n,), generator=g)
    return means[z] + (0.5 + 0.5 * torch.rand(k, generator=g))[z] * torch.randn(n, generator=g)


def simulate_grouped(n: int, groups: int, k: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` points in ``groups`` groups, each group drawn from one of ``k`` components."""
    g = torch.Generator().manual_seed(seed)
    means = torch.linspace(-3.0 * k, 3.0 * k, k)
    group = torch.randint(groups, (n,), generator=g)
    zg = torch.randint(k, (groups,), generator=g)
    y = means[zg[group]] + torch.randn(n, generator=g)
    return y, group


class MeanField:
    """A hand-written mean-field normal guide over a flat unconstrained vector.

    ``draw()`` returns the vector ``u`` (one particle) and ``log q(u)``,
    Normal's log density written out as a user would.
    """

    def __init__(self, loc: torch.Tensor, raw_scale: torch.Tensor) -> None:
        self.loc = loc.detach().clone().requires_grad_()
        self.raw_scale = raw_scale.detach().clone().requires_grad_()

    def params(self) -> list[torch.Tensor]:
        return [self.loc, self.raw_scale]

    def draw(self) -> tuple[torch.Tensor, torch.Tensor]:
        scale = F.softplus(self.raw_scale)
        eps = torch.randn_like(self.loc)
        u = self.loc + scale * eps
        log_q = (-0.5 * ((u - self.loc) / scale) ** 2 - scale.log() - HALF_LOG_2PI).sum()
        return u, log_q


def half_normal_lp(x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """Summed HalfNormal(scale) log density of positive ``x``."""
    return (LOG_2 - HALF_LOG_2PI - math.log(scale) - 0.5 * (x / scale) ** 2).sum()


def normal_lp(x: torch.Tensor, loc: float, scale: float) -> torch.Tensor:
    """Summed Normal(loc, scale) log density."""
    return (-HALF_LOG_2PI - math.log(scale) - 0.5 * ((x - loc) / scale) ** 2).sum()


def numpyro_gmm_model(k: int):
    """The seed mixture written in NumPyro (``z`` summed out by
    ``MixtureSameFamily``); JAX and NumPyro are imported when it runs."""

    def model(y):
        import jax.numpy as jnp
        import numpyro
        import numpyro.distributions as nd

        probs = numpyro.sample("probs", nd.HalfNormal(jnp.ones(k)).to_event(1))
        mu = numpyro.sample("mu_k", nd.Normal(jnp.zeros(k), 5.0).to_event(1))
        sd = numpyro.sample("sd_k", nd.HalfNormal(jnp.ones(k)).to_event(1))
        mix = nd.MixtureSameFamily(nd.Categorical(probs=probs / probs.sum()), nd.Normal(mu, sd))
        with numpyro.plate("Item", y.shape[0]):
            numpyro.sample("y", mix, obs=y)

    return model
