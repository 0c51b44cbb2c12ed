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

from quivers.errors import GraphError, QuiversTypeError, UnknownNameError
from quivers.programs.steps import Step

__all__ = [
    "node_name", "dependency_graph", "block_order", "scope_defines", "to_dot", "recursion_error", "node_label",
    "block_label",
]


def node_name(step: Step, position: int, block: str | None = None) -> str:
    """The graph node of ``step``, written at ``position`` of its block
    (``block`` names the enclosing marginalized latent, if any)."""
    if step.defines is not None:
        return step.defines
    kind = step.kind
    return f"{kind}#{position}" if block is None else f"{kind}#{block}.{position}"


def recursion_error(name: str, span=None) -> GraphError:
    """The error for a step that reads the name it defines (``sample sigma
    <- HalfNormal(sigma)``, ``let a = a + 1``): a recursion, which the steps
    of a program, a graph without cycles, cannot express.

    Examples
    --------
    >>> print(recursion_error("sigma"))
    `sigma` is read by its own definition, a recursion; a recursion over a sequence needs `scan`, which quivers does not have yet (a chain of discrete states is a `markov` block)
    """
    return GraphError(
        f"`{name}` is read by its own definition, a recursion",
        span=span,
        hint="a recursion over a sequence needs `scan`, which quivers does not have yet "
        "(a chain of discrete states is a `markov` block)",
    )


def scope_defines(step: Step) -> set[str]:
    """Names a step makes visible to its siblings: a block (a step with a
    body) exports the sites of its body, never its latent."""
    body = step.children()
    if body:
        out: set[str] = set()
        for s in body:
            out |= scope_defines(s)
        return out
    return {step.defines} if step.defines is not None else set()


def _block_reads(step: Step) -> set[str]:
    body = step.children()
    if not body:
        return set(step.reads)
    inner = set(step.reads)
    defined = {step.defines}
    for s in body:
        inner |= _block_reads(s)
        defined |= scope_defines(s)
    return inner - defined


def dependency_graph(steps: Sequence[Step], outer: frozenset[str] = frozenset()) -> nx.DiGraph:
    """The full dependency graph, blocks flattened; node attributes say the
    step, its enclosing marginalize latents (``blocks``) and its kind."""
    g = nx.DiGraph()
    _add_block(g, steps, outer, ())
    if nx.is_directed_acyclic_graph(g):  # much cheaper than a search for a cycle that is not there
        return g
    try:
        cycle = nx.find_cycle(g)
    except nx.NetworkXNoCycle:
        return g
    names = " -> ".join(f"`{a}`" for a, _ in cycle) + f" -> `{cycle[0][0]}`"
    raise GraphError(f"the program's steps form a cycle: {names}")


def _add_block(g: nx.DiGraph, steps: Sequence[Step], outer: frozenset[str], blocks: tuple[str, ...]) -> None:
    defined: dict[str, Step] = {}
    latents: set[str] = set()
    for s in steps:
        own = {s.defines} if s.defines is not None else set()
        if s.children():
            latents.add(s.defines)
        for name in scope_defines(s) | own:
            if name in defined or name in outer or name in g:
                raise GraphError(f"`{name}` is defined twice", span=getattr(s, "span", None))
            defined[name] = s
    block = blocks[-1] if blocks else None
    for i, s in enumerate(steps):
        g.add_node(node_name(s, i, block), step=s, blocks=blocks, kind=s.kind)
    # A marginalized latent is visible in its body only, never to siblings.
    visible = frozenset(set(defined) - latents) | outer
    for s in steps:
        if s.children():
            _add_block(g, s.children(), (visible - scope_defines(s)) | {s.defines}, blocks + (s.defines,))
    for i, s in enumerate(steps):
        node = node_name(s, i, block)
        for name in sorted(s.reads):
            if name == s.defines:
                raise recursion_error(name, getattr(s, "span", None))
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


def _dot_id(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def node_label(step: Step, program: object = None) -> str:
    """How ``qvr graph`` labels a step, in DOT text and drawings alike: its
    head as QVR writes it (``sample mu : K <- Normal``, ``marginalize z :
    K``); a site that the program reads as an index map (data, not a
    random variable) as ``index group : Item -> G``, where ``program`` is
    given to say so.

    Examples
    --------
    >>> from quivers.categories import FinSet
    >>> from quivers.distributions import Normal
    >>> from quivers.programs.steps import sample
    >>> node_label(sample("mu", FinSet("K", 2), Normal(0.0, 1.0)))
    'sample mu : K <- Normal'
    """
    name = getattr(step, "name", None)
    site = getattr(program, "sites", {}).get(name)
    if site is not None and site.kind == "index":
        dom, cod = program.index_maps[name]
        return f"index {name} : {dom.name} -> {cod.name}"
    return step.label()


def block_label(step: Step) -> str:
    """How ``qvr graph`` labels a ``marginalize`` block (the box or cluster
    around its body), in DOT text and drawings alike: its latent, support
    and grouping plate (``marginalize z : K [over=G]``)."""
    over = getattr(step, "over", None)
    return step.label() + (f" [over={over.name}]" if over is not None else "")


def to_dot(program: object) -> str:
    """DOT text of a program's dependency graph (a :class:`Program` or the
    graph itself): one node per step, labelled with its kind, name, plate and
    family; an edge per name read; each ``marginalize`` block a cluster
    labelled with its latent, support and grouping plate, nested as the
    blocks are. Render it with Graphviz (``dot -Tsvg``).

    Examples
    --------
    >>> from quivers.categories import FinSet
    >>> from quivers.distributions import Categorical, Normal
    >>> from quivers.programs.steps import marginalize, observe, sample
    >>> from quivers.programs.expr import var
    >>> K, Item = FinSet("K", 2), FinSet("Item", 3)
    >>> g = dependency_graph([
    ...     sample("mu", K, Normal(0.0, 1.0)),
    ...     marginalize("z", K, Categorical([1.0, 1.0]), [
    ...         observe("y", Item, Normal(var("mu")[var("z")], 1.0))])])
    >>> print(to_dot(g))
    digraph program {
      node [shape=box];
      "mu" [label="sample mu : K <- Normal"];
      subgraph "cluster_z" {
        label="marginalize z : K";
        style=rounded;
        "z" [label="marginalize z : K", shape=diamond];
        "y" [label="observe y : Item <- Normal"];
      }
      "mu" -> "y";
      "z" -> "y";
    }
    """
    g = program if isinstance(program, nx.DiGraph) else getattr(program, "graph", None)
    if not isinstance(g, nx.DiGraph):
        raise QuiversTypeError(f"to_dot needs a Program or its dependency graph, got {type(program).__name__}")
    lines = ["digraph program {", "  node [shape=box];"]
    children: dict[tuple[str, ...], list[str]] = {}
    for node, data in g.nodes(data=True):
        children.setdefault(data["blocks"], []).append(node)

    def emit(blocks: tuple[str, ...], depth: int) -> None:
        pad = "  " * depth
        for node in children.get(blocks, []):
            step = g.nodes[node]["step"]
            label = _dot_id(node_label(step, program))
            if step.children():
                inner = blocks + (node,)
                lines.append(f"{pad}subgraph {_dot_id('cluster_' + node)} {{")
                lines.append(f"{pad}  label={_dot_id(block_label(step))};")
                lines.append(f"{pad}  style=rounded;")
                lines.append(f"{pad}  {_dot_id(node)} [label={label}, shape=diamond];")
                emit(inner, depth + 1)
                lines.append(f"{pad}}}")
            else:
                lines.append(f"{pad}{_dot_id(node)} [label={label}];")

    emit((), 1)
    for a, b in g.edges:
        lines.append(f"  {_dot_id(a)} -> {_dot_id(b)};")
    lines.append("}")
    return "\n".join(lines)
