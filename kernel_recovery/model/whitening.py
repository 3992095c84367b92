"""Whitening: prediction-error filters of the inputs, and a block filtered by one (the kernel is unchanged)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .problem import Block


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
