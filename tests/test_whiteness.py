"""The residual whiteness check (Ljung-Box) that recover_kernel runs: diagnostics["whiteness"]."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.stats import chi2

import kernel_recovery as kr
import kernel_recovery.exceptions
from kernel_recovery.diagnostics import whiteness


def _ljung_box_by_hand(e: np.ndarray, lags: int) -> float:
    """The textbook statistic of one series: Q = n (n + 2) sum_k r_k^2 / (n - k), r_k the sample autocorrelation."""
    e = e - e.mean()
    n = len(e)
    full = np.correlate(e, e, mode="full")[n - 1 :]  # sum_t e_t e_{t+k}, k = 0 .. n-1
    r = full[1 : lags + 1] / full[0]
    return float(n * (n + 2) * np.sum(r**2 / (n - np.arange(1, lags + 1))))


def _ar1(rng: np.random.Generator, n: int, phi: float) -> np.ndarray:
    v = rng.standard_normal(n + 100)
    e = np.zeros_like(v)
    for t in range(1, len(v)):
        e[t] = phi * e[t - 1] + v[t]
    return e[100:]


def test_statistic_matches_hand_formula():
    rng = np.random.default_rng(0)
    e = rng.standard_normal((500, 2)) + 3.0
    q = whiteness.ljung_box([e], 10)
    np.testing.assert_allclose(q, [_ljung_box_by_hand(e[:, 0], 10), _ljung_box_by_hand(e[:, 1], 10)], rtol=1e-12)


def test_statistic_matches_statsmodels():
    diagnostic = pytest.importorskip("statsmodels.stats.diagnostic")
    rng = np.random.default_rng(1)
    e = _ar1(rng, 400, 0.2)
    ref = diagnostic.acorr_ljungbox(e, lags=[10])
    np.testing.assert_allclose(
        whiteness.ljung_box([e[:, None]], 10)[0], float(np.asarray(ref["lb_stat"])[0]), rtol=1e-10
    )


def test_pooled_over_sequences():
    """Several sequences: products never cross a sequence boundary, n_k counts the products at lag k."""
    rng = np.random.default_rng(2)
    parts = [rng.standard_normal((n, 1)) for n in (120, 80, 200)]
    q = whiteness.ljung_box(parts, 5)[0]
    allv = np.concatenate(parts)[:, 0]
    mean = allv.mean()
    centred = [p[:, 0] - mean for p in parts]
    denom = sum(np.dot(c, c) for c in centred)
    n = len(allv)
    ref = 0.0
    for k in range(1, 6):
        num = sum(np.dot(c[k:], c[:-k]) for c in centred)
        pairs = sum(len(c) - k for c in centred)
        ref += (num / denom) ** 2 / pairs
    np.testing.assert_allclose(q, n * (n + 2) * ref, rtol=1e-12)


def test_white_residuals_pass_at_the_stated_rate():
    """Monte Carlo: under white noise the p-values are uniform, so p < 0.05 in ~5 % of fits, p < 0.001 almost never."""
    rng = np.random.default_rng(3)
    kernel = np.array([1.0, -0.5, 0.25, 0.1])
    p = []
    change = getattr(kr.exceptions, "ChangeWarning", None)
    for _ in range(400):
        x = rng.standard_normal(1000)
        y = kr.conv1d(x, kernel) + 0.3 * rng.standard_normal(997)
        with warnings.catch_warnings():
            if change is not None:  # another check's false alarms (a rate per fit) are not this test's subject
                warnings.simplefilter("ignore", change)
            res = kr.recover_kernel(x, y, 4)
        white = res.diagnostics["whiteness"]
        assert res.diagnostics["checks"]["whiteness"] in ("checked", "flagged")
        assert white["lags"] == 10 and white["rows"] == 997
        p.append(white["p_value"][0])
    p = np.array(p)
    rate = float(np.mean(p < 0.05))
    print(f"false rejections at 0.05: {rate:.3f}; at 0.001: {np.mean(p < 1e-3):.4f}")
    assert 0.03 <= rate <= 0.075, rate
    assert np.sum(p < whiteness.WHITENESS_ALPHA) <= 2
    assert 0.4 <= float(np.mean(p)) <= 0.6


def test_statistic_is_chi_square():
    """Under white noise the statistic is about chi-square with `lags` degrees of freedom (mean, upper tail)."""
    rng = np.random.default_rng(4)
    q = np.array([whiteness.ljung_box([rng.standard_normal((800, 1))], 10)[0] for _ in range(2000)])
    assert abs(np.mean(q) - 10) < 0.3
    assert abs(np.mean(q > chi2.ppf(0.95, 10)) - 0.05) < 0.015


@pytest.mark.parametrize("method", ["lstsq", "fft"])
def test_coloured_noise_fails(method):
    rng = np.random.default_rng(5)
    x = rng.standard_normal(3000)
    y = kr.conv1d(x, [1.0, -0.5, 0.25]) + 0.2 * _ar1(rng, 2998, 0.5)
    with warnings.catch_warnings():
        # the change-point check (another check, in progress) calls AR(1) noise a break with method="fft"
        change = getattr(kr.exceptions, "ChangeWarning", None)
        if change is not None:
            warnings.simplefilter("ignore", change)
        res = kr.recover_kernel(x, y, 3, method=method)
    white = res.diagnostics["whiteness"]
    assert white["p_value"][0] < 1e-10
    assert res.diagnostics["checks"]["whiteness"] == "flagged"
    assert "not white" in white["message"] and "prewhiten" in white["message"]


def test_multichannel_names_the_coloured_channel():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2000, 2))
    w = rng.standard_normal((3, 2, 2))
    noise = np.stack([0.2 * rng.standard_normal(1998), 0.2 * _ar1(rng, 1998, 0.6)], axis=1)
    res = kr.recover_kernel(x, kr.conv1d(x, w) + noise, 3)
    white = res.diagnostics["whiteness"]
    assert white["p_value"][1] < 1e-10 and white["p_value"][0] > 1e-3
    assert "channel(s) 1 " in white["message"]


def test_noiseless_is_skipped():
    rng = np.random.default_rng(7)
    x = rng.standard_normal(500)
    res = kr.recover_kernel(x, kr.conv1d(x, [1.0, 2.0, -1.0]), 3)
    assert res.diagnostics["whiteness"] is None
    assert res.diagnostics["checks"]["whiteness"] == "skipped: the residual is at rounding level (noiseless data)"


def test_short_record_is_skipped():
    res = kr.recover_kernel([0.0, 3.0, 4.0, 5.0, 1.0], [6.0, 11.0, 14.0, 7.1], 2)
    assert res.diagnostics["whiteness"] is None
    assert res.diagnostics["checks"]["whiteness"].startswith("skipped: too few residuals")


def test_streamed_statistics_are_skipped():
    rng = np.random.default_rng(8)
    n = 200_000  # more rows than NormalEquations retains (it keeps all of small problems, and checks those)
    x = rng.standard_normal(n)
    y = kr.conv1d(x, [0.5, -1.0, 2.0], padding="same") + 0.1 * rng.standard_normal(n)
    acc = kr.NormalEquations(3, padding="same")
    for i in range(0, n, 50_000):
        acc.update(x[i : i + 50_000], y[i : i + 50_000])
    res = acc.solve()
    assert res.diagnostics["whiteness"] is None
    assert res.diagnostics["checks"]["whiteness"] == "skipped: the rows are not retained (streamed statistics only)"


def test_batch_of_sequences_and_json():
    rng = np.random.default_rng(9)
    xs = [rng.standard_normal(n) for n in (300, 500, 400)]
    ys = [kr.conv1d(x, [1.0, 0.5]) + 0.1 * rng.standard_normal(len(x) - 1) for x in xs]
    res = kr.recover_kernel(xs, ys, 2)
    white = res.diagnostics["whiteness"]
    assert white["rows"] == 299 + 499 + 399
    assert res.to_dict()["diagnostics"]["whiteness"]["lags"] == 10


def test_shared_rows_give_the_same_test():
    """The check on the rows the specification tests computed (``rows``) is the check on its own forward pass."""
    from kernel_recovery.diagnostics import specification
    from kernel_recovery.model.problem import build_problem
    from kernel_recovery.solvers import lstsq

    rng = np.random.default_rng(10)
    xs = [rng.standard_normal(n) for n in (600, 3000, 900)]
    ys = [kr.conv1d(x, [1.0, 0.5]) + 0.1 * _ar1(rng, len(x) - 1, 0.3) for x in xs]
    problem = build_problem(xs, ys, 2)
    sol = lstsq.solve(problem)
    own, _ = whiteness.whiteness_check(problem, sol, 2000)
    shared = [specification.block_rows(problem, sol, 0, 4096)]  # more rows than the check reads: it takes the first
    given, _ = whiteness.whiteness_check(problem, sol, 2000, shared)
    assert own is not None and given is not None and own["rows"] == given["rows"] == 2000
    np.testing.assert_array_equal(own["statistic"], given["statistic"])
    # the statistic of those 2000 rows by hand (pooled over the first two sequences and 701 rows of the second)
    e = np.concatenate([y - kr.conv1d(x, sol.kernels[0]) for x, y in zip(xs, ys)])[:2000, None]
    parts = [e[:599], e[599:]]
    np.testing.assert_allclose(given["statistic"], whiteness.ljung_box(parts, 10), rtol=1e-10)
