"""Computations (`define f(x : Real) : Real !{} =`), the collection
combinators and a program that runs them: parsing, printing, checking
(located errors), exactness against enumeration in float64, effects,
data, fitting and Stan emission."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from scipy import stats

from quivers.dsl import loads
from quivers.dsl.format import format_source
from quivers.dsl.parser import parse
from quivers.dsl.printer import dumps
from quivers.emit import to_stan
from quivers.errors import DataError, QuiversError, QuiversTypeError, ShapeError, UnknownNameError, UnsupportedError
from quivers.inference import fit
from quivers.programs.computations import (
    REAL, Computation, ValueType, fold, logsumexp_over, map_over, score, traverse,
)

# A grid posterior for the location of Gaussian readings with a known
# spread: four candidate locations, a uniform prior, five readings.
GRID = """\
define reading_log_density(loc : Real, reading : Real, spread : Real) : Real !{} =
    return weight_value(log_prob(Normal(loc, spread), reading))

define readings_log_density(loc : Real, readings : Tensor[Real]([5]), spread : Real) : Real !{} =
    let each <- traverse(
        readings,
        (reading -> reading_log_density(loc, reading, spread)),
    )
    return sum(each)

define location_posterior(readings : Tensor[Real]([5]), spread : Real) : Tensor[Real]([4]) !{} =
    let grid = [-2.0, -0.5, 0.5, 2.0]
    let log_lik <- traverse(grid, loc -> readings_log_density(loc, readings, spread))
    let log_prior = log(1.0 / 4.0)
    let joint = map(log_lik, l -> l + log_prior)
    let evidence = logsumexp_over(joint, j -> j)
    return map(joint, j -> exp(j - evidence))

object Run : FinSet 1
object Where : Real 4

program locate : Run -> Where
    let posterior <- location_posterior(readings, spread)
    return posterior

export locate
"""
READINGS = torch.tensor([0.3, -0.1, 0.9, 0.4, 0.2], dtype=torch.float64)
SPREAD = torch.tensor(0.7, dtype=torch.float64)


def brute_force_posterior() -> list[float]:
    """The same posterior by enumeration with scipy, in float64."""
    grid = [-2.0, -0.5, 0.5, 2.0]
    joint = [math.log(0.25) + sum(stats.norm.logpdf(y, loc, 0.7) for y in READINGS.tolist()) for loc in grid]
    top = max(joint)
    weights = [math.exp(j - top) for j in joint]
    return [w / sum(weights) for w in weights]


def test_grid_posterior_is_exact_against_enumeration():
    m = loads(GRID)
    got = m.run_computation("location_posterior", READINGS, SPREAD).value
    assert got.dtype == torch.float64
    assert torch.allclose(got, torch.tensor(brute_force_posterior(), dtype=torch.float64), rtol=1e-12, atol=1e-15)
    # the program returns the same, and holds no latent
    draws = m.morphism.sample(observations={"readings": READINGS, "spread": SPREAD})
    assert torch.allclose(draws["_return"], got, rtol=1e-12)
    assert not m.morphism.latent_sites()


def test_run_takes_plain_numbers():
    run = loads(GRID).run_computation("location_posterior", READINGS.tolist(), 0.7)
    assert abs(float(run.value.sum()) - 1.0) < 1e-12 and float(run.score) == 0.0


def test_print_and_fmt_round_trip():
    tree = parse(GRID)
    assert parse(dumps(tree)) == tree
    formatted = format_source(GRID)
    assert parse(formatted) == tree
    assert format_source(formatted) == formatted
    assert "let log_lik <- traverse(grid, loc -> readings_log_density(loc, readings, spread))" in formatted
    assert "define location_posterior(readings : Tensor[Real]([5]), spread : Real) : Tensor[Real]([4]) !{} =" in formatted


def test_data_of_a_computation_is_validated_and_described():
    m = loads(GRID)
    role = m.data["locate"]["readings"]
    assert role.shape == (5,) and "a tensor of shape [5]" in role.describe()
    p = m.morphism
    with pytest.raises(DataError, match="`readings`") as err:
        p.log_joint(None, {"spread": SPREAD})
    assert err.value.span.line == 23
    with pytest.raises(ShapeError, match="`readings` has shape \\(3,\\)"):
        p.log_joint(None, {"readings": torch.zeros(3), "spread": SPREAD})


def test_fit_nuts_is_fixed_param_and_svi_is_finite():
    p = loads(GRID).morphism
    data = {"readings": READINGS.float(), "spread": SPREAD.float()}
    r = fit(p, data, method="nuts", num_samples=10, num_warmup=10, num_chains=2, seed=0, progress_bar=False)
    assert r.method == "fixed_param" and r.samples == {} and "fixed_param" in r.describe()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no latent: no spurious Pareto k warning about a guide
        s = fit(p, data, method="svi", steps=3, num_samples=10, seed=0, progress_bar=False)
    assert all(math.isfinite(v) for v in s.losses) and "it has no latent" in s.describe()


def test_stan_emission_is_refused_naming_the_computation():
    with pytest.raises(UnsupportedError, match="runs the computation `location_posterior`") as err:
        to_stan(loads(GRID).morphism)
    assert err.value.span.line == 23


SCORED = """\
define shrink(x : Real) : Real !{Score} =
    factor -0.5 * x * x
    return 2.0 * x

define shrink_all(xs : Tensor[Real]([3])) : Tensor[Real]([3]) !{Score} =
    let ys <- traverse(xs, x -> shrink(x))
    return ys

object One : FinSet 1
object V : Real 3
program p : One -> V
    sample mu <- Normal(0.0, 1.0)
    let ys <- shrink_all(shift)
    observe y <- Normal(mu + sum(ys), 1.0)
    return ys
export p
"""


def test_score_effect_adds_to_the_program_log_density():
    m = loads(SCORED)
    shift = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    run = m.run_computation("shrink_all", shift)
    assert run.value.tolist() == [1.0, -2.0, 4.0]
    assert float(run.score) == pytest.approx(-0.5 * (0.25 + 1.0 + 4.0), abs=1e-12)
    mu, y = torch.tensor(0.3, dtype=torch.float64), torch.tensor(1.1, dtype=torch.float64)
    lp = m.morphism.log_joint(None, {"shift": shift, "y": y}, {"mu": mu})
    want = stats.norm.logpdf(0.3, 0, 1) + stats.norm.logpdf(1.1, 0.3 + 3.0, 1) + float(run.score)
    assert float(lp) == pytest.approx(want, abs=1e-10)


# ---------------------------------------------------------------- located errors


def _error(text: str, cls: type[QuiversError], match: str, line: int, column: int | None = None) -> None:
    with pytest.raises(cls, match=match) as err:
        loads(text)
    assert err.value.span is not None and err.value.span.line == line
    if column is not None:
        assert err.value.span.column == column


HEAD = "define f(x : Real, y : Real) : Real !{} =\n    return x + y\n"


@pytest.mark.parametrize("text, cls, match, line, column", [
    # wrong arity, in a computation and in a program
    (HEAD + "define g(x : Real) : Real !{} =\n    let z <- f(x)\n    return z\n",
     QuiversTypeError, "takes 2 argument", 4, 14),
    (HEAD + "object A : FinSet 1\nprogram p : A -> A\n    let z <- f(1.0)\n    return z\n",
     QuiversTypeError, "takes 2 argument", 5, 14),
    # type mismatch: a tensor where a Real is expected, and a wrong result type
    (HEAD + "define g(xs : Tensor[Real]([2])) : Real !{} =\n    let z <- f(xs, 1.0)\n    return z\n",
     QuiversTypeError, "argument `x` of `f` is Real, but `xs` is Tensor", 4, 16),
    ("define g(x : Real) : Tensor[Real]([2]) !{} =\n    return x\n",
     QuiversTypeError, "returns Tensor\\[Real\\]\\(\\[2\\]\\), but `x` is Real", 2, 12),
    # unknown names and types
    ("define g(x : Real) : Real !{} =\n    return x + zz\n", UnknownNameError, "unknown name `zz`", 2, 16),
    ("define g(x : Real) : Real !{} =\n    return frob(x)\n", UnknownNameError, "unknown function `frob`", 2, 12),
    ("define g(x : Complex) : Real !{} =\n    return x\n", UnknownNameError, "unknown type `Complex`", 1, 14),
    ("define g(x : Real) : Real !{IO} =\n    return x\n", UnknownNameError, "unknown effect `IO`", 1, None),
    # undeclared effects: performed, and through a callee
    ("define g(x : Real) : Real !{} =\n    factor x\n    return x\n",
     QuiversTypeError, "the effect `Score`.*!\\{\\} of `g` does not declare", 2, None),
    ("define s(x : Real) : Real !{Score} =\n    factor x\n    return x\n"
     "define g(x : Real) : Real !{} =\n    let y <- s(x)\n    return y\n",
     QuiversTypeError, "`s` may score \\(the effect `Score`\\)", 5, 14),
    # a computation run where a value is expected
    (HEAD + "define g(x : Real) : Real !{} =\n    let z = f(x, x)\n    return z\n",
     QuiversTypeError, "runs a computation", 4, 13),
    (HEAD + "define g(xs : Tensor[Real]([2])) : Tensor[Real]([2]) !{} =\n    return map(xs, v -> f(v, v))\n",
     QuiversTypeError, "use `traverse`", 4, None),
    # traverse needs a computation call; map needs a function
    ("define g(xs : Tensor[Real]([2])) : Tensor[Real]([2]) !{} =\n    let z <- traverse(xs, v -> v + 1.0)\n    return z\n",
     QuiversTypeError, "must run one computation", 2, None),
    ("define g(xs : Tensor[Real]([2])) : Tensor[Real]([2]) !{} =\n    return map(xs, xs)\n",
     QuiversTypeError, "takes a function", 2, None),
    # a log weight is not a number until weight_value
    ("define g(x : Real) : Real !{} =\n    return log_prob(Normal(0.0, 1.0), x) + 1.0\n",
     QuiversTypeError, "weight_value", 2, None),
    # declared before use; always returns
    ("define g(x : Real) : Real !{} =\n    let y <- h(x)\n    return y\ndefine h(x : Real) : Real !{} =\n    return x\n",
     QuiversTypeError, "declared after it", 2, None),
    ("define g(x : Real) : Real !{} =\n    let y = x\n", QuiversTypeError, "never returns", 1, None),
    # a program's `<-` runs a computation, not a value
    ("object A : FinSet 1\nprogram p : A -> A\n    let z <- nothing(1.0)\n    return z\n",
     UnknownNameError, "`nothing` is not a computation", 3, None),
    (HEAD + "object A : FinSet 2\nprogram p : A -> A\n    sample m : A <- Normal(0.0, 1.0)\n"
     "    let z <- traverse(m, v -> f(v, v))\n    return z\n",
     QuiversTypeError, "`traverse` runs inside a computation", 6, 14),
    # a function is an argument of a combinator, inside a computation
    ("object A : FinSet 2\nprogram p : A -> A\n    sample m : A <- Normal(x -> x, 1.0)\n    return m\n",
     QuiversTypeError, "a function `x -> x` is an argument of `map`", 3, 28),
])
def test_bad_computations_are_located_errors(text, cls, match, line, column):
    _error(text, cls, match, line, column)


def test_a_computation_is_declared_with_define_not_let():
    with pytest.raises(QuiversError, match="declared with `define`"):
        loads("let f(x : Real) : Real !{} =\n    return x\n")


def test_a_program_argument_of_the_wrong_shape_is_a_located_run_time_error():
    text = HEAD.replace("Real, y : Real", "Real, y : Real") + (
        "object A : FinSet 2\nprogram p : A -> A\n    sample m : A <- Normal(0.0, 1.0)\n    let z <- f(m, 1.0)\n    return z\n"
    )
    p = loads(text).morphism
    with pytest.raises(ShapeError, match="argument 1 of `f` is a tensor with 0 axes; the value given has the axes A"):
        p.sample()


# ---------------------------------------------------------------- the Python combinators


def test_combinators_follow_the_leading_axis():
    xs = torch.arange(6.0, dtype=torch.float64).reshape(3, 2)
    assert map_over(xs, lambda row: row.sum()).tolist() == [1.0, 5.0, 9.0]
    assert map_over(xs, lambda row: row * 2).shape == (3, 2)
    lse = logsumexp_over(torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64), lambda s: s)
    assert float(lse) == pytest.approx(math.log(math.exp(1) + math.exp(2) + math.exp(3)), abs=1e-12)
    assert float(fold(torch.tensor([1.0, 2.0, 3.0]), 10.0, lambda acc, x: acc - x)) == 4.0
    sq = Computation("sq", [("x", REAL)], REAL, (), lambda x: x * x)
    assert traverse(torch.tensor([2.0, 3.0]), sq).tolist() == [4.0, 9.0]
    with pytest.raises(ShapeError, match="one real number per item"):
        logsumexp_over(xs, lambda row: row)


def test_python_computations_check_arity_types_and_effects():
    noisy = Computation("noisy", [("x", REAL)], REAL, ["Score"], lambda x: (score(x), x)[1])
    with pytest.raises(QuiversTypeError, match="takes 1 argument"):
        noisy.run(1.0, 2.0)
    with pytest.raises(QuiversTypeError, match="argument `x` is Real"):
        noisy.run(torch.ones(2))
    pure = Computation("pure", [("x", REAL)], REAL, [], lambda x: noisy(x))
    with pytest.raises(QuiversTypeError, match="computation `pure` runs `noisy`, whose effect `Score`"):
        pure.run(torch.tensor(1.0))
    with pytest.raises(QuiversTypeError, match="the function given to `map` runs `noisy`.*does not declare it"):
        Computation("m", [("xs", ValueType("Real", (2,)))], ValueType("Real", (2,)), ["Score"],
                    lambda xs: map_over(xs, noisy)).run(torch.ones(2))
    with pytest.raises(QuiversTypeError, match="unknown effect `IO`"):
        Computation("io", [], REAL, ["IO"], lambda: 0.0)
    assert float(noisy.run(torch.tensor(1.5)).score) == 1.5


def test_the_highlighter_reads_computations():
    from pygments.token import Error

    from quivers.dsl.lexer import QVRLexer

    assert [v for t, v in QVRLexer().get_tokens(GRID + SCORED) if t is Error] == []


def test_the_example_grid_is_exact_against_enumeration():
    from pathlib import Path

    from quivers.dsl import load

    m = load(Path(__file__).resolve().parents[2] / "examples" / "grid_posterior.qvr")
    counts = [1.0, 2.0, 2.0, 3.0, 1.0]
    joint = [sum(stats.poisson.logpmf(k, rate) for k in counts) for rate in (1.0, 2.0, 4.0)]
    top = max(joint)
    want = torch.tensor([math.exp(j - top) for j in joint], dtype=torch.float64)
    got = m.run_computation("rate_posterior", torch.tensor(counts, dtype=torch.float64)).value
    assert torch.allclose(got, want / want.sum(), rtol=1e-12, atol=1e-15)


def test_qvr_run_prints_a_computation_value(tmp_path):
    import io
    import json

    from quivers.cli import main

    path = tmp_path / "grid.qvr"
    path.write_text(GRID)
    out, err = io.StringIO(), io.StringIO()
    code = main(["run", str(path), "location_posterior", json.dumps(READINGS.tolist()), "0.7", "--json"], out=out, err=err)
    assert code == 0, err.getvalue()
    got = json.loads(out.getvalue())
    assert got["score"] == 0.0 and got["value"] == pytest.approx(brute_force_posterior(), abs=1e-12)
    code = main(["run", str(path), "location_posterior", "[1, 2]", "0.7"], out=io.StringIO(), err=err)
    assert code == 1 and "argument `readings` is Tensor[Real]([5])" in err.getvalue()


# A latent through a computation: a conjugate normal mean, its likelihood
# computed by a `define` and added by `factor`.
CONJUGATE = """\
define log_lik(mu : Real, ys : Tensor[Real]([4])) : Real !{} =
    let each = map(ys, y -> weight_value(log_prob(Normal(mu, 1.0), y)))
    return sum(each)

object One : FinSet 1

program p : One -> One
    sample mu <- Normal(0.0, 1.0)
    let ll <- log_lik(mu, ys)
    factor ll
    return mu

export p
"""
YS = torch.tensor([0.5, 1.0, 1.5, 2.0], dtype=torch.float64)


def test_a_latent_through_a_computation_has_the_exact_density_and_gradient():
    p = loads(CONJUGATE).morphism
    mu = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    lp = p.log_joint(None, {"ys": YS}, {"mu": mu})
    lp.backward()
    want = stats.norm.logpdf(0.3, 0, 1) + stats.norm.logpdf(YS.numpy(), 0.3, 1).sum()
    assert float(lp.detach()) == pytest.approx(want, abs=1e-12)
    assert float(mu.grad) == pytest.approx(-0.3 + float((YS - 0.3).sum()), abs=1e-12)


@pytest.mark.slow
def test_nuts_through_a_computation_recovers_the_conjugate_posterior():
    p = loads(CONJUGATE).morphism
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = fit(p, {"ys": YS.float()}, method="nuts", num_samples=400, num_warmup=300, num_chains=2, seed=1,
                progress_bar=False)
    draws = r.flat_samples()["mu"].double()
    mean, sd = float(YS.sum()) / 5, 1 / math.sqrt(5)  # the posterior N(sum y / (n + 1), 1 / (n + 1))
    assert abs(float(draws.mean()) - mean) < 4 * sd / math.sqrt(200)
    assert abs(float(draws.std()) - sd) < 0.15 * sd


def test_a_parametric_program_that_runs_a_computation_is_inlined_with_renamed_sites():
    text = (
        "define twice(x : Real) : Real !{} =\n    return 2.0 * x\n\n"
        "object Item : FinSet 4\n"
        "program shift(scale : Real) : 1 -> 1\n    sample z <- Normal(0.0, 1.0)\n    let d <- twice(z)\n"
        "    return scale * d\n"
        "program m : Item -> Item\n    sample a <- shift(1.5)\n    sample b <- shift(0.5)\n"
        "    observe y : Item <- Normal(a + b, 1.0)\nexport m\n"
    )
    p = loads(text).morphism
    assert {"a_z", "a_d", "b_z", "b_d"} <= set(p.sites)
    d = p.sample()
    assert torch.allclose(d["a"], 3.0 * d["a_z"]) and torch.allclose(d["b"], d["b_z"])
