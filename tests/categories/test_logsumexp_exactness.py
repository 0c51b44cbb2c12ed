"""LOG against an independent high-precision computation (mpmath at 40
digits) on inputs near +-700 (where exp over- and underflows) and -inf, and
its gradients against finite differences.

The error of a log-weight ``c`` against the exact ``e`` is
``|c - e| / max(1, |e|)``: relative for large log-weights, and for those
near zero the absolute error, which is the relative error of the weight
``exp(c)`` itself.
"""

from __future__ import annotations

import math

import mpmath
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from quivers.categories import LOG, FinFunction, FinSet, left_kan

INF = math.inf
TOLERANCE = {torch.float64: 1e-12, torch.float32: 1e-5}
dtypes = pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)

# Bounded log-weights, drawn on purpose near +-700 (exp overflows past 709.8
# and underflows below -745) and at the LOG zero, -inf.
log_weights = st.one_of(
    st.sampled_from([-INF, 0.0, 700.0, -700.0, 709.0, -709.0]),
    st.floats(-705.0, -695.0),
    st.floats(695.0, 705.0),
    st.floats(-710.0, 710.0),
)


def log_matrices(rows: int, cols: int, dtype: torch.dtype):
    return st.lists(log_weights, min_size=rows * cols, max_size=rows * cols).map(
        lambda xs: torch.tensor(xs, dtype=dtype).reshape(rows, cols)
    )


def exact_logsumexp(terms: list[float]) -> mpmath.mpf:
    finite = [mpmath.mpf(t) for t in terms if t != -INF]
    if not finite:
        return mpmath.mpf("-inf")
    top = max(finite)
    return top + mpmath.log(mpmath.fsum(mpmath.exp(t - top) for t in finite))


def assert_exact(actual: torch.Tensor, expected: list, dtype: torch.dtype) -> None:
    for got, want in zip(actual.flatten().tolist(), expected):
        if want == -INF:
            assert got == -INF, (got, want)
            continue
        error = abs(mpmath.mpf(got) - want) / max(1, abs(want))
        assert error < TOLERANCE[dtype], (got, want, float(error))


@dtypes
@given(data=st.data())
def test_contraction_matches_high_precision(dtype, data):
    n, m, k = (data.draw(st.integers(1, 4)) for _ in range(3))
    a, b = data.draw(log_matrices(n, m, dtype)), data.draw(log_matrices(m, k, dtype))
    with mpmath.workdps(40):
        # The sums a + b are formed in mpmath from the exact float inputs.
        expected = [
            exact_logsumexp_pairs(a[i].tolist(), b[:, j].tolist()) for i in range(n) for j in range(k)
        ]
        assert_exact(LOG.contract(a, b), expected, dtype)


def exact_logsumexp_pairs(row: list[float], col: list[float]) -> mpmath.mpf:
    pairs = [mpmath.mpf(x) + mpmath.mpf(y) for x, y in zip(row, col) if x != -INF and y != -INF]
    if not pairs:
        return mpmath.mpf("-inf")
    top = max(pairs)
    return top + mpmath.log(mpmath.fsum(mpmath.exp(t - top) for t in pairs))


@dtypes
@given(data=st.data())
def test_reductions_match_high_precision(dtype, data):
    rows, cols = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 5))
    t = data.draw(log_matrices(rows, cols, dtype))
    groups = data.draw(st.lists(st.integers(0, 2), min_size=rows, max_size=rows))
    f = FinFunction(FinSet("Item", rows), FinSet("G", 3), groups)
    with mpmath.workdps(40):
        assert_exact(LOG.sum(t, 1), [exact_logsumexp(r) for r in t.tolist()], dtype)
        assert_exact(LOG.add(t[0], t[-1]), [exact_logsumexp([x, y]) for x, y in zip(t[0].tolist(), t[-1].tolist())], dtype)
        by_group = [
            exact_logsumexp([t[a, c].item() for a in range(rows) if groups[a] == g])
            for g in range(3)
            for c in range(cols)
        ]
        assert_exact(left_kan(f, t, LOG), by_group, dtype)


def test_contraction_recovers_entries_the_shifts_underflow():
    # Row and column maxima sit at different j, so exp(a - max_a) and
    # exp(b - max_b) underflow at every j: the answer is -800 + log 3
    # (three pairs summing to -800), not -inf.
    a = torch.tensor([[0.0, -800.0, -800.0]], dtype=torch.float64)
    b = torch.tensor([[-800.0], [0.0], [0.0]], dtype=torch.float64)
    assert LOG.contract(a, b).item() == pytest.approx(-800.0 + math.log(3), abs=1e-12)


def gradcheck_input(seed: int, shape: tuple[int, ...]) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    spread = torch.tensor([0.0, 700.0, -700.0], dtype=torch.float64)
    x = torch.randn(shape, dtype=torch.float64, generator=gen) * 3
    x = x + spread[torch.randint(0, 3, shape, generator=gen)]
    return x.requires_grad_()


@pytest.mark.parametrize("seed", range(4))
def test_contraction_gradients(seed):
    # -inf entries stay fixed through a mask (gradcheck cannot perturb
    # them); -inf outputs are zeroed so their zero gradient is what is
    # compared, not inf - inf.
    a, b = gradcheck_input(seed, (3, 4)), gradcheck_input(seed + 100, (4, 2))
    gen = torch.Generator().manual_seed(seed)
    mask_a = torch.rand(3, 4, generator=gen) < 0.3
    mask_a[0] = True  # one row that is entirely -inf
    mask_b = torch.rand(4, 2, generator=gen) < 0.3

    def fn(a, b):
        out = LOG.contract(a.masked_fill(mask_a, -INF), b.masked_fill(mask_b, -INF))
        return torch.where(torch.isfinite(out), out, torch.zeros_like(out))

    assert torch.autograd.gradcheck(fn, (a, b))


def test_rows_of_negative_infinity_have_zero_gradient():
    a = torch.tensor([[-INF, -INF], [0.0, 1.0]], dtype=torch.float64, requires_grad=True)
    b = torch.tensor([[0.0, -INF], [2.0, -INF]], dtype=torch.float64, requires_grad=True)
    out = LOG.contract(a, b)
    assert out[0].tolist() == [-INF, -INF] and out[1, 1].item() == -INF
    ga, gb = torch.autograd.grad(out[1, 0] + out[0].clamp(min=-1e300).sum(), (a, b))
    assert torch.isfinite(ga).all() and torch.isfinite(gb).all()
    assert ga[0].tolist() == [0.0, 0.0] and gb[:, 1].tolist() == [0.0, 0.0]


# ---------------------------------------------------------------- logsumexp's own node
#
# `logsumexp` takes torch's node where every slice has a finite term and a
# node of its own (with its gradient written out) where one does not, on an
# accelerator, and while a graph is captured. Both must give the value and
# the gradient (the softmax, zero on a slice of -inf) of the enumeration.


def brute_logsumexp_and_softmax(t: torch.Tensor) -> tuple[list[float], list[list[float]]]:
    values, weights = [], []
    for row in t.tolist():
        finite = [x for x in row if x != -INF]
        top = max(finite, default=-INF)
        total = sum(math.exp(x - top) for x in finite)
        values.append(top + math.log(total) if finite else -INF)
        weights.append([math.exp(x - top) / total if x != -INF else 0.0 for x in row])
    return values, weights


@pytest.mark.parametrize("captured", [False, True], ids=["eager", "captured"])
@given(t=st.integers(1, 4).flatmap(lambda cols: st.lists(
    st.lists(st.one_of(st.just(-INF), st.floats(-30.0, 30.0)), min_size=cols, max_size=cols), min_size=1, max_size=4)))
def test_logsumexp_value_and_gradient_are_the_enumerations(captured, t):
    from quivers.capture import capture
    from quivers.categories.monoid import logsumexp

    x = torch.tensor(t, dtype=torch.float64, requires_grad=True)
    upstream = torch.arange(1.0, x.shape[0] + 1, dtype=torch.float64)
    if captured:
        with capture():
            out = logsumexp(x, 1)
    else:
        out = logsumexp(x, 1)
    (grad,) = torch.autograd.grad(out, x, upstream)
    values, weights = brute_logsumexp_and_softmax(x.detach())
    assert out.detach().tolist() == pytest.approx(values, rel=1e-12, abs=1e-12)
    expected = torch.tensor(weights, dtype=torch.float64) * upstream[:, None]
    torch.testing.assert_close(grad, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("captured", [False, True], ids=["eager", "captured"])
def test_logsumexps_second_derivative_is_the_softmaxs_jacobian(captured):
    # Laplace's approximation differentiates twice: diag(p) - p p^T on each
    # row, and zero on a row of -inf (which also routes the eager call
    # through the safe node)
    from quivers.capture import capture
    from quivers.categories.monoid import logsumexp

    x = torch.tensor([[0.3, -1.2, 2.0], [-INF, -INF, -INF]], dtype=torch.float64)
    mask = torch.isfinite(x)

    def total(u: torch.Tensor) -> torch.Tensor:
        out = logsumexp(torch.where(mask, u, x), 1)
        return out[0] + out[1].clamp(min=-1e300)

    if captured:
        with capture():
            hessian = torch.autograd.functional.hessian(total, x.nan_to_num(neginf=0.0))
    else:
        hessian = torch.autograd.functional.hessian(total, x.nan_to_num(neginf=0.0))
    p = torch.softmax(x[0], 0)
    expected = torch.zeros(2, 3, 2, 3, dtype=torch.float64)
    expected[0, :, 0, :] = torch.diag(p) - torch.outer(p, p)
    torch.testing.assert_close(hessian, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
def test_captured_logsumexp_keeps_torchs_infinities_and_nan(dtype):
    # captured, the shift is clamped into the finite range rather than
    # tested for infinity: a +inf term, a NaN, a row of -inf and terms at
    # the dtype's largest magnitude come out as torch.logsumexp's
    from quivers.capture import capture
    from quivers.categories.monoid import logsumexp

    big = torch.finfo(dtype).max
    x = torch.tensor([[INF, 1.0, -INF], [math.nan, 0.0, 1.0], [-INF, -INF, -INF], [big, big / 2, -INF],
                      [-big, -big, 0.0], [INF, INF, 0.0]], dtype=dtype, requires_grad=True)
    with capture():
        out = logsumexp(x, 1)
    torch.testing.assert_close(out.detach(), torch.logsumexp(x.detach(), 1), equal_nan=True, rtol=0, atol=0)
