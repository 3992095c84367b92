"""Export to PyTorch, Keras and SciPy: a random layer's outputs go through recover_kernel and the export,
and the rebuilt layer reproduces the original layer's outputs on fresh inputs."""

import os
import sys

import numpy as np
import pytest
import scipy.signal
from references import jax_conv1d

import kernel_recovery as kr
from kernel_recovery.export import to_keras, to_scipy, to_torch

# (kernel_size, in, out, stride, padding, dilation, groups, bias)
TORCH_CONFIGS = [
    (5, 3, 2, 1, 0, 1, 1, True),
    (4, 2, 3, 2, 2, 3, 1, False),
    (4, 4, 6, 1, "same", 2, 2, True),
    (3, 2, 2, 3, (1, 4), 1, 1, True),
    (3, 3, 3, 1, "causal", 2, 3, False),
]


def _torch_forward(torch, layer, x, padding, span):
    """The layer, with the padding PyTorch cannot express (causal, asymmetric) applied by hand."""
    if padding == "causal":
        x = torch.nn.functional.pad(x, (span - 1, 0))
    elif isinstance(padding, tuple):
        x = torch.nn.functional.pad(x, padding)
    return layer(x)


def _torch_layer(torch, k, cin, cout, stride, padding, dilation, groups, bias):
    torch_padding = padding if isinstance(padding, int) or padding == "same" else 0
    return torch.nn.Conv1d(cin, cout, k, stride=stride, padding=torch_padding, dilation=dilation, groups=groups,
                           bias=bias, dtype=torch.float64)


@pytest.mark.parametrize("flip", [False, True])
@pytest.mark.parametrize("config", TORCH_CONFIGS, ids=[str(c) for c in TORCH_CONFIGS])
def test_torch_layer_reproduced(config, flip):
    torch = pytest.importorskip("torch")
    k, cin, cout, stride, padding, dilation, groups, bias = config
    span = (k - 1) * dilation + 1
    torch.manual_seed(sum(map(hash, map(str, config))) % 2**31)
    layer = _torch_layer(torch, k, cin, cout, stride, padding, dilation, groups, bias)
    if bias:
        torch.nn.init.normal_(layer.bias)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(3, cin, 80, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        y = _torch_forward(torch, layer, x, padding, span)
    res = kr.recover_kernel(x.numpy(), y.numpy(), k, stride=stride, padding=padding, dilation=dilation,
                            groups=groups, use_bias=bias, layout="ncw", flip=flip)
    assert res.report.ok
    state = res.to_torch(dtype=torch.float64)
    assert set(state) == ({"weight", "bias"} if bias else {"weight"})
    np.testing.assert_allclose(state["weight"].numpy(), layer.weight.detach().numpy(), atol=1e-10)
    if flip:  # the recovered true-convolution kernel is the layer's weight reversed along its taps
        np.testing.assert_allclose(res.kernel, layer.weight.detach().numpy().transpose(2, 1, 0)[::-1], atol=1e-10)
    rebuilt = _torch_layer(torch, k, cin, cout, stride, padding, dilation, groups, bias)
    rebuilt.load_state_dict(state)
    x_new = torch.randn(2, cin, 57, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        expected = _torch_forward(torch, layer, x_new, padding, span).numpy()
        got = _torch_forward(torch, rebuilt, x_new, padding, span).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-10)


def test_torch_default_dtype_loads_into_a_float32_layer():
    torch = pytest.importorskip("torch")
    res = kr.recover_kernel([0.0, 3.0, 4.0, 5.0], [6.0, 11.0, 14.0], kernel_size=2)
    state = to_torch(res)
    assert state["weight"].dtype == torch.get_default_dtype() and state["weight"].shape == (1, 1, 2)
    layer = torch.nn.Conv1d(1, 1, 2, bias=False)
    layer.load_state_dict(state)
    with torch.no_grad():
        out = layer(torch.tensor([[[0.0, 3.0, 4.0, 5.0]]]))
    np.testing.assert_allclose(out.numpy().ravel(), [6.0, 11.0, 14.0], rtol=1e-6)


# (kernel_size, in, out, strides, padding, dilation, groups, bias)
KERAS_CONFIGS = [
    (5, 3, 2, 2, "valid", 1, 1, True),
    (4, 2, 3, 3, "same", 1, 1, True),
    (3, 4, 4, 1, "causal", 2, 2, False),
    (6, 2, 2, 1, "same", 3, 1, True),
]


@pytest.fixture(scope="module")
def keras():
    os.environ["KERAS_BACKEND"] = "jax"
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "jax":
        pytest.skip(f"keras was already imported with the {keras.backend.backend()} backend")
    return keras


@pytest.mark.parametrize("flip", [False, True])
@pytest.mark.parametrize("config", KERAS_CONFIGS, ids=[str(c) for c in KERAS_CONFIGS])
def test_keras_layer_reproduced(keras, config, flip):
    k, cin, cout, strides, padding, dilation, groups, bias = config

    def layer(seed):
        return keras.layers.Conv1D(
            cout, k, strides=strides, padding=padding, dilation_rate=dilation, groups=groups, use_bias=bias,
            kernel_initializer=keras.initializers.RandomNormal(seed=seed),
            bias_initializer=keras.initializers.RandomNormal(seed=seed + 1),
        )

    def weights_of(lay):  # not get_weights(): keras' Variable.numpy() trips numpy 2's copy deprecation
        return [np.asarray(v.value) for v in lay.weights]

    rng = np.random.default_rng(3)
    original = layer(7)
    x = rng.standard_normal((3, 90, cin)).astype("float32")
    y = np.asarray(original(x))
    res = kr.recover_kernel(x, y, k, stride=strides, padding=padding, dilation=dilation, groups=groups,
                            use_bias=bias, flip=flip)
    assert res.report.ok
    weights = res.to_keras()
    assert [w.shape for w in weights] == [w.shape for w in weights_of(original)]
    assert all(w.dtype == np.float32 for w in weights)
    rebuilt = layer(99)
    rebuilt.build((None, None, cin))
    rebuilt.set_weights(weights)
    for got, want in zip(weights_of(rebuilt), weights_of(original)):
        np.testing.assert_allclose(got, want, atol=1e-5)
    x_new = rng.standard_normal((2, 61, cin)).astype("float32")
    np.testing.assert_allclose(np.asarray(rebuilt(x_new)), np.asarray(original(x_new)), atol=1e-4)


# (kernel_size, in, out, stride, padding, dilation, groups, bias)
SCIPY_CONFIGS = [
    (4, 1, 1, 1, "valid", 1, 1, False),
    (4, 1, 1, 1, "full", 1, 1, True),
    (5, 2, 3, 2, "same", 2, 1, True),
    (3, 4, 2, 3, "causal", 1, 2, False),
    (4, 2, 4, 2, (3, 1), 3, 2, True),
]


def _pads(padding, length, k, stride, dilation):
    span = (k - 1) * dilation + 1
    if padding == "valid":
        return (0, 0)
    if padding == "full":
        return (span - 1, span - 1)
    if padding == "causal":
        return (span - 1, 0)
    if padding == "same":
        total = max((-(-length // stride) - 1) * stride + span - length, 0)
        return (total // 2, total - total // 2)
    return padding


@pytest.mark.parametrize("flip", [False, True])
@pytest.mark.parametrize("config", SCIPY_CONFIGS, ids=[str(c) for c in SCIPY_CONFIGS])
def test_scipy_convolve_reproduces_the_outputs(config, flip, rng):
    k, cin, cout, stride, padding, dilation, groups, bias = config
    kernel = rng.standard_normal((k, cin // groups, cout))
    b = rng.standard_normal(cout) if bias else None
    x = rng.standard_normal((70, cin))
    pads = _pads(padding, len(x), k, stride, dilation)
    # the data come from jax (cross-correlation): with flip=True the same data mean the reversed kernel
    y = jax_conv1d(x[None], kernel, b, stride=stride, padding=pads, dilation=dilation, groups=groups)[0]
    res = kr.recover_kernel(x, y, k, stride=stride, padding=padding, dilation=dilation, groups=groups,
                            use_bias=bias, flip=flip)
    h = res.to_scipy()
    np.testing.assert_array_equal(h, to_scipy(res))
    span = (k - 1) * dilation + 1
    assert h.shape == ((span,) if cin == cout == 1 else (span, cin // groups, cout))
    h3 = h.reshape(span, cin // groups, cout)
    xpad = np.pad(x, (pads, (0, 0)))
    rebuilt = np.zeros_like(y)
    out_per_group, in_per_group = cout // groups, cin // groups
    for o in range(cout):
        g = o // out_per_group
        for c in range(in_per_group):
            rebuilt[:, o] += scipy.signal.convolve(xpad[:, g * in_per_group + c], h3[:, c, o], mode="valid")[::stride]
        rebuilt[:, o] += 0.0 if b is None else b[o]
    np.testing.assert_allclose(rebuilt, y, atol=1e-10)


def test_scipy_single_channel_is_numpy_convolve():
    h_true = np.array([1.0, -2.0, 0.5])
    x = np.random.default_rng(5).standard_normal(40)
    y = np.convolve(x, h_true)  # full true convolution
    res = kr.recover_kernel(x, y, 3, padding="full", flip=True)
    np.testing.assert_allclose(res.to_scipy(), h_true, atol=1e-12)
    res = kr.recover_kernel(x, y, 3, padding="full")  # the same data as a cross-correlation
    np.testing.assert_allclose(res.kernel.ravel(), h_true[::-1], atol=1e-12)
    np.testing.assert_allclose(res.to_scipy(), h_true, atol=1e-12)


def test_keras_export_without_keras_installed():
    res = kr.recover_kernel([0.0, 3.0, 4.0, 5.0, 1.0], [6.0, 11.0, 14.0, 7.0], kernel_size=2, use_bias=True)
    kernel, bias = to_keras(res)
    np.testing.assert_allclose(kernel.ravel(), [1.0, 2.0], atol=1e-6)
    np.testing.assert_allclose(bias, [0.0], atol=1e-5)
    assert to_keras(res, dtype="float64")[0].dtype == np.float64


def test_torch_missing_is_a_clear_import_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    res = kr.recover_kernel([0.0, 3.0, 4.0, 5.0], [6.0, 11.0, 14.0], kernel_size=2)
    with pytest.raises(ImportError, match=r"kernel_recovery\[export\]"):
        res.to_torch()


@pytest.mark.parametrize("func", [to_torch, to_keras, to_scipy])
def test_export_refuses_what_is_not_a_result(func):
    with pytest.raises(TypeError, match="`result` must be a KernelResult"):
        func(np.ones((2, 1, 1)))
