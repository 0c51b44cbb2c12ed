"""Validation of observations, index maps and latent values.

Every entry point runs user data through :func:`prepare` before any torch
arithmetic, so a missing observation, a wrong shape, an index out of range
or a NaN becomes a :class:`~quivers.errors.QuiversError` naming the site and
the first offending index rather than a broadcast error or a NaN loss.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import torch

from quivers.errors import DataError, QuiversTypeError, ShapeError, UnknownNameError
from quivers.programs.named import Value
from quivers.categories import FinFunction, FinSet
from quivers.programs.sites import Site

__all__ = [
    "data_source", "data_named", "as_tensor", "check_value", "check_data", "check_index_map", "check_names", "check_one_data_set", "common_batch", "first_bad",
]


_DATA_SOURCE: ContextVar[str] = ContextVar("data_source", default="the observations")


def data_source() -> str:
    """How messages name where the data came from: ``the observations``
    (the dict given to ``fit``, ``log_joint``, ...), or what a caller set
    with :func:`data_named`.

    Examples
    --------
    >>> data_source()
    'the observations'
    >>> with data_named("--data data.json"):
    ...     data_source()
    '--data data.json'
    """
    return _DATA_SOURCE.get()


@contextmanager
def data_named(name: str) -> Iterator[None]:
    """Name the data ``name`` in the messages of the checks run inside
    (the command line says ``--data FILE``, not "the observations")."""
    token = _DATA_SOURCE.set(name)
    try:
        yield
    finally:
        _DATA_SOURCE.reset(token)


def as_tensor(name: str, value: Any) -> torch.Tensor:
    """``value`` (tensor, number, list or array) as a tensor."""
    if isinstance(value, torch.Tensor):
        return value
    try:
        t = torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError) as err:
        raise QuiversTypeError(f"`{name}` must be a tensor or array of numbers, got {type(value).__name__}") from err
    if torch.is_floating_point(t):
        t = t.to(torch.get_default_dtype())
    return t


def first_bad(mask: torch.Tensor) -> tuple[int, ...]:
    """The index of the first True entry of ``mask``."""
    flat = int(torch.nonzero(mask.reshape(-1))[0, 0])
    return tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), mask.shape))


def check_value(site: Site, value: Any, what: str) -> Value:
    """Check a latent's or an observation's value against its site.

    The trailing axes must equal the site's shape; leading axes are batch.
    Values must be finite, integers in ``[0, n)`` for a site taking values
    in a finite set of size ``n`` (a marginalized latent, a Categorical on
    declared weights), and in the support when it is fixed.
    """
    t = as_tensor(site.name, value)
    shape = tuple(site.shape)
    if t.dim() < len(shape) or tuple(t.shape[t.dim() - len(shape):]) != shape:
        raise ShapeError(
            f"{what} `{site.name}` has shape {tuple(t.shape)}; its site {site.dims} needs trailing shape {shape}",
            hint="leading axes are batch axes" if shape else None,
        )
    if t.dtype == torch.bool:
        t = t.to(torch.get_default_dtype())
    if torch.is_complex(t):
        raise DataError(f"{what} `{site.name}` must be real, got dtype {t.dtype}")
    if torch.is_floating_point(t):
        bad = ~torch.isfinite(t.detach())
        if bool(bad.any()):
            raise DataError(f"{what} `{site.name}` has a non-finite value at index {first_bad(bad)}")
    if site.num_values is not None:
        t = _integers(t, f"{what} `{site.name}`")
        out = (t < 0) | (t >= site.num_values)
        if bool(out.any()):
            i = first_bad(out)
            raise DataError(
                f"{what} `{site.name}` has value {int(t[i])} at index {i}, "
                f"outside [0, {site.num_values}) of `{site.values_in}`"
            )
        return Value(t, site.dims, values_in=site.values_in)
    fam = site.family
    if fam is not None and (fam.spec.static_support or site.constraint is not None):
        support = site.support()
        inside = support.check(t.detach())
        if inside.dim() < t.dim():
            inside = inside.reshape(inside.shape + (1,) * (t.dim() - inside.dim())).expand(t.shape)
        if not bool(inside.all()):
            of = f"[constraint={site.constraint}]" if site.constraint is not None else f"the support of {fam.name}"
            raise DataError(f"{what} `{site.name}` has a value outside {of} ({support}) at index {first_bad(~inside)}")
    return Value(t, site.dims, values_in=site.values_in)


def _integers(t: torch.Tensor, what: str) -> torch.Tensor:
    if torch.is_floating_point(t):
        frac = t != torch.round(t)
        if bool(frac.any()):
            raise DataError(f"{what} has a non-integer value {float(t[first_bad(frac)])} at index {first_bad(frac)}")
    return t.long()


def check_data(site: Site, value: Any) -> Value:
    """Check real data (a covariate on a plate, a scalar constant) against
    its site: shape exactly the site's (leading axes of size one, the
    seed's ``(1, N)``, are dropped; data has no batch; one number stands
    for every element when the step allows ``broadcast``), numbers
    (booleans and integers become floats), finite.

    Examples
    --------
    >>> from quivers.categories import FinSet
    >>> from quivers.programs import Program, data, observe, var
    >>> from quivers.distributions import Normal
    >>> School = FinSet("School", 3)
    >>> p = Program("p", School, School, [data("sigma", School), observe("y", School, Normal(0.0, var("sigma")))])
    >>> check_data(p.sites["sigma"], [[1.0, 2.0, 3.0]]).tensor.shape
    torch.Size([3])
    >>> check_data(p.sites["sigma"], [1.0, 2.0])
    Traceback (most recent call last):
    ...
    quivers.errors.ShapeError: data `sigma` has shape (2,); it is on School, shape (3,)
    """
    t = as_tensor(site.name, value)
    shape = tuple(site.shape)
    while t.dim() > len(shape) and t.shape[0] == 1:
        t = t[0]
    if t.dim() == 0 and getattr(site.step, "broadcast", False):
        t = t.expand(shape)
    if tuple(t.shape) != shape:
        on = f"it is on {' * '.join(site.dims)}, shape {shape}" if shape else "it is one number, shape ()"
        raise ShapeError(f"data `{site.name}` has shape {tuple(as_tensor(site.name, value).shape)}; {on}")
    if torch.is_complex(t):
        raise DataError(f"data `{site.name}` must be real, got dtype {t.dtype}")
    if not torch.is_floating_point(t):
        t = t.to(torch.get_default_dtype())
    bad = ~torch.isfinite(t.detach())
    if bool(bad.any()):
        raise DataError(f"data `{site.name}` has a non-finite value at index {first_bad(bad)}")
    return Value(t, site.dims)


def check_index_map(site: Site, value: Any, dom: FinSet, cod: FinSet) -> tuple[Value, FinFunction]:
    """Check an index map ``dom -> cod``: integers in ``[0, |cod|)``, one per
    element of its domain (leading axes of size one are dropped). Returns
    the value and the map as a :class:`~quivers.categories.FinFunction`."""
    t = as_tensor(site.name, value)
    while t.dim() > len(site.shape) and t.shape[0] == 1:
        t = t[0]
    if tuple(t.shape) != tuple(site.shape):
        raise ShapeError(
            f"index map `{site.name}` has shape {tuple(t.shape)}; it needs one entry per element of "
            f"`{dom.name}`, shape {tuple(site.shape)}"
        )
    if t.dtype == torch.bool or torch.is_complex(t):
        raise DataError(f"index map `{site.name}` must hold integers, got dtype {t.dtype}")
    if torch.is_floating_point(t) and not bool(torch.isfinite(t).all()):
        raise DataError(f"index map `{site.name}` has a non-finite value at index {first_bad(~torch.isfinite(t))}")
    t = _integers(t, f"index map `{site.name}`")
    out = (t < 0) | (t >= cod.size)
    if bool(out.any()):
        i = first_bad(out)
        raise DataError(
            f"index map `{site.name}` has value {int(t[i])} at index {i}, outside [0, {cod.size}) of `{cod.name}`"
        )
    return Value(t, site.dims, values_in=site.values_in), FinFunction(dom, cod, t.reshape(-1))


def _broadcast(shapes: set[torch.Size]) -> torch.Size:
    """``torch.broadcast_shapes`` of a few short shapes, in plain Python:
    every run of a program calls this, and torch's version costs more than
    the arithmetic of a small model."""
    if len(shapes) <= 1:
        return next(iter(shapes), torch.Size())
    out = [1] * max(len(b) for b in shapes)
    for b in shapes:
        for i, n in enumerate(b, len(out) - len(b)):
            if n != 1:
                if out[i] not in (1, n):
                    raise RuntimeError(f"shapes {sorted(map(tuple, shapes))} do not broadcast")
                out[i] = n
    return torch.Size(out)


def common_batch(env: Mapping[str, Value], sites: Mapping[str, Site]) -> torch.Size:
    """The broadcast of the batch shapes of the given values (index maps
    carry none); values whose batches do not broadcast are an error naming
    them."""
    shapes = {n: v.batch_shape for n, v in env.items() if sites[n].kind not in ("index", "data")}
    try:
        return _broadcast(set(shapes.values()))
    except RuntimeError:
        listed = ", ".join(f"`{n}` has batch shape {tuple(b)}" for n, b in shapes.items() if len(b))
        raise ShapeError(
            f"the batch axes of the given values do not broadcast: {listed}",
            hint="leading (batch) axes must agree or be 1, aligned from the right",
        ) from None


def check_one_data_set(observations: Mapping[str, Any] | None, sites: Mapping[str, Site], against: str) -> None:
    """Inference conditions on one data set: an observation may have
    leading axes of size one (the seed's ``(1, N)``) but no batch of data
    sets, which would be broadcast against ``against`` (the particles,
    chains or draws of an engine: chain ``c`` paired with data set ``c``,
    or the data counted twice). Names that are no site, and trailing shapes
    that do not fit, are left to :func:`check_names` and :func:`check_value`.

    Examples
    --------
    >>> from quivers.categories import FinSet
    >>> from quivers.distributions import Normal
    >>> from quivers.programs import Program, observe
    >>> Item = FinSet("Item", 3)
    >>> p = Program("p", Item, Item, [observe("y", Item, Normal(0.0, 1.0))])
    >>> check_one_data_set({"y": torch.zeros(1, 3)}, p.sites, "the chains of MCMC")
    >>> check_one_data_set({"y": torch.zeros(2, 3)}, p.sites, "the chains of MCMC")
    Traceback (most recent call last):
    ...
    quivers.errors.DataError: observation `y` has shape (2, 3): its leading axes (2,) would be broadcast against the chains of MCMC, which condition on one data set; pass shape (3,), or fit each data set on its own
    """
    if not isinstance(observations, Mapping):
        return
    for name, value in observations.items():
        site = sites.get(name)
        if site is None or site.kind in ("index", "data"):
            continue
        shape = tuple(as_tensor(name, value).shape)
        lead = len(shape) - len(site.shape)
        if lead <= 0 or shape[lead:] != tuple(site.shape) or all(n == 1 for n in shape[:lead]):
            continue
        raise DataError(
            f"observation `{name}` has shape {shape}: its leading axes {shape[:lead]} would be broadcast "
            f"against {against}, which condition on one data set",
            hint=f"pass shape {tuple(site.shape)}, or fit each data set on its own",
        )


def check_names(given: Mapping[str, Any], known: Mapping[str, Site], what: str) -> None:
    """Unknown keys in a dict of data are errors with a suggestion;
    ``what`` is ``"observations"`` (named as :func:`data_source` says) or
    ``"latents"``.

    Examples
    --------
    >>> from quivers.categories import FinSet
    >>> from quivers.distributions import Normal
    >>> from quivers.programs import Program, observe
    >>> Item = FinSet("Item", 3)
    >>> p = Program("p", Item, Item, [observe("y", Item, Normal(0.0, 1.0))])
    >>> with data_named("--data data.json"):
    ...     check_names({"yy": [0.0, 1.0, 2.0]}, p.sites, "observations")
    Traceback (most recent call last):
    ...
    quivers.errors.UnknownNameError: `yy` in --data data.json is no site of the program; did you mean `y`?
    """
    where = data_source() if what == "observations" else what
    if not isinstance(given, Mapping):
        raise QuiversTypeError(f"{where} must be a dict from site names to tensors, got {type(given).__name__}")
    for name in given:
        if name not in known:
            raise UnknownNameError(f"`{name}` in {where} is no site of the program", name=name, candidates=known)
