"""``prewhiten="input" | "noise"``: one AR filter on x and y commutes with the convolution (the kernel stays), and
the noise version (two-step generalized least squares) beats ordinary least squares under coloured noise."""

import warnings

import numpy as np
import pytest
import scipy.signal

import kernel_recovery as kr

CONFIGS = [
    dict(),
    dict(stride=2, padding="same"),
    dict(dilation=3, padding="causal", use_bias=True),
    dict(groups=2, use_bias=True),
    dict(lags=(-2, 5), flip=True),
]


@pytest.mark.parametrize("config", CONFIGS, ids=[str(c) for c in CONFIGS])
@pytest.mark.parametrize("how", ["input", "noise"])
def test_noiseless_kernel_is_unchanged_by_the_filter(config, how):
    rng = np.random.default_rng(0)
    x = scipy.signal.lfilter([1.0], [1.0, -0.9], rng.standard_normal((600, 2)), axis=0)  # coloured input
    config = dict(config)
    lags = config.pop("lags", None)
    k = None if lags else 4
    cin = 2 // config.get("groups", 1)
    w = rng.standard_normal((lags[1] - lags[0] + 1 if lags else 4, cin, 2))
    bias = np.array([0.5, -1.0]) if config.get("use_bias") else None
    y = kr.conv1d(x, w, bias, lags=lags, **{c: v for c, v in config.items() if c != "use_bias"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", kr.NonCausalWarning)  # exact fits at negative lags are "significant"
        res = kr.recover_kernel(x, y, k, lags=lags, prewhiten=how, **config)
    np.testing.assert_allclose(res.kernel, w, atol=1e-8)
    if bias is not None:
        np.testing.assert_allclose(res.bias, bias, atol=1e-8)
    info = res.diagnostics["prewhiten"]
    assert info["method"] == how and info["order"] == 10 and len(info["filters"]) == config.get("groups", 1)


def test_noise_prewhitening_is_more_accurate_under_coloured_noise():
    rng = np.random.default_rng(1)
    w = rng.standard_normal(16)
    mse = {None: 0.0, "noise": 0.0}
    for _ in range(30):
        x = rng.standard_normal(4000)
        e = 0.5 * scipy.signal.lfilter([1.0], [1.0, -0.95], rng.standard_normal(4000))
        y = scipy.signal.lfilter(w, [1.0], x) + e
        for how in mse:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", kr.ChangeWarning)
                res = kr.recover_kernel(x, y, 16, padding="causal", flip=True, prewhiten=how)
            mse[how] += np.sum((res.kernel.ravel() - w) ** 2)
    assert mse["noise"] < 0.5 * mse[None]  # measured: 0.29x
    assert res.diagnostics["checks"]["whiteness"] == "checked"  # the filtered residual is white


def test_bad_prewhiten_is_named():
    x = np.random.default_rng(2).standard_normal(100)
    with pytest.raises(ValueError, match="`prewhiten` must be 'input' or 'noise', got 'white'"):
        kr.recover_kernel(x, x[:98], 3, prewhiten="white")
    with pytest.raises(ValueError, match="needs the data in memory"):
        kr.recover_kernel(iter([(x, x[:98])]), None, 3, prewhiten="noise")


@pytest.mark.parametrize("how", ["input", "noise"])
def test_a_record_too_short_for_the_filter_is_a_clear_error(how):
    # before: numpy's "window shape cannot be larger than input array shape", naming no argument
    x = np.random.default_rng(0).standard_normal(12)
    y = kr.conv1d(x, [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"`prewhiten`=.*AR\(10\).*10 equations: none would be left"):
        kr.recover_kernel(x, y, 3, prewhiten=how)
