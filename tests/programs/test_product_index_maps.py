"""Index maps on a product domain: ``index animal : M * T -> Animal``.

Observations on the plate ``M * T`` are grouped as they are, without
flattening: the log density is checked against brute-force enumeration in
float64, and against the same model on the flattened plate ``MT``.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from quivers.categories import FinFunction, FinSet
from quivers.distributions import Categorical, HalfNormal, Normal
from quivers.dsl import loads
from quivers.errors import DataError, QuiversTypeError, ShapeError
from quivers.inference import infer_discrete
from quivers.programs import Program, index_map, marginalize, observe, sample, var
from quivers.programs.named import Value, scatter_sum

from tests.programs.brute import lse

D = torch.float64
SOURCE = """
object M : FinSet 3
object T : FinSet 2
object Animal : FinSet 4
object K : FinSet 2
program occupancy : M -> M [effects=[Sample, Score, Marginal]]
    index animal : M * T -> Animal
    sample w : Animal <- HalfNormal(1.0)
    sample mu : K <- Normal(0.0, 3.0)
    sample b : Animal <- Normal(0.0, 1.0)
    sample c : M <- Normal(0.0, 1.0)
    marginalize z : K <- Categorical(w) [over=Animal]
        observe y : M * T <- Normal(mu[z] + b + c, 0.7) [via=animal]
"""

FLAT = """
object MT : FinSet 6
object M : FinSet 3
object Animal : FinSet 4
object K : FinSet 2
program occupancy : M -> M
    index animal : MT -> Animal
    index month : MT -> M
    sample w : Animal <- HalfNormal(1.0)
    sample mu : K <- Normal(0.0, 3.0)
    sample b : Animal <- Normal(0.0, 1.0)
    sample c : M <- Normal(0.0, 1.0)
    marginalize z : K <- Categorical(w) [over=Animal]
        observe y : MT <- Normal(mu[z] + b[animal] + c[month], 0.7) [via=animal]
"""

ANIMAL = torch.tensor([[0, 1], [1, 3], [0, 0]])  # Animal 2 is never seen: an empty fibre


def _python() -> Program:
    M, T, A, K = FinSet("M", 3), FinSet("T", 2), FinSet("Animal", 4), FinSet("K", 2)
    return Program("occupancy", M, M, [
        index_map("animal", M * T, A),
        sample("w", A, HalfNormal(1.0)),
        sample("mu", K, Normal(0.0, 3.0)),
        sample("b", A, Normal(0.0, 1.0)),
        sample("c", M, Normal(0.0, 1.0)),
        marginalize("z", K, Categorical(var("w")), [
            observe("y", M * T, Normal(var("mu")[var("z")] + var("b") + var("c"), 0.7), via="animal"),
        ], over=A),
    ])


def _point(seed: int) -> tuple[dict, dict]:
    g = torch.Generator().manual_seed(seed)
    latents = {
        "w": torch.rand(4, 2, generator=g, dtype=D) + 0.1,
        "mu": torch.randn(2, generator=g, dtype=D) * 2,
        "b": torch.randn(4, generator=g, dtype=D),
        "c": torch.randn(3, generator=g, dtype=D),
    }
    return {"y": torch.randn(3, 2, generator=g, dtype=D), "animal": ANIMAL}, latents


def _brute(obs: dict, lat: dict) -> float:
    """Sum over all K^|Animal| assignments of the animals' latents, in loops."""
    w, mu, b, c = (lat[k].tolist() for k in ("w", "mu", "b", "c"))
    y, animal = obs["y"].tolist(), obs["animal"].tolist()

    def normal(x, m, s):
        return -0.5 * ((x - m) / s) ** 2 - math.log(s) - 0.5 * math.log(2 * math.pi)

    prior = sum(math.log(2) + normal(x, 0, 1) for row in w for x in row)
    prior += sum(normal(x, 0, 3) for x in mu) + sum(normal(x, 0, 1) for x in b + c)
    terms = []
    for z in itertools.product(range(2), repeat=4):
        t = sum(math.log(w[a][z[a]] / sum(w[a])) for a in range(4))
        for m, tt in itertools.product(range(3), range(2)):
            a = animal[m][tt]
            t += normal(y[m][tt], mu[z[a]] + b[a] + c[m], 0.7)
        terms.append(t)
    return prior + lse(terms)


@pytest.mark.parametrize("build", [lambda: loads(SOURCE).morphism, _python], ids=["qvr", "python"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_log_density_matches_brute_force_enumeration(build, seed):
    obs, lat = _point(seed)
    got = build().log_joint(None, obs, lat)
    assert got.dtype == D
    assert abs(float(got) - _brute(obs, lat)) < 1e-10


@pytest.mark.parametrize("seed", [0, 1])
def test_the_flattened_plate_gives_the_same_log_density(seed):
    obs, lat = _point(seed)
    flat = {"y": obs["y"].reshape(6), "animal": ANIMAL.reshape(6), "month": torch.arange(3).repeat_interleave(2)}
    want = loads(FLAT).morphism.log_joint(None, flat, lat)
    got = loads(SOURCE).morphism.log_joint(None, obs, lat)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)


def test_gradients_match_the_flattened_model():
    obs, lat = _point(3)
    flat = {"y": obs["y"].reshape(6), "animal": ANIMAL.reshape(6), "month": torch.arange(3).repeat_interleave(2)}
    grads = []
    for source, data in ((SOURCE, obs), (FLAT, flat)):
        leaves = {k: v.clone().requires_grad_() for k, v in lat.items()}
        loads(source).morphism.log_joint(None, data, leaves).backward()
        grads.append({k: v.grad for k, v in leaves.items()})
    for k in lat:
        torch.testing.assert_close(grads[0][k], grads[1][k], rtol=0, atol=1e-12)


def test_the_group_posterior_matches_brute_force():
    obs, lat = _point(4)
    probs = infer_discrete(loads(SOURCE).morphism, {k: v[None] for k, v in lat.items()}, None, obs)["z"].probs
    # P(z_a = k | y): only animal a's rows depend on z_a.
    w, mu, b, c = lat["w"], lat["mu"], lat["b"], lat["c"]
    for a in range(4):
        logp = torch.log(w[a] / w[a].sum()).clone()
        for m, t in itertools.product(range(3), range(2)):
            if ANIMAL[m, t] == a:
                logp += torch.distributions.Normal(mu + b[a] + c[m], 0.7).log_prob(obs["y"][m, t])
        torch.testing.assert_close(probs[a].to(D), torch.softmax(logp, 0), rtol=0, atol=1e-6)


def test_draws_are_on_the_product_plate():
    out = loads(SOURCE).morphism.sample(None, sample_shape=(5,), observations={"animal": ANIMAL})
    assert out["y"].shape == (5, 3, 2) and out["z"].shape == (5, 4)


def test_scatter_sum_along_a_product_domain_is_the_flattened_scatter():
    M, T, A = FinSet("M", 3), FinSet("T", 2), FinSet("Animal", 4)
    v = torch.randn(5, 3, 2, dtype=D)  # axes (K, M, T)
    f = FinFunction(M * T, A, ANIMAL.reshape(-1))
    got = scatter_sum(Value(v, ("K", "M", "T")), f)
    want = scatter_sum(Value(v.reshape(5, 6), ("K", "MT")), FinFunction(FinSet("MT", 6), A, ANIMAL.reshape(-1)))
    assert got.dims == ("K", "Animal")
    torch.testing.assert_close(got.tensor, want.tensor, rtol=0, atol=0)
    # the factors in the other order on the value: still read row-major in (M, T)
    swapped = scatter_sum(Value(v.permute(2, 0, 1), ("T", "K", "M")), f)
    assert swapped.dims == ("Animal", "K")
    torch.testing.assert_close(swapped.tensor.T, want.tensor, rtol=0, atol=0)


@pytest.mark.parametrize(
    "animal, error, message",
    [
        (ANIMAL.reshape(6), ShapeError, r"index map `animal` has shape \(6,\); it needs one entry per element of `M\*T`, shape \(3, 2\)"),
        (ANIMAL.T, ShapeError, r"index map `animal` has shape \(2, 3\)"),
        (ANIMAL + 2, DataError, r"index map `animal` has value 5 at index \(1, 1\), outside \[0, 4\) of `Animal`"),
        (ANIMAL - 1, DataError, r"index map `animal` has value -1 at index \(0, 0\)"),
        (ANIMAL * 0.5, DataError, "index map `animal`"),
    ],
)
def test_bad_index_maps_are_named_errors(animal, error, message):
    obs, lat = _point(0)
    with pytest.raises(error, match=message):
        loads(SOURCE).morphism.log_joint(None, {**obs, "animal": animal}, lat)


def test_a_missing_index_map_names_its_product_domain():
    obs, lat = _point(0)
    with pytest.raises(DataError, match=r"index map `animal` \(M\*T -> Animal\) is missing from the observations"):
        loads(SOURCE).morphism.log_joint(None, {"y": obs["y"]}, lat)


def test_an_observation_off_the_maps_domain_is_refused():
    source = SOURCE.replace("observe y : M * T <-", "observe y : M <-").replace("+ b + c", "+ c")
    with pytest.raises(ShapeError, match=r"index map `animal` has domain `M\*T`, but `y` is on `M`"):
        loads(source)


def test_subsampling_a_factor_of_the_maps_domain_is_refused():
    from quivers.programs.subsample import subsample

    with pytest.raises(QuiversTypeError, match="index map `animal` groups rows of the subsampled plate `T`"):
        subsample(loads(SOURCE).morphism, {"T": 1})
