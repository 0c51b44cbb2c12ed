"""The pages about reliability run as written: their ``python`` blocks as
one script each, and every ``text`` block is what the script printed."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"


def blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```$", text, flags=re.M | re.S)


@pytest.mark.parametrize("page", ["reproducibility.md", "checkpoints.md"])
def test_page_runs_and_prints_what_it_shows(page: str) -> None:
    text = (DOCS / page).read_text()
    code = blocks(text, "python")
    assert code, f"{page} has no python blocks"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile("\n".join(code), str(DOCS / page), "exec"), {"__name__": "__doc_page__"})
    for shown in blocks(text, "text"):
        assert shown.strip() in out.getvalue(), shown
