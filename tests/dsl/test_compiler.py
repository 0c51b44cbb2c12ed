"""QVR compiles onto the combinators: same programs, same log densities."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from quivers.categories import FinSet
from quivers.distributions import Categorical, HalfNormal, Normal
from quivers.dsl import QVRModule, dumps, load, loads, parse
from quivers.dsl.compiler import compile_expr
from quivers.errors import InvalidValueError, QuiversError
from quivers.programs import (
    Effect,
    Program,
    call,
    factor,
    index_map,
    let,
    marginalize,
    observe,
    ret,
    sample,
    var,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SEEDS = [0, 1, 2]


def python_gmm() -> Program:
    Item, K = FinSet("Item", 500), FinSet("K", 2)
    mu_k, sd_k, z = var("mu_k"), var("sd_k"), var("z")
    return Program("gmm", Item, Item, [
        sample("probs", K, HalfNormal(1.0)),
        sample("mu_k", K, Normal(0.0, 5.0)),
        sample("sd_k", K, HalfNormal(1.0)),
        marginalize("z", K, Categorical(var("probs")), [
            observe("y", Item, Normal(mu_k[z], sd_k[z])),
        ]),
        ret("y"),
    ], effects=[Effect.Sample, Effect.Score, Effect.Marginal])


def python_grouped_mixture() -> Program:
    Item, G, K = FinSet("Item", 1000), FinSet("G", 20), FinSet("K", 3)
    mu_k, sd_k, z = var("mu_k"), var("sd_k"), var("z")
    return Program("grouped_mixture", Item, Item, [
        sample("group", Item, HalfNormal(1.0)),
        sample("probs", G, HalfNormal(1.0)),
        sample("mu_k", K, Normal(0.0, 5.0)),
        sample("sd_k", K, HalfNormal(1.0)),
        marginalize("z", K, Categorical(var("probs")), [
            observe("y", Item, Normal(mu_k[z], sd_k[z]), via="group"),
        ], over=G),
        ret("y"),
    ], effects=[Effect.Sample, Effect.Score, Effect.Marginal])


@pytest.mark.parametrize("seed", SEEDS)
def test_gmm_seed_has_the_log_joint_of_the_python_program(seed: int) -> None:
    qvr = load(EXAMPLES / "gmm.qvr").morphism
    py = python_gmm()
    g = torch.Generator().manual_seed(seed)
    observations = {"y": torch.randn(500, generator=g) * 3}
    latents = {
        "probs": torch.rand(2, generator=g) + 0.1,
        "mu_k": torch.randn(2, generator=g) * 2,
        "sd_k": torch.rand(2, generator=g) + 0.5,
    }
    got = qvr.log_joint(None, observations, latents)
    want = py.log_joint(None, observations, latents)
    assert torch.isfinite(want)
    assert torch.equal(got, want)
    assert qvr.effects == py.effects
    assert {n: (s.kind, s.dims, s.shape) for n, s in qvr.sites.items()} == {
        n: (s.kind, s.dims, s.shape) for n, s in py.sites.items()
    }


@pytest.mark.parametrize("seed", SEEDS)
def test_grouped_mixture_seed_has_the_log_joint_of_the_python_program(seed: int) -> None:
    qvr = load(EXAMPLES / "grouped_mixture.qvr").morphism
    py = python_grouped_mixture()
    g = torch.Generator().manual_seed(seed)
    observations = {
        "y": torch.randn(1000, generator=g) * 3,
        "group": torch.randint(0, 20, (1000,), generator=g),
    }
    latents = {
        "probs": torch.rand(20, 3, generator=g) + 0.1,  # the shape rule appends K to probs
        "mu_k": torch.randn(3, generator=g) * 2,
        "sd_k": torch.rand(3, generator=g) + 0.5,
    }
    got = qvr.log_joint(None, observations, latents)
    want = py.log_joint(None, observations, latents)
    assert torch.isfinite(want)
    assert torch.equal(got, want)
    assert qvr.sites["group"].kind == "index"


def test_log_joint_with_a_batch_of_latents_matches_too() -> None:
    qvr, py = load(EXAMPLES / "gmm.qvr").morphism, python_gmm()
    g = torch.Generator().manual_seed(3)
    observations = {"y": torch.randn(500, generator=g)}
    latents = {
        "probs": torch.rand(4, 2, generator=g) + 0.1,
        "mu_k": torch.randn(4, 2, generator=g),
        "sd_k": torch.rand(4, 2, generator=g) + 0.5,
    }
    got = qvr.log_joint(None, observations, latents)
    assert got.shape == (4,)
    assert torch.equal(got, py.log_joint(None, observations, latents))


EVERY_CONSTRUCT = """
object Item : FinSet 6
object G : FinSet 2
object K : FinSet 3
object GK : FinSet = G * K
program hier : Item -> Item [effects=[Sample, Score, Marginal]]
    index group : Item -> G
    sample w : GK <- HalfNormal(scale=1.0)
    sample mu_k : K <- Normal(loc=0.0, scale=5.0)
    sample sd_k : K <- HalfNormal(1.0)
    sample tau <- HalfNormal(2.0)
    let mu_sorted = sort(mu_k)
    factor -0.5 * sum((mu_k - mu_sorted) ^ 2) / tau
    marginalize z : K <- Categorical(w) [over=G]
        observe y : Item <- Normal(mu_sorted[z], sd_k[z] * 2 / 2) [via=group]
    return exp(y)
export hier
"""


def python_every_construct() -> Program:
    Item, G, K = FinSet("Item", 6), FinSet("G", 2), FinSet("K", 3)
    mu_k, mu_sorted, sd_k, z = var("mu_k"), var("mu_sorted"), var("sd_k"), var("z")
    return Program("hier", Item, Item, [
        index_map("group", Item, G),
        sample("w", G * K, HalfNormal(scale=1.0)),
        sample("mu_k", K, Normal(loc=0.0, scale=5.0)),
        sample("sd_k", K, HalfNormal(1.0)),
        sample("tau", None, HalfNormal(2.0)),
        let("mu_sorted", call("sort", mu_k)),
        factor(-0.5 * call("sum", (mu_k - mu_sorted) ** 2) / var("tau")),
        marginalize("z", K, Categorical(var("w")), [
            observe("y", Item, Normal(mu_sorted[z], sd_k[z]), via="group"),
        ], over=G),
        ret(call("exp", var("y"))),
    ], effects=["Sample", "Score", "Marginal"])


def test_every_construct_compiles_to_the_python_program() -> None:
    module = loads(EVERY_CONSTRUCT)
    qvr, py = module.morphism, python_every_construct()
    assert [type(s) for s in qvr.steps] == [type(s) for s in py.steps]
    assert qvr.steps == py.steps  # steps are frozen dataclasses: this compares every field
    g = torch.Generator().manual_seed(0)
    observations = {"y": torch.randn(6, generator=g), "group": torch.tensor([0, 1, 0, 1, 1, 0])}
    latents = {
        "w": torch.rand(2, 3, generator=g) + 0.1,
        "mu_k": torch.tensor([1.0, -1.0, 0.5]),
        "sd_k": torch.rand(3, generator=g) + 0.5,
        "tau": torch.tensor(1.5),
    }
    got = qvr.log_joint(None, observations, latents)
    assert torch.isfinite(got)
    assert torch.equal(got, py.log_joint(None, observations, latents))


def test_steps_carry_their_qvr_spans_and_programs_their_source() -> None:
    module = loads(EVERY_CONSTRUCT)
    program = module.morphism
    assert program.source == EVERY_CONSTRUCT
    assert program.span.line == 6
    marg = program.steps[7]
    assert (marg.span.line, marg.body[0].span.line) == (14, 15)


def test_the_module_object_exposes_everything_by_name() -> None:
    module = loads(EVERY_CONSTRUCT)
    assert isinstance(module, QVRModule)
    assert list(module.objects) == ["Item", "G", "K", "GK"]
    assert module.GK == FinSet("G", 2) * FinSet("K", 3)
    assert module["Item"].size == 6
    assert module.programs == {"hier": module.hier}
    assert module.morphism is module.hier
    assert isinstance(module.morphism, torch.nn.Module)
    assert module.ast == parse(EVERY_CONSTRUCT)
    assert module.source == EVERY_CONSTRUCT
    assert "hier" in module and "nope" not in module
    assert set(dir(module)) >= {"Item", "G", "K", "GK", "hier"}
    with pytest.raises(QuiversError, match="no object or program `hierr`; did you mean `hier`"):
        module["hierr"]


def test_without_an_export_the_only_program_is_the_morphism() -> None:
    module = loads("object K : FinSet 2\nprogram p : K -> K\n    sample x : K <- Normal(0.0, 1.0)\n")
    assert module.morphism is module.p
    two = loads(
        "object K : FinSet 2\nprogram p : K -> K\n    sample x : K <- Normal(0.0, 1.0)\n"
        "program q : K -> K\n    sample x : K <- Normal(0.0, 1.0)\n"
    )
    with pytest.raises(QuiversError, match="no `export`, so it has no morphism; programs: p, q"):
        two.morphism


def test_printed_source_compiles_to_the_same_program() -> None:
    module = loads(EVERY_CONSTRUCT)
    again = loads(dumps(module.ast))
    assert again.morphism.steps == module.morphism.steps


def test_arithmetic_is_folded_by_sympy() -> None:
    (_, p) = parse(
        "object K : FinSet 1\nprogram p : K -> K\n"
        "    let a = x - x + 2 * 3\n    let b = -(-y) ^ 2\n    let c = a[i, j] / 1\n"
    ).items
    a, b, c = (compile_expr(s.value) for s in p.body)
    assert a == 6 + 0 * var("x")
    assert b == -(var("y") ** 2)
    assert c == var("a")[var("i"), var("j")]


def test_family_arguments_that_fold_to_constants_are_checked_as_constants() -> None:
    text = "object K : FinSet 2\nprogram p : K -> K\n    sample s : K <- HalfNormal(1 - 2 * 1.5)\n"
    with pytest.raises(InvalidValueError) as info:
        loads(text)
    assert str(info.value) == (
        "line 3, column 21: `HalfNormal` parameter `scale` = -2.0 violates its constraint "
        "GreaterThan(lower_bound=0.0)\n"
        "        sample s : K <- HalfNormal(1 - 2 * 1.5)\n"
        "                        ^^^^^^^^^^^^^^^^^^^^^^^"
    )
