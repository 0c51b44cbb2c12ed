"""Markov chains on a finite set: the forward algorithm as a composition of
kernels, bracketed as a balanced tree.

A hidden Markov chain on states ``K`` over ``T`` steps has an initial law
``init`` on ``K``, transitions ``trans[t] : K -> K`` (from the state at
``t - 1`` to the state at ``t``) and emission weights ``emit[t, k]`` (the
log likelihood of what is seen at ``t`` in state ``k``). Write ``E_t`` for
the diagonal matrix of ``emit[t]`` and ``M_t = trans[t] >> E_t``, i.e.
``M_t[i, j] = trans[t][i, j] * emit[t, j]`` in the semiring. The weight of
all paths is the composite of morphisms ``1 -> K -> K -> ... -> K -> 1``::

    Z = init >> E_0 >> M_1 >> M_2 >> ... >> M_{T-1} >> delete(K)

In ``LOG`` this is the log likelihood (the forward algorithm); in
``MAX_PLUS`` it is the score of the best path (Viterbi). Composition is
associative, so the product can be bracketed as a balanced tree
(:func:`semiring_product`, depth ``O(log T)``) and its prefixes computed by
an associative scan (:func:`semiring_scan`, depth ``O(log T)``, ``O(T)``
products). Forward messages are the prefixes, backward messages the
suffixes; the Viterbi path and a posterior draw (forward filtering,
backward sampling) follow a suffix scan of functions ``K -> K`` under
composition: back-pointers for Viterbi, sampled back-pointers for FFBS.

Shapes
------
``emit`` is ``(..., T, K)``; ``init`` is ``(..., K)`` (``None``: uniform);
``trans`` is ``(..., K, K)``, one kernel for every step, or
``(..., T, K, K)``, one per step (``trans[..., 0, :, :]`` is unused). The
leading axes are independent sequences and broadcast: ``trans.shape[:-2]``
against ``emit.shape[:-1]``, ``init.shape[:-1]`` against
``emit.shape[:-2]``. ``lengths`` (integers in ``[0, T]``, broadcasting
against the sequences) ends each sequence early: its steps from
``lengths`` on are identities of the semiring, so nothing written there
counts, and messages, marginals and paths there repeat the last real step.

Laws
----
- ``semiring_scan(m)[t] == m[0] >> ... >> m[t]`` (the left fold) in every
  semiring; ``semiring_product(m) == semiring_scan(m)[-1]``; the product of
  no matrices is the identity.
- ``forward(init, trans, emit)`` is the semiring sum over all ``K ** T``
  paths of the product of their weights.
- In ``LOG`` the marginals of :func:`forward_backward` are the gradient of
  :func:`forward` with respect to ``emit``.
- The path of :func:`viterbi` has the score ``forward(..., MAX_PLUS)``.

Examples
--------
>>> init = torch.tensor([0.5, 0.5]).log()
>>> trans = torch.tensor([[0.9, 0.1], [0.2, 0.8]]).log()
>>> emit = torch.tensor([[0.0, -2.0], [0.0, -2.0], [-3.0, 0.0]])
>>> round(float(forward(init, trans, emit)), 4)
-2.5442
>>> viterbi(init, trans, emit).path
tensor([0, 0, 1])
>>> torch.allclose(forward_backward(init, trans, emit).marginals.sum(-1), torch.ones(3))
True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from quivers.capture import capturing
from quivers.categories.monoid import logsumexp
from quivers.categories.morphism import Morphism
from quivers.categories.semiring import LOG, MAX_PLUS, PROB, Semiring
from quivers.errors import DataError, InvalidValueError, QuiversTypeError, ShapeError

__all__ = [
    "associative_scan",
    "semiring_scan",
    "semiring_product",
    "forward",
    "forward_backward",
    "viterbi",
    "ffbs",
    "path_score",
    "ForwardBackward",
    "ViterbiPath",
]

# Semirings without a specialized matrix product materialize an
# (..., n, m, k) tensor; stacks are contracted in pieces of at most this
# many entries so that long chains with many states fit in memory.
_CHUNK = 1 << 24

FORWARD_BYTES = 1 << 30
"""The step matrices :func:`forward` holds at once, at most, by default (1 GiB)."""


# ---------------------------------------------------------------- scans


def associative_scan(
    combine: Callable[[Tensor, Tensor], Tensor], elems: Tensor, dim: int = 0, reverse: bool = False
) -> Tensor:
    """Inclusive scan of ``elems`` along ``dim`` under an associative
    ``combine``: ``out[t] = e[0] . e[1] . ... . e[t]`` (with ``reverse``,
    ``out[t] = e[t] . ... . e[-1]``).

    ``combine`` takes two stacks of elements along axis 0 and combines them
    pairwise. The scan pairs neighbours, scans the pairs recursively and
    fills in the rest: ``O(n)`` combinations in ``O(log n)`` rounds, each
    round one vectorized call of ``combine``.

    Examples
    --------
    >>> associative_scan(torch.add, torch.arange(1, 6))
    tensor([ 1,  3,  6, 10, 15])
    >>> compose = lambda f, g: f.gather(-1, g)  # (f . g)(k) = f(g(k))
    >>> fs = torch.tensor([[1, 0], [1, 1], [0, 0]])
    >>> associative_scan(compose, fs, reverse=True)  # fs[t] . ... . fs[-1]
    tensor([[0, 0],
            [1, 1],
            [0, 0]])
    """
    if not isinstance(elems, Tensor):
        raise QuiversTypeError(f"`elems` must be a torch.Tensor, got {type(elems).__name__}")
    x = elems.movedim(dim, 0)
    if reverse:
        out = _scan(lambda a, b: combine(b, a), x.flip(0)).flip(0)
    else:
        out = _scan(combine, x)
    return out.movedim(0, dim)


def _scan(combine: Callable[[Tensor, Tensor], Tensor], x: Tensor) -> Tensor:
    n = x.shape[0]
    if n < 2:
        return x
    odd = _scan(combine, combine(x[0 : n - 1 : 2], x[1::2]))  # out[2i + 1]
    evens = torch.cat([x[:1], combine(odd[: (n - 1) // 2], x[2::2])])  # out[2i]
    m = odd.shape[0]
    woven = torch.stack([evens[:m], odd], 1).reshape(2 * m, *odd.shape[1:])
    return torch.cat([woven, evens[m:]]) if n % 2 else woven


def _contract(semiring: Semiring, a: Tensor, b: Tensor) -> Tensor:
    """``semiring.contract`` of two stacks, in pieces along axis 0 where
    the semiring would materialize too large a tensor."""
    if semiring.matmul is None and a.dim() > 2 and a.shape[0] == b.shape[0] > 1:
        per = math.prod(torch.broadcast_shapes(a.shape[1:-2], b.shape[1:-2])) or 1
        per *= a.shape[-2] * a.shape[-1] * b.shape[-1]
        step = max(1, _CHUNK // max(per, 1))
        if step < a.shape[0]:
            return torch.cat([
                semiring.contract(a[i : i + step], b[i : i + step]) for i in range(0, a.shape[0], step)
            ])
    return semiring.contract(a, b)


def _check_stack(mats: object, semiring: Semiring, what: str = "mats") -> Tensor:
    if not isinstance(semiring, Semiring):
        raise QuiversTypeError(f"`semiring` must be a Semiring, got {semiring!r}")
    mats = semiring.check_dtype(mats, f"`{what}`")
    if mats.dim() < 3 or mats.shape[-1] != mats.shape[-2]:
        raise ShapeError(
            f"`{what}` has shape {tuple(mats.shape)}; it must be a stack of square matrices, (..., T, K, K)"
        )
    return mats


def _identity(semiring: Semiring, k: int, like: Tensor) -> Tensor:
    eye = torch.eye(k, dtype=torch.bool, device=like.device)
    one = torch.tensor(semiring.one, dtype=like.dtype, device=like.device)
    zero = torch.tensor(semiring.zero, dtype=like.dtype, device=like.device)
    return torch.where(eye, one, zero)


def semiring_scan(mats: Tensor, semiring: Semiring = LOG, reverse: bool = False) -> Tensor:
    """Prefix products of a stack of square matrices in ``semiring``.

    ``out[..., t, :, :] = mats[..., 0, :, :] >> ... >> mats[..., t, :, :]``;
    with ``reverse``, the suffixes ``mats[t] >> ... >> mats[T - 1]``.
    Depth ``O(log T)``: see :func:`associative_scan`.

    Examples
    --------
    >>> from quivers.categories.semiring import MAX_PLUS
    >>> m = torch.tensor([[[0.0, 1.0], [2.0, 0.0]]]).expand(3, 2, 2)
    >>> semiring_scan(m, MAX_PLUS)[-1]
    tensor([[3., 4.],
            [5., 3.]])
    """
    mats = _check_stack(mats, semiring)
    return associative_scan(lambda a, b: _contract(semiring, a, b), mats, dim=-3, reverse=reverse)


def semiring_product(mats: Tensor, semiring: Semiring = LOG) -> Tensor:
    """The ordered product ``mats[0] >> ... >> mats[T - 1]`` of a stack of
    square matrices, bracketed as a balanced tree (depth ``O(log T)``,
    ``T - 1`` products); of an empty stack, the identity.

    Examples
    --------
    >>> m = torch.tensor([[[0.5, 0.5], [0.0, 1.0]]]).expand(4, 2, 2)
    >>> from quivers.categories.semiring import PROB
    >>> semiring_product(m, PROB)
    tensor([[0.0625, 0.9375],
            [0.0000, 1.0000]])
    """
    mats = _check_stack(mats, semiring)
    x = mats.movedim(-3, 0)
    if x.shape[0] == 0:
        eye = _identity(semiring, mats.shape[-1], mats)
        return eye.expand(*mats.shape[:-3], *eye.shape).clone()
    n = x.shape[0]
    if capturing() and n & (n - 1):
        # recorded, identities pad the stack to a power of two: one join
        # instead of a split and a join at each level with an odd count
        eye = _identity(semiring, x.shape[-1], x)
        x = torch.cat([x, eye.expand((1 << (n - 1).bit_length()) - n, *x.shape[1:])])
    while x.shape[0] > 1:
        n = x.shape[0]
        # pairs by a reshape and an unbind, the odd last matrix by a split:
        # strided slices would each cost a zero-filled copy of the whole
        # stack in the backward pass
        even, last = x.split([n - n % 2, n % 2]) if n % 2 else (x, None)
        left, right = even.reshape(n // 2, 2, *x.shape[1:]).unbind(1)
        head = _contract(semiring, left, right)
        x = head if last is None else torch.cat([head, last])
    return x[0]


# ---------------------------------------------------------------- chains


class _Chain(NamedTuple):
    semiring: Semiring
    start: Tensor  # (..., K): init >> E_0
    step_trans: Tensor  # (..., 1 or T - 1, K, K): the kernels of steps 1 ... T-1
    emit: Tensor  # (..., T, K)
    batch: tuple[int, ...]
    live: Tensor | None  # (..., T - 1): steps before each sequence's end

    @property
    def steps(self) -> int:
        return self.emit.shape[-2]

    def mats_between(self, a: int, b: int) -> Tensor:
        """``M_{a+1} ... M_b``, ``(..., b - a, K, K)``: built on demand, so
        that a long chain need not hold all its step matrices at once."""
        k = self.emit.shape[-1]
        trans = self.step_trans if self.step_trans.shape[-3] == 1 else self.step_trans[..., a:b, :, :]
        mats = self.semiring.mul(trans, self.emit[..., a + 1 : b + 1, None, :]).expand(*self.batch, b - a, k, k)
        if self.live is None:
            return mats
        live = self.live[..., a:b, None, None]
        return torch.where(live, mats, _identity(self.semiring, k, mats))

    @property
    def mats(self) -> Tensor:
        """``M_1 ... M_{T-1}``, identities past each sequence's end."""
        return self.mats_between(0, self.steps - 1)


class ForwardBackward(NamedTuple):
    """The log likelihood of each sequence, ``(...)``, and the posterior
    marginal of the state at each step, ``(..., T, K)``."""

    log_z: Tensor
    marginals: Tensor


class ViterbiPath(NamedTuple):
    """The best path's score (log joint of path and emissions), ``(...)``,
    and the path, ``(..., T)``."""

    score: Tensor
    path: Tensor


def _emissions(emit: object) -> tuple[Tensor, int, int]:
    """The emission log weights ``(..., T, K)``, with ``T`` and ``K``."""
    emit = _log_weights(emit, "emit")
    if emit.dim() < 2 or 0 in emit.shape[-2:]:
        raise ShapeError(
            f"`emit` has shape {tuple(emit.shape)}; it must be (..., T, K) with at least one step and one state"
        )
    return emit, *emit.shape[-2:]


def _log_weights(x: object, what: str) -> Tensor:
    """A tensor of log weights; a Kernel or Morphism in PROB is logged."""
    if isinstance(x, Morphism):
        if x.dom.size != x.cod.size and what == "trans":
            raise ShapeError(f"`trans` must be a kernel from a set to a set of the same size, got `{x.dom} -> {x.cod}`")
        if x.semiring == PROB:
            return x.tensor.log()
        if x.semiring != LOG:
            raise QuiversTypeError(f"`{what}` is a morphism in `{x.semiring}`; give it in PROB or LOG")
        return x.tensor
    if not isinstance(x, Tensor):
        raise QuiversTypeError(f"`{what}` must be a torch.Tensor, Kernel or Morphism, got {type(x).__name__}")
    if not x.is_floating_point():
        raise QuiversTypeError(f"`{what}` must be floating point, got {x.dtype}")
    return x


def _where(t: Tensor) -> tuple[int, ...]:
    return tuple(int(i) for i in t.nonzero()[0])


def _check_law(lw: Tensor, what: str, first_step: int | None) -> None:
    """Each law of the log weights ``lw`` (along its last axis) sums to one.
    For ``trans`` the laws are rows, of a stack of kernels whose first is at
    step ``first_step`` unless that is None."""
    total = logsumexp(lw.detach(), -1)
    off = ~(total.abs() <= torch.finfo(lw.dtype).eps ** 0.5)
    if not bool(off.any()):
        return
    where = _where(off)
    if what == "init":
        place, seq = "the law", where
    elif first_step is None:
        place, seq = f"row {where[-1]}", where[:-1]
    else:
        place, seq = f"row {where[-1]} at step {where[-2] + first_step}", where[:-2]
    place += f" of sequence {seq}" if seq else ""
    raise InvalidValueError(
        f"{place} of `{what}` sums to {math.exp(float(total[where])):.6g}, not 1",
        hint=f"`{what}` holds log probabilities; pass check=False for weights that are not a kernel",
    )


def _lengths(lengths: object, batch: tuple[int, ...], steps: int, device) -> Tensor:
    t = torch.as_tensor(lengths, device=device)
    # the values are data: a graph being captured cannot read them, and the
    # potential's eager first call checked the same ones
    read = not capturing()
    if t.is_floating_point():
        if read and not bool((t == t.round()).all()):
            raise DataError(f"`lengths` must hold whole numbers, got {t.tolist()!r}")
        t = t.long()
    if t.dtype == torch.bool or t.is_complex():
        raise QuiversTypeError(f"`lengths` must hold integers, got dtype {t.dtype}")
    bad = (t < 0) | (t > steps)
    if read and bool(bad.any()):
        where = _where(bad)
        raise DataError(
            f"`lengths` has {int(t[where])} at {where}, beyond the {steps} steps of the emissions",
            hint=f"lengths lie in [0, {steps}]",
        )
    try:
        torch.broadcast_shapes(tuple(t.shape), batch)
    except RuntimeError:
        raise ShapeError(
            f"`lengths` of shape {tuple(t.shape)} does not broadcast against the sequences' shape {batch}"
        ) from None
    return t


def _chain(
    init: object, trans: object, emit: object, lengths: object, semiring: Semiring, check: bool
) -> _Chain:
    if semiring not in (LOG, MAX_PLUS):
        raise QuiversTypeError(f"chains are scored in LOG or MAX_PLUS (log weights), not in `{semiring!r}`")
    emit, steps, k = _emissions(emit)
    trans = _log_weights(trans, "trans")
    if trans.dim() < 2 or tuple(trans.shape[-2:]) != (k, k):
        raise ShapeError(
            f"`trans` has shape {tuple(trans.shape)}, but the emissions of shape {tuple(emit.shape)} "
            f"have {k} states: it must be (..., {k}, {k}) or (..., T, {k}, {k})"
        )
    if trans.dim() >= 3 and trans.shape[-3] not in (1, steps):
        raise ShapeError(
            f"`trans` of shape {tuple(trans.shape)} has {trans.shape[-3]} steps on its axis -3, "
            f"but the emissions have {steps}",
            hint="the axis before the two state axes is time; give (..., 1, K, K) for one kernel per sequence",
        )
    if init is None:
        init = emit.new_full((k,), -math.log(k))
    init = _log_weights(init, "init")
    if init.dim() < 1 or init.shape[-1] != k:
        raise ShapeError(f"`init` has shape {tuple(init.shape)}; the emissions have {k} states, so it must be (..., {k})")
    try:
        batch = torch.broadcast_shapes(
            tuple(init.shape[:-1]), tuple(emit.shape[:-2]), tuple(trans.shape[:-3])
        )
    except RuntimeError:
        raise ShapeError(
            f"the sequences of `init` {tuple(init.shape[:-1])}, `trans` {tuple(trans.shape[:-3])} and "
            f"`emit` {tuple(emit.shape[:-2])} do not broadcast"
        ) from None
    dtype = torch.promote_types(torch.promote_types(init.dtype, trans.dtype), emit.dtype)
    init, trans, emit = init.to(dtype), trans.to(dtype), emit.to(dtype)
    if check:
        bad = torch.isnan(emit.detach()) | (emit.detach() == math.inf)
        if bool(bad.any()):
            raise InvalidValueError(f"`emit` is {float(emit[_where(bad)])} at {_where(bad)}; log weights are reals or -inf")
        _check_law(init, "init", None)
        if trans.dim() >= 3 and trans.shape[-3] > 1:  # one kernel per step; the first is unused
            _check_law(trans[..., 1:, :, :], "trans", 1)
        else:
            _check_law(trans, "trans", 0 if trans.dim() >= 3 else None)
    start = semiring.mul(init, emit[..., 0, :])
    if trans.dim() < 3:
        step_trans = trans.unsqueeze(-3)
    else:  # its time axis: one kernel per step (the first unused) or one for all
        step_trans = trans[..., 1:, :, :] if trans.shape[-3] == steps else trans
    start = start.expand(*batch, k)
    live = None
    if lengths is not None:
        n = _lengths(lengths, batch, steps, emit.device)
        start = torch.where((n > 0)[..., None], start, init.expand(*batch, k))
        live = torch.arange(1, steps, device=emit.device) < n[..., None]
    return _Chain(semiring, start, step_trans, emit, tuple(batch), live)


def _total(c: _Chain, product: Tensor) -> Tensor:
    ends = c.semiring.contract(c.start.unsqueeze(-2), product).squeeze(-2)
    return c.semiring.sum(ends, -1)


def _alphas(c: _Chain) -> Tensor:
    """Forward messages ``start >> M_1 >> ... >> M_t`` for every ``t``: ``(..., T, K)``."""
    first = c.start.unsqueeze(-2)
    if c.steps == 1:
        return first
    prefix = semiring_scan(c.mats, c.semiring)
    rest = c.semiring.contract(c.start[..., None, None, :], prefix).squeeze(-2)
    return torch.cat([first, rest], -2)


def _betas(c: _Chain) -> Tensor:
    """Backward messages ``M_{t+1} >> ... >> M_{T-1} >> delete`` for every ``t``: ``(..., T, K)``."""
    one = c.start.new_full((*c.start.shape[:-1], 1, c.start.shape[-1]), c.semiring.one)
    if c.steps == 1:
        return one
    suffix = semiring_scan(c.mats, c.semiring, reverse=True)
    return torch.cat([c.semiring.sum(suffix, -1), one], -2)


def _follow(pointers: Tensor, last: Tensor) -> Tensor:
    """The path ending in ``last`` that follows the back-pointers:
    ``pointers[..., t, k]`` is the state at ``t`` given state ``k`` at
    ``t + 1``. The pointers are functions ``K -> K``; the states are their
    suffix composites applied to ``last``."""
    if pointers.shape[-2] == 0:
        return last.unsqueeze(-1)
    suffix = associative_scan(lambda f, g: f.gather(-1, g), pointers, dim=-2, reverse=True)
    at = last[..., None, None].expand(*suffix.shape[:-1], 1)
    return torch.cat([suffix.gather(-1, at).squeeze(-1), last.unsqueeze(-1)], -1)


def forward(
    init: Tensor | None,
    trans: Tensor | Morphism,
    emit: Tensor,
    lengths: Tensor | Sequence[int] | None = None,
    semiring: Semiring = LOG,
    check: bool = True,
    max_bytes: int = FORWARD_BYTES,
) -> Tensor:
    """The total weight of all paths of a chain, ``(...)``: in ``LOG`` the
    log likelihood of each sequence, in ``MAX_PLUS`` the best path's score.

    Computed as a balanced product of the step matrices
    (:func:`semiring_product`), depth ``O(log T)``; differentiable.

    Parameters
    ----------
    init, trans, emit, lengths
        Log initial law, log transition kernels, log emission weights and
        sequence lengths; see the module docstring for their shapes.
        ``trans`` may be a :class:`~quivers.categories.Kernel` ``K -> K``.
    semiring
        ``LOG`` (sum over paths) or ``MAX_PLUS`` (best path).
    check
        Check that ``init`` and the rows of ``trans`` are laws (sum to one)
        and that ``emit`` has no NaN or ``+inf``; ``check=False`` skips it,
        for weights that are not kernels (a linear-chain CRF's potentials).
    max_bytes
        The most memory the step matrices ``(..., T - 1, K, K)`` may take at
        once. Longer chains are folded in blocks of steps that fit, each
        block's product recomputed in the backward pass (activation
        checkpointing): the same value and gradient, at about one more
        forward pass of work, in memory that does not grow with ``T``.

    Raises
    ------
    ShapeError, InvalidValueError, DataError
        Shapes that do not fit, rows that are not laws, lengths beyond the
        emissions' steps.

    Examples
    --------
    >>> from quivers.categories import FinSet, Kernel
    >>> K = FinSet("K", 2)
    >>> A = Kernel(K, K, torch.tensor([[0.9, 0.1], [0.2, 0.8]]))
    >>> emit = torch.zeros(5, 2)
    >>> torch.allclose(forward(None, A, emit), torch.tensor(0.0), atol=1e-6)  # no evidence: the paths' probabilities sum to one
    True
    >>> best = forward(None, A, emit, semiring=MAX_PLUS).exp()  # the best path: stay in state 0
    >>> math.isclose(float(best), 0.5 * 0.9 ** 4, rel_tol=1e-5)
    True
    """
    c = _chain(init, trans, emit, lengths, semiring, check)
    k = c.start.shape[-1]
    size = math.prod(c.batch) * (c.steps - 1) * k * k * c.emit.element_size()
    if size <= max_bytes:
        return _total(c, semiring_product(c.mats, semiring))
    # Too many step matrices to hold at once: a left fold over blocks of
    # steps, each block's product recomputed in the backward pass instead
    # of kept, so memory is one block's matrices and a message per block.
    block = max(1, max_bytes // max(1, size // (c.steps - 1)))
    alpha = c.start
    for a in range(0, c.steps - 1, block):
        b = min(a + block, c.steps - 1)
        alpha = checkpoint(_advance, c, a, b, alpha, use_reentrant=False)
    return semiring.sum(alpha, -1)


def _advance(c: _Chain, a: int, b: int, alpha: Tensor) -> Tensor:
    """The message ``alpha >> M_{a+1} >> ... >> M_b``."""
    product = semiring_product(c.mats_between(a, b), c.semiring)
    return c.semiring.contract(alpha.unsqueeze(-2), product).squeeze(-2)


def forward_backward(
    init: Tensor | None,
    trans: Tensor | Morphism,
    emit: Tensor,
    lengths: Tensor | Sequence[int] | None = None,
    check: bool = True,
) -> ForwardBackward:
    """Posterior marginals of the states by forward-backward in ``LOG``.

    The forward messages are the prefix products of the step matrices and
    the backward messages their suffix products, both by
    :func:`semiring_scan`; ``log p(z_t = k | emit) = alpha[t, k] +
    beta[t, k] - log_z``.

    Examples
    --------
    >>> init = torch.tensor([0.5, 0.5]).log()
    >>> trans = torch.tensor([[0.9, 0.1], [0.1, 0.9]]).log()
    >>> emit = torch.tensor([[0.0, -5.0], [0.0, 0.0], [-5.0, 0.0]])
    >>> forward_backward(init, trans, emit).marginals.round(decimals=3)
    tensor([[0.9710, 0.0290],
            [0.5000, 0.5000],
            [0.0290, 0.9710]])
    """
    c = _chain(init, trans, emit, lengths, LOG, check)
    alphas, betas = _alphas(c), _betas(c)
    log_z = logsumexp(alphas[..., -1, :], -1)
    return ForwardBackward(log_z, (alphas + betas - log_z[..., None, None]).exp())


def viterbi(
    init: Tensor | None,
    trans: Tensor | Morphism,
    emit: Tensor,
    lengths: Tensor | Sequence[int] | None = None,
    check: bool = True,
) -> ViterbiPath:
    """The most probable path: the forward messages in ``MAX_PLUS`` by a
    scan, back-pointers at every step at once, and the path by a suffix
    scan of the back-pointers under composition.

    Ties go to the lowest state; the path always has the best score.

    Examples
    --------
    >>> init = torch.tensor([0.5, 0.5]).log()
    >>> trans = torch.tensor([[0.9, 0.1], [0.1, 0.9]]).log()
    >>> emit = torch.tensor([[0.0, -5.0], [-1.0, 0.0], [-5.0, 0.0]])
    >>> viterbi(init, trans, emit).path
    tensor([0, 1, 1])
    """
    c = _chain(init, trans, emit, lengths, MAX_PLUS, check)
    alphas = _alphas(c)
    score, last = alphas[..., -1, :].max(-1)
    pointers = (alphas[..., :-1, :, None] + c.mats).argmax(-2)
    return ViterbiPath(score, _follow(pointers, last))


def _gumbel(shape: Sequence[int], like: Tensor, generator: torch.Generator | None) -> Tensor:
    u = torch.rand(tuple(shape), generator=generator, dtype=like.dtype, device=like.device)
    return -torch.log(-torch.log(u.clamp(min=torch.finfo(u.dtype).tiny)))


def ffbs(
    init: Tensor | None,
    trans: Tensor | Morphism,
    emit: Tensor,
    lengths: Tensor | Sequence[int] | None = None,
    sample_shape: Sequence[int] = (),
    generator: torch.Generator | None = None,
    check: bool = True,
) -> Tensor:
    """Paths drawn from the posterior given the emissions (forward
    filtering, backward sampling), ``sample_shape + (..., T)``.

    The forward messages come from a scan. Backward sampling draws, for
    every step ``t`` and every state ``k`` at once, the state at ``t``
    given state ``k`` at ``t + 1`` (by the Gumbel-max trick): a random
    function ``K -> K`` per step. The path is the suffix composites of
    these functions applied to a draw of the last state, so the draw too
    has depth ``O(log T)``. With ``emit`` all zeros the draws are from the
    chain's prior.

    Examples
    --------
    >>> init = torch.tensor([0.5, 0.5]).log()
    >>> trans = torch.tensor([[0.9, 0.1], [0.1, 0.9]]).log()
    >>> emit = torch.tensor([[0.0, -20.0], [0.0, 0.0], [-20.0, 0.0]])
    >>> draws = ffbs(init, trans, emit, sample_shape=(1000,), generator=torch.Generator().manual_seed(0))
    >>> draws.shape, bool((draws[:, 0] == 0).all()), bool((draws[:, 2] == 1).all())
    (torch.Size([1000, 3]), True, True)
    """
    c = _chain(init, trans, emit, lengths, LOG, check)
    alphas = _alphas(c)
    shape = tuple(sample_shape) + tuple(alphas.shape[:-2])
    k = alphas.shape[-1]
    last = (alphas[..., -1, :] + _gumbel((*shape, k), alphas, generator)).argmax(-1)
    noise = _gumbel((*shape, c.steps - 1, k, k), alphas, generator)
    pointers = (alphas[..., :-1, :, None] + c.mats + noise).argmax(-2)
    return _follow(pointers, last)


def path_score(
    init: Tensor | None,
    trans: Tensor | Morphism,
    path: Tensor,
    emit: Tensor | None = None,
    lengths: Tensor | Sequence[int] | None = None,
    check: bool = True,
) -> Tensor:
    """The log probability of ``path`` (``(..., T)`` states) under the chain,
    plus its emission weights when ``emit`` is given: ``init[z_0] +
    sum_t trans[t][z_{t-1}, z_t] + sum_t emit[t, z_t]``, steps from
    ``lengths`` on left out.

    Examples
    --------
    >>> trans = torch.tensor([[0.9, 0.1], [0.2, 0.8]]).log()
    >>> path_score(None, trans, torch.tensor([0, 0, 1])).exp()
    tensor(0.0450)
    """
    path = torch.as_tensor(path)
    if path.dim() < 1 or path.is_floating_point() or path.dtype == torch.bool:
        raise QuiversTypeError(f"`path` must be an integer tensor (..., T), got dtype {path.dtype}, shape {tuple(path.shape)}")
    trans_t = _log_weights(trans, "trans")
    k = trans_t.shape[-1] if trans_t.dim() >= 2 else 0
    weights = emit if emit is not None else trans_t.new_zeros(path.shape[-1], max(k, 1))
    c = _chain(init, trans, weights, lengths, LOG, check)
    steps, k = weights.shape[-2], weights.shape[-1]
    if path.shape[-1] != steps:
        raise ShapeError(f"`path` has {path.shape[-1]} steps, the chain {steps}")
    bad = (path < 0) | (path >= k)
    # not while capturing: a graph cannot read the path, which in a
    # potential is data, checked by the potential's eager first call
    if not capturing() and bool(bad.any()):
        raise DataError(f"`path` has state {int(path[_where(bad)])} at {_where(bad)}, outside [0, {k})")
    path = path.to(c.start.device)
    batch = torch.broadcast_shapes(tuple(path.shape[:-1]), tuple(c.start.shape[:-1]))
    path = path.expand(*batch, steps)
    first = c.start.expand(*batch, k).gather(-1, path[..., :1]).squeeze(-1)
    if steps == 1:
        return first
    mats = c.mats.expand(*batch, steps - 1, k, k)
    rows = mats.gather(-2, path[..., :-1, None, None].expand(*batch, steps - 1, 1, k)).squeeze(-2)
    return first + rows.gather(-1, path[..., 1:, None]).squeeze(-1).sum(-1)
