"""Random grammars in Chomsky normal form, and the brute-force enumeration of
every derivation that the deduction tests compare the dynamic programs to.

Elements of each semiring come from :mod:`tests.categories.strategies`
(zeros drawn on purpose, exact cases compared exactly). Sizes are drawn so
that a sentence has at most about 100,000 derivations: the enumeration
gathers the weights of every labelled bracketing in one tensor and folds it
with the semiring's own ``prod`` and ``sum``, with no dynamic programming.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from functools import lru_cache

import torch
from hypothesis import strategies as st

from quivers.categories import Semiring
from quivers.deduction import Tree
from tests.categories.strategies import CASES, Case, tensors

MAX_DERIVATIONS = 100_000


@dataclass(frozen=True)
class CNF:
    """A random grammar with sentences, for one semiring case."""

    case: Case
    binary: torch.Tensor
    lexical: torch.Tensor
    root: torch.Tensor
    sentences: tuple[tuple[int, ...], ...]

    def __repr__(self) -> str:
        return (
            f"CNF({self.case!r}, binary={self.binary.tolist()}, lexical={self.lexical.tolist()}, "
            f"root={self.root.tolist()}, sentences={self.sentences})"
        )

    def padded(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The sentences as a padded ``(batch, n)`` tensor and their lengths."""
        n = max(len(s) for s in self.sentences)
        words = torch.tensor([list(s) + [0] * (n - len(s)) for s in self.sentences])
        return words, torch.tensor([len(s) for s in self.sentences])


def catalan(k: int) -> int:
    return math.comb(2 * k, k) // (k + 1)


def derivations(n_cat: int, n: int) -> int:
    """The number of labelled binary trees over ``n`` words."""
    return catalan(n - 1) * n_cat ** (2 * n - 1)


def max_length(n_cat: int) -> int:
    return max(n for n in range(1, 7) if derivations(n_cat, n) <= MAX_DERIVATIONS)


@st.composite
def grammars(draw, cases: tuple[Case, ...] = CASES, max_sentences: int = 2) -> CNF:
    case = draw(st.sampled_from(cases))
    n_cat = draw(st.integers(1, 3))
    vocab = draw(st.integers(1, 2))
    binary = draw(tensors(case, (n_cat, n_cat, n_cat)))
    lexical = draw(tensors(case, (n_cat, vocab)))
    root = draw(tensors(case, (n_cat,)))
    sentence = st.lists(st.integers(0, vocab - 1), min_size=1, max_size=max_length(n_cat))
    sentences = draw(st.lists(sentence, min_size=1, max_size=max_sentences))
    return CNF(case, binary, lexical, root, tuple(tuple(s) for s in sentences))


@lru_cache(maxsize=None)
def bracketings(start: int, end: int) -> tuple[Tree, ...]:
    """Every binary bracketing of ``start .. end - 1``, labels all 0."""
    if end - start == 1:
        return (Tree(0, start, end),)
    return tuple(
        Tree(0, start, end, (left, right))
        for k in range(start + 1, end)
        for left in bracketings(start, k)
        for right in bracketings(k, end)
    )


def _factor_index(shape: Tree) -> list[tuple[str, tuple[int, ...]]]:
    """For each node (preorder), which weight it contributes and which node
    positions index it."""
    nodes = list(shape.nodes())
    position = {id(node): i for i, node in enumerate(nodes)}
    out = []
    for i, node in enumerate(nodes):
        if node.children:
            left, right = node.children
            out.append(("binary", (i, position[id(left)], position[id(right)])))
        else:
            out.append(("lexical", (i, node.start)))
    return out


def enumerate_weights(g: CNF, sentence: tuple[int, ...], binary=None, lexical=None, root=None):
    """The weight of every derivation of ``sentence``: a list, one tensor of
    weights per bracketing with one entry per labelling, and the labellings."""
    binary = g.binary if binary is None else binary
    lexical = g.lexical if lexical is None else lexical
    root = g.root if root is None else root
    semiring = g.case.semiring
    n_cat = binary.shape[0]
    words = torch.tensor(sentence)
    out = []
    for shape in bracketings(0, len(sentence)):
        m = 2 * len(sentence) - 1
        labels = torch.tensor(list(itertools.product(range(n_cat), repeat=m)), dtype=torch.long)
        factors = [root[labels[:, 0]]]
        for kind, idx in _factor_index(shape):
            if kind == "binary":
                factors.append(binary[labels[:, idx[0]], labels[:, idx[1]], labels[:, idx[2]]])
            else:
                factors.append(lexical[labels[:, idx[0]], words[idx[1]]])
        out.append((shape, labels, semiring.prod(torch.stack(factors, 1), 1)))
    return out


def enumerate_total(g: CNF, sentence: tuple[int, ...], **weights) -> torch.Tensor:
    """The semiring sum of the weights of every derivation."""
    semiring: Semiring = g.case.semiring
    per_shape = [semiring.sum(w, 0) for _, _, w in enumerate_weights(g, sentence, **weights)]
    return semiring.sum(torch.stack(per_shape), 0)


def relabel(shape: Tree, labels: list[int]) -> Tree:
    """``shape`` with its nodes (preorder) labelled by ``labels``."""
    it = iter(labels)

    def go(node: Tree) -> Tree:
        label = next(it)
        return Tree(label, node.start, node.end, tuple(go(c) for c in node.children))

    return go(shape)


SELECTIVE = tuple(c for c in CASES if c.semiring.plus.reduce_nonempty in (torch.amax, torch.amin))
LOG_CASE = next(c for c in CASES if c.semiring.name == "LOG")
