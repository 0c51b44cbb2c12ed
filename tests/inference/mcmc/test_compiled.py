"""``jit_compile``: the leapfrog step (NUTS) or the potential (HMC) recorded
once and compiled, checked against the eager code and against closed forms.

Most tests use the ``"eager"`` backend, which replays the recorded graph
without generating code: what they check is the recording. One test per
kernel runs inductor itself (a few seconds of compilation)."""

from __future__ import annotations

import shutil
import warnings

import pytest
import torch

from quivers.errors import QuiversTypeError
from quivers.inference.mcmc import HMC, MCMC, NUTS, DiscreteHMCGibbs
from quivers.inference.mcmc.compiled import CompiledPotential, CompileWarning, compile_potential, compile_recorded
from quivers.inference.mcmc.nuts import _leaf
from tests.inference.mcmc.targets import check_moments, normal_normal_posterior, normal_normal_potential

Y = torch.tensor([1.2, 0.4, 2.1, 1.7, 0.9, 1.1], dtype=torch.float64)


def _normal_normal(z):
    return normal_normal_potential(z, Y)


# inductor generates C++; on a machine without a compiler jit_compile must
# fall back to the eager code with a CompileWarning, which is what is checked there
HAVE_CXX = any(shutil.which(c) for c in ("c++", "g++", "clang++"))


def _compiles(kernel):
    """A block in which ``kernel`` must compile (no CompileWarning), or, with
    inductor and no C++ compiler here, must warn and fall back."""
    if HAVE_CXX or kernel.jit_backend == "eager":
        catcher = warnings.catch_warnings()

        class _Strict:
            def __enter__(self):
                catcher.__enter__()
                warnings.simplefilter("error", CompileWarning)  # a fallback would hide what is tested

            def __exit__(self, *exc):
                catcher.__exit__(*exc)
                if exc[0] is None:
                    assert kernel.compiled

        return _Strict()
    return pytest.warns(CompileWarning, match="torch.compile failed")


def _run(kernel, *, seed=0, num_warmup=300, num_samples=600):
    mcmc = MCMC(kernel, num_warmup=num_warmup, num_samples=num_samples, num_chains=4, seed=seed,
                progress_bar=False)
    with _compiles(kernel):
        mcmc.run()
    return mcmc


def test_one_tensor_given_for_two_inputs_is_recorded_as_two():
    # make_fx follows tensors by identity: recording f(x, x) naively makes
    # both inputs the same placeholder, and f(a, b) then computes f(b, b)
    x = torch.ones(3)
    f, why = compile_recorded(lambda a, b: (a - 2 * b,), (x, x), backend="eager", what="a - 2b")
    assert why == ""
    (out,) = f(torch.full((3,), 5.0), torch.ones(3))
    assert torch.equal(out, torch.full((3,), 3.0))


def test_a_recording_that_differs_from_eager_is_refused():
    calls = []

    def f(x):  # the recording sees a different function than the check
        calls.append(1)
        return (x * len(calls),)

    fn, why = compile_recorded(f, (torch.ones(2),), backend="eager", what="f")
    assert fn is None and "differs from the eager one" in why


def test_a_potential_of_another_shape_is_evaluated_eagerly():
    vg = compile_potential(_normal_normal, torch.zeros(4, 1, dtype=torch.float64), backend="eager")
    assert vg.compiled and isinstance(vg, CompiledPotential)
    z = torch.tensor([[0.3], [1.0]], dtype=torch.float64)  # 2 chains, not 4
    u, g = vg.value_and_grad(z)
    assert torch.allclose(u, _normal_normal(z)) and g.shape == (2, 1)


def test_the_recorded_leaf_equals_the_eager_leaf_with_chains_masked():
    gen = torch.Generator().manual_seed(3)
    z, p = torch.randn(4, 1, generator=gen, dtype=torch.float64), torch.randn(4, 1, generator=gen, dtype=torch.float64)
    zg = z.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(_normal_normal(zg).sum(), zg)
    inv_mass, step = torch.full((4, 1), 0.5, dtype=torch.float64), torch.full((4, 1), 0.1, dtype=torch.float64)
    args = (z, p, g, 0.5 * step, step * inv_mass, inv_mass, _normal_normal(z) + 0.25 * (p * p).sum(-1),
            torch.tensor([True, False, True, True]), z + 1.0, torch.tensor([-0.5, -1.0, -torch.inf, 0.2],
                                                                             dtype=torch.float64),
            torch.zeros(4, 4, dtype=torch.float64), torch.full((4,), -0.7, dtype=torch.float64))

    def leaf(*a):
        return _leaf(_normal_normal, -1000.0, *a)

    fn, why = compile_recorded(leaf, args, backend="eager", what="leaf")
    assert why == ""
    for got, want in zip(fn(*args), leaf(*args), strict=True):
        assert torch.allclose(got, want, rtol=1e-12, atol=0) if got.is_floating_point() else torch.equal(got, want)


@pytest.mark.parametrize("backend", ["eager", "inductor"])
def test_nuts_with_a_compiled_leaf_recovers_the_normal_normal_posterior(backend):
    kernel = NUTS(potential_fn=_normal_normal, dim=1, jit_compile=True)
    kernel.jit_backend = backend
    mcmc = _run(kernel, seed=4)
    mean, sd = normal_normal_posterior(Y)
    check_moments(mcmc.get_samples(group_by_chain=True)["z"], mean, sd)


def test_hmc_with_a_compiled_potential_recovers_the_normal_normal_posterior():
    kernel = HMC(potential_fn=_normal_normal, dim=1, num_steps=8, step_size_jitter=0.3, jit_compile=True)
    mcmc = _run(kernel, seed=5)
    assert isinstance(kernel._potential, CompiledPotential)
    mean, sd = normal_normal_posterior(Y)
    check_moments(mcmc.get_samples(group_by_chain=True)["z"], mean, sd)


@pytest.mark.parametrize("checks", [True, False], ids=["checks-in-leaf", "pairs-in-leaf"])
def test_a_program_runs_compiled_and_agrees_with_the_eager_run(checks, monkeypatch):
    import quivers.inference.mcmc.nuts as nuts

    if not checks:
        monkeypatch.setattr(nuts, "_CHECKS_IN_LEAF", 0)
    from quivers.categories import FinSet
    from quivers.distributions import HalfNormal, Normal
    from quivers.programs import Program, observe, sample, var

    item = FinSet("Item", 40)
    y = torch.linspace(-1.0, 3.0, 40, dtype=torch.float64)
    prog = Program("normal", item, item, [
        sample("mu", None, Normal(0.0, 5.0)),
        sample("sigma", None, HalfNormal(2.0)),
        observe("y", item, Normal(var("mu"), var("sigma"))),
    ])
    runs = {}
    for jit in (False, True):
        kernel = NUTS(prog, jit_compile=jit)
        kernel.jit_backend = "eager"
        mcmc = MCMC(kernel, num_warmup=200, num_samples=400, num_chains=4, seed=6, progress_bar=False)
        with warnings.catch_warnings():
            warnings.simplefilter("error", CompileWarning)
            mcmc.run(None, {"y": y})
        runs[jit] = mcmc.get_samples(), mcmc.get_sample_stats()
        assert kernel.compiled == jit and (kernel._leaf_masks is not None) == (jit and checks)
    # the replayed recording computes what the eager leaf computes, and
    # the compiled path's bookkeeping (its pair check, its start from
    # weight -inf) is the eager path's: the same seed gives the same draws
    # and statistics, bit for bit
    for got, want in zip(runs[True], runs[False]):
        assert got.keys() == want.keys()
        for name in want:
            assert torch.equal(got[name], want[name]), name
    assert abs(float(runs[True][0]["mu"].mean()) - float(y.mean())) < 0.15



def test_the_step_size_search_steps_with_the_compiled_leaf():
    # each trial step of Stan's search is one call of the compiled leaf,
    # the first of a forward subtree, whose tally holds the acceptance: the
    # search finds the step sizes the eager leapfrog finds, from the same
    # momenta, without calling the potential
    from quivers.inference.mcmc import find_reasonable_step_size

    scales = torch.tensor([1.0, 0.05, 3.0], dtype=torch.float64)
    kernel = NUTS(potential_fn=lambda z: 0.5 * ((z / scales) ** 2).sum(-1),
                  initial_params=torch.randn(6, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64),
                  jit_compile=True)
    kernel.jit_backend = "eager"
    state = kernel.setup(6, 0, torch.Generator().manual_seed(2))
    assert kernel._leaf_masks is not None
    calls = []
    potential = kernel._potential
    kernel._potential = lambda z: (calls.append(z.shape), potential(z))[1]
    before = kernel.generator.get_state()
    compiled = kernel._find_step_size(state)
    assert not calls
    kernel.generator.set_state(before)
    eager = find_reasonable_step_size(*state, kernel.step_size, kernel.inverse_mass_matrix, kernel._potential,
                                      kernel.generator)
    assert calls and torch.equal(compiled, eager)
    assert bool((compiled < 0.5).all())  # halved from 1, as the scale 0.05 needs

@pytest.mark.parametrize("kind", [NUTS, HMC])
def test_setup_reports_the_seconds_it_spent_compiling(kind):
    # what the benchmark reports apart from the wall time, as it does
    # NumPyro's compilation; a rerun is 0 without jit_compile
    import time

    kernel = kind(potential_fn=_normal_normal, dim=1, jit_compile=True)
    kernel.jit_backend = "eager"
    compile_ = kernel._compile

    def slow(state):
        time.sleep(0.05)
        compile_(state)

    kernel._compile = slow
    start = time.perf_counter()
    with _compiles(kernel):
        kernel.setup(2, 10, torch.Generator().manual_seed(0))
    assert 0.05 <= kernel.compile_seconds <= time.perf_counter() - start
    kernel.jit_compile = False
    kernel.setup(2, 10, torch.Generator().manual_seed(0))
    assert kernel.compile_seconds == 0.0


def test_a_potential_that_reads_its_values_runs_eagerly_with_a_warning():
    def branching(z):  # chooses its formula by reading z on the host
        return 0.5 * (z**2).sum(-1) if bool((z.abs() < 100).all()) else z.abs().sum(-1)

    kernel = NUTS(potential_fn=branching, dim=2, jit_compile=True)
    # 4 chains x 400 after 200 of warmup: with 2 x 200 after 100, r_hat passed 1.01 for 3 seeds of 12
    mcmc = MCMC(kernel, num_warmup=200, num_samples=400, num_chains=4, seed=7, progress_bar=False)
    with pytest.warns(CompileWarning, match="could not be recorded"):
        mcmc.run()
    assert not kernel.compiled
    check_moments(mcmc.get_samples(group_by_chain=True)["z"], 0.0, 1.0)


def test_bad_jit_compile_options_are_refused():
    with pytest.raises(QuiversTypeError, match="`jit_compile` must be True or False"):
        NUTS(potential_fn=_normal_normal, dim=1, jit_compile="yes")
    with pytest.raises(QuiversTypeError, match="not available with Gibbs steps"):
        DiscreteHMCGibbs(object(), jit_compile=True)


def test_fit_passes_jit_compile_to_nuts_and_refuses_it_with_gibbs():
    from quivers.categories import FinSet
    from quivers.distributions import Bernoulli, Normal
    from quivers.inference import fit
    from quivers.programs import Program, observe, sample, var

    item = FinSet("Item", 20)
    prog = Program("mean", item, item, [
        sample("mu", None, Normal(0.0, 5.0)),
        observe("y", item, Normal(var("mu"), 1.0)),
    ])
    y = torch.linspace(0.0, 2.0, 20)
    with warnings.catch_warnings() if HAVE_CXX else pytest.warns(CompileWarning):
        if HAVE_CXX:
            warnings.simplefilter("error", CompileWarning)
        result = fit(prog, {"y": y}, method="nuts", num_warmup=200, num_samples=200, jit_compile=True, seed=0,
                     progress_bar=False)
    assert abs(float(result.samples["mu"].mean()) - 1.0) < 0.15
    assert result.adaptation["jit_compile"] is True
    with warnings.catch_warnings() if HAVE_CXX else pytest.warns(CompileWarning):
        more = result.resume(num_samples=100, seed=1, progress_bar=False)
    assert more.adaptation["jit_compile"] is True and more.mcmc.kernel.jit_compile
    assert more.samples["mu"].shape == (4, 300)
    switch = Program("switch", item, item, [
        sample("d", None, Bernoulli(0.5)),
        sample("mu", None, Normal(0.0, 5.0)),
        observe("y", item, Normal(var("mu") + var("d"), 1.0)),
    ])
    with pytest.raises(QuiversTypeError, match="not available with Gibbs steps"):
        fit(switch, {"y": y}, discrete="gibbs", jit_compile=True, progress_bar=False)


def test_the_sampling_loop_leaves_the_heap_of_setup_out_of_collections():
    # a first compile leaves many objects that every collection of the
    # loop would walk; the loop freezes what setup left, hands it back to
    # the collector after the run, and leaves a caller's own freeze alone
    import gc

    counts = []

    def potential(z):
        counts.append(gc.get_freeze_count())
        return _normal_normal(z)

    kernel = NUTS(potential_fn=potential, dim=1)
    MCMC(kernel, num_warmup=5, num_samples=5, num_chains=2, seed=0, progress_bar=False).run()
    looping = next(i for i, c in enumerate(counts) if c)  # setup's calls see nothing frozen
    assert looping > 0 and min(counts[looping:]) > 0 and gc.get_freeze_count() == 0
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()  # frozen objects that die leave the count
        counts.clear()
        MCMC(kernel, num_warmup=5, num_samples=5, num_chains=2, seed=0, progress_bar=False).run()
        assert 0 < min(counts) and max(counts) <= frozen and 0 < gc.get_freeze_count() <= frozen
    finally:
        gc.unfreeze()
