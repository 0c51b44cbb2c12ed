"""Every entry point validates data the same way: a forgotten data name, one
of the wrong shape or range, and one given as a latent each raise an error
naming it (and, for a program written in QVR, the line that reads it)."""

from __future__ import annotations

import io
import json

import pytest
import torch

from quivers.cli import main
from quivers.dsl import loads
from quivers.errors import DataError, QuiversError
from quivers.inference import ELBO, MCMC, NUTS, SVI, AutoNormalGuide, Predictive, fit

SOURCE = """
object Item : FinSet 4
object G : FinSet 2
program reg : Item -> Item
    sample alpha <- Normal(0.0, 1.0)
    sample a : G <- Normal(0.0, 1.0)
    observe y : Item <- Normal(alpha + beta_x * x + a[g], sigma_y)
    return y
export reg
"""

GOOD = {
    "y": [0.5, 1.0, -0.5, 2.0], "x": [0.0, 1.0, 2.0, 3.0], "g": [0, 1, 1, 0], "beta_x": 0.5, "sigma_y": 1.0,
}
BAD = {
    "missing": ({"x": None}, r"data `x` \(on Item\) is missing from the observations"),
    "shape": ({"x": [0.0, 1.0]}, r"data `x` has shape \(2,\); it is on Item, shape \(4,\)"),
    "range": ({"g": [0, 1, 5, 0]}, r"index map `g` has value 5 at index \(2,\), outside \[0, 2\) of `G`"),
}


def _data(case: str) -> dict[str, torch.Tensor]:
    change, _ = BAD[case]
    out = {**GOOD, **change}
    return {k: torch.as_tensor(v) for k, v in out.items() if v is not None}


def _program():
    return loads(SOURCE).reg


def _expect(case: str, run) -> None:
    with pytest.raises(QuiversError, match=BAD[case][1]) as info:
        run(_data(case))
    assert info.value.span is not None and info.value.span.line == 7, str(info.value)


CASES = sorted(BAD)


@pytest.mark.parametrize("case", CASES)
def test_log_joint(case: str) -> None:
    p = _program()
    _expect(case, lambda d: p.log_joint(None, d, {"alpha": 0.0, "a": torch.zeros(2)}))


@pytest.mark.parametrize("case", CASES)
def test_svi(case: str) -> None:
    p = _program()
    guide = AutoNormalGuide(p, observed_names={"y"})
    svi = SVI(p, guide, torch.optim.Adam(guide.parameters(), lr=0.01), ELBO())
    svi.step(None, {k: torch.as_tensor(v) for k, v in GOOD.items()})
    _expect(case, lambda d: svi.step(None, d))


@pytest.mark.parametrize("case", CASES)
def test_nuts_through_mcmc(case: str) -> None:
    p = _program()
    mcmc = MCMC(NUTS(p), num_warmup=2, num_samples=2, num_chains=1, seed=0, progress_bar=False)
    _expect(case, lambda d: mcmc.run(None, d))


@pytest.mark.parametrize("method", ["svi", "nuts"])
@pytest.mark.parametrize("case", CASES)
def test_fit(case: str, method: str) -> None:
    p = _program()
    kw = {"steps": 2} if method == "svi" else {"num_warmup": 2, "num_chains": 1}
    _expect(case, lambda d: fit(p, d, method=method, num_samples=2, progress_bar=False, **kw))


@pytest.mark.parametrize("case", CASES)
def test_predictive(case: str) -> None:
    p = _program()
    _expect(case, lambda d: Predictive(p, num_samples=3)(None, {k: v for k, v in d.items() if k != "y"}))
    posterior = {"alpha": torch.zeros(3), "a": torch.zeros(3, 2)}
    _expect(case, lambda d: Predictive(p, posterior_samples=posterior)(None, d))


def test_fit_and_predictive_with_good_data() -> None:
    p = _program()
    data = {k: torch.as_tensor(v) for k, v in GOOD.items()}
    result = fit(p, data, method="svi", steps=5, num_samples=4, progress_bar=False)
    assert set(result.samples) == {"alpha", "a"}
    idata = result.to_inference_data(log_likelihood=False)  # data is constant_data, never posterior
    assert set(idata.constant_data.data_vars) == {"x", "g", "beta_x", "sigma_y"}
    assert set(idata.posterior.data_vars) == {"alpha", "a"} and set(idata.observed_data.data_vars) == {"y"}
    assert idata.constant_data["x"].values.tolist() == GOOD["x"]
    draws = Predictive(p, num_samples=3)(None, {k: v for k, v in data.items() if k != "y"})
    assert draws["y"].shape == (3, 4) and "x" not in draws
    # data given where latents go is refused, naming it
    with pytest.raises(DataError, match=r"data `x` \(on Item\) is given in latents"):
        p.log_joint(None, data, {"alpha": 0.0, "a": torch.zeros(2), "x": torch.zeros(4)})
    with pytest.raises(DataError, match="posterior sample `x` is data of `reg`, which has no posterior"):
        Predictive(p, posterior_samples={"alpha": torch.zeros(3), "a": torch.zeros(3, 2), "x": torch.zeros(3, 4)})


@pytest.mark.parametrize("case", CASES)
def test_cli_fit(case: str, tmp_path) -> None:
    src = tmp_path / "reg.qvr"
    src.write_text(SOURCE)
    data = tmp_path / "d.json"
    data.write_text(json.dumps({k: v.tolist() for k, v in _data(case).items()}))
    out, err = io.StringIO(), io.StringIO()
    code = main(["fit", str(src), "--data", str(data), "--steps", "2", "--samples", "2", "--no-progress"], out=out, err=err)
    assert code == 1
    text = err.getvalue()
    assert text.startswith(f"{src}:7:") or f"line 7" in text, text
    assert _searched(BAD[case][1].replace("the observations", "--data"), text), text  # the command line's words
    assert "the observations" not in text


def test_cli_check_verbose_lists_the_data_roles(tmp_path) -> None:
    src = tmp_path / "reg.qvr"
    src.write_text(SOURCE)
    out, err = io.StringIO(), io.StringIO()
    assert main(["check", "--verbose", str(src)], out=out, err=err) == 0, err.getvalue()
    lines = out.getvalue().splitlines()
    assert "    data x : Item (real, one per element of Item or one for all; inferred from its use on line 7)" in lines
    assert "    data g : Item -> G (an index map into G; inferred from its use on line 7)" in lines
    assert "    data beta_x (one real number; inferred from its use on line 7)" not in lines  # on Item: read by y
    clash = tmp_path / "clash.qvr"
    clash.write_text(SOURCE.replace("    sample alpha", "    data a : G\n    sample alpha"))
    assert main(["check", str(clash)], out=out, err=err) == 1
    assert "`a` is defined twice in program `reg`; it is already defined by `data a`" in err.getvalue()


def _searched(pattern: str, text: str) -> bool:
    import re

    return re.search(pattern, text) is not None
