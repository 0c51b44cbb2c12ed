"""Stan programs equivalent to quivers programs, for cross-checking.

:func:`to_stan` writes a Stan program with the same posterior as a
:class:`~quivers.programs.Program`, and :func:`stan_data` the data dict to
run it with. The translation:

- ``data``: the size of every finite set the program uses (``int<lower=0>
  K;``), every index map (``array[Item] int<lower=1, upper=G> group;``,
  1-based), every observation, every ``sample`` site supplied as data
  (``given``), and every tensor constant of a family argument.
- ``parameters``: the other ``sample`` sites, with the constraint of their
  family's support (``vector<lower=0>[K] sd_k;``, ``simplex[K]``).
- ``transformed parameters`` / ``transformed data``: top-level ``let``s,
  and the matrix of a ``MultivariateNormal`` given as an expression
  (``scale_tril=s * L`` is ``matrix[K, K] L_y;`` written entry by entry).
- ``model``: one sampling statement per ``sample`` and ``observe``
  (vectorized where the expression allows, a loop otherwise), ``target +=``
  for each ``factor``, and each ``marginalize`` block as its exact sum:
  per row, ``target += log_sum_exp(log_softmax(lw) + ll)`` over the
  latent's values; grouped (``over=G``), the body's terms accumulated into
  a per-group ``ll[group[i], k]`` before the same ``log_sum_exp`` per group
  (the right Kan extension along the index map, written as a loop; per
  pair, ``ll[g, h, k]``, for ``over=G * H``); a Markov chain block by the
  forward algorithm (:mod:`quivers.emit.stan_markov`). A block reduced by
  ``max`` (``reduction=max``, or a ``max_plus`` module) writes ``max`` for
  ``log_sum_exp``.
- ``functions``: the distributions Stan lacks, written as user-defined
  ``_lpdf`` functions (:mod:`quivers.emit.stan_families`).

Laws
----
- The emitted program's log density differs from ``Program.log_joint`` by
  a constant (Stan's ``~`` drops normalizing constants), so both have the
  same posterior. A half-normal or half-Cauchy term inside a mixture adds
  its ``log(2)`` explicitly.
- A ``Uniform`` latent whose bounds read other latents is declared with
  them (``real<lower=0.1, upper=delta> sigma;``) and keeps its sampling
  statement, whose ``-log(high - low)`` is not constant.
- Nothing is emitted silently wrong: discrete parameters, nested grouped
  blocks, unknown steps or families, bounds of other families that depend
  on other values, and anything else
  without a faithful translation raise
  :class:`~quivers.errors.UnsupportedError` naming the step.

Examples
--------
>>> from quivers.dsl import loads
>>> m = loads('''
... object Item : FinSet 3
... object K : FinSet 2
... program gmm : Item -> Item
...     sample probs : K <- HalfNormal(1.0)
...     sample mu_k : K <- Normal(0.0, 5.0)
...     sample sd_k : K <- HalfNormal(1.0)
...     marginalize z : K <- Categorical(probs)
...         observe y : Item <- Normal(mu_k[z], sd_k[z])
...     return y
... ''')
>>> print(to_stan(m.morphism), end="")
// Stan program emitted by quivers from `gmm : Item -> Item`.
data {
  int<lower=0> Item;
  int<lower=0> K;
  vector[Item] y;
}
parameters {
  vector<lower=0>[K] probs;
  vector[K] mu_k;
  vector<lower=0>[K] sd_k;
}
model {
  probs ~ normal(0, 1.0);
  mu_k ~ normal(0.0, 5.0);
  sd_k ~ normal(0, 1.0);
  // marginalize z : K, one latent per row of Item
  for (i in 1:Item) {
    vector[K] lw_z;
    vector[K] ll_z;
    for (k in 1:K) {
      lw_z[k] = log(probs[k]);
      ll_z[k] = normal_lpdf(y[i] | mu_k[k], sd_k[k]);
    }
    target += log_sum_exp(log_softmax(lw_z) + ll_z);
  }
}
"""

from __future__ import annotations

import math
import re

from collections.abc import Iterable, Mapping
from typing import Any

import sympy
import torch
from torch.distributions import constraints as C

from quivers.distributions import CONSTRAINTS
from quivers.errors import DataError, QuiversError, QuiversTypeError, UnsupportedError
from quivers.programs.expr import HostFunction
from quivers.emit.stan_expr import VECTOR, Leaf, NotVectorizable, Translator, number
from quivers.emit.stan_markov import forward
from quivers.emit.stan_families import (
    STAN_FAMILIES,
    STAN_FUNCTIONS,
    ZEROS,
    components,
    pushed_base,
    stan_family,
    stan_name,
    truncated_base,
)
from quivers.programs import Program
from quivers.programs.data import check_data, check_index_map, check_names, check_value, data_source
from quivers.programs.graph import block_order
from quivers.programs.steps import (
    FactorStep,
    LetStep,
    MarginalizeStep,
    ObserveStep,
    SampleStep,
    Step,
    StepVisitor,
)

__all__ = ["to_stan", "stan_data", "STAN_FAMILIES", "STAN_RESERVED"]

_MVN = {"covariance_matrix": "multi_normal", "scale_tril": "multi_normal_cholesky", "precision_matrix": "multi_normal_prec"}
"""Stan's multivariate normal for each matrix a MultivariateNormal takes."""

_EVENT_VECTOR = ("Categorical", "Dirichlet", "Multinomial", "DirichletMultinomial")
"""Families whose vector argument is read whole along the category axis."""

STAN_RESERVED = frozenset(
    """for in while repeat until if then else true false target functions model data parameters
    quantities transformed generated int real complex vector row_vector matrix simplex ordered
    positive_ordered unit_vector sum_to_zero_vector cholesky_factor_corr cholesky_factor_cov
    corr_matrix cov_matrix complex_vector complex_row_vector complex_matrix array tuple void return
    break continue print reject fatal_error lower upper offset multiplier struct typedef export auto
    extern var static profile get_lp lp__ e pi""".split()
)
"""Words a Stan identifier may not be."""


_REDUCE = {"logsumexp": "log_sum_exp", "max": "max"}
"""The Stan function of each reduction of a marginalize block."""


def to_stan(program: Program, *, given: Iterable[str] = ()) -> str:
    """A Stan program with the same posterior as ``program``.

    Parameters
    ----------
    program
        A built program (from QVR or the combinators).
    given
        Names of ``sample`` sites supplied as data (covariates, known
        scales): they are declared in ``data`` instead of ``parameters``,
        and their sampling statements are kept.

    Raises
    ------
    UnsupportedError
        For a construct with no faithful Stan translation, naming the step.
    """
    if not isinstance(program, Program):
        raise QuiversTypeError(f"to_stan needs a quivers Program, got {type(program).__name__}")
    return _Emitter(program, frozenset(given)).emit()


def stan_data(program: Program, observations: Mapping[str, Any], *, given: Iterable[str] | None = None) -> dict:
    """The data dict (JSON-ready) for :func:`to_stan`'s program.

    Sizes of the finite sets, index maps and Categorical values shifted to
    1-based, integer data as ints, tensor constants, and every observed or
    ``given`` site. ``given`` defaults to the ``sample`` sites present in
    ``observations``. Leading batch axes of size one are dropped.
    """
    if given is None:
        given = [k for k in observations if k in program.sites and program.sites[k].kind == "latent"]
    check_names(observations, program.sites, "observations")
    emitter = _Emitter(program, frozenset(given))
    emitter.check()
    out: dict[str, Any] = dict(emitter.sizes)
    for name, (stan, dims, tensor) in emitter.constants.items():
        out[stan] = tensor.detach().cpu().tolist()
    for name in emitter.data_sites():
        site = program.sites[name]
        what = {"index": "index map", "observed": "observation", "data": "data"}.get(site.kind, "given latent")
        if name not in observations:
            maps = f" ({program.index_maps[name][0].name} -> {site.values_in})" if site.kind == "index" else ""
            raise DataError(f"{what} `{name}`{maps} is missing from {data_source()}", hint="Stan needs every data value")
        # The values are checked as every inference entry point checks them:
        # without it, .long() below would turn a count of 0.5 into 0, a
        # category of 1.5 into 1 and NaN into garbage, silently.
        if site.kind == "index":
            t = check_index_map(site, observations[name], *program.index_maps[name])[0].tensor
        elif site.kind == "data":
            t = check_data(site, observations[name]).tensor
        else:
            t = check_value(site, observations[name], what).tensor
        while t.dim() > len(site.shape) and t.shape[0] == 1:
            t = t[0]
        if tuple(t.shape) != tuple(site.shape):  # the trailing axes fit (checked above): a batch of data sets
            raise DataError(
                f"{what} `{name}` has shape {tuple(t.shape)}: its leading axes {tuple(t.shape[: t.dim() - len(site.shape)])} "
                "are a batch of data sets, and a Stan program conditions on one data set",
                hint=f"pass shape {tuple(site.shape)}",
            )
        if emitter.one_based(name):
            t = t.long() + 1
        elif emitter.integer(name):
            t = t.long()
        if site.family is not None and site.family.name in ("Multinomial", "DirichletMultinomial"):
            _check_total(program, name, t, observations)
        out[name] = t.tolist()
    return out


def _check_total(program: Program, name: str, counts: torch.Tensor, observations: Mapping[str, Any]) -> None:
    """Stan's multinomial takes its count from the data, quivers' from
    ``total_count``: a row whose counts sum to another number has density
    zero in quivers, and would be scored in Stan."""
    n = program.sites[name].family.args["total_count"].sympy
    if n.is_Number:
        total = torch.tensor(float(n))
    elif n.name in program.constants:
        total = program.constants[n.name][0]
    else:
        total = torch.as_tensor(observations[n.name])
    sums = counts.sum(-1)
    bad = (sums.to(total.dtype) != total).nonzero()
    if len(bad):
        row = tuple(int(i) for i in bad[0])
        raise DataError(
            f"observation `{name}` at {row} counts {int(sums[row])} draws, but its total_count is "
            f"{float(total.expand_as(sums.to(total.dtype))[row]):g}: its density is zero, and Stan's multinomial "
            "would score it with the count it reads from the data",
            hint="pass counts that sum to the total count",
        )


# ---------------------------------------------------------------- emitter


class _Emitter:
    def __init__(self, program: Program, given: frozenset[str]) -> None:
        self.p = program
        self.sites = program.sites
        self.given = given
        self.sizes: dict[str, int] = {}
        self.constants: dict[str, tuple[str, tuple[str, ...], torch.Tensor]] = {}
        self.taken: set[str] = set()
        self.functions: set[str] = set()

    # ------------------------------------------------------------ facts

    def fail(self, message: str, step: Step | None = None, hint: str | None = None) -> UnsupportedError:
        prefix = f"cannot emit Stan for program `{self.p.name}`: "
        return UnsupportedError(
            message if message.startswith(prefix) else prefix + message,  # an error re-raised at its step
            span=getattr(step, "span", None),
            source=self.p.source,
            hint=hint,
        )

    def one_based(self, name: str) -> bool:
        site = self.sites[name]
        return site.kind in ("index", "marginal") or (
            site.family is not None and site.family.name in ("Categorical", "OrderedLogistic"))

    def integer(self, name: str) -> bool:
        site = self.sites[name]
        return site.kind in ("index", "marginal") or bool(site.family is not None and site.family.discrete)

    def vector_rows(self, name: str) -> bool:
        """Whether ``name`` is declared as an array of vectors (simplexes,
        ordered vectors, ...) rather than a matrix (see :meth:`declare`)."""
        site = self.sites[name]
        if len(site.dims) < 2:
            return False
        if site.constraint is not None:
            return CONSTRAINTS[site.constraint].event_rank == 1
        return site.family is not None and site.family.name == "Dirichlet"

    def data_sites(self) -> list[str]:
        return [
            n for n, s in self.sites.items()
            if s.kind in ("index", "data", "observed") or (s.kind == "latent" and n in self.given)
        ]

    def walk(self, steps: Iterable[Step], depth: int = 0):
        for s in steps:
            yield s, depth
            yield from self.walk(s.children(), depth + 1)

    def check(self) -> None:
        """Gather sizes and constants; reject what Stan cannot say."""
        for step in (t for s in self.p.steps for t in s.walk()):
            host = next((f for e in step.exprs() for f in e.tables.values() if isinstance(f, HostFunction)), None)
            if host is not None:
                raise self.fail(
                    f"`{step.label()}` runs the computation `{host.name}` (a `define` with parameters), which is "
                    "not translated to a Stan function",
                    step, hint="fit it here (NUTS or SVI); Stan emission covers programs without computations",
                )
        for site in self.sites.values():
            for d, n in zip(site.dims, site.shape):
                self.sizes.setdefault(_set(d), n)
            if site.values_in is not None and site.num_values is not None and "*" not in site.values_in:
                self.sizes.setdefault(site.values_in, site.num_values)  # the `upper=K` of its declaration
        admit = _Admit(self)
        for s, depth in self.walk(self.p.steps):
            admit.visit(s, depth)
        for name in self.given:
            if name not in self.sites or self.sites[name].kind != "latent":
                raise QuiversTypeError(f"`given` names `{name}`, which is no sampled site of `{self.p.name}`")
        for name, (dom, cod) in self.p.index_maps.items():
            for f in dom.factors + cod.factors:  # a map on M * T is an array[M, T]; into G * H, upper=G*H
                self.sizes.setdefault(f.name, f.size)
        self._constants()
        first = [f.name for s in (self.p.dom, self.p.cod) for f in getattr(s, "factors", ()) if f.name in self.sizes]
        self.sizes = {n: self.sizes[n] for n in dict.fromkeys(first + list(self.sizes))}
        self._names()

    def _constants(self) -> None:
        constants = self.p.constants
        for s, _ in self.walk(self.p.steps):
            if s.law is not None:  # a chain never gets here: _Admit refuses it
                exprs = {f"{s.name}_{k}": v for k, v in s.law.args.items()}
            elif isinstance(s, (LetStep, FactorStep)):
                exprs = {f"{getattr(s, 'name', 'factor')}_const": s.expr}
            else:
                continue
            for base, e in exprs.items():
                syms = sorted(n.name for n in getattr(e, "sympy", sympy.S.Zero).free_symbols if n.name.startswith("__const"))
                for j, sym in enumerate(syms):
                    if sym in self.constants:
                        continue
                    tensor, dims = constants.get(sym, (None, None))
                    if tensor is None or any(d.startswith("__") for d in dims):
                        raise self.fail(f"the tensor constant in `{base}` has no named axes Stan can declare", s)
                    stan = base if len(syms) == 1 else f"{base}_{j + 1}"
                    for d, n in zip(dims, tensor.shape[tensor.dim() - len(dims):]):
                        self.sizes.setdefault(d, int(n))
                    self.constants[sym] = (stan, tuple(dims), tensor)

    def _names(self) -> None:
        names = list(self.sizes) + list(self.sites) + [c[0] for c in self.constants.values()]
        seen: set[str] = set()
        for n in names:
            if n in STAN_RESERVED or n.endswith("__") or not n.isidentifier() or n.startswith("_"):
                raise self.fail(f"`{n}` is not a valid Stan identifier", hint="rename it")
            if n in seen:
                raise self.fail(f"`{n}` names both a finite set and a value, which Stan cannot tell apart",
                                hint="rename one of them")
            seen.add(n)
        self.taken = set(seen)

    def fresh(self, base: str, used: set[str]) -> str:
        stem = base[:1].lower() if base[:1].isalpha() else "i"
        name, n = stem, 1
        while name in self.taken or name in used or name in STAN_RESERVED:
            name, n = f"{stem}{n}", n + 1
        used.add(name)
        return name

    # ------------------------------------------------------------ types

    def _bounds(self, name: str, step: Step) -> tuple[str, str]:
        """``(kind, bounds)``: kind ``real``, ``int`` or ``simplex``."""
        site = self.sites[name]
        if self.integer(name):
            if self.one_based(name):
                return "int", f"<lower=1, upper={site.values_in}>" if site.values_in else "<lower=1>"
            if site.family is not None and site.family.name == "Bernoulli":
                return "int", "<lower=0, upper=1>"
            return "int", "<lower=0>"
        if site.family is None:  # real data: no support to bound it
            return "real", ""
        fam = site.family
        consts = {k: torch.tensor(float(v.sympy)) for k, v in fam.args.items()
                  if getattr(getattr(v, "sympy", None), "is_Number", False)}
        if fam.name == "Uniform" and len(consts) < 2:
            return "real", self._uniform_bounds(name, step)
        try:
            if not fam.spec.static_support and any(k not in consts for k in fam.support_reads()):
                raise QuiversTypeError("dependent support")
            support = fam.spec.support(consts) if not fam.spec.static_support else fam.support()
        except QuiversError:
            if fam.spec.transform is not None and (site.kind != "latent" or name in self.given):
                return "real", ""  # data: bounds would only check it, and its statement scores it
            raise self.fail(f"the support of `{name}` depends on other values", step,
                            hint="Stan bounds here must be constants") from None
        while isinstance(support, C.independent):
            support = support.base_constraint
        if isinstance(support, C.simplex.__class__):
            return "simplex", ""
        if support is C.real or type(support) is type(C.real):
            return "real", ""
        lower = getattr(support, "lower_bound", None)
        upper = getattr(support, "upper_bound", None)
        if isinstance(support, (type(C.positive), type(C.nonnegative), type(C.unit_interval),
                                type(C.half_open_interval(0.0, 1.0)), type(C.less_than(0.0)))):
            parts = []
            if lower is not None:
                parts.append(f"lower={self._bound(lower, name, step)}")
            if upper is not None:
                parts.append(f"upper={self._bound(upper, name, step)}")
            return "real", f"<{', '.join(parts)}>"
        raise self.fail(f"`{name}` has the support {support}, which Stan emission cannot declare", step)

    def _uniform_bounds(self, name: str, step: Step) -> str:
        """Stan's ``<lower=low, upper=high>`` of a ``Uniform`` whose bounds
        are expressions: scalars, or vectors along the site's one axis.

        A parameter's bounds may read the parameters declared before it
        (the program's order, which Stan keeps) and data; a top-level
        ``let`` is inlined, since transformed parameters are declared after
        the parameters. A ``given`` site is data, whose bounds only check
        the values: it is declared without them, and its sampling statement
        still scores it."""
        site = self.sites[name]
        if site.kind != "latent" or name in self.given:
            return ""
        dims = list(site.dims)
        lets = {s.name: s.expr.sympy for s in self.p.steps if isinstance(s, LetStep)}
        t = self.translator(inline=lets)
        parts = []
        for key, label in (("low", "lower"), ("high", "upper")):
            e = site.family.args[key].sympy
            try:
                along = t.dims(e)
                if along and (len(dims) != 1 or tuple(along) != tuple(dims)):
                    raise self.fail(
                        f"the {key} bound of `{name}` varies over {list(along)}; Stan emission writes bounds "
                        "that are scalars or vectors along a one-axis site's plate", step)
                code = t.code(e, {d: VECTOR for d in along})
            except NotVectorizable as err:
                raise self.fail(f"the {key} bound of `{name}` reads `{err}`, which cannot be written as a vector", step) from None
            except UnsupportedError as err:
                if err.message.startswith("cannot emit"):
                    raise
                raise self.fail(f"the {key} bound of `{name}`: {err.message}", step) from None
            parts.append(f"{label}={code}")
        return f"<{', '.join(parts)}>"

    def _bound(self, value: Any, name: str, step: Step) -> str:
        t = torch.as_tensor(value)
        if t.numel() != 1 and not bool((t == t.reshape(-1)[0]).all()):
            raise self.fail(f"the bounds of `{name}` vary across its elements", step)
        v = float(t.reshape(-1)[0])
        if t.dtype == torch.float32:  # the shortest decimal of the float32 (0.2, not 0.20000000298023224)
            v = float(str(t.reshape(-1)[0].numpy()))
        if abs(abs(v) - math.pi) < 1e-6:  # an angle's bound (VonMises), stored in float32
            return "pi()" if v > 0 else "-pi()"
        return number(int(v) if v.is_integer() else v)

    def declare(self, name: str, step: Step) -> str:
        site = self.sites[name]
        dims = [_set(d) for d in site.dims]
        constraint = site.constraint
        if constraint is None and site.family is not None and site.family.name == "LKJCholesky":
            constraint = "cholesky_corr"  # the support of LKJCholesky is Stan's type
        if constraint is not None:  # ordered[K], simplex[K], cholesky_factor_corr[K], ...
            spec = CONSTRAINTS[constraint]
            lead = dims[: len(dims) - spec.event_rank]
            inner = f"{spec.stan}[{dims[len(dims) - spec.event_rank]}]"
            return f"array[{', '.join(lead)}] {inner} {name};" if lead else f"{inner} {name};"
        kind, bounds = self._bounds(name, step)
        if kind == "simplex":
            if not dims:
                raise self.fail(f"`{name}` is a simplex without an event axis", step)
            inner = f"simplex[{dims[-1]}]"
            return f"array[{', '.join(dims[:-1])}] {inner} {name};" if len(dims) > 1 else f"{inner} {name};"
        return f"{self._container(kind, bounds, dims)} {name};"

    @staticmethod
    def _container(kind: str, bounds: str, dims: list[str]) -> str:
        dims = [_set(d) for d in dims]
        if kind == "int":
            return f"array[{', '.join(dims)}] int{bounds}" if dims else f"int{bounds}"
        if not dims:
            return f"real{bounds}"
        if len(dims) == 1:
            return f"vector{bounds}[{dims[0]}]"
        head = f"array[{', '.join(dims[:-2])}] " if len(dims) > 2 else ""
        return f"{head}matrix{bounds}[{dims[-2]}, {dims[-1]}]"

    # ------------------------------------------------------------ emit

    def emit(self) -> str:
        self.check()
        leaves: dict[str, Leaf] = {}
        for name, site in self.sites.items():
            if site.kind == "marginal":
                continue
            leaves[name] = Leaf(
                name, tuple(site.dims), site.values_in,
                self.integer(name) if site.kind != "deterministic" else False,
                self.one_based(name) if site.kind != "deterministic" else False,
                rows=self.vector_rows(name),
            )
        for sym, (stan, dims, _) in self.constants.items():
            leaves[sym] = Leaf(stan, dims)
        self.leaves = leaves
        order = block_order(self.p.steps)
        self._hoist_matrices(order)
        data = [f"int<lower=0> {n};" for n in self.sizes]
        data += [f"{self._container('real', '', list(d))} {stan};" for stan, d, _ in self.constants.values()]
        data += [self.declare(n, self.sites[n].step) for n in self.data_sites()]
        params = [self.declare(s.name, s) for s, _ in self.walk(order)
                  if isinstance(s, SampleStep) and self.sites[s.name].kind == "latent" and s.name not in self.given]
        tdata, tparams, model = self._lets(order)
        top = _Statements(self)
        for s in order:
            model += top.visit(s)
        out = [f"// Stan program emitted by quivers from `{self.p.name} : {self.p.dom.name} -> {self.p.cod.name}`."]
        functions = [line for f in sorted(self.functions) for line in STAN_FUNCTIONS[f].splitlines()]
        for block, lines in (("functions", functions), ("data", data), ("transformed data", tdata), ("parameters", params),
                             ("transformed parameters", tparams), ("model", model)):
            if lines or block in ("data", "model"):
                out.append(f"{block} {{")
                out += ["  " + line if line else "" for line in lines]
                out.append("}")
        return "\n".join(out) + "\n"

    def _lets(self, order: list[Step]) -> tuple[list[str], list[str], list[str]]:
        """Top-level lets: declared in transformed data when they read only
        data, else in transformed parameters; declarations come first."""
        data_names = set(self.data_sites()) | {s for s in self.constants}
        decl = {"tdata": [], "tparams": []}
        body = {"tdata": [], "tparams": []}
        for s in order:
            if not isinstance(s, LetStep):
                continue
            reads = {n.name for n in s.expr.sympy.free_symbols}
            where = "tdata" if reads <= data_names else "tparams"
            if where == "tdata":
                data_names.add(s.name)
            dims = list(self.sites[s.name].dims)
            decl[where].append(f"{self._container('real', '', dims)} {s.name};")
            body[where] += self._assign(s, dims)
        for name, (e, axis, step) in self.matrices.items():
            where = "tdata" if {n.name for n in e.free_symbols} <= data_names else "tparams"
            decl[where].append(f"matrix[{axis}, {axis}] {name};")
            t = self.translator()
            body[where] += self._loops([axis, f"{axis}'"], lambda bind: [
                f"{name}[{bind[axis]}, {bind[axis + chr(39)]}] = {t.code(e, bind)};"], step)
        return decl["tdata"] + body["tdata"], decl["tparams"] + body["tparams"], []

    def _hoist_matrices(self, order: list[Step]) -> None:
        """A ``MultivariateNormal`` whose matrix is an expression on ``K *
        K'`` alone (``2.0 * S``, the scaled Cholesky factor ``s * L``, an
        inline ``matrix(K, ...)``) gets a name of its own, ``Sigma_y``
        (``L_y``, ``Omega_y``): a matrix of transformed data or parameters,
        written entry by entry, which the sampling statement reads."""
        self.matrices: dict[str, tuple[sympy.Basic, str, Step]] = {}
        self.matrix_names: dict[tuple[str, str], str] = {}
        t = self.translator()
        stems = {"covariance_matrix": "Sigma", "scale_tril": "L", "precision_matrix": "Omega"}
        for s, _ in self.walk(order):
            if not isinstance(s, (SampleStep, ObserveStep)) or s.family.name != "MultivariateNormal":
                continue
            key = next(k for k in _MVN if k in s.family.args)
            e = s.family.args[key].sympy
            if isinstance(e, sympy.Symbol) and e.name not in t.inline:
                continue
            axis = self.sites[s.name].dims[-1]
            try:
                dims = set(t.dims(e))
            except UnsupportedError:
                continue
            if dims != {axis, f"{axis}'"}:
                continue  # refused where it is read, by name
            name, n = f"{stems[key]}_{s.name}", 1
            while name in self.taken or name in self.leaves or name in self.matrices or name in STAN_RESERVED:
                name, n = f"{stems[key]}_{s.name}{n}", n + 1
            self.matrices[name] = (e, _set(axis), s)
            self.matrix_names[(s.name, key)] = name
            self.leaves[name] = Leaf(name, (axis, f"{axis}'"))
            self.taken.add(name)

    def translator(self, extra: Mapping[str, Leaf] = {}, inline: Mapping[str, sympy.Basic] = {}) -> Translator:
        return Translator({**self.leaves, **extra}, inline)

    def _assign(self, s: LetStep, dims: list[str]) -> list[str]:
        t = self.translator()
        if len(dims) <= 1:
            try:
                return [f"{s.name} = {t.code(s.expr.sympy, {d: VECTOR for d in dims})};"]
            except NotVectorizable:
                pass
        return self._loops(dims, lambda bind: [f"{s.name}{_idx(dims, bind)} = {t.code(s.expr.sympy, bind)};"], s)

    def _loops(self, dims: list[str], inner, step: Step, bind: dict[str, str] | None = None,
               names: Mapping[str, str] | None = None, reserved: Iterable[str] = ()) -> list[str]:
        """``inner(bind)`` inside one loop per axis of ``dims`` not bound yet
        (loop variables from ``names`` where given, fresh otherwise, never
        one of ``reserved``)."""
        bind = dict(bind or {})
        names = dict(names or {})
        used = set(bind.values()) | set(names.values()) | set(reserved)
        heads = []
        for d in dims:
            if d in bind:
                continue
            v = names[d] if d in names else self.fresh(d, used)
            bind[d] = v
            heads.append("  " * len(heads) + f"for ({v} in 1:{_set(d)}) {{")
        try:
            lines = inner(bind)
        except UnsupportedError as err:
            if err.message.startswith("cannot emit"):
                raise
            raise self.fail(err.message, step) from None
        pad = "  " * len(heads)
        return heads + [pad + line for line in lines] + ["  " * i + "}" for i in reversed(range(len(heads)))]

    # ------------------------------------------------------------ statements

    def _args(self, fam, t: Translator, bind: Mapping[str, str], step: Step, site) -> tuple[str, list[str]]:
        spec = stan_family(fam)
        name = stan_name(fam)
        stan = spec.stan
        args = dict(fam.args)
        if name == "MultivariateNormal":
            (key, stan), = ((k, v) for k, v in _MVN.items() if k in args)
            loc = self._event_vector(fam, "loc", args["loc"].sympy, t, bind, site, step)
            return stan, [loc, self._event_matrix(key, args[key].sympy, t, bind, site, step)]
        if "logits" in args:
            stan = spec.logit_stan
        if stan in STAN_FUNCTIONS:
            self.functions.add(stan)
        out = []
        for a in spec.args:
            if a.startswith("="):
                out.append(a[1:])
                continue
            key = "logits" if a in ("probs", "weights") and "logits" in args else a
            e = args[key].sympy
            if name in _EVENT_VECTOR or key == "cutpoints":
                out.append(self._event_vector(fam, key, e, t, bind, site, step))
            elif name == "Geometric":  # Stan's neg_binomial(1, beta) with beta / (1 + beta) = probs
                code = t.code(e, bind)
                out.append(f"exp({code})" if key == "logits" else f"{code} / (1 - {code})" if _atomic(code)
                           else f"({code}) / (1 - ({code}))")
            elif name == "NegativeBinomial" and key == "probs":
                p = t.code(e, bind)
                out.append(f"(1 - {p}) / {p}" if _atomic(p) else f"(1 - ({p})) / ({p})")
            elif name == "NegativeBinomial" and key == "logits":
                code = t.code(e, bind)
                out.append(f"exp(-{code})" if _atomic(code) else f"exp(-({code}))")
            else:
                out.append(t.code(e, bind))
        return stan, out

    def _event_vector(self, fam, key, e, t: Translator, bind, site, step) -> str:
        """A vector argument along the event or category axis."""
        on_event = fam.event_rank > 0  # Dirichlet, Multinomial: the value's last axis
        axis = site.dims[-1] if on_event else (site.values_in or None)
        dims = t.dims(e)
        if on_event and axis not in dims:
            code = t.code(e, {k: v for k, v in bind.items() if k != axis})
            return f"rep_vector({code if key != 'probs' else '1.0 / ' + _set(axis)}, {_set(axis)})"
        if axis is None:
            axis = next((d for d in dims if d not in bind), None)
        if axis is None:
            raise self.fail(f"the {key} of `{site.name}` must be a named vector for Stan emission", step)
        inner = {k: v for k, v in bind.items() if k != axis}
        if not isinstance(e, sympy.Symbol):  # an expression of vectors along the axis, elementwise
            t._slices = True  # a table read at bound indices is its slice along the axis (`phi[k]'`)
            try:
                code = t.code(e, {**inner, axis: VECTOR})
            except NotVectorizable:
                if VECTOR in inner.values():  # entries vectorized over a plate: the caller loops over it
                    raise
                raise self.fail(f"the {key} of `{site.name}` must be a named vector for Stan emission", step,
                                hint="define the vector with a `let` and pass its name") from None
            except UnsupportedError:
                raise self.fail(f"the {key} of `{site.name}` must be a named vector for Stan emission", step,
                                hint="define the vector with a `let` and pass its name") from None
            finally:
                t._slices = False
            if key not in ("weights", "probs"):
                return code
            code = code if _atomic(code) else f"({code})"
            return f"{code} / sum({code})"
        leaf = t.leaf(e.name)
        if any(inner.get(d) == VECTOR for d in leaf.dims):
            raise NotVectorizable(e.name)
        idx = [inner[d] for d in leaf.dims if d != axis]
        if any(d not in inner for d in leaf.dims if d != axis) or leaf.dims[-1] != axis:
            raise self.fail(f"the {key} of `{site.name}` must have its category axis last", step)
        code = f"{leaf.stan}[{', '.join(idx)}]" if idx else leaf.stan
        if idx and len(leaf.dims) == 2 and not leaf.rows:
            code = f"{code}'"  # a matrix row is a row_vector
        if key in ("weights", "probs"):  # normalized along the axis, as quivers normalizes them
            return f"{code} / sum({code})"
        return code

    def _event_matrix(self, key: str, e: sympy.Basic, t: Translator, bind, site, step) -> str:
        """A matrix argument on the square of the event axis (a covariance,
        its Cholesky factor): a named value, its other axes bound."""
        axis = site.dims[-1]
        hoisted = self.matrix_names.get((site.name, key))
        if hoisted is not None:
            return hoisted
        leaf = t.leaf(e.name) if isinstance(e, sympy.Symbol) and e.name not in t.inline else None
        if leaf is None or len(leaf.dims) < 2 or tuple(_set(d) for d in leaf.dims[-2:]) != (axis, axis):
            raise self.fail(f"the {key} of `{site.name}` must be a named matrix on `{axis} * {axis}` for Stan "
                            "emission", step, hint="define the matrix with a `let` and pass its name")
        lead = leaf.dims[:-2]
        if any(bind.get(d) in (None, VECTOR) for d in lead):
            raise NotVectorizable(e.name)
        return f"{leaf.stan}[{', '.join(bind[d] for d in lead)}]" if lead else leaf.stan

    def _sampling(self, s: SampleStep | ObserveStep) -> list[str]:
        site = self.sites[s.name]
        t = self.translator()
        plate = [d for d in site.dims if d not in site.event_dims]
        event = site.family.event_rank > 0
        if truncated_base(site.family) is not None:  # Stan truncates one value at a time
            def truncated(bind):
                stan, args = self._args(s.family, t, bind, s, site)
                low, high = self._truncation(s.family, t, bind)
                return [f"{s.name}{_idx(plate, bind)} ~ {stan}({', '.join(args)}) T[{low or ''}, {high or ''}];"]
            return self._loops(plate, truncated, s)
        if site.family.name in ZEROS:  # Stan has no such family: its log mass, one count at a time
            return self._loops(plate, lambda bind: [f"target += {self._zeros(s, t, bind)};"], s)
        if site.family.name == "Mixture":
            return self._loops(plate, lambda bind: [f"target += {self._mixture(s, t, bind)};"], s)
        if site.family.spec.transform is not None:
            return self._loops(plate, lambda bind: [f"target += {self._pushed(s, t, bind)};"], s)
        scalar = stan_family(site.family).scalar  # a user-defined _lpdf of one value
        if len(plate) <= 1 and not (event and plate) and not (scalar and plate):
            try:
                stan, args = self._args(s.family, t, {d: VECTOR for d in plate}, s, site)
                return [f"{s.name} ~ {stan}({', '.join(args)});"]
            except NotVectorizable:
                pass
            except UnsupportedError as err:
                raise self.fail(err.message, s) from None
        if len(plate) == 2 and not event and not scalar and not self.integer(s.name) and site.constraint is None:
            try:  # arguments constant across the matrix: one vectorized statement
                stan, args = self._args(s.family, t, {}, s, site)
                return [f"to_vector({s.name}) ~ {stan}({', '.join(args)});"]
            except UnsupportedError:
                pass
        def body(bind):
            stan, args = self._args(s.family, t, bind, s, site)
            return [f"{s.name}{_idx(plate, bind)} ~ {stan}({', '.join(args)});"]
        return self._loops(plate, body, s)

    def _factor(self, s: FactorStep) -> list[str]:
        t = self.translator()
        dims = list(t.dims(s.expr.sympy))
        if len(dims) <= 1:
            try:
                code = t.code(s.expr.sympy, {d: VECTOR for d in dims})
                return [f"target += {'sum(' + code + ')' if dims else code};"]
            except NotVectorizable:
                pass
            except UnsupportedError as err:
                raise self.fail(err.message, s) from None
        return self._loops(dims, lambda bind: [f"target += {t.code(s.expr.sympy, bind)};"], s)

    # ------------------------------------------------------------ marginalize

    def _lpdf(self, s: Step, t: Translator, bind: Mapping[str, str]) -> str:
        if isinstance(s, FactorStep):
            return t.code(s.expr.sympy, bind)
        site = self.sites[s.name]
        if site.family.name in ZEROS:
            return self._zeros(s, t, bind)
        if site.family.name == "Mixture":
            return self._mixture(s, t, bind)
        if site.family.spec.transform is not None:
            return self._pushed(s, t, bind)
        if truncated_base(site.family) is not None:
            return self._truncated_term(s, t, bind)
        stan, args = self._args(s.family, t, bind, s, site)
        suffix = "_lpmf" if site.family.discrete else "_lpdf"
        plate = [d for d in site.dims if d not in site.event_dims]
        term = f"{stan}{suffix}({s.name}{_idx(plate, bind)} | {', '.join(args)})"
        return f"{term} + log2()" if stan_family(site.family).half else term

    def _truncation(self, fam, t: Translator, bind: Mapping[str, str]) -> tuple[str | None, str | None]:
        """The bounds of a truncation in Stan (None: no bound). A family on
        half the line is written with Stan's distribution on the whole
        line, so its truncation starts at 0 at the lowest."""
        low, high = (t.code(fam.args[b].sympy, bind) if b in fam.args else None for b in ("low", "high"))
        if stan_family(fam).half:
            e = fam.args["low"].sympy if low is not None else None
            low = "0" if low is None else low if e.is_Number and e >= 0 else f"fmax({low}, 0)"
        return low, high

    def _truncated_term(self, s: Step, t: Translator, bind: Mapping[str, str]) -> str:
        """The log density of one value of a truncated family, as a term
        of a sum (Stan's T[low, high] is for sampling statements only):
        the family's, less the log probability of the bounds, and
        -inf outside them."""
        site = self.sites[s.name]
        stan, args = self._args(s.family, t, bind, s, site)
        plate = [d for d in site.dims if d not in site.event_dims]
        y, a = f"{s.name}{_idx(plate, bind)}", ", ".join(args)
        low, high = self._truncation(s.family, t, bind)
        if low is not None and high is not None:
            norm = f"log_diff_exp({stan}_lcdf({high} | {a}), {stan}_lcdf({low} | {a}))"
            out = f"{y} < {low} || {y} > {high}"
        elif low is not None:
            norm, out = f"{stan}_lccdf({low} | {a})", f"{y} < {low}"
        else:
            norm, out = f"{stan}_lcdf({high} | {a})", f"{y} > {high}"
        return f"({out} ? negative_infinity() : {stan}_lpdf({y} | {a}) - {norm})"

    def _mixture(self, s: Step, t: Translator, bind: Mapping[str, str]) -> str:
        """The log density of one value of a ``Mixture``: the log-sum-exp
        of its components' terms plus their log weights, as Stan users
        write a mixture (``log_mix`` generalized to K components)."""
        site, fam = self.sites[s.name], s.family
        plate = [d for d in site.dims if d not in site.event_dims]
        y = f"{s.name}{_idx(plate, bind)}"
        key = "logits" if "logits" in fam.args else "weights"
        w = self._event_vector(fam, key, fam.args[key].sympy, t, bind, site, s)
        terms = []
        for part in components(fam):
            if part.name == "PointMass":  # an atom: all its mass at its value
                terms.append(f"({y} == {t.code(part.args['value'].sympy, bind)} ? 0 : negative_infinity())")
                continue
            stan, args = self._args(part, t, bind, s, site)
            term = f"{stan}{'_lpmf' if part.discrete else '_lpdf'}({y} | {', '.join(args)})"
            terms.append(f"{term} + log2()" if stan_family(part).half else term)
        lw = f"log_softmax({w})" if key == "logits" else f"log({w})"
        return f"log_sum_exp({lw} + [{', '.join(terms)}]')"

    def _pushed(self, s: Step, t: Translator, bind: Mapping[str, str]) -> str:
        """The log density of one value ``y`` of ``Pushforward(F, f)``: F's at
        ``f^-1(y)`` plus ``log |d f^-1 / dy|``, the change of variables
        Stan users write by hand."""
        site, fam = self.sites[s.name], s.family
        tr, base = fam.spec.transform, pushed_base(fam)
        stan, args = self._args(base, t, bind, s, site)
        plate = [d for d in site.dims if d not in site.event_dims]
        codes = {n: t.code(fam.args[n].sympy, bind) for n in tr.params}
        where = {"y": f"{s.name}{_idx(plate, bind)}", **{n: c if _atomic(c) else f"({c})" for n, c in codes.items()}}
        term = f"{stan}_lpdf({tr.stan.format(**where)} | {', '.join(args)})"
        term = f"{term} + log2()" if stan_family(base).half else term
        return f"{term} + {tr.stan_log_det.format(**where)}"

    def _zeros(self, s: Step, t: Translator, bind: Mapping[str, str]) -> str:
        """The log mass of one count of a zero-inflated or hurdle family,
        as Stan users write it: a conditional on the count being 0."""
        site = self.sites[s.name]
        stan, args = self._args(s.family, t, bind, s, site)
        plate = [d for d in site.dims if d not in site.event_dims]
        y = f"{s.name}{_idx(plate, bind)}"
        g = t.code(s.family.args["zero_prob"].sympy, bind)
        base = f"{stan}_lpmf({{}} | {', '.join(args)})"
        if s.family.name.startswith("Hurdle"):
            return f"({y} == 0 ? log({g}) : log1m({g}) + {base.format(y)} - log1m_exp({base.format(0)}))"
        return f"({y} == 0 ? log_sum_exp(log({g}), log1m({g}) + {base.format(0)}) : log1m({g}) + {base.format(y)})"

    def _log_weights(self, fam, t: Translator, bind: Mapping[str, str]) -> str:
        """The unnormalized log weight of a Categorical's entry under ``bind``."""
        ((key, w),) = fam.args.items()
        code = t.code(w.sympy, bind)
        return code if key == "logits" else f"log({code})"

    def _prior(self, s: MarginalizeStep, t: Translator, bind: Mapping[str, str]) -> str:
        return self._log_weights(s.prior, t, bind)

    def _body(self, s: MarginalizeStep, lets: dict[str, sympy.Basic]) -> tuple[list[Step], list[MarginalizeStep]]:
        """The scored steps and nested blocks of a block body; its lets are
        added to ``lets``, to be inlined where they are read."""
        part = _BodyPart(self, lets, [], [])
        for b in block_order(s.body):
            part.visit(b)
        return part.terms, part.nested

    def _marginalize(self, s: MarginalizeStep) -> list[str]:
        if s.over is not None:
            return self._grouped(s)
        rows = list(self.sites[s.name].dims)
        lines = [f"// marginalize {s.name} : {s.support.name}, "
                 + (f"one latent per row of {' * '.join(rows)}" if rows else "a single latent")]
        return lines + self._loops(rows, lambda bind: self._per_row(s, bind, {}, {}, None), s)

    def _per_row(self, s: MarginalizeStep, bind: dict[str, str], enums: dict[str, Leaf],
                 lets: dict[str, sympy.Basic], into: str | None) -> list[str]:
        """Lines that add the block's row term (rows bound in ``bind``) to
        ``target`` or, for a nested block, to ``into``."""
        K, z = s.support.name, s.name
        for d in self.sites[z].dims:
            if d not in bind:
                raise self.fail(f"the nested block `{z}` has rows `{d}` its enclosing block does not", s)
        used = set(bind.values())
        k = self.fresh(K, used)
        enums = {**enums, z: Leaf(k, (), K, True, True, loop=k)}
        lets = dict(lets)
        terms, nested = self._body(s, lets)
        t = self.translator(enums, lets)
        for b in terms:
            if isinstance(b, SampleStep):
                raise self.fail(f"`{b.name}` is sampled inside the marginalize block `{z}`", b)
            if isinstance(b, ObserveStep) and b.via is not None:
                raise self.fail(f"observe `{b.name}` has via= outside a grouped block", b)
        lw, ll = f"lw_{z}", f"ll_{z}"
        inner_bind = {**bind, z: k}
        prior = self._located(lambda: self._prior(s, t, {**bind, K: k}), s)
        body = [f"{lw}[{k}] = {prior};"]
        first = True
        for b in terms:
            term = self._located(lambda b=b: self._lpdf(b, t, inner_bind), b)
            body.append(f"{ll}[{k}] {'=' if first else '+='} {term};")
            first = False
        for n in nested:
            if n.over is not None:
                raise self.fail(f"the grouped block `{n.name}` is nested in `{z}`", n)
            if first:
                body.append(f"{ll}[{k}] = 0;")
                first = False
            body += ["{"] + ["  " + line for line in self._per_row(n, inner_bind, enums, lets, f"{ll}[{k}]")] + ["}"]
        if first:
            body.append(f"{ll}[{k}] = 0;")
        total = f"{_REDUCE[s.reduction]}(log_softmax({lw}) + {ll})"
        return [f"vector[{K}] {lw};", f"vector[{K}] {ll};", f"for ({k} in 1:{K}) {{"] + ["  " + b for b in body] + [
            "}", f"{into} += {total};" if into else f"target += {total};"]

    def _grouped(self, s: MarginalizeStep) -> list[str]:
        """A block with one latent per group of ``over`` (per pair of
        ``over=G * H``): each row's terms are added into its group's cell
        of ``ll``, then one log-sum-exp per group."""
        K, z = s.support.name, s.name
        groups = [f.name for f in s.over.factors]
        used: set[str] = set()
        gv = {G: self.fresh(G, used) for G in groups}
        k = self.fresh(K, used)
        enums = {z: Leaf(k, (), K, True, True, loop=k)}
        lets: dict[str, sympy.Basic] = {}
        terms, nested = self._body(s, lets)
        t = self.translator(enums, lets)
        if nested:
            raise self.fail(f"the block `{nested[0].name}` is nested in the grouped block `{z}`", nested[0])
        lw, ll = f"lw_{z}", f"ll_{z}"
        prior = self._located(lambda: self._prior(s, t, {**gv, K: k}), s)
        cell, sizes = ", ".join(gv.values()), ", ".join(groups)
        lines = [
            f"// marginalize {z} : {K}, one latent per group of {' * '.join(groups)}: each row's terms",
            f"// are summed into its group (ll_{z}[group, k]) before the log-sum-exp",
            "{",
            f"  array[{sizes}] vector[{K}] {lw};",
            f"  array[{sizes}] vector[{K}] {ll} = rep_array(rep_vector(0, {K}), {sizes});",
        ]
        lines += ["  " + line for line in self._loops(
            groups, lambda bind: [f"for ({k} in 1:{K}) {{", f"  {lw}[{cell}, {k}] = {prior};", "}"], s, names=gv)]
        for b in terms:
            if isinstance(b, SampleStep):
                raise self.fail(f"`{b.name}` is sampled inside the marginalize block `{z}`", b)
            dims = list(self.sites[b.name].dims) if isinstance(b, ObserveStep) else [
                d for d in t.dims(b.expr.sympy) if d != z]
            via = getattr(b, "via", None)
            if via is None and not set(dims) <= set(groups):
                raise self.fail(f"`{getattr(b, 'name', 'factor')}` in the grouped block `{z}` is not on "
                                f"`{' * '.join(groups)}`", b)
            def add(bind, b=b, via=via):
                bind = {**bind, z: k}
                if via is not None:
                    bind.update(self._via(via, groups, bind))
                term = self._located(lambda: self._lpdf(b, t, bind), b)
                at = ", ".join(bind[G] for G in groups)
                return [f"for ({k} in 1:{K}) {{", f"  {ll}[{at}, {k}] += {term};", "}"]
            loop_dims = dims if via is not None else groups + [d for d in dims if d not in groups]
            names = gv if via is None else {}
            taken = {k} | (set(gv.values()) if via is not None else set())
            inner = self._loops(loop_dims, add, b, names=names, reserved=taken)
            lines += ["  " + line for line in inner]
        lines += ["  " + line for line in self._loops(
            groups, lambda bind: [f"target += {_REDUCE[s.reduction]}(log_softmax({lw}[{cell}]) + {ll}[{cell}]);"],
            s, names=gv)]
        return lines + ["}"]

    def _via(self, via: str | tuple[str, ...], groups: list[str], bind: Mapping[str, str]) -> dict[str, str]:
        """The Stan index of each group set at a row: read from one map per
        factor, or decoded from a map into the product (``g * |H| + h``,
        row-major, 1-based in Stan)."""
        def read(m: str) -> str:
            return f"{m}[{', '.join(bind[d] for d in self.leaves[m].dims)}]"
        if isinstance(via, tuple):
            return {G: read(m) for G, m in zip(groups, via)}
        code = read(via)
        if len(groups) == 1:
            return {groups[0]: code}
        out = {}
        for j, G in enumerate(groups):
            after = groups[j + 1:]
            q = f"({code} - 1)"
            if after:
                q += f" %/% {after[0]}" if len(after) == 1 else f" %/% ({' * '.join(after)})"
            if j:
                q += f" % {G}"
            out[G] = f"{q} + 1"
        return out

    def _located(self, build, step: Step) -> str:
        try:
            return build()
        except NotVectorizable as err:
            raise self.fail(f"`{err}` cannot be written in Stan here", step) from None
        except UnsupportedError as err:
            if err.message.startswith("cannot emit"):
                raise
            raise self.fail(err.message, step) from None



# ---------------------------------------------- the rule of each step kind


def _untranslated(e: _Emitter, s: Step) -> UnsupportedError:
    return e.fail(f"the step `{getattr(s, 'name', type(s).__name__)}` ({type(s).__name__}) has no Stan translation", s)


class _Admit(StepVisitor):
    """What Stan can say, per kind of step (``depth``: how many blocks
    enclose it); gathers the sizes of blocks' sets."""

    def __init__(self, emitter: _Emitter) -> None:
        self.e = emitter

    def visit_sample(self, s: SampleStep | ObserveStep, depth: int) -> None:
        e = self.e
        if e.sites[s.name].kind == "index":
            return
        fam = s.family
        if fam.spec.improper and depth:
            raise e.fail(f"`{s.name}` has the improper family {fam.name} inside a marginalize block", s)
        base = truncated_base(fam)
        parts = components(fam) if fam.name == "Mixture" else [fam]
        for part in parts:
            if part is not fam and part.name == "PointMass":
                continue  # an atom of a count mixture: a term of its own (_mixture)
            if stan_name(part) not in STAN_FAMILIES and not part.spec.improper:
                label = part.name if base is None else f"{fam.name} of {base.name}"
                where = f"a component of the Mixture of `{s.name}`" if part is not fam else f"`{s.name}`"
                raise e.fail(f"{where} has the family {label}, which Stan emission does not translate", s,
                             hint=f"families it translates: {', '.join(STAN_FAMILIES)}, and Mixture of them")
        if fam.name in ("Multinomial", "DirichletMultinomial"):
            n = fam.args["total_count"].sympy
            if not (n.is_Number or (isinstance(n, sympy.Symbol) and (
                    n.name in e.p.constants or getattr(e.sites.get(n.name), "kind", None) in ("data", "observed")))):
                raise e.fail(
                    f"the total count of `{s.name}` is `{n}`; Stan's {stan_family(fam).stan} takes its count from the "
                    "data (the sum of the counts), so quivers emits it for a number or a data name", s,
                    hint="give the total count as a number or a data name")
        if isinstance(s, SampleStep) and s.name in getattr(e.p, "summed", ()) and s.name not in e.given:
            raise e.fail(
                f"`{s.name}` is summed out by quivers' plan (marginalize=auto) jointly with "
                f"{sorted(set(e.p.summed) - {s.name}) or 'nothing else'}, not as a marginalize block; Stan emission "
                "writes marginalize blocks", s,
                hint="write the sum as a `marginalize` block (a latent per row or per group of an index map)",
            )
        if isinstance(s, SampleStep) and s.name not in e.given and fam.discrete:
            raise e.fail(
                f"`{s.name}` is a discrete latent ({fam.name}); Stan has no discrete parameters", s,
                hint="marginalize it, or supply it as data with `given`",
            )
        if isinstance(s, SampleStep) and depth and s.name not in e.given:
            raise e.fail(f"`{s.name}` is sampled inside a marginalize block", s)

    visit_observe = visit_sample

    def visit_marginalize(self, s: MarginalizeStep, depth: int) -> None:
        e = self.e
        if s.name in e.given:
            raise e.fail(f"the marginalized latent `{s.name}` is given as data", s)
        e.sizes.setdefault(s.support.name, s.support.size)
        for f in s.over.factors if s.over is not None else ():
            e.sizes.setdefault(f.name, f.size)

    def visit_let(self, s: Step, depth: int) -> None:
        """Lets, factors, returns, index maps and data: any expression's
        translation is checked where it is emitted."""

    visit_factor = visit_return = visit_indexmap = visit_data = visit_let

    def visit_markov(self, s: Step, depth: int) -> None:
        e = self.e
        if s.name in e.given:
            raise e.fail(f"the path `{s.name}` is given as data", s)
        e.sizes.setdefault(s.support.name, s.support.size)

    def visit_input(self, s: Step, depth: int) -> None:
        raise _untranslated(self.e, s)


class _Statements(StepVisitor):
    """The model block's statements of a top-level step."""

    def __init__(self, emitter: _Emitter) -> None:
        self.e = emitter

    def visit_sample(self, s: SampleStep | ObserveStep) -> list[str]:
        if self.e.sites[s.name].kind == "index" or s.family.spec.improper:
            return []  # Stan's implicit flat prior: the declaration's bounds say it all
        return self.e._sampling(s)

    visit_observe = visit_sample

    def visit_factor(self, s: FactorStep) -> list[str]:
        return self.e._factor(s)

    def visit_marginalize(self, s: MarginalizeStep) -> list[str]:
        return self.e._marginalize(s)

    def visit_let(self, s: Step) -> list[str]:
        """Lets go to the transformed blocks; data and maps to the data block."""
        return []

    visit_return = visit_indexmap = visit_data = visit_let

    def visit_markov(self, s: Step) -> list[str]:
        return forward(self.e, s, _REDUCE[s.reduction])

    def visit_input(self, s: Step) -> list[str]:
        raise _untranslated(self.e, s)  # _Admit rejects it first


class _BodyPart(StepVisitor):
    """Sorts the steps of a block's body: its lets into ``lets`` (inlined
    where they are read), its scored steps into ``terms``, its nested
    blocks into ``nested``."""

    def __init__(self, emitter: _Emitter, lets: dict, terms: list, nested: list) -> None:
        self.e, self.lets, self.terms, self.nested = emitter, lets, terms, nested

    def visit_let(self, s: LetStep) -> None:
        self.lets[s.name] = s.expr.sympy

    def visit_observe(self, s: Step) -> None:
        self.terms.append(s)

    visit_factor = visit_sample = visit_observe

    def visit_marginalize(self, s: MarginalizeStep) -> None:
        self.nested.append(s)

    def visit_markov(self, s: Step) -> None:
        raise self.e.fail(f"`{type(s).__name__}` inside a marginalize block has no Stan translation", s)

    visit_return = visit_indexmap = visit_data = visit_input = visit_markov


def _set(axis: str) -> str:
    """The finite set of a named axis: ``K'``, the second axis of the
    square plate ``K * K``, has the size of ``K``."""
    return axis.rstrip("'")


def _idx(dims: list[str], bind: Mapping[str, str]) -> str:
    return f"[{', '.join(bind[d] for d in dims)}]" if dims else ""


def _atomic(code: str) -> bool:
    """Whether ``code`` needs no parentheses as an operand: a name or a
    number, or a name indexed once (``phi[k, :]``), transposed or not."""
    return code.replace("_", "").replace(".", "").isalnum() or re.fullmatch(r"[A-Za-z_]\w*\[[^\[\]]*\]'?", code) is not None
