"""Symbolic expressions: sympy trees compiled to torch on named values.

An :class:`Expr` wraps a sympy expression over real symbols (the names of a
program). Elementwise arithmetic stays sympy, so constant folding and
simplification come for free, and each maximal elementwise subtree is
compiled once by :func:`sympy.lambdify` into torch calls. Indexing
(``mu_k[z]``) and reductions (``sum``, ``softmax``, ``sort``) are sympy
function nodes that the compiler turns into named-axis operations.

Examples
--------
>>> import torch
>>> from quivers.programs.named import Value
>>> mu, z = var("mu"), var("z")
>>> e = 2 * mu[z] + 1 + mu[z]
>>> e
Expr(3*index(mu, z) + 1)
>>> f = compile_expr(e)
>>> env = {"mu": Value(torch.tensor([0.0, 10.0]), ("K",)),
...        "z": Value(torch.arange(2), ("z",), values_in="K", enumerates=True)}
>>> f(env).tensor
tensor([ 1., 31.])
"""

from __future__ import annotations

import collections
import itertools
import numbers
import operator
from collections.abc import Callable, Mapping
from typing import Any

import sympy
import torch
from sympy.core.symbol import Str

from quivers.capture import capturing
from quivers.categories import FinFunction, FinSet
from quivers.errors import DataError, InvalidValueError, QuiversTypeError, ShapeError, UnknownNameError
from quivers.programs.lowering import lower
from quivers.programs.named import Value, align, gather, logsumexp, plate_dims, reduce_sum, to_layout
from quivers.programs.relaxed import RelaxedValue, soft_index

__all__ = [
    "Expr", "var", "const", "call", "apply", "pair", "FUNCTIONS", "compile_expr", "as_expr",
    "constant_tensors", "constant_axes", "index_function", "IndexFunction", "Constant", "REF",
    "stack", "vector", "matrix", "stack_set", "STACK", "table", "table_sets", "table_cells", "TABLE", "BUILDERS",
    "compare", "COMPARISONS", "ARITY",
    "AXIS_ARGUMENT", "WHERE", "DOT", "reduction_axis", "arity_text", "HostFunction", "host_call", "host_function",
]

Env = Mapping[str, Value]

INDEX = sympy.Function("index")
STACK = sympy.Function("stack")
"""The head of a value built from entries (:func:`stack`); its first
argument names the set the entries run along, the rest are the entries."""
_COMPARE_OPS = {"<": ("lt", operator.lt), "<=": ("le", operator.le), ">": ("gt", operator.gt),
                ">=": ("ge", operator.ge), "==": ("eq", operator.eq), "!=": ("ne", operator.ne)}
_ELEMENTWISE_TORCH: dict[str, Callable[..., torch.Tensor]] = {
    "exp": torch.exp,
    "log": torch.log,
    "sqrt": torch.sqrt,
    "Abs": torch.abs,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "log1p": torch.log1p,
    "expm1": torch.expm1,
    "softplus": torch.nn.functional.softplus,
    "logit": torch.logit,
    "Max": torch.maximum,
    "Min": torch.minimum,
    **{name: (lambda fn: lambda a, b: _truth(fn(a, b), a, b))(fn) for name, fn in _COMPARE_OPS.values()},
    "step": lambda x: _truth(~(x < 0), x),
    "int_step": lambda x: _truth(x > 0, x),
    "relu": torch.relu,
    "clamp": lambda x, lo, hi: torch.clamp(x if isinstance(x, torch.Tensor) else torch.tensor(x), lo, hi),
}


def _truth(held: Any, *operands: Any) -> Any:
    """A comparison's booleans as 1.0 and 0.0 in the dtype of its operands."""
    ref = next((o for o in operands if isinstance(o, torch.Tensor) and torch.is_floating_point(o)), None)
    if not isinstance(held, torch.Tensor):
        return float(held)
    return held.to(ref.dtype if ref is not None else torch.get_default_dtype())
_CUSTOM_ELEMENTWISE = {n: sympy.Function(n) for n in ("sigmoid", "log1p", "expm1", "softplus", "logit")}
_REDUCTIONS = {n: sympy.Function(n) for n in (
    "sum", "mean", "prod", "logsumexp", "softmax", "log_softmax", "sort", "cumsum")}
"""Functions of a value along its axes: ``sum(x)`` over every axis, ``sum(x, K)``
over the one axis ``K`` (its second argument, a :class:`Str`)."""
_COLLAPSE = ("sum", "mean", "prod", "logsumexp")
"""The reductions that remove the axis they run along (the others keep it)."""


def _folding(name: str, nargs: int, fold: Callable[..., float]) -> type:
    """A sympy function ``name`` that folds to ``fold(*args)`` when every
    argument is a number (comparisons and steps of constants)."""

    def eval(cls, *args):  # noqa: A001 (sympy's hook)
        if all(a.is_Number for a in args):
            return sympy.Integer(int(fold(*(float(a) for a in args))))
        return None

    return type(name, (sympy.Function,), {"nargs": nargs, "eval": classmethod(eval)})


COMPARISONS = {op: _folding(name, 2, fn) for op, (name, fn) in _COMPARE_OPS.items()}
"""The comparison operators, as sympy functions worth 1 where they hold and
0 where they do not (Stan's comparisons, which give integers)."""
_STEPS = {
    "step": _folding("step", 1, lambda x: not x < 0),
    "int_step": _folding("int_step", 1, lambda x: x > 0),
}


class relu(sympy.Function):  # noqa: N801 (the QVR name)
    """``relu(x)``: ``x`` where it is positive, else 0."""

    nargs = 1

    @classmethod
    def eval(cls, x):
        return sympy.Max(x, 0) if x.is_Number else None


class clamp(sympy.Function):  # noqa: N801 (the QVR name)
    """``clamp(x, lo, hi)``: ``x`` moved into ``[lo, hi]``."""

    nargs = 3

    @classmethod
    def eval(cls, x, lo, hi):
        return sympy.Min(sympy.Max(x, lo), hi) if x.is_Number and lo.is_Number and hi.is_Number else None


class where(sympy.Function):  # noqa: N801 (the QVR name)
    """``where(c, a, b)``: ``a`` where ``c`` is not 0, else ``b``."""

    nargs = 3

    @classmethod
    def eval(cls, c, a, b):
        if c.is_Number:
            return a if c != 0 else b
        if a == b:
            return a
        return None


WHERE = where
DOT = sympy.Function("dot")
"""``dot(x, y)``: the product of ``x`` and ``y`` summed over the one axis they share."""

FUNCTIONS: dict[str, Callable[..., sympy.Basic]] = {
    "exp": sympy.exp,
    "log": sympy.log,
    "sqrt": sympy.sqrt,
    "abs": sympy.Abs,
    "tanh": sympy.tanh,
    **_CUSTOM_ELEMENTWISE,
    **_STEPS,
    "relu": relu,
    "clamp": clamp,
    **_REDUCTIONS,
    "where": WHERE,
    "dot": DOT,
}
"""Functions an expression may call, by name."""

ARITY: dict[str, tuple[int, int]] = {
    **{n: (1, 1) for n in ("exp", "log", "sqrt", "abs", "tanh", *_CUSTOM_ELEMENTWISE, *_STEPS, "relu")},
    "clamp": (3, 3),
    **{n: (1, 2) for n in _REDUCTIONS},
    "where": (3, 3),
    "dot": (2, 3),
}
"""The least and the most arguments each function takes."""

AXIS_ARGUMENT: dict[str, int] = {**{n: 1 for n in _REDUCTIONS}, "dot": 2}
"""The position of the argument that names an axis (a finite set), by function."""

_fresh = itertools.count()


class Constant:
    """A tensor an expression holds, and the finite sets that name its
    axes (``over``, from :func:`const`) or None."""

    __slots__ = ("tensor", "over")

    def __init__(self, tensor: torch.Tensor, over: tuple[FinSet, ...] | None = None) -> None:
        self.tensor, self.over = tensor, over


Tables = Mapping[str, Any]
"""What an expression holds by symbol name: :class:`Constant` s (``__const``
symbols) and :class:`IndexFunction` s (``__map`` functions)."""

_EMPTY: Tables = {}


def _merge(*tables: Tables) -> Tables:
    """The union of ``tables`` (never mutated: an empty or lone table is shared)."""
    nonempty = [t for t in tables if t]
    if len(nonempty) <= 1:
        return nonempty[0] if nonempty else _EMPTY
    out: dict[str, Any] = {}
    for t in nonempty:
        out.update(t)
    return out


def _lift(value: Any) -> tuple[sympy.Basic, Tables]:
    """``value`` as a sympy tree and the tables it holds."""
    if isinstance(value, Expr):
        return value.sympy, value.tables
    if isinstance(value, torch.Tensor) and not (value.dim() == 0 and not value.requires_grad):
        name = f"__const{next(_fresh)}"
        return sympy.Symbol(name, real=True), {name: Constant(value)}
    return _sym(value), _EMPTY


def _sym(value: Any) -> sympy.Basic:
    if isinstance(value, bool):
        return sympy.Integer(int(value))
    if isinstance(value, numbers.Integral):
        return sympy.Integer(int(value))
    if isinstance(value, numbers.Real):
        return sympy.Float(float(value))
    if isinstance(value, torch.Tensor) and value.dim() == 0 and not value.requires_grad:
        return _sym(value.item())
    if isinstance(value, str):
        return sympy.Symbol(value, real=True)
    if isinstance(value, sympy.Basic):
        return value
    raise QuiversTypeError(f"cannot use {type(value).__name__} `{value!r}` in an expression")


class Expr:
    """A symbolic expression over a program's names.

    Supports ``+ - * / **``, unary minus, and indexing ``x[i]``, ``x[i, j]``.
    It owns its data: the tensors and index tables it holds travel with it
    (:attr:`tables`), are merged by its operators, and go when it goes.
    """

    __slots__ = ("sympy", "tables")

    def __init__(self, expr: Any, tables: Tables = _EMPTY) -> None:
        e, own = _lift(expr)
        self.sympy = e
        self.tables = _merge(own, tables)

    @classmethod
    def from_sympy(cls, expr: sympy.Basic, tables: Tables = _EMPTY) -> Expr:
        return cls(expr, tables)

    def _with(self, e: sympy.Basic, *others: Any) -> Expr:
        """A new expression ``e`` holding the tables of ``self`` and ``others``."""
        out = Expr.__new__(Expr)
        out.sympy = e
        out.tables = _merge(self.tables, *(o.tables for o in others if isinstance(o, Expr)))
        return out

    def names(self) -> frozenset[str]:
        """The program names the expression reads."""
        return frozenset(
            s.name for s in self.sympy.free_symbols if not s.name.startswith("__const")
        )

    def constants(self) -> dict[str, Constant]:
        """The tensor constants the expression holds, by symbol name.

        Examples
        --------
        >>> e = const(torch.ones(2)) * var("x")
        >>> [(c.tensor.shape, c.over) for c in e.constants().values()]
        [(torch.Size([2]), None)]
        """
        return {
            s.name: self.tables[s.name]
            for s in self.sympy.free_symbols
            if isinstance(self.tables.get(s.name), Constant)
        }

    def rename(self, mapping: Mapping[str, str]) -> Expr:
        """This expression reading ``mapping[n]`` wherever it read ``n``."""
        symbols = {sympy.Symbol(old, real=True): sympy.Symbol(new, real=True) for old, new in mapping.items()}
        return self._with(self.sympy.xreplace(symbols))

    def __repr__(self) -> str:
        return f"Expr({self.sympy})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Expr) and self.sympy == other.sympy

    def __hash__(self) -> int:
        return hash(self.sympy)

    def _op(self, o: Any, fn: Callable[[sympy.Basic, sympy.Basic], sympy.Basic]) -> Expr:
        e, tables = _lift(o)
        out = self._with(fn(self.sympy, e))
        out.tables = _merge(out.tables, tables)
        return out

    def __getitem__(self, key: Any) -> Expr:
        keys = [_lift(k) for k in (key if isinstance(key, tuple) else (key,))]
        out = self._with(INDEX(self.sympy, *(k for k, _ in keys)))
        out.tables = _merge(out.tables, *(t for _, t in keys))
        return out

    def __add__(self, o: Any) -> Expr:
        return self._op(o, lambda a, b: a + b)

    def __radd__(self, o: Any) -> Expr:
        return self._op(o, lambda a, b: b + a)

    def __sub__(self, o: Any) -> Expr:
        return self._op(o, lambda a, b: a - b)

    def __rsub__(self, o: Any) -> Expr:
        return self._op(o, lambda a, b: b - a)

    def __mul__(self, o: Any) -> Expr:
        return self._op(o, lambda a, b: a * b)

    def __rmul__(self, o: Any) -> Expr:
        return self._op(o, lambda a, b: b * a)

    def __truediv__(self, o: Any) -> Expr:
        return self._op(o, lambda a, b: a / b)

    def __rtruediv__(self, o: Any) -> Expr:
        return self._op(o, lambda a, b: b / a)

    def __pow__(self, o: Any) -> Expr:
        return self._op(o, lambda a, b: a**b)

    def __rpow__(self, o: Any) -> Expr:
        return self._op(o, lambda a, b: b**a)

    def __neg__(self) -> Expr:
        return self._with(-self.sympy)


def var(name: str) -> Expr:
    """The program name ``name`` as an expression."""
    return Expr(sympy.Symbol(name, real=True))


def const(value: Any, over: FinSet | None = None) -> Expr:
    """A constant (number or tensor) as an expression.

    ``over`` names the axes of a tensor: its shape must be ``over.shape``
    and its axes are the factors of ``over``, so ``const(w, A * B)[a]``
    indexes the ``A`` axis by an element ``a`` of ``A`` whatever the site
    it appears in (a conditional probability table).

    Examples
    --------
    >>> A, B = FinSet("A", 2), FinSet("B", 3)
    >>> e = const(torch.ones(2, 3), A * B)[var("a")]
    >>> list(constant_axes(e).values())
    [(FinSet('A', 2), FinSet('B', 3))]
    """
    if over is None:
        return Expr(value)
    if not isinstance(over, FinSet):
        raise QuiversTypeError(f"`over` of a constant must be a FinSet, got `{over!r}`")
    if not isinstance(value, torch.Tensor):
        value = torch.as_tensor(value, dtype=torch.get_default_dtype())
    if tuple(value.shape) != over.shape:
        raise ShapeError(
            f"a constant of shape {tuple(value.shape)} does not fit `{over.name}`, of shape {over.shape}"
        )
    name = f"__const{next(_fresh)}"
    return Expr(sympy.Symbol(name, real=True), {name: Constant(value, over.factors)})


def constant_axes(expr: Expr) -> dict[str, tuple[FinSet, ...]]:
    """The named axes of the constants built with ``const(value, over)``
    that ``expr`` holds, by their symbol names."""
    return {name: c.over for name, c in expr.constants().items() if c.over is not None}


# ------------------------------------------------------- index functions


class IndexFunction:
    """A function between finite sets applied to integer values.

    Argument ``i`` is an element of ``sets[i]``; together they index the
    row-major product of ``sets``, and ``table`` maps that index to an
    element of ``cod``. The result carries ``values_in=cod.name``, so it
    indexes ``cod``-axes by name.
    """

    __slots__ = ("sets", "cod", "table")

    def __init__(self, sets: tuple[FinSet, ...], cod: FinSet, table: torch.Tensor) -> None:
        self.sets, self.cod, self.table = sets, cod, table


def _index_call(fn: IndexFunction, *args: Any) -> Expr:
    name = f"__map{next(_fresh)}"
    lifted = [_lift(a) for a in args]
    return Expr(sympy.Function(name)(*(e for e, _ in lifted)), _merge({name: fn}, *(t for _, t in lifted)))


def index_function(e: sympy.Basic, tables: Tables) -> IndexFunction | None:
    """The :class:`IndexFunction` a sympy node applies (looked up in the
    ``tables`` of the expression it belongs to), or None."""
    if isinstance(e, sympy.Function):
        fn = tables.get(e.func.__name__)
        return fn if isinstance(fn, IndexFunction) else None
    return None


class HostFunction:
    """A function of tensors (a QVR computation) applied to values.

    Argument ``i`` must have exactly ``ranks[i]`` named axes, which the
    function sees positionally; leading batch axes (particles, chains) are
    broadcast and the function runs once per batch element. Its result's
    axes are named ``axes``.
    """

    __slots__ = ("name", "fn", "ranks", "axes")

    def __init__(self, name: str, fn: Callable[..., torch.Tensor], ranks: tuple[int, ...], axes: tuple[str, ...]) -> None:
        self.name, self.fn, self.ranks, self.axes = name, fn, ranks, axes


def host_call(fn: HostFunction, *args: Any) -> Expr:
    """The expression ``fn(*args)``, a call of a function of tensors.

    Examples
    --------
    >>> from quivers.programs.named import Value
    >>> total = HostFunction("total", lambda x: x.sum(), (1,), ())
    >>> f = compile_expr(host_call(total, var("x")))
    >>> float(f({"x": Value(torch.tensor([1.0, 2.0]), ("I",))}).tensor)
    3.0
    >>> batch = f({"x": Value(torch.tensor([[1.0, 2.0], [3.0, 4.0]]), ("I",))})
    >>> batch.tensor.tolist(), batch.dims
    ([3.0, 7.0], ())
    """
    name = f"__host{next(_fresh)}"
    lifted = [_lift(a) for a in args]
    return Expr(sympy.Function(name)(*(e for e, _ in lifted)), _merge({name: fn}, *(t for _, t in lifted)))


def host_function(e: sympy.Basic, tables: Tables) -> HostFunction | None:
    """The :class:`HostFunction` a sympy node applies, or None."""
    if isinstance(e, sympy.Function):
        fn = tables.get(e.func.__name__)
        return fn if isinstance(fn, HostFunction) else None
    return None


def apply(f: FinFunction, x: Any) -> Expr:
    """The image ``f(x)`` of an element ``x`` of ``f.dom``: an element of
    ``f.cod``. An argument not known to lie in ``f.dom`` is range-checked
    when the expression runs.

    Examples
    --------
    >>> from quivers.programs.named import Value
    >>> f = FinFunction(FinSet("A", 3), FinSet("B", 2), [1, 0, 1])
    >>> v = compile_expr(apply(f, var("a")))({"a": Value(torch.tensor([0, 1, 2]), ("I",))})
    >>> v.tensor, v.values_in
    (tensor([1, 0, 1]), 'B')
    """
    if not isinstance(f, FinFunction):
        raise QuiversTypeError(f"`apply` takes a FinFunction, got `{f!r}`")
    return _index_call(IndexFunction((f.dom,), f.cod, f.mapping), x)


def pair(x: Any, y: Any, left: FinSet, right: FinSet) -> Expr:
    """The element ``(x, y)`` of ``left * right``, at the row-major index
    ``x * |right| + y``.

    Examples
    --------
    >>> from quivers.programs.named import Value
    >>> A, B = FinSet("A", 2), FinSet("B", 3)
    >>> env = {"a": Value(torch.tensor(1)), "b": Value(torch.tensor(2))}
    >>> v = compile_expr(pair(var("a"), var("b"), A, B))(env)
    >>> int(v.tensor), v.values_in
    (5, 'A*B')
    """
    for s in (left, right):
        if not isinstance(s, FinSet):
            raise QuiversTypeError(f"`pair` takes two FinSets, got `{s!r}`")
    whole = left * right
    flat = FinSet(whole.name, whole.size)  # one axis over the pairs, not one per factor
    return _index_call(IndexFunction((left, right), flat, torch.arange(whole.size)), x, y)


# ------------------------------------------------------- vectors and matrices


def stack(over: FinSet, items: Any) -> Expr:
    """A value along ``over`` built from its ``|over|`` entries, in the
    row-major order of the elements of ``over``: the result has the axes of
    ``over`` (``K``, or ``K`` and ``K'`` for ``K * K``) after those the
    entries broadcast to, so entries on a plate give one vector per row.

    Examples
    --------
    >>> from quivers.programs.named import Value
    >>> K = FinSet("K", 2)
    >>> w = stack(K, [var("theta"), 1 - var("theta")])
    >>> v = compile_expr(w)({"theta": Value(torch.tensor([0.25, 0.5]), ("Item",))})
    >>> v.dims, v.tensor
    (('Item', 'K'), tensor([[0.2500, 0.7500],
            [0.5000, 0.5000]]))
    >>> stack(K, [1.0])
    Traceback (most recent call last):
    ...
    quivers.errors.ShapeError: a value along `K` (size 2) needs 2 entries, got 1
    """
    if not isinstance(over, FinSet):
        raise QuiversTypeError(f"`stack` runs along a FinSet, got `{over!r}`")
    items = list(items)
    if len(items) != over.size or over.size == 0:
        raise ShapeError(f"a value along `{over.name}` (size {over.size}) needs {over.size} entries, got {len(items)}")
    head = sympy.Tuple(*(sympy.Tuple(Str(f.name), sympy.Integer(f.size)) for f in over.factors))
    lifted = [_lift(i) for i in items]
    return Expr(STACK(head, *(e for e, _ in lifted)), _merge(*(t for _, t in lifted)))


def vector(over: FinSet, *items: Any) -> Expr:
    """The vector ``(items[0], ..., items[n-1])`` along ``over`` (``n = |over|``):
    ``vector(K, theta, 1 - theta)`` is a pair of Categorical weights.

    Examples
    --------
    >>> vector(FinSet("K", 2), var("theta"), 1 - var("theta"))
    Expr(stack(((K, 2),), theta, 1 - theta))
    """
    return stack(over, items)


def matrix(over: FinSet, *items: Any) -> Expr:
    """The square matrix on ``over * over`` (axes ``K`` and ``K'``) with the
    ``|over|^2`` entries given row by row: a 2 x 2 covariance is
    ``matrix(K, s1 ^ 2, r * s1 * s2, r * s1 * s2, s2 ^ 2)``.

    Examples
    --------
    >>> from quivers.programs.named import Value
    >>> m = compile_expr(matrix(FinSet("K", 2), 1.0, var("r"), var("r"), 1.0))
    >>> v = m({"r": Value(torch.tensor(0.5))})
    >>> v.dims, v.tensor
    (('K', "K'"), tensor([[1.0000, 0.5000],
            [0.5000, 1.0000]]))
    """
    return stack(over * over, items)


BUILDERS: dict[str, Callable[..., Expr]] = {"vector": vector, "matrix": matrix}
"""Functions that build a value from entries, by name: their first argument
is the finite set the entries run along."""


def stack_set(e: sympy.Basic) -> FinSet | None:
    """The set a :func:`stack` node runs along, or None for another node."""
    if not (isinstance(e, sympy.Function) and e.func == STACK):
        return None
    out = FinSet.unit()
    for name, size in e.args[0].args:
        out = out * FinSet(str(name), int(size))
    return out


TABLE = sympy.Function("table")
"""The head of a value defined by one expression at every cell of a product
of finite sets (:func:`table`); its arguments are the sets, as ``(name,
size)`` pairs, and a :class:`sympy.Lambda` of one binder per set."""


def table(binders: Any, body: Any) -> Expr:
    """The value on ``A * B * ...`` whose cell ``(a, b, ...)`` is ``body``
    with each binder standing for the number of its element: ``binders``
    pairs each binder's name with its set (one declared, not a product;
    distinct sets), ``body`` reads a binder as a subscript (``x[a]`` reads
    ``x`` on ``A`` at ``a``) or as a number. The result has the axes of
    the sets after those ``body`` broadcasts to, as :func:`stack` of the
    cells written out would, but it runs as one vectorized expression: each
    binder is the whole of its set along an axis of its own, so ``x[a]``
    is ``x`` with its ``A`` axis renamed, not one gather per cell.

    Examples
    --------
    >>> from quivers.programs.named import Value
    >>> A, B = FinSet("A", 2), FinSet("B", 3)
    >>> t = table([("a", A), ("b", B)], var("x")[var("a")] + 10 * var("b"))
    >>> v = compile_expr(t)({"x": Value(torch.tensor([0.0, 1.0]), ("A",))})
    >>> v.dims, v.tensor
    (('A', 'B'), tensor([[ 0., 10., 20.],
            [ 1., 11., 21.]]))
    >>> table([("a", A * B)], var("a"))
    Traceback (most recent call last):
    ...
    quivers.errors.QuiversTypeError: the binder `a` ranges over the product `A*B`; give one binder per factor
    """
    pairs = [(str(b), s) for b, s in binders]
    for b, s in pairs:
        if not isinstance(s, FinSet):
            raise QuiversTypeError(f"the binder `{b}` of a table ranges over a FinSet, got `{s!r}`")
        if len(s.factors) != 1:
            raise QuiversTypeError(f"the binder `{b}` ranges over the product `{s.name}`; give one binder per factor")
    if not pairs or len({b for b, _ in pairs}) != len(pairs) or len({s.name for _, s in pairs}) != len(pairs):
        raise QuiversTypeError("a table has one or more binders, each with its own name and its own set")
    head = sympy.Tuple(*(sympy.Tuple(Str(s.name), sympy.Integer(s.size)) for _, s in pairs))
    e, tables = _lift(body)
    lam = sympy.Lambda(tuple(sympy.Symbol(b, real=True) for b, _ in pairs), e)
    return Expr(TABLE(head, lam), tables)


def table_sets(e: sympy.Basic) -> tuple[FinSet, ...] | None:
    """The sets a :func:`table` node runs along, in order, or None for another node."""
    if not (isinstance(e, sympy.Function) and e.func == TABLE):
        return None
    return tuple(FinSet(str(name), int(size)) for name, size in e.args[0].args)


def table_cells(e: sympy.Basic) -> sympy.Basic:
    """A :func:`table` node written out as the :func:`stack` of its cells,
    row-major (what a backend without vectorized tables, such as Stan
    emission, reads).

    Examples
    --------
    >>> e = table([("k", FinSet("K", 2))], var("x")[var("k")]).sympy
    >>> table_cells(e)
    stack(((K, 2),), index(x, 0), index(x, 1))
    """
    lam = e.args[1]
    sets = table_sets(e)
    cells = [lam(*(sympy.Integer(i) for i in cell)) for cell in itertools.product(*(range(s.size) for s in sets))]
    return STACK(e.args[0], *cells)


def as_expr(value: Any) -> Expr:
    """``value`` as an :class:`Expr` (strings are names)."""
    return value if isinstance(value, Expr) else Expr(value)


def call(name: str, *args: Any) -> Expr:
    """Apply the function ``name`` (one of :data:`FUNCTIONS`).

    A reduction takes the axis it runs along as an optional second argument
    (a :class:`~quivers.categories.FinSet` or its name): ``sum(x, K)`` sums
    ``x`` over its axis ``K`` only, and ``dot(x, y, K)`` is ``sum(x * y, K)``.

    Examples
    --------
    >>> call("exp", var("x"))
    Expr(exp(x))
    >>> call("sum", var("X") * var("beta"), FinSet("P", 3))
    Expr(sum(X*beta, P))
    >>> call("where", var("x") - 1, var("x"), 0)
    Expr(where(x - 1, x, 0))
    >>> call("expp", var("x"))
    Traceback (most recent call last):
    ...
    quivers.errors.UnknownNameError: unknown function `expp`; did you mean `exp`?
    """
    fn = FUNCTIONS.get(name)
    if fn is None:
        raise UnknownNameError(f"unknown function `{name}`", name=name, candidates=FUNCTIONS)
    low, high = ARITY[name]
    if not low <= len(args) <= high:
        raise QuiversTypeError(f"`{name}` takes {arity_text(name)}, got {len(args)}")
    axis = AXIS_ARGUMENT.get(name)
    parts: list[sympy.Basic] = []
    tables: list[Tables] = []
    for i, a in enumerate(args):
        if i == axis:
            parts.append(Str(_axis_name(name, a)))
        else:
            e, t = _lift(a)
            parts.append(e)
            tables.append(t)
    if name == "dot" and len(parts) == 3:
        return Expr(_REDUCTIONS["sum"](parts[0] * parts[1], parts[2]), _merge(*tables))
    return Expr(fn(*parts), _merge(*tables))


def arity_text(name: str) -> str:
    """How many arguments the function ``name`` takes, in words.

    Examples
    --------
    >>> arity_text("exp"), arity_text("sum"), arity_text("where")
    ('one argument', 'one or two arguments', 'three arguments')
    """
    low, high = ARITY[name]
    words = {1: "one", 2: "two", 3: "three"}
    count = words[low] if low == high else f"{words[low]} or {words[high]}"
    return f"{count} argument{'s' if high > 1 else ''}"


def _axis_name(name: str, axis: Any) -> str:
    if isinstance(axis, FinSet) and len(axis.factors) == 1:
        return axis.name
    if isinstance(axis, str) and axis.isidentifier():
        return axis
    raise QuiversTypeError(f"the axis of `{name}` must be a finite set (not a product) or its name, got `{axis!r}`")


def compare(op: str, left: Any, right: Any) -> Expr:
    """``left op right`` for ``op`` in ``< <= > >= == !=``: 1 where it holds,
    0 where it does not (so ``(x > 0) * x`` is ``max(x, 0)``).

    Examples
    --------
    >>> compare(">", var("x"), 0)
    Expr(gt(x, 0))
    >>> compare("<", 1, 2)
    Expr(1)
    """
    if op not in COMPARISONS:
        raise QuiversTypeError(f"unknown comparison `{op}`; comparisons are {' '.join(COMPARISONS)}")
    (a, ta), (b, tb) = _lift(left), _lift(right)
    return Expr(COMPARISONS[op](a, b), _merge(ta, tb))


def reduction_axis(e: sympy.Basic) -> str | None:
    """The axis a reduction node ``f(x, K)`` runs along (``K``), or None
    for ``f(x)`` and any other node."""
    if isinstance(e, sympy.Function) and e.func.__name__ in _REDUCTIONS and len(e.args) == 2:
        return str(e.args[1])
    return None


# ---------------------------------------------------------------- compiling

Evaluator = Callable[[Env], Value]


def compile_expr(expr: Any) -> Evaluator:
    """Compile an expression into a function from an environment of
    :class:`Value` s to a :class:`Value`."""
    expr = as_expr(expr)
    e = expr.sympy
    if e.has(sympy.zoo, sympy.nan, sympy.I):
        raise InvalidValueError(
            f"expression `{e}` has no finite real value (it folds to a complex number, an "
            "undefined value or a complex infinity, e.g. log(0), 1/0 or sqrt(-1))"
        )
    return _compile(e, expr.tables)


def _compile(e: sympy.Basic, tables: Tables) -> Evaluator:
    if isinstance(e, sympy.Symbol):
        return _lookup(e.name, tables)
    if e.is_Number:
        c = float(e)
        return lambda env: _scalar(env, c)
    if isinstance(e, sympy.Function) and e.func == INDEX:
        return _compile_index(e, tables)
    if isinstance(e, sympy.Function) and e.func.__name__ in _REDUCTIONS:
        return _compile_reduction(e.func.__name__, _compile(e.args[0], tables), reduction_axis(e))
    if isinstance(e, WHERE):
        return _compile_where(e, tables)
    if isinstance(e, sympy.Function) and e.func == DOT:
        return _compile_dot(_compile(e.args[0], tables), _compile(e.args[1], tables))
    fn = index_function(e, tables)
    if fn is not None:
        return _compile_index_function(fn, [_compile(a, tables) for a in e.args])
    host = host_function(e, tables)
    if host is not None:
        return _compile_host(host, [_compile(a, tables) for a in e.args])
    over = stack_set(e)
    if over is not None:
        return _compile_stack(over, [_compile(a, tables) for a in e.args[1:]])
    sets = table_sets(e)
    if sets is not None:
        return _compile_table(sets, e.args[1], tables)
    return _compile_elementwise(e, tables)


def _compile_stack(over: FinSet, parts: list[Evaluator]) -> Evaluator:
    names, shape = plate_dims(over)

    def evaluate(env: Env) -> Value:
        values = [p(env) for p in parts]
        tensors, dims, _ = align(values)
        clash = [d for d in names if d in dims]
        if clash:
            raise ShapeError(f"the entries of a value along `{over.name}` already have the axis `{clash[0]}`")
        tensors = [t if torch.is_floating_point(t) else t.to(torch.get_default_dtype()) for t in tensors]
        out = torch.stack(torch.broadcast_tensors(*tensors), -1)
        return Value(out.reshape(*out.shape[:-1], *shape), dims + names)

    return evaluate


def _compile_table(sets: tuple[FinSet, ...], lam: sympy.Lambda, tables: Tables) -> Evaluator:
    """A :func:`table`: its body evaluated once, each binder bound to
    ``arange`` of its set along an axis of its own (named apart from every
    plate, so a body that already has the set's axis is caught as
    :func:`stack` would catch it), those axes then named by the sets."""
    body = _compile(lam.expr, tables)
    binders = [v.name for v in lam.variables]
    names = tuple(s.name for s in sets)
    own = tuple(f"{s.name}@{b}" for b, s in zip(binders, sets))
    shape = tuple(s.size for s in sets)
    elements: dict[Any, dict[str, Value]] = {}

    def evaluate(env: Env) -> Value:
        ref = env.get(REF) if env else None
        device = ref.tensor.device if ref is not None else None
        bound = elements.get(device)
        if bound is None:
            bound = elements[device] = {
                b: Value(torch.arange(s.size, device=device), (d,), values_in=s.name, enumerates=True)
                for b, d, s in zip(binders, own, sets)
            }
        v = body(collections.ChainMap(bound, env))
        clash = [d for d in names if d in v.dims]
        if clash:
            over = " * ".join(names)
            raise ShapeError(f"the entries of a value along `{over}` already have the axis `{clash[0]}`")
        rest = tuple(d for d in v.dims if d not in own)
        b = v.batch_ndim
        t = to_layout(v, b, rest + own)
        if not torch.is_floating_point(t):
            t = t.to(torch.get_default_dtype())
        sizes = v.sizes()
        t = t.expand(*t.shape[:b], *(sizes[d] for d in rest), *shape)
        return Value(t, rest + names)

    return evaluate


def _elements(v: Value, t: torch.Tensor, s: FinSet) -> torch.Tensor:
    """``t`` (laid out from ``v``) as elements of ``s``: integers, checked
    to lie in ``s`` unless ``v`` is known to take values in it. Not
    checked while a graph is captured: it cannot read them, and in a
    potential they are data, checked by its eager first call."""
    read = not capturing()
    if read and torch.is_floating_point(t):
        frac = t != torch.round(t)
        if bool(frac.any()):
            raise DataError(f"value {float(t[frac][0])} is not an element of `{s.name}`: it is not an integer")
    t = t.long()
    if read and v.values_in != s.name:
        bad = (t < 0) | (t >= s.size)
        if bool(bad.any()):
            raise DataError(f"value {int(t[bad][0])} is not an element of `{s.name}` (size {s.size})")
    return t


def _compile_index_function(fn: IndexFunction, parts: list[Evaluator]) -> Evaluator:
    def evaluate(env: Env) -> Value:
        values = [p(env) for p in parts]
        tensors, dims, _ = align(values)
        flat = None
        for v, t, s in zip(values, tensors, fn.sets):
            t = _elements(v, t, s)
            flat = t if flat is None else flat * s.size + t
        # indexed by a 1-dim tensor: a 0-dim one would be read on the host as an int
        image = fn.table.to(flat.device)[flat.reshape(-1)].reshape(flat.shape)
        return Value(image, dims, values_in=fn.cod.name)

    return evaluate


def _compile_host(fn: HostFunction, parts: list[Evaluator]) -> Evaluator:
    def evaluate(env: Env) -> Value:
        values = [p(env) for p in parts]
        for k, (v, rank) in enumerate(zip(values, fn.ranks)):
            if len(v.dims) != rank:
                what = f"the axes {', '.join(v.dims)}" if v.dims else "no axes"
                raise ShapeError(
                    f"argument {k + 1} of `{fn.name}` is a tensor with {rank} axes; the value given has {what}"
                )
        batch = torch.broadcast_shapes(*(v.batch_shape for v in values))
        tensors = [v.tensor.expand((*batch, *v.tensor.shape[v.batch_ndim:])) for v in values]
        if not batch:
            return Value(fn.fn(*tensors), fn.axes)
        flat = [t.reshape(-1, *t.shape[len(batch):]) for t in tensors]
        outs = [fn.fn(*(t[i] for t in flat)) for i in range(flat[0].shape[0] if flat else 1)]
        out = torch.stack(outs)
        return Value(out.reshape(*batch, *out.shape[1:]), fn.axes)

    return evaluate


REF = "__ref__"
"""Environment key of a tensor whose dtype and device constants follow."""


_SCALARS: dict[tuple, Value] = {}


def _scalar(env: Env, c: float) -> Value:
    """The constant ``c`` as a value of the run's dtype and device, made
    once: a program evaluates its numeric constants on every call."""
    ref = env.get(REF) if env else None
    dtype, device = (ref.tensor.dtype, ref.tensor.device) if ref is not None else (torch.get_default_dtype(), None)
    key = (c, dtype, device)
    v = _SCALARS.get(key)
    if v is None:
        if len(_SCALARS) > 4096:
            _SCALARS.clear()
        v = _SCALARS[key] = Value(torch.tensor(c, dtype=dtype, device=device))
    return v


def constant_tensors(expr: Expr) -> dict[str, torch.Tensor]:
    """The tensor constants an expression holds, by their symbol names."""
    return {name: c.tensor for name, c in expr.constants().items()}


def _lookup(name: str, tables: Tables, relaxed: bool = False) -> Evaluator:
    """Read ``name``; a relaxed value only where ``relaxed`` (as an index,
    the one use with a convex reading: see :mod:`quivers.programs.relaxed`).
    A constant the environment lacks is read from the expression's own
    ``tables`` (a program puts its constants, as buffers, in the
    environment)."""
    own = tables.get(name)
    fallback = own.tensor if isinstance(own, Constant) else None

    def look(env: Env) -> Value:
        try:
            v = env[name]
        except KeyError:
            if fallback is not None:
                return Value(fallback)
            raise UnknownNameError(
                f"name `{name}` is not defined",
                name=name,
                candidates=[k for k in env if not k.startswith("__")],
            ) from None
        if not relaxed and type(v) is RelaxedValue:
            raise QuiversTypeError(
                f"`{name}` has a relaxed (one-hot) value, which can only index an axis of its values "
                f"(as in `x[{name}]`)",
                hint=f"index by `{name}` only, or give `{name}` an integer value",
            )
        return v

    return look


def _compile_index(e: sympy.Basic, tables: Tables) -> Evaluator:
    base = _compile(e.args[0], tables)
    indices = [
        _lookup(a.name, tables, relaxed=True) if isinstance(a, sympy.Symbol) else _compile(a, tables)
        for a in e.args[1:]
    ]

    def index(env: Env) -> Value:
        x = base(env)
        ivals = [i(env) for i in indices]
        if x.enumerates and not any(iv.values_in in x.dims for iv in ivals):
            # a latent summed by a plan is its one axis at every element of its plate (`z[group]`)
            return x
        free = [d for d in x.dims]
        axes = []
        for k, iv in enumerate(ivals):
            if iv.values_in is not None and iv.values_in in free:
                axis = iv.values_in
            elif iv.values_in is None and free:
                axis = free[0]
            elif iv.values_in is not None and _copy_of(iv.values_in, free) is not None:
                axis = _copy_of(iv.values_in, free)  # `t[k, k]` on `K * K`: the second reads `K'`
            else:
                raise ShapeError(
                    f"cannot index `{e.args[0]}` (axes {list(x.dims)}) by `{e.args[k + 1]}`"
                    + (f" (values in `{iv.values_in}`)" if iv.values_in else "")
                )
            free.remove(axis)
            axes.append(axis)
        for axis, iv in zip(axes, ivals):
            x = soft_index(x, iv, axis) if type(iv) is RelaxedValue else gather(x, iv, axis)
        return x

    return index


def _copy_of(s: str, free: list[str]) -> str | None:
    """The first axis of ``free`` that is a later copy of the set ``s``
    (``K'`` of ``K * K``: :func:`~quivers.programs.named.plate_dims`), or None."""
    return next((d for d in free if d.rstrip("'") == s), None)


def _compile_reduction(name: str, arg: Evaluator, axis: str | None = None) -> Evaluator:
    if axis is not None:
        return _compile_axis_reduction(name, arg, axis)

    def reduce(env: Env) -> Value:
        v = arg(env)
        if name == "sum":
            return reduce_sum(v)
        if name == "mean":
            count = 1
            for d in v.dims:
                count *= v.size(d)
            return Value(reduce_sum(v).tensor / count)
        if name == "logsumexp":
            for d in v.dims:
                v = logsumexp(v, d)
            return v
        if name == "prod":
            b = v.batch_ndim
            t = v.tensor.reshape(*v.tensor.shape[:b], -1).prod(-1) if v.dims else v.tensor
            return Value(t)
        if not v.dims:
            raise ShapeError(f"`{name}` needs a value with at least one axis")
        return _along(name, v, -1)

    return reduce


def _along(name: str, v: Value, dim: int) -> Value:
    """``name`` (softmax, log_softmax, sort, cumsum) of ``v`` along its tensor axis ``dim``."""
    t = v.tensor
    if name == "softmax":
        out = torch.softmax(t, dim)
    elif name == "log_softmax":
        out = torch.log_softmax(t, dim)
    elif name == "cumsum":
        out = torch.cumsum(t if torch.is_floating_point(t) else t.to(torch.get_default_dtype()), dim)
    else:
        out = torch.sort(t, dim).values
    return Value(out, v.dims, v.values_in if name == "sort" else None)


def _compile_axis_reduction(name: str, arg: Evaluator, axis: str) -> Evaluator:
    """``name(x, axis)``: along the named ``axis`` of ``x`` only."""

    def reduce(env: Env) -> Value:
        v = arg(env)
        if axis not in v.dims:
            raise ShapeError(
                f"`{name}(..., {axis})` runs along `{axis}`, but its argument has "
                + (f"the axes {list(v.dims)}" if v.dims else "no axis"),
                hint=f"declare the value on `{axis}`, or reduce along one of its axes",
            )
        dim = v.batch_ndim + v.dims.index(axis)
        rest = tuple(d for d in v.dims if d != axis)
        t = v.tensor if torch.is_floating_point(v.tensor) else v.tensor.to(torch.get_default_dtype())
        if name == "sum":
            return Value(t.sum(dim), rest)
        if name == "mean":
            return Value(t.mean(dim), rest)
        if name == "prod":
            return Value(t.prod(dim), rest)
        if name == "logsumexp":
            return logsumexp(Value(t, v.dims), axis)
        return _along(name, v, dim)

    return reduce


def _compile_dot(left: Evaluator, right: Evaluator) -> Evaluator:
    """``dot(x, y)``: ``x * y`` summed over the one named axis they share."""

    def dot(env: Env) -> Value:
        x, y = left(env), right(env)
        shared = [d for d in x.dims if d in y.dims]
        if len(shared) != 1:
            raise ShapeError(
                f"`dot(x, y)` sums over the one axis its arguments share; they share "
                + (", ".join(f"`{d}`" for d in shared) if shared else "none")
                + f" (axes {list(x.dims)} and {list(y.dims)})",
                hint="name the axis: `dot(x, y, K)`" if shared else "declare both on the axis to sum over",
            )
        tensors, dims, _ = align([x, y])
        tensors = [t if torch.is_floating_point(t) else t.to(torch.get_default_dtype()) for t in tensors]
        return reduce_sum(Value(tensors[0] * tensors[1], dims), shared)

    return dot


def _compile_where(e: sympy.Basic, tables: Tables) -> Evaluator:
    """``where(c, a, b)``. Each branch reads the names it uses through a
    mask: where the branch is not taken, a name's value reaches it detached
    from autograd, so a branch that is undefined there (``log`` of 0,
    ``sqrt`` of a negative number) gives a zero gradient, not NaN. A name
    on fewer axes than the condition is read as it is (its gradient sums
    over the positions of both branches)."""
    cond, yes, no = (_compile(a, tables) for a in e.args)
    reads = [sorted(s.name for s in a.free_symbols if not s.name.startswith("__")) for a in e.args[1:]]

    def evaluate(env: Env) -> Value:
        c = cond(env)
        taken = Value(c.tensor != 0, c.dims)
        a = yes(_masked(env, reads[0], taken, True))
        b = no(_masked(env, reads[1], taken, False))
        tensors, dims, _ = align([taken, a, b])
        values = [t if torch.is_floating_point(t) else t.to(torch.get_default_dtype()) for t in tensors[1:]]
        return Value(torch.where(tensors[0], *values), dims)

    return evaluate


def _masked(env: Env, names: list[str], taken: Value, keep: bool) -> Env:
    """``env`` with each value of ``names`` that needs a gradient cut from
    autograd where ``taken`` is not ``keep``."""
    masked: dict[str, Value] = {}
    for n in names:
        v = env.get(n)
        if (v is None or type(v) is not Value or not v.tensor.requires_grad
                or not set(taken.dims) <= set(v.dims) or taken.batch_ndim > v.batch_ndim):
            continue
        mask = to_layout(taken, v.batch_ndim, v.dims)
        if not keep:
            mask = ~mask
        t = v.tensor
        masked[n] = Value(torch.where(mask, t, t.detach()), v.dims, v.values_in, v.enumerates)
    return collections.ChainMap(masked, env) if masked else env


def _is_leaf(node: sympy.Basic, tables: Tables) -> bool:
    """A node an elementwise function takes as an argument: a name, an
    indexing, a reduction or an index function, each compiled on its own."""
    return isinstance(node, sympy.Symbol) or (
        isinstance(node, sympy.Function)
        and (node.func in (INDEX, STACK, TABLE, WHERE, DOT) or node.func.__name__ in _REDUCTIONS
             or index_function(node, tables) is not None)
    )


def _compile_elementwise(e: sympy.Basic, tables: Tables) -> Evaluator:
    leaves: dict[sympy.Basic, None] = {}

    def collect(node: sympy.Basic) -> None:
        if _is_leaf(node, tables):
            leaves.setdefault(node, None)
        else:
            for a in node.args:
                collect(a)

    collect(e)
    # One walk of the tree (quivers.programs.lowering); lambdify, which prints
    # and execs source, only for the nodes that walk does not know.
    fn = lower(list(leaves), e, _ELEMENTWISE_TORCH)
    if fn is None:
        dummies = {leaf: sympy.Dummy(f"a{i}", real=True) for i, leaf in enumerate(leaves)}
        fn = sympy.lambdify(list(dummies.values()), e.xreplace(dummies), modules=[_ELEMENTWISE_TORCH, "math"])
    parts = [_compile(leaf, tables) for leaf in leaves]
    if not parts:
        c = float(e)
        return lambda env: _scalar(env, c)

    def elementwise(env: Env) -> Value:
        values = [p(env) for p in parts]
        if len(values) == 1:
            v = values[0]
            out = fn(v.tensor if torch.is_floating_point(v.tensor) else v.tensor.to(torch.get_default_dtype()))
            return Value(torch.as_tensor(out), v.dims)
        tensors, dims, _ = align(values)
        tensors = [t if torch.is_floating_point(t) else t.to(torch.get_default_dtype()) for t in tensors]
        return Value(torch.as_tensor(fn(*tensors)), dims)

    return elementwise
