"""NUTS and SVI recover posteriordb's reference posteriors (README criteria)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from quivers.categories.finset import FinSet
from quivers.distributions import Categorical, Dirichlet, HalfCauchy, HalfNormal, Normal
from quivers.inference import ELBO, SVI, AutoMultivariateNormal
from quivers.inference.mcmc import MCMC, NUTS
from quivers.programs import Program, let, marginalize, observe, sample, var

from tests.inference import reference as R

pytestmark = pytest.mark.slow


def eight_schools() -> tuple[Program, dict]:
    data = R.load("eight_schools.data.json.zip")
    J = FinSet("J", data["J"])
    sigma = torch.tensor(data["sigma"], dtype=torch.float64)
    prog = Program("eight_schools_noncentered", J, J, [
        sample("theta_trans", J, Normal(0.0, 1.0)),
        sample("mu", None, Normal(0.0, 5.0)),
        sample("tau", None, HalfCauchy(5.0)),
        let("theta", var("mu") + var("tau") * var("theta_trans")),
        observe("y", J, Normal(var("theta"), sigma)),
    ])
    return prog, {"y": torch.tensor(data["y"], dtype=torch.float64)}


def run_nuts(prog, obs, warmup=500, samples=1000, chains=4, seed=0):
    mcmc = MCMC(NUTS(prog), num_warmup=warmup, num_samples=samples, num_chains=chains, seed=seed, progress_bar=False)
    mcmc.run(None, obs)
    return {k: v.numpy() for k, v in mcmc.get_samples(group_by_chain=True).items()}, mcmc


def test_nuts_recovers_eight_schools_noncentered():
    torch.set_default_dtype(torch.float64)
    try:
        prog, obs = eight_schools()
        # 2,500 draws a chain: tau's heavy right tail makes the sd of 1,000
        # a noisy estimate (a seed missed the 10% criterion by 2 points with
        # a log density exact to 1e-14); the mean criterion is MCSE-aware
        s, mcmc = run_nuts(prog, obs, samples=2500)
        theta = s["mu"][..., None] + s["tau"][..., None] * s["theta_trans"]
        draws = {"mu": s["mu"], "tau": s["tau"]} | R.stan_names({"theta": theta}, "theta", "theta", 1)
        assert R.check_nuts(draws, "eight_schools-eight_schools_noncentered") == []
    finally:
        torch.set_default_dtype(torch.float32)


def test_nuts_recovers_low_dim_gauss_mix():
    data = R.load("low_dim_gauss_mix.data.json.zip")
    Item, K = FinSet("Item", data["N"]), FinSet("K", 2)
    mu, sigma, z = var("mu"), var("sigma"), var("z")
    prog = Program("low_dim_gauss_mix", Item, Item, [
        sample("mu", K, Normal(0.0, 2.0)),
        sample("sigma", K, HalfNormal(2.0)),
        sample("theta", K, Dirichlet(5.0)),  # Dirichlet(5, 5) on two values is Beta(5, 5)
        marginalize("z", K, Categorical(var("theta")), [observe("y", Item, Normal(mu[z], sigma[z]))]),
    ])
    s, _ = run_nuts(prog, {"y": torch.tensor(data["y"])}, warmup=400, samples=600)
    # Stan's ordered[2] mu: the symmetric posterior restricted to mu[1] < mu[2].
    order = np.argsort(s["mu"], axis=-1)
    pick = lambda a: np.take_along_axis(a, order, axis=-1)
    draws = (
        R.stan_names({"mu": pick(s["mu"])}, "mu", "mu", 1)
        | R.stan_names({"sigma": pick(s["sigma"])}, "sigma", "sigma", 1)
        | {"theta": pick(s["theta"])[..., 0]}
    )
    assert R.check_nuts(draws, "low_dim_gauss_mix-low_dim_gauss_mix") == []


def test_nuts_recovers_low_dim_gauss_mix_with_ordered_means():
    """Stan's own model, `ordered[2] mu`, as a constrained latent: the draws
    come labelled, nothing is sorted afterwards."""
    data = R.load("low_dim_gauss_mix.data.json.zip")
    Item, K = FinSet("Item", data["N"]), FinSet("K", 2)
    mu, sigma, z = var("mu"), var("sigma"), var("z")
    prog = Program("low_dim_gauss_mix", Item, Item, [
        sample("mu", K, Normal(0.0, 2.0), constraint="ordered"),
        sample("sigma", K, HalfNormal(2.0)),
        sample("theta", K, Dirichlet(5.0)),
        marginalize("z", K, Categorical(var("theta")), [observe("y", Item, Normal(mu[z], sigma[z]))]),
    ])
    s, _ = run_nuts(prog, {"y": torch.tensor(data["y"])}, warmup=400, samples=600)
    assert bool((s["mu"][..., 0] < s["mu"][..., 1]).all())
    draws = (
        R.stan_names({"mu": s["mu"]}, "mu", "mu", 1)
        | R.stan_names({"sigma": s["sigma"]}, "sigma", "sigma", 1)
        | {"theta": s["theta"][..., 0]}
    )
    assert R.check_nuts(draws, "low_dim_gauss_mix-low_dim_gauss_mix") == []


def kidiq() -> tuple[Program, dict]:
    data = R.load("kidiq.data.json.zip")
    N, P = FinSet("N", data["N"]), FinSet("P", 2)
    beta = var("beta")
    prog = Program("kidscore_momiq", N, N, [
        sample("beta", P, Normal(0.0, 1000.0)),  # Stan's flat prior, made proper far from the data
        sample("sigma", None, HalfCauchy(2.5)),
        sample("mom_iq", N, Normal(100.0, 15.0)),  # a covariate: conditioned on, its density is constant
        observe("kid_score", N, Normal(beta[0] + beta[1] * var("mom_iq"), var("sigma"))),
    ])
    obs = {"kid_score": torch.tensor(data["kid_score"]), "mom_iq": torch.tensor(data["mom_iq"])}
    return prog, obs


def test_nuts_recovers_kidiq():
    from quivers.inference.program_adaptor import ProgramAdaptor

    prog, obs = kidiq()
    mcmc = MCMC(NUTS(ProgramAdaptor(prog, observed_names={"mom_iq"})), num_warmup=500, num_samples=600,
                num_chains=4, seed=0, progress_bar=False)
    mcmc.run(None, obs)
    s = {k: v.numpy() for k, v in mcmc.get_samples(group_by_chain=True).items()}
    draws = R.stan_names(s, "beta", "beta", 1) | {"sigma": s["sigma"]}
    assert R.check_nuts(draws, "kidiq-kidscore_momiq") == []


def test_full_rank_svi_recovers_kidiq_means():
    prog, obs = kidiq()
    torch.manual_seed(0)
    guide = AutoMultivariateNormal(prog, observed_names={"kid_score", "mom_iq"})
    with torch.no_grad():  # start near the data's scale: slopes of order one, intercept of order ten
        guide.loc.copy_(torch.tensor([20.0, 0.5, 3.0]))
    # The intercept and slope correlate at -0.99 (mom_iq is not centred): a
    # large step finds the ridge, a small one settles the ELBO's noise.
    steps = 6000
    opt = torch.optim.Adam(guide.parameters(), lr=0.05)
    decay = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 1.0 if i < 0.7 * steps else 0.1)
    svi = SVI(prog, guide, opt, ELBO(num_particles=16))
    for _ in range(steps):
        svi.step(None, obs)
        decay.step()
    post = {k: v.numpy() for k, v in guide.sample_posterior(20000).items()}
    draws = R.stan_names(post, "beta", "beta", 1) | {"sigma": post["sigma"]}
    assert R.check_variational(draws, "kidiq-kidscore_momiq") == []
