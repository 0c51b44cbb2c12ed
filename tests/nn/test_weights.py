"""In the `real` algebra a latent morphism is a free real matrix: composites
are matrix products, `.dagger` the transpose, and a low-rank model fits."""

from __future__ import annotations

import pytest
import torch

from quivers.categories import LOG, REAL
from quivers.dsl import loads
from quivers.errors import QuiversError, QuiversTypeError
from quivers.nn import Weights

SOURCE = """
composition real
object Rank : FinSet 2
object Row : FinSet 6
object Col : FinSet 4
morphism left : Rank -> Row [role=latent]
morphism right : Rank -> Col [role=latent, scale=0.1]
define bilinear = left.dagger >> right
"""


def test_a_real_latent_is_a_matrix_and_composites_multiply():
    m = loads(SOURCE)
    assert isinstance(m.left, Weights) and isinstance(m.right, Weights)
    # the entries have both signs: no softmax, no sigmoid
    assert bool((m.left.weight < 0).any()) and bool((m.left.weight > 0).any())
    assert float(m.right.weight.detach().abs().max()) < float(m.left.weight.detach().abs().max())
    expected = m.left.weight.T.double() @ m.right.weight.double()
    torch.testing.assert_close(m.bilinear.as_morphism(REAL, torch.float64).tensor, expected)


def test_the_factorization_fits_a_rank_two_matrix():
    torch.manual_seed(0)
    m = loads(SOURCE)
    target = torch.randn(2, 6).T @ torch.randn(2, 4)
    opt = torch.optim.Adam(m.bilinear.parameters(), lr=0.05)
    for _ in range(400):
        opt.zero_grad()
        loss = (m.bilinear.as_morphism(REAL).tensor - target).pow(2).sum()
        loss.backward()
        opt.step()
    assert loss.item() < 1e-3 * target.pow(2).sum().item()


def test_real_matrices_refuse_other_algebras_and_row_priors():
    m = loads(SOURCE)
    with pytest.raises(QuiversTypeError, match="`left` is a real-valued matrix"):
        m.bilinear.as_morphism(LOG)
    with pytest.raises(QuiversError, match="free real matrix") as err:
        loads("composition real\nobject A : FinSet 2\nmorphism f : A -> A ~ Dirichlet(1.0)\n")
    assert err.value.span is not None and err.value.span.line == 3


def test_a_normal_prior_on_a_matrix_makes_it_real_and_penalizes_it():
    from quivers.dsl.format import format_source

    text = """
object Factor : FinSet 2
object Feature : FinSet 3
morphism load : Factor -> Feature [role=latent] ~ MatrixNormal(0.5, 4.0, 0.25) over (dom, cod)
morphism rows : Factor -> Feature ~ Dirichlet(2.0) over cod iid over dom
"""
    m = loads(text)
    assert isinstance(m.load, Weights) and m.load.prior == (0.5, 1.0)  # sqrt(4 * 0.25)
    expected = torch.distributions.Normal(0.5, 1.0).log_prob(m.load.weight).sum()
    torch.testing.assert_close(m.load.log_prior(), expected)
    # a Dirichlet over the codomain, iid over the domain, is the row prior
    assert m.rows.concentration == 2.0
    canonical = format_source(text)
    assert "[role=latent, over=[dom, cod]] ~ MatrixNormal(0.5, 4.0, 0.25)" in canonical
    assert "[over=cod, iid_over=dom] ~ Dirichlet(2.0)" in canonical
    assert format_source(canonical) == canonical


@pytest.mark.parametrize(
    "decl, message",
    [
        ("morphism w : A -> B ~ MatrixNormal(0.0, 1.0, 1.0) over cod", r"drawn with `over` \(cod, dom\), not \(cod\)"),
        ("morphism w : A -> B ~ Dirichlet(1.0) over dom", r"drawn with `over` \(cod\), not \(dom\)"),
        ("morphism w : A -> B [over=cod]", "has none"),
        ("morphism w : A -> B ~ Normal(0.0, 1.0) over (dom, Q)", "names the axes `dom` and `cod`"),
        ("morphism w : A -> B ~ MatrixNormal(0.0, 0.0, 1.0)", "must be positive"),
    ],
)
def test_bad_matrix_priors_are_located(decl, message):
    with pytest.raises(QuiversError, match=message) as err:
        loads("object A : FinSet 2\nobject B : FinSet 3\n" + decl + "\n")
    assert err.value.span is not None and err.value.span.line == 3
