"""The MCMC driver: warmup, sampling, draws and their diagnostics.

:class:`MCMC` runs a Hamiltonian kernel for ``num_warmup + num_samples``
iterations on a batch of ``num_chains`` chains, adapting during warmup and
recording the draws (on the unconstrained space; they are constrained by
the model adaptor on request) and per-draw statistics after it.

All randomness comes from one ``torch.Generator`` seeded by ``seed``:
starting points, momenta and uniform draws. The same seed on the same
machine gives bit-identical draws.

Chains run as one batch (``chain_method="vectorized"``, the default: one
potential call per leapfrog step for all chains) or each in its own
process (``chain_method="parallel"``, by ``torch.multiprocessing``: a
chain stops building its tree without waiting for the others, and the
processes use the machine's cores). A parallel run seeds chain ``c`` from
the run's generator, so a seed fixes it too, but its draws differ from a
vectorized run's; both sample the same distribution.

After the run, ArviZ's diagnostics of the draws are checked as Stan
checks them (R-hat, bulk and tail ESS, divergences after warmup, tree
depth, E-BFMI, label switching; see :mod:`quivers.inference.convergence`)
and each problem is issued as a :class:`~quivers.errors.ConvergenceWarning`
and kept in :attr:`MCMC.diagnostics`. The progress bar counts divergences
of warmup and of sampling apart: warmup's are expected while the step size
adapts, and only sampling's are in the draws.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from quivers.capture import frozen_heap
from quivers.errors import InvalidValueError, QuiversError, QuiversTypeError, ShapeError
from quivers.inference.convergence import warn_all
from quivers.inference.mcmc.kernel import HamiltonianKernel

__all__ = ["MCMC"]

_PROGRESS_UPDATES = 100  # postfix refreshes per run: each one syncs the device


def _count(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidValueError(f"`{name}` must be an integer >= {minimum}, got {value!r}")
    return value


class MCMC:
    """Run a Hamiltonian kernel on a batch of chains.

    Parameters
    ----------
    kernel
        A :class:`~quivers.inference.mcmc.nuts.NUTS` or
        :class:`~quivers.inference.mcmc.hmc.HMC` kernel.
    num_warmup
        Adaptation iterations, discarded (Stan's windowed warmup).
    num_samples
        Kept draws per chain.
    num_chains
        Chains, run together as one batch.
    seed
        Seed of the run's generator; ``None`` draws a fresh one.
    progress_bar
        Show a tqdm bar (hidden anyway when stderr is not a terminal).
    chain_method
        ``"vectorized"`` (one batch) or ``"parallel"`` (a process per
        chain, each with ``1/C`` of torch's threads; forked where the
        platform allows it, spawned otherwise, when the kernel and its
        model must be picklable).

    Examples
    --------
    >>> from quivers.inference.mcmc import NUTS
    >>> kernel = NUTS(potential_fn=lambda z: 0.5 * ((z - 3.0) ** 2).sum(-1), dim=1)
    >>> mcmc = MCMC(kernel, num_warmup=200, num_samples=500, num_chains=2, seed=0,
    ...             progress_bar=False)
    >>> mcmc.run()
    >>> z = mcmc.get_samples()["z"]
    >>> z.shape, abs(float(z.mean()) - 3.0) < 0.3
    (torch.Size([1000, 1]), True)
    >>> table = mcmc.summary(print_table=False)
    >>> list(table.columns)
    ['mean', 'sd', 'hdi_3%', 'hdi_97%', 'mcse_mean', 'mcse_sd', 'ess_bulk', 'ess_tail', 'r_hat']
    """

    def __init__(
        self,
        kernel: HamiltonianKernel,
        num_warmup: int = 1000,
        num_samples: int = 1000,
        num_chains: int = 1,
        seed: int | None = None,
        progress_bar: bool = True,
        chain_method: str = "vectorized",
    ) -> None:
        if not isinstance(kernel, HamiltonianKernel):
            raise QuiversTypeError(
                f"`kernel` must be an MCMC kernel such as NUTS or HMC, got {type(kernel).__name__}",
                hint="wrap the model first, e.g. `MCMC(NUTS(model), ...)`",
            )
        self.kernel = kernel
        self.num_warmup = _count("num_warmup", num_warmup, 0)
        self.num_samples = _count("num_samples", num_samples, 1)
        self.num_chains = _count("num_chains", num_chains, 1)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise InvalidValueError(f"`seed` must be an integer or None, got {seed!r}")
        self.seed = seed
        self.progress_bar = progress_bar
        if chain_method not in ("vectorized", "parallel"):
            raise InvalidValueError(
                f"`chain_method` must be 'vectorized' or 'parallel', got {chain_method!r}"
            )
        self.chain_method = chain_method
        self._draws: Tensor | None = None
        self._stats: dict[str, Tensor] = {}
        self._samples: dict[str, Tensor] | None = None
        self.warmup_divergences: Tensor | None = None
        self.diagnostics: list[str] = []

    def run(self, *args: Any, **kwargs: Any) -> None:
        """Warm up and sample; ``args`` and ``kwargs`` are passed to the potential."""
        generator = torch.Generator()
        if self.seed is None:
            generator.seed()
        else:
            generator.manual_seed(self.seed)
        if self.chain_method == "parallel" and self.num_chains > 1:
            draws, stats, warmup_divergences = self._run_parallel(generator, args, kwargs)
        else:
            draws, stats, warmup_divergences = self._run_batch(generator, args, kwargs)
        self._draws, self._stats = draws, stats
        self._samples = None
        self.warmup_divergences = warmup_divergences
        self.diagnostics = self.check_convergence()
        warn_all(self.diagnostics)

    def _run_parallel(
        self, generator: torch.Generator, args: tuple, kwargs: dict
    ) -> tuple[Tensor, dict[str, Tensor], Tensor]:
        """Each chain in its own process; the adapted step sizes and mass
        matrices are gathered onto this kernel, one row per chain."""
        import io
        import pickle

        import torch.multiprocessing as mp
        from tqdm.auto import tqdm

        seeds = torch.randint(2**62, (self.num_chains,), generator=generator).tolist()
        method = "fork" if "fork" in mp.get_all_start_methods() and not torch.cuda.is_initialized() else "spawn"
        ctx = mp.get_context(method)
        queue = ctx.SimpleQueue()
        threads = max(1, torch.get_num_threads() // self.num_chains)
        setting = (self.kernel, self.num_warmup, self.num_samples, threads, args, kwargs, queue)
        procs = [ctx.Process(target=_one_chain, args=(c, seeds[c]) + setting, daemon=True) for c in range(self.num_chains)]
        for proc in procs:
            try:
                proc.start()
            except (AttributeError, TypeError, pickle.PicklingError) as err:  # spawned: the kernel is pickled
                for started in procs:
                    if started.is_alive():
                        started.kill()
                raise QuiversTypeError(
                    f"chain_method='parallel' starts its processes by {method} here, which pickles the kernel "
                    f"and its model, and that failed: {err}",
                    hint="define the potential as a module-level function, or use chain_method='vectorized'",
                ) from None
        results: dict[int, Any] = {}
        with tqdm(total=self.num_chains, desc="chains", disable=None if self.progress_bar else True) as bar:
            while len(results) < self.num_chains:
                c, result = queue.get()
                results[c] = result
                bar.update(1)
                if isinstance(result, BaseException):
                    break
        failed = next((r for r in results.values() if isinstance(r, BaseException)), None)
        for proc in procs:
            if failed is not None:
                proc.kill()  # the run fails: the other chains' work is of no use
            proc.join()
        if failed is not None:
            raise failed
        parts = [torch.load(io.BytesIO(results[c]), weights_only=True) for c in range(self.num_chains)]
        kernel = self.kernel
        kernel.step_size = torch.cat([p["step_size"] for p in parts])
        kernel.inverse_mass_matrix = torch.cat([p["inverse_mass_matrix"] for p in parts])
        kernel._mass_changed()
        draws = torch.cat([p["draws"] for p in parts])
        stats = {name: torch.cat([p["stats"][name] for p in parts]) for name in parts[0]["stats"]}
        return draws, stats, torch.cat([p["warmup_divergences"] for p in parts])

    def _run_batch(
        self, generator: torch.Generator, args: tuple, kwargs: dict
    ) -> tuple[Tensor, dict[str, Tensor], Tensor]:
        """Every chain in one batch, in this process."""
        from tqdm.auto import tqdm

        kernel, num_warmup = self.kernel, self.num_warmup
        total = num_warmup + self.num_samples
        draws: list[Tensor] = []
        stats: dict[str, list[Tensor]] = {name: [] for name in kernel.stat_names}
        refresh = max(1, total // _PROGRESS_UPDATES)
        bar = tqdm(
            total=total,
            desc="warmup" if num_warmup else "sample",
            disable=None if self.progress_bar else True,
            dynamic_ncols=True,
        )
        with torch.no_grad(), bar:
            state = kernel.setup(self.num_chains, num_warmup, generator, args, kwargs)
            accept_sum = torch.zeros_like(state.potential)
            # per chain, [warmup, sampling]: warmup's are no fault of the draws
            divergences = torch.zeros((2,) + state.potential.shape, dtype=torch.long, device=state.potential.device)
            since_refresh = 0
            # the heap as it is after setup (a first compile's objects) is not walked by the loop's collections
            with frozen_heap():
                for i in range(total):
                    state, step_stats = kernel.transition(state)
                    divergences[int(i >= num_warmup)] += step_stats["diverging"]
                    if i < num_warmup:
                        kernel.adapt(i, state, step_stats)
                        if i == num_warmup - 1:
                            kernel.end_warmup()
                            bar.set_description("sample")
                    else:
                        draws.append(state.z)
                        for name in stats:
                            stats[name].append(step_stats[name])
                    if bar.disable:
                        continue
                    accept_sum += step_stats["accept_prob"]
                    since_refresh += 1
                    if since_refresh == refresh or i == total - 1:
                        shown = divergences.sum(1).tolist()
                        bar.set_postfix(
                            step_size=f"{float(kernel.step_size.mean()):.3g}",
                            accept=f"{float(accept_sum.mean()) / since_refresh:.2f}",
                            warmup_divergences=shown[0],
                            divergences=shown[1],
                            refresh=False,
                        )
                        accept_sum.zero_()
                        since_refresh = 0
                    bar.update(1)
        stacked = {name: torch.stack(values, dim=1) for name, values in stats.items()}
        return torch.stack(draws, dim=1), stacked, divergences[0].cpu()

    def check_convergence(self) -> list[str]:
        """The convergence problems of the run, one message each (see
        :func:`~quivers.inference.convergence.mcmc_warnings`); the
        dimensions that index a mixture's components come from the model
        adaptor's ``component_dims``, where it has them."""
        from quivers.inference.convergence import mcmc_warnings

        return mcmc_warnings(
            self.to_inference_data(),
            max_tree_depth=getattr(self.kernel, "max_tree_depth", None),
            component_dims=getattr(self.kernel.adaptor, "component_dims", ()),
        )

    # -- results -------------------------------------------------------------------

    def _require_run(self) -> None:
        if self._draws is None:
            raise QuiversError("no draws yet: call `run` first")

    @property
    def unconstrained_draws(self) -> Tensor:
        """The draws on the unconstrained space, shape ``(num_chains, num_samples, D)``."""
        self._require_run()
        return self._draws

    def _constrained(self) -> dict[str, Tensor]:
        if self._samples is None:
            sites = self.kernel.adaptor.constrain(self._draws)
            lead = self._draws.shape[:2]
            if not isinstance(sites, dict):
                raise QuiversTypeError(
                    f"`constrain` returned {type(sites).__name__}; expected a dict of named sites"
                )
            for name, value in sites.items():
                if not isinstance(value, Tensor) or value.shape[:2] != lead:
                    shape = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
                    raise ShapeError(
                        f"`constrain` gave site `{name}` shape {shape}; expected leading "
                        f"dimensions {tuple(lead)} (chains, draws)"
                    )
            self._samples = sites
        return self._samples

    def get_samples(self, group_by_chain: bool = False) -> dict[str, Tensor]:
        """The draws by site name on the constrained space.

        Shapes are ``(num_chains * num_samples, ...)``, chain after chain, or
        ``(num_chains, num_samples, ...)`` when ``group_by_chain``.
        """
        self._require_run()
        return _layout(self._constrained(), group_by_chain)

    def get_sample_stats(self, group_by_chain: bool = False) -> dict[str, Tensor]:
        """Per-draw statistics (``accept_prob``, ``diverging``, ``energy``,
        ``lp``, ``n_steps``, ``step_size`` and for NUTS ``tree_depth``), laid
        out as :meth:`get_samples`."""
        self._require_run()
        return _layout(self._stats, group_by_chain)

    def to_inference_data(
        self,
        observed_data: dict[str, Any] | None = None,
        log_likelihood: dict[str, Any] | None = None,
    ) -> Any:
        """The run as an ``arviz.InferenceData`` (posterior, sample_stats, and
        the observed data and pointwise log likelihood when given)."""
        from quivers.inference.diagnostics import to_inference_data

        self._require_run()
        return to_inference_data(
            self._constrained(),
            sample_stats=self._stats,
            observed_data=observed_data,
            log_likelihood=log_likelihood,
            dims=getattr(self.kernel.adaptor, "dims", None),
        )

    def summary(self, hdi_prob: float | None = None, print_table: bool = True) -> Any:
        """Print (and return) ArviZ's summary table (mean, sd, HDI, MCSE,
        ESS, R-hat) per site."""
        from quivers.inference.diagnostics import summary

        table = summary(self.to_inference_data(), hdi_prob=hdi_prob)
        if print_table:
            print(table.to_string())
        return table


def _one_chain(
    chain: int,
    seed: int,
    kernel: HamiltonianKernel,
    num_warmup: int,
    num_samples: int,
    threads: int,
    args: tuple,
    kwargs: dict,
    queue: Any,
) -> None:
    """One chain of a parallel run, in its own process: its draws,
    statistics and adapted state, or the error it raised, on ``queue``.
    Tensors travel serialized, by value: shared memory would vanish with
    the process, which may end before the parent reads them."""
    import io

    torch.set_num_threads(threads)
    try:
        run = MCMC(kernel, num_warmup, num_samples, num_chains=1, seed=seed, progress_bar=False)
        generator = torch.Generator().manual_seed(seed)
        draws, stats, warmup_divergences = run._run_batch(generator, args, kwargs)
        buffer = io.BytesIO()
        torch.save({
            "draws": draws,
            "stats": stats,
            "warmup_divergences": warmup_divergences,
            "step_size": kernel.step_size,
            "inverse_mass_matrix": kernel.inverse_mass_matrix,
        }, buffer)
        result: Any = buffer.getvalue()
    except BaseException as err:  # noqa: BLE001 - handed to the parent, which raises it
        result = err
    queue.put((chain, result))


def _layout(values: dict[str, Tensor], group_by_chain: bool) -> dict[str, Tensor]:
    if group_by_chain:
        return dict(values)
    return {name: v.reshape((-1,) + tuple(v.shape[2:])) for name, v in values.items()}
