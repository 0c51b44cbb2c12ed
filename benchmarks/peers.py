"""Case: quivers against NumPyro's compiled NUTS and SVI step, on the CPU.

NumPyro (JAX, jitted) is what a user who wants speed picks, so these rows
compare with it in the same process, one thread each: torch with one
intra-op thread, XLA with its CPU client single-threaded
(``--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1``,
set before JAX is imported; a JAX imported earlier keeps its threads and
the run says so). NumPyro is optional: without it the rows are skipped
with a message, as Pyro's are.

- ``NUTS``: eight schools (non-centered), the seed chapter's mixture
  (N=1,000, K=2) and posteriordb's ``hmm_example``, the same model, chains,
  warmup and draws on both sides; quivers runs its chains as one batch and
  NumPyro vectorized (``chain_method="vectorized"``). The rate is the
  smallest bulk ESS over every scalar parameter, averaged over five
  seeds (two with ``--quick``), per second of a first run: the first
  run's compilation plus the mean sampling time over the seeds, on both
  sides; the eager row's is seed 0's whole run. Each side's compilation is
  also reported apart: NumPyro's as the first run's wall time less that
  of the same run repeated, which reuses JAX's compiled functions;
  quivers' as its kernel's ``compile_seconds`` (recording, compiling and
  checking the leaf). The mixture's draws are relabeled
  by sorting the component means in every draw (a label-invariant ESS: the
  two components are exchangeable, so chains may hold them in either
  order).
- ``scale``: one call of the potential and its gradient (what NUTS
  computes per leapfrog step) on the mixture, at N = 1,000, 10,000 and
  100,000 with 4 chains and at 1, 4, 16 and 64 chains with N = 1,000,
  against NumPyro's potential jitted and vectorized over chains: how
  each grows with the data and with the chains.
- ``memory``: the peak resident memory of a process during a NUTS run
  (the mixture, 4 chains x (50 + 50)) and an SVI step (N=100,000, K=32),
  each in a fresh process (which imports torch and quivers for the data
  either way) after a first run of the same (NumPyro's compilation and
  quivers' first allocations happen there), quivers against NumPyro.
- ``SVI step``: one step of the seed mixture at N=500 K=2, N=10,000 K=8
  and N=100,000 K=32 (mean-field normal guide, the exact marginal of
  ``z``; NumPyro's ``MixtureSameFamily`` with ``AutoNormal``, jitted),
  timed as the other SVI rows (alternating bursts, medians); quivers'
  eager step and its compiled one (``ELBO(jit_compile=True)``, whose first
  step, recorded and compiled, is timed apart) alternate with NumPyro's.
- ``guides`` (with the SVI rows, or alone): an SVI step of the IWAE bound
  (8 particles) against NumPyro's ``RenyiELBO(alpha=0)``, and an SVI step
  with an inverse autoregressive flow guide against NumPyro's
  ``AutoIAFNormal`` (skipped with a message where NumPyro lacks it), both
  on the mixture at N=10,000 K=8.

Run ``python benchmarks/run.py --only peers --threads 1`` or ``python -m
benchmarks.peers [--quick] [--only nuts,svi]``.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from statistics import fmean

_XLA_ONE_THREAD = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
if "jax" not in sys.modules:
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _XLA_ONE_THREAD).strip()
    os.environ.setdefault("JAX_PLATFORMS", "cpu")

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import models as M  # noqa: E402
from benchmarks.nuts import eight_schools_data, min_bulk_ess  # noqa: E402
from benchmarks.report import Row, Target, time_row  # noqa: E402
from benchmarks.timing import Options, compare, numpyro_or_none, threads  # noqa: E402

__all__ = ["run", "NUTS_MODELS", "SVI_SIZES", "xla_single_threaded"]

SVI_SIZES = [(500, 2), (10_000, 8), (100_000, 32)]
QUICK_SVI_SIZES = [(500, 2), (10_000, 8)]
SVI_TARGETS = {(500, 2): Target("<=", 3.0, "<= 3x"), (100_000, 32): Target("<=", 0.5, "<= 0.5x")}
MIXTURE_N, MIXTURE_K = 1000, 2


def xla_single_threaded() -> bool:
    """Whether JAX was imported with the single-threaded XLA flags."""
    return _XLA_ONE_THREAD in os.environ.get("XLA_FLAGS", "")


def _numpy(v):
    import numpy as np

    return v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v)


def _sorted_by_means(draws: dict) -> dict:
    """The mixture's draws with the components of every draw ordered by their means."""
    import numpy as np

    d = {k: _numpy(v) for k, v in draws.items()}
    order = np.argsort(d["mu_k"], axis=-1)
    probs = d["probs"] / d["probs"].sum(-1, keepdims=True)
    pick = lambda a: np.take_along_axis(a, order, -1)  # noqa: E731
    return {"weights": pick(probs), "mu_k": pick(d["mu_k"]), "sd_k": pick(d["sd_k"])}


# ------------------------------------------------------------------ models


def _eight_schools():
    from quivers.categories import FinSet
    from quivers.distributions import HalfCauchy, Normal
    from quivers.programs import Program, let, observe, sample, var

    data = eight_schools_data()
    J = FinSet("J", data["J"])
    prog = Program("eight_schools_noncentered", J, J, [
        sample("theta_trans", J, Normal(0.0, 1.0)),
        sample("mu", None, Normal(0.0, 5.0)),
        sample("tau", None, HalfCauchy(5.0)),
        let("theta", var("mu") + var("tau") * var("theta_trans")),
        observe("y", J, Normal(var("theta"), torch.tensor(data["sigma"]))),
    ])

    def numpyro_model(sigma, y):
        import numpyro
        import numpyro.distributions as nd

        mu = numpyro.sample("mu", nd.Normal(0.0, 5.0))
        tau = numpyro.sample("tau", nd.HalfCauchy(5.0))
        with numpyro.plate("J", len(data["y"])):
            theta_trans = numpyro.sample("theta_trans", nd.Normal(0.0, 1.0))
            numpyro.sample("y", nd.Normal(mu + tau * theta_trans, sigma), obs=y)

    return prog, {"y": torch.tensor(data["y"])}, numpyro_model, (data["sigma"], data["y"]), None


def _mixture():
    from quivers.dsl import loads

    y = M.simulate_gmm(MIXTURE_N, MIXTURE_K)
    prog = loads(M.gmm_source(MIXTURE_N, MIXTURE_K)).morphism
    numpyro_model = M.numpyro_gmm_model(MIXTURE_K)
    return prog, {"y": y}, numpyro_model, (y.numpy(),), _sorted_by_means


def _hmm_example():
    from tests.inference.test_hmm_posteriordb import hmm_example

    prog, obs = hmm_example()
    k = 2

    def numpyro_model(y):
        import jax
        import jax.numpy as jnp
        import numpyro
        import numpyro.distributions as nd

        theta = numpyro.sample("theta", nd.Dirichlet(jnp.ones((k, k))).to_event(1))
        mu1 = numpyro.sample("mu1", nd.Normal(3.0, 1.0))
        gap = numpyro.sample("gap", nd.HalfNormal(1.0))
        numpyro.factor("flat_gap", gap**2 / 2)  # the same flat prior on gap > 0 as quivers' model
        numpyro.factor("mu2", -((mu1 + gap - 10.0) ** 2) / 2)
        emit = nd.Normal(jnp.stack([mu1, mu1 + gap]), 1.0).log_prob(y[:, None])  # (T, K)
        log_theta = jnp.log(theta)

        def forward(alpha, e):
            return jax.nn.logsumexp(alpha[:, None] + log_theta, 0) + e, None

        alpha, _ = jax.lax.scan(forward, emit[0] - jnp.log(k), emit[1:])  # uniform initial law
        numpyro.factor("y", jax.nn.logsumexp(alpha))

    return prog, obs, numpyro_model, (obs["y"].numpy(),), None


NUTS_MODELS = {"eight schools": _eight_schools, "seed mixture N=1,000 K=2": _mixture, "hmm_example": _hmm_example}


# -------------------------------------------------------------------- NUTS


def quivers_run(prog, obs, chains: int, warmup: int, samples: int, relabel=None, seed: int = 0,
                jit_compile: bool = False) -> tuple[float, float, float]:
    """(seconds, min bulk ESS, seconds compiling) of quivers' NUTS, chains
    batched; with ``jit_compile`` the leapfrog step is compiled (compilation
    included in the seconds, and reported apart: the kernel's
    ``compile_seconds``)."""
    import warnings

    from quivers.inference.mcmc import MCMC, NUTS

    t = time.perf_counter()
    kernel = NUTS(prog, jit_compile=jit_compile)
    mcmc = MCMC(kernel, num_warmup=warmup, num_samples=samples, num_chains=chains, seed=seed, progress_bar=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the short runs' convergence warnings say nothing about speed
        mcmc.run(None, obs)
    seconds = time.perf_counter() - t
    draws = mcmc.get_samples(group_by_chain=True)
    return seconds, min_bulk_ess(relabel(draws) if relabel else draws), kernel.compile_seconds


def numpyro_run(model, args, chains: int, warmup: int, samples: int, relabel=None, seed: int = 0) -> tuple[float, float]:
    """(seconds, min bulk ESS) of NumPyro's NUTS, chains vectorized, compilation included."""
    import jax
    import jax.numpy as jnp
    from numpyro.infer import MCMC, NUTS

    t = time.perf_counter()
    mcmc = MCMC(NUTS(model), num_warmup=warmup, num_samples=samples, num_chains=chains,
                chain_method="vectorized", progress_bar=False)
    mcmc.run(jax.random.PRNGKey(seed), *(jnp.asarray(a) for a in args))
    draws = {k: jax.device_get(v) for k, v in mcmc.get_samples(group_by_chain=True).items()}
    seconds = time.perf_counter() - t
    return seconds, min_bulk_ess(relabel(draws) if relabel else draws)


NUTS_SEEDS, QUICK_NUTS_SEEDS = 5, 2


def nuts_rows(opts: Options, only_models: list[str] | None = None) -> list[Row]:
    """The NUTS rows: per model, quivers eager and compiled against NumPyro.

    A compiled row's rate is, on each side, the mean of the smallest bulk
    ESS over ``NUTS_SEEDS`` seeds per second of a first run: the first
    run's compilation plus the mean sampling time over the seeds (a run's
    wall time less its compilation; the later seeds' runs reuse what the
    first compiled). One seed's ESS spreads by a quarter or more around
    its mean (NumPyro's on hmm_example: 934 to 1,544 over five seeds), and
    its sampling time with the trajectories its adaptation settles on, so
    a ratio of one seed's rates measures the seed as much as the sampler.
    The eager row's rate is seed 0's whole run on both sides: an eager run
    takes up to a minute, and the row has no target."""
    chains, warmup, samples = (4, 100, 200) if opts.quick else (4, 300, 700)
    seeds = QUICK_NUTS_SEEDS if opts.quick else NUTS_SEEDS
    have = numpyro_or_none() is not None
    rows = []

    def listed(xs: list[float], digits: int = 0) -> str:
        return ", ".join(f"{x:.{digits}f}" for x in xs)

    for name, build in NUTS_MODELS.items():
        if only_models and name not in only_models:
            continue
        prog, obs, model, args, relabel = build()
        size = f"{chains} chains x {warmup}+{samples}"
        with threads(1):
            # eager, then compiled: the compiled run's wall time includes its
            # compilation, which the compiler's on-disk cache shortens on a rerun
            eager = quivers_run(prog, obs, chains, warmup, samples, relabel)
            compiled = [quivers_run(prog, obs, chains, warmup, samples, relabel, seed=s, jit_compile=True)
                        for s in range(seeds)]
            if have:
                n_s, n_first = numpyro_run(model, args, chains, warmup, samples, relabel)
                # the same run again reuses JAX's compiled functions: the difference is the compilation
                n_again = numpyro_run(model, args, chains, warmup, samples, relabel)[0]
                n_fixed = max(0.0, n_s - n_again)
                later = [numpyro_run(model, args, chains, warmup, samples, relabel, seed=s) for s in range(1, seeds)]
                n_ess = [n_first] + [e for _, e in later]
                n_sampling = [n_again] + [t for t, _ in later]
        q_s, q_first, _ = eager
        print(f"  NUTS {name}, eager: quivers {q_s:.1f} s, ESS {q_first:.0f}", flush=True)
        q_fixed = compiled[0][2]
        q_ess = [e for _, e, _ in compiled]
        q_sampling = [t - c for t, _, c in compiled]
        q_wall = q_fixed + fmean(q_sampling)
        print(f"  NUTS {name}, jit_compile: quivers {compiled[0][0]:.1f} s (of which compilation {q_fixed:.1f} s); "
              f"ESS by seed {listed(q_ess)}, mean {fmean(q_ess):.0f}; sampling by seed {listed(q_sampling, 1)} s",
              flush=True)
        if have:
            print(f"  NUTS {name}: NumPyro {n_s:.1f} s (of which compilation {n_fixed:.1f} s); "
                  f"ESS by seed {listed(n_ess)}, mean {fmean(n_ess):.0f}; sampling by seed {listed(n_sampling, 1)} s",
                  flush=True)
        for jit in (False, True):
            label = f"NUTS {name}" + (", jit_compile" if jit else ", eager")
            if jit:
                q_rate = fmean(q_ess) / q_wall
                extra = {"quivers_seconds": compiled[0][0], "quivers_compile_seconds": q_fixed, "jit_compile": True,
                         "quivers_min_ess_by_seed": q_ess, "quivers_sampling_seconds_by_seed": q_sampling}
            else:
                q_rate = q_first / q_s
                extra = {"quivers_seconds": q_s, "quivers_min_ess": q_first, "jit_compile": False}
            if not have:
                rows.append(Row(label, size, 1, "quivers", q_rate, None, None, "ESS/s", None, "wall",
                                None, None, "NumPyro not installed", extra))
                continue
            if jit:
                n_wall = n_fixed + fmean(n_sampling)
                n_rate = fmean(n_ess) / n_wall
                note = (f"{seeds} seeds: quivers {q_fixed:.1f} s compiling + {fmean(q_sampling):.1f} s sampling, "
                        f"mean ESS {fmean(q_ess):.0f}; NumPyro {n_fixed:.1f} s + {fmean(n_sampling):.1f} s, "
                        f"mean ESS {fmean(n_ess):.0f}")
                extra |= {"numpyro_compile_seconds": n_fixed, "numpyro_min_ess_by_seed": n_ess,
                          "numpyro_sampling_seconds_by_seed": n_sampling}
            else:
                n_rate = n_first / n_s
                note = f"seed 0: quivers {q_s:.1f} s, NumPyro {n_s:.1f} s of which compile {n_fixed:.1f} s"
                extra |= {"numpyro_seconds": n_s, "numpyro_min_ess": n_first}
            r = q_rate / n_rate
            rows.append(Row(label, size, 1, "quivers", q_rate, "NumPyro vectorized", n_rate, "ESS/s", r, "wall",
                            ">= 1x" if jit else None, r >= 1.0 if jit else None, note, extra))
    return rows


# --------------------------------------------------------------------- SVI


def numpyro_svi_step(y: torch.Tensor, k: int, loss=None, guide=None):
    """NumPyro's jitted SVI step on the seed mixture (``AutoNormal`` or
    ``guide(model)``, ``MixtureSameFamily``), returning its loss as a float."""
    from benchmarks.gpu import _jax_array, _numpyro_svi

    return _numpyro_svi(M.numpyro_gmm_model(k), _jax_array(y), loss=loss, guide=guide)


IWAE_SIZE, IWAE_PARTICLES = (10_000, 8), 8


def iwae_row(opts: Options) -> Row:
    """An SVI step of the IWAE bound with 8 particles on the seed mixture,
    against NumPyro's ``RenyiELBO(alpha=0)`` (its IWAE), both vectorized."""
    from numpyro.infer import RenyiELBO

    from benchmarks.gmm import quivers_step
    from quivers.inference import IWAE

    n, k = IWAE_SIZE
    y = M.simulate_gmm(n, k)
    with threads(1):
        torch.manual_seed(0)
        q, _ = quivers_step(y, k, objective=IWAE(IWAE_PARTICLES))
        fns = {"quivers": q, "numpyro": numpyro_svi_step(y, k, RenyiELBO(alpha=0.0, num_particles=IWAE_PARTICLES))}
        stats = compare(fns, rounds=opts.rounds, warmup=3, budget_s=opts.budget_s)
    return time_row(f"IWAE step ({IWAE_PARTICLES} particles), mixture", f"N={n:,} K={k}", 1, ("quivers", stats["quivers"]),
                    ("NumPyro RenyiELBO(0)", stats["numpyro"]), None, opts.clock)


FLOW_SIZE, FLOW_FLOWS, FLOW_HIDDEN = (10_000, 8), 2, (32, 32)


def flow_row(opts: Options) -> Row:
    """An SVI step with an inverse autoregressive flow guide on the seed
    mixture (2 affine autoregressive transforms, hidden layers 32 x 32, on
    the 24 unconstrained coordinates; the ELBO, one particle), against
    NumPyro's ``AutoIAFNormal`` with the same sizes (its networks use ELU,
    zuko's ReLU). NumPyro's block neural flow (``AutoBNAFNormal``) has no
    quivers counterpart and gets no row."""
    import numpyro.infer.autoguide as auto

    from benchmarks.gmm import quivers_step
    from quivers.inference import AutoIAFNormal

    n, k = FLOW_SIZE
    y = M.simulate_gmm(n, k)
    case, size = f"SVI step, IAF guide ({FLOW_FLOWS} flows, {FLOW_HIDDEN[0]}x{FLOW_HIDDEN[1]}), mixture", f"N={n:,} K={k}"
    with threads(1):
        torch.manual_seed(0)
        q, _ = quivers_step(y, k, guide=lambda m: AutoIAFNormal(m, {"y"}, num_flows=FLOW_FLOWS, hidden_dims=FLOW_HIDDEN))
        if not hasattr(auto, "AutoIAFNormal"):
            print("  flow row: this NumPyro has no AutoIAFNormal; quivers alone", flush=True)
            stats = compare({"quivers": q}, rounds=opts.rounds, warmup=3, budget_s=opts.budget_s)
            return Row(case, size, 1, "quivers", stats["quivers"].wall * 1e3, None, None, "ms", None, "wall",
                       note="NumPyro has no AutoIAFNormal")
        iaf = lambda m: auto.AutoIAFNormal(m, num_flows=FLOW_FLOWS, hidden_dims=list(FLOW_HIDDEN))  # noqa: E731
        fns = {"quivers": q, "numpyro": numpyro_svi_step(y, k, guide=iaf)}
        stats = compare(fns, rounds=opts.rounds, warmup=3, budget_s=opts.budget_s)
    return time_row(case, size, 1, ("quivers", stats["quivers"]), ("NumPyro AutoIAFNormal", stats["numpyro"]), None,
                    opts.clock)


def svi_rows(opts: Options) -> list[Row]:
    from benchmarks.gmm import quivers_step

    rows = []
    for n, k in QUICK_SVI_SIZES if opts.quick else SVI_SIZES:
        y = M.simulate_gmm(n, k)
        with threads(1):
            torch.manual_seed(0)
            q, _ = quivers_step(y, k)
            torch.manual_seed(0)
            qj, _ = quivers_step(y, k, jit_compile=True)
            t0 = time.perf_counter()
            qj()  # the first step: eager, recorded and compiled
            compile_s = time.perf_counter() - t0
            fns = {"quivers": q, "quivers_jit": qj, "numpyro": numpyro_svi_step(y, k)}
            stats = compare(fns, rounds=opts.rounds, warmup=3, budget_s=opts.budget_s)
        size = f"N={n:,} K={k}"
        rows.append(time_row("SVI step, seed mixture", size, 1, ("quivers", stats["quivers"]),
                             ("NumPyro jit", stats["numpyro"]), SVI_TARGETS.get((n, k)), opts.clock))
        rows.append(time_row("SVI step, seed mixture, jit_compile", size, 1, ("quivers (jit)", stats["quivers_jit"]),
                             ("NumPyro jit", stats["numpyro"]), SVI_TARGETS.get((n, k)), opts.clock,
                             note=f"first step (eager, recorded, compiled) {compile_s:.1f} s"))
    return rows + guide_rows(opts)


def guide_rows(opts: Options) -> list[Row]:
    """The rows of issue 19: the IWAE bound and a flow guide."""
    return [iwae_row(opts), flow_row(opts)]


# ------------------------------------------------------------------- scale

SCALE_N = [1_000, 10_000, 100_000]
SCALE_CHAINS = [1, 4, 16, 64]


def quivers_potential_call(y: torch.Tensor, chains: int):
    """One potential-and-gradient call of quivers' NUTS on the seed mixture, ``chains`` at once."""
    from quivers.dsl import loads
    from quivers.inference.mcmc.hamiltonian import potential_and_grad
    from quivers.inference.program_adaptor import ProgramAdaptor

    adaptor = ProgramAdaptor(loads(M.gmm_source(y.shape[-1], MIXTURE_K)).morphism)
    z = torch.rand(chains, adaptor.layout.dim, generator=torch.Generator().manual_seed(0)) * 4 - 2
    obs = {"y": y}
    return lambda: float(potential_and_grad(lambda u: adaptor.potential(u, None, obs), z)[0].sum())


def numpyro_potential_call(y: torch.Tensor, chains: int):
    """The same for NumPyro: its potential's value and gradient, jitted and vectorized over chains."""
    import jax
    import jax.numpy as jnp
    from numpyro.infer.util import initialize_model

    data = jnp.asarray(y.numpy())
    info = initialize_model(jax.random.PRNGKey(0), M.numpyro_gmm_model(MIXTURE_K), model_args=(data,))
    params = jax.tree_util.tree_map(
        lambda v: jax.random.uniform(jax.random.PRNGKey(1), (chains,) + v.shape, minval=-2, maxval=2),
        info.param_info.z)
    call = jax.jit(jax.vmap(jax.value_and_grad(info.potential_fn)))
    return lambda: float(call(params)[0].sum())


def scale_rows(opts: Options) -> list[Row]:
    """How one potential-and-gradient call (a leapfrog step's model cost)
    grows with the data (4 chains) and with the chains (N=1,000)."""
    rows = []
    sizes = [(n, 4) for n in SCALE_N] + [(MIXTURE_N, c) for c in SCALE_CHAINS if c != 4]
    for n, chains in sizes[:2] + sizes[3:5] if opts.quick else sizes:
        y = M.simulate_gmm(n, MIXTURE_K)
        with threads(1):
            fns = {"quivers": quivers_potential_call(y, chains), "numpyro": numpyro_potential_call(y, chains)}
            stats = compare(fns, rounds=opts.rounds, warmup=3, budget_s=opts.budget_s)
        rows.append(time_row("NUTS potential + grad, seed mixture", f"N={n:,} K={MIXTURE_K} chains={chains}", 1,
                             ("quivers", stats["quivers"]), ("NumPyro jit", stats["numpyro"]), None, opts.clock))
    return rows


def memory_rows(opts: Options) -> list[Row]:
    """Peak memory of a NUTS run and of an SVI step, quivers against
    NumPyro, each in a fresh process (``benchmarks.memory.measure_peer``)."""
    from benchmarks.memory import _in_subprocess

    rows = []
    for case, size in (("nuts", "N=1,000 K=2, 4 chains x 50+50"), ("svi", "N=100,000 K=32")):
        q, n = _in_subprocess(f"quivers-{case}"), _in_subprocess(f"numpyro-{case}")
        # The process's peak, not its growth: XLA keeps a step's buffers
        # between calls while torch's allocator returns them, so the growth
        # during a call reads near 0 for NumPyro whatever it needs.
        rows.append(Row(f"peak memory, {'NUTS run' if case == 'nuts' else 'SVI step'}", size, 1, "quivers",
                        q["peak_after_mib"], "NumPyro jit", n["peak_after_mib"], "MiB",
                        q["peak_after_mib"] / n["peak_after_mib"], "rss", None, None,
                        f"growth during it: quivers {q['step_mib']:.1f} MiB, NumPyro {n['step_mib']:.1f} MiB",
                        {"quivers": q, "numpyro": n}))
    return rows


def run(opts: Options, only: tuple[str, ...] = ("svi", "scale", "memory", "nuts"),
        models: list[str] | None = None) -> list[Row]:
    """The SVI, scale and memory rows (NumPyro only) and the NUTS rows (quivers alone without NumPyro)."""
    have = numpyro_or_none() is not None
    if not have:
        print("peers: the NumPyro rows are skipped because NumPyro is not installed (pip install numpyro)")
    elif not xla_single_threaded():
        print("peers: JAX was imported before this module, so XLA may use more than one thread")
    rows = svi_rows(opts) if "svi" in only and have else []
    rows += guide_rows(opts) if "guides" in only and "svi" not in only and have else []  # svi holds them
    rows += scale_rows(opts) if "scale" in only and have else []
    rows += memory_rows(opts) if "memory" in only and have else []
    return rows + (nuts_rows(opts, models) if "nuts" in only else [])


def main(argv: list[str] | None = None) -> list[Row]:
    import argparse

    from benchmarks.report import table, write_json

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="shorter runs and the smaller sizes")
    p.add_argument("--only", default="svi,scale,memory,nuts", help="some of svi, scale, memory, nuts, guides "
                   "(the IWAE and flow-guide rows alone; svi includes them)")
    p.add_argument("--models", default=None, help="NUTS models among: " + "; ".join(NUTS_MODELS))
    p.add_argument("--budget", type=float, default=20.0)
    args = p.parse_args(argv)
    opts = Options(quick=args.quick, budget_s=args.budget, thread_counts=(1,))
    only = tuple(s.strip() for s in args.only.split(","))
    rows = run(opts, only, args.models.split(";") if args.models else None)
    print(table(rows))
    print(f"\nwrote {write_json(rows, ROOT / 'benchmarks' / 'results' / 'peers.json', meta=_versions())}")
    return rows


def _versions() -> dict:
    out = {"torch": torch.__version__, "xla_single_threaded": xla_single_threaded()}
    for name in ("numpyro", "jax", "pyro"):
        try:
            out[name] = __import__(name).__version__
        except ImportError:
            out[name] = None
    return out


if __name__ == "__main__":
    main()
