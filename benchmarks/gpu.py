"""GPU rows: the large sizes, on one CUDA device, against Pyro and NumPyro
on the same device where they are installed.

    python benchmarks/gpu.py [--quick] [--device cuda] [--only gmm,grouped,hmm,nuts]

``benchmarks/gpu.sh`` runs it in one command. Cases:

- ``gmm``: one SVI step of the seed mixture (N=1,000,000, K=64): quivers
  against the step written by hand in torch, Pyro's ``TraceEnum_ELBO`` and
  NumPyro's jitted step (``MixtureSameFamily``, its exact marginalization;
  NumPyro's own enumeration needs funsor, which the GPU image lacks).
- ``grouped``: one SVI step of the grouped mixture (N=1,000,000,
  G=10,000, K=16): quivers against torch by hand and NumPyro's jitted step
  with the per-group sum written by hand (``segment_sum``).
- ``hmm``: log likelihood and its gradient of 64 sequences of T=100,000
  steps with K=64 states: quivers' ``forward`` against Pyro's
  ``DiscreteHMM`` and NumPyro's jitted ``lax.scan`` forward recursion.
- ``nuts``: NUTS on eight schools with 1,024 batched chains, the smallest
  bulk ESS per second of wall time (compile and warmup included), against
  NumPyro's vectorized chains.

Every step returns its loss as a Python float, so each timed call ends in
one device synchronization for every implementation alike. A baseline
that fails (not installed, out of memory) loses its row, and the reason is
printed and kept in the JSON. The rows go to ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

# JAX must not take three quarters of the device before torch allocates.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import models as M  # noqa: E402
from benchmarks.gmm import pyro_step as pyro_gmm  # noqa: E402
from benchmarks.gmm import torch_step as gmm_torch_step  # noqa: E402
from benchmarks.grouped import torch_step as grouped_torch_step  # noqa: E402
from benchmarks.nuts import min_bulk_ess, quivers_nuts  # noqa: E402
from benchmarks.report import Row, Target, table, time_row, write_json  # noqa: E402
from benchmarks.timing import compare, numpyro_or_none, pyro_or_none  # noqa: E402

__all__ = ["main", "CASES"]

CASES = ["gmm", "grouped", "hmm", "nuts"]
LR = 0.01
# Eight schools (Rubin 1981), as in posteriordb's eight_schools data.
SCHOOLS_Y = [28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0]
SCHOOLS_SIGMA = [15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0]


def _attempt(notes: list[str], what: str, build: Callable[[], object]) -> object | None:
    """``build()``, or None with the reason noted when it raises."""
    try:
        return build()
    except Exception as err:  # a baseline's failure loses its row, not the run
        first = (str(err).strip().splitlines() or [""])[0][:200]
        notes.append(f"{what}: {type(err).__name__}: {first}")
        print(f"  {what} skipped: {type(err).__name__}: {first}", flush=True)
        traceback.print_exc(limit=2)
        torch.cuda.empty_cache() if torch.cuda.is_available() else None
        return None


def _required(fn: Callable | None, name: str) -> Callable:
    """``fn``, or an ImportError when its library is not installed (a builder returned None)."""
    if fn is None:
        raise ImportError(f"{name}: its library is not installed")
    return fn


def _jax_array(t: torch.Tensor):
    import jax.numpy as jnp

    return jnp.asarray(t.detach().cpu().numpy())


def _numpyro_svi(model, *args, loss=None, guide=None):
    """A jitted NumPyro SVI step with an ``AutoNormal`` guide (or
    ``guide(model)``: ``AutoIAFNormal`` for the flow row), of the ELBO or
    of ``loss`` (NumPyro's ``RenyiELBO`` for the IWAE row)."""
    import jax
    import numpyro
    from numpyro.infer import SVI, Trace_ELBO
    from numpyro.infer.autoguide import AutoNormal

    svi = SVI(model, AutoNormal(model) if guide is None else guide(model), numpyro.optim.Adam(LR),
              loss if loss is not None else Trace_ELBO())
    state = [svi.init(jax.random.PRNGKey(0), *args)]
    update = jax.jit(svi.update)

    def step() -> float:
        state[0], loss = update(state[0], *args)
        return float(loss)

    return step


# ------------------------------------------------------------------ gmm


def quivers_gmm(y: torch.Tensor, k: int):
    from quivers.dsl import loads
    from quivers.inference import ELBO, SVI, AutoNormalGuide

    model = loads(M.gmm_source(y.shape[-1], k)).morphism.to(y.device)
    guide = AutoNormalGuide(model, observed_names={"y"}).to(y.device)
    svi = SVI(model, guide, torch.optim.Adam(guide.parameters(), lr=LR), ELBO())
    return (lambda: svi.step(None, {"y": y})), guide


def numpyro_gmm(y: torch.Tensor, k: int):
    if numpyro_or_none() is None:
        raise ImportError("NumPyro is not installed")
    return _numpyro_svi(M.numpyro_gmm_model(k), _jax_array(y))


def gmm_rows(quick: bool, device: str, notes: list[str], rounds: int, budget: float) -> list[Row]:
    n, k = (20_000, 8) if quick else (1_000_000, 64)
    y = M.simulate_gmm(n, k).to(device)
    torch.manual_seed(0)
    q, guide = quivers_gmm(y, k)
    fns = {"quivers": q, "torch by hand": gmm_torch_step(y, k, guide)}
    for name, build in [("Pyro TraceEnum", pyro_gmm), ("NumPyro jit", numpyro_gmm)]:
        fn = _attempt(notes, f"GMM {name}", lambda build=build: _required(build(y, k), name))
        if fn is not None:
            fns[name] = fn
    stats = compare(fns, rounds=rounds, budget_s=budget)
    size = f"N={n:,} K={k}"
    targets = {"torch by hand": Target("<=", 1.3, "<= 1.3x"), "Pyro TraceEnum": Target("<=", 0.25, "<= 0.25x"),
               "NumPyro jit": Target("<=", 1.0, "<= 1x")}
    return [time_row("GMM SVI step", size, 0, ("quivers", stats["quivers"]), (b, stats[b]), targets[b], "wall")
            for b in fns if b != "quivers"]


# -------------------------------------------------------------- grouped


def quivers_grouped(y: torch.Tensor, group: torch.Tensor, g: int, k: int):
    from quivers.dsl import loads
    from quivers.inference import ELBO, SVI, AutoNormalGuide

    model = loads(M.grouped_source(y.shape[-1], g, k)).morphism.to(y.device)
    guide = AutoNormalGuide(model, observed_names={"y", "group"}).to(y.device)
    svi = SVI(model, guide, torch.optim.Adam(guide.parameters(), lr=LR), ELBO())
    obs = {"y": y, "group": group}
    return (lambda: svi.step(None, obs)), guide


def numpyro_grouped(y: torch.Tensor, group: torch.Tensor, g: int, k: int):
    if numpyro_or_none() is None:
        raise ImportError("NumPyro is not installed")
    import jax
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as nd

    def model(y, group):
        probs = numpyro.sample("probs", nd.HalfNormal(jnp.ones((g, k))).to_event(2))
        mu = numpyro.sample("mu_k", nd.Normal(jnp.zeros(k), 5.0).to_event(1))
        sd = numpyro.sample("sd_k", nd.HalfNormal(jnp.ones(k)).to_event(1))
        log_w = jnp.log(probs) - jnp.log(probs.sum(-1, keepdims=True))
        ll = nd.Normal(mu, sd).log_prob(y[:, None])
        acc = log_w + jax.ops.segment_sum(ll, group, num_segments=g)
        numpyro.factor("y", jax.nn.logsumexp(acc, -1).sum())

    return _numpyro_svi(model, _jax_array(y), _jax_array(group))


def grouped_rows(quick: bool, device: str, notes: list[str], rounds: int, budget: float) -> list[Row]:
    n, g, k = (20_000, 200, 4) if quick else (1_000_000, 10_000, 16)
    y, group = M.simulate_grouped(n, g, k)
    y, group = y.to(device), group.to(device)
    torch.manual_seed(0)
    q, guide = quivers_grouped(y, group, g, k)
    fns = {"quivers": q, "torch by hand": grouped_torch_step(y, group, g, k, guide)}
    fn = _attempt(notes, "grouped NumPyro", lambda: numpyro_grouped(y, group, g, k))
    if fn is not None:
        fns["NumPyro jit"] = fn
    stats = compare(fns, rounds=rounds, budget_s=budget)
    size = f"N={n:,} G={g:,} K={k}"
    targets = {"torch by hand": Target("<=", 1.3, "<= 1.3x"), "NumPyro jit": Target("<=", 1.0, "<= 1x")}
    return [time_row("grouped SVI step", size, 0, ("quivers", stats["quivers"]), (b, stats[b]), targets[b], "wall")
            for b in fns if b != "quivers"]


# ------------------------------------------------------------------ hmm


class HMMProblem:
    """``batch`` sequences of ``steps`` Gaussian emissions from ``k`` states."""

    def __init__(self, batch: int, steps: int, k: int, device: str, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.k = k
        self.init_logits = torch.randn(k, generator=g).to(device).requires_grad_()
        self.trans_logits = (torch.randn(k, k, generator=g) + 3 * torch.eye(k)).to(device).requires_grad_()
        self.mu = torch.linspace(-k, k, k).to(device).requires_grad_()
        states = torch.randint(0, k, (batch, steps), generator=g)
        self.y = (torch.linspace(-k, k, k)[states] + torch.randn(batch, steps, generator=g)).to(device)

    def params(self) -> list[torch.Tensor]:
        return [self.init_logits, self.trans_logits, self.mu]

    def first(self) -> torch.Tensor:
        """The law of the first observed state (Pyro's convention: one transition after the initial law)."""
        return torch.logsumexp(self.init_logits.log_softmax(-1)[:, None] + self.trans_logits.log_softmax(-1), 0)

    def emit(self) -> torch.Tensor:
        return -0.5 * (self.y[..., None] - self.mu) ** 2 - 0.9189385332046727

    def backward(self, value: torch.Tensor) -> float:
        for t in self.params():
            t.grad = None
        value.backward()
        return float(value.detach())


def quivers_hmm(p: HMMProblem):
    from quivers.categories.markov import forward

    return lambda: p.backward(forward(p.first(), p.trans_logits.log_softmax(-1), p.emit(), check=False).sum())


def pyro_hmm(p: HMMProblem):
    if pyro_or_none() is None:
        raise ImportError("Pyro is not installed")
    import pyro.distributions as dist

    def call() -> float:
        hmm = dist.DiscreteHMM(p.init_logits, p.trans_logits, dist.Normal(p.mu, 1.0))
        return p.backward(hmm.log_prob(p.y).sum())

    call()
    return call


def numpyro_hmm(p: HMMProblem):
    """The forward recursion by ``lax.scan``, jitted with its gradient."""
    if numpyro_or_none() is None:
        raise ImportError("NumPyro is not installed")
    import jax
    import jax.numpy as jnp

    y = _jax_array(p.y)

    def loglik(params):
        init_logits, trans_logits, mu = params
        log_trans = jax.nn.log_softmax(trans_logits, -1)
        first = jax.nn.logsumexp(jax.nn.log_softmax(init_logits)[:, None] + log_trans, 0)
        emit = -0.5 * (y[..., None] - mu) ** 2 - 0.9189385332046727  # (B, T, K)

        def step(alpha, e):
            return jax.nn.logsumexp(alpha[:, :, None] + log_trans, 1) + e, None

        alpha, _ = jax.lax.scan(step, first + emit[:, 0], jnp.swapaxes(emit[:, 1:], 0, 1))
        return jax.nn.logsumexp(alpha, -1).sum()

    grad = jax.jit(jax.value_and_grad(loglik))
    params = tuple(_jax_array(t) for t in p.params())

    def call() -> float:
        value, _ = grad(params)
        return float(value)

    call()
    return call


def hmm_rows(quick: bool, device: str, notes: list[str], rounds: int, budget: float) -> list[Row]:
    """At T=100,000 the step matrices alone are 105 GB in float32: the
    baselines that hold them all run out of memory, and T=10,000 is the
    size where every implementation runs."""
    rows = []
    for batch, steps, k in [(8, 2_000, 16)] if quick else [(64, 10_000, 64), (64, 100_000, 64)]:
        p = HMMProblem(batch, steps, k, device)
        fns = {"quivers": quivers_hmm(p)}
        fns["quivers"]()
        for name, build in [("Pyro DiscreteHMM", pyro_hmm), ("NumPyro lax.scan jit", numpyro_hmm)]:
            fn = _attempt(notes, f"HMM B={batch} T={steps} {name}", lambda build=build: build(p))
            if fn is not None:
                fns[name] = fn
        stats = compare(fns, rounds=max(5, rounds // 3), warmup=1, budget_s=budget, burst_s=0)
        size = f"B={batch} T={steps:,} K={k}"
        rows += [time_row("HMM forward+grad", size, 0, ("quivers", stats["quivers"]), (b, stats[b]),
                          Target("<=", 1.0, "<= 1x"), "wall") for b in fns if b != "quivers"]
        if len(fns) == 1:
            st = stats["quivers"]
            rows.append(Row("HMM forward+grad", size, 0, "quivers", st.wall * 1e3, None, None, "ms", None, "wall",
                            None, None, "no baseline fits in memory", {"impl": st.to_json()}))
        del p, fns
        torch.cuda.empty_cache() if torch.cuda.is_available() else None
    return rows


# ----------------------------------------------------------------- nuts


def numpyro_nuts(chains: int, warmup: int, samples: int) -> tuple[float, float]:
    if numpyro_or_none() is None:
        raise ImportError("NumPyro is not installed")
    import jax
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as nd
    from numpyro.infer import MCMC, NUTS

    def model(sigma, y):
        mu = numpyro.sample("mu", nd.Normal(0.0, 5.0))
        tau = numpyro.sample("tau", nd.HalfCauchy(5.0))
        with numpyro.plate("J", 8):
            theta_trans = numpyro.sample("theta_trans", nd.Normal(0.0, 1.0))
            numpyro.sample("y", nd.Normal(mu + tau * theta_trans, sigma), obs=y)

    t = time.perf_counter()
    mcmc = MCMC(NUTS(model), num_warmup=warmup, num_samples=samples, num_chains=chains,
                chain_method="vectorized", progress_bar=False)
    mcmc.run(jax.random.PRNGKey(0), jnp.asarray(SCHOOLS_SIGMA), jnp.asarray(SCHOOLS_Y))
    draws = {k: jax.device_get(v) for k, v in mcmc.get_samples(group_by_chain=True).items()}
    seconds = time.perf_counter() - t
    return seconds, min_bulk_ess(draws)


def nuts_rows(quick: bool, device: str, notes: list[str], rounds: int, budget: float) -> list[Row]:
    chains, warmup, samples = (16, 100, 100) if quick else (1024, 150, 150)
    size = f"{chains:,} chains x {warmup}+{samples}"
    data = {"J": len(SCHOOLS_Y), "y": SCHOOLS_Y, "sigma": SCHOOLS_SIGMA}
    q_s, q_ess = quivers_nuts(data, chains, warmup, samples, device=device)
    print(f"  quivers NUTS: {q_s:.1f} s, min bulk ESS {q_ess:,.0f}", flush=True)
    q_rate, extra = q_ess / q_s, {"quivers_seconds": q_s, "quivers_min_ess": q_ess}
    got = _attempt(notes, "NUTS NumPyro", lambda: numpyro_nuts(chains, warmup, samples))
    if got is None:
        return [Row("NUTS eight_schools", size, 0, "quivers", q_rate, None, None, "ESS/s", None, "wall",
                    None, None, "NumPyro not run", extra)]
    n_s, n_ess = got
    print(f"  NumPyro NUTS: {n_s:.1f} s, min bulk ESS {n_ess:,.0f}", flush=True)
    r = q_rate / (n_ess / n_s)
    return [Row("NUTS eight_schools", size, 0, "quivers", q_rate, "NumPyro vectorized", n_ess / n_s, "ESS/s", r,
                "wall", ">= 1x", r >= 1.0, f"quivers {q_s:.1f} s, NumPyro {n_s:.1f} s",
                extra | {"numpyro_seconds": n_s, "numpyro_min_ess": n_ess})]


RUNS = {"gmm": gmm_rows, "grouped": grouped_rows, "hmm": hmm_rows, "nuts": nuts_rows}


def profile(quick: bool, device: str, out: Path) -> None:
    """torch.profiler tables of quivers' GMM step and HMM gradient (where
    device time goes, by kernel), written to ``out/gpu-profile.txt``."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    n, k = (20_000, 8) if quick else (1_000_000, 64)
    y = M.simulate_gmm(n, k).to(device)
    torch.manual_seed(0)
    step, _ = quivers_gmm(y, k)
    hmm = quivers_hmm(HMMProblem(*((8, 2_000, 16) if quick else (64, 10_000, 64)), device))
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.startswith("cuda") else [])
    sort = "cuda_time_total" if device.startswith("cuda") else "cpu_time_total"
    lines = []
    for name, fn, calls in [(f"GMM SVI step N={n:,} K={k}", step, 5), ("HMM forward+grad", hmm, 2)]:
        for _ in range(2):
            fn()
        with torch_profile(activities=activities) as prof:
            for _ in range(calls):
                fn()
        lines += [f"== {name}, {calls} calls ==", prof.key_averages().table(sort_by=sort, row_limit=15), ""]
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu-profile.txt").write_text("\n".join(lines))
    print("\n".join(lines[:2]), flush=True)


def _versions() -> dict:
    out = {"torch": torch.__version__, "cuda": torch.version.cuda}
    if torch.cuda.is_available():
        out["device"] = torch.cuda.get_device_name()
        out["driver"] = _driver()
    for name in ("pyro", "numpyro", "jax"):
        try:
            out[name] = __import__(name).__version__
        except ImportError:
            out[name] = None
    return out


def _driver() -> str | None:
    import subprocess

    try:
        got = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    return got.stdout.strip() or None


def main(argv: list[str] | None = None) -> list[Row]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes: a smoke run (on any device)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--only", default=",".join(CASES), help=f"comma-separated cases among {', '.join(CASES)}")
    p.add_argument("--budget", type=float, default=20.0, help="seconds one comparison may take at most")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    p.add_argument("--profile", action="store_true", help="also write torch.profiler tables to OUT/gpu-profile.txt")
    args = p.parse_args(argv)
    only = [c.strip() for c in args.only.split(",") if c.strip()]
    if any(c not in CASES for c in only):
        sys.exit(f"unknown case(s) among {only}; choose among {CASES}")
    versions = _versions()
    print(versions, flush=True)
    rows: list[Row] = []
    notes: list[str] = []
    rounds = 7 if args.quick else 15
    path = args.out / (("gpu-quick-" if args.quick else "gpu-") + time.strftime("%Y%m%d-%H%M%S.json"))
    meta = {"device": args.device, "versions": versions}
    for case in only:
        t = time.perf_counter()
        print(f"running {case} ...", flush=True)
        new = _attempt(notes, f"case {case}", lambda case=case: RUNS[case](args.quick, args.device, notes, rounds,
                                                                          args.budget))
        if new:
            rows.extend(new)
            print(table(new), f"\n({case}: {time.perf_counter() - t:.0f} s)\n", flush=True)
        if args.device.startswith("cuda"):
            peak = torch.cuda.max_memory_allocated() / 2**30
            notes.append(f"{case}: torch peak memory {peak:.1f} GiB")
            torch.cuda.reset_peak_memory_stats()
            torch.cuda.empty_cache()
        write_json(rows, path, notes, meta)  # after every case: a run cut short keeps what it measured
    if args.profile:
        _attempt(notes, "profile", lambda: profile(args.quick, args.device, args.out))
    print(table(rows))
    for n in notes:
        print("note:", n)
    print(f"wrote {path}")
    return rows


if __name__ == "__main__":
    main()
