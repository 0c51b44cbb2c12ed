"""``fit``: the common path from a program and data to a posterior.

One call runs NUTS or SVI (with an automatic guide): NUTS by default where
the model is small enough to sample, SVI otherwise or when asked
(:mod:`quivers.inference.method` gives the rule). It shows a tqdm progress
bar with the acceptance rate or the loss, runs on the device asked for
(``device="cuda"``: the model and the data move there), and returns a
:class:`FitResult` that says which method ran and why, whose
:meth:`FitResult.summary` is ArviZ's table (mean, sd, HDI, MCSE, ESS,
R-hat) and whose :meth:`FitResult.discrete_posterior` recovers the
marginalized latents.

Examples
--------
>>> import torch
>>> from quivers.categories.finset import FinSet
>>> from quivers.distributions import Normal
>>> from quivers.programs import Program, sample, observe, var
>>> I = FinSet("I", 5)
>>> prog = Program("p", I, I, [sample("mu", None, Normal(0.0, 1.0)),
...                            observe("y", I, Normal(var("mu"), 1.0))])
>>> result = fit(prog, {"y": torch.ones(5)}, num_warmup=200, num_samples=250, seed=0, progress_bar=False)
>>> result
<FitResult of `p`: NUTS, 4 chains x 250 draws (chosen by fit: NUTS options given (num_warmup); method="svi" runs SVI)>
>>> abs(float(result.samples["mu"].mean()) - 5 / 6) < 0.1  # the conjugate posterior mean, sd 0.41
True
>>> svi = fit(prog, {"y": torch.ones(5)}, method="svi", steps=600, lr=0.05, seed=0, progress_bar=False)
>>> svi.method, svi.choice.reason
('svi', 'method="svi" given')
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import torch

from quivers.errors import ConvergenceWarning, InvalidValueError, QuiversTypeError, UnknownNameError
from quivers.inference.convergence import mcmc_warnings, svi_warnings, warn_all
from quivers.inference.devices import as_device, device_of, to_device
from quivers.inference.elbo import ELBO
from quivers.inference.guides import (
    AutoDelta,
    AutoGuide,
    AutoLowRankMultivariateNormal,
    AutoMultivariateNormal,
    AutoNormalGuide,
)
from quivers.inference.flows import AutoIAFNormal, AutoMAFNormal, AutoNSFNormal
from quivers.inference.gibbs import GibbsAdaptor
from quivers.inference.laplace import AutoLaplaceApproximation
from quivers.inference.mcmc import MCMC, NUTS, DiscreteHMCGibbs
from quivers.inference.mcmc.init import InitStrategy
from quivers.inference.method import NUTS_OPTIONS, SVI_OPTIONS, Choice, choose_method, titled
from quivers.inference.predictive import DiscretePosterior, infer_discrete
from quivers.inference.program_adaptor import ProgramAdaptor, component_dims
from quivers.inference.svi import SVI, adam
from quivers.nn import MorphismModule
from quivers.programs import MarginalizeStep, MarkovStep, Program
from quivers.programs.sites import _bare_name

__all__ = ["fit", "FitResult", "GUIDES"]

GUIDES: dict[str, type[AutoGuide]] = {
    "normal": AutoNormalGuide,
    "delta": AutoDelta,
    "mvn": AutoMultivariateNormal,
    "lowrank": AutoLowRankMultivariateNormal,
    "iaf": AutoIAFNormal,
    "maf": AutoMAFNormal,
    "nsf": AutoNSFNormal,
    "laplace": AutoLaplaceApproximation,
}


@dataclass(repr=False)
class FitResult:
    """What :func:`fit` found.

    ``samples`` maps each latent to posterior draws of shape
    ``(chains, draws, *site)``: NUTS's chains, or for SVI independent
    draws from the guide laid out as chains (so that ArviZ's R-hat and ESS
    apply to them as to any draws). ``diagnostics`` holds the convergence
    problems that were issued as warnings. ``sample_stats`` are NUTS's
    per-draw statistics and ``adaptation`` where its chains ended (step
    sizes, inverse mass matrices, last unconstrained points), which
    :meth:`resume` continues from. ``method`` is the method that ran
    (``"nuts"`` or ``"svi"``) and ``choice`` why: named by the caller, or
    chosen by :func:`fit` (see :mod:`quivers.inference.method`); the
    ``repr`` and the printed :meth:`summary` say both.
    """

    model: Program
    method: str
    samples: dict[str, torch.Tensor]
    observations: Mapping[str, Any]
    x: Any = None
    guide: AutoGuide | None = None
    mcmc: MCMC | None = None
    losses: list[float] = field(default_factory=list)
    diagnostics: list[str] = field(default_factory=list)
    sample_stats: dict[str, torch.Tensor] | None = None
    adaptation: dict[str, Any] | None = None
    seed: int | None = None
    choice: Choice | None = None
    _latents: dict[str, torch.Tensor] | None = field(default=None, repr=False)

    def describe(self) -> str:
        """One line: what ran and why, the title of the printed summary."""
        if self.method == "fixed_param":
            what = "no latent to sample (Stan's fixed_param): the program's values are exact"
            return f"{what} ({self.choice.note()})" if self.choice is not None else what
        if not self.samples:  # a morphism model, or a program with no latent: point estimates, no draws
            whose = "the program's parameters; it has no latent" if isinstance(self.model, Program) else "the morphism's parameters"
            what = f"SVI, {len(self.losses)} steps of {whose} (point estimates)"
            return f"{what} ({self.choice.note()})" if self.choice is not None else what
        draws = f"{self.num_chains} chains x {self.num_draws} draws"
        if self.method == "nuts" and (self.adaptation or {}).get("discrete") == "gibbs":
            sampled = [n for n in self.samples if self.model.sites[n].discrete]
            what = f"NUTS with Gibbs steps on {', '.join(f'`{n}`' for n in sampled)}, {draws}"
        elif self.method == "nuts":
            what = f"NUTS, {draws}"
        else:
            guide = type(self.guide).__name__ if self.guide is not None else "a guide"
            what = f"SVI, {len(self.losses)} steps of {guide}, {draws} from the guide"
        return f"{what} ({self.choice.note()})" if self.choice is not None else what

    def __repr__(self) -> str:
        name = getattr(self.model, "name", None) or f"{self.model.dom} -> {self.model.cod}"
        return f"<FitResult of `{name}`: {self.describe()}>"

    @property
    def num_chains(self) -> int:
        return int(next(iter(self.samples.values())).shape[0])

    @property
    def num_draws(self) -> int:
        return int(next(iter(self.samples.values())).shape[1])

    def flat_samples(self) -> dict[str, torch.Tensor]:
        return {k: v.reshape((-1,) + tuple(v.shape[2:])) for k, v in self.samples.items()}

    def _grouped(self, values: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        lead = (self.num_chains, self.num_draws)
        return {k: v.reshape(lead + tuple(v.shape[1:])) for k, v in values.items()}

    def latent_draws(self) -> dict[str, torch.Tensor]:
        """One draw of every marginalized latent from its exact conditional
        given each posterior draw (and the data), as Stan's generated
        quantities give them: ``(chains, draws, *rows)``. Drawn once (with
        the fit's seed) and kept."""
        if self._latents is None:
            posts = infer_discrete(self.model, self.flat_samples(), self.x, self.observations, seed=self.seed)
            self._latents = self._grouped({k: p.draws for k, p in posts.items()})
        return self._latents

    def deterministic_draws(self) -> dict[str, torch.Tensor]:
        """Each ``let`` of the program at each posterior draw, ``(chains,
        draws, *rows)``, as Stan's transformed parameters and PyMC's
        ``Deterministic`` give them. Only lets computed from the sampled
        latents and the data have one value per draw: a let that reads a
        summed-out latent or an observation is left out."""
        model = self.model
        if not isinstance(model, Program) or not self.samples:
            return {}
        summed = {n for n, s in model.sites.items() if s.kind in ("marginal", "observed")}
        summed |= set(getattr(model, "summed", ()))
        lets = [
            n for n, s in model.sites.items()
            if s.kind == "deterministic" and not (nx.ancestors(model.graph, n) & summed)
        ]
        if not lets:
            return {}
        constant = {k: v for k, v in self.observations.items() if model.sites[k].kind != "observed"}
        with torch.no_grad(), torch.random.fork_rng():
            out = model.sample(self.x, latents=self.flat_samples(), observations=constant)
        return self._grouped({n: out[n] for n in lets})

    def predictive(
        self, num_samples: int | None = None, x: Any = None, observations: Mapping[str, Any] | None = None,
        seed: int | None = None,
    ) -> dict[str, torch.Tensor]:
        """Posterior predictive draws: each observed site drawn afresh from
        the model under each posterior draw, ``(chains, draws, *site)``.

        ``x`` and ``observations`` replace the fit's input and data (index
        maps and covariates of new rows); ``num_samples`` keeps the first
        draws of each chain.
        """
        from quivers.inference.predictive import Predictive

        observations = self.observations if observations is None else observations
        x = self.x if x is None else x
        samples = self.samples
        if num_samples is not None:
            samples = {k: v[:, : int(num_samples)] for k, v in samples.items()}
        flat = {k: v.reshape((-1,) + tuple(v.shape[2:])) for k, v in samples.items()}
        observed = [s.name for s in self.model.observed_sites]
        with torch.random.fork_rng():
            if seed is not None:
                torch.manual_seed(seed)
            draws = Predictive(self.model, posterior_samples=flat, return_sites=observed)(x, observations)
        lead = tuple(next(iter(samples.values())).shape[:2])
        return {k: v.reshape(lead + tuple(v.shape[1:])) for k, v in draws.items()}

    def to_inference_data(
        self, log_likelihood: bool = True, *, posterior_predictive: bool = False, prior: int = 0,
    ) -> Any:
        """The fit as ``arviz.InferenceData``, its axes named after the
        program's FinSets (``K``, ``Item``) with coordinates:

        - ``posterior``: the draws, the lets at each draw
          (:meth:`deterministic_draws`), and one exact draw of each
          marginalized latent per draw (:meth:`latent_draws`);
        - ``sample_stats``: NUTS's statistics under ArviZ's names;
        - ``log_likelihood``: the pointwise log likelihood of each observed
          site, which ArviZ's ``loo`` and ``waic`` read: per row; for a
          per-row mixture, each row's mixture density; for a grouped
          mixture (``marginalize ... [over=G]``), one term per group, the
          group's mixture density ``log sum_k pi_gk prod_{n in g} p(y_n | k)``
          (its rows share the latent, so they are left out together);
        - ``observed_data`` and ``constant_data`` (index maps, covariates);
        - ``posterior_predictive`` when asked (:meth:`predictive`), and
          ``prior`` and ``prior_predictive`` with ``prior`` draws from the
          prior.
        """
        from quivers.inference.diagnostics import to_inference_data
        from quivers.inference.predictive import Predictive

        model = self.model
        dims = {n: s.dims for n, s in model.sites.items()}
        observed = {k: v for k, v in self.observations.items() if k in model.sites and model.sites[k].kind == "observed"}
        constant = {k: v for k, v in self.observations.items() if k not in observed}
        pointwise, ll_dims = None, {}
        if log_likelihood:
            with torch.no_grad():
                terms = model.pointwise_log_likelihood(self.x, self.observations, self.flat_samples())
            pointwise, lead = {}, (self.num_chains, self.num_draws)
            for name, t in terms.items():
                rows, ll_dims[name] = _likelihood_rows(model, name)
                t = t.reshape((-1,) + tuple(t.shape[t.dim() - len(rows) :]))
                t = t.expand((lead[0] * lead[1],) + tuple(t.shape[1:]))  # a term no draw changes
                pointwise[name] = t.reshape(lead + tuple(t.shape[1:]))
        predictive = self.predictive() if posterior_predictive else None
        prior_draws = prior_predictive = None
        if prior:
            draws = Predictive(model, num_samples=int(prior))(self.x, constant)
            draws = {k: v.unsqueeze(0) for k, v in draws.items() if k in model.sites}
            prior_draws = {k: v for k, v in draws.items() if model.sites[k].kind in ("latent", "marginal")}
            prior_predictive = {k: v for k, v in draws.items() if model.sites[k].kind == "observed"}
        stats = self.sample_stats
        if stats is None and self.mcmc is not None:
            stats = self.mcmc.get_sample_stats(group_by_chain=True)
        return to_inference_data(
            {**self.samples, **self.deterministic_draws(), **self.latent_draws()}, sample_stats=stats, observed_data=observed,
            log_likelihood=pointwise, constant_data=constant, prior=prior_draws, prior_predictive=prior_predictive,
            posterior_predictive=predictive, dims=dims, log_likelihood_dims=ll_dims,
            attrs={"inference_method": self.method},
        )

    def summary(self, hdi_prob: float | None = None, var_names: list[str] | None = None) -> Any:
        """ArviZ's summary table, the same for SVI and NUTS (see
        :func:`~quivers.inference.diagnostics.summary`): mean, sd, HDI,
        MCSE, bulk and tail ESS and R-hat of each sampled latent, rows
        labelled by FinSet coordinate (``mu_k[0]``), ArviZ's rounding. The
        weights of a Categorical are shown normalized (the model reads them
        so). For SVI the draws are independent draws from the guide: their
        R-hat is about 1 and their ESS about their number, so the columns
        measure the Monte Carlo error of the summary, not the guide's fit
        (see :attr:`diagnostics` for that). Printed, the table is titled
        with what ran and why (:meth:`describe`)."""
        from quivers.inference.diagnostics import summary, to_inference_data

        weights = _categorical_weights(self.model)
        samples = {
            k: (v / v.sum(-1, keepdim=True) if k in weights else v) for k, v in self.samples.items()
        }
        dims = {n: s.dims for n, s in self.model.sites.items()}
        idata = to_inference_data(samples, dims=dims)
        return titled(summary(idata, hdi_prob=hdi_prob, var_names=var_names), self.describe())

    def discrete_posterior(self, seed: int | None = None) -> dict[str, DiscretePosterior]:
        """The posterior of each marginalized latent, averaged over draws."""
        return infer_discrete(self.model, self.flat_samples(), self.x, self.observations, seed=seed)

    def resume(
        self, *, num_samples: int | None = None, steps: int | None = None, seed: int | None = None,
        progress_bar: bool = True,
    ) -> FitResult:
        """Continue the fit, as if it had run longer.

        NUTS: ``num_samples`` more draws per chain (default as many as
        there are), starting where each chain stopped with its adapted step
        size and mass matrix (no new warmup); the result holds the old
        draws followed by the new. SVI: ``steps`` more optimizer steps of
        the guide (default as many as there were), then fresh guide draws.
        """
        if self.method == "nuts":
            return _resume_nuts(self, num_samples or self.num_draws, seed, progress_bar)
        if self.guide is None:
            raise QuiversTypeError("this SVI fit holds no guide to continue from")
        return _fit_svi(
            self.model, self.observations, self.x, self.guide, steps or max(len(self.losses), 1), self._lr(),
            ELBO(jit_compile=bool((self.adaptation or {}).get("jit_compile", False))), self.num_draws,
            self.num_chains, seed, progress_bar, losses=list(self.losses), choice=self.choice,
        )

    def _lr(self) -> float:
        return float((self.adaptation or {}).get("lr", 1e-2))

    def save(self, path: Any) -> None:
        """Write the fit to NetCDF (its :meth:`to_inference_data`, with the
        program's source and the state to continue from); read it back with
        :func:`quivers.results.load_fit`."""
        from quivers.results import save_fit

        save_fit(self, path)


def _categorical_weights(model: Program) -> set[str]:
    """Latents read whole as the weights of a Categorical (``Categorical(probs)``
    with ``probs`` a sampled site), which the family normalizes."""
    out = set()
    for site in model.sites.values():
        family = site.step.prior if isinstance(site.step, MarginalizeStep) else site.family
        if family is None or family.name != "Categorical":
            continue
        name = _bare_name(family.args.get("weights"))
        if name in model.sites and model.sites[name].kind == "latent":
            out.add(name)
    return out


def _likelihood_rows(model: Program, name: str) -> tuple[tuple[int, ...], tuple[str, ...]]:
    """The shape and dims of the pointwise terms of observation ``name``:
    its plate, the ``over`` plate of a grouped block, whose likelihood
    factors over groups, not rows (the latent is shared by every row of a
    group), or the sequences of a Markov chain, whose likelihood factors
    over sequences, not steps."""
    site = model.sites[name]
    if site.blocks:
        block = model.sites[site.blocks[0]]
        if isinstance(block.step, MarkovStep):  # one term per sequence: the chain's axes but time
            return tuple(block.shape[:-1]), tuple(block.dims[:-1])
        over = getattr(block.step, "over", None)
        if over is not None:
            return (over.size,), (over.name,)
    return tuple(site.shape), tuple(site.dims)


def fit(
    model: Program,
    observations: Mapping[str, Any],
    x: Any = None,
    *,
    method: str = "auto",
    guide: str | AutoGuide | None = None,
    steps: int | None = None,
    lr: float | None = None,
    num_particles: int | None = None,
    discrete: str | None = None,
    temperature: float | None = None,
    num_samples: int = 1000,
    num_warmup: int | None = None,
    num_chains: int = 4,
    target_accept: float | None = None,
    max_tree_depth: int | None = None,
    dense_mass: bool | None = None,
    init: Mapping[str, Any] | None = None,
    init_strategy: InitStrategy | None = None,
    chain_method: str | None = None,
    seed: int | None = None,
    progress_bar: bool = True,
    device: torch.device | str | None = None,
    svi: Any = None,
    jit_compile: bool = False,
) -> FitResult:
    """Fit ``model`` to ``observations`` by NUTS or SVI.

    After the run its convergence is checked (for NUTS as Stan checks it:
    R-hat, ESS, divergences, tree depth, E-BFMI, label switching; for SVI
    the loss trend and the Pareto k of the guide's importance weights) and
    each problem is issued as a :class:`~quivers.errors.ConvergenceWarning`
    and kept in ``FitResult.diagnostics``.

    Parameters
    ----------
    method
        ``"auto"`` (the default: NUTS where the model is small enough to
        sample, SVI where it is not or an SVI option is given; see
        :mod:`quivers.inference.method`), ``"nuts"`` or ``"svi"``. The
        result's ``method`` and ``choice`` say which ran and why.
    guide
        For SVI: ``"normal"`` (the default), ``"delta"``, ``"mvn"``,
        ``"lowrank"``, the flows ``"iaf"``, ``"maf"`` and ``"nsf"``,
        ``"laplace"`` (SVI finds the mode, then the result's guide is the
        Laplace approximation there: see
        :class:`~quivers.inference.AutoLaplaceApproximation`), or a guide
        (e.g. :func:`~quivers.inference.compose_guides`).
    steps, lr, num_particles
        SVI's number of Adam steps (default 3000), learning rate (0.01) and
        particles per step (1).
    discrete, temperature
        How sampled discrete latents (those no ``marginalize`` block or
        plan sums) are drawn: ``"gibbs"`` runs NUTS on the continuous
        latents with Gibbs steps from each discrete site's exact
        conditional between its transitions
        (:class:`~quivers.inference.mcmc.gibbs.DiscreteHMCGibbs`; the
        discrete draws are in ``samples``); ``"score"`` (SVI's default) or
        ``"relaxed"`` with its temperature are SVI's estimators (see
        :class:`ELBO`).
    num_samples, num_chains
        Posterior draws to keep per chain, and chains (for SVI, independent
        guide draws laid out as chains).
    num_warmup, target_accept, max_tree_depth
        NUTS's warmup iterations (default 1000), the acceptance rate its
        step size adapts to (0.8), and the largest tree depth (10).
    dense_mass
        NUTS adapts a dense mass matrix (Stan's regularized covariance of
        each slow window) instead of the diagonal one (the default): for
        posteriors whose latents are strongly correlated.
    init, init_strategy
        NUTS's starting points: constrained values of every sampled latent
        with a leading chain axis; or a strategy
        (:func:`~quivers.inference.init_to_median`,
        :func:`~quivers.inference.init_to_value`,
        :func:`~quivers.inference.init_to_uniform`, the default's radius 2).
        Not both.
    chain_method
        ``"vectorized"`` (the default: the chains as one batch) or
        ``"parallel"`` (a process per chain).
    seed
        Makes the run reproducible.
    device
        Where to run: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, a
        ``torch.device``. The model (its parameters and buffers) and the
        data are moved there and the guide is made there; the draws come
        back there. By default, where the model's parameters or buffers
        are, or for a model that holds none where the data is.
    svi
        The SVI driver, called as ``svi(model, guide, optimizer, loss)``
        (default :class:`~quivers.inference.SVI`); e.g.
        ``functools.partial(quivers.distributed.DistributedSVI, plate="Item")``
        fits data-parallel over the processes of a ``torch.distributed``
        group.
    jit_compile
        SVI: each step after the first is one call of a graph recorded
        and compiled once (``ELBO(jit_compile=True)``, see
        :class:`ELBO`): the same draws, several times faster on a small
        model, after seconds of compilation. NUTS: each leapfrog step
        (the potential's forward and backward included) is one call of
        code compiled once per run (see
        :class:`~quivers.inference.mcmc.kernel.HamiltonianKernel`); the
        draws agree with the eager run's up to rounding. Not with
        ``discrete="gibbs"``. What cannot be compiled runs eagerly with a
        :class:`~quivers.capture.CompileWarning`. Off by default.

    A morphism module (a QVR ``morphism`` or ``define``, a kernel
    program) is fitted by SVI alone, its parameters as point estimates:
    ``observations`` are its outputs (``None`` for a morphism into ``1``),
    ``x`` its inputs, and the loss its exact negative log density
    (:mod:`quivers.inference.morphisms`); the result holds the losses and
    no draws.

    Raises
    ------
    DeviceError
        A device torch cannot use here (``"cuda"`` without a GPU).
    QuiversTypeError
        An unknown method, or options of one method given with the other.
    """
    if not isinstance(jit_compile, bool):
        raise QuiversTypeError(f"jit_compile must be True or False, got {jit_compile!r}")
    if isinstance(model, MorphismModule):
        other = dict(guide=guide, num_warmup=num_warmup, init=init, target_accept=target_accept,
                     max_tree_depth=max_tree_depth, dense_mass=dense_mass, init_strategy=init_strategy,
                     chain_method=chain_method, discrete=discrete, temperature=temperature)
        nuts = sorted(k for k, v in other.items() if v is not None)
        return _fit_morphism(model, observations, x, method, nuts, steps, lr, num_particles, seed, progress_bar, device,
                             jit_compile)
    if not isinstance(model, Program):
        raise QuiversTypeError(f"fit needs a quivers Program or a morphism module, got {type(model).__name__}")
    if not isinstance(observations, Mapping):
        raise QuiversTypeError(f"observations must be a dict of site names to data, got {type(observations).__name__}")
    given = dict(guide=guide, steps=steps, lr=lr, num_particles=num_particles, discrete=discrete,
                 temperature=temperature, num_warmup=num_warmup, init=init, target_accept=target_accept,
                 max_tree_depth=max_tree_depth, dense_mass=dense_mass, init_strategy=init_strategy,
                 chain_method=chain_method)
    given = {k for k, v in given.items() if v is not None}
    if init is not None and init_strategy is not None:
        raise QuiversTypeError("give NUTS its starting points by `init` or by `init_strategy`, not both")
    gibbs = discrete == "gibbs"
    if gibbs:  # an option of NUTS, not of SVI
        given = (given - {"discrete"}) | {"gibbs"}
    device = as_device(device)
    if device is not None:
        model.to(device)
    else:
        device = device_of(model)
    observations = to_device(observations, device)
    if isinstance(x, torch.Tensor) and device is not None:
        x = x.to(device)
    observed = {k for k in observations if k in model.sites and model.sites[k].kind in ("observed", "latent")}
    choice = choose_method(model, observations, observed, given & set(SVI_OPTIONS),
                           {("discrete" if n == "gibbs" else n) for n in given & {*NUTS_OPTIONS, "gibbs"}},
                           method=method)
    if choice.method == "nuts" and not model.latent_sites(observed):
        return _fixed_param(model, observations, x, seed, choice)
    if choice.method == "svi":
        elbo = ELBO(num_particles=num_particles or 1, discrete=discrete or "score", temperature=temperature,
                    jit_compile=jit_compile)
        if seed is not None:
            torch.manual_seed(seed)
        guide = "normal" if guide is None else guide
        if isinstance(guide, str):
            if guide not in GUIDES:
                raise UnknownNameError(f"unknown guide `{guide}`", name=guide, candidates=GUIDES)
            guide = GUIDES[guide](model, observed_names=observed)
        if device is not None:
            guide.to(device)
        return _fit_svi(model, observations, x, guide, 3000 if steps is None else steps, 1e-2 if lr is None else lr,
                        elbo, num_samples, num_chains, seed, progress_bar, choice=choice, driver=svi)
    options = dict(target_accept=0.8 if target_accept is None else target_accept,
                   max_tree_depth=10 if max_tree_depth is None else max_tree_depth,
                   dense_mass=bool(dense_mass), init_strategy=init_strategy)
    if jit_compile:  # the kernel refuses it with Gibbs steps
        options["jit_compile"] = True
    if gibbs:
        kernel = DiscreteHMCGibbs(GibbsAdaptor(model, observed_names=observed, init=init, device=device), **options)
    else:
        kernel = NUTS(ProgramAdaptor(model, observed_names=observed, init=init, device=device), **options)
    return _run_nuts(model, observations, x, kernel, 1000 if num_warmup is None else num_warmup, num_samples,
                     num_chains, seed, progress_bar, choice=choice, chain_method=chain_method or "vectorized")


def _fixed_param(model, observations, x, seed, choice) -> FitResult:
    """NUTS on a program with nothing to sample (every site observed, or
    none drawn): as Stan's ``fixed_param`` sampler, no Markov chain runs.
    The log density is evaluated once (which checks the data), and the
    result holds no draws; the program's values are exact
    (``model.sample(observations=...)``)."""
    lp = model.log_joint(x, observations)
    if not bool(torch.isfinite(torch.as_tensor(lp)).all()):
        raise InvalidValueError(
            f"program `{model.name}` has no latent to sample and its log density at the data is {float(lp)}"
        )
    return FitResult(model, "fixed_param", {}, observations, x, seed=seed, choice=choice)


def _run_nuts(model, observations, x, kernel, num_warmup, num_samples, num_chains, seed, progress_bar,
              before: FitResult | None = None, choice: Choice | None = None,
              chain_method: str = "vectorized") -> FitResult:
    mcmc = MCMC(kernel, num_warmup=num_warmup, num_samples=num_samples, num_chains=num_chains,
                seed=seed, progress_bar=progress_bar, chain_method=chain_method)
    if before is None:
        mcmc.run(x, observations)  # which checks the draws and warns
    else:
        with warnings.catch_warnings():  # the new draws alone; checked below with the old ones
            warnings.simplefilter("ignore", ConvergenceWarning)
            mcmc.run(x, observations)
    samples = mcmc.get_samples(group_by_chain=True)
    stats = mcmc.get_sample_stats(group_by_chain=True)
    if before is not None:
        samples = {k: torch.cat([before.samples[k], v], 1) for k, v in samples.items()}
        stats = {k: torch.cat([before.sample_stats[k], v], 1) for k, v in stats.items()}
    adaptation = {
        "step_size": kernel.step_size.clone(),
        "inverse_mass_matrix": kernel.inverse_mass_matrix.clone(),
        "z": mcmc.unconstrained_draws[:, -1].clone(),
        "max_tree_depth": kernel.max_tree_depth,
        "target_accept": kernel.target_accept,
    }
    if isinstance(kernel, DiscreteHMCGibbs):  # the chains' rows end in their discrete values
        adaptation["discrete"] = "gibbs"
    elif kernel.jit_compile:  # resumed compiled too
        adaptation["jit_compile"] = True
    result = FitResult(model, "nuts", samples, observations, x, mcmc=mcmc, sample_stats=stats,
                       adaptation=adaptation, seed=seed, choice=before.choice if before is not None else choice)
    if before is None:
        result.diagnostics = mcmc.diagnostics
    else:
        result.diagnostics = mcmc_warnings(
            result.to_inference_data(log_likelihood=False), var_names=list(samples),
            max_tree_depth=kernel.max_tree_depth, component_dims=component_dims(model),
        )
        warn_all(result.diagnostics)
    return result


def _resume_nuts(before: FitResult, num_samples: int, seed: int | None, progress_bar: bool) -> FitResult:
    a = before.adaptation
    if a is None or before.sample_stats is None:
        raise QuiversTypeError("this NUTS fit holds no adapted state to continue from")
    observed = {k for k in before.observations if k in before.model.sites
                and before.model.sites[k].kind in ("observed", "latent")}
    options = dict(step_size=a["step_size"], inverse_mass_matrix=a["inverse_mass_matrix"], adapt_step_size=False,
                   adapt_mass_matrix=False, max_tree_depth=int(a["max_tree_depth"]),
                   target_accept=float(a["target_accept"]))
    if a.get("discrete") == "gibbs":
        dim = a["inverse_mass_matrix"].shape[-1]
        adaptor = GibbsAdaptor(before.model, observed_names=observed, init=a["z"][:, :dim], device=a["z"].device,
                               discrete_init=a["z"][:, dim:])
        kernel = DiscreteHMCGibbs(adaptor, **options)
    else:
        adaptor = ProgramAdaptor(before.model, observed_names=observed, init=a["z"], device=a["z"].device)
        kernel = NUTS(adaptor, jit_compile=bool(a.get("jit_compile", False)), **options)
    return _run_nuts(before.model, before.observations, before.x, kernel, 0, int(num_samples),
                     before.num_chains, seed, progress_bar, before=before)


def _fit_svi(model, observations, x, guide, steps, lr, elbo, num_samples, num_chains, seed, progress_bar,
             losses: list[float] | None = None, choice: Choice | None = None, driver: Any = None) -> FitResult:
    from tqdm.auto import tqdm

    if int(steps) <= 0:
        raise QuiversTypeError(f"steps must be positive, got {steps}")
    if seed is not None:
        torch.manual_seed(seed)
    optimizer = adam(list(model.parameters()) + list(guide.parameters()), lr=lr)
    svi = (SVI if driver is None else driver)(model, guide, optimizer, elbo)
    losses = [] if losses is None else losses
    bar = tqdm(range(int(steps)), desc="svi", disable=None if progress_bar else True, dynamic_ncols=True)
    for i in bar:
        losses.append(svi.step(x, observations))
        if not bar.disable and (i % 50 == 0 or i == steps - 1):
            bar.set_postfix(loss=f"{losses[-1]:.4g}", refresh=False)
    if isinstance(guide, AutoLaplaceApproximation):  # the mode found: the normal at it is the posterior
        guide = guide.laplace_approximation(x, observations)
    total = int(num_samples) * int(num_chains)
    with torch.no_grad():
        draw = guide(total)
        log_weights = model.log_joint(x, observations, draw.latents) - draw.log_q
    samples = {k: v.reshape((int(num_chains), int(num_samples)) + tuple(v.shape[1:])) for k, v in draw.latents.items()}
    result = FitResult(model, "svi", samples, observations, x, guide=guide, losses=losses,
                       adaptation={"lr": float(lr), **({"jit_compile": True} if getattr(elbo, "jit_compile", False) else {})},
                       seed=seed, choice=choice)
    # with no latent the guide is exact (equal weights), and there is no Pareto k to estimate
    result.diagnostics = svi_warnings(losses, log_weights if draw.latents else None)
    warn_all(result.diagnostics)
    return result


def _fit_morphism(model, observations, x, method, nuts, steps, lr, num_particles, seed, progress_bar,
                  device, jit_compile=False) -> FitResult:
    """SVI on a morphism module's parameters: Adam on its negative log
    density (plus the log prior of kernels that declare one)."""
    from tqdm.auto import tqdm

    if method not in ("auto", "svi"):
        raise QuiversTypeError(
            f'a morphism module is fitted by SVI (its parameters are point estimates); got method="{method}"',
            hint='use method="svi"',
        )
    if nuts:
        raise QuiversTypeError(f"{', '.join(nuts)}: not options of fitting a morphism module (steps, lr, "
                               "num_particles, seed are)")
    steps = 3000 if steps is None else int(steps)
    if steps <= 0:
        raise QuiversTypeError(f"steps must be positive, got {steps}")
    device = as_device(device)
    if device is not None:
        model.to(device)
        x = x.to(device) if isinstance(x, torch.Tensor) else x
        observations = observations.to(device) if isinstance(observations, torch.Tensor) else to_device(
            observations, device)
    if seed is not None:
        torch.manual_seed(seed)
    lr = 1e-2 if lr is None else float(lr)
    svi = SVI(model, None, adam(model.parameters(), lr=lr), ELBO(num_particles=num_particles or 1, jit_compile=jit_compile))
    losses: list[float] = []
    bar = tqdm(range(steps), desc="svi", disable=None if progress_bar else True, dynamic_ncols=True)
    for i in bar:
        losses.append(svi.step(x, observations))
        if not bar.disable and (i % 50 == 0 or i == steps - 1):
            bar.set_postfix(loss=f"{losses[-1]:.4g}", refresh=False)
    reason = 'method="svi" given' if method == "svi" else "a morphism module is fitted by SVI"
    return FitResult(model, "svi", {}, observations, x, losses=losses, adaptation={"lr": lr}, seed=seed,
                     choice=Choice("svi", reason))
