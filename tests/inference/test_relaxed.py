"""Relaxed (Gumbel-softmax) discrete latents: ``ELBO(discrete="relaxed")``.

The references are independent of the relaxation: the same model with the
latent marginalized gives the exact evidence and posterior (checked itself
against enumeration in :mod:`tests.programs`), and finite differences of
the relaxed log joint under fixed noise check its gradient.
"""

from __future__ import annotations

import math

import pytest
import torch

from quivers.categories.finset import FinSet
from quivers.distributions import Bernoulli, Categorical, HalfNormal, Normal
from quivers.errors import DataError, QuiversError, QuiversTypeError, ShapeError
from quivers.inference import ELBO, SVI, AutoNormalGuide
from quivers.programs import Program, const, let, marginalize, observe, sample, var
from quivers.programs.relaxed import Relaxed

F64 = torch.float64
N, K = 4, 6
WEIGHTS = torch.tensor([0.9, 0.4, 1.2, 0.3, 0.8, 0.5], dtype=F64)
MEANS = torch.linspace(-3.0, 3.0, K, dtype=F64)
Y = torch.tensor([-2.5, 0.3, 1.1, 2.9], dtype=F64)


def sampled() -> Program:
    """z_n ~ Categorical(w), y_n ~ N(mu[z_n], 1): z sampled, not marginalized."""
    Item, KK = FinSet("Item", N), FinSet("K", K)
    return Program("sampled", Item, Item, [
        sample("z", Item, Categorical(const(WEIGHTS, KK))),
        observe("y", Item, Normal(const(MEANS, KK)[var("z")], 1.0)),
    ])


def marginalized() -> Program:
    Item, KK = FinSet("Item", N), FinSet("K", K)
    return Program("marginalized", Item, Item, [
        marginalize("z", KK, Categorical(const(WEIGHTS, KK)), [
            observe("y", Item, Normal(const(MEANS, KK)[var("z")], 1.0))]),
    ])


def brute_force_evidence() -> float:
    """log p(y) by enumerating every z_n, in float64 with Python loops."""
    w = WEIGHTS / WEIGHTS.sum()
    total = 0.0
    for n in range(N):
        terms = [math.log(float(w[k])) + float(torch.distributions.Normal(MEANS[k], 1.0).log_prob(Y[n]))
                 for k in range(K)]
        total += float(torch.logsumexp(torch.tensor(terms, dtype=F64), 0))
    return total


def guide_at_posterior() -> AutoNormalGuide:
    guide = AutoNormalGuide(sampled(), observed_names={"y"}).double()
    post = marginalized().posterior_latents(None, {"y": Y})["z"]
    with torch.no_grad():
        guide.logits["z"].copy_(post.log())
    return guide


# ------------------------------------------------------------- the reading


def test_a_vertex_scores_as_its_integer_value():
    model = sampled()
    z = torch.tensor([0, 5, 2, 3])
    hard = model.log_joint(None, {"y": Y}, {"z": z})
    soft = model.log_joint(None, {"y": Y}, {"z": Relaxed(torch.nn.functional.one_hot(z, K).to(F64))})
    torch.testing.assert_close(soft, hard)


def test_indexing_is_the_convex_combination_and_scoring_is_linear():
    Item, KK = FinSet("Item", N), FinSet("K", K)
    model = Program("m", Item, Item, [
        sample("z", Item, Categorical(const(WEIGHTS, KK))),
        let("m", const(MEANS, KK)[var("z")]),
        observe("y", Item, Normal(var("m"), 1.0)),
    ])
    y = torch.distributions.Dirichlet(torch.ones(3, N, K, dtype=F64)).sample()  # a batch of 3
    draws = model.sample(None, latents={"z": Relaxed(y)})
    torch.testing.assert_close(draws["m"], y @ MEANS)
    got = model.log_joint(None, {"y": Y}, {"z": Relaxed(y)})
    log_pi = (WEIGHTS / WEIGHTS.sum()).log()
    want = (y * log_pi).sum((-2, -1)) + torch.distributions.Normal(y @ MEANS, 1.0).log_prob(Y).sum(-1)
    torch.testing.assert_close(got, want)


def test_the_weights_may_be_latent_with_a_batch():
    Item, KK = FinSet("Item", N), FinSet("K", K)
    model = Program("m", Item, Item, [
        sample("probs", KK, HalfNormal(1.0)),
        sample("z", Item, Categorical(var("probs"))),
        observe("y", Item, Normal(const(MEANS, KK)[var("z")], 1.0)),
    ])
    gen = torch.Generator().manual_seed(0)
    probs = torch.rand(5, K, generator=gen, dtype=F64) + 0.1
    y = torch.distributions.Dirichlet(torch.ones(5, N, K, dtype=F64)).sample()
    got = model.log_joint(None, {"y": Y}, {"probs": probs, "z": Relaxed(y)})
    log_pi = (probs / probs.sum(-1, keepdim=True)).log()
    want = (torch.distributions.HalfNormal(torch.tensor(1.0, dtype=F64)).log_prob(probs).sum(-1)
            + (y * log_pi.unsqueeze(-2)).sum((-2, -1))
            + torch.distributions.Normal(y @ MEANS, 1.0).log_prob(Y).sum(-1))
    torch.testing.assert_close(got, want)


def test_gradients_flow_through_the_relaxed_draw():
    """d/dlogits of log p~(y, rsample(logits)) under fixed Gumbel noise
    equals its central finite difference, and is not zero."""
    model = sampled()
    logits = torch.randn(N, K, dtype=F64, requires_grad=True)

    def objective(lg: torch.Tensor) -> torch.Tensor:
        torch.manual_seed(7)
        y = torch.distributions.RelaxedOneHotCategorical(torch.tensor(0.5, dtype=F64), logits=lg).rsample((8,))
        return model.log_joint(None, {"y": Y}, {"z": Relaxed(y)}).sum()

    (grad,) = torch.autograd.grad(objective(logits), logits)
    assert bool(grad.abs().sum() > 1e-3)
    eps = 1e-6
    for i, k in [(0, 0), (1, 3), (3, 5), (2, 2)]:
        bump = torch.zeros_like(logits)
        bump[i, k] = eps
        with torch.no_grad():
            fd = (objective(logits + bump) - objective(logits - bump)) / (2 * eps)
        assert abs(float(fd - grad[i, k])) < 1e-5 * max(1.0, abs(float(fd)))


def test_the_elbo_surrogate_reaches_the_guide_logits():
    guide = AutoNormalGuide(sampled(), observed_names={"y"}).double()
    surrogate, value = ELBO(num_particles=8, discrete="relaxed", temperature=0.5).differentiable_loss(
        sampled(), guide, None, {"y": Y})
    surrogate.backward()
    assert math.isfinite(value) and float(surrogate.detach()) == pytest.approx(value)
    assert bool(guide.logits["z"].grad.abs().sum() > 0)


# ---------------------------------------------------------- convergence


def test_the_relaxed_elbo_tends_to_the_exact_evidence():
    """At the exact posterior the ELBO is the log evidence; the relaxed
    estimate approaches it as the temperature goes to zero."""
    exact = float(marginalized().log_joint(None, {"y": Y}))
    assert exact == pytest.approx(brute_force_evidence(), abs=1e-9)
    guide = guide_at_posterior()
    torch.manual_seed(0)
    gaps = []
    for t in (0.5, 0.2, 0.02):
        estimate = -ELBO(num_particles=20000, discrete="relaxed", temperature=t).loss(sampled(), guide, None, {"y": Y})
        gaps.append(abs(estimate - exact))
    assert gaps[0] > gaps[1] > gaps[2]
    assert gaps[2] < 0.08  # the bias is about linear in the temperature: 0.7 at 0.5


def test_svi_with_the_relaxation_learns_the_posterior():
    exact = float(marginalized().log_joint(None, {"y": Y}))
    post = marginalized().posterior_latents(None, {"y": Y})["z"]
    model = sampled()
    torch.manual_seed(1)
    guide = AutoNormalGuide(model, observed_names={"y"}).double()
    elbo = ELBO(num_particles=16, discrete="relaxed", temperature=0.5)
    optimizer = torch.optim.Adam(guide.parameters(), lr=0.1)
    svi = SVI(model, guide, optimizer, elbo)
    for i in range(600):
        elbo.temperature = max(0.05, 0.5 - i / 400)  # annealed
        if i == 300:
            optimizer.param_groups[0]["lr"] = 0.02
        svi.step(None, {"y": Y})
    # The untrained guide is 0.44 away in probability and 12 nats below.
    learned = torch.softmax(guide.logits["z"].detach(), -1)
    assert float((learned - post).abs().max()) < 0.12
    hard = -ELBO(num_particles=20000).loss(model, guide, None, {"y": Y})  # the discrete ELBO of the guide
    assert exact - 0.12 < hard <= exact + 0.02


# --------------------------------------------------------------- errors


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf"), "warm", None])
def test_a_bad_temperature_is_refused(bad):
    with pytest.raises(QuiversTypeError, match="temperature must be a finite positive number"):
        if bad is None:
            ELBO(discrete="relaxed").temperature = bad
        else:
            ELBO(discrete="relaxed", temperature=bad)
    elbo = ELBO(discrete="relaxed", temperature=0.3)
    with pytest.raises(QuiversError):
        elbo.temperature = bad
    assert elbo.temperature == 0.3


def test_elbo_options_are_checked():
    with pytest.raises(QuiversTypeError, match="unknown discrete estimator `gumbel`"):
        ELBO(discrete="gumbel")
    with pytest.raises(QuiversTypeError, match="temperature applies to relaxed"):
        ELBO(temperature=0.5)
    with pytest.raises(QuiversTypeError, match="temperature applies to relaxed"):
        ELBO().temperature = 0.5
    assert ELBO(discrete="relaxed").temperature == 0.5


def test_only_categorical_latents_relax():
    I = FinSet("I", 1)
    model = Program("b", I, I, [
        sample("b", None, Bernoulli(0.3)),
        observe("y", I, Normal(var("b") * 2.0, 1.0)),
    ])
    guide = AutoNormalGuide(model, observed_names={"y"})
    with pytest.raises(QuiversTypeError, match="only Categorical latents can be relaxed"):
        ELBO(discrete="relaxed").loss(model, guide, None, {"y": torch.tensor([1.0])})
    with pytest.raises(QuiversTypeError, match="only sampled Categorical latents take relaxed values"):
        model.log_joint(None, {"y": torch.tensor([1.0])}, {"b": Relaxed(torch.tensor([0.5, 0.5]))})


def test_a_relaxed_value_used_other_than_as_an_index_is_refused():
    I, KK = FinSet("I", 1), FinSet("K", 3)
    model = Program("m", I, I, [
        sample("z", None, Categorical(const(torch.ones(3), KK))),
        observe("y", I, Normal(var("z") * 1.0, 1.0)),
    ])
    with pytest.raises(QuiversTypeError, match="`z` has a relaxed"):
        model.log_joint(None, {"y": torch.tensor([1.0])}, {"z": Relaxed(torch.tensor([0.2, 0.3, 0.5]))})


def test_relaxed_values_are_checked():
    model = sampled()
    with pytest.raises(ShapeError, match="trailing shape"):
        model.log_joint(None, {"y": Y}, {"z": Relaxed(torch.full((N, K - 1), 1.0 / (K - 1), dtype=F64))})
    with pytest.raises(DataError, match="not on the probability simplex"):
        model.log_joint(None, {"y": Y}, {"z": Relaxed(torch.full((N, K), 0.5, dtype=F64))})
    with pytest.raises(QuiversTypeError, match="must be a tensor"):
        Relaxed([0.5, 0.5])


def test_fit_takes_the_relaxed_estimator():
    from quivers.inference import fit

    post = marginalized().posterior_latents(None, {"y": Y})["z"]
    model = sampled()
    result = fit(model, {"y": Y}, steps=400, lr=0.05, num_particles=16, discrete="relaxed", temperature=0.1,
                 num_samples=50, seed=0, progress_bar=False)
    learned = torch.softmax(result.guide.logits["z"].detach(), -1)
    assert float((learned - post.to(learned.dtype)).abs().max()) < 0.15
    with pytest.raises(QuiversTypeError, match="temperature must be a finite positive number"):
        fit(model, {"y": Y}, steps=1, discrete="relaxed", temperature=-1.0, progress_bar=False)
    with pytest.raises(QuiversTypeError, match='`discrete` of SVI given with method="nuts"'):
        fit(marginalized(), {"y": Y}, method="nuts", discrete="relaxed")
