"""Case 5: NUTS on eight schools (non-centered), effective samples per second.

Both samplers run the same number of chains, warmup iterations and draws
per chain from the posteriordb data. quivers runs its chains as one batch
(one potential call per leapfrog step for all of them); Pyro's NUTS runs
one chain after another (``num_chains=1`` per run, as on one core), and its
chains are pooled for the diagnostics. Effective samples per second is the
smallest bulk ESS over every scalar parameter (ArviZ, rank-normalized,
computed identically for both) divided by the wall time of the whole run,
warmup included.
"""

from __future__ import annotations

import json
import time
import zipfile
from pathlib import Path

import torch

from benchmarks.report import Row, Target
from benchmarks.timing import Options, pyro_or_none, threads

__all__ = ["run", "eight_schools_data", "quivers_nuts", "pyro_nuts"]

DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "posteriordb" / "eight_schools.data.json.zip"


def eight_schools_data() -> dict:
    with zipfile.ZipFile(DATA) as z:
        return json.loads(z.read(z.namelist()[0]))


def min_bulk_ess(draws: dict) -> float:
    """The smallest bulk ESS over all scalar components; ``draws`` are
    ``(chains, draws, ...)`` tensors or arrays (NumPyro's)."""
    import arviz as az
    import numpy as np

    as_array = lambda v: v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v)  # noqa: E731
    ds = az.convert_to_dataset({k: as_array(v) for k, v in draws.items()})
    ess = az.ess(ds, method="bulk")
    return float(min(ess[k].values.min() for k in ess.data_vars))


def quivers_nuts(data: dict, chains: int, warmup: int, samples: int, seed: int = 0,
                 device: str = "cpu") -> tuple[float, float]:
    """(seconds, min bulk ESS) of quivers' NUTS, its chains on ``device``."""
    from quivers.categories import FinSet
    from quivers.distributions import HalfCauchy, Normal
    from quivers.inference.mcmc import MCMC, NUTS
    from quivers.programs import Program, let, observe, sample, var

    J = FinSet("J", data["J"])
    sigma = torch.tensor(data["sigma"], device=device)
    prog = Program("eight_schools_noncentered", J, J, [
        sample("theta_trans", J, Normal(0.0, 1.0)),
        sample("mu", None, Normal(0.0, 5.0)),
        sample("tau", None, HalfCauchy(5.0)),
        let("theta", var("mu") + var("tau") * var("theta_trans")),
        observe("y", J, Normal(var("theta"), sigma)),
    ]).to(device)
    obs = {"y": torch.tensor(data["y"], device=device)}
    t = time.perf_counter()
    mcmc = MCMC(NUTS(prog), num_warmup=warmup, num_samples=samples, num_chains=chains, seed=seed,
                progress_bar=False)
    mcmc.run(None, obs)
    seconds = time.perf_counter() - t
    return seconds, min_bulk_ess(mcmc.get_samples(group_by_chain=True))


def pyro_nuts(data: dict, chains: int, warmup: int, samples: int, seed: int = 0) -> tuple[float, float] | None:
    """(seconds, min bulk ESS) of Pyro's NUTS, chains run one after another; None without Pyro."""
    pyro = pyro_or_none()
    if pyro is None:
        return None
    import pyro.distributions as dist
    from pyro.infer import MCMC, NUTS

    J = data["J"]
    sigma, y = torch.tensor(data["sigma"]), torch.tensor(data["y"])

    def model(sigma, y):
        mu = pyro.sample("mu", dist.Normal(0.0, 5.0))
        tau = pyro.sample("tau", dist.HalfCauchy(5.0))
        with pyro.plate("J", J):
            theta_trans = pyro.sample("theta_trans", dist.Normal(0.0, 1.0))
            pyro.sample("y", dist.Normal(mu + tau * theta_trans, sigma), obs=y)

    per_chain = []
    t = time.perf_counter()
    for c in range(chains):
        pyro.set_rng_seed(seed + c)
        mcmc = MCMC(NUTS(model), num_samples=samples, warmup_steps=warmup, num_chains=1, disable_progbar=True)
        mcmc.run(sigma, y)
        per_chain.append(mcmc.get_samples())
    seconds = time.perf_counter() - t
    draws = {k: torch.stack([d[k] for d in per_chain]) for k in per_chain[0]}
    return seconds, min_bulk_ess(draws)


def run(opts: Options) -> list[Row]:
    data = eight_schools_data()
    chains, warmup, samples = (2, 150, 200) if opts.quick else (4, 300, 700)
    rows = []
    have_pyro = pyro_or_none() is not None
    for nt in opts.thread_counts:
        with threads(nt):
            q_s, q_ess = quivers_nuts(data, chains, warmup, samples)
            p = pyro_nuts(data, chains, warmup, samples)
        size = f"{chains} chains x {warmup}+{samples}"
        q_rate = q_ess / q_s
        extra = {"quivers_seconds": q_s, "quivers_min_ess": q_ess}
        if p is None:
            rows.append(Row("NUTS eight_schools", size, nt, "quivers", q_rate, None, None, "ESS/s", None, "wall",
                            None, None, "Pyro not installed", extra))
            continue
        p_s, p_ess = p
        p_rate = p_ess / p_s
        extra |= {"pyro_seconds": p_s, "pyro_min_ess": p_ess}
        r = q_rate / p_rate
        rows.append(Row("NUTS eight_schools", size, nt, "quivers", q_rate, "Pyro NUTS", p_rate, "ESS/s", r, "wall",
                        ">= 5x", r >= 5.0, f"quivers {q_s:.1f} s, Pyro {p_s:.1f} s", extra))
    if not have_pyro:
        print("NUTS: the Pyro rows are skipped because Pyro is not installed (pip install pyro-ppl)")
    return rows
