"""The seed chapter's two QVR programs as the repository keeps them:
``examples/gmm.qvr`` and ``examples/grouped_mixture.qvr``, in the canonical
form of ``qvr fmt`` (the chapter's lines, with blank lines between the
declarations, the program and the export). Tests that need the seed's
programs read them here, so they run on any clone;
tests/spec/test_seed_chapter.py checks, where the chapter's text is at hand,
that these files hold the chapter's programs line for line."""

from __future__ import annotations

from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

GMM = (EXAMPLES / "gmm.qvr").read_text()
"""``program gmm`` (Item = 500, K = 2)."""

GROUPED = (EXAMPLES / "grouped_mixture.qvr").read_text()
"""``program grouped_mixture`` (Item = 1000, G = 20, K = 3)."""
