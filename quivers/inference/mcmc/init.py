"""Where chains start: NumPyro's initialization strategies.

A strategy is given to a kernel as ``NUTS(model, init_strategy=...)`` and
called once per attempt at the run's start with the model adaptor, the
number of chains, the run's CPU generator and the run's arguments; it
returns the unconstrained starting points ``(C, D)``. A start whose
potential or gradient is not finite is drawn again, as Stan retries, up to
100 times (a strategy that returns a fixed point fails at once then).

- :func:`init_to_uniform`: uniform in ``(-radius, radius)`` on the
  unconstrained space (Stan's default, ``radius=2``);
- :func:`init_to_value`: given values (constrained, by site name, for a
  program; or an unconstrained point), every other site uniform;
- :func:`init_to_median`: the coordinate-wise median of ``num_samples``
  draws from the prior, drawn afresh for every chain.

Laws: ``init_to_value(v)`` constrained back gives ``v``; every coordinate
of ``init_to_uniform(r)`` lies in ``(-r, r)``; ``init_to_median`` of a
site with an elementwise map onto its support (real, positive, bounded)
is the median of its constrained prior draws.

Examples
--------
>>> import torch
>>> from quivers.inference.mcmc import NUTS
>>> kernel = NUTS(potential_fn=lambda z: 0.5 * (z**2).sum(-1), dim=2,
...               init_strategy=init_to_value(torch.tensor([0.5, -0.5])))
>>> state = kernel.setup(num_chains=3, num_warmup=0, generator=torch.Generator().manual_seed(0))
>>> state.z
tensor([[ 0.5000, -0.5000],
        [ 0.5000, -0.5000],
        [ 0.5000, -0.5000]])
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from quivers.errors import InvalidValueError, QuiversTypeError, ShapeError, UnknownNameError

__all__ = ["InitStrategy", "init_to_uniform", "init_to_value", "init_to_median"]


def _space(adaptor: Any) -> tuple[int, torch.dtype, torch.device]:
    """The dimension, dtype and device of the chains of ``adaptor``."""
    layout = getattr(adaptor, "layout", None)
    if layout is not None:  # a program
        return layout.dim, adaptor.dtype, adaptor.device
    dim = getattr(adaptor, "dim", None)
    if isinstance(dim, int):
        init = getattr(adaptor, "initial_params", None)
        if isinstance(init, Tensor):
            return dim, init.dtype, init.device
        return dim, torch.get_default_dtype(), torch.device("cpu")
    probe = adaptor.init_unconstrained(1, torch.Generator().manual_seed(0))
    return probe.shape[-1], probe.dtype, probe.device


def _uniform(num_chains: int, dim: int, radius: float, generator: torch.Generator) -> Tensor:
    u = torch.rand(num_chains, dim, generator=generator, dtype=torch.float64)
    return radius * (2.0 * u - 1.0)


class InitStrategy:
    """Base of the strategies: ``strategy(adaptor, num_chains, generator,
    args, kwargs) -> Tensor (num_chains, D)``."""

    def __call__(
        self,
        adaptor: Any,
        num_chains: int,
        generator: torch.Generator,
        args: tuple[Any, ...] = (),
        kwargs: Mapping[str, Any] | None = None,
    ) -> Tensor:
        raise NotImplementedError


class init_to_uniform(InitStrategy):  # noqa: N801 - NumPyro's name
    """Start uniformly in ``(-radius, radius)`` on the unconstrained space.

    Examples
    --------
    >>> from quivers.inference.mcmc import PotentialAdaptor
    >>> adaptor = PotentialAdaptor(lambda z: (z**2).sum(-1), dim=3)
    >>> z = init_to_uniform(radius=0.5)(adaptor, 4, torch.Generator().manual_seed(0))
    >>> z.shape, bool(z.abs().max() < 0.5)
    (torch.Size([4, 3]), True)
    """

    def __init__(self, radius: float = 2.0) -> None:
        if isinstance(radius, bool) or not isinstance(radius, (int, float)) or not (0 < radius < math.inf):
            raise InvalidValueError(f"`radius` must be a positive number, got {radius!r}")
        self.radius = float(radius)

    def __call__(self, adaptor, num_chains, generator, args=(), kwargs=None) -> Tensor:
        dim, dtype, device = _space(adaptor)
        return _uniform(num_chains, dim, self.radius, generator).to(dtype=dtype, device=device)

    def __repr__(self) -> str:
        return f"init_to_uniform(radius={self.radius!r})"


class init_to_value(InitStrategy):  # noqa: N801 - NumPyro's name
    """Start at given values; sites not given start as :class:`init_to_uniform`.

    Parameters
    ----------
    values
        For a program, constrained values by site name, each of the site's
        shape (shared by every chain) or with a leading chain axis. For a
        plain potential, the unconstrained point ``(D,)`` or ``(C, D)``
        (or ``{site_name: point}``).
    radius
        The radius of the uniform start of the sites not given.

    Examples
    --------
    >>> from quivers.categories.finset import FinSet
    >>> from quivers.distributions import HalfNormal, Normal
    >>> from quivers.programs import Program, sample
    >>> from quivers.inference.program_adaptor import ProgramAdaptor
    >>> K = FinSet("K", 2)
    >>> adaptor = ProgramAdaptor(Program("p", K, K, [sample("mu", K, Normal(0.0, 1.0)),
    ...                                              sample("sd", None, HalfNormal(1.0))]))
    >>> z = init_to_value({"sd": 2.0})(adaptor, 3, torch.Generator().manual_seed(0))
    >>> adaptor.constrain(z)["sd"]
    tensor([2., 2., 2.])
    """

    def __init__(self, values: Mapping[str, Any] | Tensor, radius: float = 2.0) -> None:
        if not isinstance(values, (Mapping, Tensor)):
            raise QuiversTypeError(
                f"`values` must be a dict of site values or a tensor, got {type(values).__name__}"
            )
        self.values = values
        self.uniform = init_to_uniform(radius)

    def __call__(self, adaptor, num_chains, generator, args=(), kwargs=None) -> Tensor:
        dim, dtype, device = _space(adaptor)
        values = self.values
        layout = getattr(adaptor, "layout", None)
        if layout is None:
            if isinstance(values, Mapping):
                name = getattr(adaptor, "site_name", "z")
                unknown = [k for k in values if k != name]
                if unknown:
                    raise UnknownNameError(
                        f"`init_to_value` gives {unknown}, but the potential's only site is `{name}`",
                        name=unknown[0], candidates=[name],
                    )
                if name not in values:
                    return self.uniform(adaptor, num_chains, generator)
                values = values[name]
            return self._rows(torch.as_tensor(values, dtype=dtype, device=device), num_chains, dim, "the point")
        if isinstance(values, Tensor):
            return self._rows(values.to(dtype=dtype, device=device), num_chains, dim, "the point")
        unknown = [k for k in values if k not in layout.names]
        if unknown:
            raise UnknownNameError(
                f"`init_to_value` gives {unknown}, which are not latents the chains sample "
                f"({layout.names})",
                name=unknown[0], candidates=layout.names,
            )
        z = self.uniform(adaptor, num_chains, generator)
        constrained = layout.constrain(z)
        for s in layout.slices:
            if s.name not in values:
                continue
            v = torch.as_tensor(values[s.name], dtype=dtype, device=device)
            shape = tuple(s.site.shape)
            if tuple(v.shape) not in (shape, (num_chains,) + shape):
                raise ShapeError(
                    f"`init_to_value` gives `{s.name}` shape {tuple(v.shape)}; expected {shape} "
                    f"or ({num_chains}, {', '.join(map(str, shape))}) with one row per chain".replace(", )", ")")
                )
            constrained[s.name] = v.expand((num_chains,) + shape)
        z = layout.pack(constrained).to(dtype=dtype, device=device)
        bad = [s.name for s in layout.slices if not bool(torch.isfinite(z[:, s.start : s.start + s.size]).all())]
        if bad:
            raise InvalidValueError(f"`init_to_value` places {bad} outside their support")
        return z

    @staticmethod
    def _rows(point: Tensor, num_chains: int, dim: int, what: str) -> Tensor:
        if point.shape not in ((dim,), (num_chains, dim)):
            raise ShapeError(
                f"`init_to_value` gives {what} shape {tuple(point.shape)}; expected ({dim},) or ({num_chains}, {dim})"
            )
        return point.expand(num_chains, dim).clone()

    def __repr__(self) -> str:
        return f"init_to_value({self.values!r})"


class init_to_median(InitStrategy):  # noqa: N801 - NumPyro's name
    """Start each chain at the coordinate-wise median of ``num_samples``
    draws from the prior (on the unconstrained space: for a site mapped
    elementwise onto its support it is the median of its constrained
    draws; a simplex's coordinates are its stick-breaking ones).

    The model must be a program, whose prior it draws from (its data and
    index maps from the run's arguments); a plain potential has no prior.

    Examples
    --------
    >>> from quivers.categories.finset import FinSet
    >>> from quivers.distributions import Normal
    >>> from quivers.programs import Program, sample
    >>> from quivers.inference.program_adaptor import ProgramAdaptor
    >>> K = FinSet("K", 2)
    >>> adaptor = ProgramAdaptor(Program("p", K, K, [sample("mu", None, Normal(3.0, 0.01))]))
    >>> z = init_to_median(num_samples=101)(adaptor, 2, torch.Generator().manual_seed(0))
    >>> bool((z - 3.0).abs().max() < 0.005)
    True
    """

    def __init__(self, num_samples: int = 15) -> None:
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
            raise InvalidValueError(f"`num_samples` must be a positive integer, got {num_samples!r}")
        self.num_samples = num_samples

    def __call__(self, adaptor, num_chains, generator, args=(), kwargs=None) -> Tensor:
        draw = getattr(adaptor, "prior_draws", None)
        if draw is None:
            raise QuiversTypeError(
                f"`init_to_median` draws from the prior, but {type(adaptor).__name__} has none",
                hint="start a plain potential with `init_to_value` or `init_to_uniform`",
            )
        z = draw(self.num_samples * num_chains, generator, *args, **(kwargs or {}))
        z = z.reshape(self.num_samples, num_chains, -1)
        return z.median(0).values

    def __repr__(self) -> str:
        return f"init_to_median(num_samples={self.num_samples})"
