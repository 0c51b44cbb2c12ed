"""Posterior draws as ArviZ data, and ArviZ's summary of them.

quivers does not compute R-hat or effective sample sizes itself: draws are
handed to ArviZ (:func:`to_inference_data`) and the summary is ArviZ's
table with ArviZ's rounding (:func:`summary`). The warnings drawn from
these diagnostics are in :mod:`quivers.inference.convergence`.

Conventions: every array of posterior draws, sample statistics, pointwise
log likelihoods or predictive draws has leading dimensions ``(chains,
draws)``; observed and constant data have none. ``dims`` names the other
axes (a program's FinSets) and ``coords`` gives their coordinates. The statistic
``accept_prob`` is stored under ArviZ's name ``acceptance_rate``; the other
statistic names (``diverging``, ``energy``, ``lp``, ``n_steps``,
``step_size``, ``tree_depth``) already are ArviZ's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from quivers.errors import InvalidValueError, QuiversTypeError, ShapeError, UnknownNameError

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
    constant_data: Mapping[str, Any] | None = None,
    prior: Mapping[str, Any] | None = None,
    prior_predictive: Mapping[str, Any] | None = None,
    posterior_predictive: Mapping[str, Any] | None = None,
    dims: Mapping[str, Sequence[str]] | None = None,
    log_likelihood_dims: Mapping[str, Sequence[str]] | None = None,
    coords: Mapping[str, Sequence[Any]] | None = None,
    attrs: Mapping[str, Any] | None = None,
) -> Any:
    """Build an ``arviz.InferenceData`` from draws grouped by chain.

    Parameters
    ----------
    samples_by_chain
        Site name to draws of shape ``(chains, draws, ...)`` (tensors or
        arrays): the ``posterior`` group.
    sample_stats
        Statistic name to values of shape ``(chains, draws)``.
    observed_data, constant_data
        Name to data, any shape.
    log_likelihood
        Observed name to pointwise log likelihoods ``(chains, draws, ...)``.
    prior, prior_predictive, posterior_predictive
        Name to draws ``(chains, draws, ...)``.
    dims
        Name to the names of its axes after ``(chains, draws)`` (or of all
        its axes, for data), in every group; ArviZ names axes not given
        ``NAME_dim_I``.
    log_likelihood_dims
        Dims of the pointwise log likelihoods where they differ from their
        observation's (a grouped mixture's terms are per group).
    coords
        Dimension name to its coordinates.
    attrs
        Attributes of the ``posterior`` group.

    Examples
    --------
    >>> draws = {"mu": torch.zeros(2, 50), "theta": torch.zeros(2, 50, 3)}
    >>> idata = to_inference_data(draws, sample_stats={"accept_prob": torch.ones(2, 50)},
    ...                           dims={"theta": ["K"]})
    >>> idata.groups()
    ['posterior', 'sample_stats']
    >>> dict(idata.posterior["theta"].sizes)
    {'chain': 2, 'draw': 50, 'K': 3}
    >>> idata.posterior["K"].values.tolist()
    [0, 1, 2]
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
    draws = {
        "posterior": posterior,
        "sample_stats": _group("sample_stats", sample_stats, lead, _ARVIZ_STAT_NAMES),
        "log_likelihood": _group("log_likelihood", log_likelihood, lead),
        "posterior_predictive": _group("posterior_predictive", posterior_predictive, None),
        "prior": _group("prior", prior, None),
        "prior_predictive": _group("prior_predictive", prior_predictive, None),
    }
    data = {
        "observed_data": _group("observed_data", observed_data, None),
        "constant_data": _group("constant_data", constant_data, None),
    }
    dims = {k: list(v) for k, v in (dims or {}).items()}
    ll_dims = dims | {k: list(v) for k, v in (log_likelihood_dims or {}).items()}
    groups = {}
    for group, values in draws.items():
        if values:
            groups[group] = az.dict_to_dataset(
                values, coords=_coords(values, ll_dims if group == "log_likelihood" else dims, coords, 2),
                dims=_dims(values, ll_dims if group == "log_likelihood" else dims, 2),
                attrs=dict(attrs or {}) if group == "posterior" else None,
            )
    for group, values in data.items():
        if values:
            groups[group] = az.dict_to_dataset(
                values, coords=_coords(values, dims, coords, 0), dims=_dims(values, dims, 0), default_dims=[]
            )
    return az.InferenceData(**groups)


def _dims(values: Mapping[str, np.ndarray], dims: Mapping[str, list[str]], lead: int) -> dict[str, list[str]]:
    """The dims of each array whose trailing axes ``dims`` names; leading
    extra axes (a batch of data sets) keep ArviZ's ``NAME_dim_I``."""
    out = {}
    for name, array in values.items():
        given = dims.get(name)
        if not given:
            continue
        rank = array.ndim - lead
        if rank < len(given):
            continue  # a scalar stand-in for a site (a term no draw changes): ArviZ's names
        out[name] = [f"{name}_dim_{i}" for i in range(rank - len(given))] + list(given)
    return out


def _coords(
    values: Mapping[str, np.ndarray],
    dims: Mapping[str, list[str]],
    coords: Mapping[str, Sequence[Any]] | None,
    lead: int,
) -> dict[str, list[Any]]:
    """Coordinates of the named dims of ``values``: those given, else indices."""
    out: dict[str, list[Any]] = {}
    for name, names in _dims(values, dims, lead).items():
        for axis, dim in zip(range(lead, values[name].ndim), names):
            if dim in out or dim.startswith(f"{name}_dim_"):
                continue
            given = (coords or {}).get(dim)
            out[dim] = list(given) if given is not None else list(range(values[name].shape[axis]))
    return out


def summary(data: Any, *, hdi_prob: float | None = None, var_names: Sequence[str] | None = None) -> Any:
    """ArviZ's summary table of the posterior, as ArviZ rounds it.

    The columns are ArviZ's: ``mean``, ``sd``, the ends of the highest
    density interval of probability ``hdi_prob`` (default 0.94:
    ``hdi_3%``, ``hdi_97%``), ``mcse_mean``, ``mcse_sd``, ``ess_bulk``,
    ``ess_tail``, ``r_hat``; the rows are ArviZ's labels, ``mu_k[0]`` for
    the coordinate 0 of the first named axis of ``mu_k``.

    ``data`` is an ``arviz.InferenceData`` or draws grouped by chain (as for
    :func:`to_inference_data`). Returns a ``pandas.DataFrame``.

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> table = summary({"mu": torch.randn(4, 200, generator=g)})
    >>> list(table.columns)
    ['mean', 'sd', 'hdi_3%', 'hdi_97%', 'mcse_mean', 'mcse_sd', 'ess_bulk', 'ess_tail', 'r_hat']
    >>> bool(table.loc["mu", "r_hat"] <= 1.01)
    True
    """
    import arviz as az

    if hdi_prob is not None and not (isinstance(hdi_prob, float) and 0.0 < hdi_prob < 1.0):
        raise InvalidValueError(f"`hdi_prob` must lie strictly between 0 and 1, got {hdi_prob!r}")
    if not isinstance(data, az.InferenceData):
        data = to_inference_data(data)
    names = list(data.posterior.data_vars)
    if var_names is not None:
        unknown = [n for n in var_names if n not in names]
        if unknown:
            raise UnknownNameError(
                f"no posterior draws of {unknown}", name=unknown[0], candidates=names
            )
        names = list(var_names)
    # draws that do not vary (a MAP fit's point) have no R-hat or ESS:
    # ArviZ says NaN, which is the answer, and numpy warns of 0/0 on the way
    with np.errstate(invalid="ignore", divide="ignore"):
        return az.summary(data, var_names=names, kind="all", hdi_prob=hdi_prob)
