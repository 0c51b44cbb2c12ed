"""Case 1: one SVI step on the seed chapter's Gaussian mixture.

quivers (the QVR program, ``AutoNormalGuide``, ``ELBO()``, exact
marginalization of ``z``) against the same model and guide written by hand
in torch (the logsumexp over components by hand) and against Pyro
(``TraceEnum_ELBO`` with ``config_enumerate`` and ``AutoNormal``).
"""

from __future__ import annotations


import torch

from benchmarks import models as M
from benchmarks.report import Row, Target, time_row
from benchmarks.timing import Options, compare, pyro_or_none, threads

__all__ = ["run", "quivers_step", "torch_step", "pyro_step", "SIZES"]

SIZES = [(500, 2), (10_000, 8), (100_000, 32)]
QUICK_SIZES = [(500, 2), (10_000, 8)]
LR = 0.01


def quivers_step(y: torch.Tensor, k: int, objective=None, guide=None, **svi_kw):
    """quivers' SVI step on the mixture, and its guide; ``objective``
    replaces ``ELBO(**svi_kw)`` (the IWAE row) and ``guide(model)`` the
    mean-field guide (the flow row)."""
    from quivers.dsl import loads
    from quivers.inference import ELBO, SVI, AutoNormalGuide
    from quivers.inference.svi import adam

    model = loads(M.gmm_source(y.shape[-1], k)).morphism
    guide = AutoNormalGuide(model, observed_names={"y"}) if guide is None else guide(model)
    svi = SVI(model, guide, adam(guide.parameters(), LR),
              objective if objective is not None else ELBO(**svi_kw))
    obs = {"y": y}
    return (lambda: svi.step(None, obs)), guide


def torch_step(y: torch.Tensor, k: int, guide):
    """The same model and guide by hand; starts from ``guide``'s parameters."""
    q = M.MeanField(guide.loc, guide.raw_scale)
    opt = torch.optim.Adam(q.params(), lr=LR, fused=True)  # the optimizer fit() gives quivers
    yc = y.unsqueeze(-1)

    def step() -> float:
        opt.zero_grad(set_to_none=True)
        u, log_q = q.draw()
        u_probs, mu, u_sd = u[:k], u[k : 2 * k], u[2 * k :]
        probs, sd = u_probs.exp(), u_sd.exp()
        log_q = log_q - u_probs.sum() - u_sd.sum()  # log |d exp / du|
        log_prior = M.half_normal_lp(probs) + M.normal_lp(mu, 0.0, 5.0) + M.half_normal_lp(sd)
        log_w = probs.log() - probs.sum().log()
        ll = log_w - sd.log() - M.HALF_LOG_2PI - 0.5 * ((yc - mu) / sd) ** 2
        loss = -(log_prior + torch.logsumexp(ll, -1).sum() - log_q)
        loss.backward()
        opt.step()
        return float(loss.detach())

    return step


def pyro_step(y: torch.Tensor, k: int):
    """Pyro's SVI step with enumeration of ``z``, or None without Pyro."""
    pyro = pyro_or_none()
    if pyro is None:
        return None
    import pyro.distributions as dist
    from pyro import poutine
    from pyro.infer import SVI, TraceEnum_ELBO, config_enumerate
    from pyro.infer.autoguide import AutoNormal

    n, dev = y.shape[-1], y.device

    @config_enumerate
    def model(y):
        probs = pyro.sample("probs", dist.HalfNormal(torch.ones(k, device=dev)).to_event(1))
        mu = pyro.sample("mu_k", dist.Normal(torch.zeros(k, device=dev), 5.0).to_event(1))
        sd = pyro.sample("sd_k", dist.HalfNormal(torch.ones(k, device=dev)).to_event(1))
        with pyro.plate("Item", n):
            z = pyro.sample("z", dist.Categorical(probs))
            pyro.sample("y", dist.Normal(mu[z], sd[z]), obs=y)

    pyro.clear_param_store()
    guide = AutoNormal(poutine.block(model, expose=["probs", "mu_k", "sd_k"]))
    svi = SVI(model, guide, pyro.optim.Adam({"lr": LR}), TraceEnum_ELBO(max_plate_nesting=1))

    def step() -> float:
        with torch.device(dev):  # the guide's parameters are made on first use, where the data is
            return svi.step(y)

    return step


def run(opts: Options) -> list[Row]:
    rows: list[Row] = []
    have_pyro = pyro_or_none() is not None
    for n, k in QUICK_SIZES if opts.quick else SIZES:
        y = M.simulate_gmm(n, k)
        for nt in opts.thread_counts:
            with threads(nt):
                torch.manual_seed(0)
                q, guide = quivers_step(y, k)
                fns = {"quivers": q, "torch": torch_step(y, k, guide)}
                p = pyro_step(y, k)
                if p is not None:
                    fns["pyro"] = p
                stats = compare(fns, rounds=opts.rounds, budget_s=opts.budget_s)
            size = f"N={n:,} K={k}"
            if (n, k) == (100_000, 32):
                target = Target("<=", 0.6, "<= 0.6x")
            else:
                target = Target("<=", 1.3, "<= 1.3x")
            rows.append(time_row("GMM SVI step", size, nt, ("quivers", stats["quivers"]),
                                 ("torch by hand", stats["torch"]), target, opts.clock))
            if "pyro" in stats:
                rows.append(time_row("GMM SVI step", size, nt, ("quivers", stats["quivers"]),
                                     ("Pyro TraceEnum", stats["pyro"]), Target("<=", 0.25, "<= 0.25x (4x faster)"),
                                     opts.clock))
    if not have_pyro:
        print("GMM: the Pyro rows are skipped because Pyro is not installed (pip install pyro-ppl)")
    return rows


def check_same_loss(n: int = 200, k: int = 3) -> float:
    """The hand-written and quivers losses agree at the same draw (a sanity
    check of the baseline, run by ``run.py --check``): returns the largest
    absolute difference over a few steps with shared random draws."""
    y = M.simulate_gmm(n, k).double()
    torch.set_default_dtype(torch.float64)
    try:
        torch.manual_seed(0)
        q, guide = quivers_step(y, k)
        t = torch_step(y, k, guide)
        worst = 0.0
        for i in range(3):
            torch.manual_seed(i)
            a = t()
            torch.manual_seed(i)
            b = q()
            worst = max(worst, abs(a - b))
        return worst
    finally:
        torch.set_default_dtype(torch.float32)


if __name__ == "__main__":
    print(f"largest loss difference, quivers vs hand-written torch: {check_same_loss():.3g}")
