"""Out-of-core and distributed recovery: Dask arrays, memory maps, zarr arrays and streams of chunks.

Least squares needs only the sufficient statistics ``A^T A``, ``A^T Y``, ``Y^T Y`` of the canonical design,
``(K * Cin / groups)^2``-sized matrices that add up over disjoint sets of equations (output samples).  So a
record that does not fit in memory is cut into stretches of outputs; each stretch reads the inputs its
outputs see (its own samples plus a halo of ``(kernel_size - 1) * dilation`` samples, with the padding zeros
made explicit at the ends of a sequence) and feeds them to a :class:`~kernel_recovery.NormalEquations`
accumulator as a *valid* problem.  The stretches partition the rows of the full design, so the merged
statistics are exactly those of the whole record and the one small solve at the end gives the in-memory
answer (to rounding).

* Dask arrays (chunked along length and batch): one task per chunk of ``y``, the accumulators merged by a
  tree reduction (``split_every`` per node), then one solve.  Runs on whatever scheduler is active: the
  local threaded scheduler, or a ``dask.distributed`` cluster when a ``Client`` exists.
* ``numpy.memmap``, zarr (and h5py) arrays: read ``chunk_size`` samples at a time into one accumulator;
  memory-mapped pages are released after each chunk, so resident memory stays ``O(chunk_size)``.
* An iterator of ``(x_chunk, y_chunk)`` pairs (a generator reading a file or a socket): one sequence,
  fed to an accumulator with the user's configuration.

Only ``method="lstsq"`` runs on such inputs: ``"fft"`` and ``"adam"`` need the record in memory.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import mmap
import numbers
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import ArrayLike

from .. import solvers
from ..diagnostics.analysis import report_for
from ..diagnostics.determinacy import DeterminacyReport
from ..model.arrays import check_array_dtype
from ..model.config import ConvConfig, Layout, Padding, check_alignment, check_layout
from ..model.progress import progress_bar, show_progress
from ..model.result import KernelResult
from ..model.spectrum import block_spectrum
from ..model.threads import serial_region
from ..model.validation import check_int
from ..solvers import pipeline
from .accumulator import NormalEquations

if TYPE_CHECKING:
    from ..model.result import Solution

#: What the out-of-core front ends read: a Dask, memory-mapped, zarr/h5py or in-memory array, or (as ``x``, with
#: ``y=None``) an iterator of ``(x_chunk, y_chunk)`` pairs of one sequence.
OutOfCoreInput = ArrayLike | Iterable[tuple[ArrayLike, ArrayLike]]

#: Input samples per chunk read from a memory-mapped or zarr array (and per Dask task when rechunking).
DEFAULT_CHUNK = 1 << 20
#: Accumulators merged per node of the Dask tree reduction.
DEFAULT_SPLIT_EVERY = 8
#: Input samples of the first sequence kept as a sample of the data for the report's diagnoses (see _problem).
SAMPLE_LENGTH = 1 << 14

_LAZY_MODULES = ("zarr", "h5py")
_OWN_OPTIONS = ("chunk_size", "progress", "split_every", "checkpoint", "checkpoint_every")

__all__ = ["DEFAULT_CHUNK", "DEFAULT_SPLIT_EVERY", "analyze", "input_kind", "is_out_of_core", "recover_kernel"]


# ----------------------------------------------------------------------------------------------
# What kind of input
# ----------------------------------------------------------------------------------------------


def _root_module(obj) -> str:
    return type(obj).__module__.split(".")[0]


def input_kind(data: object) -> Literal["dask", "memmap", "lazy", "stream"] | None:
    """How ``data`` is streamed: ``"dask"``, ``"memmap"``, ``"lazy"`` (zarr, h5py), ``"stream"`` or None.

    None means an ordinary in-memory input (ndarray, list, scalar...), handled by the in-memory path.
    Nothing is imported or read to decide.

    Examples
    --------
    >>> import numpy as np
    >>> input_kind(np.zeros(3)), input_kind(iter([])), input_kind([np.zeros(3)])
    (None, 'stream', None)
    """
    if data is None or isinstance(data, (str, bytes, numbers.Number)):
        return None
    root = _root_module(data)
    if root == "dask" and hasattr(data, "chunks") and hasattr(data, "dask"):
        return "dask"
    if isinstance(data, np.memmap):
        return "memmap"
    if root in _LAZY_MODULES and hasattr(data, "shape") and hasattr(data, "dtype"):
        return "lazy"
    if isinstance(data, Iterator):
        return "stream"
    if (
        isinstance(data, Iterable)
        and not isinstance(data, (collections.abc.Sequence, collections.abc.Mapping, np.ndarray))
        and not hasattr(data, "__array__")
    ):
        return "stream"
    return None


def is_out_of_core(x: object, y: object = None) -> bool:
    """Whether ``x`` or ``y`` is a Dask, memory-mapped, zarr/h5py array or an iterator of chunks.

    Examples
    --------
    >>> import numpy as np
    >>> is_out_of_core(np.zeros(3)), is_out_of_core(iter([(np.zeros(3), np.zeros(3))]))
    (False, True)
    """
    return input_kind(x) is not None or input_kind(y) is not None


# ----------------------------------------------------------------------------------------------
# Shared argument handling
# ----------------------------------------------------------------------------------------------


def _check_method(method) -> None:
    if isinstance(method, str) and method.lower() == "lstsq":
        return
    shown = method if isinstance(method, str) else getattr(method, "__name__", type(method).__name__)
    raise ValueError(
        f"`method`={shown!r} needs the whole record in memory; for Dask, memory-mapped, zarr or streamed input use "
        "method='lstsq', which is exact from the streamed sufficient statistics (the same minimizer as the "
        "squared loss of 'adam' and 'fft'), or load the data into memory."
    )


def _check_chunk_size(chunk_size) -> int:
    if chunk_size is None:
        return DEFAULT_CHUNK
    if isinstance(chunk_size, (bool, np.bool_)) or not isinstance(chunk_size, numbers.Integral) or chunk_size < 1:
        raise ValueError(f"`chunk_size` must be a positive integer (samples per chunk), got {chunk_size!r}.")
    return int(chunk_size)


def _check_split_every(split_every) -> int:
    if split_every is None:
        return DEFAULT_SPLIT_EVERY
    if isinstance(split_every, (bool, np.bool_)) or not isinstance(split_every, numbers.Integral) or split_every < 2:
        raise ValueError(f"`split_every` must be an integer >= 2, got {split_every!r}.")
    return int(split_every)


def _check_progress(progress) -> bool | None:
    if progress is not None and not isinstance(progress, (bool, np.bool_)):
        raise TypeError(f"`progress` must be True, False or None (show when stderr is a terminal), got {progress!r}.")
    return None if progress is None else bool(progress)


@dataclasses.dataclass(frozen=True)
class _Args:
    kernel_size: int
    stride: int
    padding: Any
    dilation: int
    groups: int
    use_bias: bool
    layout: str
    flip: bool
    lags: Any = None  # a lag range, kept for the result's configuration (kernel_size and padding spell it out)

    def valid(self) -> dict:
        """Accumulator arguments for stretches whose padding zeros are explicit (``padding="valid"``, nwc)."""
        d = dataclasses.asdict(self)
        d.update(padding="valid", layout="nwc", lags=None)
        return d

    def config(self, in_channels: int, out_channels: int) -> ConvConfig:
        d = dataclasses.asdict(self)
        return ConvConfig.create(d.pop("kernel_size"), in_channels, out_channels, **d)


# ----------------------------------------------------------------------------------------------
# Arrays read stretch by stretch (memmap, zarr, h5py, ndarray)
# ----------------------------------------------------------------------------------------------


class _Reader:
    """Random access to stretches ``[lo, hi)`` of sequence ``b`` of an array, as float64 ``(hi - lo, C)``."""

    def __init__(self, data, name: str, layout: str):
        shape = tuple(int(n) for n in data.shape)
        check_array_dtype(np.empty(0, dtype=np.dtype(data.dtype)), name)
        if len(shape) not in (1, 2, 3):
            raise ValueError(
                f"`{name}` must be 1-D (length,), 2-D (one sequence) or 3-D (batch); got an array with shape {shape}."
            )
        self.data, self.name, self.ndim = data, name, len(shape)
        self.ncw = layout == "ncw"
        if self.ndim == 1:
            self.batch, self.length, self.channels = 1, shape[0], 1
        elif self.ndim == 2:
            self.batch = 1
            self.length, self.channels = (shape[1], shape[0]) if self.ncw else shape
        else:
            self.batch = shape[0]
            self.length, self.channels = (shape[2], shape[1]) if self.ncw else shape[1:]
        if self.batch == 0 or self.length == 0 or self.channels == 0:
            raise ValueError(f"`{name}` is empty (shape {shape}).")
        # pages of a shared mapping can be dropped after each read (MADV_DONTNEED keeps RSS at one chunk);
        # a private (copy-on-write, mode "c") mapping would lose the caller's changes, so it is left alone
        mm = getattr(data, "_mmap", None)
        self._mmap = mm if isinstance(data, np.memmap) and getattr(data, "mode", "c") != "c" else None

    def read(self, b: int, lo: int, hi: int) -> np.ndarray:
        length = slice(lo, hi)
        if self.ndim == 1:
            part = self.data[length][:, None]
        elif self.ndim == 2:
            part = self.data[:, length].T if self.ncw else self.data[length]
        else:
            part = self.data[b, :, length].T if self.ncw else self.data[b, length]
        out = np.array(part, dtype=np.float64, order="C")  # a private copy: the mapped pages can go
        if self._mmap is not None and hasattr(self._mmap, "madvise"):
            self._mmap.madvise(mmap.MADV_DONTNEED)
        _check_piece(out, self.name, b, lo)
        return out


def _check_piece(arr: np.ndarray, name: str, b: int, offset: int) -> None:
    bad = ~np.isfinite(arr)
    if bad.any():
        t, c = np.argwhere(bad)[0].tolist()
        raise ValueError(
            f"`{name}` contains NaN or Inf: {int(bad.sum())} value(s) in the stretch starting at sample {offset} of "
            f"sequence {b}, the first at sample {offset + t}, channel {c}. nan_policy='omit' needs the data in "
            "memory; clean the record first."
        )


def _padded(read, b: int, lo: int, hi: int, length: int, channels: int) -> np.ndarray:
    """Samples ``[lo, hi)`` of the zero-padded sequence (``lo`` may be negative, ``hi`` past the end)."""
    a, z = max(lo, 0), min(hi, length)
    body = read(b, a, z) if z > a else np.zeros((0, channels))
    if a == lo and z == hi:
        return body
    before = np.zeros((min(a, hi) - lo, channels))
    after = np.zeros((hi - max(z, lo), channels))
    return np.concatenate([before, body, after])


def _lengths(args: _Args, xr, yr, out_channels, x_name="x") -> tuple[ConvConfig, int, int]:
    """Validate shapes against the configuration; returns ``(config, length, out_length)``."""
    cfg = args.config(xr.channels, yr.channels if yr is not None else (out_channels or args.groups))
    length, out = xr.length, cfg.output_length(xr.length)
    if out < 1:
        raise ValueError(
            f"`{x_name}` has {length} samples, too short for kernel_size={cfg.kernel_size}, dilation={cfg.dilation} "
            f"with padding={cfg.padding!r}: a receptive field spans {cfg.span} samples."
        )
    if yr is not None:
        if yr.batch != xr.batch:
            raise ValueError(f"`x` and `y` must hold the same number of sequences, got {xr.batch} and {yr.batch}.")
        if yr.length != out:
            raise ValueError(
                f"`y` has {yr.length} samples but {length} input samples with {cfg.describe()} give {out} outputs; "
                "check `padding`, `stride`, `dilation`, `kernel_size` and `layout`."
            )
    return cfg, length, out


def _accumulate_arrays(args: _Args, x, y, out_channels, chunk_size: int, progress, checkpoint=None) -> tuple:
    """One pass over memory-mapped / zarr / ndarray inputs, ``chunk_size`` input samples at a time."""
    xr = _Reader(x, "x", args.layout)
    yr = None if y is None else _Reader(y, "y", args.layout)
    cfg, length, out = _lengths(args, xr, yr, out_channels)
    left, right = cfg.pads(length)
    s, span = cfg.stride, cfg.span
    step = max(chunk_size // s, 1)  # outputs per chunk
    acc = NormalEquations(**args.valid())
    done = 0  # chunks accumulated (a resumed run skips them without reading)
    if checkpoint is not None and (found := checkpoint.resume()) is not None:
        acc, done = found[0], int(found[1][0])
    count = 0
    with progress_bar(progress, total=xr.batch * length, unit="sample", unit_scale=True) as bar:
        for b in range(xr.batch):
            fed = 0  # padded input samples fed so far
            for t0 in range(0, out, step):
                t1 = min(t0 + step, out)
                end = length + left + right if t1 == out else (t1 - 1) * s + span
                count += 1
                if count > done:
                    xs = _padded(xr.read, b, fed - left, end - left, length, xr.channels)
                    ys = yr.read(b, t0, t1) if yr is not None else np.zeros((t1 - t0, cfg.out_channels))
                    acc.update(xs, ys)
                    if t1 == out:
                        acc.end_sequence()
                    if checkpoint is not None and count % checkpoint.every == 0:
                        checkpoint.save(acc, [count])
                bar.update(max(min(end - left, length) - max(fed - left, 0), 0))
                fed = end
    sample = xr.read(0, 0, min(length, SAMPLE_LENGTH))
    return acc, cfg, (length,) * xr.batch, (out,) * xr.batch, sample


# ----------------------------------------------------------------------------------------------
# Dask arrays: one task per chunk of outputs, then a tree of merges
# ----------------------------------------------------------------------------------------------


def _to_nwc3(arr, layout: str):
    """A Dask array as ``(batch, length, channels)`` (lazy transposes and new axes)."""
    if arr.ndim == 1:
        return arr[None, :, None]
    if arr.ndim == 2:
        return (arr.T if layout == "ncw" else arr)[None]
    return arr.transpose(0, 2, 1) if layout == "ncw" else arr


@serial_region()  # Dask runs tasks side by side: no BLAS, Python or FFT threads inside one
def _stretch(valid_args: dict, cut, pads, where, y_rows, channels, batch: int, *x_blocks) -> NormalEquations:
    """Task: the accumulator of one chunk of outputs, for every sequence of a batch chunk.

    ``x_blocks`` are the Dask blocks the outputs read, ``cut`` the ``[lo, hi)`` range of their concatenation
    that is needed, ``pads`` the padding zeros to add on each side; ``y_rows`` is the ``y`` block, or its
    number of rows when there is no ``y`` (zeros are used: the Gram does not depend on ``y``).
    ``where`` = (first sequence, first input sample) only serves error messages.
    """
    cin, cout = channels
    x = np.concatenate(x_blocks, axis=1)[:, cut[0] : cut[1]] if x_blocks else np.zeros((batch, 0, cin))
    acc = NormalEquations(**valid_args)
    for i in range(batch):
        xi = np.asarray(x[i], dtype=np.float64)
        _check_piece(xi, "x", where[0] + i, where[1])
        if pads[0] or pads[1]:
            xi = np.concatenate([np.zeros((pads[0], cin)), xi, np.zeros((pads[1], cin))])
        if isinstance(y_rows, numbers.Integral):
            yi = np.zeros((y_rows, cout))
        else:
            yi = np.asarray(y_rows[i], dtype=np.float64)
            _check_piece(yi, "y", where[0] + i, where[2])
        acc.update(xi, yi)
        acc.end_sequence()
    return acc


@serial_region()
def _merge(valid_args: dict, *accs: NormalEquations) -> NormalEquations:
    """Task: a fresh accumulator holding the sum of ``accs`` (the inputs are left untouched)."""
    out = NormalEquations(**valid_args)
    for acc in accs:
        out.merge(acc)
    return out


def _accumulate_dask(args: _Args, x, y, out_channels, chunk_size, split_every: int, progress) -> tuple:
    import dask
    import dask.array as da

    layout = args.layout
    xd = x if input_kind(x) == "dask" else da.from_array(x, chunks=_chunks_like(x, chunk_size, layout))
    for name, arr in (("x", xd), ("y", y)):
        if arr is not None:
            check_array_dtype(np.empty(0, dtype=np.dtype(arr.dtype)), name)
            if arr.ndim not in (1, 2, 3):
                raise ValueError(
                    f"`{name}` must be 1-D (length,), 2-D (one sequence) or 3-D (batch); got shape {arr.shape}."
                )
    x3 = _to_nwc3(xd, layout)
    batch, length, cin = (int(n) for n in x3.shape)
    if y is not None:
        yd = (
            y
            if input_kind(y) == "dask"
            else da.from_array(y, chunks=_chunks_like(y, chunk_size // args.stride, layout))
        )
        y3 = _to_nwc3(yd, layout)
        cout = int(y3.shape[2])
    else:
        y3, cout = None, out_channels or args.groups
    cfg = args.config(cin, cout)
    out = cfg.output_length(length)
    if out < 1:
        raise ValueError(
            f"`x` has {length} samples, too short for kernel_size={cfg.kernel_size}, dilation={cfg.dilation} "
            f"with padding={cfg.padding!r}: a receptive field spans {cfg.span} samples."
        )
    if y3 is not None:
        if int(y3.shape[0]) != batch:
            raise ValueError(f"`x` and `y` must hold the same number of sequences, got {batch} and {y3.shape[0]}.")
        if int(y3.shape[1]) != out:
            raise ValueError(
                f"`y` has {y3.shape[1]} samples but {length} input samples with {cfg.describe()} give {out} outputs; "
                "check `padding`, `stride`, `dilation`, `kernel_size` and `layout`."
            )
        y3 = y3.rechunk({2: -1})
        batch_chunks, out_chunks = y3.chunks[0], y3.chunks[1]
        y_blocks = y3.to_delayed()
    else:
        batch_chunks = x3.chunks[0]
        per = max(max(x3.chunks[1]) // cfg.stride, 1)
        out_chunks = tuple(min(per, out - t) for t in range(0, out, per))
        y_blocks = None
    x3 = x3.rechunk({0: batch_chunks, 2: -1})
    x_blocks = x3.to_delayed()
    x_starts = np.cumsum((0,) + x3.chunks[1])
    left, _ = cfg.pads(length)
    s, span = cfg.stride, cfg.span
    valid = args.valid()
    task = dask.delayed(_stretch, pure=True)
    merge = dask.delayed(_merge, pure=True)
    leaves = []
    for bi in range(len(batch_chunks)):
        t0 = 0
        for j, m in enumerate(out_chunks):
            t1 = t0 + m
            lo, hi = t0 * s - left, (t1 - 1) * s + span - left  # unpadded input range of these outputs
            a, z = max(lo, 0), min(hi, length)
            first = int(np.searchsorted(x_starts, a, side="right") - 1)
            last = int(np.searchsorted(x_starts, z, side="left"))
            blocks = [x_blocks[bi, k, 0] for k in range(first, last)] if z > a else []
            offset = x_starts[first] if blocks else 0
            y_arg = y_blocks[bi, j, 0] if y_blocks is not None else m
            cut, pads = (int(a - offset), int(z - offset)), (int(a - lo), int(hi - z))
            where = (int(sum(batch_chunks[:bi])), int(a), int(t0))
            leaves.append(task(valid, cut, pads, where, y_arg, (cin, cout), batch_chunks[bi], *blocks))
            t0 = t1
    level = leaves
    while len(level) > 1:
        level = [merge(valid, *level[i : i + split_every]) for i in range(0, len(level), split_every)]
    root = level[0]
    sample = x3[0, : min(length, SAMPLE_LENGTH)]
    if show_progress(progress) and not _distributed_client():
        from dask.diagnostics import ProgressBar

        with ProgressBar():
            acc, sample = dask.compute(root, sample)
    else:
        acc, sample = dask.compute(root, sample)
    return acc, cfg, (length,) * batch, (out,) * batch, np.asarray(sample, dtype=np.float64)


def _chunks_like(arr, chunk_size: int, layout: str):
    """Chunks for wrapping a non-Dask array: ``chunk_size`` along length, one sequence per batch chunk."""
    chunk_size = max(int(chunk_size), 1)
    ndim = len(arr.shape)
    if ndim == 1:
        return (chunk_size,)
    axis = (ndim - 1) if layout == "ncw" else (ndim - 2)
    return tuple(chunk_size if a == axis else (1 if (ndim == 3 and a == 0) else -1) for a in range(ndim))


def _distributed_client() -> bool:
    try:
        from distributed import default_client
    except ImportError:
        return False
    try:
        default_client()
    except ValueError:
        return False
    return True


# ----------------------------------------------------------------------------------------------
# Iterators of (x_chunk, y_chunk)
# ----------------------------------------------------------------------------------------------


class _Checkpoint:
    """Every ``every`` chunks, the accumulator and how far the pass got, in one ``.npz`` (no pickles, atomic).

    A run that finds the file resumes from it: the accumulator is loaded (its configuration must be the run's,
    else a ValueError) and the chunks already accumulated are skipped.
    """

    def __init__(self, path: Any, every: Any, settings: dict) -> None:
        if isinstance(every, (bool, np.bool_)) or not isinstance(every, numbers.Integral) or every < 1:
            raise ValueError(f"`checkpoint_every` must be a positive integer (chunks), got {every!r}.")
        self.path, self.every, self.settings = os.fspath(path), int(every), settings

    def resume(self) -> tuple[NormalEquations, np.ndarray] | None:
        if not os.path.exists(self.path):
            return None
        acc = NormalEquations.load(self.path, **self.settings)
        with np.load(self.path, allow_pickle=False) as data:
            if "outofcore_position" not in data.files:
                raise ValueError(f"{self.path!r} is a NormalEquations checkpoint, not one of an out-of-core run.")
            return acc, np.asarray(data["outofcore_position"], dtype=np.int64)

    def save(self, acc: NormalEquations, position: Sequence[int]) -> None:
        tmp = f"{self.path}.tmp{os.getpid()}"
        with open(tmp, "wb") as f:
            state = {k: np.asarray(v) for k, v in acc.to_state().items()}
            np.savez(f, outofcore_position=np.asarray(position, dtype=np.int64), **state)  # type: ignore[arg-type]
        os.replace(tmp, self.path)


def _accumulate_stream(args: _Args, pairs, progress, checkpoint: _Checkpoint | None = None) -> tuple:
    acc = NormalEquations(**dataclasses.asdict(args))
    n = skip = 0
    if checkpoint is not None and (found := checkpoint.resume()) is not None:
        acc, skip = found[0], int(found[1][0])  # the caller restarts the same stream: its first chunks are done
    with progress_bar(progress, unit="chunk") as bar:
        for item in pairs:
            if n < skip:
                n += 1
                bar.update(1)
                continue
            if not isinstance(item, (tuple, list)) or len(item) != 2:
                raise TypeError(
                    f"a streamed `x` must yield (x_chunk, y_chunk) pairs; item {n} is {type(item).__name__}"
                    + (f" of length {len(item)}" if isinstance(item, (tuple, list)) else "")
                    + "."
                )
            xc, yc = item
            try:
                acc.update(xc, yc)
            except (ValueError, TypeError) as exc:
                kind = TypeError if isinstance(exc, TypeError) else ValueError  # (subclasses may take other arguments)
                raise kind(f"chunk {n} of the stream: {exc}") from None
            n += 1
            bar.update(1)
            if checkpoint is not None and n % checkpoint.every == 0:
                checkpoint.save(acc, [n])
    if n == 0:
        raise ValueError("the stream of (x_chunk, y_chunk) pairs was empty.")
    if checkpoint is not None and n < skip:
        raise ValueError(f"the checkpoint {checkpoint.path!r} holds {skip} chunks, but the stream has only {n}.")
    acc.end_sequence()
    problem = acc.problem()
    return acc, problem.config, problem.lengths, problem.out_lengths, None


# ----------------------------------------------------------------------------------------------
# Front ends
# ----------------------------------------------------------------------------------------------


def _accumulate(
    x, y, kernel_size, *, out_channels=None, chunk_size=None, split_every=None, progress=None, checkpoint=None,
    checkpoint_every=None, **config,
):  # fmt: skip
    chunk_size = _check_chunk_size(chunk_size)
    split_every = _check_split_every(split_every)
    every = 16 if checkpoint_every is None else checkpoint_every
    progress = _check_progress(progress)
    if isinstance(config.get("lags"), str):
        raise ValueError(
            f"`lags`={config['lags']!r} needs the data in memory: choose the lags on a stretch of the record with "
            "kr.select_lags, then pass lags=(first, last)."
        )
    if config.get("lags") is not None:  # spelled out as the alignment every reader below applies
        stride = check_int(config["stride"], "stride")
        dilation = check_int(config["dilation"], "dilation")
        kernel_size, config["padding"], config["lags"] = check_alignment(
            kernel_size, config["padding"], config["lags"], stride, dilation
        )
    args = _Args(kernel_size=kernel_size, **config)
    # validate the scalar configuration before touching any data
    args.config(args.groups, args.groups)
    args = dataclasses.replace(args, layout=check_layout(args.layout))
    kx, ky = input_kind(x), input_kind(y)
    if kx == "stream":
        if y is not None:
            raise ValueError(
                "a streamed `x` (an iterator) yields (x_chunk, y_chunk) pairs: pass y=None, "
                f"got `y` of type {type(y).__name__}."
            )
        keep = None if checkpoint is None else _Checkpoint(checkpoint, every, _settings(args.__dict__))
        return _accumulate_stream(args, x, progress, keep)
    if ky == "stream":
        raise ValueError("`y` cannot be an iterator; pass an iterator of (x_chunk, y_chunk) pairs as `x`, y=None.")
    if "dask" in (kx, ky):
        if checkpoint is not None:
            raise ValueError("`checkpoint` applies to arrays read chunk by chunk and to streams, not to Dask graphs.")
        return _accumulate_dask(args, x, y, out_channels, chunk_size, split_every, progress)
    x = x if kx else np.asarray(x)
    y = y if (ky or y is None) else np.asarray(y)
    keep = None if checkpoint is None else _Checkpoint(checkpoint, every, _settings(args.valid()))
    return _accumulate_arrays(args, x, y, out_channels, chunk_size, progress, keep)


def _settings(arguments: dict) -> dict:
    """The accumulator's constructor arguments a checkpoint must match (those NormalEquations takes)."""
    names = ("kernel_size", "stride", "padding", "dilation", "groups", "use_bias", "layout", "flip", "lags")
    return {k: arguments[k] for k in names if k in arguments}


def _problem(acc: NormalEquations, cfg: ConvConfig, lengths, out_lengths, sample=None):
    """The accumulated problem, relabelled with the user's configuration and the true sequence lengths.

    When the accumulator retained no rows (a long record), the report's diagnoses that read the data (a
    constant channel, proportional channels, the spectral estimate for very long kernels) would find none:
    ``causes.diagnose`` then fails on ``np.concatenate([])``.  The blocks get the rows of a sample
    instead (the first ``SAMPLE_LENGTH`` input samples, as a valid problem); counts and spectra still come from
    the accumulated statistics.
    """
    problem = acc.problem()
    complete = all(sum(max(len(x) - b.taps + 1, 0) for x in b.xs) == b.n_equations for b in problem.blocks)
    if not complete:
        # rows retained for only part of the record (the accumulator keeps its first rows until a limit, and
        # merges keep those of their first input) must not pass for the design: block_spectrum would factor
        # them (an empty list passes its `all(len(x) ...)` check too).  The spectrum comes from the Gram,
        # cached before any sample rows are attached.
        for block in problem.blocks:
            block.xs, block.ys = [np.zeros((0, block.channels))], [np.zeros((0, len(block.out_channels)))]
            block_spectrum(block, cfg.use_bias)
    if not complete and sample is not None and len(sample) >= cfg.span:
        part = NormalEquations(
            cfg.kernel_size, stride=cfg.stride, dilation=cfg.dilation, groups=cfg.groups, use_bias=cfg.use_bias
        )
        part.update(sample, np.zeros(((len(sample) - cfg.span) // cfg.stride + 1, cfg.out_channels)))
        part.end_sequence()
        for block, rows in zip(problem.blocks, part.problem().blocks):
            assert rows.ys is not None  # an accumulator's blocks always hold their (here zero) outputs
            block.xs, block.ys = list(rows.xs), list(rows.ys)
    return dataclasses.replace(problem, config=cfg, lengths=tuple(lengths), out_lengths=tuple(out_lengths))


def _recover(x, y, kernel_size, *, method, stacklevel: int, nan_policy="raise", config: dict, options: dict):
    _check_method(method)
    if nan_policy != "raise":
        raise ValueError(
            f"`nan_policy`={nan_policy!r} needs the data in memory; streamed input must be finite (nan_policy='raise')."
        )
    own = {k: options.pop(k) for k in _OWN_OPTIONS if k in options}
    name, solver = solvers.resolve(method)
    solvers.check_options(name, solver, options)
    if options.get("loss", "mse") != "mse" or options.get("huber_delta") is not None:
        raise ValueError(
            f"`loss`={options.get('loss')!r} needs the data in memory (robust losses reweight each sample); streamed "
            "input supports the squared loss (loss='mse') with `ridge` or `regularization`."
        )
    acc, cfg, lengths, out_lengths, sample = _accumulate(x, y, kernel_size, **own, **config)
    problem = _problem(acc, cfg, lengths, out_lengths, sample)
    res = pipeline.run(problem, method, options, stacklevel=stacklevel + 1)
    res.diagnostics["input"] = input_kind(x) or input_kind(y)
    return res


def recover_kernel(
    x: OutOfCoreInput,
    y: ArrayLike | None,
    kernel_size: int | None = None,
    *,
    method: str | Callable[..., Solution] = "lstsq",
    stride: int = 1,
    padding: Padding = "valid",
    dilation: int = 1,
    groups: int = 1,
    use_bias: bool = False,
    layout: Layout = "nwc",
    flip: bool = False,
    nan_policy: Literal["raise", "omit"] = "raise",
    lags: tuple[int, int] | Literal["auto"] | None = None,
    chunk_size: int | None = None,
    split_every: int | None = None,
    progress: bool | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    checkpoint_every: int = 16,
    _stacklevel: int = 2,
    **options: Any,
) -> KernelResult:
    """:func:`kernel_recovery.recover_kernel` for inputs larger than memory, by streamed least squares.

    ``kr.recover_kernel`` sends Dask, memory-mapped, zarr/h5py and iterator inputs here; call this directly
    to pass an ndarray through the streaming path too.

    Parameters
    ----------
    x, y : dask.array.Array, numpy.memmap, zarr.Array, array_like; or an iterator of pairs with ``y=None``
        Inputs and outputs in the layouts of :func:`kernel_recovery.recover_kernel` (1-D, 2-D or 3-D; Dask
        arrays may be chunked along length and batch).  An iterator yields ``(x_chunk, y_chunk)`` pairs of
        one sequence, in order; the chunk boundaries of ``x`` and ``y`` need not line up.
    kernel_size, stride, padding, dilation, groups, use_bias, layout, flip, lags
        The configuration, as in :func:`kernel_recovery.conv1d`.
    method : {"lstsq"}
        The only method that streams (others raise ``ValueError``).
    nan_policy : {"raise"}
        Streamed data must be finite (``"omit"`` raises ``ValueError``).
    chunk_size : int, optional
        Input samples per chunk read from memory-mapped/zarr arrays, and per Dask chunk when a non-Dask
        array is paired with a Dask one (default :data:`DEFAULT_CHUNK`).  Dask arrays keep their own chunks.
    split_every : int, optional
        Accumulators merged per node of the Dask tree reduction (default :data:`DEFAULT_SPLIT_EVERY`).
    progress : bool, optional
        Show a progress bar (tqdm, or Dask's on the local scheduler); default: when stderr is a terminal.
    checkpoint : path, optional
        For arrays read chunk by chunk and for streams: every ``checkpoint_every`` chunks the accumulator and the
        position are written to this ``.npz`` (no pickles, atomically).  A run that finds the file resumes from
        it (the same configuration, else a ValueError): array chunks already accumulated are not read again; a
        stream must be restarted from its beginning, and its first chunks are skipped.  The file is kept.
    checkpoint_every : int
        Chunks between checkpoints.
    **options
        ``ridge`` or ``regularization``, as for ``method="lstsq"``.

    Returns
    -------
    KernelResult
        As from the in-memory path; ``residual_rms`` comes from the statistics
        (``y^T y - 2 w^T A^T y + w^T A^T A w``), ``diagnostics["streamed"]`` is True.

    Notes
    -----
    Memory is ``O(chunk + (K Cin)^2)`` per worker.  The in-memory path's kernel-size check (which refits a
    subsample of rows with more taps) and nan_policy="omit" are not available here.

    Examples
    --------
    >>> import numpy as np, kernel_recovery as kr
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal(1000)
    >>> y = kr.conv1d(x, [0.5, -1.0, 2.0])
    >>> pairs = ((x[i : i + 300], y[i : i + 300]) for i in range(0, 1000, 300))
    >>> recover_kernel(pairs, None, 3).kernel.ravel().round(12)
    array([ 0.5, -1. ,  2. ])
    """
    options.update(chunk_size=chunk_size, split_every=split_every, progress=progress)
    if checkpoint is not None:
        options.update(checkpoint=checkpoint, checkpoint_every=checkpoint_every)
    config = dict(
        stride=stride, padding=padding, dilation=dilation, groups=groups, use_bias=use_bias, layout=layout, flip=flip,
        lags=lags,
    )  # fmt: skip
    return _recover(
        x, y, kernel_size, method=method, stacklevel=_stacklevel, nan_policy=nan_policy, config=config, options=options
    )


def analyze(
    x: OutOfCoreInput,
    y: ArrayLike | None,
    kernel_size: int | None = None,
    *,
    stride: int = 1,
    padding: Padding = "valid",
    dilation: int = 1,
    groups: int = 1,
    use_bias: bool = False,
    layout: Layout = "nwc",
    flip: bool = False,
    out_channels: int | None = None,
    noise_level: ArrayLike | None = None,
    warn: bool = True,
    lags: tuple[int, int] | None = None,
    chunk_size: int | None = None,
    split_every: int | None = None,
    progress: bool | None = None,
    _stacklevel: int = 2,
) -> DeterminacyReport:
    """:func:`kernel_recovery.analyze` for inputs larger than memory (one streamed pass for ``A^T A``).

    Parameters
    ----------
    x, y
        As in :func:`recover_kernel` of this module; ``y`` may be None for arrays (only ``x`` decides the rank).
    kernel_size, stride, padding, dilation, groups, use_bias, layout, flip, lags, out_channels, noise_level, warn
        As in :func:`kernel_recovery.analyze`.
    chunk_size, split_every, progress
        As in :func:`recover_kernel` of this module.

    Returns
    -------
    DeterminacyReport
        The in-memory report, read from the Gram's eigenvalues (``exact_rank`` False for long records).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.sin(0.3 * np.arange(1000))
    >>> rep = analyze(iter([(x, np.zeros(997))]), None, 4, warn=False)
    >>> rep.rank.tolist(), rep.status
    ([2], 'rank_deficient')
    """
    config = dict(
        stride=stride, padding=padding, dilation=dilation, groups=groups, use_bias=use_bias, layout=layout, flip=flip,
        lags=lags,
    )  # fmt: skip
    acc, cfg, lengths, out_lengths, sample = _accumulate(
        x,
        y,
        kernel_size,
        out_channels=out_channels,
        chunk_size=chunk_size,
        split_every=split_every,
        progress=progress,
        **config,
    )
    report = report_for(_problem(acc, cfg, lengths, out_lengths, sample), noise_level=noise_level)
    if warn:
        report.warn(stacklevel=_stacklevel)
    return report
