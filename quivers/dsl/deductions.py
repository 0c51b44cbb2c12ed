"""Compiling QVR ``deduction`` blocks into :class:`quivers.deduction.Deduction`.

A name in a term is an atom when the block declares it in ``atoms`` and a
variable otherwise; ``X/Y`` is the category ``Fwd(X, Y)`` and ``Y\\X`` is
``Bwd(X, Y)`` (an ``X`` missing a ``Y`` on the right, on the left). Rules
and lexicon entries marked ``#[learnable]`` get a log weight. The options
are ``semiring`` (``LogProb``, ``Viterbi``, ``Boolean``, ``Counting`` or a
semiring constant such as ``MAX_PLUS``), ``start`` (an atom), ``depth``
(a bound on the depth of categories) and ``tolerance`` (for cyclic rules in
a semiring that adds).

Checked here, each error located at its line: the options; lexicon
categories are made of atoms; every premise can be concluded by some rule
or the lexicon (a misspelt functor would leave a rule that never fires);
a conclusion's variables are bound by its premises or range over declared
atoms.

Examples
--------
>>> from quivers.dsl.parser import parse
>>> tree = parse('''
... object Term : FinSet 4
... deduction D : Term -> Term [semiring=Boolean, start=S]
...     atoms S, NP, VP
...     rule s : span(I, K, NP), span(K, J, VP) |- span(I, J, S)
...     lexicon
...         "she" : NP
...         "runs" : VP
... ''')
>>> d = compile_deduction(tree.items[1])
>>> d.weight(["she", "runs"])
tensor(True)
"""

from __future__ import annotations

import math

from quivers.deduction import Deduction, Entry, Rule, Var
from quivers.deduction.agenda import Term
from quivers.deduction.system import check_semiring
from quivers.dsl import ast
from quivers.errors import QuiversError, QuiversTypeError, UnknownNameError

__all__ = ["compile_deduction", "compile_deductions"]

_OPTIONS = ("semiring", "start", "depth", "tolerance")


def compile_deductions(module: ast.Module, source: str | None = None) -> dict[str, Deduction]:
    """Every ``deduction`` block of a checked module, by name."""
    return {
        d.name: compile_deduction(d, source) for d in module.items if isinstance(d, ast.DeductionDecl)
    }


def compile_deduction(d: ast.DeductionDecl, source: str | None = None) -> Deduction:
    """Build the :class:`~quivers.deduction.Deduction` of one block."""

    def error(cls: type[QuiversError], message: str, node: ast.Node, **kw) -> QuiversError:
        return cls(message, span=node.span, source=source, **kw)

    atoms = tuple(dict.fromkeys(d.atoms))
    options = _options(d, error)
    start = options.get("start")
    if start is None and d.lexicon:
        raise error(QuiversTypeError, f"deduction `{d.name}` has a lexicon but no start category: "
                    "give it `start=S`", d)
    if start is not None and start.name not in atoms:
        raise error(UnknownNameError, f"the start category `{start.name}` of deduction `{d.name}` "
                    "is not declared in `atoms`", start, name=start.name, candidates=atoms)

    def term(t: ast.Term) -> Term:
        if isinstance(t, ast.TermName):
            return t.name if t.name in atoms else Var(t.name)
        if isinstance(t, ast.TermNumber):
            return t.value
        if isinstance(t, ast.TermCall):
            return (t.functor, *(term(a) for a in t.args))
        if t.op == "/":
            return ("Fwd", term(t.left), term(t.right))
        return ("Bwd", term(t.right), term(t.left))

    for b in d.binders:
        if b in atoms:
            raise error(QuiversTypeError, f"`{b}` is declared both in `atoms` and in `binders` of "
                        f"deduction `{d.name}`; a binder is a functor of its own", d)

    def meaning(t: ast.Term, bound: dict[str, str]) -> Term:
        """A lexicon meaning: every name a constant, the variable a binder
        binds renamed by how many binders enclose it, so that terms equal
        up to the names of bound variables are one term."""
        if isinstance(t, ast.TermName):
            return bound.get(t.name, t.name)
        if isinstance(t, ast.TermNumber):
            return t.value
        if isinstance(t, ast.TermCall):
            if t.functor in d.binders:
                variable = t.args[0] if t.args else None
                if not isinstance(variable, ast.TermName) or len(t.args) < 2:
                    raise error(QuiversTypeError, f"the binder `{t.functor}` takes a variable "
                                f"name, then its body: `{t.functor}(x, ...)`", t)
                inner = {**bound, variable.name: f"${len(bound)}"}
                return (t.functor, inner[variable.name], *(meaning(a, inner) for a in t.args[1:]))
            return (t.functor, *(meaning(a, bound) for a in t.args))
        left, right = meaning(t.left, bound), meaning(t.right, bound)
        return ("Fwd", left, right) if t.op == "/" else ("Bwd", right, left)

    lexicon = []
    for e in d.lexicon:
        for leaf in _names(e.category):
            if leaf.name not in atoms:
                raise error(
                    UnknownNameError,
                    f'`{leaf.name}` in the category of "{e.word}" is not an atom; a lexicon '
                    "category is made of declared atoms", leaf, name=leaf.name, candidates=atoms,
                )
        lexicon.append(Entry(e.word, term(e.category), None if e.meaning is None else meaning(e.meaning, {}),
                             "learnable" in e.annotations))

    rules = [Rule(r.name, tuple(term(p) for p in r.premises), term(r.conclusion)) for r in d.rules]
    heads = {_head(r.conclusion) for r in rules} | {("span", 4), ("span", 5)}
    anything = any(isinstance(r.conclusion, Var) for r in rules)
    for r, rule in zip(d.rules, rules):
        for p, premise in zip(r.premises, rule.premises):
            if start is not None and not (anything or isinstance(premise, Var) or _head(premise) in heads):
                functor, arity = _head(premise)
                raise error(
                    QuiversTypeError,
                    f"no rule concludes, and no lexicon entry gives, an item `{functor}(...)` with "
                    f"{arity - 1} arguments, so rule `{r.name}` never fires",
                    p, hint="lexicon entries give `span(I, J, category)`",
                )
        free = rule.variables() - set().union(*(_vars(p) for p in rule.premises))
        if free and not atoms:
            names = ", ".join(sorted(v.name for v in free))
            raise error(QuiversTypeError, f"the conclusion of rule `{r.name}` has variables no "
                        f"premise binds ({names}) and the deduction declares no atoms for them", r)

    semiring = options.get("semiring")
    depth = options.get("depth")
    tolerance = options.get("tolerance")
    try:
        return Deduction(
            d.name, rules, lexicon, start=None if start is None else start.name,
            semiring=check_semiring(semiring.name, f"deduction `{d.name}`") if semiring else
            check_semiring("LogProb", ""),
            atoms=atoms, max_depth=None if depth is None else depth.value,
            learnable=[r.name for r in d.rules if "learnable" in r.annotations],
            bounded=[r.name for r in d.rules if "bounded" in r.annotations]
            if any("bounded" in r.annotations for r in d.rules) else None,
            tolerance=None if tolerance is None else float(tolerance.value),
        )
    except QuiversError as err:
        node = semiring if semiring is not None and "semiring" in err.message else d
        raise err.located(node.span, source) from None


def _options(d: ast.DeductionDecl, error) -> dict[str, ast.OptionValue]:
    out: dict[str, ast.OptionValue] = {}
    for option in d.options:
        key, value = option.key, option.value
        if key not in _OPTIONS:
            raise error(UnknownNameError, f"unknown option `{key}` of deduction `{d.name}`; options: "
                        + ", ".join(_OPTIONS), option, name=key, candidates=_OPTIONS)
        if key in out:
            raise error(QuiversTypeError, f"option `{key}` is given twice", option)
        if key in ("semiring", "start") and not isinstance(value, ast.OptionName):
            raise error(QuiversTypeError, f"option `{key}` of deduction `{d.name}` takes a name", option)
        if key == "depth" and not (isinstance(value, ast.OptionNumber) and isinstance(value.value, int)):
            raise error(QuiversTypeError, "option `depth` takes a whole number", option)
        if key == "tolerance" and not (
            isinstance(value, ast.OptionNumber) and 0 < value.value < math.inf
        ):
            raise error(QuiversTypeError, "option `tolerance` takes a positive number", option)
        out[key] = value
    return out


def _names(t: ast.Term):
    if isinstance(t, ast.TermName):
        yield t
    elif isinstance(t, ast.TermCall):
        for a in t.args:
            yield from _names(a)
    elif isinstance(t, ast.TermSlash):
        yield from _names(t.left)
        yield from _names(t.right)


def _head(term: Term) -> tuple[str, int]:
    if isinstance(term, tuple):
        return (term[0], len(term))
    return (str(term), 0)


def _vars(term: Term) -> set[Var]:
    return Rule("", (), term).variables()
