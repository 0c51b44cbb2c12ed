"""NUTS against posteriordb's reference draws (eight schools, non-centered)."""

from __future__ import annotations

import arviz as az
import numpy as np
import pytest
import torch

from quivers.inference.mcmc import MCMC, NUTS
from tests.inference.reference import load as _read



class EightSchools:
    """theta_trans ~ N(0, 1), mu ~ N(0, 5), tau ~ HalfCauchy(5) (sampled as
    log tau), theta = mu + tau theta_trans, y ~ N(theta, sigma)."""

    def __init__(self, y, sigma):
        self.y = torch.tensor(y, dtype=torch.float64)
        self.sigma = torch.tensor(sigma, dtype=torch.float64)

    def init_unconstrained(self, num_chains, generator):
        return torch.rand(num_chains, 10, generator=generator, dtype=torch.float64) * 4 - 2

    def potential(self, z):
        mu, log_tau, eta = z[:, 0], z[:, 1], z[:, 2:]
        tau = log_tau.exp()
        theta = mu[:, None] + tau[:, None] * eta
        log_p = -0.5 * (mu / 5) ** 2 - torch.log1p((tau / 5) ** 2) + log_tau
        log_p = log_p - 0.5 * (eta**2).sum(-1) - 0.5 * (((self.y - theta) / self.sigma) ** 2).sum(-1)
        return -log_p

    def constrain(self, z):
        mu, tau = z[..., 0], z[..., 1].exp()
        return {"mu": mu, "tau": tau, "theta": mu[..., None] + tau[..., None] * z[..., 2:]}


@pytest.mark.slow
def test_eight_schools_noncentered_matches_reference_draws():
    data = _read("eight_schools.data.json.zip")
    reference = _read("eight_schools-eight_schools_noncentered.draws.json.zip")
    mcmc = MCMC(NUTS(EightSchools(data["y"], data["sigma"])), num_warmup=1000, num_samples=1000,
                num_chains=4, seed=0, progress_bar=False)
    mcmc.run()
    ours = {k: v.numpy() for k, v in mcmc.get_samples(group_by_chain=True).items()}
    names = ["mu", "tau"] + [f"theta[{j}]" for j in range(1, 9)]
    ref = {n: np.array([chain[n] for chain in reference]) for n in names}
    ref_data = az.convert_to_dataset({n.replace("[", "_").replace("]", ""): v for n, v in ref.items()})
    ours_flat = {"mu": ours["mu"], "tau": ours["tau"]}
    ours_flat.update({f"theta[{j + 1}]": ours["theta"][..., j] for j in range(8)})
    our_data = az.convert_to_dataset({n.replace("[", "_").replace("]", ""): v for n, v in ours_flat.items()})
    assert int(mcmc.get_sample_stats()["diverging"].sum()) <= 4  # non-centered: (almost) none
    for name in names:
        key = name.replace("[", "_").replace("]", "")
        a, b = ours_flat[name], ref[name]
        mcse = np.hypot(a.std() / np.sqrt(float(az.ess(our_data, var_names=[key])[key])),
                        b.std() / np.sqrt(float(az.ess(ref_data, var_names=[key])[key])))
        assert abs(a.mean() - b.mean()) < 4 * mcse, (name, a.mean(), b.mean(), mcse)
        assert abs(a.std() / b.std() - 1) < 0.1, (name, a.std(), b.std())
        assert float(az.rhat(our_data, var_names=[key])[key]) < 1.01, name
