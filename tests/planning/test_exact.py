"""Planned sums are exact: against brute-force enumeration in float64 on
random small programs, against the float loops of ``tests/programs/brute``,
and against the hand-written ``marginalize`` version of the same model."""

from __future__ import annotations

import itertools

import torch
from hypothesis import given, strategies as st

from quivers.dsl import loads
from quivers.planning import auto
from tests.planning.models import F64, Shape, assignments, brute_force, build, hmm_chain, values
from tests.programs import brute

shapes = st.builds(
    Shape, st.booleans(), st.booleans(), st.booleans(), st.booleans(), st.booleans(), st.booleans(),
    st.booleans(), n=st.integers(1, 3), g=st.integers(1, 2),
)


@given(shapes, st.integers(0, 2**16))
def test_planned_log_joint_equals_brute_force_enumeration(shape, seed):
    program = build(shape)
    planned = auto(program)
    obs, lat = values(program, torch.Generator().manual_seed(seed))
    expected = brute_force(program, sorted(planned.summed), obs, lat) if planned.summed else program.log_joint(None, obs, lat)
    torch.testing.assert_close(planned.log_joint(None, obs, lat), expected)


@given(shapes, st.integers(0, 2**16))
def test_posterior_marginals_and_map_equal_brute_force(shape, seed):
    program = build(shape)
    planned = auto(program)
    if not planned.summed:
        return
    obs, lat = values(program, torch.Generator().manual_seed(seed))
    names = sorted(planned.summed)
    sizes = [2 if program.sites[n].family.name == "Bernoulli" else program.sites[n].num_values for n in names]
    given_ = assignments(program, names)
    rows = next(iter(given_.values())).shape[0]
    joint = program.log_joint(None, obs, {**lat, **given_})
    post = torch.softmax(joint, 0)
    marginals = planned.posterior_latents(None, obs, lat)
    best = planned.map_latents(None, obs, lat)
    top = int(joint.argmax())
    for name, k in zip(names, sizes):
        v = given_[name].long().reshape(rows, -1)
        expected = torch.stack([(post[:, None] * (v == i)).sum(0) for i in range(k)], -1)
        torch.testing.assert_close(marginals[name].reshape(-1, k), expected)
        if float(joint.topk(2).values.diff().abs()) > 1e-6:  # a unique most probable assignment
            assert torch.equal(best[name].reshape(-1), v[top])


def test_joint_posterior_draws_follow_the_exact_joint():
    shape = Shape(True, False, False, True, False, False, False, n=2)
    program = build(shape)
    planned = auto(program)
    obs, lat = values(program, torch.Generator().manual_seed(3))
    torch.manual_seed(0)
    draws = planned.posterior_draws(None, obs, lat, (4000,))
    a, d = draws["a"], draws["d"]
    for va, d0, d1 in itertools.product(range(2), range(2), range(2)):
        given_ = {"a": torch.tensor(va), "d": torch.tensor([d0, d1])}
        exact = (program.log_joint(None, obs, {**lat, **given_}) - planned.log_joint(None, obs, lat)).exp()
        freq = ((a == va) & (d[:, 0] == d0) & (d[:, 1] == d1)).double().mean()
        assert abs(float(freq) - float(exact)) < 0.03  # 4 sd of a frequency of 4000 draws


MIXTURE = """\
object Item : FinSet 5
object K : FinSet 3

program gmm : Item -> Item [effects=[Sample, Score]]
    sample probs : K <- HalfNormal(1.0)
    sample mu_k : K <- Normal(0.0, 5.0)
    sample sd_k : K <- HalfNormal(1.0)
    sample z : Item <- Categorical(probs)
    observe y : Item <- Normal(mu_k[z], sd_k[z])
    return y

export gmm
"""

MIXTURE_BY_HAND = """\
object Item : FinSet 5
object K : FinSet 3

program gmm : Item -> Item [effects=[Sample, Score, Marginal]]
    sample probs : K <- HalfNormal(1.0)
    sample mu_k : K <- Normal(0.0, 5.0)
    sample sd_k : K <- HalfNormal(1.0)
    marginalize z : K <- Categorical(probs)
        observe y : Item <- Normal(mu_k[z], sd_k[z])
    return y

export gmm
"""

GROUPED = """\
object Item : FinSet 7
object G : FinSet 3
object K : FinSet 2

program grouped : Item -> Item [effects=[Sample, Score]]
    data group : Item -> G
    sample probs : G * K <- HalfNormal(1.0)
    sample mu_k : K <- Normal(0.0, 5.0)
    sample sd_k : K <- HalfNormal(1.0)
    sample z : G <- Categorical(probs)
    observe y : Item <- Normal(mu_k[z[group]], sd_k[z[group]])
    return y

export grouped
"""

GROUPED_BY_HAND = """\
object Item : FinSet 7
object G : FinSet 3
object K : FinSet 2

program grouped : Item -> Item [effects=[Sample, Score, Marginal]]
    sample group : Item <- HalfNormal(1.0)
    sample probs : G <- HalfNormal(1.0)
    sample mu_k : K <- Normal(0.0, 5.0)
    sample sd_k : K <- HalfNormal(1.0)
    marginalize z : K <- Categorical(probs) [over=G]
        observe y : Item <- Normal(mu_k[z], sd_k[z]) [via=group]
    return y

export grouped
"""


def test_the_planned_mixture_equals_its_marginalize_version_and_the_float_loops():
    planned, hand = auto(loads(MIXTURE).morphism, lower=False), loads(MIXTURE_BY_HAND).morphism
    assert planned.plan().variables == {"z": ("Item",)}  # the general plan, not the lowered block
    y = torch.tensor([-2.1, 0.3, 1.9, 2.2, -1.7], dtype=F64)
    lat = {"probs": torch.tensor([0.5, 1.0, 2.0], dtype=F64), "mu_k": torch.tensor([-2.0, 0.0, 2.0], dtype=F64),
           "sd_k": torch.tensor([0.5, 1.0, 0.7], dtype=F64)}
    lj = planned.log_joint(None, {"y": y}, lat)
    torch.testing.assert_close(lj, hand.log_joint(None, {"y": y}, lat))
    prior = hand.log_joint(None, {"y": y}, lat) - brute.per_row_mixture(
        y.tolist(), lat["probs"].tolist(), lat["mu_k"].tolist(), lat["sd_k"].tolist())
    torch.testing.assert_close(lj - prior, hand.log_joint(None, {"y": y}, lat) - prior)
    torch.testing.assert_close(planned.posterior_latents(None, {"y": y}, lat)["z"],
                               hand.posterior_latents(None, {"y": y}, lat)["z"])
    assert [s.name for s in planned.latent_sites()] == [s.name for s in hand.latent_sites()]


def test_the_planned_grouped_mixture_equals_its_marginalize_version():
    planned, hand = auto(loads(GROUPED).morphism, lower=False), loads(GROUPED_BY_HAND).morphism
    assert planned.plan().variables == {"z": ("G",)}  # the general plan: a Kan extension along `group`
    lowered = auto(loads(GROUPED).morphism)
    assert lowered.plan().lowered == {"z": "a marginalize block over G, its rows carried along `group`"}
    gen = torch.Generator().manual_seed(1)
    obs = {"y": torch.randn(7, generator=gen, dtype=F64) * 2, "group": torch.tensor([0, 0, 1, 1, 2, 0, 2])}
    lat = {"probs": torch.rand(3, 2, generator=gen, dtype=F64) + 0.1, "mu_k": torch.tensor([-1.0, 1.0], dtype=F64),
           "sd_k": torch.tensor([1.0, 2.0], dtype=F64)}
    for p in (planned, lowered):
        torch.testing.assert_close(p.log_joint(None, obs, lat), hand.log_joint(None, obs, lat))
        torch.testing.assert_close(p.posterior_latents(None, obs, lat)["z"], hand.posterior_latents(None, obs, lat)["z"])
    # a batch of draws (MCMC chains) on the leading axis
    batch = {k: torch.stack([v, v * 1.5]) for k, v in lat.items()}
    torch.testing.assert_close(planned.log_joint(None, obs, batch), hand.log_joint(None, obs, batch))


def test_an_hmm_written_as_a_chain_of_sample_sites_equals_the_markov_block_through_the_general_plan():
    chain, hmm = hmm_chain(5)
    planned = auto(chain, lower=False)  # auto(chain) writes the markov block itself: tests/planning/test_chains.py
    plan = planned.plan()
    assert plan.order == ("z0", "z1", "z2", "z3", "z4") and plan.treewidth == 1  # the forward algorithm
    y = torch.tensor([-1.0, 0.5, 1.2, 0.9, -0.3], dtype=F64)
    lat = {"A": torch.tensor([[0.8, 0.2], [0.3, 0.7]], dtype=F64), "pi": torch.tensor([0.4, 1.2], dtype=F64),
           "mu": torch.tensor([-1.0, 1.0], dtype=F64)}
    obs = {f"y{t}": y[t] for t in range(5)}
    torch.testing.assert_close(planned.log_joint(None, obs, lat), hmm.log_joint(None, {"y": y}, lat))
    marginals = planned.posterior_latents(None, obs, lat)
    smoothed = hmm.posterior_latents(None, {"y": y}, lat)["z"]
    for t in range(5):
        torch.testing.assert_close(marginals[f"z{t}"], smoothed[t])
    viterbi = hmm.map_latents(None, {"y": y}, lat)["z"]
    best = planned.map_latents(None, obs, lat)
    assert [int(best[f"z{t}"]) for t in range(5)] == viterbi.tolist()


def test_a_chain_of_sample_sites_runs_as_one_balanced_product_equal_to_brute_force(monkeypatch):
    import quivers.planning.contract as contract

    chain, _ = hmm_chain(6)
    planned = auto(chain, lower=False)
    runs = []
    real = contract._run_chain
    monkeypatch.setattr(contract, "_run_chain", lambda ops, live: runs.append(len(ops)) or real(ops, live))
    gen = torch.Generator().manual_seed(0)
    y = torch.randn(6, generator=gen, dtype=F64)
    obs = {f"y{t}": y[t] for t in range(6)}
    lat = {"A": torch.rand(2, 2, generator=gen, dtype=F64) + 0.1, "pi": torch.rand(2, generator=gen, dtype=F64) + 0.1,
           "mu": torch.randn(2, generator=gen, dtype=F64)}
    lat = {k: v.requires_grad_() for k, v in lat.items()}
    got = planned.log_joint(None, obs, lat)
    assert runs == [5]  # z0 ... z4 in one product; z5, the last, summed alone
    expected = brute_force(chain, [f"z{t}" for t in range(6)], obs, lat)
    torch.testing.assert_close(got, expected)
    for g, e in zip(torch.autograd.grad(got, list(lat.values())), torch.autograd.grad(expected, list(lat.values()))):
        torch.testing.assert_close(g, e)
    # a batch of draws (MCMC chains) on the leading axis: each as it is alone
    batch = {k: torch.stack([v.detach(), v.detach() * 1.5]) for k, v in lat.items()}
    alone = torch.stack([planned.log_joint(None, obs, {k: v[i] for k, v in batch.items()}) for i in range(2)])
    torch.testing.assert_close(planned.log_joint(None, obs, batch), alone)
    assert runs == [5, 5, 5, 5]


def test_a_binomial_count_with_a_constant_n_is_summed_exactly():
    from quivers.categories import FinSet
    from quivers.distributions import Binomial, Normal
    from quivers.programs import Program, observe, sample, var

    I = FinSet("I", 3)
    p = Program("p", I, I, [sample("n", None, Binomial(4, 0.3)), sample("s", None, Normal(0.0, 1.0)),
                            observe("y", I, Normal(var("n") * 1.0 + var("s"), 1.0))])
    planned = auto(p)
    assert planned.summed == {"n"} and planned.plan().sizes["n"] == 5
    obs, lat = {"y": torch.tensor([1.1, 2.3, 0.7], dtype=F64)}, {"s": torch.tensor(0.2, dtype=F64)}
    given = {"n": torch.arange(5, dtype=F64)}
    expected = torch.logsumexp(p.log_joint(None, obs, {**lat, **given}), 0)
    torch.testing.assert_close(planned.log_joint(None, obs, lat), expected)
