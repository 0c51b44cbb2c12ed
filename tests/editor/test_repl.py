"""`qvr repl` through a pseudo-terminal, as a person types into it, and
the session it drives, statement by statement."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time

from quivers.editor.repl import Session, statements

PROGRAM = [
    "object K : FinSet 2",
    "program p : K -> K",
    "    sample mu : K <- Normal(0.0, 1.0)",
    "    return mu",
    "",
]


class Terminal:
    """A process on a pseudo-terminal: type lines, read until a prompt."""

    def __init__(self, *argv: str) -> None:
        self.master, slave = pty.openpty()
        env = dict(os.environ, HOME=os.environ.get("TMP_HOME", "/tmp"), TERM="dumb")
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True)
        os.close(slave)
        self.seen = ""

    def read_until(self, marker: str, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        start = len(self.seen)
        while marker not in self.seen[start:]:
            left = deadline - time.monotonic()
            assert left > 0, f"no {marker!r} in {self.seen[start:]!r}"
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                try:
                    self.seen += os.read(self.master, 4096).decode(errors="replace")
                except OSError:  # the process closed the terminal
                    break
        return self.seen[start:]

    def type(self, line: str, until: str = "qvr> ") -> str:
        os.write(self.master, (line + "\n").encode())
        return self.read_until(until)

    def close(self) -> int:
        """Wait for the process to end (reading what it still writes, so that
        it never writes to a closed terminal), then close the terminal."""
        deadline = time.monotonic() + 30
        while self.proc.poll() is None and time.monotonic() < deadline:
            ready, _, _ = select.select([self.master], [], [], 0.1)
            if ready:
                try:
                    self.seen += os.read(self.master, 4096).decode(errors="replace")
                except OSError:
                    break
        code = self.proc.wait(timeout=30)
        os.close(self.master)
        return code


def test_a_session_in_a_terminal(tmp_path, monkeypatch):
    monkeypatch.setenv("TMP_HOME", str(tmp_path))
    term = Terminal(sys.executable, "-m", "quivers.cli", "repl")
    try:
        assert ":help" in term.read_until("qvr> ")
        term.type(PROGRAM[0])
        for line in PROGRAM[1:-1]:
            term.type(line, until="...  ")
        shown = term.type("")
        assert "program p : K -> K" in shown
        assert "K -> K [effects=[Sample]]" in term.type(":type p")
        assert "support: real" in term.type(":type mu")
        assert '"mu" -> "return' in term.type(":graph p")
        assert "p: 4 prior predictive draws" in term.type(":sample p 4")
        wrong = term.type("object J : FinSet = K * KK")
        assert "unknown object `KK`" in wrong and "^^" in wrong
        assert "object J" not in term.type(":source")
        os.write(term.master, b":quit\n")
    finally:
        assert term.close() == 0
    # the lines typed are kept for the next session
    history = (tmp_path / ".qvr_history").read_text()
    assert ":type mu" in history and "object K : FinSet 2" in history


def test_load_enters_every_statement_and_stops_at_the_first_error(tmp_path):
    good = tmp_path / "good.qvr"
    good.write_text("\n".join(PROGRAM + ["# a comment", "export p", ""]))
    s = Session()
    assert s.command(f":load {good}").splitlines() == ["object K : FinSet 2", "program p : K -> K", "export p"]
    assert s.module.morphism.name == "p"
    bad = tmp_path / "bad.qvr"
    bad.write_text("object L : FinSet 3\nobject M : FinSet = L * Q\nobject N : FinSet 1\n")
    out = s.command(f":load {bad}")
    assert "unknown object `Q`" in out and "object N" not in s.source
    assert s.command(":load nowhere.qvr").startswith("cannot read `nowhere.qvr`")


def test_statements_group_bodies_with_their_headers():
    chunks = list(statements(PROGRAM + ["export p"]))
    assert chunks == ["object K : FinSet 2", "\n".join(PROGRAM[1:]), "export p"]


def test_commands_with_bad_arguments_say_how_to_use_them():
    s = Session()
    assert s.command(":graph") == "usage: :graph PROGRAM"
    assert s.command(":sample nothing").startswith("no program `nothing`")
    assert s.command(":frobnicate").startswith("unknown command `:frobnicate`")
    assert s.submit("object K : FinSet 2") == "object K : FinSet 2"
    assert s.command(":type K") == "object K : FinSet('K', 2)"
    assert s.command(":reset") == "the module is empty" and s.source == ""
