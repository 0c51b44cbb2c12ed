"""ArviZ plots of fits, and the posterior predictive check of a mixture."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest
import torch

from quivers.categories.finset import FinSet
from quivers.distributions import Categorical, HalfNormal, Normal
from quivers.errors import QuiversTypeError, UnknownNameError
from quivers.inference import FitResult, fit
from quivers.inference.plots import (
    plot_pair,
    plot_posterior,
    plot_ppc,
    plot_trace,
    predictive_data,
    save_plots,
)
from quivers.programs import Program, marginalize, observe, sample, var


def mixture(n: int = 400) -> Program:
    Item, K = FinSet("Item", n), FinSet("K", 2)
    z = var("z")
    return Program("gmm", Item, Item, [
        sample("probs", K, HalfNormal(1.0)),
        sample("mu_k", K, Normal(0.0, 5.0)),
        sample("sd_k", K, HalfNormal(1.0)),
        marginalize("z", K, Categorical(var("probs")), [
            observe("y", Item, Normal(var("mu_k")[z], var("sd_k")[z]))]),
    ])


@pytest.fixture(scope="module")
def result():
    torch.manual_seed(0)
    y = torch.where(torch.rand(400) < 0.6, 3 + 0.5 * torch.randn(400), -3 + 0.5 * torch.randn(400))
    return fit(mixture(), {"y": y.unsqueeze(0)}, steps=30, lr=0.05, num_samples=40, seed=0, progress_bar=False)


def test_trace_has_a_row_per_latent(result):
    fig = plot_trace(result)
    titles = {ax.get_title() for ax in fig.axes}
    assert {"probs", "mu_k", "sd_k"} <= titles
    assert len(fig.axes) == 6  # density and trace for each of three latents


def test_posterior_and_pair_plots_name_the_latents(result):
    fig = plot_posterior(result, var_names=["mu_k"])
    assert len(fig.axes) == 2 and all("mu_k" in ax.get_title() for ax in fig.axes)
    fig = plot_pair(result, var_names=["mu_k", "sd_k"])
    labels = {ax.get_xlabel() for ax in fig.axes} | {ax.get_ylabel() for ax in fig.axes}
    assert any("mu_k" in label for label in labels) and any("sd_k" in label for label in labels)


def test_unknown_latent_in_a_plot_names_the_known_ones(result):
    with pytest.raises(UnknownNameError, match=r"no posterior draws of `mu`; did you mean `mu_k`"):
        plot_trace(result, var_names=["mu"])


def test_posterior_predictive_draws_replicate_the_mixture():
    """With the posterior fixed at the truth, replicated data have the
    mixture's weights: an independent check of the predictive draws."""
    prog = mixture(400)
    draws = 50
    samples = {
        "probs": torch.tensor([0.4, 0.6]).expand(1, draws, 2),
        "mu_k": torch.tensor([-3.0, 3.0]).expand(1, draws, 2),
        "sd_k": torch.tensor([0.5, 0.5]).expand(1, draws, 2),
    }
    y = torch.zeros(1, 400)
    result = FitResult(prog, "svi", samples, {"y": y})
    idata = predictive_data(result, num_samples=draws, seed=0)
    rep = torch.as_tensor(idata.posterior_predictive["y"].values)
    assert tuple(rep.shape) == (1, draws, 400)
    assert tuple(idata.observed_data["y"].shape) == (400,)
    share = float((rep > 0).double().mean())
    assert abs(share - 0.6) < 0.02  # 20000 draws: sd of the share is 0.0035
    assert float(rep[rep > 0].mean()) == pytest.approx(3.0, abs=0.05)


def test_ppc_figure(result):
    fig = plot_ppc(result, num_samples=10, seed=0)
    assert fig.axes[0].get_xlabel() == "y"
    assert len(fig.axes[0].get_lines()) >= 12  # ten replicates, the data, their mean


def test_save_plots_writes_pngs(result, tmp_path):
    paths = save_plots(result, tmp_path / "plots")
    assert [p.name for p in paths] == ["trace.png", "posterior.png", "pair.png", "ppc.png"]
    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_save_plots_leaves_out_what_does_not_apply(tmp_path):
    I = FinSet("I", 5)
    prog = Program("p", I, I, [sample("mu", None, Normal(0.0, 1.0)), observe("y", I, Normal(var("mu"), 1.0))])
    res = fit(prog, {"y": torch.zeros(5)}, steps=5, num_samples=20, seed=0, progress_bar=False)
    assert [p.name for p in save_plots(res, tmp_path, kinds=["pair", "trace"])] == ["trace.png"]
    with pytest.raises(UnknownNameError, match=r"unknown plot `traces`; did you mean `trace`"):
        save_plots(res, tmp_path, kinds=["traces"])


def test_plots_need_a_fit():
    with pytest.raises(QuiversTypeError, match="expected a FitResult or arviz.InferenceData"):
        plot_trace({"mu": [1.0]})
    with pytest.raises(QuiversTypeError, match="needs a FitResult"):
        plot_ppc("fit")
