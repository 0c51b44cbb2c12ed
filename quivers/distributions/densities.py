"""Closed-form log densities of the common continuous families.

Building a :class:`torch.distributions.Distribution` to score one value
costs more than the arithmetic for small tensors (argument broadcasting,
object construction), and a program scores every site on every call. For
the families below, :attr:`FamilySpec.log_prob` holds the log density
written with the same torch operations, in the same order, as the
``log_prob`` of the torch class, so the two agree to the last bit (up to
broadcasting, which happens here inside the arithmetic), and a program
computes the same numbers with either; ``torch.distributions`` stays the
source of truth, and the tests compare the two.

Laws
----
- ``LOG_PROB[name](params, x) == FAMILIES[name].build(params).log_prob(x)``
  for parameters inside their constraints and any value (``-inf`` outside
  the support of the half families).

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


def _normal(loc: Tensor | None, scale: Tensor, x: Tensor) -> Tensor:
    d = x if loc is None else x - loc  # x - 0 is x, to the bit
    return -(d**2) / (2 * scale**2) - scale.log() - _HALF_LOG_2PI


def normal(p: Mapping[str, Tensor], x: Tensor) -> Tensor:
    return _normal(p["loc"], p["scale"], x)


def half_normal(p: Mapping[str, Tensor], x: Tensor) -> Tensor:
    lp = _normal(None, p["scale"], x) + _LOG_2
    return torch.where(x >= 0, lp, -math.inf)


def log_normal(p: Mapping[str, Tensor], x: Tensor) -> Tensor:
    y = x.log()
    return -y + _normal(p["loc"], p["scale"], y)


def _cauchy(loc: Tensor | float, scale: Tensor, x: Tensor) -> Tensor:
    return -_LOG_PI - scale.log() - (((x - loc) / scale) ** 2).log1p()


def cauchy(p: Mapping[str, Tensor], x: Tensor) -> Tensor:
    return _cauchy(p["loc"], p["scale"], x)


def half_cauchy(p: Mapping[str, Tensor], x: Tensor) -> Tensor:
    lp = _cauchy(0.0, p["scale"], x) + _LOG_2
    return torch.where(x >= 0, lp, -math.inf)


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
}
"""Closed-form log densities by family name."""
