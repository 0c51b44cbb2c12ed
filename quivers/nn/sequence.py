"""Sequence combinators: powers, stacks and recurrences of morphisms.

- :func:`repeat` ``(f, n)`` is ``f >> f >> ... >> f`` (``n`` times, one set
  of parameters); written without ``n``, the count is given when the
  module is read (``h.as_morphism(S, n_steps=50)``). Powers are computed by
  repeated squaring: ``O(log n)`` compositions.
- :func:`stack` ``(f, n)`` is ``n`` independent copies of ``f`` in a row,
  each with its own parameters, drawn afresh.
- :func:`scan` ``(cell, init)`` threads a state ``H`` through a sequence of
  inputs ``X``: with ``cell : X * H -> H`` and ``init : 1 -> H``,
  ``h_0 ~ init`` and ``h_t ~ cell(x_t, h_{t-1})``; it has type ``X -> H``,
  the sequence axis being implicit. Read as a matrix with ``n_steps=T`` it
  is the morphism ``X^T -> H`` (row-major in ``(x_1, ..., x_T)``), and what
  comes before it in a :class:`~quivers.nn.arrows.Then` runs once per step.
  :meth:`Scan.run` pushes a batch of observed sequences through it without
  building ``X^T``: in ``LOG`` with the cell of a hidden Markov model this
  is the forward algorithm.

Laws
----
- ``repeat(f, m + n) == repeat(f, m) >> repeat(f, n)``, ``repeat(f, 0) == identity``;
- ``stack(f, n)`` has ``n`` times the parameters of ``f`` and the type of ``f``;
- ``scan(cell, init).run(xs) == `` the row of ``scan(cell, init).as_morphism(n_steps=T)`` at ``xs``.

Examples
--------
>>> import torch
>>> from quivers.categories import FinSet, LOG
>>> from quivers.nn import latent
>>> S = FinSet("S", 3)
>>> t = latent(S, S)
>>> torch.allclose(repeat(t, 5).as_morphism().tensor, repeat(t).as_morphism(n_steps=5).tensor)
True
>>> len(list(stack(t, 4).parameters()))
4
"""

from __future__ import annotations

import math
from functools import reduce

import torch
from torch import Tensor, nn

from quivers.categories import KERNEL_SEMIRINGS, PROB, Arrow, FinSet, Kernel, Morphism, Semiring
from quivers.categories import identity as _identity
from quivers.errors import CompositionError, QuiversTypeError, ShapeError
from quivers.nn.arrows import Evaluation, Latent, MorphismModule, _fresh_copy, lift
from quivers.nn.kernels import encode
from quivers.nn.objects import Real, matches

__all__ = ["Repeat", "Stack", "Scan", "LearnedPoint", "repeat", "stack", "scan", "split_cell"]


def _check_endo(f: MorphismModule, what: str) -> None:
    if not matches(f.cod, f.dom):
        raise CompositionError(
            f"{what} needs an endomorphism, an arrow `A -> A`; `{f.dom} -> {f.cod}` goes from "
            f"`{f.dom}` to `{f.cod}`"
        )


def _count(n: object, what: str) -> int | None:
    if n is None:
        return None
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise QuiversTypeError(f"the count of `{what}` must be a non-negative integer, got {n!r}")
    return n


class Repeat(MorphismModule):
    """``f`` composed with itself ``n`` times, sharing its parameters.

    Examples
    --------
    >>> from quivers.categories import FinSet
    >>> from quivers.nn import latent
    >>> A = FinSet("A", 2)
    >>> repeat(latent(A, A)).as_morphism()
    Traceback (most recent call last):
    ...
    quivers.errors.QuiversTypeError: `repeat(f)` has no count: read it with `n_steps=...` (e.g. `h.as_morphism(PROB, n_steps=10)`), or write `repeat(f, n)`
    """

    def __init__(self, inner: Arrow, n: int | None = None) -> None:
        inner = lift(inner)
        _check_endo(inner, "repeat")
        super().__init__(inner.dom, inner.cod)
        self.inner = inner
        self.n = _count(n, "repeat")

    @property
    def is_stochastic(self) -> bool:
        return self.inner.is_stochastic

    def evaluate(self, ev: Evaluation) -> Morphism:
        n = self.n if self.n is not None else ev.n_steps
        if n is None:
            raise QuiversTypeError(
                "`repeat(f)` has no count: read it with `n_steps=...` "
                "(e.g. `h.as_morphism(PROB, n_steps=10)`), or write `repeat(f, n)`"
            )
        out = _identity(self.dom, ev.semiring, ev.dtype, ev.device)
        if n == 0:
            return out
        square = self.inner.evaluate(ev)
        first = True
        while n:
            if n & 1:
                out = square if first else out.then(square)
                first = False
            n >>= 1
            if n:
                square = square.then(square)
        return out

    def sample(self, x: Tensor, n_steps: int | None = None) -> Tensor:
        """Draw through ``f`` ``n`` times (``n_steps`` when written without a count)."""
        n = self.n if self.n is not None else n_steps
        if n is None:
            raise QuiversTypeError("`repeat(f)` has no count: sample it with `n_steps=...`, or write `repeat(f, n)`")
        for _ in range(n):
            x = self.inner.sample(x)
        return x

    def __repr__(self) -> str:
        return f"repeat({self.inner!r})" if self.n is None else f"repeat({self.inner!r}, {self.n})"


class Stack(MorphismModule):
    """``n`` independent copies of ``inner`` in a row, each re-initialized.

    Examples
    --------
    >>> from quivers.categories import FinSet
    >>> from quivers.nn import latent
    >>> A = FinSet("A", 2)
    >>> s = stack(latent(A, A), 2)
    >>> bool((s.layers[0].logits != s.layers[1].logits).any())
    True
    """

    def __init__(self, inner: Arrow, n: int) -> None:
        inner = lift(inner)
        _check_endo(inner, "stack")
        n = _count(n, "stack")
        if not n:
            raise QuiversTypeError("`stack(f, n)` needs at least one layer, n >= 1")
        super().__init__(inner.dom, inner.cod)
        self.layers = nn.ModuleList(_fresh_copy(inner) for _ in range(n))

    @property
    def is_stochastic(self) -> bool:
        return self.layers[0].is_stochastic

    def evaluate(self, ev: Evaluation) -> Morphism:
        return reduce(lambda a, b: a.then(b), (layer.evaluate(ev) for layer in self.layers))

    def sample(self, x: Tensor) -> Tensor:
        """Draw through each layer in turn."""
        for layer in self.layers:
            x = layer.sample(x)
        return x

    def last_log_prob(self, y: Tensor, x: Tensor) -> Tensor:
        for layer in self.layers[:-1]:
            x = layer.sample(x)
        return self.layers[-1].last_log_prob(y, x)

    def __repr__(self) -> str:
        return f"stack({self.layers[0]!r}, {len(self.layers)})"


def split_cell(cell: Arrow) -> tuple[FinSet, FinSet]:
    """The input ``X`` and state ``H`` of a cell ``X * H -> H``.

    Examples
    --------
    >>> from quivers.categories import FinSet
    >>> from quivers.nn import latent
    >>> X, H = FinSet("X", 2), FinSet("H", 3)
    >>> split_cell(latent(X * H, H))
    (FinSet('X', 2), FinSet('H', 3))
    >>> split_cell(latent(H, H))
    Traceback (most recent call last):
    ...
    quivers.errors.CompositionError: a scan cell has type `X * H -> H`, an input and the state to the state; `H -> H` has no input factor before the state `H`
    """
    H, factors = cell.cod, cell.dom.factors
    state = H.factors
    if len(factors) <= len(state) or not all(matches(a, b) for a, b in zip(factors[-len(state):], state)):
        raise CompositionError(
            f"a scan cell has type `X * H -> H`, an input and the state to the state; "
            f"`{cell.dom} -> {cell.cod}` has no input factor before the state `{H}`"
        )
    return reduce(lambda a, b: a * b, factors[: -len(state)]), H


class Scan(MorphismModule):
    """A recurrence: ``scan(cell, init)`` with ``cell : X * H -> H`` and
    ``init : 1 -> H`` (a fresh learnable kernel when omitted); type ``X -> H``.

    Examples
    --------
    >>> import torch
    >>> from quivers.categories import FinSet
    >>> from quivers.nn import latent
    >>> X, H = FinSet("X", 2), FinSet("H", 3)
    >>> s = scan(latent(X * H, H))
    >>> s.run(torch.tensor([[0, 1, 1], [1, 0, 0]])).shape
    torch.Size([2, 3])
    """

    def __init__(self, cell: Arrow, init: Arrow | str | None = None) -> None:
        cell = lift(cell)
        X, H = split_cell(cell)
        super().__init__(X, H)
        self.cell = cell
        self.continuous = isinstance(H, Real)
        if isinstance(init, str):
            if init not in ("zeros", "learned") or not self.continuous:
                raise QuiversTypeError(
                    f"`init={init}`: a scan over the continuous state `{H}` starts at `zeros` or a `learned` "
                    "point; any scan starts from an arrow `1 -> H`"
                )
            init = LearnedPoint(H) if init == "learned" else None
            if init is None:
                self.init = None
                return
        if init is None:
            # a finite state starts from a learned law (uniform at first); a
            # continuous one from zeros, as an RNN's does
            init = None if self.continuous else Latent(FinSet.unit(), H, scale=0.0, name="init")
        self.init = lift(init) if init is not None else None
        if self.init is not None and (self.init.dom != FinSet.unit() or self.init.cod != H):
            raise CompositionError(
                f"the initial state of a scan is an arrow `1 -> {H}`, got "
                f"`{self.init.dom} -> {self.init.cod}`"
            )

    def _start(self, batch: torch.Size, like: Tensor) -> Tensor:
        """The initial state of each sequence of a batch, drawn."""
        if self.init is None:
            return like.new_zeros(*batch, self.cod.dim)
        return self.init.sample(torch.zeros(batch, dtype=torch.long, device=like.device))

    def sample(self, xs: Tensor) -> Tensor:
        """The final state of each sequence, drawn step by step: ``xs`` is
        ``(..., T)`` elements of a finite input or ``(..., T, n)`` points of a
        ``Real n`` one."""
        h, last = self._steps(xs)
        return h if last is None else self.cell.sample(last)

    def last_log_prob(self, y: Tensor, xs: Tensor) -> Tensor:
        """``log p(h_T = y | x_T, h_{T-1})`` under the cell, at one draw of
        ``h_{T-1}``: a filter scored on its final state."""
        _, last = self._steps(xs)
        if last is None:
            raise ShapeError("a scan scored on its final state needs sequences of at least one step")
        return self.cell.last_log_prob(y, last)

    def _steps(self, xs: Tensor) -> tuple[Tensor, Tensor | None]:
        """The state after all steps but the last, and the cell's input at
        the last step (None for empty sequences)."""
        xs = torch.as_tensor(xs)
        axis = -2 if isinstance(self.dom, Real) else -1
        batch = xs.shape[: xs.dim() + axis]
        like = xs if xs.is_floating_point() else torch.zeros((), dtype=torch.get_default_dtype(), device=xs.device)
        h, last = self._start(batch, like), None
        for t in range(xs.shape[axis]):
            if last is not None:
                h = self.cell.sample(last)
            x = xs[..., t, :] if axis == -2 else xs[..., t]
            if isinstance(self.cell.dom, Real):
                last = torch.cat((encode(x, self.dom).expand(*h.shape[:-1], -1), h), -1)
            else:
                last = x * self.cod.size + h
        return h, last

    @property
    def is_stochastic(self) -> bool:
        return self.cell.is_stochastic and (self.init is None or self.init.is_stochastic)

    def _cell(self, ev: Evaluation) -> Tensor:
        """The cell's weights as ``(|X|, |H|, |H'|)``."""
        return self.cell.evaluate(ev).tensor.reshape(self.dom.size, self.cod.size, self.cod.size)

    def _length(self, ev: Evaluation) -> int:
        if ev.n_steps is None:
            raise QuiversTypeError(
                "a scan read as a matrix needs the length of its sequences: `n_steps=...`; "
                "`run(xs)` reads it from the data"
            )
        return ev.n_steps

    def evaluate(self, ev: Evaluation) -> Morphism:
        s, T = ev.semiring, self._length(ev)
        cell = self._cell(ev)
        X, H = self.dom.size, self.cod.size
        alpha = self.init.evaluate(ev).tensor.reshape(1, H)
        # alpha: one row per prefix (x_1, ..., x_t), row-major
        by_state = cell.permute(1, 0, 2).reshape(H, X * H)
        for _ in range(T):
            alpha = s.contract(alpha, by_state).reshape(-1, H)
        dom = reduce(lambda a, b: a * b, [self.dom] * T, FinSet.unit())
        kind = Kernel if self.is_stochastic and s in KERNEL_SEMIRINGS else Morphism
        return kind._trusted(dom, self.cod, alpha, s)

    def after(self, before: Morphism, ev: Evaluation) -> Morphism:
        """``before >> self`` as matrices: ``before : A -> X`` runs on every
        step, so it enters as its ``T``-fold tensor power ``A^T -> X^T``."""
        T = self._length(ev)
        power = reduce(lambda a, b: a.par(b), [before] * T) if T else _identity(FinSet.unit(), ev.semiring)
        return power.then(self.evaluate(ev))

    def push(self, w: Tensor, ev: Evaluation) -> Tensor:
        """Consume weights ``(..., T, |X|)`` over a sequence's inputs into
        weights ``(..., |H|)`` over the final state."""
        s = ev.semiring
        if w.dim() < 2:
            raise ShapeError(
                f"a scan consumes a sequence: weights of shape (..., T, {self.dom.size}), got {tuple(w.shape)}"
            )
        cell = self._cell(ev).to(w.dtype)
        X, H = self.dom.size, self.cod.size
        flat = cell.reshape(X * H, H)
        alpha = self.init.evaluate(ev).tensor.reshape(H).to(w.dtype).expand(*w.shape[:-2], H)
        for t in range(w.shape[-2]):
            pair = s.mul(w[..., t, :, None], alpha[..., None, :]).reshape(*alpha.shape[:-1], X * H)
            alpha = s.contract(pair[..., None, :], flat)[..., 0, :]
        return alpha

    def __repr__(self) -> str:
        return f"scan({self.cell!r}, init={self.init!r})"


class LearnedPoint(MorphismModule):
    """A learned point of a continuous object: the deterministic arrow
    ``1 -> H`` a scan with ``init=learned`` starts from (zeros at first).

    Examples
    --------
    >>> LearnedPoint(Real("H", 3)).sample(torch.zeros(2, dtype=torch.long)).shape
    torch.Size([2, 3])
    """

    def __init__(self, obj: Real) -> None:
        super().__init__(FinSet.unit(), obj)
        self.point = nn.Parameter(torch.zeros(obj.dim))

    @property
    def is_stochastic(self) -> bool:
        return True

    def evaluate(self, ev: Evaluation) -> Morphism:
        raise QuiversTypeError(f"a point of the continuous object `{self.cod}` has no matrix")

    def sample(self, x: Tensor) -> Tensor:
        return self.point.expand(*torch.as_tensor(x).shape, self.cod.dim)

    def __repr__(self) -> str:
        return f"LearnedPoint({self.cod!r})"


def repeat(f: Arrow, n: int | None = None) -> Repeat:
    """``f`` composed with itself ``n`` times (see :class:`Repeat`).

    Examples
    --------
    >>> from quivers.categories import FinSet
    >>> from quivers.nn import identity
    >>> repeat(identity(FinSet("A", 2)), 3).as_morphism().tensor
    tensor([[1., 0.],
            [0., 1.]])
    """
    return Repeat(f, n)


def stack(f: Arrow, n: int) -> Stack:
    """``n`` independent copies of ``f`` in a row (see :class:`Stack`).

    Examples
    --------
    >>> from quivers.categories import FinSet
    >>> from quivers.nn import latent
    >>> stack(latent(FinSet("A", 2), FinSet("A", 2), name="layer"), 3)
    stack(latent(A, A, name='layer'), 3)
    """
    return Stack(f, n)


def scan(cell: Arrow, init: Arrow | str | None = None) -> Scan:
    """The recurrence of ``cell : X * H -> H`` from ``init : 1 -> H`` (see
    :class:`Scan`); over a continuous state ``init`` may also be ``"zeros"``
    (the default) or ``"learned"`` (a :class:`LearnedPoint`).

    Examples
    --------
    >>> from quivers.categories import FinSet
    >>> from quivers.nn import latent
    >>> X, H = FinSet("X", 2), FinSet("H", 3)
    >>> scan(latent(X * H, H)).dom
    FinSet('X', 2)
    """
    return Scan(cell, init)
