"""The inside pass of a grammar in Chomsky normal form, tensorized, in any
semiring.

A grammar in Chomsky normal form over ``N`` categories and ``V`` words is
three weight tensors in a semiring: ``binary[A, B, C]``, the weight of the
rule ``A -> B C``; ``lexical[A, w]``, the weight of ``A -> w``; and
``root[A]``, the weight of ending a derivation in ``A`` (a start symbol is
the root vector that is ``one`` at it and ``zero`` elsewhere).

The chart is a tensor ``cells[b, s, w - 1, A]``: the semiring sum, over
every derivation of category ``A`` from the words ``s, ..., s + w - 1`` of
sentence ``b``, of the product of its rule weights. Width one is read off
``lexical``; each wider width is two batched semiring contractions over
every start and every sentence at once::

    pairs[b, s, B, C] = sum_k cells[b, s, k - 1, B] * cells[b, s + k, w - k - 1, C]
    cells[b, s, w - 1, A] = sum_{B, C} binary[A, B, C] * pairs[b, s, B, C]

(both are :meth:`Semiring.contract`, so ``LOG`` uses its shifted matrix
product and every other semiring its own). The chart is kept twice, by
start and by end, so that both operands of a width are plain slices.

Unary rules ``A -> B`` (``unary[A, B]``) apply to every cell after its
binary rules: the cell is contracted with the closure ``unary*`` (the sum,
over every chain of unary rules, of its weight; :func:`unary_closure`), so
a derivation may stack any chain of unary rules on each constituent.

Laws
----
- ``inside(...).total`` is the semiring sum, over every derivation of the
  whole sentence, of the product of its weights (the tests enumerate the
  derivations of random grammars to check this in every semiring).
- In ``LOG``, the gradient of ``total`` with respect to the log weights is
  the expected number of uses of each rule (Eisner's identity), and with
  respect to a span weight it is the posterior probability of that span
  (:mod:`quivers.deduction.outside`).

Examples
--------
>>> import math, torch
>>> from quivers.categories import BOOL, LOG
>>> binary = torch.full((2, 2, 2), -math.inf); binary[0, 1, 1] = 0.0   # S -> X X
>>> lexical = torch.tensor([[-math.inf, -math.inf], [0.0, math.log(0.5)]])  # X -> a | b
>>> inside(binary, lexical, torch.tensor([[0, 1]]), root=0).total.exp()
tensor([0.5000])
>>> inside(binary > -math.inf, lexical > -math.inf, torch.tensor([[1]]), root=0, semiring=BOOL).total
tensor([False])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor

from quivers.categories.semiring import LOG, Semiring
from quivers.errors import DataError, InvalidValueError, QuiversTypeError, ShapeError

__all__ = ["Chart", "inside", "sparse_inside", "root_weights", "check_grammar", "check_words", "unary_closure"]


class Chart(NamedTuple):
    """The result of :func:`inside`.

    Attributes
    ----------
    total
        ``(batch,)``: the weight of every derivation of each sentence.
    cells
        ``(batch, n, n, N)``: ``cells[b, s, w - 1, A]`` is the weight of
        category ``A`` over the ``w`` words from ``s``; entries past a
        sentence's end are ``zero``.
    lengths
        ``(batch,)``: the length of each sentence.
    """

    total: Tensor
    cells: Tensor
    lengths: Tensor


def check_grammar(binary: object, lexical: object, semiring: Semiring) -> tuple[Tensor, Tensor]:
    """Check the shapes and dtypes of a grammar in Chomsky normal form."""
    if not isinstance(semiring, Semiring):
        raise QuiversTypeError(f"`semiring` must be a Semiring, got {semiring!r}")
    binary = semiring.check_dtype(binary, "`binary`")
    lexical = semiring.check_dtype(lexical, "`lexical`")
    if binary.dim() != 3 or not binary.shape[0] == binary.shape[1] == binary.shape[2]:
        raise ShapeError(
            f"`binary` has shape {tuple(binary.shape)}; it must be (N, N, N), "
            "the weight of each rule A -> B C"
        )
    if lexical.dim() != 2 or lexical.shape[0] != binary.shape[0]:
        raise ShapeError(
            f"`lexical` has shape {tuple(lexical.shape)}; it must be (N, V) with "
            f"N = {binary.shape[0]} categories, the weight of each rule A -> w"
        )
    return binary, lexical


def root_weights(root: Tensor | int, n_categories: int, semiring: Semiring, like: Tensor) -> Tensor:
    """The root vector: ``root`` itself, or the indicator of a start symbol.

    Examples
    --------
    >>> from quivers.categories import MAX_PLUS
    >>> root_weights(1, 3, MAX_PLUS, torch.zeros(()))
    tensor([-inf, 0., -inf])
    """
    if isinstance(root, Tensor):
        root = semiring.check_dtype(root, "`root`")
        if root.shape != (n_categories,):
            raise ShapeError(f"`root` has shape {tuple(root.shape)}; it must be ({n_categories},)")
        return root
    if isinstance(root, bool) or not isinstance(root, int) or not 0 <= root < n_categories:
        raise DataError(
            f"the start symbol `{root!r}` must be a category index in [0, {n_categories})"
        )
    out = like.new_full((n_categories,), semiring.zero)
    out[root] = semiring.one
    return out


def check_words(
    words: object, lengths: Tensor | Sequence[int] | None, vocabulary: int
) -> tuple[Tensor, Tensor]:
    """Sentences as a ``(batch, n)`` index tensor and their lengths.

    A one-dimensional ``words`` is one sentence. Positions at or past a
    sentence's length are padding and may hold any integer.
    """
    if not isinstance(words, Tensor) or words.dtype in (torch.bool,) or words.is_floating_point():
        raise QuiversTypeError("`words` must be an integer tensor of word indices, (batch, n) or (n,)")
    if words.dim() == 1:
        words = words.unsqueeze(0)
    if words.dim() != 2 or words.shape[1] == 0:
        raise ShapeError(f"`words` has shape {tuple(words.shape)}; it must be (batch, n) with n >= 1")
    batch, n = words.shape
    if lengths is None:
        lengths = torch.full((batch,), n, dtype=torch.long, device=words.device)
    else:
        lengths = torch.as_tensor(lengths, dtype=torch.long, device=words.device).reshape(-1)
        if lengths.shape != (batch,):
            raise ShapeError(f"`lengths` has {lengths.numel()} entries for {batch} sentences")
        if bool((lengths < 1).any()) or bool((lengths > n).any()):
            raise DataError(f"`lengths` must lie in [1, {n}], got {lengths.tolist()}")
    padding = torch.arange(n, device=words.device) >= lengths[:, None]
    words = words.masked_fill(padding, 0)
    if bool((words < 0).any()) or bool((words >= vocabulary).any()):
        bad = words[(words < 0) | (words >= vocabulary)][0].item()
        raise DataError(f"word index `{bad}` is outside the vocabulary of {vocabulary} words")
    return words.long(), lengths


def inside(
    binary: Tensor,
    lexical: Tensor,
    words: Tensor,
    *,
    root: Tensor | int = 0,
    lengths: Tensor | Sequence[int] | None = None,
    semiring: Semiring = LOG,
    span_weights: Tensor | None = None,
    unary: Tensor | None = None,
) -> Chart:
    """The inside weights of sentences under a grammar in Chomsky normal form.

    Parameters
    ----------
    binary, lexical
        ``(N, N, N)`` and ``(N, V)`` rule weights in ``semiring``.
    words
        ``(batch, n)`` word indices (or ``(n,)``, one sentence).
    root
        ``(N,)`` root weights, or the index of the start symbol.
    lengths
        The length of each sentence when they are padded to ``n``.
    semiring
        Any semiring of :mod:`quivers.categories.semiring`.
    span_weights
        Optional ``(batch, n, n, N)`` weights multiplied into every cell
        (``[b, s, w - 1, A]``, as ``cells``); with zeros in ``LOG`` the
        gradient with respect to them is the span posterior.
    unary
        Optional ``(N, N)`` weights of unary rules ``A -> B``
        (``unary[A, B]``), closed under chains by :func:`unary_closure`
        and applied to every cell.

    Examples
    --------
    >>> binary = torch.ones(1, 1, 1)             # X -> X X with weight 1
    >>> lexical = torch.ones(1, 1)               # X -> a with weight 1
    >>> from quivers.categories import PROB
    >>> inside(binary, lexical, torch.zeros(1, 4, dtype=torch.long), semiring=PROB).total
    tensor([5.])
    """
    binary, lexical = check_grammar(binary, lexical, semiring)
    n_cat = binary.shape[0]
    words, lengths = check_words(words, lengths, lexical.shape[1])
    root = root_weights(root, n_cat, semiring, lexical)
    batch, n = words.shape
    if span_weights is not None:
        span_weights = semiring.check_dtype(span_weights, "`span_weights`")
        if span_weights.shape != (batch, n, n, n_cat):
            raise ShapeError(
                f"`span_weights` has shape {tuple(span_weights.shape)}; it must be "
                f"{(batch, n, n, n_cat)}"
            )
    closure = None if unary is None else unary_closure(unary, semiring).t()
    cells = _cells(binary, lexical, words, semiring, span_weights, closure)
    top = cells[torch.arange(batch, device=words.device), 0, lengths - 1]
    total = semiring.sum(semiring.mul(root, top), -1)
    return Chart(total, cells, lengths)


def sparse_inside(
    rules: Tensor,
    weights: Tensor,
    lexical: Tensor,
    words: Tensor,
    *,
    root: Tensor | int = 0,
    lengths: Tensor | Sequence[int] | None = None,
    semiring: Semiring = LOG,
    unary: Tensor | None = None,
) -> Chart:
    """:func:`inside` with the binary rules as a list: ``rules[r] = (A, B,
    C)`` is the rule ``A -> B C`` of weight ``weights[r]`` (rules that
    repeat add). Each width gathers the two children of every rule and
    scatters the products to their parents: memory and time in the number
    of rules rather than ``N ** 3``, for a grammar over many categories and
    few rules.

    Examples
    --------
    >>> import math
    >>> rules = torch.tensor([[0, 1, 1]])              # S -> X X
    >>> lexical = torch.tensor([[-math.inf, -math.inf], [0.0, math.log(0.5)]])
    >>> sparse_inside(rules, torch.zeros(1), lexical, torch.tensor([[0, 1]])).total.exp()
    tensor([0.5000])
    """
    if not isinstance(semiring, Semiring):
        raise QuiversTypeError(f"`semiring` must be a Semiring, got {semiring!r}")
    lexical = semiring.check_dtype(lexical, "`lexical`")
    weights = semiring.check_dtype(weights, "`weights`")
    n_cat = lexical.shape[0] if lexical.dim() == 2 else 0
    if lexical.dim() != 2:
        raise ShapeError(f"`lexical` has shape {tuple(lexical.shape)}; it must be (N, V)")
    if not isinstance(rules, Tensor) or rules.dim() != 2 or rules.shape[1] != 3 or rules.is_floating_point():
        raise ShapeError("`rules` must be an (R, 3) integer tensor of rules (A, B, C)")
    if weights.shape != (rules.shape[0],):
        raise ShapeError(f"`weights` has shape {tuple(weights.shape)}; it must be ({rules.shape[0]},), one per rule")
    if rules.numel() and (bool((rules < 0).any()) or bool((rules >= n_cat).any())):
        raise DataError(f"`rules` name a category outside [0, {n_cat})")
    words, lengths = check_words(words, lengths, lexical.shape[1])
    root = root_weights(root, n_cat, semiring, lexical)
    closure = None if unary is None else unary_closure(unary, semiring).t()
    batch, n = words.shape
    by_start = lexical.new_full((batch, n, n, n_cat), semiring.zero, dtype=torch.promote_types(
        lexical.dtype, weights.dtype))
    by_end = by_start.clone()
    leaves = lexical.t()[words]
    if closure is not None:
        leaves = semiring.contract(leaves, closure)
    by_start[:, :, 0] = leaves
    by_end[:, :, 0] = leaves
    parent, left_child, right_child = rules.long().unbind(-1)
    for w in range(2, n + 1):
        starts = n - w + 1
        # the gathers copy, so the in-place writes below leave the products' operands alone
        left = by_start[:, :starts, : w - 1][..., left_child]
        right = by_end[:, w - 1 :, : w - 1].flip(2)[..., right_child]
        pairs = semiring.mul(semiring.sum(semiring.mul(left, right), 2), weights)
        new = semiring.fibre_sum(parent, pairs.movedim(-1, 0), n_cat).movedim(0, -1)
        if closure is not None:
            new = semiring.contract(new, closure)
        by_start[:, :starts, w - 1] = new
        by_end[:, w - 1 :, w - 1] = new
    top = by_start[torch.arange(batch, device=words.device), 0, lengths - 1]
    total = semiring.sum(semiring.mul(root, top), -1)
    return Chart(total, by_start, lengths)


def unary_closure(unary: Tensor, semiring: Semiring) -> Tensor:
    """``unary*``: entry ``[A, B]`` is the sum, over every chain of unary
    rules ``A -> ... -> B`` (the empty chain when ``A == B``), of the
    product of their weights.

    Without a cycle among the rules (entries other than ``zero``) the chains
    are fewer than ``N`` rules long and the sum is exact. A cycle has
    chains of every length: in a semiring whose addition is idempotent the
    sum is kept once it stops changing (a cycle weighing at most ``one``),
    and otherwise it is refused.

    Examples
    --------
    >>> import math
    >>> from quivers.categories import PROB, MAX_PLUS
    >>> unary_closure(torch.tensor([[0.0, 0.5], [0.0, 0.0]]), PROB)
    tensor([[1.0000, 0.5000],
            [0.0000, 1.0000]])
    >>> unary_closure(torch.tensor([[-math.inf, -1.0], [-1.0, -math.inf]]), MAX_PLUS)
    tensor([[ 0., -1.],
            [-1.,  0.]])
    """
    unary = semiring.check_dtype(unary, "`unary`")
    n = unary.shape[0] if unary.dim() == 2 else -1
    if unary.dim() != 2 or unary.shape[1] != n:
        raise ShapeError(f"`unary` has shape {tuple(unary.shape)}; it must be (N, N), the weight of "
                         "each rule A -> B")
    eye = unary.new_full((n, n), semiring.zero)
    eye.fill_diagonal_(semiring.one)
    support = unary != semiring.zero
    reach = support.clone()
    for _ in range(max(n, 1).bit_length()):  # squaring: paths of every length up to n
        reach = reach | (reach.float() @ reach.float() > 0)
    cyclic = bool(reach.diagonal().any())
    if cyclic and not semiring.idempotent:
        a = int(reach.diagonal().nonzero()[0])
        raise InvalidValueError(
            f"the unary rules go round a cycle through category {a}, so in `{semiring}` the sum over "
            "their chains has no end",
            hint="use a semiring whose addition is idempotent (MAX_PLUS, BOOL), or break the cycle",
        )
    star = eye
    if not cyclic:
        # chains end: one more rule per round, until no chain is left
        power, chains = eye, support
        while bool(chains.any()):
            power = semiring.contract(power, unary)
            star = semiring.add(star, power)
            chains = chains.float() @ support.float() > 0
        return star
    for _ in range(n + 1):
        following = semiring.add(eye, semiring.contract(star, unary))
        if torch.equal(following, star):
            return star
        star = following
    raise InvalidValueError(
        f"the unary rules go round a cycle whose weight exceeds one in `{semiring}`, so the "
        "sum over their chains does not settle",
        hint="give the rules of the cycle weights whose product is at most one",
    )


def _cells(
    binary: Tensor, lexical: Tensor, words: Tensor, semiring: Semiring, span_weights: Tensor | None,
    closure: Tensor | None = None,
) -> Tensor:
    batch, n = words.shape
    n_cat = binary.shape[0]
    dtype = torch.promote_types(binary.dtype, lexical.dtype)
    by_start = lexical.new_full((batch, n, n, n_cat), semiring.zero, dtype=dtype)
    by_end = by_start.clone()
    leaves = lexical.t()[words]
    if span_weights is not None:
        leaves = semiring.mul(leaves, span_weights[:, :, 0])
    if closure is not None:
        leaves = semiring.contract(leaves, closure)
    by_start[:, :, 0] = leaves
    by_end[:, :, 0] = leaves
    rules = binary.reshape(n_cat, n_cat * n_cat).t()
    for w in range(2, n + 1):
        starts = n - w + 1
        # `left` is a view of the chart, which is written in place below: it
        # is cloned (by `_balance`, or here) because a product may keep its
        # operands for the backward pass.
        left = by_start[:, :starts, : w - 1]
        right = by_end[:, w - 1 :, : w - 1].flip(2)
        if semiring is LOG:
            left, right = _balance(left, right)
        else:
            left = left.clone()
        pairs = semiring.contract(left.transpose(-1, -2), right).reshape(batch, starts, n_cat * n_cat)
        new = semiring.contract(pairs, rules)
        if span_weights is not None:
            new = semiring.mul(new, span_weights[:, :starts, w - 1])
        if closure is not None:
            new = semiring.contract(new, closure)
        by_start[:, :starts, w - 1] = new
        by_end[:, w - 1 :, w - 1] = new
    return by_start



def _balance(left: Tensor, right: Tensor) -> tuple[Tensor, Tensor]:
    """Log weights ``left - c``, ``right + c`` with one shift ``c`` per split:
    the same products, with the best category on each side of a split equal.

    :meth:`Semiring.contract` in ``LOG`` shifts each row of ``left`` and
    each column of ``right`` by its maximum over the splits. A long span's
    weights fall with its width, so the split where the left part is best
    is the one where the right part is worst, and the shifted products
    underflow, which sends every entry to the slow exact path. After the
    balance both maxima fall at the best split and the products are near
    one there.
    """
    c = (left.detach().amax(-1, keepdim=True) - right.detach().amax(-1, keepdim=True)) / 2
    c = c.nan_to_num_(nan=0.0, posinf=0.0, neginf=0.0)
    return left - c, right + c
