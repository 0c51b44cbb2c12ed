"""Programs made from a set, a function or another program.

:func:`identity` and :func:`lift` are the ``Pure`` programs of a finite set
and of a :class:`~quivers.categories.FinFunction`; :func:`rename` gives a
program fresh names, so that it composes with itself.

Laws
----
- ``identity(A) >> p`` and ``p >> identity(B)`` have the kernel of ``p``
  (``p : A -> B``).
- ``lift(f) >> lift(g)`` has the kernel of ``lift(g . f)``.
- ``rename(p, m)`` has the kernel of ``p``.
"""

from __future__ import annotations

from collections.abc import Mapping

from quivers.categories import FinFunction, FinSet
from quivers.errors import QuiversTypeError, UnknownNameError
from quivers.programs import compose as C
from quivers.programs.expr import apply, var
from quivers.programs.program import Program
from quivers.programs.steps import ret

__all__ = ["identity", "lift", "rename"]


def identity(obj: FinSet, *, name: str | None = None) -> Program:
    """The ``Pure`` program ``obj -> obj`` that returns its input.

    Examples
    --------
    >>> from quivers.categories import FinSet
    >>> i = identity(FinSet("A", 3))
    >>> import torch
    >>> i.name, sorted(e.name for e in i.effects), int(i.sample(torch.tensor(2))["_return"])
    ('identity(A)', ['Pure'], 2)
    """
    return Program.id(obj, name=name)


def lift(f: FinFunction, *, name: str | None = None) -> Program:
    """The ``Pure`` program ``f.dom -> f.cod`` that returns ``f`` of its
    input: a deterministic map as a program.

    Examples
    --------
    >>> from quivers.categories import FinSet, FinFunction
    >>> import torch
    >>> g = lift(FinFunction(FinSet("A", 3), FinSet("B", 2), [1, 1, 0]))
    >>> g.name, int(g.sample(torch.tensor(2))["_return"])
    ('lift(A -> B)', 0)
    """
    if not isinstance(f, FinFunction):
        raise QuiversTypeError(f"lift takes a FinFunction, got `{f!r}`")
    x = C._input_name()
    return Program(name or f"lift({f.dom.name} -> {f.cod.name})", f.dom, f.cod, [ret(apply(f, var(x)))], input=x)


def rename(program: Program, names: Mapping[str, str] | str, *, name: str | None = None) -> Program:
    """``program`` with its sites (and input) renamed: ``names`` maps old
    names to new ones, or is a prefix put before every name. Use it to
    compose a program with itself, ``p >> rename(p, "second_")``.

    Examples
    --------
    >>> from quivers.categories import FinSet
    >>> from quivers.distributions import Bernoulli
    >>> from quivers.programs import ret, sample
    >>> A = FinSet("A", 2)
    >>> p = Program("p", A, A, [sample("u", None, Bernoulli(0.5)), ret("u")], input="a")
    >>> q = rename(p, "q_")
    >>> q.input, sorted(q.sites), (p >> q).name
    ('q_a', ['q_a', 'q_u'], 'p >> p')
    """
    C._check_program(program, "first", "rename")
    defined = C._defined(program)
    mapping = {n: names + n for n in defined} if isinstance(names, str) else dict(names)
    unknown = sorted(set(mapping) - defined)
    if unknown:
        raise UnknownNameError(
            f"cannot rename `{unknown[0]}`: it is no site of `{program.name}`", name=unknown[0], candidates=defined
        )
    out = Program(
        name or program.name, program.dom, program.cod, [s.rename(mapping) for s in program.steps], program.effects,
        span=program.span, source=program.source,
    )
    if hasattr(program, "_composite_op"):
        out._composite_op = program._composite_op
    return out
