"""An SVI step on the seed mixture is the ELBO step written out, exactly.

The step's fast paths (the planned log joint, the fused mixture kernel,
the one-particle loss as a view, FusedAdam's lean step) must not move a
seeded fit: in float64 every loss and every parameter after each step
equals, bit for bit, the step computed through the unplanned log joint
(``Program.log_joint``) and torch's own ``Adam(fused=True).step()``.
"""

from __future__ import annotations

import torch

from quivers.inference import ELBO, SVI, AutoNormalGuide
from quivers.inference.optim import FusedAdam
from tests.programs.models import seed_mixture


def _reference_step(model, guide, opt, y):
    opt.zero_grad(set_to_none=True)
    draw = guide(1)
    neg = (draw.log_q - model.log_joint(None, {"y": y}, draw.latents)).mean()
    neg.backward()
    opt.step()
    return neg.item()


def test_svi_steps_equal_the_unplanned_elbo_step_bit_for_bit_in_float64():
    runs = []
    for fast in (True, False):
        model, obs = seed_mixture(60)
        model, y = model.double(), obs["y"].double()
        torch.manual_seed(0)
        guide = AutoNormalGuide(model, observed_names={"y"}).double()
        params = list(guide.parameters())
        torch.manual_seed(3)
        if fast:
            svi = SVI(model, guide, FusedAdam(params, lr=0.02), ELBO())
            losses = [svi.step(None, {"y": y}) for _ in range(30)]
        else:
            opt = torch.optim.Adam(params, lr=0.02, fused=True)
            losses = [_reference_step(model, guide, opt, y) for _ in range(30)]
        runs.append((losses, guide.loc.detach().clone(), guide.raw_scale.detach().clone()))
    assert runs[0][0] == runs[1][0]
    assert torch.equal(runs[0][1], runs[1][1]) and torch.equal(runs[0][2], runs[1][2])
