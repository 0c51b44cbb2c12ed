"""Closed-form log densities of the common continuous families.

Building a :class:`torch.distributions.Distribution` to score one value
costs more than the arithmetic for small tensors (argument broadcasting,
object construction), and a program scores every site on every call. For
the families below, :attr:`FamilySpec.log_prob` holds the log density
written with the same torch operations, in the same order, as the
``log_prob`` of the torch class, so the two agree to the last bit (up to
broadcasting, which happens here inside the arithmetic);
``torch.distributions`` stays the source of truth, and the tests compare
the two. One exception buys speed: a scale that is fixed (not learned: a literal
of the program, as in ``HalfNormal(1.0)``, or data) has the constant
parts of the Normal and Cauchy families folded once, ``c - k x^2`` with
``k = 1 / (2 s^2)`` (one ``addcmul`` for a scalar scale), which agrees
with torch to rounding.

Laws
----
- ``LOG_PROB[name](params, x) == FAMILIES[name].build(params).log_prob(x)``
  for parameters inside their constraints and any value (``-inf`` outside
  the support of the half families); to rounding when the scale is
  fixed (does not require grad).

Examples
--------
>>> import torch
>>> p = {"loc": torch.tensor([0.0, 1.0]), "scale": torch.tensor([1.0, 2.0])}
>>> x = torch.tensor([0.5, -1.0])
>>> bool((LOG_PROB["Normal"](p, x) == torch.distributions.Normal(**p).log_prob(x)).all())
True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import torch
from torch import Tensor

__all__ = ["LOG_PROB"]

_HALF_LOG_2PI = math.log(math.sqrt(2 * math.pi))
_LOG_2 = math.log(2)
_LOG_PI = math.log(math.pi)


_FOLDED: dict[tuple, tuple] = {}
_FOLD_LIMIT = 1024  # elements: a fixed scale with more is not kept


def _fixed(t: Tensor) -> bool:
    """Whether the terms derived from ``t`` may be kept: a small tensor
    that is not learned (a program's literal, a constant, fixed data)."""
    return not t.requires_grad and t.numel() <= _FOLD_LIMIT and not t.is_inference()


def _folded(t: Tensor, shift: float, family: str) -> tuple[float | Tensor, Tensor]:
    """``(k, c)``, the constant parts of a density with the fixed scale
    ``t``, made once per tensor (a tensor written in place is seen by its
    version): for ``"normal"`` the log density is ``c - k x^2``, with
    ``k = 1 / (2 t^2)`` and ``c = shift - log t - log sqrt(2 pi)``; for
    ``"cauchy"`` it is ``c - log1p((k x)^2)``, with ``k = 1 / t`` and
    ``c = shift - log pi - log t``. ``k`` is a float for a scalar ``t``.

    A program's numeric constants are 0-dimensional tensors made once (see
    :func:`quivers.programs.expr._scalar`), so a prior such as
    ``HalfNormal(1.0)`` would otherwise repeat the operations on its scale
    in every call; fixed data (the ``sigma`` of eight schools) likewise.
    """
    key = (_where(t), shift, family)
    hit = _FOLDED.get(key)
    if hit is None:
        base = _HALF_LOG_2PI if family == "normal" else _LOG_PI
        with torch.no_grad():
            c = shift - base - t.log()
            k = 1.0 / (2.0 * t * t) if family == "normal" else 1.0 / t
        hit = _keep(key, t, float(k) if t.dim() == 0 else k, c)
    return hit[1], hit[2]


def _where(t: Tensor) -> tuple:
    """The memory ``t`` reads and its version: a view laid out anew on
    every call of a program has the same key as long as its values are
    the same (the entry holds the tensor, so the memory is not reused)."""
    return (t.data_ptr(), t.shape, t.stride(), t.dtype, t.device, t._version)


def _keep(key: tuple, t: Tensor, *terms) -> tuple:
    """Keep ``terms`` of ``t`` under ``key``, unless ``t`` is a view into
    much larger memory, which the entry would keep alive."""
    entry = (t, *terms)
    if t.untyped_storage().nbytes() <= 8 * _FOLD_LIMIT:
        if len(_FOLDED) > 256:
            _FOLDED.clear()
        _FOLDED[key] = entry
    return entry


def _is_zero(t: Tensor) -> bool:
    """Whether ``t`` is a fixed scalar zero (a location that is no shift)."""
    if t.dim() != 0 or not _fixed(t):
        return False
    key = (_where(t), 0.0, "zero")
    hit = _FOLDED.get(key)
    if hit is None:
        hit = _keep(key, t, bool(t == 0))
    return hit[1]


def _normal(loc: Tensor | None, scale: Tensor, x: Tensor, shift: float = 0.0) -> Tensor:
    """Normal's log density plus the constant ``shift``."""
    if loc is not None and not _is_zero(loc):
        x = x - loc  # x - 0 is x, to the bit: a constant zero is skipped
    if _fixed(scale):  # c - k x^2: one or two operations
        k, c = _folded(scale, shift, "normal")
        if isinstance(k, float):
            return torch.addcmul(c, x, x, value=-k)
        return c - k * x.square()
    lp = -(x**2) / (2 * scale**2) - scale.log() - _HALF_LOG_2PI
    return lp + shift if shift else lp


def normal(p: Mapping[str, Tensor], x: Tensor) -> Tensor:
    return _normal(p["loc"], p["scale"], x)


def _on_half_line(x: Tensor, lp: Tensor) -> Tensor:
    """``lp`` where ``x >= 0`` and ``-inf`` elsewhere (NaN included), as the
    half families of torch write it. The mask is applied only when some
    value is off the half line: on the CPU a check without autograd costs
    less than the ``where`` node every call would otherwise carry, and
    inference engines, whose draws come through ``exp``, never take it. On
    an accelerator the check would wait for the device; the mask does not."""
    inside = x >= 0
    if x.is_cpu and bool(inside.all()):
        return lp
    return torch.where(inside, lp, -math.inf)


def half_normal(p: Mapping[str, Tensor], x: Tensor) -> Tensor:
    return _on_half_line(x, _normal(None, p["scale"], x, _LOG_2))


def log_normal(p: Mapping[str, Tensor], x: Tensor) -> Tensor:
    y = x.log()
    return -y + _normal(p["loc"], p["scale"], y)


def _cauchy(loc: Tensor | None, scale: Tensor, x: Tensor, shift: float = 0.0) -> Tensor:
    """Cauchy's log density plus the constant ``shift``."""
    if loc is not None and not _is_zero(loc):
        x = x - loc
    if _fixed(scale):  # c - log1p((k x)^2)
        k, c = _folded(scale, shift, "cauchy")
        return c - (x * k).square().log1p()
    lp = -_LOG_PI - scale.log() - ((x / scale) ** 2).log1p()
    return lp + shift if shift else lp


def cauchy(p: Mapping[str, Tensor], x: Tensor) -> Tensor:
    return _cauchy(p["loc"], p["scale"], x)


def half_cauchy(p: Mapping[str, Tensor], x: Tensor) -> Tensor:
    return _on_half_line(x, _cauchy(None, p["scale"], x, _LOG_2))


def laplace(p: Mapping[str, Tensor], x: Tensor) -> Tensor:
    scale = p["scale"]
    return -torch.log(2 * scale) - torch.abs(x - p["loc"]) / scale


def exponential(p: Mapping[str, Tensor], x: Tensor) -> Tensor:
    rate = p["rate"]
    return rate.log() - rate * x


def gamma(p: Mapping[str, Tensor], x: Tensor) -> Tensor:
    a, rate = p["concentration"], p["rate"]
    return torch.xlogy(a, rate) + torch.xlogy(a - 1, x) - rate * x - torch.lgamma(a)


def student_t(p: Mapping[str, Tensor], x: Tensor) -> Tensor:
    df, loc, scale = p["df"], p["loc"], p["scale"]
    y = (x - loc) / scale
    z = scale.log() + 0.5 * df.log() + 0.5 * math.log(math.pi) + torch.lgamma(0.5 * df) - torch.lgamma(0.5 * (df + 1.0))
    return -0.5 * (df + 1.0) * torch.log1p(y**2.0 / df) - z


def flat(p: Mapping[str, Tensor], x: Tensor) -> Tensor:
    """Stan's implicit prior: log density 0 everywhere (improper)."""
    return torch.zeros_like(x)


def half_flat(p: Mapping[str, Tensor], x: Tensor) -> Tensor:
    """0 on the half line ``x >= 0``, ``-inf`` elsewhere (improper)."""
    return _on_half_line(x, torch.zeros_like(x))


LOG_PROB: dict[str, Callable[[Mapping[str, Tensor], Tensor], Tensor]] = {
    "Normal": normal,
    "HalfNormal": half_normal,
    "LogNormal": log_normal,
    "Cauchy": cauchy,
    "HalfCauchy": half_cauchy,
    "Laplace": laplace,
    "Exponential": exponential,
    "Gamma": gamma,
    "StudentT": student_t,
    "Flat": flat,
    "HalfFlat": half_flat,
}
"""Closed-form log densities by family name."""
