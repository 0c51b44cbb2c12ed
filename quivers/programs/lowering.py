"""Elementwise sympy expressions lowered to torch by one walk of the tree.

:func:`sympy.lambdify` prints an expression to Python source and ``exec``s
it: a few milliseconds per expression, which dominates loading a program
of a thousand statements. :func:`lower` builds the same function as nested
closures, one per node, in one pass over the tree: ``Add`` and ``Mul`` fold
their arguments left to right (a ``Mul``'s factors with negative powers
become one division), ``Pow`` uses ``sqrt``, ``rsqrt`` and ``reciprocal``
for the exponents ``1/2``, ``-1/2`` and ``-1``, a function node calls the
torch function of its name, and a subtree without symbols is its float.
A node it does not know (sympy has many) makes it return None, and the
caller falls back to ``lambdify``.

Laws
----
- ``lower(args, e)(*xs)`` equals ``sympy.lambdify(args, e, ...)(*xs)`` up
  to rounding (the order of the terms of a sum may differ).

Examples
--------
>>> import sympy, torch
>>> a, b = sympy.symbols("a b", real=True)
>>> f = lower([a, b], 2 * a + b**2 / (1 + a**2) - sympy.exp(b), {"exp": torch.exp})
>>> x, y = torch.tensor([0.5]), torch.tensor([2.0])
>>> torch.allclose(f(x, y), 2 * x + y**2 / (1 + x**2) - torch.exp(y))
True
>>> lower([a], sympy.sin(a), {}) is None
True
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import sympy
import torch

__all__ = ["lower"]

Node = Callable[[tuple], Any]


class _Unknown(Exception):
    """A node :func:`lower` does not translate."""


def lower(args: Sequence[sympy.Symbol], body: sympy.Basic, functions: Mapping[str, Callable]) -> Callable | None:
    """A function of one value per symbol of ``args`` that computes
    ``body``; ``functions`` maps sympy function names to torch functions.
    None when ``body`` holds a node without a translation."""
    index = {a: i for i, a in enumerate(args)}
    try:
        f = _lower(body, index, functions)
    except _Unknown:
        return None
    return lambda *xs: f(xs)


def _lower(e: sympy.Basic, index: Mapping[sympy.Basic, int], functions: Mapping[str, Callable]) -> Node:
    if e in index:
        i = index[e]
        return lambda xs: xs[i]
    if not e.free_symbols:
        try:
            c = float(e)
        except TypeError:  # a complex constant: not ours
            raise _Unknown(e) from None
        return lambda xs: c
    if e.is_Add:
        return _fold([_lower(a, index, functions) for a in e.args], _add)
    if e.is_Mul:
        return _mul(e, index, functions)
    if e.is_Pow:
        return _pow(e.base, e.exp, index, functions)
    if isinstance(e, sympy.Function):
        fn = functions.get(type(e).__name__)
        if fn is None:
            raise _Unknown(e)
        parts = [_lower(a, index, functions) for a in e.args]
        if len(parts) == 1:
            (p,) = parts
            return lambda xs: fn(p(xs))
        return lambda xs: fn(*(p(xs) for p in parts))
    raise _Unknown(e)


def _add(a: Any, b: Any) -> Any:
    return a + b


def _times(a: Any, b: Any) -> Any:
    return a * b


def _fold(parts: list[Node], op: Callable[[Any, Any], Any]) -> Node:
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 2:
        p, q = parts
        return lambda xs: op(p(xs), q(xs))

    def fold(xs: tuple) -> Any:
        out = parts[0](xs)
        for p in parts[1:]:
            out = op(out, p(xs))
        return out

    return fold


def _mul(e: sympy.Mul, index, functions) -> Node:
    num: list[Node] = []
    den: list[Node] = []
    for a in e.args:
        if a.is_Pow and a.exp.is_Number and a.exp < 0 and a.base.free_symbols:
            den.append(_pow(a.base, -a.exp, index, functions))
        else:
            num.append(_lower(a, index, functions))
    if not den:
        return _fold(num, _times)
    bottom = _fold(den, _times)
    if not num:
        return lambda xs: torch.reciprocal(bottom(xs))
    top = _fold(num, _times)
    return lambda xs: _divide(top(xs), bottom(xs))


def _divide(a: Any, b: Any) -> Any:
    # `number / tensor` goes through a Python wrapper of torch's; the
    # reciprocal times the number is the same operation count.
    if isinstance(a, (int, float)):
        return a * torch.reciprocal(b)
    return a / b


def _pow(base: sympy.Basic, exp: sympy.Basic, index, functions) -> Node:
    b = _lower(base, index, functions)
    if exp.is_Number:
        if exp == 1:
            return b
        if exp == sympy.Rational(1, 2):
            return lambda xs: torch.sqrt(b(xs))
        if exp == sympy.Rational(-1, 2):
            return lambda xs: torch.rsqrt(b(xs))
        if exp == -1:
            return lambda xs: torch.reciprocal(b(xs))
        k = int(exp) if exp.is_Integer else float(exp)
        return lambda xs: b(xs) ** k
    x = _lower(exp, index, functions)
    if not base.free_symbols:
        c = float(base)
        return lambda xs: torch.pow(c, x(xs))
    return lambda xs: torch.pow(b(xs), x(xs))
