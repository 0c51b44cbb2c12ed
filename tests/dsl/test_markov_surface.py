"""The QVR surface of Markov chains: ``marginalize z : T -> K <- Markov(...)``
compiles to the ``markov`` combinator (same log joint as the program built
by hand), prints back to itself, and bad source gets located errors."""

from __future__ import annotations

import textwrap

import pytest
import torch

from quivers.categories import FinSet
from quivers.distributions import Categorical, Dirichlet, HalfNormal, Normal
from quivers.dsl import ast, dumps, loads, parse
from quivers.errors import QuiversError, QuiversTypeError, ShapeError, UnknownNameError
from quivers.programs import Program, index_map, markov, observe, sample, var

HMM = """\
object S : FinSet 3
object T : FinSet 5
object K : FinSet 2

program seqs : S * T -> S * T [effects=[Sample, Score, Marginal]]
    index last : S -> T
    sample A : K * K <- Dirichlet(1.0)
    sample pi : K <- HalfNormal(1.0)
    sample mu : K <- Normal(0.0, 5.0)
    marginalize z : S * T -> K <- Markov(init=pi, trans=A) [until=last]
        observe y : S * T <- Normal(mu[z], 1.0)

export seqs
"""


def by_hand() -> Program:
    S, T, K = FinSet("S", 3), FinSet("T", 5), FinSet("K", 2)
    mu, z = var("mu"), var("z")
    return Program("seqs", S * T, S * T, [
        index_map("last", S, T),
        sample("A", K * K, Dirichlet(1.0)),
        sample("pi", K, HalfNormal(1.0)),
        sample("mu", K, Normal(0.0, 5.0)),
        markov("z", S * T, K, Categorical(var("A")), [observe("y", S * T, Normal(mu[z], 1.0))],
               init=Categorical(var("pi")), until="last"),
    ])


def data():
    g = torch.Generator().manual_seed(0)
    obs = {"y": torch.randn(3, 5, generator=g), "last": torch.tensor([4, 1, 2])}
    lat = {"A": torch.tensor([[0.8, 0.2], [0.3, 0.7]]), "pi": torch.tensor([0.4, 1.2]), "mu": torch.tensor([-1.0, 1.0])}
    return obs, lat


def test_qvr_compiles_to_the_markov_combinator():
    m = loads(HMM)
    step = m.morphism.steps[-1]
    assert step == by_hand().steps[-1]
    obs, lat = data()
    torch.testing.assert_close(m.morphism.log_joint(None, obs, lat), by_hand().log_joint(None, obs, lat))
    torch.testing.assert_close(
        m.morphism.posterior_latents(None, obs, lat)["z"], by_hand().posterior_latents(None, obs, lat)["z"]
    )


def test_logits_keywords_give_categorical_logits():
    src = HMM.replace("Markov(init=pi, trans=A)", "Markov(init_logits=mu, trans_logits=A)")
    step = loads(src).morphism.steps[-1]
    assert set(step.prior.args) == {"logits"} and set(step.init.args) == {"logits"}
    src = HMM.replace("Markov(init=pi, trans=A)", "Markov(trans=A)")
    assert loads(src).morphism.steps[-1].init is None  # uniform


def test_the_surface_prints_back_to_itself():
    m = parse(HMM)
    assert dumps(m) == HMM
    (chain,) = [s for s in m.items[3].body if isinstance(s, ast.Markov)]
    assert chain.index_set == ast.SetProduct(ast.SetName("S"), ast.SetName("T"))
    assert chain.support == ast.SetName("K")
    assert [k.name for k in chain.prior.kwargs] == ["init", "trans"]
    assert parse(dumps(m)) == m


def load_error(body: str) -> QuiversError:
    src = "object S : FinSet 3\nobject T : FinSet 4\nobject K : FinSet 2\nprogram p : T -> T\n"
    src += "    sample A : K * K <- Dirichlet(1.0)\n    sample mu : K <- Normal(0.0, 5.0)\n"
    src += textwrap.indent(textwrap.dedent(body), "    ")
    with pytest.raises(QuiversError) as info:
        loads(src)
    return info.value


@pytest.mark.parametrize("body, kind, message", [
    ("""\
     marginalize z : T -> K <- Categorical(A)
         observe y : T <- Normal(mu[z], 1.0)
     """, QuiversTypeError, "line 7, column 31: `marginalize z : T -> K` is a latent path and needs a Markov prior, got `Categorical`"),
    ("""\
     marginalize z : T -> K <- Markov(A)
         observe y : T <- Normal(mu[z], 1.0)
     """, QuiversTypeError, "line 7, column 38: `Markov` takes keyword arguments only"),
    ("""\
     marginalize z : T -> K <- Markov(init=mu)
         observe y : T <- Normal(mu[z], 1.0)
     """, QuiversTypeError, "`Markov` needs its transition: `trans=A` (weights on `K * K`)"),
    ("""\
     marginalize z : T -> K <- Markov(tran=A)
         observe y : T <- Normal(mu[z], 1.0)
     """, UnknownNameError, "`Markov` has no parameter `tran`; its parameters are init, init_logits, first, first_logits, trans, trans_logits; did you mean `trans`?"),
    ("""\
     marginalize z : T -> K <- Markov(trans=A, trans_logits=A)
         observe y : T <- Normal(mu[z], 1.0)
     """, QuiversTypeError, "`Markov` is given its transition twice, as `trans` and `trans_logits`"),
    ("""\
     marginalize z : S * T -> K <- Markov(trans=A) [until=mu]
         observe y : S * T <- Normal(mu[z], 1.0)
     """, QuiversTypeError, "line 7, column 58: until=mu of markov `z` must name an index map `S -> T` (the last step of each sequence); declare it with index_map('mu', S, T) (in QVR: `index mu : S -> T`)"),
    ("""\
     marginalize z : T -> K <- Markov(trans=A) [over=K]
         observe y : T <- Normal(mu[z], 1.0)
     """, UnknownNameError, "unknown option `over` for `markov`; known options: until"),
    ("""\
     marginalize c : K <- Categorical(mu)
         marginalize z : T -> K <- Markov(trans=A)
             observe y : T <- Normal(mu[z], 1.0)
     """, QuiversTypeError, "line 8, column 9: markov `z` is inside the block of `c`; a chain must stand at the top level"),
    ("""\
     marginalize z : K <- Markov(trans=A)
         observe y : T <- Normal(mu[z], 1.0)
     """, QuiversTypeError, "marginalize `z` has a Markov prior, but its latent is not a path; a chain's latent has one state per step: `marginalize z : T -> K <- Markov(...)`"),
    ("""\
     marginalize z : T -> K <- Markov(trans=mu[0])
         observe y : T <- Normal(mu[z], 1.0)
     """, ShapeError, "line 7, column 5: markov `z`, transition `weights`: `index(mu, 0)` has axes [], none of them `K` or `K'`"),
    ("""\
     marginalize z : T -> K <- Markov(trans=A)
         observe y : S <- Normal(mu[z], 1.0)
     """, ShapeError, "line 8, column 9: observe `y` in the body of markov `z` is on `S`, but the path is over `T`"),
    ("""\
     marginalize z : T -> K <- Markov(trans=A)
         observe y : T <- Normal(mu[z], 1.0)
     let w = z
     """, QuiversTypeError, "`z` is marginalized out by the block on line 7 and is only in scope inside it"),
    ("""\
     index last : S -> K
     marginalize z : S * T -> K <- Markov(trans=A) [until=last]
         observe y : S * T <- Normal(mu[z], 1.0)
     """, ShapeError, "until=last of markov `z` is an index map `S -> K`, but the path needs `S -> T`"),
])
def test_bad_chains_get_located_errors(body, kind, message):
    err = load_error(body)
    assert isinstance(err, kind), (type(err), err)
    assert err.span is not None and "\n" in str(err)  # the line, with a caret
    assert message in str(err), str(err)


def test_a_transition_on_a_single_state_axis_is_one_law_for_every_state():
    # `trans=mu` (on K) builds: the chain's steps are then independent draws
    # (a transition that ignores the previous state), not a shape error.
    src = HMM.replace("Markov(init=pi, trans=A)", "Markov(init=pi, trans=pi)")
    obs, lat = data()
    prog = loads(src).morphism
    assert torch.isfinite(prog.log_joint(None, obs, lat))


SECOND_ORDER = """\
object T : FinSet 6
object K : FinSet 2

program h2 : T -> T
    sample C : K * K * K <- Dirichlet(1.0)
    sample B : K * K <- Dirichlet(1.0)
    sample mu : K <- Normal(0.0, 5.0)
    marginalize z : T -> K <- Markov(first=B, trans=C)
        observe y : T <- Normal(mu[z], 1.0)

export h2
"""


def test_first_makes_a_second_order_chain():
    T, K = FinSet("T", 6), FinSet("K", 2)
    mu, z = var("mu"), var("z")
    hand = Program("h2", T, T, [
        sample("C", K * K * K, Dirichlet(1.0)),
        sample("B", K * K, Dirichlet(1.0)),
        sample("mu", K, Normal(0.0, 5.0)),
        markov("z", T, K, Categorical(var("C")), [observe("y", T, Normal(mu[z], 1.0))], first=Categorical(var("B"))),
    ])
    m = loads(SECOND_ORDER)
    assert dumps(parse(SECOND_ORDER)) == SECOND_ORDER
    prog = m.morphism
    assert prog.steps[-1] == hand.steps[-1] and prog.steps[-1].order == 2
    assert prog.sites["C"].dims == ("K", "K'", "K''")
    g = torch.Generator().manual_seed(0)
    lat = {"C": torch.rand(2, 2, 2, generator=g) + 0.1, "B": torch.rand(2, 2, generator=g) + 0.1,
           "mu": torch.tensor([-1.0, 1.0])}
    lat = {k: v / v.sum(-1, keepdim=True) if k != "mu" else v for k, v in lat.items()}
    obs = {"y": torch.randn(6, generator=g)}
    torch.testing.assert_close(prog.log_joint(None, obs, lat), hand.log_joint(None, obs, lat))
    assert torch.equal(prog.map_latents(None, obs, lat)["z"], hand.map_latents(None, obs, lat)["z"])
    src = SECOND_ORDER.replace("Markov(first=B, trans=C)", "Markov(first_logits=B, trans_logits=C)")
    step = loads(src).morphism.steps[-1]
    assert set(step.prior.args) == {"logits"} and set(step.first.args) == {"logits"}


@pytest.mark.parametrize("chain, kind, message", [
    ("Markov(first=B, first_logits=B, trans=C)", QuiversTypeError,
     "`Markov` is given its first step twice, as `first` and `first_logits`"),
    ("Markov(first=B, trans=B)", ShapeError,
     "markov `z`, transition `weights`: `B` has axes ['K', \"K'\"], none of them `K''`"),
    ("Markov(first=C, trans=C)", ShapeError,
     "markov `z`, first step `weights`: `C` varies over `K''`"),
])
def test_bad_second_order_chains_get_located_errors(chain, kind, message):
    with pytest.raises(QuiversError) as info:
        loads(SECOND_ORDER.replace("Markov(first=B, trans=C)", chain))
    err = info.value
    assert isinstance(err, kind), (type(err), err)
    assert err.span is not None and "\n" in str(err)
    assert message in str(err), str(err)
