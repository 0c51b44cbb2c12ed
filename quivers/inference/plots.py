"""Plots of a fit through ArviZ: trace, posterior densities, pairs, and a
posterior predictive check.

Every function takes a :class:`~quivers.inference.FitResult` (or, except
:func:`plot_ppc`, an ``arviz.InferenceData``) and returns a matplotlib
``Figure``; :func:`save_plots` writes them all as PNG files. Nothing here
opens a window: with no display, matplotlib draws with its Agg backend.

The posterior predictive check draws every observed site afresh from the
model under posterior draws of the latents (a marginalized latent is drawn
from its prior given those draws, so a mixture's replicates are drawn from
the mixture) and overlays their densities on the data's: for a mixture the
number and placement of the modes is what to look at.

Examples
--------
>>> import torch
>>> from quivers.categories.finset import FinSet
>>> from quivers.distributions import Normal
>>> from quivers.inference import fit
>>> from quivers.programs import Program, observe, sample, var
>>> I = FinSet("I", 20)
>>> prog = Program("p", I, I, [sample("mu", None, Normal(0.0, 1.0)),
...                            observe("y", I, Normal(var("mu"), 1.0))])
>>> result = fit(prog, {"y": torch.randn(20)}, steps=20, num_samples=50, seed=0, progress_bar=False)
>>> fig = plot_ppc(result, num_samples=20, seed=0)
>>> fig.axes[0].get_xlabel()
'y'
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from quivers.errors import QuiversTypeError, UnknownNameError

__all__ = ["plot_trace", "plot_posterior", "plot_pair", "plot_ppc", "save_plots", "PLOTS", "predictive_data"]


@contextmanager
def _arviz(panels: int = 0) -> Iterator[Any]:
    """ArviZ, allowed to draw ``panels`` subplots (it stops at 40 and warns
    past them: the plots here ask for what they draw), without the
    deprecation warning its matplotlib backend raises on matplotlib 3.11
    (a call inside ArviZ that nothing here can change)."""
    import arviz as az

    with warnings.catch_warnings(), az.rc_context(rc={"plot.max_subplots": max(40, int(panels))}):
        warnings.filterwarnings("ignore", message="Passing a dict or None as alias_mapping")
        yield az


def _scalars(idata: Any, names: Sequence[str] | None, coords: dict | None = None) -> int:
    names = list(idata.posterior.data_vars) if names is None else names
    return sum(int(idata.posterior[n].sel(coords or {})[0, 0].size) for n in names)


def _idata(data: Any) -> Any:
    import arviz as az

    from quivers.inference.fit import FitResult

    if isinstance(data, FitResult):
        # the sampled latents only: a marginalized latent's exact draws (one
        # per row) beside them would be a panel of noise per row
        idata = data.to_inference_data(log_likelihood=False)
        keep = list(data.samples)
        return az.InferenceData(**{g: idata[g][keep] if g == "posterior" else idata[g] for g in idata.groups()})
    if isinstance(data, az.InferenceData):
        return data
    raise QuiversTypeError(f"expected a FitResult or arviz.InferenceData, got {type(data).__name__}")


def _figure(axes: Any) -> Any:
    import numpy as np

    return np.asarray(axes).ravel()[0].figure


def _var_names(idata: Any, var_names: Sequence[str] | None) -> list[str] | None:
    if var_names is None:
        return None
    known = list(idata.posterior.data_vars)
    for name in var_names:
        if name not in known:
            raise UnknownNameError(f"no posterior draws of `{name}`", name=name, candidates=known)
    return list(var_names)


def plot_trace(data: Any, var_names: Sequence[str] | None = None) -> Any:
    """Trace and marginal density of each latent, one row per latent."""
    idata = _idata(data)
    names = _var_names(idata, var_names)
    with _arviz(2 * len(names or idata.posterior.data_vars)) as az:
        return _figure(az.plot_trace(idata, var_names=names, compact=True))


def plot_posterior(data: Any, var_names: Sequence[str] | None = None, prob: float = 0.9) -> Any:
    """The posterior density of each latent with its mean and central
    interval, one panel per coordinate."""
    idata = _idata(data)
    names = _var_names(idata, var_names)
    with _arviz(_scalars(idata, names)) as az:
        return _figure(az.plot_posterior(idata, var_names=names, hdi_prob=prob))


def plot_pair(data: Any, var_names: Sequence[str] | None = None, max_variables: int = 6) -> Any:
    """Scatter plots of the latents' draws against each other.

    Only the first ``max_variables`` scalar coordinates are drawn unless
    ``var_names`` says which (of a first latent larger than that, its
    first coordinates); a grid of hundreds of panels helps no one.
    """
    idata = _idata(data)
    names = _var_names(idata, var_names)
    coords = None
    if names is None:
        names, count = [], 0
        for name, array in idata.posterior.data_vars.items():
            size = int(array[0, 0].size)
            if count + size > max_variables and names:
                break
            names.append(name)
            count += size
            if count > max_variables and array.ndim > 2:
                dim = array.dims[2]
                coords = {dim: array[dim].values[:max_variables]}
    total = _scalars(idata, names, coords)
    if total < 2:
        raise QuiversTypeError("a pair plot needs at least two scalar latents")
    with _arviz(total * total) as az:
        axes = az.plot_pair(idata, var_names=names, coords=coords, kind="scatter", marginals=True,
                            scatter_kwargs={"alpha": 0.3})
    return _figure(axes)


def predictive_data(result: Any, num_samples: int = 100, seed: int | None = None) -> Any:
    """``arviz.InferenceData`` with a ``posterior_predictive`` group (draws
    of every observed site under posterior draws of the latents) and the
    ``observed_data`` they replicate."""
    import arviz as az

    from quivers.inference.fit import FitResult
    from quivers.inference.predictive import Predictive

    if not isinstance(result, FitResult):
        raise QuiversTypeError(f"a posterior predictive check needs a FitResult, got {type(result).__name__}")
    model = result.model
    observed = [s.name for s in model.observed_sites if s.name in result.observations]
    if not observed:
        raise QuiversTypeError(f"program `{model.name}` observes nothing to check")
    flat = {k: v for k, v in result.flat_samples().items() if model.sites[k].kind == "latent"}
    total = next(iter(flat.values())).shape[0] if flat else num_samples
    take = min(int(num_samples), int(total))
    step = max(int(total) // take, 1)
    latents = {k: v[::step][:take] for k, v in flat.items()}
    if seed is not None:
        torch.manual_seed(seed)
    draws = Predictive(model, posterior_samples=latents, num_samples=take, return_sites=observed)(
        result.x, result.observations
    ) if latents else Predictive(model, num_samples=take, return_sites=observed)(result.x, result.observations)
    replicated, data = {}, {}
    for name in observed:
        site = model.sites[name]
        y = torch.as_tensor(result.observations[name])
        y = y.reshape(y.shape[y.dim() - len(site.shape):]) if y.dim() > len(site.shape) and y.shape[0] == 1 else y
        data[name] = y.detach().cpu().numpy()
        rep = draws[name].reshape((1, -1) + tuple(site.shape))
        replicated[name] = rep.detach().cpu().numpy()
    return az.from_dict(posterior_predictive=replicated, observed_data=data)


def plot_ppc(result: Any, num_samples: int = 100, seed: int | None = None) -> Any:
    """Densities of replicated data over the data's, one panel per observed site."""
    idata = predictive_data(result, num_samples, seed)
    drawn = int(next(iter(idata.posterior_predictive.data_vars.values())).shape[1])
    with _arviz(len(idata.posterior_predictive.data_vars)) as az:
        axes = az.plot_ppc(idata, num_pp_samples=drawn, random_seed=seed)
    return _figure(axes)


PLOTS = {"trace": plot_trace, "posterior": plot_posterior, "pair": plot_pair, "ppc": plot_ppc}
"""The plots :func:`save_plots` writes, by file stem."""


def save_plots(
    result: Any, directory: str | Path, kinds: Iterable[str] = tuple(PLOTS), dpi: int = 100
) -> list[Path]:
    """Write each plot of ``kinds`` as ``directory/<kind>.png``.

    A plot that does not apply (a pair plot of one scalar, a check of a
    program that observes nothing) is left out; the paths written are
    returned.
    """
    import matplotlib.pyplot as plt

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for kind in kinds:
        if kind not in PLOTS:
            raise UnknownNameError(f"unknown plot `{kind}`", name=kind, candidates=PLOTS)
        try:
            fig = PLOTS[kind](result)
        except QuiversTypeError:
            continue
        path = directory / f"{kind}.png"
        fig.savefig(path, dpi=dpi, bbox_inches="tight")
        plt.close(fig)
        written.append(path)
    return written
