"""The dependency graph, run order, effects, and DOT rendering."""

from __future__ import annotations

import networkx as nx
import pytest
import torch

from quivers.categories import FinSet
from quivers.distributions import Categorical, HalfNormal, Normal
from quivers.errors import GraphError
from quivers.programs import (
    Effect,
    Program,
    const,
    factor,
    index_map,
    let,
    marginalize,
    observe,
    ret,
    sample,
    var,
)
from quivers.programs.graph import block_order, dependency_graph, to_dot

from tests.programs.models import gmm, grouped

Item, K, G = FinSet("Item", 4), FinSet("K", 2), FinSet("G", 3)
mu, sd, z = var("mu_k"), var("sd_k"), var("z")


def test_edges_follow_the_names_each_step_reads():
    g = gmm().graph
    assert set(g.edges) == {("probs", "z"), ("mu_k", "y"), ("sd_k", "y"), ("z", "y"), ("y", "return#4")}
    assert g.nodes["y"]["blocks"] == ("z",) and g.nodes["mu_k"]["blocks"] == ()
    assert g.nodes["z"]["kind"] == "marginalize"
    assert set(grouped().graph.predecessors("y")) == {"mu_k", "sd_k", "z", "group"}


def test_the_latent_reaches_its_body_and_what_reads_it():
    g = gmm().graph
    assert nx.descendants(g, "z") == {"y", "return#4"}
    assert {n for n in nx.descendants(g, "z") if "z" in g.nodes[n]["blocks"]} == {"y"}
    assert nx.descendants(g, "mu_k") == {"y", "return#4"}


def test_steps_may_be_written_out_of_order():
    ordered = gmm()
    shuffled = Program("gmm", Item, Item, [
        ret("y"),
        marginalize("z", K, Categorical(var("probs")), [observe("y", Item, Normal(mu[z], sd[z]))]),
        sample("sd_k", K, HalfNormal(1.0)),
        sample("mu_k", K, Normal(0.0, 5.0)),
        sample("probs", K, HalfNormal(1.0)),
    ])
    lat = {"probs": torch.tensor([1.0, 2.0]), "mu_k": torch.tensor([-1.0, 1.0]), "sd_k": torch.tensor([1.0, 2.0])}
    y = torch.randn(4)
    torch.testing.assert_close(shuffled.log_joint(None, {"y": y}, lat), ordered.log_joint(None, {"y": y}, lat))
    assert [s.name for s in shuffled.latent_sites()] == ["sd_k", "mu_k", "probs"]


def test_block_order_is_topological_and_keeps_written_order_where_free():
    steps = [let("c", var("b") + 1), let("b", var("a") * 2), sample("a", None, Normal(0.0, 1.0)), sample("d", None, Normal(0.0, 1.0))]
    assert [s.name for s in block_order(steps)] == ["a", "b", "c", "d"]
    with pytest.raises(GraphError, match=r"cycle"):
        block_order([let("a", var("b")), let("b", var("a"))])


def test_unnamed_steps_in_nested_blocks_get_distinct_nodes():
    g = dependency_graph([
        sample("m", K, Normal(0.0, 1.0)),
        factor(var("m")[0]),
        marginalize("z", K, Categorical([1.0, 1.0]), [factor(var("m")[z])]),
    ])
    assert {"factor#1", "factor#z.0"} <= set(g.nodes)


def test_step_effects():
    fam = Normal(0.0, 1.0)
    assert sample("a", None, fam).effect is Effect.Sample
    assert observe("y", Item, fam).effect is Effect.Score
    assert marginalize("z", K, Categorical([1.0, 1.0]), []).effect is Effect.Marginal
    assert let("b", const(1.0)).effect is Effect.Pure
    assert factor(const(-1.0)).effect is Effect.Score
    assert ret(const(1.0)).effect is Effect.Pure
    assert index_map("g", Item, G).effect is Effect.Pure


def test_program_effects_are_the_union_of_the_steps():
    assert gmm().effects == {Effect.Sample, Effect.Score, Effect.Marginal}
    assert grouped().effects == {Effect.Sample, Effect.Score, Effect.Marginal}
    pure = Program("p", Item, Item, [let("a", const(1.0)), ret("a")])
    assert pure.effects == {Effect.Pure}
    scored = Program("p", Item, Item, [factor(const(-1.0))])
    assert scored.effects == {Effect.Score}


def test_an_index_map_declared_with_sample_is_pure():
    """The seed's `sample group : Item <- HalfNormal(1.0)` read as data."""
    prog = grouped()
    step = next(s for s in prog.steps if getattr(s, "name", None) == "group")
    assert step.effect is Effect.Sample and prog.step_effect(step) is Effect.Pure
    data_only = Program("p", Item, Item, [
        sample("group", Item, HalfNormal(1.0)),
        sample("w", G, HalfNormal(1.0)),
        marginalize("z", K, Categorical(var("w")), [observe("y", Item, Normal(z * 1.0, 1.0), via="group")], over=G),
    ])
    assert Effect.Sample in data_only.effects  # w is sampled
    assert data_only.sites["group"].kind == "index"


def test_declared_effects_may_cover_more_than_inferred():
    prog = Program("p", Item, Item, [observe("y", Item, Normal(0.0, 1.0))], effects=["Sample", "Score"])
    assert prog.effects == {Effect.Sample, Effect.Score} and prog.inferred_effects == {Effect.Score}


def test_to_dot_renders_clusters_plates_and_edges():
    dot = to_dot(grouped())
    assert dot.startswith("digraph program {") and dot.endswith("}")
    assert dot.count("{") == dot.count("}")
    assert 'subgraph "cluster_z" {' in dot
    assert 'label="marginalize z : K [over=G]";' in dot
    assert '"probs" [label="sample probs : G <- HalfNormal"];' in dot
    assert '"y" [label="observe y : Item <- Normal [via=group]"];' in dot
    assert '"group" -> "y";' in dot and '"z" -> "y";' in dot
    # y is drawn inside the cluster, probs outside it.
    inside = dot[dot.index('subgraph "cluster_z"'):dot.index("  }\n")]
    assert '"y" [' in inside and '"probs" [' not in inside


def test_to_dot_nests_clusters_of_nested_blocks():
    K1, K2 = FinSet("K1", 2), FinSet("K2", 2)
    prog = Program("nested", Item, Item, [
        marginalize("a", K1, Categorical([1.0, 1.0]), [
            marginalize("b", K2, Categorical([1.0, 1.0]), [observe("y", Item, Normal(var("a") + var("b") * 1.0, 1.0))]),
        ]),
    ])
    dot = to_dot(prog)
    outer, inner = dot.index('subgraph "cluster_a"'), dot.index('subgraph "cluster_b"')
    assert outer < inner < dot.index('"y" [label=')
    assert dot.count("subgraph") == 2
