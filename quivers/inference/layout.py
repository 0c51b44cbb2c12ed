"""The unconstrained space of a program's latents, flattened.

Guides and MCMC work on one real vector per draw. A :class:`Layout` packs
the continuous latent sites of a program, each mapped to the real line by
torch's ``biject_to`` of its support (a simplex of K values takes K - 1
coordinates), into consecutive slices of that vector, and unpacks a batch
of vectors into constrained values with the log absolute Jacobian of the
map.

A ``Uniform`` latent whose bounds read other latents (``Uniform(0, 1 -
a)``, Stan's ``real<lower=0, upper=1 - a>``) is mapped by
``low + (high - low) * sigmoid(u)``, its bounds evaluated from the values
of the latents before it (the layout follows the program's order, so they
are unpacked first); the log Jacobian is ``log(high - low) + log
sigmoid'(u)``, the diagonal of a triangular Jacobian.

Laws
----
- ``pack(unpack(u)[0]) == u`` for every unconstrained ``u`` (up to float
  error), and ``unpack`` values lie in each site's support.
- The log Jacobian of ``unpack`` is ``log |det d unpack(u) / du|``.

Examples
--------
>>> import torch
>>> from quivers.categories.finset import FinSet
>>> from quivers.distributions import HalfNormal, Normal
>>> from quivers.programs import Program, sample
>>> K = FinSet("K", 2)
>>> prog = Program("p", K, K, [sample("mu", K, Normal(0.0, 1.0)), sample("sd", K, HalfNormal(1.0))])
>>> layout = Layout(prog.latent_sites())
>>> layout.dim
4
>>> values, logdet = layout.unpack(torch.zeros(3, 4))
>>> values["sd"]
tensor([[1., 1.],
        [1., 1.],
        [1., 1.]])
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.distributions import AffineTransform, ComposeTransform, ExpTransform, SigmoidTransform, Transform, biject_to
from torch.distributions.transforms import IndependentTransform

import torch.nn.functional as F

from quivers.errors import QuiversError, QuiversTypeError, ShapeError
from quivers.programs import Site

__all__ = ["Layout", "SiteSlice"]


def _simplify(t: Transform) -> Transform:
    """``t`` without its identity affine parts, a lone part unwrapped: the
    same map with fewer operations per draw (torch's bijection onto the
    positive reals is ``exp`` followed by ``x * 1 + 0``)."""
    if not isinstance(t, ComposeTransform):
        return t
    parts = [
        p for p in t.parts
        if not (isinstance(p, AffineTransform) and p.event_dim == 0 and isinstance(p.loc, (int, float))
                and isinstance(p.scale, (int, float)) and p.loc == 0 and p.scale == 1)
    ]
    if len(parts) == len(t.parts):
        return t
    return parts[0] if len(parts) == 1 else ComposeTransform(parts)


def _cast(t: Transform, like: torch.Tensor) -> Transform:
    """``t`` with its floating tensor parameters in ``like``'s dtype and
    device. A support's bounds are made at the default dtype; left so, a
    float64 run would compute a bounded site's log |J| at float32's
    precision (log 5.5 off by 6e-8)."""
    if isinstance(t, ComposeTransform):
        return ComposeTransform([_cast(p, like) for p in t.parts])
    if isinstance(t, IndependentTransform):
        return IndependentTransform(_cast(t.base_transform, like), t.reinterpreted_batch_ndims)
    if isinstance(t, AffineTransform):
        loc, scale = (
            v.to(like) if isinstance(v, torch.Tensor) and v.is_floating_point() else v for v in (t.loc, t.scale)
        )
        return AffineTransform(loc, scale, event_dim=t.event_dim)
    return t


@dataclass(frozen=True)
class SiteSlice:
    """Where one site lives in the flat unconstrained vector."""

    site: Site
    transform: Transform
    start: int
    size: int
    unconstrained_shape: tuple[int, ...]
    bounds: Callable[[Mapping[str, torch.Tensor]], dict[str, torch.Tensor]] | None = None

    @property
    def name(self) -> str:
        return self.site.name

    @property
    def exp(self) -> bool:
        """Whether the bijection is ``exp`` (log |J| is the input itself)."""
        return type(self.transform) is ExpTransform


class Layout:
    """Flattened unconstrained coordinates of continuous latent sites.

    ``parameters`` (a program's :meth:`~quivers.programs.Program.parameters_of`)
    lets a ``Uniform`` site's bounds read the latents laid out before it.
    """

    def __init__(self, sites: Sequence[Site], parameters: Callable[[str], tuple[tuple[str, ...], Any]] | None = None) -> None:
        self.slices: list[SiteSlice] = []
        start = 0
        for site in sites:
            if site.discrete:
                raise QuiversTypeError(
                    f"latent `{site.name}` is discrete; it has no unconstrained coordinates",
                    hint="marginalize it, or use a guide that handles discrete sites",
                )
            bounds = None
            try:
                support = site.support()
                transform = _simplify(biject_to(support))
            except QuiversError as err:
                if parameters is None or site.family is None or site.family.name != "Uniform":
                    raise QuiversTypeError(f"the support of `{site.name}` is not fixed: {err.message}") from None
                bounds = self._bounds(site, parameters)
                transform = SigmoidTransform()  # onto (0, 1); the bounds of each draw scale it
            except NotImplementedError as err:  # torch has no bijection onto this support
                raise QuiversTypeError(f"the support of `{site.name}` has no map from the real line: {err}") from None
            ushape = tuple(transform.inverse_shape(torch.Size(site.shape)))
            size = 1
            for n in ushape:
                size *= n
            self.slices.append(SiteSlice(site, transform, start, size, ushape, bounds))
            start += size
        self.dim = start
        self._sizes = [s.size for s in self.slices]
        self._cast: dict[tuple[int, torch.dtype, torch.device], Transform] = {}

    def _transform(self, i: int, like: torch.Tensor) -> Transform:
        # slice i's transform for tensors like `like`, cast once per dtype and device
        key = (i, like.dtype, like.device)
        if key not in self._cast:
            self._cast[key] = _cast(self.slices[i].transform, like)
        return self._cast[key]

    def _bounds(self, site: Site, parameters: Callable[[str], tuple[tuple[str, ...], Any]]) -> Callable:
        """The evaluator of ``site``'s bounds, after checking that every
        latent they read is laid out before it."""
        reads, evaluate = parameters(site.name)
        before = {s.name for s in self.slices}
        missing = [n for n in reads if n not in before]
        if missing:
            raise QuiversTypeError(
                f"the bounds of `{site.name}` read {missing}, which are not sampled before it "
                "(given as observations, or placed after it)",
                hint="a Uniform whose bounds read a value given as data needs that value's bounds to be constants",
            )
        return evaluate

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.slices]

    def unpack(self, u: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Constrained values of a batch ``u`` of shape ``(..., dim)`` and
        the log absolute Jacobian determinant of the map, shape ``(...)``."""
        if u.shape[-1] != self.dim:
            raise ShapeError(f"unconstrained vector has {u.shape[-1]} coordinates, the layout needs {self.dim}")
        batch = u.shape[:-1]
        values: dict[str, torch.Tensor] = {}
        logdet = None
        # one split (one node of autograd) rather than a slice per site
        parts = u.split(self._sizes, -1) if len(self.slices) > 1 else (u,)
        for i, (s, part) in enumerate(zip(self.slices, parts)):
            shape = batch + s.unconstrained_shape
            if part.shape != shape:
                part = part.reshape(shape)
            if s.bounds is not None:  # onto (low, high), evaluated from the values before it
                p = s.bounds(values)
                width = p["high"] - p["low"]
                x = p["low"] + width * torch.sigmoid(part)
                ladj = torch.log(width) + F.logsigmoid(part) + F.logsigmoid(-part)
            elif s.exp:  # the commonest bijection, without the Transform's call machinery
                x, ladj = part.exp(), part
            elif isinstance(s.transform, ComposeTransform) and not s.transform.parts:
                values[s.name] = part  # the identity: log |J| = 0
                continue
            else:
                transform = self._transform(i, part)
                x = transform(part)
                ladj = transform.log_abs_det_jacobian(part, x)
            if ladj.dim() > len(batch):  # a scalar site's is already one per draw
                ladj = (ladj if ladj.dim() == len(batch) + 1 else ladj.reshape(batch + (-1,))).sum(-1)
            logdet = ladj if logdet is None else logdet + ladj
            values[s.name] = x
        return values, (u.new_zeros(batch) if logdet is None else logdet)

    def constrain(self, u: torch.Tensor) -> dict[str, torch.Tensor]:
        """Constrained values of ``u`` (without the Jacobian)."""
        return self.unpack(u)[0]

    def pack(self, values: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The unconstrained vector of constrained ``values``."""
        parts = []
        batch = None
        for i, s in enumerate(self.slices):
            x = torch.as_tensor(values[s.name])
            if s.bounds is not None:
                p = s.bounds(values)
                x = (x - p["low"]) / (p["high"] - p["low"])
            u = self._transform(i, x).inv(x) if x.is_floating_point() else s.transform.inv(x)
            b = u.shape[: u.dim() - len(s.unconstrained_shape)]
            batch = b if batch is None else batch
            parts.append(u.reshape(b + (s.size,)))
        return torch.cat(parts, -1) if parts else torch.zeros(0)
