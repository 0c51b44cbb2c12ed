"""The autograd graph behind a tensor, for structural tests (what a
computation did, independently of how long it took)."""

from __future__ import annotations

import torch


def autograd_nodes(t: torch.Tensor) -> list:
    """Every autograd node ``t`` was computed through, each once."""
    seen: dict = {}
    stack = [t.grad_fn]
    while stack:
        f = stack.pop()
        if f is None or f in seen:
            continue
        seen[f] = None
        stack.extend(n for n, _ in f.next_functions)
    return list(seen)
