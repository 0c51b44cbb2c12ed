"""Fused kernels for the commonest marginalize blocks: a mixture of normals.

The general path of a ``marginalize`` block builds the ``(rows, K)`` table
of log densities, adds the log prior weights and takes a logsumexp, each a
pass over ``rows x K`` with its own autograd node. For a block whose body
is a single ``Normal`` observation with parameters on the latent's axis
only, the same number comes out of less work:

- **Per row** (``marginalize z : K`` around ``observe y : Item <-
  Normal(mu[z], sd[z])``): :func:`normal_mixture` computes
  ``log sum_k exp(log pi_k + log N(y_n | mu_k, sd_k))`` for every row in
  one autograd node, in place, and its backward is the closed form: with
  responsibilities ``r``, upstream gradient ``g`` and ``d_nk = (y_n -
  mu_k) / sd_k``, the gradients of ``log pi``, ``mu`` and ``sd`` are
  ``sum_n g_n r_nk`` times ``1``, ``d_nk / sd_k`` and ``(d_nk^2 - 1) /
  sd_k``: three weighted sums over the table instead of the chain of
  nodes eager autograd would walk.
- **Grouped** (``[over=G]`` with ``observe ... [via=g]``): the sum of the
  log densities over the fibre ``g^{-1}(j)`` depends on the data only
  through the fibre's count ``n_j``, mean ``m_j`` and sum of squared
  deviations ``v_j`` (``sum_{n in j} (y_n - mu)^2 = v_j + n_j (m_j -
  mu)^2``), so :func:`grouped_normal_mixture` works on a ``(G, K)`` table
  whatever the number of rows; :func:`group_moments` computes the three
  per-group statistics once per data tensor.

Laws
----
- Both equal the general path (tested in float64 against it, gradients
  included); an empty fibre contributes ``0 = log 1``. Inside
  ``use_fused(False)`` every block takes the general path (needed only
  for derivatives of second order, which the fused backward does not
  provide).

Examples
--------
>>> import torch
>>> logw = torch.log(torch.tensor([0.3, 0.7]))
>>> loc, scale = torch.tensor([-1.0, 2.0]), torch.tensor([0.5, 1.0])
>>> y = torch.tensor([0.0, 1.5, -1.2])
>>> table = logw + torch.distributions.Normal(loc, scale).log_prob(y[:, None])
>>> torch.allclose(normal_mixture(logw, loc, scale, y), table.logsumexp(-1))
True
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from quivers.capture import _VECTORIZE_FROM, capturing
from quivers.programs.named import Value, logsumexp

__all__ = ["normal_mixture", "grouped_normal_mixture", "group_moments", "enabled", "use_fused"]

_ENABLED = True


def enabled() -> bool:
    """Whether programs use the fused kernels (the default)."""
    return _ENABLED


@contextlib.contextmanager
def use_fused(on: bool) -> Iterator[None]:
    """Turn the fused kernels on or off inside the block (off: every block
    takes the general path, e.g. to compare the two)."""
    global _ENABLED
    old, _ENABLED = _ENABLED, on
    try:
        yield
    finally:
        _ENABLED = old

_HALF_LOG_2PI = math.log(math.sqrt(2 * math.pi))
_LOG_TINY: dict[torch.dtype, float] = {}


def _log_tiny(dtype: torch.dtype) -> float:
    """``log`` of the smallest normal number of ``dtype``, rounded up to an
    integer (exp is slow at the exact value too)."""
    v = _LOG_TINY.get(dtype)
    if v is None:
        v = _LOG_TINY[dtype] = float(math.ceil(math.log(torch.finfo(dtype).tiny)))
    return v


def _sum_to(t: Tensor, shape: torch.Size) -> Tensor:
    """``t`` summed over the leading axes that broadcasting added to ``shape``."""
    if t.shape == shape:
        return t
    lead = t.dim() - len(shape)
    t = t.sum(dim=tuple(range(lead))) if lead else t
    keep = tuple(i for i, n in enumerate(shape) if n == 1 and t.shape[i] != 1)
    return t.sum(dim=keep, keepdim=True) if keep else t


# Elements of the (rows, K) table computed at once: a block of rows this
# size (1 MiB in float32) stays in the cache through the dozen passes of
# the forward and the backward, where a whole table of N=100,000 rows and
# K=32 (12 MiB) went out to memory between passes, 3x slower.
_BLOCK_ELEMENTS = 1 << 18


def _rows(
    base: Tensor, loc: Tensor, scale: Tensor, y: Tensor, transposed: bool
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """One block of rows ``y``: the standardized residuals ``d``, the
    shifted exponentials ``e``, the row totals for the backward (``inf``
    for a row of zero density) and the log density of each row."""
    # Shift by the row maximum; a row whose every component has log
    # density -inf (weights of zero) stays -inf with zero gradients.
    # Terms below the smallest normal number are raised to it before
    # exp: torch's vectorized exp takes a path ten times slower for
    # arguments that underflow, which well-separated components produce
    # on most of the table; each such term is then below the rounding
    # of a total of at least 1 (the largest term is exp(0)).
    # Recorded, out of place: a graph that writes nothing goes to inductor
    # without a second recording. ``transposed``: the table is laid out
    # components by rows, (K, N) (:func:`_table_axes`).
    fresh = capturing()
    k, n = _table_axes(transposed)
    d = y.unsqueeze(k) - loc.unsqueeze(n)
    d = d / scale.unsqueeze(n) if fresh else d.div_(scale.unsqueeze(n))
    t = torch.addcmul(base.unsqueeze(n), d, d, value=-0.5)
    top = t.amax(k, keepdim=True)
    shift = top.nan_to_num(nan=0.0, posinf=0.0, neginf=0.0)
    low = _log_tiny(t.dtype)
    t = (t - shift).clamp(min=low).exp() if fresh else t.sub_(shift).clamp_(min=low).exp_()
    total = t.sum(k)
    # A total below 1 is a row whose every term is -inf: dividing by
    # inf gives it gradients of exactly zero.
    return d, t, total.where(total >= 1.0, math.inf), total.log() + top.squeeze(k)


def _table_axes(transposed: bool) -> tuple[int, int]:
    """The axes of the components and of the rows in the ``(rows, K)``
    table of :func:`_rows`, or in its transpose ``(K, rows)``."""
    return (-2, -1) if transposed else (-1, -2)


def _transposed(loc: Tensor, y: Tensor) -> bool:
    """Whether the table is laid out ``(K, rows)``: when it is recorded
    and small enough for inductor's scalar loops (below
    :data:`~quivers.capture._VECTORIZE_FROM` elements), which then run
    along the rows, not along the few components. A NUTS leaf of the seed
    mixture at N=1,000, K=2 took 93 us against 103, and compiled in 2.3
    to 2.5 s against 2.7. A larger table keeps the components inner, where
    SIMD loops read them: the compiled SVI step at N=100,000, K=32 took
    34 ms transposed against 30 to 31."""
    if not capturing():
        return False
    rows = torch.broadcast_shapes(loc.shape[:-1], y.shape[:-1]).numel() * y.shape[-1]
    return rows * loc.shape[-1] < _VECTORIZE_FROM


class _NormalMixture(torch.autograd.Function):
    """``log sum_k exp(logw_k + log N(y_n | loc_k, scale_k))`` per row ``n``.

    ``logw``, ``loc`` and ``scale`` have shape ``(*B, K)``, ``y`` has
    shape ``(*B', N)``; the result has shape ``broadcast(B, B') + (N,)``.
    With ``weights`` set, the first argument holds unnormalized weights
    ``w`` and ``logw = log w - log sum_k w_k`` is taken here, where its
    backward costs two operations instead of four nodes of autograd.
    The forward keeps the standardized residuals ``d = (y - loc) / scale``
    and the unnormalized responsibilities ``e``; the backward is the
    closed form, three weighted sums over the table, in place. Rows go
    through in blocks of about ``_BLOCK_ELEMENTS`` entries of the table
    (each row's value is the same whatever the blocks; the sums over rows
    of the backward add the blocks' sums).
    """

    @staticmethod
    def forward(ctx, logw: Tensor, loc: Tensor, scale: Tensor, y: Tensor, weights: bool = False) -> Tensor:  # type: ignore[override]
        w = w_total = None
        if weights:
            w, w_total = logw, logw.sum(-1, keepdim=True)
            logw = torch.log(w / w_total)
        base = logw - (scale.log() + _HALF_LOG_2PI)
        per_row = max(base.numel(), y.numel() // max(1, y.shape[-1]) * base.shape[-1], 1)  # entries of a row, batches included
        rows = max(1, _BLOCK_ELEMENTS // per_row)
        transposed = _transposed(loc, y)
        blocks = [_rows(base, loc, scale, y, transposed)] if y.shape[-1] <= rows else [
            _rows(base, loc, scale, part, transposed) for part in y.split(rows, -1)
        ]
        ctx.rows, ctx.transposed = rows, transposed
        ctx.save_for_backward(scale, w, w_total, *(t for b in blocks for t in b[:3]))
        return blocks[0][3] if len(blocks) == 1 else torch.cat([b[3] for b in blocks], -1)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        scale, w, w_total, *saved = ctx.saved_tensors
        parts = grad.split(ctx.rows, -1) if len(saved) > 3 else (grad,)
        g0 = g1 = g2 = None
        k, n = _table_axes(ctx.transposed)
        for i, g in enumerate(parts):
            d, e, total = saved[3 * i : 3 * i + 3]
            r = e * (g / total).unsqueeze(k)  # g_n r_nk (a new table: backward may run again)
            s0 = r.sum(n)  # sum_n r
            r.mul_(d)
            s1 = r.sum(n)  # sum_n r d
            s2 = torch.linalg.vecdot(r, d, dim=n)  # sum_n r d^2
            g0, g1, g2 = (s0, s1, s2) if g0 is None else (g0.add_(s0), g1.add_(s1), g2.add_(s2))
        shape = scale.shape
        g_loc, g_scale = _sum_to(g1 / scale, shape), _sum_to((g2 - g0) / scale, shape)
        g0 = _sum_to(g0, shape)
        if w is not None:
            # d/dw_k of log w_k - log sum w: g0_k / w_k - sum_j g0_j / sum w.
            # A zero weight has log -inf, responsibility 0 and gradient 0
            # (as in the general path), not 0 / 0.
            g0 = torch.where(w > 0, g0 / w, 0.0) - g0.sum(-1, keepdim=True) / w_total
        return g0, g_loc, g_scale, None, None


def normal_mixture(logw: Tensor, loc: Tensor, scale: Tensor, y: Tensor, *, weights: bool = False) -> Tensor:
    """Per-row log mixture density ``log sum_k exp(logw_k + log N(y_n | loc_k, scale_k))``.

    ``logw``, ``loc`` and ``scale`` broadcast to ``(*B, K)``; ``y`` is
    ``(*B', N)`` and is not differentiated (it is data). With
    ``weights=True`` the first argument holds unnormalized weights ``w``
    (a Categorical's ``probs``) and ``logw`` is ``log w - log sum_k w_k``.
    """
    if not logw.shape == loc.shape == scale.shape:
        logw, loc, scale = torch.broadcast_tensors(logw, loc, scale)
    return _NormalMixture.apply(logw, loc, scale, y.detach(), weights)


def group_moments(y: Tensor, group: Tensor, groups: int) -> tuple[Tensor, Tensor, Tensor]:
    """Count, mean and sum of squared deviations of ``y`` (``(*B, N)``) in
    each of ``groups`` groups given by ``group`` (``(N,)``); an empty
    group has mean 0 and deviation 0."""
    batch = y.shape[:-1]
    count = torch.zeros(groups, dtype=y.dtype, device=y.device).index_add_(
        0, group, torch.ones_like(group, dtype=y.dtype)
    )
    total = torch.zeros(batch + (groups,), dtype=y.dtype, device=y.device).index_add_(-1, group, y)
    mean = torch.where(count > 0, total / count.clamp(min=1), torch.zeros_like(total))
    dev = (y - mean[..., group]) ** 2
    sq = torch.zeros(batch + (groups,), dtype=y.dtype, device=y.device).index_add_(-1, group, dev)
    return count, mean, sq


def grouped_normal_mixture(logw: Tensor, loc: Tensor, scale: Tensor, moments: tuple[Tensor, Tensor, Tensor]) -> Tensor:
    """Per-group log mixture density of a block grouped over ``G``:
    ``log sum_k exp(logw_jk + sum_{n in j} log N(y_n | loc_k, scale_k))``.

    ``logw`` broadcasts to ``(*B, G, K)``, ``loc`` and ``scale`` to
    ``(*B, K)``; ``moments`` are :func:`group_moments` of the data.
    """
    count, mean, sq = moments
    n = count.unsqueeze(-1)
    dev = mean.unsqueeze(-1) - loc.unsqueeze(-2)  # (..., G, K)
    table = logw - n * (scale.log() + _HALF_LOG_2PI).unsqueeze(-2) - 0.5 * (sq.unsqueeze(-1) + n * dev * dev) / (
        scale * scale
    ).unsqueeze(-2)
    return logsumexp(Value(table, ("__g", "__k")), "__k").tensor
