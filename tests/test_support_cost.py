"""The cheap forms of the kernel-size check and the lag scan equal their explicit definitions.

The lag scan prewhitens the input and the residual through autocorrelations and a filter on their raw correlation,
and computes residuals in its own FFT; the kernel-size check fits both models from one Cholesky factor.  Each is
compared here with the definition written out: lag sums by Python loops, Yule-Walker filters by
``scipy.linalg.solve_toeplitz``, prewhitening by ``numpy.convolve`` (the full FIR output), correlations by explicit
dot products, residuals by ``numpy.correlate``, least squares by ``numpy.linalg.lstsq`` on the explicit sampled design
and the F-test's p-value by ``scipy.stats.f``.
"""

import numpy as np
import pytest
import scipy.linalg
import scipy.signal
import scipy.stats

from kernel_recovery.diagnostics import support
from kernel_recovery.model.problem import Block
from kernel_recovery.model.whitening import autocorrelations, prediction_filters, whitening_filters


def coloured(rng, n, channels, pole=0.8):
    return scipy.signal.lfilter([1.0], [1.0, -pole], rng.standard_normal((n, channels)), axis=0)


@pytest.mark.parametrize("channels", [1, 3, 20])
@pytest.mark.parametrize("order", [0, 1, 8, 16, 40])
def test_autocorrelations_are_the_lag_sums(rng, channels, order):
    xs = [coloured(rng, n, channels) for n in (300, 37, 5)]
    want = np.zeros((order + 1, channels))
    for x in xs:
        for k in range(order + 1):
            for t in range(len(x) - k):
                want[k] += x[t + k] * x[t]
    np.testing.assert_allclose(autocorrelations(xs, order), want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("channels", [1, 4])
def test_prediction_filters_solve_the_yule_walker_equations(rng, channels):
    order = 12
    xs = [coloured(rng, 500, channels, 0.9)]
    xs[0][:, -1] = 0.0  # a silent channel is left unfiltered
    acf = autocorrelations(xs, order)
    got = prediction_filters(acf)
    for c in range(channels):
        if c == channels - 1:
            np.testing.assert_array_equal(got[:, c], np.eye(order + 1)[0])
            continue
        col = acf[:order, c].copy()
        col[0] *= 1 + 1e-6
        a = scipy.linalg.solve_toeplitz(col, acf[1:, c])
        np.testing.assert_allclose(got[:, c], np.r_[1.0, -a], rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(whitening_filters(xs, order), got)


def scan_reference(block, w, b, offsets):
    """The prewhitened correlations, energies and rss of the lag scan, written out."""
    g = support.SCAN_ORDER
    c, o = block.channels, len(block.out_channels)
    kernel = np.where(block.mask[:, :, None], w, 0.0)
    resid = []
    for x, y in zip(block.xs, block.ys):
        fit = np.stack([sum(np.correlate(x[:, i], kernel[:, i, k], "valid") for i in range(c)) for k in range(o)], 1)
        resid.append(y - fit - (0.0 if b is None else b))

    def filters(seqs, channels):  # Yule-Walker by Levinson (scipy), autocorrelations pooled
        out = np.zeros((g + 1, channels))
        for i in range(channels):
            acf = np.array([sum(np.dot(s[k:, i], s[: len(s) - k, i]) for s in seqs) for k in range(g + 1)])
            col = acf[:g].copy()
            col[0] *= 1 + 1e-6
            out[:, i] = np.r_[1.0, -scipy.linalg.solve_toeplitz(col, acf[1:])]
        return out

    wx, wr = filters(block.xs, c), filters(resid, o)
    corr = np.zeros((len(offsets), c, o))
    sxx, srr, rss = np.zeros(c), np.zeros(o), np.zeros(o)
    for x, r in zip(block.xs, resid):
        fx = np.stack([np.convolve(x[:, i], wx[:, i]) for i in range(c)], 1)  # the full FIR outputs
        fr = np.stack([np.convolve(r[:, k], wr[:, k]) for k in range(o)], 1)
        for n, j in enumerate(offsets):  # sum_t fr[t] fx[t + j] over the t where both exist
            t0, t1 = max(0, -j), min(len(fr), len(fx) - j)
            if t0 < t1:
                corr[n] += fx[t0 + j : t1 + j].T @ fr[t0:t1]
        sxx += np.sum(fx**2, axis=0) * len(r) / len(x)
        srr += np.sum(fr**2, axis=0)
        rss += np.sum(r**2, axis=0)
    return corr, sxx, srr, rss


@pytest.mark.parametrize(
    "taps, channels, outputs, lengths, use_bias",
    [
        (8, 1, 1, (1000,), False),  # the residual by numpy.correlate
        (100, 1, 1, (3000,), True),  # in the scan's own FFT
        (40, 2, 2, (1500, 900), True),  # in the scan's own FFT, several sequences
        (30, 3, 2, (1200,), False),  # by the forward model (6 pairs)
    ],
)
def test_scan_correlations_are_the_prewhitened_cross_correlations(rng, taps, channels, outputs, lengths, use_bias):
    xs = [coloured(rng, n, channels) for n in lengths]
    ys = [coloured(rng, n - taps + 1, outputs, 0.5) for n in lengths]
    mask = np.ones((taps, channels), dtype=bool)
    mask[1::3, 0] = False  # some taps fixed at zero
    block = Block(xs, ys, taps, mask, np.arange(outputs))
    w = rng.standard_normal((taps, channels, outputs))
    b = rng.standard_normal(outputs) if use_bias else None
    reach = min(lengths) // 4
    offsets = support._scan_layout(taps, channels, reach)[0]
    spectra = support._scan_spectra(block, w, b, reach)
    got = support._whitened_correlations(block, spectra, offsets)
    want = scan_reference(block, w, b, offsets)
    scale = np.max(np.abs(want[0]))
    np.testing.assert_allclose(got[0], want[0], rtol=0, atol=1e-10 * scale)
    for g, v in zip(got[1:], want[1:]):
        np.testing.assert_allclose(g, v, rtol=1e-10)


@pytest.mark.parametrize(
    "taps, channels, outputs, lengths, use_bias, true_taps",
    [
        (8, 1, 1, (1000,), False, 8),  # all rows, a kernel of the right length
        (8, 1, 1, (1000,), True, 12),  # too short: flagged
        (32, 1, 2, (10000,), False, 36),  # a row sample in chunks
        (6, 3, 2, (2000, 1500), True, 6),  # several sequences and channels
    ],
)
def test_f_test_is_two_explicit_least_squares_fits(rng, taps, channels, outputs, lengths, use_bias, true_taps):
    e = support.CHECK_EXTRA
    xs = [rng.standard_normal((n, channels)) for n in lengths]
    h = rng.standard_normal((true_taps, channels, outputs))
    shift = (true_taps - taps) // 2  # the true response reaches (true_taps - taps) / 2 taps past each end
    ys = []
    for x in xs:
        full = sum(
            np.stack([np.correlate(x[:, i], h[:, i, k], "valid") for k in range(outputs)], 1) for i in range(channels)
        )
        m = len(x) - taps + 1
        y = np.zeros((m, outputs))
        y[shift : shift + len(full)] = full
        ys.append(y + 0.1 * rng.standard_normal((m, outputs)) + (1.0 if use_bias else 0.0))
    mask = np.ones((taps, channels), dtype=bool)
    block = Block(xs, ys, taps, mask, np.arange(outputs))
    a, keep, y = support._check_rows(block, e)
    # the sampled rows are rows of the explicit extended design: row t of a sequence reads x[t .. t + taps + 2e - 1]
    explicit = [np.stack([x[t : t + taps + 2 * e].ravel() for t in range(len(x) - taps - 2 * e + 1)]) for x in xs]
    rows = np.concatenate(explicit)
    assert all(np.any(np.all(rows == r, axis=1)) for r in a[:: max(len(a) // 50, 1)])
    ones = np.ones((len(a), 1))
    full = np.hstack([a, ones]) if use_bias else a
    inner = np.hstack([a[:, keep], ones]) if use_bias else a[:, keep]
    rss_e = np.sum((y - full @ np.linalg.lstsq(full, y, rcond=None)[0]) ** 2, axis=0)
    rss_r = np.sum((y - inner @ np.linalg.lstsq(inner, y, rcond=None)[0]) ** 2, axis=0)
    q, dof = full.shape[1] - inner.shape[1], len(a) - full.shape[1]
    p = scipy.stats.f.sf(((rss_r - rss_e) / q) / (rss_e / dof), q, dof)
    got = support._f_test(block, e, use_bias, outputs)
    np.testing.assert_allclose(got["rss"], rss_e, rtol=1e-9)
    np.testing.assert_allclose(got["share"], (rss_r - rss_e) / rss_r, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(got["p"], p, rtol=1e-6, atol=1e-300)
    assert got["hit"].all() == (true_taps > taps)
