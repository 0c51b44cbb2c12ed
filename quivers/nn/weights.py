"""Free real-valued matrices: the learnable morphisms of the ``real`` algebra.

In the ring of reals a morphism ``A -> B`` is any ``|A| x |B|`` matrix:
composition is the matrix product and ``dagger`` the transpose, so a chain
of them is a linear network (``X >> W_1 >> W_2``) and ``U.dagger >> V`` is
the bilinear score ``U^T V`` of matrix factorization. :class:`Weights` is
such a matrix with free entries, drawn ``scale * N(0, 1)`` at first. It has
no reading in the other algebras (its entries are not probabilities, truth
values or costs): evaluating it there is an error that says so.

Examples
--------
>>> import torch
>>> from quivers.categories import REAL, FinSet
>>> from quivers.nn import dagger
>>> K, U, M = FinSet("K", 2), FinSet("U", 3), FinSet("M", 4)
>>> u, v = weights(K, U), weights(K, M)
>>> score = (dagger(u) >> v).as_morphism(REAL).tensor
>>> torch.allclose(score, u.weight.T @ v.weight)
True
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from quivers.categories import REAL, FinSet, Morphism
from quivers.errors import QuiversTypeError, UnsupportedError
from quivers.nn.arrows import Evaluation, MorphismModule

__all__ = ["Weights", "weights"]


class Weights(MorphismModule):
    """A learnable matrix ``dom -> cod`` over the reals.

    Parameters
    ----------
    dom, cod
        Finite sets.
    scale
        The entries start as ``scale * N(0, 1)`` draws.
    name
        How it is shown (its QVR name).
    prior
        ``(loc, scale)``: each entry ``Normal(loc, scale)`` a priori, which
        :meth:`log_prior` adds up (a MAP fit's penalty).

    Examples
    --------
    >>> from quivers.categories import LOG, FinSet
    >>> weights(FinSet("A", 2), FinSet("B", 2), name="W").as_morphism(LOG)
    Traceback (most recent call last):
    ...
    quivers.errors.QuiversTypeError: `W` is a real-valued matrix, a morphism of the `real` algebra; it has no reading in LOG
    """

    def __init__(
        self, dom: FinSet, cod: FinSet, scale: float = 1.0, name: str | None = None,
        prior: tuple[float, float] | None = None,
    ) -> None:
        super().__init__(dom, cod)
        self.scale, self.name = float(scale), name
        if prior is not None and not float(prior[1]) > 0:
            raise QuiversTypeError(f"the Normal prior on the entries of `{dom} -> {cod}` needs a positive scale")
        self.prior = None if prior is None else (float(prior[0]), float(prior[1]))
        self.weight = nn.Parameter(torch.empty(dom.size, cod.size))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Draw the entries afresh: ``scale * N(0, 1)``."""
        with torch.no_grad():
            self.weight.normal_().mul_(self.scale)

    @property
    def is_stochastic(self) -> bool:
        return False

    @property
    def has_prior(self) -> bool:
        return self.prior is not None

    def own_log_prior(self) -> Tensor:
        """``sum of log Normal(entry | loc, scale)`` over the entries, or 0
        without a prior."""
        if self.prior is None:
            return self.weight.new_zeros(())
        return torch.distributions.Normal(*self.prior).log_prob(self.weight).sum()

    def evaluate(self, ev: Evaluation) -> Morphism:
        if ev.semiring != REAL:
            raise QuiversTypeError(
                f"`{self.name or repr(self)}` is a real-valued matrix, a morphism of the `real` algebra; "
                f"it has no reading in {ev.semiring!r}"
            )
        return Morphism._trusted(self.dom, self.cod, self.weight.to(ev.device, ev.dtype), REAL)

    def sample(self, x: Tensor) -> Tensor:
        raise UnsupportedError(f"`{self!r}` is a real-valued matrix, not a kernel: it has no draws")

    def __repr__(self) -> str:
        name = f", name={self.name!r}" if self.name else ""
        return f"weights({self.dom.name}, {self.cod.name}{name})"


def weights(
    dom: FinSet, cod: FinSet, scale: float = 1.0, name: str | None = None, prior: tuple[float, float] | None = None,
) -> Weights:
    """A learnable real-valued matrix (see :class:`Weights`).

    Examples
    --------
    >>> from quivers.categories import FinSet
    >>> weights(FinSet("A", 2), FinSet("B", 3)).weight.shape
    torch.Size([2, 3])
    """
    return Weights(dom, cod, scale, name, prior)
