"""What the checker accepts, and what it learns about a module."""

from __future__ import annotations

from pathlib import Path

import pytest

from quivers.dsl import ast, check, loads, parse
from quivers.errors import EffectError, QuiversError
from quivers.programs import Effect

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _check(text: str):
    return check(parse(text), text)


@pytest.mark.parametrize("name", ["gmm", "grouped_mixture"])
def test_seed_programs_check(name: str) -> None:
    text = (EXAMPLES / f"{name}.qvr").read_text()
    info = check(parse(text), text)
    assert info.export == name
    assert list(info.programs) == [name]
    assert info.effects[name] == frozenset({Effect.Sample, Effect.Score, Effect.Marginal})


def test_objects_and_programs_are_collected_in_order() -> None:
    info = _check(
        "object A : FinSet 2\nobject B : FinSet 3\nobject P : FinSet = A * B + A\n"
        "program p : P -> A\n    sample x : P <- Normal(0.0, 1.0)\n"
        "program q : A -> A [effects=[]]\n    let c = 1\n"
    )
    assert list(info.objects) == ["A", "B", "P"]
    assert isinstance(info.objects["P"], ast.ObjectDef)
    assert list(info.programs) == ["p", "q"]
    assert info.effects == {"p": None, "q": frozenset()}
    assert info.export is None


def test_names_defined_in_a_block_stay_in_scope_after_it() -> None:
    _check(
        "object Item : FinSet 3\nobject K : FinSet 2\nprogram p : Item -> Item\n"
        "    sample w : K <- HalfNormal(1.0)\n"
        "    marginalize z : K <- Categorical(w)\n"
        "        let m = w[z] * 2\n"
        "        observe y : Item <- Normal(m, 1.0)\n"
        "    factor sum(y)\n"
        "    return y\n"
    )


def test_the_marginalized_latent_is_in_scope_in_nested_blocks() -> None:
    _check(
        "object Item : FinSet 3\nobject K : FinSet 2\nprogram p : Item -> Item\n"
        "    sample w : K <- HalfNormal(1.0)\n"
        "    marginalize z : K <- Categorical(w)\n"
        "        marginalize u : K <- Categorical(w)\n"
        "            observe y : Item <- Normal(z + u, 1.0)\n"
    )


def test_each_program_has_its_own_names() -> None:
    text = (
        "object K : FinSet 2\nprogram p : K -> K\n    sample x : K <- Normal(0.0, 1.0)\n"
        "program q : K -> K\n    return x\n"
    )
    # `x` of p is not in scope in q: there it is data q reads (one number)
    assert _check(text).data["q"]["x"].describe() == "data x (one real number; inferred from its use on line 5)"


def test_every_effect_of_a_step_must_be_declared_but_extra_ones_are_allowed() -> None:
    # the rule is the IR's (Program checks it once), so the module is built, not only checked
    base = "object K : FinSet 2\nprogram p : K -> K [effects=[{}]]\n    factor 1.0\n"
    loads(base.format("Score"))
    loads(base.format("Sample, Score, Marginal"))
    with pytest.raises(EffectError, match=r"line 3, column 5: program `p` declares effects \[Sample\] but has Score: `factor` \(Score\)"):
        loads(base.format("Sample"))


def test_keyword_arguments_are_checked_against_the_family_registry() -> None:
    _check("object K : FinSet 2\nprogram p : K -> K\n    sample s : K <- StudentT(3.0, scale=2.0)\n")
    with pytest.raises(QuiversError, match="got two values for parameter `loc`"):
        _check("object K : FinSet 2\nprogram p : K -> K\n    sample s : K <- Normal(0.0, loc=1.0)\n")


def test_checking_without_source_still_names_the_line() -> None:
    tree = parse("object K : FinSet 2\nprogram p : K -> K\n    sample sigma : K <- Normal(0.0, 1.0)\n    let a = sigmaa\n")
    with pytest.raises(QuiversError) as info:
        check(tree)
    assert str(info.value).startswith("line 4, column 13: unknown name `sigmaa` in program `p`; names in scope: sigma;")
