"""QVR computations: ``define f(x : Real) : Real !{} =`` and its body.

A computation's body is a sequence of ``let x = e`` (a pure value), ``let x
<- f(...)`` or ``let xs <- traverse(items, i -> f(...))`` (running a
computation), ``factor e`` (the effect ``Score``) and a final ``return e``.
The checker infers the type of every expression (``Real``, ``Int``,
``Bool``, ``Tensor[Real]([n, ...])``, a log weight, a distribution or a
function) and reports, at its line and column: an unknown name, a call
with the wrong number of arguments, an argument or a result of the wrong
type, a computation run in a pure position (``=``, ``map``), and an
effect the body performs that its row does not declare. Each checked
declaration compiles to a :class:`~quivers.programs.computations.Computation`
whose body evaluates with the combinators of
:mod:`quivers.programs.computations`.

Examples
--------
>>> from quivers.dsl.parser import parse
>>> text = '''
... define total(xs : Tensor[Real]([3])) : Real !{} =
...     let doubled = map(xs, x -> 2.0 * x)
...     return sum(doubled)
... '''
>>> comps = compile_computations(parse(text), text)
>>> float(comps["total"](torch.tensor([1.0, 2.0, 3.0])))
12.0
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from quivers.distributions.families import FAMILIES, family
from quivers.dsl import ast
from quivers.dsl.printer import dump_expr
from quivers.errors import QuiversError, QuiversTypeError, Span, UnknownNameError
from quivers.programs.computations import (
    BOOL, EFFECTS, INT, REAL, Computation, ValueType, fold, logsumexp_over, map_over, score, traverse,
)

__all__ = ["Signature", "check_computations", "compile_computations", "signature_of", "BUILTINS"]

_LOGWEIGHT = ValueType("LogWeight")
_DIST = ValueType("Distribution")
_ELEMENTWISE: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "exp": torch.exp, "log": torch.log, "sqrt": torch.sqrt, "abs": torch.abs, "tanh": torch.tanh,
    "sigmoid": torch.sigmoid, "log1p": torch.log1p, "expm1": torch.expm1,
    "softplus": torch.nn.functional.softplus, "logit": torch.logit,
}
_REDUCE: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "sum": torch.sum, "mean": torch.mean, "prod": torch.prod, "max": torch.max, "min": torch.min,
    "logsumexp": lambda t: torch.logsumexp(t.reshape(-1), 0),
}
_COLLECTIONS = {"map": 2, "logsumexp_over": 2, "fold": 3, "length": 1, "traverse": 2}
BUILTINS = (*_ELEMENTWISE, *_REDUCE, *_COLLECTIONS, "log_prob", "weight_value")
"""The functions a computation's body may call, besides computations and families."""
_SCALARS = ("Real", "Int", "Bool")


@dataclass(frozen=True)
class _Fn:
    """The static type of a lambda: its node, checked where it is applied."""

    node: ast.Lambda
    env: Mapping[str, Any]


@dataclass(frozen=True)
class Signature:
    """A computation's contract: parameter types, result type and effect row."""

    name: str
    params: tuple[tuple[str, ValueType], ...]
    result: ValueType
    effects: frozenset[str]
    node: ast.ComputationDecl


def _value_type(t: ast.TypeExpr, error: Callable[..., QuiversError]) -> ValueType:
    if isinstance(t, ast.TensorType):
        inner = _value_type(t.element, error)
        return ValueType(inner.element, t.shape)
    if t.name not in _SCALARS:
        raise error(UnknownNameError, f"unknown type `{t.name}`; types are Real, Int, Bool and Tensor[Real]([n, ...])", t,
                    name=t.name, candidates=list(_SCALARS))
    return ValueType(t.name)


def signature_of(d: ast.ComputationDecl, error: Callable[..., QuiversError]) -> Signature:
    """The contract ``d`` declares, its types and effects checked."""
    for e in d.effects:
        if e not in EFFECTS:
            raise error(UnknownNameError, f"unknown effect `{e}` in the row of `{d.name}`; a computation's row may name "
                        + ", ".join(EFFECTS), d, name=e, candidates=list(EFFECTS))
    seen: set[str] = set()
    for p in d.params:
        if p.name in seen:
            raise error(QuiversTypeError, f"computation `{d.name}` has two parameters named `{p.name}`", p)
        seen.add(p.name)
    params = tuple((p.name, _value_type(p.type, error)) for p in d.params)
    return Signature(d.name, params, _value_type(d.result, error), frozenset(d.effects), d)


def _describe(t: Any) -> str:
    if isinstance(t, _Fn):
        return "a function"
    if t == _LOGWEIGHT:
        return "a log weight"
    if t == _DIST:
        return "a distribution"
    return repr(t)


# ---------------------------------------------------------------- checking


class _Checker:
    def __init__(self, source: str | None, signatures: Mapping[str, Signature]) -> None:
        self.source, self.signatures = source, signatures

    def error(self, cls: type[QuiversError], message: str, node: ast.Node | Span | None, **kw: Any) -> QuiversError:
        span = node if isinstance(node, Span) or node is None else node.span
        return cls(message, span=span, source=self.source, **kw)

    def decl(self, sig: Signature, earlier: set[str]) -> None:
        d = sig.node
        self.current, self.row, self.earlier = d.name, sig.effects, earlier
        env: dict[str, Any] = dict(sig.params)
        returned = False
        for i, step in enumerate(d.body):
            if returned:
                raise self.error(QuiversTypeError, f"`return` must be the last step of computation `{d.name}`", d.body[i - 1])
            if isinstance(step, ast.Let):
                env[step.name] = self.expr(step.value, env)
            elif isinstance(step, ast.Perform):
                env[step.name] = self.perform(step.value, env)
            elif isinstance(step, ast.Factor):
                self.effect("Score", step, "`factor` adds to the log density")
                t = self.expr(step.value, env)
                if t not in (REAL, INT, _LOGWEIGHT):
                    raise self.error(QuiversTypeError, f"`factor` takes one real number, got {_describe(t)}", step.value)
            elif isinstance(step, ast.Return):
                t = self.expr(step.value, env)
                if not isinstance(t, ValueType) or not sig.result.accepts(t):
                    raise self.error(
                        QuiversTypeError,
                        f"computation `{d.name}` returns {sig.result!r}, but `{dump_expr(step.value)}` is {_describe(t)}",
                        step.value,
                    )
                returned = True
        if not returned:
            raise self.error(QuiversTypeError, f"computation `{d.name}` never returns: end its body with `return ...`", d)

    def effect(self, effect: str, node: ast.Node, why: str) -> None:
        if effect not in self.row:
            row = ", ".join(sorted(self.row))
            raise self.error(
                QuiversTypeError,
                f"{why} (the effect `{effect}`), which the row !{{{row}}} of `{self.current}` does not declare",
                node, hint=f"add it to the row: `!{{{', '.join(sorted(self.row | {effect}))}}}`",
            )

    # ------------------------------------------------------------ computation calls

    def perform(self, e: ast.Expr, env: Mapping[str, Any]) -> ValueType:
        """The type of ``let x <- e``: a computation call or a traverse."""
        if isinstance(e, ast.Call) and e.func == "traverse":
            self.arity(e, 2)
            items = self.collection(e.args[0], env)
            body = self.function(e.args[1], env, items, "traverse")
            if not (isinstance(body.body, ast.Call) and body.body.func in self.signatures):
                raise self.error(
                    QuiversTypeError,
                    "the function given to `traverse` must run one computation, e.g. `x -> f(x)`; "
                    "for a pure function use `map`",
                    body.body,
                )
            inner = self.call(body.body, {**env, body.param: _element(items)})
            return ValueType(inner.element, (items.shape[0], *inner.shape))
        if isinstance(e, ast.Call) and e.func in self.signatures:
            return self.call(e, env)
        raise self.error(
            QuiversTypeError,
            f"`let ... <-` runs a computation (`f(...)` for a `define`d `f`, or `traverse(...)`); "
            f"`{dump_expr(e)}` is a value: bind it with `let ... =`",
            e,
        )

    def call(self, e: ast.Call, env: Mapping[str, Any]) -> ValueType:
        sig = self.signatures[e.func]
        if e.func not in self.earlier:
            raise self.error(
                QuiversTypeError,
                f"computation `{self.current}` runs `{e.func}`, which is declared after it (or is itself); "
                "declare a computation before the computations that run it",
                e,
            )
        if e.kwargs:
            raise self.error(QuiversTypeError, f"computation `{e.func}` takes its arguments by position", e.kwargs[0])
        if len(e.args) != len(sig.params):
            raise self.error(
                QuiversTypeError,
                f"computation `{e.func}` takes {len(sig.params)} argument(s) "
                f"({', '.join(n for n, _ in sig.params)}), got {len(e.args)}",
                e,
            )
        for (name, want), a in zip(sig.params, e.args):
            got = self.expr(a, env)
            if not isinstance(got, ValueType) or not want.accepts(got):
                raise self.error(
                    QuiversTypeError,
                    f"argument `{name}` of `{e.func}` is {want!r}, but `{dump_expr(a)}` is {_describe(got)}",
                    a,
                )
        for effect in sorted(sig.effects):
            self.effect(effect, e, f"`{e.func}` may score")
        return sig.result

    # ------------------------------------------------------------ pure expressions

    def arity(self, e: ast.Call, n: int) -> None:
        if e.kwargs:
            raise self.error(QuiversTypeError, f"`{e.func}` takes no keyword arguments", e.kwargs[0])
        if len(e.args) != n:
            raise self.error(QuiversTypeError, f"`{e.func}` takes {n} argument(s), got {len(e.args)}", e)

    def collection(self, e: ast.Expr, env: Mapping[str, Any]) -> ValueType:
        t = self.expr(e, env)
        if not isinstance(t, ValueType) or not t.shape or t in (_LOGWEIGHT, _DIST):
            raise self.error(QuiversTypeError, f"`{dump_expr(e)}` is {_describe(t)}, not a tensor with a leading axis", e)
        return t

    def function(self, e: ast.Expr, env: Mapping[str, Any], items: ValueType, where: str) -> ast.Lambda:
        f = self.expr(e, env)
        if not isinstance(f, _Fn):
            raise self.error(QuiversTypeError, f"`{where}` takes a function `x -> ...` here, got {_describe(f)}", e)
        return f.node

    def apply(self, e: ast.Expr, env: Mapping[str, Any], items: ValueType, where: str) -> Any:
        """The type of a pure function applied to one item of ``items``."""
        lam = self.function(e, env, items, where)
        return self.expr(lam.body, {**self.expr(e, env).env, lam.param: _element(items)}, pure=where)

    def expr(self, e: ast.Expr, env: Mapping[str, Any], pure: str | None = None) -> Any:
        if isinstance(e, ast.Number):
            return INT if isinstance(e.value, int) else REAL
        if isinstance(e, ast.Name):
            if e.id in env:
                return env[e.id]
            if e.id in self.signatures:
                raise self.error(QuiversTypeError, f"`{e.id}` is a computation: run it with `let x <- {e.id}(...)`", e)
            names = sorted(env)
            close = difflib.get_close_matches(e.id, names, n=1)
            raise self.error(
                UnknownNameError, f"unknown name `{e.id}` in computation `{self.current}`; names in scope: "
                + (", ".join(names) or "none"), e, name=e.id, candidates=names,
                **({"hint": f"did you mean `{close[0]}`?"} if close else {}),
            )
        if isinstance(e, ast.Lambda):
            return _Fn(e, dict(env))
        if isinstance(e, ast.Neg):
            return self.numeric(e.operand, env, pure)
        if isinstance(e, ast.BinOp):
            left, right = self.numeric(e.left, env, pure), self.numeric(e.right, env, pure)
            shape = self.broadcast(left, right, e)
            if e.op in ast.COMPARE_OPS:
                return ValueType("Bool", shape)
            whole = left.element != "Real" and right.element != "Real" and e.op in ("+", "-", "*")
            return ValueType("Int" if whole else "Real", shape)
        if isinstance(e, ast.Vector):
            items = [self.expr(a, env, pure) for a in e.items]
            for a, t in zip(e.items, items):
                if not isinstance(t, ValueType) or t in (_LOGWEIGHT, _DIST):
                    raise self.error(QuiversTypeError, f"a tensor's entries are numbers, not {_describe(t)}", a)
            if len({t.shape for t in items}) != 1:
                raise self.error(QuiversTypeError, "the entries of a tensor literal must have one shape", e)
            element = "Real" if any(t.element == "Real" for t in items) else items[0].element
            return ValueType(element, (len(items), *items[0].shape))
        if isinstance(e, ast.Subscript):
            base = self.collection(e.base, env)
            if len(e.indices) > len(base.shape):
                raise self.error(QuiversTypeError, f"`{dump_expr(e.base)}` has {len(base.shape)} axes, indexed by {len(e.indices)}", e)
            for i in e.indices:
                t = self.expr(i, env, pure)
                if t not in (INT, BOOL):
                    raise self.error(QuiversTypeError, f"an index is an Int, but `{dump_expr(i)}` is {_describe(t)}", i)
            return ValueType(base.element, base.shape[len(e.indices):])
        if isinstance(e, ast.Call):
            return self.builtin(e, env, pure)
        raise self.error(QuiversTypeError, f"`{dump_expr(e)}` cannot be used in a computation", e)

    def numeric(self, e: ast.Expr, env: Mapping[str, Any], pure: str | None) -> ValueType:
        t = self.expr(e, env, pure)
        if t == _LOGWEIGHT:
            raise self.error(QuiversTypeError, f"`{dump_expr(e)}` is a log weight; `weight_value(...)` gives its real value", e)
        if not isinstance(t, ValueType) or t == _DIST:
            raise self.error(QuiversTypeError, f"`{dump_expr(e)}` is {_describe(t)}, not a number", e)
        return t

    def broadcast(self, a: ValueType, b: ValueType, e: ast.Node) -> tuple[int, ...]:
        if a.shape == b.shape or not b.shape:
            return a.shape
        if not a.shape:
            return b.shape
        raise self.error(QuiversTypeError, f"operands of shapes {list(a.shape)} and {list(b.shape)} do not match", e)

    def builtin(self, e: ast.Call, env: Mapping[str, Any], pure: str | None) -> Any:
        f = e.func
        if f in self.signatures or f == "traverse":
            where = f"the function given to `{pure}`" if pure else "an expression after `=`"
            raise self.error(
                QuiversTypeError,
                f"`{f}(...)` runs a computation, which {where} cannot do; "
                + ("bind it first: `let x <- ...`" if not pure else "use `traverse` in a `let ... <-`"),
                e,
            )
        if f in _ELEMENTWISE:
            self.arity(e, 1)
            t = self.numeric(e.args[0], env, pure)
            return ValueType("Real", t.shape)
        if f in _REDUCE:
            self.arity(e, 1)
            self.numeric(e.args[0], env, pure)
            return REAL
        if f == "length":
            self.arity(e, 1)
            self.collection(e.args[0], env)
            return INT
        if f == "map":
            self.arity(e, 2)
            items = self.collection(e.args[0], env)
            t = self.apply(e.args[1], env, items, "map")
            if not isinstance(t, ValueType) or t in (_LOGWEIGHT, _DIST):
                raise self.error(QuiversTypeError, f"the function given to `map` must give numbers, not {_describe(t)}", e.args[1])
            return ValueType(t.element, (items.shape[0], *t.shape))
        if f == "logsumexp_over":
            self.arity(e, 2)
            items = self.collection(e.args[0], env)
            t = self.apply(e.args[1], env, items, "logsumexp_over")
            if t not in (REAL, INT):
                raise self.error(
                    QuiversTypeError, f"the function given to `logsumexp_over` must give one Real per item, not {_describe(t)}",
                    e.args[1],
                )
            return REAL
        if f == "fold":
            self.arity(e, 3)
            items = self.collection(e.args[0], env)
            init = self.numeric(e.args[1], env, pure)
            outer = self.function(e.args[2], env, items, "fold")
            if not isinstance(outer.body, ast.Lambda):
                raise self.error(QuiversTypeError, "`fold` takes a curried function `acc -> x -> ...`", e.args[2])
            inner_env = {**self.expr(e.args[2], env).env, outer.param: init, outer.body.param: _element(items)}
            t = self.expr(outer.body.body, inner_env, pure="fold")
            if not isinstance(t, ValueType) or not init.accepts(t):
                raise self.error(QuiversTypeError, f"`fold`'s function must give {init!r} (the type of its start), "
                                 f"not {_describe(t)}", e.args[2])
            return init
        if f == "log_prob":
            self.arity(e, 2)
            d = self.expr(e.args[0], env, pure)
            if d != _DIST:
                raise self.error(QuiversTypeError, f"`log_prob` takes a distribution first, e.g. `Normal(mu, sigma)`, "
                                 f"got {_describe(d)}", e.args[0])
            self.numeric(e.args[1], env, pure)
            return _LOGWEIGHT
        if f == "weight_value":
            self.arity(e, 1)
            t = self.expr(e.args[0], env, pure)
            if t != _LOGWEIGHT:
                raise self.error(QuiversTypeError, f"`weight_value` takes a log weight (`log_prob(...)`), got {_describe(t)}",
                                 e.args[0])
            return REAL
        if f in FAMILIES:
            for a in (*e.args, *(k.value for k in e.kwargs)):
                self.numeric(a, env, pure)
            return _DIST
        known = sorted({*BUILTINS, *self.signatures} - {"traverse"})
        raise self.error(UnknownNameError, f"unknown function `{f}` in computation `{self.current}`", e, name=f,
                         candidates=known + sorted(FAMILIES))


def _element(items: ValueType) -> ValueType:
    return ValueType(items.element, items.shape[1:])


def check_computations(module: ast.Module, source: str | None = None) -> dict[str, Signature]:
    """Check every computation of ``module``; their signatures by name.

    Raises the first problem as a located QuiversError.
    """
    errors = _Checker(source, {})
    decls = [d for d in module.items if isinstance(d, ast.ComputationDecl)]
    signatures = {d.name: signature_of(d, errors.error) for d in decls}
    checker = _Checker(source, signatures)
    earlier: set[str] = set()
    for d in decls:
        checker.decl(signatures[d.name], set(earlier))
        earlier.add(d.name)
    return signatures


# ---------------------------------------------------------------- compiling


def _located(run: Callable[[], Any], node: ast.Node, source: str | None) -> Any:
    try:
        return run()
    except QuiversError as err:
        if err.span is not None:
            raise
        raise err.relocated(node.span, source) from None


class _Evaluator:
    """Evaluates checked expressions on tensors of one dtype."""

    def __init__(self, computations: Mapping[str, Computation], source: str | None) -> None:
        self.computations, self.source = computations, source

    def const(self, value: Any, env: Mapping[str, Any]) -> torch.Tensor:
        if isinstance(value, int):
            return torch.tensor(value)
        return torch.tensor(value, dtype=env["__dtype__"])

    def expr(self, e: ast.Expr, env: Mapping[str, Any]) -> Any:
        if isinstance(e, ast.Number):
            return self.const(e.value, env)
        if isinstance(e, ast.Name):
            return env[e.id]
        if isinstance(e, ast.Lambda):
            return lambda x, e=e: self.expr(e.body, {**env, e.param: x})
        if isinstance(e, ast.Neg):
            return -self.expr(e.operand, env)
        if isinstance(e, ast.BinOp):
            a, b = self.expr(e.left, env), self.expr(e.right, env)
            if e.op in ast.COMPARE_OPS:
                return {"<": torch.lt, "<=": torch.le, ">": torch.gt, ">=": torch.ge, "==": torch.eq, "!=": torch.ne}[e.op](a, b)
            if e.op == "/" and not torch.is_floating_point(a) and not torch.is_floating_point(b):
                a = a.to(env["__dtype__"])
            return {"+": torch.add, "-": torch.sub, "*": torch.mul, "/": torch.div, "^": torch.pow}[e.op](a, b)
        if isinstance(e, ast.Vector):
            items = [self.expr(a, env) for a in e.items]
            if any(torch.is_floating_point(t) for t in items):
                items = [t.to(env["__dtype__"]) for t in items]
            return torch.stack(items)
        if isinstance(e, ast.Subscript):
            base = self.expr(e.base, env)
            index = tuple(int(self.expr(i, env)) for i in e.indices)
            return _located(lambda: _at(base, index, e), e, self.source)
        return self.call(e, env)

    def call(self, e: ast.Call, env: Mapping[str, Any]) -> Any:
        f = e.func
        args = [self.expr(a, env) for a in e.args]
        if f in _ELEMENTWISE:
            x = args[0] if torch.is_floating_point(args[0]) else args[0].to(env["__dtype__"])
            return _ELEMENTWISE[f](x)
        if f in _REDUCE:
            x = args[0] if torch.is_floating_point(args[0]) else args[0].to(env["__dtype__"])
            return _REDUCE[f](x)
        if f == "length":
            return torch.tensor(args[0].shape[0])
        if f == "map":
            return map_over(args[0], args[1])
        if f == "logsumexp_over":
            return logsumexp_over(args[0], args[1])
        if f == "fold":
            return fold(args[0], args[1], lambda acc, x: args[2](acc)(x))
        if f == "traverse":
            return traverse(args[0], args[1])
        if f == "log_prob":
            dist, x = args
            return _located(lambda: dist.log_prob(x), e, self.source)
        if f == "weight_value":
            return args[0]
        if f in self.computations:
            return _located(lambda: self.computations[f](*args), e, self.source)
        kwargs = {k.name: self.expr(k.value, env) for k in e.kwargs}
        fam = _located(lambda: family(f, *args, **kwargs), e, self.source)
        params = {k: torch.as_tensor(v, dtype=env["__dtype__"]) for k, v in fam.args.items()}
        return fam.build(params)


def _at(base: torch.Tensor, index: tuple[int, ...], e: ast.Subscript) -> torch.Tensor:
    for axis, i in enumerate(index):
        if not 0 <= i < base.shape[axis]:
            raise QuiversTypeError(f"index {i} is out of range for `{dump_expr(e.base)}` (axis {axis} has {base.shape[axis]})")
    return base[index]


def _body(d: ast.ComputationDecl, sig: Signature, ev: _Evaluator) -> Callable[..., torch.Tensor]:
    def run(*args: torch.Tensor) -> torch.Tensor:
        floating = next((a for a in args if torch.is_floating_point(a)), None)
        env: dict[str, Any] = {"__dtype__": floating.dtype if floating is not None else torch.get_default_dtype()}
        env.update(zip((n for n, _ in sig.params), args))
        for step in d.body:
            if isinstance(step, (ast.Let, ast.Perform)):
                env[step.name] = _located(lambda step=step: ev.expr(step.value, env), step, ev.source)
            elif isinstance(step, ast.Factor):
                _located(lambda step=step: score(ev.expr(step.value, env)), step, ev.source)
            elif isinstance(step, ast.Return):
                out = _located(lambda step=step: ev.expr(step.value, env), step, ev.source)
                if sig.result.element == "Real" and not torch.is_floating_point(out):
                    out = out.to(env["__dtype__"])
                return out
        raise AssertionError("a checked computation returns")  # pragma: no cover

    return run


def compile_computations(module: ast.Module, source: str | None = None) -> dict[str, Computation]:
    """Check and compile every computation of ``module``, by name.

    Examples
    --------
    >>> from quivers.dsl.parser import parse
    >>> text = '''
    ... define lp(x : Real) : Real !{} =
    ...     return weight_value(log_prob(Normal(0.0, 1.0), x))
    ... '''
    >>> lp = compile_computations(parse(text), text)["lp"]
    >>> round(float(lp(torch.tensor(0.0, dtype=torch.float64))), 6)
    -0.918939
    """
    signatures = check_computations(module, source)
    computations: dict[str, Computation] = {}
    ev = _Evaluator(computations, source)
    for name, sig in signatures.items():
        computations[name] = Computation(name, sig.params, sig.result, sig.effects, _body(sig.node, sig, ev))
    return computations
