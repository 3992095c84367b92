"""Whitening: prediction-error filters of the inputs, and a block filtered by one (the kernel is unchanged)."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

from .problem import Block


def whitening_filters(xs: Sequence[np.ndarray], order: int) -> np.ndarray:
    """Per channel, the prediction-error filter ``[1, -a_1, ..., -a_p]`` ``(order + 1, channels)`` of a Yule-Walker
    AR(``order``) fit to the sequences ``xs`` (each ``(length, channels)``; their autocorrelations are pooled).

    Filtering a channel by it (``scipy.signal.lfilter(f, 1, x)``) leaves its innovations: nearly white.  The same as
    ``prediction_filters(autocorrelations(xs, order))``.
    """
    return prediction_filters(autocorrelations(xs, order))


def autocorrelations(xs: Sequence[np.ndarray], order: int) -> np.ndarray:
    """``acf[k, c] = sum_t x[t + k, c] x[t, c]`` for lags ``k <= order``, summed over the sequences ``xs`` (each
    ``(length, channels)``): ``(order + 1, channels)``, every product of the record (no window, no edge dropped).

    Few channels: one ``numpy.correlate`` per channel (a single pass in C); many: one vectorized sum per lag.
    """
    channels = xs[0].shape[1]
    acf = np.zeros((order + 1, channels))
    for x in xs:
        n = len(x)
        k = min(order + 1, n)
        if k == 0:
            continue
        if channels <= k:
            padded = np.zeros(n + k - 1)
            for c in range(channels):
                col = np.ascontiguousarray(x[:, c], dtype=float)
                padded[:n] = col
                acf[:k, c] += np.correlate(padded, col, "valid")  # [i] = sum_t x[t + i] x[t] (zeros past the end)
        else:
            for lag in range(k):
                acf[lag] += np.sum(x[lag:] * x[: n - lag], axis=0)
    return acf


def prediction_filters(acf: np.ndarray) -> np.ndarray:
    """The prediction-error filters ``(order + 1, channels)`` of the Yule-Walker equations with autocorrelations
    ``acf`` ``(order + 1, channels)`` (:func:`autocorrelations`): ``[1, 0, ..., 0]`` where a channel is zero or its
    equations are singular.

    The Toeplitz systems of all channels are solved in one batched ``numpy.linalg.solve`` (one call, not one
    Levinson recursion per channel: the same solution to rounding), their diagonal raised by a relative 1e-6 (a
    little white noise: sinusoidal inputs keep a stable filter).
    """
    order, channels = len(acf) - 1, acf.shape[1]
    filters = np.zeros((order + 1, channels))
    filters[0] = 1.0
    if order == 0:
        return filters
    live = acf[0] > 0
    every = bool(live.all())
    if not every and not live.any():
        return filters
    # (live, order + 2): the lags, then the loaded lag 0; one gather builds every Toeplitz matrix, loaded diagonal
    # included (a little white noise: the same product as scaling the diagonal afterwards)
    ext = np.empty((channels, order + 2))
    ext[:, : order + 1] = acf.T
    ext[:, order + 1] = ext[:, 0] * (1 + 1e-6)
    if not every:
        ext = ext[live]
    mats = ext[:, _toeplitz_index(order)]  # (live, order, order)
    rhs = ext[:, 1 : order + 1, None]
    try:
        coef = np.linalg.solve(mats, rhs)[:, :, 0]
    except np.linalg.LinAlgError:  # a singular channel: solve them one by one and leave it unfiltered
        coef = np.full((len(mats), order), np.nan)
        for i in range(len(mats)):
            try:
                coef[i] = np.linalg.solve(mats[i], rhs[i, :, 0])
            except np.linalg.LinAlgError:
                continue
    if every and np.isfinite(coef).all():
        filters[1:] = -coef.T
    else:
        good = np.isfinite(coef).all(axis=1)
        filters[1:, np.flatnonzero(live)[good]] = -coef[good].T
    return filters


@functools.lru_cache(maxsize=8)
def _toeplitz_index(order: int) -> np.ndarray:
    """``|i - j|`` for ``i, j < order``, the lag of each entry of a symmetric Toeplitz matrix, with ``order + 1``
    (the loaded lag 0 of :func:`prediction_filters`) on the diagonal (read-only: cached)."""
    lags = np.arange(order)
    index = np.abs(lags[:, None] - lags[None, :])
    index[lags, lags] = order + 1
    index.flags.writeable = False
    return index


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
