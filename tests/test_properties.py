"""Symmetries every method must respect (hypothesis): flip, layout, channel order, scaling, groups."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kernel_recovery as kr

#: (method, options, relative tolerance): every least-squares option, the spectral method and gradient descent.
CASES = [
    ("lstsq", {}, 1e-8),
    ("lstsq", {"ridge": 0.5}, 1e-8),
    ("lstsq", {"regularization": "gcv"}, 1e-6),
    ("lstsq", {"regularization": "tc"}, 1e-5),
    ("lstsq", {"regularization": "dc"}, 1e-4),
    ("fft", {}, 1e-6),
    ("adam", {"max_iter": 3000, "seed": 0}, 1e-3),
]
IDS = [f"{m}-{next(iter(o.values()), 'plain')}" for m, o, _ in CASES]


def data(seed, taps, cin, cout, n=160, bias=False):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, cin))
    w = 0.8 ** np.arange(taps)[:, None, None] * rng.standard_normal((taps, cin, cout))
    y = kr.conv1d(x, w, rng.standard_normal(cout) if bias else None) + 0.1 * rng.standard_normal((n - taps + 1, cout))
    return x, y


def fit(x, y, taps, method, options, **kw):
    import warnings

    with warnings.catch_warnings():  # (post-fit checks may flag random data; the symmetries are the point here)
        warnings.simplefilter("ignore")
        return kr.recover_kernel(x, y, taps, method=method, **options, **kw)


def close(a, b, tol):
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol * max(np.abs(b).max(), 1e-300))


seeds = st.integers(0, 2**16)
common = settings(max_examples=4, deadline=None)


@pytest.mark.parametrize("method,options,tol", CASES, ids=IDS)
@common
@given(seed=seeds, taps=st.integers(2, 6))
def test_flip_mirrors_the_kernel(method, options, tol, seed, taps):
    x, y = data(seed, taps, 2, 1)
    close(fit(x, y, taps, method, options, flip=True).kernel[::-1], fit(x, y, taps, method, options).kernel, tol)


@pytest.mark.parametrize("method,options,tol", CASES, ids=IDS)
@common
@given(seed=seeds, taps=st.integers(2, 6))
def test_ncw_transposes(method, options, tol, seed, taps):
    x, y = data(seed, taps, 2, 2)
    close(fit(x.T, y.T, taps, method, options, layout="ncw").kernel, fit(x, y, taps, method, options).kernel, tol)


@pytest.mark.parametrize("method,options,tol", CASES, ids=IDS)
@common
@given(seed=seeds, taps=st.integers(2, 5))
def test_permuting_inputs_permutes_the_kernel(method, options, tol, seed, taps):
    x, y = data(seed, taps, 3, 1)
    perm = [2, 0, 1]
    close(fit(x[:, perm], y, taps, method, options).kernel, fit(x, y, taps, method, options).kernel[:, perm], tol)


@pytest.mark.parametrize(
    "method,options,tol",
    [c for c in CASES if "ridge" not in c[1] and c[0] != "adam"],
    ids=[i for i, c in zip(IDS, CASES) if "ridge" not in c[1] and c[0] != "adam"],
)
@common
@given(seed=seeds, taps=st.integers(2, 5), a=st.sampled_from([0.01, 3.0, 250.0]))
def test_scaling_x_scales_the_kernel_inversely(method, options, tol, seed, taps, a):
    # (a fixed ridge is not scale-free: its strength is in the units of x)
    x, y = data(seed, taps, 2, 1)
    close(fit(a * x, y, taps, method, options).kernel * a, fit(x, y, taps, method, options).kernel, 10 * tol)


@pytest.mark.parametrize(
    "method,options,tol",
    [c for c in CASES if "ridge" not in c[1]],
    ids=[i for i, c in zip(IDS, CASES) if "ridge" not in c[1]],
)
@common
@given(seed=seeds, taps=st.integers(2, 5), a=st.sampled_from([-2.0, 0.1, 40.0]), b=st.floats(-5, 5))
def test_affine_outputs_scale_the_kernel_and_map_the_bias(method, options, tol, seed, taps, a, b):
    if method == "fft":
        return  # (no bias in the spectral method's model)
    x, y = data(seed, taps, 2, 1, bias=True)
    ref = fit(x, y, taps, method, options, use_bias=True)
    res = fit(x, a * y + b, taps, method, options, use_bias=True)
    close(res.kernel, a * ref.kernel, 10 * tol)
    close(res.bias, a * ref.bias + b, 10 * tol)


@pytest.mark.parametrize("method,options,tol", CASES, ids=IDS)
@common
@given(seed=seeds, taps=st.integers(2, 5))
def test_groups_equal_separate_fits(method, options, tol, seed, taps):
    x, y = data(seed, taps, 4, 2)
    x, y = x, y  # groups=2: inputs 0-1 -> output 0, inputs 2-3 -> output 1
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((taps, 2, 2))
    y = kr.conv1d(x, w, groups=2) + 0.1 * rng.standard_normal(y.shape)
    res = fit(x, y, taps, method, options, groups=2).kernel
    for g in range(2):
        one = fit(x[:, 2 * g : 2 * g + 2], y[:, g : g + 1], taps, method, options).kernel
        close(res[:, :, g : g + 1], one, tol)
