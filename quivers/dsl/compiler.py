"""Compiling a checked QVR AST into the Python combinators.

The compiler is a translation and nothing more: each declaration and step
becomes one call of the public API of :mod:`quivers.categories`,
:mod:`quivers.distributions` and :mod:`quivers.programs`, passing the
step's span and the program's source so that errors raised while a program
is built or run point at its QVR line.

Laws
----
- A program written in QVR and the same program built with the
  combinators have the same ``log_joint`` on the same data.
- Arithmetic becomes sympy through :class:`quivers.programs.Expr`, so
  ``2 * 0.5`` folds to ``1.0`` and ``x - x`` to ``0`` before anything runs;
  a family argument that folds to a number is passed as that number, so
  the registry checks it against its constraint, and an expression with a
  part that folds to no finite real number (``log(0)``, ``1 / 0``) is an
  :class:`~quivers.errors.InvalidValueError` at its QVR line.

Examples
--------
>>> from quivers.dsl.parser import parse
>>> text = '''
... object K : FinSet 2
... program p : K -> K
...     sample mu : K <- Normal(0.0, 2 * 0.5)
...     return mu
... '''
>>> objects, programs = compile_module(parse(text), text)
>>> objects["K"]
FinSet('K', 2)
>>> programs["p"].steps[0].family
Normal(loc=Expr(0.0), scale=Expr(1.00000000000000))
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import sympy
import torch

from quivers.categories import FinSet
from quivers.distributions import FAMILIES, Family, family, transform
from quivers.dsl import ast
from quivers.dsl.axes import DEFAULT, Algebra, grouping, site_set
from quivers.dsl.checker import SPELLINGS, DataRole, canonical_family, check, transform_call
from quivers.dsl.computations import compile_computations
from quivers.dsl.mixtures import LiteralWeights, check_literal_weights, components_set, literal_weights
from quivers.dsl.inline import inline
from quivers.dsl.morphisms import kernel_programs
from quivers.dsl.printer import dump_expr
from quivers.errors import InvalidValueError, QuiversError, QuiversTypeError, Span
from quivers.programs import (
    BUILDERS,
    Expr,
    Program,
    call,
    compare,
    const,
    data,
    factor,
    index_map,
    let,
    marginalize,
    markov,
    observe,
    ret,
    sample,
    var,
    stack,
    table,
    vector,
)
from quivers.programs import Step as RuntimeStep
from quivers.programs.computations import Computation
from quivers.programs.expr import AXIS_ARGUMENT, HostFunction, host_call
from quivers.programs import identity, rename, tensor, then
from quivers.planning import auto

__all__ = ["compile_module", "compile_expr", "compile_set"]

_BINARY: dict[str, Callable[[Any, Any], Expr]] = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": lambda a, b: a / b,
    "^": lambda a, b: a**b,
}


def compile_module(
    module: ast.Module, source: str | None = None
) -> tuple[dict[str, FinSet], dict[str, Program]]:
    """Check ``module`` and build its objects and programs.

    Parameters
    ----------
    module
        A parsed module.
    source
        Its text, for error messages.

    Returns
    -------
    objects, programs
        Dicts from names to :class:`~quivers.categories.FinSet` s and to
        :class:`~quivers.programs.Program` s, in declaration order.

    Raises
    ------
    QuiversError
        The first problem the checker finds, or an error the runtime raises
        while building a program, located at the QVR line.

    Examples
    --------
    >>> from quivers.dsl.parser import parse
    >>> objects, programs = compile_module(parse("object A : FinSet 2\\nobject P : FinSet = A * A"))
    >>> objects["P"].shape, programs
    ((2, 2), {})
    """
    module = inline(module, source)
    info = check(module, source)
    computations = compile_computations(module, source)
    drawing = kernel_programs(module)
    objects: dict[str, FinSet] = {}
    programs: dict[str, Program] = {}
    for d in module.items:
        if isinstance(d, (ast.ObjectDecl, ast.EnumObject)):
            objects[d.name] = _located(lambda d=d: FinSet(d.name, d.size), d.span, source)
        elif isinstance(d, ast.RealObject):  # the reals of dimension n, an axis of n coordinates
            objects[d.name] = _located(lambda d=d: FinSet(d.name, d.dim), d.span, source)
        elif isinstance(d, ast.ObjectDef):
            objects[d.name] = _located(lambda d=d: compile_set(d.value, objects), d.span, source)
        elif isinstance(d, ast.ProgramDecl) and d.name in drawing:
            continue  # it draws from morphisms: dsl/morphisms.py compiles it
        elif isinstance(d, ast.ProgramDecl) and not any(q.type == "FinSet" for q in d.params):
            how = _How(info.algebra, info.supports.get(d.name, {}), computations)
            programs[d.name] = _program(d, objects, source, info.data.get(d.name, {}), how)
        elif isinstance(d, ast.CompositeDecl):
            programs[d.name] = _composite(d, objects, programs, source)
    return objects, programs


def compile_set(s: ast.SetExpr, objects: dict[str, FinSet]) -> FinSet:
    """A set expression as a :class:`~quivers.categories.FinSet`.

    Examples
    --------
    >>> A, B = FinSet("A", 2), FinSet("B", 3)
    >>> compile_set(ast.SetProduct(ast.SetName("A"), ast.SetName("B")), {"A": A, "B": B}).size
    6
    """
    if isinstance(s, ast.SetName):
        return objects[s.name]
    if isinstance(s, ast.SetUnit):
        return FinSet.unit()
    if isinstance(s, ast.SetProduct):
        return compile_set(s.left, objects) * compile_set(s.right, objects)
    if isinstance(s, ast.SetSum):
        return compile_set(s.left, objects) + compile_set(s.right, objects)
    raise TypeError(f"not a set expression: {s!r}")


def compile_expr(
    e: ast.Expr, objects: Mapping[str, FinSet] | None = None, axis: FinSet | None = None
) -> Expr:
    """An expression as a symbolic :class:`~quivers.programs.Expr`;
    ``objects`` resolve the set of ``vector(K, ...)`` and ``matrix(K, ...)``
    and the axis of ``sum(x, K)``; ``axis`` is the set a vector literal
    ``[a, b]`` runs along.

    Examples
    --------
    >>> from quivers.dsl.parser import parse
    >>> (_, p) = parse("object K : FinSet 1\\nprogram p : K -> K\\n    let a = 2 * x ^ 2 - x * x\\n").items
    >>> compile_expr(p.body[0].value)
    Expr(x**2)
    """
    if isinstance(e, ast.Number):
        return const(e.value)
    if isinstance(e, ast.Name):
        return var(e.id)
    if isinstance(e, ast.BinOp):
        left, right = compile_expr(e.left, objects, axis), compile_expr(e.right, objects, axis)
        if e.op in ast.COMPARE_OPS:
            return compare(e.op, left, right)
        if e.op == "^":
            _check_power(left, right, e)
        return _in_range(_BINARY[e.op](left, right), e)
    if isinstance(e, ast.Neg):
        return -compile_expr(e.operand, objects, axis)
    if isinstance(e, ast.Subscript):
        indices = tuple(compile_expr(i, objects, axis) for i in e.indices)
        return compile_expr(e.base, objects, axis)[indices if len(indices) > 1 else indices[0]]
    if isinstance(e, ast.Call) and e.func in BUILDERS:
        head = e.args[0].id if e.args and isinstance(e.args[0], ast.Name) else None
        if head is None or objects is None or head not in objects:
            raise QuiversTypeError(f"`{e.func}` needs an object declared in its module as its first argument", span=e.span)
        over = objects[head]
        return BUILDERS[e.func](over, *(compile_expr(a, objects, axis) for a in e.args[1:]))
    if isinstance(e, ast.Call):
        k = AXIS_ARGUMENT.get(e.func)
        args = [
            _axis_object(a, objects, e) if i == k else compile_expr(a, objects, axis) for i, a in enumerate(e.args)
        ]
        return _in_range(call(e.func, *args), e)
    if isinstance(e, ast.Vector):
        if axis is None:
            raise QuiversTypeError(f"the vector `{dump_expr(e)}` has no object to run along", span=e.span)
        return vector(axis, *(compile_expr(i, objects, axis) for i in e.items))
    if isinstance(e, ast.Tabulate):
        sets = [objects[s.name] for _, s in e.binders] if objects is not None else []
        if e.cases is not None:
            return stack(sets[0], [compile_expr(v, objects, axis) for _, v in sorted(e.cases, key=lambda c: c[0])])
        # one vectorized expression over the binders' sets, not one per cell
        return table(list(zip((b for b, _ in e.binders), sets)), compile_expr(e.body, objects, axis))
    if isinstance(e, ast.Record):
        labels = FinSet("(" + ", ".join(label for label, _ in e.fields) + ")", len(e.fields))
        return stack(labels, [compile_expr(a, objects, axis) for _, a in e.fields])
    raise TypeError(f"not an expression node: {e!r}")


def _axis_object(a: ast.Expr, objects: Mapping[str, FinSet] | None, e: ast.Call) -> FinSet:
    """The object an axis argument (``K`` in ``sum(x, K)``) names."""
    if not isinstance(a, ast.Name) or objects is None or a.id not in objects:
        raise QuiversTypeError(f"the axis of `{dump_expr(e)}` must be a declared object", span=a.span)
    return objects[a.id]


# ------------------------------------------------------------ constant folding

_FLOAT_RANGE = (math.log10(sys.float_info.min * sys.float_info.epsilon), math.log10(sys.float_info.max))
"""Decimal exponents of the smallest (subnormal) and the largest float."""


def _too_far(e: ast.Expr, magnitude: float, shown: str) -> InvalidValueError:
    low, high = _FLOAT_RANGE
    size = "large" if magnitude > 0 else "small"
    return InvalidValueError(
        f"`{dump_expr(e)}` folds to {shown}, too {size} for floating point "
        f"(floats reach 1e{low:.0f} to 1e{high:.0f})",
        span=e.span,
    )


def _log10_abs(n: sympy.Number) -> float:
    """``log10 |n|`` of a nonzero sympy number of any size (Python integers
    have an exact ``log10``; a sympy Float carries an unbounded exponent)."""
    if n.is_Integer:
        return math.log10(abs(int(n)))
    if n.is_Rational:
        return math.log10(abs(int(n.p))) - math.log10(int(n.q))
    return float(sympy.log(abs(n), 10).evalf())


def _check_power(base: Expr, exponent: Expr, e: ast.BinOp) -> None:
    """Refuse to fold a constant power outside the range of floating point
    before sympy computes it: sympy raises integers to integer powers
    exactly, so ``9 ^ 9 ^ 9`` would take hours and gigabytes."""
    b, x = base.sympy, exponent.sympy
    if not (b.is_Number and x.is_Number) or b.is_zero or x.is_zero or abs(b) == 1:
        return
    magnitude = float(x) * _log10_abs(b)
    low, high = _FLOAT_RANGE
    if not low <= magnitude <= high:
        raise _too_far(e, magnitude, f"about 1e{magnitude:.0f}")


def _in_range(result: Expr, e: ast.Expr) -> Expr:
    """``result``, checked: a constant it folds to lies in the range of
    floating point. Checked at every node, so no later fold starts from a
    number beyond it (``exp`` of a huge sympy Float never ends)."""
    n = result.sympy
    if not n.is_number or n.has(*_NOT_FINITE_REAL):
        return result  # not constant, or left to the "not finite and real" check
    try:
        v = n if n.is_Number else n.evalf()
    except (OverflowError, ValueError):
        raise _too_far(e, math.inf, f"`{n}`") from None
    if not v.is_Number or v.is_zero or v in _NOT_FINITE_REAL:
        return result  # cannot evaluate (a reduction), exactly 0, or left to the check
    magnitude = _log10_abs(v)
    low, high = _FLOAT_RANGE
    if not low <= magnitude <= high:
        raise _too_far(e, magnitude, f"about 1e{magnitude:.0f}")
    return result


# ---------------------------------------------------------------- programs


def _located(build: Callable[[], Any], span: Span | None, source: str | None) -> Any:
    """Call ``build``; a QuiversError it raises is made to show QVR source."""
    try:
        return build()
    except QuiversError as err:
        raise err.relocated(span, source) from None


_NOT_FINITE_REAL = (sympy.zoo, sympy.nan, sympy.oo, -sympy.oo, sympy.I)


def _expr(e: ast.Expr, source: str | None, objects: Mapping[str, FinSet], axis: FinSet | None = None) -> Expr:
    """Compile ``e``, rejecting constants that fold to no finite real number."""
    expr = _located(lambda: compile_expr(e, objects, axis), e.span, source)
    bad = next((c for c in _NOT_FINITE_REAL if expr.sympy.has(c)), None)
    if bad is not None:
        raise InvalidValueError(
            f"`{dump_expr(e)}` folds to `{expr.sympy}`, which is not finite and real",
            span=e.span,
            source=source,
        )
    return expr


def _argument(e: ast.Expr, source: str | None, objects: Mapping[str, FinSet], axis: FinSet | None = None) -> Any:
    """A family argument: a plain number when it folds to one, else an Expr."""
    expr = _expr(e, source, objects, axis)
    value = expr.sympy
    if isinstance(value, sympy.Integer):
        return int(value)
    if value.is_Number and value.is_real:
        return float(value)
    return expr


def _family(f: ast.FamilyCall, source: str | None, objects: Mapping[str, FinSet], axis: FinSet | None = None) -> Family:
    """The family of a step; ``axis`` is the set its vector literals run along."""
    f = canonical_family(f)
    combine = getattr(FAMILIES.get(f.name), "combine", None) is not None
    lit = literal_weights(f)

    def argument(a: ast.Expr, slot: object = None) -> Any:
        if lit is not None and a is lit.vector:
            return _component_weights(lit, source, objects)
        if f.name == "Pushforward" and slot in (1, "transform", "f"):
            name, targs = transform_call(a)
            return _located(lambda: transform(name, *(_argument(t, source, objects, axis) for t in targs)),
                            a.span, source)
        if combine and isinstance(a, ast.Call) and SPELLINGS.get(a.func, a.func) in FAMILIES:  # `Truncated(Normal(mu, s), ...)`
            return _family(ast.nested_family(a), source, objects, axis)
        return _argument(a, source, objects, axis)

    args = [argument(a, i) for i, a in enumerate(f.args)]
    kwargs = {k.name: argument(k.value, k.name) for k in f.kwargs}
    return _located(lambda: family(f.name, *args, **kwargs), f.span, source)


def _component_weights(lit: LiteralWeights, source: str | None, objects: Mapping[str, FinSet]) -> Expr:
    """The list of a ``Mixture``'s weights along an axis of its components
    (:mod:`quivers.dsl.mixtures`): a constant when its entries are numbers."""
    over = components_set(lit.components, objects)
    numbers = check_literal_weights(lit, source)
    if numbers is not None:
        return const(torch.tensor(numbers, dtype=torch.get_default_dtype()), over)
    return stack(over, [_expr(i, source, objects) for i in lit.vector.items])


def _option(options: tuple[ast.Option, ...], key: str) -> ast.OptionValue | None:
    return next((o.value for o in options if o.key == key), None)


def _parts(span: Span | None, **parts: ast.Node | None) -> Span | None:
    """A step's span that knows where the nodes ``parts`` are, so that the
    IR places an error about one of them (a ``via``, a prior) on its text."""
    if span is None:
        return None
    return span.with_parts(**{k: getattr(n, "span", None) for k, n in parts.items()})


@dataclass(frozen=True)
class _How:
    """What the checker elaborated for a program: the module's algebra (the
    reductions of its blocks) and the sets of latents written without one."""

    algebra: Algebra = DEFAULT
    supports: Mapping[str, ast.SetExpr] = field(default_factory=dict)
    computations: Mapping[str, Computation] = field(default_factory=dict)

    def reduction(self, options: tuple[ast.Option, ...]) -> str:
        """The reduction of log weights a block with ``options`` uses."""
        named = _option(options, "reduction")
        return self.algebra.runtime(named.name if isinstance(named, ast.OptionName) else self.algebra.default)


def _steps(
    body: tuple[ast.Step, ...], objects: dict[str, FinSet], source: str | None, how: _How = _How()
) -> list[RuntimeStep]:
    """The runtime steps of ``body``; ``score name = e`` is ``let name = e``
    then ``factor name``."""
    out: list[RuntimeStep] = []
    for s in body:
        if isinstance(s, ast.Perform):
            out.extend(_perform(s, objects, source, how))
        elif isinstance(s, ast.Factor) and s.name is not None:
            out.append(let(s.name, _expr(s.value, source, objects), span=s.span))
            out.append(factor(_expr(ast.Name(s.name, span=s.span), source, objects), span=s.span))
        else:
            out.append(_step(s, objects, source, how))
    return out


def _step(s: ast.Step, objects: dict[str, FinSet], source: str | None, how: _How = _How()) -> RuntimeStep:
    def index_set(x: ast.SetExpr | None) -> FinSet | None:
        return None if x is None else compile_set(x, objects)

    def last(x: ast.SetExpr | None) -> FinSet | None:
        factors = () if x is None else compile_set(x, objects).factors
        return factors[-1] if factors else None

    if isinstance(s, ast.Sample):
        fam = _family(s.family, source, objects, last(site_set(s)))
        constraint = _option(s.options, "constraint")
        return _located(
            lambda: sample(
                s.name, index_set(site_set(s)), fam, span=s.span,
                constraint=constraint.name if isinstance(constraint, ast.OptionName) else None,
            ),
            s.span,
            source,
        )
    if isinstance(s, ast.Observe):
        fam = _family(s.family, source, objects, last(site_set(s)))
        via = _option(s.options, "via")
        via_name = via.name if isinstance(via, ast.OptionName) else None
        if isinstance(via, ast.OptionList):  # one map per factor of a grouping by pairs
            via_name = tuple(v.name for v in via.items)
        return _located(
            lambda: observe(s.name, index_set(site_set(s)), fam, via=via_name, span=_parts(s.span, via=via)),
            s.span,
            source,
        )
    if isinstance(s, ast.Marginalize):
        support = s.support if s.support is not None else how.supports[s.name]
        prior = _family(s.prior, source, objects, compile_set(support, objects))
        body = _steps(s.body, objects, source, how)
        over = grouping(s)
        over_set = compile_set(over, objects) if over is not None else None
        return _located(
            lambda: marginalize(
                s.name, compile_set(support, objects), prior, body, over=over_set,
                reduction=how.reduction(s.options), span=_parts(s.span, prior=s.prior),
            ),
            s.span,
            source,
        )
    if isinstance(s, ast.Markov):
        return _markov(s, objects, source, how)
    if isinstance(s, ast.Let):
        return let(s.name, _expr(s.value, source, objects), span=s.span)
    if isinstance(s, ast.Factor):
        return factor(_expr(s.value, source, objects), span=s.span)
    if isinstance(s, ast.Return):
        return ret(_expr(s.value, source, objects), span=s.span)
    if isinstance(s, ast.IndexMap):
        return _located(
            lambda: index_map(s.name, compile_set(s.dom, objects), compile_set(s.cod, objects), span=s.span),
            s.span,
            source,
        )
    if isinstance(s, ast.Data):
        return _data(s.name, s.index_set, s.cod, objects, s.span, source)
    raise TypeError(f"not a step: {s!r}")


def _perform(s: ast.Perform, objects: dict[str, FinSet], source: str | None, how: _How) -> list[RuntimeStep]:
    """``let x <- f(args)``: a let of the call of the computation ``f``, whose
    result's axes are named ``x.0``, ``x.1``, ...; a computation that scores
    also gives a factor (the same deterministic call, for its score)."""
    call = s.value
    assert isinstance(call, ast.Call)  # the checker let only computation calls through
    comp = how.computations[call.func]
    args = [_expr(a, source, objects) for a in call.args]
    ranks = tuple(len(t.shape) for _, t in comp.params)
    axes = tuple(f"{s.name}.{i}" for i in range(len(comp.result.shape)))
    value = HostFunction(call.func, lambda *xs: comp.run(*xs).value, ranks, axes)
    steps = [let(s.name, host_call(value, *args), span=s.span)]
    if comp.effects:
        scored = HostFunction(call.func, lambda *xs: comp.run(*xs).score, ranks, ())
        steps.append(factor(host_call(scored, *args), span=s.span))
    return steps


def _markov(s: ast.Markov, objects: dict[str, FinSet], source: str | None, how: _How) -> RuntimeStep:
    """``Markov(init=pi, trans=A)`` as ``markov(..., Categorical(A), init=Categorical(pi))``
    (``*_logits`` keywords give ``Categorical(logits=...)``; ``first=B`` gives
    ``first=Categorical(B)``, a second-order chain)."""
    given = {k.name: _argument(k.value, source, objects) for k in s.prior.kwargs}

    def law(key: str) -> Family | None:
        for name, arg in ((key, "weights"), (key + "_logits", "logits")):
            if name in given:
                return _located(lambda: family("Categorical", **{arg: given[name]}), s.prior.span, source)
        return None

    trans, init, first = law("trans"), law("init"), law("first")
    body = _steps(s.body, objects, source, how)
    until = _option(s.options, "until")
    return _located(
        lambda: markov(
            s.name, compile_set(s.index_set, objects), compile_set(s.support, objects), trans, body,
            init=init, first=first, until=until.name if isinstance(until, ast.OptionName) else None,
            reduction=how.reduction(s.options), span=_parts(s.span, until=until),
        ),
        s.span,
        source,
    )


def _data(
    name: str, index_set: ast.SetExpr | None, cod: ast.SetExpr | None, objects: dict[str, FinSet],
    span: Span | None, source: str | None, inferred: bool = False,
) -> RuntimeStep:
    """A data name as an :func:`index_map` (with a codomain) or as :func:`data`;
    inferred real data on a plate also takes one number for all its elements."""
    plate = None if index_set is None else compile_set(index_set, objects)
    if cod is not None:
        return _located(lambda: index_map(name, plate, compile_set(cod, objects), span=span), span, source)
    return _located(lambda: data(name, plate, broadcast=inferred, span=span), span, source)


def _tensor_data(r: DataRole, source: str | None) -> RuntimeStep:
    """Data given to a computation as a tensor: its axes are named ``x.0``, ``x.1``, ..."""
    plate = None
    for i, n in enumerate(r.shape):
        axis = FinSet(f"{r.name}.{i}", n)
        plate = axis if plate is None else plate * axis
    span = r.node.span if r.node is not None else None
    return _located(lambda: data(r.name, plate, span=span), span, source)


def _program(
    p: ast.ProgramDecl, objects: dict[str, FinSet], source: str | None, roles: Mapping[str, DataRole] | None = None,
    how: _How = _How(),
) -> Program:
    # names the program reads but never defines are data, declared first
    inferred = [
        _tensor_data(r, source) if r.shape else
        _data(r.name, r.index_set, r.cod, objects, r.node.span if r.node is not None else None, source, r.inferred)
        for r in (roles or {}).values() if r.inferred or isinstance(r.node, ast.Param)
    ]
    steps = inferred + _steps(p.body, objects, source, how)
    effects = _option(p.options, "effects")
    names = [v.name for v in effects.items] if isinstance(effects, ast.OptionList) else None
    program = _located(
        lambda: Program(
            p.name,
            compile_set(p.dom, objects),
            compile_set(p.cod, objects),
            steps,
            effects=names,
            input=p.input,
            span=p.span,
            source=source,
        ),
        p.span,
        source,
    )
    mode = _option(p.options, "marginalize")
    if not isinstance(mode, ast.OptionName) or mode.name != "auto":
        return program
    budget = _option(p.options, "budget")
    exclude = [
        t.name for t in _walk(p.body)
        if isinstance(t, ast.Sample) and getattr(_option(t.options, "enumerate"), "name", None) == "false"
    ]
    kw = {"budget": int(budget.value)} if isinstance(budget, ast.OptionNumber) else {}
    return _located(lambda: auto(program, exclude=exclude, **kw), p.span, source)


def _walk(body):
    for s in body:
        yield s
        yield from _walk(getattr(s, "body", ()))


def _composite(
    d: ast.CompositeDecl, objects: dict[str, FinSet], programs: dict[str, Program], source: str | None
) -> Program:
    """A composite through :func:`then`, :func:`tensor`, :func:`identity`
    and :func:`rename`. The sites of a program that an earlier operand
    already uses are renamed with the prefix ``{name}{k}_`` (``k = 2, 3,
    ...``), so that ``p >> p`` composes a program with itself; a program
    ``q(b)`` after one that returns its site ``b`` reads that site."""
    effects = _option(d.options, "effects")
    names = [v.name for v in effects.items] if isinstance(effects, ast.OptionList) else None
    taken: set[str] = set()

    def fresh(name: str, program: Program, passes: str | None) -> Program:
        exempt = {program.input} if program.input is not None and program.input == passes else set()
        clash = (set(program.sites) - exempt) & taken
        k = 1
        while clash:
            k += 1
            mapping = {n: f"{name}{k}_{n}" for n in clash}
            if not set(mapping.values()) & (taken | set(program.sites)):
                program = rename(program, mapping)
                break
        taken.update(program.sites)
        return program

    def build(e: ast.ProgramExpr, passes: str | None = None) -> Program:
        if isinstance(e, ast.ProgramRef):
            return fresh(e.name, programs[e.name], passes)
        if isinstance(e, ast.ProgramIdentity):
            program = identity(compile_set(e.obj, objects))
            taken.update(program.sites)
            return program
        if isinstance(e, ast.ProgramThen):
            left = build(e.left, passes)
            returned = left.returns.sympy if left.returns is not None else None
            right = build(e.right, returned.name if isinstance(returned, sympy.Symbol) else None)
            combine = then
        else:
            left, right = build(e.left), build(e.right)
            combine = tensor
        top = e is d.value
        return _located(
            lambda: combine(left, right, **({"name": d.name, "effects": names} if top else {})), e.span, source
        )

    if isinstance(d.value, (ast.ProgramRef, ast.ProgramIdentity)):
        # an alias `program h = p` is `p >> identity(cod)`: same kernel, own name and effects
        single = build(d.value)
        return _located(
            lambda: then(single, identity(single.cod), name=d.name, effects=names), d.span, source
        )
    return build(d.value)
