"""The command line: ``kernel-recovery {demo,recover,analyze,simulate}`` (also ``python -m kernel_recovery``).

Exit codes: 0 success, 1 failure (unreadable files, data the library refuses, a solver that did not
converge), 2 usage errors (bad arguments or options).  Errors are one line on stderr, without a traceback.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import json
import os
import pathlib
import sys
import tempfile
import time
import warnings
from typing import TYPE_CHECKING, Any, Literal, NoReturn, TextIO, overload

import numpy as np

from . import __version__, datasets, solvers
from .api import analyze, recover_kernel
from .model.arrays import jsonable
from .model.conv import conv1d
from .model.progress import progress_bar, show_progress
from .plotting import plot_kernel, plot_loss, plot_residuals, plot_result, plot_spectrum

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .datasets import Example
    from .diagnostics.determinacy import DeterminacyReport
    from .model.result import KernelResult

PROG = "kernel-recovery"
#: Where ``demo`` saves its figure unless ``--plot`` says otherwise (the temp dir, so no stray files in the cwd).
DEFAULT_DEMO_FIGURE = os.path.join(tempfile.gettempdir(), "kernel_recovery_demo.png")
DATA_SUFFIXES = (".npy", ".npz", ".csv", ".txt")
OUTPUT_SUFFIXES = (".npy", ".npz", ".json")


class UsageError(Exception):
    """The command line is wrong (exit code 2)."""


class InputError(Exception):
    """A file could not be read or written, or the data were refused (exit code 1)."""


# ----------------------------------------------------------------------------------------------
# Argument types
# ----------------------------------------------------------------------------------------------


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _padding(text: str) -> str | tuple[int, int]:
    """'valid', 'same', 'causal', 'full', an int, or 'LEFT,RIGHT'."""
    t = text.strip().lower()
    if t in ("valid", "same", "causal", "full"):
        return t
    try:
        parts = [int(p) for p in t.split(",")]
    except ValueError:
        parts = []
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2 or min(parts) < 0:
        raise argparse.ArgumentTypeError(
            f"expected valid, same, causal, full, a non-negative int or LEFT,RIGHT, got {text!r}"
        )
    return (parts[0], parts[1])


def parse_value(text: str) -> Any:
    """A method option's value: true/false, none, an int, a float, else the string itself.

    Examples
    --------
    >>> [parse_value(v) for v in ("0.1", "300", "true", "None", "mae", "1e-6")]
    [0.1, 300, True, None, 'mae', 1e-06]
    """
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return text


def parse_options(items: list[str] | None) -> dict[str, Any]:
    """``["ridge=0.1", "max_iter=300"]`` -> ``{"ridge": 0.1, "max_iter": 300}``."""
    options: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key.isidentifier():
            raise UsageError(f"--option expects NAME=VALUE (e.g. --option ridge=0.1), got {item!r}")
        options[key] = parse_value(value)
    return options


# ----------------------------------------------------------------------------------------------
# Files
# ----------------------------------------------------------------------------------------------


def _suffix(path: str, allowed: tuple[str, ...], what: str) -> str:
    suffix = pathlib.Path(path).suffix.lower()
    if suffix not in allowed:
        raise UsageError(f"{what} {path!r} must end in {', '.join(allowed)}")
    return suffix


def _first_line(exc: BaseException | str) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _numeric_row(path: str, delimiter: str | None) -> bool:
    """Whether the first line of a text file is all numbers (so it is data, not a header)."""
    with open(path) as f:
        fields = f.readline().strip().split(delimiter)
    try:
        [float(v) for v in fields]
    except ValueError:
        return False
    return True


def load_array(path: str, key: str | None, default_key: str, layout: str) -> np.ndarray:
    """Read one array from .npy, .npz (``key``) or .csv/.txt (rows are time steps, columns channels).

    Never unpickles.  CSV/text data are ``(length, channels)`` and are transposed for ``layout="ncw"``.
    """
    suffix = _suffix(path, DATA_SUFFIXES, "input file")
    if not os.path.isfile(path):
        raise InputError(f"no such file: {path}")
    magic = {".npy": b"\x93NUMPY", ".npz": b"PK"}.get(suffix)
    if magic is not None:
        with open(path, "rb") as f:
            if f.read(len(magic)) != magic:
                kind = "NumPy .npy" if suffix == ".npy" else "NumPy .npz (zip)"
                raise InputError(f"could not read {path}: not a {kind} file")
    try:
        if suffix == ".npy":
            arr = np.load(path, allow_pickle=False)
        elif suffix == ".npz":
            with np.load(path, allow_pickle=False) as npz:
                names = list(npz.files)
                name = key if key is not None else (default_key if default_key in names else None)
                if name is None and len(names) == 1:
                    name = names[0]
                if name is None or name not in names:
                    wanted = f"key {key!r}" if key is not None else f"key {default_key!r}"
                    raise InputError(f"{path} has no {wanted}; its arrays are: {', '.join(names) or 'none'}")
                arr = npz[name]
        else:
            delimiter = "," if suffix == ".csv" else None
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "input contained no data": refused below
                try:
                    arr = np.loadtxt(path, delimiter=delimiter, ndmin=2)
                except ValueError:  # a header row, but only if the first row is not numbers (else: malformed)
                    if _numeric_row(path, delimiter):
                        raise
                    arr = np.loadtxt(path, delimiter=delimiter, ndmin=2, skiprows=1)
            if arr.size == 0:
                raise InputError(f"{path} holds no data")
            if layout == "ncw":
                arr = arr.T
    except InputError:
        raise
    except Exception as exc:  # numpy raises many types for malformed files
        raise InputError(f"could not read {path}: {_first_line(exc)}") from None
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise InputError(f"{path} does not hold a numeric array (dtype {arr.dtype})")
    return arr


def save_result(res: KernelResult, path: str) -> list[str]:
    """Write the kernel (.npy), kernel/bias/stderr (.npz) or everything (.json); return what was written."""
    suffix = _suffix(path, OUTPUT_SUFFIXES, "output file")
    try:
        if suffix == ".npy":
            np.save(path, res.kernel)
            return ["kernel"]
        if suffix == ".npz":
            arrays: dict[str, Any] = {"kernel": res.kernel}  # (dict[str, ndarray] clashes with allow_pickle)
            for name in ("bias", "stderr", "bias_stderr"):
                if getattr(res, name) is not None:
                    arrays[name] = getattr(res, name)
            np.savez(path, **arrays)
            return list(arrays)
        with open(path, "w") as f:
            json.dump(res.to_dict(), f, indent=1, allow_nan=False)
        return ["kernel", "bias", "stderr", "report", "config"]
    except OSError as exc:
        raise InputError(f"could not write {path}: {exc.strerror or _first_line(exc)}") from None


def _save_figure(fig: Figure, path: str) -> None:
    import matplotlib.pyplot as plt

    try:
        fig.savefig(path, dpi=110)
    except (OSError, ValueError) as exc:
        raise InputError(f"could not write the figure {path}: {_first_line(exc)}") from None
    finally:
        plt.close(fig)


def _need_matplotlib(args: argparse.Namespace) -> None:
    """Fail before the work, not after, when --plot cannot be honoured."""
    if getattr(args, "plot", None) is None:
        return
    try:
        import matplotlib.pyplot  # noqa: F401
    except ImportError:
        raise InputError("--plot needs matplotlib: pip install matplotlib (or 'kernel_recovery[plot]')") from None


def _progress(quiet: bool) -> bool | None:
    """The ``progress`` setting of a command: none with ``--quiet``, else when stderr is a terminal."""
    return False if quiet else None


# ----------------------------------------------------------------------------------------------
# demo
# ----------------------------------------------------------------------------------------------


def run_demo(
    out: TextIO | None = None,
    *,
    plot: str | bool | None = None,
    quiet: bool = False,
    methods: list[str] | None = None,
) -> int:
    """Solve the built-in examples with every available method and print a table, then save a figure.

    Parameters
    ----------
    out : text stream, optional
        Where the table goes (default ``sys.stdout``).
    plot : str, bool or None
        Path of the PNG figure; None or True: :data:`DEFAULT_DEMO_FIGURE`; False: no figure.  Without
        matplotlib the figure is skipped, and the table printed all the same.
    quiet : bool
        No progress bar.
    methods : list of str, optional
        The methods to compare (default: every registered method).

    Returns
    -------
    int
        The exit code, 0.
    """
    out = sys.stdout if out is None else out
    examples = datasets.all_examples()
    methods = list(solvers.METHODS) if methods is None else list(methods)
    results = _demo_table(examples, methods, out, quiet)
    print("\nkernel recovered from the tutorial's 2-channel example (lstsq):", file=out)
    ex = datasets.tutorial_examples()[1]
    k = recover_kernel(ex.x, ex.y, ex.kernel_size).kernel[:, :, 0]
    print(np.array2string(np.where(np.abs(k) < 1e-12, 0.0, k), precision=6), file=out)
    print("\nwhat analyze() says about the underdetermined example:", file=out)
    under = datasets.underdetermined()
    under_report = analyze(under.x, under.y, under.kernel_size, warn=False)
    print(under_report, file=out)
    if plot is False:
        return 0
    path = DEFAULT_DEMO_FIGURE if plot is None or plot is True else str(plot)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("\nfigure skipped: matplotlib is not installed (pip install 'kernel_recovery[plot]').", file=out)
        return 0
    noisy = datasets.noisy_multichannel()
    fig = _demo_figure(noisy, results, under_report)
    _save_figure(fig, path)
    print(f"\nfigure saved to {path}", file=out)
    return 0


def _demo_table(
    examples: list[Example], methods: list[str], out: TextIO, quiet: bool
) -> dict[tuple[str, str], KernelResult]:
    """Solve every example with every method, a row each (timed, after an untimed warm-up); return the fits."""
    header = (
        f"{'example':<20} {'method':<7} {'status':<16} {'eq/unk':>7} {'max |err|':>10} {'resid rms':>10} "
        f"{'time':>9}  solver"
    )
    print(header, file=out)
    print("-" * len(header), file=out)
    results: dict[tuple[str, str], KernelResult] = {}
    for method in methods:  # untimed warm-up: the first call of a method pays for its imports
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                recover_kernel(examples[0].x, examples[0].y, examples[0].kernel_size, method=method)
        except Exception:  # reported in the table below
            pass
    with progress_bar(_progress(quiet), total=len(examples) * len(methods), desc="demo", unit="fit") as bar:
        for ex in examples:
            for method in methods:
                bar.set_postfix_str(f"{ex.name}, {method}")
                t0 = time.perf_counter()
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        res = recover_kernel(ex.x, ex.y, ex.kernel_size, method=method, **ex.settings)
                except Exception as exc:  # one method failing must not stop the demo
                    bar.update()
                    bar.write(f"{ex.name:<20} {method:<7} error: {_first_line(exc)}", file=out)
                    continue
                elapsed = time.perf_counter() - t0
                bar.update()
                results[ex.name, method] = res
                bar.write(_demo_row(ex, method, res, elapsed), file=out)  # (tqdm's write redraws the bar after it)
    return results


def _demo_row(ex: Example, method: str, res: KernelResult, elapsed: float) -> str:
    err = np.max(np.abs(res.kernel - ex.kernel)) if ex.kernel is not None else float("nan")
    rep = res.report
    solver = "ok" if res.success else "not converged"
    return (
        f"{ex.name:<20} {method:<7} {rep.status:<16} {rep.equations[0]:>3}/{rep.unknowns[0]:<3} "
        f"{err:>10.2e} {res.residual_rms:>10.2e} {elapsed * 1e3:>7.1f}ms  {solver}"
    )


def _demo_figure(
    noisy: Example, results: dict[tuple[str, str], KernelResult], under_report: DeterminacyReport
) -> Figure:
    """Kernel of the noisy example against the truth; its residuals; adam's loss; both design spectra."""
    import matplotlib.pyplot as plt

    res = results.get((noisy.name, "lstsq"))
    if res is None:
        res = recover_kernel(noisy.x, noisy.y, noisy.kernel_size, **noisy.settings)
    iterative = next(
        (
            r
            for (name, _), r in results.items()
            if name == noisy.name and r.loss_history is not None and len(r.loss_history)
        ),
        None,
    )
    lower = 3 if iterative is not None else 2
    fig = plt.figure(figsize=(13.0, 9.0), layout="constrained")
    (top,), (bottom,) = fig.subfigures(2, 1, squeeze=False, height_ratios=[5.6, 3.4])
    plot_kernel(res, noisy.kernel, fig=top)
    top.suptitle(f"{noisy.name} ({noisy.description}): recovered by {res.method} vs true kernel", fontsize=11)
    axes = bottom.subplots(1, lower)
    plot_residuals(res, noisy.x, noisy.y, ax=axes[0])
    if iterative is not None:
        plot_loss(iterative, ax=axes[1])
    plot_spectrum(res.report, ax=axes[-1], label=noisy.name)
    plot_spectrum(under_report, ax=axes[-1], label="underdetermined")
    return fig


# ----------------------------------------------------------------------------------------------
# recover / analyze / simulate
# ----------------------------------------------------------------------------------------------


def _conv_settings(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "stride": args.stride,
        "padding": args.padding,
        "dilation": args.dilation,
        "groups": args.groups,
        "use_bias": args.bias,
        "layout": args.layout,
        "flip": args.flip,
    }


@overload
def _load_xy(args: argparse.Namespace, need_y: Literal[True]) -> tuple[np.ndarray, np.ndarray]: ...
@overload
def _load_xy(args: argparse.Namespace, need_y: bool) -> tuple[np.ndarray, np.ndarray | None]: ...
def _load_xy(args: argparse.Namespace, need_y: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """X, and Y from its own file or, when Y is omitted, from X's .npz (key 'y' or --y-key)."""
    x = load_array(args.x, args.x_key, "x", args.layout)
    if args.y is not None:
        return x, load_array(args.y, args.y_key, "y", args.layout)
    key = args.y_key or "y"
    if pathlib.Path(args.x).suffix.lower() == ".npz":
        with np.load(args.x, allow_pickle=False) as npz:
            if key in npz.files:
                return x, load_array(args.x, key, "y", args.layout)
    if need_y:
        raise UsageError(f"give the output file Y (or an X .npz holding an array {key!r})")
    return x, None


def cmd_recover(args: argparse.Namespace, out: TextIO) -> int:
    options = parse_options(args.option)
    name, solver = solvers.resolve(args.method)
    try:
        solvers.check_options(name, solver, options)
    except TypeError as exc:
        raise UsageError(str(exc)) from None
    if "progress" in inspect.signature(solver).parameters and "progress" not in options:
        options["progress"] = show_progress(_progress(args.quiet)) and importlib.util.find_spec("tqdm") is not None
    if args.output is not None:
        _suffix(args.output, OUTPUT_SUFFIXES, "output file")
    _need_matplotlib(args)
    x, y = _load_xy(args, need_y=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = recover_kernel(x, y, args.kernel_size, method=name, **_conv_settings(args), **options)
    for w in caught:
        print(f"{PROG}: warning: {_first_line(w.message)}", file=sys.stderr)
    written = save_result(res, args.output) if args.output is not None else []
    truth, error = None, None
    if args.true_kernel is not None:
        truth = load_array(args.true_kernel, None, "kernel", "nwc").astype(np.float64)
        truth = truth.reshape(-1, 1, 1) if truth.ndim == 1 else truth
        if truth.shape != res.kernel.shape:
            raise InputError(f"--true-kernel has shape {truth.shape}, the recovered kernel {res.kernel.shape}")
        error = float(np.max(np.abs(res.kernel - truth)))
    if args.plot is not None:
        _save_figure(plot_result(res, x, y, true_kernel=truth), args.plot)
    if args.json:
        summary = res.to_dict()
        if error is not None:
            summary["max_abs_error"] = jsonable(error)  # NaN when the solver failed: null
        print(json.dumps(summary, allow_nan=False), file=out)
    elif not args.quiet:
        print(res, file=out)
        print(res.report, file=out)
        if error is not None:
            print(f"max |kernel - true kernel| = {error:.3g}", file=out)
        if written:
            print(f"wrote {', '.join(written)} to {args.output}", file=out)
        if args.plot is not None:
            print(f"figure saved to {args.plot}", file=out)
    if not res.success:
        print(f"{PROG}: error: the solver did not succeed: {res.message}", file=sys.stderr)
        return 1
    return 0


def cmd_analyze(args: argparse.Namespace, out: TextIO) -> int:
    if args.output is not None:
        _suffix(args.output, (".json",), "output file")
    _need_matplotlib(args)
    x, y = _load_xy(args, need_y=False)
    settings = _conv_settings(args)
    rep = analyze(x, y, args.kernel_size, out_channels=args.out_channels if y is None else None, warn=False, **settings)
    summary = rep.to_dict()
    if args.output is not None:
        try:
            with open(args.output, "w") as f:
                json.dump(summary, f, indent=1, allow_nan=False)
        except OSError as exc:
            raise InputError(f"could not write {args.output}: {exc.strerror or _first_line(exc)}") from None
    if args.plot is not None:
        _save_figure(plot_spectrum(rep), args.plot)
    if args.json:
        print(json.dumps(summary, allow_nan=False), file=out)
    elif not args.quiet:
        print(rep, file=out)
        if args.output is not None:
            print(f"wrote the report to {args.output}", file=out)
        if args.plot is not None:
            print(f"figure saved to {args.plot}", file=out)
    return 0


def cmd_simulate(args: argparse.Namespace, out: TextIO) -> int:
    suffix = _suffix(args.output, DATA_SUFFIXES, "output file")
    if args.in_channels % args.groups or args.out_channels % args.groups:
        raise UsageError(
            f"--in-channels ({args.in_channels}) and --out-channels ({args.out_channels}) must be divisible by "
            f"--groups ({args.groups})"
        )
    if suffix in (".csv", ".txt") and args.batch != 1:
        raise UsageError(f"{suffix} files hold one sequence; use .npy or .npz for --batch {args.batch}")
    rng = np.random.default_rng(args.seed)
    kernel = rng.standard_normal((args.kernel_size, args.in_channels // args.groups, args.out_channels))
    bias = rng.standard_normal(args.out_channels) if args.bias else None
    shape = (args.length, args.in_channels) if args.layout == "nwc" else (args.in_channels, args.length)
    x = rng.standard_normal((args.batch, *shape) if args.batch > 1 else shape)
    settings = _conv_settings(args)
    settings.pop("use_bias")
    y = np.asarray(conv1d(x, kernel, bias, **settings))
    if args.noise > 0:
        y = y + args.noise * rng.standard_normal(y.shape)
    try:
        if suffix == ".npz":
            arrays = {"x": x, "y": y, "kernel": kernel, **({"bias": bias} if bias is not None else {})}
            np.savez(args.output, **arrays)
            written = [f"{', '.join(arrays)} to {args.output}"]
        else:
            stem = str(pathlib.Path(args.output).with_suffix(""))
            paths = {"x": f"{stem}_x{suffix}", "y": f"{stem}_y{suffix}", "kernel": f"{stem}_kernel.npy"}
            for name, arr in (("x", x), ("y", y)):
                if suffix == ".npy":
                    np.save(paths[name], arr)
                else:
                    table = arr if args.layout == "nwc" else arr.T  # text files: rows are time steps
                    np.savetxt(paths[name], table, delimiter="," if suffix == ".csv" else " ", fmt="%.17g")
            np.save(paths["kernel"], kernel)
            if bias is not None:
                paths["bias"] = f"{stem}_bias.npy"
                np.save(paths["bias"], bias)
            written = [f"{name} to {p}" for name, p in paths.items()]
    except OSError as exc:
        raise InputError(f"could not write {args.output}: {exc.strerror or _first_line(exc)}") from None
    if args.json:
        print(json.dumps(jsonable({"written": written, "kernel": kernel, "bias": bias}), allow_nan=False), file=out)
    elif not args.quiet:
        print(
            f"simulated y = conv1d(x, kernel{', bias' if bias is not None else ''}) "
            f"with x {x.shape}, y {y.shape}, kernel {kernel.shape}, noise {args.noise:g}",
            file=out,
        )
        for line in written:
            print(f"wrote {line}", file=out)
    return 0


# ----------------------------------------------------------------------------------------------
# The parser and main
# ----------------------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit code 2 (argparse would print the usage first)
        raise UsageError(f"{message} (see {self.prog} --help)")


def _add_conv_options(p: argparse.ArgumentParser, kernel_required: bool = True) -> None:
    g = p.add_argument_group("convolution (as in Keras Conv1D / PyTorch nn.Conv1d)")
    g.add_argument(
        "-k",
        "--kernel-size",
        type=_positive_int,
        required=kernel_required,
        default=None if kernel_required else 5,
        help="number of taps" + ("" if kernel_required else " (default 5)"),
    )
    g.add_argument("--stride", type=_positive_int, default=1, help="default 1")
    g.add_argument(
        "--padding", type=_padding, default="valid", help="valid (default), same, causal, full, an int, or LEFT,RIGHT"
    )
    g.add_argument("--dilation", type=_positive_int, default=1, help="default 1")
    g.add_argument("--groups", type=_positive_int, default=1, help="default 1")
    g.add_argument("--bias", action="store_true", help="the layer has a bias (use_bias=True)")
    g.add_argument(
        "--layout",
        choices=("nwc", "ncw"),
        default="nwc",
        help="nwc: (batch, length, channels), Keras (default); ncw: (batch, channels, length), PyTorch. "
        ".csv/.txt files are always rows=time steps, columns=channels",
    )
    g.add_argument(
        "--flip", action="store_true", help="true convolution (scipy.signal.convolve) instead of cross-correlation"
    )


def _add_output_options(p: argparse.ArgumentParser, plot_help: str) -> None:
    p.add_argument("--json", action="store_true", help="print a JSON summary instead of the human one")
    p.add_argument("--plot", metavar="FILE", help=plot_help)
    p.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no summary, no progress bars (errors and warnings are still printed)",
    )


def _add_inputs(p: argparse.ArgumentParser, y_help: str) -> None:
    p.add_argument("x", metavar="X", help="input file: .npy, .npz, .csv or .txt (csv/txt: rows time, columns channels)")
    p.add_argument("y", metavar="Y", nargs="?", help=y_help)
    p.add_argument("--x-key", help="array name in a .npz X (default 'x', or its only array)")
    p.add_argument("--y-key", help="array name in a .npz Y (default 'y', or its only array)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Recover the kernel (and bias) of a 1-D convolution from its inputs and outputs.",
        epilog="exit codes: 0 success, 1 failure, 2 usage error",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="{demo,recover,analyze,simulate}", parser_class=_Parser
    )
    _add_demo(sub)
    _add_recover(sub)
    _add_analyze(sub)
    _add_simulate(sub)
    return parser


def _add_demo(sub: Any) -> None:
    d = sub.add_parser(
        "demo",
        help="solve the built-in examples with every method, print a table, save a figure",
        description="The classic tutorial examples, a noisy multichannel recording and an "
        "underdetermined case, solved by every method side by side.",
    )
    d.add_argument("--plot", metavar="FILE", help=f"where to save the PNG figure (default {DEFAULT_DEMO_FIGURE})")
    d.add_argument("--no-plot", action="store_true", help="do not draw the figure")
    d.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def _add_recover(sub: Any) -> None:
    r = sub.add_parser(
        "recover",
        help="recover a kernel from input and output files",
        description="Recover the kernel from X and Y.  Method options: --option NAME=VALUE.",
    )
    _add_inputs(r, "output file (may be omitted when X is a .npz holding both 'x' and 'y')")
    _add_conv_options(r)
    r.add_argument("-m", "--method", choices=list(solvers.METHODS), default="lstsq", help="default lstsq")
    r.add_argument(
        "-O",
        "--option",
        action="append",
        metavar="NAME=VALUE",
        help="a method option, repeatable: e.g. --option ridge=0.1, --option max_iter=500 (numbers, "
        "true/false and none are parsed)",
    )
    r.add_argument(
        "-o", "--output", metavar="FILE", help=".npy (kernel), .npz (kernel, bias, stderr) or .json (everything)"
    )
    r.add_argument(
        "--true-kernel",
        metavar="FILE",
        help="the known kernel (.npy, or .npz key 'kernel', as written by simulate), to report the error and draw it",
    )
    _add_output_options(r, "save a PNG of the kernel, residuals and spectrum")


def _add_analyze(sub: Any) -> None:
    a = sub.add_parser("analyze", help="say whether the data determine the kernel (before solving)")
    _add_inputs(a, "output file (optional: without it, only X and the settings decide)")
    _add_conv_options(a)
    a.add_argument(
        "--out-channels",
        type=_positive_int,
        default=None,
        help="number of output channels when Y is not given (default: groups)",
    )
    a.add_argument("-o", "--output", metavar="FILE", help="write the report as .json")
    _add_output_options(a, "save a PNG of the design's singular values")


def _add_simulate(sub: Any) -> None:
    s = sub.add_parser(
        "simulate",
        help="write a synthetic x/y pair with a known random kernel",
        description="Write x, y and the kernel: one .npz (keys x, y, kernel, bias), or for "
        ".npy/.csv/.txt the files STEM_x, STEM_y, STEM_kernel.npy (and STEM_bias.npy).",
    )
    s.add_argument("output", metavar="OUTPUT", help="e.g. data.npz, or data.csv for data_x.csv and data_y.csv")
    _add_conv_options(s, kernel_required=False)
    s.add_argument("--length", type=_positive_int, default=1000, help="samples per sequence (default 1000)")
    s.add_argument("--batch", type=_positive_int, default=1, help="number of sequences (default 1)")
    s.add_argument("--in-channels", type=_positive_int, default=1, help="default 1")
    s.add_argument("--out-channels", type=_positive_int, default=1, help="default 1")
    s.add_argument("--noise", type=float, default=0.0, help="standard deviation of Gaussian noise added to y")
    s.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    s.add_argument("--json", action="store_true", help="print a JSON summary")
    s.add_argument("-q", "--quiet", action="store_true", help="print nothing")


def main(argv: list[str] | None = None, out: TextIO | None = None) -> int:
    """Run the command line; return the exit code (0 success, 1 failure, 2 usage error)."""
    out = sys.stdout if out is None else out
    try:
        args = build_parser().parse_args(argv)
        if args.command == "demo":
            return run_demo(out, plot=False if args.no_plot else args.plot, quiet=args.quiet)
        command = {"recover": cmd_recover, "analyze": cmd_analyze, "simulate": cmd_simulate}[args.command]
        return command(args, out)
    except SystemExit as exc:  # --help and --version
        return exc.code if isinstance(exc.code, int) else 0
    except UsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `kernel-recovery recover ... --json | head`
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except (InputError, ValueError, TypeError, ImportError, OSError, MemoryError) as exc:
        print(f"{PROG}: error: {_first_line(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
