"""Gibbs steps for the discrete latents of a program, inside NUTS.

A discrete latent that no plan sums (infinitely many values, as a
``Poisson``; a plan over the memory budget; ``[enumerate=false]``; a
program without ``marginalize=auto``) is sampled instead:
:class:`GibbsAdaptor` is the program seen by
:class:`~quivers.inference.mcmc.gibbs.DiscreteHMCGibbs`, which alternates
NUTS on the continuous latents given the discrete values with a sweep that
draws each discrete site from its exact full conditional given the rest
(the sites that the program's plan sums stay summed in every density):

- **a block draw** where the site alone can be summed given the others:
  the plan of ``auto(program, exclude=<the other sampled sites>)`` draws
  every copy of the site at once from its exact joint conditional (for a
  latent per row of a plate, one draw per row, vectorized over the plate);
- **one copy at a time** where that plan is over the budget: for each copy
  of the site, the log joint at each of its values (one batched call over
  values and chains), and a draw from their softmax;
- **a Metropolis step** for a site with infinitely many values: for each
  copy, the proposal ``value +- 1`` (a symmetric random walk on the
  integers; a proposal outside the support is rejected) accepted with
  probability ``min(1, p(proposal) / p(current))``.

Each move leaves the joint posterior of the continuous and discrete latents
invariant, so the draws are those of the posterior; ``fit(...,
discrete="gibbs")`` runs this.

Examples
--------
>>> import torch
>>> from quivers.categories.finset import FinSet
>>> from quivers.distributions import Normal, Poisson
>>> from quivers.inference.mcmc import MCMC
>>> from quivers.inference.mcmc.gibbs import DiscreteHMCGibbs
>>> from quivers.programs import Program, observe, sample, var
>>> I = FinSet("I", 3)
>>> prog = Program("p", I, I, [sample("mu", None, Normal(0.0, 1.0)), sample("n", None, Poisson(2.0)),
...                            observe("y", I, Normal(var("mu") + var("n"), 1.0))])
>>> mcmc = MCMC(DiscreteHMCGibbs(GibbsAdaptor(prog)), num_warmup=50, num_samples=50, num_chains=2,
...             seed=0, progress_bar=False)
>>> mcmc.run(None, {"y": torch.tensor([3.1, 2.8, 3.4])})
>>> draws = mcmc.get_samples()
>>> draws["mu"].shape, draws["n"].shape, bool((draws["n"] >= 0).all())
(torch.Size([100]), torch.Size([100]), True)
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from quivers.errors import QuiversTypeError, QuiversWarning
from quivers.inference.mcmc.gibbs import as_gibbs_model
from quivers.inference.program_adaptor import ProgramAdaptor
from quivers.programs import Program

__all__ = ["GibbsAdaptor"]


@dataclass
class _Discrete:
    """A sampled discrete site: its shape, its place in a chain's row of
    discrete values, its number of values (None: infinitely many) and its
    bounds, and the dtype the program reads it in."""

    name: str
    shape: tuple[int, ...]
    start: int
    size: int
    num_values: int | None
    low: float
    high: float
    dtype: torch.dtype = torch.long


class GibbsAdaptor(ProgramAdaptor):
    """A program with discrete latents, seen by
    :class:`~quivers.inference.mcmc.gibbs.DiscreteHMCGibbs`.

    Parameters are those of :class:`~quivers.inference.ProgramAdaptor`;
    ``init`` may also give the discrete latents' starting values (with a
    leading chain axis); otherwise they are drawn from the prior.
    ``discrete_init`` gives them as rows ``(C, M)`` (a run's last draws,
    to resume from).
    """

    explain = None  # the kernel's diagnosis of a bad start reads one chain's row, not the discrete values

    def __init__(
        self,
        program: Program,
        observed_names: Iterable[str] = (),
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        init: Mapping[str, Any] | Tensor | None = None,
        discrete_init: Tensor | None = None,
    ) -> None:
        self._given_init = {k: v for k, v in init.items()} if isinstance(init, Mapping) else {}
        super().__init__(program, observed_names, device, dtype, init)
        self._discrete_init = discrete_init
        self._conditionals: dict[str, Program | None] = {}
        self._d: Tensor | None = None

    # -- which latents are which ---------------------------------------------------

    def _continuous(self, program: Program, sites: list) -> list:
        from quivers.planning.sites import values_of

        continuous = [s for s in sites if not s.discrete]
        discrete = [s for s in sites if s.discrete]
        if not discrete:
            raise QuiversTypeError(f"`{program.name}` has no sampled discrete latent for Gibbs steps to draw",
                                   hint="sample it with NUTS alone")
        if not continuous:
            raise QuiversTypeError(
                f"every latent of `{program.name}` is discrete ({[s.name for s in discrete]}): NUTS has nothing "
                "to move", hint="sum them exactly with [marginalize=auto], or fit with SVI")
        self.discrete: list[_Discrete] = []
        start = 0
        for s in discrete:
            if s.event_dims:
                raise QuiversTypeError(f"`{s.name}` takes vector values ({s.family.name}); Gibbs steps draw "
                                       "scalar discrete sites", hint="fit with SVI")
            values = values_of(s)
            support = s.support()
            low = float(getattr(support, "lower_bound", 0 if values is not None else -math.inf))
            high = float(getattr(support, "upper_bound", math.inf))
            count = None if isinstance(values, str) else values.size
            size = math.prod(s.shape)
            self.discrete.append(_Discrete(s.name, tuple(s.shape), start, size, count, low, high))
            start += size
        self.num_discrete = start
        return continuous

    @property
    def dims(self) -> dict[str, tuple[str, ...]]:
        """The FinSet axes of each sampled latent, discrete ones included."""
        return {**super().dims, **{d.name: self.program.sites[d.name].dims for d in self.discrete}}

    # -- the discrete values in a chain's row ------------------------------------------

    def values_of(self, d: Tensor) -> dict[str, Tensor]:
        """The discrete sites' values from rows ``(..., M)`` of them."""
        batch = d.shape[:-1]
        return {s.name: d[..., s.start : s.start + s.size].round().reshape(batch + s.shape).to(s.dtype)
                for s in self.discrete}

    def pack(self, values: Mapping[str, Tensor], dtype: torch.dtype) -> Tensor:
        """Rows ``(C, M)`` of the discrete values of ``values``."""
        parts = [values[s.name].reshape(values[s.name].shape[: values[s.name].dim() - len(s.shape)] + (s.size,))
                 for s in self.discrete]
        return torch.cat([p.to(dtype) for p in parts], -1)

    def set_discrete(self, d: Tensor) -> None:
        """The discrete values ``(C, M)`` the potential reads."""
        self._d = d

    def _unpack(self, z: Tensor) -> tuple[dict[str, Tensor], Tensor]:
        values, logdet = self.layout.unpack(z)
        return {**values, **self.values_of(self._d.to(z.device))}, logdet

    def constrain(self, z: Tensor) -> dict[str, Tensor]:
        """The continuous latents of rows ``z`` and, where the rows go on
        past them, the discrete ones."""
        dim = self.layout.dim
        out = self.layout.constrain(z[..., :dim])
        if z.shape[-1] > dim:
            out.update(self.values_of(z[..., dim:]))
        return out

    def init_discrete(self, num_chains: int, generator: torch.Generator, x: Any = None,
                      observations: Mapping[str, Any] | None = None) -> Tensor:
        """Starting discrete values: ``discrete_init``, those given in
        ``init``, or one draw from the prior per chain."""
        observations = self._data(observations, self.device)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(torch.randint(2**62, (1,), generator=generator)))
            prior = self.program.sample(x, (num_chains,), observations=observations)
        for s in self.discrete:
            s.dtype = prior[s.name].dtype
        if self._discrete_init is not None:
            d = torch.as_tensor(self._discrete_init)
            if tuple(d.shape) != (num_chains, self.num_discrete):
                raise QuiversTypeError(f"`discrete_init` has shape {tuple(d.shape)}; expected "
                                       f"({num_chains}, {self.num_discrete})")
            return d.to(device=self.device, dtype=self.dtype)
        given = {s.name: torch.as_tensor(self._given_init.get(s.name, prior[s.name])) for s in self.discrete}
        return self.pack(given, self.dtype).to(self.device)

    # -- the sweep --------------------------------------------------------------------

    def gibbs(self, z: Tensor, d: Tensor, generator: torch.Generator, x: Any = None,
              observations: Mapping[str, Any] | None = None) -> Tensor:
        """One sweep: each discrete site, in the program's order, from its
        full conditional given ``z`` and the other discrete values."""
        observations = self._data(observations, self.device)
        continuous = self.layout.unpack(z)[0]
        current = self.values_of(d)
        for s in self.discrete:
            latents = {**continuous, **current}
            if s.num_values is None:
                current[s.name] = self._metropolis(s, x, observations, latents, generator)
                continue
            conditional = self._conditional(s.name)
            if conditional is not None:
                current[s.name] = self._block(conditional, s, x, observations, latents, generator)
            else:
                current[s.name] = self._one_at_a_time(s, x, observations, latents, generator)
        return self.pack(current, d.dtype)

    def _conditional(self, name: str) -> Program | None:
        """The program that sums ``name`` alone (the other sampled sites
        given), as its plan sums the rest; None when that plan is over the
        budget."""
        if name not in self._conditionals:
            from quivers.planning import DEFAULT_BUDGET, auto

            others = [s.name for s in self.discrete if s.name != name]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", QuiversWarning)  # over the budget: said by the caller's plan
                planned = auto(self.program, exclude=others, budget=getattr(self.program, "budget", DEFAULT_BUDGET))
            self._conditionals[name] = planned if name in planned.summed else None
        return self._conditionals[name]

    def _block(self, conditional, s: _Discrete, x, observations, latents, generator) -> Tensor:
        """Every copy of ``s`` at once, from its exact conditional."""
        given = {k: v for k, v in latents.items() if k != s.name}
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(torch.randint(2**62, (1,), generator=generator, device=generator.device)))
            return conditional.posterior_draws(x, observations, given)[s.name].to(s.dtype)

    def _one_at_a_time(self, s: _Discrete, x, observations, latents, generator) -> Tensor:
        """Each copy of ``s`` in turn, from its conditional: the log joint at
        each of its ``K`` values, for every chain in one call."""
        K = s.num_values
        flat = latents[s.name].reshape(-1, s.size).clone()
        chains = flat.shape[0]
        rest = _repeat({k: v for k, v in latents.items() if k != s.name}, K)
        values = torch.arange(K, device=flat.device, dtype=flat.dtype).unsqueeze(-1)
        for j in range(s.size):
            candidates = flat.unsqueeze(0).repeat(K, 1, 1)
            candidates[:, :, j] = values
            rest[s.name] = candidates.reshape((K * chains,) + s.shape).to(s.dtype)
            lp = self.program.log_joint(x, observations, rest, check_latents=False).reshape(K, chains)
            flat[:, j] = _categorical(lp.T, generator).to(flat.dtype)
        return flat.reshape((chains,) + s.shape)

    def _metropolis(self, s: _Discrete, x, observations, latents, generator) -> Tensor:
        """Each copy of ``s`` in turn: a random-walk Metropolis step of +-1."""
        flat = latents[s.name].reshape(-1, s.size).clone()
        chains = flat.shape[0]
        rest = _repeat({k: v for k, v in latents.items() if k != s.name}, 2)
        for j in range(s.size):
            step = torch.randint(0, 2, (chains,), generator=generator, device=generator.device) * 2 - 1
            proposal = flat.clone()
            proposal[:, j] += step.to(flat.device, flat.dtype)
            inside = (proposal[:, j] >= s.low) & (proposal[:, j] <= s.high)
            proposal[:, j] = torch.where(inside, proposal[:, j], flat[:, j])  # never evaluated outside
            rest[s.name] = torch.cat([flat, proposal]).reshape((2 * chains,) + s.shape).to(s.dtype)
            lp = self.program.log_joint(x, observations, rest, check_latents=False).reshape(2, chains)
            u = torch.rand(chains, generator=generator, device=generator.device, dtype=lp.dtype).to(lp.device)
            accept = inside & (u.log() < lp[1] - lp[0])
            flat[:, j] = torch.where(accept, proposal[:, j], flat[:, j])
        return flat.reshape((chains,) + s.shape)


def _repeat(values: Mapping[str, Tensor], copies: int) -> dict[str, Tensor]:
    """Each value ``(C, ...)`` repeated ``copies`` times along its chain
    axis, ``(copies * C, ...)``, copy after copy."""
    return {k: v.repeat((copies,) + (1,) * (v.dim() - 1)) for k, v in values.items()}


def _categorical(logits: Tensor, generator: torch.Generator) -> Tensor:
    """One draw per row of ``logits`` ``(C, K)`` from the run's generator."""
    # by hand: torch.softmax over a short last axis is slow on a CPU
    cdf = (logits - logits.amax(-1, keepdim=True)).exp().cumsum(-1)
    u = torch.rand(cdf.shape[0], 1, generator=generator, device=generator.device, dtype=cdf.dtype)
    return (cdf < u.to(cdf.device) * cdf[:, -1:]).sum(-1).clamp_max(cdf.shape[-1] - 1)


@as_gibbs_model.register(Program)
def _program_gibbs_model(model: Program) -> GibbsAdaptor:
    return GibbsAdaptor(model)
