"""Distributed chains on 2 gloo processes: rank 0 gathers every rank's
chains, each equal bit for bit to a single-process run with that rank's
seed, and checks convergence over all of them."""

from __future__ import annotations

from datetime import timedelta

import pytest
import torch
import torch.distributed as dist

from quivers.distributed import DistributedMCMC
from quivers.errors import DistributedError
from quivers.inference import MCMC, NUTS
from tests.distributed.test_svi import _run

SEED = 11


def kernel() -> NUTS:
    return NUTS(potential_fn=lambda z: 0.5 * ((z - 3.0) ** 2).sum(-1), dim=2)


def _chains(rank: int, init: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=2, timeout=timedelta(seconds=30))
    mcmc = DistributedMCMC(kernel(), num_warmup=50, num_samples=40, num_chains=1, seed=SEED, progress_bar=False)
    mcmc.run()
    torch.save({"draws": mcmc.unconstrained_draws, "diagnostics": mcmc.diagnostics,
                "stats": mcmc.get_sample_stats(group_by_chain=True)["accept_prob"],
                "r_hat": "r_hat" in mcmc.summary(print_table=False).columns}, out)
    dist.barrier()  # no rank tears the group down while another is still in it
    dist.destroy_process_group()


@pytest.mark.slow
def test_rank_zero_gathers_chains_equal_to_single_process_runs(tmp_path):
    outs = _run(_chains, tmp_path)
    first, second = (torch.load(o) for o in outs)
    assert first["draws"].shape == (2, 40, 2)  # rank 0: both ranks' chains
    assert second["draws"].shape == (1, 40, 2)  # rank 1: its own
    assert first["stats"].shape == (2, 40) and first["r_hat"]
    for r in range(2):
        alone = MCMC(kernel(), num_warmup=50, num_samples=40, num_chains=1, seed=SEED + r, progress_bar=False)
        alone.run()
        assert torch.equal(first["draws"][r:r + 1], alone.unconstrained_draws)
    assert torch.equal(second["draws"], first["draws"][1:])
    assert not torch.equal(first["draws"][0], first["draws"][1])


def test_without_a_process_group_the_chains_say_how_to_start_one():
    with pytest.raises(DistributedError, match="init_process_group"):
        DistributedMCMC(kernel(), num_warmup=5, num_samples=5).run()
