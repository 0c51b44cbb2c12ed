"""Data-parallel SVI throughput at 1 and 2 gloo processes, and the
loopback all-reduce bandwidth that docs/distributed.md projects from.

    python -m benchmarks.distributed           # N = 100,000 rows, G = 1,000, K = 8
    python -m benchmarks.distributed --quick   # N = 10,000 rows

Each process runs ``DistributedSVI`` on the grouped mixture (one thread
per process); the figure is rows of the full data per second of one step,
the median over the timed steps. Not part of the unit tests.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from benchmarks import models as M

WARMUP, STEPS = 3, 10


def _worker(rank: int, world: int, init: str, n: int, g: int, k: int, out: str) -> None:
    from quivers.distributed import DistributedSVI
    from quivers.dsl import loads
    from quivers.inference import ELBO, AutoNormalGuide

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world, timeout=timedelta(seconds=120))
    y, group = M.simulate_grouped(n, g, k)
    model = loads(M.grouped_source(n, g, k)).morphism
    torch.manual_seed(0)
    guide = AutoNormalGuide(model, observed_names={"y", "group"})
    svi = DistributedSVI(model, guide, torch.optim.Adam(guide.parameters(), lr=0.01), ELBO(), plate="Item", seed=0)
    obs = {"y": y, "group": group}
    times = []
    for i in range(WARMUP + STEPS):
        dist.barrier()
        start = time.perf_counter()
        svi.step(None, obs)
        if i >= WARMUP:
            times.append(time.perf_counter() - start)
    params = sum(p.numel() for p in guide.parameters())
    # the loopback all-reduce of the step's buffer alone (float64, as the step sends it)
    buf = torch.zeros(params + 1, dtype=torch.float64)
    reduce_times = []
    for _ in range(20):
        dist.barrier()
        start = time.perf_counter()
        dist.all_reduce(buf)
        reduce_times.append(time.perf_counter() - start)
    if rank == 0:
        Path(out).write_text(json.dumps({
            "world": world, "rows": n, "params": params,
            "step_s": statistics.median(times), "allreduce_s": statistics.median(reduce_times),
        }))
    dist.destroy_process_group()


def measure(world: int, n: int, g: int, k: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = f"{tmp}/out.json"
        mp.spawn(_worker, args=(world, f"file://{tmp}/init", n, g, k, out), nprocs=world, join=True)
        return json.loads(Path(out).read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    opts = parser.parse_args()
    n, g, k = (10_000, 100, 8) if opts.quick else (100_000, 1_000, 8)
    results = [measure(world, n, g, k) for world in (1, 2)]
    print(f"grouped mixture, N={n}, G={g}, K={k}")
    print("processes  step (ms)  rows/s      all-reduce (ms)  params")
    for r in results:
        print(f"{r['world']:>9}  {r['step_s'] * 1e3:>9.1f}  {r['rows'] / r['step_s']:>10.0f}  "
              f"{r['allreduce_s'] * 1e3:>15.3f}  {r['params']}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
