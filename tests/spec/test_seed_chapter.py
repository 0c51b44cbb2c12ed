"""The seed chapter (../shared/spec/) is the contract: its two programs and
its Python snippet run as written, with the indentation the extraction lost
restored as the chapter describes (program bodies under ``program``, the
observes of a marginalize block under it, Python blocks under their
headers).

The chapter's text is not part of the repository: it sits in a ``shared/``
folder beside a working copy. Where that folder is absent (a fresh clone)
this module is skipped, saying so; the chapter's programs themselves are the
repository's ``examples/gmm.qvr`` and ``examples/grouped_mixture.qvr``,
tested everywhere (tests/dsl/, tests/cli/, tests/inference/test_grouped_loo.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from quivers.dsl import loads
from tests.spec import seed

SPEC = Path(__file__).resolve().parents[2].parent / "shared" / "spec" / "seed-chapter-04-mixtures-and-discrete-latents.txt"

pytestmark = pytest.mark.skipif(
    not SPEC.exists(),
    reason=f"the seed chapter's text is not beside this clone ({SPEC} is absent); "
    "its programs are examples/*.qvr, tested elsewhere",
)


def chapter_lines() -> list[str]:
    return SPEC.read_text().splitlines()


def indent_qvr(lines: list[str]) -> str:
    """Restore QVR indentation: steps under ``program``, observes under
    ``marginalize``."""
    out, in_program, in_block = [], False, False
    for line in lines:
        word = line.split(" ", 1)[0]
        if word in ("object", "export"):
            in_program = in_block = False
            out.append(line)
        elif word == "program":
            in_program, in_block = True, False
            out.append(line)
        elif in_program and word == "marginalize":
            in_block = True
            out.append("    " + line)
        elif in_program and in_block and word == "observe":
            out.append("        " + line)
        else:
            in_block = False
            out.append("    " + line if in_program else line)
    return "\n".join(out) + "\n"


def qvr_programs() -> list[str]:
    """Every QVR program of the chapter, from its first ``object`` line to ``export``."""
    lines, programs, current = chapter_lines(), [], None
    for line in lines:
        if line.startswith("object ") and current is None:
            current = [line]
        elif current is not None:
            current.append(line)
            if line.startswith("export "):
                programs.append(indent_qvr(current))
                current = None
    return programs


def python_snippet() -> str:
    """The fitting snippet, from ``import torch`` to the ``svi.step`` loop."""
    lines = chapter_lines()
    start = lines.index("import torch")
    end = next(i for i in range(start, len(lines)) if lines[i].strip() == "svi.step(x_tensor, observations)")
    snippet = lines[start : end + 1]
    out, in_src = [], False
    for i, line in enumerate(snippet):
        if line.startswith('GMM_SRC = """'):
            in_src, src = True, []
            out.append(line)
            continue
        if in_src:
            if line == '"""':
                out.append(indent_qvr(src).rstrip("\n"))
                out.append(line)
                in_src = False
            else:
                src.append(line)
            continue
        prev = snippet[i - 1] if i else ""
        continuation = prev.rstrip().endswith("(") or (prev.startswith("    ") and not line.startswith(")"))
        if prev.split("#")[0].rstrip().endswith(":") or (continuation and not line.startswith(")")):
            out.append("    " + line)
        else:
            out.append(line)
    return "\n".join(out) + "\n"


def test_the_examples_are_the_chapter_programs_line_for_line():
    """Everything else reads the seed from examples/ (tests/spec/seed.py); here
    those files are held to the chapter's text: the same lines, with only
    the blank lines ``qvr fmt`` puts between sections added."""
    programs = qvr_programs()

    def lines(text: str) -> list[str]:
        return [line for line in text.splitlines() if line.strip()]

    assert lines(seed.GMM) == lines(programs[0])
    assert lines(seed.GROUPED) == lines(programs[2])


def test_chapter_has_two_programs():
    names = [re.search(r"^program (\w+)", p, re.M).group(1) for p in qvr_programs()]
    assert names == ["gmm", "gmm", "grouped_mixture"]


@pytest.mark.parametrize("block", ["gmm", "snippet", "grouped_mixture"])
def test_what_runs_is_the_chapter_text_with_only_indentation_restored(block):
    """Verbatim: with the restored indentation stripped again, the block
    that the tests run is a contiguous run of the chapter's lines, from its
    first line to its last; nothing was dropped, added or reworded."""
    text = {"gmm": qvr_programs()[0], "snippet": python_snippet(), "grouped_mixture": qvr_programs()[2]}[block]
    ran = [line.lstrip() for line in text.splitlines()]
    chapter = chapter_lines()
    starts = [i for i in range(len(chapter)) if chapter[i : i + len(ran)] == ran]
    assert starts, f"the {block} block that runs is not the chapter's text"
    assert ran[0] in ("object Item : FinSet 500", "object Item : FinSet 1000", "import torch")
    assert ran[-1] in ("export gmm", "export grouped_mixture", "svi.step(x_tensor, observations)")


@pytest.mark.parametrize("index", [0, 2])
def test_chapter_programs_parse_check_and_compile(index):
    module = loads(qvr_programs()[index])
    assert module.morphism is not None


def test_chapter_snippet_runs_verbatim():
    namespace: dict = {}
    exec(compile(python_snippet(), str(SPEC), "exec"), namespace)
    svi, observations = namespace["svi"], namespace["observations"]
    loss = svi.step(namespace["x_tensor"], observations)
    assert isinstance(loss, float) and loss == loss
    assert namespace["y_data"].shape == (1, 500)


def test_grouped_program_fits_with_the_index_map_in_the_observations():
    from quivers.inference import ELBO, SVI, AutoNormalGuide

    model = loads(qvr_programs()[2]).morphism
    torch.manual_seed(0)
    group = torch.randint(0, 20, (1000,))
    z_group = torch.randint(0, 3, (20,))
    y = torch.randn(1000) * 0.3 + torch.tensor([-3.0, 0.0, 3.0])[z_group[group]]
    guide = AutoNormalGuide(model, observed_names={"y", "group"})
    svi = SVI(model, guide, torch.optim.Adam(guide.parameters(), lr=0.02), ELBO())
    obs = {"y": y.unsqueeze(0), "group": group}
    losses = [svi.step(torch.zeros(1, 1), obs) for _ in range(1500)]
    assert losses[-1] < losses[0]
    mu = guide.median()["mu_k"].sort().values
    torch.testing.assert_close(mu, torch.tensor([-3.0, 0.0, 3.0]), atol=0.15, rtol=0)
