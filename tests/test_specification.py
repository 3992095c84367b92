"""The specification tests after every fit (diagnostics/specification.py, the checks in diagnostics/checks.py)."""

import warnings

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view
from scipy.signal import lfilter
from scipy.stats import binom, chi2

import kernel_recovery as kr
from kernel_recovery.diagnostics import specification
from kernel_recovery.model.operator import correlate_valid
from kernel_recovery.model.problem import build_problem
from kernel_recovery.solvers import lstsq


def _record(n=4000, k=16, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n + k - 1)
    w = rng.standard_normal(k) / np.sqrt(k)
    z = np.convolve(x, w[::-1], mode="valid")  # cross-correlation, as conv1d (scipy-free reference)
    return rng, x, w, z


def test_healthy_fit_is_not_warned_and_records_p_values():
    rng, x, w, z = _record()
    y = z + 0.1 * z.std() * rng.standard_normal(len(z))
    res = kr.recover_kernel(x, y, 16)  # filterwarnings=error: any warning fails
    spec = res.diagnostics["specification"]
    assert set(spec) == {"saturation", "missing_bias", "nonlinearity"}
    for entry in spec.values():
        assert 0 <= entry["p_value"][0] <= 1 and entry["p_value"][0] > 1e-3
    assert res.diagnostics["checks"]["nonlinearity"] == "checked"
    # the bias test's mean is the residual's mean (first ROWS equations; here all of them)
    resid = y - np.convolve(x, res.kernel.ravel()[::-1], mode="valid")
    assert spec["missing_bias"]["mean"][0] == pytest.approx(resid.mean(), rel=1e-8, abs=1e-12)


def test_clipped_sensor_is_warned_and_masking_recovers_the_kernel():
    rng, x, w, z = _record()
    lim = 0.6 * z.std()
    y = np.clip(z + 0.02 * z.std() * rng.standard_normal(len(z)), -lim, lim)
    with pytest.warns(kr.ModelMisfitWarning, match="nan_policy='omit'") as caught:
        res = kr.recover_kernel(x, y, 16)
    assert any("clipped, saturated or rectified" in str(c.message) for c in caught)
    assert res.success  # a misfit does not turn success False: the solver solved
    assert np.linalg.norm(res.kernel.ravel() - w) > 0.2 * np.linalg.norm(w)
    masked = np.where(np.abs(y) >= lim, np.nan, y)
    with warnings.catch_warnings():  # the kept samples are truncated near the limits: RESET may still see it
        warnings.simplefilter("ignore", kr.ModelMisfitWarning)
        fixed = kr.recover_kernel(x, masked, 16, nan_policy="omit")
    # reference: least squares on the explicit design rows of the unclipped samples
    rows = np.lib.stride_tricks.sliding_window_view(x, 16)[np.isfinite(masked)]
    ref = np.linalg.lstsq(rows, masked[np.isfinite(masked)], rcond=None)[0]
    np.testing.assert_allclose(fixed.kernel.ravel(), ref, rtol=1e-8, atol=1e-10)
    assert np.linalg.norm(fixed.kernel.ravel() - w) < 0.05 * np.linalg.norm(w)


def test_relu_output_is_warned():
    rng, x, w, z = _record(seed=1)
    y = np.maximum(z + 0.2 + 0.05 * z.std() * rng.standard_normal(len(z)), 0.0)
    with pytest.warns(kr.ModelMisfitWarning, match="equals 0 in"):
        kr.recover_kernel(x, y, 16, use_bias=True)


def test_quadratic_nonlinearity_is_warned():
    rng, x, w, z = _record(seed=2)
    z = z / z.std()
    y = z + 0.3 * z**2 + 0.05 * rng.standard_normal(len(z))
    with pytest.warns(kr.ModelMisfitWarning, match="RESET"):
        res = kr.recover_kernel(x, y, 16, use_bias=True)
    assert res.diagnostics["checks"]["nonlinearity"] == "flagged"
    assert res.diagnostics["specification"]["nonlinearity"]["p_value"][0] < 1e-3


def test_missing_bias_is_warned_and_use_bias_silences_it():
    rng, x, w, z = _record(seed=3)
    y = z + 3 * z.std() + 0.05 * z.std() * rng.standard_normal(len(z))
    with pytest.warns(kr.ModelMisfitWarning, match="use_bias=True"):
        kr.recover_kernel(x, y, 16)
    res = kr.recover_kernel(x, y, 16, use_bias=True)
    assert res.diagnostics["checks"]["missing_bias"].startswith("not needed")


def test_change_is_tested_above_the_exact_tests_size():
    rng, x, w, z = _record(k=50, seed=4)
    w2 = rng.standard_normal(50) / np.sqrt(50)
    half = len(z) // 2
    y = np.concatenate([z[:half], np.convolve(x, w2[::-1], mode="valid")[half:]])
    y = y + 0.05 * y.std() * rng.standard_normal(len(y))
    with pytest.warns(kr.ChangeWarning, match="changed near output sample"):
        res = kr.recover_kernel(x, y, 50)  # (the coloured residual is told by the change, not warned twice)
    assert abs(res.diagnostics["change"]["times"][0] - half) < 0.05 * len(y)


def test_coloured_residual_points_to_prewhiten_noise():
    rng, x, w, z = _record(n=8000, seed=5)
    noise = lfilter([1.0], [1.0, -0.9], rng.standard_normal(len(z)))
    y = z + 0.3 * z.std() * noise / noise.std()
    res = kr.recover_kernel(x, y, 16)  # coloured noise is not a misfit of the kernel: told, not warned
    assert res.diagnostics["checks"]["whiteness"] == "flagged"
    assert "prewhiten" in res.diagnostics["whiteness"]["message"]
    assert "standard errors" in res.diagnostics["whiteness"]["message"]


def test_an_all_zero_output_channel_is_not_called_clipped():
    # before: ModelMisfitWarning "y of output channel 1 equals 0 in 100% of its samples ... clipped" (the answer is 0)
    rng, x, w, z = _record(seed=7)
    y = np.stack([z + 0.05 * z.std() * rng.standard_normal(len(z)), np.zeros(len(z))], axis=1)
    res = kr.recover_kernel(x, y, 16)
    np.testing.assert_array_equal(res.kernel[..., 1], 0.0)
    assert res.diagnostics["checks"]["saturation"] == "checked"


# the statistics against explicit references (the textbook loops: a lstsq regression, Newey-West lag by lag, pinv)


def _newey_west_by_hand(u: list[np.ndarray], lags: int) -> np.ndarray:
    """``G_0 + sum_k (1 - k/(lags+1)) (G_k + G_k')`` lag by lag, within each sequence of ``(n_i, q)`` terms."""
    omega = sum(v.T @ v for v in u)
    for k in range(1, lags + 1):
        g = sum(v[k:].T @ v[:-k] for v in u if len(v) > k)
        if isinstance(g, np.ndarray):
            omega = omega + (1 - k / (lags + 1)) * (g + g.T)
    return omega


def _reset_by_hand(fitted: list[np.ndarray], resid: list[np.ndarray]) -> float:
    f = np.concatenate(fitted)
    g = [(fi - f.mean()) / f.std() for fi in fitted]
    z = [np.stack([np.ones_like(gi), gi, gi**2, gi**3], axis=1) for gi in g]
    allz = np.concatenate(z)
    coef = np.linalg.lstsq(allz[:, :2], allz[:, 2:], rcond=None)[0]
    u = [(zi[:, 2:] - zi[:, :2] @ coef) * e[:, None] for zi, e in zip(z, resid)]
    s = sum(v.sum(axis=0) for v in u)
    lags = max(1, min(int(np.ceil(len(f) ** (1 / 3))), len(f) // 5))
    return float(s @ np.linalg.pinv(_newey_west_by_hand(u, lags)) @ s)


@pytest.mark.parametrize("lengths", [(4000,), (300, 2, 1500, 40)])
def test_newey_west_matches_the_lag_by_lag_sum(lengths):
    rng = np.random.default_rng(10)
    u = [rng.standard_normal((m, 3)) + [0.0, 1.0, -2.0] for m in lengths]
    np.testing.assert_allclose(specification.newey_west(u, 7), _newey_west_by_hand(u, 7), rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("lengths", [(3000,), (700, 3, 2000)])
@pytest.mark.parametrize("quadratic", [0.0, 0.2])
def test_reset_matches_the_explicit_regression(lengths, quadratic):
    rng = np.random.default_rng(11)
    fitted = [rng.standard_normal(m) * 2 + 1 for m in lengths]
    resid = [0.1 * rng.standard_normal(m) + quadratic * (f - 1) ** 2 for m, f in zip(lengths, fitted)]
    stat, p = specification.reset_test(fitted, resid)
    ref = _reset_by_hand(fitted, resid)
    assert stat == pytest.approx(ref, rel=1e-9)
    assert p == pytest.approx(chi2.sf(ref, 2), rel=1e-8, abs=1e-300)
    assert (p < 1e-8) == (quadratic > 0)


@pytest.mark.parametrize("lengths", [(3000,), (700, 3, 2000)])
def test_bias_statistic_matches_the_explicit_sums(lengths):
    rng = np.random.default_rng(12)
    resid = [0.05 + rng.standard_normal(m) for m in lengths]
    mean, stat, p = specification.bias_test(resid)
    e = np.concatenate(resid)
    lags = max(1, min(int(np.ceil(len(e) ** (1 / 3))), len(e) // 5))
    omega = _newey_west_by_hand([r[:, None] for r in resid], lags)[0, 0]
    assert mean == pytest.approx(e.mean(), rel=1e-12)
    assert stat == pytest.approx(e.sum() ** 2 / omega, rel=1e-10)
    assert p == pytest.approx(chi2.sf(e.sum() ** 2 / omega, 1), rel=1e-8)


def _saturation_by_hand(y: np.ndarray) -> tuple[float, float, int]:
    """The smallest binomial p-value over min, max and 0 against the mode of the other values (via numpy.unique)."""
    values, counts = np.unique(y, return_counts=True)
    idx = {0, len(values) - 1} | ({int(np.flatnonzero(values == 0)[0])} if (values == 0).any() else set())
    others = np.delete(counts, sorted(idx))
    mode = others.max()
    ps = [binom.sf(counts[i] - 1, counts[i] + mode, 0.5) if counts[i] > mode else 1.0 for i in idx]
    return min(ps), float(counts[sorted(idx)].max() / len(y)), len(idx)


@pytest.mark.parametrize(
    "make",
    [
        lambda z: z,  # continuous: every candidate once (the path without a sort)
        lambda z: np.concatenate([[0.0], z]),  # one exact zero inside: still once
        lambda z: np.clip(z, -1.0, 1.5),  # clipped both sides
        lambda z: np.maximum(z, 0.0),  # rectified
        lambda z: np.round(z * 4) / 4,  # quantized: the limits rarer than the mode
    ],
)
def test_saturation_matches_the_counts(make):
    y = make(np.random.default_rng(13).standard_normal(3000))
    found = specification.saturation_test(y)
    p, share, tests = _saturation_by_hand(y)
    assert found["p_value"] == pytest.approx(p, rel=1e-10, abs=1e-300)
    assert found["tests"] == tests
    if p < 1:
        assert found["share"] == pytest.approx(share)


@pytest.mark.parametrize(
    "x_shape, settings",
    [
        ((3000,), {}),  # one channel: the np.convolve path
        ((3000,), {"use_bias": True}),
        ((3000, 4), {"groups": 2, "out_channels": 4}),  # two blocks, two outputs each: the forward pass
        (None, {}),  # a list of sequences, cut at the first 2000 equations across them
    ],
)
def test_block_rows_are_the_residual_of_the_first_equations(x_shape, settings):
    """The rows the specification tests and the whiteness check read: y minus the explicit design rows (numpy
    windows) times the solution's kernel, the first ``rows`` equations in order over the sequences."""
    rng = np.random.default_rng(14)
    k = 5
    x_in: list[np.ndarray] | np.ndarray
    y_in: list[np.ndarray] | np.ndarray
    if x_shape is None:
        x_in = [rng.standard_normal(m) for m in (700, 1500, 900)]
        y_in = [rng.standard_normal(len(x) - k + 1) for x in x_in]
    else:
        x_in = rng.standard_normal(x_shape)
        y_in = rng.standard_normal((x_shape[0] - k + 1, settings.get("out_channels", 1)))
    problem = build_problem(x_in, y_in, k, **settings)
    sol = lstsq.solve(problem)
    for b, block in enumerate(problem.blocks):
        rows = specification.block_rows(problem, sol, b, 2000)
        assert rows is not None and block.ys is not None
        fitted = [np.einsum("mck,kco->mo", sliding_window_view(x, k, axis=0), sol.kernels[b]) for x in block.xs]
        if sol.biases is not None:
            fitted = [f + sol.biases[b] for f in fitted]
        ref_y = np.concatenate(block.ys)[:2000]
        ref_e = ref_y - np.concatenate(fitted)[:2000]
        np.testing.assert_allclose(rows.resid, ref_e.T, rtol=1e-10, atol=1e-12)
        np.testing.assert_array_equal(rows.y, ref_y.T)
        assert sum(rows.lengths) == rows.n == 2000
        head = rows.head(800)
        np.testing.assert_array_equal(head.resid, rows.resid[:, :800])
        assert sum(head.lengths) == 800 and head.lengths[0] == min(800, rows.lengths[0])


@pytest.mark.parametrize("taps", [1, 11, 12, 16, 23, 32, 33, 34, 40])
def test_sampled_correlation_in_pieces_is_numpy_correlate(taps):
    """The forward pass of the sampled rows: kernels of 12..33 taps correlated in pieces of at most 11 taps."""
    rng = np.random.default_rng(15)
    x, w = rng.standard_normal(3000 + taps - 1), rng.standard_normal(taps)
    ref = np.correlate(x, w, mode="valid")
    np.testing.assert_allclose(correlate_valid(x, w), ref, rtol=0, atol=1e-13 * np.abs(ref).max())


@pytest.mark.parametrize("k", [12, 16, 32, 40])
def test_block_rows_of_a_long_single_channel_kernel_are_its_residual(k):
    """One channel, one record: the fitted values of the first rows (pieces of the kernel, or numpy's loop beyond
    33 taps) against the explicit design rows times the kernel."""
    rng = np.random.default_rng(16)
    x = rng.standard_normal(6000)
    y = rng.standard_normal(6000 - k + 1)
    problem = build_problem(x, y, k)
    sol = lstsq.solve(problem)
    rows = specification.block_rows(problem, sol, 0, 4096)
    assert rows is not None and rows.lengths == (4096,)
    ref_e = y[:4096] - sliding_window_view(x, k)[:4096] @ sol.kernels[0][:, 0, 0]
    np.testing.assert_allclose(rows.resid[0], ref_e, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(rows.y[0], y[:4096])


@pytest.mark.parametrize("lengths", [(3000,), (700, 3, 2000), (60,)])
@pytest.mark.parametrize("offset", [0.0, 0.05, 10.0])
def test_bias_statistic_from_the_centred_products_matches_the_explicit_sums(lengths, offset):
    """The bias test reading the centred residual's products (shared with the whiteness check): the same Newey-West
    variance of the uncentred residual, whatever its mean."""
    rng = np.random.default_rng(17)
    resid = [offset + rng.standard_normal(m) for m in lengths]
    e = np.concatenate(resid)
    lags = max(1, min(int(np.ceil(len(e) ** (1 / 3))), len(e) // 5))
    for extra in (0, 5):  # products over exactly the test's lags, or more (the whiteness check's)
        products = specification.centred_products(e, lengths, lags + extra)
        centred = [r - e.mean() for r in resid]
        gamma = [sum(float(c[k:] @ c[: len(c) - k]) for c in centred if len(c) > k) for k in range(lags + extra + 1)]
        assert products[0] == pytest.approx(e.sum(), rel=1e-12, abs=1e-12)
        np.testing.assert_allclose(products[1], gamma, rtol=1e-12, atol=1e-10)
        mean, stat, p = specification.bias_statistic(e, lengths, products)
        omega = _newey_west_by_hand([r[:, None] for r in resid], lags)[0, 0]
        assert mean == pytest.approx(e.mean(), rel=1e-12)
        assert stat == pytest.approx(e.sum() ** 2 / omega, rel=1e-10)
        assert p == pytest.approx(chi2.sf(e.sum() ** 2 / omega, 1), rel=1e-8, abs=1e-300)
        assert (mean, stat, p) == pytest.approx(specification.bias_statistic(e, lengths), rel=1e-12, abs=1e-300)
