"""PSIS-LOO, WAIC, compare, LOO-PIT and simulation-based calibration, on a
conjugate normal model whose leave-one-out predictive densities have a
closed form: the fit's estimates must match it, a wrong model must rank
below the right one, and SBC must accept an exact posterior and reject a
too-narrow one."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from quivers.categories.finset import FinSet
from quivers.distributions import Normal
from quivers.errors import QuiversTypeError
from quivers.inference import compare, fit, loo, loo_pit, ppc_pvalue, sbc, waic
from quivers.programs import Program, observe, sample, var
from tests.programs.models import gmm, grouped

Y = torch.tensor([0.3, 1.1, -0.4, 2.0, 0.8, -1.2, 0.5, 1.6])
N = len(Y)


def model(sd: float = 1.0) -> Program:
    """mu ~ Normal(0, 1), y_i ~ Normal(mu, sd)."""
    I = FinSet("I", N)
    return Program("conjugate", I, I, [sample("mu", None, Normal(0.0, 1.0)), observe("y", I, Normal(var("mu"), sd))])


def loo_predictive() -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and sd of each y_i's predictive given the others (closed form)."""
    y = Y.double()
    precision = 1.0 + (N - 1)
    mean = (y.sum() - y) / precision
    return mean, (1.0 / precision + 1.0) ** 0.5


@pytest.fixture(scope="module")
def fits():
    options = dict(num_warmup=100, num_samples=250, num_chains=2, seed=0, progress_bar=False)
    return {"right": fit(model(), {"y": Y}, **options), "narrow": fit(model(0.3), {"y": Y}, **options)}


def test_loo_and_waic_match_the_closed_form(fits):
    mean, sd = loo_predictive()
    exact = float(torch.distributions.Normal(mean, sd).log_prob(Y.double()).sum())
    got = loo(fits["right"])
    assert abs(got.elpd_loo - exact) < 0.1
    assert got.pareto_k.shape == (N,) and float(got.pareto_k.max()) < 0.7
    assert abs(waic(fits["right"]).elpd_waic - exact) < 0.15


def test_compare_ranks_the_right_model_first(fits):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = compare(fits)
    assert not [w for w in caught if "pandas" in w.category.__module__], "ArviZ's pandas deprecations reach the user"
    assert list(table.index) == ["right", "narrow"]
    assert abs(table.loc["right", "elpd_loo"] - loo(fits["right"]).elpd_loo) < 1e-9
    assert table.loc["narrow", "elpd_diff"] > 5.0


def test_loo_pit_matches_the_closed_form(fits):
    mean, sd = loo_predictive()
    exact = torch.distributions.Normal(mean, sd).cdf(Y.double())
    got = torch.as_tensor(loo_pit(fits["right"], "y"))
    assert got.shape == (N,)
    # Monte Carlo error of 500 predictive draws: sd about 0.5 / sqrt(500) = 0.022
    assert float((got - exact).abs().max()) < 0.1
    narrow = torch.as_tensor(loo_pit(fits["narrow"], "y"))  # too narrow a model: PIT piled at the ends
    assert float((narrow - exact).abs().max()) > 0.2


def test_ppc_pvalue_of_the_mean_matches_the_closed_form(fits):
    """T = mean: under the posterior predictive, mean(y_rep) ~ Normal(m, sqrt(v + 1 / N))
    with the posterior's mean m and variance v, so P(T(y_rep) >= mean(y)) has a closed form."""
    p, t_rep, t_obs = ppc_pvalue(fits["right"], "y", "mean")
    m, v = float(Y.sum()) / (1.0 + N), 1.0 / (1.0 + N)
    exact = 1.0 - float(torch.distributions.Normal(m, math.sqrt(v + 1.0 / N)).cdf(Y.mean()))
    assert t_rep.shape == (2, 250) and abs(t_obs - float(Y.mean())) < 1e-6
    assert abs(p - exact) < 0.08  # Monte Carlo sd about 0.5 / sqrt(500)
    # a model too narrow for the data: its replications never spread as far
    assert ppc_pvalue(fits["narrow"], "y", "sd")[0] < 0.01
    assert 0.05 < ppc_pvalue(fits["right"], "y", lambda t: t.std(-1))[0] < 0.95


def exact_posterior(widen: float = 1.0):
    def draw(obs):
        precision = 1.0 + N
        return {"mu": obs["y"].sum() / precision + widen * torch.randn(99) / precision**0.5}

    return draw


def test_sbc_accepts_the_exact_posterior_and_rejects_a_narrow_one():
    good = sbc(model(), ["y"], num_replications=300, num_draws=99, posterior=exact_posterior())
    assert good.ranks["mu"].shape == (300,) and int(good.ranks["mu"].min()) >= 0 and int(good.ranks["mu"].max()) <= 99
    assert good.bins == 20 and good.uniform(0.01)
    bad = sbc(model(), ["y"], num_replications=300, num_draws=99, posterior=exact_posterior(0.5))
    assert not bad.uniform(0.01) and float(bad.p_values["mu"]) < 1e-6


@pytest.mark.slow
def test_sbc_of_nuts_on_the_conjugate_model():
    """NUTS itself, 100 replications: ranks uniform at the 1% level."""
    result = sbc(model(), ["y"], num_replications=100, num_draws=19, bins=10,
                 num_warmup=150, num_samples=100, num_chains=2)
    assert result.uniform(0.01), result.p_values


def by_mean(v: dict) -> dict:
    """A mixture's parameters with the components sorted by their means,
    the weights normalized: free of the labels, which NUTS does not swap."""
    order = v["mu_k"].argsort(-1)
    probs = v["probs"] / v["probs"].sum(-1, keepdim=True)
    by_group = order.unsqueeze(-2).expand(probs.shape) if probs.dim() > order.dim() else order
    return {"mu_k": v["mu_k"].gather(-1, order), "sd_k": v["sd_k"].gather(-1, order),
            "probs": probs.gather(-1, by_group)}


def test_batched_sbc_pairs_chain_r_with_data_set_r():
    """One chain per replication: the potential of the batch is each
    replication's own potential, and label-free quantities are ranked."""
    from quivers.inference.checking import _PerChainData
    from quivers.inference.program_adaptor import ProgramAdaptor

    prog, fixed = grouped(n=6, g=3, declared=True), {"group": torch.arange(6) % 3}
    torch.manual_seed(0)
    y = prog.sample(None, (4,), observations=fixed)["y"]
    batch = _PerChainData(prog, observed_names={"y", "group"})
    z = torch.randn(4, batch.layout.dim)
    one = ProgramAdaptor(prog, observed_names={"y", "group"})
    each = torch.cat([one.potential(z[r : r + 1], None, {**fixed, "y": y[r]}) for r in range(4)])
    torch.testing.assert_close(batch.potential(z, None, {**fixed, "y": y}), each)
    torch.testing.assert_close(batch.potential_for(None, {**fixed, "y": y})(z), each)  # what a kernel calls
    result = sbc(prog, {"y": None, **fixed}, num_replications=4, num_draws=9, batched=True, num_warmup=5,
                 num_samples=10, quantities=by_mean)
    assert sorted(result.ranks) == ["mu_k", "probs", "sd_k"] and result.ranks["probs"].shape == (4, 3, 2)


@pytest.mark.slow
@pytest.mark.parametrize("which", ["gmm", "grouped"])
def test_the_seed_mixtures_pass_sbc_with_nuts(which):
    """Issue #19 part 5: the seed's mixture and grouped mixture (20 rows;
    4 groups), 200 replications, ranks of the label-free parameters uniform
    at the 1% level. To fit in CI (about 15 s each on one core) the 200
    fits run as one batched NUTS run of one chain each, 100 warmup
    iterations and 100 draws (thinned to 19), trees at most 6 deep."""
    if which == "gmm":
        prog, observed = gmm(n=20), ["y"]
    else:
        prog, observed = grouped(n=20, g=4, declared=True), {"y": None, "group": torch.arange(20) % 4}
    result = sbc(prog, observed, num_replications=200, num_draws=19, bins=10, batched=True, num_warmup=100,
                 num_samples=100, max_tree_depth=6, quantities=by_mean)
    assert result.ranks["mu_k"].shape[0] == 200
    assert result.uniform(0.01), result.p_values


def test_bad_arguments_are_named(fits):
    with pytest.raises(QuiversTypeError, match="at least two named fits"):
        compare({"right": fits["right"]})
    with pytest.raises(QuiversTypeError, match="`z` is no observed site"):
        loo_pit(fits["right"], "z")
    with pytest.raises(QuiversTypeError, match="`mu` is no observed site"):
        sbc(model(), ["mu"], posterior=exact_posterior())
    with pytest.raises(QuiversTypeError, match="`posterior` or `batched=True`, not both"):
        sbc(model(), ["y"], posterior=exact_posterior(), batched=True)
    with pytest.raises(QuiversTypeError, match="unknown statistic `var`"):
        ppc_pvalue(fits["right"], "y", "var")
    with pytest.raises(QuiversTypeError, match="`mu` is no observed site"):
        ppc_pvalue(fits["right"], "mu")
    with pytest.raises(QuiversTypeError, match="FitResult or an arviz.InferenceData"):
        loo({"mu": torch.zeros(3)})
