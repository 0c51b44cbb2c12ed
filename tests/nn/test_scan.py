"""Scan: a hidden Markov model written as a recurrence of kernels gives the
exact likelihood, checked against brute-force enumeration in float64."""

from __future__ import annotations

import itertools

import pytest
import torch

from quivers.categories import LOG, MAX_PLUS, MIN_PLUS, PROB, FinSet, copy, delete
from quivers.nn import dagger, latent, observed, repeat, scan

F64 = torch.float64


def hmm(S, O):
    initial, transition, emission = latent(FinSet.unit(), S), latent(S, S), latent(S, O)
    # cell(y, h)[h'] = T[h, h'] * E[h', y]: step, then weigh the new state by the observation
    cell = (dagger(emission) @ transition) >> dagger(observed(copy(S)))
    return initial, transition, emission, cell


def brute_force(pi, T, E, ys):
    """sum over every state path h_0..h_n of pi[h_0] prod_t T[h_{t-1}, h_t] E[h_t, y_t]."""
    total = torch.zeros((), dtype=F64)
    k = pi.shape[-1]
    for path in itertools.product(range(k), repeat=len(ys) + 1):
        w = pi[path[0]]
        for t, y in enumerate(ys):
            w = w * T[path[t], path[t + 1]] * E[path[t + 1], y]
        total = total + w
    return total


@pytest.mark.parametrize("length", [1, 2, 4])
def test_hmm_forward_is_exact(length):
    torch.manual_seed(length)
    S, O = FinSet("S", 3), FinSet("O", 2)
    initial, transition, emission, cell = hmm(S, O)
    forward = scan(cell, init=initial) >> observed(delete(S))
    ys = torch.randint(0, O.size, (5, length))
    log_p = forward.run(ys, LOG, dtype=F64)[..., 0]
    pi = initial.as_morphism(PROB, F64).tensor[0]
    T, E = transition.as_morphism(PROB, F64).tensor, emission.as_morphism(PROB, F64).tensor
    expected = torch.stack([brute_force(pi, T, E, y.tolist()).log() for y in ys])
    torch.testing.assert_close(log_p, expected)
    # the same in probabilities, and as the row of the matrix on O^n
    torch.testing.assert_close(forward.run(ys, PROB, dtype=F64)[..., 0], expected.exp())
    matrix = forward.as_morphism(LOG, F64, n_steps=length).tensor[:, 0]
    rows = torch.tensor([sum(int(y) * O.size ** (length - 1 - t) for t, y in enumerate(seq)) for seq in ys])
    torch.testing.assert_close(matrix[rows], expected)
    # the likelihoods of every sequence of that length sum to one
    torch.testing.assert_close(matrix.exp().sum(), torch.tensor(1.0, dtype=F64))


def test_viterbi_in_max_plus_is_the_best_path():
    torch.manual_seed(0)
    S, O = FinSet("S", 2), FinSet("O", 3)
    initial, transition, emission, cell = hmm(S, O)
    best = scan(cell, init=initial) >> observed(delete(S))
    ys = [2, 0, 1]
    got = best.run(torch.tensor(ys), MAX_PLUS, dtype=F64)[0]
    pi = initial.as_morphism(PROB, F64).tensor[0]
    T, E = transition.as_morphism(PROB, F64).tensor, emission.as_morphism(PROB, F64).tensor
    paths = itertools.product(range(2), repeat=len(ys) + 1)
    top = max(
        float((pi[p[0]] * torch.prod(torch.stack([T[p[t], p[t + 1]] * E[p[t + 1], y] for t, y in enumerate(ys)])))
              .detach())
        for p in paths
    )
    assert got.item() == pytest.approx(torch.log(torch.tensor(top, dtype=F64)).item(), rel=1e-12)
    # in MIN_PLUS the same composite is the least cost, -log of the best path
    cost = best.run(torch.tensor(ys), MIN_PLUS, dtype=F64)[0]
    assert cost.item() == pytest.approx(-got.item(), rel=1e-12)


def test_what_comes_before_a_scan_runs_per_step():
    torch.manual_seed(1)
    A, X, H = FinSet("A", 2), FinSet("X", 3), FinSet("H", 2)
    f, cell, init = latent(A, X), latent(X * H, H), latent(FinSet.unit(), H)
    model = f >> scan(cell, init=init)
    xs = torch.tensor([[0, 1, 1], [1, 1, 0]])
    ran = model.run(xs, LOG, dtype=F64)
    matrix = model.as_morphism(LOG, F64, n_steps=3).tensor
    rows = xs[:, 0] * 4 + xs[:, 1] * 2 + xs[:, 2]
    torch.testing.assert_close(ran, matrix[rows])
    torch.testing.assert_close(ran.exp().sum(-1), torch.ones(2, dtype=F64))


def test_the_n_step_marginal_is_a_matrix_power():
    torch.manual_seed(2)
    S, O = FinSet("S", 3), FinSet("O", 2)
    initial, transition, emission = latent(FinSet.unit(), S), latent(S, S), latent(S, O)
    model = initial >> repeat(transition) >> emission
    T = transition.as_morphism(PROB, F64).tensor
    expected = initial.as_morphism(PROB, F64).tensor @ torch.linalg.matrix_power(T, 7) @ emission.as_morphism(
        PROB, F64).tensor
    torch.testing.assert_close(model.as_morphism(PROB, F64, n_steps=7).tensor, expected)


def test_a_scan_fits_by_gradient_descent():
    torch.manual_seed(3)
    S, O = FinSet("S", 2), FinSet("O", 2)
    initial, transition, emission, cell = hmm(S, O)
    model = scan(cell, init=initial) >> observed(delete(S))
    ys = torch.tensor([[0, 0, 1, 1, 0, 0, 1, 1]] * 4)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    losses = []
    for _ in range(60):
        opt.zero_grad()
        loss = -model.run(ys, LOG).sum()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 1.0


def test_a_filter_is_scored_on_its_final_state():
    """A scan of a kernel cell into a Real state scores the final state under
    the cell at the last step, the state before it drawn by the same steps;
    SVI's loss for `scan(cell)` is that score."""
    from quivers.inference.morphisms import log_density
    from quivers.errors import ShapeError
    from quivers.nn import NeuralKernel, Real

    X, H = Real("X", 2), Real("H", 3)
    cell = NeuralKernel(X * H, H, "Normal", fixed={"scale": 0.5})
    filt = scan(cell)
    xs, y = torch.randn(5, 4, 2), torch.randn(5, 3)
    torch.manual_seed(7)
    got = filt.last_log_prob(y, xs)
    torch.manual_seed(7)
    h = torch.zeros(5, 3)
    for t in range(3):
        h = cell.sample(torch.cat((xs[:, t], h), -1))
    (lin,) = cell.net
    mean = torch.cat((xs[:, 3], h), -1) @ lin.weight.T + lin.bias
    torch.testing.assert_close(got, torch.distributions.Normal(mean, 0.5).log_prob(y).sum(-1))
    torch.manual_seed(7)
    torch.testing.assert_close(log_density(filt, xs, y), got.sum())
    with pytest.raises(ShapeError, match="at least one step"):
        filt.last_log_prob(y, torch.randn(5, 0, 2))
