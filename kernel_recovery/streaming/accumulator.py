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
import json
import math
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

from ..model.arrays import check_array_dtype, check_array_finite, jsonable, unmask
from ..model.config import ConvConfig, ConvSettings, ConvSpec
from ..model.design import EXPLICIT_LIMIT, design_rows, n_columns
from ..model.problem import Block, CanonicalProblem, build_problem, check_gram_memory
from ..model.result import KernelResult
from ..model.spectrum import BlockSpectrum, rank_tolerance
from ..model.statistics import CHUNK_ENTRIES, Statistics, add_statistics, block_statistics
from ..model.toeplitz import LONG_KERNEL
from ..model.validation import check_int, check_real
from ..solvers import pipeline
from .checkpoint import STATE_FORMAT, STATE_VERSION, StateReader, pack, read_state, statistics_state, write_state

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ..solvers.lstsq import Regularization


def check_memory(forgetting: object, window: object) -> tuple[float | None, int | None]:
    """Validate ``forgetting`` (in (0, 1]) and ``window`` (a positive number of equations); at most one of them."""
    if forgetting is not None and window is not None:
        raise ValueError(
            f"give `forgetting` (={forgetting!r}) or `window` (={window!r}), not both: one says how old equations "
            "fade, the other drops them after `window` equations."
        )
    if forgetting is not None:
        forgetting = check_real(forgetting, "forgetting", low=0, high=1, low_open=True)  # 1: no forgetting
    if window is not None:
        window = check_int(window, "window")
    return forgetting, window


@dataclass
class _Piece:
    """With a window: one stretch of consecutive equations of one sequence, its padded inputs and outputs."""

    x: np.ndarray  # ((n - 1) * stride + span, in_channels): output i reads x[i * stride : i * stride + span]
    y: np.ndarray  # (n, out_channels)
    stats: list[Statistics]  # per group
    sequence: int

    @property
    def n(self) -> int:
        return len(self.y)


def _scaled(stats: Statistics | None, factor: float) -> Statistics | None:
    if stats is None or factor == 1.0:
        return stats
    return Statistics(
        stats.gram * factor,
        None if stats.cross is None else stats.cross * factor,
        None if stats.yty is None else stats.yty * factor,
        stats.n_rows * factor,  # type: ignore[arg-type]  # with forgetting: the effective number of equations
    )


def weighted_statistics(block: Block, use_bias: bool, weights: np.ndarray, interleave: int) -> Statistics:
    """``A^T W A``, ``A^T W Y``, ``sum w y^2`` and ``sum w`` of a block, one weight per output sample in time order.

    The block's subsequence ``r`` holds the output samples ``r, r + interleave, ...`` (the dilation's split, see
    :mod:`~kernel_recovery.model.problem`).  Weights break the Toeplitz structure of the Gram, so the rows are cut
    (``design_rows``) and multiplied in chunks of ``CHUNK_ENTRIES``.
    """
    p = n_columns(block, use_bias)
    ys = block.outputs
    o = ys[0].shape[1]
    gram, cross, yty = np.zeros((p, p)), np.zeros((p, o)), np.zeros(o)
    rows_per = max(CHUNK_ENTRIES // p, 1)
    for r, (x, y) in enumerate(zip(block.xs, ys)):
        w = weights[r::interleave]
        for start in range(0, len(y), rows_per):
            a = design_rows(block, x, use_bias, start, start + rows_per)
            ws = w[start : start + rows_per]
            wa = a * ws[:, None]
            gram += wa.T @ a
            cross += wa.T @ y[start : start + rows_per]
            yty += ws @ (y[start : start + rows_per] ** 2)
    return Statistics((gram + gram.T) / 2, cross, yty, float(weights.sum()))  # type: ignore[arg-type]


def forgetting_stderr_scale(sum_w: float, sum_w2: float, n_unknowns: int) -> float:
    """The factor that turns weighted least squares' ``sqrt(diag(G^-1) rss / (sum w - P))`` into the standard error.

    With weights ``w``, ``cov = sigma^2 G^-1 (A^T W^2 A) G^-1 ~ kappa sigma^2 G^-1`` and
    ``E[rss] ~ sigma^2 (sum w - kappa P)``, for ``kappa = sum w^2 / sum w`` (exact for equal weights, where the factor
    is 1; for exponential forgetting it treats the input as stationary over the memory, and ``kappa -> 1 / (1 +
    lambda)``).  NaN where no degrees of freedom are left.
    """
    kappa = sum_w2 / sum_w if sum_w > 0 else 1.0
    left = sum_w - kappa * n_unknowns
    if left <= 0 or sum_w <= n_unknowns:
        return math.nan
    return math.sqrt(kappa * (sum_w - n_unknowns) / left)


def _gram_spectrum(gram: np.ndarray, n_rows: float) -> BlockSpectrum:
    """The spectrum of a Gram whose rows are not kept (eigenvalues; the rank rule for ``"gram"``)."""
    lam, v = np.linalg.eigh(gram)
    s = np.sqrt(np.clip(lam[::-1], 0.0, None))
    return BlockSpectrum(s, v[:, ::-1], rank_tolerance(s[0], max(int(n_rows), 1), len(s), "gram"), False)


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
    forgetting : float in (0, 1], optional
        Exponential forgetting: the equation ``k`` places before the newest weighs ``forgetting ** k``, and
        :meth:`solve` gives the exact weighted least-squares (RLS) solution of the equations so far.
    window : int, optional
        A sliding window: only the newest ``window`` equations (output samples, across sequences) count; older
        ones are removed exactly.  Not together with ``forgetting``.

    Notes
    -----
    ``update(x_chunk, y_chunk)`` appends to the current sequence (the chunk boundaries of ``x`` and ``y``
    need not line up); ``end_sequence()`` closes it (its right padding is applied then), and the next update
    starts a new sequence.  :meth:`solve` treats an open sequence as ended, without closing it (if
    its ``x`` and ``y`` counts do not match yet, only its complete equations are used).  Memory is
    ``O(chunk + (kernel_size * in_channels)^2)``, except with ``padding="same"`` and ``stride > 1``, where the
    left padding depends on the sequence's length, so the sequence is held until it ends.

    Long single-input kernels (every group one input channel, at least ``LONG_KERNEL`` taps, stride and
    dilation 1, no memory) keep their data instead of their statistics while the data take no more room than
    the statistics would (``P (P + O)`` floats per group, ``P`` coefficients, ``O`` outputs): :meth:`solve` then
    solves those rows as :func:`recover_kernel` does (Toeplitz CG by FFT, ``O(N log K)``, instead of
    ``O(K^2)`` per chunk to accumulate the Gram and ``O(K^3)`` to factor it).  Once the data outgrow that room,
    their statistics are accumulated from the rows kept so far and from every later chunk, as for any kernel.

    With ``forgetting``, a stretch of ``n`` equations updates ``G <- forgetting^n G + A^T W A`` (and likewise
    ``A^T W Y``, ``Y^T W Y`` and the weights' sum), where ``W`` weighs the stretch's row ``s`` by
    ``forgetting^(n - 1 - s)``; the weighted rows are multiplied explicitly (the weights break the Toeplitz
    shortcut), ``O(n P^2)``.  With a ``window``, the accumulator keeps the window's inputs and the statistics of
    its stretches (at most ~64 per sequence) and re-adds them after each update, never subtracting, so removal is
    exact.  Neither keeps rows for the explicit path under forgetting (the weights are not in the rows); a small
    window is solved from its rows, as :func:`recover_kernel` would solve those equations.

    :meth:`save` / :meth:`load` (and :meth:`to_state` / :meth:`from_state`) checkpoint every piece of the state,
    an open sequence included, in an ``.npz`` file without pickles: a loaded accumulator continues exactly as if
    it had never stopped.

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
        forgetting: float | None = None,
        window: int | None = None,
        **settings: Unpack[ConvSettings],
    ) -> None:
        self._start(ConvSpec.create(kernel_size, **settings), *check_memory(forgetting, window))

    @classmethod
    def from_spec(
        cls, spec: ConvSpec, *, forgetting: float | None = None, window: int | None = None
    ) -> NormalEquations:
        """An empty accumulator of an already validated configuration (``forgetting``, ``window`` as above)."""
        acc = cls.__new__(cls)
        acc._start(spec, *check_memory(forgetting, window))
        return acc

    def _start(self, spec: ConvSpec, forgetting: float | None, window: int | None) -> None:
        self._spec = spec  # (a lag range is spelled out as kernel_size and a possibly negative padding)
        self._forgetting, self._window = forgetting, window
        self.config: ConvConfig | None = None
        self._stats: list[Statistics | None] = []
        self._kept: list[tuple[list[np.ndarray], list[np.ndarray]]] = []  # retained canonical rows per block
        self._kept_rows = 0
        self._joins: list[bool] = []  # per kept stretch: it continues the previous one (same sequence, next rows)
        self._kept_floats = 0  # floats of kept inputs and outputs (of the largest group), for the long-kernel room
        self._rows_first = False  # a long single-input kernel: rows kept, statistics deferred (see the class notes)
        self._lengths: list[int] = []
        self._out_lengths: list[int] = []
        self._open = False
        self._count = 0  # equations in the statistics (with a window: in the window)
        self._weight_sq = 0.0  # with forgetting: the sum of the squared weights (for the effective sample size)
        self._pieces: list[_Piece] = []  # with a window: the stretches of equations in it, oldest first

    # -- feeding ---------------------------------------------------------------------------------

    def _read(self, chunk: ArrayLike, name: str, channels: int | None) -> np.ndarray:
        arr = np.asarray(unmask(chunk, name))
        check_array_dtype(arr, name)
        if arr.ndim == 1:
            arr = arr[:, None]
        elif arr.ndim == 2:
            if self._spec.layout == "ncw":
                arr = arr.T
        else:
            raise ValueError(f"`{name}` must be 1-D or 2-D (one stretch of one sequence), got shape {arr.shape}.")
        arr = np.asarray(arr, dtype=np.float64)
        check_array_finite(arr, name)
        if channels is not None and arr.shape[1] != channels:
            raise ValueError(f"`{name}` has {arr.shape[1]} channels, but earlier chunks had {channels}.")
        return arr

    def update(self, x_chunk: ArrayLike, y_chunk: ArrayLike) -> None:
        """Append a stretch of the current sequence: inputs ``x_chunk`` and outputs ``y_chunk`` (any lengths)."""
        cfg = self.config
        x = self._read(x_chunk, "x_chunk", None if cfg is None else cfg.in_channels)
        y = self._read(y_chunk, "y_chunk", None if cfg is None else cfg.out_channels)
        if cfg is None:
            cfg = self._configure(x.shape[1], y.shape[1])
        if not self._open:
            self._open = True
            self._n_in = 0
            self._left = self._left_pad()
            self._xbuf = np.zeros((0 if self._left is None else max(self._left, 0), cfg.in_channels))
            self._skip = 0 if self._left is None else max(-self._left, 0)  # a negative left padding crops
            self._ybuf = np.zeros((0, cfg.out_channels))
            self._y_seen = 0
            self._y_done = 0
            self._continues = False  # whether the next stretch continues a kept one of this sequence
        self._n_in += len(x)
        self._y_seen += len(y)
        if self._skip:
            drop, self._skip = min(self._skip, len(x)), self._skip - min(self._skip, len(x))
            x = x[drop:]
        self._xbuf = np.concatenate([self._xbuf, x])
        self._ybuf = np.concatenate([self._ybuf, y])
        if self._left is not None:
            self._consume()

    def _configure(self, in_channels: int, out_channels: int) -> ConvConfig:
        """Set the configuration once the channel counts are known (the first chunk, or a checkpoint)."""
        cfg = self._spec.bind(in_channels, out_channels)
        check_gram_memory(cfg)  # before the first Gram is allocated
        self.config = cfg
        self._stats = [None] * cfg.groups
        self._kept = [([], []) for _ in range(cfg.groups)]
        self._joins = []
        self._rows_first = (
            self._forgetting is None
            and self._window is None
            and cfg.stride == 1
            and cfg.dilation == 1
            and cfg.in_per_group == 1
            and cfg.kernel_size >= LONG_KERNEL
        )
        return cfg

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
        self._continues = False
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
        problem = self._segment(seg_x, seg_y)
        if self._window is not None:
            self._add_piece(_Piece(np.array(seg_x), np.array(seg_y), self._segment_stats(problem), len(self._lengths)))
        elif self._forgetting is not None:
            lam = self._forgetting
            weights = lam ** np.arange(ready - 1, -1, -1.0)  # the newest equation weighs 1
            decay = lam**ready
            interleave = cfg.dilation // math.gcd(s, cfg.dilation)
            for g, block in enumerate(problem.blocks):
                new = weighted_statistics(block, cfg.use_bias, weights, interleave)
                self._stats[g] = add_statistics(_scaled(self._stats[g], decay), new)
            self._weight_sq = decay**2 * self._weight_sq + float(weights @ weights)
            self._count += ready
        elif self._deferring():
            self._keep_rows(problem, ready)
        else:
            p = problem.blocks[0].n_free + int(cfg.use_bias)
            keep = (self._kept_rows + ready) * p <= EXPLICIT_LIMIT
            if keep:
                self._joins.append(False)
            for g, block in enumerate(problem.blocks):
                self._stats[g] = add_statistics(self._stats[g], block_statistics(block, cfg.use_bias))
                if keep:
                    assert block.ys is not None  # built from outputs
                    self._kept[g][0].extend(np.array(x) for x in block.xs)
                    self._kept[g][1].extend(np.array(y) for y in block.ys)
            if keep:
                self._kept_rows += ready
            self._count += ready
        if ready * s > len(self._xbuf):  # (stride > span) inputs between receptive fields that have not come yet
            self._skip += ready * s - len(self._xbuf)
        self._xbuf = self._xbuf[ready * s :]
        self._ybuf = self._ybuf[ready:]
        self._y_done += ready

    # -- long single-input kernels: rows first ----------------------------------------------------

    def _deferring(self) -> bool:
        """Whether the statistics are deferred: rows first, nothing accumulated yet, every equation kept."""
        return self._rows_first and self._stats[0] is None and self._kept_rows == self._count

    def _room(self) -> int:
        """Floats the statistics of the largest group take: the room the kept rows may fill instead."""
        cfg = self._cfg
        p = cfg.unknowns_per_output
        return p * (p + cfg.out_per_group)

    def _keep_rows(self, problem: CanonicalProblem, ready: int) -> None:
        """Keep a stretch's rows (one input per group: stride and dilation 1), their statistics deferred; once
        the kept rows outgrow the statistics' room, accumulate those and go on as for any kernel."""
        for g, block in enumerate(problem.blocks):
            assert block.ys is not None and len(block.xs) == 1  # built from outputs; stride and dilation 1
            self._kept[g][0].append(np.array(block.xs[0]))
            self._kept[g][1].append(np.array(block.ys[0]))
        self._joins.append(self._continues)
        self._continues = True
        self._kept_rows += ready
        self._count += ready
        block = problem.blocks[0]
        self._kept_floats += block.xs[0].size + block.outputs[0].size
        if self._kept_floats > self._room():
            self._settle()

    def _settle(self) -> None:
        """Accumulate the deferred statistics; keep the rows only where the general rule would have kept them."""
        if not self._deferring():
            return
        self._stats = self._deferred_statistics()
        if self._kept_rows * self._cfg.unknowns_per_output > EXPLICIT_LIMIT:
            self._kept = [([], []) for _ in self._kept]
            self._joins, self._kept_rows = [], 0
        self._kept_floats = 0

    def _joined(self, g: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Group ``g``'s kept rows with the stretches of one sequence joined (a stretch starts where the rows of
        the previous one end: its first ``taps - 1`` inputs are the previous one's last)."""
        xs, ys = self._kept[g]
        taps = self._cfg.kernel_size
        out_x: list[list[np.ndarray]] = []
        out_y: list[list[np.ndarray]] = []
        for x, y, joins in zip(xs, ys, self._joins):
            if joins and out_x:
                out_x[-1][-1] = out_x[-1][-1][: len(out_x[-1][-1]) - taps + 1]
                out_x[-1].append(x)
                out_y[-1].append(y)
            else:
                out_x.append([x])
                out_y.append([y])
        return [np.concatenate(p) for p in out_x], [np.concatenate(p) for p in out_y]

    def _deferred_statistics(self) -> list[Statistics | None]:
        """The statistics of the kept rows (those deferred), per group; ``self._stats`` when none are deferred."""
        if not (self._deferring() and self._count):
            return list(self._stats)
        cfg = self._cfg
        template = self._segment(np.zeros((cfg.span, cfg.in_channels)), np.zeros((1, cfg.out_channels)))
        stats: list[Statistics | None] = []
        for g, tb in enumerate(template.blocks):
            xs, ys = self._joined(g)
            stats.append(block_statistics(Block(xs, ys, tb.taps, tb.mask.copy(), tb.out_channels), cfg.use_bias))
        return stats

    def _segment(self, seg_x: np.ndarray, seg_y: np.ndarray) -> CanonicalProblem:
        """A complete stretch of equations as a valid problem on its (padded) inputs."""
        cfg = self._cfg
        return build_problem(
            seg_x,
            seg_y,
            cfg.kernel_size,
            stride=cfg.stride,
            padding="valid",
            dilation=cfg.dilation,
            groups=cfg.groups,
            use_bias=cfg.use_bias,
            layout="nwc",
            flip=cfg.flip,
        )

    def _segment_stats(self, problem: CanonicalProblem) -> list[Statistics]:
        return [block_statistics(block, self._cfg.use_bias) for block in problem.blocks]

    def _add_piece(self, piece: _Piece) -> None:
        """With a window: append a stretch of equations, drop (or cut) the oldest beyond the window, re-add the rest.

        Stretches of one sequence are joined while the last one is short, so the window holds at most ~64 of them
        per sequence; the statistics are the sum of theirs, recomputed (never subtracted), so they stay exact.
        """
        assert self._window is not None
        s, window = self._cfg.stride, self._window
        last = self._pieces[-1] if self._pieces else None
        if last is not None and last.sequence == piece.sequence and last.n < max(window // 64, 1):
            head = last.x[: last.n * s]
            if len(head) < last.n * s:  # (stride > span: the inputs between receptive fields are never read)
                head = np.concatenate([head, np.zeros((last.n * s - len(head), head.shape[1]))])
            stats = [add_statistics(a, b) for a, b in zip(last.stats, piece.stats)]
            piece = _Piece(np.concatenate([head, piece.x]), np.concatenate([last.y, piece.y]), stats, piece.sequence)
            self._pieces.pop()
        self._pieces.append(piece)
        total = sum(p.n for p in self._pieces)
        while total - self._pieces[0].n >= window:
            total -= self._pieces.pop(0).n
        extra = total - window
        if extra > 0:
            old = self._pieces[0]
            x, y = old.x[extra * s :], old.y[extra:]
            self._pieces[0] = _Piece(x, y, self._segment_stats(self._segment(x, y)), old.sequence)
        self._sum_pieces()

    def _sum_pieces(self) -> None:
        stats: list[Statistics | None] = [None] * self._cfg.groups
        for piece in self._pieces:
            stats = [add_statistics(a, b) for a, b in zip(stats, piece.stats)]
        self._stats = stats
        self._count = sum(p.n for p in self._pieces)

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
                f"cannot merge accumulators with different configurations: {self._spec} and {other._spec}."
            )
        if (self._forgetting, self._window) != (other._forgetting, other._window):
            raise ValueError(
                f"cannot merge accumulators with different memories: forgetting={self._forgetting}, "
                f"window={self._window} and forgetting={other._forgetting}, window={other._window}."
            )
        if self._window is not None:
            raise ValueError(
                "cannot merge accumulators with a `window`: the window is the last equations of one stream. Feed "
                "the later data to one accumulator instead."
            )
        other = other._closed()
        if other.config is None:
            return self
        their_stats = other._deferred_statistics()  # (computed: `other` is left as it was)
        self._settle()
        if self.config is None:
            self.config = dataclasses.replace(other.config, padding=self._spec.padding)  # self's own spelling
            self._stats = [None] * other.config.groups
            self._kept = [([], []) for _ in range(other.config.groups)]
            self._joins = []
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
        decay = 1.0 if self._forgetting is None else self._forgetting**other._count  # their equations come later
        for g in range(self.config.groups):
            theirs = their_stats[g]
            if theirs is not None:
                self._stats[g] = add_statistics(_scaled(self._stats[g], decay), theirs)
            if keep:
                self._kept[g][0].extend(other._kept[g][0])
                self._kept[g][1].extend(other._kept[g][1])
        if keep:
            self._kept_rows += other._kept_rows
            self._joins += other._joins
        self._weight_sq = decay**2 * self._weight_sq + other._weight_sq
        self._count += other._count
        self._lengths += other._lengths
        self._out_lengths += other._out_lengths
        return self

    def _merge_key(self) -> ConvSpec:
        """The configuration, with ``padding`` as its (left, right) zeros wherever they do not depend on the length.

        Such paddings give the same equations for every sequence, so accumulators that spell them differently
        ("valid", 0, (0, 0); "causal" and ``(span - 1, 0)``; "same" at stride 1) hold compatible statistics.
        """
        spec = self._spec
        if spec.padding == "same" and spec.stride > 1:
            return spec
        return dataclasses.replace(spec, padding=spec.bind(spec.groups, spec.groups).pads(0))

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
        """Output samples accounted for so far (per output channel), in closed sequences and the open one.

        With a ``window``: those in the window.  With ``forgetting``: all of them (see :attr:`effective_equations`).
        """
        return self._count

    @property
    def effective_equations(self) -> float:
        """The sum of the weights: ``(1 - lambda^n) / (1 - lambda)`` with forgetting, else ``n_equations``."""
        if self._forgetting is None or self.config is None or self._stats[0] is None:
            return float(self._count)
        return float(self._stats[0].n_rows)

    def statistics(self) -> list[Statistics]:
        """Per group: the accumulated :class:`~kernel_recovery.statistics.Statistics` (open sequence ended)."""
        done = self._closed()
        stats = [s for s in done._deferred_statistics() if s is not None]
        if not stats or len(stats) < len(done._stats):  # the groups are accumulated together: all or none
            raise ValueError("no data yet: call update(x_chunk, y_chunk) first.")
        return stats

    def problem(self) -> CanonicalProblem:
        """The canonical problem the statistics describe (statistics cached on its blocks)."""
        done = self._closed()
        cfg = done._cfg
        template = done._segment(np.zeros((cfg.span, cfg.in_channels)), np.zeros((1, cfg.out_channels)))
        if done._deferring() and done._count:  # every row kept: the problem of the rows, as recover_kernel's
            blocks: list[Block] = []
            for g, tb in enumerate(template.blocks):
                xs, ys = done._joined(g)
                blocks.append(_StreamedBlock(xs, ys, tb.taps, tb.mask.copy(), tb.out_channels, n_rows=done._count))
            return dataclasses.replace(
                template,
                config=cfg,
                blocks=blocks,
                lengths=tuple(done._lengths),
                out_lengths=tuple(done._out_lengths),
                inputs=None,
            )
        stats = done.statistics()
        kept, lengths, out_lengths = done._kept, tuple(done._lengths), tuple(done._out_lengths)
        if done._window is not None:
            kept, lengths, out_lengths = done._window_rows()
        n_rows = [st.n_rows for st in stats]
        if done._forgetting is not None:  # the effective number of equations (dof, noise level)
            n_rows = [max(int(round(n)), 1) for n in n_rows]
        blocks = []
        for g, tb in enumerate(template.blocks):
            xs, ys = kept[g]
            blk = _StreamedBlock(list(xs), list(ys), tb.taps, tb.mask.copy(), tb.out_channels, n_rows=n_rows[g])
            blk.cache[("statistics", cfg.use_bias)] = stats[g]
            if done._forgetting is not None:  # no rows to cut: the spectrum is the weighted Gram's
                blk.cache[("spectrum", cfg.use_bias)] = _gram_spectrum(stats[g].gram, stats[g].n_rows)
            blocks.append(blk)
        return dataclasses.replace(
            template, config=cfg, blocks=blocks, lengths=lengths, out_lengths=out_lengths, inputs=None
        )

    def _window_rows(self) -> tuple[list[tuple[list[np.ndarray], list[np.ndarray]]], tuple[int, ...], tuple[int, ...]]:
        """With a window: its canonical rows per group (when small enough to keep), and per sequence in it the
        input length and the number of its equations in the window."""
        cfg = self._cfg
        kept: list[tuple[list[np.ndarray], list[np.ndarray]]] = [([], []) for _ in range(cfg.groups)]
        if self._count * cfg.unknowns_per_output <= EXPLICIT_LIMIT:
            for piece in self._pieces:
                for g, block in enumerate(self._segment(piece.x, piece.y).blocks):
                    kept[g][0].extend(np.array(x) for x in block.xs)
                    kept[g][1].extend(np.array(y) for y in block.outputs)
        counts: dict[int, int] = {}
        for piece in self._pieces:
            counts[piece.sequence] = counts.get(piece.sequence, 0) + piece.n
        lengths = tuple(self._lengths[i] if i < len(self._lengths) else self._n_in for i in counts)
        return kept, lengths, tuple(counts.values())

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
            row is retained (small problems, and long single-input kernels while their data take no more room
            than their statistics) the rows are solved as in :func:`recover_kernel` (the explicit design, or
            Toeplitz CG for long kernels); otherwise the normal equations, without data-based refinement
            (``diagnostics["solver"]`` says which), and the post-fit checks that need the rows are skipped
            (``diagnostics["checks"]`` says why).
        """
        options = {"ridge": ridge, "regularization": regularization}  # validated by the solver, as for recover_kernel
        result = pipeline.run(self.problem(), "lstsq", options, warn=warn, stacklevel=2)
        if self._forgetting is None or result.stderr is None:
            return result
        scale = forgetting_stderr_scale(self.effective_equations, self._weight_sq, self._cfg.unknowns_per_output)
        return dataclasses.replace(
            result,
            stderr=result.stderr * scale,
            bias_stderr=None if result.bias_stderr is None else result.bias_stderr * scale,
        )

    # -- checkpoints -----------------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        """Every piece of the state as NumPy arrays and plain scalars and strings (no objects), for :meth:`from_state`.

        An open sequence is included (its buffered inputs and outputs), so the accumulator continues exactly.
        """
        state: dict[str, Any] = {
            "format": STATE_FORMAT,
            "version": STATE_VERSION,
            "settings": json.dumps(jsonable(dataclasses.asdict(self._spec))),
            "forgetting": math.nan if self._forgetting is None else self._forgetting,
            "window": 0 if self._window is None else self._window,
            "in_channels": -1 if self.config is None else self.config.in_channels,
            "out_channels": -1 if self.config is None else self.config.out_channels,
            "count": self._count,
            "weight_sq": self._weight_sq,
            "kept_rows": self._kept_rows,
            "lengths": np.array(self._lengths, dtype=np.int64),
            "out_lengths": np.array(self._out_lengths, dtype=np.int64),
            "open": self._open,
        }
        if self.config is None:
            return state
        cfg = self.config
        stats = self._deferred_statistics()  # deferred rows are saved as their statistics
        kept = self._kept
        if self._deferring() and self._kept_rows * cfg.unknowns_per_output > EXPLICIT_LIMIT:
            kept = [([], []) for _ in kept]
            state["kept_rows"] = 0
        state["has_stats"] = stats[0] is not None
        for g, st in enumerate(stats):
            if st is not None:
                state.update(statistics_state(f"stats{g}_", st))
            kx, ky = kept[g]
            state[f"kept{g}_x"], state[f"kept{g}_x_len"] = pack(kx, self._canonical_channels())
            state[f"kept{g}_y"], state[f"kept{g}_y_len"] = pack(ky, cfg.out_per_group)
        if self._open:
            state.update(
                open_n_in=self._n_in,
                open_left_known=self._left is not None,
                open_left=0 if self._left is None else self._left,
                open_xbuf=np.array(self._xbuf),
                open_ybuf=np.array(self._ybuf),
                open_y_seen=self._y_seen,
                open_y_done=self._y_done,
                open_skip=self._skip,
            )
        if self._window is not None:
            state.update(self._window_state())
        return state

    def _window_state(self) -> dict[str, Any]:
        """With a window: its stretches of equations (inputs, outputs, sequence and statistics per group)."""
        cfg = self._cfg
        state: dict[str, Any] = {}
        state["pieces_x"], state["pieces_x_len"] = pack([p.x for p in self._pieces], cfg.in_channels)
        state["pieces_y"], state["pieces_y_len"] = pack([p.y for p in self._pieces], cfg.out_channels)
        state["pieces_sequence"] = np.array([p.sequence for p in self._pieces], dtype=np.int64)
        p, o = cfg.unknowns_per_output, cfg.out_per_group
        for g in range(cfg.groups):
            for name, shape in (("gram", (p, p)), ("cross", (p, o)), ("yty", (o,))):
                parts = [getattr(piece.stats[g], name) for piece in self._pieces]
                state[f"pieces{g}_{name}"] = np.array(parts) if parts else np.zeros((0,) + shape)
            state[f"pieces{g}_n_rows"] = np.array([p.stats[g].n_rows for p in self._pieces], dtype=float)
        return state

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> NormalEquations:
        """The accumulator a :meth:`to_state` dict describes; a ValueError naming what is missing or inconsistent."""
        if not isinstance(state, dict):
            raise TypeError(f"`state` must be a dict from NormalEquations.to_state(), got {type(state).__name__}.")
        st = StateReader(state)
        if st.text("format") != STATE_FORMAT:
            raise ValueError(f"not a NormalEquations checkpoint: its format is {st.text('format')!r}.")
        version = st.integer("version")
        if version != STATE_VERSION:
            raise ValueError(
                f"checkpoint format version {version} is not supported (this version reads {STATE_VERSION})."
            )
        acc = cls._empty_from_state(st)
        acc._count, acc._weight_sq = st.integer("count"), st.number("weight_sq")
        acc._kept_rows = st.integer("kept_rows")
        acc._lengths = [int(v) for v in st.array("lengths", (None,))]
        acc._out_lengths = [int(v) for v in st.array("out_lengths", (None,))]
        acc._open = st.flag("open")
        cin, cout = st.integer("in_channels"), st.integer("out_channels")
        if cin < 0:
            if acc._open or acc._count:
                raise ValueError("the checkpoint holds data but no channel counts (`in_channels`, `out_channels`).")
            return acc
        cfg = acc._configure(cin, cout)
        has_stats = st.flag("has_stats")
        for g in range(cfg.groups):
            if has_stats:
                acc._stats[g] = st.statistics(f"stats{g}_", cfg.unknowns_per_output, cfg.out_per_group)
            acc._kept[g] = (
                st.stretches(f"kept{g}_x", acc._canonical_channels()),
                st.stretches(f"kept{g}_y", cfg.out_per_group),
            )
        acc._joins = [False] * len(acc._kept[0][0])
        if acc._open:
            acc._restore_open(st)
        if acc._window is not None:
            acc._restore_window(st)
        return acc

    @classmethod
    def _empty_from_state(cls, st: StateReader) -> NormalEquations:
        """The accumulator of a checkpoint's configuration and memory, without its data."""
        try:
            given = json.loads(st.text("settings"))
            for key in ("padding", "lags"):  # (JSON has no tuples)
                if isinstance(given.get(key), list):
                    given[key] = tuple(given[key])
            forgetting = st.number("forgetting")
            window = st.integer("window")
            return cls(**given, forgetting=None if math.isnan(forgetting) else forgetting, window=window or None)
        except (TypeError, ValueError, json.JSONDecodeError) as exc:
            raise ValueError(f"the checkpoint's `settings` do not describe an accumulator: {exc}") from None

    def _restore_open(self, st: StateReader) -> None:
        """A checkpoint's open sequence: its buffered inputs and outputs and how far it got."""
        cfg = self._cfg
        self._n_in, self._y_seen, self._y_done = (
            st.integer("open_n_in"),
            st.integer("open_y_seen"),
            st.integer("open_y_done"),
        )
        self._left = st.integer("open_left") if st.flag("open_left_known") else None
        self._xbuf = st.array("open_xbuf", (None, cfg.in_channels))
        self._ybuf = st.array("open_ybuf", (None, cfg.out_channels))
        self._skip = st.integer("open_skip")
        self._continues = False

    def _restore_window(self, st: StateReader) -> None:
        """A checkpoint's window: its stretches of equations, with their statistics per group."""
        cfg = self._cfg
        p, o = cfg.unknowns_per_output, cfg.out_per_group
        xs = st.stretches("pieces_x", cfg.in_channels)
        ys = st.stretches("pieces_y", cfg.out_channels)
        n = len(xs)
        seqs = st.array("pieces_sequence", (n,))
        grams = [st.array(f"pieces{g}_gram", (n, p, p)) for g in range(cfg.groups)]
        crosses = [st.array(f"pieces{g}_cross", (n, p, o)) for g in range(cfg.groups)]
        ytys = [st.array(f"pieces{g}_yty", (n, o)) for g in range(cfg.groups)]
        counts = [st.array(f"pieces{g}_n_rows", (n,)) for g in range(cfg.groups)]
        if len(ys) != n:
            raise ValueError(f"the checkpoint's window holds {n} input stretches but {len(ys)} output ones.")
        for i, (x, y) in enumerate(zip(xs, ys)):
            stats = [Statistics(grams[g][i], crosses[g][i], ytys[g][i], int(counts[g][i])) for g in range(cfg.groups)]
            self._pieces.append(_Piece(x, y, stats, int(seqs[i])))
        if sum(piece.n for piece in self._pieces) != self._count:
            raise ValueError("the checkpoint's window stretches do not add up to its `count` of equations.")

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the state to ``path`` as an ``.npz`` file (no pickles), atomically: a crash leaves the old file.

        Examples
        --------
        >>> import numpy as np, tempfile, os, kernel_recovery as kr
        >>> rng = np.random.default_rng(0)
        >>> x = rng.standard_normal(500)
        >>> y = kr.conv1d(x, [1.0, -0.5])
        >>> acc = kr.NormalEquations(2, forgetting=0.999)
        >>> acc.update(x[:300], y[:250])  # stop anywhere, mid-sequence
        >>> path = os.path.join(tempfile.mkdtemp(), "acc.npz")
        >>> acc.save(path)
        >>> again = kr.NormalEquations.load(path, kernel_size=2)
        >>> again.update(x[300:], y[250:])
        >>> again.solve().kernel.ravel().round(12)
        array([ 1. , -0.5])
        """
        write_state(path, self.to_state())

    @classmethod
    def load(cls, path: str | os.PathLike[str], **expected: Any) -> NormalEquations:
        """Read an accumulator written by :meth:`save`.

        Parameters
        ----------
        path : str or path-like
        **expected
            Constructor arguments the checkpoint must have been made with (e.g. ``kernel_size=16,
            forgetting=0.999``): a checkpoint of another configuration is a ValueError naming the difference.

        Raises
        ------
        ValueError
            For a file that is not a readable checkpoint (corrupted, truncated, another format or version), or one
            whose configuration differs from ``expected``.
        """
        acc = cls.from_state(read_state(path))
        if expected:
            wrong = acc._differences(**expected)
            if wrong:
                raise ValueError(
                    f"{os.fspath(path)!r} holds an accumulator of another configuration: {', '.join(wrong)}."
                )
        return acc

    def _differences(self, **expected: Any) -> list[str]:
        """``"name=mine (expected theirs)"`` for each setting (or memory) that differs from ``expected``."""
        config = {k: v for k, v in expected.items() if k not in ("forgetting", "window")}
        forgetting, window = check_memory(
            expected.get("forgetting", self._forgetting), expected.get("window", self._window)
        )
        mine = {**dataclasses.asdict(self._merge_key()), "forgetting": self._forgetting, "window": self._window}
        given: dict[str, Any] = dataclasses.asdict(self._spec)
        if self._spec.lags is not None:  # the lag range alone spells kernel_size and padding: `expected` may change it
            given.update(kernel_size=None, padding="valid")
        reference = NormalEquations.from_spec(ConvSpec.create(**{**given, **config}))
        want = {**dataclasses.asdict(reference._merge_key()), "forgetting": forgetting, "window": window}
        return [f"{k}={mine[k]!r} (expected {want[k]!r})" for k in want if mine[k] != want[k]]

    def _canonical_channels(self) -> int:
        cfg = self._cfg
        return cfg.stride // math.gcd(cfg.stride, cfg.dilation) * cfg.in_per_group
