"""A cycle of ``#[learnable, bounded]`` unary rules in ``LogProb``: each such
rule weighs below ``1 / n`` (``n`` of them), so the sum over the infinitely
many derivations that go round the cycle is finite at every value of the
parameters, the initial ones included. The engine's closed form is checked
against derivations listed one by one (float64), through the sum over
derivations of height at most ``h``, which grows to it as ``h`` does."""

from __future__ import annotations

import math
from itertools import product

import pytest
import torch

from quivers.dsl import loads
from quivers.errors import InvalidValueError

MODAL = """
object Term : FinSet 8

deduction Modal : Term -> Term [semiring={semiring}, start=S, depth={depth}]
    atoms S, NP, VP, Box
    rule app : span(I, K, NP), span(K, J, VP) |- span(I, J, S) #[learnable]
    rule lift : span(I, J, A) |- span(I, J, Box(A)) #[learnable{mark}]
    rule drop : span(I, J, Box(A)) |- span(I, J, A) #[learnable{mark}]
    lexicon
        "kim" : NP #[learnable]
        "runs" : VP #[learnable]
        "runs" : Box(VP) #[learnable]
"""


def modal(semiring="LogProb", depth=2, bounded=True):
    return loads(MODAL.format(semiring=semiring, depth=depth, mark=", bounded" if bounded else "")).Modal


def depth(category):
    return 1 + depth(category[1]) if isinstance(category, tuple) else 0


def derivations(weights, lexicon, item, height, bound):
    """Every derivation of ``item = (i, j, category)`` of height at most
    ``height``, each as its weight (a product of floats), listed one by one
    from the rules of ``MODAL`` written out by hand."""
    if height < 0:
        return []
    i, j, category = item
    out = [w for (k, c), w in lexicon.items() if (k, k + 1) == (i, j) and c == category]
    if isinstance(category, tuple) and depth(category) <= bound:     # lift: A |- Box(A)
        out += [weights["lift"] * w for w in derivations(weights, lexicon, (i, j, category[1]), height - 1, bound)]
    boxed = ("Box", category)
    if depth(boxed) <= bound:                                        # drop: Box(A) |- A
        out += [weights["drop"] * w for w in derivations(weights, lexicon, (i, j, boxed), height - 1, bound)]
    if category == "S":                                              # app: NP, VP |- S
        for k in range(i + 1, j):
            left = derivations(weights, lexicon, (i, k, "NP"), height - 1, bound)
            right = derivations(weights, lexicon, (k, j, "VP"), height - 1, bound)
            out += [weights["app"] * a * b for a, b in product(left, right)]
    return out


def by_height(weights, lexicon, item, height, bound):
    """The same sum, by height, without listing the derivations."""
    memo = {}

    def go(item, h):
        if h < 0:
            return 0.0
        if (item, h) in memo:
            return memo[item, h]
        i, j, category = item
        total = sum(w for (k, c), w in lexicon.items() if (k, k + 1) == (i, j) and c == category)
        if isinstance(category, tuple) and depth(category) <= bound:
            total += weights["lift"] * go((i, j, category[1]), h - 1)
        if depth(("Box", category)) <= bound:
            total += weights["drop"] * go((i, j, ("Box", category)), h - 1)
        if category == "S":
            total += sum(weights["app"] * go((i, k, "NP"), h - 1) * go((k, j, "VP"), h - 1)
                         for k in range(i + 1, j))
        memo[item, h] = total
        return total

    return go(item, height)


def weights_of(d):
    rule = {r: float(w.detach().exp()) for r, w in d.rule_log_weights().items()}
    entries = d.entry_logits.detach().exp().tolist()
    lexicon = {(0, "NP"): entries[0], (1, "VP"): entries[1], (1, ("Box", "VP")): entries[2]}
    return rule, lexicon


@pytest.mark.parametrize("seed", [None, 0, 1])
def test_the_sum_round_a_bounded_cycle_is_the_limit_of_the_listed_derivations(seed):
    d = modal()
    if seed is not None:                       # initial parameters, and two random ones
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for p in d.parameters():
                p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64))
    rule, lexicon = weights_of(d)
    goal = (0, 2, "S")
    for h in range(8):
        listed = derivations(rule, lexicon, goal, h, bound=2)
        assert math.fsum(listed) == pytest.approx(by_height(rule, lexicon, goal, h, 2), rel=1e-12)
    assert len(derivations(rule, lexicon, goal, 7, bound=2)) > 100      # the cycle is taken, often
    # each trip round the cycle costs a factor below 1/4, so the tail past height 200 is nothing
    limit = by_height(rule, lexicon, goal, 200, 2)
    assert by_height(rule, lexicon, goal, 199, 2) == pytest.approx(limit, rel=1e-15)
    assert float(d.weight(["kim", "runs"]).detach()) == pytest.approx(math.log(limit), abs=1e-12)


def test_at_the_initial_weights_a_bounded_rule_weighs_a_quarter_and_never_more_than_a_half():
    d = modal()
    log_w = {r: w.detach() for r, w in d.rule_log_weights().items()}
    assert float(log_w["lift"]) == pytest.approx(math.log(0.25), abs=1e-15)
    assert float(log_w["app"]) == 0.0                       # not bounded: its parameter
    with torch.no_grad():
        d.rule_logits["lift"].fill_(-60.0)
        d.rule_logits["drop"].fill_(-60.0)
    assert all(float(w.detach()) <= math.log(0.5) for r, w in d.rule_log_weights().items() if r != "app")
    assert torch.isfinite(d.weight(["kim", "runs"]))       # the worst case still sums


def test_the_gradient_reaches_the_parameters_of_the_bounded_rules():
    d = modal()
    d.weight(["kim", "runs"]).backward()
    analytic = float(d.rule_logits["lift"].grad)
    step = 1e-6
    values = []
    for sign in (1, -1):
        with torch.no_grad():
            d.rule_logits["lift"].add_(sign * step)
            values.append(float(d.weight(["kim", "runs"])))
            d.rule_logits["lift"].sub_(sign * step)
    assert analytic == pytest.approx((values[0] - values[1]) / (2 * step), rel=1e-6)
    assert analytic != 0.0


def test_viterbi_and_boolean_parse_the_same_grammar():
    best = modal("Viterbi").best(["kim", "runs"])
    assert best is not None and best.item == ("span", 0, 2, "S")
    assert bool(modal("Boolean").weight(["kim", "runs"]))
    assert not bool(modal("Boolean").weight(["runs", "kim"]))
    assert float(modal("Viterbi").weight(["kim", "runs"]).detach()) <= float(modal().weight(["kim", "runs"]).detach())


def test_a_cycle_of_rules_not_marked_bounded_is_refused_with_the_remedy():
    d = modal(bounded=False)       # at log weights 0, `lift` then `drop` weighs one: the sum is infinite
    with pytest.raises(InvalidValueError, match=r"`drop`, `lift`.*infinite") as err:
        d.weight(["kim", "runs"])
    assert "#[learnable, bounded]" in str(err.value)
    with torch.no_grad():          # with log weights below zero the same grammar sums
        d.rule_logits["lift"].fill_(-1.0)
        d.rule_logits["drop"].fill_(-1.0)
    rule, lexicon = weights_of(d)
    limit = by_height(rule, lexicon, (0, 2, "S"), 200, 2)
    assert float(d.weight(["kim", "runs"]).detach()) == pytest.approx(math.log(limit), abs=1e-12)
