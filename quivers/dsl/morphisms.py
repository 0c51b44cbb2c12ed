"""Compiling QVR ``morphism`` and ``define`` declarations into
:mod:`quivers.nn`.

``morphism f, g : A -> B [role=latent, scale=0.3]`` declares learnable
arrows, each its own :func:`quivers.nn.latent`; ``define h = ...`` (or a
top-level ``let``) names an expression over them, compiled operator by
operator into the same calls a Python user writes: ``>>`` and ``@`` are
the arrows' own, ``.dagger`` is :func:`~quivers.nn.dagger`, and the calls
``identity(A)``, ``copy(A)``, ``delete(A)``, ``repeat(f[, n])``,
``stack(f, n)``, ``fan(f, g, ...)`` and ``scan(cell[, init=h0])`` are the
functions of :mod:`quivers.nn` of those names (``copy`` and ``delete``
are :func:`quivers.categories.copy` and ``delete`` as modules).

Roles: ``latent`` (the default) and ``kernel`` between finite sets are a
learnable stochastic matrix, :func:`quivers.nn.latent`; ``scale`` sets the
spread of its initial logits and ``init=uniform`` starts it uniform (in a
module whose algebra is ``real``, a latent is a free real matrix instead,
:func:`quivers.nn.weights`). A
``kernel`` with ``~ Family [p=v, ...]`` is a
:class:`~quivers.nn.NeuralKernel`: a network (``param_source=linear``, or
``mlp`` with ``hidden=[32]``) computes the family's parameters from the
input, except those the family options fix. ``embed`` is a
:class:`~quivers.nn.Embed` of a finite set into a ``Real`` object.
``observed`` is a :class:`~quivers.nn.DataMorphism` between finite sets,
its matrix given at run time with :func:`quivers.nn.bind`; ``discretize``
is a :class:`~quivers.nn.Discretize` of a one-dimensional ``Real`` object
into a finite set (``bins=N`` must be its size, ``scale`` its temperature).
The older declarations (``type E = Euclidean n``, ``embed``, ``kernel``,
``continuous``, ``latent``) arrive here as ``morphism`` declarations: the
parser reads them so. A kernel's ``scale`` option is its family's fixed
``scale``.

Checked here, each error located at its line and column: the role and
every option is known, and their values fit; ``latent`` needs finite sets;
every name in a ``define`` is a morphism or (inside ``identity`` and the
like) an object declared earlier; ``>>`` joins equal objects (the message
names both operands and both types); ``repeat`` and ``stack`` take an
endomorphism; a scan cell has type ``X * H -> H``.

Examples
--------
>>> from quivers.dsl.parser import parse
>>> tree = parse('''
... object S : FinSet 2
... morphism t : S -> S [role=latent]
... define tt = t >> t
... ''')
>>> m = compile_morphisms(tree, {"S": FinSet("S", 2)})
>>> m["tt"]
Then(latent(S, S, name='t'), latent(S, S, name='t'))
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch

from quivers.categories import REAL, FinSet, Semiring, copy, delete
from quivers.categories.semiring import LOG, MAX_PLUS
from quivers.deduction import Chart, ChartParser, Deduction, PCFGPrior, Sentences
from quivers.distributions import FAMILIES, family
from quivers.dsl import ast
from quivers.dsl.axes import ALGEBRAS, module_algebra
from quivers.dsl.printer import dump_expr, dump_morphism, dump_set
from quivers.dsl.schemas import SchemaScope
from quivers.errors import (
    CompositionError, DataError, QuiversError, QuiversTypeError, UnknownNameError, UnsupportedError,
)
from quivers.nn import (
    PARAM_SOURCES,
    KernelProgram,
    Step,
    INPUT,
    DataMorphism,
    Discretize,
    Embed,
    MorphismModule,
    NeuralKernel,
    Real,
    dagger,
    fan,
    identity,
    latent,
    matches,
    observed,
    repeat,
    scan,
    Transformation,
    change_base,
    contraction,
    expectation,
    l1_normalize,
    softmax,
    stack,
    weights,
)

__all__ = ["compile_morphisms", "kernel_programs", "ROLES", "OPTIONS"]

ROLES = ("latent", "kernel", "observed", "embed", "discretize")
"""The roles a declared morphism may have."""

OPTIONS = ("role", "scale", "init", "param_source", "hidden", "replicate", "over", "iid_over", "bins")
"""The options of a ``morphism`` declaration (before any ``~ Family``)."""

_INITS = ("normal", "uniform")
_TRANSFORM_CALLS = {"softmax": softmax, "l1_normalize": l1_normalize}
_OBJECT_CALLS = {"identity": identity, "copy": lambda A: observed(copy(A)), "delete": lambda A: observed(delete(A))}
_CALLS = ("identity", "copy", "delete", "repeat", "stack", "fan", "scan")
_BINARY = {
    "+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "/": lambda a, b: a / b,
    "^": lambda a, b: a**b,
}
_FUNCTIONS = {
    "exp": torch.exp, "log": torch.log, "sigmoid": torch.sigmoid, "tanh": torch.tanh,
    "softplus": torch.nn.functional.softplus, "sqrt": torch.sqrt, "abs": torch.abs,
}


def _replicas(d: ast.MorphismDecl) -> list[str]:
    o = next((o for o in d.options if o.key == "replicate"), None)
    n = o.value.value if o is not None and isinstance(o.value, ast.OptionNumber) else None
    if not isinstance(n, int) or n < 1:
        return list(d.names)
    return [f"{name}_{i}" for name in d.names for i in range(n)] + list(d.names)


def _families(steps: tuple[ast.Step, ...]) -> list[ast.FamilyCall]:
    out = []
    for s in steps:
        fam = getattr(s, "family", None) or getattr(s, "prior", None)
        if isinstance(fam, ast.FamilyCall):
            out.append(fam)
        out.extend(_families(getattr(s, "body", ())))
    return out


def _parses(steps: tuple[ast.Step, ...]) -> bool:
    """Whether a step parses with a deduction: ``let chart = parse(D, s)``
    (checked where it compiles, in :meth:`_Compiler.parse`)."""
    for s in steps:
        value = getattr(s, "value", None)
        if isinstance(value, ast.Call) and value.func == "parse":
            return True
        if _parses(getattr(s, "body", ())):
            return True
    return False


PCFG_PRIOR = "pcfg_prior"
"""The family of rule probabilities of a deduction block:
``sample g <- pcfg_prior(D, alpha)`` draws them from a Dirichlet per
concluded category (:class:`~quivers.deduction.PCFGPrior`), and the
program's ``observe s <- D`` then scores sentences under the draw."""


def kernel_programs(module: ast.Module) -> set[str]:
    """The programs of ``module`` that draw from declared morphisms
    (``sample h <- backbone``, ``observe y <- head(h)``), parse with a
    deduction (``let chart = parse(D, sentence)``) or bind several
    inputs (a scan cell): they compile here, into
    :class:`~quivers.nn.program.KernelProgram` s, not into the program IR.

    Examples
    --------
    >>> from quivers.dsl.parser import parse
    >>> kernel_programs(parse("object A : FinSet 2\\nmorphism k : A -> A\\n"
    ...                       "program p : A -> A\\n    sample h <- k\\n    return h\\n"))
    {'p'}
    """
    names: set[str] = set()
    out: set[str] = set()
    for d in module.items:
        if isinstance(d, ast.MorphismDecl):
            names.update(_replicas(d))
        elif isinstance(d, (ast.DefineDecl, ast.DeductionDecl)):
            names.add(d.name)
        elif isinstance(d, ast.ProgramDecl) and not d.params:
            if (d.input is not None and "," in d.input) or any(
                f.bare or f.name in names or f.name == PCFG_PRIOR for f in _families(d.body)
            ) or _parses(d.body):
                out.add(d.name)
                names.add(d.name)
    return out


def compile_morphisms(
    module: ast.Module, objects: Mapping[str, FinSet], source: str | None = None,
    deductions: Mapping[str, Deduction] | None = None,
) -> dict[str, MorphismModule]:
    """The declared and defined morphisms of a checked module, by name, in
    declaration order.

    Parameters
    ----------
    module
        A parsed module that the checker accepted.
    objects
        Its compiled objects by name.
    source
        Its text, so that errors show the line with a caret.
    deductions
        Its compiled deductions, which ``observe s <- D`` scores sentences
        under.
    """
    return _Compiler(module, objects, source, deductions).run()


class _Compiler:
    def __init__(self, module: ast.Module, objects: Mapping[str, FinSet], source: str | None,
                 deductions: Mapping[str, Deduction] | None = None) -> None:
        self.module, self.objects, self.source = module, objects, source
        self.deductions = dict(deductions or {})
        self.real_decls = {d.name: d for d in module.items if isinstance(d, ast.RealObject)}
        self.algebra = module_algebra(module).semiring
        self.real_algebra = self.algebra == REAL
        self.transforms: dict[str, Transformation] = {}
        self.reals = set(self.real_decls)
        self.morphisms: dict[str, MorphismModule] = {}
        self.groups: dict[str, list[str]] = {}
        self.contractions: dict[str, tuple[ast.ContractionDecl, Semiring | None]] = {}
        self.drawing = kernel_programs(module)
        self.schemas = SchemaScope(objects, source)
        self.later = {
            n for d in module.items if isinstance(d, (ast.MorphismDecl, ast.DefineDecl))
            for n in (d.names if isinstance(d, ast.MorphismDecl) else (d.name,))
        }

    def error(self, cls: type[QuiversError], message: str, node: ast.Node, **kw) -> QuiversError:
        return cls(message, span=node.span, source=self.source, **kw)

    def run(self) -> dict[str, MorphismModule]:
        for d in self.module.items:
            if isinstance(d, ast.MorphismDecl):
                copies = self.replicas(d)
                for name in d.names:
                    if copies is None:
                        self.morphisms[name] = self.declare(d, name)
                        continue
                    self.groups[name] = [f"{name}_{i}" for i in range(copies)]
                    for replica in self.groups[name]:
                        self.morphisms[replica] = self.declare(d, replica)
            elif isinstance(d, (ast.EnumObject, ast.ResiduatedObject, ast.SchemaDecl, ast.BundleDecl)):
                self.schemas.declare(d)
            elif isinstance(d, ast.DefineDecl) and isinstance(d.value, ast.MorphismCall) and d.value.func == "parser":
                self.morphisms[d.name] = self.schemas.parser(d.value, d.name)
            elif isinstance(d, ast.DefineDecl) and self.is_transform(d.value):
                self.transforms[d.name] = self.transform(d.value, d)
            elif isinstance(d, ast.DefineDecl):
                self.morphisms[d.name] = self.expr(d.value, d)
            elif isinstance(d, ast.ContractionDecl):
                self.contractions[d.name] = (d, self.rule(d))
            elif isinstance(d, ast.ProgramDecl) and d.name in self.drawing:
                self.morphisms[d.name] = self.program(d)
        return self.morphisms

    # ------------------------------------------------------------ programs over kernels

    def program(self, d: ast.ProgramDecl) -> KernelProgram:
        inputs = tuple(d.input.split(", ")) if d.input else ()
        dom, cod = self._set(d.dom), self._set(d.cod)
        factors = dom.factors if isinstance(dom, Real) else (dom,)
        if len(inputs) > 1 and len(inputs) != len(factors):
            raise self.error(
                QuiversTypeError, f"program `{d.name}` binds {len(inputs)} inputs ({d.input}), but its domain "
                f"`{dump_set(d.dom)}` has {len(factors)} factors", d,
            )
        defined = set(inputs)
        steps: list[Step] = []
        used: list[MorphismModule] = []
        drawn: dict[str, tuple[str, PCFGPrior]] = {}   # deduction -> the draw of its rule probabilities
        for s in d.body:
            if isinstance(s, (ast.Sample, ast.Observe)):
                if s.options:
                    raise self.error(UnsupportedError, f"options on a step of program `{d.name}`, which draws "
                                     "from morphisms, are not supported", s.options[0])
                if s.family.name in self.deductions:
                    fn, module = self.sentences(s, d, drawn.get(s.family.name))
                elif s.family.name == PCFG_PRIOR and PCFG_PRIOR not in self.morphisms:
                    fn, module = self.pcfg_prior(s, d, drawn)
                else:
                    fn, module = self.draw(s.family, d, defined, inputs)
                if module is not None:
                    used.append(module)
                steps.append(Step("sample" if isinstance(s, ast.Sample) else "observe", s.name, fn))
                defined.add(s.name)
            elif isinstance(s, ast.Let) and isinstance(s.value, ast.Call) and s.value.func == "parse":
                steps.extend(self.parse(s, d, defined, used))
                defined.add(s.name)
            elif isinstance(s, ast.Let):
                steps.append(Step("let", s.name, self.value(s.value, d, defined)))
                defined.add(s.name)
            elif isinstance(s, ast.Factor) and s.name is not None:
                steps.append(Step("score", s.name, self.value(s.value, d, defined)))
                defined.add(s.name)
            elif isinstance(s, ast.Return):
                steps.append(Step("return", None, self.value(s.value, d, defined)))
            else:
                raise self.error(
                    UnsupportedError, f"a `{type(s).__name__.lower()}` step in program `{d.name}`, which draws from "
                    "morphisms: such a program has `sample`, `observe`, `let`, `score` and `return` steps", s,
                )
        return self._located(lambda: KernelProgram(dom, cod, inputs, steps, used, d.name), d)

    def parse(self, s: ast.Let, d: ast.ProgramDecl, defined: set[str], used: list) -> list[Step]:
        """``let chart = parse(D, sentence)``: the chart of deduction ``D``
        over ``sentence``, a name the program defines or, otherwise, data
        the caller gives (a sentence, or several)."""
        call = s.value
        if len(call.args) != 2 or not all(isinstance(a, ast.Name) for a in call.args):
            raise self.error(QuiversTypeError, "`parse` takes a deduction and the name of the sentences: "
                             "`parse(D, sentence)`", call)
        grammar, text = call.args
        if grammar.id not in self.deductions:
            raise self.error(UnknownNameError, f"`{grammar.id}` is not a deduction; `parse` takes one first",
                             grammar, name=grammar.id, candidates=list(self.deductions))
        deduction = self.deductions[grammar.id]
        used.append(deduction)
        reader = self._located(lambda: Sentences(deduction, None, text.id, semirings=(LOG, MAX_PLUS)), call)
        out = []
        if text.id not in defined:  # a sentence the caller gives, as an observation's data
            out.append(Step("data", text.id, lambda env: reader))
            defined.add(text.id)
        out.append(Step("let", s.name, lambda env: Chart(deduction, reader.as_value(env[text.id]))))
        return out

    def pcfg_prior(self, s: ast.Sample | ast.Observe, d: ast.ProgramDecl,
                   drawn: dict[str, tuple[str, PCFGPrior]]):
        """``sample g <- pcfg_prior(D, alpha)``: rule probabilities of
        deduction ``D`` drawn from a Dirichlet per concluded category, with
        concentration ``alpha`` (a number; 1 when not given)."""
        f = s.family
        usage = f"`{PCFG_PRIOR}` takes a deduction and a concentration: `sample {s.name} <- {PCFG_PRIOR}(D, 1.0)`"
        if isinstance(s, ast.Observe):
            raise self.error(UnsupportedError, f"program `{d.name}` draws rule probabilities from "
                             f"`{PCFG_PRIOR}`; it does not observe them: write `sample {s.name} <- ...`", f)
        if f.kwargs or not 1 <= len(f.args) <= 2:
            raise self.error(QuiversTypeError, usage, f.kwargs[0] if f.kwargs else f)
        grammar = f.args[0]
        if not isinstance(grammar, ast.Name) or grammar.id not in self.deductions:
            name = grammar.id if isinstance(grammar, ast.Name) else dump_expr(grammar)
            raise self.error(UnknownNameError, f"the first argument of `{PCFG_PRIOR}` is a deduction block; "
                             f"`{name}` is not one", grammar, name=name, candidates=list(self.deductions))
        alpha = 1.0
        if len(f.args) == 2:
            a = f.args[1]
            if not (isinstance(a, ast.Number) and a.value > 0):
                raise self.error(QuiversTypeError, f"the concentration of `{PCFG_PRIOR}` is a positive number, "
                                 f"got `{dump_expr(a)}`", a)
            alpha = float(a.value)
        if grammar.id in drawn:
            raise self.error(QuiversTypeError, f"program `{d.name}` already draws the rule probabilities of "
                             f"deduction `{grammar.id}` (as `{drawn[grammar.id][0]}`)", f)
        deduction = self.deductions[grammar.id]
        prior = self._located(lambda: PCFGPrior(deduction, alpha), f)
        drawn[grammar.id] = (s.name, prior)
        return (lambda env: prior), None

    def sentences(self, s: ast.Sample | ast.Observe, d: ast.ProgramDecl,
                  draw: tuple[str, PCFGPrior] | None = None):
        """``observe s [: Sent] <- D``: sentences given as data, scored by
        their log weight under deduction ``D`` (under the rule
        probabilities the program drew for ``D``, if it drew them)."""
        f = s.family
        if isinstance(s, ast.Sample):
            raise self.error(UnsupportedError, f"deduction `{f.name}` parses sentences but does not generate "
                             f"them: program `{d.name}` can `observe {s.name} <- {f.name}`, not sample it", f)
        if not f.bare:
            raise self.error(QuiversTypeError, f"deduction `{f.name}` takes no arguments: write "
                             f"`observe {s.name} <- {f.name}`", f)
        count = None if s.index_set is None else self._set(s.index_set).size
        deduction = self.deductions[f.name]
        observation = self._located(lambda: Sentences(deduction, count, s.name), f)
        if draw is not None:
            name, prior = draw
            return (lambda env: Sentences(deduction, count, s.name, prior=prior, theta=env[name])), deduction
        return (lambda env: observation), deduction

    def draw(self, f: ast.FamilyCall, d: ast.ProgramDecl, defined: set[str], inputs: tuple[str, ...]):
        """The distribution (or draw) of a step, as a function of the
        environment, and the module it draws from (None for a family)."""
        if f.name in self.morphisms:
            module = self.morphisms[f.name]
            if f.kwargs:
                raise self.error(QuiversTypeError, f"morphism `{f.name}` takes no keywords", f.kwargs[0])
            if f.bare:  # applied to the program's whole input
                args = [lambda env: env[INPUT]]
            else:
                args = [self.value(a, d, defined) for a in f.args]
            if hasattr(module, "distribution"):
                return (lambda env: module.distribution(*(a(env) for a in args))), module
            if len(args) != 1:
                raise self.error(
                    QuiversTypeError, f"`{f.name}` is a composite morphism: it takes one argument", f,
                )
            if isinstance(module.dom, FinSet) and isinstance(module.cod, FinSet):
                # a kernel between finite sets: the row at each input, to draw
                # from or to score an observation by (a draw alone has no density)
                return (lambda env: module.rows(args[0](env))), module
            return (lambda env: module.sample(args[0](env))), module
        if f.bare:
            raise self.error(
                UnknownNameError, f"unknown morphism `{f.name}` in program `{d.name}`; morphisms: "
                + (", ".join(self.morphisms) or "none"), f, name=f.name, candidates=list(self.morphisms),
            )
        if f.name not in FAMILIES:
            candidates = [*FAMILIES, *self.morphisms]
            raise self.error(
                UnknownNameError, f"unknown family or morphism `{f.name}` in program `{d.name}`", f,
                name=f.name, candidates=candidates,
            )
        args = [self.value(a, d, defined) for a in f.args]
        kwargs = {k.name: self.value(k.value, d, defined) for k in f.kwargs}
        name = f.name

        def build(env):
            fam = family(name, *(torch.as_tensor(a(env)) for a in args),
                         **{k: torch.as_tensor(v(env)) for k, v in kwargs.items()})
            return fam.build({k: torch.as_tensor(v) for k, v in fam.args.items()})

        return build, None

    def value(self, e: ast.Expr, d: ast.ProgramDecl, defined: set[str]):
        """An expression as a function of the environment."""
        if isinstance(e, ast.Number):
            v = float(e.value)
            return lambda env: v
        if isinstance(e, ast.Name):
            if e.id not in defined:
                raise self.error(
                    UnknownNameError, f"`{e.id}` is not defined in program `{d.name}` before it is used", e,
                    name=e.id, candidates=sorted(defined),
                )
            return lambda env: env[e.id]
        if isinstance(e, ast.Neg):
            inner = self.value(e.operand, d, defined)
            return lambda env: -inner(env)
        if isinstance(e, ast.BinOp) and e.op in _BINARY:
            left, right, op = self.value(e.left, d, defined), self.value(e.right, d, defined), _BINARY[e.op]
            return lambda env: op(left(env), right(env))
        if isinstance(e, ast.Tuple):
            # `(c, h)`: a point of a product of Real objects, its parts side by side
            parts = [self.value(i, d, defined) for i in e.items]
            return lambda env: torch.cat([torch.as_tensor(p(env)) for p in parts], -1)
        if isinstance(e, ast.Method):
            target = self.value(e.target, d, defined)
            if e.method != "goal_weight" or e.args:
                raise self.error(UnknownNameError, f"a chart has one method, `goal_weight()`, not "
                                 f"`{e.method}(...)`", e, name=e.method, candidates=["goal_weight"])

            def goal_weight(env):
                chart = target(env)
                if not isinstance(chart, Chart):
                    raise DataError(f"`{dump_expr(e.target)}` is not a chart: `goal_weight()` is a method of "
                                    "`parse(D, sentence)`")
                return chart.goal_weight()
            return goal_weight
        if isinstance(e, ast.Call) and e.func in _FUNCTIONS and len(e.args) == 1:
            inner, fn = self.value(e.args[0], d, defined), _FUNCTIONS[e.func]
            return lambda env: fn(torch.as_tensor(inner(env)))
        raise self.error(
            UnsupportedError, f"in program `{d.name}`, which draws from morphisms, expressions are numbers, names, "
            f"+ - * / ^, tuples `(a, b)` and {', '.join(_FUNCTIONS)}(...)", e,
        )

    # ------------------------------------------------------------ declarations

    def options(self, d: ast.MorphismDecl) -> dict[str, ast.Option]:
        out: dict[str, ast.Option] = {}
        for o in d.options:
            if o.key not in OPTIONS:
                raise self.error(
                    UnknownNameError, f"unknown option `{o.key}` of morphism `{', '.join(d.names)}`; "
                    f"options: {', '.join(OPTIONS)}", o, name=o.key, candidates=OPTIONS,
                )
            if o.key in out:
                raise self.error(QuiversTypeError, f"option `{o.key}` is given twice", o)
            out[o.key] = o
        return out

    def replicas(self, d: ast.MorphismDecl) -> int | None:
        """``replicate=n``: the number of independent copies, named
        ``f_0, ..., f_{n-1}``, that ``f`` stands for in ``fan(f)``."""
        o = next((o for o in d.options if o.key == "replicate"), None)
        if o is None:
            return None
        if not isinstance(o.value, ast.OptionNumber) or not isinstance(o.value.value, int) or o.value.value < 1:
            raise self.error(QuiversTypeError, "`replicate` is a positive whole number of copies", o.value)
        taken = [f"{n}_{i}" for n in d.names for i in range(o.value.value) if f"{n}_{i}" in self.later]
        if taken:
            raise self.error(QuiversTypeError, f"`replicate` names the copies `{taken[0]}`, ..., but "
                             f"`{taken[0]}` is declared too", o)
        return o.value.value

    def _name_value(self, o: ast.Option, allowed: tuple[str, ...]) -> str:
        if not isinstance(o.value, ast.OptionName) or o.value.name not in allowed:
            raise self.error(
                UnknownNameError if isinstance(o.value, ast.OptionName) else QuiversTypeError,
                f"`{o.key}` must be one of {', '.join(allowed)}",
                o.value, **({"name": o.value.name, "candidates": allowed} if isinstance(o.value, ast.OptionName) else {}),
            )
        return o.value.name

    def _real(self, s: ast.SetExpr) -> bool:
        if isinstance(s, (ast.SetProduct, ast.SetSum)):
            return self._real(s.left) or self._real(s.right)
        return isinstance(s, ast.SetName) and s.name in self.reals

    def _set(self, s: ast.SetExpr) -> FinSet | Real:
        """The object ``s`` names: a FinSet, or a :class:`~quivers.nn.Real`
        where a continuous object takes part."""
        if isinstance(s, ast.SetUnit):
            return FinSet.unit()
        if isinstance(s, ast.SetName):
            d = self.real_decls.get(s.name)
            return Real(d.name, d.dim) if d is not None else self.objects[s.name]
        left, right = self._set(s.left), self._set(s.right)
        if isinstance(s, ast.SetProduct):
            return left * right
        if isinstance(left, Real) or isinstance(right, Real):
            raise self.error(QuiversTypeError, f"`{dump_set(s)}`: a Real object has no coproduct", s)
        return left + right

    def _number(self, o: ast.Option, what: str) -> float:
        if not isinstance(o.value, ast.OptionNumber):
            raise self.error(QuiversTypeError, f"`{o.key}` must be {what}", o.value)
        return o.value.value

    def declare(self, d: ast.MorphismDecl, name: str) -> MorphismModule:
        opts = self.options(d)
        # a family clause makes a kernel; without one a morphism is a latent matrix
        role = self._name_value(opts["role"], ROLES) if "role" in opts else (
            "kernel" if d.family and not d.family_args else "latent")
        scale = float(self._number(opts["scale"], "a non-negative number")) if "scale" in opts else 1.0
        if "init" in opts and self._name_value(opts["init"], _INITS) == "uniform":
            scale = 0.0
        signature = f"{dump_set(d.dom)} -> {dump_set(d.cod)}"
        neural = role == "kernel" and d.family is not None
        for key in ("param_source", "hidden"):
            if key in opts and not neural:
                raise self.error(
                    QuiversTypeError, f"`{key}` configures the network of a `[role=kernel] ~ Family` morphism; "
                    f"`{name}` has role `{role}`" + ("" if d.family else " and no family"), opts[key],
                )
        if d.family_args and role == "kernel":
            raise self.error(
                QuiversTypeError, f"`{name}` is a kernel: its family's parameters come from its network; "
                f"fix one with `~ {d.family} [p=v]`, or give a latent matrix a prior with `~ Dirichlet(a)`", d,
            )
        if d.family is not None and role not in ("kernel", "latent"):
            raise self.error(
                QuiversTypeError, f"`~ {d.family}` gives the family of a neural kernel (or a latent's prior), "
                f"not of a morphism with role `{role}`", d,
            )
        if d.family is not None and role == "latent" and not d.family_args:
            raise self.error(
                QuiversTypeError, f"`~ {d.family}` gives the family of a neural kernel, so `{name}` needs "
                f"`role=kernel`, not `{role}`; a latent's prior takes its hyperparameters: `~ Dirichlet(1.0)`", d,
            )
        if neural:
            return self.kernel(d, name, opts, signature)
        if role in ("latent", "kernel", "observed"):
            for side in (d.dom, d.cod):
                if self._real(side):
                    raise self.error(
                        QuiversTypeError,
                        f"morphism `{name} : {signature}` has role `{role}`, a stochastic matrix between finite "
                        f"sets, but `{dump_set(side)}` is a Real object",
                        side if side.span is not None else d,
                        hint="a conditional distribution into a Real object is `[role=kernel] ~ Normal`",
                    )
            if role == "observed":
                # a fixed matrix supplied at run time, like a program's data: `bind(module, data)`
                return self._located(lambda: DataMorphism(self._set(d.dom), self._set(d.cod), name), d)
            kind, prior = self.prior(d, name, opts)
            if kind == "normal" or self.real_algebra:
                # in the ring of reals a morphism is any matrix (a linear map), as the peer's
                # `composition real` modules (PCA, a linear network, PMF's `U.dagger >> V`) read it,
                # and a matrix with a Normal prior is a real matrix in any module
                if kind == "dirichlet":
                    raise self.error(
                        UnsupportedError, f"the prior `~ {d.family}(...)` on `{name}`: in the `real` algebra a "
                        "latent is a free real matrix; give it `~ Normal(m, s)` or `~ MatrixNormal(m, u, v)`", d,
                    )
                return self._located(lambda: weights(self._set(d.dom), self._set(d.cod), scale, name, prior), d)
            return self._located(
                lambda: latent(self._set(d.dom), self._set(d.cod), scale, name, prior), d
            )
        if role == "embed":
            if self._real(d.dom) or not self._real(d.cod) or not isinstance(d.cod, ast.SetName):
                side = d.cod if not self._real(d.dom) else d.dom
                raise self.error(
                    QuiversTypeError,
                    f"morphism `{name} : {signature}` has role `embed`, which maps a finite set into a Real "
                    f"object, but `{dump_set(side)}` is " + ("a Real object" if side is d.dom else "not a Real object"),
                    side if side.span is not None else d,
                    hint="declare the codomain with `object E : Real n`, or use `[role=latent]` between finite sets",
                )
            return Embed(self._set(d.dom), self._set(d.cod), scale, name)
        return self.discretize(d, name, opts, signature, scale)

    def discretize(
        self, d: ast.MorphismDecl, name: str, opts: dict[str, ast.Option], signature: str, scale: float
    ) -> MorphismModule:
        """``[role=discretize]``: soft bins of a one-dimensional Real object
        into a finite set (:class:`~quivers.nn.Discretize`); ``bins=N``, the
        peer's spelling, must be the size of the codomain."""
        if not self._real(d.dom) or self._real(d.cod):
            side = d.dom if not self._real(d.dom) else d.cod
            raise self.error(
                QuiversTypeError,
                f"morphism `{name} : {signature}` has role `discretize`, which bins a Real object into a "
                f"finite set, but `{dump_set(side)}` is " + ("not a Real object" if side is d.dom else "a Real object"),
                side if side.span is not None else d,
                hint="declare the domain with `object X : Real 1`, or use `[role=latent]` between finite sets",
            )
        dom, cod = self._set(d.dom), self._set(d.cod)
        if "bins" in opts:
            bins = self._number(opts["bins"], "a whole number of bins")
            if bins != cod.size:
                raise self.error(
                    QuiversTypeError, f"`bins={bins}` on `{name}`, but its codomain `{dump_set(d.cod)}` has "
                    f"{cod.size} elements", opts["bins"],
                )
        if "init" in opts:  # `init=uniform` means scale 0 elsewhere; a temperature of 0 has no gradient
            raise self.error(QuiversTypeError, f"`init` has no meaning for the discretize `{name}`", opts["init"])
        return self._located(lambda: Discretize(dom, cod, None, scale, name), d)

    def prior(self, d: ast.MorphismDecl, name: str, opts: dict[str, ast.Option]):
        """The prior after a latent, as ``(kind, value)``: ``("dirichlet",
        a)`` on each row, ``("normal", (loc, scale))`` on every entry (a
        ``MatrixNormal(m, u, v)`` whose covariances are ``u`` and ``v``
        times the identity is ``Normal(m, sqrt(u v))`` entry by entry), or
        ``(None, None)``. Its axes (``over=``, ``iid_over=``) must be those
        its family draws over."""
        axes = {k: self._axes(opts[k], d) for k in ("over", "iid_over") if k in opts}
        if d.family is None:
            if axes:
                key = next(iter(axes))
                raise self.error(QuiversTypeError, f"`{key}` places the axes of a prior, and `{name}` has none",
                                 opts[key])
            return None, None
        args, family_name = d.family_args, d.family
        shapes = {
            # family: (number of arguments, the axes it may be drawn over, the axes it may be iid over)
            "Dirichlet": (1, ({"cod"},), ({"dom"},)),
            "Normal": (2, (), ({"dom", "cod"},)),
            "MatrixNormal": (3, ({"dom", "cod"},), ()),
        }
        if family_name not in shapes or len(args) != shapes[family_name][0] or d.family_options:
            raise self.error(
                UnsupportedError, f"the prior `~ {family_name}(...)` on `{name}`: a latent matrix takes "
                "`~ Dirichlet(a)` (each row), `~ Normal(m, s)` or `~ MatrixNormal(m, u, v) over (dom, cod)` "
                "(the matrix), with numbers for their parameters", d,
            )
        for key, allowed in (("over", shapes[family_name][1]), ("iid_over", shapes[family_name][2])):
            if key in axes and axes[key] not in allowed:
                shown = " or ".join("(" + ", ".join(sorted(a)) + ")" for a in allowed) or "nothing"
                raise self.error(QuiversTypeError, f"`~ {family_name}` on `{name}` is drawn with `{key}` "
                                 f"{shown}, not ({', '.join(sorted(axes[key]))})", opts[key])
        if family_name == "Dirichlet":
            return "dirichlet", args[0]
        loc, spread = args[0], args[1] if family_name == "Normal" else (args[1] * args[2]) ** 0.5
        if not all(a > 0 for a in args[1:]):
            raise self.error(QuiversTypeError, f"the scale (or covariances) of `~ {family_name}` on `{name}` "
                             "must be positive", d)
        return "normal", (float(loc), float(spread))

    def _axes(self, o: ast.Option, d: ast.MorphismDecl) -> set[str]:
        """``dom``/``cod`` named by an axis option: by those words or by the
        object on that side."""
        items = o.value.items if isinstance(o.value, ast.OptionList) else (o.value,)
        sides = {"dom": "dom", "cod": "cod"}
        for side, expr in (("dom", d.dom), ("cod", d.cod)):
            if isinstance(expr, ast.SetName):
                sides.setdefault(expr.name, side)
        out = set()
        for i in items:
            if not isinstance(i, ast.OptionName) or i.name not in sides:
                raise self.error(QuiversTypeError, f"`{o.key}` names the axes `dom` and `cod` of "
                                 f"`{', '.join(d.names)}` (or their objects)", i)
            out.add(sides[i.name])
        return out

    def kernel(self, d: ast.MorphismDecl, name: str, opts: dict[str, ast.Option], signature: str) -> NeuralKernel:
        source = self._name_value(opts["param_source"], PARAM_SOURCES) if "param_source" in opts else (
            "mlp" if "hidden" in opts else "linear")
        hidden: tuple[int, ...] = (32,)
        if "hidden" in opts:
            v = opts["hidden"].value
            items = v.items if isinstance(v, ast.OptionList) else (v,)
            if not items or not all(isinstance(i, ast.OptionNumber) and isinstance(i.value, int) and i.value > 0
                                    for i in items):
                raise self.error(QuiversTypeError, "`hidden` is a positive width or a list of them, like [32, 32]", v)
            hidden = tuple(i.value for i in items)
        fixed = {o.key: self._number(o, "a number (the parameter held fixed)") for o in d.family_options}
        if "scale" in opts:
            # `[role=kernel, scale=0.1] ~ Normal`: the noise scale of the family, as `~ Normal [scale=0.1]` says
            if "scale" in fixed:
                raise self.error(QuiversTypeError, f"`scale` of `{name}` is given twice: before and after "
                                 f"`~ {d.family}`", opts["scale"])
            fixed["scale"] = self._number(opts["scale"], "a positive number (the family's fixed scale)")
        return self._located(
            lambda: NeuralKernel(self._set(d.dom), self._set(d.cod), d.family, param_source=source,
                                 hidden=hidden, fixed=fixed, name=name),
            d,
        )

    # ------------------------------------------------------------ expressions

    def ref(self, e: ast.MorphismRef, d: ast.DefineDecl) -> MorphismModule:
        if isinstance(self.morphisms.get(e.name), ChartParser):
            raise self.error(QuiversTypeError, f"`{e.name}` is a parser, which weighs sentences; it is not a "
                             "morphism to combine", e)
        if e.name in self.morphisms:
            return self.morphisms[e.name]
        if e.name in self.groups:
            copies = self.groups[e.name]
            raise self.error(
                QuiversTypeError, f"`{e.name}` stands for its {len(copies)} replicas `{copies[0]}`, ..., "
                f"`{copies[-1]}`: use `fan({e.name})` for all of them, or name one", e,
            )
        if e.name in self.objects:
            message = (f"`{e.name}` is an object, not a morphism; use `identity({e.name})` for its identity")
        elif e.name in self.later:
            message = f"morphism `{e.name}` is used before it is declared"
        else:
            message = f"unknown morphism `{e.name}` in `{d.name}`"
        known = list(self.morphisms)
        raise self.error(
            UnknownNameError, message + "; morphisms: " + (", ".join(known) or "none"), e,
            name=e.name, candidates=known,
        )

    # ------------------------------------------------------------ changes of base

    def is_transform(self, e: ast.MorphismExpr) -> bool:
        """Whether ``e`` denotes a change of base rather than a morphism."""
        if isinstance(e, ast.TransformationThen):
            return True
        if isinstance(e, ast.MorphismCall):
            return e.func in _TRANSFORM_CALLS
        return isinstance(e, ast.MorphismRef) and e.name not in self.morphisms and (
            e.name in self.transforms or e.name == "expectation")

    def transform(self, e: ast.MorphismExpr, d: ast.DefineDecl) -> Transformation:
        """A change of base: ``softmax(B)``, ``l1_normalize(B)``,
        ``expectation``, a name bound to one, or ``s >>> t``."""
        if isinstance(e, ast.TransformationThen):
            left, right = self.transform(e.left, d), self.transform(e.right, d)
            return self._located(lambda: left.then(right), e)
        if isinstance(e, ast.MorphismRef) and e.name in self.transforms:
            return self.transforms[e.name]
        if isinstance(e, ast.MorphismRef) and e.name == "expectation":
            return self._located(lambda: expectation(self.algebra), e)
        if isinstance(e, ast.MorphismCall) and e.func in _TRANSFORM_CALLS:
            (arg,) = e.args if len(e.args) == 1 else (None,)
            if not isinstance(arg, ast.MorphismRef) or arg.name not in self.objects or arg.name in self.reals:
                raise self.error(QuiversTypeError, f"`{e.func}` takes the finite set it normalizes over: "
                                 f"`{e.func}(B)`", e)
            return _TRANSFORM_CALLS[e.func](self.objects[arg.name], self.algebra)
        known = [*self.transforms, "expectation", "softmax(B)", "l1_normalize(B)"]
        raise self.error(QuiversTypeError, f"`{dump_morphism(e)}` is not a change of base; changes of base: "
                         + ", ".join(known), e)

    def expr(self, e: ast.MorphismExpr, d: ast.DefineDecl) -> MorphismModule:
        if self.is_transform(e):
            raise self.error(QuiversTypeError, f"`{dump_morphism(e)}` is a change of base, not a morphism; "
                             "apply it to one with `f.change_base(...)`", e)
        if isinstance(e, ast.MorphismRef):
            return self.ref(e, d)
        if isinstance(e, ast.MorphismAttr) and e.attr == "change_base" and len(e.args) == 1:
            base, t = self.expr(e.base, d), self.transform(e.args[0], d)
            return self._located(lambda: change_base(base, t), e)
        if isinstance(e, ast.MorphismAttr):
            if e.attr != "dagger" or e.args:
                raise self.error(
                    UnknownNameError, f"unknown postfix `.{e.attr}`; the postfixes are `.dagger` and "
                    "`.change_base(t)`", e, name=e.attr, candidates=("dagger", "change_base"),
                )
            return dagger(self.expr(e.base, d))
        if isinstance(e, ast.MorphismCall):
            return self.call(e, d)
        if isinstance(e, (ast.MorphismNumber, ast.MorphismList)):
            raise self.error(QuiversTypeError, f"`{dump_morphism(e)}` is not a morphism", e)
        left, right = self.expr(e.left, d), self.expr(e.right, d)
        if isinstance(e, ast.MorphismTensor):
            return left @ right
        if not matches(left.cod, right.dom):
            lt, rt = dump_morphism(e.left), dump_morphism(e.right)
            raise self.error(
                CompositionError,
                f"cannot compose `{lt} : {left.dom} -> {left.cod}` with `{rt} : {right.dom} -> {right.cod}`: "
                f"the codomain `{left.cod}` of `{lt}` is not the domain `{right.dom}` of `{rt}`",
                e,
            )
        return left >> right

    def rule(self, d: ast.ContractionDecl) -> Semiring | None:
        """The semiring a contraction's ``[rule=...]`` names (None: the one it is read in)."""
        for o in d.options:
            if o.key != "rule":
                raise self.error(UnknownNameError, f"unknown option `{o.key}` of contraction `{d.name}`; "
                                 "options: rule", o, name=o.key, candidates=("rule",))
        o = next(iter(d.options), None)
        return None if o is None else ALGEBRAS[self._name_value(o, tuple(ALGEBRAS))].semiring

    def contract(self, e: ast.MorphismCall, d: ast.DefineDecl) -> MorphismModule:
        """``score(f, g, h)``: the declared contraction applied to morphisms
        whose types are its parameters'."""
        decl, semiring = self.contractions[e.func]
        if len(e.args) != len(decl.params) or any(
            isinstance(a, (ast.MorphismNumber, ast.MorphismKeyword)) for a in e.args
        ):
            raise self.error(QuiversTypeError, f"contraction `{e.func}` takes {len(decl.params)} morphisms, "
                             f"one per parameter ({', '.join(p.name for p in decl.params)})", e)
        parts = []
        for a, p in zip(e.args, decl.params):
            f = self.expr(a, d)
            want = (self._set(p.dom), self._set(p.cod))
            if (f.dom, f.cod) != want:
                raise self.error(
                    CompositionError, f"`{dump_morphism(a)} : {f.dom} -> {f.cod}` is given for parameter "
                    f"`{p.name} : {want[0]} -> {want[1]}` of contraction `{e.func}`", a,
                )
            parts.append(f)
        dom, cod = self._set(decl.dom), self._set(decl.cod)
        return self._located(lambda: contraction(parts, dom, cod, semiring, e.func), e)

    def call(self, e: ast.MorphismCall, d: ast.DefineDecl) -> MorphismModule:
        if e.func in self.contractions:
            return self.contract(e, d)
        if e.func == "parser":
            raise self.error(QuiversTypeError, "`parser(...)` is a value of its own, not a part of a morphism: "
                             f"`define p = parser(...)`", e)
        if e.func not in _CALLS:
            known = (*_CALLS, *self.contractions)
            raise self.error(
                UnknownNameError, f"unknown combinator `{e.func}(...)`; combinators: {', '.join(known)}", e,
                name=e.func, candidates=known,
            )
        positional = [a for a in e.args if not isinstance(a, ast.MorphismKeyword)]
        keywords = {a.name: a for a in e.args if isinstance(a, ast.MorphismKeyword)}
        allowed_keywords = ("init",) if e.func == "scan" else ()
        for k, a in keywords.items():
            if k not in allowed_keywords:
                raise self.error(
                    UnknownNameError, f"`{e.func}` takes no keyword `{k}`"
                    + (f"; keywords: {', '.join(allowed_keywords)}" if allowed_keywords else ""),
                    a, name=k, candidates=allowed_keywords,
                )
        if e.func in _OBJECT_CALLS:
            arg = self._one(e, positional, "an object")
            if not isinstance(arg, ast.MorphismRef) or arg.name not in self.objects or arg.name in self.reals:
                raise self.error(
                    QuiversTypeError, f"`{e.func}` takes a declared finite set: `{e.func}(A)`", arg,
                )
            return self._located(lambda: _OBJECT_CALLS[e.func](self.objects[arg.name]), e)
        if e.func == "fan":
            if len(positional) == 1 and isinstance(positional[0], ast.MorphismRef) and positional[0].name in self.groups:
                parts = [self.morphisms[n] for n in self.groups[positional[0].name]]
                return self._located(lambda: fan(*parts), e)
            if len(positional) < 2 or any(isinstance(a, ast.MorphismNumber) for a in positional):
                raise self.error(
                    QuiversTypeError, "`fan` takes two or more morphisms, `fan(f, g)`, or a replicated one, `fan(head)`", e,
                )
            parts = [self.expr(a, d) for a in positional]
            return self._located(lambda: fan(*parts), e)
        if e.func == "scan":
            cell = self.expr(self._one(e, positional, "a cell"), d)
            init: MorphismModule | str | None = None
            if "init" in keywords:
                v = keywords["init"].value
                named = isinstance(v, ast.MorphismRef) and v.name in ("zeros", "learned") and v.name not in self.morphisms
                init = v.name if named else self.expr(v, d)
            return self._located(lambda: scan(cell, init), e)
        # repeat(f[, n]) and stack(f, n)
        if not positional or isinstance(positional[0], ast.MorphismNumber) or len(positional) > 2:
            usage = "`repeat(f)` or `repeat(f, n)`" if e.func == "repeat" else "`stack(f, n)`"
            raise self.error(QuiversTypeError, f"`{e.func}` takes a morphism and a count: {usage}", e)
        inner = self.expr(positional[0], d)
        n = None
        if len(positional) == 2:
            count = positional[1]
            if not isinstance(count, ast.MorphismNumber) or not isinstance(count.value, int):
                raise self.error(QuiversTypeError, f"the count of `{e.func}` is a whole number, like `3`", count)
            n = count.value
        elif e.func == "stack":
            raise self.error(QuiversTypeError, "`stack` needs its number of layers: `stack(f, n)`", e)
        build: Callable[[], MorphismModule] = (lambda: repeat(inner, n)) if e.func == "repeat" else (
            lambda: stack(inner, n))
        return self._located(build, e)

    def _one(self, e: ast.MorphismCall, positional: list, what: str) -> ast.MorphismExpr:
        if len(positional) != 1:
            raise self.error(QuiversTypeError, f"`{e.func}` takes one argument, {what}; got {len(positional)}", e)
        return positional[0]

    def _located(self, build: Callable[[], MorphismModule], e: ast.Node) -> MorphismModule:
        try:
            return build()
        except QuiversError as err:
            raise err.relocated(e.span, self.source) from None
