"""Streaming sufficient statistics: :class:`NormalEquations`.

Sequences arrive in chunks of any size.  The accumulator keeps, per sequence, the few input samples whose
output equations are not complete yet (a receptive field spans ``(kernel_size - 1) * dilation + 1``
samples across a chunk boundary) and turns every complete stretch of equations into a *valid* problem on
that stretch of the padded input.  Those stretches partition the rows of the full design, so their
statistics add up to exactly the statistics of the whole sequence, for every padding, stride, dilation and
groups configuration.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypedDict

import numpy as np
from numpy.typing import ArrayLike

from . import pipeline
from .operator import EXPLICIT_LIMIT, Statistics, add_statistics, block_statistics
from .problem import (
    Block,
    CanonicalProblem,
    ConvConfig,
    Layout,
    Padding,
    PaddingMode,
    _check_dtype,
    _check_finite,
    build_problem,
    lag_alignment,
    check_bool,
    check_gram_memory,
    check_lags,
    check_layout,
    check_padding,
    check_positive_int,
    unmask,
)
from .result import KernelResult

if TYPE_CHECKING:
    from .solvers.lstsq import Regularization


class _Settings(TypedDict):
    """The validated constructor arguments (channel counts come with the first chunk)."""

    kernel_size: int
    stride: int
    padding: PaddingMode | tuple[int, int]
    dilation: int
    groups: int
    use_bias: bool
    layout: Layout
    flip: bool
    lags: tuple[int, int] | None


@dataclass(eq=False)
class _StreamedBlock(Block):
    """A block whose statistics were accumulated; ``xs``/``ys`` hold the retained rows (all of them if small)."""

    n_rows: int = 0

    @property
    def n_equations(self) -> int:
        return self.n_rows

    @property
    def retains_rows(self) -> bool:
        return sum(len(x) - self.taps + 1 for x in self.xs) == self.n_rows


class NormalEquations:
    """Accumulate ``A^T A``, ``A^T Y``, ``Y^T Y`` and counts of a Conv1D problem, chunk by chunk.

    Parameters
    ----------
    kernel_size : int, optional
    stride, padding, dilation, groups, use_bias, layout, flip, lags
        The configuration, as in :func:`recover_kernel` (``lags=(first, last)`` replaces ``kernel_size`` and
        ``padding``).  Channel counts are read from the first chunk.

    Notes
    -----
    ``update(x_chunk, y_chunk)`` appends to the current sequence (the chunk boundaries of ``x`` and ``y``
    need not line up); ``end_sequence()`` closes it (its right padding is applied then), and the next update
    starts a new sequence.  :meth:`solve` treats an open sequence as ended, without closing it (if
    its ``x`` and ``y`` counts do not match yet, only its complete equations are used).  Memory is
    ``O(chunk + (kernel_size * in_channels)^2)``, except with ``padding="same"`` and ``stride > 1``, where the
    left padding depends on the sequence's length, so the sequence is held until it ends.

    :meth:`merge` adds another accumulator's sequences (e.g. from another worker).  To split one long
    sequence across workers with ``padding="valid"``, give each worker a stretch of ``x`` that overlaps the
    next by ``span - stride`` samples, and the outputs of that stretch.

    Examples
    --------
    >>> import numpy as np, kernel_recovery as kr
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal(1000)
    >>> y = kr.conv1d(x, [0.5, -1.0, 2.0], padding="same")
    >>> acc = kr.NormalEquations(3, padding="same")
    >>> for i in range(0, 1000, 300):
    ...     acc.update(x[i : i + 300], y[i : i + 300])
    >>> acc.solve().kernel.ravel().round(12)
    array([ 0.5, -1. ,  2. ])
    """

    def __init__(
        self,
        kernel_size: int | None = None,
        *,
        stride: int = 1,
        padding: Padding = "valid",
        dilation: int = 1,
        groups: int = 1,
        use_bias: bool = False,
        layout: Layout = "nwc",
        flip: bool = False,
        lags: tuple[int, int] | None = None,
    ) -> None:
        stride = check_positive_int(stride, "stride")
        dilation = check_positive_int(dilation, "dilation")
        if lags is not None:  # a lag range is an alignment: kernel_size and (possibly negative) padding
            lags = check_lags(lags)
            pad = padding if padding == (lags[1], -lags[0]) else check_padding(padding)
            kernel_size, pad = lag_alignment(lags, kernel_size, pad, stride, dilation)
        else:
            pad = check_padding(padding)
        self._args = _Settings(
            kernel_size=check_positive_int(kernel_size, "kernel_size"),
            stride=stride,
            padding=pad,
            dilation=dilation,
            groups=check_positive_int(groups, "groups"),
            use_bias=check_bool(use_bias, "use_bias"),
            layout=check_layout(layout),
            flip=check_bool(flip, "flip"),
            lags=lags,
        )
        self.config: ConvConfig | None = None
        self._stats: list[Statistics | None] = []
        self._kept: list[tuple[list[np.ndarray], list[np.ndarray]]] = []  # retained canonical rows per block
        self._kept_rows = 0
        self._lengths: list[int] = []
        self._out_lengths: list[int] = []
        self._open = False

    # -- feeding ---------------------------------------------------------------------------------

    def _read(self, chunk: ArrayLike, name: str, channels: int | None) -> np.ndarray:
        arr = np.asarray(unmask(chunk, name))
        _check_dtype(arr, name)
        if arr.ndim == 1:
            arr = arr[:, None]
        elif arr.ndim == 2:
            if self._args["layout"] == "ncw":
                arr = arr.T
        else:
            raise ValueError(f"`{name}` must be 1-D or 2-D (one stretch of one sequence), got shape {arr.shape}.")
        arr = np.asarray(arr, dtype=np.float64)
        _check_finite(arr, name)
        if channels is not None and arr.shape[1] != channels:
            raise ValueError(f"`{name}` has {arr.shape[1]} channels, but earlier chunks had {channels}.")
        return arr

    def update(self, x_chunk: ArrayLike, y_chunk: ArrayLike) -> None:
        """Append a stretch of the current sequence: inputs ``x_chunk`` and outputs ``y_chunk`` (any lengths)."""
        cfg = self.config
        x = self._read(x_chunk, "x_chunk", None if cfg is None else cfg.in_channels)
        y = self._read(y_chunk, "y_chunk", None if cfg is None else cfg.out_channels)
        if cfg is None:
            a = self._args
            cfg = ConvConfig.create(
                a["kernel_size"],
                x.shape[1],
                y.shape[1],
                stride=a["stride"],
                padding=a["padding"],
                dilation=a["dilation"],
                groups=a["groups"],
                use_bias=a["use_bias"],
                layout=a["layout"],
                flip=a["flip"],
                lags=a["lags"],
            )
            check_gram_memory(cfg)  # before the first Gram is allocated
            self.config = cfg
            self._stats = [None] * cfg.groups
            self._kept = [([], []) for _ in range(cfg.groups)]
        if not self._open:
            self._open = True
            self._n_in = 0
            self._left = self._left_pad()
            self._xbuf = np.zeros((0 if self._left is None else max(self._left, 0), cfg.in_channels))
            self._skip = 0 if self._left is None else max(-self._left, 0)  # a negative left padding crops
            self._ybuf = np.zeros((0, cfg.out_channels))
            self._y_seen = 0
            self._y_done = 0
        self._n_in += len(x)
        self._y_seen += len(y)
        if self._skip:
            drop, self._skip = min(self._skip, len(x)), self._skip - min(self._skip, len(x))
            x = x[drop:]
        self._xbuf = np.concatenate([self._xbuf, x])
        self._ybuf = np.concatenate([self._ybuf, y])
        if self._left is not None:
            self._consume()

    def end_sequence(self) -> None:
        """Close the current sequence: apply its right padding and account for its last equations."""
        if not self._open:
            return
        cfg = self._cfg
        length = self._n_in
        out = cfg.output_length(length)
        if out < 1:
            raise ValueError(
                f"the sequence has {length} samples, too short for {cfg.describe()}: a receptive field spans "
                f"{cfg.span} samples."
            )
        if self._y_seen != out:
            raise ValueError(
                f"the sequence has {length} input samples, which give {out} outputs with {cfg.describe()}, "
                f"but {self._y_seen} output samples were given."
            )
        left, right = cfg.pads(length)
        if self._left is None:
            self._xbuf = np.concatenate([np.zeros((left, cfg.in_channels)), self._xbuf])
            self._left = left
        self._xbuf = np.concatenate([self._xbuf, np.zeros((max(right, 0), cfg.in_channels))])
        self._consume()
        self._lengths.append(length)
        self._out_lengths.append(out)
        self._open = False
        del self._xbuf, self._ybuf

    @property
    def _cfg(self) -> ConvConfig:
        """The configuration, known once the first chunk is read (every open sequence has one)."""
        if self.config is None:
            raise ValueError("no data yet: call update(x_chunk, y_chunk) first.")
        return self.config

    def _left_pad(self) -> int | None:
        cfg = self._cfg
        if cfg.padding == "same" and cfg.stride > 1:
            return None  # depends on the length modulo the stride
        return cfg.pads(cfg.stride)[0] if cfg.padding == "same" else cfg.pads(0)[0]

    def _consume(self) -> None:
        """Account for every output whose receptive field is complete; drop the inputs no longer needed."""
        cfg = self._cfg
        s, span = cfg.stride, cfg.span
        ready = min(len(self._ybuf), max((len(self._xbuf) - span) // s + 1, 0))
        if ready < 1:
            return
        seg_x = self._xbuf[: (ready - 1) * s + span]
        seg_y = self._ybuf[:ready]
        problem = build_problem(
            seg_x,
            seg_y,
            cfg.kernel_size,
            stride=s,
            padding="valid",
            dilation=cfg.dilation,
            groups=cfg.groups,
            use_bias=cfg.use_bias,
            layout="nwc",
            flip=cfg.flip,
        )
        p = problem.blocks[0].n_free + int(cfg.use_bias)
        keep = (self._kept_rows + ready) * p <= EXPLICIT_LIMIT
        for g, block in enumerate(problem.blocks):
            self._stats[g] = add_statistics(self._stats[g], block_statistics(block, cfg.use_bias))
            if keep:
                assert block.ys is not None  # built from outputs
                self._kept[g][0].extend(np.array(x) for x in block.xs)
                self._kept[g][1].extend(np.array(y) for y in block.ys)
        if keep:
            self._kept_rows += ready
        self._xbuf = self._xbuf[ready * s :]
        self._ybuf = self._ybuf[ready:]
        self._y_done += ready

    def merge(self, other: NormalEquations) -> NormalEquations:
        """Add the sequences of ``other`` (its open sequence treated as ended); returns ``self``."""
        if not isinstance(other, NormalEquations):
            raise TypeError(f"`other` must be a NormalEquations, got {type(other).__name__}.")
        if other is self:
            raise ValueError(
                "cannot merge an accumulator with itself: that would count every equation twice. To weight the data "
                "twice on purpose, merge a copy: `acc.merge(copy.deepcopy(acc))`."
            )
        if other._merge_key() != self._merge_key():
            raise ValueError(
                f"cannot merge accumulators with different configurations: {self._args} and {other._args}."
            )
        other = other._closed()
        if other.config is None:
            return self
        if self.config is None:
            self.config = dataclasses.replace(other.config, padding=self._args["padding"])  # self's own spelling
            self._stats = [None] * other.config.groups
            self._kept = [([], []) for _ in range(other.config.groups)]
        elif (self.config.in_channels, self.config.out_channels) != (
            other.config.in_channels,
            other.config.out_channels,
        ):
            raise ValueError(
                f"cannot merge data with {other.config.in_channels} input / {other.config.out_channels} output "
                "channels "
                f"into data with {self.config.in_channels} / {self.config.out_channels}."
            )
        p = self.config.unknowns_per_output
        keep = self._all_kept() and other._all_kept() and (self._kept_rows + other._kept_rows) * p <= EXPLICIT_LIMIT
        for g in range(self.config.groups):
            theirs = other._stats[g]
            if theirs is not None:
                self._stats[g] = add_statistics(self._stats[g], theirs)
            if keep:
                self._kept[g][0].extend(other._kept[g][0])
                self._kept[g][1].extend(other._kept[g][1])
        if keep:
            self._kept_rows += other._kept_rows
        self._lengths += other._lengths
        self._out_lengths += other._out_lengths
        return self

    def _merge_key(self) -> _Settings:
        """The configuration, with ``padding`` as its (left, right) zeros wherever they do not depend on the length.

        Such paddings give the same equations for every sequence, so accumulators that spell them differently
        ("valid", 0, (0, 0); "causal" and ``(span - 1, 0)``; "same" at stride 1) hold compatible statistics.
        """
        a = self._args.copy()
        if not (a["padding"] == "same" and a["stride"] > 1):
            cfg = ConvConfig(a["kernel_size"], 1, 1, padding=a["padding"], dilation=a["dilation"])
            a["padding"] = cfg.pads(0)
        return a

    def __copy__(self) -> NormalEquations:
        # a shallow copy would share the per-group statistics lists, so updating or merging one would change both
        return copy.deepcopy(self)

    # -- results ---------------------------------------------------------------------------------

    def _all_kept(self) -> bool:
        return self.n_equations == self._kept_rows

    def _closed(self) -> NormalEquations:
        if not self._open:
            return self
        done = copy.deepcopy(self)
        if done._left is not None and done._y_seen != done._cfg.output_length(done._n_in):
            # a partial stretch: keep the equations already complete, as if the sequence stopped there
            done._lengths.append(done._n_in)
            done._out_lengths.append(done._y_done)
            done._open = False
        else:
            done.end_sequence()
        return done

    @property
    def n_equations(self) -> int:
        """Output samples accounted for so far (per output channel), in closed sequences and the open one."""
        if self.config is None or self._stats[0] is None:
            return 0
        return int(self._stats[0].n_rows)

    def statistics(self) -> list[Statistics]:
        """Per group: the accumulated :class:`~kernel_recovery.statistics.Statistics` (open sequence ended)."""
        done = self._closed()
        stats = [s for s in done._stats if s is not None]
        if not stats or len(stats) < len(done._stats):  # the groups are accumulated together: all or none
            raise ValueError("no data yet: call update(x_chunk, y_chunk) first.")
        return stats

    def problem(self) -> CanonicalProblem:
        """The canonical problem the statistics describe (statistics cached on its blocks)."""
        done = self._closed()
        stats = done.statistics()
        cfg = done._cfg
        template = build_problem(
            np.zeros((cfg.span, cfg.in_channels)),
            np.zeros((1, cfg.out_channels)),
            cfg.kernel_size,
            stride=cfg.stride,
            padding="valid",
            dilation=cfg.dilation,
            groups=cfg.groups,
            use_bias=cfg.use_bias,
            flip=cfg.flip,
        )
        blocks: list[Block] = []
        for g, tb in enumerate(template.blocks):
            xs, ys = done._kept[g]
            blk = _StreamedBlock(list(xs), list(ys), tb.taps, tb.mask.copy(), tb.out_channels, n_rows=stats[g].n_rows)
            blk.cache[("statistics", cfg.use_bias)] = stats[g]
            blocks.append(blk)
        return dataclasses.replace(
            template,
            config=cfg,
            blocks=blocks,
            lengths=tuple(done._lengths),
            out_lengths=tuple(done._out_lengths),
            inputs=None,
        )

    def solve(
        self, *, ridge: float = 0.0, regularization: Regularization | None = None, warn: bool = True
    ) -> KernelResult:
        """Least squares from the accumulated statistics, as ``recover_kernel(method="lstsq")`` would give.

        Parameters
        ----------
        ridge, regularization
            As for ``method="lstsq"`` (robust losses need the data and are not available here).
        warn : bool
            Issue the analyzer's warnings (underdetermined, ill-conditioned).

        Returns
        -------
        KernelResult
            Built by the same pipeline as :func:`recover_kernel` (same fields and diagnostics keys).  While every
            row is retained (small problems) the explicit-design path is used, exactly as in
            :func:`recover_kernel`; otherwise the normal equations, without data-based refinement
            (``diagnostics["solver"]`` says which), and the post-fit checks that need the rows are skipped
            (``diagnostics["checks"]`` says why).
        """
        options = {"ridge": ridge, "regularization": regularization}  # validated by the solver, as for recover_kernel
        return pipeline.run(self.problem(), "lstsq", options, warn=warn, stacklevel=2)
