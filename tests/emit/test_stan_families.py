"""Stan emission of the families of quivers.distributions.catalog: those
Stan has (with its argument order: `weibull(shape, scale)`), truncation as
`T[low, high]`, and a located UnsupportedError for the rest. No Stan
toolchain runs in CI, so the emitted text is read."""

from __future__ import annotations

import pytest

from quivers.dsl import loads
from quivers.emit import to_stan
from quivers.errors import UnsupportedError

HEAD = """object Item : FinSet 5
object K : FinSet 2
program p : Item -> Item
    sample mu <- TruncatedNormal(0.0, 5.0, -10.0, 10.0)
    sample s <- HalfStudentT(3.0, 1.0)
    sample k <- Truncated(Gamma(2.0, 1.0), high=4.0)
    sample a <- VonMises(0.0, 2.0)
    sample b <- Weibull(1.0, 2.0)
"""


def emitted(body: str) -> str:
    return to_stan(loads(HEAD + body + "    return mu\nexport p\n").p)


def test_families_stan_has_are_its_sampling_statements():
    text = emitted(
        "    observe z : Item <- Logistic(mu, s)\n"
        "    observe g : Item <- Gumbel(a, b)\n"
        "    observe c : Item <- BetaBinomial(10, k, 2.0)\n"
        "    observe q : Item <- Chi2(k)\n"
    )
    for line in [
        "real<lower=-10, upper=10> mu;", "real<lower=0> s;", "real<lower=0, upper=4> k;",
        "real<lower=-pi(), upper=pi()> a;", "array[Item] int<lower=0> c;",
        "mu ~ normal(0.0, 5.0) T[-10.0, 10.0];", "s ~ student_t(3.0, 0, 1.0);", "k ~ gamma(2.0, 1.0) T[, 4.0];",
        "a ~ von_mises(0.0, 2.0);", "b ~ weibull(2.0, 1.0);", "z ~ logistic(mu, s);", "g ~ gumbel(a, b);",
        "c ~ beta_binomial(10, k, 2.0);", "q ~ chi_square(k);",
    ]:
        assert line in text, line


def test_a_truncated_observation_is_truncated_one_value_at_a_time():
    text = emitted("    observe y : Item <- Truncated(Normal(mu, s), low=0.0)\n")
    assert "for (i in 1:Item) {\n    y[i] ~ normal(mu, s) T[0.0, ];\n  }" in text


def test_a_half_student_t_in_a_block_adds_log_two():
    text = emitted(
        "    sample w : K <- Dirichlet(1.0)\n"
        "    sample m : K <- Normal(0.0, 1.0)\n"
        "    marginalize z : K <- Categorical(w)\n"
        "        observe y : Item <- HalfStudentT(3.0, m[z] + s)\n"
    )
    assert "student_t_lpdf(y[i] | 3.0, 0, s + m[k1]) + log2();" in text


def test_zero_inflated_and_hurdle_counts_are_conditionals_on_zero():
    """Stan has no such families; their log mass is written as Stan users
    write it, per count, at the top level and inside a block alike."""
    text = emitted(
        "    observe c : Item <- ZeroInflatedPoisson(0.3, s)\n"
        "    observe h : Item <- HurdleNegativeBinomial(0.2, k, 0.5)\n"
        "    sample w : K <- Dirichlet(1.0)\n"
        "    sample m : K <- HalfNormal(1.0)\n"
        "    marginalize z : K <- Categorical(w)\n"
        "        observe d : Item <- ZeroInflatedPoisson(0.1, m[z])\n"
    )
    assert ("target += (c[i] == 0 ? log_sum_exp(log(0.3), log1m(0.3) + poisson_lpmf(0 | s)) "
            ": log1m(0.3) + poisson_lpmf(c[i] | s));") in text
    assert ("target += (h[i] == 0 ? log(0.2) : log1m(0.2) + neg_binomial_lpmf(h[i] | k, (1 - 0.5) / 0.5) "
            "- log1m_exp(neg_binomial_lpmf(0 | k, (1 - 0.5) / 0.5)));") in text
    assert "(d[i] == 0 ? log_sum_exp(log(0.1), log1m(0.1) + poisson_lpmf(0 | m[k1])) : log1m(0.1) + poisson_lpmf(d[i] | m[k1]))" in text
    assert "array[Item] int<lower=0> c;" in text


def test_the_zip_example_emits():
    from pathlib import Path

    from quivers.dsl import load

    text = to_stan(load(Path(__file__).resolve().parents[2] / "examples" / "zip_regression.qvr").morphism)
    assert "target += (count[v] == 0 ? log_sum_exp(log(zero_prob), log1m(zero_prob)" in text


@pytest.mark.parametrize(
    "body, message",
    [
        ("    observe n : Item <- Poisson(3.0)\n    sample t : K <- Dirichlet(1.0)\n"
         "    observe y : Item <- Multinomial(n + 1, t) [over=K]\n",
         r"the total count of `y` is `n \+ 1`; Stan's multinomial takes its count from the data"),
    ],
)
def test_families_stan_lacks_are_located_unsupported_errors(body, message):
    with pytest.raises(UnsupportedError, match=message) as info:
        emitted(body)
    assert info.value.span is not None and info.value.span.line >= 10


def test_an_ordinal_outcome_is_stans_ordered_logistic_counted_from_one():
    import torch

    from quivers.emit import stan_data

    p = loads("""object Rater : FinSet 5
object Cut : FinSet 3
program grades : Rater -> Rater
    data c : Cut
    sample effect <- Normal(0.0, 1.0)
    observe grade : Rater <- OrderedLogistic(effect * x, c)
    return grade
export grades
""").grades
    text = to_stan(p)
    assert "array[Rater] int<lower=1> grade;" in text and "vector[Cut] c;" in text
    assert "grade ~ ordered_logistic(effect * x, c);" in text
    data = stan_data(p, {"grade": torch.tensor([0.0, 1.0, 3.0, 2.0, 0.0]), "x": torch.zeros(5), "c": torch.tensor([-1.0, 0.0, 1.0])})
    assert data["grade"] == [1, 2, 4, 3, 1]
