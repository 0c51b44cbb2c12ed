"""Data-parallel inference on ``torch.distributed``: each process scores
its shard of the observation plate (whole groups of a grouped block), and
the processes average their gradients with one all-reduce per step; MCMC chains run on separate processes
and are gathered on rank 0."""

from quivers.distributed.chains import DistributedMCMC
from quivers.distributed.shard import Shard, shard, shard_rows
from quivers.distributed.svi import DistributedSVI, collective

__all__ = ["DistributedMCMC", "DistributedSVI", "Shard", "collective", "shard", "shard_rows"]
