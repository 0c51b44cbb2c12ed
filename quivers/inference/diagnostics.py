"""Posterior draws as ArviZ data, and their convergence diagnostics.

quivers does not compute R-hat or effective sample sizes itself: draws are
handed to ArviZ (:func:`to_inference_data`) and everything else is ArviZ's
(:func:`summary` only chooses and orders its columns).

Conventions: every array of posterior draws, sample statistics or pointwise
log likelihoods has leading dimensions ``(chains, draws)``. The statistic
``accept_prob`` is stored under ArviZ's name ``acceptance_rate``; the other
statistic names (``diverging``, ``energy``, ``lp``, ``n_steps``,
``step_size``, ``tree_depth``) already are ArviZ's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from quivers.errors import InvalidValueError, QuiversTypeError, ShapeError

__all__ = ["to_inference_data", "summary"]

_ARVIZ_STAT_NAMES = {"accept_prob": "acceptance_rate"}


def _to_numpy(group: str, name: str, value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    try:
        return np.asarray(value)
    except (TypeError, ValueError) as err:
        raise QuiversTypeError(
            f"{group} `{name}` of type {type(value).__name__} is not an array"
        ) from err


def _group(
    group: str,
    values: Mapping[str, Any] | None,
    lead: tuple[int, int] | None,
    rename: Mapping[str, str] | None = None,
) -> dict[str, np.ndarray] | None:
    """Convert one group to numpy, checking the ``(chains, draws)`` dimensions
    when ``lead`` is given."""
    if values is None:
        return None
    if not isinstance(values, Mapping):
        raise QuiversTypeError(
            f"`{group}` must be a mapping from names to arrays, got {type(values).__name__}"
        )
    out = {}
    for name, value in values.items():
        array = _to_numpy(group, name, value)
        if lead is not None and array.shape[:2] != lead:
            raise ShapeError(
                f"{group} `{name}` has shape {array.shape}; expected leading dimensions "
                f"{lead} (chains, draws)"
            )
        out[(rename or {}).get(name, name)] = array
    return out


def to_inference_data(
    samples_by_chain: Mapping[str, Any],
    *,
    sample_stats: Mapping[str, Any] | None = None,
    observed_data: Mapping[str, Any] | None = None,
    log_likelihood: Mapping[str, Any] | None = None,
) -> Any:
    """Build an ``arviz.InferenceData`` from draws grouped by chain.

    Parameters
    ----------
    samples_by_chain
        Site name to draws of shape ``(chains, draws, ...)`` (tensors or arrays).
    sample_stats
        Statistic name to values of shape ``(chains, draws)``.
    observed_data
        Observed name to its data, any shape.
    log_likelihood
        Observed name to pointwise log likelihoods ``(chains, draws, ...)``.

    Examples
    --------
    >>> draws = {"mu": torch.zeros(2, 50), "theta": torch.zeros(2, 50, 3)}
    >>> idata = to_inference_data(draws, sample_stats={"accept_prob": torch.ones(2, 50)})
    >>> idata.groups()
    ['posterior', 'sample_stats']
    >>> dict(idata.posterior["theta"].sizes)
    {'chain': 2, 'draw': 50, 'theta_dim_0': 3}
    >>> list(idata.sample_stats.data_vars)
    ['acceptance_rate']
    """
    import arviz as az

    posterior = _group("samples_by_chain", samples_by_chain, None)
    if not posterior:
        raise InvalidValueError("`samples_by_chain` holds no sites")
    leads = {name: a.shape[:2] for name, a in posterior.items()}
    lead = next(iter(leads.values()))
    for name, shape in leads.items():
        if len(shape) < 2 or shape != lead:
            raise ShapeError(
                f"site `{name}` has draws of shape {posterior[name].shape}; every site needs "
                f"the same leading dimensions (chains, draws), here {lead}"
            )
    return az.from_dict(
        posterior=posterior,
        sample_stats=_group("sample_stats", sample_stats, lead, _ARVIZ_STAT_NAMES),
        observed_data=_group("observed_data", observed_data, None),
        log_likelihood=_group("log_likelihood", log_likelihood, lead),
    )


def summary(data: Any, *, prob: float = 0.9, var_names: list[str] | None = None) -> Any:
    """ArviZ's summary of the posterior: mean, sd, the central ``prob``
    interval's quantiles and the median, R-hat, bulk and tail ESS.

    ``data`` is an ``arviz.InferenceData`` or draws grouped by chain (as for
    :func:`to_inference_data`). Returns a ``pandas.DataFrame``.

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> table = summary({"mu": torch.randn(4, 200, generator=g)})
    >>> list(table.columns)
    ['mean', 'sd', '5%', '50%', '95%', 'r_hat', 'ess_bulk', 'ess_tail']
    >>> bool(table.loc["mu", "r_hat"] < 1.01)
    True
    """
    import arviz as az

    if not (isinstance(prob, float) and 0.0 < prob < 1.0):
        raise InvalidValueError(f"`prob` must lie strictly between 0 and 1, got {prob!r}")
    if not isinstance(data, az.InferenceData):
        data = to_inference_data(data)
    full = az.summary(data, var_names=var_names, kind="all", round_to="none")
    quantiles = az.summary(
        data, var_names=var_names, kind="stats", stat_focus="median", hdi_prob=prob, round_to="none"
    )
    low, high = quantiles.columns[2], quantiles.columns[3]
    table = full[["mean", "sd"]].copy()
    table[f"{100 * (1 - prob) / 2:g}%"] = quantiles[low]
    table["50%"] = quantiles["median"]
    table[f"{100 * (1 + prob) / 2:g}%"] = quantiles[high]
    return table.join(full[["r_hat", "ess_bulk", "ess_tail"]])
