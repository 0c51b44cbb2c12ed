"""A QVR program observes sentences under a deduction block: its log
density is the deduction's inside log weight, and its gradient reaches the
rule and lexicon weights."""

from __future__ import annotations

import math

import pytest
import torch

from quivers.categories import LOG
from quivers.deduction import inside
from quivers.dsl import loads
from quivers.errors import DataError, QuiversTypeError, UnknownNameError, UnsupportedError

# every binary bracketing of the words is a derivation: Catalan many
SOURCE = """
object Term : FinSet 4
object Sent : FinSet 3

deduction Bracket : Term -> Term [semiring={semiring}, start=S]
    atoms S
    rule join : span(I, K, S), span(K, J, S) |- span(I, J, S) #[learnable]
    lexicon
        "a" : S #[learnable]
        "b" : S #[learnable]

program lm : Sent -> Sent
    observe s : Sent <- Bracket
    return s
"""

SENTENCES = ["a b a", "b", "a a b b"]


def module(semiring: str = "LogProb", tail: str = ""):
    return loads(SOURCE.format(semiring=semiring) + tail)


def weighted():
    m = module()
    with torch.no_grad():
        m.Bracket.rule_logits["join"].fill_(-0.7)
        m.Bracket.entry_logits.copy_(torch.tensor([0.3, -1.1], dtype=torch.float64))
    return m


def test_log_density_is_the_inside_log_weight_exactly():
    m = weighted()
    log_p = m.lm.log_prob({"s": SENTENCES}, torch.tensor(0))
    assert log_p.dtype == torch.float64
    # the closed form: C(n-1) bracketings, each using n-1 joins and one entry per word
    join, (a, b) = -0.7, (0.3, -1.1)
    closed = sum(
        math.log(math.comb(2 * (n - 1), n - 1) / n) + (n - 1) * join + s.split().count("a") * a
        + s.split().count("b") * b
        for s in SENTENCES for n in [len(s.split())]
    )
    assert log_p.item() == pytest.approx(closed, rel=1e-14)
    # the deduction itself, sentence by sentence
    direct = sum(m.Bracket.weight(s.split()) for s in SENTENCES)
    assert torch.equal(log_p, direct)
    # and the tensorized CKY inside pass on the same weights
    binary = torch.full((1, 1, 1), join, dtype=torch.float64)
    lexical = torch.tensor([[a, b]], dtype=torch.float64)
    rows = [[{"a": 0, "b": 1}[w] for w in s.split()] for s in SENTENCES]
    words = torch.tensor([r + [0] * (4 - len(r)) for r in rows])
    lengths = torch.tensor([len(r) for r in rows])
    cky = inside(binary, lexical, words, root=0, lengths=lengths, semiring=LOG).total
    torch.testing.assert_close(log_p, cky.sum(), rtol=1e-13, atol=0)


def test_gradients_reach_the_rule_and_lexicon_weights():
    m = weighted()
    m.lm.log_prob({"s": SENTENCES}, torch.tensor(0)).backward()
    # every derivation of n words joins n - 1 times and uses each word's entry once
    assert m.Bracket.rule_logits["join"].grad.item() == pytest.approx(2 + 0 + 3, abs=1e-12)
    torch.testing.assert_close(m.Bracket.entry_logits.grad, torch.tensor([4.0, 4.0], dtype=torch.float64))


def test_the_program_trains_the_deduction_weights():
    m = weighted()
    assert {id(p) for p in m.lm.parameters()} == {id(p) for p in m.Bracket.parameters()}
    optim = torch.optim.SGD(m.lm.parameters(), lr=0.01)
    before = m.Bracket.weight(["a", "b"]).item()
    optim.zero_grad()
    (-m.lm.log_prob({"s": SENTENCES}, torch.tensor(0))).backward()
    optim.step()
    assert m.Bracket.weight(["a", "b"]).item() > before


@pytest.mark.parametrize("data", [
    ["a b a", "b", "a a b b"],
    [["a", "b", "a"], ["b"], ["a", "a", "b", "b"]],
    ("a b a", ("b",), "a a b b"),
])
def test_sentences_as_strings_or_words(data):
    m = weighted()
    assert torch.equal(m.lm.log_prob({"s": data}, torch.tensor(0)),
                       m.lm.log_prob({"s": SENTENCES}, torch.tensor(0)))


def test_a_sentence_without_a_plate():
    m = loads(SOURCE.format(semiring="LogProb").replace("observe s : Sent <- Bracket", "observe s <- Bracket"))
    assert torch.equal(m.lm.log_prob({"s": ["a", "b"]}, torch.tensor(0)), m.Bracket.weight(["a", "b"]))


def test_bad_data_is_a_data_error():
    m = weighted()
    with pytest.raises(DataError, match="holds 3 sentences .* got 2"):
        m.lm.log_prob({"s": ["a b", "b"]}, torch.tensor(0))
    with pytest.raises(DataError, match="the word `c` is not in the lexicon of deduction `Bracket`"):
        m.lm.log_prob({"s": ["a b", "c", "a"]}, torch.tensor(0))
    with pytest.raises(DataError, match="takes sentences"):
        m.lm.log_prob({"s": 3}, torch.tensor(0))
    with pytest.raises(UnsupportedError, match="does not generate them; give `s` as data"):
        m.lm.sample(torch.tensor(0))


def test_a_deduction_that_is_not_a_log_probability_is_refused_at_its_line():
    with pytest.raises(QuiversTypeError, match=r"line 13, column 25: .* weighs them in `MAX_PLUS`"):
        module("Viterbi")


def test_sampling_from_a_deduction_is_refused_at_its_line():
    src = SOURCE.format(semiring="LogProb").replace("observe s : Sent", "sample s : Sent")
    with pytest.raises(UnsupportedError, match=r"line 13, column 24: .*can `observe s <- Bracket`, not sample"):
        loads(src)


def test_a_deduction_is_exported_like_a_program():
    m = module(tail="export Bracket\n")
    assert m.morphism is m.Bracket is m.deductions["Bracket"]


def test_exporting_an_object_says_what_export_takes():
    with pytest.raises(UnknownNameError, match="`export` takes a program, a morphism or a deduction; "
                       "programs: lm; deductions: Bracket"):
        module(tail="export Term\n")
