"""``Uniform`` latents (issue 25, item 1): constant bounds, however written,
fix the support; bounds that read other latents (``Uniform(0, 1 -
alpha1)``) go through ``low + (high - low) * sigmoid(u)`` with the bounds
evaluated from the latents before, whose log Jacobian is checked against
autograd."""

from __future__ import annotations

import math

import pytest
import torch

from quivers.categories import FinSet
from quivers.distributions import Normal, Uniform
from quivers.dsl import loads
from quivers.errors import QuiversTypeError
from quivers.inference import fit
from quivers.inference.layout import Layout
from quivers.programs import Program, observe, sample, var

CONSTANT = """
object Item : FinSet 5
program p : Item -> Item
    sample a <- Uniform(0.0, 1.0)
    observe y : Item <- Normal(a, 1.0)
    return y
export p
"""

DEPENDENT = """
object Item : FinSet 5
object K : FinSet 3
program p : Item -> Item
    sample alpha1 <- Uniform(0.0, 1.0)
    let rest = 1 - alpha1
    sample alpha2 <- Uniform(0, rest)
    sample c : K <- Uniform(alpha2, alpha2 + 2 * alpha1 + 1)
    observe y : Item <- Normal(alpha1 + alpha2, 1.0)
    return y
export p
"""


def combinator() -> Program:
    Item = FinSet("Item", 5)
    return Program("p", Item, Item, [sample("a", None, Uniform(0.0, 1.0)), observe("y", Item, Normal(var("a"), 1.0))])


def test_constant_bounds_fix_the_support():
    for prog in (loads(CONSTANT).morphism, combinator()):
        support = prog.sites["a"].support()
        assert float(support.lower_bound) == 0.0 and float(support.upper_bound) == 1.0


@pytest.mark.parametrize("build", [lambda: loads(CONSTANT).morphism, combinator], ids=["qvr", "python"])
@pytest.mark.parametrize("method", ["svi", "nuts"])
def test_fit_a_uniform_latent(build, method):
    torch.manual_seed(0)
    prog = build()
    y = torch.full((5,), 0.8)
    if method == "svi":
        result = fit(prog, {"y": y}, steps=300, progress_bar=False)
    else:
        result = fit(prog, {"y": y}, method="nuts", num_warmup=150, num_samples=150, num_chains=2,
                     progress_bar=False, seed=0)
    a = result.samples["a"]
    assert bool(((a > 0) & (a < 1)).all())
    # the posterior is N(0.8, 1/5) cut to (0, 1): its mean by quadrature
    grid = torch.linspace(0, 1, 20001, dtype=torch.float64)
    w = torch.exp(-2.5 * (grid - 0.8) ** 2)
    mean = float((grid * w).sum() / w.sum())
    assert abs(float(a.double().mean()) - mean) < 0.06


def test_constant_bounds_made_at_float32_keep_a_float64_runs_precision():
    # the support's bounds are made at the default dtype (float32 here);
    # a float64 run's log |J| has log(5.5) to float64's precision, not
    # float32's (6e-8 off), and packing inverts unpacking to float64's too
    Item = FinSet("Item", 3)
    prog = Program("p", Item, Item, [sample("d", None, Uniform(0.5, 6.0)), observe("y", Item, Normal(var("d"), 1.0))])
    layout = Layout(prog.latent_sites({"y"}), prog.parameters_of)
    u = torch.tensor([[-3.0], [0.1], [2.5]], dtype=torch.float64)
    values, logdet = layout.unpack(u)
    assert values["d"].dtype == logdet.dtype == torch.float64
    want = math.log(5.5) + torch.nn.functional.logsigmoid(u[:, 0]) + torch.nn.functional.logsigmoid(-u[:, 0])
    torch.testing.assert_close(logdet, want, rtol=1e-15, atol=1e-15)
    torch.testing.assert_close(values["d"], 0.5 + 5.5 * torch.sigmoid(u[:, 0]), rtol=1e-15, atol=1e-15)
    torch.testing.assert_close(layout.pack(values), u, rtol=1e-13, atol=1e-13)
    # float32 runs are served at float32
    values32, logdet32 = layout.unpack(u.float())
    assert values32["d"].dtype == logdet32.dtype == torch.float32


def test_bounds_read_from_other_latents_have_the_jacobian_of_autograd(float64):
    prog = loads(DEPENDENT).morphism
    layout = Layout(prog.latent_sites({"y"}), prog.parameters_of)
    assert layout.names == ["alpha1", "alpha2", "c"] and layout.dim == 5
    u = torch.randn(4, layout.dim, generator=torch.Generator().manual_seed(0)) * 2
    values, logdet = layout.unpack(u)
    assert bool(((values["alpha2"] > 0) & (values["alpha2"] < 1 - values["alpha1"])).all())
    high = values["alpha2"] + 2 * values["alpha1"] + 1
    assert bool(((values["c"] > values["alpha2"][:, None]) & (values["c"] < high[:, None])).all())
    torch.testing.assert_close(layout.pack(values), u)

    def flat(row):
        v, _ = layout.unpack(row)
        return torch.cat([v["alpha1"].reshape(1), v["alpha2"].reshape(1), v["c"].reshape(-1)])

    for i in range(u.shape[0]):
        jac = torch.autograd.functional.jacobian(flat, u[i])
        torch.testing.assert_close(logdet[i], torch.linalg.slogdet(jac)[1], rtol=1e-12, atol=1e-12)


def test_dependent_bounds_in_the_python_combinators(float64):
    Item = FinSet("Item", 3)
    prog = Program("p", Item, Item, [
        sample("alpha1", None, Uniform(0.0, 1.0)),
        sample("alpha2", None, Uniform(0.0, 1 - var("alpha1"))),
        observe("y", Item, Normal(var("alpha1") + var("alpha2"), 1.0)),
    ])
    reads, evaluate = prog.parameters_of("alpha2")
    assert reads == ("alpha1",)
    torch.testing.assert_close(evaluate({"alpha1": torch.tensor([0.25])})["high"], torch.tensor([0.75]))
    # log density at a point: Uniform(0, 1) then Uniform(0, 1 - alpha1)
    lat = {"alpha1": torch.tensor(0.25), "alpha2": torch.tensor(0.5)}
    y = torch.tensor([0.1, 0.9, 0.4])
    want = -math.log(0.75) + float(torch.distributions.Normal(0.75, 1.0).log_prob(y).sum())
    assert abs(prog.log_joint(None, {"y": y}, lat).item() - want) < 1e-12
    assert prog.log_joint(None, {"y": y}, {"alpha1": torch.tensor(0.75), "alpha2": torch.tensor(0.5)}).item() == -math.inf


@pytest.mark.parametrize("method", ["svi", "nuts"])
def test_fit_with_bounds_that_read_a_latent(method, float64):
    torch.manual_seed(1)
    prog = loads(DEPENDENT).morphism
    kw = dict(steps=200) if method == "svi" else dict(method="nuts", num_warmup=60, num_samples=60, num_chains=2, seed=1)
    s = fit(prog, {"y": torch.full((5,), 0.6)}, progress_bar=False, **kw).samples
    assert bool(((s["alpha2"] > 0) & (s["alpha2"] < 1 - s["alpha1"])).all())
    assert bool((s["c"] > s["alpha2"][..., None]).all())


def test_bounds_that_read_data_are_refused_by_name():
    prog = loads("""
object Item : FinSet 5
program p : Item -> Item
    sample top <- Uniform(1.0, 2.0)
    sample a <- Uniform(0.0, top)
    observe y : Item <- Normal(a, 1.0)
    return y
export p
""").morphism
    with pytest.raises(QuiversTypeError, match=r"the bounds of `a` read \['top'\], which are not sampled before it"):
        Layout(prog.latent_sites({"y", "top"}), prog.parameters_of)
    Item = FinSet("Item", 1)
    prog = Program("p", Item, Item, [observe("x", None, Normal(0.0, 1.0)),
                                     sample("a", None, Uniform(0.0, var("x") ** 2 + 1))])
    with pytest.raises(QuiversTypeError, match=r"the parameters of `a` read `x` \(observed\)"):
        prog.parameters_of("a")
