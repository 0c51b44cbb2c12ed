"""The two examples of issue 16's part 7: a regression in design-matrix
form and a mixture of regressions with `ordered` intercepts. Each loads
from examples/ with its data, has the log density of a hand-written torch
computation in float64, and recovers its simulated parameters in a brief fit."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch

from quivers.dsl import load
from quivers.errors import ConvergenceWarning
from quivers.inference import fit

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
D = torch.distributions


def _example(name: str):
    module = load(EXAMPLES / f"{name}.qvr")
    data = json.loads((EXAMPLES / f"{name}_data.json").read_text())
    return module.morphism, {k: torch.tensor(v) for k, v in data.items()}


@pytest.fixture
def float64():
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)


def test_regression_log_density_is_the_hand_written_one(float64):
    program, data = _example("regression")
    X, y = data["X"].double(), data["y"].double()
    assert X.shape == (100, 3) and program.sites["X"].dims == ("Item", "P")
    alpha, beta, sigma = torch.tensor(0.8), torch.tensor([0.4, -1.2, 1.9]), torch.tensor(0.9)
    got = program.log_joint(observations={"X": X, "y": y}, latents={"alpha": alpha, "beta": beta, "sigma": sigma})
    want = (D.Normal(0.0, 5.0).log_prob(alpha) + D.Normal(0.0, 2.0).log_prob(beta).sum()
            + D.HalfNormal(2.0).log_prob(sigma) + D.Normal(alpha + X @ beta, sigma).log_prob(y).sum())
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-10)


def test_mixture_regression_log_density_sums_the_components_out(float64):
    program, data = _example("mixture_regression")
    x, y = data["x"].double(), data["y"].double()
    w, alpha, beta, sigma = (torch.tensor([0.3, 0.7]), torch.tensor([-1.5, 2.5]), torch.tensor([0.8, -0.4]),
                             torch.tensor(0.6))
    got = program.log_joint(observations={"x": x, "y": y},
                            latents={"w": w, "alpha": alpha, "beta": beta, "sigma": sigma})
    per_k = torch.log(w) + D.Normal(alpha + beta * x[:, None], sigma).log_prob(y[:, None])  # (Item, K)
    want = (D.Dirichlet(torch.full((2,), 2.0)).log_prob(w) + D.Normal(0.0, 5.0).log_prob(alpha).sum()
            + D.Normal(0.0, 2.0).log_prob(beta).sum() + D.HalfNormal(1.0).log_prob(sigma)
            + torch.logsumexp(per_k, -1).sum())
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-10)


def test_regression_recovers_its_coefficients():
    program, data = _example("regression")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        result = fit(program, data, method="svi", steps=600, lr=0.05, seed=0, progress_bar=False)
    beta = result.samples["beta"].reshape(-1, 3).mean(0)
    torch.testing.assert_close(beta, torch.tensor([0.5, -1.0, 2.0]), atol=0.25, rtol=0)
    assert abs(float(result.samples["alpha"].mean()) - 1.0) < 0.25


def test_mixture_regression_recovers_its_lines():
    program, data = _example("mixture_regression")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        result = fit(program, data, method="svi", steps=800, lr=0.05, seed=0, progress_bar=False)
    alpha = result.samples["alpha"].reshape(-1, 2)
    assert bool((alpha[:, 0] < alpha[:, 1]).all())
    torch.testing.assert_close(alpha.mean(0), torch.tensor([-2.0, 2.0]), atol=0.3, rtol=0)
    torch.testing.assert_close(result.samples["beta"].reshape(-1, 2).mean(0), torch.tensor([1.0, -0.5]), atol=0.3, rtol=0)


@pytest.mark.slow
def test_mixture_regression_nuts_keeps_the_labels_apart():
    program, data = _example("mixture_regression")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        result = fit(program, data, method="nuts", num_warmup=150, num_samples=100, num_chains=2, seed=1,
                     progress_bar=False)
    alpha = result.samples["alpha"]  # (chains, draws, K)
    assert bool((alpha[..., 0] < alpha[..., 1]).all())
    per_chain = alpha.mean(1)
    torch.testing.assert_close(per_chain, torch.tensor([[-2.0, 2.0]] * 2), atol=0.4, rtol=0)
    torch.testing.assert_close(result.samples["beta"].mean(1), torch.tensor([[1.0, -0.5]] * 2), atol=0.4, rtol=0)
