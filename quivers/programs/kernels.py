"""The exact kernel of a discrete program, in any of several semirings.

A program ``p : A -> B`` whose sampled latents are all discrete with finite
support denotes a morphism ``A -> B``: entry ``(a, b)`` is the semiring sum,
over every joint assignment ``u`` of its discrete latents that makes it
return ``b`` on input ``a``, of the weight of ``u`` (the product of the
probabilities of its draws and of its scores):

    kernel(p)[a, b] = sum_{u : ret(a, u) = b}  w(a, u)

:func:`program_kernel` computes it by enumeration, as one batch: every
joint assignment of the enumerated latents is a row of one tensor, every
input a row of another, and one call of the program's own ``log_joint``
scores them all (no Python loop over assignments). The log weights are
carried into the semiring by the map of its multiplicative monoid and
reduced with its sum:

=============  ===========  =================================================
semiring       weight       kernel
=============  ===========  =================================================
``LOG``        ``l``        the log-kernel (a :class:`Kernel` without Score)
``PROB``       ``exp l``    the kernel (a :class:`Kernel` without Score)
``BOOL``       ``l > -inf`` its support: which outputs are possible
``MAX_PLUS``   ``l``        the log weight of the most probable explanation
``MAX_TIMES``  ``exp l``    its probability
``MIN_PLUS``   ``-l``       its cost (negative log weight)
=============  ===========  =================================================

A ``marginalize`` block sums its latent out in ``LOG``; that agrees with the
semiring's sum exactly when the weight map is a semiring homomorphism from
``LOG`` (``LOG``, ``PROB``, ``BOOL``: see
:mod:`quivers.categories.base_change`). In the other semirings the
marginalized latents are enumerated too, each block then scoring its
latent's given value, so a ``MAX_PLUS`` kernel maximizes over every
discrete latent of the program.

Laws
----
- ``program_kernel(p >> q, S) == program_kernel(p, S) >> program_kernel(q, S)``
  and likewise for ``@`` (see :mod:`quivers.programs.compose`);
- ``program_kernel(p, S)`` agrees with brute-force enumeration of the
  latents (``tests/programs/test_compose.py``);
- for a program without Score effect, the ``LOG`` kernel's rows
  log-sum-exp to zero.

Examples
--------
>>> import torch
>>> from quivers.categories import BOOL, MAX_PLUS, FinSet
>>> from quivers.distributions import Bernoulli, Categorical
>>> from quivers.programs import Program, apply, const, ret, sample, var
>>> A, B = FinSet("A", 2), FinSet("B", 3)
>>> w = const(torch.tensor([[0.5, 0.5, 0.0], [0.0, 0.2, 0.8]]), A * B)
>>> p = Program("p", A, B, [sample("b", None, Categorical(w[var("a")])), ret("b")], input="a")
>>> program_kernel(p).tensor.exp()
tensor([[0.5000, 0.5000, 0.0000],
        [0.0000, 0.2000, 0.8000]])
>>> program_kernel(p, BOOL).tensor
tensor([[ True,  True, False],
        [False,  True,  True]])
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch.distributions import constraints

from quivers.categories import (
    BOOL,
    KERNEL_SEMIRINGS,
    LOG,
    MAX_PLUS,
    MAX_TIMES,
    MIN_PLUS,
    PROB,
    Arrow,
    Kernel,
    Morphism,
    Semiring,
)
from quivers.errors import DataError, QuiversTypeError
from quivers.programs.effects import Effect
from quivers.programs.runtime import RETURN
from quivers.programs.sites import Site

if TYPE_CHECKING:
    from quivers.programs.program import Program

__all__ = ["program_kernel", "KERNEL_WEIGHTS", "MAX_ASSIGNMENTS"]

MAX_ASSIGNMENTS = 1 << 20
"""The most joint assignments :func:`program_kernel` enumerates by default."""

KERNEL_WEIGHTS: dict[str, tuple[Callable[[torch.Tensor], torch.Tensor], bool]] = {
    LOG.name: (lambda t: t, True),
    PROB.name: (torch.exp, True),
    BOOL.name: (lambda t: t > -math.inf, True),
    MAX_PLUS.name: (lambda t: t, False),
    MAX_TIMES.name: (torch.exp, False),
    MIN_PLUS.name: (torch.neg, False),
}
"""For each semiring a program can be evaluated in: the map of log weights
into it, and whether that map is a semiring homomorphism from ``LOG`` (so
that ``marginalize`` blocks may sum out in ``LOG`` first)."""


def _num_values(program: Program, site: Site) -> int:
    if site.num_values is not None:
        return site.num_values
    if site.family is not None and site.family.discrete:
        try:
            support = site.support()
        except QuiversTypeError:
            support = None
        if support is constraints.boolean:
            return 2
        if isinstance(support, constraints.integer_interval):
            return int(support.upper_bound) - int(support.lower_bound) + 1
    raise QuiversTypeError(
        f"the discrete latent `{site.name}` of `{program.name}` ({site.family.name if site.family else site.kind}) "
        "has no finite support known at build time, so its kernel cannot enumerate it",
        hint="draw it from a Categorical on weights over a named set (const(w, A * B) or a site), or a Bernoulli",
    )


def _enumerated(program: Program, homomorphic: bool, given: set[str]) -> list[tuple[Site, int]]:
    out = []
    for site in program.sites.values():
        if site.name in given:
            continue
        if site.kind == "latent":
            if not site.discrete:
                fam = site.family.name if site.family is not None else "?"
                raise QuiversTypeError(
                    f"`{program.name}` samples the continuous latent `{site.name}` ({fam}); its exact kernel "
                    "sums over discrete latents only",
                    hint=f"give `{site.name}` a value in latents=, or draw it from a discrete family",
                )
            out.append((site, _num_values(program, site)))
        elif site.kind == "marginal" and not homomorphic:
            if type(site.step).__name__ != "MarginalizeStep":  # a chain: its own sum, not a plain block
                raise QuiversTypeError(
                    f"`{program.name}` sums `{site.name}` out with a `{type(site.step).__name__}`, which "
                    f"cannot be enumerated; evaluate it in LOG, PROB or BOOL",
                )
            out.append((site, _num_values(program, site)))
    return out


def _assignments(sites: list[tuple[Site, int]], limit: int, program: Program) -> tuple[int, dict[str, torch.Tensor]]:
    """Every joint assignment of ``sites``, one per row (mixed radix)."""
    digits = [(site, n, math.prod(site.shape)) for site, n in sites]
    total = math.prod(n**k for _, n, k in digits)
    if total > limit:
        listed = ", ".join(f"`{s.name}` ({n}^{k})" for s, n, k in digits)
        raise QuiversTypeError(
            f"the kernel of `{program.name}` would enumerate {total} joint assignments of {listed}, "
            f"more than max_assignments={limit}",
            hint="marginalize some of them, or raise max_assignments",
        )
    codes = torch.arange(total)
    out = {}
    for site, n, k in reversed(digits):
        columns = []
        for _ in range(k):
            columns.append(codes % n)
            codes = codes // n
        values = torch.stack(columns[::-1], -1) if columns else torch.zeros(total, 0, dtype=torch.long)
        values = values.reshape(total, *site.shape)
        if site.num_values is None:  # Bernoulli-like: 0./1. floats
            values = values.to(torch.get_default_dtype())
        out[site.name] = values
    return total, out


def program_kernel(
    program: Program,
    semiring: Semiring = LOG,
    observations: Mapping[str, Any] | None = None,
    latents: Mapping[str, Any] | None = None,
    *,
    max_assignments: int = MAX_ASSIGNMENTS,
) -> Morphism:
    """The exact kernel ``dom -> cod`` of a discrete program, in ``semiring``.

    Parameters
    ----------
    program
        A program whose value (its ``return``) is one element of its
        codomain and whose sampled latents not given are discrete with a
        finite support (a ``Categorical`` on weights over a named set, a
        ``Bernoulli``). A program without an input gives equal rows.
    semiring
        ``LOG`` (default), ``PROB``, ``BOOL``, ``MAX_PLUS``, ``MAX_TIMES``
        or ``MIN_PLUS`` (see the module docstring).
    observations, latents
        Values for observed sites and index maps, and for latents to
        condition on: they are scored as in
        :meth:`~quivers.programs.Program.log_joint`.
    max_assignments
        The most joint assignments to enumerate.

    Returns
    -------
    Morphism
        A ``(|dom|, |cod|)`` morphism over ``semiring``; a :class:`Kernel`
        in ``LOG`` and ``PROB`` when the program has no Score effect and
        nothing is conditioned on.

    Raises
    ------
    QuiversTypeError
        For a continuous latent, a latent without finite support, a
        program that returns nothing or a value on a plate, too many
        assignments, or a semiring without a weight map.
    DataError
        When the program returns a value outside its codomain.
    """
    if not (isinstance(program, Arrow) and hasattr(program, "steps")):  # Program's own module calls this one
        raise QuiversTypeError(f"program_kernel takes a Program, got {type(program).__name__}")
    if not isinstance(semiring, Semiring) or semiring.name not in KERNEL_WEIGHTS:
        raise QuiversTypeError(
            f"cannot evaluate a program in `{semiring!r}`; semirings: {', '.join(KERNEL_WEIGHTS)}"
        )
    if program.returns is None:
        raise QuiversTypeError(
            f"`{program.name}` returns nothing, so it has no kernel into `{program.cod.name}`",
            hint=f"end it with a return of one element of `{program.cod.name}`",
        )
    observations = dict(observations or {})
    latents = dict(latents or {})
    weight, homomorphic = KERNEL_WEIGHTS[semiring.name]
    total, values = _assignments(
        _enumerated(program, homomorphic, set(observations) | set(latents)), max_assignments, program
    )
    dom, cod = program.dom, program.cod
    rows = dom.size if program.input is not None else 1
    x = torch.arange(dom.size).reshape(dom.size, 1) if program.input is not None else None
    lead = (1, total) if x is not None else (total,)
    enumerated = {n: v.reshape(*lead, *v.shape[1:]) for n, v in values.items()}
    run = program._run(observations, {**latents, **enumerated}, x=x)
    value = run.env.get(RETURN)
    if value is None:
        raise QuiversTypeError(f"`{program.name}` computed no return value")
    if value.dims:
        raise QuiversTypeError(
            f"`{program.name}` returns a value on the axes {list(value.dims)}; its kernel needs one element "
            f"of `{cod.name}`"
        )
    shape = (rows, total)
    log_w = torch.broadcast_to(run.log_density, shape)
    out = value.tensor
    if out.dim() > 2:
        raise QuiversTypeError(
            f"`{program.name}` returns a value with batch shape {tuple(out.shape)}; give observations without batch axes"
        )
    out = torch.broadcast_to(out, shape)
    if torch.is_floating_point(out) and bool((out != torch.round(out)).any()):
        raise DataError(f"`{program.name}` returns {float(out[out != torch.round(out)][0])}, not an element of `{cod.name}`")
    out = out.long()
    bad = (out < 0) | (out >= cod.size)
    if bool(bad.any()):
        raise DataError(
            f"`{program.name}` returns {int(out[bad][0])}, outside `{cod.name}` (size {cod.size})"
        )
    w = weight(log_w)
    hits = out.unsqueeze(-1) == torch.arange(cod.size, device=out.device)
    zero = torch.tensor(semiring.zero, dtype=w.dtype, device=w.device)
    tensor = semiring.sum(torch.where(hits, w.unsqueeze(-1), zero), 1)
    if rows != dom.size:
        tensor = tensor.expand(dom.size, cod.size).clone()
    scored = Effect.Score in program.effects or any(
        program.sites[n].kind in ("latent", "marginal", "observed") for n in {**observations, **latents}
    )
    if semiring in KERNEL_SEMIRINGS and not scored:
        return Kernel(dom, cod, tensor, semiring)
    return Morphism(dom, cod, tensor, semiring)
