"""Laws of marginalization: per-row is grouping along the identity, and the
named-axis grouping is the core's right Kan extension (functorial, exact)."""

from __future__ import annotations

import torch
from hypothesis import given
from hypothesis import strategies as st

from quivers.categories import FinFunction, FinSet
from quivers.distributions import Categorical, HalfNormal, Normal
from quivers.programs import Program, index_map, marginalize, observe, sample, var
from quivers.programs.named import Value, scatter_sum

from tests.programs.models import gmm

F64 = torch.float64
floats = st.floats(-3.0, 3.0, allow_nan=False)


def rows_as_groups(n: int, k: int) -> Program:
    """The flat mixture written as a grouped block over a copy of its rows."""
    Item, Rows, K = FinSet("Item", n), FinSet("Rows", n), FinSet("K", k)
    mu, sd, z = var("mu_k"), var("sd_k"), var("z")
    return Program("rows", Item, Item, [
        index_map("row", Item, Rows),
        sample("probs", K, HalfNormal(1.0)),
        sample("mu_k", K, Normal(0.0, 5.0)),
        sample("sd_k", K, HalfNormal(1.0)),
        marginalize("z", K, Categorical(var("probs")), [observe("y", Item, Normal(mu[z], sd[z]), via="row")], over=Rows),
    ])


@given(st.integers(1, 6), st.integers(1, 4), st.data())
def test_per_row_marginalization_is_grouping_along_the_identity(n, k, data):
    y = torch.tensor(data.draw(st.lists(floats, min_size=n, max_size=n)), dtype=F64)
    lat = {
        "probs": torch.tensor(data.draw(st.lists(st.floats(0.05, 2.0), min_size=k, max_size=k)), dtype=F64),
        "mu_k": torch.tensor(data.draw(st.lists(floats, min_size=k, max_size=k)), dtype=F64),
        "sd_k": torch.tensor(data.draw(st.lists(st.floats(0.3, 2.0), min_size=k, max_size=k)), dtype=F64),
    }
    flat = gmm(n, k).log_joint(None, {"y": y}, lat)
    grouped = rows_as_groups(n, k).log_joint(None, {"y": y, "row": torch.arange(n)}, lat)
    torch.testing.assert_close(grouped, flat, rtol=1e-12, atol=1e-12)
    resp_flat = gmm(n, k).posterior_latents(None, {"y": y}, lat)["z"]
    resp_grouped = rows_as_groups(n, k).posterior_latents(None, {"y": y, "row": torch.arange(n)}, lat)["z"]
    torch.testing.assert_close(resp_grouped, resp_flat)


@given(st.integers(1, 5), st.integers(1, 4), st.integers(1, 4), st.data())
def test_named_grouping_is_functorial_and_carries_batch_axes(n, m, p, data):
    A, B, C = FinSet("A", n), FinSet("B", m), FinSet("C", p)
    f = FinFunction(A, B, data.draw(st.lists(st.integers(0, m - 1), min_size=n, max_size=n)))
    g = FinFunction(B, C, data.draw(st.lists(st.integers(0, p - 1), min_size=m, max_size=m)))
    w = Value(torch.randn(2, 3, n, dtype=F64), ("K", "A"))  # a batch axis, K, then A
    two_steps = scatter_sum(scatter_sum(w, f), g)
    one_step = scatter_sum(w, f >> g)
    assert two_steps.dims == one_step.dims == ("K", "C")
    torch.testing.assert_close(two_steps.tensor, one_step.tensor)
    for c in range(p):
        rows = [a for a in range(n) if int(g.mapping[f.mapping[a]]) == c]
        torch.testing.assert_close(one_step.tensor[..., c], w.tensor[..., rows].sum(-1))


def test_pointwise_log_likelihood_of_a_per_row_block_is_each_rows_mixture_density():
    prog = gmm(5, 2)
    y = torch.randn(5, dtype=F64)
    lat = {"probs": torch.tensor([1.0, 3.0], dtype=F64), "mu_k": torch.tensor([-1.0, 1.0], dtype=F64),
           "sd_k": torch.tensor([0.5, 2.0], dtype=F64)}
    pw = prog.pointwise_log_likelihood(None, {"y": y}, lat)["y"]
    w = lat["probs"] / lat["probs"].sum()
    dens = torch.distributions.Normal(lat["mu_k"], lat["sd_k"]).log_prob(y.unsqueeze(-1)) + w.log()
    torch.testing.assert_close(pw, torch.logsumexp(dens, -1))
