"""`qvr fit --distributed PLATE` as torchrun runs it: 2 gloo processes with
torchrun's environment; rank 0 reports the same fit as one process does,
and the other rank reports nothing."""

from __future__ import annotations

import io
import os
import re
import socket
from pathlib import Path

import pytest

import torch.multiprocessing as mp

from quivers.cli import main

ROOT = Path(__file__).resolve().parents[2]
ARGS = [str(ROOT / "examples" / "grouped_mixture.qvr"), "--data", str(ROOT / "examples" / "grouped_data.csv"),
        "--method", "svi", "--steps", "20", "--samples", "20", "--chains", "1", "--seed", "3", "--no-progress"]


def _rank(rank: int, port: str, out: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=port,
                      QUIVERS_DIST_TIMEOUT="60")
    text, err = io.StringIO(), io.StringIO()
    code = main(["fit", *ARGS, "--distributed", "Item"], out=text, err=err)
    Path(out).write_text(f"{code}\n{text.getvalue()}{err.getvalue()}")


def _loss(text: str) -> float:
    return float(re.search(r"final loss \(-ELBO\) ([-\d.e+]+)", text).group(1))


@pytest.mark.slow
def test_torchrun_fit_reports_the_single_process_fit_on_rank_zero(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    ctx = mp.get_context("spawn")
    files = [str(tmp_path / f"rank{r}.txt") for r in range(2)]
    procs = [ctx.Process(target=_rank, args=(r, port, files[r])) for r in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    alive = [p for p in procs if p.is_alive()]
    for p in alive:
        p.kill()
    assert not alive, "a rank hung"
    first, second = (Path(f).read_text() for f in files)
    assert first.startswith("0\n") and "SVI, 20 steps" in first, first
    assert second == "0\n"
    alone = io.StringIO()
    assert main(["fit", *ARGS], out=alone, err=io.StringIO()) == 0
    assert _loss(first) == pytest.approx(_loss(alone.getvalue()), rel=1e-3)


def test_distributed_outside_torchrun_says_how_to_start_it(monkeypatch):
    for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(k, raising=False)
    err = io.StringIO()
    assert main(["fit", *ARGS, "--distributed", "Item"], out=io.StringIO(), err=err) != 0
    assert "torchrun --nproc_per_node=2 -m quivers.cli fit" in err.getvalue()
    err = io.StringIO()
    assert main(["fit", *ARGS[:3], "--distributed", "Item"], out=io.StringIO(), err=err) != 0
    assert "--distributed runs SVI; add --method svi" in err.getvalue()
