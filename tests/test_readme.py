"""The README's two commands are the contract CI and newcomers rely on."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return [line.strip() for line in text.splitlines() if line.startswith("    pip install")]


def test_readme_opens_with_main_job_and_test_command():
    commands = readme_commands()
    assert len(commands) >= 2
    main, tests = commands[0], commands[1]
    assert "examples/fit_gmm.py" in main
    assert "pytest" in tests


def test_ci_runs_the_readme_test_command_verbatim():
    ci = (ROOT / ".ci" / "run").read_text()
    test_command = readme_commands()[1]
    assert test_command in [line.strip() for line in ci.splitlines()]


def test_main_job_loads_the_seed_program_from_qvr():
    script = (ROOT / "examples" / "fit_gmm.py").read_text()
    assert re.search(r'load\(HERE / "gmm\.qvr"\)', script)
    assert (ROOT / "examples" / "gmm.qvr").exists()


def test_ci_collects_a_fresh_clone_before_the_readme_command():
    """A clone with nothing beside it collects: .ci/run proves it first, and
    a failure there fails CI (``set -euo pipefail``)."""
    lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert "set -euo pipefail" in lines
    clone = next(i for i, line in enumerate(lines) if line.startswith("git clone -q . "))
    collect = next(i for i, line in enumerate(lines) if "pytest --collect-only" in line)
    assert clone < collect < lines.index(readme_commands()[1])


def test_the_first_model_is_seeded_converges_and_runs_quietly():
    """The README's first model, run as written under warnings as errors
    (a ConvergenceWarning or a library's warning fails it): the same
    numbers on every run, the mixture recovered, and the printed summary
    saying which method ran."""
    import contextlib
    import io
    import warnings

    import torch

    block = re.search(r"## A first model\n\n```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S).group(1)
    runs = []
    for _ in range(2):
        namespace: dict = {}
        printed = io.StringIO()
        with warnings.catch_warnings(), contextlib.redirect_stdout(printed):
            warnings.simplefilter("error")
            exec(compile(block, "README.md", "exec"), namespace)
        runs.append(namespace["result"])
    result = runs[0]
    assert torch.equal(result.samples["mu_k"], runs[1].samples["mu_k"])  # seeded
    assert printed.getvalue().startswith('SVI, 1500 steps of AutoNormalGuide, 4 chains x 1000 draws from '
                                         'the guide (method="svi" given)\n')
    mu = result.samples["mu_k"].mean((0, 1))
    order = mu.argsort()
    torch.testing.assert_close(mu[order], torch.tensor([-2.0, 2.0]), atol=0.15, rtol=0)
    sd = result.samples["sd_k"].mean((0, 1))[order]
    torch.testing.assert_close(sd, torch.tensor([0.5, 0.7]), atol=0.1, rtol=0)
    probs = result.samples["probs"].mean((0, 1))[order]
    torch.testing.assert_close(probs, torch.tensor([0.4, 0.6]), atol=0.06, rtol=0)
