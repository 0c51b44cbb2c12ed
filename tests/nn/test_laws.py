"""The functor from morphism modules to matrices: the laws of the algebra
hold for every kind of module, in every semiring a latent kernel lives in."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from quivers.categories import LOG, MAX_PLUS, MAX_TIMES, MIN_PLUS, PROB, PRODUCT_FUZZY, REAL, FinSet, copy, delete
from quivers.errors import CompositionError, QuiversTypeError
from quivers.nn import Latent, dagger, fan, identity, latent, observed, repeat, scan, stack

SEMIRINGS = (PROB, LOG, MAX_PLUS, MAX_TIMES, MIN_PLUS, PRODUCT_FUZZY, REAL)
F64 = torch.float64
sizes = st.integers(1, 3)


def close(f, g, semiring, **kw):
    a = f.as_morphism(semiring, F64, **kw)
    b = g.as_morphism(semiring, F64, **kw)
    assert (a.dom, a.cod) == (b.dom, b.cod)
    torch.testing.assert_close(a.tensor, b.tensor)


def sets(*ns):
    return [FinSet(f"S{i}", n) for i, n in enumerate(ns)]


@pytest.mark.parametrize("semiring", SEMIRINGS)
@settings(max_examples=15, deadline=None)
@given(a=sizes, b=sizes, c=sizes, d=sizes)
def test_associativity_and_identities(semiring, a, b, c, d):
    A, B, C, D = sets(a, b, c, d)
    f, g, h = latent(A, B), latent(B, C), latent(C, D)
    close((f >> g) >> h, f >> (g >> h), semiring)
    close(identity(A) >> f, f, semiring)
    close(f >> identity(B), f, semiring)


@pytest.mark.parametrize("semiring", SEMIRINGS)
@settings(max_examples=15, deadline=None)
@given(a=sizes, b=sizes, c=sizes, d=sizes)
def test_interchange(semiring, a, b, c, d):
    A, B, C, D = sets(a, b, c, d)
    f, h, g, k = latent(A, B), latent(B, C), latent(C, D), latent(D, A)
    close((f @ g) >> (h @ k), (f >> h) @ (g >> k), semiring)


@pytest.mark.parametrize("semiring", SEMIRINGS)
@settings(max_examples=15, deadline=None)
@given(a=sizes, m=st.integers(0, 4), n=st.integers(0, 4))
def test_repeat_is_a_power(semiring, a, m, n):
    (A,) = sets(a)
    t = latent(A, A)
    close(repeat(t, m + n), repeat(t, m) >> repeat(t, n), semiring)
    close(repeat(t, m + n), repeat(t), semiring, n_steps=m + n)
    naive = identity(A)
    for _ in range(m):
        naive = naive >> t
    close(repeat(t, m), naive, semiring)


@pytest.mark.parametrize("semiring", SEMIRINGS)
@settings(max_examples=15, deadline=None)
@given(a=sizes, b=sizes, c=sizes)
def test_dagger_is_an_involution_that_reverses_composition(semiring, a, b, c):
    A, B, C = sets(a, b, c)
    f, g = latent(A, B), latent(B, C)
    close(dagger(dagger(f)), f, semiring)
    from quivers.nn.arrows import Dagger

    close(Dagger(Dagger(f)), f, semiring)
    close(dagger(f >> g), dagger(g) >> dagger(f), semiring)


@pytest.mark.parametrize("semiring", SEMIRINGS)
@settings(max_examples=15, deadline=None)
@given(a=sizes, b=sizes, c=sizes)
def test_fan_is_copy_then_tensor(semiring, a, b, c):
    A, B, C = sets(a, b, c)
    f, g = latent(A, B), latent(A, C)
    close(fan(f, g), observed(copy(A)) >> (f @ g), semiring)
    if semiring in (PROB, LOG, REAL):  # a kernel is total: deleting its output deletes its input
        close(fan(f, g) >> observed(delete(B * C)), observed(delete(A)), semiring)


def test_the_composite_tracks_its_parameters():
    A, B = sets(2, 3)
    f, g = latent(A, B), latent(B, A)
    h = f >> g
    before = h.as_morphism(PROB).tensor.detach().clone()
    opt = torch.optim.SGD(h.parameters(), lr=1.0)
    loss = -h.as_morphism(LOG).tensor[0, 1]
    loss.backward()
    opt.step()
    after = h.as_morphism(PROB).tensor.detach()
    assert after[0, 1] > before[0, 1]
    assert {id(p) for p in h.parameters()} == {id(f.logits), id(g.logits)}


def test_stack_has_independent_layers_and_repeat_shares_one():
    (A,) = sets(3)
    t = latent(A, A)
    assert len(list(stack(t, 3).parameters())) == 3
    assert len(list(repeat(t, 3).parameters())) == 1
    s = stack(t, 2)
    close(s, s.layers[0] >> s.layers[1], LOG)


def test_kernels_stay_kernels():
    A, B = sets(2, 3)
    f, g = latent(A, B), latent(B, B)
    for m in (f >> g, f @ g, fan(f, f), repeat(g, 3), stack(g, 2)):
        k = m.as_morphism(PROB, F64)
        assert type(k).__name__ == "Kernel"
        torch.testing.assert_close(k.tensor.sum(-1), torch.ones(k.dom.size, dtype=F64))
    assert type(dagger(f).as_morphism(PROB)).__name__ == "Morphism"


def test_bad_compositions_name_both_sides():
    A, B, C = sets(2, 3, 4)
    with pytest.raises(CompositionError, match=r"`S0 -> S1` with `S2 -> S0`.*codomain `S1`"):
        latent(A, B) >> latent(C, A)
    with pytest.raises(CompositionError, match="endomorphism"):
        repeat(latent(A, B), 2)
    with pytest.raises(CompositionError, match="endomorphism"):
        stack(latent(A, B), 2)
    with pytest.raises(CompositionError, match="one domain"):
        fan(latent(A, B), latent(B, A))
    with pytest.raises(CompositionError, match="X \\* H -> H"):
        scan(latent(A, A))
    with pytest.raises(QuiversTypeError, match="no count"):
        repeat(latent(A, A)).as_morphism(PROB)
    with pytest.raises(QuiversTypeError, match="non-negative integer"):
        repeat(latent(A, A), -1)
    with pytest.raises(QuiversTypeError, match="FinSet"):
        Latent(A, 3)


def test_the_peer_algebras_name_their_semirings_in_qvr():
    from quivers.dsl import loads

    m = loads("""
composition product_fuzzy
object State : FinSet 3
object Obs : FinSet 2
morphism initial : 1 -> State [role=latent]
morphism transition : State -> State [role=latent]
morphism emission : State -> Obs [role=latent]
define hmm = initial >> repeat(transition) >> emission
""")
    assert m.semiring == PRODUCT_FUZZY
    pi, t, e = (k.as_morphism(PROB, F64).tensor for k in (m.initial, m.transition, m.emission))
    got = m.hmm.as_morphism(m.semiring, F64, n_steps=2).tensor
    # the best path's product: max over s0, s1, s2 of pi[s0] t[s0, s1] t[s1, s2] e[s2, o]
    paths = pi[0][:, None, None, None] * t[:, :, None, None] * t[None, :, :, None] * e[None, None]
    torch.testing.assert_close(got[0], paths.amax((0, 1, 2)))
    real = loads("composition real\nobject A : FinSet 2\nmorphism f : A -> A [role=latent]\ndefine g = f >> f.dagger")
    assert real.semiring == REAL
    # in the ring of reals a latent is a free matrix: `f >> f.dagger` is f f^T, entries of any sign
    f = real.f.weight.detach().double()
    torch.testing.assert_close(real.g.as_morphism(real.semiring, F64).tensor, f @ f.T)
