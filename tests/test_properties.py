"""Symmetries every method must respect (hypothesis): flip, layout, channel order, scaling, groups; the round trip
``recover_kernel(x, conv1d(x, w)) == w`` across random configurations (checked against JAX), invariance to the
scales of x and y and to the order of the batch, and adam's determinism for a seed.
"""

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from references import ADAM, METHODS, config_data, conv_configs, jax_conv1d

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
    [c for c in CASES if "ridge" not in c[1]],
    ids=[i for i, c in zip(IDS, CASES) if "ridge" not in c[1]],
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


# ------------------------------------------------------------------------------------------------
# Round trips over random configurations, invariances of every method, adam's determinism for a seed
# ------------------------------------------------------------------------------------------------


def _check_round_trip(c, method, opts, atol):
    x, y, w, b, conf = config_data(c)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", kr.IllConditionedWarning)  # a rare badly conditioned draw
        res = kr.recover_kernel(x, y, c["k"], method=method, **conf, **opts)
    np.testing.assert_allclose(res.kernel, w, atol=atol)
    if b is not None:
        np.testing.assert_allclose(res.bias, b, atol=atol)
    assert res.diagnostics["misconfiguration"] is None
    # independent forward check of the recovered kernel (JAX), in NWC
    if c["padding"] == "valid" and not c["flip"] and c["layout"] == "nwc":
        ref = jax_conv1d(x, res.kernel, res.bias, stride=c["stride"], dilation=c["dilation"], groups=c["groups"])
        np.testing.assert_allclose(ref, y, atol=10 * atol)


@settings(max_examples=60, deadline=None)
@given(conv_configs())
def test_round_trip_lstsq(c):
    _check_round_trip(c, "lstsq", {}, 1e-8)


@settings(max_examples=30, deadline=None)
@given(conv_configs())
def test_round_trip_fft(c):
    _check_round_trip(c, "fft", {"wiener": False}, 1e-7)


@settings(max_examples=6, deadline=None)
@given(conv_configs())
def test_round_trip_adam(c):
    _check_round_trip(c, "adam", dict(ADAM, max_iter=1500), 1e-4)


@pytest.mark.parametrize("method", list(METHODS))
@settings(max_examples=4, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    cx=st.sampled_from([0.25, 0.5, 2.0, 8.0]),
    cy=st.sampled_from([-3.0, 0.5, 4.0]),
    padding=st.sampled_from(["same", "causal", "valid"]),
)
def test_invariances(method, seed, cx, cy, padding):
    """x -> cx x scales the kernel by 1/cx; y -> cy y scales kernel and bias by cy; permuting the batch changes
    nothing.  Noisy data, so these are properties of the estimator, not only of exact fits."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((3, 50, 2))
    w = rng.standard_normal((3, 2, 1))
    y = kr.conv1d(x, w, [0.3], padding=padding) + 0.1 * rng.standard_normal((3, 50 if padding != "valid" else 48, 1))
    opts = dict(METHODS[method], use_bias=True, padding=padding)
    tol = dict(rtol=1e-8, atol=1e-10)
    if method == "adam":
        # Adam's steps have an absolute size (learning_rate), so it reaches a kernel scaled by cy / cx in a
        # different number of steps: its invariances hold to its convergence accuracy, relative to the kernel
        opts["max_iter"] = 1500
        tol = dict(rtol=0, atol=2e-3 * max(1.0, abs(cy), 1 / cx) * np.abs(w).max())
    base = kr.recover_kernel(x, y, 3, method=method, **opts)
    sx = kr.recover_kernel(cx * x, y, 3, method=method, **opts)
    np.testing.assert_allclose(sx.kernel * cx, base.kernel, **tol)
    np.testing.assert_allclose(sx.bias, base.bias, **tol)
    sy = kr.recover_kernel(x, cy * y, 3, method=method, **opts)
    np.testing.assert_allclose(sy.kernel, cy * base.kernel, **tol)
    np.testing.assert_allclose(sy.bias, cy * base.bias, **tol)
    perm = rng.permutation(3)
    pb = kr.recover_kernel(x[perm], y[perm], 3, method=method, **opts)
    np.testing.assert_allclose(pb.kernel, base.kernel, **tol)
    lb = kr.recover_kernel([x[i] for i in perm], [y[i] for i in perm], 3, method=method, **opts)
    np.testing.assert_allclose(lb.kernel, base.kernel, **tol)


@settings(max_examples=3, deadline=None)
@given(seed=st.integers(0, 2**31), batch_size=st.sampled_from([None, 16]))
def test_adam_is_deterministic_for_a_seed(seed, batch_size):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(80)
    y = kr.conv1d(x, [1.0, -2.0, 0.5]) + 0.05 * rng.standard_normal(78)
    opts = dict(method="adam", max_iter=60, seed=seed, batch_size=batch_size)
    a, b = kr.recover_kernel(x, y, 3, **opts), kr.recover_kernel(x, y, 3, **opts)
    np.testing.assert_array_equal(a.kernel, b.kernel)
    np.testing.assert_array_equal(a.loss_history, b.loss_history)
