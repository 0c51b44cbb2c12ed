"""Closed-form log densities of the common families.

Building a :class:`torch.distributions.Distribution` to score one value
costs more than the arithmetic for small tensors (argument broadcasting,
object construction), and a program scores every site on every call. For
the families below, :attr:`FamilySpec.log_prob` holds the log density
written with the same torch operations, in the same order, as the
``log_prob`` of the torch class, so the two agree to the last bit (up to
broadcasting, which happens here inside the arithmetic);
``torch.distributions`` stays the source of truth, and the tests compare
the two. One exception buys speed: a scale that is fixed (not learned: a literal
of the program, as in ``HalfNormal(1.0)``, or data) has the constant
parts of the Normal and Cauchy families folded once, ``c - k x^2`` with
``k = 1 / (2 s^2)`` (one ``addcmul`` for a scalar scale), which agrees
with torch to rounding.

The families whose parameters may sit on the edge of their constraint (a
probability of 0 or 1, a Poisson rate of 0, a Beta value of 0 or 1) are
written out for a second reason: torch clamps probabilities to ``[eps, 1 -
eps]``, so an impossible value scores about ``-36`` instead of ``-inf``,
and its gradients at the edge are ``0 / 0``. Here an impossible value has
log density ``-inf`` exactly, and the gradient of every term is finite
(``0`` on the branch that is ``-inf``), so that a zero-probability branch
of a ``marginalize`` block (zero-inflation written ``probs * z``) adds
nothing to the gradient instead of NaN.

Laws
----
- ``LOG_PROB[name](params, x) == FAMILIES[name].build(params).log_prob(x)``
  for parameters inside their constraints and any value (``-inf`` outside
  the support of the half families); to rounding when the scale is
  fixed (does not require grad), and for the families with probabilities.
- A value outside the support of the family at its parameters (a success
  of ``Bernoulli(0)``, ``Binomial(n, probs=1)`` below ``n``, a ``Uniform``
  value outside ``[low, high]``, a Beta value outside ``[0, 1]``) has log
  density ``-inf``; the gradient is finite wherever the parameters are
  inside their constraints.

Examples
--------
>>> import torch
>>> p = {"loc": torch.tensor([0.0, 1.0]), "scale": torch.tensor([1.0, 2.0])}
>>> x = torch.tensor([0.5, -1.0])
>>> bool((LOG_PROB["Normal"](p, x) == torch.distributions.Normal(**p).log_prob(x)).all())
True
>>> LOG_PROB["Bernoulli"]({"probs": torch.tensor(0.0)}, torch.tensor([0.0, 1.0]))
tensor([0., -inf])
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

from quivers.capture import may_read
from quivers.categories.kan import pullback

__all__ = ["LOG_PROB", "log_or_zero", "log_normalized", "xlogy"]

_HALF_LOG_2PI = math.log(math.sqrt(2 * math.pi))
_LOG_2 = math.log(2)
_LOG_PI = math.log(math.pi)


_FOLDED: dict[tuple, tuple] = {}
_FOLD_LIMIT = 1024  # elements: a fixed scale with more is not kept


def _fixed(t: Tensor) -> bool:
    """Whether the terms derived from ``t`` may be kept: a small tensor
    that is not learned (a program's literal, a constant, fixed data)."""
    return not t.requires_grad and t.numel() <= _FOLD_LIMIT and not t.is_inference()


def _folded(t: Tensor, shift: float, family: str) -> tuple[float | Tensor, Tensor]:
    """``(k, c)``, the constant parts of a density with the fixed scale
    ``t``, made once per tensor (a tensor written in place is seen by its
    version): for ``"normal"`` the log density is ``c - k x^2``, with
    ``k = 1 / (2 t^2)`` and ``c = shift - log t - log sqrt(2 pi)``; for
    ``"cauchy"`` it is ``c - log1p((k x)^2)``, with ``k = 1 / t`` and
    ``c = shift - log pi - log t``. ``k`` is a float for a scalar ``t``.

    A program's numeric constants are 0-dimensional tensors made once (see
    :func:`quivers.programs.expr._scalar`), so a prior such as
    ``HalfNormal(1.0)`` would otherwise repeat the operations on its scale
    in every call; fixed data (the ``sigma`` of eight schools) likewise.
    """
    key = (_where(t), shift, family)
    hit = _FOLDED.get(key)
    if hit is None:
        base = _HALF_LOG_2PI if family == "normal" else _LOG_PI
        with torch.no_grad():
            c = shift - base - t.log()
            k = 1.0 / (2.0 * t * t) if family == "normal" else 1.0 / t
        hit = _keep(key, t, float(k) if t.dim() == 0 else k, c)
    return hit[1], hit[2]


def _where(t: Tensor) -> tuple:
    """The memory ``t`` reads and its version: a view laid out anew on
    every call of a program has the same key as long as its values are
    the same (the entry holds the tensor, so the memory is not reused)."""
    return (t.data_ptr(), t.shape, t.stride(), t.dtype, t.device, t._version)


def _keep(key: tuple, t: Tensor, *terms) -> tuple:
    """Keep ``terms`` of ``t`` under ``key``, unless ``t`` is a view into
    much larger memory, which the entry would keep alive."""
    entry = (t, *terms)
    if t.untyped_storage().nbytes() <= 8 * _FOLD_LIMIT:
        if len(_FOLDED) > 256:
            _FOLDED.clear()
        _FOLDED[key] = entry
    return entry


def _is_zero(t: Tensor) -> bool:
    """Whether ``t`` is a fixed scalar zero (a location that is no shift)."""
    if t.dim() != 0 or not _fixed(t):
        return False
    key = (_where(t), 0.0, "zero")
    hit = _FOLDED.get(key)
    if hit is None:
        hit = _keep(key, t, bool(t == 0))
    return hit[1]


def _normal(loc: Tensor | None, scale: Tensor, x: Tensor, shift: float = 0.0) -> Tensor:
    """Normal's log density plus the constant ``shift``."""
    if loc is not None and not _is_zero(loc):
        x = x - loc  # x - 0 is x, to the bit: a constant zero is skipped
    if _fixed(scale):  # c - k x^2: one or two operations
        k, c = _folded(scale, shift, "normal")
        if isinstance(k, float):
            return torch.addcmul(c, x, x, value=-k)
        return c - k * x.square()
    lp = -(x**2) / (2 * scale**2) - scale.log() - _HALF_LOG_2PI
    return lp + shift if shift else lp


def normal(p: Mapping[str, Tensor], x: Tensor) -> Tensor:
    return _normal(p["loc"], p["scale"], x)


def _on_half_line(x: Tensor, lp: Tensor) -> Tensor:
    """``lp`` where ``x >= 0`` and ``-inf`` elsewhere (NaN included), as the
    half families of torch write it. The mask is applied only when some
    value is off the half line: on the CPU a check without autograd costs
    less than the ``where`` node every call would otherwise carry, and
    inference engines, whose draws come through ``exp``, never take it. On
    an accelerator the check would wait for the device; the mask does not."""
    inside = x >= 0
    if may_read(x) and bool(inside.all()):
        return lp
    return torch.where(inside, lp, -math.inf)


def half_normal(p: Mapping[str, Tensor], x: Tensor) -> Tensor:
    return _on_half_line(x, _normal(None, p["scale"], x, _LOG_2))


def log_normal(p: Mapping[str, Tensor], x: Tensor) -> Tensor:
    y = x.log()
    return -y + _normal(p["loc"], p["scale"], y)


def _cauchy(loc: Tensor | None, scale: Tensor, x: Tensor, shift: float = 0.0) -> Tensor:
    """Cauchy's log density plus the constant ``shift``."""
    if loc is not None and not _is_zero(loc):
        x = x - loc
    if _fixed(scale):  # c - log1p((k x)^2)
        k, c = _folded(scale, shift, "cauchy")
        return c - (x * k).square().log1p()
    lp = -_LOG_PI - scale.log() - ((x / scale) ** 2).log1p()
    return lp + shift if shift else lp


def cauchy(p: Mapping[str, Tensor], x: Tensor) -> Tensor:
    return _cauchy(p["loc"], p["scale"], x)


def half_cauchy(p: Mapping[str, Tensor], x: Tensor) -> Tensor:
    return _on_half_line(x, _cauchy(None, p["scale"], x, _LOG_2))


def laplace(p: Mapping[str, Tensor], x: Tensor) -> Tensor:
    scale = p["scale"]
    return -torch.log(2 * scale) - torch.abs(x - p["loc"]) / scale


def exponential(p: Mapping[str, Tensor], x: Tensor) -> Tensor:
    rate = p["rate"]
    return rate.log() - rate * x


def gamma(p: Mapping[str, Tensor], x: Tensor) -> Tensor:
    a, rate = p["concentration"], p["rate"]
    return torch.xlogy(a, rate) + torch.xlogy(a - 1, x) - rate * x - torch.lgamma(a)


def student_t(p: Mapping[str, Tensor], x: Tensor) -> Tensor:
    df, loc, scale = p["df"], p["loc"], p["scale"]
    y = (x - loc) / scale
    z = scale.log() + 0.5 * df.log() + 0.5 * math.log(math.pi) + torch.lgamma(0.5 * df) - torch.lgamma(0.5 * (df + 1.0))
    return -0.5 * (df + 1.0) * torch.log1p(y**2.0 / df) - z


def flat(p: Mapping[str, Tensor], x: Tensor) -> Tensor:
    """Stan's implicit prior: log density 0 everywhere (improper)."""
    return torch.zeros_like(x)


def half_flat(p: Mapping[str, Tensor], x: Tensor) -> Tensor:
    """0 on the half line ``x >= 0``, ``-inf`` elsewhere (improper)."""
    return _on_half_line(x, torch.zeros_like(x))


# ------------------------------------------------- edges of the supports


def log_or_zero(t: Tensor) -> Tensor:
    """``log t``, ``-inf`` where ``t`` is 0, with gradient 0 there instead
    of ``1 / 0``: on a branch whose term is ``-inf`` the upstream gradient
    is 0 (a logsumexp gives it no weight), and ``0 * inf`` would be NaN. A
    negative ``t`` (outside every constraint) stays NaN, for the caller to
    name. Without autograd, or without a zero, it is ``torch.log``: the
    check costs less than the two extra nodes of autograd.

    Examples
    --------
    >>> w = torch.tensor([0.0, 2.0], requires_grad=True)
    >>> log_or_zero(w)[0].item()
    -inf
    >>> torch.logsumexp(log_or_zero(w), 0).backward()
    >>> w.grad
    tensor([0.0000, 0.5000])
    """
    if not t.requires_grad:
        return torch.log(t)
    zero = t == 0
    if may_read(t) and not bool(zero.any()):
        return torch.log(t)
    return torch.where(zero, -math.inf, torch.log(torch.where(zero, torch.ones_like(t), t)))


def log_normalized(t: Tensor, key: str, axis: int = -1) -> Tensor:
    """A Categorical's log probabilities along ``axis`` from its ``weights``
    (nonnegative, unnormalized: ``log w - log sum w``, a zero weight
    ``-inf`` through :func:`log_or_zero`) or its ``logits``
    (``log_softmax``). The normalizer of the weights is the log of their
    sum, not a logsumexp of their logs, so that every weight, a zero one
    included, gets the normalizer's gradient ``-1 / sum w``.

    Examples
    --------
    >>> log_normalized(torch.tensor([0.0, 1.0, 3.0]), "weights")
    tensor([   -inf, -1.3863, -0.2877])
    """
    if key == "logits":
        return torch.log_softmax(t, axis)
    return log_or_zero(t) - torch.log(t.sum(axis, keepdim=True))


def categorical(p: Mapping[str, Tensor], x: Tensor) -> Tensor:
    """Categorical's log probability of the integers ``x``, from ``weights``
    or ``logits`` on the last axis. The table is normalized on its own
    shape and the observed entries picked by
    :func:`~quivers.categories.kan.pullback`, never by a gather on the
    table expanded to the shape of ``x``: a table indexed by an enumerated
    latent (``phi[z]``, ``(K, V)``) meets ``N`` observations at
    ``O(N K + K V)``, not ``O(N K V)``. ``x`` must lie in ``[0, V)`` (the
    caller checks the support)."""
    key = "logits" if "logits" in p else "weights"
    return pullback(log_normalized(p[key], key), x, check=False)


def xlogy(c: Tensor, p: Tensor) -> Tensor:
    """``c * log p``, 0 where ``c`` is 0 (whatever ``p``), ``-inf`` (or
    ``+inf`` for ``c < 0``) where ``p`` is 0 and ``c`` is not, with finite
    gradients everywhere ``p >= 0``: torch's own ``xlogy`` differentiates
    to ``c / p = 0 / 0`` at ``p = 0``.

    Examples
    --------
    >>> p = torch.tensor([0.0, 0.0, 0.5], requires_grad=True)
    >>> xlogy(torch.tensor([0.0, 2.0, 1.0]), p)
    tensor([ 0.0000,    -inf, -0.6931], grad_fn=<WhereBackward0>)
    >>> xlogy(torch.tensor([0.0, 0.0, 1.0]), p).sum().backward()
    >>> p.grad
    tensor([0., 0., 2.])
    """
    if not (c.requires_grad or p.requires_grad):
        return torch.xlogy(c, p)
    zero = p == 0
    term = c * torch.log(torch.where(zero, torch.ones_like(p), p))
    edge = torch.where(c > 0, -math.inf, math.inf)
    return torch.where(zero, torch.where(c == 0, 0.0, edge), term)


def _times(c: Tensor, t: Tensor) -> Tensor:
    """``c * t`` with ``0 * inf = 0``: a count of zero times the log of an
    impossible outcome (a logit of ``-inf``) contributes nothing."""
    return torch.where(c == 0, 0.0, c * t)


def _log_probs(p: Mapping[str, Tensor]) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
    """``(log p, log (1 - p))`` of a family given ``probs`` or ``logits``,
    as coefficients for :func:`xlogy` (then the first two are ``p`` and
    ``1 - p``) or as log probabilities (``logits``: the last two)."""
    if "logits" in p:
        lg = p["logits"]
        return None, None, F.logsigmoid(lg), F.logsigmoid(-lg)
    q = p["probs"]
    return q, 1 - q, None, None


def _bernoulli_terms(p: Mapping[str, Tensor], k: Tensor, n: Tensor) -> Tensor:
    """``k log p + n log(1 - p)`` for the counts ``k`` of successes and
    ``n`` of failures, exact at ``p`` = 0 and 1."""
    q, q1, lq, lq1 = _log_probs(p)
    if q is not None:
        return xlogy(k, q) + xlogy(n, q1)
    return _times(k, lq) + _times(n, lq1)


def bernoulli(p: Mapping[str, Tensor], x: Tensor) -> Tensor:
    return _bernoulli_terms(p, x, 1 - x)


def binomial(p: Mapping[str, Tensor], x: Tensor) -> Tensor:
    n = p["total_count"]
    inside = (x >= 0) & (x <= n)
    rest = n - x
    choose = torch.lgamma(n + 1) - torch.lgamma(x + 1) - torch.lgamma(rest.clamp(min=0) + 1)
    return torch.where(inside, choose + _bernoulli_terms(p, x, rest.clamp(min=0)), -math.inf)


def geometric(p: Mapping[str, Tensor], x: Tensor) -> Tensor:
    """Failures ``x`` before the first success of probability ``p``:
    ``x log(1 - p) + log p``."""
    q, q1, lq, lq1 = _log_probs(p)
    if q is not None:
        return xlogy(x, q1) + log_or_zero(q)
    return _times(x, lq1) + lq


def negative_binomial(p: Mapping[str, Tensor], x: Tensor) -> Tensor:
    """torch's convention: ``r log(1 - p) + x log p`` plus the count of
    orderings, ``x`` successes of probability ``p`` before ``r`` failures."""
    r = p["total_count"]
    norm = torch.lgamma(r + x) - torch.lgamma(x + 1) - torch.lgamma(r)
    return _bernoulli_terms(p, x, r) + norm


def poisson(p: Mapping[str, Tensor], x: Tensor) -> Tensor:
    rate = p["rate"]
    return xlogy(x, rate) - rate - torch.lgamma(x + 1)


def beta(p: Mapping[str, Tensor], x: Tensor) -> Tensor:
    """Beta's log density; ``-inf`` outside ``[0, 1]``, and at 0 (or 1)
    ``-inf``, finite or ``+inf`` as the concentration there is above, at
    or below 1 (the density's limit)."""
    a, b = p["concentration1"], p["concentration0"]
    inside = (x >= 0) & (x <= 1)
    y = torch.where(inside, x, 0.5)
    lp = xlogy(a - 1, y) + xlogy(b - 1, 1 - y) + torch.lgamma(a + b) - torch.lgamma(a) - torch.lgamma(b)
    return torch.where(inside, lp, -math.inf)


def dirichlet(p: Mapping[str, Tensor], x: Tensor) -> Tensor:
    """Dirichlet's log density, the Beta's rules at each coordinate: ``-inf``
    off the simplex's closure (a negative coordinate)."""
    a = p["concentration"]
    a1, norm = _dirichlet_constants(a)
    if may_read(x) and bool((x > 0).all()):
        # Inside the open simplex (every draw of an inference engine, made by
        # a bijection): torch's xlogy, one node of autograd instead of the
        # masks of the edges, each a pass over x (as in _on_half_line, a
        # check on the CPU; on an accelerator the masks stay).
        inside, lp = None, torch.xlogy(a1, x).sum(-1)
    else:
        inside = (x >= 0).all(-1)
        lp = xlogy(a1, torch.where(x >= 0, x, 1.0)).sum(-1)
    lp = lp + norm
    return lp if inside is None else torch.where(inside, lp, -math.inf)


def _dirichlet_constants(a: Tensor) -> tuple[Tensor, Tensor]:
    """``(a - 1, log Gamma(sum a) - sum log Gamma(a))`` for the
    concentration ``a``, made once per tensor when it is fixed (a literal
    such as LDA's ``Dirichlet(0.1)``, laid out on every call as a view of
    one number: the key is its memory, so each call finds it), else on
    every call, differentiable."""
    if a.requires_grad or a.is_inference():
        return a - 1, torch.lgamma(a.sum(-1)) - torch.lgamma(a).sum(-1)
    key = (_where(a), 0.0, "dirichlet")
    hit = _FOLDED.get(key)
    if hit is None:
        with torch.inference_mode(False):  # kept for later calls, which may differentiate through a - 1
            hit = _keep(key, a, a - 1, torch.lgamma(a.sum(-1)) - torch.lgamma(a).sum(-1))
    return hit[1], hit[2]


def uniform(p: Mapping[str, Tensor], x: Tensor) -> Tensor:
    """``-log(high - low)`` on the closed interval ``[low, high]`` (as
    Stan's ``uniform``; torch's excludes ``high``), ``-inf`` outside."""
    low, high = p["low"], p["high"]
    inside = (x >= low) & (x <= high)
    return torch.where(inside, -torch.log(high - low), -math.inf)


LOG_PROB: dict[str, Callable[[Mapping[str, Tensor], Tensor], Tensor]] = {
    "Normal": normal,
    "HalfNormal": half_normal,
    "LogNormal": log_normal,
    "Cauchy": cauchy,
    "HalfCauchy": half_cauchy,
    "Laplace": laplace,
    "Exponential": exponential,
    "Gamma": gamma,
    "StudentT": student_t,
    "Flat": flat,
    "HalfFlat": half_flat,
    "Bernoulli": bernoulli,
    "Binomial": binomial,
    "Geometric": geometric,
    "NegativeBinomial": negative_binomial,
    "Poisson": poisson,
    "Beta": beta,
    "Dirichlet": dirichlet,
    "Uniform": uniform,
    "Categorical": categorical,
}
"""Closed-form log densities by family name."""
