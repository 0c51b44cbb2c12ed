"""Neural conditional kernels: distributions whose parameters are a learned
function of the input.

A :class:`NeuralKernel` ``A -> B ~ Family`` maps an input ``a`` to the
distribution ``Family(theta(a))`` over ``B``, where ``theta`` is a small
torch network (a linear map by default, an MLP with
``param_source="mlp"``) followed, for each parameter, by a map from the
reals onto the parameter's constraint (``softplus`` for a scale, the
identity for a location, torch's bijections for the rest). Parameters
given as numbers (``scale=0.1``) are fixed instead of learned. Any family of
:data:`quivers.distributions.FAMILIES` whose parameters are real numbers
works: into a continuous object :class:`Real` ``n`` each parameter has
``n`` coordinates and the ``n`` values form one draw; into a finite set
the family is ``Categorical`` (one logit per element).

An input is encoded as a vector: an element of a finite set as its one-hot
row, a point of a :class:`Real` object as itself, and a product
``A * B`` as the concatenation of its factors' encodings.

:class:`Embed` is the deterministic kernel from a finite set into a
``Real`` object: a learned lookup table (``torch.nn.Embedding``).

Continuous kernels compose by sampling: ``(f >> g).sample(x)`` draws from
``f`` at ``x`` (with reparameterization when the family has it, so
gradients flow through the draw) and feeds the draw to ``g``.

Examples
--------
>>> import torch
>>> from quivers.categories import FinSet
>>> X, Z = Real("X", 3), Real("Z", 2)
>>> k = NeuralKernel(X, Z, "Normal", param_source="mlp", hidden=(8,))
>>> d = k.distribution(torch.zeros(5, 3))
>>> d.batch_shape, d.event_shape
(torch.Size([5]), torch.Size([2]))
>>> k.sample(torch.zeros(5, 3)).shape
torch.Size([5, 2])
>>> Embed(FinSet("Token", 4), Z).sample(torch.tensor([0, 3])).shape
torch.Size([2, 2])
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.distributions import Distribution, Independent, constraints

from quivers.categories import FinSet, Morphism
from quivers.distributions import FAMILIES, biject
from quivers.errors import QuiversTypeError, ShapeError, UnknownNameError, UnsupportedError
from quivers.nn.arrows import Evaluation, MorphismModule
from quivers.nn.objects import Real, width as _width

__all__ = ["NeuralKernel", "Embed", "encode", "encode_parts", "PARAM_SOURCES"]

PARAM_SOURCES = ("linear", "mlp")
"""How a neural kernel computes its family's parameters from its input."""


def encode(value: Tensor, obj: FinSet | Real) -> Tensor:
    """A value of ``obj`` as a float vector: the one-hot row of an element of
    a finite set, the point itself for a plain ``Real``.

    Examples
    --------
    >>> encode(torch.tensor([2, 0]), FinSet("A", 3))
    tensor([[0., 0., 1.],
            [1., 0., 0.]])
    """
    if isinstance(obj, FinSet):
        value = torch.as_tensor(value)
        if value.is_floating_point():
            raise QuiversTypeError(f"elements of `{obj}` are integers, got a tensor of {value.dtype}")
        return nn.functional.one_hot(value.long(), obj.size).to(torch.get_default_dtype())
    value = torch.as_tensor(value)
    if value.shape[-1:] != (obj.dim,):
        raise ShapeError(f"a point of `{obj}` has {obj.dim} coordinates; got a tensor of shape {tuple(value.shape)}")
    return value


def encode_parts(parts: Sequence[Tensor], obj: FinSet | Real) -> Tensor:
    """The encoding of a point of a product given one value per factor."""
    factors = obj.factors if isinstance(obj, Real) else (obj,)
    if len(parts) == 1 and len(factors) > 1:  # already the concatenation of the factors' encodings
        return encode(parts[0], Real(obj.name, obj.dim))
    if len(parts) != len(factors):
        raise ShapeError(f"a point of `{obj}` has {len(factors)} parts, one per factor; got {len(parts)}")
    encoded = [encode(p, f) for p, f in zip(parts, factors)]
    batch = torch.broadcast_shapes(*(e.shape[:-1] for e in encoded))
    return torch.cat([e.expand(*batch, e.shape[-1]) for e in encoded], -1)


_GREATER_THAN = type(constraints.greater_than(0.0))


def _onto(constraint: constraints.Constraint):
    """The map from the network's outputs onto a parameter's constraint:
    ``softplus`` (shifted) onto a lower-bounded one, whose growth is linear
    where torch's ``exp`` would overflow a deep stack of kernels; torch's
    bijection elsewhere."""
    if isinstance(constraint, _GREATER_THAN):
        return lambda o: nn.functional.softplus(o) + constraint.lower_bound
    return biject(constraint)


class _NoMatrix:
    """Continuous modules are read by sampling, never as matrices."""

    def evaluate(self, ev: Evaluation) -> Morphism:
        raise UnsupportedError(
            f"`{self!r}` involves a continuous object, so it has no matrix over a semiring; "
            "draw from it with `.sample(x)` or score with `.log_prob(y, x)`"
        )


class NeuralKernel(_NoMatrix, MorphismModule):
    """A conditional distribution ``dom -> cod ~ family`` with learned
    parameters.

    Parameters
    ----------
    dom
        A finite set, a :class:`Real` object or a product of them.
    cod
        A :class:`Real` object (any family with real parameters), or a
        finite set (``Categorical``).
    family
        A name in :data:`quivers.distributions.FAMILIES`.
    param_source
        ``"linear"`` (default) or ``"mlp"``.
    hidden
        The hidden widths of the MLP (default ``(32,)``).
    fixed
        Parameters held at given values, e.g. ``{"scale": 0.1}``.
    name
        How the kernel is shown (its QVR name).

    Examples
    --------
    >>> k = NeuralKernel(FinSet("A", 2), Real("Y", 1), "Normal", fixed={"scale": 0.5})
    >>> float(k.distribution(torch.tensor([1])).base_dist.scale)
    0.5
    >>> NeuralKernel(FinSet("A", 2), Real("Y", 1), "Normall")
    Traceback (most recent call last):
    ...
    quivers.errors.UnknownNameError: unknown family `Normall` for kernel `A -> Y`; did you mean `Normal`?
    """

    def __init__(
        self,
        dom: FinSet | Real,
        cod: FinSet | Real,
        family: str = "Normal",
        *,
        param_source: str = "linear",
        hidden: Sequence[int] = (32,),
        fixed: dict[str, float] | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(dom, cod)
        where = f"kernel `{dom} -> {cod}`"
        if family not in FAMILIES:
            raise UnknownNameError(f"unknown family `{family}` for {where}", name=family, candidates=FAMILIES)
        if param_source not in PARAM_SOURCES:
            raise UnknownNameError(
                f"unknown `param_source={param_source}` for {where}; sources: {', '.join(PARAM_SOURCES)}",
                name=param_source, candidates=PARAM_SOURCES,
            )
        spec = FAMILIES[family]
        if isinstance(cod, FinSet) and family != "Categorical":
            raise QuiversTypeError(
                f"{where} is into the finite set `{cod}`, so its family is `Categorical`, not `{family}`"
            )
        self.family, self.name, self.param_source = family, name, param_source
        self.hidden = tuple(int(h) for h in hidden)
        fixed = dict(fixed or {})
        for key in fixed:
            spec.param(key)  # an unknown parameter is an UnknownNameError naming the family's
        # one parameter of each alternative group (`logits` for Bernoulli and Categorical)
        learned = [p for p in spec.params if p.name not in fixed]
        for group in spec.alternatives:
            if not any(p.name in fixed for p in group):
                learned.append(next((p for p in group if p.name == "logits"), group[0]))
        for p in learned:
            if p.event_rank > (1 if isinstance(cod, FinSet) else 0):
                raise UnsupportedError(
                    f"{where}: parameter `{p.name}` of `{family}` has event rank {p.event_rank}; "
                    "a neural kernel predicts parameters with one number per coordinate"
                )
        self.learned = tuple(p.name for p in learned)
        self.constraints = {p.name: p.constraint for p in learned}
        width = cod.size if isinstance(cod, FinSet) else cod.dim
        self.width = width
        self.fixed = {k: float(v) for k, v in fixed.items()}
        sizes = [_width(dom), *(self.hidden if param_source == "mlp" else ())]
        layers: list[nn.Module] = []
        if self.learned:  # with every parameter fixed there is nothing to compute
            for a, b in zip(sizes, sizes[1:]):
                layers += [nn.Linear(a, b), nn.Tanh()]
            layers.append(nn.Linear(sizes[-1], width * len(self.learned)))
        self.net = nn.Sequential(*layers)

    def reset_parameters(self) -> None:
        """Draw the network's weights afresh."""
        for m in self.net:
            if isinstance(m, nn.Linear):
                m.reset_parameters()

    @property
    def is_stochastic(self) -> bool:
        return True

    def params(self, x: Tensor) -> dict[str, Tensor]:
        """The family's parameters at the encoded input ``x`` (``(..., dim)``)."""
        out = self.net(x).split(self.width, -1) if self.learned else ()
        params = {n: _onto(self.constraints[n])(o) for n, o in zip(self.learned, out)}
        for k, v in self.fixed.items():
            # every parameter fixed: the same law at every input (a prior `1 -> Z` read at any input)
            params[k] = x.new_full((*x.shape[:-1], self.width), v)
        return params

    def distribution(self, *parts: Tensor) -> Distribution:
        """The distribution over ``cod`` at the input: one value per factor of
        ``dom`` (one value for a plain object)."""
        x = encode_parts(parts, self.dom)
        d = FAMILIES[self.family].make(self.params(x))
        return d if isinstance(self.cod, FinSet) else Independent(d, 1)

    def sample(self, *parts: Tensor) -> Tensor:
        """A draw at the input, reparameterized when the family allows it."""
        d = self.distribution(*parts)
        return d.rsample() if d.has_rsample else d.sample()

    def log_prob(self, y: Tensor, *parts: Tensor) -> Tensor:
        """``log p(y | x)``, summed over the coordinates of ``cod``."""
        return self.distribution(*parts).log_prob(y)

    def last_log_prob(self, y: Tensor, x: Tensor) -> Tensor:
        return self.log_prob(y, x)

    def __repr__(self) -> str:
        name = f", name={self.name!r}" if self.name else ""
        return f"kernel({self.dom.name}, {self.cod.name}, {self.family!r}{name})"


class Embed(_NoMatrix, MorphismModule):
    """A learned embedding of the finite set ``dom`` into ``Real`` ``cod``.

    Examples
    --------
    >>> e = Embed(FinSet("T", 5), Real("E", 3))
    >>> e.sample(torch.tensor([[0, 1], [4, 4]])).shape
    torch.Size([2, 2, 3])
    """

    def __init__(self, dom: FinSet, cod: Real, scale: float = 1.0, name: str | None = None) -> None:
        if not isinstance(dom, FinSet) or not isinstance(cod, Real):
            raise QuiversTypeError(
                f"an embedding maps a finite set into a Real object; `{dom} -> {cod}` does not"
            )
        super().__init__(dom, cod)
        self.scale, self.name = float(scale), name
        self.table = nn.Embedding(dom.size, cod.dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Draw the table afresh: ``scale * N(0, 1)``."""
        with torch.no_grad():
            self.table.weight.normal_().mul_(self.scale)

    @property
    def is_stochastic(self) -> bool:
        return True

    def sample(self, x: Tensor) -> Tensor:
        """The embedding of each element of ``x``."""
        return self.table(torch.as_tensor(x).long())

    def __repr__(self) -> str:
        name = f", name={self.name!r}" if self.name else ""
        return f"embed({self.dom.name}, {self.cod.name}{name})"
