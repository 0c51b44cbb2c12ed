"""PointMass and Pushforward: log densities against scipy and closed
forms in float64, sampled moments, the latent of one value as a let, and
located errors for what cannot be scored or is not a transform."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import special, stats

from quivers.distributions import PointMass, Pushforward, family, transform
from quivers.dsl import loads
from quivers.dsl.format import format_source
from quivers.dsl.parser import parse
from quivers.dsl.printer import dumps
from quivers.errors import QuiversTypeError, UnknownNameError, UnsupportedError
from quivers.programs import LetStep


def built(fam):
    return fam.build({k: torch.as_tensor(v, dtype=torch.get_default_dtype()) for k, v in fam.args.items()})


def lp(fam, y):
    return built(fam).log_prob(torch.as_tensor(y, dtype=torch.get_default_dtype())).numpy()


Y_POS = np.array([0.05, 0.4, 1.0, 2.5, 7.0])
Y_UNIT = np.array([0.01, 0.2, 0.5, 0.77, 0.99])
Y_REAL = np.array([-3.0, -0.4, 0.0, 1.3, 4.0])
N = stats.norm(0.3, 0.8)

# (family, points, log density by scipy or a closed form)
CASES = {
    "exp of a Normal is the LogNormal": (
        Pushforward(family("Normal", 0.3, 0.8), "exp"), Y_POS, stats.lognorm(0.8, scale=math.exp(0.3)).logpdf(Y_POS)),
    "the peer's Exp": (Pushforward(family("Normal", 0.3, 0.8), "Exp"), Y_POS,
                       stats.lognorm(0.8, scale=math.exp(0.3)).logpdf(Y_POS)),
    "sigmoid of a Normal is the LogitNormal": (
        Pushforward(family("Normal", 0.3, 0.8), "sigmoid"), Y_UNIT,
        N.logpdf(special.logit(Y_UNIT)) - np.log(Y_UNIT) - np.log1p(-Y_UNIT)),
    "log of a Gamma": (
        Pushforward(family("Gamma", 2.5, 1.5), "log"), Y_REAL,
        stats.gamma(2.5, scale=1 / 1.5).logpdf(np.exp(Y_REAL)) + Y_REAL),
    "logit of a Beta": (
        Pushforward(family("Beta", 2.0, 3.0), "logit"), Y_REAL,
        stats.beta(2.0, 3.0).logpdf(special.expit(Y_REAL)) + np.log(special.expit(Y_REAL))
        + np.log(special.expit(-Y_REAL))),
    "tanh of a Normal": (
        Pushforward(family("Normal", 0.3, 0.8), "tanh"), Y_UNIT * 2 - 1,
        N.logpdf(np.arctanh(Y_UNIT * 2 - 1)) - np.log1p(-(Y_UNIT * 2 - 1) ** 2)),
    "softplus of a Normal": (
        Pushforward(family("Normal", 0.3, 0.8), "softplus"), Y_POS,
        N.logpdf(np.log(np.expm1(Y_POS))) + Y_POS - np.log(np.expm1(Y_POS))),
    "an affine map of a Gamma is scipy's located, scaled Gamma": (
        Pushforward(family("Gamma", 2.5, 1.5), transform("affine", 1.0, 2.0)), Y_POS + 1.0,
        stats.gamma(2.5, loc=1.0, scale=2.0 / 1.5).logpdf(Y_POS + 1.0)),
    "an affine map with a negative scale flips the support": (
        Pushforward(family("Exponential", 2.0), transform("Affine", 1.0, -0.5)), 1.0 - Y_POS,
        stats.expon(scale=0.5).logpdf(2 * Y_POS) + math.log(2.0)),
}


@pytest.mark.parametrize("case", CASES)
def test_log_density_is_the_change_of_variables(float64, case):
    fam, y, want = CASES[case]
    np.testing.assert_allclose(lp(fam, y), want, rtol=1e-10, atol=1e-10)


def test_pushforward_of_a_normal_by_exp_equals_lognormal_exactly(float64):
    """On a grid, including off the support, where both are -inf."""
    y = torch.tensor([-1.0, 0.0, 1e-300, 0.01, 0.5, 1.0, 3.0, 1e3])
    push = built(Pushforward(family("Normal", -0.2, 1.3), "exp")).log_prob(y)
    want = built(family("LogNormal", -0.2, 1.3)).log_prob(y.clamp(min=1e-300))
    want = torch.where(y > 0, want, -math.inf)
    torch.testing.assert_close(push, want, rtol=1e-12, atol=1e-12)


def test_off_the_image_the_density_is_zero(float64):
    assert np.all(lp(Pushforward(family("Normal", 0.0, 1.0), "sigmoid"), [-0.5, 0.0, 1.0, 1.5]) == -np.inf)
    assert np.all(lp(Pushforward(family("Gamma", 2.0, 1.0), transform("affine", 1.0, 2.0)), [0.5, 1.0]) == -np.inf)
    assert built(Pushforward(family("Normal", 0.0, 1.0), "exp")).support.lower_bound == 0.0


def test_draws_are_the_transform_of_draws_with_the_right_moments(float64):
    torch.manual_seed(0)
    d = built(Pushforward(family("Normal", 0.3, 0.5), "exp"))
    x = d.sample((200_000,))
    mean, var = math.exp(0.3 + 0.125), (math.exp(0.25) - 1) * math.exp(0.6 + 0.25)
    assert float(x.mean()) == pytest.approx(mean, rel=0.01)
    assert float(x.var()) == pytest.approx(var, rel=0.03)
    a = built(Pushforward(family("Normal", 0.0, 1.0), transform("affine", 2.0, 3.0))).sample((200_000,))
    assert float(a.mean()) == pytest.approx(2.0, abs=0.03) and float(a.std()) == pytest.approx(3.0, rel=0.01)
    # not invertible, still drawn: |N(0, 1)| has mean sqrt(2 / pi)
    h = built(Pushforward(family("Normal", 0.0, 1.0), "abs")).sample((200_000,))
    assert float(h.min()) >= 0 and float(h.mean()) == pytest.approx(math.sqrt(2 / math.pi), rel=0.01)


def test_a_reparameterized_draw_carries_the_gradient(float64):
    loc = torch.tensor(0.2, requires_grad=True)
    d = Pushforward(family("Normal", 0.0, 1.0), "exp").spec.make({"loc": loc, "scale": torch.tensor(0.5)})
    torch.manual_seed(1)
    d.rsample((1000,)).mean().backward()
    assert loc.grad is not None and float(loc.grad) > 0


def test_point_mass(float64):
    d = built(PointMass(1.5))
    assert d.log_prob(torch.tensor([1.5, 1.4999, -2.0])).tolist() == [0.0, -math.inf, -math.inf]
    assert d.sample((3,)).tolist() == [1.5, 1.5, 1.5]
    v = torch.tensor([1.0, -2.0], requires_grad=True)
    PointMass(v).spec.make({"value": v}).rsample((2,)).sum().backward()
    assert v.grad.tolist() == [2.0, 2.0]


def test_bad_python_arguments_are_errors():
    with pytest.raises(UnknownNameError, match=r"unknown transform `cube` of `Pushforward`"):
        Pushforward(family("Normal", 0.0, 1.0), "cube")
    with pytest.raises(QuiversTypeError, match=r"`Pushforward` takes a proper continuous family of scalars, not `Poisson`"):
        Pushforward(family("Poisson", 2.0), "exp")
    with pytest.raises(QuiversTypeError, match=r"`Pushforward` takes a family first"):
        Pushforward(0.0, "exp")
    with pytest.raises(QuiversTypeError, match=r"the transform `affine` takes \(loc, scale\), got 1 arguments"):
        transform("affine", 1.0)
    with pytest.raises(UnsupportedError, match=r"`abs` is not invertible"):
        built(Pushforward(family("Normal", 0.0, 1.0), "abs")).log_prob(torch.tensor(1.0))


PROGRAM = """
object Item : FinSet 6
program p : Item -> Item
    sample mu <- Normal(0.0, 1.0)
    sample s <- Pushforward(Normal(-0.5, 0.5), Exp)
    sample c <- PointMass(2.5)
    observe y : Item <- Pushforward(Normal(mu, s), exp)
    observe z : Item <- Pushforward(Normal(mu, 1.0), affine(c, s))
    return y
export p
"""


def test_a_qvr_program_scores_as_scipy_does(float64):
    p = loads(PROGRAM).p
    g = torch.Generator().manual_seed(3)
    obs = {"y": torch.rand(6, generator=g) * 3 + 0.05, "z": torch.randn(6, generator=g)}
    for mu, s in [(0.1, 0.7), (-1.2, 1.9)]:
        got = float(p.log_joint(None, obs, {"mu": torch.tensor(mu), "s": torch.tensor(s)}))
        y, z = obs["y"].numpy(), obs["z"].numpy()
        want = (stats.norm(0, 1).logpdf(mu) + stats.lognorm(0.5, scale=math.exp(-0.5)).logpdf(s)
                + stats.lognorm(s, scale=math.exp(mu)).logpdf(y).sum()
                + stats.norm(2.5 + s * mu, s).logpdf(z).sum())
        assert got == pytest.approx(want, abs=1e-9)


def test_a_point_mass_latent_is_a_let(float64):
    """NUTS and SVI see `c` as a value, not a latent with a density."""
    p = loads(PROGRAM).p
    assert isinstance(next(s for s in p.steps if getattr(s, "name", None) == "c"), LetStep)
    assert sorted(site.name for site in p.latent_sites(["y", "z"])) == ["mu", "s"]
    torch.manual_seed(0)
    assert float(p.sample(None, ())["c"]) == 2.5


@pytest.mark.filterwarnings("ignore::quivers.errors.ConvergenceWarning")
def test_the_pushforward_latent_is_fit_on_its_image():
    """SVI maps the latent `s` (a LogNormal by exp) onto the positive reals,
    and fits no guide for the point mass `c`."""
    from quivers.inference import fit

    p = loads(PROGRAM).p
    g = torch.Generator().manual_seed(4)
    obs = {"y": torch.exp(0.5 + 0.3 * torch.randn(6, generator=g)), "z": 2.5 + 0.3 * (0.5 + 0.3 * torch.randn(6, generator=g))}
    res = fit(p, obs, method="svi", steps=100, seed=0, progress_bar=False, num_samples=50)
    assert bool((res.samples["s"] > 0).all()) and "c" not in {site.name for site in p.latent_sites(obs)}
    assert sorted(res.samples) == ["mu", "s"] and res.guide.loc.numel() == 2  # the guide is on mu and s alone


@pytest.mark.parametrize("src, error, where", [
    ("observe y : Item <- Pushforward(Normal(mu, 1.0), abs)", UnsupportedError,
     r"line 5, column 5: `y` is scored under `Pushforward\(\.\.\., abs\)`, but `abs` is not invertible"),
    ("sample t <- Pushforward(Normal(mu, 1.0), square)", UnsupportedError,
     r"line 5, column 5: `t` is scored under `Pushforward\(\.\.\., square\)`"),
    ("observe y : Item <- Pushforward(Normal(mu, 1.0), cube)", UnknownNameError,
     r"line 5, column 54: `Pushforward` takes a transform second, one of exp, .*; got `cube`"),
    ("observe y : Item <- Pushforward(Poisson(2.0), exp)", QuiversTypeError,
     r"line 5, column 25: `Pushforward` takes a proper continuous family of scalars, not `Poisson`"),
    ("observe y : Item <- Pushforward(Normal(mu, 1.0), affine(1.0))", QuiversTypeError,
     r"line 5, column 54: the transform `affine` takes \(loc, scale\), got 1 arguments"),
])
def test_bad_qvr_is_a_located_error(src, error, where):
    text = f"""object Item : FinSet 3
program p : Item -> Item
    sample mu <- Normal(0.0, 1.0)

    {src}
export p
"""
    with pytest.raises(error, match=where):
        loads(text)


def test_the_printer_and_fmt_keep_the_families():
    m = parse(PROGRAM)
    assert parse(dumps(m)) == m
    text = format_source(PROGRAM)
    assert "Pushforward(Normal(mu, 1.0), affine(c, s))" in text and "PointMass(2.5)" in text
    assert format_source(text) == text


def test_a_pushforward_family_pickles_by_its_recipe():
    import pickle

    fam = Pushforward(family("Normal", 0.0, 1.0), transform("affine", 1.0, 2.0))
    back = pickle.loads(pickle.dumps(fam))
    assert back.spec is fam.spec and back.args == fam.args


ZIP = """
object Item : FinSet 6
object K : FinSet 2
program zip : Item -> Item
    sample w : K <- Dirichlet(1.0)
    sample rate <- Gamma(2.0, 1.0)
    observe y : Item <- Mixture(w, PointMass(0), Poisson(rate))
    return y
export zip
"""


def test_a_point_mass_mixed_with_counts_is_a_zero_inflated_count(float64):
    """The peer's zero inflation, `Mixture(w, PointMass(0), Poisson(rate))`,
    is scipy's zero-inflated Poisson mass, and the registry's
    ZeroInflatedPoisson's."""
    p = loads(ZIP).zip
    y = torch.tensor([0, 0, 3, 1, 0, 5])
    w, rate = torch.tensor([0.3, 0.7]), torch.tensor(2.0)
    got = float(p.log_joint(None, {"y": y}, {"w": w, "rate": rate}))
    mass = np.where(y.numpy() == 0, 0.3, 0.0) + 0.7 * stats.poisson(2.0).pmf(y.numpy())
    want = np.log(mass).sum() + stats.dirichlet([1.0, 1.0]).logpdf([0.3, 0.7]) + stats.gamma(2.0).logpdf(2.0)
    assert got == pytest.approx(want, abs=1e-10)
    zip_ = built(family("ZeroInflatedPoisson", 0.3, 2.0)).log_prob(y.to(torch.float64)).sum()
    assert got - want == pytest.approx(0.0, abs=1e-10) and float(zip_) == pytest.approx(np.log(mass).sum(), abs=1e-10)


def test_a_point_mass_does_not_mix_with_densities():
    with pytest.raises(QuiversTypeError, match=r"a `PointMass` in `Mixture` is an atom, which has a mass and no density"):
        family("Mixture", [0.5, 0.5], PointMass(0.0), family("Normal", 0.0, 1.0))
    with pytest.raises(QuiversTypeError, match=r"line 7, column 25: a `PointMass` in `Mixture` is an atom"):
        loads(ZIP.replace("Poisson(rate)", "Normal(0.0, rate)"))


def test_a_point_mass_on_a_plate_is_a_value_per_element(float64):
    """`sample c : K <- PointMass(0.5)` is on `K`, so `c[z]` reads it in a
    marginalize block (one `z` per row of `Item`); the sum over `z` is the
    enumeration's."""
    p = loads("""object K : FinSet 3
object Item : FinSet 4
program p : Item -> Item
    data m : K
    sample c : K <- PointMass(0.5)
    sample w : K <- Dirichlet(1.0)
    marginalize z : K <- Categorical(w)
        observe y : Item <- Normal(c[z] + m[z], 1.0)
    return y
export p
""").p
    assert p.sites["c"].dims == ("K",)
    y, w, m = torch.tensor([0.1, 1.2, -0.3, 0.8]), torch.tensor([0.2, 0.5, 0.3]), torch.tensor([-1.0, 0.0, 2.0])
    got = float(p.log_joint(None, {"y": y, "m": m}, {"w": w}))
    rows = [special.logsumexp([math.log(float(w[k])) + stats.norm(0.5 + float(m[k]), 1.0).logpdf(float(yi))
                               for k in range(3)]) for yi in y]
    want = sum(rows) + stats.dirichlet([1.0] * 3).logpdf(w.numpy())
    assert got == pytest.approx(want, abs=1e-10)
