"""Peak memory of the largest case, each implementation in a fresh process.

``python -m benchmarks.memory IMPL`` builds the GMM at N=100,000, K=32 with
``IMPL`` (``quivers`` or ``torch``), then resets the process's peak
resident set size (Linux: ``/proc/self/clear_refs``), runs a few SVI
steps and prints, as JSON, the resident set before the steps, its peak
during them, and the difference: the memory one SVI step needs on top of
the data and the model. The peak must be reset because loading the model
(imports, the prior draws of the guide's initialization) peaks higher than
a step: without the reset the growth reads 0.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path

from benchmarks.report import Row

__all__ = ["run", "measure", "measure_peer"]

ROOT = Path(__file__).resolve().parents[1]
N, K = 100_000, 32


def _status_mib(field: str) -> float | None:
    """``VmRSS`` or ``VmHWM`` (peak) of this process in MiB, None where /proc is absent."""
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024.0  # kB
    return None


def _reset_peak() -> bool:
    """Reset the peak resident set size to the current one (Linux 4.0+)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # kilobytes on Linux


def measure(impl: str) -> dict:
    import torch

    from benchmarks import gmm
    from benchmarks import models as M

    torch.set_num_threads(1)
    torch.manual_seed(0)
    y = M.simulate_gmm(N, K)
    q, guide = gmm.quivers_step(y, K)
    step = q if impl == "quivers" else gmm.torch_step(y, K, guide)
    step()  # first-call allocations (optimizer state) belong to the steady state
    process_peak = _peak_mib()
    if _reset_peak() and _status_mib("VmRSS") is not None:
        before = _status_mib("VmRSS")
        for _ in range(3):
            step()
        after = _status_mib("VmHWM")
        how = "peak RSS during the steps, reset before them"
    else:  # no /proc: the process peak, which may hide the steps' own
        before = _peak_mib()
        for _ in range(3):
            step()
        after = _peak_mib()
        how = "ru_maxrss (could not reset the peak; the growth may read 0)"
    return {"impl": impl, "rss_before_mib": before, "peak_after_mib": after, "step_mib": after - before,
            "process_peak_mib": max(process_peak, _peak_mib()), "how": how}


def _peak_during(fn) -> tuple[float, float]:
    """Resident set before ``fn()`` and its peak during it, in MiB (the
    process peak when it cannot be reset)."""
    if _reset_peak() and _status_mib("VmRSS") is not None:
        before = _status_mib("VmRSS")
        fn()
        return before, _status_mib("VmHWM")
    before = _peak_mib()
    fn()
    return before, _peak_mib()


def measure_peer(what: str) -> dict:
    """Peak memory of quivers against NumPyro (``benchmarks.peers``):
    ``what`` is ``{quivers,numpyro}-{nuts,svi}``. NUTS: the seed mixture
    (N=1,000, K=2), 4 chains x (50 + 50); SVI: one step at N=100,000,
    K=32. Each runs once first (NumPyro compiles, quivers allocates its
    optimizer state), so the measured run is the steady state."""
    import os

    os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    import torch

    from benchmarks import models as M
    from benchmarks import peers

    torch.set_num_threads(1)
    impl, case = what.split("-")
    if case == "nuts":
        prog, obs, model, args, _ = peers.NUTS_MODELS["seed mixture N=1,000 K=2"]()
        if impl == "quivers":
            fn = lambda: peers.quivers_run(prog, obs, 4, 50, 50)  # noqa: E731
        else:
            fn = lambda: peers.numpyro_run(model, args, 4, 50, 50)  # noqa: E731
    else:
        torch.manual_seed(0)
        y = M.simulate_gmm(N, K)
        if impl == "quivers":
            from benchmarks.gmm import quivers_step

            fn = quivers_step(y, K)[0]
        else:
            fn = peers.numpyro_svi_step(y, K)
    fn()
    before, after = _peak_during(fn)
    return {"impl": what, "rss_before_mib": before, "peak_after_mib": after, "step_mib": after - before}


def _in_subprocess(impl: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.memory", impl], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(opts) -> list[Row]:
    q, t = _in_subprocess("quivers"), _in_subprocess("torch")
    return [Row("peak memory, GMM SVI step", f"N={N:,} K={K}", 1, "quivers", q["step_mib"], "torch by hand",
                t["step_mib"], "MiB", q["step_mib"] / t["step_mib"] if t["step_mib"] > 0 else None, "rss",
                None, None, f"peak RSS during the steps: quivers {q['peak_after_mib']:.0f} MiB, torch {t['peak_after_mib']:.0f} MiB",
                {"quivers": q, "torch": t})]


if __name__ == "__main__":
    print(json.dumps(measure(sys.argv[1]) if sys.argv[1] in ("quivers", "torch") else measure_peer(sys.argv[1])))
