"""Convergence warnings: each one on a model built to trigger it, and none
on converged runs."""

from __future__ import annotations

import warnings

import arviz as az
import numpy as np
import pytest
import torch

from quivers.categories.finset import FinSet
from quivers.distributions import Cauchy, Normal
from quivers.errors import ConvergenceWarning
from quivers.inference import fit
from quivers.inference.convergence import label_switching, loss_trend, mcmc_warnings, pareto_k
from quivers.inference.mcmc import MCMC, NUTS
from quivers.programs import Program, observe, sample, var
from tests.programs.models import seed_mixture

def normal_model(n: int = 8) -> tuple[Program, dict[str, torch.Tensor]]:
    Item = FinSet("Item", n)
    prog = Program("p", Item, Item, [sample("mu", None, Normal(0.0, 1.0)),
                                     observe("y", Item, Normal(var("mu"), 1.0))])
    return prog, {"y": torch.linspace(-1.0, 2.0, n)}


def run_mcmc(potential, dim, *, warmup=50, draws=50, chains=2, **kernel) -> list[str]:
    """The messages of a run, checking that each was also issued as a ConvergenceWarning."""
    mcmc = MCMC(NUTS(potential_fn=potential, dim=dim, **kernel), num_warmup=warmup, num_samples=draws,
                num_chains=chains, seed=0, progress_bar=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mcmc.run()
    issued = [str(w.message) for w in caught if issubclass(w.category, ConvergenceWarning)]
    assert issued == mcmc.diagnostics
    return mcmc.diagnostics


def starting(messages: list[str], prefix: str) -> list[str]:
    return [m for m in messages if m.startswith(prefix)]


# ---------------------------------------------------------------- converged runs


def test_a_converged_nuts_run_warns_of_nothing():
    prog, data = normal_model()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fit(prog, data, method="nuts", num_warmup=100, num_samples=500, num_chains=2, seed=0,
                     progress_bar=False)
    assert result.diagnostics == []
    assert not [w for w in caught if issubclass(w.category, ConvergenceWarning)]


def test_a_converged_svi_run_warns_of_nothing():
    prog, data = normal_model()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fit(prog, data, steps=800, lr=0.05, num_samples=250, seed=0, progress_bar=False)
    assert result.diagnostics == []
    assert not [w for w in caught if issubclass(w.category, ConvergenceWarning)]


# ---------------------------------------------------------------- MCMC


def test_r_hat_warns_when_chains_sit_in_different_modes():
    def two_modes(z):  # modes at -4 and 4, too far apart for a chain to cross
        return -torch.logaddexp(-0.5 * ((z - 4.0) / 0.3) ** 2, -0.5 * ((z + 4.0) / 0.3) ** 2).sum(-1)

    start = torch.tensor([[-4.0], [4.0]])
    messages = run_mcmc(two_modes, None, initial_params=start)
    (message,) = starting(messages, "r_hat above 1.01 for `z[0]`")
    assert "the chains have not mixed" in message


def test_ess_warns_under_100_per_chain():
    messages = run_mcmc(lambda z: 0.5 * (z**2).sum(-1), 1, warmup=20, draws=15)
    assert starting(messages, "bulk ESS under 100 per chain for `z[0]`")
    assert starting(messages, "tail ESS under 100 per chain for `z[0]`")
    assert "2 chains x 15 draws" in starting(messages, "bulk ESS")[0]


def test_divergences_after_warmup_warn():
    def cliff(z):  # the density drops by e^-1000 at z = 1: trajectories crossing it diverge
        return 0.5 * (z**2).sum(-1) + 1000.0 * (z[:, 0] > 1.0)

    messages = run_mcmc(cliff, 1)
    (message,) = [m for m in messages if "transitions after warmup diverged" in m]
    assert "raise `target_accept`" in message


def test_saturated_tree_depth_warns():
    messages = run_mcmc(lambda z: 0.5 * (z**2).sum(-1), 20, warmup=30, draws=30, max_tree_depth=1)
    (message,) = [m for m in messages if "reached the maximum tree depth 1" in m]
    assert message.startswith("60 of 60 transitions")


def test_low_e_bfmi_warns():
    # Energies that wander like a random walk: the momentum resampling
    # changes the energy by much less than its spread, E-BFMI near 0.
    g = np.random.default_rng(0)
    energy = np.cumsum(g.normal(size=(2, 200)), axis=1)
    idata = az.from_dict(posterior={"mu": g.normal(size=(2, 200))}, sample_stats={"energy": energy})
    (message,) = [m for m in mcmc_warnings(idata) if m.startswith("E-BFMI under 0.3 in chains [0, 1]")]
    assert "reparameterize" in message
    fine = az.from_dict(posterior={"mu": g.normal(size=(4, 1000))}, sample_stats={"energy": g.normal(size=(4, 1000))})
    assert mcmc_warnings(fine) == []


@pytest.mark.slow
def test_neals_funnel_diverges_and_has_low_e_bfmi():
    def funnel(z):
        v, x = z[:, 0], z[:, 1:]
        return v**2 / 18 + (x**2 / (2 * torch.exp(v)).unsqueeze(-1)).sum(-1) + x.shape[1] * v / 2

    messages = run_mcmc(funnel, 5, warmup=50, draws=100, chains=4, max_tree_depth=6)
    assert [m for m in messages if "transitions after warmup diverged" in m]
    assert starting(messages, "E-BFMI under 0.3")


# ---------------------------------------------------------------- label switching


def labelled_init(orders: list[int]) -> dict[str, torch.Tensor]:
    """Starting points at the posterior mode, components in the order
    given per chain (0: as found, 1: swapped)."""
    point = {"probs": [0.4, 0.6], "mu_k": [-2.0, 2.0], "sd_k": [0.5, 0.7]}
    return {k: torch.tensor([v[::-1] if o else v for o in orders]) for k, v in point.items()}


def test_label_switching_names_the_axis_and_points_to_ordered():
    prog, data = seed_mixture()
    with pytest.warns(ConvergenceWarning, match="label switching"):
        result = fit(prog, data, method="nuts", num_warmup=60, num_samples=40, num_chains=4,
                     init=labelled_init([0, 1, 0, 1]), seed=0, progress_bar=False)
    (message,) = starting(result.diagnostics, "label switching")
    assert "components of `K` in different orders (chains 1, 3 match chain 0 only after permuting `K`)" in message
    assert "`[constraint=ordered]`" in message and "label-invariant" in message
    assert label_switching(result.to_inference_data(log_likelihood=False), ["K"]) == {"K": [1, 3]}

    same = fit(prog, data, method="nuts", num_warmup=60, num_samples=40, num_chains=4,
               init=labelled_init([0, 0, 0, 0]), seed=0, progress_bar=False)
    assert not starting(same.diagnostics, "label switching")
    assert label_switching(same.to_inference_data(log_likelihood=False), ["K"]) == {}


def test_label_switching_is_not_claimed_for_chains_that_disagree_otherwise():
    g = np.random.default_rng(1)
    mu = g.normal(size=(4, 100, 2)) * 0.1 + np.array([-2.0, 2.0])
    mu[1] += 3.0  # another place, not another order
    idata = az.from_dict(posterior={"mu": mu}, dims={"mu": ["K"]})
    assert label_switching(idata, ["K"]) == {}


# ---------------------------------------------------------------- SVI


def test_svi_warns_while_the_loss_still_falls():
    Item = FinSet("Item", 8)
    far = Program("far", Item, Item, [sample("mu", None, Normal(0.0, 10.0)),
                                      observe("y", Item, Normal(var("mu"), 1.0))])
    with pytest.warns(ConvergenceWarning, match="SVI has not converged"):
        result = fit(far, {"y": torch.full((8,), 30.0)}, steps=100, lr=0.05, num_samples=50, seed=0,
                     progress_bar=False)
    change, z = loss_trend(result.losses)
    assert change < -1e-3 and z < -3


def test_svi_warns_when_the_guide_misses_the_posterior():
    # A Cauchy prior and a weak likelihood: the posterior has tails no
    # normal guide covers, and the importance weights p / q are heavy.
    One = FinSet("One", 1)
    prog = Program("heavy", One, One, [sample("mu", None, Cauchy(0.0, 1.0)),
                                       observe("y", One, Normal(var("mu"), 10.0))])
    with pytest.warns(ConvergenceWarning, match="Pareto k"):
        result = fit(prog, {"y": torch.tensor([0.0])}, steps=800, lr=0.05, num_samples=250, seed=0,
                     progress_bar=False)
    (message,) = [m for m in result.diagnostics if m.startswith("Pareto k")]
    assert "above 0.7" in message and "NUTS" in message


def test_pareto_k_of_exact_and_of_heavy_weights():
    g = np.random.default_rng(0)
    assert pareto_k(np.zeros(1000) + g.normal(size=1000) * 1e-3) < 0.5
    assert pareto_k(g.standard_cauchy(size=2000) ** 2) > 0.7
