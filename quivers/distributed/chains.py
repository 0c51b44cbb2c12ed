"""Chains on separate processes, gathered on rank 0.

``DistributedMCMC(kernel, ...)`` is :class:`~quivers.inference.MCMC` run in
every process of an initialized ``torch.distributed`` group: rank ``r``
runs ``num_chains`` chains from the seed ``seed + r`` (rank 0 draws the
seed and sends it when none is given), and rank 0 gathers every rank's
draws, statistics and warmup divergences, chain after chain in rank
order, then checks convergence over all of them (R-hat across ranks'
chains). The other ranks keep only their own chains and check nothing.

Laws
----
- On rank 0, the chains of rank ``r`` equal, bit for bit, those of a
  single-process ``MCMC`` with seed ``seed + r`` on the same machine.
- A rank that dies or stops answering makes rank 0 raise a
  :class:`~quivers.errors.DistributedError` after the group's timeout.

Examples
--------
>>> from quivers.inference.mcmc import NUTS
>>> kernel = NUTS(potential_fn=lambda z: 0.5 * (z ** 2).sum(-1), dim=1)
>>> DistributedMCMC(kernel, num_warmup=10, num_samples=10).run()
Traceback (most recent call last):
...
quivers.errors.DistributedError: DistributedMCMC needs an initialized torch.distributed process group; ...
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist

from quivers.distributed.svi import collective
from quivers.errors import DistributedError
from quivers.inference.convergence import warn_all
from quivers.inference.mcmc import MCMC

__all__ = ["DistributedMCMC"]


class DistributedMCMC(MCMC):
    """:class:`~quivers.inference.MCMC` with its chains spread over the
    ranks of a process group (see the module).

    Parameters
    ----------
    kernel, num_warmup, num_samples, seed, progress_bar
        As for :class:`~quivers.inference.MCMC`.
    num_chains
        Chains per rank.
    group
        The process group (the default group when None).

    Examples
    --------
    See the module docstring; ``tests/distributed/`` runs it on 2 processes.
    """

    def __init__(self, *args: Any, group: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.group = group
        self._local = False

    def check_convergence(self) -> list[str]:
        # a rank's own chains are not the run: rank 0 checks after gathering
        return [] if self._local else super().check_convergence()

    def run(self, *args: Any, **kwargs: Any) -> None:
        """Sample this rank's chains, then gather all of them on rank 0."""
        if not dist.is_available() or not dist.is_initialized():
            raise DistributedError(
                "DistributedMCMC needs an initialized torch.distributed process group; "
                "start the processes with `torchrun` and call `torch.distributed.init_process_group` first",
            )
        group = self.group
        rank, world = dist.get_rank(group), dist.get_world_size(group)
        base = self.seed
        if base is None:
            s = torch.randint(0, 2**62, (1,)) if rank == 0 else torch.zeros(1, dtype=torch.long)
            collective("broadcast of the seed", lambda: dist.broadcast(s, 0, group), group)
            base = int(s)
        self.seed, self._local = base + rank, True
        try:
            super().run(*args, **kwargs)
        finally:
            self.seed, self._local = base, False
        mine = (self._draws.cpu(), {k: v.cpu() for k, v in self._stats.items()}, self.warmup_divergences)
        parts: list[Any] | None = [None] * world if rank == 0 else None
        collective("gather of the chains", lambda: dist.gather_object(mine, parts, dst=0, group=group), group)
        if rank != 0:
            return
        device = self._draws.device
        self._draws = torch.cat([p[0] for p in parts]).to(device)
        self._stats = {k: torch.cat([p[1][k] for p in parts]).to(device) for k in self._stats}
        self.warmup_divergences = torch.cat([p[2] for p in parts])
        self._samples = None
        self.diagnostics = self.check_convergence()
        warn_all(self.diagnostics)
