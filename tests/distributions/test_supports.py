"""Values outside the support of a family at its parameters score -inf,
exactly; gradients are finite wherever the parameters are inside their
constraints, -inf branches included (issue 25, item 2; issue 15, part 6).

torch clamps probabilities to [eps, 1 - eps]: Bernoulli(0) would score a
success at about -36 (float64) or -16 (float32), and torch's own xlogy
differentiates to 0 / 0 at a rate of 0.
"""

from __future__ import annotations

import math

import pytest
import torch

from quivers.distributions import FAMILIES
from quivers.distributions.densities import log_or_zero, xlogy

DTYPES = [torch.float32, torch.float64]
INF = math.inf

# (family, parameters, value, exact log density): the edges 0 and 1 of
# each probability, a rate of 0, and Beta-family values at 0 and 1
CASES = [
    ("Bernoulli", {"probs": 0.0}, 1.0, -INF),
    ("Bernoulli", {"probs": 0.0}, 0.0, 0.0),
    ("Bernoulli", {"probs": 1.0}, 0.0, -INF),
    ("Bernoulli", {"probs": 1.0}, 1.0, 0.0),
    ("Bernoulli", {"logits": -INF}, 1.0, -INF),
    ("Bernoulli", {"logits": -INF}, 0.0, 0.0),
    ("Binomial", {"total_count": 18.0, "probs": 0.0}, 1.0, -INF),
    ("Binomial", {"total_count": 18.0, "probs": 0.0}, 0.0, 0.0),
    ("Binomial", {"total_count": 18.0, "probs": 1.0}, 17.0, -INF),
    ("Binomial", {"total_count": 18.0, "probs": 1.0}, 18.0, 0.0),
    ("Binomial", {"total_count": 3.0, "probs": 0.5}, 4.0, -INF),
    ("Binomial", {"total_count": 3.0, "probs": 0.5}, 2.0, math.log(3 / 8)),
    ("Geometric", {"probs": 1.0}, 0.0, 0.0),
    ("Geometric", {"probs": 1.0}, 2.0, -INF),
    ("Geometric", {"probs": 0.0}, 0.0, -INF),
    ("Geometric", {"probs": 0.5}, 2.0, 3 * math.log(0.5)),
    ("NegativeBinomial", {"total_count": 2.0, "probs": 0.0}, 0.0, 0.0),
    ("NegativeBinomial", {"total_count": 2.0, "probs": 0.0}, 3.0, -INF),
    ("Poisson", {"rate": 0.0}, 0.0, 0.0),
    ("Poisson", {"rate": 0.0}, 2.0, -INF),
    ("Beta", {"concentration1": 2.0, "concentration0": 3.0}, 0.0, -INF),
    ("Beta", {"concentration1": 3.0, "concentration0": 2.0}, 1.0, -INF),
    ("Beta", {"concentration1": 1.0, "concentration0": 3.0}, 0.0, math.log(3.0)),
    ("Beta", {"concentration1": 3.0, "concentration0": 1.0}, 1.0, math.log(3.0)),
    ("Beta", {"concentration1": 2.0, "concentration0": 2.0}, 1.5, -INF),
    ("Beta", {"concentration1": 2.0, "concentration0": 2.0}, -0.5, -INF),
    ("Uniform", {"low": 0.0, "high": 2.0}, 2.5, -INF),
    ("Uniform", {"low": 0.0, "high": 2.0}, -0.1, -INF),
    ("Uniform", {"low": 0.0, "high": 2.0}, 2.0, -math.log(2.0)),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("name, params, value, expected", CASES)
def test_edges_of_supports_score_exactly(name, params, value, expected, dtype):
    params = {k: torch.tensor(v, dtype=dtype, requires_grad=True) for k, v in params.items()}
    lp = FAMILIES[name].log_prob(params, torch.tensor(value, dtype=dtype))
    if expected == -INF:
        assert lp.item() == -INF
    else:
        torch.testing.assert_close(lp, torch.tensor(expected, dtype=dtype))
    # finite gradients, on the -inf branch too (where a logsumexp gives 0)
    grads = torch.autograd.grad(lp, [p for p in params.values()], allow_unused=True)
    assert all(g is None or bool(torch.isfinite(g).all()) for g in grads), grads


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_dirichlet_on_the_edges_of_the_simplex(dtype):
    a = torch.tensor([2.0, 1.0, 0.5], dtype=dtype, requires_grad=True)
    lp = FAMILIES["Dirichlet"].log_prob({"concentration": a}, torch.tensor([[0.0, 0.5, 0.5], [0.5, 0.0, 0.5],
                                                                             [-0.1, 0.6, 0.5]], dtype=dtype))
    assert lp[0].item() == -INF and lp[2].item() == -INF
    want = torch.distributions.Dirichlet(a.detach()).log_prob(torch.tensor([0.5, 0.0, 0.5], dtype=dtype))
    torch.testing.assert_close(lp[1], want)
    (g,) = torch.autograd.grad(lp.sum(), a)
    assert torch.isfinite(g).all()


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_categorical_zero_weights(dtype):
    w = torch.tensor([0.0, 1.0, 3.0], dtype=dtype, requires_grad=True)
    dist = FAMILIES["Categorical"].make({"weights": w})
    lp = dist.log_prob(torch.tensor([0, 1, 2]))
    assert lp[0].item() == -INF
    torch.testing.assert_close(lp[1:], torch.log(torch.tensor([0.25, 0.75], dtype=dtype)))
    # the -inf entry inside a logsumexp (a marginalized index) has weight 0
    (g,) = torch.autograd.grad(torch.logsumexp(lp, 0), w)
    assert torch.isfinite(g).all()


def test_helpers_agree_with_torch_inside_and_are_finite_at_zero():
    c = torch.tensor([0.0, 0.0, 1.5, -0.5, 2.0], dtype=torch.float64, requires_grad=True)
    p = torch.tensor([0.0, 0.3, 0.0, 0.0, 0.7], dtype=torch.float64, requires_grad=True)
    got = xlogy(c, p)
    torch.testing.assert_close(got, torch.xlogy(c.detach(), p.detach()))
    assert got[2].item() == -INF and got[3].item() == INF
    gc, gp = torch.autograd.grad(got.sum(), [c, p])
    assert torch.isfinite(gc).all() and torch.isfinite(gp).all()
    torch.testing.assert_close(gp[[1, 4]], (c / p).detach()[[1, 4]])
    w = torch.tensor([0.0, 0.5], dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(torch.logsumexp(log_or_zero(w), 0), w)
    torch.testing.assert_close(g, torch.tensor([0.0, 2.0], dtype=torch.float64))
