"""Bad data at every entry point is a QuiversError naming the site and,
for bad values, the first offending index; nothing is silently broadcast.

The entry points are ``Program.log_joint``, ``SVI.step``, ``MCMC.run``,
``fit`` (SVI and NUTS), ``Predictive`` and ``infer_discrete``; each is run
on the seed's two mixtures with each kind of bad data: a missing
observation or index map, a wrong shape, a batch of data sets where
inference takes one, a wrong dtype, an index map out of range, NaN and
infinite values, an unknown name. ``qvr fit`` on the command line gets
the same data as JSON and must print the same messages.
"""

from __future__ import annotations

import io
import json
import math
import re
from collections.abc import Callable

import pytest
import torch

from quivers.dsl import loads
from quivers.errors import DataError, QuiversError, QuiversTypeError, ShapeError, UnknownNameError
from quivers.inference import ELBO, MCMC, NUTS, SVI, AutoNormalGuide, Predictive, fit, infer_discrete
from quivers.inference.program_adaptor import ProgramAdaptor
from quivers.programs import Program

from tests.programs.models import gmm, grouped
from tests.spec.test_seed_chapter import qvr_programs

N = 6
Y = torch.tensor([-2.1, 1.9, -1.8, 2.2, 0.1, -2.0])
GROUP = torch.tensor([0, 0, 2, 2, 1, 2])
KINDS = ["gmm", "grouped", "seed_grouped"]
"""The seed's flat mixture, its grouped mixture with a declared index map,
and the grouped mixture as the chapter writes it in QVR (the index map
declared as ``sample group : Item <- HalfNormal(1.0)``)."""
GROUPED = ("grouped", "seed_grouped")


def model(kind: str) -> Program:
    if kind == "gmm":
        return gmm(N)
    if kind == "grouped":
        return grouped(N, declared=True)
    return loads(qvr_programs()[2].replace("FinSet 1000", f"FinSet {N}").replace("FinSet 20", "FinSet 3")).morphism


def latents(kind: str) -> dict[str, torch.Tensor]:
    return {s.name: torch.ones(s.shape) for s in model(kind).latent_sites({"y"})}


def good_data(kind: str) -> dict[str, torch.Tensor]:
    return {"y": Y.clone()} | ({"group": GROUP.clone()} if kind in GROUPED else {})


def posterior_draws(kind: str, n: int = 3) -> dict[str, torch.Tensor]:
    return {k: v.expand(n, *v.shape).clone() for k, v in latents(kind).items()}


# ---------------------------------------------------------------- entry points


def run_log_joint(p: Program, kind: str, obs) -> None:
    p.log_joint(None, obs, latents(kind))


def run_svi_step(p: Program, kind: str, obs) -> None:
    guide = AutoNormalGuide(p, observed_names={"y"})
    svi = SVI(p, guide, torch.optim.Adam(guide.parameters(), lr=0.01), ELBO(num_particles=2))
    svi.step(None, obs)


def run_mcmc(p: Program, kind: str, obs) -> None:
    mcmc = MCMC(NUTS(ProgramAdaptor(p)), num_warmup=1, num_samples=1, num_chains=2, seed=0, progress_bar=False)
    mcmc.run(None, obs)


def run_fit_svi(p: Program, kind: str, obs) -> None:
    fit(p, obs, steps=1, num_samples=2, seed=0, progress_bar=False)


def run_fit_nuts(p: Program, kind: str, obs) -> None:
    fit(p, obs, method="nuts", num_warmup=1, num_samples=1, num_chains=2, seed=0, progress_bar=False)


def run_predictive(p: Program, kind: str, obs) -> None:
    Predictive(p, posterior_samples=posterior_draws(kind))(None, obs)


def run_infer_discrete(p: Program, kind: str, obs) -> None:
    infer_discrete(p, posterior_draws(kind), None, obs, seed=0)


ENTRY_POINTS: dict[str, Callable[[Program, str, dict], None]] = {
    "log_joint": run_log_joint,
    "svi_step": run_svi_step,
    "mcmc_run": run_mcmc,
    "fit_svi": run_fit_svi,
    "fit_nuts": run_fit_nuts,
    "predictive": run_predictive,
    "infer_discrete": run_infer_discrete,
}
INFERENCE = [e for e in ENTRY_POINTS if e != "log_joint"]
"""Entry points that condition on one data set (log_joint evaluates a
batch of data sets by design: its leading axes are batch axes)."""


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("kind", KINDS)
def test_good_data_runs_everywhere(entry: str, kind: str) -> None:
    ENTRY_POINTS[entry](model(kind), kind, good_data(kind))


# ---------------------------------------------------------------- bad data


def with_value(name: str, index: int, value: float) -> Callable[[dict], dict]:
    def edit(obs: dict) -> dict:
        t = obs[name].clone()
        t = t.double() if not torch.is_floating_point(t) and math.isnan(value) else t
        t[index] = value
        return obs | {name: t}

    return edit


BAD = {
    # kind of bad data: (mixtures it applies to, edit of the good data, error type, message pattern)
    "nan": ("both", with_value("y", 3, math.nan), DataError, r"observation `y` has a non-finite value at index \(3,\)"),
    "inf": ("both", with_value("y", 0, math.inf), DataError, r"observation `y` has a non-finite value at index \(0,\)"),
    "-inf": ("both", with_value("y", 5, -math.inf), DataError, r"observation `y` has a non-finite value at index \(5,\)"),
    "wrong_shape": ("both", lambda o: o | {"y": Y[:5]}, ShapeError,
                    r"observation `y` has shape \(5,\); its site \('Item',\) needs trailing shape \(6,\)"),
    "matrix_shape": ("both", lambda o: o | {"y": Y.reshape(2, 3)}, ShapeError, r"observation `y` has shape \(2, 3\)"),
    "complex": ("both", lambda o: o | {"y": Y.to(torch.complex64)}, DataError, r"observation `y` must be real"),
    "string": ("both", lambda o: o | {"y": "-2.1 1.9"}, QuiversTypeError, r"`y` must be a tensor or array of numbers, got str"),
    "unknown_name": ("both", lambda o: o | {"yy": Y}, UnknownNameError, r"`yy`.*did you mean `y`\?"),
    "map_out_of_range": ("grouped", with_value("group", 4, 3), DataError,
                         r"index map `group` has value 3 at index \(4,\), outside \[0, 3\) of `G`"),
    "map_negative": ("grouped", with_value("group", 1, -1), DataError, r"index map `group` has value -1 at index \(1,\)"),
    "map_nan": ("grouped", with_value("group", 2, math.nan), DataError, r"index map `group` has a non-finite value at index \(2,\)"),
    "map_fraction": ("grouped", lambda o: o | {"group": GROUP + 0.5}, DataError,
                     r"index map `group` has a non-integer value 0.5 at index \(0,\)"),
    "map_bool": ("grouped", lambda o: o | {"group": GROUP > 0}, DataError, r"index map `group` must hold integers, got dtype torch.bool"),
    "map_shape": ("grouped", lambda o: o | {"group": GROUP[:4]}, ShapeError,
                  r"index map `group` has shape \(4,\); it needs one entry per element of `Item`"),
    "map_missing": ("grouped", lambda o: {"y": o["y"]}, DataError, r"index map `group` \(Item -> G\) is missing from the observations"),
}


def cases():
    for bad, (applies, *_ ) in BAD.items():
        for kind in (KINDS if applies == "both" else GROUPED):
            for entry in ENTRY_POINTS:
                yield pytest.param(entry, kind, bad, id=f"{entry}-{kind}-{bad}")


@pytest.mark.parametrize("entry, kind, bad", list(cases()))
def test_bad_data_is_a_located_error(entry: str, kind: str, bad: str) -> None:
    _, edit, error, pattern = BAD[bad]
    with pytest.raises(error, match=pattern):
        ENTRY_POINTS[entry](model(kind), kind, edit(good_data(kind)))


@pytest.mark.parametrize("entry", [e for e in ENTRY_POINTS if e != "predictive"])
@pytest.mark.parametrize("kind", KINDS)
def test_missing_observation_is_an_error(entry: str, kind: str) -> None:
    obs = {k: v for k, v in good_data(kind).items() if k != "y"}
    with pytest.raises(DataError, match=r"observation `y` is missing"):
        ENTRY_POINTS[entry](model(kind), kind, obs)


def test_predictive_draws_a_missing_observation() -> None:
    """Predictive is the one entry point for which an observation is not
    needed: it is what it draws."""
    draws = Predictive(model("seed_grouped"), posterior_samples=posterior_draws("seed_grouped"))(None, {"group": GROUP})
    assert draws["y"].shape == (3, N)


@pytest.mark.parametrize("entry", INFERENCE)
@pytest.mark.parametrize("kind", KINDS)
def test_a_batch_of_data_sets_is_not_broadcast_against_particles_chains_or_draws(entry: str, kind: str) -> None:
    """Two copies of the data as a leading axis would silently pair copy c
    with chain c (or count the data twice); inference takes one data set."""
    obs = good_data(kind) | {"y": torch.stack([Y, Y])}
    with pytest.raises(DataError, match=r"observation `y` has shape \(2, 6\).*one data set"):
        ENTRY_POINTS[entry](model(kind), kind, obs)


@pytest.mark.parametrize("entry", INFERENCE)
def test_leading_axes_of_size_one_are_the_seed_layout_and_accepted(entry: str) -> None:
    """The seed chapter passes ``y`` as ``(1, N)``."""
    ENTRY_POINTS[entry](model("gmm"), "gmm", {"y": Y.unsqueeze(0)})


def test_log_joint_still_evaluates_a_batch_of_data_sets() -> None:
    p = gmm(N)
    both = p.log_joint(None, {"y": torch.stack([Y, -Y])}, latents("gmm"))
    one = torch.stack([p.log_joint(None, {"y": y}, latents("gmm")) for y in (Y, -Y)])
    torch.testing.assert_close(both, one)


def test_nan_in_posterior_draws_names_the_latent_and_draw() -> None:
    draws = posterior_draws("gmm")
    draws["mu_k"][1, 0] = math.nan
    for run in (lambda: Predictive(gmm(N), posterior_samples=draws)(None, {"y": Y}),
                lambda: infer_discrete(gmm(N), draws, None, {"y": Y})):
        with pytest.raises(DataError, match=r"latent `mu_k` has a non-finite value at index \(1, 0\)"):
            run()


def test_every_error_is_a_quivers_error() -> None:
    """The classes above are QuiversErrors, so ``except QuiversError``
    catches every bad-data case at every entry point."""
    for _, _, error, _ in BAD.values():
        assert issubclass(error, QuiversError)


# ---------------------------------------------------------------- the command line

CLI_SOURCES = {
    "gmm": qvr_programs()[0].replace("FinSet 500", f"FinSet {N}"),
    "seed_grouped": qvr_programs()[2].replace("FinSet 1000", f"FinSet {N}").replace("FinSet 20", "FinSet 3"),
}
CLI_BAD = [b for b in BAD if b not in ("complex", "string")]  # JSON has neither complex numbers nor, here, strings


def run_cli(tmp_path, kind: str, obs: dict, method: str = "svi") -> tuple[int, str]:
    """``qvr fit`` on the seed's QVR with ``obs`` written as JSON (NaN and
    Infinity are JSON tokens Python reads and writes)."""
    from quivers.cli import main

    qvr, data = tmp_path / "model.qvr", tmp_path / "data.json"
    qvr.write_text(CLI_SOURCES[kind])
    data.write_text(json.dumps({k: v.tolist() if isinstance(v, torch.Tensor) else v for k, v in obs.items()}))
    runs = ["--steps", "2", "--samples", "4"] if method == "svi" else ["--warmup", "2", "--samples", "2", "--chains", "2"]
    out, err = io.StringIO(), io.StringIO()
    status = main(["fit", str(qvr), "--data", str(data), "--method", method, "--no-progress", *runs], out=out, err=err)
    return status, err.getvalue()


@pytest.mark.parametrize("kind", CLI_SOURCES)
def test_good_data_fits_from_the_command_line(tmp_path, kind: str) -> None:
    status, err = run_cli(tmp_path, kind, good_data(kind))
    assert status == 0, err


def cli_cases():
    for bad in CLI_BAD:
        for kind in CLI_SOURCES:
            if BAD[bad][0] == "both" or kind in GROUPED:
                yield pytest.param(kind, bad, id=f"{kind}-{bad}")


@pytest.mark.parametrize("kind, bad", list(cli_cases()))
def test_bad_data_on_the_command_line_is_one_located_line(tmp_path, kind: str, bad: str) -> None:
    """``qvr fit`` exits 1 with the same message as the Python API, naming
    the data file, the site and the first offending index; no traceback."""
    _, edit, _, pattern = BAD[bad]
    status, err = run_cli(tmp_path, kind, edit(good_data(kind)))
    assert status == 1, err
    assert "Traceback" not in err
    assert re.search(pattern, err), err
    assert "data.json" in err


@pytest.mark.parametrize("method", ["svi", "nuts"])
def test_missing_or_batched_data_on_the_command_line(tmp_path, method: str) -> None:
    status, err = run_cli(tmp_path, "gmm", {}, method)
    assert status == 1 and "observation `y` is missing" in err, err
    status, err = run_cli(tmp_path, "gmm", {"y": torch.stack([Y, Y])}, method)
    assert status == 1 and re.search(r"observation `y` has shape \(2, 6\).*one data set", err), err
