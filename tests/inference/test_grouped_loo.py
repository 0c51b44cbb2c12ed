"""Pointwise log likelihoods of grouped mixtures: one term per group.

In ``marginalize z : K <- Categorical(probs) [over=G]`` every row of a group
shares the group's latent, so the likelihood factors over groups, not rows:
the term of group ``g`` is ``log sum_k pi_gk prod_{n: group(n) = g} p(y_n | k)``.
These tests check that ArviZ's ``loo`` and ``waic`` run on the export, and
that the terms are those group densities by brute-force enumeration in
float64.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from quivers.categories.finset import FinSet
from quivers.distributions import Categorical, Normal
from quivers.dsl import load
from quivers.inference import fit
from quivers.programs import Program, marginalize, observe, sample, var

from tests.programs import models

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def brute_force(y, group, probs, mu, sd) -> torch.Tensor:
    """Each group's log marginal likelihood, enumerating its latent value by
    value with Python loops, in float64."""
    y, probs, mu, sd = (t.double() for t in (y, probs, mu, sd))
    out = []
    for g in range(probs.shape[0]):
        rows = [n for n in range(len(y)) if int(group[n]) == g]
        weights = probs[g] / probs[g].sum()
        per_k = []
        for k in range(len(mu)):
            ll = sum((float(torch.distributions.Normal(mu[k], sd[k]).log_prob(y[n])) for n in rows), 0.0)
            per_k.append(math.log(float(weights[k])) + ll)
        out.append(float(torch.logsumexp(torch.tensor(per_k, dtype=torch.float64), 0)))
    return torch.tensor(out, dtype=torch.float64)


def data(n: int, g: int):
    gen = torch.Generator().manual_seed(4)
    group = torch.arange(n) % g  # every group has rows
    z = torch.randint(0, 2, (g,), generator=gen)
    y = torch.tensor([-2.0, 2.0])[z[group]] + 0.5 * torch.randn(n, generator=gen)
    return y, group


def test_grouped_terms_are_the_groups_mixture_densities():
    y, group = data(24, 6)
    model = models.grouped(24, 6, 2)
    gen = torch.Generator().manual_seed(1)
    latents = {
        "probs": torch.rand(5, 6, 2, generator=gen, dtype=torch.float64) + 0.1,
        "mu_k": torch.randn(5, 2, generator=gen, dtype=torch.float64) * 2,
        "sd_k": torch.rand(5, 2, generator=gen, dtype=torch.float64) + 0.5,
    }
    obs = {"y": y.double(), "group": group}
    terms = model.pointwise_log_likelihood(None, obs, latents)
    assert terms["y"].shape == (5, 6)
    for i in range(5):
        want = brute_force(y, group, latents["probs"][i], latents["mu_k"][i], latents["sd_k"][i])
        torch.testing.assert_close(terms["y"][i], want)
    # the groups' terms add up to the marginal log likelihood of all the data
    total = model.log_joint(None, obs, latents) - _log_prior(latents)
    torch.testing.assert_close(terms["y"].sum(-1), total)


def _log_prior(latents) -> torch.Tensor:
    half = torch.distributions.HalfNormal(torch.tensor(1.0, dtype=torch.float64))
    normal = torch.distributions.Normal(torch.tensor(0.0, dtype=torch.float64), 5.0)
    return (half.log_prob(latents["probs"]).sum((-2, -1)) + normal.log_prob(latents["mu_k"]).sum(-1)
            + half.log_prob(latents["sd_k"]).sum(-1))


def test_fit_exports_one_term_per_group_and_loo_runs():
    import arviz as az

    y, group = data(40, 8)
    model = models.grouped(40, 8, 2)
    obs = {"y": y, "group": group}
    result = fit(model, obs, steps=300, lr=0.05, num_samples=100, num_chains=1, seed=0, progress_bar=False)
    idata = result.to_inference_data()
    ll = idata.log_likelihood["y"]
    assert ll.shape == (1, 100, 8) and ll.dims[-1] == "G"
    draws = result.flat_samples()
    for i in (0, 57, 99):
        want = brute_force(y, group, draws["probs"][i], draws["mu_k"][i], draws["sd_k"][i])
        got = torch.as_tensor(ll.values[0, i], dtype=torch.float64)
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-3)
        assert abs(float(got.sum() - want.sum())) < 1e-2
    loo, waic = az.loo(idata), az.waic(idata)
    assert math.isfinite(loo.elpd_loo) and math.isfinite(waic.elpd_waic)
    assert loo.n_data_points == 8


def test_the_seed_grouped_mixture_exports_to_arviz():
    import arviz as az

    model = load(EXAMPLES / "grouped_mixture.qvr").morphism
    gen = torch.Generator().manual_seed(2)
    group = torch.randint(0, 20, (1000,), generator=gen)
    z = torch.randint(0, 3, (20,), generator=gen)
    y = torch.tensor([-3.0, 0.0, 3.0])[z[group]] + 0.7 * torch.randn(1000, generator=gen)
    result = fit(model, {"y": y, "group": group}, guide="delta", steps=200, lr=0.05, num_samples=20, seed=0,
                 progress_bar=False)
    idata = result.to_inference_data()
    assert idata.log_likelihood["y"].shape == (4, 20, 20)
    assert az.waic(idata).n_data_points == 20


def test_observations_sharing_a_block_have_no_per_component_terms():
    """Two observations in one per-row block: their likelihood is joint, so
    neither keeps the per-component terms recorded inside the block (which
    carry the latent's axis); a lone observation outside keeps its rows."""
    Item, K = FinSet("Item", 5), FinSet("K", 2)
    mu, z = var("mu_k"), var("z")
    model = Program("two", Item, Item, [
        sample("mu_k", K, Normal(0.0, 5.0)),
        marginalize("z", K, Categorical(torch.tensor([0.5, 0.5])), [
            observe("a", Item, Normal(mu[z], 1.0)),
            observe("b", Item, Normal(mu[z], 2.0))]),
        observe("c", Item, Normal(mu[0], 1.0)),
    ])
    obs = {"a": torch.zeros(5), "b": torch.ones(5), "c": torch.ones(5)}
    terms = model.pointwise_log_likelihood(None, obs, {"mu_k": torch.zeros(3, 2)})
    assert set(terms) == {"c"} and terms["c"].shape == (3, 5)
