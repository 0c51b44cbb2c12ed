"""QVR for composite programs: `program q(b) : B -> C`, `program h = p >> q`,
`p @ q`, `identity(A)`; parsing, printing, checking and compiling."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from quivers.categories import BOOL, LOG, MAX_PLUS, MAX_TIMES, MIN_PLUS, PROB, FinSet, identity
from quivers.dsl import ast, dumps, loads, parse
from quivers.dsl.printer import dump_program
from quivers.errors import CompositionError, EffectError, QuiversTypeError, QVRSyntaxError, UnknownNameError
from quivers.programs import Effect, Program, program_kernel, rename

from .strategies import program_exprs

BASE = """
object A : FinSet 2
object B : FinSet 2

program flip(a) : A -> B
    sample b <- Bernoulli(0.2 + 0.6 * a)
    return b

program noisy(b) : B -> A
    sample c <- Bernoulli(0.1 + 0.8 * b)
    return c
"""

SOURCE = BASE + """
program h = flip >> noisy
program both = flip @ identity(A)
program loop = flip >> noisy >> flip
export h
"""


def test_input_binding_parses_prints_and_compiles():
    m = loads(SOURCE)
    decl = m.ast.items[2]
    assert isinstance(decl, ast.ProgramDecl) and decl.input == "a"
    assert "program flip(a) : A -> B" in dumps(m.ast)
    assert m.flip.input == "a" and m.flip.sites["a"].kind == "input"
    # the input indexes nothing here but is an element of A: a = 1 draws b = 1 w.p. 0.8
    torch.testing.assert_close(m.flip.log_joint(torch.tensor(1), None, {"b": torch.tensor(1.0)}), torch.tensor(0.8).log())


def test_composites_are_programs_and_the_export_is_the_composite():
    m = loads(SOURCE)
    assert isinstance(m.h, Program) and m.morphism is m.h
    assert (m.h.name, m.h.dom, m.h.cod) == ("h", FinSet("A", 2), FinSet("A", 2))
    assert m.both.dom == FinSet("A", 2) * FinSet("A", 2) and m.both.cod == FinSet("B", 2) * FinSet("A", 2)
    for S in (LOG, PROB, BOOL):
        kf, kn = program_kernel(m.flip, S), program_kernel(m.noisy, S)
        pairs = [
            (program_kernel(m.h, S).tensor, (kf >> kn).tensor),
            (program_kernel(m.both, S).tensor, (kf @ identity(FinSet("A", 2), S)).tensor),
        ]
        for got, expected in pairs:
            assert torch.equal(got, expected) if S == BOOL else torch.allclose(got, expected, atol=1e-6)


def test_qvr_composite_equals_the_python_composite():
    m = loads(SOURCE)
    python = m.flip >> m.noisy
    lat = {"b": torch.tensor([0.0, 1.0]), "c": torch.tensor([1.0, 1.0])}
    for a in (0, 1):
        torch.testing.assert_close(m.h.log_joint(torch.tensor(a), None, lat), python.log_joint(torch.tensor(a), None, lat))


def test_a_program_used_twice_gets_its_later_sites_prefixed():
    m = loads(SOURCE)
    assert set(m.loop.sites) == {"a", "b", "c", "flip2_a", "flip2_b"}
    k = program_kernel(m.flip, PROB) >> program_kernel(m.noisy, PROB) >> program_kernel(m.flip, PROB)
    torch.testing.assert_close(program_kernel(m.loop, PROB).tensor, k.tensor)
    again = loads(SOURCE.replace("export h", "program twice = loop >> noisy >> flip\nexport twice"))
    assert {"noisy2_c", "flip3_b"} <= set(again.twice.sites)


def test_precedence_and_parentheses():
    p, q, r = ast.ProgramRef("p"), ast.ProgramRef("q"), ast.ProgramRef("r")
    cases = {
        "p @ q >> r": ast.ProgramThen(ast.ProgramTensor(p, q), r),
        "p >> q @ r": ast.ProgramThen(p, ast.ProgramTensor(q, r)),
        "p >> q >> r": ast.ProgramThen(ast.ProgramThen(p, q), r),
        "p >> (q >> r)": ast.ProgramThen(p, ast.ProgramThen(q, r)),
        "(p >> q) @ r": ast.ProgramTensor(ast.ProgramThen(p, q), r),
        "p @ (q @ r)": ast.ProgramTensor(p, ast.ProgramTensor(q, r)),
        "identity(A * B) @ p": ast.ProgramTensor(ast.ProgramIdentity(ast.SetProduct(ast.SetName("A"), ast.SetName("B"))), p),
    }
    for text, tree in cases.items():
        (decl,) = parse(f"program h = {text}\n").items
        assert decl == ast.CompositeDecl("h", tree)
        assert dump_program(tree) == text


@given(program_exprs)
def test_composite_expressions_round_trip(e):
    text = f"program h = {dump_program(e)} [effects=[Sample]]\n"
    (decl,) = parse(text).items
    assert decl.value == e and dumps(decl) == text.strip()


def test_an_unknown_builtin_is_a_syntax_error():
    with pytest.raises(QVRSyntaxError, match=r"unknown built-in program `ident\(...\)`; the built-in is `identity\(A\)`"):
        parse("object A : FinSet 2\nprogram h = ident(A)\n")


@pytest.mark.parametrize(
    "tail, error, message, line",
    [
        ("program h = flip >> noisey", UnknownNameError, r"unknown program `noisey` in `h`.*did you mean `noisy`\?", 13),
        ("program h = later >> noisy\nprogram later = flip", UnknownNameError, "program `later` is used before it is declared on line 14", 13),
        ("program h = A >> flip", UnknownNameError, r"`A` is an object, not a program; use `identity\(A\)`", 13),
        (
            "program h = flip >> flip",
            CompositionError,
            r"cannot compose `flip : A -> B` with `flip : A -> B`: the codomain `B` of `flip` is not the domain `A` of `flip`",
            13,
        ),
        (
            "program h = (flip @ noisy) >> identity(A * B)",
            CompositionError,
            r"cannot compose `flip @ noisy : A\*B -> B\*A` with `identity\(A\*B\) : A\*B -> A\*B`",
            13,
        ),
        ("program h = flip >> identity(C)", UnknownNameError, "unknown object `C`", 13),
        ("program h = flip >> noisy [effects=[Pure]]", EffectError, "`h` declares effects \\[Pure\\], but `flip` has Sample", 13),
        ("program h = flip [effects=[Score]]", EffectError, "`h` declares effects \\[Score\\], but `flip` has Sample", 13),
        ("program h = flip >> noisy [via=x]", UnknownNameError, "unknown option `via` for `program`", 13),
        ("program A(b) : B -> B\n    return b", QuiversTypeError, "`A` is declared twice", 13),
        ("program q(B) : B -> B\n    return 0", QuiversTypeError, "`B` names an object on line 3, so `input B of program q`", 13),
        (
            "program q(x) : B -> B\n    let x = 1\n    return x",
            QuiversTypeError,
            "`x` is defined twice in program `q`; it is already defined by `input x of program q`",
            14,
        ),
    ],
)
def test_composite_errors_name_both_programs_and_point_at_the_line(tail, error, message, line):
    src = SOURCE.replace("program h = flip >> noisy\nprogram both = flip @ identity(A)\nprogram loop = flip >> noisy >> flip\nexport h\n", tail + "\n")
    with pytest.raises(error, match=message) as info:
        loads(src)
    assert info.value.span is not None and info.value.span.line == line
    assert "^" in str(info.value)


def test_composite_declared_effects_cover_the_union():
    m = loads(SOURCE.replace("program h = flip >> noisy", "program h = flip >> noisy [effects=[Sample, Score]]"))
    assert m.h.effects == {Effect.Sample, Effect.Score}


def test_an_input_is_in_scope_in_the_body_and_indexes_by_name():
    m = loads("""
object K : FinSet 3
object L : FinSet 2
program emit(k) : K -> K
    sample w : L * K <- HalfNormal(1.0)
    let v = w[k]
    return k
export emit
""")
    assert m.morphism.sites["v"].dims == ("L",)
    with pytest.raises(QuiversTypeError, match="continuous latent `w`"):
        program_kernel(m.morphism)
    k = program_kernel(m.morphism, LOG, latents={"w": torch.ones(2, 3)})
    assert k.tensor.shape == (3, 3)


def test_lexer_knows_the_composition_operators():
    import pygments
    from pygments.token import Error, Operator

    from quivers.dsl.lexer import QVRLexer

    tokens = list(pygments.lex("program h = p @ q >> r\n", QVRLexer()))
    assert (Operator, "@") in tokens and (Operator, ">>") in tokens
    assert not [v for t, v in tokens if t is Error]


def test_rename_then_compose_in_python_matches_qvr_reuse():
    m = loads(SOURCE)
    python = m.flip >> m.noisy >> rename(m.flip, "flip2_")
    torch.testing.assert_close(program_kernel(python, PROB).tensor, program_kernel(m.loop, PROB).tensor)


@pytest.mark.parametrize("a", [0, 1])
@given(st.integers(0, 1), st.integers(0, 1))
def test_sampling_a_composite_is_coherent(a, b, c):
    m = loads(SOURCE)
    draw = m.h.sample(torch.tensor(a), latents={"b": torch.tensor(float(b)), "c": torch.tensor(float(c))})
    assert int(draw["_return"]) == c


# ---------------------------------------------------------------- random composites

PARTS = BASE + """
program coin : A -> B
    sample c <- Bernoulli(0.3)
    return c

program tilt(a) : A -> A
    factor 0.5 * a - 1.0
    return a
"""

# `coin` and `noisy` both define `c`, and `flip` returns the site `noisy` reads:
# random trees meet the compiler's renaming and input passing in every position.
_parts = st.sampled_from(["flip", "noisy", "coin", "tilt"]).map(ast.ProgramRef)
_identities = st.sampled_from(["A", "B"]).map(lambda n: ast.ProgramIdentity(ast.SetName(n)))
random_composites = st.recursive(
    _parts | _identities,
    lambda c: st.builds(ast.ProgramThen, c, c) | st.builds(ast.ProgramTensor, c, c),
    max_leaves=5,
)


def _denotation(e: ast.ProgramExpr, parts, S):
    """The kernel and effects of a composite, from its parts' by the core's
    algebra alone (``>>`` and ``@`` of morphisms), never compiling ``e``."""
    if isinstance(e, ast.ProgramRef):
        return program_kernel(parts[e.name], S), parts[e.name].effects - {Effect.Pure}
    if isinstance(e, ast.ProgramIdentity):
        return identity(FinSet(e.obj.name, 2), S), frozenset()
    (kl, el), (kr, er) = _denotation(e.left, parts, S), _denotation(e.right, parts, S)
    return (kl >> kr if isinstance(e, ast.ProgramThen) else kl @ kr), el | er


@pytest.mark.parametrize("S", [LOG, PROB, BOOL, MAX_PLUS, MAX_TIMES, MIN_PLUS], ids=repr)
@given(random_composites)
def test_a_random_qvr_composite_denotes_the_algebra_of_its_parts(S, e):
    source = PARTS + f"\nprogram h = {dump_program(e)}\nexport h\n"
    parts = loads(PARTS)
    parts = {n: getattr(parts, n) for n in ("flip", "noisy", "coin", "tilt")}
    try:
        expected, effects = _denotation(e, parts, S)
    except CompositionError:
        # the objects do not meet somewhere: the checker says so at the line
        with pytest.raises(CompositionError, match=r"cannot compose `.+ : .+ -> .+` with `.+ : .+ -> .+`") as info:
            loads(source)
        assert info.value.span is not None and info.value.span.line == source.count("\n") - 1
        return
    h = loads(source).morphism
    assert (h.name, h.dom, h.cod) == ("h", expected.dom, expected.cod)
    assert h.effects == (effects or {Effect.Pure})
    got = program_kernel(h, S)
    assert got.semiring == S
    if S == BOOL:
        assert torch.equal(got.tensor, expected.tensor)
    else:
        torch.testing.assert_close(got.tensor.double(), expected.tensor.double(), atol=1e-5, rtol=1e-5)
