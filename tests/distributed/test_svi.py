"""Data-parallel SVI on 2 gloo processes on loopback: the averaged loss and
gradients equal single-process SVI on the same data, the ranks' parameters
stay bit-identical, and a rank that dies or stops answering gives a
DistributedError on the others instead of a hang."""

from __future__ import annotations

import os
import time
import warnings
from datetime import timedelta

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from quivers.categories import FinSet
from quivers.distributed import DistributedSVI, shard
from quivers.distributions import Categorical, HalfNormal, Normal
from quivers.errors import DistributedError, InvalidValueError, QuiversTypeError
from quivers.inference import ELBO, SVI, AutoNormalGuide
from quivers.programs import Program, factor, index_map, marginalize, observe, sample, var

STEPS, SEED = 3, 7


def grouped(n: int = 60, groups: int = 9) -> Program:
    G, Item, K = FinSet("G", groups), FinSet("Item", n), FinSet("K", 2)
    mu, sd, z = var("mu_k"), var("sd_k"), var("z")
    return Program("grouped", Item, Item, [
        index_map("group", Item, G),
        sample("probs", G, HalfNormal(1.0)),
        sample("mu_k", K, Normal(0.0, 5.0)),
        sample("sd_k", K, HalfNormal(1.0)),
        marginalize("z", K, Categorical(var("probs")), [
            observe("y", Item, Normal(mu[z], sd[z]), via="group"),
        ], over=G),
    ])


def data() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    group = torch.randint(0, 9, (60,), generator=g)
    return {"y": torch.randn(60, generator=g) * 2 + group.float() / 3, "group": group}


def setup():
    torch.manual_seed(0)
    model = grouped()
    guide = AutoNormalGuide(model, observed_names={"y", "group"})
    return model, guide, torch.optim.Adam(guide.parameters(), lr=0.05), ELBO(num_particles=4)


def snapshot(guide) -> dict[str, torch.Tensor]:
    return {k: p.detach().clone() for k, p in guide.named_parameters()}


def grads(guide) -> dict[str, torch.Tensor]:
    return {k: p.grad.detach().clone() for k, p in guide.named_parameters()}


def _init(rank: int, init: str, timeout: float) -> None:
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=2, timeout=timedelta(seconds=timeout))


def _fit(rank: int, init: str, out: str) -> None:
    _init(rank, init, 30)
    model, guide, opt, loss = setup()
    svi = DistributedSVI(model, guide, opt, loss, plate="Item", seed=SEED)
    obs = data()
    losses, first = [], None
    for i in range(STEPS):
        losses.append(svi.step(None, obs))
        if i == 0:
            first = grads(guide)
    torch.save({"losses": losses, "grads": first, "params": snapshot(guide),
                "rows": svi.shard_of(obs).rows}, out)
    dist.barrier()  # no rank tears the group down while another is still in it
    dist.destroy_process_group()


def _dies(rank: int, init: str, out: str, how: str) -> None:
    _init(rank, init, 4)
    model, guide, opt, loss = setup()
    svi = DistributedSVI(model, guide, opt, loss, plate="Item", seed=SEED)
    obs = data()
    svi.step(None, obs)
    if rank == 1:
        if how == "exit":
            os._exit(3)
        time.sleep(30)  # alive but silent: rank 0 must time out, not wait for it
        os._exit(0)
    start = time.monotonic()
    try:
        svi.step(None, obs)
        result = "no error"
    except DistributedError as err:
        result = f"{type(err).__name__}: {err}"
    except BaseException as err:  # what a test must see, not a hang
        result = f"{type(err).__name__}: {err}"
    torch.save({"result": result, "seconds": time.monotonic() - start}, out)
    os._exit(0)


def _run(target, tmp_path, *extra, limit: float = 90.0) -> list[str]:
    ctx = mp.get_context("spawn")
    init = f"file://{tmp_path / 'init'}"
    outs = [str(tmp_path / f"rank{r}.pt") for r in range(2)]
    procs = [ctx.Process(target=target, args=(r, init, outs[r], *extra)) for r in range(2)]
    for p in procs:
        p.start()
    deadline = time.monotonic() + limit
    for p in procs:
        p.join(max(0.1, deadline - time.monotonic()))
    alive = [p for p in procs if p.is_alive()]
    for p in alive:
        p.kill()
        p.join()
    assert not alive, "a rank hung"
    return outs


@pytest.mark.slow
def test_two_ranks_match_single_process_svi_and_stay_identical(tmp_path):
    outs = _run(_fit, tmp_path)
    ranks = [torch.load(o) for o in outs]

    model, guide, opt, loss = setup()
    torch.manual_seed(SEED)
    svi, obs = SVI(model, guide, opt, loss), data()
    losses, first = [], None
    for i in range(STEPS):
        losses.append(svi.step(None, obs))
        if i == 0:
            first = grads(guide)

    # each group's rows on one rank only, every row on some rank
    rows = [set(r["rows"].tolist()) for r in ranks]
    assert rows[0].isdisjoint(rows[1]) and rows[0] | rows[1] == set(range(60))
    groups = [set(obs["group"][r["rows"]].tolist()) for r in ranks]
    assert groups[0].isdisjoint(groups[1]) and groups[0] and groups[1]

    for r in ranks:
        torch.testing.assert_close(torch.tensor(r["losses"]), torch.tensor(losses), rtol=1e-5, atol=1e-4)
        for k, g in first.items():
            torch.testing.assert_close(r["grads"][k], g, rtol=1e-4, atol=1e-5)
        for k, p in snapshot(guide).items():
            torch.testing.assert_close(r["params"][k], p, rtol=1e-4, atol=1e-5)
    for k in ranks[0]["params"]:
        assert torch.equal(ranks[0]["params"][k], ranks[1]["params"][k]), k


@pytest.mark.slow
@pytest.mark.parametrize("how", ["exit", "silent"])
def test_a_rank_that_dies_or_goes_silent_gives_a_distributed_error(tmp_path, how):
    outs = _run(_dies, tmp_path, how, limit=60.0)
    got = torch.load(outs[0])
    assert got["result"].startswith("DistributedError: rank 0: the all-reduce of the gradients failed"), got
    assert got["seconds"] < 30


def test_the_mean_of_the_shards_is_the_full_log_joint_with_groups_whole():
    model, obs = grouped(), data()
    obs64 = {"y": obs["y"].double(), "group": obs["group"]}
    lat = {"probs": torch.rand(9, 2, dtype=torch.float64) + 0.1,
           "mu_k": torch.tensor([-1.0, 1.0], dtype=torch.float64),
           "sd_k": torch.tensor([0.8, 1.3], dtype=torch.float64)}
    full = model.log_joint(None, obs64, lat)
    for world in (1, 2, 3, 4):
        parts = [shard(model, obs64, "Item", r, world) for r in range(world)]
        seen = [set(obs["group"][p.rows].tolist()) for p in parts]
        assert sum(len(s) for s in seen) == len(set().union(*seen))  # no group on two ranks
        mean = sum(p.program.log_joint(None, p.observations, lat) for p in parts) / world
        torch.testing.assert_close(mean, full)


def test_sharding_refuses_what_it_cannot_weight():
    model, obs = grouped(), data()
    with pytest.raises(InvalidValueError, match="gets no groups"):
        for rank in range(12):  # 9 groups cannot fill 12 ranks
            shard(model, obs, "Item", rank, 12)
    with pytest.raises(InvalidValueError, match="rank"):
        shard(model, obs, "Item", 2, 2)
    Item = FinSet("Item", 4)
    on_plate = Program("p", Item, Item, [sample("u", Item, Normal(0.0, 1.0)),
                                         observe("y", Item, Normal(var("u"), 1.0))])
    with pytest.raises(QuiversTypeError, match="latent `u` lies on the sharded plate"):
        shard(on_plate, {"y": torch.zeros(4)}, "Item", 0, 2)
    with_factor = Program("f", Item, Item, [sample("m", None, Normal(0.0, 1.0)), factor(-var("m") ** 2),
                                            observe("y", Item, Normal(var("m"), 1.0))])
    with pytest.raises(QuiversTypeError, match="factor .* neither a prior nor a row's likelihood"):
        shard(with_factor, {"y": torch.zeros(4)}, "Item", 0, 2)


def test_without_a_process_group_the_driver_says_how_to_start_one():
    model, guide, opt, loss = setup()
    with pytest.raises(DistributedError, match="init_process_group"):
        DistributedSVI(model, guide, opt, loss, plate="Item")


def test_mini_batches_within_shards_average_to_the_full_log_joint():
    Item, K = FinSet("Item", 12), FinSet("K", 2)
    mu, z = var("mu_k"), var("z")
    model = Program("m", Item, Item, [
        sample("mu_k", K, Normal(0.0, 5.0)),
        marginalize("z", K, Categorical(torch.tensor([0.3, 0.7])), [observe("y", Item, Normal(mu[z], 1.0))]),
    ])
    y = torch.randn(12, dtype=torch.float64)
    lat = {"mu_k": torch.tensor([-1.0, 2.0], dtype=torch.float64)}
    full = model.log_joint(None, {"y": y}, lat)
    estimates = []
    for rank in range(2):
        part = shard(model, {"y": y}, "Item", rank, 2)
        mini = part.program.subsample({"Item": 3})
        assert mini.likelihood_scale == 2.0
        rows = part.observations["y"]
        estimates += [mini.log_joint(None, {"y": rows[i:i + 3]}, lat) for i in (0, 3)]
    # over a partition of each shard into batches, the estimates average to the full value exactly
    torch.testing.assert_close(torch.stack(estimates).mean(), full)


def test_a_compiled_elbo_is_said_to_step_eagerly_under_the_data_parallel_driver(tmp_path):
    # one rank is enough to construct the driver; the warning names what
    # jit_compile does compile
    from quivers.capture import CompileWarning

    model, guide, opt, _ = setup()
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1,
                            timeout=timedelta(seconds=30))
    try:
        with pytest.warns(CompileWarning, match="steps eagerly.*SVI.step"):
            DistributedSVI(model, guide, opt, ELBO(num_particles=4, jit_compile=True), plate="Item", seed=0)
        with warnings.catch_warnings():
            warnings.simplefilter("error", CompileWarning)
            DistributedSVI(model, guide, opt, ELBO(num_particles=4), plate="Item", seed=0)
    finally:
        dist.destroy_process_group()
