"""QVR's `[role=observed]` (a matrix given as data at run time) and
`[role=discretize]` (soft bins of a Real value into a finite set): compiled
into the quivers.nn modules of those names, composed with `>>` against
hand-computed values in float64."""

from __future__ import annotations

import pytest
import torch

from quivers.categories import LOG, PROB, FinSet
from quivers.dsl import loads
from quivers.dsl.format import format_source
from quivers.errors import DataError, QuiversError, ShapeError
from quivers.nn import DataMorphism, Discretize, Real, bind, discretize, latent

F64 = torch.float64

SOURCE = """\
object S : FinSet 2
object O : FinSet 3
object X : Real 1
morphism t : S -> S [role=latent]
morphism noise : S -> O [role=observed]
morphism level : X -> S [role=discretize, bins=2, scale=0.5]
define h = t >> noise
define g = level >> noise
"""


def test_observed_has_no_parameters_and_reads_its_data():
    m = loads(SOURCE)
    assert isinstance(m.noise, DataMorphism) and list(m.noise.parameters()) == []
    with pytest.raises(DataError, match="`noise : S -> O` has role `observed` and no matrix yet"):
        m.h.as_morphism(PROB, F64)
    N = torch.tensor([[0.5, 0.25, 0.25], [0.0, 0.1, 0.9]], dtype=F64)
    bind(m.h, {"noise": N})
    T = m.t.as_morphism(PROB, F64).tensor.detach()
    want = [[sum(float(T[a, b] * N[b, o]) for b in range(2)) for o in range(3)] for a in range(2)]
    torch.testing.assert_close(m.h.as_morphism(PROB, F64).tensor, torch.tensor(want, dtype=F64))
    torch.testing.assert_close(m.h.as_morphism(LOG, F64).tensor, torch.tensor(want, dtype=F64).log())
    # the bound matrix is data, not a parameter: training the composite moves only `t`
    assert [p.shape for p in m.h.parameters()] == [p.shape for p in m.t.parameters()]


def test_observed_data_errors_name_the_morphism():
    m = loads(SOURCE)
    with pytest.raises(DataError, match="no data for morphism `noise : S -> O`"):
        bind(m.h, {"nois": torch.ones(2, 3)})
    with pytest.raises(ShapeError, match=r"`noise : S -> O` needs a matrix of shape \(2, 3\), got \(3, 2\)"):
        bind(m.h, {"noise": torch.ones(3, 2)})
    with pytest.raises(DataError, match="finite and non-negative"):
        bind(m.h, {"noise": -torch.ones(2, 3)})


def _rows(x: float, cuts: list[float], s: float) -> list[float]:
    """Ordered-logistic bins by hand."""
    import math

    cdf = [0.0] + [1 / (1 + math.exp(-(c - x) / s)) for c in cuts] + [1.0]
    return [cdf[k + 1] - cdf[k] for k in range(len(cuts) + 1)]


def test_discretize_rows_are_distributions_and_compose_by_hand():
    m = loads(SOURCE)
    assert isinstance(m.level, Discretize) and m.level.scale == 0.5
    xs = torch.tensor([[-2.0], [0.0], [0.3], [5.0]], dtype=F64)
    rows = m.level.run(xs, PROB, dtype=F64)
    assert bool((rows >= 0).all())
    torch.testing.assert_close(rows.sum(-1), torch.ones(4, dtype=F64))
    cuts = m.level.cuts.detach().tolist()
    assert cuts == [0.0]  # two bins start with one cut at 0
    torch.testing.assert_close(rows, torch.tensor([_rows(float(x), cuts, 0.5) for x in xs], dtype=F64))
    N = torch.tensor([[0.5, 0.25, 0.25], [0.0, 0.1, 0.9]], dtype=F64)
    bind(m.g, {"noise": N})
    got = m.g.run(xs, PROB, dtype=F64)
    want = [[sum(r[b] * float(N[b, o]) for b in range(2)) for o in range(3)] for r in rows.tolist()]
    torch.testing.assert_close(got, torch.tensor(want, dtype=F64))
    torch.testing.assert_close(m.g.run(xs, LOG, dtype=F64), torch.tensor(want, dtype=F64).log())


def test_discretize_cut_points_are_learned_and_stay_ordered():
    d = discretize(Real("X", 1), FinSet("K", 4), scale=0.3)
    assert [tuple(p.shape) for p in d.parameters()] == [(1,), (2,)]
    torch.testing.assert_close(d.cuts.detach(), torch.tensor([-1.0, 0.0, 1.0]))
    x = torch.tensor([[0.2], [0.8], [-0.4]])
    y = torch.tensor([3, 3, 0])
    opt = torch.optim.Adam(d.parameters(), lr=0.05)
    before = -d.log_prob(y, x).sum().item()
    for _ in range(50):
        opt.zero_grad()
        loss = -d.log_prob(y, x).sum()
        loss.backward()
        opt.step()
    assert loss.item() < before
    assert bool((d.cuts.diff() > 0).all())
    # fixed cut points are buffers, not parameters, and a draw is a bin
    fixed = Discretize(Real("X", 1), FinSet("K", 3), cuts=torch.tensor([-1.0, 1.0]))
    assert list(fixed.parameters()) == []
    assert set(fixed.sample(torch.randn(50, 1)).tolist()) <= {0, 1, 2}
    torch.testing.assert_close(
        fixed.probs(torch.tensor([[0.0]], dtype=F64)), torch.tensor([_rows(0.0, [-1.0, 1.0], 1.0)], dtype=F64)
    )


def test_latent_then_observed_equals_the_python_combinators():
    A, B = FinSet("A", 2), FinSet("B", 2)
    t = latent(A, A, name="t")
    h = t >> DataMorphism(A, B, name="n").bind(torch.eye(2, dtype=F64))
    torch.testing.assert_close(h.as_morphism(PROB, F64).tensor, t.as_morphism(PROB, F64).tensor)


def test_fmt_round_trips_the_roles():
    assert format_source(SOURCE) == SOURCE


@pytest.mark.parametrize("line, message, column", [
    ("morphism d : S -> O [role=discretize]", "`S` is not a Real object", 14),
    ("morphism d : X -> Y [role=discretize]", "`Y` is a Real object", 19),
    ("morphism d : X -> S [role=discretize, scale=0]", "temperature", 1),
    ("morphism d : X -> S [role=discretize, init=uniform]", "`init` has no meaning", 39),
    ("morphism d : X -> S [role=discretize] ~ Normal", "not of a morphism with role `discretize`", 1),
    ("morphism d : X -> S [role=observed]", "`X` is a Real object", 14),
])
def test_a_role_that_does_not_fit_its_objects_is_a_located_error(line, message, column):
    head = "object S : FinSet 2\nobject O : FinSet 3\nobject X : Real 1\nobject Y : Real 1\n"
    with pytest.raises(QuiversError) as info:
        loads(head + line + "\n")
    assert message in str(info.value)
    assert (info.value.span.line, info.value.span.column) == (5, column)


PROGRAMS = """\
object S : FinSet 2
object O : FinSet 3
object X : Real 1
morphism noise : S -> O [role=observed]
morphism level : X -> S [role=discretize, scale=0.5]
program channel(s) : S -> O
    observe o <- noise(s)
    return o
program binned(x) : X -> S
    observe k <- level(x)
    return k
"""


def test_a_program_takes_an_observed_matrix_in_its_data_and_observes_through_both_roles():
    m = loads(PROGRAMS)
    N = torch.tensor([[0.5, 0.25, 0.25], [0.0, 0.1, 0.9]], dtype=F64)
    s, o = torch.tensor([0, 1, 1]), torch.tensor([1, 2, 1])
    got = m.channel.log_prob({"o": o, "noise": N}, s)
    want = sum(torch.log(N[a, b]).item() for a, b in zip(s.tolist(), o.tolist()))
    assert got.item() == pytest.approx(want, rel=1e-12)
    x, k = torch.tensor([[-0.3], [0.4]], dtype=F64), torch.tensor([0, 0])
    got = m.binned.log_prob({"k": k}, x)
    want = sum(torch.log(torch.tensor(_rows(float(xi), [0.0], 0.5)[ki], dtype=F64)).item()
               for xi, ki in zip(x[:, 0], k.tolist()))
    assert got.item() == pytest.approx(want, rel=1e-12)


LATENT_CHANNEL = """\
object S : FinSet 3
object O : FinSet 2
morphism t : S -> O [role=latent]

program scored(s) : S -> O
    observe o <- t(s)
    return o

program drawn(s) : S -> O
    sample o <- t(s)
    return o

export scored
"""


def test_a_program_observes_and_draws_through_a_latent_kernel_by_its_rows():
    # observing through a kernel that has no family of its own scored a
    # draw as if it were a distribution (a bare AttributeError)
    m = loads(LATENT_CHANNEL)
    (t,) = [k for k in m.scored.modules() if type(k).__name__ == "Latent"]
    P = t.as_morphism(PROB).tensor.detach()
    s, o = torch.tensor([0, 2, 1]), torch.tensor([1, 0, 0])
    assert m.scored.log_prob({"o": o}, s).item() == pytest.approx(P[s, o].log().sum().item(), rel=1e-6)
    draws = m.drawn.sample(s)  # the program's return value, o
    assert draws.shape == s.shape and bool(((draws >= 0) & (draws < 2)).all())
