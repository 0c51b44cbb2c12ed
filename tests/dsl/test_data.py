"""Data: names a program reads but never defines, and `data` declarations.

The checker infers each data name's role from its use; the runtime
validates every data name (present, shape, dtype, finite, index range) and
names it and the line that reads it.
"""

from __future__ import annotations

import pytest
import torch

from torch.distributions import HalfNormal as THalfNormal, Normal as TNormal

from quivers.distributions import HalfNormal, Normal
from quivers.dsl import loads
from quivers.dsl.checker import check
from quivers.dsl.parser import parse
from quivers.dsl.printer import dumps
from quivers.errors import DataError, QuiversError, QuiversTypeError, ShapeError

SCHOOLS = """
object School : FinSet 3
program es : School -> School
    sample mu <- Normal(0.0, 5.0)
    sample tau <- HalfNormal(5.0)
    sample theta : School <- Normal(mu, tau)
    observe y : School <- Normal(theta, sigma_j)
    return theta
export es
"""

REGRESSION = """
object Item : FinSet 4
object G : FinSet 2
program reg : Item -> Item
    sample alpha <- Normal(0.0, 1.0)
    sample beta <- Normal(0.0, 1.0)
    sample a : G <- Normal(0.0, 1.0)
    sample sigma <- HalfNormal(1.0)
    let mu = alpha + beta * x + a[g] + shift
    observe y : Item <- Normal(mu, sigma)
    factor -shift ^ 2
    return y
export reg
"""


def _roles(text: str, program: str) -> dict[str, str]:
    return {n: r.describe().split(" (")[0] for n, r in check(parse(text), text).data[program].items()}


def test_roles_are_inferred_from_use() -> None:
    assert _roles(SCHOOLS, "es") == {"sigma_j": "data sigma_j : School"}
    # through a let: the plate of the step that reads it; as a subscript of a
    # value on G: an index map into G; `shift` is also read by a scalar step
    assert _roles(REGRESSION, "reg") == {"x": "data x : Item", "g": "data g : Item -> G", "shift": "data shift"}
    grouped = loads((
        "object Item : FinSet 4\nobject G : FinSet 2\nobject K : FinSet 2\nprogram p : Item -> Item\n"
        "    sample w : G <- HalfNormal(1.0)\n    marginalize z : K <- Categorical(w) [over=G]\n"
        "        observe y : Item <- Normal(z, 1.0) [via=group]\n"
    ))
    assert grouped.p.sites["group"].kind == "index" and grouped.p.index_maps["group"][1].name == "G"
    declared = loads(grouped.source.replace("    sample w", "    data group : Item -> G\n    sample w"))
    assert declared.p.index_maps["group"] == grouped.p.index_maps["group"]
    obs = {"y": torch.tensor([0.5, -1.0, 0.0, 2.0]), "group": torch.tensor([0, 1, 1, 0])}
    lat = {"w": torch.tensor([[1.0, 2.0], [3.0, 1.0]])}
    torch.testing.assert_close(declared.p.log_joint(None, obs, lat), grouped.p.log_joint(None, obs, lat))


def test_declared_data_and_its_round_trip() -> None:
    text = (
        "object Item : FinSet 4\nobject G : FinSet 2\n\nprogram p : Item -> Item\n    data s\n    data x : Item\n"
        "    data g : Item -> G\n    sample a : G <- Normal(0.0, 1.0)\n"
        "    observe y : Item <- Normal(a[g] + x, s)\n"
    )
    assert dumps(parse(text)) == text
    assert _roles(text, "p") == {"s": "data s", "x": "data x : Item", "g": "data g : Item -> G"}
    p = loads(text).p
    assert [p.sites[n].kind for n in ("s", "x", "g")] == ["data", "data", "index"]


@pytest.mark.parametrize(
    "body, message",
    [
        # a name used on two plates cannot be one covariate
        ("    sample a : G <- Normal(u, 1.0)\n    observe y : Item <- Normal(u, 1.0)\n",
         "cannot infer the role of data `u`.*steps on G and Item read it.*declare it"),
        ("    sample a : G <- Normal(0.0, 1.0)\n    observe y : Item <- Normal(a[g] + g, 1.0)\n",
         "cannot infer the role of data `g`.*both as an index and as a number"),
        ("    data a : Item\n    sample a : G <- Normal(0.0, 1.0)\n", "`a` is defined twice in program `p`; it is already defined by `data a`"),
        ("    sample k : G <- Normal(0.0, 1.0)\n    marginalize z : G <- Categorical(k)\n        data d : Item\n",
         "`data d` is inside the block of `z`"),
    ],
    ids=["two-plates", "index-and-number", "shadows-a-site", "in-a-block"],
)
def test_unclear_or_clashing_data_is_a_located_error(body: str, message: str) -> None:
    text = "object Item : FinSet 4\nobject G : FinSet 2\nprogram p : Item -> Item\n" + body
    with pytest.raises(QuiversTypeError, match=message) as info:
        loads(text)
    assert info.value.span is not None


def test_data_takes_part_in_the_density_and_never_gets_one() -> None:
    m = loads(SCHOOLS).es
    assert m.sites["sigma_j"].kind == "data" and "sigma_j" not in {s.name for s in m.latent_sites()}
    sigma, y = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([0.5, -1.0, 2.0])
    lat = {"mu": torch.tensor(0.3), "tau": torch.tensor(1.5), "theta": torch.tensor([0.1, 0.2, -0.3])}
    got = m.log_joint(None, {"y": y, "sigma_j": sigma[None]}, lat)  # the peer's (1, N) is one data set
    want = (
        TNormal(0.0, 5.0).log_prob(lat["mu"]) + THalfNormal(5.0).log_prob(lat["tau"])
        + TNormal(lat["mu"], lat["tau"]).log_prob(lat["theta"]).sum() + TNormal(lat["theta"], sigma).log_prob(y).sum()
    )
    torch.testing.assert_close(got, want)
    draws = m.sample(None, (5,), observations={"sigma_j": sigma})
    assert "sigma_j" not in draws and draws["y"].shape == (5, 3)


@pytest.mark.parametrize(
    "change, error, message",
    [
        ({"x": None}, DataError, r"data `x` \(on Item\) is missing from the observations"),
        ({"x": torch.zeros(3)}, ShapeError, r"data `x` has shape \(3,\); it is on Item, shape \(4,\)"),
        ({"x": torch.zeros(2, 4)}, ShapeError, r"data `x` has shape \(2, 4\)"),
        ({"x": torch.tensor([0.0, float("nan"), 0.0, 0.0])}, DataError, r"data `x` has a non-finite value at index \(1,\)"),
        ({"g": torch.tensor([0, 1, 2, 0])}, DataError, r"index map `g` has value 2 at index \(2,\), outside \[0, 2\) of `G`"),
        ({"g": None}, DataError, r"index map `g` \(Item -> G\) is missing from the observations"),
        ({"shift": torch.zeros(4)}, ShapeError, r"data `shift` has shape \(4,\); it is one number"),
    ],
    ids=["missing", "short", "batched", "nan", "index-range", "index-missing", "scalar-shape"],
)
def test_bad_data_names_itself_and_the_line_that_reads_it(change, error, message) -> None:
    p = loads(REGRESSION).reg
    obs = {"y": torch.zeros(4), "x": torch.arange(4.0), "g": torch.tensor([0, 1, 1, 0]), "shift": 0.5}
    obs.update(change)
    obs = {k: v for k, v in obs.items() if v is not None}
    lat = {"alpha": 0.0, "beta": 1.0, "a": torch.zeros(2), "sigma": 1.0}
    with pytest.raises(error, match=message) as info:
        p.log_joint(None, obs, lat)
    assert info.value.span is not None and info.value.span.line == 9  # `let mu = ...` reads it
    assert "let mu = alpha + beta * x" in str(info.value)


def test_data_given_as_a_latent_or_missing_is_named() -> None:
    from quivers.categories import FinSet
    from quivers.programs import Program, data, observe, sample, var

    Item = FinSet("Item", 2)
    p = Program("p", Item, Item, [
        sample("scales", Item, HalfNormal(1.0)), data("scale", Item),
        observe("y", Item, Normal(0.0, var("scale") * var("scales"))),
    ])
    with pytest.raises(DataError, match=r"data `scale` \(on Item\) is given in latents; data is no random variable"):
        p.log_joint(None, {"y": torch.zeros(2)}, {"scale": torch.ones(2), "scales": torch.ones(2)})
    with pytest.raises(DataError, match=r"missing from the observations \(did you mean the site `scales`\?\) "
                       r"\(`scale` is read by `observe y`\)"):
        p.log_joint(None, {"y": torch.zeros(2)}, {"scales": torch.ones(2)})


def test_data_on_a_subsampled_plate_is_given_per_mini_batch() -> None:
    prog = loads(REGRESSION.replace("    sample a : G <- Normal(0.0, 1.0)\n", "").replace(" + a[g]", "")).reg
    mini = prog.subsample({"Item": 2})
    lat = {"alpha": torch.tensor(0.1), "beta": torch.tensor(0.5), "sigma": torch.tensor(1.0)}
    obs = {"y": torch.tensor([0.5, -1.0, 0.0, 2.0]), "x": torch.arange(4.0), "shift": torch.tensor(0.2)}
    full = prog.log_joint(None, obs, lat)
    halves = [mini.log_joint(None, {"y": obs["y"][i], "x": obs["x"][i], "shift": obs["shift"]}, lat)
              for i in (slice(0, 2), slice(2, 4))]
    # each half scaled by N / b = 2; their mean is the full log joint (the factor on `shift` is not per row)
    torch.testing.assert_close((halves[0] + halves[1]) / 2, full)
    with pytest.raises(ShapeError, match=r"data `x` has shape \(4,\); it is on Item, shape \(2,\)"):
        mini.log_joint(None, {"y": obs["y"][:2], "x": obs["x"], "shift": obs["shift"]}, lat)


def test_data_is_stan_data() -> None:
    from quivers.emit import to_stan
    from quivers.emit.stan import stan_data

    p = loads(REGRESSION).reg
    text = to_stan(p)
    data_block = text.split("data {", 1)[1].split("}", 1)[0]
    for line in ("vector[Item] x;", "real shift;", "array[Item] int<lower=1, upper=G> g;"):
        assert line in data_block, text
    obs = {"y": torch.zeros(4), "x": torch.arange(4.0), "g": torch.tensor([0, 1, 1, 0]), "shift": 0.5}
    d = stan_data(p, obs)
    assert d["x"] == [0.0, 1.0, 2.0, 3.0] and d["shift"] == 0.5 and d["g"] == [1, 2, 2, 1]
    with pytest.raises(DataError, match="data `x` is missing from the observations"):
        stan_data(p, {k: v for k, v in obs.items() if k != "x"})


def test_data_is_drawn_as_data() -> None:
    from quivers.programs import to_dot

    dot = to_dot(loads(SCHOOLS).es)
    assert '"sigma_j" [label="data sigma_j : School"];' in dot and '"sigma_j" -> "y";' in dot
