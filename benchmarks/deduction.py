"""Case: the inside pass of a PCFG and its gradient (inside + outside).

A dense PCFG in Chomsky normal form with N nonterminals and V words; each
call computes the log probability of a batch of sentences of length n and
back-propagates it to the rule logits (whose gradient is the expected rule
counts). Implementations:

- ``quivers``: :func:`quivers.deduction.inside` in ``LOG``, two semiring
  contractions per span width over every start and sentence at once;
- ``torch CKY``: the recursion written by hand in log space, one
  ``logsumexp`` over the splits of a broadcast sum and one over the rules
  per width;
- ``torch CKY (matmul)``: by hand too, with the inner sums as matrix
  products of exponentials, each split shifted by its best pair and all
  splits by the best of those (the fastest plain-torch form we know; it has
  no exact path for entries that underflow, which a dense random grammar
  does not produce);
- ``Torch-Struct``: ``torch_struct.SentCFG`` (optional, imported lazily; its
  row is skipped when it is absent).

Run it with ``python benchmarks/run.py --only deduction``, or alone with
``python -m benchmarks.deduction [--quick]``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.report import Row, Target, standalone, time_row  # noqa: E402
from benchmarks.timing import Options, compare, threads  # noqa: E402

__all__ = ["run", "SIZES", "check_same_value"]

SIZES = [(30, 40, 8)]
QUICK_SIZES = [(30, 20, 4)]


class Problem:
    """A random dense PCFG and a batch of sentences."""

    def __init__(self, n_cat: int, length: int, batch: int, vocab: int = 100, seed: int = 0,
                 dtype: torch.dtype = torch.float32) -> None:
        g = torch.Generator().manual_seed(seed)
        self.n_cat, self.length, self.batch = n_cat, length, batch
        self.logits = torch.randn(n_cat, n_cat * n_cat + vocab, generator=g, dtype=dtype).requires_grad_()
        self.root_logits = torch.randn(n_cat, generator=g, dtype=dtype).requires_grad_()
        self.words = torch.randint(0, vocab, (batch, length), generator=g)
        self.vocab = vocab

    def params(self) -> list[torch.Tensor]:
        return [self.logits, self.root_logits]

    def weights(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        n = self.n_cat
        rules = self.logits.log_softmax(-1)
        return rules[:, : n * n].reshape(n, n, n), rules[:, n * n :], self.root_logits.log_softmax(-1)


def _backward(value: torch.Tensor, p: Problem) -> float:
    for t in p.params():
        t.grad = None
    value.backward()
    return float(value.detach())


def quivers_inside(p: Problem):
    from quivers.deduction import inside

    def call() -> float:
        binary, lexical, root = p.weights()
        return _backward(inside(binary, lexical, p.words, root=root).total.sum(), p)

    return call


def _chart_loop(p: Problem, combine):
    """The CKY recursion over a list of charts, one ``(b, n - w + 1, N)``
    tensor per width; ``combine(left, right, binary)`` gives the next width."""

    def call() -> float:
        binary, lexical, root = p.weights()
        n = p.length
        chart = [None, lexical.t()[p.words]]
        for w in range(2, n + 1):
            starts = n - w + 1
            left = torch.stack([chart[k][:, :starts] for k in range(1, w)], 1)
            right = torch.stack([chart[w - k][:, k : k + starts] for k in range(1, w)], 1)
            chart.append(combine(left, right, binary))
        total = torch.logsumexp(chart[n][:, 0] + root, -1).sum()
        return _backward(total, p)

    return call


def torch_cky(p: Problem):
    n = p.n_cat

    def combine(left, right, binary):
        pairs = torch.logsumexp(left[..., :, None] + right[..., None, :], 1)  # (b, s, B, C)
        flat = pairs.reshape(*pairs.shape[:2], 1, n * n)
        return torch.logsumexp(flat + binary.reshape(n, n * n), -1)

    return _chart_loop(p, combine)


def torch_cky_matmul(p: Problem):
    n = p.n_cat

    def combine(left, right, binary):
        # shift each split by its best pair, and all splits by the best of those
        lmax = left.amax(-1, keepdim=True).detach()
        rmax = right.amax(-1, keepdim=True).detach()
        best = lmax + rmax
        top = best.amax(1, keepdim=True)
        pairs = torch.einsum("bksi,bksj->bsij", (left - lmax + (best - top)).exp(), (right - rmax).exp())
        flat = pairs.reshape(*pairs.shape[:2], n * n)
        return (flat @ binary.reshape(n, n * n).exp().t()).log() + top.squeeze(1)

    return _chart_loop(p, combine)


def torch_struct_or_none():
    try:
        import torch_struct  # noqa: F401
    except ImportError:
        return None
    return torch_struct


def torch_struct_cfg(p: Problem):
    """``torch_struct.SentCFG.partition`` on the same grammar (no
    preterminal split: every nonterminal is also a preterminal)."""
    ts = torch_struct_or_none()
    if ts is None:
        return None

    def call() -> float:
        binary, lexical, root = p.weights()
        terms = lexical.t()[p.words]  # (b, n, T)
        rules = binary.reshape(p.n_cat, p.n_cat, p.n_cat)
        # SentCFG splits nonterminals and preterminals: all N are both here
        full = torch.full((p.n_cat, 2 * p.n_cat, 2 * p.n_cat), -1e9, dtype=rules.dtype)
        full = full.clone()
        for left in (0, 1):
            for right in (0, 1):
                full[:, left * p.n_cat:(left + 1) * p.n_cat, right * p.n_cat:(right + 1) * p.n_cat] = rules
        batch = p.batch
        dist = ts.SentCFG((terms, full.expand(batch, -1, -1, -1), root.expand(batch, -1)))
        return _backward(dist.partition.sum(), p)

    return call


def check_same_value(n_cat: int = 5, length: int = 7, batch: int = 3) -> float:
    """The largest difference between the implementations' log
    likelihoods (float64), a sanity check that they compute the same thing."""
    p = Problem(n_cat, length, batch, vocab=6, dtype=torch.float64)
    values = {name: f() for name, f in
              {"quivers": quivers_inside(p), "loop": torch_cky(p), "matmul": torch_cky_matmul(p)}.items()}
    return max(abs(v - values["loop"]) for v in values.values())


def run(opts: Options) -> list[Row]:
    rows: list[Row] = []
    have_struct = torch_struct_or_none() is not None
    for n_cat, length, batch in QUICK_SIZES if opts.quick else SIZES:
        p = Problem(n_cat, length, batch)
        size = f"N={n_cat} n={length} batch={batch}"
        for nt in opts.thread_counts:
            with threads(nt):
                fns = {"quivers": quivers_inside(p), "torch": torch_cky(p), "matmul": torch_cky_matmul(p)}
                if have_struct:
                    fns["struct"] = torch_struct_cfg(p)
                stats = compare(fns, rounds=opts.rounds, warmup=1, budget_s=opts.budget_s)
            case = "PCFG inside + grad"
            rows.append(time_row(case, size, nt, ("quivers", stats["quivers"]),
                                 ("torch CKY", stats["torch"]), Target("<=", 1.0, "<= 1x"), opts.clock))
            rows.append(time_row(case, size, nt, ("quivers", stats["quivers"]),
                                 ("torch CKY (matmul)", stats["matmul"]), None, opts.clock,
                                 note="the hand-written CKY with shifted exponentials and matmuls"))
            if "struct" in stats:
                rows.append(time_row(case, size, nt, ("quivers", stats["quivers"]),
                                     ("Torch-Struct", stats["struct"]), Target("<=", 1.0, "<= 1x"),
                                     opts.clock))
    if not have_struct:
        print("deduction: the Torch-Struct row is skipped because it is not installed "
              "(pip install torch-struct)")
    return rows


def main(argv: list[str] | None = None) -> list[Row]:
    return standalone("deduction", "PCFG inside + gradient: quivers vs hand-written torch", run, check_same_value,
                      "log-likelihood", argv)


if __name__ == "__main__":
    main()
