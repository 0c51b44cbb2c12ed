"""Shards: one process's part of the observation plate.

``shard(program, observations, plate, rank, world)`` gives rank ``rank`` of
``world`` processes its rows of ``plate`` and the program cut to them. The
rows are split into ``world`` contiguous blocks, except where an index map
groups the plate (``observe ... [via=group]`` in a block ``[over=G]``):
then whole groups go to a rank, so a group's logsumexp over its latent
sees all of its rows. A group with no rows on a rank contributes
``log 1 = 0`` there (its weights are normalized), so each group's exact
term is counted on exactly one rank.

Every term of the shard's log joint but the latents' priors is multiplied
by ``world``.

Laws
----
- With every rank scoring the same latents, the mean over ranks of the
  shards' log joints equals the full log joint (up to float rounding).
- Groups never straddle ranks; every row is on exactly one rank.

Examples
--------
>>> import torch
>>> from quivers.categories import FinSet
>>> from quivers.distributions import Normal
>>> from quivers.programs import Program, sample, observe, var
>>> I = FinSet("I", 10)
>>> prog = Program("p", I, I, [sample("mu", None, Normal(0.0, 1.0)),
...                            observe("y", I, Normal(var("mu"), 1.0))])
>>> y = torch.arange(10.0)
>>> parts = [shard(prog, {"y": y}, "I", r, 2) for r in range(2)]
>>> [p.observations["y"].tolist() for p in parts]
[[0.0, 1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0, 9.0]]
>>> lat = {"mu": torch.tensor(0.5)}
>>> mean = sum(p.program.log_joint(None, p.observations, lat) for p in parts) / 2
>>> bool(torch.isclose(mean, prog.log_joint(None, {"y": y}, lat)))
True
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from quivers.errors import DataError, InvalidValueError, QuiversTypeError, UnknownNameError
from quivers.programs.named import plate_dims
from quivers.programs.steps import FactorStep
from quivers.programs.subsample import resize

__all__ = ["Shard", "shard", "shard_rows"]


@dataclass(frozen=True)
class Shard:
    """One rank's part: the program cut to its rows, and its observations."""

    program: Any
    observations: dict[str, Any]
    rows: torch.Tensor  # indices into the full plate, in order


def _plate_size(program, plate: str) -> int:
    sizes = {d: n for site in program.sites.values() for d, n in zip(site.dims, site.shape)}
    if plate not in sizes:
        raise UnknownNameError(f"cannot shard `{plate}`: no site lies on it", name=plate, candidates=sizes)
    return sizes[plate]


def _grouping(program, plate: str) -> str | None:
    """The index map that groups ``plate``, if one does."""
    maps = []
    for name, (dom, _) in program.index_maps.items():
        dims = plate_dims(dom)[0]
        if plate in dims and len(dims) > 1:
            raise QuiversTypeError(
                f"index map `{name}` groups the product plate `{dom}`; sharding needs a map from `{plate}` alone",
            )
        if plate in dims:
            maps.append(name)
    if len(maps) > 1:
        raise QuiversTypeError(
            f"the index maps {', '.join(f'`{m}`' for m in sorted(maps))} group `{plate}` differently; "
            "a shard cannot keep the groups of both whole",
        )
    return maps[0] if maps else None


def shard_rows(n: int, rank: int, world: int, groups: torch.Tensor | None = None) -> torch.Tensor:
    """The rows of a plate of ``n`` rows that go to ``rank`` of ``world``.

    Without ``groups``, contiguous blocks of sizes differing by at most
    one. With ``groups`` (each row's group), whole groups, in the order of
    their ids, each rank taking the groups whose first row of the sorted
    order falls in its block, so ranks hold about ``n / world`` rows.

    Examples
    --------
    >>> shard_rows(5, 1, 2).tolist()
    [3, 4]
    >>> g = torch.tensor([0, 1, 0, 2, 2, 1])
    >>> [shard_rows(6, r, 2, g).tolist() for r in range(2)]
    [[0, 1, 2, 5], [3, 4]]
    """
    if groups is None:
        return torch.tensor_split(torch.arange(n), world)[rank]
    ids, counts = torch.unique(groups, return_counts=True)
    start = torch.cumsum(counts, 0) - counts  # rows before each group
    owner = torch.clamp(start * world // n, max=world - 1)
    mine = ids[owner == rank]
    return torch.nonzero(torch.isin(groups, mine)).flatten()


def _take(name: str, value: Any, site, plate: str, rows: torch.Tensor) -> torch.Tensor:
    t = torch.as_tensor(value)
    shape = tuple(site.shape)
    if t.dim() < len(shape) or tuple(t.shape[t.dim() - len(shape):]) != shape:
        raise DataError(f"`{name}` has shape {tuple(t.shape)}; its site `{site.name}` on `{plate}` needs {shape}")
    axis = t.dim() - len(shape) + site.dims.index(plate)
    return t.index_select(axis, rows.to(t.device))


def shard(program, observations: Mapping[str, Any], plate: str, rank: int, world: int) -> Shard:
    """Rank ``rank``'s part of ``observations`` on ``plate`` and ``program``
    cut to it, its likelihood scaled by ``world`` (see the module)."""
    if isinstance(world, bool) or not isinstance(world, int) or world < 1:
        raise InvalidValueError(f"`world` must be a positive number of processes, got {world!r}")
    if isinstance(rank, bool) or not isinstance(rank, int) or not 0 <= rank < world:
        raise InvalidValueError(f"`rank` must be in [0, {world}), got {rank!r}")
    n = _plate_size(program, plate)
    for site in program.sites.values():
        if plate in site.dims and site.kind == "latent":
            raise QuiversTypeError(
                f"latent `{site.name}` lies on the sharded plate `{plate}`; its guide would need the same rows",
                hint="shard only plates that hold observations and marginalized latents",
            )
    for step in program.steps:
        if isinstance(step, FactorStep):
            raise QuiversTypeError(
                f"factor `{step.expr}` adds a term that is neither a prior nor a row's likelihood; "
                "a shard cannot tell how to weight it",
            )
    by = _grouping(program, plate)
    groups = None
    if by is not None:
        if by not in observations:
            raise DataError(f"sharding `{plate}` by its groups needs the index map `{by}` in the observations")
        groups = _take(by, observations[by], program.sites[by], plate, torch.arange(n)).long().flatten()
    rows = shard_rows(n, rank, world, groups)
    if rows.numel() == 0:
        what = "groups" if by is not None else "rows"
        raise InvalidValueError(
            f"rank {rank} of {world} gets no {what} of `{plate}`",
            hint=f"run on fewer processes than the {what} of `{plate}`",
        )
    cut = resize(program, {plate: int(rows.numel())})
    cut.likelihood_scale = float(world) * program.likelihood_scale
    out = {}
    for name, value in observations.items():
        site = program.sites.get(name)
        on = site is not None and plate in site.dims
        out[name] = _take(name, value, site, plate, rows) if on else value
    return Shard(cut, out, rows)
