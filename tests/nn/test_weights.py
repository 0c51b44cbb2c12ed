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
    assert float(m.right.weight.abs().max()) < float(m.left.weight.abs().max())
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
