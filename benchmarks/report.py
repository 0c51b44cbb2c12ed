"""Rows of results, the plain table and the JSON file.

A :class:`Row` compares quivers with one baseline on one case: both
measurements, their ratio (quivers / baseline for times, quivers /
baseline for effective samples per second), the target and whether it was
met. Rows without a baseline (compile time) carry an absolute target.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from benchmarks.timing import Stats, judge_clock, ratio

__all__ = ["Row", "Target", "time_row", "table", "write_json", "standalone"]


@dataclass(frozen=True)
class Target:
    """``ratio <= bound`` (``op="<="``) or ``ratio >= bound`` (``op=">="``)."""

    op: str
    bound: float
    text: str

    def met(self, value: float) -> bool:
        return value <= self.bound if self.op == "<=" else value >= self.bound


@dataclass
class Row:
    case: str
    size: str
    threads: int
    impl: str
    impl_value: float
    baseline: str | None
    base_value: float | None
    unit: str
    ratio: float | None
    clock: str
    target: str | None = None
    met: bool | None = None
    note: str = ""
    extra: dict = field(default_factory=dict)


def time_row(
    case: str,
    size: str,
    n_threads: int,
    impl: tuple[str, Stats],
    base: tuple[str, Stats],
    target: Target | None,
    clock: str,
    note: str = "",
) -> Row:
    """A row comparing two timings, judged on the clock ``clock`` resolves to."""
    c = judge_clock(clock, n_threads)
    (iname, istats), (bname, bstats) = impl, base
    r = ratio(istats, bstats, c)
    pick = (lambda s: s.cpu) if c == "cpu" else (lambda s: s.wall)
    return Row(
        case, size, n_threads, iname, pick(istats) * 1e3, bname, pick(bstats) * 1e3, "ms", r, c,
        target.text if target else None, target.met(r) if target else None, note,
        {"impl": istats.to_json(), "baseline": bstats.to_json(),
         "ratio_wall": ratio(istats, bstats, "wall"), "ratio_cpu": ratio(istats, bstats, "cpu")},
    )


def _fmt(v: float | None, unit: str = "") -> str:
    if v is None:
        return "-"
    if abs(v) >= 100:
        return f"{v:,.0f}{unit}"
    if abs(v) >= 10:
        return f"{v:.1f}{unit}"
    return f"{v:.3g}{unit}"


def table(rows: Sequence[Row]) -> str:
    """The rows as a plain (Markdown-compatible) table."""
    head = ["case", "size", "thr", "quivers", "baseline", "value", "ratio", "clock", "target", "met"]
    lines = []
    for r in rows:
        verdict = "-" if r.met is None else ("met" if r.met else "NOT met")
        lines.append([
            r.case, r.size, str(r.threads) if r.threads else "-", f"{_fmt(r.impl_value)} {r.unit}",
            r.baseline or "-", "-" if r.base_value is None else f"{_fmt(r.base_value)} {r.unit}",
            "-" if r.ratio is None else f"{r.ratio:.3g}x", r.clock, r.target or "-", verdict,
        ])
    widths = [max(len(h), *(len(l[i]) for l in lines)) if lines else len(h) for i, h in enumerate(head)]
    out = ["| " + " | ".join(h.ljust(w) for h, w in zip(head, widths)) + " |",
           "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += ["| " + " | ".join(c.ljust(w) for c, w in zip(l, widths)) + " |" for l in lines]
    return "\n".join(out)


def machine() -> dict:
    """What the numbers were measured on."""
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "default_threads": torch.get_num_threads(),
    }


def write_json(rows: Sequence[Row], path: Path, notes: Sequence[str] = (), meta: dict | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "machine": machine(),
        **(meta or {}),
        "rows": [asdict(r) for r in rows],
        "notes": list(notes),
    }
    path.write_text(json.dumps(payload, indent=2, default=str))
    return path


def standalone(name: str, description: str, run, check, quantity: str, argv: Sequence[str] | None = None) -> list[Row]:
    """``python -m benchmarks.<name> [--quick]``: print ``check()`` (the
    largest difference of ``quantity`` between the implementations), run
    the case, print its table and write ``benchmarks/results/<name>.json``."""
    import argparse

    from benchmarks.timing import Options

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="the smaller sizes and fewer rounds")
    parser.add_argument("--budget", type=float, default=20.0, help="seconds one comparison may take at most")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / f"{name}.json")
    args = parser.parse_args(argv)
    print(f"largest {quantity} difference between implementations: {check():.3g}")
    rows = run(Options(quick=args.quick, budget_s=args.budget))
    print(table(rows))
    print(f"\nwrote {write_json(rows, args.out)}")
    return rows
