"""``#[bounded]``: the depth bound of a deduction applies to the rules it
names, so a rule that builds ever larger terms is cut while the others
derive freely (the peer's quantifier-scope grammar bounds its
continuation tower this way); a bounded learnable rule weighs below one
(tests/deduction/test_bounded_cycles.py)."""

from __future__ import annotations

import math

import pytest
import torch

from quivers.categories import PROB
from quivers.deduction import Deduction, Entry, Rule, Var, deduce
from quivers.dsl import loads
from quivers.errors import InvalidValueError, QVRSyntaxError, UnknownNameError

X = Var("X")
RULES = [Rule("raise", (("n", X),), ("n", ("s", X))), Rule("wrap", (("n", X),), ("m", ("w", X)))]
AXIOMS = {("n", "0"): torch.tensor(1.0)}


def test_the_depth_bound_applies_to_the_bounded_rules_only():
    every = set(deduce(RULES, AXIOMS, PROB, max_depth=3).items)
    only_raise = set(deduce(RULES, AXIOMS, PROB, max_depth=3, bounded=["raise"]).items)
    tower = [("n", "0"), ("n", ("s", "0")), ("n", ("s", ("s", "0")))]
    assert every == {*tower, ("m", ("w", "0")), ("m", ("w", ("s", "0")))}
    # `wrap` is not bounded: it wraps every item of the tower, the deepest one past the bound too
    assert only_raise == {*tower, *(("m", ("w", t[1])) for t in tower)}


def test_an_unbounded_tower_is_a_clear_error():
    with pytest.raises(InvalidValueError, match="derived more than 50 items"):
        deduce(RULES, AXIOMS, PROB, max_depth=3, bounded=["wrap"], max_items=50)
    with pytest.raises(UnknownNameError, match="no rule `rase` to bound"):
        deduce(RULES, AXIOMS, PROB, max_depth=3, bounded=["rase"])
    with pytest.raises(UnknownNameError, match="deduction `D` has no rule `rase` to bound"):
        Deduction("D", RULES, [Entry("a", "A")], start="A", bounded=["rase"])


SCOPE = """
object Term : FinSet 16

deduction QScope : Term -> Term [semiring={semiring}, start=S, depth=4, tolerance=1e-9]
    atoms S, NP, N, Fwd, Bwd, Cont, span, every, dog, barks
    rule fwd_app : span(I, K, Fwd(A, B)), span(K, J, B) |- span(I, J, A) #[learnable]
    rule bwd_app : span(I, K, B), span(K, J, Bwd(A, B)) |- span(I, J, A) #[learnable]
    rule fwd_app_cont : span(I, K, Cont(Fwd(A, B))), span(K, J, Cont(B)) |- span(I, J, Cont(A)) #[learnable]
    rule pure_cont : span(I, J, A) |- span(I, J, Cont(A)) #[learnable, bounded]
    rule scope_take : span(I, K, Cont(A)), span(K, J, Bwd(B, A)) |- span(I, J, Cont(B)) #[learnable]
    rule cont_elim : span(I, J, Cont(S)) |- span(I, J, S) #[learnable, bounded]
    lexicon
        "every" : Cont(Fwd(NP, N)) = every #[learnable]
        "dog"   : N                = dog   #[learnable]
        "barks" : Bwd(S, NP)       = barks #[learnable]
"""


def scope(semiring):
    return loads(SCOPE.format(semiring=semiring)).QScope


def test_the_quantifier_scope_grammar_loads_and_parses():
    d = scope("Boolean")
    assert d.bounded == ("pure_cont", "cont_elim")
    assert bool(d.weight(["every", "dog", "barks"]))
    assert not bool(d.weight(["dog", "every", "barks"]))
    best = scope("Viterbi").best(["every", "dog", "barks"])
    assert best is not None


def test_in_log_the_cycle_through_cont_sums_at_every_weight():
    # `pure_cont` and `cont_elim` are learnable and bounded: each weighs below 1/2, a quarter at
    # first. The one parse lifts "dog" (1/4) and lowers Cont(S) (1/4); every further trip
    # S -> Cont(S) -> S multiplies by 1/16, so the sum is (1/16) / (1 - 1/16) = 1/15
    d = scope("LogProb")
    assert float(d.weight(["every", "dog", "barks"]).detach()) == pytest.approx(-math.log(15), abs=1e-12)
    with torch.no_grad():
        d.rule_logits["pure_cont"].fill_(-1.0)
        d.rule_logits["cont_elim"].fill_(3.0)
    log_z = d.weight(["every", "dog", "barks"])
    viterbi = scope("Viterbi")
    viterbi.load_state_dict(d.state_dict())
    best = viterbi.weight(["every", "dog", "barks"])
    assert torch.isfinite(log_z) and best <= log_z     # the best derivation is one of those summed


def test_bounded_is_for_rules_not_lexicon_entries():
    bad = SCOPE.format(semiring="LogProb").replace('= dog   #[learnable]', '= dog   #[bounded]')
    with pytest.raises(QVRSyntaxError, match="unknown annotation `bounded` in `#\\[bounded\\]` on a lexicon entry"):
        loads(bad)
