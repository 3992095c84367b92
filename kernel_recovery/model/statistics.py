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

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import as_strided, sliding_window_view

from .design import window_rows
from .problem import Block
from .threads import SerialBLAS, fft_workers
from .threads import workers as _workers

#: Entries of ``x`` per chunk in the blocked lagged correlations (2 MiB of float64).
CHUNK_ENTRIES = 1 << 18


@dataclass(frozen=True)
class Statistics:
    """``gram = A^T A`` (P, P); ``cross = A^T Y`` (P, O); ``yty`` (O,); ``n_rows``."""

    gram: np.ndarray
    cross: np.ndarray | None
    yty: np.ndarray | None
    n_rows: int


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


#: Rows per ``numpy.correlate`` call of the one-channel sums (a BLAS dot per lag; the partials added pairwise): no
#: more terms per dot than one GEMM of the blocked path adds at the sizes where they are used.
CORRELATE_ROWS = 1 << 13
#: One input channel and at most this many multiply-adds (``m T (1 + O)``): dot products per lag beat the blocked
#: GEMMs (L=1e4: K=8 22 against 88 us, K=32 65 against 129 us, K=64 123 against 171 us; even at ~4e6).
CORRELATE_WORK = 3e6


def _lagged_correlate(x, taps, y):
    """One input channel: every lag by ``numpy.correlate`` over chunks of ``CORRELATE_ROWS`` rows."""
    x1 = x[:, 0]
    m = len(x1) - taps + 1
    parts_r, parts_q = [], []
    for s in range(0, m, CORRELATE_ROWS):
        e = min(s + CORRELATE_ROWS, m)
        span = x1[s : e + taps - 1]
        parts_r.append(np.correlate(span, x1[s:e], "valid"))  # [l] = sum_t x_{t+l} x_t
        if y is not None:
            parts_q.append([np.correlate(span, y[s:e, j], "valid") for j in range(y.shape[1])])
    r = _tree_sum(np.array(parts_r))[:, None, None]
    return r, None if y is None else _tree_sum(np.array(parts_q)).T[:, None, :]


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
    method : {"gemm", "fft", "direct", "correlate"}, optional
        Default: chosen by a cost model.  All give the same sums up to rounding (``"correlate"``: one input
        channel only).

    Returns
    -------
    R : ndarray, shape (T, C, C)
    Q : ndarray, shape (T, C, O), or None without ``y``
    """
    n, c = x.shape
    m = n - taps + 1
    o = 0 if y is None else y.shape[1]
    if method is None:
        if c == 1 and 1 <= m and m * taps * (1 + o) <= CORRELATE_WORK:
            method = "correlate"
        elif taps * c <= 8 or m < 4 * taps:
            method = "direct"
        else:
            method = "fft" if _use_fft(taps, c, o) else "gemm"
    if method == "direct":
        return _lagged_direct(x, taps, y, 0, m)
    if method == "fft":
        return _lagged_fft(x, taps, y)
    if method == "correlate":
        if c != 1:
            raise ValueError(f"method='correlate' sums one input channel; x has {c}.")
        return _lagged_correlate(x, taps, y)
    return _lagged_gemm(x, taps, y)


def _lagged_direct(x, taps, y, start, stop):
    """Reference-speed sums over rows ``start:stop`` (used for short stretches and tiny kernels)."""
    c = x.shape[1]
    rows = stop - start
    if rows * taps * c <= CHUNK_ENTRIES:  # small: every lag from the explicit rows, two products
        a = window_rows(x[start : stop + taps - 1], taps)  # a[t, l C + j] = x[start + t + l, j]
        r = _product_sum(a[:, :c], a).reshape(c, taps, c).transpose(1, 0, 2)
        if y is None:
            return np.ascontiguousarray(r), None
        return np.ascontiguousarray(r), _product_sum(a, np.ascontiguousarray(y[start:stop])).reshape(taps, c, -1)
    r = np.empty((taps, c, c))
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
    # every block product's diagonal sums at once: [d, a, e, o + b - 1] (e: x's channels, then y's), offset o
    pairs = [np.concatenate([mx[d].reshape(b, c, b, c), my[d].reshape(b, c, b, o)], axis=3) for d in range(k + 1)]
    sums = _diagonal_sums(np.stack(pairs).transpose(0, 2, 4, 1, 3))
    for d in range(k + 1):
        lags = np.arange(max(0, (d - 1) * b + 1), min(taps, (d + 1) * b))
        r[lags] += sums[d][:, :c][:, :, lags - d * b + b - 1].transpose(2, 0, 1)
        if q is not None:
            q[lags] += sums[d][:, c:][:, :, d * b - lags + b - 1].transpose(2, 0, 1)
    if nb * b < m:  # the rows after the last full block
        r_tail, q_tail = _lagged_direct(x, taps, y, nb * b, m)
        r += r_tail
        if q is not None:
            q += q_tail
    return r, q


def _diagonal_sums(m: np.ndarray) -> np.ndarray:
    """``D[..., o + b - 1] = trace(m, offset=o)`` over the last two axes ``(b, b)``, every offset at once: each
    matrix is copied into columns ``b - 1 .. 2 b - 2`` of a zero ``(b, 3 b - 2)`` buffer whose rows, read with one
    more element of stride, hold the diagonals as columns."""
    b = m.shape[-1]
    lead = m.shape[:-2]
    buf = np.zeros(lead + (b, 3 * b - 2))
    buf[..., b - 1 : 2 * b - 1] = m
    row, col = buf.strides[-2:]
    skew = as_strided(buf, lead + (b, 2 * b - 1), buf.strides[:-2] + (row + col, col), writeable=False)
    return skew.sum(axis=-2)  # [..., k] = sum_p m[p, p + k - (b - 1)]


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
    >>> from kernel_recovery.model.design import design_matrix
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


def window_products(rows: np.ndarray, lead: int) -> np.ndarray:
    """``[..., q] = rows[..., :q, :lead].T @ rows[..., :q, :]`` for ``q = 0 .. len``: the running products of the
    first rows, ``(..., len + 1, lead, P)`` (summed by a product with a triangle of ones: numpy's cumsum along an
    inner axis costs ~5 ns an entry)."""
    n, p = rows.shape[-2:]
    products = (rows[..., :lead, None] * rows[..., None, :]).reshape(rows.shape[:-2] + (n, lead * p))
    return (_strict_lower_ones(n) @ products).reshape(rows.shape[:-2] + (n + 1, lead, p))


@functools.lru_cache(maxsize=64)
def _strict_lower_ones(n: int) -> np.ndarray:
    """``np.tri(n + 1, n, -1)``, read-only: row ``q`` sums the first ``q`` of ``n`` rows."""
    tri = np.tri(n + 1, n, -1)
    tri.flags.writeable = False
    return tri


def window_grams(
    a: np.ndarray, window: int, lead: int, first: np.ndarray, points: np.ndarray, head: np.ndarray
) -> np.ndarray:
    """``a[:k].T @ a[:k]`` at ``points`` ``(len(points), P, P)`` from their first ``lead`` rows ``first`` (the
    same products over ``a[:k, :lead]``), for rows whose first ``window`` columns are windows of one sequence that
    advance ``lead`` columns a row (``a[i + 1, j] = a[i, j + lead]``), then at most a column of ones; ``head``:
    :func:`window_products` of the first ``ceil(window / lead) - 1`` rows.

    Row ``q lead + f`` of the Gram is row ``f`` of the products over the rows ``q .. k + q - 1`` (the windows
    shifted by ``q`` rows): ``F_{k+q} - F_q`` with ``F_v = a[:v, :lead].T @ a[:v]``, and ``F_{k+q}`` is ``F_k``
    plus the next ``q`` rows' products (the edge terms of :func:`gram_from_lags`),
    so the Gram costs ``O(P^2)`` per point instead of ``O(k P^2)``.  Each block row is written with its transpose
    (the block column) as two strided views of one buffer, whose spare rows and columns take the entries past the
    window.
    """
    n_points, p = len(points), a.shape[1]
    nq = len(head)  # block rows of ``lead`` Gram rows
    # [s, q, f, :] = row q lead + f of the Gram, from column q lead on (and the bias column)
    edges = window_products(a[points[:, None] + np.arange(nq - 1)], lead)
    edges += first[:, None] - head
    width = window + nq * lead
    buf = np.empty((n_points, width, width))
    size, (outer, row, col) = buf.itemsize, buf.strides
    shape, diagonal = (n_points, nq, lead, window), lead * (width + 1) * size
    blocks = edges[..., :window]
    # (ndarray views on buf's memory: as_strided's wrapper costs ~5 us a call)
    np.ndarray(shape, buf.dtype, buf, 0, (outer, diagonal, row, col))[...] = blocks
    np.ndarray(shape, buf.dtype, buf, 0, (outer, diagonal, col, row))[...] = blocks
    if p > window:  # the column of ones: the rows' sums, and the count
        sums = edges[..., p - 1].reshape(n_points, -1)[:, :window]
        buf[:, :window, window] = sums
        buf[:, window, :window] = sums
        buf[:, window, window] = points
    return buf[:, :p, :p]
