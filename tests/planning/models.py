"""Small programs with discrete sample sites, and the brute-force sum of
their log joint over every value of every copy of those sites (one batched
call of the program's own density with the sites given, in float64)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch

from quivers.categories import FinSet
from quivers.distributions import Bernoulli, Categorical, HalfNormal, Normal
from quivers.programs import Program, index_map, observe, sample, var

F64 = torch.float64


@dataclass(frozen=True)
class Shape:
    """Which sites a random program has: a shared Categorical ``a``, a
    shared Bernoulli ``b``, a Categorical ``c`` per group (read through the
    index map ``group``), a Categorical ``d`` per row, a continuous latent
    ``x`` that reads ``a``; and whether ``c`` reads ``a`` and ``d`` reads ``c``."""

    a: bool
    b: bool
    c: bool
    d: bool
    x: bool
    c_reads_a: bool
    d_reads_c: bool
    n: int = 3
    g: int = 2


def build(shape: Shape) -> Program:
    Item, G = FinSet("Item", shape.n), FinSet("G", shape.g)
    K, J, L = FinSet("K", 2), FinSet("J", 2), FinSet("L", 2)
    steps = [sample("mu_k", K, Normal(0.0, 2.0)), sample("mu_j", J, Normal(0.0, 2.0)),
             sample("mu_l", L, Normal(0.0, 2.0))]
    loc = 0.0
    if shape.a:
        steps += [sample("wa", K, HalfNormal(1.0)), sample("a", None, Categorical(var("wa")))]
        loc = loc + var("mu_k")[var("a")]
    if shape.b:
        steps += [sample("b", None, Bernoulli(0.3))]
        loc = loc + 2.0 * var("b")
    if shape.c:
        steps += [index_map("group", Item, G)]
        if shape.a and shape.c_reads_a:
            steps += [sample("wc", K * J, HalfNormal(1.0)), sample("c", G, Categorical(var("wc")[var("a")]))]
        else:
            steps += [sample("wc", J, HalfNormal(1.0)), sample("c", G, Categorical(var("wc")))]
        loc = loc + var("mu_j")[var("c")[var("group")]]
    if shape.d:
        if shape.c and shape.d_reads_c:
            steps += [sample("wd", J * L, HalfNormal(1.0)),
                      sample("d", Item, Categorical(var("wd")[var("c")[var("group")]]))]
        else:
            steps += [sample("wd", L, HalfNormal(1.0)), sample("d", Item, Categorical(var("wd")))]
        loc = loc + var("mu_l")[var("d")]
    if shape.x and shape.a:
        steps += [sample("x", None, Normal(var("mu_k")[var("a")], 1.0))]
        loc = loc + var("x")
    steps += [observe("y", Item, Normal(loc, 1.0))]
    return Program("random", Item, Item, steps)


def values(program: Program, gen: torch.Generator) -> tuple[dict, dict]:
    """Random observations and values of the continuous latents."""
    obs = {"y": torch.randn(program.sites["y"].shape, generator=gen, dtype=F64) * 2}
    if "group" in program.sites:
        n, g = program.sites["y"].shape[0], program.index_maps["group"][1].size
        obs["group"] = torch.arange(n) % g
    lat = {}
    for s in program.latent_sites():
        if s.discrete:
            continue
        t = torch.randn(s.shape, generator=gen, dtype=F64)
        lat[s.name] = t.abs() + 0.1 if s.name.startswith("w") else t
    return obs, lat


def assignments(program: Program, summed: list[str]) -> dict[str, torch.Tensor]:
    """Every joint value of the ``summed`` sites (each copy on its plate),
    on a leading axis."""
    sites = [program.sites[n] for n in summed]
    sizes = [2 if s.family.name == "Bernoulli" else s.num_values for s in sites]
    copies = [max(1, int(torch.tensor(s.shape).prod())) for s in sites]
    grids = [list(itertools.product(range(k), repeat=c)) for k, c in zip(sizes, copies)]
    rows = list(itertools.product(*grids))
    given = {}
    for j, s in enumerate(sites):
        t = torch.tensor([r[j] for r in rows])
        t = t.reshape((len(rows),) + tuple(s.shape))
        given[s.name] = t.to(F64) if s.family.name == "Bernoulli" else t
    return given


def brute_force(program: Program, summed: list[str], obs: dict, lat: dict) -> torch.Tensor:
    """log sum over every joint value of the ``summed`` sites of
    ``program.log_joint`` with them given."""
    return torch.logsumexp(program.log_joint(None, obs, {**lat, **assignments(program, summed)}), 0)


def hmm_chain(n: int, k: int = 2, miss: str | None = None) -> tuple[Program, Program]:
    """An HMM written as ``n`` plain sample sites in a chain,
    ``z{t} ~ Categorical(A[z{t-1}])`` each observed by ``y{t}``, and the
    same model as a ``markov`` block. ``miss`` breaks the chain pattern at
    step ``min(2, n - 1)``: ``"table"`` gives that step its own table
    ``B``, ``"skip"`` makes it read ``z0`` too (through ``B``), ``"emission"``
    observes it with another scale, ``"unobserved"`` leaves it unobserved
    (the markov block is then the pattern's model, not this one)."""
    from quivers.distributions import Categorical
    from quivers.programs import markov

    T, K = FinSet("T", n), FinSet("K", k)
    head = [sample("A", K * K, HalfNormal(1.0)), sample("pi", K, HalfNormal(1.0)), sample("mu", K, Normal(0.0, 2.0))]
    if miss in ("table", "skip"):
        head.append(sample("B", K * K, HalfNormal(1.0)))
    odd = min(2, n - 1)
    steps = head + [sample("z0", None, Categorical(var("pi")))]
    for t in range(1, n):
        w = var("A")[var(f"z{t - 1}")]
        if t == odd and miss == "table":
            w = var("B")[var(f"z{t - 1}")]
        elif t == odd and miss == "skip":
            w = w * var("B")[var("z0")]
        steps.append(sample(f"z{t}", None, Categorical(w)))
    for t in range(n):
        if t == odd and miss == "unobserved":
            continue
        scale = 2.0 if t == odd and miss == "emission" else 1.0
        steps.append(observe(f"y{t}", None, Normal(var("mu")[var(f"z{t}")], scale)))
    hmm = Program("hmm", T, T, head + [
        markov("z", T, K, Categorical(var("A")), [observe("y", T, Normal(var("mu")[var("z")], 1.0))],
               init=Categorical(var("pi")))])
    return Program("chain", T, T, steps), hmm


def hmm_values(program: Program, gen: torch.Generator) -> tuple[dict, dict]:
    """Random observations ``y{t}`` and tables of :func:`hmm_chain`, float64."""
    obs = {n: torch.randn((), generator=gen, dtype=F64) for n, s in program.sites.items() if s.kind == "observed"}
    lat = {n: torch.rand(program.sites[n].shape, generator=gen, dtype=F64) + 0.1 for n in ("A", "B", "pi")
           if n in program.sites}
    lat["mu"] = torch.randn(program.sites["mu"].shape, generator=gen, dtype=F64) * 2
    return obs, lat
