"""From lark's parse tree to the QVR AST: one method per grammar rule.

Each method receives the rule's position (``meta``) and its children,
already transformed, and returns one frozen node of :mod:`quivers.dsl.ast`
with its :class:`~quivers.errors.Span`. Statements (declarations and steps)
get the span of their first line up to any comment, so a caret under a
statement underlines what the author wrote and not the newline after it.

The transformer also rejects what the grammar admits but the language does
not: keywords used as names, fractional or non-finite object sizes, and
numbers too large to be finite.

Examples
--------
>>> from quivers.dsl.parser import parse
>>> parse("export gmm").items[0].span
Span(line=1, column=1, end_line=1, end_column=11)
"""

from __future__ import annotations

import math
import sys
from typing import Any

from lark import Token, Transformer, v_args

from quivers.dsl import ast
from quivers.errors import QVRSyntaxError, Span

__all__ = ["KEYWORDS", "CONTEXTUAL_KEYWORDS", "ANNOTATIONS", "QVRTransformer"]

KEYWORDS = frozenset(
    {
        "object", "FinSet", "Real", "program", "export",
        "sample", "observe", "marginalize", "let", "factor", "return", "index", "data",
        "deduction", "morphism", "define",
    }
)
"""Reserved words: none of them can name an object, program or value."""

CONTEXTUAL_KEYWORDS = frozenset(
    {
        "atoms", "binders", "rule", "lexicon", "composition", "as", "algebra", "score", "in",
        "type", "Euclidean", "embed", "kernel", "continuous", "latent", "contraction", "over", "iid",
        "schema", "bundle", "FreeResiduated",
    }
)
"""Words that start a line of a ``deduction`` body, a ``score`` step, a braced block (``in {``), the module's
``composition`` declaration (``composition log_prob as algebra``, or
``algebra log_prob``) or one of the peer's older declarations (``type E =
Euclidean 4``, ``embed``, ``kernel``, ``continuous``, ``latent``), a
``contraction``, a ``schema`` or ``bundle``, or a universe of categories
(``object Cat : FreeResiduated(Atoms)``), and are
names anywhere else (the parser's lexer only expects them there)."""

ANNOTATIONS = frozenset({"learnable", "bounded"})
"""What ``#[...]`` may say after a deduction rule (``learnable``: it has a
log weight; ``bounded``: the deduction's ``depth`` bounds its conclusions,
and a learnable one's weight is capped below one) or a lexicon entry
(``learnable`` only)."""


def _token_span(token: Token) -> Span:
    return Span(token.line, token.column, token.end_line, token.end_column)


_MAX_SIZE = 2**63 - 1
_MAX_INT_DIGITS = len(str(int(sys.float_info.max)))


def _number(token: Token, source: str) -> int | float:
    text = str(token)
    if not any(c in text for c in ".eE"):
        # Past the largest float an integer cannot be a value of a density;
        # checking the digits first also keeps clear of Python's limit on
        # converting long digit strings.
        digits = text.lstrip("0")
        if len(digits) <= _MAX_INT_DIGITS and int(digits or "0") <= sys.float_info.max:
            return int(digits or "0")
        value = math.inf
    else:
        value = float(text)
    if not math.isfinite(value):
        shown = text if len(text) <= 24 else f"{text[:12]}...{text[-6:]}"
        raise QVRSyntaxError(
            f"number `{shown}` is too large to represent", span=_token_span(token), source=source
        )
    return value


@v_args(meta=True)
class QVRTransformer(Transformer):
    """Builds :mod:`quivers.dsl.ast` nodes; ``source`` is used for spans and errors.

    Examples
    --------
    >>> from quivers.dsl.parser import _parser
    >>> tree = _parser().parse("export p\\n")
    >>> QVRTransformer("export p\\n").transform(tree)
    Module(items=(Export(name='p'),))
    """

    def __init__(self, source: str) -> None:
        super().__init__(visit_tokens=True)
        self.source = source
        self._lines = source.splitlines()

    # ------------------------------------------------------------ helpers

    def _span(self, meta: Any) -> Span:
        return Span(meta.line, meta.column, meta.end_line, meta.end_column)

    def _line_span(self, meta: Any) -> Span:
        """The span of a statement: its first line, without a trailing comment."""
        text = self._lines[meta.line - 1] if meta.line <= len(self._lines) else ""
        end = len(text.split("#", 1)[0].rstrip()) + 1
        return Span(meta.line, meta.column, meta.line, max(end, meta.column + 1))

    # ------------------------------------------------------------ tokens

    @v_args(meta=False, inline=False)
    def NAME(self, token: Token) -> Token:
        if token in KEYWORDS:
            raise QVRSyntaxError(
                f"`{token}` is a keyword and cannot be used as a name",
                span=_token_span(token),
                source=self.source,
                hint=f"rename it, e.g. `{token}_`",
            )
        return token

    # ------------------------------------------------------------ module

    def start(self, meta: Any, children: list) -> ast.Module:
        span = self._span(meta) if not meta.empty else Span(1, 1, 1, 1)
        items = [d for c in children for d in (c if isinstance(c, tuple) else (c,))]
        return ast.Module(tuple(items), span=span)

    def composition_decl(self, meta: Any, children: list) -> ast.CompositionDecl:
        name, level, options = children
        options = options or ()
        if level is not None:  # `as algebra` is `[level=algebra]`
            if any(o.key == "level" for o in options):
                raise QVRSyntaxError(
                    f"`composition {name}` gives its level twice: `as {level}` and `[level=...]`",
                    span=_token_span(level), source=self.source,
                )
            options = (ast.Option("level", ast.OptionName(str(level), span=_token_span(level)),
                                  span=_token_span(level)),) + tuple(options)
        return ast.CompositionDecl(str(name), tuple(options), span=self._line_span(meta))

    def algebra_decl(self, meta: Any, children: list) -> ast.CompositionDecl:
        (name,) = children
        level = ast.Option("level", ast.OptionName("algebra", span=_token_span(name)), span=_token_span(name))
        return ast.CompositionDecl(str(name), (level,), span=self._line_span(meta))

    def object_decl(self, meta: Any, children: list) -> tuple[ast.ObjectDecl, ...]:
        *names, size = children
        value = self._size(names[0], size)
        return tuple(ast.ObjectDecl(str(n), value, span=self._line_span(meta)) for n in names)

    def object_enum(self, meta: Any, children: list) -> ast.EnumObject:
        name, *elements = children
        seen: set[str] = set()
        for e in elements:
            if str(e) in seen:
                raise QVRSyntaxError(f"`{e}` is listed twice in object `{name}`", span=_token_span(e),
                                     source=self.source)
            seen.add(str(e))
        return ast.EnumObject(str(name), tuple(map(str, elements)), span=self._line_span(meta))

    def object_residuated(self, meta: Any, children: list) -> ast.ResiduatedObject:
        name, generators, *options = children
        return ast.ResiduatedObject(str(name), str(generators), tuple(options), span=self._line_span(meta))

    def object_real(self, meta: Any, children: list) -> tuple[ast.RealObject, ...]:
        *names, dim = children
        value = self._size(names[0], dim)
        return tuple(ast.RealObject(str(n), value, span=self._line_span(meta)) for n in names)

    def _size(self, name: Token, size: Token) -> int:
        value = _number(size, self.source)
        if not isinstance(value, int):
            raise QVRSyntaxError(
                f"the size of object `{name}` must be a whole number, got `{size}`",
                span=_token_span(size),
                source=self.source,
            )
        if value > _MAX_SIZE:
            raise QVRSyntaxError(
                f"the size of object `{name}` is {value}, more than a tensor axis can hold ({_MAX_SIZE})",
                span=_token_span(size),
                source=self.source,
            )
        return value

    def object_def(self, meta: Any, children: list) -> ast.ObjectDef:
        name, value = children
        return ast.ObjectDef(str(name), value, span=self._line_span(meta))

    def program_decl(self, meta: Any, children: list) -> ast.ProgramDecl:
        name, *rest = children
        params = []
        while rest and isinstance(rest[0], ast.Param) or (rest and rest[0] is None):
            head = rest.pop(0)
            if head is not None:
                params.append(head)
        dom, cod, options, *body = rest
        input_ = None
        if params and all(p.type is None for p in params):
            # `program q(b)`: the input binding; `program c(x_t, h_prev)`: one per factor (a scan cell)
            input_, params = ", ".join(p.name for p in params), []
        for p in params:
            if p.type is None:
                raise QVRSyntaxError(
                    f"parameter `{p.name}` of program `{name}` needs a type: `{p.name} : Real` or `{p.name} : FinSet`",
                    span=p.span, source=self.source,
                )
        return ast.ProgramDecl(
            str(name), dom, cod, options or (), tuple(body), input_, tuple(params), span=self._line_span(meta),
        )

    def param(self, meta: Any, children: list) -> ast.Param:
        name, type_ = children
        return ast.Param(str(name), None if type_ is None else str(type_), span=self._span(meta))

    def composite_decl(self, meta: Any, children: list) -> ast.CompositeDecl:
        name, value, options = children
        return ast.CompositeDecl(str(name), value, options or (), span=self._line_span(meta))

    # ------------------------------------------------------------ composite programs

    def program_then(self, meta: Any, children: list) -> ast.ProgramThen:
        left, right = children
        return ast.ProgramThen(left, right, span=self._span(meta))

    def program_tensor(self, meta: Any, children: list) -> ast.ProgramTensor:
        left, right = children
        return ast.ProgramTensor(left, right, span=self._span(meta))

    def program_ref(self, meta: Any, children: list) -> ast.ProgramRef:
        return ast.ProgramRef(str(children[0]), span=self._span(meta))

    def program_builtin(self, meta: Any, children: list) -> ast.ProgramIdentity:
        name, obj = children
        if name != "identity":
            raise QVRSyntaxError(
                f"unknown built-in program `{name}(...)`; the built-in is `identity(A)`",
                span=_token_span(name),
                source=self.source,
                hint="a declared program is named without parentheses",
            )
        return ast.ProgramIdentity(obj, span=self._span(meta))

    # ------------------------------------------------------------ morphisms

    def morphism_decl(self, meta: Any, children: list) -> ast.MorphismDecl:
        *names, dom, cod, options, family = children
        fam, fam_args, fam_options, axes = family if family is not None else (None, (), (), ())
        return ast.MorphismDecl(
            tuple(str(n) for n in names), dom, cod, (*(options or ()), *axes), fam, fam_options, fam_args,
            span=self._line_span(meta),
        )

    def axis_over(self, meta: Any, children: list) -> tuple[ast.Option, ...]:
        over, iid = children
        span = self._span(meta)
        return (ast.Option("over", over, span=span),) + (() if iid is None else (ast.Option("iid_over", iid, span=span),))

    def axis_iid(self, meta: Any, children: list) -> tuple[ast.Option, ...]:
        return (ast.Option("iid_over", children[0], span=self._span(meta)),)

    def axis_list(self, meta: Any, children: list) -> ast.OptionValue:
        names = [ast.OptionName(str(n), span=_token_span(n)) for n in children]
        return names[0] if len(names) == 1 else ast.OptionList(tuple(names), span=self._span(meta))

    def contraction_decl(self, meta: Any, children: list) -> ast.ContractionDecl:
        name, *rest = children
        params = tuple(c for c in rest if isinstance(c, ast.ContractionParam))
        dom, cod, options = [c for c in rest if not isinstance(c, ast.ContractionParam)][-3:]
        return ast.ContractionDecl(str(name), params, dom, cod, options or (), span=self._line_span(meta))

    def contraction_param(self, meta: Any, children: list) -> ast.ContractionParam:
        name, dom, cod = children
        return ast.ContractionParam(str(name), dom, cod, span=self._span(meta))

    def legacy_object(self, meta: Any, children: list) -> ast.RealObject:
        name, dim = children
        return ast.RealObject(str(name), self._size(name, dim), span=self._line_span(meta))

    def legacy_role(self, meta: Any, children: list) -> str:
        return {"continuous": "kernel"}.get(str(children[0]), str(children[0]))

    def legacy_morphism(self, meta: Any, children: list) -> ast.MorphismDecl:
        role, name, copies, dom, cod, options, family = children
        span = self._line_span(meta)
        implied = [ast.Option("role", ast.OptionName(role, span=span), span=span)]
        if copies is not None:
            count = _number(copies, self.source)
            implied.append(ast.Option("replicate", ast.OptionNumber(count, span=_token_span(copies)),
                                      span=_token_span(copies)))
        return self.morphism_decl(meta, [name, dom, cod, (*implied, *(options or ())), family])

    def morphism_family(self, meta: Any, children: list) -> tuple[str, tuple, tuple[ast.Option, ...], tuple]:
        name, *rest, options, axes = children
        args = tuple(_number(t, self.source) for t in rest if t is not None)
        return str(name), args, options or (), axes or ()

    def define_keyword(self, meta: Any, children: list) -> str:
        return str(children[0])

    def define_decl(self, meta: Any, children: list) -> ast.DefineDecl:
        keyword, name, value = children
        return ast.DefineDecl(str(name), value, keyword, span=self._line_span(meta))

    def computation_decl(self, meta: Any, children: list) -> ast.ComputationDecl:
        keyword, name, *rest = children
        if keyword != "define":
            raise QVRSyntaxError(
                f"a computation with parameters is declared with `define`, not `{keyword}`",
                span=self._line_span(meta), source=self.source, hint=f"write `define {name}(...)`",
            )
        params = [c for c in rest if isinstance(c, ast.TypedParam)]
        rest = [c for c in rest if c is not None and not isinstance(c, ast.TypedParam)]
        result, effects, *body = rest
        return ast.ComputationDecl(str(name), tuple(params), result, effects, tuple(body), span=self._line_span(meta))

    def typed_param(self, meta: Any, children: list) -> ast.TypedParam:
        name, type_ = children
        return ast.TypedParam(str(name), type_, span=self._span(meta))

    def type_real(self, meta: Any, children: list) -> ast.ScalarType:
        return ast.ScalarType("Real", span=self._span(meta))

    def type_name(self, meta: Any, children: list) -> ast.ScalarType:
        return ast.ScalarType(str(children[0]), span=self._span(meta))

    def type_tensor(self, meta: Any, children: list) -> ast.TensorType:
        head, element, *sizes = children
        if head != "Tensor" or not isinstance(element, ast.ScalarType):
            raise QVRSyntaxError(
                f"unknown type `{head}[...]`; a collection type is `Tensor[Real]([n, ...])`",
                span=self._span(meta), source=self.source,
            )
        shape = []
        for t in sizes:
            if t is None:
                continue
            n = _number(t, self.source)
            if not isinstance(n, int) or n < 1:
                raise QVRSyntaxError(
                    f"a tensor extent is a positive whole number, not `{t}`", span=_token_span(t), source=self.source
                )
            shape.append(n)
        return ast.TensorType(element, tuple(shape), span=self._span(meta))

    def effect_row(self, meta: Any, children: list) -> tuple[str, ...]:
        return tuple(str(c) for c in children if c is not None)

    def perform_step(self, meta: Any, children: list) -> ast.Perform:
        name, value = children
        return ast.Perform(str(name), value, span=self._line_span(meta))

    def lambda_expr(self, meta: Any, children: list) -> ast.Lambda:
        param, body = children
        return ast.Lambda(str(param), body, span=self._span(meta))

    def morphism_then(self, meta: Any, children: list) -> ast.MorphismThen:
        left, right = children
        return ast.MorphismThen(left, right, span=self._span(meta))

    def morphism_before(self, meta: Any, children: list) -> ast.MorphismThen:
        # `g << f` is `f >> g`, written right to left; the printer writes `>>`
        left, right = children
        return ast.MorphismThen(right, left, span=self._span(meta))

    def morphism_tensor(self, meta: Any, children: list) -> ast.MorphismTensor:
        left, right = children
        return ast.MorphismTensor(left, right, span=self._span(meta))

    def morphism_attr(self, meta: Any, children: list) -> ast.MorphismAttr:
        base, attr, *args = children
        return ast.MorphismAttr(base, str(attr), tuple(args), span=self._span(meta))

    def transformation_then(self, meta: Any, children: list) -> ast.TransformationThen:
        left, right = children
        return ast.TransformationThen(left, right, span=self._span(meta))

    def morphism_ref(self, meta: Any, children: list) -> ast.MorphismRef:
        return ast.MorphismRef(str(children[0]), span=self._span(meta))

    def morphism_call(self, meta: Any, children: list) -> ast.MorphismCall:
        func, *args = children
        return ast.MorphismCall(str(func), tuple(args), span=self._span(meta))

    def morphism_number(self, meta: Any, children: list) -> ast.MorphismNumber:
        return ast.MorphismNumber(_number(children[0], self.source), span=self._span(meta))

    def morphism_keyword(self, meta: Any, children: list) -> ast.MorphismKeyword:
        name, value = children
        return ast.MorphismKeyword(str(name), value, span=self._span(meta))

    def morphism_list(self, meta: Any, children: list) -> ast.MorphismList:
        return ast.MorphismList(tuple(children), span=self._span(meta))

    def export_decl(self, meta: Any, children: list) -> ast.Export:
        (name,) = children
        return ast.Export(str(name), span=self._line_span(meta))

    # ------------------------------------------------------------ finite sets

    def set_unit(self, meta: Any, children: list) -> ast.SetUnit:
        (number,) = children
        if str(number) != "1":
            raise QVRSyntaxError(
                f"`{number}` is no set: the only number that names one is `1`, the one-element set",
                span=_token_span(number), source=self.source, hint="declare an object, e.g. `object K : FinSet 3`",
            )
        return ast.SetUnit(span=self._span(meta))

    def set_name(self, meta: Any, children: list) -> ast.SetName:
        return ast.SetName(str(children[0]), span=self._span(meta))

    def set_product(self, meta: Any, children: list) -> ast.SetProduct:
        left, right = children
        return ast.SetProduct(left, right, span=self._span(meta))

    def set_sum(self, meta: Any, children: list) -> ast.SetSum:
        left, right = children
        return ast.SetSum(left, right, span=self._span(meta))

    # ------------------------------------------------------------ steps

    def index_set(self, meta: Any, children: list) -> ast.SetExpr:
        return children[0]

    def sample_step(self, meta: Any, children: list) -> ast.Sample:
        name, index_set, family, options = children
        return ast.Sample(str(name), index_set, family, options or (), span=self._line_span(meta))

    bind_step = sample_step

    def observe_step(self, meta: Any, children: list) -> ast.Observe:
        name, index_set, family, options = children
        return ast.Observe(str(name), index_set, family, options or (), span=self._line_span(meta))

    def marginalize_step(self, meta: Any, children: list) -> ast.Marginalize:
        name, support, prior, options, *body = children
        return ast.Marginalize(
            str(name), support, prior, options or (), tuple(body), span=self._line_span(meta)
        )

    def markov_step(self, meta: Any, children: list) -> ast.Markov:
        name, index_set, support, prior, options, *body = children
        return ast.Markov(
            str(name), index_set, support, prior, options or (), tuple(body), span=self._line_span(meta)
        )

    def let_step(self, meta: Any, children: list) -> ast.Let:
        name, value = children
        return ast.Let(str(name), value, span=self._line_span(meta))

    def factor_step(self, meta: Any, children: list) -> ast.Factor:
        return ast.Factor(children[0], span=self._line_span(meta))

    def score_step(self, meta: Any, children: list) -> ast.Factor:
        name, value = children
        return ast.Factor(value, str(name), span=self._line_span(meta))

    def return_step(self, meta: Any, children: list) -> ast.Return:
        return ast.Return(children[0], span=self._line_span(meta))

    def index_step(self, meta: Any, children: list) -> ast.IndexMap:
        name, dom, cod = children
        return ast.IndexMap(str(name), dom, cod, span=self._line_span(meta))

    def data_step(self, meta: Any, children: list) -> ast.Data:
        name, index_set, cod = children
        return ast.Data(str(name), index_set, cod, span=self._line_span(meta))

    # ------------------------------------------------------------ options

    def options(self, meta: Any, children: list) -> tuple[ast.Option, ...]:
        return tuple(children)

    def option(self, meta: Any, children: list) -> ast.Option:
        key, value = children
        return ast.Option(str(key), value, span=self._span(meta))

    def marginalize_option(self, meta: Any, children: list) -> ast.Option:
        (value,) = children
        return ast.Option("marginalize", value, span=self._span(meta))

    def option_name(self, meta: Any, children: list) -> ast.OptionName:
        return ast.OptionName(str(children[0]), span=self._span(meta))

    def option_number(self, meta: Any, children: list) -> ast.OptionNumber:
        return ast.OptionNumber(_number(children[0], self.source), span=self._span(meta))

    def option_product(self, meta: Any, children: list) -> ast.OptionProduct:
        return ast.OptionProduct(tuple(str(c) for c in children), span=self._span(meta))

    def option_list(self, meta: Any, children: list) -> ast.OptionList:
        return ast.OptionList(tuple(children), span=self._span(meta))

    # ------------------------------------------------------------ families

    def family(self, meta: Any, children: list) -> ast.FamilyCall:
        name, *arguments = children
        args = tuple(a for a in arguments if not isinstance(a, ast.Keyword))
        kwargs = tuple(a for a in arguments if isinstance(a, ast.Keyword))
        return ast.FamilyCall(str(name), args, kwargs, span=self._span(meta))

    def family_bare(self, meta: Any, children: list) -> ast.FamilyCall:
        return ast.FamilyCall(str(children[0]), bare=True, span=self._span(meta))

    def keyword(self, meta: Any, children: list) -> ast.Keyword:
        name, value = children
        return ast.Keyword(str(name), value, span=self._span(meta))

    # ------------------------------------------------------------ expressions

    def add(self, meta: Any, children: list) -> ast.BinOp:
        return ast.BinOp("+", *children, span=self._span(meta))

    def sub(self, meta: Any, children: list) -> ast.BinOp:
        return ast.BinOp("-", *children, span=self._span(meta))

    def mul(self, meta: Any, children: list) -> ast.BinOp:
        return ast.BinOp("*", *children, span=self._span(meta))

    def div(self, meta: Any, children: list) -> ast.BinOp:
        return ast.BinOp("/", *children, span=self._span(meta))

    def pow(self, meta: Any, children: list) -> ast.BinOp:
        return ast.BinOp("^", *children, span=self._span(meta))

    def compare(self, meta: Any, children: list) -> ast.BinOp:
        left, op, right = children
        return ast.BinOp(str(op), left, right, span=self._span(meta))

    def vector_literal(self, meta: Any, children: list) -> ast.Vector:
        return ast.Vector(tuple(children), span=self._span(meta))

    def record(self, meta: Any, children: list) -> ast.Record:
        return ast.Record(tuple(children), span=self._span(meta))

    def record_field(self, meta: Any, children: list) -> tuple[str, ast.Expr]:
        label, value = children
        return (str(label), value)

    def tuple_literal(self, meta: Any, children: list) -> ast.Tuple:
        return ast.Tuple(tuple(children), span=self._span(meta))

    def tabulate(self, meta: Any, children: list) -> ast.Tabulate:
        *binders, last = children
        if isinstance(last, list):
            return ast.Tabulate(tuple(binders), tuple(last), None, span=self._span(meta))
        return ast.Tabulate(tuple(binders), None, last, span=self._span(meta))

    def binder(self, meta: Any, children: list) -> tuple[str, ast.SetExpr]:
        name, over = children
        return (str(name), ast.SetName(str(over), span=_token_span(over)))

    def cases(self, meta: Any, children: list) -> list:
        return [c for c in children if c is not None]

    def case(self, meta: Any, children: list) -> tuple[int, ast.Expr]:
        label, value = children
        return (_number(label, self.source), value)

    def neg(self, meta: Any, children: list) -> ast.Neg:
        return ast.Neg(children[0], span=self._span(meta))

    def subscript(self, meta: Any, children: list) -> ast.Subscript:
        base, *indices = children
        return ast.Subscript(base, tuple(indices), span=self._span(meta))

    def method_call(self, meta: Any, children: list) -> ast.Method:
        target, name, *args = children
        return ast.Method(target, str(name), tuple(args), span=self._span(meta))

    def call(self, meta: Any, children: list) -> ast.Call:
        func, *args = children
        kwargs = tuple(a for a in args if isinstance(a, ast.Keyword))
        args = [a for a in args if not isinstance(a, ast.Keyword)]
        return ast.Call(str(func), tuple(args), kwargs, span=self._span(meta))

    def number(self, meta: Any, children: list) -> ast.Number:
        return ast.Number(_number(children[0], self.source), span=self._span(meta))

    def name(self, meta: Any, children: list) -> ast.Name:
        return ast.Name(str(children[0]), span=self._span(meta))

    # ------------------------------------------------------------ deductions

    def deduction_decl(self, meta: Any, children: list) -> ast.DeductionDecl:
        name, dom, cod, options, *parts = children
        found: dict[str, list] = {"atoms": [], "binders": [], "rule": [], "lexicon": []}
        for kind, items in parts:
            found[kind].extend(items)
        return ast.DeductionDecl(
            str(name), dom, cod, options or (), tuple(found["atoms"]), tuple(found["rule"]),
            tuple(found["lexicon"]), tuple(dict.fromkeys(found["binders"])), span=self._line_span(meta),
        )

    def atoms_decl(self, meta: Any, children: list) -> tuple[str, tuple[str, ...]]:
        return "atoms", tuple(str(c) for c in children)

    def binders_decl(self, meta: Any, children: list) -> tuple[str, tuple[str, ...]]:
        return "binders", tuple(str(c) for c in children)

    def rule_decl(self, meta: Any, children: list) -> tuple[str, tuple[ast.DeductionRule]]:
        name, premises, conclusion, annotation = children
        rule = ast.DeductionRule(str(name), premises, conclusion, self._annotations(annotation),
                                 span=self._line_span(meta))
        return "rule", (rule,)

    def premises(self, meta: Any, children: list) -> tuple[ast.Term, ...]:
        return tuple(children)

    def lexicon_decl(self, meta: Any, children: list) -> tuple[str, tuple[ast.LexiconEntry, ...]]:
        return "lexicon", tuple(children)

    def lexicon_entry(self, meta: Any, children: list) -> ast.LexiconEntry:
        word, category, meaning, annotation = children
        text = str(word)[1:-1]
        if not text.strip():
            raise QVRSyntaxError("a lexicon entry needs a word between its quotes",
                                 span=_token_span(word), source=self.source)
        return ast.LexiconEntry(text, category, meaning,
                                self._annotations(annotation, lexicon=True), span=self._line_span(meta))

    def _annotations(self, token: Token | None, lexicon: bool = False) -> tuple[str, ...]:
        if token is None:
            return ()
        names = tuple(a.strip() for a in str(token)[2:-1].split(",") if a.strip())
        allowed = {"learnable"} if lexicon else ANNOTATIONS
        for a in names:
            if a not in allowed:
                raise QVRSyntaxError(
                    f"unknown annotation `{a}` in `{token}`" + (" on a lexicon entry" if a in ANNOTATIONS else ""),
                    span=_token_span(token), source=self.source,
                    hint="a lexicon entry takes `#[learnable]`" if lexicon
                    else "a rule takes `#[learnable]` and `#[bounded]`",
                )
        return names

    # ------------------------------------------------------------ schemas

    def schema_decl(self, meta: Any, children: list) -> ast.SchemaDecl:
        name, params, domain, codomain = children
        return ast.SchemaDecl(str(name), params, domain, codomain, span=self._line_span(meta))

    def schema_params(self, meta: Any, children: list) -> tuple[ast.SchemaParam, ...]:
        # `X, Y : Cat`: the untyped names before a typed one share its type
        groups, pending = [], []
        for name, type_, span in children:
            pending.append((name, span))
            if type_ is not None:
                groups.append(ast.SchemaParam(tuple(n for n, _ in pending), type_, span=pending[0][1]))
                pending = []
        if pending:
            groups.append(ast.SchemaParam(tuple(n for n, _ in pending), None, span=pending[0][1]))
        return tuple(groups)

    def schema_param(self, meta: Any, children: list) -> tuple[str, str | None, Any]:
        name, type_ = children
        return str(name), None if type_ is None else str(type_), self._span(meta)

    def schema_domain(self, meta: Any, children: list) -> tuple[ast.Term, ...]:
        return tuple(children)

    def bundle_decl(self, meta: Any, children: list) -> ast.BundleDecl:
        name, *members = children
        return ast.BundleDecl(str(name), tuple(map(str, members)), span=self._line_span(meta))

    def term_fwd(self, meta: Any, children: list) -> ast.TermSlash:
        left, right = children
        return ast.TermSlash("/", left, right, span=self._span(meta))

    def term_bwd(self, meta: Any, children: list) -> ast.TermSlash:
        left, right = children
        return ast.TermSlash("\\", left, right, span=self._span(meta))

    def term_name(self, meta: Any, children: list) -> ast.TermName:
        return ast.TermName(str(children[0]), span=self._span(meta))

    def term_number(self, meta: Any, children: list) -> ast.TermNumber:
        (token,) = children
        value = _number(token, self.source)
        if not isinstance(value, int):
            raise QVRSyntaxError(f"a number in a term must be whole, got `{token}`",
                                 span=_token_span(token), source=self.source)
        return ast.TermNumber(value, span=self._span(meta))

    def term_call(self, meta: Any, children: list) -> ast.TermCall:
        functor, *args = children
        return ast.TermCall(str(functor), tuple(args), span=self._span(meta))
