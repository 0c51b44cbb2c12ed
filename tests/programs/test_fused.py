"""The fused kernels of marginalize blocks equal the general path (float64).

Each property runs a program twice on the same values, once as it runs by
default (the fused kernel where the block qualifies) and once inside
``use_fused(False)``, and compares log densities and gradients with
respect to every latent.
"""

from __future__ import annotations

import contextlib
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from quivers.categories import FinSet
from quivers.distributions import Categorical, HalfNormal, Normal
from quivers.programs import Program, let, marginalize, observe, sample, var
from quivers.programs.fused import _NormalMixture, group_moments, grouped_normal_mixture, normal_mixture, use_fused

from tests.programs import models
from tests.programs.autograd import autograd_nodes

F64 = torch.float64


def _both(prog, obs, latents):
    """(log density, gradients) fused and general; unchecked latents, so
    that a weight may be exactly zero."""
    out = []
    for on in (True, False):
        lat = {k: v.detach().clone().requires_grad_() for k, v in latents.items()}
        with use_fused(on):
            lj = prog.log_joint(None, obs, lat, check_latents=False)
        grads = torch.autograd.grad(lj.sum(), list(lat.values()))
        out.append((lj.detach(), grads))
    return out


def _graph_has(t: torch.Tensor, name: str) -> bool:
    return any(type(f).__name__ == name for f in autograd_nodes(t))


def _close(a, b):
    (la, ga), (lb, gb) = a, b
    torch.testing.assert_close(la, lb, rtol=1e-12, atol=1e-10)
    for x, y in zip(ga, gb):
        torch.testing.assert_close(x, y, rtol=1e-10, atol=1e-10, equal_nan=True)


@st.composite
def gmm_case(draw):
    n, k = draw(st.integers(1, 12)), draw(st.integers(1, 4))
    particles = draw(st.sampled_from([(), (1,), (3,)]))
    vals = lambda shape, lo, hi: torch.tensor(
        draw(st.lists(st.floats(lo, hi), min_size=math.prod(shape), max_size=math.prod(shape))), dtype=F64
    ).reshape(shape)
    probs = vals(particles + (k,), 0.05, 3.0)
    if k > 1 and draw(st.booleans()):
        probs[..., 0] = 0.0  # a component of weight zero: log weight -inf
    lat = {"probs": probs, "mu_k": vals(particles + (k,), -4.0, 4.0), "sd_k": vals(particles + (k,), 0.2, 3.0)}
    return n, k, lat, {"y": vals((n,), -8.0, 8.0)}


@given(gmm_case())
def test_per_row_block_equals_the_general_path(case):
    n, k, lat, obs = case
    prog = models.gmm(n, k)
    fused, general = _both(prog, obs, lat)
    _close(fused, general)


def test_the_seed_mixture_takes_the_fused_kernel():
    prog = models.gmm(5, 2)
    lat = {"probs": torch.ones(2, requires_grad=True), "mu_k": torch.tensor([-1.0, 1.0]), "sd_k": torch.ones(2)}
    y = {"y": torch.randn(5)}
    assert _graph_has(prog.log_joint(None, y, lat), "_NormalMixtureBackward")
    with use_fused(False):
        assert not _graph_has(prog.log_joint(None, y, lat), "_NormalMixtureBackward")


@st.composite
def grouped_case(draw):
    n, g, k = draw(st.integers(1, 15)), draw(st.integers(1, 6)), draw(st.integers(1, 4))
    particles = draw(st.sampled_from([(), (2,)]))
    vals = lambda shape, lo, hi: torch.tensor(
        draw(st.lists(st.floats(lo, hi), min_size=math.prod(shape), max_size=math.prod(shape))), dtype=F64
    ).reshape(shape)
    # Some groups may be empty: their fibre contributes log 1 = 0.
    group = torch.tensor(draw(st.lists(st.integers(0, g - 1), min_size=n, max_size=n)))
    lat = {"probs": vals(particles + (g, k), 0.05, 3.0), "mu_k": vals(particles + (k,), -4.0, 4.0),
           "sd_k": vals(particles + (k,), 0.2, 3.0)}
    return n, g, k, lat, {"y": vals((n,), -8.0, 8.0), "group": group}


@given(grouped_case(), st.booleans())
def test_grouped_block_equals_the_general_path(case, declared):
    n, g, k, lat, obs = case
    prog = models.grouped(n, g, k, declared=declared)
    fused, general = _both(prog, obs, lat)
    _close(fused, general)


def test_group_moments_are_cached_per_data_tensor_and_follow_in_place_changes():
    prog = models.grouped(6, 3, 2)
    lat = {"probs": torch.ones(3, 2, dtype=F64), "mu_k": torch.tensor([-1.0, 1.0], dtype=F64),
           "sd_k": torch.ones(2, dtype=F64)}
    obs = {"y": torch.linspace(-2, 2, 6, dtype=F64), "group": torch.tensor([0, 0, 1, 1, 2, 2])}
    first = prog.log_joint(None, obs, lat)
    assert prog.log_joint(None, obs, lat) == first
    obs["y"].mul_(2.0)  # the same tensor, changed in place
    with use_fused(False):
        expected = prog.log_joint(None, obs, lat)
    torch.testing.assert_close(prog.log_joint(None, obs, lat), expected)


@pytest.mark.parametrize("form", ["direct", "expression", "let", "batched"])
def test_parameters_read_directly_or_evaluated_give_the_same_block(form):
    """``Normal(mu[z], sd[z])`` is read straight from the environment
    (with or without a batch axis); the same parameters written otherwise
    (an expression, a let) go through the evaluators: the same block."""
    Item, K = FinSet("Item", 5), FinSet("K", 3)
    mu, sd, z = var("mu_k"), var("sd_k"), var("z")
    loc, scale = {
        "direct": (mu[z], sd[z]),
        "expression": (mu[z] + 0.0, sd[z] * 1.0),
        "let": (var("m")[z], sd[z]),
        "batched": (mu[z], sd[z]),
    }[form]
    body = [observe("y", Item, Normal(loc, scale))]
    steps = [sample("probs", K, HalfNormal(1.0)), sample("mu_k", K, Normal(0.0, 5.0)),
             sample("sd_k", K, HalfNormal(1.0)), let("m", mu * 2.0)]
    prog = Program("p", Item, Item, steps + [marginalize("z", K, Categorical(var("probs")), body)])
    lat = {"probs": torch.tensor([0.2, 0.0, 1.0], dtype=F64), "mu_k": torch.tensor([-1.0, 0.5, 2.0], dtype=F64),
           "sd_k": torch.tensor([0.5, 1.0, 2.0], dtype=F64)}
    if form == "batched":  # a particle axis before K: the shortcut renames K and keeps it
        lat = {k: v.unsqueeze(0) for k, v in lat.items()}
    obs = {"y": torch.linspace(-2.0, 3.0, 5, dtype=F64)}
    fused, general = _both(prog, obs, lat)
    _close(fused, general)
    assert _graph_has(prog.log_joint(None, obs, {k: v.requires_grad_() for k, v in lat.items()},
                                     check_latents=False), "_NormalMixtureBackward")


def test_blocks_the_kernels_do_not_cover_take_the_general_path():
    # The location varies per row (a let on Item): no fused kernel applies.
    Item, K = FinSet("Item", 4), FinSet("K", 2)
    mu, z = var("mu_k"), var("z")
    prog = Program("shifted", Item, Item, [
        sample("probs", K, HalfNormal(1.0)),
        sample("mu_k", K, Normal(0.0, 5.0)),
        sample("shift", Item, Normal(0.0, 1.0)),
        marginalize("z", K, Categorical(var("probs")), [observe("y", Item, Normal(mu[z] + var("shift"), 1.0))]),
    ])
    lat = {"probs": torch.ones(2, dtype=F64), "mu_k": torch.tensor([-1.0, 1.0], dtype=F64),
           "shift": torch.linspace(0, 1, 4, dtype=F64).requires_grad_()}
    lj = prog.log_joint(None, {"y": torch.zeros(4, dtype=F64)}, lat)
    assert not _graph_has(lj, "_NormalMixtureBackward")
    fused, general = _both(prog, {"y": torch.zeros(4, dtype=F64)}, lat)
    _close(fused, general)


def test_kernel_broadcasts_batches_of_data_and_parameters():
    torch.manual_seed(0)
    logw = torch.log_softmax(torch.randn(3, 1, 4, dtype=F64), -1).requires_grad_()
    loc = torch.randn(4, dtype=F64, requires_grad=True)
    scale = (torch.rand(2, 4, dtype=F64) + 0.5).requires_grad_()
    y = torch.randn(2, 7, dtype=F64)
    got = normal_mixture(logw, loc, scale, y)
    table = logw.unsqueeze(-2) + torch.distributions.Normal(loc, scale.unsqueeze(-2)).log_prob(y.unsqueeze(-1))
    expected = table.logsumexp(-1)
    assert got.shape == expected.shape == (3, 2, 7)
    torch.testing.assert_close(got, expected)
    for a, b in zip(torch.autograd.grad(got.sum(), [logw, loc, scale]),
                    torch.autograd.grad(expected.sum(), [logw, loc, scale])):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b)


def test_kernel_passes_gradcheck():
    torch.manual_seed(1)
    args = (torch.randn(2, 3, dtype=F64).requires_grad_(), torch.randn(2, 3, dtype=F64).requires_grad_(),
            (torch.rand(2, 3, dtype=F64) + 0.5).requires_grad_())
    y = torch.randn(5, dtype=F64)
    assert torch.autograd.gradcheck(lambda a, b, c: normal_mixture(a, b, c, y), args)


@pytest.mark.parametrize("weights", [False, True])
def test_rows_in_blocks_give_the_same_values_and_gradients(monkeypatch, weights):
    # Blocks of 16 entries (4 rows of 4 components, batches of 2 counted):
    # every row's value is the one of the whole table to the bit, and the
    # gradients (the blocks' sums added) agree with the whole table's and
    # with autograd's through torch's own densities; one row of zero weight.
    from quivers.programs import fused

    torch.manual_seed(4)
    first = torch.rand(2, 4, dtype=F64) + 0.1 if weights else torch.log_softmax(torch.randn(2, 4, dtype=F64), -1)
    if not weights:
        first[1, :] = -math.inf
    args = (first.requires_grad_(), torch.randn(4, dtype=F64, requires_grad=True),
            (torch.rand(2, 4, dtype=F64) + 0.5).requires_grad_())
    y = torch.randn(2, 23, dtype=F64)

    def run():
        out = normal_mixture(*args, y, weights=weights)
        return out.detach(), torch.autograd.grad(out[torch.isfinite(out)].sum(), list(args))

    whole = run()
    monkeypatch.setattr(fused, "_BLOCK_ELEMENTS", 16)
    blocks = run()
    assert torch.equal(whole[0], blocks[0])
    for a, b in zip(whole[1], blocks[1]):
        torch.testing.assert_close(a, b)
    logw = torch.log(first / first.sum(-1, keepdim=True)) if weights else first
    table = logw.unsqueeze(-2) + torch.distributions.Normal(args[1], args[2].unsqueeze(-2)).log_prob(y.unsqueeze(-1))
    torch.testing.assert_close(blocks[0], table.logsumexp(-1).detach())
    if weights:
        gradcheck_args = tuple(a.detach().clone().requires_grad_() for a in args)
        assert torch.autograd.gradcheck(lambda a, b, c: normal_mixture(a, b, c, y, weights=True), gradcheck_args)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_terms_that_underflow_change_neither_value_nor_gradients(dtype):
    # Components so far apart that most terms of the table lie below the
    # smallest normal number (the kernel raises them to it before exp).
    k = 6
    logw = torch.log_softmax(torch.randn(k, dtype=dtype), -1).requires_grad_()
    loc = torch.linspace(-3000.0, 3000.0, k, dtype=dtype).requires_grad_()
    scale = torch.linspace(0.5, 2.0, k, dtype=dtype).requires_grad_()
    y = loc.detach()[torch.arange(40) % k] + torch.randn(40, dtype=dtype)
    table = logw + torch.distributions.Normal(loc, scale).log_prob(y[:, None])
    assert float((table - table.amax(-1, keepdim=True) < math.log(torch.finfo(dtype).tiny)).double().mean()) > 0.5
    expected = table.logsumexp(-1)
    got = normal_mixture(logw, loc, scale, y)
    torch.testing.assert_close(got, expected)
    for a, b in zip(torch.autograd.grad(got.sum(), [logw, loc, scale]),
                    torch.autograd.grad(expected.sum(), [logw, loc, scale])):
        torch.testing.assert_close(a, b)


def test_a_row_of_zero_weights_is_minus_infinity_with_zero_gradients():
    logw = torch.tensor([[-math.inf, -math.inf], [0.0, -1.0]], dtype=F64, requires_grad=True)
    loc = torch.zeros(2, 2, dtype=F64, requires_grad=True)
    scale = torch.ones(2, 2, dtype=F64, requires_grad=True)
    out = normal_mixture(logw, loc, scale, torch.tensor([0.5], dtype=F64))
    assert bool(torch.isneginf(out[0]).all()) and bool(torch.isfinite(out[1]).all())
    for g in torch.autograd.grad(out.sum(), [logw, loc, scale]):
        assert bool(torch.isfinite(g).all())
        assert float(g[0].abs().sum()) == 0.0


EXTREMES = [0.0, 1e-30, 1.0, -1.0, 3.0, 1e30, math.inf, -math.inf, math.nan]


@given(loc=st.sampled_from(EXTREMES), scale=st.sampled_from([0.0, 1e-30, 1.0, 1e30, math.inf, -1.0]),
       logw=st.sampled_from(EXTREMES), first=st.booleans())
def test_the_captured_kernel_is_the_eager_one_at_every_extreme(loc, scale, logw, first):
    # recorded, the kernel computes out of place what it computes in place
    # eagerly; values and gradients agree bit for bit (NaN where NaN),
    # rows of -inf, +inf and NaN included
    from quivers.capture import capture

    def run(captured):
        params = [torch.tensor([v, w], dtype=F64, requires_grad=True)
                  for v, w in ((logw, -1.0), (loc, 0.0), (scale, 1.0))]
        if not first:
            params = [p.detach().flip(0).requires_grad_() for p in params]
        y = torch.tensor([0.5, -2.0, 1.0], dtype=F64)
        if captured:
            with capture():
                out = normal_mixture(*params, y)
        else:
            out = normal_mixture(*params, y)
        return (out, *torch.autograd.grad(out.sum(), params))

    for a, b in zip(run(False), run(True)):
        torch.testing.assert_close(a, b, rtol=0, atol=0, equal_nan=True)


@pytest.mark.parametrize("rows, transposed", [(1_000, True), (20_000, False)])
def test_a_recorded_table_is_transposed_where_scalar_loops_take_it(rows, transposed, monkeypatch):
    # (K, rows) lets inductor's scalar loops run along the rows; a table of
    # SIMD size (65,536 entries and up) keeps the components inner. Either
    # way the values and gradients are the eager ones.
    from quivers.capture import capture
    from quivers.programs import fused

    layouts = []
    real = fused._rows

    def spy(*args):
        layouts.append(args[-1])
        return real(*args)

    monkeypatch.setattr(fused, "_rows", spy)
    gen = torch.Generator().manual_seed(rows)
    y = torch.randn(rows, generator=gen, dtype=F64)
    values = (torch.log_softmax(torch.randn(4, generator=gen, dtype=F64), -1), torch.randn(4, generator=gen, dtype=F64),
              torch.rand(4, generator=gen, dtype=F64) + 0.5)

    def run(captured):
        params = [v.clone().requires_grad_() for v in values]
        with capture() if captured else contextlib.nullcontext():
            out = normal_mixture(*params, y)
        return (out, *torch.autograd.grad(out.sum(), params))

    eager, recorded = run(False), run(True)
    assert layouts == [False, transposed]
    for a, b in zip(eager, recorded):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_the_recorded_kernel_leaves_no_write_that_keeps_it_from_inductor():
    from quivers.capture import _make_functional, record

    logw = torch.log_softmax(torch.randn(3, dtype=F64), -1)
    loc, scale, y = torch.randn(3, dtype=F64), torch.rand(3, dtype=F64) + 0.5, torch.randn(50, dtype=F64)

    def value_and_grad(logw, loc, scale):
        params = [t.requires_grad_() for t in (logw, loc, scale)]
        out = normal_mixture(*params, y).sum()
        return (out, *torch.autograd.grad(out, params))

    graph = record(value_and_grad, logw, loc, scale, decompose=True)
    assert _make_functional(graph)
    for a, b in zip(graph(logw, loc, scale), value_and_grad(logw.clone(), loc.clone(), scale.clone())):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_grouped_kernel_matches_a_scatter_by_hand():
    torch.manual_seed(2)
    y, group = torch.randn(20, dtype=F64), torch.randint(0, 5, (20,))
    group[group == 3] = 4  # group 3 is empty
    logw = torch.log_softmax(torch.randn(5, 3, dtype=F64), -1)
    loc, scale = torch.randn(3, dtype=F64), torch.rand(3, dtype=F64) + 0.5
    table = logw.index_add(0, group, torch.distributions.Normal(loc, scale).log_prob(y[:, None]))
    got = grouped_normal_mixture(logw, loc, scale, group_moments(y, group, 5))
    torch.testing.assert_close(got, table.logsumexp(-1))
    assert float(got[3]) == pytest.approx(0.0)  # an empty fibre: log sum_k pi_k = 0


def test_second_derivatives_are_refused_not_wrong():
    logw, loc = torch.zeros(1, 2, dtype=F64, requires_grad=True), torch.zeros(1, 2, dtype=F64, requires_grad=True)
    scale = torch.ones(1, 2, dtype=F64, requires_grad=True)
    out = _NormalMixture.apply(logw, loc, scale, torch.tensor([0.3], dtype=F64)).sum()
    (g,) = torch.autograd.grad(out, [loc], create_graph=True)
    with pytest.raises(RuntimeError):
        torch.autograd.grad(g.sum(), [loc])


def test_subsampled_programs_scale_the_fused_term():
    prog = models.gmm(6, 2)
    lat = {"probs": torch.ones(2, dtype=F64), "mu_k": torch.tensor([-1.0, 1.0], dtype=F64),
           "sd_k": torch.ones(2, dtype=F64)}
    y = {"y": torch.linspace(-1, 1, 3, dtype=F64)}
    small = prog.subsample({"Item": 3})
    fused = small.log_joint(None, y, lat)
    with use_fused(False):
        general = small.log_joint(None, y, lat)
    torch.testing.assert_close(fused, general)
