"""A chain of sample sites (an HMM written site by site) is recognized and
summed by the ``markov`` block's forward algorithm; near misses fall back
on the general plan. Both are exact: against brute-force enumeration in
float64 and against the ``markov`` block written by hand."""

from __future__ import annotations

import io
import itertools

import pytest
import torch
from hypothesis import given, settings, strategies as st

from quivers.cli import main
from quivers.dsl import loads
from quivers.errors import DataError
from quivers.planning import auto
from quivers.programs.chain import MarkovStep
from tests.planning.models import F64, assignments, brute_force, hmm_chain, hmm_values

MISSES = ["table", "skip", "emission", "unobserved"]


def _zs(program) -> list[str]:
    return sorted((n for n, s in program.sites.items() if n.startswith("z")), key=lambda n: int(n[1:]))


@given(st.integers(2, 5), st.integers(2, 3), st.sampled_from([None] + MISSES), st.integers(0, 2**16))
@settings(max_examples=25, deadline=None)
def test_a_chain_or_a_near_miss_is_exact_against_brute_force(n, k, miss, seed):
    chain, _ = hmm_chain(n, k, miss)
    planned = auto(chain)
    blocks = [s for s in planned.steps if isinstance(s, MarkovStep)]
    # only the exact pattern is lowered (a chain of two steps with its own table B is one)
    assert len(blocks) == (1 if miss is None or (miss == "table" and n == 2) else 0)
    assert planned.summed == set(_zs(chain))
    obs, lat = hmm_values(chain, torch.Generator().manual_seed(seed))
    lat = {n_: v.requires_grad_() for n_, v in lat.items()}
    got = planned.log_joint(None, obs, lat)
    expected = brute_force(chain, _zs(chain), obs, lat)
    torch.testing.assert_close(got, expected)
    for g, e in zip(torch.autograd.grad(got, list(lat.values())), torch.autograd.grad(expected, list(lat.values()))):
        torch.testing.assert_close(g, e)


@pytest.mark.parametrize("n,k", [(2, 2), (3, 3), (5, 2)])
def test_a_chain_is_the_markov_block_and_says_so_in_its_plan(n, k):
    chain, hmm = hmm_chain(n, k)
    planned = auto(chain)
    plan = planned.plan()
    assert plan.order == () and list(plan.lowered) == [f"z0_to_z{n - 1}"]
    assert "markov block (the forward algorithm" in str(plan) and f"the chain z0 -> ... -> z{n - 1}" in str(plan)
    assert plan.largest_size == n * k * k
    obs, lat = hmm_values(chain, torch.Generator().manual_seed(n))
    y = torch.stack([obs[f"y{t}"] for t in range(n)])
    torch.testing.assert_close(planned.log_joint(None, obs, lat), hmm.log_joint(None, {"y": y}, lat))
    torch.testing.assert_close(planned.log_joint(None, obs, lat), auto(chain, lower=False).log_joint(None, obs, lat))
    # the plan made once (NUTS) and a batch of draws on the leading axis (each as it is alone)
    torch.testing.assert_close(planned.compile_log_joint(obs)(lat), planned.log_joint(None, obs, lat))
    batch = {key: torch.stack([v, v * 1.5]) for key, v in lat.items()}
    alone = torch.stack([planned.log_joint(None, obs, {key: v[i] for key, v in batch.items()}) for i in range(2)])
    torch.testing.assert_close(planned.log_joint(None, obs, batch), alone)
    # observations with a batch axis of their own
    ys = {key: torch.stack([v, v - 1.0]) for key, v in obs.items()}
    each = torch.stack([planned.log_joint(None, {key: v[i] for key, v in ys.items()}, lat) for i in range(2)])
    torch.testing.assert_close(planned.log_joint(None, ys, lat), each)


@pytest.mark.parametrize("miss", [None] + MISSES)
def test_posterior_marginals_map_and_joint_draws_equal_brute_force(miss):
    n, k = 3, 2
    chain, _ = hmm_chain(n, k, miss)
    planned = auto(chain)
    obs, lat = hmm_values(chain, torch.Generator().manual_seed(7))
    zs = _zs(chain)
    every = assignments(chain, zs)
    joint = chain.log_joint(None, obs, {**lat, **every})
    post = torch.softmax(joint, 0)
    marginals = planned.posterior_latents(None, obs, lat)
    for name in zs:
        expected = torch.stack([post[every[name] == i].sum() for i in range(k)])
        torch.testing.assert_close(marginals[name], expected)
    best = planned.map_latents(None, obs, lat)
    top = int(joint.argmax())
    assert [int(best[z]) for z in zs] == [int(every[z][top]) for z in zs]
    # joint draws: the frequency of each of the k**n paths against its posterior probability
    torch.manual_seed(0)
    draws = planned.sample(None, (4000,), lat, obs)
    assert all(torch.equal(draws[name], obs[name].expand(())) for name in obs)
    codes = sum(draws[z] * k**i for i, z in enumerate(zs))
    freq = torch.bincount(codes, minlength=k**n).to(F64) / 4000
    exact = torch.zeros(k**n, dtype=F64).index_add_(0, sum(every[z] * k**i for i, z in enumerate(zs)), post)
    assert float((freq - exact).abs().max()) < 0.03


def test_prior_draws_and_partial_observations_of_a_lowered_chain():
    chain, _ = hmm_chain(4, 3)
    planned = auto(chain)
    obs, lat = hmm_values(chain, torch.Generator().manual_seed(1))
    prior = planned.sample(None, (6,), lat)
    assert {f"z{t}" for t in range(4)} | {f"y{t}" for t in range(4)} <= set(prior)
    assert all(prior[f"z{t}"].shape == (6,) and prior[f"y{t}"].shape == (6,) for t in range(4))
    assert all(int(prior[f"z{t}"].max()) < 3 for t in range(4))
    # some observations of the chain given and not all: named (the general plan needs them all too)
    some = {key: v for key, v in obs.items() if key != "y2"}
    for call in (planned.log_joint, lambda *a: planned.sample(None, (5,), a[2], a[1])):
        with pytest.raises(DataError, match=r"`y2` is not given, but y0 is: the chain z0 -> \.\.\. -> z3"):
            call(None, some, lat)
    with pytest.raises(DataError, match="`z3` is not given"):
        planned.log_joint(None, obs, {**lat, **{f"z{t}": torch.tensor(0) for t in range(3)}})
    # the observations share the chain's sum: no pointwise term of their own, as in the general plan
    assert planned.pointwise_log_likelihood(None, obs, lat) == auto(chain, lower=False).pointwise_log_likelihood(
        None, obs, lat) == {}


def test_a_qvr_chain_under_marginalize_auto_is_lowered_and_qvr_graph_plan_says_so(tmp_path):
    steps = "\n".join(f"    sample z{t} <- Categorical(A[z{t - 1}])" for t in range(1, 4))
    emits = "\n".join(f"    observe y{t} <- Normal(mu[z{t}], 1.0)" for t in range(4))
    source = f"""object K : FinSet 2
program hmm : K -> K [effects=[Sample, Score], marginalize=auto]
    sample A : K * K <- HalfNormal(1.0)
    sample pi : K <- HalfNormal(1.0)
    sample mu : K <- Normal(0.0, 2.0)
    sample z0 <- Categorical(pi)
{steps}
{emits}
export hmm
"""
    planned = loads(source).morphism
    assert "summed by a markov block" in str(planned.plan())
    sites = loads(source.replace(", marginalize=auto]", "]")).morphism  # the same program, nothing summed
    obs, lat = hmm_values(sites, torch.Generator().manual_seed(2))
    torch.testing.assert_close(planned.log_joint(None, obs, lat), brute_force(sites, [f"z{t}" for t in range(4)], obs, lat))
    path, out = tmp_path / "hmm.qvr", io.StringIO()
    path.write_text(source)
    assert main(["graph", str(path), "--plan"], out=out, err=io.StringIO()) == 0
    assert "// plan: block z0_to_z3\n//   z0_to_z3 : summed by a markov block" in out.getvalue()


def test_the_lowered_chain_keeps_exactness_under_every_path_value():
    # the conditioned block scores log p(path) + log p(y | path): each of the k**n paths as the sites alone
    chain, _ = hmm_chain(3, 2)
    planned = auto(chain)
    obs, lat = hmm_values(chain, torch.Generator().manual_seed(3))
    for path in itertools.product(range(2), repeat=3):
        given_ = {f"z{t}": torch.tensor(v) for t, v in enumerate(path)}
        torch.testing.assert_close(planned.log_joint(None, obs, {**lat, **given_}),
                                   chain.log_joint(None, obs, {**lat, **given_}))


def test_the_stacked_observations_follow_the_data_written_in_place_or_replaced():
    chain, _ = hmm_chain(4, 2)
    planned, general = auto(chain), auto(chain, lower=False)
    obs, lat = hmm_values(chain, torch.Generator().manual_seed(4))
    first = planned.log_joint(None, obs, lat)
    torch.testing.assert_close(planned.log_joint(None, obs, lat), first)  # stacked once, the same tensor again
    obs["y1"].add_(3.0)  # written in place: stacked afresh
    torch.testing.assert_close(planned.log_joint(None, obs, lat), general.log_joint(None, obs, lat))
    other = {key: v - 1.0 for key, v in obs.items()}  # other tensors
    torch.testing.assert_close(planned.log_joint(None, other, lat), general.log_joint(None, other, lat))
    assert not torch.allclose(planned.log_joint(None, other, lat), first)


def test_a_lowered_chain_keeps_its_sites_names_for_guides_copies_and_fits():
    import copy
    import pickle

    from quivers.inference import fit

    chain, _ = hmm_chain(4, 2)
    planned = auto(chain)
    assert set(planned.sites) == set(chain.sites)  # the block's path and stacked observation are the runs' own
    assert [s.name for s in planned.observed_sites] == [f"y{t}" for t in range(4)]
    assert [s.name for s in planned.latent_sites()] == ["A", "pi", "mu"]
    obs, lat = hmm_values(chain, torch.Generator().manual_seed(5))
    expected = planned.log_joint(None, obs, lat)
    for other in (copy.deepcopy(planned), pickle.loads(pickle.dumps(planned))):
        assert set(other.sites) == set(chain.sites)
        torch.testing.assert_close(other.log_joint(None, obs, lat), expected)
    result = fit(planned, {k: v.float() for k, v in obs.items()}, method="svi", steps=5, num_samples=4, seed=0)
    data = result.to_inference_data()
    assert {f"z{t}" for t in range(4)} <= set(data.posterior.data_vars)
    assert set(data.observed_data.data_vars) == {f"y{t}" for t in range(4)}


def test_a_chain_with_a_site_left_to_sampling_falls_back_and_stays_exact():
    chain, _ = hmm_chain(5, 2)
    planned = auto(chain, exclude=["z2"])  # enumerate=false in the middle: two pieces, neither the pattern
    assert not [s for s in planned.steps if isinstance(s, MarkovStep)] and "z2" not in planned.summed
    obs, lat = hmm_values(chain, torch.Generator().manual_seed(6))
    for v in range(2):
        given_ = {**lat, "z2": torch.tensor(v)}
        expected = brute_force(chain, ["z0", "z1", "z3", "z4"], obs, given_)
        torch.testing.assert_close(planned.log_joint(None, obs, given_), expected)
