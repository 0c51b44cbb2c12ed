"""Compiling QVR ``schema`` and ``bundle`` declarations, ``FreeResiduated``
objects and ``parser(...)`` into :class:`quivers.deduction.ChartParser`.

``object Atoms : {N, NP, S}`` names the atoms, ``object Cat :
FreeResiduated(Atoms)`` the universe of categories built from them by the
two slashes. ``schema fwd_app (X, Y : Cat) : (X / Y) * Y -> X`` is a
:class:`~quivers.deduction.Schema` whose variables range over ``Cat``: a
product of two categories is a binary rule, one category a unary rule. In a
schema the left operand of either slash is the result, the right one the
argument, and the slash says where the argument is sought: ``X / Y`` is
``Fwd(X, Y)`` and ``X \\ Y`` is ``Bwd(X, Y)`` (which a ``deduction`` block
writes ``Y\\X``). ``bundle B : [r, s]`` is a :class:`~quivers.deduction.Bundle`.

``define p = parser(rules=[...], terminal=Token, start=S, depth=1)`` is a
:class:`~quivers.deduction.ChartParser` over the universe the schemas'
variables range over (or the one ``FreeResiduated`` object declared),
truncated at ``depth`` (by default the universe's own ``depth=`` option,
else ``1``). ``terminal`` is the vocabulary: a set of named elements (its
words) or a ``FinSet`` (token indices). ``semiring=`` takes the names a
``deduction`` takes (``LogProb`` by default).

Checked here, each error located at its line and column: a universe is
built from a set of named elements and takes only ``depth``; a schema's
variables have a declared universe, its names are variables or atoms of
that universe, its domain is one or two categories; a bundle names
schemas or bundles declared before it; ``parser`` takes its keywords only,
known ones, with values of their kinds.

Examples
--------
>>> from quivers.dsl import loads
>>> m = loads('''
... object Atoms : {NP, S}
... object Cat : FreeResiduated(Atoms)
... object Word : {she, runs}
... schema bwd (X, Y : Cat) : Y * (X \\\\ Y) -> X
... define p = parser(rules=[bwd], terminal=Word, start=S)
... ''')
>>> m.p.n_rules, bool(torch.isfinite(m.p.weight(["she", "runs"])))
(4, True)
"""

from __future__ import annotations

from collections.abc import Mapping

import torch  # noqa: F401  (the doctest uses it)

from quivers.categories import FinSet
from quivers.deduction import Bundle, ChartParser, Schema, Var
from quivers.deduction.agenda import Term
from quivers.deduction.system import check_semiring
from quivers.dsl import ast
from quivers.errors import QuiversError, QuiversTypeError, UnknownNameError

__all__ = ["SchemaScope", "PARSER_KEYWORDS"]

PARSER_KEYWORDS = ("rules", "terminal", "start", "depth", "semiring")
"""The keywords of ``parser(...)``."""


class SchemaScope:
    """The atoms, universes, schemas and bundles declared so far in a
    module, and the parsers built from them."""

    def __init__(self, objects: Mapping[str, FinSet], source: str | None) -> None:
        self.objects, self.source = objects, source
        self.enums: dict[str, ast.EnumObject] = {}
        self.universes: dict[str, ast.ResiduatedObject] = {}
        self.schemas: dict[str, Schema] = {}
        self.universe_of: dict[str, str | None] = {}
        self.bundles: dict[str, Bundle] = {}

    def error(self, cls: type[QuiversError], message: str, node: ast.Node, **kw) -> QuiversError:
        return cls(message, span=node.span, source=self.source, **kw)

    def declare(self, d: ast.Node) -> None:
        """Take in one declaration of the kinds this module compiles."""
        if isinstance(d, ast.EnumObject):
            self.enums[d.name] = d
        elif isinstance(d, ast.ResiduatedObject):
            self.universe(d)
        elif isinstance(d, ast.SchemaDecl):
            self.schemas[d.name], self.universe_of[d.name] = self.schema(d)
        elif isinstance(d, ast.BundleDecl):
            self.bundles[d.name] = self.bundle(d)

    # ------------------------------------------------------------ declarations

    def universe(self, d: ast.ResiduatedObject) -> None:
        if d.generators not in self.enums:
            raise self.error(
                QuiversTypeError if d.generators in self.objects else UnknownNameError,
                f"`FreeResiduated({d.generators})` needs a set of named atoms declared before it, "
                f"such as `object {d.generators} : {{N, NP, S}}`", d,
                name=d.generators, candidates=list(self.enums),
            )
        for o in d.options:
            if o.key != "depth":
                raise self.error(UnknownNameError, f"unknown option `{o.key}` of `FreeResiduated`; options: "
                                 "depth", o, name=o.key, candidates=("depth",))
            self.depth(o.value, o)
        self.universes[d.name] = d

    def depth(self, value: object, node: ast.Node) -> int:
        number = value.value if isinstance(value, (ast.OptionNumber, ast.MorphismNumber)) else None
        if isinstance(number, bool) or not isinstance(number, int) or number < 0:
            raise self.error(QuiversTypeError, "`depth` takes a whole number >= 0, the most slashes nested "
                             "in a category", node)
        return number

    def atoms(self, universe: str) -> tuple[str, ...]:
        return self.enums[self.universes[universe].generators].elements

    def schema(self, d: ast.SchemaDecl) -> tuple[Schema, str | None]:
        variables: dict[str, str] = {}
        for group in d.params:
            if group.type is None:
                raise self.error(QuiversTypeError, f"the variables {', '.join(group.names)} of schema "
                                 f"`{d.name}` need their universe: `{', '.join(group.names)} : Cat`", group)
            if group.type not in self.universes:
                raise self.error(UnknownNameError, f"`{group.type}` in schema `{d.name}` is not a universe of "
                                 "categories; declare it `object Cat : FreeResiduated(Atoms)`", group,
                                 name=group.type, candidates=list(self.universes))
            for n in group.names:
                if n in variables:
                    raise self.error(QuiversTypeError, f"variable `{n}` of schema `{d.name}` is declared twice",
                                     group)
                variables[n] = group.type
        universes = set(variables.values())
        if len(universes) > 1:
            raise self.error(QuiversTypeError, f"the variables of schema `{d.name}` range over several "
                             f"universes ({', '.join(sorted(universes))}); a schema's rules live in one", d)
        universe = next(iter(universes), None)
        if universe is None and len(self.universes) == 1:
            universe = next(iter(self.universes))
        atoms = self.atoms(universe) if universe is not None else ()
        if len(d.domain) not in (1, 2):
            raise self.error(QuiversTypeError, f"the domain of schema `{d.name}` is a product of "
                             f"{len(d.domain)} categories; a chart rule takes one (unary) or two (binary)", d)

        def term(t: ast.Term) -> Term:
            if isinstance(t, ast.TermName):
                if t.name in variables:
                    return Var(t.name)
                if t.name in atoms:
                    return t.name
                where = f"; atoms of `{universe}`: {', '.join(atoms)}" if universe else ""
                raise self.error(
                    UnknownNameError, f"unknown atom `{t.name}` in schema `{d.name}`; its variables: "
                    f"{', '.join(variables) or 'none'}{where}", t, name=t.name, candidates=[*variables, *atoms],
                )
            if isinstance(t, ast.TermSlash):
                return ("Fwd" if t.op == "/" else "Bwd", term(t.left), term(t.right))
            raise self.error(QuiversTypeError, f"a category of schema `{d.name}` is a variable, an atom or a "
                             "slash of two categories (`X / Y`, `X \\ Y`)", t)

        return Schema(d.name, tuple(term(t) for t in d.domain), term(d.codomain)), universe

    def rule(self, name: str, node: ast.Node, where: str) -> Schema | Bundle:
        if name in self.schemas:
            return self.schemas[name]
        if name in self.bundles:
            return self.bundles[name]
        known = [*self.schemas, *self.bundles]
        raise self.error(UnknownNameError, f"`{name}` in {where} is not a schema or bundle declared before "
                         "it; schemas and bundles: " + (", ".join(known) or "none"), node,
                         name=name, candidates=known)

    def bundle(self, d: ast.BundleDecl) -> Bundle:
        return Bundle(d.name, tuple(self.rule(m, d, f"bundle `{d.name}`") for m in d.members))

    # ------------------------------------------------------------ parser(...)

    def parser(self, e: ast.MorphismCall, name: str) -> ChartParser:
        """``parser(rules=[...], terminal=T, start=S, depth=d)`` as a
        :class:`~quivers.deduction.ChartParser` named ``name``."""
        keywords: dict[str, ast.MorphismKeyword] = {}
        for a in e.args:
            if not isinstance(a, ast.MorphismKeyword):
                raise self.error(QuiversTypeError, "`parser` takes keywords only: `parser(rules=[...], "
                                 "terminal=Token, start=S)`", a)
            if a.name not in PARSER_KEYWORDS:
                raise self.error(UnknownNameError, f"`parser` takes no keyword `{a.name}`; keywords: "
                                 + ", ".join(PARSER_KEYWORDS), a, name=a.name, candidates=PARSER_KEYWORDS)
            if a.name in keywords:
                raise self.error(QuiversTypeError, f"keyword `{a.name}` of `parser` is given twice", a)
            keywords[a.name] = a
        for k in ("rules", "terminal", "start"):
            if k not in keywords:
                raise self.error(QuiversTypeError, f"`parser` needs `{k}=`", e)
        listed = keywords["rules"].value
        items = listed.items if isinstance(listed, ast.MorphismList) else (listed,)
        rules = []
        for item in items:
            if not isinstance(item, ast.MorphismRef):
                raise self.error(QuiversTypeError, "`rules=` lists schemas and bundles by name", item)
            rules.append(self.rule(item.name, item, "`parser(rules=...)`"))
        universe = self.parser_universe(rules, e)
        terminal = self.name(keywords["terminal"], "`terminal=` takes the set of terminals, by name")
        if terminal.name in self.enums:
            terminals: tuple[str, ...] | int = self.enums[terminal.name].elements
        elif terminal.name in self.objects:
            terminals = self.objects[terminal.name].size
        else:
            raise self.error(UnknownNameError, f"`terminal={terminal.name}` is not a set declared before the "
                             "parser", terminal, name=terminal.name, candidates=[*self.enums, *self.objects])
        start = self.name(keywords["start"], "`start=` takes an atom, by name")
        atoms = self.atoms(universe)
        if start.name not in atoms:
            raise self.error(UnknownNameError, f"the start category `{start.name}` is not an atom of "
                             f"`{universe}`; atoms: {', '.join(atoms)}", start, name=start.name, candidates=atoms)
        if "depth" in keywords:
            depth = self.depth(keywords["depth"].value, keywords["depth"])
        else:
            given = [o for o in self.universes[universe].options if o.key == "depth"]
            depth = given[0].value.value if given else 1
        semiring = check_semiring("LogProb", "")
        if "semiring" in keywords:
            ref = self.name(keywords["semiring"], "`semiring=` takes a name, such as `Viterbi`")
            try:
                semiring = check_semiring(ref.name, f"parser `{name}`")
            except QuiversError as err:
                raise err.relocated(ref.span, self.source) from None
        try:
            return ChartParser(rules, terminals, start.name, atoms=atoms, depth=depth, semiring=semiring,
                               name=name)
        except QuiversError as err:
            raise err.relocated(e.span, self.source) from None

    def parser_universe(self, rules: list[Schema | Bundle], e: ast.MorphismCall) -> str:
        def names(r: Schema | Bundle) -> list[str]:
            return [r.name] if isinstance(r, Schema) else [n for m in r.members for n in names(m)]

        found = {self.universe_of[n] for r in rules for n in names(r)} - {None}
        if not found and len(self.universes) == 1:
            found = set(self.universes)
        if len(found) != 1:
            raise self.error(
                QuiversTypeError, "the schemas of `parser` range over "
                + (f"several universes ({', '.join(sorted(found))})" if found else "no universe of categories")
                + "; a parser's categories come from one `FreeResiduated` object", e,
            )
        return found.pop()

    def name(self, keyword: ast.MorphismKeyword, usage: str) -> ast.MorphismRef:
        if not isinstance(keyword.value, ast.MorphismRef):
            raise self.error(QuiversTypeError, usage, keyword)
        return keyword.value
