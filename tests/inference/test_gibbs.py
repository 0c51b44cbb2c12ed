"""Gibbs steps for discrete latents inside NUTS (issue #24 part 3), checked
against the exact answer: the planned program's marginalized density on a
fine grid, and a closed form for a Poisson latent."""

from __future__ import annotations

import math
import warnings

import arviz as az
import pytest
import torch

from quivers.categories import FinSet
from quivers.distributions import Bernoulli, Beta, Gamma, Normal, Poisson
from quivers.errors import QuiversTypeError, QuiversWarning
from quivers.inference import DiscreteHMCGibbs, GibbsAdaptor, fit
from quivers.planning import auto
from quivers.programs import Program, observe, sample, var

F64 = torch.float64
Y = torch.tensor([-0.3, 0.2, 0.4, 2.9, 3.3, 2.6], dtype=F64)


def mixture() -> Program:
    """Six points from two components, one at zero and one at ``mu``:
    a Bernoulli ``z`` per point picks the component (no label switching)."""
    Item = FinSet("Item", 6)
    return Program("mix", Item, Item, [
        sample("p", None, Beta(2.0, 2.0)),
        sample("mu", None, Normal(0.0, 3.0)),
        sample("z", Item, Bernoulli(var("p"))),
        observe("y", Item, Normal(var("mu") * var("z"), 0.7)),
    ])


@pytest.fixture(scope="module")
def exact():
    """The posterior on a grid of (p, mu), ``z`` summed by the plan: means
    of p and mu, and each point's P(z = 1)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(F64)
    try:
        planned = auto(mixture())
        p = torch.linspace(0.0005, 0.9995, 400, dtype=F64)
        mu = torch.linspace(-4.0, 8.0, 1200, dtype=F64)
        pp, mm = torch.meshgrid(p, mu, indexing="ij")
        given = {"p": pp.reshape(-1), "mu": mm.reshape(-1)}
        lj = planned.log_joint(None, {"y": Y}, given)
        w = torch.softmax(lj, 0)
        z = planned.posterior_latents(None, {"y": Y}, given)["z"][..., 1]  # (grid, Item)
        return {"p": float(w @ given["p"]), "mu": float(w @ given["mu"]), "z": w @ z}
    finally:
        torch.set_default_dtype(previous)


def _close(draws: torch.Tensor, truth: torch.Tensor | float, name: str) -> None:
    """Posterior means within 4.5 Monte Carlo standard errors (ArviZ's,
    from the draws' effective sample size) of the exact ones."""
    d = draws.to(F64).reshape(draws.shape[0], draws.shape[1], -1).numpy()
    mcse = torch.as_tensor(az.mcse(az.convert_to_dataset(d), method="mean")["x"].values)
    mean = torch.as_tensor(d.mean((0, 1)))
    truth = torch.as_tensor(truth, dtype=F64).reshape(-1)
    gap = (mean - truth).abs()
    assert bool((gap <= 4.5 * mcse + 1e-3).all()), f"{name}: mean {mean} exact {truth} mcse {mcse}"


@pytest.mark.parametrize("budget", [None, 16], ids=["block-draws", "one-at-a-time"])
def test_one_sweep_draws_each_point_from_its_exact_conditional(budget):
    """From any start, one sweep draws z from p(z | p, mu, y): 4000 chains
    at fixed (p, mu) against the plan's exact conditional. With the plan
    (no budget) all rows at once; over a tiny budget one row at a time."""
    if budget is None:
        program = mixture()
    else:
        with pytest.warns(QuiversWarning, match="`z` is sampled, not summed"):
            program = auto(mixture(), budget=budget)
    adaptor = GibbsAdaptor(program)
    assert (adaptor._conditional("z") is None) == (budget is not None)
    chains = 4000
    gen = torch.Generator().manual_seed(0)
    adaptor.init_discrete(chains, gen, None, {"y": Y.float()})
    given = {"p": torch.tensor(0.4), "mu": torch.tensor(2.5)}
    z = adaptor.layout.pack({k: v.expand(chains) for k, v in given.items()})
    d = adaptor.gibbs(z, torch.zeros(chains, 6), gen, None, {"y": Y.float()})
    want = auto(mixture()).posterior_latents(None, {"y": Y.float()}, given)["z"][:, 1]
    got = d.mean(0)
    assert bool(((got - want).abs() <= 4.5 * (want * (1 - want) / chains).sqrt() + 1e-3).all()), (got, want)


@pytest.mark.slow
def test_fit_with_gibbs_steps_matches_the_marginalized_posterior(exact):
    """A tiny memory budget leaves `z` to sampling; `fit(...,
    discrete="gibbs")` then recovers the exact posterior of p, mu and of
    each z."""
    with pytest.warns(QuiversWarning, match="over the budget of 16"):
        program = auto(mixture(), budget=16)
    result = fit(program, {"y": Y.float()}, discrete="gibbs", num_warmup=150, num_samples=300,
                 num_chains=4, seed=1, progress_bar=False)
    assert result.method == "nuts" and result.samples["z"].shape == (4, 300, 6)
    assert set(result.samples["z"].unique().tolist()) == {0.0, 1.0}
    _close(result.samples["p"], exact["p"], "p")
    _close(result.samples["mu"], exact["mu"], "mu")
    _close(result.samples["z"].to(F64), exact["z"], "z")
    idata = result.to_inference_data()
    assert idata.posterior["z"].dims == ("chain", "draw", "Item")


@pytest.mark.slow
def test_a_poisson_latent_is_moved_by_metropolis_steps_and_matches_the_closed_form():
    """lam ~ Gamma(3, 1), n ~ Poisson(lam), y_i ~ Normal(n, 1.5): p(n | y)
    is the negative binomial marginal of n times the likelihood (summed to
    n = 200), and E[lam | y] = E[(3 + n) / 2 | y]."""
    I = FinSet("I", 3)
    program = Program("pois", I, I, [
        sample("lam", None, Gamma(3.0, 1.0)),
        sample("n", None, Poisson(var("lam"))),
        observe("y", I, Normal(var("n") * 1.0, 1.5)),
    ])
    y = torch.tensor([5.2, 3.9, 6.1], dtype=F64)
    n = torch.arange(201, dtype=F64)
    a, b = 3.0, 1.0
    log_nb = (torch.lgamma(a + n) - torch.lgamma(n + 1) - math.lgamma(a) + a * math.log(b / (b + 1))
              - n * math.log(b + 1))
    post = torch.softmax(log_nb + torch.distributions.Normal(n.unsqueeze(-1), 1.5).log_prob(y).sum(-1), 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = fit(program, {"y": y.float()}, discrete="gibbs", num_warmup=150, num_samples=400,
                     num_chains=4, seed=0, progress_bar=False)
    assert bool((result.samples["n"] == result.samples["n"].round()).all() & (result.samples["n"] >= 0).all())
    _close(result.samples["n"], float(post @ n), "n")
    _close(result.samples["lam"], float(post @ ((a + n) / (b + 1))), "lam")


def test_a_gibbs_fit_resumes_where_its_chains_stopped():
    result = fit(mixture(), {"y": Y.float()}, discrete="gibbs", num_warmup=30, num_samples=20, num_chains=2,
                 seed=0, progress_bar=False)
    more = result.resume(num_samples=10, progress_bar=False)
    assert more.samples["z"].shape == (2, 30, 6) and more.samples["mu"].shape == (2, 30)
    assert set(more.samples["z"].unique().tolist()) <= {0.0, 1.0}


def test_gibbs_needs_discrete_and_continuous_latents_and_nuts():
    I = FinSet("I", 2)
    continuous = Program("c", I, I, [sample("mu", None, Normal(0.0, 1.0)), observe("y", I, Normal(var("mu"), 1.0))])
    with pytest.raises(QuiversTypeError, match="no sampled discrete latent for Gibbs steps"):
        GibbsAdaptor(continuous)
    coin = Program("coin", I, I, [sample("b", None, Bernoulli(0.5)), observe("y", I, Normal(var("b") * 1.0, 1.0))])
    with pytest.raises(QuiversTypeError, match=r"every latent of `coin` is discrete \(\['b'\]\): NUTS has nothing"):
        DiscreteHMCGibbs(coin)
    with pytest.raises(QuiversTypeError, match='`discrete` of NUTS given with method="svi"'):
        fit(mixture(), {"y": Y.float()}, method="svi", discrete="gibbs")
    with pytest.raises(QuiversTypeError, match="`inner` must be a Hamiltonian kernel class"):
        DiscreteHMCGibbs(mixture(), inner=len)


def test_a_gibbs_fit_says_so_and_saves_and_loads(tmp_path):
    from quivers.results import load_fit

    result = fit(mixture(), {"y": Y.float()}, discrete="gibbs", num_warmup=20, num_samples=10, num_chains=2,
                 seed=0, progress_bar=False)
    assert repr(result).startswith("<FitResult of `mix`: NUTS with Gibbs steps on `z`, 2 chains x 10 draws")
    result.save(tmp_path / "fit.nc")
    again = load_fit(tmp_path / "fit.nc", model=mixture())
    assert torch.equal(again.samples["z"].to(result.samples["z"].dtype), result.samples["z"])
    assert again.resume(num_samples=5, progress_bar=False).samples["z"].shape == (2, 15, 6)


def test_qvr_fit_takes_discrete_gibbs(tmp_path):
    import io
    import json

    from quivers.cli import main

    (tmp_path / "mix.qvr").write_text(
        "object Item : FinSet 6\n"
        "program mix : Item -> Item [effects=[Sample, Score]]\n"
        "    sample p <- Beta(2.0, 2.0)\n"
        "    sample mu <- Normal(0.0, 3.0)\n"
        "    sample z : Item <- Bernoulli(p)\n"
        "    observe y : Item <- Normal(mu * z, 0.7)\n"
        "    return y\n"
        "export mix\n")
    (tmp_path / "y.json").write_text(json.dumps({"y": Y.tolist()}))
    base = ["fit", str(tmp_path / "mix.qvr"), "--data", str(tmp_path / "y.json"), "--discrete", "gibbs"]
    out, err = io.StringIO(), io.StringIO()
    assert main(base + ["--warmup", "20", "--samples", "10", "--chains", "2", "--no-progress"], out=out, err=err) == 0
    first = out.getvalue().splitlines()[0]
    assert first.startswith("mix: NUTS with Gibbs steps on `z`, 2 chains x 10 draws after 20 warmup "
                            "(chosen by fit: NUTS options given (--discrete, --warmup)")
    assert "z[5]" in out.getvalue()
    out, err = io.StringIO(), io.StringIO()
    assert main(base + ["--method", "svi"], out=out, err=err) != 0
    assert "`--discrete` of NUTS given with --method svi" in err.getvalue()


def test_the_sweep_keeps_the_sites_the_plan_sums_summed():
    """A shared switch `b` summed by the plan, `z` left to Gibbs steps
    (enumerate=False): one block draw of z from 4000 chains has the
    marginals of z's exact posterior with b summed out (the rows are
    coupled through b, so this is the joint conditional, not a per-row one)."""
    Item = FinSet("Item", 6)
    program = Program("switch", Item, Item, [
        sample("p", None, Beta(2.0, 2.0)),
        sample("mu", None, Normal(0.0, 3.0)),
        sample("b", None, Bernoulli(0.3)),
        sample("z", Item, Bernoulli(var("p"))),
        observe("y", Item, Normal(var("mu") * var("z") + 1.5 * var("b"), 0.7)),
    ])
    planned = auto(program, exclude=["z"])
    assert planned.summed == {"b"}
    adaptor = GibbsAdaptor(planned)
    assert [s.name for s in adaptor.discrete] == ["z"] and adaptor._conditional("z") is not None
    chains, gen = 4000, torch.Generator().manual_seed(1)
    y = Y.float() + 1.5
    adaptor.init_discrete(chains, gen, None, {"y": y})
    given = {"p": torch.tensor(0.5), "mu": torch.tensor(2.8)}
    z = adaptor.layout.pack({k: v.expand(chains) for k, v in given.items()})
    d = adaptor.gibbs(z, torch.zeros(chains, 6), gen, None, {"y": y})
    want = auto(program).posterior_latents(None, {"y": y}, given)["z"][..., 1]
    got = d.mean(0)
    assert bool(((got - want).abs() <= 4.5 * (want * (1 - want) / chains).sqrt() + 1e-3).all()), (got, want)
