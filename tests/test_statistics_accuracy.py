"""Accuracy of the streamed statistics (issue 13): every path as accurate as a direct product.

References are independent of the code under test: the explicit design ``A`` (im2col rows) with ``A^T A`` and
``numpy.linalg.lstsq``, and exactly rounded sums (``math.fsum``) for long sequences.
"""

import math

import numpy as np
import pytest

import kernel_recovery as kr
from kernel_recovery.model import design, statistics, toeplitz
from kernel_recovery.model.problem import build_problem

#: The target of issue 13: the statistics agree with exact sums to this, relative to their largest entry.
STATISTICS_RTOL = 1e-13


def im2col(x, taps):
    """Row ``t`` holds ``x[t : t + taps]`` flattened tap-major (the design of a valid convolution)."""
    m = len(x) - taps + 1
    return np.stack([x[t : t + taps].ravel() for t in range(m)])


def exact_products(a, b):
    """``a^T b`` with every sum exactly rounded (the products themselves rounded once)."""
    return np.array([[math.fsum(a[:, i] * b[:, j]) for j in range(b.shape[1])] for i in range(a.shape[1])])


def relative_error(got, want):
    return np.abs(got - want).max() / np.abs(want).max()


def issue_case(length):
    """Issue 13: x[:, 0] = 1.7 (constant), x[:, 1] white, K = 2, padding "same" (design condition ~512)."""
    rng = np.random.default_rng(13)
    x = np.empty((length, 2))
    x[:, 0] = 1.7
    x[:, 1] = rng.standard_normal(length)
    w = rng.standard_normal((2, 2, 1))
    return x, w, kr.conv1d(x, w, padding="same")


def test_issue_case_gram_and_cross_match_exact_sums():
    x, _, y = issue_case(65687)
    block = build_problem(x, y, 2, padding="same").blocks[0]
    assert toeplitz.solve_path(block, False) == "normal_equations"
    a = np.concatenate([design.design_rows(block, xc, False) for xc in block.xs])
    yy = np.concatenate(block.ys)
    gram_exact = exact_products(a, a)
    stats = statistics.block_statistics(block, False)
    assert relative_error(stats.gram, gram_exact) < STATISTICS_RTOL
    assert relative_error(stats.gram, a.T @ a) < STATISTICS_RTOL
    assert relative_error(stats.cross, exact_products(a, yy)) < STATISTICS_RTOL
    assert relative_error(stats.yty, exact_products(yy, yy)[0]) < STATISTICS_RTOL


@pytest.mark.parametrize("length", [2000, 20000])
def test_issue_case_recovers_to_rounding_on_both_sides_of_the_svd_limit(length):
    x, w, y = issue_case(length)
    path = toeplitz.solve_path(build_problem(x, y, 2, padding="same").blocks[0], False)
    assert path == ("explicit" if length * 4 <= design.SVD_LIMIT else "normal_equations")
    res = kr.recover_kernel(x, y, 2, padding="same")
    assert np.abs(res.kernel - w).max() <= 1e-12 * np.abs(w).max()


def test_issue_case_statistics_path_recovers_kernel():
    x, w, y = issue_case(65687)
    res = kr.recover_kernel(x, y, 2, padding="same")
    assert res.diagnostics["solver"] == ["normal_equations+refined"]  # cond(A^T A) = 2.6e5 > REFINE_ABOVE
    block = build_problem(x, y, 2, padding="same").blocks[0]
    a = np.concatenate([design.design_rows(block, xc, False) for xc in block.xs])
    reference = np.linalg.lstsq(a, np.concatenate(block.ys), rcond=None)[0].reshape(w.shape)
    assert np.abs(reference - w).max() <= 1e-12 * np.abs(w).max()
    assert np.abs(res.kernel - w).max() < 1e-11 * np.abs(w).max()


@pytest.mark.parametrize("c,o,taps", [(1, 1, 64), (2, 2, 40), (4, 1, 16)])
def test_statistics_path_recovers_full_rank_kernels(c, o, taps):
    rng = np.random.default_rng(taps)
    x = rng.standard_normal((6000, c)) + 0.5
    w = rng.standard_normal((taps, c, o))
    y = kr.conv1d(x, w)
    block = build_problem(x, y, taps).blocks[0]
    assert toeplitz.solve_path(block, False) == "normal_equations"
    res = kr.recover_kernel(x, y, taps)
    reference = np.linalg.lstsq(im2col(x, taps), y, rcond=None)[0].reshape(w.shape)
    scale = np.abs(w).max()
    assert np.abs(reference - w).max() <= 1e-12 * scale
    assert np.abs(res.kernel - w).max() <= 1e-12 * scale


def test_long_sums_match_exact_sums():
    # a constant channel is the worst case of sequential sums (x.sum(axis=0) here: 1.7e-11 relative)
    rng = np.random.default_rng(1)
    n, taps = 1_000_000, 3
    x = np.column_stack([np.full(n, 1.7), rng.standard_normal(n), rng.standard_normal(n) + 3.0])
    y = np.column_stack([np.full(n - taps + 1, 0.9), rng.standard_normal(n - taps + 1) + 2.0])
    m = n - taps + 1
    sums = np.array([[math.fsum(x[j : j + m, ch]) for ch in range(3)] for j in range(taps)])
    assert relative_error(statistics.column_sums(x, taps), sums) < STATISTICS_RTOL
    stats = statistics.sequence_statistics(x, y, taps, np.ones((taps, 3), bool), use_bias=True)
    assert relative_error(stats.gram[-1, :-1], sums.ravel()) < STATISTICS_RTOL
    assert relative_error(stats.cross[-1], np.array([math.fsum(col) for col in y.T])) < STATISTICS_RTOL
    assert relative_error(stats.yty, np.array([math.fsum(col * col) for col in y.T])) < STATISTICS_RTOL


@pytest.mark.parametrize("method", ["direct", "gemm", "fft", "correlate"])
@pytest.mark.parametrize("c", [1, 2])
def test_long_lagged_correlations_match_exact_sums(method, c):
    if method == "correlate" and c > 1:
        pytest.skip("one input channel only (tests/test_lstsq.py checks the error)")
    rng = np.random.default_rng(c)
    n, taps = 1_000_000, 24
    x = rng.standard_normal((n, c))
    x[:, 0] = 1.7
    y = np.column_stack([np.full(n - taps + 1, 0.9) + 1e-3 * rng.standard_normal(n - taps + 1)])
    m = n - taps + 1
    r, q = statistics.lagged_correlations(x, taps, y, method=method)
    lags = [0, 1, 7, taps - 1]
    r_exact = np.array([exact_products(x[:m], x[lag : lag + m]) for lag in lags])
    q_exact = np.array([exact_products(x[lag : lag + m], y) for lag in lags])
    assert relative_error(r[lags], r_exact) < STATISTICS_RTOL
    assert relative_error(q[lags], q_exact) < STATISTICS_RTOL


def random_configs(count):
    """(seed, channels, outputs, taps, n, kind): channels 1-4, taps 2-300, data white, offset or with a constant."""
    rng = np.random.default_rng(2026)
    configs = []
    for seed in range(count):
        c = int(rng.integers(1, 5))
        taps = int(rng.integers(2, min(301, 600 // c + 1)))
        n = taps - 1 + int(rng.integers(4 * taps, 4 * taps + 1500))
        configs.append((seed, c, int(rng.integers(1, 4)), taps, n, ("white", "offset", "constant")[seed % 3]))
    return configs


@pytest.mark.parametrize("method", ["direct", "gemm", "fft", "correlate"])
@pytest.mark.parametrize("seed,c,o,taps,n,kind", random_configs(8))
def test_every_path_matches_direct_product(method, seed, c, o, taps, n, kind):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c))
    if method == "correlate":  # (one input channel: the first of the configuration's)
        x = x[:, :1]
        c = 1
    if kind == "offset":
        x += 2.0
    elif kind == "constant":
        x[:, 0] = 1.7
    y = rng.standard_normal((n - taps + 1, o))
    a = im2col(x, taps)
    r, q = statistics.lagged_correlations(x, taps, y, method=method)
    assert relative_error(statistics.gram_from_lags(x, taps, r), a.T @ a) < STATISTICS_RTOL
    assert relative_error(q.reshape(-1, o), a.T @ y) < STATISTICS_RTOL


def test_edge_heavy_long_kernel_gram_matches_exact_sums():
    # the Gram's edge terms carry most of the energy: the long running sums must not accumulate rounding
    rng = np.random.default_rng(5)
    taps, m = 2048, 3000
    x = 1e-3 * rng.standard_normal((m + taps - 1, 1))
    x[:taps] = 1.7 + 0.1 * rng.standard_normal((taps, 1))
    x[-taps:] = 1.7 + 0.1 * rng.standard_normal((taps, 1))
    pairs = [(j, j2) for j in range(0, taps, 131) for j2 in (j, min(taps - 1, j + 1), min(taps - 1, j + 700))]
    want = np.array([math.fsum(x[j : j + m, 0] * x[j2 : j2 + m, 0]) for j, j2 in pairs])
    for method in ("direct", "fft", "correlate"):
        gram = statistics.gram_from_lags(x, taps, statistics.lagged_correlations(x, taps, method=method)[0])
        assert relative_error(np.array([gram[j, j2] for j, j2 in pairs]), want) < STATISTICS_RTOL
        assert np.array_equal(gram, gram.T)
