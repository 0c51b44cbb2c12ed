"""Programs are morphisms: ``>>``, ``@``, identities and lifted functions.

A :class:`~quivers.programs.Program` ``p : A -> B`` with an input binding
(``Program(..., input="a")``) takes one element ``a`` of ``A`` and returns
one element of ``B``: it is a stochastic map, and programs compose like the
arrows of :mod:`quivers.categories`.

- ``p >> q`` (:func:`then`, Kleisli composition) runs ``p``, binds ``q``'s
  input to ``p``'s return value and runs ``q``; its value is ``q``'s.
- ``p @ q`` (:func:`tensor`) runs ``p`` and ``q`` side by side on
  ``A * C -> B * D``: the pair ``(a, c)`` is the row-major element
  ``a * |C| + c`` of ``A * C``, split by the projections and re-paired on
  return.
- :func:`identity` and :func:`lift` (of a
  :class:`~quivers.categories.FinFunction`) are ``Pure`` programs.

A composite is an ordinary :class:`Program` built from the steps of its
parts, so everything that runs a program (``log_joint``, ``sample``, SVI,
MCMC) runs a composite unchanged. Its site names are those of its parts,
which must therefore be distinct (except that ``q(b)`` after a ``p`` that
returns its own site ``b`` reads that site): a name defined in both parts is a
:class:`~quivers.errors.CompositionError` naming both programs (rename one;
composites do not namespace, so that observations keep their names). Its
effects are the union of its parts' (``Pure >> Pure`` is ``Pure``; a
``Score`` anywhere makes it ``Score``); declared ``effects=`` must cover
that union.

Laws
----
Writing ``p ~ q`` when ``p`` and ``q`` have the same exact kernel
(:func:`quivers.programs.kernels.program_kernel`, in every semiring):

- ``(p >> q) >> r ~ p >> (q >> r)`` and ``(p @ q) @ r ~ p @ (q @ r)``;
- ``identity(A) >> p ~ p ~ p >> identity(B)``;
- interchange: ``(p @ q) >> (r @ s) ~ (p >> r) @ (q >> s)``;
- ``kernel(p >> q) == kernel(p) >> kernel(q)`` and
  ``kernel(p @ q) == kernel(p) @ kernel(q)`` (the core's composition and
  tensor of morphisms), ``kernel(lift(f)) == f.as_morphism(S)``.

Examples
--------
>>> import torch
>>> from quivers.categories import FinSet
>>> from quivers.distributions import Categorical
>>> from quivers.programs import Program, const, identity, ret, sample, var
>>> A, B = FinSet("A", 2), FinSet("B", 3)
>>> p = Program("p", A, B, [sample("b", None, Categorical(const(torch.ones(2, 3), A * B)[var("a")])),
...                         ret("b")], input="a")
>>> h = p >> identity(B)
>>> h.name, h.dom, h.cod, sorted(e.name for e in h.effects)
('p >> identity(B)', FinSet('A', 2), FinSet('B', 3), ['Sample'])
>>> identity(A) >> p >> p
Traceback (most recent call last):
...
quivers.errors.CompositionError: cannot compose `identity(A) >> p : A -> B` with `p : A -> B`: the codomain `B` of `identity(A) >> p` is not the domain `A` of `p`
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import TYPE_CHECKING

import torch

from quivers.categories import Arrow, FinFunction, FinSet
from quivers.errors import CompositionError, EffectError, QuiversError, QuiversTypeError
from quivers.programs.effects import Effect
from quivers.programs.expr import apply, pair, var
from quivers.programs.steps import InputStep, ReturnStep, Step, let, ret

if TYPE_CHECKING:  # a composite is built as type(p), so this module never imports the class
    from quivers.programs.program import Program

__all__ = ["then", "tensor"]

_fresh = itertools.count()


def _input_name() -> str:
    # A single leading underscore: valid for a step, unlikely in user code.
    return f"_x{next(_fresh)}"


def _signature(p: Program) -> str:
    return f"`{p.name} : {p.dom.name} -> {p.cod.name}`"


def _check_program(p: object, role: str, verb: str) -> Program:
    if not (isinstance(p, Arrow) and hasattr(p, "steps")):  # a Program: this module builds, never imports, it
        raise QuiversTypeError(f"cannot {verb} a program with {type(p).__name__} `{p!r}` ({role} operand)")
    return p


def _operand(p: Program, op: str, right: bool) -> str:
    """``p``'s name, bracketed where precedence needs it (``@`` binds
    tighter than ``>>``; both associate to the left)."""
    inner = getattr(p, "_composite_op", None)
    if inner is None:
        return p.name
    if op == "then":
        needs = right and inner == "then"
    else:
        needs = inner == "then" or (right and inner == "tensor")
    return f"({p.name})" if needs else p.name


def _body(p: Program) -> list[Step]:
    """``p``'s steps without its input binding and its return."""
    return [s for s in p.steps if not isinstance(s, (InputStep, ReturnStep))]


def _defined(p: Program) -> set[str]:
    return {t.defines for s in p.steps for t in s.walk() if t.defines is not None}


def _check_disjoint(p: Program, q: Program, verb: str, extra: Iterable[str] = (), shared: str | None = None) -> None:
    clash = sorted((_defined(p) & _defined(q)) - {shared})
    if clash:
        raise CompositionError(
            f"cannot {verb} {_signature(p)} with {_signature(q)}: both define "
            + ", ".join(f"`{n}`" for n in clash),
            hint=f"rename the sites of one of them, e.g. `rename({q.name}, prefix)`; a composite keeps "
            "the names of its parts",
        )
    for name in extra:
        if name in _defined(p) | _defined(q):
            raise CompositionError(f"cannot {verb} `{p.name}` with `{q.name}`: `{name}` is taken")


def _effects(p: Program, q: Program, declared, name: str) -> frozenset[Effect]:
    union = (p.effects | q.effects) - {Effect.Pure} or frozenset({Effect.Pure})
    if declared is None:
        return union
    declared = Effect.parse([declared] if isinstance(declared, (str, Effect)) else declared)
    missing = union - declared - {Effect.Pure}
    if missing:
        owners = [
            f"`{part.name}` has {', '.join(sorted(e.name for e in part.effects & missing))}"
            for part in (p, q)
            if part.effects & missing
        ]
        raise EffectError(
            f"`{name}` declares effects [{', '.join(sorted(e.name for e in declared))}], "
            f"but {' and '.join(owners)}",
            hint=f"add {', '.join(sorted(e.name for e in missing))} to its effects",
        )
    return declared


def _build(kind: type, name: str, dom: FinSet, cod: FinSet, steps: list[Step], effects, parts: str, op: str) -> Program:
    try:
        out = kind(name, dom, cod, steps, effects)
    except QuiversError as err:
        raise err.relocated(prefix=f"in the composite {parts}: ") from None
    out._composite_op = op
    return out


def _check_element(h: Program, name: str, p: Program, q: Program) -> None:
    """The value bound to ``q``'s input must be one element of its domain."""
    site = h.sites[name]
    if site.dims:
        raise CompositionError(
            f"cannot compose {_signature(p)} with {_signature(q)}: `{p.name}` returns a value on the "
            f"axes {list(site.dims)}, not one element of `{q.dom.name}` for the input `{name}` of `{q.name}`",
            hint=f"return one element of `{p.cod.name}`",
        )


def then(p: Program, q: Program, *, name: str | None = None, effects=None) -> Program:
    """``p >> q``: run ``p``, bind ``q``'s input to ``p``'s return value,
    run ``q``; the composite returns what ``q`` returns.

    Parameters
    ----------
    p, q
        Programs ``A -> B`` and ``B -> C``.
    name
        The composite's name; ``"p >> q"`` by default.
    effects
        Declared effects; they must cover the union of ``p``'s and ``q``'s.

    Raises
    ------
    CompositionError
        When ``p``'s codomain is not ``q``'s domain, when ``q`` reads its
        input but ``p`` returns nothing (or a value on a plate), or when
        both define a name; the message names both programs.
    EffectError
        When ``effects`` leaves out an effect of ``p`` or ``q``.

    Examples
    --------
    >>> from quivers.categories import FinSet, FinFunction
    >>> from quivers.programs import lift
    >>> A = FinSet("A", 3)
    >>> h = lift(FinFunction(A, A, [1, 2, 0])) >> lift(FinFunction(A, A, [1, 2, 0]))
    >>> h.cod, [s.name for s in h.latent_sites()]
    (FinSet('A', 3), [])
    """
    _check_program(p, "left", "compose")
    _check_program(q, "right", "compose")
    if p.cod != q.dom:
        raise CompositionError(
            f"cannot compose {_signature(p)} with {_signature(q)}: the codomain `{p.cod.name}` of `{p.name}` "
            f"is not the domain `{q.dom.name}` of `{q.name}`"
        )
    # q(b) after a p that returns its site b reads that site itself.
    passes = q.input is not None and p.returns is not None and p.returns.sympy == var(q.input).sympy
    _check_disjoint(p, q, "compose", shared=q.input if passes else None)
    name = name or f"{_operand(p, 'then', False)} >> {_operand(q, 'then', True)}"
    steps = [s for s in p.steps if not isinstance(s, ReturnStep)]
    if q.input is not None and not passes:
        if p.returns is None:
            raise CompositionError(
                f"cannot compose {_signature(p)} with {_signature(q)}: `{q.name}` reads its input "
                f"`{q.input}`, but `{p.name}` returns nothing",
                hint=f"end `{p.name}` with a return of one element of `{p.cod.name}`",
            )
        # apply(id) types the value as an element of q.dom (checked when run).
        steps.append(let(q.input, apply(FinFunction.id(q.dom), p.returns)))
    steps += _body(q)
    if q.returns is not None:
        steps.append(ret(q.returns))
    declared = _effects(p, q, effects, name)
    h = _build(type(p), name, p.dom, q.cod, steps, declared, f"`{p.name}` >> `{q.name}`", "then")
    if q.input is not None:
        _check_element(h, q.input, p, q)
    return h


def tensor(p: Program, q: Program, *, name: str | None = None, effects=None) -> Program:
    """``p @ q``: ``p : A -> B`` and ``q : C -> D`` side by side, a program
    ``A * C -> B * D``.

    Its input is one element of ``A * C`` (row-major: ``(a, c)`` is
    ``a * |C| + c``), split by the projections into ``p``'s and ``q``'s
    inputs; its value pairs their values in ``B * D``. When neither part
    takes an input, neither does the composite; when neither returns, it
    returns nothing.

    Raises
    ------
    CompositionError
        When exactly one of ``p`` and ``q`` returns a value, or both define
        a name; the message names both programs.

    Examples
    --------
    >>> from quivers.categories import FinSet, FinFunction
    >>> from quivers.programs import identity, lift
    >>> A, C = FinSet("A", 2), FinSet("C", 3)
    >>> h = identity(A) @ lift(FinFunction(C, C, [2, 1, 0]))
    >>> h.name, h.dom, h.cod.size
    ('identity(A) @ lift(C -> C)', FinSet('A', 2) * FinSet('C', 3), 6)
    >>> int(h.sample(torch.tensor(4))["_return"])  # (1, 1) goes to (1, 1)
    4
    """
    _check_program(p, "left", "tensor")
    _check_program(q, "right", "tensor")
    if (p.returns is None) != (q.returns is None):
        missing, other = (p, q) if p.returns is None else (q, p)
        raise CompositionError(
            f"cannot tensor {_signature(p)} with {_signature(q)}: `{missing.name}` returns nothing, "
            f"so there is no pair of values in `{p.cod.name}` and `{q.cod.name}`",
            hint=f"give `{missing.name}` a return, or drop the return of `{other.name}`",
        )
    dom, cod = p.dom * q.dom, p.cod * q.cod
    _check_disjoint(p, q, "tensor")
    name = name or f"{_operand(p, 'tensor', False)} @ {_operand(q, 'tensor', True)}"
    steps: list[Step] = []
    if p.input is not None or q.input is not None:
        w = _input_name()
        _check_disjoint(p, q, "tensor", [w])
        steps.append(InputStep(w, dom))
        index = torch.arange(dom.size)
        if p.input is not None:
            first = FinFunction(dom, p.dom, index // max(q.dom.size, 1))
            steps.append(let(p.input, apply(first, var(w))))
        if q.input is not None:
            second = FinFunction(dom, q.dom, index % max(q.dom.size, 1))
            steps.append(let(q.input, apply(second, var(w))))
    steps += _body(p) + _body(q)
    if p.returns is not None:
        steps.append(ret(pair(p.returns, q.returns, p.cod, q.cod)))
    declared = _effects(p, q, effects, name)
    return _build(type(p), name, dom, cod, steps, declared, f"`{p.name}` @ `{q.name}`", "tensor")
