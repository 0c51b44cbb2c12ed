"""A Markov chain block in Stan: its path summed out by the forward algorithm.

``marginalize z : T -> K <- Markov(init=pi, trans=A)`` (or
:func:`quivers.programs.markov`) is written as Stan users write a hidden
Markov model: per sequence, a table ``ll_z[t, k]`` of the body's log
likelihood at each step and state, then

- ``alpha_z = log_softmax(lw_z) + ll_z[1]'`` with ``lw_z`` the initial
  log weights (zeros, so uniform, without ``init``),
- ``alpha_z[k] <- log_sum_exp(alpha_z + la_z[:, k]) + ll_z[t, k]`` for
  each later step, ``la_z[j]`` the log-softmax of the transition weights
  out of state ``j`` (read at step ``t`` when they vary over time),
- ``target += log_sum_exp(alpha_z)``,

``max`` for ``log_sum_exp`` under ``reduction=max``. A path over ``S * T``
is one chain per element of ``S``; ``until=last`` ends sequence ``s`` at
``last[s]``, the loop's bound.

A second-order chain (``first=B``, ``trans=C`` on ``K * K' * K''``) runs
the same recursion on pairs of states, as Stan users write one:
``pair_z[i, j]`` is the log weight of the states ``i`` at ``t - 1`` and
``j`` at ``t`` with the data up to ``t``;

- ``pair_z[i, k] = alpha_z[i] + lb_z[k] + ll_z[2, k]`` at the second
  step, ``alpha_z`` the first step's vector above and ``lb_z`` the
  log-softmax of ``B``'s weights out of ``i``,
- ``next_z[j, k] = log_sum_exp(pair_z[:, j] + lc_z[:, k]) + ll_z[t, k]``
  after, ``lc_z[i]`` the log-softmax of ``C``'s weights out of ``(i, j)``,
- ``target += log_sum_exp(to_vector(pair_z))`` (``alpha_z``'s when a
  sequence ends at its first step).

Laws
----
- The emitted block adds the log of ``sum over paths p(path) exp(body)``,
  which is what quivers' forward pass adds (tested by running the emitted
  Stan against ``log_joint``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from quivers.emit.stan_expr import Leaf
from quivers.programs.steps import ObserveStep, SampleStep

if TYPE_CHECKING:
    from quivers.emit.stan import _Emitter
    from quivers.programs.chain import MarkovStep

__all__ = ["forward"]


def forward(e: _Emitter, s: MarkovStep, reduce: str) -> list[str]:
    """The model block's lines for the chain ``s``."""
    K, z, T = s.support.name, s.name, s.time.name
    seqs = [f.name for f in s.index_set.factors[:-1]]
    used: set[str] = set()
    sv = {S: e.fresh(S, used) for S in seqs}
    tv, k, j = e.fresh(T, used), e.fresh(K, used), e.fresh("j", used)
    lets: dict = {}
    terms, nested = e._body(s, lets)
    if nested:
        raise e.fail(f"the block `{nested[0].name}` is nested in the chain `{z}`", nested[0])
    t = e.translator({z: Leaf(k, (), K, True, True, loop=k)}, lets)
    ll, lw, la, alpha, nxt, row = (f"{p}_{z}" for p in ("ll", "lw", "la", "alpha", "next", "row"))
    at_seq = {S: sv[S] for S in seqs}

    body = [f"matrix[{T}, {K}] {ll} = rep_matrix(0, {T}, {K});", f"vector[{K}] {lw};", f"vector[{K}] {alpha};"]
    for b in terms:
        if isinstance(b, SampleStep):
            raise e.fail(f"`{b.name}` is sampled inside the chain `{z}`", b)
        dims = list(e.sites[b.name].dims) if isinstance(b, ObserveStep) else [
            d for d in t.dims(b.expr.sympy) if d != z]
        if T not in dims or not set(dims) <= {T, *seqs}:
            raise e.fail(f"`{getattr(b, 'name', 'factor')}` in the chain `{z}` is not on its path "
                         f"`{s.index_set.name}`", b)

        def add(bind, b=b):
            term = e._located(lambda: e._lpdf(b, t, {**bind, z: k}), b)
            return [f"for ({k} in 1:{K}) {{", f"  {ll}[{bind[T]}, {k}] += {term};", "}"]

        body += e._loops([T], add, b, bind=dict(at_seq), names={T: tv}, reserved={k, j})
    init = "0" if s.init is None else e._located(lambda: e._log_weights(s.init, t, {**at_seq, K: k}), s)
    body += [f"for ({k} in 1:{K}) {{", f"  {lw}[{k}] = {init};", "}",
             f"{alpha} = log_softmax({lw}) + {ll}[1]';"]
    last = f"{s.until}[{', '.join(sv[d] for d in e.leaves[s.until].dims)}]" if s.until is not None else T
    if s.first is not None:
        body += _pairs(e, s, t, reduce, {**at_seq}, tv, last, used)
        head = [f"// markov {z} : {s.index_set.name} -> {K}, second order: its path summed out by the forward "
                "algorithm on pairs of states"]
        if not seqs:
            return head + ["{"] + ["  " + line for line in body] + ["}"]
        return head + e._loops(seqs, lambda bind: body, s, names=sv, reserved=set(used))
    wdims = t.dims(next(iter(s.prior.args.values())).sympy)
    # K' is the state at t and K the one before; weights without K' are one law for every previous state
    rows = {**at_seq, T: tv, K: j, f"{K}'": k} if f"{K}'" in wdims else {**at_seq, T: tv, K: k}
    trans = e._located(lambda: e._log_weights(s.prior, t, rows), s)
    body += [
        f"for ({tv} in 2:{last}) {{",
        f"  matrix[{K}, {K}] {la};",
        f"  vector[{K}] {nxt};",
        f"  for ({j} in 1:{K}) {{",
        f"    vector[{K}] {row};",
        f"    for ({k} in 1:{K}) {{",
        f"      {row}[{k}] = {trans};",
        "    }",
        f"    {la}[{j}] = log_softmax({row})';",
        "  }",
        f"  for ({k} in 1:{K}) {{",
        f"    {nxt}[{k}] = {reduce}({alpha} + {la}[:, {k}]) + {ll}[{tv}, {k}];",
        "  }",
        f"  {alpha} = {nxt};",
        "}",
        f"target += {reduce}({alpha});",
    ]
    head = [f"// markov {z} : {s.index_set.name} -> {K}, its path summed out by the forward algorithm"]
    if not seqs:  # a block of its own, for its local variables
        return head + ["{"] + ["  " + line for line in body] + ["}"]
    return head + e._loops(seqs, lambda bind: body, s, names=sv, reserved={tv, k, j})



def _pairs(e: _Emitter, s: MarkovStep, t, reduce: str, at_seq: dict, tv: str, last: str, used: set) -> list[str]:
    """The recursion of a second-order chain on pairs of states, after the
    first step's ``alpha`` (see the module's docstring)."""
    K, z = s.support.name, s.name
    if s.time.size < 2:
        raise e.fail(f"the second-order chain `{z}` runs over `{s.time.name}` of one step, which has no second", s)
    i, j, k = e.fresh("i", used), e.fresh("j", used), e.fresh("k", used)
    a0, lb, lc, alpha, nxt, row = (f"{p}_{z}" for p in ("alpha", "lb", "lc", "pair", "next", "row"))
    ll = f"ll_{z}"
    # the state before is K and the new one K' (first); K, K', K'' are t-2, t-1, t (trans)
    fdims = t.dims(next(iter(s.first.args.values())).sympy)
    frows = {**at_seq, K: i, f"{K}'": k} if f"{K}'" in fdims else {**at_seq, K: k}
    first = e._located(lambda: e._log_weights(s.first, t, frows), s)
    trans = e._located(lambda: e._log_weights(s.prior, t, {**at_seq, s.time.name: tv, K: i, f"{K}'": j,
                                                           f"{K}''": k}), s)
    out = [
        f"matrix[{K}, {K}] {alpha};",
        f"for ({i} in 1:{K}) {{",
        f"  vector[{K}] {row};",
        f"  vector[{K}] {lb};",
        f"  for ({k} in 1:{K}) {{",
        f"    {row}[{k}] = {first};",
        "  }",
        f"  {lb} = log_softmax({row});",
        f"  for ({k} in 1:{K}) {{",
        f"    {alpha}[{i}, {k}] = {a0}[{i}] + {lb}[{k}] + {ll}[2, {k}];",
        "  }",
        "}",
        f"for ({tv} in 3:{last}) {{",
        f"  matrix[{K}, {K}] {nxt};",
        f"  for ({j} in 1:{K}) {{",
        f"    matrix[{K}, {K}] {lc};",
        f"    for ({i} in 1:{K}) {{",
        f"      vector[{K}] {row};",
        f"      for ({k} in 1:{K}) {{",
        f"        {row}[{k}] = {trans};",
        "      }",
        f"      {lc}[{i}] = log_softmax({row})';",
        "    }",
        f"    for ({k} in 1:{K}) {{",
        f"      {nxt}[{j}, {k}] = {reduce}({alpha}[:, {j}] + {lc}[:, {k}]) + {ll}[{tv}, {k}];",
        "    }",
        "  }",
        f"  {alpha} = {nxt};",
        "}",
    ]
    total = f"{reduce}(to_vector({alpha}))"
    end = total if s.until is None else f"{last} >= 2 ? {total} : {reduce}({a0})"
    return out + [f"target += {end};"]
