"""Markov chains of discrete latents: a ``marginalize`` block whose latent
is a path.

``markov("z", T, K, Categorical(A), body)`` declares a latent path
``z : T -> K``, the state at each step of the time object ``T``, with

- ``z[0] ~ init`` (a law on ``K``; uniform when omitted), and
- ``z[t] | z[t-1] ~ Categorical(A[z[t-1]])`` for ``t >= 1``,

and sums it out of its body exactly. Inside the body ``z`` is, as in every
``marginalize`` block, the enumeration of ``K`` (a named axis), so
``Normal(mu[z], 1.0)`` observed on ``T`` gives emission weights on
``(T, z)``. The block contributes the log likelihood of the body's
observations with the path summed out: the composite of the step kernels
in the log semiring, computed by :func:`quivers.categories.markov.forward`
(a balanced product, depth ``O(log T)``).

Axes
----
The transition weights are a matrix on ``K * K``, whose axes are ``K``
(rows: the state at ``t - 1``) and ``K'`` (columns: the state at ``t``);
``A[i, j] = p(z[t] = j | z[t-1] = i)`` up to normalization of each row.
They may also vary over ``T`` (``A[t]`` is the kernel from ``t - 1`` to
``t``; at ``t = 0`` it is unused) and over the sequence plates; weights
with the axis ``K`` only (no ``K'``) are one law for every previous state.
``init`` lies on ``K`` and may vary over the sequence plates. As for every
``Categorical``, weights are positive and normalized along their last
axis, ``logits`` are normalized by a softmax.

A path over ``S * T`` is one chain per element of ``S`` (independent
sequences): the body's observations lie on ``S * T``. ``until=last``
names an index map ``last : S -> T`` (data) that ends sequence ``s`` at
step ``last[s]``; later steps are identities of the chain, so nothing
observed there counts.

The path is a latent of kind ``marginal``: guides and MCMC never see it.
Given a value (in the observations or latents) it is conditioned on:
the block scores ``log p(path) + body(path)``.
:meth:`~quivers.programs.Program.posterior_latents` gives its
forward-backward marginals, :meth:`~quivers.programs.Program.map_latents`
its Viterbi path, :meth:`~quivers.programs.Program.sample` draws paths
(from the prior, or by forward filtering, backward sampling when the
body's observations are given).

Examples
--------
>>> import torch
>>> from quivers.categories import FinSet
>>> from quivers.distributions import Categorical, Dirichlet, Normal
>>> from quivers.programs import Program, observe, sample, var
>>> T, K = FinSet("T", 4), FinSet("K", 2)
>>> mu, z = var("mu"), var("z")
>>> hmm = Program("hmm", T, T, [
...     sample("A", K * K, Dirichlet(1.0)),
...     sample("mu", K, Normal(0.0, 5.0)),
...     markov("z", T, K, Categorical(var("A")), [observe("y", T, Normal(mu[z], 1.0))]),
... ])
>>> hmm.sites["A"].dims, hmm.sites["z"].dims
(('K', "K'"), ('T',))
>>> given = {"A": torch.tensor([[0.9, 0.1], [0.2, 0.8]]), "mu": torch.tensor([-2.0, 2.0])}
>>> y = torch.tensor([-2.1, -1.7, 2.2, 1.9])
>>> hmm.map_latents(None, {"y": y}, given)["z"]
tensor([0, 0, 1, 1])
>>> hmm.posterior_latents(None, {"y": y}, given)["z"].shape
torch.Size([4, 2])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from quivers.capture import may_read
from quivers.categories import FinSet
from quivers.categories.markov import forward, forward_backward, ffbs, path_score, viterbi
from quivers.categories.second_order import pair_path, second_order, state_marginals, states
from quivers.distributions import Family
from quivers.distributions.densities import log_normalized
from quivers.errors import InvalidValueError, QuiversTypeError, ShapeError, Span
from quivers.programs.named import Value, align, rename, to_layout
from quivers.programs.effects import Effect
from quivers.programs.steps import REFERENCE, ObserveStep, Step, _check_name, _check_set, _symbolic, check_reduction

__all__ = ["MarkovStep", "markov", "run_markov"]


@dataclass(frozen=True)
class MarkovStep(Step):
    """A block that sums out a latent path ``index_set -> support`` with a
    Markov prior: ``init`` at the first step, ``prior`` (the transition)
    after, ``first`` the second step of a second-order chain, ``until`` the
    index map that ends each sequence. A sibling of
    :class:`~quivers.programs.steps.MarginalizeStep`, not a kind of it: its
    latent is a path, not one value per row. Built with :func:`markov`."""

    name: str
    index_set: FinSet
    support: FinSet
    prior: Family
    body: tuple[Step, ...]
    init: Family | None = None
    first: Family | None = None
    until: str | None = field(default=None, metadata=REFERENCE)
    reduction: str = "logsumexp"
    span: Span | None = field(default=None, compare=False, repr=False)

    @property
    def effect(self) -> Effect:
        return Effect.Marginal

    def label(self) -> str:
        return f"markov {self.name} : {self.index_set.name} -> {self.support.name}"

    @property
    def order(self) -> int:
        """1, or 2 for a chain given ``first`` (its state at ``t`` depends
        on ``t - 1`` and ``t - 2``)."""
        return 1 if self.first is None else 2

    @property
    def time(self) -> FinSet:
        """The time object: the last factor of the path's domain."""
        return self.index_set.factors[-1]


def _categorical(fam: Any, what: str, span: Span | None) -> Family:
    if not isinstance(fam, Family) or fam.name != "Categorical":
        raise QuiversTypeError(f"{what} must be a Categorical, got `{fam!r}`", span=span)
    return _symbolic(fam)


def markov(
    name: str,
    index_set: FinSet,
    support: FinSet,
    trans: Family,
    body: Sequence[Step],
    *,
    init: Family | None = None,
    first: Family | None = None,
    until: str | None = None,
    reduction: str = "logsumexp",
    span: Span | None = None,
) -> MarkovStep:
    """Sum the latent path ``name : index_set -> support``, a Markov chain
    along the last factor of ``index_set``, out of ``body``.

    Parameters
    ----------
    name
        The latent; inside ``body`` it is the enumeration of ``support``.
    index_set
        The path's domain: the time object ``T``, or ``S * T`` for one
        chain per element of ``S``.
    support
        The states ``K`` (a plain finite set).
    trans
        ``Categorical(A)`` (or ``Categorical(logits=...)``): weights on
        ``K * K`` (axes ``K``, the previous state, and ``K'``, the next),
        possibly varying over ``T`` and the sequence plates.
    body
        Steps whose observations lie on ``index_set``.
    init
        ``Categorical(pi)`` with ``pi`` on ``K``; uniform when omitted.
    first
        Makes the chain second order: ``Categorical(B)`` with ``B`` on
        ``K * K`` is the law of ``z[1]`` given ``z[0]``, and ``trans`` lies
        on ``K * K * K`` (axes ``K``, ``K'``, ``K''``: the states at
        ``t - 2`` and ``t - 1``, and the state at ``t``).
    until
        An index map ``S -> T`` (declared with ``index_map``) giving the
        last step of each sequence.
    reduction
        ``"logsumexp"`` sums the paths out (the forward algorithm);
        ``"max"`` keeps the best path's log weight (Viterbi).

    Examples
    --------
    >>> from quivers.distributions import Categorical, Normal
    >>> from quivers.programs import observe, var
    >>> T, K = FinSet("T", 100), FinSet("K", 2)
    >>> s = markov("z", T, K, Categorical(var("A")), [observe("y", T, Normal(var("mu")[var("z")], 1.0))])
    >>> s.time, sorted(s.reads), s.effect
    (FinSet('T', 100), ['A'], Effect.Marginal)
    """
    _check_name(name, "a Markov latent")
    check_reduction(reduction, name, span)
    _check_set(f"the path domain of `{name}`", index_set, allow_none=False)
    _check_set(f"the states of `{name}`", support, allow_none=False)
    if len(support.factors) != 1:
        raise QuiversTypeError(f"the states of markov `{name}` must be a plain FinSet, not `{support.name}`", span=span)
    if support.size == 0:
        raise QuiversTypeError(f"markov `{name}` has no states: `{support.name}` is empty", span=span)
    factors = index_set.factors
    if factors[-1].size == 0:
        raise QuiversTypeError(f"markov `{name}` runs along `{factors[-1].name}`, which is empty", span=span)
    clash = [f.name for f in factors if f.name in (support.name, support.name + "'")]
    if clash:
        raise QuiversTypeError(
            f"markov `{name}`: the path domain `{index_set.name}` contains the states `{clash[0]}`", span=span
        )
    trans = _categorical(trans, f"the transition of markov `{name}`", span)
    init = None if init is None else _categorical(init, f"the initial law of markov `{name}`", span)
    if first is not None:
        first = _categorical(first, f"the first step (first=) of markov `{name}`", span)
    if until is not None:
        _check_name(until, f"the index map in until= of `{name}`")
        if len(factors) != 2:
            raise QuiversTypeError(
                f"markov `{name}` has until={until}, which ends each sequence of a path over `S * T`, "
                f"but its path is over `{index_set.name}`",
                span=span,
            )
    body = tuple(body)
    for s in body:
        if not isinstance(s, Step):
            raise QuiversTypeError(f"the body of markov `{name}` holds `{s!r}`, not a step", span=span)
        for t in s.walk():
            if isinstance(t, MarkovStep):
                raise QuiversTypeError(
                    f"markov `{t.name}` is nested in the body of markov `{name}`; chains do not nest",
                    span=t.span or span,
                )
    return MarkovStep(name, index_set, support, trans, body, init=init, first=first, until=until,
                      reduction=reduction, span=span)


# ---------------------------------------------------------------- runtime


def _prime(k: str) -> str:
    return k + "'"


def _normalized(v: Value, key: str, layout: tuple[str, ...], nb: int, what: str, s: MarkovStep) -> torch.Tensor:
    """Log weights of ``v`` (weights or logits) laid out on ``layout``,
    normalized along its last axis, the categories. A row with no law
    (negative weights, weights that sum to zero, infinite ones) is named
    rather than let through as NaN."""
    t = to_layout(v, nb, layout)
    out = log_normalized(t, key, -1)
    if not may_read(out):  # captured: a row with no law reads as NaN, a divergence
        return out
    nan = torch.isnan(out.detach())
    if bool(nan.any()):
        where = tuple(int(i) for i in torch.nonzero(nan)[0][:-1])
        row = t.detach()[where]
        k = s.support.name
        names = {"__before": k, "__row": k if "__before" not in layout else _prime(k), "__cat": k}
        axes = ["(batch)"] * nb + [names.get(d, d) for d in layout[:-1]]
        kept = [i for i, n in enumerate(t.shape[:-1]) if n > 1]  # axes it varies over
        where, axes = tuple(where[i] for i in kept), [axes[i] for i in kept]
        if key == "logits":
            why = "logits that are NaN, +inf or all -inf"
        elif bool((row < 0).any()):
            why = f"a negative weight {float(row[row < 0][0]):g}"
        elif bool(torch.isnan(row).any()):
            why = "a NaN weight"
        elif float(row.sum()) == 0:
            why = "weights that sum to zero"
        else:
            why = "an infinite weight"
        raise InvalidValueError(
            f"{what} of markov `{s.name}` have no law at index {where} (axes {axes}): {why}",
            hint="a law needs nonnegative weights with a positive sum, or finite logits",
        )
    return out


def _stray(v: Value, allowed: set[str], what: str, s: MarkovStep) -> None:
    stray = [d for d in v.dims if d not in allowed]
    if stray:  # the shape checker rules this out at build time
        raise ShapeError(f"{what} of markov `{s.name}` vary over {stray}, which it does not allow")


class _Inputs:
    """The chain's log weights, laid out for :mod:`quivers.categories.markov`;
    for a second-order chain, those of its chain on pairs
    (:func:`~quivers.categories.second_order.second_order`), with
    :meth:`states`, :meth:`marginals` and :meth:`pairs` to move between
    pairs and states."""

    def __init__(self, run, s: MarkovStep, emissions: list[Value]) -> None:
        site = run.compiled.sites[s.name]
        self.site = site
        self.seq, self.time = site.dims[:-1], site.dims[-1]
        k = s.support.name
        self.order, self.k = s.order, s.support.size
        tkey, trans = run.law(s)
        if s.order == 2:  # axes K, K', K'': the states at t - 2, t - 1 and t
            _stray(trans, set(site.dims) | {k, _prime(k), _prime(_prime(k))}, "the transition weights", s)
            trans = rename(rename(rename(trans, k, "__before"), _prime(k), "__row"), _prime(_prime(k)), "__cat")
        else:
            _stray(trans, set(site.dims) | {k, _prime(k)}, "the transition weights", s)
            if _prime(k) in trans.dims:
                trans = rename(rename(trans, k, "__row"), _prime(k), "__cat")
            else:
                trans = rename(trans, k, "__cat")
        values = [trans] + emissions
        first = None
        if s.first is not None:
            fkey, first = run.law(s.first)
            _stray(first, set(self.seq) | {k, _prime(k)}, "the first step's weights", s)
            first = rename(rename(first, k, "__row"), _prime(k), "__cat")
            values.append(first)
        init = None
        if s.init is not None:
            ikey, init = run.law(s.init)
            _stray(init, set(self.seq) | {k}, "the initial weights", s)
            values.append(init)
        nb = max(v.batch_ndim for v in values)
        self.nb = nb
        size = s.support.size
        if s.order == 2:
            trans = _normalized(trans, tkey, self.seq + (self.time, "__before", "__row", "__cat"), nb,
                                "the transition weights", s)
            self.trans = trans.expand(*trans.shape[:-3], size, size, size)
            first = _normalized(first, fkey, self.seq + ("__row", "__cat"), nb, "the first step's weights", s)
            first = first.expand(*first.shape[:-2], size, size)
        else:
            trans = _normalized(trans, tkey, self.seq + (self.time, "__row", "__cat"), nb, "the transition weights", s)
            self.trans = trans.expand(*trans.shape[:-2], size, size)  # rows of a law on K only
        self.init = None if init is None else _normalized(init, ikey, self.seq + (k,), nb, "the initial weights", s)
        z, sizes = s.name, dict(zip(site.dims, site.shape))
        shape = [1] * nb + [sizes[d] for d in site.dims] + [s.support.size]
        emit = self.trans.new_zeros(shape)
        for v in emissions:
            _stray(v, set(site.dims) | {z}, "the body's terms", s)
            emit = emit + to_layout(v, nb, site.dims + (z,))
        self.emit = emit
        self.lengths = None
        if s.until is not None:
            last = run.env[s.until]
            self.lengths = to_layout(last, nb, self.seq) + 1
        if s.order == 2:
            self.init, self.trans, self.emit = second_order(self.init, first, self.trans, self.emit, check=False)

    def states(self, path: torch.Tensor) -> torch.Tensor:
        """A path of the chain on states, from one of the chain computed."""
        return states(path, self.k) if self.order == 2 else path

    def marginals(self, m: torch.Tensor) -> torch.Tensor:
        """Marginals of the states, from those of the chain computed."""
        return state_marginals(m, self.k) if self.order == 2 else m

    def pairs(self, path: torch.Tensor) -> torch.Tensor:
        """A path of the chain computed, from one on states."""
        return pair_path(path, self.k) if self.order == 2 else path

    def mask(self, v: Value) -> Value:
        """``v`` with the steps past each sequence's end set to zero."""
        if self.lengths is None or not set(self.seq + (self.time,)) <= set(v.dims):
            return v
        steps = torch.arange(self.site.shape[-1], device=v.tensor.device)
        live = Value(steps < self.lengths.unsqueeze(-1), self.seq + (self.time,))
        (t, m), dims, _ = align([v, live])
        return Value(torch.where(m, t, torch.zeros_like(t)), dims)


def _body(run, s: MarkovStep, partial: bool) -> list:
    """The body's terms with ``s``'s latent enumerated (in density mode;
    with ``partial``, observations not given are left out)."""
    return run.body(s, enumerate=True, density=True, partial=partial)


def _split(s: MarkovStep, terms: list, time: str) -> tuple[list[Value], list[Value]]:
    """Emission terms (those on the latent's axis) and the rest."""
    emissions, rest = [], []
    for v, _ in terms:
        if s.name in v.dims:
            if time not in v.dims:
                raise ShapeError(
                    f"a term of the body of markov `{s.name}` depends on `{s.name}` but not on the time `{time}`",
                    hint=f"observe on the path's domain so that each step scores its own state",
                )
            emissions.append(v)
        else:
            rest.append(v)
    return emissions, rest


def run_markov(run, s: MarkovStep, terms: list) -> None:
    """Run the block ``s`` in ``run`` (a :class:`~quivers.programs.runtime.Run`):
    in density mode append its terms to ``terms``; in sample mode draw its
    path and then its body."""
    if s.name in run.env:
        terms.extend(_conditioned(run, s))
    elif run.mode == "sample":
        _draw(run, s)
        run.body(s)
    else:
        terms.extend(_marginal(run, s))


def _marginal(run, s: MarkovStep) -> list:
    site = run.compiled.sites[s.name]
    emissions, rest = _split(s, _body(run, s, partial=False), site.dims[-1])
    c = _Inputs(run, s, emissions)
    rows = c.seq
    if run.record_paths:
        best = viterbi(c.init, c.trans, c.emit, c.lengths, check=False)
        run.paths[s.name] = Value(c.states(best.path), site.dims, values_in=site.values_in)
    if run.record and not run.record_paths:
        fb = forward_backward(c.init, c.trans, c.emit, c.lengths, check=False)
        run.responsibilities[s.name] = Value(c.marginals(fb.marginals), site.dims + (s.name,))
    if s.reduction == "max":  # the best path's log weight: the forward messages in MAX_PLUS
        log_z = Value(viterbi(c.init, c.trans, c.emit, c.lengths, check=False).score, rows)
    else:
        log_z = Value(forward(c.init, c.trans, c.emit, c.lengths, check=False), rows)
    # The chain's likelihood does not factor over its steps: the runtime's
    # per-state terms are dropped, and a chain's lone observation gets one
    # term per sequence, the sequence's marginal likelihood (PSIS-LOO then
    # leaves a whole sequence out).
    observed = [t.name for t in s.walk() if isinstance(t, ObserveStep)]
    for name in observed:
        run.site_terms.pop(name, None)
    if getattr(run, "pointwise", False) and len(observed) == 1 and not site.blocks and s.reduction != "max":
        run.site_terms[observed[0]] = log_z
    return [(log_z, None)] + [(c.mask(v), None) for v in rest]


def _conditioned(run, s: MarkovStep) -> list:
    """The path given: ``log p(path)`` plus the body's terms at the path."""
    inner = run.body(s)
    if run.mode == "sample":
        return []
    c = _Inputs(run, s, [])
    path = run.env[s.name]
    laid = to_layout(path, max(c.nb, path.batch_ndim), c.seq + (c.time,))
    prior = Value(path_score(c.init, c.trans, c.pairs(laid), lengths=c.lengths, check=False), c.seq)
    return [(prior, None)] + [(c.mask(v), None) for v, _ in inner]


def _draw(run, s: MarkovStep) -> None:
    site = run.compiled.sites[s.name]
    emissions = _split(s, _body(run, s, partial=True), site.dims[-1])[0] if run.body_given(s) else []
    c = _Inputs(run, s, emissions)
    batch = tuple(run.batch_shape)
    if c.nb > len(batch):
        raise ShapeError(
            f"cannot draw `{s.name}` with batch shape {batch}: its weights have {c.nb} batch axes"
        )
    lead, target = batch[: len(batch) - c.nb], batch[len(batch) - c.nb :]
    emit = c.emit.expand(*target, *c.emit.shape[c.nb :])
    path = ffbs(c.init, c.trans, emit, c.lengths, sample_shape=lead, check=False)
    run.env[s.name] = Value(c.states(path), site.dims, values_in=site.values_in)
