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
from kernel_recovery.model.grid import GridSpec

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
    return torch.nn.Conv1d(
        cin,
        cout,
        k,
        stride=stride,
        padding=torch_padding,
        dilation=dilation,
        groups=groups,
        bias=bias,
        dtype=torch.float64,
    )


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
    res = kr.recover_kernel(
        x.numpy(),
        y.numpy(),
        k,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        use_bias=bias,
        layout="ncw",
        flip=flip,
    )
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
            cout,
            k,
            strides=strides,
            padding=padding,
            dilation_rate=dilation,
            groups=groups,
            use_bias=bias,
            kernel_initializer=keras.initializers.RandomNormal(seed=seed),
            bias_initializer=keras.initializers.RandomNormal(seed=seed + 1),
        )

    def weights_of(lay):  # not get_weights(): keras' Variable.numpy() trips numpy 2's copy deprecation
        return [np.asarray(v.value) for v in lay.weights]

    rng = np.random.default_rng(3)
    original = layer(7)
    x = rng.standard_normal((3, 90, cin)).astype("float32")
    y = np.asarray(original(x))
    res = kr.recover_kernel(
        x, y, k, stride=strides, padding=padding, dilation=dilation, groups=groups, use_bias=bias, flip=flip
    )
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
    res = kr.recover_kernel(
        x, y, k, stride=stride, padding=padding, dilation=dilation, groups=groups, use_bias=bias, flip=flip
    )
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


# -- N-D kernels (Conv2D/Conv3D) and complex kernels -----------------------------------------------------------


def _relative(a, b):
    return np.linalg.norm(np.asarray(a) - np.asarray(b)) / np.linalg.norm(np.asarray(b))


def _grid_configs(seed, n, keras_rules):
    """Random layer settings: spatial dims, kernel size, strides, dilations, padding, groups, channels, bias, layout.

    Keras refuses strides > 1 together with dilations > 1 and PyTorch refuses padding='same' with strides > 1,
    so each draw keeps to what its framework takes."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        nd = int(rng.choice([2, 3]))
        k = tuple(int(v) for v in rng.integers(2, 4, 1)) + tuple(int(v) for v in rng.integers(1, 4, nd - 1))
        if rng.random() < 0.5:
            stride, dilation = tuple(int(v) for v in rng.integers(1, 3, nd)), (1,) * nd
        else:
            stride, dilation = (1,) * nd, tuple(int(v) for v in rng.integers(1, 3, nd))
        if keras_rules:
            padding = str(rng.choice(["valid", "same"]))
        else:
            choices = ["valid", "int", "per_axis"] + (["same"] if max(stride) == 1 else [])
            padding = str(rng.choice(choices))
            if padding == "int":
                padding = int(rng.integers(0, 3))
            elif padding == "per_axis":
                padding = tuple(int(v) for v in rng.integers(0, 3, nd))
        groups = int(rng.choice([1, 2]))
        cin, cout = groups * int(rng.integers(1, 3)), groups * int(rng.integers(1, 3))
        bias = bool(rng.random() < 0.6)
        layout = str(rng.choice(["channels_last", "channels_first"]))
        out.append((k, stride, dilation, padding, groups, cin, cout, bias, layout))
    return out


def _spatial(k, nd):
    return (16, 15) if nd == 2 else (10, 10, 9)


KERAS_GRID_CONFIGS = _grid_configs(31, 10, keras_rules=True)


@pytest.mark.parametrize("config", KERAS_GRID_CONFIGS, ids=[str(c) for c in KERAS_GRID_CONFIGS])
def test_keras_conv_nd_recovered_and_reproduced(keras, config):
    """A float64 Keras Conv2D/Conv3D makes y; lstsq recovers its kernel to 1e-8 and a fresh layer loaded with
    the export reproduces y."""
    import jax

    k, stride, dilation, padding, groups, cin, cout, bias, layout = config
    nd = len(k)
    layer_type = keras.layers.Conv2D if nd == 2 else keras.layers.Conv3D
    rng = np.random.default_rng(hash(str(config)) % 2**32)
    shape = _spatial(k, nd)
    x = rng.standard_normal((2, *shape, cin) if layout == "channels_last" else (2, cin, *shape))

    def layer(seed):
        return layer_type(
            cout,
            k,
            strides=stride,
            padding=padding,
            dilation_rate=dilation,
            groups=groups,
            use_bias=bias,
            data_format=layout,
            dtype="float64",
            kernel_initializer=keras.initializers.RandomNormal(seed=seed),
            bias_initializer=keras.initializers.RandomNormal(seed=seed + 1),
        )

    with jax.enable_x64(True):  # a float64 layer: its outputs carry the kernel to 1e-8 and beyond
        original = layer(7)
        y = np.asarray(original(x))
        w_true = [np.asarray(v.value) for v in original.weights]
        res = kr.recover_kernel(
            x,
            y,
            k,
            method="lstsq",
            stride=stride,
            padding=padding,
            dilation=dilation,
            groups=groups,
            use_bias=bias,
            layout=layout,
        )
        assert res.report.ok
        assert res.kernel.shape == w_true[0].shape
        assert _relative(res.kernel, w_true[0]) < 1e-8
        if bias:
            assert _relative(res.bias, w_true[1]) < 1e-8
        weights = res.to_keras(dtype="float64")
        assert [w.shape for w in weights] == [w.shape for w in w_true]
        rebuilt = layer(99)
        rebuilt.build(x.shape)
        rebuilt.set_weights(weights)
        assert _relative(np.asarray(rebuilt(x)), y) < 1e-10
        x_new = rng.standard_normal(x.shape)
        assert _relative(np.asarray(rebuilt(x_new)), np.asarray(original(x_new))) < 1e-8


TORCH_GRID_CONFIGS = _grid_configs(2029, 10, keras_rules=False)


def _torch_nd(torch, nd, cin, cout, k, stride, dilation, padding, groups, bias, dtype, seed):
    torch.manual_seed(seed)
    layer_type = torch.nn.Conv2d if nd == 2 else torch.nn.Conv3d
    layer = layer_type(
        cin, cout, k, stride=stride, padding=padding, dilation=dilation, groups=groups, bias=bias, dtype=dtype
    )
    if bias:
        torch.nn.init.normal_(layer.bias)
    return layer


# PyTorch notes that padding='same' with an even kernel copies the input padded: a note, not a fault
@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel:UserWarning")
@pytest.mark.parametrize("config", TORCH_GRID_CONFIGS, ids=[str(c) for c in TORCH_GRID_CONFIGS])
def test_torch_conv_nd_recovered_and_reproduced(config):
    """A float64 torch Conv2d/Conv3d makes y (given to recover_kernel in either layout); lstsq recovers its weight
    to 1e-8 and a fresh layer loaded with the state dict reproduces y."""
    torch = pytest.importorskip("torch")
    k, stride, dilation, padding, groups, cin, cout, bias, layout = config
    nd = len(k)
    args = (torch, nd, cin, cout, k, stride, dilation, padding, groups, bias, torch.float64)
    layer = _torch_nd(*args, seed=3)
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(2, cin, *_spatial(k, nd), generator=gen, dtype=torch.float64)
    with torch.no_grad():
        y = layer(x).numpy()
    xs, ys = x.numpy(), y
    if layout == "channels_last":  # the same data, channels moved last
        xs, ys = np.moveaxis(xs, 1, -1), np.moveaxis(ys, 1, -1)
    res = kr.recover_kernel(
        xs,
        ys,
        k,
        method="lstsq",
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        use_bias=bias,
        layout=layout,
    )
    assert res.report.ok
    weight = layer.weight.detach().numpy()
    np.testing.assert_array_equal(res.kernel.shape, weight.transpose(*range(2, nd + 2), 1, 0).shape)
    assert _relative(res.kernel, weight.transpose(*range(2, nd + 2), 1, 0)) < 1e-8
    state = res.to_torch(dtype=torch.float64)
    assert set(state) == ({"weight", "bias"} if bias else {"weight"})
    assert _relative(state["weight"].numpy(), weight) < 1e-8
    rebuilt = _torch_nd(*args, seed=11)
    rebuilt.load_state_dict(state)
    x_new = torch.randn(*x.shape, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        assert _relative(rebuilt(x).numpy(), y) < 1e-10
        assert _relative(rebuilt(x_new).numpy(), layer(x_new).numpy()) < 1e-8


@pytest.mark.parametrize("flip", [False, True])
def test_torch_complex_conv2d_is_bilinear(flip):
    """PyTorch convolves complex tensors without conjugating the weight, as the grid path does: the complex kernel
    recovered from a complex Conv2d is its weight, and the export reproduces the layer."""
    torch = pytest.importorskip("torch")
    layer = _torch_nd(torch, 2, 2, 4, (3, 2), (2, 1), (1, 2), 1, 2, True, torch.complex128, seed=4)
    gen = torch.Generator().manual_seed(8)
    x = torch.randn(2, 2, 11, 10, generator=gen, dtype=torch.complex128)
    with torch.no_grad():
        y = layer(x).numpy()
    res = kr.recover_kernel(
        x.numpy(),
        y,
        (3, 2),
        stride=(2, 1),
        padding=1,
        dilation=(1, 2),
        groups=2,
        use_bias=True,
        layout="nchw",
        flip=flip,
    )
    weight = layer.weight.detach().numpy().transpose(2, 3, 1, 0)
    expected = weight[::-1, ::-1] if flip else weight
    assert np.iscomplexobj(res.kernel) and _relative(res.kernel, expected) < 1e-8
    state = res.to_torch()
    assert state["weight"].dtype == torch.promote_types(torch.get_default_dtype(), torch.complex64)
    state = res.to_torch(dtype=torch.complex128)
    rebuilt = _torch_nd(torch, 2, 2, 4, (3, 2), (2, 1), (1, 2), 1, 2, True, torch.complex128, seed=9)
    rebuilt.load_state_dict(state)
    with torch.no_grad():
        assert _relative(rebuilt(x).numpy(), y) < 1e-10
    with pytest.raises(ValueError, match="`dtype`.*complex"):
        res.to_torch(dtype=torch.float64)


def test_keras_refuses_a_complex_kernel(rng):
    x = rng.standard_normal((40, 2)) + 1j * rng.standard_normal((40, 2))
    y = kr.conv(x, rng.standard_normal((3, 2, 1)) + 1j * rng.standard_normal((3, 2, 1)))
    res = kr.recover_kernel(x, y, 3)
    with pytest.raises(ValueError, match=r"to_keras: the kernel is complex.*Conv1D.*to_scipy"):
        res.to_keras()


# (kernel_size, in, out, stride, padding, dilation, groups, bias, complex)
SCIPY_GRID_CONFIGS = [
    ((3, 4), 1, 1, 1, "valid", 1, 1, False, False),
    ((3, 3), 1, 1, 1, "full", 1, 1, False, True),
    ((2, 3), 2, 4, (2, 1), "same", (1, 2), 2, True, False),
    ((3, 2), 3, 2, 1, ((2, 0), (1, 1)), (2, 1), 1, True, True),
    ((2, 2, 3), 2, 2, (1, 2, 1), "same", 1, 2, False, True),
    ((5,), 1, 1, 1, "valid", 2, 1, False, True),  # a complex 1-D channel (the grid path, N = 1)
]


def _scipy_rebuild(xpad, h, stride, bias, groups, nd, cout):
    """The outputs by scipy.signal.convolve per (input, output) channel pair, strided, plus the bias."""
    cin_g = h.shape[-2]
    per = cout // groups
    outs = []
    for o in range(cout):
        g = o // per
        acc = sum(scipy.signal.convolve(xpad[..., g * cin_g + c], h[..., c, o], mode="valid") for c in range(cin_g))
        acc = acc[tuple(slice(None, None, s) for s in stride)]
        outs.append(acc + (0.0 if bias is None else bias[o]))
    return np.stack(outs, axis=-1)


@pytest.mark.parametrize("flip", [False, True])
@pytest.mark.parametrize("config", SCIPY_GRID_CONFIGS, ids=[str(c) for c in SCIPY_GRID_CONFIGS])
def test_scipy_convolve_reproduces_nd_and_complex_outputs(config, flip, rng):
    """``to_scipy`` of an N-D or complex fit: scipy.signal.convolve (true convolution, no conjugate) per channel
    pair on the padded input, strided, gives y back; the data come from torch/jax-independent ``kr.conv``
    checked in tests/test_grid.py, with the padding computed here by TensorFlow's rule."""
    k, cin, cout, stride, padding, dilation, groups, bias, is_complex = config
    nd = len(k)
    spec = GridSpec.create(k, stride=stride, padding=padding, dilation=dilation, groups=groups)
    shape = (17, 15, 9)[:nd] if nd > 1 else (60,)

    def draw(*s):
        a = rng.standard_normal(s)
        return a + 1j * rng.standard_normal(s) if is_complex else a

    kernel = draw(*k, cin // groups, cout)
    b = draw(cout) if bias else None
    x = draw(*shape, cin)
    y = kr.conv(x, kernel, b, stride=stride, padding=padding, dilation=dilation, groups=groups, flip=flip)
    res = kr.recover_kernel(
        x, y, k, stride=stride, padding=padding, dilation=dilation, groups=groups, use_bias=bias, flip=flip
    )
    h = res.to_scipy()
    np.testing.assert_array_equal(h, to_scipy(res))
    assert np.iscomplexobj(h) == is_complex
    span = spec.span
    assert h.shape == (span if cin == cout == 1 else span + (cin // groups, cout))
    h_full = h.reshape(span + (cin // groups, cout))
    xpad = np.pad(x, spec.pads(shape) + ((0, 0),))
    rebuilt = _scipy_rebuild(xpad, h_full, spec.stride, b, groups, nd, cout)
    assert _relative(rebuilt.reshape(y.shape), y) < 1e-10
    # between the taps of a dilated kernel: zeros; on them, the kernel reversed along every axis (unless flip)
    taps = h_full[tuple(slice(None, None, d) for d in spec.dilation)]
    expected = kernel if flip else kernel[(slice(None, None, -1),) * nd]
    assert _relative(taps, expected) < 1e-8
    assert np.count_nonzero(h_full) == np.count_nonzero(taps)
