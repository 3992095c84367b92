"""The explicit design matrix of a block, for small problems and checks: its rows, columns and R factor.

For one block, the design matrix ``A`` has one row per output sample and one column per free kernel
coefficient (in the block mask's row-major ``(tap, channel)`` order), then a column of ones for the bias.
Large designs are never formed: least squares reads their sums (:mod:`kernel_recovery.model.statistics`).
"""

from __future__ import annotations

from typing import cast

import numpy as np
from numpy.lib.stride_tricks import as_strided, sliding_window_view

from .problem import Block
from .threads import SerialBLAS

#: Design matrices with at most this many entries (2 MiB of float64) are built explicitly and solved by SVD;
#: larger ones go through the exact lagged-correlation statistics (faster from about this size on).
EXPLICIT_LIMIT = 1 << 18
#: Sequence designs of at most this many entries are solved and analysed from their explicit rows (an SVD); larger
#: ones from the exact lagged-correlation statistics, which cost less from about here on (one process, checks off:
#: 1000 x 8 the same, 1000 x 32 half, 3000 x 16 a third, 10000 x 8 a fifth of the explicit path's time).
SVD_LIMIT = 1 << 13
#: Rows per chunk when a design is streamed explicitly.
CHUNK_ROWS = 1 << 14


def n_columns(block: Block, use_bias: bool) -> int:
    return block.n_free + int(use_bias)


def window_rows(x: np.ndarray, width: int, index: slice | np.ndarray = slice(None)) -> np.ndarray:
    """The im2col rows of ``x`` ``(n, C)``: row ``t`` is ``x[t : t + width]`` flattened tap-major, ``(rows, width C)``.

    ``index`` (a slice or an integer array) picks the rows.  This is the only place design rows are cut.
    """
    n, c = x.shape
    rows = max(n - width + 1, 0)
    # (rows, width, C) windows as a read-only view (sliding_window_view's checks cost more than a small design);
    # of a C-contiguous x built on its buffer, which numpy checks holds them (as_strided: 2.4 against 0.5 us)
    shape, strides = (rows, width, c), (x.strides[0], x.strides[0], x.strides[1])
    if x.flags.c_contiguous and rows:
        windows = np.ndarray(shape, x.dtype, x, 0, strides)
        windows.flags.writeable = False
    else:
        windows = as_strided(x, shape, strides, writeable=False)
    windows = windows[index]
    return windows.reshape(len(windows), width * c)


def grid_windows(x: np.ndarray, span: tuple[int, ...]) -> np.ndarray:
    """The N-D windows of ``x`` ``(*spatial, C)``, a view ``(*positions, C, *span)``: the grid design's rows
    (:func:`kernel_recovery.model.grid.design_rows`) are cut from these, as sequence rows by :func:`window_rows`."""
    return sliding_window_view(x, span, axis=tuple(range(len(span))))


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
    if len(block.xs) == 1:
        return design_rows(block, block.xs[0], use_bias)
    return np.concatenate([design_rows(block, x, use_bias) for x in block.xs])


def unpack_columns(block: Block, coef: np.ndarray, use_bias: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Split coefficients over the design's columns, ``(P, ...)``, into a canonical kernel and a bias."""
    mask = block.mask
    n_free = block.n_free
    if n_free == mask.size:  # every tap free (the usual fit): the kernel is the first rows, as a new array
        kernel = coef[:n_free].reshape(mask.shape + coef.shape[1:]).copy()
        return kernel, (coef[n_free] if use_bias else None)
    kernel = np.zeros((block.taps * block.channels,) + coef.shape[1:], dtype=coef.dtype)
    kernel[mask.ravel()] = coef[:n_free]
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
