"""The tensorized inside pass, Viterbi parses, expected counts and posterior
draws against brute-force enumeration of every derivation (float64)."""

from __future__ import annotations

import math
from collections import Counter

import pytest
import torch
from hypothesis import given

from quivers.categories import BOOL, MAX_PLUS, PROB
from quivers.deduction import (
    expected_counts,
    inside,
    outside,
    sample,
    span_posteriors,
    sparse_inside,
    tree_weight,
    viterbi,
)
from quivers.errors import DataError, QuiversTypeError, ShapeError, UnsupportedError
from tests.categories.strategies import assert_tensors_equal
from tests.deduction.strategies import (
    CNF,
    LOG_CASE,
    SELECTIVE,
    enumerate_total,
    enumerate_weights,
    grammars,
    relabel,
)


@given(grammars())
def test_inside_equals_the_sum_over_every_derivation(g):
    words, lengths = g.padded()
    chart = inside(g.binary, g.lexical, words, root=g.root, lengths=lengths, semiring=g.case.semiring)
    expected = torch.stack([enumerate_total(g, s) for s in g.sentences])
    assert_tensors_equal(g.case, chart.total, expected)


@given(grammars())
def test_the_rule_list_pass_equals_the_sum_over_every_derivation(g):
    words, lengths = g.padded()
    n = g.binary.shape[0]
    rules = torch.cartesian_prod(torch.arange(n), torch.arange(n), torch.arange(n))
    weights = g.binary.reshape(-1)
    chart = sparse_inside(rules, weights, g.lexical, words, root=g.root, lengths=lengths, semiring=g.case.semiring)
    expected = torch.stack([enumerate_total(g, s) for s in g.sentences])
    assert_tensors_equal(g.case, chart.total, expected)


@given(grammars(max_sentences=1))
def test_every_cell_is_the_sum_over_the_derivations_of_its_span(g):
    # a cell is the total of its own words with the root at that category
    (sentence,) = g.sentences
    semiring = g.case.semiring
    cells = inside(g.binary, g.lexical, torch.tensor([sentence]), root=g.root, semiring=semiring).cells
    n_cat = g.binary.shape[0]
    for s in range(len(sentence)):
        for w in range(1, len(sentence) - s + 1):
            for a in range(n_cat):
                at_a = torch.full((n_cat,), semiring.zero, dtype=g.root.dtype)
                at_a[a] = semiring.one
                expected = enumerate_total(g, sentence[s : s + w], root=at_a)
                assert_tensors_equal(g.case, cells[0, s, w - 1, a], expected)


@given(grammars(cases=SELECTIVE))
def test_viterbi_is_the_best_enumerated_parse(g):
    semiring = g.case.semiring
    words, lengths = g.padded()
    best = viterbi(g.binary, g.lexical, words, root=g.root, lengths=lengths, semiring=semiring)
    expected = torch.stack([enumerate_total(g, s) for s in g.sentences])
    assert_tensors_equal(g.case, best.score, expected)
    for sentence, score, tree in zip(g.sentences, best.score, best.trees):
        if tree is None:
            assert score == semiring.zero
            continue
        assert (tree.start, tree.end) == (0, len(sentence))
        weight = tree_weight(tree, g.binary, g.lexical, sentence, root=g.root, semiring=semiring)
        assert_tensors_equal(g.case, weight, score)


@given(grammars(cases=(LOG_CASE,)))
def test_expected_counts_are_the_gradient_of_the_enumerated_log_partition(g):
    words, lengths = g.padded()
    counts = expected_counts(g.binary, g.lexical, words, root=g.root, lengths=lengths)
    binary, lexical, root = (t.clone().requires_grad_(True) for t in (g.binary, g.lexical, g.root))
    totals = torch.stack([
        enumerate_total(g, s, binary=binary, lexical=lexical, root=root) for s in g.sentences
    ])
    finite = totals[totals > -math.inf]
    expected = torch.autograd.grad(finite.sum(), [binary, lexical, root], allow_unused=True,
                                   materialize_grads=True)
    for actual, wanted in zip(counts[:3], expected):
        torch.testing.assert_close(actual, wanted)


def test_expected_counts_equal_finite_differences():
    gen = torch.Generator().manual_seed(1)
    binary = torch.randn(3, 3, 3, generator=gen, dtype=torch.float64)
    lexical = torch.randn(3, 4, generator=gen, dtype=torch.float64)
    root = torch.randn(3, generator=gen, dtype=torch.float64)
    words = torch.tensor([[0, 3, 1, 2, 2], [1, 1, 0, 3, 0]])
    lengths = torch.tensor([5, 3])
    counts = expected_counts(binary, lexical, words, root=root, lengths=lengths)

    def log_z(b, lx, r):
        return inside(b, lx, words, root=r, lengths=lengths).total.sum()

    eps = 1e-6
    for tensor, grad, which in ((binary, counts.binary, 0), (lexical, counts.lexical, 1), (root, counts.root, 2)):
        for flat in range(tensor.numel()):
            bump = torch.zeros_like(tensor).view(-1)
            bump[flat] = eps
            bump = bump.view(tensor.shape)
            args_up = [binary, lexical, root]
            args_dn = [binary, lexical, root]
            args_up[which] = tensor + bump
            args_dn[which] = tensor - bump
            numeric = (log_z(*args_up) - log_z(*args_dn)) / (2 * eps)
            torch.testing.assert_close(grad.reshape(-1)[flat], numeric, rtol=1e-6, atol=1e-7)


def test_span_posteriors_sum_to_one_over_categories_at_each_word_and_outside_agrees():
    gen = torch.Generator().manual_seed(2)
    binary = torch.randn(3, 3, 3, generator=gen, dtype=torch.float64)
    lexical = torch.randn(3, 2, generator=gen, dtype=torch.float64)
    words = torch.tensor([[0, 1, 1, 0]])
    posterior = span_posteriors(binary, lexical, words)
    torch.testing.assert_close(posterior[0, :, 0].sum(-1), torch.ones(4, dtype=torch.float64))
    torch.testing.assert_close(posterior[0, 0, 3].sum(), torch.tensor(1.0, dtype=torch.float64))
    chart, out = outside(binary, lexical, words)
    recovered = (chart.cells + out - chart.total[:, None, None, None]).exp()
    torch.testing.assert_close(recovered[0, :, 0], posterior[0, :, 0])


def test_padded_batches_equal_sentences_one_by_one():
    gen = torch.Generator().manual_seed(3)
    binary = torch.randn(4, 4, 4, generator=gen, dtype=torch.float64)
    lexical = torch.randn(4, 5, generator=gen, dtype=torch.float64)
    sentences = [[0, 1, 2, 3, 4, 0, 1], [4, 4], [2, 0, 1, 3]]
    words = torch.tensor([s + [0] * (7 - len(s)) for s in sentences])
    batched = inside(binary, lexical, words, lengths=[len(s) for s in sentences]).total
    alone = torch.cat([inside(binary, lexical, torch.tensor([s])).total for s in sentences])
    torch.testing.assert_close(batched, alone)


def test_draws_follow_the_posterior_over_parses():
    gen = torch.Generator().manual_seed(0)
    binary = torch.randn(2, 2, 2, generator=gen, dtype=torch.float64)
    lexical = torch.randn(2, 1, generator=gen, dtype=torch.float64)
    root = torch.randn(2, generator=gen, dtype=torch.float64)
    sentence = (0, 0, 0)
    g = CNF(LOG_CASE, binary, lexical, root, (sentence,))
    posterior = {}
    total = enumerate_total(g, sentence)
    for shape, labels, weights in enumerate_weights(g, sentence):
        for row, w in zip(labels.tolist(), weights):
            posterior[relabel(shape, row)] = float((w - total).exp())
    draws = 4000
    words = torch.tensor([sentence] * draws)
    counts = Counter(sample(binary, lexical, words, root=root, generator=gen))
    assert set(counts) <= set(posterior)
    tv = 0.5 * sum(abs(counts[t] / draws - p) for t, p in posterior.items())
    assert tv < 0.05, tv


def test_bad_grammars_and_words_raise_quivers_errors():
    binary, lexical = torch.zeros(2, 2, 2), torch.zeros(2, 3)
    with pytest.raises(ShapeError, match="`binary`"):
        inside(torch.zeros(2, 2), lexical, torch.tensor([0]))
    with pytest.raises(ShapeError, match="`lexical`"):
        inside(binary, torch.zeros(3, 3), torch.tensor([0]))
    with pytest.raises(DataError, match="word index `3`"):
        inside(binary, lexical, torch.tensor([0, 3]))
    with pytest.raises(DataError, match="`lengths`"):
        inside(binary, lexical, torch.tensor([[0, 1]]), lengths=[3])
    with pytest.raises(DataError, match="start symbol"):
        inside(binary, lexical, torch.tensor([0]), root=5)
    with pytest.raises(QuiversTypeError, match="integer tensor"):
        inside(binary, lexical, torch.tensor([0.0]))
    with pytest.raises(QuiversTypeError, match="torch.bool"):
        inside(binary, lexical, torch.tensor([0]), semiring=BOOL)
    with pytest.raises(UnsupportedError, match="select"):
        viterbi(binary, lexical, torch.tensor([0]), semiring=PROB)


def test_viterbi_in_max_plus_matches_the_gradient_argmax():
    # the subgradient of the max-plus total marks exactly the Viterbi tree's cells
    gen = torch.Generator().manual_seed(5)
    binary = torch.randn(3, 3, 3, generator=gen, dtype=torch.float64)
    lexical = torch.randn(3, 3, generator=gen, dtype=torch.float64)
    words = torch.tensor([[0, 2, 1, 1, 2, 0]])
    marks = torch.zeros(1, 6, 6, 3, dtype=torch.float64, requires_grad=True)
    total = inside(binary, lexical, words, semiring=MAX_PLUS, span_weights=marks).total
    (grad,) = torch.autograd.grad(total.sum(), [marks])
    tree = viterbi(binary, lexical, words).trees[0]
    expected = torch.zeros_like(grad)
    for node in tree.nodes():
        expected[0, node.start, node.end - node.start - 1, node.label] = 1.0
    assert torch.equal(grad, expected)


def test_long_sentences_in_float32_keep_their_precision():
    # Span weights fall with width, so the best split for the left part is the
    # worst for the right: shifted products underflow unless each split is
    # balanced. The float32 pass must match float64.
    gen = torch.Generator().manual_seed(4)
    binary = torch.randn(5, 5, 5, generator=gen, dtype=torch.float64).log_softmax(0)
    lexical = torch.randn(5, 50, generator=gen, dtype=torch.float64).log_softmax(1) - 3.0
    words = torch.randint(0, 50, (2, 40), generator=gen)
    exact = inside(binary, lexical, words).total
    single = inside(binary.float(), lexical.float(), words).total
    assert torch.isfinite(single).all()
    torch.testing.assert_close(single.double(), exact, rtol=1e-5, atol=1e-3)
