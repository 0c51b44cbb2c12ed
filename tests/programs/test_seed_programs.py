"""The seed chapter's two programs, built with the Python combinators, against
independently written torch computations in float64."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from quivers.categories import FinSet
from quivers.distributions import Categorical, HalfNormal, Normal
from quivers.programs import Effect, Program, marginalize, observe, ret, sample, var

F64 = torch.float64
D = torch.distributions


def seed_gmm() -> Program:
    """object Item : FinSet 500; object K : FinSet 2; program gmm (chapter 4)."""
    Item, K = FinSet("Item", 500), FinSet("K", 2)
    mu_k, sd_k, z = var("mu_k"), var("sd_k"), var("z")
    return Program("gmm", Item, Item, [
        sample("probs", K, HalfNormal(1.0)),
        sample("mu_k", K, Normal(0.0, 5.0)),
        sample("sd_k", K, HalfNormal(1.0)),
        marginalize("z", K, Categorical(var("probs")), [
            observe("y", Item, Normal(mu_k[z], sd_k[z])),
        ]),
        ret("y"),
    ], effects=["Sample", "Score", "Marginal"])


def seed_grouped(n: int = 1000, g: int = 20, k: int = 3) -> Program:
    """object Item : FinSet 1000; G : FinSet 20; K : FinSet 3; program grouped_mixture."""
    Item, G, K = FinSet("Item", n), FinSet("G", g), FinSet("K", k)
    mu_k, sd_k, z = var("mu_k"), var("sd_k"), var("z")
    return Program("grouped_mixture", Item, Item, [
        sample("group", Item, HalfNormal(1.0)),
        sample("probs", G, HalfNormal(1.0)),
        sample("mu_k", K, Normal(0.0, 5.0)),
        sample("sd_k", K, HalfNormal(1.0)),
        marginalize("z", K, Categorical(var("probs")), [
            observe("y", Item, Normal(mu_k[z], sd_k[z]), via="group"),
        ], over=G),
        ret("y"),
    ], effects=["Sample", "Score", "Marginal"])


def priors(probs, mu, sd):
    one = torch.tensor(1.0, dtype=F64)
    return (
        D.HalfNormal(one).log_prob(probs).sum()
        + D.Normal(0.0 * one, 5.0 * one).log_prob(mu).sum()
        + D.HalfNormal(one).log_prob(sd).sum()
    )


def flat_reference(y, probs, mu, sd):
    """Stan's loop: target += log_sum_exp(log(probs[k]) + normal_lpdf(y[n] | mu[k], sd[k]))."""
    logw = torch.log(probs / probs.sum())
    lp = torch.stack([logw[k] + D.Normal(mu[k], sd[k]).log_prob(y) for k in range(len(probs))], -1)
    return priors(probs, mu, sd) + torch.logsumexp(lp, -1).sum()


def grouped_reference(y, group, probs, mu, sd):
    """One log_mix per group, its rows' log likelihoods summed by a mask."""
    total = priors(probs, mu, sd)
    lik = torch.stack([D.Normal(mu[k], sd[k]).log_prob(y) for k in range(len(mu))], -1)  # (N, K)
    for g in range(probs.shape[0]):
        rows = group == g
        per_k = torch.log(probs[g] / probs[g].sum()) + lik[rows].sum(0)
        total = total + torch.logsumexp(per_k, 0)
    return total


def test_the_seed_gmm_is_built_as_the_chapter_declares_it():
    prog = seed_gmm()
    assert prog.effects == {Effect.Sample, Effect.Score, Effect.Marginal}
    assert [s.name for s in prog.latent_sites()] == ["probs", "mu_k", "sd_k"]
    assert prog.sites["z"].dims == ("Item",) and prog.sites["z"].shape == (500,)
    assert prog.sites["y"].blocks == ("z",)


def test_the_seed_grouped_mixture_applies_the_shape_rule_and_reads_group_as_data():
    prog = seed_grouped()
    assert prog.sites["probs"].dims == ("G", "K") and prog.sites["probs"].shape == (20, 3)
    assert prog.sites["group"].kind == "index" and prog.sites["group"].values_in == "G"
    assert prog.sites["z"].dims == ("G",) and prog.sites["z"].num_values == 3
    assert [s.name for s in prog.latent_sites()] == ["probs", "mu_k", "sd_k"]


def seed_data(seed: int = 0):
    """The chapter's synthetic data: two clusters at -2 and 2."""
    gen = torch.Generator().manual_seed(seed)
    true_mu, true_sd = torch.tensor([-2.0, 2.0], dtype=F64), torch.tensor([0.5, 0.7], dtype=F64)
    z_true = torch.bernoulli(torch.full((500,), 0.6, dtype=F64), generator=gen).long()
    y = torch.randn(500, dtype=F64, generator=gen) * true_sd[z_true] + true_mu[z_true]
    return y


def test_seed_gmm_log_joint_equals_the_stan_loop():
    prog = seed_gmm()
    y = seed_data()
    gen = torch.Generator().manual_seed(1)
    for _ in range(3):
        probs = torch.rand(2, dtype=F64, generator=gen) + 0.05
        mu = torch.randn(2, dtype=F64, generator=gen) * 3
        sd = torch.rand(2, dtype=F64, generator=gen) + 0.3
        got = prog.log_joint(None, {"y": y}, {"probs": probs, "mu_k": mu, "sd_k": sd})
        torch.testing.assert_close(got, flat_reference(y, probs, mu, sd), rtol=1e-12, atol=1e-9)


def test_seed_gmm_takes_y_with_a_leading_batch_axis():
    """The chapter passes y_data.unsqueeze(0), shape (1, 500)."""
    prog = seed_gmm()
    y = seed_data()
    lat = {"probs": torch.tensor([0.4, 0.6], dtype=F64), "mu_k": torch.tensor([-2.0, 2.0], dtype=F64),
           "sd_k": torch.tensor([0.5, 0.7], dtype=F64)}
    got = prog.log_joint(None, {"y": y.unsqueeze(0)}, lat)
    assert got.shape == (1,)
    torch.testing.assert_close(got[0], flat_reference(y, lat["probs"], lat["mu_k"], lat["sd_k"]), rtol=1e-12, atol=1e-9)
    # Particles of latents meet the batch axis of y.
    particles = {k: torch.stack([v, v * 1.1]) for k, v in lat.items()}
    out = prog.log_joint(None, {"y": y.unsqueeze(0)}, particles)
    assert out.shape == (2,)
    torch.testing.assert_close(out[1], flat_reference(y, *(particles[k][1] for k in ("probs", "mu_k", "sd_k"))))


@pytest.mark.parametrize("empty_groups", [False, True])
def test_seed_grouped_mixture_log_joint_equals_a_per_group_log_mix(empty_groups):
    prog = seed_grouped()
    gen = torch.Generator().manual_seed(2)
    group = torch.randint(0, 10 if empty_groups else 20, (1000,), generator=gen)
    y = torch.randn(1000, dtype=F64, generator=gen) * 2
    probs = torch.rand(20, 3, dtype=F64, generator=gen) + 0.05
    mu = torch.tensor([-3.0, 0.0, 3.0], dtype=F64)
    sd = torch.tensor([1.0, 0.5, 2.0], dtype=F64)
    got = prog.log_joint(None, {"y": y.unsqueeze(0), "group": group}, {"probs": probs, "mu_k": mu, "sd_k": sd})
    torch.testing.assert_close(got[0], grouped_reference(y, group, probs, mu, sd), rtol=1e-12, atol=1e-8)


@given(st.integers(1, 12), st.integers(1, 4), st.integers(1, 3), st.data())
def test_grouped_mixture_at_drawn_sizes_equals_the_reference(n, g, k, data):
    prog = seed_grouped(n, g, k)
    seed = data.draw(st.integers(0, 2**16))
    gen = torch.Generator().manual_seed(seed)
    group = torch.tensor(data.draw(st.lists(st.integers(0, g - 1), min_size=n, max_size=n)))
    y = torch.randn(n, dtype=F64, generator=gen)
    probs = torch.rand(g, k, dtype=F64, generator=gen) + 0.05
    mu = torch.randn(k, dtype=F64, generator=gen)
    sd = torch.rand(k, dtype=F64, generator=gen) + 0.3
    got = prog.log_joint(None, {"y": y, "group": group}, {"probs": probs, "mu_k": mu, "sd_k": sd})
    want = grouped_reference(y, group, probs, mu, sd)
    assert abs(float(got) - float(want)) <= 1e-10 * max(1.0, abs(float(want)))


def test_seed_posteriors_match_the_reference_responsibilities():
    prog = seed_grouped(40, 5, 3)
    gen = torch.Generator().manual_seed(3)
    group = torch.randint(0, 5, (40,), generator=gen)
    y = torch.randn(40, dtype=F64, generator=gen)
    probs = torch.rand(5, 3, dtype=F64, generator=gen) + 0.1
    mu, sd = torch.tensor([-1.0, 0.0, 1.0], dtype=F64), torch.ones(3, dtype=F64)
    resp = prog.posterior_latents(None, {"y": y, "group": group}, {"probs": probs, "mu_k": mu, "sd_k": sd})["z"]
    lik = torch.stack([D.Normal(mu[k], sd[k]).log_prob(y) for k in range(3)], -1)
    for g in range(5):
        per_k = torch.log(probs[g] / probs[g].sum()) + lik[group == g].sum(0)
        torch.testing.assert_close(resp[g], torch.softmax(per_k, 0))


def test_seed_gradients_pass_gradcheck():
    flat = seed_gmm()
    y = seed_data()

    def f(probs, mu, sd):
        return flat.log_joint(None, {"y": y}, {"probs": probs, "mu_k": mu, "sd_k": sd})

    args = (torch.tensor([0.4, 0.6], dtype=F64), torch.tensor([-1.5, 1.5], dtype=F64), torch.tensor([0.6, 0.8], dtype=F64))
    assert torch.autograd.gradcheck(f, tuple(a.clone().requires_grad_() for a in args))
    grouped = seed_grouped(12, 4, 3)
    group = torch.tensor([0, 0, 1, 1, 1, 3, 3, 3, 3, 0, 1, 3])  # group 2 is empty
    yg = torch.randn(12, dtype=F64)

    def h(probs, mu, sd):
        return grouped.log_joint(None, {"y": yg, "group": group}, {"probs": probs, "mu_k": mu, "sd_k": sd})

    args = (torch.rand(4, 3, dtype=F64) + 0.1, torch.randn(3, dtype=F64), torch.rand(3, dtype=F64) + 0.5)
    assert torch.autograd.gradcheck(h, tuple(a.clone().requires_grad_() for a in args))


def test_logits_prior_gradients_pass_gradcheck():
    Item, K = FinSet("Item", 5), FinSet("K", 3)
    z = var("z")
    prog = Program("p", Item, Item, [
        sample("lg", K, Normal(0.0, 1.0)),
        sample("mu_k", K, Normal(0.0, 1.0)),
        marginalize("z", K, Categorical(logits=var("lg")), [observe("y", Item, Normal(var("mu_k")[z], 1.0))]),
    ])
    y = torch.randn(5, dtype=F64)

    def f(lg, mu):
        return prog.log_joint(None, {"y": y}, {"lg": lg, "mu_k": mu})

    assert torch.autograd.gradcheck(f, (torch.randn(3, dtype=F64, requires_grad=True), torch.randn(3, dtype=F64, requires_grad=True)))
