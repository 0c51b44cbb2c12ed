"""The forms of programs the peer's documentation writes (issue #16):
a bind without `sample`, `score name = expr`, a `return` that does not fix
a covariate's plate. Each program here is written for these tests."""

from __future__ import annotations

import pytest
import torch

from quivers.dsl import dumps, loads, parse
from quivers.errors import QuiversError, QuiversTypeError, QVRSyntaxError, UnsupportedError

BARE = """
object Row : 5
object Grp : FinSet 2
program reg : Row -> Row
    slope <- Normal(0.0, 1.0)
    offset : Grp <- Normal(0.0, 2.0)
    noise <- HalfNormal(1.0)
    observe out : Row <- Normal(offset[grp_of] + slope * cov, noise)
    return slope
export reg
"""

KEYWORD = BARE.replace("    slope <-", "    sample slope <-").replace("    offset :", "    sample offset :").replace(
    "    noise <-", "    sample noise <-"
)


def test_a_bind_without_sample_is_a_sample() -> None:
    assert parse(BARE) == parse(KEYWORD)
    assert "    sample slope <- Normal(0.0, 1.0)" in dumps(parse(BARE)).splitlines()


def test_a_bind_without_sample_has_the_same_density() -> None:
    a, b = loads(BARE).morphism, loads(KEYWORD).morphism
    obs = {"out": torch.randn(5), "cov": torch.randn(5), "grp_of": torch.tensor([0, 1, 1, 0, 1])}
    lat = {"slope": torch.tensor(0.3), "offset": torch.tensor([0.1, -0.4]), "noise": torch.tensor(0.8)}
    torch.testing.assert_close(a.log_joint(None, obs, lat), b.log_joint(None, obs, lat))


def test_a_bind_without_a_family_is_a_located_syntax_error() -> None:
    with pytest.raises(QVRSyntaxError, match="line 5"):
        parse(BARE.replace("slope <- Normal(0.0, 1.0)", "slope <- "))


PENALIZED = """
object Arm : FinSet 3
program pen : Arm -> Arm
    sample eff : Arm <- Normal(0.0, 1.0)
    score centre = -10.0 * sum(eff) * sum(eff)
    observe y : Arm <- Normal(eff + 0.0 * centre, 1.0)
    return eff
export pen
"""


def test_score_adds_its_value_to_the_log_density_and_names_it() -> None:
    m = loads(PENALIZED).morphism
    eff, y = torch.tensor([0.5, -0.2, 0.4]), torch.tensor([0.0, 1.0, -1.0])
    got = m.log_joint(None, {"y": y}, {"eff": eff})
    normal = torch.distributions.Normal
    want = normal(0.0, 1.0).log_prob(eff).sum() - 10.0 * eff.sum() ** 2 + normal(eff, 1.0).log_prob(y).sum()
    torch.testing.assert_close(got, want)


def test_score_round_trips_through_the_printer() -> None:
    module = parse(PENALIZED)
    assert "    score centre = -10.0 * sum(eff) * sum(eff)" in dumps(module).splitlines()
    assert parse(dumps(module)) == module


def test_a_score_name_defined_twice_is_a_located_error() -> None:
    with pytest.raises(QuiversTypeError, match=r"line 5.*`eff` is defined twice"):
        loads(PENALIZED.replace("score centre", "score eff"))


LINK = """
object Row : FinSet 4
object Val : Real 1
program link : Row -> Val
    sample a <- Normal(0.0, 1.0)
    let rate = exp(a * cov)
    observe n : Row <- Poisson(rate)
    return rate
export link
"""


def test_returning_a_let_does_not_make_its_covariate_one_number() -> None:
    role = loads(LINK).data["link"]["cov"]
    assert role.kind == "real" and role.index_set is not None
    m = loads(LINK).morphism
    cov = torch.tensor([0.0, 1.0, -1.0, 2.0])
    got = m.log_joint(None, {"n": torch.tensor([1.0, 0.0, 2.0, 3.0]), "cov": cov}, {"a": torch.tensor(0.5)})
    want = torch.distributions.Normal(0.0, 1.0).log_prob(torch.tensor(0.5)) + torch.distributions.Poisson(
        torch.exp(0.5 * cov)
    ).log_prob(torch.tensor([1.0, 0.0, 2.0, 3.0])).sum()
    torch.testing.assert_close(got, want)


PAIRED = """
object Site : FinSet 3
object Level : Real 1
object Spread : Real 1
program paired : Site -> Level * Spread
    sample lvl : Site <- Normal(0.0, 1.0)
    sample sd <- HalfNormal(1.0)
    observe y : Site <- Normal(lvl, sd)
    return (level: lvl, spread: sd)
export paired
"""


def test_a_labelled_tuple_returns_its_fields_side_by_side() -> None:
    m = loads(PAIRED).morphism
    torch.manual_seed(0)
    draws = m.sample()
    value = draws["_return"]
    assert value.shape == (3, 2)
    torch.testing.assert_close(value[:, 0], draws["lvl"])
    torch.testing.assert_close(value[:, 1], draws["sd"].expand(3))


def test_a_labelled_tuple_round_trips_through_the_printer() -> None:
    module = parse(PAIRED)
    assert "    return (level: lvl, spread: sd)" in dumps(module).splitlines()
    assert parse(dumps(module)) == module


@pytest.mark.parametrize(
    "change, message",
    [
        ("return (level: lvl, level: sd)", r"line 9, column 12: the label `level` is given twice"),
        ("return lvl", None),
    ],
)
def test_labelled_tuple_errors_are_located(change: str, message: str | None) -> None:
    text = PAIRED.replace("return (level: lvl, spread: sd)", change)
    if message is None:
        loads(text)
        bad = text.replace("    observe y : Site <- Normal(lvl, sd)", "    let both = (a: lvl, b: sd)\n    observe y : Site <- Normal(lvl, sd)")
        with pytest.raises(QuiversTypeError, match=r"line 8, column 16: the labelled tuple .* write it after `return`"):
            loads(bad)
    else:
        with pytest.raises(QuiversTypeError, match=message):
            loads(text)


CORR = """
object Dim : FinSet 3
program corr : Dim -> Dim
    sample conc <- HalfNormal(2.0)
    sample factor_l : Dim <- LKJCholesky(conc)
    return factor_l
export corr
"""


def test_a_square_matrix_family_on_one_set_is_a_matrix_on_that_set_twice() -> None:
    m = loads(CORR).morphism
    assert m.sites["factor_l"].shape == (3, 3)
    torch.manual_seed(1)
    draw = m.sample()
    lkj = torch.distributions.LKJCholesky(3, draw["conc"])
    want = torch.distributions.HalfNormal(2.0).log_prob(draw["conc"]) + lkj.log_prob(draw["factor_l"])
    torch.testing.assert_close(m.log_joint(None, {}, {k: draw[k] for k in ("conc", "factor_l")}), want.reshape(()))


def test_a_square_matrix_family_on_a_product_keeps_its_plate() -> None:
    text = CORR.replace("object Dim : FinSet 3", "object Dim : FinSet 3\nobject Grp : FinSet 2").replace(
        "factor_l : Dim <-", "factor_l : Grp * Dim * Dim <-"
    )
    assert loads(text).morphism.sites["factor_l"].shape == (2, 3, 3)


INDENTED = """
object Row : FinSet 4
object K : FinSet 2
program mix : Row -> Row
    sample loc : K <- Normal(0.0, 3.0)
    sample w : K <- HalfNormal(1.0)
    marginalize c : K <- Categorical(w)
        observe y : Row <- Normal(loc[c] + lift, 1.0)
    return loc
export mix
"""

BRACED = INDENTED.replace(
    "    marginalize c : K <- Categorical(w)\n        observe y : Row <- Normal(loc[c] + lift, 1.0)\n",
    "    marginalize c : K <- Categorical(w) in {\n        observe y : Row <- Normal(loc[c] + lift, 1.0)\n    }\n",
)


def test_a_braced_block_is_the_indented_block() -> None:
    assert "in {" in BRACED
    assert parse(BRACED) == parse(INDENTED)


def test_an_unclosed_braced_block_is_a_located_error() -> None:
    with pytest.raises(QVRSyntaxError, match="line 9, column 5: unexpected `return`; expected `}`"):
        parse(BRACED.replace("    }\n", ""))


def test_data_read_by_a_block_prior_lives_on_the_rows_of_its_body() -> None:
    text = INDENTED.replace("Categorical(w)", "Categorical(w * shift)")
    role = loads(text).data["mix"]["shift"]
    assert role.kind == "real" and role.index_set is not None


TABLE = """
object Leaf : FinSet 3
object Row : FinSet 2
object Obs : FinSet 4
program tree : Obs -> Obs
    sample split <- Beta(2.0, 2.0)
    let leaf = factor c : Leaf in {
        2 -> log(split),
        0 -> log(1.0 - split) + log(0.5),
        1 -> log(1.0 - split) + log(0.5),
    }
    sample rowfx : Row <- Normal(0.0, 1.0)
    let grid = factor r : Row, c : Leaf in
        rowfx[r] + leaf[c]
    let corner = grid[1, 2]
    observe y : Obs <- Normal(corner, 1.0)
    return grid
export tree
"""


def test_factor_tables_and_grids_have_the_values_they_name() -> None:
    m = loads(TABLE).morphism
    split, rowfx = torch.tensor(0.3), torch.tensor([0.5, -1.0])
    leaf = torch.stack([torch.log(1 - split) + torch.log(torch.tensor(0.5)), torch.log(1 - split) + torch.log(torch.tensor(0.5)), torch.log(split)])
    grid = rowfx[:, None] + leaf[None, :]
    draws = m.sample(latents={"split": split, "rowfx": rowfx})
    torch.testing.assert_close(draws["_return"], grid)
    y = torch.tensor([0.0, 1.0, -1.0, 2.0])
    normal = torch.distributions.Normal
    want = (torch.distributions.Beta(2.0, 2.0).log_prob(split) + normal(0.0, 1.0).log_prob(rowfx).sum()
            + normal(grid[1, 2], 1.0).log_prob(y).sum())
    torch.testing.assert_close(m.log_joint(None, {"y": y}, {"split": split, "rowfx": rowfx}), want)


def test_a_bare_binder_is_the_number_of_its_element() -> None:
    m = loads(TABLE.replace("rowfx[r] + leaf[c]", "rowfx[r] + 10.0 * c")).morphism
    rowfx = torch.tensor([0.5, -1.0])
    grid = m.sample(latents={"split": torch.tensor(0.3), "rowfx": rowfx})["_return"]
    torch.testing.assert_close(grid, rowfx[:, None] + 10.0 * torch.arange(3.0)[None, :])


def test_factor_expressions_round_trip_through_the_printer() -> None:
    module = parse(TABLE)
    text = dumps(module)
    assert "    let grid = factor r : Row, c : Leaf in rowfx[r] + leaf[c]" in text.splitlines()
    assert parse(text) == module


@pytest.mark.parametrize(
    "old, new, message",
    [
        ("        1 -> log(1.0 - split) + log(0.5),\n", "", r"line 7, column 16: .*no case for `1`"),
        ("        1 -> log(1.0 - split)", "        0 -> log(1.0 - split)", r"line 7, .*the case `0` is given twice"),
        ("        2 -> log(split)", "        3 -> log(split)", r"line 7, .*the case `3` is not an element of `Leaf`"),
        ("rowfx[r] + leaf[c]", "rowfx[c] + leaf[c]", r"line 14, column 9: `rowfx\[c\]` reads `rowfx` on `Leaf`, but it lives on `Row`"),
        ("rowfx[r] + leaf[c]", "rowfx[r, c] + leaf[c]", r"line 14, column 9: `rowfx\[r, c\]` reads `rowfx` on `Row \* Leaf`"),
    ],
)
def test_factor_expression_mistakes_are_located(old: str, new: str, message: str) -> None:
    assert old in TABLE
    with pytest.raises(QuiversError, match=message):
        loads(TABLE.replace(old, new))


def test_a_factor_table_of_many_cells_is_one_vectorized_value() -> None:
    # 10000 cells: once refused as too many to write out cell by cell
    text = TABLE.replace("object Row : FinSet 2", "object Row : FinSet 2000").replace(
        "object Leaf : FinSet 3", "object Leaf : FinSet 3\nobject Big : FinSet 5"
    ).replace("factor r : Row, c : Leaf in\n        rowfx[r] + leaf[c]", "factor r : Row, b : Big in rowfx[r] * b")
    text = text.replace("grid[1, 2]", "grid[1999, 4]")
    m = loads(text).morphism
    rowfx = torch.randn(2000)
    draws = m.sample(latents={"split": torch.tensor(0.3), "rowfx": rowfx})
    torch.testing.assert_close(draws["_return"], rowfx[:, None] * torch.arange(5.0)[None, :])


def _density(family: str, y: torch.Tensor) -> torch.Tensor:
    text = f"""
object Row : FinSet 3
object K : FinSet 2
program fam : Row -> Row
    sample w : K <- HalfNormal(1.0)
    sample s <- HalfNormal(1.0)
    observe y : Row <- {family}
    return y
export fam
"""
    return loads(text).morphism.log_joint(None, {"y": y}, {"w": torch.tensor([0.3, 0.7]), "s": torch.tensor(0.8)})


@pytest.mark.parametrize(
    "spelled, canonical",
    [
        ("Restrict(Normal(0.2, s), 0.0, 1.0)", "Truncated(Normal(0.2, s), 0.0, 1.0)"),
        ("Truncate(Normal(0.2, s), 0.0)", "Truncated(Normal(0.2, s), low=0.0)"),
        ("Truncated(Normal(loc=0.2, scale=s), low=0.0)", "Truncated(Normal(0.2, s), low=0.0)"),
        ("Mixture(w, [Normal(0.0, s), Logistic(1.0, 2.0)])", "Mixture(w, Normal(0.0, s), Logistic(1.0, 2.0))"),
        ("Mixture(w, components=[Normal(0.0, s), Logistic(1.0, 2.0)])", "Mixture(w, Normal(0.0, s), Logistic(1.0, 2.0))"),
    ],
)
def test_the_peer_spellings_of_families_mean_ours(spelled: str, canonical: str) -> None:
    y = torch.tensor([0.1, 0.5, 0.9])
    torch.testing.assert_close(_density(spelled, y), _density(canonical, y))
    text = f"object Row : FinSet 1\nprogram p : Row -> Row\n    observe y : Row <- {spelled}\n"
    assert parse(dumps(parse(text))) == parse(text)
    assert spelled in dumps(parse(text))


def test_a_spread_dirichlet_is_its_vector() -> None:
    text = """
object K : FinSet 3
program d : K -> K
    sample p <- Dirichlet(1.0, 2.0, 3.0) [over=K]
    return p
export d
"""
    p = torch.tensor([0.2, 0.3, 0.5])
    got = loads(text).morphism.log_joint(None, {}, {"p": p})
    torch.testing.assert_close(got, torch.distributions.Dirichlet(torch.tensor([1.0, 2.0, 3.0])).log_prob(p))
    with pytest.raises(QuiversError, match=r"line 4, column 27: .*has 3 elements; it has 4 entries"):
        loads(text.replace("Dirichlet(1.0, 2.0, 3.0)", "Dirichlet(1.0, 2.0, 3.0, 4.0)"))


def test_keywords_in_a_function_call_are_a_located_error() -> None:
    with pytest.raises(QuiversTypeError, match=r"line 3, column 35: `exp` takes no keyword arguments"):
        loads("object Row : FinSet 1\nprogram p : Row -> Row\n    observe y : Row <- Normal(exp(x=1.0), 1.0)\n")


def test_a_continuous_prior_on_a_block_is_a_located_error_that_names_the_fix() -> None:
    text = BRACED.replace("Categorical(w)", "ContinuousBernoulli(0.3)")
    with pytest.raises(QuiversTypeError, match=r"line 7, column 26: .*`ContinuousBernoulli`, a continuous family") as info:
        loads(text)
    assert "ZeroInflatedPoisson" in str(info.value)


def test_an_lkj_concentration_out_of_range_is_a_non_finite_density_not_a_torch_error() -> None:
    # a NUTS trajectory can make the concentration NaN; the sampler needs a divergence, not a ValueError
    from quivers.distributions.families import _make_lkj

    before = torch.distributions.Distribution._validate_args
    d = _make_lkj({"dim": torch.tensor(3), "concentration": torch.tensor(float("nan"))})
    assert not torch.isfinite(d.log_prob(torch.eye(3))).all()
    assert torch.distributions.Distribution._validate_args == before  # the default is left as it was
