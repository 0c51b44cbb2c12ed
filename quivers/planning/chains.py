"""Chains of discrete sample sites, recognized and summed as a ``markov``
block.

An HMM written with plain sample sites,

    z0 ~ Categorical(pi),  z[t] ~ Categorical(A[z[t-1]]),  y[t] ~ F(z[t]),

is a chain of shared variables. Eliminated one site at a time it costs a
site evaluation, a product and a sum per step; the ``markov`` block sums
the same chain by the forward algorithm on one ``(T, K, K)`` tensor
(:func:`quivers.categories.markov.forward`). :func:`lower_chains` finds
such chains and writes each as the block a user would write: a path over a
time object of ``T`` steps, whose one observation on the time object reads
the ``T`` observations as one tensor (:meth:`Chain.stack`). The pattern
must hold exactly, or the sites stay with the general plan:

- every site of the chain is a top-level scalar ``Categorical`` summed
  site with the same number of values;
- the head's law reads a table ``pi`` on the states ``K`` only, and every
  later site's law is the same expression ``A[z[t-1]]`` of the site before
  it, ``A`` one table on ``K * K``: a step with its own table, or one that
  reads a site other than the one before it (a skip connection), is no
  chain;
- every site is read by the next one and by exactly one scalar
  observation, the same law of it at every step; nothing else reads the
  sites or the observations.

Laws
----
The lowered program's log joint, posterior marginals, most probable
values and joint draws equal those of the general plan and of brute-force
enumeration (``tests/planning/test_chains.py``).

Examples
--------
>>> from quivers.categories import FinSet
>>> from quivers.distributions import Categorical, HalfNormal, Normal
>>> from quivers.programs import Program, observe, sample, var
>>> K = FinSet("K", 2)
>>> steps = [sample("A", K * K, HalfNormal(1.0)), sample("pi", K, HalfNormal(1.0)),
...          sample("z0", None, Categorical(var("pi")))]
>>> steps += [sample(f"z{t}", None, Categorical(var("A")[var(f"z{t - 1}")])) for t in (1, 2, 3)]
>>> steps += [observe(f"y{t}", None, Normal(var(f"z{t}") * 1.0, 1.0)) for t in range(4)]
>>> p = Program("hmm", K, K, steps)
>>> summed = {f"z{t}": K for t in range(4)}
>>> new, chains = lower_chains(p, p.steps, summed)
>>> chains[0].latents, chains[0].obs, [s.label() for s in new][-1], summed
(('z0', 'z1', 'z2', 'z3'), 'y0_to_y3', 'markov z0_to_z3 : z0_to_z3_steps -> K', {})
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import operator

import sympy
import torch

from quivers.categories import FinSet
from quivers.distributions import Family
from quivers.errors import DataError
from quivers.programs import Program, observe, var
from quivers.programs.chain import markov
from quivers.programs.expr import INDEX, Expr
from quivers.programs.steps import ObserveStep, SampleStep, Step

__all__ = ["Chain", "lower_chains", "unstacked"]

_HOLE = sympy.Symbol("__chain_hole", real=True)  # where a step's template reads its own (or the previous) site


@dataclass(frozen=True)
class Chain:
    """A chain of sample sites summed by the ``markov`` block ``name``:
    ``latents[t]`` is its state at step ``t``, observed by
    ``observed[t]``; the block observes ``obs`` on the time object, the
    ``observed`` values stacked along its last axis. ``sites`` are the
    sites of ``latents`` and ``observed`` in the program it was found in:
    the planned program's public sites (its runs bind the block's)."""

    name: str
    obs: str
    latents: tuple[str, ...]
    observed: tuple[str, ...]
    states: int
    sites: tuple = field(default=(), compare=False, repr=False)

    def __str__(self) -> str:
        return (f"a markov block (the forward algorithm on one {len(self.latents)} x {self.states} x {self.states} "
                f"tensor): the chain {self.latents[0]} -> ... -> {self.latents[-1]}, each step observed by "
                f"{self.observed[0]} ... {self.observed[-1]}")

    def stack(
        self, values: dict[str, Any], names: tuple[str, ...], into: str, what: str, cache: dict | None = None
    ) -> None:
        """Replace ``values[n]`` for ``n`` in ``names`` (all or none) by one
        tensor under ``into``, the steps on its last axis. With ``cache``,
        the same values (the same objects, not written in place since) give
        the same tensor: the data a loop passes every step are stacked, and
        checked by the binding, once."""
        given = [n for n in names if n in values]
        if not given:
            return
        if len(given) < len(names):
            missing = next(n for n in names if n not in values)
            raise DataError(
                f"`{missing}` is not given, but {given[0]} is: the chain {self.latents[0]} -> ... -> "
                f"{self.latents[-1]} is summed as one markov block, which takes its {what} all or none",
                hint=f"give every one of {names[0]} ... {names[-1]}",
            )
        # list comprehensions and map, not generators: this runs every call, once per step of the chain
        given = [values.pop(n) for n in names]
        stamp = [v._version if isinstance(v, torch.Tensor) else None for v in given]
        hit = cache.get(into) if cache is not None else None
        if hit is not None and hit[1] == stamp and all(map(operator.is_, hit[0], given)):
            values[into] = hit[2]
            return
        parts = [torch.as_tensor(v) for v in given]
        dtype = parts[0].dtype
        for p in parts[1:]:
            dtype = torch.promote_types(dtype, p.dtype)
        parts = torch.broadcast_tensors(*(p.to(dtype) for p in parts))
        values[into] = torch.stack(parts, -1)
        if cache is not None:  # holds the values, so their ids stay theirs
            cache[into] = (given, stamp, values[into])

    def split(self, values: dict[str, torch.Tensor], event: int) -> None:
        """The inverse of :meth:`stack` on outputs: ``values[name]`` (and
        ``values[obs]``) into one value per step; the time axis is
        ``event + 1`` from the end."""
        for whole, names, ev in ((self.name, self.latents, event), (self.obs, self.observed, 0)):
            if whole in values:
                t = values.pop(whole)
                for i, n in enumerate(names):
                    values[n] = t.select(t.dim() - 1 - ev, i)


def lower_chains(
    program: Program, steps: Sequence[Step], summed: dict[str, FinSet]
) -> tuple[tuple[Step, ...], tuple[Chain, ...]]:
    """``steps`` with each chain of ``summed`` sites (see the module) written
    as a ``markov`` block, in the place of its last step; removes the
    chain's sites from ``summed``."""
    steps = list(steps)
    readers: dict[str, list[Step]] = {}
    for s in steps:
        for n in s.walk_reads():
            readers.setdefault(n, []).append(s)
    top = {id(s) for s in steps}
    nodes = {n for n in summed if _node(program, n, top)}
    parent = {n: _parent(program.sites[n].step, set(summed)) for n in nodes}
    chains: list[Chain] = []
    for head in sorted(n for n in nodes if parent[n] is None):
        found = _walk(program, head, nodes, parent, readers, set(summed))
        if found is None:
            continue
        latents, observed = found
        low = _block(program, latents, observed)
        if low is None:
            continue
        block, chain = low
        gone = {id(program.sites[n].step) for n in latents + observed}
        last = max(i for i, s in enumerate(steps) if id(s) in gone)
        steps = [block if i == last else s for i, s in enumerate(steps) if id(s) not in gone or i == last]
        chains.append(chain)
        for n in latents:
            del summed[n]
    return tuple(steps), tuple(chains)


def _node(program: Program, name: str, top: set[int]) -> bool:
    site = program.sites[name]
    return (isinstance(site.step, SampleStep) and id(site.step) in top and site.dims == ()
            and site.family.name == "Categorical" and site.num_values is not None)


def _parent(step: Step, summed: set[str]) -> str | None:
    """The one summed site ``step`` reads, None if none; ``""`` if more."""
    read = sorted(step.walk_reads() & summed)
    return read[0] if len(read) == 1 else (None if not read else "")


def _walk(program, head, nodes, parent, readers, summed) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    """The chain from ``head`` and its observations, if the pattern holds."""
    latents, observed = [], []
    z = head
    while z is not None:
        below = [s for s in readers.get(z, ()) if s is not program.sites[z].step]
        nxt = [s for s in below if isinstance(s, SampleStep) and s.name in nodes and parent[s.name] == z]
        obs = [s for s in below if isinstance(s, ObserveStep)]
        if len(nxt) > 1 or len(obs) != 1 or len(nxt) + len(obs) != len(below):
            return None
        (o,) = obs
        if o.index_set is not None or o.via is not None or (o.walk_reads() & summed) != {z} or readers.get(o.name):
            return None
        latents.append(z)
        observed.append(o.name)
        z = nxt[0].name if nxt else None
    return (tuple(latents), tuple(observed)) if len(latents) >= 2 else None


def _template(family: Family, hole: str) -> tuple:
    """``family`` with the site ``hole`` replaced by a placeholder: equal
    templates are the same law of the hole."""
    z = sympy.Symbol(hole, real=True)
    args = tuple(sorted((k, a.sympy.xreplace({z: _HOLE}) if isinstance(a, Expr) else repr(a))
                        for k, a in family.args.items()))
    return family.name, args


def _block(program: Program, latents: tuple[str, ...], observed: tuple[str, ...]) -> tuple[Step, Chain] | None:
    """The ``markov`` block of a chain, or None where its laws are not one
    table repeated along it."""
    sites = program.sites
    k = sites[latents[0]].num_values
    if any(sites[n].num_values != k for n in latents):
        return None
    trans = {_template(sites[b].family, a) for a, b in zip(latents, latents[1:])}
    emits = {_template(sites[y].family, z) for z, y in zip(latents, observed)}
    if len(trans) != 1 or len(emits) != 1:
        return None
    step = sites[latents[1]].step
    ((key, table),) = [(key, a) for key, a in step.family.args.items()]
    w = table.sympy
    if not (w.func == INDEX and len(w.args) == 2 and w.args[1] == sympy.Symbol(latents[0], real=True)
            and isinstance(w.args[0], sympy.Symbol) and w.args[0].name in sites):
        return None
    matrix = sites[w.args[0].name]
    if len(matrix.dims) != 2 or matrix.shape != (k, k) or matrix.dims[1] != matrix.dims[0] + "'":
        return None
    states = FinSet(matrix.dims[0], k)
    init = sites[latents[0]].step.family
    ((ikey, pi),) = list(init.args.items())
    start = pi.sympy
    if not (isinstance(start, sympy.Symbol) and start.name in sites and sites[start.name].dims == (states.name,)):
        return None
    taken = set(sites) | {d for s in sites.values() for d in s.dims}
    name = _fresh(f"{latents[0]}_to_{latents[-1]}", taken)
    obs = _fresh(f"{observed[0]}_to_{observed[-1]}", taken | {name})
    time = FinSet(_fresh(f"{name}_steps", taken | {name, obs}), len(latents))
    here = sympy.Symbol(name, real=True)
    first = sites[observed[0]].step
    z0 = sympy.Symbol(latents[0], real=True)
    emit = first.map_exprs(lambda e: e._with(e.sympy.xreplace({z0: here})))
    body = [observe(obs, time, emit.family, span=first.span)]
    block = markov(name, time, states, Family(step.family.spec, {key: var(w.args[0].name)}), body,
                   init=Family(init.spec, {ikey: var(start.name)}), span=step.span)
    return block, Chain(name, obs, latents, observed, k, tuple(sites[n] for n in latents + observed))


def _fresh(name: str, taken: set[str]) -> str:
    while name in taken:
        name += "_"
    return name


def unstacked(values: Mapping[str, torch.Tensor], chains: Sequence[Chain], event: int) -> dict[str, torch.Tensor]:
    """``values`` with each chain's block latent and observation split
    into its sites (:meth:`Chain.split`)."""
    out = dict(values)
    for c in chains:
        c.split(out, event)
    return out
