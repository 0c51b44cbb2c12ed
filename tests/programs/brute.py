"""Brute-force references: enumerate every assignment of the discrete
latents with Python loops in float64, independently of the runtime."""

from __future__ import annotations

import itertools
import math

import torch
from torch.distributions import Normal


def lse(xs: list[float]) -> float:
    m = max(xs)
    if m == -math.inf:
        return -math.inf
    return m + math.log(sum(math.exp(x - m) for x in xs))


def normal_lp(y: float, mu: float, sd: float) -> float:
    return float(Normal(torch.tensor(mu, dtype=torch.float64), torch.tensor(sd, dtype=torch.float64)).log_prob(torch.tensor(y, dtype=torch.float64)))


def per_row_mixture(y, weights, mu, sd, reduce=lse) -> float:
    """log sum over all K^N assignments of prod_n pi_{z_n} N(y_n | mu_{z_n}, sd_{z_n})
    (``reduce=max``: the best assignment's log weight)."""
    n, k = len(y), len(weights)
    logpi = [math.log(w / sum(weights)) for w in weights]
    terms = []
    for z in itertools.product(range(k), repeat=n):
        terms.append(sum(logpi[z[i]] + normal_lp(y[i], mu[z[i]], sd[z[i]]) for i in range(n)))
    return reduce(terms)


def grouped_mixture(observations, weights, mu, sd, reduce=lse) -> float:
    """log sum over all K^G assignments of the group latents.

    ``observations`` is a list of ``(y, group)`` pairs (one per observe
    site), ``weights`` a G x K nested list.
    """
    g, k = len(weights), len(weights[0])
    logpi = [[math.log(w / sum(row)) for w in row] for row in weights]
    terms = []
    for z in itertools.product(range(k), repeat=g):
        t = sum(logpi[j][z[j]] for j in range(g))
        for y, group in observations:
            t += sum(normal_lp(y[i], mu[z[group[i]]], sd[z[group[i]]]) for i in range(len(y)))
        terms.append(t)
    return reduce(terms)
