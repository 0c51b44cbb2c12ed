"""Bad input becomes a QuiversError that names the culprit."""

from __future__ import annotations

import math

import pytest
import torch

from quivers.errors import (
    InvalidValueError,
    QuiversError,
    QuiversTypeError,
    ShapeError,
)
from quivers.inference.mcmc import HMC, MCMC, NUTS, PotentialAdaptor
from tests.inference.mcmc.targets import GammaAdaptor, standard_normal


def _mcmc(kernel, **kw):
    options = dict(num_warmup=5, num_samples=5, num_chains=2, seed=0, progress_bar=False)
    options.update(kw)
    return MCMC(kernel, **options)


@pytest.mark.parametrize(
    "options, match",
    [
        ({"num_samples": 0}, "num_samples"),
        ({"num_samples": -3}, "num_samples"),
        ({"num_warmup": -1}, "num_warmup"),
        ({"num_chains": 0}, "num_chains"),
        ({"num_chains": 2.0}, "num_chains"),
        ({"seed": "abc"}, "seed"),
    ],
)
def test_bad_run_sizes(options, match):
    with pytest.raises(InvalidValueError, match=match):
        _mcmc(NUTS(potential_fn=standard_normal, dim=2), **options)


def test_kernel_must_be_a_kernel():
    with pytest.raises(QuiversTypeError, match="`kernel`"):
        MCMC(standard_normal)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({}, QuiversTypeError, "exactly one of `model` and `potential_fn`"),
        ({"model": GammaAdaptor(), "potential_fn": standard_normal}, QuiversTypeError, "both"),
        ({"potential_fn": standard_normal}, InvalidValueError, "`dim` or `initial_params`"),
        ({"potential_fn": standard_normal, "dim": 0}, InvalidValueError, "`dim`"),
        ({"potential_fn": 3.0, "dim": 2}, QuiversTypeError, "callable"),
        ({"potential_fn": standard_normal, "initial_params": torch.zeros(2, 2, 2)}, ShapeError,
         "initial_params"),
        ({"potential_fn": standard_normal, "initial_params": torch.zeros(3), "dim": 2}, ShapeError,
         "`dim=2`"),
        ({"model": GammaAdaptor(), "dim": 2}, QuiversTypeError, "`dim`"),
        ({"potential_fn": standard_normal, "dim": 2, "step_size": -0.1}, InvalidValueError,
         "step_size"),
        ({"potential_fn": standard_normal, "dim": 2, "target_accept": 1.0}, InvalidValueError,
         "target_accept"),
        ({"potential_fn": standard_normal, "dim": 2, "max_tree_depth": 0}, InvalidValueError,
         "max_tree_depth"),
        ({"potential_fn": standard_normal, "dim": 2, "max_energy_error": 0}, InvalidValueError,
         "max_energy_error"),
    ],
)
def test_bad_kernel_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        NUTS(**kwargs)


@pytest.mark.parametrize(
    "kwargs, match",
    [({"num_steps": 0}, "num_steps"), ({"step_size_jitter": 1.0}, "step_size_jitter")],
)
def test_bad_hmc_arguments(kwargs, match):
    with pytest.raises(InvalidValueError, match=match):
        HMC(potential_fn=standard_normal, dim=2, **kwargs)


def test_a_plain_function_given_as_model_suggests_potential_fn():
    with pytest.raises(QuiversTypeError, match="lacks `init_unconstrained`.*potential_fn="):
        NUTS(standard_normal)


def test_initial_params_with_the_wrong_number_of_chains():
    kernel = NUTS(potential_fn=standard_normal, initial_params=torch.zeros(3, 2))
    with pytest.raises(ShapeError, match="3 rows.*`num_chains=2`"):
        _mcmc(kernel).run()


def test_non_finite_initial_potential_names_the_chains():
    def potential(z):
        return torch.where(z[:, 0] > 0, standard_normal(z), torch.full_like(z[:, 0], math.inf))

    init = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    with pytest.raises(InvalidValueError, match=r"not finite at the initial point of chains \[1\]"):
        _mcmc(NUTS(potential_fn=potential, initial_params=init)).run()


def test_nan_initial_potential():
    with pytest.raises(InvalidValueError, match="not finite"):
        _mcmc(HMC(potential_fn=lambda z: z.sum(-1) * math.nan, dim=2)).run()


@pytest.mark.parametrize(
    "potential, error, match",
    [
        (lambda z: (z * z).sum(), ShapeError, r"shape \(\) for a batch of 2 chains; expected \(2,\)"),
        (lambda z: z * z, ShapeError, r"shape \(2, 3\)"),
        (lambda z: 1.0, QuiversTypeError, "returned float"),
    ],
)
def test_potential_with_the_wrong_output(potential, error, match):
    with pytest.raises(error, match=match):
        _mcmc(NUTS(potential_fn=potential, dim=3)).run()


def test_flat_potential_is_reported_as_improper():
    with pytest.raises(InvalidValueError, match="improper"):
        _mcmc(NUTS(potential_fn=lambda z: 0.0 * z.sum(-1), dim=2)).run()


@pytest.mark.parametrize(
    "inv_mass, error",
    [(torch.ones(3), ShapeError), (torch.tensor([1.0, -1.0]), InvalidValueError)],
)
def test_bad_inverse_mass_matrix(inv_mass, error):
    kernel = NUTS(potential_fn=standard_normal, dim=2, inverse_mass_matrix=inv_mass)
    with pytest.raises(error, match="inverse_mass_matrix"):
        _mcmc(kernel).run()


class _BadAdaptor(PotentialAdaptor):
    def __init__(self, init=None, sites=None):
        super().__init__(standard_normal, dim=2)
        self._init, self._sites = init, sites

    def init_unconstrained(self, num_chains, generator):
        return self._init if self._init is not None else super().init_unconstrained(num_chains, generator)

    def constrain(self, z):
        return self._sites if self._sites is not None else super().constrain(z)


@pytest.mark.parametrize(
    "adaptor, error, match",
    [
        (_BadAdaptor(init=torch.zeros(2)), ShapeError, r"initial points have shape \(2,\)"),
        (_BadAdaptor(init=[[0.0, 0.0]]), QuiversTypeError, "expected a tensor"),
        (_BadAdaptor(sites={"a": torch.zeros(3)}), ShapeError, "site `a`"),
        (_BadAdaptor(sites=[1, 2]), QuiversTypeError, "dict of named sites"),
    ],
)
def test_adaptor_that_breaks_the_protocol(adaptor, error, match):
    mcmc = _mcmc(NUTS(adaptor))
    with pytest.raises(error, match=match):
        mcmc.run()
        mcmc.get_samples()


def test_results_before_run():
    mcmc = _mcmc(NUTS(potential_fn=standard_normal, dim=2))
    for call in (mcmc.get_samples, mcmc.get_sample_stats, mcmc.to_inference_data, mcmc.summary):
        with pytest.raises(QuiversError, match="call `run` first"):
            call()
