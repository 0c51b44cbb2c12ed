"""Stan's warmup: schedule, dual averaging, Welford variances, step-size search."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from quivers.errors import InvalidValueError
from quivers.inference.mcmc import (
    MCMC,
    NUTS,
    DualAveraging,
    WarmupSchedule,
    WelfordDiagonal,
    find_reasonable_step_size,
)
from tests.inference.mcmc.targets import standard_normal


def test_stan_default_windows():
    # CmdStan's documented windows for 1000 warmup iterations:
    # [75, 100), [100, 150), [150, 250), [250, 450), [450, 950).
    s = WarmupSchedule.stan(1000)
    assert (s.init_buffer, s.term_buffer, s.base_window) == (75, 50, 25)
    assert s.window_ends == (99, 149, 249, 449, 949)


def test_stan_windows_for_the_peer_benchmarks_warmup():
    # 300 warmup iterations (the NumPyro comparison's, docs/performance.md):
    # Stan's look-ahead makes the third window, which would end at 249 + 100,
    # absorb the rest up to the terminal buffer, as NumPyro's schedule does.
    s = WarmupSchedule.stan(300)
    assert s.window_ends == (99, 149, 249)
    assert [i for i in range(300) if s.in_window(i)] == list(range(75, 250))


@given(st.integers(min_value=20, max_value=20_000))
def test_windows_tile_the_slow_phase_and_double(num_warmup):
    s = WarmupSchedule.stan(num_warmup)
    if num_warmup < 150:  # 75 + 25 + 50 does not fit: 15% / 75% / 10%
        assert s.init_buffer == int(0.15 * num_warmup) and s.term_buffer == int(0.1 * num_warmup)
    starts = (s.init_buffer,) + tuple(e + 1 for e in s.window_ends[:-1])
    sizes = [end - start + 1 for start, end in zip(starts, s.window_ends)]
    assert s.window_ends[-1] == num_warmup - s.term_buffer - 1
    assert min(sizes) >= s.base_window
    for small, big in zip(sizes[:-2], sizes[1:-1]):
        assert big == 2 * small
    if len(sizes) > 1:
        assert sizes[-1] >= 2 * sizes[-2]
    inside = [i for i in range(num_warmup) if s.in_window(i)]
    assert inside == list(range(s.init_buffer, s.window_ends[-1] + 1))


def test_a_barely_fitting_warmup_has_one_window():
    # Stan would end a first window at 99 and leave a one-draw window at 100.
    assert WarmupSchedule.stan(151).window_ends == (100,)
    # A second window (50 draws) first fits at 200 iterations.
    assert WarmupSchedule.stan(199).window_ends == (148,)
    assert WarmupSchedule.stan(200).window_ends == (99, 149)


def test_short_warmup_does_not_estimate_a_metric():
    assert WarmupSchedule.stan(19).window_ends == ()
    mcmc = MCMC(NUTS(potential_fn=standard_normal, dim=2), num_warmup=10, num_samples=5,
                num_chains=2, seed=0, progress_bar=False)
    mcmc.run()
    assert torch.equal(mcmc.kernel.inverse_mass_matrix, torch.ones(2, 2))


def test_dual_averaging_finds_the_step_size_of_the_target_acceptance():
    # Acceptance exp(-eps) per chain (and exp(-2 eps)): the target 0.8 is hit
    # at eps = -log(0.8) (and half of it).
    da = DualAveraging(torch.tensor([1.0, 1.0], dtype=torch.float64), target_accept=0.8)
    eps = da.step_size
    for _ in range(3000):
        eps = da.update(torch.exp(-eps * torch.tensor([1.0, 2.0], dtype=torch.float64)))
    expected = torch.tensor([-math.log(0.8), -math.log(0.8) / 2], dtype=torch.float64)
    torch.testing.assert_close(da.final(), expected, rtol=0.02, atol=0)


def test_dual_averaging_first_step_follows_stan():
    da = DualAveraging(torch.tensor([0.5]), target_accept=0.8)
    # t = 1: s_bar = (0.8 - a) / 11, x = log(5) - s_bar / 0.05, x_bar = x.
    eps = da.update(torch.tensor([0.3]))
    x = math.log(5.0) - (0.5 / 11) / 0.05
    torch.testing.assert_close(eps, torch.tensor([math.exp(x)]))
    torch.testing.assert_close(da.final(), torch.tensor([math.exp(x)]))
    # NaN acceptance counts as 0, above 1 as 1.
    assert bool(torch.isfinite(da.update(torch.tensor([math.nan]))).all())


def test_welford_matches_torch_var_per_chain():
    x = torch.randn(50, 3, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    w = WelfordDiagonal()
    for row in x:
        w.update(row)
    torch.testing.assert_close(w.variance(regularize=False), x.var(0))
    n = 50
    torch.testing.assert_close(w.variance(), n / (n + 5) * x.var(0) + 1e-3 * 5 / (n + 5))
    w.reset()
    with pytest.raises(InvalidValueError):
        w.variance()


def test_step_size_search_scales_with_the_target():
    def search(scale):
        potential = lambda z: 0.5 * ((z / scale) ** 2).sum(-1)  # noqa: E731
        z = torch.full((8, 3), 0.5 * scale, dtype=torch.float64)
        grad = z / scale**2
        return find_reasonable_step_size(z, potential(z), grad, torch.ones(8, dtype=torch.float64),
                                         torch.ones(8, 3, dtype=torch.float64), potential,
                                         torch.Generator().manual_seed(0))

    # Each chain's search is noisy (fresh momenta, powers of 2); their
    # geometric mean follows the 100-fold change of scale.
    ratio = torch.exp(torch.log(search(1.0) / search(0.01)).mean())
    assert 30 < float(ratio) < 300, ratio


def test_higher_target_acceptance_gives_smaller_steps_and_higher_acceptance():
    def run(target):
        mcmc = MCMC(NUTS(potential_fn=standard_normal, dim=4, target_accept=target),
                    num_warmup=300, num_samples=200, num_chains=4, seed=0, progress_bar=False)
        mcmc.run()
        return mcmc.kernel.step_size.mean(), mcmc.get_sample_stats()["accept_prob"].mean()

    (eps_low, acc_low), (eps_high, acc_high) = run(0.6), run(0.95)
    assert eps_high < eps_low
    assert acc_high > acc_low
    assert acc_high > 0.9 and 0.5 < acc_low < 0.85
