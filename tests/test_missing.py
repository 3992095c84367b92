"""nan_policy='omit': equations with missing samples are dropped exactly."""

import numpy as np
import pytest
from test_recover import explicit_design

import kernel_recovery as kr


def test_omit_matches_explicit_lstsq_without_the_missing_rows(rng):
    x = rng.standard_normal(80)
    y = kr.conv1d(x, [0.5, -1.0, 2.0], padding=(1, 2), stride=2) + 0.05 * rng.standard_normal(41)
    y[[3, 17, 18, 30]] = np.nan
    x_nan = x.copy()
    x_nan[50] = np.nan  # input sample 50 is read by outputs t with 2t + j - 1 = 50, j in 0..2: t = 25 (j=1)
    a = explicit_design(x, 3, stride=2, left=1, right=2)
    keep = ~np.isnan(y)
    keep[25] = False
    ref = np.linalg.lstsq(a[keep], y[keep], rcond=None)[0]
    res = kr.recover_kernel(x_nan, y, 3, padding=(1, 2), stride=2, nan_policy="omit")
    np.testing.assert_allclose(res.kernel.ravel(), ref, rtol=1e-12)
    np.testing.assert_allclose(res.residual_rms, np.sqrt(np.mean((a[keep] @ ref - y[keep]) ** 2)), rtol=1e-12)


def test_omit_per_channel_patterns_round_trip(rng):
    x = rng.standard_normal((200, 2))
    w = rng.standard_normal((4, 2, 3))
    y = kr.conv1d(x, w, dilation=3, stride=2, padding="same")
    y[5, 1] = np.nan
    y[40:50] = np.nan
    x[100, 0] = np.nan
    res = kr.recover_kernel(x, y, 4, dilation=3, stride=2, padding="same", nan_policy="omit")
    np.testing.assert_allclose(res.kernel, w, atol=1e-10)


def test_nan_without_omit_says_how_many_and_where():
    y = np.ones(8)
    y[[2, 5]] = np.nan
    with pytest.raises(
        ValueError, match=r"`y` contains 2 NaN or Inf value\(s\), the first at index \(2, 0\).*nan_policy='omit'"
    ):
        kr.recover_kernel(np.arange(10.0), y, 3)


def test_inf_is_refused_even_with_omit():
    y = np.ones(8)
    y[1] = np.inf
    with pytest.raises(ValueError, match=r"`y` contains 1 Inf"):
        kr.recover_kernel(np.arange(10.0), y, 3, nan_policy="omit")


def test_bad_nan_policy():
    with pytest.raises(ValueError, match=r"`nan_policy` must be 'raise' or 'omit', got 'drop'"):
        kr.recover_kernel(np.arange(10.0), np.ones(8), 3, nan_policy="drop")
