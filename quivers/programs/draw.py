"""A program's dependency graph drawn with matplotlib.

:func:`draw_program` lays the graph out as a listing: one row per step in
the order written (a ``marginalize`` block's body right under it), each
step shifted right by its depth in the dependency graph, and an arrow for
each name a step reads. Plates are marked by the colour of a node's border
(the legend gives each plate and its size); each ``marginalize`` block is a
dashed box around its rows, labelled with its latent, support and grouping
plate. Because a block's rows are contiguous, its box holds exactly its
steps. Steps and blocks carry the labels of the DOT text
(:func:`quivers.programs.to_dot`): :func:`~quivers.programs.graph.node_label`
and :func:`~quivers.programs.graph.block_label` write both, so ``qvr
graph`` names a site the same way in either.

Examples
--------
>>> from quivers.categories import FinSet
>>> from quivers.distributions import Categorical, HalfNormal, Normal
>>> from quivers.programs import Program, marginalize, observe, sample, var
>>> Item, K = FinSet("Item", 5), FinSet("K", 2)
>>> gmm = Program("gmm", Item, Item, [
...     sample("probs", K, HalfNormal(1.0)),
...     sample("mu", K, Normal(0.0, 5.0)),
...     marginalize("z", K, Categorical(var("probs")), [
...         observe("y", Item, Normal(var("mu")[var("z")], 1.0))])])
>>> fig = draw_program(gmm)
>>> [t.get_text() for t in fig.axes[0].texts if t.get_text()]  # doctest: +NORMALIZE_WHITESPACE
['marginalize z : K', 'sample probs : K <- HalfNormal', 'sample mu : K <- Normal',
 'marginalize z : K', 'observe y : Item <- Normal']
"""

from __future__ import annotations

from typing import Any

import networkx as nx

from quivers.errors import QuiversTypeError
from quivers.programs.graph import block_label, node_label
from quivers.programs.steps import Step

__all__ = ["draw_program", "layout"]

_FILL = {
    "latent": "#dbe9f6",
    "observed": "#c7c7c7",
    "index": "#f4f4f4",
    "data": "#f4f4f4",
    "marginal": "#fde0c5",
    "deterministic": "#ffffff",
    "factor": "#f6d6d6",
    "return": "#ffffff",
}
_PLATE_COLOURS = ["#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"]


def _node_of(graph: nx.DiGraph) -> dict[int, str]:
    return {id(data["step"]): node for node, data in graph.nodes(data=True)}


def _rows(steps, node_of, depth: int = 0, out=None) -> list[tuple[str, Step, int]]:
    out = [] if out is None else out
    for s in steps:
        out.append((node_of[id(s)], s, depth))
        _rows(s.children(), node_of, depth + 1, out)
    return out


def layout(program: Any) -> dict[str, tuple[float, float]]:
    """Node positions: ``x`` the longest path from a source, ``y`` minus the
    row of the step in the written order.

    Examples
    --------
    >>> from quivers.categories import FinSet
    >>> from quivers.distributions import Normal
    >>> from quivers.programs import Program, let, sample, var
    >>> p = Program("p", FinSet("K", 1), FinSet("K", 1), [
    ...     sample("a", None, Normal(0.0, 1.0)), let("b", var("a") + 1)])
    >>> layout(p)
    {'a': (0, 0), 'b': (1, -1)}
    """
    g = _graph(program)
    node_of = _node_of(g)
    level: dict[str, int] = {}
    for n in nx.topological_sort(g):
        level[n] = max((level[p] + 1 for p in g.predecessors(n)), default=0)
    return {node: (level[node], -row) for row, (node, _, _) in enumerate(_rows(program.steps, node_of))}


def _graph(program: Any) -> nx.DiGraph:
    g = getattr(program, "graph", None)
    if not isinstance(g, nx.DiGraph) or not hasattr(program, "steps"):
        raise QuiversTypeError(f"draw_program needs a Program, got {type(program).__name__}")
    return g


def _plate(program: Any, node: str) -> str | None:
    site = program.sites.get(node)
    if site is None or not site.dims:
        return None
    return " * ".join(site.dims)


def draw_program(program: Any, ax: Any = None, title: str | None = None) -> Any:
    """Draw ``program``'s dependency graph; returns the matplotlib Figure.

    Parameters
    ----------
    program
        A :class:`~quivers.programs.Program`.
    ax
        Axes to draw on; a new figure (no pyplot, so no display) when None.
    title
        Defaults to the program's signature.
    """
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import FancyBboxPatch

    g = _graph(program)
    node_of = _node_of(g)
    rows = _rows(program.steps, node_of)
    pos = layout(program)
    width = max((x for x, _ in pos.values()), default=0) + 1
    if ax is None:
        fig = Figure(figsize=(2.8 + 2.6 * width, 1.2 + 0.75 * len(rows)))
        ax = fig.add_subplot()
    fig = ax.figure
    plates = sorted({p for node, _, _ in rows if (p := _plate(program, node)) is not None})
    colour = {p: _PLATE_COLOURS[i % len(_PLATE_COLOURS)] for i, p in enumerate(plates)}

    for row, (node, step, depth) in enumerate(rows):
        if not step.children():
            continue
        last = row
        for r in range(row + 1, len(rows)):
            if rows[r][2] <= depth:
                break
            last = r
        xs = [pos[rows[r][0]][0] for r in range(row, last + 1)]
        pad = 0.42 - 0.06 * depth
        box = FancyBboxPatch(
            (min(xs) - pad, -last - 0.4 + 0.05 * depth), max(xs) - min(xs) + 2 * pad, last - row + 0.8 - 0.1 * depth,
            boxstyle="round,pad=0.02", fill=False, linestyle="--", edgecolor="#d95f02", linewidth=1.2,
        )
        ax.add_patch(box)
        ax.text(min(xs) - pad, -row + 0.5 - 0.05 * depth, block_label(step),
                ha="left", va="bottom", fontsize=7, color="#d95f02")

    for a, b in g.edges:
        (xa, ya), (xb, yb) = pos[a], pos[b]
        ax.annotate("", xy=(xb, yb), xytext=(xa, ya),
                    arrowprops=dict(arrowstyle="-|>", color="#555555", lw=0.8, shrinkA=14, shrinkB=14,
                                    connectionstyle="arc3,rad=0.15"))

    for node, step, _ in rows:
        x, y = pos[node]
        site = program.sites.get(node)
        kind = site.kind if site is not None else step.kind
        plate = _plate(program, node)
        ax.text(x, y, node_label(step, program), ha="center", va="center", fontsize=7,
                bbox=dict(boxstyle="round,pad=0.35", facecolor=_FILL.get(kind, "#ffffff"),
                          edgecolor=colour.get(plate, "#333333"), linewidth=2.0 if plate else 1.0))

    handles = [Line2D([], [], color=colour[p], lw=3, label=f"plate {p} ({_plate_size(program, p)})") for p in plates]
    handles += [Line2D([], [], color="#d95f02", lw=1.2, ls="--", label="marginalize block")]
    ax.legend(handles=handles, loc="lower left", fontsize=7, frameon=False, bbox_to_anchor=(0.0, -0.02))
    ax.set_xlim(-0.9, width - 0.1)
    ax.set_ylim(-len(rows) - 0.2, 0.9)
    ax.set_axis_off()
    ax.set_title(title if title is not None else f"{program.name} : {program.dom.name} -> {program.cod.name}",
                 fontsize=10)
    return fig


def _plate_size(program: Any, plate: str) -> str:
    sizes: dict[str, int] = {}
    for site in program.sites.values():
        sizes.update(zip(site.dims, site.shape))
    return " x ".join(str(sizes.get(d, "?")) for d in plate.split(" * "))
