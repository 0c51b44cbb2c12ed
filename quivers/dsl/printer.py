"""Writing a QVR AST back out as canonical source.

The canonical form indents bodies by four spaces, puts one space around
binary operators and after commas, writes a blank line around each
program, and adds only the parentheses that precedence requires.
Comments are not part of the AST and so are not written.

Laws
----
- ``parse(dumps(m)) == m`` for every module ``m``.
- ``dumps(parse(dumps(m))) == dumps(m)``: canonical source is a fixed point.

Examples
--------
>>> from quivers.dsl.parser import parse
>>> m = parse('''
... object K:FinSet 2
... program p:K->K [effects=[Sample]]
...   sample mu:K<-Normal(0.0,(1.0))
...   return -(mu^2)
... ''')
>>> print(dumps(m), end="")
object K : FinSet 2
<BLANKLINE>
program p : K -> K [effects=[Sample]]
    sample mu : K <- Normal(0.0, 1.0)
    return -mu ^ 2
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from quivers.dsl import ast

__all__ = ["dumps", "dump_expr", "dump_set", "dump_program", "dump_morphism", "dump_type"]

INDENT = "    "

# Binding strength: larger binds tighter.
_COMPARE, _SUM, _PRODUCT, _UNARY, _POWER, _POSTFIX = 0, 1, 2, 3, 4, 5
_BINARY = {"+": _SUM, "-": _SUM, "*": _PRODUCT, "/": _PRODUCT, "^": _POWER, **{op: _COMPARE for op in ast.COMPARE_OPS}}


def _number(value: int | float) -> str:
    return repr(value)


def _strength(e: ast.Expr) -> int:
    if isinstance(e, ast.Number) and _number(e.value).startswith("-"):
        return _UNARY  # printed with a leading minus, so it binds like one
    if isinstance(e, ast.BinOp):
        return _BINARY[e.op]
    if isinstance(e, ast.Neg):
        return _UNARY
    if isinstance(e, (ast.Tabulate, ast.Lambda)):
        return _COMPARE - 1  # its body runs to the end, so it is an operand only in parentheses
    return _POSTFIX


def _wrap(e: ast.Expr, needed: int) -> str:
    text = dump_expr(e)
    return f"({text})" if _strength(e) < needed else text


def dump_expr(e: ast.Expr) -> str:
    """An expression as QVR source, with the parentheses precedence needs.

    ``+ - * /`` associate to the left and ``^`` to the right; unary minus
    binds looser than ``^`` and tighter than ``*``, so ``-x ^ 2`` is
    ``-(x ^ 2)``.

    Examples
    --------
    >>> x, y = ast.Name("x"), ast.Name("y")
    >>> dump_expr(ast.BinOp("-", x, ast.BinOp("-", y, ast.Number(1))))
    'x - (y - 1)'
    >>> dump_expr(ast.BinOp("^", ast.Neg(x), ast.BinOp("^", y, ast.Number(2))))
    '(-x) ^ y ^ 2'
    >>> dump_expr(ast.Subscript(ast.BinOp("+", x, y), (ast.Name("i"), ast.Name("j"))))
    '(x + y)[i, j]'
    """
    if isinstance(e, ast.Number):
        return _number(e.value)
    if isinstance(e, ast.Name):
        return e.id
    if isinstance(e, ast.BinOp):
        strength = _BINARY[e.op]
        if strength == _COMPARE:  # comparisons do not chain: both operands are sums
            return f"{_wrap(e.left, _SUM)} {e.op} {_wrap(e.right, _SUM)}"
        if e.op == "^":
            # The base is a postfix term; the exponent may be any unary term.
            return f"{_wrap(e.left, _POSTFIX)} ^ {_wrap(e.right, _UNARY)}"
        return f"{_wrap(e.left, strength)} {e.op} {_wrap(e.right, strength + 1)}"
    if isinstance(e, ast.Neg):
        return f"-{_wrap(e.operand, _UNARY)}"
    if isinstance(e, ast.Subscript):
        indices = ", ".join(dump_expr(i) for i in e.indices)
        return f"{_wrap(e.base, _POSTFIX)}[{indices}]"
    if isinstance(e, ast.Call):
        parts = [dump_expr(a) for a in e.args] + [f"{k.name}={dump_expr(k.value)}" for k in e.kwargs]
        return f"{e.func}({', '.join(parts)})"
    if isinstance(e, ast.Method):
        # a number before the dot would read as a decimal point: `(0).f()`
        target = f"({dump_expr(e.target)})" if isinstance(e.target, ast.Number) else _wrap(e.target, _POSTFIX)
        return f"{target}.{e.method}({', '.join(dump_expr(a) for a in e.args)})"
    if isinstance(e, ast.Vector):
        return f"[{', '.join(dump_expr(a) for a in e.items)}]"
    if isinstance(e, ast.Tabulate):
        head = "factor " + ", ".join(f"{b} : {dump_set(s)}" for b, s in e.binders) + " in "
        if e.cases is not None:
            return head + "{" + ", ".join(f"{k} -> {dump_expr(v)}" for k, v in e.cases) + "}"
        return head + dump_expr(e.body)
    if isinstance(e, ast.Record):
        return "(" + ", ".join(f"{label}: {dump_expr(a)}" for label, a in e.fields) + ")"
    if isinstance(e, ast.Tuple):
        return f"({', '.join(dump_expr(a) for a in e.items)})"
    if isinstance(e, ast.Lambda):
        return f"{e.param} -> {dump_expr(e.body)}"
    raise TypeError(f"not an expression node: {e!r}")


def dump_type(t: ast.TypeExpr) -> str:
    """A computation's type as QVR source.

    Examples
    --------
    >>> dump_type(ast.TensorType(ast.ScalarType("Real"), (4, 2)))
    'Tensor[Real]([4, 2])'
    """
    if isinstance(t, ast.TensorType):
        return f"Tensor[{dump_type(t.element)}]([{', '.join(str(n) for n in t.shape)}])"
    return t.name


def dump_set(s: ast.SetExpr) -> str:
    """A finite-set expression as QVR source; ``*`` binds tighter than ``+``.

    Examples
    --------
    >>> a, b, c = ast.SetName("A"), ast.SetName("B"), ast.SetName("C")
    >>> dump_set(ast.SetProduct(ast.SetSum(a, b), c))
    '(A + B) * C'
    >>> dump_set(ast.SetSum(a, ast.SetSum(b, c)))
    'A + (B + C)'
    """
    if isinstance(s, ast.SetName):
        return s.name
    if isinstance(s, ast.SetUnit):
        return "1"
    if isinstance(s, ast.SetProduct):
        left = dump_set(s.left)
        right = dump_set(s.right)
        if isinstance(s.left, ast.SetSum):
            left = f"({left})"
        if not isinstance(s.right, (ast.SetName, ast.SetUnit)):
            right = f"({right})"
        return f"{left} * {right}"
    if isinstance(s, ast.SetSum):
        right = dump_set(s.right)
        if isinstance(s.right, ast.SetSum):
            right = f"({right})"
        return f"{dump_set(s.left)} + {right}"
    raise TypeError(f"not a set expression: {s!r}")


def dump_program(e: ast.ProgramExpr) -> str:
    """A composite program as QVR source: ``@`` binds tighter than ``>>``
    and both associate to the left, so only a right operand of the same
    operator, or a ``>>`` inside ``@``, needs parentheses.

    Examples
    --------
    >>> p, q, r = ast.ProgramRef("p"), ast.ProgramRef("q"), ast.ProgramRef("r")
    >>> dump_program(ast.ProgramThen(ast.ProgramTensor(p, q), ast.ProgramThen(q, r)))
    'p @ q >> (q >> r)'
    >>> dump_program(ast.ProgramTensor(ast.ProgramThen(p, q), ast.ProgramIdentity(ast.SetName("A"))))
    '(p >> q) @ identity(A)'
    """
    if isinstance(e, ast.ProgramRef):
        return e.name
    if isinstance(e, ast.ProgramIdentity):
        return f"identity({dump_set(e.obj)})"
    infix = _infix(e, dump_program, ast.ProgramThen, ast.ProgramTensor)
    if infix is None:
        raise TypeError(f"not a program expression: {e!r}")
    return infix


def _infix(e: Any, dump: Callable[[Any], str], then: type, tensor: type) -> str | None:
    """``>>`` and ``@`` (of programs or of morphisms) with the parentheses
    their precedence needs: ``@`` binds tighter, both associate to the left."""
    if isinstance(e, then):
        right = dump(e.right)
        if isinstance(e.right, then):
            right = f"({right})"
        return f"{dump(e.left)} >> {right}"
    if isinstance(e, tensor):
        left, right = dump(e.left), dump(e.right)
        if isinstance(e.left, then):
            left = f"({left})"
        if isinstance(e.right, (then, tensor)):
            right = f"({right})"
        return f"{left} @ {right}"
    return None


def dump_morphism(e: ast.MorphismExpr | ast.MorphismNumber | ast.MorphismKeyword) -> str:
    """A morphism expression as QVR source, with the parentheses its
    operators need (``.dagger`` binds tightest, then ``@``, then ``>>``).

    Examples
    --------
    >>> f, g = ast.MorphismRef("f"), ast.MorphismRef("g")
    >>> dump_morphism(ast.MorphismAttr(ast.MorphismThen(f, g), "dagger"))
    '(f >> g).dagger'
    >>> dump_morphism(ast.MorphismCall("repeat", (ast.MorphismTensor(f, g), ast.MorphismNumber(3))))
    'repeat(f @ g, 3)'
    """
    if isinstance(e, ast.MorphismRef):
        return e.name
    if isinstance(e, ast.MorphismNumber):
        return _number(e.value)
    if isinstance(e, ast.MorphismKeyword):
        return f"{e.name}={dump_morphism(e.value)}"
    if isinstance(e, ast.MorphismList):
        return f"[{', '.join(dump_morphism(a) for a in e.items)}]"
    if isinstance(e, ast.MorphismCall):
        return f"{e.func}({', '.join(dump_morphism(a) for a in e.args)})"
    if isinstance(e, ast.MorphismAttr):
        base = dump_morphism(e.base)
        if isinstance(e.base, (ast.MorphismThen, ast.MorphismTensor, ast.TransformationThen)):
            base = f"({base})"
        args = f"({', '.join(dump_morphism(a) for a in e.args)})" if e.args else ""
        return f"{base}.{e.attr}{args}"
    if isinstance(e, ast.TransformationThen):
        right = dump_morphism(e.right)
        if isinstance(e.right, (ast.MorphismThen, ast.TransformationThen)):
            right = f"({right})"
        left = dump_morphism(e.left)
        if isinstance(e.left, ast.MorphismThen):
            left = f"({left})"
        return f"{left} >>> {right}"
    infix = _infix(e, _morphism_operand, ast.MorphismThen, ast.MorphismTensor)
    if infix is None:
        raise TypeError(f"not a morphism expression: {e!r}")
    return infix


def _morphism_operand(e: Any) -> str:
    """An operand of ``>>`` or ``@``: a ``>>>`` chain in parentheses."""
    text = dump_morphism(e)
    return f"({text})" if isinstance(e, ast.TransformationThen) else text


def _option_value(v: ast.OptionValue) -> str:
    if isinstance(v, ast.OptionName):
        return v.name
    if isinstance(v, ast.OptionNumber):
        return _number(v.value)
    if isinstance(v, ast.OptionList):
        return "[" + ", ".join(_option_value(i) for i in v.items) + "]"
    if isinstance(v, ast.OptionProduct):
        return " * ".join(v.names)
    raise TypeError(f"not an option value: {v!r}")


def _options(options: tuple[ast.Option, ...]) -> str:
    if not options:
        return ""
    return " [" + ", ".join(f"{o.key}={_option_value(o.value)}" for o in options) + "]"


def _family(f: ast.FamilyCall) -> str:
    if f.bare:
        return f.name
    args = [dump_expr(a) for a in f.args] + [f"{k.name}={dump_expr(k.value)}" for k in f.kwargs]
    return f"{f.name}({', '.join(args)})"


def _index_set(s: ast.SetExpr | None) -> str:
    return "" if s is None else f" : {dump_set(s)}"


def _step(step: ast.Step, depth: int) -> list[str]:
    pad = INDENT * depth
    if isinstance(step, ast.Sample):
        head = f"sample {step.name}{_index_set(step.index_set)} <- {_family(step.family)}"
        return [pad + head + _options(step.options)]
    if isinstance(step, ast.Observe):
        head = f"observe {step.name}{_index_set(step.index_set)} <- {_family(step.family)}"
        return [pad + head + _options(step.options)]
    if isinstance(step, ast.Marginalize):
        head = (
            f"marginalize {step.name}{_index_set(step.support)} <- {_family(step.prior)}"
            + _options(step.options)
        )
        return [pad + head] + [line for s in step.body for line in _step(s, depth + 1)]
    if isinstance(step, ast.Markov):
        head = (
            f"marginalize {step.name} : {dump_set(step.index_set)} -> {dump_set(step.support)} "
            f"<- {_family(step.prior)}" + _options(step.options)
        )
        return [pad + head] + [line for s in step.body for line in _step(s, depth + 1)]
    if isinstance(step, ast.Let):
        return [f"{pad}let {step.name} = {dump_expr(step.value)}"]
    if isinstance(step, ast.Perform):
        return [f"{pad}let {step.name} <- {dump_expr(step.value)}"]
    if isinstance(step, ast.Factor):
        if step.name is not None:
            return [f"{pad}score {step.name} = {dump_expr(step.value)}"]
        return [f"{pad}factor {dump_expr(step.value)}"]
    if isinstance(step, ast.Return):
        return [f"{pad}return {dump_expr(step.value)}"]
    if isinstance(step, ast.IndexMap):
        return [f"{pad}index {step.name} : {dump_set(step.dom)} -> {dump_set(step.cod)}"]
    if isinstance(step, ast.Data):
        cod = f" -> {dump_set(step.cod)}" if step.cod is not None else ""
        return [f"{pad}data {step.name}{_index_set(step.index_set)}{cod}"]
    raise TypeError(f"not a step: {step!r}")


def _decl(d: ast.Decl) -> list[str]:
    if isinstance(d, ast.CompositionDecl):
        return [f"composition {d.name}{_options(d.options)}"]
    if isinstance(d, ast.ObjectDecl):
        return [f"object {d.name} : FinSet {d.size}"]
    if isinstance(d, ast.EnumObject):
        return [f"object {d.name} : {{{', '.join(d.elements)}}}"]
    if isinstance(d, ast.ResiduatedObject):
        options = "".join(f", {o.key}={_option_value(o.value)}" for o in d.options)
        return [f"object {d.name} : FreeResiduated({d.generators}{options})"]
    if isinstance(d, ast.RealObject):
        return [f"object {d.name} : Real {d.dim}"]
    if isinstance(d, ast.ObjectDef):
        return [f"object {d.name} : FinSet = {dump_set(d.value)}"]
    if isinstance(d, ast.ProgramDecl):
        bound = f"({d.input})" if d.input is not None else ""
        if d.params:
            bound = "(" + ", ".join(f"{p.name} : {p.type}" for p in d.params) + ")"
        head = f"program {d.name}{bound} : {dump_set(d.dom)} -> {dump_set(d.cod)}{_options(d.options)}"
        return [head] + [line for s in d.body for line in _step(s, 1)]
    if isinstance(d, ast.CompositeDecl):
        return [f"program {d.name} = {dump_program(d.value)}{_options(d.options)}"]
    if isinstance(d, ast.Export):
        return [f"export {d.name}"]
    if isinstance(d, ast.MorphismDecl):
        args = f"({', '.join(_number(a) for a in d.family_args)})" if d.family_args else ""
        family = f" ~ {d.family}{args}{_options(d.family_options)}" if d.family is not None else ""
        return [f"morphism {', '.join(d.names)} : {dump_set(d.dom)} -> {dump_set(d.cod)}{_options(d.options)}{family}"]
    if isinstance(d, ast.DefineDecl):
        return [f"{d.keyword} {d.name} = {dump_morphism(d.value)}"]
    if isinstance(d, ast.ComputationDecl):
        params = ", ".join(f"{p.name} : {dump_type(p.type)}" for p in d.params)
        head = f"define {d.name}({params}) : {dump_type(d.result)} !{{{', '.join(d.effects)}}} ="
        return [head] + [line for s in d.body for line in _step(s, 1)]
    if isinstance(d, ast.DeductionDecl):
        return _deduction(d)
    if isinstance(d, ast.ContractionDecl):
        params = ", ".join(f"{p.name} : {dump_set(p.dom)} -> {dump_set(p.cod)}" for p in d.params)
        return [f"contraction {d.name}({params}) : {dump_set(d.dom)} -> {dump_set(d.cod)}{_options(d.options)}"]
    if isinstance(d, ast.SchemaDecl):
        params = ", ".join(", ".join(p.names) + ("" if p.type is None else f" : {p.type}") for p in d.params)
        domain = " * ".join(_schema_factor(t, len(d.domain) > 1) for t in d.domain)
        return [f"schema {d.name} ({params}) : {domain} -> {_schema_factor(d.codomain, False)}"]
    if isinstance(d, ast.BundleDecl):
        return [f"bundle {d.name} : [{', '.join(d.members)}]"]
    raise TypeError(f"not a declaration: {d!r}")


def _schema_factor(t: ast.Term, product: bool) -> str:
    """A category of a schema, in parentheses when it is a slash category
    that is a factor of a product."""
    text = dump_term(t)
    return f"({text})" if product and isinstance(t, ast.TermSlash) else text


def dump_term(t: ast.Term) -> str:
    """Write a deduction term with the parentheses its slashes need.

    Examples
    --------
    >>> np, s = ast.TermName("NP"), ast.TermName("S")
    >>> dump_term(ast.TermSlash("/", ast.TermSlash("\\\\", np, s), np))
    'NP\\\\S/NP'
    >>> dump_term(ast.TermSlash("\\\\", ast.TermSlash("/", s, np), s))
    '(S/NP)\\\\S'
    """
    if isinstance(t, ast.TermName):
        return t.name
    if isinstance(t, ast.TermNumber):
        return str(t.value)
    if isinstance(t, ast.TermCall):
        return f"{t.functor}({', '.join(dump_term(a) for a in t.args)})"
    if t.op == "/":
        # left associative and loosest: only a `/` on the right needs parentheses
        right = _term_wrapped(t.right, isinstance(t.right, ast.TermSlash) and t.right.op == "/")
        return f"{dump_term(t.left)}/{right}"
    # right associative and tighter: any slash on the left, a `/` on the right
    left = _term_wrapped(t.left, isinstance(t.left, ast.TermSlash))
    right = _term_wrapped(t.right, isinstance(t.right, ast.TermSlash) and t.right.op == "/")
    return f"{left}\\{right}"


def _term_wrapped(t: ast.Term, wrap: bool) -> str:
    return f"({dump_term(t)})" if wrap else dump_term(t)


def _annotations(names: tuple[str, ...]) -> str:
    return f" #[{', '.join(names)}]" if names else ""


def _deduction(d: ast.DeductionDecl) -> list[str]:
    out = [f"deduction {d.name} : {dump_set(d.dom)} -> {dump_set(d.cod)}{_options(d.options)}"]
    if d.atoms:
        out.append(f"{INDENT}atoms {', '.join(d.atoms)}")
    if d.binders:
        out.append(f"{INDENT}binders {', '.join(d.binders)}")
    for r in d.rules:
        premises = ", ".join(dump_term(p) for p in r.premises)
        out.append(f"{INDENT}rule {r.name} : {premises}{' ' if premises else ''}|- "
                   f"{dump_term(r.conclusion)}{_annotations(r.annotations)}")
    if d.lexicon:
        out.append(f"{INDENT}lexicon")
        for e in d.lexicon:
            meaning = f" = {dump_term(e.meaning)}" if e.meaning is not None else ""
            out.append(f'{INDENT * 2}"{e.word}" : {dump_term(e.category)}{meaning}'
                       f"{_annotations(e.annotations)}")
    return out


def dumps(node: ast.Module | ast.Decl | ast.Step) -> str:
    """Pretty-print a module (or one declaration or step) as QVR source.

    A module ends with a newline, as a file does; a declaration or step
    does not.

    Examples
    --------
    >>> print(dumps(ast.Module((ast.ObjectDecl("K", 2), ast.Export("p")))), end="")
    object K : FinSet 2
    export p
    >>> dumps(ast.Let("s", ast.Call("sort", (ast.Name("mu_k"),))))
    'let s = sort(mu_k)'
    """
    if isinstance(node, ast.Module):
        out: list[str] = []
        after_program = False
        for d in node.items:
            # the algebra and computations are set apart like a program
            is_program = isinstance(d, (ast.ProgramDecl, ast.CompositionDecl, ast.ComputationDecl))
            if out and (is_program or after_program):
                out.append("")
            out.extend(_decl(d))
            after_program = is_program
        return "".join(line + "\n" for line in out)
    if isinstance(node, ast.Step.__args__):
        return "\n".join(_step(node, 0))
    return "\n".join(_decl(node))
