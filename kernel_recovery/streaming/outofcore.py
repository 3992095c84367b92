"""Out-of-core sources: Dask arrays, memory maps, zarr arrays and streams of chunks -> the canonical problem.

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
* ``numpy.memmap``, zarr (and h5py) arrays, and in-memory arrays given a ``chunk_size``: read ``chunk_size``
  samples at a time into one accumulator; memory-mapped pages are released after each chunk, so resident
  memory stays ``O(chunk_size)``.
* An iterator of ``(x_chunk, y_chunk)`` pairs (a generator reading a file or a socket): one sequence,
  fed to an accumulator with the user's configuration.

:func:`read_problem` is the source :func:`kernel_recovery.recover_kernel` and :func:`kernel_recovery.analyze`
ask for the canonical problem of such inputs; only ``method="lstsq"`` then runs on it (``"fft"`` and ``"adam"``
need the record in memory: :func:`check_streamable` says so before anything is read).
"""

from __future__ import annotations

import collections.abc
import dataclasses
import mmap
import numbers
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from ..model.arrays import check_array_dtype
from ..model.config import ConvConfig, ConvSpec
from ..model.problem import CanonicalProblem
from ..model.progress import progress_bar, show_progress
from ..model.spectrum import block_spectrum
from ..model.threads import serial_region
from ..model.validation import check_bool, check_choice, check_int
from .accumulator import NormalEquations
from .checkpoint import write_state

if TYPE_CHECKING:
    from ..model.result import Solution

#: What the out-of-core sources read: a Dask, memory-mapped, zarr/h5py or in-memory array, or (as ``x``, with
#: ``y=None``) an iterator of ``(x_chunk, y_chunk)`` pairs of one sequence.
OutOfCoreInput = ArrayLike | Iterable[tuple[ArrayLike, ArrayLike]]

#: Input samples per chunk read from a memory-mapped or zarr array (and per Dask task when rechunking).
DEFAULT_CHUNK = 1 << 20
#: Accumulators merged per node of the Dask tree reduction.
DEFAULT_SPLIT_EVERY = 8
#: Chunks between checkpoints, unless ``checkpoint_every`` says otherwise.
DEFAULT_CHECKPOINT_EVERY = 16
#: Input samples of the first sequence kept as a sample of the data for the report's diagnoses (see _problem).
SAMPLE_LENGTH = 1 << 14

_LAZY_MODULES = ("zarr", "h5py")

__all__ = [
    "DEFAULT_CHECKPOINT_EVERY",
    "DEFAULT_CHUNK",
    "DEFAULT_SPLIT_EVERY",
    "check_streamable",
    "check_streamed_options",
    "input_kind",
    "is_out_of_core",
    "read_problem",
]


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
    if data is None or type(data) is np.ndarray or isinstance(data, (str, bytes, numbers.Number)):
        return None  # (a plain ndarray, not a memmap: the everyday input, told apart first)
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
# What streamed input cannot do (refused before anything is read)
# ----------------------------------------------------------------------------------------------


def check_streamable(
    *,
    prewhiten: object = None,
    method: str | Callable[..., Solution] = "lstsq",
    nan_policy: object = "raise",
    lags: object = None,
) -> None:
    """Refuse the settings that need the record in memory: ``prewhiten``, a method other than ``"lstsq"``,
    ``nan_policy="omit"`` and ``lags="auto"``, each with a ``ValueError`` that says what to do instead."""
    if prewhiten is not None:
        raise ValueError(f"`prewhiten`={prewhiten!r} needs the data in memory (it filters the records).")
    if not (isinstance(method, str) and method.lower() == "lstsq"):
        shown = method if isinstance(method, str) else getattr(method, "__name__", type(method).__name__)
        raise ValueError(
            f"`method`={shown!r} needs the whole record in memory; for Dask, memory-mapped, zarr or streamed input "
            "use method='lstsq', which is exact from the streamed sufficient statistics (the same minimizer as the "
            "squared loss of 'adam' and 'fft'), or load the data into memory."
        )
    if check_choice(nan_policy, "nan_policy", ("raise", "omit")) != "raise":
        raise ValueError(
            f"`nan_policy`={nan_policy!r} needs the data in memory; streamed input must be finite (nan_policy='raise')."
        )
    if isinstance(lags, str):
        raise ValueError(
            f"`lags`={lags!r} needs the data in memory: choose the lags on a stretch of the record with "
            "kr.select_lags, then pass lags=(first, last)."
        )


def check_streamed_options(options: dict[str, Any]) -> None:
    """Refuse the robust losses (``loss`` other than ``"mse"``, ``huber_delta``): they reweight every sample."""
    loss = options.get("loss", "mse")
    if not (isinstance(loss, str) and loss.lower() == "mse") or options.get("huber_delta") is not None:
        raise ValueError(
            f"`loss`={options.get('loss')!r} needs the data in memory (robust losses reweight each sample); streamed "
            "input supports the squared loss (loss='mse') with `ridge` or `regularization`."
        )


# ----------------------------------------------------------------------------------------------
# The source
# ----------------------------------------------------------------------------------------------


class _Pass(NamedTuple):
    """What one pass over the data gives: the statistics, the configuration, the sequences' lengths, a sample."""

    acc: NormalEquations
    config: ConvConfig
    lengths: tuple[int, ...]
    out_lengths: tuple[int, ...]
    sample: np.ndarray | None = None


def read_problem(
    x: OutOfCoreInput,
    y: ArrayLike | None,
    spec: ConvSpec,
    *,
    out_channels: int | None = None,
    chunk_size: int | None = None,
    split_every: int | None = None,
    progress: bool | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
) -> CanonicalProblem:
    """The canonical problem of out-of-core inputs, from one streamed pass (its statistics cached on its blocks).

    Parameters
    ----------
    x, y : dask.array.Array, numpy.memmap, zarr.Array, array_like; or an iterator of pairs with ``y=None``
        Inputs and outputs in the layouts of :func:`kernel_recovery.recover_kernel` (1-D, 2-D or 3-D; Dask
        arrays may be chunked along length and batch; an in-memory array is read ``chunk_size`` samples at a
        time).  An iterator yields ``(x_chunk, y_chunk)`` pairs of one sequence, in order; the chunk boundaries
        of ``x`` and ``y`` need not line up.  ``y`` may be None for arrays (only ``x`` decides the Gram).
    spec : ConvSpec
        The validated configuration.
    out_channels : int, optional
        Output channels when ``y`` is None (default: ``groups``).
    chunk_size, split_every, progress, checkpoint, checkpoint_every
        As in :func:`kernel_recovery.recover_kernel`.

    Returns
    -------
    CanonicalProblem
        With the user's configuration and the true sequence lengths; its blocks keep the rows while they are
        few (the explicit-design path), else the rows of a sample of the record for the report's diagnoses.
    """
    chunk_size = DEFAULT_CHUNK if chunk_size is None else check_int(chunk_size, "chunk_size")
    split_every = DEFAULT_SPLIT_EVERY if split_every is None else check_int(split_every, "split_every", 2)
    progress = None if progress is None else check_bool(progress, "progress")
    if out_channels is not None:
        out_channels = check_int(out_channels, "out_channels")
    kx, ky = input_kind(x), input_kind(y)
    if kx == "stream":
        if y is not None:
            raise ValueError(
                "a streamed `x` (an iterator) yields (x_chunk, y_chunk) pairs: pass y=None, "
                f"got `y` of type {type(y).__name__}."
            )
        keep = None if checkpoint is None else _Checkpoint(checkpoint, checkpoint_every, spec)
        return _problem(_accumulate_stream(spec, x, progress, keep))
    if ky == "stream":
        raise ValueError("`y` cannot be an iterator; pass an iterator of (x_chunk, y_chunk) pairs as `x`, y=None.")
    if "dask" in (kx, ky):
        if checkpoint is not None:
            raise ValueError("`checkpoint` applies to arrays read chunk by chunk and to streams, not to Dask graphs.")
        return _problem(_accumulate_dask(spec, x, y, out_channels, chunk_size, split_every, progress))
    x = x if kx else np.asarray(x)
    y = y if (ky or y is None) else np.asarray(y)
    keep = None if checkpoint is None else _Checkpoint(checkpoint, checkpoint_every, _valid(spec))
    return _problem(_accumulate_arrays(spec, x, y, out_channels, chunk_size, progress, keep))


def _valid(spec: ConvSpec) -> ConvSpec:
    """The configuration of stretches whose padding zeros are explicit (``padding="valid"``, nwc, no lag range)."""
    return spec.replace(padding="valid", layout="nwc", lags=None)


def _problem(done: _Pass) -> CanonicalProblem:
    """The accumulated problem, relabelled with the user's configuration and the true sequence lengths.

    When the accumulator retained no rows (a long record), the report's diagnoses that read the data (a
    constant channel, proportional channels, the spectral estimate for very long kernels) would find none:
    ``causes.diagnose`` then fails on ``np.concatenate([])``.  The blocks get the rows of a sample
    instead (the first ``SAMPLE_LENGTH`` input samples, as a valid problem); counts and spectra still come from
    the accumulated statistics.
    """
    cfg, sample = done.config, done.sample
    problem = done.acc.problem()
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
    return dataclasses.replace(problem, config=cfg, lengths=done.lengths, out_lengths=done.out_lengths)


# ----------------------------------------------------------------------------------------------
# Shapes, checked the same way for every kind of array
# ----------------------------------------------------------------------------------------------


def _check_array(name: str, dtype: Any, shape: tuple[int, ...]) -> None:
    check_array_dtype(np.empty(0, dtype=np.dtype(dtype)), name)
    if len(shape) not in (1, 2, 3):
        raise ValueError(
            f"`{name}` must be 1-D (length,), 2-D (one sequence) or 3-D (batch); got an array with shape {shape}."
        )


def _bind(
    spec: ConvSpec, batch: int, length: int, cin: int, y_shape: tuple[int, int, int] | None, out_channels: int | None
) -> tuple[ConvConfig, int]:
    """The configuration of ``x`` (``batch`` sequences of ``length`` samples, ``cin`` channels) and of ``y``
    (``(batch, length, channels)`` or None), with the lengths checked against it; returns ``(config, out_length)``.
    """
    cfg = spec.bind(cin, y_shape[2] if y_shape is not None else (out_channels or spec.groups))
    out = cfg.output_length(length)
    if out < 1:
        raise ValueError(
            f"`x` has {length} samples, too short for kernel_size={cfg.kernel_size}, dilation={cfg.dilation} "
            f"with padding={cfg.padding!r}: a receptive field spans {cfg.span} samples."
        )
    if y_shape is not None:
        if y_shape[0] != batch:
            raise ValueError(f"`x` and `y` must hold the same number of sequences, got {batch} and {y_shape[0]}.")
        if y_shape[1] != out:
            raise ValueError(
                f"`y` has {y_shape[1]} samples but {length} input samples with {cfg.describe()} give {out} outputs; "
                "check `padding`, `stride`, `dilation`, `kernel_size` and `layout`."
            )
    return cfg, out


# ----------------------------------------------------------------------------------------------
# Arrays read stretch by stretch (memmap, zarr, h5py, ndarray)
# ----------------------------------------------------------------------------------------------


class _Reader:
    """Random access to stretches ``[lo, hi)`` of sequence ``b`` of an array, as float64 ``(hi - lo, C)``."""

    def __init__(self, data, name: str, layout: str):
        shape = tuple(int(n) for n in data.shape)
        _check_array(name, data.dtype, shape)
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

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(batch, length, channels)``."""
        return self.batch, self.length, self.channels

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


def _accumulate_arrays(spec: ConvSpec, x, y, out_channels, chunk_size: int, progress, checkpoint=None) -> _Pass:
    """One pass over memory-mapped / zarr / ndarray inputs, ``chunk_size`` input samples at a time."""
    xr = _Reader(x, "x", spec.layout)
    yr = None if y is None else _Reader(y, "y", spec.layout)
    cfg, out = _bind(spec, xr.batch, xr.length, xr.channels, None if yr is None else yr.shape, out_channels)
    length = xr.length
    left, right = cfg.pads(length)
    s, span = cfg.stride, cfg.span
    step = max(chunk_size // s, 1)  # outputs per chunk
    acc = NormalEquations.from_spec(_valid(spec))
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
    return _Pass(acc, cfg, (length,) * xr.batch, (out,) * xr.batch, sample)


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
def _stretch(valid: ConvSpec, cut, pads, where, y_rows, channels, batch: int, *x_blocks) -> NormalEquations:
    """Task: the accumulator of one chunk of outputs, for every sequence of a batch chunk.

    ``x_blocks`` are the Dask blocks the outputs read, ``cut`` the ``[lo, hi)`` range of their concatenation
    that is needed, ``pads`` the padding zeros to add on each side; ``y_rows`` is the ``y`` block, or its
    number of rows when there is no ``y`` (zeros are used: the Gram does not depend on ``y``).
    ``where`` = (first sequence, first input sample) only serves error messages.
    """
    cin, cout = channels
    x = np.concatenate(x_blocks, axis=1)[:, cut[0] : cut[1]] if x_blocks else np.zeros((batch, 0, cin))
    acc = NormalEquations.from_spec(valid)
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
def _merge(valid: ConvSpec, *accs: NormalEquations) -> NormalEquations:
    """Task: a fresh accumulator holding the sum of ``accs`` (the inputs are left untouched)."""
    out = NormalEquations.from_spec(valid)
    for acc in accs:
        out.merge(acc)
    return out


def _as_dask(arr, name: str, chunk_size: int, layout: str):
    """``arr`` as a ``(batch, length, channels)`` Dask array (a non-Dask array in chunks of ``chunk_size``)."""
    import dask.array as da

    _check_array(name, arr.dtype, tuple(arr.shape))
    if input_kind(arr) != "dask":
        arr = da.from_array(arr, chunks=_chunks_like(arr, chunk_size, layout))
    return _to_nwc3(arr, layout)


def _accumulate_dask(spec: ConvSpec, x, y, out_channels, chunk_size: int, split_every: int, progress) -> _Pass:
    import dask

    x3 = _as_dask(x, "x", chunk_size, spec.layout)
    y3 = None if y is None else _as_dask(y, "y", chunk_size // spec.stride, spec.layout)
    batch, length, cin = (int(n) for n in x3.shape)
    y_shape = None if y3 is None else (int(y3.shape[0]), int(y3.shape[1]), int(y3.shape[2]))
    cfg, out = _bind(spec, batch, length, cin, y_shape, out_channels)
    if y3 is not None:
        y3 = y3.rechunk({2: -1})
        batch_chunks, out_chunks = y3.chunks[0], y3.chunks[1]
    else:
        batch_chunks = x3.chunks[0]
        per = max(max(x3.chunks[1]) // cfg.stride, 1)
        out_chunks = tuple(min(per, out - t) for t in range(0, out, per))
    x3 = x3.rechunk({0: batch_chunks, 2: -1})
    valid = _valid(spec)
    leaves = _dask_leaves(valid, cfg, x3, y3, batch_chunks, out_chunks)
    merge = dask.delayed(_merge, pure=True)
    while len(leaves) > 1:
        leaves = [merge(valid, *leaves[i : i + split_every]) for i in range(0, len(leaves), split_every)]
    sample = x3[0, : min(length, SAMPLE_LENGTH)]
    if show_progress(progress) and not _distributed_client():
        from dask.diagnostics import ProgressBar

        with ProgressBar():
            acc, sample = dask.compute(leaves[0], sample)
    else:
        acc, sample = dask.compute(leaves[0], sample)
    return _Pass(acc, cfg, (length,) * batch, (out,) * batch, np.asarray(sample, dtype=np.float64))


def _dask_leaves(valid: ConvSpec, cfg: ConvConfig, x3, y3, batch_chunks, out_chunks) -> list:
    """One delayed :func:`_stretch` per (batch chunk, chunk of outputs), reading the ``x`` blocks it needs."""
    import dask

    x_blocks = x3.to_delayed()
    y_blocks = None if y3 is None else y3.to_delayed()
    x_starts = np.cumsum((0,) + x3.chunks[1])
    length = int(x3.shape[1])
    left, _ = cfg.pads(length)
    s, span = cfg.stride, cfg.span
    channels = (cfg.in_channels, cfg.out_channels)
    task = dask.delayed(_stretch, pure=True)
    leaves = []
    for bi in range(len(batch_chunks)):
        t0 = 0
        for j, m in enumerate(out_chunks):
            t1 = t0 + m
            lo, hi = t0 * s - left, (t1 - 1) * s + span - left  # unpadded input range of these outputs
            a, z = max(lo, 0), min(hi, length)
            if z <= a:  # every input these outputs read is outside the record (lags past either end): zeros
                a = z = lo
            first = int(np.searchsorted(x_starts, a, side="right") - 1)
            last = int(np.searchsorted(x_starts, z, side="left"))
            blocks = [x_blocks[bi, k, 0] for k in range(first, last)] if z > a else []
            offset = x_starts[first] if blocks else 0
            y_arg = y_blocks[bi, j, 0] if y_blocks is not None else m
            cut, pads = (int(a - offset), int(z - offset)), (int(a - lo), int(hi - z))
            where = (int(sum(batch_chunks[:bi])), int(a), int(t0))
            leaves.append(task(valid, cut, pads, where, y_arg, channels, batch_chunks[bi], *blocks))
            t0 = t1
    return leaves


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
# Iterators of (x_chunk, y_chunk), and checkpoints of a pass
# ----------------------------------------------------------------------------------------------


class _Checkpoint:
    """Every ``every`` chunks, the accumulator and how far the pass got, in one ``.npz`` (no pickles, atomic).

    A run that finds the file resumes from it: the accumulator is loaded (its configuration must be the run's,
    else a ValueError) and the chunks already accumulated are skipped.
    """

    def __init__(self, path: Any, every: Any, spec: ConvSpec) -> None:
        every = DEFAULT_CHECKPOINT_EVERY if every is None else check_int(every, "checkpoint_every")
        self.path, self.every, self.spec = os.fspath(path), every, spec

    def resume(self) -> tuple[NormalEquations, np.ndarray] | None:
        if not os.path.exists(self.path):
            return None
        acc = NormalEquations.load(self.path, **dataclasses.asdict(self.spec))
        with np.load(self.path, allow_pickle=False) as data:
            if "outofcore_position" not in data.files:
                raise ValueError(f"{self.path!r} is a NormalEquations checkpoint, not one of an out-of-core run.")
            return acc, np.asarray(data["outofcore_position"], dtype=np.int64)

    def save(self, acc: NormalEquations, position: Sequence[int]) -> None:
        write_state(self.path, {"outofcore_position": np.asarray(position, dtype=np.int64), **acc.to_state()})


def _accumulate_stream(spec: ConvSpec, pairs, progress, checkpoint: _Checkpoint | None = None) -> _Pass:
    acc = NormalEquations.from_spec(spec)
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
    return _Pass(acc, problem.config, problem.lengths, problem.out_lengths)
