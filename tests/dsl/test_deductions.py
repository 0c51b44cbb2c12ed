"""QVR `deduction` blocks: they parse, print back, compile into
:class:`quivers.deduction.Deduction` and agree with the tensorized parser;
malformed blocks give located errors."""

from __future__ import annotations

import math

import pytest
import torch

from quivers.deduction import Grammar, Production
from quivers.dsl import loads
from quivers.dsl.parser import parse
from quivers.dsl.printer import dumps
from quivers.errors import QuiversTypeError, QVRSyntaxError, UnknownNameError

PCFG = """
object Term : FinSet 8

# a PCFG as rules over spans; "quoted" words in a comment are still a comment
deduction Toy : Term -> Term [semiring=LogProb, start=S, depth=3]
    atoms S, NP, VP, Det, N, V, span
    rule s : span(I, K, NP), span(K, J, VP) |- span(I, J, S) #[learnable]
    rule np : span(I, K, Det), span(K, J, N) |- span(I, J, NP) #[learnable]
    rule vp : span(I, K, V), span(K, J, NP) |- span(I, J, VP) #[learnable]
    lexicon
        "a"     : Det = a     #[learnable]
        "one"   : Det = one   #[learnable]
        "bird"  : N   = bird  #[learnable]
        "fish"  : N   = fish  #[learnable]
        "eats"  : V   = eats  #[learnable]
        "sees"  : V   = sees  #[learnable]
        "birds" : NP  = birds #[learnable]
"""

CCG = """
object Term : FinSet 8

deduction CCG : Term -> Term [semiring={semiring}, start={start}, depth={depth}]
    atoms S, NP, N, Fwd, Bwd, span
    rule fwd_app : span(I, K, X/Y), span(K, J, Y) |- span(I, J, X){learn}
    rule bwd_app : span(I, K, Y), span(K, J, Y\\X) |- span(I, J, X){learn}
    rule fwd_comp : span(I, K, X/Y), span(K, J, Y/Z) |- span(I, J, X/Z){learn}
    rule bwd_comp : span(I, K, Z\\Y), span(K, J, Y\\X) |- span(I, J, Z\\X){learn}
    rule fwd_xcomp : span(I, K, X/Y), span(K, J, Z\\Y) |- span(I, J, Z\\X){learn}
    rule bwd_xcomp : span(I, K, Y/Z), span(K, J, Y\\X) |- span(I, J, X/Z){learn}
    lexicon
        "the" : NP/N
        "big" : N/N
        "cat" : N
        "Kim" : NP
        "Sandy" : NP
        "sees" : NP\\S/NP
        "quickly" : (NP\\S)\\(NP\\S)
"""


def ccg(semiring="Counting", depth=4, crossed=True, learn=False, start="S"):
    text = CCG.format(semiring=semiring, depth=depth, learn=" #[learnable]" if learn else "",
                      start=start)
    if not crossed:
        text = "\n".join(line for line in text.splitlines() if "xcomp" not in line)
    return loads(text).CCG


def test_a_pcfg_block_agrees_with_the_tensorized_inside_pass():
    toy = loads(PCFG).Toy
    grammar = Grammar([
        Production("S", ("NP", "VP")), Production("NP", ("Det", "N")), Production("VP", ("V", "NP")),
        *(Production(c, (w,)) for c, w in [("Det", "a"), ("Det", "one"), ("N", "bird"), ("N", "fish"),
                                           ("V", "eats"), ("V", "sees"), ("NP", "birds")]),
    ], start="S", normalize=False)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        logits = torch.randn(10, generator=gen, dtype=torch.float64)
        grammar.logits.copy_(logits)
        for name, value in zip(["s", "np", "vp"], logits[:3]):
            toy.rule_logits[name].copy_(value)
        toy.entry_logits.copy_(logits[3:])
    for sentence in (["birds", "eats", "a", "fish"], ["one", "bird", "sees", "birds"], ["birds", "birds"]):
        words, lengths = grammar.encode([sentence])
        torch.testing.assert_close(toy.weight(sentence), grammar.log_prob(words, lengths)[0])


def test_gradients_of_a_block_are_expected_rule_uses():
    # "the big cat" has two derivations: the (big cat), and (the big) cat by composition
    assert int(ccg(start="NP").weight(["the", "big", "cat"])) == 2
    learnable = ccg(semiring="LogProb", learn=True, start="NP")
    assert set(learnable.rule_logits) == {r.name for r in learnable.rules}
    total = learnable.weight(["the", "big", "cat"])
    torch.testing.assert_close(total.detach(), torch.tensor(math.log(2), dtype=torch.float64))
    total.backward()
    assert float(learnable.rule_logits["fwd_app"].grad) == pytest.approx(1.5)
    assert float(learnable.rule_logits["fwd_comp"].grad) == pytest.approx(0.5)


def test_ccg_application_composition_and_crossed_composition():
    d = ccg(semiring="Boolean")
    assert bool(d.weight(["Kim", "sees", "Sandy"]))
    assert not bool(d.weight(["sees", "Kim", "Sandy"]))
    # heavy shift: `sees quickly` is (NP\S)/NP only by backward crossed composition
    assert bool(d.weight(["Kim", "sees", "quickly", "Sandy"]))
    assert not bool(ccg(semiring="Boolean", crossed=False).weight(["Kim", "sees", "quickly", "Sandy"]))
    # the best derivation in Viterbi weighs one (log 0), the count is the number of derivations
    assert float(ccg(semiring="Viterbi", start="NP").weight(["the", "big", "cat"])) == 0.0


def test_depth_bounds_the_size_of_derived_categories():
    sentence = ["Kim", "sees", "quickly", "Sandy"]
    assert bool(ccg(semiring="Boolean", depth=2).weight(sentence))
    # the crossed composite (NP\S)/NP has depth 2
    assert not bool(ccg(semiring="Boolean", depth=1).weight(sentence))
    items = ccg(semiring="Boolean", depth=1).derive(sentence).items
    assert all(_category_depth(item[3]) <= 1 for item in items if item not in _axioms(sentence))


def _category_depth(term):
    return 1 + max(_category_depth(a) for a in term[1:]) if isinstance(term, tuple) else 0


def _axioms(sentence):
    lexicon = ccg().lexicon_weights()
    return {("span", i, i + 1, c) for i, w in enumerate(sentence) for c, _ in lexicon[w]}


def test_deduction_blocks_print_back_to_the_same_syntax():
    for text in (PCFG, CCG.format(semiring="LogProb", depth=4, learn=" #[learnable]", start="S")):
        tree = parse(text)
        assert parse(dumps(tree)) == tree
    assert "NP\\S/NP" in dumps(parse(CCG.format(semiring="LogProb", depth=4, learn="", start="S")))


BAD = [
    ("[semiring=LogPorb, start=S]", UnknownNameError, "unknown semiring `LogPorb`.*`LogProb`", 2),
    ("[semiring=LogProb, start=T]", UnknownNameError, "start category `T`", 2),
    ("[semiring=LogProb, start=S, depth=1.5]", QuiversTypeError, "whole number", 2),
    ("[semiring=LogProb, start=S, dept=2]", UnknownNameError, "unknown option `dept`", 2),
]


@pytest.mark.parametrize("options, error, message, line", BAD)
def test_bad_options_are_located_errors(options, error, message, line):
    text = f"object T : FinSet 2\ndeduction D : T -> T {options}\n    atoms S, span\n" \
           "    lexicon\n        \"a\" : S\n"
    with pytest.raises(error, match=message) as info:
        loads(text)
    assert info.value.span.line == line


BODIES = [
    ('    atoms S\n    lexicon\n        "a" : NP\n', UnknownNameError, "`NP` in the category of \"a\"", 6),
    ("    atoms S\n    rule r : spn(I, J, S) |- span(I, J, S)\n", QuiversTypeError,
     "`spn\\(...\\)` with 3 arguments", 5),
    ("    atoms S\n    rule r : span(I, J, S) |- span(I, J, S) #[learnabel]\n", QVRSyntaxError,
     "unknown annotation `learnabel`", 5),
    ("    atoms S\n    rule r : span(I, J, S) span(I, J, S)\n", QVRSyntaxError, "expected `,`.* or `\\|-`", 5),
    ('    atoms S\n    lexicon\n        "" : S\n', QVRSyntaxError, "a word between its quotes", 6),
]


@pytest.mark.parametrize("body, error, message, line", BODIES)
def test_malformed_bodies_are_located_errors(body, error, message, line):
    text = "object T : FinSet 2\n\ndeduction D : T -> T [start=S]\n" + body
    with pytest.raises(error, match=message) as info:
        loads(text)
    assert info.value.span.line == line


def test_signature_objects_and_names_are_checked():
    with pytest.raises(UnknownNameError, match="unknown object `Term`") as info:
        loads("deduction D : Term -> Term [start=S]\n    atoms S\n")
    assert info.value.span.line == 1
    with pytest.raises(QuiversTypeError, match="declared twice"):
        loads("object D : FinSet 2\ndeduction D : D -> D [start=S]\n    atoms S\n")


def test_deduction_words_are_still_names_outside_a_deduction():
    m = parse("object K : FinSet 2\nprogram p : K -> K\n    sample rule : K <- Normal(0.0, 1.0)\n"
              "    let atoms = rule\n    return atoms\n")
    assert [s.name for s in m.items[1].body[:2]] == ["rule", "atoms"]


def test_the_pygments_lexer_highlights_deduction_blocks():
    from pygments.token import Error, Name, String

    from quivers.dsl.lexer import QVRLexer

    tokens = list(QVRLexer().get_tokens(CCG.format(semiring="LogProb", depth=4, learn=" #[learnable]",
                                                   start="S")))
    assert (String, '"Kim"') in tokens and (Name.Decorator, "#[learnable]") in tokens
    assert not [t for t in tokens if t[0] is Error]


def test_the_best_derivation_of_a_sentence_names_its_rules():
    best = ccg(semiring="Viterbi").best(["Kim", "sees", "quickly", "Sandy"])
    rules = set()

    def walk(d):
        rules.add(d.rule)
        for c in d.children:
            walk(c)

    walk(best)
    assert best.item == ("span", 0, 4, "S") and "bwd_xcomp" in rules
    assert ccg(semiring="Viterbi").best(["sees", "Kim"]) is None


def test_formatting_keeps_words_with_hashes_annotations_and_comments():
    from quivers.dsl.format import format_source

    text = ('object T : FinSet 2\ndeduction D : T -> T [start=S]\n    atoms S\n'
            '    # the only rule\n    rule r : span(I, K, S), span(K, J, S) |- span(I, J, S) #[learnable]\n'
            '    lexicon\n        "#1" : S #[learnable]  # a word with a hash\n')
    out = format_source(text)
    assert parse(out) == parse(text) and format_source(out) == out
    assert out.index("# the only rule") < out.index("# a word with a hash") < out.index("deduction")
    assert '"#1" : S #[learnable]' in out and "|- span(I, J, S) #[learnable]" in out


def test_a_comment_between_two_deduction_blocks_stays_between_them():
    from quivers.dsl.format import format_source

    text = ('deduction A : A -> A\n    lexicon\n        "0" : A\n'
            'deduction B : A -> A\n    # c0\n    rule A : |- A\n')
    out = format_source(text)
    assert format_source(out) == out and out.index("# c0") > out.index('"0"')
