"""Seeds, dtypes and devices."""

from __future__ import annotations

import pytest
import torch

from quivers.inference.mcmc import HMC, MCMC, NUTS
from tests.inference.mcmc.targets import standard_normal

KERNELS = {"nuts": NUTS, "hmc": HMC}
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _run(kind, seed, *, dtype=torch.float64, device="cpu", num_chains=3):
    init = torch.zeros(2, dtype=dtype, device=device)
    mcmc = MCMC(KERNELS[kind](potential_fn=standard_normal, initial_params=init),
                num_warmup=60, num_samples=40, num_chains=num_chains, seed=seed, progress_bar=False)
    mcmc.run()
    return mcmc


@pytest.mark.parametrize("kind", sorted(KERNELS))
def test_same_seed_gives_bit_identical_draws_and_stats(kind):
    a, b = _run(kind, 11), _run(kind, 11)
    assert torch.equal(a.get_samples()["z"], b.get_samples()["z"])
    stats_a, stats_b = a.get_sample_stats(), b.get_sample_stats()
    assert stats_a.keys() == stats_b.keys()
    for name in stats_a:
        assert torch.equal(stats_a[name], stats_b[name]), name
    assert not torch.equal(a.get_samples()["z"], _run(kind, 12).get_samples()["z"])


def test_random_starting_points_come_from_the_seed():
    def run(seed):
        mcmc = MCMC(NUTS(potential_fn=standard_normal, dim=2), num_warmup=5, num_samples=5,
                    num_chains=4, seed=seed, progress_bar=False)
        mcmc.run()
        return mcmc.get_samples()["z"]

    assert torch.equal(run(5), run(5))
    # Without a seed, two runs differ.
    assert not torch.equal(run(None), run(None))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("kind", sorted(KERNELS))
def test_chains_run_in_the_dtype_and_device_of_the_initial_point(kind, dtype, device):
    mcmc = _run(kind, 0, dtype=dtype, device=device)
    z = mcmc.get_samples(group_by_chain=True)["z"]
    assert z.dtype == dtype and z.device.type == device and z.shape == (3, 40, 2)
    stats = mcmc.get_sample_stats(group_by_chain=True)
    for name in ("accept_prob", "energy", "lp", "step_size"):
        assert stats[name].dtype == dtype and stats[name].shape == (3, 40), name
    assert stats["diverging"].dtype == torch.bool
    assert bool(torch.isfinite(z).all())


def test_grouped_and_flat_layouts_agree():
    mcmc = _run("nuts", 3)
    grouped = mcmc.get_samples(group_by_chain=True)["z"]
    flat = mcmc.get_samples()["z"]
    # Chain after chain.
    assert torch.equal(flat, torch.cat(list(grouped)))
    stats = mcmc.get_sample_stats()
    assert stats["lp"].shape == (120,)
    assert torch.equal(stats["lp"], torch.cat(list(mcmc.get_sample_stats(group_by_chain=True)["lp"])))
    # lp is minus the potential at the draw.
    torch.testing.assert_close(stats["lp"], -standard_normal(flat))
