"""A deduction system as a torch module: rules over ``span`` items, a
lexicon, a start category and learnable weights.

A :class:`Deduction` is what a QVR ``deduction`` block compiles to. Its
rules are :class:`~quivers.deduction.agenda.Rule` values over items
``span(i, j, category)``; its lexicon gives each word its categories, the
axioms ``span(i, i + 1, category)``. A learnable rule or entry holds one
log weight, a parameter starting at ``0``; the others weigh ``one``. The
weights enter the semiring through :data:`FROM_LOG`: as they stand in
``LOG`` and ``MAX_PLUS``, exponentiated in ``PROB`` and ``MAX_TIMES``, and
as "is possible" in ``BOOL``. The weight of a sentence is the weight of
``span(0, n, start)``, by the agenda engine, so gradients reach every
learnable weight.

Laws
----
- In ``LOG`` the weight of a sentence is the log of the sum, over its
  derivations, of the exponentiated sum of their weights; in ``PROB`` with
  no learnable weights it counts the derivations; in ``BOOL`` it says
  whether there is one.

Examples
--------
>>> from quivers.deduction.agenda import Var
>>> I, J, K = Var("I"), Var("J"), Var("K")
>>> rules = [Rule("s", (("span", I, K, "NP"), ("span", K, J, "VP")), ("span", I, J, "S"))]
>>> lexicon = [Entry("she", "NP"), Entry("runs", "VP")]
>>> d = Deduction("D", rules, lexicon, start="S", semiring=BOOL)
>>> d.weight(["she", "runs"]), d.weight(["runs", "she"])
(tensor(True), tensor(False))
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from quivers.categories.semiring import (
    BOOL, LOG, MAX_PLUS, MAX_TIMES, MIN_PLUS, PROB, SEMIRINGS, Semiring,
)
from quivers.deduction.agenda import Derivation, Derivations, Rule, Term, deduce, show
from quivers.deduction.parsing import lexical_axioms
from quivers.errors import DataError, InvalidValueError, QuiversTypeError, UnknownNameError, UnsupportedError

__all__ = ["Entry", "Deduction", "SEMIRING_NAMES", "FROM_LOG"]

SEMIRING_NAMES: dict[str, Semiring] = {
    "LogProb": LOG,
    "Viterbi": MAX_PLUS,
    "Boolean": BOOL,
    "Counting": PROB,
    **{s.name: s for s in SEMIRINGS},
}
"""The semirings a deduction names: the constants, and the aliases of the
QVR ``semiring=`` option (``LogProb``, ``Viterbi``, ``Boolean``,
``Counting``)."""

FROM_LOG: dict[Semiring, Callable[[Tensor], Tensor]] = {
    LOG: lambda t: t,
    MAX_PLUS: lambda t: t,
    MIN_PLUS: lambda t: -t,
    PROB: torch.exp,
    MAX_TIMES: torch.exp,
    BOOL: lambda t: t > -math.inf,
}
"""How a log weight becomes a weight of each semiring that has learnable
weights (``MIN_PLUS`` reads it as a cost, its negation)."""


@dataclass(frozen=True)
class Entry:
    """A lexicon entry: ``word`` has ``category`` and a ``meaning`` (a term:
    part of the word's items when the rules carry meanings in
    ``span(i, j, category, meaning)``, kept for the reader otherwise);
    ``learnable`` gives it a log weight.

    Examples
    --------
    >>> Entry("the", ("Fwd", "NP", "N"), "the", learnable=True)
    Entry(word='the', category=('Fwd', 'NP', 'N'), meaning='the', learnable=True)
    """

    word: str
    category: Term
    meaning: Term | None = None
    learnable: bool = False


class Deduction(nn.Module):
    """Weighted deduction over spans of a sentence.

    Parameters
    ----------
    name
        The name, for messages.
    rules
        Rules over ``span(i, j, category)`` items, or over
        ``span(i, j, category, meaning)`` items: when a rule names a
        ``span`` of four arguments, a word's axioms carry its entry's
        meaning (the word itself when the entry gives none), and a sentence
        weighs the sum over every meaning of its goal.
    lexicon
        The :class:`Entry` values.
    start
        The category of a whole sentence; ``None`` for a deduction that
        weighs no sentence but closes given axioms (:meth:`close`).
    semiring
        Where the weights live.
    atoms
        What unbound variables of a conclusion range over.
    max_depth
        Categories deeper than this are not derived (a ``span`` item is one
        deeper than its category).
    bounded
        The names of the rules ``max_depth`` bounds (``#[bounded]`` in QVR);
        ``None`` bounds every rule. A bounded rule that is also learnable
        has its weight capped: its log weight is ``-softplus(p) - log(n)``
        for its parameter ``p`` (starting at ``0``) and ``n`` the number of
        such rules, so it stays below ``1 / n`` and the weight an item
        passes on through them is below one. A cycle of unary bounded rules
        (``A |- Dia(A)``, ``Dia(A) |- A``) then has a finite sum over its
        derivations in ``LOG`` at every value of the parameters.
    learnable
        The names of the rules with a log weight.
    tolerance
        For cyclic rules in a semiring that adds (``LOG``, ``PROB``): the
        weights are iterated until no item changes by more than this.

    Examples
    --------
    >>> from quivers.deduction.agenda import Var
    >>> X, I, J = Var("X"), Var("I"), Var("J")
    >>> rules = [Rule("both", (("span", I, Var("K"), X), ("span", Var("K"), J, X)), ("span", I, J, X))]
    >>> d = Deduction("D", rules, [Entry("a", "A")], start="A", semiring=PROB)
    >>> int(d.weight(["a"] * 4))   # the 5 bracketings of four words
    5
    """

    def __init__(
        self,
        name: str,
        rules: Sequence[Rule],
        lexicon: Sequence[Entry],
        *,
        start: Term | None,
        semiring: Semiring = LOG,
        atoms: Iterable[Term] = (),
        max_depth: int | None = None,
        learnable: Iterable[str] = (),
        tolerance: float | None = None,
        bounded: Iterable[str] | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(semiring, Semiring):
            raise QuiversTypeError(f"`semiring` of deduction `{name}` must be a Semiring, got {semiring!r}")
        self.name = name
        self.rules = tuple(rules)
        self.lexicon = tuple(lexicon)
        self.start = start
        self.semiring = semiring
        self.atoms = tuple(atoms)
        self.max_depth = max_depth
        self.tolerance = tolerance
        names = [r.name for r in self.rules]
        duplicate = next((n for n in names if names.count(n) > 1), None)
        if duplicate is not None:
            raise InvalidValueError(f"deduction `{name}` has two rules named `{duplicate}`")
        learnable = tuple(learnable)
        for rule in learnable:
            if rule not in names:
                raise UnknownNameError(f"deduction `{name}` has no rule `{rule}` to learn",
                                       name=rule, candidates=names)
        learns = bool(learnable) or any(e.learnable for e in self.lexicon)
        if learns and semiring not in FROM_LOG:
            raise QuiversTypeError(
                f"deduction `{name}` has learnable weights, which `{semiring}` cannot hold",
                hint="use " + ", ".join(map(str, FROM_LOG)),
            )
        self.learnable = learnable
        self.bounded = None if bounded is None else tuple(bounded)
        for rule in self.bounded or ():
            if rule not in names:
                raise UnknownNameError(f"deduction `{name}` has no rule `{rule}` to bound",
                                       name=rule, candidates=names)
        self.capped = tuple(r for r in learnable if r in (self.bounded or ()))
        self.rule_logits = nn.ParameterDict(
            {r: nn.Parameter(torch.zeros((), dtype=torch.float64)) for r in learnable}
        )
        self.entry_logits = nn.Parameter(torch.zeros(len(self.lexicon), dtype=torch.float64))
        self._entry_learns = [e.learnable for e in self.lexicon]
        self.words = tuple(dict.fromkeys(e.word for e in self.lexicon))
        self.meanings = any(_spans_with_meaning(t) for r in self.rules for t in (*r.premises, r.conclusion))

    def _one(self) -> Tensor:
        dtype = self.semiring.tensor_dtype(torch.float64)
        return torch.tensor(self.semiring.one, dtype=dtype)

    def rule_log_weights(self) -> dict[str, Tensor]:
        """The log weight of each learnable rule: its parameter, or, for a
        rule both learnable and bounded, ``-softplus(parameter) - log(n)``
        with ``n`` the number of such rules (see ``bounded``).

        Examples
        --------
        >>> from quivers.deduction.agenda import Var
        >>> X = Var("X")
        >>> rules = [Rule("up", (X,), ("Dia", X)), Rule("down", (("Dia", X),), X)]
        >>> d = Deduction("D", rules, [Entry("a", "A")], start="A", learnable=["up", "down"],
        ...               bounded=["up", "down"], max_depth=2)
        >>> round(d.rule_log_weights()["up"].exp().item(), 12)   # sigmoid(0) / 2
        0.25
        """
        out = dict(self.rule_logits.items())
        cap = math.log(len(self.capped)) if self.capped else 0.0
        for r in self.capped:
            out[r] = -nn.functional.softplus(out[r]) - cap
        return out

    def rule_weights(self) -> dict[str, Tensor]:
        """The weight of each learnable rule in the semiring."""
        to = FROM_LOG.get(self.semiring)
        return {r: to(w) for r, w in self.rule_log_weights().items()} if to else {}

    def lexicon_weights(self) -> dict[str | int, list[tuple[Term, Tensor]]]:
        """Each word's categories and their weights in the semiring."""
        out: dict[str | int, list[tuple[Term, Tensor]]] = {}
        to = FROM_LOG.get(self.semiring)
        one = self._one()
        for i, entry in enumerate(self.lexicon):
            weight = to(self.entry_logits[i]) if entry.learnable and to else one
            out.setdefault(entry.word, []).append((entry.category, weight))
        return out

    def derive(self, words: Sequence[str]) -> Derivations:
        """Every item derivable from a sentence, with its weight."""
        if isinstance(words, str) or not words:
            raise DataError(f"deduction `{self.name}` parses a non-empty sequence of words, got {words!r}")
        if self.meanings:
            axioms = self._meaning_axioms(list(words))
        else:
            axioms = lexical_axioms(list(words), self.lexicon_weights(), self.semiring)
        return self._deduce(axioms)

    def _deduce(self, axioms: dict[Term, Tensor]) -> Derivations:
        return deduce(
            self.rules, axioms, self.semiring, weights=self.rule_weights(), atoms=self.atoms,
            max_depth=None if self.max_depth is None else self.max_depth + 1,
            tolerance=self.tolerance, bounded=self.bounded,
        )

    def _meaning_axioms(self, words: list[str]) -> dict[Term, Tensor]:
        to = FROM_LOG.get(self.semiring)
        one = self._one()
        axioms: dict[Term, Tensor] = {}
        for i, word in enumerate(words):
            if word not in self.words:
                raise UnknownNameError(f"the word `{word}` is not in the lexicon of deduction "
                                       f"`{self.name}`", name=str(word), candidates=self.words)
            for k, entry in enumerate(self.lexicon):
                if entry.word != word:
                    continue
                weight = to(self.entry_logits[k]) if entry.learnable and to else one
                meaning = entry.word if entry.meaning is None else entry.meaning
                item = ("span", i, i + 1, entry.category, meaning)
                axioms[item] = self.semiring.add(axioms[item], weight) if item in axioms else weight
        return axioms

    def close(self, axioms: Mapping[Term, float | Tensor]) -> Derivations:
        """Every item derivable from ground ``axioms`` (their log weights, as
        learnable weights are), with its weight: a deduction used as a
        prover rather than a parser.

        Examples
        --------
        >>> from quivers.deduction.agenda import Var
        >>> P, Q, R = Var("P"), Var("Q"), Var("R")
        >>> chain = Rule("chain", (("Claim", ("Every", P, Q)), ("Claim", ("Every", Q, R))),
        ...              ("Claim", ("Every", P, R)))
        >>> d = Deduction("Prover", [chain], [], start=None, semiring=BOOL)
        >>> d.close({("Claim", ("Every", "dog", "animal")): 0.0,
        ...          ("Claim", ("Every", "animal", "mortal")): 0.0})[("Claim", ("Every", "dog", "mortal"))]
        tensor(True)
        """
        to = FROM_LOG.get(self.semiring)
        ground: dict[Term, Tensor] = {}
        for item, value in axioms.items():
            weight = torch.as_tensor(value, dtype=torch.float64)
            ground[item] = to(weight) if to else (
                self._one() if float(weight) > -math.inf else self._one().new_tensor(self.semiring.zero))
        return self._deduce(ground)

    def goal(self, words: Sequence[str]) -> Term:
        """The item of a whole sentence: ``span(0, n, start)``."""
        if self.start is None:
            raise UnsupportedError(
                f"deduction `{self.name}` has no start category, so it weighs no sentence",
                hint="give it `start=...`, or close axioms with `.close(axioms)`",
            )
        return ("span", 0, len(words), self.start)

    def goals(self, words: Sequence[str], derived: Derivations) -> list[Term]:
        """The derived items of a whole sentence: its goal, or, when the
        rules carry meanings, ``span(0, n, start, meaning)`` for every
        meaning derived."""
        goal = self.goal(words)
        if not self.meanings:
            return [goal]
        return [item for item in derived.items if isinstance(item, tuple) and len(item) == 5
                and item[:4] == goal]

    def weight(self, words: Sequence[str]) -> Tensor:
        """The weight of a sentence: of every derivation of its goal item."""
        self.goal(words)
        derived = self.derive(words)
        goals = self.goals(words, derived)
        if len(goals) == 1:
            return derived[goals[0]]
        total = self._one().new_tensor(self.semiring.zero)
        for goal in goals:
            total = self.semiring.add(total, derived[goal])
        return total

    def best(self, words: Sequence[str]) -> Derivation | None:
        """The best derivation of a sentence (in a semiring whose addition
        selects, such as ``Viterbi``), or ``None`` when it has none."""
        self.goal(words)
        derived = self.derive(words)
        goals = self.goals(words, derived)
        if not goals:
            return None
        weights = torch.stack([derived[g].detach().to(torch.float64) for g in goals])
        return derived.best(goals[int(torch.argmax(weights))])

    def forward(self, sentences: Sequence[Sequence[str]]) -> Tensor:
        """The weights of several sentences, stacked."""
        return torch.stack([self.weight(s) for s in sentences])

    def __repr__(self) -> str:
        return (f"Deduction({self.name!r}, rules=[{', '.join(r.name for r in self.rules)}], "
                f"words={len(self.words)}, start={'None' if self.start is None else show(self.start)}, "
                f"semiring={self.semiring})")


def _spans_with_meaning(term: Term) -> bool:
    if not isinstance(term, tuple):
        return False
    return (term[0] == "span" and len(term) == 5) or any(_spans_with_meaning(a) for a in term[1:])


def check_semiring(name: str, where: str) -> Semiring:
    """The semiring a deduction's ``semiring=`` option names.

    Examples
    --------
    >>> check_semiring("Viterbi", "deduction `D`")
    MAX_PLUS
    """
    if name not in SEMIRING_NAMES:
        raise UnknownNameError(f"unknown semiring `{name}` for {where}", name=name,
                               candidates=SEMIRING_NAMES)
    return SEMIRING_NAMES[name]

