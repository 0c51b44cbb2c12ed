"""Case ``planning``: discrete latents written as plain ``sample`` sites
and summed by a plan (``[marginalize=auto]``, issue 24), against the same
models written with ``marginalize`` blocks by hand (target: at most 1.2x)
and, for the per-row mixture, against Pyro's ``TraceEnum_ELBO`` with
``config_enumerate`` (target: 4x faster).

Rows: one SVI step on the seed mixture (a latent per row), one on the
grouped mixture (a latent per group, read through ``z[group]``), and the
log density and gradient of an HMM written as a chain of ``T`` sample
sites (which the plan writes as a ``markov`` block) against the ``markov``
block written by hand and against Pyro's ``TraceEnum_ELBO`` over a
``pyro.markov`` loop.
"""

from __future__ import annotations

import torch

from benchmarks import gmm, grouped
from benchmarks import models as M
from benchmarks.report import Row, Target, time_row
from benchmarks.timing import Options, compare, pyro_or_none, threads

__all__ = ["run"]

LR = 0.01
TARGET = Target("<=", 1.2, "<= 1.2x")


def _auto_gmm(n: int, k: int) -> str:
    return M.gmm_source(n, k).replace("[effects=[Sample, Score, Marginal]]", "[effects=[Sample, Score], marginalize=auto]") \
        .replace("    marginalize z : K <- Categorical(probs)\n        observe y", "    sample z : Item <- Categorical(probs)\n    observe y")


def _auto_grouped(n: int, g: int, k: int) -> str:
    return f"""object Item : FinSet {n}
object G : FinSet {g}
object K : FinSet {k}
program grouped_mixture : Item -> Item [effects=[Sample, Score], marginalize=auto]
    data group : Item -> G
    sample probs : G * K <- HalfNormal(1.0)
    sample mu_k : K <- Normal(0.0, 5.0)
    sample sd_k : K <- HalfNormal(1.0)
    sample z : G <- Categorical(probs)
    observe y : Item <- Normal(mu_k[z[group]], sd_k[z[group]])
    return y
export grouped_mixture
"""


def _svi(source: str, obs: dict):
    from quivers.dsl import loads
    from quivers.inference import ELBO, SVI, AutoNormalGuide

    model = loads(source).morphism
    guide = AutoNormalGuide(model, observed_names=set(obs))
    svi = SVI(model, guide, torch.optim.Adam(guide.parameters(), lr=LR), ELBO())
    return lambda: svi.step(None, obs)


def _chain(t: int):
    """An HMM of ``t`` steps as a chain of sample sites (planned) and as a
    ``markov`` block: their log density and gradient, and the inputs."""
    from quivers.categories import FinSet
    from quivers.distributions import Categorical, HalfNormal, Normal
    from quivers.planning import auto
    from quivers.programs import Program, markov, observe, sample, var

    T, K = FinSet("T", t), FinSet("K", 3)
    head = [sample("A", K * K, HalfNormal(1.0)), sample("pi", K, HalfNormal(1.0)), sample("mu", K, Normal(0.0, 2.0))]
    steps = head + [sample("z0", None, Categorical(var("pi")))]
    steps += [sample(f"z{i}", None, Categorical(var("A")[var(f"z{i - 1}")])) for i in range(1, t)]
    steps += [observe(f"y{i}", None, Normal(var("mu")[var(f"z{i}")], 1.0)) for i in range(t)]
    planned = auto(Program("chain", T, T, steps))
    block = Program("hmm", T, T, head + [markov(
        "z", T, K, Categorical(var("A")), [observe("y", T, Normal(var("mu")[var("z")], 1.0))], init=Categorical(var("pi")))])
    y = torch.randn(t)
    lat = {"A": torch.rand(3, 3) + 0.1, "pi": torch.rand(3) + 0.1, "mu": torch.randn(3)}

    def step(program, obs):
        def go() -> float:
            leaves = {k: v.clone().requires_grad_() for k, v in lat.items()}
            lp = program.log_joint(None, obs, leaves, check_latents=False)
            lp.backward()
            return float(lp.detach())
        return go

    return step(planned, {f"y{i}": y[i] for i in range(t)}), step(block, {"y": y}), _pyro_chain(y, lat)


def _pyro_chain(y: torch.Tensor, lat: dict):
    """Pyro's log likelihood and gradient of the same HMM: ``z[t]`` sampled
    in a ``pyro.markov`` loop, enumerated in parallel by ``TraceEnum_ELBO``
    (an empty guide: its loss is minus the log likelihood, without the
    tables' priors that quivers' log joint adds); None without Pyro."""
    pyro = pyro_or_none()
    if pyro is None:
        return None
    import pyro.distributions as dist
    from pyro.infer import TraceEnum_ELBO, config_enumerate

    @config_enumerate
    def model(A, pi, mu):
        z = pyro.sample("z0", dist.Categorical(pi))
        pyro.sample("y0", dist.Normal(mu[z], 1.0), obs=y[0])
        for i in pyro.markov(range(1, len(y))):
            z = pyro.sample(f"z{i}", dist.Categorical(A[z]))
            pyro.sample(f"y{i}", dist.Normal(mu[z], 1.0), obs=y[i])

    def guide(A, pi, mu):
        pass

    elbo = TraceEnum_ELBO(max_plate_nesting=0)

    def go() -> float:
        leaves = {k: v.clone().requires_grad_() for k, v in lat.items()}
        loss = elbo.differentiable_loss(model, guide, leaves["A"], leaves["pi"], leaves["mu"])
        loss.backward()
        return float(loss.detach())

    return go


def run(opts: Options) -> list[Row]:
    rows = []
    have_pyro = pyro_or_none() is not None
    for n, k in [(500, 2)] if opts.quick else [(500, 2), (10_000, 8)]:
        y = M.simulate_gmm(n, k)
        for nt in opts.thread_counts:
            with threads(nt):
                torch.manual_seed(0)
                fns = {"planned": _svi(_auto_gmm(n, k), {"y": y}), "by hand": _svi(M.gmm_source(n, k), {"y": y})}
                p = gmm.pyro_step(y, k) if have_pyro else None
                if p is not None:
                    fns["pyro"] = p
                stats = compare(fns, rounds=opts.rounds, budget_s=opts.budget_s)
            size = f"N={n:,} K={k}"
            rows.append(time_row("planned mixture SVI step", size, nt, ("planned", stats["planned"]),
                                 ("marginalize by hand", stats["by hand"]), TARGET, opts.clock))
            if "pyro" in stats:
                rows.append(time_row("planned mixture SVI step", size, nt, ("planned", stats["planned"]),
                                     ("Pyro TraceEnum", stats["pyro"]), Target("<=", 0.25, "<= 0.25x (4x faster)"),
                                     opts.clock))
    for n, g, k in grouped.SIZES[:1] if opts.quick else grouped.SIZES:
        y, group = M.simulate_grouped(n, g, k)
        obs = {"y": y, "group": group}
        for nt in opts.thread_counts:
            with threads(nt):
                torch.manual_seed(0)
                stats = compare({"planned": _svi(_auto_grouped(n, g, k), obs),
                                 "by hand": _svi(M.grouped_source(n, g, k), obs)},
                                rounds=opts.rounds, budget_s=opts.budget_s)
            rows.append(time_row("planned grouped SVI step", f"N={n:,} G={g:,} K={k}", nt, ("planned", stats["planned"]),
                                 ("marginalize by hand", stats["by hand"]), TARGET, opts.clock))
    for t in [20] if opts.quick else [20, 100]:
        planned, block, pyro_fn = _chain(t)
        fns = {"planned": planned, "markov": block} | ({"pyro": pyro_fn} if pyro_fn is not None else {})
        for nt in opts.thread_counts:
            with threads(nt):
                stats = compare(fns, rounds=opts.rounds, budget_s=opts.budget_s)
            rows.append(time_row("HMM as sample sites, log density + gradient", f"T={t} K=3", nt,
                                 ("planned", stats["planned"]), ("markov block", stats["markov"]), TARGET, opts.clock))
            if "pyro" in stats:
                rows.append(time_row("HMM as sample sites, log density + gradient", f"T={t} K=3", nt,
                                     ("planned", stats["planned"]), ("Pyro TraceEnum", stats["pyro"]),
                                     Target("<=", 0.25, "<= 0.25x (4x faster)"), opts.clock))
    if not have_pyro:
        print("planning: the Pyro row is skipped because Pyro is not installed (pip install pyro-ppl)")
    return rows
