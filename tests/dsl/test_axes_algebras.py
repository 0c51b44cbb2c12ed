"""Event axes (``[over=K]``, ``[iid_over=D]``), ``Categorical(probs=...)``,
marginalize blocks without a written set, ``reduction=`` and the module's
algebra (``composition NAME [level=algebra]``): each density is checked
against brute-force enumeration in float64, each bad input gives a located
error, and each form round-trips through the printer."""

from __future__ import annotations

import itertools
import math
import textwrap

import pytest
import torch
from torch.distributions import Dirichlet, HalfNormal, Normal

from quivers.categories import BOOL, LOG, MAX_PLUS, MIN_PLUS, PROB
from quivers.dsl import dumps, loads
from quivers.dsl.format import format_source
from quivers.dsl.parser import parse
from quivers.emit.stan import to_stan
from quivers.errors import QuiversTypeError, UnknownNameError

F64 = torch.float64


def f64(x: float) -> torch.Tensor:
    return torch.tensor(x, dtype=F64)


def _module(text: str):
    return loads(textwrap.dedent(text))


# ---------------------------------------------------------------- event axes

LDA = """
composition log_prob [level=algebra]

object Doc : FinSet 3
object Topic : FinSet 2
object Vocab : FinSet 4
object Token : FinSet 7

program lda(alpha : Real, beta : Real) : Token -> Token
    sample theta : Doc <- Dirichlet(alpha) [over=Topic, iid_over=Doc]
    sample phi : Topic <- Dirichlet(beta) [over=Vocab, iid_over=Topic]
    marginalize z <- Categorical(probs=theta) [over=Doc, reduction=logsumexp]
        observe w : Token <- Categorical(probs=phi[z]) [via=word_idx]
    return theta

export lda
"""

W = torch.tensor([0, 1, 2, 3, 0, 1, 2])
DOC = torch.tensor([0, 0, 1, 1, 2, 2, 2])


def lda_brute(theta, phi, alpha, beta, w=W, doc=DOC, reduce=lambda xs: torch.logsumexp(torch.stack(xs), 0)):
    """log p by loops: a Dirichlet row per document and per topic, one topic
    per document (the block is grouped over Doc), its words' probabilities."""
    total = sum(Dirichlet(torch.full((theta.shape[1],), alpha, dtype=F64)).log_prob(r) for r in theta)
    total = total + sum(Dirichlet(torch.full((phi.shape[1],), beta, dtype=F64)).log_prob(r) for r in phi)
    for d in range(theta.shape[0]):
        per_topic = []
        for k in range(theta.shape[1]):
            lp = theta[d, k].log()
            for n in range(len(w)):
                if doc[n] == d:
                    lp = lp + phi[k, w[n]].log()
            per_topic.append(lp)
        total = total + reduce(per_topic)
    return total


def test_over_and_iid_over_put_one_dirichlet_row_per_document():
    p = loads(LDA).morphism
    assert p.sites["theta"].dims == ("Doc", "Topic") and p.sites["theta"].event_dims == ("Topic",)
    assert p.sites["phi"].dims == ("Topic", "Vocab")
    assert p.sites["z"].values_in == "Topic" and p.sites["z"].dims == ("Doc",)
    torch.manual_seed(0)
    theta = Dirichlet(torch.ones(3, 2, dtype=F64)).sample()
    phi = Dirichlet(torch.ones(2, 4, dtype=F64)).sample()
    got = p.log_joint(None, {"w": W, "word_idx": DOC, "alpha": torch.tensor(1.5, dtype=F64), "beta": torch.tensor(0.5, dtype=F64)}, {"theta": theta, "phi": phi})
    torch.testing.assert_close(got, lda_brute(theta, phi, 1.5, 0.5), rtol=1e-12, atol=1e-12)


def test_over_without_a_plate_is_one_draw_and_the_latent_takes_its_axis():
    """``sample probs <- Dirichlet(1.0) [over=K]`` is one simplex; a block
    ``marginalize z <- Categorical(probs)`` ranges over its axis ``K``."""
    p = _module("""
        object K : FinSet 3
        object Item : FinSet 5
        program gmm : Item -> Item
            sample probs <- Dirichlet(1.0) [over=K]
            sample mu : K <- Normal(0.0, 5.0)
            marginalize z <- Categorical(probs)
                observe y : Item <- Normal(mu[z], 1.0)
            return y
        export gmm
    """).morphism
    assert p.sites["probs"].dims == ("K",) and p.sites["z"].values_in == "K"
    probs, mu = torch.tensor([0.2, 0.3, 0.5], dtype=F64), torch.tensor([-1.0, 0.0, 2.0], dtype=F64)
    y = torch.tensor([-1.2, 0.1, 2.5, 1.0, -0.3], dtype=F64)
    brute = Dirichlet(torch.ones(3, dtype=F64)).log_prob(probs) + Normal(f64(0.0), f64(5.0)).log_prob(mu).sum()
    for v in y:
        brute = brute + torch.logsumexp(probs.log() + Normal(mu, f64(1.0)).log_prob(v), 0)
    torch.testing.assert_close(p.log_joint(None, {"y": y}, {"probs": probs, "mu": mu}), brute)


def test_a_latent_without_its_set_takes_the_last_axis_of_indexed_logits():
    p = _module("""
        object K : FinSet 2
        object G : FinSet 3
        object Item : FinSet 4
        program m : Item -> Item
            data g : Item -> G
            sample a : G * K <- Normal(0.0, 1.0)
            marginalize z <- Categorical(logits=a[g])
                observe y : Item <- Normal(z * 2.0, 1.0)
            return y
        export m
    """).morphism
    assert p.sites["z"].values_in == "K"
    a = torch.randn(3, 2, dtype=F64)
    g, y = torch.tensor([0, 1, 2, 1]), torch.tensor([0.1, 1.9, -0.4, 2.2], dtype=F64)
    brute = Normal(f64(0.0), f64(1.0)).log_prob(a).sum()
    for n in range(4):
        means = torch.tensor([0.0, 2.0], dtype=F64)
        brute = brute + torch.logsumexp(torch.log_softmax(a[g[n]], 0) + Normal(means, f64(1.0)).log_prob(y[n]), 0)
    torch.testing.assert_close(p.log_joint(None, {"y": y, "g": g}, {"a": a}), brute)


# ---------------------------------------------------------------- algebras and reductions

MIXTURE = """
{head}
object K : FinSet 2
object Item : FinSet 3
program m : Item -> Item
    sample w : K <- HalfNormal(1.0)
    sample mu : K <- Normal(0.0, 3.0)
    marginalize z <- Categorical(w){options}
        observe y : Item <- Normal(mu[z], 1.0)
    return y
export m
"""
Y = torch.tensor([-1.0, 0.5, 2.0], dtype=F64)
WEIGHTS, MU = torch.tensor([0.4, 1.1], dtype=F64), torch.tensor([-1.0, 1.5], dtype=F64)


def mixture_brute(reduce) -> torch.Tensor:
    total = HalfNormal(f64(1.0)).log_prob(WEIGHTS).sum() + Normal(f64(0.0), f64(3.0)).log_prob(MU).sum()
    logw = (WEIGHTS / WEIGHTS.sum()).log()
    for v in Y:
        total = total + reduce(logw + Normal(MU, f64(1.0)).log_prob(v))
    return total


def lse(t):
    return torch.logsumexp(t, 0)


def best(t):
    return t.max()


@pytest.mark.parametrize("head, options, reduce, semiring", [
    ("", "", lse, LOG),
    ("composition log_prob [level=algebra]", " [reduction=logsumexp]", lse, LOG),
    ("composition log_prob [level=algebra]", " [reduction=max]", best, LOG),
    ("composition probability [level=algebra]", "", lse, PROB),
    ("composition probability as algebra", " [reduction=sum]", lse, PROB),
    ("composition max_plus [level=algebra]", "", best, MAX_PLUS),
    ("composition max_plus", " [reduction=max]", best, MAX_PLUS),
    ("algebra max_plus", "", best, MAX_PLUS),
    ("composition tropical [level=algebra]", " [reduction=min]", best, MIN_PLUS),
    ("composition boolean [level=algebra]", " [reduction=or]", best, BOOL),
])
def test_a_block_reduces_in_the_modules_algebra(head, options, reduce, semiring):
    m = loads(MIXTURE.format(head=head, options=options))
    assert m.semiring is semiring
    got = m.morphism.log_joint(None, {"y": Y}, {"w": WEIGHTS, "mu": MU})
    torch.testing.assert_close(got, mixture_brute(reduce), rtol=1e-12, atol=1e-12)


def test_max_plus_sums_a_chain_by_its_best_path():
    """A Markov block in ``max_plus`` keeps the best path's log weight
    (Viterbi), checked against every path."""
    m = _module("""
        composition max_plus [level=algebra]
        object T : FinSet 3
        object K : FinSet 2
        program hmm : T -> T
            data pi : K
            data A : K * K
            data mu : K
            marginalize z : T -> K <- Markov(init=pi, trans=A)
                observe y : T <- Normal(mu[z], 1.0)
            return y
        export hmm
    """)
    pi = torch.tensor([0.6, 0.4], dtype=F64)
    A = torch.tensor([[0.7, 0.3], [0.2, 0.8]], dtype=F64)
    mu = torch.tensor([-1.0, 1.0], dtype=F64)
    y = torch.tensor([-0.5, 0.8, 1.2], dtype=F64)
    got = m.morphism.log_joint(None, {"y": y, "pi": pi, "A": A, "mu": mu})
    paths = []
    for path in itertools.product(range(2), repeat=3):
        lp = pi[path[0]].log() + sum(A[a, b].log() for a, b in zip(path, path[1:]))
        paths.append(lp + sum(Normal(mu[k], f64(1.0)).log_prob(v) for k, v in zip(path, y)))
    torch.testing.assert_close(got, torch.stack(paths).max(), rtol=1e-12, atol=1e-12)
    lse_module = loads(m.source.replace("composition max_plus [level=algebra]\n", ""))
    torch.testing.assert_close(lse_module.morphism.log_joint(None, {"y": y, "pi": pi, "A": A, "mu": mu}),
                               torch.logsumexp(torch.stack(paths), 0), rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------- located errors


def _error(text: str, cls=QuiversTypeError) -> str:
    with pytest.raises(cls) as info:
        loads(textwrap.dedent(text).lstrip("\n"))
    return str(info.value)


def test_an_unknown_algebra_is_named_with_the_known_ones():
    message = _error("composition noisy_or [level=algebra]\n", UnknownNameError)
    assert message.startswith("line 1, column 1: unknown algebra `noisy_or`")
    assert "log_prob" in message and "max_plus" in message


def test_an_algebra_is_declared_once_at_level_algebra():
    assert "line 1, column 29: `log_prob` is an algebra (a semiring)" in _error(
        "composition log_prob [level=semigroupoid]\n")
    assert _error("composition log_prob\ncomposition max_plus\n").startswith(
        "line 2, column 1: a module has one algebra; it is already `log_prob` on line 1")


@pytest.mark.parametrize("head, reduction, expected", [
    ("", "sum", "line 6, column 48: `reduction=sum` has no meaning in the module's algebra `log_prob`"),
    ("composition max_plus", "logsumexp", "`reduction=logsumexp` has no meaning in the module's algebra `max_plus`"),
    ("composition probability", "logsumexp", "its reductions are sum, max: the weights are probabilities here"),
])
def test_a_reduction_outside_the_algebra_is_located(head, reduction, expected):
    text = MIXTURE.format(head=head, options=f" [reduction={reduction}]").lstrip("\n")
    if not head:
        text = text.lstrip("\n")
    with pytest.raises(QuiversTypeError) as info:
        loads(text)
    assert expected in str(info.value)


def test_a_density_in_a_fuzzy_algebra_is_located():
    message = _error(MIXTURE.format(head="composition godel [level=algebra]", options=""))
    assert message.startswith("line 5, column 5: `sample w` multiplies a probability density")
    assert "`godel`" in message


PROGRAM = """
object K : FinSet 3
object D : FinSet 2
object Item : FinSet 4
program p : Item -> Item
    {step}
"""


@pytest.mark.parametrize("step, expected", [
    ("sample x : D <- Normal(0.0, 1.0) [over=K]",
     "line 5, column 44: `Normal` draws one number at a time (it has no event axis), so `over=K` has no meaning"),
    ("sample x : D <- Dirichlet(1.0) [over=[K, D]]", "`Dirichlet` has 1 event axis, but `over=` names 2"),
    ("sample x : D <- Dirichlet(1.0) [over=K, iid_over=Item]",
     "`sample x : D` draws independently over `D`, but `iid_over=` says `Item`"),
    ("sample x : D * K <- Dirichlet(1.0) [over=K]", "`K` is both a plate and an event axis of `sample x`"),
    ("sample x : D <- Dirichlet(1.0) [over=KK]", "unknown object `KK`"),
    ("sample x : D <- Dirichlet(1.0) [over=2]", "option `over` takes objects"),
    ("marginalize z <- Categorical(weights=vector(K, 1.0, 2.0, 3.0))\n        observe y : Item <- Normal(0.0, 1.0)",
     "cannot tell which set `z` ranges over from `vector(K, 1.0, 2.0, 3.0)`"),
])
def test_bad_axes_are_located(step, expected):
    message = _error(PROGRAM.format(step=step))
    assert expected in message, message
    assert message.startswith("line 5, column")


# ---------------------------------------------------------------- printing and Stan


@pytest.mark.parametrize("text", [
    LDA,
    MIXTURE.format(head="composition tropical [level=algebra]", options=" [reduction=min]"),
    PROGRAM.format(step="sample x : D <- Dirichlet(1.0) [over=K]"),
])
def test_the_new_forms_round_trip(text):
    tree = parse(text)
    assert parse(dumps(tree)) == tree
    assert parse(format_source(text)) == tree
    assert format_source(format_source(text)) == format_source(text)


@pytest.mark.parametrize("spelling", ["composition log_prob as algebra", "algebra log_prob", "composition log_prob"])
def test_every_spelling_is_printed_in_the_canonical_form(spelling):
    tree = parse(spelling + "\nobject K : FinSet 2\n")
    canonical = "composition log_prob [level=algebra]\n\nobject K : FinSet 2\n"
    assert dumps(tree) == (canonical if "as" in spelling or "algebra " in spelling
                           else "composition log_prob\n\nobject K : FinSet 2\n")
    assert tree == parse(dumps(tree)) and loads(dumps(tree)).semiring is LOG


def test_stan_writes_the_blocks_reduction():
    lse_stan = to_stan(loads(MIXTURE.format(head="", options="")).morphism)
    max_stan = to_stan(loads(MIXTURE.format(head="composition max_plus", options="")).morphism)
    assert "log_sum_exp(log_softmax(" in lse_stan and "max(log_softmax(" not in lse_stan
    assert "max(log_softmax(" in max_stan and "log_sum_exp(" not in max_stan
    assert max_stan.replace("max(log_softmax(", "log_sum_exp(log_softmax(") == lse_stan


def test_stan_declares_an_iid_over_dirichlet_row_per_document():
    text = PROGRAM.format(step="sample x : D <- Dirichlet(1.0) [over=K]\n    observe y : Item <- Normal(0.0, 1.0)")
    stan = to_stan(loads(text).p)
    assert "array[D] simplex[K] x;" in stan, stan


# ---------------------------------------------------------------- product groups

PAIRS = """
object G : FinSet 2
object H : FinSet 3
object K : FinSet 2
object Item : FinSet 8
program p : Item -> Item
    {maps}sample w : G * H <- HalfNormal(1.0)
    sample mu : K <- Normal(0.0, 3.0)
    sample b : G * H <- Normal(0.0, 1.0)
    marginalize z : K <- Categorical(w) [over=G * H]
        observe y : Item <- Normal(mu[z] + b, 1.0) [via={via}]
    return y
export p
"""
GH = torch.tensor([0, 0, 1, 5, 5, 3, 2, 0])


def pairs_brute(w, mu, b, y) -> torch.Tensor:
    """One latent per pair (g, h): its rows are those mapped to g * |H| + h."""
    total = HalfNormal(f64(1.0)).log_prob(w).sum() + Normal(f64(0.0), f64(3.0)).log_prob(mu).sum()
    total = total + Normal(f64(0.0), f64(1.0)).log_prob(b).sum()
    for g, h in itertools.product(range(2), range(3)):
        per = []
        for k in range(2):
            lp = (w[g, h, k] / w[g, h].sum()).log()
            for n in range(8):
                if GH[n] == g * 3 + h:
                    lp = lp + Normal(mu[k] + b[g, h], f64(1.0)).log_prob(y[n])
            per.append(lp)
        total = total + torch.logsumexp(torch.stack(per), 0)
    return total


@pytest.mark.parametrize("maps, via, given", [
    ("data gh : Item -> G * H\n    ", "gh", {"gh": GH}),
    ("", "[g, h]", {"g": GH // 3, "h": GH % 3}),
])
def test_a_block_grouped_by_pairs_has_one_latent_per_pair(maps, via, given):
    """``[over=G * H]`` with a product map or one map per factor: the rows of
    each pair are summed (the right Kan extension along the map into
    ``G * H``) before the sum over ``K``; ``b`` on ``G * H`` is read back
    through the maps."""
    p = loads(PAIRS.format(maps=maps, via=via)).morphism
    assert p.sites["z"].dims == ("G", "H") and p.sites["w"].dims == ("G", "H", "K")
    torch.manual_seed(1)
    w, mu = torch.rand(2, 3, 2, dtype=F64) + 0.1, torch.randn(2, dtype=F64)
    b, y = torch.randn(2, 3, dtype=F64), torch.randn(8, dtype=F64)
    got = p.log_joint(None, {"y": y, **given}, {"w": w, "mu": mu, "b": b})
    torch.testing.assert_close(got, pairs_brute(w, mu, b, y), rtol=1e-12, atol=1e-12)
    draws = p.sample(None, (4,), observations=given)
    assert draws["z"].shape == (4, 2, 3) and draws["y"].shape == (4, 8)


@pytest.mark.parametrize("maps, via, expected", [
    ("", "[g]", "line 11, column 57: observe `y` has 1 index maps in [via=...], but its block groups over `G*H`"),
    ("index g : Item -> G\n    ", "g", "line 12, column 57: index map `g` maps into `G`, but the block of `y` groups over `G*H`"),
    ("index g : Item -> H\n    ", "[g, h]", "index map `g` maps into `H`, but the block of `y` groups over `G`"),
])
def test_bad_maps_of_a_grouping_by_pairs_are_located(maps, via, expected):
    with pytest.raises(QuiversTypeError) as info:
        loads(PAIRS.format(maps=maps, via=via))
    assert expected in str(info.value) and str(info.value).startswith("line ")


def test_a_grouping_by_pairs_round_trips_and_emits_to_stan():
    """(Its Stan is run against log_joint in tests/emit/test_stan_evaluated.py.)"""
    text = PAIRS.format(maps="", via="[g, h]")
    assert parse(dumps(parse(text))) == parse(text)
    assert "ll_z[g[i], h[i], k] +=" in to_stan(loads(text).morphism)


# ---------------------------------------------------------------- the module's kernel

KERNEL = """
composition {algebra} [level=algebra]
object A : FinSet 2
object B : FinSet 2
program p(a) : A -> B
    sample b <- Bernoulli(0.5 * a)
    sample c <- Bernoulli(0.3)
    return b
export p
"""


@pytest.mark.parametrize("algebra, semiring, expected", [
    ("probability", PROB, lambda pb, pc: pb.double()),
    ("max_plus", MAX_PLUS, lambda pb, pc: pb.log() + pc.log().max()),
    ("tropical", MIN_PLUS, lambda pb, pc: -(pb.log() + pc.log().max())),
    ("boolean", BOOL, lambda pb, pc: pb > 0),
])
def test_the_module_kernel_is_taken_in_its_algebra(algebra, semiring, expected):
    """The kernel of a discrete program in the module's semiring equals
    enumeration of its latents: reachability in boolean, the most probable
    explanation's weight in max_plus, its cost in tropical."""
    m = loads(KERNEL.format(algebra=algebra))
    k = m.kernel()
    assert k.semiring is semiring
    pb = torch.tensor([[1.0, 0.0], [0.5, 0.5]], dtype=F64)  # p(b | a)
    pc = torch.tensor([0.7, 0.3], dtype=F64)
    want = expected(pb, pc)
    if semiring is BOOL:
        assert torch.equal(k.tensor, want)
    else:
        torch.testing.assert_close(k.tensor.double(), want, rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------- the peer's forms


def test_the_peers_grouped_mixture_loads_as_written_and_is_exact():
    """docs/examples/source/mixture_model.qvr of the peer (0.11 to 0.14):
    ``composition log_prob as algebra``, one simplex ``[over=Component]``,
    one latent class per Item through ``via=idx``."""
    m = _module("""
        composition log_prob as algebra

        object Component : FinSet 3
        object Item : FinSet 4
        object Resp : FinSet 10

        program gmm(alpha : Real) : Resp -> Resp
            sample probs <- Dirichlet(alpha) [over=Component]
            sample mu : Component <- Normal(0.0, 5.0)
            sample sigma : Component <- HalfNormal(1.0)

            marginalize cls : Component <- Categorical(probs) [over=Item, reduction=logsumexp]
                observe r : Resp <- Normal(mu[cls], sigma[cls]) [via=idx]

            return probs

        export gmm
    """)
    assert m.data["gmm"]["idx"].kind == "index"
    torch.manual_seed(2)
    probs = Dirichlet(torch.ones(3, dtype=F64)).sample()
    mu, sigma = torch.randn(3, dtype=F64), torch.rand(3, dtype=F64) + 0.5
    idx, r = torch.arange(10) % 4, torch.randn(10, dtype=F64)
    got = m.morphism.log_joint(None, {"r": r, "idx": idx, "alpha": f64(2.0)}, {"probs": probs, "mu": mu, "sigma": sigma})
    brute = Dirichlet(torch.full((3,), 2.0, dtype=F64)).log_prob(probs)
    brute = brute + Normal(f64(0.0), f64(5.0)).log_prob(mu).sum() + HalfNormal(f64(1.0)).log_prob(sigma).sum()
    for item in range(4):
        rows = [n for n in range(10) if idx[n] == item]
        per = [probs[k].log() + sum(Normal(mu[k], sigma[k]).log_prob(r[n]) for n in rows) for k in range(3)]
        brute = brute + torch.logsumexp(torch.stack(per), 0)
    torch.testing.assert_close(got, brute, rtol=1e-12, atol=1e-12)


def test_iid_over_alone_is_the_plate_and_over_on_an_observe_is_its_event_axis():
    p = _module("""
        object D : FinSet 2
        object N : FinSet 5
        program m : N -> N
            data L : D * D
            sample mu <- Normal(0.0, 1.0) [iid_over=D]
            observe y : N <- MultivariateNormal(mu, scale_tril=L) [over=D]
            return y
        export m
    """).morphism
    assert p.sites["mu"].dims == ("D",) and p.sites["y"].dims == ("N", "D") and p.sites["y"].event_dims == ("D",)
    L = torch.tensor([[1.0, 0.0], [0.3, 0.8]], dtype=F64)
    mu, y = torch.tensor([0.2, -0.1], dtype=F64), torch.randn(5, 2, dtype=F64)
    want = Normal(f64(0.0), f64(1.0)).log_prob(mu).sum()
    want = want + torch.distributions.MultivariateNormal(mu, scale_tril=L).log_prob(y).sum()
    torch.testing.assert_close(p.log_joint(None, {"y": y, "L": L}, {"mu": mu}), want, rtol=1e-12, atol=1e-12)


def test_a_matrix_family_takes_two_event_axes():
    """``[over=K * K]`` (or ``[over=[K, K]]``) names the two axes of an
    LKJCholesky draw; one draw per element of the plate ``G``."""
    for over in ("K * K", "[K, K]"):
        p = _module(f"""
            object K : FinSet 3
            object G : FinSet 2
            program p : G -> G
                sample L : G <- LKJCholesky(2.0) [over={over}]
                return L
            export p
        """).morphism
        assert p.sites["L"].dims == ("G", "K", "K'") and p.sites["L"].event_dims == ("K", "K'")
        L = torch.distributions.LKJCholesky(3, f64(2.0)).sample((2,))
        want = torch.distributions.LKJCholesky(3, f64(2.0)).log_prob(L).sum()
        torch.testing.assert_close(p.log_joint(None, None, {"L": L}), want, rtol=1e-12, atol=1e-12)
