"""``pcfg_prior`` over a grammar written as a QVR ``deduction`` block: a
Dirichlet per concluded category over the learnable rules and entries,
whose likelihood is the deduction's own log weight (unary rules included),
and whose SVI posterior matches the conjugate one on unambiguous
sentences."""

from __future__ import annotations

import math

import pytest
import torch

from quivers.deduction import fit_pcfg_posterior, pcfg_prior
from quivers.dsl import loads
from quivers.errors import InvalidValueError

SOURCE = """
object Term : FinSet 4

deduction Toy : Term -> Term [semiring={semiring}, start=S]
    atoms S, NP, VP, V, span
    rule s : span(I, K, NP), span(K, J, VP) |- span(I, J, S) #[learnable]
    rule intrans : span(I, J, V) |- span(I, J, VP) #[learnable]
    rule trans : span(I, K, V), span(K, J, NP) |- span(I, J, VP) #[learnable]
    lexicon
        "kim"  : NP #[learnable]
        "lee"  : NP #[learnable]
        "runs" : V  #[learnable]
        "sees" : V  #[learnable]
        "too"  : NP
"""

# production order: s, intrans, trans, "kim", "lee", "runs", "sees"
CORPUS = ["kim runs", "lee sees kim", "kim sees lee", "lee runs", "kim runs"] * 20
COUNTS = 20 * torch.tensor([5, 3, 2, 4, 3, 3, 2], dtype=torch.float64)


def toy(semiring="LogProb"):
    return loads(SOURCE.format(semiring=semiring)).Toy


def test_productions_are_grouped_by_the_category_they_conclude():
    prior = pcfg_prior(toy(), 1.0)
    assert prior.names == ["s", "intrans", "trans", '"kim" : NP', '"lee" : NP', '"runs" : V', '"sees" : V']
    assert [ix.tolist() for ix in prior.groups] == [[1, 2], [3, 4], [5, 6]]   # S has one rule


def test_the_likelihood_is_the_product_of_the_probabilities_of_the_parse():
    prior = pcfg_prior(toy(), 1.0)
    theta = torch.tensor([1.0, 0.3, 0.7, 0.6, 0.4, 0.9, 0.1], dtype=torch.float64)
    log_p = prior.log_likelihood(theta, [s.split() for s in ["kim runs", "lee sees kim", "too runs"]])
    # "too" is not learnable: it weighs one
    expected = torch.tensor([0.3 * 0.6 * 0.9, 0.7 * 0.4 * 0.1 * 0.6, 0.3 * 0.9], dtype=torch.float64).log()
    torch.testing.assert_close(log_p, expected)


def test_the_posterior_of_a_deduction_block_is_the_conjugate_one():
    torch.manual_seed(0)
    prior = pcfg_prior(toy(), 1.0)
    guide, losses = fit_pcfg_posterior(prior, [s.split() for s in CORPUS], steps=150, lr=0.2)
    exact = prior.conjugate(COUNTS)
    fitted = guide.mean()
    for k, ix in enumerate(prior.groups):
        for i in ix.tolist():
            target = float(exact[i] / exact[ix].sum())
            assert abs(fitted[prior.names[i]] - target) < 0.05, (prior.names[i], fitted[prior.names[i]], target)
    assert math.isfinite(losses[-1]) and losses[-1] < losses[0]


def test_a_deduction_that_is_not_a_pcfg_is_refused():
    with pytest.raises(InvalidValueError, match="weighs in `MAX_PLUS`, not `LOG`"):
        pcfg_prior(toy("Viterbi"))
    ccg = loads("""
object Term : FinSet 4
deduction C : Term -> Term [semiring=LogProb, start=S]
    atoms S, NP, span
    rule app : span(I, K, X/Y), span(K, J, Y) |- span(I, J, X) #[learnable]
    lexicon
        "a" : S/NP
        "b" : NP
""").C
    with pytest.raises(InvalidValueError, match="rule `app` concludes `span\\(I, J, X\\)`, not one category"):
        pcfg_prior(ccg)
