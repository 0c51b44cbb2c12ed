"""``sample g <- pcfg_prior(D, alpha)`` in a QVR program: Dirichlet priors on
the rule probabilities of deduction ``D``, under which ``observe s <- D``
scores sentences. Its log density is the prior's plus the log probability
of each sentence's parse under the draw, exactly; SVI with a Dirichlet
guide finds the conjugate posterior mean on a treebank of unambiguous
sentences; a wrong argument is a located error; the program prints back."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Dirichlet

from quivers.deduction import PCFGPosterior, pcfg_prior
from quivers.dsl import loads
from quivers.dsl.format import format_source
from quivers.dsl.parser import parse
from quivers.dsl.printer import dumps
from quivers.errors import InvalidValueError, QuiversTypeError, UnknownNameError, UnsupportedError
from quivers.inference import ELBO, SVI

SOURCE = """\
object Term : FinSet 4
object Sent : FinSet 3

deduction Coin : Term -> Term [semiring={semiring}, start=S]
    atoms S, A, B
    rule pair : span(I, K, A), span(K, J, B) |- span(I, J, S) #[learnable]
    rule lone : span(I, J, A) |- span(I, J, S) #[learnable]
    lexicon
        "x" : A #[learnable]
        "y" : A #[learnable]
        "z" : B

program treebank : Term -> Term
    {prior}
    observe s <- Coin
    return s
"""


def module(prior="sample g <- pcfg_prior(Coin, 2.0)", semiring="LogProb"):
    return loads(SOURCE.format(prior=prior, semiring=semiring))


# productions in order: pair, lone (the rules concluding S), then "x", "y" (the entries of A);
# "z" is not learnable and weighs one. Every sentence has one parse.
CORPUS = ["x z"] * 30 + ["y"] * 10 + ["x"] * 20 + ["y z"] * 15
COUNTS = torch.tensor([30 + 15, 10 + 20, 30 + 20, 10 + 15], dtype=torch.float64)


def test_the_log_density_is_the_dirichlet_prior_plus_the_parses_under_the_draw():
    m = module()
    theta = torch.tensor([0.3, 0.7, 0.6, 0.4], dtype=torch.float64)
    sentences = ["x z", "y", "x", "x z"]
    _, log_p = m.treebank.run(torch.tensor(0), {"s": sentences}, given={"g": theta})
    prior = (Dirichlet(torch.tensor([2.0, 2.0], dtype=torch.float64)).log_prob(theta[:2])
             + Dirichlet(torch.tensor([2.0, 2.0], dtype=torch.float64)).log_prob(theta[2:]))
    parses = math.log(0.3 * 0.6) + math.log(0.7 * 0.4) + math.log(0.7 * 0.6) + math.log(0.3 * 0.6)
    assert float(log_p) == pytest.approx(float(prior) + parses, rel=1e-13)


def test_without_a_guide_the_program_draws_the_rule_probabilities_from_the_prior():
    m = module()
    torch.manual_seed(0)
    draws = torch.stack([m.treebank.run(torch.tensor(0), {"s": ["x"]})[1] for _ in range(3)])
    assert torch.isfinite(draws).all() and len(set(draws.tolist())) == 3     # a new draw each run


def test_svi_finds_the_conjugate_posterior_mean():
    m = module()
    torch.manual_seed(0)
    prior = pcfg_prior(m.Coin, 2.0)
    guide = PCFGPosterior(prior)
    svi = SVI(m.treebank, {"g": guide}, torch.optim.Adam(guide.parameters(), lr=0.2), ELBO())
    losses = []
    for step in range(160):
        if step == 100:            # smaller steps at the end, so the fit settles
            svi.optimizer.param_groups[0]["lr"] = 0.02
        losses.append(svi.step(torch.tensor(0), {"s": CORPUS}))
    exact = prior.conjugate(COUNTS)            # Dirichlet(alpha + counts): 2 + counts
    fitted = guide.mean()
    for ix in prior.groups:
        for i in ix.tolist():
            assert fitted[prior.names[i]] == pytest.approx(float(exact[i] / exact[ix].sum()), abs=0.03)
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("prior, cls, message, at", [
    ("sample g <- pcfg_prior(Term, 2.0)", UnknownNameError,
     "first argument of `pcfg_prior` is a deduction block; `Term` is not one", "Term"),
    ("sample g <- pcfg_prior(Coin, 0 - 1.0)", QuiversTypeError, "concentration of `pcfg_prior` is a positive",
     "0 - 1.0"),
    ("sample g <- pcfg_prior(Coin, 1.0, 2.0)", QuiversTypeError, "takes a deduction and a concentration",
     "pcfg_prior"),
    ("observe g <- pcfg_prior(Coin, 2.0)", UnsupportedError, "does not observe them", "pcfg_prior"),
    ("sample g <- pcfg_prior(Coin)\n    sample h <- pcfg_prior(Coin)", QuiversTypeError,
     "already draws the rule probabilities of deduction `Coin` \\(as `g`\\)", "pcfg_prior"),
])
def test_a_wrong_argument_is_a_located_error(prior, cls, message, at):
    with pytest.raises(cls, match=message) as info:
        module(prior)
    lines = SOURCE.format(prior=prior, semiring="LogProb").splitlines()
    line = lines[info.value.span.line - 1]
    # the last line of the prior's steps, at the offending argument (or the call)
    assert line.strip() == prior.splitlines()[-1].strip()
    assert line.index(at) + 1 == info.value.span.column


def test_a_deduction_that_is_not_a_pcfg_is_refused_where_the_prior_is_drawn():
    with pytest.raises(InvalidValueError, match="weighs in `MAX_PLUS`, not `LOG`") as info:
        module(semiring="Viterbi")
    assert info.value.span.line == 14


def test_the_program_prints_back_and_formats_stably():
    text = SOURCE.format(prior="sample g <- pcfg_prior(Coin, 2.0)", semiring="LogProb")
    tree = parse(text)
    assert parse(dumps(tree)) == tree
    assert "sample g <- pcfg_prior(Coin, 2.0)" in dumps(tree)
    formatted = format_source(text)
    assert format_source(formatted) == formatted and parse(formatted) == tree
