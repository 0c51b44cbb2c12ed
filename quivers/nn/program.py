"""Programs over kernels: a sequence of draws, deterministic lets and
observations whose distributions come from kernels or families.

A :class:`KernelProgram` is the sampling counterpart of a QVR program that
uses declared morphisms (``sample z <- gate(x_t, h_prev)``,
``observe y : Resp <- lm_head(h)``). Each step is a value of :class:`Step`
that reads an environment of named tensors:

- ``Step("sample", name, dist)``: ``name`` is a draw of ``dist(env)``
  (reparameterized when the family allows it), or ``dist(env)`` itself
  when it is a tensor (a draw a composite of kernels made);
- ``Step("let", name, value)``: ``name`` is ``value(env)``;
- ``Step("observe", name, dist)``: ``name`` is data; it scores
  ``dist(env).log_prob(data)``, and in sampling mode is drawn instead
  (data that a distribution reads as it is, such as the sentences of
  :class:`~quivers.deduction.Sentences`, goes through its ``as_value``);
- ``Step("data", name, reader)``: ``name`` is data the caller must give,
  read by ``reader(env).as_value`` and scored by nothing (the sentences
  of ``let chart = parse(D, sentence)``);
- ``Step("score", name, value)``: ``name`` is ``value(env)``, and its sum
  is added to the log density (``score evidence = chart.goal_weight()``);
- ``Step("return", None, value)``: the program's value.

Its inputs are bound to names: one name for the whole input, or one per
factor of a product domain (a scan cell ``program c(x_t, h_prev) : X * H -> H``
gets its two parts). So a program is a morphism like any other: it
composes, and a scan threads it.

Examples
--------
>>> import torch
>>> from torch.distributions import Normal
>>> from quivers.nn import Real
>>> H = Real("H", 2)
>>> step = KernelProgram(H, H, ("h",), [
...     Step("sample", "noise", lambda env: Normal(torch.zeros_like(env["h"]), 1.0)),
...     Step("return", None, lambda env: env["h"] + 0.0 * env["noise"]),
... ])
>>> step.sample(torch.ones(3, 2))
tensor([[1., 1.],
        [1., 1.],
        [1., 1.]])
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from quivers.categories import FinSet, Morphism
from quivers.errors import DataError, QuiversTypeError, UnsupportedError
from quivers.nn.arrows import Evaluation, MorphismModule
from quivers.nn.boundaries import DataMorphism
from quivers.nn.objects import Real

__all__ = ["Step", "KernelProgram", "INPUT"]

INPUT = "__input__"
"""The name a program's whole input has in its environment, whether or not
the program binds it (``sample h <- backbone`` reads it)."""

_KINDS = ("sample", "let", "observe", "data", "score", "return")


@dataclass(frozen=True)
class Step:
    """One step of a :class:`KernelProgram`: its kind, the name it defines
    and a function of the environment (a distribution, or a value)."""

    kind: str
    name: str | None
    fn: Callable[[Mapping[str, Tensor]], Any]

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise QuiversTypeError(f"a step is one of {', '.join(_KINDS)}, not `{self.kind}`")


class KernelProgram(MorphismModule):
    """A program whose steps draw from kernels (see the module docstring).

    Parameters
    ----------
    dom, cod
        Its type.
    inputs
        The names its input is bound to: one, or one per factor of ``dom``.
    steps
        The steps, in order; the last is a ``return``.
    kernels
        The modules its steps use, registered so that ``.parameters()``
        reaches their weights.
    name
        How it is shown.
    """

    def __init__(
        self,
        dom: FinSet | Real,
        cod: FinSet | Real,
        inputs: Sequence[str],
        steps: Sequence[Step],
        kernels: Sequence[nn.Module] = (),
        name: str | None = None,
    ) -> None:
        super().__init__(dom, cod)
        factors = dom.factors if isinstance(dom, Real) else (dom,)
        if len(inputs) not in (0, 1, len(factors)):
            raise QuiversTypeError(
                f"program `{name}` binds {len(inputs)} inputs, but `{dom}` has {len(factors)} factors"
            )
        if not steps or steps[-1].kind != "return":
            raise QuiversTypeError(f"program `{name}` must end with a `return`")
        self.inputs, self.steps, self.name = tuple(inputs), tuple(steps), name
        self.kernels = nn.ModuleList(dict.fromkeys(kernels))

    @property
    def is_stochastic(self) -> bool:
        return True

    def evaluate(self, ev: Evaluation) -> Morphism:
        raise UnsupportedError(f"program `{self.name}` draws from kernels; it has no matrix over a semiring")

    def _bind(self, x: Tensor) -> dict[str, Tensor]:
        # INPUT holds the whole input, bound to a name or not
        if not self.inputs:
            return {INPUT: x}
        if len(self.inputs) == 1:
            return {INPUT: x, self.inputs[0]: x}
        out, start = {INPUT: x}, 0
        for name, f in zip(self.inputs, self.dom.factors):
            width = f.dim if isinstance(f, Real) else f.size
            part = x[..., start : start + width]
            # a finite factor arrives one-hot inside the concatenation; give back its element
            out[name] = part if isinstance(f, Real) else part.argmax(-1)
            start += width
        return out

    def run(  # type: ignore[override]
        self, x: Tensor, data: Mapping[str, Tensor] | None = None, given: Mapping[str, Tensor] | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Run once: the returned value and the log density of the observed
        ``data`` (observations without data are drawn). A draw named in
        ``given`` takes that value instead, and its log density joins the
        score: with values a guide drew, the score is ``log p(x, z)``."""
        env: dict[str, Any] = self._bind(x)
        score = torch.zeros(())
        data, given = dict(data or {}), dict(given or {})
        for m in self.kernels.modules():  # an observed morphism's matrix is data the program is given
            if isinstance(m, DataMorphism) and m.name in data:
                m.bind(data.pop(m.name))
        for s in self.steps:
            if s.kind == "let":
                env[s.name] = s.fn(env)
            elif s.kind == "sample" and s.name in given:
                d = s.fn(env)
                if isinstance(d, Tensor):
                    raise UnsupportedError(
                        f"draw `{s.name}` of program `{self.name}` comes from a composite of kernels, which has "
                        "no density to score a guide's value under; draw it from one kernel or family"
                    )
                env[s.name] = given.pop(s.name)
                score = score + d.log_prob(env[s.name]).sum()
            elif s.kind == "sample":
                d = s.fn(env)  # a distribution, or a draw a composite already made
                env[s.name] = d if isinstance(d, Tensor) else (d.rsample() if d.has_rsample else d.sample())
            elif s.kind == "data":
                if s.name not in data:
                    raise DataError(f"program `{self.name}` needs `{s.name}` as data (the sentences it parses)")
                env[s.name] = s.fn(env).as_value(data.pop(s.name))
            elif s.kind == "score":
                env[s.name] = s.fn(env)
                score = score + torch.as_tensor(env[s.name]).sum()
            elif s.kind == "observe":
                d = s.fn(env)
                if s.name in data:
                    raw = data.pop(s.name)
                    # sentences observed under a deduction stay words; other data is numbers
                    value = d.as_value(raw) if hasattr(d, "as_value") else torch.as_tensor(raw)
                    try:
                        score = score + d.log_prob(value).sum()
                    except (RuntimeError, ValueError) as err:
                        raise DataError(f"observation `{s.name}` of program `{self.name}`: {err}") from None
                    env[s.name] = value
                else:
                    env[s.name] = d.sample()
            else:
                if given:
                    raise DataError(f"program `{self.name}` draws no {', '.join(f'`{k}`' for k in given)}")
                if data:
                    raise DataError(
                        f"program `{self.name}` observes no {', '.join(f'`{k}`' for k in data)}; it observes "
                        + (", ".join(f"`{t.name}`" for t in self.steps if t.kind == "observe") or "nothing")
                    )
                return s.fn(env), score
        raise AssertionError("a program ends with a return")

    def sample(self, x: Tensor) -> Tensor:
        """The returned value of one run at ``x``."""
        return self.run(x)[0]

    def log_prob(self, data: Mapping[str, Tensor], x: Tensor) -> Tensor:
        """The log density of the observed ``data`` at ``x``, with the
        program's draws made once (reparameterized): a one-draw estimate
        whose gradient trains every kernel the program uses."""
        return self.run(x, data)[1]

    def __repr__(self) -> str:
        return f"program({self.name!r}, {self.dom.name}, {self.cod.name})"
