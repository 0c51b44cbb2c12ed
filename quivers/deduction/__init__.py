"""Weighted deduction and parsing in any semiring.

- :mod:`~quivers.deduction.cky`: the tensorized inside pass of a grammar in
  Chomsky normal form (:func:`inside`), batched over sentences;
- :mod:`~quivers.deduction.parses`: :class:`Tree`, :func:`tree_weight`,
  Viterbi parses with back-pointers (:func:`viterbi`) and posterior draws
  (:func:`sample`);
- :mod:`~quivers.deduction.outside`: outside weights, span posteriors and
  expected rule counts by differentiating the inside pass;
- :mod:`~quivers.deduction.grammar`: :class:`Grammar`, a weighted grammar
  (a PCFG when normalized) as a torch module with learnable rule weights;
- :mod:`~quivers.deduction.bayes`: :func:`pcfg_prior`, a Dirichlet prior
  over each category's rule probabilities, and their posterior by SVI;
- :mod:`~quivers.deduction.agenda`: an agenda-based forward chainer for
  general weighted rules over terms with variables (:func:`deduce`);
- :mod:`~quivers.deduction.system`: :class:`Deduction`, rules over spans
  with a lexicon and learnable weights: what a QVR ``deduction`` block
  compiles to;
- :mod:`~quivers.deduction.observe`: :class:`Sentences`, sentences a
  program observes under a deduction, scored by their log weight;
- :mod:`~quivers.deduction.parsing`: category rules lifted to spans and a
  lexicon of words: parsing by the agenda engine (:func:`parse`);
- :mod:`~quivers.deduction.schema`: :class:`ChartParser`, rule
  :class:`Schema` s (and :class:`Bundle` s of them) instantiated over a
  free residuated universe (:func:`free_residuated`), with learnable
  lexical and rule weights: what QVR ``schema``, ``bundle`` and
  ``parser(...)`` compile to.

This layer imports only from :mod:`quivers.categories` and below.
"""

from quivers.deduction.agenda import Derivation, Derivations, Hyperedge, Rule, Var, deduce, depth, show
from quivers.deduction.cky import Chart, inside, root_weights, sparse_inside, unary_closure
from quivers.deduction.grammar import Grammar, Production
from quivers.deduction.bayes import PCFGPosterior, PCFGPrior, fit_pcfg_posterior, pcfg_elbo, pcfg_prior
from quivers.deduction.outside import Counts, expected_counts, outside, span_posteriors
from quivers.deduction.parsing import Parse, lexical_axioms, parse, span_rules
from quivers.deduction.system import SEMIRING_NAMES, Deduction, Entry
from quivers.deduction.observe import Chart, Sentences
from quivers.deduction.parses import Parses, Tree, sample, tree_weight, viterbi
from quivers.deduction.schema import Bundle, ChartParser, Schema, free_residuated, splice

__all__ = [
    "Derivation",
    "Derivations",
    "Hyperedge",
    "Rule",
    "Var",
    "deduce",
    "depth",
    "show",
    "Parse",
    "Deduction",
    "Entry",
    "Sentences",
    "Chart",
    "SEMIRING_NAMES",
    "lexical_axioms",
    "parse",
    "span_rules",
    "Chart",
    "inside",
    "root_weights",
    "sparse_inside",
    "unary_closure",
    "Grammar",
    "Production",
    "PCFGPrior",
    "PCFGPosterior",
    "pcfg_prior",
    "pcfg_elbo",
    "fit_pcfg_posterior",
    "Counts",
    "expected_counts",
    "outside",
    "span_posteriors",
    "Parses",
    "Tree",
    "sample",
    "tree_weight",
    "viterbi",
    "Bundle",
    "ChartParser",
    "Schema",
    "free_residuated",
    "splice",
]
