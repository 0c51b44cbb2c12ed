"""Parse trees of a grammar in Chomsky normal form: their weight, the best
one (Viterbi, with back-pointers) and draws from the posterior.

A :class:`Tree` is a category over a span with either two children (a
binary rule) or none (a word). Its weight in a semiring is the product of
the weights of its rules and of its root.

Laws
----
- ``tree_weight(viterbi(...).trees[b]) == viterbi(...).score[b]
  == inside(..., semiring).total[b]`` in every semiring whose addition
  selects one of its arguments (``MAX_PLUS``, ``MIN_PLUS``, ``MAX_TIMES``,
  ``GODEL``, ``LUKASIEWICZ``).
- :func:`sample` draws each tree with probability ``exp(tree_weight(t) -
  inside(...).total)`` in ``LOG``: top-down, each cell's split and child
  categories are drawn in proportion to their share of its inside weight.

Examples
--------
>>> import math, torch
>>> binary = torch.full((2, 2, 2), -math.inf); binary[0, 1, 1] = 0.0
>>> lexical = torch.tensor([[-math.inf], [0.0]])
>>> best = viterbi(binary, lexical, torch.zeros(1, 2, dtype=torch.long))
>>> print(best.trees[0])
(0 (1 0) (1 1))
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from quivers.categories.semiring import LOG, MAX_PLUS, Semiring
from quivers.deduction.cky import check_grammar, check_words, inside, root_weights
from quivers.errors import UnsupportedError

__all__ = ["Tree", "Parses", "tree_weight", "viterbi", "sample"]


@dataclass(frozen=True, slots=True)
class Tree:
    """A derivation: ``label`` over the words ``start, ..., end - 1``.

    A leaf (no children) covers one word; an inner node has two children
    that split its span.

    Examples
    --------
    >>> t = Tree(0, 0, 2, (Tree(1, 0, 1), Tree(1, 1, 2)))
    >>> t.show(["S", "X"], ["a", "b"])
    '(S (X a) (X b))'
    >>> eval(repr(Tree(1, 0, 1))) == Tree(1, 0, 1)
    True
    """

    label: int
    start: int
    end: int
    children: tuple[Tree, ...] = ()

    def nodes(self):
        """Every node, parents before children, left to right."""
        yield self
        for child in self.children:
            yield from child.nodes()

    def show(self, labels: Sequence[str] | None = None, words: Sequence[str] | None = None) -> str:
        """The bracketed form, with category and word names when given."""
        name = labels[self.label] if labels is not None else str(self.label)
        if not self.children:
            word = words[self.start] if words is not None else str(self.start)
            return f"({name} {word})"
        return f"({name} {' '.join(c.show(labels, words) for c in self.children)})"

    def __str__(self) -> str:
        return self.show()


class Parses(NamedTuple):
    """The best parse of each sentence: its ``score`` ``(batch,)`` and its
    :class:`Tree` (``None`` where the sentence has no parse)."""

    score: Tensor
    trees: list[Tree | None]


def tree_weight(
    tree: Tree,
    binary: Tensor,
    lexical: Tensor,
    words: Sequence[int] | Tensor,
    *,
    root: Tensor | int = 0,
    semiring: Semiring = LOG,
) -> Tensor:
    """The weight of one derivation: the product of its rules and its root.

    Examples
    --------
    >>> import math
    >>> binary = torch.full((2, 2, 2), -math.inf); binary[0, 1, 1] = -1.0
    >>> lexical = torch.tensor([[-math.inf], [-0.5]])
    >>> t = Tree(0, 0, 2, (Tree(1, 0, 1), Tree(1, 1, 2)))
    >>> tree_weight(t, binary, lexical, [0, 0])
    tensor(-2.)
    """
    binary, lexical = check_grammar(binary, lexical, semiring)
    root = root_weights(root, binary.shape[0], semiring, lexical)
    words = [int(w) for w in words]
    factors = [root[tree.label]]
    for node in tree.nodes():
        if node.children:
            left, right = node.children
            factors.append(binary[node.label, left.label, right.label])
        else:
            factors.append(lexical[node.label, words[node.start]])
    return semiring.prod(torch.stack(factors), 0)


def _selector(semiring: Semiring):
    reduce = semiring.plus.reduce_nonempty
    if reduce is torch.amax:
        return torch.max
    if reduce is torch.amin:
        return torch.min
    raise UnsupportedError(
        f"Viterbi parses need a semiring whose addition selects an argument (max or min); "
        f"`{semiring}` adds",
        hint="use MAX_PLUS on log weights",
    )


def viterbi(
    binary: Tensor,
    lexical: Tensor,
    words: Tensor,
    *,
    root: Tensor | int = 0,
    lengths: Tensor | Sequence[int] | None = None,
    semiring: Semiring = MAX_PLUS,
) -> Parses:
    """The best parse of each sentence, by back-pointers.

    Each width keeps, for every start, category pair ``(B, C)`` the best
    split, and for every category ``A`` the best pair: the two selections
    of the two contractions of :func:`~quivers.deduction.cky.inside`. Ties
    go to the lowest index.

    Examples
    --------
    >>> import math
    >>> binary = torch.full((1, 1, 1), 0.0)
    >>> lexical = torch.tensor([[-1.0, -2.0]])
    >>> best = viterbi(binary, lexical, torch.tensor([[0, 1, 0]]))
    >>> best.score, str(best.trees[0])
    (tensor([-4.]), '(0 (0 0) (0 (0 1) (0 2)))')
    """
    select = _selector(semiring)
    binary, lexical = check_grammar(binary, lexical, semiring)
    n_cat = binary.shape[0]
    words, lengths = check_words(words, lengths, lexical.shape[1])
    root = root_weights(root, n_cat, semiring, lexical)
    batch, n = words.shape
    cells = lexical.new_full((batch, n, n, n_cat), semiring.zero)
    cells[:, :, 0] = lexical.t()[words]
    rules = binary.reshape(1, 1, n_cat, n_cat * n_cat)
    splits: list[Tensor] = [None, None]  # type: ignore[list-item]
    pairs_of: list[Tensor] = [None, None]  # type: ignore[list-item]
    for w in range(2, n + 1):
        starts = n - w + 1
        left = torch.stack([cells[:, :starts, k - 1] for k in range(1, w)], 2)
        right = torch.stack([cells[:, k : k + starts, w - k - 1] for k in range(1, w)], 2)
        candidates = semiring.mul(left[..., :, None], right[..., None, :])
        best_pairs, split = select(candidates, 2)
        scores = semiring.mul(best_pairs.reshape(batch, starts, 1, n_cat * n_cat), rules)
        cells[:, :starts, w - 1], pair = select(scores, -1)
        splits.append(split + 1)
        pairs_of.append(pair)
    top = cells[torch.arange(batch), 0, lengths - 1]
    score, best_root = select(semiring.mul(root, top), -1)
    trees: list[Tree | None] = []
    for b in range(batch):
        if bool(score[b] == semiring.zero):
            trees.append(None)
            continue

        def build(label: int, start: int, width: int) -> Tree:
            if width == 1:
                return Tree(label, start, start + 1)
            left_label, right_label = divmod(int(pairs_of[width][b, start, label]), n_cat)
            k = int(splits[width][b, start, left_label, right_label])
            return Tree(label, start, start + width, (
                build(left_label, start, k), build(right_label, start + k, width - k)
            ))

        trees.append(build(int(best_root[b]), 0, int(lengths[b])))
    return Parses(score, trees)


def sample(
    binary: Tensor,
    lexical: Tensor,
    words: Tensor,
    *,
    root: Tensor | int = 0,
    lengths: Tensor | Sequence[int] | None = None,
    generator: torch.Generator | None = None,
) -> list[Tree | None]:
    """One parse of each sentence drawn from the posterior, given log weights.

    The inside chart comes from :func:`~quivers.deduction.cky.inside` in
    ``LOG``; a draw then goes top-down, choosing the root category and, for
    each cell, the split and the two child categories in proportion to
    their weight times the children's inside weights. A sentence without a
    parse gives ``None``.

    Examples
    --------
    >>> binary = torch.zeros(1, 1, 1)
    >>> lexical = torch.zeros(1, 1)
    >>> trees = sample(binary, lexical, torch.zeros(1, 3, dtype=torch.long),
    ...                generator=torch.Generator().manual_seed(0))
    >>> trees[0].end - trees[0].start
    3
    """
    with torch.no_grad():
        chart = inside(binary, lexical, words, root=root, lengths=lengths, semiring=LOG)
        binary = binary.detach()
        n_cat = binary.shape[0]
        root = root_weights(root, n_cat, LOG, lexical).detach()
        cells = chart.cells

        def draw(logits: Tensor) -> int:
            probs = (logits - logits.max()).exp().reshape(-1)
            return int(torch.multinomial(probs, 1, generator=generator))

        trees: list[Tree | None] = []
        for b in range(cells.shape[0]):
            n = int(chart.lengths[b])
            if not bool(chart.total[b] > -torch.inf):
                trees.append(None)
                continue

            def build(label: int, start: int, width: int) -> Tree:
                if width == 1:
                    return Tree(label, start, start + 1)
                left = cells[b, start, : width - 1]  # (k, B)
                right = torch.stack([cells[b, start + k, width - k - 1] for k in range(1, width)])
                logits = binary[label] + left[:, :, None] + right[:, None, :]
                k, rest = divmod(draw(logits), n_cat * n_cat)
                left_label, right_label = divmod(rest, n_cat)
                return Tree(label, start, start + width, (
                    build(left_label, start, k + 1),
                    build(right_label, start + k + 1, width - k - 1),
                ))

            trees.append(build(draw(root + cells[b, 0, n - 1]), 0, n))
    return trees
