"""Chart parsers from rule schemas: instances, splicing, and the inside
weight against an enumeration of every derivation, in float64."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from quivers.categories import BOOL, LOG, MAX_PLUS, PROB
from quivers.deduction import Bundle, ChartParser, Schema, Var, free_residuated, splice
from quivers.deduction.cky import unary_closure
from quivers.errors import InvalidValueError, QuiversTypeError, UnknownNameError

X, Y = Var("X"), Var("Y")
FWD = Schema("fwd_app", (("Fwd", X, Y), Y), X)
BWD = Schema("bwd_app", (Y, ("Bwd", X, Y)), X)
PERM = Schema("perm", (("Fwd", X, Y),), ("Bwd", X, Y))
LIFT = Schema("lift", (X,), ("Fwd", "S", ("Bwd", "S", X)))


def test_free_residuated_counts_and_depth():
    cats = free_residuated(["A", "B"], 1)
    assert len(cats) == 2 + 2 * 4
    assert ("Fwd", "A", "B") in cats and ("Bwd", "B", "A") in cats
    assert len(free_residuated(["A"], 0)) == 1
    # depth 2 over one atom: A, A/A, A\A, then both slashes over pairs with a depth-1 side
    assert len(free_residuated(["A"], 2)) == 3 + 2 * (9 - 1)
    with pytest.raises(InvalidValueError):
        free_residuated(["A"], -1)


def test_instances_are_the_ground_rules_inside_the_inventory():
    cats = free_residuated(["A", "B"], 1)
    got = {(p, c) for p, c in FWD.instances(cats)}
    want = {((("Fwd", x, y), y), x) for x in "AB" for y in "AB"}
    assert got == want
    assert {(p, c) for p, c in PERM.instances(cats)} == {((("Fwd", x, y),), ("Bwd", x, y)) for x in "AB" for y in "AB"}
    # the conclusion of `lift` over an atom is two slashes deep: no instance at depth 1
    assert LIFT.instances(free_residuated(["S", "NP"], 1)) == []
    # at depth 2 only an atom fits under the two slashes
    assert [c for _, c in LIFT.instances(free_residuated(["S", "NP"], 2))] == [
        ("Fwd", "S", ("Bwd", "S", "S")), ("Fwd", "S", ("Bwd", "S", "NP"))]


def test_splicing_a_bundle_is_listing_its_members():
    nested = [Bundle("app", (FWD, Bundle("b", (BWD,)))), PERM]
    assert splice(nested) == [FWD, BWD, PERM]
    a = ChartParser(nested, ["a", "b"], "S", atoms=["S", "NP"])
    b = ChartParser([FWD, BWD, PERM], ["a", "b"], "S", atoms=["S", "NP"])
    assert a.binary_rules == b.binary_rules and a.unary_rules == b.unary_rules
    assert (a.n_rules, a.n_unary_rules) == (8, 4)


def test_the_documented_inventory_and_rule_counts():
    p = ChartParser([Bundle("lp", (FWD, BWD, PERM))], ["the", "dog", "cat", "sleeps"], "S",
                    atoms=["N", "NP", "S"], depth=1)
    assert (len(p.categories), p.n_rules, p.n_unary_rules) == (21, 18, 9)
    assert p.lexical.shape == (4, 21)


def _enumerate(p: ChartParser, sentence: list[int]) -> list[tuple[list[torch.Tensor], list[tuple[str, int]]]]:
    """Every derivation of the start category over the sentence: the log
    weights of its parts and which parameters they are, built by recursion
    over spans with no sharing."""
    binary = {}
    for k, (_, (b, c), a) in enumerate(p.binary_rules):
        binary.setdefault((b, c), []).append((a, k))
    unary = {}
    for k, (_, (b,), a) in enumerate(p.unary_rules):
        unary.setdefault(b, []).append((a, k))

    def close(found):
        out, frontier = list(found), list(found)
        while frontier:
            nxt = []
            for cat, weights, used in frontier:
                for a, k in unary.get(cat, ()):
                    nxt.append((a, weights + [p.unary_logits[k]], used + [("unary", k)]))
            out += nxt
            frontier = nxt
        return out

    def spans(i, j):
        if j == i + 1:
            w = sentence[i]
            return close([(c, [p.lexical[w, n]], [("lexical", w * len(p.categories) + n)])
                          for n, c in enumerate(p.categories)])
        found = []
        for k in range(i + 1, j):
            for (b, wb, ub), (c, wc, uc) in itertools.product(spans(i, k), spans(k, j)):
                for a, r in binary.get((b, c), ()):
                    found.append((a, wb + wc + [p.binary_logits[r]], ub + uc + [("binary", r)]))
        return close(found)

    return [(w, u) for c, w, u in spans(0, len(sentence)) if c == p.start]


def _fold(semiring, derivations):
    logs = torch.stack([torch.stack(w).sum() for w, _ in derivations]) if derivations else torch.empty(0)
    if semiring is LOG:
        return torch.logsumexp(logs, 0) if len(logs) else torch.tensor(-math.inf)
    if semiring is PROB:
        return logs.exp().sum()
    if semiring is MAX_PLUS:
        return logs.max() if len(logs) else torch.tensor(-math.inf)
    return torch.tensor(bool((logs > -math.inf).any()))


def _random_parser(seed: int, semiring, dense: bool | None = None) -> ChartParser:
    g = torch.Generator().manual_seed(seed)
    p = ChartParser([FWD, BWD, PERM], ["a", "b", "c"], "S", atoms=["S", "NP"], depth=1, semiring=semiring,
                    dense=dense)
    with torch.no_grad():
        for t in (p.lexical, p.binary_logits, p.unary_logits):
            t.copy_(torch.randn(t.shape, generator=g, dtype=torch.float64))
            t[torch.rand(t.shape, generator=g) < 0.3] = -math.inf
    return p


@settings(max_examples=16, deadline=None)
@given(seed=st.integers(0, 10_000), sentence=st.lists(st.integers(0, 2), min_size=1, max_size=4),
       semiring=st.sampled_from([LOG, PROB, MAX_PLUS, BOOL]), dense=st.booleans())
def test_inside_weight_is_the_sum_over_enumerated_derivations(seed, sentence, semiring, dense):
    p = _random_parser(seed, semiring, dense)
    got = p(torch.tensor(sentence))
    want = _fold(semiring, _enumerate(p, sentence))
    if semiring is BOOL:
        assert bool(got) == bool(want)
    else:
        torch.testing.assert_close(got.detach(), want.detach().to(got.dtype), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("dense", [True, False])
def test_viterbi_is_the_best_enumerated_derivation(dense):
    p = _random_parser(7, MAX_PLUS, dense)
    for sentence in ([0, 1], [2, 0, 1], [1, 1, 0, 2]):
        found = _enumerate(p, sentence)
        best = max(float(torch.stack(w).sum().detach()) for w, _ in found)
        assert float(p(torch.tensor(sentence)).detach()) == pytest.approx(best, rel=1e-12)


def test_the_sparse_pass_equals_the_dense_one_with_gradients():
    dense, sparse = _random_parser(5, LOG, True), _random_parser(5, LOG, False)
    words = torch.tensor([[0, 1, 2, 1, 0], [2, 2, 1, 0, 0]])
    a, b = dense(words, lengths=[5, 4]), sparse(words, lengths=[5, 4])
    torch.testing.assert_close(a, b)
    a.sum().backward()
    b.sum().backward()
    for x, y in ((dense.lexical, sparse.lexical), (dense.binary_logits, sparse.binary_logits),
                 (dense.unary_logits, sparse.unary_logits)):
        torch.testing.assert_close(x.grad, y.grad)


def test_gradient_of_the_log_weight_is_the_expected_rule_count():
    p = _random_parser(3, LOG)
    with torch.no_grad():
        p.lexical.clamp_(min=-3.0)
        p.binary_logits.clamp_(min=-3.0)
        p.unary_logits.clamp_(min=-3.0)
    sentence = [0, 2, 1]
    p(torch.tensor(sentence)).backward()
    found = _enumerate(p, sentence)
    logs = torch.stack([torch.stack(w).sum() for w, _ in found]).detach()
    post = torch.softmax(logs, 0)
    counts = torch.zeros(p.n_rules, dtype=torch.float64)
    for prob, (_, used) in zip(post, found):
        for kind, k in used:
            if kind == "binary":
                counts[k] += prob
    torch.testing.assert_close(p.binary_logits.grad, counts)


def test_instances_with_the_same_rule_add():
    twice = Schema("fwd_again", FWD.premises, FWD.conclusion)
    one = ChartParser([FWD], ["a", "b"], "S", atoms=["S"], depth=1, semiring=PROB)
    two = ChartParser([FWD, twice], ["a", "b"], "S", atoms=["S"], depth=1, semiring=PROB)
    with torch.no_grad():
        assert float(two(torch.tensor([0, 1]))) == 2 * float(one(torch.tensor([0, 1])))


def test_batched_sentences_match_one_at_a_time():
    p = _random_parser(11, LOG)
    words = torch.tensor([[0, 1, 2], [2, 1, 0]])
    batched = p(torch.stack([words[0], torch.tensor([2, 1, 0])]), lengths=[3, 2])
    torch.testing.assert_close(batched[1], p(torch.tensor([2, 1])))
    torch.testing.assert_close(batched[0], p(words[0]))


def test_unary_closure_sums_chains_and_refuses_cycles_that_add():
    u = torch.tensor([[0.0, 0.5, 0.0], [0.0, 0.0, 0.25], [0.0, 0.0, 0.0]], dtype=torch.float64)
    star = unary_closure(u, PROB)
    want = torch.eye(3, dtype=torch.float64) + u + u @ u
    torch.testing.assert_close(star, want)
    cycle = torch.tensor([[-math.inf, -1.0], [-2.0, -math.inf]], dtype=torch.float64)
    with pytest.raises(InvalidValueError, match="cycle"):
        unary_closure(cycle, LOG)
    torch.testing.assert_close(unary_closure(cycle, MAX_PLUS),
                               torch.tensor([[0.0, -1.0], [-2.0, 0.0]], dtype=torch.float64))
    with pytest.raises(InvalidValueError, match="exceeds one"):
        unary_closure(torch.tensor([[-math.inf, 1.0], [1.0, -math.inf]], dtype=torch.float64), MAX_PLUS)


def test_bad_input_is_a_quivers_error():
    with pytest.raises(InvalidValueError, match="has 3 premises"):
        Schema("three", (X, X, X), X)
    with pytest.raises(UnknownNameError, match="`Q`"):
        ChartParser([Schema("q", (("Fwd", X, "Q"), "Q"), X)], 2, "S", atoms=["S"])
    with pytest.raises(UnknownNameError, match="start category `T`"):
        ChartParser([FWD], 2, "T", atoms=["S"])
    with pytest.raises(InvalidValueError, match="no instance"):
        ChartParser([FWD], 2, "S", atoms=["S"], depth=0)
    with pytest.raises(InvalidValueError, match="given twice"):
        ChartParser([FWD, Bundle("b", (FWD,))], 2, "S", atoms=["S"])
    with pytest.raises(QuiversTypeError, match="schemas, bundles"):
        ChartParser(["fwd_app"], 2, "S", atoms=["S"])
    p = ChartParser([FWD], ["a"], "S", atoms=["S"])
    with pytest.raises(UnknownNameError, match="`zebra`"):
        p.weight(["a", "zebra"])


@pytest.mark.parametrize("semiring", [LOG, MAX_PLUS, BOOL])
def test_the_agenda_engine_agrees_with_the_chart(semiring):
    p = _random_parser(13, semiring)
    d = p.to_deduction()
    for sentence in (["a", "b"], ["c", "a", "b"], ["b", "b", "a", "c"]):
        got, want = d.weight(sentence), p.weight(sentence)
        if semiring is BOOL:
            assert bool(got) == bool(want)
        else:
            torch.testing.assert_close(got.detach(), want.detach())


def test_the_best_derivation_weighs_the_viterbi_score():
    p = _random_parser(17, MAX_PLUS)
    d = p.to_deduction()
    weights = {name: float(w.detach()) for name, w in d.rule_logits.items()}
    index = {t: i for i, t in enumerate(p.terminals)}
    parsed = 0
    for sentence in (["a", "c"], ["c", "a", "b"], ["b", "b", "a", "c"], ["a", "b"], ["c", "c"]):
        best, score = d.best(sentence), float(p.weight(sentence).detach())
        if score == -math.inf:
            assert best is None
            continue
        parsed += 1

        def weight(node):
            if node.rule is None:
                _, i, _, category = node.item
                return float(p.lexical[index[sentence[i]], p.categories.index(category)].detach())
            return weights[node.rule] + sum(weight(c) for c in node.children)

        assert best.item == ("span", 0, len(sentence), "S")
        assert weight(best) == pytest.approx(score, rel=1e-12)
    assert parsed >= 2
