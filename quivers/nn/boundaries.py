"""Morphisms at the edges of a model: a matrix given as data, and the
binning of a real value into a finite set.

:class:`DataMorphism` ``A -> B`` is a fixed arrow between finite sets whose
matrix is not known when the model is written: it is supplied at run time,
like a program's data, with :meth:`DataMorphism.bind` (or :func:`bind` on
every one inside a composite, by name; a program that uses it takes it in
its data, under its name). It has no parameters. Reading it
before its matrix is bound, or binding a matrix of the wrong shape or with
entries that are not finite and non-negative, is a located
:class:`~quivers.errors.DataError` that names it.

:class:`Discretize` ``X -> K`` bins a point of a one-dimensional ``Real``
object ``X`` into the finite set ``K`` by ordered-logistic cut points
``c_1 < ... < c_{K-1}``:
``p(k | x) = sigmoid((c_k - x) / s) - sigmoid((c_{k-1} - x) / s)`` with
``c_0 = -inf`` and ``c_K = +inf``, a softened step that tends to hard bins
as the temperature ``s`` goes to 0. The cut points are learned (started
evenly over ``[-1, 1]``) or fixed when given.

Laws
----
- each row of a :class:`Discretize` is a distribution over ``K``: its
  entries are non-negative and sum to one, and ``(d >> f).push(x)`` is
  ``d.push(x)`` pushed through the matrix of ``f``;
- a bound :class:`DataMorphism` reads as exactly its bound matrix.

Examples
--------
>>> import torch
>>> from quivers.categories import FinSet
>>> from quivers.nn import Real
>>> A, B = FinSet("A", 2), FinSet("B", 2)
>>> m = DataMorphism(A, B, name="confusion").bind(torch.tensor([[1.0, 0.0], [0.25, 0.75]]))
>>> m.as_morphism().tensor
tensor([[1.0000, 0.0000],
        [0.2500, 0.7500]])
>>> d = Discretize(Real("X", 1), FinSet("K", 3), cuts=torch.tensor([-1.0, 1.0]))
>>> bool(torch.allclose(d.probs(torch.tensor([[0.0]])).sum(-1), torch.ones(1)))
True
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from quivers.categories import LOG, PROB, FinSet, Morphism
from quivers.errors import DataError, QuiversTypeError, ShapeError, UnsupportedError
from quivers.nn.arrows import Evaluation, MorphismModule
from quivers.nn.kernels import _NoMatrix
from quivers.nn.objects import Real

__all__ = ["DataMorphism", "Discretize", "bind", "discretize"]


class DataMorphism(MorphismModule):
    """A fixed matrix ``dom -> cod`` between finite sets, given as data at
    run time (QVR's ``[role=observed]``).

    Examples
    --------
    >>> import torch
    >>> from quivers.categories import FinSet
    >>> m = DataMorphism(FinSet("A", 2), FinSet("B", 3), name="link")
    >>> m.as_morphism()
    Traceback (most recent call last):
    ...
    quivers.errors.DataError: morphism `link : A -> B` has role `observed` and no matrix yet; give it one with `bind({'link': tensor of shape (2, 3)})`
    >>> len(list(m.parameters()))
    0
    """

    def __init__(self, dom: FinSet, cod: FinSet, name: str | None = None) -> None:
        if not isinstance(dom, FinSet) or not isinstance(cod, FinSet):
            raise QuiversTypeError(
                f"an observed morphism is a matrix between finite sets; `{dom} -> {cod}` is not"
            )
        super().__init__(dom, cod)
        self.name = name
        self.register_buffer("matrix", None)

    @property
    def label(self) -> str:
        return f"`{self.name or 'observed'} : {self.dom.name} -> {self.cod.name}`"

    @property
    def is_stochastic(self) -> bool:
        m = self.matrix
        return m is not None and bool(torch.allclose(m.sum(-1), torch.ones((), dtype=m.dtype)))

    def bind(self, matrix: Tensor) -> DataMorphism:
        """Give this morphism its matrix, of shape ``(|dom|, |cod|)`` with
        finite non-negative entries; returns ``self``."""
        m = torch.as_tensor(matrix)
        if not m.is_floating_point():
            m = m.to(torch.get_default_dtype())
        want = (self.dom.size, self.cod.size)
        if tuple(m.shape) != want:
            raise ShapeError(f"morphism {self.label} needs a matrix of shape {want}, got {tuple(m.shape)}")
        if not bool(torch.isfinite(m).all()) or bool((m < 0).any()):
            raise DataError(f"morphism {self.label}: every entry of its matrix must be finite and non-negative")
        self.matrix = m.detach()
        return self

    def evaluate(self, ev: Evaluation) -> Morphism:
        if self.matrix is None:
            raise DataError(
                f"morphism {self.label} has role `observed` and no matrix yet; give it one with "
                f"`bind({{{self.name or 'name'!r}: tensor of shape ({self.dom.size}, {self.cod.size})}})`"
            )
        m = self.matrix.to(dtype=ev.semiring.tensor_dtype(ev.dtype), device=ev.device)
        if ev.semiring is LOG:
            m = m.log()
        elif ev.semiring is not PROB:
            raise UnsupportedError(f"morphism {self.label} is read in PROB or LOG, not {ev.semiring.name}")
        return Morphism(self.dom, self.cod, m, ev.semiring)

    def distribution(self, x: Tensor) -> torch.distributions.Categorical:
        """The row at each element ``x`` of ``dom``, as a distribution over
        ``cod`` (how a program draws from or observes through it)."""
        dtype = self.matrix.dtype if self.matrix is not None else None  # the data's own precision
        return torch.distributions.Categorical(probs=self.as_morphism(PROB, dtype).tensor[torch.as_tensor(x).long()])

    def __repr__(self) -> str:
        name = f", name={self.name!r}" if self.name else ""
        return f"DataMorphism({self.dom.name}, {self.cod.name}{name})"


def bind(module: nn.Module, data: Mapping[str, Tensor]) -> nn.Module:
    """Bind, by name, the matrix of every :class:`DataMorphism` inside
    ``module``; a name missing from ``data`` is a
    :class:`~quivers.errors.DataError` naming it. Returns ``module``.

    Examples
    --------
    >>> import torch
    >>> from quivers.categories import FinSet
    >>> from quivers.nn import latent
    >>> A = FinSet("A", 2)
    >>> h = latent(A, A) >> DataMorphism(A, A, name="noise")
    >>> bind(h, {"noise": torch.eye(2)}) is h
    True
    """
    for m in module.modules():
        if isinstance(m, DataMorphism):
            if m.name not in data:
                raise DataError(
                    f"no data for morphism {m.label} (role `observed`); the data has "
                    + (", ".join(f"`{k}`" for k in data) or "no names")
                )
            m.bind(data[m.name])
    return module


class Discretize(_NoMatrix, MorphismModule):
    """Soft bins of a one-dimensional ``Real`` object into a finite set
    (QVR's ``[role=discretize]``): ordered-logistic cut points, learned
    unless ``cuts`` fixes them, and temperature ``scale``.

    Examples
    --------
    >>> import torch
    >>> from quivers.categories import FinSet
    >>> d = Discretize(Real("X", 1), FinSet("K", 2), cuts=torch.tensor([0.0]))
    >>> d.probs(torch.tensor([[0.0]]))
    tensor([[0.5000, 0.5000]])
    """

    def __init__(
        self, dom: Real, cod: FinSet, cuts: Tensor | None = None, scale: float = 1.0, name: str | None = None
    ) -> None:
        if not isinstance(dom, Real) or not isinstance(cod, FinSet):
            raise QuiversTypeError(
                f"discretize bins a Real object into a finite set; `{dom} -> {cod}` does not"
            )
        if dom.dim != 1:
            raise UnsupportedError(f"discretize bins a one-dimensional Real object; `{dom}` has {dom.dim}")
        if cod.size < 2:
            raise QuiversTypeError(f"discretize needs at least two bins; `{cod}` has {cod.size}")
        if not scale > 0:
            raise QuiversTypeError(f"the temperature `scale` of discretize must be positive, got {scale}")
        super().__init__(dom, cod)
        self.scale, self.name = float(scale), name
        if cuts is not None:
            c = torch.as_tensor(cuts, dtype=torch.get_default_dtype())
            if tuple(c.shape) != (cod.size - 1,) or bool((c[1:] <= c[:-1]).any()):
                raise DataError(f"discretize into `{cod}` takes {cod.size - 1} increasing cut points, got {c.tolist()}")
            self.register_buffer("fixed_cuts", c)
            self.first, self.gaps = None, None
        else:
            self.fixed_cuts = None
            start = torch.linspace(-1.0, 1.0, cod.size - 1) if cod.size > 2 else torch.zeros(1)
            self.first = nn.Parameter(start[:1].clone())
            # gaps as the inverse softplus of the spacing keeps the cut points ordered
            self.gaps = nn.Parameter(torch.log(torch.expm1(start.diff())))

    @property
    def cuts(self) -> Tensor:
        """The cut points ``c_1 < ... < c_{K-1}``."""
        if self.fixed_cuts is not None:
            return self.fixed_cuts
        return torch.cat((self.first, self.first + torch.cumsum(nn.functional.softplus(self.gaps), 0)))

    @property
    def is_stochastic(self) -> bool:
        return True

    def probs(self, x: Tensor) -> Tensor:
        """The row at each point ``x`` of shape ``(..., 1)``: ``(..., |cod|)``."""
        x = torch.as_tensor(x)
        if x.shape[-1:] != (1,):
            raise ShapeError(f"a point of `{self.dom}` has 1 coordinate; got a tensor of shape {tuple(x.shape)}")
        c = self.cuts.to(x.dtype)
        f = torch.sigmoid((c - x) / self.scale)
        zeros, ones = torch.zeros_like(f[..., :1]), torch.ones_like(f[..., :1])
        cdf = torch.cat((zeros, f, ones), -1)
        return cdf[..., 1:] - cdf[..., :-1]

    def push(self, w: Tensor, ev: Evaluation) -> Tensor:
        p = self.probs(w)
        if ev.semiring is LOG:
            return p.log()
        if ev.semiring is not PROB:
            raise UnsupportedError(f"discretize weighs its bins in PROB or LOG, not {ev.semiring.name}")
        return p

    def distribution(self, x: Tensor) -> torch.distributions.Categorical:
        """The row at each point ``x``, as a distribution over the bins."""
        return torch.distributions.Categorical(probs=self.probs(x))

    def sample(self, x: Tensor) -> Tensor:
        """A bin drawn from the row at each point ``x``."""
        return self.distribution(x).sample()

    def log_prob(self, y: Tensor, x: Tensor) -> Tensor:
        """``log p(y | x)`` for bins ``y`` at points ``x``."""
        return self.probs(x).log().gather(-1, torch.as_tensor(y).long()[..., None])[..., 0]

    def last_log_prob(self, y: Tensor, x: Tensor) -> Tensor:
        return self.log_prob(y, x)

    def __repr__(self) -> str:
        name = f", name={self.name!r}" if self.name else ""
        return f"discretize({self.dom.name}, {self.cod.name}{name})"


def discretize(
    dom: Real, cod: FinSet, cuts: Tensor | None = None, scale: float = 1.0, name: str | None = None
) -> Discretize:
    """Soft bins of ``dom`` into ``cod`` (see :class:`Discretize`).

    Examples
    --------
    >>> from quivers.categories import FinSet
    >>> discretize(Real("X", 1), FinSet("K", 4), name="level")
    discretize(X, K, name='level')
    """
    return Discretize(dom, cod, cuts, scale, name)
