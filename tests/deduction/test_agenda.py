"""The agenda engine: agreement with the tensorized inside pass on random
grammars in every semiring, cyclic rules, depth bounds and errors."""

from __future__ import annotations

import time

import pytest
import torch
from hypothesis import given

from quivers.categories import BOOL, LOG, MAX_PLUS, PROB
from quivers.deduction import Rule, Var, deduce, inside, parse
from quivers.errors import InvalidValueError, QuiversTypeError, UnknownNameError, UnsupportedError
from tests.categories.strategies import assert_tensors_equal
from tests.deduction.strategies import SELECTIVE, grammars


def cnf_as_rules(g):
    n_cat = g.binary.shape[0]
    rules, weights = [], {}
    for a in range(n_cat):
        for b in range(n_cat):
            for c in range(n_cat):
                name = f"r{a}{b}{c}"
                rules.append(Rule(name, (b, c), a))
                weights[name] = g.binary[a, b, c]
    lexicon = {w: [(a, g.lexical[a, w]) for a in range(n_cat)] for w in range(g.lexical.shape[1])}
    start = {a: g.root[a] for a in range(n_cat)}
    return rules, weights, lexicon, start


@given(grammars(max_sentences=1))
def test_the_agenda_engine_agrees_with_the_tensorized_inside_pass(g):
    semiring = g.case.semiring
    rules, weights, lexicon, start = cnf_as_rules(g)
    (sentence,) = g.sentences
    agenda = parse(rules, lexicon, list(sentence), semiring, start=start, weights=weights)
    chart = inside(g.binary, g.lexical, torch.tensor([sentence]), root=g.root, semiring=semiring)
    assert_tensors_equal(g.case, agenda.total, chart.total[0])
    n = len(sentence)
    for s in range(n):
        for w in range(1, n - s + 1):
            for a in range(g.binary.shape[0]):
                assert_tensors_equal(g.case, agenda.derivations[("span", s, s + w, a)],
                                     chart.cells[0, s, w - 1, a])


@given(grammars(cases=SELECTIVE, max_sentences=1))
def test_the_best_agenda_derivation_attains_the_total(g):
    semiring = g.case.semiring
    rules, weights, lexicon, start = cnf_as_rules(g)
    (sentence,) = g.sentences
    result = parse(rules, lexicon, list(sentence), semiring, start=start, weights=weights)
    d, n = result.derivations, len(sentence)

    def weight(derivation):
        if derivation.rule is None:
            return d._axioms[derivation.item]
        out = weights[derivation.rule]
        for child in derivation.children:
            out = semiring.mul(out, weight(child))
        return out

    ends = [a for a in start if bool(semiring.mul(start[a], d[("span", 0, n, a)]) == result.total)]
    if bool(result.total == semiring.zero):
        return  # nothing to attain (in LUKASIEWICZ non-zero weights can multiply to zero)
    best = d.best(("span", 0, n, ends[0]))
    assert best.item == ("span", 0, n, ends[0])
    assert_tensors_equal(g.case, semiring.mul(start[ends[0]], weight(best)), result.total)


X, Y, Z = Var("X"), Var("Y"), Var("Z")
PATHS = [
    Rule("step", (("edge", X, Y),), ("path", X, Y)),
    Rule("join", (("path", X, Y), ("edge", Y, Z)), ("path", X, Z)),
]


def test_cycles_are_solved_in_idempotent_semirings_and_by_a_linear_system_in_others():
    edges = {("edge", "a", "b"): torch.tensor(-1.0), ("edge", "b", "a"): torch.tensor(-2.0),
             ("edge", "b", "c"): torch.tensor(-4.0)}
    best = deduce(PATHS, edges, MAX_PLUS)
    assert best[("path", "a", "c")] == -5.0
    assert best[("path", "a", "a")] == -3.0
    reach = deduce(PATHS, {k: torch.tensor(True) for k in edges}, BOOL)
    assert bool(reach[("path", "c", "a")]) is False and bool(reach[("path", "b", "b")])
    probs = {("edge", "a", "b"): torch.tensor(0.5, dtype=torch.float64),
             ("edge", "b", "a"): torch.tensor(0.5, dtype=torch.float64),
             ("edge", "b", "c"): torch.tensor(0.5, dtype=torch.float64)}
    # `join` uses one path and one edge: the cycle is linear, its sum a geometric series
    # a -> b, then any number of round trips b -> a -> b: 0.5 / (1 - 0.25)
    summed = deduce(PATHS, probs, PROB)
    torch.testing.assert_close(summed[("path", "a", "b")], torch.tensor(2 / 3, dtype=torch.float64))
    torch.testing.assert_close(summed[("path", "a", "c")], torch.tensor(1 / 3, dtype=torch.float64))
    logs = deduce(PATHS, {k: v.log() for k, v in probs.items()}, LOG)
    torch.testing.assert_close(logs[("path", "a", "c")], torch.tensor(1 / 3, dtype=torch.float64).log())
    with pytest.raises(InvalidValueError, match="converge"):
        deduce(PATHS, {k: -v for k, v in edges.items()}, MAX_PLUS)


def test_a_linear_cycle_matches_the_truncated_series_and_passes_gradients():
    # x -> y -> x with weights p and q: the weight of y is a p sum_k (pq)^k = a p / (1 - pq)
    p = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    q = torch.tensor(0.6, dtype=torch.float64, requires_grad=True)
    rules = [Rule("up", (("x", X),), ("y", X)), Rule("down", (("y", X),), ("x", X))]
    a = torch.tensor(2.0, dtype=torch.float64)
    y = deduce(rules, {("x", "0"): a}, PROB, weights={"up": p, "down": q})[("y", "0")]
    series = sum(a * p * (p * q) ** k for k in range(200))
    torch.testing.assert_close(y, series)
    (gp, gq) = torch.autograd.grad(y, (p, q))
    torch.testing.assert_close(gp, a / (1 - p * q) ** 2)
    torch.testing.assert_close(gq, a * p * p / (1 - p * q) ** 2)


def test_a_cycle_of_weight_one_is_refused_at_once_naming_its_rules():
    rules = [Rule("lift", (("x", X),), ("y", X)), Rule("lower", (("y", X),), ("x", X))]
    axioms = {("x", str(k)): torch.tensor(0.0) for k in range(30)}
    t0 = time.perf_counter()
    with pytest.raises(InvalidValueError, match=r"cycle of rules `lift`, `lower` whose weight is not below one"):
        deduce(rules, axioms, LOG)
    assert time.perf_counter() - t0 < 2.0   # it was a 10,000-round relaxation before
    with pytest.raises(InvalidValueError, match="infinite"):
        deduce(rules, {("x", "0"): torch.tensor(1.0)}, PROB, weights={"lift": torch.tensor(2.0)})


def test_a_cycle_through_two_items_of_itself_needs_a_tolerance():
    # `meet` uses two paths: no linear system sums it
    rules = [PATHS[0], Rule("meet", (("path", X, Y), ("path", Y, Z)), ("path", X, Z))]
    probs = {("edge", "a", "a"): torch.tensor(0.2, dtype=torch.float64)}
    with pytest.raises(UnsupportedError, match="rules `meet`.*a rule uses two items of the cycle"):
        deduce(rules, probs, PROB)
    # x = 0.2 + x^2, the least fixed point (1 - sqrt(1 - 0.8)) / 2
    x = deduce(rules, probs, PROB, tolerance=1e-13)[("path", "a", "a")]
    torch.testing.assert_close(x, torch.tensor((1 - 0.2 ** 0.5) / 2, dtype=torch.float64))


def test_free_conclusion_variables_range_over_atoms_and_depth_bounds_terms():
    rules = [Rule("intro", (), ("Fwd", X, X)), Rule("nest", (("Fwd", X, Y),), ("Fwd", ("Fwd", X, Y), Y))]
    d = deduce(rules, {}, BOOL, atoms=["S", "NP"], max_depth=2)
    assert ("Fwd", "S", "S") in d and ("Fwd", "NP", "NP") in d
    assert ("Fwd", ("Fwd", "S", "S"), "S") in d
    assert ("Fwd", ("Fwd", ("Fwd", "S", "S"), "S"), "S") not in d
    with pytest.raises(InvalidValueError, match="no atoms"):
        deduce(rules, {}, BOOL)


def test_agenda_weights_carry_gradients():
    w = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    rules = [Rule("s", ("NP", "VP"), "S")]
    lexicon = {"they": [("NP", torch.tensor(0.0, dtype=torch.float64))],
               "run": [("VP", w)]}
    total = parse(rules, lexicon, ["they", "run"], LOG, start="S",
                  weights={"s": torch.tensor(-1.0, dtype=torch.float64)}).total
    (grad,) = torch.autograd.grad(total, [w])
    assert float(total.detach()) == pytest.approx(-0.7) and float(grad) == 1.0


def test_bad_rules_axioms_and_words_raise_quivers_errors():
    with pytest.raises(UnknownNameError, match="`stpe`"):
        deduce(PATHS, {}, BOOL, weights={"stpe": torch.tensor(True)})
    with pytest.raises(QuiversTypeError, match="not a term"):
        deduce([Rule("bad", ([1, 2],), "x")], {}, BOOL)
    with pytest.raises(QuiversTypeError, match="ground"):
        deduce(PATHS, {("edge", X, "a"): torch.tensor(True)}, BOOL)
    with pytest.raises(UnknownNameError, match="`dgo`.*`dog`"):
        parse([], {"dog": [("N", torch.tensor(True))]}, ["dgo"], BOOL, start="N")
    with pytest.raises(InvalidValueError, match="max_depth"):
        deduce([Rule("grow", (X,), ("f", X))], {"a": torch.tensor(True)}, BOOL, max_items=50)
