"""Relaxed one-hot values of Categorical latents (Gumbel-softmax, Concrete).

A sampled Categorical latent ``z`` with ``K`` values may be given a
*relaxed* value: a point ``y`` of the probability simplex over its values
(a draw of ``RelaxedOneHotCategorical``, Maddison, Mnih & Teh 2017; Jang,
Gu & Poole 2017), wrapped in :class:`Relaxed`. The program then reads it
as the convex combination of the integer values it stands for, and the
density stays differentiable in ``y``:

- **indexing** ``x[z]`` along a ``K``-axis is ``sum_k y_k x[k]`` (the
  gather becomes a contraction, so ``mu[z]`` is a weighted mean of the
  component means and the body runs once, not ``K`` times);
- **scoring** ``z`` at its Categorical site is ``sum_k y_k log pi_k``, the
  expected log probability under the one-hot vector (linear in ``y``).

Laws
----
- At a vertex of the simplex (a one-hot ``y = e_k``) both rules give
  exactly what the integer value ``k`` gives: ``x[e_k] = x[k]`` and the
  score is ``log pi_k``. Hence, as the temperature of the relaxation goes
  to zero, the relaxed log joint tends to the discrete one.
- Any other use of a relaxed value (arithmetic, a comparison, a reduction,
  the program's return value) has no convex reading and is a
  :class:`~quivers.errors.QuiversTypeError`.

Examples
--------
>>> import torch
>>> from quivers.categories import FinSet
>>> from quivers.distributions import Categorical, Normal
>>> from quivers.programs import Program, const, observe, sample, var
>>> K, I = FinSet("K", 2), FinSet("I", 1)
>>> prog = Program("p", I, I, [
...     sample("z", None, Categorical(const(torch.tensor([0.25, 0.75]), K))),
...     observe("y", I, Normal(const(torch.tensor([-1.0, 1.0]), K)[var("z")], 1.0))])
>>> hard = prog.log_joint(None, {"y": torch.tensor([1.0])}, {"z": torch.tensor(1)})
>>> soft = prog.log_joint(None, {"y": torch.tensor([1.0])}, {"z": Relaxed(torch.tensor([0.0, 1.0]))})
>>> bool(torch.isclose(hard, soft))
True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch.distributions import constraints

from quivers.errors import DataError, QuiversTypeError, ShapeError
from quivers.programs.named import Value, align, rename, to_layout

if TYPE_CHECKING:  # sites imports expr, which imports this module
    from quivers.programs.sites import Site

__all__ = ["Relaxed", "RelaxedValue", "relaxed_value", "soft_index", "relaxed_log_prob", "num_categories"]

ONEHOT = "__onehot"
"""The name of the category axis of a relaxed value."""


@dataclass(frozen=True)
class Relaxed:
    """A relaxed one-hot value for a Categorical latent, given in
    ``latents``: a tensor of shape ``batch + site shape + (K,)`` whose last
    axis lies on the probability simplex over the site's ``K`` values."""

    tensor: torch.Tensor

    def __post_init__(self) -> None:
        if not isinstance(self.tensor, torch.Tensor):
            raise QuiversTypeError(f"a relaxed value must be a tensor, got {type(self.tensor).__name__}")


@dataclass(frozen=True, slots=True)
class RelaxedValue(Value):
    """A relaxed value in a program's environment: its last named axis is
    the category axis ``__onehot``; ``values_in`` names the set of the
    values it relaxes."""


def num_categories(site: Site) -> int:
    """How many values the Categorical latent ``site`` takes."""
    if site.num_values is not None:
        return int(site.num_values)
    support = site.support()
    if isinstance(support, constraints.integer_interval):
        return int(support.upper_bound) - int(support.lower_bound) + 1
    raise QuiversTypeError(f"latent `{site.name}` has no finite set of values to relax")


def relaxed_value(site: Site, value: Relaxed, check: bool = True) -> RelaxedValue:
    """The environment value of ``site`` for a relaxed ``value``: only a
    sampled Categorical latent can be relaxed, the trailing shape must be
    the site's shape and its number of values, and (with ``check``) the
    entries finite, non-negative and summing to one."""
    family = site.family.name if site.family is not None else None
    if site.kind != "latent" or family != "Categorical":
        what = f"a latent with a {family} prior" if site.kind == "latent" else f"no sampled latent (a `{site.kind}` site)"
        raise QuiversTypeError(
            f"`{site.name}` is {what}; only sampled Categorical latents take relaxed values",
            hint="give it an integer value, or marginalize it",
        )
    t = value.tensor
    k = num_categories(site)
    want = tuple(site.shape) + (k,)
    if t.dim() < len(want) or tuple(t.shape[t.dim() - len(want):]) != want:
        raise ShapeError(
            f"relaxed value of `{site.name}` has shape {tuple(t.shape)}; it needs trailing shape {want} "
            f"(the site's shape and its {k} values)"
        )
    if not torch.is_floating_point(t):
        raise DataError(f"relaxed value of `{site.name}` must be floating point, got dtype {t.dtype}")
    if check:
        d = t.detach()
        tol = 1e-4 if d.dtype == torch.float64 else 1e-3
        bad = ~torch.isfinite(d).all(-1) | (d < 0).any(-1) | ((d.sum(-1) - 1).abs() > tol)
        if bool(bad.any()):
            i = tuple(int(j) for j in torch.nonzero(bad)[0])
            raise DataError(
                f"relaxed value of `{site.name}` is not on the probability simplex at index {i}: "
                f"{d[i].tolist()}"
            )
    return RelaxedValue(t, site.dims + (ONEHOT,), values_in=site.values_in)


def soft_index(x: Value, y: RelaxedValue, axis: str) -> Value:
    """``x[y]`` along ``axis`` for a relaxed ``y``: ``sum_k y_k x[k]``, on
    the union of ``x``'s other axes and ``y``'s site axes."""
    if ONEHOT in x.dims:
        raise ShapeError(f"cannot index a relaxed value's categories again along `{axis}`")
    k = y.tensor.shape[-1]
    if x.size(axis) != k:
        raise ShapeError(f"cannot index axis `{axis}` of size {x.size(axis)} by a relaxed value over {k} values")
    xs = rename(x, axis, ONEHOT)
    (xt, yt), dims, batch = align([xs, Value(y.tensor, y.dims)])
    if not torch.is_floating_point(xt):
        xt = xt.to(yt.dtype)
    out = (xt * yt).sum(batch + dims.index(ONEHOT))
    return Value(out, tuple(d for d in dims if d != ONEHOT))


def relaxed_log_prob(site: Site, log_probs: torch.Tensor, axes: tuple[str, ...], batch: int, y: RelaxedValue) -> Value:
    """``sum_k y_k log pi_k`` at a Categorical site: ``log_probs`` holds the
    normalized ``log pi`` with ``batch`` batch axes, then ``axes``, then
    the categories. A category of probability zero given no weight scores
    ``0 * log 0 = 0``, as the integer value would never pick it."""
    b = max(batch, y.batch_ndim)
    lp = log_probs.reshape((1,) * (b - batch) + tuple(log_probs.shape))
    yt = to_layout(y, b, axes + (ONEHOT,))
    tiny = torch.finfo(lp.dtype).min
    out = (yt * lp.clamp(min=tiny)).sum(-1)
    return Value(out, axes)

