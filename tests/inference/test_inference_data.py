"""InferenceData as ArviZ users expect it: FinSet dims and coordinates, the
groups, exact draws of marginalized latents, predictive draws, and fits
that round-trip through NetCDF and go on."""

from __future__ import annotations

import warnings
from pathlib import Path

import arviz as az
import numpy as np
import pytest
import torch

from quivers.dsl import loads
from quivers.errors import CheckpointError, ConvergenceWarning, QuiversTypeError
from quivers.inference import fit
from quivers.results import load_fit
from tests.programs.models import seed_mixture

ROOT = Path(__file__).resolve().parents[2]
GMM_SOURCE = (ROOT / "examples" / "gmm.qvr").read_text()


@pytest.fixture(scope="module")
def nuts():
    model, data = seed_mixture()
    init = {"probs": torch.tensor([[0.4, 0.6]] * 4), "mu_k": torch.tensor([[-2.0, 2.0]] * 4),
            "sd_k": torch.tensor([[0.5, 0.7]] * 4)}
    with warnings.catch_warnings():  # a short run: its ESS warnings are tested elsewhere
        warnings.simplefilter("ignore", ConvergenceWarning)
        return fit(model, data, method="nuts", num_warmup=60, num_samples=50, num_chains=4, init=init, seed=0,
                   progress_bar=False)


@pytest.fixture(scope="module")
def svi():
    model, data = seed_mixture()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return fit(model, data, steps=300, lr=0.05, num_samples=100, seed=0, progress_bar=False)


def test_dims_are_the_finsets_with_coordinates(nuts):
    idata = nuts.to_inference_data()
    assert set(idata.groups()) == {"posterior", "sample_stats", "log_likelihood", "observed_data"}
    post = idata.posterior
    assert dict(post["mu_k"].sizes) == {"chain": 4, "draw": 50, "K": 2}
    assert dict(post["z"].sizes) == {"chain": 4, "draw": 50, "Item": 40}
    assert post["K"].values.tolist() == [0, 1] and post["Item"].values.tolist() == list(range(40))
    assert dict(idata.log_likelihood["y"].sizes) == {"chain": 4, "draw": 50, "Item": 40}
    assert dict(idata.observed_data["y"].sizes) == {"Item": 40}
    assert {"acceptance_rate", "diverging", "energy", "lp", "n_steps", "step_size", "tree_depth"} == set(
        idata.sample_stats.data_vars
    )
    assert idata.posterior.attrs["inference_method"] == "nuts"
    assert az.loo(idata).elpd_loo < 0  # ArviZ reads the per-row mixture densities


def test_predictive_and_prior_groups_where_asked(nuts):
    idata = nuts.to_inference_data(posterior_predictive=True, prior=30)
    assert {"posterior_predictive", "prior", "prior_predictive"} <= set(idata.groups())
    assert dict(idata.posterior_predictive["y"].sizes) == {"chain": 4, "draw": 50, "Item": 40}
    assert dict(idata.prior["mu_k"].sizes) == {"chain": 1, "draw": 30, "K": 2}
    assert dict(idata.prior_predictive["y"].sizes) == {"chain": 1, "draw": 30, "Item": 40}
    assert set(idata.prior.data_vars) == {"probs", "mu_k", "sd_k", "z"}


@pytest.fixture(scope="module")
def overlapping():
    # the seed mixture fitted to points between its two components, whose
    # memberships are uncertain: on the seed's well-separated data nearly
    # every responsibility is 0 or 1, and the draws of the rarer component
    # are too few (about 0.1 expected over all rows and draws) for the
    # normal approximation below
    model, _ = seed_mixture()
    init = {"probs": torch.tensor([[0.4, 0.6]] * 4), "mu_k": torch.tensor([[-1.0, 1.0]] * 4),
            "sd_k": torch.tensor([[0.7, 0.7]] * 4)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return fit(model, {"y": torch.linspace(-1.5, 1.5, 40)}, method="nuts", num_warmup=60, num_samples=50,
                   num_chains=4, init=init, seed=0, progress_bar=False)


def test_marginalized_latent_draws_follow_the_exact_responsibilities(overlapping):
    # Each draw of z comes from the exact conditional given its draw of the
    # continuous latents: its frequencies match the responsibilities
    # averaged over the same draws, up to Monte Carlo error.
    nuts = overlapping
    z = nuts.latent_draws()["z"]
    assert z.shape == (4, 50, 40) and z.dtype == torch.int64
    resp = nuts.model.posterior_latents(None, nuts.observations, nuts.flat_samples())["z"].double()
    onehot = torch.nn.functional.one_hot(z.reshape(-1, 40), 2).double()
    assert torch.equal(torch.as_tensor(nuts.to_inference_data().posterior["z"].values), z)
    freq, probs = onehot.mean(0), resp.mean(0)
    torch.testing.assert_close(probs, nuts.discrete_posterior()["z"].probs.double(), atol=1e-5, rtol=0)
    se = (resp * (1 - resp)).sum(0).sqrt() / resp.shape[0]
    assert float((freq - probs).abs().max()) < 0.15
    # pooled over rows, the deviations standardized by their exact sd are N(0, 1)
    unsure = se[:, 1] > 1e-3
    stat = ((freq - probs)[unsure, 1]).sum() / se[unsure, 1].pow(2).sum().sqrt()
    assert unsure.sum() >= 20 and abs(float(stat)) < 4


def test_grouped_mixture_has_constant_data_and_per_group_terms():
    src = (ROOT / "examples" / "grouped_mixture.qvr").read_text().replace("FinSet 1000", "FinSet 60")
    model = loads(src).morphism
    torch.manual_seed(0)
    data = {"y": torch.randn(60), "group": torch.arange(60) % 20}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        result = fit(model, data, steps=30, num_samples=10, num_chains=2, seed=0, progress_bar=False)
    idata = result.to_inference_data()
    assert dict(idata.constant_data["group"].sizes) == {"Item": 60}
    assert idata.constant_data["group"].dtype == np.int64
    assert dict(idata.log_likelihood["y"].sizes) == {"chain": 2, "draw": 10, "G": 20}
    assert dict(idata.posterior["z"].sizes) == {"chain": 2, "draw": 10, "G": 20}
    assert dict(idata.posterior["probs"].sizes) == {"chain": 2, "draw": 10, "G": 20, "K": 3}


def test_summary_is_arviz_table_with_normalized_weights(nuts, svi):
    for result in (nuts, svi):
        table = result.summary()
        assert list(table.columns) == [
            "mean", "sd", "hdi_3%", "hdi_97%", "mcse_mean", "mcse_sd", "ess_bulk", "ess_tail", "r_hat",
        ]
        assert list(table.index) == ["probs[0]", "probs[1]", "mu_k[0]", "mu_k[1]", "sd_k[0]", "sd_k[1]"]
        assert abs(table.loc["probs[0]", "mean"] + table.loc["probs[1]", "mean"] - 1.0) < 0.0015
    assert svi.samples["mu_k"].shape == (4, 100, 2)  # independent guide draws, laid out as chains


def test_predictive_gives_posterior_predictive_draws(nuts):
    a = nuts.predictive(seed=1)
    assert set(a) == {"y"} and a["y"].shape == (4, 50, 40)
    assert torch.equal(a["y"], nuts.predictive(seed=1)["y"])
    assert nuts.predictive(num_samples=5)["y"].shape == (4, 5, 40)
    # the draws spread over both components
    assert float(a["y"].quantile(0.1)) < -1.0 < 1.0 < float(a["y"].quantile(0.9))


def test_a_saved_nuts_fit_round_trips_and_goes_on(nuts, tmp_path):
    path = tmp_path / "fit.nc"
    nuts.save(path)
    assert set(az.from_netcdf(path).groups()) >= {"posterior", "sample_stats", "log_likelihood", "observed_data"}
    again = load_fit(path)
    assert again.method == "nuts"
    for name, draws in nuts.samples.items():
        assert torch.equal(again.samples[name], draws)
    for name, values in nuts.sample_stats.items():
        assert torch.equal(again.sample_stats[name], values), name
    assert torch.equal(again.observations["y"], nuts.observations["y"])
    assert torch.equal(again.latent_draws()["z"], nuts.latent_draws()["z"])
    assert again.summary().equals(nuts.summary())
    assert again.diagnostics == nuts.diagnostics
    assert again.predictive(num_samples=3)["y"].shape == (4, 3, 40)
    for key in ("step_size", "inverse_mass_matrix", "z"):
        assert torch.equal(again.adaptation[key], nuts.adaptation[key]), key
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        more = again.resume(num_samples=10, seed=1, progress_bar=False)
    assert more.samples["mu_k"].shape == (4, 60, 2) and more.sample_stats["energy"].shape == (4, 60)
    assert torch.equal(more.samples["mu_k"][:, :50], nuts.samples["mu_k"])
    # no new warmup: the chains go on with the adapted step sizes, from where they stopped
    torch.testing.assert_close(more.sample_stats["step_size"][:, 50:], nuts.adaptation["step_size"][:, None].expand(4, 10))
    assert float((more.samples["mu_k"][:, 50:].mean((0, 1)) - torch.tensor([-2.0, 2.0])).abs().max()) < 0.5


def test_a_saved_svi_fit_round_trips_and_goes_on(svi, tmp_path):
    path = tmp_path / "svi.nc"
    svi.save(path)
    again = load_fit(path)
    assert again.method == "svi" and again.losses == svi.losses
    for name, value in svi.guide.median().items():
        assert torch.equal(again.guide.median()[name], value)
    assert again.summary().equals(svi.summary())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        more = again.resume(steps=20, seed=0, progress_bar=False)
    assert len(more.losses) == len(svi.losses) + 20 and more.samples["mu_k"].shape == (4, 100, 2)


def test_loading_into_another_program_is_refused(nuts, tmp_path):
    path = tmp_path / "fit.nc"
    nuts.save(path)
    changed = GMM_SOURCE.replace("FinSet 500", "FinSet 40").replace("Normal(0.0, 5.0)", "Normal(0.0, 3.0)")
    with pytest.raises(CheckpointError, match="different QVR source"):
        load_fit(path, changed)
    az.from_dict(posterior={"a": np.zeros((1, 3))}).to_netcdf(str(tmp_path / "plain.nc"), engine="h5netcdf")
    with pytest.raises(CheckpointError, match="not a saved quivers fit"):
        load_fit(tmp_path / "plain.nc")
    with pytest.raises(QuiversTypeError, match="load_fit needs a Program"):  # named as the user called it
        load_fit(path, 3)


LETS = """
object School : FinSet 3
object K : FinSet 2

program lets : School -> School
    sample mu <- Normal(0.0, 5.0)
    sample tau <- HalfNormal(2.0)
    sample eta : School <- Normal(0.0, 1.0)
    let theta = mu + tau * eta
    sample w : K <- HalfNormal(1.0)
    marginalize z : K <- Categorical(w)
        let shifted = theta + 1.0 * z
        observe y : School <- Normal(shifted, sigma)
    return theta

export lets
"""


def test_lets_are_in_the_posterior_at_each_draw_and_not_read_back_as_draws(tmp_path):
    data = {"y": torch.tensor([1.0, -0.5, 2.0]), "sigma": torch.tensor([1.0, 2.0, 1.5])}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        result = fit(loads(LETS).morphism, data, method="nuts", num_warmup=30, num_samples=20, num_chains=2, seed=0,
                     progress_bar=False)
    post = result.to_inference_data().posterior
    s = result.samples
    expected = s["mu"][..., None] + s["tau"][..., None] * s["eta"]
    np.testing.assert_allclose(post["theta"].values, expected.numpy(), rtol=1e-6)
    assert dict(post["theta"].sizes) == {"chain": 2, "draw": 20, "School": 3}
    assert "shifted" not in post  # it reads the summed-out z: no one value per draw
    result.save(tmp_path / "fit.nc")
    back = load_fit(tmp_path / "fit.nc", model=LETS)
    assert set(back.samples) == set(s) and "theta" in back.to_inference_data().posterior
