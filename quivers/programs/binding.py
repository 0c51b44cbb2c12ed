"""How a program binds the values it is given to its names.

:class:`Bindings` is the half of :class:`~quivers.programs.Program` that
turns observations, latents and an input into the environment a run reads
(:meth:`Bindings._env`): every data name and index map present and valid,
each value checked against its site (shape, dtype, support), the tensor
constants on the run's dtype and device, and an error about data placed at
the first step that reads it.

Laws
----
- A name given both as an observation and as a latent is conditioned on:
  the observation wins, as with Pyro's ``condition``.
- Data (a real number, an index map) is never a latent: given among the
  latents, or missing, it is a :class:`~quivers.errors.DataError` naming it
  and the step that reads it.

Examples
--------
>>> import torch
>>> from quivers.categories import FinSet
>>> from quivers.distributions import Normal
>>> from quivers.programs import Program, data, observe, var
>>> I = FinSet("I", 2)
>>> p = Program("p", I, I, [data("x", I), observe("y", I, Normal(var("x"), 1.0))])
>>> p.reader("x").name
'y'
>>> p.log_joint(None, {"y": torch.zeros(2)})
Traceback (most recent call last):
    ...
quivers.errors.DataError: data `x` (on I) is missing from the observations (`x` is read by `observe y`); data is given, never sampled: give `x` in the observations
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import torch

from quivers.categories import FinFunction
from quivers.errors import DataError, QuiversError, did_you_mean
from quivers.programs.data import check_data, check_index_map, check_names, check_value, common_batch, data_source
from quivers.programs.expr import REF
from quivers.programs.named import Value
from quivers.programs.relaxed import Relaxed, relaxed_value
from quivers.programs.steps import Step

__all__ = ["Bindings", "reference"]

_REFERENCES: dict[tuple[torch.dtype, torch.device], Value] = {}


def reference(dtype: torch.dtype, device: torch.device) -> Value:
    """The run's reference value (a zero of the dtype and device its
    constants follow; read, never written), made once per pair."""
    v = _REFERENCES.get((dtype, device))
    if v is None:
        with torch.inference_mode(False):
            v = _REFERENCES[(dtype, device)] = Value(torch.zeros((), dtype=dtype, device=device))
    return v


class Bindings:
    """Binding given values to a program's names (mixed into
    :class:`~quivers.programs.Program`, whose ``sites``, ``index_maps``,
    ``steps``, ``source`` and constant buffers it reads)."""

    summed: frozenset[str] = frozenset()
    """Sample sites whose values a run sums out rather than reads (see
    :mod:`quivers.planning`); none for a program as written."""

    def _env(self, observations, latents, mode: str, check_latents: bool = True, x: Any = None):
        """Validate the data and build the environment of a run; returns
        ``(env, maps, batch)``: the values, the index maps as
        :class:`FinFunction` s, and the broadcast batch shape of the given
        values. A name given both as an observation and as a latent is
        conditioned on (the observation wins, as with Pyro's ``condition``)."""
        observations = {} if observations is None else observations
        latents = {} if latents is None else latents
        sites = self._run_sites()
        check_names(observations, sites, "observations")
        check_names(latents, sites, "latents")
        env: dict[str, Value] = {}
        maps: dict[str, FinFunction] = {}
        for name, site in sites.items():
            if site.kind == "index":
                dom, cod = self.index_maps[name]
                self._require(name, f"index map `{name}` ({dom.name} -> {site.values_in})", observations, latents)
                env[name], maps[name] = self._cached(
                    name, observations[name], lambda v: self._read_by(name, lambda: check_index_map(site, v, dom, cod))
                )
            elif site.kind == "data":
                on = f" (on {' * '.join(site.dims)})" if site.dims else " (a number)"
                self._require(name, f"data `{name}`{on}", observations, latents)
                env[name] = self._cached(name, observations[name], lambda v: self._read_by(name, lambda: check_data(site, v)))
            elif site.kind == "input":
                if x is None:
                    raise DataError(
                        f"program `{self.name}` takes an input `{name}` in `{self.dom.name}`, but x is None",
                        hint=f"pass an element of `{self.dom.name}` (an integer in [0, {self.dom.size})) as x",
                    )
                env[name] = check_value(site, x, "input")
            elif name in observations and site.kind in ("observed", "latent", "marginal"):
                env[name] = self._cached(name, observations[name], lambda v: check_value(site, v, "observation"))
            elif name in latents and isinstance(latents[name], Relaxed):
                env[name] = relaxed_value(site, latents[name], check_latents)
            elif name in latents and site.kind in ("latent", "marginal"):
                if check_latents or site.kind == "marginal":
                    env[name] = check_value(site, latents[name], "latent")
                else:  # values from an inference engine's own transforms
                    env[name] = Value(latents[name], site.dims, values_in=site.values_in)
            elif site.kind == "observed" and mode == "density":
                raise DataError(f"observation `{name}` is missing", hint=f"give `{name}` in {data_source()}")
            elif site.kind == "latent" and mode == "density" and name not in self.summed:
                raise DataError(f"latent `{name}` has no value", hint="pass it in latents or in observations")
        batch = common_batch(env, sites)
        ref = next((v.tensor for v in env.values() if torch.is_floating_point(v.tensor)), None)
        if ref is None:
            buf = next(iter(self.buffers()), None)
            ref = torch.zeros((), device=buf.device if buf is not None else None)
        for name, v in env.items():
            if v.tensor.device != ref.device:
                env[name] = dataclasses.replace(v, tensor=v.tensor.to(ref.device))
        for name, f in maps.items():
            if f.mapping.device != ref.device:
                maps[name] = FinFunction(f.dom, f.cod, f.mapping.to(ref.device))
        env[REF] = reference(ref.dtype, ref.device)
        for sym, (buf, dims) in self._constant_dims.items():
            t = getattr(self, buf)
            if torch.is_floating_point(t) and t.dtype != ref.dtype:
                t = t.to(ref.dtype)
            env[sym] = Value(t.to(ref.device), dims)
        return env, maps, batch

    def reader(self, name: str) -> Step | None:
        """The first step that reads ``name`` (in source order), or None."""
        return next((t for s in self.steps for t in s.walk() if name in t.reads), None)

    def _at_reader(self, err: QuiversError, name: str) -> QuiversError:
        """``err`` located at the first step that reads the data ``name``
        (with the source line, for a program written in QVR), saying so."""
        t = self.reader(name)
        if err.span is not None or t is None:
            return err
        label = f"{t.kind} {t.defines}" if t.defines else t.kind
        out = type(err).__new__(type(err))
        out.__dict__.update(err.__dict__)
        span = getattr(t, "span", None)
        message = err.message + f" (`{name}` is read by `{label}`)"
        QuiversError.__init__(out, message, span=span, source=self.source if span is not None else None, hint=err.hint)
        return out

    def _require(self, name: str, what: str, observations: Mapping, latents: Mapping) -> None:
        """Data (an index map, real numbers) must be among the observations:
        a missing name is an error naming it and the step that reads it,
        never a silent latent."""
        if name in latents:
            raise self._at_reader(DataError(
                f"{what} is given in latents; data is no random variable",
                hint=f"give `{name}` in {data_source()}",
            ), name)
        if name in observations:
            return
        close = did_you_mean(name, [n for n, s in self.sites.items() if s.kind not in ("data", "index")])
        err = DataError(
            f"{what} is missing from {data_source()}" + (f" (did you mean the site `{close}`?)" if close else ""),
            hint=f"data is given, never sampled: give `{name}` in {data_source()}",
        )
        raise self._at_reader(err, name)

    def _read_by(self, name: str, check):
        """Run ``check``; an error it raises is located at the step that reads ``name``."""
        try:
            return check()
        except QuiversError as err:
            raise self._at_reader(err, name) from None

    def _cached(self, name: str, value: Any, check) -> Any:
        if not isinstance(value, torch.Tensor):
            return check(value)
        key = (name, id(value), value._version, value.data_ptr(), tuple(value.shape), value.dtype)
        hit = self._validated.get(key)
        if hit is not None:
            return hit
        out = check(value)
        if len(self._validated) > 256:
            self._validated.clear()
        self._validated[key] = out
        return out
