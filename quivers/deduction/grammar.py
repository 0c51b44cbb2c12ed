"""Weighted context-free grammars in Chomsky normal form as torch modules,
with learnable rule weights.

A :class:`Grammar` is a list of :class:`Production` values (``A -> B C`` or
``A -> "word"``) and start categories. Learnable productions hold a logit
each as a parameter, the others a fixed buffer. With ``normalize=True`` (a
PCFG) the productions of each left-hand side are a softmax of their logits
and the start categories another, so the weight of a sentence is its
probability; otherwise the logits are log weights as they stand.
:meth:`Grammar.tensors` scatters them into the dense ``binary``,
``lexical``, ``root`` tensors that :func:`~quivers.deduction.inside` and
the rest of the layer take, so maximum likelihood is gradient ascent on
:meth:`Grammar.log_prob`.

Examples
--------
>>> g = Grammar([Production("S", ("S", "S"), 0.2), Production("S", ("a",), 0.8)], start="S")
>>> words, lengths = g.encode([["a"], ["a", "a"]])
>>> g.log_prob(words, lengths).exp()
tensor([0.8000, 0.1280], dtype=torch.float64, grad_fn=<ExpBackward0>)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from quivers.categories.semiring import LOG
from quivers.deduction.cky import inside
from quivers.deduction.parses import Tree, sample, viterbi
from quivers.errors import DataError, InvalidValueError, UnknownNameError

__all__ = ["Production", "Grammar"]


@dataclass(frozen=True)
class Production:
    """``lhs -> rhs``: two categories, or one word.

    ``weight`` is a probability (or, in an unnormalized grammar, a positive
    weight); its log starts the logit.

    Examples
    --------
    >>> Production("NP", ("Det", "N"), 0.6)
    Production(lhs='NP', rhs=('Det', 'N'), weight=0.6, learnable=True)
    """

    lhs: str
    rhs: tuple[str, ...]
    weight: float = 1.0
    learnable: bool = True

    def __str__(self) -> str:
        if len(self.rhs) == 1:
            return f'{self.lhs} -> "{self.rhs[0]}"'
        return f"{self.lhs} -> {' '.join(self.rhs)}"


class Grammar(nn.Module):
    """A weighted grammar in Chomsky normal form with learnable weights.

    Parameters
    ----------
    productions
        The rules; one right-hand side is a word, two are categories.
    start
        The start category, or several (their weights are learnable too
        and start uniform).
    normalize
        Whether rule weights are probabilities per left-hand side (a PCFG).

    Examples
    --------
    >>> g = Grammar([Production("S", ("NP", "VP")), Production("NP", ("she",)),
    ...              Production("VP", ("runs",))], start="S")
    >>> g.categories, g.words
    (('S', 'NP', 'VP'), ('she', 'runs'))
    >>> print(g.parse(["she", "runs"]))
    (S (NP she) (VP runs))
    """

    def __init__(
        self, productions: Sequence[Production], start: str | Sequence[str], *, normalize: bool = True
    ) -> None:
        super().__init__()
        if not productions:
            raise InvalidValueError("a grammar needs at least one production")
        self.productions = tuple(productions)
        self.normalize = normalize
        categories: dict[str, None] = {}
        words: dict[str, None] = {}
        for p in self.productions:
            if len(p.rhs) not in (1, 2):
                raise InvalidValueError(
                    f"the production `{p}` is not in Chomsky normal form: its right-hand side "
                    "must be two categories or one word"
                )
            if not p.weight > 0 or not math.isfinite(p.weight):
                raise InvalidValueError(f"the production `{p}` has weight {p.weight}; it must be positive")
            categories.setdefault(p.lhs)
        for p in self.productions:
            if len(p.rhs) == 2:
                for c in p.rhs:
                    if c not in categories:
                        raise UnknownNameError(
                            f"the category `{c}` in `{p}` has no productions", name=c,
                            candidates=list(categories),
                        )
            else:
                words.setdefault(p.rhs[0])
        self.categories: tuple[str, ...] = tuple(categories)
        self.words: tuple[str, ...] = tuple(words)
        starts = (start,) if isinstance(start, str) else tuple(start)
        for s in starts:
            if s not in categories:
                raise UnknownNameError(f"the start category `{s}` has no productions", name=s,
                                       candidates=list(categories))
        self.starts = starts
        cat = {c: i for i, c in enumerate(self.categories)}
        word = {w: i for i, w in enumerate(self.words)}
        # one flat index per production into binary (N*N*N) or lexical (N*V)
        n, v = len(self.categories), len(self.words)
        flat = []
        for p in self.productions:
            if len(p.rhs) == 2:
                flat.append((cat[p.lhs] * n + cat[p.rhs[0]]) * n + cat[p.rhs[1]])
            else:
                flat.append(n ** 3 + cat[p.lhs] * v + word[p.rhs[0]])
        self.register_buffer("_flat", torch.tensor(flat, dtype=torch.long), persistent=False)
        self.register_buffer("_lhs", torch.tensor([cat[p.lhs] for p in self.productions]),
                             persistent=False)
        self.register_buffer("_start", torch.tensor([cat[s] for s in starts]), persistent=False)
        logits = torch.tensor([math.log(p.weight) for p in self.productions], dtype=torch.float64)
        learn = torch.tensor([p.learnable for p in self.productions])
        self.register_buffer("_learn", learn, persistent=False)
        self.logits = nn.Parameter(logits[learn].clone())
        self.register_buffer("fixed_logits", logits[~learn].clone())
        self.start_logits = nn.Parameter(torch.zeros(len(starts), dtype=torch.float64))

    def rule_logits(self) -> Tensor:
        """One log weight per production, normalized per left-hand side in a PCFG."""
        out = self.fixed_logits.new_empty(len(self.productions))
        out = out.masked_scatter(self._learn, self.logits).masked_scatter(~self._learn, self.fixed_logits)
        if self.normalize:
            norm = LOG.fibre_sum(self._lhs, out, len(self.categories))
            out = out - norm[self._lhs]
        return out

    def tensors(self, rule_log_weights: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """The dense log weights ``binary (N, N, N)``, ``lexical (N, V)`` and
        ``root (N,)``, ``-inf`` where there is no rule; the rules weigh
        :meth:`rule_logits`, or ``rule_log_weights`` (one per production,
        such as the log of a draw from :class:`~quivers.deduction.PCFGPrior`)
        when given."""
        n, v = len(self.categories), len(self.words)
        weights = self.rule_logits() if rule_log_weights is None else rule_log_weights
        if weights.shape != (len(self.productions),):
            raise InvalidValueError(f"the grammar has {len(self.productions)} productions, so it takes one log "
                                    f"weight each, got shape {tuple(weights.shape)}")
        dense = self.logits.new_full((n ** 3 + n * v,), -math.inf).to(weights.dtype)
        dense = dense.index_put((self._flat,), weights, accumulate=False)
        start = self.start_logits.log_softmax(0) if self.normalize else self.start_logits
        root = self.logits.new_full((n,), -math.inf).index_put((self._start,), start)
        return dense[: n ** 3].reshape(n, n, n), dense[n ** 3 :].reshape(n, v), root

    def encode(self, sentences: Sequence[Sequence[str]]) -> tuple[Tensor, Tensor]:
        """Sentences of words as a padded index tensor and their lengths."""
        index = {w: i for i, w in enumerate(self.words)}
        rows = []
        for sentence in sentences:
            if not sentence:
                raise DataError("cannot parse an empty sentence")
            for w in sentence:
                if w not in index:
                    raise UnknownNameError(f"the word `{w}` is not in the lexicon", name=w,
                                           candidates=list(index))
            rows.append([index[w] for w in sentence])
        n = max(len(r) for r in rows)
        words = torch.tensor([r + [0] * (n - len(r)) for r in rows], dtype=torch.long)
        return words, torch.tensor([len(r) for r in rows])

    def log_prob(self, words: Tensor, lengths: Tensor | None = None,
                 rule_log_weights: Tensor | None = None) -> Tensor:
        """The log weight of each sentence (its log probability in a PCFG),
        under the grammar's own weights or ``rule_log_weights``."""
        binary, lexical, root = self.tensors(rule_log_weights)
        return inside(binary, lexical, words, root=root, lengths=lengths, semiring=LOG).total

    def forward(self, words: Tensor, lengths: Tensor | None = None) -> Tensor:
        return self.log_prob(words, lengths)

    def parse(self, sentence: Sequence[str]) -> str | None:
        """The best parse of one sentence, bracketed, or ``None``."""
        words, _ = self.encode([sentence])
        with torch.no_grad():
            binary, lexical, root = self.tensors()
            tree = viterbi(binary, lexical, words, root=root).trees[0]
        return None if tree is None else tree.show(self.categories, list(sentence))

    def sample_parses(self, sentences: Sequence[Sequence[str]],
                      generator: torch.Generator | None = None) -> list[Tree | None]:
        """A parse of each sentence drawn from the posterior."""
        words, lengths = self.encode(sentences)
        binary, lexical, root = self.tensors()
        return sample(binary, lexical, words, root=root, lengths=lengths, generator=generator)

    def probabilities(self) -> dict[str, float]:
        """Each production (as text) and its weight, ``exp`` of its logit."""
        with torch.no_grad():
            return {str(p): float(w) for p, w in zip(self.productions, self.rule_logits().exp())}

    def generate(self, count: int, generator: torch.Generator | None = None,
                 max_length: int = 100) -> list[list[str]]:
        """Sentences drawn top-down from a PCFG (redrawn past ``max_length`` words)."""
        if not self.normalize:
            raise InvalidValueError("only a normalized grammar (a PCFG) generates sentences")
        with torch.no_grad():
            logits = self.rule_logits()
            start = self.start_logits.log_softmax(0)
        by_lhs: dict[int, list[int]] = {}
        for i, lhs in enumerate(self._lhs.tolist()):
            by_lhs.setdefault(lhs, []).append(i)
        cat = {c: i for i, c in enumerate(self.categories)}

        def pick(weights: Tensor) -> int:
            return int(torch.multinomial(weights.exp(), 1, generator=generator))

        out = []
        while len(out) < count:
            stack, sentence = [int(self._start[pick(start)])], []
            while stack and len(sentence) <= max_length:
                options = by_lhs[stack.pop()]
                p = self.productions[options[pick(logits[options])]]
                if len(p.rhs) == 1:
                    sentence.append(p.rhs[0])
                else:
                    stack.extend([cat[p.rhs[1]], cat[p.rhs[0]]])
            if not stack:
                out.append(sentence)
        return out
