"""Finite sets, semirings, morphisms, kernels and Kan extensions: the pure
tensor algebra every other layer of quivers is written in.

- :mod:`~quivers.categories.finset`: :class:`FinSet`, with products and
  coproducts;
- :mod:`~quivers.categories.monoid`: :class:`Monoid`, the halves of a
  semiring, and a ``logsumexp`` with safe gradients;
- :mod:`~quivers.categories.semiring`: :class:`Semiring` values ``PROB``,
  ``LOG``, ``BOOL``, ``MAX_PLUS``, ``MIN_PLUS``, ``MAX_TIMES``,
  ``LUKASIEWICZ``, ``GODEL``, ``PRODUCT_FUZZY``, ``REAL``;
- :mod:`~quivers.categories.morphism`: :class:`Arrow` (``>>``, ``@``) and
  :class:`Morphism`, a matrix over a semiring;
- :mod:`~quivers.categories.kernel`: :class:`Kernel`, stochastic morphisms;
- :mod:`~quivers.categories.function`: :class:`FinFunction` and the Markov
  structure maps ``copy``, ``delete``, ``swap``, ``projections``;
- :mod:`~quivers.categories.kan`: ``left_kan`` and ``right_kan`` along a
  function, i.e. grouped marginalization;
- :mod:`~quivers.categories.base_change`: semiring homomorphisms as
  functors;
- :mod:`~quivers.categories.markov`: Markov chains as composites of
  kernels: associative scans in a semiring, the forward algorithm,
  forward-backward, Viterbi and FFBS.

Examples
--------
>>> import torch
>>> from quivers.categories import FinSet, Kernel, copy, delete, identity
>>> A = FinSet("A", 2)
>>> k = Kernel(A, A, torch.tensor([[0.9, 0.1], [0.5, 0.5]]))
>>> (copy(A) >> (delete(A) @ k)).tensor
tensor([[0.9000, 0.1000],
        [0.5000, 0.5000]])
"""

from quivers.categories.base_change import (
    BOOL_TO_GODEL,
    BOOL_TO_LUKASIEWICZ,
    BOOL_TO_MAX_PLUS,
    BOOL_TO_MAX_TIMES,
    BOOL_TO_MIN_PLUS,
    GODEL_TO_BOOL,
    HOMOMORPHISMS,
    LOG_TO_BOOL,
    LOG_TO_PROB,
    MAX_PLUS_TO_BOOL,
    MAX_PLUS_TO_MAX_TIMES,
    MAX_PLUS_TO_MIN_PLUS,
    MAX_TIMES_TO_BOOL,
    MAX_TIMES_TO_MAX_PLUS,
    MIN_PLUS_TO_BOOL,
    MIN_PLUS_TO_MAX_PLUS,
    PROB_TO_BOOL,
    PROB_TO_LOG,
    SemiringHom,
    base_change,
)
from quivers.categories.finset import FinSet
from quivers.categories.function import (
    FinFunction,
    copy,
    delete,
    identity,
    injections,
    projections,
    swap,
)
from quivers.categories.kan import fibre_prod, fibre_sum, left_kan, pullback, right_kan
from quivers.categories.kernel import KERNEL_SEMIRINGS, Kernel
from quivers.categories.markov import associative_scan, semiring_product, semiring_scan
from quivers.categories.morphism import Arrow, Morphism, then
from quivers.categories.monoid import Monoid, logsumexp
from quivers.categories.semiring import (
    BOOL,
    GODEL,
    LOG,
    LUKASIEWICZ,
    MAX_PLUS,
    MAX_TIMES,
    MIN_PLUS,
    PROB,
    PRODUCT_FUZZY,
    REAL,
    SEMIRINGS,
    Semiring,
)

__all__ = [
    "FinSet",
    "Monoid",
    "Semiring",
    "PROB",
    "LOG",
    "BOOL",
    "MAX_PLUS",
    "MIN_PLUS",
    "MAX_TIMES",
    "LUKASIEWICZ",
    "GODEL",
    "PRODUCT_FUZZY",
    "REAL",
    "SEMIRINGS",
    "logsumexp",
    "Arrow",
    "Morphism",
    "then",
    "Kernel",
    "KERNEL_SEMIRINGS",
    "FinFunction",
    "identity",
    "copy",
    "delete",
    "swap",
    "projections",
    "injections",
    "left_kan",
    "right_kan",
    "fibre_sum",
    "fibre_prod",
    "pullback",
    "associative_scan",
    "semiring_scan",
    "semiring_product",
    "SemiringHom",
    "base_change",
    "HOMOMORPHISMS",
    "LOG_TO_PROB",
    "PROB_TO_LOG",
    "PROB_TO_BOOL",
    "LOG_TO_BOOL",
    "MAX_PLUS_TO_MAX_TIMES",
    "MAX_TIMES_TO_MAX_PLUS",
    "MAX_PLUS_TO_MIN_PLUS",
    "MIN_PLUS_TO_MAX_PLUS",
    "MAX_PLUS_TO_BOOL",
    "MIN_PLUS_TO_BOOL",
    "MAX_TIMES_TO_BOOL",
    "GODEL_TO_BOOL",
    "BOOL_TO_MAX_PLUS",
    "BOOL_TO_MIN_PLUS",
    "BOOL_TO_MAX_TIMES",
    "BOOL_TO_LUKASIEWICZ",
    "BOOL_TO_GODEL",
]
