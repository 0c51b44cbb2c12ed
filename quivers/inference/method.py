"""Which method :func:`~quivers.inference.fit` runs, and saying so.

With ``method="auto"`` (the default) ``fit`` samples the posterior with
NUTS, as Stan, PyMC and NumPyro do, wherever NUTS can run and the model is
small enough to sample in minutes on a CPU. It runs SVI instead when

- an SVI option is given (``guide``, ``steps``, ``lr``, ``num_particles``,
  ``discrete``, ``temperature``): the caller asked for SVI;
- a latent is discrete and sampled (NUTS moves on continuous latents;
  ``marginalize`` it to sample the rest, or give ``discrete="gibbs"``
  for Gibbs steps on it between NUTS transitions);
- the model holds learnable parameters (SVI fits them, NUTS cannot);
- the program is a mini-batch (``Program.subsample``): NUTS needs the whole
  likelihood;
- the model has more than :data:`MAX_DIMS` unconstrained dimensions or
  more than :data:`MAX_DATA` observed values. A NUTS iteration takes up to
  ``2 ** max_tree_depth`` gradients, each linear in the data; past these
  sizes 2000 iterations take an order of magnitude longer than SVI's 3000
  steps.

NUTS options (``num_warmup``, ``init``, ``target_accept``,
``max_tree_depth``, ``dense_mass``, ``init_strategy``, ``chain_method``,
``discrete="gibbs"``) ask for NUTS whatever the size; SVI and NUTS options
together, or options of the other method than the one named, are an error.
Either method stays one argument away: ``method="svi"`` or
``method="nuts"``. The result says which ran and why
(:attr:`FitResult.choice <quivers.inference.fit.FitResult>`), and so do its
``repr``, its printed summary and ``qvr fit``'s first line.

Examples
--------
>>> import torch
>>> from quivers.categories.finset import FinSet
>>> from quivers.distributions import Normal
>>> from quivers.programs import Program, sample, observe, var
>>> I = FinSet("I", 5)
>>> prog = Program("p", I, I, [sample("mu", None, Normal(0.0, 1.0)),
...                            observe("y", I, Normal(var("mu"), 1.0))])
>>> choice = choose_method(prog, {"y": torch.ones(5)})
>>> choice.method
'nuts'
>>> choice.note()
'chosen by fit: 1 unconstrained dimension and 5 observed values are small enough to sample; method="svi" runs SVI'
>>> choice.note(cli=True)
'chosen by fit: 1 unconstrained dimension and 5 observed values are small enough to sample; --method svi runs SVI'
>>> choose_method(prog, {"y": torch.ones(5)}, svi_options=["steps"]).reason
'chosen by fit: SVI options given (steps)'
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import torch

from quivers.errors import QuiversTypeError
from quivers.inference.layout import Layout
from quivers.programs import Program

__all__ = ["Choice", "choose_method", "check_options", "MAX_DIMS", "MAX_DATA", "titled", "SVI_OPTIONS", "NUTS_OPTIONS"]

MAX_DIMS = 1000
"""The most unconstrained dimensions ``fit`` samples with NUTS by default."""

MAX_DATA = 100_000
"""The most observed values ``fit`` samples with NUTS by default."""

SVI_OPTIONS = ("guide", "steps", "lr", "num_particles", "discrete", "temperature")
NUTS_OPTIONS = ("num_warmup", "init", "target_accept", "max_tree_depth", "dense_mass", "init_strategy", "chain_method")
METHODS = ("auto", "nuts", "svi")
CLI_OPTIONS = {"steps": "--steps", "lr": "--lr", "guide": "--guide", "num_warmup": "--warmup",
               "discrete": "--discrete", "dense_mass": "--dense-mass", "chain_method": "--chain-method"}


@dataclass(frozen=True)
class Choice:
    """The method that ran (``"nuts"`` or ``"svi"``), why (``reason`` in
    the words of ``fit``'s arguments, ``cli_reason`` in those of ``qvr
    fit``'s options), and the other method a user could name instead
    (``None`` where it cannot run).

    Examples
    --------
    >>> choice = Choice("svi", 'method="svi" given', cli_reason="--method svi given")
    >>> choice.note(), choice.note(cli=True)
    ('method="svi" given', '--method svi given')
    """

    method: str
    reason: str
    other: str | None = None
    cli_reason: str | None = None

    def note(self, cli: bool = False) -> str:
        """The reason, and how to run the other method: an argument of
        ``fit``, or with ``cli`` an option of ``qvr fit``."""
        reason = self.cli_reason if cli and self.cli_reason is not None else self.reason
        if self.other is None:
            return reason
        how = f"--method {self.other}" if cli else f'method="{self.other}"'
        return f"{reason}; {how} runs {self.other.upper()}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _observed_values(model: Program, observations: Mapping[str, Any]) -> int:
    return sum(
        int(v.numel()) if isinstance(v, torch.Tensor) else int(np.size(v))
        for k, v in observations.items() if k in model.sites and model.sites[k].kind == "observed"
    )


def choose_method(
    model: Program,
    observations: Mapping[str, Any],
    observed_names: Iterable[str] = (),
    svi_options: Iterable[str] = (),
    nuts_options: Iterable[str] = (),
    method: str = "auto",
) -> Choice:
    """The method ``fit`` runs, by the rules of this module's docstring.

    Parameters
    ----------
    model, observations
        What ``fit`` was given.
    observed_names
        Sample sites given in the observations (conditioned on).
    svi_options, nuts_options
        The options of one method that the caller gave.
    method
        ``"auto"``, or the method the caller named.

    Raises
    ------
    QuiversTypeError
        An unknown method, or options of a method other than the one that
        runs.
    """
    svi, nuts = sorted(set(svi_options)), sorted(set(nuts_options))
    check_options(method, svi, nuts)
    if method != "auto":
        return Choice(method, f'method="{method}" given', cli_reason=f"--method {method} given")
    for name, given, other in (("SVI", svi, "nuts"), ("NUTS", nuts, "svi")):
        if given:
            cli = ", ".join(CLI_OPTIONS.get(n, n) for n in given)
            return Choice(name.lower(), f"chosen by fit: {name} options given ({', '.join(given)})", other,
                          cli_reason=f"chosen by fit: {name} options given ({cli})")
    observed = set(observed_names) | {k for k in observations if k in model.sites}
    sites = model.latent_sites(observed)
    discrete = [s.name for s in sites if s.discrete]
    if discrete:
        return Choice("svi", f"chosen by fit: NUTS cannot sample the discrete latents {discrete}; "
                             'marginalize them to sample, or discrete="gibbs" draws them by Gibbs steps within NUTS')
    if any(True for _ in model.parameters()):
        return Choice("svi", f"chosen by fit: `{model.name}` has learnable parameters, which SVI fits", "nuts")
    if model.term_scales:
        return Choice("svi", "chosen by fit: a mini-batch program needs SVI")
    dims = Layout(sites, model.parameters_of).dim
    data = _observed_values(model, observations)
    sizes = f"{_plural(dims, 'unconstrained dimension')} and {_plural(data, 'observed value')}"
    if dims > MAX_DIMS or data > MAX_DATA:
        return Choice("svi", f"chosen by fit: {sizes} are too many to sample quickly "
                             f"(NUTS by default up to {MAX_DIMS} and {MAX_DATA})", "nuts")
    return Choice("nuts", f"chosen by fit: {sizes} are small enough to sample", "svi")


def check_options(method: str, svi_options: Iterable[str], nuts_options: Iterable[str], cli: bool = False) -> None:
    """Refuse an unknown method, and options of a method other than the
    one named (or, for ``"auto"``, of both methods), in the words of
    ``fit``'s arguments or with ``cli`` of ``qvr fit``'s options.

    Examples
    --------
    >>> check_options("nuts", ["steps"], [], cli=True)
    Traceback (most recent call last):
    ...
    quivers.errors.QuiversTypeError: `--steps` of SVI given with --method nuts; drop it, or run --method svi
    """
    svi, nuts = sorted(set(svi_options)), sorted(set(nuts_options))

    def name(option: str) -> str:
        return f"`{CLI_OPTIONS.get(option, option) if cli else option}`"

    def method_is(m: str) -> str:
        return f"--method {m}" if cli else f'method="{m}"'

    if method not in METHODS:
        raise QuiversTypeError(f"unknown method `{method}`; methods are `auto`, `nuts` and `svi`")
    for named, given, owner, other in (("nuts", svi, "SVI", "svi"), ("svi", nuts, "NUTS", "nuts")):
        if method == named and given:
            raise QuiversTypeError(f"{', '.join(map(name, given))} of {owner} given with {method_is(named)}",
                                   hint=f"drop {'it' if len(given) == 1 else 'them'}, or run {method_is(other)}")
    if method == "auto" and svi and nuts:
        raise QuiversTypeError(
            f"options of SVI ({', '.join(map(name, svi))}) and of NUTS ({', '.join(map(name, nuts))}) given together",
            hint=f"name the method: {method_is('svi')} or {method_is('nuts')}",
        )


@cache
def _titled_class() -> type:
    """The DataFrame subclass of :func:`titled`, made on first use so that
    importing quivers does not import pandas."""
    import pandas as pd

    class Titled(pd.DataFrame):
        """A table shown under a title line (what was run); a table derived
        from it is a plain DataFrame (pandas' documented ``_metadata`` and
        ``_constructor`` hooks for subclasses)."""

        _metadata = ["title"]

        @property
        def _constructor(self) -> type:
            return pd.DataFrame

        def __repr__(self) -> str:
            return f"{self.title}\n{super().__repr__()}"

        def _repr_html_(self) -> str | None:
            html = super()._repr_html_()
            return None if html is None else f"<p>{self.title}</p>\n{html}"

    return Titled


def titled(table: Any, title: str) -> Any:
    """``table`` (a DataFrame) shown under ``title`` when printed; its
    values, columns and ``to_string()`` are the table's.

    Examples
    --------
    >>> import pandas as pd
    >>> print(titled(pd.DataFrame({"mean": [1.5]}, index=["mu"]), "NUTS, 4 chains x 10 draws"))
    NUTS, 4 chains x 10 draws
        mean
    mu   1.5
    """
    out = _titled_class()(table)
    out.title = title
    return out
