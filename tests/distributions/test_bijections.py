"""The bijections of the constrained latents: each maps the real line onto
its set, inverts, and has the log Jacobian autograd computes (float64)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.autograd.functional import jacobian
from torch.distributions import biject_to

from quivers.distributions import CONSTRAINTS


def _transform(name: str):
    return biject_to(CONSTRAINTS[name].constraint)


def _autograd_log_det(name: str, x: torch.Tensor, k: int) -> torch.Tensor:
    """``log |det J|`` of the map at ``x`` by autograd: the square Jacobian's,
    the simplex's in its first ``K - 1`` coordinates, the correlation
    factor's in its strictly lower entries, the sphere's as the volume
    factor ``1/2 log det(J^T J)`` of the embedding."""
    t = _transform(name)
    if name == "cholesky_corr":
        rows, cols = torch.tril_indices(k, k, -1)
        J = jacobian(lambda u: t(u)[rows, cols], x)
    elif name == "simplex":
        J = jacobian(lambda u: t(u)[: k - 1], x)
    else:
        J = jacobian(t, x)
    if name == "unit_vector":
        return 0.5 * torch.linalg.slogdet(J.T @ J).logabsdet
    return torch.linalg.slogdet(J).logabsdet


@pytest.mark.parametrize("name", sorted(CONSTRAINTS))
@settings(max_examples=25, deadline=None)
@given(k=st.integers(2, 5), seed=st.integers(0, 2**31 - 1), scale=st.sampled_from([0.1, 1.0, 3.0]))
def test_log_jacobian_is_autograds(name, k, seed, scale):
    t = _transform(name)
    if name == "cholesky_corr":
        # The correlation factor's entries are tanh's of x: at 3 standard
        # deviations they lie within 1e-5 of 1, where atanh and the stick
        # remainders lose six digits of float64 to conditioning alone.
        scale = min(scale, 1.0)
    tol = 1e-6 if name == "cholesky_corr" else 1e-8
    shape = (k, k) if CONSTRAINTS[name].event_rank == 2 else (k,)
    gen = torch.Generator().manual_seed(seed)
    x = scale * torch.randn(tuple(t.inverse_shape(torch.Size(shape))), generator=gen, dtype=torch.float64)
    y = t(x)
    assert bool(CONSTRAINTS[name].constraint.check(y).all())
    torch.testing.assert_close(t.inv(y), x, rtol=tol, atol=tol)
    torch.testing.assert_close(t.log_abs_det_jacobian(x, y), _autograd_log_det(name, x, k), rtol=tol / 10, atol=tol / 10)


@pytest.mark.parametrize("name", sorted(CONSTRAINTS))
def test_batched_maps_agree_with_one_at_a_time(name):
    t = _transform(name)
    shape = (3, 3) if CONSTRAINTS[name].event_rank == 2 else (3,)
    x = torch.randn((4, 2) + tuple(t.inverse_shape(torch.Size(shape))), dtype=torch.float64)
    y, ladj = t(x), t.log_abs_det_jacobian(x, t(x))
    assert ladj.shape == (4, 2)
    torch.testing.assert_close(y[1, 0], t(x[1, 0]))
    torch.testing.assert_close(ladj[3, 1], t.log_abs_det_jacobian(x[3, 1], y[3, 1]))


def test_the_checks_reject_what_lies_outside():
    c = {n: s.constraint for n, s in CONSTRAINTS.items()}
    assert not bool(c["ordered"].check(torch.tensor([1.0, 1.0])))
    assert bool(c["ordered"].check(torch.tensor([-2.0, 1.0])))
    assert not bool(c["positive_ordered"].check(torch.tensor([-2.0, 1.0])))
    assert not bool(c["unit_vector"].check(torch.tensor([0.6, 0.7])))
    assert bool(c["unit_vector"].check(torch.tensor([0.6, 0.8])))
