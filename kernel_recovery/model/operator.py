"""The design ``A`` of a block as an operator: the forward model ``A w`` and its adjoint ``A^T v``.

Columns are the block's free kernel coefficients (row-major ``(tap, channel)``), then the bias column
(see :mod:`kernel_recovery.model.design`); rows are the output samples of each subsequence in turn.
:class:`~kernel_recovery.model.design_operator.DesignOperator` wraps these products as a SciPy linear operator.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

from .design import unpack_columns, window_rows
from .problem import Block, CanonicalProblem
from .statistics import lagged_correlations

#: Above this many multiply-adds per output sample (taps x channels x outputs), Block.forward uses FFTs.
DIRECT_FORWARD_MAX = 64
#: The direct forward model multiplies design rows cut in chunks of at most this many entries (bounded memory).
DIRECT_CHUNK_ENTRIES = 1 << 16


#: ``numpy.correlate`` with at most this many taps runs its own vector loop; from 12 taps on it calls one BLAS dot per
#: output, 4-5x slower per tap (numpy 2.4, measured: 4096 outputs, 11 taps 7 us, 12 taps 32 us, 16 taps 23 us).
SHORT_TAPS = 11
#: Longer kernels over at least this many outputs are correlated as blocked matrix products (10,000 outputs of 32
#: taps: ~31 us against ~62 us); over fewer, kernels of at most ``PIECED_TAPS`` taps in pieces of at most
#: ``SHORT_TAPS`` taps, the pieces' outputs added (4096 outputs: 16 taps 23 -> 11 us, 32 taps 26 -> 22 us).
BLOCKED_ROWS = 2048
PIECED_TAPS = 3 * SHORT_TAPS


def correlate_valid(x: np.ndarray, w: np.ndarray, m: int | None = None) -> np.ndarray:
    """``numpy.correlate(x, w, "valid")[:m]``, ``[t] = sum_j x[t + j] w[j]`` (1-D), equal to rounding, whatever the
    kernel's length: one input channel's forward model (the checks' residuals and filters).

    Kernels longer than ``SHORT_TAPS`` over at least ``BLOCKED_ROWS`` outputs as blocked products, the outputs in
    rows of ``B``, ``out[q] = sum_u X[q + u] @ T[u]`` (``X`` the input cut in rows of ``B``, ``T[u]`` the ``B x B``
    Toeplitz pieces of ``w``: :func:`_toeplitz_pieces`); fewer outputs of at most ``PIECED_TAPS`` taps in pieces.
    ``x`` may run past the ``m + len(w) - 1`` samples the outputs read (a caller's zero padding: then it is cut in
    rows without a copy).
    """
    taps = len(w)
    m = len(x) - taps + 1 if m is None else m
    if taps <= SHORT_TAPS or (m < BLOCKED_ROWS and taps > PIECED_TAPS):
        return np.correlate(x[: m + taps - 1], w, "valid")
    if m < BLOCKED_ROWS:  # in pieces of at most SHORT_TAPS taps (32 taps as 11 + 11 + 10)
        pieces = -(-taps // SHORT_TAPS)
        step = -(-taps // pieces)
        out = np.correlate(x[: m + step - 1], w[:step], "valid")
        for a in range(step, taps, step):
            part = w[a : a + step]
            out += np.correlate(x[a : a + m + len(part) - 1], part, "valid")
        return out
    b = 16 if taps <= 32 else 32
    index, pieces = _toeplitz_pieces(taps, b)
    t = np.append(w, 0.0)[index]  # (pieces b, b): T[u][v, s] = w[u b + v - s] (0 outside the kernel)
    q = -(-m // b)
    size = (q + pieces - 1) * b  # (holds the samples read: q b >= m, (pieces - 1) b >= taps - 1)
    if len(x) >= size and x.flags.c_contiguous:
        rows = x[:size].reshape(-1, b)  # (the samples past m + taps - 1 reach only the outputs past m)
    else:
        padded = np.zeros(size)
        padded[: m + taps - 1] = x[: m + taps - 1]
        rows = padded.reshape(-1, b)
    out = rows[:q] @ t[:b]
    for u in range(1, pieces):
        out += rows[u : q + u] @ t[u * b : (u + 1) * b]
    return out.ravel()[:m]


@functools.lru_cache(maxsize=16)
def _toeplitz_pieces(taps: int, b: int) -> tuple[np.ndarray, int]:
    """For :func:`correlate_valid` (read-only: cached): the index into ``[w, 0]`` of the stacked pieces
    ``T[u][v, s] = w[u b + v - s]`` ``(pieces b, b)`` (``taps``, the zero, outside the kernel), and the number of
    pieces."""
    pieces = -(-(taps - 1) // b) + 1
    d = np.arange(pieces * b)[:, None] - np.arange(b)[None, :]
    index = np.where((d >= 0) & (d < taps), d, taps)
    index.flags.writeable = False
    return index, pieces


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


def forward(block: Block, kernel: np.ndarray, bias: np.ndarray | None = None) -> list[np.ndarray]:
    """Outputs of the canonical correlation for a canonical ``kernel`` ``(taps, channels, O)``."""
    kernel = np.where(block.mask[:, :, None], kernel, 0.0)
    outs = []
    for x in block.xs:
        m = len(x) - block.taps + 1
        if block.taps * kernel.shape[1] * kernel.shape[2] <= DIRECT_FORWARD_MAX or m < 4 * block.taps:
            # design rows times the kernel, one GEMM per chunk of rows (a loop of one product per tap was ~5x
            # slower: each tap's (m, C) @ (C, O) product is a pass over the rows)
            weights = kernel.reshape(-1, kernel.shape[2])
            out = np.empty((m, kernel.shape[2]), dtype=np.result_type(x, kernel))
            step = max(1, DIRECT_CHUNK_ENTRIES // max(len(weights), 1))
            for start in range(0, m, step):
                out[start : start + step] = window_rows(x, block.taps, slice(start, start + step)) @ weights
        else:
            out = _correlate_fft(x, kernel, m)
        if bias is not None:
            out += bias
        outs.append(out)
    return outs


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
