"""One checking path (issue 15): a rule the IR checks is not checked again
by the DSL checker. For each such rule, ``check`` (scope, order, syntax)
accepts the module, and building it raises the IR's error placed on the
QVR text at fault: the part of the step the rule is about (a ``via``, a
prior, an ``until``), or the step, or the composite expression."""

from __future__ import annotations

import pytest

from quivers.dsl import check, loads, parse
from quivers.errors import CompositionError, EffectError, QuiversTypeError, ShapeError

HEAD = "object Item : FinSet 3\nobject K : FinSet 2\nobject G : FinSet 2\nobject S : FinSet 2\nobject T : FinSet 3\n"


def body(*lines: str, header: str = "program p : Item -> Item") -> str:
    return HEAD + header + "\n" + "".join("    " + ln + "\n" for ln in lines)


CASES = [
    pytest.param(
        body("marginalize z : K <- Normal(0.0, 1.0)", "    observe y : Item <- Normal(z, 1.0)"),
        QuiversTypeError, "needs a Categorical prior", (7, 26), id="categorical-prior",
    ),
    pytest.param(
        body("sample w : K <- HalfNormal(1.0)", "marginalize z : K <- Categorical(w)",
             "    observe y : Item <- Normal(z, 1.0)", "    return y"),
        QuiversTypeError, "`return` must be at the top level", (10, 9), id="return-in-block",
    ),
    pytest.param(
        body("sample w : K <- HalfNormal(1.0)", "sample A : K * K <- Dirichlet(1.0)",
             "marginalize c : K <- Categorical(w)", "    marginalize z : T -> K <- Markov(trans=A)",
             "        observe y : T <- Normal(z, 1.0)", header="program p : T -> T"),
        QuiversTypeError, "a chain must stand at the top level", (10, 9), id="chain-in-block",
    ),
    pytest.param(
        body("sample A : K * K <- Dirichlet(1.0)", "sample mu : K <- Normal(0.0, 1.0)",
             "marginalize z : S * T -> K <- Markov(trans=A) [until=mu]",
             "    observe y : S * T <- Normal(mu[z], 1.0)", header="program p : S * T -> S * T"),
        QuiversTypeError, "until=mu of markov `z` must name an index map `S -> T`", (9, 58), id="until",
    ),
    pytest.param(
        body("index g : Item -> G", "sample w : K <- HalfNormal(1.0)", "marginalize z : K <- Categorical(w)",
             "    observe y : Item <- Normal(z, 1.0) [via=g]"),
        QuiversTypeError, "no enclosing marginalize has [over=...]", (10, 49), id="via-without-over",
    ),
    pytest.param(
        body("let g = 1", "sample w : K <- HalfNormal(1.0)", "marginalize z : K <- Categorical(w) [over=G]",
             "    observe y : Item <- Normal(z, 1.0) [via=g]"),
        QuiversTypeError, "must be an index map or a sampled name, not a let", (10, 49), id="via-names-a-let",
    ),
    pytest.param(
        body("index g : Item -> K", "sample w : K <- HalfNormal(1.0)", "marginalize z : K <- Categorical(w) [over=G]",
             "    observe y : Item <- Normal(z, 1.0) [via=g]"),
        ShapeError, "index map `g` maps into `K`, but the block of `y` groups over `G`", (10, 49), id="via-codomain",
    ),
    pytest.param(
        body("sample w : K <- HalfNormal(1.0)", "marginalize z : K <- Categorical(w)",
             "    observe y : Item <- Normal(z, 1.0)", header="program p : Item -> Item [effects=[Sample, Score]]"),
        EffectError, "declares effects [Sample, Score] but has Marginal", (8, 5), id="effects",
    ),
    pytest.param(
        HEAD + "program f(a) : K -> G\n    sample b <- Bernoulli(0.2 + 0.6 * a)\n    return b\n"
        "program h = f >> f\n",
        CompositionError, "the codomain `G` of `f` is not the domain `K` of `f`", (9, 13), id="composite-domains",
    ),
]


@pytest.mark.parametrize(("text", "error", "message", "place"), CASES)
def test_the_ir_checks_the_rule_and_places_it_in_the_source(text, error, message, place):
    check(parse(text), text)  # scope, order and syntax are fine: the checker has nothing to say
    with pytest.raises(error) as info:
        loads(text)
    err = info.value
    assert type(err) is error
    assert message in err.message
    assert (err.span.line, err.span.column) == place
