"""Checkpoints round-trip: a fitted model, guide, optimizer and ELBO saved
to one file load back into an identical state (the guide's median and the
next SVI step are bit-identical to the original's), and loading against a
changed program is a CheckpointError that says what changed."""

from __future__ import annotations

import pytest
import torch

from quivers.categories import FinSet
from quivers.checkpoint import Checkpoint, load, save, signature, source_hash
from quivers.distributions import Categorical, HalfNormal, Normal
from quivers.dsl import loads
from quivers.errors import CheckpointError, QuiversError
from quivers.inference import (
    ELBO,
    SVI,
    AutoDelta,
    AutoLowRankMultivariateNormal,
    AutoMultivariateNormal,
    AutoNormalGuide,
    fit,
)
from quivers.programs import Program, marginalize, observe, sample, var

from tests.programs.models import gmm
from tests.spec import seed

N = 30
SOURCE = seed.GMM.replace("FinSet 500", f"FinSet {N}")
GROUPED = seed.GROUPED.replace("FinSet 1000", f"FinSet {N}").replace("FinSet 20", "FinSet 4")


def data() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    z = torch.rand(N, generator=g) < 0.5
    return {"y": torch.where(z, 2.0, -2.0) + 0.5 * torch.randn(N, generator=g)}


def trained(model: Program, guide_cls=AutoNormalGuide, steps: int = 5, obs=None, observed=("y",)):
    obs = data() if obs is None else obs
    guide = guide_cls(model, observed_names=set(observed))
    optimizer = torch.optim.Adam(list(model.parameters()) + list(guide.parameters()), lr=0.05)
    elbo = ELBO(num_particles=2)
    svi = SVI(model, guide, optimizer, elbo)
    for _ in range(steps):
        svi.step(None, obs)
    return guide, optimizer, elbo, svi


def assert_bit_identical(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def continue_both(tmp_path, model, guide_, optimizer_, elbo, svi, obs, **load_kw):
    """Save, take one more step with the originals, load, take the same
    step with what was loaded; return both losses and guide states."""
    guide, optimizer = guide_, optimizer_
    path = tmp_path / "fit.qvrck"
    save(path, model, guide, optimizer, elbo=elbo, extra={"step": 5})
    median = guide.median()
    loss = svi.step(None, obs)
    ck = load(path, **load_kw)
    assert isinstance(ck, Checkpoint) and ck.extra == {"step": 5}
    assert_bit_identical(ck.guide.median(), median)
    loss_again = SVI(ck.model, ck.guide, ck.optimizer, ck.elbo).step(None, obs)
    assert loss_again == loss
    assert_bit_identical(ck.guide.state_dict(), guide.state_dict())
    assert_bit_identical(ck.optimizer.state_dict()["state"][0], optimizer.state_dict()["state"][0])
    return ck


@pytest.mark.parametrize("guide_cls", [AutoNormalGuide, AutoDelta, AutoMultivariateNormal, AutoLowRankMultivariateNormal])
def test_round_trip_from_the_stored_source(tmp_path, guide_cls):
    torch.manual_seed(0)
    model = loads(SOURCE).morphism
    guide, optimizer, elbo, svi = trained(model, guide_cls)
    ck = continue_both(tmp_path, model, guide, optimizer, elbo, svi, data())
    assert ck.source == SOURCE and ck.source_sha256 == source_hash(SOURCE)
    assert ck.model is not model and type(ck.guide) is guide_cls


def test_round_trip_into_objects_the_caller_built(tmp_path):
    torch.manual_seed(1)
    model = loads(SOURCE).morphism
    guide, optimizer, elbo, svi = trained(model)
    fresh = loads(SOURCE).morphism
    fresh_guide = AutoNormalGuide(fresh, observed_names={"y"})
    fresh_opt = torch.optim.Adam(fresh_guide.parameters(), lr=0.3)  # its lr is restored too
    ck = continue_both(tmp_path, model, guide, optimizer, elbo, svi, data(),
                       model_or_source=fresh, guide=fresh_guide, optimizer=fresh_opt)
    assert ck.model is fresh and ck.guide is fresh_guide and ck.optimizer is fresh_opt
    assert fresh_opt.param_groups[0]["lr"] == 0.05


def test_round_trip_from_source_text_and_of_a_grouped_program(tmp_path):
    torch.manual_seed(2)
    group = torch.arange(N) % 4
    obs = data() | {"group": group}
    model = loads(GROUPED).morphism
    guide, optimizer, elbo, svi = trained(model, obs=obs, observed=("y", "group"))
    continue_both(tmp_path, model, guide, optimizer, elbo, svi, obs, model_or_source=GROUPED)


def test_round_trip_of_a_program_built_with_combinators(tmp_path):
    torch.manual_seed(3)
    model = gmm(N)
    guide, optimizer, elbo, svi = trained(model)
    continue_both(tmp_path, model, guide, optimizer, elbo, svi, data(), model_or_source=gmm(N))
    with pytest.raises(CheckpointError, match="holds no QVR source"):
        load(tmp_path / "fit.qvrck")


@pytest.mark.parametrize("guide", ["normal", "mvn"])
def test_the_result_of_fit_round_trips(tmp_path, guide):
    """What users hold after ``fit``: its model (with the QVR source) and
    guide save to one file and load back into a bit-identical guide."""
    result = fit(loads(SOURCE).morphism, data(), steps=20, guide=guide, num_samples=5, seed=0, progress_bar=False)
    save(tmp_path / "fit.qvrck", result.model, result.guide)
    ck = load(tmp_path / "fit.qvrck")
    assert ck.source == SOURCE and ck.source_sha256 == source_hash(SOURCE)
    assert type(ck.guide) is type(result.guide)
    assert_bit_identical(ck.guide.state_dict(), result.guide.state_dict())
    assert_bit_identical(ck.guide.median(), result.guide.median())


def test_the_score_function_baseline_round_trips(tmp_path):
    """A sampled discrete latent: the ELBO's moving baseline is state too."""
    K, I = FinSet("K", 2), FinSet("I", 1)
    model = Program("disc", I, I, [
        sample("mu", K, Normal(0.0, 1.0)),
        sample("w", K, HalfNormal(1.0)),
        sample("z", None, Categorical(var("w"))),
        observe("y", I, Normal(var("mu")[var("z")], 1.0)),
    ])
    obs = {"y": torch.tensor([0.8])}
    torch.manual_seed(4)
    guide, optimizer, elbo, svi = trained(model, obs=obs)
    assert elbo._baseline is not None
    rebuilt = Program("disc", I, I, list(model.steps))
    ck = continue_both(tmp_path, model, guide, optimizer, elbo, svi, obs, model_or_source=rebuilt)
    assert ck.elbo._baseline is not None


def test_the_random_state_is_restored_only_when_saved_and_asked_for(tmp_path):
    model = loads(SOURCE).morphism
    guide, optimizer, _, _ = trained(model)
    torch.manual_seed(5)
    at_save = torch.get_rng_state()
    save(tmp_path / "with.qvrck", model, guide, optimizer)
    save(tmp_path / "without.qvrck", model, guide, optimizer, rng=False)

    def state_after(name: str, **kw) -> torch.Tensor:
        torch.manual_seed(77)
        load(tmp_path / name, **kw)  # rebuilding the guide draws from the generator
        return torch.get_rng_state()

    kept = state_after("with.qvrck", restore_rng=False)
    assert torch.equal(state_after("with.qvrck"), at_save)
    assert not torch.equal(kept, at_save)
    assert torch.equal(state_after("without.qvrck"), kept)


def test_the_median_is_a_copy_not_a_view_of_the_parameters():
    """Found by the round trip: a real site's median aliased ``guide.loc``
    and moved on with every later step."""
    model = loads(SOURCE).morphism
    guide, _, _, svi = trained(model)
    median = guide.median()
    frozen = {k: v.clone() for k, v in median.items()}
    svi.step(None, data())
    assert_bit_identical(median, frozen)


# ---------------------------------------------------------------- refusals


def saved(tmp_path, model=None) -> tuple:
    model = loads(SOURCE).morphism if model is None else model
    guide, optimizer, elbo, _ = trained(model, steps=1)
    path = tmp_path / "fit.qvrck"
    save(path, model, guide, optimizer, elbo=elbo)
    return path, model, guide


def test_a_changed_source_is_refused_with_the_changed_line(tmp_path):
    path, _, _ = saved(tmp_path)
    # SOURCE is examples/gmm.qvr (canonical: a blank line after the objects), so mu_k is on line 6
    changed = SOURCE.replace("Normal(0.0, 5.0)", "Normal(0.0, 10.0)")
    for target in (changed, loads(changed).morphism):
        with pytest.raises(CheckpointError, match=r"different QVR source: line 6 was `sample mu_k : K <- Normal\(0.0, 5.0\)` and is now `sample mu_k : K <- Normal\(0.0, 10.0\)`"):
            load(path, target)
    with pytest.raises(CheckpointError, match="differ only in line endings or trailing whitespace"):
        load(path, SOURCE.replace("\n", "  \n"))


def test_a_checkpoint_whose_own_source_was_altered_is_refused(tmp_path):
    """The stored source no longer matches the hash stored beside it: the
    file is corrupt, whatever program it is loaded into."""
    path, _, _ = saved(tmp_path)
    record = torch.load(path, weights_only=True)
    record["source"] = record["source"].replace("Normal(0.0, 5.0)", "Normal(0.0, 10.0)")
    torch.save(record, path)
    for target in (None, SOURCE, loads(SOURCE).morphism):
        with pytest.raises(CheckpointError, match="does not match the SHA-256 saved with it: the file was altered or is corrupt"):
            load(path, target)


def test_changed_site_shapes_are_refused_saying_which(tmp_path):
    path, _, _ = saved(tmp_path, gmm(N))
    with pytest.raises(CheckpointError, match=r"its dom was \['Item', 30\] and is now \['Item', 31\].*site `y` had shape \[30\] and now has \[31\]"):
        load(path, gmm(N + 1))
    with pytest.raises(CheckpointError, match=r"site `mu_k` had shape \[2\] and now has \[3\]"):
        load(path, gmm(N, 3))
    other = Program("gmm", FinSet("Item", N), FinSet("Item", N), [
        sample("mu_k", FinSet("K", 2), Normal(0.0, 5.0)),
        observe("y", FinSet("Item", N), Normal(var("mu_k")[0], 1.0)),
    ])
    with pytest.raises(CheckpointError, match=r"site `probs` is gone.*site `sd_k` is gone.*site `z` is gone"):
        load(path, other)


def test_changed_constants_are_refused(tmp_path):
    Item, K = FinSet("Item", N), FinSet("K", 2)

    def model(weights):
        return Program("m", Item, Item, [
            sample("mu_k", K, Normal(0.0, 5.0)),
            marginalize("z", K, Categorical(torch.tensor(weights)), [observe("y", Item, Normal(var("mu_k")[var("z")], 1.0))]),
        ])

    path, _, _ = saved(tmp_path, model([1.0, 1.0]))
    load(path, model([1.0, 1.0]))
    with pytest.raises(CheckpointError, match=r"constant `_const0` differs"):
        load(path, model([1.0, 3.0]))


def test_a_different_guide_or_optimizer_is_refused(tmp_path):
    path, model, _ = saved(tmp_path)
    with pytest.raises(CheckpointError, match="holds a AutoNormalGuide, not a AutoDelta"):
        load(path, model, AutoDelta(model, observed_names={"y"}))
    with pytest.raises(CheckpointError, match=r"the guide covers the latents \[\]"):
        load(path, model, AutoNormalGuide(model, observed_names={"y", "probs", "mu_k", "sd_k"}))
    g = AutoNormalGuide(model, observed_names={"y"})
    with pytest.raises(CheckpointError, match="holds a Adam optimizer, not a SGD"):
        load(path, model, g, torch.optim.SGD(g.parameters(), lr=0.1))


def test_files_that_are_no_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        load(tmp_path / "missing.qvrck")
    junk = tmp_path / "junk.qvrck"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="is not a quivers checkpoint"):
        load(junk)
    torch.save({"hello": 1}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="is not a quivers checkpoint"):
        load(tmp_path / "other.pt")
    torch.save({"format": "quivers-checkpoint", "version": 99}, tmp_path / "future.pt")
    with pytest.raises(CheckpointError, match="version 99 checkpoint"):
        load(tmp_path / "future.pt")


def test_saving_bad_arguments():
    model = loads(SOURCE).morphism
    with pytest.raises(QuiversError, match="save needs a quivers Program"):
        save("x", "model")
    other = AutoNormalGuide(loads(SOURCE).morphism, observed_names={"y"})
    with pytest.raises(QuiversError, match="built for another model"):
        save("x", model, other)
    stray = torch.nn.Parameter(torch.zeros(3))
    with pytest.raises(QuiversError, match=r"parameters of shapes \[\(3,\)\] that belong to neither"):
        save("x", model, None, torch.optim.Adam([stray]))


def test_signature_names_every_site():
    sig = signature(loads(SOURCE).morphism)
    assert sig["name"] == "gmm" and sig["effects"] == ["Marginal", "Sample", "Score"]
    assert sig["sites"]["z"] == ["marginal", ["Item"], [N], "Categorical", "K"]
