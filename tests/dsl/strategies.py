"""Hypothesis strategies for QVR syntax trees, shared by the dsl tests.

The trees drawn here are exactly those the parser can produce: names are
never keywords, numbers are non-negative (a minus is a ``Neg`` node), and
bodies are never empty. Spans are left out; they take no part in equality.
"""

from __future__ import annotations

import math

from hypothesis import strategies as st

from quivers.dsl import ast
from quivers.dsl.transformer import KEYWORDS

names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,6}", fullmatch=True).filter(
    lambda s: s not in KEYWORDS
)

numbers = st.one_of(
    st.integers(min_value=0, max_value=10**12),
    st.floats(min_value=0.0, max_value=1e300, allow_nan=False, allow_infinity=False).filter(
        lambda x: math.copysign(1.0, x) > 0
    ),
)

_leaves = st.one_of(st.builds(ast.Number, numbers), st.builds(ast.Name, names))


def _extend(children: st.SearchStrategy) -> st.SearchStrategy:
    small = st.lists(children, min_size=1, max_size=3).map(tuple)
    return st.one_of(
        st.builds(ast.BinOp, st.sampled_from(ast.BINARY_OPS + ast.COMPARE_OPS), children, children),
        st.builds(ast.Neg, children),
        st.builds(ast.Subscript, children, small),
        st.builds(ast.Call, names, st.lists(children, max_size=3).map(tuple)),
        st.builds(ast.Method, children, names, st.lists(children, max_size=2).map(tuple)),
        st.builds(ast.Vector, small),
        st.builds(ast.Lambda, names, children),
    )


exprs = st.recursive(_leaves, _extend, max_leaves=12)

set_exprs = st.recursive(
    st.builds(ast.SetName, names) | st.just(ast.SetUnit()),
    lambda c: st.one_of(st.builds(ast.SetProduct, c, c), st.builds(ast.SetSum, c, c)),
    max_leaves=5,
)

option_values = st.recursive(
    st.one_of(
        st.builds(ast.OptionName, names),
        st.builds(ast.OptionNumber, numbers),
        st.builds(ast.OptionProduct, st.lists(names, min_size=2, max_size=3).map(tuple)),
    ),
    lambda c: st.builds(ast.OptionList, st.lists(c, max_size=3).map(tuple)),
    max_leaves=5,
)

options = st.lists(st.builds(ast.Option, names, option_values), max_size=2).map(tuple)

families = st.builds(
    ast.FamilyCall,
    names,
    st.lists(exprs, max_size=3).map(tuple),
    st.lists(st.builds(ast.Keyword, names, exprs), max_size=2).map(tuple),
)

_simple_steps = st.one_of(
    st.builds(ast.Sample, names, st.none() | set_exprs, families, options),
    st.builds(ast.Observe, names, st.none() | set_exprs, families, options),
    st.builds(ast.Let, names, exprs),
    st.builds(ast.Perform, names, exprs),
    st.builds(ast.Factor, exprs, st.none() | names),
    st.builds(ast.Return, exprs),
    st.builds(ast.IndexMap, names, set_exprs, set_exprs),
    st.builds(ast.Data, names, st.none(), st.none()),
    st.builds(ast.Data, names, set_exprs, st.none() | set_exprs),
)



def _marginalize(body: st.SearchStrategy) -> st.SearchStrategy[ast.Marginalize]:
    return st.builds(
        ast.Marginalize, names, st.none() | set_exprs, families, options,
        st.lists(body, min_size=1, max_size=3).map(tuple),
    )


def _markov(body: st.SearchStrategy) -> st.SearchStrategy[ast.Markov]:
    return st.builds(
        ast.Markov, names, set_exprs, set_exprs, families, options,
        st.lists(body, min_size=1, max_size=3).map(tuple),
    )


# Two levels of nesting, spelled out: st.recursive over steps whose leaves
# are themselves recursive strategies is several times slower to draw.
_inner = st.one_of(_simple_steps, _marginalize(_simple_steps))
steps = st.one_of(_simple_steps, _marginalize(_inner), _markov(_inner))

program_exprs = st.recursive(
    st.one_of(st.builds(ast.ProgramRef, names), st.builds(ast.ProgramIdentity, set_exprs)),
    lambda c: st.one_of(st.builds(ast.ProgramThen, c, c), st.builds(ast.ProgramTensor, c, c)),
    max_leaves=5,
)

terms = st.recursive(
    st.one_of(st.builds(ast.TermName, names), st.builds(ast.TermNumber, st.integers(0, 10**6))),
    lambda c: st.one_of(
        st.builds(ast.TermCall, names, st.lists(c, min_size=1, max_size=3).map(tuple)),
        st.builds(ast.TermSlash, st.sampled_from(["/", "\\"]), c, c),
    ),
    max_leaves=6,
)
annotations = st.sampled_from([(), ("learnable",)])
# words may hold spaces and `#`, never a quote or a line break
words = st.text(alphabet="abcXYZ019 #.,'-", min_size=1, max_size=6).filter(str.strip)

deductions = st.builds(
    ast.DeductionDecl,
    names,
    set_exprs,
    set_exprs,
    options,
    st.lists(names, max_size=3).map(tuple),
    st.lists(st.builds(ast.DeductionRule, names, st.lists(terms, max_size=2).map(tuple), terms,
                       annotations), max_size=2).map(tuple),
    st.lists(st.builds(ast.LexiconEntry, words, terms, st.none() | terms, annotations),
             max_size=2).map(tuple),
    st.lists(names, max_size=2).map(lambda b: tuple(dict.fromkeys(b))),
).filter(lambda d: d.atoms or d.rules or d.lexicon or d.binders)

decls = st.one_of(
    st.builds(ast.CompositionDecl, names, options),
    st.builds(ast.ObjectDecl, names, st.integers(min_value=0, max_value=10**6)),
    st.builds(ast.RealObject, names, st.integers(min_value=0, max_value=10**6)),
    st.builds(ast.ObjectDef, names, set_exprs),
    st.builds(
        ast.ProgramDecl,
        names,
        set_exprs,
        set_exprs,
        options,
        st.lists(steps, min_size=1, max_size=4).map(tuple),
        st.none() | names,
    ),
    st.builds(  # a parametric program: typed parameters, no input
        ast.ProgramDecl,
        names,
        set_exprs,
        set_exprs,
        options,
        st.lists(steps, min_size=1, max_size=4).map(tuple),
        st.none(),
        st.lists(st.builds(ast.Param, names, st.sampled_from(["Real", "FinSet"])), min_size=1, max_size=3).map(tuple),
    ),
    st.builds(ast.CompositeDecl, names, program_exprs, options),
    st.builds(ast.Export, names),
    deductions,
)

# a schema's parameter groups: every group but the last has its universe
# (names before a typed one join its group, so an untyped group can only end the list)
schema_params = st.tuples(
    st.lists(st.builds(ast.SchemaParam, st.lists(names, min_size=1, max_size=2).map(tuple), names), max_size=2),
    st.none() | st.builds(ast.SchemaParam, st.lists(names, min_size=1, max_size=2).map(tuple), st.none() | names),
).map(lambda t: tuple(t[0]) + ((t[1],) if t[1] is not None else ())).filter(bool)

schema_decls = st.one_of(
    st.builds(ast.EnumObject, names, st.lists(names, min_size=1, max_size=4, unique=True).map(tuple)),
    st.builds(ast.ResiduatedObject, names, names, options),
    st.builds(ast.SchemaDecl, names, schema_params, st.lists(terms, min_size=1, max_size=3).map(tuple), terms),
    st.builds(ast.BundleDecl, names, st.lists(names, min_size=1, max_size=3).map(tuple)),
)
decls = st.one_of(decls, schema_decls)

# computations: typed parameters, a result type, an effect row and a body
scalar_types = st.builds(ast.ScalarType, st.sampled_from(["Real", "Int", "Bool"]))
value_types = st.one_of(
    scalar_types,
    st.builds(ast.TensorType, scalar_types, st.lists(st.integers(min_value=1, max_value=10**6), max_size=3).map(tuple)),
)
computation_steps = st.one_of(
    st.builds(ast.Let, names, exprs),
    st.builds(ast.Perform, names, exprs),
    st.builds(ast.Factor, exprs),
    st.builds(ast.Return, exprs),
)
computations = st.builds(
    ast.ComputationDecl,
    names,
    st.lists(st.builds(ast.TypedParam, names, value_types), max_size=3).map(tuple),
    value_types,
    st.lists(names, max_size=2).map(tuple),
    st.lists(computation_steps, min_size=1, max_size=4).map(tuple),
)
decls = st.one_of(decls, computations)

modules = st.builds(ast.Module, st.lists(decls, max_size=5).map(tuple))


# ---------------------------------------------------------------- fuzzing

qvr_fragments = st.sampled_from([
    "object", "program", "sample", "observe", "marginalize", "let", "factor", "return",
    "index", "export", "FinSet", "K", "Item", "x", "z", "Normal", "Categorical", "exp",
    "over", "via", "effects", "2", "1.5", "1e9", ":", "<-", "->", "=", "(", ")", "[", "]",
    ",", "+", "-", "*", "/", "^", "\n", "\n    ", "\n        ", "\n  ", "# c", " ", "\t",
    "@", "~",
])
"""Pieces of QVR, joined at random into mostly malformed source."""


def _scoped_modules() -> st.SearchStrategy[ast.Module]:
    """Modules over a small vocabulary, so that many get past the checker."""
    objects = st.sampled_from(["K", "Item", "G"])
    values = st.sampled_from(["x", "y", "z", "w"])
    leaves = st.one_of(
        st.builds(ast.Number, st.sampled_from([0, 1, 2, 0.5, 1.0])), st.builds(ast.Name, values)
    )
    small_exprs = st.recursive(
        leaves,
        lambda c: st.one_of(
            st.builds(ast.BinOp, st.sampled_from(ast.BINARY_OPS), c, c),
            st.builds(ast.Neg, c),
            st.builds(ast.Subscript, c, st.lists(c, min_size=1, max_size=2).map(tuple)),
            st.builds(
                ast.Call,
                st.sampled_from(["exp", "log", "sum", "sort", "softmax", "mean"]),
                c.map(lambda a: (a,)),
            ),
        ),
        max_leaves=6,
    )
    sets = st.recursive(
        st.builds(ast.SetName, objects),
        lambda c: st.builds(ast.SetProduct, c, c) | st.builds(ast.SetSum, c, c),
        max_leaves=3,
    )

    def fam(name: str, arity: int) -> st.SearchStrategy[ast.FamilyCall]:
        args = st.lists(small_exprs, min_size=arity, max_size=arity).map(tuple)
        return st.builds(ast.FamilyCall, st.just(name), args)

    families = fam("Normal", 2) | fam("HalfNormal", 1) | fam("Categorical", 1)
    over = st.lists(
        st.builds(ast.Option, st.just("over"), st.builds(ast.OptionName, objects)), max_size=1
    ).map(tuple)
    via = st.lists(
        st.builds(ast.Option, st.just("via"), st.builds(ast.OptionName, values)), max_size=1
    ).map(tuple)
    simple = st.one_of(
        st.builds(ast.Sample, values, st.none() | sets, families),
        st.builds(ast.Observe, values, st.none() | sets, families, via),
        st.builds(ast.Let, values, small_exprs),
        st.builds(ast.Factor, small_exprs),
        st.builds(ast.IndexMap, values, sets, sets),
        st.builds(ast.Data, values, st.none() | sets),
    )
    body = st.recursive(
        simple,
        lambda b: st.builds(
            ast.Marginalize, values, sets, families, over, st.lists(b, min_size=1, max_size=3).map(tuple)
        ),
        max_leaves=5,
    )
    laws = st.lists(
        st.builds(ast.Keyword, st.sampled_from(["init", "first", "trans", "trans_logits", "tran"]), small_exprs),
        min_size=1, max_size=2,
    ).map(lambda kws: ast.FamilyCall("Markov", (), tuple(kws)))
    until = st.lists(
        st.builds(ast.Option, st.just("until"), st.builds(ast.OptionName, values)), max_size=1
    ).map(tuple)
    body = body | st.builds(
        ast.Markov, values, sets, sets, laws | families, until, st.lists(body, min_size=1, max_size=3).map(tuple)
    )
    program = st.builds(
        ast.ProgramDecl, st.just("p"), sets, sets, st.just(()),
        st.lists(body, min_size=1, max_size=5).map(tuple),
    )
    return program.map(
        lambda p: ast.Module(
            (ast.ObjectDecl("K", 2), ast.ObjectDecl("Item", 3), ast.ObjectDecl("G", 2), p, ast.Export("p"))
        )
    )


scoped_modules = _scoped_modules()
