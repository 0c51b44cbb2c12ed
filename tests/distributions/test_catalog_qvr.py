"""Each family of quivers.distributions.catalog written in QVR: a small
program per family loads, draws, scores with the family's own log density,
has a support that SVI and NUTS map onto, fits; bad arguments are located
errors; the zero-inflated Poisson example recovers its simulation."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from quivers.distributions import family
from quivers.dsl import loads
from quivers.dsl.printer import dumps
from quivers.dsl.parser import parse
from quivers.errors import InvalidValueError, QuiversError, QuiversTypeError, UnknownNameError
from quivers.inference import fit
from quivers.inference.layout import Layout

ROOT = Path(__file__).resolve().parents[2]

# name -> (a latent drawn from the family, or None for a count family; the
# observation, reading the latent `a`; the observation's index set)
CASES = {
    "LogitNormal": ("LogitNormal(0.0, 1.0)", "LogitNormal(a - 0.5, 1.0)", "Item"),
    "HalfStudentT": ("HalfStudentT(3.0, 1.0)", "HalfStudentT(3.0, a + 0.5)", "Item"),
    "Logistic": ("Logistic(0.0, 1.0)", "Logistic(a, 1.0)", "Item"),
    "Weibull": ("Weibull(1.0, 2.0)", "Weibull(a + 0.5, 2.0)", "Item"),
    "Kumaraswamy": ("Kumaraswamy(2.0, 3.0)", "Kumaraswamy(a + 1.0, 2.0)", "Item"),
    "Gumbel": ("Gumbel(0.0, 1.0)", "Gumbel(a, 2.0)", "Item"),
    "VonMises": ("VonMises(0.0, 2.0)", "VonMises(a, 2.0)", "Item"),
    "Chi2": ("Chi2(3.0)", "Chi2(a + 1.0)", "Item"),
    "ContinuousBernoulli": ("ContinuousBernoulli(0.3)", "ContinuousBernoulli(a)", "Item"),
    "TruncatedNormal": ("TruncatedNormal(0.0, 1.0, -1.0, 2.0)", "TruncatedNormal(a, 1.0, -1.0, 2.0)", "Item"),
    "Truncated": ("Truncated(Gamma(2.0, 1.0), 0.5, 4.0)", "Truncated(Normal(a, 1.0), low=0.0)", "Item"),
    "Mixture": ("Mixture(w, Normal(-1.0, 1.0), Normal(1.0, 1.0), Logistic(0.0, 1.0))",
                "Mixture(w, Normal(a, 1.0), Logistic(0.0, 1.0), Gumbel(0.0, 1.0))", "Item"),
    "BetaBinomial": (None, "BetaBinomial(10, a + 0.5, 2.0)", "Item"),
    "Multinomial": (None, "Multinomial(5, w)", "Item * K"),
    "DirichletMultinomial": (None, "DirichletMultinomial(5, w + a)", "Item * K"),
    "OrderedLogistic": (None, "OrderedLogistic(a, vector(K, -1.0, 0.0, 1.0))", "Item"),
    "ZeroInflatedPoisson": (None, "ZeroInflatedPoisson(a, 3.0)", "Item"),
    "ZeroInflatedNegativeBinomial": (None, "ZeroInflatedNegativeBinomial(a, 2.0, 0.5)", "Item"),
    "HurdlePoisson": (None, "HurdlePoisson(a, 2.0)", "Item"),
    "HurdleNegativeBinomial": (None, "HurdleNegativeBinomial(a, 2.0, logits=0.5)", "Item"),
}


def F(name, *args, **kwargs):
    return family(name, *args, **kwargs)


def built(fam):
    return fam.build({k: torch.as_tensor(v, dtype=torch.get_default_dtype()) for k, v in fam.args.items()})


# name -> the observation's law at the latents' values, built here in Python
OBSERVED = {
    "LogitNormal": lambda a, w: F("LogitNormal", a - 0.5, 1.0),
    "HalfStudentT": lambda a, w: F("HalfStudentT", 3.0, a + 0.5),
    "Logistic": lambda a, w: F("Logistic", a, 1.0),
    "Weibull": lambda a, w: F("Weibull", a + 0.5, 2.0),
    "Kumaraswamy": lambda a, w: F("Kumaraswamy", a + 1.0, 2.0),
    "Gumbel": lambda a, w: F("Gumbel", a, 2.0),
    "VonMises": lambda a, w: F("VonMises", a, 2.0),
    "Chi2": lambda a, w: F("Chi2", a + 1.0),
    "ContinuousBernoulli": lambda a, w: F("ContinuousBernoulli", a),
    "TruncatedNormal": lambda a, w: F("TruncatedNormal", a, 1.0, -1.0, 2.0),
    "Truncated": lambda a, w: F("Truncated", F("Normal", a, 1.0), low=0.0),
    "Mixture": lambda a, w: F("Mixture", w, F("Normal", a, 1.0), F("Logistic", 0.0, 1.0), F("Gumbel", 0.0, 1.0)),
    "BetaBinomial": lambda a, w: F("BetaBinomial", 10, a + 0.5, 2.0),
    "Multinomial": lambda a, w: F("Multinomial", 5, w),
    "DirichletMultinomial": lambda a, w: F("DirichletMultinomial", 5, w + a),
    "OrderedLogistic": lambda a, w: F("OrderedLogistic", a, [-1.0, 0.0, 1.0]),
    "ZeroInflatedPoisson": lambda a, w: F("ZeroInflatedPoisson", a, 3.0),
    "ZeroInflatedNegativeBinomial": lambda a, w: F("ZeroInflatedNegativeBinomial", a, 2.0, 0.5),
    "HurdlePoisson": lambda a, w: F("HurdlePoisson", a, 2.0),
    "HurdleNegativeBinomial": lambda a, w: F("HurdleNegativeBinomial", a, 2.0, logits=0.5),
}
# the latent `a`'s law (None: Beta(2, 2))
LATENT = {
    "LogitNormal": lambda w: F("LogitNormal", 0.0, 1.0), "HalfStudentT": lambda w: F("HalfStudentT", 3.0, 1.0),
    "Logistic": lambda w: F("Logistic", 0.0, 1.0), "Weibull": lambda w: F("Weibull", 1.0, 2.0),
    "Kumaraswamy": lambda w: F("Kumaraswamy", 2.0, 3.0), "Gumbel": lambda w: F("Gumbel", 0.0, 1.0),
    "VonMises": lambda w: F("VonMises", 0.0, 2.0), "Chi2": lambda w: F("Chi2", 3.0),
    "ContinuousBernoulli": lambda w: F("ContinuousBernoulli", 0.3),
    "TruncatedNormal": lambda w: F("TruncatedNormal", 0.0, 1.0, -1.0, 2.0),
    "Truncated": lambda w: F("Truncated", F("Gamma", 2.0, 1.0), 0.5, 4.0),
    "Mixture": lambda w: F("Mixture", w, F("Normal", -1.0, 1.0), F("Normal", 1.0, 1.0), F("Logistic", 0.0, 1.0)),
}


def program(name: str) -> str:
    latent, obs, index = CASES[name]
    prior = f"sample a <- {latent}" if latent else "sample a <- Beta(2.0, 2.0)"
    return f"""object Item : FinSet 6
object K : FinSet 3

program p : Item -> Item
    sample w : K <- Dirichlet(1.0)
    {prior}
    observe y : {index} <- {obs}
    return y

export p
"""


def test_every_new_family_has_a_program_here():
    from quivers.distributions.catalog import NEW

    assert set(NEW) == set(CASES) | {"Mixture"}


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_family_loads_draws_scores_and_fits_from_qvr(name):
    text = program(name)
    assert dumps(parse(text)) == text  # the printer writes it back as written
    p = loads(text).p
    torch.manual_seed(0)
    draw = p.sample()
    latents = {k: draw[k] for k in ("w", "a")}
    y = draw["y"]
    site = p.sites["y"]
    assert site.discrete == (CASES[name][0] is None)
    got = p.log_joint(None, {"y": y}, latents)
    # the same density term by term: the priors, then y's family built on the latents' values
    w, a = latents["w"], latents["a"]
    prior_a = LATENT.get(name, lambda w: F("Beta", 2.0, 2.0))(w)
    obs = built(OBSERVED[name](a, w))
    want = (
        torch.distributions.Dirichlet(torch.ones(3)).log_prob(w) + built(prior_a).log_prob(a)
        + obs.log_prob(y).sum()
    )
    assert bool(torch.isfinite(want))
    torch.testing.assert_close(got, want)
    # the latent's support is what SVI and NUTS map the real line onto
    layout = Layout([p.sites["a"]]) if CASES[name][0] else None
    if layout is not None:
        values, logdet = layout.unpack(torch.randn(200, layout.dim) * 3)
        assert bool(p.sites["a"].support().check(values["a"]).all()) and bool(torch.isfinite(logdet).all())
    result = fit(p, {"y": y}, steps=20, progress_bar=False, num_samples=20)
    assert set(result.samples) >= {"a", "w"}


def test_truncated_and_mixture_latents_run_under_nuts():
    """NUTS works on the unconstrained image of each latent: a truncation
    whose location is itself a latent stays in its bounds, and a latent
    with a mixture prior (weights a latent too) is a continuous latent."""
    p = loads("""object Item : FinSet 8
object K : FinSet 2

program p : Item -> Item
    sample w : K <- Dirichlet(1.0)
    sample mu <- Normal(0.0, 1.0)
    sample t <- Truncated(Normal(mu, 1.0), low=0.0, high=3.0)
    sample m <- Mixture(w, Normal(-1.0, 1.0), Normal(1.0, 1.0))
    observe y : Item <- Normal(t + m, 1.0)
    return y

export p
""").p
    torch.manual_seed(1)
    y = p.sample()["y"]
    result = fit(p, {"y": y}, method="nuts", num_samples=25, num_warmup=25, num_chains=1, max_tree_depth=4,
                 progress_bar=False)
    t = result.samples["t"]
    assert bool(((t >= 0.0) & (t <= 3.0)).all()) and bool(torch.isfinite(result.samples["m"]).all())


@pytest.mark.parametrize(
    "family, error, message",
    [
        ("Weibull(1.0)", QuiversTypeError, r"`Weibull` is missing parameter `concentration`"),
        ("Logistic(a, scal=1.0)", UnknownNameError, r"has no parameter `scal`.*did you mean `scale`\?"),
        ("Truncated(Normal(a, 1.0), lo=0.0)", UnknownNameError, r"did you mean `low`\?"),
        ("Truncated(StudentT(3.0), low=0.0)", QuiversTypeError, r"`StudentT` has none"),
        ("Mixture(w)", QuiversTypeError, r"needs at least one component"),
        ("ZeroInflatedPoisson(1.5, a)", InvalidValueError, r"`ZeroInflatedPoisson` parameter `zero_prob` = 1.5"),
        ("HurdlePoison(a, 1.0)", UnknownNameError, r"did you mean `HurdlePoisson`\?"),
        ("Normal(Normal(0.0, 1.0), 1.0)", QuiversTypeError, r"distribution families go after `<-`"),
    ],
)
def test_bad_family_arguments_are_located_errors(family, error, message):
    text = program("Logistic").replace("Logistic(a, 1.0)", family)
    with pytest.raises(error, match=message) as info:
        loads(text)
    assert isinstance(info.value, QuiversError)
    assert info.value.span is not None and info.value.span.line == 7


def test_zero_inflated_poisson_regression_example_fits():
    text = (ROOT / "examples" / "zip_regression.qvr").read_text()
    data = json.loads((ROOT / "examples" / "zip_data.json").read_text())
    p = loads(text).zip_regression
    obs = {"x": torch.tensor(data["x"]), "count": torch.tensor(data["count"], dtype=torch.float32)}
    torch.manual_seed(0)
    result = fit(p, obs, steps=600, lr=0.05, progress_bar=False, num_samples=200)
    post = {k: float(v.mean()) for k, v in result.samples.items()}
    # the simulation's alpha = 0.5, beta = 0.8, zero_prob = 0.3 (120 visits)
    assert post["alpha"] == pytest.approx(0.5, abs=0.2)
    assert post["beta"] == pytest.approx(0.8, abs=0.2)
    assert post["zero_prob"] == pytest.approx(0.3, abs=0.12)
    assert math.isfinite(float(p.log_joint(None, obs, {k: v.mean((0, 1)) for k, v in result.samples.items()})))


def test_finite_count_latents_are_summed_out_exactly():
    """A BetaBinomial with a constant count and an OrderedLogistic with
    constant cutpoints have finitely many values: the planner sums them
    out, and the result is brute-force enumeration in float64."""
    from quivers.categories import FinSet
    from quivers.planning import auto
    from quivers.programs import Program, const, observe, sample, var

    torch.set_default_dtype(torch.float64)
    try:
        G = FinSet("G", 3)
        cuts = torch.tensor([-1.0, 0.5])
        p = Program("p", G, G, [
            sample("a", None, family("HalfNormal", 2.0)),
            sample("n", G, family("BetaBinomial", 4, var("a"), 2.0)),
            sample("o", None, family("OrderedLogistic", 0.3, const(cuts, FinSet("C", 2)))),
            observe("y", G, family("Normal", var("n") + var("o"), 1.0)),
        ])
        planned = auto(p)
        assert set(planned.summed) == {"n", "o"}
        a, y = torch.tensor(1.7), torch.tensor([0.5, 3.0, 5.5])
        got = planned.log_joint(None, {"y": y}, {"a": a})
        bb = built(F("BetaBinomial", 4, a, 2.0)).log_prob(torch.arange(5.0))
        ol = built(F("OrderedLogistic", 0.3, cuts)).log_prob(torch.arange(3.0))
        want = torch.distributions.HalfNormal(2.0).log_prob(a) + torch.logsumexp(torch.stack([
            ol[o] + sum(torch.logsumexp(bb + torch.distributions.Normal(torch.arange(5.0) + o, 1.0).log_prob(yg), 0)
                        for yg in y)
            for o in range(3)
        ]), 0)
        torch.testing.assert_close(got, want.to(got.dtype))
    finally:
        torch.set_default_dtype(torch.float32)


@pytest.mark.parametrize(
    "written, same_as",
    [
        ("LogitNormal(mu=a - 0.5, sigma=1.0)", "LogitNormal(a - 0.5, 1.0)"),
        ("TruncatedNormal(mu=a, sigma=1.0, low=-1.0, high=2.0)", "TruncatedNormal(a, 1.0, -1.0, 2.0)"),
        ("Truncated(base=Normal(a, 1.0), low=0.0)", "Truncated(Normal(a, 1.0), 0.0)"),
        ("Mixture(Normal(a, 1.0), Logistic(0.0, 1.0), Gumbel(0.0, 1.0), weights=w)",
         "Mixture(w, Normal(a, 1.0), Logistic(0.0, 1.0), Gumbel(0.0, 1.0))"),
        ("Mixture(Normal(a, 1.0), Logistic(0.0, 1.0), Gumbel(0.0, 1.0), probs=w)",
         "Mixture(w, Normal(a, 1.0), Logistic(0.0, 1.0), Gumbel(0.0, 1.0))"),
    ],
)
def test_the_peers_keywords_mean_the_same(written, same_as):
    """The peer's QVR writes the Normal under a LogitNormal or a
    TruncatedNormal with `mu` and `sigma`, and a truncation's family as
    `base=`: each is the same program as the positional form."""
    text = program("Logistic").replace("Logistic(a, 1.0)", written)
    assert dumps(parse(text)) == text
    one = loads(text).p
    two = loads(program("Logistic").replace("Logistic(a, 1.0)", same_as)).p
    torch.manual_seed(0)
    draw = two.sample()
    lat = {"w": draw["w"], "a": draw["a"].clamp(0.1, 0.9)}
    y = two.sample(latents=lat)["y"]
    torch.testing.assert_close(one.log_joint(None, {"y": y}, lat), two.log_joint(None, {"y": y}, lat))


@pytest.mark.parametrize("name", ["Multinomial", "DirichletMultinomial", "BetaBinomial", "OrderedLogistic"])
def test_counts_no_parameter_can_explain_are_data_errors_naming_the_observation(name):
    from quivers.errors import DataError

    p = loads(program(name)).p
    torch.manual_seed(0)
    draw = p.sample()
    y = draw["y"].clone()
    if name in ("Multinomial", "DirichletMultinomial"):
        y[2, 0] += 1  # row 2 now counts 6 draws of 5
    else:
        y[2] = 11 if name == "BetaBinomial" else 4
    with pytest.raises(DataError, match=r"observation `y` has a value outside the support .* at index \(2,\)"):
        p.log_joint(None, {"y": y}, {"w": draw["w"], "a": draw["a"]})


def test_a_beta_binomial_latent_is_summed_out_by_marginalize_auto_in_qvr():
    p = loads("""object G : FinSet 3

program p : G -> G [marginalize=auto]
    sample a <- HalfNormal(2.0)
    sample n : G <- BetaBinomial(4, a, 2.0)
    observe y : G <- Normal(n, 1.0)
    return y

export p
""").p
    assert sorted(p.summed) == ["n"]
    a, y = torch.tensor(1.7), torch.tensor([0.5, 3.0, 5.5])
    bb = built(F("BetaBinomial", 4, a, 2.0)).log_prob(torch.arange(5.0))
    want = torch.distributions.HalfNormal(2.0).log_prob(a) + sum(
        torch.logsumexp(bb + torch.distributions.Normal(torch.arange(5.0), 1.0).log_prob(yg), 0) for yg in y)
    torch.testing.assert_close(p.log_joint(None, {"y": y}, {"a": a}), want)
