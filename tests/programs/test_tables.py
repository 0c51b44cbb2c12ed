"""Values defined cell by cell by one expression: ``table`` (QVR's
``factor v : V, k : K in body``).

A table is one vectorized expression over its binders' sets: its log
joint equals, in float64 and bit for bit, that of the same table written
out as a stack of its cells (how QVR compiled it before), and the work it
does per evaluation does not grow with the number of cells.
"""

from __future__ import annotations

import pytest
import torch

from quivers.categories import FinSet
from quivers.distributions import Beta, HalfNormal, Normal
from quivers.dsl import loads
from quivers.errors import QuiversTypeError, ShapeError
from quivers.programs import Expr, Program, let, observe, sample, stack, table, var
from quivers.programs.expr import STACK, TABLE, call, compile_expr, table_cells
from quivers.programs.named import Value
from tests.programs.autograd import autograd_nodes

F64 = torch.float64


def _tree(verbs: int, written_out: bool = False) -> Program:
    """A tree-shaped prior over 4 leaves, then a (Verb, Leaf) grid of
    scores of which one cell is observed: the shape of the peer's
    tree-structured categorical example, in the Python combinators."""
    Verb, Leaf, Obs = FinSet("Verb", verbs), FinSet("Leaf", 4), FinSet("Obs", 30)
    root, left, right = var("root"), var("left"), var("right")
    log = lambda x: call("log", x)  # noqa: E731
    leaf = stack(Leaf, [log(1 - root) + log(1 - left), log(1 - root) + log(left),
                        log(root) + log(1 - right), log(root) + log(right)])
    grid = table([("v", Verb), ("c", Leaf)], var("delta")[var("v")] + var("mu")[var("c")] + var("leaf")[var("c")])
    if written_out:
        grid = Expr(table_cells(grid.sympy), grid.tables)
    return Program("tree", Obs, Obs, [
        sample("root", None, Beta(1.0, 1.0)),
        sample("left", None, Beta(1.0, 1.0)),
        sample("right", None, Beta(1.0, 1.0)),
        let("leaf", leaf),
        sample("scale", None, HalfNormal(1.0)),
        sample("delta", Verb, Normal(0.0, var("scale"))),
        sample("mu", Leaf, Normal(0.0, 1.0)),
        let("grid", grid),
        observe("y", Obs, Normal(var("grid")[2, 3], 0.5)),
    ])


def _point(verbs: int, g: torch.Generator, batch: tuple[int, ...] = ()) -> dict[str, torch.Tensor]:
    u = lambda *s: torch.rand((*batch, *s), generator=g, dtype=F64)  # noqa: E731
    n = lambda *s: torch.randn((*batch, *s), generator=g, dtype=F64)  # noqa: E731
    return {"root": u(), "left": u(), "right": u(), "scale": u() + 0.1, "delta": n(verbs), "mu": n(4)}


def test_a_table_has_the_log_joint_of_its_cells_written_out() -> None:
    g = torch.Generator().manual_seed(0)
    y = torch.randn(30, generator=g, dtype=F64)
    vectorized, cells = _tree(12), _tree(12, written_out=True)
    for batch in [(), (3,)]:
        for _ in range(5):
            point = _point(12, g, batch)
            got = vectorized.log_joint(None, {"y": y}, point)
            want = cells.log_joint(None, {"y": y}, point)
            assert got.dtype == F64
            torch.testing.assert_close(got, want, rtol=0.0, atol=0.0)


def test_a_table_by_hand_in_float64() -> None:
    g = torch.Generator().manual_seed(1)
    p = _point(5, g)
    y = torch.randn(30, generator=g, dtype=F64)
    r, lft, rt = p["root"], p["left"], p["right"]
    leaf = torch.stack([(1 - r).log() + (1 - lft).log(), (1 - r).log() + lft.log(),
                        r.log() + (1 - rt).log(), r.log() + rt.log()])
    grid = p["delta"][:, None] + p["mu"][None, :] + leaf[None, :]
    beta = torch.distributions.Beta(torch.tensor(1.0, dtype=F64), torch.tensor(1.0, dtype=F64))
    normal = torch.distributions.Normal
    want = (beta.log_prob(r) + beta.log_prob(lft) + beta.log_prob(rt)
            + torch.distributions.HalfNormal(torch.tensor(1.0, dtype=F64)).log_prob(p["scale"])
            + normal(0.0, p["scale"]).log_prob(p["delta"]).sum() + normal(0.0, 1.0).log_prob(p["mu"]).sum()
            + normal(grid[2, 3], 0.5).log_prob(y).sum())
    torch.testing.assert_close(_tree(5).log_joint(None, {"y": y}, p), want, rtol=1e-12, atol=1e-12)


def test_a_table_is_one_expression_whatever_its_number_of_cells() -> None:
    # structural, not timed: the autograd graph of the log joint is the same
    # size for 3 verbs and for 300 (written out, it grows with the cells)
    sizes, written = [], []
    for verbs in (3, 100):
        p = {k: v.requires_grad_() for k, v in _point(verbs, torch.Generator().manual_seed(2)).items()}
        y = torch.zeros(30, dtype=F64)
        sizes.append(len(autograd_nodes(_tree(verbs).log_joint(None, {"y": y}, p))))
        written.append(len(autograd_nodes(_tree(verbs, written_out=True).log_joint(None, {"y": y}, p))))
    assert sizes[0] == sizes[1]
    assert written[1] > written[0] + 300
    # and the compiled expression holds one table node, no stack of cells
    grid = next(s for s in _tree(100).steps if getattr(s, "name", None) == "grid").expr.sympy
    assert grid.func == TABLE
    assert not grid.find(lambda n: getattr(n, "func", None) == STACK)


def test_a_qvr_factor_table_compiles_to_one_table() -> None:
    text = """
object Row : FinSet 200
object Leaf : FinSet 50
object Obs : FinSet 2
program p : Obs -> Obs
    sample fx : Row <- Normal(0.0, 1.0)
    sample lf : Leaf <- Normal(0.0, 1.0)
    let grid = factor r : Row, c : Leaf in fx[r] * lf[c] + 0.5 * c
    observe y : Obs <- Normal(grid[199, 49], 1.0)
export p
"""
    m = loads(text).morphism  # 10000 cells: it used to be refused as too many to write out
    grid = next(s for s in m.steps if getattr(s, "name", None) == "grid").expr.sympy
    assert grid.func == TABLE
    fx, lf = torch.randn(200, dtype=F64), torch.randn(50, dtype=F64)
    y = torch.tensor([0.1, -0.2], dtype=F64)
    normal = torch.distributions.Normal
    want = (normal(0.0, 1.0).log_prob(fx).sum() + normal(0.0, 1.0).log_prob(lf).sum()
            + normal(fx[199] * lf[49] + 0.5 * 49, 1.0).log_prob(y).sum())
    torch.testing.assert_close(m.log_joint(None, {"y": y}, {"fx": fx, "lf": lf}), want)


def test_a_table_broadcasts_a_body_that_omits_a_binder() -> None:
    A, B = FinSet("A", 2), FinSet("B", 3)
    env = {"x": Value(torch.tensor([[1.0, 2.0]]), ("I", "A"))}
    v = compile_expr(table([("a", A), ("b", B)], var("x")[var("a")]))(env)
    assert v.dims == ("I", "A", "B")
    torch.testing.assert_close(v.tensor, torch.tensor([[[1.0] * 3, [2.0] * 3]]))
    one = compile_expr(table([("b", B)], Expr(2.5)))({})
    assert one.dims == ("B",) and one.tensor.tolist() == [2.5, 2.5, 2.5]


def test_a_diagonal_of_a_square_table() -> None:
    K = FinSet("K", 3)
    t = torch.arange(9.0).reshape(3, 3)
    v = compile_expr(table([("k", K)], var("t")[var("k"), var("k")]))({"t": Value(t, ("K", "K'"))})
    torch.testing.assert_close(v.tensor, torch.diagonal(t))


def test_table_mistakes() -> None:
    K = FinSet("K", 2)
    with pytest.raises(ShapeError, match="already have the axis `K`"):
        compile_expr(table([("k", K)], var("x") + var("k")))({"x": Value(torch.zeros(2), ("K",))})
    with pytest.raises(QuiversTypeError, match="its own set"):
        table([("a", K), ("b", K)], var("a"))
    with pytest.raises(QuiversTypeError, match="product"):
        table([("a", K * K)], var("a"))


def test_a_qvr_table_reads_the_diagonal_of_a_square_site() -> None:
    # the second `k` of `t[k, k]` reads the copy `K'` of `t : K * K`, as the
    # cells written out (`t[0, 0]`, `t[1, 1]`, ...) did
    m = loads("""
object K : FinSet 3
object Obs : FinSet 2
program p : Obs -> Obs
    sample t : K * K <- Normal(0.0, 1.0)
    let d = factor k : K in t[k, k]
    observe y : Obs <- Normal(d[2], 1.0)
    return d
export p
""").morphism
    t = torch.randn(3, 3)
    torch.testing.assert_close(m.sample(latents={"t": t})["_return"], torch.diagonal(t))
