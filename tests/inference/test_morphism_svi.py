"""SVI on a morphism model: its loss is the exact negative log density of
the data (plus its kernels' log prior), and bad data is named."""

from __future__ import annotations

import pytest
import torch

from quivers.categories import LOG, FinSet
from quivers.errors import DataError, GradientError
from quivers.inference import ELBO, SVI
from quivers.inference.morphisms import log_density, morphism_loss
from quivers.nn import Latent, latent

A, B = FinSet("A", 2), FinSet("B", 3)


def test_the_loss_is_the_log_weight_of_each_pair_plus_the_prior():
    torch.manual_seed(0)
    f = Latent(A, B, concentration=2.0)
    x, y = torch.tensor([0, 1, 1]), torch.tensor([2, 0, 1])
    w = f.as_morphism(LOG, torch.float64).tensor
    expected = -(w[x, y].sum() + f.log_prior())
    loss, value = morphism_loss(f, None, x, y)
    torch.testing.assert_close(loss.double(), expected.double(), rtol=1e-6, atol=1e-6)
    assert value == loss.item()


def test_bad_outputs_are_named():
    f = latent(A, B)
    with pytest.raises(DataError, match="not an element of B"):
        log_density(f, torch.tensor([0, 1]), torch.tensor([0, 3]))
    with pytest.raises(DataError, match="have shape"):
        log_density(f, torch.tensor([0, 1]), torch.tensor([0, 1, 2]))


def test_a_datum_of_weight_zero_stops_the_fit():
    f = latent(A, B)
    with torch.no_grad():
        f.logits[0, 2] = -float("inf")
    svi = SVI(f, None, torch.optim.Adam(f.parameters()), ELBO())
    with pytest.raises(DataError, match="weight zero"):
        svi.step(torch.tensor([0]), torch.tensor([2]))


def test_a_non_finite_gradient_names_the_parameter():
    f = latent(A, B)
    f.logits.register_hook(lambda g: torch.full_like(g, float("nan")))
    svi = SVI(f, None, torch.optim.Adam(f.parameters()), ELBO())
    with pytest.raises(GradientError, match="`logits`"):
        svi.step(torch.tensor([0]), torch.tensor([1]))


GUIDED = """
object X : Real 3
object Z : Real 2
morphism encode : X -> Z ~ Normal
morphism decode : Z -> X ~ Normal [scale=0.5]
morphism prior : X -> Z ~ Normal [loc=0.0, scale=1.0]
program model : X -> X
    sample z <- prior
    sample w <- Normal(0.0, 1.0)
    observe x <- decode(z)
    return x
"""


def test_a_guided_kernel_program_scores_its_guides_draw():
    """With a guide, the loss is -(log p(x | z) + log p(z) - log q(z | x)) at
    the guide's draw of z: the ELBO, checked by hand at the same draw."""
    from quivers.dsl import loads

    m = loads(GUIDED.replace("    sample w <- Normal(0.0, 1.0)\n", ""))
    x = torch.randn(5, 3)
    torch.manual_seed(3)
    loss, _ = morphism_loss(m.model, m.encode, x, {"x": x})
    torch.manual_seed(3)
    q = m.encode.distribution(x)
    z = q.rsample()
    normal = torch.distributions.Normal
    log_joint = normal(0.0, 1.0).log_prob(z).sum() + m.decode.log_prob(x, z).sum()
    torch.testing.assert_close(loss, -(log_joint - q.log_prob(z).sum()))


def test_bad_guides_are_named():
    from quivers.dsl import loads
    from quivers.errors import QuiversTypeError

    m = loads(GUIDED)
    x = torch.randn(5, 3)
    with pytest.raises(QuiversTypeError, match=r"draws `z`, `w`; give its guide as a dict"):
        morphism_loss(m.model, m.encode, x, {"x": x})
    with pytest.raises(QuiversTypeError, match="covers `v`, which program `model` does not draw"):
        morphism_loss(m.model, {"v": m.encode}, x, {"x": x})
    with pytest.raises(QuiversTypeError, match="a kernel with a family"):
        morphism_loss(m.model, {"z": object()}, x, {"x": x})
