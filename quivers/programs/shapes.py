"""Static shape checking: the named axes of every expression, at build time.

The runtime aligns values by axis name, so a program whose shapes do not fit
would otherwise fail (or, worse, broadcast silently) only when it first
runs. This pass walks the steps in run order with the *names* of the axes
each value carries, mirroring the runtime's rules, and rejects:

- an index that cannot index its base (``mu_k[z]`` where ``mu_k`` has no
  axis ``z`` takes values in), a non-integer index, a constant index out
  of range;
- a family parameter that varies over an axis its site is not declared on
  (neither its plate, nor an enumerated latent in scope, nor, for an
  ``observe ... [via=g]``, the codomain of ``g``, which is pulled back);
- the weights of a ``Categorical`` without the latent's support axis, or
  varying over axes the latent does not live on;
- two finite sets of the same name but different sizes, and a
  marginalized latent named like an index set (their axes would collide).

Laws
----
For every program that builds, the axes computed here are the axes the
runtime's values carry (up to order), so no evaluation raises a shape error
that this pass could have seen.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import sympy

from quivers.errors import QuiversError, QuiversTypeError, ShapeError, UnknownNameError
from quivers.programs.expr import (
    _COLLAPSE, _REDUCTIONS, DOT, _copy_of, INDEX, Expr, Tables, index_function, reduction_axis, stack_set, table_sets,
)
from quivers.programs.named import plate_dims
from quivers.programs.sites import Site
from quivers.programs.chain import MarkovStep
from quivers.programs.steps import (
    FactorStep,
    DataStep,
    IndexMapStep,
    InputStep,
    LetStep,
    MarginalizeStep,
    ObserveStep,
    ReturnStep,
    SampleStep,
    Step,
    StepVisitor,
)

__all__ = ["Axes", "check_shapes"]


@dataclass(frozen=True)
class Axes:
    """What the checker knows about a value: its named axes, the set its
    integers index (``values_in``), whether it enumerates a latent, whether
    it is integer-valued, and its value when it is an integer constant."""

    dims: tuple[str, ...] = ()
    values_in: str | None = None
    enumerates: bool = False
    integer: bool = False
    constant: int | None = field(default=None)


def _union(*dims: Sequence[str]) -> tuple[str, ...]:
    out: dict[str, None] = {}
    for ds in dims:
        for d in ds:
            out.setdefault(d, None)
    return tuple(out)


class _Checker(StepVisitor):
    def __init__(self, sites: Mapping[str, Site], index_maps, constant_dims, sizes) -> None:
        self.sites = sites
        self.index_maps = index_maps
        self.constant_dims = constant_dims
        self.sizes: dict[str, int] = sizes
        self.scope: dict[str, Axes] = {}
        self.tables: Tables = {}  # those of the expression being checked
        self.let_axes: dict[str, Axes] = {}
        # Categorical sites whose category set is read off their weights.
        self.categories: dict[str, Axes] = {}

    # -------------------------------------------------------- expressions

    def expr_axes(self, e: Expr, where: str) -> Axes:
        """The axes of ``e``, its index functions read from its own tables."""
        self.tables = e.tables
        return self.axes(e.sympy, where)

    def axes(self, e: sympy.Basic, where: str) -> Axes:
        if isinstance(e, sympy.Symbol):
            if e.name in self.scope:
                return self.scope[e.name]
            if e.name in self.constant_dims:
                return Axes(self.constant_dims[e.name])
            raise UnknownNameError(
                f"{where} reads `{e.name}`, which is not defined here", name=e.name, candidates=self.scope
            )
        if e.is_Number:
            return Axes((), integer=bool(e.is_Integer), constant=int(e) if e.is_Integer else None)
        if isinstance(e, sympy.Function) and e.func == INDEX:
            return self._index(e, where)
        if isinstance(e, sympy.Function) and e.func.__name__ in _REDUCTIONS:
            arg = self.axes(e.args[0], where)
            name = e.func.__name__
            axis = reduction_axis(e)
            if axis is not None:
                if axis not in arg.dims:
                    on = f"the axes {list(arg.dims)}" if arg.dims else "no axis"
                    raise ShapeError(f"{where}: `{name}(..., {axis})` runs along `{axis}`, but `{e.args[0]}` has {on}")
                if name in _COLLAPSE:
                    return Axes(tuple(d for d in arg.dims if d != axis))
                return Axes(arg.dims, arg.values_in if name == "sort" else None)
            if name in _COLLAPSE:
                return Axes(())
            if not arg.dims:
                raise ShapeError(f"{where}: `{name}` needs a value with at least one axis, `{e.args[0]}` has none")
            return Axes(arg.dims, arg.values_in)
        over = stack_set(e)
        if over is not None:
            names = plate_dims(over)[0]
            parts = _union(*(self.axes(a, where).dims for a in e.args[1:]))
            clash = [d for d in names if d in parts]
            if clash:
                raise ShapeError(
                    f"{where}: the entries of a value along `{over.name}` already have the axis `{clash[0]}`"
                )
            for f in over.factors:
                if self.sizes.setdefault(f.name, f.size) != f.size:
                    raise ShapeError(
                        f"{where}: a value along `{f.name}` of size {f.size}, but `{f.name}` has size {self.sizes[f.name]}"
                    )
            return Axes(parts + names)
        sets = table_sets(e)
        if sets is not None:
            return self._table(sets, e.args[1], where)
        if isinstance(e, sympy.Function) and e.func == DOT:
            x, y = (self.axes(a, where) for a in e.args)
            shared = [d for d in x.dims if d in y.dims]
            if len(shared) != 1:
                raise ShapeError(
                    f"{where}: `dot({e.args[0]}, {e.args[1]})` sums over the one axis its arguments share; they "
                    f"share {', '.join(f'`{d}`' for d in shared) or 'none'} (axes {list(x.dims)} and {list(y.dims)})",
                    hint="name the axis: `dot(x, y, K)`" if shared else None,
                )
            return Axes(tuple(d for d in _union(x.dims, y.dims) if d not in shared))
        fn = index_function(e, self.tables)
        if fn is not None:
            parts = [self.axes(a, where) for a in e.args]
            for a, p in zip(e.args, parts):
                if not p.integer:
                    raise QuiversTypeError(
                        f"{where}: `{a}` is not integer-valued, so it is no element of a finite set",
                        hint="pass a discrete site, an input or a marginalized latent",
                    )
            return Axes(_union(*(p.dims for p in parts)), fn.cod.name, integer=True)
        parts = [self.axes(a, where) for a in e.args]
        return Axes(_union(*(p.dims for p in parts)))

    def _table(self, sets: tuple, lam: sympy.Lambda, where: str) -> Axes:
        """A table's body with each binder on an axis of its own (the
        runtime's rule, :func:`quivers.programs.expr.table`)."""
        own = {v.name: Axes((f"{s.name}@{v.name}",), s.name, enumerates=True, integer=True)
               for v, s in zip(lam.variables, sets)}
        saved = {b: self.scope[b] for b in own if b in self.scope}
        self.scope.update(own)
        try:
            body = self.axes(lam.expr, where)
        finally:
            for b in own:
                self.scope.pop(b)
            self.scope.update(saved)
        names = tuple(s.name for s in sets)
        clash = [d for d in names if d in body.dims]
        if clash:
            raise ShapeError(
                f"{where}: the entries of a value along `{' * '.join(names)}` already have the axis `{clash[0]}`"
            )
        for s in sets:
            if self.sizes.setdefault(s.name, s.size) != s.size:
                raise ShapeError(
                    f"{where}: a value along `{s.name}` of size {s.size}, but `{s.name}` has size {self.sizes[s.name]}"
                )
        binder_axes = {a.dims[0] for a in own.values()}
        return Axes(tuple(d for d in body.dims if d not in binder_axes) + names)

    def _index(self, e: sympy.Basic, where: str) -> Axes:
        x = self.axes(e.args[0], where)
        dims, free = list(x.dims), list(x.dims)
        for k, arg in enumerate(e.args[1:]):
            i = self.axes(arg, where)
            if not i.integer:
                raise QuiversTypeError(
                    f"{where}: the index `{arg}` in `{e.args[0]}[...]` is not integer-valued",
                    hint="index by a discrete site, an index map or a marginalized latent",
                )
            if i.values_in is not None and i.values_in in free:
                axis = i.values_in
            elif i.values_in is None and free:
                axis = free[0]
            elif i.values_in is not None and _copy_of(i.values_in, free) is not None:
                axis = _copy_of(i.values_in, free)
            else:
                took = f" (values in `{i.values_in}`)" if i.values_in else ""
                raise ShapeError(
                    f"{where}: cannot index `{e.args[0]}` (axes {list(x.dims)}) by `{arg}`{took}"
                )
            free.remove(axis)
            size = self.sizes.get(axis)
            if i.constant is not None and size is not None and not 0 <= i.constant < size:
                raise ShapeError(
                    f"{where}: index {i.constant} in `{e.args[0]}[...]` is out of range for axis `{axis}` of size {size}"
                )
            if i.enumerates and i.values_in == axis and i.dims:
                if i.dims[0] in dims:
                    raise ShapeError(f"{where}: `{e.args[0]}` is indexed by `{i.dims[0]}` twice")
                dims = [i.dims[0] if d == axis else d for d in dims]
                continue
            rest = [d for d in dims if d != axis]
            dims = list(_union(rest, i.dims))
        # an entry of an integer-valued value (`z[group]`) is an integer in the same set
        return Axes(tuple(dims), x.values_in if x.integer else None, integer=x.integer)

    # --------------------------------------------------------------- steps

    def step(self, s: Step, order, enumerated: tuple[str, ...]) -> None:
        try:
            self.visit(s, order, enumerated)
        except QuiversError as err:
            # the innermost step that has a span is where the user looks
            raise err.relocated(getattr(s, "span", None)) from None

    # ------------------------------------------- the rule of each step kind

    def visit_sample(self, s: SampleStep | ObserveStep, order, enumerated: tuple[str, ...]) -> None:
        site = self.sites[s.name]
        if site.kind != "index":
            self._family_step(s, site, enumerated)
        self.scope[s.name] = self.categories.get(s.name) or self._site_axes(site)

    visit_observe = visit_sample

    def visit_indexmap(self, s: IndexMapStep | InputStep | DataStep, order, enumerated: tuple[str, ...]) -> None:
        self.scope[s.name] = self._site_axes(self.sites[s.name])

    visit_input = visit_data = visit_indexmap

    def visit_markov(self, s: MarkovStep, order, enumerated: tuple[str, ...]) -> None:
        self._markov(s, order, enumerated)

    def visit_marginalize(self, s: MarginalizeStep, order, enumerated: tuple[str, ...]) -> None:
        self._marginalize(s, order, enumerated)

    def visit_let(self, s: LetStep, order, enumerated: tuple[str, ...]) -> None:
        ax = self.expr_axes(s.expr, f"let `{s.name}`")
        self.scope[s.name] = ax
        if not enumerated:
            self.let_axes[s.name] = ax

    def visit_factor(self, s: FactorStep | ReturnStep, order, enumerated: tuple[str, ...]) -> None:
        self.expr_axes(s.expr, s.kind)

    visit_return = visit_factor

    def _site_axes(self, site: Site) -> Axes:
        return Axes(site.dims, site.values_in, integer=site.discrete)

    def _family_step(self, s: SampleStep | ObserveStep, site: Site, enumerated: tuple[str, ...]) -> None:
        kind = "sample" if isinstance(s, SampleStep) else "observe"
        event = site.event_dims
        plate = tuple(d for d in site.dims if d not in event)
        allowed = set(plate) | set(enumerated)
        via = getattr(s, "via", None)
        for v in (via,) if isinstance(via, str) else via or ():  # pulled back: the axes of its codomain
            allowed |= set(plate_dims(self.index_maps[v][1])[0])
        for key, arg in s.family.args.items():
            where = f"step `{s.name}`, parameter `{key}`"
            dims = self.expr_axes(arg, where).dims
            rank = s.family.spec.param(key).event_rank
            if rank == 2:
                dims = dims[:-2]
            elif rank == 1 and event:
                dims = tuple(d for d in dims if d != event[-1])
            elif rank == 1:
                candidates = [d for d in dims if d not in plate]
                if not candidates:
                    raise ShapeError(
                        f"{where}: the weights of `{s.name}` need a category axis beyond its plate {list(plate)}, "
                        f"got axes {list(dims)}",
                        hint=f"declare the weights on the set `{s.name}` takes values in",
                    )
                cat = site.values_in if site.values_in in candidates else candidates[-1]
                dims = tuple(d for d in dims if d != cat)
                if s.family.name == "Categorical" and site.values_in is None and cat.rstrip("'") in self.sizes:
                    # a primed axis (the K' of a K * K table) holds elements of K
                    base = cat.rstrip("'") if cat.rstrip("'") in self.sizes and cat.rstrip("'") not in candidates else cat
                    if cat not in enumerated:
                        self.categories[s.name] = Axes(site.dims, base, integer=True)
            stray = [d for d in dims if d not in allowed]
            if stray:
                on = f"`{s.index_set.name}`" if s.index_set is not None else "no plate"
                raise ShapeError(
                    f"{where}: `{arg.sympy}` varies over {', '.join(f'`{d}`' for d in stray)}, "
                    f"but {kind} `{s.name}` is declared on {on}",
                    hint=f"declare `{s.name}` on a plate with {', '.join(f'`{d}`' for d in stray)}, "
                    "or index the parameter so that it does not vary over it",
                )

    def _marginalize(self, s: MarginalizeStep, order, enumerated: tuple[str, ...]) -> None:
        site = self.sites[s.name]
        k = s.support.name
        if s.name in self.sizes:
            raise ShapeError(
                f"marginalize `{s.name}`: the latent has the name of an index set; rename one of them"
            )
        ((key, arg),) = s.prior.args.items()
        where = f"marginalize `{s.name}`, weights `{key}`"
        dims = self.expr_axes(arg, where).dims
        if k not in dims:
            raise ShapeError(
                f"{where}: `{arg.sympy}` has axes {list(dims)}, none of them the support `{k}` of `{s.name}`",
                hint=f"declare the weights on `{k}` (or a product ending in `{k}`)",
            )
        stray = [d for d in dims if d != k and d not in site.dims and d not in enumerated]
        if stray:
            rows = f"its rows {list(site.dims)}" if site.dims else "no plate"
            raise ShapeError(
                f"{where}: `{arg.sympy}` varies over {', '.join(f'`{d}`' for d in stray)}, but `{s.name}` lives on {rows}",
                hint="per-row blocks live on the plate of their observations, grouped blocks on their `over` plate",
            )
        self._body(s, order, enumerated)

    def _body(self, s: MarginalizeStep | MarkovStep, order, enumerated: tuple[str, ...]) -> None:
        """The body of a block, its latent enumerated on its own axis."""
        self.scope[s.name] = Axes((s.name,), s.support.name, enumerates=True, integer=True)
        self.sizes[s.name] = s.support.size
        for t in order[id(s)]:
            self.step(t, order, enumerated + (s.name,))
        del self.scope[s.name]
        del self.sizes[s.name]

    def _markov(self, s: MarkovStep, order, enumerated: tuple[str, ...]) -> None:
        """A chain's weights: the transition on ``K`` (the previous state) and
        ``K'`` (the next), the path's axes allowed; the initial law on ``K``
        and the sequence plates. A second-order transition lies on ``K``,
        ``K'`` and ``K''`` (the states at ``t - 2``, ``t - 1`` and ``t``), its
        first step on ``K`` and ``K'``. Then its body, with the latent
        enumerated."""
        site = self.sites[s.name]
        k, seq = s.support.name, site.dims[:-1]
        if s.name in self.sizes:
            raise ShapeError(f"markov `{s.name}`: the latent has the name of an index set; rename one of them")
        # (family, what, the axes it may vary over, those of which it needs one)
        if s.order == 2:
            laws = [(s.prior, "transition", {k, k + "'", k + "''"} | set(site.dims), (k + "''",)),
                    (s.first, "first step", {k, k + "'"} | set(seq), (k + "'",))]
        else:
            laws = [(s.prior, "transition", {k, k + "'"} | set(site.dims), (k, k + "'"))]
        if s.init is not None:
            laws.append((s.init, "initial law", {k} | set(seq), (k,)))
        for fam, what, allowed, need in laws:
            ((key, arg),) = fam.args.items()
            where = f"markov `{s.name}`, {what} `{key}`"
            dims = self.expr_axes(arg, where).dims
            if not set(need) & set(dims):
                hint = f"a transition lies on `{k} * {k}` (rows: the state before), an initial law on `{k}`"
                if s.order == 2:
                    hint = (f"a second-order transition lies on `{k} * {k} * {k}` (the states at t-2, t-1, t), "
                            f"the first step on `{k} * {k}`, an initial law on `{k}`")
                raise ShapeError(
                    f"{where}: `{arg.sympy}` has axes {list(dims)}, none of them "
                    + " or ".join(f"`{d}`" for d in need),
                    hint=hint,
                )
            stray = [d for d in dims if d not in allowed]
            if stray:
                raise ShapeError(
                    f"{where}: `{arg.sympy}` varies over {', '.join(f'`{d}`' for d in stray)}, but the "
                    f"{what} of `{s.name}` may vary over {', '.join(f'`{d}`' for d in sorted(allowed))} only",
                )
        self._body(s, order, enumerated)


def index_set_sizes(steps: Sequence[Step]) -> dict[str, int]:
    """The size of every finite set the steps mention, by name; two sets
    with one name and different sizes are an error."""
    sizes: dict[str, int] = {}
    seen: dict[str, str] = {}

    def add(fs, where: str) -> None:
        if fs is None:
            return
        for f in fs.factors:
            if f.name in sizes and sizes[f.name] != f.size:
                raise ShapeError(
                    f"two index sets are named `{f.name}`: size {sizes[f.name]} in {seen[f.name]} "
                    f"and size {f.size} in {where}"
                )
            sizes[f.name], seen[f.name] = f.size, where

    for top in steps:
        for s in top.walk():
            name = getattr(s, "name", type(s).__name__)
            for over in _built_sets(s):
                add(over, f"`{name}`")
            add(getattr(s, "index_set", None), f"`{name}`")
            add(getattr(s, "support", None), f"`{name}`")
            add(getattr(s, "over", None), f"`{name}`")
            add(getattr(s, "dom", None), f"`{name}`")
            add(getattr(s, "cod", None), f"`{name}`")
    return sizes


def _built_sets(s: Step) -> list:
    """The sets of the vectors and matrices built in ``s``'s expressions."""
    exprs = [getattr(s, "expr", None)]
    for fam in (getattr(s, "family", None), getattr(s, "prior", None)):
        if fam is not None:
            exprs += list(fam.args.values())
    found = []
    for e in exprs:
        tree = getattr(e, "sympy", None)
        if tree is not None:
            found += [stack_set(n) for n in tree.find(lambda n: stack_set(n) is not None)]
            for n in tree.find(lambda n: table_sets(n) is not None):
                found += table_sets(n)
    return found


def check_shapes(
    steps: Sequence[Step],
    order: Mapping[int, Sequence[Step]],
    sites: Mapping[str, Site],
    index_maps: Mapping,
    constant_dims: Mapping[str, tuple[str, ...]],
    constant_sizes: Mapping[str, int] | None = None,
) -> dict[str, Axes]:
    """Check the axes of every step (see the module docstring); return the
    axes of the top-level ``let`` s and of each ``Categorical`` site whose
    category set (``values_in``) is read off the axes of its weights.
    ``constant_sizes`` are the sizes of the sets named constants lie on."""
    sizes = index_set_sizes(steps)
    for name, size in (constant_sizes or {}).items():
        if sizes.setdefault(name, size) != size:
            raise ShapeError(
                f"two index sets are named `{name}`: size {sizes[name]} in the steps and size {size} in a constant"
            )
    checker = _Checker(sites, index_maps, constant_dims, sizes)
    for s in order[0]:
        checker.step(s, order, ())
    return {**checker.categories, **checker.let_axes}

