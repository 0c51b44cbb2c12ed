"""Outside weights, span posteriors and expected rule counts, by automatic
differentiation of the inside pass in ``LOG`` (Eisner, 2016).

With log weights ``theta``, ``d log Z / d theta_r`` is the expected number
of times rule ``r`` is used in a derivation drawn in proportion to its
weight, and the gradient with respect to a zero weight added to a cell is
the posterior probability that the cell's category spans its words. The
outside weight of a cell is then ``log posterior - inside + log Z``.

Laws
----
- ``expected_counts`` equals ``sum_d p(d) * count_r(d)`` over every
  derivation ``d`` (checked by enumeration in the tests) and the finite
  differences of ``inside(...).total``.
- The span posteriors of one sentence, summed over categories at width one,
  are one at every position.

Examples
--------
>>> import torch
>>> binary = torch.zeros(1, 1, 1)          # X -> X X
>>> lexical = torch.zeros(1, 1)            # X -> a
>>> counts = expected_counts(binary, lexical, torch.zeros(1, 3, dtype=torch.long))
>>> counts.binary                           # two binary rules in every parse
tensor([[[2.]]])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor

from quivers.categories.semiring import LOG
from quivers.deduction.cky import Chart, check_words, inside

__all__ = ["Counts", "expected_counts", "span_posteriors", "outside"]


class Counts(NamedTuple):
    """Expected rule uses summed over the sentences: ``binary`` ``(N, N, N)``,
    ``lexical`` ``(N, V)``, ``root`` ``(N,)``, and the log weight of each
    sentence, ``total`` ``(batch,)``."""

    binary: Tensor
    lexical: Tensor
    root: Tensor
    total: Tensor


def _leaf(t: Tensor) -> Tensor:
    return t.detach().clone().requires_grad_(True)


def expected_counts(
    binary: Tensor,
    lexical: Tensor,
    words: Tensor,
    *,
    root: Tensor | int = 0,
    lengths: Tensor | Sequence[int] | None = None,
) -> Counts:
    """Expected rule counts under the posterior over parses (log weights).

    Sentences without a parse contribute nothing.

    Examples
    --------
    >>> import math
    >>> binary = torch.zeros(1, 1, 1)
    >>> lexical = torch.tensor([[0.0, -math.log(3.0)]])
    >>> expected_counts(binary, lexical, torch.tensor([[1, 0]])).lexical
    tensor([[1., 1.]])
    """
    binary, lexical = _leaf(binary), _leaf(lexical)
    root_t = _leaf(root) if isinstance(root, Tensor) else None
    with torch.enable_grad():
        chart = inside(binary, lexical, words, root=root_t if root_t is not None else root,
                       lengths=lengths, semiring=LOG)
        finite = chart.total[chart.total > -torch.inf]
        wrt = [binary, lexical] + ([root_t] if root_t is not None else [])
        grads = torch.autograd.grad(finite.sum(), wrt, allow_unused=True, materialize_grads=True)
    if root_t is None:  # every parse ends at the start symbol
        root_counts = torch.zeros(binary.shape[0], dtype=binary.dtype)
        root_counts[root] = float(finite.numel())
    else:
        root_counts = grads[2]
    return Counts(grads[0], grads[1], root_counts, chart.total.detach())


def span_posteriors(
    binary: Tensor,
    lexical: Tensor,
    words: Tensor,
    *,
    root: Tensor | int = 0,
    lengths: Tensor | Sequence[int] | None = None,
) -> Tensor:
    """``(batch, n, n, N)``: the posterior probability that category ``A``
    spans the ``w`` words from ``s`` (at ``[b, s, w - 1, A]``), by the
    gradient of ``log Z`` with respect to a zero weight on every cell.

    Examples
    --------
    >>> binary = torch.zeros(1, 1, 1)
    >>> lexical = torch.zeros(1, 1)
    >>> span_posteriors(binary, lexical, torch.zeros(1, 3, dtype=torch.long))[0, :, :, 0]
    tensor([[1.0000, 0.5000, 1.0000],
            [1.0000, 0.5000, 0.0000],
            [1.0000, 0.0000, 0.0000]])
    """
    words, lengths = check_words(words, lengths, lexical.shape[1])
    batch, n = words.shape
    zeros = torch.zeros(batch, n, n, binary.shape[0], dtype=binary.dtype, requires_grad=True)
    with torch.enable_grad():
        chart = inside(binary.detach(), lexical.detach(), words, root=_root(root), lengths=lengths,
                       semiring=LOG, span_weights=zeros)
        finite = chart.total[chart.total > -torch.inf]
        (grad,) = torch.autograd.grad(finite.sum(), [zeros], allow_unused=True, materialize_grads=True)
    return grad


def outside(
    binary: Tensor,
    lexical: Tensor,
    words: Tensor,
    *,
    root: Tensor | int = 0,
    lengths: Tensor | Sequence[int] | None = None,
) -> tuple[Chart, Tensor]:
    """The inside chart and the log outside weights, ``(batch, n, n, N)``:
    ``outside[b, s, w - 1, A]`` is the log weight of every way to complete
    category ``A`` over those words into a derivation of the sentence
    (``-inf`` where no derivation uses that cell).

    Examples
    --------
    >>> binary = torch.zeros(1, 1, 1)
    >>> lexical = torch.zeros(1, 1)
    >>> chart, out = outside(binary, lexical, torch.zeros(1, 2, dtype=torch.long))
    >>> out[0, 0, :, 0]
    tensor([0., 0.])
    """
    chart = inside(binary.detach(), lexical.detach(), words, root=_root(root), lengths=lengths,
                   semiring=LOG)
    posterior = span_posteriors(binary, lexical, words, root=root, lengths=lengths)
    total = chart.total[:, None, None, None]
    out = posterior.log() - chart.cells + total
    used = (posterior > 0) & (chart.cells > -torch.inf)
    return chart, torch.where(used, out, torch.full_like(out, -torch.inf))


def _root(root: Tensor | int) -> Tensor | int:
    return root.detach() if isinstance(root, Tensor) else root
