"""Markov latents in programs: the log joint, marginals, Viterbi paths and
draws against brute-force enumeration of all K^T paths in float64 (Python
loops, independent of the runtime), conditioning, sequences of different
lengths, SVI and NUTS, and the errors bad input gets."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch.distributions import Normal as TorchNormal

from quivers.categories import FinSet
from quivers.distributions import Categorical, Dirichlet, HalfNormal, Normal
from quivers.errors import DataError, QuiversTypeError, ShapeError
from quivers.programs import (
    Program,
    const,
    index_map,
    marginalize,
    markov,
    observe,
    sample,
    var,
)

F64 = torch.float64
mu, sd, z = var("mu"), var("sd"), var("z")


def hmm(steps: int, k: int, init: bool = True, varying: bool = False, logits: bool = False) -> Program:
    """An HMM with Gaussian emissions; the transition is a latent on K * K
    (or, with ``varying``, a constant per step)."""
    T, K = FinSet("T", steps), FinSet("K", k)
    key = "logits" if logits else "weights"
    trans = Categorical(**{key: var("w")})
    first = Categorical(**{key: var("pi")}) if init else None
    return Program("hmm", T, T, [
        sample("w", (T * K * K) if varying else K * K, HalfNormal(1.0)),
        sample("pi", K, HalfNormal(1.0)),
        sample("mu", K, Normal(0.0, 3.0)),
        sample("sd", K, HalfNormal(1.0)),
        markov("z", T, K, trans, [observe("y", T, Normal(mu[z], sd[z]))], init=first),
    ])


def normal_lp(y: float, m: float, s: float) -> float:
    return -0.5 * ((y - m) / s) ** 2 - math.log(s) - 0.5 * math.log(2 * math.pi)


def lse(xs) -> float:
    m = max(xs)
    return m + math.log(sum(math.exp(x - m) for x in xs))


def log_norm(row, logits: bool) -> list[float]:
    if logits:
        return [x - lse(list(row)) for x in row]
    return [math.log(x / sum(row)) for x in row]


def path_weights(y, w, pi, mus, sds, logits=False, varying=False) -> dict[tuple, float]:
    """log p(path, y) for every path, by loops."""
    steps, k = len(y), len(mus)
    log_pi = log_norm(pi, logits) if pi is not None else [-math.log(k)] * k
    out = {}
    for path in itertools.product(range(k), repeat=steps):
        total = log_pi[path[0]] + normal_lp(y[0], mus[path[0]], sds[path[0]])
        for t in range(1, steps):
            rows = w[t] if varying else w
            total += log_norm(rows[path[t - 1]], logits)[path[t]] + normal_lp(y[t], mus[path[t]], sds[path[t]])
        out[path] = total
    return out


def priors(w, pi, mus, sds) -> float:
    hn = torch.distributions.HalfNormal(torch.tensor(1.0, dtype=F64))
    return float(
        hn.log_prob(torch.tensor(w, dtype=F64)).sum() + hn.log_prob(torch.tensor(pi, dtype=F64)).sum()
        + TorchNormal(torch.tensor(0.0, dtype=F64), 3.0).log_prob(torch.tensor(mus, dtype=F64)).sum()
        + hn.log_prob(torch.tensor(sds, dtype=F64)).sum()
    )


positive = st.floats(0.05, 2.0, allow_nan=False)
reals = st.floats(-3.0, 3.0, allow_nan=False)


@st.composite
def cases(draw):
    steps, k = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    varying, logits, init = draw(st.booleans()), draw(st.booleans()), draw(st.booleans())
    shape = (steps, k, k) if varying else (k, k)
    w = torch.tensor(draw(st.lists(positive, min_size=math.prod(shape), max_size=math.prod(shape))), dtype=F64)
    return dict(
        steps=steps, k=k, varying=varying, logits=logits, init=init,
        w=w.reshape(shape).tolist(),
        pi=draw(st.lists(positive, min_size=k, max_size=k)),
        mu=draw(st.lists(reals, min_size=k, max_size=k)),
        sd=draw(st.lists(positive, min_size=k, max_size=k)),
        y=draw(st.lists(reals, min_size=steps, max_size=steps)),
    )


def build(c):
    prog = hmm(c["steps"], c["k"], c["init"], c["varying"], c["logits"]).double()
    lat = {n: torch.tensor(c[n], dtype=F64) for n in ("w", "pi", "mu", "sd")}
    obs = {"y": torch.tensor(c["y"], dtype=F64)}
    paths = path_weights(c["y"], c["w"], c["pi"] if c["init"] else None, c["mu"], c["sd"], c["logits"], c["varying"])
    return prog, lat, obs, paths


@given(cases())
def test_log_joint_sums_every_path(c):
    prog, lat, obs, paths = build(c)
    expected = priors(c["w"], c["pi"], c["mu"], c["sd"]) + lse(list(paths.values()))
    assert math.isclose(float(prog.log_joint(None, obs, lat)), expected, rel_tol=1e-9, abs_tol=1e-9)


@given(cases())
def test_marginals_and_viterbi_are_the_brute_force_posterior(c):
    prog, lat, obs, paths = build(c)
    log_z = lse(list(paths.values()))
    marginals = torch.zeros(c["steps"], c["k"], dtype=F64)
    for path, w in paths.items():
        for t, s in enumerate(path):
            marginals[t, s] += math.exp(w - log_z)
    torch.testing.assert_close(prog.posterior_latents(None, obs, lat)["z"], marginals)
    best = prog.map_latents(None, obs, lat)["z"]
    ranked = sorted(paths.values())
    assert math.isclose(paths[tuple(best.tolist())], ranked[-1], abs_tol=1e-9)
    if len(ranked) == 1 or ranked[-1] - ranked[-2] > 1e-6:
        assert tuple(best.tolist()) == max(paths, key=paths.get)


@given(cases())
def test_a_given_path_is_conditioned_on(c):
    prog, lat, obs, paths = build(c)
    path = next(iter(paths)) if len(paths) == 1 else list(paths)[len(paths) // 2]
    got = prog.log_joint(None, {**obs, "z": torch.tensor(path)}, lat)
    expected = priors(c["w"], c["pi"], c["mu"], c["sd"]) + paths[path]
    assert math.isclose(float(got), expected, rel_tol=1e-9, abs_tol=1e-9)


def test_a_transition_on_k_alone_draws_each_state_afresh():
    # weights on K (no K' axis): one law for every previous state, so the
    # chain with that law at the start too is a mixture at every step
    T, K = FinSet("T", 4), FinSet("K", 3)
    w = torch.tensor([0.2, 0.5, 0.3], dtype=F64)
    law = Categorical(const(w))
    prog = Program("iid", T, T, [
        sample("mu", K, Normal(0.0, 3.0)),
        markov("z", T, K, law, [observe("y", T, Normal(mu[z], 1.0))], init=law),
    ]).double()
    mus, y = [-1.0, 0.5, 2.0], [0.3, -1.2, 2.2, 0.9]
    lat = {"mu": torch.tensor(mus, dtype=F64)}
    expected = float(TorchNormal(torch.tensor(0.0, dtype=F64), 3.0).log_prob(lat["mu"]).sum())
    expected += sum(lse([math.log(w[k]) + normal_lp(v, mus[k], 1.0) for k in range(3)]) for v in y)
    got = prog.log_joint(None, {"y": torch.tensor(y, dtype=F64)}, lat)
    assert math.isclose(float(got), expected, rel_tol=1e-9)


def test_particles_batch_through_the_chain():
    g = torch.Generator().manual_seed(0)
    prog = hmm(5, 3)
    lat = {
        "w": torch.rand(4, 3, 3, generator=g) + 0.1, "pi": torch.rand(4, 3, generator=g) + 0.1,
        "mu": torch.randn(4, 3, generator=g), "sd": torch.rand(4, 3, generator=g) + 0.5,
    }
    y = {"y": torch.randn(5, generator=g)}
    batched = prog.log_joint(None, y, lat)
    assert batched.shape == (4,)
    for i in range(4):
        torch.testing.assert_close(batched[i], prog.log_joint(None, y, {k: v[i] for k, v in lat.items()}))
    assert prog.posterior_latents(None, y, lat)["z"].shape == (4, 5, 3)
    assert prog.map_latents(None, y, lat)["z"].shape == (4, 5)


def test_gradients_reach_the_transition_and_the_emissions():
    prog = hmm(6, 2)
    lat = {k: v.requires_grad_() for k, v in {
        "w": torch.tensor([[0.9, 0.1], [0.2, 0.8]]), "pi": torch.tensor([0.5, 0.5]),
        "mu": torch.tensor([-1.0, 1.0]), "sd": torch.tensor([1.0, 1.0]),
    }.items()}
    prog.log_joint(None, {"y": torch.tensor([-1.0, -1.2, 0.9, 1.1, -0.8, 1.0])}, lat).backward()
    for name, v in lat.items():
        assert v.grad is not None and torch.isfinite(v.grad).all() and v.grad.abs().sum() > 0, name


# ---------------------------------------------------------------- sequences


def sequences(n: int, steps: int, k: int) -> Program:
    S, T, K = FinSet("S", n), FinSet("T", steps), FinSet("K", k)
    return Program("seqs", S * T, S * T, [
        index_map("last", S, T),
        sample("w", K * K, HalfNormal(1.0)),
        sample("mu", K, Normal(0.0, 3.0)),
        markov("z", S * T, K, Categorical(var("w")), [observe("y", S * T, Normal(mu[z], 1.0))], until="last"),
    ])


@given(data=st.data())
def test_sequences_of_different_lengths_are_independent_chains(data):
    n, steps, k = 3, data.draw(st.integers(1, 4)), data.draw(st.integers(1, 2))
    prog = sequences(n, steps, k).double()
    w = [[data.draw(positive) for _ in range(k)] for _ in range(k)]
    mus = [data.draw(reals) for _ in range(k)]
    last = [data.draw(st.integers(0, steps - 1)) for _ in range(n)]
    y = [[data.draw(reals) for _ in range(steps)] for _ in range(n)]
    lat = {"w": torch.tensor(w, dtype=F64), "mu": torch.tensor(mus, dtype=F64)}
    obs = {"y": torch.tensor(y, dtype=F64), "last": torch.tensor(last)}
    expected = float(
        torch.distributions.HalfNormal(torch.tensor(1.0, dtype=F64)).log_prob(lat["w"]).sum()
        + TorchNormal(torch.tensor(0.0, dtype=F64), 3.0).log_prob(lat["mu"]).sum()
    )
    marginals = []
    for i in range(n):
        paths = path_weights(y[i][: last[i] + 1], w, None, mus, [1.0] * k)
        log_z = lse(list(paths.values()))
        expected += log_z
        m = torch.zeros(last[i] + 1, k, dtype=F64)
        for path, wt in paths.items():
            for t, s in enumerate(path):
                m[t, s] += math.exp(wt - log_z)
        marginals.append(m)
    assert math.isclose(float(prog.log_joint(None, obs, lat)), expected, rel_tol=1e-9, abs_tol=1e-9)
    post = prog.posterior_latents(None, obs, lat)["z"]
    assert post.shape == (n, steps, k)
    for i in range(n):
        torch.testing.assert_close(post[i, : last[i] + 1], marginals[i])
    # what is observed past a sequence's end does not count
    obs["y"] = obs["y"].clone()
    for i in range(n):
        obs["y"][i, last[i] + 1 :] = 100.0
    assert math.isclose(float(prog.log_joint(None, obs, lat)), expected, rel_tol=1e-9, abs_tol=1e-9)


# ---------------------------------------------------------------- draws


def test_prior_draws_follow_the_chain():
    torch.manual_seed(0)
    T, K = FinSet("T", 3), FinSet("K", 2)
    A = torch.tensor([[0.9, 0.1], [0.4, 0.6]])
    prog = Program("chain", T, T, [
        markov("z", T, K, Categorical(const(A)), [observe("y", T, Normal(z * 10.0, 1.0))],
               init=Categorical(const(torch.tensor([0.2, 0.8])))),
    ])
    n = 40_000
    draws = prog.sample(None, (n,))
    assert draws["z"].shape == (n, 3) and draws["y"].shape == (n, 3)
    # y follows the drawn state
    assert ((draws["y"] > 5) == (draws["z"] == 1)).float().mean() > 0.99
    for path in itertools.product(range(2), repeat=3):
        p = [0.2, 0.8][path[0]] * A[path[0], path[1]].item() * A[path[1], path[2]].item()
        freq = (draws["z"] == torch.tensor(path)).all(-1).double().mean().item()
        assert abs(freq - p) < 5 * math.sqrt(p * (1 - p) / n) + 1e-3, (path, freq, p)


def test_posterior_draws_are_forward_filtering_backward_sampling():
    torch.manual_seed(1)
    c = dict(steps=3, k=2, varying=False, logits=False, init=True, w=[[0.7, 0.3], [0.25, 0.75]],
             pi=[0.6, 0.4], mu=[-0.5, 0.8], sd=[1.0, 0.7], y=[-0.2, 0.4, 1.1])
    prog, lat, obs, paths = build(c)
    n = 40_000
    draws = prog.sample(None, (n,), latents=lat, observations=obs)["z"]
    assert draws.shape == (n, 3)
    log_z = lse(list(paths.values()))
    for path, w in paths.items():
        p = math.exp(w - log_z)
        freq = (draws == torch.tensor(path)).all(-1).double().mean().item()
        assert abs(freq - p) < 5 * math.sqrt(p * (1 - p) / n) + 1e-3, (path, freq, p)


def test_draws_broadcast_over_particles_and_sequences():
    torch.manual_seed(2)
    prog = sequences(4, 5, 3)
    lat = {"w": torch.rand(2, 3, 3) + 0.1, "mu": torch.randn(2, 3)}
    obs = {"last": torch.tensor([4, 0, 2, 3]), "y": torch.randn(4, 5)}
    out = prog.sample(None, (7,), latents=lat, observations=obs)
    assert out["z"].shape == (7, 2, 4, 5)
    out = prog.sample(None, (7,), latents=lat, observations={"last": obs["last"]})
    assert out["z"].shape == (7, 2, 4, 5) and out["y"].shape == (7, 2, 4, 5)


# ---------------------------------------------------------------- the K * K plate


def test_a_product_of_a_set_with_itself_names_its_second_copy_with_a_prime():
    K, Item = FinSet("K", 2), FinSet("Item", 3)
    A = torch.tensor([[0.7, 0.3], [0.1, 0.9]])
    prog = Program("p", Item, Item, [
        sample("A", K * K, Dirichlet(1.0)),
        marginalize("z", K, Categorical(const(torch.tensor([0.5, 0.5]))), [
            observe("x", Item, Categorical(var("A")[z])),  # A[z]: the row of state z
        ]),
    ])
    assert prog.sites["A"].dims == ("K", "K'")
    x = torch.tensor([0, 1, 1])
    got = prog.log_joint(None, {"x": x}, {"A": A})
    # per row: log sum_k 1/2 A[k, x_i]
    rows = [lse([math.log(0.5 * A[k, i]) for k in range(2)]) for i in x.tolist()]
    expected = float(torch.distributions.Dirichlet(torch.ones(2)).log_prob(A).sum()) + sum(rows)
    assert math.isclose(float(got), expected, rel_tol=1e-6)


# ---------------------------------------------------------------- errors


T4, K2, S3 = FinSet("T", 4), FinSet("K", 2), FinSet("S", 3)


def body():
    return [observe("y", T4, Normal(mu[z], 1.0))]


def test_transition_weights_on_the_wrong_axes_are_shape_errors():
    Other = FinSet("Other", 2)
    with pytest.raises(ShapeError, match=r"markov `z`, transition `weights`: `w` has axes \['Other'\], none of them `K` or `K'`"):
        Program("p", T4, T4, [
            sample("w", Other, HalfNormal(1.0)), sample("mu", K2, Normal(0.0, 1.0)),
            markov("z", T4, K2, Categorical(var("w")), body()),
        ])
    with pytest.raises(ShapeError, match=r"varies over `Other`"):
        Program("p", T4, T4, [
            sample("w", Other * K2 * K2, HalfNormal(1.0)), sample("mu", K2, Normal(0.0, 1.0)),
            markov("z", T4, K2, Categorical(var("w")), body()),
        ])
    with pytest.raises(ShapeError, match=r"initial law `weights`: `pi` varies over `T`"):
        Program("p", T4, T4, [
            sample("w", K2 * K2, HalfNormal(1.0)), sample("pi", T4 * K2, HalfNormal(1.0)),
            sample("mu", K2, Normal(0.0, 1.0)),
            markov("z", T4, K2, Categorical(var("w")), body(), init=Categorical(var("pi"))),
        ])


def test_observations_off_the_path_are_shape_errors():
    with pytest.raises(ShapeError, match=r"observe `y` in the body of markov `z` is on `S`, but the path is over `T`"):
        Program("p", T4, T4, [
            sample("mu", K2, Normal(0.0, 1.0)),
            markov("z", T4, K2, Categorical(const(torch.ones(2, 2))), [observe("y", S3, Normal(mu[z], 1.0))]),
        ])


def test_until_must_be_an_index_map_into_time():
    with pytest.raises(QuiversTypeError, match=r"until=last of markov `z` must name an index map `S -> T`"):
        Program("p", S3 * T4, S3 * T4, [
            sample("mu", K2, Normal(0.0, 1.0)),
            markov("z", S3 * T4, K2, Categorical(const(torch.ones(2, 2))),
                   [observe("y", S3 * T4, Normal(mu[z], 1.0))], until="last"),
            sample("last", S3, HalfNormal(1.0)),
        ])
    with pytest.raises(QuiversTypeError, match=r"has until=last, which ends each sequence of a path over `S \* T`"):
        markov("z", T4, K2, Categorical(const(torch.ones(2, 2))), body(), until="last")


def test_lengths_beyond_the_time_object_and_misshapen_emissions_are_data_errors():
    prog = sequences(3, 4, 2)
    lat = {"w": torch.ones(2, 2), "mu": torch.zeros(2)}
    with pytest.raises(DataError, match=r"index map `last` has value 4 at index \(1,\), outside \[0, 4\) of `T`"):
        prog.log_joint(None, {"y": torch.zeros(3, 4), "last": torch.tensor([3, 4, 0])}, lat)
    with pytest.raises(ShapeError, match=r"observation `y` has shape \(3, 5\); its site \('S', 'T'\) needs trailing shape \(3, 4\)"):
        prog.log_joint(None, {"y": torch.zeros(3, 5), "last": torch.tensor([3, 3, 0])}, lat)
    with pytest.raises(DataError, match=r"latent `z` has value 2"):
        prog.log_joint(None, {"y": torch.zeros(3, 4), "last": torch.tensor([3, 3, 0])},
                       {**lat, "z": torch.full((3, 4), 2)})


def test_chains_do_not_nest_and_stand_at_the_top_level():
    inner = markov("z", T4, K2, Categorical(const(torch.ones(2, 2))), body())
    with pytest.raises(QuiversTypeError, match=r"markov `z` is nested in the body of markov `u`"):
        markov("u", T4, K2, Categorical(const(torch.ones(2, 2))), [inner])
    with pytest.raises(QuiversTypeError, match=r"markov `z` is inside the block of `c`; a chain must stand at the top level"):
        Program("p", T4, T4, [
            sample("mu", K2, Normal(0.0, 1.0)),
            marginalize("c", K2, Categorical(const(torch.ones(2))), [inner]),
        ])


def test_priors_that_are_not_categorical_are_type_errors():
    with pytest.raises(QuiversTypeError, match=r"the transition of markov `z` must be a Categorical"):
        markov("z", T4, K2, Normal(0.0, 1.0), body())
    with pytest.raises(QuiversTypeError, match=r"the initial law of markov `z` must be a Categorical"):
        markov("z", T4, K2, Categorical(const(torch.ones(2, 2))), body(), init=Normal(0.0, 1.0))
    with pytest.raises(QuiversTypeError, match=r"the states of markov `z` must be a plain FinSet"):
        markov("z", T4, K2 * K2, Categorical(const(torch.ones(2, 2))), body())


def test_the_time_plate_cannot_be_subsampled():
    prog = sequences(3, 4, 2)
    with pytest.raises(QuiversTypeError, match=r"markov `z` runs along `T`; a chain's likelihood needs all of its steps"):
        prog.subsample({"T": 2})
