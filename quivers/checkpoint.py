"""Checkpoints: a fitted model, its guide and optimizer in one file.

:func:`save` writes the program's QVR source and its SHA-256, the
program's structure (its name, domain, codomain, effects and every site's
kind, axes, shape and family), the model's and the guide's state, the
optimizer's state, the ELBO's running baseline and, by default, torch's
global random state. :func:`load` reads it back, into objects you pass or
into ones it builds from the stored source, and refuses, with a
:class:`~quivers.errors.CheckpointError` that says what changed, to load
into a program that is not the one saved.

The module sits on top of the layers (like the CLI) because loading from
source compiles QVR.

Laws
----
- Round trip: after ``save(path, model, guide, optimizer)`` and
  ``ck = load(path)``, ``ck.guide.median()`` equals ``guide.median()``
  bit for bit, and the next SVI step with ``ck``'s objects gives the same
  loss, bit for bit, as the next step with the originals (the random
  state is restored with the rest).
- ``load(path, model)`` with a model whose source or structure differs
  from the saved one raises; it never loads state into the wrong program.

The file is a ``torch.save`` archive of tensors, numbers and strings only,
read back with ``weights_only=True``: loading a checkpoint runs no code
from it.

Examples
--------
>>> import os, tempfile, torch
>>> from quivers.dsl import loads
>>> from quivers.inference import ELBO, SVI, AutoNormalGuide
>>> src = '''
... object Item : FinSet 3
... program p : Item -> Item
...     sample mu <- Normal(0.0, 1.0)
...     observe y : Item <- Normal(mu, 1.0)
... '''
>>> model = loads(src).morphism
>>> guide = AutoNormalGuide(model, observed_names={"y"})
>>> optimizer = torch.optim.Adam(guide.parameters(), lr=0.1)
>>> svi = SVI(model, guide, optimizer, ELBO())
>>> _ = [svi.step(None, {"y": torch.ones(3)}) for _ in range(5)]
>>> path = os.path.join(tempfile.mkdtemp(), "p.qvrck")
>>> save(path, model, guide, optimizer)
>>> ck = load(path)
>>> torch.equal(ck.guide.median()["mu"], guide.median()["mu"])
True
>>> changed = loads(src.replace("Normal(0.0, 1.0)", "Normal(0.0, 2.0)")).morphism
>>> load(path, changed)
Traceback (most recent call last):
...
quivers.errors.CheckpointError: the checkpoint was saved from a different QVR source: line 4 was `sample mu <- Normal(0.0, 1.0)` and is now `sample mu <- Normal(0.0, 2.0)`; load it into the program it was saved from, or refit
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from os import PathLike
from typing import Any

import torch

import quivers
from quivers.dsl import loads
from quivers.errors import CheckpointError, QuiversTypeError
from quivers.inference.elbo import ELBO
from quivers.inference.guides import AutoGuide
from quivers.programs import Program

__all__ = ["save", "load", "Checkpoint", "signature", "source_hash"]

FORMAT = "quivers-checkpoint"
VERSION = 1


@dataclass
class Checkpoint:
    """What :func:`load` restored. ``extra`` is the dict given to
    :func:`save`; ``guide``, ``optimizer`` and ``elbo`` are None when the
    checkpoint holds none."""

    model: Program
    guide: AutoGuide | None = None
    optimizer: torch.optim.Optimizer | None = None
    elbo: ELBO | None = None
    source: str | None = None
    source_sha256: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def source_hash(source: str) -> str:
    """The SHA-256 of QVR source, as hex.

    Examples
    --------
    >>> source_hash("object K : FinSet 2\\n")[:12]
    'a93b85fde48d'
    """
    return hashlib.sha256(source.encode("utf-8")).hexdigest()


def signature(model: Program) -> dict[str, Any]:
    """The structure of ``model`` that a checkpoint must match: its name,
    domain, codomain and effects, and each site's kind, axes, shape,
    family and value set.

    Examples
    --------
    >>> from quivers.dsl import loads
    >>> m = loads("object K : FinSet 2\\nprogram p : K -> K\\n    sample mu : K <- Normal(0.0, 1.0)\\n").morphism
    >>> signature(m)["sites"]["mu"]
    ['latent', ['K'], [2], 'Normal', None]
    """
    return {
        "name": model.name,
        "dom": [model.dom.name, model.dom.size],
        "cod": [model.cod.name, model.cod.size],
        "effects": sorted(e.name for e in model.effects),
        "sites": {
            name: [s.kind, list(s.dims), list(s.shape), s.family.name if s.family is not None else None, s.values_in]
            for name, s in sorted(model.sites.items())
        },
    }


# ---------------------------------------------------------------- save


def save(
    path: str | PathLike[str],
    model: Program,
    guide: AutoGuide | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    *,
    source: str | None = None,
    elbo: ELBO | None = None,
    rng: bool = True,
    extra: Mapping[str, Any] | None = None,
) -> None:
    """Write ``model`` (and ``guide``, ``optimizer``, ``elbo``) to ``path``.

    Parameters
    ----------
    source
        The program's QVR source; by default the source it was loaded from
        (``model.source``), if any.
    rng
        Also store torch's global random state, so that a run continued
        from the checkpoint draws what the original would have drawn.
    extra
        Anything else to keep (the step count, the losses): tensors,
        numbers, strings, and lists and dicts of them.
    """
    if not isinstance(model, Program):
        raise QuiversTypeError(f"save needs a quivers Program, got {type(model).__name__}")
    source = source if source is not None else getattr(model, "source", None)
    record: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "quivers": quivers.__version__,
        "torch": str(torch.__version__),
        "source": source,
        "source_sha256": source_hash(source) if source is not None else None,
        "signature": signature(model),
        "model": model.state_dict(),
        "guide": None if guide is None else _guide_record(guide, model),
        "optimizer": None if optimizer is None else _optimizer_record(optimizer, model, guide),
        "elbo": None if elbo is None else [elbo.num_particles, elbo.baseline_decay, elbo._baseline],
        "rng": torch.get_rng_state() if rng else None,
        "extra": dict(extra or {}),
    }
    torch.save(record, path)


def _guide_record(guide: AutoGuide, model: Program) -> dict[str, Any]:
    if not isinstance(guide, AutoGuide):
        raise QuiversTypeError(f"guide must be a quivers AutoGuide, got {type(guide).__name__}")
    if guide.model is not model:
        raise QuiversTypeError("the guide was built for another model than the one being saved")
    # The latents the guide leaves out are those it was told are observed.
    covered = set(guide.layout.names) | {s.name for s in guide.discrete_sites}
    observed = sorted(s.name for s in model.latent_sites() if s.name not in covered)
    kwargs: dict[str, Any] = {"init_scale": guide.init_scale, **guide.options()}
    return {
        "class": type(guide).__name__,
        "observed_names": observed,
        "kwargs": kwargs,
        "layout": [[s.name, s.start, s.size] for s in guide.layout.slices],
        "state": guide.state_dict(),
    }


def _parameter_names(model: Program, guide: AutoGuide | None) -> dict[int, str]:
    names = {id(p): f"model.{n}" for n, p in model.named_parameters()}
    if guide is not None:
        names.update({id(p): f"guide.{n}" for n, p in guide.named_parameters()})
    return names


def _optimizer_record(optimizer: torch.optim.Optimizer, model: Program, guide: AutoGuide | None) -> dict[str, Any]:
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise QuiversTypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
    names = _parameter_names(model, guide)
    groups = []
    for group in optimizer.param_groups:
        missing = [tuple(p.shape) for p in group["params"] if id(p) not in names]
        if missing:
            raise QuiversTypeError(
                f"the optimizer holds parameters of shapes {missing} that belong to neither the model nor the guide",
                hint="a checkpoint restores the parameters of the model and the guide only",
            )
        groups.append([names[id(p)] for p in group["params"]])
    return {"class": type(optimizer).__name__, "params": groups, "state": optimizer.state_dict()}


# ---------------------------------------------------------------- load


def load(
    path: str | PathLike[str],
    model_or_source: Program | str | None = None,
    guide: AutoGuide | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    *,
    elbo: ELBO | None = None,
    restore_rng: bool = True,
) -> Checkpoint:
    """Read the checkpoint at ``path``.

    Parameters
    ----------
    model_or_source
        The program to load into (its source and structure must be the
        saved ones), QVR source to build it from (it must hash to the
        saved source's SHA-256), or None to build it from the saved source.
    guide, optimizer, elbo
        Objects to load the saved state into; built from the checkpoint
        when None and the checkpoint holds one.
    restore_rng
        Set torch's global random state to the saved one (after building
        everything, which draws from it).

    Raises
    ------
    CheckpointError
        The file is not a quivers checkpoint, or the program, guide or
        optimizer differ from the saved ones; the message says what changed.
    """
    record = _read(path)
    model = _model(record, model_or_source)
    out = Checkpoint(model, source=record["source"], source_sha256=record["source_sha256"], extra=record["extra"])
    model.load_state_dict(record["model"])
    if record["guide"] is not None:
        out.guide = _restore_guide(record["guide"], model, guide)
    elif guide is not None:
        raise CheckpointError("the checkpoint holds no guide to load into `guide`")
    if record["optimizer"] is not None:
        out.optimizer = _restore_optimizer(record["optimizer"], model, out.guide, optimizer)
    elif optimizer is not None:
        raise CheckpointError("the checkpoint holds no optimizer state to load into `optimizer`")
    if record["elbo"] is not None:
        num_particles, decay, baseline = record["elbo"]
        out.elbo = elbo if elbo is not None else ELBO(num_particles, decay)
        out.elbo._baseline = baseline
    if restore_rng and record["rng"] is not None:
        torch.set_rng_state(record["rng"])
    return out


def _read(path: str | PathLike[str]) -> dict[str, Any]:
    try:
        record = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"no checkpoint at `{path}`") from None
    except Exception as err:  # torch raises several kinds for a file that is no archive
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise CheckpointError(f"`{path}` is not a quivers checkpoint ({type(err).__name__}: {first})") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise CheckpointError(f"`{path}` is not a quivers checkpoint")
    if record.get("version") != VERSION:
        raise CheckpointError(
            f"`{path}` is a version {record.get('version')} checkpoint; this quivers reads version {VERSION}"
        )
    return record


def _model(record: dict[str, Any], given: Program | str | None, caller: str = "load") -> Program:
    saved_source, saved_hash = record["source"], record["source_sha256"]
    if saved_source is not None and saved_hash is not None and source_hash(saved_source) != saved_hash:
        # Otherwise an edited stored source loads silently into the program
        # it was saved from (whose hash matches), and alone it is reported
        # as "a different QVR source" that differs in nothing.
        raise CheckpointError(
            "the checkpoint's QVR source does not match the SHA-256 saved with it: the file was altered or is corrupt",
            hint="save the fit again from its program",
        )
    if given is None:
        if saved_source is None:
            raise CheckpointError(
                "the checkpoint holds no QVR source to build its program from",
                hint=f"pass the program: {caller}(path, model)",
            )
        given = saved_source
    if isinstance(given, str):
        _same_source(given, saved_source, saved_hash)
        model = loads(given).morphism
    elif isinstance(given, Program):
        model = given
        if model.source is not None and saved_hash is not None:
            _same_source(model.source, saved_source, saved_hash)
    else:
        raise QuiversTypeError(f"{caller} needs a Program, QVR source or None, got {type(given).__name__}")
    _same_structure(signature(model), record["signature"])
    _same_buffers(model, record["model"])
    return model


def _same_source(source: str, saved: str | None, saved_hash: str | None) -> None:
    if saved_hash is None or source_hash(source) == saved_hash:
        return
    what = ""
    if saved is not None:
        old, new = [ln.rstrip() for ln in saved.splitlines()], [ln.rstrip() for ln in source.splitlines()]
        for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=old, b=new, autojunk=False).get_opcodes():
            if tag == "equal":
                continue
            was = f"`{old[i1].strip()}`" if i1 < i2 else "absent"
            now = f"`{new[j1].strip()}`" if j1 < j2 else "deleted"
            what = f": line {j1 + 1 if j1 < j2 else i1 + 1} was {was} and is now {now}"
            break
        if not what:  # same lines: whitespace at the line ends, or the final newline
            what = ": the two differ only in line endings or trailing whitespace"
    raise CheckpointError(
        f"the checkpoint was saved from a different QVR source{what}",
        hint="load it into the program it was saved from, or refit",
    )


def _same_structure(now: dict[str, Any], saved: dict[str, Any]) -> None:
    changes = []
    for key in ("name", "dom", "cod", "effects"):
        if now[key] != saved[key]:
            changes.append(f"its {key} was {saved[key]} and is now {now[key]}")
    fields = ("kind", "axes", "shape", "family", "values in")
    for name in sorted(set(now["sites"]) | set(saved["sites"])):
        a, b = saved["sites"].get(name), now["sites"].get(name)
        if a is None:
            changes.append(f"site `{name}` is new")
        elif b is None:
            changes.append(f"site `{name}` is gone")
        else:
            changes.extend(
                f"site `{name}` had {f} {x} and now has {y}" for f, x, y in zip(fields, a, b) if x != y
            )
    if changes:
        raise CheckpointError(
            "the checkpoint was saved from a different program: " + "; ".join(changes),
            hint="load it into the program it was saved from, or refit",
        )


def _same_buffers(model: Program, saved: Mapping[str, torch.Tensor]) -> None:
    """The program's constants are part of the program: a changed one is a
    changed program, not state to overwrite."""
    buffers = dict(model.named_buffers())
    for name, t in buffers.items():
        s = saved.get(name)
        if s is None or s.shape != t.shape or not torch.equal(s.to(t.dtype), t.cpu()):
            raise CheckpointError(
                f"the program's constant `{name}` differs from the checkpoint's",
                hint="load it into the program it was saved from, or refit",
            )


def _restore_guide(record: dict[str, Any], model: Program, guide: AutoGuide | None) -> AutoGuide:
    if guide is None:
        cls = getattr(quivers.inference, record["class"], None)
        if not (isinstance(cls, type) and issubclass(cls, AutoGuide)):
            raise CheckpointError(f"the checkpoint's guide class `{record['class']}` is not a quivers guide")
        if not cls.rebuildable:
            raise CheckpointError(f"a {record['class']} is not rebuilt from a checkpoint alone",
                                  hint="build the same guide and pass it as guide=")
        guide = cls(model, observed_names=record["observed_names"], **record["kwargs"])
    elif type(guide).__name__ != record["class"]:
        raise CheckpointError(f"the checkpoint holds a {record['class']}, not a {type(guide).__name__}")
    layout = [[s.name, s.start, s.size] for s in guide.layout.slices]
    if layout != record["layout"]:
        raise CheckpointError(
            f"the guide covers the latents {layout} ([name, start, size]); the checkpoint's covered {record['layout']}",
            hint="build the guide with the saved observed_names",
        )
    try:
        guide.load_state_dict(record["state"])
    except RuntimeError as err:  # parameter shapes: a low-rank guide of another rank
        raise CheckpointError(f"the guide's parameters do not fit the checkpoint's: {err}") from None
    return guide


def _restore_optimizer(
    record: dict[str, Any], model: Program, guide: AutoGuide | None, optimizer: torch.optim.Optimizer | None
) -> torch.optim.Optimizer:
    params = {f"model.{n}": p for n, p in model.named_parameters()}
    if guide is not None:
        params.update({f"guide.{n}": p for n, p in guide.named_parameters()})
    missing = [n for group in record["params"] for n in group if n not in params]
    if missing:
        raise CheckpointError(f"the checkpoint's optimizer holds parameters {missing} that nothing here has")
    if optimizer is None:
        cls = getattr(torch.optim, record["class"], None)
        if not (isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)):
            raise CheckpointError(f"the checkpoint's optimizer class `{record['class']}` is not in torch.optim")
        optimizer = cls([{"params": [params[n] for n in group]} for group in record["params"]])
    else:
        if type(optimizer).__name__ != record["class"]:
            raise CheckpointError(f"the checkpoint holds a {record['class']} optimizer, not a {type(optimizer).__name__}")
        names = _parameter_names(model, guide)
        mine = [[names.get(id(p), "?") for p in g["params"]] for g in optimizer.param_groups]
        if mine != record["params"]:
            raise CheckpointError(
                f"the optimizer's parameters {mine} are not the checkpoint's {record['params']}"
            )
    optimizer.load_state_dict(record["state"])
    return optimizer
