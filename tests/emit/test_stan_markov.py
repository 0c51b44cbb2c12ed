"""Second-order Markov chains in Stan: the forward algorithm on pairs of
states, run by tests/emit/stan_eval.py and compared with
``Program.log_joint`` (itself checked against enumeration of every path in
tests/programs/test_markov_second_order.py), and here directly against
enumeration too."""

from __future__ import annotations

import itertools

import pytest
import torch

from quivers.dsl import loads
from quivers.emit import stan_data, to_stan
from tests.emit.stan_eval import StanModel
from tests.emit.test_stan import assert_well_formed, blocks
from tests.emit.test_stan_evaluated import compare

CHAIN = """
object S : FinSet 2
object T : FinSet 5
object K : FinSet 3

program seqs : S * T -> S * T
    {maps}sample C : K * K * K <- Dirichlet(1.0)
    sample B : K * K <- Dirichlet(1.0)
    sample p0 : K <- Dirichlet(1.0)
    sample mu : K <- Normal(0.0, 3.0)
    marginalize z : S * T -> K <- Markov(init=p0, first=B, trans=C){opts}
        observe y : S * T <- Normal(mu[z], 1.0)

export seqs
"""


@pytest.mark.parametrize("maps, opts, given", [
    ("", "", {}),
    ("index last : S -> T\n    ", " [until=last]", {"last": torch.tensor([0, 3])}),
    ("index last : S -> T\n    ", " [until=last]", {"last": torch.tensor([1, 4])}),
    ("", " [reduction=max]", {}),
])
def test_a_second_order_chain_is_the_forward_algorithm_on_pairs(float64, maps, opts, given):
    p = loads(CHAIN.format(maps=maps, opts=opts)).morphism
    code = to_stan(p)
    assert_well_formed(code)
    b = blocks(code)
    reduce = "max" if "max" in opts else "log_sum_exp"
    for line in ("pair_z[i, k1] = alpha_z[i] + lb_z[k1] + ll_z[2, k1];", "row_z[k1] = log(B[i, k1]);",
                 "row_z[k1] = log(C[i, j1, k1]);",
                 f"next_z[j1, k1] = {reduce}(pair_z[:, j1] + lc_z[:, k1]) + ll_z[t, k1];",
                 "for (t in 3:last[s]) {" if given else "for (t in 3:T) {"):
        assert line in b["model"], line
    obs = {"y": torch.randn(2, 5, generator=torch.Generator().manual_seed(7)), **given}
    diffs = compare(p, obs, ["C", "B", "p0", "mu"])
    torch.testing.assert_close(torch.tensor(diffs), torch.full((4,), diffs[0]), rtol=0, atol=1e-8)


def test_the_emitted_chain_is_the_sum_over_every_path(float64):
    """The Stan target, less the priors' statements, against enumeration of
    the 3^4 paths of one sequence, by the chain's own definition."""
    src = """
object T : FinSet 4
object K : FinSet 3
program h2 : T -> T
    data C : K * K * K
    data B : K * K
    data p0 : K
    data mu : K
    marginalize z : T -> K <- Markov(init=p0, first=B, trans=C)
        observe y : T <- Normal(mu[z], 0.7)
export h2
"""
    p = loads(src).h2
    g = torch.Generator().manual_seed(2)
    C, B, p0 = (torch.rand(*shape, generator=g) + 0.1 for shape in ((3, 3, 3), (3, 3), (3,)))
    mu, y = torch.randn(3, generator=g) * 2, torch.randn(4, generator=g)
    data = {"C": C, "B": B, "p0": p0, "mu": mu, "y": y}
    target = StanModel(to_stan(p)).log_density(stan_data(p, data))
    C, B, p0 = C / C.sum(-1, keepdim=True), B / B.sum(-1, keepdim=True), p0 / p0.sum()
    normal = torch.distributions.Normal(mu, 0.7)
    total = 0.0
    for z in itertools.product(range(3), repeat=4):
        w = p0[z[0]] * B[z[0], z[1]] * C[z[0], z[1], z[2]] * C[z[1], z[2], z[3]]
        total += float(w * torch.exp(sum(normal.log_prob(y[t])[z[t]] for t in range(4))))
    assert target == pytest.approx(torch.tensor(total).log().item(), abs=1e-10)
    assert target == pytest.approx(float(p.log_joint(None, data, {})), abs=1e-10)


def test_a_second_order_chain_whose_transition_moves_with_a_covariate(float64):
    """Logits `beta * x` on `T * K * K' * K''`: one kernel per step, read at
    the step `t` of the loop."""
    p = loads("""
object T : FinSet 5
object K : FinSet 2
program h : T -> T
    data x : T
    sample beta : K * K * K <- Normal(0.0, 1.0)
    sample B : K * K <- Normal(0.0, 1.0)
    sample mu : K <- Normal(0.0, 3.0)
    marginalize z : T -> K <- Markov(first_logits=B, trans_logits=beta * x)
        observe y : T <- Normal(mu[z], 1.0)
export h
""").h
    model = blocks(to_stan(p))["model"]
    assert "row_z[k1] = beta[i, j1, k1] * x[t];" in model and "row_z[k1] = B[i, k1];" in model
    g = torch.Generator().manual_seed(1)
    diffs = compare(p, {"x": torch.randn(5, generator=g), "y": torch.randn(5, generator=g)}, ["beta", "B", "mu"])
    torch.testing.assert_close(torch.tensor(diffs), torch.zeros(4), rtol=0, atol=1e-8)
