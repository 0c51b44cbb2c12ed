"""Parametric programs used as families, inlined into the program using them.

``program f(G : FinSet, scale : Real) : G -> 1`` declares a family of
programs. Another program uses it as it would a distribution family::

    sample by_subject <- f(Subject, 1.0)

and this pass replaces that step by ``f``'s body with ``G`` read as
``Subject`` and ``scale`` as ``1.0``, every name ``f`` defines renamed
``by_subject_<name>`` (so two uses never clash), and ``let by_subject = e``
for the expression ``e`` that ``f`` returns. Names ``f`` reads but never
defines stay as they are: data of the program that uses it.

Laws
----
- Inlining is syntax to syntax: the result is an ordinary module, and a
  module that uses no parametric program is returned unchanged.
- Two uses of one family define disjoint names.

Examples
--------
>>> from quivers.dsl.parser import parse
>>> from quivers.dsl.printer import dumps
>>> m = parse('''
... object S : FinSet 3
... program effects(G : FinSet, spread : Real) : G -> 1
...     sample z : G <- Normal(0.0, 1.0)
...     return spread * z
... program p : S -> S
...     sample theta <- effects(S, 0.5)
...     observe y : S <- Normal(theta, 1.0)
... ''')
>>> print(dumps(inline(m).items[2]))
program p : S -> S
    sample theta_z : S <- Normal(0.0, 1.0)
    let theta = 0.5 * theta_z
    observe y : S <- Normal(theta, 1.0)
"""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Any

from quivers.dsl import ast
from quivers.errors import QuiversTypeError, UnknownNameError

__all__ = ["inline", "templates"]

_DEFINING = (ast.Sample, ast.Observe, ast.Let, ast.Perform, ast.IndexMap, ast.Data, ast.Marginalize, ast.Markov)


def templates(module: ast.Module) -> dict[str, ast.ProgramDecl]:
    """The programs of ``module`` with typed parameters, by name.

    Examples
    --------
    >>> from quivers.dsl.parser import parse
    >>> list(templates(parse("program f(s : Real) : 1 -> 1\\n    return s\\n")))
    ['f']
    """
    return {d.name: d for d in module.items if isinstance(d, ast.ProgramDecl) and d.params}


def inline(module: ast.Module, source: str | None = None) -> ast.Module:
    """``module`` with every use of a parametric program as a family
    replaced by its body (see the module docstring).

    Raises
    ------
    QuiversTypeError
        A use with the wrong arguments, with an index set or options, of a
        program that returns nothing, or a family that uses itself.
    """
    found = templates(module)
    if not found:
        return module
    return _Inliner(found, source).module(module)


class _Inliner:
    def __init__(self, found: dict[str, ast.ProgramDecl], source: str | None) -> None:
        self.templates = found
        self.source = source

    def error(self, message: str, node: ast.Node, cls: type = QuiversTypeError, **kw: Any) -> Exception:
        return cls(message, span=node.span, source=self.source, **kw)

    def module(self, module: ast.Module) -> ast.Module:
        items = []
        for d in module.items:
            if isinstance(d, ast.ProgramDecl):
                d = replace(d, body=self.steps(d.body, (d.name,)))
            items.append(d)
        return replace(module, items=tuple(items))

    def steps(self, steps: tuple[ast.Step, ...], stack: tuple[str, ...]) -> tuple[ast.Step, ...]:
        out: list[ast.Step] = []
        for s in steps:
            if isinstance(s, ast.Sample) and s.family.name in self.templates:
                out.extend(self.instance(s, stack))
            elif isinstance(s, (ast.Marginalize, ast.Markov)):
                out.append(replace(s, body=self.steps(s.body, stack)))
            else:
                out.append(s)
        return tuple(out)

    def instance(self, s: ast.Sample, stack: tuple[str, ...]) -> list[ast.Step]:
        t = self.templates[s.family.name]
        if t.name in stack:
            raise self.error(f"program `{t.name}` uses itself as a family (through {' -> '.join(stack)})", s.family)
        if s.index_set is not None or s.options:
            raise self.error(
                f"`sample {s.name} <- {t.name}(...)` takes no index set or options: the program `{t.name}` "
                "sets the shape of its value",
                s,
            )
        body = self.steps(t.body, stack + (t.name,))
        returns = [r for r in body if isinstance(r, ast.Return)]
        if not returns:
            raise self.error(f"program `{t.name}` returns nothing, so `{s.name}` would have no value", s.family,
                             hint=f"end `{t.name}` with `return ...`")
        values, sets = self.bind(t, s.family)
        renamed = {n: f"{s.name}_{n}" for n in _defined(body)}
        sub = _Substitution(renamed, values, sets)
        steps = [sub.node(b) for b in body if not isinstance(b, ast.Return)]
        steps.append(ast.Let(s.name, sub.node(returns[0].value), span=s.span))
        return steps

    def bind(self, t: ast.ProgramDecl, call: ast.FamilyCall) -> tuple[dict[str, ast.Expr], dict[str, ast.SetExpr]]:
        """The arguments of ``call`` by parameter: values for ``Real``
        parameters, sets for ``FinSet`` ones."""
        names = [p.name for p in t.params]
        given: dict[str, ast.Expr] = {}
        if len(call.args) > len(names):
            raise self.error(f"`{t.name}` takes {len(names)} arguments ({', '.join(names)}), got {len(call.args)}", call)
        for p, a in zip(t.params, call.args):
            given[p.name] = a
        for k in call.kwargs:
            if k.name not in names:
                raise self.error(f"`{t.name}` has no parameter `{k.name}`; its parameters are {', '.join(names)}",
                                 k, UnknownNameError, name=k.name, candidates=names)
            if k.name in given:
                raise self.error(f"`{t.name}` is given `{k.name}` twice", k)
            given[k.name] = k.value
        missing = [n for n in names if n not in given]
        if missing:
            raise self.error(f"`{t.name}` needs its parameter(s) {', '.join(f'`{n}`' for n in missing)}", call)
        values: dict[str, ast.Expr] = {}
        sets: dict[str, ast.SetExpr] = {}
        for p in t.params:
            a = given[p.name]
            if p.type == "FinSet":
                if isinstance(a, ast.Name):
                    sets[p.name] = ast.SetName(a.id, span=a.span)
                elif isinstance(a, ast.Number) and a.value == 1:
                    sets[p.name] = ast.SetUnit(span=a.span)
                else:
                    raise self.error(f"parameter `{p.name}` of `{t.name}` is a FinSet: pass an object's name", a)
            else:
                values[p.name] = a
        return values, sets


class _Substitution:
    """Rename defined names, read ``Real`` parameters as their arguments and
    ``FinSet`` parameters as their sets, throughout a step."""

    def __init__(self, renamed: dict[str, str], values: dict[str, ast.Expr], sets: dict[str, ast.SetExpr]) -> None:
        self.renamed, self.values, self.sets = renamed, values, sets

    def node(self, n: Any) -> Any:
        if isinstance(n, tuple):
            return tuple(self.node(x) for x in n)
        if not isinstance(n, ast.Node):
            return n
        if isinstance(n, ast.Name):
            if n.id in self.renamed:
                return replace(n, id=self.renamed[n.id])
            s = self.sets.get(n.id)
            if isinstance(s, ast.SetName):  # a set parameter named as an axis: `sum(x, G)`
                return replace(n, id=s.name)
            return self.values.get(n.id, n)
        if isinstance(n, ast.SetName):
            return self.sets.get(n.name, n)
        if isinstance(n, ast.OptionName):
            if n.name in self.renamed:
                return replace(n, name=self.renamed[n.name])
            s = self.sets.get(n.name)
            return replace(n, name=s.name) if isinstance(s, ast.SetName) else n
        changes = {f.name: self.node(getattr(n, f.name)) for f in fields(n) if f.name != "span"}
        if isinstance(n, _DEFINING) and n.name in self.renamed:
            changes["name"] = self.renamed[n.name]
        return replace(n, **changes)


def _defined(steps: tuple[ast.Step, ...]) -> list[str]:
    out = []
    for s in steps:
        if isinstance(s, _DEFINING):
            out.append(s.name)
        if isinstance(s, (ast.Marginalize, ast.Markov)):
            out.extend(_defined(s.body))
    return out
