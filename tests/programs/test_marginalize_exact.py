"""Every marginalized log density equals brute-force enumeration (float64)."""

from __future__ import annotations

import itertools
import math

import torch
from hypothesis import given
from hypothesis import strategies as st
from torch.distributions import HalfNormal, Normal

from quivers.categories import FinSet
from quivers.distributions import Categorical, Dirichlet
from quivers.distributions import HalfNormal as HN
from quivers.distributions import Normal as N
from quivers.programs import Program, index_map, marginalize, observe, ret, sample, var

from tests.programs import brute

F64 = torch.float64
floats = st.floats(-3.0, 3.0, allow_nan=False)
scales = st.floats(0.3, 2.0, allow_nan=False)
weights = st.floats(0.05, 2.0, allow_nan=False)


def t(xs):
    return torch.tensor(xs, dtype=F64)


def gmm(n: int, k: int) -> Program:
    Item, K = FinSet("Item", n), FinSet("K", k)
    mu, sd, z = var("mu_k"), var("sd_k"), var("z")
    return Program("gmm", Item, Item, [
        sample("probs", K, HN(1.0)),
        sample("mu_k", K, N(0.0, 5.0)),
        sample("sd_k", K, HN(1.0)),
        marginalize("z", K, Categorical(var("probs")), [observe("y", Item, N(mu[z], sd[z]))]),
        ret("y"),
    ])


def priors(probs, mu, sd) -> float:
    return float(
        HalfNormal(torch.tensor(1.0, dtype=F64)).log_prob(t(probs)).sum()
        + Normal(t(0.0), t(5.0)).log_prob(t(mu)).sum()
        + HalfNormal(t(1.0)).log_prob(t(sd)).sum()
    )


@st.composite
def flat_case(draw):
    n, k = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    return (
        draw(st.lists(floats, min_size=n, max_size=n)),
        draw(st.lists(weights, min_size=k, max_size=k)),
        draw(st.lists(floats, min_size=k, max_size=k)),
        draw(st.lists(scales, min_size=k, max_size=k)),
    )


@given(flat_case())
def test_per_row_mixture_matches_enumeration(case):
    y, probs, mu, sd = case
    prog = gmm(len(y), len(probs))
    got = prog.log_joint(None, {"y": t(y)}, {"probs": t(probs), "mu_k": t(mu), "sd_k": t(sd)})
    want = priors(probs, mu, sd) + brute.per_row_mixture(y, probs, mu, sd)
    assert abs(float(got) - want) < 1e-10 * max(1.0, abs(want))


def grouped(n: int, g: int, k: int, two_observes: bool, n2: int = 0) -> Program:
    Item, G, K = FinSet("Item", n), FinSet("G", g), FinSet("K", k)
    mu, sd, z = var("mu_k"), var("sd_k"), var("z")
    body = [observe("y", Item, N(mu[z], sd[z]), via="group")]
    steps = [
        sample("group", Item, HN(1.0)),
        sample("probs", G, HN(1.0)),
        sample("mu_k", K, N(0.0, 5.0)),
        sample("sd_k", K, HN(1.0)),
    ]
    if two_observes:
        Other = FinSet("Other", n2)
        steps.append(index_map("group2", Other, G))
        body.append(observe("w", Other, N(mu[z], sd[z]), via="group2"))
    steps += [marginalize("z", K, Categorical(var("probs")), body, over=G), ret("y")]
    return Program("grouped_mixture", Item, Item, steps)


@st.composite
def grouped_case(draw):
    n, g, k = draw(st.integers(1, 5)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    group = draw(st.lists(st.integers(0, g - 1), min_size=n, max_size=n))
    w = draw(st.lists(st.lists(weights, min_size=k, max_size=k), min_size=g, max_size=g))
    return (
        draw(st.lists(floats, min_size=n, max_size=n)),
        group,
        w,
        draw(st.lists(floats, min_size=k, max_size=k)),
        draw(st.lists(scales, min_size=k, max_size=k)),
    )


@given(grouped_case())
def test_grouped_mixture_matches_enumeration_including_empty_groups(case):
    y, group, w, mu, sd = case
    prog = grouped(len(y), len(w), len(mu), False)
    assert prog.sites["probs"].shape == (len(w), len(mu))  # the shape rule appends K
    obs = {"y": t(y), "group": torch.tensor(group)}
    got = prog.log_joint(None, obs, {"probs": t(w), "mu_k": t(mu), "sd_k": t(sd)})
    prior = float(
        HalfNormal(t(1.0)).log_prob(t(w)).sum() + Normal(t(0.0), t(5.0)).log_prob(t(mu)).sum()
        + HalfNormal(t(1.0)).log_prob(t(sd)).sum()
    )
    want = prior + brute.grouped_mixture([(y, group)], w, mu, sd)
    assert abs(float(got) - want) < 1e-10 * max(1.0, abs(want))


@given(grouped_case(), st.data())
def test_two_observes_share_one_group_accumulator(case, data):
    y, group, w, mu, sd = case
    g = len(w)
    n2 = data.draw(st.integers(1, 3))
    y2 = data.draw(st.lists(floats, min_size=n2, max_size=n2))
    group2 = data.draw(st.lists(st.integers(0, g - 1), min_size=n2, max_size=n2))
    prog = grouped(len(y), g, len(mu), True, n2)
    obs = {"y": t(y), "w": t(y2), "group": torch.tensor(group), "group2": torch.tensor(group2)}
    got = prog.log_joint(None, obs, {"probs": t(w), "mu_k": t(mu), "sd_k": t(sd)})
    prior = float(
        HalfNormal(t(1.0)).log_prob(t(w)).sum() + Normal(t(0.0), t(5.0)).log_prob(t(mu)).sum()
        + HalfNormal(t(1.0)).log_prob(t(sd)).sum()
    )
    want = prior + brute.grouped_mixture([(y, group), (y2, group2)], w, mu, sd)
    assert abs(float(got) - want) < 1e-10 * max(1.0, abs(want))


@given(
    st.integers(1, 3), st.integers(1, 3), st.integers(1, 3), st.data()
)
def test_nested_marginalize_matches_enumeration(n, k1, k2, data):
    """Outer z1 per row, inner z2 per row with weights depending on z1."""
    Item, K1, K2 = FinSet("Item", n), FinSet("K1", k1), FinSet("K2", k2)
    y = data.draw(st.lists(floats, min_size=n, max_size=n))
    pi1 = data.draw(st.lists(weights, min_size=k1, max_size=k1))
    trans = data.draw(st.lists(st.lists(weights, min_size=k2, max_size=k2), min_size=k1, max_size=k1))
    mu = data.draw(st.lists(st.lists(floats, min_size=k2, max_size=k2), min_size=k1, max_size=k1))
    z1, z2 = var("z1"), var("z2")
    prog = Program("nested", Item, Item, [
        marginalize("z1", K1, Categorical(t(pi1)), [
            marginalize("z2", K2, Categorical(var("trans")[z1]), [
                observe("y", Item, N(var("mu")[z1, z2], 1.0)),
            ]),
        ]),
        sample("trans", K1 * K2, Dirichlet(1.0)),
        sample("mu", K1 * K2, N(0.0, 1.0)),
    ])
    trans_n = [[v / sum(row) for v in row] for row in trans]
    got = prog.log_joint(None, {"y": t(y)}, {"trans": t(trans_n), "mu": t(mu)})
    lp1 = [math.log(v / sum(pi1)) for v in pi1]
    want = 0.0
    for i in range(n):
        want += brute.lse([
            lp1[a] + math.log(trans_n[a][b]) + brute.normal_lp(y[i], mu[a][b], 1.0)
            for a in range(k1) for b in range(k2)
        ])
    prior = float(
        torch.distributions.Dirichlet(torch.ones(k2, dtype=F64)).log_prob(t(trans_n)).sum()
        + Normal(t(0.0), t(1.0)).log_prob(t(mu)).sum()
    )
    assert abs(float(got) - (want + prior)) < 1e-10 * max(1.0, abs(want + prior))


@given(flat_case(), flat_case())
def test_two_independent_latents_add(case_a, case_b):
    ya, pa, ma, sa = case_a
    yb, pb, mb, sb = case_b
    A, B = FinSet("A", len(ya)), FinSet("B", len(yb))
    KA, KB = FinSet("KA", len(pa)), FinSet("KB", len(pb))
    za, zb = var("za"), var("zb")
    prog = Program("two", A, A, [
        marginalize("za", KA, Categorical(t(pa)), [observe("ya", A, N(var("ma")[za], var("sa")[za]))]),
        marginalize("zb", KB, Categorical(t(pb)), [observe("yb", B, N(var("mb")[zb], var("sb")[zb]))]),
        sample("ma", KA, N(0.0, 1.0)), sample("sa", KA, HN(1.0)),
        sample("mb", KB, N(0.0, 1.0)), sample("sb", KB, HN(1.0)),
    ])
    got = prog.log_joint(
        None, {"ya": t(ya), "yb": t(yb)},
        {"ma": t(ma), "sa": t(sa), "mb": t(mb), "sb": t(sb)},
    )
    prior = float(
        Normal(t(0.0), t(1.0)).log_prob(t(ma)).sum() + HalfNormal(t(1.0)).log_prob(t(sa)).sum()
        + Normal(t(0.0), t(1.0)).log_prob(t(mb)).sum() + HalfNormal(t(1.0)).log_prob(t(sb)).sum()
    )
    want = prior + brute.per_row_mixture(ya, pa, ma, sa) + brute.per_row_mixture(yb, pb, mb, sb)
    assert abs(float(got) - want) < 1e-10 * max(1.0, abs(want))


@given(grouped_case())
def test_grouped_responsibilities_sum_to_one_and_match_enumeration(case):
    y, group, w, mu, sd = case
    g, k = len(w), len(mu)
    prog = grouped(len(y), g, k, False)
    obs = {"y": t(y), "group": torch.tensor(group)}
    resp = prog.posterior_latents(None, obs, {"probs": t(w), "mu_k": t(mu), "sd_k": t(sd)})["z"]
    assert resp.shape == (g, k)
    torch.testing.assert_close(resp.sum(-1), torch.ones(g, dtype=F64))
    for j in range(g):
        scores = [
            math.log(w[j][c] / sum(w[j]))
            + sum(brute.normal_lp(y[i], mu[c], sd[c]) for i in range(len(y)) if group[i] == j)
            for c in range(k)
        ]
        norm = brute.lse(scores)
        for c in range(k):
            assert abs(float(resp[j, c]) - math.exp(scores[c] - norm)) < 1e-10
    assert torch.equal(prog.map_latents(None, obs, {"probs": t(w), "mu_k": t(mu), "sd_k": t(sd)})["z"], resp.argmax(-1))


@given(flat_case())
def test_per_row_responsibilities_match_enumeration(case):
    y, probs, mu, sd = case
    prog = gmm(len(y), len(probs))
    resp = prog.posterior_latents(None, {"y": t(y)}, {"probs": t(probs), "mu_k": t(mu), "sd_k": t(sd)})["z"]
    for i in range(len(y)):
        scores = [math.log(probs[c] / sum(probs)) + brute.normal_lp(y[i], mu[c], sd[c]) for c in range(len(probs))]
        norm = brute.lse(scores)
        for c in range(len(probs)):
            assert abs(float(resp[i, c]) - math.exp(scores[c] - norm)) < 1e-10


def test_gradients_of_marginal_density_pass_gradcheck():
    prog = grouped(5, 3, 2, False)
    y = torch.randn(5, dtype=F64)
    group = torch.tensor([0, 0, 2, 2, 2])  # group 1 is empty

    def f(probs, mu, sd):
        return prog.log_joint(None, {"y": y, "group": group}, {"probs": probs, "mu_k": mu, "sd_k": sd})

    args = (
        torch.rand(3, 2, dtype=F64) + 0.1,
        torch.randn(2, dtype=F64),
        torch.rand(2, dtype=F64) + 0.5,
    )
    assert torch.autograd.gradcheck(f, tuple(a.requires_grad_() for a in args))


def test_batched_latents_and_observation_batch_broadcast():
    """Particles of latents (P, K) meet observations with a leading batch (1, N)."""
    prog = gmm(4, 2)
    y = torch.randn(1, 4, dtype=F64)
    lat = {"probs": torch.rand(3, 2, dtype=F64) + 0.1, "mu_k": torch.randn(3, 2, dtype=F64),
           "sd_k": torch.rand(3, 2, dtype=F64) + 0.5}
    out = prog.log_joint(None, {"y": y}, lat)
    assert out.shape == (3,)
    for p in range(3):
        one = prog.log_joint(None, {"y": y[0]}, {k: v[p] for k, v in lat.items()})
        torch.testing.assert_close(out[p], one)
