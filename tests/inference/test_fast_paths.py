"""The shortcuts of the SVI hot path give what the general code gives.

- The layout drops identity affine maps from torch's bijections and skips
  the identity: same values, same log Jacobian.
- ``AutoNormalGuide.forward`` writes the normal out: same draw as
  ``base().rsample`` and the same log density.
- The ELBO scores the guide's draws unchecked and runs the checks only
  when the ELBO is not finite: a bad parameter is still named.
- A run's common batch shape is broadcast in plain Python: the same shape,
  or the same refusal, as ``torch.broadcast_shapes``.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch.distributions import biject_to, constraints

from quivers.categories import FinSet
from quivers.distributions import HalfNormal, Normal
from quivers.errors import InvalidValueError
from quivers.inference import ELBO, SVI, AutoNormalGuide
from quivers.inference.layout import Layout, _simplify
from quivers.programs import Program, let, observe, sample, var
from quivers.programs.data import _broadcast

F64 = torch.float64


@pytest.mark.parametrize(
    "constraint",
    [constraints.positive, constraints.real, constraints.unit_interval, constraints.greater_than(2.0),
     constraints.interval(-1.0, 3.0), constraints.simplex],
)
def test_simplified_bijections_are_the_same_maps(constraint):
    full, short = biject_to(constraint), _simplify(biject_to(constraint))
    u = torch.randn(5, 4, dtype=F64)
    x = full(u)
    torch.testing.assert_close(short(u), x, rtol=0, atol=0)
    torch.testing.assert_close(short.log_abs_det_jacobian(u, x), full.log_abs_det_jacobian(u, x))
    torch.testing.assert_close(short.inv(x), full.inv(x))


def _program() -> Program:
    I, K = FinSet("I", 3), FinSet("K", 2)
    return Program("p", I, I, [
        sample("mu", K, Normal(0.0, 1.0)),
        sample("sd", K, HalfNormal(1.0)),
        sample("b", None, Normal(0.0, 1.0)),
        observe("y", I, Normal(var("b"), 1.0)),
    ])


def test_layout_unpacks_as_the_raw_transforms_do():
    prog = _program()
    layout = Layout(prog.latent_sites({"y"}))
    u = torch.randn(4, layout.dim, dtype=F64, requires_grad=True)
    values, logdet = layout.unpack(u)
    expected = torch.zeros(4, dtype=F64)
    raw = []
    for s in layout.slices:
        t = biject_to(s.site.support())
        part = u[:, s.start: s.start + s.size].reshape((4,) + s.unconstrained_shape)
        torch.testing.assert_close(values[s.name], t(part))
        raw.append(t(part))
        expected = expected + t.log_abs_det_jacobian(part, t(part)).reshape(4, -1).sum(-1)
    torch.testing.assert_close(logdet, expected)
    # the gradients through the one split equal those through a slice per site
    (got,) = torch.autograd.grad(logdet.sum() + sum(v.sum() for v in values.values()), u)
    (want,) = torch.autograd.grad(expected.sum() + sum(v.sum() for v in raw), u)
    torch.testing.assert_close(got, want)


def test_auto_normal_draws_and_scores_as_its_base_distribution():
    torch.set_default_dtype(F64)
    try:
        guide = AutoNormalGuide(_program(), observed_names={"y"})
        with torch.no_grad():
            guide.loc.copy_(torch.randn(guide.dim))
            guide.raw_scale.copy_(torch.randn(guide.dim))
        torch.manual_seed(3)
        draw = guide(6)
        torch.manual_seed(3)
        base = guide.base()
        u = base.rsample((6,))
        values, logdet = guide.layout.unpack(u)
        torch.testing.assert_close(draw.log_q, base.log_prob(u) - logdet)
        for name, v in values.items():
            torch.testing.assert_close(draw.latents[name], v, rtol=0, atol=0)
    finally:
        torch.set_default_dtype(torch.float32)


def test_a_parameter_outside_its_constraint_is_still_named_by_the_elbo():
    I = FinSet("I", 2)
    prog = Program("p", I, I, [
        sample("m", None, Normal(0.0, 1.0)),
        let("s", var("m") - 100.0),  # a negative scale
        observe("y", I, Normal(0.0, var("s"))),
    ])
    guide = AutoNormalGuide(prog, observed_names={"y"})
    svi = SVI(prog, guide, torch.optim.Adam(guide.parameters()), ELBO())
    with pytest.raises(InvalidValueError, match="parameter `scale` of `y`"):
        svi.step(None, {"y": torch.zeros(2)})


@given(st.sets(st.lists(st.integers(1, 3), max_size=3).map(lambda s: torch.Size(s)), max_size=4))
def test_batch_shapes_broadcast_as_torch_broadcasts_them(shapes):
    try:
        expected = torch.broadcast_shapes(*shapes)
    except RuntimeError:
        with pytest.raises(RuntimeError):
            _broadcast(shapes)
    else:
        assert _broadcast(shapes) == expected
