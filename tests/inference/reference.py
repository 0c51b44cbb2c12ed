"""posteriordb reference posteriors (tests/data/posteriordb/) and the README's
criteria for a fit to count as recovering one."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import arviz as az
import numpy as np

POSTERIORDB = Path(__file__).resolve().parents[1] / "data" / "posteriordb"


def load(name: str) -> dict:
    with zipfile.ZipFile(POSTERIORDB / name) as z:
        return json.loads(z.read(z.namelist()[0]))


def reference(posterior: str) -> dict[str, tuple[float, float]]:
    """Reference posterior mean and sd of each parameter (Stan names)."""
    chains = load(f"{posterior}.draws.json.zip")
    out = {}
    for key in chains[0]:
        draws = np.concatenate([np.asarray(c[key], dtype=float) for c in chains])
        out[key] = (float(draws.mean()), float(draws.std(ddof=1)))
    return out


def check_nuts(draws_by_chain: dict[str, np.ndarray], posterior: str) -> list[str]:
    """Failures of the README's NUTS criteria: each mean within max(3 MCSE,
    0.1 reference sd) of the reference mean, each sd within 10%.

    ``draws_by_chain`` maps Stan-style names to arrays (chains, draws).
    """
    return check_against(draws_by_chain, reference(posterior))


def check_against(draws_by_chain: dict[str, np.ndarray], ref: dict[str, tuple[float, float]]) -> list[str]:
    """:func:`check_nuts` against the reference means and sds ``ref``
    (from posteriordb's draws, or from quadrature)."""
    failures = []
    for key, (mean, sd) in ref.items():
        x = np.asarray(draws_by_chain[key], dtype=float)
        mcse = float(az.mcse(x, method="mean"))
        got_mean, got_sd = float(x.mean()), float(x.std(ddof=1))
        if abs(got_mean - mean) > max(3 * mcse, 0.1 * sd):
            failures.append(f"{key}: mean {got_mean:.4g} vs reference {mean:.4g} (mcse {mcse:.3g}, sd {sd:.3g})")
        if abs(got_sd - sd) > 0.1 * sd:
            failures.append(f"{key}: sd {got_sd:.4g} vs reference {sd:.4g}")
    return failures


def check_variational(draws: dict[str, np.ndarray], posterior: str, tolerance: float = 0.25) -> list[str]:
    """Failures of the variational criterion: means within 0.25 reference sd."""
    failures = []
    for key, (mean, sd) in reference(posterior).items():
        got = float(np.asarray(draws[key], dtype=float).mean())
        if abs(got - mean) > tolerance * sd:
            failures.append(f"{key}: mean {got:.4g} vs reference {mean:.4g} (sd {sd:.3g})")
    return failures


def stan_names(samples: dict[str, np.ndarray], site: str, stan: str, event_ndim: int) -> dict[str, np.ndarray]:
    """Split a vector site into Stan's 1-based scalar names."""
    x = np.asarray(samples[site])
    if event_ndim == 0:
        return {stan: x}
    return {f"{stan}[{i + 1}]": x[..., i] for i in range(x.shape[-1])}
