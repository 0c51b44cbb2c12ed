"""Inference on composite programs: a prior program >> a likelihood program
fits by SVI exactly like the same model written as one program."""

from __future__ import annotations

import torch

from quivers.categories import FinSet
from quivers.distributions import Categorical, HalfNormal, Normal
from quivers.dsl import loads
from quivers.inference import ELBO, SVI, AutoNormalGuide
from quivers.programs import Program, observe, ret, sample, var

One, K, Item = FinSet("One", 1), FinSet("K", 2), FinSet("Item", 40)

prior = Program("prior", One, K, [
    sample("probs", K, HalfNormal(1.0)),
    sample("z", None, Categorical(var("probs"))),
    ret("z"),
])
likelihood = Program("likelihood", K, Item, [
    sample("mu_k", K, Normal(0.0, 5.0)),
    observe("y", Item, Normal(var("mu_k")[var("k")], 1.0)),
    ret("y"),
], input="k")
single = Program("single", One, Item, [
    sample("probs", K, HalfNormal(1.0)),
    sample("z", None, Categorical(var("probs"))),
    sample("mu_k", K, Normal(0.0, 5.0)),
    observe("y", Item, Normal(var("mu_k")[var("z")], 1.0)),
    ret("y"),
])

QVR = """
object One : FinSet 1
object K : FinSet 2
object Item : FinSet 40

program prior : One -> K
    sample probs : K <- HalfNormal(1.0)
    sample z <- Categorical(probs)
    return z

program likelihood(k) : K -> Item
    sample mu_k : K <- Normal(0.0, 5.0)
    observe y : Item <- Normal(mu_k[k], 1.0)
    return y

program model = prior >> likelihood
export model
"""


def _data() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    return {"y": 2.0 + torch.randn(Item.size, generator=g)}


def _latents(n: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(5)
    return {
        "probs": torch.rand(n, K.size, generator=g) + 0.1,
        "z": torch.randint(0, K.size, (n,), generator=g),
        "mu_k": 3 * torch.randn(n, K.size, generator=g),
    }


def test_the_composite_has_the_log_joint_of_the_single_program():
    composite = prior >> likelihood
    assert composite.dom == One and composite.cod == Item
    assert [s.name for s in composite.latent_sites({"y"})] == [s.name for s in single.latent_sites({"y"})]
    data, lat = _data(), _latents(16)
    torch.testing.assert_close(composite.log_joint(None, data, lat), single.log_joint(None, data, lat))
    from_qvr = loads(QVR).morphism
    torch.testing.assert_close(from_qvr.log_joint(torch.zeros(1, 1), data, lat), single.log_joint(None, data, lat))


def _fit(model: Program, steps: int = 400) -> tuple[list[float], dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    guide = AutoNormalGuide(model, observed_names={"y"})
    svi = SVI(model, guide, torch.optim.Adam(guide.parameters(), lr=0.05), ELBO(num_particles=4))
    data = _data()
    losses = [svi.step(torch.zeros(1, 1), data) for _ in range(steps)]
    return losses, guide.median()


def test_svi_on_the_composite_is_svi_on_the_single_program():
    losses_c, post_c = _fit(loads(QVR).morphism)
    losses_s, post_s = _fit(single)
    torch.testing.assert_close(torch.tensor(losses_c), torch.tensor(losses_s))
    for name in ("probs", "mu_k", "z"):
        torch.testing.assert_close(post_c[name], post_s[name])
    # and it recovers the posterior: the chosen component sits at the data's mean
    ybar = float(_data()["y"].mean())
    assert abs(float(post_c["mu_k"][post_c["z"]]) - ybar) < 0.3
    assert sum(losses_c[-50:]) < sum(losses_c[:50])


def test_svi_passes_the_input_of_a_program_with_one():
    # likelihood alone, with k given as x: only mu_k[1] meets the data
    torch.manual_seed(0)
    guide = AutoNormalGuide(likelihood, observed_names={"y"})
    svi = SVI(likelihood, guide, torch.optim.Adam(guide.parameters(), lr=0.05), ELBO(num_particles=4))
    data = _data()
    for _ in range(400):
        svi.step(torch.tensor(1), data)
    mu = guide.median()["mu_k"]
    assert abs(float(mu[1]) - float(data["y"].mean())) < 0.2
    assert abs(float(mu[0])) < 1.5  # the other stays near its prior mean
