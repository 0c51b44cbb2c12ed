"""A Dirichlet prior over a PCFG's rule probabilities and its posterior by
SVI, checked against the conjugate posterior of unambiguous sentences."""

from __future__ import annotations

import math

import pytest
import torch

from quivers.deduction import Grammar, PCFGPosterior, Production, fit_pcfg_posterior, pcfg_elbo, pcfg_prior
from quivers.errors import InvalidValueError

TRUTH = [
    Production("S", ("NP", "VP")),
    Production("NP", ("Det", "N"), 0.6), Production("NP", ("she",), 0.4),
    Production("VP", ("V", "NP"), 0.7), Production("VP", ("runs",), 0.3),
    Production("Det", ("the",), 0.8), Production("Det", ("a",), 0.2),
    Production("N", ("dog",), 0.7), Production("N", ("cat",), 0.3),
    Production("V", ("sees",)),
]


def uniform():
    return Grammar([Production(p.lhs, p.rhs) for p in TRUTH], start="S")


def test_prior_log_density_is_a_product_of_dirichlets():
    g = uniform()
    alpha = torch.tensor([1.0, 2.0, 3.0, 0.5, 1.5, 4.0, 1.0, 2.5, 0.7, 9.0], dtype=torch.float64)
    prior = pcfg_prior(g, alpha)
    theta = torch.tensor([1.0, 0.3, 0.7, 0.25, 0.75, 0.9, 0.1, 0.4, 0.6, 1.0], dtype=torch.float64)

    def log_beta(a, b, x):  # a Dirichlet of two components
        return (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                + (a - 1) * math.log(x) + (b - 1) * math.log(1 - x))

    # S and V have one production each: no choice, no density
    expected = log_beta(2.0, 3.0, 0.3) + log_beta(0.5, 1.5, 0.25) + log_beta(4.0, 1.0, 0.9) + log_beta(2.5, 0.7, 0.4)
    assert prior.log_prob(theta).item() == pytest.approx(expected, rel=1e-13)
    torch.manual_seed(0)
    draws = prior.sample((50,))
    assert torch.equal(draws[:, [0, 9]], torch.ones(50, 2, dtype=torch.float64))
    torch.testing.assert_close(draws[:, 1] + draws[:, 2], torch.ones(50, dtype=torch.float64))


def test_the_likelihood_under_given_rule_weights_is_the_grammars_own():
    truth = Grammar(TRUTH, start="S")
    words, lengths = truth.encode([["she", "runs"], ["the", "dog", "sees", "a", "cat"]])
    assert torch.equal(uniform().log_prob(words, lengths, rule_log_weights=truth.rule_logits().detach()),
                       truth.log_prob(words, lengths).detach())
    with pytest.raises(InvalidValueError, match="takes one log weight each, got shape"):
        truth.log_prob(words, lengths, rule_log_weights=torch.zeros(3, dtype=torch.float64))


def test_bad_priors_are_refused():
    with pytest.raises(InvalidValueError, match="positive number or 10 of them"):
        pcfg_prior(uniform(), -1.0)
    with pytest.raises(InvalidValueError, match="positive number or 10 of them"):
        pcfg_prior(uniform(), [1.0, 2.0])
    with pytest.raises(InvalidValueError, match="normalized Grammar"):
        pcfg_prior(Grammar(TRUTH, start="S", normalize=False))


def test_svi_recovers_the_rule_probabilities_and_the_conjugate_posterior():
    truth = Grammar(TRUTH, start="S")
    sentences = truth.generate(300, generator=torch.Generator().manual_seed(0))
    model = uniform()
    prior = pcfg_prior(model, 1.0)
    torch.manual_seed(0)
    guide, losses = fit_pcfg_posterior(prior, sentences, steps=200, lr=0.2, num_particles=2)
    assert losses[-1] < losses[0]
    # each sentence of this grammar has one parse, so the posterior is Dirichlet(alpha + counts);
    # the counts are the gradient of the log likelihood in the log weights (Eisner's identity)
    words, lengths = model.encode(sentences)
    log_w = torch.zeros(len(TRUTH), dtype=torch.float64, requires_grad=True)
    (counts,) = torch.autograd.grad(model.log_prob(words, lengths, rule_log_weights=log_w).sum(), log_w)
    conjugate = PCFGPosterior(prior)
    with torch.no_grad():
        conjugate.log_concentration.copy_(prior.conjugate(counts).log())
    learned, exact, target = guide.mean(), conjugate.mean(), truth.probabilities()
    assert all(abs(learned[r] - exact[r]) < 0.05 for r in exact), (learned, exact)
    # and far tighter than the prior (Dirichlet(1, 1) per category)
    assert bool((guide.concentration()[1:9] > 10).all())
    assert all(abs(learned[r] - target[r]) < 0.1 for r in target), (learned, target)
    # the ELBO is highest at the exact posterior
    encoded = model.encode(sentences)
    at_exact = torch.stack([pcfg_elbo(conjugate, *encoded, num_particles=8) for _ in range(3)]).mean()
    at_prior = torch.stack([pcfg_elbo(PCFGPosterior(prior), *encoded, num_particles=8) for _ in range(3)]).mean()
    assert at_exact > at_prior
