"""Standard errors and covariance on the Toeplitz CG path of lstsq (long single-input kernels).

Every reference is an explicit design (``sliding_window_view`` / a lag matrix) and ``numpy.linalg`` on it:
``sigma^2 (A^T A)^{-1}`` with ``sigma^2 = RSS / (n - P)``, or the ridge posterior.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal
from numpy.lib.stride_tricks import sliding_window_view

import kernel_recovery as kr
from kernel_recovery.model import toeplitz
from kernel_recovery.model.problem import build_problem
from kernel_recovery.solvers import lstsq


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def _input(rng, n, pole):
    x = rng.standard_normal(n)
    return scipy.signal.lfilter([1.0], [1.0, -pole], x) if pole else x


def _ols(a, y):
    """Coefficients and ``sigma^2 (A^T A)^{-1}`` per output channel of an explicit design."""
    coef, rss, rank, _ = np.linalg.lstsq(a, y, rcond=None)
    assert rank == a.shape[1]
    inv = np.linalg.inv(a.T @ a)
    return coef, [r / (len(a) - a.shape[1]) * inv for r in rss]


@pytest.mark.parametrize("taps,pole", [(320, 0.0), (480, 0.9)])
@pytest.mark.parametrize("use_bias", [False, True])
def test_stderr_and_covariance_equal_the_explicit_design(rng, taps, pole, use_bias):
    n = 12 * taps
    x = _input(rng, n, pole)
    h = rng.standard_normal(taps) * np.exp(-np.arange(taps) / 40)
    y = kr.conv1d(x, h, [0.7] if use_bias else None) + 0.1 * rng.standard_normal(n - taps + 1)
    res = kr.recover_kernel(x, y, taps, use_bias=use_bias)
    assert res.diagnostics["solver"] == ["toeplitz_cg"]  # chosen by the cost model, not forced
    a = sliding_window_view(x, taps)
    if use_bias:
        a = np.c_[a, np.ones(len(a))]
    coef, (cov,) = _ols(a, y[:, None])
    np.testing.assert_allclose(res.kernel.ravel(), coef[:taps, 0], rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(res.stderr.ravel(), np.sqrt(np.diag(cov))[:taps], rtol=1e-8)
    np.testing.assert_allclose(res.covariance[0], cov, rtol=0, atol=1e-8 * np.abs(cov).max())
    if use_bias:
        np.testing.assert_allclose(res.bias_stderr, np.sqrt(cov[-1, -1]), rtol=1e-8)
    assert res.diagnostics["dof"] == len(a) - a.shape[1]
    assert res.frequency_response(64).band_source == "covariance"


def test_forced_path_several_outputs_and_records(rng, monkeypatch):
    # a short kernel forced onto the path; two records (ragged batch) and two output channels: rank 2 + 2 * 2 + 2
    monkeypatch.setattr(lstsq, "LONG_KERNEL", 16)
    taps = 40
    xs = [rng.standard_normal(700), _input(rng, 500, 0.8)]
    h = rng.standard_normal((taps, 1, 2))
    ys = [kr.conv1d(x[:, None], h, [1.0, -2.0]) + 0.2 * rng.standard_normal((len(x) - taps + 1, 2)) for x in xs]
    res = kr.recover_kernel([x[:, None] for x in xs], ys, taps, use_bias=True)
    assert res.diagnostics["solver"] == ["toeplitz_cg"]
    a = np.concatenate([sliding_window_view(x, taps) for x in xs])
    a = np.c_[a, np.ones(len(a))]
    coef, covs = _ols(a, np.concatenate(ys))
    for o in range(2):
        np.testing.assert_allclose(res.stderr[:, 0, o], np.sqrt(np.diag(covs[o]))[:taps], rtol=1e-8)
        np.testing.assert_allclose(res.covariance[o], covs[o], atol=1e-9 * np.abs(covs[o]).max())
        np.testing.assert_allclose(res.bias_stderr[o], np.sqrt(covs[o][-1, -1]), rtol=1e-8)


@pytest.mark.parametrize("flip", [True, False])
def test_lags_map_the_covariance_to_the_users_taps(rng, flip):
    # y[t] = sum_l h[l] x[t - l] over lags -20 .. 379: kernel[i] is lag res.lags[i]
    n, first, last = 5000, -20, 379
    x = rng.standard_normal(n)
    lags = np.arange(first, last + 1)
    a = np.zeros((n, len(lags)))
    for j, lag in enumerate(lags):
        a[max(lag, 0) : n + min(lag, 0), j] = x[max(-lag, 0) : n - max(lag, 0)]
    h = np.where(lags >= 0, np.exp(-np.abs(lags) / 30.0), 0.0)
    y = a @ h + 0.05 * rng.standard_normal(n)
    res = kr.recover_kernel(x, y, lags=(first, last), flip=flip)
    assert res.diagnostics["solver"] == ["toeplitz_cg"]
    coef, (cov,) = _ols(a, y[:, None])
    order = np.searchsorted(lags, np.asarray(res.lags))  # the user's taps in terms of the explicit columns
    np.testing.assert_allclose(res.kernel.ravel(), coef[order, 0], rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(res.stderr.ravel(), np.sqrt(np.diag(cov))[order], rtol=1e-8)
    np.testing.assert_allclose(res.covariance[0], cov[np.ix_(order, order)], atol=1e-8 * np.abs(cov).max())


@pytest.mark.parametrize("use_bias", [False, True])
def test_ridge_posterior_on_the_path(rng, monkeypatch, use_bias):
    monkeypatch.setattr(lstsq, "LONG_KERNEL", 64)
    taps, n, ridge = 150, 2000, 5.0
    x = _input(rng, n, 0.7)
    y = kr.conv1d(x, rng.standard_normal(taps) / 10, [0.3] if use_bias else None) + 0.1 * rng.standard_normal(
        n - taps + 1
    )
    sol = lstsq.solve(build_problem(x, y, taps, use_bias=use_bias), ridge=ridge)
    assert sol.diagnostics["solver"] == ["toeplitz_cg"] and sol.diagnostics["dof"] == float("inf")
    a = sliding_window_view(x, taps)
    if use_bias:
        a = np.c_[a, np.ones(len(a))]
    pen = np.diag(np.r_[np.ones(taps), [0.0] * use_bias])
    inv = np.linalg.inv(a.T @ a + ridge * pen)
    coef = inv @ a.T @ y
    df = np.trace(inv @ a.T @ a)
    sigma2 = np.sum((y - a @ coef) ** 2) / (len(a) - df)
    np.testing.assert_allclose(sol.covariance[0][0], sigma2 * inv, atol=1e-9 * sigma2 * np.abs(inv).max())
    np.testing.assert_allclose(sol.kernel_stderr[0].ravel(), np.sqrt(sigma2 * np.diag(inv))[:taps], rtol=1e-8)


def test_noiseless_fit_has_standard_errors_from_the_data(rng):
    # rounding dominates the residual from the sums: the residual is read from the data, so stderr exists
    taps, n = 400, 8000
    x = rng.standard_normal(n)
    y = kr.conv1d(x, np.exp(-np.arange(taps) / 50.0))
    res = kr.recover_kernel(x, y, taps)
    assert res.diagnostics["solver"] == ["toeplitz_cg"]
    a = sliding_window_view(x, taps)
    rss = np.sum((y - a @ res.kernel.ravel()) ** 2)
    expected = np.sqrt(rss / (len(a) - taps) * np.diag(np.linalg.inv(a.T @ a)))
    assert res.stderr is not None and np.all(res.stderr > 0)
    np.testing.assert_allclose(res.stderr.ravel(), expected, rtol=1e-3)  # a rounding-level residual, summed two ways


def test_inverse_generators_give_the_explicit_inverse(rng):
    # the displacement recursion against numpy.linalg.inv of the explicit bias-eliminated, ridged Gram
    taps = 90
    x = _input(rng, 900, 0.95)
    y = rng.standard_normal(900 - taps + 1)
    problem = build_problem(x, y, taps, use_bias=True)
    op = toeplitz.ToeplitzGram(problem.blocks[0], True, 0.5)
    a = sliding_window_view(x, taps)
    s = a.sum(axis=0)
    gram = a.T @ a - np.outer(s, s) / len(a) + 0.5 * np.eye(taps)
    ref = np.linalg.inv(gram)
    gen = toeplitz.inverse_generators(op, lambda b: np.linalg.solve(gram, b))
    assert gen is not None and gen.x.shape[1] == 2 + 2 + 2 + 1
    np.testing.assert_allclose(toeplitz.inverse_matrix(gen), ref, atol=1e-10 * np.abs(ref).max())
    np.testing.assert_allclose(toeplitz.inverse_diagonal(gen), np.diag(ref), rtol=1e-9)
    np.testing.assert_allclose(gen.c_sums, ref @ s, rtol=1e-9)
    assert toeplitz.inverse_generators(op, lambda b: None) is None


def test_a_failed_check_falls_back_to_the_dense_inverse_or_to_none(rng, monkeypatch):
    taps, n = 320, 4000
    x = rng.standard_normal(n)
    y = kr.conv1d(x, np.exp(-np.arange(taps) / 30.0)) + 0.1 * rng.standard_normal(n - taps + 1)
    good = kr.recover_kernel(x, y, taps)
    monkeypatch.setattr(toeplitz, "INVERSE_RTOL", -1.0)  # no recursion passes its check
    dense = kr.recover_kernel(x, y, taps)
    assert dense.diagnostics["solver"] == ["toeplitz_cg"]
    np.testing.assert_allclose(dense.stderr, good.stderr, rtol=1e-8)
    np.testing.assert_allclose(dense.covariance[0], good.covariance[0], atol=1e-9 * np.abs(good.covariance[0]).max())
    monkeypatch.setattr(lstsq, "TOEPLITZ_DENSE_LIMIT", 10)  # and no dense inverse either: none, never a wrong one
    none = kr.recover_kernel(x, y, taps)
    assert none.stderr is None and none.covariance is None
    assert none.frequency_response(16).band_source == "none"


def test_over_the_covariance_limit_stderr_alone(rng, monkeypatch):
    taps, n = 320, 4000
    x = rng.standard_normal(n)
    y = kr.conv1d(x, np.exp(-np.arange(taps) / 30.0)) + 0.1 * rng.standard_normal(n - taps + 1)
    full = kr.recover_kernel(x, y, taps)
    monkeypatch.setattr(lstsq, "TOEPLITZ_COVARIANCE_LIMIT", taps * taps - 1)
    res = kr.recover_kernel(x, y, taps)
    assert res.covariance is None and res.frequency_response(16).band_source == "stderr"
    np.testing.assert_allclose(res.stderr, full.stderr, rtol=1e-12)


def test_readme_measured_systems_example_has_bands():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(16000)
    h = rng.standard_normal(400) * np.exp(-np.arange(400) / 80)
    y = scipy.signal.lfilter(np.r_[np.zeros(250), h], 1.0, x) + 1e-3 * rng.standard_normal(16000)
    res = kr.recover_kernel(x, y, lags="auto", flip=True)
    assert res.diagnostics["solver"] == ["toeplitz_cg"]
    fr = res.frequency_response(512, fs=16000)
    assert fr.band_source == "covariance" and np.isfinite(fr.covariance).all()


def test_no_standard_errors_from_a_solve_stopped_at_its_cap(rng, monkeypatch):
    monkeypatch.setattr(lstsq, "LONG_KERNEL", 64)
    x = _input(rng, 3000, 0.9)
    y = kr.conv1d(x, rng.standard_normal(100)) + 0.1 * rng.standard_normal(2901)
    sol = lstsq.solve(build_problem(x, y, 100), max_iter=2)
    assert sol.diagnostics["solver"] == ["toeplitz_cg"] and not sol.success
    assert sol.kernel_stderr is None and sol.covariance is None
