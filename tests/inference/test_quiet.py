"""A normal run is quiet: fitting a converged model with NUTS and with
SVI, summarizing it, exporting it to ArviZ (with predictive and prior
groups), drawing posterior predictions and plotting it raise no warning at
all, neither quivers' (a ConvergenceWarning) nor a library's (ArviZ's
shape and future warnings, matplotlib's deprecations, torch's), with every
warning turned into an error."""

from __future__ import annotations

import warnings

import matplotlib
import pytest
import torch

from quivers.categories import FinSet
from quivers.distributions import Normal
from quivers.inference import fit
from quivers.programs import Program, observe, sample, var

matplotlib.use("Agg")

Obs = FinSet("Obs", 8)
Y = torch.tensor([4.8, 5.3, 5.1, 4.6, 5.2, 4.9, 5.0, 5.4])


def model() -> Program:
    return Program("normal_mean", Obs, Obs, [sample("mu", None, Normal(0.0, 10.0)),
                                             observe("y", Obs, Normal(var("mu"), 0.5))])


@pytest.mark.parametrize("method, options", [
    ("nuts", dict(num_warmup=200, num_samples=300, num_chains=2)),
    ("svi", dict(steps=600, lr=0.05, num_samples=300)),
])
def test_a_normal_run_raises_no_warning(method, options, tmp_path):
    from quivers.inference.plots import save_plots
    from quivers.results import load_fit

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = fit(model(), {"y": Y}, method=method, seed=0, progress_bar=False, **options)
        table = result.summary()
        idata = result.to_inference_data(posterior_predictive=True, prior=50)
        draws = result.predictive(num_samples=20, seed=0)
        result.save(tmp_path / "fit.nc")
        again = load_fit(tmp_path / "fit.nc", result.model)
        again.summary()
        written = save_plots(result, tmp_path / "plots")
    assert result.diagnostics == [] and float(table["r_hat"].max()) <= 1.01
    assert {"posterior", "log_likelihood", "posterior_predictive", "prior", "prior_predictive"} <= set(idata.groups())
    assert draws["y"].shape == (result.num_chains, 20, 8)
    assert {p.stem for p in written} == {"trace", "posterior", "ppc"}  # one latent: no pair plot
    assert abs(float(result.samples["mu"].mean()) - float(Y.mean()) * 400 / 401) < 0.05


def test_the_summary_of_a_map_fit_is_quiet():
    """A delta guide's draws do not vary: their R-hat is NaN, without
    numpy's warnings of 0/0 on the way."""
    result = fit(model(), {"y": Y}, method="svi", guide="delta", steps=300, lr=0.05, num_samples=50, seed=0,
                 progress_bar=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = result.summary()
    assert table.loc["mu", "sd"] == 0.0 and bool(table["r_hat"].isna().all())
