"""Weighted deduction by forward chaining: rules ``premises |- conclusion``
over terms with variables, in any semiring.

A term is an atom (a ``str`` or an ``int``), a :class:`Var`, or a compound
``(functor, arg, ...)``, a tuple whose first entry is a ``str``. A
:class:`Rule` derives its conclusion from ground instances of its premises;
a variable of the conclusion that no premise binds ranges over ``atoms``.
Axioms are ground terms with weights.

:func:`deduce` runs in two passes. The first chains forward from the axioms
with an agenda: each item taken off it is matched against every premise of
every rule, joined with the items already derived, and the conclusions not
seen before go on the agenda. It records every instantiated rule (a
hyperedge) and drops conclusions deeper than ``max_depth``. The second
computes the weight of every item in the semiring: the sum, over its
hyperedges, of the rule weight times the premises' weights (plus its axiom
weight), one strongly connected component of items at a time, premises
first. A cyclic component is relaxed to its fixed point in an idempotent
semiring; in ``LOG``, ``PROB`` and ``REAL``, when every hyperedge uses at
most one item of the cycle (unary cycles such as type raising and
lowering), the infinite sum over its derivations is the solution of a
linear system, ``x = b + A x``, and a cycle whose weight is not below one
(spectral radius of ``A``) is refused at once, since that sum is infinite.

Laws
----
- The weight of an item is the semiring sum, over its derivations (trees of
  hyperedges ending in axioms), of the product of their weights.
- On the rules of a grammar in Chomsky normal form over spans, the weights
  agree with the tensorized inside pass (:func:`quivers.deduction.inside`).

Examples
--------
>>> import torch
>>> from quivers.categories import PROB
>>> X = Var("X"); Y = Var("Y"); Z = Var("Z")
>>> rules = [Rule("step", (("edge", X, Y),), ("path", X, Y)),
...          Rule("join", (("path", X, Y), ("edge", Y, Z)), ("path", X, Z))]
>>> axioms = {("edge", "a", "b"): torch.tensor(0.5), ("edge", "b", "c"): torch.tensor(0.5)}
>>> deduce(rules, axioms, PROB)[("path", "a", "c")]
tensor(0.2500)
"""

from __future__ import annotations

import math
from collections import defaultdict, deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import product
from typing import Union

import torch
from torch import Tensor

from quivers.categories.semiring import Semiring
from quivers.errors import InvalidValueError, QuiversTypeError, UnknownNameError, UnsupportedError

__all__ = ["Var", "Term", "Rule", "Hyperedge", "Derivation", "Derivations", "deduce", "show", "depth"]


@dataclass(frozen=True, slots=True)
class Var:
    """A variable of a rule.

    Examples
    --------
    >>> Var("X")
    Var(name='X')
    """

    name: str


Term = Union[str, int, Var, tuple]


@dataclass(frozen=True)
class Rule:
    """``premises |- conclusion``, named; its weight is given to :func:`deduce`.

    Examples
    --------
    >>> print(Rule("fwd", (("Fwd", Var("X"), Var("Y")), Var("Y")), Var("X")))
    fwd : X/Y, Y |- X
    """

    name: str
    premises: tuple[Term, ...]
    conclusion: Term

    def variables(self) -> set[Var]:
        """Every variable of the rule."""
        out: set[Var] = set()
        for term in (*self.premises, self.conclusion):
            out |= _variables(term)
        return out

    def __str__(self) -> str:
        return f"{self.name} : {', '.join(map(show, self.premises))} |- {show(self.conclusion)}"


@dataclass(frozen=True)
class Hyperedge:
    """One instance of a rule: ground premises and conclusion."""

    rule: str
    premises: tuple[Term, ...]
    conclusion: Term


def show(term: Term) -> str:
    """Write a term: the slash categories ``Fwd(X, Y)`` as ``X/Y`` and
    ``Bwd(X, Y)`` as ``Y\\X`` (both an ``X`` missing a ``Y``, on the right
    and on the left), other compounds as calls.

    Examples
    --------
    >>> show(("Fwd", ("Bwd", "S", "NP"), "NP"))
    '(NP\\\\S)/NP'
    >>> show(("span", 0, 2, "S"))
    'span(0, 2, S)'
    """
    if isinstance(term, Var):
        return term.name
    if isinstance(term, tuple):
        functor, *args = term
        if functor == "Fwd" and len(args) == 2:
            return f"{_operand(args[0])}/{_operand(args[1])}"
        if functor == "Bwd" and len(args) == 2:
            return f"{_operand(args[1])}\\{_operand(args[0])}"
        return f"{functor}({', '.join(map(show, args))})"
    return str(term)


def _operand(term: Term) -> str:
    text = show(term)
    return f"({text})" if isinstance(term, tuple) and term[0] in ("Fwd", "Bwd") else text


def depth(term: Term) -> int:
    """Nesting depth: atoms and variables 0, a compound one more than its
    deepest argument.

    Examples
    --------
    >>> depth(("Fwd", ("Fwd", "S", "NP"), "NP"))
    2
    """
    if isinstance(term, tuple):
        return 1 + max((depth(a) for a in term[1:]), default=0)
    return 0


def _variables(term: Term) -> set[Var]:
    if isinstance(term, Var):
        return {term}
    if isinstance(term, tuple):
        out: set[Var] = set()
        for a in term[1:]:
            out |= _variables(a)
        return out
    return set()


def _check_term(term: object, what: str) -> None:
    if isinstance(term, Var) or (isinstance(term, (str, int)) and not isinstance(term, bool)):
        return
    if isinstance(term, tuple) and term and isinstance(term[0], str):
        for a in term[1:]:
            _check_term(a, what)
        return
    raise QuiversTypeError(
        f"{what} `{term!r}` is not a term: use an atom (str or int), a Var, "
        "or a tuple (functor, arg, ...) with a str functor"
    )


def _ground(term: Term) -> bool:
    return not _variables(term)


def match(pattern: Term, term: Term, binding: dict[Var, Term]) -> dict[Var, Term] | None:
    """Extend ``binding`` so that ``pattern`` instantiates to the ground
    ``term``, or return ``None``.

    Examples
    --------
    >>> match(("Fwd", Var("X"), Var("Y")), ("Fwd", "S", "NP"), {})
    {Var(name='X'): 'S', Var(name='Y'): 'NP'}
    """
    if isinstance(pattern, Var):
        if pattern in binding:
            return binding if binding[pattern] == term else None
        return {**binding, pattern: term}
    if isinstance(pattern, tuple):
        if not isinstance(term, tuple) or len(term) != len(pattern) or term[0] != pattern[0]:
            return None
        for p, t in zip(pattern[1:], term[1:]):
            binding = match(p, t, binding)
            if binding is None:
                return None
        return binding
    return binding if type(pattern) is type(term) and pattern == term else None


def substitute(term: Term, binding: Mapping[Var, Term]) -> Term:
    """Replace the bound variables of ``term``."""
    if isinstance(term, Var):
        return binding.get(term, term)
    if isinstance(term, tuple):
        return (term[0], *(substitute(a, binding) for a in term[1:]))
    return term


class _Index:
    """The derived items, found by functor, arity and any atomic argument."""

    def __init__(self) -> None:
        self.every: list[Term] = []
        self.by_key: dict[tuple, list[Term]] = defaultdict(list)

    def add(self, item: Term) -> None:
        self.every.append(item)
        head = _head(item)
        self.by_key[head].append(item)
        if isinstance(item, tuple):
            for i, a in enumerate(item[1:]):
                if not isinstance(a, tuple):
                    self.by_key[(*head, i, a)].append(item)

    def candidates(self, pattern: Term) -> list[Term]:
        if isinstance(pattern, Var):
            return self.every
        head = _head(pattern)
        if isinstance(pattern, tuple):
            for i, a in enumerate(pattern[1:]):
                if not isinstance(a, (tuple, Var)):
                    return self.by_key.get((*head, i, a), [])
        return self.by_key.get(head, [])


def _head(term: Term) -> tuple:
    if isinstance(term, tuple):
        return ("c", term[0], len(term))
    return ("a", term)


@dataclass(frozen=True)
class Derivation:
    """One derivation of ``item``: the ``rule`` that concluded it from the
    derivations of its premises (``children``), or ``rule=None`` for an axiom.

    Examples
    --------
    >>> leaf = Derivation(("edge", "a", "b"), None)
    >>> print(Derivation(("path", "a", "b"), "step", (leaf,)))
    path(a, b) <- step(edge(a, b))
    """

    item: Term
    rule: str | None
    children: tuple[Derivation, ...] = ()

    def __str__(self) -> str:
        if self.rule is None:
            return show(self.item)
        return f"{show(self.item)} <- {self.rule}({', '.join(map(str, self.children))})"


class Derivations:
    """The result of :func:`deduce`: every derived item, its hyperedges and
    its weight.

    ``d[item]`` is the weight of a ground item (``zero`` if it was not
    derived); ``item in d`` says whether it was; ``d.items`` lists them in
    the order they were derived; ``d.edges[item]`` its hyperedges;
    ``d.best(item)`` its best derivation in a semiring whose addition selects.
    """

    def __init__(self, items, edges, weights, semiring: Semiring, like: Tensor,
                 axioms: Mapping[Term, Tensor] | None = None,
                 rule_weights: Mapping[str, Tensor] | None = None) -> None:
        self.items: list[Term] = items
        self.edges: dict[Term, list[Hyperedge]] = edges
        self.weights: dict[Term, Tensor] = weights
        self.semiring = semiring
        self._like = like
        self._axioms = dict(axioms or {})
        self._rule_weights = dict(rule_weights or {})

    def __contains__(self, item: object) -> bool:
        return item in self.weights

    def __getitem__(self, item: Term) -> Tensor:
        if item in self.weights:
            return self.weights[item]
        return self._like.new_tensor(self.semiring.zero)

    def __len__(self) -> int:
        return len(self.items)

    def best(self, item: Term) -> Derivation | None:
        """The derivation of ``item`` whose weight is the item's, by following
        at each item the hyperedge (or axiom) that attains it: the Viterbi
        derivation, in a semiring whose addition selects one of its
        arguments (``MAX_PLUS``, ``MIN_PLUS``, ``MAX_TIMES``, ``BOOL``, ...).
        ``None`` when the item has no derivation.

        Examples
        --------
        >>> from quivers.categories import MAX_PLUS
        >>> X, Y, Z = Var("X"), Var("Y"), Var("Z")
        >>> rules = [Rule("step", (("edge", X, Y),), ("path", X, Y)),
        ...          Rule("join", (("path", X, Y), ("edge", Y, Z)), ("path", X, Z))]
        >>> axioms = {("edge", "a", "b"): torch.tensor(-1.0), ("edge", "b", "c"): torch.tensor(-1.0),
        ...           ("edge", "a", "c"): torch.tensor(-3.0)}
        >>> print(deduce(rules, axioms, MAX_PLUS).best(("path", "a", "c")))
        path(a, c) <- join(path(a, b) <- step(edge(a, b)), edge(b, c))
        """
        reduce = self.semiring.plus.reduce_nonempty
        if reduce not in (torch.amax, torch.amin, torch.any):
            raise UnsupportedError(
                f"a best derivation needs a semiring whose addition selects an argument; "
                f"`{self.semiring}` adds", hint="use MAX_PLUS on log weights",
            )
        zero = self._like.new_tensor(self.semiring.zero)
        one = self._like.new_tensor(self.semiring.one)

        def go(item: Term, path: frozenset) -> Derivation | None:
            target = self[item]
            if bool(target == zero):
                return None
            if item in self._axioms and bool(self._axioms[item] == target):
                return Derivation(item, None)
            for edge in self.edges.get(item, ()):
                if path.intersection(edge.premises):
                    continue  # a cycle attains no more than the path without it
                value = self._rule_weights.get(edge.rule, one)
                for premise in edge.premises:
                    value = self.semiring.mul(value, self[premise])
                if bool(value == target):
                    children = tuple(go(p, path | {item}) for p in edge.premises)
                    if all(c is not None for c in children):
                        return Derivation(item, edge.rule, children)  # type: ignore[arg-type]
            return None

        with torch.no_grad():
            return go(item, frozenset())


def deduce(
    rules: Sequence[Rule],
    axioms: Mapping[Term, Tensor],
    semiring: Semiring,
    *,
    weights: Mapping[str, Tensor] | None = None,
    atoms: Iterable[Term] = (),
    max_depth: int | None = None,
    max_items: int = 100_000,
    tolerance: float | None = None,
    bounded: Iterable[str] | None = None,
) -> Derivations:
    """Derive every item from ``axioms`` by ``rules`` and weigh it in ``semiring``.

    Parameters
    ----------
    rules
        The rules; a rule's weight is ``weights[rule.name]`` (``one`` when
        absent).
    axioms
        Ground items and their weights.
    atoms
        What a conclusion's variables range over when no premise binds them.
    max_depth
        Conclusions deeper than this (see :func:`depth`) are not derived.
    bounded
        The names of the rules ``max_depth`` bounds (QVR's ``#[bounded]``);
        ``None``, the default, bounds every rule. A rule that builds larger
        terms without end (a type-raising tower) is bounded while the others
        derive freely.
    max_items
        A bound on the number of items, against rules that derive forever.
    tolerance
        Cyclic derivations in a semiring whose addition is not idempotent,
        and that no linear system sums (a rule uses two items of the
        cycle), are summed by iterating the weights until no item changes
        by more than this (they are refused without it).

    Examples
    --------
    >>> from quivers.categories import MAX_PLUS
    >>> X = Var("X")
    >>> rules = [Rule("succ", (("n", X),), ("n", ("s", X)))]
    >>> d = deduce(rules, {("n", "0"): torch.tensor(0.0)}, MAX_PLUS,
    ...            weights={"succ": torch.tensor(-1.0)}, max_depth=3)
    >>> d[("n", ("s", ("s", "0")))], len(d)
    (tensor(-2.), 3)
    """
    weights = dict(weights or {})
    names = {rule.name for rule in rules}
    for name in weights:
        if name not in names:
            raise UnknownNameError(f"a weight is given for the unknown rule `{name}`", name=name,
                                   candidates=sorted(names))
    for rule in rules:
        for term in (*rule.premises, rule.conclusion):
            _check_term(term, f"in rule `{rule.name}`, the term")
    for item in axioms:
        _check_term(item, "the axiom")
        if not _ground(item):
            raise QuiversTypeError(f"the axiom `{show(item)}` has variables; axioms must be ground")
    atoms = list(atoms)
    if bounded is not None:
        bounded = set(bounded)
        for name in bounded - names:
            raise UnknownNameError(f"no rule `{name}` to bound", name=name, candidates=sorted(names))
    try:
        items, edges = _chain(rules, list(axioms), atoms, max_depth, max_items, bounded)
    except RecursionError:
        raise InvalidValueError(
            "deduction derived terms too deep to follow; a rule builds larger terms without end",
            hint="bound it with `max_depth` (and, if `bounded` names rules, include that one)",
        ) from None
    like = next(iter(axioms.values())) if axioms else torch.zeros(())
    values = _weigh(items, edges, axioms, weights, semiring, like, tolerance)
    return Derivations(items, edges, values, semiring, like, axioms, weights)


def _chain(rules, axioms, atoms, max_depth, max_items, bounded=None):
    index = _Index()
    seen: set[Term] = set()
    order: list[Term] = []
    edges: dict[Term, list[Hyperedge]] = defaultdict(list)
    found: set[Hyperedge] = set()
    agenda: deque[Term] = deque(axioms)
    free = {rule.name: sorted(_variables(rule.conclusion) - set().union(*map(_variables, rule.premises)),
                              key=lambda v: v.name) for rule in rules}
    for rule in rules:
        if free[rule.name] and not atoms:
            raise InvalidValueError(
                f"the conclusion of rule `{rule.name}` has variables no premise binds "
                f"({', '.join(v.name for v in free[rule.name])}) and no atoms are declared for them"
            )

    def conclude(rule: Rule, binding: dict[Var, Term], premises: tuple[Term, ...]) -> None:
        for values in product(atoms, repeat=len(free[rule.name])):
            full = {**binding, **dict(zip(free[rule.name], values))}
            conclusion = substitute(rule.conclusion, full)
            if max_depth is not None and (bounded is None or rule.name in bounded) \
                    and depth(conclusion) > max_depth:
                continue
            edge = Hyperedge(rule.name, premises, conclusion)
            if edge in found:
                continue
            found.add(edge)
            edges[conclusion].append(edge)
            if conclusion not in seen:
                agenda.append(conclusion)

    for rule in rules:  # rules without premises fire once
        if not rule.premises:
            conclude(rule, {}, ())
    while agenda:
        item = agenda.popleft()
        if item in seen:
            continue
        seen.add(item)
        order.append(item)
        if len(order) > max_items:
            raise InvalidValueError(
                f"deduction derived more than {max_items} items; bound it with `max_depth`",
                hint="or raise `max_items`",
            )
        index.add(item)
        for rule in rules:
            for position, pattern in enumerate(rule.premises):
                binding = match(pattern, item, {})
                if binding is None:
                    continue
                for full, premises in _join(rule.premises, position, item, binding, index):
                    conclude(rule, full, premises)
    return order, dict(edges)


def _join(premises, position, item, binding, index):
    """Every way to match the other premises with derived items."""
    chosen: list[Term] = [None] * len(premises)  # type: ignore[list-item]
    chosen[position] = item
    rest = [i for i in range(len(premises)) if i != position]

    def go(k: int, binding: dict[Var, Term]):
        if k == len(rest):
            yield binding, tuple(chosen)
            return
        i = rest[k]
        pattern = substitute(premises[i], binding)
        for candidate in index.candidates(pattern):
            extended = match(pattern, candidate, binding)
            if extended is not None:
                chosen[i] = candidate
                yield from go(k + 1, extended)

    yield from go(0, binding)


def _weigh(items, edges, axioms, weights, semiring: Semiring, like: Tensor,
           tolerance: float | None) -> dict[Term, Tensor]:
    zero = like.new_tensor(semiring.zero)
    one = like.new_tensor(semiring.one)
    values: dict[Term, Tensor] = {}

    def relax(item: Term) -> Tensor:
        total = axioms[item] if item in axioms else zero
        for edge in edges.get(item, ()):
            term = weights.get(edge.rule, one)
            for premise in edge.premises:
                term = semiring.mul(term, values.get(premise, zero))
            total = semiring.add(total, term)
        return total

    for component in _components(items, edges):
        members = set(component)
        if len(component) == 1 and not any(
            component[0] in edge.premises for edge in edges.get(component[0], ())
        ):
            values[component[0]] = relax(component[0])
            continue
        cycle = sorted({e.rule for i in component for e in edges.get(i, ()) if members & set(e.premises)})
        if not semiring.idempotent and semiring.name in _SERIES and like.dim() == 0 \
                and _linear(component, edges, members):
            values.update(_solve(component, members, edges, axioms, weights, semiring, values,
                                 zero, one, cycle))
            continue
        if not semiring.idempotent and tolerance is None:
            raise UnsupportedError(
                f"the derivations of `{show(component[0])}` are cyclic (rules "
                f"{', '.join(f'`{r}`' for r in cycle)}) and a rule uses two items of the cycle, so "
                f"`{semiring}` sums over infinitely many of them without a closed form",
                hint="give a `tolerance` to sum them to a fixed point, use an idempotent semiring "
                "(BOOL, MAX_PLUS, ...), or remove the cycle",
            )
        _iterate(component, values, relax, semiring, tolerance, cycle)
    return values


_SERIES = ("LOG", "PROB", "REAL")
"""The semirings whose cyclic linear systems are solved in closed form: the
sum ``b + A b + A^2 b + ...`` is ``(I - A)^-1 b`` when it converges."""

_MAX_ROUNDS = 10_000


def _linear(component, edges, members) -> bool:
    """Whether every hyperedge into the component uses at most one of its items."""
    return all(
        sum(p in members for p in edge.premises) <= 1 for item in component for edge in edges.get(item, ())
    )


def _solve(component, members, edges, axioms, weights, semiring, values, zero, one, cycle):
    """The weights of a strongly connected component whose hyperedges are
    linear in it, as the solution of ``x = b + A x``: ``b`` gathers the
    axioms and the hyperedges from outside the component, ``A[i, j]`` the
    hyperedges into item ``i`` that use item ``j`` of the component. The sum
    over the derivations converges exactly when the spectral radius of
    ``A`` (as probabilities) is below one; otherwise it is refused at once."""
    where = {item: k for k, item in enumerate(component)}
    n = len(component)
    b = [axioms[item] if item in axioms else zero for item in component]
    a = [[zero] * n for _ in range(n)]
    for item in component:
        i = where[item]
        for edge in edges.get(item, ()):
            term = weights.get(edge.rule, one)
            inner = None
            for premise in edge.premises:
                if premise in members:
                    inner = where[premise]
                else:
                    term = semiring.mul(term, values.get(premise, zero))
            if inner is None:
                b[i] = semiring.add(b[i], term)
            else:
                a[i][inner] = semiring.add(a[i][inner], term)
    b_t = torch.stack(b)
    a_t = torch.stack([torch.stack(row) for row in a])
    if semiring.name == "LOG":
        finite = b_t.detach()[torch.isfinite(b_t.detach())]
        shift = finite.max() if finite.numel() else b_t.new_zeros(())
        b_p, a_p = torch.exp(b_t - shift), torch.exp(a_t)
    else:
        b_p, a_p = b_t, a_t
    radius = float(torch.linalg.eigvals(a_p.detach().double()).abs().max()) \
        if bool(torch.isfinite(a_p.detach()).all()) else math.inf
    if not radius < 1 - 1e-9:
        rules = ", ".join(f"`{r}`" for r in cycle)
        raise InvalidValueError(
            f"the derivations of `{show(component[0])}` go round a cycle of rules {rules} whose "
            f"weight is not below one (spectral radius {radius:.3g}), so their sum in `{semiring}` "
            "is infinite",
            hint="mark the rules of the cycle `#[learnable, bounded]` (a bounded learnable rule "
            "weighs below one, so the sum converges; `bounded=` in Python), give them weights whose "
            "product round the cycle is below one (log weights below zero), use an idempotent "
            "semiring (Viterbi, Boolean), or remove the cycle",
        )
    x = torch.linalg.solve(torch.eye(n, dtype=a_p.dtype) - a_p, b_p)
    if semiring.name == "LOG":
        x = torch.log(x.clamp_min(0.0)) + shift
    return {item: x[where[item]] for item in component}


def _iterate(component, values, relax, semiring, tolerance, cycle) -> None:
    """Relax the items of a cyclic component until no weight changes by more
    than ``tolerance``: exact after ``len(component) + 1`` rounds in an
    idempotent semiring unless a cycle gains weight every time round."""
    rounds = len(component) + 1 if semiring.idempotent else _MAX_ROUNDS
    for _ in range(rounds):
        change = 0.0
        for item in component:
            new = relax(item)
            if item in values:
                change = max(change, _distance(new, values[item]))
            else:
                change = math.inf
            values[item] = new
        if change <= (tolerance or 0.0):
            return
        if any(_unbounded(values[item]) for item in component):
            break
    rules = ", ".join(f"`{r}`" for r in cycle)
    raise InvalidValueError(
        f"the weights of the cyclic derivations of `{show(component[0])}` (rules {rules}) do not "
        f"converge in `{semiring}`: a cycle adds weight every time round",
        hint="lower the weights of the rules of the cycle, or remove the cycle",
    )


def _unbounded(value: Tensor) -> bool:
    return value.dtype != torch.bool and bool(torch.isinf(value.detach()).any() & (value.detach() > 0).any())


def _distance(a: Tensor, b: Tensor) -> float:
    if a.dtype == torch.bool:
        return 0.0 if bool(a == b) else math.inf
    a, b = a.detach(), b.detach()
    if bool(a == b):  # equal infinities too
        return 0.0
    return float((a - b).abs())


def _components(items, edges) -> list[list[Term]]:
    """The strongly connected components of the items (an item points at the
    premises of its hyperedges), premises' components first (Tarjan's
    algorithm, without recursion)."""
    index: dict[Term, int] = {}
    low: dict[Term, int] = {}
    on_stack: set[Term] = set()
    stack: list[Term] = []
    out: list[list[Term]] = []
    for root in items:
        if root in index:
            continue
        work = [(root, iter(_premises(edges, root)))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(_premises(edges, child))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    out.append(component)
    return out


def _premises(edges, item) -> list[Term]:
    return [p for edge in edges.get(item, ()) for p in edge.premises]
