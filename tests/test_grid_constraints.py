"""Constrained (PSF) and smoothed grid kernels against scipy.optimize and explicit matrices."""

import numpy as np
import pytest
import scipy.linalg
import scipy.ndimage
import scipy.optimize
from numpy.lib.stride_tricks import sliding_window_view

import kernel_recovery as kr
from kernel_recovery.solvers.grid_constraints import active_set_qp, laplacian

BOTH = ("nonnegative", "sum_to_one")


def _design(x, k, use_bias=False):
    """The explicit 'valid' correlation design of a channels-last image ``(H, W, C)``: columns (k1, k2, c), bias."""
    win = sliding_window_view(x, k, axis=(0, 1))  # (o1, o2, C, k1, k2)
    a = np.moveaxis(win, 2, -1).reshape(-1, k[0] * k[1] * x.shape[2])
    return np.hstack([a, np.ones((len(a), 1))]) if use_bias else a


def _blur_problem(seed, k=(5, 4), channels=1, noise=0.05, shape=(18, 17)):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape + (channels,))
    w = np.abs(rng.standard_normal(k + (channels,))) * (rng.random(k + (channels,)) < 0.4)
    w /= w.sum()
    a = _design(x, k)
    y = a @ w.ravel() + noise * rng.standard_normal(len(a))
    return x, y.reshape(shape[0] - k[0] + 1, shape[1] - k[1] + 1, 1), a


def _kkt(a, y, w, sum_to_one, tol):
    """The KKT conditions of min ||A w - y||^2 / 2, w >= 0 (, sum w = 1), checked on the explicit design."""
    grad = a.T @ (a @ w - y)
    free = w > 0
    mu = -np.mean(grad[free]) if sum_to_one else 0.0
    assert np.all(w >= 0)
    np.testing.assert_allclose(grad[free] + mu, 0.0, atol=tol)
    assert np.all(grad[~free] + mu >= -tol)
    if sum_to_one:
        assert w.sum() == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("seed", range(6))
def test_nonnegative_equals_scipy_nnls_on_the_explicit_design(seed):
    x, y, a = _blur_problem(seed, channels=1 + seed % 2)
    res = kr.recover_kernel(x, y, (5, 4), constraints="nonnegative")
    ref, _ = scipy.optimize.nnls(a, y.ravel())
    np.testing.assert_allclose(res.kernel.ravel(), ref, atol=1e-10)
    _kkt(a, y.ravel(), res.kernel.ravel(), False, 1e-9)
    assert res.success and res.diagnostics["constraints"]["kkt_residual"][0] < 1e-12


@pytest.mark.parametrize("seed", range(6))
def test_psf_constraints_equal_slsqp_and_satisfy_kkt(seed):
    x, y, a = _blur_problem(seed, channels=1 + seed % 2)
    res = kr.recover_kernel(x, y, (5, 4), constraints=("sum_to_one", "nonnegative"))
    w = res.kernel.ravel()
    _kkt(a, y.ravel(), w, True, 1e-9)
    p = a.shape[1]
    ref = scipy.optimize.minimize(
        lambda v: 0.5 * np.sum((a @ v - y.ravel()) ** 2),
        np.full(p, 1.0 / p),
        jac=lambda v: a.T @ (a @ v - y.ravel()),
        method="SLSQP",
        bounds=[(0, None)] * p,
        constraints={"type": "eq", "fun": lambda v: v.sum() - 1.0, "jac": lambda v: np.ones_like(v)},
        options={"ftol": 1e-14, "maxiter": 1000},
    )
    assert ref.success
    np.testing.assert_allclose(w, ref.x, atol=1e-5)
    assert 0.5 * np.sum((a @ w - y.ravel()) ** 2) <= ref.fun + 1e-12


def test_sum_to_one_alone_equals_the_null_space_solution():
    x, y, a = _blur_problem(7, channels=2)
    res = kr.recover_kernel(x, y, (5, 4), constraints="sum_to_one")
    p = a.shape[1]
    w0 = np.full(p, 1.0 / p)
    null = scipy.linalg.null_space(np.ones((1, p)))
    v = np.linalg.lstsq(a @ null, y.ravel() - a @ w0, rcond=None)[0]
    np.testing.assert_allclose(res.kernel.ravel(), w0 + null @ v, atol=1e-10)
    assert res.kernel.min() < 0  # the bound is not imposed


def test_bias_is_free_and_equals_bounded_least_squares():
    x, y, a = _blur_problem(3)
    y = y + 0.7
    res = kr.recover_kernel(x, y, (5, 4), use_bias=True, constraints="nonnegative")
    ab = np.hstack([a, np.ones((len(a), 1))])
    bounds = (np.r_[np.zeros(a.shape[1]), -np.inf], np.full(a.shape[1] + 1, np.inf))
    ref = scipy.optimize.lsq_linear(ab, y.ravel(), bounds=bounds, method="bvls", tol=1e-14)
    np.testing.assert_allclose(np.r_[res.kernel.ravel(), res.bias], ref.x, atol=1e-9)


def test_several_outputs_and_groups_each_kernel_a_psf():
    rng = np.random.default_rng(11)
    x = rng.standard_normal((16, 16, 2))
    w = np.abs(rng.standard_normal((3, 3, 1, 2)))
    w /= w.sum(axis=(0, 1, 2))
    y = kr.conv(x, w, groups=2) + 0.01 * rng.standard_normal((14, 14, 2))
    res = kr.recover_kernel(x, y, (3, 3), groups=2, constraints=BOTH)
    np.testing.assert_allclose(res.kernel.sum(axis=(0, 1, 2)), 1.0, atol=1e-12)
    for o in range(2):  # each depthwise kernel is the PSF fit of its own channel
        a = _design(x[..., o : o + 1], (3, 3))
        _kkt(a, y[..., o].ravel(), res.kernel[..., o].ravel(), True, 1e-9)


def test_conditional_covariance_of_the_free_coefficients():
    x, y, a = _blur_problem(5, channels=1)
    res = kr.recover_kernel(x, y, (5, 4), constraints=BOTH)
    w = res.kernel.ravel()
    free = w > 0
    af = a[:, free]
    n = len(a)
    rss = np.sum((y.ravel() - a @ w) ** 2)
    sigma2 = rss / (n - (free.sum() - 1))
    null = scipy.linalg.null_space(np.ones((1, free.sum())))
    cov = sigma2 * null @ np.linalg.inv(null.T @ af.T @ af @ null) @ null.T
    np.testing.assert_allclose(res.stderr.ravel()[free], np.sqrt(np.diag(cov)), rtol=1e-8)
    assert np.all(res.stderr.ravel()[~free] == 0)
    assert "conditional on the active set" in res.diagnostics["covariance"]


def _explicit_laplacian(k, channels):
    """L's columns: scipy.ndimage.laplace of each basis kernel, zero outside (per channel)."""
    p = k[0] * k[1] * channels
    cols = []
    for j in range(p):
        e = np.zeros(p)
        e[j] = 1.0
        e = e.reshape(k + (channels,))
        cols.append(np.stack([scipy.ndimage.laplace(e[..., c], mode="constant") for c in range(channels)], -1))
    return np.stack([c.ravel() for c in cols], axis=1)


def test_laplacian_is_the_ndimage_stencil():
    np.testing.assert_array_equal(laplacian((5, 4), 2), _explicit_laplacian((5, 4), 2))


@pytest.mark.parametrize("use_bias", [False, True])
def test_smoothness_weight_equals_the_explicit_penalized_solution(use_bias):
    x, y, a = _blur_problem(2, channels=2, noise=0.3)
    lam = 3.7
    res = kr.recover_kernel(x, y, (5, 4), use_bias=use_bias, smoothness=lam)
    lap = _explicit_laplacian((5, 4), 2)
    ab = np.hstack([a, np.ones((len(a), 1))]) if use_bias else a
    pen = scipy.linalg.block_diag(lap.T @ lap, np.zeros((int(use_bias),) * 2))
    ref = np.linalg.solve(ab.T @ ab + lam * pen, ab.T @ y.ravel())
    got = np.r_[res.kernel.ravel(), res.bias] if use_bias else res.kernel.ravel()
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(res.options["smoothness"], [lam])


def test_smoothness_on_complex_signals_equals_the_hermitian_solution():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((12, 13)) + 1j * rng.standard_normal((12, 13))
    w = rng.standard_normal((3, 3)) + 1j * rng.standard_normal((3, 3))
    y = kr.conv(x, w[..., None, None]) + 0.1 * (rng.standard_normal((10, 11)) + 1j * rng.standard_normal((10, 11)))
    res = kr.recover_kernel(x, y, (3, 3), smoothness=0.5)
    a = sliding_window_view(x, (3, 3)).reshape(-1, 9)
    lap = _explicit_laplacian((3, 3), 1)
    ref = np.linalg.solve(a.conj().T @ a + 0.5 * lap.T @ lap, a.conj().T @ y.ravel())
    np.testing.assert_allclose(res.kernel.ravel(), ref, rtol=1e-9)
    with pytest.raises(ValueError, match="constraints.*complex"):
        kr.recover_kernel(x, y, (3, 3), constraints="nonnegative")


@pytest.mark.parametrize("use_bias", [False, True])
def test_gcv_weight_minimizes_the_explicit_criterion(use_bias):
    x, y, a = _blur_problem(9, noise=0.5, k=(4, 4), shape=(14, 14))
    res = kr.recover_kernel(x, y, (4, 4), use_bias=use_bias, smoothness="auto")
    chosen = float(res.options["smoothness"][0])
    assert res.diagnostics["smoothness"]["choice"] == "gcv"
    ab = np.hstack([a, np.ones((len(a), 1))]) if use_bias else a
    lap = _explicit_laplacian((4, 4), 1)
    pen = scipy.linalg.block_diag(lap.T @ lap, np.zeros((int(use_bias),) * 2))
    n = len(ab)

    def gcv(lam):
        hat = ab @ np.linalg.solve(ab.T @ ab + lam * pen, ab.T)
        r = y.ravel() - hat @ y.ravel()
        return n * (r @ r) / (n - np.trace(hat)) ** 2

    grid = chosen * 10.0 ** np.linspace(-3, 3, 241)
    values = np.array([gcv(v) for v in grid])
    assert gcv(chosen) <= values.min() * (1 + 1e-9)
    i = int(np.argmin(values))
    assert grid[max(i - 1, 0)] <= chosen * (1 + 1e-9) and chosen <= grid[min(i + 1, len(grid) - 1)] * (1 + 1e-9)
    assert 0 < i < len(grid) - 1  # an interior minimum: the criterion has one here
    # the weight is used: the solution is the explicit penalized one at it
    ref = np.linalg.solve(ab.T @ ab + chosen * pen, ab.T @ y.ravel())
    np.testing.assert_allclose(res.kernel.ravel(), ref[: a.shape[1]], rtol=1e-8, atol=1e-12)


def test_smoothness_with_constraints_is_penalized_nnls():
    x, y, a = _blur_problem(1, noise=0.3)
    res = kr.recover_kernel(x, y, (5, 4), smoothness="auto", constraints="nonnegative")
    lam = float(res.options["smoothness"][0])
    free = kr.recover_kernel(x, y, (5, 4), smoothness="auto")
    assert lam == pytest.approx(float(free.options["smoothness"][0]), rel=1e-12)  # chosen unconstrained
    lap = _explicit_laplacian((5, 4), 1)
    stacked = np.vstack([a, np.sqrt(lam) * lap])  # ||A w - y||^2 + lam ||L w||^2 as one NNLS
    ref, _ = scipy.optimize.nnls(stacked, np.r_[y.ravel(), np.zeros(len(lap))])
    np.testing.assert_allclose(res.kernel.ravel(), ref, atol=1e-9)


def test_active_set_matches_lsq_linear_on_random_quadratics():
    rng = np.random.default_rng(0)
    for _ in range(20):
        a = rng.standard_normal((30, 12))
        b = rng.standard_normal(30)
        qp = active_set_qp(a.T @ a, a.T @ b, nonnegative=True, sum_to_one=False)
        ref = scipy.optimize.lsq_linear(a, b, bounds=(0, np.inf), method="bvls", tol=1e-14)
        np.testing.assert_allclose(qp.w, ref.x, atol=1e-10)
        assert qp.converged


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"constraints": "positive"}, ValueError, "`constraints` must be 'nonnegative' or 'sum_to_one'"),
        ({"constraints": 3}, TypeError, "`constraints`"),
        ({"smoothness": -1.0}, ValueError, "`smoothness` must be"),
        ({"smoothness": "gcv"}, ValueError, "`smoothness` must be 'auto'"),
        ({"smoothness": "auto", "ridge": 1.0}, ValueError, "`ridge`.*`smoothness`"),
    ],
)
def test_bad_options_are_named(options, error, match):
    x, y, _ = _blur_problem(0)
    with pytest.raises(error, match=match):
        kr.recover_kernel(x, y, (5, 4), **options)


def test_unconstrained_path_is_unchanged():
    x, y, a = _blur_problem(8, channels=2)
    res = kr.recover_kernel(x, y, (5, 4))
    np.testing.assert_allclose(res.kernel.ravel(), np.linalg.lstsq(a, y.ravel(), rcond=None)[0], atol=1e-10)
    assert "constraints" not in res.options and "smoothness" not in res.options


def test_outputs_of_one_group_with_different_active_sets_have_no_shared_covariance():
    rng = np.random.default_rng(12)
    x = rng.standard_normal((16, 16))
    w = np.zeros((3, 3, 1, 2))
    w[1, :, 0, 0] = 1 / 3  # a horizontal and a vertical line: different supports
    w[:, 1, 0, 1] = 1 / 3
    y = kr.conv(x, w) + 0.05 * rng.standard_normal((14, 14, 2))
    res = kr.recover_kernel(x, y, (3, 3), constraints=BOTH)
    assert res.stderr is None
    assert res.diagnostics["covariance"].startswith("none: the output channels of a group")
    for o in range(2):  # each output is still its own PSF fit
        a = sliding_window_view(x, (3, 3)).reshape(-1, 9)
        _kkt(a, y[..., o].ravel(), res.kernel[..., 0, o].ravel(), True, 1e-9)
