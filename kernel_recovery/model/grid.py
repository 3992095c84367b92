"""Convolutions on grids of any dimension (Conv1D/2D/3D), real or complex: settings, arrays, forward model, design.

The grid path serves what the 1-D sequence path does not: kernels of 2-D and 3-D convolutions (Keras
``Conv2D``/``Conv3D``, PyTorch ``nn.Conv2d``/``Conv3d``, image blurs) and complex signals of any dimension.
A problem is reduced here to one explicit *design* per group: one row per output sample (item, position), one
column per kernel coefficient ``(k_1, ..., k_N, c)`` in the Keras kernel's row-major order, then the bias

    y[b, o, j] = bias[j] + sum_k sum_c xpad[b, o * stride + k * dilation, g(j) * C_g + c] * W[k, c, j].

The design is never held whole: :func:`design_rows` cuts it in row chunks (the one place grid design rows are cut,
the N-D counterpart of :func:`kernel_recovery.model.design.window_rows`), and :func:`grid_statistics` sums
``A^H A``, ``A^H Y`` and ``Y^H Y`` over them.  Complex data keep the bilinear convolution (no conjugate on the
kernel) and the conjugate-transpose normal equations.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from .arrays import _from_library, unmask
from .config import GroupedChannels
from .design import grid_windows
from .grid_gram import fft_gram_cost, im2col_gram_cost, lagged_gram
from .validation import check_bool, check_choice, check_int

#: Grid padding modes ("causal" only for one spatial dimension, as in Keras).
GRID_PADDING_MODES = ("valid", "same", "full", "causal")
#: Layout names: channels-last and channels-first, whatever the number of spatial dimensions.
CHANNELS_LAST = ("channels_last", "nwc", "nhwc", "ndhwc")
CHANNELS_FIRST = ("channels_first", "ncw", "nchw", "ncdhw")
#: Design entries per row chunk (16 MiB of complex128).
CHUNK_ENTRIES = 1 << 20


def _per_axis(value: object, name: str, ndim: int, minimum: int = 1) -> tuple[int, ...]:
    """An int or one int per spatial axis (Keras ``strides=(2, 1)``), as a tuple of ``ndim`` ints."""
    if isinstance(value, (tuple, list)):
        if len(value) != ndim:
            raise ValueError(f"`{name}` must be an int or {ndim} ints (one per spatial axis), got {value!r}.")
        return tuple(check_int(v, name, minimum) for v in value)
    return (check_int(value, name, minimum),) * ndim


def _check_padding(padding: object, ndim: int) -> str | tuple[tuple[int, int], ...]:
    """A mode, or per-axis ``(before, after)`` zeros.

    An int pads every side; ``ndim`` ints pad each axis on both sides (PyTorch ``padding=(1, 2)``); ``ndim``
    pairs give each axis its own sides (``numpy.pad``).  With one spatial axis a pair of ints is ``(left, right)``,
    as for :func:`~kernel_recovery.conv1d`.
    """
    if isinstance(padding, str):
        mode = check_choice(padding, "padding", GRID_PADDING_MODES)
        if mode == "causal" and ndim != 1:
            raise ValueError(f"`padding`='causal' needs one spatial axis (Keras Conv1D), got {ndim}.")
        return mode

    def side(v: object) -> int:
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Integral):
            raise TypeError(f"`padding` entries must be integers, got {padding!r}.")
        if v < 0:
            raise ValueError(f"`padding` must be non-negative, got {padding!r}.")
        return int(v)

    if isinstance(padding, numbers.Integral) and not isinstance(padding, (bool, np.bool_)):
        return ((side(padding), side(padding)),) * ndim
    if isinstance(padding, (tuple, list)):
        if ndim == 1 and len(padding) == 2 and all(isinstance(v, numbers.Integral) for v in padding):
            return ((side(padding[0]), side(padding[1])),)
        if len(padding) == ndim:
            pairs = []
            for p in padding:
                if isinstance(p, (tuple, list)) and len(p) == 2:
                    pairs.append((side(p[0]), side(p[1])))
                else:
                    pairs.append((side(p), side(p)))
            return tuple(pairs)
    raise TypeError(
        f"`padding` must be 'valid', 'same', 'full', an int, {ndim} ints or {ndim} (before, after) pairs, "
        f"got {padding!r}."
    )


@dataclass(frozen=True)
class GridSpec:
    """The settings of an N-D convolution without its channel counts, validated once (:meth:`create`).

    Examples
    --------
    >>> spec = GridSpec.create((3, 5), stride=2, padding="SAME", layout="nchw")
    >>> spec.ndim, spec.stride, spec.padding, spec.layout
    (2, (2, 2), 'same', 'channels_first')
    >>> spec.bind(2, 4).kernel_shape
    (3, 5, 2, 4)
    """

    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    padding: str | tuple[tuple[int, int], ...]
    dilation: tuple[int, ...]
    groups: int = 1
    use_bias: bool = False
    layout: str = "channels_last"
    flip: bool = False

    @classmethod
    def create(
        cls,
        kernel_size: object,
        *,
        stride: object = 1,
        padding: object = "valid",
        dilation: object = 1,
        groups: object = 1,
        use_bias: object = False,
        layout: object = "channels_last",
        flip: object = False,
    ) -> GridSpec:
        if isinstance(kernel_size, (tuple, list)) and len(kernel_size) >= 1:
            size = tuple(check_int(k, "kernel_size") for k in kernel_size)
        else:
            size = (check_int(kernel_size, "kernel_size"),)
        if len(size) > 3:
            raise ValueError(f"`kernel_size` must have 1, 2 or 3 entries (spatial axes), got {kernel_size!r}.")
        ndim = len(size)
        name = check_choice(layout, "layout", CHANNELS_LAST + CHANNELS_FIRST)
        return cls(
            kernel_size=size,
            stride=_per_axis(stride, "stride", ndim),
            padding=_check_padding(padding, ndim),
            dilation=_per_axis(dilation, "dilation", ndim),
            groups=check_int(groups, "groups"),
            use_bias=check_bool(use_bias, "use_bias"),
            layout="channels_last" if name in CHANNELS_LAST else "channels_first",
            flip=check_bool(flip, "flip"),
        )

    @property
    def ndim(self) -> int:
        return len(self.kernel_size)

    @property
    def channels_last(self) -> bool:
        return self.layout == "channels_last"

    @property
    def span(self) -> tuple[int, ...]:
        """Receptive field per axis, ``(kernel_size - 1) * dilation + 1``."""
        return tuple((k - 1) * d + 1 for k, d in zip(self.kernel_size, self.dilation))

    def pads(self, shape: Sequence[int]) -> tuple[tuple[int, int], ...]:
        """Zeros added before and after each spatial axis of an input of spatial ``shape``."""
        if not isinstance(self.padding, str):
            return self.padding
        out = []
        for n, s, span in zip(shape, self.stride, self.span):
            if self.padding == "valid":
                out.append((0, 0))
            elif self.padding == "full":
                out.append((span - 1, span - 1))
            elif self.padding == "causal":
                out.append((span - 1, 0))
            else:  # "same": TensorFlow's rule, the extra zero after
                total = max((-(-n // s) - 1) * s + span - n, 0)
                out.append((total // 2, total - total // 2))
        return tuple(out)

    def output_shape(self, shape: Sequence[int]) -> tuple[int, ...]:
        """Spatial output shape for an input of spatial ``shape`` (entries <= 0: too small for one output)."""
        return tuple(
            (n + a + b - span) // s + 1 for n, (a, b), span, s in zip(shape, self.pads(shape), self.span, self.stride)
        )

    def bind(self, in_channels: int, out_channels: int) -> GridConfig:
        if in_channels % self.groups:
            raise ValueError(f"`in_channels` (={in_channels}) must be divisible by `groups` (={self.groups}).")
        if out_channels % self.groups:
            raise ValueError(f"`out_channels` (={out_channels}) must be divisible by `groups` (={self.groups}).")
        return GridConfig(**dataclasses.asdict(self), in_channels=in_channels, out_channels=out_channels)


@dataclass(frozen=True)
class GridConfig(GroupedChannels, GridSpec):
    """A :class:`GridSpec` bound to channel counts; the kernel is ``kernel_size + (in_channels // groups,
    out_channels)`` (the Keras layout), the attributes those of :class:`~kernel_recovery.model.config.ConvConfig`."""

    in_channels: int = dataclasses.field(default=1, kw_only=True)
    out_channels: int = dataclasses.field(default=1, kw_only=True)
    lags: None = None  # (no lag ranges on grids; kept so code reading a config's lags reads None)

    @property
    def kernel_shape(self) -> tuple[int, ...]:
        return self.kernel_size + (self.in_per_group, self.out_channels)

    @property
    def taps(self) -> int:
        """Kernel positions, ``prod(kernel_size)``."""
        return math.prod(self.kernel_size)

    @property
    def unknowns_per_output(self) -> int:
        return self.taps * self.in_per_group + int(self.use_bias)

    def describe(self) -> str:
        parts = [f"kernel_size={self.kernel_size}"]
        ones = (1,) * self.ndim
        for name, default in (("stride", ones), ("padding", "valid"), ("dilation", ones), ("groups", 1)):
            if getattr(self, name) != default:
                parts.append(f"{name}={getattr(self, name)!r}")
        if self.use_bias:
            parts.append("use_bias=True")
        if self.flip:
            parts.append("flip=True")
        if self.layout != "channels_last":
            parts.append(f"layout={self.layout!r}")
        return ", ".join(parts)


# -- arrays --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GridBatch:
    """Items as arrays ``(*spatial, channels)`` (complex128 or float64); ``form`` records how to give outputs back.

    ``form``: "spatial" (one item without a channel axis), "item" (one item with channels), "batch" (a stacked
    batch) or "list" (items of different shapes).
    """

    arrays: tuple[np.ndarray, ...]
    form: str
    dtype: np.dtype

    @property
    def channels(self) -> int:
        return self.arrays[0].shape[-1]

    @property
    def is_complex(self) -> bool:
        return bool(np.iscomplexobj(self.arrays[0]))


def _numeric(a: object, name: str) -> np.ndarray:
    a = unmask(a, name)
    try:
        arr = np.asarray(_from_library(a))
    except (ValueError, TypeError, RuntimeError) as exc:
        raise TypeError(f"`{name}` could not be read as a numeric array: {exc}") from None
    if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.number) and not np.issubdtype(arr.dtype, np.timedelta64)):
        raise TypeError(f"`{name}` must be a real or complex numeric array, got dtype {arr.dtype}.")
    if arr.size and not np.all(np.isfinite(arr)):
        bad = ~np.isfinite(arr)
        where = tuple(np.argwhere(bad)[0].tolist())
        raise ValueError(f"`{name}` contains {int(bad.sum())} NaN or Inf value(s), the first at index {where}.")
    return arr


def read_grid(a: object, name: str, ndim: int, channels_last: bool) -> GridBatch:
    """The caller's ``x`` or ``y`` as items ``(*spatial, channels)``: ``ndim`` dims are one single-channel item,
    ``ndim + 1`` one item with channels, ``ndim + 2`` a batch; a list holds items of different shapes."""
    if isinstance(a, (list, tuple)) and len(a) and not np.isscalar(a[0]) and np.ndim(a[0]) >= ndim:
        items = [_numeric(v, f"{name}[{i}]") for i, v in enumerate(a)]
        if any(v.ndim not in (ndim, ndim + 1) for v in items):
            raise ValueError(f"each item of `{name}` must have {ndim} or {ndim + 1} dimensions.")
        arrays = tuple(_item(v, ndim, channels_last) for v in items)
        form, dtype = "list", np.result_type(*items)
    else:
        arr = _numeric(a, name)
        if arr.ndim == ndim:
            arrays, form = (arr[..., None],), "spatial"
        elif arr.ndim == ndim + 1:
            arrays, form = (_item(arr, ndim, channels_last),), "item"
        elif arr.ndim == ndim + 2:
            arrays, form = tuple(_item(v, ndim, channels_last) for v in arr), "batch"
        else:
            axes = "(*spatial)" if channels_last else "(channels, *spatial)"
            raise ValueError(
                f"`{name}` must have {ndim} {axes}, {ndim + 1} or {ndim + 2} (batch, ...) dimensions for a "
                f"{ndim}-D kernel, got shape {arr.shape}."
            )
        dtype = arr.dtype
    if not arrays:
        raise ValueError(f"`{name}` is empty.")
    if len({v.shape[-1] for v in arrays}) > 1:
        raise ValueError(f"every item of `{name}` must have the same number of channels.")
    is_complex = any(np.iscomplexobj(v) for v in arrays)
    kind = np.complex128 if is_complex else np.float64
    return GridBatch(tuple(np.ascontiguousarray(v, dtype=kind) for v in arrays), form, np.dtype(dtype))


def _item(v: np.ndarray, ndim: int, channels_last: bool) -> np.ndarray:
    if v.ndim == ndim:
        return v[..., None]
    return v if channels_last else np.moveaxis(v, 0, -1)


def restore_grid(outs: list[np.ndarray], form: str, channels_last: bool, dtype: np.dtype) -> Any:
    """Outputs ``(*spatial, O)`` given back in the form of ``x`` (a single-channel ``"spatial"`` item stays so)."""

    def one(o: np.ndarray) -> np.ndarray:
        o = o.astype(dtype, copy=False)
        if form == "spatial" and o.shape[-1] == 1:
            return o[..., 0]
        return o if channels_last else np.moveaxis(o, -1, 0)

    if form == "list":
        return [one(o) for o in outs]
    if form == "batch":
        return np.stack([one(o) for o in outs]) if outs else np.zeros((0,))
    return one(outs[0])


# -- the problem ---------------------------------------------------------------------------------------------


@dataclass(eq=False)
class GridProblem:
    """A validated grid problem: the configuration, the padded inputs and the outputs ``(*out_shape, O)``."""

    config: GridConfig
    xs: tuple[np.ndarray, ...]  # padded inputs (*padded, C)
    ys: tuple[np.ndarray, ...] | None  # outputs (*out_shape, O)
    shapes: tuple[tuple[int, ...], ...]  # input spatial shapes
    out_shapes: tuple[tuple[int, ...], ...]
    x_form: str
    dtype: np.dtype
    is_complex: bool
    cache: dict = field(default_factory=dict, repr=False)

    @property
    def n_equations(self) -> int:
        """Equations per output channel (each output sample of that channel is one)."""
        return int(sum(math.prod(s) for s in self.out_shapes))

    @property
    def n_columns(self) -> int:
        return self.config.unknowns_per_output

    @property
    def kind(self) -> type:
        return np.complex128 if self.is_complex else np.float64

    def group_outputs(self, g: int) -> np.ndarray:
        """The user output channels of group ``g``."""
        per = self.config.out_per_group
        return np.arange(g * per, (g + 1) * per)


def build_grid_problem(
    x: ArrayLike, y: ArrayLike | None, spec: GridSpec, *, out_channels: int | None = None
) -> GridProblem:
    """Read ``x`` (and ``y``), bind the channel counts, check the shapes, pad the inputs."""
    xb = read_grid(x, "x", spec.ndim, spec.channels_last)
    yb = None if y is None else read_grid(y, "y", spec.ndim, spec.channels_last)
    if yb is not None and len(yb.arrays) != len(xb.arrays):
        raise ValueError(f"`x` has {len(xb.arrays)} item(s) but `y` has {len(yb.arrays)}.")
    n_out = yb.channels if yb is not None else (spec.groups if out_channels is None else out_channels)
    n_out = check_int(n_out, "out_channels")
    cfg = spec.bind(xb.channels, n_out)
    shapes = tuple(v.shape[:-1] for v in xb.arrays)
    out_shapes = tuple(cfg.output_shape(s) for s in shapes)
    for i, (s, o) in enumerate(zip(shapes, out_shapes)):
        if min(o) <= 0:
            raise ValueError(
                f"`x` item {i} of spatial shape {s} is too small for kernel_size={cfg.kernel_size} (span "
                f"{cfg.span}) with padding={cfg.padding!r}: it gives no output."
            )
        if yb is not None and yb.arrays[i].shape[:-1] != o:
            raise ValueError(
                f"`y` item {i} has spatial shape {yb.arrays[i].shape[:-1]}, but x's shape {s} with "
                f"{cfg.describe()} gives {o}."
            )
    xs = tuple(np.pad(v, cfg.pads(v.shape[:-1]) + ((0, 0),)) for v in xb.arrays)
    is_complex = xb.is_complex or (yb is not None and yb.is_complex)
    if is_complex:
        xs = tuple(v.astype(np.complex128, copy=False) for v in xs)
    ys = None
    if yb is not None:
        ys = tuple(v.astype(np.complex128 if is_complex else np.float64, copy=False) for v in yb.arrays)
    return GridProblem(cfg, xs, ys, shapes, out_shapes, xb.form, xb.dtype, is_complex)


# -- design rows, statistics, forward ------------------------------------------------------------------------


def design_rows(problem: GridProblem, item: int, group: int, start: int = 0, stop: int | None = None) -> np.ndarray:
    """Rows ``start:stop`` (along the first output axis) of one item's design for one group, ``(rows, P)``.

    Columns: the kernel's ``(k_1, ..., k_N, c)`` in row-major order (correlation order: ``flip`` is applied to
    the kernel, not here), then a column of ones with ``use_bias``.  The one place grid design rows are cut.
    """
    cfg = problem.config
    n = cfg.ndim
    c0 = group * cfg.in_per_group
    xp = problem.xs[item][..., c0 : c0 + cfg.in_per_group]
    out = problem.out_shapes[item]
    stop = out[0] if stop is None else min(stop, out[0])
    first = slice(start * cfg.stride[0], (stop - 1) * cfg.stride[0] + cfg.span[0])
    windows = grid_windows(xp[first], cfg.span)  # (*pos, C, *span)
    pos = tuple(slice(None, None, s) for s in cfg.stride)
    taps = tuple(slice(None, None, d) for d in cfg.dilation)
    windows = windows[pos + (slice(None),) + taps]  # (*out, C, *K)
    windows = windows[(slice(0, stop - start),) + tuple(slice(0, o) for o in out[1:])]
    rows = np.moveaxis(windows, n, -1).reshape(-1, cfg.taps * cfg.in_per_group)
    if cfg.use_bias:
        rows = np.concatenate([rows, np.ones((len(rows), 1), dtype=rows.dtype)], axis=1)
    return rows


def row_chunks(problem: GridProblem, item: int) -> Iterator[tuple[int, int]]:
    """``(start, stop)`` along an item's first output axis, each chunk about ``CHUNK_ENTRIES`` design entries."""
    out = problem.out_shapes[item]
    per_row = max(math.prod(out[1:]) * problem.n_columns, 1)
    step = max(CHUNK_ENTRIES // per_row, 1)
    for start in range(0, out[0], step):
        yield start, min(start + step, out[0])


def group_targets(problem: GridProblem, item: int, group: int, start: int = 0, stop: int | None = None) -> np.ndarray:
    """The outputs matching :func:`design_rows`, ``(rows, out_per_group)``."""
    if problem.ys is None:
        raise ValueError("this needs the outputs `y`: the problem was built without them (y=None).")
    per = problem.config.out_per_group
    y = problem.ys[item][start:stop, ..., group * per : (group + 1) * per]
    return y.reshape(-1, per)


@dataclass(frozen=True)
class GridStatistics:
    """One group's sums over its design: ``gram = A^H A`` (P, P), ``cross = A^H Y`` (P, O_g), ``yty`` (O_g,).

    ``path``: how they were computed, ``"im2col"`` (row chunks) or ``"fft"`` (lagged correlations).
    """

    gram: np.ndarray
    cross: np.ndarray | None
    yty: np.ndarray | None
    n_rows: int
    path: str = "im2col"


def grid_statistics(problem: GridProblem, group: int, path: str = "auto") -> GridStatistics:
    """``A^H A``, ``A^H Y``, ``Y^H Y`` of one group (cached on the problem), exact on either path.

    Parameters
    ----------
    problem : GridProblem
    group : int
    path : {"auto", "im2col", "fft"}
        ``"im2col"``: sums over row chunks of the design, ``rows x P^2`` multiply-adds (one GEMM per chunk),
        memory ``O(CHUNK_ENTRIES + P^2)``; any stride and dilation.  ``"fft"``: lagged correlations with exact
        edges (:func:`~kernel_recovery.model.grid_gram.lagged_gram`), ``O((C^2 + C O) L log L)`` plus thin edge
        strips and ``2^N P^2`` to assemble; stride 1 only.  ``"auto"`` (the default) takes the cheaper by the cost
        model of :mod:`~kernel_recovery.model.grid_gram` (im2col wherever a stride exceeds 1); the choice is
        recorded in the result's ``path``.

    Returns
    -------
    GridStatistics
    """
    path = check_choice(path, "path", ("auto", "im2col", "fft"))
    key = ("statistics", group) if path == "auto" else ("statistics", group, path)
    if key in problem.cache:
        return problem.cache[key]
    cfg = problem.config
    if path == "auto":
        path = statistics_path(problem)
    if path == "fft" and any(s != 1 for s in cfg.stride):
        raise ValueError(f"`path`='fft' needs stride 1 along every axis, got stride={cfg.stride}.")
    p, per = problem.n_columns, cfg.out_per_group
    gram: np.ndarray = np.zeros((p, p), dtype=problem.kind)
    cross: np.ndarray | None = None if problem.ys is None else np.zeros((p, per), dtype=problem.kind)
    yty: np.ndarray | None = None if problem.ys is None else np.zeros(per)
    if path == "fft":
        c0 = group * cfg.in_per_group
        for i, x in enumerate(problem.xs):
            y = None if problem.ys is None else problem.ys[i][..., group * per : (group + 1) * per]
            g, c = lagged_gram(x[..., c0 : c0 + cfg.in_per_group], cfg.kernel_size, cfg.dilation, y, cfg.use_bias)
            gram += g
            if cross is not None and yty is not None and c is not None and y is not None:
                cross += c
                yty += np.einsum("ij,ij->j", y.reshape(-1, per).conj(), y.reshape(-1, per)).real
        stats = GridStatistics((gram + gram.conj().T) / 2, cross, yty, problem.n_equations, "fft")
        problem.cache[key] = stats
        return stats
    for i in range(len(problem.xs)):
        for start, stop in row_chunks(problem, i):
            a = design_rows(problem, i, group, start, stop)
            gram += a.conj().T @ a
            if cross is not None and yty is not None:
                t = group_targets(problem, i, group, start, stop)
                cross += a.conj().T @ t
                yty += np.einsum("ij,ij->j", t.conj(), t).real
    gram = (gram + gram.conj().T) / 2  # exactly Hermitian
    stats = GridStatistics(gram, cross, yty, problem.n_equations, "im2col")
    problem.cache[key] = stats
    return stats


def statistics_path(problem: GridProblem) -> str:
    """The path ``"auto"`` takes in :func:`grid_statistics`: ``"im2col"`` or ``"fft"``, the cheaper by the cost
    model of :mod:`~kernel_recovery.model.grid_gram` (``"im2col"`` wherever a stride exceeds 1)."""
    cfg = problem.config
    if any(s != 1 for s in cfg.stride):
        return "im2col"
    outs = cfg.out_per_group if problem.ys is not None else 0
    fft = sum(
        fft_gram_cost(x.shape[:-1], cfg.kernel_size, cfg.dilation, cfg.in_per_group, outs, problem.is_complex)
        for x in problem.xs
    )
    rows = problem.n_equations
    im2col = im2col_gram_cost(rows, problem.n_columns, outs, problem.is_complex)
    return "fft" if fft < im2col else "im2col"


def kernel_columns(cfg: GridConfig, kernel: np.ndarray, group: int) -> np.ndarray:
    """The user kernel's coefficients of one group over the design's columns, ``(taps * C_g, O_g)`` (no bias)."""
    per = cfg.out_per_group
    w = kernel[..., group * per : (group + 1) * per]
    if cfg.flip:
        w = w[tuple(slice(None, None, -1) for _ in range(cfg.ndim))]
    return w.reshape(cfg.taps * cfg.in_per_group, per)


def columns_to_kernel(cfg: GridConfig, coefs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
    """Per-group coefficients over the design's columns ``(P, O_g)`` as the user's kernel and bias."""
    n_kernel = cfg.taps * cfg.in_per_group
    parts = [c[:n_kernel].reshape(cfg.kernel_size + (cfg.in_per_group, -1)) for c in coefs]
    kernel = np.concatenate(parts, axis=-1)
    if cfg.flip:
        kernel = kernel[tuple(slice(None, None, -1) for _ in range(cfg.ndim))]
    bias = np.concatenate([c[n_kernel] for c in coefs]) if cfg.use_bias else None
    return np.ascontiguousarray(kernel), bias


def forward(problem: GridProblem, kernel: np.ndarray, bias: np.ndarray | None = None) -> list[np.ndarray]:
    """The outputs ``(*out_shape, O)`` of every item for a user kernel (and bias), by chunked design products."""
    cfg = problem.config
    kind = np.result_type(problem.kind, kernel.dtype, float if bias is None else bias.dtype)
    outs = [np.zeros(s + (cfg.out_channels,), dtype=kind) for s in problem.out_shapes]
    per = cfg.out_per_group
    for g in range(cfg.groups):
        w = kernel_columns(cfg, kernel, g)
        if cfg.use_bias:
            b = np.zeros(per) if bias is None else bias[g * per : (g + 1) * per]
            w = np.concatenate([w, np.asarray(b)[None]])
        for i, out in enumerate(outs):
            for start, stop in row_chunks(problem, i):
                rows = design_rows(problem, i, g, start, stop) @ w
                out[start:stop, ..., g * per : (g + 1) * per] = rows.reshape(out[start:stop].shape[:-1] + (per,))
    if bias is not None and not cfg.use_bias:
        for out in outs:
            out += bias
    return outs


def conv(
    x: ArrayLike,
    kernel: ArrayLike,
    bias: ArrayLike | None = None,
    *,
    stride: int | Sequence[int] = 1,
    padding: str | int | Sequence[Any] = "valid",
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
    layout: str = "channels_last",
    flip: bool = False,
) -> Any:
    """Apply an N-D convolution layer (N = 1, 2, 3) exactly as Keras ``Conv1D/2D/3D`` and PyTorch
    ``nn.Conv1d/2d/3d`` do, for real or complex arrays.

    Parameters
    ----------
    x : array_like or list of array_like
        Input. Channels-last (``layout="channels_last"``, also spelled ``"nwc"``, ``"nhwc"``, ``"ndhwc"``):
        ``(batch, *spatial, in_channels)``, one item ``(*spatial, in_channels)``, or ``(*spatial)`` for one
        channel.  Channels-first (``"channels_first"``, ``"ncw"``, ``"nchw"``, ``"ncdhw"``):
        ``(batch, in_channels, *spatial)`` or ``(in_channels, *spatial)``.  A list is a batch of items of
        different spatial shapes.
    kernel : array_like
        ``(*kernel_size, in_channels // groups, out_channels)`` (the Keras layout, whatever ``layout``); N, the
        number of spatial axes, is ``kernel.ndim - 2``.
    bias : array_like, optional
        ``(out_channels,)``.
    stride, dilation : int or tuple of int
        One value for every axis or one per axis.
    padding : {"valid", "same", "full"}, int, tuple
        ``"same"`` follows TensorFlow (the extra zero after); ``"causal"`` only for N = 1.  An int pads every
        side; N ints pad each axis on both sides (PyTorch); N ``(before, after)`` pairs pad each side.
    groups : int
        As in Keras/PyTorch.
    flip : bool
        True: true convolution (the kernel reversed along every spatial axis), as ``scipy.signal.convolve``.

    Returns
    -------
    y : ndarray or list of ndarray
        In the form of ``x``; complex when ``x`` or the kernel is complex.  Computed in float64/complex128.

    Examples
    --------
    >>> import numpy as np, kernel_recovery as kr
    >>> x = np.arange(16.0).reshape(4, 4)
    >>> kr.conv(x, np.ones((2, 2, 1, 1)))  # a 2x2 box sum
    array([[10., 14., 18.],
           [26., 30., 34.],
           [42., 46., 50.]])
    """
    w = _numeric(kernel, "kernel")
    if w.ndim < 3 or w.ndim > 5:
        raise ValueError(
            f"`kernel` must be (*kernel_size, in_channels // groups, out_channels) with 1 to 3 spatial axes, "
            f"got shape {w.shape}."
        )
    if w.size == 0:
        raise ValueError(f"`kernel` is empty (shape {w.shape}).")
    spec = GridSpec.create(
        w.shape[:-2], stride=stride, padding=padding, dilation=dilation, groups=groups, layout=layout, flip=flip
    )
    problem = build_grid_problem(x, None, spec, out_channels=w.shape[-1])
    cfg = problem.config
    if w.shape[-2] != cfg.in_per_group:
        raise ValueError(
            f"`kernel` has shape {w.shape}, but x has {cfg.in_channels} channels and groups={cfg.groups}, so "
            f"kernel.shape[-2] must be in_channels // groups = {cfg.in_per_group}."
        )
    b = None
    if bias is not None:
        b = _numeric(bias, "bias")
        if b.shape != (cfg.out_channels,):
            raise ValueError(f"`bias` must have shape (out_channels,) = ({cfg.out_channels},), got {b.shape}.")
    kind = np.result_type(problem.kind, w.dtype, np.float32, *([] if b is None else [b.dtype]))
    wk = w.astype(np.complex128 if np.iscomplexobj(w) else np.float64)
    outs = forward(problem, wk, None if b is None else b.astype(np.result_type(b.dtype, np.float64)))
    return restore_grid(outs, problem.x_form, cfg.channels_last, np.dtype(kind))
