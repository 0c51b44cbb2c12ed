"""The dependency graph of a program, as a networkx DAG.

Nodes are steps (named by what they define, or ``factor#i``/``return``);
an edge ``a -> b`` says that step ``b`` reads the name step ``a`` defines.
Within each block (the program body, or the body of a ``marginalize``) the
steps run in a topological order of this graph that keeps the written order
where the graph leaves it free, so programs may be written declaratively.

Examples
--------
>>> from quivers.categories import FinSet
>>> from quivers.distributions import Normal
>>> from quivers.programs.steps import sample, let
>>> from quivers.programs.expr import var
>>> g = dependency_graph([let("b", var("a") + 1), sample("a", None, Normal(0.0, 1.0))])
>>> list(g.edges)
[('a', 'b')]
"""

from __future__ import annotations

from collections.abc import Sequence

import networkx as nx

from quivers.errors import GraphError, UnknownNameError
from quivers.programs.steps import MarginalizeStep, Step

__all__ = ["node_name", "dependency_graph", "block_order", "scope_defines"]


def node_name(step: Step, position: int) -> str:
    """The graph node of ``step``, written at ``position`` of its block."""
    if step.defines is not None:
        return step.defines
    return f"{type(step).__name__.removesuffix('Step').lower()}#{position}"


def scope_defines(step: Step) -> set[str]:
    """Names a step makes visible to its siblings: a marginalize block
    exports the sites of its body, never its latent."""
    if isinstance(step, MarginalizeStep):
        out: set[str] = set()
        for s in step.body:
            out |= scope_defines(s)
        return out
    return {step.defines} if step.defines is not None else set()


def _block_reads(step: Step) -> set[str]:
    if not isinstance(step, MarginalizeStep):
        return set(step.reads)
    inner = set(step.reads)
    defined = {step.name}
    for s in step.body:
        inner |= _block_reads(s)
        defined |= scope_defines(s)
    return inner - defined


def dependency_graph(steps: Sequence[Step], outer: frozenset[str] = frozenset()) -> nx.DiGraph:
    """The full dependency graph, blocks flattened; node attributes say the
    step, its enclosing marginalize latents (``blocks``) and its kind."""
    g = nx.DiGraph()
    _add_block(g, steps, outer, ())
    try:
        cycle = nx.find_cycle(g)
    except nx.NetworkXNoCycle:
        return g
    names = " -> ".join(f"`{a}`" for a, _ in cycle) + f" -> `{cycle[0][0]}`"
    raise GraphError(f"the program's steps form a cycle: {names}")


def _add_block(g: nx.DiGraph, steps: Sequence[Step], outer: frozenset[str], blocks: tuple[str, ...]) -> None:
    defined: dict[str, Step] = {}
    for s in steps:
        own = {s.defines} if s.defines is not None else set()
        for name in scope_defines(s) | own:
            if name in defined or name in outer:
                raise GraphError(f"`{name}` is defined twice", span=getattr(s, "span", None))
            defined[name] = s
    for i, s in enumerate(steps):
        kind = type(s).__name__.removesuffix("Step").lower()
        g.add_node(node_name(s, i), step=s, blocks=blocks, kind=kind)
    visible = frozenset(defined) | outer
    for s in steps:
        if isinstance(s, MarginalizeStep):
            _add_block(g, s.body, (visible - scope_defines(s)) | {s.name}, blocks + (s.name,))
    for i, s in enumerate(steps):
        node = node_name(s, i)
        for name in sorted(s.reads):
            if name not in visible:
                raise UnknownNameError(
                    f"step `{node}` reads `{name}`, which is not defined",
                    name=name,
                    candidates=sorted(visible),
                    span=getattr(s, "span", None),
                )
            g.add_edge(name, node)


def block_order(steps: Sequence[Step], outer: frozenset[str] = frozenset()) -> list[Step]:
    """The steps of one block in a topological order of their dependencies,
    keeping the written order where dependencies leave it free."""
    provides: dict[str, int] = {}
    for i, s in enumerate(steps):
        for name in scope_defines(s):
            provides[name] = i
    g = nx.DiGraph()
    g.add_nodes_from(range(len(steps)))
    for i, s in enumerate(steps):
        for name in _block_reads(s):
            j = provides.get(name)
            if j is not None and j != i:
                g.add_edge(j, i)
    try:
        order = list(nx.lexicographical_topological_sort(g))
    except nx.NetworkXUnfeasible:
        cycle = nx.find_cycle(g)
        names = " -> ".join(f"`{node_name(steps[a], a)}`" for a, _ in cycle)
        raise GraphError(f"the program's steps form a cycle: {names}") from None
    return [steps[i] for i in order]
