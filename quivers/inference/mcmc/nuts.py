"""The No-U-Turn Sampler, iterative and vectorized across chains.

This is Stan's NUTS (multinomial sampling of the trajectory, biased
progressive sampling between subtrees, the generalized U-turn criterion on
``M^{-1} p`` with Stan's extra checks across merged subtrees) written
without recursion, so that every chain of a batch advances its leapfrog
steps together: one batched potential call per leapfrog step, whatever the
number of chains.

How the recursion is unrolled. At tree depth ``j`` each chain doubles its
trajectory with a subtree of ``2^j`` leaves, built leaf by leaf. A
sub-subtree of size ``2^k`` ends at leaf ``n`` exactly when the ``k`` lowest
bits of ``n`` are ones; its first leaf ``a`` was even, and ``a``'s momentum
and the running momentum sum before ``a`` were stored in checkpoint slot
``popcount(a)`` (the slots of sub-subtrees still open never collide). So
at odd leaf ``n`` the U-turn checks of all sub-subtrees closing there read
the contiguous slots ``popcount(n >> 1) - trailing_ones(n) + 1 ..
popcount(n >> 1)`` in one batched operation (the scheme of NumPyro's and
TFP's iterative NUTS). Stan's extra checks across the halves ``[a, m]`` and
``[m + 1, n]`` of a closing sub-subtree need two more leaves: ``m + 1`` is
the first leaf of the next smaller closing sub-subtree (one slot up), and
the odd leaf ``m`` is kept in a second set of slots indexed by its number
of trailing ones. Within a subtree the proposal is drawn by progressive
multinomial sampling, leaf by leaf, which selects each leaf with
probability proportional to ``exp(-H)`` as Stan's recursive merge does.
With ``jit_compile`` the leaf is one compiled graph; for up to
:data:`_CHECKS_IN_LEAF` checkpoint elements it carries the checkpoints as
``(5, S, C, D)`` arrays and makes every U-turn check itself, reading the
slots through masks precomputed per leaf, counts itself in the
transition's tally, merges the subtree into the trajectory as if it ended
there (the last leaf's merge is the subtree's), and, as the first leaf of
a subtree, starts it from the trajectory's end, so that a leaf costs one
call and a doubling nothing besides its leaves: a transition draws the
uniforms of its first subtrees at once (:meth:`NUTS._draws`).

Per-chain masks carry what recursion would: a chain whose subtree turned or
diverged stops contributing, its leapfrogs still run in the batch but their
results are discarded, and the potential is fed a finite stand-in point
instead of its (possibly NaN) position. The batch stops as soon as no chain
is still building.

Laws: given the same momentum and directions, each chain's tree depth,
number of steps and divergence equal those of Stan's recursive algorithm
(the tests transcribe it as an oracle); the target is invariant (checked
against closed forms); the number of potential calls in a transition is
the largest ``n_steps`` among the chains, not their sum.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import Tensor

from quivers.inference.mcmc.compiled import compile_recorded, warn_eager
from quivers.inference.mcmc.hamiltonian import (
    energy,
    finite_or_inf,
    leapfrog,
    sample_momentum,
    scaled,
    sharp,
)
from quivers.inference.mcmc.init import InitStrategy
from quivers.inference.mcmc.kernel import ChainState, HamiltonianKernel, _positive

__all__ = ["NUTS"]

_CHECKS_IN_LEAF = 1 << 14
"""The compiled leaf makes every U-turn check of its subtree, reading the
checkpoints through masks, when a set of checkpoints (slots x chains x
coordinates) has at most this many elements; a larger one would cost a
copy a leaf, and the checks that close more than two leaves are made
outside the leaf, on the slots they read."""

_DRAWN_AHEAD = 5
"""A transition draws the uniforms of its subtrees of depth below this in
one call, into a buffer whose row views are made once a run; a deeper
subtree (rare) draws its own block. On 4 chains the one call costs 2.6 us,
where each subtree's own block and its views cost 5 to 11 us."""


def _checkpoint_plan(num_leaves: int) -> list[tuple[int, int, int, int]]:
    """For each leaf ``n`` of a subtree: ``(slot, lo, hi, closing)``.

    An even leaf is stored in ``slot``. An odd leaf closes ``closing``
    sub-subtrees (its trailing ones), of sizes ``2, 4, ..., 2^closing``;
    their first leaves sit in slots ``lo..hi``, the largest first."""
    plan = []
    for n in range(num_leaves):
        if n % 2 == 0:
            plan.append((n.bit_count(), 0, -1, 0))
        else:
            hi = (n >> 1).bit_count()
            closing = (~n & (n + 1)).bit_length() - 1
            plan.append((-1, hi - closing + 1, hi, closing))
    return plan


def _leaf(
    potential: Callable[[Tensor], Tensor],
    min_log_weight: float,
    z: Tensor,
    p: Tensor,
    g: Tensor,
    half: Tensor,
    drift: Tensor,
    inv_mass: Tensor,
    h0: Tensor,
    building: Tensor,
    fallback: Tensor,
    log_weight: Tensor,
    proposal: Tensor,
    log_u: Tensor,
    *,
    first: bool = False,
    every: bool = False,
) -> tuple[Tensor, ...]:
    """One leaf of a subtree: a leapfrog step of every chain, its energy,
    and the progressive multinomial choice of the subtree's proposal.

    Returns the leaf's ``z``, ``p``, gradient and ``M^{-1} p``, its log
    weight, which chains still build (``building`` without those whose
    energy error passed ``-min_log_weight``), and the subtree's log weight
    and proposal ``[z | grad | U | H]`` after it. ``first`` (the subtree's
    first leaf: ``log_weight`` is ``-inf``) and ``every`` (every chain
    builds) only skip operations whose result they know; the values are
    the same without them, which is how the compiled leaf is recorded."""
    if every:
        z, p, u, g = leapfrog(z, p, g, half, drift, potential)
    else:
        z, p, u, g = leapfrog(z, p, g, half, drift, potential, valid=building, fallback=fallback)
    v = sharp(p, inv_mass)
    h = finite_or_inf(torch.add(u, torch.linalg.vecdot(p, v), alpha=0.5))
    log_w = h0 - h
    ok = building & (log_w >= min_log_weight)
    leaf = torch.cat([z, g, u.unsqueeze(-1), h.unsqueeze(-1)], -1)
    if first:  # logaddexp(-inf, log_w) is log_w, and the one leaf is the proposal
        return z, p, g, v, log_w, ok, torch.where(ok, log_w, -torch.inf), leaf
    new_weight = torch.logaddexp(log_weight, log_w)
    take = ok & (log_u < log_w - new_weight)
    log_weight = torch.where(ok, new_weight, log_weight)
    return z, p, g, v, log_w, ok, log_weight, torch.where(take.unsqueeze(-1), leaf, proposal)


def _leaf_and_pair(
    potential: Callable[[Tensor], Tensor], min_log_weight: float, *args: Tensor
) -> tuple[Tensor, ...]:
    """:func:`_leaf` (its twelve arguments first), then the momentum sum
    ``rho`` before this leaf, the previous leaf's ``M^{-1} p`` and the sum
    before it, and the transition's tally (:func:`_count`): also returns
    the sum after this leaf, which chains still build if this leaf closes a
    sub-subtree of two leaves with the previous one (the U-turn check of
    half the odd leaves), and the tally with this leaf counted, so that the
    compiled leaf does that bookkeeping too."""
    *leaf_args, rho, prev_sharp, prev_rho, tally = args
    z, p, g, v, log_w, ok, log_weight, proposal = _leaf(potential, min_log_weight, *leaf_args)
    rho = rho + p
    ok_pair = ok & ~_turning(prev_sharp, v, rho - prev_rho)
    tally = _count(tally, log_w, leaf_args[7], -min_log_weight)
    return z, p, g, v, log_w, ok, log_weight, proposal, rho, ok_pair, tally


def _leaf_and_checks(
    potential: Callable[[Tensor], Tensor], min_log_weight: float, *args: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """One leaf of a subtree with all of its bookkeeping, the subtree's
    start included, as one graph for the compiled leaf.

    ``args``: what the previous leaf carries (packed, :func:`_carry_parts`),
    the chains' step sizes ``(C, 1)``, inverse mass matrices and initial
    energies, the trajectory before the subtree with its active chains
    (packed, :func:`_tree_parts` and one more column), three uniform
    draws (the subtree's direction, forward below one half; the merge's;
    this leaf's), and the leaf's masks ``(6, S)`` (:func:`_leaf_masks`).

    The first leaf of a subtree (the masks' last row) starts it from the
    end of the trajectory its direction names, with every chain that is
    still active building, from log weight ``-inf`` and a zero sum; the
    previous leaf's values are then not read, but for the tally, which
    goes on over the transition. The subtree's start is the stand-in
    point of the chains that no longer build (:func:`leapfrog`'s
    ``fallback``).

    Returns what this leaf carries to the next (those that turned at it
    dropped from the builders, this leaf stored in the checkpoints and
    counted in the tally), the trajectory and its active chains as they
    would be if the subtree ended at this leaf (:func:`_merge`), and two
    flags: whether any chain still builds, and whether any is active after
    that merge. Every U-turn check of the subtree is made here, the stored
    slots read through masks instead of stacked, so that a leaf costs one
    call and a subtree no operation besides; a leaf's state travels as two
    tensors, so that the compiled call allocates, takes and returns few."""
    carry, eps, inv_mass, h0, trajectory, direction, merge_draw, leaf_draw, masks = args
    forward, log_draw, log_u = direction < 0.5, torch.log(merge_draw), torch.log(leaf_draw)
    dim, slots = inv_mass.shape[-1], masks.shape[-1]
    z, p, g, ok, log_weight, proposal, rho, checkpoints, tally = _carry_parts(carry, dim, slots)
    tree, active = trajectory[:, :-1], trajectory[:, -1] > 0.5
    start = masks[5, 0]
    first_z, first_p, first_g, half, drift = _subtree_start(tree, forward, eps, inv_mass)
    z, p, g = torch.where(start, first_z, z), torch.where(start, first_p, p), torch.where(start, first_g, g)
    building = torch.where(start, active, ok)
    log_weight = torch.where(start, -torch.inf, log_weight)
    rho = torch.where(start, 0.0, rho)
    z, p, g, v, log_w, ok, log_weight, proposal = _leaf(
        potential, min_log_weight, z, p, g, half, drift, inv_mass, h0, building, first_z, log_weight, proposal,
        log_u,
    )
    a_sharp, a_rho, a_p, m_sharp, m_rho = checkpoints.unbind(0)
    store_a, check_a, check_across, check_m, store_m = masks[:5].unsqueeze(-1).unbind(0)
    after = rho + p
    across = _turning(a_sharp[:-1], a_sharp[1:], a_rho[1:] + a_p[1:] - a_rho[:-1])
    turned = (
        (check_a & _turning(a_sharp, v, after - a_rho)).any(0)
        | (check_across[:-1] & across).any(0)
        | (check_m & _turning(m_sharp, v, after - m_rho)).any(0)
    )
    store_a, store_m = store_a.unsqueeze(-1), store_m.unsqueeze(-1)
    stored = torch.stack([
        torch.where(store_a, v, a_sharp), torch.where(store_a, rho, a_rho), torch.where(store_a, p, a_p),
        torch.where(store_m, v, m_sharp), torch.where(store_m, rho, m_rho),
    ])
    ok = ok & ~turned
    tally = _count(tally, log_w, building, -min_log_weight)
    # slot 0 holds the subtree's first leaf (the only one of popcount 0)
    merged, merged_active = _merge(tree, forward, log_draw, torch.cat([z, p, g], -1), stored[2, 0], proposal,
                                   log_weight, after, ok, inv_mass)
    flags = torch.stack([ok.any(), merged_active.any()])
    carry = _pack_carry(z, p, g, ok, log_weight, proposal, after, stored, tally)
    return carry, torch.cat([merged, merged_active.to(merged.dtype).unsqueeze(-1)], -1), flags


def _carry_parts(carry: Tensor, dim: int, slots: int) -> tuple[Tensor, ...]:
    """What a compiled leaf carries to the next, packed one row per chain
    (:func:`_pack_carry`): ``z``, ``p`` and the gradient, which chains
    still build, the subtree's log weight, proposal and momentum sum, its
    checkpoints ``(5, slots, C, dim)`` and the transition's tally ``(C, 3)``."""
    z, p, g, ok, log_weight, proposal, rho, checkpoints, tally = carry.split(
        [dim, dim, dim, 1, 1, 2 * dim + 2, dim, 5 * slots * dim, 3], -1
    )
    checkpoints = checkpoints.unflatten(-1, (5, slots, dim)).permute(1, 2, 0, 3)
    return z, p, g, ok.squeeze(-1) > 0.5, log_weight.squeeze(-1), proposal, rho, checkpoints, tally


def _pack_carry(z: Tensor, p: Tensor, g: Tensor, ok: Tensor, log_weight: Tensor, proposal: Tensor, rho: Tensor,
                checkpoints: Tensor, tally: Tensor) -> Tensor:
    """The parts of :func:`_carry_parts` packed into one ``(C, W)`` tensor."""
    flat = checkpoints.permute(2, 0, 1, 3).flatten(1)
    return torch.cat([z, p, g, ok.to(z.dtype).unsqueeze(-1), log_weight.unsqueeze(-1), proposal, rho, flat, tally], -1)


def _count(tally: Tensor, log_w: Tensor, counted: Tensor, max_energy_error: float) -> Tensor:
    """The transition's tally ``(C, 3)`` (leapfrog steps, sum of acceptance
    probabilities, divergences) with a leaf of log weight ``log_w``
    counted in the chains ``counted``."""
    c = counted.to(log_w.dtype)
    diverged = (counted & (log_w < -max_energy_error)).to(log_w.dtype)
    return tally + torch.stack([c, log_w.clamp(max=0.0).exp() * c, diverged], -1)


def _tree_parts(tree: Tensor, dim: int) -> tuple[Tensor, ...]:
    """A transition's trajectory, packed one row per chain so that merging
    a subtree into it is one graph: its left and right ends ``[z | p |
    grad]``, its proposal ``[z | grad | U | H]``, its log weight (of
    ``sum exp(h0 - H)``), its momentum sum and its depth, the last two
    ``(C, 1)``."""
    return tree.split([3 * dim, 3 * dim, 2 * dim + 2, 1, dim, 1], -1)


def _outcome(tree: Tensor, dim: int) -> tuple[Tensor, ...]:
    """The proposal's ``z``, gradient, ``U`` and ``H`` and the depth
    ``(C,)`` of a trajectory ``tree`` (:func:`_tree_parts`, with or without
    the compiled leaf's column of active chains), as views: five where the
    split and its parts' views make twelve."""
    z, g = tree.narrow(-1, 6 * dim, dim), tree.narrow(-1, 7 * dim, dim)
    u, h = tree.narrow(-1, 8 * dim, 2).unbind(-1)
    return z, g, u, h, tree.select(-1, 9 * dim + 3)


def _merge(
    tree: Tensor, forward: Tensor, log_draw: Tensor, end: Tensor, first_p: Tensor, proposal: Tensor,
    log_weight: Tensor, rho: Tensor, valid: Tensor, inv_mass: Tensor,
) -> tuple[Tensor, Tensor]:
    """The trajectory ``tree`` (:func:`_tree_parts`) after the subtree built
    in the direction ``forward`` from one of its ends, and which chains go
    on doubling. The subtree ends at ``end``, began with momentum
    ``first_p``, and has the proposal, log weight and momentum sum given;
    ``valid`` chains built it without a U-turn or a divergence, and only
    they take it. The new subtree's proposal replaces the trajectory's with
    probability ``min(1, w_new / w_old)`` (``log_draw``: Stan's biased
    progressive sampling, a heavier new subtree always wins), and the
    merged trajectory is checked for a U-turn between its ends and across
    the two halves (Stan's extra checks)."""
    dim = end.shape[-1] // 3
    left, right, tree_proposal, tree_log_weight, tree_rho, depth = _tree_parts(tree, dim)
    fwd, merged = forward.unsqueeze(-1), valid.unsqueeze(-1)
    start_p = torch.where(fwd, right[:, dim : 2 * dim], left[:, dim : 2 * dim])
    far_p = torch.where(fwd, left[:, dim : 2 * dim], right[:, dim : 2 * dim])
    log_weight = log_weight.unsqueeze(-1)
    take = merged & (log_draw.unsqueeze(-1) < log_weight - tree_log_weight)
    span = tree_rho + rho
    sharp_far, sharp_new = sharp(far_p, inv_mass), sharp(end[:, dim : 2 * dim], inv_mass)
    turned = (
        _turning(sharp_far, sharp_new, span)
        | _turning(sharp_far, sharp(first_p, inv_mass), tree_rho + first_p)
        | _turning(sharp(start_p, inv_mass), sharp_new, rho + start_p)
    )
    tree = torch.cat([
        torch.where(merged & ~fwd, end, left),
        torch.where(merged & fwd, end, right),
        torch.where(take, proposal, tree_proposal),
        torch.where(merged, torch.logaddexp(tree_log_weight, log_weight), tree_log_weight),
        torch.where(merged, span, tree_rho),
        depth + merged.to(depth.dtype),
    ], -1)
    return tree, valid & ~turned


def _leaf_masks(plan: list[tuple[int, int, int, int]], slots: int, device: torch.device) -> list[Tensor]:
    """For each leaf of ``plan`` (:func:`_checkpoint_plan`), the masks
    ``(6, slots)`` :func:`_leaf_and_checks` reads: the slot an even leaf
    stores, the slots whose sub-subtrees close at an odd leaf, the first
    of each pair of them checked across their halves, the left-half ends
    checked, the slot the odd leaf stores as a left-half end, and whether
    it is the subtree's first leaf (every slot alike)."""
    masks = []
    index = torch.arange(slots)
    for n, (slot, lo, hi, closing) in enumerate(plan):
        odd = slot < 0
        masks.append(torch.stack([
            index == slot,
            odd & (index >= lo) & (index <= hi),
            odd & (index >= lo) & (index < hi),
            odd & (index < closing - 1),
            odd & (index == closing - 1),
            torch.full_like(index, n == 0, dtype=torch.bool),
        ]).to(device))
    return masks


def _one_point(z: Tensor, p: Tensor, g: Tensor, u: Tensor, h: Tensor, *, active: bool = False) -> Tensor:
    """The trajectory of the one point ``z`` with momentum ``p``, gradient
    ``g``, potential ``u`` and energy ``h`` (packed, :func:`_tree_parts`):
    both ends and the proposal, weight ``exp(0)``, momentum sum ``p``,
    depth 0; with ``active``, one more column of ones (every chain is
    active), as the compiled leaf takes it (:func:`_leaf_and_checks`)."""
    u, h = u.unsqueeze(-1), h.unsqueeze(-1)
    zero = torch.zeros_like(u)
    parts = [z, p, g, z, p, g, z, g, u, h, zero, p, zero]
    return torch.cat([*parts, torch.ones_like(u)] if active else parts, -1)


def _subtree_start(tree: Tensor, forward: Tensor, eps: Tensor, inv_mass: Tensor) -> tuple[Tensor, ...]:
    """Where a subtree grown in the direction ``forward`` from the
    trajectory ``tree`` (:func:`_tree_parts`) starts: the chosen end's
    ``z``, ``p`` and gradient, each part contiguous (compiled code asserts
    its inputs' strides), and :func:`leapfrog`'s ``half_step`` and
    ``drift`` for the signed step ``eps``."""
    dim = inv_mass.shape[-1]
    left, right, *_ = _tree_parts(tree, dim)
    fwd = forward.unsqueeze(-1)
    step = torch.where(fwd, eps, -eps)
    z, p, g = (torch.where(fwd, r, l) for r, l in zip(right.split(dim, -1), left.split(dim, -1)))
    return z, p, g, 0.5 * step, scaled(inv_mass, step)


def _turning(sharp_a: Tensor, sharp_b: Tensor, rho: Tensor) -> Tensor:
    """Stan's generalized no-U-turn criterion fails for the span ``rho``
    between ends with ``M^{-1} p`` equal to ``sharp_a`` and ``sharp_b``."""
    return (torch.linalg.vecdot(sharp_a, rho) <= 0) | (torch.linalg.vecdot(sharp_b, rho) <= 0)


class NUTS(HamiltonianKernel):
    """The No-U-Turn Sampler (Stan's multinomial variant), vectorized over chains.

    Parameters are those of :class:`~quivers.inference.mcmc.kernel.HamiltonianKernel`,
    and ``max_tree_depth``: a trajectory has at most ``2^max_tree_depth - 1``
    leapfrog steps.

    Examples
    --------
    >>> from quivers.inference.mcmc import MCMC
    >>> kernel = NUTS(potential_fn=lambda z: 0.5 * (z**2).sum(-1), dim=3)
    >>> mcmc = MCMC(kernel, num_warmup=100, num_samples=100, num_chains=2, seed=1,
    ...             progress_bar=False)
    >>> mcmc.run()
    >>> mcmc.get_samples(group_by_chain=True)["z"].shape
    torch.Size([2, 100, 3])
    >>> stats = mcmc.get_sample_stats()
    >>> int(stats["tree_depth"].max()) <= 10, int(stats["diverging"].sum())
    (True, 0)
    """

    stat_names = (
        "accept_prob", "diverging", "energy", "lp", "n_steps", "step_size", "tree_depth",
    )

    def __init__(
        self,
        model: Any = None,
        potential_fn: Callable[..., Tensor] | None = None,
        *,
        max_tree_depth: int = 10,
        step_size: float | Tensor = 1.0,
        adapt_step_size: bool = True,
        adapt_mass_matrix: bool = True,
        target_accept: float = 0.8,
        inverse_mass_matrix: Tensor | None = None,
        max_energy_error: float = 1000.0,
        initial_params: Tensor | None = None,
        dim: int | None = None,
        dense_mass: bool = False,
        init_strategy: InitStrategy | None = None,
        jit_compile: bool = False,
    ) -> None:
        _positive("max_tree_depth", max_tree_depth, integer=True)
        super().__init__(
            model,
            potential_fn,
            step_size=step_size,
            adapt_step_size=adapt_step_size,
            adapt_mass_matrix=adapt_mass_matrix,
            target_accept=target_accept,
            inverse_mass_matrix=inverse_mass_matrix,
            max_energy_error=max_energy_error,
            initial_params=initial_params,
            dim=dim,
            dense_mass=dense_mass,
            init_strategy=init_strategy,
            jit_compile=jit_compile,
        )
        self.max_tree_depth = max_tree_depth
        self._plan = _checkpoint_plan(2 ** (max_tree_depth - 1))
        self._compiled_leaf: Callable[..., tuple[Tensor, ...]] | None = None
        self._leaf_masks: list[Tensor] | None = None  # set when the compiled leaf checks
        self._blank: Tensor | None = None  # what the first leaf of a transition is handed to carry
        # the generator they were drawn for, a buffer of draws and its rows (:meth:`_draws`)
        self._uniforms: tuple[torch.Generator, Tensor, Sequence[Tensor]] | None = None

    @property
    def compiled(self) -> bool:
        """Whether the run set up last calls a compiled leapfrog step."""
        return self._compiled_leaf is not None

    def _compile(self, state: ChainState) -> None:
        """With ``jit_compile``: record and compile one leaf of a subtree
        (the leapfrog step with the potential's forward and backward, the
        energy, the proposal's choice, the tally, and the subtree's start,
        every U-turn check and the merge into the trajectory through
        :func:`_leaf_and_checks`, or above :data:`_CHECKS_IN_LEAF` the check
        of a pair of leaves through :func:`_leaf_and_pair`) as one graph,
        checked against the eager leaf at the first point with unit
        momenta. With the checks, the blank a transition's first leaf is
        handed to carry is made here too."""
        self._compiled_leaf = self._leaf_masks = None
        z, u, g = state
        potential, min_log_weight = self._potential, -self.max_energy_error
        slots = self.max_tree_depth
        checks = slots * z.numel() <= _CHECKS_IN_LEAF

        def leaf(*args: Tensor) -> tuple[Tensor, ...]:
            return (_leaf_and_checks if checks else _leaf_and_pair)(potential, min_log_weight, *args)

        step = self.step_size.unsqueeze(-1)
        p = torch.ones_like(z)
        inv_mass = self.inverse_mass_matrix
        h0 = energy(u, p, inv_mass)
        building = torch.ones_like(u, dtype=torch.bool)
        log_weight, log_u = torch.full_like(u, -torch.inf), torch.full_like(u, -0.5)
        proposal = torch.cat([z, g, u.unsqueeze(-1), u.unsqueeze(-1)], -1)
        tally = z.new_zeros(z.shape[0], 3)
        if checks:
            masks = _leaf_masks(self._plan, slots, z.device)
            # what a leaf carries to the next (a zero tally), a trajectory of
            # one point, and the masks of the second leaf (which checks and
            # stores), or of the only one
            carry = _pack_carry(z, p, g, building, log_weight, proposal, torch.zeros_like(z),
                                z.new_zeros(5, slots, *z.shape), tally)
            draw = torch.full_like(u, 0.25)
            args = (carry, step, inv_mass, h0, _one_point(z, p, g, u, h0, active=True), draw, draw, draw,
                    masks[min(1, len(masks) - 1)])
        else:
            args = (z, p, g, 0.5 * step, scaled(inv_mass, step), inv_mass, h0, building, z, log_weight, proposal,
                    log_u, torch.zeros_like(z), sharp(-p, inv_mass), -p, tally)
        self._compiled_leaf, why = compile_recorded(leaf, args, backend=self.jit_backend, what="leapfrog step")
        if self._compiled_leaf is None:
            warn_eager(why)
        elif checks:
            self._leaf_masks, self._blank = masks, carry.clone()

    def _trial_step(self, state: ChainState) -> Callable[[Tensor, Tensor], Tensor] | None:
        """With a compiled leaf that checks, each trial step of the step
        size search is one call of it: the first leaf of a subtree grown
        forward from ``state``, whose tally holds the step's acceptance.
        Eager and the compiled pair leaf step through the potential."""
        if self._leaf_masks is None:
            return None
        z, u, g = state
        inv_mass, leaf = self.inverse_mass_matrix, self._compiled_leaf
        forward, draw = torch.zeros_like(u), torch.full_like(u, 0.5)

        def acceptance(p: Tensor, eps: Tensor) -> Tensor:
            h0 = energy(u, p, inv_mass)
            carry, _, _ = leaf(self._blank, eps.unsqueeze(-1), inv_mass, h0, _one_point(z, p, g, u, h0, active=True),
                               forward, draw, draw, self._leaf_masks[0])
            return carry[:, -2]  # the tally's sum of acceptances, of one step

        return acceptance

    def transition(self, state: ChainState) -> tuple[ChainState, dict[str, Tensor]]:
        """One NUTS trajectory per chain, all chains in lockstep."""
        z0, u0, g0 = state
        dim = z0.shape[1]
        inv_mass = self.inverse_mass_matrix
        eps = self.step_size.unsqueeze(-1)
        p0 = sample_momentum(self.mass_sqrt, self.generator)
        h0 = energy(u0, p0, inv_mass)
        checked = self._leaf_masks is not None
        tree = _one_point(z0, p0, g0, u0, h0, active=checked)
        # tally: leapfrog steps, acceptance sum, divergences
        tree, tally = (self._grow_checked if checked else self._grow)(tree, eps, h0)
        # Copies: a view would keep the whole packed row alive with what the
        # run keeps (the draw and the energy), and the next transition's
        # `cat` of its one point copies contiguous parts in one pass where
        # strided ones cost it a copy each (7 us against 17 on eight schools).
        *parts, depth = _outcome(tree, dim)
        z, g, u, h = (part.clone() for part in parts)
        n_steps, accept_sum, diverged = tally.unbind(-1)
        stats = {
            "accept_prob": accept_sum / n_steps,
            "diverging": diverged > 0,
            "energy": h,
            "lp": -u,
            "n_steps": n_steps.long(),
            "step_size": self.step_size,
            "tree_depth": depth.long(),
        }
        return ChainState(z, u, g), stats

    def _grow(self, tree: Tensor, eps: Tensor, h0: Tensor) -> tuple[Tensor, Tensor]:
        """Double the trajectory ``tree`` (:func:`_tree_parts`) of every
        chain until a U-turn, a divergence or the maximum depth, a subtree
        at a time (:meth:`_build_subtree`); returns the trajectory and the
        tally (:func:`_count`) of its leaves."""
        active = torch.ones_like(h0, dtype=torch.bool)
        tally = tree.new_zeros(tree.shape[0], 3)
        every = True  # every chain is building (known on the host)
        for j, draws in zip(range(self.max_tree_depth), self._draws(tree)):
            tree, active, tally = self._build_subtree(
                j, tree, draws[0] < 0.5, torch.log(torch.stack(draws[1:])), eps, h0, active, every, tally
            )
            alive = int(active.sum())
            if alive == 0:
                break
            every = alive == active.numel()
        return tree, tally

    def _draws(self, tree: Tensor) -> Iterator[Sequence[Tensor]]:
        """The uniform draws of a transition's subtrees, depth by depth, for
        the trajectory ``tree``: ``2^depth + 2`` rows ``(C,)``, the direction
        (forward below one half), the merge's draw and one per leaf. The
        first :data:`_DRAWN_AHEAD` depths' rows are drawn together when the
        first depth's are asked for, into a buffer whose row views were made
        with it: they hold the next transition's draws after it. The buffer
        is the run's, made anew with its generator (a run's chains and
        dtype are its own, and an unpickled kernel's rows would not view its
        buffer). Both paths draw alike, so that a seed gives the same
        trajectories eagerly and compiled."""
        chains, generator = tree.shape[0], self.generator
        ahead = min(self.max_tree_depth, _DRAWN_AHEAD)
        if self._uniforms is None or self._uniforms[0] is not generator:
            buffer = tree.new_empty(2**ahead - 1 + 2 * ahead, chains)
            self._uniforms = generator, buffer, buffer.unbind(0)
        _, buffer, rows = self._uniforms
        torch.rand(buffer.shape, generator=generator, dtype=buffer.dtype, device=buffer.device, out=buffer)
        for j in range(ahead):
            start = 2**j - 1 + 2 * j
            yield rows[start : start + 2**j + 2]
        for j in range(ahead, self.max_tree_depth):
            yield torch.rand((2**j + 2, chains), generator=generator, dtype=tree.dtype, device=tree.device).unbind(0)

    def _build_subtree(
        self,
        depth: int,
        tree: Tensor,
        forward: Tensor,
        log_draws: Tensor,
        eps: Tensor,
        h0: Tensor,
        building: Tensor,
        every: bool,
        tally: Tensor,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Extend each chain in ``building`` by ``2^depth`` leaves from the end
        of its trajectory ``tree`` (:func:`_tree_parts`) that ``forward``
        names, and merge the subtree into it (:func:`_merge`); ``every``
        says that ``building`` holds every chain. ``log_draws`` are the
        logs of the merge's uniform draw and of one per leaf.

        Returns the trajectory, which chains go on doubling (built the
        subtree without a U-turn or a divergence, and no U-turn across the
        merged trajectory), and the tally (:func:`_count`) with the
        subtree's leaves counted.
        """
        inv_mass = self.inverse_mass_matrix
        dim = inv_mass.shape[-1]
        log_draw, log_uniform = log_draws[0], log_draws[1:]
        z, p, g, half, drift = _subtree_start(tree, forward, eps, inv_mass)
        # Checkpoints: at the first leaf a of every open sub-subtree, M^-1 p,
        # p and the momentum sum before a; at the last leaf m of every left
        # half still waiting for its right half, M^-1 p and the sum before m.
        # Lists of the leaves' own tensors (none is written in place): a
        # store costs no operation, and a check stacks only what it reads.
        a_sharp, a_rho, a_p, m_sharp, m_rho = ([None] * self.max_tree_depth for _ in range(5))
        min_log_weight = -self.max_energy_error
        fallback = z
        ok = building
        rho = torch.zeros_like(z)
        compiled = self._compiled_leaf
        # the compiled leaf starts from weight -inf (any proposal: the first
        # leaf replaces it in every chain that keeps the subtree); the eager
        # one knows its first leaf
        log_weight = proposal = None
        if compiled is not None:
            fallback = z.clone()
            log_weight, proposal = torch.full_like(h0, -torch.inf), h0.new_zeros(h0.shape[0], 2 * dim + 2)
        prev_sharp = prev_rho = rho_next = ok_pair = None
        for n in range(2**depth):
            args = (z, p, g, half, drift, inv_mass, h0, ok, fallback, log_weight, proposal, log_uniform[n])
            if compiled is not None:
                if prev_sharp is None:  # the first leaf is even: its pair check is unused
                    prev_sharp, prev_rho = torch.zeros_like(rho), torch.zeros_like(rho)
                z, p, g, v, log_w, ok, log_weight, proposal, rho_next, ok_pair, tally = compiled(
                    *args, rho, prev_sharp, prev_rho, tally
                )
                prev_sharp, prev_rho = v, rho
            else:
                counted = ok
                # `every`: whether every chain is still building, known on the host
                # from the one synchronization per leaf; then no stand-in point is needed.
                z, p, g, v, log_w, ok, log_weight, proposal = _leaf(
                    self._potential, min_log_weight, *args, first=n == 0, every=every
                )
                tally = _count(tally, log_w, counted, self.max_energy_error)
            if n == 0:
                first_p = p
            slot, lo, hi, closing = self._plan[n]
            if slot >= 0:
                a_sharp[slot], a_rho[slot], a_p[slot] = v, rho, p
                rho = rho + p if rho_next is None else rho_next
            else:
                rho_before, rho = rho, rho + p if rho_next is None else rho_next
                if closing == 1 and ok_pair is not None:  # checked by the compiled leaf
                    turned = None
                    ok = ok_pair
                elif closing == 1:  # half the odd leaves: one sub-subtree [n - 1, n]
                    turned = _turning(a_sharp[hi], v, rho - a_rho[hi])
                else:
                    # Every sub-subtree [a, n] closing here, one per stored a,
                    # and Stan's checks across the halves [a, m] + [m + 1, n]
                    # of those of size >= 4, over [a, m + 1] and over [m, n].
                    # The first leaf m + 1 of a right half is the first leaf
                    # of the next smaller closing sub-subtree: one slot up.
                    sharp_a, rho_a = torch.stack(a_sharp[lo : hi + 1]), torch.stack(a_rho[lo : hi + 1])
                    across = rho_a[1:] + torch.stack(a_p[lo + 1 : hi + 1]) - rho_a[:-1]
                    turned = torch.cat(
                        [
                            _turning(sharp_a, v, rho - rho_a),
                            _turning(sharp_a[:-1], sharp_a[1:], across),
                            _turning(torch.stack(m_sharp[: closing - 1]), v, rho - torch.stack(m_rho[: closing - 1])),
                        ]
                    ).any(0)
                if turned is not None:
                    ok = ok & ~turned
                # n ends a left half whose right half closes 2^closing leaves on.
                m_sharp[closing - 1], m_rho[closing - 1] = v, rho_before
            alive = int(ok.sum())
            if alive == 0:
                break
            every = alive == ok.numel()
        return (*_merge(tree, forward, log_draw, torch.cat([z, p, g], -1), first_p, proposal, log_weight, rho, ok,
                        inv_mass), tally)

    def _grow_checked(self, tree: Tensor, eps: Tensor, h0: Tensor) -> tuple[Tensor, Tensor]:
        """The doublings of a transition with a compiled leaf that starts
        its subtree, makes every U-turn check, counts itself in the tally
        and merges the subtree into the trajectory as if it were the last
        leaf (:func:`_leaf_and_checks`), the draws' logs included: what is
        left here is handing each leaf its draws and the previous leaf's
        outputs, and reading the two flags that stop a subtree (no chain
        builds) and the transition (no chain is active). The last leaf's
        merge is the subtree's: at an early stop no chain kept it, and the
        merge leaves the trajectory as it was. ``tree`` has its column of
        active chains (:func:`_one_point`); returns the trajectory
        (:func:`_tree_parts`, that column kept) and the tally, the last
        three columns of what the last leaf carries (a transition starts
        from the blank's zeros).

        The draws are those of :meth:`_grow` (:meth:`_draws`)."""
        carry, leaf, masks = self._blank, self._compiled_leaf, self._leaf_masks
        inv_mass = self.inverse_mass_matrix
        for j, (direction, merge_draw, *leaf_draws) in zip(range(self.max_tree_depth), self._draws(tree)):
            for n in range(2**j):
                carry, merged, flags = leaf(carry, eps, inv_mass, h0, tree, direction, merge_draw, leaf_draws[n],
                                            masks[n])
                building, going_on = flags.tolist()
                if not building:
                    break
            tree = merged
            if not going_on:
                break
        return tree, carry.narrow(-1, carry.shape[-1] - 3, 3)
