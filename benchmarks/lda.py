"""Case: LDA's potential and its gradient, for a batch of NUTS chains.

Latent Dirichlet allocation as Stan's and posteriordb's LDA writes it: ``N``
words ``w`` in ``M`` documents ``doc``, topic mixtures ``theta`` (``M``
simplexes on ``K`` topics, ``Dirichlet(1)``) and topics ``phi`` (``K``
simplexes on a vocabulary of ``V`` words, ``Dirichlet(0.1)``); each word's
topic ``z`` is summed out:

    marginalize z : K <- Categorical(theta[doc])
        observe w : N <- Categorical(phi[z])

Each call evaluates the potential ``-(log p + log |J|)`` at a batch of
``C`` unconstrained positions (the stick-breaking coordinates of every
simplex) and back-propagates it: one leapfrog step of ``C`` chains.
Implementations:

- ``quivers``: :meth:`quivers.inference.ProgramAdaptor.potential_for` of
  the QVR program on the words (the potential that
  :class:`~quivers.inference.mcmc.NUTS` makes once per run and calls at
  every leapfrog step);
- ``torch by hand``: the same potential written with ``torch``: the
  stick-breaking transform and Dirichlet densities of
  ``torch.distributions``, ``log phi[:, :, w]`` and a logsumexp;
- ``Pyro``: the potential function of Pyro's NUTS for the model with ``z``
  enumerated in parallel (``pyro.infer.mcmc.util.initialize_model``), called
  once per chain as Pyro's NUTS runs its chains (Pyro is optional,
  imported lazily; its rows are skipped when absent, and where its
  gradient would fill a ``(K, N, V)`` tensor of more than 10^8 entries,
  which at K=20, V=5,000 is 1.9 GiB per chain).

Quivers is timed against torch by hand alone, alternating, and against
Pyro in a comparison of its own: a Pyro call of 0.1 to 3 s between the
millisecond ones evicts the caches of whichever burst follows it, which
timed the recovery from Pyro's call rather than either implementation.

Run it with ``python benchmarks/run.py --only lda``, or alone with
``python -m benchmarks.lda [--quick]``, which first checks that the three
compute the same potential.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.report import Row, Target, standalone, time_row  # noqa: E402
from benchmarks.timing import Options, compare, pyro_or_none, threads  # noqa: E402

__all__ = ["run", "SIZES", "QUICK_SIZES", "Problem", "check_same_value"]

N, DOCS, CHAINS = 5000, 50, 4
SIZES = [(2, 250), (20, 250), (2, 5000), (20, 5000)]  # (K, V)
QUICK_SIZES = [(2, 250), (20, 5000)]
ALPHA, BETA = 1.0, 0.1
PYRO_LIMIT = 10**8  # K N V: Pyro's gradient fills a float32 tensor of this many entries per chain


def lda_source(n: int, docs: int, k: int, v: int) -> str:
    return f"""object N : FinSet {n}
object M : FinSet {docs}
object K : FinSet {k}
object V : FinSet {v}
program lda : N -> N [effects=[Sample, Score, Marginal]]
    index doc : N -> M
    sample theta : M * K <- Dirichlet({ALPHA})
    sample phi : K * V <- Dirichlet({BETA})
    marginalize z : K <- Categorical(theta[doc])
        observe w : N <- Categorical(phi[z])
    return w
export lda
"""


class Problem:
    """Words drawn from the model, and ``chains`` unconstrained positions."""

    def __init__(self, k: int, v: int, n: int = N, docs: int = DOCS, chains: int = CHAINS, seed: int = 0,
                 dtype: torch.dtype = torch.float32) -> None:
        g = torch.Generator().manual_seed(seed)
        self.n, self.docs, self.k, self.v, self.dtype = n, docs, k, v, dtype
        theta = torch.distributions.Dirichlet(torch.full((docs, k), ALPHA)).sample()
        phi = torch.distributions.Dirichlet(torch.full((k, v), BETA)).sample()
        self.doc = torch.randint(0, docs, (n,), generator=g)
        z = torch.multinomial(theta[self.doc], 1, generator=g).squeeze(-1)
        self.w = torch.multinomial(phi[z], 1, generator=g).squeeze(-1)
        self.dim = docs * (k - 1) + k * (v - 1)
        self.z = (torch.rand(chains, self.dim, generator=g, dtype=torch.float64) * 4 - 2).to(dtype)

    def split(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The stick-breaking coordinates of ``theta`` and ``phi`` (in the
        order of quivers' layout: the program's order of sites)."""
        a, b = z.split([self.docs * (self.k - 1), self.k * (self.v - 1)], -1)
        return a.reshape(*z.shape[:-1], self.docs, self.k - 1), b.reshape(*z.shape[:-1], self.k, self.v - 1)


def _grad(potential, z: torch.Tensor) -> float:
    zg = z.detach().requires_grad_()
    u = potential(zg)
    u.sum().backward()
    return float(u.detach().sum())


def quivers_potential(p: Problem):
    from quivers.dsl import loads
    from quivers.inference.program_adaptor import ProgramAdaptor

    adaptor = ProgramAdaptor(loads(lda_source(p.n, p.docs, p.k, p.v)).morphism.to(p.dtype), dtype=p.dtype)
    assert list(adaptor.layout.names) == ["theta", "phi"], adaptor.layout.names
    return adaptor.potential_for(None, {"w": p.w, "doc": p.doc})


def torch_potential(p: Problem):
    """The potential by hand, batched over chains."""
    from torch.distributions import Dirichlet, StickBreakingTransform

    sb = StickBreakingTransform()
    # without validation, as quivers' potential (a float32 simplex of 5,000
    # entries sums to 1 only within rounding, which validation refuses)
    prior_theta = Dirichlet(torch.full((p.k,), ALPHA, dtype=p.dtype), validate_args=False)
    prior_phi = Dirichlet(torch.full((p.v,), BETA, dtype=p.dtype), validate_args=False)
    w, doc = p.w, p.doc

    def potential(z: torch.Tensor) -> torch.Tensor:
        ut, up = p.split(z)
        theta, phi = sb(ut), sb(up)
        logdet = sb.log_abs_det_jacobian(ut, theta).sum(-1) + sb.log_abs_det_jacobian(up, phi).sum(-1)
        prior = prior_theta.log_prob(theta).sum(-1) + prior_phi.log_prob(phi).sum(-1)
        emit = phi.log()[..., w].transpose(-1, -2)  # (C, N, K): log phi[k, w_n]
        lik = torch.logsumexp(theta.log()[..., doc, :] + emit, -1).sum(-1)
        return -(prior + lik + logdet)

    return potential


def pyro_potential(p: Problem):
    """Pyro's NUTS potential, one chain per call, or None without Pyro."""
    if pyro_or_none() is None:
        return None
    import pyro
    import pyro.distributions as dist
    from pyro.infer.mcmc.util import initialize_model
    from pyro.ops.indexing import Vindex

    def model(w, doc):
        with pyro.plate("docs", p.docs):
            theta = pyro.sample("theta", dist.Dirichlet(torch.full((p.k,), ALPHA, dtype=p.dtype)))
        with pyro.plate("topics", p.k):
            phi = pyro.sample("phi", dist.Dirichlet(torch.full((p.v,), BETA, dtype=p.dtype)))
        with pyro.plate("words", p.n):
            z = pyro.sample("z", dist.Categorical(theta[doc]), infer={"enumerate": "parallel"})
            pyro.sample("w", dist.Categorical(Vindex(phi)[z]), obs=w)

    pyro.clear_param_store()
    pyro.enable_validation(False)  # as the others: no support checks in the timed calls
    _, potential_fn, _, _ = initialize_model(model, model_args=(p.w, p.doc), max_plate_nesting=1,
                                             jit_compile=False)

    def potential(z: torch.Tensor) -> torch.Tensor:
        ut, up = p.split(z)
        return torch.stack([potential_fn({"theta": ut[c], "phi": up[c]}) for c in range(z.shape[0])])

    return potential


def check_same_value(k: int = 3, v: int = 7) -> float:
    """The largest difference between the implementations' potentials
    (float64, a small vocabulary): a check that they compute the same thing."""
    p = Problem(k, v, n=40, docs=4, dtype=torch.float64)
    fns = {"quivers": quivers_potential(p), "torch": torch_potential(p)}
    py = pyro_potential(p)
    if py is not None:
        fns["pyro"] = py
    values = {name: f(p.z) for name, f in fns.items()}
    return max(float((u - values["torch"]).abs().max()) for u in values.values())


def run(opts: Options) -> list[Row]:
    rows: list[Row] = []
    have_pyro = pyro_or_none() is not None
    case = f"LDA potential + grad, {CHAINS} chains"
    for k, v in QUICK_SIZES if opts.quick else SIZES:
        p = Problem(k, v)
        size = f"N={N:,} K={k} V={v:,}"
        for nt in opts.thread_counts:
            with threads(nt):
                q, t = quivers_potential(p), torch_potential(p)
                fq = lambda q=q: _grad(q, p.z)  # noqa: E731
                # two warm-up calls: the first binds quivers' plan to the words
                stats = compare({"quivers": fq, "torch": lambda t=t: _grad(t, p.z)}, rounds=opts.rounds,
                                warmup=2, budget_s=opts.budget_s)
                py = pyro_potential(p) if k * N * v <= PYRO_LIMIT else None
                against_pyro = None
                if py is not None:
                    against_pyro = compare({"quivers": fq, "pyro": lambda py=py: _grad(py, p.z)},
                                           rounds=opts.rounds, warmup=1, budget_s=opts.budget_s)
            rows.append(time_row(case, size, nt, ("quivers", stats["quivers"]), ("torch by hand", stats["torch"]),
                                 Target("<=", 1.3, "<= 1.3x"), opts.clock))
            if against_pyro is not None:
                rows.append(time_row(case, size, nt, ("quivers", against_pyro["quivers"]),
                                     ("Pyro (enumerated)", against_pyro["pyro"]), None, opts.clock,
                                     note="Pyro's NUTS potential, one call per chain"))
        if have_pyro and k * N * v > PYRO_LIMIT:
            print(f"LDA {size}: the Pyro row is skipped: the gradient of its gather fills a (K, N, V) tensor "
                  f"of {4 * k * N * v / 2**30:.1f} GiB per chain")
    if not have_pyro:
        print("LDA: the Pyro rows are skipped because Pyro is not installed (pip install pyro-ppl)")
    return rows


def main(argv: list[str] | None = None) -> list[Row]:
    return standalone("lda", "LDA potential and gradient: quivers vs torch by hand and Pyro", run, check_same_value, "potential", argv)


if __name__ == "__main__":
    main()
