"""MCMC on programs: the adaptor between a program and an HMC/NUTS kernel.

The kernel samples the unconstrained coordinates of the program's sampled
continuous latents (the :class:`~quivers.inference.layout.Layout`); the
potential is ``-(log_joint + log|J|)``, where ``log_joint`` is the program's
exact density with every ``marginalize`` block summed out, so discrete
latents are marginalized exactly inside the potential. Registering the
conversion with :func:`as_model_adaptor` lets users write ``NUTS(model)``.

Examples
--------
>>> import torch
>>> from quivers.categories.finset import FinSet
>>> from quivers.distributions import Normal
>>> from quivers.programs import Program, sample, observe, var
>>> I = FinSet("I", 2)
>>> prog = Program("p", I, I, [sample("mu", None, Normal(0.0, 1.0)),
...                            observe("y", I, Normal(var("mu"), 1.0))])
>>> adaptor = ProgramAdaptor(prog)
>>> adaptor.potential(torch.zeros(3, 1), None, {"y": torch.tensor([0.0, 0.0])}).shape
torch.Size([3])
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import Tensor

from quivers.errors import InvalidValueError, QuiversTypeError, ShapeError
from quivers.inference.devices import DataOnDevice, as_device, device_of
from quivers.inference.layout import Layout
from quivers.inference.mcmc.adaptor import as_model_adaptor
from quivers.programs import Program
from quivers.programs.data import check_one_data_set

__all__ = ["ProgramAdaptor", "component_dims"]


def component_dims(program: Program) -> tuple[str, ...]:
    """The FinSets that the discrete latents of ``program`` take values in
    (marginalized or sampled; index maps excluded): a mixture's components.

    Examples
    --------
    >>> from quivers.categories.finset import FinSet
    >>> from quivers.distributions import Categorical, HalfNormal, Normal
    >>> from quivers.programs import Program, marginalize, observe, sample, var
    >>> Item, K = FinSet("Item", 3), FinSet("K", 2)
    >>> p = Program("m", Item, Item, [sample("w", K, HalfNormal(1.0)),
    ...     marginalize("z", K, Categorical(var("w")), [observe("y", Item, Normal(var("z") * 1.0, 1.0))])])
    >>> component_dims(p)
    ('K',)
    """
    return tuple(dict.fromkeys(
        s.values_in for s in program.sites.values()
        if s.kind in ("marginal", "latent") and s.discrete and s.values_in is not None
    ))


def _discrete_error(program: Program, discrete: list[str]) -> QuiversTypeError:
    """Discrete latents left to sampling: a planned program says why each
    was not summed; a program as written is pointed at ``marginalize=auto``."""
    from quivers.planning import PlannedProgram

    if isinstance(program, PlannedProgram):
        why = program.plan().sampled
        reasons = "; ".join(f"`{n}`: {why[n]}" for n in discrete if n in why)
        return QuiversTypeError(
            f"HMC and NUTS need continuous latents, but {discrete} of `{program.name}` are discrete and not "
            f"summed by its plan ({reasons})",
            hint='Gibbs steps sample them within NUTS (`fit(..., discrete="gibbs")`, `DiscreteHMCGibbs`); '
            "or fit with SVI, whose score-function or relaxed estimators sample them",
        )
    return QuiversTypeError(
        f"HMC and NUTS need continuous latents, but {discrete} of `{program.name}` are discrete",
        hint="sum them exactly with [marginalize=auto] (quivers.planning.auto) or a marginalize block, "
        'sample them by Gibbs steps within NUTS (`fit(..., discrete="gibbs")`), or fit with SVI',
    )


class ProgramAdaptor:
    """A program seen by an MCMC kernel.

    Parameters
    ----------
    program
        The program.
    observed_names
        Sample sites that will be given in the observations (conditioned on)
        and so are not sampled.
    device, dtype
        Where the chains run (by default, where the program's parameters
        or buffers are or, for a program without any, where the data of
        the run is; in the default dtype). Data given on another device is
        moved to the chains' once.
    init
        Where the chains start: constrained values of the sampled latents
        with a leading chain axis (``{"mu_k": tensor of shape (C, K)}``), or
        unconstrained points ``(C, D)``; by default Stan's uniform draws
        in ``[-2, 2]`` on the unconstrained space.
    """

    def __init__(
        self,
        program: Program,
        observed_names: Iterable[str] = (),
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        init: Mapping[str, Any] | Tensor | None = None,
    ) -> None:
        sites = self._continuous(program, program.latent_sites(observed_names))
        self.program = program
        self.layout = Layout(sites, program.parameters_of)
        device = device_of(program) if device is None else as_device(device)
        self._placed = device is not None
        self.device = torch.device(device if device is not None else "cpu")
        self._data = DataOnDevice()
        self.dtype = dtype or torch.get_default_dtype()
        self.init = self._initial_points(init)

    def _continuous(self, program: Program, sites: list) -> list:
        """The latents the kernel moves: all of them, none discrete."""
        discrete = [s.name for s in sites if s.discrete]
        if discrete:
            raise _discrete_error(program, discrete)
        return sites

    def _unpack(self, z: Tensor) -> tuple[dict[str, Tensor], Tensor]:
        """The values the program reads at ``z``, and ``log|J|``."""
        return self.layout.unpack(z)

    def _initial_points(self, init: Mapping[str, Any] | Tensor | None) -> Tensor | None:
        if init is None:
            return None
        if isinstance(init, Mapping):
            missing = [n for n in self.layout.names if n not in init]
            if missing:
                raise QuiversTypeError(
                    f"`init` gives no starting values of {missing}", hint="give every sampled latent, or none"
                )
            init = self.layout.pack({n: torch.as_tensor(init[n], dtype=self.dtype) for n in self.layout.names})
        init = torch.as_tensor(init, dtype=self.dtype)
        if init.dim() != 2 or init.shape[1] != self.layout.dim:
            raise ShapeError(
                f"`init` has shape {tuple(init.shape)} on the unconstrained space; expected "
                f"(chains, {self.layout.dim})"
            )
        if not bool(torch.isfinite(init).all()):
            raise InvalidValueError("`init` lies outside the support of some latent (a non-finite coordinate)")
        return init.to(self.device)

    @property
    def dims(self) -> dict[str, tuple[str, ...]]:
        """The FinSet axes of each sampled latent (ArviZ's ``dims``)."""
        return {n: self.program.sites[n].dims for n in self.layout.names}

    @property
    def component_dims(self) -> tuple[str, ...]:
        """The FinSets that discrete latents take values in: the components
        of a mixture, whose labels chains can disagree on."""
        return component_dims(self.program)

    def bind(self, x: Any = None, observations: Mapping[str, Any] | None = None) -> None:
        """Called by a kernel with the run's data before the chains start: a
        program that nothing placed runs its chains where the data is."""
        if self._placed:
            return
        first = next((v for v in (observations or {}).values() if isinstance(v, Tensor)), None)
        if first is None and isinstance(x, Tensor):
            first = x
        if first is not None:
            self.device = first.device

    def init_unconstrained(self, num_chains: int, generator: torch.Generator) -> Tensor:
        """``init`` when given, else Stan's default: uniform in ``[-2, 2]``
        on the unconstrained space."""
        if self.init is not None:
            if self.init.shape[0] != num_chains:
                raise ShapeError(f"`init` holds {self.init.shape[0]} chains; the run has {num_chains}")
            return self.init.clone()
        u = torch.rand(num_chains, self.layout.dim, generator=generator, dtype=torch.float64)
        return (4.0 * u - 2.0).to(device=self.device, dtype=self.dtype)

    def potential(self, z: Tensor, x: Any = None, observations: Mapping[str, Any] | None = None) -> Tensor:
        """``-(log_joint + log|J|)`` for each row of ``z``."""
        observations = self._checked(observations)
        values, logdet = self._unpack(z)
        return -(self.program.planned_log_joint(x, observations)(values) + logdet)

    def _checked(self, observations: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
        """The observations of a run, checked and on the chains' device."""
        clash = [n for n in self.layout.names if observations and n in observations]
        if clash:
            raise QuiversTypeError(
                f"{clash} are sampled by the kernel but also given in the observations",
                hint=f"pass observed_names={clash} to condition on them: NUTS(ProgramAdaptor(model, observed_names=...))",
            )
        check_one_data_set(observations, self.program.sites, "the chains of MCMC")
        return self._data(observations, self.device)

    def potential_for(self, x: Any = None, observations: Mapping[str, Any] | None = None) -> Callable[[Tensor], Tensor]:
        """The potential on one data set as a function of ``z`` alone, its
        checks made once: the observations checked against the sampled
        latents and for a single data set, and moved to the chains' device,
        here rather than at every leapfrog step (a kernel calls this once
        per run), and the log joint evaluated through a plan made for this
        data (:meth:`~quivers.programs.Program.compile_log_joint`: the data
        validated and bound at the first call, only the latents bound at
        the others).

        Examples
        --------
        >>> import torch
        >>> from quivers.categories.finset import FinSet
        >>> from quivers.distributions import Normal
        >>> from quivers.programs import Program, sample
        >>> one = FinSet("One", 1)
        >>> potential = ProgramAdaptor(Program("p", one, one, [sample("mu", None, Normal(0.0, 1.0))])).potential_for()
        >>> potential(torch.zeros(2, 1))  # -log N(0 | 0, 1), for each of two chains
        tensor([0.9189, 0.9189])
        """
        observations = self._checked(observations)
        # this run's own plan (the program's shared one would be rebound
        # whenever another engine evaluates the program on other data)
        unpack, log_joint = self._unpack, self.program.compile_log_joint(observations, x)

        def potential(z: Tensor) -> Tensor:
            values, logdet = unpack(z)
            return -(log_joint(values) + logdet)

        return potential

    def prior_draws(
        self,
        num_samples: int,
        generator: torch.Generator,
        x: Any = None,
        observations: Mapping[str, Any] | None = None,
    ) -> Tensor:
        """``num_samples`` draws of the sampled latents from the prior, on
        the unconstrained space ``(num_samples, D)`` (what
        :class:`~quivers.inference.mcmc.init.init_to_median` reads). The
        given observations are kept (data, index maps and latents
        conditioned on); ``generator`` seeds the draws."""
        seed = int(torch.randint(2**62, (1,), generator=generator))
        cuda = [self.device.index or 0] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda, device_type="cuda"):
            torch.manual_seed(seed)
            draws = self.program.sample(x, (num_samples,), observations=self._data(observations, self.device))
        values = {n: draws[n].to(self.dtype) for n in self.layout.names}
        return self.layout.pack(values).to(device=self.device, dtype=self.dtype)

    def explain(self, z: Tensor, x: Any = None, observations: Mapping[str, Any] | None = None) -> Exception | None:
        """Why the potential's gradient is not finite at the point ``z``
        (one row): a :class:`~quivers.errors.GradientError` naming the
        latent and the step, or None when the program's terms do not say."""
        values, _ = self.layout.unpack(z.detach())
        observations = self._data(observations, self.device)
        return self.program.gradient_error(x, observations, values, " at the initial point of a chain")

    def constrain(self, z: Tensor) -> dict[str, Tensor]:
        return self.layout.constrain(z)


@as_model_adaptor.register(Program)
def _program_adaptor(model: Program) -> ProgramAdaptor:
    return ProgramAdaptor(model)
