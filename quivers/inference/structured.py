"""Guides with structure: full-rank blocks in a mean-field guide, and one
guide per block of latents.

- :class:`AutoStructuredNormal`: a normal over the unconstrained vector
  whose covariance is block-diagonal: the latents named together in a
  block are correlated (a full-rank factor), every other coordinate is
  independent (mean-field). Its scale matrix is lower triangular with
  entries only between coordinates of one block, so ``L L^T`` is
  block-diagonal as well.
- :class:`AutoGuideList` and :func:`compose_guides`: independent guides,
  each over its own latents (Pyro's ``AutoGuideList``); a draw is the
  concatenation of the parts' draws and its log density the sum of theirs.

Laws
----
- With no blocks, :class:`AutoStructuredNormal` is
  :class:`~quivers.inference.AutoNormal`; with one block of every latent it
  is :class:`~quivers.inference.AutoMultivariateNormal`.
- The log density of a composed guide's draw is the sum of its parts' log
  densities of their pieces of the draw.

Examples
--------
>>> import torch
>>> from quivers.categories.finset import FinSet
>>> from quivers.distributions import HalfNormal, Normal
>>> from quivers.programs import Program, sample, observe, var
>>> I = FinSet("I", 3)
>>> prog = Program("p", I, I, [sample("a", None, Normal(0.0, 1.0)), sample("b", None, Normal(0.0, 1.0)),
...                            sample("s", None, HalfNormal(1.0)),
...                            observe("y", I, Normal(var("a") + var("b"), var("s")))])
>>> from quivers.inference import AutoMultivariateNormal, AutoNormal
>>> guide = compose_guides(prog, {("a", "b"): AutoMultivariateNormal, "s": AutoNormal}, observed_names={"y"})
>>> [type(p).__name__ for p in guide.parts]
['AutoMultivariateNormal', 'AutoNormalGuide']
>>> sorted(guide(4).latents)
['a', 'b', 's']
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Distribution

from quivers.errors import QuiversTypeError, UnknownNameError
from quivers.inference.guides import AutoGuide, AutoNormalGuide, GuideDraw, _softplus_inv
from quivers.inference.layout import Layout
from quivers.programs import Program

__all__ = ["AutoStructuredNormal", "AutoGuideList", "compose_guides"]


def _names(block: str | Iterable[str]) -> tuple[str, ...]:
    return (block,) if isinstance(block, str) else tuple(block)


class AutoStructuredNormal(AutoGuide):
    """A normal guide, full-rank within each block of latents and
    mean-field elsewhere.

    Parameters
    ----------
    model, observed_names, init_scale, sites
        As for every automatic guide.
    blocks
        The blocks of latents to keep correlated, e.g. ``[("mu", "tau")]``;
        a latent may be in one block at most. A block of one latent
        correlates that latent's own coordinates (a vector latent).

    Examples
    --------
    >>> import torch
    >>> from quivers.categories.finset import FinSet
    >>> from quivers.distributions import Normal
    >>> from quivers.programs import Program, sample, observe, var
    >>> I = FinSet("I", 3)
    >>> prog = Program("p", I, I, [sample("a", None, Normal(0.0, 1.0)), sample("b", None, Normal(0.0, 1.0)),
    ...                            sample("c", None, Normal(0.0, 1.0)),
    ...                            observe("y", I, Normal(var("a") + var("b") + var("c"), 1.0))])
    >>> guide = AutoStructuredNormal(prog, observed_names={"y"}, blocks=[("a", "c")])
    >>> (guide.mask != 0).int()  # a and c correlated, b on its own
    tensor([[0, 0, 0],
            [0, 0, 0],
            [1, 0, 0]], dtype=torch.int32)
    """

    def __init__(
        self,
        model: Program,
        observed_names: Iterable[str] = (),
        init_scale: float = 0.1,
        *,
        blocks: Sequence[str | Iterable[str]] = (),
        sites: Iterable[str] | None = None,
    ) -> None:
        super().__init__(model, observed_names, init_scale, sites=sites)
        where = {s.name: s for s in self.layout.slices}
        block_of = torch.full((self.dim,), -1, dtype=torch.long)
        self.blocks: list[tuple[str, ...]] = []
        for b, block in enumerate(blocks):
            names = _names(block)
            for name in names:
                if name not in where:
                    raise UnknownNameError(
                        f"block {names} names `{name}`, which is no continuous latent this guide covers",
                        name=name, candidates=sorted(where),
                    )
                s = where[name]
                if bool((block_of[s.start:s.start + s.size] >= 0).any()):
                    raise QuiversTypeError(f"`{name}` is in two blocks; a latent may be in one block at most")
                block_of[s.start:s.start + s.size] = b
            self.blocks.append(names)
        same = (block_of[:, None] == block_of[None, :]) & (block_of[:, None] >= 0)
        self.register_buffer("mask", torch.tril(same, -1).to(torch.get_default_dtype()))
        self.loc = nn.Parameter(self._init_loc.clone())
        self.raw_diag = nn.Parameter(torch.full((self.dim,), _softplus_inv(init_scale)))
        self.offdiag = nn.Parameter(torch.zeros(self.dim, self.dim))

    def options(self) -> dict[str, Any]:
        return {"blocks": [list(b) for b in self.blocks]}

    def scale_tril(self) -> torch.Tensor:
        """The lower-triangular scale: ``offdiag`` only inside a block."""
        return self.offdiag * self.mask + torch.diag_embed(F.softplus(self.raw_diag))

    def base(self) -> Distribution:
        return torch.distributions.MultivariateNormal(self.loc, scale_tril=self.scale_tril())


class AutoGuideList(AutoGuide):
    """Independent guides over disjoint latents of one model, as one guide
    (Pyro's ``AutoGuideList``).

    Parameters
    ----------
    model
        The program every part approximates the posterior of.
    parts
        The guides, each built with ``sites=`` naming its latents.

    Examples
    --------
    >>> import torch
    >>> from quivers.categories.finset import FinSet
    >>> from quivers.distributions import Normal
    >>> from quivers.programs import Program, sample, observe, var
    >>> from quivers.inference import AutoDelta, AutoNormal
    >>> I = FinSet("I", 3)
    >>> prog = Program("p", I, I, [sample("a", None, Normal(0.0, 1.0)), sample("b", None, Normal(0.0, 1.0)),
    ...                            observe("y", I, Normal(var("a") + var("b"), 1.0))])
    >>> guide = AutoGuideList(prog, [AutoDelta(prog, {"y"}, sites=["a"]), AutoNormal(prog, {"y"}, sites=["b"])])
    >>> guide.layout.names
    ['a', 'b']
    """

    def __init__(self, model: Program, parts: Sequence[AutoGuide]) -> None:
        nn.Module.__init__(self)
        if not isinstance(model, Program):
            raise QuiversTypeError(f"a guide needs a quivers Program, got {type(model).__name__}")
        parts = list(parts)
        if not parts:
            raise QuiversTypeError("AutoGuideList needs at least one guide")
        seen: dict[str, int] = {}
        for i, part in enumerate(parts):
            if not isinstance(part, AutoGuide):
                raise QuiversTypeError(f"part {i} of AutoGuideList is a {type(part).__name__}, not a quivers guide")
            if part.model is not model:
                raise QuiversTypeError(f"part {i} of AutoGuideList ({type(part).__name__}) was built for another model")
            if isinstance(part, AutoGuideList):
                raise QuiversTypeError("an AutoGuideList cannot hold another; list its parts instead")
            for name in part.layout.names + [s.name for s in part.discrete_sites]:
                if name in seen:
                    raise QuiversTypeError(
                        f"`{name}` is covered by parts {seen[name]} and {i}; each latent needs exactly one guide",
                        hint="build each part with sites= naming its own latents",
                    )
                seen[name] = i
        self._model = (model,)
        self.parts = nn.ModuleList(parts)
        self.init_scale = parts[0].init_scale
        self.discrete_sites = [s for p in parts for s in p.discrete_sites]
        self.layout = Layout([s.site for p in parts for s in p.layout.slices], model.parameters_of)
        self._dims = [p.dim for p in parts]

    # its parts are not rebuilt from options: loading a checkpoint or a fit
    # needs the composed guide passed in
    rebuildable = False

    @property
    def logits(self) -> dict[str, torch.Tensor]:
        """The categorical logits of every part's discrete latents."""
        return {k: v for p in self.parts for k, v in p.logits.items()}

    def _split(self, u: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return u.split(self._dims, -1)

    def _base_draw(self, num: int) -> tuple[torch.Tensor, torch.Tensor]:
        pieces = [p._base_draw(num) for p in self.parts]
        return torch.cat([u for u, _ in pieces], -1), sum(lb for _, lb in pieces)

    def forward(self, num_particles: int = 1) -> GuideDraw:
        """Every part's draw; the unconstrained draws concatenated first
        and split again, so that gradients through the joint draw (DReG's
        reweighting) reach every part."""
        u, log_base = self._base_draw(num_particles)
        latents: dict[str, torch.Tensor] = {}
        log_q, log_q_discrete = log_base, log_base.new_zeros(log_base.shape)
        for part, piece in zip(self.parts, self._split(u)):
            draw = part._transform_draws(piece, log_base.new_zeros(log_base.shape), num_particles)
            latents.update(draw.latents)
            log_q = log_q + draw.log_q
            log_q_discrete = log_q_discrete + draw.log_q_discrete
        return GuideDraw(latents, log_q, log_q_discrete, u, log_base)

    def log_prob(self, u: torch.Tensor) -> torch.Tensor:
        return sum(p.log_prob(piece) for p, piece in zip(self.parts, self._split(u)))

    def stopped_log_prob(self, u: torch.Tensor) -> torch.Tensor:
        return sum(p.stopped_log_prob(piece) for p, piece in zip(self.parts, self._split(u)))

    def _loc(self) -> torch.Tensor:
        return torch.cat([p._loc() for p in self.parts], -1)

    def _marginal_scale(self) -> torch.Tensor:
        return torch.cat([p._marginal_scale() for p in self.parts], -1)

    @torch.no_grad()
    def median(self) -> dict[str, torch.Tensor]:
        return {k: v for p in self.parts for k, v in p.median().items()}

    @torch.no_grad()
    def quantiles(self, qs: Sequence[float]) -> dict[str, torch.Tensor]:
        return {k: v for p in self.parts for k, v in p.quantiles(qs).items()}


def compose_guides(
    model: Program,
    blocks: Mapping[str | tuple[str, ...], Callable[..., AutoGuide]],
    observed_names: Iterable[str] = (),
    *,
    rest: Callable[..., AutoGuide] | None = AutoNormalGuide,
    **kwargs: Any,
) -> AutoGuideList:
    """One guide per block of latents: ``{"a": AutoNormal, ("b", "c"):
    AutoMultivariateNormal}`` builds each class with ``sites=`` its block
    (and ``kwargs``) and joins them in an :class:`AutoGuideList`.

    Latents named in no block get a ``rest`` guide (mean-field by default);
    ``rest=None`` makes leaving one out an error.

    Examples
    --------
    >>> import torch
    >>> from quivers.categories.finset import FinSet
    >>> from quivers.distributions import Normal
    >>> from quivers.programs import Program, sample, observe, var
    >>> from quivers.inference import AutoMultivariateNormal
    >>> I = FinSet("I", 3)
    >>> prog = Program("p", I, I, [sample("a", None, Normal(0.0, 1.0)), sample("b", None, Normal(0.0, 1.0)),
    ...                            sample("c", None, Normal(0.0, 1.0)),
    ...                            observe("y", I, Normal(var("a") + var("b") + var("c"), 1.0))])
    >>> [p.layout.names for p in compose_guides(prog, {("a", "c"): AutoMultivariateNormal}, {"y"}).parts]
    [['a', 'c'], ['b']]
    >>> compose_guides(prog, {("a", "c"): AutoMultivariateNormal}, {"y"}, rest=None)
    Traceback (most recent call last):
    ...
    quivers.errors.QuiversTypeError: no guide covers ['b']; name them in a block, or pass rest= a guide class
    """
    if not isinstance(model, Program):
        raise QuiversTypeError(f"a guide needs a quivers Program, got {type(model).__name__}")
    observed = set(observed_names)
    parts = []
    named: set[str] = set()
    for block, cls in blocks.items():
        names = _names(block)
        if not (isinstance(cls, type) and issubclass(cls, AutoGuide)):
            raise QuiversTypeError(f"the guide of block {names} must be a guide class, got {cls!r}")
        parts.append(cls(model, observed, sites=names, **kwargs))
        named.update(names)
    left = [s.name for s in model.latent_sites(observed) if s.name not in named]
    if left:
        if rest is None:
            raise QuiversTypeError(f"no guide covers {left}", hint="name them in a block, or pass rest= a guide class")
        parts.append(rest(model, observed, sites=left, **kwargs))
    return AutoGuideList(model, parts)
