"""The Stan that quivers emits, run (tests/emit/stan_eval.py) and compared
with ``Program.log_joint``: the families Stan writes as user-defined
functions (LogitNormal, Kumaraswamy, ContinuousBernoulli), Stan's
multinomial, dirichlet_multinomial and lkj_corr_cholesky, mixtures, and a
Cholesky factor of a correlation matrix.

The interpreter keeps every normalizing constant, so its target and the
log joint differ by a constant (Stan's ``normal`` on a ``<lower=0>``
parameter, for a HalfNormal, misses a log 2) at every parameter point.
"""

from __future__ import annotations

import pytest
import torch

from quivers.dsl import loads
from quivers.emit import stan_data, to_stan
from quivers.errors import DataError, UnsupportedError
from tests.emit.stan_eval import StanModel
from tests.emit.test_stan import assert_well_formed, blocks

FAMILIES = """
object Item : FinSet 4
object K : FinSet 3
object C : FinSet 2
program p : Item -> Item
    sample mu <- Normal(0.0, 1.0)
    sample s <- HalfNormal(1.0)
    sample a <- Kumaraswamy(2.0, 3.0)
    sample lam <- ContinuousBernoulli(0.3)
    sample th : K <- Dirichlet(1.0)
    sample al : K <- HalfNormal(2.0)
    sample w : C <- Dirichlet(1.0)
    sample L : K * K <- LKJCholesky(2.0) [constraint=cholesky_corr]
    observe u : Item <- LogitNormal(mu, s)
    observe v : Item <- Kumaraswamy(a + 1.0, 2.0)
    observe cb : Item <- ContinuousBernoulli(logits=mu)
    observe half : Item <- ContinuousBernoulli(0.5)
    observe m : Item <- Multinomial(5, th) [over=K]
    observe dm : Item <- DirichletMultinomial(5, al) [over=K]
    observe x : Item <- Mixture(w, Normal(mu, s), StudentT(3.0, 0.0, s))
    observe hx : Item <- Mixture(HalfNormal(s), Exponential(2.0), logits=mu * w)
    observe k : Item <- Mixture(w, Poisson(s), Poisson(s + 2.0))
    observe tl : Item <- Truncated(LogitNormal(mu, s), low=0.2, high=0.9)
    return u
export p
"""

LATENTS = ["mu", "s", "a", "lam", "th", "al", "w", "L"]


def observations() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    return {
        "u": torch.rand(4, generator=g), "v": torch.rand(4, generator=g), "cb": torch.rand(4, generator=g),
        "half": torch.rand(4, generator=g),
        "m": torch.tensor([[1, 2, 2], [5, 0, 0], [0, 0, 5], [1, 1, 3]]),
        "dm": torch.tensor([[0, 2, 3], [4, 1, 0], [0, 0, 5], [2, 2, 1]]),
        "x": torch.randn(4, generator=g), "hx": torch.rand(4, generator=g) + 0.1,
        "k": torch.tensor([0, 3, 1, 7]), "tl": 0.3 + 0.5 * torch.rand(4, generator=g),
    }


def compare(program, obs, latents, points=4, given=None):
    """The interpreted Stan target minus the log joint at prior draws:
    the same number at every point."""
    model = StanModel(to_stan(program, given=given or ()))
    data = stan_data(program, obs, given=given)
    diffs = []
    for seed in range(points):
        torch.manual_seed(seed)
        draw = program.sample(None, (), observations=obs)
        values = {n: draw[n] for n in latents}
        ours = float(program.log_joint(None, obs, values))
        theirs = model.log_density({**data, **{n: v.numpy() for n, v in values.items()}})
        diffs.append(theirs - ours)
    return diffs


def test_the_new_families_emit_their_stan(float64):
    code = to_stan(loads(FAMILIES).p)
    assert_well_formed(code)
    b = blocks(code)
    assert "real logit_normal_lpdf(real y, real mu, real sigma) {" in b["functions"]
    assert "real logit_normal_lccdf(real y, real mu, real sigma) {" in b["functions"]
    assert "real kumaraswamy_lpdf(real y, real a, real b) {" in b["functions"]
    assert "real continuous_bernoulli_lpdf(real y, real p) {" in b["functions"]
    assert "cholesky_factor_corr[K] L;" in b["parameters"] and "L ~ lkj_corr_cholesky(2.0);" in b["model"]
    assert "array[Item, K] int<lower=0> m;" in b["data"]
    for line in [
        "u[i] ~ logit_normal(mu, s);", "v[i] ~ kumaraswamy(a + 1.0, 2.0);", "a ~ kumaraswamy(2.0, 3.0);",
        "cb[i] ~ continuous_bernoulli_logit(mu);", "m[i] ~ multinomial(th / sum(th));",
        "dm[i] ~ dirichlet_multinomial(al);", "tl[i] ~ logit_normal(mu, s) T[0.2, 0.9];",
        "target += log_sum_exp(log(w / sum(w)) + [normal_lpdf(x[i] | mu, s), student_t_lpdf(x[i] | 3.0, 0.0, s)]');",
        "target += log_sum_exp(log_softmax(mu * w) + [normal_lpdf(hx[i] | 0, s) + log2(), exponential_lpdf(hx[i] | 2.0)]');",
        "target += log_sum_exp(log(w / sum(w)) + [poisson_lpmf(k[i] | s), poisson_lpmf(k[i] | s + 2.0)]');",
    ]:
        assert line in b["model"], line
    assert "vector<lower=0.2, upper=0.9>[Item] tl;" in b["data"]


def test_the_new_families_score_as_quivers_does(float64):
    p = loads(FAMILIES).p
    diffs = compare(p, observations(), LATENTS)
    torch.testing.assert_close(torch.tensor(diffs), torch.full((4,), diffs[0]), rtol=0, atol=1e-9)
    # the only constant: HalfNormal s and al (4 values) scored by Stan's normal on <lower=0>
    assert diffs[0] == pytest.approx(-4 * torch.log(torch.tensor(2.0)).item(), abs=1e-9)


def test_the_continuous_bernoulli_function_is_right_near_one_half(float64):
    """Its normalizer is 0 / 0 at p = 1/2: the function takes the series
    there, and agrees with torch on both sides of the switch; from logits
    it stays finite where inv_logit rounds to 0 or 1."""
    from quivers.distributions import ContinuousBernoulli

    model = StanModel(to_stan(loads(FAMILIES).p))
    for p in (0.4985, 0.4995, 0.5, 0.5007, 0.6, 0.02):
        for y in (0.0, 0.3, 1.0):
            want = ContinuousBernoulli(p).build({"probs": torch.tensor(p)}).log_prob(torch.tensor(y))
            got = model._call("continuous_bernoulli_lpdf", [y, p])
            assert got == pytest.approx(float(want), abs=1e-6), (p, y)
    # (quivers' normalizer follows the logit, exact at any logit; torch's,
    # through the probability, was off by 3e-5 at 30 and clamped past 36)
    for logit in (-100.0, -30.0, -10.0, -3.0, -0.003, 0.0, 0.002, 0.01, 5.0, 10.0, 30.0, 100.0):
        for y in (0.0, 0.3, 1.0):
            want = ContinuousBernoulli(logits=logit).build({"logits": torch.tensor(logit)}).log_prob(torch.tensor(y))
            got = model._call("continuous_bernoulli_logit_lpdf", [y, logit])
            assert got == pytest.approx(float(want), abs=1e-6), (logit, y)


def test_a_mixture_in_a_marginalize_block_is_its_term():
    src = """object Item : FinSet 4
object K : FinSet 2
object C : FinSet 2
program p : Item -> Item
    sample w : C <- Dirichlet(1.0)
    sample v : K <- Dirichlet(1.0)
    sample mu : K <- Normal(0.0, 3.0)
    marginalize z : K <- Categorical(v)
        observe y : Item <- Mixture(w, Beta(2.0, 2.0), LogitNormal(mu[z], 1.0))
    return y
export p
"""
    code = to_stan(loads(src).p)
    assert ("ll_z[k] = log_sum_exp(log(w / sum(w)) + [beta_lpdf(y[i] | 2.0, 2.0), "
            "logit_normal_lpdf(y[i] | mu[k], 1.0)]');") in code


def test_a_multinomial_whose_counts_miss_the_total_is_a_data_error():
    p = loads(FAMILIES).p
    obs = observations()
    obs["dm"] = obs["dm"].clone()
    obs["dm"][3, 2] = 4
    with pytest.raises(DataError, match=r"observation `dm` at \(3,\) counts 8 draws, but its total_count is 5"):
        stan_data(p, obs)


def test_a_multinomial_with_a_latent_total_is_refused():
    src = """object Item : FinSet 4
object K : FinSet 3
program p : Item -> Item
    sample th : K <- Dirichlet(1.0)
    sample n <- Poisson(4.0)
    observe m : Item <- Multinomial(n, th) [over=K]
    return m
export p
"""
    with pytest.raises(UnsupportedError, match=r"line 6, .*the total count of `m` is `n`; Stan's multinomial takes"):
        to_stan(loads(src).p, given=["n"])


TRUNCATED = """
object Item : FinSet 5
object K : FinSet 2
program p : Item -> Item
    sample v : K <- Dirichlet(1.0)
    sample mu : K <- Normal(0.0, 1.0)
    sample s <- HalfNormal(1.0)
    sample g <- Beta(2.0, 2.0)
    observe h : Item <- Truncated(HalfNormal(s), high=2.0)
    observe c : Item <- Geometric(g)
    marginalize z : K <- Categorical(v)
        observe a : Item <- Truncated(Normal(mu[z], s), low=-1.0, high=1.5)
        observe b : Item <- Truncated(Gamma(2.0, s + mu[z] * mu[z]), low=0.5)
        observe l : Item <- Truncated(LogitNormal(mu[z], s), high=0.8)
        observe d : Item <- Geometric(logits=mu[z])
    return a
export p
"""


def test_truncations_in_a_block_are_renormalized_terms(float64):
    """Stan's T[low, high] is for sampling statements; inside a mixture the
    term is the family's log density less the log probability of the
    bounds, -inf outside them (as quivers scores it)."""
    p = loads(TRUNCATED).p
    code = to_stan(p)
    assert_well_formed(code)
    assert ("ll_z[k] = (a[i] < -1.0 || a[i] > 1.5 ? negative_infinity() : normal_lpdf(a[i] | mu[k], s) "
            "- log_diff_exp(normal_lcdf(1.5 | mu[k], s), normal_lcdf(-1.0 | mu[k], s)));") in code
    assert "(b[i] < 0.5 ? negative_infinity() : gamma_lpdf(b[i] | 2.0, s + mu[k]^2) - gamma_lccdf(0.5 | 2.0, s + mu[k]^2))" in code
    assert "(l[i] > 0.8 ? negative_infinity() : logit_normal_lpdf(l[i] | mu[k], s) - logit_normal_lcdf(0.8 | mu[k], s))" in code
    # a half-normal is Stan's normal on the whole line: truncated at 0 as well
    assert "h[i] ~ normal(0, s) T[0, 2.0];" in code
    assert "c ~ neg_binomial(1, g / (1 - g));" in code and "neg_binomial_lpmf(d[i] | 1, exp(mu[k]))" in code
    g = torch.Generator().manual_seed(5)
    obs = {"h": 2.0 * torch.rand(5, generator=g), "c": torch.tensor([0, 2, 1, 0, 6]),
           "a": torch.tensor([-0.5, 0.0, 1.2, 0.3, -0.9]), "b": 0.6 + torch.rand(5, generator=g),
           "l": 0.7 * torch.rand(5, generator=g) + 0.05, "d": torch.tensor([1, 0, 0, 3, 2])}
    diffs = compare(p, obs, ["v", "mu", "s", "g"])
    torch.testing.assert_close(torch.tensor(diffs), torch.full((4,), diffs[0]), rtol=0, atol=1e-9)


@pytest.mark.parametrize("maps, via, given, reads", [
    ("data gh : Item -> G * H\n    ", "gh", lambda gh: {"gh": gh},
     "ll_z[(gh[i] - 1) %/% H + 1, (gh[i] - 1) % H + 1, k] += normal_lpdf(y[i] | b[(gh[i] - 1) %/% H + 1, "
     "(gh[i] - 1) % H + 1] + mu[k], 1.0);"),
    ("", "[g, h]", lambda gh: {"g": gh // 3, "h": gh % 3},
     "ll_z[g[i], h[i], k] += normal_lpdf(y[i] | b[g[i], h[i]] + mu[k], 1.0);"),
])
def test_a_block_grouped_by_pairs_sums_each_pairs_rows(float64, maps, via, given, reads):
    """``[over=G * H]``: one latent per pair, its rows' terms summed into
    the pair's cell (a map into the product decoded row-major, or one map
    per factor) before one log-sum-exp per pair."""
    from tests.dsl.test_axes_algebras import GH, PAIRS

    p = loads(PAIRS.format(maps=maps, via=via)).morphism
    code = to_stan(p)
    assert_well_formed(code)
    b = blocks(code)
    assert "array[G, H] vector[K] ll_z = rep_array(rep_vector(0, K), G, H);" in b["model"]
    assert reads in b["model"]
    assert "target += log_sum_exp(log_softmax(lw_z[g1, h1]) + ll_z[g1, h1]);" in b["model"] or \
        "target += log_sum_exp(log_softmax(lw_z[g, h]) + ll_z[g, h]);" in b["model"]
    if via == "gh":
        assert "array[Item] int<lower=1, upper=G*H> gh;" in b["data"]
    obs = {"y": torch.randn(8, generator=torch.Generator().manual_seed(2)), **given(GH)}
    diffs = compare(p, obs, ["w", "mu", "b"])
    torch.testing.assert_close(torch.tensor(diffs), torch.full((4,), diffs[0]), rtol=0, atol=1e-9)


UNIFORM = """
object N : FinSet 6
program p : N -> N
    sample b <- Beta(2.0, 2.0)
    sample a <- Uniform(0.0, 1.0 - b)
    sample c : N <- Uniform(a, 1.0)
    observe y : N <- Normal(c, 0.5)
    return y
export p
"""


def test_uniform_bounds_that_read_latents_match_on_the_unconstrained_space(float64):
    """Issue 25's `Uniform(0.0, 1.0 - b)`: declared after `b` with its
    bounds, `<lower=0.0, upper=1.0 - b>` (and a vector on a plate). Stan's
    target (its statements, run, plus the log Jacobians of its lower/upper
    transforms) and quivers' log joint plus its layout's log Jacobian
    differ by a constant at every unconstrained point."""
    from quivers.inference.layout import Layout

    p = loads(UNIFORM).p
    code = to_stan(p)
    b = blocks(code)
    assert b["parameters"] == ["real<lower=0, upper=1> b;", "real<lower=0.0, upper=1.0 - b> a;",
                               "vector<lower=a, upper=1.0>[N] c;"]
    assert "a ~ uniform(0.0, 1.0 - b);" in b["model"] and "c ~ uniform(a, 1.0);" in b["model"]
    model = StanModel(code)
    y = torch.linspace(0.1, 0.9, 6)
    layout = Layout(p.latent_sites(), p.parameters_of)
    assert layout.names == ["b", "a", "c"]
    u = 1.5 * torch.randn(5, 8, generator=torch.Generator().manual_seed(4))
    values, logdet = layout.unpack(u)
    ours = p.log_joint(None, {"y": y}, values) + logdet

    def bounded(x, low, high):  # Stan's lower/upper transform and its log Jacobian
        lsig = torch.nn.functional.logsigmoid
        return low + (high - low) * torch.sigmoid(x), torch.log(high - low) + lsig(x) + lsig(-x)

    diffs = []
    for n in range(5):
        vb, jb = bounded(u[n, 0], torch.tensor(0.0), torch.tensor(1.0))
        va, ja = bounded(u[n, 1], torch.tensor(0.0), 1.0 - vb)
        vc, jc = bounded(u[n, 2:], va, torch.tensor(1.0))
        torch.testing.assert_close(values["c"][n], vc)
        target = model.log_density({"N": 6, "y": y.numpy(), "b": float(vb), "a": float(va), "c": vc.numpy()})
        diffs.append(target + float(jb + ja + jc.sum()) - float(ours[n]))
    torch.testing.assert_close(torch.tensor(diffs), torch.full((5,), diffs[0]), rtol=0, atol=1e-9)


MVN = """
object K : FinSet 3
object N : FinSet 5
object G : FinSet 2
program c : N -> N
    data S : K * K
    sample L : K * K <- LKJCholesky(2.0) [constraint=cholesky_corr]
    sample mu : K <- Normal(0.0, 1.0)
    sample s : K <- HalfNormal(1.0)
    sample x : G * K <- MultivariateNormal(0.0, scale_tril=L)
    observe y : N * K <- MultivariateNormal(mu + s, scale_tril=L)
    observe v : N * K <- MultivariateNormal(mu, covariance_matrix=S)
    observe w : N * K <- MultivariateNormal(s, precision_matrix=S)
    return y
export c
"""


def test_a_multivariate_normal_is_stans_multi_normal_by_its_matrix(float64):
    p = loads(MVN).c
    code = to_stan(p)
    assert_well_formed(code)
    b = blocks(code)
    assert "matrix[K, K] S;" in b["data"] and "cholesky_factor_corr[K] L;" in b["parameters"]
    for line in ("x[g] ~ multi_normal_cholesky(rep_vector(0.0, K), L);", "y[n] ~ multi_normal_cholesky(mu + s, L);",
                 "v[n] ~ multi_normal(mu, S);", "w[n] ~ multi_normal_prec(s, S);"):
        assert line in b["model"], line
    g = torch.Generator().manual_seed(6)
    a = torch.randn(3, 3, generator=g)
    obs = {"S": a @ a.T + 3 * torch.eye(3), "y": torch.randn(5, 3, generator=g), "v": torch.randn(5, 3, generator=g),
           "w": torch.randn(5, 3, generator=g)}
    diffs = compare(p, obs, ["L", "mu", "s", "x"])
    torch.testing.assert_close(torch.tensor(diffs), torch.full((4,), diffs[0]), rtol=0, atol=1e-9)


MVN_EXPRESSIONS = """
object K : FinSet 3
object N : FinSet 5
program c : N -> N
    data S : K * K
    sample L : K * K <- LKJCholesky(2.0) [constraint=cholesky_corr]
    sample mu : K <- Normal(0.0, 1.0)
    sample s : K <- HalfNormal(1.0)
    sample a <- HalfNormal(1.0)
    sample x : K <- MultivariateNormal(0.0, covariance_matrix=matrix(K, a, 0.0, 0.0, 0.0, a, 0.0, 0.0, 0.0, a))
    observe y : N * K <- MultivariateNormal(mu, scale_tril=s * L)
    observe v : N * K <- MultivariateNormal(mu, covariance_matrix=S + a)
    observe u : N * K <- MultivariateNormal(x, covariance_matrix=2.0 * S)
    observe w : N * K <- MultivariateNormal(s, precision_matrix=S / a)
    return y
export c
"""


def test_a_multivariate_normal_matrix_expression_is_a_named_matrix_in_stan(float64):
    """An expression on `K * K'` is written entry by entry into a matrix of
    its own: the scales times a Cholesky factor of a correlation
    (`s * L`, Stan's `diag_pre_multiply(s, L)`), a covariance built with
    `matrix(...)` inline, arithmetic of a data matrix (transformed data
    when it reads only data)."""
    p = loads(MVN_EXPRESSIONS).c
    code = to_stan(p)
    assert_well_formed(code)
    b = blocks(code)
    assert "matrix[K, K] Sigma_u;" in b["transformed data"] and "Sigma_u[k, k1] = 2.0 * S[k, k1];" in b["transformed data"]
    for line in ("matrix[K, K] L_y;", "L_y[k, k1] = L[k, k1] * s[k];", "Sigma_v[k, k1] = S[k, k1] + a;",
                 "Omega_w[k, k1] = S[k, k1] / a;"):
        assert line in b["transformed parameters"], line
    for line in ("x ~ multi_normal(rep_vector(0.0, K), Sigma_x);", "y[n] ~ multi_normal_cholesky(mu, L_y);",
                 "v[n] ~ multi_normal(mu, Sigma_v);", "u[n] ~ multi_normal(x, Sigma_u);",
                 "w[n] ~ multi_normal_prec(s, Omega_w);"):
        assert line in b["model"], line
    g = torch.Generator().manual_seed(6)
    m = torch.randn(3, 3, generator=g)
    obs = {"S": m @ m.T + 3 * torch.eye(3), **{k: torch.randn(5, 3, generator=g) for k in ("y", "v", "u", "w")}}
    diffs = compare(p, obs, ["L", "mu", "s", "a", "x"])
    torch.testing.assert_close(torch.tensor(diffs), torch.full((4,), diffs[0]), rtol=0, atol=1e-8)
    # the only constant: the HalfNormals s (3 values) and a, scored by Stan's normal on <lower=0>
    assert diffs[0] == pytest.approx(-4 * torch.log(torch.tensor(2.0)).item(), abs=1e-8)


def test_a_multivariate_normal_matrix_stan_cannot_write_is_refused_at_its_line():
    src = MVN.replace("covariance_matrix=S", "covariance_matrix=cumsum(S)")
    with pytest.raises(UnsupportedError, match=r"line 12, .*`cumulative_sum` of `S`: its argument is not a vector"):
        to_stan(loads(src).c)


HMM = """
object S : FinSet 2
object T : FinSet 6
object K : FinSet 3

program seqs : S * T -> S * T
    {maps}sample A : K * K <- Dirichlet(1.0)
    sample p0 : K <- Dirichlet(1.0)
    sample mu : K <- Normal(0.0, 3.0)
    marginalize z : S * T -> K <- Markov(init=p0, trans=A){opts}
        observe y : S * T <- Normal(mu[z], 1.0)

export seqs
"""


@pytest.mark.parametrize("maps, opts, given", [
    ("", "", {}),
    ("index last : S -> T\n    ", " [until=last]", {"last": torch.tensor([3, 5])}),
    ("", " [reduction=max]", {}),
])
def test_a_markov_chain_is_the_forward_algorithm(float64, maps, opts, given):
    """One chain per sequence, its path summed out (or maximized) by the
    forward algorithm, ending at `last[s]` under until=; run against
    log_joint, which takes the same sum by its balanced product."""
    p = loads(HMM.format(maps=maps, opts=opts)).morphism
    code = to_stan(p)
    assert_well_formed(code)
    b = blocks(code)
    reduce = "max" if "max" in opts else "log_sum_exp"
    for line in ("matrix[T, K] ll_z = rep_matrix(0, T, K);", "ll_z[t, k] += normal_lpdf(y[s, t] | mu[k], 1.0);",
                 "lw_z[k] = log(p0[k]);", "alpha_z = log_softmax(lw_z) + ll_z[1]';", "row_z[k] = log(A[j, k]);",
                 f"next_z[k] = {reduce}(alpha_z + la_z[:, k]) + ll_z[t, k];", f"target += {reduce}(alpha_z);",
                 "for (t in 2:last[s]) {" if given else "for (t in 2:T) {"):
        assert line in b["model"], line
    obs = {"y": torch.randn(2, 6, generator=torch.Generator().manual_seed(7)), **given}
    diffs = compare(p, obs, ["A", "p0", "mu"])
    torch.testing.assert_close(torch.tensor(diffs), torch.full((4,), diffs[0]), rtol=0, atol=1e-9)


def test_a_single_chain_with_one_law_for_every_state_and_no_init(float64):
    """Without init the first state is uniform; weights on K alone are the
    same law out of every state."""
    src = """object T : FinSet 5
object K : FinSet 2
program h : T -> T
    sample w : K <- Dirichlet(1.0)
    sample mu : K <- Normal(0.0, 3.0)
    marginalize z : T -> K <- Markov(trans=w)
        observe y : T <- Normal(mu[z], 1.0)
export h
"""
    p = loads(src).h
    code = to_stan(p)
    assert "lw_z[k] = 0;" in code and "row_z[k] = log(w[k]);" in code
    obs = {"y": torch.randn(5, generator=torch.Generator().manual_seed(8))}
    diffs = compare(p, obs, ["w", "mu"])
    torch.testing.assert_close(torch.tensor(diffs), torch.full((4,), diffs[0]), rtol=0, atol=1e-9)


def test_the_lda_example_reads_each_topics_word_simplex_whole(float64):
    """`Categorical(probs=phi[z])` with `phi` an array of simplexes: the
    row `phi[k, :]` is a vector already (a matrix row would be transposed)."""
    from pathlib import Path

    from quivers.dsl import load

    p = load(Path(__file__).resolve().parents[2] / "examples" / "lda.qvr").morphism
    code = to_stan(p)
    assert "array[Topic] simplex[Vocab] phi;" in code
    assert "ll_z[t1] = categorical_lpmf(w[t] | phi[t1, :] / sum(phi[t1, :]));" in code
    g = torch.Generator().manual_seed(9)
    obs = {"doc": torch.arange(60) % 4, "w": torch.randint(0, 12, (60,), generator=g),
           "alpha": torch.tensor(0.8), "beta": torch.tensor(0.5)}
    diffs = compare(p, obs, ["theta", "phi"])
    torch.testing.assert_close(torch.tensor(diffs), torch.full((4,), diffs[0]), rtol=0, atol=1e-9)


def test_a_multinomial_total_read_from_data_is_checked_row_by_row():
    src = """object Item : FinSet 3
object K : FinSet 2
program p : Item -> Item
    data n : Item
    sample th : K <- Dirichlet(1.0)
    observe m : Item <- Multinomial(n, th) [over=K]
    return m
export p
"""
    p = loads(src).p
    m = torch.tensor([[1, 2], [0, 4], [2, 2]])
    assert stan_data(p, {"n": torch.tensor([3.0, 4.0, 4.0]), "m": m})["m"] == [[1, 2], [0, 4], [2, 2]]
    with pytest.raises(DataError, match=r"observation `m` at \(1,\) counts 4 draws, but its total_count is 5"):
        stan_data(p, {"n": torch.tensor([3.0, 5.0, 4.0]), "m": m})


CORRELATED = """
object N : FinSet 10
object K : FinSet 2
program correlated : N -> N [effects=[Sample, Score, Marginal]]
    sample theta <- Beta(2.0, 2.0)
    sample s1 <- HalfNormal(1.0)
    sample s2 <- HalfNormal(1.0)
    sample u <- Beta(2.0, 2.0)
    let r = 2 * u - 1
    let cov = matrix(K, s1 ^ 2, r * s1 * s2, r * s1 * s2, s2 ^ 2)
    sample m : K <- MultivariateNormal(vector(K, 0.0, 0.0), covariance_matrix=cov)
    marginalize z : K <- Categorical(vector(K, theta, 1 - theta))
        observe y : N <- Normal(m[z], 1.0)
export correlated
"""


def test_the_reference_covariance_built_with_matrix_emits_and_scores_as_quivers_does(float64):
    """docs/reference.md's MultivariateNormal example: the let of
    `matrix(K, ...)` is a `matrix[K, K]` transformed parameter and the
    constant loc `vector(K, 0.0, 0.0)` Stan's vector literal."""
    p = loads(CORRELATED).correlated
    code = to_stan(p)
    assert_well_formed(code)
    b = blocks(code)
    assert "matrix[K, K] cov;" in b["transformed parameters"]
    assert "m ~ multi_normal([0.0, 0.0]', cov);" in b["model"]
    obs = {"y": torch.randn(10, generator=torch.Generator().manual_seed(2))}
    diffs = compare(p, obs, ["theta", "s1", "s2", "u", "m"])
    torch.testing.assert_close(torch.tensor(diffs), torch.full((4,), diffs[0]), rtol=0, atol=1e-9)


def test_mixture_logits_built_from_entries_are_a_vector_literal(float64):
    p = loads("""
object Item : FinSet 4
object K : FinSet 2
program p : Item -> Item
    sample mu <- Normal(0.0, 1.0)
    sample s <- HalfNormal(1.0)
    observe y : Item <- Mixture(Normal(mu, s), Normal(0.0, s), logits=vector(K, mu, 0.0))
export p
""").p
    assert "log_softmax([mu, 0.0]')" in to_stan(p)
    diffs = compare(p, {"y": torch.randn(4, generator=torch.Generator().manual_seed(5))}, ["mu", "s"])
    torch.testing.assert_close(torch.tensor(diffs), torch.full((4,), diffs[0]), rtol=0, atol=1e-9)


def test_categorical_weights_built_per_row_are_a_literal_in_the_rows_loop(float64):
    """Entries on the plate `N`: the vectorized statement cannot take the
    literal, so it is written in the loop over `N`, one literal a row."""
    p = loads("""
object N : FinSet 4
object K : FinSet 2
program p : N -> N
    sample theta : N <- Beta(2.0, 2.0)
    observe c : N <- Categorical(vector(K, theta, 1 - theta))
export p
""").p
    assert "c[n] ~ categorical(([theta[n], 1 - theta[n]]') / sum(([theta[n], 1 - theta[n]]')));" in to_stan(p)
    diffs = compare(p, {"c": torch.tensor([0, 1, 1, 0])}, ["theta"])
    torch.testing.assert_close(torch.tensor(diffs), torch.zeros(4), rtol=0, atol=1e-9)


def test_a_factor_table_emits_its_body_in_loops_and_scores_as_quivers_does(float64):
    """`factor r : Row, c : Leaf in body` is a transformed parameter whose
    entry is the body read at the loops' indices, not its cells written out."""
    from tests.dsl.test_peer_programs import TABLE

    p = loads(TABLE).tree
    code = to_stan(p)
    assert_well_formed(code)
    tp = blocks(code)["transformed parameters"]
    assert "matrix[Row, Leaf] grid;" in tp and "grid[r, l] = leaf[l] + rowfx[r];" in tp
    diffs = compare(p, {"y": torch.randn(4, generator=torch.Generator().manual_seed(3))}, ["split", "rowfx"])
    torch.testing.assert_close(torch.tensor(diffs), torch.zeros(4), rtol=0, atol=1e-9)


def test_a_table_of_a_diagonal_and_bare_binders_emits_and_scores_as_quivers_does(float64):
    p = loads("""
object K : FinSet 3
object R : FinSet 2
object Obs : FinSet 4
program p : Obs -> Obs
    sample t : K * K <- Normal(0.0, 1.0)
    sample fx : R <- Normal(0.0, 1.0)
    let d = factor k : K in t[k, k] + 0.5 * k
    let g = factor r : R, k : K in fx[r] * d[k] - r
    observe y : Obs <- Normal(g[1, 2] + d[0], 1.0)
export p
""").p
    tp = blocks(to_stan(p))["transformed parameters"]
    assert "d[k] = 0.5 * (k - 1) + t[k, k];" in tp and "g[r, k] = -(r - 1) + d[k] * fx[r];" in tp
    diffs = compare(p, {"y": torch.randn(4, generator=torch.Generator().manual_seed(4))}, ["t", "fx"])
    torch.testing.assert_close(torch.tensor(diffs), torch.zeros(4), rtol=0, atol=1e-9)
