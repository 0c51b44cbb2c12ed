"""Drawing constrained latents (``sample mu : K <- Normal(0, 5) [constraint=ordered]``).

Scoring a constrained latent needs nothing new: its density is its
family's, and its values come from the bijection of its constraint
(:mod:`quivers.distributions.bijections`). Drawing one from its prior is
where the constraint matters:

- ``ordered`` and ``positive_ordered``: the family's draws, sorted along the
  last axis. Sorting ``K`` independent draws of one law gives exactly that
  law restricted to the increasing vectors (its order statistics), so the
  parameters may not vary along that axis: a draw then would not follow
  the restricted density, and is refused.
- ``simplex``, ``unit_vector``, ``cholesky_corr`` under ``Flat()``: the
  law whose density is constant in the coordinates the site is scored in,
  the uniform law of the (compact) set: ``Dirichlet(1, ..., 1)``, a
  normalized standard normal vector, and a Cholesky factor ``L`` whose row
  ``i`` has its ``i - 1`` free entries uniform in the unit ball (``L_ii``
  makes the row a unit vector). That last law is not ``LKJCholesky(K, 1)``
  (uniform correlation matrices) once ``K >= 3``: LKJ's density in ``L``'s
  entries is ``prod_i L_ii^(K - i)``, not constant.
- A family restricted to the sphere (``Normal`` under ``unit_vector``) has
  no sampler and is refused.

Examples
--------
>>> import torch
>>> from quivers.categories import FinSet
>>> from quivers.distributions import Flat
>>> from quivers.programs import Program, sample
>>> K = FinSet("K", 3)
>>> p = Program("p", K, K, [sample("w", K, Flat(), constraint="simplex")])
>>> w = p.sample(sample_shape=(4,))["w"]
>>> w.shape, bool(torch.allclose(w.sum(-1), torch.ones(4)))
(torch.Size([4, 3]), True)
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from quivers.errors import UnsupportedError
from quivers.programs.named import Value
from quivers.programs.sites import Site

__all__ = ["draw_constrained"]


def draw_constrained(site: Site, params: Mapping[str, Value], batch_shape: torch.Size, ref: torch.Tensor) -> Value | None:
    """A prior draw of the constrained latent ``site``, or None when the
    family's own draw serves (sorted afterwards for the ordered constraints)."""
    c, fam = site.constraint, site.family
    axis = site.dims[-1]
    if c in ("ordered", "positive_ordered"):
        varying = [k for k, v in params.items() if axis in v.dims]
        if varying:
            raise UnsupportedError(
                f"cannot draw `{site.name}` [constraint={c}] from its prior: its parameters {varying} vary along "
                f"`{axis}`, and only draws of one law, sorted, follow the law restricted to increasing vectors",
                hint="give every element of the vector the same prior",
            )
        return None
    if fam.name != "Flat":
        if c == "unit_vector":
            raise UnsupportedError(
                f"cannot draw `{site.name}`: {fam.name} restricted to the unit sphere has no sampler",
                hint="give it a Flat() prior (the uniform law on the sphere), or a value",
            )
        return None  # Dirichlet and LKJCholesky draw their own sets
    shape = batch_shape + torch.Size(site.shape)
    opts = {"dtype": ref.dtype if ref.is_floating_point() else torch.get_default_dtype(), "device": ref.device}
    if c == "simplex":
        x = torch.distributions.Dirichlet(torch.ones(shape, **opts)).sample()
    elif c == "unit_vector":
        g = torch.randn(shape, **opts)
        x = g / torch.linalg.vector_norm(g, dim=-1, keepdim=True)
    else:  # cholesky_corr
        x = _flat_cholesky(shape, opts)
    return Value(x, site.dims)


def _flat_cholesky(shape: torch.Size, opts: dict) -> torch.Tensor:
    """Lower Cholesky factors of correlation matrices, of shape ``shape``
    (``(..., K, K)``), drawn from the density constant in their strictly
    lower entries (the measure their bijection's log Jacobian refers to):
    row ``i`` is ``(x, sqrt(1 - |x|^2), 0, ...)`` with ``x`` uniform in the
    unit ball of dimension ``i`` (a uniform direction, radius ``U^(1/i)``)."""
    lead, k = shape[:-2], shape[-1]
    rows = [torch.nn.functional.pad(torch.ones(lead + (1,), **opts), (0, k - 1))]
    for i in range(1, k):
        g = torch.randn(lead + (i,), **opts)
        x = g / torch.linalg.vector_norm(g, dim=-1, keepdim=True) * torch.rand(lead + (1,), **opts) ** (1.0 / i)
        diag = (1 - (x * x).sum(-1, keepdim=True)).clamp(min=0).sqrt()
        rows.append(torch.nn.functional.pad(torch.cat([x, diag], -1), (0, k - 1 - i)))
    return torch.stack(rows, -2)
