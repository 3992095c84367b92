"""The forward model against independent references: jax.lax.conv_general_dilated and scipy.signal."""

import numpy as np
import pytest
import scipy.signal
from hypothesis import given, settings
from hypothesis import strategies as st
from references import jax_conv1d

import kernel_recovery as kr


def tf_same_pads(length, k, stride, dilation):
    span = (k - 1) * dilation + 1
    out = -(-length // stride)
    total = max((out - 1) * stride + span - length, 0)
    return (total // 2, total - total // 2)


@st.composite
def configs(draw):
    groups = draw(st.integers(1, 3))
    cin = groups * draw(st.integers(1, 2))
    cout = groups * draw(st.integers(1, 2))
    k = draw(st.integers(1, 5))
    stride = draw(st.integers(1, 4))
    dilation = draw(st.integers(1, 4))
    padding = draw(st.sampled_from(["valid", "same", "causal", "full", "int", "pair"]))
    if padding == "int":
        padding = draw(st.integers(0, 4))
    elif padding == "pair":
        padding = (draw(st.integers(0, 4)), draw(st.integers(0, 4)))
    span = (k - 1) * dilation + 1
    length = draw(st.integers(span, span + 20))
    batch = draw(st.integers(1, 3))
    return dict(
        groups=groups,
        cin=cin,
        cout=cout,
        k=k,
        stride=stride,
        dilation=dilation,
        padding=padding,
        length=length,
        batch=batch,
        bias=draw(st.booleans()),
        layout=draw(st.sampled_from(["nwc", "ncw"])),
        flip=draw(st.booleans()),
        seed=draw(st.integers(0, 2**31)),
    )


def explicit_pads(c):
    k, d, p = c["k"], c["dilation"], c["padding"]
    span = (k - 1) * d + 1
    return {
        "valid": (0, 0),
        "causal": (span - 1, 0),
        "full": (span - 1, span - 1),
        "same": tf_same_pads(c["length"], k, c["stride"], d),
    }.get(p, p if isinstance(p, tuple) else (p, p))


@settings(max_examples=150, deadline=None)
@given(configs())
def test_conv1d_matches_jax(c):
    rng = np.random.default_rng(c["seed"])
    x = rng.standard_normal((c["batch"], c["length"], c["cin"]))
    w = rng.standard_normal((c["k"], c["cin"] // c["groups"], c["cout"]))
    b = rng.standard_normal(c["cout"]) if c["bias"] else None
    wj = w[::-1] if c["flip"] else w
    ref = jax_conv1d(x, wj, b, stride=c["stride"], padding=explicit_pads(c), dilation=c["dilation"], groups=c["groups"])
    xin = x if c["layout"] == "nwc" else x.transpose(0, 2, 1)
    out = kr.conv1d(
        xin,
        w,
        b,
        stride=c["stride"],
        padding=c["padding"],
        dilation=c["dilation"],
        groups=c["groups"],
        layout=c["layout"],
        flip=c["flip"],
    )
    if c["layout"] == "ncw":
        out = out.transpose(0, 2, 1)
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("dilation", [1, 2])
@pytest.mark.parametrize("length", [7, 8, 13])
def test_same_padding_is_tensorflows_rule(stride, dilation, length, rng):
    # jax's "SAME" string padding follows TensorFlow's rule (extra zero on the right)
    x = rng.standard_normal((2, length, 3))
    w = rng.standard_normal((4, 3, 2))
    ref = jax_conv1d(x, w, stride=stride, padding="SAME", dilation=dilation)
    out = kr.conv1d(x, w, stride=stride, padding="same", dilation=dilation)
    assert out.shape[1] == -(-length // stride)
    np.testing.assert_allclose(out, ref, atol=1e-12)


@pytest.mark.parametrize("mode", ["full", "valid"])
def test_flip_is_scipy_convolve(mode, rng):
    x = rng.standard_normal(50)
    w = rng.standard_normal(7)
    out = kr.conv1d(x, w, padding=mode, flip=True)
    np.testing.assert_allclose(out, scipy.signal.convolve(x, w, mode=mode), atol=1e-12)


@pytest.mark.parametrize("mode", ["full", "valid", "same"])
def test_no_flip_is_scipy_correlate(mode, rng):
    # scipy's "same" centres the output; with an odd kernel it equals TF's rule
    x = rng.standard_normal(40)
    w = rng.standard_normal(5)
    out = kr.conv1d(x, w, padding=mode)
    np.testing.assert_allclose(out, scipy.signal.correlate(x, w, mode=mode), atol=1e-12)


def test_causal_matches_lfilter(rng):
    x = rng.standard_normal(30)
    w = rng.standard_normal(4)
    np.testing.assert_allclose(
        kr.conv1d(x, w, padding="causal", flip=True), scipy.signal.lfilter(w, [1.0], x), atol=1e-12
    )


def test_ragged_batch_is_per_sequence(rng):
    xs = [rng.standard_normal((n, 2)) for n in (9, 15, 6)]
    w = rng.standard_normal((3, 2, 2))
    outs = kr.conv1d(xs, w, padding="same", stride=2)
    assert isinstance(outs, list) and len(outs) == 3
    for x, o in zip(xs, outs):
        np.testing.assert_allclose(o, kr.conv1d(x, w, padding="same", stride=2), atol=0)


def test_output_forms_and_dtypes():
    x32 = np.arange(10, dtype=np.float32)
    assert kr.conv1d(x32, np.ones(3, np.float32)).dtype == np.float32
    assert kr.conv1d(np.arange(10), np.ones(3, dtype=int)).dtype == np.float64
    assert kr.conv1d(np.arange(10.0), np.ones((3, 1, 2))).shape == (8, 2)
    assert kr.conv1d(np.ones((3, 10)), np.ones((3, 3, 2)), layout="ncw").shape == (2, 8)


def test_worked_example():
    # x=[0,3,4,5] with kernel [1,2]: [0+6, 3+8, 4+10]
    np.testing.assert_array_equal(kr.conv1d([0, 3, 4, 5], [1, 2]), [6.0, 11.0, 14.0])


@pytest.mark.parametrize(
    "stride, dilation, padding, groups", [(1, 1, "valid", 1), (3, 2, "same", 1), (2, 1, "full", 2), (1, 3, (5, 7), 2)]
)
def test_long_kernels_take_the_fft_path_and_match_jax(stride, dilation, padding, groups, rng):
    x = rng.standard_normal((2, 3000, 4))
    w = rng.standard_normal((40, 4 // groups, 4))
    b = rng.standard_normal(4)
    pads = {"valid": (0, 0), "full": (39 * dilation, 39 * dilation), "same": "SAME"}.get(padding, padding)
    ref = jax_conv1d(x, w, b, stride=stride, padding=pads, dilation=dilation, groups=groups)
    out = kr.conv1d(x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups)
    np.testing.assert_allclose(out, ref, rtol=1e-10, atol=1e-10)
