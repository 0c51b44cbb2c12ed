"""Markov latents whose transition depends on covariates, and second-order
chains (``first=``: the state at t depends on t-1 and t-2): the log joint,
marginals, Viterbi path and draws against brute-force enumeration of all
K^T paths in float64 (Python loops, independent of the runtime), sequences
of different lengths, and the errors bad input gets."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch.distributions import Normal as TorchNormal

from quivers.categories import FinSet
from quivers.distributions import Categorical, HalfNormal, Normal
from quivers.errors import InvalidValueError, QuiversTypeError, ShapeError
from quivers.programs import Program, const, index_map, markov, observe, sample, var
from tests.programs.test_markov import lse, normal_lp

F64 = torch.float64
mu, z = var("mu"), var("z")
positive = st.floats(0.05, 2.0, allow_nan=False)
reals = st.floats(-3.0, 3.0, allow_nan=False)


def hn_lp(xs) -> float:
    return float(torch.distributions.HalfNormal(torch.tensor(1.0, dtype=F64)).log_prob(torch.tensor(xs, dtype=F64)).sum())


def n_lp(xs, scale: float) -> float:
    return float(TorchNormal(torch.tensor(0.0, dtype=F64), scale).log_prob(torch.tensor(xs, dtype=F64)).sum())


def rows(w) -> list:
    """Normalize nested lists of positive weights along the last axis, in logs."""
    if isinstance(w[0], list):
        return [rows(r) for r in w]
    return [math.log(x / sum(w)) for x in w]


def posterior(paths: dict, steps: int, k: int):
    log_z = lse(list(paths.values()))
    m = torch.zeros(steps, k, dtype=F64)
    for path, w in paths.items():
        for t, s in enumerate(path):
            m[t, s] += math.exp(w - log_z)
    return log_z, m


# ---------------------------------------------------------------- covariates


def covariate_hmm(steps: int, k: int) -> Program:
    """The transition's logits at step t are ``beta * x[t]``: a covariate
    observed on T moves the chain."""
    T, K = FinSet("T", steps), FinSet("K", k)
    return Program("cov", T, T, [
        observe("x", T, Normal(0.0, 1.0)),
        sample("beta", K * K, Normal(0.0, 1.0)),
        sample("mu", K, Normal(0.0, 3.0)),
        markov("z", T, K, Categorical(logits=var("beta") * var("x")), [observe("y", T, Normal(mu[z], 1.0))]),
    ])


@given(data=st.data())
def test_a_transition_that_depends_on_a_covariate_is_one_kernel_per_step(data):
    steps, k = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 3))
    beta = [[data.draw(reals) for _ in range(k)] for _ in range(k)]
    mus = [data.draw(reals) for _ in range(k)]
    x, y = [data.draw(reals) for _ in range(steps)], [data.draw(reals) for _ in range(steps)]
    paths = {}
    for path in itertools.product(range(k), repeat=steps):
        w = -math.log(k) + normal_lp(y[0], mus[path[0]], 1.0)
        for t in range(1, steps):
            logits = [b * x[t] for b in beta[path[t - 1]]]
            w += logits[path[t]] - lse(logits) + normal_lp(y[t], mus[path[t]], 1.0)
        paths[path] = w
    log_z, marginals = posterior(paths, steps, k)
    prog = covariate_hmm(steps, k).double()
    obs = {"x": torch.tensor(x, dtype=F64), "y": torch.tensor(y, dtype=F64)}
    lat = {"beta": torch.tensor(beta, dtype=F64), "mu": torch.tensor(mus, dtype=F64)}
    expected = n_lp(x, 1.0) + n_lp(beta, 1.0) + n_lp(mus, 3.0) + log_z
    assert math.isclose(float(prog.log_joint(None, obs, lat)), expected, rel_tol=1e-9, abs_tol=1e-9)
    torch.testing.assert_close(prog.posterior_latents(None, obs, lat)["z"], marginals)
    best = tuple(prog.map_latents(None, obs, lat)["z"].tolist())
    assert math.isclose(paths[best], max(paths.values()), abs_tol=1e-9)


# ---------------------------------------------------------------- second order


def second_order_hmm(steps: int, k: int, varying: bool, init: bool) -> Program:
    T, K = FinSet("T", steps), FinSet("K", k)
    return Program("h2", T, T, [
        sample("c", (T * K * K * K) if varying else K * K * K, HalfNormal(1.0)),
        sample("b", K * K, HalfNormal(1.0)),
        sample("pi", K, HalfNormal(1.0)),
        sample("mu", K, Normal(0.0, 3.0)),
        markov("z", T, K, Categorical(var("c")), [observe("y", T, Normal(mu[z], 1.0))],
               init=Categorical(var("pi")) if init else None, first=Categorical(var("b"))),
    ])


@st.composite
def cases(draw):
    steps, k = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    varying, init = draw(st.booleans()), draw(st.booleans())
    shape = (steps, k, k, k) if varying else (k, k, k)
    c = torch.tensor(draw(st.lists(positive, min_size=math.prod(shape), max_size=math.prod(shape))), dtype=F64)
    return dict(
        steps=steps, k=k, varying=varying, init=init, c=c.reshape(shape).tolist(),
        b=[draw(st.lists(positive, min_size=k, max_size=k)) for _ in range(k)],
        pi=draw(st.lists(positive, min_size=k, max_size=k)),
        mu=draw(st.lists(reals, min_size=k, max_size=k)),
        y=draw(st.lists(reals, min_size=steps, max_size=steps)),
    )


def second_order_paths(c) -> dict:
    """log p(path, y) of every path of the second-order chain, by loops."""
    k, y = c["k"], c["y"]
    log_pi = rows(c["pi"]) if c["init"] else [-math.log(k)] * k
    log_b, log_c = rows(c["b"]), rows(c["c"])
    out = {}
    for path in itertools.product(range(k), repeat=c["steps"]):
        w = log_pi[path[0]] + normal_lp(y[0], c["mu"][path[0]], 1.0)
        for t in range(1, c["steps"]):
            if t == 1:
                w += log_b[path[0]][path[1]]
            else:
                kern = log_c[t] if c["varying"] else log_c
                w += kern[path[t - 2]][path[t - 1]][path[t]]
            w += normal_lp(y[t], c["mu"][path[t]], 1.0)
        out[path] = w
    return out


def build(c):
    prog = second_order_hmm(c["steps"], c["k"], c["varying"], c["init"]).double()
    lat = {n: torch.tensor(c[n], dtype=F64) for n in ("c", "b", "pi", "mu")}
    priors = hn_lp(c["c"]) + hn_lp(c["b"]) + hn_lp(c["pi"]) + n_lp(c["mu"], 3.0)
    return prog, lat, {"y": torch.tensor(c["y"], dtype=F64)}, second_order_paths(c), priors


@given(cases())
def test_second_order_log_joint_marginals_and_viterbi_are_the_brute_force_ones(c):
    prog, lat, obs, paths, priors = build(c)
    log_z, marginals = posterior(paths, c["steps"], c["k"])
    assert math.isclose(float(prog.log_joint(None, obs, lat)), priors + log_z, rel_tol=1e-9, abs_tol=1e-9)
    torch.testing.assert_close(prog.posterior_latents(None, obs, lat)["z"], marginals)
    best = prog.map_latents(None, obs, lat)["z"]
    assert best.shape == (c["steps"],)
    assert math.isclose(paths[tuple(best.tolist())], max(paths.values()), abs_tol=1e-9)


@given(cases())
def test_a_given_second_order_path_is_conditioned_on(c):
    prog, lat, obs, paths, priors = build(c)
    for path, w in list(paths.items())[:4]:
        got = prog.log_joint(None, {**obs, "z": torch.tensor(path)}, lat)
        assert math.isclose(float(got), priors + w, rel_tol=1e-9, abs_tol=1e-9)


def test_second_order_posterior_draws_have_their_path_probabilities():
    torch.manual_seed(3)
    c = dict(steps=4, k=2, varying=False, init=True, c=[[[0.9, 0.1], [0.3, 0.7]], [[0.5, 0.5], [0.15, 0.85]]],
             b=[[0.7, 0.3], [0.2, 0.8]], pi=[0.4, 0.6], mu=[-0.5, 0.8], y=[-0.2, 0.4, 1.1, -0.9])
    prog, lat, obs, paths, _ = build(c)
    n = 40_000
    draws = prog.sample(None, (n,), latents=lat, observations=obs)["z"]
    assert draws.shape == (n, 4)
    log_z = lse(list(paths.values()))
    for path, w in paths.items():
        p = math.exp(w - log_z)
        freq = (draws == torch.tensor(path)).all(-1).double().mean().item()
        assert abs(freq - p) < 5 * math.sqrt(p * (1 - p) / n) + 1e-3, (path, freq, p)


def test_second_order_prior_draws_follow_the_chain():
    torch.manual_seed(5)
    c = dict(steps=3, k=2, varying=False, init=True, c=[[[0.9, 0.1], [0.3, 0.7]], [[0.5, 0.5], [0.15, 0.85]]],
             b=[[0.7, 0.3], [0.2, 0.8]], pi=[0.4, 0.6], mu=[0.0, 0.0], y=[0.0, 0.0, 0.0])
    prog, lat, _, _, _ = build(c)
    n = 40_000
    draws = prog.sample(None, (n,), latents=lat)["z"]
    for path in itertools.product(range(2), repeat=3):
        p = c["pi"][path[0]] / 1.0 * c["b"][path[0]][path[1]] * c["c"][path[0]][path[1]][path[2]]
        freq = (draws == torch.tensor(path)).all(-1).double().mean().item()
        assert abs(freq - p) < 5 * math.sqrt(p * (1 - p) / n) + 1e-3, (path, freq, p)


@given(data=st.data())
def test_second_order_sequences_of_different_lengths_are_independent_chains(data):
    n, steps, k = 3, data.draw(st.integers(1, 4)), data.draw(st.integers(1, 2))
    S, T, K = FinSet("S", n), FinSet("T", steps), FinSet("K", k)
    prog = Program("seqs2", S * T, S * T, [
        index_map("last", S, T),
        sample("c", K * K * K, HalfNormal(1.0)),
        sample("b", K * K, HalfNormal(1.0)),
        sample("mu", K, Normal(0.0, 3.0)),
        markov("z", S * T, K, Categorical(var("c")), [observe("y", S * T, Normal(mu[z], 1.0))],
               first=Categorical(var("b")), until="last"),
    ]).double()
    cw = [[[data.draw(positive) for _ in range(k)] for _ in range(k)] for _ in range(k)]
    bw = [[data.draw(positive) for _ in range(k)] for _ in range(k)]
    mus = [data.draw(reals) for _ in range(k)]
    last = [data.draw(st.integers(0, steps - 1)) for _ in range(n)]
    y = [[data.draw(reals) for _ in range(steps)] for _ in range(n)]
    lat = {"c": torch.tensor(cw, dtype=F64), "b": torch.tensor(bw, dtype=F64), "mu": torch.tensor(mus, dtype=F64)}
    obs = {"y": torch.tensor(y, dtype=F64), "last": torch.tensor(last)}
    expected = hn_lp(cw) + hn_lp(bw) + n_lp(mus, 3.0)
    post = prog.posterior_latents(None, obs, lat)["z"]
    for i in range(n):
        case = dict(steps=last[i] + 1, k=k, varying=False, init=False, c=cw, b=bw, pi=None, mu=mus,
                    y=y[i][: last[i] + 1])
        log_z, marginals = posterior(second_order_paths(case), last[i] + 1, k)
        expected += log_z
        torch.testing.assert_close(post[i, : last[i] + 1], marginals)
    assert math.isclose(float(prog.log_joint(None, obs, lat)), expected, rel_tol=1e-9, abs_tol=1e-9)
    obs["y"] = obs["y"].clone()
    for i in range(n):
        obs["y"][i, last[i] + 1:] = 100.0  # past the end: does not count
    assert math.isclose(float(prog.log_joint(None, obs, lat)), expected, rel_tol=1e-9, abs_tol=1e-9)


# ---------------------------------------------------------------- errors


T4, K2 = FinSet("T", 4), FinSet("K", 2)


def test_second_order_weights_on_the_wrong_axes_are_shape_errors():
    body = [observe("y", T4, Normal(mu[z], 1.0))]

    def build(c_set, b_set):
        return Program("p", T4, T4, [
            sample("c", c_set, HalfNormal(1.0)), sample("b", b_set, HalfNormal(1.0)),
            sample("mu", K2, Normal(0.0, 1.0)),
            markov("z", T4, K2, Categorical(var("c")), body, first=Categorical(var("b"))),
        ])

    with pytest.raises(ShapeError, match=r"markov `z`, transition `weights`: `c` has axes \['K', \"K'\"\], none of them `K''`"):
        build(K2 * K2, K2 * K2)
    with pytest.raises(ShapeError, match=r"markov `z`, first step `weights`: `b` varies over `T`"):
        build(K2 * K2 * K2, T4 * K2 * K2)
    with pytest.raises(QuiversTypeError, match=r"the first step \(first=\) of markov `z` must be a Categorical"):
        markov("z", T4, K2, Categorical(var("c")), body, first=Normal(0.0, 1.0))


@pytest.mark.parametrize("rows, why", [
    ([[0.5, 0.5], [0.0, 0.0]], "weights that sum to zero"),
    ([[0.5, 0.5], [-1.0, 2.0]], "a negative weight -1"),
    ([[0.5, 0.5], [math.inf, 2.0]], "an infinite weight"),
])
def test_transition_rows_with_no_law_are_named_not_nan(rows, why):
    prog = Program("p", T4, T4, [
        sample("mu", K2, Normal(0.0, 1.0)),
        markov("z", T4, K2, Categorical(const(torch.tensor(rows))), [observe("y", T4, Normal(mu[z], 1.0))]),
    ])
    with pytest.raises(InvalidValueError, match=rf"the transition weights of markov `z` have no law at index \(1,\) \(axes \['K'\]\): {why}"):
        prog.log_joint(None, {"y": torch.zeros(4)}, {"mu": torch.zeros(2)})


def test_a_second_order_row_with_no_law_is_named():
    c = torch.full((2, 2, 2), 0.5)
    c[1, 0] = torch.tensor([0.0, 0.0])
    prog = Program("p", T4, T4, [
        sample("mu", K2, Normal(0.0, 1.0)),
        markov("z", T4, K2, Categorical(logits=const(torch.zeros(2, 2, 2))), [observe("y", T4, Normal(mu[z], 1.0))],
               first=Categorical(const(torch.full((2, 2), 0.5)))),
    ])
    assert torch.isfinite(prog.log_joint(None, {"y": torch.zeros(4)}, {"mu": torch.zeros(2)}))
    prog = Program("p", T4, T4, [
        sample("mu", K2, Normal(0.0, 1.0)),
        markov("z", T4, K2, Categorical(const(c)), [observe("y", T4, Normal(mu[z], 1.0))],
               first=Categorical(const(torch.full((2, 2), 0.5)))),
    ])
    with pytest.raises(InvalidValueError, match=r"the transition weights of markov `z` have no law at index \(1, 0\) \(axes \['K', \"K'\"\]\): weights that sum to zero"):
        prog.log_joint(None, {"y": torch.zeros(4)}, {"mu": torch.zeros(2)})


def test_particles_batch_through_a_second_order_chain():
    g = torch.Generator().manual_seed(0)
    prog = second_order_hmm(5, 3, varying=False, init=True)
    lat = {"c": torch.rand(4, 3, 3, 3, generator=g) + 0.1, "b": torch.rand(3, 3, generator=g) + 0.1,
           "pi": torch.rand(4, 3, generator=g) + 0.1, "mu": torch.randn(4, 3, generator=g)}
    y = {"y": torch.randn(5, generator=g)}
    batched = prog.log_joint(None, y, lat)
    assert batched.shape == (4,)
    for i in range(4):
        torch.testing.assert_close(batched[i], prog.log_joint(None, y, {k: v if k == "b" else v[i] for k, v in lat.items()}))
    assert prog.posterior_latents(None, y, lat)["z"].shape == (4, 5, 3)
    assert prog.map_latents(None, y, lat)["z"].shape == (4, 5)
    assert prog.sample(None, (7,), latents=lat, observations=y)["z"].shape == (7, 4, 5)
