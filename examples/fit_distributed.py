"""Fit the grouped mixture with data-parallel SVI on several processes.

Under torchrun each process is one rank (gloo on CPUs, NCCL on GPUs):

    torchrun --nproc_per_node=2 examples/fit_distributed.py

Run plainly (``python examples/fit_distributed.py``) it starts 2 gloo
processes on this machine itself. Every rank holds the full data here and
scores its own shard of the rows (whole groups); with data too large for
one process, give each rank only its rows (``quivers.distributed.shard_rows``
says which).
"""

from __future__ import annotations

import os
import tempfile
from datetime import timedelta

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from quivers.categories import FinSet
from quivers.distributed import DistributedSVI
from quivers.distributions import Categorical, HalfNormal, Normal
from quivers.inference import ELBO, AutoNormalGuide
from quivers.programs import Program, index_map, marginalize, observe, sample, var

N, GROUPS, K, STEPS = 600, 30, 2, 400


def model() -> Program:
    Item, G, Kset = FinSet("Item", N), FinSet("G", GROUPS), FinSet("K", K)
    mu, sd, z = var("mu_k"), var("sd_k"), var("z")
    return Program("grouped_mixture", Item, Item, [
        index_map("group", Item, G),
        sample("probs", G, HalfNormal(1.0)),
        sample("mu_k", Kset, Normal(0.0, 5.0)),
        sample("sd_k", Kset, HalfNormal(1.0)),
        marginalize("z", Kset, Categorical(var("probs")), [
            observe("y", Item, Normal(mu[z], sd[z]), via="group"),
        ], over=G),
    ])


def data() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    group = torch.randint(GROUPS, (N,), generator=g)
    component = torch.arange(GROUPS) % K  # each group draws from one component
    y = torch.tensor([-4.0, 4.0])[component[group]] + torch.randn(N, generator=g)
    return {"y": y, "group": group}


def fit() -> str | None:
    """Fit on this rank; rank 0 returns what the fit found."""
    prog = model()
    torch.manual_seed(0)
    guide = AutoNormalGuide(prog, observed_names={"y", "group"})
    svi = DistributedSVI(prog, guide, torch.optim.Adam(guide.parameters(), lr=0.05), ELBO(), plate="Item")
    obs = data()
    for _ in range(STEPS):
        loss = svi.step(None, obs)
    if dist.get_rank() != 0:
        return None
    mu = sorted(round(float(m)) for m in guide.median()["mu_k"])
    return (f"{dist.get_world_size()} processes, rows per rank ~{N // dist.get_world_size()}: "
            f"-ELBO {loss:.0f}, component means {mu}")


def _spawned(rank: int, world: int, init: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world, timeout=timedelta(seconds=60))
    try:
        found = fit()
        if found is not None:
            with open(out, "w") as f:
                f.write(found)
        dist.barrier()  # no rank tears the group down while another is still in it (gloo aborts)
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    if "RANK" in os.environ:  # started by torchrun: it set RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo", timeout=timedelta(seconds=60))
        try:
            found = fit()
            if found is not None:
                print(found)
            dist.barrier()
        finally:
            dist.destroy_process_group()
    else:
        with tempfile.TemporaryDirectory() as tmp:
            mp.spawn(_spawned, args=(2, f"file://{tmp}/init", f"{tmp}/found"), nprocs=2, join=True)
            with open(f"{tmp}/found") as f:
                print(f.read())
