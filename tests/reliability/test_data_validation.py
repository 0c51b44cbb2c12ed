"""Bad data at every entry point is a QuiversError naming the site and,
for bad values, the first offending index; nothing is silently broadcast.

The entry points are ``Program.log_joint``, ``SVI.step``, ``MCMC.run``,
``fit`` (SVI and NUTS), ``Predictive``, ``infer_discrete``, ``stan_data``,
and on the command line ``qvr fit`` (SVI and NUTS), ``qvr sample`` and
``qvr emit --stan --data-out``, with the data as JSON. One test runs each of
them on the seed's mixtures (flat, grouped with a declared index map, and
grouped as the chapter writes it) and on a program with discrete
observations, with each kind of bad data: a missing observation or index
map, a wrong shape, a scalar, a batch of data sets where inference takes
one, a wrong dtype (complex, string, boolean map, fractional map or
category), a ragged array or a null entry, an index map or a category
out of range, a count outside its support, NaN and infinite values, an
unknown name. The command line must
print the API's message (in its own words where JSON data are lists, not
tensors), naming the data file, on one line. CSV data get the same checks
where CSV can carry the fault."""

from __future__ import annotations

import io
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch

from quivers.dsl import loads
from quivers.emit import stan_data
from quivers.errors import DataError, QuiversError, QuiversTypeError, ShapeError, UnknownNameError
from quivers.inference import ELBO, MCMC, NUTS, SVI, AutoNormalGuide, Predictive, fit, infer_discrete
from quivers.inference.program_adaptor import ProgramAdaptor
from quivers.programs import Program

from tests.programs.models import gmm, grouped
from tests.spec import seed

N = 6
Y = torch.tensor([-2.1, 1.9, -1.8, 2.2, 0.1, -2.0])
GROUP = torch.tensor([0, 0, 2, 2, 1, 2])
C = torch.tensor([0, 1, 2, 1, 0, 2])
COUNTS = torch.tensor([0.0, 1.0, 3.0, 2.0, 0.0, 4.0])
MIXTURES = ("gmm", "grouped", "seed_grouped")
"""The seed's flat mixture, its grouped mixture with a declared index map,
and the grouped mixture as the chapter writes it in QVR (the index map
declared as ``sample group : Item <- HalfNormal(1.0)``)."""
GROUPED = ("grouped", "seed_grouped")
KINDS = [*MIXTURES, "counts"]
"""The mixtures, and a program with discrete observations (categories
and counts), whose values have a support to fall outside of."""
COUNTS_SRC = f"""\
object Item : FinSet {N}
object K : FinSet 3

program counts : Item -> Item
    sample w : K <- HalfNormal(1.0)
    sample rate <- HalfNormal(1.0)
    observe c : Item <- Categorical(w)
    observe n : Item <- Poisson(rate)
    return n

export counts
"""


def model(kind: str) -> Program:
    if kind == "gmm":
        return gmm(N)
    if kind == "grouped":
        return grouped(N, declared=True)
    if kind == "counts":
        return loads(COUNTS_SRC).morphism
    return loads(seed.GROUPED.replace("FinSet 1000", f"FinSet {N}").replace("FinSet 20", "FinSet 3")).morphism


def observed(kind: str) -> set[str]:
    return {"c", "n"} if kind == "counts" else {"y"}


def latents(kind: str) -> dict[str, torch.Tensor]:
    return {s.name: torch.ones(s.shape) for s in model(kind).latent_sites(observed(kind))}


def good_data(kind: str) -> dict[str, torch.Tensor]:
    if kind == "counts":
        return {"c": C.clone(), "n": COUNTS.clone()}
    return {"y": Y.clone()} | ({"group": GROUP.clone()} if kind in GROUPED else {})


def posterior_draws(kind: str, n: int = 3) -> dict[str, torch.Tensor]:
    return {k: v.expand(n, *v.shape).clone() for k, v in latents(kind).items()}


# ---------------------------------------------------------------- entry points


def run_log_joint(p: Program, kind: str, obs) -> None:
    p.log_joint(None, obs, latents(kind))


def run_svi_step(p: Program, kind: str, obs) -> None:
    guide = AutoNormalGuide(p, observed_names=observed(kind))
    svi = SVI(p, guide, torch.optim.Adam(guide.parameters(), lr=0.01), ELBO(num_particles=2))
    svi.step(None, obs)


def run_mcmc(p: Program, kind: str, obs) -> None:
    mcmc = MCMC(NUTS(ProgramAdaptor(p)), num_warmup=1, num_samples=2, num_chains=2, seed=0, progress_bar=False)
    mcmc.run(None, obs)


def run_fit_svi(p: Program, kind: str, obs) -> None:
    fit(p, obs, steps=1, num_samples=2, seed=0, progress_bar=False)


def run_fit_nuts(p: Program, kind: str, obs) -> None:
    fit(p, obs, method="nuts", num_warmup=1, num_samples=2, num_chains=2, seed=0, progress_bar=False)


def run_predictive(p: Program, kind: str, obs) -> None:
    Predictive(p, posterior_samples=posterior_draws(kind))(None, obs)


def run_infer_discrete(p: Program, kind: str, obs) -> None:
    infer_discrete(p, posterior_draws(kind), None, obs, seed=0)


def run_stan_data(p: Program, kind: str, obs) -> None:
    stan_data(p, obs)


ENTRY_POINTS: dict[str, Callable[[Program, str, dict], None]] = {
    "log_joint": run_log_joint,
    "svi_step": run_svi_step,
    "mcmc_run": run_mcmc,
    "fit_svi": run_fit_svi,
    "fit_nuts": run_fit_nuts,
    "predictive": run_predictive,
    "infer_discrete": run_infer_discrete,
    "stan_data": run_stan_data,
}
INFERENCE = [e for e in ENTRY_POINTS if e not in ("log_joint", "stan_data")]
"""Entry points that condition on one data set (log_joint evaluates a
batch of data sets by design: its leading axes are batch axes)."""


# ---------------------------------------------------------------- bad data


def with_value(name: str, index: int, value: float) -> Callable[[dict], dict]:
    def edit(obs: dict) -> dict:
        t = obs[name].clone()
        t = t.double() if not torch.is_floating_point(t) and not float(value).is_integer() else t  # NaN, 1.5
        t[index] = value
        return obs | {name: t}

    return edit


@dataclass(frozen=True)
class Fault:
    """One kind of bad data: the edit of the good data, the error it must
    raise and a pattern its message must match; the mixtures it applies to;
    the entry points it is no fault for; and, where the command line says it
    in its own words (data read from JSON are lists, not tensors), the
    pattern ``qvr fit`` must print instead."""

    edit: Callable[[dict], dict]
    error: type[QuiversError]
    pattern: str
    kinds: tuple[str, ...] = MIXTURES
    not_at: tuple[str, ...] = ()
    cli_pattern: str | None = None


BAD = {
    "missing": Fault(lambda o: {k: v for k, v in o.items() if k != "y"}, DataError, r"observation `y` is missing",
                     not_at=("predictive", "cli_sample")),  # Predictive draws what is not observed
    "batch": Fault(lambda o: o | {"y": torch.stack([Y, Y])}, DataError, r"observation `y` has shape \(2, 6\).*one data set",
                   not_at=("log_joint",)),  # log_joint evaluates a batch of data sets by design
    "nan": Fault(with_value("y", 3, math.nan), DataError, r"observation `y` has a non-finite value at index \(3,\)"),
    "inf": Fault(with_value("y", 0, math.inf), DataError, r"observation `y` has a non-finite value at index \(0,\)"),
    "-inf": Fault(with_value("y", 5, -math.inf), DataError, r"observation `y` has a non-finite value at index \(5,\)"),
    "wrong_shape": Fault(lambda o: o | {"y": Y[:5]}, ShapeError,
                         r"observation `y` has shape \(5,\); its site \('Item',\) needs trailing shape \(6,\)"),
    "matrix_shape": Fault(lambda o: o | {"y": Y.reshape(2, 3)}, ShapeError, r"observation `y` has shape \(2, 3\)"),
    "scalar": Fault(lambda o: o | {"y": torch.tensor(0.5)}, ShapeError, r"observation `y` has shape \(\); its site"),
    "complex": Fault(lambda o: o | {"y": Y.to(torch.complex64)}, DataError, r"observation `y` must be real",
                     not_at=("cli_svi", "cli_nuts", "cli_emit", "cli_sample")),  # JSON has no complex numbers
    "string": Fault(lambda o: o | {"y": "-2.1 1.9"}, QuiversTypeError, r"`y` must be a tensor or array of numbers, got str",
                    cli_pattern=r'`y` must be a number or an array of numbers; got the string "-2.1 1.9"'),
    "ragged": Fault(lambda o: o | {"y": [[1.0, 2.0], [3.0]]}, QuiversTypeError, r"`y` must be a tensor or array of numbers",
                    cli_pattern=r"`y` must be a number or an array of numbers; a row of length 1 at index \(1,\)"),
    "null_entry": Fault(lambda o: o | {"y": [1.0, None, 2.0, 3.0, 4.0, 5.0]}, QuiversTypeError,
                        r"`y` must be a tensor or array of numbers",
                        cli_pattern=r"`y` must be a number or an array of numbers; null at index \(1,\)"),
    "unknown_name": Fault(lambda o: o | {"yy": Y}, UnknownNameError, r"`yy`.*did you mean `y`\?"),
    "map_out_of_range": Fault(with_value("group", 4, 3), DataError,
                              r"index map `group` has value 3 at index \(4,\), outside \[0, 3\) of `G`", kinds=GROUPED),
    "map_negative": Fault(with_value("group", 1, -1), DataError, r"index map `group` has value -1 at index \(1,\)",
                          kinds=GROUPED),
    "map_nan": Fault(with_value("group", 2, math.nan), DataError,
                     r"index map `group` has a non-finite value at index \(2,\)", kinds=GROUPED),
    "map_fraction": Fault(lambda o: o | {"group": GROUP + 0.5}, DataError,
                          r"index map `group` has a non-integer value 0.5 at index \(0,\)", kinds=GROUPED),
    "map_bool": Fault(lambda o: o | {"group": GROUP > 0}, DataError,
                      r"index map `group` must hold integers, got dtype torch.bool", kinds=GROUPED),
    "map_shape": Fault(lambda o: o | {"group": GROUP[:4]}, ShapeError,
                       r"index map `group` has shape \(4,\); it needs one entry per element of `Item`", kinds=GROUPED),
    "map_missing": Fault(lambda o: {"y": o["y"]}, DataError,
                         r"index map `group` \(Item -> G\) is missing from the observations", kinds=GROUPED,
                         cli_pattern=r"index map `group` \(Item -> G\) is missing from --data\b"),
    "category_out_of_range": Fault(with_value("c", 4, 3), DataError,
                                   r"observation `c` has value 3 at index \(4,\), outside \[0, 3\) of `K`", kinds=("counts",)),
    "category_fraction": Fault(with_value("c", 2, 1.5), DataError,
                               r"observation `c` has a non-integer value 1.5 at index \(2,\)", kinds=("counts",)),
    "count_negative": Fault(with_value("n", 3, -1.0), DataError,
                            r"observation `n` has a value outside the support of Poisson .* at index \(3,\)", kinds=("counts",)),
    "count_fraction": Fault(with_value("n", 1, 0.5), DataError,
                            r"observation `n` has a value outside the support of Poisson .* at index \(1,\)", kinds=("counts",)),
    "counts_missing": Fault(lambda o: {"c": o["c"]}, DataError, r"observation `n` is missing", kinds=("counts",),
                            not_at=("predictive", "cli_sample")),
}


# ---------------------------------------------------------------- the command line

CLI_SOURCES = {
    "gmm": seed.GMM.replace("FinSet 500", f"FinSet {N}"),
    "seed_grouped": seed.GROUPED.replace("FinSet 1000", f"FinSet {N}").replace("FinSet 20", "FinSet 3"),
}
CLI_SOURCES["grouped"] = CLI_SOURCES["seed_grouped"].replace("sample group : Item <- HalfNormal(1.0)", "index group : Item -> G")
CLI_SOURCES["counts"] = COUNTS_SRC
"""Every kind in QVR; ``grouped`` declares its index map with ``index``."""


def run_cli(tmp_path, kind: str, obs: dict, method: str = "svi") -> tuple[int, str]:
    """``qvr fit`` (``method`` svi or nuts), ``qvr sample`` or ``qvr emit
    --stan --data-out`` (``method`` sample or emit) on the program's QVR with ``obs`` written as JSON (NaN
    and Infinity are JSON tokens Python reads and writes)."""
    from quivers.cli import main

    qvr, data = tmp_path / "model.qvr", tmp_path / "data.json"
    qvr.write_text(CLI_SOURCES[kind])
    data.write_text(json.dumps({k: v.tolist() if isinstance(v, torch.Tensor) else v for k, v in obs.items()}))
    if method == "emit":
        argv = ["emit", "--stan", str(qvr), "-o", str(tmp_path / "model.stan"), "--data", str(data),
                "--data-out", str(tmp_path / "stan_data.json")]
    elif method == "sample":
        argv = ["sample", str(qvr), "--num", "3", "--data", str(data), "--out", str(tmp_path / "draws.json")]
    else:
        runs = ["--steps", "2", "--samples", "4"] if method == "svi" else ["--warmup", "2", "--samples", "2", "--chains", "2"]
        argv = ["fit", str(qvr), "--data", str(data), "--method", method, "--no-progress", *runs]
    out, err = io.StringIO(), io.StringIO()
    status = main(argv, out=out, err=err)
    return status, err.getvalue()


CLI = {"cli_svi": "svi", "cli_nuts": "nuts", "cli_sample": "sample", "cli_emit": "emit"}
"""``qvr fit`` with each method, ``qvr sample`` (predictive draws given
data) and ``qvr emit --stan`` converting the data for Stan, as entry
points of their own."""


# ---------------------------------------------------------------- entry points x faults


def cases():
    for bad, fault in BAD.items():
        for kind in fault.kinds:
            for entry in [*ENTRY_POINTS, *CLI]:
                if entry not in fault.not_at:
                    yield pytest.param(entry, kind, bad, id=f"{entry}-{kind}-{bad}")


@pytest.mark.parametrize("entry", [*ENTRY_POINTS, *CLI])
@pytest.mark.parametrize("kind", KINDS)
def test_good_data_runs_everywhere(tmp_path, entry: str, kind: str) -> None:
    if entry in CLI:
        status, err = run_cli(tmp_path, kind, good_data(kind), CLI[entry])
        assert status == 0, err
    else:
        ENTRY_POINTS[entry](model(kind), kind, good_data(kind))


@pytest.mark.parametrize("entry, kind, bad", list(cases()))
def test_bad_data_is_a_located_error(tmp_path, entry: str, kind: str, bad: str) -> None:
    """Every entry point, the command line included, refuses every kind of
    bad data with a QuiversError naming the site and the first offending
    index. ``qvr fit`` exits 1 with one message that names the data file
    too, and prints no traceback."""
    fault = BAD[bad]
    obs = fault.edit(good_data(kind))
    if entry in CLI:
        status, err = run_cli(tmp_path, kind, obs, CLI[entry])
        assert status == 1, err
        # one line, or a located one with the line that reads the data and a caret under it
        lines = err.strip().splitlines()
        assert "Traceback" not in err, err
        assert len(lines) == 1 or (len(lines) == 3 and set(lines[2].strip()) == {"^"}), err
        data = tmp_path / "data.json"
        assert f"{data}: " in err or f"in `{data}`: " in err, err  # the data file is named, located or not
        assert re.search(fault.cli_pattern or fault.pattern, err), err
    else:
        with pytest.raises(fault.error, match=fault.pattern):
            ENTRY_POINTS[entry](model(kind), kind, obs)


def test_every_entry_point_meets_every_fault() -> None:
    """Only the exclusions that the semantics force: Predictive draws what
    is not observed, log_joint evaluates a batch of data sets, and JSON has
    no complex numbers."""
    excluded = {(e, b) for b, f in BAD.items() for e in f.not_at}
    assert excluded == {("predictive", "missing"), ("predictive", "counts_missing"), ("log_joint", "batch"),
                        ("cli_sample", "missing"), ("cli_sample", "counts_missing"),
                        ("cli_svi", "complex"), ("cli_nuts", "complex"), ("cli_sample", "complex"), ("cli_emit", "complex")}
    assert set(KINDS) == {k for f in BAD.values() for k in f.kinds}


def test_predictive_draws_a_missing_observation() -> None:
    """Predictive is the one entry point for which an observation is not
    needed: it is what it draws."""
    draws = Predictive(model("seed_grouped"), posterior_samples=posterior_draws("seed_grouped"))(None, {"group": GROUP})
    assert draws["y"].shape == (3, N)


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
    for fault in BAD.values():
        assert issubclass(fault.error, QuiversError)


# ---------------------------------------------------------------- CSV data

CSV_GOOD = [[f"{y}", f"{g}"] for y, g in zip(Y.tolist(), GROUP.tolist())]


def csv_with(edit: Callable[[list[list[str]]], list[list[str]]]) -> str:
    rows = edit([r[:] for r in CSV_GOOD])
    return "y,group\n" + "".join(",".join(r) + "\n" for r in rows)


def _set(row: int, col: int, cell: str) -> Callable[[list[list[str]]], list[list[str]]]:
    def edit(rows: list[list[str]]) -> list[list[str]]:
        rows[row][col] = cell
        return rows

    return edit


CSV_BAD = {
    "nan": (_set(3, 0, "nan"), r"observation `y` has a non-finite value at index \(3,\)"),
    "inf": (_set(0, 0, "-inf"), r"observation `y` has a non-finite value at index \(0,\)"),
    "short_column": (lambda rows: [[y, g if i < 4 else ""] for i, (y, g) in enumerate(rows)],
                     r"index map `group` has shape \(4,\); it needs one entry per element of `Item`"),
    "map_out_of_range": (_set(4, 1, "3"), r"index map `group` has value 3 at index \(4,\), outside \[0, 3\) of `G`"),
    "map_fraction": (_set(0, 1, "0.5"), r"index map `group` has a non-integer value 0.5 at index \(0,\)"),
    "not_a_number": (_set(2, 0, "abc"), r"column `y`, row 4: `abc` is not a number"),
    "gap": (_set(1, 0, ""), r"column `y` has an empty cell at row 3 before a value at row 4"),
}


@pytest.mark.parametrize("bad", CSV_BAD)
def test_bad_csv_data_on_the_command_line_is_one_located_line(tmp_path, bad: str) -> None:
    from quivers.cli import main

    edit, pattern = CSV_BAD[bad]
    (tmp_path / "model.qvr").write_text(CLI_SOURCES["grouped"])
    (tmp_path / "data.csv").write_text(csv_with(edit))
    out, err = io.StringIO(), io.StringIO()
    status = main(["fit", str(tmp_path / "model.qvr"), "--data", str(tmp_path / "data.csv"), "--steps", "2",
                   "--samples", "4", "--no-progress"], out=out, err=err)
    assert status == 1, err.getvalue()
    assert f"{tmp_path / 'data.csv'}" in err.getvalue() and "Traceback" not in err.getvalue()
    assert re.search(pattern, err.getvalue()), err.getvalue()


def test_good_csv_data_fits(tmp_path) -> None:
    from quivers.cli import main

    (tmp_path / "model.qvr").write_text(CLI_SOURCES["grouped"])
    (tmp_path / "data.csv").write_text(csv_with(lambda rows: rows))
    err = io.StringIO()
    status = main(["fit", str(tmp_path / "model.qvr"), "--data", str(tmp_path / "data.csv"), "--steps", "2",
                   "--samples", "4", "--no-progress"], out=io.StringIO(), err=err)
    assert status == 0, err.getvalue()
