"""Kan extensions along functions: their definition as folds over fibres,
functoriality, the adjunctions Lan_f -| f* -| Ran_f where they hold, and
the LOG case that grouped marginalization relies on."""

from __future__ import annotations

import functools
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from quivers.categories import (
    LOG,
    MAX_PLUS,
    PROB,
    FinFunction,
    FinSet,
    fibre_prod,
    fibre_sum,
    left_kan,
    pullback,
    right_kan,
)
from quivers.errors import InvalidValueError
from tests.categories.strategies import (
    CASES,
    IDEMPOTENT,
    LATTICES,
    Case,
    assert_tensors_equal,
    dtype_of,
    finsets,
    functions,
    tensors,
)

every_semiring = pytest.mark.parametrize("case", CASES, ids=repr)
INF = math.inf


@st.composite
def chain(draw, length: int):
    """Objects X0 -> X1 -> ... with a function between each consecutive pair."""
    objs = [draw(finsets())]
    for _ in range(length):
        objs.append(draw(finsets(min_size=1 if objs[-1].size else 0)))
    return objs, [draw(functions(a, b)) for a, b in zip(objs, objs[1:])]


def weights(data, case: Case, obj: FinSet):
    trailing = data.draw(st.sampled_from([(), (2,)]))
    return data.draw(tensors(case, (obj.size, *trailing)))


def fibre_fold(op, unit, f: FinFunction, w: torch.Tensor, dtype) -> torch.Tensor:
    """The definition: fold ``op`` over each fibre, in the order of ``f.dom``."""
    out = []
    for b in range(f.cod.size):
        fibre = [w[a] for a in range(f.dom.size) if f(a) == b]
        out.append(functools.reduce(op, fibre) if fibre else torch.full(w.shape[1:], unit, dtype=dtype))
    return torch.stack(out) if out else torch.zeros((0, *w.shape[1:]), dtype=dtype)


@every_semiring
@given(data=st.data())
def test_kan_extensions_fold_over_fibres(case, data):
    (A, B), (f,) = data.draw(chain(1))
    w = weights(data, case, A)
    S, dtype = case.semiring, dtype_of(case.semiring)
    assert_tensors_equal(case, left_kan(f, w, S), fibre_fold(S.add, S.zero, f, w, dtype))
    assert_tensors_equal(case, right_kan(f, w, S), fibre_fold(S.mul, S.one, f, w, dtype))
    assert_tensors_equal(case, fibre_sum(f.mapping, w, B.size, S), left_kan(f, w, S))
    assert_tensors_equal(case, fibre_prod(f.mapping, w, B.size, S), right_kan(f, w, S))


@every_semiring
@given(data=st.data())
def test_kan_extensions_are_functorial(case, data):
    (A, _, _), (f, g) = data.draw(chain(2))
    w = weights(data, case, A)
    S = case.semiring
    assert_tensors_equal(case, right_kan(f >> g, w, S), right_kan(g, right_kan(f, w, S), S))
    assert_tensors_equal(case, left_kan(f >> g, w, S), left_kan(g, left_kan(f, w, S), S))
    identity = FinFunction.id(A)
    assert_tensors_equal(case, right_kan(identity, w, S), w)
    assert_tensors_equal(case, left_kan(identity, w, S), w)


def leq(case: Case, a: torch.Tensor, b: torch.Tensor) -> bool:
    return bool(case.semiring.leq(a, b).all())


@pytest.mark.parametrize("case", IDEMPOTENT, ids=repr)
@given(data=st.data())
def test_left_kan_is_left_adjoint_to_pullback(case, data):
    (A, B), (f,) = data.draw(chain(1))
    w, v = data.draw(tensors(case, (A.size,))), data.draw(tensors(case, (B.size,)))
    S = case.semiring
    lan = lambda x: left_kan(f, x, S)  # noqa: E731
    # Lan_f(w) <= v  iff  w <= f*(v), checked on a random v and on the tight one.
    for target in (v, lan(w), S.add(lan(w), v)):
        assert leq(case, lan(w), target) == leq(case, w, f.pullback(target))
    # unit and counit
    assert leq(case, w, f.pullback(lan(w)))
    assert leq(case, lan(f.pullback(v)), v)


@pytest.mark.parametrize("case", LATTICES, ids=repr)
@given(data=st.data())
def test_right_kan_is_right_adjoint_to_pullback(case, data):
    (A, B), (f,) = data.draw(chain(1))
    w, v = data.draw(tensors(case, (A.size,))), data.draw(tensors(case, (B.size,)))
    S = case.semiring
    ran = lambda x: right_kan(f, x, S)  # noqa: E731
    # f*(v) <= w  iff  v <= Ran_f(w)
    for source in (v, ran(w), S.mul(ran(w), v)):
        assert leq(case, f.pullback(source), w) == leq(case, source, ran(w))
    assert leq(case, v, ran(f.pullback(v)))
    assert leq(case, f.pullback(ran(w)), w)


def test_right_kan_is_no_right_adjoint_where_mul_is_not_the_meet():
    # Why the adjunction above is checked only in lattices: in MAX_PLUS the
    # fibre product of (1, -1) is 0, so v = 0 <= Ran_f(w), yet f*(v) = (0, 0)
    # is not <= w = (1, -1).
    f = FinFunction(FinSet("A", 2), FinSet("B", 1), [0, 0])
    w, v = torch.tensor([1.0, -1.0]), torch.tensor([0.0])
    assert bool(MAX_PLUS.leq(v, right_kan(f, w, MAX_PLUS)).all())
    assert not bool(MAX_PLUS.leq(f.pullback(v), w).all())


@pytest.mark.parametrize("kan", [left_kan, right_kan])
@given(data=st.data())
def test_log_kan_extensions_match_prob_after_exp(kan, data):
    # Kan extensions commute with the homomorphism exp: LOG -> PROB, so the
    # LOG scatter-logsumexp / scatter-add are the probability computations.
    (A, _), (f,) = data.draw(chain(1))
    log_w = weights(data, next(c for c in CASES if c.semiring == LOG), A)
    torch.testing.assert_close(kan(f, log_w, LOG).exp(), kan(f, log_w.exp(), PROB))


def test_log_kan_extensions_on_empty_and_impossible_fibres():
    # Item -> G with group 1 empty and group 2 holding only -inf rows.
    f = FinFunction(FinSet("Item", 5), FinSet("G", 3), [0, 0, 2, 2, 0])
    w = torch.tensor([-1.0, -2.0, -INF, -INF, 0.5], dtype=torch.float64, requires_grad=True)
    right = right_kan(f, w, LOG)
    left = left_kan(f, w, LOG)
    assert right.tolist() == [-2.5, 0.0, -INF]
    torch.testing.assert_close(left[0], torch.logsumexp(w[[0, 1, 4]].detach(), 0))
    assert left[1].item() == -INF and left[2].item() == -INF
    (grad,) = torch.autograd.grad(torch.where(torch.isfinite(left), left, 0).sum() + right[:2].sum(), w)
    assert torch.isfinite(grad).all()
    assert grad[2].item() == 0.0 and grad[3].item() == 0.0


@pytest.mark.parametrize("kan", [left_kan, right_kan])
def test_log_kan_extension_gradients(kan):
    # gradcheck cannot perturb -inf, so the -inf entries are fixed by a mask
    # inside the function while the finite ones are checked; -inf outputs
    # (empty-by-impossibility fibres) are zeroed so the check sees their
    # (zero) gradient rather than inf - inf.
    f = FinFunction(FinSet("Item", 6), FinSet("G", 4), [0, 0, 2, 2, 0, 3])
    impossible = torch.tensor([False, True, True, True, False, False])[:, None]
    w = torch.randn(6, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0), requires_grad=True)

    def fn(x):
        out = kan(f, x.masked_fill(impossible, -INF), LOG)
        return torch.where(torch.isfinite(out), out, torch.zeros_like(out))

    assert torch.autograd.gradcheck(fn, (w,))


@st.composite
def broadcasting_shapes(draw):
    """A table's batch shape and an index's shape that broadcast: each axis
    of size 1 in one, the other, or neither (a shared axis), and the
    index's rank possibly smaller or larger than the table's."""
    rank = draw(st.integers(0, 3))
    rows, cols = [], []
    for _ in range(rank):
        size = draw(st.integers(1, 3))
        owner = draw(st.sampled_from(["table", "index", "both", "neither"]))
        rows.append(size if owner in ("table", "both") else 1)
        cols.append(size if owner in ("index", "both") else 1)
    drop = draw(st.integers(0, rank))
    if draw(st.booleans()):
        rows = rows[drop:]
    else:
        cols = cols[drop:]
    return tuple(rows), tuple(cols)


@given(shapes=broadcasting_shapes(), size=st.integers(1, 4), seed=st.integers(0, 2**31 - 1))
def test_pullback_is_a_gather_on_the_broadcast_table_gradient_included(shapes, size, seed):
    rows, cols = shapes
    g = torch.Generator().manual_seed(seed)
    table = torch.randn(*rows, size, generator=g, dtype=torch.float64).requires_grad_()
    index = torch.randint(0, size, cols, generator=g)
    full = torch.broadcast_shapes(rows, cols)
    expected = torch.gather(table.expand(*full, size), -1, index.expand(full).unsqueeze(-1)).squeeze(-1)
    got = pullback(table, index)
    assert got.shape == expected.shape
    assert torch.equal(got, expected)
    upstream = torch.randn(full, generator=g, dtype=torch.float64)
    (want,) = torch.autograd.grad(expected, table, upstream)
    (have,) = torch.autograd.grad(got, table, upstream)
    torch.testing.assert_close(have, want, rtol=1e-12, atol=1e-12)
    # each entry's gradient adds its terms in the row-major order of the
    # broadcast shape, as a scatter at the entries' linear offsets does:
    # the same numbers, bit for bit, as before pullback gathered
    rank = len(full)
    padded = (1,) * (rank - len(rows)) + tuple(rows)
    offset = index.expand(full).clone()
    stride = size
    for d in reversed(range(rank)):
        if padded[d] != 1:
            shape = [1] * rank
            shape[d] = padded[d]
            offset = offset + (torch.arange(padded[d]) * stride).view(shape)
            stride *= padded[d]
    flat = torch.zeros(table.numel(), dtype=torch.float64).index_add_(0, offset.reshape(-1), upstream.reshape(-1))
    assert torch.equal(have, flat.view(table.shape))


def test_pullback_reads_a_permuted_view_and_checks_the_range():
    table = torch.arange(6.0).reshape(3, 2).t()  # (2, 3), not contiguous
    assert torch.equal(pullback(table[:, None, :], torch.tensor([2, 0])), torch.tensor([[4.0, 0.0], [5.0, 1.0]]))
    with pytest.raises(InvalidValueError, match=r"index -1 at \(1,\) is out of range for an axis of size 3"):
        pullback(table, torch.tensor([0, -1]))


@pytest.mark.parametrize("shape", [(4,), (3, 1, 4), (2, 3, 1, 4)])
def test_pullback_reads_every_table_of_a_shape_at_its_own_entries(shape):
    # the row offsets are made once per shape and reused: tables of one
    # shape, made under inference mode first, then differentiated
    g = torch.Generator().manual_seed(0)
    index = torch.randint(shape[-1], (5,), generator=g)
    for call in range(3):
        table = torch.randn(shape, generator=g, dtype=torch.float64)
        batch = torch.broadcast_shapes(shape[:-1], index.shape)
        want = torch.take_along_dim(table.expand(batch + shape[-1:]), index.expand(batch).unsqueeze(-1), -1).squeeze(-1)
        if call == 0:
            with torch.inference_mode():
                assert torch.equal(pullback(table, index), want)
            continue
        table.requires_grad_()
        out = pullback(table, index)
        assert torch.equal(out, want)
        (grad,) = torch.autograd.grad(out.sum(), table)
        counts = torch.bincount(index, minlength=shape[-1]).double()  # each entry read once per time it is indexed
        assert torch.equal(grad, counts.expand(shape))
