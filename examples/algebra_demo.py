"""A tour of quivers.categories: kernels, semirings, Kan extensions.

Run with ``python examples/algebra_demo.py``.
"""

from __future__ import annotations

import torch

from quivers.categories import (
    LOG,
    MAX_TIMES,
    PROB,
    PROB_TO_BOOL,
    PROB_TO_LOG,
    FinFunction,
    FinSet,
    Kernel,
    Morphism,
    left_kan,
    right_kan,
)


def markov_chain() -> None:
    """Two steps of a weather chain, summed (PROB) and maximized (Viterbi)."""
    W = FinSet("Weather", 3)  # sun, cloud, rain
    step = Kernel(W, W, torch.tensor([[0.8, 0.2, 0.0], [0.3, 0.4, 0.3], [0.0, 0.5, 0.5]]))
    print("P(weather in two days | today):\n", (step >> step).tensor)
    best = Morphism(W, W, step.tensor, MAX_TIMES)
    print("probability of the likeliest two-day path:\n", (best >> best).tensor)
    print("reachable in two days:\n", PROB_TO_BOOL(step >> step).tensor)


def grouped_mixture() -> None:
    """The grouped marginalization of a mixture, as two Kan extensions in LOG.

    Each item belongs to a group; every item of a group shares the group's
    latent class z in K. Per group: multiply the items' likelihoods
    (right Kan extension along item -> group), weight by the prior, and sum
    over z (a LOG reduction over K).
    """
    Item, G, K = FinSet("Item", 6), FinSet("G", 3), FinSet("K", 2)
    group = FinFunction(Item, G, [0, 0, 1, 1, 1, 2])
    y = torch.tensor([-2.1, -1.9, 2.2, 1.8, 2.0, -2.0])
    mu, sd = torch.tensor([-2.0, 2.0]), torch.tensor([0.5, 0.5])
    loglik = torch.distributions.Normal(mu, sd).log_prob(y[:, None])  # (Item, K)
    per_group = right_kan(group, loglik, LOG)  # (G, K): scatter-add
    prior = Kernel(FinSet.unit(), K, torch.tensor([[0.3, 0.7]]))  # 1 -> K
    log_prior = PROB_TO_LOG(prior).tensor[0]
    log_marginal = LOG.sum(per_group + log_prior, 1)  # (G,): logsumexp over K
    print("log p(y_g) per group:", log_marginal)
    print("total:", log_marginal.sum().item())
    # The left Kan extension sums over the same fibres: items per group.
    print("items per group:", left_kan(group, torch.ones(6), PROB))


if __name__ == "__main__":
    markov_chain()
    grouped_mixture()
