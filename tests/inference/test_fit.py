"""The high-level fit: SVI and NUTS paths, summaries, discrete posteriors."""

from __future__ import annotations

import pytest
import torch

from quivers.categories.finset import FinSet
from quivers.distributions import Categorical, HalfNormal, Normal
from quivers.errors import QuiversError
from quivers.inference import fit
from quivers.programs import Program, marginalize, observe, sample, var


def gmm(n: int) -> Program:
    Item, K = FinSet("Item", n), FinSet("K", 2)
    mu, sd, z = var("mu_k"), var("sd_k"), var("z")
    return Program("gmm", Item, Item, [
        sample("probs", K, HalfNormal(1.0)),
        sample("mu_k", K, Normal(0.0, 5.0)),
        sample("sd_k", K, HalfNormal(1.0)),
        marginalize("z", K, Categorical(var("probs")), [observe("y", Item, Normal(mu[z], sd[z]))]),
    ])


def data(n=150):
    torch.manual_seed(0)
    z = torch.bernoulli(torch.full((n,), 0.6)).long()
    return torch.randn(n) * 0.5 + torch.tensor([-2.0, 2.0])[z], z


@pytest.mark.parametrize("guide", ["normal", "delta", "mvn", "lowrank"])
def test_fit_svi_with_each_guide(guide):
    y, z = data()
    result = fit(gmm(150), {"y": y}, guide=guide, steps=1500, lr=0.02, num_samples=200, seed=1, progress_bar=False)
    mu = result.samples["mu_k"].mean((0, 1))
    torch.testing.assert_close(mu.sort().values, torch.tensor([-2.0, 2.0]), atol=0.2, rtol=0)
    assert result.losses[-1] < result.losses[0]
    table = result.summary()
    assert {"mean", "sd"} <= set(table.columns)
    assert "mu_k[0]" in table.index
    post = result.discrete_posterior(seed=0)["z"]
    order = mu.argsort()
    labels = torch.argsort(order)[post.map.reshape(-1)]
    assert float((labels == z).float().mean()) > 0.95


def test_fit_nuts_reports_rhat_and_ess():
    y, _ = data(60)
    result = fit(gmm(60), {"y": y}, method="nuts", num_warmup=150, num_samples=150, num_chains=2, seed=0,
                 progress_bar=False)
    assert result.samples["mu_k"].shape == (2, 150, 2)
    table = result.summary()
    assert {"r_hat", "ess_bulk", "ess_tail"} <= set(table.columns)
    idata = result.to_inference_data()
    assert set(idata.groups()) >= {"posterior", "sample_stats", "observed_data", "log_likelihood"}
    assert dict(idata.log_likelihood["y"].sizes)["chain"] == 2
    import arviz as az

    assert az.loo(idata).elpd_loo < 0  # ArviZ reads the per-row mixture densities


def test_fit_bad_input():
    y, _ = data(10)
    with pytest.raises(QuiversError, match="unknown method `hmcc`"):
        fit(gmm(10), {"y": y}, method="hmcc")
    with pytest.raises(QuiversError, match="did you mean `normal`"):
        fit(gmm(10), {"y": y}, guide="normall", steps=1)
    with pytest.raises(QuiversError, match="observation `y`"):
        fit(gmm(10), {"y": torch.zeros(11)}, steps=1, progress_bar=False)
