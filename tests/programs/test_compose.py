"""Programs are morphisms: ``>>``, ``@``, identities, lifts, exact kernels.

The laws are checked through exact kernels of small random discrete
programs (tests/programs/discrete.py), in every semiring a program can be
evaluated in; the kernels themselves are checked against brute force.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from quivers.categories import BOOL, LOG, MAX_PLUS, MAX_TIMES, MIN_PLUS, PROB, FinFunction, FinSet, Kernel, Morphism
from quivers.categories import identity as identity_morphism
from quivers.distributions import Bernoulli, Categorical, Normal
from quivers.errors import CompositionError, DataError, EffectError, QuiversTypeError
from quivers.programs import (
    Effect,
    Program,
    apply,
    const,
    factor,
    identity,
    lift,
    marginalize,
    program_kernel,
    rename,
    ret,
    sample,
    tensor,
    then,
    var,
)

from .discrete import Spec, brute_kernel, build, objects, specs

SEMIRINGS = [LOG, PROB, BOOL, MAX_PLUS, MAX_TIMES, MIN_PLUS]
ROOT = Path(__file__).resolve().parents[2]


def assert_same(x: Morphism, y: Morphism) -> None:
    assert (x.dom, x.cod, x.semiring) == (y.dom, y.cod, y.semiring)
    if x.semiring == BOOL:
        assert torch.equal(x.tensor, y.tensor)
    else:
        torch.testing.assert_close(x.tensor.double(), y.tensor.double(), atol=2e-5, rtol=1e-4)


# ---------------------------------------------------------------- kernels


@pytest.mark.parametrize("semiring", SEMIRINGS, ids=repr)
@given(data=st.data())
def test_kernel_agrees_with_brute_force(semiring, data):
    A, B = data.draw(objects("A", "B"))
    spec = data.draw(specs("p_", A, B))
    k = program_kernel(build(spec), semiring)
    expected = brute_kernel(spec, semiring.name)
    if semiring == BOOL:
        assert torch.equal(k.tensor, expected)
    else:
        torch.testing.assert_close(k.tensor.double(), expected, atol=2e-5, rtol=1e-4)


def test_max_plus_gives_the_most_probable_explanation_not_the_marginal():
    # Two explanations of b = 0 with probability 0.3 each, one of b = 1 with 0.4:
    # the marginal prefers b = 0, the most probable explanation b = 1.
    B, U = FinSet("B", 2), FinSet("U", 3)
    p = Program("p", FinSet.unit(), B, [
        sample("u", None, Categorical(const(torch.tensor([0.3, 0.3, 0.4]), U))),
        ret(apply(FinFunction(U, B, [0, 0, 1]), var("u"))),
    ])
    marginal = program_kernel(p, PROB).tensor[0]
    mpe = program_kernel(p, MAX_TIMES).tensor[0]
    torch.testing.assert_close(marginal, torch.tensor([0.6, 0.4]))
    torch.testing.assert_close(mpe, torch.tensor([0.3, 0.4]))
    assert int(marginal.argmax()) == 0 and int(mpe.argmax()) == 1
    torch.testing.assert_close(program_kernel(p, MAX_PLUS).tensor, mpe.log()[None])


def test_max_plus_maximizes_over_marginalized_latents_too():
    B, Z = FinSet("B", 1), FinSet("Z", 2)
    p = Program("p", FinSet.unit(), B, [
        marginalize("z", Z, Categorical(const(torch.tensor([0.5, 0.5]), Z)), [
            factor(const(torch.tensor([math.log(0.2), math.log(0.6)]), Z)[var("z")])]),
        ret(0),
    ])
    torch.testing.assert_close(program_kernel(p, LOG).tensor, torch.tensor([[math.log(0.4)]]))
    torch.testing.assert_close(program_kernel(p, MAX_PLUS).tensor, torch.tensor([[math.log(0.3)]]))
    assert torch.equal(program_kernel(p, BOOL).tensor, torch.tensor([[True]]))


def test_bool_kernel_is_the_support():
    A, B = FinSet("A", 2), FinSet("B", 3)
    w = torch.tensor([[1.0, 0.0, 2.0], [0.0, 0.0, 1.0]])
    p = Program("p", A, B, [sample("b", None, Categorical(const(w, A * B)[var("a")])), ret("b")], input="a")
    assert torch.equal(program_kernel(p, BOOL).tensor, w > 0)


def test_a_program_without_score_has_a_kernel_with_score_a_morphism():
    A = FinSet("A", 2)
    pure = lift(FinFunction(A, A, [1, 0]))
    scored = Program("s", A, A, [factor(-1.0), ret("a")], input="a")
    assert isinstance(program_kernel(pure), Kernel) and isinstance(program_kernel(pure, PROB), Kernel)
    k = program_kernel(scored, PROB)
    assert not isinstance(k, Kernel)
    torch.testing.assert_close(k.tensor, math.exp(-1.0) * torch.eye(2))


def test_an_input_indexes_the_domain_axis_by_name_not_position():
    # The weights lie on C * B: indexing by b (in B) must pick the B axis.
    B, C = FinSet("B", 3), FinSet("C", 2)
    v = torch.tensor([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])
    q = Program("q", B, C, [sample("c", None, Categorical(const(v, C * B)[var("b")])), ret("c")], input="b")
    torch.testing.assert_close(program_kernel(q, PROB).tensor, (v / v.sum(0)).T)


def test_a_program_without_input_ignores_x_and_has_equal_rows():
    A, B = FinSet("A", 3), FinSet("B", 2)
    p = Program("p", A, B, [sample("b", None, Categorical(const(torch.tensor([1.0, 3.0]), B))), ret("b")])
    k = program_kernel(p, PROB).tensor
    torch.testing.assert_close(k, torch.tensor([[0.25, 0.75]] * 3))
    lp = p.log_joint(torch.zeros(1, 1), None, {"b": torch.tensor(1)})
    torch.testing.assert_close(lp, torch.tensor(math.log(0.75)))


def test_kernel_refuses_what_it_cannot_enumerate():
    A = FinSet("A", 2)
    cont = Program("cont", A, A, [sample("mu", None, Normal(0.0, 1.0)), ret("a")], input="a")
    with pytest.raises(QuiversTypeError, match=r"`cont` samples the continuous latent `mu` \(Normal\)"):
        program_kernel(cont)
    conditioned = program_kernel(cont, LOG, latents={"mu": torch.tensor(0.0)})
    torch.testing.assert_close(conditioned.tensor.exp(), math.exp(Normal(0.0, 1.0).build({"loc": torch.tensor(0.0), "scale": torch.tensor(1.0)}).log_prob(torch.tensor(0.0))) * torch.eye(2))
    silent = Program("silent", A, A, [sample("b", None, Bernoulli(0.5))], input="a")
    with pytest.raises(QuiversTypeError, match="`silent` returns nothing"):
        program_kernel(silent)
    plated = Program("plated", A, A, [sample("b", A, Bernoulli(0.5)), ret("b")])
    with pytest.raises(QuiversTypeError, match=r"`plated` returns a value on the axes \['A'\]"):
        program_kernel(plated)
    outside = Program("outside", A, FinSet("One", 1), [ret(apply(FinFunction.id(A), var("a")))], input="a")
    with pytest.raises(DataError, match="`outside` returns 1, outside `One`"):
        program_kernel(outside)
    with pytest.raises(QuiversTypeError, match="more than max_assignments=3"):
        program_kernel(Program("big", A, A, [sample("b", A, Bernoulli(0.5)), ret(0)]), max_assignments=3)
    with pytest.raises(QuiversTypeError, match="cannot evaluate a program in `GODEL`"):
        from quivers.categories import GODEL

        program_kernel(silent, GODEL)


# ---------------------------------------------------------------- laws


@pytest.mark.parametrize("semiring", SEMIRINGS, ids=repr)
@given(data=st.data())
def test_kernel_of_then_is_the_composite_of_kernels(semiring, data):
    A, B, C = data.draw(objects("A", "B", "C"))
    p, q = build(data.draw(specs("p_", A, B))), build(data.draw(specs("q_", B, C)))
    assert_same(program_kernel(p >> q, semiring), program_kernel(p, semiring) >> program_kernel(q, semiring))
    # the functor is the arrow's as_morphism, so a kernel composes with a program
    assert_same((p >> q).as_morphism(semiring), p.as_morphism(semiring) >> q)


@pytest.mark.parametrize("semiring", SEMIRINGS, ids=repr)
@given(data=st.data())
def test_kernel_of_tensor_is_the_tensor_of_kernels(semiring, data):
    A, B, C, D = data.draw(objects("A", "B", "C", "D"))
    p, q = build(data.draw(specs("p_", A, B))), build(data.draw(specs("q_", C, D)))
    assert_same(program_kernel(p @ q, semiring), program_kernel(p, semiring) @ program_kernel(q, semiring))


@pytest.mark.parametrize("semiring", SEMIRINGS, ids=repr)
@given(data=st.data())
def test_composition_is_associative(semiring, data):
    A, B, C, D = data.draw(objects("A", "B", "C", "D"))
    p, q, r = (build(data.draw(specs(n, X, Y))) for n, X, Y in (("p_", A, B), ("q_", B, C), ("r_", C, D)))
    assert_same(program_kernel((p >> q) >> r, semiring), program_kernel(p >> (q >> r), semiring))
    assert_same(program_kernel((p @ q) @ r, semiring), program_kernel(p @ (q @ r), semiring))


@pytest.mark.parametrize("semiring", SEMIRINGS, ids=repr)
@given(data=st.data())
def test_identities_are_units(semiring, data):
    A, B = data.draw(objects("A", "B"))
    p = build(data.draw(specs("p_", A, B)))
    k = program_kernel(p, semiring)
    assert_same(program_kernel(identity(A) >> p, semiring), k)
    assert_same(program_kernel(p >> identity(B), semiring), k)
    assert_same(program_kernel(identity(A), semiring), identity_morphism(A, semiring))


@pytest.mark.parametrize("semiring", SEMIRINGS, ids=repr)
@given(data=st.data())
def test_interchange(semiring, data):
    A, B, C, D, E, F = data.draw(objects("A", "B", "C", "D", "E", "F"))
    p, q, r, s = (
        build(data.draw(specs(n, X, Y)))
        for n, X, Y in (("p_", A, B), ("q_", C, D), ("r_", B, E), ("s_", D, F))
    )
    assert_same(program_kernel((p @ q) >> (r @ s), semiring), program_kernel((p >> r) @ (q >> s), semiring))


@pytest.mark.parametrize("semiring", SEMIRINGS, ids=repr)
@given(st.lists(st.integers(0, 3), min_size=1, max_size=4), st.integers(1, 4))
def test_lift_is_the_function(semiring, mapping, n):
    A, B = FinSet("A", len(mapping)), FinSet("B", 4)
    f = FinFunction(A, B, mapping)
    assert_same(program_kernel(lift(f), semiring), f.as_morphism(semiring))
    g = FinFunction(B, FinSet("C", n), [i % n for i in range(4)])
    assert_same(program_kernel(lift(f) >> lift(g), semiring), (f >> g).as_morphism(semiring))


@given(data=st.data())
def test_log_joint_of_a_composite_is_the_sum_of_its_parts(data):
    A, B, C = data.draw(objects("A", "B", "C"))
    ps, qs = data.draw(specs("p_", A, B)), data.draw(specs("q_", B, C))
    p, q = build(ps), build(qs)
    a = data.draw(st.integers(0, A.size - 1))

    def latents(spec: Spec) -> dict[str, torch.Tensor]:
        out = {spec.prefix + "u": torch.tensor(data.draw(st.integers(0, len(spec.W[0]) - 1)))}
        if spec.P is not None:
            out[spec.prefix + "flip"] = torch.tensor(float(data.draw(st.integers(0, 1))))
        return out

    lp, lq = latents(ps), latents(qs)
    b = p.sample(torch.tensor(a), latents=lp)["_return"]
    expected = p.log_joint(torch.tensor(a), None, lp) + q.log_joint(b, None, lq)
    torch.testing.assert_close(then(p, q).log_joint(torch.tensor(a), None, {**lp, **lq}), expected)


# ---------------------------------------------------------------- effects and names


def _two(A: FinSet, B: FinSet):
    w = const(torch.ones(A.size, B.size), A * B)
    p = Program("p", A, B, [sample("b", None, Categorical(w[var("a")])), ret("b")], input="a")
    s = Program("s", B, B, [factor(-1.0), ret("x")], input="x")
    return p, s


def test_effects_of_a_composite_are_derived():
    A, B = FinSet("A", 2), FinSet("B", 2)
    p, s = _two(A, B)
    assert (identity(A) >> lift(FinFunction(A, B, [0, 0]))).effects == {Effect.Pure}
    assert (identity(A) @ identity(B)).effects == {Effect.Pure}
    assert (p >> identity(B)).effects == {Effect.Sample}
    assert (identity(A) >> p >> s).effects == {Effect.Sample, Effect.Score}
    assert (p @ s).effects == {Effect.Sample, Effect.Score}
    assert then(p, s, effects=["Sample", "Score", "Marginal"]).effects == {Effect.Sample, Effect.Score, Effect.Marginal}
    with pytest.raises(EffectError, match=r"`p >> s` declares effects \[Sample\], but `s` has Score"):
        then(p, s, effects=["Sample"])
    with pytest.raises(EffectError, match=r"`h` declares effects \[Pure\], but `p` has Sample and `s` has Score"):
        tensor(p, s, name="h", effects=["Pure"])


def test_mismatched_objects_name_both_programs_and_objects():
    A, B = FinSet("A", 2), FinSet("B", 3)
    p, _ = _two(A, B)
    with pytest.raises(
        CompositionError,
        match=r"cannot compose `p : A -> B` with `p : A -> B`: the codomain `B` of `p` is not the domain `A` of `p`",
    ):
        p >> p
    with pytest.raises(CompositionError, match=r"`identity\(B\) : B -> B` with `p : A -> B`"):
        identity(B) >> p
    with pytest.raises(QuiversTypeError, match="cannot compose a program with Kernel"):
        then(p, Kernel.id(B))
    # A non-program on either side of the operators: a named error, not Python's TypeError.
    with pytest.raises(QuiversTypeError, match=r"cannot compose a program with int `3` \(left operand\)"):
        3 >> p
    with pytest.raises(QuiversTypeError, match=r"cannot tensor a program with str `'a'` \(left operand\)"):
        "a" @ p
    with pytest.raises(QuiversTypeError, match=r"cannot compose a program with int `3` \(right operand\)"):
        p >> 3


def test_names_must_not_clash():
    A = FinSet("A", 2)
    p = Program("p", A, A, [sample("u", None, Bernoulli(0.5)), ret("a")], input="a")
    q = Program("q", A, A, [sample("u", None, Bernoulli(0.5)), ret("b")], input="b")
    with pytest.raises(CompositionError, match=r"cannot compose `p : A -> A` with `q : A -> A`: both define `u`"):
        p >> q
    with pytest.raises(CompositionError, match="both define `a`, `u`"):
        p @ Program("r", A, A, [sample("u", None, Bernoulli(0.5)), ret("a")], input="a")


@given(data=st.data())
def test_a_renamed_program_composes_with_itself(data):
    (A,) = data.draw(objects("A"))
    spec = data.draw(specs("p_", A, A))
    p = build(spec)
    with pytest.raises(CompositionError, match="both define"):
        p >> p
    k = program_kernel(p, LOG)
    assert_same(program_kernel(p >> rename(p, "second_"), LOG), k >> k)
    assert set(rename(p, {"p_u": "v"}).sites) == set(p.sites) - {"p_u"} | {"v"}


def test_rename_refuses_unknown_names():
    from quivers.errors import UnknownNameError

    with pytest.raises(UnknownNameError, match="cannot rename `b`: it is no site of `identity\\(A\\)`"):
        rename(identity(FinSet("A", 2)), {"b": "c"})


def test_returns_must_fit_the_next_input():
    A, Item = FinSet("A", 2), FinSet("Item", 3)
    silent = Program("silent", A, A, [sample("u", None, Bernoulli(0.5))], input="a")
    plated = Program("plated", A, A, [sample("ys", Item, Bernoulli(0.5)), ret("ys")])
    reader = Program("reader", A, A, [ret("b")], input="b")
    with pytest.raises(CompositionError, match="`reader` reads its input `b`, but `silent` returns nothing"):
        silent >> reader
    with pytest.raises(CompositionError, match=r"`plated` returns a value on the axes \['Item'\], not one element of `A`"):
        plated >> reader
    with pytest.raises(CompositionError, match="`silent` returns nothing, so there is no pair"):
        silent @ reader
    assert (silent >> Program("ignores", A, A, [ret(1)])).returns is not None
    assert (silent @ Program("quiet", A, A, [factor(0.0)])).returns is None


def test_an_element_outside_the_next_domain_is_a_data_error():
    # `sloppy` claims to return elements of B but returns elements of C.
    A, B, C = FinSet("A", 2), FinSet("B", 2), FinSet("C", 3)
    sloppy = Program("sloppy", A, B, [ret(apply(FinFunction(A, C, [1, 2]), var("a")))], input="a")
    h = sloppy >> identity(B)
    assert float(h.log_joint(torch.tensor(0))) == 0.0
    with pytest.raises(DataError, match="value 2 is not an element of `B`"):
        h.log_joint(torch.tensor(1))
    with pytest.raises(DataError, match="`sloppy` returns 2, outside `B`"):
        program_kernel(sloppy)
    with pytest.raises(QuiversTypeError, match="`a \\+ 1` is not integer-valued"):
        Program("arith", A, B, [ret(apply(FinFunction.id(B), var("a") + 1))], input="a")


def test_inputs_are_checked():
    A = FinSet("A", 3)
    p = identity(A)
    with pytest.raises(DataError, match=r"takes an input `_x\d+` in `A`, but x is None"):
        p.log_joint(None)
    with pytest.raises(DataError, match=r"input `_x\d+` has value 3 at index \(\), outside \[0, 3\) of `A`"):
        p.log_joint(torch.tensor(3))
    with pytest.raises(QuiversTypeError, match="is not a valid name for the input of program `q`"):
        Program("q", A, A, [ret(0)], input="__x")


def test_names_of_composites_bracket_where_precedence_needs_it():
    A = FinSet("A", 2)
    p, q, r = (Program(n, A, A, [ret(n + "_in")], input=n + "_in") for n in "pqr")
    assert (p >> q >> r).name == "p >> q >> r"
    assert (p >> (q >> r)).name == "p >> (q >> r)"
    assert (p @ q >> r @ rename(r, "r2_")).name == "p @ q >> r @ r"
    assert ((p >> q) @ r).name == "(p >> q) @ r"
    assert (p @ (q @ r)).name == "p @ (q @ r)"


def test_a_composite_samples_coherently():
    A, B = FinSet("A", 2), FinSet("B", 3)
    w = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    p = Program("p", A, B, [sample("b", None, Categorical(const(w, A * B)[var("a")])), ret("b")], input="a")
    shift = lift(FinFunction(B, B, [1, 2, 0]))
    draws = (p @ shift).sample(torch.tensor([0, 5]), (4,))
    # (a=0, b'=0) -> (0, 1) = 1; (a=1, b'=2) -> (2, 0) = 6
    assert torch.equal(draws["_return"], torch.tensor([[1, 6]] * 4))


# ---------------------------------------------------------------- docs


def test_the_composition_page_runs():
    text = (ROOT / "docs" / "composition.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks
    scope: dict = {}
    for block in blocks:
        exec(compile(block, "docs/composition.md", "exec"), scope)
