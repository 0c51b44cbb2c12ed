"""The interpreter: exact log densities, ancestral draws, responsibilities.

A program runs block by block over an environment of named
:class:`~quivers.programs.named.Value` s. In *density* mode every scored
step contributes a log-density term; a ``marginalize`` block binds its
latent to the enumeration of its support (a named axis, never a Python loop
over values), collects its body's terms and combines them with the log
prior weights:

- per row: ``sum_n log sum_k exp(log pi_k + sum_{terms} l_{n,k})``;
- grouped over ``G``: each observe's per-row terms are summed over the fibres
  of its index map ``Item -> G`` (the right Kan extension in the log
  semiring, a scatter-add) into a ``(G, K)`` accumulator first:
  ``sum_g log sum_k exp(log pi_{g,k} + sum_{n: group(n)=g} l_{n,k})``.

In *sample* mode the same steps draw every site not already given, the
marginalized latents included (one per row, or per group).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch

from quivers.distributions import Family
from quivers.errors import QuiversError, ShapeError
from quivers.programs.expr import REF, Evaluator
from quivers.programs.named import Value, align, logsumexp, reduce_sum, scatter_sum, to_layout
from quivers.programs.sites import Site
from quivers.programs.steps import (
    FactorStep,
    IndexMapStep,
    LetStep,
    MarginalizeStep,
    ObserveStep,
    ReturnStep,
    SampleStep,
    Step,
)

__all__ = ["Compiled", "Run", "RETURN"]

RETURN = "__return__"
_MATRIX = ("__row", "__col")


@dataclass
class Compiled:
    """What a program's steps need at run time, prepared once at build."""

    order: dict[int, list[Step]]  # id(block owner or 0) -> steps in run order
    params: dict[int, dict[str, Evaluator]]  # id(step) -> family parameter evaluators
    exprs: dict[int, Evaluator]  # id(step) -> expression evaluator
    sites: dict[str, Site]
    index_maps: dict[str, tuple]
    steps: tuple[Step, ...]


@dataclass
class Run:
    """One execution of a program over an environment.

    ``mode`` is ``"density"`` or ``"sample"``. After :meth:`execute`,
    ``env`` holds every value and, in density mode, ``log_density`` the
    batch-shaped total and ``responsibilities`` the posterior of each
    marginalized latent (when ``record`` is set).
    """

    compiled: Compiled
    env: dict[str, Value]
    mode: str = "density"
    sample_shape: torch.Size = field(default_factory=torch.Size)
    record: bool = False
    generator: torch.Generator | None = None
    pointwise: bool = False
    log_density: torch.Tensor | None = None
    responsibilities: dict[str, Value] = field(default_factory=dict)
    site_terms: dict[str, Value] = field(default_factory=dict)

    def execute(self) -> Run:
        terms = self._block(self.compiled.steps, 0)
        total = None
        for v, _ in terms:
            t = reduce_sum(v).tensor
            total = t if total is None else total + t
        ref = self.env[REF].tensor
        self.log_density = total if total is not None else ref.new_zeros(())
        return self

    # ------------------------------------------------------------ blocks

    def _block(self, steps, key: int) -> list[tuple[Value, str | None]]:
        terms: list[tuple[Value, str | None]] = []
        for s in self.compiled.order[key]:
            try:
                self._step(s, terms)
            except QuiversError as err:
                raise err.located(getattr(s, "span", None), None) from None
        return terms

    def _step(self, s: Step, terms: list) -> None:
        env, sites = self.env, self.compiled.sites
        if isinstance(s, (SampleStep, ObserveStep)):
            site = sites[s.name]
            if site.kind == "index":
                return
            params = {k: f(env) for k, f in self.compiled.params[id(s)].items()}
            if self.mode == "sample" and s.name not in env:
                env[s.name] = self._draw(site, params)
                return
            lp = site_log_prob(site, params, env[s.name])
            if self.pointwise and site.kind == "observed":
                self.site_terms[s.name] = lp
            terms.append((lp, getattr(s, "via", None)))
        elif isinstance(s, LetStep):
            env[s.name] = self.compiled.exprs[id(s)](env)
        elif isinstance(s, FactorStep):
            if self.mode == "density":
                terms.append((self.compiled.exprs[id(s)](env), None))
        elif isinstance(s, ReturnStep):
            env[RETURN] = self.compiled.exprs[id(s)](env)
        elif isinstance(s, MarginalizeStep):
            if self.mode == "sample":
                self._draw_marginal(s)
                self._block(s.body, id(s))
            else:
                terms.extend(self._marginalize(s))
        elif isinstance(s, IndexMapStep):
            return

    # ------------------------------------------------------- marginalize

    def _log_weights(self, s: MarginalizeStep, enum_dim: str) -> Value:
        (key, w), = self.compiled.params[id(s)].items()
        v = w(self.env)
        k = s.support.name
        if k not in v.dims:
            raise ShapeError(
                f"the weights of `{s.name}` have axes {list(v.dims)}, none of them `{k}`",
                hint=f"declare the weights on `{k}` (or a product ending in `{k}`)",
            )
        if v.size(k) != s.support.size:
            raise ShapeError(f"the weights of `{s.name}` have {v.size(k)} entries on `{k}`, not {s.support.size}")
        axis = v.batch_ndim + v.dims.index(k)
        t = v.tensor
        if key == "logits":
            lw = torch.log_softmax(t, axis)
        else:
            lw = torch.log(t) - torch.log(t.sum(axis, keepdim=True))
        return Value(lw, tuple(enum_dim if d == k else d for d in v.dims))

    def _marginalize(self, s: MarginalizeStep) -> list[tuple[Value, str | None]]:
        z = s.name
        ref = self.env[REF].tensor
        self.env[z] = Value(
            torch.arange(s.support.size, device=ref.device), (z,), values_in=s.support.name, enumerates=True
        )
        inner = self._block(s.body, id(s))
        del self.env[z]
        parts = [self._log_weights(s, z)]
        vias = {via for _, via in inner}
        for v, via in inner:
            if s.over is not None and via is not None:
                dom, cod = self.compiled.index_maps[via]
                index = self.env[via].tensor
                v = scatter_sum(v, dom.name, index, cod.size, cod.name)
            parts.append(v)
        tensors, dims, _ = align(parts)
        acc = Value(sum(tensors[1:], tensors[0]), dims)
        if self.record:
            axis = acc.batch_ndim + dims.index(z)
            self.responsibilities[z] = Value(torch.softmax(acc.tensor, axis), dims)
        out = logsumexp(acc, z)
        via = next(iter(vias)) if s.over is None and len(vias) == 1 else None
        return [(out, via)]

    # ------------------------------------------------------------ draws

    def _draw(self, site: Site, params: dict[str, Value]) -> Value:
        dist, plate, batch = place(site, params, None)
        sizes = dict(zip(site.dims, site.shape))
        full = dist.batch_shape[:batch] + torch.Size(sizes[d] for d in plate)
        x = dist.expand(full).sample(self.sample_shape if batch == 0 else torch.Size())
        return Value(x, plate + site.event_dims, values_in=site.values_in)

    def _draw_marginal(self, s: MarginalizeStep) -> None:
        site = self.compiled.sites[s.name]
        lw = self._log_weights(s, "__k")
        stray = [d for d in lw.dims if d != "__k" and d not in site.dims]
        if stray:
            raise ShapeError(f"the weights of `{s.name}` vary over {stray}, but `{s.name}` lives on {list(site.dims)}")
        b = lw.batch_ndim
        logits = to_layout(lw, b, site.dims + ("__k",))
        logits = logits.expand(*logits.shape[:b], *site.shape, logits.shape[-1])
        x = torch.distributions.Categorical(logits=logits, validate_args=False).sample(
            self.sample_shape if b == 0 else torch.Size()
        )
        self.env[s.name] = Value(x, site.dims, values_in=s.support.name)


def _param_event(site: Site, family: Family, name: str, v: Value, plate: tuple[str, ...]) -> tuple[Value, tuple[str, ...]]:
    rank = family.spec.param(name).event_rank
    if rank == 0:
        return v, ()
    if rank == 2:
        if len(v.dims) < 2:
            raise ShapeError(f"parameter `{name}` of `{site.name}` must be a matrix on two axes, got {list(v.dims)}")
        d = v.dims
        return Value(v.tensor, d[:-2] + _MATRIX), _MATRIX
    event = site.event_dims
    if event:
        return v, ((event[-1],) if event[-1] in v.dims else ("__event",))
    extra = [d for d in v.dims if d not in plate and not d.startswith("__")]
    cats = [d for d in extra if d == site.values_in] or extra[-1:]
    if not cats:
        raise ShapeError(
            f"the weights of `{site.name}` need a category axis beyond its plate {list(plate)}, got {list(v.dims)}"
        )
    return v, (cats[0],)


def place(site: Site, params: Mapping[str, Value], value: Value | None):
    """Lay the parameters (and the value) of ``site`` out on common axes and
    build the torch distribution. Returns ``(dist, axes, batch_ndim)`` or,
    with a value, ``(dist, axes, batch_ndim, value_tensor)``."""
    family = site.family
    event = site.event_dims
    plate = tuple(d for d in site.dims if d not in event)
    laid: dict[str, tuple[Value, tuple[str, ...]]] = {}
    extra: dict[str, None] = {}
    for name, v in params.items():
        v, ev = _param_event(site, family, name, v, plate)
        laid[name] = (v, ev)
        for d in v.dims:
            if d not in plate and d not in ev and d not in event:
                extra.setdefault(d, None)
    axes = plate + tuple(extra)
    batch = max([v.batch_ndim for v, _ in laid.values()] + ([value.batch_ndim] if value is not None else []))
    tensors = {}
    sizes = dict(zip(site.dims, site.shape))
    for name, (v, ev) in laid.items():
        if ev == ("__event",):
            t = to_layout(v, batch, axes).unsqueeze(-1).expand(*([-1] * (batch + len(axes))), sizes[event[-1]])
        else:
            t = to_layout(v, batch, axes + ev)
        tensors[name] = t
    if family.name == "LKJCholesky":
        tensors["dim"] = torch.tensor(site.shape[-1])
    dist = family.build(tensors)
    if value is None:
        if extra:
            raise ShapeError(
                f"the parameters of `{site.name}` vary over {list(extra)}, which `{site.name}` is not declared on"
            )
        return dist, plate, batch
    return dist, axes, batch, to_layout(value, batch, axes + event)


def site_log_prob(site: Site, params: Mapping[str, Value], value: Value) -> Value:
    """The log density of ``value`` at ``site``, on the site's plate axes
    and any enumerated axes its parameters carry."""
    dist, axes, _, x = place(site, params, value)
    return Value(dist.log_prob(x), axes)
