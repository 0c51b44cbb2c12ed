"""The same seed gives bit-identical results on the same machine.

- SVI: the losses and the fitted guide after ``torch.manual_seed(s)``;
- MCMC: the draws of ``MCMC(..., seed=s)``, whatever the global torch
  generator's state, and without disturbing it;
- ``fit(..., seed=s)`` with SVI and with NUTS, and ``infer_discrete``;
- ``qvr fit --seed s`` (SVI and NUTS) and ``qvr sample --seed s``: the
  same printed summary and the same draws in the files they write;
- across processes, whatever Python's hash seed (set and dict order of
  names must not leak into the arithmetic).

Each check also runs a second seed and asserts the results differ, so a
check that compared a constant with itself would fail. See
``docs/reproducibility.md``.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from quivers.dsl import loads
from quivers.inference import ELBO, MCMC, NUTS, SVI, AutoMultivariateNormal, AutoNormalGuide, fit, infer_discrete

from tests.spec import seed

ROOT = Path(__file__).resolve().parents[2]


def data(n: int = 40) -> torch.Tensor:
    g = torch.Generator().manual_seed(123)
    z = torch.rand(n, generator=g) < 0.6
    return torch.where(z, 2.0, -2.0) + 0.5 * torch.randn(n, generator=g)


def gmm(n: int = 40):
    return loads(seed.GMM.replace("FinSet 500", f"FinSet {n}")).morphism


def svi_run(seed: int, guide_cls=AutoNormalGuide, steps: int = 25):
    torch.manual_seed(seed)
    model = gmm()
    guide = guide_cls(model, observed_names={"y"})
    svi = SVI(model, guide, torch.optim.Adam(guide.parameters(), lr=0.02), ELBO(num_particles=3))
    losses = [svi.step(None, {"y": data()}) for _ in range(steps)]
    return losses, {k: v.detach().clone() for k, v in guide.state_dict().items()}


def same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("guide_cls", [AutoNormalGuide, AutoMultivariateNormal])
def test_svi_losses_and_guide_are_bit_identical_for_a_seed(guide_cls):
    losses, state = svi_run(0, guide_cls)
    again, state_again = svi_run(0, guide_cls)
    assert losses == again  # floats compared exactly
    assert same_state(state, state_again)
    other, _ = svi_run(1, guide_cls)
    assert other != losses


def mcmc_run(seed: int, chains: int = 2):
    mcmc = MCMC(NUTS(gmm()), num_warmup=8, num_samples=8, num_chains=chains, seed=seed, progress_bar=False)
    mcmc.run(None, {"y": data()})
    return mcmc.get_samples(group_by_chain=True), mcmc.get_sample_stats(group_by_chain=True)


def test_mcmc_draws_are_bit_identical_for_a_seed_whatever_the_global_generator():
    torch.manual_seed(0)
    draws, stats = mcmc_run(7)
    torch.manual_seed(999)  # the global generator plays no part
    before = torch.get_rng_state()
    again, stats_again = mcmc_run(7)
    assert torch.equal(before, torch.get_rng_state()), "MCMC must not draw from the global generator"
    assert same_state(draws, again) and same_state(stats, stats_again)
    other, _ = mcmc_run(8)
    assert not torch.equal(other["mu_k"], draws["mu_k"])


def test_fit_with_a_seed_is_bit_identical():
    y = {"y": data()}
    for method, kw in (("svi", dict(steps=30, num_samples=20)), ("nuts", dict(num_warmup=15, num_samples=10, num_chains=2))):
        a = fit(gmm(), y, method=method, seed=3, progress_bar=False, **kw)
        torch.manual_seed(12345)  # a seeded fit does not depend on the global state
        b = fit(gmm(), y, method=method, seed=3, progress_bar=False, **kw)
        c = fit(gmm(), y, method=method, seed=4, progress_bar=False, **kw)
        assert same_state(a.samples, b.samples), method
        assert a.losses == b.losses, method
        assert not torch.equal(a.samples["mu_k"], c.samples["mu_k"]), method


def test_infer_discrete_draws_are_bit_identical_for_a_seed():
    model = gmm()
    # Components that overlap, so that the draws are far from deterministic.
    draws = {"probs": torch.ones(4, 2), "mu_k": torch.tensor([-0.1, 0.1]).expand(4, 2), "sd_k": torch.full((4, 2), 3.0)}
    y = {"y": data()}
    a = infer_discrete(model, draws, None, y, seed=5)["z"]
    b = infer_discrete(model, draws, None, y, seed=5)["z"]
    c = infer_discrete(model, draws, None, y, seed=6)["z"]
    assert torch.equal(a.draws, b.draws) and torch.equal(a.probs, b.probs)
    assert not torch.equal(a.draws, c.draws)


SCRIPT = textwrap.dedent(
    """
    import json, sys, torch
    torch.set_num_threads(1)
    sys.path.insert(0, {root!r})
    from tests.reliability.test_reproducibility import data, gmm
    from quivers.inference import fit
    svi = fit(gmm(), {{"y": data()}}, steps=15, num_samples=5, seed=11, progress_bar=False)
    nuts = fit(gmm(), {{"y": data()}}, method="nuts", num_warmup=10, num_samples=5, num_chains=2,
               seed=11, progress_bar=False)
    print(json.dumps({{"losses": [x.hex() for x in svi.losses],
                      "svi": [float(v).hex() for v in svi.samples["mu_k"].flatten()],
                      "nuts": [float(v).hex() for v in nuts.samples["mu_k"].flatten()]}}))
    """
)


def test_results_do_not_depend_on_the_process_or_its_hash_seed():
    """Two fresh interpreters with different PYTHONHASHSEED values print
    the same bits: no set or dict order of names reaches the arithmetic."""
    outputs = []
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        run = subprocess.run(
            [sys.executable, "-c", SCRIPT.format(root=str(ROOT))],
            capture_output=True, text=True, env=env, cwd=ROOT, timeout=600,
        )
        assert run.returncode == 0, run.stderr[-3000:]
        outputs.append(json.loads(run.stdout.strip().splitlines()[-1]))
    assert outputs[0] == outputs[1]


# ---------------------------------------------------------------- the command line


def qvr(tmp_path, *argv: str) -> str:
    from quivers.cli import main

    out, err = io.StringIO(), io.StringIO()
    assert main(list(argv), out=out, err=err) == 0, err.getvalue()
    return out.getvalue()


@pytest.mark.parametrize("method", ["svi", "nuts"])
def test_qvr_fit_with_a_seed_writes_the_same_draws(tmp_path, method):
    """``qvr fit --seed S`` (default 0): the same printed summary and the
    same posterior draws, bit for bit, in the file ``--out`` writes."""
    import arviz as az

    model, data_file = tmp_path / "gmm.qvr", tmp_path / "data.json"
    model.write_text(seed.GMM.replace("FinSet 500", "FinSet 40"))
    data_file.write_text(json.dumps({"y": data().tolist()}))
    runs = ["--steps", "30", "--samples", "20"] if method == "svi" else ["--warmup", "10", "--samples", "10", "--chains", "2"]

    def run(seed: int, name: str):
        path = tmp_path / name
        printed = qvr(tmp_path, "fit", str(model), "--data", str(data_file), "--method", method, "--no-progress",
                      "--seed", str(seed), "--out", str(path), *runs)
        idata = az.from_netcdf(str(path))
        return printed.replace(str(path), "OUT"), idata.posterior["mu_k"].values.copy()

    printed, draws = run(0, "a.nc")
    printed_again, draws_again = run(0, "b.nc")
    _, other = run(1, "c.nc")
    assert printed == printed_again
    assert draws.tobytes() == draws_again.tobytes()
    assert draws.tobytes() != other.tobytes()


def test_qvr_sample_with_a_seed_writes_the_same_draws(tmp_path):
    model = tmp_path / "gmm.qvr"
    model.write_text(seed.GMM.replace("FinSet 500", "FinSet 40"))

    def run(seed: int, name: str) -> dict:
        qvr(tmp_path, "sample", str(model), "--num", "5", "--seed", str(seed), "--out", str(tmp_path / name))
        return json.loads((tmp_path / name).read_text())  # JSON floats round-trip exactly

    assert run(4, "a.json") == run(4, "b.json")
    assert run(4, "a.json") != run(5, "c.json")
