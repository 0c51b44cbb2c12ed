"""Flow, Laplace, structured and composed guides against posteriors known in
closed form: a correlated Gaussian (a linear-Gaussian model, whose posterior
is normal with a precision written down below) and Neal's funnel with no
data (the posterior is the prior, log p(y) = 0, so -ELBO is KL(q || p))."""

from __future__ import annotations

import math

import pytest
import torch

from quivers.categories.finset import FinSet
from quivers.distributions import Normal
from quivers.errors import InvalidValueError, QuiversTypeError, UnknownNameError
from quivers.inference import (
    ELBO,
    IWAE,
    SVI,
    AutoDelta,
    AutoGuideList,
    AutoIAFNormal,
    AutoLaplaceApproximation,
    AutoMAFNormal,
    AutoMultivariateNormal,
    AutoNormal,
    AutoNSFNormal,
    AutoStructuredNormal,
    compose_guides,
    fit,
)
from quivers.programs import Program, call, observe, sample, var

Y = torch.tensor([0.9, 1.4, 0.2, 1.1, 0.6, 1.8, 0.7, 1.3], dtype=torch.float64)
Z = torch.tensor([-0.5, 0.3, -1.2], dtype=torch.float64)
DATA = {"y": Y, "z": Z}


@pytest.fixture(autouse=True)
def float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def gaussian() -> Program:
    """a, b, c ~ Normal(0, 1); y_i ~ Normal(a + b, 1); z_j ~ Normal(c, 1):
    a and b have posterior correlation -8/9, c is independent of them."""
    I, J = FinSet("I", len(Y)), FinSet("J", len(Z))
    return Program("gauss", I, I, [
        sample("a", None, Normal(0.0, 1.0)), sample("b", None, Normal(0.0, 1.0)), sample("c", None, Normal(0.0, 1.0)),
        observe("y", I, Normal(var("a") + var("b"), 1.0)), observe("z", J, Normal(var("c"), 1.0)),
    ])


def exact() -> torch.distributions.MultivariateNormal:
    """The posterior of (a, b, c): precision I + X^T X for the design X."""
    y, z = Y.double(), Z.double()
    precision = torch.eye(3, dtype=torch.float64)
    precision[:2, :2] += len(y)
    precision[2, 2] += len(z)
    cov = torch.linalg.inv(precision)
    mean = cov @ torch.stack([y.sum(), y.sum(), z.sum()])
    return torch.distributions.MultivariateNormal(mean, cov)


def mc_kl(guide, num: int = 4000) -> float:
    """KL(q || posterior) by Monte Carlo: every latent is real-valued, so
    the unconstrained draw is the value and the guide's ``log_q`` its
    density."""
    torch.manual_seed(1)
    with torch.no_grad():
        draw = guide(num)
        u = torch.stack([draw.latents[n] for n in "abc"], -1)
        return float((draw.log_q - exact().log_prob(u)).mean())


def train(guide, model, data, steps: int, lr: float, particles: int = 1, seed: int = 0, estimator: str = "stl"):
    """SVI; sticking the landing by default, whose gradient noise vanishes
    where the guide is the posterior, so a family that holds the posterior
    converges to it rather than jittering about it."""
    torch.manual_seed(seed)
    svi = SVI(model, guide, torch.optim.Adam(guide.parameters(), lr=lr), ELBO(num_particles=particles, estimator=estimator))
    for _ in range(steps):
        svi.step(None, data)
    return guide


# ------------------------------------------------------------------ Laplace


def test_laplace_is_exact_on_a_gaussian_posterior():
    prog = gaussian()
    normal = AutoLaplaceApproximation(prog, observed_names=set(DATA)).laplace_approximation(None, DATA)
    assert isinstance(normal, AutoMultivariateNormal)
    post = exact()
    torch.testing.assert_close(normal.loc.detach(), post.mean, atol=1e-6, rtol=0)
    cov = normal.base().covariance_matrix.detach()
    torch.testing.assert_close(cov, post.covariance_matrix, atol=1e-6, rtol=0)


def test_fit_with_the_laplace_guide_draws_from_the_approximation():
    prog = gaussian()
    result = fit(prog, DATA, method="svi", guide="laplace", steps=50, lr=0.05, num_samples=1000, num_chains=2,
                 seed=0, progress_bar=False)
    assert isinstance(result.guide, AutoMultivariateNormal)
    post = exact()
    draws = torch.stack([result.flat_samples()[n] for n in "abc"], -1)
    torch.testing.assert_close(draws.mean(0), post.mean, atol=0.05, rtol=0)
    torch.testing.assert_close(torch.cov(draws.T), post.covariance_matrix, atol=0.03, rtol=0)


def test_laplace_at_a_point_of_wrong_curvature_names_the_latent():
    """y ~ Normal(a^2, 0.1) with y = 4: a = 0 is a minimum of the posterior
    between the modes at +-2, where the Hessian is positive."""
    I = FinSet("I", 1)
    prog = Program("bimodal", I, I, [sample("a", None, Normal(0.0, 10.0)),
                                     observe("y", I, Normal(var("a") * var("a"), 0.1))])
    guide = AutoLaplaceApproximation(prog, observed_names={"y"})
    with torch.no_grad():
        guide.loc.zero_()
    with pytest.raises(InvalidValueError, match="not negative definite.*`a`"):
        guide.laplace_approximation(None, {"y": torch.tensor([4.0])}, map_steps=0)
    # from the same start the mode search moves off the minimum and succeeds
    with torch.no_grad():
        guide.loc.fill_(0.5)
    normal = guide.laplace_approximation(None, {"y": torch.tensor([4.0])})
    assert abs(abs(float(normal.loc.detach())) - 2.0) < 0.01


# --------------------------------------------------------------- structured


def test_structured_guide_with_a_block_fits_the_correlated_posterior():
    prog = gaussian()
    guide = train(AutoStructuredNormal(prog, set(DATA), blocks=[("a", "b")]), prog, DATA, 300, 0.05, 2)
    kl = float(torch.distributions.kl_divergence(guide.base(), exact()).detach())
    assert kl < 1e-3
    # c stays uncorrelated with (a, b): the block structure is exact, not learned
    cov = guide.base().covariance_matrix.detach()
    assert float(cov[2, :2].abs().max()) == 0.0
    # mean-field cannot: the KL of the best mean-field normal here is 0.5 log(1 / (1 - rho^2)) > 0.8
    field = train(AutoNormal(prog, set(DATA)), prog, DATA, 300, 0.05, 2)
    assert mc_kl(field) > 0.5


def test_structured_guide_without_blocks_is_mean_field_and_with_one_block_full_rank():
    prog = gaussian()
    torch.manual_seed(0)
    u = torch.randn(5, 3)
    none = AutoStructuredNormal(prog, set(DATA))
    field = AutoNormal(prog, set(DATA))
    with torch.no_grad():
        none.offdiag.normal_()  # masked out: no block
        field.loc.copy_(none.loc)
    torch.testing.assert_close(none.log_prob(u), field.log_prob(u))
    full = AutoStructuredNormal(prog, set(DATA), blocks=[("a", "b", "c")])
    mvn = AutoMultivariateNormal(prog, set(DATA))
    with torch.no_grad():
        full.offdiag.normal_()
        mvn.offdiag.copy_(full.offdiag)
        mvn.loc.copy_(full.loc)
    torch.testing.assert_close(full.log_prob(u), mvn.log_prob(u))


def test_structured_guide_rejects_bad_blocks():
    prog = gaussian()
    with pytest.raises(UnknownNameError, match="`d`"):
        AutoStructuredNormal(prog, set(DATA), blocks=[("a", "d")])
    with pytest.raises(QuiversTypeError, match="`a` is in two blocks"):
        AutoStructuredNormal(prog, set(DATA), blocks=[("a", "b"), ("a", "c")])


# -------------------------------------------------------------- composition


def test_composed_guide_fits_the_correlated_posterior():
    prog = gaussian()
    guide = compose_guides(prog, {("a", "b"): AutoMultivariateNormal, "c": AutoNormal}, set(DATA))
    train(guide, prog, DATA, 300, 0.05, 2)
    assert mc_kl(guide) < 1e-3
    median = guide.median()
    torch.testing.assert_close(torch.stack([median[n] for n in "abc"]), exact().mean, atol=0.05, rtol=0)


def test_composed_log_density_is_the_sum_of_the_parts():
    prog = gaussian()
    guide = compose_guides(prog, {"c": AutoMultivariateNormal, ("a", "b"): AutoNormal}, set(DATA))
    draw = guide(6)
    assert guide.layout.names == ["c", "a", "b"]
    parts = guide.parts[0].log_prob(draw.u[:, :1]) + guide.parts[1].log_prob(draw.u[:, 1:])
    torch.testing.assert_close(draw.log_q, parts)
    torch.testing.assert_close(draw.latents["c"], draw.u[:, 0])


def test_composed_guide_takes_the_path_derivative_estimators():
    """DReG reweights the gradient through the joint draw; every part gets one."""
    prog = gaussian()
    guide = compose_guides(prog, {("a", "b"): AutoMultivariateNormal}, set(DATA))
    surrogate, _ = IWAE(num_particles=4, estimator="dreg").differentiable_loss(prog, guide, None, DATA)
    surrogate.backward()
    assert all(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in (guide.parts[0].loc, guide.parts[1].loc))


def test_composition_errors_name_the_latents():
    prog = gaussian()
    with pytest.raises(QuiversTypeError, match=r"no guide covers \['c'\]"):
        compose_guides(prog, {("a", "b"): AutoMultivariateNormal}, set(DATA), rest=None)
    with pytest.raises(QuiversTypeError, match="`a` is covered by parts 0 and 1"):
        AutoGuideList(prog, [AutoNormal(prog, set(DATA), sites=["a"]), AutoDelta(prog, set(DATA), sites=["a", "b"])])
    with pytest.raises(UnknownNameError, match="`y` is no latent"):
        AutoNormal(prog, set(DATA), sites=["y"])
    with pytest.raises(QuiversTypeError, match="another model"):
        AutoGuideList(prog, [AutoNormal(gaussian(), set(DATA))])


# -------------------------------------------------------------------- flows


@pytest.mark.parametrize("cls", [AutoIAFNormal, AutoMAFNormal, AutoNSFNormal])
def test_flow_draws_and_density_agree_away_from_the_identity(cls):
    prog = gaussian()
    torch.manual_seed(3)
    guide = cls(prog, set(DATA), num_flows=2, hidden_dims=(8,))
    with torch.no_grad():  # leave the identity a new flow starts at
        for p in guide.parameters():
            p.add_(0.3 * torch.randn_like(p))
    draw = guide(7)
    torch.testing.assert_close(guide.log_prob(draw.u), draw.log_base, atol=1e-6, rtol=0)
    u = draw.u.detach().requires_grad_()
    stopped = guide.stopped_log_prob(u)
    torch.testing.assert_close(stopped, draw.log_base, atol=1e-6, rtol=0)
    stopped.sum().backward()  # the path derivative: the gradient reaches the draw, not the flow's parameters
    assert bool(u.grad.abs().sum() > 0)
    assert all(p.grad is None for p in guide.parameters())


def test_flow_starts_as_the_mean_field_guide():
    prog = gaussian()
    flow, field = AutoIAFNormal(prog, set(DATA)), AutoNormal(prog, set(DATA))
    u = torch.randn(5, 3)
    with torch.no_grad():
        field.loc.copy_(flow.loc)
    torch.testing.assert_close(flow.log_prob(u), field.log_prob(u))


@pytest.mark.slow
def test_iaf_guide_fits_the_correlated_posterior():
    """The best mean-field normal is 0.8 nats away; the flow comes within 0.1."""
    prog = gaussian()
    torch.manual_seed(0)
    guide = train(AutoIAFNormal(prog, set(DATA), num_flows=2, hidden_dims=(32,)), prog, DATA, 300, 0.02, 4)
    assert mc_kl(guide) < 0.1
    q = guide.quantiles([0.5])
    torch.testing.assert_close(torch.cat([q[n] for n in "abc"]), exact().mean, atol=0.08, rtol=0)


def funnel() -> Program:
    """Neal's funnel: v ~ Normal(0, 1.5), x ~ Normal(0, exp(v / 2))."""
    I = FinSet("I", 1)
    return Program("funnel", I, I, [sample("v", None, Normal(0.0, 1.5)),
                                    sample("x", None, Normal(0.0, call("exp", var("v") / 2)))])


def elbo(guide, model) -> float:
    torch.manual_seed(5)
    with torch.no_grad():
        draw = guide(8000)
        return float((model.log_joint(None, {}, draw.latents) - draw.log_q).mean())


@pytest.mark.parametrize("cls, options, steps, lr", [
    (AutoIAFNormal, {}, 300, 0.03),
    pytest.param(AutoNSFNormal, {"bins": 4}, 600, 0.01, marks=pytest.mark.slow),
])
def test_flow_beats_mean_field_on_the_funnel(cls, options, steps, lr):
    """log p(y) = 0, so each ELBO is minus the guide's KL to the funnel;
    mean-field cannot bend with the neck (its best KL here is about 0.38)."""
    prog = funnel()
    field = train(AutoNormal(prog, init_scale=1.0), prog, {}, 300, 0.05, 4)
    torch.manual_seed(0)
    flow = train(cls(prog, init_scale=1.0, num_flows=2, hidden_dims=(16,), **options), prog, {}, steps, lr, 4)
    assert elbo(flow, prog) > elbo(field, prog) + 0.25
    assert elbo(flow, prog) < 0.01  # a lower bound on log p(y) = 0, up to Monte Carlo error


@pytest.mark.parametrize("name", ["iaf", "maf", "nsf"])
def test_fit_selects_the_flow_guides_by_name(name):
    prog = gaussian()
    result = fit(prog, DATA, method="svi", guide=name, steps=3, num_samples=5, num_chains=2, seed=0,
                 progress_bar=False)
    assert type(result.guide).__name__ == {"iaf": "AutoIAFNormal", "maf": "AutoMAFNormal", "nsf": "AutoNSFNormal"}[name]
    assert result.samples["a"].shape == (2, 5)


def test_flow_guide_options_are_checked():
    prog = gaussian()
    with pytest.raises(QuiversTypeError, match="num_flows"):
        AutoIAFNormal(prog, set(DATA), num_flows=0)
    with pytest.raises(QuiversTypeError, match="hidden_dims"):
        AutoIAFNormal(prog, set(DATA), hidden_dims=())
    with pytest.raises(QuiversTypeError, match="bins"):
        AutoNSFNormal(prog, set(DATA), bins=1)
    assert math.isfinite(ELBO().loss(prog, AutoNSFNormal(prog, set(DATA)), None, DATA))


def test_a_saved_flow_fit_and_checkpoint_rebuild_the_guide(tmp_path):
    from quivers import checkpoint
    from quivers.results import load_fit

    prog = gaussian()
    result = fit(prog, DATA, method="svi", guide=AutoNSFNormal(prog, set(DATA), num_flows=1, hidden_dims=(4,), bins=3),
                 steps=3, num_samples=5, num_chains=1, seed=0, progress_bar=False)
    result.save(tmp_path / "fit.nc")
    back = load_fit(tmp_path / "fit.nc", prog)
    assert isinstance(back.guide, AutoNSFNormal) and back.guide.options() == {"num_flows": 1, "hidden_dims": [4], "bins": 3}
    u = torch.randn(4, 3)
    torch.testing.assert_close(back.guide.log_prob(u), result.guide.log_prob(u))
    checkpoint.save(tmp_path / "c.pt", prog, guide=result.guide)
    assert type(checkpoint.load(tmp_path / "c.pt", prog).guide) is AutoNSFNormal


def test_a_composed_guide_is_checkpointed_and_loaded_into_the_same_composition(tmp_path):
    from quivers import checkpoint
    from quivers.errors import CheckpointError

    prog = gaussian()
    blocks = {("a", "b"): AutoMultivariateNormal, "c": AutoNormal}
    guide = train(compose_guides(prog, blocks, set(DATA)), prog, DATA, 5, 0.05)
    checkpoint.save(tmp_path / "c.pt", prog, guide=guide)
    with pytest.raises(CheckpointError, match="AutoGuideList is not rebuilt"):
        checkpoint.load(tmp_path / "c.pt", prog)
    back = checkpoint.load(tmp_path / "c.pt", prog, guide=compose_guides(prog, blocks, set(DATA))).guide
    u = torch.randn(3, 3)
    torch.testing.assert_close(back.log_prob(u), guide.log_prob(u))
