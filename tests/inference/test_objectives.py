"""IWAE, the Rényi bound and CUBO against the closed form of a conjugate
normal model: the order ELBO <= IWAE_K <= IWAE_{K+1} <= log p(y) <= CUBO,
IWAE_K -> log p(y), each bound exact at the posterior, and the limits that
make them the ELBO."""

from __future__ import annotations

import math

import pytest
import torch

from quivers.categories.finset import FinSet
from quivers.distributions import Categorical, Normal
from quivers.errors import QuiversTypeError
from quivers.inference import ELBO, SVI, AutoMultivariateNormal, AutoNormalGuide
from quivers.inference.objectives import CUBO, IWAE, RWS, RenyiELBO
from quivers.programs import Program, const, observe, sample, var

Y = torch.tensor([0.3, 1.1, -0.4, 2.0], dtype=torch.float64)
N = len(Y)


@pytest.fixture(autouse=True)
def float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def model() -> Program:
    """mu ~ Normal(0, 1), y_i ~ Normal(mu, 1)."""
    I = FinSet("I", N)
    return Program("conjugate", I, I, [sample("mu", None, Normal(0.0, 1.0)), observe("y", I, Normal(var("mu"), 1.0))])


def log_evidence() -> float:
    """log p(y): y ~ Normal(0, I + 1 1^T)."""
    cov = torch.eye(N, dtype=torch.float64) + 1.0
    return float(torch.distributions.MultivariateNormal(torch.zeros(N, dtype=torch.float64), cov).log_prob(Y))


def posterior() -> tuple[float, float]:
    precision = 1.0 + N
    return float(Y.sum()) / precision, 1.0 / math.sqrt(precision)


def guide_at(prog: Program, loc: float, scale: float) -> AutoNormalGuide:
    guide = AutoNormalGuide(prog, observed_names={"y"})
    with torch.no_grad():
        guide.loc.fill_(loc)
        guide.raw_scale.fill_(math.log(math.expm1(scale)))
    return guide


def log_weights(guide, prog, rows: int, cols: int) -> torch.Tensor:
    """``rows x cols`` log importance weights of the guide's draws, scored as
    the objectives score them (one batched draw and one model call)."""
    torch.manual_seed(0)
    _, neg_log_w, _ = ELBO(num_particles=rows * cols)._particles(prog, guide, None, {"y": Y}, None)
    return (-neg_log_w).detach().reshape(rows, cols)


def test_bounds_are_ordered_and_iwae_tends_to_the_evidence():
    """Common random numbers: IWAE_K reads the first K columns of the same
    draws, so its increase in K is not hidden by Monte Carlo noise."""
    prog = model()
    m, s = posterior()
    guide = guide_at(prog, m + 0.8, 1.5 * s)  # off the posterior: every gap is visible
    truth = log_evidence()
    lw = log_weights(guide, prog, 2000, 64)
    elbo = float(lw[:, 0].mean())
    iwae = {k: float(IWAE(k).bound(lw[:, :k].T).mean()) for k in (2, 8, 64)}
    renyi = float(RenyiELBO(0.5, 8).bound(lw[:, :8].T).mean())
    cubo = float(CUBO(2.0, 64).bound(lw.T).mean())
    assert elbo < iwae[2] < iwae[8] < iwae[64] < truth
    assert truth - iwae[64] < 0.02 and truth - elbo > 0.3
    assert elbo < renyi < iwae[8]  # the bound falls as alpha goes from 0 (IWAE) to 1 (the ELBO)
    assert cubo > truth
    # the bounds the objectives return are these, draw for draw
    torch.manual_seed(0)
    assert abs(-IWAE(64).loss(prog, guide, None, {"y": Y}) - float(IWAE(64).bound(lw[0]))) < 1e-10


@pytest.mark.parametrize("objective", [IWAE(4), RenyiELBO(0.5, 4), RenyiELBO(-1.0, 4), CUBO(2.0, 4), CUBO(1.0, 4)],
                         ids=repr)
def test_every_bound_is_the_evidence_at_the_posterior(objective):
    prog = model()
    guide = guide_at(prog, *posterior())
    torch.manual_seed(1)
    value = objective.loss(prog, guide, None, {"y": Y})
    assert abs(abs(value) - abs(log_evidence())) < 1e-10 and (value < 0) == isinstance(objective, CUBO)


def test_one_particle_iwae_is_the_elbo_and_renyi_tends_to_it():
    prog = model()
    guide = guide_at(prog, 0.1, 0.7)
    for objective, tol in [(IWAE(num_particles=1), 1e-12), (RenyiELBO(1.0 - 1e-7, num_particles=8), 1e-5)]:
        torch.manual_seed(3)
        got = objective.loss(prog, guide, None, {"y": Y})
        torch.manual_seed(3)
        want = ELBO(num_particles=objective.num_particles).loss(prog, guide, None, {"y": Y})
        assert abs(got - want) < tol


def test_svi_with_iwae_trains_the_guide():
    """IWAE's gradient for the guide is noisy (its signal-to-noise ratio
    falls as K grows, Rainforth et al. 2018): it must train, not pin the
    posterior down as the ELBO does."""
    prog = model()
    guide = guide_at(prog, -1.0, 1.0)
    svi = SVI(prog, guide, torch.optim.Adam(guide.parameters(), lr=0.05), IWAE(num_particles=16))
    torch.manual_seed(0)
    losses = [svi.step(None, {"y": Y}) for _ in range(600)]
    assert sum(losses[-100:]) < sum(losses[:100])
    m, _ = posterior()
    assert abs(float(guide.loc.detach()) - m) < 0.5


def test_bad_parameters_and_sampled_discrete_latents_are_refused():
    with pytest.raises(QuiversTypeError, match="use ELBO for alpha = 1"):
        RenyiELBO(alpha=1.0)
    with pytest.raises(QuiversTypeError, match="n must be at least 1"):
        CUBO(n=0.5)
    with pytest.raises(QuiversTypeError, match="num_particles"):
        IWAE(num_particles=0)
    K, I = FinSet("K", 3), FinSet("I", 1)
    prog = Program("p", I, I, [sample("z", None, Categorical(const(torch.ones(3), K))),
                               observe("y", I, Normal(const(torch.tensor([-1.0, 0.0, 1.0]), K)[var("z")], 1.0))])
    guide = AutoNormalGuide(prog, observed_names={"y"})
    with pytest.raises(QuiversTypeError, match=r"\['z'\] are sampled discrete latents"):
        IWAE(4).loss(prog, guide, None, {"y": torch.tensor([0.2])})


def guide_gradients(objective, guide, prog, seeds: int) -> torch.Tensor:
    """The gradient of ``objective`` in the guide's (loc, raw_scale), one row per seed."""
    rows = []
    for seed in range(seeds):
        guide.zero_grad()
        torch.manual_seed(seed)
        objective.differentiable_loss(prog, guide, None, {"y": Y})[0].backward()
        rows.append(torch.cat([guide.loc.grad.clone(), guide.raw_scale.grad.clone()]))
    return torch.stack(rows)


@pytest.mark.parametrize("plain, path", [
    (ELBO(4), ELBO(4, estimator="stl")),
    (IWAE(8), IWAE(8, estimator="dreg")),
    (RenyiELBO(0.5, 8), RenyiELBO(0.5, 8, estimator="dreg")),
    (RenyiELBO(-1.0, 8), RenyiELBO(-1.0, 8, estimator="dreg")),
], ids=["stl", "dreg", "renyi-dreg", "renyi-negative-dreg"])
def test_path_derivative_estimators_cut_the_variance_near_the_optimum(plain, path):
    """Sticking the landing (ELBO) and DReG (IWAE) against the plain
    reparameterized gradient, on the same draws, with the guide near the
    posterior: the same mean (both unbiased) and a far smaller variance
    (the path derivative's vanishes at the posterior, the score term's
    does not)."""
    prog = model()
    m, s = posterior()
    guide = guide_at(prog, m + 0.05, 1.05 * s)
    g_plain = guide_gradients(plain, guide, prog, 300)
    g_path = guide_gradients(path, guide, prog, 300)
    var_plain, var_path = g_plain.var(0).sum(), g_path.var(0).sum()
    assert var_path < 0.05 * var_plain
    se = (g_plain.var(0) / 300).sqrt()
    assert bool(((g_plain.mean(0) - g_path.mean(0)).abs() < 4 * se).all())


def test_path_derivative_is_exactly_zero_at_the_posterior():
    """For the mean-field guide (its own stopped density) and the full-rank
    one (the generic stopped density, by functional_call) alike."""
    prog = model()
    m, s = posterior()
    guide = guide_at(prog, m, s)
    full = AutoMultivariateNormal(prog, observed_names={"y"})
    with torch.no_grad():
        full.loc.fill_(m)
        full.raw_diag.fill_(math.log(math.expm1(s)))
    for objective in (ELBO(4, estimator="stl"), IWAE(4, estimator="dreg"), RenyiELBO(0.5, 4, estimator="dreg")):
        assert float(guide_gradients(objective, guide, prog, 3).abs().max()) < 1e-10
        for seed in range(3):
            full.zero_grad()
            torch.manual_seed(seed)
            objective.differentiable_loss(prog, full, None, {"y": Y})[0].backward()
            assert max(float(p.grad.abs().max()) for p in (full.loc, full.raw_diag)) < 1e-10
        torch.manual_seed(0)
        plain = ELBO(4).differentiable_loss(prog, full, None, {"y": Y})[0]
        plain.backward()
        assert float(full.raw_diag.grad.abs().max()) > 1e-3  # the score term the path derivative drops


def test_rws_wake_phi_is_the_self_normalized_importance_estimate():
    """The guide's gradient is ``-sum_k w~_k grad log q(z_k)`` at the
    guide's draws, written out for the normal guide; the value is -IWAE_K."""
    prog = model()
    guide = guide_at(prog, 0.2, 0.6)
    torch.manual_seed(5)
    surrogate, value = RWS(6).differentiable_loss(prog, guide, None, {"y": Y})
    surrogate.backward()
    torch.manual_seed(5)
    z = guide(6).u.detach()[:, 0]
    loc, raw = float(guide.loc.detach()), float(guide.raw_scale.detach())
    scale = math.log1p(math.exp(raw))
    log_p = torch.distributions.Normal(0.0, 1.0).log_prob(z) + torch.distributions.Normal(z[:, None], 1.0).log_prob(Y).sum(-1)
    log_q = torch.distributions.Normal(loc, scale).log_prob(z)
    w = torch.softmax(log_p - log_q, 0)
    d_loc = -(w * (z - loc) / scale**2).sum()
    d_raw = -(w * (-1.0 / scale + (z - loc) ** 2 / scale**3)).sum() / (1.0 + math.exp(-raw))
    assert abs(float(guide.loc.grad) - float(d_loc)) < 1e-10
    assert abs(float(guide.raw_scale.grad) - float(d_raw)) < 1e-10
    assert abs(value + float(torch.logsumexp(log_p - log_q, 0) - math.log(6))) < 1e-10


def test_rws_with_one_particle_is_the_elbo_and_trains_discrete_guides():
    prog = model()
    guide = guide_at(prog, 0.1, 0.7)
    torch.manual_seed(3)
    got = RWS(1).loss(prog, guide, None, {"y": Y})
    torch.manual_seed(3)
    assert abs(got - ELBO(1).loss(prog, guide, None, {"y": Y})) < 1e-12
    # a sampled discrete latent: wake-phi needs neither relaxation nor baseline
    K, I = FinSet("K", 3), FinSet("I", 1)
    prog = Program("p", I, I, [sample("z", None, Categorical(const(torch.ones(3), K))),
                               observe("y", I, Normal(const(torch.tensor([-2.0, 0.0, 2.0]), K)[var("z")], 0.5))])
    guide = AutoNormalGuide(prog, observed_names={"y"})
    svi = SVI(prog, guide, torch.optim.Adam(guide.parameters(), lr=0.1), RWS(16))
    torch.manual_seed(0)
    for _ in range(150):
        svi.step(None, {"y": torch.tensor([1.9])})
    assert int(guide.logits["z"].argmax()) == 2


def test_estimators_are_checked_by_name():
    with pytest.raises(QuiversTypeError, match=r"unknown estimator `dreg` for ELBO; its estimators are `reparam`, `stl`"):
        ELBO(estimator="dreg")
    with pytest.raises(QuiversTypeError, match=r"estimators are `reparam`, `dreg`"):
        IWAE(4, estimator="stl")
    with pytest.raises(QuiversTypeError, match="unknown estimator"):
        RenyiELBO(0.5, 4, estimator="stl")


def test_a_morphism_model_has_no_latents_so_every_bound_is_its_log_density():
    from pathlib import Path

    from quivers.dsl import load

    m = load(Path(__file__).resolve().parents[2] / "examples" / "hmm_morphisms.qvr")
    data = torch.tensor([[0, 0, 3, 3, 0, 0, 3, 3]] * 2)
    want = ELBO().loss(m.likelihood, None, data)
    for objective in (IWAE(4), IWAE(4, estimator="dreg"), RenyiELBO(0.5, 4), CUBO(2.0, 4), RWS(4)):
        assert abs(objective.loss(m.likelihood, None, data) - want) < 1e-9
