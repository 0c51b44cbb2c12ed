"""Bayesian PCFGs: a Dirichlet prior over the rule probabilities of each
left-hand side, and its posterior given sentences by stochastic variational
inference.

:class:`PCFGPrior` puts ``Dirichlet(alpha)`` on the probabilities of the
productions of each category of a :class:`~quivers.deduction.Grammar`
(a category with one production keeps probability one), or of a
:class:`~quivers.deduction.Deduction` in ``LOG`` (a QVR ``deduction``
block) whose learnable rules each conclude one category: there a
production is a learnable rule or lexicon entry, its category the one it
concludes, and the rules and entries that are not learnable weigh one. The likelihood of
sentences given a draw is the inside probability, so the joint log density
is ``PCFGPrior.log_prob(theta) + Grammar.log_prob(words, rule_log_weights=
theta.log())``. :class:`PCFGPosterior` is the guide: a Dirichlet per
category with learnable concentrations, fit by maximizing the ELBO with
reparameterized draws (:func:`pcfg_elbo`, :func:`fit_pcfg_posterior`), as
Pyro's SVI fits a guide. In QVR a program draws the rule probabilities with
``sample g <- pcfg_prior(D, alpha)`` and scores ``observe s <- D`` under
the draw; :meth:`PCFGPosterior.distribution` is then the guide of ``g``.

Laws
----
- Where each sentence has one parse, the exact posterior is conjugate:
  ``Dirichlet(alpha + counts)`` with ``counts`` the rule counts of the
  parses (:meth:`PCFGPrior.conjugate`); the ELBO is maximal there.

Examples
--------
>>> import torch
>>> from quivers.deduction import Grammar, Production
>>> g = Grammar([Production("S", ("S", "S")), Production("S", ("a",))], start="S")
>>> prior = pcfg_prior(g, 2.0)
>>> prior.log_prob(torch.tensor([0.5, 0.5], dtype=torch.float64))   # Beta(2, 2) at 1/2
tensor(0.4055, dtype=torch.float64)
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.distributions import Dirichlet

from quivers.categories.semiring import LOG
from quivers.deduction.agenda import Var, show
from quivers.deduction.grammar import Grammar
from quivers.deduction.system import Deduction
from quivers.errors import InvalidValueError

__all__ = ["PCFGPrior", "PCFGPosterior", "pcfg_prior", "pcfg_elbo", "fit_pcfg_posterior"]


def _groups(lhs: Sequence[object]) -> list[Tensor]:
    """The indices of the productions of each category with a choice."""
    by_lhs: dict[object, list[int]] = {}
    for i, category in enumerate(lhs):
        by_lhs.setdefault(category, []).append(i)
    return [torch.tensor(ix) for ix in by_lhs.values() if len(ix) > 1]


def _productions(model: Grammar | Deduction) -> tuple[list[object], list[str]]:
    """The category each production concludes and its name, in the order of
    the rule probabilities."""
    if isinstance(model, Grammar):
        if not model.normalize:
            raise InvalidValueError("a PCFG prior is over a normalized Grammar (a PCFG)")
        return model._lhs.tolist(), [str(p) for p in model.productions]
    if not isinstance(model, Deduction):
        raise InvalidValueError(f"a PCFG prior is over a Grammar or a Deduction, got {type(model).__name__}")
    if model.semiring is not LOG:
        raise InvalidValueError(f"a PCFG prior is over probabilities: deduction `{model.name}` weighs in "
                                f"`{model.semiring}`, not `LOG` (`semiring=LogProb`)")
    if model.capped:
        raise InvalidValueError(
            f"a PCFG prior sets the rule probabilities of deduction `{model.name}`, but rule "
            f"`{model.capped[0]}` is `#[bounded]`, whose weight is capped below one instead",
            hint="drop `bounded` from the rules a PCFG prior weighs",
        )
    lhs: list[object] = []
    names: list[str] = []
    for rule in model.rules:
        if rule.name not in model.learnable:
            continue
        head = rule.conclusion
        category = head[3] if isinstance(head, tuple) and head[0] == "span" and len(head) >= 4 else None
        if category is None or _has_variables(category):
            raise InvalidValueError(
                f"a PCFG prior groups the rules of deduction `{model.name}` by the category they "
                f"conclude, but rule `{rule.name}` concludes `{show(head)}`, not one category"
            )
        lhs.append(category)
        names.append(rule.name)
    for entry in model.lexicon:
        if entry.learnable:
            lhs.append(entry.category)
            names.append(f'"{entry.word}" : {show(entry.category)}')
    if not lhs:
        raise InvalidValueError(f"deduction `{model.name}` has no learnable rule or entry to put a prior on")
    return lhs, names


def _has_variables(term: object) -> bool:
    """Whether a term has a variable."""
    if isinstance(term, Var):
        return True
    return isinstance(term, tuple) and any(_has_variables(a) for a in term[1:])


def _deduction_weights(model: Deduction, theta: Tensor) -> dict[str, Tensor]:
    """The parameters of ``model`` that make its learnable weights the logs
    of rule probabilities ``theta`` (rules first, then entries)."""
    log_theta = theta.log()
    out = {f"rule_logits.{r}": log_theta[k] for k, r in enumerate(model.learnable)}
    learns = [i for i, e in enumerate(model.lexicon) if e.learnable]
    entries = model.entry_logits.detach().new_zeros(len(model.lexicon)).to(theta.dtype)
    if learns:
        entries = entries.index_copy(0, torch.tensor(learns), log_theta[len(model.learnable):])
    out["entry_logits"] = entries
    return out


def _assemble(n: int, groups: list[Tensor], parts: list[Tensor], like: Tensor) -> Tensor:
    """Rule probabilities ``(..., n)`` from each group's draw; one elsewhere."""
    shape = parts[0].shape[:-1] if parts else ()
    out = like.new_ones((*shape, n))
    for ix, part in zip(groups, parts):
        out = out.index_copy(-1, ix, part)
    return out


class PCFGPrior:
    """``Dirichlet(alpha)`` over the rule probabilities of each left-hand side.

    Parameters
    ----------
    grammar
        The PCFG whose productions it weighs: a normalized
        :class:`~quivers.deduction.Grammar`, or a
        :class:`~quivers.deduction.Deduction` in ``LOG`` whose productions
        are its learnable rules (in order), then its learnable entries.
    concentration
        ``alpha``: one positive number for every production, or one per
        production in that order.

    Examples
    --------
    >>> from quivers.deduction import Grammar, Production
    >>> g = Grammar([Production("S", ("A", "A")), Production("A", ("a",)), Production("A", ("b",))],
    ...             start="S")
    >>> _ = torch.manual_seed(0)
    >>> theta = pcfg_prior(g).sample()
    >>> theta[0].item(), round(theta[1:].sum().item(), 12)    # S has one production
    (1.0, 1.0)
    """

    def __init__(self, grammar: Grammar | Deduction, concentration: float | Sequence[float] = 1.0) -> None:
        lhs, self.names = _productions(grammar)
        n = len(lhs)
        alpha = torch.as_tensor(concentration, dtype=torch.float64)
        if alpha.dim() == 0:
            alpha = alpha.expand(n)
        if alpha.shape != (n,) or not bool((alpha > 0).all()) or not bool(torch.isfinite(alpha).all()):
            raise InvalidValueError(f"the concentration of a PCFG prior is a positive number or {n} of them "
                                    f"(one per production), got {concentration!r}")
        self.grammar, self.concentration = grammar, alpha.clone()
        self.groups = _groups(lhs)

    def log_likelihood(self, theta: Tensor, sentences, lengths: Tensor | None = None) -> Tensor:
        """The log probability of each sentence given rule probabilities
        ``theta``: for a grammar, ``sentences`` are its encoded words (and
        ``lengths``); for a deduction, sequences of words."""
        if isinstance(self.grammar, Grammar):
            return self.grammar.log_prob(sentences, lengths, rule_log_weights=theta.log())
        weights = _deduction_weights(self.grammar, theta)
        return torch.func.functional_call(self.grammar, weights, (list(sentences),))

    def log_prob(self, theta: Tensor) -> Tensor:
        """The log density of rule probabilities ``theta (..., productions)``."""
        out = theta.new_zeros(theta.shape[:-1])
        for ix in self.groups:
            out = out + Dirichlet(self.concentration[ix].to(theta.dtype)).log_prob(theta[..., ix])
        return out

    has_rsample = True
    """Its draws are reparameterized (each Dirichlet's are), as a torch
    distribution says: a program that samples from it (``sample g <-
    pcfg_prior(G, alpha)``) draws with :meth:`rsample`."""

    def sample(self, sample_shape: torch.Size | tuple[int, ...] = ()) -> Tensor:
        """Rule probabilities drawn from the prior (torch's global generator)."""
        parts = [Dirichlet(self.concentration[ix]).sample(sample_shape) for ix in self.groups]
        return _assemble(len(self.concentration), self.groups, parts, self.concentration)

    def rsample(self, sample_shape: torch.Size | tuple[int, ...] = ()) -> Tensor:
        """A reparameterized draw (the same law as :meth:`sample`)."""
        return _Dirichlets(self.concentration, self.groups).rsample(sample_shape)

    def conjugate(self, counts: Tensor) -> Tensor:
        """The posterior concentrations ``alpha + counts`` given observed rule
        counts (a treebank, or sentences with one parse each)."""
        return self.concentration + counts

    def __repr__(self) -> str:
        return f"pcfg_prior({len(self.groups)} Dirichlets over {len(self.concentration)} productions)"


def pcfg_prior(grammar: Grammar | Deduction, concentration: float | Sequence[float] = 1.0) -> PCFGPrior:
    """A Dirichlet prior over the rule probabilities of each left-hand side
    of ``grammar`` (see :class:`PCFGPrior`).

    Examples
    --------
    >>> from quivers.deduction import Grammar, Production
    >>> pcfg_prior(Grammar([Production("S", ("a",)), Production("S", ("b",))], start="S"), 0.5)
    pcfg_prior(1 Dirichlets over 2 productions)
    """
    return PCFGPrior(grammar, concentration)


class _Dirichlets:
    """Independent Dirichlets over groups of the coordinates of one vector
    (the others one): the law of the rule probabilities a guide draws."""

    has_rsample = True

    def __init__(self, concentration: Tensor, groups: list[Tensor]) -> None:
        self.concentration, self.groups = concentration, groups

    def rsample(self, sample_shape: torch.Size | tuple[int, ...] = ()) -> Tensor:
        alpha = self.concentration
        parts = [Dirichlet(alpha[ix]).rsample(sample_shape) for ix in self.groups]
        return _assemble(len(alpha), self.groups, parts, alpha)

    def sample(self, sample_shape: torch.Size | tuple[int, ...] = ()) -> Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape)

    def log_prob(self, theta: Tensor) -> Tensor:
        out = theta.new_zeros(theta.shape[:-1])
        for ix in self.groups:
            out = out + Dirichlet(self.concentration[ix].to(theta.dtype)).log_prob(theta[..., ix])
        return out


class PCFGPosterior(nn.Module):
    """The guide: a Dirichlet per left-hand side with learnable
    concentrations (their logs are the parameters, starting at the prior's).

    Examples
    --------
    >>> from quivers.deduction import Grammar, Production
    >>> g = Grammar([Production("S", ("a",)), Production("S", ("b",))], start="S")
    >>> q = PCFGPosterior(pcfg_prior(g, 3.0))
    >>> q.concentration().detach().round(decimals=9)
    tensor([3., 3.], dtype=torch.float64)
    >>> q.mean()
    {'S -> "a"': 0.5, 'S -> "b"': 0.5}
    """

    def __init__(self, prior: PCFGPrior) -> None:
        super().__init__()
        self.prior, self.groups = prior, prior.groups
        self.log_concentration = nn.Parameter(prior.concentration.log().clone())

    def concentration(self) -> Tensor:
        return self.log_concentration.exp()

    def rsample(self, num: int = 1) -> Tensor:
        """``num`` reparameterized draws of rule probabilities, ``(num, productions)``."""
        return self.distribution().rsample((num,))

    def log_prob(self, theta: Tensor) -> Tensor:
        return self.distribution().log_prob(theta)

    def distribution(self, x: object = None) -> _Dirichlets:
        """Its law, as a guide kernel gives one at a program's input (which
        it does not read): ``SVI(program, {"g": guide}, ...)`` fits the
        posterior of the draw ``sample g <- pcfg_prior(G, alpha)``.

        Examples
        --------
        >>> from quivers.deduction import Grammar, Production
        >>> g = Grammar([Production("S", ("a",)), Production("S", ("b",))], start="S")
        >>> q = PCFGPosterior(pcfg_prior(g, 3.0))
        >>> q.distribution().rsample().shape
        torch.Size([2])
        """
        return _Dirichlets(self.concentration(), self.groups)

    def mean(self) -> dict[str, float]:
        """The posterior mean of each production's probability."""
        with torch.no_grad():
            alpha = self.concentration()
            mean = torch.ones_like(alpha)
            for ix in self.groups:
                mean[ix] = alpha[ix] / alpha[ix].sum()
        return {name: float(m) for name, m in zip(self.prior.names, mean)}


def pcfg_elbo(guide: PCFGPosterior, words, lengths: Tensor | None = None,
              num_particles: int = 1, counts: Tensor | None = None) -> Tensor:
    """A reparameterized estimate of the ELBO of sentences under the prior
    and grammar of ``guide``: the mean over draws ``theta`` of the guide of
    ``log p(sentences | theta) + log prior(theta) - log q(theta)``; each
    sentence counts ``counts`` times when given (a corpus with repeats).
    ``words`` are encoded (with ``lengths``) for a grammar, sequences of
    words for a deduction."""
    theta = guide.rsample(num_particles)

    def likelihood(t: Tensor) -> Tensor:
        log_p = guide.prior.log_likelihood(t, words, lengths)
        return log_p.sum() if counts is None else (log_p * counts).sum()

    terms = [
        likelihood(t) + guide.prior.log_prob(t)
        - guide.log_prob(t)
        for t in theta
    ]
    return torch.stack(terms).mean()


def fit_pcfg_posterior(prior: PCFGPrior, sentences: Sequence[Sequence[str]], *, steps: int = 200,
                       lr: float = 0.2, num_particles: int = 2) -> tuple[PCFGPosterior, list[float]]:
    """SVI: Adam steps on ``-ELBO`` from a :class:`PCFGPosterior` that
    starts at the prior; the fitted guide and the losses (per sentence).
    Draws use torch's global generator: seed it for a reproducible fit."""
    # each distinct sentence is parsed once and counted as often as it occurs
    distinct = Counter(tuple(s) for s in sentences)
    if isinstance(prior.grammar, Grammar):
        words, lengths = prior.grammar.encode(list(distinct))
    else:
        words, lengths = list(distinct), None
    counts = torch.tensor(list(distinct.values()), dtype=torch.float64)
    guide = PCFGPosterior(prior)
    optim = torch.optim.Adam(guide.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        optim.zero_grad()
        loss = -pcfg_elbo(guide, words, lengths, num_particles, counts) / len(sentences)
        loss.backward()
        optim.step()
        losses.append(loss.item())
        if not math.isfinite(losses[-1]):
            raise InvalidValueError("the ELBO of the PCFG posterior is not finite; lower `lr`")
    return guide, losses
