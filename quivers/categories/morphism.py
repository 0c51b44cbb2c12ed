"""Morphisms between finite sets, weighted in a semiring.

:class:`Arrow` declares the algebra once, in DisCoPy's style: ``f >> g``
(then), ``f @ g`` (the monoidal product, on product objects) and identities.
Every kind of morphism inherits it: :class:`Morphism` (a matrix over a
semiring), :class:`~quivers.categories.kernel.Kernel` (a stochastic matrix)
and :class:`~quivers.categories.function.FinFunction` (a function, which is
a morphism in every semiring at once).

A :class:`Morphism` ``A -> B`` in semiring ``S`` is a tensor of shape
``(*batch, |A|, |B|)``; leading batch axes broadcast through ``>>`` and
``@``. Composition is the semiring matrix product,
``(f >> g)[a, c] = sum_b f[a, b] * g[b, c]``; the monoidal product is the
Kronecker product on row-major pairs,
``(f @ g)[(a, b), (c, d)] = f[a, c] * g[b, d]``.

Laws
----
- ``(f >> g) >> h == f >> (g >> h)`` and ``id >> f == f == f >> id``;
- ``(f @ g) @ h == f @ (g @ h)`` (products of FinSets are strict);
- interchange: ``(f @ g) >> (h @ k) == (f >> h) @ (g >> k)``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from functools import reduce

import torch
from torch import Tensor

from quivers.categories.finset import FinSet
from quivers.categories.semiring import PROB, Semiring
from quivers.errors import CompositionError, InvalidValueError, QuiversTypeError, ShapeError

__all__ = ["Arrow", "Morphism", "then"]


class Arrow(ABC):
    """What every morphism has: a domain, a codomain, ``>>`` and ``@``.

    Subclasses implement :meth:`then`, :meth:`par` and :meth:`as_morphism`;
    the operators are defined here once.
    """

    dom: FinSet
    cod: FinSet

    @abstractmethod
    def then(self, other: Arrow) -> Arrow:
        """``self`` followed by ``other``, written ``self >> other``."""

    @abstractmethod
    def par(self, other: Arrow) -> Arrow:
        """``self`` beside ``other``, written ``self @ other``."""

    @abstractmethod
    def as_morphism(
        self, semiring: Semiring, dtype: torch.dtype | None = None, device: torch.device | None = None
    ) -> Morphism:
        """This arrow as a matrix over ``semiring``, on ``device`` in ``dtype``
        where given."""

    @property
    def is_stochastic(self) -> bool:
        """Whether this arrow is a Markov kernel (functions and kernels are)."""
        return False

    def _after(self, first: Morphism) -> Morphism:
        """``first >> self`` for a ``first`` that is a :class:`Morphism`.

        Arrows that are not matrices override this with something cheaper
        than building their matrix.
        """
        return first.then(self.as_morphism(first.semiring))

    def __rshift__(self, other: Arrow) -> Arrow:
        return self.then(other)

    def __matmul__(self, other: Arrow) -> Arrow:
        return self.par(other)

    def __rrshift__(self, other: object) -> Arrow:
        # Reached only when ``other`` is no arrow: an arrow's own >> runs first.
        raise self._not_an_arrow("compose", other, "left")

    def __rmatmul__(self, other: object) -> Arrow:
        raise self._not_an_arrow("tensor", other, "left")

    def _not_an_arrow(self, verb: str, other: object, role: str) -> QuiversTypeError:
        """The error for ``other`` (no arrow) as the ``role`` operand of ``verb``."""
        return QuiversTypeError(
            f"cannot {verb} {type(other).__name__} {other!r} ({role} operand) with `{self.dom} -> {self.cod}`"
        )

    def _repr_pretty_(self, printer, cycle: bool) -> None:
        # IPython's protocol, which hypothesis also follows: show the
        # evaluable repr rather than the dataclass fields.
        printer.text(repr(self))

    def _check_composable(self, other: object) -> None:
        if not isinstance(other, Arrow):
            raise QuiversTypeError(
                f"cannot compose `{self.dom} -> {self.cod}` with {type(other).__name__} "
                f"{other!r}; expected a Morphism, Kernel or FinFunction"
            )
        if self.cod != other.dom:
            raise CompositionError(
                f"cannot compose `{self.dom} -> {self.cod}` with `{other.dom} -> {other.cod}`: "
                f"codomain `{self.cod}` (size {self.cod.size}) is not domain "
                f"`{other.dom}` (size {other.dom.size})"
            )


def then(*arrows: Arrow) -> Arrow:
    """Compose ``arrows`` left to right: ``then(f, g, h) == f >> g >> h``.

    Examples
    --------
    >>> A, B = FinSet("A", 2), FinSet("B", 3)
    >>> f = Morphism(A, B, torch.ones(2, 3))
    >>> g = Morphism(B, A, torch.ones(3, 2))
    >>> then(f, g, f).tensor
    tensor([[6., 6., 6.],
            [6., 6., 6.]])
    """
    if not arrows:
        raise QuiversTypeError("`then` needs at least one arrow; use `identity(A)` for none")
    return reduce(lambda f, g: f.then(g), arrows)


@dataclass(frozen=True, eq=False, init=False, repr=False)
class Morphism(Arrow):
    """A morphism ``dom -> cod``: a ``(*batch, |dom|, |cod|)`` tensor over a
    semiring.

    Parameters
    ----------
    dom, cod
        The domain and codomain.
    tensor
        The weights; the last two axes are ``dom`` and ``cod``, any leading
        axes are a batch. ``BOOL`` wants a bool tensor, every other semiring
        a floating one, with entries in the semiring's domain.
    semiring
        Where the weights live; ``PROB`` by default.

    Examples
    --------
    >>> A, B, C = FinSet("A", 2), FinSet("B", 2), FinSet("C", 1)
    >>> f = Morphism(A, B, torch.tensor([[0.5, 0.5], [0.0, 1.0]]))
    >>> g = Morphism(B, C, torch.tensor([[2.0], [4.0]]))
    >>> (f >> g).tensor
    tensor([[3.],
            [4.]])
    >>> (f @ g).dom, (f @ g).cod
    (FinSet('A', 2) * FinSet('B', 2), FinSet('B', 2) * FinSet('C', 1))
    >>> g >> f
    Traceback (most recent call last):
    ...
    quivers.errors.CompositionError: cannot compose `B -> C` with `A -> B`: codomain `C` (size 1) is not domain `A` (size 2)
    """

    dom: FinSet
    cod: FinSet
    semiring: Semiring
    _tensor: Tensor | None

    def __init__(self, dom: FinSet, cod: FinSet, tensor: Tensor, semiring: Semiring = PROB) -> None:
        _check_objects(type(self).__name__, dom, cod, semiring)
        tensor = _check_tensor(tensor, dom, cod, semiring)
        bad = ~semiring.contains(tensor.detach())
        if bool(bad.any()):
            where = tuple(int(i) for i in bad.nonzero()[0])
            raise InvalidValueError(
                f"entry {where} of the tensor of `{dom} -> {cod}` is "
                f"{tensor[where].item()!r}, outside the domain of `{semiring}` ({semiring.domain})"
            )
        self._set(dom, cod, semiring, tensor)

    def _set(self, dom: FinSet, cod: FinSet, semiring: Semiring, tensor: Tensor | None) -> None:
        object.__setattr__(self, "dom", dom)
        object.__setattr__(self, "cod", cod)
        object.__setattr__(self, "semiring", semiring)
        object.__setattr__(self, "_tensor", tensor)

    @classmethod
    def _trusted(cls, dom: FinSet, cod: FinSet, tensor: Tensor, semiring: Semiring) -> Morphism:
        """Build without checks, for results of operations on checked inputs."""
        out = cls.__new__(cls)
        out._set(dom, cod, semiring, tensor)
        return out

    @property
    def tensor(self) -> Tensor:
        """The weights, of shape ``(*batch, |dom|, |cod|)``."""
        assert self._tensor is not None
        return self._tensor

    @property
    def batch_shape(self) -> torch.Size:
        """The leading batch axes of :attr:`tensor`."""
        return self.tensor.shape[:-2]

    @classmethod
    def id(
        cls,
        obj: FinSet,
        semiring: Semiring = PROB,
        dtype: torch.dtype | None = None,
        device: torch.device | None = None,
    ) -> Morphism:
        """The identity on ``obj``: ``one`` on the diagonal, ``zero`` off it.

        Examples
        --------
        >>> from quivers.categories.semiring import LOG
        >>> Morphism.id(FinSet("A", 2), LOG).tensor
        tensor([[0., -inf],
                [-inf, 0.]])
        """
        dtype = semiring.tensor_dtype(dtype)
        eye = torch.eye(obj.size, dtype=torch.bool, device=device)
        one = torch.tensor(semiring.one, dtype=dtype, device=device)
        zero = torch.tensor(semiring.zero, dtype=dtype, device=device)
        return cls._trusted(obj, obj, torch.where(eye, one, zero), semiring)

    def as_morphism(
        self, semiring: Semiring, dtype: torch.dtype | None = None, device: torch.device | None = None
    ) -> Morphism:
        """``self`` (moved to ``dtype`` and ``device`` where given), after
        checking that it lives in ``semiring``."""
        if semiring != self.semiring:
            raise CompositionError(
                f"`{self.dom} -> {self.cod}` is a morphism in `{self.semiring}`, not in "
                f"`{semiring}`; base-change it first (see quivers.categories.base_change)"
            )
        if dtype is None and device is None:
            return self
        return type(self)._trusted(self.dom, self.cod, self.tensor.to(device, dtype), semiring)

    def then(self, other: Arrow) -> Arrow:
        """Compose: the semiring matrix product of the two tensors."""
        self._check_composable(other)
        if not isinstance(other, Morphism):
            return other._after(self)
        _check_same_semiring("compose", self, other)
        tensor = self.semiring.contract(*_broadcast(self, other))
        return self._result_type(other)._trusted(self.dom, other.cod, tensor, self.semiring)

    def par(self, other: Arrow) -> Arrow:
        """The monoidal product: the Kronecker product on row-major pairs."""
        if not isinstance(other, Arrow):
            raise QuiversTypeError(
                f"cannot tensor `{self.dom} -> {self.cod}` with {type(other).__name__} {other!r}"
            )
        if isinstance(other, Morphism):
            _check_same_semiring("tensor", self, other)
            other_m = other
        else:
            ours = self.tensor
            other_m = other.as_morphism(self.semiring, ours.dtype, ours.device)
        a, b = _broadcast(self, other_m)
        rows, cols = a.shape[-2] * b.shape[-2], a.shape[-1] * b.shape[-1]
        tensor = self.semiring.mul(a[..., :, None, :, None], b[..., None, :, None, :])
        tensor = tensor.reshape(*tensor.shape[:-4], rows, cols)
        return self._result_type(other)._trusted(
            self.dom * other.dom, self.cod * other.cod, tensor, self.semiring
        )

    def _result_type(self, other: Arrow) -> type[Morphism]:
        # Kernels are closed under >> and @ with kernels and functions; any
        # other partner gives a plain weighted morphism.
        if self.is_stochastic and other.is_stochastic:
            return type(self)
        return Morphism

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.dom!r}, {self.cod!r}, {self.tensor!r}, {self.semiring!r})"


def _check_objects(kind: str, dom: object, cod: object, semiring: object) -> None:
    for role, obj in (("domain", dom), ("codomain", cod)):
        if not isinstance(obj, FinSet):
            raise QuiversTypeError(f"the {role} of a {kind} must be a FinSet, got {obj!r}")
    if not isinstance(semiring, Semiring):
        raise QuiversTypeError(f"the semiring of a {kind} must be a Semiring, got {semiring!r}")


def _check_tensor(tensor: object, dom: FinSet, cod: FinSet, semiring: Semiring) -> Tensor:
    tensor = semiring.check_dtype(tensor, f"the weights of `{dom} -> {cod}`")
    if tensor.dim() < 2 or tuple(tensor.shape[-2:]) != (dom.size, cod.size):
        raise ShapeError(
            f"a tensor of shape {tuple(tensor.shape)} does not fit `{dom} -> {cod}`: "
            f"expected (..., {dom.size}, {cod.size}), i.e. (*batch, |{dom}|, |{cod}|)"
        )
    return tensor


def _check_same_semiring(verb: str, f: Morphism, g: Morphism) -> None:
    if f.semiring != g.semiring:
        raise CompositionError(
            f"cannot {verb} `{f.dom} -> {f.cod}` in `{f.semiring}` with `{g.dom} -> {g.cod}` "
            f"in `{g.semiring}`; base-change one of them first (quivers.categories.base_change)"
        )


def _broadcast(f: Morphism, g: Morphism) -> tuple[Tensor, Tensor]:
    """The two tensors with their batch axes broadcast against each other."""
    # Read each tensor once: a kernel built from logits recomputes it.
    a, b = f.tensor, g.tensor
    if a.device != b.device:
        raise QuiversTypeError(
            f"`{f.dom} -> {f.cod}` is on {a.device} but `{g.dom} -> {g.cod}` is on {b.device}"
        )
    if a.dtype != b.dtype:
        # Mixed precisions meet at the wider one, as torch's arithmetic does.
        dtype = torch.promote_types(a.dtype, b.dtype)
        a, b = a.to(dtype), b.to(dtype)
    if a.shape[:-2] == b.shape[:-2]:
        return a, b
    try:
        # Plain tuples: broadcast_shapes is ~50x slower on torch.Size.
        batch = torch.broadcast_shapes(tuple(a.shape[:-2]), tuple(b.shape[:-2]))
    except RuntimeError:
        raise ShapeError(
            f"the batch shapes {tuple(a.shape[:-2])} of `{f.dom} -> {f.cod}` and "
            f"{tuple(b.shape[:-2])} of `{g.dom} -> {g.cod}` do not broadcast"
        ) from None
    return a.expand(*batch, *a.shape[-2:]), b.expand(*batch, *b.shape[-2:])
