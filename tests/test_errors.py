"""Bad input gets a clear ValueError/TypeError naming the argument; caller arrays are never modified."""

import numpy as np
import pytest

import kernel_recovery as kr

X = np.random.default_rng(0).standard_normal(20)
Y = kr.conv1d(X, [1.0, -1.0, 0.5])


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(kernel_size=0), ValueError, r"`kernel_size` must be >= 1, got 0"),
        (dict(kernel_size=-2), ValueError, r"`kernel_size` must be >= 1, got -2"),
        (dict(kernel_size=2.5), TypeError, r"`kernel_size` must be an integer, got 2.5"),
        (dict(kernel_size=True), TypeError, r"`kernel_size` must be an integer, got True"),
        (dict(kernel_size=None), TypeError, r"`kernel_size` must be an integer, got None"),
        (dict(kernel_size="3"), TypeError, r"`kernel_size` must be an integer, got '3'"),
        (dict(stride=0), ValueError, r"`stride` must be >= 1, got 0"),
        (dict(stride=1.0), TypeError, r"`stride` must be an integer"),
        (dict(dilation=-1), ValueError, r"`dilation` must be >= 1, got -1"),
        (dict(groups=0), ValueError, r"`groups` must be >= 1"),
        (dict(groups=2), ValueError, r"`in_channels` \(=1\) must be divisible by `groups` \(=2\)"),
        (dict(padding="sme"), ValueError, r"`padding` must be one of 'valid', 'same'.*got 'sme'"),
        (dict(padding=-1), ValueError, r"`padding` must be non-negative, got \(-1, -1\)"),
        (dict(padding=(1, 2, 3)), TypeError, r"`padding` must be"),
        (dict(padding=1.5), TypeError, r"`padding` must be"),
        (dict(layout="nhwc"), ValueError, r"`layout` must be 'nwc'.*got 'nhwc'"),
        (dict(use_bias="yes"), TypeError, r"`use_bias` must be True or False, got 'yes'"),
        (dict(flip=1), TypeError, r"`flip` must be True or False, got 1"),
        (dict(ridge=-1.0), ValueError, r"`ridge` must be >= 0 and finite, got -1.0"),
    ],
)
def test_invalid_settings(kwargs, exc, match):
    args = dict(kernel_size=3)
    args.update(kwargs)
    k = args.pop("kernel_size")
    with pytest.raises(exc, match=match):
        kr.recover_kernel(X, Y, k, **args)


def test_y_length_inconsistent_gives_expected_length():
    with pytest.raises(ValueError, match=r"`y` has 17 samples but 20 input samples with kernel_size=3 give 18 outputs"):
        kr.recover_kernel(X, Y[:-1], 3)
    with pytest.raises(ValueError, match=r"give 20 outputs"):
        kr.recover_kernel(X, Y, 3, padding="same")


def test_wrong_ndim_and_mismatched_batches():
    with pytest.raises(ValueError, match=r"`x` must be 1-D.*shape \(1, 2, 3, 4\)"):
        kr.recover_kernel(np.ones((1, 2, 3, 4)), Y, 3)
    with pytest.raises(ValueError, match=r"`x` and `y` must hold the same number of sequences, got 2 and 3"):
        kr.recover_kernel(np.ones((2, 10, 1)), np.ones((3, 8, 1)), 3)
    with pytest.raises(ValueError, match=r"same number of channels, got \[1, 2\]"):
        kr.recover_kernel([np.ones((10, 1)), np.ones((12, 2))], [np.ones(8), np.ones(10)], 3)
    with pytest.raises(ValueError, match=r"\(sequence 1\)"):
        kr.recover_kernel([np.ones(10), np.ones(12)], [np.ones(8), np.ones(9)], 3)


def test_too_short_input():
    with pytest.raises(ValueError, match=r"`x` has 2 samples, too short for kernel_size=3"):
        kr.recover_kernel([1.0, 2.0], [1.0], 3)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_and_inf(bad):
    x = X.copy()
    x[5] = bad
    with pytest.raises(ValueError, match=r"`x` contains 1 NaN or Inf value\(s\), the first at index \(5, 0\)"):
        kr.recover_kernel(x, Y, 3)
    y = Y.copy()
    y[2] = bad
    with pytest.raises(ValueError, match=r"`y` contains 1 NaN or Inf"):
        kr.recover_kernel(X, y, 3)


def test_empty_arrays():
    with pytest.raises(ValueError, match=r"`x` is empty"):
        kr.recover_kernel(np.array([]), np.array([]), 1)
    with pytest.raises(ValueError, match=r"`x` is empty"):
        kr.recover_kernel([], [], 1)
    with pytest.raises(ValueError, match=r"`x` has an empty batch"):
        kr.recover_kernel(np.ones((0, 5, 1)), np.ones((0, 3, 1)), 3)


@pytest.mark.parametrize(
    "x, match",
    [
        (np.array(["a", "b", "c"]), r"`x` must be a real numeric array, got dtype <U1"),
        (np.array([True, False, True]), r"`x` must be numeric, got dtype bool"),
        (np.array([1, "a", None], dtype=object), r"`x` must be a numeric array, got dtype object"),
    ],
)
def test_bad_dtypes(x, match):
    with pytest.raises(TypeError, match=match):
        kr.recover_kernel(x, Y[: max(len(x) - 2, 1)], 3)


def test_complex_sequences_take_the_grid_path_and_sequence_options_are_refused():
    """Complex x (once an error) is solved as a complex 1-D problem; keywords of real sequences are refused."""
    xc = X.astype(complex) * (1 + 1j)
    res = kr.recover_kernel(xc, kr.conv(xc, np.array([1.0, 2.0, 3.0])[:, None, None]), 3)
    np.testing.assert_allclose(res.kernel.ravel(), [1.0, 2.0, 3.0], atol=1e-10)
    with pytest.raises(ValueError, match=r"`lags` \(=\(0, 2\)\) applies to 1-D real sequences"):
        kr.recover_kernel(xc, xc, lags=(0, 2))
    with pytest.raises(ValueError, match=r"`nan_policy` \(='omit'\)"):
        kr.recover_kernel(xc, xc[:-2], 3, nan_policy="omit")


def test_y_required():
    with pytest.raises(TypeError, match=r"`y` is required"):
        kr.recover_kernel(X, None, 3)


def test_conv1d_bad_kernel_and_bias():
    with pytest.raises(ValueError, match=r"`kernel` must be \(kernel_size, in_channels // groups, out_channels\)"):
        kr.conv1d(X, np.ones((3, 1)))
    with pytest.raises(ValueError, match=r"kernel.shape\[1\] must be in_channels // groups = 2"):
        kr.conv1d(np.ones((10, 4)), np.ones((3, 4, 2)), groups=2)
    with pytest.raises(ValueError, match=r"`bias` must have shape \(out_channels,\) = \(2,\), got \(3,\)"):
        kr.conv1d(X, np.ones((3, 1, 2)), np.ones(3))
    with pytest.raises(ValueError, match=r"`out_channels` \(=3\) must be divisible by `groups` \(=2\)"):
        kr.conv1d(np.ones((10, 4)), np.ones((3, 2, 3)), groups=2)
    with pytest.raises(ValueError, match=r"`kernel` contains 1 NaN"):
        kr.conv1d(X, [1.0, np.nan])


def test_integer_and_float32_inputs_are_accepted(rng):
    x = rng.integers(-5, 5, 40)
    y = kr.conv1d(x, [2, -1, 3])
    res = kr.recover_kernel(x, y, 3)
    np.testing.assert_allclose(res.kernel.ravel(), [2, -1, 3], atol=1e-10)
    res32 = kr.recover_kernel(x.astype(np.float32), y.astype(np.float32), 3)
    assert res32.kernel.dtype == np.float64
    np.testing.assert_allclose(res32.kernel.ravel(), [2, -1, 3], atol=1e-4)


def test_read_only_and_non_contiguous_inputs(rng):
    x = rng.standard_normal((60, 4))[::2, ::2]  # non-contiguous view
    x.flags.writeable = False
    w = rng.standard_normal((3, 2, 1))
    y = kr.conv1d(x, w)
    y.flags.writeable = False
    res = kr.recover_kernel(x, y, 3)
    np.testing.assert_allclose(res.kernel, w, atol=1e-10)
