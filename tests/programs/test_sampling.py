"""Ancestral draws: shapes, frequencies, conditioning, dtypes, the return."""

from __future__ import annotations

import math

import pytest
import torch

from quivers.categories import FinSet
from quivers.distributions import Categorical, HalfNormal, Normal
from quivers.programs import Program, marginalize, observe, ret, sample, var

from tests.programs.models import gmm, grouped

LAT = {"probs": torch.tensor([1.0, 3.0]), "mu_k": torch.tensor([-2.0, 2.0]), "sd_k": torch.tensor([0.5, 0.7])}
GROUP = torch.tensor([0, 0, 1, 2, 2, 2])


def within_binomial_sd(count: int, n: int, p: float, sds: float = 5.0) -> bool:
    """``count`` successes out of ``n`` is within ``sds`` binomial standard
    deviations of ``n * p``."""
    return abs(count - n * p) <= sds * math.sqrt(n * p * (1 - p)) + 1e-9


def test_prior_draw_shapes():
    draws = gmm(4, 2).sample()
    assert {k: tuple(v.shape) for k, v in draws.items()} == {
        "probs": (2,), "mu_k": (2,), "sd_k": (2,), "z": (4,), "y": (4,), "_return": (4,),
    }
    draws = gmm(4, 2).sample(None, (5,))
    assert {k: tuple(v.shape) for k, v in draws.items()} == {
        "probs": (5, 2), "mu_k": (5, 2), "sd_k": (5, 2), "z": (5, 4), "y": (5, 4), "_return": (5, 4),
    }


def test_given_latents_with_a_batch_set_the_batch_of_the_draws():
    lat = {k: v.expand(3, 2) for k, v in LAT.items()}
    draws = gmm(4, 2).sample(None, (), lat)
    assert draws["z"].shape == (3, 4) and draws["y"].shape == (3, 4)
    assert torch.equal(draws["mu_k"], lat["mu_k"])
    draws = gmm(4, 2).sample(None, (5,), lat)
    assert draws["z"].shape == (5, 3, 4) and draws["y"].shape == (5, 3, 4)
    draws = gmm(4, 2).sample(None, (5,), {"mu_k": torch.zeros(3, 2)})
    assert draws["probs"].shape == (5, 3, 2) and draws["y"].shape == (5, 3, 4)


def test_grouped_draw_shapes_and_one_latent_per_group():
    draws = grouped(6, 3, 2).sample(None, (5,), observations={"group": GROUP})
    assert draws["z"].shape == (5, 3) and draws["y"].shape == (5, 6) and draws["probs"].shape == (5, 3, 2)
    assert "group" not in draws


def test_per_row_prior_draws_have_the_prior_frequencies():
    torch.manual_seed(0)
    n_draws, rows = 400, 4
    z = gmm(rows, 2).sample(None, (n_draws,), LAT)["z"]
    assert z.shape == (n_draws, rows)
    ones = int(z.sum())
    assert within_binomial_sd(ones, n_draws * rows, 0.75)
    # Rows are independent: row 0 and row 1 agree with probability p^2 + q^2.
    agree = int((z[:, 0] == z[:, 1]).sum())
    assert within_binomial_sd(agree, n_draws, 0.75**2 + 0.25**2)


def test_grouped_prior_draws_follow_each_groups_weights_and_the_group_map():
    torch.manual_seed(1)
    weights = torch.tensor([[1.0, 9.0], [1.0, 1.0], [4.0, 1.0]])
    lat = {"probs": weights, "mu_k": torch.tensor([-100.0, 100.0]), "sd_k": torch.tensor([0.01, 0.01])}
    n_draws = 600
    draws = grouped(6, 3, 2).sample(None, (n_draws,), lat, {"group": GROUP})
    z, y = draws["z"], draws["y"]
    p = weights[:, 1] / weights.sum(-1)
    for g in range(3):
        assert within_binomial_sd(int(z[:, g].sum()), n_draws, float(p[g]))
    # Every row of a group has its group's component: y was drawn given z[group].
    torch.testing.assert_close((y > 0).long(), z[:, GROUP])


def test_draws_given_observations_come_from_the_exact_posterior():
    torch.manual_seed(2)
    prog = gmm(3, 2)
    y = torch.tensor([-1.9, 0.1, 2.3])
    post = prog.posterior_latents(None, {"y": y}, LAT)["z"]
    n_draws = 2000
    draws = prog.sample(None, (n_draws,), LAT, {"y": y})
    assert torch.equal(draws["y"], y)  # observations are kept
    for i in range(3):
        assert within_binomial_sd(int(draws["z"][:, i].sum()), n_draws, float(post[i, 1]))


def test_grouped_posterior_draws():
    torch.manual_seed(3)
    prog = grouped(6, 3, 2)
    obs = {"y": torch.tensor([0.3, -0.2, 1.0, 0.1, -0.4, 0.2]), "group": GROUP}
    lat = {"probs": torch.ones(3, 2), "mu_k": torch.tensor([-0.5, 0.5]), "sd_k": torch.tensor([1.0, 1.0])}
    post = prog.posterior_latents(None, obs, lat)["z"]
    draws = prog.sample(None, (2000,), lat, obs)["z"]
    for g in range(3):
        assert within_binomial_sd(int(draws[:, g].sum()), 2000, float(post[g, 1]))


def test_sample_sites_given_as_observations_are_conditioned_on_and_scored():
    prog = gmm(4, 2)
    y = torch.randn(4)
    by_latents = prog.log_joint(None, {"y": y}, LAT)
    by_observations = prog.log_joint(None, {"y": y, **LAT})
    torch.testing.assert_close(by_observations, by_latents)
    # Their log prior is part of the joint: moving mu_k changes it by the prior ratio
    # plus the likelihood, exactly as when it is passed as a latent.
    other = {**LAT, "mu_k": torch.tensor([-1.0, 1.0])}
    torch.testing.assert_close(prog.log_joint(None, {"y": y, **other}), prog.log_joint(None, {"y": y}, other))
    draws = prog.sample(None, (3,), observations={"mu_k": LAT["mu_k"]})
    assert torch.equal(draws["mu_k"], LAT["mu_k"]) and draws["probs"].shape == (3, 2)


def test_a_given_marginalized_latent_is_conditioned_on():
    prog = gmm(3, 2)
    y = torch.tensor([-1.0, 0.5, 2.0], dtype=torch.float64)
    lat = {k: v.double() for k, v in LAT.items()}
    zs = torch.tensor([0, 1, 1])
    got = prog.log_joint(None, {"y": y, "z": zs}, lat)
    w = lat["probs"] / lat["probs"].sum()
    want = (
        torch.distributions.HalfNormal(torch.tensor(1.0, dtype=torch.float64)).log_prob(lat["probs"]).sum()
        + torch.distributions.Normal(0.0, 5.0).log_prob(lat["mu_k"]).sum()
        + torch.distributions.HalfNormal(1.0).log_prob(lat["sd_k"]).sum()
        + torch.log(w[zs]).sum()
        + torch.distributions.Normal(lat["mu_k"][zs], lat["sd_k"][zs]).log_prob(y).sum()
    )
    torch.testing.assert_close(got, want)
    draws = prog.sample(None, (4,), lat, {"z": zs})
    assert torch.equal(draws["z"], zs) and draws["y"].shape == (4, 3)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_float32_and_float64(dtype):
    prog = gmm(4, 2)
    lat = {k: v.to(dtype) for k, v in LAT.items()}
    draws = prog.sample(None, (2,), lat)
    assert draws["y"].dtype == dtype and draws["z"].dtype == torch.long
    assert prog.log_joint(None, {"y": draws["y"]}, lat).dtype == dtype
    assert prog.posterior_latents(None, {"y": draws["y"]}, lat)["z"].dtype == dtype
    obs = {"y": torch.randn(6, dtype=dtype), "group": GROUP}
    glat = {"probs": torch.ones(3, 2, dtype=dtype), "mu_k": lat["mu_k"], "sd_k": lat["sd_k"]}
    assert grouped().log_joint(None, obs, glat).dtype == dtype


def test_the_return_value_is_reported():
    draws = gmm(4, 2).sample(None, (2,), LAT)
    assert torch.equal(draws["_return"], draws["y"])
    Item = FinSet("Item", 3)
    prog = Program("p", Item, Item, [sample("a", Item, Normal(0.0, 1.0)), ret(var("a") * 2 + 1)])
    draws = prog.sample(None, (5,))
    torch.testing.assert_close(draws["_return"], draws["a"] * 2 + 1)


def test_nested_blocks_draw_both_latents():
    Item, K1, K2 = FinSet("Item", 3), FinSet("K1", 2), FinSet("K2", 3)
    z1, z2 = var("z1"), var("z2")
    prog = Program("nested", Item, Item, [
        sample("m", K1 * K2, Normal(0.0, 1.0)),
        marginalize("z1", K1, Categorical([1.0, 1.0]), [
            marginalize("z2", K2, Categorical([1.0, 2.0, 3.0]), [observe("y", Item, Normal(var("m")[z1, z2], 1.0))]),
        ]),
    ])
    draws = prog.sample(None, (7,))
    assert draws["z1"].shape == (7, 3) and draws["z2"].shape == (7, 3) and draws["y"].shape == (7, 3)
    assert int(draws["z2"].max()) <= 2


def test_sampling_a_halfnormal_seed_prior_stays_in_its_support():
    K = FinSet("K", 2)
    prog = Program("p", K, K, [sample("s", K, HalfNormal(1.0))])
    assert bool((prog.sample(None, (100,))["s"] > 0).all())
