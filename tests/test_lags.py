"""Lag ranges (``lags=(first, last)``): non-causal and delayed responses on the input's time axis.

References: the measurement model ``y[t] = sum_l h[l] x[t - l]`` written out with shifted copies of ``x``
(zero outside the record), ``scipy.signal.lfilter`` for causal delayed responses, and ``numpy.linalg.lstsq``
on the explicit shifted-copies matrix.
"""

import warnings

import numpy as np
import pytest
import scipy.signal
from references import METHODS

import kernel_recovery as kr
from kernel_recovery.model.config import ConvConfig
from kernel_recovery.streaming.accumulator import NormalEquations


def shifted(x, lag):
    """``x[t - lag]`` on x's time axis, zero outside the record (x: (length, channels))."""
    out = np.zeros_like(x)
    n = len(x)
    if lag >= 0:
        out[lag:] = x[: n - lag]
    else:
        out[: n + lag] = x[-lag:]
    return out


def measure(x, h, first):
    """``y[t, o] = sum_i sum_c h[i, c, o] x[t - (first + i), c]``."""
    return sum(shifted(x, first + i) @ h[i] for i in range(len(h)))


RANGES = [(-3, 5), (7, 12), (-9, -2), (0, 4), (-6, 0)]


@pytest.mark.parametrize("first, last", RANGES)
@pytest.mark.parametrize("method", list(METHODS))
def test_noiseless_response_is_recovered_by_every_method(first, last, method):
    rng = np.random.default_rng(abs(first) + 20 * abs(last))
    x = rng.standard_normal((400, 2))
    h = rng.standard_normal((last - first + 1, 2, 3))
    y = measure(x, h, first)
    options = {"max_iter": 20000, "tol": 1e-12} if method == "adam" else {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = kr.recover_kernel(x, y, lags=(first, last), flip=True, method=method, **options)
    # the exact fit has tiny standard errors: its response at negative lags is significant (lstsq gives them)
    warned = [w for w in caught if issubclass(w.category, kr.NonCausalWarning)]
    assert len(warned) == int(method == "lstsq" and first < 0) and len(caught) == len(warned)
    tol = 1e-4 if method == "adam" else 1e-10
    np.testing.assert_allclose(res.kernel, h, atol=tol)
    assert res.lags.tolist() == list(range(first, last + 1))
    np.testing.assert_allclose(res.predict(x), y, atol=100 * tol)


def test_flip_orders_the_same_lags_both_ways():
    rng = np.random.default_rng(1)
    x = rng.standard_normal(300)
    h = rng.standard_normal(7)
    y = measure(x[:, None], h[:, None, None], -2)[:, 0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", kr.NonCausalWarning)
        conv = kr.recover_kernel(x, y, lags=(-2, 4), flip=True)
        corr = kr.recover_kernel(x, y, lags=(-2, 4))
    np.testing.assert_allclose(conv.kernel[:, 0, 0], h, atol=1e-12)
    np.testing.assert_allclose(corr.kernel[::-1], conv.kernel, atol=1e-12)
    assert corr.lags.tolist() == list(range(4, -3, -1))


def test_delayed_causal_response_matches_lfilter_and_explicit_lstsq():
    rng = np.random.default_rng(2)
    x = rng.standard_normal(2000)
    g = rng.standard_normal(20) * np.exp(-np.arange(20) / 5)
    delay = 37
    y = scipy.signal.lfilter(np.concatenate([np.zeros(delay), g]), [1.0], x) + 0.01 * rng.standard_normal(2000)
    res = kr.recover_kernel(x, y, lags=(delay - 3, delay + 24), flip=True)
    a = np.stack([shifted(x[:, None], lag)[:, 0] for lag in range(delay - 3, delay + 25)], axis=1)
    ref = np.linalg.lstsq(a, y, rcond=None)[0]
    np.testing.assert_allclose(res.kernel[:, 0, 0], ref, atol=1e-10)
    np.testing.assert_allclose(res.kernel[3:23, 0, 0], g, atol=0.01)


def test_conv1d_with_lags_is_the_measurement_model():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((50, 2))
    h = rng.standard_normal((6, 2, 1))
    np.testing.assert_allclose(kr.conv1d(x, h, lags=(-2, 3), flip=True), measure(x, h, -2), atol=1e-12)


@pytest.mark.parametrize("first, last", RANGES)
def test_streaming_and_out_of_core_agree_with_in_memory(first, last):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((900, 2))
    h = rng.standard_normal((last - first + 1, 2, 2))
    y = measure(x, h, first) + 0.1 * rng.standard_normal((900, 2))
    warnings.simplefilter("ignore", kr.NonCausalWarning)  # (pytest restores the filters after each test)
    ref = kr.recover_kernel(x, y, lags=(first, last), flip=True)
    acc = NormalEquations(lags=(first, last), flip=True)
    for a in range(0, 900, 97):
        acc.update(x[a : a + 97], y[a : a + 97])
    acc.end_sequence()
    np.testing.assert_allclose(acc.solve().kernel, ref.kernel, atol=1e-10)
    pairs = ((x[a : a + 131], y[a : a + 131]) for a in range(0, 900, 131))
    streamed = kr.recover_kernel(pairs, None, lags=(first, last), flip=True)
    np.testing.assert_allclose(streamed.kernel, ref.kernel, atol=1e-10)
    assert streamed.config.lags == (first, last)
    rep = kr.analyze(x, y, lags=(first, last))
    assert rep.status == "overdetermined" and rep.unknowns.tolist() == [2 * (last - first + 1)] * 2


def test_y_must_share_the_time_axis():
    x = np.zeros(100)
    with pytest.raises(ValueError, match="lags=\\(-2, 3\\)"):
        kr.recover_kernel(x, np.zeros(95), lags=(-2, 3))


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        ({"lags": (3, 1)}, ValueError, "first <= last"),
        ({"lags": (1.5, 3)}, TypeError, "pair of integers"),
        ({"lags": 3}, TypeError, "pair of integers"),
        ({"lags": (0, 3), "kernel_size": 5}, ValueError, "last - first \\+ 1 = 4"),
        ({"lags": (0, 3), "padding": "same"}, ValueError, "cannot be combined with `lags`"),
        ({"lags": (0, 3), "stride": 2}, ValueError, "stride=1 and dilation=1"),
        ({"lags": (0, 3), "dilation": 2}, ValueError, "stride=1 and dilation=1"),
    ],
)
def test_bad_lags_are_named(kwargs, exc, match):
    x = np.zeros(50)
    k = kwargs.pop("kernel_size", None)
    with pytest.raises(exc, match=match):
        kr.recover_kernel(x, x, k, **kwargs)
    with pytest.raises(exc, match=match):
        NormalEquations(k, **kwargs)


def test_tap_lags_follow_flip_and_dilation():
    assert ConvConfig.create(4, 1, 1, flip=True, dilation=2).tap_lags().tolist() == [0, 2, 4, 6]
    assert ConvConfig.create(4, 1, 1, dilation=2).tap_lags().tolist() == [6, 4, 2, 0]
    assert ConvConfig.create(None, 1, 1, lags=(-1, 2), flip=True).tap_lags().tolist() == [-1, 0, 1, 2]


def test_misaligned_lags_are_named_in_the_message():
    rng = np.random.default_rng(5)
    x = rng.standard_normal(3000)
    h = rng.standard_normal(9)
    y = measure(x[:, None], h[:, None, None], 3)[:, 0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", kr.KernelSizeWarning)
        res = kr.recover_kernel(x, y, lags=(1, 9), flip=True)
    assert res.diagnostics["misconfiguration"]["suggestions"][0]["setting"] == {"lags": (3, 11)}


def test_feedback_like_data_warn_of_negative_lags():
    """A closed loop: the controller feeds the (coloured) noise of y back into x, so y 'leads' x."""
    rng = np.random.default_rng(6)
    n = 20000
    r = rng.standard_normal(n)  # the reference the loop is driven by
    e = scipy.signal.lfilter([1.0], [1.0, -0.8], rng.standard_normal(n))
    g = np.array([0.0, 0.8, 0.4, 0.2])  # the plant: y[t] = sum g[l] x[t - l] + e[t]
    x, y = np.zeros(n), np.zeros(n)
    for t in range(n):
        y[t] = sum(g[lag] * x[t - lag] for lag in range(1, 4) if t - lag >= 0) + e[t]
        x[t] = r[t] - 0.5 * y[t]  # the controller
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        kr.recover_kernel(x, y, lags=(-5, 10), flip=True)
    messages = [str(w.message) for w in caught if issubclass(w.category, kr.NonCausalWarning)]
    assert len(messages) == 1 and "feedback from y to x" in messages[0]
    # the same plant driven open loop, white noise: no warning
    x_open = rng.standard_normal(n)
    y_open = measure(x_open[:, None], g[:, None, None], 0)[:, 0] + 0.1 * rng.standard_normal(n)
    res = kr.recover_kernel(x_open, y_open, lags=(-5, 10), flip=True)
    assert res.diagnostics["checks"]["negative_lags"] == "checked"


def test_truncated_response_is_never_a_silent_success():
    """The room-response case of the issue, scaled down: a long decaying tail fitted with a short kernel."""
    rng = np.random.default_rng(7)
    n, length = 40000, 1500
    h = rng.standard_normal(length) * np.exp(-np.arange(length) / 300)
    x = rng.standard_normal(n)
    y = scipy.signal.lfilter(h, [1.0], x)
    y += 0.01 * np.std(y) * rng.standard_normal(n)
    for k in (128, 700):
        with pytest.warns(kr.KernelSizeWarning, match=f"after tap {k - 1}") as caught:
            kr.recover_kernel(x, y, k, padding="causal", flip=True)
        assert "Use kernel_size=" in str(caught[0].message)
    with pytest.warns(kr.KernelSizeWarning, match="lags=\\(0, 1[0-9]{3}\\)"):
        kr.recover_kernel(x, y, lags=(0, 300), flip=True)
    res = kr.recover_kernel(x, y, lags=(0, length - 1), flip=True)
    assert res.diagnostics["checks"]["lag_scan"] == "checked"


@pytest.mark.parametrize("ar_x, ar_e", [(0.0, 0.0), (0.95, 0.0), (0.0, 0.9), (0.95, 0.9)])
def test_lag_scan_false_alarms_under_coloured_input_and_noise(ar_x, ar_e):
    """Correct kernels with white or coloured input and noise: the scan stays silent (rate << 1 in 25 fits)."""
    rng = np.random.default_rng(8)
    flagged = 0
    for _ in range(25):
        x = scipy.signal.lfilter([1.0], [1.0, -ar_x], rng.standard_normal(8000))
        e = scipy.signal.lfilter([1.0], [1.0, -ar_e], rng.standard_normal(8000))
        clean = scipy.signal.lfilter(rng.standard_normal(16), [1.0], x)
        res = kr.recover_kernel(x, clean + 0.3 * np.std(clean) * e, 16, padding="causal", flip=True)
        flagged += res.diagnostics["checks"]["lag_scan"] == "flagged"
    assert flagged == 0


def test_auto_lags_find_delay_and_length():
    rng = np.random.default_rng(9)
    n, delay = 20000, 300
    x = scipy.signal.lfilter([1.0], [1.0, -0.8], rng.standard_normal(n))  # coloured excitation
    h = rng.standard_normal(40) * np.exp(-np.arange(40) / 10)
    y = scipy.signal.lfilter(np.r_[np.zeros(delay), h], [1.0], x) + 0.01 * rng.standard_normal(n)
    res = kr.recover_kernel(x, y, lags="auto", flip=True)
    first, last = res.config.lags
    assert abs(first - delay) <= 3 and abs(last - (delay + 39)) <= 8
    assert res.diagnostics["lags"]["first"] == first
    ref = kr.recover_kernel(x, y, lags=(delay, delay + 39), flip=True)
    truth = np.zeros(last - first + 1)
    inside = np.arange(first, last + 1)
    keep = (inside >= delay) & (inside < delay + 40)
    truth[keep] = h[inside[keep] - delay]
    error = np.linalg.norm(res.kernel.ravel() - truth) / np.linalg.norm(h)
    assert error <= 1.5 * np.linalg.norm(ref.kernel.ravel() - h) / np.linalg.norm(h) + 1e-3
    with pytest.raises(ValueError, match="pass neither `kernel_size` nor `padding`"):
        kr.recover_kernel(x, y, 40, lags="auto")
    with pytest.raises(ValueError, match="or 'auto'"):
        kr.recover_kernel(x, y, lags="automatic")


def test_auto_lags_on_a_non_causal_response_warn():
    rng = np.random.default_rng(10)
    x = rng.standard_normal(20000)
    h = rng.standard_normal(12)
    y = measure(x[:, None], h[:, None, None], -4)[:, 0] + 0.01 * rng.standard_normal(20000)
    with pytest.warns(kr.NonCausalWarning, match="feedback from y to x"):
        res = kr.recover_kernel(x, y, lags="auto", flip=True)
    assert res.config.lags[0] <= -4


def test_auto_lags_agree_with_the_fits_own_lag_scan():
    # before: lags="auto" chose (150, 331), then its own fit warned "Use lags=(150, 400)", and following that advice
    # lowered the error; now the choice is re-checked by the fit's lag scan and extended once
    rng = np.random.default_rng(3)
    h = np.zeros(600)
    h[150:] = rng.standard_normal(450) * np.exp(-np.arange(450) / 90.0)
    x = rng.standard_normal(4000)
    y0 = np.convolve(x, h)[:4000]
    y = y0 + rng.standard_normal(4000) * y0.std() / np.sqrt(10)

    def error(res):
        full = np.zeros(900)
        first, last = res.config.lags
        full[first : last + 1] = res.kernel.ravel()
        return np.linalg.norm(full[:600] - h) / np.linalg.norm(h)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = kr.recover_kernel(x, y, lags="auto", flip=True)
    assert not [w for w in caught if "Use lags" in str(w.message)]
    extended = res.diagnostics["lags"]["extended"]
    assert extended["from"][0] == extended["to"][0] == 150 and extended["to"][1] > extended["from"][1]
    assert tuple(extended["to"]) == res.config.lags
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first = kr.recover_kernel(x, y, lags=tuple(extended["from"]), flip=True)
    assert error(res) < 0.9 * error(first)
