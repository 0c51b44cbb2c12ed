"""torch's fused Adam, stepped without the optimizer's per-call machinery.

A step of :class:`torch.optim.Adam` with ``fused=True`` is one kernel for
every parameter (``torch._fused_adam_``) after one increment of the step
counters; around it, ``Optimizer.step`` runs a profiler range, the hooks,
a rebuild of the lists of parameters, gradients and moments, and a
grouping of them by device and dtype, every call. On a small model
(the seed mixture at N=500 takes a half millisecond a step) that
bookkeeping costs more than the kernel. :class:`FusedAdam` is that
optimizer with two lean entry points for a training loop, which
:class:`~quivers.inference.SVI` uses: :meth:`FusedAdam.clear_grads` and
:meth:`FusedAdam.fused_step`, the latter calling the same kernel with the
same arguments on lists it keeps between steps.

Laws
----
- ``fused_step()`` moves the parameters and the optimizer's state exactly
  as ``step()`` does, bit for bit (the same kernel on the same tensors).
- Whenever the lean path cannot stand for ``step()`` (hooks of
  the optimizer or global ones, a learning-rate scheduler's wrapper on
  the instance, several groups, parameters of several devices or dtypes,
  a parameter without a gradient, amsgrad, a gradient scaler's
  attributes, or the state not yet made by a first step), it calls
  ``step()``.

Examples
--------
>>> import torch
>>> w = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
>>> opt = FusedAdam([w], lr=0.1)
>>> for _ in range(3):
...     opt.clear_grads()
...     (w * w).sum().backward()
...     opt.fused_step()
>>> bool((w.abs() < torch.tensor([1.0, 2.0])).all())
True
"""

from __future__ import annotations

from typing import Any

import torch
from torch.optim import optimizer as _optimizer

__all__ = ["FusedAdam"]


class FusedAdam(torch.optim.Adam):
    """:class:`torch.optim.Adam` with ``fused=True`` (see the module's laws).

    Parameters
    ----------
    params
        The parameters to optimize (or parameter groups).
    lr
        The learning rate.
    **kwargs
        The other options of :class:`torch.optim.Adam`.

    Examples
    --------
    >>> import torch
    >>> w = torch.nn.Parameter(torch.zeros(2))
    >>> opt = FusedAdam([w], lr=0.01)
    >>> opt.defaults["fused"]
    True
    """

    def __init__(self, params: Any, lr: float = 1e-3, **kwargs: Any) -> None:
        super().__init__(params, lr=lr, fused=True, **kwargs)
        # (params, exp_avgs, exp_avg_sqs, steps) of the one group, made at
        # the first lean step after step() has made the state
        self._lists: tuple[list[torch.Tensor], ...] | None = None

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self._lists = None  # the moments are new tensors

    def clear_grads(self) -> None:
        """``zero_grad(set_to_none=True)`` without its profiler range."""
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None

    def fused_step(self) -> None:
        """One step, as ``step()`` takes it (see the module's laws)."""
        lists = self._lean_lists()
        if lists is None:
            self.step()
            return
        params, exp_avgs, exp_avg_sqs, steps = lists
        grads = [p.grad for p in params]
        if any(g is None or g.is_sparse for g in grads):
            self.step()
            return
        group = self.param_groups[0]
        beta1, beta2 = group["betas"]
        with torch.no_grad():
            torch._foreach_add_(steps, 1)
            torch._fused_adam_(
                params, grads, exp_avgs, exp_avg_sqs, [], steps,
                amsgrad=False, lr=group["lr"], beta1=beta1, beta2=beta2,
                weight_decay=group["weight_decay"], eps=group["eps"], maximize=group["maximize"],
                grad_scale=None, found_inf=None,
            )

    def _lean_lists(self) -> tuple[list[torch.Tensor], ...] | None:
        """The lists the kernel takes, or None where only ``step()`` will do."""
        if (len(self.param_groups) != 1 or "step" in self.__dict__  # a scheduler's wrapper counts calls
                or self._optimizer_step_pre_hooks or self._optimizer_step_post_hooks
                or _optimizer._global_optimizer_pre_hooks or _optimizer._global_optimizer_post_hooks
                or getattr(self, "grad_scale", None) is not None or getattr(self, "found_inf", None) is not None):
            return None
        group = self.param_groups[0]
        # (torch before 2.7 has no decoupled_weight_decay option)
        if group["amsgrad"] or group.get("decoupled_weight_decay") or group["differentiable"] or not group["fused"]:
            return None
        params = group["params"]
        lists = self._lists
        if lists is not None and len(lists[0]) == len(params) and all(a is b for a, b in zip(lists[0], params)):
            return lists
        states = [self.state.get(p) for p in params]
        if not params or any(not s for s in states):
            return None  # step() makes the state at the first step
        if len({(p.device, p.dtype) for p in params}) != 1:
            return None  # step() groups them by device and dtype
        self._lists = (list(params), [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states],
                       [s["step"] for s in states])
        return self._lists
