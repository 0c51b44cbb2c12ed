"""Reproductions of issue 15 (architecture before growth): renaming
rewrites every name a step holds, one weight normalization serves every
block, and expressions own their constants (nothing global grows)."""

from __future__ import annotations

import gc
import math
import weakref

import torch

from quivers.categories import FinSet
from quivers.distributions import Categorical, HalfNormal, Normal
from quivers.dsl import loads
from quivers.programs import Program, identity, marginalize, markov, observe, sample, var
from quivers.programs import expr as expr_module

F64 = torch.float64

HMM = """\
object T : FinSet 4
object K : FinSet 2

program hmm : T -> T [effects=[Sample, Score, Marginal]]
    sample A : K * K <- Dirichlet(1.0)
    sample pi : K <- HalfNormal(1.0)
    sample mu : K <- Normal(0.0, 5.0)
    marginalize z : T -> K <- Markov(init=pi, trans=A)
        observe y : T <- Normal(mu[z], 1.0)

program twice = hmm >> hmm
export twice
"""


def test_a_chain_composed_with_itself_renames_its_init():
    twice = loads(HMM).morphism
    # the second copy's chain reads its own initial law, not the first's
    second = next(s for s in twice.steps if getattr(s, "name", None) == "hmm2_z")
    assert {"hmm2_pi", "hmm2_A"} <= second.reads and "pi" not in second.reads
    lat = {"A": torch.tensor([[0.8, 0.2], [0.3, 0.7]]), "pi": torch.tensor([0.4, 1.2]),
           "mu": torch.tensor([-1.0, 1.0])}
    y = torch.tensor([-1.0, 0.5, 1.2, 0.9])
    obs = {"y": y, "hmm2_y": y}
    lat2 = {**lat, **{f"hmm2_{k}": v for k, v in lat.items()}}
    once = loads(HMM.replace("export twice", "export hmm")).morphism
    single = once.log_joint(None, {"y": y}, lat)
    torch.testing.assert_close(twice.log_joint(None, obs, lat2), 2 * single)


def _forward_in_probabilities(pi, A, mu, y):
    """log p(y) by the forward recursion in probability space: no log of a
    weight, so a zero transition has an ordinary, finite derivative."""
    e = torch.exp(-0.5 * (y[:, None] - mu[None, :]) ** 2) / math.sqrt(2 * math.pi)
    alpha = pi / pi.sum() * e[0]
    rows = A / A.sum(-1, keepdim=True)
    for t in range(1, len(y)):
        alpha = (alpha @ rows) * e[t]
    return alpha.sum().log()


def test_a_zero_transition_has_a_finite_gradient_in_a_chain():
    T, K = FinSet("T", 5), FinSet("K", 2)
    mu, z = var("mu"), var("z")
    p = Program("hmm", T, T, [
        sample("A", K * K, HalfNormal(1.0)),
        sample("pi", K, HalfNormal(1.0)),
        sample("mu", K, Normal(0.0, 5.0)),
        markov("z", T, K, Categorical(var("A")), [observe("y", T, Normal(mu[z], 1.0))], init=Categorical(var("pi"))),
    ])
    y = torch.tensor([-1.0, -0.7, 1.1, 0.8, 1.3], dtype=F64)
    A = torch.tensor([[1.0, 0.0], [0.3, 0.7]], dtype=F64, requires_grad=True)
    pi = torch.tensor([0.5, 0.5], dtype=F64)
    m = torch.tensor([-1.0, 1.0], dtype=F64)
    # check_latents=False: a weight of exactly 0 lies on the edge of HalfNormal's support
    lp = p.log_joint(None, {"y": y}, {"A": A, "pi": pi, "mu": m}, check_latents=False)
    (grad,) = torch.autograd.grad(lp, A)
    assert bool(torch.isfinite(grad).all())
    A2 = A.detach().clone().requires_grad_(True)
    halfnormal = torch.distributions.HalfNormal(torch.tensor(1.0, dtype=F64))
    priors = (halfnormal.log_prob(A2).sum() + halfnormal.log_prob(pi).sum()
              + torch.distributions.Normal(0.0, 5.0).log_prob(m).sum())
    expected = _forward_in_probabilities(pi, A2, m, y) + priors
    (want,) = torch.autograd.grad(expected, A2)
    torch.testing.assert_close(lp.detach(), expected.detach())
    # Where the weight is positive the derivative is the true one; at the zero
    # the shared rule (quivers.programs.weights) takes d log w / dw as 0.
    positive = A.detach() > 0
    torch.testing.assert_close(grad[positive], want[positive])


def test_a_zero_weight_has_the_same_gradient_in_a_block_and_a_chain_of_one_step():
    # one step of a chain is a mixture with the initial law as its weights
    T, K = FinSet("T", 1), FinSet("K", 2)
    mu, z = var("mu"), var("z")
    body = [observe("y", T, Normal(mu[z], 1.0))]
    head = [sample("w", K, HalfNormal(1.0)), sample("mu", K, Normal(0.0, 5.0))]
    chain = Program("c", T, T, [*head, sample("A", K * K, HalfNormal(1.0)), markov("z", T, K, Categorical(var("A")), body, init=Categorical(var("w")))])
    block = Program("b", T, T, [*head, marginalize("z", K, Categorical(var("w")), body)])
    y, m = torch.tensor([0.3], dtype=F64), torch.tensor([-1.0, 1.0], dtype=F64)
    A = torch.eye(2, dtype=F64)
    grads = []
    for p in (chain, block):
        w = torch.tensor([1.0, 0.0], dtype=F64, requires_grad=True)
        lat = {"w": w, "mu": m} | ({"A": A} if p is chain else {})
        lp = p.log_joint(None, {"y": y}, lat, check_latents=False)
        grads.append(torch.autograd.grad(lp, w)[0])
    assert bool(torch.isfinite(grads[0]).all())
    torch.testing.assert_close(grads[0], grads[1])


def _module_tables() -> int:
    """The total size of every module-level dict and list of the
    expression module (a registry of constants would be one of them)."""
    return sum(len(v) for k, v in vars(expr_module).items()
               if isinstance(v, (dict, list)) and not k.startswith("__") and k not in ("FUNCTIONS", "__all__"))


def test_composites_leave_nothing_behind():
    A, B = FinSet("A", 30), FinSet("B", 40)
    for _ in range(3):  # warm caches that are bounded by design
        identity(A) @ identity(B)
    gc.collect()
    before = _module_tables()
    for _ in range(200):
        identity(A) @ identity(B)
    gc.collect()
    assert _module_tables() == before


def test_a_constant_with_requires_grad_is_freed_with_its_expression():
    w = torch.tensor([0.2, 0.8], requires_grad=True)
    scaled = w * 3.0  # a non-leaf: its graph holds w
    e = expr_module.const(scaled) + var("x")
    ref = weakref.ref(scaled)
    del scaled
    assert ref() is not None  # the expression holds it ...
    del e
    gc.collect()
    assert ref() is None  # ... and nothing else does
