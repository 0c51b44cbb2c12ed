"""A log joint planned once (quivers.programs.plan) is the unplanned log
joint, bit for bit with its gradient, on every example program, and never
answers for data, a program or latents it was not made for."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from quivers.dsl import load, loads
from quivers.errors import DataError, ShapeError
from quivers.inference.program_adaptor import ProgramAdaptor
from quivers.planning import PlannedProgram
from quivers.programs.fused import use_fused
from quivers.programs import Program

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _programs() -> list[str]:
    """The example files whose export is a program (the others export
    morphisms, which have no latents to plan over)."""
    return sorted(f.name for f in EXAMPLES.glob("*.qvr") if isinstance(load(f).morphism, Program))


PROGRAMS = _programs()


def test_the_examples_cover_every_kind_of_program():
    # mixtures, a grouped and a planned (marginalize=auto) mixture, LDA,
    # regressions, zero inflation, capture-recapture, occupancy
    assert len(PROGRAMS) >= 14, PROGRAMS
    assert {"grouped_auto.qvr", "lda.qvr", "capture_recapture.qvr", "occupancy.qvr"} <= set(PROGRAMS)


def _problem(name: str, chains: int = 3):
    """The example in float64, its data (random index maps and data, the
    observations drawn from the program at the first chain's latents),
    and unconstrained points of ``chains`` chains."""
    p = load(EXAMPLES / name).morphism.double()
    g = torch.Generator().manual_seed(0)
    data = {}
    for n, s in p.sites.items():
        if s.kind == "index":
            data[n] = torch.randint(p.index_maps[n][1].size, tuple(s.shape), generator=g)
        elif s.kind == "data":
            data[n] = torch.rand(tuple(s.shape), generator=g, dtype=torch.float64) + 0.5
    adaptor = ProgramAdaptor(p, dtype=torch.float64)
    z = adaptor.init_unconstrained(chains, g)
    if p.summed:  # a planned program's summed sites are not drawn by `sample`: real-valued data instead
        drawn = {n: torch.randn(tuple(s.shape), generator=g, dtype=torch.float64)
                 for n, s in p.sites.items() if s.kind == "observed"}
    else:
        drawn = p.sample(None, latents={k: v[0] for k, v in adaptor.constrain(z).items()}, observations=data)
    obs = dict(data) | {n: drawn[n] for n, s in p.sites.items() if s.kind == "observed"}
    return p, adaptor, obs, z


def _value_and_grad(f, adaptor, z):
    z = z.clone().requires_grad_()
    values, _ = adaptor.layout.unpack(z)
    out = f(values)
    if not out.requires_grad:  # a program with no latent (examples/grid_posterior.qvr): its value alone
        return out.detach(), torch.zeros_like(z)
    (g,) = torch.autograd.grad(out.sum(), z)
    return out.detach(), g


@pytest.mark.parametrize("name", PROGRAMS)
def test_a_planned_log_joint_is_the_log_joint_bit_for_bit(name):
    p, adaptor, obs, z = _problem(name)
    plan = p.compile_log_joint(obs)
    want, want_grad = _value_and_grad(lambda v: p.log_joint(None, obs, v, check_latents=False), adaptor, z)
    for call in range(3):  # the first call binds; the others take the planned path
        got, grad = _value_and_grad(plan, adaptor, z + call)
        if call == 0:
            assert torch.equal(got, want) and torch.equal(grad, want_grad)
        else:
            ref, ref_grad = _value_and_grad(lambda v: p.log_joint(None, obs, v, check_latents=False), adaptor, z + call)
            assert torch.equal(got, ref) and torch.equal(grad, ref_grad)
        assert plan._bound is not None  # planned, not the unplanned fallback
    # replayed straight through after the first call, but for a planned
    # program's contraction (quivers.planning), which the interpreter runs
    assert (plan._bound[-1] is not None) != isinstance(p, PlannedProgram)


SOURCE = """
object I : FinSet 4
object K : FinSet 2
program p : I -> I [effects=[Sample, Score, Marginal]]
    sample probs : K <- HalfNormal(1.0)
    sample mu_k : K <- Normal(0.0, 5.0)
    marginalize z : K <- Categorical(probs)
        observe y : I <- Normal(mu_k[z], 1.0)
    return y
export p
"""


def _mixture():
    p = loads(SOURCE).morphism
    latents = {"probs": torch.tensor([[0.3, 0.7]]), "mu_k": torch.tensor([[-1.0, 1.0]])}
    return p, {"y": torch.tensor([-1.0, 0.5, 1.0, 2.0])}, latents


def test_data_written_in_place_is_planned_again():
    p, obs, latents = _mixture()
    plan = p.compile_log_joint(obs)
    plan(latents)
    obs["y"][0] = 3.0
    assert torch.equal(plan(latents), p.log_joint(None, obs, latents))
    obs["y"][1] = float("nan")  # validated again: bad data still raises
    with pytest.raises(DataError):
        plan(latents)


def test_a_program_moved_or_cast_after_planning_is_planned_again():
    p, obs, latents = _mixture()
    plan = p.compile_log_joint(obs)
    plan(latents)
    before = plan._bound
    p.double()
    lat64 = {k: v.double() for k, v in latents.items()}
    obs64 = {"y": obs["y"].double()}
    plan64 = p.compile_log_joint(obs64)
    assert plan64(lat64).dtype == torch.float64
    assert torch.equal(plan64(lat64), p.log_joint(None, obs64, lat64))
    plan(latents)
    assert plan._bound is not before  # the cast made new constants: bound afresh


def test_latents_of_another_batch_shape_or_dtype_are_bound_afresh():
    p, obs, latents = _mixture()
    plan = p.compile_log_joint(obs)
    plan(latents)
    four = {k: v.expand(4, 2).contiguous() for k, v in latents.items()}
    assert plan(four).shape == (4,)
    assert torch.equal(plan(four), p.log_joint(None, obs, four))
    doubled = {k: v.double() for k, v in latents.items()}
    assert torch.equal(plan(doubled), p.log_joint(None, obs, doubled, check_latents=False))


def test_latents_that_do_not_fit_get_the_errors_of_the_unplanned_path():
    p, obs, latents = _mixture()
    plan = p.compile_log_joint(obs)
    plan(latents)
    with pytest.raises(ShapeError, match="mu_k"):
        plan({"probs": latents["probs"], "mu_k": torch.zeros(1, 3)})
    with pytest.raises(DataError, match="latent `mu_k` has no value"):
        plan({"probs": latents["probs"]})
    assert torch.equal(plan(latents), p.log_joint(None, obs, latents))  # and the plan still works


def test_the_kept_plan_follows_the_data():
    p, obs, latents = _mixture()
    first = p.planned_log_joint(None, obs)
    assert p.planned_log_joint(None, dict(obs)) is first  # the same tensors: the same plan
    other = {"y": obs["y"] + 1.0}
    assert p.planned_log_joint(None, other) is not first
    assert torch.equal(p.planned_log_joint(None, other)(latents), p.log_joint(None, other, latents))


def test_the_replay_records_the_priors_and_the_fused_block():
    p, adaptor, obs, z = _problem("gmm.qvr")
    plan = p.compile_log_joint(obs)
    plan(adaptor.layout.unpack(z)[0])
    assert plan._bound[-1].recorded == ("probs", "mu_k", "sd_k", "z")  # each by its torch call
    p, obs, latents = _mixture()  # a fixed scale, the data laid out anew each call: views of the same memory
    plan = p.compile_log_joint(obs)
    plan(latents)
    assert plan._bound[-1].recorded == ("probs", "mu_k", "z")


def _same(plan, p, obs, latents):
    want = p.log_joint(None, obs, latents, check_latents=False)
    for _ in range(2):  # binding, then replaying
        assert torch.equal(plan(latents), want)


def test_the_replay_follows_writes_moves_batches_and_the_switch():
    p, obs, latents = _mixture()
    plan = p.compile_log_joint(obs)
    _same(plan, p, obs, latents)
    obs["y"][0] = 3.0  # written in place after replaying: bound afresh
    _same(plan, p, obs, latents)
    _same(plan, p, obs, {k: v.expand(4, 2).contiguous() for k, v in latents.items()})
    _same(plan, p, obs, {k: v.double() for k, v in latents.items()})
    _same(plan, p, obs, latents)
    with use_fused(False):  # switched off after recording: the general path, as unplanned
        _same(plan, p, obs, latents)
    p.double()
    obs64 = {"y": obs["y"].double()}
    _same(p.compile_log_joint(obs64), p, obs64, {k: v.double() for k, v in latents.items()})


HALF = """
object I : FinSet 4
program q : I -> I [effects=[Sample, Score]]
    sample s : I <- HalfNormal(1.0)
    observe y : I <- Normal(0.0, 2.0)
    return y
export q
"""


def test_the_replay_keeps_the_checks_that_read_values():
    p = loads(HALF).morphism
    obs = {"y": torch.tensor([-1.0, 0.5, 1.0, 2.0])}
    plan = p.compile_log_joint(obs)
    _same(plan, p, obs, {"s": torch.tensor([0.5, 1.0, 2.0, 3.0])})
    assert plan._bound[-1].recorded == ("s", "y")
    off = {"s": torch.tensor([0.5, -1.0, 2.0, 3.0])}  # off HalfNormal's support: -inf, as unplanned
    _same(plan, p, obs, off)
    assert plan(off).item() == float("-inf")


def test_parameters_computed_by_a_host_function_are_computed_on_every_call():
    # a function of the data with state of its own (a network's weights) is
    # not kept from the binding run, although it reads only data
    from quivers.categories import FinSet
    from quivers.distributions import Normal
    from quivers.programs import data, observe, sample, var
    from quivers.programs.expr import HostFunction, host_call

    weight = torch.tensor(1.0)
    net = HostFunction("net", lambda c: c.sum() * weight, (1,), ())
    I = FinSet("I", 2)
    p = Program("p", I, I, [data("c", I), sample("mu", I, Normal(host_call(net, var("c")), 1.0)),
                            observe("y", I, Normal(var("mu"), 1.0))])
    obs = {"y": torch.zeros(2), "c": torch.tensor([0.5, 1.0])}
    latents = {"mu": torch.tensor([0.3, 0.1])}
    plan = p.compile_log_joint(obs)
    _same(plan, p, obs, latents)
    assert plan._bound[-1].recorded == ()  # mu by its rule, its parameter computed again
    weight.fill_(3.0)
    _same(plan, p, obs, latents)
