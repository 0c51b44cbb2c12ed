"""Sentences observed under a deduction: its ``LOG`` inside weight as the
score of a program's observation.

A program that writes ``observe s <- D`` for a deduction ``D`` in the
``LOG`` semiring scores the sentences given as data for ``s`` by their log
weights under ``D``, the log of the sum over each sentence's derivations.
:class:`Sentences` is the distribution-like value such a step builds: its
:meth:`~Sentences.log_prob` is :meth:`Deduction.weight` of each sentence,
so the gradient of a program's log density reaches every learnable rule and
lexicon weight of the deduction, and the weights train with the program's
other parameters.

A program that writes ``let chart = parse(D, sentence)`` holds a
:class:`Chart`: the sentences and the deduction, whose
:meth:`~Chart.goal_weight` is the log weight of each sentence; ``score
evidence = chart.goal_weight()`` adds it to the log density.

Laws
----
- ``Sentences(d).log_prob(ss)[i] == d.weight(ss[i])`` exactly.
- ``Chart(d, ss).goal_weight()[i] == d.weight(ss[i])`` exactly.

Examples
--------
>>> from quivers.deduction.agenda import Rule, Var
>>> from quivers.deduction.system import Deduction, Entry
>>> I, J, K = Var("I"), Var("J"), Var("K")
>>> rules = [Rule("s", (("span", I, K, "NP"), ("span", K, J, "VP")), ("span", I, J, "S"))]
>>> d = Deduction("D", rules, [Entry("she", "NP"), Entry("runs", "VP")], start="S", learnable=["s"])
>>> obs = Sentences(d)
>>> obs.as_value("she runs")
(('she', 'runs'),)
>>> obs.log_prob(obs.as_value([["she", "runs"], ["she", "runs"]]))
tensor([0., 0.], dtype=torch.float64, grad_fn=<IndexBackward0>)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from quivers.categories.semiring import LOG, Semiring
from quivers.deduction.system import Deduction
from quivers.errors import DataError, QuiversTypeError, UnsupportedError

__all__ = ["Sentences", "Sentence", "Chart"]

Sentence = tuple[str, ...]


class Sentences:
    """The observation of sentences under ``deduction`` (in ``LOG``).

    Parameters
    ----------
    deduction
        The grammar that scores them.
    count
        How many sentences an observation holds (the size of the plate of
        ``observe s : Sent <- D``), or ``None`` for any number.
    name
        The observed name, for messages.
    semirings
        The semirings whose weights are log weights the observation may
        score (``LOG``; a chart's ``goal_weight`` allows ``MAX_PLUS`` too,
        the log weight of the best derivation).
    prior, theta
        A :class:`~quivers.deduction.PCFGPrior` over ``deduction`` and rule
        probabilities drawn from it (``sample g <- pcfg_prior(D, alpha)``
        then ``observe s <- D``): the sentences are scored under ``theta``
        (:meth:`PCFGPrior.log_likelihood`) rather than the deduction's own
        weights.

    Examples
    --------
    >>> from quivers.deduction.system import Deduction, Entry
    >>> d = Deduction("D", [], [Entry("a", "S")], start="S")
    >>> Sentences(d, count=2, name="s").as_value(["a"])
    Traceback (most recent call last):
    ...
    quivers.errors.DataError: observation `s` holds 2 sentences (one per element of its plate), got 1
    """

    def __init__(self, deduction: Deduction, count: int | None = None, name: str = "the sentences",
                 semirings: tuple[Semiring, ...] = (LOG,), prior: Any = None, theta: Tensor | None = None) -> None:
        if deduction.start is None:
            raise UnsupportedError(
                f"deduction `{deduction.name}` has no start category, so it parses no sentence",
                hint="give it `start=...`; a deduction without one closes axioms (`.close(axioms)`)",
            )
        if deduction.semiring not in semirings:
            raise QuiversTypeError(
                f"a program observes sentences under deduction `{deduction.name}` by their log probability, "
                f"but it weighs them in `{deduction.semiring}`", hint="declare it with `semiring=LogProb`",
            )
        self.deduction, self.count, self.name = deduction, count, name
        self.prior, self.theta = prior, theta

    def as_value(self, data: object) -> tuple[Sentence, ...]:
        """The data of the observation as sentences: a string (one
        sentence, its words split at white space), a sequence of words (one
        sentence), or a sequence of sentences (strings, when one holds white
        space, or sequences of words)."""
        if isinstance(data, str):
            sentences = [data]
        elif isinstance(data, Sequence) and data and all(isinstance(w, str) for w in data):
            # words, unless the strings hold white space: then one sentence each
            sentences = list(data) if any(len(w.split()) > 1 for w in data) else [data]
        elif isinstance(data, Sequence) and data:
            sentences = list(data)
        else:
            raise DataError(f"observation `{self.name}` takes sentences (strings or sequences of words), "
                            f"got {data!r}")
        out = []
        for s in sentences:
            words = tuple(s.split()) if isinstance(s, str) else tuple(s) if isinstance(s, Sequence) else None
            if not words or not all(isinstance(w, str) for w in words):
                raise DataError(f"observation `{self.name}`: a sentence is a non-empty sequence of words, got {s!r}")
            unknown = [w for w in words if w not in self.deduction.words]
            if unknown:
                raise DataError(
                    f"observation `{self.name}`: the word `{unknown[0]}` is not in the lexicon of deduction "
                    f"`{self.deduction.name}`",
                    hint="its words: " + ", ".join(self.deduction.words),
                )
            out.append(words)
        if self.count is not None and len(out) != self.count:
            raise DataError(f"observation `{self.name}` holds {self.count} sentences (one per element of its "
                            f"plate), got {len(out)}")
        return tuple(out)

    def log_prob(self, sentences: Sequence[Sentence]) -> Tensor:
        """The log weight of each sentence under the deduction (under the
        drawn rule probabilities ``theta``, when given)."""
        # a corpus repeats sentences: each distinct one is parsed once
        distinct = list(dict.fromkeys(sentences))
        if self.prior is not None:
            weights = self.prior.log_likelihood(self.theta, distinct)
        else:
            weights = self.deduction(distinct)
        if len(distinct) == len(sentences):
            return weights
        where = {s: i for i, s in enumerate(distinct)}
        return weights[torch.tensor([where[s] for s in sentences])]

    def sample(self) -> Tensor:
        raise UnsupportedError(
            f"deduction `{self.deduction.name}` parses sentences but does not generate them; give "
            f"`{self.name}` as data"
        )

    def __repr__(self) -> str:
        return f"Sentences({self.deduction.name!r}, count={self.count})"


class Chart:
    """The parse of ``sentences`` under ``deduction``: the value of
    ``let chart = parse(D, sentence)`` in a program.

    Examples
    --------
    >>> from quivers.deduction.system import Deduction, Entry
    >>> one_word = Deduction("W", [], [Entry("hi", "S")], start="S")
    >>> Chart(one_word, (("hi",), ("hi", "hi"))).goal_weight()
    tensor([0., -inf], dtype=torch.float64)
    """

    def __init__(self, deduction: Deduction, sentences: Sequence[Sentence]) -> None:
        self.deduction, self.sentences = deduction, tuple(sentences)

    def goal_weight(self) -> Tensor:
        """The weight of each sentence's goal item (its log weight in
        ``LogProb``, of its best derivation in ``Viterbi``)."""
        return self.deduction(self.sentences)

    def __repr__(self) -> str:
        return f"Chart({self.deduction.name!r}, {len(self.sentences)} sentences)"
