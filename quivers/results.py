"""Fits saved as NetCDF, read back as fits.

:func:`save_fit` writes a :class:`~quivers.inference.fit.FitResult` as
the ArviZ ``InferenceData`` of :meth:`FitResult.to_inference_data`
(posterior with the marginalized latents' draws, sample statistics,
pointwise log likelihood, observed and constant data), so that any ArviZ
user can open it with ``arviz.from_netcdf``, plus one more group,
``fit_state``, holding what a fit needs to go on: the program's QVR source
and structure, the model's state, NUTS's adapted step sizes, mass matrices
and last points, or the SVI guide's parameters. :func:`load_fit` reads it
back into a ``FitResult`` that can summarize, predict and continue
(:meth:`FitResult.resume`).

The module sits on top of the layers (like :mod:`quivers.checkpoint`)
because loading builds the program from its QVR source.

Laws
----
- ``load_fit(path)`` after ``save_fit(result, path)`` has the same draws,
  sample statistics, data and summary as ``result``, bit for bit.
- Loading into a program whose source or structure differs from the saved
  one raises :class:`~quivers.errors.CheckpointError`, as checkpoints do.

Examples
--------
>>> import os, tempfile, torch
>>> from quivers.dsl import loads
>>> from quivers.inference import fit
>>> model = loads('''
... object Item : FinSet 4
... program p : Item -> Item
...     sample mu <- Normal(0.0, 1.0)
...     observe y : Item <- Normal(mu, 1.0)
... ''').morphism
>>> result = fit(model, {"y": torch.ones(4)}, steps=200, lr=0.05, num_samples=100, seed=0,
...              progress_bar=False)
>>> path = os.path.join(tempfile.mkdtemp(), "fit.nc")
>>> save_fit(result, path)
>>> again = load_fit(path)
>>> again.method, torch.equal(again.samples["mu"], result.samples["mu"])
('svi', True)
>>> again.choice == result.choice
True
"""

from __future__ import annotations

import dataclasses
import json
from os import PathLike
from typing import Any

import numpy as np
import torch

import quivers
from quivers.checkpoint import _model, signature, source_hash
from quivers.errors import CheckpointError, QuiversError, QuiversTypeError
from quivers.inference import guides as G
from quivers.inference.fit import FitResult
from quivers.inference.method import Choice
from quivers.programs import Program

__all__ = ["save_fit", "load_fit"]

FORMAT = "quivers-fit"
VERSION = 1
_STATS = {"acceptance_rate": "accept_prob"}


def save_fit(result: FitResult, path: str | PathLike[str]) -> None:
    """Write ``result`` to ``path`` as NetCDF (an ArviZ ``InferenceData``
    with a ``fit_state`` group).

    Raises
    ------
    QuiversTypeError
        The fit's input ``x`` is not None (a program's input is not data
        NetCDF keeps).
    """
    import xarray as xr

    if not isinstance(result, FitResult):
        raise QuiversTypeError(f"save_fit needs a FitResult, got {type(result).__name__}")
    if result.x is not None:
        raise QuiversTypeError("a fit with an input `x` cannot be saved: NetCDF keeps data, not inputs")
    model = result.model
    try:
        idata = result.to_inference_data()
    except QuiversError:  # a pointwise log likelihood the model cannot give
        idata = result.to_inference_data(log_likelihood=False)
    state: dict[str, Any] = {}
    attrs: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "quivers": quivers.__version__,
        "method": result.method,
        "choice": json.dumps(None if result.choice is None else dataclasses.asdict(result.choice)),
        "source": model.source if model.source is not None else "",
        "source_sha256": source_hash(model.source) if model.source is not None else "",
        "signature": json.dumps(signature(model)),
        "seed": -1 if result.seed is None else int(result.seed),
        "diagnostics": json.dumps(list(result.diagnostics)),
        "model_state": json.dumps(_tensors(state, "model", model.state_dict())),
        "losses": json.dumps([float(v) for v in result.losses]),
    }
    if result.adaptation is not None:
        tensors = {k: v for k, v in result.adaptation.items() if isinstance(v, torch.Tensor)}
        attrs["adaptation"] = json.dumps(_tensors(state, "adaptation", tensors))
        attrs["adaptation_numbers"] = json.dumps(
            {k: v for k, v in result.adaptation.items() if not isinstance(v, torch.Tensor)}
        )
    if result.guide is not None and result.guide.rebuildable:  # a composed guide: its draws are kept, not it
        guide = result.guide
        covered = set(guide.layout.names) | {s.name for s in guide.discrete_sites}
        attrs["guide"] = json.dumps({
            "class": type(guide).__name__,
            "observed_names": sorted(s.name for s in model.latent_sites() if s.name not in covered),
            "init_scale": guide.init_scale,
            "options": guide.options(),
            "state": _tensors(state, "guide", guide.state_dict()),
        })
    idata.add_groups({"fit_state": xr.Dataset(state, attrs=attrs)}, warn_on_custom_groups=False)
    idata.to_netcdf(str(path), engine="h5netcdf")


def _tensors(out: dict[str, Any], prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, str]:
    """Add ``tensors`` to the dataset ``out`` under safe variable names;
    return the map from their names to those."""
    names = {}
    for i, (name, t) in enumerate(tensors.items()):
        key = f"{prefix}_{i}"
        array = t.detach().cpu().numpy()
        out[key] = ([f"{key}_dim_{d}" for d in range(array.ndim)], array)
        names[name] = key
    return names


def load_fit(path: str | PathLike[str], model: Program | str | None = None) -> FitResult:
    """Read a fit written by :func:`save_fit`.

    Parameters
    ----------
    model
        The program to load into (its source and structure must be the
        saved ones), QVR source to build it from, or None to build it from
        the saved source.

    Raises
    ------
    CheckpointError
        The file is not a saved fit, or the program differs from the saved
        one; the message says what changed.
    """
    import arviz as az

    try:
        idata = az.from_netcdf(str(path), engine="h5netcdf")
    except FileNotFoundError:
        raise CheckpointError(f"no saved fit at `{path}`") from None
    except Exception as err:  # xarray and h5py raise several kinds for a file that is no NetCDF
        raise CheckpointError(f"`{path}` is not a saved fit ({type(err).__name__})") from None
    state = getattr(idata, "fit_state", None)
    if state is None or state.attrs.get("format") != FORMAT:
        raise CheckpointError(f"`{path}` is not a saved quivers fit", hint="it has no `fit_state` group")
    attrs = state.attrs
    if int(attrs["version"]) != VERSION:
        raise CheckpointError(f"`{path}` is a version {attrs['version']} fit; this quivers reads version {VERSION}")
    record = {
        "source": attrs["source"] or None,
        "source_sha256": attrs["source_sha256"] or None,
        "signature": json.loads(attrs["signature"]),
        "model": _read_tensors(state, json.loads(attrs["model_state"])),
    }
    program = _model(record, model, caller="load_fit")
    program.load_state_dict(record["model"])
    sites = program.sites
    posterior = {k: torch.as_tensor(v.values) for k, v in idata.posterior.data_vars.items()}
    samples = {k: v for k, v in posterior.items() if sites[k].kind not in ("marginal", "deterministic")}
    latents = {k: v for k, v in posterior.items() if sites[k].kind == "marginal"}
    observations = {}
    for group in ("observed_data", "constant_data"):
        if hasattr(idata, group):
            observations.update({k: torch.as_tensor(v.values) for k, v in getattr(idata, group).data_vars.items()})
    stats = None
    if hasattr(idata, "sample_stats"):
        stats = {_STATS.get(k, k): torch.as_tensor(v.values) for k, v in idata.sample_stats.data_vars.items()}
    adaptation = None
    if "adaptation" in attrs:
        adaptation = _read_tensors(state, json.loads(attrs["adaptation"]))
        adaptation.update(json.loads(attrs["adaptation_numbers"]))
    result = FitResult(
        program, str(attrs["method"]), samples, observations, None,
        guide=_guide(state, json.loads(attrs["guide"]), program) if "guide" in attrs else None,
        losses=json.loads(attrs["losses"]), diagnostics=json.loads(attrs["diagnostics"]),
        sample_stats=stats, adaptation=adaptation, seed=None if int(attrs["seed"]) < 0 else int(attrs["seed"]),
    )
    choice = json.loads(attrs.get("choice", "null"))
    result.choice = None if choice is None else Choice(**choice)
    result._latents = latents if latents else None
    return result


def _read_tensors(state: Any, names: dict[str, str]) -> dict[str, torch.Tensor]:
    return {name: torch.as_tensor(np.asarray(state[key].values)) for name, key in names.items()}


def _guide(state: Any, record: dict[str, Any], model: Program) -> G.AutoGuide:
    cls = getattr(quivers.inference, record["class"], None)
    if not (isinstance(cls, type) and issubclass(cls, G.AutoGuide)):
        raise CheckpointError(f"the saved guide class `{record['class']}` is not a quivers guide")
    kwargs: dict[str, Any] = {"init_scale": record["init_scale"], **record.get("options", {})}
    if record.get("rank") is not None:  # written by versions before options were saved
        kwargs["rank"] = record["rank"]
    guide = cls(model, observed_names=record["observed_names"], **kwargs)
    guide.load_state_dict(_read_tensors(state, record["state"]))
    return guide
