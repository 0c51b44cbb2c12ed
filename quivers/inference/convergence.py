"""Convergence warnings after an inference run, as Stan and ArviZ give them.

After MCMC (:func:`mcmc_warnings`), from ArviZ's diagnostics of the draws
and the sampler's statistics:

- R-hat above 1.01 (the rank-normalized split R-hat);
- bulk or tail effective sample size under 100 per chain;
- divergent transitions after warmup;
- transitions that reached the maximum tree depth;
- E-BFMI under 0.3 in some chain;
- label switching: chains whose means agree once the components of a
  finite set (the values of a mixture's discrete latent) are permuted,
  but not as they are. The warning says so, since R-hat then measures
  the labelling, not the mixing.

After SVI (:func:`svi_warnings`): the relative change of the mean loss
over the last window of steps (beyond its noise), and the Pareto k of the importance weights
``p(y, theta) / q(theta)`` of guide draws (PSIS, ArviZ's ``psislw``),
which says whether the guide covers the posterior: k above 0.7 means the
guide's estimates are unreliable.

Each check returns messages; :func:`warn_all` issues them as
:class:`~quivers.errors.ConvergenceWarning`. None of them is an error:
the draws are returned either way.

Laws: a run whose chains are independent draws of one distribution gives
no warning (tested on converged models); each warning is tested on a
model built to trigger it.

Examples
--------
>>> import arviz as az, numpy as np
>>> g = np.random.default_rng(0)
>>> fine = az.from_dict(posterior={"mu": g.normal(size=(4, 500))})
>>> mcmc_warnings(fine)
[]
>>> stuck = az.from_dict(posterior={"mu": g.normal(size=(4, 500)) + np.arange(4)[:, None]})
>>> [" ".join(m.split()[:2]) for m in mcmc_warnings(stuck)]
['r_hat above', 'bulk ESS', 'tail ESS']
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch

from quivers.errors import ConvergenceWarning

__all__ = [
    "RHAT_MAX", "ESS_PER_CHAIN_MIN", "EBFMI_MIN", "PARETO_K_MAX", "LOSS_TREND_MAX", "LOSS_TREND_SE",
    "mcmc_warnings", "label_switching", "svi_warnings", "loss_trend", "pareto_k", "warn_all",
]

RHAT_MAX = 1.01
ESS_PER_CHAIN_MIN = 100
EBFMI_MIN = 0.3
PARETO_K_MAX = 0.7
LOSS_TREND_MAX = 1e-3  # relative fall of the mean loss over the last window
LOSS_TREND_SE = 3.0  # ... and in standard errors of the difference of window means


def _names(labels: Iterable[str], limit: int = 4) -> str:
    labels = list(labels)
    shown = ", ".join(f"`{n}`" for n in labels[:limit])
    return shown + (f" and {len(labels) - limit} more" if len(labels) > limit else "")


def mcmc_warnings(
    idata: Any,
    *,
    var_names: Sequence[str] | None = None,
    max_tree_depth: int | None = None,
    component_dims: Sequence[str] = (),
) -> list[str]:
    """The convergence problems of an MCMC run, one message each.

    Parameters
    ----------
    idata
        An ``arviz.InferenceData`` with a ``posterior`` and, for the
        sampler's checks, ``sample_stats`` (``diverging``, ``tree_depth``,
        ``energy``).
    var_names
        The posterior variables to check (default all).
    max_tree_depth
        The sampler's maximum tree depth (NUTS), for the saturation check.
    component_dims
        Dimensions that index a mixture's components, for the label
        switching check (see :func:`label_switching`).
    """
    import arviz as az

    names = list(idata.posterior.data_vars) if var_names is None else list(var_names)
    chains, draws = int(idata.posterior.sizes["chain"]), int(idata.posterior.sizes["draw"])
    messages = []
    switched = label_switching(idata, component_dims, var_names=names) if chains > 1 else {}
    for dim, moved in switched.items():
        others = ", ".join(str(c) for c in moved)
        messages.append(
            f"label switching: the chains hold the components of `{dim}` in different orders "
            f"({'chains' if len(moved) > 1 else 'chain'} {others} match chain 0 only after permuting `{dim}`), "
            f"so r_hat and the per-component "
            f"rows of the summary mix components; order the component means (`[constraint=ordered]` on their "
            f"sample), or "
            f"summarize label-invariant quantities (sorted means, the discrete posterior)"
        )
    if names:
        with np.errstate(invalid="ignore", divide="ignore"):  # a discrete draw that never moves: NaN, said quietly
            table = az.summary(idata, var_names=names, kind="diagnostics", round_to="none")
        if chains > 1:
            r_hat = table["r_hat"].dropna()
            high = r_hat[r_hat > RHAT_MAX]
            if len(high):
                messages.append(
                    f"r_hat above {RHAT_MAX} for {_names(high.index)} (largest {high.max():.3g} at "
                    f"`{high.idxmax()}`): the chains have not mixed; run longer chains, or reparameterize"
                    + (" (see the label switching warning)" if switched else "")
                )
        floor = ESS_PER_CHAIN_MIN * chains
        for column, what in (("ess_bulk", "bulk"), ("ess_tail", "tail")):
            ess = table[column].dropna()
            low = ess[ess < floor]
            if len(low):
                messages.append(
                    f"{what} ESS under {ESS_PER_CHAIN_MIN} per chain for {_names(low.index)} (smallest "
                    f"{low.min():.0f} for {chains} chains x {draws} draws at `{low.idxmin()}`): the "
                    f"{'posterior means' if what == 'bulk' else 'intervals and tail quantiles'} are unreliable; "
                    f"run more draws"
                )
    stats = getattr(idata, "sample_stats", None)
    if stats is None:
        return messages
    total = chains * draws
    if "diverging" in stats:
        n = int(stats["diverging"].values.sum())
        if n:
            messages.append(
                f"{n} of {total} transitions after warmup diverged: the sampler missed part of the "
                f"posterior; raise `target_accept` (e.g. 0.95), or reparameterize (non-centered)"
            )
    if max_tree_depth is not None and "tree_depth" in stats:
        n = int((stats["tree_depth"].values >= max_tree_depth).sum())
        if n:
            messages.append(
                f"{n} of {total} transitions reached the maximum tree depth {max_tree_depth}: their "
                f"trajectories were cut short and the chains move slowly; raise `max_tree_depth`, or reparameterize"
            )
    if "energy" in stats and draws > 1:
        bfmi = np.asarray(az.bfmi(idata))
        low = [c for c, b in enumerate(bfmi) if b < EBFMI_MIN]
        if low:
            values = ", ".join(f"{bfmi[c]:.2f}" for c in low)
            messages.append(
                f"E-BFMI under {EBFMI_MIN} in chains {low} ({values}): the momentum resampling explores "
                f"the energy poorly, often a funnel; reparameterize (non-centered)"
            )
    return messages


def label_switching(
    idata: Any, component_dims: Sequence[str], *, var_names: Sequence[str] | None = None, tolerance: float = 1.0
) -> dict[str, list[int]]:
    """Chains that hold the components of a dimension in another order
    than chain 0.

    For each dimension ``K`` of ``component_dims``, the per-chain means of
    every real posterior variable with an axis ``K`` are compared with
    chain 0's, in units of the variable's posterior sd within chains (per
    element, pooled over chains and components). A chain is label-switched
    when its means do not agree with chain 0's within ``tolerance`` sds as
    they are, but do once ``K`` is permuted (the best permutation, by
    assignment over the components).

    Returns ``{K: chains}`` for each dimension where some chains are
    label-switched; dimensions without switching are left out.

    Examples
    --------
    >>> import arviz as az, numpy as np
    >>> g = np.random.default_rng(0)
    >>> mu = g.normal(size=(4, 200, 2)) * 0.1 + np.array([-2.0, 2.0])
    >>> mu[1], mu[3] = mu[1, :, ::-1], mu[3, :, ::-1]   # chains 1 and 3 swap the labels
    >>> idata = az.from_dict(posterior={"mu": mu}, dims={"mu": ["K"]})
    >>> label_switching(idata, ["K"])
    {'K': [1, 3]}
    """
    from scipy.optimize import linear_sum_assignment

    post = idata.posterior
    names = list(post.data_vars) if var_names is None else list(var_names)
    out = {}
    for dim in component_dims:
        parts = [
            post[n].transpose("chain", "draw", dim, ...).values.astype(float)
            for n in names
            if dim in post[n].dims and np.issubdtype(post[n].dtype, np.floating)
        ]
        if not parts or post.sizes[dim] < 2 or post.sizes["draw"] < 2:  # no within-chain spread to judge by
            continue
        x = np.concatenate([p.reshape(p.shape[:3] + (-1,)) for p in parts], axis=-1)  # chain, draw, K, F
        means = x.mean(1)  # chain, K, F
        scale = np.sqrt(x.var(1, ddof=1).mean((0, 1)))  # F: the within-chain sd, pooled over K
        scale = np.where(scale > 0, scale, 1.0)
        identity = np.arange(means.shape[1])
        switched = []
        for c in range(1, means.shape[0]):
            if _distance(means[c], means[0], scale, identity) <= tolerance:
                continue
            cost = (np.abs(means[c][:, None, :] - means[0][None, :, :]) / scale).max(-1)
            rows, cols = linear_sum_assignment(cost)
            perm = np.empty_like(cols)
            perm[cols] = rows
            if _distance(means[c], means[0], scale, perm) <= tolerance:
                switched.append(c)
        if switched:
            out[dim] = switched
    return out


def _distance(a: np.ndarray, b: np.ndarray, scale: np.ndarray, perm: np.ndarray) -> float:
    """The largest standardized difference between ``a`` with its components
    taken in the order ``perm`` and ``b``."""
    return float((np.abs(a[perm] - b) / scale).max())


def loss_trend(losses: Sequence[float], window: int | None = None) -> tuple[float, float]:
    """The relative change of the mean loss over the last ``window`` steps,
    and that change in standard errors.

    The last two windows (default a tenth of the run each, at least 10
    steps) are compared: ``(mean(last) - mean(previous)) / |mean(previous)|``,
    negative while the loss still falls, and the same difference over its
    standard error (the losses of single steps are noisy estimates, so a
    change within a few standard errors is noise, not a trend). NaNs for a
    run shorter than two windows.

    Examples
    --------
    >>> change, z = loss_trend([10.0, 10.2] * 25 + [9.0, 9.2] * 25, window=50)
    >>> round(change, 3), bool(z < -10)
    (-0.099, True)
    >>> loss_trend([3.0] * 40)
    (0.0, 0.0)
    """
    losses = np.asarray(losses, dtype=float)
    window = window or max(10, len(losses) // 10)
    if len(losses) < 2 * window:
        return float("nan"), float("nan")
    last, previous = losses[-window:], losses[-2 * window : -window]
    diff = last.mean() - previous.mean()
    se = np.sqrt((last.var(ddof=1) + previous.var(ddof=1)) / window)
    if se > 0:
        z = float(diff / se)
    else:  # constant windows: no change is no trend, any change is certain
        z = 0.0 if diff == 0 else float(np.copysign(np.inf, diff))
    return float(diff / max(abs(previous.mean()), 1e-12)), z


def pareto_k(log_weights: Any) -> float:
    """The Pareto k of importance weights given by their logs (ArviZ's
    ``psislw``): under 0.5 the importance estimates are reliable, up to 0.7
    usable, above 0.7 not.

    Examples
    --------
    >>> import numpy as np
    >>> bool(pareto_k(np.random.default_rng(0).normal(size=2000) * 0.1) < 0.5)
    True
    """
    import arviz as az

    if isinstance(log_weights, torch.Tensor):  # on any device
        log_weights = log_weights.detach().cpu().double().numpy()
    lw = np.asarray(log_weights, dtype=float).reshape(-1)
    lw = np.where(np.isfinite(lw), lw, -np.inf)
    with warnings.catch_warnings():  # ArviZ's own k warning; ours says what it means for the fit
        warnings.simplefilter("ignore")
        _, k = az.psislw(lw)
    return float(np.asarray(k))


def svi_warnings(losses: Sequence[float], log_weights: Any = None) -> list[str]:
    """The convergence problems of an SVI run: a loss still falling over
    the last window (:func:`loss_trend`: by more than 0.1% and more than
    three standard errors), and a Pareto k above 0.7 for the
    importance weights ``log p(y, theta) - log q(theta)`` of guide draws."""
    messages = []
    change, z = loss_trend(losses)
    if change < -LOSS_TREND_MAX and z < -LOSS_TREND_SE:
        messages.append(
            f"the loss fell by {-change:.2%} over the last tenth of the steps ({-z:.1f} standard errors): "
            f"SVI has not converged; run more steps, or raise the learning rate"
        )
    if log_weights is not None:
        k = pareto_k(log_weights)
        if not k <= PARETO_K_MAX:
            messages.append(
                f"Pareto k of the guide's importance weights is {k:.2f} (above {PARETO_K_MAX}): the guide "
                f"misses part of the posterior (its tails or correlations), and its intervals are not to be "
                f"trusted; try a richer guide (`mvn`), or NUTS"
            )
    return messages


def warn_all(messages: Iterable[str]) -> None:
    """Issue each message as a :class:`~quivers.errors.ConvergenceWarning`,
    attributed to the first caller outside quivers (the user's line that
    ran the fit, not the library's)."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    frame, level = sys._getframe(0), 1
    while frame.f_back is not None and os.path.abspath(frame.f_code.co_filename).startswith(package + os.sep):
        frame, level = frame.f_back, level + 1
    for m in messages:
        warnings.warn(m, ConvergenceWarning, stacklevel=level)
