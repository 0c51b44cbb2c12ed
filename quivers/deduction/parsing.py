"""Parsing as deduction: category rules lifted to spans, a lexicon of words,
and the weight of a sentence by the agenda engine.

A rule over categories, ``B, C |- A``, says that adjacent constituents of
categories ``B`` and ``C`` form an ``A``. :func:`span_rules` lifts it to
``span(I, J, B), span(J, K, C) |- span(I, K, A)``; a rule with one premise
becomes a unary rule over the same span. The lexicon gives each word its
categories and weights, the axioms ``span(i, i + 1, X)``. The weight of a
sentence is the sum, over the start categories, of the weight of
``span(0, n, S)`` times the start weight.

Examples
--------
>>> import torch
>>> from quivers.categories import PROB
>>> rules = [Rule("s", ("NP", "VP"), "S")]
>>> lexicon = {"they": [("NP", torch.tensor(1.0))], "run": [("VP", torch.tensor(0.5))]}
>>> parse(rules, lexicon, ["they", "run"], PROB, start="S").total
tensor(0.5000)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

import torch
from torch import Tensor

from quivers.categories.semiring import Semiring
from quivers.deduction.agenda import Derivations, Rule, Term, Var, deduce
from quivers.errors import DataError, UnknownNameError

__all__ = ["span_rules", "lexical_axioms", "parse", "Parse"]


class Parse(NamedTuple):
    """The weight of a sentence (``total``) and every derived span."""

    total: Tensor
    derivations: Derivations


def span_rules(rules: Sequence[Rule]) -> list[Rule]:
    """Lift rules over categories to rules over ``span(i, j, category)``.

    Examples
    --------
    >>> print(span_rules([Rule("s", ("NP", "VP"), "S")])[0])
    s : span(@0, @1, NP), span(@1, @2, VP) |- span(@0, @2, S)
    """
    out = []
    for rule in rules:
        k = len(rule.premises)
        points = [Var(f"@{i}") for i in range(max(k, 1) + 1)]
        premises = tuple(("span", points[i], points[i + 1], p) for i, p in enumerate(rule.premises))
        conclusion = ("span", points[0], points[max(k, 1)], rule.conclusion)
        out.append(Rule(rule.name, premises, conclusion))
    return out


def lexical_axioms(
    words: Sequence[str | int],
    lexicon: Mapping[str | int, Sequence[tuple[Term, Tensor]]],
    semiring: Semiring,
) -> dict[Term, Tensor]:
    """The axioms ``span(i, i + 1, X)`` of a sentence, one per entry of the
    lexicon for its ``i``-th word (entries for the same category add)."""
    axioms: dict[Term, Tensor] = {}
    for i, word in enumerate(words):
        if word not in lexicon:
            raise UnknownNameError(
                f"the word `{word}` is not in the lexicon", name=str(word),
                candidates=[str(w) for w in lexicon],
            )
        for category, weight in lexicon[word]:
            item = ("span", i, i + 1, category)
            axioms[item] = semiring.add(axioms[item], weight) if item in axioms else weight
    return axioms


def parse(
    rules: Sequence[Rule],
    lexicon: Mapping[str | int, Sequence[tuple[Term, Tensor]]],
    words: Sequence[str | int],
    semiring: Semiring,
    *,
    start: Term | Mapping[Term, Tensor],
    weights: Mapping[str, Tensor] | None = None,
    atoms: Iterable[Term] = (),
    max_depth: int | None = None,
) -> Parse:
    """The weight of a sentence under category rules and a lexicon.

    ``start`` is a start category, or a mapping from categories to start
    weights. ``max_depth`` bounds the depth of categories (not of the span
    items that hold them).

    Examples
    --------
    >>> from quivers.categories import BOOL
    >>> rules = [Rule("s", ("NP", "VP"), "S")]
    >>> lexicon = {"they": [("NP", torch.tensor(True))], "run": [("VP", torch.tensor(True))]}
    >>> parse(rules, lexicon, ["run", "they"], BOOL, start="S").total
    tensor(False)
    """
    if not words:
        raise DataError("cannot parse an empty sentence")
    axioms = lexical_axioms(words, lexicon, semiring)
    derivations = deduce(
        span_rules(rules), axioms, semiring, weights=weights, atoms=atoms,
        max_depth=None if max_depth is None else max_depth + 1,
    )
    starts = start.items() if isinstance(start, Mapping) else [(start, None)]
    n = len(words)
    like = next(iter(axioms.values()))
    total = like.new_tensor(semiring.zero)
    for category, weight in starts:
        value = derivations[("span", 0, n, category)]
        total = semiring.add(total, value if weight is None else semiring.mul(weight, value))
    return Parse(total, derivations)
