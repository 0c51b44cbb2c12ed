"""The documentation site builds (mkdocs, strict), lists every page, and
highlights QVR through the registered Pygments lexer."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import yaml

from tests.docs.blocks import DOCS, ROOT, pages


def nav_pages() -> set[str]:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    found: set[str] = set()

    def walk(item):
        if isinstance(item, str):
            found.add(item)
        elif isinstance(item, dict):
            for v in item.values():
                walk(v)
        elif isinstance(item, list):
            for v in item:
                walk(v)

    walk(config["nav"])
    return found


def test_every_page_is_in_the_nav_and_every_nav_entry_exists():
    on_disk = {str(p.relative_to(DOCS)) for p in pages()}
    listed = nav_pages()
    assert not on_disk - listed, f"add these pages to the nav of mkdocs.yml: {sorted(on_disk - listed)}"
    assert not listed - on_disk, f"the nav of mkdocs.yml lists missing pages: {sorted(listed - on_disk)}"


def test_the_qvr_lexer_is_registered_with_pygments():
    from pygments.lexers import get_lexer_by_name, get_lexer_for_filename

    from quivers.dsl.lexer import QVRLexer

    assert isinstance(get_lexer_by_name("qvr"), QVRLexer)
    assert isinstance(get_lexer_for_filename("gmm.qvr"), QVRLexer)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "--site-dir", str(out)],
        cwd=ROOT, capture_output=True, text=True,
    )
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}"
    return out


def test_the_site_builds_strictly(site):
    assert (site / "index.html").exists()
    assert (site / "tutorial" / "mixtures" / "index.html").exists()


def test_the_api_page_is_generated_from_docstrings(site):
    html = (site / "api" / "index.html").read_text(encoding="utf-8")
    assert "log_joint" in html and "to_stan" in html and "format_source" in html


def test_qvr_blocks_are_highlighted(site):
    html = (site / "tutorial" / "mixtures" / "index.html").read_text(encoding="utf-8")
    assert re.search(r'<span class="k">marginalize</span>', html)
    assert re.search(r'<span class="nb">Categorical</span>', html)
