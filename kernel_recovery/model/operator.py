"""The design ``A`` of a block as an operator: the forward model ``A w`` and its adjoint ``A^T v``.

Columns are the block's free kernel coefficients (row-major ``(tap, channel)``), then the bias column
(see :mod:`kernel_recovery.model.design`); rows are the output samples of each subsequence in turn.
:class:`~kernel_recovery.model.design_operator.DesignOperator` wraps these products as a SciPy linear operator.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .design import unpack_columns, window_rows
from .problem import Block, CanonicalProblem
from .statistics import lagged_correlations

#: Above this many multiply-adds per output sample (taps x channels x outputs), Block.forward uses FFTs.
DIRECT_FORWARD_MAX = 64
#: The direct forward model multiplies design rows cut in chunks of at most this many entries (bounded memory).
DIRECT_CHUNK_ENTRIES = 1 << 16


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
