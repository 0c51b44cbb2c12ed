"""Constrained latents: supports that couple the last axis, and their bijections.

A latent declared with ``[constraint=...]`` lives on a set of vectors (or
matrices) that no elementwise support describes: increasing vectors that
identify the components of a mixture, points of a simplex or a sphere,
Cholesky factors of correlation matrices. Each is a torch
:class:`~torch.distributions.constraints.Constraint` of event rank 1 (2 for
``cholesky_corr``), and :func:`torch.distributions.biject_to` maps the
real line onto it, so guides and MCMC (:mod:`quivers.inference.layout`)
work on unconstrained coordinates and add the log Jacobian of the map.

=================== ================================ ============================
constraint          values along the last axis       unconstrained coordinates
=================== ================================ ============================
``ordered``         ``y_1 < y_2 < ... < y_K``        ``K``: ``y_1``, ``log(y_k - y_{k-1})``
``positive_ordered`` ``0 < y_1 < ... < y_K``         ``K``: ``log y_1``, ``log(y_k - y_{k-1})``
``simplex``         ``y_k > 0``, ``sum_k y_k = 1``   ``K - 1`` (stick breaking)
``unit_vector``     ``sum_k y_k^2 = 1``              ``K - 1`` (stereographic projection)
``cholesky_corr``   lower Cholesky factors of        ``K (K - 1) / 2``
                    correlation matrices (``K * K``)
=================== ================================ ============================

Laws
----
- ``t.inv(t(x)) == x`` and ``t(x)`` lies in the constraint, for every real
  ``x`` (up to float error).
- ``t.log_abs_det_jacobian(x, t(x))`` is ``log |det J|`` of ``t`` at ``x``;
  for the maps into a lower-dimensional set (the simplex, the sphere) it is
  the log volume factor ``1/2 log det(J^T J)`` of the embedding, the
  simplex's taken in its first ``K - 1`` coordinates as Stan does. The
  tests check each against autograd in float64.

Examples
--------
>>> import torch
>>> t = torch.distributions.biject_to(CONSTRAINTS["ordered"].constraint)
>>> y = t(torch.tensor([0.0, 0.0, 1.0]))
>>> bool((y[1:] > y[:-1]).all()), torch.allclose(t.inv(y), torch.tensor([0.0, 0.0, 1.0]))
(True, True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.distributions import Transform, biject_to, constraints

__all__ = [
    "CONSTRAINTS", "ConstraintSpec", "ordered_vector", "positive_ordered_vector", "unit_vector",
    "OrderedTransform", "PositiveOrderedTransform", "StereographicTransform",
]


# ------------------------------------------------------------- constraints


class _Ordered(constraints.Constraint):
    """Vectors increasing along their last axis (strictly, as Stan's ``ordered``)."""

    event_dim = 1

    def __init__(self, positive: bool = False) -> None:
        self.positive = positive
        super().__init__()

    def check(self, value: torch.Tensor) -> torch.Tensor:
        ok = (value[..., 1:] > value[..., :-1]).all(-1)
        if self.positive:
            ok = ok & (value[..., :1] > 0).all(-1)
        return ok

    def __repr__(self) -> str:
        return "PositiveOrdered()" if self.positive else "Ordered()"


class _UnitVector(constraints.Constraint):
    """Vectors of Euclidean norm one along their last axis (to float error)."""

    event_dim = 1

    def check(self, value: torch.Tensor) -> torch.Tensor:
        tol = torch.finfo(value.dtype).eps ** 0.5 if value.is_floating_point() else 1e-6
        return (torch.linalg.vector_norm(value, dim=-1) - 1).abs() <= tol * value.shape[-1]

    def __repr__(self) -> str:
        return "UnitVector()"


ordered_vector = _Ordered()
positive_ordered_vector = _Ordered(positive=True)
unit_vector = _UnitVector()


# ------------------------------------------------------------- transforms


class OrderedTransform(Transform):
    """``x -> y`` with ``y_1 = x_1`` and ``y_k = y_{k-1} + exp(x_k)``:
    the real vectors onto the increasing ones (``positive``: ``y_1 = exp(x_1)``,
    onto the increasing positive ones). ``log |J| = sum_{k >= 2} x_k`` (plus
    ``x_1`` when ``positive``): the Jacobian is triangular.

    Examples
    --------
    >>> t = OrderedTransform()
    >>> t(torch.tensor([1.0, 0.0, 0.0]))
    tensor([1., 2., 3.])
    >>> t.log_abs_det_jacobian(torch.tensor([1.0, 0.5, 0.5]), None)
    tensor(1.)
    """

    domain = constraints.independent(constraints.real, 1)
    bijective = True

    def __init__(self, positive: bool = False, cache_size: int = 0) -> None:
        self.positive = positive
        self.codomain = positive_ordered_vector if positive else ordered_vector
        super().__init__(cache_size=cache_size)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, OrderedTransform) and other.positive == self.positive

    def __hash__(self) -> int:
        return hash((OrderedTransform, self.positive))

    def _steps(self, x: torch.Tensor) -> torch.Tensor:
        if self.positive:
            return x.exp()
        return torch.cat([x[..., :1], x[..., 1:].exp()], -1)

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        return self._steps(x).cumsum(-1)

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        gaps = torch.log(y[..., 1:] - y[..., :-1])
        first = y[..., :1].log() if self.positive else y[..., :1]
        return torch.cat([first, gaps], -1)

    def log_abs_det_jacobian(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        return x.sum(-1) if self.positive else x[..., 1:].sum(-1)


class PositiveOrderedTransform(OrderedTransform):
    """:class:`OrderedTransform` onto the increasing positive vectors
    (``y = cumsum(exp(x))``, ``log |J| = sum_k x_k``).

    Examples
    --------
    >>> PositiveOrderedTransform()(torch.zeros(3))
    tensor([1., 2., 3.])
    """

    def __init__(self, cache_size: int = 0) -> None:
        super().__init__(positive=True, cache_size=cache_size)


class StereographicTransform(Transform):
    """The inverse stereographic projection of ``R^{K-1}`` onto the unit
    sphere in ``R^K`` (all of it but the pole ``(0, ..., 0, 1)``): with
    ``s = |x|^2``, ``y = (2 x, s - 1) / (1 + s)``. It is conformal with factor
    ``2 / (1 + s)``, so the volume it gives the sphere is
    ``log |J| = (K - 1) (log 2 - log(1 + s))``. The origin goes to the pole
    ``(0, ..., 0, -1)``.

    Examples
    --------
    >>> t = StereographicTransform()
    >>> t(torch.tensor([1.0, 0.0]))
    tensor([1., 0., 0.])
    >>> t.inv(torch.tensor([0.0, 0.6, -0.8]))
    tensor([0.0000, 0.3333])
    """

    domain = constraints.independent(constraints.real, 1)
    codomain = unit_vector
    bijective = True

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StereographicTransform)

    def __hash__(self) -> int:
        return hash(StereographicTransform)

    def forward_shape(self, shape):
        return torch.Size((*shape[:-1], shape[-1] + 1))

    def inverse_shape(self, shape):
        return torch.Size((*shape[:-1], shape[-1] - 1))

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        s = (x * x).sum(-1, keepdim=True)
        return torch.cat([2 * x, s - 1], -1) / (1 + s)

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        return y[..., :-1] / (1 - y[..., -1:])

    def log_abs_det_jacobian(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        s = (x * x).sum(-1)
        return x.shape[-1] * (math.log(2.0) - torch.log1p(s))


biject_to.register(type(ordered_vector))(
    lambda c: PositiveOrderedTransform() if c.positive else OrderedTransform()
)
biject_to.register(type(unit_vector))(lambda c: StereographicTransform())


# ------------------------------------------------------------- the registry


@dataclass(frozen=True)
class ConstraintSpec:
    """One value of ``[constraint=...]``: its torch constraint, the number
    of trailing axes it couples (``event_rank``), the families it accepts
    (``families``, None for any continuous family of scalars whose support
    is in ``supports``), and what a draw from a ``Flat()`` prior on it is
    (``uniform``: the uniform law on a compact set; None where the set is
    unbounded and the flat prior improper).

    Examples
    --------
    >>> CONSTRAINTS["simplex"].event_rank, CONSTRAINTS["cholesky_corr"].event_rank
    (1, 2)
    """

    name: str
    constraint: constraints.Constraint
    event_rank: int
    families: tuple[str, ...] | None
    supports: tuple[str, ...] = ()
    uniform: str | None = None
    stan: str = ""
    min_size: int = 1

    def accepts(self, family_name: str, event_rank: int, discrete: bool, support: str | None) -> bool:
        """Whether a family of this name, event rank, discreteness and
        support (``"real"``, ``"positive"``, or None when it is another or
        depends on parameters) gives a density on this constraint."""
        if family_name == "Flat" or (self.families is not None and family_name in self.families):
            return True
        if family_name == "HalfFlat":
            return "positive" in self.supports
        return self.families is None and event_rank == 0 and not discrete and support in self.supports


CONSTRAINTS: dict[str, ConstraintSpec] = {
    c.name: c
    for c in (
        ConstraintSpec("ordered", ordered_vector, 1, None, ("real",), stan="ordered"),
        ConstraintSpec("positive_ordered", positive_ordered_vector, 1, None, ("positive",), stan="positive_ordered"),
        ConstraintSpec("simplex", constraints.simplex, 1, ("Dirichlet",), uniform="Dirichlet", stan="simplex"),
        ConstraintSpec("unit_vector", unit_vector, 1, None, ("real",), uniform="sphere", stan="unit_vector",
                       min_size=2),
        ConstraintSpec("cholesky_corr", constraints.corr_cholesky, 2, ("LKJCholesky",), uniform="LKJCholesky",
                       stan="cholesky_factor_corr"),
    )
}
"""The constrained latents, by the name ``[constraint=...]`` gives them."""
