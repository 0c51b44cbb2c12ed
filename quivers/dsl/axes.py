"""Event axes, plates, reductions and the module's algebra: what
``[over=K]``, ``[iid_over=D]``, ``[reduction=...]`` and ``composition``
mean in QVR.

On ``sample`` and ``observe``, ``over`` names the family's *event axes*
(the axis of a Dirichlet's simplex, of a multivariate normal's vector) and
``iid_over`` the plate of independent draws: ``sample theta : Doc <-
Dirichlet(alpha) [over=Topic, iid_over=Doc]`` is one Dirichlet row over
``Topic`` per document, the site ``theta`` on ``Doc * Topic``. The plate
is the index set, or ``iid_over`` when the index set is left out.

A ``composition NAME [level=algebra]`` declaration selects the module's
algebra (:data:`ALGEBRAS`); a ``marginalize`` block then sums its latent
out with that algebra's sum, or with the ``reduction=`` it names, which
must be a sum of that algebra (:data:`Algebra.reductions`).

Laws
----
- ``site_set(s)`` is the plate times the ``over`` axes, in that order, and
  equals the index set when a step has neither option.
- Every algebra's reductions are carried to log weights by its weight map,
  a semiring homomorphism from its sum into ``LOG`` or ``MAX_PLUS``: the
  ``sum`` of ``PROB`` is ``logsumexp`` of log weights, the ``min`` cost of
  ``MIN_PLUS`` is the ``max`` log weight.

Examples
--------
>>> from quivers.dsl.parser import parse
>>> (_, _, p) = parse('''
... object Doc : FinSet 2
... object Topic : FinSet 3
... program lda : Doc -> Doc
...     sample theta : Doc <- Dirichlet(1.0) [over=Topic, iid_over=Doc]
... ''').items
>>> from quivers.dsl.printer import dump_set
>>> dump_set(site_set(p.body[0]))
'Doc * Topic'
>>> ALGEBRAS["max_plus"].semiring, ALGEBRAS["max_plus"].runtime("max")
(MAX_PLUS, 'max')
"""

from __future__ import annotations

from dataclasses import dataclass

from quivers.categories import (
    BOOL, GODEL, LOG, LUKASIEWICZ, MAX_PLUS, MAX_TIMES, MIN_PLUS, PROB, PRODUCT_FUZZY, REAL, Semiring,
)
from quivers.dsl import ast

__all__ = [
    "Algebra", "ALGEBRAS", "AXIS_OPTIONS", "LEVELS", "axis_names", "grouping", "plate", "site_set", "module_algebra",
]

AXIS_OPTIONS = ("over", "iid_over")
"""The options of ``sample`` and ``observe`` that name axes."""

LEVELS = ("algebra",)
"""The levels a ``composition`` may declare: every algebra here is a semiring."""


@dataclass(frozen=True)
class Algebra:
    """A module's algebra: its semiring and the reductions of a block in it.

    ``reductions`` maps each name a ``reduction=`` option may give to the
    reduction of log weights that computes it (``"logsumexp"`` or
    ``"max"``), the first being the default. ``scores`` is False for the
    algebras whose product is not the product of probabilities (the fuzzy
    ones): a density has no meaning there.

    Examples
    --------
    >>> ALGEBRAS["probability"].reductions
    {'sum': 'logsumexp', 'max': 'max'}
    >>> ALGEBRAS["log_prob"].default
    'logsumexp'
    """

    name: str
    semiring: Semiring
    reductions: dict[str, str]
    scores: bool = True
    what: str = ""

    @property
    def default(self) -> str | None:
        """The reduction a block uses when it names none."""
        return next(iter(self.reductions), None)

    def runtime(self, reduction: str) -> str:
        """The reduction of log weights that computes ``reduction`` here."""
        return self.reductions[reduction]


def _algebras() -> dict[str, Algebra]:
    log = Algebra("log_prob", LOG, {"logsumexp": "logsumexp", "max": "max"},
                  what="log probabilities: a block's sum is logsumexp (the marginal)")
    prob = Algebra("probability", PROB, {"sum": "logsumexp", "max": "max"},
                   what="probabilities: a block's sum is the sum of probabilities")
    boolean = Algebra("boolean", BOOL, {"or": "max"}, what="truth values: whether an assignment is possible")
    max_plus = Algebra("max_plus", MAX_PLUS, {"max": "max"},
                       what="log weights under max: the most probable explanation")
    viterbi = Algebra("viterbi", MAX_TIMES, {"max": "max"}, what="probabilities under max: the best path's probability")
    tropical = Algebra("tropical", MIN_PLUS, {"min": "max"}, what="costs (negative log weights) under min")
    lukasiewicz = Algebra("lukasiewicz", LUKASIEWICZ, {}, scores=False, what="fuzzy truth values, Lukasiewicz's t-norm")
    godel = Algebra("godel", GODEL, {}, scores=False, what="fuzzy truth values under min and max")
    product_fuzzy = Algebra("product_fuzzy", PRODUCT_FUZZY, {}, scores=False,
                            what="fuzzy truth values, the product t-norm with max as the join")
    # a program's weights (densities) are non-negative reals, which REAL multiplies and sums as PROB does
    real = Algebra("real", REAL, {"sum": "logsumexp"},
                   what="real numbers under + and *: matrix products of any sign, densities as in probability")
    every = (log, prob, boolean, max_plus, viterbi, tropical, lukasiewicz, godel, product_fuzzy, real)
    out = {a.name: a for a in every}
    # other spellings: the semiring constants, and the names the peer's documents use
    out.update({"markov": prob, "min_plus": tropical, "max_times": viterbi, "log": log})
    for a in every:
        out[a.semiring.name] = a
    return out


ALGEBRAS: dict[str, Algebra] = _algebras()
"""Every algebra a ``composition`` may name, by each of its spellings."""

DEFAULT = ALGEBRAS["log_prob"]
"""The algebra of a module without a ``composition`` declaration."""


def module_algebra(module: ast.Module) -> Algebra:
    """The algebra a (checked) module declares, or ``log_prob``.

    Examples
    --------
    >>> from quivers.dsl.parser import parse
    >>> module_algebra(parse("composition tropical as algebra")).semiring
    MIN_PLUS
    """
    for d in module.items:
        if isinstance(d, ast.CompositionDecl):
            return ALGEBRAS[d.name]
    return DEFAULT


def _option(options: tuple[ast.Option, ...], key: str) -> ast.OptionValue | None:
    return next((o.value for o in options if o.key == key), None)


def axis_names(value: ast.OptionValue | None) -> tuple[str, ...]:
    """The object names an axis option gives: ``K``, ``[A, B]`` or ``A * B``.

    Examples
    --------
    >>> axis_names(ast.OptionList((ast.OptionName("A"), ast.OptionName("B"))))
    ('A', 'B')
    """
    if value is None:
        return ()
    if isinstance(value, ast.OptionName):
        return (value.name,)
    if isinstance(value, ast.OptionProduct):
        return value.names
    if isinstance(value, ast.OptionList):
        return tuple(n for v in value.items for n in axis_names(v))
    return ()


def _product(names: tuple[str, ...]) -> ast.SetExpr | None:
    out: ast.SetExpr | None = None
    for n in names:
        s = ast.SetName(n)
        out = s if out is None else ast.SetProduct(out, s)
    return out


def plate(step: ast.Sample | ast.Observe) -> ast.SetExpr | None:
    """The plate of independent draws of ``step``: its index set, else the
    product of its ``iid_over`` objects."""
    if _square(step):
        return None
    if step.index_set is not None:
        return step.index_set
    return _product(axis_names(_option(step.options, "iid_over")))


def grouping(step: ast.Marginalize) -> ast.SetExpr | None:
    """The grouping plate of a block: ``over=G``, or ``over=G * H`` (one
    latent per pair)."""
    return _product(axis_names(_option(step.options, "over")))


def _square(step: ast.Sample | ast.Observe) -> bool:
    """``sample chol : D <- LKJCholesky(eta)``, as the peer writes it: a
    square-matrix family on one set with no axis options is a matrix on
    ``D * D`` (a plate of matrices is written ``D * K * K`` or with ``over``)."""
    from quivers.distributions import FAMILIES

    spec = FAMILIES.get(step.family.name)
    return (
        spec is not None and spec.event_rank == 2 and isinstance(step.index_set, ast.SetName)
        and not any(o.key in AXIS_OPTIONS for o in step.options)
    )


def site_set(step: ast.Sample | ast.Observe) -> ast.SetExpr | None:
    """The set the site of ``step`` lives on: its plate times its ``over``
    (event) axes."""
    if _square(step):
        return ast.SetProduct(step.index_set, step.index_set)
    rows = plate(step)
    event = _product(axis_names(_option(step.options, "over")))
    if event is None:
        return rows
    if rows is None:
        return event
    out = rows
    for n in axis_names(_option(step.options, "over")):
        out = ast.SetProduct(out, ast.SetName(n))
    return out
