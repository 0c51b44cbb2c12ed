"""The iterative, vectorized NUTS tree against Stan's recursive one.

Stan's ``base_nuts::transition`` and ``build_tree`` are transcribed below
for a single chain, as the oracle. Given the same initial momentum and the
same directions, tree depth, number of leapfrog steps and divergence are
deterministic, so every chain of a batch must match the oracle exactly.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from quivers.inference.mcmc import NUTS
from quivers.inference.mcmc.nuts import _checkpoint_plan


def _stan_tree(potential, z0, p0, eps, inv_mass, forward, max_depth, max_delta_h=1000.0):
    """Stan's multinomial NUTS trajectory for one chain: (depth, n_leapfrog, divergent)."""

    def grad(z):
        z = z.detach().clone().requires_grad_(True)
        u = potential(z[None])[0]
        (g,) = torch.autograd.grad(u, z)
        return u.detach(), g

    def criterion(p_sharp_minus, p_sharp_plus, rho):
        return bool(p_sharp_plus @ rho > 0) and bool(p_sharp_minus @ rho > 0)

    def sharp(p):
        return inv_mass * p

    u0, g0 = grad(z0)
    h0 = float(u0 + 0.5 * (p0 * p0 * inv_mass).sum())
    tally = {"n_leapfrog": 0, "divergent": False}

    def build_tree(state, depth, sign):
        """Returns (valid, rho, p_beg, p_end); ``state`` = [z, p, g] moves."""
        if depth == 0:
            z, p, g = state
            p = p - 0.5 * sign * eps * g
            z = z + sign * eps * inv_mass * p
            u, g = grad(z)
            p = p - 0.5 * sign * eps * g
            state[:] = [z, p, g]
            tally["n_leapfrog"] += 1
            h = float(u + 0.5 * (p * p * inv_mass).sum())
            if math.isnan(h):
                h = math.inf
            if h - h0 > max_delta_h:
                tally["divergent"] = True
            return not tally["divergent"], p.clone(), p, p
        valid, rho_init, p_beg, p_init_end = build_tree(state, depth - 1, sign)
        if not valid:
            return False, None, None, None
        valid, rho_final, p_final_beg, p_end = build_tree(state, depth - 1, sign)
        if not valid:
            return False, None, None, None
        rho = rho_init + rho_final
        persist = criterion(sharp(p_beg), sharp(p_end), rho)
        persist &= criterion(sharp(p_beg), sharp(p_final_beg), rho_init + p_final_beg)
        persist &= criterion(sharp(p_init_end), sharp(p_end), rho_final + p_init_end)
        return persist, rho, p_beg, p_end

    fwd_state, bck_state = [z0, p0, g0], [z0, p0, g0]
    p_fwd_fwd = p_fwd_bck = p_bck_fwd = p_bck_bck = p0
    rho, depth = p0, 0
    while depth < max_depth:
        if forward[depth]:
            rho_bck, p_bck_fwd = rho, p_fwd_fwd
            valid, rho_fwd, p_fwd_bck, p_fwd_fwd = build_tree(fwd_state, depth, 1.0)
        else:
            rho_fwd, p_fwd_bck = rho, p_bck_bck
            valid, rho_bck, p_bck_fwd, p_bck_bck = build_tree(bck_state, depth, -1.0)
        if not valid:
            break
        depth += 1
        rho = rho_bck + rho_fwd
        persist = criterion(sharp(p_bck_bck), sharp(p_fwd_fwd), rho)
        persist &= criterion(sharp(p_bck_bck), sharp(p_fwd_bck), rho_bck + p_fwd_bck)
        persist &= criterion(sharp(p_bck_fwd), sharp(p_fwd_fwd), rho_fwd + p_bck_fwd)
        if not persist:
            break
    return depth, tally["n_leapfrog"], tally["divergent"]


def _gaussian(scales):
    scales = torch.as_tensor(scales, dtype=torch.float64)
    return lambda z: 0.5 * ((z / scales) ** 2).sum(-1)


def _ridge(z):
    # Non-Gaussian: a curved ridge, so that trajectories are not ellipses.
    return 0.5 * z[:, 0] ** 2 + 2.0 * (z[:, 1] - 0.5 * z[:, 0] ** 2) ** 2 + 0.5 * (z[:, 2:] ** 2).sum(-1)


CASES = {
    # name: (potential, dim, step size, max tree depth)
    "normal-small-steps": (_gaussian([1.0, 1.0, 1.0]), 3, 0.15, 7),
    "capped": (_gaussian([1.0, 1.0, 1.0]), 3, 0.03, 4),
    # subtrees deeper than those a transition draws for at its start
    "long": (_gaussian([1.0, 1.0, 1.0]), 3, 0.04, 9),
    "one-level": (_gaussian([1.0, 1.0, 1.0]), 3, 0.15, 1),
    "normal-anisotropic": (_gaussian([1.0, 3.0, 0.5, 2.0]), 4, 0.4, 6),
    "ridge": (_ridge, 3, 0.3, 6),
    "divergent": (_gaussian([1.0, 0.01]), 2, 0.35, 5),
}


@pytest.mark.parametrize("leaf", ["eager", "compiled-checks", "compiled-pairs"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_vectorized_tree_matches_stan_recursion(case, leaf, monkeypatch):
    # the compiled leaf (its recording replayed) makes every U-turn check
    # through masks over its checkpoints, or, above a size, only the pair
    # checks, the rest made outside it
    import quivers.inference.mcmc.nuts as nuts

    if leaf == "compiled-pairs":
        monkeypatch.setattr(nuts, "_CHECKS_IN_LEAF", 0)
    potential, dim, eps, max_depth = CASES[case]
    num_chains = 8
    gen = torch.Generator().manual_seed(7)
    inv_mass = 0.5 + torch.rand(num_chains, dim, generator=gen, dtype=torch.float64)
    kernel = NUTS(
        potential_fn=potential,
        initial_params=torch.randn(num_chains, dim, generator=gen, dtype=torch.float64),
        step_size=eps,
        max_tree_depth=max_depth,
        adapt_step_size=False,
        adapt_mass_matrix=False,
        inverse_mass_matrix=inv_mass,
        jit_compile=leaf != "eager",
    )
    kernel.jit_backend = "eager"
    state = kernel.setup(num_chains, 0, torch.Generator().manual_seed(0))
    assert kernel.compiled == (leaf != "eager")
    assert (kernel._leaf_masks is not None) == (leaf == "compiled-checks")
    seen_divergence = seen_max_depth = seen_deep = False
    for _ in range(15):
        # Replay the kernel's draws (momentum, then one block for the first
        # depths and one for each deeper one, each depth's rows starting
        # with its direction) to hand the oracle the same directions.
        replay = torch.Generator()
        replay.set_state(kernel.generator.get_state())
        new_state, stats = kernel.transition(state)
        p0 = torch.randn(num_chains, dim, generator=replay, dtype=torch.float64) * kernel.mass_sqrt
        ahead = min(max_depth, nuts._DRAWN_AHEAD)
        first = torch.rand((2**ahead - 1 + 2 * ahead, num_chains), generator=replay, dtype=torch.float64)
        directions = [first[2**j - 1 + 2 * j] for j in range(ahead)] + [
            torch.rand((2**j + 2, num_chains), generator=replay, dtype=torch.float64)[0]
            for j in range(ahead, max_depth)
        ]
        for c in range(num_chains):
            forward = [bool(d[c] < 0.5) for d in directions]
            expected = _stan_tree(
                potential, state.z[c], p0[c], eps, inv_mass[c], forward, max_depth
            )
            got = (
                int(stats["tree_depth"][c]),
                int(stats["n_steps"][c]),
                bool(stats["diverging"][c]),
            )
            assert got == expected, (c, got, expected)
            seen_divergence |= expected[2]
            seen_max_depth |= expected[0] == max_depth
            seen_deep |= expected[0] > nuts._DRAWN_AHEAD
        state = new_state
    if case == "divergent":
        assert seen_divergence
    if case == "capped":
        assert seen_max_depth
    if case == "long":
        assert seen_deep


def test_tree_statistics_are_consistent():
    kernel = NUTS(potential_fn=_gaussian([1.0, 2.0]), dim=2, step_size=0.05, max_tree_depth=4,
                  adapt_step_size=False)
    state = kernel.setup(16, 0, torch.Generator().manual_seed(3))
    for _ in range(5):
        state, stats = kernel.transition(state)
        depth, n_steps = stats["tree_depth"], stats["n_steps"]
        # A tree of depth d holds 2^d - 1 steps, plus at most one rejected
        # subtree of 2^d more.
        assert bool(((2**depth - 1 <= n_steps) & (n_steps <= 2 ** (depth + 1) - 1)).all())
        assert bool((depth <= 4).all()) and bool((n_steps <= 15).all())
        assert bool((depth == 4).any())
        assert bool(((stats["accept_prob"] > 0.99) & (stats["accept_prob"] <= 1.0)).all())


@given(st.integers(min_value=1, max_value=11))
def test_checkpoint_plan_finds_the_first_leaf_of_every_closing_subtree(depth):
    """Law of the plan: at odd leaf n, slots lo..hi hold (largest first) the
    first leaves of the sub-subtrees of sizes 2^closing, ..., 2 ending at n,
    the slots m-1.. of the left-half last leaves are not overwritten before
    use, and nothing is read that was not written."""
    a_slots: dict[int, int] = {}
    m_slots: dict[int, int] = {}
    for n, (slot, lo, hi, closing) in enumerate(_checkpoint_plan(2**depth)):
        if n % 2 == 0:
            assert slot >= 0 and closing == 0
            a_slots[slot] = n
            continue
        sizes = [2**k for k in range(closing, 0, -1)]
        assert closing == len(bin(n + 1)) - len(bin(n + 1).rstrip("0"))
        assert [a_slots[s] for s in range(lo, hi + 1)] == [n - size + 1 for size in sizes]
        # Last leaves of the left halves of the sub-subtrees of size >= 4.
        assert [m_slots[k - 2] for k in range(2, closing + 1)] == [
            n - 2 ** (k - 1) for k in range(2, closing + 1)
        ]
        m_slots[closing - 1] = n


@given(st.integers(min_value=0, max_value=2**16 - 1))
def test_a_merge_takes_the_subtree_only_in_the_chains_that_built_it(seed):
    """Law of the merge: a chain that did not build the subtree keeps its
    trajectory bit for bit and stops (so the compiled leaf's merge at an
    early stop is the subtree's); a chain that built it gains a level, the
    subtree's end on the side it grew, the summed momentum and the summed
    weight, and takes the subtree's proposal exactly when the draw falls
    below the weights' ratio (Stan's biased progressive sampling)."""
    from quivers.inference.mcmc.nuts import _merge, _one_point, _tree_parts

    gen = torch.Generator().manual_seed(seed)
    chains, dim = 6, 3

    def randn(*shape):
        return torch.randn(*shape, generator=gen, dtype=torch.float64)

    z, p, g, u = randn(chains, dim), randn(chains, dim), randn(chains, dim), randn(chains)
    tree = _one_point(z, p, g, u, u + 0.5 * (p * p).sum(-1))
    forward = torch.rand(chains, generator=gen) < 0.5
    valid = torch.rand(chains, generator=gen) < 0.7
    end, first_p, rho = randn(chains, 3 * dim), randn(chains, dim), randn(chains, dim)
    proposal, log_weight = randn(chains, 2 * dim + 2), randn(chains)
    log_draw = torch.rand(chains, generator=gen, dtype=torch.float64).log()
    merged, active = _merge(tree, forward, log_draw, end, first_p, proposal, log_weight, rho, valid,
                            torch.ones(chains, dim, dtype=torch.float64))
    assert torch.equal(merged[~valid], tree[~valid]) and not bool(active[~valid].any())
    before, after = _tree_parts(tree, dim), _tree_parts(merged, dim)
    left, right, tree_proposal, tree_log_weight, tree_rho, depth = before
    new_left, new_right, new_proposal, new_log_weight, new_rho, new_depth = after
    for c in valid.nonzero().flatten().tolist():
        grown, kept = (new_right, new_left) if forward[c] else (new_left, new_right)
        assert torch.equal(grown[c], end[c]) and torch.equal(kept[c], (left if forward[c] else right)[c])
        assert float(new_depth[c]) == float(depth[c]) + 1
        assert torch.equal(new_rho[c], tree_rho[c] + rho[c])
        summed = math.log(math.exp(float(tree_log_weight[c])) + math.exp(float(log_weight[c])))
        assert math.isclose(float(new_log_weight[c]), summed, rel_tol=1e-12, abs_tol=1e-12)
        takes = float(log_draw[c]) < float(log_weight[c]) - float(tree_log_weight[c])
        assert torch.equal(new_proposal[c], proposal[c] if takes else tree_proposal[c])


@pytest.mark.parametrize("active", [False, True])
def test_a_trajectorys_outcome_is_its_proposal_and_depth(active):
    """The views a transition reads its draw, energy and depth from are the
    parts :func:`_tree_parts` names, with or without the compiled leaf's
    column of active chains."""
    from quivers.inference.mcmc.nuts import _one_point, _outcome, _tree_parts

    gen = torch.Generator().manual_seed(2)
    chains, dim = 3, 4
    tree = _one_point(*(torch.randn(chains, dim, generator=gen) for _ in range(3)), torch.randn(chains, generator=gen),
                      torch.randn(chains, generator=gen), active=active)
    tree = tree + torch.randn(tree.shape, generator=gen)  # every entry its own
    z, g, u, h, depth = _outcome(tree, dim)
    _, _, proposal, _, _, want_depth = _tree_parts(tree[:, : 9 * dim + 4], dim)
    assert torch.equal(z, proposal[:, :dim]) and torch.equal(g, proposal[:, dim : 2 * dim])
    assert torch.equal(u, proposal[:, 2 * dim]) and torch.equal(h, proposal[:, 2 * dim + 1])
    assert torch.equal(depth, want_depth.squeeze(-1))


@pytest.mark.parametrize("jit", [False, True])
def test_a_transitions_state_and_kept_statistics_are_not_views(jit):
    """What a run keeps (the draw, the energy) and what the next transition
    packs (the state) own their memory: a view would keep the packed
    trajectory alive, and a strided part costs the next one point its own
    copy."""
    kernel = NUTS(potential_fn=_gaussian([1.0, 2.0]), dim=2, jit_compile=jit)
    kernel.jit_backend = "eager"
    state = kernel.setup(4, 0, torch.Generator().manual_seed(3))
    for _ in range(3):
        state, stats = kernel.transition(state)
        for t in (*state, stats["energy"]):
            assert t._base is None and t.is_contiguous()
