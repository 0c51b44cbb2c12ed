"""Copies of programs: ``copy.deepcopy`` and ``pickle`` give programs that
score as the original does.

A program compiles its steps into closures and tables keyed by the steps'
identities; a copy has steps of its own, so it must derive them afresh
(it used to fail with a KeyError on its first call, and pickle could not
write the closures of a family at all).
"""

from __future__ import annotations

import copy
import pickle

import pytest
import torch

from quivers.categories import FinSet
from quivers.distributions import Normal
from quivers.distributions.families import FAMILIES, FamilySpec, ParamSpec
from quivers.dsl import loads
from quivers.programs import Program, observe, sample
from quivers.programs.expr import var

SOURCE = """
object Item : FinSet 6
object K : FinSet 2

program p : Item -> Item
    sample w : K <- HalfNormal(1.0)
    sample mu : K <- Normal(0.0, 3.0)
    sample s <- Truncated(Normal(1.0, 1.0), 0.0, 4.0)
    sample t <- Mixture(vector(K, 0.3, 0.7), [Normal(-1.0, 1.0), Normal(2.0, 0.5)])
    marginalize z : K <- Categorical(w)
        observe y : Item <- Normal(mu[z] + t, s)
    return y

export p
"""

AUTO = """
object Item : FinSet 5
object K : FinSet 2

program q : Item -> Item [marginalize=auto]
    sample mu : K <- Normal(0.0, 3.0)
    sample z <- Categorical(vector(K, 0.4, 0.6))
    observe y : Item <- Normal(mu[z], 1.0)
    return y

export q
"""

COPIES = {
    "deepcopy": copy.deepcopy,
    "pickle": lambda p: pickle.loads(pickle.dumps(p)),
}


def _point(program: Program, seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return {k: v for k, v in program.sample().items() if k in {s.name for s in program.latent_sites(["y"])}}


@pytest.mark.parametrize("how", sorted(COPIES))
@pytest.mark.parametrize(("source", "n"), [(SOURCE, 6), (AUTO, 5)], ids=["block", "planned"])
def test_a_copy_scores_as_the_original(how: str, source: str, n: int) -> None:
    program = loads(source).morphism.to(torch.float64)
    y = {"y": torch.linspace(-2.0, 3.0, n, dtype=torch.float64)}
    copied = COPIES[how](program)
    assert type(copied) is type(program) and copied is not program
    for seed in range(3):
        latents = _point(program, seed)
        torch.testing.assert_close(copied.log_joint(None, y, latents), program.log_joint(None, y, latents), rtol=0, atol=0)


def test_a_copy_keeps_its_moved_constants_and_plans_on_its_own() -> None:
    item = FinSet("Item", 3)
    shift = torch.tensor([0.0, 1.0, 2.0])
    program = Program("p", item, item, [sample("mu", None, Normal(0.0, 1.0)), observe("y", item, Normal(var("mu") + shift, 1.0))])
    program.double()
    copied = copy.deepcopy(program)
    assert [b.dtype for b in copied.buffers()] == [torch.float64]
    copied.float()  # moving the copy leaves the original as it was
    assert [b.dtype for b in program.buffers()] == [torch.float64]
    y, mu = {"y": torch.tensor([0.5, 1.0, 2.5])}, {"mu": torch.tensor(0.25)}
    assert torch.equal(copied.log_joint(None, y, mu), program.float().log_joint(None, y, mu))

    planned = loads(AUTO).morphism
    copied = copy.deepcopy(planned)
    assert copied.summed == planned.summed == {"z"}
    assert str(copied.plan()) == str(planned.plan())


def test_a_family_made_by_hand_says_why_it_cannot_be_pickled(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = FamilySpec("HandMade", (ParamSpec("loc"),), lambda p: torch.distributions.Normal(p["loc"], 1.0), lambda p: None)
    assert copy.deepcopy(spec) is spec  # immutable: a copy shares it
    with pytest.raises(pickle.PicklingError, match="`HandMade` is neither registered"):
        pickle.dumps(spec)
    registered = FamilySpec("HandMadeRegistered", spec.params, spec.make, spec.support)
    monkeypatch.setitem(FAMILIES, registered.name, registered)
    assert pickle.loads(pickle.dumps(registered)) is registered


def test_observe_steps_pickle_with_their_family() -> None:
    step = observe("y", FinSet("I", 2), Normal(0.0, 1.0))
    assert pickle.loads(pickle.dumps(step)).family.spec is step.family.spec
