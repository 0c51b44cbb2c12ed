"""Markov latents in inference: SVI and NUTS see only the sampled latents
(the path is summed out), and infer_discrete draws whole paths."""

from __future__ import annotations

import math

import torch

from quivers.categories import FinSet
from quivers.distributions import Categorical, Dirichlet, Normal
from quivers.inference import ELBO, SVI, AutoNormalGuide, infer_discrete
from quivers.inference.mcmc import MCMC, NUTS
from quivers.programs import Program, const, markov, observe, sample, var

mu, z = var("mu"), var("z")


def hmm(steps: int, trans=None) -> Program:
    T, K = FinSet("T", steps), FinSet("K", 2)
    first = [sample("A", K * K, Dirichlet(1.0))] if trans is None else []
    weights = var("A") if trans is None else const(trans)
    return Program("hmm", T, T, first + [
        sample("mu", K, Normal(0.0, 3.0)),
        markov("z", T, K, Categorical(weights), [observe("y", T, Normal(mu[z], 1.0))]),
    ])


def test_svi_and_nuts_see_no_markov_latent():
    torch.manual_seed(0)
    prog = hmm(8)
    y = {"y": torch.tensor([-1.0, -1.1, -0.9, 1.2, 1.0, 0.8, -1.0, 1.1])}
    assert [s.name for s in prog.latent_sites()] == ["A", "mu"]
    guide = AutoNormalGuide(prog, observed_names={"y"})
    svi = SVI(prog, guide, torch.optim.Adam(guide.parameters(), lr=0.05), ELBO(num_particles=2))
    losses = [svi.step(None, y) for _ in range(30)]
    assert all(math.isfinite(v) for v in losses)
    mcmc = MCMC(NUTS(prog), num_warmup=15, num_samples=10, num_chains=2, seed=0, progress_bar=False)
    mcmc.run(None, y)
    assert set(mcmc.get_samples()) == {"A", "mu"}


def test_infer_discrete_draws_whole_paths():
    # A chain that flips its state at every step, with uninformative
    # observations: each step's marginal is (1/2, 1/2), but every path
    # alternates. Draws from the marginals, step by step, would not.
    prog = hmm(6, trans=torch.tensor([[0.0, 1.0], [1.0, 0.0]]))
    draws = {"mu": torch.zeros(50, 2)}
    out = infer_discrete(prog, draws, observations={"y": torch.zeros(6)}, seed=0)["z"]
    torch.testing.assert_close(out.probs, torch.full((6, 2), 0.5))
    assert out.draws.shape == (50, 6)
    assert (out.draws[:, 1:] != out.draws[:, :-1]).all()
    assert 0 < out.draws[:, 0].sum() < 50  # both starting states occur
    again = infer_discrete(prog, draws, observations={"y": torch.zeros(6)}, seed=0)["z"]
    assert torch.equal(out.draws, again.draws)


def test_svi_and_nuts_fit_a_second_order_chain():
    # z[t] depends on z[t-1] and z[t-2]: C on K * K * K, B on K * K for z[1]
    torch.manual_seed(0)
    T, K = FinSet("T", 10), FinSet("K", 2)
    prog = Program("h2", T, T, [
        sample("C", K * K * K, Dirichlet(1.0)),
        sample("mu", K, Normal(0.0, 3.0)),
        markov("z", T, K, Categorical(var("C")), [observe("y", T, Normal(mu[z], 0.5))],
               first=Categorical(const(torch.full((2, 2), 0.5)))),
    ])
    y = {"y": torch.tensor([-1.0, -1.1, 1.2, 1.0, -0.9, -1.0, 1.1, 0.9, -1.2, -0.8])}  # period 4: 0 0 1 1
    assert [s.name for s in prog.latent_sites()] == ["C", "mu"]
    guide = AutoNormalGuide(prog, observed_names={"y"})
    svi = SVI(prog, guide, torch.optim.Adam(guide.parameters(), lr=0.05), ELBO(num_particles=2))
    losses = [svi.step(None, y) for _ in range(60)]
    assert all(math.isfinite(v) for v in losses)
    assert sum(losses[-10:]) < sum(losses[:10])
    mcmc = MCMC(NUTS(prog), num_warmup=40, num_samples=40, num_chains=1, seed=0, progress_bar=False)
    mcmc.run(None, y)
    draws = mcmc.get_samples()
    assert set(draws) == {"C", "mu"} and draws["C"].shape == (40, 2, 2, 2)
    # the data alternate in pairs, so after (0, 0) comes 1: C[0, 0, 1] is large
    assert float(draws["C"][:, 0, 0, 1].mean()) > 0.6
    assert torch.isfinite(prog.log_joint(None, y, {k: v[-1] for k, v in draws.items()}))


def test_loo_leaves_out_whole_sequences_of_a_chain():
    """A chain's likelihood factors over its sequences, not its steps: the
    pointwise term of each sequence is its marginal likelihood (checked
    against the sum over every path, by loops, in float64), and PSIS-LOO
    has one Pareto k per sequence."""
    import warnings

    from tests.programs.test_markov import lse, path_weights, sequences

    from quivers.inference import fit, loo

    prog = sequences(4, 3, 2).double()
    torch.manual_seed(0)
    y = torch.randn(4, 3, dtype=torch.float64)
    last = torch.tensor([2, 1, 2, 0])
    w, mus = [[0.7, 1.3], [0.4, 0.9]], [-1.0, 1.5]
    lat = {"w": torch.tensor(w, dtype=torch.float64), "mu": torch.tensor(mus, dtype=torch.float64)}
    terms = prog.pointwise_log_likelihood(None, {"y": y, "last": last}, lat)["y"]
    assert terms.shape == (4,)
    for i in range(4):
        expected = lse(list(path_weights(y[i, : int(last[i]) + 1].tolist(), w, None, mus, [1.0, 1.0]).values()))
        assert math.isclose(float(terms[i]), expected, rel_tol=1e-9, abs_tol=1e-9)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a short run, and PSIS's warning on its few draws
        result = fit(prog, {"y": y, "last": last}, num_warmup=40, num_samples=40, num_chains=2, seed=0,
                     progress_bar=False)
        k = loo(result).pareto_k
    assert k.dims == ("S",) and k.shape == (4,)
