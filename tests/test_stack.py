"""recover_stack: stacks of Conv1D layers fitted by gradient descent."""

import numpy as np
import pytest
from scipy.signal import convolve

import kernel_recovery as kr

pytest.importorskip("jax")


def true_composite(w1: np.ndarray, w2: np.ndarray) -> np.ndarray:
    """Independent reference: cross-correlation layers compose by full convolution of their taps."""
    k = w1.shape[0] + w2.shape[0] - 1
    out = np.zeros((k, w1.shape[1], w2.shape[2]))
    for c in range(w1.shape[1]):
        for f in range(w2.shape[2]):
            for m in range(w1.shape[2]):
                out[:, c, f] += convolve(w1[:, c, m], w2[:, m, f], mode="full")
    return out


def explicit_lstsq(x: np.ndarray, y: np.ndarray, k: int, bias: bool) -> np.ndarray:
    """Least squares on the explicit composite design, batch of (length, channels) sequences."""
    rows, targets = [], []
    for xs, ys in zip(x, y):
        win = np.lib.stride_tricks.sliding_window_view(xs, k, axis=0)  # (m, C, k)
        a = win.transpose(0, 2, 1).reshape(len(win), -1)
        rows.append(np.concatenate([a, np.ones((len(a), 1))], axis=1) if bias else a)
        targets.append(ys)
    return np.linalg.lstsq(np.concatenate(rows), np.concatenate(targets), rcond=None)[0]


def test_linear_stack_composite_matches_least_squares(rng):
    # the tutorial's two-layer model: Conv1D(4, 5) then Conv1D(8, 5) on one input channel
    x = rng.standard_normal((3, 80, 1))
    w1 = 0.5 * rng.standard_normal((5, 1, 4))
    w2 = 0.5 * rng.standard_normal((5, 4, 8))
    b2 = rng.standard_normal(8)
    y = kr.conv1d(kr.conv1d(x, w1), w2, b2)
    layers = [dict(kernel_size=5, out_channels=4), dict(kernel_size=5, out_channels=8, use_bias=True)]
    fit = kr.recover_stack(x, y, layers)
    assert fit.success, fit.message
    assert fit.composite_kernel.shape == (9, 1, 8)
    ref = explicit_lstsq(x, y, 9, bias=True)
    np.testing.assert_allclose(fit.composite_kernel.reshape(9, 8), ref[:9], atol=2e-3)
    np.testing.assert_allclose(fit.composite_bias, ref[9], atol=2e-3)
    np.testing.assert_allclose(fit.composite_kernel, true_composite(w1, w2), atol=2e-3)
    # the layers themselves are not identifiable: they differ from the true ones, the composite agrees
    assert np.max(np.abs(fit.kernels[0] - w1)) > 1e-2
    assert [k.shape for k in fit.kernels] == [(5, 1, 4), (5, 4, 8)]
    assert fit.biases[0] is None and fit.biases[1].shape == (8,)
    assert "invertible matrix" in fit.identifiability and "composite" in fit.identifiability
    assert fit.report.status == "overdetermined"
    assert fit.report.unknowns.tolist() == [10] * 8
    np.testing.assert_allclose(fit.predict(x), y, atol=1e-2)
    assert fit.residual_rms < 1e-3
    assert fit.n_iterations == len(fit.loss_history)


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_nonlinear_stack_fits_outputs(activation, rng):
    x = rng.standard_normal((2, 2, 60))  # channels-first
    w1 = rng.standard_normal((3, 2, 3))
    w2 = rng.standard_normal((3, 3, 1))
    z = kr.conv1d(x, w1, padding="same", layout="ncw")
    z = np.tanh(z) if activation == "tanh" else np.maximum(z, 0.0)
    y = kr.conv1d(z, w2, layout="ncw")
    layers = [dict(kernel_size=3, out_channels=3, padding="same"), dict(kernel_size=3, out_channels=1)]
    fit = kr.recover_stack(x, y, layers, activation=activation, layout="ncw", restarts=3, max_iter=3000, seed=1)
    assert fit.composite_kernel is None and fit.report is None
    assert fit.activation == activation
    assert len(fit.diagnostics["restart_losses"]) == 3
    pred = fit.predict(x)
    assert pred.shape == y.shape
    rms = np.sqrt(np.mean((pred - y) ** 2))
    assert rms == pytest.approx(fit.residual_rms, rel=1e-6)
    assert rms < 0.1 * np.std(y)
    assert fit.loss_history[-1] < 0.01 * fit.loss_history[0]
    word = "sign flip" if activation == "tanh" else "positive rescaling"
    assert word in fit.identifiability


def test_single_linear_layer_is_least_squares(rng):
    x = rng.standard_normal(100)
    y = np.convolve(x, [3.0, -1.0, 0.5], mode="valid") + 0.01 * rng.standard_normal(98)
    fit = kr.recover_stack(x, y, [dict(kernel_size=3, out_channels=1)], dtype="float64", tol=1e-10)
    ref = explicit_lstsq(x[None, :, None], y[None, :, None], 3, bias=False)
    np.testing.assert_allclose(fit.kernels[0].ravel(), ref.ravel(), atol=1e-6)
    np.testing.assert_allclose(fit.composite_kernel, fit.kernels[0])


@pytest.mark.parametrize(
    ("layers", "kwargs", "error", "match"),
    [
        ([dict(kernel_size=2, out_channels=1, groups=2)], {}, ValueError, r"`layers\[0\]` has unknown key 'groups'"),
        ([dict(kernel_size=2)], {}, ValueError, r"`layers\[0\]` needs 'out_channels'"),
        ([dict(kernel_size=2, out_channels=0)], {}, ValueError, r"`layers\[0\]\['out_channels'\]` must be >= 1, got 0"),
        ([dict(kernel_size=0, out_channels=1)], {}, ValueError, r"in `layers\[0\]`: `kernel_size` must be >= 1"),
        (dict(kernel_size=2, out_channels=1), {}, TypeError, r"`layers` must be a non-empty list"),
        ([], {}, TypeError, r"`layers` must be a non-empty list"),
        ([dict(kernel_size=2, out_channels=2)], {}, ValueError, r"`y` has 1 channels but the last layer has out_chan"),
        ([dict(kernel_size=3, out_channels=1)], {}, ValueError, r"`y` sequence 0 has 7 samples but the stack gives 6"),
        ([dict(kernel_size=2, out_channels=1)], dict(activation="sigmoid"), ValueError, r"`activation`.*'sigmoid'"),
        ([dict(kernel_size=2, out_channels=1)], dict(max_iter=0), ValueError, r"`max_iter` must be"),
        ([dict(kernel_size=2, filters=1)], {}, ValueError, r"has key 'filters': .* is `out_channels`"),
        ([dict(kernel_size=2, out_channels=1)], dict(loss="l1"), ValueError, r"`loss` must be 'mae'.*got 'l1'"),
        ([dict(kernel_size=2, out_channels=1)], dict(learning_rate=-1.0), ValueError, r"`learning_rate` must be"),
    ],
)
def test_bad_arguments_raise(layers, kwargs, error, match):
    x = np.arange(8.0)
    y = np.arange(7.0)
    with pytest.raises(error, match=match):
        kr.recover_stack(x, y, layers, **kwargs)


def test_repr_is_one_short_line(rng):
    x = rng.standard_normal(60)
    y = kr.conv1d(kr.conv1d(x, [1.0, 0.5]), [0.5, -1.0])
    layers = [dict(kernel_size=2, out_channels=1), dict(kernel_size=2, out_channels=1)]
    fit = kr.recover_stack(x, y, layers, max_iter=50)
    text = repr(fit)
    assert len(text) < 250 and "[" not in text and "\n" not in text and "array" not in text
    assert text.startswith("StackResult(layers=2, kernel_sizes=(2, 2), activation=None, composite_kernel=(3, 1, 1), ")
    assert f"n_iterations={fit.n_iterations})" in text
