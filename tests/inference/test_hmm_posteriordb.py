"""NUTS recovers posteriordb's hmm_example (README criteria), the hidden
states summed out by a markov block."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from quivers.categories.finset import FinSet
from quivers.distributions import Categorical, Dirichlet, HalfNormal, Normal
from quivers.inference.mcmc import MCMC, NUTS
from quivers.programs import Program, factor, markov, observe, sample, var

from tests.inference import reference as R

pytestmark = pytest.mark.slow


def hmm_example() -> tuple[Program, dict]:
    """Stan's hmm_example. ``theta1``, ``theta2`` are the rows of the
    transition, each a flat Dirichlet: one site on ``K * K``. ``mu`` is
    ``positive_ordered`` with ``mu[1] ~ N(3, 1)``, ``mu[2] ~ N(10, 1)``:
    written as ``mu[1]`` and a positive gap with a flat prior (a
    HalfNormal whose density a factor cancels), ``mu[2] = mu[1] + gap``,
    the same density on ``mu[1] < mu[2]``; positivity of ``mu[1]`` is left
    out (the posterior puts no mass below 2). The ordering is needed, not
    a relabeling of draws afterwards: the priors differ between the two
    components, so the posterior is not symmetric under swapping them and
    an unordered chain can settle in the swapped mode (mu near (8.8, 3)),
    which Stan's model excludes. For two states ``mu[z]`` is
    ``mu1 + gap * z``. Stan starts the forward recursion with
    ``normal_lpdf(y[1] | mu[k], 1)``, no initial-state term: our uniform
    initial law differs by the constant ``log 2``."""
    data = R.load("hmm_example.data.json.zip")
    T, K = FinSet("T", data["N"]), FinSet("K", data["K"])
    mu1, gap, z = var("mu1"), var("gap"), var("z")
    prog = Program("hmm_example", T, T, [
        sample("theta", K * K, Dirichlet(1.0)),
        sample("mu1", None, Normal(3.0, 1.0)),
        sample("gap", None, HalfNormal(1.0)),
        factor(gap ** 2 / 2),  # cancels HalfNormal(1.0): a flat prior on gap > 0
        factor(-((mu1 + gap - 10.0) ** 2) / 2),  # mu[2] ~ Normal(10, 1)
        markov("z", T, K, Categorical(var("theta")), [observe("y", T, Normal(mu1 + gap * z, 1.0))]),
    ])
    return prog, {"y": torch.tensor(data["y"])}


def test_nuts_recovers_hmm_example():
    prog, obs = hmm_example()
    mcmc = MCMC(NUTS(prog), num_warmup=300, num_samples=500, num_chains=4, seed=0, progress_bar=False)
    mcmc.run(None, obs)
    s = {k: v.numpy() for k, v in mcmc.get_samples(group_by_chain=True).items()}
    theta = s["theta"]
    draws = {
        "theta1[1]": theta[..., 0, 0], "theta1[2]": theta[..., 0, 1],
        "theta2[1]": theta[..., 1, 0], "theta2[2]": theta[..., 1, 1],
        "mu[1]": s["mu1"], "mu[2]": s["mu1"] + s["gap"],
    }
    assert np.all(draws["mu[1]"] > 0)  # the positivity left out of the model holds
    assert R.check_nuts(draws, "hmm_example-hmm_example") == []
    # the MAP path splits the observations at the midpoint of the two means
    theta_mean = torch.tensor(theta.mean((0, 1)), dtype=torch.float64)
    post = {"theta": theta_mean / theta_mean.sum(-1, keepdim=True), "mu1": torch.tensor(s["mu1"].mean()),
            "gap": torch.tensor(s["gap"].mean())}
    path = prog.map_latents(None, obs, post)["z"]
    midpoint = float(post["mu1"] + post["gap"] / 2)
    assert ((obs["y"] > midpoint).long() == path).float().mean() > 0.9
