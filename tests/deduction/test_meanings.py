"""Deductions whose items carry meanings, ``span(i, j, category, meaning)``,
with ``binders`` that make terms equal up to the names of bound variables,
and deductions without a start category used as provers over given axioms
(the shape of the peer's Montague grammar and syllogism prover)."""

from __future__ import annotations

import pytest
import torch

from quivers.categories import BOOL
from quivers.deduction import Deduction, Rule, Var
from quivers.dsl import loads
from quivers.dsl.parser import parse
from quivers.dsl.printer import dumps
from quivers.errors import QuiversTypeError, UnsupportedError

SEMANTICS = """
object Term : FinSet 4

deduction Sem : Term -> Term [semiring={semiring}, start=S, depth=8]
    atoms S, Name, Pred, Adv, Ap, span
    binders Fn
    rule pred : span(I, K, Name, X), span(K, J, Pred, P) |- span(I, J, S, Ap(P, X)) #[learnable]
    rule mod : span(I, K, Pred, P), span(K, J, Adv, M) |- span(I, J, Pred, Ap(M, P)) #[learnable]
    lexicon
        "Ann"    : Name = ann
        "Bo"     : Name = bo
        "naps"   : Pred = Fn(u, Ap(nap, u))        #[learnable]
        "dozes"  : Pred = Fn(v, Ap(nap, v))        #[learnable]
        "sleeps" : Pred = Fn(w, Ap(sleep, w))      #[learnable]
        "often"  : Adv  = Fn(f, Fn(y, Ap(often, Ap(f, y))))
        "Bo"     : Pred = Fn(z, Ap(be_bo, z))
        "naps"   : Pred = Fn(t, Ap(nap, t))        #[learnable]
"""


def sem(semiring="LogProb"):
    return loads(SEMANTICS.format(semiring=semiring)).Sem


def meanings(d, words):
    derived = d.derive(words)
    return {item[4] for item in d.goals(words, derived)}


def test_items_carry_meanings_built_by_the_rules():
    d = sem()
    assert meanings(d, ["Ann", "sleeps"]) == {("Ap", ("Fn", "$0", ("Ap", "sleep", "$0")), "ann")}
    assert meanings(d, ["Bo", "naps", "often"]) == {
        ("Ap", ("Ap", ("Fn", "$0", ("Fn", "$1", ("Ap", "often", ("Ap", "$0", "$1")))),
                ("Fn", "$0", ("Ap", "nap", "$0"))), "bo")
    }
    assert not meanings(d, ["sleeps", "Ann"])


def test_binders_make_meanings_equal_up_to_bound_names():
    d = sem("Counting")
    assert meanings(d, ["Ann", "naps"]) == meanings(d, ["Ann", "dozes"])
    # the two entries of "naps" differ only in the name they bind: one item, two derivations
    assert len(d.goals(["Ann", "naps"], d.derive(["Ann", "naps"]))) == 1
    assert int(d.weight(["Ann", "naps"])) == 2
    d = sem()
    with torch.no_grad():
        d.entry_logits[2].fill_(-1.0)   # the first "naps"
        d.entry_logits[7].fill_(-2.0)   # the second
    expected = torch.logaddexp(torch.tensor(-1.0), torch.tensor(-2.0)).double()
    torch.testing.assert_close(d.weight(["Ann", "naps"]), expected)


def test_a_sentence_weighs_the_sum_over_its_meanings():
    # "Bo" is a name and a predicate: "Bo Bo" has one reading, "Ann Bo" one, and
    # each extra word category adds a derivation with its own meaning
    d = sem("Counting")
    assert int(d.weight(["Ann", "Bo"])) == 1
    d = sem()
    with torch.no_grad():
        d.rule_logits["pred"].fill_(-0.5)
        d.entry_logits[4].fill_(-1.0)
    log_z = d.weight(["Ann", "sleeps"])
    torch.testing.assert_close(log_z, torch.tensor(-1.5, dtype=torch.float64))
    log_z.backward()
    assert float(d.rule_logits["pred"].grad) == 1.0


def test_the_best_meaning_in_viterbi():
    d = sem("Viterbi")
    best = d.best(["Ann", "naps", "often"])
    assert best.rule == "pred" and best.item[3] == "S"


PROVER = """
object Term : FinSet 4

deduction Chain : Term -> Term [semiring=Boolean]
    atoms Holds, Sub
    rule trans : Holds(Sub(A, B)), Holds(Sub(B, C)) |- Holds(Sub(A, C))
"""


def test_a_deduction_without_a_start_closes_given_axioms():
    chain = loads(PROVER).Chain
    closed = chain.close({("Holds", ("Sub", "wren", "bird")): 0.0,
                          ("Holds", ("Sub", "bird", "animal")): 0.0,
                          ("Holds", ("Sub", "animal", "thing")): 0.0})
    assert bool(closed[("Holds", ("Sub", "wren", "thing"))])
    assert not bool(closed[("Holds", ("Sub", "thing", "wren"))])
    with pytest.raises(UnsupportedError, match="`Chain` has no start category"):
        chain.weight(["wren"])


def test_close_weighs_axioms_as_log_weights():
    a, b, c = Var("A"), Var("B"), Var("C")
    rules = [Rule("trans", (("sub", a, b), ("sub", b, c)), ("sub", a, c))]
    d = Deduction("D", rules, [], start=None, learnable=["trans"])
    with torch.no_grad():
        d.rule_logits["trans"].fill_(-0.25)
    closed = d.close({("sub", "x", "y"): -1.0, ("sub", "y", "z"): torch.tensor(-2.0)})
    torch.testing.assert_close(closed[("sub", "x", "z")], torch.tensor(-3.25, dtype=torch.float64))
    assert Deduction("B", rules, [], start=None, semiring=BOOL).close(
        {("sub", "x", "y"): -float("inf"), ("sub", "y", "z"): 0.0})[("sub", "x", "z")].item() is False


def test_binders_and_meanings_print_back():
    tree = parse(SEMANTICS.format(semiring="LogProb"))
    text = dumps(tree)
    assert "    binders Fn\n" in text and '"often" : Adv = Fn(f, Fn(y, Ap(often, Ap(f, y))))' in text
    assert parse(text) == tree


@pytest.mark.parametrize("change, message, line", [
    ("    binders Fn\n", "    binders Fn\n    atoms Fn\n", 5),
])
def test_a_binder_declared_as_an_atom_is_a_located_error(change, message, line):
    text = SEMANTICS.format(semiring="LogProb").replace(change, message)
    with pytest.raises(QuiversTypeError, match="`Fn` is declared both in `atoms` and in `binders`") as info:
        loads(text)
    assert info.value.span.line == 4


def test_a_binder_needs_a_variable_and_a_body():
    text = SEMANTICS.format(semiring="LogProb").replace("Fn(u, Ap(nap, u))", "Fn(Ap(nap, u))")
    with pytest.raises(QuiversTypeError, match="the binder `Fn` takes a variable name, then its body") as info:
        loads(text)
    assert info.value.span.line == 12


def test_a_lexicon_without_a_start_is_a_located_error():
    text = SEMANTICS.format(semiring="LogProb").replace(", start=S", "")
    with pytest.raises(QuiversTypeError, match="has a lexicon but no start category") as info:
        loads(text)
    assert info.value.span.line == 4
