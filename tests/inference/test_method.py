"""What ``fit`` runs by default, saying so, and on which device.

- ``method="auto"`` samples a small model with NUTS and runs SVI where an
  SVI option is given, a discrete latent is sampled, the model learns
  parameters, the program is a mini-batch, or the model is too large;
  options of the other method than the one named are refused;
- the result, its ``repr`` and its printed summary say which method ran
  and why, and a saved fit keeps it;
- ``device=`` moves the model, the guide and the data; SVI and NUTS move
  data given elsewhere to where their parameters are; a device torch
  cannot use is a :class:`~quivers.errors.DeviceError` (CUDA rows run
  where a GPU is present).
"""

from __future__ import annotations

import pytest
import torch

from quivers.categories import FinSet
from quivers.distributions import Bernoulli, Categorical, HalfNormal, Normal
from quivers.errors import DeviceError, InvalidValueError, QuiversTypeError
from quivers.inference import ELBO, MCMC, NUTS, SVI, AutoNormalGuide, ProgramAdaptor, fit
from quivers.inference import method as M
from quivers.inference.devices import DataOnDevice, as_device
from quivers.programs import Program, marginalize, observe, sample, var

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
NUTS_SMALL = dict(num_warmup=30, num_samples=20, num_chains=2, seed=0, progress_bar=False)
Y = torch.tensor([4.8, 5.3, 5.1, 4.6, 5.2])


def normal_mean(n: int = 5) -> Program:
    Obs = FinSet("Obs", n)
    return Program("normal_mean", Obs, Obs, [
        sample("mu", None, Normal(0.0, 10.0)),
        sample("sigma", None, HalfNormal(2.0)),
        observe("y", Obs, Normal(var("mu"), var("sigma"))),
    ])


def mixture(n: int = 30) -> Program:
    Item, K = FinSet("Item", n), FinSet("K", 2)
    mu, z = var("mu_k"), var("z")
    return Program("gmm", Item, Item, [
        sample("probs", K, HalfNormal(1.0)),
        sample("mu_k", K, Normal(0.0, 5.0)),
        marginalize("z", K, Categorical(var("probs")), [observe("y", Item, Normal(mu[z], 1.0))]),
    ])


# ---------------------------------------------------------------- the choice


def test_a_small_model_is_sampled_with_nuts():
    choice = M.choose_method(normal_mean(), {"y": Y})
    assert choice.method == "nuts" and choice.other == "svi"
    assert choice.reason == "chosen by fit: 2 unconstrained dimensions and 5 observed values are small enough to sample"


@pytest.mark.parametrize("options", [["steps"], ["lr", "guide"], ["discrete"], ["num_particles"]])
def test_an_svi_option_asks_for_svi(options):
    choice = M.choose_method(normal_mean(), {"y": Y}, svi_options=options)
    assert choice.method == "svi" and choice.reason == f"chosen by fit: SVI options given ({', '.join(sorted(options))})"


def test_a_nuts_option_asks_for_nuts_whatever_the_size(monkeypatch):
    monkeypatch.setattr(M, "MAX_DATA", 1)
    choice = M.choose_method(normal_mean(), {"y": Y}, nuts_options=["num_warmup"])
    assert choice.method == "nuts" and choice.note(cli=True) == (
        "chosen by fit: NUTS options given (--warmup); --method svi runs SVI")


def test_too_many_dimensions_or_values_run_svi(monkeypatch):
    monkeypatch.setattr(M, "MAX_DIMS", 1)
    choice = M.choose_method(normal_mean(), {"y": Y})
    assert choice.method == "svi" and choice.reason == (
        "chosen by fit: 2 unconstrained dimensions and 5 observed values are too many to sample quickly "
        "(NUTS by default up to 1 and 100000)")
    monkeypatch.setattr(M, "MAX_DIMS", 2)
    monkeypatch.setattr(M, "MAX_DATA", 4)
    assert M.choose_method(normal_mean(), {"y": Y}).method == "svi"
    assert M.choose_method(normal_mean(4), {"y": Y[:4]}).method == "nuts"  # the bounds are inclusive


def test_a_sampled_discrete_latent_learned_parameters_or_a_mini_batch_run_svi():
    Obs = FinSet("Obs", 4)
    coin = Program("coin", Obs, Obs, [sample("b", None, Bernoulli(0.5)),
                                      observe("y", Obs, Normal(var("b"), 1.0))])
    choice = M.choose_method(coin, {"y": torch.zeros(4)})
    assert choice.method == "svi" and choice.other is None
    assert choice.reason == ("chosen by fit: NUTS cannot sample the discrete latents ['b']; marginalize them to sample, "
                             'or discrete="gibbs" draws them by Gibbs steps within NUTS')
    learned = normal_mean()
    learned.register_parameter("w", torch.nn.Parameter(torch.zeros(2)))
    assert M.choose_method(learned, {"y": Y}).reason == (
        "chosen by fit: `normal_mean` has learnable parameters, which SVI fits")
    mini = mixture(30).subsample({"Item": 10})
    assert M.choose_method(mini, {"y": torch.zeros(10)}).reason == "chosen by fit: a mini-batch program needs SVI"


@pytest.mark.parametrize("method, kwargs, message", [
    ("nuts", dict(steps=5), '`steps` of SVI given with method="nuts"; drop it, or run method="svi"'),
    ("svi", dict(num_warmup=5, init={}), '`init`, `num_warmup` of NUTS given with method="svi"; drop them'),
    ("auto", dict(lr=0.1, max_tree_depth=3), "options of SVI (`lr`) and of NUTS (`max_tree_depth`) given together"),
    ("hmc", {}, "unknown method `hmc`; methods are `auto`, `nuts` and `svi`"),
])
def test_options_of_the_other_method_are_refused_by_name(method, kwargs, message):
    with pytest.raises(QuiversTypeError) as err:
        fit(normal_mean(), {"y": Y}, method=method, progress_bar=False, **kwargs)
    assert str(err.value).startswith(message)


# ---------------------------------------------------------------- saying so


def test_a_nuts_fit_says_what_ran_and_why_in_its_repr_and_summary():
    result = fit(normal_mean(), {"y": Y}, **NUTS_SMALL)
    assert result.method == "nuts" and result.choice.method == "nuts"
    said = 'NUTS, 2 chains x 20 draws (chosen by fit: NUTS options given (num_warmup); method="svi" runs SVI)'
    assert repr(result) == f"<FitResult of `normal_mean`: {said}>"
    table = result.summary()
    assert repr(table).splitlines()[0] == said
    assert table.to_string().splitlines()[0].split()[0] == "mean"  # the table itself is untitled


def test_svi_is_one_argument_away_and_says_it_was_asked_for():
    result = fit(normal_mean(), {"y": Y}, method="svi", steps=30, num_samples=10, seed=0, progress_bar=False)
    assert result.method == "svi" and len(result.losses) == 30
    assert repr(result.summary()).splitlines()[0] == (
        'SVI, 30 steps of AutoNormalGuide, 4 chains x 10 draws from the guide (method="svi" given)')
    again = result.resume(steps=5, progress_bar=False)
    assert again.choice == result.choice and len(again.losses) == 35


def test_a_table_derived_from_the_summary_is_a_plain_frame():
    import pandas as pd

    table = fit(normal_mean(), {"y": Y}, method="svi", steps=5, num_samples=5, seed=0, progress_bar=False).summary()
    assert isinstance(table, pd.DataFrame)
    assert type(table[["mean"]]) is pd.DataFrame and repr(table[["mean"]]).splitlines()[0].split() == ["mean"]
    assert table._repr_html_().startswith("<p>SVI, 5 steps of AutoNormalGuide")


def test_a_saved_fit_keeps_why_its_method_ran(tmp_path):
    from quivers.dsl import loads
    from quivers.results import load_fit

    model = loads("object Obs : FinSet 5\nprogram p : Obs -> Obs\n    sample mu <- Normal(0.0, 10.0)\n"
                  "    observe y : Obs <- Normal(mu, 1.0)\n").morphism
    result = fit(model, {"y": Y}, **NUTS_SMALL)
    result.save(tmp_path / "fit.nc")
    again = load_fit(tmp_path / "fit.nc")
    assert again.choice == result.choice and repr(again) == repr(result)


# ---------------------------------------------------------------- devices


@pytest.mark.parametrize("device", DEVICES + [torch.device("cpu")], ids=str)
def test_fit_moves_model_guide_and_data_to_the_device(device):
    want = torch.device(device).type
    model = mixture()
    model.register_buffer("anchor", torch.zeros(()))
    y = torch.cat([torch.full((15,), -2.0), torch.full((15,), 2.0)])  # on the CPU
    svi = fit(model, {"y": y}, method="svi", steps=5, num_samples=4, seed=0, progress_bar=False, device=device)
    assert svi.samples["mu_k"].device.type == want
    assert all(p.device.type == want for p in svi.guide.parameters())
    assert model.anchor.device.type == want and svi.observations["y"].device.type == want
    nuts = fit(model, {"y": y}, device=device, **NUTS_SMALL)
    assert nuts.method == "nuts" and nuts.samples["mu_k"].device.type == want
    assert nuts.to_inference_data().posterior["mu_k"].shape == (2, 20, 2)


@pytest.mark.parametrize("device", DEVICES)
def test_svi_and_nuts_move_data_to_where_their_parameters_are(device):
    model = mixture().to(device)
    y = torch.cat([torch.full((15,), -2.0), torch.full((15,), 2.0)])  # on the CPU
    guide = AutoNormalGuide(model, observed_names={"y"}).to(device)
    driver = SVI(model, guide, torch.optim.Adam(guide.parameters(), lr=0.05), ELBO())
    assert driver.device.type == device
    assert isinstance(driver.step(None, {"y": y}), float)
    adaptor = ProgramAdaptor(model, device=device)
    mcmc = MCMC(NUTS(adaptor), num_warmup=5, num_samples=3, num_chains=2, seed=0, progress_bar=False)
    mcmc.run(None, {"y": y})
    assert mcmc.get_samples()["mu_k"].device.type == device


def test_a_device_torch_cannot_use_is_a_clear_error():
    with pytest.raises(DeviceError, match="device `nodevice` is no torch device"):
        fit(normal_mean(), {"y": Y}, device="nodevice", progress_bar=False)
    with pytest.raises(DeviceError, match="no torch device"):
        ProgramAdaptor(normal_mean(), device="nodevice")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match=r"device `cuda` asked for, but torch has no CUDA here "
                                              r"\(torch.cuda.is_available\(\) is False\)"):
            fit(normal_mean(), {"y": Y}, method="svi", device="cuda", progress_bar=False)
    else:
        with pytest.raises(DeviceError, match="CUDA devices"):
            as_device(f"cuda:{torch.cuda.device_count()}")


def test_data_on_device_moves_a_data_set_once():
    move, y = DataOnDevice(), torch.ones(3)
    obs = {"y": y}
    first = move(obs, "cpu")
    assert move(obs, "cpu") is first
    y.add_(1.0)  # written in place: moved afresh
    assert move(obs, "cpu") is not first
    assert move(obs, None) is obs


# ---------------------------------------------------------------- NUTS's own options through fit


def test_stan_adaptation_options_reach_nuts_through_fit():
    from quivers.inference import init_to_value

    start = init_to_value({"mu": torch.tensor(5.0), "sigma": torch.tensor(0.5)})
    result = fit(normal_mean(), {"y": Y}, dense_mass=True, init_strategy=start, **NUTS_SMALL)
    assert result.choice.reason.startswith("chosen by fit: NUTS options given (dense_mass, init_strategy")
    assert result.adaptation["inverse_mass_matrix"].shape == (2, 2, 2)  # a dense matrix per chain
    again = result.resume(num_samples=5, progress_bar=False)  # goes on with the dense matrix it adapted
    assert torch.equal(again.adaptation["inverse_mass_matrix"], result.adaptation["inverse_mass_matrix"])
    with pytest.raises(QuiversTypeError, match="by `init` or by `init_strategy`, not both"):
        fit(normal_mean(), {"y": Y}, init={"mu": torch.zeros(2)}, init_strategy=start, **NUTS_SMALL)
    with pytest.raises(InvalidValueError, match="`chain_method` must be 'vectorized' or 'parallel'"):
        fit(normal_mean(), {"y": Y}, chain_method="threads", **NUTS_SMALL)
    with pytest.raises(QuiversTypeError, match="`dense_mass` of NUTS given with method=\"svi\""):
        fit(normal_mean(), {"y": Y}, method="svi", dense_mass=True, progress_bar=False)
