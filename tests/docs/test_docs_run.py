"""Every code block of docs/ and every QVR file of examples/ runs, so the
documentation cannot rot (the example scripts run in their own process, as
a user runs them, in tests/test_examples.py). See tests/docs/blocks.py for
what each fence tag means; a failure names the page and the line of the
block."""

from __future__ import annotations

import contextlib
import io
import os
import shlex
import traceback
from pathlib import Path

import pytest
import torch

from tests.docs.blocks import INSTRUCTIONS, ROOT, RUN, SHOWN, Block, all_blocks, blocks, console_commands, matches, pages

EXAMPLES = ROOT / "examples"
PYTHON_PAGES = [p for p in pages() if any(b.lang == "python" for b in blocks(p))]


@pytest.fixture
def isolated(monkeypatch):
    """Run in the repository root with QUIVERS_QUICK=1; restore torch's
    global state and close figures afterwards."""
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("QUIVERS_QUICK", "1")
    dtype, threads, rng = torch.get_default_dtype(), torch.get_num_threads(), torch.get_rng_state()
    grad = torch.is_grad_enabled()
    yield
    torch.set_default_dtype(dtype)
    torch.set_num_threads(threads)
    torch.set_rng_state(rng)
    torch.set_grad_enabled(grad)
    import matplotlib.pyplot as plt

    plt.close("all")


def _id(b: Block) -> str:
    return b.where


def test_every_block_is_tagged_with_a_known_language():
    bad = [f"{b.where}: ```{b.lang or '(no tag)'}" for b in all_blocks() if b.lang not in RUN | SHOWN]
    assert not bad, (
        "code blocks need a tag saying what the docs test does with them "
        f"({', '.join(sorted(RUN | SHOWN))}):\n" + "\n".join(bad)
    )


@pytest.mark.parametrize("page", PYTHON_PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_python_blocks_run(page, isolated):
    import matplotlib

    matplotlib.use("Agg")
    namespace: dict = {"__name__": f"docs:{page.name}"}
    for b in blocks(page):
        if b.lang != "python":
            continue
        code = compile(b.text, f"{b.where}", "exec")
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                exec(code, namespace)
        except Exception:
            pytest.fail(f"the python block at {b.where} failed:\n{traceback.format_exc(limit=-3)}", pytrace=False)


QVR = [b for b in all_blocks() if b.lang in ("qvr", "qvr-error")]


@pytest.mark.parametrize("block", QVR, ids=_id)
def test_qvr_blocks_load(block):
    from quivers.dsl import loads
    from quivers.errors import QuiversError

    if block.lang == "qvr":
        try:
            loads(block.text)
        except QuiversError as err:
            pytest.fail(f"the qvr block at {block.where} does not load:\n{err}", pytrace=False)
    else:
        with pytest.raises(QuiversError):
            loads(block.text)


CONSOLE = [b for b in all_blocks() if b.lang == "console"]


@pytest.mark.parametrize("block", CONSOLE, ids=_id)
def test_console_blocks_run(block, isolated, tmp_path):
    from quivers.cli import main

    for command, expected in console_commands(block):
        argv = shlex.split(command)
        if argv[0] != "qvr":
            assert command.startswith(INSTRUCTIONS), (
                f"{block.where}: `{command}` is neither a `qvr` command nor an instruction ({', '.join(INSTRUCTIONS)})"
            )
            continue
        out, err = io.StringIO(), io.StringIO()
        code = main(argv[1:], out=out, err=err)
        assert code == 0, f"{block.where}: `{command}` exited {code}:\n{err.getvalue()}"
        if expected:
            actual = out.getvalue().splitlines()
            assert matches(expected, actual), (
                f"{block.where}: the output of `{command}` differs from the page.\n"
                "page:\n" + "\n".join(expected) + "\nactual:\n" + "\n".join(actual)
            )


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.qvr")), ids=lambda p: p.name)
def test_example_qvr_files_load(path):
    from quivers.dsl import load

    m = load(path)
    assert m.programs or m.morphisms


def test_the_collector_reads_tags_lines_and_wildcards(tmp_path):
    page = tmp_path / "p.md"
    page.write_text("text\n\n```python\nx = 1\n```\n\n  ```console\n  $ qvr check a.qvr\n  a.qvr: ok\n  ```\n")
    found = blocks(page)
    assert [(b.line, b.lang, b.text) for b in found] == [
        (3, "python", "x = 1\n"),
        (7, "console", "$ qvr check a.qvr\na.qvr: ok\n"),
    ]
    assert console_commands(found[1]) == [("qvr check a.qvr", ["a.qvr: ok"])]
    assert matches(["a", "...", "d"], ["a", "b", "c", "d"]) and not matches(["a", "d"], ["a", "b", "d"])
    assert matches(["..."], []) and not matches(["a"], [])
    assert matches(["loss ... end"], ["loss 1.5 end"]) and not matches(["loss ... end"], ["loss 1.5"])
