"""Case: the log likelihood of an HMM and its gradient (forward + backward).

K hidden states, T steps, Gaussian emissions; the parameters are initial
and transition logits and the K emission means, and each call computes the
log likelihood with the states summed out and back-propagates it to all
three. Implementations:

- ``quivers scan``: :func:`quivers.categories.markov.forward`, the
  composite of the step kernels bracketed as a balanced tree (depth
  ``O(log T)``);
- ``quivers program``: the same model as a program with a ``markov``
  block, through ``Program.log_joint`` (what SVI and NUTS call);
- ``torch loop``: the forward recursion written by hand, one
  ``logsumexp`` of a vector-matrix sum per step (depth ``T``);
- ``Pyro DiscreteHMM``: ``pyro.distributions.DiscreteHMM.log_prob``
  (Pyro is optional, imported lazily; its rows are skipped when absent).

Run it with ``python benchmarks/run.py --only hmm`` (the suite's table and
JSON), or alone with ``python -m benchmarks.hmm [--quick]``, which prints
the table and writes ``benchmarks/results/hmm.json``.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.report import Row, Target, standalone, time_row  # noqa: E402
from benchmarks.timing import Options, compare, pyro_or_none, threads  # noqa: E402

__all__ = ["run", "SIZES", "check_same_value"]

SIZES = [(1000, 4), (1000, 32), (10_000, 4), (10_000, 32)]
QUICK_SIZES = [(1000, 4), (10_000, 4)]


class Problem:
    """Data and parameters of one size; every implementation reads these."""

    def __init__(self, steps: int, k: int, seed: int = 0, dtype: torch.dtype = torch.float32) -> None:
        g = torch.Generator().manual_seed(seed)
        self.steps, self.k = steps, k
        self.init_logits = torch.randn(k, generator=g, dtype=dtype).requires_grad_()
        self.trans_logits = (torch.randn(k, k, generator=g, dtype=dtype) + 3 * torch.eye(k, dtype=dtype)).requires_grad_()
        self.mu = torch.linspace(-k, k, k, dtype=dtype).requires_grad_()
        states = torch.randint(0, k, (steps,), generator=g)
        self.y = self.mu.detach()[states] + torch.randn(steps, generator=g, dtype=dtype)

    def params(self) -> list[torch.Tensor]:
        return [self.init_logits, self.trans_logits, self.mu]

    def first(self) -> torch.Tensor:
        """The log law of the first observed state. Pyro's ``DiscreteHMM``
        reads ``initial_logits`` as the state before any transition, so
        its first observation comes after one step: the others start
        from the initial law pushed through the transition, and all four
        compute the same likelihood."""
        return torch.logsumexp(self.init_logits.log_softmax(-1)[:, None] + self.trans_logits.log_softmax(-1), 0)

    def emit(self) -> torch.Tensor:
        """``(T, K)`` log densities of each observation in each state."""
        return -0.5 * (self.y[:, None] - self.mu) ** 2 - 0.5 * math.log(2 * math.pi)


def _backward(value: torch.Tensor, p: Problem) -> float:
    for t in p.params():
        t.grad = None
    value.backward()
    return float(value.detach())


def quivers_scan(p: Problem):
    from quivers.categories.markov import forward

    def call() -> float:
        ll = forward(p.first(), p.trans_logits.log_softmax(-1), p.emit(), check=False)
        return _backward(ll, p)

    return call


def quivers_program(p: Problem):
    """``Program.log_joint`` of the model with its parameters given as
    latents, minus their (flat) priors: the chain's log likelihood."""
    from quivers.categories import FinSet
    from quivers.distributions import Categorical, Normal
    from quivers.programs import Program, markov, observe, sample, var

    T, K = FinSet("T", p.steps), FinSet("K", p.k)
    mu, z = var("mu"), var("z")
    prog = Program("hmm", T, T, [
        sample("init", K, Normal(0.0, 1.0)),
        sample("trans", K * K, Normal(0.0, 1.0)),
        sample("mu", K, Normal(0.0, 1.0)),
        markov("z", T, K, Categorical(logits=var("trans")), [observe("y", T, Normal(mu[z], 1.0))],
               init=Categorical(logits=var("init"))),
    ]).to(p.y.dtype)
    obs = {"y": p.y}
    flat = torch.distributions.Normal(torch.tensor(0.0, dtype=p.y.dtype), 1.0)

    def call() -> float:
        lat = {"init": p.first(), "trans": p.trans_logits, "mu": p.mu}
        lj = prog.log_joint(None, obs, lat, check_latents=False)
        ll = lj - sum(flat.log_prob(v).sum() for v in lat.values())
        return _backward(ll, p)

    return call


def torch_loop(p: Problem):
    """The forward recursion by hand, one step at a time."""

    def call() -> float:
        log_trans, emit = p.trans_logits.log_softmax(-1), p.emit()
        alpha = p.first() + emit[0]
        for t in range(1, p.steps):
            alpha = torch.logsumexp(alpha[:, None] + log_trans, 0) + emit[t]
        return _backward(torch.logsumexp(alpha, 0), p)

    return call


def pyro_hmm(p: Problem):
    """Pyro's ``DiscreteHMM.log_prob``, or None without Pyro."""
    if pyro_or_none() is None:
        return None
    import pyro.distributions as dist

    def call() -> float:
        hmm = dist.DiscreteHMM(p.init_logits, p.trans_logits, dist.Normal(p.mu, 1.0))
        return _backward(hmm.log_prob(p.y), p)

    return call


def check_same_value(steps: int = 200, k: int = 3) -> float:
    """The largest difference between the implementations' log likelihoods
    (float64), a sanity check that they compute the same thing."""
    p = Problem(steps, k, dtype=torch.float64)
    fns = {"scan": quivers_scan(p), "program": quivers_program(p), "loop": torch_loop(p)}
    py = pyro_hmm(p)
    if py is not None:
        fns["pyro"] = py
    values = {n: f() for n, f in fns.items()}
    return max(abs(v - values["loop"]) for v in values.values())


def run(opts: Options) -> list[Row]:
    rows: list[Row] = []
    have_pyro = pyro_or_none() is not None
    for steps, k in QUICK_SIZES if opts.quick else SIZES:
        p = Problem(steps, k)
        size = f"T={steps:,} K={k}"
        for nt in opts.thread_counts:
            with threads(nt):
                fns = {"scan": quivers_scan(p), "program": quivers_program(p), "loop": torch_loop(p)}
                py = pyro_hmm(p)
                if py is not None:
                    fns["pyro"] = py
                stats = compare(fns, rounds=opts.rounds, warmup=1, budget_s=opts.budget_s)
            case = "HMM log lik + grad"
            rows.append(time_row(case, size, nt, ("quivers scan", stats["scan"]),
                                 ("torch loop", stats["loop"]), Target("<=", 1.0, "<= 1x"), opts.clock))
            if "pyro" in stats:
                rows.append(time_row(case, size, nt, ("quivers scan", stats["scan"]),
                                     ("Pyro DiscreteHMM", stats["pyro"]), Target("<=", 1.0, "<= 1x"), opts.clock))
                rows.append(time_row(case, size, nt, ("quivers program", stats["program"]),
                                     ("Pyro DiscreteHMM", stats["pyro"]), None, opts.clock,
                                     note="Program.log_joint: the markov block with its priors and checks"))
    if not have_pyro:
        print("HMM: the Pyro rows are skipped because Pyro is not installed (pip install pyro-ppl)")
    return rows


def main(argv: list[str] | None = None) -> list[Row]:
    return standalone("hmm", "HMM log likelihood and gradient: quivers vs torch and Pyro", run, check_same_value, "log-likelihood", argv)


if __name__ == "__main__":
    main()
