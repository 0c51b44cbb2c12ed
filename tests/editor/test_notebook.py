"""The `%%qvr` magic: in an IPython shell in this process, and in a Jupyter
kernel running docs/notebooks/qvr_magic.ipynb cell by cell."""

from __future__ import annotations

from pathlib import Path

import nbformat
from IPython.core.interactiveshell import InteractiveShell
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[2] / "docs" / "notebooks" / "qvr_magic.ipynb"
GMM = """object Item : FinSet 5
object K : FinSet 2
program gmm : Item -> Item
    sample mu_k : K <- Normal(0.0, 5.0)
    marginalize z : K <- Categorical(mu_k)
        observe y : Item <- Normal(mu_k[z], 1.0)
    return y
export gmm
"""


def shell() -> InteractiveShell:
    sh = InteractiveShell.instance()
    sh.run_line_magic("load_ext", "quivers")
    return sh


def test_a_cell_defines_its_objects_programs_and_module():
    sh = shell()
    sh.run_cell_magic("qvr", "", GMM)
    assert sh.user_ns["gmm"] is sh.user_ns["qvr_module"].morphism
    assert sh.user_ns["K"].size == 2


def test_a_cell_with_an_error_defines_nothing_and_shows_a_caret(capsys):
    sh = shell()
    sh.user_ns.pop("broken", None)
    sh.run_cell_magic("qvr", "broken", GMM.replace("Normal(mu_k[z], 1.0)", "Normal(mu_kk[z], 1.0)"))
    err = capsys.readouterr().err
    assert err.startswith("<cell>:6:")
    assert "did you mean `mu_k`" in err and "^^^^^" in err
    assert "broken" not in sh.user_ns
    sh.run_cell_magic("qvr", "not a name", GMM)
    assert "is not a Python name" in capsys.readouterr().err


def test_the_notebook_runs_in_a_jupyter_kernel():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    code = [c for c in nb.cells if c.cell_type == "code"]
    printed = "".join(o.get("text", "") for o in code[2].outputs)
    assert printed.strip() == "K True (20, 50)"
    error = "".join(o.get("text", "") for o in code[3].outputs if o.get("name") == "stderr")
    assert "unknown object `KK`" in error and "^^" in error
    assert "".join(o.get("text", "") for o in code[4].outputs).strip() == "False"
