"""QVR, the surface language of quivers: grammar, AST, parser and printer.

Examples
--------
>>> m = parse("object K : FinSet 2")
>>> print(dumps(m), end="")
object K : FinSet 2
"""

from __future__ import annotations

from quivers.dsl.parser import parse
from quivers.dsl.printer import dumps

__all__ = ["parse", "dumps"]
