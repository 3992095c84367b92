"""method="fft"'s own outputs: H1, H2 and the coherence of diagnostics["spectra"], against scipy.signal."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal

import kernel_recovery as kr
from kernel_recovery.solvers import welch


def _welch(a, b, nperseg):
    """scipy's cross spectral density E[conj(A) B] with the estimator's settings (its defaults, spelled out)."""
    return scipy.signal.csd(a, b, fs=1.0, window="hann", nperseg=nperseg, noverlap=nperseg // 2, detrend="constant")


def test_siso_matches_scipy():
    rng = np.random.default_rng(0)
    k = 6
    x = rng.standard_normal(5000)
    y = kr.conv1d(x, rng.standard_normal(k)) + 0.5 * rng.standard_normal(5000 - k + 1)
    res = kr.recover_kernel(x, y, k, method="fft")
    sp = res.diagnostics["spectra"]
    nperseg = sp["nperseg"]
    assert nperseg == 256 and sp["skipped"] is None
    xa = x[k - 1 :]  # x aligned with the output: y[t] depends on xa[t - lag], lag = 0 .. k-1
    f, pxy = _welch(xa, y, nperseg)
    _, pxx = scipy.signal.welch(xa, window="hann", nperseg=nperseg)
    _, pyy = scipy.signal.welch(y, window="hann", nperseg=nperseg)
    _, coh = scipy.signal.coherence(xa, y, window="hann", nperseg=nperseg)
    np.testing.assert_allclose(sp["freqs"], f, atol=1e-15)
    np.testing.assert_allclose(sp["h1"][:, 0, 0], pxy / pxx, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(sp["h2"][:, 0, 0], pyy / np.conj(pxy), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(sp["coherence"][:, 0], coh, rtol=1e-10, atol=1e-12)
    assert sp["segments"] == (len(xa) - 128) // 128


def test_mimo_matches_scipy():
    """Two inputs: H1 = S_xx^-1 S_xy per frequency, the multiple coherence S_yx S_xx^-1 S_xy / S_yy; no H2."""
    rng = np.random.default_rng(1)
    k, n = 4, 6000
    x = rng.standard_normal((n, 2))
    x[:, 1] += 0.5 * x[:, 0]  # correlated inputs
    y = kr.conv1d(x, rng.standard_normal((k, 2, 3))) + 0.3 * rng.standard_normal((n - k + 1, 3))
    sp = kr.recover_kernel(x, y, k, method="fft").diagnostics["spectra"]
    nperseg = sp["nperseg"]
    xa = x[k - 1 :]
    n_f = nperseg // 2 + 1
    sxx = np.empty((n_f, 2, 2), dtype=complex)
    sxy = np.empty((n_f, 2, 3), dtype=complex)
    for c in range(2):
        for d in range(2):
            sxx[:, c, d] = _welch(xa[:, c], xa[:, d], nperseg)[1]
        for o in range(3):
            sxy[:, c, o] = _welch(xa[:, c], y[:, o], nperseg)[1]
    syy = np.stack([scipy.signal.welch(y[:, o], window="hann", nperseg=nperseg)[1] for o in range(3)], axis=1)
    h1 = np.linalg.solve(sxx, sxy)
    gamma2 = np.einsum("fco,fco->fo", sxy.conj(), h1).real / syy
    np.testing.assert_allclose(sp["h1"], h1, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(sp["coherence"], gamma2, rtol=1e-9, atol=1e-11)
    assert sp["h2"] is None


def test_batch_pools_segments():
    """Several sequences: the periodograms of every segment of every sequence are averaged."""
    rng = np.random.default_rng(2)
    xs = [rng.standard_normal(n) for n in (3000, 2200, 4100)]
    w = np.array([1.0, 0.5, -0.25])
    ys = [kr.conv1d(x, w) + 0.2 * rng.standard_normal(len(x) - 2) for x in xs]
    sp = kr.recover_kernel(xs, ys, 3, method="fft").diagnostics["spectra"]
    nperseg = sp["nperseg"]
    tot_xy = tot_xx = tot_yy = 0.0
    count = 0
    for x, y in zip(xs, ys):
        segs = (len(y) - nperseg // 2) // (nperseg // 2)
        xa = x[2:]
        tot_xy = tot_xy + segs * _welch(xa, y, nperseg)[1]
        tot_xx = tot_xx + segs * scipy.signal.welch(xa, window="hann", nperseg=nperseg)[1]
        tot_yy = tot_yy + segs * scipy.signal.welch(y, window="hann", nperseg=nperseg)[1]
        count += segs
    assert sp["segments"] == count
    np.testing.assert_allclose(sp["h1"][:, 0, 0], tot_xy / tot_xx, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(sp["coherence"][:, 0], np.abs(tot_xy) ** 2 / (tot_xx * tot_yy), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("flip", [False, True])
def test_h1_estimates_the_frequency_response(flip):
    """Noiseless long data: H1 is the kernel's response (to the Welch window's leakage), whatever the kernel order."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal(40000)
    w = np.array([1.0, -0.6, 0.3, 0.1])
    res = kr.recover_kernel(x, kr.conv1d(x, w, flip=flip), 4, method="fft", flip=flip)
    sp = res.diagnostics["spectra"]
    fr = res.frequency_response(freqs=sp["freqs"])
    # (the DC bin is biased: each segment's mean is removed, as scipy.signal.csd does by default)
    np.testing.assert_allclose(sp["h1"][1:], fr.response[1:], atol=0.02)
    np.testing.assert_allclose(sp["h2"][1:], fr.response[1:], atol=0.02)
    assert np.min(sp["coherence"][1:]) > 0.99
    assert sp["message"] is None and sp["unexplained_power"][0] < 0.01


def test_h1_in_physical_lags_with_a_lag_range():
    """lags=(first, last) with first < 0: H1 is given in the physical lags of config.tap_lags(), as the response."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal(40000)
    h = np.array([0.4, 1.0, -0.5])  # lags -1, 0, 1
    y = np.convolve(x, h)[1 : 1 + len(x)]
    import warnings

    with warnings.catch_warnings():  # the response at lag -1 is real: the non-causality check says so, rightly
        warnings.simplefilter("ignore", UserWarning)
        res = kr.recover_kernel(x, y, lags=(-1, 1), method="fft")
    sp = res.diagnostics["spectra"]
    np.testing.assert_allclose(sp["h1"][1:], res.frequency_response(freqs=sp["freqs"]).response[1:], atol=0.02)


def test_low_coherence_is_reported_in_words_and_the_nonlinearity_warned():
    """A nonlinearity (no linear filter explains y) leaves the coherence near 0: said in the spectra's words; the
    RESET test of the post-fit checks warns (issue 26: a quadratic nonlinearity was warned in 2 of 5 draws)."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal(8000)
    lin = kr.conv1d(x, [1.0, 0.5, 0.25])
    y = lin + 0.8 * (lin**2 - np.mean(lin**2))  # an even nonlinearity: uncorrelated with x
    with pytest.warns(kr.ModelMisfitWarning, match="RESET"):
        res = kr.recover_kernel(x, y, 3, method="fft")
    sp = res.diagnostics["spectra"]
    assert 0.4 < sp["unexplained_power"][0] < 0.9  # the quadratic part: about 60 % of y's power
    assert "nonlinearity" in sp["message"] and "noise" in sp["message"]


def test_short_records_skip_the_spectra():
    res = kr.recover_kernel([0.0, 3.0, 4.0, 5.0, 1.0], [6.0, 11.0, 14.0, 7.0], 2, method="fft")
    sp = res.diagnostics["spectra"]
    assert sp["h1"] is None and sp["skipped"].startswith("the sequences are too short")
    res.to_json()  # still strict JSON


def test_segment_length_follows_the_kernel():
    assert welch.welch_segment_length(3, 100_000) == 256
    assert welch.welch_segment_length(100, 100_000) == 1024  # 8 taps per segment, a power of two
    assert welch.welch_segment_length(3, 600) == 128  # at least 8 half-overlapping segments
    assert welch.welch_segment_length(40, 100) is None  # shorter than two kernels: no estimate
