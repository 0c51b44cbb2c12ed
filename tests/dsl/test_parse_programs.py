"""``let chart = parse(D, sentence)`` and ``score name = chart.goal_weight()``
in a program (the peer's form of calling a deduction): the sentence is data
the caller gives, the score adds each sentence's log weight under ``D`` to
the program's log density, and the program returns it like any value."""

from __future__ import annotations

import pytest
import torch

from quivers.dsl import loads
from quivers.dsl.format import format_source
from quivers.dsl.parser import parse
from quivers.dsl.printer import dumps
from quivers.errors import DataError, QuiversTypeError, UnknownNameError, UnsupportedError

SOURCE = """
object Tok : FinSet 6
object LogW : Real 1

deduction Chain : Tok -> Tok [semiring={semiring}, start=Q]
    atoms Q, A, B, span
    rule grow : span(I, K, Q), span(K, J, B) |- span(I, J, Q) #[learnable]
    rule seed : span(I, J, A) |- span(I, J, Q) #[learnable]
    lexicon
        "x" : A #[learnable]
        "y" : B #[learnable]
        "y" : A

program evidence : Tok -> LogW
    let chart = parse(Chain, words)
    score log_z = chart.goal_weight()
    return log_z
"""


def module(semiring="LogProb", source=SOURCE):
    m = loads(source.format(semiring=semiring))
    with torch.no_grad():
        m.Chain.rule_logits["grow"].fill_(-0.5)
        m.Chain.rule_logits["seed"].fill_(-0.25)
        m.Chain.entry_logits.copy_(torch.tensor([-1.0, -2.0, 0.0], dtype=torch.float64))
    return m


def test_the_score_is_the_log_weight_of_the_sentence():
    m = module()
    log_p = m.evidence.log_prob({"words": "x y y"}, torch.tensor(0))
    # one derivation: seed(x) then grow twice, each y read as B
    expected = torch.tensor(-0.25 - 1.0 + 2 * (-0.5 - 2.0), dtype=torch.float64)
    torch.testing.assert_close(log_p, expected)
    assert torch.equal(log_p, m.Chain.weight(["x", "y", "y"]))
    # "y" alone is A, seeded: its own log weight, returned as the program's value
    value, score = m.evidence.run(torch.tensor(0), {"words": ["y"]})
    torch.testing.assert_close(value, torch.tensor([-0.25], dtype=torch.float64))
    assert torch.equal(score, value.sum())


def test_several_sentences_add_their_scores_and_gradients_reach_the_deduction():
    m = module()
    sentences = ["x y", "y y y", "x"]
    log_p = m.evidence.log_prob({"words": sentences}, torch.tensor(0))
    assert torch.allclose(log_p, sum(m.Chain.weight(s.split()) for s in sentences))
    log_p.backward()
    # `grow` is used once per word after the first: 1 + 2 + 0
    assert float(m.Chain.rule_logits["grow"].grad) == 3.0
    assert {id(p) for p in m.Chain.parameters()} <= {id(p) for p in m.evidence.parameters()}


def test_in_viterbi_the_score_is_the_best_derivation():
    m = module("Viterbi")
    best = m.evidence.log_prob({"words": "x y"}, torch.tensor(0))
    assert torch.equal(best, m.Chain.weight(["x", "y"]))


def test_the_parse_form_prints_back_and_formats():
    text = SOURCE.format(semiring="LogProb")
    tree = parse(text)
    assert "    let chart = parse(Chain, words)\n    score log_z = chart.goal_weight()\n" in dumps(tree)
    assert parse(dumps(tree)) == tree
    assert parse(format_source(text)) == tree


def test_a_missing_sentence_is_a_data_error():
    m = module()
    with pytest.raises(DataError, match="program `evidence` needs `words` as data"):
        m.evidence.log_prob({}, torch.tensor(0))
    with pytest.raises(DataError, match="the word `z` is not in the lexicon of deduction `Chain`"):
        m.evidence.log_prob({"words": "x z"}, torch.tensor(0))


@pytest.mark.parametrize("old, new, error, message, line", [
    ("parse(Chain, words)", "parse(Tok, words)", UnknownNameError, "`Tok` is not a deduction", 15),
    ("parse(Chain, words)", "parse(Chain)", QuiversTypeError, "`parse` takes a deduction and the name", 15),
    ("chart.goal_weight()", "chart.goal_weigth()", UnknownNameError, "one method, `goal_weight\\(\\)`", 16),
    ("semiring={semiring}", "semiring=Counting", QuiversTypeError, "weighs them in `PROB`", 15),
])
def test_bad_parses_are_located_errors(old, new, error, message, line):
    source = SOURCE.replace(old, new)
    with pytest.raises(error, match=message) as info:
        loads(source.format(semiring="LogProb"))
    assert info.value.span.line == line


def test_a_method_outside_a_parsing_program_is_a_located_error():
    text = "object A : FinSet 2\n\nprogram p : A -> A\n    let w = v.goal_weight()\n    return w\n"
    with pytest.raises(UnsupportedError, match="a method of the chart of a deduction") as info:
        loads(text)
    assert info.value.span.line == 4


def test_parsing_with_a_prover_is_a_located_error():
    prover = "deduction P : Tok -> Tok [semiring=LogProb]\n    atoms H\n    rule r : H(X) |- H(X)\n"
    source = SOURCE.replace("program evidence", prover + "\nprogram evidence").replace("parse(Chain,", "parse(P,")
    with pytest.raises(UnsupportedError, match="deduction `P` has no start category, so it parses no sentence") as info:
        loads(source.format(semiring="LogProb"))
    assert info.value.span.line == 19
