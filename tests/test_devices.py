"""Models run where their data is: on every device torch has here (CPU,
and CUDA when a GPU is present) and in float32 and float64, with the same
numbers as a float64 reference on the CPU.

On a machine without a GPU only the CPU rows are collected; run this
module on one with a GPU (``python -m pytest -q tests/test_devices.py``)
to check CUDA."""

from __future__ import annotations

import pytest
import torch

from quivers.categories import FinSet
from quivers.distributions import Categorical, Dirichlet, Normal
from quivers.dsl import loads
from quivers.inference import ELBO, SVI, AutoNormalGuide, Predictive
from quivers.inference.mcmc import MCMC, NUTS
from quivers.programs import Program, markov, observe, sample, var

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
DTYPES = [torch.float32, torch.float64]
TOLERANCE = {torch.float32: dict(rtol=1e-4, atol=1e-3), torch.float64: dict(rtol=1e-10, atol=1e-9)}

GMM = """
object Item : FinSet 60
object K : FinSet 2
program gmm : Item -> Item [effects=[Sample, Score, Marginal]]
    sample probs : K <- HalfNormal(1.0)
    sample mu_k : K <- Normal(0.0, 5.0)
    sample sd_k : K <- HalfNormal(1.0)
    marginalize z : K <- Categorical(probs)
        observe y : Item <- Normal(mu_k[z], sd_k[z])
    return y
export gmm
"""

GROUPED = """
object Item : FinSet 60
object G : FinSet 6
object K : FinSet 3
program grouped : Item -> Item [effects=[Sample, Score, Marginal]]
    sample group : Item <- HalfNormal(1.0)
    sample probs : G <- HalfNormal(1.0)
    sample mu_k : K <- Normal(0.0, 5.0)
    sample sd_k : K <- HalfNormal(1.0)
    marginalize z : K <- Categorical(probs) [over=G]
        observe y : Item <- Normal(mu_k[z], sd_k[z]) [via=group]
    return y
export grouped
"""


def gmm_data() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    z = torch.rand(60, generator=g, dtype=torch.float64) < 0.4
    return {"y": torch.where(z, -2.0, 2.0) + 0.5 * torch.randn(60, generator=g, dtype=torch.float64)}


def gmm_latents() -> dict[str, torch.Tensor]:
    return {
        "probs": torch.tensor([0.7, 1.1], dtype=torch.float64),
        "mu_k": torch.tensor([-1.9, 2.2], dtype=torch.float64),
        "sd_k": torch.tensor([0.6, 0.4], dtype=torch.float64),
    }


def grouped_inputs() -> tuple[dict, dict]:
    obs = gmm_data()
    obs["group"] = torch.arange(60) % 6
    latents = gmm_latents()
    latents["probs"] = torch.linspace(0.2, 1.5, 18, dtype=torch.float64).reshape(6, 3)  # weights per group
    latents["mu_k"] = torch.tensor([-2.0, 0.0, 2.0], dtype=torch.float64)
    latents["sd_k"] = torch.tensor([0.5, 1.0, 0.7], dtype=torch.float64)
    return obs, latents


def hmm_program() -> Program:
    T, K = FinSet("T", 12), FinSet("K", 2)
    z = var("z")
    return Program("hmm", T, T, [
        sample("theta", K * K, Dirichlet(1.0)),
        sample("mu", K, Normal(0.0, 5.0)),
        markov("z", T, K, Categorical(var("theta")), [observe("y", T, Normal(var("mu")[z], 1.0))]),
    ])


def hmm_inputs() -> tuple[dict, dict]:
    y = torch.tensor([0.1, 0.3, 3.2, 2.9, 3.1, -0.2, 0.0, 2.8, 3.3, 0.4, -0.1, 3.0], dtype=torch.float64)
    latents = {"theta": torch.tensor([[0.8, 0.2], [0.3, 0.7]], dtype=torch.float64),
               "mu": torch.tensor([0.0, 3.0], dtype=torch.float64)}
    return {"y": y}, latents


def moved(values: dict, device: str, dtype: torch.dtype) -> dict:
    return {k: v.to(device=device, dtype=dtype) if v.is_floating_point() else v.to(device) for k, v in values.items()}


CASES = {
    "gmm": (lambda: loads(GMM).morphism, lambda: (gmm_data(), gmm_latents())),
    "grouped": (lambda: loads(GROUPED).morphism, grouped_inputs),
    "hmm": (hmm_program, hmm_inputs),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("device", DEVICES)
def test_marginal_log_joint_matches_the_float64_cpu_value(case, dtype, device):
    build, inputs = CASES[case]
    obs, latents = inputs()
    reference = build().log_joint(None, obs, latents)
    model = build().to(device=device, dtype=dtype)
    value = model.log_joint(None, moved(obs, device, dtype), moved(latents, device, dtype))
    assert value.device.type == device and value.dtype == dtype
    torch.testing.assert_close(value.cpu().double(), reference, **TOLERANCE[dtype])


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("device", DEVICES)
def test_svi_trains_on_the_device_of_the_model(device, dtype):
    torch.manual_seed(0)
    model = loads(GMM).morphism.to(device=device, dtype=dtype)
    guide = AutoNormalGuide(model, observed_names={"y"}).to(device=device, dtype=dtype)
    obs = moved(gmm_data(), device, dtype)
    svi = SVI(model, guide, torch.optim.Adam(guide.parameters(), lr=0.05), ELBO(num_particles=4))
    losses = [svi.step(None, obs) for _ in range(150)]
    assert all(isinstance(v, float) and v == v for v in losses)
    assert sum(losses[-10:]) < sum(losses[:10])
    for p in guide.parameters():
        assert p.device.type == device and p.dtype == dtype
    draws = guide.sample_posterior(50)
    assert draws["mu_k"].device.type == device
    # The components sit near -2 and 2 (up to label order).
    assert sorted(float(m) for m in guide.median()["mu_k"]) == pytest.approx([-2.0, 2.0], abs=0.4)
    pred = Predictive(model, posterior_samples=draws)(None)
    assert pred["y"].shape == (50, 60) and pred["y"].device.type == device


@pytest.mark.parametrize("device", DEVICES)
def test_nuts_runs_on_the_device_of_the_data(device):
    obs, _ = hmm_inputs()
    model = hmm_program().to(device=device, dtype=torch.float64)
    mcmc = MCMC(NUTS(model), num_warmup=40, num_samples=30, num_chains=2, seed=0, progress_bar=False)
    mcmc.run(None, moved(obs, device, torch.float64))
    samples = mcmc.get_samples()
    assert samples["mu"].device.type == device and samples["mu"].shape == (60, 2)
    assert bool(torch.isfinite(samples["mu"]).all())
