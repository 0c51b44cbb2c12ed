"""What a program's steps compile to when it is built.

:func:`compile_steps` turns checked steps into what the interpreter runs
(:class:`~quivers.programs.runtime.Compiled`): an evaluator for every family
parameter and every expression, the run order of every block, and the
named axes of every tensor constant (checked against the axes of the site
that reads it). It then runs the shape checker and records what it learns
about the axes of ``let`` s and Categorical sites.

Laws
----
- Every tensor constant gets one buffer name and one tuple of axis names;
  a constant read by two steps keeps the first.
- The sites returned are those given, refined (never new): a ``let`` or a
  Categorical site whose axes the shape checker finds gets them.

Examples
--------
>>> import torch
>>> from quivers.categories import FinSet
>>> from quivers.distributions import Normal
>>> from quivers.programs import const, observe
>>> from quivers.programs.sites import analyze
>>> I = FinSet("I", 2)
>>> steps = (observe("y", I, Normal(const(torch.tensor([0.0, 1.0])), 1.0)),)
>>> a = analyze(steps)
>>> built = compile_steps(steps, a.sites, a.index_maps)
>>> [dims for _, dims in built.constant_dims.values()]
[('I',)]
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from quivers.errors import QuiversError, ShapeError
from quivers.programs.chain import MarkovStep
from quivers.programs.expr import Expr, compile_expr
from quivers.programs.graph import block_order
from quivers.programs.runtime import Compiled, in_step
from quivers.programs.shapes import check_shapes, index_set_sizes
from quivers.programs.sites import Site
from quivers.programs.steps import (
    FactorStep,
    LetStep,
    MarginalizeStep,
    ObserveStep,
    ReturnStep,
    SampleStep,
    Step,
    StepVisitor,
)

__all__ = ["Built", "compile_steps"]


@dataclass
class Built:
    """The result of :func:`compile_steps`."""

    sites: dict[str, Site]
    compiled: Compiled | None = None  # set once every step is compiled
    # symbol -> (buffer name, axis names) of each tensor constant
    constant_dims: dict[str, tuple[str, tuple[str, ...]]] = field(default_factory=dict)
    # axis name -> size, of the sets constants lie on (``const(value, over)``)
    constant_sizes: dict[str, int] = field(default_factory=dict)
    # buffer name -> the tensor a program registers under it
    buffers: dict[str, torch.Tensor] = field(default_factory=dict)


def compile_steps(steps: tuple[Step, ...], sites: Mapping[str, Site], index_maps: Mapping) -> Built:
    """Compile ``steps`` (with their ``sites`` and ``index_maps`` from
    :func:`~quivers.programs.sites.analyze`); see the module docstring."""
    built = Built(dict(sites))
    order: dict[int, list[Step]] = {0: block_order(steps)}
    params: dict[int, dict] = {}
    exprs: dict[int, Any] = {}

    rule = _Compile(built, params, exprs)

    def compile_block(block: Sequence[Step]) -> None:
        for s in block:
            try:
                rule.visit(s)
                if s.children():
                    order[id(s)] = block_order(s.children())
                    compile_block(s.children())
            except QuiversError as err:
                raise in_step(err, s) from None

    compile_block(steps)
    lets = check_shapes(
        steps, order, built.sites, index_maps, {k: d for k, (_, d) in built.constant_dims.items()},
        built.constant_sizes,
    )
    sizes = {**built.constant_sizes, **index_set_sizes(steps)}
    for name, axes in lets.items():
        # ``K'``, the second axis of a value on ``K * K`` (``matrix(K, ...)``),
        # has the size of ``K``.
        if all(d.rstrip("'") in sizes for d in axes.dims):
            shape = tuple(sizes[d.rstrip("'")] for d in axes.dims)
            # A let of an element of a finite set (or a Categorical on
            # weights over a set) takes its values in that set.
            values_in = axes.values_in if axes.values_in in sizes else None
            built.sites[name] = dataclasses.replace(
                built.sites[name], dims=axes.dims, shape=shape, values_in=values_in,
                num_values=sizes.get(values_in) if values_in is not None else None,
            )
    built.compiled = Compiled(order, params, exprs, built.sites, index_maps, steps)
    return built


@dataclass
class _Compile(StepVisitor):
    """What each kind of step compiles: evaluators of its family's
    parameters (constants named on the site's axes) or of its expression."""

    built: Built
    params: dict[int, dict]
    exprs: dict[int, Any]

    def _law(self, s: Step, law, target) -> None:
        """Evaluators of the parameters of ``law``, the family ``s`` draws,
        scores or sums out with, whose constants lie on ``target``."""
        self.params[id(s)] = {}
        for key, e in law.args.items():
            self.params[id(s)][key] = compile_expr(e)
            kind = "step" if isinstance(s, (SampleStep, ObserveStep)) else s.kind
            where = f"{kind} `{s.name}`, parameter `{key}`"
            _register_constants(self.built, e, target, law.spec.param(key).event_rank, where)

    def visit_sample(self, s: SampleStep | ObserveStep) -> None:
        site = self.built.sites[s.name]
        self._law(s, s.family, (site.dims, site.shape))

    visit_observe = visit_sample

    def visit_marginalize(self, s: MarginalizeStep) -> None:
        site = self.built.sites[s.name]
        self._law(s, s.prior, (site.dims + (s.support.name,), site.shape + (s.support.size,)))

    def visit_markov(self, s: MarkovStep) -> None:
        site, k = self.built.sites[s.name], s.support
        # a transition: rows the state(s) before, columns the state after
        axes = (k.name, k.name + "'", k.name + "''")[: s.order + 1]
        self._law(s, s.prior, (site.dims + axes, site.shape + (k.size,) * len(axes)))
        seq = (site.dims[:-1], site.shape[:-1])
        laws = [(s.init, "initial law", (k.name,)), (s.first, "first step", (k.name, k.name + "'"))]
        for law, what, axes in laws:
            if law is None:
                continue
            target = (seq[0] + axes, seq[1] + (k.size,) * len(axes))
            self.params[id(law)] = {key: compile_expr(e) for key, e in law.args.items()}
            for key, e in law.args.items():
                _register_constants(self.built, e, target, 0, f"markov `{s.name}`, {what} `{key}`")

    def visit_let(self, s: LetStep | FactorStep | ReturnStep) -> None:
        self.exprs[id(s)] = compile_expr(s.expr)
        where = f"let `{s.name}`" if isinstance(s, LetStep) else s.kind
        _register_constants(self.built, s.expr, None, 0, where)

    visit_factor = visit_return = visit_let

    def visit_indexmap(self, s: Step) -> None:
        """Index maps, data and the input are bound at run time, as given."""

    visit_data = visit_input = visit_indexmap


def _register_constants(built: Built, e: Expr, target, rank: int, where: str) -> None:
    """Give each tensor constant of ``e`` its named axes: its trailing
    sizes must match the trailing axes of ``target`` (the site's axes;
    for a marginalize prior, its rows and support), and a bare matrix
    argument keeps its two matrix axes."""
    for sym, constant in e.constants().items():
        tensor = constant.tensor
        if constant.over is not None:  # const(value, over): its axes are named by `over`
            factors = constant.over
            # a repeated factor is primed, as on plates: K * K has axes K, K'
            dims = tuple(f.name + "'" * [g.name for g in factors[:i]].count(f.name) for i, f in enumerate(factors))
            for d, f in zip(dims, factors):
                if built.constant_sizes.setdefault(d, f.size) != f.size:
                    raise ShapeError(f"{where}: two constants lie on sets named `{f.name}` of different sizes")
            _keep(built, sym, tensor, dims)
            continue
        matrix = 2 if rank == 2 and e.sympy.is_Symbol else 0
        if tensor.dim() < matrix:
            raise ShapeError(f"{where}: the constant of shape {tuple(tensor.shape)} must be a matrix")
        nd = tensor.dim() - matrix
        dims: tuple[str, ...] = ()
        if nd:
            if target is None:
                raise ShapeError(
                    f"{where}: the tensor constant of shape {tuple(tensor.shape)} has no named axes",
                    hint="pass it as a family argument of a site on its plate, or supply it as an observation",
                )
            names, sizes = target
            if nd > len(names) or tuple(tensor.shape[:nd]) != tuple(sizes[len(sizes) - nd :]):
                raise ShapeError(
                    f"{where}: the constant of shape {tuple(tensor.shape)} does not fit the axes "
                    f"{list(names)} of sizes {list(sizes)}",
                    hint="its trailing sizes must match the trailing axes",
                )
            dims = tuple(names[len(names) - nd :])
        if matrix:
            dims = dims + ("__r", "__c")
        _keep(built, sym, tensor, dims)


def _keep(built: Built, sym: str, tensor: torch.Tensor, dims: tuple[str, ...]) -> None:
    """Record the constant ``sym`` (a detached copy, in its buffer) on ``dims``."""
    buf = built.constant_dims[sym][0] if sym in built.constant_dims else f"_const{len(built.constant_dims)}"
    built.buffers[buf] = tensor.detach().clone()
    built.constant_dims[sym] = (buf, dims)
