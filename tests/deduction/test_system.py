"""Deduction systems from Python: rules over spans, learnable weights in
each semiring, and the errors of a malformed system."""

from __future__ import annotations

import math

import pytest
import torch

from quivers.categories import BOOL, GODEL, LOG, MAX_PLUS, MIN_PLUS, PROB
from quivers.deduction import Deduction, Entry, Rule, Var
from quivers.errors import DataError, InvalidValueError, QuiversTypeError, UnknownNameError

I, J, K, X = Var("I"), Var("J"), Var("K"), Var("X")
PAIR = Rule("pair", (("span", I, K, X), ("span", K, J, X)), ("span", I, J, X))


def system(semiring, learn=True):
    lexicon = [Entry("a", "A", learnable=learn), Entry("a", "B", learnable=learn)]
    return Deduction("D", [PAIR], lexicon, start="A", semiring=semiring,
                     learnable=["pair"] if learn else [])


# how a derivation of log weight `w` counts, and how two of them add, in each semiring
AS = {LOG: (lambda w: w, lambda a, b: math.log(math.exp(a) + math.exp(b))),
      PROB: (math.exp, lambda a, b: a + b),
      MAX_PLUS: (lambda w: w, max),
      MIN_PLUS: (lambda w: -w, min)}


@pytest.mark.parametrize("semiring", list(AS), ids=str)
def test_learnable_log_weights_enter_each_semiring(semiring):
    d = system(semiring)
    with torch.no_grad():
        d.rule_logits["pair"].fill_(math.log(0.5))
        d.entry_logits.copy_(torch.tensor([math.log(0.25), math.log(0.75)]))
    weight, add = AS[semiring]
    # "a": the entry for A alone; "a a a": two bracketings, each with two
    # uses of `pair` and three entries for A
    assert float(d.weight(["a"]).detach()) == pytest.approx(weight(math.log(0.25)))
    parse = weight(2 * math.log(0.5) + 3 * math.log(0.25))
    assert float(d.weight(["a", "a", "a"]).detach()) == pytest.approx(add(parse, parse))


def test_boolean_systems_recognize_and_fixed_weights_are_one():
    d = system(BOOL, learn=False)
    assert bool(d.weight(["a", "a"])) and list(d.parameters())[0].numel() == 2
    assert int(system(PROB, learn=False).weight(["a"] * 4)) == 5


def test_malformed_systems_raise_quivers_errors():
    with pytest.raises(InvalidValueError, match="two rules named `pair`"):
        Deduction("D", [PAIR, PAIR], [], start="A")
    with pytest.raises(UnknownNameError, match="no rule `pari`.*`pair`"):
        Deduction("D", [PAIR], [], start="A", learnable=["pari"])
    with pytest.raises(QuiversTypeError, match="learnable weights, which `GODEL`"):
        Deduction("D", [PAIR], [Entry("a", "A", learnable=True)], start="A", semiring=GODEL)
    with pytest.raises(DataError, match="non-empty sequence of words"):
        system(LOG).weight([])
    with pytest.raises(DataError, match="non-empty sequence of words"):
        system(LOG).weight("a a")
    with pytest.raises(UnknownNameError, match="`b` is not in the lexicon"):
        system(LOG).weight(["a", "b"])
