"""The contraction plan: plated variable elimination over named factors.

A factor is known here by its **scope**: the names of its axes (plates and
summed variables) and the index maps its rows read a variable through. A
variable lives on a set of plates (one copy per element); the plan sums it
out where it lives, as tensor variable elimination does (Obermeyer et al.,
2019):

- factors are grouped by their plates (an *ordinal*); the deepest ordinal
  goes first;
- in an ordinal, the variables that live on exactly its plates are
  eliminated one at a time in an order from a treewidth heuristic
  (networkx's ``treewidth_min_fill_in``): the factors holding a variable
  are multiplied and the variable summed;
- a factor left over with variables that live on fewer plates is carried
  to their plates: a plate they do not live on is multiplied out (the
  product over the plate, the right Kan extension along ``Plate -> 1``),
  and a plate ``Item`` read through an index map ``g : Item -> G`` onto a
  variable on ``G`` is carried along ``g`` (the product over each fibre,
  the right Kan extension along ``g``: what a grouped ``marginalize``
  block does);
- a factor without variables is multiplied out over its plates.

In the log semiring "multiply" is ``+`` and "sum" is ``logsumexp``; in
max-plus the same plan gives the most probable assignment's weight.

Laws
----
- The plan's value equals brute-force enumeration of every variable (each
  copy on each plate) in float64 (``tests/planning/test_exact.py``).
- A variable that lives on no plate the rows of a factor are on, and that
  no index map reaches, cannot be summed locally: :class:`PlanError` names
  it (Pyro's "intractable" plate structure).

Examples
--------
>>> scopes = [Scope(("z",)), Scope(("Item", "z"))]
>>> p = make_plan(scopes, {"z": ()}, {"z": 3, "Item": 100})
>>> p.order, p.largest, p.largest_size
(('z',), ('Item', 'z'), 300)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from math import prod

import networkx as nx
from networkx.algorithms.approximation import treewidth_min_fill_in

from quivers.errors import QuiversError
from quivers.programs.graph import _dot_id

__all__ = ["Scope", "Eliminate", "Carry", "Finish", "Plan", "PlanError", "make_plan"]


class PlanError(QuiversError):
    """A discrete latent that the plan cannot sum out exactly."""


@dataclass(frozen=True)
class Scope:
    """The axes of a factor and the index maps its rows read through:
    ``maps`` holds ``(name, dom, cod)`` for each index map ``dom -> cod``."""

    dims: tuple[str, ...]
    maps: tuple[tuple[str, str, str], ...] = ()


@dataclass(frozen=True)
class Eliminate:
    """Multiply the factors ``inputs`` and sum ``var`` out: factor ``output``."""

    var: str
    inputs: tuple[int, ...]
    output: int
    dims: tuple[str, ...]  # of the product, before the sum


@dataclass(frozen=True)
class Carry:
    """Carry factor ``input`` to fewer plates: multiply out ``plates`` and
    carry along each index map in ``along`` (``(name, dom, cod)``)."""

    input: int
    output: int
    plates: tuple[str, ...]
    along: tuple[tuple[str, str, str], ...]


@dataclass(frozen=True)
class Finish:
    """Multiply factor ``input`` out over its ``plates`` into the total."""

    input: int
    plates: tuple[str, ...]


@dataclass(frozen=True)
class Plan:
    """An inspectable sum-product plan.

    ``variables`` maps each summed variable to its plates; ``order`` is the
    order they are eliminated in; ``largest`` names the axes of the largest
    intermediate tensor and ``largest_size`` its number of entries (per
    element of a batch, e.g. per chain); ``treewidth`` is the largest
    width the heuristic found; ``steps`` are the operations, in order.
    ``sampled`` names the discrete sites left to sampling and says why;
    ``lowered`` the sites summed by a ``marginalize`` block instead (a
    latent per row read only by that row's observations).
    """

    variables: dict[str, tuple[str, ...]]
    order: tuple[str, ...]
    steps: tuple[Eliminate | Carry | Finish, ...]
    largest: tuple[str, ...]
    largest_size: int
    treewidth: int
    sizes: dict[str, int] = field(default_factory=dict)
    sampled: dict[str, str] = field(default_factory=dict)
    lowered: dict[str, str] = field(default_factory=dict)  # sites summed by a marginalize block: which
    scopes: tuple[Scope, ...] = ()
    labels: tuple[str, ...] = ()  # what made each factor of ``scopes`` (a step's label)

    def memory(self, itemsize: int = 4) -> int:
        """Bytes of the largest intermediate at ``itemsize`` bytes an entry."""
        return self.largest_size * itemsize

    def __str__(self) -> str:
        parts = [f"block {n}" for n in self.lowered] + [f"sum {v}" for v in self.order]
        lines = ["plan: " + (" -> ".join(parts) or "nothing to sum")]
        for name, how in self.lowered.items():
            lines.append(f"  {name} : summed by {how}")
        for v in self.order:
            plates = self.variables[v]
            where = f"one per element of {' * '.join(plates)}" if plates else "shared"
            lines.append(f"  {v} : {self.sizes.get(v, '?')} values, {where}")
        axes = " * ".join(f"{d}({self.sizes.get(d, '?')})" for d in self.largest) or "scalar"
        lines.append(f"  largest intermediate: {axes} = {self.largest_size} entries "
                     f"({self.memory(4)} bytes in float32)")
        lines.append(f"  treewidth: {self.treewidth}")
        for name, why in self.sampled.items():
            lines.append(f"  sampled, not summed: {name} ({why})")
        return "\n".join(lines)

    def to_dot(self) -> str:
        """DOT text of the plan's factor graph: each summed variable an
        ellipse numbered by its place in the elimination order, each factor
        a box labelled by what made it, joined to the variables it holds,
        inside a cluster per set of plates. Render it with Graphviz.

        Examples
        --------
        >>> p = make_plan([Scope(("z",)), Scope(("Item", "z"))], {"z": ()}, {"z": 2, "Item": 3})
        >>> print(p.to_dot())
        digraph plan {
          node [shape=box];
          "z" [label="1. sum z (2 values)", shape=ellipse];
          "f0" [label="factor 0"];
          subgraph "cluster_Item" {
            label="plate Item (3)";
            style=rounded;
            "f1" [label="factor 1"];
          }
          "f0" -> "z" [dir=none];
          "f1" -> "z" [dir=none];
        }
        """
        lines = ["digraph plan {", "  node [shape=box];"]
        for i, v in enumerate(self.order, 1):
            label = f"{i}. sum {v} ({self.sizes.get(v, '?')} values)"
            lines.append(f"  {_dot_id(v)} [label={_dot_id(label)}, shape=ellipse];")
        groups: dict[tuple[str, ...], list[int]] = {}
        for i, sc in enumerate(self.scopes):
            if not any(d in self.variables for d in sc.dims):
                continue  # a factor no summed variable is in plays no part in the plan
            groups.setdefault(tuple(d for d in sc.dims if d not in self.variables), []).append(i)
        for plates, ids in groups.items():
            pad = "  "
            if plates:
                name = " * ".join(f"{p} ({self.sizes.get(p, '?')})" for p in plates)
                lines += [f"  subgraph {_dot_id('cluster_' + '_'.join(plates))} {{", f"    label={_dot_id('plate ' + name)};",
                          "    style=rounded;"]
                pad = "    "
            for i in ids:
                label = self.labels[i] if i < len(self.labels) else f"factor {i}"
                lines.append(f"{pad}{_dot_id(f'f{i}')} [label={_dot_id(label)}];")
            if plates:
                lines.append("  }")
        for i, sc in enumerate(self.scopes):
            for d in sc.dims:
                if d in self.variables:
                    lines.append(f"  {_dot_id(f'f{i}')} -> {_dot_id(d)} [dir=none];")
        lines.append("}")
        return "\n".join(lines)



def make_plan(
    scopes: Sequence[Scope],
    variables: Mapping[str, Sequence[str]],
    sizes: Mapping[str, int],
) -> Plan:
    """Plan the sum of every variable in ``variables`` (name -> its plates)
    out of the product of factors with ``scopes``; ``sizes`` gives each
    axis's size. Factor ``i`` of the plan is ``scopes[i]``; later ids are
    the intermediates.

    Examples
    --------
    >>> s = [Scope(("G", "z")), Scope(("Item", "z"), (("g", "Item", "G"),))]
    >>> p = make_plan(s, {"z": ("G",)}, {"G": 4, "Item": 50, "z": 3})
    >>> [type(op).__name__ for op in p.steps]
    ['Carry', 'Eliminate', 'Finish']
    """
    variables = {v: tuple(p) for v, p in variables.items()}
    depth = _plate_depths(scopes)
    dims: dict[int, tuple[str, ...]] = {}
    maps: dict[int, tuple[tuple[str, str, str], ...]] = {}
    pending: dict[frozenset[str], list[int]] = {}
    for i, sc in enumerate(scopes):
        dims[i], maps[i] = tuple(sc.dims), tuple(sc.maps)
        pending.setdefault(_plates(sc.dims, variables), []).append(i)
    steps: list = []
    order: list[str] = []
    largest: tuple[tuple[str, ...], int] = ((), 1)
    width = 0
    fresh = len(scopes)

    def key(ordinal: frozenset[str]) -> tuple:
        return (sum(depth.get(p, 1) for p in ordinal), len(ordinal), sorted(ordinal))

    def note(axes: tuple[str, ...]) -> None:
        nonlocal largest
        n = prod(sizes.get(d, 1) for d in axes)
        if n > largest[1]:
            largest = (axes, n)

    for ids in pending.values():
        for i in ids:
            note(dims[i])
    while pending:
        leaf = max(pending, key=key)
        live = pending.pop(leaf)
        local = sorted({d for i in live for d in dims[i] if d in variables and frozenset(variables[d]) == leaf})
        graph = nx.Graph()
        graph.add_nodes_from(local)
        for i in live:
            held = [d for d in dims[i] if d in local]
            graph.add_edges_from((a, b) for j, a in enumerate(held) for b in held[j + 1:])
        elim, w = _elimination_order(graph)
        width = max(width, w)
        for v in elim:
            inputs = tuple(i for i in live if v in dims[i])
            union = tuple(dict.fromkeys(d for i in inputs for d in dims[i]))
            note(union)
            out, fresh = fresh, fresh + 1
            dims[out] = tuple(d for d in union if d != v)
            maps[out] = tuple(dict.fromkeys(m for i in inputs for m in maps[i]))
            steps.append(Eliminate(v, inputs, out, union))
            live = [i for i in live if i not in inputs] + [out]
            order.append(v)
        for i in live:
            held = [d for d in dims[i] if d in variables]
            plates = [d for d in dims[i] if d not in variables]
            if not held:
                steps.append(Finish(i, tuple(plates)))
                continue
            target = frozenset(p for v in held for p in variables[v])
            along = []
            for q in sorted(target - leaf):
                m = next((m for m in maps[i] if m[2] == q and m[1] in leaf - target), None)
                if m is None:
                    raise _unreachable(held, variables, q, plates)
                along.append(m)
            if key(target) >= key(leaf):
                raise _unreachable(held, variables, None, plates)
            reached = {m[1] for m in along}
            out, fresh = fresh, fresh + 1
            rest = [d for d in dims[i] if d not in reached and (d in variables or d in target)]
            dims[out] = tuple(rest) + tuple(m[2] for m in along if m[2] not in rest)
            maps[out] = tuple(m for m in maps[i] if m not in along)
            steps.append(Carry(i, out, tuple(p for p in plates if p not in target and p not in reached), tuple(along)))
            note(dims[out])
            pending.setdefault(target, []).append(out)
    return Plan(
        variables, tuple(order), tuple(steps), largest[0], largest[1], width,
        sizes={d: sizes[d] for d in sizes}, scopes=tuple(scopes),
    )


def _plates(dims: Sequence[str], variables: Mapping[str, tuple[str, ...]]) -> frozenset[str]:
    return frozenset(d for d in dims if d not in variables)


def _plate_depths(scopes: Sequence[Scope]) -> dict[str, int]:
    """A plate read through an index map onto another lies deeper: its
    factors are carried to the other's before the other's are summed."""
    g = nx.DiGraph((dom, cod) for sc in scopes for _, dom, cod in sc.maps)
    if not nx.is_directed_acyclic_graph(g):
        cycle = " -> ".join(f"`{a}`" for a, _ in nx.find_cycle(g))
        raise PlanError(f"the index maps read by discrete latents form a cycle of plates {cycle}")
    depth: dict[str, int] = {}
    for p in reversed(list(nx.topological_sort(g))):
        depth[p] = 1 + max((depth[q] for q in g.successors(p)), default=0)
    return depth


def _elimination_order(graph: nx.Graph) -> tuple[list[str], int]:
    """An elimination order of ``graph``'s nodes from the min-fill-in tree
    decomposition (a leaf bag's nodes that its neighbour lacks go first),
    and the decomposition's width. The next leaf is taken next to the last
    one where there is one, so a chain is summed from one end to the other
    (a run :func:`quivers.planning.contract.run_plan` multiplies as one
    balanced product)."""
    if graph.number_of_nodes() == 0:
        return [], 0
    width, tree = treewidth_min_fill_in(graph)
    tree = nx.Graph(tree)
    order: list[str] = []
    done: set[str] = set()
    near: set = set()  # the bags next to the last one removed: a path is walked from one end
    while tree.number_of_nodes():
        leaves = [b for b in tree if tree.degree(b) <= 1]
        leaf = min([b for b in leaves if b in near] or leaves, key=lambda b: sorted(b))
        near = set(tree[leaf])
        kept = set().union(*tree[leaf]) if tree.degree(leaf) else set()
        new = sorted(v for v in leaf if v not in done and v not in kept)
        order += new
        done.update(new)
        tree.remove_node(leaf)
    return order, width


def _unreachable(held, variables, plate, rows) -> PlanError:
    names = ", ".join(f"`{v}` (on {list(variables[v]) or 'no plate'})" for v in held)
    why = (
        f"no index map carries rows on {rows} to `{plate}`" if plate is not None
        else f"its factor's rows on {rows} are not nested in them"
    )
    return PlanError(
        f"cannot sum out {names} exactly: {why}",
        hint="read a latent on another plate through an index map (`z[group]`), or sample it with [enumerate=false]",
    )
