"""``Mixture`` with its weights written as a list: ``Mixture([0.3, 0.7],
[Normal(0.0, 1.0), Normal(3.0, 1.0)])``, the list along the components.

Log densities are checked against scipy in float64, the list's length and
simplex against located errors, the text against the printer and `qvr
fmt`, and the Stan emitted against the interpreter of tests/emit.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats
from scipy.special import logsumexp

from quivers.dsl import dumps, loads, parse
from quivers.dsl.format import format_source
from quivers.emit import to_stan
from quivers.errors import InvalidValueError, QuiversTypeError
from tests.emit.test_stan_evaluated import compare

F64 = torch.float64

MODULE = """\
object Obs : FinSet 6

program p : Obs -> Obs
    sample m <- Normal(0.0, 1.0)
    sample q <- Beta(2.0, 2.0)
    observe y : Obs <- Mixture([0.3, 0.7], [Normal(m, 1.0), Normal(3.0, 1.0)])
    observe z : Obs <- Mixture([q, 1 - q], Normal(m, 1.0), StudentT(3.0, 1.0, 2.0))
    observe u : Obs <- Mixture(Normal(m, 1.0), Normal(3.0, 1.0), Normal(-3.0, 0.5), logits=[0.5, -1.0, 0.0])
    observe k : Obs <- Mixture([0.25, 0.25, 0.5], components=[Poisson(1.0), Poisson(4.0), Geometric(0.5)])

export p
"""

Y = torch.tensor([0.0, 1.0, 2.0, 3.0, -1.0, 5.0], dtype=F64)
K = torch.tensor([0, 1, 2, 3, 5, 8], dtype=F64)


def _mixture(log_w, parts):
    return float(logsumexp(np.log(log_w)[None, :] + np.stack(parts, -1), axis=-1).sum())


def _by_scipy(m: float, q: float) -> float:
    y = Y.numpy()
    k = K.numpy().astype(int)
    prior = stats.norm(0, 1).logpdf(m) + stats.beta(2, 2).logpdf(q)
    ly = _mixture(np.array([0.3, 0.7]), [stats.norm(m, 1).logpdf(y), stats.norm(3, 1).logpdf(y)])
    lz = _mixture(np.array([q, 1 - q]), [stats.norm(m, 1).logpdf(y), stats.t(3, 1, 2).logpdf(y)])
    w = np.exp(np.array([0.5, -1.0, 0.0]) - logsumexp([0.5, -1.0, 0.0]))
    lu = _mixture(w, [stats.norm(m, 1).logpdf(y), stats.norm(3, 1).logpdf(y), stats.norm(-3, 0.5).logpdf(y)])
    # torch's Geometric counts failures before the first success: scipy's geom shifted by one
    lk = _mixture(np.array([0.25, 0.25, 0.5]),
                  [stats.poisson(1).logpmf(k), stats.poisson(4).logpmf(k), stats.geom(0.5, loc=-1).logpmf(k)])
    return prior + ly + lz + lu + lk


def test_list_weights_have_the_mixture_log_density_of_scipy(float64) -> None:
    p = loads(MODULE).p
    obs = {"y": Y, "z": Y, "u": Y, "k": K}
    for m, q in [(0.5, 0.2), (-1.3, 0.9), (2.0, 0.5)]:
        got = p.log_joint(None, obs, {"m": torch.tensor(m, dtype=F64), "q": torch.tensor(q, dtype=F64)})
        assert got.item() == pytest.approx(_by_scipy(m, q), rel=1e-12, abs=1e-10)


def test_list_weights_sample_in_their_proportions() -> None:
    p = loads(MODULE).p
    torch.manual_seed(0)
    draws = p.sample(None, (4000,), latents={"m": torch.tensor(0.0), "q": torch.tensor(0.5)})
    # Mixture([0.3, 0.7], N(0, 1), N(3, 1)): mean 2.1, P(y > 1.5) = 0.3 P(N(0,1) > 1.5) + 0.7 P(N(3,1) > 1.5)
    y = draws["y"].reshape(-1).double()
    assert y.mean().item() == pytest.approx(2.1, abs=0.05)
    want = 0.3 * stats.norm.sf(1.5) + 0.7 * stats.norm(3, 1).sf(1.5)
    assert (y > 1.5).double().mean().item() == pytest.approx(want, abs=0.02)


@pytest.mark.parametrize(
    "old, new, cls, message",
    [
        ("[0.3, 0.7], [Normal", "[0.3, 0.2, 0.5], [Normal", QuiversTypeError,
         r"line 6, column 32: `Mixture` has 2 component families but its weights `\[0.3, 0.2, 0.5\]` have 3 entries"),
        ("logits=[0.5, -1.0, 0.0]", "logits=[0.5, -1.0]", QuiversTypeError,
         r"line 8, column .*: `Mixture` has 3 component families but its logits `\[0.5, -1.0\]` have 2 entries"),
        ("[0.3, 0.7], [Normal", "[1.2, -0.2], [Normal", InvalidValueError,
         r"line 6, column 38: the weights `\[1.2, -0.2\]` of `Mixture` has the negative entry `-0.2`"),
        ("[0.3, 0.7], [Normal", "[0.3, 0.6], [Normal", InvalidValueError,
         r"line 6, column 32: the weights `\[0.3, 0.6\]` of `Mixture` sum to 0.9, not 1"),
        ("[0.25, 0.25, 0.5]", "[0.25, 0.25, 0.25]", InvalidValueError, r"line 9, .* sum to 0.75, not 1"),
    ],
)
def test_list_weights_of_the_wrong_length_or_off_the_simplex_are_located(old, new, cls, message) -> None:
    assert old in MODULE
    with pytest.raises(cls, match=message):
        loads(MODULE.replace(old, new))


def test_list_weights_within_the_tolerance_of_one_load() -> None:
    p = loads(MODULE.replace("[0.3, 0.7], [Normal", "[0.3, 0.7000000001], [Normal")).p
    assert p.sites["y"].family.spec.name == "Mixture"


def test_list_weights_round_trip_through_the_printer_and_fmt() -> None:
    module = parse(MODULE)
    text = dumps(module)
    assert "Mixture([0.3, 0.7], [Normal(m, 1.0), Normal(3.0, 1.0)])" in text
    assert parse(text) == module
    assert format_source(MODULE) == text
    assert format_source(text) == text


def test_list_weights_emit_stan_that_scores_as_quivers_does(float64) -> None:
    p = loads(MODULE).p
    code = to_stan(p)
    assert "vector[Components2] y_weights;" in code and "vector[Components3] u_logits;" in code
    obs = {"y": Y, "z": Y, "u": Y, "k": K.long()}
    diffs = compare(p, obs, ["m", "q"])
    torch.testing.assert_close(torch.tensor(diffs), torch.zeros(4, dtype=F64), rtol=0, atol=1e-9)
