"""``qvr``: check, format, draw, fit, predict, sample and emit QVR programs.

Every command reads QVR files; an error in one is printed as
``FILE:LINE:COL: message`` with the offending line and a caret under it, and
the command exits with status 1. A wrong flag or a missing file is one line
on stderr (status 2 for flags, 1 for files), never a traceback.

Commands
--------
``qvr check FILE... [--verbose]``
    Parse and check; prints ``FILE: ok`` and each program's signature
    (``--verbose``: and its algebra, its data names with their roles and
    the sets of latents written without one).
``qvr fmt FILE... [--check | --write]``
    Print the canonical form (comments kept); ``--check`` exits 1 when a
    file is not canonical; ``--write`` rewrites files in place.
``qvr graph FILE [--program NAME] [-o OUT] [--plan]``
    The dependency graph: DOT text on stdout or to ``OUT.dot``, a drawing
    with plates and marginalize blocks marked to ``OUT.png``/``.svg``/``.pdf``.
    With ``--plan``, the sum-product plan of a ``[marginalize=auto]``
    program instead: its summary, then its factor graph as DOT.
``qvr fit FILE --data DATA [--method auto|nuts|svi] [--device DEVICE] ...``
    Fit to data (JSON or CSV) by NUTS where the model is small enough to
    sample (SVI otherwise, or with an SVI option), say which method ran and
    why, print ArviZ's summary table and the convergence warnings,
    optionally write the fit (``--out results.nc``,
    ArviZ's NetCDF) and plots (``--plots DIR``).
``qvr predict RESULTS.nc [--data DATA] [--num N] [--out draws.nc]``
    Posterior predictive draws from a saved fit, summarized.
``qvr sample FILE [--num N] [--data DATA] [--out draws.json]``
    Prior predictive draws, summarized.
``qvr emit --stan FILE [-o model.stan] [--data DATA --data-out DATA.json]``
    An equivalent Stan program (see :mod:`quivers.emit`).

Examples
--------
>>> import io
>>> err = io.StringIO()
>>> main(["check", "no/such/file.qvr"], err=err), err.getvalue()
(1, 'qvr check: cannot read `no/such/file.qvr`: No such file or directory\\n')
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO

__all__ = ["main", "read_data", "format_error", "build_parser"]


# the keys of quivers.inference.GUIDES, written out so that `qvr --help`
# needs no torch (a test holds the two equal)
GUIDE_NAMES = ("normal", "delta", "mvn", "lowrank", "iaf", "maf", "nsf", "laplace")


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error in one line."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


class CLIError(Exception):
    """An error the command reports in one line and exits 1 for."""


# ---------------------------------------------------------------- errors


def format_error(err: Exception, path: str | Path, source: str | None = None) -> str:
    """A QuiversError as ``FILE:LINE:COL: message`` with the source line and
    a caret; an error without a location as ``FILE: message``.

    Examples
    --------
    >>> from quivers.dsl import loads
    >>> from quivers.errors import QuiversError
    >>> text = "object K : FinSet 2\\nprogram p : K -> K\\n    sample mu : KK <- Normal(0.0, 1.0)\\n"
    >>> try:
    ...     loads(text)
    ... except QuiversError as err:
    ...     print(format_error(err, "m.qvr", text))
    m.qvr:3:17: unknown object `KK` in `sample mu : KK`; objects in scope: K; did you mean `K`?
            sample mu : KK <- Normal(0.0, 1.0)
                        ^^
    """
    from quivers.errors import QuiversError, render_caret

    if not isinstance(err, QuiversError):
        return f"{path}: {err}"
    message = err.message + (f"; {err.hint}" if err.hint else "")
    if err.span is None:
        return f"{path}: {message}"
    head = f"{path}:{err.span.line}:{err.span.column}: {message}"
    text = source if source is not None else err.source
    caret = render_caret(text, err.span) if text is not None else ""
    return f"{head}\n{caret}" if caret else head


def _read(path: str | Path) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        reason = getattr(err, "strerror", None) or str(err)
        raise CLIError(f"cannot read `{path}`: {reason}") from None


def _load(path: str | Path) -> Any:
    from quivers.dsl import loads

    return loads(_read(path))


def _program(module: Any, name: str | None) -> Any:
    from quivers.errors import UnknownNameError

    if name is not None:
        if name not in module.programs:
            raise UnknownNameError(f"no program `{name}` in this module", name=name, candidates=module.programs)
        return module.programs[name]
    if module.export is None and len(module.programs) != 1:
        names = ", ".join(module.programs) or "none"
        raise CLIError(f"this module exports no program; pass --program NAME (programs: {names})")
    return module.morphism


# ---------------------------------------------------------------- data


def _number(text: str, column: str, row: int, path: Path) -> int | float:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise CLIError(f"{path}: column `{column}`, row {row}: `{text}` is not a number") from None


def read_data(path: str | Path) -> dict[str, Any]:
    """Observations from a JSON object of arrays or a CSV file.

    A CSV file has one column per site, named by the site; a column may be
    shorter than the others (trailing cells left empty), so sites on plates
    of different sizes fit in one file. Index maps are integer columns.

    Examples
    --------
    >>> import tempfile, os
    >>> with tempfile.TemporaryDirectory() as d:
    ...     f = os.path.join(d, "data.csv")
    ...     _ = open(f, "w").write("y,group\\n0.5,0\\n1.5,1\\n2.5,\\n")
    ...     read_data(f)
    {'y': [0.5, 1.5, 2.5], 'group': [0, 1]}
    """
    path = Path(path)
    text = _read(path)
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise CLIError(f"{path}:{err.lineno}:{err.colno}: not JSON: {err.msg}") from None
        if not isinstance(data, dict):
            raise CLIError(f"{path}: the data must be a JSON object mapping site names to arrays")
        return data
    if path.suffix.lower() == ".csv":
        rows = list(csv.reader(text.splitlines()))
        if not rows:
            raise CLIError(f"{path}: the CSV file is empty; its first row names the sites")
        header = [h.strip() for h in rows[0]]
        columns: dict[str, list] = {h: [] for h in header}
        ended: dict[str, int] = {}
        for r, row in enumerate(rows[1:], start=2):
            if len(row) > len(header):
                raise CLIError(f"{path}: row {r} has {len(row)} cells, the header {len(header)}")
            for c, name in enumerate(header):
                cell = row[c].strip() if c < len(row) else ""
                if not cell:
                    ended.setdefault(name, r)
                    continue
                if name in ended:
                    raise CLIError(f"{path}: column `{name}` has an empty cell at row {ended[name]} before a value at row {r}")
                columns[name].append(_number(cell, name, r, path))
        return columns
    raise CLIError(f"{path}: data must be a .json or .csv file")


def _first_non_number(value: Any, index: tuple[int, ...] = ()) -> tuple[int, ...]:
    """The shape of a JSON number or nested list of numbers; a CLIError
    naming the first entry that is no number, or the first row whose length
    differs from the first row's.

    Examples
    --------
    >>> _first_non_number([[1, 2], [3, 4.5]])
    (2, 2)
    >>> _first_non_number([1.0, None, "a"])
    Traceback (most recent call last):
    ...
    quivers.cli.CLIError: null at index (1,)
    >>> _first_non_number([[1, 2], [3]])
    Traceback (most recent call last):
    ...
    quivers.cli.CLIError: a row of length 1 at index (1,), where index (0,) is a row of length 2
    """
    if isinstance(value, (int, float)):  # JSON true and false are ints too
        return ()
    if not isinstance(value, list):
        what = "null" if value is None else f"the {'string' if isinstance(value, str) else 'object'} {json.dumps(value)[:40]}"
        raise CLIError(f"{what} at index {index}" if index else f"got {what}")
    shapes = [_first_non_number(v, (*index, i)) for i, v in enumerate(value)]
    for i, shape in enumerate(shapes[1:], start=1):
        if shape != shapes[0]:
            raise CLIError(f"{_entry(shape)} at index {(*index, i)}, where index {(*index, 0)} is {_entry(shapes[0])}")
    return (len(value), *(shapes[0] if shapes else ()))


def _entry(shape: tuple[int, ...]) -> str:
    return f"a row of length {shape[0]}" if shape else "a number"


def _observations(program: Any, data: dict[str, Any], path: str | Path) -> dict[str, Any]:
    """Data as tensors: integers for discrete sites and index maps, floats
    otherwise. A value that is no number or (nested, rectangular) array of
    numbers is an error naming the site and its first offending entry."""
    import torch

    out = {}
    for name, value in data.items():
        site = program.sites.get(name)
        try:
            _first_non_number(value)
        except CLIError as e:
            raise CLIError(f"{path}: `{name}` must be a number or an array of numbers; {e}") from None
        t = torch.as_tensor(value)
        if site is not None and (site.kind in ("index", "marginal") or site.discrete):
            out[name] = t
        else:
            out[name] = t.to(torch.get_default_dtype()) if not torch.is_floating_point(t) else t
    return out


# ---------------------------------------------------------------- commands


def _check(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from quivers.errors import QuiversError

    status = 0
    for path in args.files:
        try:
            text = _read(path)
        except CLIError as e:
            print(f"qvr check: {e}", file=err)
            status = 1
            continue
        try:
            from quivers.dsl import loads

            module = loads(text)
        except QuiversError as e:
            print(format_error(e, path, text), file=err)
            status = 1
            continue
        sigs = "; ".join(p.extra_repr() for p in module.programs.values())
        print(f"{path}: ok" + (f": {sigs}" if sigs else ""), file=out)
        if args.verbose:
            from quivers.dsl.axes import module_algebra
            from quivers.dsl.checker import check
            from quivers.dsl.printer import dump_set

            algebra = module_algebra(module.ast)
            print(f"  algebra {algebra.name} ({algebra.semiring.name}): blocks reduce by "
                  + (", ".join(algebra.reductions) or "nothing") + " (the first by default)", file=out)
            supports = check(module.ast, text).supports
            for name, roles in module.data.items():
                print(f"  program {name}: " + (f"{len(roles)} data name(s)" if roles else "no data"), file=out)
                for role in roles.values():
                    print(f"    {role.describe()}", file=out)
                for latent, support in supports.get(name, {}).items():
                    print(f"    marginalize {latent} : {dump_set(support)} (the last axis of its weights)", file=out)
    return status


def _fmt(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from quivers.dsl.format import format_source
    from quivers.errors import QuiversError

    status = 0
    for path in args.files:
        try:
            text = _read(path)
        except CLIError as e:
            print(f"qvr fmt: {e}", file=err)
            status = 1
            continue
        try:
            formatted = format_source(text)
        except QuiversError as e:
            print(format_error(e, path, text), file=err)
            status = 1
            continue
        if args.check:
            if formatted != text:
                print(f"{path}: not formatted (run `qvr fmt --write {path}`)", file=out)
                status = 1
        elif args.write:
            if formatted != text:
                Path(path).write_text(formatted, encoding="utf-8")
                print(f"{path}: reformatted", file=out)
        else:
            out.write(formatted)
    return status


def _graph(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from quivers.programs import to_dot

    program = _program(_load(args.file), args.program)
    if args.plan:
        return _plan(program, args, out)
    if args.output is None:
        out.write(to_dot(program) + "\n")
        return 0
    target = Path(args.output)
    suffix = target.suffix.lower()
    if suffix in (".dot", ".gv"):
        target.write_text(to_dot(program) + "\n", encoding="utf-8")
    elif suffix in (".png", ".svg", ".pdf"):
        from quivers.programs.draw import draw_program

        draw_program(program).savefig(target, dpi=120, bbox_inches="tight")
    else:
        raise CLIError(f"cannot write a graph as `{suffix or target.name}`; use .dot, .png, .svg or .pdf")
    print(f"wrote {target}", file=out)
    return 0


def _plan(program, args: argparse.Namespace, out: TextIO) -> int:
    """``qvr graph --plan``: the plan's summary as DOT comments, then its
    factor graph (to stdout, or to OUT.dot)."""
    if not hasattr(program, "plan"):
        raise CLIError(
            f"program `{program.name}` has no plan: only a program with [marginalize=auto] sums its discrete "
            "sample sites by one"
        )
    plan = program.plan()
    text = "".join(f"// {line}\n" for line in str(plan).splitlines()) + plan.to_dot() + "\n"
    if args.output is None:
        out.write(text)
        return 0
    target = Path(args.output)
    if target.suffix.lower() not in (".dot", ".gv"):
        raise CLIError(f"a plan is written as DOT text (.dot, .gv), not `{target.suffix or target.name}`")
    target.write_text(text, encoding="utf-8")
    print(f"wrote {target}", file=out)
    return 0


def _fit(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    import warnings

    from quivers.errors import ConvergenceWarning, QuiversError
    from quivers.inference import fit
    from quivers.inference.method import NUTS_OPTIONS, SVI_OPTIONS, check_options

    program = _program(_load(args.file), args.program)
    observations = _observations(program, read_data(args.data), args.data)
    device = _device(args.device)
    kwargs: dict[str, Any] = dict(method=args.method, seed=args.seed, progress_bar=not args.no_progress,
                                  num_samples=args.samples, num_chains=args.chains, device=device)
    options = dict(steps=args.steps, lr=args.lr, guide=args.guide, num_warmup=args.warmup, discrete=args.discrete,
                   dense_mass=args.dense_mass or None, chain_method=args.chain_method)
    given = [k for k, v in options.items() if v is not None]
    svi, nuts = set(given) & set(SVI_OPTIONS), set(given) & set(NUTS_OPTIONS)
    if args.discrete == "gibbs":  # Gibbs steps run inside NUTS
        svi, nuts = svi - {"discrete"}, nuts | {"discrete"}
    try:
        check_options(args.method, svi, nuts, cli=True)
    except QuiversError as e:
        raise CLIError(str(e)) from None
    kwargs.update({k: options[k] for k in given})
    if args.distributed is not None:
        if args.method != "svi":
            raise CLIError("--distributed runs SVI; add --method svi")
        kwargs["svi"] = _distributed_svi(args.distributed, args.seed)
    with warnings.catch_warnings():  # printed below, after the table they speak of
        warnings.simplefilter("ignore", ConvergenceWarning)
        result = _with_data(args.data, lambda: fit(program, observations, **kwargs))
    if args.distributed is not None:
        import torch.distributed as dist

        rank = dist.get_rank()
        dist.barrier()  # no rank tears the group down while another is still in it (gloo aborts)
        dist.destroy_process_group()
        if rank != 0:  # every rank holds the same fit: one report
            return 0
    draws = f"{result.num_chains} chains x {result.num_draws} draws"
    why = result.choice.note(cli=True)
    if result.method == "svi":
        print(f"{program.name}: SVI, {len(result.losses)} steps, final loss (-ELBO) {result.losses[-1]:.4g}; "
              f"{draws} from the guide ({why})", file=out)
    else:
        warmup = 1000 if args.warmup is None else args.warmup
        what = result.describe().split(",")[0]  # NUTS, or NUTS with Gibbs steps on the discrete latents
        print(f"{program.name}: {what}, {draws} after {warmup} warmup ({why})", file=out)
    _print_table(result.summary(), out)
    for name, post in _with_data(args.data, lambda: result.discrete_posterior(seed=args.seed)).items():
        counts = post.map.reshape(-1).bincount(minlength=post.probs.shape[-1]).tolist()
        site = program.sites[name]
        print(f"{name} : {site.values_in}, most probable value per row of {' * '.join(site.dims) or 'the program'}: "
              + ", ".join(f"{k}: {c}" for k, c in enumerate(counts)), file=out)
    for message in result.diagnostics:
        print(f"qvr fit: warning: {message}", file=err)
    if args.out is not None:
        if Path(args.out).suffix.lower() != ".nc":
            raise CLIError(f"cannot write the fit as `{Path(args.out).suffix or args.out}`; use .nc (NetCDF)")
        result.save(args.out)
        print(f"wrote {args.out}", file=out)
    if args.plots is not None:
        import matplotlib

        matplotlib.use("Agg")  # files only: never open a window
        from quivers.inference.plots import save_plots

        for path in save_plots(result, args.plots):
            print(f"wrote {path}", file=out)
    return 0


def _distributed_svi(plate: str, seed: int) -> Any:
    """A ``DistributedSVI`` factory on the process group that torchrun's
    environment (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``) describes."""
    import functools
    import os
    from datetime import timedelta

    import torch
    import torch.distributed as dist

    from quivers.distributed import DistributedSVI

    missing = [k for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing:
        raise CLIError(f"--distributed needs the processes torchrun starts ({', '.join(missing)} not set); "
                       "run `torchrun --nproc_per_node=2 -m quivers.cli fit ...`")
    if not dist.is_initialized():
        timeout = timedelta(seconds=float(os.environ.get("QUIVERS_DIST_TIMEOUT", "300")))
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo", timeout=timeout)
    return functools.partial(DistributedSVI, plate=plate, seed=seed)


def _device(name: str | None) -> Any:
    """``--device`` as a torch device, refused by name where torch cannot use it."""
    from quivers.errors import DeviceError
    from quivers.inference.devices import as_device

    try:
        return as_device(name, where="--device")
    except DeviceError as e:
        raise CLIError(str(e)) from None


def _print_table(table: Any, out: TextIO) -> None:
    """A pandas table in full, as ArviZ rounded it."""
    import pandas as pd

    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.max_rows", 500):
        print(table.to_string(), file=out)


def _predict(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from quivers.errors import CheckpointError
    from quivers.results import load_fit

    try:
        result = load_fit(args.fit)
    except CheckpointError as e:
        raise CLIError(str(e)) from None
    program = result.model
    data = None
    if args.data is not None:
        data = _observations(program, read_data(args.data), args.data)
    draws = _with_data(args.data or args.fit,
                       lambda: result.predictive(num_samples=args.num, observations=data, seed=args.seed))
    chains, num = next(iter(draws.values())).shape[:2]
    print(f"{program.name}: posterior predictive, {chains} chains x {num} draws", file=out)
    _draws_table(program, {k: v.reshape((-1,) + tuple(v.shape[2:])) for k, v in draws.items()}, out)
    if args.out is not None:
        from quivers.inference.diagnostics import to_inference_data

        dims = {n: s.dims for n, s in program.sites.items()}
        _write_draws(args.out, draws, lambda: to_inference_data(result.samples, posterior_predictive=draws, dims=dims))
        print(f"wrote {args.out}", file=out)
    return 0


def _write_draws(path: str, draws: dict[str, Any], idata: Any) -> None:
    """Draws as JSON, or as NetCDF the InferenceData ``idata()``."""
    target = Path(path)
    if target.suffix.lower() == ".json":
        target.write_text(json.dumps({k: v.tolist() for k, v in draws.items()}), encoding="utf-8")
    elif target.suffix.lower() == ".nc":
        idata().to_netcdf(str(target), engine="h5netcdf")
    else:
        raise CLIError(f"cannot write draws as `{target.suffix or target.name}`; use .json or .nc")


def _draws_table(program: Any, draws: dict[str, Any], out: TextIO) -> None:
    """One row per site of ``draws`` (leading draw axis): its kind, shape,
    mean, sd and central 90% interval over all draws and rows."""
    import torch

    rows = []
    for name, t in draws.items():
        kind = program.sites[name].kind if name in program.sites else "return"
        x = t.double()
        q = torch.quantile(x.reshape(-1)[:100000], torch.tensor([0.05, 0.95], dtype=torch.float64)).tolist()
        rows.append((name, kind, "x".join(map(str, t.shape[1:])) or "scalar",
                     f"{x.mean():.3f}", f"{x.std():.3f}" if x.numel() > 1 else "nan", f"{q[0]:.3f}", f"{q[1]:.3f}"))
    header = ("site", "kind", "shape", "mean", "sd", "5%", "95%")
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    for r in [header] + rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip(), file=out)


def _with_data(path: str | Path, run):
    """``run()``, its data errors prefixed by the data file and speaking of
    ``--data`` where the library speaks of the observations."""
    from quivers.errors import QuiversError
    from quivers.programs.data import data_named

    try:
        with data_named("--data"):
            return run()
    except QuiversError as e:
        if e.span is None:
            raise CLIError(f"{path}: {format_error(e, path).split(': ', 1)[1]}") from None
        # placed on the line that reads the data; say which file the data came from
        raise e.relocated(prefix=f"in `{path}`: ") from None


def _sample(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    import torch

    from quivers.inference import Predictive

    program = _program(_load(args.file), args.program)
    data = _observations(program, read_data(args.data), args.data) if args.data else {}
    torch.manual_seed(args.seed)
    draws = _with_data(args.data or args.file, lambda: Predictive(program, num_samples=args.num)(None, data))
    print(f"{program.name}: {args.num} prior predictive draws", file=out)
    _draws_table(program, draws, out)
    if args.out is not None:
        import arviz as az

        prior = {k: v.unsqueeze(0).numpy() for k, v in draws.items() if not k.startswith("_")}
        _write_draws(args.out, draws, lambda: az.from_dict(prior=prior))
        print(f"wrote {args.out}", file=out)
    return 0


def _run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    module = _load(args.file)
    values = []
    for text in args.args:
        try:
            values.append(json.loads(text))
        except json.JSONDecodeError:
            raise CLIError(f"argument `{text}` is not a number or a JSON list of numbers") from None
    run = module.run_computation(args.name, *values)
    value = run.value.tolist()
    if args.json:
        out.write(json.dumps({"computation": args.name, "value": value, "score": float(run.score)}) + "\n")
        return 0
    print(f"{args.name}: {value}", file=out)
    if float(run.score) != 0.0:
        print(f"score: {float(run.score)}", file=out)
    return 0


def _emit(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from quivers.emit import stan_data, to_stan

    program = _program(_load(args.file), args.program)
    given = [g for g in (args.given or "").split(",") if g]
    data = None
    if args.data is not None:
        data = _observations(program, read_data(args.data), args.data)
        given += [k for k in data if k in program.sites and program.sites[k].kind == "latent" and k not in given]
    code = to_stan(program, given=given)
    if args.output is None:
        out.write(code)
    else:
        Path(args.output).write_text(code, encoding="utf-8")
        print(f"wrote {args.output}", file=out)
    if args.data_out is not None:
        if data is None:
            raise CLIError("--data-out needs --data, the observations to convert")
        payload = _with_data(args.data, lambda: stan_data(program, data, given=given))
        Path(args.data_out).write_text(json.dumps(payload), encoding="utf-8")
        print(f"wrote {args.data_out}", file=out)
    return 0


# ---------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    """The ``qvr`` argument parser, one subcommand per command."""
    parser = _Parser(
        prog="qvr",
        description="Check, format, draw, fit, predict, sample, run and emit QVR programs, or work with them "
                    "interactively (repl) and in an editor (lsp) (quivers).",
        epilog="Run `qvr COMMAND --help` for the options of a command.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    parser.set_defaults(commands=sub.choices)

    p = sub.add_parser("check", help="parse and check QVR files",
                       description="Parse and check each file; errors are FILE:LINE:COL: message with the "
                                   "offending line. Exit status 1 when any file has an error.")
    p.add_argument("files", nargs="+", metavar="FILE", help="QVR files")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="also list each program's data names and their roles (declared or inferred)")
    p.set_defaults(run=_check)

    p = sub.add_parser("fmt", help="print QVR in canonical form",
                       description="Print each file in canonical form, comments kept.")
    p.add_argument("files", nargs="+", metavar="FILE", help="QVR files")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="exit 1 when a file is not in canonical form")
    mode.add_argument("--write", action="store_true", help="rewrite the files in place")
    p.set_defaults(run=_fmt)

    def program_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument("--program", metavar="NAME", help="the program to use (default: the exported one)")

    p = sub.add_parser("graph", help="draw a program's dependency graph",
                       description="The dependency graph: DOT on stdout, or written to OUT (.dot, or a "
                                   "drawing with plates and marginalize blocks marked: .png, .svg, .pdf).")
    p.add_argument("file", metavar="FILE", help="a QVR file")
    program_arg(p)
    p.add_argument("-o", "--output", metavar="OUT", help="where to write the graph")
    p.add_argument("--plan", action="store_true",
                   help="draw the sum-product plan of a [marginalize=auto] program instead")
    p.set_defaults(run=_graph)

    p = sub.add_parser("fit", help="fit a program to data (SVI or NUTS)",
                       description="Fit the program to data and print ArviZ's summary table (mean, sd, HDI, "
                                   "MCSE, ESS, R-hat; the same for SVI and NUTS) and any convergence warnings. "
                                   "DATA is a JSON object of arrays or a CSV file with one column per site "
                                   "(index maps as integer columns).")
    p.add_argument("file", metavar="FILE", help="a QVR file")
    program_arg(p)
    p.add_argument("--data", required=True, metavar="DATA", help="observations: data.json or data.csv")
    p.add_argument("--method", choices=("auto", "nuts", "svi"), default="auto",
                   help="inference method (default auto: NUTS where the model is small enough to sample and no "
                        "SVI option is given, SVI otherwise)")
    p.add_argument("--steps", type=_positive, default=None, metavar="N", help="SVI steps (default 3000)")
    p.add_argument("--lr", type=float, default=None, help="SVI learning rate (default 0.01)")
    p.add_argument("--guide", choices=GUIDE_NAMES, default=None,
                   help="SVI guide (default normal): mean-field, point mass, full-rank, low-rank, the flows iaf, "
                        "maf and nsf, or laplace (the normal at the mode)")
    p.add_argument("--discrete", choices=("gibbs", "score", "relaxed"), default=None,
                   help="sampled discrete latents (those no plan or marginalize block sums): gibbs draws them by "
                        "Gibbs steps between NUTS transitions; score or relaxed are SVI's estimators")
    p.add_argument("--samples", type=_positive, default=1000, metavar="S",
                   help="posterior draws (per chain for NUTS; default 1000)")
    p.add_argument("--warmup", type=_positive, default=None, metavar="W", help="NUTS warmup (default 1000)")
    p.add_argument("--chains", type=_positive, default=4, metavar="C",
                   help="NUTS chains; for SVI, the chains the guide's draws are laid out in (default 4)")
    p.add_argument("--dense-mass", action="store_true",
                   help="NUTS adapts a dense mass matrix (for strongly correlated latents) instead of a diagonal one")
    p.add_argument("--chain-method", choices=("vectorized", "parallel"), default=None,
                   help="NUTS chains as one batch (vectorized, the default) or a process each (parallel)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--out", metavar="RESULTS.nc",
                   help="write the fit: ArviZ InferenceData (NetCDF) that `qvr predict` and load_fit read")
    p.add_argument("--plots", metavar="DIR", help="write trace, posterior, pair and ppc PNGs to DIR")
    p.add_argument("--device", metavar="DEVICE", default=None,
                   help="where to run: cpu, cuda, cuda:1, ... (default: the CPU)")
    p.add_argument("--distributed", metavar="PLATE", default=None,
                   help="SVI data-parallel over the processes torchrun started, each scoring its shard of PLATE "
                        "(whole groups of a grouped block); rank 0 prints and writes")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=_fit)

    p = sub.add_parser("predict", help="posterior predictive draws from a saved fit",
                       description="Draw every observed site afresh under each posterior draw of a fit saved "
                                   "by `qvr fit --out RESULTS.nc`, and summarize the draws; --data gives new "
                                   "index maps and covariates (new rows) in place of the fit's.")
    p.add_argument("fit", metavar="RESULTS.nc", help="a fit saved by `qvr fit --out`")
    p.add_argument("--data", metavar="DATA", help="index maps and covariates to predict at (default the fit's)")
    p.add_argument("--num", type=_positive, metavar="N", help="draws per chain (default all)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--out", metavar="DRAWS", help="write the draws (.json, or .nc with the posterior)")
    p.set_defaults(run=_predict)

    p = sub.add_parser("sample", help="draw from the prior predictive",
                       description="Prior predictive draws of every site, summarized; index maps come from --data.")
    p.add_argument("file", metavar="FILE", help="a QVR file")
    program_arg(p)
    p.add_argument("--num", type=_positive, default=100, metavar="N", help="number of draws (default 100)")
    p.add_argument("--data", metavar="DATA", help="values to condition on (index maps, covariates)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--out", metavar="DRAWS", help="write the draws (.json or .nc)")
    p.set_defaults(run=_sample)

    p = sub.add_parser("run", help="run a computation (a define with parameters)",
                       description="Run the computation NAME of FILE on its arguments, each a number or a JSON "
                                   "list (a tensor); print its value, and its score when it scores.")
    p.add_argument("file", metavar="FILE", help="a QVR file")
    p.add_argument("name", metavar="NAME", help="the computation")
    p.add_argument("args", nargs="*", metavar="ARG", help="its arguments, in order")
    p.add_argument("--json", action="store_true", help="print {computation, value, score} as JSON")
    p.set_defaults(run=_run)

    p = sub.add_parser("emit", help="write an equivalent program in another language",
                       description="Write a Stan program with the same posterior, to cross-check in Stan.")
    p.add_argument("--stan", action="store_true", required=True, help="emit Stan (the one target)")
    p.add_argument("file", metavar="FILE", help="a QVR file")
    program_arg(p)
    p.add_argument("-o", "--output", metavar="OUT", help="write the Stan program here (default stdout)")
    p.add_argument("--given", metavar="A,B", help="sample sites supplied as data")
    p.add_argument("--data", metavar="DATA", help="observations; their sample sites become Stan data")
    p.add_argument("--data-out", metavar="JSON", help="write the Stan data dict converted from --data")
    p.set_defaults(run=_emit)

    p = sub.add_parser("repl", help="an interactive QVR session",
                       description="Enter statements one at a time (a program's body ends with an empty line) "
                                   "and commands: :type NAME, :graph PROGRAM, :sample PROGRAM [N], :load FILE, "
                                   ":source, :reset, :help, :quit.")
    p.set_defaults(run=_repl)

    p = sub.add_parser("lsp", help="the QVR language server (stdio)",
                       description="Serve the Language Server Protocol over stdin and stdout: diagnostics, hover, "
                                   "go-to-definition, completion, formatting and symbols. Needs "
                                   "`pip install \"quivers[editor]\"`.")
    p.set_defaults(run=_lsp)
    return parser


def _repl(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from quivers.editor.repl import run

    return run(sys.stdin, out)


def _lsp(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from quivers.editor.lsp import main as serve

    return serve()


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"`{text}` is not a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"`{text}` must be positive")
    return value


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run ``qvr`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    from quivers.errors import QuiversError

    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    parser = build_parser()
    try:
        old = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = out, err  # argparse prints help and errors there
        try:
            args, extra = parser.parse_known_args(argv)
            if extra:
                args.commands[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
        finally:
            sys.stdout, sys.stderr = old
    except SystemExit as e:
        return int(e.code or 0)
    command = f"qvr {args.command}"
    try:
        return args.run(args, out, err)
    except CLIError as e:
        print(f"{command}: {e}", file=err)
    except QuiversError as e:
        path = getattr(args, "file", None) or ""
        source = None
        if e.span is not None and path:
            try:
                source = Path(path).read_text(encoding="utf-8")
            except OSError:
                source = None
        print(format_error(e, path, source), file=err)
    except OSError as e:
        print(f"{command}: {e.strerror or e}: `{e.filename}`" if e.filename else f"{command}: {e}", file=err)
    except KeyboardInterrupt:
        print(f"{command}: interrupted", file=err)
        return 130
    return 1


if __name__ == "__main__":
    sys.exit(main())
