"""Sufficient statistics of the canonical least-squares system, shared by lstsq, the analyzer and streaming.

For one block, the design matrix ``A`` has one row per output sample and one column per free kernel
coefficient (in the block mask's row-major ``(tap, channel)`` order), then a column of ones for the bias.
Everything least squares needs is ``A^T A``, ``A^T Y``, ``Y^T Y`` and the number of rows; these add up over
sequences and chunks.

``A`` is never formed.  Its Gram matrix is block Toeplitz up to small edge terms: with ``m`` rows and
``T`` taps,

    G[j, j + l] = R[l] - sum_{i < j} x_i x_{i+l}^T + sum_{i < j} x_{m+i} x_{m+i+l}^T,
    R[l] = sum_{t < m} x_t x_{t+l}^T,

and ``A^T Y`` is the lagged cross-correlation ``sum_{t < m} x_{t+j} y_t^T`` (no edge terms, since ``y`` has
exactly ``m`` rows).  ``R`` and the cross-correlation cost ``O(m T C (C + O))`` and are computed either by
blocked GEMMs (time split into blocks of ``b`` samples; the products of each block with itself and with
its ``k`` successors, ``k b >= T - 1``, hold every lag below ``T``) or, for long kernels, by block FFTs
accumulated in the frequency domain.  Both are exact sums (no approximation), streamed in chunks, so memory
is ``O(chunk + (T C)^2)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, cast

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .problem import Block, CanonicalProblem
from .threads import SerialBLAS, fft_workers
from .threads import workers as _workers

#: Design matrices with at most this many entries (2 MiB of float64) are built explicitly and solved by SVD;
#: larger ones go through the exact lagged-correlation statistics (faster from about this size on).
EXPLICIT_LIMIT = 1 << 18
#: Rows per chunk when a design is streamed explicitly.
CHUNK_ROWS = 1 << 14
#: Entries of ``x`` per chunk in the blocked lagged correlations (2 MiB of float64).
CHUNK_ENTRIES = 1 << 18


@dataclass(frozen=True)
class Statistics:
    """``gram = A^T A`` (P, P); ``cross = A^T Y`` (P, O); ``yty`` (O,); ``n_rows``."""

    gram: np.ndarray
    cross: np.ndarray | None
    yty: np.ndarray | None
    n_rows: int


def n_columns(block: Block, use_bias: bool) -> int:
    return block.n_free + int(use_bias)


def window_rows(x: np.ndarray, width: int, index: slice | np.ndarray = slice(None)) -> np.ndarray:
    """The im2col rows of ``x`` ``(n, C)``: row ``t`` is ``x[t : t + width]`` flattened tap-major, ``(rows, width C)``.

    ``index`` (a slice or an integer array) picks the rows.  This is the only place design rows are cut.
    """
    windows = sliding_window_view(x, width, axis=0)[index]  # (rows, C, width)
    return windows.transpose(0, 2, 1).reshape(len(windows), -1)


def design_rows(block: Block, x: np.ndarray, use_bias: bool, start: int = 0, stop: int | None = None) -> np.ndarray:
    """Rows ``start:stop`` of one subsequence's design matrix, ``(rows, P)``."""
    rows = window_rows(x, block.taps, slice(start, stop))[:, block.mask.ravel()]
    if use_bias:
        rows = np.concatenate([rows, np.ones((len(rows), 1))], axis=1)
    return rows


def design_matrix(block: Block, use_bias: bool) -> np.ndarray:
    """The explicit design of a block, ``(n_equations, P)``; only for small problems."""
    size = block.n_equations * n_columns(block, use_bias)
    if size > EXPLICIT_LIMIT:
        raise MemoryError(f"the explicit design would hold {size} entries; use the streamed statistics instead.")
    return np.concatenate([design_rows(block, x, use_bias) for x in block.xs])


# ----------------------------------------------------------------------------------------------
# Lagged correlations
# ----------------------------------------------------------------------------------------------

#: Rows per partial sum in the long sums over time: each partial is one short BLAS product, and the partials are
#: added pairwise, so rounding is bounded by ``~SUM_ROWS / 16 + log2(n)`` ulps whatever ``n`` (a single dot over
#: ``n`` rows adds sequentially: 1.6e3 ulps at ``n = 1e6`` on constant data; ``x.sum(axis=0)``: 1.6e5).
SUM_ROWS = 512
#: Running sums (the Gram's edge terms) in blocks of this many terms: rounding grows like ``B + n / B``, not ``n``.
_CUMSUM_BLOCK = 32
#: Chunk partials are added into a group accumulator, and each full group into the total, so ``k`` chunks cost
#: ``~GROUP + k / GROUP`` sequential additions instead of ``k`` (one extra addition per group).
_GROUP = 32


def _tree_sum(parts: np.ndarray) -> np.ndarray:
    """``parts.sum(axis=0)`` added pairwise (numpy adds along a leading axis one slice after another)."""
    while len(parts) > 1:
        half = len(parts) // 2
        pairs = parts[:half] + parts[half : 2 * half]
        if len(parts) % 2:
            pairs[-1] += parts[-1]
        parts = pairs
    return parts[0]


def _product_sum(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a^T b`` for ``a`` (n, p) and ``b`` (n, q): products of ``SUM_ROWS`` rows, added pairwise."""
    n = len(a)
    full = n - n % SUM_ROWS
    if full <= SUM_ROWS:
        return a.T @ b
    a3 = a[:full].reshape(-1, SUM_ROWS, a.shape[1])
    b3 = b[:full].reshape(-1, SUM_ROWS, b.shape[1])
    total = _tree_sum(np.matmul(a3.transpose(0, 2, 1), b3))
    if full < n:
        total += a[full:].T @ b[full:]
    return total


def _row_sums(a: np.ndarray, square: bool = False) -> np.ndarray:
    """``a.sum(axis=0)`` (of ``a ** 2`` with ``square``) for ``a`` (n, k): BLAS sums of ``SUM_ROWS`` rows, added
    pairwise (squares formed a group of rows at a time)."""
    n = len(a)
    full = n - n % SUM_ROWS
    ones = np.ones(SUM_ROWS)
    step = max(CHUNK_ENTRIES // (SUM_ROWS * max(a.shape[1], 1)), 1) * SUM_ROWS
    parts = []
    for s in range(0, full, step):
        a3 = a[s : min(s + step, full)].reshape(-1, SUM_ROWS, a.shape[1])
        parts.append(ones @ (a3 * a3 if square else a3))
    rest = a[full:]
    parts.append((rest * rest if square else rest).sum(axis=0)[None])
    return _tree_sum(np.concatenate(parts))


def _cumsum(a: np.ndarray) -> np.ndarray:
    """``np.cumsum(a, axis=-1)``, the running sums kept within blocks of ``_CUMSUM_BLOCK`` terms plus running block
    totals, so rounding grows like ``B + n / B`` terms instead of ``n``."""
    n, b = a.shape[-1], _CUMSUM_BLOCK
    if n <= 2 * b:
        return np.cumsum(a, axis=-1)
    nb = -(-n // b)
    padded = np.zeros(a.shape[:-1] + (nb * b,))
    padded[..., :n] = a
    runs = padded.reshape(a.shape[:-1] + (nb, b)).cumsum(axis=-1)
    runs[..., 1:, :] += np.cumsum(runs[..., :-1, -1], axis=-1)[..., None]
    return runs.reshape(padded.shape)[..., :n]


class _Accumulator:
    """A running total of chunk partials in two levels (see ``_GROUP``)."""

    def __init__(self, shape, dtype=float):
        self.total = np.zeros(shape, dtype)
        self.group = np.zeros(shape, dtype)
        self.count = 0

    def add(self, part):
        self.group += part
        self.count += 1
        if self.count == _GROUP:
            self.total += self.group
            self.group[...] = 0
            self.count = 0

    def value(self):
        return self.total + self.group


def _use_fft(taps: int, c: int, o: int) -> bool:
    """Block FFTs beat blocked GEMMs when the kernel is long and there are few channels."""
    # flops per sample: GEMMs ~ 2 T C (C + O); FFTs ~ (2C + O) forward transforms + C (C + O) products, each
    # worth ~60 GEMM flops at the speeds numpy reaches (measured crossover: T ~ 64-128 for one channel)
    return taps >= 64 and 2 * taps * c * (c + o) > 60 * (2 * c + o + c * (c + o))


def lagged_correlations(
    x: np.ndarray, taps: int, y: np.ndarray | None = None, *, method: str | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """``R[l] = sum_{t<m} x_t x_{t+l}^T`` and ``Q[j] = sum_{t<m} x_{t+j} y_t^T`` for lags below ``taps``.

    Parameters
    ----------
    x : ndarray, shape (n, C)
    taps : int
        ``T``; ``m = n - T + 1`` rows.
    y : ndarray, shape (m, O), optional
    method : {"gemm", "fft", "direct"}, optional
        Default: chosen by a cost model.  All give the same sums up to rounding.

    Returns
    -------
    R : ndarray, shape (T, C, C)
    Q : ndarray, shape (T, C, O), or None without ``y``
    """
    n, c = x.shape
    m = n - taps + 1
    o = 0 if y is None else y.shape[1]
    if method is None:
        if taps * c <= 8 or m < 4 * taps:
            method = "direct"
        else:
            method = "fft" if _use_fft(taps, c, o) else "gemm"
    if method == "direct":
        return _lagged_direct(x, taps, y, 0, m)
    if method == "fft":
        return _lagged_fft(x, taps, y)
    return _lagged_gemm(x, taps, y)


def _lagged_direct(x, taps, y, start, stop):
    """Reference-speed sums over rows ``start:stop`` (used for short stretches and tiny kernels)."""
    c = x.shape[1]
    r = np.empty((taps, c, c))
    rows = stop - start
    x = np.ascontiguousarray(x[start : stop + taps - 1])  # so its row slices reshape into blocks without copies
    for lag in range(taps):
        r[lag] = _product_sum(x[:rows], x[lag : rows + lag])
    if y is None:
        return r, None
    q = np.empty((taps, c, y.shape[1]))
    ys = np.ascontiguousarray(y[start:stop])
    for lag in range(taps):
        q[lag] = _product_sum(x[lag : rows + lag], ys)
    return r, q


def _lagged_gemm(x, taps, y, offsets=None):
    n, c = x.shape
    m = n - taps + 1
    o = 0 if y is None else y.shape[1]
    # time in blocks of b samples; lag l pairs block i with blocks i .. i + k, for k * b >= taps - 1
    k = offsets or (1 if taps * c >= 96 else 2)
    b = max(-(-(taps - 1) // k), -(-16 // c), 1)
    k = -(-(taps - 1) // b)
    nb = max(min(m // b, n // b - k), 0)  # full blocks whose k successors exist
    bc = b * c
    per_chunk = max(CHUNK_ENTRIES // bc, 1)

    def chunk_sums(bounds):
        mx = [_Accumulator((bc, bc)) for _ in range(k + 1)]
        my = [_Accumulator((bc, b * o)) for _ in range(k + 1)]
        for s, e in bounds:
            shifted = [np.ascontiguousarray(x[(s + d) * b : (e + d) * b]).reshape(e - s, bc) for d in range(k + 1)]
            a = shifted[0]
            yb = None if y is None else np.ascontiguousarray(y[s * b : e * b]).reshape(e - s, b * o)
            for d in range(k + 1):
                mx[d].add(a.T @ shifted[d])
                if yb is not None:
                    my[d].add(shifted[d].T @ yb)
        return [acc.value() for acc in mx], [acc.value() for acc in my]

    chunks = [(s, min(nb, s + per_chunk)) for s in range(0, nb, per_chunk)]
    workers = min(_workers(), len(chunks))
    with SerialBLAS():
        if workers > 1:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(workers) as pool:
                parts = list(pool.map(chunk_sums, [chunks[i::workers] for i in range(workers)]))
        else:
            parts = [chunk_sums(chunks)]
    mx = [sum(p[0][d] for p in parts) for d in range(k + 1)]
    my = [sum(p[1][d] for p in parts) for d in range(k + 1)]
    # sum the block products along diagonals: mx[d][p, q] pairs x_{ib+p} with x_{(i+d)b+q}, lag d*b + q - p
    r = np.zeros((taps, c, c))
    q = None if y is None else np.zeros((taps, c, o))
    for d in range(k + 1):
        md = mx[d].reshape(b, c, b, c).transpose(1, 3, 0, 2)
        nd = None if y is None else my[d].reshape(b, c, b, o).transpose(1, 3, 0, 2)
        for lag in range(max(0, (d - 1) * b + 1), min(taps, (d + 1) * b)):
            r[lag] += np.trace(md, offset=lag - d * b, axis1=2, axis2=3)
            if nd is not None and q is not None:
                q[lag] += np.trace(nd, offset=d * b - lag, axis1=2, axis2=3)
    if nb * b < m:  # the rows after the last full block
        r_tail, q_tail = _lagged_direct(x, taps, y, nb * b, m)
        r += r_tail
        if q is not None:
            q += q_tail
    return r, q


def _lagged_fft(x, taps, y):
    """Overlap-save block FFTs, the products accumulated in the frequency domain (one inverse FFT per pair)."""
    import scipy.fft

    n, c = x.shape
    m = n - taps + 1
    o = 0 if y is None else y.shape[1]
    blk = max(4 * taps, 1 << 12)
    size = scipy.fft.next_fast_len(blk + taps - 1, real=True)
    blk = size - taps + 1
    nf = size // 2 + 1
    acc_r = _Accumulator((nf, c, c), complex)
    acc_q = _Accumulator((nf, c, o), complex) if y is not None else None
    n_blocks = -(-m // blk)
    per_chunk = max(CHUNK_ENTRIES // (size * max(c, 1)), 1)
    for s in range(0, n_blocks, per_chunk):
        e = min(n_blocks, s + per_chunk)
        k = e - s
        head = np.zeros((k, size, c))  # x_t for t in the block, zero-padded
        span = np.zeros((k, size, c))  # x_t for t from the block start over blk + taps - 1 samples
        ybl = np.zeros((k, size, o)) if y is not None else None
        for i in range(k):
            t0 = (s + i) * blk
            t1 = min(t0 + blk, m)
            head[i, : t1 - t0] = x[t0:t1]
            span[i, : t1 - t0 + taps - 1] = x[t0 : t1 + taps - 1]
            if y is not None and ybl is not None:
                ybl[i, : t1 - t0] = y[t0:t1]
        fh = scipy.fft.rfft(head, axis=1, workers=fft_workers()).transpose(1, 2, 0)  # (f, C, k)
        fs = scipy.fft.rfft(span, axis=1, workers=fft_workers()).transpose(1, 0, 2)  # (f, k, C)
        acc_r.add(np.conj(fh) @ fs)
        if acc_q is not None:
            fy = scipy.fft.rfft(ybl, axis=1, workers=fft_workers()).transpose(1, 0, 2)  # (f, k, O)
            acc_q.add(fs.transpose(0, 2, 1) @ np.conj(fy))
    r = scipy.fft.irfft(acc_r.value(), n=size, axis=0, workers=fft_workers())[:taps]
    q = scipy.fft.irfft(acc_q.value(), n=size, axis=0, workers=fft_workers())[:taps] if acc_q is not None else None
    return r, q


# ----------------------------------------------------------------------------------------------
# Gram assembly
# ----------------------------------------------------------------------------------------------


def _edge_sums(head: np.ndarray, tail: np.ndarray, lags: range) -> np.ndarray:
    """``E[l, :, :, j] = sum_{i < j} (t_i t_{i+l}^T - h_i h_{i+l}^T)`` for ``l`` in ``lags`` and ``j`` up to
    ``len(head) - lags.start``, ``(len(lags), C, C, len(head) + 1 - lags.start)``, from the ``T - 1`` edge samples
    at each end (terms past the end are zero), as blocked running sums (see ``_cumsum``)."""
    k, c = head.shape
    width = k - lags.start  # the pairs i < j, for the rows j that hold a lag of this run

    def products(h):  # [l, a, b, i] = h_i[a] h_{i+l}[b]
        padded = np.zeros((k + lags.stop - 1, c))
        padded[:k] = h
        later = sliding_window_view(padded[lags.start :], width, axis=0)[: len(lags)]  # [l, b, i] = h_{i+l}
        return h[:width].T[None, :, None, :] * later[:, None, :, :]

    e = np.zeros((len(lags), c, c, width + 1))
    e[..., 1:] = _cumsum(products(tail) - products(head))
    return e


def gram_from_lags(x: np.ndarray, taps: int, r: np.ndarray) -> np.ndarray:
    """The full Gram ``(T * C, T * C)`` over all taps and channels, from ``R`` and the edge samples of ``x``."""
    n, c = x.shape
    m = n - taps + 1
    if taps == 1:
        return np.array(r[0], dtype=float)
    p = taps * c
    head = np.asarray(x[: taps - 1], dtype=float)
    tail = np.asarray(x[m : m + taps - 1], dtype=float)
    # lags per pass: O(CHUNK_ENTRIES) temporaries, and spare space (below) a small share of a large Gram
    step = max(min(CHUNK_ENTRIES // (taps * c * c), max(taps // 8, 64)), 1)
    # G[j, j + l] (block row j) for a run of lags is one strided view of a buffer with step * c spare rows and
    # columns, where the entries past the last block (j + l >= taps) land; the lower triangle likewise
    q = p + step * c
    buf = np.empty(q * q)

    def blocks(first, shape, strides):
        return np.lib.stride_tricks.as_strided(buf[first:], shape=shape, strides=tuple(8 * s for s in strides))

    for start in range(0, taps, step):
        lags = range(start, min(taps, start + step))
        # G[j, j + l] = R[l] less the pairs before the first row, plus those past the last (sums over i < j)
        vals = r[lags.start : lags.stop, :, :, None] + _edge_sums(head, tail, lags)
        blocks(start * c, vals.shape, (c, q, 1, (q + 1) * c))[...] = vals  # upper: [l, a, b, j] -> G[jc+a, (j+l)c+b]
        low = vals[1:] if start == 0 else vals
        first = (lags.stop - len(low)) * c * q
        blocks(first, low.shape, (c * q, 1, q, (q + 1) * c))[...] = low  # lower: -> G[(j+l)c+b, jc+a]
    return buf.reshape(q, q)[:p, :p]


def column_sums(x: np.ndarray, taps: int) -> np.ndarray:
    """``sum_{t<m} x_{t+j}`` for each tap ``j``, ``(T, C)`` (the bias row of the Gram)."""
    n, c = x.shape
    m = n - taps + 1
    total = _row_sums(x)
    head = np.concatenate([np.zeros((1, c)), _cumsum(x[: taps - 1].T).T])
    tail = np.concatenate([_cumsum(x[m:][::-1].T).T[::-1], np.zeros((1, c))])
    return total - head - tail


def sequence_statistics(x: np.ndarray, y: np.ndarray | None, taps: int, mask: np.ndarray, use_bias: bool) -> Statistics:
    """Statistics of one sequence ``x`` ``(n, C)`` with outputs ``y`` ``(n - taps + 1, O)``."""
    m = len(x) - taps + 1
    cols = mask.ravel()
    r, q = lagged_correlations(x, taps, y)
    gram = gram_from_lags(x, taps, r)[np.ix_(cols, cols)]
    cross = None if q is None else q.reshape(-1, q.shape[2])[cols]
    if use_bias:
        s = column_sums(x, taps).ravel()[cols]
        gram = np.block([[gram, s[:, None]], [s[None, :], np.full((1, 1), float(m))]])
        if cross is not None and y is not None:
            cross = np.concatenate([cross, _row_sums(y)[None]])
    yty = None if y is None else _row_sums(y, square=True)
    return Statistics(gram, cross, yty, m)


def add_statistics(a: Statistics | None, b: Statistics) -> Statistics:
    """The statistics of two disjoint sets of equations together."""
    if a is None:
        return b
    return Statistics(
        a.gram + b.gram,
        None if a.cross is None else a.cross + b.cross,
        None if a.yty is None else a.yty + b.yty,
        a.n_rows + b.n_rows,
    )


def block_statistics(block: Block, use_bias: bool) -> Statistics:
    """``A^T A``, ``A^T Y`` and ``Y^T Y`` of a block, exact and streamed (cached on the block).

    Examples
    --------
    >>> import numpy as np
    >>> from kernel_recovery.model.problem import build_problem
    >>> x = np.arange(6.0)
    >>> block = build_problem(x, x[1:] + x[:-1], 2).blocks[0]
    >>> st = block_statistics(block, use_bias=False)
    >>> a = design_matrix(block, use_bias=False)
    >>> bool(np.allclose(st.gram, a.T @ a)), st.cross.ravel().tolist()
    (True, [70.0, 95.0])
    """
    key = ("statistics", use_bias)
    if key in block.cache:
        return block.cache[key]
    stats: Statistics | None = None
    for i, x in enumerate(block.xs):
        y = None if block.ys is None else block.ys[i]
        stats = add_statistics(stats, sequence_statistics(x, y, block.taps, block.mask, use_bias))
    if stats is None:
        raise ValueError("a block without sequences has no statistics.")
    block.cache[key] = stats
    return stats


def rss_from_statistics(stats: Statistics, coef: np.ndarray) -> np.ndarray:
    """``||y - A w||^2 = y^T y - 2 w^T A^T y + w^T A^T A w`` per output channel."""
    if stats.yty is None or stats.cross is None:
        raise ValueError("the residual needs statistics of the outputs `y`: these were built without them.")
    return stats.yty - 2 * np.einsum("ij,ij->j", coef, stats.cross) + np.einsum("ij,ij->j", coef, stats.gram @ coef)


#: Single-input blocks with at least this many taps take the Toeplitz CG path (their Gram is never formed).
LONG_KERNEL = 2048


def solve_path(
    block: Block, use_bias: bool, long_kernel: int | None = None
) -> Literal["explicit", "normal_equations", "toeplitz_cg"]:
    """How a block's least squares is computed (every entry point agrees; recorded in ``diagnostics["solver"]``).

    ``"explicit"``: designs of at most ``EXPLICIT_LIMIT`` entries, SVD of the rows; ``"toeplitz_cg"``: one input
    channel and either at least ``LONG_KERNEL`` taps or a Gram too costly to factor exactly (see
    :func:`exact_spectrum_affordable`: the report then uses the spectral estimate too), CG on the Toeplitz Gram
    by FFT, ``O(N log K + iterations K log K)``; ``"normal_equations"``: the streamed statistics otherwise (and
    whenever the rows are not retained).
    """
    if not block.retains_rows:
        return "normal_equations"
    long_kernel = LONG_KERNEL if long_kernel is None else long_kernel
    if block.channels == 1 and (block.taps >= long_kernel or not exact_spectrum_affordable(block, use_bias)):
        return "toeplitz_cg"
    if block.n_equations * n_columns(block, use_bias) <= EXPLICIT_LIMIT:
        return "explicit"
    return "normal_equations"


def statistics_flops(block: Block) -> float:
    """The cost model of :func:`block_statistics`, in multiply-adds (FFT work weighted as ``_use_fft`` does)."""
    c, o = block.channels, len(block.out_channels)
    per_row = 60.0 * (2 * c + o + c * (c + o)) if _use_fft(block.taps, c, o) else 2.0 * block.taps * c * (c + o)
    return per_row * max(block.n_equations, 0)


def block_gram(block: Block, use_bias: bool) -> np.ndarray:
    """``A^T A`` of a block: from its full statistics when cached, else without the cross terms (cached).

    The report needs only the Gram; when the solver also needs ``A^T Y``, :func:`block_statistics` runs first
    (see :func:`kernel_recovery.solvers.pipeline.run`) and this reads its Gram, so the data are passed over once.
    """
    full = block.cache.get(("statistics", use_bias))
    if full is not None:
        return full.gram
    key = ("gram", use_bias)
    if key not in block.cache:
        stats: Statistics | None = None
        for x in block.xs:
            stats = add_statistics(stats, sequence_statistics(x, None, block.taps, block.mask, use_bias))
        assert stats is not None  # every block holds at least one sequence
        block.cache[key] = stats.gram
    return block.cache[key]


def unpack_columns(block: Block, coef: np.ndarray, use_bias: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Split coefficients over the design's columns, ``(P, ...)``, into a canonical kernel and a bias."""
    n_free = block.n_free
    kernel = np.zeros((block.taps * block.channels,) + coef.shape[1:], dtype=coef.dtype)
    kernel[block.mask.ravel()] = coef[:n_free]
    kernel = kernel.reshape((block.taps, block.channels) + coef.shape[1:])
    return kernel, (coef[n_free] if use_bias else None)


def design_r_factor(block: Block, use_bias: bool) -> np.ndarray:
    """The ``R`` of a QR factorization of the block's design, by chunked Householder QR (TSQR), ``(P, P)``.

    ``R`` has the design's singular values and right singular vectors, computed stably (no squaring of the
    condition number as in ``A^T A``); memory is ``O(CHUNK_ROWS * P)``.
    """
    p = n_columns(block, use_bias)
    r = np.zeros((0, p))
    with SerialBLAS():
        for x in block.xs:
            m = len(x) - block.taps + 1
            for start in range(0, m, CHUNK_ROWS):
                rows = design_rows(block, x, use_bias, start, start + CHUNK_ROWS)
                # numpy's stubs type every mode as QRResult; mode="r" returns the R factor alone
                r = cast(np.ndarray, np.linalg.qr(np.concatenate([r, rows]), mode="r"))
    if len(r) < p:
        r = np.concatenate([r, np.zeros((p - len(r), p))])
    return r

# ----------------------------------------------------------------------------------------------
# Forward and adjoint
# ----------------------------------------------------------------------------------------------


#: Above this many multiply-adds per output sample (taps x channels x outputs), Block.forward uses FFTs.
DIRECT_FORWARD_MAX = 64


def _correlate_fft(x: np.ndarray, kernel: np.ndarray, m: int) -> np.ndarray:
    """``out[t] = sum_j x[t + j] @ kernel[j]`` for ``t < m`` by overlap-save FFT blocks (bounded memory)."""
    import scipy.fft

    taps = kernel.shape[0]
    size = scipy.fft.next_fast_len(max(8 * taps, 1 << 14), real=True)
    step = size - taps + 1
    # a correlation is a convolution with the reversed kernel
    kf = scipy.fft.rfft(kernel[::-1], n=size, axis=0)  # (F, C, O)
    out = np.empty((m, kernel.shape[2]), dtype=np.result_type(x, kernel))
    for start in range(0, m, step):
        count = min(step, m - start)
        xf = scipy.fft.rfft(x[start : start + count + taps - 1], n=size, axis=0)  # (F, C)
        yf = np.einsum("fc,fco->fo", xf, kf)
        out[start : start + count] = scipy.fft.irfft(yf, n=size, axis=0)[taps - 1 : taps - 1 + count]
    return out


def whitening_filters(xs: Sequence[np.ndarray], order: int) -> np.ndarray:
    """Per channel, the prediction-error filter ``[1, -a_1, ..., -a_p]`` ``(order + 1, channels)`` of a Yule-Walker
    AR(``order``) fit to the sequences ``xs`` (each ``(length, channels)``; their autocorrelations are pooled).

    Filtering a channel by it (``scipy.signal.lfilter(f, 1, x)``) leaves its innovations: nearly white.
    """
    import scipy.linalg

    channels = xs[0].shape[1]
    acf = np.zeros((order + 1, channels))
    for x in xs:
        for k in range(min(order + 1, len(x))):
            acf[k] += np.sum(x[k:] * x[: len(x) - k], axis=0)
    filters = np.zeros((order + 1, channels))
    filters[0] = 1.0
    for c in range(channels):
        if acf[0, c] > 0 and order > 0:
            col = acf[:order, c].copy()
            col[0] *= 1 + 1e-6  # a little white noise: sinusoidal inputs keep a stable filter
            try:
                a = scipy.linalg.solve_toeplitz(col, acf[1:, c])
            except np.linalg.LinAlgError:
                continue
            if np.all(np.isfinite(a)):
                filters[1:, c] = -a
    return filters


def filtered_block(block: Block, filt: np.ndarray) -> Block:
    """The block with every canonical input channel and output filtered along time by ``filt`` (an FIR filter).

    A common filter commutes with the canonical correlation, so the kernel is unchanged:
    ``(f * y)[t] = sum_j w_j (f * x)[t + j]``.  The first ``len(filt) - 1`` equations of each subsequence, which
    read the filter's start-up (samples before the record), are dropped.  A bias column stays constant, scaled by
    ``sum(filt)``.
    """
    import scipy.signal

    q = len(filt) - 1
    xs, ys = [], []
    for x, y in zip(block.xs, block.outputs):
        if len(y) <= q:
            continue
        xs.append(scipy.signal.lfilter(filt, [1.0], x, axis=0)[q:])
        ys.append(scipy.signal.lfilter(filt, [1.0], y, axis=0)[q:])
    if not xs:  # every subsequence too short: keep an empty one so shapes stay defined
        xs, ys = [np.zeros((block.taps - 1, block.channels))], [np.zeros((0, len(block.out_channels)))]
    return Block(xs, ys, block.taps, block.mask.copy(), block.out_channels)


def forward(block: Block, kernel: np.ndarray, bias: np.ndarray | None = None) -> list[np.ndarray]:
    """Outputs of the canonical correlation for a canonical ``kernel`` ``(taps, channels, O)``."""
    kernel = np.where(block.mask[:, :, None], kernel, 0.0)
    outs = []
    for x in block.xs:
        m = len(x) - block.taps + 1
        if block.taps * kernel.shape[1] * kernel.shape[2] <= DIRECT_FORWARD_MAX or m < 4 * block.taps:
            out = np.zeros((m, kernel.shape[2]), dtype=np.result_type(x, kernel))
            for j in range(block.taps):
                out += x[j : j + m] @ kernel[j]
        else:
            out = _correlate_fft(x, kernel, m)
        if bias is not None:
            out += bias
        outs.append(out)
    return outs


class DesignOperator:
    """One block's design ``A`` (``n_equations x P``) as a linear operator, PyLops-style: every solver uses it.

    Columns are the block's free kernel coefficients (row-major ``(tap, channel)``), then the bias column.
    ``matvec`` is the forward model (``A w``), ``rmatvec`` its adjoint (``A^T v``); ``rows`` cuts explicit rows;
    ``statistics``, ``gram``, ``spectrum``, ``r_factor`` are the sufficient statistics, the Gram, the singular
    values/vectors and the TSQR ``R`` (each cached on the block).  ``dottest`` checks ``<A w, v> = <w, A^T v>``.

    Examples
    --------
    >>> import numpy as np
    >>> from kernel_recovery.model.problem import build_problem
    >>> block = build_problem(np.arange(6.0), None, 2).blocks[0]
    >>> op = DesignOperator(block, use_bias=False)
    >>> op.shape
    (5, 2)
    >>> np.concatenate(op.matvec(np.array([[1.0], [2.0]]))).ravel().tolist()
    [2.0, 5.0, 8.0, 11.0, 14.0]
    """

    def __init__(self, block: Block, use_bias: bool) -> None:
        self.block = block
        self.use_bias = use_bias

    @property
    def shape(self) -> tuple[int, int]:
        return (self.block.n_equations, n_columns(self.block, self.use_bias))

    def matvec(self, coef: np.ndarray) -> list[np.ndarray]:
        """``A w`` per subsequence, for coefficients ``(P, O)`` over the design's columns."""
        k, b = unpack_columns(self.block, coef, self.use_bias)
        return forward(self.block, k, b)

    def rmatvec(self, values: list[np.ndarray]) -> np.ndarray:
        """``A^T v`` ``(P, O)`` for per-subsequence ``v`` ``(rows, O)``."""
        return adjoint(self.block, self.use_bias, values)

    def rows(self, sequence: int = 0, start: int = 0, stop: int | None = None) -> np.ndarray:
        return design_rows(self.block, self.block.xs[sequence], self.use_bias, start, stop)

    def statistics(self) -> Statistics:
        return block_statistics(self.block, self.use_bias)

    def gram(self) -> np.ndarray:
        return block_gram(self.block, self.use_bias)

    def spectrum(self) -> BlockSpectrum:
        return block_spectrum(self.block, self.use_bias)

    def r_factor(self) -> np.ndarray:
        return design_r_factor(self.block, self.use_bias)

    def dottest(self, n_out: int = 2, rng: np.random.Generator | None = None) -> float:
        """Relative mismatch of ``<A w, v>`` and ``<w, A^T v>`` for random ``w``, ``v`` (PyLops' ``dottest``)."""
        rng = np.random.default_rng(0) if rng is None else rng
        w = rng.standard_normal((self.shape[1], n_out))
        vs = [rng.standard_normal((len(x) - self.block.taps + 1, n_out)) for x in self.block.xs]
        lhs = sum(float(np.sum(a * v)) for a, v in zip(self.matvec(w), vs))
        rhs = float(np.sum(w * self.rmatvec(vs)))
        return abs(lhs - rhs) / max(abs(lhs), abs(rhs), 1e-300)


def residuals(
    problem: CanonicalProblem, kernels: Sequence[np.ndarray], biases: Sequence[np.ndarray] | None = None
) -> list[np.ndarray]:
    """Per block, ``y - prediction`` stacked over subsequences, ``(equations, O)``."""
    res = []
    for i, block in enumerate(problem.blocks):
        pred = forward(block, kernels[i], None if biases is None else biases[i])
        res.append(np.concatenate([y - p for y, p in zip(block.outputs, pred)]))
    return res


def block_residuals(block: Block, use_bias: bool, coef: np.ndarray) -> list[np.ndarray]:
    k, b = unpack_columns(block, coef, use_bias)
    return [y - f for y, f in zip(block.outputs, forward(block, k, b))]


def adjoint(block: Block, use_bias: bool, values: list[np.ndarray]) -> np.ndarray:
    """``A^T v`` for per-sequence ``v`` ``(rows, O)``, through the lagged cross-correlations."""
    cols = block.mask.ravel()
    out: np.ndarray | None = None
    for x, v in zip(block.xs, values):
        _, q = lagged_correlations(x, block.taps, v)
        assert q is not None  # asked for, with the values v
        part = q.reshape(-1, v.shape[1])[cols]
        if use_bias:
            part = np.concatenate([part, v.sum(axis=0)[None]])
        out = part if out is None else out + part
    assert out is not None  # every block holds at least one sequence
    return out

# ----------------------------------------------------------------------------------------------
# The spectrum (singular values, right singular vectors) and its rank
# ----------------------------------------------------------------------------------------------


#: When the Gram cannot resolve the rank, an orthogonal factorization of the design settles it if it costs at
#: most this many flops (rows x columns^2).
QR_BUDGET = 4e9
#: Designs with more columns than this are analyzed from a spectral (Welch/Szego) estimate in the report.
APPROXIMATE_ABOVE = 1024


#: Where the singular values come from, for :func:`rank_tolerance`.
SpectrumSource = Literal["design", "gram", "estimate"]


def rank_tolerance(largest: float, n_rows: int, n_cols: int, source: SpectrumSource = "design") -> float:
    """The one rank rule: singular values of the design at or below this are treated as zero.

    * ``"design"`` (an SVD of the design or of its R factor): ``s_max * max(n, P) * eps``, the default of
      ``numpy.linalg.lstsq`` and ``matrix_rank``;
    * ``"gram"`` (eigenvalues of ``A^T A``): those carry errors of ``~eps * s_max^2``, so singular values below
      ``~sqrt(eps) s_max`` are unresolved: ``4 * s_max * sqrt(P * eps)`` (the factor keeps exactly deficient
      designs from looking full rank);
    * ``"estimate"`` (the Welch/Szego spectral estimate of long kernels): its window's leakage floor,
      ``1e-6 * s_max``.

    Every method and the analyzer decide rank with this function.
    """
    eps = np.finfo(np.float64).eps
    if source == "design":
        return float(largest) * max(n_rows, n_cols) * eps
    if source == "gram":
        return 4.0 * float(largest) * float(np.sqrt(n_cols * eps))
    if source == "estimate":
        return float(largest) * 1e-6
    raise ValueError(f"`source` must be 'design', 'gram' or 'estimate', got {source!r}.")


@dataclass(frozen=True)
class BlockSpectrum:
    singular_values: np.ndarray  # descending
    right_vectors: np.ndarray | None  # (P, P), columns; None for the spectral estimate of large designs
    tolerance: float
    exact: bool  # from an SVD of the explicit design (True) or eigenvalues of the Gram (False)
    channel_orders: np.ndarray | None = None  # spectral estimate only: excited directions per canonical channel

    @property
    def rank(self) -> int:
        return int((self.singular_values > self.tolerance).sum())

    @property
    def vectors(self) -> np.ndarray:
        """``V`` (P, P); a ValueError for the spectral estimate, which has none."""
        if self.right_vectors is None:
            raise ValueError("the spectral estimate of a large design has no singular vectors.")
        return self.right_vectors

    @property
    def coordinates(self) -> np.ndarray:
        """``diag(s) V^T`` (P, P): any subset of the design's columns has the singular values of these columns."""
        return self.singular_values[:, None] * self.vectors.T

    def column_rank(self, columns: np.ndarray) -> int:
        """Numerical rank of the design restricted to ``columns``, with the design's own tolerance."""
        if len(columns) == 0:
            return 0
        p = len(self.singular_values)
        missing = np.setdiff1d(np.arange(p), columns)
        if len(missing) == 0:
            return self.rank
        if len(missing) == 1:  # dropping column j lowers the rank iff no invisible direction involves j
            null = self.vectors[missing[0], self.rank :]
            return self.rank - int(not np.sqrt(np.sum(null**2)) > 1e-8)
        s = np.linalg.svd(self.coordinates[:, columns], compute_uv=False)
        return int((s > self.tolerance).sum())


def block_spectrum(block: Block, use_bias: bool) -> BlockSpectrum:
    """Singular values and right singular vectors of one block's design (cached on the block)."""
    key = ("spectrum", use_bias)
    if key in block.cache:
        return block.cache[key]
    p = n_columns(block, use_bias)
    n = block.n_equations
    if n * p <= EXPLICIT_LIMIT:
        with SerialBLAS():
            _, s, vt = np.linalg.svd(design_matrix(block, use_bias), full_matrices=n < p)
        s = np.concatenate([s, np.zeros(p - len(s))])
        spec = BlockSpectrum(s, vt.T, rank_tolerance(s[0] if len(s) else 0.0, n, p), True)
    else:
        with SerialBLAS():
            lam, v = np.linalg.eigh(block_gram(block, use_bias))
        lam, v = lam[::-1], v[:, ::-1]
        s = np.sqrt(np.clip(lam, 0.0, None))
        spec = BlockSpectrum(s, v, rank_tolerance(s[0], n, p, "gram"), False)
        unresolved = spec.rank < p or s[0] > 1e6 * s[-1]
        covered = bool(block.xs) and sum(len(x) - block.taps + 1 for x in block.xs) == n  # streamed: rows kept?
        if unresolved and covered and n * p * p <= QR_BUDGET:
            # the Gram cannot tell ill-conditioned from deficient here: ask the design itself, via its R factor
            _, s, vt = np.linalg.svd(design_r_factor(block, use_bias))
            spec = BlockSpectrum(s, vt.T, rank_tolerance(s[0], n, p), True)
    block.cache[key] = spec
    return spec


#: Most Welch segments the spectral estimate averages (evenly spread over the record; fewer than a record's worth).
SPECTRAL_SEGMENTS = 512
#: The report's spectrum is always exact up to this many columns (an eigendecomposition of a few ms).
EXACT_ALWAYS = 256


def exact_spectrum_affordable(block: Block, use_bias: bool) -> bool:
    """The cost model of the report's spectrum: exact (an eigendecomposition, ``~10 P^3``) or the estimate.

    Exact up to ``EXACT_ALWAYS`` columns (a few ms) and never above ``APPROXIMATE_ABOVE``.  In between, exact for
    multi-input blocks (their least squares factors the same Gram anyway), and for single-input blocks only
    where it costs no more than the pass over the data (:func:`statistics_flops`): otherwise their least squares
    takes Toeplitz CG, which never forms the factorization.
    """
    p = n_columns(block, use_bias)
    if p <= min(EXACT_ALWAYS, APPROXIMATE_ABOVE):
        return True
    if p > APPROXIMATE_ABOVE:
        return False
    return block.channels > 1 or 10.0 * p**3 <= statistics_flops(block)


def report_spectrum(block: Block, use_bias: bool) -> BlockSpectrum:
    """The spectrum the report uses: exact when cheap or already computed, else a spectral estimate.

    For more than ``APPROXIMATE_ABOVE`` columns an eigendecomposition of the Gram costs O(P^3); the
    eigenvalues of the (block-)Toeplitz Gram are then estimated, by Szego's theorem, from the eigenvalues of
    the inputs' cross-spectral matrices at ``taps`` frequencies (Welch: Kaiser windows, 50% overlap), scaled to
    the number of equations.  Ranks and condition numbers are then approximate and no null space is given.
    """
    if ("spectrum", use_bias) in block.cache or exact_spectrum_affordable(block, use_bias):
        return block_spectrum(block, use_bias)
    key = ("spectral_estimate", use_bias)
    if key not in block.cache:
        block.cache[key] = _spectral_estimate(block, use_bias)
    return block.cache[key]


def block_lags(block: Block, outputs: bool = False) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """Per sequence, the lagged correlations ``(R, Q)`` of :func:`lagged_correlations` below ``taps`` (cached).

    Shared by the spectral estimate of the report and the Toeplitz Gram of long single-input kernels, so the
    data are correlated once; ``outputs`` asks for ``Q`` too (computed with ``R`` in the same pass).
    """
    if ("lags", True) in block.cache:
        return block.cache[("lags", True)]
    with_y = outputs and block.ys is not None
    key = ("lags", with_y)
    if key not in block.cache:
        ys: Sequence[np.ndarray | None] = block.ys if outputs and block.ys is not None else [None] * len(block.xs)
        method = "fft" if block.channels == 1 and block.taps >= 64 else None
        block.cache[key] = [lagged_correlations(x, block.taps, y, method=method) for x, y in zip(block.xs, ys)]
    return block.cache[key]


def _spectral_estimate(block: Block, use_bias: bool) -> BlockSpectrum:
    """Eigenvalues of the (block-)Toeplitz Gram by Szego's theorem: Welch cross-spectral matrices at ``taps``
    frequencies (Kaiser windows, beta 16: sidelobes below -110 dB, so a sinusoid stays a few bins wide; 50%
    overlap), scaled to the number of equations.  Real data: the bins above half are the conjugates of those
    below (same eigenvalues), so only ``taps // 2 + 1`` are formed."""
    import scipy.fft

    t, c = block.taps, block.channels
    window = np.kaiser(t, 16.0)
    nf = t // 2 + 1
    acc = np.zeros((nf, c, c), dtype=complex)
    weight = 0.0
    for x in block.xs:
        if len(x) < t:
            x = np.concatenate([x, np.zeros((t - len(x), c))])
        starts = np.arange(0, len(x) - t + 1, max(t // 2, 1))
        cap = min(SPECTRAL_SEGMENTS, max(64, len(x) // t))  # evenly spread: about one pass over the record
        if len(starts) > cap:
            starts = starts[np.linspace(0, len(starts) - 1, cap).round().astype(int)]
        per = max(1, (1 << 20) // (t * c))  # bounded memory: about 8 MB of segments at a time
        for i in range(0, len(starts), per):
            segs = np.stack([x[a : a + t] for a in starts[i : i + per]]) * window[None, :, None]
            f = scipy.fft.rfft(segs, axis=1, workers=fft_workers())
            if c == 1:
                acc[:, 0, 0] += np.sum(f.real**2 + f.imag**2, axis=0)[:, 0]
            else:
                acc += np.einsum("stc,std->tcd", f.conj(), f)
        weight += len(starts) * np.sum(window**2)
    acc *= block.n_equations / max(weight, 1e-300)
    multiplicity = np.full(nf, 2)
    multiplicity[0] = 1
    if t % 2 == 0:
        multiplicity[-1] = 1
    lam = np.repeat(np.linalg.eigvalsh(acc), multiplicity, axis=0).ravel()
    lam = np.sort(lam)[::-1][: block.n_free]
    if use_bias:
        lam = np.sort(np.concatenate([lam, [float(block.n_equations)]]))[::-1]
    sv = np.sqrt(np.clip(lam, 0.0, None))
    tol = rank_tolerance(sv[0], block.n_equations, len(sv), "estimate") if len(sv) else 0.0
    power = np.repeat(np.real(np.einsum("tcc->tc", acc)), multiplicity, axis=0)
    orders = (np.sqrt(np.clip(power, 0.0, None)) > tol).sum(axis=0)
    return BlockSpectrum(sv, None, tol, False, orders)

# ----------------------------------------------------------------------------------------------
# Long single-input kernels: the Gram as Toeplitz minus edges, by FFT, and preconditioned CG
# ----------------------------------------------------------------------------------------------


class ToeplitzGram:
    """Products with the Gram of a single-input block: ``Toep(R) - H^T H + E^T E`` (+ bias, ridge) by FFT."""

    def __init__(self, block: Block, use_bias: bool, ridge: float) -> None:
        import scipy.fft

        if block.ys is None:
            raise ValueError("the Toeplitz Gram's right-hand side needs the outputs `y`: this block has none.")
        self.fft = scipy.fft
        t = block.taps
        n_out = len(block.out_channels)
        self.t = t
        self.size = scipy.fft.next_fast_len(2 * t, real=True)
        r = np.zeros(t)
        self.cross = np.zeros((t, n_out))
        self.edges = []
        sums = np.zeros(t)
        ysum = np.zeros(n_out)
        n_rows = 0
        for x, y, (rl, q) in zip(block.xs, block.ys, block_lags(block, outputs=True)):
            assert q is not None  # asked for, and the block has outputs
            m = len(x) - t + 1
            r += rl[:, 0, 0]
            self.cross = self.cross + q[:, 0, :]
            for edge, sign in ((x[: t - 1, 0], -1.0), (x[m : m + t - 1, 0], 1.0)):
                self.edges.append((scipy.fft.rfft(edge, self.size), sign))
            sums += column_sums(x, t)[:, 0]
            ysum = ysum + y.sum(axis=0)
            n_rows += m
        self.n_rows = n_rows
        circ = np.concatenate([r, np.zeros(self.size - 2 * t + 1), r[:0:-1]])
        self.toeplitz = scipy.fft.rfft(circ)
        # T. Chan's optimal circulant preconditioner of Toep(R)
        k = np.arange(t)
        chan = ((t - k) * r + k * np.concatenate([[0.0], r[:0:-1]])) / t
        eig = scipy.fft.rfft(chan).real
        self.precond = 1.0 / np.maximum(eig + ridge, eig.max() * 1e-12)
        self.ridge = ridge
        self.use_bias = use_bias
        self.sums, self.ysum = sums, ysum

    def matvec(self, w: np.ndarray) -> np.ndarray:
        fft, t, size = self.fft, self.t, self.size
        wf = fft.rfft(w, size)
        out = fft.irfft(self.toeplitz * wf, size)[:t]
        for hf, sign in self.edges:
            v = fft.irfft(np.conj(hf) * wf, size)[:t]  # v[s] = sum_i h_i w_{i+s}
            v[0] = 0.0
            out += sign * fft.irfft(hf * fft.rfft(v, size), size)[:t]
        if self.use_bias:
            out -= self.sums * (self.sums @ w) / self.n_rows
        return out + self.ridge * w

    def precondition(self, v: np.ndarray) -> np.ndarray:
        return self.fft.irfft(self.fft.rfft(v) * self.precond, self.t)


def pcg(op: ToeplitzGram, b: np.ndarray, tol: float, max_iter: int) -> tuple[np.ndarray, int]:
    x = np.zeros_like(b)
    r = b.copy()
    z = op.precondition(r)
    p = z.copy()
    rz = r @ z
    norm_b = np.linalg.norm(b)
    if norm_b == 0:
        return x, 0
    for it in range(1, max_iter + 1):  # noqa: B007
        ap = op.matvec(p)
        alpha = rz / (p @ ap)
        x += alpha * p
        r -= alpha * ap
        if np.linalg.norm(r) <= tol * norm_b:
            return x, it
        z = op.precondition(r)
        rz_new = r @ z
        p = z + (rz_new / rz) * p
        rz = rz_new
    return x, max_iter
