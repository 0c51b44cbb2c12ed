"""The abstract syntax of QVR: frozen, slotted dataclasses.

Every node carries the :class:`~quivers.errors.Span` of the source it was
read from, as the keyword-only field ``span``. Spans take no part in
equality, hashing or ``repr``, so two parses of differently formatted
source are equal exactly when they say the same thing, and ``repr`` of a
node is valid Python that rebuilds it.

Laws
----
- ``parse(dumps(m)) == m`` for every module ``m`` (the printer and the
  parser agree).
- Children are tuples, never lists, so every node is hashable.
- This module imports no torch: the syntax stands on its own.

Examples
--------
>>> e = BinOp("+", Name("x"), Number(1))
>>> e == BinOp("+", Name("x"), Number(1), span=Span(1, 1, 1, 6))
True
>>> e
BinOp(op='+', left=Name(id='x'), right=Number(value=1))
>>> eval(repr(e)) == e
True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

from quivers.errors import Span

__all__ = [
    "Span",
    "Node",
    # expressions
    "Number", "Name", "BinOp", "Neg", "Subscript", "Call", "Vector", "Tuple", "Lambda", "Expr", "BINARY_OPS", "COMPARE_OPS",
    # finite sets
    "SetName", "SetUnit", "SetProduct", "SetSum", "SetExpr",
    # options and families
    "OptionName", "OptionNumber", "OptionList", "OptionProduct", "OptionValue", "Option",
    "Keyword", "FamilyCall", "nested_family",
    # steps
    "Sample", "Observe", "Marginalize", "Markov", "Let", "Perform", "Factor", "Return", "IndexMap", "Data", "Step",
    # declarations
    "CompositionDecl", "ObjectDecl", "EnumObject", "ResiduatedObject", "RealObject", "ObjectDef", "Param", "ProgramDecl", "Export", "Decl", "Module",
    # composite programs
    "ProgramRef", "ProgramIdentity", "ProgramThen", "ProgramTensor", "ProgramExpr", "CompositeDecl",
    # morphisms
    "MorphismRef", "MorphismNumber", "MorphismKeyword", "MorphismList", "MorphismCall", "MorphismAttr", "MorphismThen",
    "MorphismTensor", "TransformationThen", "MorphismExpr", "MorphismDecl", "DefineDecl", "ContractionParam", "ContractionDecl",
    # computations
    "ScalarType", "TensorType", "TypeExpr", "TypedParam", "ComputationDecl",
    # deductions
    "TermName", "TermNumber", "TermCall", "TermSlash", "Term", "DeductionRule", "LexiconEntry",
    "DeductionDecl",
    # schemas
    "SchemaParam", "SchemaDecl", "BundleDecl",
]


@dataclass(frozen=True, slots=True)
class Node:
    """Base of every syntax node: holds the source span."""

    span: Span | None = field(default=None, compare=False, repr=False, kw_only=True)


# ---------------------------------------------------------------- expressions

BINARY_OPS = ("+", "-", "*", "/", "^")
"""The binary operators, loosest binding first within each pair."""

COMPARE_OPS = ("<", "<=", ">", ">=", "==", "!=")
"""The comparisons: binary operators looser than ``+`` that do not chain;
each is 1 where it holds and 0 where it does not."""


@dataclass(frozen=True, slots=True)
class Number(Node):
    """A numeric literal; ``int`` when written without a point or exponent.

    Literals are non-negative: the parser reads ``-1`` as ``Neg(Number(1))``.
    The printer writes a negative value with a leading minus, which reads
    back as that ``Neg``.

    Examples
    --------
    >>> Number(2.5)
    Number(value=2.5)
    """

    value: int | float


@dataclass(frozen=True, slots=True)
class Name(Node):
    """A reference to a value defined by an earlier step.

    Examples
    --------
    >>> Name("mu_k")
    Name(id='mu_k')
    """

    id: str


@dataclass(frozen=True, slots=True)
class BinOp(Node):
    """``left op right`` for ``op`` in ``+ - * / ^`` (``^`` is power) or a
    comparison of :data:`COMPARE_OPS`.

    Examples
    --------
    >>> BinOp("^", Name("x"), Number(2)).op
    '^'
    """

    op: str
    left: Expr
    right: Expr


@dataclass(frozen=True, slots=True)
class Neg(Node):
    """Unary minus.

    Examples
    --------
    >>> Neg(Name("x"))
    Neg(operand=Name(id='x'))
    """

    operand: Expr


@dataclass(frozen=True, slots=True)
class Subscript(Node):
    """Indexing: ``mu_k[z]`` or ``a[i, j]``.

    Examples
    --------
    >>> Subscript(Name("mu_k"), (Name("z"),)).indices
    (Name(id='z'),)
    """

    base: Expr
    indices: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Call(Node):
    """A call of a built-in function such as ``exp`` or ``sort``.

    Examples
    --------
    >>> Call("sort", (Name("mu_k"),))
    Call(func='sort', args=(Name(id='mu_k'),), kwargs=())

    ``kwargs`` (``Keyword`` s) are written only by a family inside a family,
    ``Truncated(Normal(loc=mu, scale=s), low=0.0)``.
    """

    func: str
    args: tuple[Expr, ...]
    kwargs: tuple["Keyword", ...] = ()


@dataclass(frozen=True, slots=True)
class Method(Node):
    """A method of a value: ``chart.goal_weight()``, the log weight of the
    sentences a ``parse(D, s)`` chart holds.

    Examples
    --------
    >>> Method(Name("chart"), "goal_weight", ()).method
    'goal_weight'
    """

    target: Expr
    method: str
    args: tuple[Expr, ...] = ()


@dataclass(frozen=True, slots=True)
class Vector(Node):
    """A vector literal ``[1, 2.5, x]``: its axis is the one its use gives it
    (the last factor of the plate of the step whose family it is an argument
    of, or the support of a ``marginalize``).

    Examples
    --------
    >>> Vector((Number(1), Number(2.5)))
    Vector(items=(Number(value=1), Number(value=2.5)))
    """

    items: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Record(Node):
    """A labelled tuple ``(effects: theta, scale: sigma)``, the value of a
    program whose codomain is a product: its fields broadcast together and
    stand side by side along a last axis, in the order written.

    Examples
    --------
    >>> Record((("lo", Name("a")), ("hi", Number(1))))
    Record(fields=(('lo', Name(id='a')), ('hi', Number(value=1))))
    """

    fields: tuple[tuple[str, Expr], ...]


@dataclass(frozen=True, slots=True)
class Tuple(Node):
    """A tuple ``(c, h)``: in a program that draws from morphisms, the point
    of a product whose parts are ``c`` and ``h`` (their concatenation).

    Examples
    --------
    >>> Tuple((Name("c"), Name("h")))
    Tuple(items=(Name(id='c'), Name(id='h')))
    """

    items: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Tabulate(Node):
    """A value built cell by cell along finite sets: ``factor k : K in {0 ->
    a, 1 -> b}`` (one case per element of ``K``, in any order) or ``factor v
    : V, k : K in body`` (``body`` read at every cell, the binders used as
    subscripts). ``binders`` pairs each binder with its set; exactly one of
    ``cases`` and ``body`` is given.

    Examples
    --------
    >>> Tabulate((("k", SetName("K")),), ((0, Number(1)), (1, Name("a"))), None).cases[1]
    (1, Name(id='a'))
    """

    binders: tuple[tuple[str, "SetExpr"], ...]
    cases: tuple[tuple[int, Expr], ...] | None
    body: Expr | None


@dataclass(frozen=True, slots=True)
class Lambda(Node):
    """``param -> body``: a function of one argument, given to ``map``,
    ``traverse`` and ``logsumexp_over``.

    Examples
    --------
    >>> Lambda("x", BinOp("+", Name("x"), Number(1))).param
    'x'
    """

    param: str
    body: Expr


Expr = Union[Number, Name, BinOp, Neg, Subscript, Call, Method, Vector, Record, Tuple, Tabulate, Lambda]


# ---------------------------------------------------------------- finite sets


@dataclass(frozen=True, slots=True)
class SetName(Node):
    """A declared object, used as an index set.

    Examples
    --------
    >>> SetName("K")
    SetName(name='K')
    """

    name: str


@dataclass(frozen=True, slots=True)
class SetUnit(Node):
    """``1``, the one-element set (the empty product), e.g. ``program p : G -> 1``.

    Examples
    --------
    >>> SetUnit() == SetUnit(span=Span(1, 1, 1, 2))
    True
    """


@dataclass(frozen=True, slots=True)
class SetProduct(Node):
    """The product ``left * right`` of two finite sets.

    Examples
    --------
    >>> SetProduct(SetName("G"), SetName("K")).right
    SetName(name='K')
    """

    left: SetExpr
    right: SetExpr


@dataclass(frozen=True, slots=True)
class SetSum(Node):
    """The coproduct ``left + right`` of two finite sets.

    Examples
    --------
    >>> SetSum(SetName("A"), SetName("B")).left
    SetName(name='A')
    """

    left: SetExpr
    right: SetExpr


SetExpr = Union[SetName, SetUnit, SetProduct, SetSum]


# ---------------------------------------------------------------- options


@dataclass(frozen=True, slots=True)
class OptionName(Node):
    """A bare name as an option value: ``over=G``, ``via=group``.

    Examples
    --------
    >>> OptionName("G")
    OptionName(name='G')
    """

    name: str


@dataclass(frozen=True, slots=True)
class OptionNumber(Node):
    """A number as an option value.

    Examples
    --------
    >>> OptionNumber(3)
    OptionNumber(value=3)
    """

    value: int | float


@dataclass(frozen=True, slots=True)
class OptionList(Node):
    """A bracketed list as an option value: ``effects=[Sample, Score]``.

    Examples
    --------
    >>> OptionList((OptionName("Sample"),)).items
    (OptionName(name='Sample'),)
    """

    items: tuple[OptionValue, ...]


@dataclass(frozen=True, slots=True)
class OptionProduct(Node):
    """A product of objects as an option value: ``over=G * H``, a
    grouping by pairs.

    Examples
    --------
    >>> OptionProduct(("G", "H")).names
    ('G', 'H')
    """

    names: tuple[str, ...]


OptionValue = Union[OptionName, OptionNumber, OptionList, OptionProduct]


@dataclass(frozen=True, slots=True)
class Option(Node):
    """One ``key=value`` entry of an option block.

    Examples
    --------
    >>> Option("over", OptionName("G")).key
    'over'
    """

    key: str
    value: OptionValue


# ---------------------------------------------------------------- families


@dataclass(frozen=True, slots=True)
class Keyword(Node):
    """A keyword argument of a family: ``scale=1.0``.

    Examples
    --------
    >>> Keyword("scale", Number(1.0))
    Keyword(name='scale', value=Number(value=1.0))
    """

    name: str
    value: Expr


@dataclass(frozen=True, slots=True)
class FamilyCall(Node):
    """A distribution family applied to arguments: ``Normal(mu, scale=1.0)``.

    Examples
    --------
    >>> FamilyCall("HalfNormal", (Number(1.0),)).name
    'HalfNormal'
    """

    name: str
    args: tuple[Expr, ...] = ()
    kwargs: tuple[Keyword, ...] = ()
    bare: bool = False  # `sample h <- backbone`: a morphism applied to the program's input


def nested_family(call: Call) -> FamilyCall:
    """A family written as the argument of a family made of families (the
    ``Normal(mu, s)`` of ``Truncated(Normal(mu, s), low=0.0)``), which the
    grammar reads as a call.

    Examples
    --------
    >>> nested_family(Call("Normal", (Name("mu"), Number(1.0))))
    FamilyCall(name='Normal', args=(Name(id='mu'), Number(value=1.0)), kwargs=(), bare=False)
    """
    return FamilyCall(call.func, call.args, call.kwargs, span=call.span)


# ---------------------------------------------------------------- steps


@dataclass(frozen=True, slots=True)
class Sample(Node):
    """``sample name : I <- Family(...)``: a latent per element of ``I``.

    Examples
    --------
    >>> Sample("mu_k", SetName("K"), FamilyCall("Normal", (Number(0.0), Number(5.0)))).name
    'mu_k'
    """

    name: str
    index_set: SetExpr | None
    family: FamilyCall
    options: tuple[Option, ...] = ()


@dataclass(frozen=True, slots=True)
class Observe(Node):
    """``observe name : I <- Family(...) [via=map]``: a scored observation.

    Examples
    --------
    >>> Observe("y", SetName("Item"), FamilyCall("Normal", (Name("mu"), Number(1.0)))).index_set
    SetName(name='Item')
    """

    name: str
    index_set: SetExpr | None
    family: FamilyCall
    options: tuple[Option, ...] = ()


@dataclass(frozen=True, slots=True)
class Marginalize(Node):
    """``marginalize z : K <- Categorical(w) [over=G]`` and its indented body;
    ``support`` is None when written ``marginalize z <- Categorical(w)``
    (the latent then ranges over the category axis of ``w``).

    Examples
    --------
    >>> m = Marginalize("z", SetName("K"), FamilyCall("Categorical", (Name("w"),)),
    ...                 (), (Factor(Name("z")),))
    >>> len(m.body)
    1
    """

    name: str
    support: SetExpr | None
    prior: FamilyCall
    options: tuple[Option, ...]
    body: tuple[Step, ...]


@dataclass(frozen=True, slots=True)
class Markov(Node):
    """``marginalize z : T -> K <- Markov(init=pi, trans=A) [until=last]``
    and its indented body: the latent is a path, a state of ``K`` for each
    step of ``T`` (the last factor of ``index_set``), a Markov chain.

    Examples
    --------
    >>> m = Markov("z", SetName("T"), SetName("K"),
    ...            FamilyCall("Markov", (), (Keyword("trans", Name("A")),)), (), (Factor(Name("z")),))
    >>> m.index_set, m.support
    (SetName(name='T'), SetName(name='K'))
    """

    name: str
    index_set: SetExpr
    support: SetExpr
    prior: FamilyCall
    options: tuple[Option, ...]
    body: tuple[Step, ...]


@dataclass(frozen=True, slots=True)
class Let(Node):
    """``let name = expr``: a deterministic value.

    Examples
    --------
    >>> Let("s", Call("sort", (Name("mu_k"),))).name
    's'
    """

    name: str
    value: Expr


@dataclass(frozen=True, slots=True)
class Factor(Node):
    """``factor expr``: add ``expr`` to the log density; ``score name =
    expr`` does the same and also names the value ``name``, as a ``let``.

    Examples
    --------
    >>> Factor(Neg(Name("penalty")))
    Factor(value=Neg(operand=Name(id='penalty')), name=None)
    >>> Factor(Name("x"), "penalty").name
    'penalty'
    """

    value: Expr
    name: str | None = None


@dataclass(frozen=True, slots=True)
class Return(Node):
    """``return expr``: the program's value.

    Examples
    --------
    >>> Return(Name("y"))
    Return(value=Name(id='y'))
    """

    value: Expr


@dataclass(frozen=True, slots=True)
class IndexMap(Node):
    """``index name : A -> B``: an integer map supplied as data (a fibration).

    Examples
    --------
    >>> IndexMap("group", SetName("Item"), SetName("G")).cod
    SetName(name='G')
    """

    name: str
    dom: SetExpr
    cod: SetExpr


@dataclass(frozen=True, slots=True)
class Data(Node):
    """``data name``, ``data name : I`` or ``data name : A -> B``: values
    supplied at run time and never scored. Without a codomain, real numbers
    (one, or one per element of ``I``); with one, an index map ``A -> B``.

    Examples
    --------
    >>> Data("sigma_j", SetName("School"))
    Data(name='sigma_j', index_set=SetName(name='School'), cod=None)
    >>> Data("idx", SetName("Item"), SetName("G")).cod
    SetName(name='G')
    """

    name: str
    index_set: SetExpr | None = None
    cod: SetExpr | None = None


@dataclass(frozen=True, slots=True)
class Perform(Node):
    """``let name <- f(args)``: run the computation ``f`` (or ``traverse``
    it over a collection) and bind its result.

    Examples
    --------
    >>> Perform("y", Call("f", (Name("x"),))).name
    'y'
    """

    name: str
    value: Expr


Step = Union[Sample, Observe, Marginalize, Markov, Let, Perform, Factor, Return, IndexMap, Data]


# ---------------------------------------------------------------- declarations


@dataclass(frozen=True, slots=True)
class CompositionDecl(Node):
    """``composition log_prob [level=algebra]``: the module's algebra, the
    semiring its marginalize blocks reduce in (``composition log_prob as
    algebra`` parses to the same node, with the option ``level=algebra``).

    Examples
    --------
    >>> CompositionDecl("max_plus", (Option("level", OptionName("algebra")),)).name
    'max_plus'
    """

    name: str
    options: tuple[Option, ...] = ()


@dataclass(frozen=True, slots=True)
class ObjectDecl(Node):
    """``object Name : FinSet N``: a finite set of ``N`` elements.

    Examples
    --------
    >>> ObjectDecl("K", 2)
    ObjectDecl(name='K', size=2)
    """

    name: str
    size: int


@dataclass(frozen=True, slots=True)
class EnumObject(Node):
    """``object Name : {a, b, c}``: a finite set of named elements, element
    ``i`` the ``i``-th name.

    Examples
    --------
    >>> EnumObject("Atoms", ("N", "NP", "S")).size
    3
    """

    name: str
    elements: tuple[str, ...]

    @property
    def size(self) -> int:
        return len(self.elements)


@dataclass(frozen=True, slots=True)
class ResiduatedObject(Node):
    """``object Cat : FreeResiduated(Atoms, depth=1)``: the categories built
    from the elements of ``Atoms`` by the two slashes, the universe that
    schema variables range over.

    Examples
    --------
    >>> ResiduatedObject("Cat", "Atoms").generators
    'Atoms'
    """

    name: str
    generators: str
    options: tuple[Option, ...] = ()


@dataclass(frozen=True, slots=True)
class RealObject(Node):
    """``object Name : Real n``: the reals of dimension ``n``, a continuous
    object (a codomain, or the axis of a vector-valued site).

    Examples
    --------
    >>> RealObject("Mix", 3)
    RealObject(name='Mix', dim=3)
    """

    name: str
    dim: int


@dataclass(frozen=True, slots=True)
class ObjectDef(Node):
    """``object Name : FinSet = A * B + C``: a product or coproduct object.

    Examples
    --------
    >>> ObjectDef("GK", SetProduct(SetName("G"), SetName("K"))).name
    'GK'
    """

    name: str
    value: SetExpr


@dataclass(frozen=True, slots=True)
class Param(Node):
    """A typed parameter of a program: ``scale : Real`` or ``G : FinSet``.

    Examples
    --------
    >>> Param("G", "FinSet")
    Param(name='G', type='FinSet')
    """

    name: str
    type: str | None


@dataclass(frozen=True, slots=True)
class ProgramDecl(Node):
    """``program name : A -> B [options]`` with its indented body;
    ``program name(a) : A -> B`` binds ``a`` to the input, an element of ``A``;
    ``program name(G : FinSet, s : Real) : G -> 1`` has typed ``params``:
    it is a family other programs use (``sample v <- name(Subject, 1.0)``).

    Examples
    --------
    >>> p = ProgramDecl("p", SetName("K"), SetName("K"), (), (Return(Name("x")),), "x")
    >>> p.name, len(p.body), p.input
    ('p', 1, 'x')
    """

    name: str
    dom: SetExpr
    cod: SetExpr
    options: tuple[Option, ...]
    body: tuple[Step, ...]
    input: str | None = None
    params: tuple[Param, ...] = ()


@dataclass(frozen=True, slots=True)
class Export(Node):
    """``export name``: the program a loaded module exposes as ``.morphism``.

    Examples
    --------
    >>> Export("gmm")
    Export(name='gmm')
    """

    name: str


# ---------------------------------------------------------------- composite programs


@dataclass(frozen=True, slots=True)
class ProgramRef(Node):
    """A declared program, used in a composite.

    Examples
    --------
    >>> ProgramRef("prior")
    ProgramRef(name='prior')
    """

    name: str


@dataclass(frozen=True, slots=True)
class ProgramIdentity(Node):
    """``identity(A)``: the program that returns its input.

    Examples
    --------
    >>> ProgramIdentity(SetName("A")).obj
    SetName(name='A')
    """

    obj: SetExpr


@dataclass(frozen=True, slots=True)
class ProgramThen(Node):
    """``left >> right``: ``right`` consumes ``left``'s value.

    Examples
    --------
    >>> ProgramThen(ProgramRef("p"), ProgramRef("q")).right
    ProgramRef(name='q')
    """

    left: ProgramExpr
    right: ProgramExpr


@dataclass(frozen=True, slots=True)
class ProgramTensor(Node):
    """``left @ right``: the two side by side, on product objects.

    Examples
    --------
    >>> ProgramTensor(ProgramRef("p"), ProgramIdentity(SetName("A"))).left
    ProgramRef(name='p')
    """

    left: ProgramExpr
    right: ProgramExpr


ProgramExpr = Union[ProgramRef, ProgramIdentity, ProgramThen, ProgramTensor]


@dataclass(frozen=True, slots=True)
class CompositeDecl(Node):
    """``program name = p >> q @ r [options]``: a program built from others.

    Examples
    --------
    >>> CompositeDecl("h", ProgramThen(ProgramRef("p"), ProgramRef("q"))).name
    'h'
    """

    name: str
    value: ProgramExpr
    options: tuple[Option, ...] = ()


# ---------------------------------------------------------------- deductions


@dataclass(frozen=True, slots=True)
class TermName(Node):
    """An atom (when the deduction declares it in ``atoms``) or a variable.

    Examples
    --------
    >>> TermName("NP")
    TermName(name='NP')
    """

    name: str


@dataclass(frozen=True, slots=True)
class TermNumber(Node):
    """A whole number in a term, such as a position in ``span(0, 1, X)``.

    Examples
    --------
    >>> TermNumber(0)
    TermNumber(value=0)
    """

    value: int


@dataclass(frozen=True, slots=True)
class TermCall(Node):
    """A compound term ``functor(arg, ...)``.

    Examples
    --------
    >>> TermCall("span", (TermName("I"), TermName("J"), TermName("S"))).functor
    'span'
    """

    functor: str
    args: tuple[Term, ...]


@dataclass(frozen=True, slots=True)
class TermSlash(Node):
    """A slash category as written: ``left/right`` (``op="/"``, the
    category ``Fwd(left, right)``) or ``left\\right`` (``op="\\"``, the
    category ``Bwd(right, left)``: a ``right`` missing a ``left`` on its left).

    Examples
    --------
    >>> TermSlash("/", TermName("S"), TermName("NP")).op
    '/'
    """

    op: str
    left: Term
    right: Term


Term = Union[TermName, TermNumber, TermCall, TermSlash]


@dataclass(frozen=True, slots=True)
class DeductionRule(Node):
    """``rule name : premise, ... |- conclusion #[annotation, ...]``.

    Examples
    --------
    >>> DeductionRule("r", (TermName("A"),), TermName("B"), ("learnable",)).annotations
    ('learnable',)
    """

    name: str
    premises: tuple[Term, ...]
    conclusion: Term
    annotations: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class LexiconEntry(Node):
    """``"word" : category = meaning #[annotation, ...]`` in a ``lexicon``.

    Examples
    --------
    >>> LexiconEntry("dog", TermName("N"), TermName("dog")).word
    'dog'
    """

    word: str
    category: Term
    meaning: Term | None = None
    annotations: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DeductionDecl(Node):
    """``deduction name : A -> B [options]`` with its atoms, rules, lexicon and
    binders (functors whose first argument is a bound variable).

    Examples
    --------
    >>> d = DeductionDecl("D", SetName("T"), SetName("T"), (), ("S",), (), ())
    >>> d.name, d.atoms
    ('D', ('S',))
    """

    name: str
    dom: SetExpr
    cod: SetExpr
    options: tuple[Option, ...]
    atoms: tuple[str, ...]
    rules: tuple[DeductionRule, ...]
    lexicon: tuple[LexiconEntry, ...]
    binders: tuple[str, ...] = ()


# ---------------------------------------------------------------- morphisms


@dataclass(frozen=True, slots=True)
class MorphismRef(Node):
    """A declared morphism or object (the argument of ``identity(A)``), by name.

    Examples
    --------
    >>> MorphismRef("transition")
    MorphismRef(name='transition')
    """

    name: str


@dataclass(frozen=True, slots=True)
class MorphismNumber(Node):
    """A count in a combinator call: the ``3`` of ``repeat(f, 3)``.

    Examples
    --------
    >>> MorphismNumber(3)
    MorphismNumber(value=3)
    """

    value: int | float


@dataclass(frozen=True, slots=True)
class MorphismKeyword(Node):
    """``name=value`` in a combinator call: ``scan(cell, init=h0)``.

    Examples
    --------
    >>> MorphismKeyword("init", MorphismRef("h0")).name
    'init'
    """

    name: str
    value: MorphismExpr


@dataclass(frozen=True, slots=True)
class MorphismList(Node):
    """``[a, b]`` as an argument of a call: ``parser(rules=[app, perm], ...)``.

    Examples
    --------
    >>> MorphismList((MorphismRef("a"),)).items
    (MorphismRef(name='a'),)
    """

    items: tuple[MorphismExpr | MorphismNumber | MorphismList, ...]


@dataclass(frozen=True, slots=True)
class MorphismCall(Node):
    """A combinator: ``repeat(f, 3)``, ``fan(f, g)``, ``identity(A)``, ...

    Examples
    --------
    >>> MorphismCall("repeat", (MorphismRef("t"), MorphismNumber(3))).func
    'repeat'
    """

    func: str
    args: tuple[MorphismExpr | MorphismNumber | MorphismKeyword, ...]


@dataclass(frozen=True, slots=True)
class MorphismAttr(Node):
    """A postfix: ``f.dagger``, or a method ``f.change_base(t)``.

    Examples
    --------
    >>> MorphismAttr(MorphismRef("f"), "dagger").attr
    'dagger'
    """

    base: MorphismExpr
    attr: str
    args: tuple[MorphismExpr, ...] = ()  # a method: `f.change_base(t)`


@dataclass(frozen=True, slots=True)
class MorphismThen(Node):
    """``left >> right`` on morphisms.

    Examples
    --------
    >>> MorphismThen(MorphismRef("f"), MorphismRef("g")).left
    MorphismRef(name='f')
    """

    left: MorphismExpr
    right: MorphismExpr


@dataclass(frozen=True, slots=True)
class MorphismTensor(Node):
    """``left @ right`` on morphisms.

    Examples
    --------
    >>> MorphismTensor(MorphismRef("f"), MorphismRef("g")).right
    MorphismRef(name='g')
    """

    left: MorphismExpr
    right: MorphismExpr


@dataclass(frozen=True, slots=True)
class TransformationThen(Node):
    """``left >>> right``: one change of base, then another.

    Examples
    --------
    >>> TransformationThen(MorphismRef("s"), MorphismRef("expectation")).right
    MorphismRef(name='expectation')
    """

    left: MorphismExpr
    right: MorphismExpr


MorphismExpr = Union[MorphismRef, MorphismCall, MorphismAttr, MorphismThen, MorphismTensor, TransformationThen]


@dataclass(frozen=True, slots=True)
class ContractionParam(Node):
    """One typed argument ``p : A -> B`` of a ``contraction``.

    Examples
    --------
    >>> ContractionParam("p", SetName("A"), SetName("B")).name
    'p'
    """

    name: str
    dom: SetExpr
    cod: SetExpr


@dataclass(frozen=True, slots=True)
class ContractionDecl(Node):
    """``contraction f(p : A -> B, ...) : D -> C [rule=real]``: several
    morphisms joined along the objects they share.

    Examples
    --------
    >>> d = ContractionDecl("f", (ContractionParam("p", SetName("A"), SetName("B")),), SetName("A"), SetName("B"))
    >>> [p.name for p in d.params]
    ['p']
    """

    name: str
    params: tuple[ContractionParam, ...]
    dom: SetExpr
    cod: SetExpr
    options: tuple[Option, ...] = ()


@dataclass(frozen=True, slots=True)
class MorphismDecl(Node):
    """``morphism f, g : A -> B [options] ~ Family [options]``.

    Examples
    --------
    >>> d = MorphismDecl(("f", "g"), SetName("A"), SetName("B"), (Option("role", OptionName("latent")),))
    >>> d.names, d.family
    (('f', 'g'), None)
    """

    names: tuple[str, ...]
    dom: SetExpr
    cod: SetExpr
    options: tuple[Option, ...] = ()
    family: str | None = None
    family_options: tuple[Option, ...] = ()
    family_args: tuple[int | float, ...] = ()  # `~ Dirichlet(1.0)`: a latent's prior hyperparameters


@dataclass(frozen=True, slots=True)
class DefineDecl(Node):
    """``define h = f >> g`` (or a top-level ``let h = f >> g``).

    Examples
    --------
    >>> DefineDecl("h", MorphismThen(MorphismRef("f"), MorphismRef("g"))).keyword
    'define'
    """

    name: str
    value: MorphismExpr
    keyword: str = "define"


# ---------------------------------------------------------------- schemas


@dataclass(frozen=True, slots=True)
class SchemaParam(Node):
    """``X, Y : Cat`` in a schema's parameters: variables and the universe
    they range over (``None`` when the source gives none).

    Examples
    --------
    >>> SchemaParam(("X", "Y"), "Cat").names
    ('X', 'Y')
    """

    names: tuple[str, ...]
    type: str | None


@dataclass(frozen=True, slots=True)
class SchemaDecl(Node):
    """``schema fwd_app (X, Y : Cat) : (X / Y) * Y -> X``: a family of chart
    rules. ``domain`` holds the factors of the domain's product: two make a
    binary rule, one a unary rule.

    Examples
    --------
    >>> x, y = TermName("X"), TermName("Y")
    >>> d = SchemaDecl("fwd", (SchemaParam(("X", "Y"), "Cat"),), (TermSlash("/", x, y), y), x)
    >>> len(d.domain)
    2
    """

    name: str
    params: tuple[SchemaParam, ...]
    domain: tuple[Term, ...]
    codomain: Term


@dataclass(frozen=True, slots=True)
class BundleDecl(Node):
    """``bundle rules : [fwd_app, bwd_app]``: a named list of schemas (or
    bundles), spliced where it is used.

    Examples
    --------
    >>> BundleDecl("rules", ("fwd_app", "bwd_app")).members
    ('fwd_app', 'bwd_app')
    """

    name: str
    members: tuple[str, ...]


# ---------------------------------------------------------------- computations


@dataclass(frozen=True, slots=True)
class ScalarType(Node):
    """A scalar type of a computation: ``Real``, ``Int`` or ``Bool``.

    Examples
    --------
    >>> ScalarType("Real").name
    'Real'
    """

    name: str


@dataclass(frozen=True, slots=True)
class TensorType(Node):
    """``Tensor[Real]([4, 2])``: a tensor of ``element`` values of a fixed shape.

    Examples
    --------
    >>> TensorType(ScalarType("Real"), (4,)).shape
    (4,)
    """

    element: ScalarType
    shape: tuple[int, ...]


TypeExpr = Union[ScalarType, TensorType]


@dataclass(frozen=True, slots=True)
class TypedParam(Node):
    """``name : type``, a parameter of a computation.

    Examples
    --------
    >>> TypedParam("x", ScalarType("Real")).type
    ScalarType(name='Real')
    """

    name: str
    type: TypeExpr


@dataclass(frozen=True, slots=True)
class ComputationDecl(Node):
    """``define f(x : Real) : Real !{} =`` and its body: a named computation
    with typed parameters, a result type and an effect row.

    Examples
    --------
    >>> c = ComputationDecl("f", (TypedParam("x", ScalarType("Real")),), ScalarType("Real"), (),
    ...                     (Return(Name("x")),))
    >>> c.effects, len(c.body)
    ((), 1)
    """

    name: str
    params: tuple[TypedParam, ...]
    result: TypeExpr
    effects: tuple[str, ...]
    body: tuple[Step, ...]


Decl = Union[
    CompositionDecl, ObjectDecl, EnumObject, ResiduatedObject, RealObject, ObjectDef, ProgramDecl, CompositeDecl,
    Export, DeductionDecl, MorphismDecl, DefineDecl, ContractionDecl, SchemaDecl, BundleDecl, ComputationDecl,
]


@dataclass(frozen=True, slots=True)
class Module(Node):
    """A whole QVR source: its declarations in order.

    Examples
    --------
    >>> Module((ObjectDecl("K", 2), Export("p"))).items[0].name
    'K'
    """

    items: tuple[Decl, ...]
