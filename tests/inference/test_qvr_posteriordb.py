"""The QVR examples with data (eight schools with known `sigma`, the kidiq
regression with the covariate `mom_iq`) recover posteriordb's reference
posteriors under NUTS (the README's criteria), and match the same models
built with the Python combinators exactly."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from quivers.dsl import load
from quivers.inference.mcmc import MCMC, NUTS

from tests.inference import reference as R

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def eight_schools_data(dtype=torch.float32) -> dict[str, torch.Tensor]:
    data = R.load("eight_schools.data.json.zip")
    return {"y": torch.tensor(data["y"], dtype=dtype), "sigma": torch.tensor(data["sigma"], dtype=dtype)}


def kidiq_data(dtype=torch.float32) -> dict[str, torch.Tensor]:
    data = R.load("kidiq.data.json.zip")
    return {k: torch.tensor(data[k], dtype=dtype) for k in ("kid_score", "mom_iq")}


def test_eight_schools_qvr_is_the_python_model() -> None:
    from tests.inference.test_posteriordb import eight_schools

    qvr = load(EXAMPLES / "eight_schools.qvr").morphism
    python, obs = eight_schools()
    lat = {"mu": torch.tensor(1.5), "tau": torch.tensor(2.0), "theta_trans": torch.linspace(-1, 1, 8)}
    want = python.log_joint(None, {"y": obs["y"].float()}, lat)
    torch.testing.assert_close(qvr.log_joint(None, eight_schools_data(), lat), want)


@pytest.mark.slow
def test_nuts_recovers_eight_schools_from_qvr_with_sigma_as_data() -> None:
    torch.set_default_dtype(torch.float64)
    try:
        prog = load(EXAMPLES / "eight_schools.qvr").morphism
        mcmc = MCMC(NUTS(prog), num_warmup=500, num_samples=2500, num_chains=4, seed=0, progress_bar=False)
        mcmc.run(None, eight_schools_data(torch.float64))
        s = {k: v.numpy() for k, v in mcmc.get_samples(group_by_chain=True).items()}
        theta = s["mu"][..., None] + s["tau"][..., None] * s["theta_trans"]
        draws = {"mu": s["mu"], "tau": s["tau"]} | R.stan_names({"theta": theta}, "theta", "theta", 1)
        assert R.check_nuts(draws, "eight_schools-eight_schools_noncentered") == []
    finally:
        torch.set_default_dtype(torch.float32)


@pytest.mark.slow
def test_nuts_recovers_kidiq_from_qvr_with_the_covariate_as_data() -> None:
    prog = load(EXAMPLES / "kidiq.qvr").morphism
    mcmc = MCMC(NUTS(prog), num_warmup=500, num_samples=600, num_chains=4, seed=0, progress_bar=False)
    mcmc.run(None, kidiq_data())
    s = {k: v.numpy() for k, v in mcmc.get_samples(group_by_chain=True).items()}
    draws = R.stan_names(s, "beta", "beta", 1) | {"sigma": s["sigma"]}
    assert R.check_nuts(draws, "kidiq-kidscore_momiq") == []
