"""Which discrete ``sample`` sites a plan can sum out, and why not the rest.

A sampled latent can be summed when its values are finitely many and known
when the program is built: a ``Categorical`` over a FinSet, a
``Bernoulli``, a ``Binomial`` with a constant count, any site whose values
lie in a FinSet. A ``Poisson`` (or any count without a bound) has infinite
support; a site inside a ``marginalize`` block, or one marked
``enumerate=False``, is left to sampling too, with the reason recorded.

Examples
--------
>>> from quivers.categories import FinSet
>>> from quivers.distributions import Bernoulli, Normal, Poisson
>>> from quivers.programs import Program, observe, sample, var
>>> I = FinSet("I", 3)
>>> p = Program("p", I, I, [sample("b", None, Bernoulli(0.3)), sample("n", None, Poisson(2.0)),
...     observe("y", I, Normal(var("b") + var("n"), 1.0))])
>>> c = choose(p)
>>> {k: v.size for k, v in c.summed.items()}, c.sampled
({'b': 2}, {'n': 'Poisson has infinite support'})
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from torch.distributions import constraints

from quivers.categories import FinSet
from quivers.errors import QuiversError, UnknownNameError
from quivers.programs.steps import SampleStep

__all__ = ["Choice", "choose", "values_of"]


@dataclass(frozen=True)
class Choice:
    """``summed``: site -> the FinSet of its values; ``sampled``: site ->
    why it is left to sampling."""

    summed: dict[str, FinSet]
    sampled: dict[str, str]


def choose(program, exclude: Iterable[str] = ()) -> Choice:
    """The discrete sample sites of ``program`` a plan sums out, and the
    others with the reason; ``exclude`` names sites to leave to sampling
    (``enumerate=False``)."""
    exclude = set(exclude)
    unknown = sorted(n for n in exclude if n not in program.sites)
    if unknown:
        raise UnknownNameError(
            f"`{unknown[0]}` is marked enumerate=False but is no site of `{program.name}`",
            name=unknown[0], candidates=sorted(program.sites),
        )
    top = {id(s) for s in program.steps}
    summed: dict[str, FinSet] = {}
    sampled: dict[str, str] = {}
    for name, site in program.sites.items():
        if site.kind != "latent" or not isinstance(site.step, SampleStep) or not site.discrete:
            if name in exclude and not (site.kind == "latent" and site.discrete):
                raise UnknownNameError(
                    f"`{name}` is marked enumerate=False but is no discrete sampled latent",
                    name=name, candidates=sorted(n for n, s in program.sites.items() if s.discrete),
                    span=getattr(site.step, "span", None),
                )
            continue
        if name in exclude:
            sampled[name] = "marked enumerate=False"
        elif id(site.step) not in top:
            sampled[name] = f"inside the block of `{site.blocks[-1]}`" if site.blocks else "inside a block"
        elif site.event_dims:
            sampled[name] = f"{site.family.name} values are vectors"
        else:
            values = values_of(site)
            if isinstance(values, str):
                sampled[name] = values
            else:
                summed[name] = values
    return Choice(summed, sampled)


def values_of(site) -> FinSet | str:
    """The FinSet of a discrete site's values, or why there is none (its
    values are infinitely many, or not known before the run)."""
    if site.num_values is not None and site.values_in is not None:
        return FinSet(site.values_in, site.num_values)
    try:
        support = site.support()
    except QuiversError as err:
        return f"its number of values is not known before the run ({err.message})"
    if support is constraints.boolean:
        return FinSet("Bool", 2)
    if isinstance(support, constraints.integer_interval):
        low, high = int(support.lower_bound), int(support.upper_bound)
        if low == 0:
            return FinSet(f"Count{high + 1}", high + 1)
    return f"{site.family.name} has infinite support"
