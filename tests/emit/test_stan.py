"""Stan emission: the seed's two programs, a regression and eight schools
(structure of the text, and the data dict), and clear errors for what Stan
cannot say.

No Stan toolchain runs in CI, so these tests read the emitted text. The
same programs were compiled with Stan (pystan 3.10, Stan 2.36) and their
log densities matched ``Program.log_joint`` up to a constant at random
parameter points; ``test_stan_text_is_well_formed`` and the per-model
assertions pin down that text.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import torch

from quivers.categories import FinSet
from quivers.distributions import Categorical, HalfCauchy, MultivariateNormal, Normal, Poisson, Uniform
from quivers.dsl import load, loads
from quivers.emit import stan_data, to_stan
from quivers.errors import QuiversTypeError, UnsupportedError
from quivers.programs import Program, let, marginalize, observe, sample, var

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

REGRESSION = """
object N : FinSet 25
program regression : N -> N
    sample x : N <- Normal(0.0, 10.0)
    sample alpha <- Normal(0.0, 10.0)
    sample beta <- Normal(0.0, 10.0)
    sample sigma <- HalfNormal(1.0)
    observe y : N <- Normal(alpha + beta * x, sigma)
    return y
export regression
"""

EIGHT_SCHOOLS = """
object J : FinSet 8
program eight_schools : J -> J
    sample sigma : J <- HalfNormal(20.0)
    sample mu <- Normal(0.0, 5.0)
    sample tau <- HalfCauchy(5.0)
    sample theta_trans : J <- Normal(0.0, 1.0)
    let theta = mu + tau * theta_trans
    observe y : J <- Normal(theta, sigma)
export eight_schools
"""

BLOCKS = ["functions", "data", "transformed data", "parameters", "transformed parameters", "model"]


def blocks(code: str) -> dict[str, list[str]]:
    """The top-level blocks of a Stan program and their stripped lines."""
    out: dict[str, list[str]] = {}
    current, depth = None, 0
    for line in code.splitlines():
        text = line.strip()
        if depth == 0 and text.endswith("{"):
            current = text[:-1].strip()
            out[current] = []
        elif current is not None and not (depth == 1 and text == "}"):
            out[current].append(text)
        depth += text.count("{") - text.count("}")
    return out


def assert_well_formed(code: str) -> None:
    """Balanced braces and parentheses, blocks in Stan's order, each line a
    statement, a declaration, a loop head, a brace or a comment."""
    assert code.count("{") == code.count("}")
    assert code.count("(") == code.count(")") and code.count("[") == code.count("]")
    found = list(blocks(code))
    assert found == [b for b in BLOCKS if b in found]
    assert found[found[0] == "functions"] == "data" and found[-1] == "model"
    for line in code.splitlines()[1:]:
        text = line.strip()
        assert (
            not text
            or text.startswith("//")
            or text.endswith((";", "{", "}"))
        ), f"not a statement: {line!r}"
        assert "<vector>" not in text and "__" not in text


@pytest.fixture(scope="module")
def gmm():
    return load(EXAMPLES / "gmm.qvr").morphism


@pytest.fixture(scope="module")
def grouped():
    return load(EXAMPLES / "grouped_mixture.qvr").morphism


def test_gmm_declares_sizes_data_and_constrained_parameters(gmm):
    b = blocks(to_stan(gmm))
    assert b["data"] == ["int<lower=0> Item;", "int<lower=0> K;", "vector[Item] y;"]
    assert b["parameters"] == ["vector<lower=0>[K] probs;", "vector[K] mu_k;", "vector<lower=0>[K] sd_k;"]


def test_gmm_marginalizes_each_row_with_log_sum_exp(gmm):
    model = "\n".join(blocks(to_stan(gmm))["model"])
    assert "mu_k ~ normal(0.0, 5.0);" in model and "sd_k ~ normal(0, 1.0);" in model
    loop = model[model.index("for (i in 1:Item) {"):]
    assert "for (k in 1:K) {" in loop
    assert "lw_z[k] = log(probs[k]);" in loop
    assert "ll_z[k] = normal_lpdf(y[i] | mu_k[k], sd_k[k]);" in loop
    assert "target += log_sum_exp(log_softmax(lw_z) + ll_z);" in loop
    assert model.count("target +=") == 1


def test_grouped_mixture_accumulates_per_group(grouped):
    code = to_stan(grouped)
    b = blocks(code)
    assert "array[Item] int<lower=1, upper=G> group;" in b["data"]
    assert "matrix<lower=0>[G, K] probs;" in b["parameters"]
    model = b["model"]
    assert "to_vector(probs) ~ normal(0, 1.0);" in model
    assert "array[G] vector[K] ll_z = rep_array(rep_vector(0, K), G);" in model
    assert "lw_z[g, k] = log(probs[g, k]);" in model
    assert "ll_z[group[i], k] += normal_lpdf(y[i] | mu_k[k], sd_k[k]);" in model
    assert "target += log_sum_exp(log_softmax(lw_z[g]) + ll_z[g]);" in model
    # the sum over groups, not rows: the target statement sits in the loop over G
    text = "\n".join(model)
    assert re.search(r"for \(g in 1:G\) \{\n\s*target \+= log_sum_exp", code)
    assert "group ~" not in text  # an index map is data, never scored


def test_per_row_and_grouped_marginalization_differ(gmm, grouped):
    assert "ll_z[group[i], k]" not in to_stan(gmm)
    assert "for (i in 1:Item) {\n    vector[K] lw_z;" in to_stan(gmm)


def test_regression_is_vectorized_with_the_covariate_as_data():
    prog = loads(REGRESSION).morphism
    code = to_stan(prog, given=["x"])
    b = blocks(code)
    assert b["data"] == ["int<lower=0> N;", "vector[N] x;", "vector[N] y;"]
    assert b["parameters"] == ["real alpha;", "real beta;", "real<lower=0> sigma;"]
    assert "y ~ normal(alpha + beta * x, sigma);" in b["model"]
    assert "x ~ normal(0.0, 10.0);" in b["model"]
    # without `given`, the covariate is a parameter like any other sample site
    assert "vector[N] x;" in blocks(to_stan(prog))["parameters"]


def test_eight_schools_has_a_transformed_parameter():
    prog = loads(EIGHT_SCHOOLS).morphism
    b = blocks(to_stan(prog, given=["sigma"]))
    assert "vector<lower=0>[J] sigma;" in b["data"]
    assert b["transformed parameters"] == ["vector[J] theta;", "theta = mu + tau * theta_trans;"]
    assert "tau ~ cauchy(0, 5.0);" in b["model"] and "y ~ normal(theta, sigma);" in b["model"]


def test_a_tensor_constant_becomes_data():
    J = FinSet("J", 3)
    sigma = torch.tensor([1.0, 2.0, 3.0])
    prog = Program("p", J, J, [
        sample("mu", None, Normal(0.0, 5.0)),
        sample("tau", None, HalfCauchy(5.0)),
        observe("y", J, Normal(var("mu"), var("tau") * sigma)),
    ])
    code = to_stan(prog)
    assert "vector[J] y_scale;" in blocks(code)["data"]
    assert "y ~ normal(mu, y_scale * tau);" in code
    data = stan_data(prog, {"y": torch.zeros(3)})
    assert data == {"J": 3, "y_scale": [1.0, 2.0, 3.0], "y": [0.0, 0.0, 0.0]}


@pytest.mark.parametrize("source", ["gmm", "grouped", "regression", "eight"])
def test_stan_text_is_well_formed(source, gmm, grouped):
    prog = {"gmm": gmm, "grouped": grouped,
            "regression": loads(REGRESSION).morphism, "eight": loads(EIGHT_SCHOOLS).morphism}[source]
    assert_well_formed(to_stan(prog))


def test_stan_data_is_one_based_for_index_maps(grouped):
    group = torch.tensor([0, 19] + [3] * 998)
    y = torch.randn(1, 1000)
    data = stan_data(grouped, {"y": y, "group": group})
    assert data["Item"] == 1000 and data["G"] == 20 and data["K"] == 3
    assert data["group"][:3] == [1, 20, 4]
    assert len(data["y"]) == 1000  # the leading batch axis of size one is dropped


def test_stan_data_for_a_given_covariate():
    prog = loads(REGRESSION).morphism
    data = stan_data(prog, {"x": torch.arange(25.0), "y": torch.zeros(25)})
    assert data["x"][:3] == [0.0, 1.0, 2.0] and data["N"] == 25


def test_categorical_and_count_data_are_integers():
    Item, K = FinSet("Item", 3), FinSet("K", 2)
    prog = Program("p", Item, Item, [
        sample("w", K, HalfCauchy(1.0)),
        sample("rate", None, HalfCauchy(1.0)),
        observe("c", Item, Categorical(var("w"))),
        observe("n", Item, Poisson(var("rate"))),
    ])
    code = to_stan(prog)
    assert "array[Item] int<lower=1, upper=K> c;" in code and "array[Item] int<lower=0> n;" in code
    assert "c ~ categorical(w / sum(w));" in code and "n ~ poisson(rate);" in code
    data = stan_data(prog, {"c": torch.tensor([0, 1, 1]), "n": torch.tensor([0.0, 3.0, 2.0])})
    assert data["c"] == [1, 2, 2] and data["n"] == [0, 3, 2]


def test_nested_per_row_blocks_nest_their_loops():
    Item, K, L = FinSet("Item", 4), FinSet("K", 2), FinSet("L", 3)
    z1, z2 = var("z1"), var("z2")
    prog = Program("nested", Item, Item, [
        sample("w1", K, HalfCauchy(1.0)),
        sample("w2", K * L, HalfCauchy(1.0)),
        sample("mu", K * L, Normal(0.0, 1.0)),
        marginalize("z1", K, Categorical(var("w1")), [
            marginalize("z2", L, Categorical(var("w2")[z1]), [
                observe("y", Item, Normal(var("mu")[z1, z2], 1.0)),
            ]),
        ]),
    ])
    code = to_stan(prog)
    assert_well_formed(code)
    assert "lw_z2[l] = log(w2[k, l]);" in code
    assert "ll_z2[l] = normal_lpdf(y[i] | mu[k, l], 1.0);" in code
    assert "ll_z1[k] += log_sum_exp(log_softmax(lw_z2) + ll_z2);" in code


def test_half_families_in_a_mixture_keep_their_log_two():
    Item, K = FinSet("Item", 4), FinSet("K", 2)
    prog = Program("p", Item, Item, [
        sample("s", K, HalfCauchy(1.0)),
        marginalize("z", K, Categorical([1.0, 1.0]), [
            observe("y", Item, HalfCauchy(var("s")[var("z")])),
        ]),
    ])
    code = to_stan(prog)
    assert "cauchy_lpdf(y[i] | 0, s[k]) + log2()" in code
    assert "vector<lower=0>[Item] y;" in code
    assert "lw_z[k] = log(z_weights[k]);" in code and "vector[K] z_weights;" in code


# ---------------------------------------------------------------- errors


def test_a_discrete_latent_is_refused():
    Item = FinSet("Item", 3)
    prog = Program("p", Item, Item, [
        sample("n", None, Poisson(2.0)),
        observe("y", Item, Normal(var("n") * 1.0, 1.0)),
    ])
    with pytest.raises(UnsupportedError, match=r"`n` is a discrete latent \(Poisson\); Stan has no discrete parameters; marginalize it"):
        to_stan(prog)


def test_a_tensor_constant_without_named_axes_is_refused():
    """Stan declares a constant by the sets of its axes; a bare tensor has
    none. (A MultivariateNormal on named values is Stan's multi_normal:
    tests/emit/test_stan_evaluated.py.)"""
    K = FinSet("K", 2)
    prog = Program("p", K, K, [sample("m", K, MultivariateNormal(torch.zeros(2), scale_tril=torch.eye(2)))])
    with pytest.raises(UnsupportedError, match=r"the tensor constant in `m_scale_tril` has no named axes Stan can declare"):
        to_stan(prog)


def test_a_sample_inside_a_block_is_refused_at_its_qvr_line():
    src = """object Item : FinSet 3
object K : FinSet 2
program p : Item -> Item
    sample w : K <- HalfNormal(1.0)
    marginalize z : K <- Categorical(w)
        sample m : K <- Normal(0.0, 1.0)
        observe y : Item <- Normal(m[z], 1.0)
"""
    with pytest.raises(UnsupportedError, match=r"line 6, column 9: cannot emit Stan for program `p`: `m` is sampled inside a marginalize block") as err:
        to_stan(loads(src).morphism)
    assert "        sample m : K <- Normal(0.0, 1.0)\n            ^^^" in str(err.value)


def test_a_marginalized_latent_given_as_data_is_refused(gmm):
    """Line 8 of examples/gmm.qvr, in its canonical form (a blank line after the objects)."""
    with pytest.raises(UnsupportedError, match=r"line 8, column 5: .*the marginalized latent `z` is given as data"):
        to_stan(gmm, given=["z"])


def test_given_must_name_a_sampled_site(gmm):
    with pytest.raises(QuiversTypeError, match=r"`given` names `y`, which is no sampled site"):
        to_stan(gmm, given=["y"])


def test_a_stan_keyword_as_a_name_is_refused():
    K = FinSet("K", 2)
    prog = Program("p", K, K, [sample("target", K, Normal(0.0, 1.0))])
    with pytest.raises(UnsupportedError, match=r"`target` is not a valid Stan identifier; rename it"):
        to_stan(prog)


def test_a_name_shared_by_a_set_and_a_value_is_refused():
    K = FinSet("K", 2)
    prog = Program("p", K, K, [sample("K", K, Normal(0.0, 1.0))])
    with pytest.raises(UnsupportedError, match=r"`K` names both a finite set and a value"):
        to_stan(prog)


UNIFORM_PLATE = """
object N : FinSet 4
program p : N -> N
    sample a <- Uniform(0.0, 1.0)
    sample b : N <- Normal(0.0, 1.0)
    let c = exp(b)
    sample x : N <- Uniform(a - 1.0, c)
    observe y : N <- Normal(x, 1.0)
    return y
"""


def test_a_uniform_whose_bounds_read_a_latent_is_declared_with_them():
    """As Stan writes it: the bounds in the declaration, after the
    parameters they read, and the sampling statement kept (with bounds
    that move, -log(high - low) is not a constant)."""
    code = to_stan(load(EXAMPLES / "mixture5.qvr").morphism)
    assert_well_formed(code)
    b = blocks(code)
    assert b["parameters"] == ["real mu0;", "real<lower=0.5, upper=6> delta;", "real<lower=0.1, upper=delta> sigma;"]
    assert "delta ~ uniform(0.5, 6.0);" in b["model"] and "sigma ~ uniform(0.1, delta);" in b["model"]


def test_latent_bounds_along_a_plate_are_vectors_and_lets_are_inlined():
    """``c`` is a transformed parameter, declared after the parameters, so
    the bound reads its definition; the sampling statement may read it."""
    code = to_stan(loads(UNIFORM_PLATE).morphism)
    assert_well_formed(code)
    b = blocks(code)
    assert b["parameters"] == ["real<lower=0, upper=1> a;", "vector[N] b;",
                               "vector<lower=a - 1.0, upper=exp(b)>[N] x;"]
    assert "x ~ uniform(a - 1.0, c);" in b["model"]


def test_a_given_uniform_with_latent_bounds_is_data_without_bounds():
    """The data block cannot read parameters; the sampling statement still
    scores the given value (and rejects one outside the bounds)."""
    code = to_stan(loads(UNIFORM_PLATE).morphism, given=["x"])
    b = blocks(code)
    assert "vector[N] x;" in b["data"] and "x ~ uniform(a - 1.0, c);" in b["model"]
    assert all(" x;" not in line for line in b["parameters"])


def test_latent_bounds_on_a_matrix_site_that_vary_are_refused():
    K, J = FinSet("K", 2), FinSet("J", 3)
    prog = Program("p", K, K, [
        sample("b", K, HalfCauchy(1.0)),
        sample("x", K * J, Uniform(0.0, var("b"))),
    ])
    with pytest.raises(UnsupportedError, match=r"the high bound of `x` varies over \['K'\]; Stan emission writes bounds"):
        to_stan(prog)


def test_scalar_latent_bounds_on_a_matrix_site_are_emitted():
    K, J = FinSet("K", 2), FinSet("J", 3)
    prog = Program("p", K, K, [
        sample("b", None, HalfCauchy(1.0)),
        sample("x", K * J, Uniform(0.0, var("b"))),
    ])
    assert "matrix<lower=0.0, upper=b>[K, J] x;" in blocks(to_stan(prog))["parameters"]


def test_stans_density_with_latent_bounds_matches_quivers_on_the_unconstrained_space(float64):
    """Stan's target for the emitted mixture5, written out by hand: the
    statements (``~`` drops only what reads no parameter, so
    ``sigma ~ uniform(0.1, delta)`` keeps -log(delta - 0.1)) plus the
    log Jacobians of its lower/upper transforms, ``log(high - low) +
    log_inv_logit(u) + log1m_inv_logit(u)``. quivers' log joint plus its
    layout's log Jacobian differs from it by a constant at every point."""
    from quivers.inference.layout import Layout

    prog = load(EXAMPLES / "mixture5.qvr").morphism
    g = torch.Generator().manual_seed(0)
    y = 6.0 * torch.rand(200, generator=g) - 3.0
    u = 2.0 * torch.randn(16, 3, generator=g)
    layout = Layout(prog.latent_sites(), prog.parameters_of)
    assert layout.names == ["mu0", "delta", "sigma"]
    values, logdet = layout.unpack(u)
    got = prog.log_joint(None, {"y": y}, values) + logdet

    lil = torch.nn.functional.logsigmoid
    mu0 = u[:, 0]
    delta = 0.5 + 5.5 * torch.sigmoid(u[:, 1])
    sigma = 0.1 + (delta - 0.1) * torch.sigmoid(u[:, 2])
    torch.testing.assert_close(values["sigma"], sigma)
    jacobian = (math.log(5.5) + lil(u[:, 1]) + lil(-u[:, 1])
                + torch.log(delta - 0.1) + lil(u[:, 2]) + lil(-u[:, 2]))
    lw = torch.log_softmax(torch.tensor([1.0, 2.0, 3.0, 2.0, 2.0]).log(), 0)  # log_softmax(lw_z)
    loc = mu0[:, None, None] + delta[:, None, None] * torch.arange(5.0)
    ll = -0.5 * ((y[:, None] - loc) / sigma[:, None, None]) ** 2 - torch.log(sigma)[:, None, None]
    statements = (-0.5 * (mu0 / 10.0) ** 2 - torch.log(delta - 0.1)
                  + torch.logsumexp(lw + ll, -1).sum(-1))
    want = statements + jacobian
    diff = got - want
    torch.testing.assert_close(diff, diff[:1].expand(16), rtol=0, atol=1e-9)
    # without the sampling statement of sigma the difference would move
    assert float((torch.log(delta - 0.1) - torch.log(delta[0] - 0.1)).abs().max()) > 0.1


def test_non_program_is_a_type_error():
    with pytest.raises(QuiversTypeError, match="to_stan needs a quivers Program"):
        to_stan("model")


FLAT = """
object N : FinSet 5
object K : FinSet 3
program flat : N -> N
    sample alpha <- Flat()
    sample beta : K <- Flat()
    sample sigma <- HalfFlat()
    observe y : N <- Normal(alpha + sum(beta), sigma)
"""


def test_flat_priors_are_stans_implicit_prior():
    code = blocks(to_stan(loads(FLAT).morphism))
    assert code["parameters"] == ["real alpha;", "vector[K] beta;", "real<lower=0> sigma;"]
    assert code["model"] == ["y ~ normal(alpha + sum(beta), sigma);"]


def test_a_flat_prior_inside_a_block_is_refused():
    source = """
object N : FinSet 5
object K : FinSet 2
program p : N -> N
    sample w : K <- HalfNormal(1.0)
    marginalize z : K <- Categorical(w)
        observe y : N <- HalfFlat()
"""
    with pytest.raises(UnsupportedError, match="`y` has the improper family HalfFlat inside a marginalize block"):
        to_stan(loads(source).morphism)


def test_an_index_map_on_a_product_domain_is_a_two_dimensional_array():
    source = """
object M : FinSet 3
object T : FinSet 2
object Animal : FinSet 4
object K : FinSet 2
program p : M -> M
    index animal : M * T -> Animal
    sample w : Animal <- HalfNormal(1.0)
    sample mu : K <- Normal(0.0, 3.0)
    marginalize z : K <- Categorical(w) [over=Animal]
        observe y : M * T <- Normal(mu[z], 1.0) [via=animal]
"""
    model = loads(source).morphism
    code = to_stan(model)
    assert "array[M, T] int<lower=1, upper=Animal> animal;" in blocks(code)["data"]
    assert "ll_z[animal[m, t], k] += normal_lpdf(y[m, t] | mu[k], 1.0);" in blocks(code)["model"]
    data = stan_data(model, {"y": torch.zeros(3, 2), "animal": torch.tensor([[0, 1], [1, 3], [0, 0]])})
    assert data["animal"] == [[1, 2], [2, 4], [1, 1]] and (data["M"], data["T"]) == (3, 2)


def test_vector_weights_are_read_one_entry_at_a_time():
    source = """
object N : FinSet 4
object K : FinSet 3
program mix : N -> N
    sample theta <- Beta(2.0, 2.0)
    sample mu : K <- Normal(0.0, 3.0)
    marginalize z : K <- Categorical(vector(K, theta, 1 - theta, 0.5))
        observe y : N <- Normal(mu[z], 1.0)
"""
    model = blocks(to_stan(loads(source).morphism))["model"]
    assert "lw_z[k] = log((k == 1 ? theta : k == 2 ? 1 - theta : 0.5));" in model


def test_a_vector_of_scalars_used_whole_is_a_stan_vector_literal():
    source = """
object N : FinSet 4
object K : FinSet 2
program p : N -> N
    sample theta <- Beta(2.0, 2.0)
    observe c : N <- Categorical(vector(K, theta, 1 - theta))
"""
    code = blocks(to_stan(loads(source).morphism))
    assert "int<lower=0> K;" in code["data"]  # named only by the builder and the values of `c`
    assert code["model"][-1] == "c ~ categorical(([theta, 1 - theta]') / sum(([theta, 1 - theta]')));"
    via_let = source.replace(
        "    observe c : N <- Categorical(vector(K, theta, 1 - theta))",
        "    let w = vector(K, theta, 1 - theta)\n    observe c : N <- Categorical(w)",
    )
    code = blocks(to_stan(loads(via_let).morphism))
    assert code["transformed parameters"] == ["vector[K] w;", "w = [theta, 1 - theta]';"]
    assert code["model"][-1] == "c ~ categorical(w / sum(w));"


def test_a_matrix_entry_at_constant_indices_is_the_entry_itself():
    from quivers.emit.stan_expr import Translator
    from quivers.programs import matrix

    K = FinSet("K", 2)
    cov = matrix(K, var("a"), var("r"), 2 * var("r"), var("b")).sympy
    t = Translator({n: (n, ()) for n in ("a", "b", "r")})
    assert t.dims(cov) == ("K", "K'")
    assert t.code(cov, {"K": "2", "K'": "1"}) == "2 * r"
    assert t.code(cov, {"K": "i", "K'": "j"}) == "(i == 1 && j == 1 ? a : i == 1 && j == 2 ? r : i == 2 && j == 1 ? 2 * r : b)"


def test_marginalize_auto_emits_its_lowered_blocks_and_names_a_joint_plan():
    """`marginalize=auto` writes a latent per group as the block a user
    would write, which Stan emission writes; sites the plan sums jointly
    (here with the global `shift`) are refused by that name, not called
    discrete parameters."""
    source = (EXAMPLES / "grouped_auto.qvr").read_text()
    lowered = source.replace("    sample shift <- Bernoulli(0.1)\n", "").replace(" + 3.0 * shift", "")
    assert "ll_z[group[i], k] += normal_lpdf(y[i] | mu_k[k], sd_k[k]);" in to_stan(loads(lowered).morphism)
    with pytest.raises(UnsupportedError, match=r"line 10, .*`z` is summed out by quivers' plan \(marginalize=auto\) "
                                               r"jointly with \['shift'\]"):
        to_stan(load(EXAMPLES / "grouped_auto.qvr").morphism)
