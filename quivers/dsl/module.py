"""Loaded QVR modules: the objects and programs of a source, by name.

Examples
--------
>>> m = loads('''
... object K : FinSet 2
... program prior : K -> K
...     sample mu : K <- Normal(0.0, 1.0)
...     return mu
... export prior
... ''')
>>> m.K
FinSet('K', 2)
>>> m.morphism is m.prior is m["prior"] is m.programs["prior"]
True
>>> m.priors
Traceback (most recent call last):
...
AttributeError: QVR module has no object or program `priors`; did you mean `prior`?
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from os import PathLike
from pathlib import Path

import torch

from quivers.categories import FinSet, Semiring
from quivers.dsl import ast
from quivers.dsl.axes import module_algebra
from quivers.deduction import Deduction
from quivers.dsl.compiler import compile_module
from quivers.dsl.computations import compile_computations
from quivers.dsl.deductions import compile_deductions
from quivers.dsl.morphisms import compile_morphisms
from quivers.dsl.parser import parse
from quivers.errors import DataError, QuiversError, UnknownNameError, did_you_mean
from quivers.nn import MorphismModule
from quivers.programs import Program
from quivers.programs.computations import Computation, ComputationRun

__all__ = ["QVRModule", "loads", "load"]


class QVRModule:
    """The objects and programs of one QVR source.

    Attributes
    ----------
    ast
        The parsed module.
    source
        The QVR text it was read from.
    objects
        Finite sets by name, in declaration order.
    programs
        Programs (torch modules) by name, in declaration order.
    deductions
        :class:`~quivers.deduction.Deduction` s (torch modules) by name.
    morphisms
        Declared and defined morphisms (:mod:`quivers.nn` modules) by name.
    computations
        Computations (``define f(x : Real) : Real !{} = ...``) by name, as
        :class:`~quivers.programs.computations.Computation` s; :meth:`run_computation` runs one.
    export
        The name of the first exported program (the morphism), or None.
    exports
        The names of every exported program, in order; each is also reachable
        by name (``m["name"]``, ``m.name``).

    Objects and programs are also attributes (``m.K``, ``m.gmm``) and items
    (``m["K"]``).

    Examples
    --------
    >>> m = loads("object K : FinSet 2\\nprogram p : K -> K\\n    sample x : K <- Normal(0.0, 1.0)\\n")
    >>> m
    <QVRModule objects=[K] programs=[p] export=None>
    >>> list(m), "p" in m, m.morphism is m.p
    (['K', 'p'], True, True)
    """

    def __init__(
        self,
        tree: ast.Module,
        source: str,
        objects: dict[str, FinSet],
        programs: dict[str, Program],
        export: str | None,
        deductions: dict[str, Deduction] | None = None,
        exports: tuple[str, ...] | None = None,
        morphisms: dict[str, MorphismModule] | None = None,
        computations: dict[str, Computation] | None = None,
    ) -> None:
        self.ast = tree
        self.source = source
        self.objects = objects
        self.programs = programs
        self.export = export
        self.deductions = deductions or {}
        self.morphisms = morphisms or {}
        self.computations = computations or {}
        self.exports = exports if exports is not None else ((export,) if export is not None else ())

    def run_computation(self, name: str, *args: Any) -> ComputationRun:
        """Run the computation ``name`` on ``args`` (numbers, lists or
        tensors): its value and the score its body added.

        Examples
        --------
        >>> m = loads("define half(x : Tensor[Real]([2])) : Tensor[Real]([2]) !{} =\\n    return map(x, v -> v / 2)\\n")
        >>> m.run_computation("half", [1.0, 3.0]).value.tolist()
        [0.5, 1.5]
        """
        if name not in self.computations:
            raise UnknownNameError(
                f"this module has no computation `{name}`; computations: " + (", ".join(self.computations) or "none"),
                name=name, candidates=list(self.computations),
            )
        comp = self.computations[name]
        values = [a if isinstance(a, torch.Tensor) else torch.as_tensor(
            a, dtype=torch.float64 if t.element == "Real" else None) for a, (_, t) in zip(args, comp.params)]
        return comp.run(*values, *args[len(values):])

    @property
    def morphism(self) -> Program | MorphismModule | Deduction:
        """The exported program, morphism or deduction (the only program,
        when there is one and no export)."""
        if self.export is not None:
            return {**self.deductions, **self.morphisms, **self.programs}[self.export]
        if len(self.programs) == 1:
            return next(iter(self.programs.values()))
        raise QuiversError(
            "this module has no `export`, so it has no morphism; programs: "
            + (", ".join(self.programs) or "none"),
            hint="add `export <program>`",
        )

    @property
    def semiring(self) -> Semiring:
        """The module's algebra, as a semiring: the one its ``composition``
        declaration names (``LOG`` without one). Its marginalize blocks
        reduce in it, and :func:`~quivers.programs.program_kernel` of its
        programs is meant to be taken in it.

        Examples
        --------
        >>> loads("composition max_plus [level=algebra]").semiring
        MAX_PLUS
        """
        return module_algebra(self.ast).semiring

    def kernel(self, name: str | None = None, observations: Any = None, latents: Any = None) -> Any:
        """The exact kernel of a discrete program of this module (the
        exported one by default) in the module's semiring: its support in
        ``boolean`` (reachability), the weight of the most probable
        explanation in ``max_plus``, the probabilities in ``probability``.
        See :func:`~quivers.programs.program_kernel`.

        Examples
        --------
        >>> m = loads('''
        ... composition boolean [level=algebra]
        ... object A : FinSet 2
        ... program step(a) : A -> A
        ...     sample b <- Bernoulli(0.5 * a)
        ...     return b
        ... export step
        ... ''')
        >>> m.kernel().tensor
        tensor([[ True, False],
                [ True,  True]])
        """
        from quivers.programs import program_kernel

        program = self.morphism if name is None else self[name]
        return program_kernel(program, self.semiring, observations, latents)

    @property
    def data(self) -> dict[str, dict[str, Any]]:
        """Each program's data names and their roles (a
        :class:`~quivers.dsl.checker.DataRole`: declared with ``data``, or
        inferred from the use of a name the program never defines).

        Examples
        --------
        >>> m = loads("object S : FinSet 2\\nprogram p : S -> S\\n    observe y : S <- Normal(0.0, sigma_j)\\n")
        >>> m.data["p"]["sigma_j"].describe()
        'data sigma_j : S (real, one per element of S or one for all; inferred from its use on line 3)'
        """
        from quivers.dsl.checker import check

        return {p: dict(roles) for p, roles in check(self.ast, self.source).data.items()}

    def _names(self) -> dict[str, FinSet | Program | Deduction | MorphismModule]:
        return {**self.objects, **self.programs, **self.deductions, **self.morphisms}

    def __getitem__(self, name: str) -> FinSet | Program:
        names = self._names()
        family = next((d for d in self.ast.items if isinstance(d, ast.ProgramDecl) and d.name == name), None)
        if name not in names and family is not None:
            raise QuiversError(
                f"`{name}` has set parameters: it is a family that programs use "
                f"(`sample v <- {name}(...)`), not a program of its own"
            )
        if name not in names:
            raise UnknownNameError(
                f"QVR module has no object or program `{name}`", name=name, candidates=names
            )
        return names[name]

    def __getattr__(self, name: str) -> FinSet | Program:
        if name.startswith("__") or name in {"ast", "source", "objects", "programs", "export", "exports", "data",
                                             "deductions", "morphisms", "semiring", "kernel"}:
            raise AttributeError(name)
        names = self._names()
        if name in names:
            return names[name]
        close = did_you_mean(name, names)
        hint = f"; did you mean `{close}`?" if close else ""
        raise AttributeError(f"QVR module has no object or program `{name}`{hint}")

    def __contains__(self, name: object) -> bool:
        return name in self._names()

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(self._names()))

    def __repr__(self) -> str:
        objects = ", ".join(self.objects)
        programs = ", ".join(self.programs)
        morphisms = f" morphisms=[{', '.join(self.morphisms)}]" if self.morphisms else ""
        return f"<QVRModule objects=[{objects}] programs=[{programs}]{morphisms} export={self.export!r}>"


def loads(text: str) -> QVRModule:
    """Parse, check and compile QVR source.

    Parameters
    ----------
    text
        QVR source.

    Returns
    -------
    QVRModule
        Its objects and programs; ``.morphism`` is the exported program.

    Raises
    ------
    QuiversError
        A syntax error, a checking error, or an error the runtime raised
        while building a program, each located at its QVR line.

    Examples
    --------
    >>> m = loads("object K : FinSet 2\\nobject P : FinSet = K * K")
    >>> m.P.size, m.morphism
    Traceback (most recent call last):
    ...
    quivers.errors.QuiversError: this module has no `export`, so it has no morphism; programs: none; add `export <program>`
    """
    tree = parse(text)
    objects, programs = compile_module(tree, text)
    computations = compile_computations(tree, text)
    exports = tuple(d.name for d in tree.items if isinstance(d, ast.Export))
    deductions = compile_deductions(tree, text)
    return QVRModule(
        tree, text, objects, programs, exports[0] if exports else None, deductions, exports,
        compile_morphisms(tree, objects, text, deductions), computations,
    )


def load(path: str | PathLike[str]) -> QVRModule:
    """Read and :func:`loads` the QVR file at ``path``.

    Examples
    --------
    >>> import tempfile, os
    >>> with tempfile.TemporaryDirectory() as d:
    ...     f = os.path.join(d, "k.qvr")
    ...     _ = open(f, "w").write("object K : FinSet 3\\n")
    ...     load(f).K.size
    3
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as err:
        raise DataError(f"cannot read QVR file `{p}`: {err.strerror or err}") from None
    return loads(text)
