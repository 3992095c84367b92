"""The lag scan's path for the everyday fit (one input channel, one output, one record, a short kernel).

:func:`kernel_recovery.diagnostics.support._pair_correlations` does the general path's operations on 1-D arrays; it
must give the same numbers bit for bit as :func:`~kernel_recovery.diagnostics.support._whitened_correlations` over
:func:`~kernel_recovery.diagnostics.support._scan_spectra` (which tests/test_support_cost.py checks against the scan
written out) where both take the residual directly (at most ``DIRECT_RESIDUAL`` taps), the same to rounding beyond
(the general path's residual by FFT), and the scan the same flags.  The blocked correlation both use
(:func:`~kernel_recovery.diagnostics.support._correlate`) is checked against ``numpy.correlate``.
"""

import numpy as np
import pytest
import scipy.signal

from kernel_recovery.diagnostics import support
from kernel_recovery.model.operator import correlate_valid
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
    (100, 6000, False, True, False, 0.01),  # a residual direct here, by FFT in the general path
    (128, 20000, True, True, True, 0.01),  # and FFTs of rows longer than BATCHED_FFT, one at a time
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
        if taps <= support.DIRECT_RESIDUAL:
            np.testing.assert_array_equal(got, want)
        else:  # the residual by FFT there: rounding of y's scale
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12 * np.abs(want).max())


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
            assert got[0] == want[0]
            np.testing.assert_allclose(got[1], want[1], rtol=0 if taps <= support.DIRECT_RESIDUAL else 1e-11)
            np.testing.assert_allclose(got[3:], want[3:], rtol=0 if taps <= support.DIRECT_RESIDUAL else 1e-12)
            np.testing.assert_array_equal(got[2], want[2])
    if echo and noise > 0:
        assert fast  # the far echo is found


def test_blocks_that_are_not_one_pair_take_the_general_path(rng):
    x = rng.standard_normal((2000, 2))
    ys = [rng.standard_normal((1993, 1))]
    assert not support._one_pair(Block([x], ys, 8, np.ones((8, 2), dtype=bool), np.arange(1)))  # two channels
    x1 = x[:, :1]
    assert not support._one_pair(Block([x1, x1], ys * 2, 8, np.ones((8, 1), dtype=bool), np.arange(1)))  # two records
    taps = support.PAIR_TAPS + 1  # a kernel too long for a direct residual
    ys = [rng.standard_normal((2001 - taps, 1))]
    assert not support._one_pair(Block([x1], ys, taps, np.ones((taps, 1), dtype=bool), [0]))


@pytest.mark.parametrize("taps", [1, 5, 11, 12, 16, 32, 33, 64, 100, 128])
@pytest.mark.parametrize("n", [30, 2047, 2100, 5000, 12345])
def test_blocked_correlation_is_numpys(rng, taps, n):
    x, w = rng.standard_normal(n + taps - 1), rng.standard_normal(taps)
    got = correlate_valid(x, w)
    want = np.correlate(x, w, "valid")
    assert got.shape == want.shape == (n,)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-13 * np.sqrt(taps) * np.abs(want).max())
    # a caller's zero padding past the samples read (cut in rows without a copy) changes nothing but rounding
    padded = np.concatenate([x, np.zeros(64)])
    np.testing.assert_allclose(
        correlate_valid(padded, w, n), want, rtol=0, atol=1e-13 * np.sqrt(taps) * np.abs(want).max()
    )
    # each output is its own window's product: a spike in x moves only the outputs that read it
    spike = np.zeros_like(x)
    spike[n // 2] = 1.0
    np.testing.assert_array_equal(
        np.flatnonzero(correlate_valid(spike, w)), np.flatnonzero(np.correlate(spike, w, "valid"))
    )


@pytest.mark.parametrize("least", [1, 7, 100, 1282, 12532, 20011, 37023, 100000, 131073])
def test_scan_length_holds_the_offsets_and_is_five_smooth(least):
    import scipy.fft

    n = support._scan_length(least)
    first = scipy.fft.next_fast_len(least, real=True)
    assert least <= n <= 1.25 * first
    m = n
    for p in (2, 3, 5):
        while m % p == 0:
            m //= p
    assert m == 1


@pytest.mark.parametrize("n", [1000, support.BATCHED_FFT, support.BATCHED_FFT + 1, 20480])
@pytest.mark.parametrize("rows", [1, 2, 3])
def test_row_transforms_are_scipys(rng, n, rows):
    import scipy.fft

    a = rng.standard_normal((rows, n - 7))
    spectra = support._rfft_rows(a, n)
    want = scipy.fft.rfft(a, n, axis=1)
    assert spectra.shape == want.shape
    np.testing.assert_allclose(spectra, want, rtol=0, atol=1e-12 * np.abs(want).max())
    cross = spectra[:, None] * np.conj(spectra[None, :])  # (rows, rows, f): the general path's product
    back = support._irfft_rows(cross, n)
    want = scipy.fft.irfft(cross, n, axis=-1)
    assert back.shape == want.shape == (rows, rows, n)
    np.testing.assert_allclose(back, want, rtol=0, atol=1e-12 * np.abs(want).max())
