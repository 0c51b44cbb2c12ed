"""Every program potential NUTS runs is recorded whole under capture, and
the recorded graph is the eager potential.

:func:`~quivers.inference.mcmc.compiled.compile_potential` records a
program's potential and its gradient once, inside
:func:`quivers.capture.capture`, and replays the graph at every later
point. Eager code on the CPU reads values on the host to choose a
shortcut; a recorded graph keeps the branch of the point it was recorded
at. So for each program below (the ones the repository builds in its tests
and examples that NUTS can run: continuous latents, the discrete ones
summed) the recording must succeed (no
:class:`~quivers.inference.mcmc.compiled.CompileWarning`), and its value
and gradient must be the eager ones at other points, among them points
that send a shortcut down its other branch (a log-space product whose rows
underflow, weights next to zero).
"""

from __future__ import annotations

import json
import math
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from quivers.capture import capture
from quivers.categories import FinFunction, FinSet
from quivers.categories.semiring import _log_matmul
from quivers.distributions import Categorical, Dirichlet, HalfNormal, Normal, Poisson
from quivers.dsl import load, loads
from quivers.errors import InvalidValueError
from quivers.inference.mcmc import NUTS
from quivers.inference.mcmc.compiled import CompileWarning, compile_potential
from quivers.inference.mcmc.hamiltonian import potential_and_grad
from quivers.planning import auto
from quivers.programs import Program, apply, index_map, marginalize, markov, observe, ret, sample, var

from tests.distributions.test_pushforward import PROGRAM as PUSHFORWARD
from tests.distributions.test_pushforward import ZIP
from tests.dsl.test_computations import SCORED
from tests.inference import reference as R
from tests.inference.test_hmm_posteriordb import hmm_example
from tests.inference.test_stan_models import capture_data, mixture_data, occupancy_data
from tests.planning.models import Shape, build, hmm_chain
from tests.programs.models import gmm, grouped
from tests.programs.test_markov_second_order import covariate_hmm, second_order_hmm
from tests.programs.test_tables import _tree
from tests.programs.test_vectors import COVARIANCE

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "examples"
F64 = torch.float64

pytestmark = pytest.mark.usefixtures("float64")  # tests/conftest.py


def example(name: str) -> Program:
    return load(EXAMPLES / f"{name}.qvr").morphism


def example_data(file: str) -> dict[str, torch.Tensor]:
    return {k: torch.tensor(v) for k, v in json.loads((EXAMPLES / file).read_text()).items()}


def simulated(program: Program, given: dict | None = None, seed: int = 0) -> dict[str, torch.Tensor]:
    """Observations drawn from the program's prior (``given`` kept)."""
    torch.manual_seed(seed)
    draw = program.sample(None, (), observations=given or {})
    observed = {s.name for s in program.observed_sites}
    return dict(given or {}) | {k: v for k, v in draw.items() if k in observed}


# ------------------------------------------------------------- the corpus


def _eight_schools():
    return example("eight_schools"), example_data("eight_schools.json")


def _seed_mixture():
    from benchmarks.models import gmm_source, simulate_gmm

    return loads(gmm_source(200, 3)).morphism, {"y": simulate_gmm(200, 3).to(F64)}


def _gmm_example():
    return example("gmm"), {"y": torch.tensor(json.loads((EXAMPLES / "gmm_data.json").read_text())["y"])}


def _kidiq():
    data = R.load("kidiq.data.json.zip")
    return example("kidiq"), {k: torch.tensor(data[k], dtype=F64) for k in ("kid_score", "mom_iq")}


def _lda():
    data = example_data("lda.json")
    return example("lda"), data


def _grouped_mixture():
    prog = example("grouped_mixture")
    n = prog.sites["y"].shape[0]
    return prog, simulated(prog, {"group": torch.arange(n) % 20})


def _grouped_auto():
    prog = example("grouped_auto")
    n = prog.sites["y"].shape[0]
    return prog, simulated(prog, {"group": torch.arange(n) % 20})


def _python_grouped():
    prog = grouped(12, 3, 2, declared=True)
    return prog, simulated(prog, {"group": torch.arange(12) % 3})


def _normal_mixture_k():
    prog = example("normal_mixture_k")
    return prog, {"y": mixture_data(n=200)["y"]}


def _pmf():
    prog = example("pmf")
    return prog, simulated(prog, {"user": torch.arange(48) % 8, "movie": torch.arange(48) % 6})


def _covariate_hmm():
    prog = covariate_hmm(12, 3)
    return prog, simulated(prog)


def _second_order_hmm():
    prog = second_order_hmm(9, 3, varying=False, init=True)
    return prog, simulated(prog)


def _second_order_observed_path():
    prog, _ = _second_order_hmm()
    torch.manual_seed(2)
    draw = prog.sample(None, ())
    return prog, {"y": draw["y"], "z": draw["z"]}


def _tree_table():
    """A factor table of latents (tests/programs/test_tables.py's tree)."""
    prog = _tree(3)
    return prog, simulated(prog)


def _qvr_factor_table():
    prog = loads("""
object Row : FinSet 20
object Leaf : FinSet 5
object Obs : FinSet 2
program p : Obs -> Obs
    sample fx : Row <- Normal(0.0, 1.0)
    sample lf : Leaf <- Normal(0.0, 1.0)
    let grid = factor r : Row, c : Leaf in fx[r] * lf[c] + 0.5 * c
    observe y : Obs <- Normal(grid[19, 4], 1.0)
export p
""").morphism
    return prog, {"y": torch.tensor([0.1, -0.2], dtype=F64)}


# tests/dsl/test_computations.py's scoring computations, without its program
DEFINES = SCORED[: SCORED.index("object One")]


def _computation():
    """A scoring computation (``!{Score}``) applied to a latent."""
    prog = loads(DEFINES + """object Item : FinSet 5
program p : Item -> Item
    sample mu <- Normal(0.0, 1.0)
    let m <- shrink(mu)
    observe y : Item <- Normal(m, 1.0)
    return y
export p
""").morphism
    return prog, {"y": torch.tensor([0.3, -1.0, 0.8, 2.0, 1.1], dtype=F64)}


def _traversed_computation():
    """A scoring computation traversed over a latent vector."""
    prog = loads(DEFINES + """object V : FinSet 3
object Item : FinSet 4
program p : Item -> Item
    sample theta : V <- Normal(0.0, 1.0)
    let ys <- shrink_all(theta)
    observe y : Item <- Normal(sum(ys), 1.0)
    return y
export p
""").morphism
    return prog, {"y": torch.tensor([0.3, -1.0, 0.8, 2.0], dtype=F64)}


def _pushforward():
    prog = loads(PUSHFORWARD).p
    g = torch.Generator().manual_seed(3)
    return prog, {"y": torch.rand(6, generator=g, dtype=F64) * 3 + 0.05, "z": torch.randn(6, generator=g, dtype=F64)}


def _point_mass_mixture():
    prog = loads(ZIP).zip
    return prog, {"y": torch.tensor([0, 0, 3, 1, 0, 5])}


def _point_mass_on_a_plate():
    """A point mass per component, read by the component a row is summed over."""
    prog = loads("""object K : FinSet 2
object Item : FinSet 5
program p : Item -> Item
    sample offset : K <- PointMass(1.5)
    sample mu : K <- Normal(0.0, 2.0)
    sample w : K <- Dirichlet(2.0)
    marginalize z : K <- Categorical(w)
        observe y : Item <- Normal(mu[z] - offset[z], 0.5)
    return y
export p
""").p
    return prog, {"y": torch.tensor([0.4, -1.6, 1.2, 0.3, -0.2], dtype=F64)}


def _mvn_covariance():
    """A covariance built from latents: at the far points ``r`` is +-1 in
    float64, the factorization fails, and the density is NaN there."""
    prog = loads(COVARIANCE).morphism
    return prog, {"y": torch.randn(6, 2, generator=torch.Generator().manual_seed(5), dtype=F64)}


def _lkj():
    prog = loads("""
object Dim : FinSet 3
object Item : FinSet 5
program corr : Item -> Item
    sample conc <- HalfNormal(2.0)
    sample factor_l : Dim <- LKJCholesky(conc)
    sample sd <- HalfNormal(1.0)
    observe y : Item * Dim <- MultivariateNormal(vector(Dim, 0.0, 0.0, 0.0), scale_tril=sd * factor_l)
    return y
export corr
""").morphism
    return prog, {"y": torch.randn(5, 3, generator=torch.Generator().manual_seed(6), dtype=F64)}


def _wide_hmm():
    """Six states: the log-space products of the forward pass have an inner
    axis wider than the broadcast one, so eager takes the shifted matmul
    (and its redo where rows underflow) and the capture the broadcast."""
    T, K = FinSet("T", 15), FinSet("K", 6)
    mu, z = var("mu"), var("z")
    prog = Program("wide", T, T, [
        sample("theta", K * K, Dirichlet(0.5)),
        sample("mu", K, Normal(0.0, 3.0)),
        sample("sd", None, HalfNormal(1.0)),
        markov("z", T, K, Categorical(var("theta")), [observe("y", T, Normal(mu[z], var("sd")))]),
    ])
    return prog, simulated(prog)


def _observed_path_hmm():
    """A markov block whose path is given: its prior is the path's score."""
    prog, _ = _covariate_hmm()
    draw = simulated(prog)
    torch.manual_seed(1)
    draw["z"] = prog.sample(None, (), observations={"x": draw["x"]})["z"]
    return prog, draw


def _sequences_of_different_lengths():
    """First-order chains, from a learned initial law, over sequences that
    end at ``last`` (data): each chain's forward pass stops there."""
    S, T, K = FinSet("S", 4), FinSet("T", 6), FinSet("K", 3)
    z = var("z")
    prog = Program("seqs", S * T, S * T, [
        index_map("last", S, T),
        sample("trans", K * K, Dirichlet(1.0)),
        sample("start", K, Dirichlet(1.0)),
        sample("loc", K, Normal(0.0, 3.0)),
        markov("z", S * T, K, Categorical(var("trans")), [observe("y", S * T, Normal(var("loc")[z], 1.0))],
               init=Categorical(var("start")), until="last"),
    ])
    y = torch.randn(4, 6, generator=torch.Generator().manual_seed(7), dtype=F64)
    return prog, {"y": y, "last": torch.tensor([5, 1, 0, 3])}


def _planned_chain():
    """An HMM written as plain discrete sample sites, summed by the planner
    (``auto``) as one chain."""
    chain, _ = hmm_chain(6, 3)
    prog = auto(chain)
    return prog, simulated(prog)


def _planned_random():
    """Every kind of discrete site of tests/planning's random programs,
    summed by the planner: shared, per group through an index map, per row."""
    prog = auto(build(Shape(a=True, b=True, c=True, d=True, x=True, c_reads_a=True, d_reads_c=True, n=5, g=2)))
    return prog, simulated(prog, {"group": torch.tensor([0, 1, 1, 0, 1])})


def _function_of_counts():
    """A FinFunction applied to observed counts (integers of no known set,
    range-checked eagerly), inside a marginalized block."""
    Item, G, K = FinSet("Item", 6), FinSet("G", 3), FinSet("K", 2)
    f = FinFunction(G, K, [1, 0, 1])
    prog = Program("counts", Item, Item, [
        observe("c", Item, Poisson(1.0)),
        sample("mu", K, Normal(0.0, 2.0)),
        sample("w", K, HalfNormal(1.0)),
        marginalize("z", K, Categorical(var("w")), [
            observe("y", Item, Normal(var("mu")[apply(f, var("c"))] + var("mu")[var("z")], 1.0))]),
    ])
    return prog, {"c": torch.tensor([0.0, 1, 2, 2, 1, 0]), "y": torch.tensor([0.3, -1.2, 2.2, 0.8, -0.1, 1.0], dtype=F64)}


def _expression_functions():
    """The expression language's functions and reductions of latents."""
    prog = loads("""
object K : FinSet 4
object Item : FinSet 5
program p : Item -> Item
    sample a : K <- Normal(0.0, 1.0)
    sample s <- HalfNormal(1.0)
    let b = sort(a, K)
    let c = cumsum(exp(a), K)
    let m = where(s > 1.0, log(s), s - 1.0)
    let q = clamp(a, -1.0, 1.0)
    let t = softmax(a, K)[1] + logsumexp(a, K) + sum(softplus(q), K) + mean(relu(a) + step(a), K)
    observe y : Item <- Normal(b[0] + c[3] + m + t + prod(sqrt(abs(a) + 1.0), K), s)
    return y
export p
""").morphism
    return prog, {"y": torch.tensor([0.3, -1.0, 0.8, 2.0, 1.0], dtype=F64)}


def _composites():
    """Two programs with continuous latents, each passing its input on."""
    A, I = FinSet("A", 3), FinSet("I", 4)
    p = Program("p", A, A, [sample("mu", None, Normal(0.0, 1.0)), observe("y", I, Normal(var("mu"), 1.0)),
                            ret("a")], input="a")
    q = Program("q", A, A, [sample("s", None, HalfNormal(1.0)), observe("w", I, Normal(0.0, var("s"))),
                            ret("b")], input="b")
    return p, q, {"y": torch.tensor([0.2, -0.4, 1.1, 0.0], dtype=F64), "w": torch.tensor([1.5, -0.3, 0.2, -2.0], dtype=F64)}


def _then():
    p, q, obs = _composites()
    return p >> q, obs, torch.tensor(1)


def _tensor():
    p, q, obs = _composites()
    return p @ q, obs, torch.tensor(4)


# Families whose support depends on their parameters (a count's bounds, a
# latent upper bound), and families written out by densities.py.
FAMILIES = """
object Item : FinSet 8
object C : FinSet 3
program families : Item -> Item
    data n : Item
    data x : Item
    sample p <- Beta(2.0, 2.0)
    sample a <- HalfNormal(2.0)
    sample beta <- Normal(0.0, 1.0)
    sample cut : C <- Normal(0.0, 3.0) [constraint=ordered]
    sample theta <- HalfNormal(5.0)
    sample g <- Beta(1.0, 1.0)
    sample rate <- HalfNormal(3.0)
    sample mu <- Normal(0.0, 3.0)
    sample s <- HalfCauchy(1.0)
    sample nu <- Gamma(2.0, 0.1)
    observe k : Item <- Binomial(n, p)
    observe bb : Item <- BetaBinomial(10, a, a + 1.0)
    observe o : Item <- OrderedLogistic(beta * x, cut)
    observe u : Item <- Uniform(0.0, theta)
    observe h : Item <- HurdlePoisson(g, rate)
    observe zi : Item <- ZeroInflatedNegativeBinomial(g, rate, logits=mu)
    observe t : Item <- Truncated(Normal(mu, s), 0.0, 5.0)
    observe st : Item <- StudentT(nu, mu, s)
    observe ln : Item <- LogNormal(mu, s)
    observe c : Item <- Poisson(exp(mu))
    observe b : Item <- Bernoulli(logits=mu)
    return k
export families
"""


def _families():
    counts = torch.tensor([1.0, 2, 3, 4, 5, 6, 0, 4])
    positive = torch.tensor([0.5, 1.0, 2.0, 0.1, 0.3, 4.0, 1.5, 0.2], dtype=F64)
    return loads(FAMILIES).morphism, {
        "n": torch.tensor([5.0, 6, 7, 8, 9, 10, 3, 4]), "x": torch.linspace(-2, 2, 8, dtype=F64),
        "k": counts, "bb": torch.tensor([1.0, 2, 3, 4, 5, 6, 0, 10]), "o": torch.tensor([0.0, 1, 2, 3, 1, 2, 0, 3]),
        "u": positive, "h": counts, "zi": counts, "t": positive, "st": positive - 1.0, "ln": positive,
        "c": counts, "b": (counts > 2).to(F64),
    }


CORPUS: dict[str, Callable[[], tuple]] = {  # (program, observations[, input])
    "eight_schools": _eight_schools,
    "seed_mixture": _seed_mixture,
    "gmm_example": _gmm_example,
    "python_gmm": lambda: (gmm(30, 3), simulated(gmm(30, 3))),
    "hmm_example": hmm_example,
    "lda": _lda,
    "regression": lambda: (example("regression"), example_data("regression_data.json")),
    "mixture_regression": lambda: (example("mixture_regression"), example_data("mixture_regression_data.json")),
    "zip_regression": lambda: (example("zip_regression"), example_data("zip_data.json")),
    "kidiq": _kidiq,
    "capture_recapture": lambda: (example("capture_recapture"), capture_data()),
    "occupancy": lambda: (example("occupancy"), occupancy_data()),
    "mixture5": lambda: (example("mixture5"), mixture_data()),
    "normal_mixture_k": _normal_mixture_k,
    "grouped_mixture": _grouped_mixture,
    "grouped_auto": _grouped_auto,
    "python_grouped": _python_grouped,
    "pmf": _pmf,
    "covariate_hmm": _covariate_hmm,
    "second_order_hmm": _second_order_hmm,
    "second_order_observed_path": _second_order_observed_path,
    "tree_table": _tree_table,
    "qvr_factor_table": _qvr_factor_table,
    "computation": _computation,
    "traversed_computation": _traversed_computation,
    "pushforward": _pushforward,
    "point_mass_mixture": _point_mass_mixture,
    "point_mass_on_a_plate": _point_mass_on_a_plate,
    "mvn_covariance": _mvn_covariance,
    "lkj": _lkj,
    "wide_hmm": _wide_hmm,
    "observed_path_hmm": _observed_path_hmm,
    "sequences_of_different_lengths": _sequences_of_different_lengths,
    "planned_chain": _planned_chain,
    "planned_random": _planned_random,
    "families": _families,
    "function_of_counts": _function_of_counts,
    "expression_functions": _expression_functions,
    "then": _then,
    "tensor": _tensor,
}


def nuts_potential(program: Program, observations: dict, x=None):
    """The potential as a NUTS run builds it (kernel.setup): the adaptor
    bound to the data, then its plan for this data."""
    adaptor = NUTS(program).adaptor
    adaptor.bind(x, observations)
    return adaptor.potential_for(x, observations), adaptor.layout.dim


def points(dim: int, seed: int) -> list[torch.Tensor]:
    """Batches of 3 chains, from Stan's starting box out to far tails, and
    one whose coordinates are each either in the box or at +-750, where
    exp underflows to exactly 0: weights of zero, log-space rows that are
    all -inf, the eager shortcuts' other branches."""
    g = torch.Generator().manual_seed(seed)
    box = [(2 * torch.rand(3, dim, generator=g, dtype=F64) - 1) * r for r in (2.0, 0.5, 6.0, 15.0, 40.0)]
    far = torch.rand(3, dim, generator=g, dtype=F64) < 0.5
    sign = torch.where(torch.rand(3, dim, generator=g, dtype=F64) < 0.5, -750.0, 750.0)
    return box + [torch.where(far, sign.to(F64), box[0])]


def assert_same(got: tuple[torch.Tensor, torch.Tensor], want: tuple[torch.Tensor, torch.Tensor]) -> None:
    for x, y in zip(got, want):
        torch.testing.assert_close(x, y, rtol=1e-10, atol=1e-10, equal_nan=True)


def compiled_corpus_potential(name: str, backend: str):
    """The NUTS potential of ``CORPUS[name]``, compiled at the first batch
    of points (no CompileWarning allowed), and the other batches."""
    potential, dim = nuts_potential(*CORPUS[name]())
    start, *others = points(dim, seed=len(name))
    with warnings.catch_warnings():
        warnings.simplefilter("error", CompileWarning)
        compiled = compile_potential(potential, start, backend=backend)
    assert compiled.compiled
    return potential, compiled, others


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_the_potential_records_and_replays_the_eager_one(name):
    potential, compiled, others = compiled_corpus_potential(name, "eager")
    finite = 0
    for z in others:
        got = compiled.value_and_grad(z)
        for c in range(z.shape[0]):
            try:
                want = potential_and_grad(potential, z[c : c + 1])
            except InvalidValueError:
                # eager names a parameter with no law (an infinite weight);
                # the graph cannot raise, and gives the chain a NaN or
                # infinite energy, which NUTS counts as a divergence
                assert not torch.isfinite(got[0][c])
                continue
            assert_same((got[0][c : c + 1], got[1][c : c + 1]), want)
            finite += int(torch.isfinite(want[0]).sum())
    assert finite > 0


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")  # inductor's own import
@pytest.mark.skipif(shutil.which("c++") is None and shutil.which("g++") is None, reason="inductor needs a C++ compiler")
@pytest.mark.parametrize("name", ["families", "hmm_example", "tensor", "lkj", "lda", "capture_recapture"])
def test_inductor_compiles_the_recorded_potential(name):
    """The graphs inductor is given compile (a 0-dim index once made it
    refuse the potential of a tensor of programs) and agree with eager up
    to the rounding of reassociated sums, relative to each output's largest
    entry (as compile_potential's own check measures it)."""
    potential, compiled, others = compiled_corpus_potential(name, "inductor")
    for z in others[:3]:
        for got, want in zip(compiled.value_and_grad(z), potential_and_grad(potential, z)):
            finite = torch.isfinite(want)
            assert torch.equal(finite, torch.isfinite(got))
            if bool(finite.any()):
                scale = float(want[finite].abs().max().clamp(min=1.0))
                assert float((got - want)[finite].abs().max()) <= 1e-10 * scale


# ------------------------------------------------- the log-space product


def brute_log_matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``log sum_j exp(a[i, j] + b[j, k])`` entry by entry, in Python floats."""
    out = torch.empty(a.shape[0], b.shape[1], dtype=F64)
    for i in range(a.shape[0]):
        for k in range(b.shape[1]):
            terms = [float(a[i, j]) + float(b[j, k]) for j in range(a.shape[1])]
            top = max(terms)
            out[i, k] = top if top == -math.inf else top + math.log(math.fsum(math.exp(t - top) for t in terms))
    return out


# entries far apart (rows whose products underflow a shifted matmul) and -inf
_entry = st.one_of(st.floats(-800.0, 800.0), st.floats(-3.0, 3.0), st.just(-math.inf))


@st.composite
def log_matrices(draw):
    m, n, p = draw(st.integers(1, 4)), draw(st.integers(1, 8)), draw(st.integers(1, 4))
    a = torch.tensor([[draw(_entry) for _ in range(n)] for _ in range(m)], dtype=F64)
    b = torch.tensor([[draw(_entry) for _ in range(p)] for _ in range(n)], dtype=F64)
    return a, b


def _value_and_grads(a: torch.Tensor, b: torch.Tensor, w: torch.Tensor):
    a, b = a.clone().requires_grad_(), b.clone().requires_grad_()
    out = _log_matmul(a, b)
    finite = torch.isfinite(out)
    torch.where(finite, out * w, 0.0).sum().backward()
    return out.detach(), a.grad, b.grad


@given(log_matrices())
def test_the_captured_log_matmul_is_the_enumeration(ab):
    """Under capture the product is one broadcast logsumexp whatever the
    inner size: exact at every entry, -inf where every product is, and its
    gradient finite wherever the eager (shifted, redone) one's is."""
    a, b = ab
    w = torch.linspace(0.5, 1.5, a.shape[0] * b.shape[1], dtype=F64).reshape(a.shape[0], b.shape[1])
    with capture():
        out, ga, gb = _value_and_grads(a, b, w)
    want = brute_log_matmul(a, b)
    torch.testing.assert_close(out, want, rtol=1e-12, atol=1e-12)
    assert torch.equal(out == -math.inf, want == -math.inf)
    eager, ea, eb = _value_and_grads(a, b, w)
    torch.testing.assert_close(eager, want, rtol=1e-12, atol=1e-12)
    for got, ref in ((ga, ea), (gb, eb)):
        seen = torch.isfinite(ref)
        assert bool(torch.isfinite(got)[seen].all())
        torch.testing.assert_close(got[seen], ref[seen], rtol=1e-10, atol=1e-12)


# ------------------------------------------------- a Pushforward's image


@pytest.mark.parametrize("lo, hi", [(-math.inf, math.inf), (0.0, math.inf), (1.5, math.inf), (-math.inf, 2.0),
                                    (0.0, 1.0), (-1.0, 3.0)])
def test_the_captured_image_of_a_pushforward_has_the_eager_ends(lo, hi):
    """Under capture the image's ends are chosen per element, open or
    closed as eager's constraint has them (its ends included)."""
    from quivers.distributions.pushforward import _interval

    ends = torch.tensor([lo, hi], dtype=F64)
    values = torch.tensor([-math.inf, -5.0, -1.0, 0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 7.0, math.inf, math.nan], dtype=F64)
    values = torch.cat([values, ends])
    eager = _interval(ends[0], ends[1]).check(values)
    with capture():
        captured = _interval(ends[0], ends[1]).check(values)
    assert torch.equal(captured, eager)


# ---------------------------------------------------------------- how inductor is called


def test_inductor_writes_simd_loops_at_O3_only_for_a_graph_with_a_large_tensor(monkeypatch):
    # scalar loops compile in about half the time and ran as fast on every
    # NUTS leaf of the benchmarks (at most 8,000 elements), and built at -O1
    # they ran as fast again; both switches are read while inductor compiles
    import torch._inductor.compile_fx as inductor
    from torch._inductor import config, cpp_builder

    from quivers.capture import compile_graph, record

    seen = []
    flags = []

    def spy(graph, examples):
        cflags, ldflags = cpp_builder._get_optimization_cflags("g++")
        seen.append((config.cpp.vec_isa_ok, "O1" in cflags))
        flags.append((cflags, ldflags))
        return graph

    monkeypatch.setattr(inductor, "compile_fx", spy)
    for n in (8, 1 << 16):
        x = torch.ones(n)
        compile_graph(record(lambda z: (z.exp().sum(),), x), inputs=[x])
    assert seen == [(False, True), (True, False)]
    assert "O3" in cpp_builder._get_optimization_cflags("g++")[0]
    # the quick build has no line tables, and links with gold where the machine has it
    (quick_c, quick_ld), (full_c, full_ld) = flags
    assert "g1" not in quick_c and "g1" in full_c
    assert ("fuse-ld=gold" in quick_ld) == (shutil.which("ld.gold") is not None)
    assert "fuse-ld=gold" not in full_ld


def test_kernels_built_at_O1_give_the_results_of_O3_bit_for_bit(monkeypatch):
    # inductor passes -ffp-contract=off and no fast math: the optimization
    # level changes how fast the scalar loops run, not what they compute
    from contextlib import nullcontext

    from torch._inductor import config

    import quivers.capture as capture

    def leaf(z, w):
        u = torch.log1p(torch.exp(-z.abs())) + torch.tanh(w * z) - torch.lgamma(z.abs() + 1.5)
        return (u.sum(-1), torch.sigmoid(u) * w, torch.logsumexp(u, -1))

    gen = torch.Generator().manual_seed(0)
    z, w = torch.randn(4, 250, generator=gen, dtype=torch.float64), torch.rand(4, 250, generator=gen, dtype=torch.float64)
    results = []
    for quick in (True, False):
        if not quick:
            monkeypatch.setattr(capture, "_quick_kernels", nullcontext)
        with config.patch(force_disable_caches=True):
            fn = capture.compile_graph(capture.record(leaf, z, w, decompose=True), inputs=[z, w])
        results.append(fn(z, w))
    for a, b in zip(*results):
        assert torch.equal(a, b)


def test_an_inductor_graph_is_called_through_its_generated_code_alone(monkeypatch):
    # the compiled graph's own call wraps the generated code in hooks
    # (autotuning caches of GPU kernels, profiler, metrics) that cost each
    # NUTS leaf about 1.5 us; for CPU inputs the function compile_graph
    # returns calls the generated code directly
    from torch._inductor.output_code import CompiledFxGraph

    import quivers.capture as capture

    x = torch.linspace(-1.0, 1.0, 5, dtype=torch.float64)
    fn = capture.compile_graph(capture.record(lambda z: (torch.exp(z) * 2,), x, decompose=True), inputs=[x])

    def wrapped(self, inputs):
        raise AssertionError("called through CompiledFxGraph.__call__")

    monkeypatch.setattr(CompiledFxGraph, "__call__", wrapped)
    (out,) = fn(x)
    assert torch.allclose(out, torch.exp(x) * 2, rtol=1e-15, atol=0)



def test_a_build_of_scalar_loops_leaves_later_graphs_their_vector_instructions():
    # inductor finds the vector instruction sets it may use once a process
    # and caches them, keeping those cpp.vec_isa_ok allows at that first
    # look: a graph built first with scalar loops (vec_isa_ok off) left
    # every later graph of the process scalar (a compiled SVI step at
    # N=100,000 took 30 ms against 5.6)
    from torch._inductor import config, cpu_vec_isa

    import quivers.capture as capture

    found = cpu_vec_isa.valid_vec_isa_list
    found.cache_clear()
    expected = found()
    found.cache_clear()
    x = torch.linspace(-1.0, 1.0, 5, dtype=torch.float64)
    with config.patch(force_disable_caches=True):  # code is generated, not served from the cache
        fn = capture.compile_graph(capture.record(lambda z: (torch.exp(z) * 3,), x, decompose=True), inputs=[x])
    assert torch.allclose(fn(x)[0], torch.exp(x) * 3, rtol=1e-15, atol=0)
    assert found() == expected

@pytest.mark.parametrize("scale_from_data", [False, True], ids=["data-tensor", "data-number"])
def test_a_graph_compiled_for_other_data_of_the_same_shapes_is_served_from_the_cache(
        scale_from_data, monkeypatch, tmp_path):
    # the data are constants of the graph; keyed by their layout, a refit
    # to other data reuses the compiled code and reads the new data. A
    # 0-dim constant is written into the code as a number: one made from
    # the data keeps its value in the key, and other data compile afresh.
    # (The first-point check would catch stale data; this checks without it.)
    from torch._dynamo.utils import counters

    from quivers.capture import compile_graph, record

    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path))
    z = torch.linspace(-1.0, 1.0, 40, dtype=torch.float64)

    def compiled_for(y):
        scale = y.std() if scale_from_data else torch.tensor(1.5, dtype=torch.float64)

        def fn(z):
            return (((z - y) / scale).pow(2).sum(), (z * y).exp().mean())

        return compile_graph(record(fn, z, decompose=True), inputs=[z]), fn

    gen = torch.Generator().manual_seed(0)
    first, second = torch.randn(40, generator=gen, dtype=torch.float64), torch.randn(40, generator=gen, dtype=torch.float64)
    hits = counters["inductor"]["fxgraph_cache_hit"]
    results = []
    for y in (first, second):
        compiled, fn = compiled_for(y)
        results.append((compiled(z), fn(z)))
    assert counters["inductor"]["fxgraph_cache_hit"] == hits + (0 if scale_from_data else 1)
    for got, want in results:
        for a, b in zip(got, want):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=0)
    assert not torch.allclose(results[0][1][0], results[1][1][0])  # the data differ, and so do the results
    assert not any(hasattr(y, "_is_frozen_param") for y in (first, second))  # the caller's tensors are not marked


def test_constants_that_folding_leaves_unread_are_dropped_before_the_cache_key():
    # the cache key holds every tensor of the module: an unread copy of the
    # data would put its values back into the key
    from quivers.capture import _fold_constants, _keyed_by_layout, record

    y = torch.arange(20.0)
    graph = record(lambda z: ((z - y.exp()).sum(),), torch.ones(20), decompose=True)
    _fold_constants(graph)
    read = {n.target for n in graph.graph.nodes if n.op == "get_attr"}
    held = {n for n, v in vars(graph).items() if isinstance(v, torch.Tensor)} | set(graph._buffers)
    assert held == read and read
    _keyed_by_layout(graph)
    assert all(getattr(graph, name)._is_frozen_param for name in read)
    assert graph(torch.zeros(20))[0] == -y.exp().sum()


def _cholesky_leaf(z):
    # a leaf with an operation that has no C shim (the C++ wrapper calls
    # it through the dispatcher) beside fused loops
    a = torch.eye(3, dtype=z.dtype) * (1.0 + z.exp().sum()) + z.unsqueeze(-1) * z
    return (torch.linalg.cholesky(a).diagonal().log().sum(), z.tanh() * 2.0)


def assert_computes_the_cholesky_leaf(fn):
    # at a point other than the one compiled at
    other = torch.tensor([0.5, 0.0, -1.0], dtype=torch.float64)
    for a, b in zip(fn(other), _cholesky_leaf(other)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_the_direct_route_compiles_with_the_cpp_wrapper_and_keeps_no_shim_notice(monkeypatch):
    # the C++ wrapper allocates and calls from C++ (a NUTS leaf 71 us
    # against 100 on hmm_example); its notice that an operation has no C
    # shim says nothing a user can act on, and is dropped
    import logging

    import torch._inductor.compile_fx as inductor
    from torch._inductor import config

    from quivers.capture import compile_graph, record

    wrappers = []
    real = inductor.compile_fx_inner

    def spy(graph, examples, **kwargs):
        wrappers.append(kwargs.get("cpp_wrapper", False))
        return real(graph, examples, **kwargs)

    class Notices(logging.Handler):
        def __init__(self):
            super().__init__(logging.DEBUG)
            self.messages = []

        def emit(self, record):
            self.messages.append(record.getMessage())

    notices = Notices()
    ir = logging.getLogger("torch._inductor.ir")
    monkeypatch.setattr(inductor, "compile_fx_inner", spy)
    level = ir.level
    ir.setLevel(logging.WARNING)
    ir.addHandler(notices)
    try:
        z = torch.tensor([0.1, -0.2, 0.3], dtype=torch.float64)
        with config.patch(force_disable_caches=True):  # a cache hit would generate no code, and no notice
            fn = compile_graph(record(_cholesky_leaf, z, decompose=True), inputs=[z])
        ir.warning("aten.example.default is missing a c-shim implementation, using proxy executor as fallback")
    finally:
        ir.removeHandler(notices)
        ir.setLevel(level)
    assert wrappers == [True]
    # the compile's own notice was dropped; the filter is gone after it
    assert [m for m in notices.messages if "c-shim" in m] == [
        "aten.example.default is missing a c-shim implementation, using proxy executor as fallback"]
    assert_computes_the_cholesky_leaf(fn)


def test_a_graph_the_cpp_wrapper_refuses_is_compiled_with_the_python_wrapper(monkeypatch):
    import torch._inductor.compile_fx as inductor

    from quivers.capture import compile_graph, record

    wrappers = []
    real = inductor.compile_fx_inner

    def refusing(graph, examples, **kwargs):
        wrappers.append(kwargs.get("cpp_wrapper", False))
        if kwargs.get("cpp_wrapper"):
            raise RuntimeError("no C++ wrapper for this graph")
        return real(graph, examples, **kwargs)

    monkeypatch.setattr(inductor, "compile_fx_inner", refusing)
    z = torch.tensor([0.1, -0.2, 0.3], dtype=torch.float64)
    fn = compile_graph(record(_cholesky_leaf, z, decompose=True), inputs=[z])
    assert wrappers == [True, False]
    assert_computes_the_cholesky_leaf(fn)


def test_the_cpp_wrapper_precompiles_every_header_its_source_includes(monkeypatch):
    # gcc parsed the kernels' prefix and the Python binding's headers at
    # every build (hmm_example's leaf: 1.55 s of gcc against 1.28)
    from pathlib import Path

    from torch._inductor import codecache, config

    from quivers.capture import compile_graph, record

    own = vars(codecache.CppWrapperCodeCache)["_get_uncompiled_header"]
    headers = []
    real = codecache._precompile_header

    def spy(header, *args, **kwargs):
        headers.append(header)
        return real(header, *args, **kwargs)

    monkeypatch.setattr(codecache, "_precompile_header", spy)
    z = torch.tensor([0.1, -0.2, 0.3], dtype=torch.float64)
    with config.patch(force_disable_caches=True):  # a cache hit would build nothing
        fn = compile_graph(record(_cholesky_leaf, z, decompose=True), inputs=[z])
    assert len(headers) == 1
    included = Path(headers[0]).read_text().split("\n")
    assert included[:3] == ["#include <torch/csrc/inductor/cpp_wrapper/cpu.h>",
                            "#include <torch/csrc/inductor/cpp_prefix.h>", "#include <Python.h>"]
    assert vars(codecache.CppWrapperCodeCache)["_get_uncompiled_header"] is own
    assert_computes_the_cholesky_leaf(fn)


def test_the_one_header_is_undone_when_the_compile_raises():
    from torch._inductor import codecache

    from quivers.capture import _one_header

    own = vars(codecache.CppWrapperCodeCache)["_get_uncompiled_header"]
    with pytest.raises(RuntimeError), _one_header():
        assert codecache.CppWrapperCodeCache._get_uncompiled_header("cuda") == own.__func__(
            codecache.CppWrapperCodeCache, "cuda")  # another device keeps its own header
        raise RuntimeError("inductor failed")
    assert vars(codecache.CppWrapperCodeCache)["_get_uncompiled_header"] is own


def test_inductor_is_given_examples_of_static_sizes(monkeypatch):
    # symbolic sizes made inductor's fake propagation compute every size
    # symbolically (the mixture's leaf: 0.42 s against 0.10), for a graph
    # compiled for one shape anyway
    import torch._inductor.compile_fx as inductor

    from quivers.capture import compile_graph, record

    sizes = []
    real = inductor.compile_fx_inner

    def spy(graph, examples, **kwargs):
        sizes.extend(type(n) for e in examples for n in (*e.shape, *e.stride()))
        return real(graph, examples, **kwargs)

    monkeypatch.setattr(inductor, "compile_fx_inner", spy)
    x = torch.linspace(-1.0, 1.0, 6, dtype=torch.float64).reshape(2, 3)
    fn = compile_graph(record(lambda z: (z.exp().sum(-1),), x, decompose=True), inputs=[x])
    assert sizes and set(sizes) == {int}
    torch.testing.assert_close(fn(x)[0], x.exp().sum(-1))


def test_quick_kernels_restores_the_flags_when_the_compile_raises():
    from torch._inductor import cpp_builder

    from quivers.capture import _quick_kernels

    before = cpp_builder._get_optimization_cflags
    with pytest.raises(RuntimeError), _quick_kernels():
        assert cpp_builder._get_optimization_cflags("g++")[0][0] == "O1"
        raise RuntimeError("inductor failed")
    assert cpp_builder._get_optimization_cflags is before


def test_writes_into_fresh_results_are_made_out_of_place_and_other_writes_refused():
    # inductor is handed a graph as it stands: a decomposition's write into
    # a mask it just made is rewritten; a write into an input or a view
    # sends the graph through compile_fx, which makes it functional
    from quivers.capture import _make_functional, record

    def writes_fresh(x):
        y = x * 2
        y.add_(1)
        return (y,)

    def writes_input(x):
        x.add_(1)
        return (x,)

    def writes_view(x):
        x.view(3).add_(1)
        return (x * 2,)

    x = torch.ones(3)
    graph = record(writes_fresh, x.clone())
    assert _make_functional(graph)
    assert not any(n.target._schema.is_mutable for n in graph.graph.nodes if isinstance(n.target, torch._ops.OpOverload))
    assert torch.equal(graph(torch.arange(3.0))[0], torch.tensor([1.0, 3.0, 5.0]))
    for fn in (writes_input, writes_view):
        graph = record(fn, x.clone())
        assert not _make_functional(graph)
        assert any(n.target._schema.is_mutable for n in graph.graph.nodes if isinstance(n.target, torch._ops.OpOverload))


def test_operations_on_constants_alone_are_computed_once_before_inductor_sees_them():
    # inductor's lowering once broadcast a comparison of two constants to
    # the wrong shape (the families program's gradient came out 0.64 off)
    from quivers.capture import _fold_constants, record

    data = torch.tensor([1.0, 2.0, 0.0, 10.0])
    bound = torch.tensor(10.0)

    def fn(z):
        inside = (data.reshape(1, 4) <= bound.expand(3, 1)).to(z.dtype)  # (3, 4), from constants alone
        return ((z.unsqueeze(-1) * inside * data.exp()).sum(-1),)

    z = torch.tensor([0.5, -1.0, 2.0])
    graph = record(fn, z, decompose=True)
    assert graph.meta["decomposed"]
    before = graph(z)[0]
    _fold_constants(graph)
    ops = {str(n.target) for n in graph.graph.nodes if n.op == "call_function"}
    assert not ops & {"aten.le.Tensor", "aten.exp.default", "aten.expand.default"}, ops
    torch.testing.assert_close(graph(z)[0], before, rtol=0, atol=0)
    torch.testing.assert_close(graph(-z)[0], fn(-z)[0], rtol=0, atol=0)


def test_fills_are_folded_into_the_constants_they_make_and_kept_where_computed_values_read_them():
    # arange(2) + 1, its log and a broadcast are constants (a Dirichlet's
    # stick-breaking offsets); a fill added to what depends on z stays a
    # fill, which inductor writes into the loop instead of loading
    from quivers.capture import _fold_constants, record

    def fn(z):
        offset = (torch.arange(2, dtype=z.dtype) + 1).log()
        return ((z - offset).sigmoid().sum() + torch.zeros(2, dtype=z.dtype).add(z).sum(),)

    z = torch.tensor([0.5, -1.0])
    graph = record(fn, z, decompose=True)
    before = graph(z)[0]
    _fold_constants(graph)
    ops = [str(n.target) for n in graph.graph.nodes if n.op == "call_function"]
    assert not {"prims.iota.default", "aten.log.default"} & set(ops), ops
    assert ops.count("aten.full.default") == 1, ops
    torch.testing.assert_close(graph(z)[0], before, rtol=0, atol=0)
    torch.testing.assert_close(graph(-z)[0], fn(-z)[0], rtol=0, atol=0)


def test_a_recording_keeps_no_annotation_of_the_function_recorded():
    # postponed annotations (this module's, the samplers') were kept as
    # string globals of the graph's code, which AOT autograd's cache cannot
    # key: AOT autograd redid its part of a compile_fx compile on every run
    from quivers.capture import record

    def fn(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return z.exp(), z.sum()

    graph = record(fn, torch.ones(3))
    assert all(node.type is None for node in graph.graph.nodes)
    assert not [name for name, value in graph.recompile().globals.items() if isinstance(value, str)]


def test_a_recording_makes_one_fake_mode_not_one_per_operation(monkeypatch):
    # make_fx keeps a fake value of each operation's result; without a
    # tracing context holding a fake mode it made a new mode for each, and
    # each mode takes a stack trace (a third of hmm_example's recording)
    from torch._subclasses.fake_tensor import FakeTensorMode

    from quivers.capture import record

    made = []
    init = FakeTensorMode.__init__

    def counted(self, *args, **kwargs):
        made.append(self)
        init(self, *args, **kwargs)

    monkeypatch.setattr(FakeTensorMode, "__init__", counted)
    graph = record(lambda z: (z.exp().log1p().sin().cos().tanh().sum(),), torch.ones(3), decompose=True)
    assert sum(1 for node in graph.graph.nodes if node.op == "call_function") >= 6
    assert len(made) == 1
    vals = [node.meta["val"] for node in graph.graph.nodes if node.op == "call_function"]
    assert all(v.fake_mode is made[0] for v in vals)


def test_recording_pauses_the_cyclic_collector_and_restores_it(monkeypatch):
    # a collection walks the whole heap; while a graph is recorded or
    # compiled none runs, and the collector is left as it was found
    import gc

    import torch._inductor.compile_fx as inductor

    from quivers.capture import compile_graph, record

    seen = []

    def fn(z):
        seen.append(gc.isenabled())
        return (z * 2,)

    def spy(graph, examples):
        seen.append(gc.isenabled())
        return graph

    monkeypatch.setattr(inductor, "compile_fx", spy)
    x = torch.ones(3)
    assert gc.isenabled()
    compile_graph(record(fn, x), inputs=[x])
    assert seen == [False, False] and gc.isenabled()
    gc.disable()
    try:
        record(fn, x)
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_a_write_into_a_result_seen_through_an_earlier_view_is_refused():
    from quivers.capture import _make_functional, record

    def writes_under_a_view(x):
        y = x * 2
        v = y.view(3)  # made before the write, read after it
        y.add_(1)
        return (v * 1,)

    graph = record(writes_under_a_view, torch.ones(3))
    assert not _make_functional(graph)
    assert torch.equal(graph(torch.zeros(3))[0], torch.ones(3))
