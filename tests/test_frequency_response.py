"""KernelResult.frequency_response: the response against scipy.signal.freqz, and the coverage of its bands."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
import scipy.signal
from scipy.stats import chi2

import kernel_recovery as kr
import kernel_recovery.exceptions
from kernel_recovery.diagnostics.frequency import FrequencyResponse


def _fir(kernel: np.ndarray, flip: bool, dilation: int) -> np.ndarray:
    """The FIR taps b[lag] of one (input, output) kernel column: convolution order, zeros between dilated taps."""
    k = kernel if flip else kernel[::-1]
    b = np.zeros((len(k) - 1) * dilation + 1)
    b[::dilation] = k
    return b


@pytest.mark.parametrize("flip", [False, True])
@pytest.mark.parametrize("dilation", [1, 3])
def test_response_matches_freqz(flip, dilation):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((400, 2))
    w = rng.standard_normal((5, 2, 3))
    y = kr.conv1d(x, w, dilation=dilation, flip=flip) + 0.01 * rng.standard_normal((400 - 4 * dilation, 3))
    res = kr.recover_kernel(x, y, 5, dilation=dilation, flip=flip)
    fr = res.frequency_response(fs=48_000.0)
    assert isinstance(fr, FrequencyResponse)
    assert fr.freqs.shape == (512,) and fr.freqs[0] == 0.0 and fr.freqs[-1] == 24_000.0
    assert fr.response.shape == (512, 2, 3)
    for c in range(2):
        for o in range(3):
            _, h = scipy.signal.freqz(_fir(res.kernel[:, c, o], flip, dilation), worN=fr.freqs, fs=48_000.0)
            np.testing.assert_allclose(fr.response[:, c, o], h, rtol=0, atol=1e-12)
    np.testing.assert_allclose(fr.magnitude, np.abs(fr.response))
    np.testing.assert_allclose(fr.db, 20 * np.log10(np.abs(fr.response)))
    assert np.all(np.abs(np.diff(fr.phase, axis=0)) < np.pi)  # unwrapped


def test_groups_and_explicit_freqs():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((300, 4))
    w = rng.standard_normal((3, 2, 2))
    y = kr.conv1d(x, w, groups=2)
    res = kr.recover_kernel(x, y, 3, groups=2)
    f = np.array([0.0, 0.1, 0.37, 0.5])
    fr = res.frequency_response(freqs=f)
    assert fr.response.shape == (4, 2, 2)
    for c in range(2):
        for o in range(2):
            _, h = scipy.signal.freqz(w[::-1, c, o], worN=f, fs=1.0)
            np.testing.assert_allclose(fr.response[:, c, o], h, atol=1e-10)


def test_lags_range_includes_negative_lags():
    """With lags=(first, last) the response is sum_l h[l] exp(-2j pi f l), l from first: freqz of the taps, advanced."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal(600)
    h = np.array([0.3, 1.0, -0.4, 0.2])  # lags -1 .. 2
    y = np.convolve(x, h)[1 : 1 + len(x)]  # y[t] = sum_l h[l + 1] x[t - l], on x's time axis
    with warnings.catch_warnings():  # the response at lag -1 is real: the non-causality check says so, rightly
        warnings.simplefilter("ignore", UserWarning)
        res = kr.recover_kernel(x, y, lags=(-1, 2))
    np.testing.assert_array_equal(res.config.tap_lags(), [2, 1, 0, -1])
    f = np.linspace(0, 0.5, 33)
    fr = res.frequency_response(freqs=f)
    _, ref = scipy.signal.freqz(h, worN=f, fs=1.0)
    np.testing.assert_allclose(fr.response[:, 0, 0], ref * np.exp(2j * np.pi * f), atol=1e-9)


def _white_trials(trials: int, n: int, sigma: float, kernel: np.ndarray, f: np.ndarray, seed: int = 3):
    rng = np.random.default_rng(seed)
    _, true_h = scipy.signal.freqz(kernel[::-1], worN=f, fs=1.0)
    change = getattr(kr.exceptions, "ChangeWarning", None)
    for _ in range(trials):
        x = rng.standard_normal(n)
        y = kr.conv1d(x, kernel) + sigma * rng.standard_normal(n - len(kernel) + 1)
        with warnings.catch_warnings():
            if change is not None:  # another check's false alarms (a rate per fit) are not this test's subject
                warnings.simplefilter("ignore", change)
            res = kr.recover_kernel(x, y, len(kernel))
        yield res.frequency_response(freqs=f), true_h


def test_band_coverage_white_noise():
    """Monte Carlo: the 95 % pointwise bands of |H| and of the phase, and the complex regions, cover the truth.

    The kernel's |H| stays within 0.64 .. 1.49, about 14 standard errors from 0, where the delta method holds.
    """
    kernel = np.array([1.0, -0.4, 0.2, 0.1, -0.05])
    f = np.linspace(0.0, 0.5, 40)
    mag = phase = region = 0
    total = 0
    for fr, true_h in _white_trials(400, 300, 0.5, kernel, f):
        assert fr.band_source in ("covariance", "stderr")
        h = true_h[:, None, None]
        mag += int(np.sum((fr.lower <= np.abs(h)) & (np.abs(h) <= fr.upper)))
        dphi = np.angle(h / fr.response)  # the true phase's distance from the estimate, in (-pi, pi]
        phase += int(np.sum(np.abs(dphi) <= fr.quantile * fr.phase_stderr))
        region += int(np.sum(fr.contains(np.broadcast_to(h, fr.response.shape))))
        total += h.size
    coverage = np.array([mag, phase, region]) / total
    print("coverage (magnitude, phase, complex region):", coverage)
    assert np.all((0.93 <= coverage) & (coverage <= 0.97)), coverage


def _with_covariance(res: kr.KernelResult, covariance: list[np.ndarray]) -> kr.KernelResult:
    if any(f.name == "covariance" for f in dataclasses.fields(res)):
        return dataclasses.replace(res, covariance=covariance)
    object.__setattr__(res, "covariance", covariance)  # before the field exists: set it on this instance only
    return res


@pytest.mark.parametrize("flip", [False, True])
def test_covariance_propagation_matches_explicit(flip):
    """With a full covariance (a coloured input: correlated taps), var(Re H), var(Im H), cov = a^T C a exactly.

    ``covariance[o]`` is over ``(kernel[:, :, o].ravel(), bias[o])``: the explicit design's columns in that order.
    """
    rng = np.random.default_rng(4)
    n, k_size = 400, 4
    e = rng.standard_normal(n + 1)
    x = np.stack([e[1:] + 0.9 * e[:-1], rng.standard_normal(n)], axis=1)  # channel 0 coloured
    w = rng.standard_normal((k_size, 2, 1))
    y = kr.conv1d(x, w, flip=flip) + 0.1 * rng.standard_normal((n - k_size + 1, 1))
    res = kr.recover_kernel(x, y, k_size, flip=flip, use_bias=True)
    # the explicit design over the user's kernel entries (row-major (tap, channel)), then the bias
    design = np.stack(
        [kr.conv1d(x, np.eye(2 * k_size)[j].reshape(k_size, 2, 1), flip=flip)[:, 0] for j in range(2 * k_size)], axis=1
    )
    design = np.concatenate([design, np.ones((len(design), 1))], axis=1)
    coef, rss, *_ = np.linalg.lstsq(design, y[:, 0], rcond=None)
    cov_user = rss[0] / (len(design) - design.shape[1]) * np.linalg.inv(design.T @ design)
    f = np.linspace(0, 0.5, 17)
    fr = _with_covariance(res, [cov_user]).frequency_response(freqs=f)
    assert fr.band_source == "covariance"
    lags = res.config.tap_lags()
    for c in range(2):
        idx = np.arange(k_size) * 2 + c  # the entries of input channel c
        a = np.exp(-2j * np.pi * np.outer(f, lags))  # (F, K)
        sub = cov_user[np.ix_(idx, idx)]
        ref = np.empty((len(f), 2, 2))
        for i, u in enumerate((a.real, a.imag)):
            for j, v in enumerate((a.real, a.imag)):
                ref[:, i, j] = np.einsum("fk,kl,fl->f", u, sub, v)
        np.testing.assert_allclose(fr.covariance[:, c, 0], ref, rtol=1e-10, atol=1e-16)


def test_result_covariance_used_when_present():
    """Results of plain least squares carry `covariance`: the bands use it, and it agrees with the explicit one."""
    rng = np.random.default_rng(5)
    e = rng.standard_normal(301)
    x = e[1:] + 0.9 * e[:-1]  # coloured: the taps' estimates are correlated
    y = kr.conv1d(x, [1.0, -0.5, 0.2]) + 0.1 * rng.standard_normal(298)
    res = kr.recover_kernel(x, y, 3)
    if getattr(res, "covariance", None) is None:
        pytest.skip("results do not carry `covariance`: the bands use the standard errors")
    f = np.linspace(0, 0.5, 9)
    fr = res.frequency_response(freqs=f)
    assert fr.band_source == "covariance"
    design = np.stack([x[2 - j : len(x) - j] for j in range(3)], axis=1)  # y[t] = sum_j k[j] x[t + j]: columns
    design = design[:, ::-1]
    cov = res.diagnostics["noise_std"][0] ** 2 * np.linalg.inv(design.T @ design)
    a = np.exp(-2j * np.pi * np.outer(f, res.config.tap_lags()))
    var_re = np.einsum("fk,kl,fl->f", a.real, cov, a.real)
    np.testing.assert_allclose(fr.covariance[:, 0, 0, 0, 0], var_re, rtol=1e-8)
    diagonal = dataclasses.replace(res, covariance=None).frequency_response(freqs=f)
    assert diagonal.band_source == "stderr"
    assert not np.allclose(diagonal.covariance, fr.covariance, rtol=0.05)  # correlated taps: the diagonal is off


def test_no_stderr_means_no_band():
    rng = np.random.default_rng(6)
    x = rng.standard_normal(300)
    res = kr.recover_kernel(x, kr.conv1d(x, [1.0, 0.5]) + 0.1 * rng.standard_normal(299), 2, method="fft")
    fr = res.frequency_response(8)
    assert fr.band_source == "none" and fr.covariance is None
    assert fr.lower is None and fr.upper is None and fr.magnitude_stderr is None and fr.phase_stderr is None
    with pytest.raises(ValueError, match="no covariance"):
        fr.contains(fr.response)


def test_zero_response_band():
    """At a zero of the response the magnitude band starts at 0 and the phase is undetermined."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal(500)
    y = kr.conv1d(x, [0.5, 0.5]) + 0.05 * rng.standard_normal(499)
    res = kr.recover_kernel(x, y, 2)
    fr = dataclasses.replace(res, kernel=np.array([0.5, 0.5]).reshape(2, 1, 1)).frequency_response(freqs=[0.5])
    assert abs(fr.response[0, 0, 0]) < 1e-15
    # Re H(1/2) = k0 - k1, Im H(1/2) = 0: the variance is all on one axis
    cov = res.covariance[0][:2, :2] if res.covariance is not None else np.diag(res.stderr.ravel() ** 2)
    widest = np.sqrt(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    assert fr.lower[0, 0, 0] == 0.0
    np.testing.assert_allclose(fr.upper[0, 0, 0], fr.quantile * widest, rtol=1e-6)
    assert fr.magnitude_stderr[0, 0, 0] > 0


def test_chi2_radius():
    fr = FrequencyResponse(
        np.zeros(1), np.zeros((1, 1, 1), complex), np.eye(2)[None, None, None] * 1.0, 0.9, 1.0, 1.0, "covariance"
    )
    r = np.sqrt(chi2.ppf(0.9, 2))
    assert fr.contains(np.array([[[0.999 * r]]]))[0, 0, 0]
    assert not fr.contains(np.array([[[1.001j * r]]]))[0, 0, 0]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"level": 1.5}, "`level`"),
        ({"n": 0}, "`n`"),
        ({"n": 4, "freqs": [0.1]}, "`n`.*`freqs`"),
        ({"freqs": [[0.1]]}, "`freqs`"),
        ({"freqs": [np.nan]}, "`freqs`"),
        ({"fs": 0.0}, "`fs`"),
    ],
)
def test_bad_arguments(kwargs, match):
    res = kr.recover_kernel([0.0, 3.0, 4.0, 5.0, 1.0], [6.0, 11.0, 14.0, 7.0], 2)
    with pytest.raises(ValueError, match=match):
        res.frequency_response(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "match"), [({"level": "0.9"}, "`level`"), ({"n": 4.0}, "`n`"), ({"fs": True}, "`fs`")]
)
def test_arguments_of_the_wrong_kind(kwargs, match):
    res = kr.recover_kernel([0.0, 3.0, 4.0, 5.0, 1.0], [6.0, 11.0, 14.0, 7.0], 2)
    with pytest.raises(TypeError, match=match):
        res.frequency_response(**kwargs)
    if "level" in kwargs:
        with pytest.raises(TypeError, match=match):
            res.confidence_interval(**kwargs)


def test_bode_plot():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from kernel_recovery import plotting

    rng = np.random.default_rng(8)
    x = rng.standard_normal((400, 2))
    w = rng.standard_normal((3, 2, 1))
    res = kr.recover_kernel(x, kr.conv1d(x, w) + 0.1 * rng.standard_normal((398, 1)), 3)
    fig = res.plot(kind="bode", true_kernel=w)
    mag, ph = fig.axes
    assert mag.get_ylabel() == "magnitude (dB)" and ph.get_ylabel() == "phase (degrees)"
    assert len(mag.collections) == 2  # one band per channel pair
    assert len(mag.get_lines()) == 4  # estimate and truth per channel pair
    est = mag.get_lines()[0].get_ydata()
    np.testing.assert_allclose(est, res.frequency_response().db[:, 0, 0])
    plt.close(fig)
    fig = plotting.plot_bode(res.frequency_response(64))
    plt.close(fig)
    fig = res.plot()  # the default figure is unchanged
    assert len(fig.axes) > 2
    plt.close(fig)
    with pytest.raises(ValueError, match="`kind`"):
        res.plot(kind="nyquist")
    with pytest.raises(ValueError, match="`x` and `y`"):
        res.plot(x, x, kind="bode")
