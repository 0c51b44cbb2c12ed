"""Normalizing-flow guides over the unconstrained vector of the latents.

A flow guide draws ``z ~ N(0, I)``, maps it through a stack of invertible
autoregressive transforms ``T`` and then through an affine map, ``u = loc +
scale * T(z)``; ``u`` is unpacked into constrained values as every guide's
is (:mod:`quivers.inference.layout`). Its log density is the normal's at
``z`` less the log Jacobian of the maps. The transforms come from `zuko`_,
a maintained library of flows, rather than from bijections written here:
their masks, inverses and log Jacobians are tested there.

- :class:`AutoIAFNormal`: affine autoregressive transforms in the inverse
  direction (Kingma et al., 2016): a draw and its density cost one pass of
  each transform's network, the density of a given point one pass per
  coordinate. The guide for SVI.
- :class:`AutoMAFNormal`: the same transforms in the masked autoregressive
  direction (Papamakarios et al., 2017): the density of a given point costs
  one pass, a draw one pass per coordinate. Suits reweighted wake-sleep,
  whose guide update scores given points.
- :class:`AutoNSFNormal`: monotone rational-quadratic spline transforms
  (Durkan et al., 2019) in the inverse direction: non-affine conditionals,
  for skewed and heavy-tailed posteriors.

Each transform's network starts with a zero last layer, so a new flow guide
is the identity flow: it starts as :class:`~quivers.inference.AutoNormal`
starts (at the prior's median, with scale ``init_scale``).

Laws
----
- ``log_q`` of a draw equals :meth:`AutoFlowGuide.log_prob` of its ``u``
  less the log Jacobian of the layout (the sampling and the density
  directions agree).
- A new flow guide has the density of :class:`~quivers.inference.AutoNormal`
  with the same ``loc`` and ``init_scale``.

Examples
--------
>>> import torch
>>> from quivers.categories.finset import FinSet
>>> from quivers.distributions import Normal
>>> from quivers.programs import Program, sample, observe, var
>>> I = FinSet("I", 3)
>>> prog = Program("p", I, I, [sample("mu", None, Normal(0.0, 1.0)), sample("nu", None, Normal(0.0, 1.0)),
...                            observe("y", I, Normal(var("mu") + var("nu"), 1.0))])
>>> guide = AutoIAFNormal(prog, observed_names={"y"}, num_flows=2)
>>> draw = guide(num_particles=5)
>>> draw.latents["mu"].shape, draw.log_q.shape
(torch.Size([5]), torch.Size([5]))
>>> torch.allclose(guide.log_prob(draw.u), draw.log_base, atol=1e-4)
True

.. _zuko: https://github.com/probabilists/zuko
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from quivers.errors import QuiversTypeError
from quivers.inference.guides import _HALF_LOG_2PI, AutoGuide, _softplus_inv
from quivers.programs import Program

__all__ = ["AutoFlowGuide", "AutoIAFNormal", "AutoMAFNormal", "AutoNSFNormal"]

def _zero_last_layer(t: nn.Module) -> None:
    """Make a zuko transform the identity: its network's last layer (or, for
    one coordinate, its free parameters) set to zero gives shift 0 and log
    scale 0 (an affine transform), or equal bins of unit slope (a spline,
    up to its boundary derivatives)."""
    hyper = getattr(t, "hyper", None)
    with torch.no_grad():
        if hyper is not None:
            hyper[-1].weight.zero_()
            hyper[-1].bias.zero_()
        else:
            for p in t.phi:
                p.zero_()


class AutoFlowGuide(AutoGuide):
    """Base of the flow guides: ``u = loc + scale * T(z)``, ``z ~ N(0, I)``.

    Parameters
    ----------
    model, observed_names, init_scale, sites
        As for every automatic guide (:class:`~quivers.inference.AutoGuide`).
    num_flows
        Autoregressive transforms stacked (each reverses the order of the
        coordinates of the one before, so every coordinate can depend on
        every other).
    hidden_dims
        Widths of the hidden layers of each transform's network.
    """

    inverse_autoregressive = True  # sampling is one pass of each network

    def __init__(
        self,
        model: Program,
        observed_names: Iterable[str] = (),
        init_scale: float = 0.1,
        *,
        num_flows: int = 3,
        hidden_dims: Sequence[int] = (64, 64),
        sites: Iterable[str] | None = None,
    ) -> None:
        super().__init__(model, observed_names, init_scale, sites=sites)
        if int(num_flows) != num_flows or num_flows < 1:
            raise QuiversTypeError(f"num_flows must be a positive integer, got {num_flows!r}")
        hidden = tuple(int(h) for h in hidden_dims)
        if not hidden or any(h < 1 for h in hidden):
            raise QuiversTypeError(f"hidden_dims must be positive widths, got {tuple(hidden_dims)!r}")
        self.num_flows, self.hidden_dims = int(num_flows), hidden
        self.loc = nn.Parameter(self._init_loc.clone())
        self.raw_scale = nn.Parameter(torch.full((self.dim,), _softplus_inv(init_scale)))
        layers = []
        if self.dim > 0:
            for i in range(self.num_flows):
                order = torch.arange(self.dim) if i % 2 == 0 else torch.arange(self.dim).flip(0)
                layer = self._transform(self.dim, order, hidden)
                _zero_last_layer(layer)
                layers.append(layer)
        self.layers = nn.ModuleList(layers)

    def options(self) -> dict[str, Any]:
        return {"num_flows": self.num_flows, "hidden_dims": list(self.hidden_dims)}

    def _transform(self, dim: int, order: torch.Tensor, hidden: tuple[int, ...]) -> nn.Module:
        """One zuko lazy transform over ``dim`` coordinates."""
        raise NotImplementedError

    def _flow(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``T(z)`` and ``log |det dT/dz|`` (the sampling direction)."""
        ladj = z.new_zeros(z.shape[:-1])
        for layer in self.layers:
            t = layer()
            z, part = (t if self.inverse_autoregressive else t.inv).call_and_ladj(z)
            ladj = ladj + part
        return z, ladj

    def _unflow(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``T^-1(x)`` and ``log |det dT^-1/dx|`` (the density direction)."""
        ladj = x.new_zeros(x.shape[:-1])
        for layer in reversed(self.layers):
            t = layer()
            x, part = (t.inv if self.inverse_autoregressive else t).call_and_ladj(x)
            ladj = ladj + part
        return x, ladj

    def _base_draw(self, num: int) -> tuple[torch.Tensor, torch.Tensor]:
        z = torch.empty((num, self.dim), dtype=self.loc.dtype, device=self.loc.device).normal_()
        return self._push(z)

    def _push(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The unconstrained draw of noise ``z`` and its log density."""
        scale = F.softplus(self.raw_scale)
        x, ladj = self._flow(z)
        log_z = -0.5 * (z * z).sum(-1) - self.dim * _HALF_LOG_2PI
        return self.loc + scale * x, log_z - ladj - scale.log().sum()

    def log_prob(self, u: torch.Tensor) -> torch.Tensor:
        """The log density of the unconstrained ``u`` under the flow."""
        scale = F.softplus(self.raw_scale)
        z, ladj = self._unflow((u - self.loc) / scale)
        return -0.5 * (z * z).sum(-1) - self.dim * _HALF_LOG_2PI + ladj - scale.log().sum()

    @torch.no_grad()
    def _draws(self, num: int = 4000) -> torch.Tensor:
        """Unconstrained draws from a fixed seed: the summaries below are
        Monte Carlo estimates, and the same each time they are asked for."""
        g = torch.Generator(device=self.loc.device).manual_seed(0)
        z = torch.randn((num, self.dim), generator=g, dtype=self.loc.dtype, device=self.loc.device)
        return self._push(z)[0]

    def _loc(self) -> torch.Tensor:
        return self._draws().median(0).values

    def _marginal_scale(self) -> torch.Tensor:
        return self._draws().std(0)

    @torch.no_grad()
    def quantiles(self, qs: Sequence[float]) -> dict[str, torch.Tensor]:
        """Marginal quantiles of each latent, constrained, estimated from
        4000 draws of the flow (the same draws each call)."""
        q = torch.as_tensor(list(qs), dtype=self.loc.dtype, device=self.loc.device)
        if bool(((q <= 0) | (q >= 1)).any()):
            raise QuiversTypeError(f"quantiles must lie strictly between 0 and 1, got {list(qs)}")
        return self.layout.constrain(torch.quantile(self._draws(), q, dim=0))


class AutoIAFNormal(AutoFlowGuide):
    """Inverse autoregressive flow guide (NumPyro's and Pyro's
    ``AutoIAFNormal``): affine autoregressive transforms whose draws cost
    one pass of each network.

    Examples
    --------
    >>> import torch
    >>> from quivers.categories.finset import FinSet
    >>> from quivers.distributions import Normal
    >>> from quivers.programs import Program, sample, observe, var
    >>> I = FinSet("I", 2)
    >>> prog = Program("p", I, I, [sample("mu", None, Normal(0.0, 1.0)), observe("y", I, Normal(var("mu"), 1.0))])
    >>> guide = AutoIAFNormal(prog, observed_names={"y"})
    >>> len(guide.layers), guide(3).latents["mu"].shape
    (3, torch.Size([3]))
    """

    def _transform(self, dim: int, order: torch.Tensor, hidden: tuple[int, ...]) -> nn.Module:
        from zuko.flows import MaskedAutoregressiveTransform

        return MaskedAutoregressiveTransform(dim, order=order, hidden_features=hidden)


class AutoMAFNormal(AutoIAFNormal):
    """Masked autoregressive flow guide: :class:`AutoIAFNormal`'s transforms
    the other way round, so the density of a given point is one pass (what
    reweighted wake-sleep's guide update asks for) and a draw is one pass
    per coordinate.

    Examples
    --------
    >>> import torch
    >>> from quivers.categories.finset import FinSet
    >>> from quivers.distributions import Normal
    >>> from quivers.programs import Program, sample, observe, var
    >>> I = FinSet("I", 2)
    >>> prog = Program("p", I, I, [sample("mu", None, Normal(0.0, 1.0)), observe("y", I, Normal(var("mu"), 1.0))])
    >>> AutoMAFNormal(prog, observed_names={"y"})(4).log_q.shape
    torch.Size([4])
    """

    inverse_autoregressive = False


class AutoNSFNormal(AutoFlowGuide):
    """Neural spline flow guide: monotone rational-quadratic spline
    transforms (``bins`` bins on ``[-5, 5]``, the identity outside), each
    coordinate's spline conditioned on the coordinates before it, in the
    inverse direction (draws cost one pass).

    Examples
    --------
    >>> import torch
    >>> from quivers.categories.finset import FinSet
    >>> from quivers.distributions import HalfNormal, Normal
    >>> from quivers.programs import Program, sample, observe, var
    >>> I = FinSet("I", 2)
    >>> prog = Program("p", I, I, [sample("mu", None, Normal(0.0, 1.0)), sample("sd", None, HalfNormal(1.0)),
    ...                            observe("y", I, Normal(var("mu"), var("sd")))])
    >>> guide = AutoNSFNormal(prog, observed_names={"y"}, bins=4)
    >>> bool((guide(6).latents["sd"] > 0).all())
    True
    """

    def __init__(
        self,
        model: Program,
        observed_names: Iterable[str] = (),
        init_scale: float = 0.1,
        *,
        num_flows: int = 3,
        hidden_dims: Sequence[int] = (64, 64),
        bins: int = 8,
        sites: Iterable[str] | None = None,
    ) -> None:
        if int(bins) != bins or bins < 2:
            raise QuiversTypeError(f"bins must be an integer of at least 2, got {bins!r}")
        self.bins = int(bins)
        super().__init__(model, observed_names, init_scale, num_flows=num_flows, hidden_dims=hidden_dims, sites=sites)

    def options(self) -> dict[str, Any]:
        return {**super().options(), "bins": self.bins}

    def _transform(self, dim: int, order: torch.Tensor, hidden: tuple[int, ...]) -> nn.Module:
        from functools import partial

        from zuko.flows import MaskedAutoregressiveTransform
        from zuko.transforms import MonotonicRQSTransform

        return MaskedAutoregressiveTransform(
            dim, order=order, hidden_features=hidden, univariate=partial(MonotonicRQSTransform, slope=1e-3),
            shapes=[(self.bins,), (self.bins,), (self.bins - 1,)],
        )
