"""FusedAdam's lean step is torch's fused Adam step, bit for bit."""

from __future__ import annotations

import copy

import pytest
import torch

from quivers.inference.optim import FusedAdam


def _pair(dtype):
    g = torch.Generator().manual_seed(0)
    shapes = [(3,), (2, 4), ()]
    init = [torch.randn(s, generator=g, dtype=dtype) for s in shapes]
    a = [torch.nn.Parameter(t.clone()) for t in init]
    b = [torch.nn.Parameter(t.clone()) for t in init]
    return a, b, g


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fused_step_equals_torch_fused_adam_bit_for_bit(dtype):
    a, b, g = _pair(dtype)
    ours = FusedAdam(a, lr=0.05, weight_decay=0.01, betas=(0.8, 0.95))
    theirs = torch.optim.Adam(b, lr=0.05, weight_decay=0.01, betas=(0.8, 0.95), fused=True)
    for i in range(30):
        grads = [torch.randn(p.shape, generator=g, dtype=dtype) for p in a]
        ours.clear_grads()
        theirs.zero_grad(set_to_none=True)
        for p, q, gr in zip(a, b, grads):
            p.grad, q.grad = gr.clone(), gr.clone()
        ours.fused_step()
        theirs.step()
        if i == 10:  # the learning rate read at every step
            ours.param_groups[0]["lr"] = theirs.param_groups[0]["lr"] = 0.01
        for p, q in zip(a, b):
            assert torch.equal(p, q)
            for key in ("exp_avg", "exp_avg_sq", "step"):
                assert torch.equal(ours.state[p][key], theirs.state[q][key])


def test_fused_step_falls_back_to_step_where_the_lean_path_cannot_stand_for_it():
    a, b, g = _pair(torch.float32)
    ours = FusedAdam(a, lr=0.1)
    calls = []
    ours.register_step_post_hook(lambda opt, args, kwargs: calls.append(1))
    for p in a:
        p.grad = torch.ones_like(p)
    ours.fused_step()  # the first step makes the state; the hook runs
    ours.fused_step()  # with a hook registered, every step goes through step()
    assert calls == [1, 1]
    saved = copy.deepcopy(ours.state_dict())  # torch's state_dict shares the step counters
    fresh = FusedAdam(b, lr=0.1)
    for p in b:
        p.grad = torch.ones_like(p)
    fresh.fused_step()
    fresh.load_state_dict(saved)  # new moments: the lean lists are made again
    fresh.fused_step()
    assert torch.equal(fresh.state[b[0]]["step"], torch.tensor(3.0))
    a[0].grad = None  # a parameter without a gradient: step() skips it, as torch's does
    ours.fused_step()
    assert torch.equal(ours.state[a[0]]["step"], torch.tensor(2.0))


def test_a_learning_rate_scheduler_sees_the_steps(recwarn):
    w = torch.nn.Parameter(torch.zeros(2))
    opt = FusedAdam([w], lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    for _ in range(2):
        w.grad = torch.ones(2)
        opt.fused_step()  # through the scheduler's wrapper of step()
        sched.step()
    assert opt.param_groups[0]["lr"] == 0.025
    assert not [w for w in recwarn if "lr_scheduler.step()" in str(w.message)]
