"""Sufficient statistics of the canonical least-squares system, shared by lstsq and the analyzer.

For one block, the design matrix ``A`` has one row per output sample and one column per free kernel
coefficient (in the block mask's row-major order), then a column of ones for the bias.  Everything
least squares needs is ``A^T A``, ``A^T Y``, ``Y^T Y`` and the number of rows; these add up over
sequences and chunks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .problem import Block

#: Design matrices with at most this many entries may be built explicitly (32 MiB of float64).
EXPLICIT_LIMIT = 1 << 22
#: Rows per chunk when a design is streamed.
CHUNK_ROWS = 1 << 14


@dataclass(frozen=True)
class Statistics:
    """``gram = A^T A`` (P, P); ``cross = A^T Y`` (P, O); ``yty`` (O,); ``n_rows``; ``y_sum`` (O,)."""

    gram: np.ndarray
    cross: np.ndarray | None
    yty: np.ndarray | None
    n_rows: int


def n_columns(block: Block, use_bias: bool) -> int:
    return block.n_free + int(use_bias)


def design_rows(block: Block, x: np.ndarray, use_bias: bool, start: int = 0, stop: int | None = None) -> np.ndarray:
    """Rows ``start:stop`` of one subsequence's design matrix, ``(rows, P)``."""
    windows = sliding_window_view(x, block.taps, axis=0)[start:stop]  # (rows, C, taps)
    rows = windows.transpose(0, 2, 1).reshape(len(windows), -1)[:, block.mask.ravel()]
    if use_bias:
        rows = np.concatenate([rows, np.ones((len(rows), 1))], axis=1)
    return rows


def design_matrix(block: Block, use_bias: bool) -> np.ndarray:
    """The explicit design of a block, ``(n_equations, P)``; only for small problems."""
    size = block.n_equations * n_columns(block, use_bias)
    if size > EXPLICIT_LIMIT:
        raise MemoryError(f"the explicit design would hold {size} entries; use the streamed statistics instead.")
    return np.concatenate([design_rows(block, x, use_bias) for x in block.xs])


def block_statistics(block: Block, use_bias: bool) -> Statistics:
    """``A^T A``, ``A^T Y`` and ``Y^T Y`` of a block, streamed in chunks of rows (cached on the block)."""
    key = ("statistics", use_bias)
    if key in block.cache:
        return block.cache[key]
    p = n_columns(block, use_bias)
    gram = np.zeros((p, p))
    with_y = block.ys is not None
    cross = np.zeros((p, len(block.out_channels))) if with_y else None
    yty = np.zeros(len(block.out_channels)) if with_y else None
    for i, x in enumerate(block.xs):
        m = len(x) - block.taps + 1
        for start in range(0, m, CHUNK_ROWS):
            a = design_rows(block, x, use_bias, start, start + CHUNK_ROWS)
            gram += a.T @ a
            if with_y:
                yc = block.ys[i][start : start + CHUNK_ROWS]
                cross += a.T @ yc
                yty += np.einsum("ij,ij->j", yc, yc)
    stats = Statistics(gram, cross, yty, block.n_equations)
    block.cache[key] = stats
    return stats


def unpack_columns(block: Block, coef: np.ndarray, use_bias: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Split coefficients over the design's columns, ``(P, ...)``, into a canonical kernel and a bias."""
    n_free = block.n_free
    kernel = np.zeros((block.taps * block.channels,) + coef.shape[1:], dtype=coef.dtype)
    kernel[block.mask.ravel()] = coef[:n_free]
    kernel = kernel.reshape((block.taps, block.channels) + coef.shape[1:])
    return kernel, (coef[n_free] if use_bias else None)
