"""The peer's older declaration spellings read as their current forms, and
`qvr fmt` rewrites them into those forms."""

from __future__ import annotations

import pytest
import torch

from quivers.dsl import loads
from quivers.dsl.format import format_source
from quivers.dsl.parser import parse
from quivers.dsl.printer import dumps
from quivers.errors import QuiversError, QVRSyntaxError, UnsupportedError

OLD = """\
object Word : 5
type Vec = Euclidean 3
type State = Euclidean 4
embed lookup : Word -> Vec
continuous step : Vec * State -> State ~ Normal [scale=0.2]
kernel readout : State -> Vec ~ Normal
continuous probe[2] : State -> Vec ~ Normal
latent table : Word -> Word
let reader = lookup >> scan(step) >> readout
"""

NEW = """\
object Word : FinSet 5
object Vec : Real 3
object State : Real 4
morphism lookup : Word -> Vec [role=embed]
morphism step : Vec * State -> State [role=kernel] ~ Normal [scale=0.2]
morphism readout : State -> Vec [role=kernel] ~ Normal
morphism probe : State -> Vec [role=kernel, replicate=2] ~ Normal
morphism table : Word -> Word [role=latent]
let reader = lookup >> scan(step) >> readout
"""


def test_older_declarations_are_the_current_ones():
    assert parse(OLD) == parse(NEW)
    assert format_source(OLD) == dumps(parse(NEW))
    m = loads(OLD)
    assert [n for n in m.morphisms] == ["lookup", "step", "readout", "probe_0", "probe_1", "table", "reader"]
    assert m.step.fixed == {"scale": 0.2} and m.readout.learned == ("loc", "scale")
    assert m.reader.sample(torch.tensor([[0, 4, 2]])).shape == (1, 3)


CELL = """\
object Word : FinSet 4
object X, C, H : Real 2
object CH : Real 4
morphism embed_word : Word -> X [role=embed]
morphism gate : X * CH -> C ~ LogitNormal
morphism cand : X * CH -> H ~ Normal
program cell(x, s) : X * CH -> CH
    g <- gate(x, s)
    c <- cand(x, s)
    let h = g * c
    return (c, h)
define run = embed_word >> scan(cell)
"""


def test_a_bare_bind_is_a_sample_and_a_tuple_joins_the_parts_of_a_state():
    m = loads(CELL)
    assert dumps(parse(CELL)).count("sample ") == 2
    torch.manual_seed(0)
    # the cell's value is `c` next to `g * c`: draw the gate and candidate the same way by hand
    x, s = torch.randn(6, 2), torch.randn(6, 4)
    torch.manual_seed(1)
    out = m.cell.sample(torch.cat((x, s), -1))
    torch.manual_seed(1)
    g = m.gate.sample(torch.cat((x, s), -1))
    c = m.cand.sample(torch.cat((x, s), -1))
    torch.testing.assert_close(out, torch.cat((c, g * c), -1))
    assert m.run.sample(torch.tensor([[0, 1, 3]])).shape == (1, 4)


@pytest.mark.parametrize(
    "text, cls, message, line",
    [
        # a tuple is the state of a program over kernels, not a value of an ordinary program
        ("object K : FinSet 2\nprogram p : K -> K\n    sample a : K <- Normal(0.0, 1.0)\n    return (a, a)\n",
         UnsupportedError, r"tuple `\(a, a\)`", 4),
        ("type V = Euclidean 2.5\n", QVRSyntaxError, "whole number", 1),
        ("object A : FinSet 2\nembed e : A -> A\n", QuiversError, "`A` is not a Real object", 2),
        ("object A : FinSet 2\ntype V = Euclidean 2\ncontinuous f : A -> V ~ Normal [scale=0.1]\n"
         "morphism g : A -> V [role=kernel, scale=0.3] ~ Normal [scale=0.1]\n", QuiversError, "given twice", 4),
        ("object A : FinSet 2\nkernel f : A -> A ~ Categorical [scale=0.1]\n", QuiversError, "scale", 2),
    ],
)
def test_bad_older_spellings_are_located(text, cls, message, line):
    with pytest.raises(cls, match=message) as err:
        loads(text)
    assert err.value.span is not None and err.value.span.line == line
