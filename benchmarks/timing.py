"""Timing for the benchmarks: alternating runs, medians, thread settings.

Every comparison times its implementations in the same process, a burst
of about 10 ms of consecutive calls of each in turn (the order rotating
every round so that none always runs first), after a warm-up, and reports
the median time per call of each: the steady state of a loop that calls
one step again and again, not a call made right after another library's
(see :func:`compare`). Both clocks are
kept: wall time (``perf_counter``) and the process's CPU time
(``process_time``). On a machine shared with other work the scheduler
preempts long calls more often than short ones, which inflates wall-clock
medians unevenly; a single-threaded call's CPU time is what its wall time
would be on an idle machine, so single-threaded rows are judged on CPU time
and multi-threaded rows, where CPU time counts every core, on wall time
(``--clock`` overrides this).

Examples
--------
>>> stats = compare({"a": lambda: sum(range(100)), "b": lambda: sum(range(10))}, rounds=5, warmup=1)
>>> sorted(stats), stats["a"].rounds
(['a', 'b'], 5)
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import torch

__all__ = ["Options", "Stats", "compare", "threads", "DEFAULT_THREADS", "judge_clock", "ratio", "pyro_or_none",
           "numpyro_or_none"]

DEFAULT_THREADS = torch.get_num_threads()
"""Torch's intra-op threads when the suite started: the default-threaded rows."""


@dataclass(frozen=True)
class Options:
    """How the suite runs: ``quick`` shrinks rounds and sizes for a smoke
    run, ``clock`` is ``auto``, ``wall`` or ``cpu``, ``thread_counts`` the
    torch thread settings of the rows, ``budget_s`` the most wall time one
    comparison may take."""

    quick: bool = False
    clock: str = "auto"
    thread_counts: tuple[int, ...] = (1, DEFAULT_THREADS)
    budget_s: float = 20.0

    @property
    def rounds(self) -> int:
        return 7 if self.quick else 31


def pyro_or_none():
    """Pyro, imported lazily, or None when it is not installed (its rows are then skipped)."""
    try:
        import pyro
    except ImportError:
        return None
    return pyro


def numpyro_or_none():
    """NumPyro (with JAX), imported lazily, or None when it is not installed."""
    try:
        import jax  # noqa: F401
        import numpyro
    except ImportError:
        return None
    return numpyro


@dataclass(frozen=True)
class Stats:
    """Medians (seconds) of one implementation's calls."""

    wall: float
    cpu: float
    wall_min: float
    rounds: int

    def to_json(self) -> dict:
        return {
            "wall_median_ms": self.wall * 1e3,
            "cpu_median_ms": self.cpu * 1e3,
            "wall_min_ms": self.wall_min * 1e3,
            "rounds": self.rounds,
        }


@contextlib.contextmanager
def threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` torch intra-op threads."""
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def compare(
    fns: Mapping[str, Callable[[], object]],
    rounds: int = 30,
    warmup: int = 3,
    budget_s: float | None = None,
    burst_s: float = 0.01,
) -> dict[str, Stats]:
    """Time each function of ``fns`` alternately and return their medians.

    Each round runs every function once in a burst of consecutive calls
    (the order rotates every round, and is reversed every other cycle of
    rotations, so that each function runs after each other as often) and records the burst's time per
    call; ``rounds`` bursts of each are timed after ``warmup`` untimed
    calls. A burst lasts about ``burst_s`` (one call for functions slower
    than that): a training loop calls its step again and again, and a
    single call timed right after another library's would time that
    library's eviction of the caches instead (a 5 ms Pyro step between
    calls made a 0.8 ms quivers step 36% slower and the hand-written one
    18%). The burst is sized on each function's fastest warm-up call: a
    first call that does work once (a plan binding its data) would
    otherwise shrink that function's bursts, and time more of its calls
    cold. ``burst_s=0`` times single calls. With ``budget_s`` the rounds
    stop early once that much wall time has passed (at least five rounds
    are always run). The garbage collector is left as it is in use: the
    collections a library's allocations cause are part of its cost.
    """
    names = list(fns)
    once: dict[str, float] = {}
    for _ in range(warmup):
        for name in names:
            w0 = time.perf_counter()
            fns[name]()
            once[name] = min(time.perf_counter() - w0, once.get(name, float("inf")))
    burst = {n: max(1, min(100, round(burst_s / max(once.get(n, burst_s), 1e-9)))) for n in names}
    wall: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    start = time.perf_counter()
    for r in range(rounds):
        # rotations of the order and, every other cycle, of its reverse: each function follows each other
        # as often (with one order only, of three, one follows the slowest two times in three)
        ring = names if (r // len(names)) % 2 == 0 else names[::-1]
        order = ring[r % len(names):] + ring[: r % len(names)]
        for name in order:
            fn, b = fns[name], burst[name]
            c0, w0 = time.process_time(), time.perf_counter()
            for _ in range(b):
                fn()
            w1, c1 = time.perf_counter(), time.process_time()
            wall[name].append((w1 - w0) / b)
            cpu[name].append((c1 - c0) / b)
        if budget_s is not None and r >= 4 and time.perf_counter() - start > budget_s:
            break
    return {
        n: Stats(statistics.median(wall[n]), statistics.median(cpu[n]), min(wall[n]), len(wall[n]))
        for n in names
    }


def judge_clock(clock: str, n_threads: int) -> str:
    """The clock a row is judged on: ``"cpu"`` or ``"wall"``."""
    if clock != "auto":
        return clock
    return "cpu" if n_threads == 1 else "wall"


def ratio(a: Stats, b: Stats, clock: str) -> float:
    """``a / b`` on the chosen clock."""
    return (a.cpu / b.cpu) if clock == "cpu" else (a.wall / b.wall)
