"""Whether a computation is being captured as a graph of tensor operations.

Eager code on the CPU may read a tensor on the host to choose the cheaper
of two equal computations (skip a mask that changes nothing, take a fast
path when no value is zero). A captured graph is replayed for other values
and cannot keep such a choice, so while :func:`capture` is active those
sites take the branch that is right for every value, and torch's
validation of distribution arguments and values is off: it raises on a
parameter outside its constraint, which a graph cannot record; captured,
such a parameter gives a NaN log density instead, which a Hamiltonian
sampler treats as a divergence (as Stan rejects the proposal).

A computation is recorded under it by :func:`record` (``torch.fx``'s
``make_fx``: every tensor operation, forward and backward where the
computation calls autograd, as one graph of aten operations), compiled by
:func:`compile_graph`, and checked against its eager result by
:func:`agree`. Whoever compiles so falls back to the eager computation
where any of the three fails, and says why with a :class:`CompileWarning`
(:func:`~quivers.inference.mcmc.compiled.compile_recorded` for NUTS's
leapfrog step and HMC's potential, the ELBO's ``jit_compile`` for SVI).

Examples
--------
>>> capturing()
False
>>> with capture():
...     capturing()
True
"""

from __future__ import annotations

import gc
import logging
import shutil
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from contextvars import ContextVar
from typing import Any

import torch
from torch import Tensor
from torch.distributions import Distribution

from quivers.errors import QuiversWarning

__all__ = [
    "CompileWarning", "agree", "capture", "capturing", "compile_graph", "first_line", "frozen_heap", "may_read",
    "record",
]


class CompileWarning(QuiversWarning):
    """A computation could not be compiled, or its compiled call disagreed
    with the eager one; the eager computation is used."""


_CAPTURING: ContextVar[bool] = ContextVar("quivers_capturing", default=False)


def capturing() -> bool:
    """Whether a :func:`capture` block is active."""
    return _CAPTURING.get()


@contextmanager
def capture() -> Iterator[None]:
    """Mark the block as captured: host reads that only choose a shortcut,
    and torch's argument validation, are off."""
    token = _CAPTURING.set(True)
    validate = Distribution._validate_args
    Distribution.set_default_validate_args(False)
    try:
        yield
    finally:
        Distribution.set_default_validate_args(validate)
        _CAPTURING.reset(token)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Python's cyclic collector off inside the block. Recording and
    compiling make many short-lived objects, and each collection they
    trigger walks the whole heap: on hmm_example's leaf, a tenth of a
    first compile (3.4 s to 3.1 s, 3.6 s to 3.1 s with a long session's
    heap). The cycles left are collected after the block."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@contextmanager
def frozen_heap() -> Iterator[None]:
    """The objects alive on entry are left out of the cyclic collector's
    walks inside the block (``gc.freeze``), and handed back to it after.

    A first compile leaves a few hundred thousand new objects, and the
    collections a sampling loop then triggers walk them: after a fresh
    compile in the same process, eight schools' NUTS leaf took 51 to 52 us
    against 36 to 37 (4 chains x 1,000 iterations), about one full
    collection of the heap (0.24 s) spread over the run. Inside the block
    only what the loop itself makes is walked, and garbage it makes in
    cycles is still collected. Where objects are already frozen (a caller
    of ``gc.freeze``), the block leaves the collector as it is, so as not
    to unfreeze them.

    Examples
    --------
    >>> with frozen_heap():
    ...     gc.get_freeze_count() > 0
    True
    >>> gc.get_freeze_count()
    0
    """
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@contextmanager
def _quick_kernels() -> Iterator[None]:
    """Inductor's C++ kernels built at ``-O1`` rather than ``-O3`` inside
    the block. On a graph of scalar loops (below :data:`_VECTORIZE_FROM`)
    gcc is a third of a first compile. At ``-O1`` hmm_example's leaf builds
    in 0.78 s against 1.16, and its first compile takes 3.2 s against 3.5
    (the mean of three runs each way). A leaf of each NUTS model of
    ``benchmarks/peers.py`` runs as fast: 27 us at ``-O1`` against 26 on
    eight schools, 89 against 90 on the mixture, 84 against 85 on
    hmm_example. The loops are the same IEEE operations (inductor passes
    ``-ffp-contract=off`` and no fast math), so the results are too.

    Two more flags shorten each build by a tenth or more (gcc took 1.05
    to 1.56 s against 1.28 to 2.1 on the three models' leaves, two runs
    each way): no line tables (``-g1``, which only a profiler of the
    generated code reads), and gold for the link where the machine has it
    (linking against libtorch took 0.11 s against 0.29 with ld's default).

    Inductor has no setting for the level, so its flag function is wrapped
    for the block; a torch without it is left as it is."""
    from torch._inductor import cpp_builder

    flags = getattr(cpp_builder, "_get_optimization_cflags", None)
    if flags is None:
        yield
        return
    gold = ["fuse-ld=gold"] if shutil.which("ld.gold") else []

    def lighter(*args: Any, **kwargs: Any) -> Any:
        cflags, ldflags = flags(*args, **kwargs)
        return ["O1" if f == "O3" else f for f in cflags if f != "g1"], ldflags + gold

    cpp_builder._get_optimization_cflags = lighter
    try:
        yield
    finally:
        cpp_builder._get_optimization_cflags = flags


@contextmanager
def _isa_list_dropped() -> Iterator[None]:
    """Inductor finds the vector instruction sets it may use once a process
    (``valid_vec_isa_list``, cached), keeping those that ``cpp.vec_isa_ok``
    allows at that first call. Found inside a build of scalar loops, where
    it is off, the list is empty, and every later graph of the process was
    built scalar: a compiled SVI step at N=100,000 took 30 ms after the
    N=500 step's build against 5.6 alone. What inductor finds inside the
    block is dropped at its end; a torch without the cache is left as it
    is."""
    from torch._inductor import cpu_vec_isa

    found = getattr(cpu_vec_isa, "valid_vec_isa_list", None)
    try:
        yield
    finally:
        if hasattr(found, "cache_clear"):
            found.cache_clear()


def may_read(t: torch.Tensor) -> bool:
    """Whether reading ``t`` on the host to pick a shortcut is allowed: it
    lives on the CPU (a read does not wait for a device) and nothing is
    being captured.

    Examples
    --------
    >>> may_read(torch.zeros(2))
    True
    """
    return t.is_cpu and not _CAPTURING.get()


def record(fn: Callable[..., Any], *args: Tensor, decompose: bool = False) -> torch.fx.GraphModule:
    """``fn`` at ``args`` recorded as one graph of aten operations, inside
    :func:`capture` (the tensors ``fn`` reads besides ``args`` are
    constants of the graph). Raises what the recording raises: a value
    read on the host that depends on ``args``, for one.

    With ``decompose``, each operation is recorded as inductor's
    decomposition of it, the form inductor lowers: :func:`compile_graph`
    hands such a graph to inductor without the second recording that
    ``compile_fx`` would make of it (a seventh of a first compile).

    Examples
    --------
    >>> g = record(lambda z: (z * z).sum(), torch.ones(3))
    >>> g(torch.tensor([1.0, 2.0, 2.0]))
    tensor(9.)
    """
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.fx.experimental.proxy_tensor import make_fx

    # make_fx follows tensors by identity: one tensor given for two inputs
    # would be recorded as the same input in both places
    seen: set[int] = set()
    fresh = []
    for a in args:
        if id(a) in seen:
            a = a.detach().clone().requires_grad_(a.requires_grad)
        seen.add(id(a))
        fresh.append(a)
    decompositions = None
    if decompose:
        from torch._inductor.decomposition import select_decomp_table

        decompositions = select_decomp_table()
    # one fake mode for the values the recording keeps of each operation:
    # without a tracing context that holds one, make_fx makes a mode per
    # operation, and each takes a stack trace (hmm_example's leaf records
    # in 0.16 s against 0.26, the mixture's in 0.06 s against 0.10)
    values = torch._guards.TracingContext(FakeTensorMode(allow_fallback_kernels=True))
    with capture(), _gc_paused(), torch._guards.tracing(values):
        graph = make_fx(fn, decomposition_table=decompositions, tracing_mode="real")(*fresh)
    # the recording keeps fn's annotations as types of its inputs and
    # output; postponed (strings), they end up in the graph's code as
    # string globals, which AOT autograd's cache cannot key, so that a
    # graph compiled through compile_fx was never served from it
    for node in graph.graph.nodes:
        node.type = None
    graph.recompile()
    graph.meta["decomposed"] = decompose
    return graph


_VECTORIZE_FROM = 1 << 16
"""Inductor's SIMD loops pay for themselves from about this many elements
in the graph's largest tensor. Below it, as in a NUTS leaf of the models
in ``benchmarks/peers.py`` (at most 8,000 elements), scalar loops ran as
fast or faster (22 against 21 us a leaf on eight schools, 82 against 86
on the mixture at N=1,000, 89 against 109 on hmm_example) and compiled in
about half the time; at 160,000 elements SIMD saved a tenth, at 800,000 a
quarter."""


def _make_functional(graph: torch.fx.GraphModule) -> bool:
    """Make each write of ``graph`` into a fresh result that nothing reads
    afterwards (decompositions make them: clamp's backward ands two masks
    in place) out of place, and say whether that leaves no write at all; a
    graph with any other write is left as it was. Inductor lowers the graph
    it is given as it stands; compile_fx's second recording makes any graph
    functional."""
    order = {node: i for i, node in enumerate(graph.graph.nodes)}
    rewrites = []
    for node in graph.graph.nodes:
        if node.op != "call_function" or not isinstance(node.target, torch._ops.OpOverload):
            continue
        schema = node.target._schema
        if not schema.is_mutable:
            continue
        written = [a for a, spec in zip(node.args, schema.arguments) if spec.alias_info and spec.alias_info.is_write]
        packet = getattr(torch.ops.aten, schema.name.split("::")[-1].rstrip("_"), None)
        pure = getattr(packet, node.target._overloadname, None)
        if len(written) != 1 or pure is None or pure._schema.is_mutable:
            return False
        (arg,) = written
        # a result of its own, read by nothing after the write and seen
        # through no view
        fresh = (isinstance(arg, torch.fx.Node) and _owns_result(arg)
                 and all(user is node or (order[user] < order[node] and _owns_result(user)) for user in arg.users))
        if not fresh:
            return False
        rewrites.append((node, pure))
    for node, pure in rewrites:
        node.target = pure
    graph.recompile()
    return True


def _owns_result(node: torch.fx.Node) -> bool:
    # an operation whose result shares no storage with its inputs
    return (node.op == "call_function" and isinstance(node.target, torch._ops.OpOverload)
            and not any(r.alias_info for r in node.target._schema.returns))


# tensors made from their arguments alone, which folding may compute
_FILLS = frozenset({
    torch.ops.aten.full.default, torch.ops.aten.scalar_tensor.default, torch.ops.prims.iota.default,
    torch.ops.aten.arange.default, torch.ops.aten.arange.start, torch.ops.aten.arange.start_step,
    torch.ops.aten.zeros.default, torch.ops.aten.ones.default,
})


def _fold_constants(graph: torch.fx.GraphModule) -> None:
    """Compute once each operation of ``graph`` whose inputs are all its
    constants or fills (the data's transforms, broadcasts of fixed
    parameters, offsets made from an ``arange``), and keep the results as
    constants. Handed such a subgraph directly, inductor's lowering gave a
    comparison of a broadcast 0-dim constant with a reshaped one the wrong
    shape (the same graph through compile_fx came out right); folded,
    there is nothing of it left to lower."""
    from torch.fx.node import map_arg

    values: dict[torch.fx.Node, Tensor] = {}
    for node in graph.graph.nodes:
        if node.op == "get_attr" and isinstance(getattr(graph, node.target, None), Tensor):
            values[node] = getattr(graph, node.target)
        elif node.op == "call_function" and node.target in _FILLS and not node.all_input_nodes:
            values[node] = node.target(*node.args, **node.kwargs)
        elif (node.op == "call_function" and isinstance(node.target, torch._ops.OpOverload)
              and node.all_input_nodes and all(a in values for a in node.all_input_nodes)
              and not node.target._schema.is_mutable
              and torch.Tag.nondeterministic_seeded not in node.target.tags):
            out = node.target(*map_arg(node.args, values.__getitem__), **map_arg(node.kwargs, values.__getitem__))
            if isinstance(out, Tensor):
                values[node] = out
    kept = 0
    for node in list(graph.graph.nodes):
        # a fill read only by what is not folded stays a fill: inductor
        # writes it into the loop that reads it, where a constant is a load
        if (node.op == "call_function" and node in values and node.target not in _FILLS
                and not all(u in values for u in node.users)):
            name = f"_folded_constant{kept}"
            setattr(graph, name, values[node].clone())
            with graph.graph.inserting_before(node):
                constant = graph.graph.create_node("get_attr", name)
            constant.meta = dict(node.meta)
            node.replace_all_uses_with(constant)
            kept += 1
    graph.graph.eliminate_dead_code()
    # the constants the folded operations read stay behind as attributes
    # (make_fx's as buffers) unless dropped with their last reader
    read = {node.target for node in graph.graph.nodes if node.op == "get_attr"}
    for name in [n for n, v in vars(graph).items() if isinstance(v, Tensor)] + list(graph._buffers):
        if name not in read:
            delattr(graph, name)
    graph.recompile()


def _keyed_by_layout(graph: torch.fx.GraphModule) -> None:
    """Mark the tensor constants of ``graph`` (the data, and what was folded
    from it) as inductor's frozen parameters. Its on-disk cache then keys
    them by shape, dtype and layout, and on a hit takes their values from
    the graph being compiled: inductor's own scheme for caching graphs with
    frozen weights. A model refitted to other data of the same shapes is
    then served from the cache (hmm_example's leaf: 0.3 s, against 2.0 s
    with its values in the key). Constants inductor writes into the
    generated code (0-dim, and 1-D of at most 8 elements) keep their values
    in the key. The key holds every tensor of the module, so the graph must
    hold no constant it does not read (:func:`_fold_constants` drops the
    ones it leaves behind).

    Each constant is replaced by an alias before it is marked, so that no
    tensor of the caller's carries the mark."""
    from torch._inductor.graph import GraphLowering

    for node in graph.graph.nodes:
        value = getattr(graph, node.target, None) if node.op == "get_attr" else None
        # a 0-dim constant is written into the code as a number, whatever
        # the key says: its value must stay in the key
        if isinstance(value, Tensor) and value.dim() > 0 and not GraphLowering.can_inline_constant(value):
            alias = value.detach()
            alias._is_frozen_param = True
            setattr(graph, node.target, alias)
    graph._has_frozen_params = True


class _NoShimNotice(logging.Filter):
    """Drops inductor's notice that an operation has no C shim (its C++
    wrapper then calls the operation through the dispatcher, correctly):
    it says nothing a user of quivers can act on."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "missing a c-shim implementation" not in record.getMessage()


_WRAPPED_HEADERS = (
    "torch/csrc/inductor/cpp_prefix.h", "Python.h", "sstream", "torch/csrc/inductor/aoti_torch/c/shim.h",
)
"""What the C++ wrapper's source includes besides its own header: the
kernels' prefix and the Python binding's headers."""


@contextmanager
def _one_header() -> Iterator[None]:
    """Inductor's C++ wrapper on the CPU precompiles its own header only,
    and gcc parses the rest of what the source includes at every build:
    the kernels' prefix (vectorized types, their templates) and the Python
    binding's headers. Inside the block the precompiled header holds them
    all, so that gcc parses none: hmm_example's leaf builds in 1.28 s
    against 1.55 (gcc alone, three runs each way). The header is built
    once per machine and set of flags, as inductor's own is.

    The header inductor would precompile is wrapped for the block (it
    names one file, included as ``#include <path>``); a torch without the
    hook is left as it is."""
    from torch._inductor import codecache

    cache = getattr(codecache, "CppWrapperCodeCache", None)
    declared = vars(cache).get("_get_uncompiled_header") if cache is not None else None
    folder = getattr(codecache, "_HEADER_DIR", None)
    if not isinstance(declared, classmethod) or folder is None:
        yield
        return

    def everything(cls: type, device: str) -> str | None:
        header = declared.__func__(cls, device)
        if header is None or not device.startswith("cpu"):
            return header
        text = "".join(f"#include <{h}>\n" for h in (header, *_WRAPPED_HEADERS))
        return codecache.write(text, "h", specified_dir=folder)[1]

    cache._get_uncompiled_header = classmethod(everything)
    try:
        yield
    finally:
        cache._get_uncompiled_header = declared


def _inductor(graph: torch.fx.GraphModule, examples: list[Tensor]) -> Callable[[list[Tensor]], Any]:
    """``graph`` compiled by inductor's ``compile_fx_inner`` with its C++
    wrapper, which allocates the buffers and calls the fused loops from
    C++ where the Python wrapper spends a few tenths of a microsecond on
    each: a NUTS leaf takes 71 us against 100 on hmm_example, 103 against
    112 on the mixture, 23 against 32 on eight schools. Once its
    precompiled header is built (about 5 s, the first time on a machine),
    it compiles in the time the Python wrapper takes, and faster with every
    header of its source in that one (:func:`_one_header`). A graph the
    C++ wrapper cannot take is compiled with the Python one."""
    from torch._inductor.compile_fx import compile_fx_inner

    notices = logging.getLogger("torch._inductor.ir")
    quiet = _NoShimNotice()
    notices.addFilter(quiet)
    try:
        with _one_header():
            return compile_fx_inner(graph, examples, cpp_wrapper=True)
    except Exception:  # noqa: BLE001 - the Python wrapper takes what the C++ one refuses
        return compile_fx_inner(graph, examples)
    finally:
        notices.removeFilter(quiet)


def _largest(graph: torch.fx.GraphModule) -> int:
    # the most elements of any tensor the recording computed
    vals = (node.meta.get("val") for node in graph.graph.nodes)
    return max((v.numel() for val in vals for v in (val if isinstance(val, (tuple, list)) else (val,))
                if isinstance(v, Tensor)), default=0)


def compile_graph(graph: torch.fx.GraphModule, backend: str = "inductor",
                  inputs: Sequence[Tensor] | None = None) -> Callable[..., Any]:
    """``graph`` compiled for the shapes, dtypes and devices it was
    recorded at. ``backend="eager"`` replays the graph as recorded, what
    tests use to check a recording without a compiler.

    By ``torch.compile`` (``fullgraph=True, dynamic=False``; the compiler
    runs at the first call, and every call passes dynamo's guards), or,
    given example ``inputs`` and ``backend="inductor"``, by inductor
    directly, now: a call is then the generated code alone, some 15 to
    25 us less on the CPU, which asserts its inputs' sizes and strides but
    not their dtypes or devices: the caller gives it inputs laid out as
    the examples were (contiguous, for one). The graph is compiled once
    per machine: inductor's on-disk cache serves it to later runs.

    A graph recorded with ``decompose`` and writing into no input goes to
    inductor's ``compile_fx_inner`` with its constant subexpressions
    computed, its constants keyed in the cache by their layout, not their
    values (:func:`_keyed_by_layout`), and inductor's C++ wrapper where it
    takes the graph (:func:`_inductor`), its headers precompiled as one
    (:func:`_one_header`); any other goes through
    ``compile_fx``, which records it again to make it functional. Loops
    are scalar below 65,536 elements in the largest tensor
    (:data:`_VECTORIZE_FROM`), and then built at ``-O1``
    (:func:`_quick_kernels`).

    Examples
    --------
    >>> fn = compile_graph(record(lambda z: z.exp().sum(), torch.zeros(2)), backend="eager")
    >>> fn(torch.zeros(2))
    tensor(2.)
    """
    if backend == "eager":
        return graph
    if inputs is not None and backend == "inductor":
        from torch._inductor.compile_fx import compile_fx
        from torch._subclasses.fake_tensor import FakeTensorMode
        from torch.fx.experimental.symbolic_shapes import ShapeEnv

        # fake examples with a shape environment: without one inductor skips
        # its on-disk cache of compiled graphs, and every run compiles afresh.
        # Their sizes are static, as the graph is: with symbolic ones (the
        # environment's default) inductor's fake propagation did every size
        # computation symbolically (the mixture's leaf: 0.42 s against 0.10)
        fake = FakeTensorMode(shape_env=ShapeEnv(), allow_non_fake_inputs=True)
        examples = [fake.from_tensor(t, static_shapes=True) for t in inputs]
        vectorize = _largest(graph) >= _VECTORIZE_FROM
        with (torch._inductor.config.patch({"cpp.vec_isa_ok": vectorize}), _gc_paused(),
              nullcontext() if vectorize else _quick_kernels(),
              nullcontext() if vectorize else _isa_list_dropped()):
            if graph.meta.get("decomposed") and _make_functional(graph):
                _fold_constants(graph)
                _keyed_by_layout(graph)
                # the tracing context carries the shape environment to the cache
                with torch._guards.tracing(torch._guards.TracingContext(fake)):
                    boxed = _inductor(graph, examples)
                # on the CPU, the generated code itself: the compiled graph's
                # own call adds its hooks for autotuning caches (of GPU
                # kernels), the profiler and metrics, a microsecond and a
                # half a call that CPU code never uses
                cpu = all(t.device.type == "cpu" for t in inputs)
                call = (getattr(boxed, "current_callable", None) if cpu else None) or boxed
                return lambda *args: call(list(args))
            return compile_fx(graph, examples)
    # the bound forward, not the module: a call skips nn.Module's hooks
    return torch.compile(graph.forward, backend=backend, fullgraph=True, dynamic=False)


def agree(a: Sequence[Tensor], b: Sequence[Tensor]) -> bool:
    """Whether the compiled results ``a`` equal the eager ones ``b`` up to
    the reassociation of sums that fused loops make: booleans, integers,
    infinities and NaN exactly where ``b`` has them, and finite values
    relative to the largest magnitude of each result, to a few hundred ulps
    of its dtype.

    Examples
    --------
    >>> agree([torch.tensor([1.0, 2.0])], [torch.tensor([1.0, 2.0 + 1e-6])])
    True
    >>> agree([torch.tensor([1.0, 2.0])], [torch.tensor([1.0, 2.1])])
    False
    >>> agree([torch.tensor([float("nan"), True])], [torch.tensor([float("nan"), True])])
    True
    """
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if x.shape != y.shape or x.dtype != y.dtype:
            return False
        if not y.is_floating_point():
            if not bool((x == y).all()):
                return False
            continue
        finite = torch.isfinite(y)
        same = (x == y) | (torch.isnan(x) & torch.isnan(y))
        if not bool((torch.isfinite(x) == finite).all()) or not bool(same[~finite].all()):
            return False
        if bool(finite.any()):
            scale = float(y[finite].abs().max().clamp(min=1.0))
            if float((x[finite] - y[finite]).abs().max()) > 512 * torch.finfo(y.dtype).eps * scale:
                return False
    return True


def first_line(err: BaseException) -> str:
    """The first line of an error's message, for a warning that quotes it.

    Examples
    --------
    >>> first_line(RuntimeError("no compiler\\nmore detail"))
    'no compiler'
    """
    text = str(err).strip()
    return text.splitlines()[0][:200] if text else "no message"
