"""Case 2: one SVI step on the grouped mixture (one component per group).

quivers (``marginalize z : K ... [over=G]`` with ``observe ... [via=group]``)
against the same model written by hand: per-row log densities summed into
a ``(G, K)`` accumulator with ``index_add``, then a logsumexp over ``K``.
"""

from __future__ import annotations

import torch

from benchmarks import models as M
from benchmarks.report import Row, Target, time_row
from benchmarks.timing import Options, compare, threads

__all__ = ["run", "quivers_step", "torch_step", "SIZES"]

SIZES = [(1_000, 20, 3), (100_000, 1_000, 8)]
LR = 0.01


def quivers_step(y: torch.Tensor, group: torch.Tensor, g: int, k: int):
    from quivers.dsl import loads
    from quivers.inference import ELBO, SVI, AutoNormalGuide
    from quivers.inference.svi import adam

    model = loads(M.grouped_source(y.shape[-1], g, k)).morphism
    guide = AutoNormalGuide(model, observed_names={"y", "group"})
    svi = SVI(model, guide, adam(guide.parameters(), LR), ELBO())
    obs = {"y": y, "group": group}
    return (lambda: svi.step(None, obs)), guide


def torch_step(y: torch.Tensor, group: torch.Tensor, g: int, k: int, guide):
    q = M.MeanField(guide.loc, guide.raw_scale)
    opt = torch.optim.Adam(q.params(), lr=LR, fused=True)  # the optimizer fit() gives quivers
    yc = y.unsqueeze(-1)
    gk = g * k

    def step() -> float:
        opt.zero_grad(set_to_none=True)
        u, log_q = q.draw()
        u_probs, mu, u_sd = u[:gk].reshape(g, k), u[gk : gk + k], u[gk + k :]
        probs, sd = u_probs.exp(), u_sd.exp()
        log_q = log_q - u_probs.sum() - u_sd.sum()
        log_prior = M.half_normal_lp(probs) + M.normal_lp(mu, 0.0, 5.0) + M.half_normal_lp(sd)
        log_w = probs.log() - probs.sum(-1, keepdim=True).log()
        ll = -sd.log() - M.HALF_LOG_2PI - 0.5 * ((yc - mu) / sd) ** 2
        acc = log_w.index_add(0, group, ll)
        loss = -(log_prior + torch.logsumexp(acc, -1).sum() - log_q)
        loss.backward()
        opt.step()
        return float(loss.detach())

    return step


def run(opts: Options) -> list[Row]:
    rows = []
    for n, g, k in SIZES[:1] if opts.quick else SIZES:
        y, group = M.simulate_grouped(n, g, k)
        for nt in opts.thread_counts:
            with threads(nt):
                torch.manual_seed(0)
                q, guide = quivers_step(y, group, g, k)
                stats = compare({"quivers": q, "torch": torch_step(y, group, g, k, guide)},
                                rounds=opts.rounds, budget_s=opts.budget_s)
            rows.append(time_row("grouped SVI step", f"N={n:,} G={g:,} K={k}", nt, ("quivers", stats["quivers"]),
                                 ("torch by hand", stats["torch"]), Target("<=", 1.3, "<= 1.3x"), opts.clock))
    return rows


def check_same_loss(n: int = 300, g: int = 7, k: int = 3) -> float:
    """Largest loss difference between quivers and the hand-written step
    over a few steps with shared random draws (float64)."""
    y, group = M.simulate_grouped(n, g, k)
    torch.set_default_dtype(torch.float64)
    try:
        torch.manual_seed(0)
        q, guide = quivers_step(y.double(), group, g, k)
        t = torch_step(y.double(), group, g, k, guide)
        worst = 0.0
        for i in range(3):
            torch.manual_seed(i)
            a = t()
            torch.manual_seed(i)
            worst = max(worst, abs(a - q()))
        return worst
    finally:
        torch.set_default_dtype(torch.float32)


if __name__ == "__main__":
    print(f"largest loss difference, quivers vs hand-written torch: {check_same_loss():.3g}")
