"""Morphisms as torch modules: learnable arrows and their algebra.

A :class:`MorphismModule` is an :class:`~quivers.categories.Arrow` that is
also a :class:`torch.nn.Module`: ``f >> g`` and ``f @ g`` build
:class:`Then` and :class:`Par` modules that hold their parts, so
``.parameters()`` of a composite reaches every learnable leaf and an
optimizer trains the whole network. A composite is evaluated each time it
is read (:meth:`MorphismModule.as_morphism`), so it always reflects the
current parameters.

The leaves here are :class:`Latent` (a learnable stochastic matrix whose
rows are softmaxes of free logits), :class:`Observed` (a fixed arrow of
:mod:`quivers.categories`) and :class:`Identity`; :func:`dagger` and
:func:`fan` build the transpose and the copy-then-tensor. The sequence
combinators are in :mod:`quivers.nn.sequence`.

Semantics
---------
``as_morphism(S)`` is a functor from these modules to the matrices of
:mod:`quivers.categories` over ``S``: ``(f >> g).as_morphism(S) ==
f.as_morphism(S) >> g.as_morphism(S)`` and likewise for ``@``. A latent
kernel's weights in ``S`` are its probabilities in ``PROB``, ``PRODUCT_FUZZY``, ``REAL`` and
``MAX_TIMES``, its log-probabilities in ``LOG`` and ``MAX_PLUS`` and its
costs ``-log p`` in ``MIN_PLUS``, so the same composite gives marginals in
``PROB``/``LOG`` and best paths in ``MAX_PLUS``/``MAX_TIMES``/``MIN_PLUS``
(the algebra a QVR module's ``composition`` declaration names, its
``semiring``, is the one to read its morphisms in).

Laws
----
- ``(f >> g) >> h == f >> (g >> h)``, ``identity(A) >> f == f == f >> identity(B)``;
- interchange: ``(f @ g) >> (h @ k) == (f >> h) @ (g >> k)``;
- ``dagger(dagger(f)) == f`` and ``dagger(f >> g) == dagger(g) >> dagger(f)``;
- ``fan(f, g) == copy(A) >> (f @ g)``.

Examples
--------
>>> import torch
>>> from quivers.categories import FinSet, LOG
>>> A, B = FinSet("A", 2), FinSet("B", 3)
>>> f, g = latent(A, B, name="f"), latent(B, A, name="g")
>>> h = f >> g
>>> h
Then(latent(A, B, name='f'), latent(B, A, name='g'))
>>> len(list(h.parameters()))
2
>>> bool(torch.allclose(h.as_morphism(LOG).tensor.exp().sum(-1), torch.ones(2)))
True
"""

from __future__ import annotations

import copy as _copy
from abc import abstractmethod
from dataclasses import dataclass
from functools import reduce

import torch
from torch import Tensor, nn

from quivers.categories import (
    KERNEL_SEMIRINGS,
    LOG,
    MAX_PLUS,
    MAX_TIMES,
    MIN_PLUS,
    PROB,
    PRODUCT_FUZZY,
    REAL,
    Arrow,
    FinFunction,
    FinSet,
    Kernel,
    Morphism,
    Semiring,
    base_change,
    identity as _identity,
)
from quivers.errors import CompositionError, InvalidValueError, QuiversTypeError, UnsupportedError
from quivers.nn.objects import Real, matches

__all__ = [
    "Evaluation",
    "MorphismModule",
    "Latent",
    "Observed",
    "Identity",
    "Then",
    "Par",
    "Dagger",
    "Fan",
    "latent",
    "observed",
    "identity",
    "dagger",
    "fan",
    "lift",
    "one_hot",
]


@dataclass(frozen=True)
class Evaluation:
    """How a module is read as a matrix: the semiring, the dtype and device,
    and ``n_steps``, the count of a :func:`~quivers.nn.sequence.repeat`
    written without one (and the length of a scanned sequence)."""

    semiring: Semiring = PROB
    dtype: torch.dtype | None = None
    device: torch.device | None = None
    n_steps: int | None = None


class MorphismModule(nn.Module, Arrow):
    """An arrow ``dom -> cod`` that is a torch module.

    Subclasses implement :meth:`evaluate`; ``>>``, ``@``, :meth:`as_morphism`
    and calling the module (``f(LOG)``, ``f(n_steps=3)``) come from here.
    """

    dom: FinSet
    cod: FinSet

    def __init__(self, dom: FinSet, cod: FinSet) -> None:
        super().__init__()
        for role, obj in (("domain", dom), ("codomain", cod)):
            if not isinstance(obj, (FinSet, Real)):
                raise QuiversTypeError(
                    f"the {role} of {type(self).__name__} must be a FinSet or a Real object, got {obj!r}"
                )
        self.dom, self.cod = dom, cod

    @abstractmethod
    def evaluate(self, ev: Evaluation) -> Morphism:
        """This module's matrix under ``ev``."""

    def as_morphism(
        self,
        semiring: Semiring = PROB,
        dtype: torch.dtype | None = None,
        device: torch.device | None = None,
        *,
        n_steps: int | None = None,
    ) -> Morphism:
        """The matrix over ``semiring`` this module denotes with its current
        parameters (a :class:`~quivers.categories.Kernel` when it is
        stochastic and ``semiring`` is ``PROB`` or ``LOG``)."""
        return self.evaluate(Evaluation(semiring, dtype, device, n_steps))

    def forward(self, semiring: Semiring = PROB, *, n_steps: int | None = None) -> Morphism:
        """``self.as_morphism(semiring, n_steps=n_steps)``."""
        return self.as_morphism(semiring, n_steps=n_steps)

    def run(
        self,
        xs: Tensor,
        semiring: Semiring = PROB,
        *,
        dtype: torch.dtype | None = None,
        n_steps: int | None = None,
    ) -> Tensor:
        """The weights over ``cod`` of each element of ``dom`` in ``xs``: the
        rows of the matrix at ``xs``, of shape ``(*xs.shape, |cod|)``.

        A module that starts with a scan reads a sequence: ``xs`` has shape
        ``(..., T)`` and the result ``(..., |cod|)``.

        Examples
        --------
        >>> from quivers.categories import FinSet
        >>> A = FinSet("A", 2)
        >>> fan(identity(A), identity(A)).run(torch.tensor([1, 0]))
        tensor([[0., 0., 0., 1.],
                [1., 0., 0., 0.]])
        """
        ev = Evaluation(semiring, dtype, None, n_steps)
        if isinstance(self.dom, Real):  # points of a Real object enter as they are
            return self.push(torch.as_tensor(xs, dtype=semiring.tensor_dtype(dtype)), ev)
        return self.push(one_hot(xs, self.dom, semiring, dtype), ev)

    def push(self, w: Tensor, ev: Evaluation) -> Tensor:
        """Weights ``(..., |dom|)`` pushed through this module: ``(..., |cod|)``."""
        m = self.evaluate(ev).tensor.to(w.dtype)
        return ev.semiring.contract(w[..., None, :], m)[..., 0, :]

    def log_prior(self) -> Tensor:
        """The log prior density of this module's matrices: the sum over its
        learnable matrices with a prior (``~ Dirichlet(a)`` on a latent
        kernel: each row ``Dirichlet(a, ..., a)``; ``~ Normal(m, s)`` on a
        real matrix: each entry), each counted once. Added to a log
        likelihood it makes the objective of a MAP fit.

        Examples
        --------
        >>> from quivers.categories import FinSet
        >>> A = FinSet("A", 2)
        >>> t = Latent(A, A, scale=0.0, concentration=2.0)
        >>> round(float((t >> t).log_prior().detach()), 4)  # two rows at (1/2, 1/2): 2 * log(1.5)
        0.8109
        """
        terms = [m.own_log_prior() for m in self.modules() if getattr(m, "has_prior", False)]
        return torch.stack(terms).sum() if terms else torch.zeros(())

    def sample(self, x: Tensor) -> Tensor:
        """A draw of the output at each input in ``x``: for a module between
        finite sets, an element of ``cod`` from the row of ``x``.

        Examples
        --------
        >>> from quivers.categories import FinSet
        >>> A = FinSet("A", 3)
        >>> identity(A).sample(torch.tensor([2, 0]))
        tensor([2, 0])
        """
        return self.rows(x).sample()

    def rows(self, x: Tensor) -> torch.distributions.Categorical:
        """The rows at the inputs ``x`` of a module between finite sets, one
        Categorical over ``cod`` per input: what a program draws from, or
        scores an observation by."""
        probs = self.as_morphism(PROB).tensor
        return torch.distributions.Categorical(probs=probs[torch.as_tensor(x).long()])

    def last_log_prob(self, y: Tensor, x: Tensor) -> Tensor:
        """``log p(y | ...)`` under this module's last family, at one draw of
        everything before it: how a network that ends in a family (an
        encoder, a scan of a kernel cell) scores its outputs. Exact when what
        comes before is deterministic.

        Examples
        --------
        >>> from quivers.categories import FinSet
        >>> identity(FinSet("A", 2)).last_log_prob(torch.tensor([0]), torch.tensor([0]))
        Traceback (most recent call last):
        ...
        quivers.errors.UnsupportedError: `identity(FinSet('A', 2))` does not end in a family that scores its outputs; score a morphism between finite sets by its matrix (`run(xs, LOG)`)
        """
        raise UnsupportedError(
            f"`{self!r}` does not end in a family that scores its outputs; score a morphism between finite "
            "sets by its matrix (`run(xs, LOG)`)"
        )

    def then(self, other: Arrow) -> Then:
        """``self >> other``, as a :class:`Then` module."""
        return Then(self, lift(other))

    def par(self, other: Arrow) -> Par:
        """``self @ other``, as a :class:`Par` module."""
        return Par(self, lift(other))

    def __rrshift__(self, other: object) -> Then:
        if isinstance(other, Arrow):  # a plain matrix on the left of a module
            return Then(lift(other), self)
        raise self._not_an_arrow("compose", other, "left")

    def __rmatmul__(self, other: object) -> Par:
        if isinstance(other, Arrow):
            return Par(lift(other), self)
        raise self._not_an_arrow("tensor", other, "left")

    def __hash__(self) -> int:  # nn.Module hashes by identity; Arrow does not override it
        return id(self)

    def __eq__(self, other: object) -> bool:
        return self is other

    def _check_then(self, left: Arrow, right: Arrow) -> None:
        if not matches(left.cod, right.dom):
            raise CompositionError(
                f"cannot compose `{left.dom} -> {left.cod}` with `{right.dom} -> {right.cod}`: "
                f"codomain `{left.cod}` (size {left.cod.size}) is not domain `{right.dom}` "
                f"(size {right.dom.size})"
            )


def _weights_of_logits(logits: Tensor, semiring: Semiring) -> Tensor:
    """The stochastic matrix ``softmax(logits)`` as weights in ``semiring``:
    probabilities in the semirings that multiply them, log-probabilities in
    those that add them, costs ``-log p`` in ``MIN_PLUS``."""
    if semiring in (PROB, MAX_TIMES, PRODUCT_FUZZY, REAL):
        return logits.softmax(-1)
    if semiring == MIN_PLUS:
        return -logits.log_softmax(-1)
    return logits.log_softmax(-1)


class Latent(MorphismModule):
    """A learnable Markov kernel ``dom -> cod``: row ``a`` is
    ``softmax(logits[a])`` over ``cod``.

    Parameters
    ----------
    dom, cod
        Finite sets.
    scale
        The logits start as ``scale * N(0, 1)`` draws; ``0`` starts at the
        uniform kernel.
    name
        How the kernel is shown (its QVR name).

    Examples
    --------
    >>> from quivers.categories import FinSet
    >>> k = Latent(FinSet("A", 1), FinSet("B", 2), scale=0.0)
    >>> k.as_morphism().tensor
    tensor([[0.5000, 0.5000]], grad_fn=<SoftmaxBackward0>)
    """

    def __init__(
        self, dom: FinSet, cod: FinSet, scale: float = 1.0, name: str | None = None,
        concentration: float | None = None,
    ) -> None:
        super().__init__(dom, cod)
        if cod.size == 0 and dom.size > 0:
            raise QuiversTypeError(f"no kernel `{dom} -> {cod}` exists: `{cod}` is empty")
        if concentration is not None and not float(concentration) > 0:
            raise QuiversTypeError(
                f"the Dirichlet prior on the rows of `{dom} -> {cod}` needs a positive concentration, "
                f"got {concentration!r}"
            )
        self.scale = float(scale)
        self.name = name
        self.concentration = None if concentration is None else float(concentration)
        self.logits = nn.Parameter(torch.empty(dom.size, cod.size))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Draw the logits afresh: ``scale * N(0, 1)``."""
        with torch.no_grad():
            self.logits.normal_().mul_(self.scale)

    @property
    def is_stochastic(self) -> bool:
        return True

    @property
    def has_prior(self) -> bool:
        return self.concentration is not None

    def own_log_prior(self) -> Tensor:
        """``sum over rows of log Dirichlet(row | concentration)``, or 0
        without a prior."""
        if self.concentration is None:
            return self.logits.new_zeros(())
        rows = self.logits.softmax(-1)
        conc = torch.full_like(rows, self.concentration)
        return torch.distributions.Dirichlet(conc).log_prob(rows).sum()

    def evaluate(self, ev: Evaluation) -> Morphism:
        logits = self.logits.to(ev.device, ev.dtype)
        if ev.semiring in (PROB, MAX_TIMES, LOG, MAX_PLUS, MIN_PLUS, PRODUCT_FUZZY, REAL):
            kind = Kernel if ev.semiring in KERNEL_SEMIRINGS else Morphism
            return kind._trusted(self.dom, self.cod, _weights_of_logits(logits, ev.semiring), ev.semiring)
        return base_change(Kernel._trusted(self.dom, self.cod, logits.softmax(-1), PROB), ev.semiring)

    def __repr__(self) -> str:
        name = f", name={self.name!r}" if self.name else ""
        prior = f", concentration={self.concentration!r}" if self.concentration is not None else ""
        return f"latent({self.dom.name}, {self.cod.name}{name}{prior})"


class Observed(MorphismModule):
    """A fixed arrow of :mod:`quivers.categories` as a module (no parameters).

    Read in another semiring, it moves there along the homomorphism from
    its own (:func:`~quivers.categories.base_change`).

    Examples
    --------
    >>> from quivers.categories import FinSet, copy, LOG
    >>> Observed(copy(FinSet("A", 2))).as_morphism(LOG).tensor
    tensor([[0., -inf, -inf, -inf],
            [-inf, -inf, -inf, 0.]])
    """

    def __init__(self, arrow: Arrow, name: str | None = None) -> None:
        if isinstance(arrow, MorphismModule):
            raise QuiversTypeError("Observed wraps a fixed arrow, not a module; use the module itself")
        if not isinstance(arrow, Arrow):
            raise QuiversTypeError(f"Observed wraps a Morphism, Kernel or FinFunction, got {arrow!r}")
        super().__init__(arrow.dom, arrow.cod)
        self.arrow = arrow
        self.name = name

    @property
    def is_stochastic(self) -> bool:
        return self.arrow.is_stochastic

    def evaluate(self, ev: Evaluation) -> Morphism:
        if isinstance(self.arrow, FinFunction):
            return self.arrow.as_morphism(ev.semiring, ev.dtype, ev.device)
        return base_change(self.arrow, ev.semiring).as_morphism(ev.semiring, ev.dtype, ev.device)

    def __repr__(self) -> str:
        return f"observed({self.arrow!r}, name={self.name!r})" if self.name else f"observed({self.arrow!r})"


class Identity(MorphismModule):
    """The identity on ``obj``.

    Examples
    --------
    >>> from quivers.categories import FinSet
    >>> Identity(FinSet("A", 2)).as_morphism().tensor
    tensor([[1., 0.],
            [0., 1.]])
    """

    def __init__(self, obj: FinSet) -> None:
        super().__init__(obj, obj)

    @property
    def is_stochastic(self) -> bool:
        return True

    def evaluate(self, ev: Evaluation) -> Morphism:
        return _identity(self.dom, ev.semiring, ev.dtype, ev.device)

    def sample(self, x: Tensor) -> Tensor:
        return x

    def __repr__(self) -> str:
        return f"identity({self.dom!r})"


class Then(MorphismModule):
    """``first >> second >> ...``: each part consumes the previous one's output.

    Nested composites are flattened, so ``Then(Then(f, g), h)`` and
    ``Then(f, Then(g, h))`` are one module with three parts.

    Examples
    --------
    >>> from quivers.categories import FinSet
    >>> A, B = FinSet("A", 2), FinSet("B", 3)
    >>> Then(latent(A, B), latent(A, A))
    Traceback (most recent call last):
    ...
    quivers.errors.CompositionError: cannot compose `A -> B` with `A -> A`: codomain `B` (size 3) is not domain `A` (size 2)
    """

    def __init__(self, *parts: MorphismModule) -> None:
        flat: list[MorphismModule] = []
        for p in parts:
            p = lift(p)
            flat.extend(p.parts if isinstance(p, Then) else (p,))
        if not flat:
            raise QuiversTypeError("Then needs at least one part")
        for left, right in zip(flat, flat[1:]):
            self._check_then(left, right)
        super().__init__(flat[0].dom, flat[-1].cod)
        self.parts = nn.ModuleList(flat)

    @property
    def is_stochastic(self) -> bool:
        return all(p.is_stochastic for p in self.parts)

    def push(self, w: Tensor, ev: Evaluation) -> Tensor:
        for p in self.parts:
            w = p.push(w, ev)
        return w

    def sample(self, x: Tensor) -> Tensor:
        """Draw from each part in turn, feeding each draw to the next."""
        for p in self.parts:
            x = p.sample(x)
        return x

    def last_log_prob(self, y: Tensor, x: Tensor) -> Tensor:
        for p in self.parts[:-1]:
            x = p.sample(x)
        return self.parts[-1].last_log_prob(y, x)

    def evaluate(self, ev: Evaluation) -> Morphism:
        from quivers.nn.sequence import Scan  # scan consumes a sequence: what comes before runs per step

        out: Morphism | None = None
        for p in self.parts:
            if isinstance(p, Scan):
                out = p.evaluate(ev) if out is None else p.after(out, ev)
                continue
            m = p.evaluate(ev)
            out = m if out is None else out.then(m)
        assert out is not None
        return out

    def __repr__(self) -> str:
        return f"Then({', '.join(repr(p) for p in self.parts)})"


class Par(MorphismModule):
    """``left @ right``: the two side by side, on product objects.

    Examples
    --------
    >>> from quivers.categories import FinSet
    >>> A, B = FinSet("A", 2), FinSet("B", 3)
    >>> (latent(A, B) @ identity(A)).cod
    FinSet('B', 3) * FinSet('A', 2)
    """

    def __init__(self, left: MorphismModule, right: MorphismModule) -> None:
        left, right = lift(left), lift(right)
        super().__init__(left.dom * right.dom, left.cod * right.cod)
        self.left, self.right = left, right

    @property
    def is_stochastic(self) -> bool:
        return self.left.is_stochastic and self.right.is_stochastic

    def evaluate(self, ev: Evaluation) -> Morphism:
        return self.left.evaluate(ev).par(self.right.evaluate(ev))

    def sample(self, x: Tensor) -> Tensor:
        """Draw each side from its part of ``x``: a pair of elements, or the
        two blocks of coordinates of a point."""
        l, r = self.left, self.right
        if isinstance(self.dom, Real):
            if not (isinstance(l.dom, Real) and isinstance(r.dom, Real)):
                raise UnsupportedError(f"`{self!r}` mixes finite and continuous inputs; give it a Real product")
            a, b = x[..., : l.dom.dim], x[..., l.dom.dim :]
        else:
            a, b = torch.div(x, r.dom.size, rounding_mode="floor"), x % r.dom.size
        return _join(l.sample(a), r.sample(b), l.cod, r.cod)

    def __repr__(self) -> str:
        return f"Par({self.left!r}, {self.right!r})"


class Dagger(MorphismModule):
    """The transpose ``cod -> dom`` of ``inner``: a weighted morphism (a
    kernel's transpose is not stochastic in general).

    Examples
    --------
    >>> from quivers.categories import FinSet
    >>> A, B = FinSet("A", 2), FinSet("B", 3)
    >>> d = dagger(latent(A, B))
    >>> (d.dom, d.cod), dagger(d).dom
    ((FinSet('B', 3), FinSet('A', 2)), FinSet('A', 2))
    """

    def __init__(self, inner: MorphismModule) -> None:
        inner = lift(inner)
        super().__init__(inner.cod, inner.dom)
        self.inner = inner

    def evaluate(self, ev: Evaluation) -> Morphism:
        m = self.inner.evaluate(ev)
        return Morphism._trusted(self.dom, self.cod, m.tensor.transpose(-1, -2), m.semiring)

    def __repr__(self) -> str:
        return f"dagger({self.inner!r})"


class Fan(MorphismModule):
    """``fan(f, g, ...)``: copy the input, then ``f @ g @ ...``: a morphism
    ``A -> B1 * B2 * ...`` from arrows that share the domain ``A``.

    Examples
    --------
    >>> from quivers.categories import FinSet
    >>> A, B = FinSet("A", 2), FinSet("B", 3)
    >>> fan(latent(A, B), latent(A, A)).cod
    FinSet('B', 3) * FinSet('A', 2)
    >>> fan(latent(A, B), latent(B, A))
    Traceback (most recent call last):
    ...
    quivers.errors.CompositionError: fan needs arrows with one domain: `A -> B` starts at `A` but `B -> A` at `B`
    """

    def __init__(self, *parts: MorphismModule) -> None:
        parts = tuple(lift(p) for p in parts)
        if len(parts) < 2:
            raise QuiversTypeError(f"fan needs at least two arrows, got {len(parts)}")
        for p in parts[1:]:
            if not matches(p.dom, parts[0].dom):
                raise CompositionError(
                    f"fan needs arrows with one domain: `{parts[0].dom} -> {parts[0].cod}` starts at "
                    f"`{parts[0].dom}` but `{p.dom} -> {p.cod}` at `{p.dom}`"
                )
        super().__init__(parts[0].dom, reduce(lambda a, b: a * b, (p.cod for p in parts)))
        self.parts = nn.ModuleList(parts)

    @property
    def is_stochastic(self) -> bool:
        return all(p.is_stochastic for p in self.parts)

    def sample(self, x: Tensor) -> Tensor:
        """Draw from every part at the same ``x`` and pair the draws."""
        out, cod = self.parts[0].sample(x), self.parts[0].cod
        for p in self.parts[1:]:
            out, cod = _join(out, p.sample(x), cod, p.cod), cod * p.cod
        return out

    def evaluate(self, ev: Evaluation) -> Morphism:
        ms = [p.evaluate(ev) for p in self.parts]
        s = ev.semiring
        out = ms[0].tensor
        for m in ms[1:]:
            t = m.tensor.to(out.dtype)
            out = s.mul(out[..., :, :, None], t[..., :, None, :]).reshape(*out.shape[:-1], -1)
        kind = Kernel if self.is_stochastic and s in KERNEL_SEMIRINGS else Morphism
        return kind._trusted(self.dom, self.cod, out, s)

    def __repr__(self) -> str:
        return f"fan({', '.join(repr(p) for p in self.parts)})"


# ------------------------------------------------------------ constructors


def _join(a: Tensor, b: Tensor, left: FinSet | Real, right: FinSet | Real) -> Tensor:
    """A draw of ``left * right`` from draws of each: the row-major index of a
    pair of elements, or the concatenation of two points."""
    if isinstance(left, Real) and isinstance(right, Real):
        batch = torch.broadcast_shapes(a.shape[:-1], b.shape[:-1])
        return torch.cat((a.expand(*batch, a.shape[-1]), b.expand(*batch, b.shape[-1])), -1)
    if isinstance(left, FinSet) and isinstance(right, FinSet):
        return a * right.size + b
    raise UnsupportedError(f"a pair of `{left}` and `{right}` mixes a finite set with a Real object")


def one_hot(xs: Tensor, obj: FinSet, semiring: Semiring = PROB, dtype: torch.dtype | None = None) -> Tensor:
    """The elements ``xs`` of ``obj`` as weights: ``one`` at each element,
    ``zero`` elsewhere, of shape ``(*xs.shape, |obj|)``.

    Examples
    --------
    >>> from quivers.categories import FinSet, LOG
    >>> one_hot(torch.tensor([1]), FinSet("A", 2), LOG)
    tensor([[-inf, 0.]])
    """
    xs = torch.as_tensor(xs)
    if xs.is_floating_point() or xs.dtype == torch.bool:
        raise QuiversTypeError(f"elements of `{obj}` are integers, got a tensor of {xs.dtype}")
    bad = (xs < 0) | (xs >= obj.size)
    if bool(bad.any()):
        where = tuple(int(i) for i in bad.nonzero()[0])
        raise InvalidValueError(
            f"entry {where} is {int(xs[where])}, not an element of `{obj}` (0 to {obj.size - 1})"
        )
    dtype = semiring.tensor_dtype(dtype)
    hit = xs[..., None] == torch.arange(obj.size, device=xs.device)
    one = torch.tensor(semiring.one, dtype=dtype, device=xs.device)
    zero = torch.tensor(semiring.zero, dtype=dtype, device=xs.device)
    return torch.where(hit, one, zero)



def lift(arrow: Arrow) -> MorphismModule:
    """``arrow`` as a module: modules as they are, fixed arrows wrapped in
    :class:`Observed`.

    Examples
    --------
    >>> from quivers.categories import FinSet, delete
    >>> lift(delete(FinSet("A", 2))).cod
    FinSet.unit()
    """
    if isinstance(arrow, MorphismModule):
        return arrow
    if isinstance(arrow, Arrow):
        return Observed(arrow)
    raise QuiversTypeError(
        f"expected a morphism (a module of quivers.nn, or a Morphism, Kernel or FinFunction), "
        f"got {type(arrow).__name__} {arrow!r}"
    )


def latent(
    dom: FinSet, cod: FinSet, scale: float = 1.0, name: str | None = None, concentration: float | None = None
) -> Latent:
    """A learnable kernel ``dom -> cod`` (see :class:`Latent`), with a
    Dirichlet prior of ``concentration`` on each row when given.

    Examples
    --------
    >>> from quivers.categories import FinSet
    >>> latent(FinSet("A", 2), FinSet("B", 2), name="emission")
    latent(A, B, name='emission')
    """
    return Latent(dom, cod, scale, name, concentration)


def observed(arrow: Arrow, name: str | None = None) -> Observed:
    """A fixed arrow as a module (see :class:`Observed`).

    Examples
    --------
    >>> from quivers.categories import FinSet, copy
    >>> observed(copy(FinSet("A", 2)), "dup").cod.size
    4
    """
    return Observed(arrow, name)


def identity(obj: FinSet) -> Identity:
    """The identity module on ``obj``.

    Examples
    --------
    >>> from quivers.categories import FinSet
    >>> identity(FinSet("A", 3)).dom.size
    3
    """
    return Identity(obj)


def dagger(f: Arrow) -> MorphismModule:
    """The transpose of ``f``; ``dagger(dagger(f))`` is ``f`` itself.

    Examples
    --------
    >>> from quivers.categories import FinSet
    >>> f = latent(FinSet("A", 2), FinSet("B", 3))
    >>> dagger(dagger(f)) is f
    True
    """
    f = lift(f)
    return f.inner if isinstance(f, Dagger) else Dagger(f)


def fan(*arrows: Arrow) -> Fan:
    """Copy the input into each of ``arrows`` (see :class:`Fan`).

    Examples
    --------
    >>> from quivers.categories import FinSet
    >>> A = FinSet("A", 2)
    >>> fan(identity(A), identity(A)).as_morphism().tensor
    tensor([[1., 0., 0., 0.],
            [0., 0., 0., 1.]])
    """
    return Fan(*arrows)


def _fresh_copy(module: MorphismModule) -> MorphismModule:
    """A deep copy of ``module`` whose learnable leaves are re-drawn."""
    out = _copy.deepcopy(module)
    for m in out.modules():
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()
    return out
