"""Static checks of a QVR module, before anything is built or run.

The checker walks the AST once, in source order, and raises the first
problem it finds as a :class:`~quivers.errors.QuiversError` located at the
offending node, with the source line and a caret when the source is given.

What it checks
--------------
- Objects: every object named in a set expression is declared earlier;
  no name is declared twice (objects and programs share one namespace).
- Programs: every name an expression reads is defined by an earlier step
  of the same program (a marginalized latent only inside its block); no
  step defines a name twice or a name that is an object's; ``return`` is
  the last top-level step.
- Families and functions: the family is registered in
  :data:`quivers.distributions.FAMILIES` and its keyword arguments are
  among its parameters, with the right number of arguments; constant
  arguments satisfy their constraints; a function is one of
  :data:`quivers.programs.FUNCTIONS`, applied to one argument.
- Markov chains (``marginalize z : T -> K <- Markov(init=pi, trans=A)``):
  the prior is ``Markov`` with keywords among ``init``, ``init_logits``,
  ``first``, ``first_logits``, ``trans``, ``trans_logits`` (one transition,
  at most one initial law and one first step); ``until`` names a
  defined name.
- Options: each key is known where it is used (``effects`` on a program,
  ``over`` on ``marginalize``, ``via`` on ``observe``) and occurs once;
  each value has the right kind; effect names are effects; ``over`` names
  an object; ``via`` names a name in scope, or data.
- Composite programs (``program h = p >> q @ identity(A)``): every
  program named is declared earlier. A program's input
  (``program q(b) : B -> C``) is in scope in its body.
- Morphisms: a ``morphism`` declaration's objects are declared earlier;
  its options, ``define`` expressions and the programs that draw from
  morphisms are checked where they compile, in :mod:`quivers.dsl.morphisms`.
- Exports: each names a program (or a morphism) once (the first is the module's
  morphism); a program with set parameters is exported by no one.
- Parametric programs (``program f(G : FinSet, s : Real) : G -> 1``) are
  checked with ``G`` standing for any object and ``s`` a number; their uses
  as families are inlined first (:mod:`quivers.dsl.inline`).
- Data: a name a program reads but never defines is data; its role is
  inferred from its use (:class:`DataRole`), and a name too close to one in
  scope is reported as a likely typo.

What it leaves to the IR
------------------------
Scope, order and syntax are the checker's; every other rule is checked
once, by the IR, when the compiler builds the program, and its error is
placed on the QVR text at fault (:meth:`~quivers.errors.Span.with_parts`):
a ``marginalize`` block's Categorical prior, where a chain and ``return``
may stand, what ``until`` and ``via`` name and where ``via`` may stand,
the declared effects of a program, and the domains of a composite.

Examples
--------
>>> from quivers.dsl.parser import parse
>>> text = "object K : FinSet 2\\nprogram p : K -> K\\n    sample mu : KK <- Normal(0.0, 1.0)\\n"
>>> check(parse(text), text)
Traceback (most recent call last):
...
quivers.errors.UnknownNameError: line 3, column 17: unknown object `KK` in `sample mu : KK`; objects in scope: K; did you mean `K`?
        sample mu : KK <- Normal(0.0, 1.0)
                    ^^
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from quivers.categories import FinSet
from quivers.distributions import CONSTRAINTS, FAMILIES, TRANSFORMS, Family, family, transform
from quivers.distributions.pushforward import transform_name
from quivers.dsl import ast
from quivers.dsl.axes import ALGEBRAS, AXIS_OPTIONS, DEFAULT, LEVELS, Algebra, axis_names, grouping, site_set
from quivers.dsl.axes import plate as plate_of
from quivers.dsl.computations import check_computations
from quivers.dsl.mixtures import check_literal_weights, literal_weights
from quivers.dsl.morphisms import kernel_programs
from quivers.dsl.printer import dump_expr, dump_set
from quivers.errors import QuiversError, QuiversTypeError, Span, UnknownNameError, UnsupportedError
from quivers.programs import BUILDERS, FUNCTIONS, Effect, var
from quivers.programs.expr import ARITY, AXIS_ARGUMENT, arity_text
from quivers.programs.graph import recursion_error

__all__ = ["check", "CheckedModule", "DataRole", "OPTIONS", "MARKOV_KEYWORDS"]

MARKOV_KEYWORDS = ("init", "init_logits", "first", "first_logits", "trans", "trans_logits")
"""The keywords of ``Markov(...)``: initial law, first step (of a second-order
chain) and transition, as weights or logits."""

OPTIONS: dict[str, tuple[str, ...]] = {
    "program": ("effects", "marginalize", "budget"),
    "sample": (*AXIS_OPTIONS, "enumerate", "constraint"),
    "observe": ("via", *AXIS_OPTIONS),
    "marginalize": ("over", "reduction"),
    "markov": ("until", "reduction"),
    "composition": ("level",),
}
"""The option keys each construct accepts."""

@dataclass(frozen=True)
class CheckedModule:
    """What the checker learned: declarations by name, and the export.

    Examples
    --------
    >>> from quivers.dsl.parser import parse
    >>> info = check(parse("object K : FinSet 2"))
    >>> list(info.objects), info.export
    (['K'], None)
    """

    objects: Mapping[str, ast.ObjectDecl | ast.EnumObject | ast.RealObject | ast.ObjectDef]
    programs: Mapping[str, ast.ProgramDecl | ast.CompositeDecl]
    export: str | None = None
    exports: tuple[str, ...] = ()
    effects: Mapping[str, frozenset[Effect] | None] = field(default_factory=dict)
    data: Mapping[str, Mapping[str, DataRole]] = field(default_factory=dict)
    algebra: Algebra = DEFAULT
    # program -> marginalized latent written without `: K` -> the set it ranges over
    supports: Mapping[str, Mapping[str, ast.SetExpr]] = field(default_factory=dict)


def check(module: ast.Module, source: str | None = None) -> CheckedModule:
    """Check ``module``; raise the first problem as a located QuiversError.

    Parameters
    ----------
    module
        A parsed module.
    source
        Its text, so that errors show the offending line with a caret.

    Returns
    -------
    CheckedModule
        The module's objects and programs by name, the exported program's
        name, and each program's declared effects (None when inferred).

    Examples
    --------
    >>> from quivers.dsl.parser import parse
    >>> text = '''
    ... object K : FinSet 2
    ... program p : K -> K
    ...     sample mu : K <- Normal(0.0, 1.0)
    ...     return mu
    ... export p
    ... '''
    >>> check(parse(text), text).export
    'p'
    """
    from quivers.dsl.inline import inline

    return _Checker(source).module(inline(module, source))


# ---------------------------------------------------------------- the walk


@dataclass(frozen=True)
class _Use:
    """One read of a name no step defines: where, in which step, and how
    (``subscript`` is the base indexed by it and the position; ``via`` the
    block it groups and ``into`` the set it maps into there)."""

    node: ast.Node
    step: ast.Step | None
    subscript: tuple[ast.Expr, int, int] | None = None
    via: ast.Marginalize | None = None
    into: ast.SetExpr | None = None
    shape: tuple[int, ...] | None = None  # an argument of a computation: its parameter's shape


@dataclass(frozen=True)
class DataRole:
    """What the checker knows of a data name: ``kind`` is ``"real"`` (one
    number, or one per element of ``index_set``) or ``"index"`` (an index
    map ``index_set -> cod``); ``inferred`` when no ``data`` step declares
    it, ``node`` is its declaration or its first use.

    Examples
    --------
    >>> DataRole("x", "real", ast.SetName("Item")).describe()
    'data x : Item (real, one per element of Item; declared)'
    """

    name: str
    kind: str
    index_set: ast.SetExpr | None = None
    cod: ast.SetExpr | None = None
    inferred: bool = False
    node: ast.Node | None = field(default=None, compare=False)
    shape: tuple[int, ...] = ()  # a tensor given to a computation: its shape (no plate)

    def describe(self) -> str:
        """One line for ``qvr check --verbose``: the declaration it amounts to and why."""
        decl = f"data {self.name}"
        if self.index_set is not None:
            decl += f" : {dump_set(self.index_set)}"
        if self.cod is not None:
            decl += f" -> {dump_set(self.cod)}"
        if self.shape:
            what = f"a tensor of shape {list(self.shape)}, a computation's argument"
        elif self.kind == "index":
            what = f"an index map into {dump_set(self.cod)}"
        elif self.index_set is not None:
            what = f"real, one per element of {dump_set(self.index_set)}" + (" or one for all" if self.inferred else "")
        else:
            what = "one real number"
        span = self.node.span if self.node is not None else None
        how = "inferred from its use" + (f" on line {span.line}" if span is not None else "") if self.inferred else "declared"
        return f"{decl} ({what}; {how})"


@dataclass
class _Scope:
    """The names a program's steps have defined so far."""

    program: str
    defined: dict[str, ast.Node] = field(default_factory=dict)
    # Marginalized latents, by name, while their block is being walked.
    latents: dict[str, ast.Marginalize] = field(default_factory=dict)
    # Latents whose block has ended: reading one is a specific mistake.
    closed: dict[str, ast.Marginalize] = field(default_factory=dict)
    later: dict[str, ast.Node] = field(default_factory=dict)
    blocks: list[ast.Marginalize] = field(default_factory=list)
    # The step being checked, and the uses of names no step defines (data).
    current: ast.Step | None = None
    free: dict[str, list[_Use]] = field(default_factory=dict)
    # The axis a vector literal `[a, b]` runs along in the family being checked.
    vector_axis: ast.SetName | None = None
    # The binders of the `factor v : V in ...` being checked, with their sets.
    binders: dict[str, ast.SetExpr] = field(default_factory=dict)

    def visible(self) -> list[str]:
        return list(self.defined) + list(self.latents)


class _Checker:
    def __init__(self, source: str | None) -> None:
        self.source = source
        self.objects: dict[str, ast.ObjectDecl | ast.EnumObject | ast.RealObject | ast.ObjectDef] = {}
        self.all_objects: dict[str, ast.ObjectDecl | ast.EnumObject | ast.RealObject | ast.ObjectDef] = {}
        self.programs: dict[str, ast.ProgramDecl | ast.CompositeDecl] = {}
        self.grammar: dict[str, ast.ResiduatedObject | ast.SchemaDecl | ast.BundleDecl] = {}
        # The objects and the signatures (dom, cod) of the programs checked so far.
        self.finsets: dict[str, FinSet] = {}
        self.signatures: dict[str, tuple[FinSet, FinSet]] = {}
        self.effects: dict[str, frozenset[Effect] | None] = {}
        self.data: dict[str, dict[str, DataRole]] = {}
        self.algebra: Algebra = DEFAULT
        self.supports: dict[str, dict[str, ast.SetExpr]] = {}
        self.computations: dict = {}  # name -> Signature (dsl/computations.py)

    # ------------------------------------------------------------ errors

    def _error(self, cls: type[QuiversError], message: str, node: ast.Node | Span | None, **kw) -> QuiversError:
        span = node if isinstance(node, Span) or node is None else node.span
        return cls(message, span=span, source=self.source, **kw)

    def _unknown(self, message: str, name: str, candidates: Iterable[str], node: ast.Node) -> QuiversError:
        return self._error(UnknownNameError, message, node, name=name, candidates=sorted(candidates))

    def _line(self, span: Span | None) -> str:
        return f" on line {span.line}" if span is not None else ""

    def _text(self, start: Span | None, end: Span | None) -> str | None:
        """The source from the start of ``start`` to the end of ``end``."""
        if self.source is None or start is None or end is None or start.line != end.line:
            return None
        lines = self.source.splitlines()
        if start.line > len(lines):
            return None
        return lines[start.line - 1][start.column - 1 : end.end_column - 1]

    # ------------------------------------------------------------ module

    def module(self, module: ast.Module) -> CheckedModule:
        declared: dict[str, ast.Node] = {}
        morphisms: set[str] = set()
        kernel_programs_ = kernel_programs(module)
        for d in module.items:
            if isinstance(d, (ast.ObjectDecl, ast.EnumObject, ast.RealObject, ast.ObjectDef, ast.ProgramDecl,
                              ast.CompositeDecl, ast.DeductionDecl, ast.MorphismDecl, ast.DefineDecl,
                              ast.ContractionDecl, ast.ResiduatedObject, ast.SchemaDecl, ast.BundleDecl,
                              ast.ComputationDecl)):
                names = d.names if isinstance(d, ast.MorphismDecl) else (d.name,)
                for name in names:
                    previous = declared.get(name)
                    if previous is not None:
                        raise self._error(
                            QuiversTypeError,
                            f"`{name}` is declared twice; it is already declared" + self._line(previous.span),
                            d,
                            hint="objects, programs and morphisms share one namespace"
                            if isinstance(d, (ast.MorphismDecl, ast.DefineDecl))
                            or isinstance(previous, (ast.MorphismDecl, ast.DefineDecl))
                            else "objects and programs share one namespace",
                        )
                    declared[name] = d
                if isinstance(d, (ast.MorphismDecl, ast.DefineDecl)):
                    morphisms.update(names)
        self.all_objects = {
            n: d for n, d in declared.items()
            if isinstance(d, (ast.ObjectDecl, ast.EnumObject, ast.RealObject, ast.ObjectDef))
        }
        self.programs = {
            n: d for n, d in declared.items() if isinstance(d, (ast.ProgramDecl, ast.CompositeDecl))
        }
        self.grammar = {
            n: d for n, d in declared.items() if isinstance(d, (ast.ResiduatedObject, ast.SchemaDecl, ast.BundleDecl))
        }
        exports: list[ast.Export] = []
        self.computations = check_computations(module, self.source)
        self._composition([d for d in module.items if isinstance(d, ast.CompositionDecl)])
        # Objects are declared before use, so they are checked in order;
        # an export may name a program declared anywhere.
        for d in module.items:
            if isinstance(d, ast.CompositionDecl):
                continue
            if isinstance(d, (ast.ObjectDecl, ast.EnumObject)):
                self.objects[d.name] = d
                self.finsets[d.name] = FinSet(d.name, d.size)
            elif isinstance(d, (ast.ResiduatedObject, ast.SchemaDecl, ast.BundleDecl)):
                pass  # checked where they compile, in dsl/schemas.py
            elif isinstance(d, ast.RealObject):
                self.objects[d.name] = d
                self.finsets[d.name] = FinSet(d.name, d.dim)  # its coordinates, an axis of d.dim reals
            elif isinstance(d, ast.ObjectDef):
                self._set(d.value, d, whole=True)
                self.objects[d.name] = d
                self.finsets[d.name] = self._finset(d.value)
            elif isinstance(d, ast.ProgramDecl) and d.name in kernel_programs_:
                # a program that draws from morphisms is checked where it compiles, in dsl/morphisms.py
                self._set(d.dom, d, whole=True)
                self._set(d.cod, d, whole=True)
                self.signatures[d.name] = (self._finset(d.dom), self._finset(d.cod))
            elif isinstance(d, ast.ProgramDecl):
                self._program(d)
                if not any(q.type == "FinSet" for q in d.params):
                    self.signatures[d.name] = (self._finset(d.dom), self._finset(d.cod))
            elif isinstance(d, ast.CompositeDecl):
                opts = self._options(d.options, "program")
                for key in ("marginalize", "budget"):
                    if key in opts:
                        raise self._error(
                            QuiversTypeError, f"option `{key}` applies to a program with steps, not to `{d.name}`",
                            opts[key], hint="give it to the programs it composes",
                        )
                self.effects[d.name] = self._effects(opts["effects"].value) if "effects" in opts else None
                self.signatures[d.name] = self._composite(d.value, d)
            elif isinstance(d, ast.MorphismDecl):
                # roles, options and the algebra of `define` are checked where they compile, in dsl/morphisms.py
                self._set(d.dom, d, whole=True)
                self._set(d.cod, d, whole=True)
            elif isinstance(d, (ast.DefineDecl, ast.ComputationDecl)):
                pass  # a computation is checked by check_computations, above
            elif isinstance(d, ast.ContractionDecl):
                # its rule and its applications are checked where they compile, in dsl/morphisms.py
                for side in (d.dom, d.cod, *(s for p in d.params for s in (p.dom, p.cod))):
                    self._set(side, d, whole=True)
            elif isinstance(d, ast.DeductionDecl):
                # the rules and lexicon are checked where they compile, in dsl/deductions.py
                self._set(d.dom, d, whole=True)
                self._set(d.cod, d, whole=True)
            else:
                exports.append(d)
        deductions = [n for n, d in declared.items() if isinstance(d, ast.DeductionDecl)]
        for d in exports:
            if d.name not in self.programs and d.name not in morphisms and d.name not in deductions:
                kind = "an object" if d.name in self.all_objects else "not declared"
                raise self._unknown(
                    f"cannot export `{d.name}`: it is {kind}; `export` takes a program, a morphism or a "
                    "deduction; programs: " + (", ".join(self.programs) or "none")
                    + (f"; morphisms: {', '.join(sorted(morphisms))}" if morphisms else "")
                    + (f"; deductions: {', '.join(deductions)}" if deductions else ""),
                    d.name, [*self.programs, *morphisms, *deductions], d,
                )
        seen: dict[str, ast.Export] = {}
        for d in exports:
            if d.name in seen:
                raise self._error(
                    QuiversTypeError, f"`{d.name}` is already exported" + self._line(seen[d.name].span), d
                )
            seen[d.name] = d
            target = self.programs.get(d.name)
            if isinstance(target, ast.ProgramDecl) and any(q.type == "FinSet" for q in target.params):
                raise self._error(
                    QuiversTypeError,
                    f"cannot export `{d.name}`: it has set parameters, so it is a family other programs use "
                    f"(`sample v <- {d.name}(...)`), not a program on its own",
                    d,
                )
        return CheckedModule(
            dict(self.objects), dict(self.programs), exports[0].name if exports else None,
            tuple(d.name for d in exports), dict(self.effects), dict(self.data), self.algebra,
            {p: dict(s) for p, s in self.supports.items()},
        )

    def _composition(self, decls: list[ast.CompositionDecl]) -> None:
        """The module's algebra: one ``composition`` naming one of :data:`ALGEBRAS`."""
        if len(decls) > 1:
            raise self._error(
                QuiversTypeError,
                f"a module has one algebra; it is already `{decls[0].name}`" + self._line(decls[0].span), decls[1],
            )
        for d in decls:
            if d.name not in ALGEBRAS:
                raise self._unknown(
                    f"unknown algebra `{d.name}` in `composition {d.name}`; algebras: "
                    + ", ".join(a for a in ALGEBRAS if a.islower()),
                    d.name, [a for a in ALGEBRAS if a.islower()], d,
                )
            opts = self._options(d.options, "composition")
            if "level" in opts:
                level = self._option_name(opts["level"], "level", "`algebra`")
                if level.name not in LEVELS:
                    raise self._error(
                        QuiversTypeError,
                        f"`{d.name}` is an algebra (a semiring), so `composition {d.name}` has level `algebra`, "
                        f"not `{level.name}`",
                        level,
                        hint="quivers's algebras are semirings; user-defined composition rules are not supported",
                    )
            self.algebra = ALGEBRAS[d.name]

    # ------------------------------------------------------------ finite sets

    def _set(self, s: ast.SetExpr, statement: ast.Node, whole: bool = False) -> None:
        """Every object in ``s`` is declared before ``statement``; messages
        quote ``statement`` up to the unknown name (all of it with ``whole``)."""
        if isinstance(s, (ast.SetProduct, ast.SetSum)):
            self._set(s.left, statement, whole)
            self._set(s.right, statement, whole)
            return
        if isinstance(s, ast.SetUnit) or s.name in self.objects:
            return
        where = self._text(statement.span, statement.span if whole else s.span)
        inside = f" in `{where}`" if where else ""
        if s.name in self.all_objects:
            message = f"object `{s.name}` is used before it is declared{inside}"
        elif s.name in self.programs:
            message = f"`{s.name}`{inside} is a program, not an object"
        elif s.name in self.grammar:
            kind = {ast.ResiduatedObject: "a universe of categories, which schemas range over",
                    ast.SchemaDecl: "a schema", ast.BundleDecl: "a bundle of schemas"}[type(self.grammar[s.name])]
            message = f"`{s.name}`{inside} is {kind}, not a finite set"
        else:
            message = f"unknown object `{s.name}`{inside}"
        message += "; objects in scope: " + (", ".join(self.objects) or "none")
        raise self._unknown(message, s.name, self.objects, s)

    def _finite(self, s: ast.SetExpr | None, node: ast.Node, role: str) -> None:
        """``s`` names no continuous object (``object X : Real n``): ``role``
        (a latent's values, a grouping, an index map's codomain, a program's
        input) needs a finite set."""
        if s is None:
            return
        if isinstance(s, (ast.SetProduct, ast.SetSum)):
            self._finite(s.left, node, role)
            self._finite(s.right, node, role)
        elif isinstance(s, ast.SetName) and isinstance(self.objects.get(s.name), ast.RealObject):
            raise self._error(
                QuiversTypeError,
                f"`{s.name}` is a continuous object (Real {self.objects[s.name].dim}); {role} needs a finite set",
                s if s.span is not None else node,
                hint="declare a FinSet, e.g. `object K : FinSet 3`",
            )

    def _finset(self, s: ast.SetExpr) -> FinSet:
        """The finite set a checked set expression denotes."""
        if isinstance(s, ast.SetProduct):
            return self._finset(s.left) * self._finset(s.right)
        if isinstance(s, ast.SetSum):
            return self._finset(s.left) + self._finset(s.right)
        if isinstance(s, ast.SetUnit):
            return FinSet.unit()
        return self.finsets[s.name]

    # ------------------------------------------------------------ composites

    def _composite(self, e: ast.ProgramExpr, d: ast.CompositeDecl) -> tuple[FinSet, FinSet]:
        """The signature ``(dom, cod)`` of a composite program expression."""
        if isinstance(e, ast.ProgramIdentity):
            self._set(e.obj, d)
            obj = self._finset(e.obj)
            return obj, obj
        if isinstance(e, ast.ProgramRef):
            if e.name in self.signatures:
                return self.signatures[e.name]
            if e.name in self.programs:
                message = f"program `{e.name}` is used before it is declared" + self._line(self.programs[e.name].span)
            elif e.name in self.all_objects:
                message = f"`{e.name}` is an object, not a program; use `identity({e.name})` for its identity"
            else:
                message = f"unknown program `{e.name}` in `{d.name}`"
            known = [n for n in self.signatures]
            raise self._unknown(message + "; programs: " + (", ".join(known) or "none"), e.name, known, e)
        left, right = self._composite(e.left, d), self._composite(e.right, d)
        if isinstance(e, ast.ProgramTensor):
            return left[0] * right[0], left[1] * right[1]
        return left[0], right[1]  # the domains must agree: composition (the IR) checks it

    # ------------------------------------------------------------ programs

    def _program(self, p: ast.ProgramDecl) -> None:
        # a set parameter stands for any object while the body is checked
        sets = [q.name for q in p.params if q.type == "FinSet"]
        seen: set[str] = set()
        for q in p.params:
            if q.name in seen:
                raise self._error(QuiversTypeError, f"parameter `{q.name}` of program `{p.name}` is declared twice", q)
            seen.add(q.name)
            if q.name in self.all_objects or q.name in self.programs:
                raise self._error(
                    QuiversTypeError, f"parameter `{q.name}` of program `{p.name}` is also the name of an "
                    f"{'object' if q.name in self.all_objects else 'program'}", q,
                )
        for name in sets:
            self.objects[name] = ast.ObjectDecl(name, 1)
            self.finsets[name] = FinSet(name, 1)
        try:
            self._program_body(p)
        finally:
            for name in sets:
                del self.objects[name], self.finsets[name]

    def _program_body(self, p: ast.ProgramDecl) -> None:
        self._set(p.dom, p)
        self._set(p.cod, p)
        opts = self._options(p.options, "program")
        self.effects[p.name] = self._effects(opts["effects"].value) if "effects" in opts else None
        self._planning(opts, p)
        scope = _Scope(p.name)
        for q in p.params:
            if q.type == "Real":
                self._fresh(q.name, q, scope)
                scope.defined[q.name] = ast.Data(q.name, span=q.span)
        if p.input is not None:
            self._finite(p.dom, p, f"the input `{p.input}` of program `{p.name}`")
            self._fresh(p.input, p, scope)
            scope.defined[p.input] = p
        for later in _walk(p.body):
            name = _defines(later)
            if name is not None:
                scope.later.setdefault(name, later)
        for i, step in enumerate(p.body):
            if isinstance(step, ast.Return) and i != len(p.body) - 1:
                raise self._error(
                    QuiversTypeError, f"`return` must be the last step of program `{p.name}`", step
                )
            self._step(step, scope, p)
        self.data[p.name] = self._data_roles(p, scope)

    # ------------------------------------------------------------ data

    def _data_roles(self, p: ast.ProgramDecl, scope: _Scope) -> dict[str, DataRole]:
        """Every data name of ``p``: those its ``data`` steps declare, and
        those it reads but never defines, with the role their use implies.

        A name in ``via=`` is an index map from the observation's plate into
        the block's ``over`` set; a name used as a subscript of a value on
        ``G`` is an index map into ``G`` from the plate of the step that
        reads it; any other is real numbers on that plate (through a ``let``,
        the plate of the steps that read the let), or one number when some
        step without a plate reads it.
        """
        roles: dict[str, DataRole] = {}
        for q in p.params:
            if q.type == "Real":  # a number given at run time (or the argument of a use as a family)
                roles[q.name] = DataRole(q.name, "real", None, None, False, q)
        for step in _walk(p.body):
            if isinstance(step, ast.Data):
                kind = "index" if step.cod is not None else "real"
                roles[step.name] = DataRole(step.name, kind, step.index_set, step.cod, False, step)
        for name, uses in scope.free.items():
            roles[name] = self._infer(name, uses, p, scope)
        return roles

    def _infer(self, name: str, uses: list[_Use], p: ast.ProgramDecl, scope: _Scope) -> DataRole:
        first = uses[0].node

        def ambiguous(why: str, node: ast.Node) -> QuiversError:
            return self._error(
                QuiversTypeError,
                f"cannot infer the role of data `{name}` (a name program `{p.name}` reads but never defines): {why}",
                node,
                hint=f"declare it at the top of the program: `data {name} : I` (real numbers on I), "
                f"`data {name}` (one number) or `data {name} : A -> B` (an index map)",
            )

        shapes = {u.shape for u in uses if u.shape is not None}
        if shapes:
            if len(shapes) > 1 or len(shapes) != len({u.shape for u in uses}):
                raise ambiguous("it is given to computations as values of different types", first)
            return DataRole(name, "real", None, None, True, first, shape=next(iter(shapes)))
        maps: list[tuple[ast.Node, ast.SetExpr | None, ast.SetExpr]] = []
        reals: list[tuple[ast.Node, ast.SetExpr | None]] = []
        for u in uses:
            plates = self._plates(u.step, p, set())
            if u.via is not None:
                maps.append((u.node, plate_of(u.step), u.into))
                continue
            if u.subscript is not None:
                base, k, n = u.subscript
                cod = self._subscript_set(base, k, n, scope)
                if cod is None:
                    raise ambiguous(f"it indexes `{dump_expr(base)}`, whose set is not known here", u.node)
                if len(plates) != 1 or None in plates:
                    raise ambiguous("the step that reads it has no single plate", u.node)
                maps.append((u.node, next(iter(plates)), cod))
                continue
            for plate in plates:
                reals.append((u.node, plate))
        if maps and reals:
            raise ambiguous("it is used both as an index and as a number", reals[0][0])
        if maps:
            node, dom, cod = maps[0]
            for other, d, c in maps[1:]:
                if (d, c) != (dom, cod):
                    raise ambiguous(
                        f"it maps {_set_text(dom)} -> {dump_set(cod)} here and {_set_text(d)} -> {dump_set(c)}"
                        + self._line(other.span), node,
                    )
            if dom is None:
                raise ambiguous("the observation it groups has no plate", node)
            return DataRole(name, "index", dom, cod, True, first)
        plates = {plate for _, plate in reals}
        if None in plates or not plates:
            return DataRole(name, "real", None, None, True, first)
        if len(plates) > 1:
            listing = " and ".join(sorted(dump_set(x) for x in plates))
            raise ambiguous(f"steps on {listing} read it", first)
        return DataRole(name, "real", next(iter(plates)), None, True, first)

    def _plates(self, step: ast.Step | None, p: ast.ProgramDecl, seen: set[str]) -> set[ast.SetExpr | None]:
        """The plates a value read by ``step`` lives on: a sample's or an
        observation's index set, a grouped block's ``over`` set, the plates
        of the readers of a let; None for a step without a plate."""
        if isinstance(step, (ast.Sample, ast.Observe)):
            return {site_set(step)}
        if isinstance(step, ast.Marginalize):
            if grouping(step) is None:  # one latent per row of the body's observations
                rows = {site_set(t) for t in _walk(step.body) if isinstance(t, ast.Observe)}
                return rows or {None}
            return {grouping(step)}
        if isinstance(step, ast.Let) and step.name not in seen:
            seen.add(step.name)
            out: set[ast.SetExpr | None] = set()
            for t in _walk(p.body):
                # returning a value says nothing of the plate it lives on
                if step.name in _step_reads(t) and not isinstance(t, ast.Return):
                    out |= self._plates(t, p, seen)
            return out or {None}
        return {None}

    def _value_set(self, name: str, scope: _Scope, seen: set[str]) -> ast.SetExpr | None:
        """The plate of the value ``name``: a site's index set; for a let,
        the one plate among the values it reads (None when unknown)."""
        src = scope.defined.get(name)
        if isinstance(src, (ast.Sample, ast.Observe)):
            return site_set(src)
        if isinstance(src, ast.Data) and src.cod is None:
            return src.index_set
        if isinstance(src, ast.Let) and isinstance(src.value, ast.Tabulate):
            return _binder_set(src.value)
        if isinstance(src, ast.Let) and name not in seen:
            seen.add(name)
            plates = {self._value_set(n, scope, seen) for n in _expr_names(src.value)} - {None}
            return next(iter(plates)) if len(plates) == 1 else None
        return None

    def _subscript_set(self, base: ast.Expr, k: int, n: int, scope: _Scope) -> ast.SetExpr | None:
        """The set the ``k``-th of ``n`` subscripts of ``base`` ranges over,
        when ``base`` names a value declared on a plate."""
        if not isinstance(base, ast.Name):
            return None
        plate = self._value_set(base.id, scope, set())
        if plate is None:
            return None
        factors = _factors(plate)
        if n == 1:
            return plate if len(factors) != 1 else factors[0]
        return factors[k] if len(factors) == n else None

    def _effects(self, value: ast.OptionValue) -> frozenset[Effect]:
        known = [e.name for e in Effect]
        if not isinstance(value, ast.OptionList) or not all(
            isinstance(v, ast.OptionName) for v in value.items
        ):
            raise self._error(
                QuiversTypeError,
                "option `effects` takes a list of effect names, e.g. `effects=[Sample, Score]`",
                value,
            )
        out = set()
        for v in value.items:
            if v.name not in known:
                raise self._unknown(
                    f"unknown effect `{v.name}`; effects are {', '.join(known)}", v.name, known, v
                )
            out.add(Effect[v.name])
        return frozenset(out)

    def _options(self, options: tuple[ast.Option, ...], construct: str) -> dict[str, ast.Option]:
        known = OPTIONS[construct]
        seen: dict[str, ast.Option] = {}
        for o in options:
            if o.key not in known:
                listing = (
                    f"known options: {', '.join(known)}" if known else f"`{construct}` takes no options"
                )
                raise self._unknown(
                    f"unknown option `{o.key}` for `{construct}`; {listing}", o.key, known, o
                )
            if o.key in seen:
                raise self._error(QuiversTypeError, f"option `{o.key}` is given twice", o)
            seen[o.key] = o
        return seen

    # ------------------------------------------------------------ steps

    def _step(self, step: ast.Step, scope: _Scope, p: ast.ProgramDecl) -> None:
        scope.current = step
        if isinstance(step, (ast.Sample, ast.Observe, ast.Factor, ast.Marginalize, ast.Markov)):
            self._weighted(step)
        if isinstance(step, (ast.Sample, ast.Observe)):
            if step.index_set is not None:
                self._set(step.index_set, step)
            on = site_set(step)
            self._family(step.family, scope, _factors(on)[-1] if on is not None else None)
            construct = "sample" if isinstance(step, ast.Sample) else "observe"
            opts = self._options(step.options, construct)
            self._axes(step, opts)
            if "via" in opts:
                self._via(opts["via"].value, step, scope)
            if "constraint" in opts:  # its value is checked where the latent is built (steps.sample)
                self._option_name(opts["constraint"], "constraint", "the name of a constraint, e.g. `constraint=ordered`")
            if "enumerate" in opts:
                flag = self._option_name(opts["enumerate"], "enumerate", "`true` or `false`").name
                if flag not in ("true", "false"):
                    raise self._unknown(
                        f"option `enumerate` takes `true` or `false`, not `{flag}`", flag, ("true", "false"),
                        opts["enumerate"].value,
                    )
        elif isinstance(step, ast.Markov):
            self._markov(step, scope, p)
            return
        elif isinstance(step, ast.Marginalize):
            if step.support is not None:
                self._set(step.support, step)
                self._finite(step.support, step, f"the values of the marginalized `{step.name}`")
            if step.prior.name == "Markov":
                raise self._error(
                    QuiversTypeError,
                    f"marginalize `{step.name}` has a Markov prior, but its latent is not a path",
                    step.prior,
                    hint=f"a chain's latent has one state per step: `marginalize {step.name} : T -> "
                    f"{_set_text(step.support) if step.support is not None else 'K'} <- Markov(...)`",
                )
            self._family(step.prior, scope, step.support)
            opts = self._options(step.options, "marginalize")
            self._reduction(opts.get("reduction"), step)
            if step.support is None:
                self.supports.setdefault(p.name, {})[step.name] = self._support(step, scope)
            if "over" in opts:
                over = opts["over"].value
                if not isinstance(over, (ast.OptionName, ast.OptionProduct)):
                    raise self._error(
                        QuiversTypeError,
                        "option `over` takes an object, e.g. `over=G`, or a product of them, `over=G * H`", over,
                    )
                names = axis_names(over)
                if len(set(names)) != len(names):
                    raise self._error(
                        QuiversTypeError, f"`over={' * '.join(names)}` repeats a factor; group over distinct sets", over
                    )
                for n in names:
                    self._set(ast.SetName(n, span=over.span), opts["over"])
                    self._finite(ast.SetName(n, span=over.span), opts["over"], "a grouping (`over=`)")
            self._block(step, scope, p)
            return
        elif isinstance(step, ast.Let):
            self._expr(step.value, scope)
        elif isinstance(step, ast.Perform):
            self._perform(step, scope)
        elif isinstance(step, (ast.Factor, ast.Return)):
            self._expr(step.value, scope)
        elif isinstance(step, ast.IndexMap):
            self._set(step.dom, step)
            self._set(step.cod, step)
            self._finite(step.cod, step, f"the codomain of index map `{step.name}`")
        elif isinstance(step, ast.Data):
            if scope.blocks:
                raise self._error(
                    QuiversTypeError,
                    f"`data {step.name}` is inside the block of `{scope.blocks[-1].name}`; data is declared "
                    "at the top level of a program",
                    step,
                )
            for s in (step.index_set, step.cod):
                if s is not None:
                    self._set(s, step)
            self._finite(step.cod, step, f"the codomain of index map `{step.name}`")
        name = _defines(step)
        if name is not None:
            self._define(name, step, scope)

    def _perform(self, step: ast.Perform, scope: _Scope) -> None:
        """``let x <- f(args)`` in a program: ``f`` is a computation, called
        with as many arguments as it has parameters; a data name given as an
        argument takes the type of its parameter (a tensor of that shape)."""
        e = step.value
        if isinstance(e, ast.Call) and e.func == "traverse":
            raise self._error(
                QuiversTypeError,
                f"`traverse` runs inside a computation, not in program `{scope.program}`",
                e, hint="put it in a `define` (`let xs <- traverse(...)`, then `return xs`) and run that here",
            )
        if not (isinstance(e, ast.Call) and e.func in self.computations):
            what = f"`{e.func}` is not a computation" if isinstance(e, ast.Call) else f"`{dump_expr(e)}` is a value"
            raise self._error(
                UnknownNameError if isinstance(e, ast.Call) else QuiversTypeError,
                f"`let {step.name} <- ...` runs a computation (a `define` with parameters); {what}"
                + (f"; computations: {', '.join(self.computations)}" if self.computations else "; none is declared"),
                e, **({"name": e.func, "candidates": sorted(self.computations)} if isinstance(e, ast.Call) else {}),
                hint="bind a value with `let x = ...`, draw with `sample x <- Family(...)`",
            )
        sig = self.computations[e.func]
        if e.kwargs or len(e.args) != len(sig.params):
            raise self._error(
                QuiversTypeError,
                f"computation `{e.func}` takes {len(sig.params)} argument(s) "
                f"({', '.join(n for n, _ in sig.params)}), got {len(e.args) + len(e.kwargs)}",
                e,
            )
        for (_, want), a in zip(sig.params, e.args):
            if isinstance(a, ast.Name):
                self._name(a.id, a, scope, _Use(a, step, shape=want.shape))
            else:
                self._expr(a, scope)

    def _markov(self, step: ast.Markov, scope: _Scope, p: ast.ProgramDecl) -> None:
        self._set(step.index_set, step)
        self._set(step.support, step)
        self._finite(step.support, step, f"the states of the chain `{step.name}`")
        self._markov_prior(step, scope)
        opts = self._options(step.options, "markov")
        self._reduction(opts.get("reduction"), step)
        if "until" in opts:
            value = self._option_name(opts["until"], "until", "the name of an index map, e.g. `until=last`")
            self._name(value.name, value, scope, strict=True)
        self._block(step, scope, p)

    # ------------------------------------------------------------ axes and algebras

    def _axes(self, step: ast.Sample | ast.Observe, opts: dict[str, ast.Option]) -> None:
        """``over`` names the family's event axes, as many as its event rank;
        ``iid_over`` the plate of independent draws, the index set when both
        are written."""
        kind = "sample" if isinstance(step, ast.Sample) else "observe"
        for key in AXIS_OPTIONS:
            if key not in opts:
                continue
            value = opts[key].value
            names = axis_names(value)
            if not names or isinstance(value, ast.OptionNumber) or (
                    isinstance(value, ast.OptionList) and not all(isinstance(v, ast.OptionName) for v in value.items)):
                raise self._error(
                    QuiversTypeError, f"option `{key}` takes objects: `{key}=K`, `{key}=[A, B]` or `{key}=A * B`", value
                )
            for n in names:
                self._set(ast.SetName(n, span=value.span), opts[key])
        spec = FAMILIES[canonical_family(step.family).name]
        over = axis_names(opts["over"].value) if "over" in opts else ()
        if "over" in opts and len(over) != spec.event_rank:
            if spec.event_rank == 0:
                message = (f"`{step.family.name}` draws one number at a time (it has no event axis), so "
                           f"`over={', '.join(over)}` has no meaning on `{kind} {step.name}`")
                hint = f"put the axis in the plate: `{kind} {step.name} : ... * {over[-1]} <- ...`"
            else:
                message = (f"`{step.family.name}` has {spec.event_rank} event "
                           f"axis{'es' if spec.event_rank > 1 else ''}, but `over=` names {len(over)}")
                hint = "name one object per event axis, e.g. `over=K` for a vector, `over=[K, K]` for a matrix"
            raise self._error(QuiversTypeError, message, opts["over"].value, hint=hint)
        if "iid_over" in opts and step.index_set is not None:
            iid = plate_of(ast.Sample(step.name, None, step.family, step.options))
            if iid != step.index_set:
                raise self._error(
                    QuiversTypeError,
                    f"`{kind} {step.name} : {dump_set(step.index_set)}` draws independently over "
                    f"`{dump_set(step.index_set)}`, but `iid_over=` says `{dump_set(iid)}`",
                    opts["iid_over"].value,
                    hint="the index set and iid_over name the same plate; write one of them",
                )
        rows = plate_of(step)
        twice = sorted(set(over) & {f.name for f in _factors(rows) if isinstance(f, ast.SetName)}) if rows else []
        if twice:
            raise self._error(
                QuiversTypeError,
                f"`{twice[0]}` is both a plate and an event axis of `{kind} {step.name}`",
                opts["over"].value,
                hint="the plate holds independent draws and `over` the axes of one draw; an axis is one or the other",
            )

    def _reduction(self, option: ast.Option | None, step: ast.Marginalize | ast.Markov) -> None:
        """A block's ``reduction=`` is a sum of the module's algebra."""
        algebra = self.algebra
        if option is None:
            return
        value = self._option_name(option, "reduction", "the name of a reduction, e.g. `reduction=logsumexp`")
        if value.name not in algebra.reductions:
            known = ", ".join(algebra.reductions) or "none"
            why = {
                ("log_prob", "sum"): "adding log weights multiplies the probabilities; logsumexp adds them",
                ("probability", "logsumexp"): "the weights are probabilities here, so their sum is `sum`",
            }.get((algebra.name, value.name))
            raise self._error(
                QuiversTypeError,
                f"`reduction={value.name}` has no meaning in the module's algebra `{algebra.name}` "
                f"({algebra.what}); its reductions are {known}" + (f": {why}" if why else ""),
                value,
                hint="change the reduction, or the algebra with `composition NAME [level=algebra]`",
            )

    def _weighted(self, step: ast.Step) -> None:
        """A step that multiplies a density into the program's weight has no
        meaning in an algebra whose product is not that of probabilities."""
        if self.algebra.scores:
            return
        raise self._error(
            QuiversTypeError,
            f"`{_describe(step)}` multiplies a probability density into the program's weight, which has no "
            f"meaning in the module's algebra `{self.algebra.name}` ({self.algebra.what}: its product is not "
            "the product of probabilities)",
            step,
            hint="use `composition log_prob [level=algebra]` (or probability, max_plus, viterbi, tropical, boolean) "
            "for a probabilistic program",
        )

    def _support(self, step: ast.Marginalize, scope: _Scope) -> ast.SetExpr:
        """The set a latent written without ``: K`` ranges over: the last axis
        (the category axis) of the weights of its Categorical."""
        f = step.prior
        weights = f.args[0] if f.args else next((k.value for k in f.kwargs), None)
        base = weights.base if isinstance(weights, ast.Subscript) else weights
        plate_ = self._value_set(base.id, scope, set()) if isinstance(base, ast.Name) else None
        if plate_ is None:
            shown = f"`{dump_expr(weights)}`" if weights is not None else "no weights"
            raise self._error(
                QuiversTypeError,
                f"cannot tell which set `{step.name}` ranges over from {shown}: write it, "
                f"`marginalize {step.name} : K <- {f.name}(...)`",
                step,
                hint="without `: K`, the weights must be a value declared on a plate whose last factor is K",
            )
        support = _factors(plate_)[-1]
        self._finite(support, step, f"the values of the marginalized `{step.name}`")
        return support

    def _planning(self, opts: dict[str, ast.Option], p: ast.ProgramDecl) -> None:
        """``marginalize=auto`` (sum discrete sample sites by a plan, see
        :mod:`quivers.planning`) or ``explicit`` (only ``marginalize``
        blocks), and ``budget``, a positive number of bytes, with ``auto``."""
        mode = None
        if "marginalize" in opts:
            mode = self._option_name(opts["marginalize"], "marginalize", "`auto` or `explicit`").name
            if mode not in ("auto", "explicit"):
                raise self._unknown(
                    f"option `marginalize` takes `auto` or `explicit`, not `{mode}`", mode, ("auto", "explicit"),
                    opts["marginalize"].value,
                )
        if "budget" in opts:
            value = opts["budget"].value
            if not isinstance(value, ast.OptionNumber) or value.value != int(value.value) or value.value <= 0:
                raise self._error(
                    QuiversTypeError, "option `budget` takes a positive whole number of bytes, e.g. `budget=1000000`",
                    value,
                )
            if mode != "auto":
                raise self._error(
                    QuiversTypeError, f"option `budget` of program `{p.name}` bounds a plan, which it has only "
                    "with `marginalize=auto`", opts["budget"], hint="add `marginalize=auto`",
                )

    def _option_name(self, option: ast.Option, key: str, takes: str) -> ast.OptionName:
        """The name an option ``key=name`` gives, or an error saying what it takes."""
        if not isinstance(option.value, ast.OptionName):
            raise self._error(QuiversTypeError, f"option `{key}` takes {takes}", option.value)
        return option.value

    def _block(self, step: ast.Marginalize | ast.Markov, scope: _Scope, p: ast.ProgramDecl) -> None:
        """Check the body of a marginalize or markov block: its latent is in
        scope inside it only, and a ``return`` may not stand there."""
        self._fresh(step.name, step, scope)
        scope.latents[step.name] = step
        scope.blocks.append(step)
        for inner in step.body:
            self._step(inner, scope, p)
        scope.blocks.pop()
        del scope.latents[step.name]
        scope.closed[step.name] = step

    def _markov_prior(self, step: ast.Markov, scope: _Scope) -> None:
        f = step.prior
        head = f"marginalize {step.name} : {dump_set(step.index_set)} -> {dump_set(step.support)}"
        if f.name != "Markov":
            raise self._error(
                QuiversTypeError,
                f"`{head}` is a latent path and needs a Markov prior, got `{f.name}`",
                f,
                hint="write `Markov(init=pi, trans=A)`, with A on `K * K`",
            )
        if f.args:
            raise self._error(
                QuiversTypeError, "`Markov` takes keyword arguments only: `Markov(init=pi, trans=A)`", f.args[0]
            )
        seen: dict[str, ast.Keyword] = {}
        for k in f.kwargs:
            if k.name not in MARKOV_KEYWORDS:
                raise self._unknown(
                    f"`Markov` has no parameter `{k.name}`; its parameters are " + ", ".join(MARKOV_KEYWORDS),
                    k.name, MARKOV_KEYWORDS, k,
                )
            if k.name in seen:
                raise self._error(QuiversTypeError, f"`Markov` is given `{k.name}` twice", k)
            seen[k.name] = k
            self._expr(k.value, scope)
        for law, what in (("trans", "transition"), ("init", "initial law"), ("first", "first step")):
            both = [k for k in (law, law + "_logits") if k in seen]
            if len(both) > 1:
                raise self._error(
                    QuiversTypeError, f"`Markov` is given its {what} twice, as `{both[0]}` and `{both[1]}`",
                    seen[both[1]],
                )
        if "trans" not in seen and "trans_logits" not in seen:
            raise self._error(
                QuiversTypeError,
                f"`Markov` needs its transition: `trans=A` (weights on `{dump_set(step.support)} * "
                f"{dump_set(step.support)}`) or `trans_logits=...`",
                f,
            )

    def _define(self, name: str, step: ast.Step, scope: _Scope) -> None:
        self._fresh(name, step, scope)
        scope.defined[name] = step

    def _fresh(self, name: str, step: ast.Step, scope: _Scope) -> None:
        if name in self.all_objects:
            # Objects name the axes of values; a value of the same name
            # would make `K` mean two things in one expression.
            raise self._error(
                QuiversTypeError,
                f"`{name}` names an object" + self._line(self.all_objects[name].span)
                + f", so `{_describe(step)}` cannot use it as a value name",
                step,
                hint=f"rename the value, e.g. `{name.lower()}_`",
            )
        previous = scope.defined.get(name) or scope.latents.get(name) or scope.closed.get(name)
        if previous is not None:
            raise self._error(
                QuiversTypeError,
                f"`{name}` is defined twice in program `{scope.program}`; "
                f"it is already defined by `{_describe(previous)}`" + self._line(previous.span),
                step,
            )

    def _via(self, value: ast.OptionValue, step: ast.Observe, scope: _Scope) -> None:
        names = value.items if isinstance(value, ast.OptionList) else (value,)
        if not names or not all(isinstance(v, ast.OptionName) for v in names):
            raise self._error(
                QuiversTypeError,
                "option `via` takes the name of an index map, e.g. `via=group`, or one per factor of a "
                "grouping by pairs, `via=[g, h]`",
                value,
            )
        # where `via` may stand and what it may name are the IR's rules
        # (quivers/programs/sites.py); a name no step defines is data, an
        # index map into the `over` set of the innermost grouped block (into
        # its factor, for one map per factor of a grouping by pairs)
        grouped = [b for b in scope.blocks if _option(b.options, "over") is not None]
        block = grouped[-1] if grouped else None
        over = grouping(block) if block is not None else None
        targets = [over] if isinstance(value, ast.OptionName) or over is None else _factors(over)
        for i, v in enumerate(names):
            into = targets[i] if i < len(targets) else None
            self._name(v.name, v, scope, _Use(v, step, via=block if into is not None else None, into=into))

    # ------------------------------------------------------------ families and expressions

    def _family(self, f: ast.FamilyCall, scope: _Scope, axis: ast.SetExpr | None = None) -> Family:
        f = canonical_family(f)
        spec = FAMILIES.get(f.name)
        if spec is None:
            raise self._unknown(f"unknown distribution family `{f.name}`", f.name, FAMILIES, f)
        for k in f.kwargs:
            if k.name not in spec.param_names and k.name not in spec.aliases:
                raise self._unknown(
                    f"`{f.name}` has no parameter `{k.name}`; its parameters are "
                    + ", ".join(spec.param_names),
                    k.name, spec.param_names, k,
                )
        scope.vector_axis = axis if isinstance(axis, ast.SetName) else None
        lit = literal_weights(f)
        if lit is not None:
            check_literal_weights(lit, self.source)

        def argument(e: ast.Expr, slot: object = None) -> object:
            if lit is not None and e is lit.vector:  # runs along the components, not the plate
                for i in e.items:
                    self._expr(i, scope)
                return var("__argument")
            if f.name == "Pushforward" and slot in (1, "transform", "f"):
                name, targs = transform_call(e)
                for a in targs:
                    self._expr(a, scope)
                try:
                    return transform(name, *(_constant(a) for a in targs))
                except QuiversError as err:
                    raise err.relocated(e.span, self.source) from None
            if spec.combine is not None and isinstance(e, ast.Call) and SPELLINGS.get(e.func, e.func) in FAMILIES:
                # a family made of families: `Truncated(Normal(mu, s), low=0.0)`
                inner = self._family(ast.nested_family(e), scope, axis)
                scope.vector_axis = axis if isinstance(axis, ast.SetName) else None
                return inner
            self._expr(e, scope)
            # The registry decides arity, missing parameters and constant
            # constraints; placeholders stand in for non-constant arguments.
            return _constant(e)

        try:
            args = [argument(e, i) for i, e in enumerate(f.args)]
            kwargs = {k.name: argument(k.value, k.name) for k in f.kwargs}
        finally:
            scope.vector_axis = None
        try:
            return family(f.name, *args, **kwargs)
        except QuiversError as err:
            raise err.relocated(f.span, self.source) from None

    def _expr(self, e: ast.Expr, scope: _Scope) -> None:
        if isinstance(e, ast.Lambda):
            raise self._error(
                QuiversTypeError,
                f"a function `{dump_expr(e)}` is an argument of `map`, `traverse`, `logsumexp_over` or `fold`, "
                f"which run inside a computation, not in program `{scope.program}`",
                e, hint="put it in a `define` and run that here with `let x <- f(...)`",
            )
        if isinstance(e, ast.Name) and e.id in scope.binders:
            return  # the number of its element at each cell
        if isinstance(e, ast.Subscript) and any(isinstance(i, ast.Name) and i.id in scope.binders for i in e.indices):
            self._binder_subscript(e, scope)
        elif isinstance(e, ast.Tabulate):
            self._tabulate(e, scope)
        elif isinstance(e, ast.Name):
            self._name(e.id, e, scope)
        elif isinstance(e, ast.BinOp):
            self._expr(e.left, scope)
            self._expr(e.right, scope)
        elif isinstance(e, ast.Neg):
            self._expr(e.operand, scope)
        elif isinstance(e, ast.Subscript):
            self._expr(e.base, scope)
            for k, i in enumerate(e.indices):
                if isinstance(i, ast.Name):
                    self._name(i.id, i, scope, _Use(i, scope.current, (e.base, k, len(e.indices))))
                else:
                    self._expr(i, scope)
        elif isinstance(e, ast.Call) and e.func in BUILDERS:
            self._builder(e, scope)
        elif isinstance(e, ast.Call):
            self._call(e, scope)
        elif isinstance(e, ast.Vector):
            self._vector(e, scope)
        elif isinstance(e, ast.Tuple):
            raise self._error(
                UnsupportedError,
                f"the tuple `{dump_expr(e)}` is a point of a product, which only a program that draws from "
                "morphisms (a scan cell) returns",
                e,
            )
        elif isinstance(e, ast.Record):
            self._record(e, scope)
        elif isinstance(e, ast.Method):
            raise self._error(
                UnsupportedError, f"`.{e.method}()` is a method of the chart of a deduction, "
                "`let chart = parse(D, sentence)`; this program parses nothing", e,
            )

    def _tabulate(self, e: ast.Tabulate, scope: _Scope) -> None:
        """``factor k : K in {...}`` has one case per element of ``K``;
        ``factor v : V, ... in body`` reads its binders as subscripts."""
        names = [b for b, _ in e.binders]
        for b, s in e.binders:
            self._set(s, e)
            self._finite(s, e, f"the set of the binder `{b}`")
            if b in self.all_objects or b in scope.defined or b in scope.latents or b in scope.binders:
                raise self._error(QuiversTypeError, f"the binder `{b}` of `factor` already names a value or object", e)
        if len(set(names)) != len(names) or len({dump_set(s) for _, s in e.binders}) != len(names):
            raise self._error(
                UnsupportedError, f"`{dump_expr(e)}` repeats a binder or a set; give each binder its own set", e
            )
        if e.cases is not None:
            if len(e.binders) != 1:
                raise self._error(QuiversTypeError, "a table of cases `{0 -> ..., }` has one binder", e)
            ((b, s),) = e.binders
            n = self.finsets[s.name].size
            labels = [k for k, _ in e.cases]
            bad = next((k for k in labels if not isinstance(k, int) or not 0 <= k < n or labels.count(k) > 1), None)
            missing = sorted(set(range(n)) - set(labels))
            if bad is not None or missing:
                why = (f"the case `{bad}` is given twice" if bad in range(n) and labels.count(bad) > 1 else
                       f"the case `{bad}` is not an element of `{s.name}` (0 to {n - 1})" if bad is not None else
                       "it has no case for " + ", ".join(f"`{k}`" for k in missing))
                raise self._error(QuiversTypeError, f"`factor {b} : {s.name}` needs one case per element of "
                                  f"`{s.name}`: {why}", e)
            for _, v in e.cases:
                self._expr(v, scope)
            return
        scope.binders.update(dict(e.binders))
        try:
            self._expr(e.body, scope)
        finally:
            for b in names:
                scope.binders.pop(b, None)

    def _binder_subscript(self, e: ast.Subscript, scope: _Scope) -> None:
        """``x[v, k]`` with binders: ``x`` lives on the binders' sets, in order."""
        sets = [scope.binders.get(i.id) if isinstance(i, ast.Name) else None for i in e.indices]
        if None in sets or not isinstance(e.base, ast.Name):
            raise self._error(
                UnsupportedError, f"`{dump_expr(e)}` mixes binders with other subscripts; index a named value by "
                "binders only", e,
            )
        self._expr(e.base, scope)
        plate = self._value_set(e.base.id, scope, set())
        want = " * ".join(dump_set(s) for s in sets)
        if plate is None or dump_set(plate) != want:
            have = f"on `{dump_set(plate)}`" if plate is not None else "on no set this checker can see"
            raise self._error(
                QuiversTypeError, f"`{dump_expr(e)}` reads `{e.base.id}` on `{want}`, but it lives {have}", e,
            )

    def _record(self, e: ast.Record, scope: _Scope) -> None:
        """A labelled tuple is a program's value: its labels are distinct."""
        if not isinstance(scope.current, ast.Return):
            raise self._error(
                QuiversTypeError, f"the labelled tuple `{dump_expr(e)}` is a program's value: write it after `return`", e
            )
        seen: set[str] = set()
        for label, value in e.fields:
            if label in seen:
                raise self._error(QuiversTypeError, f"the label `{label}` is given twice in `{dump_expr(e)}`", e)
            seen.add(label)
            self._expr(value, scope)

    def _call(self, e: ast.Call, scope: _Scope) -> None:
        """A function call: a known function, with as many arguments as it
        takes; the argument that names an axis (``sum(x, K)``) names an object."""
        if e.kwargs and e.func in FUNCTIONS:
            raise self._error(
                QuiversTypeError, f"`{e.func}` takes no keyword arguments (`{e.kwargs[0].name}=`); keywords name the "
                "parameters of a distribution family", e.kwargs[0],
            )
        if e.func not in FUNCTIONS:
            hint = " (distribution families go after `<-`)" if e.func in FAMILIES else ""
            known = [*FUNCTIONS, *BUILDERS]
            raise self._unknown(
                f"unknown function `{e.func}`{hint}; functions are {', '.join(known)}",
                e.func, known, e,
            )
        low, high = ARITY[e.func]
        if not low <= len(e.args) <= high:
            usage = {"where": "`where(condition, a, b)`", "dot": "`dot(x, y)` or `dot(x, y, K)`"}.get(
                e.func, f"`{e.func}(x)` or `{e.func}(x, K)` along the axis `K`" if high == 2 else None)
            raise self._error(
                QuiversTypeError,
                f"`{e.func}` takes {arity_text(e.func)}, got {len(e.args)}" + (f": {usage}" if usage else ""),
                e,
            )
        k = AXIS_ARGUMENT.get(e.func)
        axis = e.args[k] if k is not None and k < len(e.args) else None
        if axis is not None:
            if not isinstance(axis, ast.Name) or (axis.id not in self.all_objects and axis.id not in self.objects):
                got = f"; `{axis.id}` is not an object" if isinstance(axis, ast.Name) else ""
                raise self._error(
                    QuiversTypeError,
                    f"the last argument of `{dump_expr(e)}` names the axis it runs along, an object, e.g. "
                    f"`{e.func}(x, K)`{got}",
                    axis,
                )
            self._set(ast.SetName(axis.id, span=axis.span), e)
        for a in e.args:
            if a is not axis:
                self._expr(a, scope)

    def _vector(self, e: ast.Vector, scope: _Scope) -> None:
        """``[a, b, c]``: a family argument of a step whose plate ends with
        an object of as many elements."""
        axis = scope.vector_axis
        if axis is None:
            raise self._error(
                QuiversTypeError,
                f"the vector `{dump_expr(e)}` has no object to run along: a vector literal is an argument of "
                "the family of a step on a plate (or of a marginalize), and runs along its last object",
                e,
                hint=f"name the object: `vector(K, {', '.join(dump_expr(i) for i in e.items)})`",
            )
        size = self.finsets[axis.name].size
        if len(e.items) != size:
            raise self._error(
                QuiversTypeError,
                f"the vector `{dump_expr(e)}` runs along `{axis.name}`, which has {size} elements; it has "
                f"{len(e.items)} entries",
                e,
            )
        for i in e.items:
            self._expr(i, scope)

    def _builder(self, e: ast.Call, scope: _Scope) -> None:
        """``vector(K, a, b)`` and ``matrix(K, ...)``: the set comes first,
        then one entry per element of ``K`` (of ``K * K`` for a matrix)."""
        head = e.args[0] if e.args else None
        if not isinstance(head, ast.Name) or head.id not in self.all_objects:
            raise self._error(
                QuiversTypeError,
                f"`{e.func}` takes the object its entries run along first, e.g. `{e.func}(K, "
                + ("a, b)`" if e.func == "vector" else "a, b, c, d)`") + (
                    f"; `{head.id}` is not an object" if isinstance(head, ast.Name) else ""),
                head or e,
            )
        self._set(ast.SetName(head.id, span=head.span), e)
        size = self.finsets[head.id].size
        need = size if e.func == "vector" else size * size
        if len(e.args) - 1 != need:
            shape = f"`{head.id}` (size {size})" if e.func == "vector" else f"`{head.id} * {head.id}` ({size} x {size})"
            raise self._error(
                QuiversTypeError,
                f"`{e.func}({head.id}, ...)` needs {need} entries, one per element of {shape}, got {len(e.args) - 1}",
                e,
            )
        for a in e.args[1:]:
            self._expr(a, scope)

    def _name(self, name: str, node: ast.Node, scope: _Scope, use: _Use | None = None, strict: bool = False) -> None:
        """``name`` is in scope; a name no step defines is data (recorded
        with ``use``), unless ``strict`` or it names an object or program."""
        if name in scope.defined or name in scope.latents:
            return
        if name in scope.closed:
            block = scope.closed[name]
            raise self._error(
                QuiversTypeError,
                f"`{name}` is marginalized out by the block" + self._line(block.span)
                + " and is only in scope inside it",
                node,
            )
        if name in scope.later and _within(node.span, scope.later[name].span):
            raise recursion_error(name).relocated(node.span, self.source)
        if name in scope.later:
            raise self._error(
                UnknownNameError,
                f"`{name}` is used before it is defined" + self._line(scope.later[name].span),
                node,
                name=name,
                hint="move its definition above this step",
            )
        in_scope = scope.visible()
        # a near-copy of a name in scope (one letter off) is most likely a typo
        close = next(iter(difflib.get_close_matches(name, in_scope, n=1, cutoff=0.85)), None)
        if not strict and close is None and name not in self.all_objects and name not in self.programs:
            scope.free.setdefault(name, []).append(use or _Use(node, scope.current))
            return
        if close is not None and not strict:  # most likely a typo; data that looks like one is declared
            raise self._error(
                UnknownNameError,
                f"unknown name `{name}` in program `{scope.program}`; names in scope: " + ", ".join(in_scope),
                node, name=name, candidates=in_scope,
                hint=f"did you mean `{close}`? (if `{name}` is data, declare it: `data {name} : ...`)",
            )
        raise self._unknown(
            f"unknown name `{name}` in program `{scope.program}`; names in scope: "
            + (", ".join(in_scope) or "none"),
            name, in_scope, node,
        )


# ---------------------------------------------------------------- helpers


def _constant(e: ast.Expr) -> object:
    """A literal as its number; anything else as a symbolic placeholder."""
    if isinstance(e, ast.Number):
        return e.value
    if isinstance(e, ast.Neg) and isinstance(e.operand, ast.Number):
        return -e.operand.value
    return var("__argument")


def _within(inner: Span | None, outer: Span | None) -> bool:
    """Whether the source region ``inner`` lies inside ``outer``."""
    if inner is None or outer is None:
        return False
    return (outer.line, outer.column) <= (inner.line, inner.column) and (inner.end_line, inner.end_column) <= (
        outer.end_line, outer.end_column)


def _option(options: tuple[ast.Option, ...], key: str) -> ast.OptionValue | None:
    for o in options:
        if o.key == key:
            return o.value
    return None


SPELLINGS = {"Restrict": "Truncated", "Truncate": "Truncated"}
"""Other names of families, as the peer's documents write them."""


def canonical_family(f: ast.FamilyCall) -> ast.FamilyCall:
    """``f`` in the form the registry reads, from the peer's spellings:
    ``Restrict(F, lo, hi)`` and ``Truncate(...)`` are ``Truncated``; the
    spread ``Dirichlet(1.0, 2.0, 3.0)`` is ``Dirichlet([1.0, 2.0, 3.0])``;
    ``Mixture(w, [F, G])`` and ``Mixture(w, components=[F, G])`` are
    ``Mixture(w, F, G)``. The printer keeps the form written.

    Examples
    --------
    >>> canonical_family(ast.FamilyCall("Dirichlet", (ast.Number(1), ast.Number(2)))).args
    (Vector(items=(Number(value=1), Number(value=2))),)
    >>> canonical_family(ast.FamilyCall("Restrict", (ast.Name("base"), ast.Number(0)))).name
    'Truncated'
    """
    name, args, kwargs = SPELLINGS.get(f.name, f.name), f.args, f.kwargs
    if name == "Dirichlet" and len(args) > 1:
        args = (ast.Vector(args, span=args[0].span),)
    if name == "Mixture":
        listed = [k for k in kwargs if k.name == "components"]
        if listed and isinstance(listed[0].value, ast.Vector):
            args, kwargs = args + listed[0].value.items, tuple(k for k in kwargs if k.name != "components")
        elif len(args) == 2 and isinstance(args[1], ast.Vector) and all(
                isinstance(i, ast.Call) and SPELLINGS.get(i.func, i.func) in FAMILIES for i in args[1].items):
            args = (args[0], *args[1].items)
    if (name, args, kwargs) == (f.name, f.args, f.kwargs):
        return f
    return ast.FamilyCall(name, args, kwargs, f.bare, span=f.span)


def transform_call(e: ast.Expr) -> tuple[str, tuple[ast.Expr, ...]]:
    """The transform a ``Pushforward`` argument names, and its arguments:
    ``exp`` (or the peer's ``Exp``), ``affine(1.0, s)``. Anything else is
    an unknown transform, placed on its text.

    Examples
    --------
    >>> transform_call(ast.Name("Exp"))
    ('exp', ())
    >>> transform_call(ast.Call("affine", (ast.Number(1.0), ast.Name("s"))))
    ('affine', (Number(value=1.0), Name(id='s')))
    """
    name, args = (e.id, ()) if isinstance(e, ast.Name) else (e.func, e.args) if isinstance(e, ast.Call) else (None, ())
    canonical = transform_name(name) if name is not None else None
    if canonical is None:
        raise UnknownNameError(
            f"`Pushforward` takes a transform second, one of {', '.join(TRANSFORMS)}; got `{dump_expr(e)}`",
            name=name or dump_expr(e), candidates=TRANSFORMS, span=e.span,
        )
    return canonical, tuple(args)


def _binder_set(e: ast.Tabulate) -> ast.SetExpr:
    """The set a ``factor`` value lives on: its binders' sets, in order."""
    out: ast.SetExpr | None = None
    for _, s in e.binders:
        out = s if out is None else ast.SetProduct(out, s)
    assert out is not None
    return out


def _defines(step: ast.Step) -> str | None:
    if isinstance(step, (ast.Sample, ast.Observe, ast.Let, ast.Perform, ast.IndexMap, ast.Data, ast.Marginalize,
                         ast.Markov)):
        return step.name
    if isinstance(step, ast.Factor):
        return step.name
    return None


def _factors(s: ast.SetExpr) -> list[ast.SetExpr]:
    """The factors of a product set expression, left to right."""
    if isinstance(s, ast.SetProduct):
        return _factors(s.left) + _factors(s.right)
    return [s]


def _set_text(s: ast.SetExpr | None) -> str:
    return dump_set(s) if s is not None else "nothing"


def _expr_names(e: ast.Expr) -> Iterable[str]:
    if isinstance(e, ast.Name):
        yield e.id
    elif isinstance(e, ast.BinOp):
        yield from _expr_names(e.left)
        yield from _expr_names(e.right)
    elif isinstance(e, ast.Neg):
        yield from _expr_names(e.operand)
    elif isinstance(e, ast.Subscript):
        yield from _expr_names(e.base)
        for i in e.indices:
            yield from _expr_names(i)
    elif isinstance(e, ast.Call):
        k = AXIS_ARGUMENT.get(e.func)
        for i, a in enumerate(e.args):
            if i != k:  # the axis argument names an object
                yield from _expr_names(a)
        for kw in e.kwargs:
            yield from _expr_names(kw.value)
    elif isinstance(e, (ast.Vector, ast.Tuple)):
        for a in e.items:
            yield from _expr_names(a)
    elif isinstance(e, ast.Record):
        for _, a in e.fields:
            yield from _expr_names(a)
    elif isinstance(e, ast.Method):
        yield from _expr_names(e.target)
        for a in e.args:
            yield from _expr_names(a)
    elif isinstance(e, ast.Lambda):
        yield from (n for n in _expr_names(e.body) if n != e.param)
    elif isinstance(e, ast.Tabulate):
        bound = {b for b, _ in e.binders}
        for a in ([v for _, v in e.cases] if e.cases is not None else [e.body]):
            yield from (n for n in _expr_names(a) if n not in bound)


def _step_reads(step: ast.Step) -> set[str]:
    """The names a step's own expressions and options read."""
    out: set[str] = set()
    for f in (getattr(step, "family", None), getattr(step, "prior", None)):
        if f is not None:
            for e in (*f.args, *(k.value for k in f.kwargs)):
                out.update(_expr_names(e))
    if isinstance(step, (ast.Let, ast.Perform, ast.Factor, ast.Return)):
        out.update(_expr_names(step.value))
    for o in getattr(step, "options", ()):
        if isinstance(o.value, ast.OptionName) and o.key in ("via", "until"):
            out.add(o.value.name)
    return out


def _walk(steps: tuple[ast.Step, ...]) -> Iterable[ast.Step]:
    for s in steps:
        yield s
        if isinstance(s, (ast.Marginalize, ast.Markov)):
            yield from _walk(s.body)


def _describe(step: ast.Node | None) -> str:
    kinds = {
        ast.Sample: "sample", ast.Observe: "observe", ast.Marginalize: "marginalize", ast.Markov: "marginalize",
        ast.Let: "let", ast.IndexMap: "index", ast.Data: "data", ast.Factor: "factor", ast.Return: "return",
    }
    if isinstance(step, ast.ProgramDecl):
        return f"input {step.input} of program {step.name}"
    kind = kinds.get(type(step), type(step).__name__.lower())
    name = _defines(step) if step is not None else None
    return f"{kind} {name}" if name else kind
