"""The peer's weighted type-logical grammar (the Lambek calculus with a
product: application and tensor introduction and projections over spans)
loads as written and parses what its page says it parses."""

from __future__ import annotations

import torch

from quivers.dsl import loads

LAMBEK = """
object Term : FinSet 16

deduction Lambek : Term -> Term [semiring={semiring}, start=S, depth=6]
    atoms S, NP, N, VP, PP, Fwd, Bwd, Tns, span, every, dog, barks
    rule right_app : span(I, K, Fwd(A, B)), span(K, J, B) |- span(I, J, A) #[learnable]
    rule left_app : span(I, K, B), span(K, J, Bwd(A, B)) |- span(I, J, A) #[learnable]
    rule tensor_intro : span(I, K, A), span(K, J, B) |- span(I, J, Tns(A, B)) #[learnable]
    rule tensor_left : span(I, J, Tns(A, B)) |- span(I, J, A) #[learnable]
    rule tensor_right : span(I, J, Tns(A, B)) |- span(I, J, B) #[learnable]
    lexicon
        "every" : Fwd(NP, N) = every #[learnable]
        "dog" : N = dog #[learnable]
        "barks" : Bwd(S, NP) = barks #[learnable]
"""


def lambek(semiring: str):
    return loads(LAMBEK.format(semiring=semiring)).Lambek


def test_every_dog_barks_has_one_derivation():
    d = lambek("Counting")
    # NP/N applied to N is the NP that S\\NP takes; products only project back to what they joined
    assert int(d.weight(["every", "dog", "barks"])) == 1
    assert int(d.weight(["dog", "every", "barks"])) == 0
    items = d.derive(["every", "dog"]).items
    assert ("span", 0, 2, ("Tns", ("Fwd", "NP", "N"), "N")) in items
    assert ("span", 0, 2, "NP") in items


def test_its_log_weight_is_the_sum_of_the_rules_it_uses():
    d = lambek("LogProb")
    with torch.no_grad():
        d.rule_logits["right_app"].fill_(-0.5)
        d.rule_logits["left_app"].fill_(-0.25)
    # the one derivation applies each rule once; the lexicon weighs 0
    assert d.weight(["every", "dog", "barks"]).item() == -0.75
