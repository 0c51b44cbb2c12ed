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
``last[s]``, the loop's bound. Second-order chains (``first=``) are an
:class:`~quivers.errors.UnsupportedError`.

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
    if s.first is not None:
        raise e.fail(f"the chain `{s.name}` is of second order; Stan emission writes first-order chains", s)
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
    wdims = t.dims(next(iter(s.prior.args.values())).sympy)
    # K' is the state at t and K the one before; weights without K' are one law for every previous state
    rows = {**at_seq, T: tv, K: j, f"{K}'": k} if f"{K}'" in wdims else {**at_seq, T: tv, K: k}
    trans = e._located(lambda: e._log_weights(s.prior, t, rows), s)
    last = f"{s.until}[{', '.join(sv[d] for d in e.leaves[s.until].dims)}]" if s.until is not None else T
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

