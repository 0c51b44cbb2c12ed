"""A Categorical observation whose table is indexed by a summed-out latent
(LDA's ``observe w : N <- Categorical(phi[z])``): its log density and
gradient equal brute-force enumeration in float64, batched over chains,
with zero weights scoring exactly ``-inf``, and the table is never copied
to every row."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.distributions import HalfNormal, Normal

from quivers.dsl import loads
from quivers.errors import DataError

F64 = torch.float64
N, D, K, V = 7, 3, 3, 5


def lda_source(n: int, d: int, k: int, v: int, key: str = "") -> str:
    return f"""object N : FinSet {n}
object D : FinSet {d}
object K : FinSet {k}
object V : FinSet {v}
program lda : N -> N [effects=[Sample, Score, Marginal]]
    index doc : N -> D
    sample theta : D * K <- HalfNormal(1.0)
    sample phi : K * V <- {"Normal(0.0, 1.0)" if key else "HalfNormal(1.0)"}
    marginalize z : K <- Categorical(theta[doc])
        observe w : N <- Categorical({key}phi[z])
    return w
export lda
"""


LDA = loads(lda_source(N, D, K, V)).morphism
LDA_LOGITS = loads(lda_source(N, D, K, V, key="logits=")).morphism


def brute(theta: torch.Tensor, phi: torch.Tensor, w: torch.Tensor, doc: torch.Tensor, logits: bool = False) -> torch.Tensor:
    """log p per chain, by loops over rows and topics, in probability space
    (no log of a weight: zero weights need no care), plus the priors."""
    prior = HalfNormal(torch.tensor(1.0, dtype=F64))
    phi_prior = Normal(torch.tensor(0.0, dtype=F64), 1.0) if logits else prior
    out = []
    for c in range(theta.shape[0]):
        th = theta[c] / theta[c].sum(-1, keepdim=True)
        ph = phi[c].softmax(-1) if logits else phi[c] / phi[c].sum(-1, keepdim=True)
        total = prior.log_prob(theta[c]).sum() + phi_prior.log_prob(phi[c]).sum()
        for n in range(len(w)):
            total = total + torch.log(sum(th[doc[n], k] * ph[k, w[n]] for k in range(th.shape[-1])))
        out.append(total)
    return torch.stack(out)


def old_path(theta: torch.Tensor, phi: torch.Tensor, w: torch.Tensor, doc: torch.Tensor) -> torch.Tensor:
    """What the runtime computed before: torch's Categorical on the table
    broadcast against every row (a gather on the expanded table)."""
    prior = HalfNormal(torch.tensor(1.0, dtype=F64))
    emit = torch.distributions.Categorical(logits=phi.log()[:, None, :, :]).log_prob(w[None, :, None])  # (C, N, K)
    lw = (theta / theta.sum(-1, keepdim=True)).log()[:, doc, :]
    return (torch.logsumexp(lw + emit, -1).sum(-1) + prior.log_prob(theta).sum((-1, -2))
            + prior.log_prob(phi).sum((-1, -2)))


def grads(f, theta, phi):
    theta, phi = theta.clone().requires_grad_(), phi.clone().requires_grad_()
    value = f(theta, phi)
    return value.detach(), torch.autograd.grad(value.sum(), (theta, phi))


@st.composite
def case(draw, zeros: bool):
    chains = draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    theta = torch.rand(chains, D, K, generator=g, dtype=F64) + 0.05
    phi = torch.rand(chains, K, V, generator=g, dtype=F64) + 0.05
    if zeros:  # zero weights, keeping one positive weight in every row
        theta = theta * (torch.rand(chains, D, K, generator=g) < 0.6).to(F64)
        theta[..., 0] += 0.5
        phi = phi * (torch.rand(chains, K, V, generator=g) < 0.5).to(F64)
        phi[..., draw(st.integers(0, V - 1))] += 0.5
    w = torch.randint(0, V, (N,), generator=g)
    doc = torch.randint(0, D, (N,), generator=g)
    return theta, phi, w, doc


def quivers(program, w, doc):
    return lambda theta, phi: program.log_joint(None, {"w": w, "doc": doc}, {"theta": theta, "phi": phi},
                                                     check_latents=False)  # zero weights are on the boundary


@settings(max_examples=25, deadline=None)
@given(case(zeros=False), st.sampled_from(["weights", "logits"]))
def test_log_density_and_gradient_match_enumeration_and_the_old_path(c, key):
    theta, phi, w, doc = c
    program, references = LDA, [lambda a, b: brute(a, b, w, doc), lambda a, b: old_path(a, b, w, doc)]
    if key == "logits":
        program, references, phi = LDA_LOGITS, [lambda a, b: brute(a, b, w, doc, logits=True)], phi.log()
    value, (gt, gp) = grads(quivers(program, w, doc), theta, phi)
    for reference in references:
        expected, (et, ep) = grads(reference, theta, phi)
        torch.testing.assert_close(value, expected, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(gt, et, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(gp, ep, rtol=1e-10, atol=1e-10)


@settings(max_examples=40, deadline=None)
@given(case(zeros=True))
def test_zero_weights_score_exactly_minus_inf_with_finite_gradients_elsewhere(c):
    """A word no topic can emit (or that only topics its document cannot
    have emit) makes the chain's density exactly ``-inf``; every other
    chain is finite, with the gradient of enumeration in every positive
    weight and no NaN anywhere. (At a zero weight the derivative of the
    weight's own log is taken as 0: what a parameter that makes the weight
    through ``exp`` or ``softmax`` receives, exactly.)"""
    theta, phi, w, doc = c
    value = quivers(LDA, w, doc)(theta, phi)
    impossible = brute(theta, phi, w, doc) == -math.inf
    assert bool((value[impossible] == -math.inf).all())
    theta, phi = theta[~impossible], phi[~impossible]  # the chains with a gradient
    if not len(theta):
        return
    value, (gt, gp) = grads(quivers(LDA, w, doc), theta, phi)
    expected, (et, ep) = grads(lambda a, b: brute(a, b, w, doc), theta, phi)
    torch.testing.assert_close(value, expected, rtol=1e-12, atol=1e-12)
    assert bool(torch.isfinite(gt).all()) and bool(torch.isfinite(gp).all())
    torch.testing.assert_close(gt[theta > 0], et[theta > 0], rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(gp[phi > 0], ep[phi > 0], rtol=1e-10, atol=1e-10)


def test_a_word_no_topic_emits_is_minus_inf():
    theta = torch.ones(2, D, K, dtype=F64)
    phi = torch.rand(2, K, V, dtype=F64) + 0.1
    phi[1, :, 2] = 0.0  # chain 1: no topic emits word 2
    w, doc = torch.tensor([2, 0, 1, 2, 3, 4, 0]), torch.tensor([0, 1, 2, 0, 1, 2, 0])
    value = LDA.log_joint(None, {"w": w, "doc": doc}, {"theta": theta, "phi": phi}, check_latents=False)
    assert math.isfinite(float(value[0])) and float(value[1]) == -math.inf


def test_the_table_is_not_copied_to_every_row():
    """No tensor that autograd keeps for the backward pass has ``N K V``
    elements (the expanded table of a gather): the gradient costs
    ``O(N K + K V)``."""
    n, k, v, chains = 400, 4, 300, 2
    program = loads(lda_source(n, 5, k, v)).morphism
    g = torch.Generator().manual_seed(0)
    theta = (torch.rand(chains, 5, k, generator=g) + 0.1).requires_grad_()
    phi = (torch.rand(chains, k, v, generator=g) + 0.1).requires_grad_()
    obs = {"w": torch.randint(0, v, (n,), generator=g), "doc": torch.randint(0, 5, (n,), generator=g)}
    sizes = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: sizes.append(t.numel()) or t, lambda t: t):
        value = program.log_joint(None, obs, {"theta": theta, "phi": phi})
    value.sum().backward()
    assert max(sizes) <= chains * max(n * k, k * v)
    assert bool(torch.isfinite(phi.grad).all())


def test_a_word_outside_the_vocabulary_is_a_data_error():
    w, doc = torch.tensor([0, 1, 2, 3, 4, 5, 0]), torch.zeros(N, dtype=torch.long)
    with pytest.raises(DataError, match=r"observation `w` has value 5 at index \(5,\), outside \[0, 5\) of `V`"):
        LDA.log_joint(None, {"w": w, "doc": doc}, {"theta": torch.ones(D, K), "phi": torch.ones(K, V)})
