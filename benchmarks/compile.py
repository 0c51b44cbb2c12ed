"""Case 4: loading a generated QVR program of 1,000 statements.

The program mixes the statement kinds in fixed proportions: samples from
several families, lets with arithmetic and function calls, observes, and
marginalize blocks with an observe in their body (a block and its body
count as two statements). The whole of ``quivers.dsl.loads`` is timed
(parse, check, build of the program with its compiled expressions; CPU
time, as for the other single-threaded rows), and each phase separately
(wall time, for orientation).
"""

from __future__ import annotations

import statistics
import time

from benchmarks.report import Row
from benchmarks.timing import Options, judge_clock

__all__ = ["run", "generate"]


def generate(statements: int = 1000) -> str:
    """QVR source of one program with ``statements`` statements."""
    lines = ["object Item : FinSet 50", "object K : FinSet 4", "program big : Item -> Item"]
    body: list[str] = ["    sample s0 : K <- Normal(0.0, 1.0)"]
    latents = ["s0"]
    i = 1
    while len(body) < statements - 1:
        a, b = latents[-1], latents[max(0, len(latents) - 3)]
        kind = i % 10
        if kind in (0, 1):
            body.append(f"    sample s{i} : K <- Normal({a} * 0.5, 1.0 + exp({b} / 10.0))")
            latents.append(f"s{i}")
        elif kind == 2:
            body.append(f"    sample s{i} : K <- HalfNormal(2.0)")
            latents.append(f"s{i}")
        elif kind in (3, 4, 5):
            body.append(f"    let s{i} = {a} * 0.5 + {b} ^ 2 / (1.0 + {a} ^ 2) - 0.25 * {b}")
            latents.append(f"s{i}")
        elif kind in (6, 7):
            body.append(f"    observe y{i} : Item <- Normal(sum({a}), 1.0 + softplus(sum({b})))")
        elif kind == 8:
            body.append(f"    factor -0.5 * sum({a} ^ 2)")
        else:
            w = f"w{i}"
            body.append(f"    sample {w} : K <- HalfNormal(1.0)")
            body.append(f"    marginalize z{i} : K <- Categorical({w})")
            body.append(f"        observe y{i} : Item <- Normal({a}[z{i}], 1.0 + {w}[z{i}])")
            latents.append(w)
        i += 1
    body = body[: statements - 1]
    body.append(f"    return {latents[-1]}")
    return "\n".join(lines + body + ["export big"]) + "\n"


def _phases(src: str) -> dict[str, float]:
    from quivers.dsl import check, compile_module, parse

    t0 = time.perf_counter()
    tree = parse(src)
    t1 = time.perf_counter()
    check(tree, src)
    t2 = time.perf_counter()
    compile_module(tree, src)
    t3 = time.perf_counter()
    return {"parse": t1 - t0, "check": t2 - t1, "check+build": t3 - t2}


def run(opts: Options) -> list[Row]:
    from quivers.dsl import loads

    src = generate(1000)
    loads(src)  # grammar tables and imports, once
    walls, cpus = [], []
    for _ in range(3 if opts.quick else 7):
        c, t = time.process_time(), time.perf_counter()
        loads(src)
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    # Loading is single-threaded Python: judged on CPU time like the other
    # single-threaded rows (see benchmarks/timing.py).
    clock = judge_clock(opts.clock, 1)
    total = statistics.median(cpus if clock == "cpu" else walls)
    phases = _phases(src)
    note = ", ".join(f"{k} {v * 1e3:.0f} ms" for k, v in phases.items())
    return [Row("QVR compile", "1,000 statements", 1, "quivers", total, None, None, "s", None, clock,
                "< 1 s", total < 1.0, note, {"phases_s": phases, "runs_wall_s": walls, "runs_cpu_s": cpus})]


if __name__ == "__main__":
    from quivers.dsl import loads

    src = generate(1000)
    print(src[:600])
    t = time.perf_counter()
    loads(src)
    print(f"loads: {time.perf_counter() - t:.3f} s")
