"""Model adaptors: what an MCMC kernel needs to know about a model.

A kernel samples a batch of chains ``z`` of shape ``(C, D)`` on the
unconstrained space. Everything model-specific passes through a
:class:`ModelAdaptor`, a duck-typed protocol of three methods:

- ``init_unconstrained(num_chains, generator) -> Tensor (C, D)``: starting
  points, drawn from the CPU ``generator`` (so that a seed fixes them on any
  device) and returned on the device and dtype the chains should run in;
- ``potential(z, *args, **kwargs) -> Tensor (C,)``: the negative log density
  of each chain's point, Jacobians of the constraining maps included; it must
  be differentiable in ``z`` and rows must not interact (row ``c`` of the
  gradient depends on row ``c`` of ``z`` only);
- ``constrain(z: Tensor (..., D)) -> dict[str, Tensor]``: named sites on the
  constrained space, each of shape ``(..., *site_shape)``.

An adaptor may also have ``bind(*args, **kwargs)``, called with the run's
arguments before the chains start (a program without buffers of its own
runs its chains on the device of its data), and ``explain(z, *args,
**kwargs)``, which returns the error to raise when the potential is finite
at the point ``z`` (one row) but its gradient is not (a program's names
the latent and the step), or None.

Plain potential functions are wrapped in a :class:`PotentialAdaptor`.
:func:`as_model_adaptor` turns whatever a kernel is given into an adaptor; it
is a :func:`functools.singledispatch` function, so a layer above (programs)
registers its own conversion without this module knowing about it.

Laws: ``as_model_adaptor(a) is a`` for any ``a`` implementing the protocol,
and ``PotentialAdaptor(f, dim=D).constrain(z) == {"z": z}``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

from quivers.errors import InvalidValueError, QuiversTypeError, ShapeError

__all__ = ["ModelAdaptor", "PotentialAdaptor", "as_model_adaptor"]

_PROTOCOL_METHODS = ("init_unconstrained", "potential", "constrain")


@runtime_checkable
class ModelAdaptor(Protocol):
    """The interface between an MCMC kernel and a model.

    Examples
    --------
    >>> adaptor = PotentialAdaptor(lambda z: 0.5 * (z**2).sum(-1), dim=3)
    >>> isinstance(adaptor, ModelAdaptor)
    True
    """

    def init_unconstrained(self, num_chains: int, generator: torch.Generator) -> Tensor:
        """Starting points of ``num_chains`` chains, shape ``(num_chains, D)``."""
        ...

    def potential(self, z: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        """Negative log density of each row of ``z`` (shape ``(C, D)``), shape ``(C,)``."""
        ...

    def constrain(self, z: Tensor) -> dict[str, Tensor]:
        """Named sites on the constrained space from ``z`` of shape ``(..., D)``."""
        ...


class PotentialAdaptor:
    """Adapt a plain potential function ``f(z, *args, **kwargs) -> (C,)``.

    Parameters
    ----------
    potential_fn
        Negative log density of a batch ``z`` of shape ``(C, D)``.
    dim
        The dimension ``D``; chains then start uniformly in ``[-2, 2]^D``
        (Stan's default), in the default dtype on the CPU.
    initial_params
        Starting points instead, of shape ``(D,)`` (shared by every chain) or
        ``(C, D)``; their dtype and device are those the chains run in.
    site_name
        The name :meth:`constrain` gives to ``z``.

    Examples
    --------
    >>> adaptor = PotentialAdaptor(lambda z: 0.5 * (z**2).sum(-1), dim=2)
    >>> z = adaptor.init_unconstrained(3, torch.Generator().manual_seed(0))
    >>> z.shape, bool(z.abs().max() <= 2)
    (torch.Size([3, 2]), True)
    >>> adaptor.potential(torch.zeros(3, 2))
    tensor([0., 0., 0.])
    >>> list(adaptor.constrain(z))
    ['z']
    """

    def __init__(
        self,
        potential_fn: Callable[..., Tensor],
        *,
        dim: int | None = None,
        initial_params: Tensor | None = None,
        site_name: str = "z",
    ) -> None:
        if not callable(potential_fn):
            raise QuiversTypeError(
                f"`potential_fn` must be callable, got {type(potential_fn).__name__}"
            )
        if initial_params is None and dim is None:
            raise InvalidValueError(
                "a plain `potential_fn` needs `dim` or `initial_params` to know where to start",
                hint="pass e.g. `dim=5` or `initial_params=torch.zeros(5)`",
            )
        if initial_params is not None:
            initial_params = torch.as_tensor(initial_params)
            if not initial_params.is_floating_point():
                initial_params = initial_params.to(torch.get_default_dtype())
            if initial_params.dim() not in (1, 2) or initial_params.shape[-1] == 0:
                raise ShapeError(
                    f"`initial_params` has shape {tuple(initial_params.shape)}; "
                    "expected (D,) or (num_chains, D) with D >= 1"
                )
            if dim is not None and initial_params.shape[-1] != dim:
                raise ShapeError(
                    f"`initial_params` has {initial_params.shape[-1]} coordinates but `dim={dim}`"
                )
            dim = initial_params.shape[-1]
        if not isinstance(dim, int) or isinstance(dim, bool) or dim < 1:
            raise InvalidValueError(f"`dim` must be a positive integer, got {dim!r}")
        self.potential_fn = potential_fn
        self.dim = dim
        self.initial_params = initial_params
        self.site_name = site_name

    def init_unconstrained(self, num_chains: int, generator: torch.Generator) -> Tensor:
        """Starting points of shape ``(num_chains, dim)``."""
        init = self.initial_params
        if init is None:
            u = torch.rand(num_chains, self.dim, generator=generator, dtype=torch.float64)
            return (4.0 * u - 2.0).to(torch.get_default_dtype())
        if init.dim() == 1:
            return init.expand(num_chains, self.dim).clone()
        if init.shape[0] != num_chains:
            raise ShapeError(
                f"`initial_params` has {init.shape[0]} rows but the run has "
                f"`num_chains={num_chains}`",
                hint="give one row per chain, or a single point of shape (D,)",
            )
        return init.clone()

    def potential(self, z: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        """Call ``potential_fn(z, *args, **kwargs)``."""
        return self.potential_fn(z, *args, **kwargs)

    def constrain(self, z: Tensor) -> dict[str, Tensor]:
        """The identity, under the name ``site_name``."""
        return {self.site_name: z}

    def __repr__(self) -> str:
        return f"PotentialAdaptor({getattr(self.potential_fn, '__name__', 'potential_fn')}, dim={self.dim})"


@functools.singledispatch
def as_model_adaptor(model: Any) -> ModelAdaptor:
    """Return the :class:`ModelAdaptor` for ``model``.

    Any object with the three protocol methods is returned as is. Layers
    above register conversions for their own types with
    ``@as_model_adaptor.register(TheirType)``.

    Examples
    --------
    >>> adaptor = PotentialAdaptor(lambda z: (z**2).sum(-1), dim=1)
    >>> as_model_adaptor(adaptor) is adaptor
    True
    >>> as_model_adaptor(3.0)
    Traceback (most recent call last):
    ...
    quivers.errors.QuiversTypeError: `model` of type float is not a model MCMC can sample: it lacks `init_unconstrained`, `potential`, `constrain`
    """
    missing = [m for m in _PROTOCOL_METHODS if not callable(getattr(model, m, None))]
    if not missing:
        return model
    hint = None
    if callable(model):
        hint = "to sample a plain potential function, pass it as `potential_fn=` with `dim=`"
    names = ", ".join(f"`{m}`" for m in missing)
    raise QuiversTypeError(
        f"`model` of type {type(model).__name__} is not a model MCMC can sample: it lacks {names}",
        hint=hint,
    )


def resolve_adaptor(
    model: Any,
    potential_fn: Callable[..., Tensor] | None,
    *,
    dim: int | None,
    initial_params: Tensor | None,
) -> ModelAdaptor:
    """The adaptor a kernel uses: from ``model`` or from ``potential_fn``, never both."""
    if (model is None) == (potential_fn is None):
        raise QuiversTypeError(
            "give exactly one of `model` and `potential_fn`"
            + (" (both were given)" if model is not None else "")
        )
    if model is not None:
        if dim is not None or initial_params is not None:
            raise QuiversTypeError(
                "`dim` and `initial_params` only apply to a plain `potential_fn`; "
                "a model adaptor chooses its own starting points"
            )
        return as_model_adaptor(model)
    return PotentialAdaptor(potential_fn, dim=dim, initial_params=initial_params)
