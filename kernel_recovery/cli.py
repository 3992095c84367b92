"""The command line: ``kernel-recovery {demo,recover,analyze,simulate}`` (also ``python -m kernel_recovery``).

Exit codes: 0 success, 1 failure (unreadable files, data the library refuses, a solver that did not
converge), 2 usage errors (bad arguments or options).  Errors are one line on stderr, without a traceback.
"""

from __future__ import annotations

import argparse
import collections
import difflib
import importlib.util
import inspect
import json
import os
import pathlib
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, NoReturn, TextIO, overload

import numpy as np

from . import __version__, datasets, solvers
from .api import analyze, recover_kernel
from .model.arrays import jsonable
from .model.config import LAYOUTS, SETTING_DEFAULTS
from .model.conv import conv1d
from .model.progress import progress_bar, show_progress
from .model.validation import check_choice
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


def _integer(text: str) -> int | None:
    """An integer (its range is judged by the library), or none."""
    if text.strip().lower() in ("none", "null"):
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def _real(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def _reals(text: str) -> float | list[float]:
    """One number, or one per output channel: ``0.1`` or ``0.1,0.2``."""
    values = [_real(v) for v in text.split(",")]
    return values[0] if len(values) == 1 else values


def _name(text: str) -> str | None:
    """A string option, passed to the library's validators as given (they are case-insensitive); none is None."""
    return None if text.strip().lower() in ("none", "null") else text.strip()


def _layout(text: str) -> str:
    """Judged here, not only by the library, because the CSV reader needs it before the library sees the data."""
    try:
        return check_choice(text.strip(), "layout", LAYOUTS)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _lags(allow_auto: bool) -> Any:
    """The type of ``--lags``: FIRST,LAST (FIRST may be negative), or ``auto`` where the command allows it."""

    def lags(text: str) -> tuple[int, int] | str:
        if allow_auto and text.strip().lower() == "auto":
            return "auto"
        try:
            first, last = (int(v) for v in text.split(","))
        except ValueError:
            expected = "FIRST,LAST (integers) or auto" if allow_auto else "FIRST,LAST (integers)"
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        return (first, last)

    return lags


# ----------------------------------------------------------------------------------------------
# The options: one per argument of recover_kernel/analyze, one per method option
# ----------------------------------------------------------------------------------------------

#: Arguments of ``recover_kernel``/``analyze`` without an option, and why (``tests/test_cli.py`` checks that every
#: other argument has the option of its name, so the command line cannot fall behind the API).
NO_OPTION: dict[str, str] = {
    "split_every": "it merges the accumulators of Dask input; the command line reads files into NumPy arrays "
    "(memory-mapped with --chunk-size), never Dask ones",
    "warn": "analyze prints the whole report, whose findings the warnings would only repeat",
}


class MethodFlag(NamedTuple):
    """A method option with a flag of its own (any option is also ``--option NAME=VALUE``)."""

    name: str
    methods: tuple[str, ...]
    type: Callable[[str], Any] | None  # None: a --NAME/--no-NAME switch
    metavar: str | None
    help: str


#: The method options with flags; ``tests/test_cli.py`` checks them against the solvers' signatures.
METHOD_FLAGS: tuple[MethodFlag, ...] = (
    MethodFlag("ridge", ("lstsq",), _real, "LAMBDA", "add LAMBDA * ||kernel||^2 to the squared residual"),
    MethodFlag(
        "regularization",
        ("lstsq",),
        _name,
        "NAME",
        "regularization tuned on the data: gcv (ridge by cross-validation), or a kernel prior by marginal "
        "likelihood: ml, di, tc, dc, ss (short noisy records)",
    ),
    MethodFlag(
        "prior",
        ("lstsq",),
        str,
        "FILE",
        "a prior covariance shape over the lags in ascending order: a square matrix (.npy, .npz key 'prior', "
        ".csv, .txt); its scale is tuned on the data",
    ),
    MethodFlag("share_hyperparameters", ("lstsq",), None, None, "one set of prior hyperparameters per output"),
    MethodFlag("loss", ("lstsq", "adam"), _name, "NAME", "mse (default), mae or huber"),
    MethodFlag("huber_delta", ("lstsq", "adam"), _real, "DELTA", "the Huber threshold in robust noise scales"),
    MethodFlag("max_iter", ("lstsq", "fft", "adam"), _integer, "N", "the iteration cap"),
    MethodFlag("tol", ("fft", "adam"), _real, "TOL", "the convergence tolerance"),
    MethodFlag("learning_rate", ("adam",), _real, "RATE", "the initial step of Adam"),
    MethodFlag("seed", ("adam",), _integer, "N", "seeds the initial kernel and the minibatches"),
    MethodFlag("init", ("adam",), _name, "NAME", "glorot_uniform (default), zeros or lstsq"),
    MethodFlag("batch_size", ("adam",), _integer, "N", "outputs per minibatch (default: all)"),
    MethodFlag("restarts", ("adam",), _integer, "N", "independent starts, the best kept"),
    MethodFlag("dtype", ("adam",), _name, "NAME", "float32 (default) or float64"),
    MethodFlag("precondition", ("adam",), None, None, "whiten the design's columns (default on)"),
    MethodFlag(
        "noise_level", ("fft",), _reals, "SIGMA", "noise standard deviation, one or one per output (default: estimated)"
    ),
    MethodFlag("wiener", ("fft",), None, None, "Wiener regularization of the deconvolution (default on)"),
    MethodFlag("segment_length", ("fft",), _integer, "N", "frequencies of the spectral estimate"),
    MethodFlag("workers", ("fft",), _integer, "N", "threads of the FFTs (-1, the default: all cores)"),
)

#: Method options without a flag of their own, and why.
NO_METHOD_FLAG: dict[str, str] = {
    "optimizer": "an optax.GradientTransformation exists only in Python (--learning-rate tunes the default one)",
    "progress": "the bar of method adam is --progress/--no-progress, the same flag as for streamed input",
}


def _api_default(name: str) -> Any:
    """The default of an argument of ``recover_kernel`` or ``analyze`` (a convolution setting: of ``ConvSpec``)."""
    for func in (recover_kernel, analyze):
        param = inspect.signature(func).parameters.get(name)
        if param is not None and param.kind is not inspect.Parameter.VAR_KEYWORD:
            return param.default
    return SETTING_DEFAULTS[name]


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


def load_array(path: str, key: str | None, default_key: str, layout: str, *, mmap: bool = False) -> np.ndarray:
    """Read one array from .npy, .npz (``key``) or .csv/.txt (rows are time steps, columns channels).

    Never unpickles.  CSV/text data are ``(length, channels)`` and are transposed for ``layout="ncw"``.  With
    ``mmap`` a .npy file is memory-mapped (read only), so a streamed fit reads it chunk by chunk.
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
            arr = np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None)
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
    if np.iscomplexobj(arr):  # the command line fits 1-D real records; complex signals go through the Python API
        raise InputError(
            f"`{default_key}` must be real, got complex ({path}); fit complex signals with kr.recover_kernel in Python"
        )
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


def _print_warnings(caught: list[warnings.WarningMessage]) -> None:
    """One line per distinct warning, with how often it came (a tuning loop may repeat one many times)."""
    counts = collections.Counter(_first_line(str(w.message)) for w in caught)
    for text, n in counts.items():
        print(f"{PROG}: warning: {text}" + (f" ({n} times)" if n > 1 else ""), file=sys.stderr)


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
        "use_bias": args.use_bias,
        "layout": args.layout,
        "flip": args.flip,
    }


def _data_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The arguments of ``--lags``, ``--nan-policy`` and ``--chunk-size`` (``--progress`` is decided per command)."""
    if args.kernel_size is None and args.lags is None:
        raise UsageError("the following arguments are required: -k/--kernel-size (or --lags)")
    return {"lags": args.lags, "nan_policy": args.nan_policy, "chunk_size": args.chunk_size}


def _progress_setting(args: argparse.Namespace) -> bool | None:
    """``--progress``/``--no-progress``; None (the default) draws bars when stderr is a terminal; never with -q."""
    return False if args.quiet else args.progress


def _method_options(args: argparse.Namespace) -> dict[str, Any]:
    """The method options: ``--option NAME=VALUE`` and the flags of :data:`METHOD_FLAGS` (not both for one name)."""
    options = parse_options(args.option)
    for flag in METHOD_FLAGS:
        value = getattr(args, flag.name)
        if value is None:
            continue
        if flag.name in options:
            raise UsageError(f"--{flag.name.replace('_', '-')} and --option {flag.name}=... both given")
        options[flag.name] = value
    return options


@overload
def _load_xy(args: argparse.Namespace, need_y: Literal[True]) -> tuple[np.ndarray, np.ndarray]: ...
@overload
def _load_xy(args: argparse.Namespace, need_y: bool) -> tuple[np.ndarray, np.ndarray | None]: ...
def _load_xy(args: argparse.Namespace, need_y: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """X, and Y from its own file or, when Y is omitted, from X's .npz (key 'y' or --y-key)."""
    mmap = args.chunk_size is not None  # streamed: .npy files are read chunk by chunk, not loaded
    x = load_array(args.x, args.x_key, "x", args.layout, mmap=mmap)
    if args.y is not None:
        return x, load_array(args.y, args.y_key, "y", args.layout, mmap=mmap)
    key = args.y_key or "y"
    if pathlib.Path(args.x).suffix.lower() == ".npz":
        with np.load(args.x, allow_pickle=False) as npz:
            if key in npz.files:
                return x, load_array(args.x, key, "y", args.layout)
    if need_y:
        raise UsageError(f"give the output file Y (or an X .npz holding an array {key!r})")
    return x, None


def cmd_recover(args: argparse.Namespace, out: TextIO) -> int:
    options = _method_options(args)
    name, solver = solvers.resolve(args.method)
    try:
        solvers.check_options(name, solver, options)
    except TypeError as exc:
        raise UsageError(str(exc)) from None
    settings = {**_conv_settings(args), **_data_settings(args), "prewhiten": args.prewhiten}
    settings.update(checkpoint=args.checkpoint, checkpoint_every=args.checkpoint_every, checks=args.checks)
    setting = _progress_setting(args)
    if args.chunk_size is not None:
        settings["progress"] = setting  # the streamed pass's bar
    elif "progress" in inspect.signature(solver).parameters and "progress" not in options:
        # the method's own bar takes a bool: shown where a terminal would show it and tqdm can draw it
        auto = show_progress(setting) and importlib.util.find_spec("tqdm") is not None
        settings["progress"] = True if setting else auto
    if args.output is not None:
        _suffix(args.output, OUTPUT_SUFFIXES, "output file")
    _need_matplotlib(args)
    if isinstance(options.get("prior"), str):
        options["prior"] = load_array(options["prior"], None, "prior", "nwc").astype(np.float64)
    x, y = _load_xy(args, need_y=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = recover_kernel(x, y, args.kernel_size, method=name, **settings, **options)
    _print_warnings(caught)
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
    settings = {**_conv_settings(args), **_data_settings(args)}
    if args.chunk_size is not None:
        settings["progress"] = _progress_setting(args)
    x, y = _load_xy(args, need_y=False)
    rep = analyze(
        x, y, args.kernel_size, out_channels=args.out_channels, noise_level=args.noise_level, warn=False, **settings
    )
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
    bias = rng.standard_normal(args.out_channels) if args.use_bias else None
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
    #: The parsers of the subcommands, by name (set by :func:`build_parser`).
    commands: dict[str, _Parser]

    def error(self, message: str) -> NoReturn:  # one line, exit code 2 (argparse would print the usage first)
        raise UsageError(f"{message} (see {self.prog} --help)")

    def long_options(self) -> list[str]:
        """Every ``--name`` this parser takes (argparse has no public list of them)."""
        return [s for action in self._actions for s in action.option_strings if s.startswith("--")]

    def parse_args(self, args: Any = None, namespace: Any = None) -> Any:
        """As argparse's, and a misspelled option is answered with the nearest ones (``--strides``: ``--stride``)."""
        parsed, extra = self.parse_known_args(args, namespace)
        if extra:
            sub = getattr(self, "commands", {}).get(getattr(parsed, "command", None), self)
            close = [
                match
                for word in extra
                if word.startswith("--")
                for match in difflib.get_close_matches(word.split("=")[0], sub.long_options(), n=1, cutoff=0.75)
            ]
            hint = f" (did you mean {' or '.join(close)}?)" if close else ""
            sub.error(f"unrecognized arguments: {' '.join(extra)}{hint}")
        return parsed


def _add_conv_options(p: argparse.ArgumentParser, kernel_required: bool = True) -> None:
    """The convolution's settings; their defaults are the API's (``kernel_required``: the API's kernel_size)."""
    g = p.add_argument_group("convolution (as in Keras Conv1D / PyTorch nn.Conv1d)")
    g.add_argument(
        "-k",
        "--kernel-size",
        type=_positive_int,
        default=None if kernel_required else 5,
        help="number of taps (required unless --lags is given)" if kernel_required else "number of taps (default 5)",
    )
    g.add_argument("--stride", type=_positive_int, default=_api_default("stride"), help="default %(default)s")
    g.add_argument(
        "--padding",
        type=_padding,
        default=_api_default("padding"),
        help="valid (default), same, causal, full, an int, or LEFT,RIGHT",
    )
    g.add_argument("--dilation", type=_positive_int, default=_api_default("dilation"), help="default %(default)s")
    g.add_argument("--groups", type=_positive_int, default=_api_default("groups"), help="default %(default)s")
    g.add_argument(
        "--use-bias", "--bias", action="store_true", default=_api_default("use_bias"), help="the layer has a bias"
    )
    g.add_argument(
        "--layout",
        type=_layout,
        default=_api_default("layout"),
        help="nwc: (batch, length, channels), Keras (default); ncw: (batch, channels, length), PyTorch. "
        ".csv/.txt files are always rows=time steps, columns=channels",
    )
    g.add_argument(
        "--flip",
        action="store_true",
        default=_api_default("flip"),
        help="true convolution (scipy.signal.convolve) instead of cross-correlation",
    )


def _add_data_options(p: argparse.ArgumentParser, auto_lags: bool) -> Any:
    """The API's arguments about the record: lags, missing samples, streaming."""
    g = p.add_argument_group("the record")
    g.add_argument(
        "--lags",
        type=_lags(auto_lags),
        default=_api_default("lags"),
        metavar="FIRST,LAST" + ("|auto" if auto_lags else ""),
        help="a measurement with y on x's time axis: the response at lags FIRST..LAST (FIRST may be negative; "
        "replaces -k and --padding)" + ("; auto: delay and length chosen by BIC" if auto_lags else ""),
    )
    g.add_argument(
        "--nan-policy",
        type=_name,
        default=_api_default("nan_policy"),
        metavar="raise|omit",
        help="NaN in the data is an error (raise, default), or the equations touching one are dropped (omit)",
    )
    g.add_argument(
        "--chunk-size",
        type=_positive_int,
        default=_api_default("chunk_size"),
        metavar="N",
        help="stream the record N samples at a time (.npy files are memory-mapped): memory O(N + taps^2)",
    )
    g.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=_api_default("progress"),
        help="progress bars (default: when stderr is a terminal; never with --quiet)",
    )
    return g


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


def build_parser() -> _Parser:
    parser = _Parser(
        prog=PROG,
        description="Recover the kernel (and bias) of a 1-D convolution from its inputs and outputs.",
        epilog="exit codes: 0 success, 1 failure, 2 usage error",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="{demo,recover,analyze,simulate}", parser_class=_Parser
    )
    parser.commands = {
        "demo": _add_demo(sub),
        "recover": _add_recover(sub),
        "analyze": _add_analyze(sub),
        "simulate": _add_simulate(sub),
    }
    return parser


def _add_demo(sub: Any) -> _Parser:
    d: _Parser = sub.add_parser(
        "demo",
        help="solve the built-in examples with every method, print a table, save a figure",
        description="The classic tutorial examples, a noisy multichannel recording and an "
        "underdetermined case, solved by every method side by side.",
    )
    d.add_argument("--plot", metavar="FILE", help=f"where to save the PNG figure (default {DEFAULT_DEMO_FIGURE})")
    d.add_argument("--no-plot", action="store_true", help="do not draw the figure")
    d.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return d


def _add_recover(sub: Any) -> _Parser:
    r: _Parser = sub.add_parser(
        "recover",
        help="recover a kernel from input and output files",
        description="Recover the kernel from X and Y: every argument of kr.recover_kernel is an option, every "
        "method option too (also as --option NAME=VALUE).",
    )
    _add_inputs(r, "output file (may be omitted when X is a .npz holding both 'x' and 'y')")
    _add_conv_options(r)
    g = _add_data_options(r, auto_lags=True)
    g.add_argument(
        "--prewhiten",
        type=_name,
        default=_api_default("prewhiten"),
        metavar="input|noise",
        help="filter x and y by an AR(10) whitening filter first: input (impulseest's prewhitening) or noise "
        "(two-step generalized least squares)",
    )
    g.add_argument(
        "--checkpoint",
        metavar="FILE",
        default=_api_default("checkpoint"),
        help="with --chunk-size: save the accumulated statistics to this .npz, and resume from it",
    )
    g.add_argument(
        "--checkpoint-every",
        type=_positive_int,
        default=_api_default("checkpoint_every"),
        metavar="N",
        help="chunks between checkpoints (default %(default)s)",
    )
    g.add_argument(
        "--checks",
        choices=("budget", "all", "cheap", "none"),
        default=_api_default("checks"),
        help="post-fit checks: every check on bounded samples (budget, the default), on all rows, the cheap ones, or "
        "none (default %(default)s)",
    )
    m = r.add_argument_group("method (a method option another method does not take is an error)")
    m.add_argument(
        "-m",
        "--method",
        type=str.lower,
        choices=list(solvers.METHODS),
        default=_api_default("method"),
        help="default %(default)s",
    )
    for flag in METHOD_FLAGS:
        option = "--" + flag.name.replace("_", "-")
        text = f"{flag.help} [{', '.join(flag.methods)}]"
        if flag.type is None:
            m.add_argument(option, action=argparse.BooleanOptionalAction, default=None, help=text)
        else:
            m.add_argument(option, type=flag.type, metavar=flag.metavar, default=None, help=text)
    m.add_argument(
        "-O",
        "--option",
        action="append",
        metavar="NAME=VALUE",
        help="any method option, repeatable: e.g. --option ridge=0.1 (numbers, true/false and none are parsed)",
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
    return r


def _add_analyze(sub: Any) -> _Parser:
    a: _Parser = sub.add_parser(
        "analyze",
        help="say whether the data determine the kernel (before solving)",
        description="Every argument of kr.analyze is an option.",
    )
    _add_inputs(a, "output file (optional: without it, only X and the settings decide)")
    _add_conv_options(a)
    _add_data_options(a, auto_lags=False)
    a.add_argument(
        "--out-channels",
        type=_positive_int,
        default=_api_default("out_channels"),
        help="number of output channels when Y is not given (default: groups)",
    )
    a.add_argument(
        "--noise-level",
        type=_reals,
        default=_api_default("noise_level"),
        metavar="SIGMA",
        help="noise standard deviation in Y, one or one per output: the report gives the error to expect",
    )
    a.add_argument("-o", "--output", metavar="FILE", help="write the report as .json")
    _add_output_options(a, "save a PNG of the design's singular values")
    return a


def _add_simulate(sub: Any) -> _Parser:
    s: _Parser = sub.add_parser(
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
    return s


def _negative_lags(argv: list[str]) -> list[str]:
    """``--lags -3,40`` as ``--lags=-3,40``: argparse would take ``-3,40`` for an option."""
    joined: list[str] = []
    for word in argv:
        if joined and joined[-1] == "--lags" and word.startswith("-") and word[1:2].isdigit():
            joined[-1] = f"--lags={word}"
        else:
            joined.append(word)
    return joined


def main(argv: list[str] | None = None, out: TextIO | None = None) -> int:
    """Run the command line; return the exit code (0 success, 1 failure, 2 usage error)."""
    out = sys.stdout if out is None else out
    try:
        args = build_parser().parse_args(_negative_lags(sys.argv[1:] if argv is None else list(argv)))
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
