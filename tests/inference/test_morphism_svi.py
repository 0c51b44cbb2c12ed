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
