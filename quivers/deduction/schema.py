"""Chart parsers assembled from rule schemas over a free residuated
category universe.

A :class:`Schema` is a family of chart rules: one or two premise patterns
and a conclusion pattern over variables (:class:`~quivers.deduction.Var`)
and category atoms, such as forward application ``X/Y, Y |- X``. Its
instances over a finite inventory of categories are its ground rules whose
premises and conclusion all lie in the inventory. :func:`free_residuated`
builds the usual inventory: the atoms, closed under the two slashes up to a
depth (``Fwd(X, Y)``, an ``X`` missing a ``Y`` on its right, and
``Bwd(X, Y)``, an ``X`` missing a ``Y`` on its left).

A :class:`ChartParser` instantiates schemas (a :class:`Bundle` or any
nested list of them is spliced: the same rules as listing its members)
over an inventory and holds, as parameters, a log weight for every ground
rule and for every pair of a terminal and a category (the lexical axiom:
any terminal may have any category, each with its own weight, all starting
at ``0``). The weight of a sentence is the inside weight of its start
category over the whole sentence, by the tensorized CKY pass of
:func:`~quivers.deduction.inside` with the unary rules closed under chains.
This is what QVR's ``schema``, ``bundle`` and ``parser(...)`` compile to.

Laws
----
- ``ChartParser(...).forward`` in a semiring is the semiring sum, over
  every derivation of the whole sentence (a binary tree of instances over
  lexical leaves, each constituent capped by a chain of unary instances),
  of the product of the weights of its leaves and rules: the tests
  enumerate the derivations of small parsers to check this in ``LOG``,
  ``PROB``, ``MAX_PLUS`` and ``BOOL``.
- Splicing is inert: a bundle of schemas and the list of its members give
  the same rules in the same order.

Examples
--------
>>> X, Y = Var("X"), Var("Y")
>>> fwd = Schema("fwd_app", (("Fwd", X, Y), Y), X)
>>> bwd = Schema("bwd_app", (Y, ("Bwd", X, Y)), X)
>>> p = ChartParser([Bundle("ab", (fwd, bwd))], ["the", "dog", "sleeps"], "S",
...                 atoms=["N", "NP", "S"], depth=1)
>>> len(p.categories), p.n_rules, p.n_unary_rules
(21, 18, 0)
>>> bool(torch.isfinite(p.weight(["the", "dog", "sleeps"])))
True
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import product

import torch
from torch import Tensor, nn

from quivers.categories.semiring import LOG, Semiring
from quivers.deduction.agenda import Rule, Term, Var, _check_term, _variables, match, show, substitute
from quivers.deduction.cky import inside, sparse_inside
from quivers.deduction.parsing import span_rules
from quivers.deduction.system import FROM_LOG, Deduction, Entry
from quivers.errors import InvalidValueError, QuiversTypeError, UnknownNameError

__all__ = ["Schema", "Bundle", "ChartParser", "free_residuated", "splice", "DENSE_LIMIT"]

SLASHES = ("Fwd", "Bwd")
"""The functors of the two slash categories."""

DENSE_LIMIT = 2 ** 21
"""The most entries of a dense ``(N, N, N)`` rule tensor a parser builds by
default (16 MiB in float64: about 128 categories); past it the rules are
gathered one by one."""


def free_residuated(atoms: Iterable[Term], depth: int = 1) -> tuple[Term, ...]:
    """The atoms and every slash category over them of depth at most ``depth``.

    In order: the atoms, then each depth in turn, ``Fwd`` categories before
    ``Bwd``, each over the pairs of shallower categories in order.

    Examples
    --------
    >>> [show(c) for c in free_residuated(["A", "B"], 1)]
    ['A', 'B', 'A/A', 'A/B', 'B/A', 'B/B', 'A\\\\A', 'B\\\\A', 'A\\\\B', 'B\\\\B']
    >>> len(free_residuated(["N", "NP", "S"], 1)), len(free_residuated(["N", "NP", "S"], 2))
    (21, 885)
    """
    atoms = tuple(dict.fromkeys(atoms))
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 0:
        raise InvalidValueError(f"the depth of a free residuated universe is a whole number >= 0, got {depth!r}")
    for a in atoms:
        if not isinstance(a, (str, int)) or isinstance(a, bool):
            raise QuiversTypeError(f"a category atom is a name (str) or an int, got {a!r}")
    levels = [atoms]
    inventory = list(atoms)
    for d in range(1, depth + 1):
        below = [c for level in levels for c in level]
        fresh = tuple(
            (functor, x, y) for functor in SLASHES for x, y in product(below, below)
            if max(_depth(x), _depth(y)) == d - 1
        )
        levels.append(fresh)
        inventory.extend(fresh)
    return tuple(inventory)


def _depth(term: Term) -> int:
    return 1 + max(_depth(a) for a in term[1:]) if isinstance(term, tuple) else 0


@dataclass(frozen=True)
class Schema:
    """A family of chart rules: ``premises |- conclusion`` for every
    substitution of its variables.

    One premise is a unary rule (it rewrites one constituent); two are a
    binary rule over adjacent constituents, left then right.

    Examples
    --------
    >>> X, Y = Var("X"), Var("Y")
    >>> perm = Schema("perm", (("Fwd", X, Y),), ("Bwd", X, Y))
    >>> print(perm)
    perm : X/Y |- Y\\X
    >>> [tuple(map(show, (*p, c))) for p, c in perm.instances(free_residuated(["A"], 1))]
    [('A/A', 'A\\\\A')]
    """

    name: str
    premises: tuple[Term, ...]
    conclusion: Term

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise QuiversTypeError(f"a schema's name is a non-empty str, got {self.name!r}")
        if not isinstance(self.premises, tuple) or len(self.premises) not in (1, 2):
            count = len(self.premises) if isinstance(self.premises, tuple) else self.premises
            raise InvalidValueError(
                f"schema `{self.name}` has {count} premises; a chart rule has one (unary) or two "
                "(binary, over adjacent constituents)"
            )
        for t in (*self.premises, self.conclusion):
            _check_term(t, f"a pattern of schema `{self.name}`")

    @property
    def arity(self) -> int:
        """How many constituents the rule consumes: 1 or 2."""
        return len(self.premises)

    def atoms(self) -> set[Term]:
        """The constant names in the patterns (the atoms they mention)."""
        out: set[Term] = set()
        for t in (*self.premises, self.conclusion):
            out |= _constants(t)
        return out

    def instances(self, categories: Sequence[Term]) -> list[tuple[tuple[Term, ...], Term]]:
        """The ground rules ``(premises, conclusion)`` whose categories all
        lie in ``categories``, in the order of the premises' categories."""
        inside_ = set(categories)
        bindings: list[dict[Var, Term]] = [{}]
        for pattern in self.premises:
            bindings = [b2 for b in bindings for c in categories
                        if (b2 := match(pattern, c, b)) is not None]
        free = sorted(_variables(self.conclusion) - set().union(*map(_variables, self.premises)),
                      key=lambda v: v.name)
        out = []
        for b in bindings:
            for values in product(categories, repeat=len(free)):
                full = {**b, **dict(zip(free, values))}
                conclusion = substitute(self.conclusion, full)
                if conclusion in inside_:
                    out.append((tuple(substitute(p, full) for p in self.premises), conclusion))
        return out

    def __str__(self) -> str:
        return f"{self.name} : {', '.join(map(show, self.premises))} |- {show(self.conclusion)}"


def _constants(term: Term) -> set[Term]:
    if isinstance(term, Var):
        return set()
    if isinstance(term, tuple):
        return set().union(*map(_constants, term[1:]))
    return {term}


@dataclass(frozen=True)
class Bundle:
    """A named list of schemas (or of other bundles): passing it to a
    :class:`ChartParser` is passing its members.

    Examples
    --------
    >>> X, Y = Var("X"), Var("Y")
    >>> app = Bundle("app", (Schema("fwd", (("Fwd", X, Y), Y), X),))
    >>> [s.name for s in splice([app, Schema("bwd", (Y, ("Bwd", X, Y)), X)])]
    ['fwd', 'bwd']
    """

    name: str
    members: tuple[Schema | Bundle, ...]


def splice(rules: Schema | Bundle | Iterable) -> list[Schema]:
    """The schemas of ``rules``, bundles and nested lists replaced by their
    members, in order."""
    if isinstance(rules, Schema):
        return [rules]
    if isinstance(rules, Bundle):
        return splice(rules.members)
    if isinstance(rules, (str, bytes)) or not isinstance(rules, Iterable):
        raise QuiversTypeError(f"a parser's rules are schemas, bundles or lists of them, got {rules!r}")
    return [s for r in rules for s in splice(r)]


class ChartParser(nn.Module):
    """A weighted chart parser: schemas instantiated over an inventory of
    categories, learnable lexical and rule weights, inside weights by CKY.

    Parameters
    ----------
    rules
        Schemas, bundles, or (nested) lists of them; spliced in order.
    terminals
        The vocabulary: its words in order (word ``i`` is token ``i``), or
        their number.
    start
        The category of a whole sentence.
    categories
        The inventory; by default ``free_residuated(atoms, depth)``.
    atoms, depth
        The generators and depth of the default inventory.
    semiring
        Where weights live; the log weights enter it as a deduction's do
        (:data:`~quivers.deduction.system.FROM_LOG`).
    name
        For messages.
    dense
        Whether the inside pass contracts a dense ``(N, N, N)`` rule tensor
        (:func:`~quivers.deduction.inside`) or gathers the rules one by one
        (:func:`~quivers.deduction.cky.sparse_inside`); by default dense
        while ``N ** 3`` is at most :data:`DENSE_LIMIT`. Both give the same
        weights.

    Attributes
    ----------
    lexical
        ``(V, N)`` log weights of each terminal having each category.
    binary_logits, unary_logits
        One log weight per ground binary and unary rule.
    binary_rules, unary_rules
        The ground rules: ``(schema, premises, conclusion)``.

    Examples
    --------
    >>> X, Y = Var("X"), Var("Y")
    >>> p = ChartParser([Schema("fwd", (("Fwd", X, Y), Y), X)], 2, "S", atoms=["S", "N"])
    >>> [str(show(c)) for c in p.categories][:3], p.n_rules
    (['S', 'N', 'S/S'], 4)
    >>> p(torch.tensor([[0, 1], [1, 1]])).shape
    torch.Size([2])
    """

    def __init__(
        self,
        rules: Schema | Bundle | Iterable,
        terminals: Sequence[str] | int,
        start: Term,
        *,
        categories: Sequence[Term] | None = None,
        atoms: Iterable[Term] | None = None,
        depth: int = 1,
        semiring: Semiring = LOG,
        name: str = "parser",
        dense: bool | None = None,
    ) -> None:
        super().__init__()
        self.name = name
        if semiring not in FROM_LOG:
            raise QuiversTypeError(
                f"parser `{name}` has learnable weights, which `{semiring}` cannot hold",
                hint="use " + ", ".join(map(str, FROM_LOG)),
            )
        self.semiring = semiring
        if categories is None:
            if atoms is None:
                raise QuiversTypeError(f"parser `{name}` needs its `categories`, or the `atoms` to build them")
            categories = free_residuated(atoms, depth)
        self.categories = tuple(dict.fromkeys(categories))
        if not self.categories:
            raise InvalidValueError(f"parser `{name}` has no categories")
        index = {c: i for i, c in enumerate(self.categories)}
        if isinstance(terminals, int) and not isinstance(terminals, bool):
            if terminals < 1:
                raise InvalidValueError(f"parser `{name}` needs at least one terminal, got {terminals}")
            self.terminals: tuple[str | int, ...] = tuple(range(terminals))
        else:
            self.terminals = tuple(terminals)
            if not self.terminals or len(set(self.terminals)) != len(self.terminals):
                raise InvalidValueError(f"the terminals of parser `{name}` must be distinct and at least one")
        if start not in index:
            known = [show(c) for c in self.categories if not isinstance(c, tuple)]
            raise UnknownNameError(f"the start category `{show(start)}` of parser `{name}` is not one of "
                                   f"its {len(self.categories)} categories", name=show(start), candidates=known)
        self.start = start
        self.schemas = tuple(splice(rules))
        names = [s.name for s in self.schemas]
        duplicate = next((n for n in names if names.count(n) > 1), None)
        if duplicate is not None:
            raise InvalidValueError(f"schema `{duplicate}` is given twice to parser `{name}`",
                                    hint="a bundle's members are spliced in: list each schema once")
        atoms_ = {a for c in self.categories for a in _constants(c)}
        binary, unary = [], []
        for s in self.schemas:
            unknown = sorted(map(str, s.atoms() - atoms_))
            if unknown:
                raise UnknownNameError(f"schema `{s.name}` names `{unknown[0]}`, which is no atom of parser "
                                       f"`{name}`", name=unknown[0], candidates=sorted(map(str, atoms_)))
            found = s.instances(self.categories)
            if not found:
                raise InvalidValueError(
                    f"schema `{s.name}` has no instance among the {len(self.categories)} categories of "
                    f"parser `{name}`", hint="raise the depth of the categories",
                )
            (binary if s.arity == 2 else unary).extend((s.name, p, c) for p, c in found)
        self.binary_rules = tuple(binary)
        self.unary_rules = tuple(unary)
        self.register_buffer("_binary_index", torch.tensor(
            [[index[c], index[p[0]], index[p[1]]] for _, p, c in binary], dtype=torch.long).reshape(-1, 3))
        self.register_buffer("_unary_index", torch.tensor(
            [[index[c], index[p[0]]] for _, p, c in unary], dtype=torch.long).reshape(-1, 2))
        n = len(self.categories)
        self.dense = n ** 3 <= DENSE_LIMIT if dense is None else bool(dense)
        self.lexical = nn.Parameter(torch.zeros(len(self.terminals), n, dtype=torch.float64))
        self.binary_logits = nn.Parameter(torch.zeros(len(binary), dtype=torch.float64))
        self.unary_logits = nn.Parameter(torch.zeros(len(unary), dtype=torch.float64))

    @property
    def n_rules(self) -> int:
        """The number of ground binary rules."""
        return len(self.binary_rules)

    @property
    def n_unary_rules(self) -> int:
        """The number of ground unary rules."""
        return len(self.unary_rules)

    def tensors(self, binary: bool = True) -> tuple[Tensor | None, Tensor, Tensor | None]:
        """``binary`` ``(N, N, N)`` (``None`` when not asked for),
        ``lexical`` ``(N, V)`` and ``unary`` ``(N, N)`` (``None`` without
        unary rules) in the semiring, as :func:`~quivers.deduction.inside`
        takes them; instances of several schemas with the same premises and
        conclusion add."""
        s, to, n = self.semiring, FROM_LOG[self.semiring], len(self.categories)
        a, b, c = self._binary_index.unbind(-1)
        dense = s.fibre_sum((a * n + b) * n + c, to(self.binary_logits), n ** 3).reshape(n, n, n) if binary else None
        unary = None
        if self.unary_rules:
            a, b = self._unary_index.unbind(-1)
            unary = s.fibre_sum(a * n + b, to(self.unary_logits), n * n).reshape(n, n)
        return dense, to(self.lexical).t(), unary

    def forward(self, tokens: Tensor, lengths: Tensor | Sequence[int] | None = None) -> Tensor:
        """The weight of each sentence: ``tokens`` is ``(batch, n)`` token
        indices (a weight per sentence) or ``(n,)`` (one weight)."""
        root = self.categories.index(self.start)
        if self.dense:
            binary, lexical, unary = self.tensors()
            total = inside(binary, lexical, tokens, root=root, lengths=lengths, semiring=self.semiring,
                           unary=unary).total
        else:
            to = FROM_LOG[self.semiring]
            unary = self.tensors(binary=False)[2]
            total = sparse_inside(self._binary_index, to(self.binary_logits), to(self.lexical).t(), tokens,
                                  root=root, lengths=lengths, semiring=self.semiring, unary=unary).total
        return total[0] if isinstance(tokens, Tensor) and tokens.dim() == 1 else total

    def encode(self, words: Sequence[str | int]) -> Tensor:
        """A sentence's token indices."""
        index = {t: i for i, t in enumerate(self.terminals)}
        for w in words:
            if w not in index:
                raise UnknownNameError(f"the word `{w}` is not a terminal of parser `{self.name}`",
                                       name=str(w), candidates=[str(t) for t in self.terminals])
        return torch.tensor([index[w] for w in words], dtype=torch.long)

    def weight(self, words: Sequence[str | int]) -> Tensor:
        """The weight of one sentence given as words."""
        if isinstance(words, str) or not words:
            raise InvalidValueError(f"parser `{self.name}` weighs a non-empty sequence of words, got {words!r}")
        return self(self.encode(words))

    def to_deduction(self) -> Deduction:
        """The same grammar, at the current weights, as a
        :class:`~quivers.deduction.Deduction` over ``span`` items: a rule
        ``{schema}_{k}`` per instance and a learnable lexicon entry per
        terminal and category. The agenda engine then gives what the chart
        does not keep, such as the best derivation itself
        (:meth:`Deduction.best`, in ``MAX_PLUS``).

        Examples
        --------
        >>> from quivers.categories import MAX_PLUS
        >>> X, Y = Var("X"), Var("Y")
        >>> p = ChartParser([Schema("bwd", (Y, ("Bwd", X, Y)), X)], ["she", "runs"], "S",
        ...                 atoms=["NP", "S"], semiring=MAX_PLUS)
        >>> with torch.no_grad():
        ...     p.lexical[1, p.categories.index(("Bwd", "S", "NP"))] = 1.0
        >>> print(p.to_deduction().best(["she", "runs"]))
        span(0, 2, S) <- bwd_1(span(0, 1, NP), span(1, 2, NP\\S))
        """
        counter: dict[str, int] = {}
        rules, logits = [], []
        for (schema, premises, conclusion), logit in zip(
            self.binary_rules + self.unary_rules, torch.cat([self.binary_logits, self.unary_logits]).detach()
        ):
            k = counter.get(schema, 0)
            counter[schema] = k + 1
            rules.append(Rule(f"{schema}_{k}", premises, conclusion))
            logits.append(logit)
        lexicon = [Entry(w, c, learnable=True) for w in self.terminals for c in self.categories]
        d = Deduction(f"{self.name}_deduction", span_rules(rules), lexicon, start=self.start,
                      semiring=self.semiring, learnable=[r.name for r in rules])
        with torch.no_grad():
            for r, logit in zip(rules, logits):
                d.rule_logits[r.name].copy_(logit)
            d.entry_logits.copy_(self.lexical.detach().reshape(-1))
        return d

    def __repr__(self) -> str:
        return (f"ChartParser({self.name!r}, schemas=[{', '.join(s.name for s in self.schemas)}], "
                f"categories={len(self.categories)}, terminals={len(self.terminals)}, "
                f"start={show(self.start)}, semiring={self.semiring})")
