"""Programs whose densities reach the edges of their supports: impossible
values are -inf exactly, zero-inflation written ``probs * z`` inside a
``marginalize`` block is exact (against brute-force enumeration in
float64), and gradients are finite where a parameter is exactly zero on
an enumerated branch (issue 25, item 2; issue 15, part 6 and its fourth
reproduction).
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from quivers.dsl import loads

from tests.programs.brute import lse

# the fixtures `dtype` (float32, then float64) and `float64` are in tests/conftest.py


def test_a_success_of_a_zero_probability_is_impossible(dtype):
    p = loads("""
object N : FinSet 1
program p : N -> N
    sample q <- Beta(2.0, 2.0)
    observe y : N <- Bernoulli(q * 0.0)
    observe s : N <- Binomial(18, probs=q * 0.0)
    return y
export p
""").morphism
    q = {"q": torch.tensor(0.3)}
    assert p.log_joint(None, {"y": torch.ones(1), "s": torch.zeros(1)}, q).item() == -math.inf
    assert p.log_joint(None, {"y": torch.zeros(1), "s": torch.ones(1)}, q).item() == -math.inf
    want = torch.distributions.Beta(2.0, 2.0).log_prob(torch.tensor(0.3))
    torch.testing.assert_close(p.log_joint(None, {"y": torch.zeros(1), "s": torch.zeros(1)}, q), want)


# Zero-inflation written as a product with the enumerated latent: z = 0 makes
# the probability (or the rate) exactly 0 on that branch.
OCCUPANCY = """
object Site : FinSet 4
object Visit : FinSet 12
object Two : FinSet 2
program occupancy : Visit -> Visit
    index site : Visit -> Site
    sample psi : Two <- Dirichlet(1.0)
    sample p <- Beta(1.0, 1.0)
    marginalize z : Two <- Categorical(psi) [over=Site]
        observe y : Visit <- Bernoulli(p * z) [via=site]
    return y
export occupancy
"""

ZIP = """
object Item : FinSet 5
object Two : FinSet 2
program zip : Item -> Item
    sample theta : Two <- Dirichlet(1.0)
    sample a <- Normal(0.0, 1.0)
    sample b <- Normal(0.0, 1.0)
    sample x : Item <- Normal(0.0, 1.0)
    marginalize z : Two <- Categorical(theta)
        observe y : Item <- Poisson(z * exp(a + b * x))
    return y
export zip
"""


def occupancy_brute(y, site, psi, p) -> float:
    """log sum over the occupancy of every site, in float64 with loops."""
    nsite = max(site) + 1
    total = 0.0
    for j in range(nsite):
        terms = []
        for z in (0, 1):
            t = math.log(psi[z]) if psi[z] > 0 else -math.inf
            for yi, si in zip(y, site):
                if si != j:
                    continue
                q = p * z
                pr = q if yi == 1 else 1 - q
                t += math.log(pr) if pr > 0 else -math.inf
            terms.append(t)
        total += lse(terms)
    return total


def zip_brute(y, x, theta, a, b) -> float:
    total = 0.0
    for yi, xi in zip(y, x):
        terms = []
        for z in (0, 1):
            rate = z * math.exp(a + b * xi)
            if rate == 0:
                lp = 0.0 if yi == 0 else -math.inf
            else:
                lp = yi * math.log(rate) - rate - math.lgamma(yi + 1)
            terms.append(math.log(theta[z]) + lp)
        total += lse(terms)
    return total


def _central(f, values: dict[str, torch.Tensor], name: str, eps: float = 1e-6) -> torch.Tensor:
    """Central differences of ``f`` in each entry of ``values[name]``."""
    base = values[name]
    out = torch.zeros_like(base)
    for i in itertools.product(*(range(n) for n in base.shape)):
        up, down = base.clone(), base.clone()
        up[i] += eps
        down[i] -= eps
        out[i] = (f({**values, name: up}) - f({**values, name: down})) / (2 * eps)
    return out


def test_occupancy_with_zero_inflation_is_exact_with_finite_gradients(float64):
    prog = loads(OCCUPANCY).morphism
    g = torch.Generator().manual_seed(1)
    site = torch.arange(12) % 4
    for trial in range(5):
        y = (torch.rand(12, generator=g) < 0.4).double()
        y[site == trial % 4] = 0.0  # a site never seen: occupied or not
        psi = torch.distributions.Dirichlet(torch.ones(2)).sample().double()
        p = torch.rand((), generator=g, dtype=torch.float64)
        lat = {"psi": psi.clone().requires_grad_(), "p": p.clone().requires_grad_()}
        obs = {"y": y, "site": site}
        lp = prog.log_joint(None, obs, lat)
        prior = torch.distributions.Dirichlet(torch.ones(2)).log_prob(psi) + 0.0  # Beta(1, 1) on p is 0
        want = occupancy_brute(y.tolist(), site.tolist(), psi.tolist(), float(p)) + float(prior)
        assert abs(lp.item() - want) < 1e-10
        grads = torch.autograd.grad(lp, [lat["psi"], lat["p"]])
        assert all(torch.isfinite(gr).all() for gr in grads)

        def f(values):
            return occupancy_brute(y.tolist(), site.tolist(), psi.tolist(), float(values["p"]))

        torch.testing.assert_close(grads[1], _central(f, {"p": p}, "p"), rtol=1e-6, atol=1e-6)


def test_zero_inflated_poisson_has_exact_density_and_finite_gradient(float64):
    """Issue 15, reproduction 4: ``Poisson(z * exp(a + b * x))`` has rate 0
    on the branch z = 0, where torch's xlogy differentiates to 0 / 0."""
    prog = loads(ZIP).morphism
    y = torch.tensor([0.0, 2.0, 0.0, 3.0, 1.0])
    x = torch.tensor([0.1, -0.5, 1.0, 2.0, -1.3])
    theta = torch.tensor([0.35, 0.65])
    values = {"a": torch.tensor(0.3), "b": torch.tensor(-0.2)}
    lat = {"theta": theta, **{k: v.clone().requires_grad_() for k, v in values.items()}}
    lp = prog.log_joint(None, {"y": y, "x": x}, lat)
    prior = (torch.distributions.Normal(0.0, 1.0).log_prob(torch.stack([values["a"], values["b"]])).sum()
             + torch.distributions.Normal(0.0, 1.0).log_prob(x).sum()
             + torch.distributions.Dirichlet(torch.ones(2)).log_prob(theta))
    want = zip_brute(y.tolist(), x.tolist(), theta.tolist(), float(values["a"]), float(values["b"])) + float(prior)
    assert abs(lp.item() - want) < 1e-10
    ga, gb = torch.autograd.grad(lp, [lat["a"], lat["b"]])
    assert torch.isfinite(ga) and torch.isfinite(gb)

    def f(v):
        return zip_brute(y.tolist(), x.tolist(), theta.tolist(), float(v["a"]), float(v["b"])) - 0.5 * float(
            v["a"] ** 2 + v["b"] ** 2
        )

    torch.testing.assert_close(ga, _central(f, values, "a"), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(gb, _central(f, values, "b"), rtol=1e-6, atol=1e-6)


def test_zero_inflated_poisson_in_float32_has_finite_gradient(dtype):
    prog = loads(ZIP).morphism
    lat = {"theta": torch.tensor([0.35, 0.65], requires_grad=True), "a": torch.tensor(0.3, requires_grad=True),
           "b": torch.tensor(-0.2, requires_grad=True)}
    lp = prog.log_joint(None, {"y": torch.tensor([0.0, 2.0, 0.0, 3.0, 1.0]), "x": torch.randn(5)}, lat)
    assert torch.isfinite(lp)
    assert all(torch.isfinite(g).all() for g in torch.autograd.grad(lp, list(lat.values())))


def test_categorical_observation_with_zero_weights_in_a_block(float64):
    """A Categorical observation whose table (indexed by the summed-out
    latent) has a zero where an observation falls: that branch is -inf and
    adds nothing to the gradient."""
    prog = loads("""
object Item : FinSet 4
object K : FinSet 2
object V : FinSet 3
program p : Item -> Item
    sample theta : K <- Dirichlet(1.0)
    sample phi : K * V <- Dirichlet(1.0)
    marginalize z : K <- Categorical(theta)
        observe w : Item <- Categorical(phi[z])
    return w
export p
""").morphism
    theta = torch.tensor([0.4, 0.6], requires_grad=True)
    phi = torch.tensor([[0.0, 1 / 3, 2 / 3], [0.25, 0.0, 0.75]], requires_grad=True)
    w = torch.tensor([0, 1, 2, 2])
    lp = prog.log_joint(None, {"w": w}, {"theta": theta, "phi": phi})
    ph = phi.detach() / phi.detach().sum(-1, keepdim=True)
    want = sum(lse([math.log(theta[k].item()) + (math.log(ph[k, v]) if ph[k, v] > 0 else -math.inf)
                    for k in range(2)]) for v in w.tolist())
    prior = torch.distributions.Dirichlet(torch.ones(2, dtype=torch.float64)).log_prob(theta.detach())
    prior = prior + 2 * math.lgamma(3.0)  # Dirichlet(1, 1, 1): the constant 2 on the simplex
    assert abs(lp.item() - (want + prior.item())) < 1e-10
    assert all(torch.isfinite(g).all() for g in torch.autograd.grad(lp, [theta, phi]))


NAN_GRADIENT = """
object Item : FinSet 5
object Two : FinSet 2
program p : Item -> Item
    sample theta : Two <- Dirichlet(1.0)
    sample a <- Normal(0.0, 1.0)
    marginalize z : Two <- Categorical(theta)
        observe y : Item <- Normal(sqrt(z * (a + 5)), 1.0)
    return y
export p
"""


def test_a_non_finite_gradient_names_the_latent_and_the_step_not_the_data():
    """Issue 15, part 6: a density finite at z = 0 whose derivative is not
    (sqrt at 0) is reported as a gradient error at its statement."""
    from quivers.errors import DataError, GradientError
    from quivers.inference import fit

    prog = loads(NAN_GRADIENT).morphism
    y = torch.tensor([0.0, 1.0, 0.5, 2.0, 0.0])
    name, step = prog.nonfinite_gradient(None, {"y": y}, {"theta": torch.tensor([0.5, 0.5]), "a": torch.tensor(0.1)})
    assert (name, step.name) == ("a", "y")
    torch.manual_seed(0)
    with pytest.raises(GradientError) as info:
        fit(prog, {"y": y}, steps=5, progress_bar=False)
    assert not isinstance(info.value, DataError)
    message = str(info.value)
    assert "line 8, column 9" in message and "in `a` is not finite" in message and "`observe y`" in message
    with pytest.raises(GradientError, match=r"line 8, column 9: .* in `a` is not finite at the initial point of a chain: "
                                            r"it comes from the term of `observe y`"):
        fit(prog, {"y": y}, method="nuts", num_warmup=5, num_samples=5, num_chains=2, progress_bar=False)
    # the same program with a finite derivative at 0 fits
    fine = loads(NAN_GRADIENT.replace("sqrt(z * (a + 5))", "z * (a + 5)")).morphism
    assert fine.nonfinite_gradient(None, {"y": y}, {"theta": torch.tensor([0.5, 0.5]), "a": torch.tensor(0.1)}) is None
    fit(fine, {"y": y}, steps=5, progress_bar=False)
