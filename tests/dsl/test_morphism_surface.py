"""QVR's `morphism` and `define`: the compiled module is the one the Python
combinators build, `qvr fmt` round-trips, and bad input is a located error."""

from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from quivers.categories import LOG, MAX_PLUS, PROB, FinSet, copy, delete
from quivers.dsl import ast, loads
from quivers.dsl.format import format_source
from quivers.dsl.parser import parse
from quivers.dsl.printer import dumps
from quivers.errors import CompositionError, QuiversError, UnknownNameError, UnsupportedError
from quivers.nn import dagger, fan, identity, latent, observed, repeat, scan, stack

F64 = torch.float64

HMM = """\
object State : FinSet 3
object Obs : FinSet 2
morphism initial : 1 -> State [role=latent]
morphism transition : State -> State [role=latent, scale=0.5]
morphism emission : State -> Obs [role=latent]
define marginal = initial >> repeat(transition) >> emission
define cell = emission.dagger @ transition >> copy(State).dagger
define likelihood = scan(cell, init=initial) >> delete(State)
let layers = stack(transition, 2) >> fan(emission, identity(State))
export likelihood
"""


def python_hmm():
    S, O = FinSet("State", 3), FinSet("Obs", 2)
    initial = latent(FinSet.unit(), S, 1.0, "initial")
    transition = latent(S, S, 0.5, "transition")
    emission = latent(S, O, 1.0, "emission")
    marginal = initial >> repeat(transition) >> emission
    cell = (dagger(emission) @ transition) >> dagger(observed(copy(S)))
    likelihood = scan(cell, init=initial) >> observed(delete(S))
    layers = stack(transition, 2) >> fan(emission, identity(S))
    return {"initial": initial, "transition": transition, "emission": emission, "marginal": marginal,
            "cell": cell, "likelihood": likelihood, "layers": layers}


def test_the_dsl_builds_what_the_python_api_builds():
    m = loads(HMM)
    py = python_hmm()
    assert list(m.morphisms) == list(py)
    for name, module in py.items():
        built = m[name]
        assert repr(built) == repr(module), name
        assert built.state_dict().keys() == module.state_dict().keys(), name
        module.load_state_dict(built.state_dict())
        for semiring in (PROB, LOG, MAX_PLUS):
            kw = {"n_steps": 3} if name in ("marginal", "likelihood") else {}
            a, b = built.as_morphism(semiring, F64, **kw), module.as_morphism(semiring, F64, **kw)
            assert (a.dom, a.cod) == (b.dom, b.cod)
            torch.testing.assert_close(a.tensor, b.tensor)
    # names share parameters: the likelihood's initial law is the declared one
    assert m.likelihood.parts[0].init is m.initial
    assert m.morphism is m.likelihood and m.exports == ("likelihood",)


def test_the_qvr_hmm_likelihood_is_exact():
    torch.manual_seed(0)
    m = loads(HMM)
    ys = torch.tensor([[0, 1, 1], [1, 1, 0]])
    got = m.likelihood.run(ys, LOG, dtype=F64)[:, 0]
    pi = m.initial.as_morphism(PROB, F64).tensor[0]
    T, E = m.transition.as_morphism(PROB, F64).tensor, m.emission.as_morphism(PROB, F64).tensor
    for row, y in zip(got, ys.tolist()):
        total = sum(
            pi[p[0]] * torch.prod(torch.stack([T[p[t], p[t + 1]] * E[p[t + 1], v] for t, v in enumerate(y)]))
            for p in itertools.product(range(3), repeat=len(y) + 1)
        )
        torch.testing.assert_close(row, total.log())


def test_a_module_of_morphisms_trains():
    torch.manual_seed(1)
    m = loads(HMM)
    ys = torch.tensor([[0, 0, 1, 1, 0, 0]] * 3)
    opt = torch.optim.Adam(m.likelihood.parameters(), lr=0.1)
    first = None
    for _ in range(40):
        opt.zero_grad()
        loss = -m.likelihood.run(ys, LOG).sum()
        loss.backward()
        opt.step()
        first = loss.item() if first is None else first
    assert loss.item() < first - 0.5


RNN = """\
object Token : FinSet 5
object Embedded : Real 3
object Hidden : Real 8
morphism tok_embed : Token -> Embedded [role=embed]
morphism cell : Embedded * Hidden -> Hidden [role=kernel, param_source=mlp, hidden=[16]] ~ Normal [scale=0.1]
morphism output_proj : Hidden -> Token [role=kernel] ~ Categorical
define rnn = tok_embed >> scan(cell) >> output_proj
export rnn
"""


def test_a_qvr_rnn_is_the_python_one():
    from quivers.nn import Embed, NeuralKernel, Real

    m = loads(RNN)
    Token, E, H = FinSet("Token", 5), Real("Embedded", 3), Real("Hidden", 8)
    tok_embed = Embed(Token, E, name="tok_embed")
    cell = NeuralKernel(E * H, H, "Normal", param_source="mlp", hidden=(16,), fixed={"scale": 0.1}, name="cell")
    output_proj = NeuralKernel(H, Token, "Categorical", name="output_proj")
    rnn = tok_embed >> scan(cell) >> output_proj
    assert repr(m.rnn) == repr(rnn)
    rnn.load_state_dict(m.rnn.state_dict())
    xs = torch.randint(0, 5, (4, 6))
    torch.manual_seed(0)
    a = m.rnn.parts[0].sample(xs)
    h_a = m.rnn.parts[1].sample(a)
    torch.manual_seed(0)
    h_b = (tok_embed >> scan(cell)).sample(xs)
    torch.testing.assert_close(h_a, h_b)
    torch.testing.assert_close(m.output_proj.log_prob(xs[:, 0], h_a), output_proj.log_prob(xs[:, 0], h_b))


# ------------------------------------------------------------ printing

names = st.sampled_from(["f", "g", "h"])


def _exprs():
    leaf = names.map(ast.MorphismRef) | st.builds(
        lambda f, n: ast.MorphismCall("repeat", (ast.MorphismRef(f), ast.MorphismNumber(n))), names,
        st.integers(0, 5)) | names.map(lambda a: ast.MorphismCall("identity", (ast.MorphismRef(a),)))
    return st.recursive(leaf, lambda inner: st.one_of(
        st.builds(ast.MorphismThen, inner, inner),
        st.builds(ast.MorphismTensor, inner, inner),
        st.builds(lambda b: ast.MorphismAttr(b, "dagger"), inner),
        st.builds(lambda a, b: ast.MorphismCall("fan", (a, b)), inner, inner),
        st.builds(lambda a, b: ast.MorphismCall("scan", (a, ast.MorphismKeyword("init", b))), inner, inner),
    ), max_leaves=6)


@given(_exprs(), st.sampled_from(["define", "let"]))
def test_define_round_trips(value, keyword):
    module = ast.Module((
        ast.MorphismDecl(("f", "g"), ast.SetName("A"), ast.SetProduct(ast.SetName("A"), ast.SetUnit()),
                         (ast.Option("role", ast.OptionName("latent")), ast.Option("scale", ast.OptionNumber(0.5)))),
        ast.MorphismDecl(("k",), ast.SetName("A"), ast.SetName("R"),
                         (ast.Option("hidden", ast.OptionList((ast.OptionNumber(4), ast.OptionNumber(2)))),),
                         "Normal", (ast.Option("scale", ast.OptionNumber(0.1)),)),
        ast.DefineDecl("h", value, keyword),
    ))
    text = dumps(module)
    assert parse(text) == module
    assert format_source(text) == text


def test_fmt_keeps_comments_and_canonicalizes():
    text = "object A : FinSet 2\nmorphism  f,g : A->A [role=latent]  # two kernels\ndefine h = (f >> g) >> f\n"
    assert format_source(text) == (
        "object A : FinSet 2\nmorphism f, g : A -> A [role=latent]  # two kernels\ndefine h = f >> g >> f\n"
    )


# ------------------------------------------------------------ errors

HEAD = "object S : FinSet 2\nobject O : FinSet 3\nobject E : Real 4\nmorphism t : S -> S\nmorphism e : S -> O\n"


@pytest.mark.parametrize("line, cls, message, column", [
    ("define h = e >> t", CompositionError,
     "cannot compose `e : S -> O` with `t : S -> S`: the codomain `O` of `e` is not the domain `S` of `t`", 12),
    ("define h = t >> (e >> t)", CompositionError, "codomain `O` of `e`", 18),
    ("define h = tt >> t", UnknownNameError, "unknown morphism `tt` in `h`; morphisms: t, e; did you mean `t`?", 12),
    ("define h = S >> t", UnknownNameError, "`S` is an object, not a morphism; use `identity(S)`", 12),
    ("define h = repeat(e, 2)", CompositionError, "repeat needs an endomorphism", 12),
    ("define h = stack(t)", QuiversError, "`stack` needs its number of layers", 12),
    ("define h = repeat(t, 1.5)", QuiversError, "whole number", 22),
    ("define h = scan(t)", CompositionError, "a scan cell has type `X * H -> H`", 12),
    ("define h = fan(t, e.dagger)", CompositionError, "fan needs arrows with one domain", 12),
    ("define h = t.transpose", UnknownNameError, "unknown postfix `.transpose`", 12),
    ("define h = frob(t)", UnknownNameError, "unknown combinator `frob(...)`", 12),
    ("define h = scan(t, start=t)", UnknownNameError, "`scan` takes no keyword `start`; keywords: init", 20),
    ("define h = identity(t)", QuiversError, "`identity` takes a declared finite set", 21),
    ("morphism k : E -> E [role=embed]", QuiversError, "`E` is a Real object", 14),
    ("morphism k : S -> O [role=embed]", QuiversError, "`O` is not a Real object", 19),
    ("morphism k : S -> E [role=latent]", QuiversError, "`E` is a Real object", 19),
    ("morphism k : S -> O [rol=latent]", UnknownNameError, "unknown option `rol`", 22),
    ("morphism k : S -> O [role=hidden]", UnknownNameError, "`role` must be one of latent", 27),
    ("morphism k : S -> E [role=observed]", QuiversError, "`E` is a Real object", 19),
    ("morphism k : S -> O [role=kernel] ~ Normal", QuiversError, "so its family is `Categorical`", 1),
    ("morphism k : S -> E [role=kernel] ~ Normal [sd=1.0]", UnknownNameError, "`Normal` has no parameter `sd`", 1),
    ("morphism k : S -> E [role=kernel] ~ Normall", UnknownNameError, "did you mean `Normal`?", 1),
    ("morphism k : S -> E [role=kernel]", QuiversError, "`E` is a Real object", 19),
    ("morphism k : S -> E [role=latent] ~ Normal", QuiversError, "needs `role=kernel`", 1),
    ("morphism k : S -> O [hidden=[4]]", QuiversError, "`hidden` configures the network", 22),
    ("morphism k : S -> E [role=kernel, hidden=[0]] ~ Normal", QuiversError, "positive width", 42),
    ("morphism k : S -> E [role=kernel, param_source=cnn] ~ Normal", UnknownNameError, "`param_source` must be", 48),
    ("morphism k : S -> S [role=discretize]", QuiversError, "`S` is not a Real object", 14),
    ("morphism k : E -> S [role=discretize]", QuiversError, "one-dimensional Real object", 1),
    ("morphism k : E -> S [role=discretize, bins=3]", QuiversError, "has 2 elements", 39),
    ("define h = identity(E)", QuiversError, "`identity` takes a declared finite set", 21),
    ("morphism t : S -> O", QuiversError, "`t` is declared twice", 1),
    ("define S = t", QuiversError, "`S` is declared twice", 1),
    ("export nope", UnknownNameError, "morphisms: e, t", 1),
])
def test_bad_input_is_a_located_error(line, cls, message, column):
    with pytest.raises(cls) as info:
        loads(HEAD + line + "\n")
    err = info.value
    assert message in str(err)
    assert (err.span.line, err.span.column) == (6, column)
    assert "^" in str(err)


def test_the_module_algebra_is_the_one_to_read_its_morphisms_in():
    m = loads("composition max_plus [level=algebra]\n" + HMM)
    assert m.semiring == MAX_PLUS
    got = m.marginal.as_morphism(m.semiring, F64, n_steps=2).tensor[0]
    pi = m.initial.as_morphism(PROB, F64).tensor[0].detach()  # the learned weights, read as numbers
    T, E = m.transition.as_morphism(PROB, F64).tensor.detach(), m.emission.as_morphism(PROB, F64).tensor.detach()
    for o in range(2):
        best = max(float(pi[a] * T[a, b] * T[b, c] * E[c, o]) for a, b, c in itertools.product(range(3), repeat=3))
        assert got[o].item() == pytest.approx(torch.log(torch.tensor(best, dtype=F64)).item(), rel=1e-12)


TRANSFORMER = """\
object Token : FinSet 8
object Latent : Real 8
object HeadOut : Real 2
object FFHidden : Real 12
morphism tok_embed : Token -> Latent [role=embed]
morphism head : Latent -> HeadOut [replicate=4, param_source=mlp] ~ Normal
morphism attn_proj : Latent -> Latent [param_source=mlp] ~ Normal
morphism ff_up : Latent -> FFHidden [param_source=mlp] ~ Normal
morphism ff_down : FFHidden -> Latent [param_source=mlp] ~ Normal
morphism lm_head : Latent -> Token ~ Categorical
define layer = fan(head) >> attn_proj >> ff_up >> ff_down
define backbone = tok_embed >> stack(layer, 2)
"""


def test_replicas_fan_out_and_continuous_objects_meet_by_dimension():
    m = loads(TRANSFORMER)
    assert [n for n in m.morphisms if n.startswith("head")] == ["head_0", "head_1", "head_2", "head_3"]
    assert m.head_0 is not m.head_1 and not torch.equal(m.head_0.net[0].weight, m.head_1.net[0].weight)
    fanned = m.layer.parts[0]
    assert fanned.cod.dim == 8 and len(fanned.parts) == 4   # four Real 2 heads feed a map from Real 8
    # stack's copies are fresh: the two layers have their own, different weights
    first, second = m.backbone.parts[1].layers
    assert not torch.equal(first.parts[1].net[0].weight, second.parts[1].net[0].weight)
    tokens = torch.randint(0, 8, (16,))
    h = m.backbone.sample(tokens)
    assert h.shape == (16, 8)
    params = list(m.backbone.parameters()) + list(m.lm_head.parameters())
    opt = torch.optim.Adam(params, lr=0.01)
    losses = []
    for _ in range(60):
        opt.zero_grad()
        loss = -m.lm_head.log_prob(tokens, m.backbone.sample(tokens)).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) < sum(losses[:5]) - 1.0


def test_side_by_side_kernels_split_their_input():
    m = loads("""\
object Source, Target : FinSet 4
object Latent : Real 3
object Combined : Real 6
morphism src_embed : Source -> Latent [role=embed]
morphism tgt_embed : Target -> Latent [role=embed]
morphism cross : Combined -> Target ~ Categorical
define both = src_embed @ tgt_embed
define model = both >> cross
""")
    pairs = torch.tensor([0, 5, 15])                       # (source, target) row-major
    h = m.both.sample(pairs)
    torch.testing.assert_close(h[:, :3], m.src_embed.sample(pairs // 4))
    torch.testing.assert_close(h[:, 3:], m.tgt_embed.sample(pairs % 4))
    assert m.model.sample(pairs).shape == (3,)


def test_a_deep_markov_model_scans_from_a_learned_state():
    m = loads("""\
object Driver : Real 2
object State : Real 3
object Obs : Real 2
morphism trans : Driver * State -> State ~ Normal [scale=0.1]
morphism emit : State -> Obs [role=kernel, hidden=[8]] ~ Normal [scale=0.1]
define generate = scan(trans, init=learned) >> emit
""")
    scan_ = m.generate.parts[0]
    assert type(scan_.init).__name__ == "LearnedPoint"
    assert m.generate.sample(torch.randn(5, 7, 2)).shape == (5, 2)
    grads = torch.autograd.grad(m.generate.sample(torch.randn(5, 7, 2)).sum(), scan_.init.point)
    assert bool(grads[0].abs().sum() > 0)


@pytest.mark.parametrize("text, cls, message", [
    ("define h = fan(head) >> head", QuiversError, "stands for its 4 replicas"),
    ("morphism k : Latent -> Latent [replicate=0] ~ Normal", QuiversError, "positive whole number"),
    ("define h = head_0 >> ff_up", CompositionError, "codomain `HeadOut` of `head_0` is not the domain `Latent`"),
])
def test_replica_errors(text, cls, message):
    with pytest.raises(cls, match=message.replace("(", r"\(")):
        loads(TRANSFORMER + text + "\n")


def test_backward_composition_is_forward_composition_read_right_to_left():
    m = loads("object A : FinSet 2\nobject B : FinSet 3\nmorphism f : A -> B\nmorphism g : B -> A\n"
              "define h = g << f\ndefine k = f >> g\n")
    assert m.ast.items[4].value == m.ast.items[5].value
    assert repr(m.h) == repr(m.k)
    with pytest.raises(CompositionError, match="cannot compose `f : A -> B` with `f : A -> B`"):
        loads("object A : FinSet 2\nobject B : FinSet 3\nmorphism f : A -> B\ndefine h = f << f\n")


def test_a_dirichlet_prior_on_a_latent_matrix():
    from torch.distributions import Dirichlet

    from quivers.nn import latent as py_latent

    m = loads("object S : FinSet 3\nobject O : FinSet 2\n"
              "morphism t : S -> S [role=latent] ~ Dirichlet(2.0)\nmorphism e : S -> O ~ Dirichlet(0.5)\n"
              "define h = t >> e\n")
    assert repr(m.t) == repr(py_latent(FinSet("S", 3), FinSet("S", 3), name="t", concentration=2.0))
    rows_t, rows_e = m.t.as_morphism(PROB).tensor, m.e.as_morphism(PROB).tensor
    expected = Dirichlet(torch.full((3, 3), 2.0)).log_prob(rows_t).sum() + Dirichlet(
        torch.full((3, 2), 0.5)).log_prob(rows_e).sum()
    torch.testing.assert_close(m.h.log_prior(), expected)
    # a MAP fit: the prior pulls an unobserved row toward uniform
    opt = torch.optim.Adam(m.t.parameters(), lr=0.1)
    for _ in range(100):
        opt.zero_grad()
        (-m.t.log_prior()).backward()
        opt.step()
    torch.testing.assert_close(m.t.as_morphism(PROB).tensor.detach(), torch.full((3, 3), 1 / 3), atol=1e-2, rtol=0)


@pytest.mark.parametrize("decl, message", [
    ("morphism k : S -> O [role=kernel] ~ Dirichlet(1.0)", "fix one with"),
    ("morphism k : S -> O ~ Beta(1.0, 2.0)", r"takes `~ Dirichlet\(a\)`"),
    ("morphism k : S -> O ~ Dirichlet(0.0)", "positive concentration"),
    ("morphism k : S -> O [role=latent] ~ Normal", "a latent's prior takes its hyperparameters"),
])
def test_bad_priors_are_located(decl, message):
    with pytest.raises(QuiversError, match=message) as info:
        loads("object S : FinSet 3\nobject O : FinSet 2\n" + decl + "\n")
    assert info.value.span.line == 3
