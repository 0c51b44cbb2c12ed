"""Mini-batches: a program with one plate cut to a subsample of its rows.

``subsample(program, {"Item": b})`` is the same program with the plate
``Item`` of size N replaced by one of size ``b``; every log-density term
that still carries the ``Item`` axis when it reaches the top level (an
observation on ``Item``, or the per-row result of a ``marginalize`` block
over ``Item``) is multiplied by ``N / b``. Fed a mini-batch of ``b`` rows
drawn uniformly without replacement, the log joint is then an unbiased
estimate of the full one, as with Pyro's ``plate(subsample_size=b)``.

Subsampling is refused where the density does not factor over the rows:
a latent on the plate (its guide would need the same subsample), and a
grouped block whose index map starts at the plate (a group's likelihood
needs all of its rows).

Examples
--------
>>> import torch
>>> from quivers.categories import FinSet
>>> from quivers.distributions import Normal
>>> from quivers.programs import Program, sample, observe, var
>>> I = FinSet("I", 100)
>>> prog = Program("p", I, I, [sample("mu", None, Normal(0.0, 1.0)),
...                            observe("y", I, Normal(var("mu"), 1.0))])
>>> mini = subsample(prog, {"I": 10})
>>> lat = {"mu": torch.tensor(0.0)}
>>> full = prog.log_joint(None, {"y": torch.zeros(100)}, lat)
>>> est = mini.log_joint(None, {"y": torch.zeros(10)}, lat)
>>> bool(torch.isclose(full, est))
True
"""

from __future__ import annotations

from collections.abc import Mapping

from quivers.categories import FinSet
from quivers.errors import InvalidValueError, QuiversTypeError, UnknownNameError
from quivers.programs.chain import MarkovStep
from quivers.programs.named import plate_dims
from quivers.programs.steps import Step

__all__ = ["subsample", "resize"]


def _resize(s: FinSet | None, sizes: Mapping[str, int]) -> FinSet | None:
    if s is None:
        return None
    factors = s.factors
    if len(factors) > 1:
        out = _resize(factors[0], sizes)
        for f in factors[1:]:
            out = out * _resize(f, sizes)
        return out
    return FinSet(s.name, sizes[s.name]) if s.name in sizes else s


def _step(step: Step, sizes: Mapping[str, int]) -> Step:
    return step.map_sets(lambda s: _resize(s, sizes)).map_children(lambda t: _step(t, sizes))


def resize(program, sizes: Mapping[str, int]):
    """``program`` with each plate named in ``sizes`` cut to that many rows,
    nothing checked and nothing rescaled (what :func:`subsample` and a
    data-parallel shard build on)."""
    steps = tuple(_step(s, sizes) for s in program.steps)
    cod = _resize(program.cod, sizes)
    dom = _resize(program.dom, sizes)
    return type(program)(program.name, dom, cod, steps, program.effects, span=program.span, source=program.source)


def subsample(program, sizes: Mapping[str, int]):
    """``program`` with each plate named in ``sizes`` cut to that many rows
    and its terms rescaled (see the module docstring)."""
    plates = {d: n for site in program.sites.values() for d, n in zip(site.dims, site.shape)}
    scales = {}
    for name, b in sizes.items():
        if name not in plates:
            raise UnknownNameError(f"cannot subsample `{name}`: no site lies on it", name=name, candidates=plates)
        if isinstance(b, bool) or not isinstance(b, int) or not 1 <= b <= plates[name]:
            raise InvalidValueError(f"a subsample of `{name}` needs between 1 and {plates[name]} rows, got {b!r}")
        scales[name] = plates[name] / b
    for top in program.steps:
        if isinstance(top, MarkovStep) and top.time.name in sizes:
            raise QuiversTypeError(
                f"markov `{top.name}` runs along `{top.time.name}`; a chain's likelihood needs all of its steps",
                hint="subsample the plate of independent sequences instead",
            )
    for site in program.sites.values():
        on = [d for d in site.dims if d in sizes]
        if on and site.kind == "latent":
            raise QuiversTypeError(
                f"latent `{site.name}` lies on the subsampled plate `{on[0]}`; its guide would need the same rows",
                hint="subsample only plates that hold observations and per-row marginalized latents",
            )
    for name, (dom, _) in program.index_maps.items():
        hit = [d for d in plate_dims(dom)[0] if d in sizes]
        if hit:
            raise QuiversTypeError(
                f"index map `{name}` groups rows of the subsampled plate `{hit[0]}`; "
                "a group's likelihood needs all of its rows",
                hint="fit grouped blocks on the full data",
            )
    mini = resize(program, sizes)
    mini.term_scales = scales
    mini.likelihood_scale = program.likelihood_scale  # a shard's mini-batch stays a shard
    return mini
