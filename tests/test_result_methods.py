"""KernelResult's everyday tools: step_response (against scipy.signal.lfilter and an explicit S C S^T), fit_percent and
score (by hand, and scikit-learn's r2_score), delay/onsets, summary, and short reprs without ``-0.``."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import scipy.signal
from scipy.stats import t as student_t

import kernel_recovery as kr
from kernel_recovery.model.result import StepResponse, _format_array


def _fir(kernel: np.ndarray, flip: bool, dilation: int) -> np.ndarray:
    """The FIR taps b[lag] of one (input, output) kernel column: convolution order, zeros between dilated taps."""
    k = kernel if flip else kernel[::-1]
    b = np.zeros((len(k) - 1) * dilation + 1)
    b[::dilation] = k
    return b


def _design(x: np.ndarray, k: int) -> np.ndarray:
    """The valid convolution design of a 1-D input, columns in convolution order: ``A[t, i] = x[t + k - 1 - i]``."""
    return np.array([[x[t + k - 1 - i] for i in range(k)] for t in range(len(x) - k + 1)])


# --- step_response ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("flip", [False, True])
@pytest.mark.parametrize("dilation", [1, 2])
def test_step_response_is_the_filters_response_to_a_step(flip, dilation):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((600, 2))
    w = rng.standard_normal((4, 2, 3))
    y = kr.conv1d(x, w, dilation=dilation, flip=flip) + 0.01 * rng.standard_normal((600 - 3 * dilation, 3))
    res = kr.recover_kernel(x, y, 4, dilation=dilation, flip=flip)
    step = res.step_response()
    assert isinstance(step, StepResponse)
    n = 3 * dilation + 1
    assert step.times.tolist() == list(range(n)) and step.response.shape == (n, 2, 3)
    for c in range(2):
        for o in range(3):
            ref = scipy.signal.lfilter(_fir(res.kernel[:, c, o], flip, dilation), [1.0], np.ones(n))
            np.testing.assert_allclose(step.response[:, c, o], ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(step.final_value, res.kernel.sum(axis=0), rtol=1e-12)
    longer = res.step_response(n + 5)  # continues at the sum of the taps
    np.testing.assert_allclose(longer.response[:n], step.response)
    np.testing.assert_allclose(longer.response[n:], np.broadcast_to(step.final_value, (5, 2, 3)))
    assert res.step_response(2).response.shape == (2, 2, 3)


def test_step_band_is_s_c_st_of_the_least_squares_covariance():
    """Against sigma^2 (A^T A)^-1 of an explicit design, propagated by an explicit step matrix."""
    rng = np.random.default_rng(1)
    k = 6
    x = rng.standard_normal(300)
    h = np.array([0.0, 0.0, 1.0, 0.7, 0.4, 0.1])
    y = kr.conv1d(x, h, flip=True) + 0.2 * rng.standard_normal(300 - k + 1)
    res = kr.recover_kernel(x, y, k, flip=True)
    a = _design(x, k)
    coef = np.linalg.lstsq(a, y, rcond=None)[0]
    np.testing.assert_allclose(res.kernel.ravel(), coef, rtol=1e-10)
    dof = len(y) - k
    c = np.sum((y - a @ coef) ** 2) / dof * np.linalg.inv(a.T @ a)
    s = np.tril(np.ones((k, k)))  # S[t, i] = 1 for lag i <= t
    se_ref = np.sqrt(np.diag(s @ c @ s.T))
    step = res.step_response(level=0.9)
    np.testing.assert_allclose(step.stderr.ravel(), se_ref, rtol=1e-8)
    q = student_t.ppf(0.95, dof)
    np.testing.assert_allclose(step.quantile, q)
    np.testing.assert_allclose(step.lower.ravel(), s @ coef - q * se_ref, rtol=1e-8)
    np.testing.assert_allclose(step.upper.ravel(), s @ coef + q * se_ref, rtol=1e-8)
    assert step.band_source == "covariance" and step.note == ""


def test_step_band_of_a_regularized_multichannel_fit_uses_each_pairs_block():
    """Posterior covariance of a TC-regularized fit, cross-correlation order (lags reversed), two inputs."""
    rng = np.random.default_rng(2)
    k = 8
    x = rng.standard_normal((150, 2))
    w = 0.7 ** np.arange(k)[::-1, None, None] * rng.standard_normal((k, 2, 2))
    y = kr.conv1d(x, w) + 0.1 * rng.standard_normal((150 - k + 1, 2))
    res = kr.recover_kernel(x, y, k, regularization="tc")
    assert res.covariance is not None
    step = res.step_response()
    lags = np.arange(k)[::-1]  # flip=False: kernel[i] is lag k - 1 - i
    s = (lags[None, :] <= np.arange(k)[:, None]).astype(float)
    for o in range(2):
        for c in range(2):
            idx = [i * 2 + c for i in range(k)]  # row-major (tap, channel)
            cov = res.covariance[o][np.ix_(idx, idx)]
            np.testing.assert_allclose(step.response[:, c, o], np.cumsum(res.kernel[::-1, c, o]), rtol=1e-12)
            np.testing.assert_allclose(step.stderr[:, c, o], np.sqrt(np.diag(s @ cov @ s.T)), rtol=1e-8)
    assert "regularization='tc'" in res.summary() and "degrees of freedom" not in res.summary()  # dof = inf


def test_step_response_of_a_lag_fit_starts_at_the_earliest_of_0_and_the_first_lag():
    rng = np.random.default_rng(3)
    x = rng.standard_normal(800)
    h = np.array([0.2, -0.1, 1.0, 0.5, 0.25])  # lags -2..2
    y = kr.conv1d(x, h, lags=(-2, 2), flip=True) + 0.01 * rng.standard_normal(800)
    with pytest.warns(kr.NonCausalWarning):
        res = kr.recover_kernel(x, y, lags=(-2, 2), flip=True)
    step = res.step_response()
    assert step.times.tolist() == [-2, -1, 0, 1, 2]
    np.testing.assert_allclose(step.response.ravel(), np.cumsum(res.kernel.ravel()), rtol=1e-12)
    late = kr.recover_kernel(x, kr.conv1d(x, h, lags=(3, 7), flip=True), lags=(3, 7), flip=True).step_response()
    assert late.times.tolist() == list(range(8))  # from the step at 0: zero before the first lag
    np.testing.assert_allclose(late.response.ravel(), np.r_[np.zeros(3), np.cumsum(h)], atol=1e-10)


def test_step_response_without_covariance_has_no_band_and_says_why():
    rng = np.random.default_rng(4)
    x = rng.standard_normal(500)
    res = kr.recover_kernel(x, kr.conv1d(x, [1.0, 0.5, 0.25]), 3, method="fft")
    step = res.step_response()
    assert res.covariance is None and step.stderr is None and step.lower is None and step.upper is None
    assert step.band_source == "none" and "no coefficient covariance" in step.note and "'fft'" in step.note
    np.testing.assert_allclose(step.response.ravel(), np.cumsum(res.kernel.ravel()[::-1]), rtol=1e-12)


def test_step_response_arguments_are_checked():
    x = np.random.default_rng(5).standard_normal(100)
    res = kr.recover_kernel(x, kr.conv1d(x, [1.0, 0.5]), 2)
    with pytest.raises(ValueError, match="`n` must be >= 1, got 0"):
        res.step_response(0)
    with pytest.raises(TypeError, match="`n`"):
        res.step_response(2.5)
    with pytest.raises(ValueError, match="`level`"):
        res.step_response(level=1.0)


# --- fit_percent and score -------------------------------------------------------------------------------------------


def test_fit_percent_and_score_on_fresh_data_by_hand():
    rng = np.random.default_rng(6)
    w = rng.standard_normal((5, 2, 3))
    x = rng.standard_normal((400, 2))
    res = kr.recover_kernel(x, kr.conv1d(x, w) + 0.3 * rng.standard_normal((396, 3)), 5, use_bias=True)
    x_new = rng.standard_normal((300, 2))
    y_new = kr.conv1d(x_new, w) + 0.5 * rng.standard_normal((296, 3)) + [1.0, -2.0, 0.0]
    y_hat = np.zeros((296, 3))
    for o in range(3):  # the prediction written out: a correlation per input channel, plus the bias
        for c in range(2):
            y_hat[:, o] += scipy.signal.correlate(x_new[:, c], res.kernel[:, c, o], mode="valid")
        y_hat[:, o] += res.bias[o]
    for o in range(3):
        e, d = y_new[:, o] - y_hat[:, o], y_new[:, o] - y_new[:, o].mean()
        fit = 100 * (1 - np.linalg.norm(e) / np.linalg.norm(d))
        np.testing.assert_allclose(res.fit_percent(x_new, y_new)[o], fit, rtol=1e-10)
        np.testing.assert_allclose(res.score(x_new, y_new)[o], 1 - e @ e / (d @ d), rtol=1e-10)
    assert res.fit_percent(x_new, y_new).shape == (3,)
    np.testing.assert_allclose(res.fit_percent(x_new, y_new), 100 * (1 - np.sqrt(1 - res.score(x_new, y_new))))
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    ref = sklearn_metrics.r2_score(y_new, y_hat, multioutput="raw_values")
    np.testing.assert_allclose(res.score(x_new, y_new), ref, rtol=1e-10)


def test_fit_percent_pools_a_batch_of_sequences_and_reads_the_layout():
    rng = np.random.default_rng(7)
    w = np.array([0.5, -1.0, 0.3])
    xs = [rng.standard_normal(n) for n in (50, 80)]
    ys = [kr.conv1d(x, w) + 0.2 * rng.standard_normal(len(x) - 2) for x in xs]
    res = kr.recover_kernel(xs, ys, 3)
    y_all = np.concatenate(ys)
    y_hat = np.concatenate([np.correlate(x, res.kernel.ravel(), mode="valid") for x in xs])
    fit = 100 * (1 - np.linalg.norm(y_all - y_hat) / np.linalg.norm(y_all - y_all.mean()))
    np.testing.assert_allclose(res.fit_percent(xs, ys), [fit], rtol=1e-10)
    # PyTorch's layout: (channels, length)
    x2 = rng.standard_normal((2, 200))
    k2 = rng.standard_normal((3, 2, 1))
    y2 = kr.conv1d(x2, k2, layout="ncw") + 0.1 * rng.standard_normal((1, 198))
    res2 = kr.recover_kernel(x2, y2, 3, layout="ncw")
    e = y2 - res2.predict(x2)
    np.testing.assert_allclose(res2.score(x2, y2), [1 - np.sum(e**2) / np.sum((y2 - y2.mean()) ** 2)], rtol=1e-10)


def test_fit_percent_limits_and_errors():
    x = np.random.default_rng(8).standard_normal(60)
    res = kr.recover_kernel(x, kr.conv1d(x, [1.0, -1.0]), 2)
    res = dataclasses.replace(res, kernel=np.array([1.0, -1.0]).reshape(2, 1, 1))  # exact, for an exact 0
    ones = np.ones(60)  # a constant input through a differencing kernel: a constant (zero) output
    assert res.fit_percent(ones, np.zeros(59)) == pytest.approx([100.0])
    assert res.score(ones, np.zeros(59)) == pytest.approx([1.0])
    assert res.fit_percent(ones, np.ones(59)).tolist() == [-np.inf]
    assert res.score(ones, np.ones(59)).tolist() == [-np.inf]
    with pytest.raises(ValueError, match=r"`y` must match predict\(x\).*\(59, 1\).*\(60, 1\)"):
        res.fit_percent(x, np.zeros(60))
    with pytest.raises(ValueError, match="`y` contains 1 NaN"):
        res.score(x, np.r_[np.nan, np.zeros(58)])


# --- delay and onsets ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("flip", [False, True])
def test_delay_is_the_first_significant_lag(flip):
    rng = np.random.default_rng(9)
    x = rng.standard_normal(3000)
    h = np.r_[np.zeros(7), 1.0, -0.6, 0.3, 0.1]  # in lag order
    kernel = h if flip else h[::-1]
    y = kr.conv1d(x, kernel, flip=flip) + 0.05 * rng.standard_normal(3000 - len(h) + 1)
    res = kr.recover_kernel(x, y, len(h), flip=flip)
    ordered = res.kernel.ravel() if flip else res.kernel.ravel()[::-1]
    se = res.stderr.ravel() if flip else res.stderr.ravel()[::-1]
    ref = int(np.flatnonzero(np.abs(ordered) > 5 * se)[0])
    assert ref == 7 and res.delay == 7 and res.onsets().tolist() == [[7.0]]
    # a looser threshold finds the same onset here; a strict one the first tap above 10 stderr
    strict = int(np.flatnonzero(np.abs(ordered) > 40 * se)[0])
    assert res.onsets(z=40.0).tolist() == [[float(strict)]]


def test_delay_of_a_lag_fit_is_a_physical_lag_and_without_stderr_uses_the_fraction_of_the_peak():
    rng = np.random.default_rng(10)
    x = rng.standard_normal(4000)
    h = np.r_[np.zeros(12), 0.05, 1.0, 0.5, 0.25, 0.125]  # lags 20..36; 0.05 is 26 dB below the peak
    y = kr.conv1d(x, h, lags=(20, 36), flip=True) + 0.01 * rng.standard_normal(4000)
    res = kr.recover_kernel(x, y, lags=(20, 36), flip=True, method="fft")
    assert res.stderr is None
    mag = np.abs(res.kernel.ravel())
    ref = 20 + int(np.flatnonzero(mag >= 0.1 * mag.max())[0])
    assert ref == 33 and res.delay == 33
    assert res.onsets(fraction=0.01).tolist() == [[32.0]]  # -40 dB reaches the small first tap
    with pytest.raises(ValueError, match="`fraction`"):
        res.onsets(fraction=0.0)
    with pytest.raises(ValueError, match="`z`"):
        res.onsets(z=-1.0)


def test_delay_is_the_earliest_onset_over_pairs_and_none_for_a_zero_kernel():
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2000, 2))
    w = np.zeros((6, 2, 2))
    w[2, 0, 0], w[4, 1, 0], w[5, 0, 1], w[3, 1, 1] = 1.0, 0.8, -0.9, 0.7
    y = kr.conv1d(x, w, flip=True) + 0.01 * rng.standard_normal((1995, 2))
    res = kr.recover_kernel(x, y, 6, flip=True)
    np.testing.assert_array_equal(res.onsets(), [[2.0, 5.0], [4.0, 3.0]])
    assert res.delay == 2
    zero = dataclasses.replace(res, kernel=np.zeros_like(res.kernel), stderr=None)
    assert np.isnan(zero.onsets()).all() and zero.delay is None


# --- summary, str and repr -------------------------------------------------------------------------------------------


def test_summary_is_one_screen_and_holds_the_numbers():
    rng = np.random.default_rng(12)
    x = rng.standard_normal((500, 2))
    y = kr.conv1d(x, rng.standard_normal((4, 2, 3))) + 0.1 * rng.standard_normal((497, 3))
    res = kr.recover_kernel(x, y, 4, use_bias=True)
    text = res.summary()
    lines = text.splitlines()
    assert len(lines) <= 15 and max(map(len, lines)) <= 120, text
    assert lines[0] == "KernelResult summary" and "lstsq" in lines[1]
    assert "497 per output, 9 unknowns, rank 9 (overdetermined)" in text
    assert f"residual rms  {res.residual_rms:.4g}" in text
    noise = res.diagnostics["noise_std"]
    assert f"noise std     {noise.min():.4g}..{noise.max():.4g} (488 degrees of freedom)" in text
    assert f"max {np.max(res.stderr):.4g}" in text and "use_bias=True" in text
    assert "checks        passed: " in text and "whiteness" in text and "flagged" not in text
    fft = kr.recover_kernel(x, y, 4, method="fft").summary()
    assert "stderr        not available" in fft and "max |h|" in fft


def test_summary_lists_a_flagged_check():
    rng = np.random.default_rng(13)
    x = rng.standard_normal(2000)
    y = kr.conv1d(x, 0.9 ** np.arange(40.0), flip=True) + 0.01 * rng.standard_normal(1961)
    with pytest.warns(kr.KernelSizeWarning):  # the response (40 lags) is longer than the kernel (10)
        res = kr.recover_kernel(x[30:], y, 10, flip=True)
    flagged = [name for name, line in res.diagnostics["checks"].items() if str(line).startswith("flagged")]
    assert flagged
    row = next(line for line in res.summary().splitlines() if line.strip().startswith("flagged"))
    assert all(name in row for name in flagged)


def test_printed_kernels_show_no_negative_zero():
    x = np.random.default_rng(14).standard_normal(50)
    res = kr.recover_kernel(x, kr.conv1d(x, [1.0, 0.0, -0.5]), 3)
    tiny = dataclasses.replace(res, kernel=np.array([1.0, -3e-17, -0.0, -0.5, -2e-7]).reshape(5, 1, 1))
    text = str(tiny)
    assert "-0." not in text.replace("-0.5", "") and "-0.5" in text, text
    assert tiny.kernel[1, 0, 0] == -3e-17 and np.signbit(tiny.kernel[2, 0, 0])  # the stored arrays unchanged
    assert _format_array(np.array([-0.0, -1e-9, -0.05, 0.25])) == "[ 0.    0.   -0.05  0.25]"
    long = str(dataclasses.replace(res, kernel=np.ones((4000, 1, 1))))
    assert "..." in long and len(long) < 400


def test_reprs_are_short():
    rng = np.random.default_rng(15)
    x = rng.standard_normal(3000)
    h = np.r_[np.zeros(20), 0.8 ** np.arange(200.0)]
    y = kr.conv1d(x, h, lags=(0, 219), flip=True) + 0.01 * rng.standard_normal(3000)
    res = kr.recover_kernel(x, y, lags=(0, 250), flip=True)
    choice = kr.select_lags(x, y)
    track = kr.track_kernel(x, y[-2750:], 251, window=1000, step=100, flip=True)
    texts = {
        "KernelResult": repr(res),
        "FrequencyResponse": repr(res.frequency_response()),
        "StepResponse": repr(res.step_response()),
        "LagSelection": repr(choice),
        "KernelTrack": repr(track),
    }
    for name, text in texts.items():
        assert text.startswith(name + "(") and len(text) < 250 and "array" not in text and "\n" not in text, text
    assert "n_freqs=" in texts["FrequencyResponse"] and "band=covariance (0.95)" in texts["FrequencyResponse"]
    assert f"first={choice.first}, last={choice.last}" in texts["LagSelection"]
    assert f"n_times={len(track)}" in texts["KernelTrack"] and "kernel_shape=(251, 1, 1)" in texts["KernelTrack"]
    assert "times=0..250" in texts["StepResponse"]
