"""Code blocks of the documentation, as the docs tests read them.

A fenced block is tagged with its language, and the tag says what the test
does with it:

- ``python``: run; the python blocks of one page run top to bottom as one
  script, in the repository root, with ``QUIVERS_QUICK=1``.
- ``qvr``: must load with :func:`quivers.dsl.loads`.
- ``qvr-error``: must raise a :class:`~quivers.errors.QuiversError` (an
  intentional mistake, shown with its message).
- ``console``: each ``$ qvr ...`` line runs through :func:`quivers.cli.main`
  in the repository root and must exit 0; the lines after it, when there
  are any, are its expected output (a line ``...`` stands for any lines).
  Other ``$`` lines (``pip``, ``python``, ``mkdocs``) are instructions and
  are not run.
- ``text``, ``json``, ``csv``, ``stan``, ``dot``, ``bash``, ``toml``: shown,
  not run.

Any other tag, or none, is an error naming the page and line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
RUN = {"python", "qvr", "qvr-error", "console"}
SHOWN = {"text", "json", "csv", "stan", "dot", "bash", "toml"}
INSTRUCTIONS = ("pip ", "python ", "mkdocs ", "git ")

_FENCE = re.compile(r"^(\s*)(```+|~~~+)\s*([^\s`]*)")


@dataclass(frozen=True)
class Block:
    """One fenced code block: its page, first line (of the fence), tag and text."""

    page: Path
    line: int
    lang: str
    text: str

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def pages() -> list[Path]:
    return sorted(DOCS.rglob("*.md"))


def blocks(page: Path) -> list[Block]:
    """The fenced blocks of ``page`` in order (indentation of the fence is
    removed from the block's lines)."""
    out: list[Block] = []
    lines = page.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, lang = m.groups()
        start, body = i + 1, []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            line = lines[i]
            body.append(line[len(indent):] if line.startswith(indent) else line.lstrip())
            i += 1
        out.append(Block(page, start, lang.lower(), "\n".join(body) + "\n"))
        i += 1
    return out


def all_blocks() -> list[Block]:
    return [b for p in pages() for b in blocks(p)]


def console_commands(block: Block) -> list[tuple[str, list[str]]]:
    """``(command, expected output lines)`` for each ``$`` line of a console block."""
    out: list[tuple[str, list[str]]] = []
    for line in block.text.splitlines():
        if line.startswith("$ "):
            out.append((line[2:].strip(), []))
        elif out:
            out[-1][1].append(line.rstrip())
        elif line.strip():
            raise ValueError(f"{block.where}: output before any `$` command: {line!r}")
    return out


def matches(expected: list[str], actual: list[str]) -> bool:
    """Whether ``actual`` lines match ``expected``, where a line ``...``
    stands for any number of lines and ``...`` in a line for any text."""
    while expected and not expected[-1]:
        expected = expected[:-1]
    while actual and not actual[-1]:
        actual = actual[:-1]
    if not expected:
        return not actual
    if expected[0] == "...":
        return any(matches(expected[1:], actual[k:]) for k in range(len(actual) + 1))
    return bool(actual) and line_matches(expected[0], actual[0]) and matches(expected[1:], actual[1:])


def line_matches(expected: str, actual: str) -> bool:
    """Equal, where ``...`` inside a line stands for any text."""
    pattern = ".*".join(re.escape(part) for part in expected.split("..."))
    return re.fullmatch(pattern, actual) is not None
