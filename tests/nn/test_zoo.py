"""The morphism models of examples/: each loads, trains for a few hundred
steps on data the test makes (its loss going down), samples values of the
right shape and support, and where a closed form exists matches it."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from quivers.categories import LOG, PROB, REAL
from quivers.dsl import load
from quivers.errors import DataError, QuiversTypeError
from quivers.inference import ELBO, SVI, fit
from quivers.nn import elbo

ROOT = Path(__file__).resolve().parents[2] / "examples"
F64 = torch.float64


def test_hmm_example_is_exact_and_trains():
    torch.manual_seed(0)
    m = load(ROOT / "hmm_morphisms.qvr")
    ys = torch.tensor([[0, 1, 1, 3], [2, 2, 0, 1]])
    pi = m.initial.as_morphism(PROB, F64).tensor[0]
    T, E = m.transition.as_morphism(PROB, F64).tensor, m.emission.as_morphism(PROB, F64).tensor
    got = m.likelihood.run(ys, LOG, dtype=F64)[:, 0]
    for row, y in zip(got, ys.tolist()):
        total = sum(
            pi[p[0]] * torch.prod(torch.stack([T[p[t], p[t + 1]] * E[p[t + 1], v] for t, v in enumerate(y)]))
            for p in itertools.product(range(3), repeat=len(y) + 1)
        )
        torch.testing.assert_close(row, total.log())
    marginal = m.marginal.as_morphism(PROB, F64, n_steps=4).tensor
    torch.testing.assert_close(marginal, pi[None] @ torch.linalg.matrix_power(T, 4) @ E)
    # trained through the users' entry point: Pyro-style SVI, the exact forward likelihood as its loss
    data = torch.tensor([[0, 0, 3, 3, 0, 0, 3, 3]] * 8)
    svi = SVI(m.likelihood, None, torch.optim.Adam(m.likelihood.parameters(), lr=0.1), ELBO())
    first = svi.evaluate_loss(data)
    torch.testing.assert_close(first, -m.likelihood.run(data, LOG).sum().item())
    losses = [svi.step(data) for _ in range(60)]
    assert losses[0] == first and losses[-1] < losses[0] - 5.0
    draws = m.emission.sample(m.transition.sample(torch.zeros(100, dtype=torch.long)))
    assert draws.shape == (100,) and bool(((draws >= 0) & (draws < 4)).all())


def test_hmm_example_fits_with_fit_svi():
    m = load(ROOT / "hmm_morphisms.qvr")
    data = torch.tensor([[0, 0, 3, 3, 0, 0, 3, 3]] * 8)
    result = fit(m.likelihood, None, data, method="svi", steps=80, lr=0.1, seed=0, progress_bar=False)
    assert result.method == "svi" and "point estimates" in repr(result)
    assert result.losses[-1] < result.losses[0] - 5.0
    torch.testing.assert_close(result.losses[-1], -m.likelihood.run(data, LOG).sum().item(), rtol=0.05, atol=0.0)
    # the emission learned: from a state that emits 0, 0 or 3 is nearly all the mass
    emit = m.emission.as_morphism(PROB).tensor.detach()
    assert float(emit[:, [0, 3]].sum(-1).min()) > 0.9
    # a pair-scoring morphism takes its outputs; bad calls say what is expected
    pairs = fit(m.emission, torch.tensor([0, 3, 3]), torch.tensor([0, 1, 2]), steps=20, lr=0.1, progress_bar=False)
    assert pairs.losses[-1] < pairs.losses[0]
    with pytest.raises(DataError, match="give the outputs"):
        fit(m.emission, None, torch.tensor([0, 1]), steps=1, progress_bar=False)
    with pytest.raises(QuiversTypeError, match="fitted by SVI"):
        fit(m.likelihood, None, data, method="nuts", progress_bar=False)
    with pytest.raises(QuiversTypeError, match="no latent sites"):
        SVI(m.likelihood, object(), torch.optim.Adam(m.likelihood.parameters()), ELBO()).step(data)


def test_rnn_example_learns_to_recall():
    torch.manual_seed(1)
    m = load(ROOT / "rnn_lm.qvr")
    xs = torch.randint(0, 6, (128, 6))
    # SVI on the composite: its head scores the last token at the encoder's state
    svi = SVI(m.rnn, None, torch.optim.Adam(m.rnn.parameters(), lr=0.02), ELBO())
    first = m.lm_head.log_prob(xs[:, -1], m.encoder.sample(xs)).sum().item()
    torch.testing.assert_close(svi.evaluate_loss(xs, xs[:, -1]), -first, rtol=1e-3, atol=0.0)  # the cell draws its state
    losses = [svi.step(xs, xs[:, -1]) for _ in range(200)]
    assert losses[-1] < 0.5 * losses[0]
    y = m.rnn.sample(xs[:10])
    assert y.shape == (10,) and bool(((y >= 0) & (y < 6)).all())
    accuracy = (m.lm_head.distribution(m.encoder.sample(xs)).probs.argmax(-1) == xs[:, -1]).float().mean()
    assert accuracy > 0.8


def hand_elbo(enc, dec, x, seed):
    """The same VAE's single-draw ELBO with torch alone (tanh MLPs, softplus scale)."""
    def mlp(net, v):
        l1, _, l2 = net
        return torch.tanh(v @ l1.weight.T + l1.bias) @ l2.weight.T + l2.bias

    h = mlp(enc.net, x)
    loc, scale = h[:, :2], F.softplus(h[:, 2:])
    torch.manual_seed(seed)
    z = loc + scale * torch.randn_like(loc)
    log_lik = -F.binary_cross_entropy_with_logits(mlp(dec.net, z), x, reduction="none").sum(-1)
    normal = torch.distributions.Normal
    return log_lik + normal(0.0, 1.0).log_prob(z).sum(-1) - normal(loc, scale).log_prob(z).sum(-1)


def test_vae_example_matches_torch_and_trains():
    torch.manual_seed(2)
    m = load(ROOT / "vae.qvr")
    bars = torch.zeros(4, 16)
    for i in range(4):
        bars[i, 4 * i : 4 * i + 4] = 1.0
    x = bars[torch.randint(0, 4, (128,))]
    torch.manual_seed(11)
    ours = elbo(m.encoder, m.decoder, x[:8])
    torch.testing.assert_close(ours, hand_elbo(m.encoder, m.decoder, x[:8], 11))
    # the model is the QVR program `vae` and the encoder its guide: SVI's loss is -ELBO, the same number
    params = list(m.reconstruct.parameters())
    svi = SVI(m.vae, {"z": m.encoder}, torch.optim.Adam(params, lr=0.02), ELBO())
    torch.manual_seed(11)
    torch.testing.assert_close(svi.evaluate_loss(x[:8], {"x": x[:8]}), -hand_elbo(m.encoder, m.decoder, x[:8], 11).sum().item())
    losses = [svi.step(x, {"x": x}) / len(x) for _ in range(300)]
    assert sum(losses[-10:]) / 10 < sum(losses[:10]) / 10 - 3.0
    draws = m.reconstruct.sample(x[:5])
    assert draws.shape == (5, 16) and set(draws.unique().tolist()) <= {0.0, 1.0}


def test_pmf_example_has_its_density_and_fits_by_svi():
    torch.manual_seed(3)
    m = load(ROOT / "pmf.qvr")
    assert m.semiring == REAL
    user, movie = torch.arange(48) // 6, torch.arange(48) % 6  # every (user, movie) pair once
    u_true, v_true = torch.randn(8, 2), torch.randn(6, 2)
    truth = (u_true[user] * v_true[movie]).sum(-1)
    obs = {"user": user, "movie": movie, "r": truth + 0.1 * torch.randn(48)}
    # the density is PMF's: Normal priors on every factor, Normal ratings around the inner products
    at = {"sigma": torch.tensor([0.7]), "u": torch.randn(1, 8, 2), "v": torch.randn(1, 6, 2)}
    normal = torch.distributions.Normal
    mean = (at["u"][0][user] * at["v"][0][movie]).sum(-1)
    hand = (torch.distributions.HalfNormal(1.0).log_prob(at["sigma"][0]) + normal(0.0, 1.0).log_prob(at["u"]).sum()
            + normal(0.0, 1.0).log_prob(at["v"]).sum() + normal(mean, 0.7).log_prob(obs["r"]).sum())
    torch.testing.assert_close(m.pmf.log_joint(None, obs, at)[0], hand)
    result = fit(m.pmf, obs, method="svi", steps=400, lr=0.05, num_samples=50, seed=0, progress_bar=False)
    assert sum(result.losses[-20:]) / 20 < sum(result.losses[:20]) / 20 - 20.0
    u, v = result.samples["u"], result.samples["v"]
    assert u.shape == (4, 50, 8, 2) and v.shape == (4, 50, 6, 2)
    fitted = (u[..., user, :] * v[..., movie, :]).sum(-1).mean((0, 1))
    assert float(((fitted - truth) ** 2).mean().sqrt()) < 0.5 * float(truth.std())
    ratings = result.predictive(num_samples=5)["r"]
    assert ratings.shape == (4, 5, 48) and bool(torch.isfinite(ratings).all())
