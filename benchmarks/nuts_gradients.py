"""Script: gradient evaluations per effective sample, quivers' NUTS against NumPyro's.

ESS per second is ESS per gradient evaluation times gradient evaluations
per second. This script measures the first factor, which is the
algorithm's (step-size and mass-matrix adaptation, the U-turn criterion,
multinomial sampling), apart from the second, which is the cost of a call.
For the same model, chains, warmup and draws as the ``peers`` NUTS rows
(one process, one thread each), it prints per chain the leapfrog steps of
warmup and of sampling, the mean steps per draw, the adapted step size
and the mean acceptance statistic, and for the run the smallest bulk ESS
(the mixture relabeled by its sorted means, as in ``peers``), ESS per
1,000 sampling and per 1,000 total leapfrog steps, and the batched calls
(each iteration costs the most steps among its chains, on both sides:
quivers' chains advance in lockstep and NumPyro's vectorized chains run
one ``while_loop`` under ``vmap``).

    python -m benchmarks.nuts_gradients [--seed S] [--models mixture,hmm]

NumPyro is required. See docs/performance.md for the measured numbers.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import torch

from benchmarks import peers  # first: sets XLA's single-thread flags before JAX loads
from benchmarks.nuts import min_bulk_ess

CHAINS, WARMUP, SAMPLES = 4, 300, 700
MODELS = {"mixture": "seed mixture N=1,000 K=2", "hmm": "hmm_example"}


def _ess(draws: dict, relabel) -> float:
    return min_bulk_ess(relabel(draws) if relabel else draws)


def quivers_counts(prog, obs, relabel, seed: int) -> dict:
    """Leapfrog steps ``(iterations, chains)`` of warmup and sampling, adapted
    step sizes, acceptance, min bulk ESS and wall time of quivers' NUTS."""
    from quivers.inference.mcmc import MCMC, NUTS

    kernel = NUTS(prog)
    steps: list[torch.Tensor] = []
    transition = kernel.transition

    def counted(state):
        state, stats = transition(state)
        steps.append(stats["n_steps"].clone())
        return state, stats

    kernel.transition = counted
    mcmc = MCMC(kernel, num_warmup=WARMUP, num_samples=SAMPLES, num_chains=CHAINS, seed=seed, progress_bar=False)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the short runs' convergence warnings say nothing here
        mcmc.run(None, obs)
    seconds = time.perf_counter() - start
    steps_ = torch.stack(steps).numpy()
    stats = mcmc.get_sample_stats(group_by_chain=True)
    return {
        "warmup": steps_[:WARMUP], "sampling": steps_[WARMUP:], "seconds": seconds,
        "step_size": kernel.step_size.numpy(), "accept": stats["accept_prob"].mean(1).numpy(),
        "ess": _ess(mcmc.get_samples(group_by_chain=True), relabel),
    }


def numpyro_counts(model, args, relabel, seed: int) -> dict:
    """The same for NumPyro's NUTS, chains vectorized, compilation included."""
    import jax
    import jax.numpy as jnp
    from numpyro.infer import MCMC, NUTS

    mcmc = MCMC(NUTS(model), num_warmup=WARMUP, num_samples=SAMPLES, num_chains=CHAINS,
                chain_method="vectorized", progress_bar=False)
    data = tuple(jnp.asarray(a) for a in args)
    start = time.perf_counter()
    mcmc.warmup(jax.random.PRNGKey(seed), *data, collect_warmup=True, extra_fields=("num_steps",))
    warmup = np.asarray(mcmc.get_extra_fields(group_by_chain=True)["num_steps"]).T
    mcmc.run(mcmc.post_warmup_state.rng_key, *data, extra_fields=("num_steps", "accept_prob"))
    draws = {k: jax.device_get(v) for k, v in mcmc.get_samples(group_by_chain=True).items()}
    seconds = time.perf_counter() - start
    extra = mcmc.get_extra_fields(group_by_chain=True)
    return {
        "warmup": warmup, "sampling": np.asarray(extra["num_steps"]).T, "seconds": seconds,
        "step_size": np.asarray(mcmc.last_state.adapt_state.step_size),
        "accept": np.asarray(extra["accept_prob"]).mean(1), "ess": _ess(draws, relabel),
    }


def report(name: str, side: str, c: dict) -> None:
    warm, samp = c["warmup"].astype(np.int64), c["sampling"].astype(np.int64)
    total = warm.sum() + samp.sum()
    print(f"{name}, {side}: {c['seconds']:.1f} s, min bulk ESS {c['ess']:.0f}, {c['ess'] / c['seconds']:.1f} ESS/s; "
          f"ESS per 1,000 steps: {1000 * c['ess'] / samp.sum():.1f} (sampling), {1000 * c['ess'] / total:.1f} (all); "
          f"batched calls {warm.max(1).sum() + samp.max(1).sum()}")
    for i in range(samp.shape[1]):
        print(f"  chain {i}: steps warmup {warm[:, i].sum()}, sampling {samp[:, i].sum()} "
              f"({samp[:, i].mean():.1f} a draw), step size {c['step_size'][i]:.4f}, accept {c['accept'][i]:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--models", default=",".join(MODELS))
    opts = parser.parse_args()
    torch.set_num_threads(1)
    for key in opts.models.split(","):
        prog, obs, model, args, relabel = peers.NUTS_MODELS[MODELS[key]]()
        q = quivers_counts(prog, obs, relabel, opts.seed)
        n = numpyro_counts(model, args, relabel, opts.seed)
        report(key, "quivers", q)
        report(key, "NumPyro", n)
        print(f"{key}: ESS/s ratio quivers / NumPyro {(q['ess'] / q['seconds']) / (n['ess'] / n['seconds']):.2f}x",
              flush=True)


if __name__ == "__main__":
    main()
