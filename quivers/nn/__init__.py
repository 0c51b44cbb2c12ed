"""Morphisms as torch modules: learnable kernels, their algebra, sequence
combinators and neural conditional kernels.

This layer sits on :mod:`quivers.categories` and
:mod:`quivers.distributions` and below :mod:`quivers.programs`: a module
here is an :class:`~quivers.categories.Arrow` (so ``>>``, ``@`` and
identities are the ones every morphism has) and a
:class:`torch.nn.Module` (so an optimizer trains a whole composite).

- :mod:`~quivers.nn.arrows`: :class:`MorphismModule`, the learnable
  :class:`Latent` kernel, :class:`Observed`, :class:`Identity`,
  :class:`Then`, :class:`Par`, :func:`dagger`, :func:`fan`;
- :mod:`~quivers.nn.sequence`: :func:`repeat`, :func:`stack`, :func:`scan`;
- :mod:`~quivers.nn.objects`: :class:`Real`, continuous objects;
- :mod:`~quivers.nn.weights`: :class:`Weights`, a free real-valued matrix
  (the learnable morphism of the ``real`` algebra);
- :mod:`~quivers.nn.contraction`: :func:`contraction`, several morphisms
  joined along the objects they share (an einsum in a semiring);
- :mod:`~quivers.nn.change_base`: :func:`change_base` by a
  :class:`Transformation` (``softmax(B)``, ``l1_normalize(B)``,
  ``expectation``);
- :mod:`~quivers.nn.kernels`: :class:`NeuralKernel` (a family whose
  parameters a small network computes from the input) and :class:`Embed`;
- :mod:`~quivers.nn.program`: :class:`KernelProgram`, a program whose steps
  draw from kernels (a scan cell, or a model scored on its observations);
- :mod:`~quivers.nn.elbo`: :func:`elbo`, the amortized variational bound
  of a model made of kernels.

QVR's ``morphism`` and ``define`` declarations compile into these calls.

Examples
--------
>>> import torch
>>> from quivers.categories import FinSet, LOG
>>> from quivers.nn import latent, repeat
>>> S, O = FinSet("S", 2), FinSet("O", 3)
>>> initial, transition, emission = latent(FinSet.unit(), S), latent(S, S), latent(S, O)
>>> hmm = initial >> repeat(transition) >> emission
>>> hmm.as_morphism(n_steps=10).tensor.shape
torch.Size([1, 3])
>>> round(float(hmm.as_morphism(LOG, n_steps=10).tensor.exp().sum().detach()), 6)
1.0
"""

from quivers.nn.arrows import (
    Evaluation,
    Fan,
    Identity,
    Latent,
    MorphismModule,
    Observed,
    Par,
    Then,
    dagger,
    fan,
    identity,
    latent,
    lift,
    observed,
    one_hot,
)
from quivers.nn.elbo import elbo
from quivers.nn.kernels import PARAM_SOURCES, Embed, NeuralKernel, encode, encode_parts
from quivers.nn.boundaries import DataMorphism, Discretize, bind, discretize
from quivers.nn.program import INPUT, KernelProgram, Step
from quivers.nn.objects import Real, is_continuous, matches
from quivers.nn.sequence import LearnedPoint, Repeat, Scan, Stack, repeat, scan, split_cell, stack
from quivers.nn.weights import Weights, weights
from quivers.nn.contraction import Contraction, contraction
from quivers.nn.change_base import ChangeBase, Transformation, change_base, expectation, l1_normalize, softmax

__all__ = [
    "Evaluation",
    "MorphismModule",
    "Latent",
    "Observed",
    "Identity",
    "Then",
    "Par",
    "Fan",
    "Repeat",
    "Stack",
    "Scan",
    "latent",
    "observed",
    "identity",
    "dagger",
    "fan",
    "lift",
    "one_hot",
    "repeat",
    "stack",
    "scan",
    "split_cell",
    "Real",
    "is_continuous",
    "matches",
    "LearnedPoint",
    "NeuralKernel",
    "Embed",
    "DataMorphism",
    "Discretize",
    "bind",
    "discretize",
    "encode",
    "encode_parts",
    "PARAM_SOURCES",
    "elbo",
    "KernelProgram",
    "INPUT",
    "Step",
    "Weights",
    "weights",
    "Contraction",
    "contraction",
    "ChangeBase",
    "Transformation",
    "change_base",
    "expectation",
    "l1_normalize",
    "softmax",
]
