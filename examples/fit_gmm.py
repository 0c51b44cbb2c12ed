"""The main job: fit the seed chapter's Gaussian mixture from QVR.

Loads ``examples/gmm.qvr``, simulates the chapter's data (500 points, true
means -2 and 2, sds 0.5 and 0.7, weight 0.6 on the second component), runs
1000 SVI steps with a full-rank guide while the component indicator is
integrated out exactly, and prints what it recovered.

SVI, not NUTS (which ``fit`` would choose for a model this small): the two
components are exchangeable, so NUTS's chains settle in different
labellings of them, while one guide settles in one. The full-rank guide
(``mvn``) follows the correlation of the two unnormalized weights, which a
mean-field guide misses (its Pareto k warning says so). The run gives no
warning (tests/test_examples.py runs it with ``-W error``).

With ``QUIVERS_QUICK=1`` in the environment it runs 100 steps instead, so
that the documentation tests can run every example quickly.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from quivers.dsl import load
from quivers.inference import fit

HERE = Path(__file__).resolve().parent


def main() -> None:
    torch.set_num_threads(1)
    module = load(HERE / "gmm.qvr")
    model = module.morphism
    torch.manual_seed(0)
    true_mu = torch.tensor([-2.0, 2.0])
    true_sd = torch.tensor([0.5, 0.7])
    z_true = torch.bernoulli(torch.full((500,), 0.6)).long()
    y = (torch.randn(500) * true_sd[z_true] + true_mu[z_true]).unsqueeze(0)

    quick = bool(os.environ.get("QUIVERS_QUICK"))
    steps, draws = (100, 200) if quick else (1000, 500)
    result = fit(model, {"y": y}, method="svi", guide="mvn", steps=steps, lr=0.03, num_samples=draws, seed=0)
    print(f"\n{result.describe()}; final loss (-ELBO): {result.losses[-1]:.2f}\n")
    print(result.summary().to_string())

    median = result.guide.median()
    order = median["mu_k"].argsort()
    weights = median["probs"] / median["probs"].sum()
    print("\nrecovered (components sorted by mean) vs. truth:")
    for k, j in enumerate(order.tolist()):
        print(
            f"  component {k}: mu = {median['mu_k'][j]:+.3f} (true {true_mu[k]:+.1f}), "
            f"sd = {median['sd_k'][j]:.3f} (true {true_sd[k]:.1f}), "
            f"weight = {weights[j]:.3f} (true {[0.4, 0.6][k]:.1f})"
        )
    z = result.discrete_posterior(seed=0)["z"]
    labels = torch.argsort(order)[z.map.reshape(-1)]
    print(f"\nMAP component assignments agree with the simulated ones for {float((labels == z_true).float().mean()):.1%} of points")


if __name__ == "__main__":
    main()
