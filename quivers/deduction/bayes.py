"""Bayesian PCFGs: a Dirichlet prior over the rule probabilities of each
left-hand side, and its posterior given sentences by stochastic variational
inference.

:class:`PCFGPrior` puts ``Dirichlet(alpha)`` on the probabilities of the
productions of each category of a :class:`~quivers.deduction.Grammar`
(a category with one production keeps probability one). The likelihood of
sentences given a draw is the inside probability, so the joint log density
is ``PCFGPrior.log_prob(theta) + Grammar.log_prob(words, rule_log_weights=
theta.log())``. :class:`PCFGPosterior` is the guide: a Dirichlet per
category with learnable concentrations, fit by maximizing the ELBO with
reparameterized draws (:func:`pcfg_elbo`, :func:`fit_pcfg_posterior`), as
Pyro's SVI fits a guide.

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

from quivers.deduction.grammar import Grammar
from quivers.errors import InvalidValueError

__all__ = ["PCFGPrior", "PCFGPosterior", "pcfg_prior", "pcfg_elbo", "fit_pcfg_posterior"]


def _groups(grammar: Grammar) -> list[Tensor]:
    """The indices of the productions of each category with a choice."""
    by_lhs: dict[int, list[int]] = {}
    for i, lhs in enumerate(grammar._lhs.tolist()):
        by_lhs.setdefault(lhs, []).append(i)
    return [torch.tensor(ix) for ix in by_lhs.values() if len(ix) > 1]


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
        The PCFG whose productions it weighs.
    concentration
        ``alpha``: one positive number for every production, or one per
        production in the grammar's order.

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

    def __init__(self, grammar: Grammar, concentration: float | Sequence[float] = 1.0) -> None:
        if not isinstance(grammar, Grammar) or not grammar.normalize:
            raise InvalidValueError("a PCFG prior is over a normalized Grammar (a PCFG)")
        n = len(grammar.productions)
        alpha = torch.as_tensor(concentration, dtype=torch.float64)
        if alpha.dim() == 0:
            alpha = alpha.expand(n)
        if alpha.shape != (n,) or not bool((alpha > 0).all()) or not bool(torch.isfinite(alpha).all()):
            raise InvalidValueError(f"the concentration of a PCFG prior is a positive number or {n} of them "
                                    f"(one per production), got {concentration!r}")
        self.grammar, self.concentration = grammar, alpha.clone()
        self.groups = _groups(grammar)

    def log_prob(self, theta: Tensor) -> Tensor:
        """The log density of rule probabilities ``theta (..., productions)``."""
        out = theta.new_zeros(theta.shape[:-1])
        for ix in self.groups:
            out = out + Dirichlet(self.concentration[ix].to(theta.dtype)).log_prob(theta[..., ix])
        return out

    def sample(self, sample_shape: torch.Size | tuple[int, ...] = ()) -> Tensor:
        """Rule probabilities drawn from the prior (torch's global generator)."""
        parts = [Dirichlet(self.concentration[ix]).sample(sample_shape) for ix in self.groups]
        return _assemble(len(self.concentration), self.groups, parts, self.concentration)

    def conjugate(self, counts: Tensor) -> Tensor:
        """The posterior concentrations ``alpha + counts`` given observed rule
        counts (a treebank, or sentences with one parse each)."""
        return self.concentration + counts

    def __repr__(self) -> str:
        return f"pcfg_prior({len(self.groups)} Dirichlets over {len(self.concentration)} productions)"


def pcfg_prior(grammar: Grammar, concentration: float | Sequence[float] = 1.0) -> PCFGPrior:
    """A Dirichlet prior over the rule probabilities of each left-hand side
    of ``grammar`` (see :class:`PCFGPrior`).

    Examples
    --------
    >>> from quivers.deduction import Grammar, Production
    >>> pcfg_prior(Grammar([Production("S", ("a",)), Production("S", ("b",))], start="S"), 0.5)
    pcfg_prior(1 Dirichlets over 2 productions)
    """
    return PCFGPrior(grammar, concentration)


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
        alpha = self.concentration()
        parts = [Dirichlet(alpha[ix]).rsample((num,)) for ix in self.groups]
        return _assemble(len(alpha), self.groups, parts, alpha)

    def log_prob(self, theta: Tensor) -> Tensor:
        alpha = self.concentration()
        out = theta.new_zeros(theta.shape[:-1])
        for ix in self.groups:
            out = out + Dirichlet(alpha[ix]).log_prob(theta[..., ix])
        return out

    def mean(self) -> dict[str, float]:
        """The posterior mean of each production's probability."""
        with torch.no_grad():
            alpha = self.concentration()
            mean = torch.ones_like(alpha)
            for ix in self.groups:
                mean[ix] = alpha[ix] / alpha[ix].sum()
        return {str(p): float(m) for p, m in zip(self.prior.grammar.productions, mean)}


def pcfg_elbo(guide: PCFGPosterior, words: Tensor, lengths: Tensor | None = None,
              num_particles: int = 1, counts: Tensor | None = None) -> Tensor:
    """A reparameterized estimate of the ELBO of sentences under the prior
    and grammar of ``guide``: the mean over draws ``theta`` of the guide of
    ``log p(sentences | theta) + log prior(theta) - log q(theta)``; each
    sentence counts ``counts`` times when given (a corpus with repeats)."""
    grammar = guide.prior.grammar
    theta = guide.rsample(num_particles)

    def likelihood(t: Tensor) -> Tensor:
        log_p = grammar.log_prob(words, lengths, rule_log_weights=t.log())
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
    words, lengths = prior.grammar.encode(list(distinct))
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
