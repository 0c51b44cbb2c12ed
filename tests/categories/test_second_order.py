"""Second-order chains as first-order chains on pairs: the likelihood,
marginals, Viterbi path and FFBS draws against brute-force enumeration of
all K^T paths of the second-order chain in float64, and the errors bad
input gets."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from quivers.categories.markov import ffbs, forward, forward_backward, path_score, viterbi
from quivers.categories.second_order import pair_path, second_order, state_marginals, states
from quivers.errors import DataError, InvalidValueError, QuiversTypeError, ShapeError
from tests.categories.test_markov import lse, log_laws

INF = math.inf
DTYPE = torch.float64


def brute(init, first, trans, emit):
    """Every path's log weight under the second-order chain, by loops."""
    steps, k = emit.shape
    out = {}
    for path in itertools.product(range(k), repeat=steps):
        w = float(init[path[0]]) + float(emit[0, path[0]])
        if steps > 1:
            w += float(first[path[0], path[1]]) + float(emit[1, path[1]])
        for t in range(2, steps):
            a = trans[t] if trans.dim() == 4 else trans
            w += float(a[path[t - 2], path[t - 1], path[t]]) + float(emit[t, path[t]])
        out[path] = w
    return out


@st.composite
def chains(draw, max_steps=5, max_states=3):
    steps, k = draw(st.integers(1, max_steps)), draw(st.integers(1, max_states))
    init = draw(log_laws((k,)))
    first = draw(log_laws((k, k)))
    trans = draw(log_laws(draw(st.sampled_from([(k, k, k), (steps, k, k, k)]))))
    emit = torch.tensor(
        draw(st.lists(st.floats(-4.0, 3.0).map(lambda x: -INF if x < -3.8 else x), min_size=steps * k,
                      max_size=steps * k)),
        dtype=DTYPE,
    ).reshape(steps, k)
    return init, first, trans, emit


def close(got: float, expected: float) -> bool:
    return got == expected == -INF or math.isclose(got, expected, rel_tol=1e-9, abs_tol=1e-9)


@given(chains())
def test_the_pair_chain_sums_and_maximizes_every_second_order_path(chain):
    paths = brute(*chain)
    pairs = second_order(*chain)
    assert close(float(forward(*pairs, check=False)), lse(list(paths.values())))
    best = max(paths.values())
    score, path = viterbi(*pairs, check=False)
    assert close(float(score), best)
    if best > -INF:
        z = tuple(states(path, chain[-1].shape[-1]).tolist())
        assert close(paths[z], best)  # the path read off the pairs has the best score
        runner_up = sorted(paths.values())[-2] if len(paths) > 1 else -INF
        if best - runner_up > 1e-6:
            assert z == max(paths, key=paths.get)


@given(chains())
def test_state_marginals_are_the_brute_force_posterior(chain):
    paths = brute(*chain)
    log_z = lse(list(paths.values()))
    if log_z == -INF:
        return
    steps, k = chain[-1].shape
    expected = torch.zeros(steps, k, dtype=DTYPE)
    for path, w in paths.items():
        for t, s in enumerate(path):
            expected[t, s] += math.exp(w - log_z)
    fb = forward_backward(*second_order(*chain), check=False)
    torch.testing.assert_close(state_marginals(fb.marginals, k), expected)


@given(chains())
def test_a_path_and_its_pairs_have_one_weight(chain):
    paths = brute(*chain)
    pairs = second_order(*chain)
    k = chain[-1].shape[-1]
    for path, w in list(paths.items())[:8]:
        z = torch.tensor(path)
        assert torch.equal(states(pair_path(z, k), k), z)
        assert close(float(path_score(*pairs[:2], pair_path(z, k), pairs.emit, check=False)), w)


def test_ffbs_on_pairs_draws_paths_with_their_posterior_frequencies():
    g = torch.Generator().manual_seed(4)
    k, steps = 2, 4
    init = torch.tensor([0.4, 0.6], dtype=DTYPE).log()
    first = torch.tensor([[0.7, 0.3], [0.2, 0.8]], dtype=DTYPE).log()
    trans = torch.tensor([[[0.9, 0.1], [0.3, 0.7]], [[0.5, 0.5], [0.15, 0.85]]], dtype=DTYPE).log()
    emit = torch.randn(steps, k, generator=g, dtype=DTYPE)
    paths = brute(init, first, trans, emit)
    log_z = lse(list(paths.values()))
    n = 40_000
    draws = states(ffbs(*second_order(init, first, trans, emit), sample_shape=(n,), generator=g, check=False), k)
    codes = (draws * (k ** torch.arange(steps - 1, -1, -1))).sum(-1)
    counts = torch.bincount(codes, minlength=k ** steps).double()
    for path, w in paths.items():
        code = sum(s * k ** (steps - 1 - t) for t, s in enumerate(path))
        p = math.exp(w - log_z)
        assert abs(counts[code] - n * p) <= 5 * math.sqrt(n * p * (1 - p)) + 1, (path, counts[code], n * p)


def test_a_second_order_chain_that_ignores_t_minus_2_is_first_order():
    g = torch.Generator().manual_seed(0)
    init = torch.randn(3, generator=g, dtype=DTYPE).log_softmax(-1)
    a = torch.randn(3, 3, generator=g, dtype=DTYPE).log_softmax(-1)
    emit = torch.randn(2, 6, 3, generator=g, dtype=DTYPE)
    pairs = second_order(init, a, a.expand(3, 3, 3), emit)
    torch.testing.assert_close(forward(*pairs, check=False), forward(init, a, emit))
    torch.testing.assert_close(
        state_marginals(forward_backward(*pairs, check=False).marginals, 3), forward_backward(init, a, emit).marginals
    )


@given(data=st.data())
def test_sequences_of_different_lengths_end_where_they_say(data):
    n, steps, k = 3, data.draw(st.integers(1, 5)), data.draw(st.integers(1, 2))
    init, first = data.draw(log_laws((k,))), data.draw(log_laws((k, k)))
    trans = data.draw(log_laws((steps, k, k, k)))
    emit = torch.randn(n, steps, k, dtype=DTYPE)
    lengths = data.draw(st.lists(st.integers(1, steps), min_size=n, max_size=n))
    got = forward(*second_order(init, first, trans, emit), lengths=lengths, check=False)
    for i, length in enumerate(lengths):
        expected = lse(list(brute(init, first, trans[:length], emit[i, :length]).values()))
        assert close(float(got[i]), expected)


def test_bad_input_is_named():
    k = 2
    init, first = torch.full((k,), 0.5).log(), torch.full((k, k), 0.5).log()
    trans = torch.full((k, k, k), 0.5).log()
    bad = trans.clone()
    bad[1, 0] = torch.tensor([0.5, 0.7]).log()
    with pytest.raises(InvalidValueError, match=r"row \(1, 0\) of `trans` sums to 1\.2, not 1"):
        second_order(init, first, bad, torch.zeros(4, k))
    with pytest.raises(InvalidValueError, match=r"row \(1, 0\) at step 3 of `trans` sums to 1\.2"):
        second_order(init, first, torch.stack([trans, trans, trans, bad]), torch.zeros(4, k))
    with pytest.raises(InvalidValueError, match=r"row 1 of `first` sums to 0\.6"):
        second_order(init, torch.tensor([[0.5, 0.5], [0.3, 0.3]]).log(), trans, torch.zeros(4, k))
    with pytest.raises(ShapeError, match=r"a second-order transition is \(\.\.\., 2, 2, 2\)"):
        second_order(init, first, torch.full((k, k), 0.5).log(), torch.zeros(4, k))
    with pytest.raises(ShapeError, match=r"`trans` has shape \(2, 2, 2\), but the emissions of shape \(4, 3\) have 3"):
        second_order(init, first, trans, torch.zeros(4, 3))
    with pytest.raises(ShapeError, match=r"has 5 steps on its axis -4, but the emissions have 4"):
        second_order(init, first, trans.expand(5, k, k, k), torch.zeros(4, k))
    with pytest.raises(ShapeError, match=r"`first` has shape \(2,\)"):
        second_order(init, init, trans, torch.zeros(4, k))
    with pytest.raises(ShapeError, match=r"`emit` has shape \(4,\)"):
        second_order(init, first, trans, torch.zeros(4))
    with pytest.raises(DataError, match=r"`lengths` has 5 at \(0,\), beyond the 4 steps"):
        forward(*second_order(init, first, trans, torch.zeros(1, 4, k)), lengths=[5], check=False)
    with pytest.raises(DataError, match=r"`path` has state 2 at \(1,\), outside \[0, 2\)"):
        pair_path(torch.tensor([0, 2]), k)
    with pytest.raises(QuiversTypeError, match=r"`path` must be an integer tensor"):
        pair_path(torch.tensor([0.0, 1.0]), k)
