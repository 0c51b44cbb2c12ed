"""Opting in and out: ``[marginalize=auto]``, ``budget`` and
``[enumerate=false]`` in QVR, ``auto(..., exclude=, budget=)`` in Python,
``qvr graph --plan``; explicit ``marginalize`` blocks mixed with planned
sites; bad options are errors that name the option and show the line."""

from __future__ import annotations

import io
import warnings

import pytest
import torch

from quivers.categories import FinSet
from quivers.cli import main
from quivers.distributions import Bernoulli, Categorical, HalfNormal, Normal, Poisson
from quivers.dsl import dumps, loads, parse
from quivers.errors import QuiversError, QuiversTypeError, QuiversWarning, UnknownNameError
from quivers.inference import fit
from quivers.planning import PlanError, PlannedProgram, auto
from quivers.programs import Program, const, marginalize, observe, sample, var
from tests.planning.models import F64, brute_force
from tests.planning.test_exact import GROUPED, MIXTURE, MIXTURE_BY_HAND

AUTO = MIXTURE.replace("[effects=[Sample, Score]]", "[effects=[Sample, Score], marginalize=auto]")


def test_marginalize_auto_builds_a_planned_program_and_prints_back():
    planned = loads(AUTO).morphism
    assert isinstance(planned, PlannedProgram) and planned.summed == {"z"}
    # a latent per row read only by its row's observations becomes the block a user would write
    assert planned.plan().lowered == {"z": "a marginalize block, one per element of Item"}
    assert planned.steps[3] == loads(MIXTURE_BY_HAND).morphism.steps[3]
    assert not isinstance(loads(MIXTURE).morphism, PlannedProgram)
    assert not isinstance(loads(MIXTURE.replace("[effects=[Sample, Score]]", "[marginalize=explicit]")).morphism,
                          PlannedProgram)
    assert parse(dumps(parse(AUTO))) == parse(AUTO)


def test_svi_on_the_planned_mixture_fits_what_the_marginalize_version_fits():
    y = torch.tensor([-2.1, -1.8, 1.9, 2.2, -1.7])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        planned = fit(loads(AUTO).morphism, {"y": y}, steps=150, progress_bar=False, seed=0)
        hand = fit(loads(MIXTURE_BY_HAND).morphism, {"y": y}, steps=150, progress_bar=False, seed=0)
    for name in ("probs", "mu_k", "sd_k"):
        torch.testing.assert_close(planned.samples[name].mean((0, 1)), hand.samples[name].mean((0, 1)),
                                   rtol=1e-3, atol=1e-3)
    draws = planned.latent_draws()["z"]
    assert draws.shape == hand.latent_draws()["z"].shape
    # each row's draws follow its posterior, averaged over the fit's draws
    torch.testing.assert_close((draws == 0).double().mean((0, 1)), (hand.latent_draws()["z"] == 0).double().mean((0, 1)),
                               atol=0.05, rtol=0)


def test_enumerate_false_leaves_a_site_to_sampling():
    src = AUTO.replace("sample z : Item <- Categorical(probs)", "sample z : Item <- Categorical(probs) [enumerate=false]")
    planned = loads(src).morphism
    assert planned.summed == frozenset() and "z" in [s.name for s in planned.latent_sites()]
    assert planned.plan().sampled == {"z": "marked enumerate=False"}


def test_explicit_blocks_mix_with_planned_sites():
    Item, K, B = FinSet("Item", 3), FinSet("K", 2), FinSet("B", 2)
    mu, z, b = var("mu"), var("z"), var("b")
    p = Program("mixed", Item, Item, [
        sample("mu", K, Normal(0.0, 2.0)), sample("w", K, HalfNormal(1.0)),
        sample("b", None, Bernoulli(0.4)),
        marginalize("z", K, Categorical(var("w")), [observe("y", Item, Normal(mu[z] + 1.5 * b, 1.0))]),
    ])
    planned = auto(p)
    obs = {"y": torch.tensor([0.3, -1.2, 2.0], dtype=F64)}
    lat = {"mu": torch.tensor([-1.0, 1.0], dtype=F64), "w": torch.tensor([0.5, 1.5], dtype=F64)}
    torch.testing.assert_close(planned.log_joint(None, obs, lat), brute_force(p, ["b"], obs, lat))
    post = planned.posterior_latents(None, obs, lat)
    assert post["b"].shape == (2,) and post["z"].shape == (3, 2, 2)  # per row, given each value of b


def test_a_budget_too_small_samples_the_largest_site_and_says_so():
    Item, K = FinSet("Item", 4), FinSet("K", 3)
    p = Program("p", Item, Item, [
        sample("w", K, HalfNormal(1.0)), sample("mu", K, Normal(0.0, 1.0)),
        sample("a", None, Categorical(var("w"))), sample("b", None, Bernoulli(0.5)),
        observe("y", Item, Normal(var("mu")[var("a")] + var("b"), 1.0)),
    ])
    with pytest.warns(QuiversWarning, match=r"`a` is sampled, not summed: the plan's largest intermediate Item \* a \* b takes 96 bytes"):
        planned = auto(p, budget=64)
    assert planned.summed == {"b"} and "a" in planned.plan().sampled
    # the rest is still summed exactly, with the sampled site given
    obs = {"y": torch.tensor([0.1, 0.5, -0.3, 1.1], dtype=F64)}
    lat = {"w": torch.ones(3, dtype=F64), "mu": torch.tensor([-1.0, 0.0, 1.0], dtype=F64), "a": torch.tensor(2)}
    torch.testing.assert_close(planned.log_joint(None, obs, lat), brute_force(p, ["b"], obs, lat))


def test_an_unbounded_site_is_left_to_sampling_with_the_reason():
    I = FinSet("I", 4)
    p = Program("p", I, I, [sample("n", None, Poisson(1.5)), observe("y", I, Normal(var("n") * 1.0, 0.5))])
    planned = auto(p)
    assert planned.summed == frozenset() and planned.plan().sampled == {"n": "Poisson has infinite support"}


def test_svi_samples_a_site_left_out_of_the_plan_and_recovers_its_exact_posterior():
    I, K = FinSet("I", 4), FinSet("K", 3)
    p = Program("p", I, I, [
        sample("a", None, Categorical(const(torch.tensor([0.2, 0.3, 0.5]), K))),
        observe("y", I, Normal(const(torch.tensor([-1.0, 0.0, 1.0]), K)[var("a")], 1.0)),
    ])
    planned = auto(p, exclude=["a"])
    y = torch.tensor([0.4, -0.2, 0.1, 0.3])
    exact = torch.softmax(p.log_joint(None, {"y": y}, {"a": torch.arange(3)}), 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = fit(planned, {"y": y}, steps=400, lr=0.05, num_particles=16, progress_bar=False, seed=0)
    draws = result.samples["a"].reshape(-1)
    freq = torch.stack([(draws == k).double().mean() for k in range(3)])
    torch.testing.assert_close(freq, exact.double(), atol=0.06, rtol=0)


def test_qvr_graph_plan_prints_the_plan_and_its_factor_graph(tmp_path):
    path = tmp_path / "m.qvr"
    path.write_text(GROUPED.replace("[effects=[Sample, Score]]", "[effects=[Sample, Score], marginalize=auto]"))
    out, err = io.StringIO(), io.StringIO()
    assert main(["graph", str(path), "--plan"], out=out, err=err) == 0
    assert out.getvalue().startswith("// plan: block z\n//   z : summed by a marginalize block over G")
    path.write_text(GROUPED.replace("[effects=[Sample, Score]]", "[effects=[Sample, Score], marginalize=auto]")
                    .replace("    observe y : Item <- Normal(mu_k[z[group]], sd_k[z[group]])",
                             "    sample b <- Bernoulli(0.2)\n    observe y : Item <- Normal(mu_k[z[group]] + b, sd_k[z[group]])"))
    out = io.StringIO()
    assert main(["graph", str(path), "--plan"], out=out, err=err) == 0
    text = out.getvalue()
    assert text.startswith("// plan: sum z -> sum b\n") and '"z" [label="1. sum z (2 values)", shape=ellipse];' in text
    path.write_text(MIXTURE)
    assert main(["graph", str(path), "--plan"], out=io.StringIO(), err=err) != 0
    assert "has no plan" in err.getvalue()


@pytest.mark.parametrize("bad, message", [
    ("marginalize=atuo", "option `marginalize` takes `auto` or `explicit`, not `atuo`; did you mean `auto`?"),
    ("marginalize=auto, budget=0", "option `budget` takes a positive whole number of bytes"),
    ("budget=1000", "option `budget` of program `gmm` bounds a plan, which it has only with `marginalize=auto`"),
])
def test_bad_program_options_are_errors_at_their_line(bad, message):
    with pytest.raises(QuiversError, match=message.replace("(", r"\(").replace("?", r"\?")) as info:
        loads(MIXTURE.replace("[effects=[Sample, Score]]", f"[effects=[Sample, Score], {bad}]"))
    assert "line 4" in str(info.value)


def test_bad_enumerate_flag_and_unknown_excluded_site_are_named():
    with pytest.raises(UnknownNameError, match="option `enumerate` takes `true` or `false`, not `no`"):
        loads(AUTO.replace("Categorical(probs)", "Categorical(probs) [enumerate=no]"))
    with pytest.raises(UnknownNameError, match="`zz` is marked enumerate=False but is no site of `gmm`"):
        auto(loads(MIXTURE).morphism, exclude=["zz"])
    with pytest.raises(QuiversTypeError, match="auto takes a Program"):
        auto("gmm")


def test_a_latent_the_plan_cannot_reach_is_a_plan_error_naming_it():
    Item, G, K = FinSet("Item", 3), FinSet("G", 2), FinSet("K", 2)
    p = Program("p", Item, Item, [
        sample("w", K, HalfNormal(1.0)), sample("mu", K, Normal(0.0, 1.0)),
        sample("c", G, Categorical(var("w"))),
        observe("y", Item, Normal(var("mu")[var("c")[0]], 1.0)),
    ])
    with pytest.raises(PlanError, match=r"cannot sum out `c` \(on \['G'\]\) exactly: no index map carries rows on \['Item'\] to `G`"):
        auto(p)
    assert auto(p, exclude=["c"]).summed == frozenset()


def test_nuts_names_the_sites_the_plan_did_not_sum_and_why():
    from quivers.inference import ProgramAdaptor

    I = FinSet("I", 4)
    p = Program("p", I, I, [sample("n", None, Poisson(1.5)), observe("y", I, Normal(var("n") * 1.0, 0.5))])
    with pytest.raises(QuiversTypeError, match=r"\['n'\] of `p` are discrete and not summed by its plan "
                                               r"\(`n`: Poisson has infinite support\); Gibbs steps sample them within NUTS"):
        ProgramAdaptor(auto(p))
    with pytest.raises(QuiversTypeError, match=r"sum them exactly with \[marginalize=auto\]"):
        ProgramAdaptor(p)


def test_a_planned_program_on_mini_batches_is_planned_again_and_scaled():
    planned, hand = loads(AUTO).morphism, loads(MIXTURE_BY_HAND).morphism
    mini, hand_mini = planned.subsample({"Item": 2}), hand.subsample({"Item": 2})
    assert isinstance(mini, PlannedProgram) and mini.summed == {"z"} and mini.term_scales == {"Item": 2.5}
    y = torch.tensor([-2.1, 0.3], dtype=F64)
    lat = {"probs": torch.tensor([0.5, 1.0, 2.0], dtype=F64), "mu_k": torch.tensor([-2.0, 0.0, 2.0], dtype=F64),
           "sd_k": torch.tensor([0.5, 1.0, 0.7], dtype=F64)}
    torch.testing.assert_close(mini.log_joint(None, {"y": y}, lat), hand_mini.log_joint(None, {"y": y}, lat))


def test_svi_on_the_planned_grouped_mixture_fits_what_the_marginalize_version_fits():
    from tests.planning.test_exact import GROUPED_BY_HAND

    gen = torch.Generator().manual_seed(2)
    group = torch.tensor([0, 0, 1, 1, 2, 0, 2])
    y = torch.tensor([-2.0, 2.0, -2.0])[group] + 0.3 * torch.randn(7, generator=gen)
    obs = {"y": y, "group": group}
    auto_src = GROUPED.replace("[effects=[Sample, Score]]", "[effects=[Sample, Score], marginalize=auto]")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        planned = fit(loads(auto_src).morphism, obs, steps=150, progress_bar=False, seed=0)
        hand = fit(loads(GROUPED_BY_HAND).morphism, obs, steps=150, progress_bar=False, seed=0)
    for name in ("mu_k", "sd_k"):
        torch.testing.assert_close(planned.samples[name].mean((0, 1)), hand.samples[name].mean((0, 1)),
                                   rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(planned.samples["probs"].mean((0, 1)), hand.samples["probs"].mean((0, 1)),
                               rtol=1e-3, atol=1e-3)
    torch.testing.assert_close((planned.latent_draws()["z"] == 0).double().mean((0, 1)),
                               (hand.latent_draws()["z"] == 0).double().mean((0, 1)), atol=0.05, rtol=0)


def test_a_composite_of_planned_programs_is_planned_again():
    from quivers.programs import rename

    first = auto(build_two())
    both = first >> rename(first, "q_")
    assert isinstance(both, PlannedProgram) and both.summed == {"b", "q_b"}
    obs = {"y": torch.tensor([0.3, 1.2], dtype=F64), "q_y": torch.tensor([1.0, -0.4], dtype=F64)}
    single = first.log_joint(None, {"y": obs["y"]}) + first.log_joint(None, {"y": obs["q_y"]})
    torch.testing.assert_close(both.log_joint(None, obs), single)


def build_two() -> Program:
    I = FinSet("I", 2)
    return Program("two", I, I, [sample("b", None, Bernoulli(0.3)), observe("y", I, Normal(2.0 * var("b"), 1.0))])


def test_a_budget_below_a_blocks_accumulator_leaves_the_per_row_latent_to_sampling():
    """A latent per row is summed by a block whose accumulator (rows by
    values) counts against the budget like any intermediate."""
    Item, K = FinSet("Item", 6), FinSet("K", 2)
    p = Program("p", Item, Item, [
        sample("w", K, HalfNormal(1.0)), sample("mu", K, Normal(0.0, 1.0)),
        sample("z", Item, Categorical(var("w"))), observe("y", Item, Normal(var("mu")[var("z")], 1.0)),
    ])
    assert auto(p, budget=48).summed == {"z"}
    with pytest.warns(QuiversWarning, match=r"`z` is sampled, not summed: the plan's largest intermediate Item \* z "
                                            r"takes 48 bytes, over the budget of 47"):
        planned = auto(p, budget=47)
    assert planned.summed == frozenset() and "z" in planned.plan().sampled
    assert [s.name for s in planned.latent_sites()] == ["w", "mu", "z"]
