"""Operadic contraction: several morphisms joined in one step along the
objects they share.

Each part ``f_i : A_1 * ... -> B_1 * ...`` names one axis per factor of its
domain and codomain, by the factor's object. A contraction with type
``D -> C`` keeps the axes of the factors of ``D`` and ``C`` and sums every
other axis out in the semiring: with ``p : Item -> P``, ``a : Item -> Q``
and ``w : P * Q -> J`` into ``Item -> J`` its ``(i, j)`` entry is
``sum_b sum_c p[i, b] * a[i, c] * w[b, c, j]``, the bilinear
(neural-tensor) score. An object that two parts share and the output keeps
(``Item`` here) runs along the diagonal, as an index repeated in an einsum.

Laws
----
- a contraction of ``f : A -> B`` and ``g : B -> C`` into ``A -> C`` is ``f >> g``;
- the parts' order does not change the result (the semiring multiplies commutatively).

Examples
--------
>>> import torch
>>> from quivers.categories import REAL, FinSet
>>> from quivers.nn import weights
>>> I, P, Q, J = FinSet("I", 4), FinSet("P", 2), FinSet("Q", 3), FinSet("J", 5)
>>> p, a, w = weights(I, P), weights(I, Q), weights(P * Q, J)
>>> c = contraction([p, a, w], I, J, REAL)
>>> expected = torch.einsum("ib,ic,bcj->ij", p.weight, a.weight, w.weight.reshape(2, 3, 5))
>>> torch.allclose(c.as_morphism(REAL).tensor, expected, atol=1e-6)
True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from torch import nn

from quivers.categories import FinSet, Morphism, Semiring
from quivers.errors import CompositionError, QuiversTypeError
from quivers.nn.arrows import Evaluation, MorphismModule, lift

__all__ = ["Contraction", "contraction"]


def _axes(dom: FinSet, cod: FinSet, what: str) -> tuple[FinSet, ...]:
    axes = tuple(f for side in (dom, cod) for f in side.factors if f != FinSet.unit())
    repeated = [a for i, a in enumerate(axes) if a in axes[:i]]
    if repeated:
        raise QuiversTypeError(
            f"{what} `{dom} -> {cod}` has the object `{repeated[0].name}` on two axes; a contraction "
            "names each axis by its object, so each object appears once per part"
        )
    return axes


class Contraction(MorphismModule):
    """The contraction of ``parts`` into ``dom -> cod`` (see the module
    docstring); ``semiring``, when given, is the one it is read in."""

    def __init__(
        self, parts: Sequence[MorphismModule], dom: FinSet, cod: FinSet,
        semiring: Semiring | None = None, name: str | None = None,
    ) -> None:
        super().__init__(dom, cod)
        self.parts = nn.ModuleList(lift(p) for p in parts)
        if not self.parts:
            raise QuiversTypeError("a contraction joins at least one morphism")
        self.labels = [_axes(p.dom, p.cod, f"part {i + 1}") for i, p in enumerate(self.parts)]
        self.out = _axes(dom, cod, "the contraction")
        inputs = {a for labels in self.labels for a in labels}
        missing = [a for a in self.out if a not in inputs]
        if missing:
            raise CompositionError(
                f"the contraction into `{dom} -> {cod}` keeps the object `{missing[0].name}`, "
                "which no part has"
            )
        self.summed = [a for a in dict.fromkeys(a for labels in self.labels for a in labels) if a not in self.out]
        self.semiring, self.name = semiring, name

    @property
    def is_stochastic(self) -> bool:
        return False

    def evaluate(self, ev: Evaluation) -> Morphism:
        s = self.semiring or ev.semiring
        if s != ev.semiring:
            raise QuiversTypeError(
                f"contraction `{self.name or self!r}` joins its parts in {s!r}; read it in {s!r}, "
                f"not {ev.semiring!r}"
            )
        axes = [*self.out, *self.summed]
        total = None
        for part, labels in zip(self.parts, self.labels):
            t = part.evaluate(replace(ev, semiring=s)).tensor.reshape([a.size for a in labels])
            t = t.permute([labels.index(a) for a in axes if a in labels])
            t = t.reshape([a.size if a in labels else 1 for a in axes])
            total = t if total is None else s.mul(total, t)
        assert total is not None
        for k in range(len(axes) - 1, len(self.out) - 1, -1):
            total = s.sum(total, k)
        return Morphism._trusted(self.dom, self.cod, total.reshape(self.dom.size, self.cod.size), s)

    def __repr__(self) -> str:
        return self.name or f"contraction([{', '.join(repr(p) for p in self.parts)}], {self.dom}, {self.cod})"


def contraction(
    parts: Sequence[MorphismModule], dom: FinSet, cod: FinSet,
    semiring: Semiring | None = None, name: str | None = None,
) -> Contraction:
    """Join ``parts`` into ``dom -> cod`` along the objects they share (see
    :class:`Contraction`).

    Examples
    --------
    >>> from quivers.categories import PROB, FinSet
    >>> from quivers.nn import latent
    >>> A, B, C = FinSet("A", 2), FinSet("B", 3), FinSet("C", 2)
    >>> f, g = latent(A, B), latent(B, C)
    >>> import torch
    >>> torch.allclose(contraction([f, g], A, C).as_morphism(PROB).tensor, (f >> g).as_morphism(PROB).tensor)
    True
    """
    return Contraction(parts, dom, cod, semiring, name)
