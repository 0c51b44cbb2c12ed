"""Changes of base: a morphism read in one algebra, rewritten into another.

A :class:`Transformation` takes the matrix of a morphism over its
``source`` semiring to a matrix over its ``target``: ``softmax(B)``
normalizes each row over ``B`` into probabilities (a fuzzy or real-valued
relation becomes a Markov kernel), ``l1_normalize(B)`` divides each row by
its sum, and ``expectation(S)`` reads probabilities as values of ``S``
(they are fuzzy truth values too). ``s >>> t`` applies ``s`` then ``t`` and
needs ``s``'s target to be ``t``'s source. :func:`change_base` ``(f, t)``
is the module whose matrix is ``t`` of ``f``'s matrix.

Laws
----
- ``change_base(f, s >>> t) == change_base(change_base(f, s), t)``;
- after ``softmax(B)`` or ``l1_normalize(B)`` every row sums to one.

Examples
--------
>>> import torch
>>> from quivers.categories import PRODUCT_FUZZY, FinSet
>>> from quivers.nn import latent
>>> A, B = FinSet("A", 2), FinSet("B", 3)
>>> f = latent(A, B)
>>> g = change_base(f, softmax(B, PRODUCT_FUZZY).then(expectation(PRODUCT_FUZZY)))
>>> w = f.as_morphism(PRODUCT_FUZZY).tensor
>>> torch.allclose(g.as_morphism(PRODUCT_FUZZY).tensor, w.softmax(-1))
True
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from torch import Tensor

from quivers.categories import MAX_TIMES, PROB, PRODUCT_FUZZY, FinSet, Morphism, Semiring
from quivers.errors import CompositionError, QuiversTypeError
from quivers.nn.arrows import Evaluation, MorphismModule, lift

__all__ = ["Transformation", "ChangeBase", "softmax", "l1_normalize", "expectation", "change_base"]

_UNIT_INTERVAL = (PROB, PRODUCT_FUZZY, MAX_TIMES)


@dataclass(frozen=True)
class Transformation:
    """A map from matrices over ``source`` to matrices over ``target``,
    row by row over ``over`` (None: entry by entry)."""

    name: str
    source: Semiring
    target: Semiring
    fn: Callable[[Tensor], Tensor]
    over: FinSet | None = None

    def then(self, other: Transformation) -> Transformation:
        """``self >>> other``."""
        if self.target != other.source:
            raise CompositionError(
                f"cannot apply `{other.name}` after `{self.name}`: `{self.name}` ends in {self.target!r}, "
                f"`{other.name}` starts from {other.source!r}"
            )
        first, second = self.fn, other.fn
        return Transformation(f"{self.name} >>> {other.name}", self.source, other.target,
                              lambda t: second(first(t)), self.over or other.over)

    def __repr__(self) -> str:
        return self.name


def softmax(over: FinSet, source: Semiring) -> Transformation:
    """Rows normalized by softmax over ``over``, into probabilities.

    Examples
    --------
    >>> softmax(FinSet("B", 3), PRODUCT_FUZZY)
    softmax(B)
    """
    return Transformation(f"softmax({over.name})", source, PROB, lambda t: t.softmax(-1), over)


def l1_normalize(over: FinSet, source: Semiring) -> Transformation:
    """Rows divided by their sums over ``over``, into probabilities.

    Examples
    --------
    >>> l1_normalize(FinSet("B", 3), PRODUCT_FUZZY).target
    PROB
    """
    return Transformation(f"l1_normalize({over.name})", source, PROB, lambda t: t / t.sum(-1, keepdim=True), over)


def expectation(target: Semiring) -> Transformation:
    """Probabilities read as values of ``target``, an algebra on ``[0, 1]``.

    Examples
    --------
    >>> expectation(PRODUCT_FUZZY).source
    PROB
    """
    if target not in _UNIT_INTERVAL:
        raise QuiversTypeError(
            f"`expectation` reads probabilities as values of an algebra on [0, 1] "
            f"({', '.join(repr(s) for s in _UNIT_INTERVAL)}); {target!r} is not one"
        )
    return Transformation("expectation", PROB, target, lambda t: t)


class ChangeBase(MorphismModule):
    """``inner`` read in ``t.source`` and rewritten by ``t`` into ``t.target``."""

    def __init__(self, inner: MorphismModule, t: Transformation) -> None:
        inner = lift(inner)
        if t.over is not None and inner.cod != t.over:
            raise CompositionError(
                f"`{t.name}` normalizes rows over `{t.over}`, but `{inner!r}` ends in `{inner.cod}`"
            )
        super().__init__(inner.dom, inner.cod)
        self.inner, self.t = inner, t

    @property
    def is_stochastic(self) -> bool:
        return False

    def evaluate(self, ev: Evaluation) -> Morphism:
        if ev.semiring != self.t.target:
            raise QuiversTypeError(
                f"`{self!r}` is a morphism over {self.t.target!r}; read it there, not in {ev.semiring!r}"
            )
        m = self.inner.evaluate(replace(ev, semiring=self.t.source))
        return Morphism._trusted(self.dom, self.cod, self.t.fn(m.tensor), self.t.target)

    def __repr__(self) -> str:
        return f"change_base({self.inner!r}, {self.t!r})"


def change_base(f: MorphismModule, t: Transformation) -> ChangeBase:
    """``f`` rewritten by ``t`` (see :class:`ChangeBase`).

    Examples
    --------
    >>> from quivers.nn import latent
    >>> change_base(latent(FinSet("A", 2), FinSet("B", 3)), softmax(FinSet("C", 3), PROB))
    Traceback (most recent call last):
    ...
    quivers.errors.CompositionError: `softmax(C)` normalizes rows over `C`, but `latent(A, B)` ends in `B`
    """
    return ChangeBase(f, t)
