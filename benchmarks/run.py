"""Run the benchmark suite: ``python benchmarks/run.py [--quick] [--only gmm,grouped,...]``.

Cases, in order: ``gmm`` (one SVI step on the seed mixture, against torch
by hand and Pyro), ``grouped`` (the grouped mixture against torch by
hand), ``hmm`` (HMM log likelihood; ``benchmarks/hmm.py``, pending until it
exists), ``lda`` (LDA's potential and gradient for a batch of NUTS chains,
against torch by hand and Pyro), ``compile`` (loading a 1,000-statement QVR program), ``nuts``
(eight schools, ESS per second against Pyro), ``memory`` (peak memory
of the largest GMM case), ``peers`` (NUTS and SVI steps against
NumPyro's compiled ones, single-threaded) and ``planning`` (discrete
latents written as plain sample sites and summed by a plan, against the
``marginalize`` blocks by hand and Pyro's ``TraceEnum_ELBO``).

Every comparison runs in this process, alternating the implementations,
once single-threaded and once with torch's default threads. The table
goes to stdout and the rows, with both clocks and the machine, to
``benchmarks/results/<time>.json`` (git-ignored).

A case module exposes ``run(opts: benchmarks.timing.Options) ->
list[benchmarks.report.Row]``; see benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.report import Row, table, write_json  # noqa: E402
from benchmarks.timing import DEFAULT_THREADS, Options  # noqa: E402

CASES = ["gmm", "grouped", "hmm", "lda", "deduction", "compile", "nuts", "memory", "peers", "planning"]


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="fewer rounds and the smaller sizes: a smoke run")
    p.add_argument("--only", default=",".join(CASES), help=f"comma-separated cases among {', '.join(CASES)}")
    p.add_argument("--clock", choices=["auto", "wall", "cpu"], default="auto",
                   help="clock the ratios are judged on; auto: CPU time single-threaded, wall time otherwise")
    p.add_argument("--threads", default=None,
                   help=f"comma-separated torch thread counts of the rows (default 1,{DEFAULT_THREADS})")
    p.add_argument("--budget", type=float, default=20.0, help="seconds one comparison may take at most")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results", help="folder of the JSON file")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> list[Row]:
    args = _parse(argv)
    only = [c.strip() for c in args.only.split(",") if c.strip()]
    unknown = [c for c in only if c not in CASES]
    if unknown:
        sys.exit(f"unknown case(s) {unknown}; choose among {CASES}")
    counts = (1, DEFAULT_THREADS) if args.threads is None else tuple(int(t) for t in args.threads.split(","))
    opts = Options(quick=args.quick, clock=args.clock, thread_counts=tuple(dict.fromkeys(counts)),
                   budget_s=args.budget)
    rows: list[Row] = []
    notes: list[str] = []
    for case in only:
        if case == "hmm" and importlib.util.find_spec("benchmarks.hmm") is None:
            msg = "HMM: pending (benchmarks/hmm.py, written with the HMM support, does not exist yet)"
            print(msg, flush=True)
            notes.append(msg)
            continue
        t = time.perf_counter()
        print(f"running {case} ...", flush=True)
        module = importlib.import_module(f"benchmarks.{case}")
        new = module.run(opts)
        rows.extend(new)
        print(table(new), f"\n({case}: {time.perf_counter() - t:.0f} s)\n", flush=True)
    missed = [r for r in rows if r.met is False]
    print(table(rows))
    if missed:
        print(f"\n{len(missed)} target(s) NOT met: "
              + "; ".join(f"{r.case} {r.size} thr={r.threads} vs {r.baseline or 'target'}" for r in missed))
    path = write_json(rows, args.out / time.strftime("%Y%m%d-%H%M%S.json"), notes,
                      {"options": vars(opts) | {"thread_counts": list(opts.thread_counts)}})
    print(f"\nwrote {path}")
    return rows


if __name__ == "__main__":
    main()
