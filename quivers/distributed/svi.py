"""Data-parallel SVI: one process per shard, one all-reduce per step.

``DistributedSVI(model, guide, optimizer, loss, plate="Item")`` runs in
each process of an initialized ``torch.distributed`` process group (gloo
on CPUs, NCCL on GPUs; started by ``torchrun`` or
``torch.multiprocessing``). Each rank scores its :func:`shard` of the
observations (whole groups of a grouped block), with its likelihood
weighted by the number of ranks; the ranks draw the same guide particles
(one seed, shared at construction) and average their gradients and losses
with one all-reduce, so every rank takes the same optimizer step.

Laws
----
- The averaged loss and gradients equal those of :class:`SVI` on the full
  data with the same seed, up to float rounding.
- The parameters of every rank stay bit-identical: each rank applies the
  same reduced gradient to the same starting values.
- A rank that dies or stops answering makes the others raise a
  :class:`~quivers.errors.DistributedError` once the process group's
  timeout has passed, not hang.

Examples
--------
Without a process group the driver says how to start one:

>>> import torch
>>> from quivers.categories import FinSet
>>> from quivers.distributions import Normal
>>> from quivers.programs import Program, sample, observe, var
>>> from quivers.inference import ELBO, AutoNormalGuide
>>> I = FinSet("I", 4)
>>> prog = Program("p", I, I, [sample("mu", None, Normal(0.0, 1.0)),
...                            observe("y", I, Normal(var("mu"), 1.0))])
>>> guide = AutoNormalGuide(prog, observed_names={"y"})
>>> DistributedSVI(prog, guide, torch.optim.Adam(guide.parameters()), ELBO(), plate="I")
Traceback (most recent call last):
...
quivers.errors.DistributedError: DistributedSVI needs an initialized torch.distributed process group; ...
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from quivers.capture import CompileWarning
from quivers.distributed.shard import Shard, shard
from quivers.errors import DistributedError, GradientError, QuiversTypeError
from quivers.inference.elbo import ELBO

__all__ = ["DistributedSVI", "collective"]


def collective(what: str, fn: Callable[[], Any], group: Any = None) -> Any:
    """Run the collective ``fn``; a peer that died or timed out becomes a
    :class:`DistributedError` naming ``what`` (gloo reports both as a
    ``RuntimeError``)."""
    try:
        return fn()
    except (RuntimeError, dist.DistBackendError) as err:
        rank = dist.get_rank(group) if dist.is_initialized() else "?"
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DistributedError(
            f"rank {rank}: the {what} failed: another process died or did not answer within the "
            f"process group's timeout ({first})",
            hint="see the other ranks' logs for the first error; set `timeout=` in "
            "`torch.distributed.init_process_group` to fail sooner",
        ) from None


class DistributedSVI:
    """Pyro-style SVI over the processes of a ``torch.distributed`` group.

    Parameters
    ----------
    model, guide, optimizer, loss
        As for :class:`quivers.inference.SVI`; the same on every rank.
    plate
        The plate of the observations to shard across ranks.
    group
        The process group (the default group when None).
    seed
        The seed of the guide's draws, the same on every rank; when None,
        rank 0 draws one and sends it to the others.

    Examples
    --------
    See the module docstring; ``tests/distributed/`` runs it on 2 processes.
    """

    def __init__(
        self,
        model: Any,
        guide: Any,
        optimizer: torch.optim.Optimizer,
        loss: ELBO,
        plate: str,
        *,
        group: Any = None,
        seed: int | None = None,
    ) -> None:
        if not dist.is_available() or not dist.is_initialized():
            raise DistributedError(
                "DistributedSVI needs an initialized torch.distributed process group; "
                "start the processes with `torchrun` (or torch.multiprocessing) and call "
                "`torch.distributed.init_process_group('gloo', timeout=...)` first",
            )
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise QuiversTypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
        if not hasattr(loss, "differentiable_loss"):
            raise QuiversTypeError(f"loss must be an ELBO, got {type(loss).__name__}")
        if getattr(loss, "jit_compile", False):
            warnings.warn(
                "DistributedSVI steps eagerly: the ELBO's jit_compile compiles SVI.step and fit(method='svi'), "
                "not the data-parallel step, which differentiates each rank's shard itself",
                CompileWarning, stacklevel=2,
            )
        self.model, self.guide, self.optimizer, self.loss = model, guide, optimizer, loss
        self.plate, self.group = plate, group
        self.rank, self.world = dist.get_rank(group), dist.get_world_size(group)
        self._params = [p for g in optimizer.param_groups for p in g["params"]]
        self._shard: tuple[Any, Shard] | None = None
        # one starting point and one stream of particles on every rank
        with torch.no_grad():
            for p in self._params:
                collective("broadcast of the starting parameters", lambda p=p: dist.broadcast(p, 0, group), group)
        if seed is None:
            s = torch.randint(0, 2**62, (1,)) if self.rank == 0 else torch.zeros(1, dtype=torch.long)
            collective("broadcast of the seed", lambda: dist.broadcast(s, 0, group), group)
            seed = int(s)
        torch.manual_seed(seed)

    def shard_of(self, observations: Any) -> Shard:
        """This rank's shard of ``observations`` (computed once per data set)."""
        if self._shard is None or self._shard[0] is not observations:
            self._shard = (observations, shard(self.model, observations, self.plate, self.rank, self.world))
        return self._shard[1]

    def step(self, x: Any = None, observations: Any = None, subsample: Any = None) -> float:
        """One gradient step on every rank; returns ``-ELBO`` of the full
        data (the mean of the ranks' estimates) before it.

        ``observations`` is the full data set on every rank; each rank
        scores its own shard. ``subsample={plate: b}`` draws mini-batches
        of ``b`` rows within a rank's shard, as :meth:`SVI.step` does.
        """
        part = self.shard_of(observations)
        self.optimizer.zero_grad(set_to_none=True)
        surrogate, value = self.loss.differentiable_loss(part.program, self.guide, x, part.observations, subsample)
        surrogate.backward()
        flat = torch.cat(
            [(p.grad if p.grad is not None else torch.zeros_like(p)).detach().reshape(-1).double() for p in self._params]
            + [torch.tensor([value], dtype=torch.float64, device=self._params[0].device if self._params else None)]
        )
        collective("all-reduce of the gradients", lambda: dist.all_reduce(flat, group=self.group), self.group)
        flat /= self.world
        if not math.isfinite(float(flat.sum())):
            raise GradientError("the averaged gradient of the ELBO is not finite on the data-parallel step")
        at = 0
        for p in self._params:
            n = p.numel()
            p.grad = flat[at:at + n].reshape(p.shape).to(p.dtype)
            at += n
        self.optimizer.step()
        return float(flat[-1])
