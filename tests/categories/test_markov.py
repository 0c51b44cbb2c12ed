"""Markov chains as composites of kernels: scans against the sequential
fold in every semiring, and the forward algorithm, forward-backward,
Viterbi and FFBS against brute-force enumeration of all K^T paths in
float64."""

from __future__ import annotations

import itertools
import math
from functools import reduce

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from quivers.categories import LOG, MAX_PLUS, FinSet, Kernel
from quivers.categories.markov import (
    associative_scan,
    ffbs,
    forward,
    forward_backward,
    path_score,
    semiring_product,
    semiring_scan,
    viterbi,
)
from quivers.errors import DataError, InvalidValueError, QuiversTypeError, ShapeError
from tests.categories.strategies import CASES, assert_tensors_equal, tensors

every_semiring = pytest.mark.parametrize("case", CASES, ids=repr)
INF = math.inf
DTYPE = torch.float64


# ---------------------------------------------------------------- scans


def fold(case, mats: torch.Tensor) -> list[torch.Tensor]:
    """The prefix products by a left fold, one matrix at a time."""
    out, acc = [], None
    for t in range(mats.shape[-3]):
        m = mats[..., t, :, :]
        acc = m if acc is None else case.semiring.contract(acc, m)
        out.append(acc)
    return out


@every_semiring
@given(data=st.data())
def test_scan_is_the_sequential_fold(case, data):
    steps, k = data.draw(st.integers(1, 6)), data.draw(st.integers(1, 3))
    batch = data.draw(st.sampled_from([(), (2,)]))
    mats = data.draw(tensors(case, (*batch, steps, k, k)))
    scan = semiring_scan(mats, case.semiring)
    expected = torch.stack(fold(case, mats), -3)
    assert_tensors_equal(case, scan, expected)
    assert_tensors_equal(case, semiring_product(mats, case.semiring), expected[..., -1, :, :])


@every_semiring
@given(data=st.data())
def test_reverse_scan_is_the_fold_of_suffixes(case, data):
    steps, k = data.draw(st.integers(1, 6)), data.draw(st.integers(1, 3))
    mats = data.draw(tensors(case, (steps, k, k)))
    scan = semiring_scan(mats, case.semiring, reverse=True)
    for t in range(steps):
        assert_tensors_equal(case, scan[t], fold(case, mats[t:])[-1])


@every_semiring
@given(data=st.data())
def test_product_of_a_concatenation_composes(case, data):
    # Associativity of the bracketing: any split point gives the same product.
    k = data.draw(st.integers(1, 3))
    a = data.draw(tensors(case, (data.draw(st.integers(0, 4)), k, k)))
    b = data.draw(tensors(case, (data.draw(st.integers(0, 4)), k, k)))
    whole = semiring_product(torch.cat([a, b]), case.semiring)
    parts = case.semiring.contract(semiring_product(a, case.semiring), semiring_product(b, case.semiring))
    assert_tensors_equal(case, whole, parts)


@every_semiring
@given(data=st.data())
def test_captured_product_pads_to_a_power_of_two_and_is_the_fold(case, data):
    # while a graph is recorded the stack is padded with identities, so
    # that no level of the tree splits off an odd matrix
    from quivers.capture import capture

    steps, k = data.draw(st.integers(1, 9)), data.draw(st.integers(1, 3))
    mats = data.draw(tensors(case, (steps, k, k)))
    with capture():
        product = semiring_product(mats, case.semiring)
    assert_tensors_equal(case, product, fold(case, mats)[-1])


def test_recorded_product_joins_once_and_splits_never():
    from quivers.capture import record

    graph = record(lambda m: (semiring_product(m, LOG),), torch.zeros(5, 2, 2, dtype=DTYPE))
    ops = [str(n.target) for n in graph.graph.nodes if n.op == "call_function"]
    assert ops.count("aten.cat.default") == 1 and "aten.split_with_sizes.default" not in ops, ops
    mats = torch.randn(5, 2, 2, dtype=DTYPE)
    torch.testing.assert_close(graph(mats)[0], semiring_product(mats, LOG), rtol=1e-12, atol=1e-12)


@every_semiring
def test_product_of_no_matrices_is_the_identity(case):
    dtype = case.semiring.tensor_dtype(DTYPE)
    empty = torch.zeros(0, 3, 3, dtype=dtype)
    eye = torch.where(torch.eye(3, dtype=torch.bool), torch.tensor(case.semiring.one, dtype=dtype),
                      torch.tensor(case.semiring.zero, dtype=dtype))
    assert_tensors_equal(case, semiring_product(empty, case.semiring), eye)


@given(data=st.data())
def test_scan_of_functions_is_their_composite(data):
    k, steps = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 7))
    fs = torch.tensor(data.draw(st.lists(st.lists(st.integers(0, k - 1), min_size=k, max_size=k),
                                         min_size=steps, max_size=steps)))
    compose = lambda f, g: f.gather(-1, g)  # noqa: E731
    scan = associative_scan(compose, fs, reverse=True)
    for t in range(steps):
        # (fs[t] . ... . fs[-1])(j): apply the last function first
        expected = reduce(lambda acc, f: [f[a] for a in acc], reversed(fs[t:].tolist()), list(range(k)))
        assert scan[t].tolist() == expected


def test_associative_scan_handles_every_length():
    for n in range(0, 40):
        x = torch.arange(1, n + 1)
        assert associative_scan(torch.add, x).tolist() == torch.cumsum(x, 0).tolist()
        assert associative_scan(torch.add, x, reverse=True).tolist() == x.flip(0).cumsum(0).flip(0).tolist()


def test_max_plus_scan_chunks_long_stacks_without_changing_them():
    # MAX_PLUS materializes (..., K, K, K); a stack too large for one piece
    # is contracted in pieces, with the same result as a small-piece run.
    from quivers.categories import markov as M

    g = torch.Generator().manual_seed(0)
    mats = torch.randn(64, 5, 5, generator=g, dtype=DTYPE)
    whole = semiring_scan(mats, MAX_PLUS)
    old, M._CHUNK = M._CHUNK, 5 * 5 * 5 * 3
    try:
        pieces = semiring_scan(mats, MAX_PLUS)
    finally:
        M._CHUNK = old
    assert torch.equal(whole, pieces)


# ---------------------------------------------------------------- chains by brute force


def brute(init, trans, emit):
    """Every path's log weight, by Python loops in float64."""
    steps, k = emit.shape
    out = {}
    for path in itertools.product(range(k), repeat=steps):
        w = float(init[path[0]]) + float(emit[0, path[0]])
        for t in range(1, steps):
            a = trans[t] if trans.dim() == 3 else trans
            w += float(a[path[t - 1], path[t]]) + float(emit[t, path[t]])
        out[path] = w
    return out


def lse(xs) -> float:
    m = max(xs)
    return m if m == -INF else m + math.log(sum(math.exp(x - m) for x in xs))


_LOG_PROB = st.floats(-6.0, 0.0).map(lambda x: -INF if x < -5.5 else x)


@st.composite
def log_laws(draw, shape):
    """Log probabilities along the last axis, with impossible entries drawn."""
    n = math.prod(shape)
    raw = torch.tensor(draw(st.lists(_LOG_PROB, min_size=n, max_size=n)), dtype=DTYPE).reshape(shape)
    dead = torch.isinf(raw).all(-1, keepdim=True)
    raw = torch.where(dead, torch.zeros_like(raw), raw)  # a law needs one possible value
    return raw - torch.logsumexp(raw, -1, keepdim=True)


@st.composite
def chains(draw, max_steps=5, max_states=3):
    steps, k = draw(st.integers(1, max_steps)), draw(st.integers(1, max_states))
    init = draw(log_laws((k,)))
    trans = draw(log_laws(draw(st.sampled_from([(k, k), (steps, k, k)]))))
    emit = torch.tensor(
        draw(st.lists(st.floats(-4.0, 3.0).map(lambda x: -INF if x < -3.8 else x), min_size=steps * k,
                      max_size=steps * k)),
        dtype=DTYPE,
    ).reshape(steps, k)
    return init, trans, emit


@given(chains())
def test_forward_is_the_sum_over_all_paths(chain):
    init, trans, emit = chain
    paths = brute(init, trans, emit)
    expected = lse(list(paths.values()))
    got = float(forward(init, trans, emit))
    assert got == expected == -INF or math.isclose(got, expected, rel_tol=1e-9, abs_tol=1e-9)


@given(chains(max_steps=7), st.sampled_from([LOG, MAX_PLUS]), st.integers(1, 4), st.data())
def test_forward_folded_in_blocks_is_the_sum_over_all_paths(chain, semiring, block, data):
    """A memory bound small enough to split the chain into blocks of
    ``block`` steps changes neither the value nor, in LOG, its gradient."""
    init, trans, emit = chain
    steps, k = emit.shape
    lengths = torch.tensor(data.draw(st.lists(st.integers(0, steps), min_size=2, max_size=2)))
    emits = torch.stack([emit, emit.flip(0)]).requires_grad_()
    whole = forward(init, trans, emits, lengths, semiring)
    blocked = forward(init, trans, emits, lengths, semiring, max_bytes=block * k * k * 8)
    torch.testing.assert_close(blocked, whole, rtol=1e-9, atol=1e-9)
    paths = brute(init, trans, emit)
    pick = max if semiring is MAX_PLUS else lse
    if int(lengths[0]) == steps:
        expected = pick(list(paths.values()))
        got = float(blocked[0].detach())
        assert got == expected == -INF or math.isclose(got, expected, abs_tol=1e-9)
    if semiring is LOG and bool(torch.isfinite(whole).all()):
        (g_whole,) = torch.autograd.grad(whole.sum(), emits)
        (g_blocked,) = torch.autograd.grad(blocked.sum(), emits)
        torch.testing.assert_close(g_blocked, g_whole, rtol=1e-9, atol=1e-9)


def test_forward_of_a_long_chain_fits_its_memory_bound():
    """Blocks of steps are recomputed in the backward pass instead of kept:
    the memory autograd saves stays near one block's matrices."""
    steps, k = 4096, 8
    g = torch.Generator().manual_seed(0)
    trans = torch.randn(k, k, generator=g).log_softmax(-1)
    emit = torch.randn(steps, k, generator=g).requires_grad_()
    saved = []
    bound = 64 * k * k * 4  # 64 steps' matrices in float32

    def pack(t):
        saved.append(t.numel() * t.element_size())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        value = forward(None, trans, emit, max_bytes=bound)
    assert max(saved) <= bound
    whole = forward(None, trans, emit)
    torch.testing.assert_close(value, whole, rtol=1e-5, atol=1e-3)
    (g1,) = torch.autograd.grad(value, emit)
    (g2,) = torch.autograd.grad(whole, emit)
    torch.testing.assert_close(g1, g2, rtol=1e-4, atol=1e-5)


@given(chains())
def test_forward_in_max_plus_is_the_best_path_and_viterbi_finds_one(chain):
    init, trans, emit = chain
    paths = brute(init, trans, emit)
    best = max(paths.values())
    got = float(forward(init, trans, emit, semiring=MAX_PLUS))
    assert got == best == -INF or math.isclose(got, best, abs_tol=1e-9)
    score, path = viterbi(init, trans, emit)
    assert got == float(score) or math.isclose(got, float(score), abs_tol=1e-9)
    if best > -INF:
        assert math.isclose(paths[tuple(path.tolist())], best, abs_tol=1e-9)
        runner_up = sorted(paths.values())[-2] if len(paths) > 1 else -INF
        if best - runner_up > 1e-6:  # a unique best path is found exactly
            assert tuple(path.tolist()) == max(paths, key=paths.get)


@given(chains())
def test_marginals_are_the_brute_force_posterior(chain):
    init, trans, emit = chain
    paths = brute(init, trans, emit)
    log_z = lse(list(paths.values()))
    if log_z == -INF:
        return
    steps, k = emit.shape
    expected = torch.zeros(steps, k, dtype=DTYPE)
    for path, w in paths.items():
        for t, s in enumerate(path):
            expected[t, s] += math.exp(w - log_z)
    fb = forward_backward(init, trans, emit)
    torch.testing.assert_close(fb.marginals, expected)
    assert math.isclose(float(fb.log_z), log_z, abs_tol=1e-9)


@given(chains())
def test_marginals_are_the_gradient_of_the_log_likelihood(chain):
    init, trans, emit = chain
    emit = emit.clamp(min=-50.0).requires_grad_()  # finite, so every state has a gradient
    (grad,) = torch.autograd.grad(forward(init, trans, emit), emit)
    torch.testing.assert_close(grad, forward_backward(init, trans, emit.detach()).marginals)


@given(chains())
def test_path_score_is_the_brute_force_weight(chain):
    init, trans, emit = chain
    paths = brute(init, trans, emit)
    for path, w in list(paths.items())[:8]:
        got = float(path_score(init, trans, torch.tensor(path), emit))
        assert got == w == -INF or math.isclose(got, w, abs_tol=1e-9)


def test_ffbs_draws_paths_with_their_posterior_frequencies():
    g = torch.Generator().manual_seed(1)
    k, steps = 2, 4
    init = torch.tensor([0.3, 0.7], dtype=DTYPE).log()
    trans = torch.tensor([[0.8, 0.2], [0.35, 0.65]], dtype=DTYPE).log()
    emit = torch.randn(steps, k, generator=g, dtype=DTYPE)
    paths = brute(init, trans, emit)
    log_z = lse(list(paths.values()))
    n = 40_000
    draws = ffbs(init, trans, emit, sample_shape=(n,), generator=g)
    assert draws.shape == (n, steps)
    codes = (draws * (k ** torch.arange(steps - 1, -1, -1))).sum(-1)
    counts = torch.bincount(codes, minlength=k ** steps).double()
    for path, w in paths.items():
        code = sum(s * k ** (steps - 1 - t) for t, s in enumerate(path))
        p = math.exp(w - log_z)
        sd = math.sqrt(n * p * (1 - p))
        assert abs(counts[code] - n * p) <= 5 * sd + 1, (path, counts[code], n * p)


def test_ffbs_with_no_evidence_draws_from_the_prior_and_follows_the_generator():
    init = torch.tensor([1.0, 0.0]).log()
    trans = torch.tensor([[0.0, 1.0], [1.0, 0.0]]).log()  # a deterministic flip
    draws = ffbs(init, trans, torch.zeros(5, 2), sample_shape=(3,), generator=torch.Generator().manual_seed(0))
    assert draws.tolist() == [[0, 1, 0, 1, 0]] * 3
    a = ffbs(None, torch.full((2, 2), 0.5).log(), torch.zeros(6, 2), sample_shape=(4,),
             generator=torch.Generator().manual_seed(3))
    b = ffbs(None, torch.full((2, 2), 0.5).log(), torch.zeros(6, 2), sample_shape=(4,),
             generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


# ---------------------------------------------------------------- sequences of different lengths


@given(data=st.data())
def test_steps_past_a_sequences_length_are_identities(data):
    n, steps, k = 3, data.draw(st.integers(1, 5)), data.draw(st.integers(1, 3))
    init = data.draw(log_laws((n, k)))
    trans = data.draw(log_laws((steps, k, k)))
    emit = torch.randn(n, steps, k, dtype=DTYPE)
    lengths = torch.tensor(data.draw(st.lists(st.integers(0, steps), min_size=n, max_size=n)))
    log_z = forward(init, trans, emit, lengths)
    fb = forward_backward(init, trans, emit, lengths)
    best = viterbi(init, trans, emit, lengths)
    garbage = emit.clone()
    for i, length in enumerate(lengths.tolist()):
        garbage[i, length:] = 1e3  # what lies past the end must not count
        if length == 0:
            assert abs(float(log_z[i])) < 1e-12  # no step: the law of nothing
            continue
        sub = (init[i], trans[:length], emit[i, :length])
        torch.testing.assert_close(log_z[i], forward(*sub))
        torch.testing.assert_close(fb.marginals[i, :length], forward_backward(*sub).marginals)
        torch.testing.assert_close(best.score[i], viterbi(*sub).score)
        # past the end, marginals and the path repeat the last real step
        torch.testing.assert_close(fb.marginals[i, length:], fb.marginals[i, length - 1].expand(steps - length, k))
        assert (best.path[i, length:] == best.path[i, length - 1]).all()
    torch.testing.assert_close(forward(init, trans, garbage, lengths), log_z)


# ---------------------------------------------------------------- inputs


def test_kernels_of_the_core_are_transitions():
    K = FinSet("K", 2)
    A = Kernel(K, K, torch.tensor([[0.9, 0.1], [0.2, 0.8]], dtype=DTYPE))
    emit = torch.tensor([[0.0, -1.0], [-2.0, 0.0], [0.0, 0.0]], dtype=DTYPE)
    torch.testing.assert_close(forward(None, A, emit), forward(None, A.tensor.log(), emit))
    A_log = Kernel(K, K, A.tensor.log(), LOG)
    torch.testing.assert_close(forward(None, A_log, emit), forward(None, A.tensor.log(), emit))


def test_batches_broadcast_like_pyro():
    # trans (..., T, K, K) broadcasts against emit (..., T, K): axis -3 is time.
    g = torch.Generator().manual_seed(0)
    emit = torch.randn(4, 6, 3, generator=g, dtype=DTYPE)
    trans = torch.randn(6, 3, 3, generator=g, dtype=DTYPE).log_softmax(-1)
    init = torch.randn(3, generator=g, dtype=DTYPE).log_softmax(-1)
    out = forward(init, trans, emit)
    assert out.shape == (4,)
    for i in range(4):
        torch.testing.assert_close(out[i], forward(init, trans, emit[i]))


def test_rows_that_are_not_laws_are_named():
    emit = torch.zeros(3, 2)
    with pytest.raises(InvalidValueError, match=r"row 1 at step 2 of `trans` sums to 1\.2, not 1"):
        forward(None, torch.tensor([[[0.5, 0.5], [0.5, 0.5]]] * 2 + [[[0.5, 0.5], [0.6, 0.6]]]).log(), emit)
    with pytest.raises(InvalidValueError, match=r"row 0 of `trans` sums to 0\.9"):
        viterbi(None, torch.tensor([[0.5, 0.4], [0.5, 0.5]]).log(), emit)
    with pytest.raises(InvalidValueError, match=r"the law of `init` sums to 2"):
        forward_backward(torch.tensor([1.0, 1.0]).log(), torch.full((2, 2), 0.5).log(), emit)
    with pytest.raises(InvalidValueError, match=r"`emit` is nan at \(1, 0\)"):
        forward(None, torch.full((2, 2), 0.5).log(), torch.tensor([[0.0, 0.0], [math.nan, 0.0], [0.0, 0.0]]))
    # a CRF's potentials are not laws: check=False sums them anyway
    assert torch.isfinite(forward(None, torch.ones(2, 2), emit, check=False))


def test_lengths_beyond_the_steps_are_named():
    trans = torch.full((2, 2), 0.5).log()
    with pytest.raises(DataError, match=r"`lengths` has 4 at \(1,\), beyond the 3 steps of the emissions"):
        forward(None, trans, torch.zeros(2, 3, 2), lengths=torch.tensor([3, 4]))
    with pytest.raises(DataError, match=r"`lengths` has -1"):
        ffbs(None, trans, torch.zeros(2, 3, 2), lengths=[1, -1])
    with pytest.raises(ShapeError, match=r"`lengths` of shape \(3,\) does not broadcast"):
        forward(None, trans, torch.zeros(2, 3, 2), lengths=torch.tensor([1, 2, 3]))
    with pytest.raises(DataError, match=r"whole numbers"):
        forward(None, trans, torch.zeros(2, 3, 2), lengths=torch.tensor([1.5, 2.0]))


def test_shapes_that_do_not_fit_are_named():
    trans = torch.full((2, 2), 0.5).log()
    with pytest.raises(ShapeError, match=r"`emit` has shape \(3,\); it must be \(\.\.\., T, K\)"):
        forward(None, trans, torch.zeros(3))
    with pytest.raises(ShapeError, match=r"`trans` has shape \(2, 2\), but the emissions of shape \(4, 3\) have 3 states"):
        forward(None, trans, torch.zeros(4, 3))
    with pytest.raises(ShapeError, match=r"has 5 steps on its axis -3, but the emissions have 4"):
        forward(None, trans.expand(5, 2, 2), torch.zeros(4, 2))
    with pytest.raises(ShapeError, match=r"`init` has shape \(3,\)"):
        forward(torch.zeros(3), trans, torch.zeros(4, 2))
    with pytest.raises(ShapeError, match=r"do not broadcast"):
        forward(torch.zeros(3, 2).log_softmax(-1), trans, torch.zeros(4, 5, 2))
    with pytest.raises(QuiversTypeError, match=r"`emit` must be a torch.Tensor"):
        forward(None, trans, [[0.0, 0.0]])
    with pytest.raises(QuiversTypeError, match=r"not in `PROB`"):
        forward(None, trans, torch.zeros(4, 2), semiring=__import__("quivers").categories.PROB)
    with pytest.raises(ShapeError, match=r"stack of square matrices"):
        semiring_scan(torch.zeros(3, 2, 4), LOG)
    with pytest.raises(ShapeError, match=r"`path` has 3 steps, the chain 4"):
        path_score(None, trans, torch.tensor([0, 1, 1]), torch.zeros(4, 2))
