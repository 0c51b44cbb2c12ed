"""Draws as ArviZ data; the summary table is ArviZ's."""

from __future__ import annotations

import io

import arviz as az
import numpy as np
import pytest
import torch

from quivers.errors import ConvergenceWarning, InvalidValueError, QuiversError, QuiversTypeError, ShapeError
from quivers.inference.diagnostics import summary, to_inference_data
from quivers.inference.mcmc import MCMC, NUTS
from tests.inference.mcmc.targets import GammaAdaptor, standard_normal


def _draws(seed=0, chains=4, draws=300):
    g = torch.Generator().manual_seed(seed)
    return {
        "mu": torch.randn(chains, draws, generator=g, dtype=torch.float64),
        "theta": 2.0 + torch.randn(chains, draws, 3, generator=g, dtype=torch.float64),
    }


def test_inference_data_groups_and_shapes():
    draws = _draws()
    idata = to_inference_data(
        draws,
        sample_stats={"accept_prob": torch.rand(4, 300), "diverging": torch.zeros(4, 300, dtype=torch.bool)},
        observed_data={"y": torch.arange(5.0)},
        log_likelihood={"y": torch.zeros(4, 300, 5)},
    )
    assert set(idata.groups()) == {"posterior", "sample_stats", "observed_data", "log_likelihood"}
    assert dict(idata.posterior["theta"].sizes) == {"chain": 4, "draw": 300, "theta_dim_0": 3}
    np.testing.assert_array_equal(idata.posterior["mu"].values, draws["mu"].numpy())
    assert set(idata.sample_stats.data_vars) == {"acceptance_rate", "diverging"}
    assert idata.sample_stats["diverging"].dtype == bool
    np.testing.assert_array_equal(idata.observed_data["y"].values, np.arange(5.0))
    assert idata.log_likelihood["y"].shape == (4, 300, 5)


@pytest.mark.parametrize(
    "args, kwargs, error, match",
    [
        (({},), {}, InvalidValueError, "no sites"),
        (([1, 2],), {}, QuiversTypeError, "mapping"),
        (({"a": torch.zeros(4, 10), "b": torch.zeros(3, 10)},), {}, ShapeError, "site `b`"),
        (({"a": torch.zeros(4)},), {}, ShapeError, "site `a`"),
        (({"a": torch.zeros(4, 10)},), {"sample_stats": {"lp": torch.zeros(4, 9)}}, ShapeError,
         "sample_stats `lp`"),
        (({"a": torch.zeros(4, 10)},), {"log_likelihood": {"y": torch.zeros(10, 4)}}, ShapeError,
         "log_likelihood `y`"),
    ],
)
def test_inference_data_rejects_bad_input(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        to_inference_data(*args, **kwargs)


def test_summary_is_arviz_table_with_arviz_rounding():
    draws = _draws()
    table = summary(draws)
    assert list(table.columns) == [
        "mean", "sd", "hdi_3%", "hdi_97%", "mcse_mean", "mcse_sd", "ess_bulk", "ess_tail", "r_hat",
    ]
    assert list(table.index) == ["mu", "theta[0]", "theta[1]", "theta[2]"]
    idata = to_inference_data(draws)
    assert table.equals(az.summary(idata))  # the very table ArviZ prints, rounded as ArviZ rounds
    np.testing.assert_allclose(table.loc["mu", "r_hat"], round(float(az.rhat(idata)["mu"]), 2))
    np.testing.assert_allclose(table.loc["mu", "ess_bulk"], round(float(az.ess(idata)["mu"])))
    theta = draws["theta"].numpy().reshape(-1, 3)
    np.testing.assert_allclose(table.loc["theta[1]", "mean"], round(theta[:, 1].mean(), 3))
    np.testing.assert_allclose(table.loc["theta[1]", "sd"], round(theta[:, 1].std(ddof=1), 3))


def test_summary_rows_are_labelled_by_dims_and_coords():
    idata = to_inference_data(_draws(), dims={"theta": ["K"]}, coords={"K": ["a", "b", "c"]})
    assert list(summary(idata).index) == ["mu", "theta[a]", "theta[b]", "theta[c]"]
    assert list(summary(idata, var_names=["theta"]).index) == ["theta[a]", "theta[b]", "theta[c]"]


def test_summary_interval_and_errors():
    table = summary(_draws(), hdi_prob=0.9)
    assert ["hdi_5%", "hdi_95%"] == list(table.columns[2:4])
    with pytest.raises(InvalidValueError, match="hdi_prob"):
        summary(_draws(), hdi_prob=1.5)
    with pytest.raises(QuiversError, match="did you mean `theta`"):
        summary(_draws(), var_names=["thetaa"])


def test_mcmc_to_inference_data_and_summary(capsys):
    adaptor = GammaAdaptor()
    mcmc = MCMC(NUTS(adaptor), num_warmup=100, num_samples=50, num_chains=2, seed=0,
                progress_bar=False)
    mcmc.run()
    idata = mcmc.to_inference_data(observed_data={"y": torch.ones(3)})
    assert set(idata.groups()) == {"posterior", "sample_stats", "observed_data"}
    assert dict(idata.posterior["x"].sizes) == {"chain": 2, "draw": 50}
    np.testing.assert_array_equal(idata.posterior["x"].values,
                                  mcmc.get_samples(group_by_chain=True)["x"].numpy())
    assert set(idata.sample_stats.data_vars) == {
        "acceptance_rate", "diverging", "energy", "lp", "n_steps", "step_size", "tree_depth",
    }
    table = mcmc.summary()
    printed = capsys.readouterr().out
    assert "r_hat" in printed and "ess_bulk" in printed and "x" in printed
    assert list(table.index) == ["x"]


class _FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_reports_step_size_and_acceptance(monkeypatch):
    terminal = _FakeTerminal()
    monkeypatch.setattr("sys.stderr", terminal)
    mcmc = MCMC(NUTS(potential_fn=standard_normal, dim=2), num_warmup=20, num_samples=20,
                num_chains=2, seed=0)
    mcmc.run()
    shown = terminal.getvalue()
    assert "sample" in shown and "step_size=" in shown and "accept=" in shown
    assert "divergences=" in shown and "40/40" in shown

    quiet = _FakeTerminal()
    monkeypatch.setattr("sys.stderr", quiet)
    with pytest.warns(ConvergenceWarning):  # 5 draws; the warnings are not the bar
        MCMC(NUTS(potential_fn=standard_normal, dim=2), num_warmup=5, num_samples=5, num_chains=2,
             seed=0, progress_bar=False).run()
    assert quiet.getvalue() == ""


def test_progress_bar_counts_warmup_and_sampling_divergences_apart(monkeypatch):
    # A narrow target: the first step sizes of warmup are far too large and diverge.
    terminal = _FakeTerminal()
    monkeypatch.setattr("sys.stderr", terminal)
    mcmc = MCMC(NUTS(potential_fn=lambda z: 0.5 * ((z / 0.01) ** 2).sum(-1), dim=2, max_energy_error=2.0),
                num_warmup=30, num_samples=20, num_chains=2, seed=0)
    with pytest.warns(Warning):
        mcmc.run()
    warmup = int(mcmc.warmup_divergences.sum())
    sampling = int(mcmc.get_sample_stats()["diverging"].sum())
    assert warmup > 0
    last = terminal.getvalue().split("\r")[-1]
    assert f"warmup_divergences={warmup}" in last and f", divergences={sampling}" in last
