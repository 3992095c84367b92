"""The lag search: nested least squares against numpy lstsq on explicit matrices, the delay seed, select_lags."""

import json

import numpy as np
import pytest
import scipy.linalg
import scipy.signal

import kernel_recovery as kr
from kernel_recovery import selection
from kernel_recovery.diagnostics import lagsearch, nested
from kernel_recovery.model.whitening import whitening_filters


def lag_design(x, lo, hi):
    """Explicit design over lags lo..hi (ascending): column j is x[t - (lo + j)], zero outside x."""
    n = len(x)
    cols = []
    for lag in range(lo, hi + 1):
        col = np.zeros((n,) + x.shape[1:])
        if lag >= 0:
            col[lag:] = x[: n - lag]
        else:
            col[:lag] = x[-lag:]
        cols.append(col)
    a = np.stack(cols, axis=1)  # (n, taps, C)
    return a.reshape(n, -1)


def delayed(x, h, first):
    """y[t] = sum_i h[i] x[t - first - i] on x's time axis (x zero outside its record)."""
    return lag_design(x[:, None], first, first + len(h) - 1) @ h


def lstsq_rss(a, y):
    return float(np.sum((y - a @ np.linalg.lstsq(a, y, rcond=None)[0]) ** 2))


@pytest.mark.parametrize("channels, outputs, use_bias", [(1, 1, False), (2, 2, True)])
def test_nested_rss_against_explicit_lstsq(rng, channels, outputs, use_bias):
    n, lo, hi = 300, -3, 9
    x = rng.standard_normal((n, channels))
    y = rng.standard_normal((n, outputs)) + lag_design(x, 0, 2) @ rng.standard_normal((3 * channels, outputs))
    gram, cross, yty, rows = lagsearch.window_statistics([x], [y], lo, hi, use_bias)
    a = lag_design(x, lo, hi)
    if use_bias:
        a = np.concatenate([np.ones((n, 1)), a], axis=1)
    np.testing.assert_allclose(gram, a.T @ a, rtol=1e-12, atol=1e-9)
    fit = nested.prefix_fit(gram, cross, yty, rows)
    b, taps = int(use_bias), hi - lo + 1
    assert fit.rank == a.shape[1]
    for k in range(1, taps + 1):  # every end: lags lo..lo+k-1
        cols = list(range(b)) + list(range(b, b + k * channels))
        np.testing.assert_allclose(fit.rss[b + k * channels], lstsq_rss(a[:, cols], y), rtol=1e-9)
    drop = nested.dropped_rss(fit, np.arange(b, b + (taps - 1) * channels))
    for k in range(taps):  # every start: lags lo+k..hi
        cols = list(range(b)) + list(range(b + k * channels, a.shape[1]))
        np.testing.assert_allclose(drop[k * channels], lstsq_rss(a[:, cols], y), rtol=1e-9)


def test_prefix_fit_stops_at_an_unresolved_column(rng):
    a = rng.standard_normal((50, 3))
    a = np.concatenate([a, a[:, :1] + a[:, 1:2], rng.standard_normal((50, 1))], axis=1)  # column 3 is dependent
    y = rng.standard_normal((50, 1))
    fit = nested.prefix_fit(a.T @ a, a.T @ y, (y**2).sum(axis=0), 50)
    assert fit.rank == 3 and len(fit.rss) == 4
    np.testing.assert_allclose(fit.rss[3], lstsq_rss(a[:, :3], y), rtol=1e-9)


def toeplitz_reference_rss(r, b, yty, k, trailing=False):
    """y'y - b_k^T R_k^-1 b_k from numpy.linalg.solve on the explicit k x k Toeplitz matrix."""
    if k == 0:
        return float(np.sum(yty))
    rk = scipy.linalg.toeplitz(r[:k])
    bk = b[-k:] if trailing else b[:k]
    return float(np.sum(yty) - np.sum(bk * np.linalg.solve(rk, bk)))


@pytest.mark.parametrize("outputs", [1, 3])
def test_levinson_scan_against_explicit_toeplitz_solves(rng, outputs):
    t = 60
    x = scipy.signal.lfilter([1.0], [1.0, -0.9], rng.standard_normal(2000))  # coloured: a harder Toeplitz
    r = np.array([x[k:] @ x[: len(x) - k] for k in range(t)])
    b = rng.standard_normal((t, outputs)) * 30.0
    yty = np.full(outputs, 1e4)
    scan = nested.levinson_scan(r, b, yty)
    assert scan.rank == t and len(scan.end_rss) == len(scan.start_rss) == t + 1
    ends = [toeplitz_reference_rss(r, b, yty, k) for k in range(t + 1)]
    starts = [toeplitz_reference_rss(r, b, yty, k, trailing=True) for k in range(t + 1)]
    np.testing.assert_allclose(scan.end_rss, ends, rtol=1e-9)
    np.testing.assert_allclose(scan.start_rss, starts, rtol=1e-9)


def test_levinson_scan_stops_where_the_toeplitz_matrix_is_singular():
    r = np.cos(0.3 * np.arange(10))  # the autocorrelation of one sinusoid: rank 2
    scan = nested.levinson_scan(r, np.ones(10), 5.0, tol=1e-10)
    assert scan.rank == 2 and len(scan.end_rss) == 3
    np.testing.assert_allclose(scan.end_rss[2], toeplitz_reference_rss(r, np.ones((10, 1)), 5.0, 2), rtol=1e-9)


@pytest.mark.parametrize("colour", [0.0, 0.9])
def test_toeplitz_window_scan_is_close_to_the_exact_scans_on_a_long_record(rng, colour):
    n, lo, hi, first = 40000, 20, 140, 40
    x = scipy.signal.lfilter([1.0], [1.0, -colour], rng.standard_normal(n))
    h = rng.standard_normal(80) * np.exp(-np.arange(80) / 30.0)
    y = delayed(x, h, first) + 0.01 * rng.standard_normal(n)
    xs, ys = [x[:, None]], [y[:, None]]
    gram, cross, yty, rows = lagsearch.window_statistics(xs, ys, lo, hi)
    fit = nested.prefix_fit(gram, cross, yty, rows)
    taps = hi - lo + 1
    exact_ends = fit.rss
    exact_starts = nested.dropped_rss(fit, np.arange(taps - 1))[::-1]  # the last k lags, k = 1..taps
    kernel = fit.coefficients()
    r, largest = lagsearch.input_autocorrelation(xs, taps)
    scan = nested.toeplitz_window_scan(r, largest, kernel, float(fit.rss[-1]), rows)
    assert scan.rank == taps
    full = float(fit.rss[-1])
    np.testing.assert_allclose(scan.end_rss[-1], full, rtol=1e-9)
    # the Toeplitz metric is off by the rows the record cuts at its end, ~hi of n: a relative error of ~hi / n
    np.testing.assert_allclose(scan.end_rss - full, exact_ends - full, rtol=3 * hi / n, atol=1e-9 * full)
    np.testing.assert_allclose(scan.start_rss[1:] - full, exact_starts - full, rtol=3 * hi / n, atol=1e-9 * full)
    # zero-padded y with the exact cross terms is not a usable metric at this SNR: its residual swamps the noise
    raw = nested.levinson_scan(r, cross[:, :], yty)
    assert raw.end_rss[-1] > 5 * full


@pytest.mark.parametrize("use_bias", [False, True])
def test_choose_lags_on_a_long_window_equals_the_cholesky_scans(rng, monkeypatch, use_bias):
    n, first, taps = 30000, 300, 700
    x = scipy.signal.lfilter([1.0], [1.0, -0.7], rng.standard_normal(n)) + (2.0 if use_bias else 0.0)
    h = rng.standard_normal(taps) * np.exp(-np.arange(taps) / 120.0)
    y = delayed(x, h, first) + 0.01 * rng.standard_normal(n) + (3.0 if use_bias else 0.0)
    used = []
    real = lagsearch.convolution_prefix_fit
    monkeypatch.setattr(lagsearch, "convolution_prefix_fit", lambda *a: used.append(a[2]) or real(*a))
    fast = lagsearch.choose_lags([x[:, None]], [y[:, None]], use_bias=use_bias)
    assert used == [fast.window[1] - fast.window[0] + 1] * 2  # the structured scans: starts, then ends
    monkeypatch.setattr(lagsearch, "STRUCTURED_FROM", 10**9)
    monkeypatch.setattr(lagsearch, "SMALL_WINDOW", 10**9)
    exact = lagsearch.choose_lags([x[:, None]], [y[:, None]], use_bias=use_bias)  # one Cholesky factorization
    assert fast.window == exact.window and fast.first == exact.first == first
    assert (fast.last, fast.end_of_response, fast.start_of_response) == (
        exact.last,
        exact.end_of_response,
        exact.start_of_response,
    )
    # scores agree to rounding: RSS is y'y less the explained part (here 1e-5 of y'y), so both scans carry
    # ~1e-8 of it; in the criterion's units (a lag costs 2 to log n) that is 1e-3 at most
    np.testing.assert_allclose(fast.end_scores, exact.end_scores, rtol=0, atol=1e-2)
    np.testing.assert_allclose(fast.start_scores, exact.start_scores, rtol=0, atol=1e-2)
    np.testing.assert_allclose(fast.noise_std, exact.noise_std, rtol=1e-8)


@pytest.mark.parametrize("use_bias, criterion", [(False, "bic"), (True, "aic")])
def test_structured_lag_scans_choose_as_a_loop_of_explicit_fits(rng, monkeypatch, use_bias, criterion):
    monkeypatch.setattr(lagsearch, "STRUCTURED_FROM", 16)  # the structured scans from 16 lags (a cost threshold)
    n, first = 700, 12
    x = rng.standard_normal(n) + 1.5 * use_bias
    h = rng.standard_normal(20) * 0.85 ** np.arange(20)
    y = delayed(x, h, first) + 0.02 * rng.standard_normal(n) + 0.7 * use_bias
    choice = lagsearch.choose_lags([x[:, None]], [y[:, None]], use_bias=use_bias, criterion=criterion)
    lo, hi = choice.window
    assert hi - lo + 1 >= 16
    a = lag_design(x[:, None], lo, hi)  # columns: lags lo..hi
    if use_bias:
        a = np.concatenate([np.ones((n, 1)), a], axis=1)
    b = int(use_bias)

    def score(cols):
        rss = lstsq_rss(a[:, list(range(b)) + cols], y)
        k = len(cols) + b
        return n * np.log(rss / n) + (2 * k if criterion == "aic" else k * np.log(n))

    ends = [score(list(range(b, b + e - lo + 1))) for e in choice.ends]
    starts = [score(list(range(b + s - lo, a.shape[1]))) for s in choice.starts]
    np.testing.assert_allclose(choice.end_scores, ends, rtol=1e-9)
    np.testing.assert_allclose(choice.start_scores, starts, rtol=1e-9)
    best_first = int(choice.starts[np.argmin(starts)])
    assert choice.first == best_first == first
    assert choice.last == max(int(choice.ends[np.argmin(ends)]), best_first)


def test_information_criterion_is_select_kernel_size_formula():
    n, k, rss = 100, np.array([2, 3]), np.array([4.0, 3.0])
    np.testing.assert_allclose(nested.information_criterion(rss, k, n, "aic"), n * np.log(rss / n) + 2 * k)
    np.testing.assert_allclose(nested.information_criterion(rss, k, n, "bic"), n * np.log(rss / n) + k * np.log(n))
    with pytest.raises(ValueError, match="criterion"):
        nested.information_criterion(rss, k, n, "cv")


def test_seed_finds_a_bulk_delay_with_coloured_input(rng):
    n, delay = 6000, 1500
    x = scipy.signal.lfilter([1.0], [1.0, -0.9], rng.standard_normal(n))
    h = np.exp(-np.arange(20) / 5.0) * rng.choice([-1.0, 1.0], 20)
    y = delayed(x, h, delay) + 0.01 * rng.standard_normal(n)
    filters = list(whitening_filters([x[:, None] - x.mean()], 16).T)
    corr, count = lagsearch.whitened_correlation([x[:, None]], [y[:, None]], filters, -2000, 3000)
    threshold = lagsearch.null_threshold(count, len(corr))
    sig = lagsearch.significant_lags(corr, -2000, threshold)
    assert sig[0] == delay and sig[-1] < delay + 20
    assert -2000 + int(np.argmax(np.abs(corr[:, 0, 0]))) == delay  # the largest tap


def test_choose_lags_finds_a_delayed_fir(rng):
    n, first = 8000, 700
    x = scipy.signal.lfilter([1.0], [1.0, -0.8], rng.standard_normal(n))
    h = rng.standard_normal(60) * np.exp(-np.arange(60) / 40.0)
    y = delayed(x, h, first) + 0.01 * rng.standard_normal(n)
    choice = lagsearch.choose_lags([x[:, None]], [y[:, None]])
    assert abs(choice.first - first) <= 2 and abs(choice.last - (first + 59)) <= 3
    assert choice.warnings == () and choice.window[0] <= first and choice.window[1] >= first + 59
    assert choice.start_of_response == first
    d = json.loads(json.dumps(choice.to_dict()))
    assert d["first"] == choice.first and d["length"] == choice.length and len(d["ends"]) == len(d["end_scores"])


def test_negative_lags_warn_of_feedback_or_misalignment(rng):
    n = 5000
    x = rng.standard_normal(n)
    h = rng.standard_normal(16)  # lags -5..10
    y = delayed(x, h, -5) + 0.01 * rng.standard_normal(n)
    choice = lagsearch.choose_lags([x[:, None]], [y[:, None]])
    assert choice.lags == (-5, 10) and choice.start_of_response == -5
    assert "negative lags" in choice.non_causal and "misaligned" in choice.non_causal and choice.warnings == ()
    with pytest.warns(kr.NonCausalWarning, match="negative lag"):
        sel = kr.select_lags(x, y)
    np.testing.assert_allclose(sel.result.kernel.ravel(), h, atol=1e-3)


def test_select_lags_fits_the_chosen_lags(rng):
    n, first = 6000, 250
    x = rng.standard_normal(n)
    h = rng.standard_normal(30)
    y = delayed(x, h, first) + 0.01 * rng.standard_normal(n)
    sel = kr.select_lags(x, y)
    assert sel.lags == (first, first + 29) and sel.delay == first and sel.length == 30
    assert sel.criterion == "bic" and sel.result is not None
    np.testing.assert_allclose(sel.result.kernel.ravel(), h, atol=1e-3)
    assert "lags selected by BIC" in str(sel)
    aic = kr.select_lags(x, y, criterion="aic")  # AIC may take a few spare taps, never miss one
    assert first - 6 <= aic.first <= first and first + 29 <= aic.last <= first + 35
    inside = aic.result.kernel.ravel()[first - aic.first : first - aic.first + 30]
    np.testing.assert_allclose(inside, h, atol=1e-3)


def test_a_response_longer_than_max_length_is_cut_with_a_warning(rng):
    n = 5000
    x = rng.standard_normal(n)
    h = rng.standard_normal(80)
    y = delayed(x, h, 10) + 0.01 * rng.standard_normal(n)
    choice = lagsearch.choose_lags([x[:, None]], [y[:, None]], max_length=40)
    assert choice.length <= 40 and any("cut at the end" in w and "max_length" in w for w in choice.warnings)


@pytest.mark.parametrize(
    "kwargs, err, match",
    [
        (dict(criterion="cv"), ValueError, "criterion"),
        (dict(max_length=0), ValueError, "max_length"),
        (dict(max_delay=-1), ValueError, "max_delay"),
        (dict(max_length=2.5), TypeError, "max_length"),
        (dict(max_delay=True), TypeError, "max_delay"),
    ],
)
def test_select_lags_bad_input(rng, kwargs, err, match):
    x = rng.standard_normal(500)
    with pytest.raises(err, match=match):
        kr.select_lags(x, delayed(x, [1.0, 0.5], 3), **kwargs)


def test_select_lags_needs_y_on_x_axis(rng):
    x = rng.standard_normal(500)
    with pytest.raises(ValueError, match="same length"):
        kr.select_lags(x, x[:-3])


def test_no_response_is_an_error(rng):
    with pytest.raises(ValueError, match="does not correlate"):
        lagsearch.choose_lags([rng.standard_normal((3000, 1))], [rng.standard_normal((3000, 1))])


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(padding="causal"),
        dict(padding="same"),
        dict(padding="valid"),
        dict(padding="valid", flip=True),
        dict(padding=(3, 2), flip=True),
        dict(padding="same", groups=2, use_bias=True),
    ],
)
@pytest.mark.parametrize("criterion", ["aic", "bic"])
def test_select_kernel_size_nested_matches_the_loop(rng, monkeypatch, kwargs, criterion):
    channels = 2 * kwargs.get("groups", 1)
    x = rng.standard_normal((400, channels)) if channels > 1 else rng.standard_normal(400)
    w = rng.standard_normal((5, channels // kwargs.get("groups", 1), kwargs.get("groups", 1)))
    conv_kwargs = {k: v for k, v in kwargs.items() if k != "use_bias"}
    y = kr.conv1d(x, w, **conv_kwargs)
    y = y + 0.05 * rng.standard_normal(y.shape)
    scanned = kr.select_kernel_size(x, y, range(1, 21), criterion=criterion, **kwargs)
    monkeypatch.setattr(selection, "NESTED_FROM", 10**9)
    loop = kr.select_kernel_size(x, y, range(1, 21), criterion=criterion, **kwargs)
    assert scanned.kernel_size == loop.kernel_size and scanned.status == loop.status
    fitted = np.isfinite(loop.scores)
    np.testing.assert_array_equal(np.isfinite(scanned.scores), fitted)
    np.testing.assert_allclose(scanned.scores[fitted], loop.scores[fitted], rtol=1e-9)
    np.testing.assert_allclose(scanned.rss[fitted], loop.rss[fitted], rtol=1e-7)
    np.testing.assert_array_equal(scanned.n_params, loop.n_params)
