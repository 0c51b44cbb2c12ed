"""The objective of SVI for a model made of morphisms.

A morphism module (a :class:`~quivers.nn.MorphismModule`: a learned kernel,
a composite of kernels, a scan, a :class:`~quivers.nn.NeuralKernel`, a
:class:`~quivers.nn.KernelProgram`) has no latent sites for a guide to
cover: its parameters are point estimates, as ``pyro.param`` values are
under an empty guide. Its ELBO is then its log density of the data, plus
the log prior of its kernels that declare one (the objective of a MAP fit):

- a morphism between finite sets scores ``x -> y`` by its log weight,
  ``log M[x, y]`` read in the ``LOG`` semiring, exactly (a forward
  algorithm when ``M`` is a scan); a morphism into ``1`` reads ``x`` alone;
- a neural kernel scores ``log p(y | x)`` under its family, and a
  composite that ends in one (``encoder >> head``) scores ``y`` under the
  head at one draw of the rest (exact when the rest is deterministic);
- a kernel program scores its observed sites (``observations`` maps their
  names to data), its own draws made by reparameterization: the ELBO whose
  guide is the program's prior, averaged over ``num_particles`` runs. With
  a guide (kernels by draw, ``{"z": encoder}``, or one kernel for a program
  with one draw) the named draws come from the guide at the program's
  input and the loss is ``-(log p(x, z) - log q(z | x))``: a VAE's ELBO.

Examples
--------
>>> import torch
>>> from quivers.categories import FinSet
>>> from quivers.nn import latent
>>> A, B = FinSet("A", 2), FinSet("B", 3)
>>> f = latent(A, B, scale=0.0)  # uniform rows
>>> loss = morphism_loss(f, None, torch.tensor([0, 1]), torch.tensor([2, 2]))[1]
>>> round(loss, 4) == round(2 * float(torch.tensor(3.0).log()), 4)
True
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from quivers.categories import LOG, FinSet
from quivers.errors import DataError, QuiversTypeError
from quivers.nn import Embed, KernelProgram, MorphismModule, NeuralKernel, is_continuous

__all__ = ["log_density", "morphism_loss"]


def log_density(model: MorphismModule, x: Any, observations: Any = None) -> Tensor:
    """The log density of the data under ``model``, summed over rows.

    Parameters
    ----------
    model
        A morphism module.
    x
        The inputs: elements of ``dom`` (sequences, for a scan), or the
        input values of a neural kernel or kernel program.
    observations
        The outputs: elements of ``cod`` (none for a morphism into ``1``),
        values of a neural kernel's codomain, or a dict of a kernel
        program's observed sites.
    """
    if isinstance(model, KernelProgram):
        if not isinstance(observations, Mapping):
            raise DataError(
                f"program `{model.name}` is scored on a dict of its observed sites, got {type(observations).__name__}"
            )
        return model.log_prob(observations, x)
    if observations is None and model.cod != FinSet.unit():
        raise DataError(
            f"a morphism `{model.dom} -> {model.cod}` scores pairs (x, y): give the outputs as observations "
            "(only a morphism into 1 scores its inputs alone)"
        )
    if is_continuous(model.cod) or any(isinstance(m, (NeuralKernel, Embed)) for m in model.modules()):
        # a network that ends in a family: its last family scores y at one draw of the rest
        # (exact when the rest is deterministic, as an encoder is)
        return model.last_log_prob(torch.as_tensor(observations), x).sum()
    weights = model.run(torch.as_tensor(x), LOG)
    if observations is None:
        return weights[..., 0].sum()
    y = torch.as_tensor(observations).long()
    if y.shape != weights.shape[:-1]:
        raise DataError(
            f"the outputs of `{model.dom} -> {model.cod}` have shape {tuple(y.shape)}; "
            f"the inputs give {tuple(weights.shape[:-1])}"
        )
    if bool(((y < 0) | (y >= weights.shape[-1])).any()):
        raise DataError(f"an output is not an element of {model.cod} (0 .. {weights.shape[-1] - 1})")
    return weights.gather(-1, y[..., None])[..., 0].sum()


def _sites(model: KernelProgram, guide: Any) -> dict[str, NeuralKernel]:
    """The guide of a kernel program as kernels by site: a dict, or one
    kernel for a program with one draw."""
    draws = [s.name for s in model.steps if s.kind == "sample"]
    sites = dict(guide) if isinstance(guide, Mapping) else ({draws[0]: guide} if len(draws) == 1 else None)
    if sites is None:
        raise QuiversTypeError(
            f"program `{model.name}` draws {', '.join(f'`{d}`' for d in draws) or 'nothing'}; give its guide as "
            "a dict of kernels by draw, e.g. {" + (f'"{draws[0]}"' if draws else '"z"') + ": encoder}"
        )
    for name, kernel in sites.items():
        if name not in draws:
            raise QuiversTypeError(f"the guide covers `{name}`, which program `{model.name}` does not draw; "
                                   f"it draws {', '.join(f'`{d}`' for d in draws) or 'nothing'}")
        if not hasattr(kernel, "distribution"):
            raise QuiversTypeError(f"the guide of `{name}` is a kernel with a family (a neural kernel), "
                                   f"got {kernel!r}")
    return sites


def _guided(model: KernelProgram, sites: Mapping[str, NeuralKernel], x: Any, observations: Any) -> Tensor:
    """One draw of the ELBO ``log p(x, z) - log q(z | x)`` with ``z`` from
    the guide's kernels at the program's input (reparameterized)."""
    if not isinstance(observations, Mapping):
        raise DataError(f"program `{model.name}` is scored on a dict of its observed sites, "
                        f"got {type(observations).__name__}")
    given, log_q = {}, torch.zeros(())
    for name, kernel in sites.items():
        q = kernel.distribution(x)
        given[name] = q.rsample() if q.has_rsample else q.sample()
        log_q = log_q + q.log_prob(given[name]).sum()
    return model.run(x, observations, given)[1] - log_q


def morphism_loss(
    model: MorphismModule, guide: Any, x: Any, observations: Any, num_particles: int = 1
) -> tuple[Tensor, float]:
    """``-(log density + log prior)`` to differentiate, and its value.

    Raises
    ------
    QuiversTypeError
        A guide given to a model that is not a kernel program (its
        parameters are point estimates), or one that does not fit its draws.
    DataError
        A loss that is not finite (data of weight zero under the model).
    """
    if guide is not None and not isinstance(model, KernelProgram):
        raise QuiversTypeError(
            f"a morphism model has no latent sites for a guide; got {type(guide).__name__}",
            hint="pass guide=None: the morphism's parameters are fitted as point estimates",
        )
    runs = num_particles if isinstance(model, KernelProgram) else 1  # the other densities are exact
    if guide is not None:
        terms = [_guided(model, _sites(model, guide), x, observations) for _ in range(max(int(runs), 1))]
    else:
        terms = [log_density(model, x, observations) for _ in range(max(int(runs), 1))]
    loss = -(torch.stack(terms).mean() + model.log_prior())
    value = loss.item()
    if not torch.isfinite(loss):
        raise DataError(
            f"the log density of the data under `{model.dom} -> {model.cod}` is {-value}",
            hint="some datum has weight zero under the model's kernels",
        )
    return loss, value
