"""Program expressions (sympy trees over named axes) as Stan expressions.

A quivers value lives on named axes; Stan indexes containers by position.
An expression is translated under a *binding*: a map from each axis name
to the Stan index that selects one element of it (a loop variable ``i``, a
lookup ``group[i]``), or to :data:`VECTOR` for the one axis a vectorized
statement runs along. A name on axes ``(A, B)`` then reads ``x[a, b]``, and
``mu_k[z]`` binds the axis of ``mu_k`` that ``z`` ranges over to the index of
``z``, exactly as the runtime's gather does.

Laws
----
- Integer-valued sites that index a finite set (index maps, marginalized
  latents, Categorical data) are 1-based in Stan and 0-based in quivers:
  as indices they are used as they are, as values they read ``(x - 1)``.
- A quotient of two integers is written ``1.0 * a / b``: Stan's ``/`` on
  integers truncates, quivers' never does.
- What cannot be translated faithfully raises
  :class:`~quivers.errors.UnsupportedError`; vectorized translation that
  fails raises :class:`NotVectorizable`, and the caller falls back to loops.

Examples
--------
>>> import sympy
>>> x, y = sympy.symbols("x y", real=True)
>>> t = Translator({"x": ("x", ()), "y": ("y", ("J",))})
>>> t.code(2 * x + y / x, {"J": "j"})
'2 * x + y[j] / x'
>>> t.code(2 * x + y / x, {"J": VECTOR})
'2 * x + y / x'
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Mapping
from dataclasses import dataclass

import sympy

from quivers.errors import UnsupportedError
from quivers.programs.expr import _copy_of, reduction_axis, stack_set, table_cells, table_sets
from quivers.programs.named import plate_dims

__all__ = ["Translator", "VECTOR", "NotVectorizable", "Leaf", "number"]

VECTOR = "<vector>"
"""Binding of the axis a vectorized statement runs along."""

# Precedence, loosest first.
_ADD, _MUL, _UNARY, _POW, _ATOM = 1, 2, 3, 4, 5

_ELEMENTWISE = {
    "exp": "exp",
    "log": "log",
    "Abs": "abs",
    "tanh": "tanh",
    "sigmoid": "inv_logit",
    "log1p": "log1p",
    "expm1": "expm1",
    "softplus": "log1p_exp",
    "logit": "logit",
}
_PAIRWISE = {"Max": "fmax", "Min": "fmin"}
_REDUCE = {"sum": "sum", "mean": "mean", "prod": "prod", "logsumexp": "log_sum_exp"}
_ALONG_LAST = {"softmax": "softmax", "log_softmax": "log_softmax", "sort": "sort_asc", "cumsum": "cumulative_sum"}
_COMPARE = {"lt": "<", "le": "<=", "gt": ">", "ge": ">=", "eq": "==", "ne": "!="}
_STEP = {"step": "step", "int_step": "int_step"}


class NotVectorizable(Exception):
    """A vectorized translation is not possible; write the loop instead."""


@dataclass(frozen=True)
class Leaf:
    """How a name reads in Stan.

    ``dims`` are its named axes; ``values_in`` the finite set whose axis it
    selects when used as an index; ``integer`` whether Stan holds it as
    ``int``; ``one_based`` whether Stan holds it 1-based; ``loop`` the loop
    variable of an enumerated latent, which has no Stan variable of its own;
    ``rows`` whether Stan holds it as an array of vectors along its last
    axis (``array[Doc] simplex[Topic]``), whose rows are vectors already,
    where a matrix's rows are row vectors.
    """

    stan: str
    dims: tuple[str, ...] = ()
    values_in: str | None = None
    integer: bool = False
    one_based: bool = False
    loop: str | None = None
    rows: bool = False


@dataclass(frozen=True)
class _Code:
    text: str
    prec: int
    integer: bool = False
    vector: bool = False


def number(value: sympy.Basic | float | int) -> str:
    """A Stan literal: integers as integers, other rationals as decimals.

    Examples
    --------
    >>> number(sympy.Integer(3)), number(sympy.Rational(1, 4)), number(2.5e-8)
    ('3', '0.25', '2.5e-08')
    """
    if isinstance(value, (int, sympy.Integer)):
        return str(int(value))
    v = float(value)
    if v != v or v in (float("inf"), float("-inf")):
        raise UnsupportedError(f"the constant `{value}` is not finite; Stan has no literal for it")
    text = repr(v)
    return text if any(c in text for c in ".e") else text + ".0"


class Translator:
    """Translate sympy expressions over a program's names into Stan.

    Parameters
    ----------
    leaves
        Every name an expression may read: a :class:`Leaf`, or a pair
        ``(stan_name, dims)`` for a plain real-valued one.
    inline
        Names to replace by their defining expression (the ``let``s of a
        marginalize body, which have no Stan variable).
    """

    def __init__(
        self,
        leaves: Mapping[str, Leaf | tuple[str, tuple[str, ...]]],
        inline: Mapping[str, sympy.Basic] | None = None,
    ) -> None:
        self.leaves = {k: v if isinstance(v, Leaf) else Leaf(v[0], tuple(v[1])) for k, v in leaves.items()}
        self.inline = dict(inline or {})
        # inside `sum(x, K)`: a value on more axes than `K` is read as its slice along `K`
        self._slices = False

    # ------------------------------------------------------------ axes

    def leaf(self, name: str) -> Leaf:
        try:
            return self.leaves[name]
        except KeyError:
            raise UnsupportedError(f"`{name}` has no Stan counterpart here") from None

    def dims(self, e: sympy.Basic) -> tuple[str, ...]:
        """The named axes of ``e``, in the runtime's order."""
        if table_sets(e) is not None:
            names = tuple(f.name for f in table_sets(e))
            with self._binders(e) as (body, own):
                inner = self.dims(body)
            return tuple(d for d in inner if d not in own) + names
        if isinstance(e, sympy.Symbol):
            if e.name in self.inline:
                return self.dims(self.inline[e.name])
            leaf = self.leaf(e.name)
            return (e.name,) if leaf.loop is not None else leaf.dims
        if e.is_Number or not e.args:
            return ()
        name = type(e).__name__
        if name == "index":
            base = list(self.dims(e.args[0]))
            out: list[str] = []
            for i in e.args[1:]:
                axis = self._axis(e.args[0], base, i)
                base.remove(axis)
                out += [d for d in self.dims(i) if d not in out]
            return tuple(base) + tuple(d for d in out if d not in base)
        axis = reduction_axis(e)
        if axis is not None:
            inner = self.dims(e.args[0])
            return tuple(d for d in inner if d != axis) if name in _REDUCE else inner
        if name in _REDUCE:
            return ()
        if name == "dot":
            x, y = self.dims(e.args[0]), self.dims(e.args[1])
            return tuple(d for d in x + tuple(d for d in y if d not in x) if not (d in x and d in y))
        over = stack_set(e)
        if over is not None:
            out = []
            for a in e.args[1:]:
                out += [d for d in self.dims(a) if d not in out]
            return tuple(out) + plate_dims(over)[0]
        out = []
        for a in e.args:
            out += [d for d in self.dims(a) if d not in out]
        return tuple(out)

    def values_in(self, e: sympy.Basic) -> str | None:
        if isinstance(e, sympy.Symbol) and e.name not in self.inline:
            return self.leaf(e.name).values_in
        return None

    def _axis(self, base: sympy.Basic, free: list[str], index: sympy.Basic) -> str:
        """The axis of ``base`` that ``index`` selects (the runtime's rule)."""
        vin = self.values_in(index)
        if vin is not None and vin in free:
            return vin
        if vin is None and free:
            return free[0]
        if vin is not None and _copy_of(vin, free) is not None:
            return _copy_of(vin, free)
        raise UnsupportedError(f"cannot index `{base}` (axes {free}) by `{index}`")

    # ------------------------------------------------------------ code

    def code(self, e: sympy.Basic, bind: Mapping[str, str]) -> str:
        """``e`` as Stan under ``bind`` (axis name to Stan index or :data:`VECTOR`)."""
        return self._t(e, dict(bind)).text

    def is_integer(self, e: sympy.Basic, bind: Mapping[str, str]) -> bool:
        return self._t(e, dict(bind)).integer

    def index(self, e: sympy.Basic, bind: Mapping[str, str]) -> str:
        """``e`` used as a 1-based Stan index."""
        if e.is_Integer:
            return str(int(e) + 1)
        if isinstance(e, sympy.Symbol) and e.name not in self.inline:
            leaf = self.leaf(e.name)
            if leaf.loop is not None:
                return leaf.loop
            if leaf.integer:
                code = self._read(leaf, e.name, bind)
                if code.vector:
                    raise NotVectorizable(e.name)
                return code.text if leaf.one_based else f"{code.text} + 1"
        raise UnsupportedError(
            f"indexing by `{e}`: Stan emission indexes only by integers, index maps and "
            "marginalized latents"
        )

    def _read(self, leaf: Leaf, name: str, bind: Mapping[str, str]) -> _Code:
        vector = [d for d in leaf.dims if bind.get(d) == VECTOR]
        missing = [d for d in leaf.dims if d not in bind]
        if missing:
            raise UnsupportedError(f"`{name}` varies over `{missing[0]}`, which no loop binds here")
        if vector:
            if leaf.dims != tuple(vector) and self._slices and len(vector) == 1 and not leaf.integer:
                return self._slice(leaf, vector[0], bind)
            if leaf.dims != tuple(vector) or (leaf.integer and not leaf.one_based):
                raise NotVectorizable(name)
            return _Code(leaf.stan, _ATOM, leaf.integer, True)
        if not leaf.dims:
            return _Code(leaf.stan, _ATOM, leaf.integer)
        return _Code(f"{leaf.stan}[{', '.join(bind[d] for d in leaf.dims)}]", _ATOM, leaf.integer)

    @staticmethod
    def _slice(leaf: Leaf, axis: str, bind: Mapping[str, str]) -> _Code:
        """The Stan vector of a real ``leaf`` along ``axis``, its other axes
        bound: a column ``X[:, j]`` of a matrix, or a row ``X[i]'`` turned
        into a vector (real values on two or more axes are matrices, the
        leading axes arrays of them)."""
        parts = [":" if d == axis else bind[d] for d in leaf.dims]
        row = leaf.dims[-1] == axis and not leaf.rows
        text = f"{leaf.stan}[{', '.join(parts)}]" + ("'" if row else "")
        return _Code(text, _ATOM, False, True)

    def _t(self, e: sympy.Basic, bind: dict[str, str]) -> _Code:
        if table_sets(e) is not None:
            return self._table(e, bind)
        if isinstance(e, sympy.Symbol):
            if e.name in self.inline:
                return self._t(self.inline[e.name], bind)
            leaf = self.leaf(e.name)
            if leaf.loop is not None:
                return _Code(f"({leaf.loop} - 1)", _ATOM, True)
            code = self._read(leaf, e.name, bind)
            if leaf.one_based:
                if code.vector:
                    raise NotVectorizable(e.name)
                return _Code(f"({code.text} - 1)", _ATOM, True)
            return code
        if e is sympy.pi:
            return _Code("pi()", _ATOM)
        if e is sympy.E:
            return _Code("e()", _ATOM)
        if e.is_Number:
            text = number(e)
            return _Code(text, _UNARY if text.startswith("-") else _ATOM, bool(e.is_Integer))
        name = type(e).__name__
        if name == "index":
            return self._index(e, bind)
        if isinstance(e, sympy.Add):
            return self._add(e, bind)
        if isinstance(e, sympy.Mul):
            return self._mul(e, bind)
        if isinstance(e, sympy.Pow):
            return self._pow(e, bind)
        if name in _ELEMENTWISE or isinstance(e, (sympy.exp, sympy.log)):
            if isinstance(e, sympy.log) and len(e.args) != 1:
                raise UnsupportedError(f"`{e}`: a logarithm with a base")
            arg = self._t(e.args[0], bind)
            return _Code(f"{_ELEMENTWISE[name]}({arg.text})", _ATOM, False, arg.vector)
        if name in _PAIRWISE:
            parts = [self._t(a, bind) for a in e.args]
            if any(p.vector for p in parts):
                raise NotVectorizable(name)
            text = parts[0].text
            for p in parts[1:]:
                text = f"{_PAIRWISE[name]}({text}, {p.text})"
            return _Code(text, _ATOM)
        axis = reduction_axis(e)
        if axis is not None:
            return self._along_axis(name, e.args[0], axis, bind)
        if name in _REDUCE:
            return self._reduce(_REDUCE[name], e.args[0], bind)
        if name in _ALONG_LAST:
            return self._along_last(_ALONG_LAST[name], e.args[0], bind)
        if name in _COMPARE:
            a, b = (self._t(x, bind) for x in e.args)
            if a.vector or b.vector:
                raise NotVectorizable(name)
            return _Code(f"({self._wrap(a, _ADD)} {_COMPARE[name]} {self._wrap(b, _ADD)})", _ATOM, True)
        if name in _STEP:
            arg = self._t(e.args[0], bind)
            if arg.vector:
                raise NotVectorizable(name)
            return _Code(f"{_STEP[name]}({arg.text})", _ATOM, True)
        if name in ("relu", "clamp"):
            parts = [self._t(x, bind) for x in e.args]
            if any(p.vector for p in parts):
                raise NotVectorizable(name)
            text = f"fmax({parts[0].text}, 0)" if name == "relu" else f"fmin(fmax({parts[0].text}, {parts[1].text}), {parts[2].text})"
            return _Code(text, _ATOM)
        if name == "where":
            c, a, b = (self._t(x, bind) for x in e.args)
            if c.vector or a.vector or b.vector:
                raise NotVectorizable(name)
            test = c.text if type(e.args[0]).__name__ in _COMPARE else f"{self._wrap(c, _ADD)} != 0"
            return _Code(f"({test} ? {a.text} : {b.text})", _ATOM, a.integer and b.integer)
        if name == "dot":
            x, y = self.dims(e.args[0]), self.dims(e.args[1])
            shared = [d for d in x if d in y]
            if len(shared) != 1:
                raise UnsupportedError(f"`{e}`: its arguments share the axes {shared}, not one")
            return self._along_axis("sum", e.args[0] * e.args[1], shared[0], bind)
        if stack_set(e) is not None:
            return self._stack(e, bind)
        raise UnsupportedError(f"`{e}` has no Stan translation")

    def _stack(self, e: sympy.Basic, bind: dict[str, str]) -> _Code:
        """One entry of ``vector(K, ...)`` / ``matrix(K, ...)``, the one its
        bound indices select: directly for constant indices, else by Stan's
        conditional operator on the loop variables."""
        over = stack_set(e)
        names, shape = plate_dims(over)
        if len(names) == 1 and bind.get(names[0]) == VECTOR:
            # a vector used whole (the loc of a MultivariateNormal): Stan's
            # row-vector literal, transposed, when its entries are scalars
            entries = [self._t(a, bind) for a in e.args[1:]]
            if not any(c.vector for c in entries):
                return _Code(f"[{', '.join(c.text for c in entries)}]'", _ATOM, False, True)
        if any(bind.get(n) == VECTOR for n in names):
            raise NotVectorizable(str(e))
        if any(n not in bind for n in names):
            raise UnsupportedError(
                f"`{over.name}`-valued entries `{e}` are used whole; Stan emission writes a vector or "
                "matrix built from entries only one entry at a time",
                hint="bind it with `let` first: the let becomes a transformed parameter written entry by entry",
            )
        entries = [self._t(a, bind) for a in e.args[1:]]
        index = [bind[n] for n in names]
        if all(i.isdigit() for i in index):
            flat = 0
            for i, n in zip(index, shape):
                flat = flat * n + int(i) - 1
            return entries[flat]
        text = entries[-1].text
        cells = list(itertools.product(*(range(1, n + 1) for n in shape)))
        for code, cell in reversed(list(zip(entries[:-1], cells[:-1]))):
            test = " && ".join(f"{i} == {c}" for i, c in zip(index, cell))
            text = f"{test} ? {code.text} : {text}"
        return _Code(f"({text})", _ATOM, all(c.integer for c in entries), any(c.vector for c in entries))

    @contextlib.contextmanager
    def _binders(self, e: sympy.Basic, bind: Mapping[str, str] | None = None):
        """The body of the table ``e`` with each binder a name of its own
        that reads as the loop over its set (``bind``'s index of the set):
        ``x[v]`` is ``x[v_loop]`` and a bare ``v`` is ``(v_loop - 1)``. Yields
        the body and those names, which are leaves only meanwhile."""
        lam, sets = e.args[1], table_sets(e)
        own = {v: sympy.Symbol(f"__table_{f.name}_{v.name}", real=True) for v, f in zip(lam.variables, sets)}
        for v, f in zip(lam.variables, sets):
            loop = (bind or {}).get(f.name, f.name)
            self.leaves[own[v].name] = Leaf(loop, values_in=f.name, integer=True, loop=loop)
        try:
            yield lam.expr.xreplace(own), {o.name for o in own.values()}
        finally:
            for o in own.values():
                self.leaves.pop(o.name, None)

    def _table(self, e: sympy.Basic, bind: dict[str, str]) -> _Code:
        """One entry of a table, the one its bound indices select: its body
        read at them (``grid[r, l] = rowfx[r] + leaf[l]``), not its cells
        written out."""
        names = [f.name for f in table_sets(e)]
        if any(bind.get(n) == VECTOR for n in names):
            raise NotVectorizable(str(e))
        if any(n not in bind for n in names):
            return self._t(table_cells(e), bind)  # its entries used whole: the stack's rule and error
        with self._binders(e, bind) as (body, _):
            return self._t(body, bind)

    def _index(self, e: sympy.Basic, bind: dict[str, str]) -> _Code:
        base = e.args[0]
        free = list(self.dims(base))
        inner = dict(bind)
        for i in e.args[1:]:
            axis = self._axis(base, free, i)
            free.remove(axis)
            leaf = self.leaf(i.name) if isinstance(i, sympy.Symbol) and i.name not in self.inline else None
            if leaf is not None and leaf.loop is None and leaf.one_based and any(
                bind.get(d) == VECTOR for d in leaf.dims
            ):
                if leaf.dims != tuple(d for d in leaf.dims if bind.get(d) == VECTOR):
                    raise NotVectorizable(i.name)
                # A multi-index: `a[group]` reads one element of `a` per row.
                if not isinstance(base, sympy.Symbol) or self.leaf(base.name).dims != (axis,):
                    raise NotVectorizable(str(e))
                return _Code(f"{self.leaf(base.name).stan}[{leaf.stan}]", _ATOM, False, True)
            inner[axis] = self.index(i, bind)
        return self._t(base, inner)

    def _add(self, e: sympy.Add, bind: dict[str, str]) -> _Code:
        terms = e.as_ordered_terms()
        first = self._t(terms[0], bind)
        text, integer, vector = first.text, first.integer, first.vector
        for t in terms[1:]:
            if t.could_extract_minus_sign():
                c = self._t(-t, bind)
                text += f" - {c.text if c.prec > _ADD else f'({c.text})'}"
            else:
                c = self._t(t, bind)
                text += f" + {c.text}"
            integer, vector = integer and c.integer, vector or c.vector
        return _Code(text, _ADD, integer, vector)

    def _factors(self, factors, bind) -> list[_Code]:
        return [self._t(f, bind) for f in factors]

    def _mul(self, e: sympy.Mul, bind: dict[str, str]) -> _Code:
        coeff, factors = e.as_coeff_mul()
        if coeff < 0:
            inner = self._t(-e, bind)
            return _Code(f"-{self._wrap(inner, _UNARY)}", _UNARY, inner.integer, inner.vector)
        num = [f for f in factors if not (isinstance(f, sympy.Pow) and f.exp.is_negative)]
        den = [f.base ** (-f.exp) for f in factors if isinstance(f, sympy.Pow) and f.exp.is_negative]
        if isinstance(coeff, sympy.Rational) and not coeff.is_Integer:
            if coeff.p != 1:
                num = [sympy.Integer(coeff.p)] + num
            den = [sympy.Integer(coeff.q)] + den
        elif coeff != 1:
            num = [coeff] + num
        ncode = self._product(self._factors(num, bind)) if num else _Code("1", _ATOM, True)
        if not den:
            return ncode
        dparts = self._factors(den, bind)
        dcode = self._product(dparts)
        op = " ./ " if dcode.vector else " / "
        ntext = self._wrap(ncode, _MUL)
        if ncode.integer and dcode.integer:
            ntext = f"1.0 * {ntext}"
        dtext = dcode.text if dcode.prec > _MUL else f"({dcode.text})"
        return _Code(f"{ntext}{op}{dtext}", _MUL, False, ncode.vector or dcode.vector)

    def _product(self, parts: list[_Code]) -> _Code:
        if len(parts) == 1:
            return parts[0]
        text = self._wrap(parts[0], _MUL)
        vector, integer = parts[0].vector, parts[0].integer
        for p in parts[1:]:
            op = " .* " if vector and p.vector else " * "
            text += op + (p.text if p.prec > _MUL else f"({p.text})")
            vector, integer = vector or p.vector, integer and p.integer
        return _Code(text, _MUL if len(parts) > 1 else parts[0].prec, integer, vector)

    @staticmethod
    def _wrap(c: _Code, prec: int) -> str:
        return c.text if c.prec >= prec else f"({c.text})"

    def _pow(self, e: sympy.Pow, bind: dict[str, str]) -> _Code:
        base, exp = e.base, e.exp
        if base is sympy.E:
            arg = self._t(exp, bind)
            return _Code(f"exp({arg.text})", _ATOM, False, arg.vector)
        if exp.is_negative:
            inner = self._t(base ** (-exp), bind)
            op = " ./ " if inner.vector else " / "
            return _Code(f"1.0{op}{self._wrap(inner, _ATOM)}", _MUL, False, inner.vector)
        if exp == sympy.Rational(1, 2):
            arg = self._t(base, bind)
            return _Code(f"sqrt({arg.text})", _ATOM, False, arg.vector)
        b, x = self._t(base, bind), self._t(exp, bind)
        if b.vector or x.vector:
            raise NotVectorizable(str(e))
        # Stan's ^ is right associative and binds tighter than unary minus.
        btext = b.text if b.prec > _POW else f"({b.text})"
        xtext = x.text if x.prec >= _POW else f"({x.text})"
        return _Code(f"{btext}^{xtext}", _POW)

    def _free_axis(self, arg: sympy.Basic, bind: dict[str, str], what: str) -> str | None:
        free = [d for d in self.dims(arg) if d not in bind]
        if len(free) > 1:
            raise UnsupportedError(f"`{what}` over the axes {free} at once")
        return free[0] if free else None

    def _reduce(self, fn: str, arg: sympy.Basic, bind: dict[str, str]) -> _Code:
        if any(v == VECTOR for v in bind.values()) and set(self.dims(arg)) & {
            d for d, v in bind.items() if v == VECTOR
        }:
            raise NotVectorizable(fn)
        axis = self._free_axis(arg, bind, fn)
        if axis is None:
            return self._t(arg, bind)
        try:
            inner = self._t(arg, {**bind, axis: VECTOR})
        except NotVectorizable:
            raise UnsupportedError(f"`{fn}` of `{arg}`: its argument is not a vector expression") from None
        return _Code(f"{fn}({inner.text})", _ATOM)

    def _along_axis(self, name: str, arg: sympy.Basic, axis: str, bind: dict[str, str]) -> _Code:
        """``name(arg, axis)``: a Stan vector along ``axis``, every other axis
        of ``arg`` bound by a loop; a function that keeps the axis is read at
        the loop's index of it."""
        if any(v == VECTOR for v in bind.values()) and set(self.dims(arg)) & {
            d for d, v in bind.items() if v == VECTOR
        }:
            raise NotVectorizable(name)
        if axis not in self.dims(arg):
            raise UnsupportedError(f"`{name}(..., {axis})` of `{arg}`, which has no axis `{axis}`")
        keeps = name in _ALONG_LAST
        if keeps and axis not in bind:
            raise UnsupportedError(f"`{name}(..., {axis})` varies over `{axis}`, which no loop binds here")
        slices, self._slices = self._slices, True
        try:
            inner = self._t(arg, {**bind, axis: VECTOR})
        except NotVectorizable:
            raise UnsupportedError(f"`{name}` of `{arg}`: its argument is not a vector expression") from None
        finally:
            self._slices = slices
        if keeps:
            return _Code(f"{_ALONG_LAST[name]}({inner.text})[{bind[axis]}]", _ATOM)
        return _Code(f"{_REDUCE[name]}({inner.text})", _ATOM)

    def _along_last(self, fn: str, arg: sympy.Basic, bind: dict[str, str]) -> _Code:
        dims = self.dims(arg)
        if not dims:
            raise UnsupportedError(f"`{fn}` of `{arg}`, which has no axis")
        last = dims[-1]
        if bind.get(last) == VECTOR:
            inner = self._t(arg, bind)
            return _Code(f"{fn}({inner.text})", _ATOM, False, True)
        if any(v == VECTOR for v in bind.values()):
            raise NotVectorizable(fn)
        if last not in bind:
            raise UnsupportedError(f"`{fn}(...)` varies over `{last}`, which no loop binds here")
        try:
            inner = self._t(arg, {**bind, last: VECTOR})
        except NotVectorizable:
            raise UnsupportedError(f"`{fn}` of `{arg}`: its argument is not a vector expression") from None
        return _Code(f"{fn}({inner.text})[{bind[last]}]", _ATOM)
