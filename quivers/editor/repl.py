"""The QVR read-eval-print loop: ``qvr repl``.

Statements are entered one at a time and accumulate into one module: an
``object`` or ``export`` line is complete on its own; a ``program`` (or
any declaration with an indented body) goes on with ``...`` prompts until
an empty line. Each statement is checked against everything entered
before it; one with an error is reported with its caret and dropped, and
the module stays as it was. Commands start with a colon:

- ``:type NAME``: what ``NAME`` is (an object's size, a program's
  signature and effects, a site's declaration, kind and support);
- ``:graph PROGRAM``: the dependency graph as DOT;
- ``:sample PROGRAM [N]``: ``N`` prior predictive draws, summarized;
- ``:load FILE``: enter every statement of a file;
- ``:source``: the module so far; ``:reset``: forget it;
- ``:help``; ``:quit`` (or end of input).

In a terminal, lines are edited with readline and kept in the history
file ``~/.qvr_history``.

Examples
--------
>>> s = Session()
>>> s.submit("object K : FinSet 2")
'object K : FinSet 2'
>>> print(s.submit("program p : K -> K\\n    sample mu : K <- Normal(0.0, 1.0)\\n    return mu"))
program p : K -> K
>>> print(s.command(":type mu"))
sample mu : K <- Normal(0.0, 1.0)
(sample site of program `p`, line 3; support: real)
>>> print(s.submit("export q"))
line 1, column 1: cannot export `q`: it is not declared; `export` takes a program, a morphism or a deduction; programs: p
    export q
    ^^^^^^^^
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import TextIO

from quivers.errors import QuiversError, Span, render_caret

__all__ = ["Session", "run", "BLOCK_KEYWORDS"]

BLOCK_KEYWORDS = ("program", "deduction")
"""Declarations whose indented body follows their first line."""

HELP = __doc__.split("Examples")[0].split("Commands start with a colon:")[1].strip()


class Session:
    """The module a REPL has built so far, and the answers to its commands."""

    def __init__(self) -> None:
        self.source = ""
        self.module = None

    # ------------------------------------------------------------ statements

    def submit(self, text: str) -> str:
        """Check ``text`` (one statement, possibly several lines) after what
        was entered before; keep it when it is right. Returns what to print:
        the statement's first line, or the error with lines counted from the
        statement's first."""
        from quivers.dsl import loads

        text = text.rstrip("\n")
        if not text.strip():
            return ""
        candidate = self.source + text + "\n"
        try:
            module = loads(candidate)
        except QuiversError as err:
            return self._error(err, text)
        self.source, self.module = candidate, module
        return text.strip().splitlines()[0]

    def _error(self, err: QuiversError, text: str) -> str:
        from quivers.editor.analysis import error_message

        message = error_message(err)
        if err.span is None:
            return message
        offset = self.source.count("\n")
        line = err.span.line - offset
        if line < 1:  # the error is in what was entered before
            return f"{message} (at line {err.span.line} of the module)"
        span = Span(line, err.span.column, err.span.end_line - offset, err.span.end_column)
        caret = render_caret(text, span)
        return f"line {line}, column {span.column}: {message}" + (f"\n{caret}" if caret else "")

    def load(self, path: str) -> str:
        """Enter every top-level statement of the file at ``path``."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as err:
            return f"cannot read `{path}`: {err.strerror or err}"
        out = []
        for chunk in statements(text.splitlines()):
            result = self.submit(chunk)
            out.append(result)
            if "\n" in result or result.startswith("line "):
                break
        return "\n".join(r for r in out if r)

    # -------------------------------------------------------------- commands

    def command(self, line: str) -> str:
        """Run a ``:command``; returns what to print."""
        try:
            words = shlex.split(line[1:])
        except ValueError as err:
            return f"cannot read the command: {err}"
        if not words:
            return HELP
        name, args = words[0], words[1:]
        handler = {"type": self._type, "graph": self._graph, "sample": self._sample, "load": self._load,
                   "source": lambda a: self.source.rstrip("\n"), "reset": self._reset,
                   "help": lambda a: HELP}.get(name)
        if handler is None:
            return f"unknown command `:{name}`; commands: :type, :graph, :sample, :load, :source, :reset, :help, :quit"
        try:
            return handler(args)
        except QuiversError as err:
            from quivers.editor.analysis import error_message

            return error_message(err)

    def _reset(self, args: list[str]) -> str:
        self.source, self.module = "", None
        return "the module is empty"

    def _load(self, args: list[str]) -> str:
        if len(args) != 1:
            return "usage: :load FILE"
        return self.load(args[0])

    def _program(self, name: str):
        from quivers.errors import UnknownNameError

        programs = self.module.programs if self.module is not None else {}
        if name not in programs:
            raise UnknownNameError(f"no program `{name}`", name=name, candidates=list(programs))
        return programs[name]

    def _type(self, args: list[str]) -> str:
        from quivers.editor.analysis import Document, _declaration, _describe

        if len(args) != 1:
            return "usage: :type NAME"
        name = args[0]
        if self.module is not None and name in self.module.programs:
            program = self.module.programs[name]
            return f"program {program.extra_repr()}"
        matches = [s for s in Document(self.source).symbols if s.name == name]
        if not matches:
            from quivers.errors import did_you_mean

            known = [s.name for s in Document(self.source).symbols]
            close = did_you_mean(name, known)
            return f"`{name}` is not defined" + (f"; did you mean `{close}`?" if close else "")
        if matches[0].kind == "object" and self.module is not None:
            return f"object {name} : {self.module.objects[name]!r}" if name in self.module.objects else name
        return "\n".join(f"{_declaration(s.node)}\n({_describe(s)})" for s in matches)

    def _graph(self, args: list[str]) -> str:
        from quivers.programs import to_dot

        if len(args) != 1:
            return "usage: :graph PROGRAM"
        return to_dot(self._program(args[0]))

    def _sample(self, args: list[str]) -> str:
        from quivers.inference import Predictive

        if not 1 <= len(args) <= 2:
            return "usage: :sample PROGRAM [N]"
        try:
            n = int(args[1]) if len(args) == 2 else 10
        except ValueError:
            return f"`{args[1]}` is not a number of draws"
        if n < 1:
            return "the number of draws must be positive"
        program = self._program(args[0])
        draws = Predictive(program, num_samples=n)(None)
        lines = [f"{program.name}: {n} prior predictive draws"]
        for name, t in draws.items():
            x = t.double()
            shape = "x".join(map(str, t.shape[1:])) or "scalar"
            lines.append(f"  {name} ({shape}): mean {float(x.mean()):.3f}, sd {float(x.std()) if x.numel() > 1 else 0:.3f}")
        return "\n".join(lines)


def statements(lines: list[str]):
    """Group source lines into top-level statements: a line starting a
    declaration with a body takes the indented (and blank) lines after it."""
    chunk: list[str] = []
    for line in lines:
        starts = bool(line.strip()) and not line[0].isspace() and not line.lstrip().startswith("#")
        if starts and chunk:
            yield "\n".join(chunk)
            chunk = []
        if line.strip() and not line.lstrip().startswith("#") or chunk:
            chunk.append(line)
    if chunk:
        yield "\n".join(chunk)


def _opens_block(line: str) -> bool:
    words = line.split()
    return bool(words) and words[0] in BLOCK_KEYWORDS


def run(stdin: TextIO | None = None, stdout: TextIO | None = None) -> int:
    """The loop: read statements and commands until ``:quit`` or end of input."""
    stdin = sys.stdin if stdin is None else stdin
    stdout = sys.stdout if stdout is None else stdout
    interactive = stdin.isatty()
    if interactive:
        _history()
    session = Session()
    if interactive:
        print("quivers QVR session; :help for commands, :quit to leave", file=stdout)

    def read(prompt: str) -> str | None:
        if interactive:
            try:
                return input(prompt)
            except EOFError:
                return None
        line = stdin.readline()
        return None if line == "" else line.rstrip("\n")

    while True:
        line = read("qvr> ")
        if line is None or line.strip() in (":quit", ":q"):
            break
        if line.strip().startswith(":"):
            out = session.command(line.strip())
        else:
            text = line
            if _opens_block(line):
                while True:
                    more = read("...  ")
                    if more is None or not more.strip():
                        break
                    text += "\n" + more
            out = session.submit(text)
        if out:
            print(out, file=stdout, flush=True)
    if interactive:
        print(file=stdout)
    return 0


def _history() -> None:
    """readline editing with a history file kept between sessions."""
    try:
        import atexit
        import readline
    except ImportError:  # no readline on this platform: plain input
        return
    path = Path.home() / ".qvr_history"
    try:
        readline.read_history_file(path)
    except OSError:
        pass
    readline.set_history_length(1000)
    atexit.register(lambda: _save_history(readline, path))


def _save_history(readline, path: Path) -> None:
    try:
        readline.write_history_file(path)
    except OSError:
        pass
