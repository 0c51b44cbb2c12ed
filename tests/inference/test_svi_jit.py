"""The compiled ELBO step (``ELBO(jit_compile=True)``, quivers/inference/jit.py).

The step is recorded once per data set and compiled; it must draw the same
numbers and give the eager step's losses and gradients, fall back to the
eager step with a CompileWarning wherever it cannot be recorded, and keep
the eager step's located errors. The recording is checked without a
compiler (the ``eager`` backend replays the recorded aten graph); one slow
test compiles with inductor.
"""

from __future__ import annotations

import math
import re
import shutil
import warnings

import pytest
import torch

from quivers.capture import CompileWarning
from quivers.categories.finset import FinSet
from quivers.distributions import Categorical, Normal
from quivers.errors import DataError, GradientError, QuiversError
from quivers.inference import (
    ELBO,
    SVI,
    AutoDelta,
    AutoIAFNormal,
    AutoLowRankMultivariateNormal,
    AutoMultivariateNormal,
    AutoNormalGuide,
    fit,
)
from quivers.inference import jit
from quivers.inference.structured import AutoStructuredNormal, compose_guides
from quivers.inference.svi import adam
from quivers.programs import Program, const, observe, sample, var
from tests.inference.test_fit import data, gmm
from tests.programs.models import seed_mixture


def _run(guide_cls, jit_compile, steps=6, backend="eager", y=None, **elbo):
    model, obs = seed_mixture(60)
    if y is not None:
        obs = {"y": y}
    torch.manual_seed(0)
    guide = guide_cls(model, observed_names={"y"})
    loss = ELBO(jit_compile=jit_compile, jit_backend=backend, **elbo)
    svi = SVI(model, guide, adam(guide.parameters(), lr=0.02), loss)
    torch.manual_seed(3)
    losses = [svi.step(None, obs) for _ in range(steps)]
    return losses, [p.detach().clone() for p in guide.parameters()], loss


def _assert_same(a, b, tol):
    (la, pa), (lb, pb) = a[:2], b[:2]
    assert len(la) == len(lb) and max(abs(x - y) for x, y in zip(la, lb)) <= tol * max(1.0, abs(la[0]))
    for x, y in zip(pa, pb):
        torch.testing.assert_close(x, y, atol=tol, rtol=0)


def _structured(model, observed_names):
    return AutoStructuredNormal(model, observed_names=observed_names)


def _composed(model, observed_names):
    return compose_guides(model, {"mu_k": AutoMultivariateNormal, ("probs", "sd_k"): AutoNormalGuide},
                          observed_names=observed_names)


CASES = [
    (AutoNormalGuide, {}),
    (AutoNormalGuide, {"num_particles": 3}),
    (AutoNormalGuide, {"estimator": "stl"}),
    (AutoDelta, {}),
    (AutoMultivariateNormal, {}),
    (AutoLowRankMultivariateNormal, {}),
    (AutoIAFNormal, {}),
    (_structured, {}),
    (_composed, {}),
]


@pytest.mark.parametrize(("guide", "options"), CASES, ids=lambda c: getattr(c, "__name__", None) or str(c))
def test_compiled_steps_give_the_eager_losses_and_parameters_in_float64(float64, guide, options):
    eager = _run(guide, False, **options)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CompileWarning)  # none may fall back
        compiled = _run(guide, True, **options)
    assert compiled[2].compiled and not eager[2].compiled
    _assert_same(eager, compiled, 1e-10)


def test_the_compiled_call_gives_the_gradients_of_the_eager_step_at_its_draw(float64):
    """Not only the trajectory: the recorded function's gradients at a
    draw equal ``backward`` of the eager loss at the same draw."""
    model, obs = seed_mixture(60)
    torch.manual_seed(0)
    guide = AutoNormalGuide(model, observed_names={"y"})
    elbo = ELBO(jit_compile=True, jit_backend="eager")
    elbo.loss_and_grads(model, guide, None, obs)
    step = elbo._jit.step
    with torch.no_grad():
        guide.loc.add_(0.3)
    for p in guide.parameters():
        p.grad = None
    torch.manual_seed(5)
    value = elbo.loss_and_grads(model, guide, None, obs)
    compiled = [p.grad.clone() for p in guide.parameters()]
    assert elbo._jit.step is step  # the step made at the first call, reused
    for p in guide.parameters():
        p.grad = None
    torch.manual_seed(5)
    surrogate, expected = ELBO().differentiable_loss(model, guide, None, obs)
    surrogate.backward()
    assert abs(value - expected) <= 1e-10 * abs(expected)
    for g, p in zip(compiled, guide.parameters()):
        torch.testing.assert_close(g, p.grad, atol=1e-10, rtol=0)


def test_data_written_in_place_are_recorded_again(float64):
    model, obs = seed_mixture(60)
    y = obs["y"].clone()
    runs = []
    for jit_compile in (False, True):
        y.copy_(obs["y"])
        torch.manual_seed(0)
        guide = AutoNormalGuide(model, observed_names={"y"})
        elbo = ELBO(jit_compile=jit_compile, jit_backend="eager")
        svi = SVI(model, guide, adam(guide.parameters(), lr=0.02), elbo)
        torch.manual_seed(3)
        losses = [svi.step(None, {"y": y}) for _ in range(3)]
        y.mul_(1.5)  # the same tensor, new values: the recorded constants are stale
        losses += [svi.step(None, {"y": y}) for _ in range(3)]
        runs.append((losses, [p.detach().clone() for p in guide.parameters()]))
        if jit_compile:
            assert elbo._jit.recordings == 2 and elbo.compiled
    _assert_same(runs[0], runs[1], 1e-10)


def test_fit_with_jit_compile_recovers_the_mixture_means_as_eager_does(monkeypatch):
    monkeypatch.setattr(jit, "BACKEND", "eager")  # the recording, without a compiler
    y, _ = data()
    results = [fit(gmm(150), {"y": y}, method="svi", steps=600, lr=0.05, num_samples=200, seed=1,
                   progress_bar=False, jit_compile=flag) for flag in (False, True)]
    eager, compiled = results
    assert compiled.adaptation["jit_compile"] is True and "jit_compile" not in eager.adaptation
    for result in results:
        mu = result.samples["mu_k"].mean((0, 1))
        torch.testing.assert_close(mu.sort().values, torch.tensor([-2.0, 2.0]), atol=0.2, rtol=0)
    # the same draws: float32 losses that agree to rounding along the whole run
    assert max(abs(a - b) / abs(a) for a, b in zip(eager.losses, compiled.losses)) < 1e-4
    resumed = compiled.resume(steps=5, seed=2, progress_bar=False)
    assert resumed.adaptation["jit_compile"] is True and len(resumed.losses) == 605


# ------------------------------------------------------------------ fallbacks


def _falls_back(make_svi, obs, match, steps=4, **step_kw):
    """The run with jit_compile warns once, matching ``match``, and gives
    the eager run's losses exactly (a fallback is the eager step)."""
    losses = []
    for jit_compile in (False, True):
        svi = make_svi(jit_compile)
        torch.manual_seed(3)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            losses.append([svi.step(None, obs, **step_kw) for _ in range(steps)])
        warned = [str(w.message) for w in caught if issubclass(w.category, CompileWarning)]
        if jit_compile:
            assert len(warned) == 1 and re.search(match, warned[0]), warned
            assert not svi.loss.compiled
        else:
            assert not warned
    assert losses[0] == losses[1] and all(math.isfinite(v) for v in losses[1])


def _mixture_svi(guide_cls=AutoNormalGuide, backend="eager", model=None):
    if model is None:
        model, _ = seed_mixture(60)

    def make(jit_compile):
        torch.manual_seed(0)
        guide = guide_cls(model, observed_names={"y"})
        return SVI(model, guide, adam(guide.parameters(), lr=0.02),
                   ELBO(jit_compile=jit_compile, jit_backend=backend))

    return make


def test_sampled_discrete_latents_fall_back_to_the_eager_step():
    K, Item = FinSet("K", 2), FinSet("Item", 20)
    model = Program("p", Item, Item, [
        sample("mu_k", K, Normal(0.0, 5.0)),
        sample("z", None, Categorical(const(torch.ones(2), K))),
        observe("y", Item, Normal(var("mu_k")[var("z")], 1.0)),
    ])
    _falls_back(_mixture_svi(model=model), {"y": torch.randn(20)}, r"discrete latents \(`z`\).*score-function")


def test_a_subsample_step_falls_back_to_the_eager_step():
    model, obs = seed_mixture(60)
    _falls_back(_mixture_svi(model=model), {"y": obs["y"][:20]}, "subsample", subsample={"Item": 20})


def test_a_morphism_model_falls_back_and_fit_still_fits():
    from quivers.nn import latent

    f = latent(FinSet("A", 2), FinSet("B", 3))
    x, y = torch.tensor([0, 1, 1, 0]), torch.tensor([2, 0, 1, 2])
    with pytest.warns(CompileWarning, match="morphism model"):
        result = fit(f, y, x, steps=30, lr=0.1, seed=0, progress_bar=False, jit_compile=True)
    assert result.losses[-1] < result.losses[0]


class _HostReadGuide(AutoNormalGuide):
    """A guide that reads its draw on the host to choose what to return."""

    def _base_draw(self, num):
        u, log_base = super()._base_draw(num)
        return (u if bool((u < 100).all()) else u.clamp(max=100)), log_base


class _UniformGuide(AutoNormalGuide):
    """A guide that draws uniform noise besides its normal noise."""

    def _base_draw(self, num):
        u, log_base = super()._base_draw(num)
        return u + 1e-6 * torch.rand_like(u), log_base


class _ViewNoiseGuide(AutoNormalGuide):
    """A guide that draws its noise into every other column of a buffer."""

    def _base_draw(self, num):
        eps = torch.zeros(num, 2 * self.dim)[:, ::2].normal_()
        scale = torch.nn.functional.softplus(self.raw_scale)
        return self.loc + eps * scale, -0.5 * (eps * eps).sum(-1) - scale.log().sum()


def test_noise_drawn_into_a_view_falls_back_to_the_eager_step():
    model, obs = seed_mixture(60)
    _falls_back(_mixture_svi(_ViewNoiseGuide), obs, "noise into views")


def test_a_host_read_falls_back_to_the_eager_step():
    model, obs = seed_mixture(60)
    _falls_back(_mixture_svi(_HostReadGuide), obs, "could not be recorded as a graph")


def test_other_random_draws_fall_back_to_the_eager_step():
    model, obs = seed_mixture(60)
    _falls_back(_mixture_svi(_UniformGuide), obs, r"random numbers other than .*(uniform|rand)")


class _ShiftedGuide(AutoNormalGuide):
    """A guide that shifts its draw by a learnable tensor it does not
    register (the optimizer is given it by hand)."""

    shift = torch.zeros(6, requires_grad=True)

    def _base_draw(self, num):
        u, log_base = super()._base_draw(num)
        return u + self.shift, log_base


def test_a_learnable_tensor_that_is_no_parameter_falls_back_to_the_eager_step():
    """The eager step differentiates a tensor that requires gradients
    wherever the step reads it; a graph would hold it fixed."""
    model, obs = seed_mixture(60)
    shift = _ShiftedGuide.shift

    def make(jit_compile):
        with torch.no_grad():
            shift.zero_()
        torch.manual_seed(0)
        guide = _ShiftedGuide(model, observed_names={"y"})
        return SVI(model, guide, adam([*guide.parameters(), shift], lr=0.05),
                   ELBO(jit_compile=jit_compile, jit_backend="eager"))

    _falls_back(make, obs, r"reads 1 tensor\(s\) that require gradients")
    assert bool((shift != 0).any())  # learned, as eagerly


def test_a_compiler_that_fails_falls_back_to_the_eager_step():
    model, obs = seed_mixture(60)
    _falls_back(_mixture_svi(backend="no_such_backend"), obs, "torch.compile failed")


def test_a_compiled_step_that_disagrees_falls_back_to_the_eager_step(monkeypatch):
    monkeypatch.setattr(jit, "agree", lambda a, b: False)
    model, obs = seed_mixture(60)
    _falls_back(_mixture_svi(), obs, "differ from the eager ones at the first step")


def test_data_that_keep_changing_stop_being_recorded(monkeypatch):
    monkeypatch.setattr(jit, "MAX_RECORDINGS", 2)
    model, obs = seed_mixture(60)
    torch.manual_seed(0)
    guide = AutoNormalGuide(model, observed_names={"y"})
    elbo = ELBO(jit_compile=True, jit_backend="eager")
    svi = SVI(model, guide, adam(guide.parameters(), lr=0.02), elbo)
    with pytest.warns(CompileWarning, match="changed 2 times"):
        for i in range(4):
            svi.step(None, {"y": obs["y"] + i})
    assert elbo._jit.recordings == 2 and not elbo.compiled


# -------------------------------------------------------------- located errors

UNDERFLOW = """
object Item : FinSet 4
program p : Item -> Item
    sample b <- HalfNormal(1.0)
    observe y : Item <- Normal(sqrt(b), 1.0)
    return y
export p
"""


def _at_underflow(jit_compile):
    """An SVI run whose third step draws ``b = exp(u)`` = 0: the loss is
    finite and the gradient of ``sqrt(b)`` is not."""
    from quivers.dsl import loads

    model = loads(UNDERFLOW).morphism
    torch.manual_seed(0)
    guide = AutoNormalGuide(model, observed_names={"y"})
    svi = SVI(model, guide, adam(guide.parameters(), lr=0.01), ELBO(jit_compile=jit_compile, jit_backend="eager"))
    obs = {"y": torch.tensor([0.5, 1.0, 0.0, 2.0])}
    svi.step(None, obs)
    svi.step(None, obs)
    with torch.no_grad():
        guide.loc.fill_(-1e4)
    return svi, obs


def test_a_non_finite_gradient_of_a_compiled_step_is_located_as_the_eager_one():
    errors = []
    for jit_compile in (False, True):
        svi, obs = _at_underflow(jit_compile)
        assert svi.loss.compiled is jit_compile
        with pytest.raises(GradientError) as info:
            svi.step(None, obs)
        errors.append(str(info.value))
    assert errors[0] == errors[1] and "`b`" in errors[1] and "observe y" in errors[1]


def test_a_non_finite_loss_of_a_compiled_step_raises_the_eager_data_error():
    errors = []
    for jit_compile in (False, True):
        svi, obs = _at_underflow(jit_compile)
        with torch.no_grad():
            svi.guide.loc.fill_(float("nan"))
        with pytest.raises(DataError) as info:
            svi.step(None, obs)
        errors.append(str(info.value))
    assert errors[0] == errors[1]


# ----------------------------------------------------------------- bad options


@pytest.mark.parametrize("bad", [1, "yes", None])
def test_jit_compile_must_be_a_bool(bad):
    with pytest.raises(QuiversError, match="jit_compile must be True or False"):
        ELBO(jit_compile=bad)
    y, _ = data(20)
    with pytest.raises(QuiversError, match="jit_compile must be True or False"):
        fit(gmm(20), {"y": y}, method="svi", steps=2, progress_bar=False, jit_compile=bad)


def test_jit_backend_must_name_a_backend():
    with pytest.raises(QuiversError, match="jit_backend"):
        ELBO(jit_compile=True, jit_backend=3)


def test_the_default_is_the_eager_step():
    elbo = ELBO()
    assert elbo.jit_compile is False and elbo._jit is None and not elbo.compiled


# --------------------------------------------------------------------- inductor


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("c++") is None and shutil.which("g++") is None, reason="inductor needs a C++ compiler")
def test_inductor_compiles_the_mixture_step_and_agrees_with_eager():
    eager = _run(AutoNormalGuide, False, steps=20)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CompileWarning)
        compiled = _run(AutoNormalGuide, True, steps=20, backend="inductor")
    assert compiled[2].compiled
    # float32: fused loops sum in another order; the draws are the same
    assert max(abs(a - b) / abs(a) for a, b in zip(eager[0], compiled[0])) < 1e-4
    for x, y in zip(eager[1], compiled[1]):
        torch.testing.assert_close(x, y, atol=1e-3, rtol=0)


def test_a_parameter_frozen_after_recording_is_recorded_again(float64):
    """Freezing a parameter changes what the step differentiates: it gets
    no gradient, as in the eager step."""
    runs = []
    for jit_compile in (False, True):
        model, obs = seed_mixture(60)
        torch.manual_seed(0)
        guide = AutoNormalGuide(model, observed_names={"y"})
        elbo = ELBO(jit_compile=jit_compile, jit_backend="eager")
        svi = SVI(model, guide, adam(guide.parameters(), lr=0.02), elbo)
        torch.manual_seed(3)
        losses = [svi.step(None, obs) for _ in range(3)]
        guide.raw_scale.requires_grad_(False)
        losses += [svi.step(None, obs) for _ in range(3)]
        assert guide.raw_scale.grad is None
        runs.append((losses, [p.detach().clone() for p in guide.parameters()]))
        if jit_compile:
            assert elbo._jit.recordings == 2 and elbo.compiled
    _assert_same(runs[0], runs[1], 1e-10)
