"""A ``Mixture`` whose weights are written as a list: ``Mixture([0.3, 0.7],
[Normal(0.0, 1.0), Normal(3.0, 1.0)])``.

The list runs along the mixture's components, not along a plate, so it is
not a vector literal of the step (those run along the step's last object):
it has one entry per component family, and a list of numbers given as
``weights`` (or ``probs``) is a point of the simplex, nonnegative and
summing to 1 within :data:`TOLERANCE`; ``logits=[...]`` takes any finite
reals. Entries that are expressions (``[p, 1 - p]``) are weights in
proportion, normalized when the mixture is built, as for any weight
vector. The compiler gives the list an axis of its own, named by
:func:`components_set`, which the family reads as its component axis.

Examples
--------
>>> from quivers.dsl.parser import parse
>>> (_, p) = parse("object N : FinSet 2\\nprogram p : N -> N\\n"
...                "    observe y : N <- Mixture([0.25, 0.75], [Normal(0.0, 1.0), Normal(3.0, 1.0)])\\n").items
>>> lit = literal_weights(p.body[0].family)
>>> lit.key, len(lit.vector.items), lit.components
('weights', 2, 2)
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from quivers.categories import FinSet
from quivers.distributions import FAMILIES
from quivers.dsl import ast
from quivers.dsl.printer import dump_expr
from quivers.errors import InvalidValueError, QuiversTypeError, Span

__all__ = ["LiteralWeights", "literal_weights", "check_literal_weights", "components_set", "TOLERANCE"]

TOLERANCE = 1e-6
"""How far from 1 the sum of a literal list of weights may be."""

_KEYS = ("weights", "probs", "logits")


@dataclass(frozen=True)
class LiteralWeights:
    """The list ``vector`` a ``Mixture`` gives as its ``key`` (``weights``,
    ``probs`` or ``logits``), and how many component families it has."""

    vector: ast.Vector
    key: str
    components: int


def _is_family(e: ast.Expr) -> bool:
    from quivers.dsl.checker import SPELLINGS  # the checker imports this module

    return isinstance(e, ast.Call) and SPELLINGS.get(e.func, e.func) in FAMILIES


def literal_weights(f: ast.FamilyCall) -> LiteralWeights | None:
    """The list of weights of the ``Mixture`` ``f``, or None when ``f`` is
    another family or its weights are not written as a list. The list node
    is the one :func:`~quivers.dsl.checker.canonical_family` keeps."""
    from quivers.dsl.checker import canonical_family

    f = canonical_family(f)
    if f.name != "Mixture":
        return None
    count = sum(1 for a in f.args if _is_family(a))
    first = f.args[0] if f.args and not _is_family(f.args[0]) else None
    if isinstance(first, ast.Vector):
        return LiteralWeights(first, "weights", count)
    for k in f.kwargs:
        if k.name in _KEYS and isinstance(k.value, ast.Vector):
            return LiteralWeights(k.value, k.name, count)
    return None


def _number(e: ast.Expr) -> float | None:
    if isinstance(e, ast.Number):
        return float(e.value)
    if isinstance(e, ast.Neg):
        inner = _number(e.operand)
        return None if inner is None else -inner
    return None


def check_literal_weights(lit: LiteralWeights, source: str | None = None) -> list[float] | None:
    """Check ``lit``: one entry per component; numbers given as weights are
    a point of the simplex. Returns the numbers when every entry is one,
    else None. Errors name the list and its line and column.

    Examples
    --------
    >>> lit = LiteralWeights(ast.Vector((ast.Number(0.5), ast.Number(0.4))), "weights", 2)
    >>> check_literal_weights(lit)
    Traceback (most recent call last):
    ...
    quivers.errors.InvalidValueError: the weights `[0.5, 0.4]` of `Mixture` sum to 0.9, not 1: a list of weights ...
    """
    v, shown = lit.vector, dump_expr(lit.vector)

    def error(cls: type, message: str, hint: str | None = None, span: Span | None = None) -> Exception:
        return cls(message, span=span or v.span, source=source, hint=hint)

    if len(v.items) != lit.components:
        raise error(
            QuiversTypeError,
            f"`Mixture` has {lit.components} component famil{'y' if lit.components == 1 else 'ies'} but its "
            f"{lit.key} `{shown}` have {len(v.items)} entr{'y' if len(v.items) == 1 else 'ies'}",
            hint="give one entry per component, in the order of the components",
        )
    numbers = [_number(i) for i in v.items]
    if any(n is None for n in numbers):
        return None
    bad = next((i for i, n in zip(v.items, numbers) if not math.isfinite(n)), None)
    if bad is not None:
        raise error(InvalidValueError, f"the entry `{dump_expr(bad)}` of the {lit.key} `{shown}` is not finite",
                    span=bad.span)
    if lit.key == "logits":
        return numbers
    neg = next((i for i, n in zip(v.items, numbers) if n < 0), None)
    if neg is not None:
        raise error(
            InvalidValueError, f"the {lit.key} `{shown}` of `Mixture` has the negative entry `{dump_expr(neg)}`",
            hint="weights are probabilities; give `logits=[...]` for unconstrained scores", span=neg.span,
        )
    total = math.fsum(numbers)
    if abs(total - 1.0) > TOLERANCE:
        raise error(
            InvalidValueError,
            f"the {lit.key} `{shown}` of `Mixture` sum to {total:.6g}, not 1: a list of {lit.key} is a point of "
            "the simplex",
            hint="make them sum to 1, or give `logits=[...]`",
        )
    return numbers


def components_set(count: int, taken: Iterable[str] = ()) -> FinSet:
    """The axis a list of ``count`` mixture weights runs along: the same
    for every mixture of ``count`` components of a module (the sizes of
    sets of one name agree), named apart from the module's objects
    ``taken``, and a Stan identifier (emission declares its size).

    Examples
    --------
    >>> components_set(3)
    FinSet('Components3', 3)
    >>> components_set(3, ["Components3"])
    FinSet('Components3_', 3)
    """
    name = f"Components{count}"
    taken = set(taken)
    while name in taken:
        name += "_"
    return FinSet(name, count)
