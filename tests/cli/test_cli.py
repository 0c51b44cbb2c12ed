"""The `qvr` command line: every command, its errors, and its help."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from quivers.cli import main, read_data
from quivers.dsl import dumps, load

ROOT = Path(__file__).resolve().parents[2]
GMM = str(ROOT / "examples" / "gmm.qvr")
GROUPED = str(ROOT / "examples" / "grouped_mixture.qvr")
BAD = "object K : FinSet 2\nprogram p : K -> K\n    sample mu : KK <- Normal(0.0, 1.0)\n"


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def bad(tmp_path) -> Path:
    p = tmp_path / "bad.qvr"
    p.write_text(BAD)
    return p


@pytest.fixture(scope="module")
def gmm_data(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    z = torch.bernoulli(torch.full((500,), 0.6)).long()
    y = torch.randn(500) * torch.tensor([0.5, 0.7])[z] + torch.tensor([-2.0, 2.0])[z]
    p = tmp_path_factory.mktemp("data") / "gmm.json"
    p.write_text(json.dumps({"y": y.tolist()}))
    return p


@pytest.fixture(scope="module")
def grouped_csv(tmp_path_factory) -> Path:
    torch.manual_seed(1)
    group = torch.randint(0, 20, (1000,))
    y = torch.randn(1000)
    p = tmp_path_factory.mktemp("data") / "grouped.csv"
    p.write_text("y,group\n" + "".join(f"{float(a):.5f},{int(g)}\n" for a, g in zip(y, group)))
    return p


# ---------------------------------------------------------------- check


def test_check_accepts_the_seed_programs():
    code, out, err = run("check", GMM, GROUPED)
    assert code == 0 and err == ""
    assert out.splitlines() == [
        f"{GMM}: ok: gmm : Item -> Item [effects=[Marginal, Sample, Score]]",
        f"{GROUPED}: ok: grouped_mixture : Item -> Item [effects=[Marginal, Sample, Score]]",
    ]


def test_check_reports_file_line_column_with_a_caret(bad):
    code, out, err = run("check", str(bad))
    assert code == 1 and out == ""
    assert err.splitlines() == [
        f"{bad}:3:17: unknown object `KK` in `sample mu : KK`; objects in scope: K; did you mean `K`?",
        "        sample mu : KK <- Normal(0.0, 1.0)",
        "                    ^^",
    ]


def test_check_reports_syntax_errors_the_same_way(tmp_path):
    p = tmp_path / "syntax.qvr"
    p.write_text("object K : FinSet 2\nprogram p : K -> K\n    sample probs K <- HalfNormal(1.0)\n")
    code, _, err = run("check", str(p))
    assert code == 1
    assert err.startswith(f"{p}:3:18: unexpected name `K`; expected `:` or `<-` after `sample probs`\n")
    assert err.splitlines()[-1].strip() == "^"


def test_check_goes_on_after_a_bad_file_and_fails(bad):
    code, out, err = run("check", str(bad), GMM, "missing.qvr")
    assert code == 1
    assert out.splitlines() == [f"{GMM}: ok: gmm : Item -> Item [effects=[Marginal, Sample, Score]]"]
    assert "qvr check: cannot read `missing.qvr`: No such file or directory" in err.splitlines()


# ---------------------------------------------------------------- usage errors


@pytest.mark.parametrize(
    "argv, message",
    [
        ([], "qvr: error: the following arguments are required: COMMAND (see `qvr --help`)"),
        (["frob"], "qvr: error: argument COMMAND: invalid choice: 'frob'"),
        (["fit", GMM], "qvr fit: error: the following arguments are required: --data (see `qvr fit --help`)"),
        (["fit", GMM, "--data", "d.json", "--bogus"], "qvr fit: error: unrecognized arguments: --bogus (see `qvr fit --help`)"),
        (["fit", GMM, "--data", "d.json", "--steps", "0"], "qvr fit: error: argument --steps: `0` must be positive"),
        (["fit", GMM, "--data", "d.json", "--method", "mh"], "qvr fit: error: argument --method: invalid choice: 'mh'"),
        (["fmt", GMM, "--check", "--write"], "qvr fmt: error: argument --write: not allowed with argument --check"),
        (["emit", GMM], "qvr emit: error: the following arguments are required: --stan"),
    ],
)
def test_usage_errors_are_one_line_with_status_2(argv, message):
    code, out, err = run(*argv)
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1 and err.startswith(message)


@pytest.mark.parametrize("command", ["check", "fmt", "graph", "fit", "predict", "sample", "emit"])
def test_every_command_has_help(command):
    code, out, err = run(command, "--help")
    assert code == 0 and err == ""
    assert out.startswith(f"usage: qvr {command}") and len(out.splitlines()) > 5


def test_top_level_help_lists_the_commands():
    code, out, _ = run("--help")
    assert code == 0
    for command in ["check", "fmt", "graph", "fit", "predict", "sample", "emit"]:
        assert f"    {command}" in out


def test_missing_qvr_file_is_one_line(tmp_path):
    code, out, err = run("graph", str(tmp_path / "none.qvr"))
    assert code == 1 and err == f"qvr graph: cannot read `{tmp_path / 'none.qvr'}`: No such file or directory\n"


def test_python_dash_m_runs_without_a_traceback():
    proc = subprocess.run([sys.executable, "-m", "quivers.cli", "check", "nope.qvr"],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 1
    assert proc.stderr == "qvr check: cannot read `nope.qvr`: No such file or directory\n"


# ---------------------------------------------------------------- fmt


def test_fmt_prints_canonical_source_with_comments(tmp_path):
    p = tmp_path / "m.qvr"
    p.write_text("# top\nobject K:FinSet 2\nprogram p:K->K\n  sample mu:K<-Normal(0.0,1.0) # prior\n")
    code, out, _ = run("fmt", str(p))
    assert code == 0
    assert out == "# top\nobject K : FinSet 2\n\nprogram p : K -> K\n    sample mu : K <- Normal(0.0, 1.0)  # prior\n"


def test_fmt_check_and_write(tmp_path):
    p = tmp_path / "m.qvr"
    p.write_text("object K:FinSet 2\n")
    code, out, _ = run("fmt", "--check", str(p))
    assert code == 1 and out == f"{p}: not formatted (run `qvr fmt --write {p}`)\n"
    code, out, _ = run("fmt", "--write", str(p))
    assert code == 0 and out == f"{p}: reformatted\n" and p.read_text() == "object K : FinSet 2\n"
    assert run("fmt", "--check", str(p))[0] == 0
    assert run("fmt", "--write", str(p)) == (0, "", "")


def test_fmt_of_the_examples_changes_only_layout():
    from quivers.dsl import parse

    for path in (GMM, GROUPED):
        code, out, _ = run("fmt", path)
        assert code == 0 and parse(out) == load(path).ast and out == dumps(load(path).ast)


def test_the_examples_are_in_canonical_form():
    code, out, _ = run("fmt", "--check", *map(str, sorted((ROOT / "examples").glob("*.qvr"))))
    assert code == 0, out


def test_fmt_reports_syntax_errors(tmp_path):
    p = tmp_path / "m.qvr"
    p.write_text("object K : FinSet\n")
    code, _, err = run("fmt", str(p))
    assert code == 1 and err.startswith(f"{p}:1:")


# ---------------------------------------------------------------- graph


def test_graph_prints_dot_with_the_block_as_a_cluster():
    code, out, _ = run("graph", GROUPED)
    assert code == 0
    assert out.startswith("digraph program {")
    assert 'subgraph "cluster_z" {' in out and 'label="marginalize z : K [over=G]";' in out
    assert '"y" [label="observe y : Item <- Normal [via=group]"];' in out


@pytest.mark.parametrize("suffix, magic", [(".png", b"\x89PNG"), (".svg", b"<?xml"), (".dot", b"digraph")])
def test_graph_writes_files(tmp_path, suffix, magic):
    target = tmp_path / f"g{suffix}"
    code, out, _ = run("graph", GMM, "-o", str(target))
    assert code == 0 and out == f"wrote {target}\n"
    assert target.read_bytes().startswith(magic)


@pytest.mark.parametrize("path", [GMM, GROUPED])
def test_graph_labels_each_site_the_same_way_in_dot_and_png(tmp_path, monkeypatch, path):
    import re

    import quivers.programs.draw as draw

    drawn = []
    real = draw.draw_program
    monkeypatch.setattr(draw, "draw_program", lambda *a, **k: drawn.append(real(*a, **k)) or drawn[-1])
    assert run("graph", path, "-o", str(tmp_path / "g.dot"))[0] == 0
    assert run("graph", path, "-o", str(tmp_path / "g.png"))[0] == 0
    dot = re.findall(r'label="([^"]*)"', (tmp_path / "g.dot").read_text())
    png = [t.get_text() for t in drawn[0].axes[0].texts if t.get_text()]
    assert sorted(dot) == sorted(png)
    assert "marginalize z : K" in dot and any(label.startswith("observe y : Item <- Normal") for label in dot)
    if path == GROUPED:
        assert "index group : Item -> G" in dot and "marginalize z : K [over=G]" in dot


def test_graph_of_an_unknown_format_or_program(tmp_path):
    code, _, err = run("graph", GMM, "-o", str(tmp_path / "g.txt"))
    assert code == 1 and err == "qvr graph: cannot write a graph as `.txt`; use .dot, .png, .svg or .pdf\n"
    code, _, err = run("graph", GMM, "--program", "gm")
    assert code == 1 and err == f"{GMM}: no program `gm` in this module; did you mean `gmm`?\n"


def test_a_module_without_export_needs_program(tmp_path):
    p = tmp_path / "two.qvr"
    p.write_text("object K : FinSet 2\nprogram a : K -> K\n    sample x : K <- Normal(0.0, 1.0)\n"
                 "program b : K -> K\n    sample x : K <- Normal(0.0, 1.0)\n")
    code, _, err = run("graph", str(p))
    assert code == 1 and err == "qvr graph: this module exports no program; pass --program NAME (programs: a, b)\n"
    assert run("graph", str(p), "--program", "b")[0] == 0


# ---------------------------------------------------------------- fit


COLUMNS = ["mean", "sd", "hdi_3%", "hdi_97%", "mcse_mean", "mcse_sd", "ess_bulk", "ess_tail", "r_hat"]


@pytest.fixture(scope="module")
def svi_fit(gmm_data, tmp_path_factory):
    out_nc = tmp_path_factory.mktemp("fit") / "results.nc"
    code, out, err = run("fit", GMM, "--data", str(gmm_data), "--steps", "300", "--lr", "0.05",
                         "--samples", "50", "--out", str(out_nc), "--no-progress")
    assert code == 0, err
    return out_nc, out, err


def test_fit_svi_prints_the_summary_and_writes_netcdf(svi_fit):
    import arviz as az

    from quivers.results import load_fit

    out_nc, out, _ = svi_fit
    lines = out.splitlines()
    assert lines[0].startswith("gmm: SVI, 300 steps, final loss (-ELBO) ")
    assert lines[0].endswith("; 4 chains x 50 draws from the guide "
                             "(chosen by fit: SVI options given (--lr, --steps); --method nuts runs NUTS)")
    assert lines[1].split() == COLUMNS
    rows = {line.split()[0]: [float(v) for v in line.split()[1:]] for line in lines[2:8]}
    assert set(rows) == {"probs[0]", "probs[1]", "mu_k[0]", "mu_k[1]", "sd_k[0]", "sd_k[1]"}
    assert sorted(round(rows[f"mu_k[{k}]"][0]) for k in (0, 1)) == [-2, 2]
    assert abs(rows["probs[0]"][0] + rows["probs[1]"][0] - 1.0) < 0.0015  # the weights, normalized
    assert any(line.startswith("z : K, most probable value per row of Item: 0: ") for line in lines)
    idata = az.from_netcdf(out_nc)
    assert {"posterior", "observed_data", "log_likelihood"} <= set(idata.groups())
    assert dict(idata.posterior["mu_k"].sizes) == {"chain": 4, "draw": 50, "K": 2}
    # the table printed is the saved fit's summary, the one Python gives
    table = load_fit(out_nc).summary()
    assert lines[1 : 2 + len(table)] == [ln.rstrip() for ln in table.to_string().splitlines()]


def test_fit_nuts_prints_the_same_columns_and_its_warnings(gmm_data):
    code, out, err = run("fit", GMM, "--data", str(gmm_data), "--method", "nuts", "--warmup", "20",
                         "--samples", "10", "--chains", "2", "--no-progress")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "gmm: NUTS, 2 chains x 10 draws after 20 warmup (--method nuts given)"
    assert lines[1].split() == COLUMNS
    # 20 draws cannot reach 100 effective draws per chain: the warning is printed, not raised
    assert "qvr fit: warning: bulk ESS under 100 per chain for " in err
    assert "Traceback" not in err


TINY = """object Obs : FinSet 3

program tiny : Obs -> Obs
    sample mu <- Normal(0.0, 1.0)
    observe y : Obs <- Normal(mu, 1.0)
    return y

export tiny
"""


def test_fit_samples_a_small_model_with_nuts_by_default_and_says_why(tmp_path):
    (tmp_path / "tiny.qvr").write_text(TINY)
    (tmp_path / "tiny.json").write_text(json.dumps({"y": [0.5, 1.0, 1.5]}))
    code, out, err = run("fit", str(tmp_path / "tiny.qvr"), "--data", str(tmp_path / "tiny.json"),
                         "--chains", "1", "--samples", "5", "--device", "cpu", "--no-progress")
    assert code == 0, err
    assert out.splitlines()[0] == (
        "tiny: NUTS, 1 chains x 5 draws after 1000 warmup (chosen by fit: 1 unconstrained dimension and "
        "3 observed values are small enough to sample; --method svi runs SVI)"
    )


def test_fit_chooses_by_the_options_given_and_refuses_options_of_both_methods(gmm_data):
    code, out, err = run("fit", GMM, "--data", str(gmm_data), "--warmup", "5", "--samples", "5", "--chains", "2",
                         "--no-progress")
    assert code == 0, err
    assert out.splitlines()[0].endswith("(chosen by fit: NUTS options given (--warmup); --method svi runs SVI)")
    code, _, err = run("fit", GMM, "--data", str(gmm_data), "--method", "nuts", "--steps", "5")
    assert code == 1
    assert err == "qvr fit: `--steps` of SVI given with --method nuts; drop it, or run --method svi\n"
    code, _, err = run("fit", GMM, "--data", str(gmm_data), "--steps", "5", "--warmup", "5")
    assert code == 1 and err.startswith("qvr fit: options of SVI (`--steps`) and of NUTS (`--warmup`) given together")
    code, _, err = run("fit", GMM, "--data", str(gmm_data), "--method", "svi", "--dense-mass")
    assert code == 1 and err.startswith("qvr fit: `--dense-mass` of NUTS given with --method svi")


def test_fit_adapts_a_dense_mass_matrix_when_asked(tmp_path):
    (tmp_path / "tiny.qvr").write_text(TINY)
    (tmp_path / "tiny.json").write_text(json.dumps({"y": [0.5, 1.0, 1.5]}))
    code, out, err = run("fit", str(tmp_path / "tiny.qvr"), "--data", str(tmp_path / "tiny.json"), "--dense-mass",
                         "--chain-method", "vectorized", "--warmup", "20", "--chains", "1", "--samples", "5",
                         "--out", str(tmp_path / "fit.nc"), "--no-progress")
    assert code == 0, err
    assert out.splitlines()[0].endswith("(chosen by fit: NUTS options given (--chain-method, --dense-mass, --warmup); "
                                        "--method svi runs SVI)")


def test_fit_refuses_a_device_torch_cannot_use(gmm_data):
    code, _, err = run("fit", GMM, "--data", str(gmm_data), "--device", "nodevice", "--steps", "1")
    assert code == 1 and err == ("qvr fit: --device `nodevice` is no torch device; "
                                 "a device is `cpu`, `cuda`, `cuda:1`, `mps`, ...\n")
    if not torch.cuda.is_available():
        code, _, err = run("fit", GMM, "--data", str(gmm_data), "--device", "cuda", "--steps", "1")
        assert code == 1 and err.startswith("qvr fit: --device `cuda` asked for, but torch has no CUDA here")


# ---------------------------------------------------------------- predict


def test_predict_draws_from_a_saved_fit(svi_fit, tmp_path):
    import arviz as az

    out_nc, _, _ = svi_fit
    target = tmp_path / "ppc.nc"
    code, out, err = run("predict", str(out_nc), "--num", "20", "--out", str(target))
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "gmm: posterior predictive, 4 chains x 20 draws"
    assert lines[1].split() == ["site", "kind", "shape", "mean", "sd", "5%", "95%"]
    assert lines[2].split()[:3] == ["y", "observed", "500"]
    idata = az.from_netcdf(target)
    assert dict(idata.posterior_predictive["y"].sizes) == {"chain": 4, "draw": 20, "Item": 500}
    y = idata.posterior_predictive["y"].values
    assert -3.5 < float(np.quantile(y, 0.05)) < -1.0 and 1.0 < float(np.quantile(y, 0.95)) < 3.5


def test_predict_errors_are_one_line(tmp_path, gmm_data):
    code, _, err = run("predict", str(tmp_path / "none.nc"))
    assert code == 1 and err == f"qvr predict: no saved fit at `{tmp_path / 'none.nc'}`\n"
    code, _, err = run("predict", str(gmm_data))
    assert code == 1 and err.startswith(f"qvr predict: `{gmm_data}` is not a saved fit")


def test_fit_reads_csv_with_an_index_map_and_writes_plots(grouped_csv, tmp_path):
    import warnings

    with warnings.catch_warnings():  # 66 latent coordinates: ArviZ's panel limits and matplotlib stay quiet
        warnings.simplefilter("error")
        code, out, err = run("fit", GROUPED, "--data", str(grouped_csv), "--steps", "5", "--samples", "20",
                             "--plots", str(tmp_path / "plots"), "--no-progress")
    assert code == 0, err
    assert "z : K, most probable value per row of G: " in out
    for name in ("trace", "posterior", "pair", "ppc"):
        assert f"wrote {tmp_path / 'plots' / name}.png" in out
        assert (tmp_path / "plots" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"


def test_fit_data_errors_name_the_data_file(tmp_path):
    p = tmp_path / "d.json"
    p.write_text(json.dumps({"yy": [1.0, 2.0]}))
    code, _, err = run("fit", GMM, "--data", str(p), "--steps", "1")
    assert code == 1
    assert err == f"qvr fit: {p}: `yy` in --data is no site of the program; did you mean `y`?\n"
    p.write_text("{bad json")
    code, _, err = run("fit", GMM, "--data", str(p))
    assert code == 1 and err.startswith(f"qvr fit: {p}:1:2: not JSON: ")
    p.write_text(json.dumps({"y": [1.0, float("nan")] * 250}))
    code, _, err = run("fit", GMM, "--data", str(p), "--steps", "1")
    assert code == 1 and "observation `y` has a non-finite value at index (1,)" in err
    code, _, err = run("fit", GMM, "--data", str(tmp_path / "d.txt"))
    assert code == 1 and "cannot read" in err


def test_read_data_csv_rules(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text("y,group\n0.5,1\n1.5,\n")
    assert read_data(p) == {"y": [0.5, 1.5], "group": [1]}
    p.write_text("y,group\n0.5,\n1.5,2\n")
    code, _, err = run("fit", GMM, "--data", str(p))
    assert err == f"qvr fit: {p}: column `group` has an empty cell at row 2 before a value at row 3\n"
    p.write_text("y\nabc\n")
    assert run("fit", GMM, "--data", str(p))[2] == f"qvr fit: {p}: column `y`, row 2: `abc` is not a number\n"
    p.write_text(json.dumps([1, 2]))
    q = p.with_suffix(".json")
    p.rename(q)
    assert "the data must be a JSON object" in run("fit", GMM, "--data", str(q))[2]


# ---------------------------------------------------------------- sample


def test_sample_summarizes_prior_draws(tmp_path):
    target = tmp_path / "draws.json"
    code, out, err = run("sample", GMM, "--num", "7", "--out", str(target))
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "gmm: 7 prior predictive draws"
    assert lines[1].split() == ["site", "kind", "shape", "mean", "sd", "5%", "95%"]
    sites = {line.split()[0]: line.split()[1:3] for line in lines[2:]}
    assert sites["y"] == ["observed", "500"] and sites["z"] == ["marginal", "500"] and sites["mu_k"] == ["latent", "2"]
    draws = json.loads(target.read_text())
    assert len(draws["y"]) == 7 and len(draws["y"][0]) == 500


def test_sample_of_a_grouped_mixture_needs_the_index_map(grouped_csv):
    code, _, err = run("sample", GROUPED)
    assert code == 1 and "index map `group` (Item -> G) is missing from --data (" in err
    assert "data is given, never sampled: give `group` in --data" in err and "observations" not in err
    code, out, err = run("sample", GROUPED, "--data", str(grouped_csv), "--num", "3")
    assert code == 0, err
    assert "group" not in {line.split()[0] for line in out.splitlines()[2:]}


# ---------------------------------------------------------------- emit


def test_emit_stan_to_stdout_and_file(tmp_path):
    from quivers.emit import to_stan

    code, out, _ = run("emit", "--stan", GMM)
    assert code == 0 and out == to_stan(load(GMM).morphism)
    target = tmp_path / "gmm.stan"
    assert run("emit", "--stan", GROUPED, "-o", str(target))[:2] == (0, f"wrote {target}\n")
    assert "ll_z[group[i], k] += normal_lpdf(y[i] | mu_k[k], sd_k[k]);" in target.read_text()


def test_emit_stan_data_is_one_based(grouped_csv, tmp_path):
    target = tmp_path / "data.json"
    code, out, err = run("emit", "--stan", GROUPED, "--data", str(grouped_csv), "--data-out", str(target),
                         "-o", str(tmp_path / "m.stan"))
    assert code == 0, err
    data = json.loads(target.read_text())
    groups = [int(line.split(",")[1]) for line in grouped_csv.read_text().splitlines()[1:]]
    assert data["group"] == [g + 1 for g in groups] and data["G"] == 20 and data["Item"] == 1000


def test_emit_given_makes_a_covariate_data(tmp_path):
    p = tmp_path / "reg.qvr"
    p.write_text("object N : FinSet 4\nprogram r : N -> N\n    sample x : N <- Normal(0.0, 1.0)\n"
                 "    sample b <- Normal(0.0, 1.0)\n    observe y : N <- Normal(b * x, 1.0)\n")
    code, out, _ = run("emit", "--stan", str(p), "--given", "x")
    assert code == 0 and "  vector[N] x;\n  vector[N] y;\n}" in out


def test_emit_refuses_what_stan_cannot_say_at_its_line(tmp_path):
    p = tmp_path / "m.qvr"
    p.write_text("object Item : FinSet 3\nobject K : FinSet 2\nprogram p : Item -> Item\n"
                 "    sample w : K <- HalfNormal(1.0)\n    marginalize z : K <- Categorical(w)\n"
                 "        sample m : K <- Normal(0.0, 1.0)\n        observe y : Item <- Normal(m[z], 1.0)\n")
    code, out, err = run("emit", "--stan", str(p))
    assert code == 1 and out == ""
    assert err.splitlines()[0] == f"{p}:6:9: cannot emit Stan for program `p`: `m` is sampled inside a marginalize block"
    assert err.splitlines()[1] == "            sample m : K <- Normal(0.0, 1.0)"


def test_the_console_script_is_installed():
    """`[project.scripts] qvr = "quivers.cli:main"`: pip puts `qvr` on the path."""
    import shutil

    exe = shutil.which("qvr") or str(Path(sys.executable).with_name("qvr"))
    proc = subprocess.run([exe, "check", GMM], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.startswith(f"{GMM}: ok")


def test_fit_offers_every_guide_fit_knows():
    from quivers.cli import GUIDE_NAMES
    from quivers.inference import GUIDES

    assert GUIDE_NAMES == tuple(GUIDES)


@pytest.mark.parametrize("guide", ["laplace", "iaf"])
def test_fit_runs_the_laplace_and_flow_guides(gmm_data, guide):
    code, out, err = run("fit", GMM, "--data", str(gmm_data), "--guide", guide, "--steps", "30", "--lr", "0.05",
                         "--samples", "20", "--chains", "2", "--no-progress")
    assert code == 0, err
    assert out.splitlines()[0].startswith("gmm: SVI, 30 steps, ")
