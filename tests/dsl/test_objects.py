"""Objects: several names in one declaration, the `object R : N` shorthand,
the unit object `1`, and continuous objects `object X : Real n`."""

from __future__ import annotations

import pytest
import torch

from quivers.categories import FinSet
from quivers.dsl import dumps, loads
from quivers.dsl.parser import parse
from quivers.emit import to_stan
from quivers.errors import QuiversTypeError

SOURCE = """object A, B : FinSet 3
object R : 5
object Coef : Real 2

program p : A -> 1
    sample beta : Coef <- Normal(0.0, 1.0)
    sample u : 1 <- Normal(0.0, 1.0)
    sample w : B * 1 <- Normal(u, 1.0)
    return beta
"""


def test_declarations_and_their_meaning() -> None:
    m = loads(SOURCE)
    assert m.objects == {"A": FinSet("A", 3), "B": FinSet("B", 3), "R": FinSet("R", 5), "Coef": FinSet("Coef", 2)}
    p = m.p
    assert p.cod == FinSet.unit()
    assert (p.sites["beta"].dims, p.sites["u"].shape, p.sites["w"].dims) == (("Coef",), (), ("B",))
    lat = {"beta": torch.tensor([0.5, -1.0]), "u": torch.tensor(0.2), "w": torch.zeros(3)}
    want = torch.distributions.Normal(0.0, 1.0)
    expected = want.log_prob(lat["beta"]).sum() + want.log_prob(lat["u"]) + torch.distributions.Normal(0.2, 1.0).log_prob(lat["w"]).sum()
    torch.testing.assert_close(p.log_joint(None, {}, lat), expected)
    assert "vector[Coef] beta;" in to_stan(p) and "real u;" in to_stan(p)


def test_printer_writes_one_declaration_per_name_and_reads_back() -> None:
    text = dumps(parse(SOURCE))
    assert text.startswith(
        "object A : FinSet 3\nobject B : FinSet 3\nobject R : FinSet 5\nobject Coef : Real 2\n"
    )
    assert "program p : A -> 1\n" in text and "sample w : B * 1 <- Normal(u, 1.0)" in text
    assert parse(text) == parse(SOURCE) and dumps(parse(text)) == text


@pytest.mark.parametrize(
    "step, message",
    [
        ("    sample w : A <- HalfNormal(1.0)\n    marginalize z : Coef <- Categorical(w)\n        factor z\n",
         r"`Coef` is a continuous object \(Real 2\); the values of the marginalized `z` needs a finite set"),
        ("    index g : A -> Coef\n", r"`Coef` is a continuous object \(Real 2\); the codomain of index map `g`"),
    ],
    ids=["support", "index-cod"],
)
def test_a_continuous_object_is_no_finite_set(step: str, message: str) -> None:
    with pytest.raises(QuiversTypeError, match=message) as info:
        loads("object A : FinSet 3\nobject Coef : Real 2\nprogram p : A -> A\n" + step)
    assert info.value.span is not None
    with pytest.raises(QuiversTypeError, match="the input `a` of program `q` needs a finite set"):
        loads("object Coef : Real 2\nprogram q(a) : Coef -> Coef\n    return a\n")
