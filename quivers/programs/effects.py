"""Effects: what a program does besides computing a value.

``Sample`` draws latents, ``Score`` adds to the log density (``observe``,
``factor``), ``Marginal`` integrates a discrete latent out, and ``Pure`` is
the empty effect (``let``, ``return``). A program's effects are the union of
its steps' effects; a declaration must cover them.

Examples
--------
>>> sorted(e.name for e in Effect.parse(["Sample", "Score"]))
['Sample', 'Score']
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

from quivers.errors import UnknownNameError

__all__ = ["Effect"]


class Effect(enum.Enum):
    """The effects a step or program may have."""

    Pure = "Pure"
    Sample = "Sample"
    Score = "Score"
    Marginal = "Marginal"

    def __repr__(self) -> str:
        return f"Effect.{self.name}"

    @classmethod
    def parse(cls, names: Iterable[str | Effect]) -> frozenset[Effect]:
        """Effects from their names; unknown names are errors listing the known ones."""
        out = set()
        for n in names:
            if isinstance(n, Effect):
                out.add(n)
                continue
            try:
                out.add(cls[n])
            except KeyError:
                raise UnknownNameError(
                    f"unknown effect `{n}`; effects are Pure, Sample, Score, Marginal",
                    name=n,
                    candidates=[e.name for e in cls],
                ) from None
        return frozenset(out)
