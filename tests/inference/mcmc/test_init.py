"""Initialization strategies: each starts the chains where it says."""

from __future__ import annotations

import pytest
import torch

from quivers.categories.finset import FinSet
from quivers.distributions import Dirichlet, HalfNormal, Normal
from quivers.errors import InvalidValueError, QuiversTypeError, ShapeError, UnknownNameError
from quivers.inference.mcmc import MCMC, NUTS, init_to_median, init_to_uniform, init_to_value
from quivers.inference.program_adaptor import ProgramAdaptor
from quivers.programs import Program, observe, sample, var
from tests.inference.mcmc.targets import standard_normal

K, Item = FinSet("K", 3), FinSet("Item", 4)


def _program():
    return Program("p", Item, Item, [
        sample("mu", None, Normal(3.0, 2.0)),
        sample("sd", None, HalfNormal(1.0)),
        sample("w", K, Dirichlet(1.0)),
        observe("y", Item, Normal(var("mu"), var("sd"))),
    ])


OBS = {"y": torch.tensor([2.0, 3.0, 4.0, 3.5])}


def _start(strategy, model=None, chains=3, **kw):
    kernel = NUTS(model if model is not None else ProgramAdaptor(_program()), init_strategy=strategy, **kw)
    args = () if model is not None else (None, OBS)
    return kernel, kernel.setup(chains, 0, torch.Generator().manual_seed(0), args)


def test_init_to_value_starts_at_the_values_and_the_rest_uniformly():
    kernel, state = _start(init_to_value({"mu": 1.5, "sd": torch.tensor([0.5, 1.0, 2.0])}))
    sites = kernel.adaptor.constrain(state.z)
    torch.testing.assert_close(sites["mu"], torch.full((3,), 1.5))
    torch.testing.assert_close(sites["sd"], torch.tensor([0.5, 1.0, 2.0]))
    w = kernel.adaptor.layout.slices[2]
    assert bool((state.z[:, w.start : w.start + w.size].abs() < 2).all())  # not given: uniform in (-2, 2)


def test_init_to_value_of_a_plain_potential_is_the_point():
    point = torch.tensor([[0.5, -0.5], [1.0, 2.0]])
    kernel = NUTS(potential_fn=standard_normal, dim=2, init_strategy=init_to_value(point))
    state = kernel.setup(2, 0, torch.Generator().manual_seed(0))
    assert torch.equal(state.z, point)
    kernel = NUTS(potential_fn=standard_normal, dim=2, init_strategy=init_to_value({"z": point[0]}))
    assert torch.equal(kernel.setup(2, 0, torch.Generator().manual_seed(0)).z, point[0].expand(2, 2))


@pytest.mark.parametrize("radius", [0.1, 2.0])
def test_init_to_uniform_stays_inside_the_radius(radius):
    _, state = _start(init_to_uniform(radius=radius), chains=50)
    assert bool((state.z.abs() < radius).all())
    assert float(state.z.abs().max()) > 0.8 * radius  # and fills it


def test_init_to_median_is_the_median_of_prior_draws():
    adaptor = ProgramAdaptor(_program())
    z = init_to_median(num_samples=15)(adaptor, 3, torch.Generator().manual_seed(4), (None, OBS))
    draws = adaptor.prior_draws(45, torch.Generator().manual_seed(4), None, OBS).reshape(15, 3, -1)
    assert torch.equal(z, draws.median(0).values)
    # mu and sd map elementwise: their start is the median of constrained draws
    sites = adaptor.constrain(draws)
    start = adaptor.constrain(z)
    torch.testing.assert_close(start["mu"], sites["mu"].median(0).values)
    torch.testing.assert_close(start["sd"], sites["sd"].median(0).values)


def test_init_to_median_is_near_the_prior_median():
    adaptor = ProgramAdaptor(Program("p", Item, Item, [sample("mu", None, Normal(3.0, 1.0)),
                                                       sample("sd", None, HalfNormal(2.0))]))
    z = init_to_median(num_samples=2001)(adaptor, 2, torch.Generator().manual_seed(0))
    start = adaptor.constrain(z)
    assert bool(((start["mu"] - 3.0).abs() < 0.1).all())
    assert bool(((start["sd"] - 2.0 * 0.6745).abs() < 0.1).all())  # HalfNormal's median: sigma * 0.6745


def test_a_run_from_the_median_samples_the_posterior():
    kernel = NUTS(ProgramAdaptor(_program()), init_strategy=init_to_median())
    mcmc = MCMC(kernel, num_warmup=60, num_samples=60, num_chains=2, seed=0, progress_bar=False)
    mcmc.run(None, OBS)
    assert abs(float(mcmc.get_samples()["mu"].mean()) - 3.1) < 0.6


def test_bad_strategies_are_named():
    with pytest.raises(QuiversTypeError, match="init_to_median"):
        NUTS(potential_fn=standard_normal, dim=2, init_strategy=init_to_median()).setup(2, 0, torch.Generator())
    with pytest.raises(UnknownNameError, match="did you mean `mu`"):
        _start(init_to_value({"muu": 1.0}))
    with pytest.raises(ShapeError, match="`sd`"):
        _start(init_to_value({"sd": torch.ones(2)}))
    with pytest.raises(InvalidValueError, match="outside their support"):
        _start(init_to_value({"sd": -1.0}))
    with pytest.raises(ShapeError, match="expected \\(2,\\)"):
        NUTS(potential_fn=standard_normal, dim=2, init_strategy=init_to_value(torch.zeros(3))).setup(2, 0, torch.Generator())
    with pytest.raises(InvalidValueError, match="radius"):
        init_to_uniform(radius=-1.0)
    with pytest.raises(QuiversTypeError, match="init_strategy"):
        NUTS(potential_fn=standard_normal, dim=2, init_strategy="median")
    assert repr(init_to_uniform(0.5)) == "init_to_uniform(radius=0.5)"
