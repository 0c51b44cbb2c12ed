"""Values built from entries: ``vector(K, a, b)`` and ``matrix(K, ...)``.

A mixture whose weights are ``(theta, 1 - theta)`` is checked against
brute-force enumeration in float64 (value and gradient), and a
MultivariateNormal whose covariance is built with ``matrix`` against torch.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from quivers.categories import FinSet
from quivers.distributions import Beta, Categorical, HalfNormal, MultivariateNormal, Normal
from quivers.dsl import dumps, loads, parse
from quivers.errors import InvalidValueError, QuiversTypeError, ShapeError
from quivers.programs import Program, marginalize, matrix, observe, sample, stack, var, vector
from quivers.programs.expr import compile_expr
from quivers.programs.named import Value

from tests.programs.brute import lse

D = torch.float64

MIXTURE = """
object N : FinSet 4
object K : FinSet 2
program mix : N -> N [effects=[Sample, Score, Marginal]]
    sample theta <- Beta(2.0, 2.0)
    sample mu : K <- Normal(0.0, 3.0)
    marginalize z : K <- Categorical(vector(K, theta, 1 - theta))
        observe y : N <- Normal(mu[z], 1.0)
    return y
"""

COVARIANCE = """
object N : FinSet 6
object K : FinSet 2
program mvn : N -> N
    sample s1 <- HalfNormal(1.0)
    sample s2 <- HalfNormal(1.0)
    sample r <- Uniform(-1.0, 1.0)
    sample m : K <- Normal(0.0, 1.0)
    let cov = matrix(K, s1 ^ 2, r * s1 * s2, r * s1 * s2, s2 ^ 2)
    observe y : N * K <- MultivariateNormal(m, covariance_matrix=cov)
"""


def _python_mixture() -> Program:
    N, K = FinSet("N", 4), FinSet("K", 2)
    theta = var("theta")
    return Program("mix", N, N, [
        sample("theta", None, Beta(2.0, 2.0)),
        sample("mu", K, Normal(0.0, 3.0)),
        marginalize("z", K, Categorical(vector(K, theta, 1 - theta)), [
            observe("y", N, Normal(var("mu")[var("z")], 1.0)),
        ]),
    ])


def _brute_mixture(y: list[float], theta: float, mu: list[float]) -> float:
    """Every assignment of the rows' latents, in loops."""
    def normal(x, m, s):
        return -0.5 * ((x - m) / s) ** 2 - math.log(s) - 0.5 * math.log(2 * math.pi)

    prior = math.log(6 * theta * (1 - theta)) + sum(normal(m, 0, 3) for m in mu)
    w = [theta, 1 - theta]
    terms = [sum(math.log(w[k]) + normal(y[n], mu[k], 1.0) for n, k in enumerate(z))
             for z in itertools.product(range(2), repeat=len(y))]
    return prior + lse(terms)


@pytest.mark.parametrize("build", [lambda: loads(MIXTURE).morphism, _python_mixture], ids=["qvr", "python"])
@pytest.mark.parametrize("theta", [0.3, 0.9])
def test_a_mixture_weighted_by_theta_and_one_minus_theta_matches_enumeration(build, theta):
    y = torch.tensor([0.1, -2.0, 3.0, 1.0], dtype=D)
    theta_t = torch.tensor(theta, dtype=D, requires_grad=True)
    mu = torch.tensor([-1.0, 2.0], dtype=D, requires_grad=True)
    got = build().log_joint(None, {"y": y}, {"theta": theta_t, "mu": mu})
    want = _brute_mixture(y.tolist(), theta, mu.tolist())
    assert abs(float(got.detach()) - want) < 1e-10
    got.backward()
    # central differences of the brute force, in float64
    h = 1e-6
    d_theta = (_brute_mixture(y.tolist(), theta + h, mu.tolist()) - _brute_mixture(y.tolist(), theta - h, mu.tolist())) / (2 * h)
    assert abs(float(theta_t.grad) - d_theta) < 1e-6
    for k in range(2):
        up, down = mu.tolist(), mu.tolist()
        up[k] += h
        down[k] -= h
        d_mu = (_brute_mixture(y.tolist(), theta, up) - _brute_mixture(y.tolist(), theta, down)) / (2 * h)
        assert abs(float(mu.grad[k]) - d_mu) < 1e-6


def test_a_covariance_built_with_matrix_matches_torch():
    model = loads(COVARIANCE).morphism
    assert (model.sites["cov"].dims, model.sites["cov"].shape) == (("K", "K'"), (2, 2))
    g = torch.Generator().manual_seed(0)
    y = torch.randn(6, 2, generator=g, dtype=D)
    s1, s2, r = (torch.tensor(v, dtype=D, requires_grad=True) for v in (1.5, 0.5, 0.3))
    m = torch.tensor([0.1, -0.2], dtype=D)
    got = model.log_joint(None, {"y": y}, {"s1": s1, "s2": s2, "r": r, "m": m})
    grads = torch.autograd.grad(got, (s1, s2, r))
    t1, t2, tr = (torch.tensor(v, dtype=D, requires_grad=True) for v in (1.5, 0.5, 0.3))
    cov = torch.stack([torch.stack([t1**2, tr * t1 * t2]), torch.stack([tr * t1 * t2, t2**2])])
    want = torch.distributions.MultivariateNormal(m, covariance_matrix=cov).log_prob(y).sum()
    want = want + torch.distributions.HalfNormal(torch.tensor(1.0, dtype=D)).log_prob(torch.stack([t1, t2])).sum()
    want = want + math.log(0.5) + torch.distributions.Normal(torch.tensor(0.0, dtype=D), 1.0).log_prob(m).sum()
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    for a, b in zip(grads, torch.autograd.grad(want, (t1, t2, tr))):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


def test_entries_on_a_plate_give_one_vector_per_row():
    K = FinSet("K", 2)
    theta = Value(torch.tensor([[0.2, 0.5, 0.9]], dtype=D), ("Item",))  # one batch axis
    v = compile_expr(vector(K, var("theta"), 1 - var("theta")))({"theta": theta})
    assert v.dims == ("Item", "K") and v.tensor.shape == (1, 3, 2)
    torch.testing.assert_close(v.tensor.sum(-1), torch.ones(1, 3, dtype=D), rtol=0, atol=0)
    # two entries on different plates broadcast against each other
    a = Value(torch.tensor([1.0, 2.0], dtype=D), ("A",))
    b = Value(torch.tensor([10.0, 20.0, 30.0], dtype=D), ("B",))
    w = compile_expr(vector(K, var("a"), var("b")))({"a": a, "b": b})
    assert w.dims == ("A", "B", "K")
    assert w.tensor[1, 2].tolist() == [2.0, 30.0]


def test_per_row_weights_in_a_marginalized_model_match_enumeration():
    # theta on the rows: each row has its own (theta_n, 1 - theta_n).
    source = """
object N : FinSet 3
object K : FinSet 2
program mix : N -> N
    sample theta : N <- Beta(2.0, 2.0)
    sample mu : K <- Normal(0.0, 3.0)
    marginalize z : K <- Categorical(vector(K, theta, 1 - theta))
        observe y : N <- Normal(mu[z], 1.0)
"""
    y = torch.tensor([0.5, -1.0, 2.0], dtype=D)
    theta = torch.tensor([0.2, 0.6, 0.7], dtype=D)
    mu = torch.tensor([-1.0, 1.5], dtype=D)
    got = loads(source).morphism.log_joint(None, {"y": y}, {"theta": theta, "mu": mu})
    beta = torch.distributions.Beta(torch.tensor(2.0, dtype=D), torch.tensor(2.0, dtype=D))
    normal = torch.distributions.Normal
    want = float(beta.log_prob(theta).sum() + normal(torch.tensor(0.0, dtype=D), 3.0).log_prob(mu).sum())
    for n in range(3):
        w = [float(theta[n]), 1 - float(theta[n])]
        want += lse([math.log(w[k]) + float(normal(mu[k], 1.0).log_prob(y[n])) for k in range(2)])
    assert abs(float(got) - want) < 1e-10


def test_stack_runs_along_any_product_and_matrix_is_square():
    A, B = FinSet("A", 2), FinSet("B", 3)
    v = compile_expr(stack(A * B, range(6)))({})
    assert v.dims == ("A", "B") and v.tensor.tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
    assert compile_expr(matrix(A, 1, 2, 3, 4))({}).dims == ("A", "A'")
    with pytest.raises(ShapeError, match=r"a value along `A\*A` \(size 4\) needs 4 entries, got 3"):
        matrix(A, 1, 2, 3)
    with pytest.raises(QuiversTypeError, match="`stack` runs along a FinSet"):
        stack("A", [1, 2])


def test_an_entry_already_on_the_sets_axis_is_a_shape_error():
    source = """
object K : FinSet 2
program p : K -> K
    sample mu : K <- Normal(0.0, 1.0)
    let w = vector(K, mu, 1.0)
"""
    with pytest.raises(ShapeError, match=r"the entries of a value along `K` already have the axis `K`") as info:
        loads(source)
    assert info.value.span is not None and info.value.span.line == 5


@pytest.mark.parametrize(
    "expr, message",
    [
        ("vector(K, 1.0)", r"`vector\(K, \.\.\.\)` needs 2 entries, one per element of `K` \(size 2\), got 1"),
        ("matrix(K, 1.0, 0.0, 0.0)", r"`matrix\(K, \.\.\.\)` needs 4 entries, one per element of `K \* K` \(2 x 2\), got 3"),
        ("vector(1.0, 2.0)", r"`vector` takes the object its entries run along first, e\.g\. `vector\(K, a, b\)`"),
        ("vector(a, 2.0, 3.0)", r"`a` is not an object"),
        ("vector()", r"`vector` takes the object"),
        ("vektor(K, 1.0)", r"unknown function `vektor`.*vector, matrix"),
    ],
)
def test_checker_errors_name_the_call(expr, message):
    source = f"object K : FinSet 2\nprogram p : K -> K\n    sample a <- Normal(0.0, 1.0)\n    let w = {expr}\n"
    with pytest.raises(QuiversTypeError, match=message) as info:
        loads(source)
    assert info.value.span.line == 4


@pytest.mark.parametrize("source", [MIXTURE, COVARIANCE])
def test_qvr_fmt_round_trips(source):
    module = parse(source)
    assert parse(dumps(module)) == module
    assert "vector(K, theta, 1 - theta)" in dumps(module) or "matrix(K, s1 ^ 2" in dumps(module)


def test_a_built_covariance_that_is_not_positive_definite_is_named_not_a_torch_error():
    model = loads(COVARIANCE).morphism
    y = torch.zeros(6, 2, dtype=D)
    one = torch.tensor(1.0, dtype=D)
    with pytest.raises(InvalidValueError, match="parameter `covariance_matrix` of `y` is not positive definite"):
        model.log_joint(None, {"y": y}, {"s1": one, "s2": one, "r": one, "m": torch.zeros(2, dtype=D)})
    # A batch of draws, as MCMC passes them: the bad draw's density is NaN (a
    # divergence), the others are exact.
    batch = {"s1": torch.ones(2, dtype=D), "s2": torch.ones(2, dtype=D), "r": torch.tensor([0.5, 1.0], dtype=D),
             "m": torch.zeros(2, 2, dtype=D)}
    lp = model.log_joint(None, {"y": y}, batch, check_latents=False)
    cov = torch.tensor([[1.0, 0.5], [0.5, 1.0]], dtype=D)
    want = torch.distributions.MultivariateNormal(torch.zeros(2, dtype=D), cov).log_prob(y).sum()
    want = want + 2 * torch.distributions.HalfNormal(one).log_prob(one) + math.log(0.5)
    want = want + torch.distributions.Normal(0.0, one).log_prob(torch.zeros(2, dtype=D)).sum()
    torch.testing.assert_close(lp[0], want, rtol=0, atol=1e-12)
    assert torch.isnan(lp[1])


def test_a_set_named_only_by_a_builder_sizes_the_lets_and_observations_on_it():
    source = """
object N : FinSet 4
object K : FinSet 3
program p : N -> N
    sample theta <- Beta(2.0, 2.0)
    let w = vector(K, theta, 1 - theta, 1.0)
    observe c : N <- Categorical(w)
"""
    model = loads(source).morphism
    assert (model.sites["w"].dims, model.sites["w"].shape) == (("K",), (3,))
    c = torch.tensor([0, 2, 1, 2])
    got = model.log_joint(None, {"c": c}, {"theta": torch.tensor(0.25, dtype=D)})
    w = torch.tensor([0.25, 0.75, 1.0], dtype=D)
    want = torch.distributions.Beta(torch.tensor(2.0, dtype=D), 2.0).log_prob(torch.tensor(0.25, dtype=D))
    want = want + torch.log(w / w.sum())[c].sum()
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)


def test_a_let_of_a_matrix_or_a_vector_has_the_sites_dims_of_its_axes():
    """`matrix(K, ...)` is a K x K value and `vector(K, ...)` a K-vector:
    their lets are sites on `K * K` and on `K`, not scalars."""
    source = """
object N : FinSet 4
object K : FinSet 3
program p : N -> N
    sample a <- HalfNormal(1.0)
    let v = vector(K, a, 2 * a, 1.0)
    let m = matrix(K, a, 0.0, 0.0, 0.0, a, 0.0, 0.0, 0.0, a)
    observe y : N * K <- MultivariateNormal(v, covariance_matrix=m)
"""
    model = loads(source).morphism
    assert (model.sites["v"].dims, model.sites["v"].shape) == (("K",), (3,))
    assert (model.sites["m"].dims, model.sites["m"].shape) == (("K", "K'"), (3, 3))
    y = torch.randn(4, 3, generator=torch.Generator().manual_seed(1), dtype=D)
    a = torch.tensor(0.7, dtype=D)
    got = model.log_joint(None, {"y": y}, {"a": a})
    loc = torch.stack([a, 2 * a, torch.tensor(1.0, dtype=D)])
    want = torch.distributions.MultivariateNormal(loc, covariance_matrix=a * torch.eye(3, dtype=D)).log_prob(y).sum()
    want = want + torch.distributions.HalfNormal(torch.tensor(1.0, dtype=D)).log_prob(a)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
