"""Every script in examples/ runs as a user would run it, and says what it
claims to: the README's main job recovers the seed's mixture, the algebra
tour prints its exact numbers. Each runs under ``python -W error``: a
warning (a library's, or a ConvergenceWarning of a fit that has not
converged) fails it. (QVR files in examples/ are loaded by tests/dsl; code
blocks of docs/ by tests/docs.)"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted((ROOT / "examples").glob("*.py"))


def run(script: Path) -> str:
    proc = subprocess.run(
        [sys.executable, "-W", "error", str(script)], cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={k: v for k, v in os.environ.items() if k != "QUIVERS_QUICK"},
    )
    assert proc.returncode == 0, f"{script.name} failed:\n{proc.stderr[-3000:]}"
    return proc.stdout


def test_every_example_script_is_checked_here():
    assert {p.name for p in SCRIPTS} == {"algebra_demo.py", "fit_gmm.py", "fit_distributed.py"}, (
        "a new example script needs a test of what it prints"
    )


def test_main_job_recovers_the_seed_mixture():
    out = run(ROOT / "examples" / "fit_gmm.py")
    comps = re.findall(r"mu = ([-+][\d.]+) \(true ([-+][\d.]+)\), sd = ([\d.]+) \(true ([\d.]+)\)", out)
    assert len(comps) == 2, out
    for mu, mu_true, sd, sd_true in comps:
        assert abs(float(mu) - float(mu_true)) < 0.15
        assert abs(float(sd) - float(sd_true)) < 0.15
    agree = float(re.search(r"agree with the simulated ones for ([\d.]+)%", out).group(1))
    assert agree > 95
    assert "SVI, 1000 steps of AutoMultivariateNormal" in out and '(method="svi" given)' in out


def test_algebra_tour_prints_the_exact_grouped_likelihood():
    out = run(ROOT / "examples" / "algebra_demo.py")
    per_group = re.search(r"log p\(y_g\) per group: tensor\(\[([^\]]+)\]\)", out).group(1)
    total = float(re.search(r"total: (-?[\d.]+)", out).group(1))
    groups = [float(v) for v in per_group.split(",")]
    assert len(groups) == 3
    assert total == pytest.approx(sum(groups), abs=1e-3)


def test_distributed_fit_on_two_processes_recovers_the_components():
    out = run(ROOT / "examples" / "fit_distributed.py")
    assert "2 processes, rows per rank ~300" in out and "component means [-4, 4]" in out, out
