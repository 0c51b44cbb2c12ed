"""The error hierarchy of quivers.

Every error a user can provoke with bad input is a :class:`QuiversError`.
Messages name the offending object, shape or name in backticks and, where a
fix is known, suggest it. Errors raised about QVR source carry a
:class:`Span` and render the offending line with a caret under it.

Examples
--------
>>> err = UnknownNameError("unknown object `KK`", name="KK", candidates=["K", "Item"])
>>> print(err)
unknown object `KK`; did you mean `K`?
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

__all__ = [
    "Span",
    "QuiversError",
    "QVRSyntaxError",
    "QuiversTypeError",
    "ShapeError",
    "CompositionError",
    "UnknownNameError",
    "EffectError",
    "GraphError",
    "DataError",
    "CheckpointError",
    "InvalidValueError",
    "GradientError",
    "UnsupportedError",
    "DeviceError",
    "DistributedError",
    "QuiversWarning",
    "ConvergenceWarning",
    "did_you_mean",
    "span_at",
]


@dataclass(frozen=True, slots=True)
class Span:
    """A region of QVR source: 1-based line and column, end exclusive.

    A step's span may also know where its named parts are (``via``,
    ``prior``, ``until``: the text of an option or of a family), so that the
    IR, which checks a rule once, places its error on the part at fault.

    Examples
    --------
    >>> Span(3, 5, 3, 9)
    Span(line=3, column=5, end_line=3, end_column=9)
    >>> step = Span(3, 5, 3, 40).with_parts(via=Span(3, 36, 3, 37))
    >>> step.at("via").column, step.at("prior").column, step == Span(3, 5, 3, 40)
    (36, 5, True)
    """

    line: int
    column: int
    end_line: int
    end_column: int
    parts: tuple[tuple[str, Span], ...] = field(default=(), compare=False, repr=False)

    def with_parts(self, **parts: Span | None) -> Span:
        """This span, knowing where its named ``parts`` are (None: unknown)."""
        known = tuple((k, v) for k, v in parts.items() if v is not None)
        return replace(self, parts=self.parts + known) if known else self

    def at(self, part: str) -> Span:
        """Where the part ``part`` is: its own span when known, else this one."""
        return next((v for k, v in self.parts if k == part), self)


def span_at(span: Span | None, part: str) -> Span | None:
    """``span.at(part)``, or None without a span (a step built in Python)."""
    return None if span is None else span.at(part)


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    """Return the closest candidate to ``name``, or None when none is close.

    Examples
    --------
    >>> did_you_mean("mu_kk", ["mu_k", "sd_k"])
    'mu_k'
    >>> did_you_mean("zzz", ["mu_k"]) is None
    True
    """
    matches = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None


def render_caret(source: str, span: Span) -> str:
    """Show the source line of ``span`` with carets under the span."""
    lines = source.splitlines()
    if not 1 <= span.line <= len(lines):
        return ""
    text = lines[span.line - 1]
    start = max(span.column - 1, 0)
    if span.end_line == span.line and span.end_column > span.column:
        width = span.end_column - span.column
    else:
        width = max(len(text) - start, 1)
    return f"    {text}\n    {' ' * start}{'^' * width}"


class QuiversError(Exception):
    """Root of every error quivers raises about user input.

    Parameters
    ----------
    message
        What is wrong, naming the offending thing in backticks.
    span
        Where in QVR source the problem is, when it came from source.
    source
        The QVR source text, used to show the offending line.
    hint
        A suggested fix, appended to the message.
    """

    def __init__(
        self,
        message: str,
        *,
        span: Span | None = None,
        source: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.message = message
        self.span = span
        self.source = source
        self.hint = hint
        super().__init__(self._render())

    def _render(self) -> str:
        text = self.message
        if self.hint:
            text = f"{text}; {self.hint}"
        if self.span is not None:
            text = f"line {self.span.line}, column {self.span.column}: {text}"
            if self.source is not None:
                caret = render_caret(self.source, self.span)
                if caret:
                    text = f"{text}\n{caret}"
        return text

    def relocated(self, span: Span | None = None, source: str | None = None, *, prefix: str = "") -> QuiversError:
        """This error placed in QVR source: the one way errors raised deep
        in the IR reach the line the user wrote.

        It keeps its own span when it has one (the innermost step that has
        a span is where the user looks) and takes ``span`` otherwise; it
        gains ``source`` when it has none; ``prefix`` goes before its
        message. Returns the error itself when nothing changes, else a copy
        of the same class with the same fields.

        Examples
        --------
        >>> err = ShapeError("`mu` has no axis `K`").relocated(Span(1, 5, 1, 7), "let mu = 1")
        >>> err.span.column, err.source
        (5, 'let mu = 1')
        >>> err.relocated(Span(3, 1, 3, 2), prefix="in `p`: ").message, err.span.line
        ('in `p`: `mu` has no axis `K`', 1)
        """
        new_span = self.span if self.span is not None else span
        new_source = self.source if self.source is not None else source
        if new_span == self.span and new_source == self.source and not prefix:
            return self
        err = type(self).__new__(type(self))
        err.__dict__.update(self.__dict__)
        QuiversError.__init__(err, prefix + self.message, span=new_span, source=new_source, hint=self.hint)
        return err

    def located(self, span: Span | None, source: str | None) -> QuiversError:
        """The same as :meth:`relocated` (kept for callers of the old name)."""
        return self.relocated(span, source)


class QVRSyntaxError(QuiversError):
    """Malformed QVR text: the parser could not read it."""


class QuiversTypeError(QuiversError):
    """A value of the wrong kind: wrong object, wrong family, wrong type."""


class ShapeError(QuiversTypeError):
    """A tensor whose shape does not fit the objects it is declared on."""


class CompositionError(QuiversTypeError):
    """Morphisms or programs that do not compose: codomain and domain differ,
    or the semirings or effects do not match."""


class UnknownNameError(QuiversTypeError):
    """A name, object, family or option that is not in scope.

    Parameters
    ----------
    name
        The unknown name.
    candidates
        The names in scope; the closest is suggested.
    """

    def __init__(
        self,
        message: str,
        *,
        name: str | None = None,
        candidates: Iterable[str] = (),
        span: Span | None = None,
        source: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.name = name
        self.candidates = tuple(candidates)
        if hint is None and name is not None:
            close = did_you_mean(name, self.candidates)
            if close is not None:
                hint = f"did you mean `{close}`?"
        super().__init__(message, span=span, source=source, hint=hint)


class EffectError(QuiversError):
    """A program whose declared effects do not cover what its steps do."""


class GraphError(QuiversError):
    """A program whose dependency graph is not a DAG, or refers to steps
    that do not exist."""


class DataError(QuiversError):
    """Observations or index maps that are missing, mis-shaped, out of
    range, or not finite."""


class CheckpointError(QuiversError):
    """A checkpoint that cannot be loaded: not a checkpoint, or saved from
    another program, guide or optimizer than the one it is loaded into."""


class InvalidValueError(QuiversError):
    """A value outside its domain: a negative probability, a row of a
    kernel that does not sum to one, a negative size."""


class GradientError(QuiversError):
    """A gradient that is not finite where the log density is: the error
    names the latent and the step whose term breaks it, never the data."""


class UnsupportedError(QuiversError):
    """A valid program that a backend or an operation cannot carry out: a
    construct that Stan emission (:mod:`quivers.emit`) has no faithful
    translation for, or a draw from an improper prior (``Flat()``)."""


class DeviceError(QuiversError):
    """A device torch cannot use here (``"cuda"`` on a machine without a
    GPU, a misspelled device), named where it was asked for."""


class DistributedError(QuiversError):
    """A data-parallel run that cannot go on: a process of the group that
    died or stopped answering within the timeout, or a group that was
    never started, named with the collective that failed."""


class QuiversWarning(UserWarning):
    """Root of the warnings quivers gives about a result that may be wrong
    although nothing failed."""


class ConvergenceWarning(QuiversWarning):
    """An inference run whose diagnostics say its draws may not represent
    the posterior: R-hat above 1.01, too few effective draws, divergences,
    saturated trees, low E-BFMI, label switching; for SVI a loss still
    falling or a Pareto k above 0.7.

    Examples
    --------
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     warnings.warn("r_hat of `mu` is 1.2", ConvergenceWarning)
    >>> caught[0].category.__name__, issubclass(ConvergenceWarning, UserWarning)
    ('ConvergenceWarning', True)
    """
