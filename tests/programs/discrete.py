"""Small random discrete programs, and their kernels by brute force.

A :class:`Spec` describes a program ``dom -> cod`` by its tables alone:

    u    ~ Categorical(W[a])            (W[0] when it takes no input)
    flip ~ Bernoulli(P[u])              (optional)
    marginalize z : Z <- Categorical(M[u])   (optional)
        factor L[z, u]
    return f(u)  or  g(u, flip)

:func:`build` turns it into a :class:`~quivers.programs.Program`, and
:func:`brute_kernel` enumerates its latents with Python loops in float64,
never calling the runtime, and reduces in the semiring by hand.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch
from hypothesis import strategies as st

from quivers.categories import FinFunction, FinSet
from quivers.distributions import Bernoulli, Categorical
from quivers.programs import Program, apply, const, factor, marginalize, pair, ret, sample, var


@dataclass(frozen=True)
class Spec:
    prefix: str
    dom: FinSet
    cod: FinSet
    takes_input: bool
    W: tuple  # (|dom| or 1) rows of |U| weights
    P: tuple | None  # |U| probabilities of flip
    M: tuple | None  # |U| rows of |Z| weights
    L: tuple | None  # |Z| rows of |U| log factors
    out: tuple  # the return table: over U, or over U * 2 with flip

    @property
    def U(self) -> FinSet:
        return FinSet(self.prefix + "U", len(self.W[0]))

    @property
    def Z(self) -> FinSet:
        return FinSet(self.prefix + "Z", len(self.M[0]))

    @property
    def F(self) -> FinSet:
        return FinSet(self.prefix + "F", 2)


def build(spec: Spec) -> Program:
    n = spec.prefix
    U, a, u = spec.U, var(n + "a"), var(n + "u")
    W = torch.tensor(spec.W)
    weights = const(W, spec.dom * U)[a] if spec.takes_input else const(W[0], U)
    steps = [sample(n + "u", None, Categorical(weights))]
    if spec.P is not None:
        steps.append(sample(n + "flip", None, Bernoulli(const(torch.tensor(spec.P), U)[u])))
    if spec.M is not None:
        Z, z = spec.Z, var(n + "z")
        L = const(torch.tensor(spec.L), Z * U)
        steps.append(marginalize(n + "z", Z, Categorical(const(torch.tensor(spec.M), U * Z)[u]), [factor(L[z, u])]))
    if spec.P is None:
        steps.append(ret(apply(FinFunction(U, spec.cod, list(spec.out)), u)))
    else:
        g = FinFunction(U * spec.F, spec.cod, list(spec.out))
        steps.append(ret(apply(g, pair(u, var(n + "flip"), U, spec.F))))
    return Program(n + "prog", spec.dom, spec.cod, steps, input=n + "a" if spec.takes_input else None)


def _log(x: float) -> float:
    return math.log(x) if x > 0 else -math.inf


def brute_log_terms(spec: Spec) -> list[list[tuple[float, int]]]:
    """For each input, the (log weight, return value) of every assignment."""
    rows = []
    for a in range(spec.dom.size):
        w = spec.W[a if spec.takes_input else 0]
        terms = []
        flips = (0, 1) if spec.P is not None else (None,)
        zs = range(len(spec.M[0])) if spec.M is not None else (None,)
        for u, flip, z in itertools.product(range(len(w)), flips, zs):
            lw = _log(w[u] / sum(w))
            if flip is not None:
                lw += _log(spec.P[u] if flip else 1 - spec.P[u])
            if z is not None:
                m = spec.M[u]
                lw += _log(m[z] / sum(m)) + spec.L[z][u]
            b = spec.out[u] if flip is None else spec.out[u * 2 + flip]
            terms.append((lw, b))
        rows.append(terms)
    return rows


def _lse(xs: list[float]) -> float:
    m = max(xs, default=-math.inf)
    if m == -math.inf:
        return -math.inf
    return m + math.log(sum(math.exp(x - m) for x in xs))


REDUCE = {
    "LOG": (_lse, lambda l: l),
    "PROB": (sum, math.exp),
    "MAX_PLUS": (lambda xs: max(xs, default=-math.inf), lambda l: l),
    "MAX_TIMES": (lambda xs: max(xs, default=0.0), math.exp),
    "MIN_PLUS": (lambda xs: min(xs, default=math.inf), lambda l: -l),
    "BOOL": (any, lambda l: l > -math.inf),
}


def brute_kernel(spec: Spec, semiring_name: str) -> torch.Tensor:
    reduce, weight = REDUCE[semiring_name]
    table = []
    for terms in brute_log_terms(spec):
        table.append([reduce([weight(lw) for lw, r in terms if r == b]) for b in range(spec.cod.size)])
    dtype = torch.bool if semiring_name == "BOOL" else torch.float64
    return torch.tensor(table, dtype=dtype)


# ---------------------------------------------------------------- strategies

_weights = st.sampled_from([0.0, 0.5, 1.0, 3.0])
_probs = st.sampled_from([0.1, 0.5, 0.8])
_logs = st.sampled_from([-math.inf, -1.5, 0.0, 0.7])


def _row(n: int, values=_weights) -> st.SearchStrategy[tuple]:
    # at least one positive weight, so every row is a distribution
    return st.lists(values, min_size=n, max_size=n).filter(lambda r: sum(r) > 0).map(tuple)


@st.composite
def specs(draw, prefix: str, dom: FinSet, cod: FinSet) -> Spec:
    """A random :class:`Spec` ``dom -> cod`` whose names start with ``prefix``."""
    k = draw(st.integers(1, 3), label=f"{prefix}|U|")
    takes_input = draw(st.booleans(), label=f"{prefix} takes its input")
    W = tuple(draw(_row(k)) for _ in range(dom.size if takes_input else 1))
    P = tuple(draw(st.lists(_probs, min_size=k, max_size=k))) if draw(st.booleans()) else None
    M = L = None
    if draw(st.booleans()):
        z = draw(st.integers(1, 2))
        M = tuple(draw(_row(z)) for _ in range(k))
        L = tuple(tuple(draw(st.lists(_logs, min_size=k, max_size=k))) for _ in range(z))
    out = tuple(draw(st.lists(st.integers(0, cod.size - 1), min_size=k * (2 if P else 1), max_size=k * (2 if P else 1))))
    return Spec(prefix, dom, cod, takes_input, W, P, M, L, out)


def objects(*names: str) -> st.SearchStrategy[list[FinSet]]:
    return st.lists(st.integers(1, 3), min_size=len(names), max_size=len(names)).map(
        lambda sizes: [FinSet(n, s) for n, s in zip(names, sizes)]
    )
