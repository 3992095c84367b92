"""The grid path: N-D forward model and exact least squares against torch, JAX, SciPy and explicit designs."""

import warnings

import numpy as np
import pytest
import scipy.signal

import kernel_recovery as kr
from kernel_recovery import grids
from kernel_recovery.model.grid import GridSpec

torch = pytest.importorskip("torch")
LAYERS = {1: torch.nn.Conv1d, 2: torch.nn.Conv2d, 3: torch.nn.Conv3d}


def _random_layer(rng, nd):
    groups = int(rng.choice([1, 2]))
    cin, cout = groups * int(rng.integers(1, 3)), groups * int(rng.integers(1, 3))
    k = tuple(int(v) for v in rng.integers(1, 4, nd))
    s = tuple(int(v) for v in rng.integers(1, 3, nd))
    d = tuple(int(v) for v in rng.integers(1, 3, nd))
    p = tuple(int(v) for v in rng.integers(0, 3, nd))
    torch.manual_seed(int(rng.integers(1 << 30)))
    layer = LAYERS[nd](cin, cout, k, stride=s, padding=p, dilation=d, groups=groups, bias=bool(rng.integers(2)))
    return layer.double(), dict(stride=s, padding=p, dilation=d, groups=groups)


def _keras_kernel(layer):
    return np.moveaxis(layer.weight.detach().numpy(), [0, 1], [-1, -2])  # (out, in/g, *k) -> (*k, in/g, out)


@pytest.mark.parametrize("seed", range(24))
def test_conv_and_recovery_match_torch_layers(seed):
    rng = np.random.default_rng(seed)
    nd = 1 + seed % 3
    layer, settings = _random_layer(rng, nd)
    shape = tuple(int(v) for v in rng.integers(7, 11 if nd < 3 else 9, nd))
    x = rng.standard_normal((3, layer.in_channels) + shape)
    y = layer(torch.tensor(x)).detach().numpy()
    bias = None if layer.bias is None else layer.bias.detach().numpy()
    w = _keras_kernel(layer)
    np.testing.assert_allclose(kr.conv(x, w, bias, layout="nchw", **settings), y, atol=1e-12)
    spec = GridSpec.create(w.shape[:-2], use_bias=bias is not None, layout="channels_first", **settings)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", kr.UnderdeterminedWarning)  # a few random layers leave taps unseen
        res = grids.recover(x, y, spec, method="lstsq", options={}, door=kr.recover_kernel)
    if res.report.ok:
        assert np.max(np.abs(res.kernel - w)) <= 1e-8 * np.max(np.abs(w))
        if bias is not None:
            np.testing.assert_allclose(res.bias, bias, atol=1e-8)
    else:  # the data do not determine every coefficient: the fit still reproduces y exactly
        np.testing.assert_allclose(res.predict(x), y, atol=1e-9)


def test_channels_last_same_padding_matches_jax():
    jax = pytest.importorskip("jax")
    from jax import lax

    jax.config.update("jax_enable_x64", True)
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal((2, 11, 10, 4)), rng.standard_normal((3, 4, 2, 6))
    ref = lax.conv_general_dilated(
        x, w, (2, 3), "SAME", rhs_dilation=(1, 2), dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=2
    )
    y = kr.conv(x, w, stride=(2, 3), dilation=(1, 2), padding="same", groups=2)
    np.testing.assert_allclose(y, np.asarray(ref), atol=1e-12)
    res = kr.recover_kernel(x, y, (3, 4), stride=(2, 3), dilation=(1, 2), padding="same", groups=2)
    np.testing.assert_allclose(res.kernel, w, atol=1e-9)
    assert res.config.kernel_size == (3, 4) and res.report.status == "overdetermined"


def test_flip_is_scipy_convolution_in_nd_and_complex():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((9, 8, 7)) + 1j * rng.standard_normal((9, 8, 7))
    h = rng.standard_normal((3, 2, 4)) + 1j * rng.standard_normal((3, 2, 4))
    y = kr.conv(x, h[..., None, None], padding="full", flip=True)
    np.testing.assert_allclose(y, scipy.signal.convolve(x, h), atol=1e-12)
    res = kr.recover_kernel(x, y, (3, 2, 4), padding="full", flip=True)
    np.testing.assert_allclose(res.kernel[..., 0, 0], h, atol=1e-10)


def test_grid_path_at_one_dimension_equals_the_sequence_path():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 60, 3))
    y = kr.conv1d(x, rng.standard_normal((4, 3, 2)), stride=2, padding="same") + 0.1 * rng.standard_normal((2, 30, 2))
    ref = kr.recover_kernel(x, y, 4, stride=2, padding="same", use_bias=True)
    spec = GridSpec.create(4, stride=2, padding="same", use_bias=True)
    res = grids.recover(x, y, spec, method="lstsq", options={}, door=kr.recover_kernel)
    np.testing.assert_allclose(res.kernel, ref.kernel, atol=1e-12)
    np.testing.assert_allclose(res.bias, ref.bias, atol=1e-12)
    np.testing.assert_allclose(res.stderr, ref.stderr, rtol=1e-9)
    np.testing.assert_allclose(res.residual_rms, ref.residual_rms, rtol=1e-10)
    np.testing.assert_allclose(res.report.condition_number, ref.report.condition_number, rtol=1e-9)


def _explicit_complex(rng, n=4096, taps=16, noise=0.1):
    h = (rng.standard_normal(taps) + 1j * rng.standard_normal(taps)) / 4
    s = (rng.choice([-1.0, 1.0], n) + 1j * rng.choice([-1.0, 1.0], n)) / np.sqrt(2)  # QPSK training symbols
    m = n - taps + 1
    y = kr.conv(s, h[:, None, None]) + noise * (rng.standard_normal(m) + 1j * rng.standard_normal(m)) / np.sqrt(2)
    return s, y, h


def test_complex_channel_equals_numpy_lstsq_on_the_explicit_design():
    s, y, _ = _explicit_complex(np.random.default_rng(6))
    res = kr.recover_kernel(s, y, 16)
    a = np.lib.stride_tricks.sliding_window_view(s, 16)  # rows x[t : t + 16]: the correlation design
    ref, rss, *_ = np.linalg.lstsq(a, y, rcond=None)
    np.testing.assert_allclose(res.kernel.ravel(), ref, atol=1e-10)
    cov = rss[0] / (len(y) - 16) * np.linalg.inv(a.conj().T @ a)
    np.testing.assert_allclose(res.stderr.ravel(), np.sqrt(np.diag(cov).real), rtol=1e-8)
    np.testing.assert_allclose(res.covariance[0], cov, rtol=1e-8, atol=1e-14)
    assert np.iscomplexobj(res.kernel) and res.diagnostics["complex"]


def test_complex_standard_errors_cover_at_the_stated_rate():
    """Circular complex noise: each part of the estimate has variance stderr^2 / 2; 95% intervals on each part
    cover ~95% of the (real, imaginary) parts over 400 draws."""
    rng = np.random.default_rng(7)
    hits = total = 0
    for _ in range(400):
        s, y, h = _explicit_complex(rng)
        res = kr.recover_kernel(s, y, 16)
        half = 1.959964 * res.stderr.ravel() / np.sqrt(2)
        e = res.kernel.ravel() - h
        hits += int(np.sum(np.abs(e.real) <= half) + np.sum(np.abs(e.imag) <= half))
        total += 2 * e.size
    assert 0.93 <= hits / total <= 0.97


def test_analyze_sees_the_invisible_directions_of_a_constant_image():
    x = np.ones((20, 20))
    with pytest.warns(kr.UnderdeterminedWarning, match="rank-deficient"):
        rep = kr.analyze(x, None, (2, 2))
    assert rep.status == "rank_deficient" and rep.rank.tolist() == [1]
    directions = rep.null_space[0]
    assert directions.shape == (3, 2, 2, 1)
    for d in directions:  # each leaves the output unchanged
        np.testing.assert_allclose(kr.conv(x, d[..., None]), 0.0, atol=1e-12)


def test_grid_errors_name_the_argument():
    x = np.zeros((8, 8))
    with pytest.raises(ValueError, match="`padding`='causal' needs one spatial axis"):
        kr.recover_kernel(x, x, (2, 2), padding="causal")
    with pytest.raises(ValueError, match=r"`y` item 0 has spatial shape \(8, 8\)"):
        kr.recover_kernel(x, x, (2, 2))
    with pytest.raises(ValueError, match=r"`stride` must be an int or 2 ints"):
        kr.recover_kernel(x, x, (2, 2), stride=(1, 1, 1))
    with pytest.raises(ValueError, match=r"`layout` must be"):
        kr.recover_kernel(x, x[:7, :7], (2, 2), layout="nhcw")
    with pytest.raises(ValueError, match="too small for kernel_size"):
        kr.conv(np.zeros((2, 2)), np.ones((3, 3, 1, 1)))


def test_result_predicts_scores_and_summarizes_an_image_kernel():
    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, 30, 30, 2))
    w = rng.standard_normal((3, 3, 2, 1))
    y = kr.conv(x, w, [0.5], padding="same") + 0.01 * rng.standard_normal((2, 30, 30, 1))
    res = kr.recover_kernel(x, y, (3, 3), padding="same", use_bias=True)
    np.testing.assert_allclose(res.predict(x), kr.conv(x, res.kernel, res.bias, padding="same"))
    fresh = rng.standard_normal((1, 20, 20, 2))
    y_fresh = kr.conv(fresh, w, [0.5], padding="same")
    r2 = 1 - np.sum((y_fresh - res.predict(fresh)) ** 2) / np.sum((y_fresh - y_fresh.mean()) ** 2)
    np.testing.assert_allclose(res.score(fresh, y_fresh), [r2])
    text = res.summary()
    assert "kernel_size=(3, 3)" in text and "delay" not in text and res.delay is None
    assert res.to_dict()["config"]["kernel_size"] == [3, 3]


@pytest.mark.parametrize(
    "defect, check",
    [("relu", "saturation"), ("quadratic", "nonlinearity"), ("offset", "missing_bias")],
)
def test_grid_misfits_are_warned_by_the_check_that_explains_them(defect, check):
    rng = np.random.default_rng(9)
    x = rng.standard_normal((2, 40, 40, 2))
    y = kr.conv(x, rng.standard_normal((3, 3, 2, 2)))
    y = y + 0.1 * rng.standard_normal(y.shape)
    y = {"relu": np.maximum(y, 0), "quadratic": y + 0.3 * y**2, "offset": y + 3.0}[defect]
    with pytest.warns(kr.ModelMisfitWarning) as caught:
        res = kr.recover_kernel(x, y, (3, 3))
    assert res.diagnostics["checks"][check] == "flagged"
    assert len(caught) == (2 if defect == "quadratic" else 1)  # y + y^2 also has an offset; a clipped y only its cause
    assert res.diagnostics["specification"][check]["p_value"].min() < 1e-8


def test_healthy_grid_fits_raise_no_misfit_alarm():
    rng = np.random.default_rng(10)
    for _ in range(20):  # white and smooth (correlated) images, with and without a bias
        x = rng.standard_normal((1, 48, 48, 1))
        if rng.integers(2):
            x = scipy.signal.convolve(x, np.ones((1, 3, 3, 1)) / 9, mode="same")
        use_bias = bool(rng.integers(2))
        y = kr.conv(x, rng.standard_normal((4, 4, 1, 1)), [0.7] if use_bias else None)
        y = y + 0.05 * rng.standard_normal(y.shape)
        res = kr.recover_kernel(x, y, (4, 4), use_bias=use_bias)  # filterwarnings=error: any warning fails
        assert all(
            line in ("passed", "not needed: the fit has a bias", "data")
            for line in list(res.diagnostics["checks"].values())[1:]
        )


def test_plan_of_an_image_kernel_agrees_with_analyze_on_white_noise():
    rng = np.random.default_rng(11)
    planned = kr.plan((5, 5), lengths=(64, 64), batch=2, in_channels=2, use_bias=True, noise_level=0.1)
    seen = kr.analyze(rng.standard_normal((2, 64, 64, 2)), None, (5, 5), use_bias=True, noise_level=0.1)
    assert planned.status == seen.status == "overdetermined"
    assert planned.equations.tolist() == seen.equations.tolist() and planned.unknowns.tolist() == seen.unknowns.tolist()
    np.testing.assert_allclose(planned.expected_error, seen.expected_error, rtol=0.05)


def test_plan_finds_the_taps_that_padding_and_stride_leave_unseen():
    settings = dict(stride=3, padding=1)
    planned = kr.plan((3, 3), lengths=(3, 3), batch=20, **settings)
    with pytest.warns(kr.UnderdeterminedWarning):
        seen = kr.analyze(np.random.default_rng(12).standard_normal((20, 3, 3, 1)), None, (3, 3), **settings)
    assert planned.status == seen.status == "rank_deficient"
    assert planned.rank.tolist() == seen.rank.tolist() == [4]
    unseen = np.isinf(planned.kernel_error_per_unit_noise[..., 0, 0])
    np.testing.assert_array_equal(unseen, np.isinf(seen.kernel_error_per_unit_noise[..., 0, 0]))
    assert unseen[0].all() and unseen[:, 0].all() and unseen.sum() == 5


def test_methods_and_options_that_do_not_take_complex_signals_say_so():
    s, y, _ = _explicit_complex(np.random.default_rng(13), n=256)
    with pytest.raises(ValueError, match="method='adam' does not take complex signals"):
        kr.recover_kernel(s, y, 16, method="adam")
    with pytest.raises(ValueError, match="`regularization` .* applies to real 1-D sequences"):
        kr.recover_kernel(s, y, 16, regularization="tc")
    res = kr.recover_kernel(s, y, 16, ridge=1.0)  # ridge takes them
    a = np.lib.stride_tricks.sliding_window_view(s, 16)
    np.testing.assert_allclose(res.kernel.ravel(), np.linalg.solve(a.conj().T @ a + np.eye(16), a.conj().T @ y))


def test_excitation_orders_are_the_ranks_of_each_channels_columns():
    rng = np.random.default_rng(14)
    x = rng.standard_normal((1, 30, 30, 3))
    x[..., 1] = 2.0  # a constant channel excites one direction
    x[..., 2] = np.sin(0.7 * np.arange(30))[None, :, None]  # a row pattern: constant down each column
    rep = kr.analyze(x, None, (3, 3), use_bias=True, warn=False)
    a = np.lib.stride_tricks.sliding_window_view(x[0], (3, 3), axis=(0, 1)).transpose(0, 1, 3, 4, 2).reshape(-1, 27)
    want = [np.linalg.matrix_rank(a[:, c::3]) for c in range(3)]
    assert rep.excitation_order.tolist() == want == [9, 1, 2]  # a sinusoid's shifts span two directions
    assert rep.joint_excitation_order.tolist() == [min(np.linalg.matrix_rank(a), 9)]  # capped at the kernel's positions


def test_grid_warnings_point_at_the_callers_line():
    x = np.ones((20, 20))
    with pytest.warns(kr.UnderdeterminedWarning) as caught:
        kr.recover_kernel(x, kr.conv(x, np.ones((2, 2, 1, 1))), (2, 2))
    assert caught[0].filename == __file__
    rng = np.random.default_rng(15)
    xx = rng.standard_normal((1, 40, 40, 1))
    yy = kr.conv(xx, rng.standard_normal((3, 3, 1, 1)))
    with pytest.warns(kr.ModelMisfitWarning) as caught:
        kr.recover_kernel(xx, np.maximum(yy + 0.1 * rng.standard_normal(yy.shape), 0), (3, 3))
    assert caught[0].filename == __file__


def test_a_kernel_too_small_for_the_blur_is_warned():
    """A 3x3 kernel fitted to a 7x7 Gaussian blur: the fit is overdetermined and well conditioned, but a wider kernel
    over the same outputs explains y far better (F-test), so the fit says so; the right size is not warned."""
    rng = np.random.default_rng(16)
    x = rng.standard_normal((120, 120))
    g = scipy.signal.windows.gaussian(7, 1.5)
    k = np.outer(g, g) / np.outer(g, g).sum()
    y = kr.conv(x, k[..., None, None], padding="same", flip=True) + 0.01 * rng.standard_normal((120, 120))
    with pytest.warns(kr.KernelSizeWarning, match=r"larger than kernel_size=\(3, 3\): a \(5, 5\) kernel"):
        res = kr.recover_kernel(x, y, (3, 3), padding="same", flip=True)
    assert res.diagnostics["checks"]["kernel_size"] == "flagged"
    res = kr.recover_kernel(x, y, (7, 7), padding="same", flip=True)  # filterwarnings=error: no warning
    assert res.diagnostics["checks"]["kernel_size"] == "passed"
