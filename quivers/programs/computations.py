"""Named computations and the finite collection combinators.

A :class:`Computation` is a function with typed parameters, a result type
and an *effect row*: the effects its body may perform. QVR's ``define
f(x : Real) : Real !{} = ...`` compiles to one; Python code can build one
from any function of tensors. The combinators work on the leading axis of
a tensor:

- :func:`map_over` applies a pure function to each item and stacks the results;
- :func:`traverse` runs a computation on each item, in order, joining its effects;
- :func:`logsumexp_over` is ``logsumexp`` of :func:`map_over`, computed stably;
- :func:`fold` is a left fold.

The one effect a computation performs here is ``Score``: :func:`score` adds
a number to the log density of the program that runs the computation
(:meth:`Computation.run` returns it with the value). A computation that
scores without ``Score`` in its row, or that runs one that does, is an
error.

Examples
--------
>>> import torch
>>> grid = torch.tensor([-1.0, 0.0, 1.0], dtype=torch.float64)
>>> log_joint = map_over(grid, lambda t: -0.5 * t ** 2)
>>> post = map_over(log_joint, lambda s: torch.exp(s - logsumexp_over(log_joint, lambda u: u)))
>>> round(float(post.sum()), 12)
1.0
>>> sq = Computation("sq", [("x", REAL)], REAL, (), lambda x: x * x)
>>> traverse(grid, sq).tolist()
[1.0, 0.0, 1.0]
>>> sq(torch.ones(2))
Traceback (most recent call last):
...
quivers.errors.QuiversTypeError: computation `sq`: argument `x` is Real, got a tensor of shape (2,)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import torch

from quivers.errors import QuiversTypeError, ShapeError

__all__ = [
    "ValueType", "REAL", "INT", "BOOL", "Computation", "ComputationRun", "EFFECTS",
    "map_over", "traverse", "logsumexp_over", "fold", "score",
]

EFFECTS = ("Score",)
"""The effects a computation's row may name."""


@dataclass(frozen=True)
class ValueType:
    """The type of a computation's parameter or result: ``element`` (``Real``,
    ``Int`` or ``Bool``) values in a tensor of ``shape`` (``()`` for one value).

    Examples
    --------
    >>> ValueType("Real", (4,))
    Tensor[Real]([4])
    >>> REAL
    Real
    """

    element: str = "Real"
    shape: tuple[int, ...] = ()

    def __repr__(self) -> str:
        if not self.shape:
            return self.element
        return f"Tensor[{self.element}]([{', '.join(str(n) for n in self.shape)}])"

    def accepts(self, other: ValueType) -> bool:
        """Whether a value of type ``other`` may be given where ``self`` is
        expected: same shape, and an ``Int`` or ``Bool`` is also a ``Real``."""
        if self.shape != other.shape:
            return False
        return self.element == other.element or self.element == "Real"


REAL, INT, BOOL = ValueType("Real"), ValueType("Int"), ValueType("Bool")

# The effect rows of the computations now running, innermost last, and the
# scores they have added (one list per outermost run).
_ROWS: ContextVar[tuple[tuple[str, frozenset[str]], ...]] = ContextVar("computation_rows", default=())
_SCORES: ContextVar[list | None] = ContextVar("computation_scores", default=None)


def _shape_text(t: torch.Tensor) -> str:
    return "one number" if t.dim() == 0 else f"a tensor of shape {tuple(t.shape)}"


def _as_value(x: Any, like: torch.Tensor | None = None) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x
    dtype = like.dtype if like is not None and torch.is_floating_point(like) else None
    return torch.as_tensor(x, dtype=dtype if dtype is not None and not isinstance(x, bool) else None)


@dataclass(frozen=True)
class ComputationRun:
    """What running a computation gives: its ``value`` and the ``score`` its
    body added to the log density (0 for a pure computation)."""

    value: torch.Tensor
    score: torch.Tensor


class Computation:
    """A named computation: typed parameters, a result type, an effect row
    and a body (a function of the arguments' tensors).

    Calling it checks the number and the types of the arguments and the
    type of the result, and that the computation running it declares its
    effects.

    Parameters
    ----------
    name
        Its name, for messages.
    params
        ``(name, ValueType)`` pairs.
    result
        The type its body returns.
    effects
        Its effect row: the effects (of :data:`EFFECTS`) its body may perform.
    body
        The function; it receives one tensor per parameter.

    Examples
    --------
    >>> import torch
    >>> def body(x):
    ...     score(-0.5 * x * x)
    ...     return 2 * x
    >>> f = Computation("f", [("x", REAL)], REAL, ["Score"], body)
    >>> r = f.run(torch.tensor(2.0))
    >>> float(r.value), float(r.score)
    (4.0, -2.0)
    >>> Computation("g", [("x", REAL)], REAL, [], body)(torch.tensor(1.0))
    Traceback (most recent call last):
    ...
    quivers.errors.QuiversTypeError: computation `g` scores (the effect `Score`), but its effect row !{} does not declare it
    """

    def __init__(
        self,
        name: str,
        params: Sequence[tuple[str, ValueType]],
        result: ValueType,
        effects: Iterable[str],
        body: Callable[..., Any],
    ) -> None:
        effects = frozenset(effects)
        unknown = sorted(effects - set(EFFECTS))
        if unknown:
            raise QuiversTypeError(
                f"computation `{name}`: unknown effect `{unknown[0]}`; a computation's row may name {', '.join(EFFECTS)}"
            )
        self.name, self.params, self.result, self.effects, self.body = name, tuple(params), result, effects, body

    def __repr__(self) -> str:
        params = ", ".join(f"{n} : {t!r}" for n, t in self.params)
        return f"Computation({self.name}({params}) : {self.result!r} !{{{', '.join(sorted(self.effects))}}})"

    def _arguments(self, args: Sequence[Any]) -> list[torch.Tensor]:
        if len(args) != len(self.params):
            raise QuiversTypeError(
                f"computation `{self.name}` takes {len(self.params)} argument(s) "
                f"({', '.join(n for n, _ in self.params)}), got {len(args)}"
            )
        like = next((a for a in args if isinstance(a, torch.Tensor) and torch.is_floating_point(a)), None)
        out = []
        for (name, t), a in zip(self.params, args):
            v = _as_value(a, like)
            if tuple(v.shape) != t.shape:
                raise QuiversTypeError(f"computation `{self.name}`: argument `{name}` is {t!r}, got {_shape_text(v)}")
            if t.element != "Real" and torch.is_floating_point(v):
                raise QuiversTypeError(f"computation `{self.name}`: argument `{name}` is {t!r}, got real numbers")
            out.append(v)
        return out

    def __call__(self, *args: Any) -> torch.Tensor:
        """The value; the score of an effectful body goes to the computation
        (or program) running this one."""
        rows = _ROWS.get()
        if rows:
            caller, row = rows[-1]
            missing = sorted(self.effects - row)
            if missing:
                raise QuiversTypeError(
                    f"{caller} runs `{self.name}`, whose effect `{missing[0]}` is not in its row "
                    f"!{{{', '.join(sorted(row))}}}: it does not declare it"
                )
        values = self._arguments(args)
        token = _ROWS.set(rows + ((f"computation `{self.name}`", self.effects),))
        try:
            out = _as_value(self.body(*values), values[0] if values else None)
        finally:
            _ROWS.reset(token)
        if tuple(out.shape) != self.result.shape:
            raise ShapeError(f"computation `{self.name}` returns {self.result!r}, but its body gave {_shape_text(out)}")
        return out

    def run(self, *args: Any) -> ComputationRun:
        """Run it as the outermost computation: its value and its score."""
        scores: list = []
        token = _SCORES.set(scores)
        try:
            value = self(*args)
        finally:
            _SCORES.reset(token)
        total = torch.zeros((), dtype=value.dtype if torch.is_floating_point(value) else torch.get_default_dtype())
        for s in scores:
            total = total + s
        return ComputationRun(value, total)


def score(value: Any) -> None:
    """Add ``value`` (summed, when a tensor) to the log density: the effect
    ``Score``, allowed only inside a computation that declares it."""
    rows = _ROWS.get()
    if not rows or "Score" not in rows[-1][1]:
        where = f"{rows[-1][0]} scores" if rows else "`score` runs outside any computation"
        raise QuiversTypeError(
            f"{where} (the effect `Score`), but its effect row "
            f"!{{{', '.join(sorted(rows[-1][1])) if rows else ''}}} does not declare it"
        )
    scores = _SCORES.get()
    if scores is None:
        raise QuiversTypeError("a computation that scores must be run with `.run(...)`, which returns its score")
    scores.append(_as_value(value).sum())


def _items(xs: Any) -> torch.Tensor:
    t = _as_value(xs)
    if t.dim() == 0:
        raise ShapeError("a collection combinator takes a tensor with a leading axis, not one number")
    return t


def _stack(results: list[torch.Tensor], xs: torch.Tensor) -> torch.Tensor:
    if not results:
        return xs.new_zeros((0,))
    results = [_as_value(r, xs) for r in results]
    shapes = {tuple(r.shape) for r in results}
    if len(shapes) != 1:
        raise ShapeError(f"the function gave results of different shapes {sorted(shapes)}")
    return torch.stack(results)


def map_over(xs: Any, f: Callable[[torch.Tensor], Any]) -> torch.Tensor:
    """``f`` applied to each item along the leading axis of ``xs``, the
    results stacked: ``Tensor[A]([n, ...])`` to ``Tensor[B]([n, ...])``.
    ``f`` must be pure: a score inside it is an error.

    Examples
    --------
    >>> map_over(torch.tensor([1.0, 2.0]), lambda x: x + 1).tolist()
    [2.0, 3.0]
    """
    items = _items(xs)
    token = _ROWS.set(_ROWS.get() + (("the function given to `map`", frozenset()),))
    try:
        return _stack([f(x) for x in items.unbind(0)], items)
    finally:
        _ROWS.reset(token)


def traverse(xs: Any, f: Callable[[torch.Tensor], Any]) -> torch.Tensor:
    """``f`` (a call of a computation) run on each item along the leading
    axis of ``xs``, in order, its results stacked; the scores of the calls
    join the running computation's.

    Examples
    --------
    >>> sq = Computation("sq", [("x", REAL)], REAL, (), lambda x: x * x)
    >>> traverse(torch.tensor([1.0, 3.0]), sq).tolist()
    [1.0, 9.0]
    """
    items = _items(xs)
    return _stack([f(x) for x in items.unbind(0)], items)


def logsumexp_over(xs: Any, f: Callable[[torch.Tensor], Any]) -> torch.Tensor:
    """``log(sum(exp(f(x))))`` over the items of ``xs``, computed without
    overflow; ``f`` gives one real number per item.

    Examples
    --------
    >>> float(logsumexp_over(torch.tensor([0.0, 0.0]), lambda s: s)) == float(torch.log(torch.tensor(2.0)))
    True
    """
    scores = map_over(xs, f)
    if scores.dim() != 1:
        raise ShapeError(f"`logsumexp_over` needs one real number per item; the function gave shape {tuple(scores.shape[1:])}")
    return torch.logsumexp(scores, 0)


def fold(xs: Any, init: Any, f: Callable[[torch.Tensor, torch.Tensor], Any]) -> torch.Tensor:
    """The left fold ``f(... f(f(init, x0), x1) ..., x_{n-1})`` over the
    items of ``xs``.

    Examples
    --------
    >>> float(fold(torch.tensor([1.0, 2.0, 3.0]), 0.0, lambda acc, x: acc + x))
    6.0
    """
    items = _items(xs)
    acc = _as_value(init, items)
    for x in items.unbind(0):
        acc = _as_value(f(acc, x), items)
    return acc
