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
from quivers.checkpoint import load, save
from quivers.distributions import Categorical, Dirichlet, Normal
from quivers.dsl import loads
from quivers.inference import ELBO, SVI, AutoNormalGuide, Predictive, infer_discrete
from quivers.inference.mcmc import MCMC, NUTS
from quivers.programs import Program, marginalize, markov, observe, sample, var

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


def nested_program() -> Program:
    """Two marginalized latents per row, the inner one's law read from the outer's."""
    Item, K1, K2 = FinSet("Item", 40), FinSet("K1", 2), FinSet("K2", 3)
    z1, z2 = var("z1"), var("z2")
    return Program("nested", Item, Item, [
        sample("pi", K1, Dirichlet(1.0)),
        sample("trans", K1 * K2, Dirichlet(1.0)),
        sample("mu", K1 * K2, Normal(0.0, 5.0)),
        marginalize("z1", K1, Categorical(var("pi")), [
            marginalize("z2", K2, Categorical(var("trans")[z1]), [
                observe("y", Item, Normal(var("mu")[z1, z2], 1.0)),
            ]),
        ]),
    ])


def nested_inputs() -> tuple[dict, dict]:
    g = torch.Generator().manual_seed(1)
    y = torch.randn(40, generator=g, dtype=torch.float64) * 3.0
    latents = {"pi": torch.tensor([0.3, 0.7], dtype=torch.float64),
               "trans": torch.tensor([[0.2, 0.5, 0.3], [0.6, 0.1, 0.3]], dtype=torch.float64),
               "mu": torch.linspace(-4.0, 4.0, 6, dtype=torch.float64).reshape(2, 3)}
    return {"y": y}, latents


def moved(values: dict, device: str, dtype: torch.dtype) -> dict:
    return {k: v.to(device=device, dtype=dtype) if v.is_floating_point() else v.to(device) for k, v in values.items()}


CASES = {
    "gmm": (lambda: loads(GMM).morphism, lambda: (gmm_data(), gmm_latents())),
    "grouped": (lambda: loads(GROUPED).morphism, grouped_inputs),
    "hmm": (hmm_program, hmm_inputs),
    "nested": (nested_program, nested_inputs),
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


@pytest.mark.parametrize("case", ["gmm", "grouped", "nested"])
@pytest.mark.parametrize("device", DEVICES)
def test_infer_discrete_on_the_device_matches_the_cpu(case, device):
    """Responsibilities computed where the model is agree with the float64
    CPU ones, and a seed draws the same latents on every device."""
    build, inputs = CASES[case]
    obs, latents = inputs()
    draws = {k: torch.stack([v, v.flip(-1)]) for k, v in latents.items()}  # two posterior draws
    reference = infer_discrete(build(), draws, observations=obs, seed=3)
    model = build().to(device=device, dtype=torch.float64)
    got = infer_discrete(model, moved(draws, device, torch.float64), observations=moved(obs, device, torch.float64),
                         seed=3)
    assert got.keys() == reference.keys()
    for name, post in got.items():
        assert post.probs.device.type == device and post.draws.device.type == device
        torch.testing.assert_close(post.probs.cpu(), reference[name].probs, **TOLERANCE[torch.float64])
        assert torch.equal(post.draws.cpu(), reference[name].draws)


@pytest.mark.parametrize("device", DEVICES)
def test_infer_discrete_draws_chain_paths_on_the_device(device):
    obs, latents = hmm_inputs()
    model = hmm_program().to(device=device, dtype=torch.float64)
    draws = {k: v.unsqueeze(0).expand(4, *v.shape).to(device) for k, v in latents.items()}
    post = infer_discrete(model, draws, observations=moved(obs, device, torch.float64), seed=0)["z"]
    assert post.draws.shape == (4, 12) and post.draws.device.type == device
    assert bool(((post.draws >= 0) & (post.draws < 2)).all())
    # the clearly separated observations pin the path down
    assert post.map.cpu().tolist() == [int(v > 1.5) for v in obs["y"]]


@pytest.mark.parametrize("device", DEVICES)
def test_checkpoint_saved_on_the_device_loads_on_the_cpu_and_back(tmp_path, device):
    torch.manual_seed(0)
    model = loads(GMM).morphism.to(device)
    guide = AutoNormalGuide(model, observed_names={"y"}).to(device)
    optimizer = torch.optim.Adam(guide.parameters(), lr=0.05)
    obs = moved(gmm_data(), device, torch.float32)
    svi = SVI(model, guide, optimizer, ELBO(num_particles=2))
    for _ in range(5):
        svi.step(None, obs)
    path = tmp_path / "fit.qvrck"
    save(path, model, guide, optimizer)
    state = {k: v.cpu() for k, v in guide.state_dict().items()}
    median = {k: v.cpu() for k, v in guide.median().items()}
    on_cpu = load(path)
    assert all(p.device.type == "cpu" for p in on_cpu.guide.parameters())
    for k, v in on_cpu.guide.state_dict().items():  # the parameters themselves, bit for bit
        assert torch.equal(v, state[k]), k
    for k, v in on_cpu.guide.median().items():  # exp on another device may round otherwise
        torch.testing.assert_close(v, median[k], rtol=1e-6, atol=0.0)
    # back onto the device: the next step there is the original's next step
    torch.manual_seed(1)
    loss = svi.step(None, obs)
    model2 = loads(GMM).morphism.to(device)
    guide2 = AutoNormalGuide(model2, observed_names={"y"}).to(device)
    back = load(path, model2, guide2, torch.optim.Adam(guide2.parameters(), lr=0.05))
    assert all(p.device.type == device for p in back.guide.parameters())
    torch.manual_seed(1)
    assert SVI(back.model, back.guide, back.optimizer, ELBO(num_particles=2)).step(None, obs) == loss


def test_chains_of_a_program_without_buffers_follow_the_data():
    """hmm_program holds no tensors of its own: its chains run where the
    run's data is (checked here with the meta device, which every machine
    has), unless the program or the caller placed them."""
    from quivers.inference.program_adaptor import ProgramAdaptor

    adaptor = ProgramAdaptor(hmm_program())
    adaptor.bind(None, {"y": torch.zeros(12, device="meta")})
    assert adaptor.device.type == "meta"
    placed = ProgramAdaptor(hmm_program(), device="cpu")
    placed.bind(None, {"y": torch.zeros(12, device="meta")})
    assert placed.device.type == "cpu"


def test_device_of_is_the_first_parameter_then_buffer_of_the_module_tree():
    from quivers.inference.devices import device_of

    own = torch.nn.Linear(2, 2)
    nested = torch.nn.Sequential(torch.nn.Sequential(), torch.nn.Linear(2, 2))  # parameters only in a child
    buffers = torch.nn.BatchNorm1d(2, affine=False)  # buffers, no parameters
    for m in (own, nested, buffers):
        first = next(iter(list(m.parameters()) + list(m.buffers())))
        assert device_of(m) == first.device
    assert device_of(torch.nn.Sequential()) is None
