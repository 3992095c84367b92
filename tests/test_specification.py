"""The specification tests after every fit (diagnostics/specification.py, the checks in diagnostics/checks.py)."""

import warnings

import numpy as np
import pytest
from scipy.signal import lfilter

import kernel_recovery as kr


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
