"""Neural conditional kernels: their parameters are what a hand-written
torch network computes at the same weights, the ELBO of a VAE made of them
is the hand-written one, and models made of them train."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from quivers.categories import FinSet
from quivers.errors import QuiversTypeError, UnknownNameError, UnsupportedError
from quivers.nn import Embed, NeuralKernel, Real, elbo, scan

F64 = torch.float64


def test_a_linear_normal_kernel_is_an_affine_map_then_softplus():
    torch.manual_seed(0)
    X, Y = Real("X", 3), Real("Y", 2)
    k = NeuralKernel(X, Y, "Normal")
    x = torch.randn(4, 3)
    (lin,) = [m for m in k.net if isinstance(m, torch.nn.Linear)]
    out = x @ lin.weight.T + lin.bias
    d = k.distribution(x)
    torch.testing.assert_close(d.base_dist.loc, out[:, :2])
    torch.testing.assert_close(d.base_dist.scale, F.softplus(out[:, 2:]))
    y = torch.randn(4, 2)
    expected = torch.distributions.Normal(out[:, :2], F.softplus(out[:, 2:])).log_prob(y).sum(-1)
    torch.testing.assert_close(k.log_prob(y, x), expected)


def test_a_finite_input_is_its_one_hot_row_and_fixed_parameters_stay():
    A, Y = FinSet("A", 3), Real("Y", 2)
    k = NeuralKernel(A, Y, "Normal", fixed={"scale": 0.25})
    (lin,) = list(k.net)
    d = k.distribution(torch.tensor([2]))
    torch.testing.assert_close(d.base_dist.loc[0], lin.weight[:, 2] + lin.bias)
    assert torch.all(d.base_dist.scale == 0.25)
    assert k.learned == ("loc",)


def hand_vae_elbo(encoder, decoder, x, seed):
    """The single-draw ELBO of the same VAE, written with torch alone."""
    l1, _, l2 = encoder.net
    h = torch.tanh(x @ l1.weight.T + l1.bias) @ l2.weight.T + l2.bias
    loc, scale = h[:, :2], F.softplus(h[:, 2:])
    torch.manual_seed(seed)
    z = loc + scale * torch.randn_like(loc)
    (d,) = decoder.net
    logits = z @ d.weight.T + d.bias
    log_lik = -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)
    log_prior = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1)
    log_q = torch.distributions.Normal(loc, scale).log_prob(z).sum(-1)
    return log_lik + log_prior - log_q


def test_the_vae_elbo_is_the_hand_written_one():
    torch.manual_seed(1)
    X, Z = Real("Image", 6), Real("Z", 2)
    encoder = NeuralKernel(X, Z, "Normal", param_source="mlp", hidden=(5,))
    decoder = NeuralKernel(Z, X, "Bernoulli")
    x = (torch.rand(8, 6) > 0.5).to(torch.get_default_dtype())
    torch.manual_seed(7)
    ours = elbo(encoder, decoder, x)
    torch.testing.assert_close(ours, hand_vae_elbo(encoder, decoder, x, 7))


def test_a_vae_trains():
    torch.manual_seed(2)
    X, Z = Real("Image", 8), Real("Z", 2)
    encoder = NeuralKernel(X, Z, "Normal", param_source="mlp", hidden=(16,))
    decoder = NeuralKernel(Z, X, "Bernoulli", param_source="mlp", hidden=(16,))
    prototypes = torch.tensor([[1.0] * 4 + [0.0] * 4, [0.0] * 4 + [1.0] * 4])
    x = prototypes[torch.randint(0, 2, (64,))]
    params = list(encoder.parameters()) + list(decoder.parameters())
    opt = torch.optim.Adam(params, lr=0.05)
    losses = []
    for _ in range(150):
        opt.zero_grad()
        loss = -elbo(encoder, decoder, x).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-10:]) / 10 < sum(losses[:10]) / 10 - 1.5
    draws = decoder.sample(torch.randn(5, 2))
    assert draws.shape == (5, 8) and set(draws.unique().tolist()) <= {0.0, 1.0}


def test_an_rnn_made_of_kernels_trains_and_samples():
    torch.manual_seed(3)
    Token, E, H = FinSet("Token", 4), Real("E", 3), Real("H", 8)
    embed = Embed(Token, E)
    cell = NeuralKernel(E * H, H, "Normal", param_source="mlp", hidden=(16,), fixed={"scale": 0.01})
    out = NeuralKernel(H, Token, "Categorical")
    encoder = embed >> scan(cell)
    # the task: the last token of the prefix, remembered through the recurrence
    xs = torch.randint(0, 4, (64, 5))
    params = list(encoder.parameters()) + list(out.parameters())
    opt = torch.optim.Adam(params, lr=0.03)
    losses = []
    for _ in range(120):
        opt.zero_grad()
        loss = -out.log_prob(xs[:, -1], encoder.sample(xs)).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    y = (encoder >> out).sample(xs[:3])
    assert y.shape == (3,) and bool(((y >= 0) & (y < 4)).all())


def test_bad_kernels_are_errors_naming_them():
    A, Y = FinSet("A", 2), Real("Y", 2)
    with pytest.raises(QuiversTypeError, match="finite set `A`, so its family is `Categorical`"):
        NeuralKernel(Y, A, "Normal")
    with pytest.raises(UnknownNameError, match="param_source"):
        NeuralKernel(A, Y, "Normal", param_source="cnn")
    with pytest.raises(UnknownNameError, match="`Normal` has no parameter `sd`"):
        NeuralKernel(A, Y, "Normal", fixed={"sd": 1.0})
    with pytest.raises(UnsupportedError, match="event rank 2"):
        NeuralKernel(A, Y, "MultivariateNormal", fixed={"loc": 0.0})
    with pytest.raises(QuiversTypeError, match="finite set into a Real"):
        Embed(A, FinSet("B", 2))
    with pytest.raises(UnsupportedError, match="no matrix"):
        NeuralKernel(A, Y, "Normal").as_morphism()
