"""Model checking and comparison: PSIS-LOO, WAIC, LOO-PIT, ``compare`` and
simulation-based calibration.

The first four are ArviZ's, read from a fit's ``InferenceData`` (whose
``log_likelihood`` group holds the pointwise log likelihood: per row, and
for a grouped mixture one term per group, so a group is left out whole):

- :func:`loo` and :func:`waic`: the expected log pointwise predictive
  density, with Pareto ``k`` per observation for PSIS-LOO;
- :func:`compare`: several fits of the same data, ranked by it;
- :func:`loo_pit`: the leave-one-out probability integral transform of
  each observation, uniform for a calibrated model;

and :func:`ppc_pvalue` is the posterior predictive check of a test
statistic (Gelman et al., BDA3 ch. 6): how often the statistic of
replicated data reaches that of the observed data.

:func:`sbc` is simulation-based calibration (Talts et al., 2018): draw
parameters and data from the prior, fit, and rank each true parameter among
the posterior draws; a correct fitting procedure gives uniform ranks, which a
chi-square test checks.

Examples
--------
>>> import torch
>>> from quivers.categories.finset import FinSet
>>> from quivers.distributions import Normal
>>> from quivers.inference import fit
>>> from quivers.programs import Program, observe, sample, var
>>> I = FinSet("I", 8)
>>> prog = Program("p", I, I, [sample("mu", None, Normal(0.0, 1.0)),
...                            observe("y", I, Normal(var("mu"), 1.0))])
>>> result = fit(prog, {"y": torch.linspace(-1.0, 1.0, 8)}, num_warmup=100, num_samples=100,
...              num_chains=2, seed=0, progress_bar=False)
>>> loo(result).pareto_k.shape
(8,)
"""

from __future__ import annotations

import warnings

from collections.abc import Callable, Mapping
from dataclasses import dataclass
import warnings
from typing import Any

import torch

from quivers.errors import QuiversTypeError
from quivers.inference.program_adaptor import ProgramAdaptor
from quivers.programs import Program

__all__ = ["loo", "waic", "compare", "loo_pit", "ppc_pvalue", "sbc", "SBCResult"]


def _idata(result: Any, *, posterior_predictive: bool = False) -> Any:
    """The ``InferenceData`` of a fit (a :class:`~quivers.inference.FitResult`
    or an ``InferenceData`` already)."""
    import arviz as az

    if isinstance(result, az.InferenceData):
        return result
    if not hasattr(result, "to_inference_data"):
        raise QuiversTypeError(
            f"expected a FitResult or an arviz.InferenceData, got {type(result).__name__}",
            hint="pass what quivers.inference.fit returned",
        )
    return result.to_inference_data(posterior_predictive=posterior_predictive)


def loo(result: Any, var_name: str | None = None, *, pointwise: bool = True) -> Any:
    """PSIS-LOO (ArviZ's ``loo``) of a fit: ``elpd_loo``, its standard error,
    ``p_loo`` and, with ``pointwise``, the Pareto ``k`` of each observation
    (``k > 0.7``: that observation's estimate is unreliable). ``var_name``
    picks the observed site when there are several."""
    import arviz as az

    return az.loo(_idata(result), pointwise=pointwise, var_name=var_name)


def waic(result: Any, var_name: str | None = None, *, pointwise: bool = True) -> Any:
    """WAIC (ArviZ's ``waic``) of a fit, on the same pointwise terms as :func:`loo`."""
    import arviz as az

    return az.waic(_idata(result), pointwise=pointwise, var_name=var_name)


def compare(results: Mapping[str, Any], ic: str = "loo", var_name: str | None = None) -> Any:
    """ArviZ's ``compare`` of several fits of the same data, keyed by name:
    a table ranked by expected log predictive density, with the difference
    to the best and its standard error, and stacking weights."""
    import arviz as az

    if not isinstance(results, Mapping) or len(results) < 2:
        raise QuiversTypeError("compare needs a mapping of at least two named fits, e.g. {'a': fit_a, 'b': fit_b}")
    if ic not in ("loo", "waic"):
        raise QuiversTypeError(f"unknown information criterion `{ic}`; use `loo` or `waic`")
    idatas = {name: _idata(r) for name, r in results.items()}
    with warnings.catch_warnings():
        # ArviZ 0.23 sorts its table with pandas' deprecated ``inplace=``:
        # a warning about ArviZ's code that a user can do nothing about.
        warnings.filterwarnings("ignore", message="The inplace keyword in DataFrame.sort_values")
        return az.compare(idatas, ic=ic, var_name=var_name)


def loo_pit(result: Any, y: str) -> Any:
    """The LOO probability integral transform of observed site ``y``: for
    each observation, the leave-one-out posterior predictive probability of
    a draw at most the observed value (ArviZ's ``loo_pit``, PSIS-weighted).
    Uniform on ``(0, 1)`` for a calibrated model; piled at the ends, the
    model is too narrow; in the middle, too wide."""
    import arviz as az

    idata = _idata(result, posterior_predictive=True)
    if "posterior_predictive" not in idata.groups():
        raise QuiversTypeError("loo_pit needs posterior predictive draws", hint="export with posterior_predictive=True")
    if y not in idata.observed_data:
        raise QuiversTypeError(f"`{y}` is no observed site; observed: {sorted(idata.observed_data.data_vars)}")
    return az.loo_pit(idata, y=y)


_STATISTICS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "mean": lambda t: t.mean(-1),
    "sd": lambda t: t.std(-1),
    "min": lambda t: t.min(-1).values,
    "max": lambda t: t.max(-1).values,
    "median": lambda t: t.median(-1).values,
}


def ppc_pvalue(
    result: Any, y: str, statistic: str | Callable[[torch.Tensor], torch.Tensor] = "mean", *, seed: int | None = 0
) -> tuple[float, torch.Tensor, float]:
    """The posterior predictive p-value of a test statistic of site ``y``.

    ``statistic`` is ``"mean"``, ``"sd"``, ``"min"``, ``"max"``,
    ``"median"`` or a function of a ``(draws, n)`` tensor (each row one data
    set, flattened) returning ``(draws,)``. Returns ``P(T(y_rep) >= T(y))``
    over the posterior predictive draws, the statistic of each replicated
    data set ``(chains, draws)``, and that of the observed data. A p-value
    near 0 or 1 says the model does not reproduce that feature of the data.

    Examples
    --------
    >>> import torch
    >>> from quivers.categories.finset import FinSet
    >>> from quivers.distributions import Normal
    >>> from quivers.inference import fit
    >>> from quivers.programs import Program, observe, sample, var
    >>> I = FinSet("I", 8)
    >>> prog = Program("p", I, I, [sample("mu", None, Normal(0.0, 1.0)),
    ...                            observe("y", I, Normal(var("mu"), 0.1))])
    >>> result = fit(prog, {"y": torch.linspace(-2.0, 2.0, 8)}, num_warmup=100, num_samples=100,
    ...              num_chains=2, seed=0, progress_bar=False)
    >>> p, replicated, observed = ppc_pvalue(result, "y", "sd")  # sd 0.1 cannot spread the data to 1.4
    >>> p, tuple(replicated.shape)
    (0.0, (2, 100))
    """
    if isinstance(statistic, str):
        if statistic not in _STATISTICS:
            raise QuiversTypeError(f"unknown statistic `{statistic}`; use one of {sorted(_STATISTICS)} or a function")
        statistic = _STATISTICS[statistic]
    if not hasattr(result, "predictive") or not hasattr(result, "observations"):
        raise QuiversTypeError(f"ppc_pvalue needs a FitResult, got {type(result).__name__}")
    if y not in result.observations or y not in result.model.sites or result.model.sites[y].kind != "observed":
        observed = sorted(n for n in result.observations if n in result.model.sites and result.model.sites[n].kind == "observed")
        raise QuiversTypeError(f"`{y}` is no observed site; observed: {observed}")
    replicated = result.predictive(seed=seed)[y]
    lead = tuple(replicated.shape[:2])
    rows = replicated.reshape(lead[0] * lead[1], -1).to(torch.get_default_dtype())
    data = torch.as_tensor(result.observations[y]).reshape(1, -1).to(rows.dtype)
    t_rep = statistic(rows).reshape(lead)
    t_obs = float(statistic(data).reshape(()))
    return float((t_rep >= t_obs).to(torch.float64).mean()), t_rep, t_obs


@dataclass
class SBCResult:
    """Ranks of simulation-based calibration.

    ``ranks[name]`` has shape ``(replications, *site)``: for each replication
    and each scalar of the latent, how many of the ``num_draws`` posterior
    draws fell below the true value (``0 .. num_draws``). ``p_values[name]``
    (shape ``site``) is the chi-square test of their uniformity over
    ``bins`` equal bins.
    """

    ranks: dict[str, torch.Tensor]
    num_draws: int
    bins: int
    p_values: dict[str, torch.Tensor]

    def uniform(self, level: float = 0.01) -> bool:
        """Whether no latent's ranks reject uniformity at ``level`` (with a
        Bonferroni correction over the scalars tested)."""
        tests = sum(p.numel() for p in self.p_values.values())
        return all(bool((p > level / max(tests, 1)).all()) for p in self.p_values.values())


def _chi_square_p(ranks: torch.Tensor, num_draws: int, bins: int) -> torch.Tensor:
    """The chi-square p-value of uniform ranks in ``0 .. num_draws``, over
    ``bins`` bins of equal width, one per scalar of the site."""
    from scipy.stats import chi2

    which = (ranks.to(torch.float64) * bins / (num_draws + 1)).floor().long()
    counts = torch.nn.functional.one_hot(which, bins).sum(0).to(torch.float64)  # (*site, bins)
    expected = ranks.shape[0] / bins
    stat = ((counts - expected) ** 2 / expected).sum(-1)
    return torch.as_tensor(chi2.sf(stat.numpy(), bins - 1))


def _batched_nuts(
    model: Program, x: Any, observations: Mapping[str, Any], seed: int, *, num_warmup: int = 1000,
    num_samples: int = 1000, target_accept: float = 0.8, max_tree_depth: int = 10,
) -> dict[str, torch.Tensor]:
    """NUTS on a batch of data sets (a leading replication axis on the
    simulated sites), one chain each: draws ``(replications, draws, *site)``."""
    from quivers.errors import ConvergenceWarning
    from quivers.inference.mcmc import MCMC, NUTS

    observed = {k for k in observations if k in model.sites and model.sites[k].kind in ("observed", "latent")}
    chains = next(int(v.shape[0]) for k, v in observations.items() if model.sites[k].kind == "observed")
    kernel = NUTS(_PerChainData(model, observed_names=observed), target_accept=target_accept,
                  max_tree_depth=max_tree_depth)
    mcmc = MCMC(kernel, num_warmup=num_warmup, num_samples=num_samples, num_chains=chains, seed=seed,
                progress_bar=False)
    with warnings.catch_warnings():  # R-hat across chains of different data sets means nothing
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.filterwarnings("ignore", "More chains", UserWarning)  # ArviZ's, on as many chains as draws
        mcmc.run(x, observations)
    return mcmc.get_samples(group_by_chain=True)


class _PerChainData(ProgramAdaptor):
    """A program whose chain ``r`` conditions on data set ``r`` (the
    simulated sites carry a leading axis of one data set per chain), which
    a fit of one data set refuses."""

    def _checked(self, observations: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
        return self._data(observations, self.device)


def sbc(
    model: Program,
    observed: Mapping[str, Any] | list[str] | tuple[str, ...],
    *,
    num_replications: int = 100,
    num_draws: int = 99,
    bins: int | None = None,
    x: Any = None,
    seed: int = 0,
    posterior: Callable[[Mapping[str, torch.Tensor]], Mapping[str, torch.Tensor]] | None = None,
    batched: bool = False,
    quantities: Callable[[Mapping[str, torch.Tensor]], Mapping[str, torch.Tensor]] | None = None,
    **fit_options: Any,
) -> SBCResult:
    """Simulation-based calibration of fitting ``model``.

    Each replication draws the latents and the observed sites from the
    prior, fits the model to the drawn data, thins the posterior to
    ``num_draws`` draws and ranks each true latent among them.

    Parameters
    ----------
    model
        The program.
    observed
        The names of the observed sites to simulate, or a mapping of them to
        ``None`` plus the fixed data (index maps, covariates), which is kept.
    num_replications, num_draws
        Replications, and posterior draws ranked in each (thinned evenly
        from the fit's; ``num_draws + 1`` should divide by ``bins``).
    bins
        Bins of the chi-square test (default: ``num_replications / 10``
        bins at most 20, as Talts et al. suggest, dividing
        ``num_draws + 1`` where one does).
    seed
        Seeds the prior draws and each fit (replication ``r`` fits with
        ``seed + r``).
    posterior
        How to fit: a function of the observations returning posterior
        draws with a leading draw axis (an exact sampler, to check the
        test itself); by default :func:`quivers.inference.fit` with
        ``fit_options`` (e.g. ``num_warmup``, ``num_samples``,
        ``num_chains``, ``method``).
    batched
        Fit every replication at once with NUTS, one chain each: chain
        ``r`` conditions on data set ``r``, adapts its own step size and
        mass matrix, and the chains advance together in one batched run
        (``fit_options``: ``num_warmup``, ``num_samples``,
        ``target_accept``, ``max_tree_depth``). The chains are as
        independent as separate fits, at the cost of one run.
    quantities
        Rank functions of the latents instead of the latents themselves: a
        function of a dict of latents with a leading axis returning a dict
        of tensors with that axis, applied alike to the true values and to
        the draws (SBC holds for any function of the parameters). A
        mixture's components are exchangeable, so a chain that keeps one
        labelling of them ranks the truth at the ends half of the time:
        rank label-free quantities such as the parameters sorted by the
        component means.

    Examples
    --------
    >>> import torch
    >>> from quivers.categories.finset import FinSet
    >>> from quivers.distributions import Normal
    >>> from quivers.programs import Program, observe, sample, var
    >>> I = FinSet("I", 4)
    >>> prog = Program("p", I, I, [sample("mu", None, Normal(0.0, 1.0)),
    ...                            observe("y", I, Normal(var("mu"), 1.0))])
    >>> def exact(obs):  # the conjugate posterior, Normal(sum y / 5, 1 / sqrt 5)
    ...     return {"mu": obs["y"].sum() / 5 + torch.randn(99) / 5 ** 0.5}
    >>> result = sbc(prog, ["y"], num_replications=200, num_draws=99, posterior=exact)
    >>> result.ranks["mu"].shape, result.uniform()
    (torch.Size([200]), True)
    """
    from quivers.inference.fit import fit

    names = list(observed) if not isinstance(observed, Mapping) else [k for k, v in observed.items() if v is None]
    fixed = {k: v for k, v in observed.items() if v is not None} if isinstance(observed, Mapping) else {}
    for name in names:
        site = model.sites.get(name)
        if site is None or site.kind != "observed":
            raise QuiversTypeError(f"`{name}` is no observed site of `{model.name}`", hint="name the sites to simulate")
    if int(num_replications) < 2 or int(num_draws) < 1:
        raise QuiversTypeError("sbc needs at least 2 replications and 1 posterior draw")
    if bins is None:
        bins = max(2, min(20, int(num_replications) // 10))
        while (num_draws + 1) % bins and bins > 2:
            bins -= 1
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        prior = model.sample(x, sample_shape=(int(num_replications),), observations=fixed or None)
    ranks: dict[str, list[torch.Tensor]] = {}
    if quantities is not None:
        prior = {**prior, **quantities(prior)}
    if batched:
        if posterior is not None:
            raise QuiversTypeError("sbc takes `posterior` or `batched=True`, not both")
        every = _batched_nuts(model, x, {**fixed, **{n: prior[n] for n in names}}, seed, **fit_options)
    for r in range(int(num_replications)):
        observations = {**fixed, **{n: prior[n][r] for n in names}}
        with torch.random.fork_rng():
            torch.manual_seed(seed + 1 + r)
            if batched:
                draws = {k: v[r] for k, v in every.items()}
            elif posterior is not None:
                draws = dict(posterior(observations))
            else:
                result = fit(model, observations, x, seed=seed + 1 + r, progress_bar=False, **fit_options)
                draws = result.flat_samples()
        if quantities is not None:
            draws = dict(quantities(draws))
        for name, d in draws.items():
            if name not in prior or name in names:
                continue
            d = d.detach()
            pick = torch.linspace(0, d.shape[0] - 1, int(num_draws)).round().long()
            truth = prior[name][r].to(d.dtype)
            ranks.setdefault(name, []).append((d[pick] < truth).sum(0))
    if not ranks:
        raise QuiversTypeError("the posterior returned no latent of the model to rank")
    stacked = {k: torch.stack(v) for k, v in ranks.items()}
    p_values = {k: _chi_square_p(v, int(num_draws), bins) for k, v in stacked.items()}
    return SBCResult(stacked, int(num_draws), bins, p_values)
