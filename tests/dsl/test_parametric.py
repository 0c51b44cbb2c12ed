"""Parametric programs: typed parameters, use as a family (inlined with
renamed sites), programs with only number parameters on their own, and
several exports."""

from __future__ import annotations

import pytest
import torch

from quivers.dsl import dumps, loads
from quivers.dsl.parser import parse
from quivers.errors import DataError, QuiversError, QuiversTypeError, QVRSyntaxError, UnknownNameError

SOURCE = """object Subject : FinSet 3
object Doc : FinSet 2
object Item : FinSet 4

program random_intercepts(G : FinSet, scale : Real) : G -> 1
    sample z : G <- Normal(0.0, 1.0)
    return scale * z

program m : Item -> Item
    sample by_subject <- random_intercepts(Subject, 1.0)
    sample by_doc <- random_intercepts(Doc, scale=2.0)
    observe y : Item <- Normal(by_subject[subj] + by_doc[doc], 1.0)

program hyper(alpha : Real, beta : Real) : Item -> Item
    sample mu <- Normal(0.0, alpha)
    observe y : Item <- Normal(mu, beta)

export m
export hyper
"""

WRITTEN_OUT = """object Subject : FinSet 3
object Doc : FinSet 2
object Item : FinSet 4
program m : Item -> Item
    sample by_subject_z : Subject <- Normal(0.0, 1.0)
    let by_subject = 1.0 * by_subject_z
    sample by_doc_z : Doc <- Normal(0.0, 1.0)
    let by_doc = 2.0 * by_doc_z
    observe y : Item <- Normal(by_subject[subj] + by_doc[doc], 1.0)
"""


def test_a_family_use_is_its_body_with_renamed_sites() -> None:
    mod = loads(SOURCE)
    p, q = mod.m, loads(WRITTEN_OUT).m
    assert list(p.sites) == list(q.sites) == ["subj", "doc", "by_subject_z", "by_subject", "by_doc_z", "by_doc", "y"]
    obs = {"y": torch.tensor([0.5, -1.0, 0.0, 2.0]), "subj": torch.tensor([0, 1, 2, 0]), "doc": torch.tensor([0, 1, 1, 0])}
    lat = {"by_subject_z": torch.tensor([0.1, -0.2, 0.3]), "by_doc_z": torch.tensor([0.4, -0.5])}
    torch.testing.assert_close(p.log_joint(None, obs, lat), q.log_joint(None, obs, lat))
    assert p.sites["subj"].values_in == "Subject" and p.sites["doc"].values_in == "Doc"
    from quivers.emit import to_stan

    assert to_stan(p) == to_stan(q)  # Stan sees the inlined program


def test_program_with_number_parameters_runs_on_its_own_with_them_as_data() -> None:
    mod = loads(SOURCE)
    h = mod.hyper
    assert h.sites["alpha"].kind == "data" and h.sites["alpha"].shape == ()
    y = torch.tensor([0.5, -1.0, 0.0, 2.0])
    got = h.log_joint(None, {"y": y, "alpha": 2.0, "beta": 0.5}, {"mu": torch.tensor(0.3)})
    want = torch.distributions.Normal(0.0, 2.0).log_prob(torch.tensor(0.3)) + torch.distributions.Normal(0.3, 0.5).log_prob(y).sum()
    torch.testing.assert_close(got, want)
    with pytest.raises(DataError, match=r"data `alpha` \(a number\) is missing from the observations"):
        h.log_joint(None, {"y": y, "beta": 0.5}, {"mu": torch.tensor(0.3)})


def test_several_exports() -> None:
    mod = loads(SOURCE)
    assert mod.exports == ("m", "hyper") and mod.export == "m" and mod.morphism is mod.m
    assert mod["hyper"] is mod.hyper is mod.programs["hyper"]
    with pytest.raises(QuiversError, match="`random_intercepts` has set parameters"):
        mod["random_intercepts"]
    with pytest.raises(QuiversTypeError, match="`m` is already exported on line 18"):
        loads(SOURCE + "export m\n")
    with pytest.raises(QuiversTypeError, match="cannot export `random_intercepts`: it has set parameters"):
        loads(SOURCE + "export random_intercepts\n")


def test_round_trip_of_parameters() -> None:
    text = dumps(parse(SOURCE))
    assert "program random_intercepts(G : FinSet, scale : Real) : G -> 1\n" in text
    assert "program hyper(alpha : Real, beta : Real) : Item -> Item\n" in text
    assert parse(text) == parse(SOURCE) and dumps(parse(text)) == text


@pytest.mark.parametrize(
    "use, error, message",
    [
        ("random_intercepts(Subject)", QuiversTypeError, r"`random_intercepts` needs its parameter\(s\) `scale`"),
        ("random_intercepts(Subject, 1.0, 2.0)", QuiversTypeError, r"takes 2 arguments \(G, scale\), got 3"),
        ("random_intercepts(Subject, scal=1.0)", UnknownNameError, "has no parameter `scal`"),
        ("random_intercepts(2.0, 1.0)", QuiversTypeError, "parameter `G` of `random_intercepts` is a FinSet"),
    ],
    ids=["missing", "extra", "unknown-keyword", "set-as-number"],
)
def test_bad_uses_are_located_errors(use: str, error: type, message: str) -> None:
    text = SOURCE.replace("random_intercepts(Subject, 1.0)", use)
    with pytest.raises(error, match=message) as info:
        loads(text)
    assert info.value.span is not None and info.value.span.line == 10


def test_untyped_parameters_and_self_use_are_refused() -> None:
    with pytest.raises(QVRSyntaxError, match="parameter `b` of program `f` needs a type"):
        parse("object K : FinSet 2\nprogram f(a : Real, b) : K -> K\n    return a\n")
    with pytest.raises(QuiversTypeError, match="program `f` uses itself as a family"):
        loads("object K : FinSet 2\nprogram f(s : Real) : K -> K\n    sample v <- f(1.0)\n    return v\n")


def test_a_parameter_declared_twice_is_a_located_error() -> None:
    with pytest.raises(QuiversTypeError, match="parameter `A` of program `B` is declared twice") as info:
        loads("object K : FinSet 2\nprogram B(A : FinSet, A : FinSet) : A -> A\n"
              "    sample x : A <- Normal(0.0, 1.0)\n    return x\n")
    assert (info.value.span.line, info.value.span.column) == (2, 23)
