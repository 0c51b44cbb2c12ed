"""Whether a computation is being captured as a graph of tensor operations.

Eager code on the CPU may read a tensor on the host to choose the cheaper
of two equal computations (skip a mask that changes nothing, take a fast
path when no value is zero). A captured graph is replayed for other values
and cannot keep such a choice, so while :func:`capture` is active those
sites take the branch that is right for every value, and torch's
validation of distribution arguments and values is off: it raises on a
parameter outside its constraint, which a graph cannot record; captured,
such a parameter gives a NaN log density instead, which a Hamiltonian
sampler treats as a divergence (as Stan rejects the proposal).

Examples
--------
>>> capturing()
False
>>> with capture():
...     capturing()
True
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import torch
from torch.distributions import Distribution

__all__ = ["capture", "capturing", "may_read"]

_CAPTURING: ContextVar[bool] = ContextVar("quivers_capturing", default=False)


def capturing() -> bool:
    """Whether a :func:`capture` block is active."""
    return _CAPTURING.get()


@contextmanager
def capture() -> Iterator[None]:
    """Mark the block as captured: host reads that only choose a shortcut,
    and torch's argument validation, are off."""
    token = _CAPTURING.set(True)
    validate = Distribution._validate_args
    Distribution.set_default_validate_args(False)
    try:
        yield
    finally:
        Distribution.set_default_validate_args(validate)
        _CAPTURING.reset(token)


def may_read(t: torch.Tensor) -> bool:
    """Whether reading ``t`` on the host to pick a shortcut is allowed: it
    lives on the CPU (a read does not wait for a device) and nothing is
    being captured.

    Examples
    --------
    >>> may_read(torch.zeros(2))
    True
    """
    return t.is_cpu and not _CAPTURING.get()
