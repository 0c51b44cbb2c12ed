"""Named values: the log-sum-exp over a named axis and its gradient."""

from __future__ import annotations

import math

import torch

from quivers.programs.named import Value, logsumexp


def test_logsumexp_of_all_minus_inf_is_minus_inf_with_zero_gradient_and_torchs_elsewhere():
    t = torch.tensor([[0.5, -1.0, 2.0], [-math.inf, -math.inf, -math.inf], [-math.inf, 0.0, 1.0]],
                     dtype=torch.float64, requires_grad=True)
    out = logsumexp(Value(t, ("N", "z")), "z")
    assert out.dims == ("N",)
    assert float(out.tensor.detach()[1]) == -math.inf
    upstream = torch.tensor([1.5, 2.0, -0.5], dtype=torch.float64)
    (grad,) = torch.autograd.grad(out.tensor, t, upstream)
    assert torch.equal(grad[1], torch.zeros(3, dtype=torch.float64))
    expected = torch.autograd.grad(torch.logsumexp(t[[0, 2]], -1), t, upstream[[0, 2]])[0]
    torch.testing.assert_close(grad[[0, 2]], expected[[0, 2]], rtol=1e-14, atol=1e-14)
    torch.testing.assert_close(out.tensor[[0, 2]], torch.logsumexp(t[[0, 2]], -1))


def test_logsumexp_on_the_cpu_takes_torchs_node_where_every_slice_has_a_finite_term_bit_for_bit():
    # the safe node is what a slice of -inf needs; elsewhere torch's own
    # node gives the same value and gradient, without a Python backward
    from quivers.categories.monoid import _SafeLogSumExp

    g = torch.Generator().manual_seed(0)
    t = torch.randn(3, 4, 5, generator=g, dtype=torch.float64)
    t[0, 1, :4] = -math.inf  # -inf terms, but a finite one in every slice
    t.requires_grad_()
    upstream = torch.randn(3, 5, generator=g, dtype=torch.float64)
    out = logsumexp(Value(t, ("N", "z", "M")), "z")
    assert type(out.tensor.grad_fn).__name__ == "LogsumexpBackward0"
    safe = _SafeLogSumExp.apply(t, 1)
    assert torch.equal(out.tensor, safe)
    assert torch.equal(torch.autograd.grad(out.tensor, t, upstream)[0], torch.autograd.grad(safe, t, upstream)[0])
