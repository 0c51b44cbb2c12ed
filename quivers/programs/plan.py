"""A program's log joint planned once for one data set.

An inference engine evaluates a program's log joint at new latents many
times on the same data: an SVI step per particle draw, a leapfrog step of
NUTS. :meth:`Program.compile_log_joint(observations)
<quivers.programs.Program.compile_log_joint>` returns a
:class:`LogJointPlan` that does the work that depends only on the data
once, at its first call: the data and index maps validated, the constants
cast to the dtype and device of the run, every name bound. Each later call
binds the latents to their sites' axes and runs the steps; nothing is
checked but that the latents have the names, trailing shapes, dtype and
device the plan was made for.

Laws
----
- ``plan(latents)`` equals ``program.log_joint(x, observations, latents,
  check_latents=False)`` bit for bit, and so does its gradient: the plan
  runs the same steps on the same environment.
- A plan never answers for other data: data written in place since, a
  program moved (``.to``, ``.double``), or latents of another trailing
  shape, dtype or device make it bind afresh (validating again); latents
  with other names get the errors of the unplanned path.
- Like ``check_latents=False``, latents are taken as an inference engine's
  own transforms produce them: a value outside its support gives a
  non-finite density rather than an error.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from quivers.programs.data import check_value
from quivers.programs.expr import REF
from quivers.programs.named import Value

__all__ = ["LogJointPlan", "data_key"]


def data_key(x: Any, observations: Mapping[str, Any] | None) -> tuple:
    """What identifies a data set for a plan: each value's identity and,
    for a tensor, its version (bumped by every write in place)."""
    obs = () if observations is None else tuple(
        (k, id(v), v._version) if isinstance(v, torch.Tensor) else (k, id(v)) for k, v in observations.items()
    )
    return (id(x), x._version if isinstance(x, torch.Tensor) else None) + obs


class LogJointPlan:
    """The log joint of ``program`` on the data ``observations`` (and the
    input ``x``), as a function of the latents: see the module's laws.

    Parameters
    ----------
    program
        The program.
    observations
        The data (observations, data and index maps) every call conditions
        on; the plan holds these tensors.
    x
        The program's input, if it takes one.

    Examples
    --------
    >>> import torch
    >>> from quivers.categories import FinSet
    >>> from quivers.distributions import Normal
    >>> from quivers.programs import Program, observe, sample, var
    >>> I = FinSet("I", 2)
    >>> p = Program("p", I, I, [sample("mu", None, Normal(0.0, 1.0)),
    ...                         observe("y", I, Normal(var("mu"), 1.0))])
    >>> plan = LogJointPlan(p, {"y": torch.zeros(2)})
    >>> plan.latent_names
    ('mu',)
    >>> plan({"mu": torch.zeros(4)}).shape  # a batch of four
    torch.Size([4])
    """

    def __init__(self, program: Any, observations: Mapping[str, Any] | None = None, x: Any = None) -> None:
        self.program = program
        self.x = x
        self.observations = dict(observations or {})
        self.key = data_key(x, observations)
        names = [n for n, s in program.sites.items()
                 if s.kind in ("latent", "marginal") and n not in self.observations and n not in program.summed]
        self.latent_names: tuple[str, ...] = tuple(n for n in names if program.sites[n].kind == "latent")
        self._bound: tuple | None = None  # what the first call bound: see _bind

    def matches(self, x: Any, observations: Mapping[str, Any] | None) -> bool:
        """Whether this plan is for the data ``x`` and ``observations``."""
        return data_key(x, observations) == self.key

    def _bind(self, latents: Mapping[str, Any]) -> torch.Tensor:
        """The unplanned run at ``latents``, keeping what the later calls
        reuse: the environment without the latents, the index maps, the
        program's generation and the latents' trailing shapes, dtypes and
        devices."""
        program = self.program
        self._bound = None
        for name, t in latents.items():  # the shapes the unchecked path would meet as a bare torch error
            site = program.sites.get(name)
            if type(t) in (torch.Tensor, torch.nn.Parameter) and site is not None and site.kind == "latent":
                n = t.dim() - len(site.shape)
                if n < 0 or tuple(t.shape[n:]) != tuple(site.shape):
                    check_value(site, t, "latent")  # raises the ShapeError naming the site
        env, maps, batch = program._env(self.observations, latents, "density", False, self.x)
        base = {k: v for k, v in env.items() if k not in latents}  # before the run adds its own names
        out = program._execute(env, maps, batch, check_latents=False).log_density
        if set(latents) != set(self.latent_names) or not all(type(latents[n]) is torch.Tensor or
                                                              type(latents[n]) is torch.nn.Parameter
                                                              for n in self.latent_names):
            return out  # relaxed or discrete draws, extra names: always the unplanned path
        sites = program.sites
        specs = tuple(
            (n, sites[n].dims, sites[n].values_in, tuple(sites[n].shape), latents[n].dtype, latents[n].device)
            for n in self.latent_names
        )
        shapes = {latents[n].shape[: latents[n].dim() - len(s[3])] for n, s in zip(self.latent_names, specs)}
        device = env[REF].tensor.device
        if len(shapes) > 1 or any(s[5] != device for s in specs):
            return out  # latents moved to the run's device, or batches broadcast: the unplanned path
        data = tuple(v for v in self.observations.values() if isinstance(v, torch.Tensor))
        versions = tuple(t._version for t in data)
        latent_batch = shapes.pop() if shapes else torch.Size()  # no latent (a grid posterior): no batch of them
        self._bound = (program._generation, base, maps, specs, data, versions, latent_batch, batch)
        return out

    def __call__(self, latents: Mapping[str, Any]) -> torch.Tensor:
        """The log joint at ``latents`` (a batch of them, on leading axes)."""
        bound = self._bound
        if bound is None or len(latents) != len(bound[3]) or bound[0] != self.program._generation:
            return self._bind(latents)
        generation, base, maps, specs, data, versions, latent_batch, batch = bound
        env = base.copy()
        for name, dims, values_in, shape, dtype, device in specs:
            t = latents.get(name)
            if t is None or t.dtype != dtype or t.device != device:
                return self._bind(latents)
            n = t.dim() - len(shape)
            if n < 0 or t.shape[n:] != shape:
                return self._bind(latents)
            if t.shape[:n] != latent_batch:  # another batch: bound afresh
                return self._bind(latents)
            env[name] = Value(t, dims, values_in=values_in)
        for t, v in zip(data, versions):
            if t._version != v:  # written in place: validate again
                return self._bind(latents)
        return self.program._execute(env, maps, batch, check_latents=False).log_density
