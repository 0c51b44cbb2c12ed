"""Bad input is a QuiversError naming the step and the name, never a raw
IndexError, KeyError or torch RuntimeError."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quivers.categories import FinSet
from quivers.distributions import Categorical, Dirichlet, HalfNormal, Normal, Poisson, Uniform
from quivers.errors import (
    DataError,
    EffectError,
    GraphError,
    InvalidValueError,
    QuiversError,
    QuiversTypeError,
    ShapeError,
    UnknownNameError,
)
from quivers.programs import Program, call, const, factor, index_map, let, marginalize, observe, ret, sample, var

from tests.programs.models import gmm, grouped

Item, K, G, Other = FinSet("Item", 4), FinSet("K", 2), FinSet("G", 3), FinSet("Other", 5)
mu, sd, z = var("mu_k"), var("sd_k"), var("z")
Y = torch.randn(4)
LAT = {"probs": torch.ones(2), "mu_k": torch.tensor([-1.0, 1.0]), "sd_k": torch.ones(2)}
GOBS = {"y": torch.randn(6), "group": torch.tensor([0, 0, 2, 2, 0, 2])}
GLAT = {"probs": torch.ones(3, 2), "mu_k": torch.tensor([-1.0, 1.0]), "sd_k": torch.ones(2)}


def P(steps, **kw):
    return Program("p", Item, Item, steps, **kw)


# ---------------------------------------------------------------- build time


def test_undefined_name_names_the_step_and_suggests():
    with pytest.raises(UnknownNameError, match=r"step `y` reads `mu_kk`, which is not defined; did you mean `mu_k`\?"):
        P([sample("mu_k", K, Normal(0.0, 1.0)), observe("y", Item, Normal(var("mu_kk")[0], 1.0))])


def test_undefined_name_inside_a_block_suggests_names_in_scope():
    with pytest.raises(UnknownNameError, match=r"step `y` reads `sd`, which is not defined; did you mean `sd_k`\?"):
        P([
            sample("sd_k", K, HalfNormal(1.0)),
            marginalize("z", K, Categorical([1.0, 1.0]), [observe("y", Item, Normal(0.0, var("sd")[z]))]),
        ])


def test_the_latent_is_not_visible_outside_its_block():
    with pytest.raises(UnknownNameError, match=r"step `q` reads `z`, which is not defined"):
        P([
            marginalize("z", K, Categorical([1.0, 1.0]), [observe("y", Item, Normal(0.0, 1.0))]),
            let("q", var("z") + 1),
        ])


def test_cycle_names_the_steps():
    with pytest.raises(GraphError, match=r"cycle: `a` -> `b` -> `a`"):
        P([sample("a", None, Normal(var("b"), 1.0)), sample("b", None, Normal(var("a"), 1.0))])



@pytest.mark.parametrize("step", [
    sample("sigma", K, HalfNormal(var("sigma"))),
    let("sigma", var("sigma") + 1),
    marginalize("sigma", K, Categorical(var("sigma")), [observe("y", Item, Normal(0.0, 1.0))]),
], ids=["sample", "let", "marginalize"])
def test_a_step_that_reads_itself_is_a_recursion_that_needs_scan(step):
    with pytest.raises(GraphError, match=r"^`sigma` is read by its own definition, a recursion; a recursion over "
                       r"a sequence needs `scan`, which quivers does not have yet \(a chain of discrete states is "
                       r"a `markov` block\)$"):
        P([step, observe("w", Item, Normal(0.0, 1.0))])
    inner = marginalize("z", K, Categorical([1.0, 1.0]), [observe("sigma", Item, Normal(var("sigma"), 1.0))])
    with pytest.raises(GraphError, match=r"^`sigma` is read by its own definition, a recursion"):
        P([inner])


def test_declared_effects_missing_one_list_the_offending_steps():
    with pytest.raises(EffectError, match=r"declares effects \[Sample\] but has Marginal, Score: .*`marginalize z` \(Marginal\), `observe y` \(Score\); add Marginal, Score"):
        gmm(effects=["Sample"])


def test_declaring_pure_and_observing_is_an_effect_error():
    with pytest.raises(EffectError, match=r"declares effects \[Pure\] but has Score: `observe y` \(Score\)"):
        P([observe("y", Item, Normal(0.0, 1.0))], effects=["Pure"])
    with pytest.raises(EffectError, match=r"`factor` \(Score\)"):
        P([factor(const(-1.0))], effects=["Pure"])


def test_unknown_effect_suggests_and_a_single_name_is_accepted():
    with pytest.raises(UnknownNameError, match=r"unknown effect `Scor`.*did you mean `Score`\?"):
        P([observe("y", Item, Normal(0.0, 1.0))], effects=["Scor"])
    assert {e.name for e in P([observe("y", Item, Normal(0.0, 1.0))], effects="Score").effects} == {"Score"}


def test_duplicate_definitions_are_graph_errors():
    with pytest.raises(GraphError, match=r"`a` is defined twice"):
        P([sample("a", None, Normal(0.0, 1.0)), let("a", const(1.0))])
    with pytest.raises(GraphError, match=r"`y` is defined twice"):
        P([
            sample("y", None, Normal(0.0, 1.0)),
            marginalize("z", K, Categorical([1.0, 1.0]), [observe("y", Item, Normal(0.0, 1.0))]),
        ])
    with pytest.raises(GraphError, match=r"`z` is defined twice"):
        P([
            marginalize("z", K, Categorical([1.0, 1.0]), [observe("y", Item, Normal(0.0, 1.0))]),
            marginalize("z", K, Categorical([1.0, 1.0]), [observe("w", Item, Normal(0.0, 1.0))]),
        ])


def test_via_without_over_is_an_error_with_the_fix():
    with pytest.raises(QuiversTypeError, match=r"observe `y` has \[via=g\] but no enclosing marginalize has \[over=...\]; add \[over=G\]"):
        P([index_map("g", Item, G), marginalize("z", K, Categorical([1.0, 1.0]), [observe("y", Item, Normal(0.0, 1.0), via="g")])])


def test_observe_without_via_in_a_grouped_block():
    with pytest.raises(ShapeError, match=r"observe `y` on `Item` in a block grouped over `G` needs \[via=...\]"):
        P([sample("w", G, HalfNormal(1.0)), marginalize("z", K, Categorical(var("w")), [observe("y", Item, Normal(0.0, 1.0))], over=G)])


def test_via_map_into_another_plate():
    with pytest.raises(ShapeError, match=r"index map `g` maps into `Other`, but the block of `y` groups over `G`"):
        P([
            index_map("g", Item, Other), sample("w", G, HalfNormal(1.0)),
            marginalize("z", K, Categorical(var("w")), [observe("y", Item, Normal(0.0, 1.0), via="g")], over=G),
        ])


def test_per_row_block_with_observes_on_different_plates():
    with pytest.raises(ShapeError, match=r"per-row marginalize `z` has observations on different plates: `y` on \['Item'\], `w` on \['Other'\]"):
        P([marginalize("z", K, Categorical([1.0, 1.0]), [
            observe("y", Item, Normal(0.0, 1.0)), observe("w", Other, Normal(0.0, 1.0))])])


def test_parameter_varying_over_a_plate_the_site_is_not_on():
    with pytest.raises(ShapeError, match=r"step `y`, parameter `loc`: `m` varies over `Other`, but observe `y` is declared on `Item`"):
        P([sample("m", Other, Normal(0.0, 1.0)), observe("y", Item, Normal(var("m"), 1.0))])
    with pytest.raises(ShapeError, match=r"step `s`, parameter `scale`: `w` varies over `Item`, but sample `s` is declared on no plate"):
        P([sample("w", Item, HalfNormal(1.0)), sample("s", None, Normal(0.0, var("w")))])


def test_weights_without_the_support_axis():
    with pytest.raises(ShapeError, match=r"marginalize `z`, weights `weights`: `2\*w` has axes \['Item'\], none of them the support `K` of `z`"):
        P([sample("w", Item, HalfNormal(1.0)), marginalize("z", K, Categorical(var("w") * 2), [observe("y", Item, Normal(0.0, 1.0))])])
    with pytest.raises(ShapeError, match=r"none of them the support `K`"):
        P([marginalize("z", K, Categorical(2.0), [observe("y", Item, Normal(0.0, 1.0))])])


def test_weights_varying_over_axes_the_latent_does_not_live_on():
    with pytest.raises(ShapeError, match=r"marginalize `z`, weights `weights`: `w` varies over `Other`, but `z` lives on its rows \['Item'\]"):
        P([sample("w", Other * K, HalfNormal(1.0)), marginalize("z", K, Categorical(var("w")), [observe("y", Item, Normal(0.0, 1.0))])])


def test_constant_weights_of_the_wrong_size():
    with pytest.raises(ShapeError, match=r"marginalize `z`, parameter `weights`: the constant of shape \(3,\) does not fit the axes \['Item', 'K'\]"):
        P([marginalize("z", K, Categorical(torch.ones(3)), [observe("y", Item, Normal(0.0, 1.0))])])


def test_indexing_errors_are_caught_at_build_time():
    with pytest.raises(ShapeError, match=r"step `y`, parameter `loc`: index 5 in `mu_k\[...\]` is out of range for axis `K` of size 2"):
        P([sample("mu_k", K, Normal(0.0, 1.0)), observe("y", Item, Normal(mu[5], 1.0))])
    with pytest.raises(ShapeError, match=r"step `y`, parameter `loc`: cannot index `mu_k` \(axes \['G'\]\) by `z` \(values in `K`\)"):
        P([sample("mu_k", G, Normal(0.0, 1.0)), marginalize("z", K, Categorical([1.0, 1.0]), [observe("y", Item, Normal(mu[z], 1.0))])])
    with pytest.raises(QuiversTypeError, match=r"step `y`, parameter `loc`: the index `c` in `mu_k\[...\]` is not integer-valued"):
        P([sample("c", None, Normal(0.0, 1.0)), sample("mu_k", K, Normal(0.0, 1.0)), observe("y", Item, Normal(mu[var("c")], 1.0))])


def test_sets_with_one_name_and_two_sizes():
    with pytest.raises(ShapeError, match=r"two index sets are named `K`: size 2 in `a` and size 3 in `b`"):
        P([sample("a", K, Normal(0.0, 1.0)), sample("b", FinSet("K", 3), Normal(0.0, 1.0))])


def test_a_latent_named_like_an_index_set():
    with pytest.raises(ShapeError, match=r"marginalize `K`: the latent has the name of an index set"):
        P([marginalize("K", K, Categorical([1.0, 1.0]), [observe("y", Item, Normal(0.0, 1.0))])])


def test_bad_names_and_arguments_of_steps():
    with pytest.raises(QuiversTypeError, match=r"`__return__` is not a valid name for a sample step"):
        sample("__return__", None, Normal(0.0, 1.0))
    with pytest.raises(QuiversTypeError, match=r"the name of an observe step must be a string, got int"):
        observe(3, Item, Normal(0.0, 1.0))
    with pytest.raises(QuiversTypeError, match=r"the index set of `a` must be a FinSet, got `3`"):
        sample("a", 3, Normal(0.0, 1.0))
    with pytest.raises(QuiversTypeError, match=r"expected a distribution family, got `1.0`"):
        sample("a", None, 1.0)
    with pytest.raises(QuiversTypeError, match=r"marginalize `z` needs a Categorical prior, got `Normal"):
        marginalize("z", K, Normal(0.0, 1.0), [])
    with pytest.raises(InvalidValueError, match=r"marginalize `z` sums over `K0`, which is empty"):
        marginalize("z", FinSet("K0", 0), Categorical(logits=var("l")), [])
    with pytest.raises(QuiversTypeError, match=r"program `p` has `1` among its steps, which is not a step"):
        P([1])
    with pytest.raises(QuiversTypeError, match=r"program `p` has 2 return steps"):
        P([ret(const(1.0)), ret(const(2.0))])


def test_tensor_constants_outside_family_arguments_need_axes():
    with pytest.raises(ShapeError, match=r"let `q`: the tensor constant of shape \(3,\) has no named axes"):
        P([let("q", const(torch.ones(3)) + 1)])


def test_dirichlet_on_no_plate():
    with pytest.raises(ShapeError, match=r"`w` has a Dirichlet value with 1 event axes, but its index set `None` has 0"):
        P([sample("w", None, Dirichlet(torch.ones(2)))])


# ------------------------------------------------------------------ run time


def test_index_map_out_of_range_names_the_map_and_first_bad_index():
    with pytest.raises(DataError, match=r"index map `group` has value 3 at index \(2,\), outside \[0, 3\) of `G`"):
        grouped().log_joint(None, {**GOBS, "group": torch.tensor([0, 0, 3, 2, 5, 1])}, GLAT)
    with pytest.raises(DataError, match=r"index map `group` has value -1 at index \(1,\)"):
        grouped(declared=True).log_joint(None, {**GOBS, "group": [0, -1, 0, 0, 0, 0]}, GLAT)


def test_index_map_non_integer_or_boolean():
    with pytest.raises(DataError, match=r"index map `group` has a non-integer value 1.5 at index \(2,\)"):
        grouped().log_joint(None, {**GOBS, "group": torch.tensor([0, 0, 1.5, 2, 0, 0])}, GLAT)
    with pytest.raises(DataError, match=r"index map `group` must hold integers, got dtype torch.bool"):
        grouped().log_joint(None, {**GOBS, "group": torch.ones(6, dtype=torch.bool)}, GLAT)
    with pytest.raises(DataError, match=r"index map `group` has a non-finite value at index \(0,\)"):
        grouped().log_joint(None, {**GOBS, "group": torch.tensor([math.nan, 0, 0, 0, 0, 0])}, GLAT)


def test_index_map_of_the_wrong_shape():
    with pytest.raises(ShapeError, match=r"index map `group` has shape \(5,\); it needs one entry per element of `Item`, shape \(6,\)"):
        grouped().log_joint(None, {**GOBS, "group": torch.zeros(5, dtype=torch.long)}, GLAT)
    with pytest.raises(ShapeError, match=r"index map `group` has shape \(2, 6\)"):
        grouped().log_joint(None, {**GOBS, "group": torch.zeros(2, 6, dtype=torch.long)}, GLAT)


def test_missing_index_map_even_when_given_as_a_latent():
    with pytest.raises(DataError, match=r"index map `group` \(Item -> G\) is given in latents; data is no random variable"):
        grouped().log_joint(None, {"y": GOBS["y"]}, {**GLAT, "group": GOBS["group"]})


def test_missing_observation_and_missing_latent():
    with pytest.raises(DataError, match=r"observation `y` is missing"):
        gmm().log_joint(None, {}, LAT)
    with pytest.raises(DataError, match=r"latent `mu_k` has no value; pass it in latents or in observations"):
        gmm().log_joint(None, {"y": Y}, {"probs": LAT["probs"], "sd_k": LAT["sd_k"]})


def test_observation_with_wrong_trailing_shape():
    with pytest.raises(ShapeError, match=r"observation `y` has shape \(1, 5\); its site \('Item',\) needs trailing shape \(4,\); leading axes are batch axes"):
        gmm().log_joint(None, {"y": torch.zeros(1, 5)}, LAT)
    with pytest.raises(ShapeError, match=r"latent `probs` has shape \(2,\); its site \('G', 'K'\) needs trailing shape \(3, 2\)"):
        grouped().log_joint(None, GOBS, {**GLAT, "probs": torch.ones(2)})


def test_nan_in_data_names_site_and_index():
    y = Y.clone()
    y[2] = math.nan
    with pytest.raises(DataError, match=r"observation `y` has a non-finite value at index \(2,\)"):
        gmm().log_joint(None, {"y": y}, LAT)
    with pytest.raises(DataError, match=r"latent `mu_k` has a non-finite value at index \(1, 0\)"):
        gmm().log_joint(None, {"y": Y}, {**LAT, "mu_k": torch.tensor([[0.0, 0.0], [math.inf, 0.0]])})


def test_values_outside_a_fixed_support():
    with pytest.raises(DataError, match=r"latent `sd_k` has a value outside the support of HalfNormal .* at index \(1,\)"):
        gmm().log_joint(None, {"y": Y}, {**LAT, "sd_k": torch.tensor([1.0, -1.0])})


def test_values_outside_a_parameter_dependent_support():
    # a continuous value outside the support at these parameters has
    # density 0 (as Stan's uniform): the likelihood of `a`, not a data error
    p = P([sample("a", None, Normal(0.0, 1.0)), observe("u", Item, Uniform(var("a"), var("a") + 1))])
    assert p.log_joint(None, {"u": [0.5, 0.5, 0.5, 3.0]}, {"a": 0.0}).item() == -math.inf
    assert math.isfinite(p.log_joint(None, {"u": [0.5, 0.5, 0.5, 0.9]}, {"a": 0.0}).item())
    c = P([sample("w", K, HalfNormal(1.0)), observe("c", Item, Categorical(var("w")))])
    with pytest.raises(DataError, match=r"observation `c` has value 5 at index \(3,\), outside \[0, 2\) of `K`"):
        c.log_joint(None, {"c": [0, 1, 1, 5]}, {"w": torch.ones(2)})


def test_unknown_observation_or_latent_key_suggests():
    with pytest.raises(UnknownNameError, match=r"`yy` in the observations is no site of the program; did you mean `y`\?"):
        gmm().log_joint(None, {"y": Y, "yy": Y}, LAT)
    with pytest.raises(UnknownNameError, match=r"`mu` in latents is no site of the program; did you mean `mu_k`\?"):
        gmm().log_joint(None, {"y": Y}, {**LAT, "mu": 1.0})
    with pytest.raises(QuiversTypeError, match=r"observations must be a dict from site names to tensors, got list"):
        gmm().log_joint(None, [Y], LAT)


def test_batches_that_do_not_broadcast():
    lat = {k: v.expand(3, *v.shape) for k, v in LAT.items()}
    with pytest.raises(ShapeError, match=r"the batch axes of the given values do not broadcast: .*`y` has batch shape \(2,\)"):
        gmm().log_joint(None, {"y": torch.zeros(2, 4)}, lat)


def test_marginalized_latent_given_out_of_range():
    with pytest.raises(DataError, match=r"observation `z` has value 5 at index \(3,\), outside \[0, 2\) of `K`"):
        gmm().log_joint(None, {"y": Y, "z": [0, 1, 1, 5]}, LAT)


def test_integer_out_of_range_from_a_discrete_latent():
    p = P([sample("c", None, Poisson(2.0)), sample("mu_k", K, Normal(0.0, 1.0)), observe("y", Item, Normal(mu[var("c")], 1.0))])
    with pytest.raises(DataError, match=r"step `y`: index value 5 at \(\) is out of range for axis `K` of size 2"):
        p.log_joint(None, {"y": Y}, {"c": 5.0, "mu_k": torch.zeros(2)})


def test_nan_density_from_a_parameter_outside_its_constraint():
    p = P([sample("a", None, Normal(0.0, 1.0)), observe("y", Item, Normal(0.0, var("a")))])
    with pytest.raises(InvalidValueError, match=r"parameter `scale` of `y` is -1.0 at index \(\), outside its constraint"):
        p.log_joint(None, {"y": Y}, {"a": -1.0})
    # Engines that transform latents themselves get the NaN (a divergence).
    assert bool(torch.isnan(p.log_joint(None, {"y": Y}, {"a": torch.tensor(-1.0)}, check_latents=False)))


def test_unvalidated_data_types():
    with pytest.raises(QuiversTypeError, match=r"`y` must be a tensor or array of numbers, got str"):
        gmm().log_joint(None, {"y": "abc"}, LAT)
    with pytest.raises(QuiversTypeError, match=r"`y` must be a tensor or array of numbers, got NoneType"):
        gmm().log_joint(None, {"y": None}, LAT)
    with pytest.raises(DataError, match=r"observation `y` must be real"):
        gmm().log_joint(None, {"y": torch.zeros(4, dtype=torch.complex64)}, LAT)


def test_odd_but_valid_inputs_work():
    """Lists, numpy arrays, integers where floats are expected, empty plates."""
    want = gmm().log_joint(None, {"y": torch.tensor([1.0, 2.0, 3.0, 4.0])}, LAT)
    for y in ([1, 2, 3, 4], np.array([1.0, 2.0, 3.0, 4.0]), torch.tensor([1, 2, 3, 4])):
        torch.testing.assert_close(gmm().log_joint(None, {"y": y}, {**LAT, "mu_k": [-1, 1]}), want)
    E = FinSet("E", 0)
    empty = Program("e", E, E, [
        sample("mu_k", K, Normal(0.0, 1.0)),
        marginalize("z", K, Categorical([1.0, 1.0]), [observe("y", E, Normal(mu[z], 1.0))]),
    ])
    got = empty.log_joint(None, {"y": torch.zeros(0)}, {"mu_k": torch.zeros(2)})
    torch.testing.assert_close(got, torch.distributions.Normal(0.0, 1.0).log_prob(torch.zeros(2)).sum())
    assert empty.sample(None, (3,))["z"].shape == (3, 0)


def test_runtime_errors_name_their_step():
    p = P([sample("c", None, Poisson(2.0)), sample("mu_k", K, Normal(0.0, 1.0)),
           let("m", mu[var("c")]), observe("y", Item, Normal(var("m"), 1.0))])
    with pytest.raises(DataError, match=r"^step `m`: index value"):
        p.log_joint(None, {"y": Y}, {"c": 7.0, "mu_k": torch.zeros(2)})


junk = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=3), st.lists(st.floats(-3, 3), max_size=7), st.lists(st.integers(-2, 4), max_size=7),
    st.lists(st.lists(st.integers(0, 2), max_size=3), max_size=3),
    st.builds(
        lambda shape, dtype: torch.zeros(shape).to(dtype),
        st.lists(st.integers(0, 7), max_size=3),
        st.sampled_from([torch.float32, torch.float64, torch.int64, torch.bool, torch.complex64, torch.int8]),
    ),
    st.builds(np.ones, st.lists(st.integers(0, 7), max_size=3)),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
)


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    st.sampled_from(["y", "group", "probs", "mu_k", "sd_k", "z"]), junk, st.booleans(),
    st.sampled_from(["log_joint", "sample", "posterior_latents", "pointwise_log_likelihood"]),
)
def test_junk_data_gives_quivers_errors_only(name, value, as_observation, method):
    obs, lat = dict(GOBS), dict(GLAT)
    (obs if as_observation else lat)[name] = value
    for prog, o, la in ((grouped(), obs, lat), (gmm(6), {k: v for k, v in obs.items() if k != "group"},
                                                {**lat, "probs": torch.ones(2)} if name != "probs" else lat)):
        try:
            if method == "sample":
                prog.sample(None, (2,), la, o)
            else:
                getattr(prog, method)(None, o, la)
        except QuiversError:
            pass


def test_expression_folding_to_no_real_value_is_named():
    from quivers.programs import call, const, let

    I = FinSet("I", 2)
    with pytest.raises(InvalidValueError, match=r"step `x`.*no finite real value"):
        Program("p", I, I, [let("x", call("log", const(0)))])


def test_build_time_shape_errors_point_at_the_step_line():
    from quivers.dsl import loads

    src = (
        "object I : FinSet 3\n"
        "object K : FinSet 2\n"
        "program p : I -> I\n"
        "    sample mu : K <- Normal(0.0, 1.0)\n"
        "    observe y : I <- Normal(mu, 1.0)\n"
        "export p\n"
    )
    with pytest.raises(QuiversError) as info:
        loads(src)
    assert info.value.span is not None and info.value.span.line == 5
