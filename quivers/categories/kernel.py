"""Markov kernels: the stochastic morphisms of FinStoch.

A :class:`Kernel` ``A -> B`` is a morphism whose every row is a probability
distribution over ``B``: in ``PROB`` the entries are non-negative and each
row sums to one; in ``LOG`` the entries are log-probabilities and each row
log-sum-exps to zero. A kernel is built from probabilities (checked) or from
logits (softmax of a trainable ``nn.Parameter``, recomputed on every read of
:attr:`Kernel.tensor`, so one kernel serves a whole training loop).

Laws
----
- Kernels are closed under ``>>`` and ``@``, with each other and with
  :class:`~quivers.categories.function.FinFunction` (a function is a
  deterministic kernel); the result is again a :class:`Kernel`.
- Every kernel is total: ``k >> delete(B) == delete(A)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from quivers.categories.finset import FinSet
from quivers.categories.morphism import Morphism, _check_objects, _check_tensor
from quivers.categories.monoid import logsumexp
from quivers.categories.semiring import LOG, PROB, Semiring
from quivers.errors import InvalidValueError, QuiversTypeError

__all__ = ["Kernel", "KERNEL_SEMIRINGS"]

KERNEL_SEMIRINGS: tuple[Semiring, ...] = (PROB, LOG)
"""The semirings a kernel can live in: probabilities and log-probabilities."""


@dataclass(frozen=True, eq=False, init=False, repr=False)
class Kernel(Morphism):
    """A stochastic morphism ``dom -> cod``: each row is a distribution.

    Parameters
    ----------
    dom, cod
        The domain and codomain.
    tensor
        Probabilities (``PROB``) or log-probabilities (``LOG``) of shape
        ``(*batch, |dom|, |cod|)``; each row must sum (or log-sum-exp) to
        one (zero) within ``sqrt(eps)`` of the dtype.
    semiring
        ``PROB`` (default) or ``LOG``.

    Examples
    --------
    >>> A = FinSet("A", 2)
    >>> k = Kernel(A, A, torch.tensor([[0.9, 0.1], [0.2, 0.8]]))
    >>> (k >> k).tensor
    tensor([[0.8300, 0.1700],
            [0.3400, 0.6600]])
    >>> type(k >> k).__name__
    'Kernel'
    >>> Kernel(A, A, torch.tensor([[0.9, 0.2], [0.2, 0.8]]))
    Traceback (most recent call last):
    ...
    quivers.errors.InvalidValueError: row (0,) of kernel `A -> A` sums to 1.1, not 1
    """

    logits: Tensor | None

    def __init__(self, dom: FinSet, cod: FinSet, tensor: Tensor, semiring: Semiring = PROB) -> None:
        _check_kernel_semiring(semiring, dom, cod)
        super().__init__(dom, cod, tensor, semiring)
        totals = _row_totals(self.tensor.detach(), semiring)
        target = 1.0 if semiring == PROB else 0.0
        off = (totals - target).abs() > torch.finfo(self.tensor.dtype).eps ** 0.5
        if bool(off.any()):
            where = tuple(int(i) for i in off.nonzero()[0])
            verb = "sums" if semiring == PROB else "log-sum-exps"
            raise InvalidValueError(
                f"row {where} of kernel `{dom} -> {cod}` {verb} to {totals[where].item():.6g}, "
                f"not {target:g}"
                + (f"; `{cod}` is empty, so no kernel into it exists" if cod.size == 0 else "")
            )

    def _set(
        self, dom: FinSet, cod: FinSet, semiring: Semiring, tensor: Tensor | None,
        logits: Tensor | None = None,
    ) -> None:
        super()._set(dom, cod, semiring, tensor)
        object.__setattr__(self, "logits", logits)

    @classmethod
    def from_logits(
        cls, dom: FinSet, cod: FinSet, logits: Tensor | None = None,
        semiring: Semiring = PROB, dtype: torch.dtype | None = None,
    ) -> Kernel:
        """The kernel ``softmax(logits)`` along ``cod``.

        Parameters
        ----------
        logits
            Unnormalized log-weights of shape ``(*batch, |dom|, |cod|)``;
            ``-inf`` marks an impossible transition. ``None`` makes a new
            trainable ``nn.Parameter`` of zeros (the uniform kernel). A
            tensor given here is used as is, so gradients reach whatever
            produced it.
        semiring
            ``PROB`` reads out ``softmax(logits)``, ``LOG`` reads out
            ``log_softmax(logits)``.

        Examples
        --------
        >>> A, B = FinSet("A", 1), FinSet("B", 2)
        >>> k = Kernel.from_logits(A, B)
        >>> k.tensor
        tensor([[0.5000, 0.5000]], grad_fn=<SoftmaxBackward0>)
        >>> [tuple(p.shape) for p in k.parameters()]
        [(1, 2)]
        """
        _check_objects(cls.__name__, dom, cod, semiring)
        _check_kernel_semiring(semiring, dom, cod)
        if logits is None:
            logits = nn.Parameter(torch.zeros(dom.size, cod.size, dtype=dtype))
        logits = _check_tensor(logits, dom, cod, semiring)
        values = logits.detach()
        bad = torch.isnan(values) | (values == torch.inf)
        dead = (values == -torch.inf).all(-1)
        for mask, what in ((bad, "is NaN or +inf"), (dead, "has no finite logit")):
            if bool(mask.any()):
                where = tuple(int(i) for i in mask.nonzero()[0])
                raise InvalidValueError(
                    f"logits of kernel `{dom} -> {cod}`: entry {where} {what}, so the row is "
                    f"not a distribution"
                )
        out = cls.__new__(cls)
        out._set(dom, cod, semiring, None, logits)
        return out

    @property
    def tensor(self) -> Tensor:
        """The probabilities (or log-probabilities), ``(*batch, |dom|, |cod|)``."""
        if self.logits is None:
            return super().tensor
        if self.semiring == PROB:
            return self.logits.softmax(-1)
        return self.logits.log_softmax(-1)

    @classmethod
    def id(
        cls,
        obj: FinSet,
        semiring: Semiring = PROB,
        dtype: torch.dtype | None = None,
        device: torch.device | None = None,
    ) -> Kernel:
        """The identity kernel on ``obj``.

        Examples
        --------
        >>> Kernel.id(FinSet("A", 2)).tensor
        tensor([[1., 0.],
                [0., 1.]])
        """
        _check_kernel_semiring(semiring, obj, obj)
        return super().id(obj, semiring, dtype, device)  # type: ignore[return-value]

    @property
    def is_stochastic(self) -> bool:
        return True

    def parameters(self) -> tuple[nn.Parameter, ...]:
        """The trainable parameters this kernel reads (its logits, if any)."""
        return (self.logits,) if isinstance(self.logits, nn.Parameter) else ()

    def __repr__(self) -> str:
        if self.logits is None:
            return super().__repr__()
        return f"Kernel.from_logits({self.dom!r}, {self.cod!r}, {self.logits!r}, {self.semiring!r})"


def _check_kernel_semiring(semiring: object, dom: object, cod: object) -> None:
    if semiring not in KERNEL_SEMIRINGS:
        raise QuiversTypeError(
            f"kernel `{dom} -> {cod}`: kernels live in `PROB` or `LOG`, not in `{semiring!r}`; "
            f"use Morphism for weights in other semirings"
        )


def _row_totals(tensor: Tensor, semiring: Semiring) -> Tensor:
    return tensor.sum(-1) if semiring == PROB else logsumexp(tensor, -1)
