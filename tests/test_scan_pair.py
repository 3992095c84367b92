"""The lag scan's path for the everyday fit (one input channel, one output, one record, a short kernel).

:func:`kernel_recovery.diagnostics.support._pair_correlations` does the general path's operations on 1-D arrays; it
must give the same numbers bit for bit as :func:`~kernel_recovery.diagnostics.support._whitened_correlations` over
:func:`~kernel_recovery.diagnostics.support._scan_spectra` (which tests/test_support_cost.py checks against the scan
written out), and the scan the same flags.
"""

import numpy as np
import pytest
import scipy.signal

from kernel_recovery.diagnostics import support
from kernel_recovery.model.problem import Block


def pair_block(rng, taps, n, coloured, echo, masked, noise):
    x = rng.standard_normal((n, 1))
    if coloured:
        x = scipy.signal.lfilter([1.0], [1.0, -0.9], x, axis=0)
    h = rng.standard_normal(taps)
    y = np.correlate(x[:, 0], h, "valid")[:, None]
    if echo:  # a response far beyond the kernel
        far = taps + 40
        y[: len(y) - far] += 0.4 * x[far : len(y)] * y.std() / x.std()
    y = y + noise * y.std() * rng.standard_normal(y.shape)
    mask = np.ones((taps, 1), dtype=bool)
    if masked:
        mask[1::3] = False
    return Block([x], [y], taps, mask, np.arange(1)), (h * mask[:, 0])[:, None, None]


CASES = [
    (8, 1000, False, False, False, 0.01),
    (8, 1000, True, True, True, 0.1),
    (32, 10000, False, True, False, 0.01),
    (64, 3000, True, False, True, 0.0),
    (1, 500, False, True, False, 0.1),
]


@pytest.mark.parametrize("taps, n, coloured, echo, masked, noise", CASES)
@pytest.mark.parametrize("with_bias", [False, True])
def test_pair_correlations_are_the_general_paths(rng, taps, n, coloured, echo, masked, noise, with_bias):
    block, w = pair_block(rng, taps, n, coloured, echo, masked, noise)
    assert support._one_pair(block)
    b = rng.standard_normal(1) if with_bias else None
    reach = min(max(support.SCAN_TAPS * taps, support.SCAN_MIN), n // 4)
    offsets = support._scan_layout(taps, 1, reach)[0]
    fast = support._pair_correlations(block, w, b, reach, offsets)
    general = support._whitened_correlations(block, support._scan_spectra(block, w, b, reach), offsets)
    for got, want in zip(fast, general):
        assert got.shape == want.shape
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("taps, n, coloured, echo, masked, noise", CASES)
def test_scan_flags_the_same_through_either_path(rng, monkeypatch, taps, n, coloured, echo, masked, noise):
    block, w = pair_block(rng, taps, n, coloured, echo, masked, noise)
    fast = support._scan_block(block, w, None, 1)
    monkeypatch.setattr(support, "_one_pair", lambda block: False)
    general = support._scan_block(block, w, None, 1)
    assert (fast is None) == (general is None)
    if fast is not None:
        assert len(fast) == len(general)
        for got, want in zip(fast, general):
            assert got[0] == want[0] and got[1:2] == want[1:2] and got[3:] == want[3:]
            np.testing.assert_array_equal(got[2], want[2])
    if echo and noise > 0:
        assert fast  # the far echo is found


def test_blocks_that_are_not_one_pair_take_the_general_path(rng):
    x = rng.standard_normal((2000, 2))
    ys = [rng.standard_normal((1993, 1))]
    assert not support._one_pair(Block([x], ys, 8, np.ones((8, 2), dtype=bool), np.arange(1)))  # two channels
    x1 = x[:, :1]
    assert not support._one_pair(Block([x1, x1], ys * 2, 8, np.ones((8, 1), dtype=bool), np.arange(1)))  # two records
    assert not support._one_pair(Block([x1], [rng.standard_normal((1901, 1))], 100, np.ones((100, 1), dtype=bool), [0]))
