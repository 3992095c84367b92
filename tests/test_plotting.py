"""Plots: what is drawn is the data it claims to show (kernel, bands, truth, residuals, loss, spectrum)."""

import dataclasses
import sys

import numpy as np
import pytest
from references import jax_conv1d

import kernel_recovery as kr
from kernel_recovery import plotting

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
plt = pytest.importorskip("matplotlib.pyplot")


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture
def noisy(rng):
    kernel = rng.standard_normal((5, 2, 3))
    bias = np.array([0.3, -0.1, 0.2])
    x = rng.standard_normal((400, 2))
    y = jax_conv1d(x[None], kernel, bias)[0] + 0.05 * rng.standard_normal((396, 3))
    return x, y, kernel, kr.recover_kernel(x, y, 5, use_bias=True)


def _line(ax, label):
    return next(line for line in ax.get_lines() if line.get_label() == label)


def test_kernel_panels_show_the_kernel_truth_and_bands(noisy):
    x, y, kernel, res = noisy
    fig = plotting.plot_kernel(res, true_kernel=kernel)
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == 6  # 2 input x 3 output channels
    for ax in axes:
        c, o = map(int, ax.get_title().replace("in ", "").split(" -> out "))
        np.testing.assert_array_equal(_line(ax, "recovered").get_ydata(), res.kernel[:, c, o])
        np.testing.assert_array_equal(_line(ax, "true").get_ydata(), kernel[:, c, o])
        (band,) = ax.collections  # the 95 % band: kernel +- 1.96 stderr
        vertices = band.get_paths()[0].vertices
        half = 1.959963984540054 * res.stderr[:, c, o]
        assert np.isclose(vertices[:, 1].max(), (res.kernel[:, c, o] + half).max())
        assert np.isclose(vertices[:, 1].min(), (res.kernel[:, c, o] - half).min())
    assert "lstsq" in fig._suptitle.get_text()


def test_kernel_without_stderr_has_no_band():
    res = kr.recover_kernel([0.0, 3.0, 4.0, 5.0], [6.0, 11.0, 14.0], kernel_size=2, method="fft")
    assert res.stderr is None  # (ridge fits have posterior standard errors now)
    fig = plotting.plot_kernel(res)
    assert not fig.axes[0].collections
    assert [line.get_label() for line in fig.axes[0].get_lines()][-1] == "recovered"


def test_many_channels_are_capped_and_the_title_says_so(rng):
    x = rng.standard_normal((300, 6))
    y = jax_conv1d(x[None], rng.standard_normal((2, 6, 5)))[0]
    fig = plotting.plot_kernel(kr.recover_kernel(x, y, 2), max_panels=8)
    assert sum(ax.get_visible() for ax in fig.axes) == 8
    assert "first 8 of 30 channel pairs" in fig._suptitle.get_text()


def test_true_kernel_of_the_wrong_shape_is_refused(noisy):
    with pytest.raises(ValueError, match=r"`true_kernel` must have the kernel's shape \(5, 2, 3\)"):
        plotting.plot_kernel(noisy[3], true_kernel=np.ones((5, 2)))


def test_residuals_are_y_minus_the_prediction(noisy):
    x, y, _, res = noisy
    fig = plotting.plot_residuals(res, x, y)
    ax = fig.axes[0]
    want = y - jax_conv1d(x[None], res.kernel, res.bias)[0]
    for o in range(3):
        np.testing.assert_allclose(_line(ax, f"out {o}").get_ydata(), want[:, o], atol=1e-12)
    assert f"rms {np.sqrt(np.mean(want**2)):.3g}" in ax.get_title()


def test_residuals_of_a_batch_in_channels_first_layout(rng):
    x = rng.standard_normal((2, 1, 50))
    y = jax_conv1d(x.transpose(0, 2, 1), np.ones((3, 1, 1)))[..., 0][:, None, :]
    y = y + 0.01 * rng.standard_normal(y.shape)
    res = kr.recover_kernel(x, y, 3, layout="ncw")
    line = _line(plotting.plot_residuals(res, x, y).axes[0], "out 0")
    want = (y - np.asarray(res.predict(x)))[:, 0, :].ravel()  # sequences one after the other
    np.testing.assert_allclose(line.get_ydata(), want, atol=1e-12)


def test_residuals_need_matching_data(noisy):
    x, y, _, res = noisy
    with pytest.raises(ValueError, match="`y` has"):
        plotting.plot_residuals(res, x, y[:-1])


def test_loss_curve():
    res = kr.recover_kernel([0.0, 3.0, 4.0, 5.0], [6.0, 11.0, 14.0], kernel_size=2)
    with pytest.raises(ValueError, match="no loss_history"):
        plotting.plot_loss(res)
    loss = np.geomspace(10.0, 1e-4, 40)
    ax = plotting.plot_loss(dataclasses.replace(res, loss_history=loss)).axes[0]
    np.testing.assert_array_equal(ax.get_lines()[0].get_ydata(), loss)
    assert ax.get_yscale() == "log"


def test_loss_curve_of_adam():
    from kernel_recovery import solvers

    if "adam" not in solvers.METHODS:
        pytest.skip("adam is not registered")
    x, y = [0.0, 3.0, 4.0, 5.0, 1.0], [6.0, 11.0, 14.0, 7.0]
    res = kr.recover_kernel(x, y, kernel_size=2, method="adam", max_iter=200)
    assert res.loss_history is not None
    ax = plotting.plot_loss(res).axes[0]
    np.testing.assert_array_equal(ax.get_lines()[0].get_ydata(), res.loss_history)


def test_spectrum_full_rank_matches_numpy_svd(rng):
    x = rng.standard_normal(60)
    rep = kr.analyze(x, None, kernel_size=4, warn=False)
    ax = plotting.plot_spectrum(rep).axes[0]
    design = np.stack([x[j : j + 57] for j in range(4)], axis=1)
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), np.linalg.svd(design, compute_uv=False), rtol=1e-10)
    assert "rank 4 of 4" in ax.get_legend().get_texts()[0].get_text()


def test_spectrum_marks_invisible_directions():
    rep = kr.analyze(np.ones(50), None, kernel_size=4, warn=False)  # a constant input: rank 1
    ax = plotting.plot_spectrum(rep).axes[0]
    zeros = next(line for line in ax.get_lines() if "data cannot see" in line.get_label())
    assert len(zeros.get_xdata()) == 3 and ax.get_yscale() == "log"
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), [np.sqrt(47 * 4)], rtol=1e-10)


def test_two_reports_share_one_axes(rng):
    fig, ax = plt.subplots()
    plotting.plot_spectrum(kr.analyze(rng.standard_normal(60), None, kernel_size=4, warn=False), ax=ax, label="a")
    plotting.plot_spectrum(kr.analyze(np.ones(50), None, kernel_size=4, warn=False), ax=ax, label="b")
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[0].startswith("a:") and labels[1].startswith("b:") and ax.get_yscale() == "log"
    assert ax.get_title() == "design spectra"


def test_result_plot_has_every_panel(noisy, tmp_path):
    x, y, kernel, res = noisy
    res = dataclasses.replace(res, loss_history=np.linspace(1.0, 0.1, 10))
    fig = res.plot(x, y, true_kernel=kernel)
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
    assert sum(t.startswith("in ") for t in titles) == 6
    assert any(t.startswith("residuals") for t in titles) and any(t.startswith("loss") for t in titles)
    assert any(t.startswith("design spectrum") for t in titles)
    fig.savefig(tmp_path / "r.png")
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="give both `x` and `y`"):
        res.plot(x)


def test_plot_refuses_what_is_not_a_result():
    with pytest.raises(TypeError, match="`result` must be a KernelResult"):
        plotting.plot_kernel(np.ones((2, 1, 1)))
    with pytest.raises(TypeError, match="`report` must be a DeterminacyReport"):
        plotting.plot_spectrum(np.ones(3))


def test_missing_matplotlib_is_a_clear_import_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    res = kr.recover_kernel([0.0, 3.0, 4.0, 5.0], [6.0, 11.0, 14.0], kernel_size=2)
    with pytest.raises(ImportError, match=r"kernel_recovery\[plot\]"):
        plotting.plot_kernel(res)


def test_report_plot_draws_the_spectrum():
    rep = kr.analyze(np.sin(0.3 * np.arange(100)), None, 5, warn=False)
    fig = rep.plot()
    ys = np.concatenate([line.get_ydata() for ax in fig.axes for line in ax.get_lines()])
    assert np.isclose(ys.max(), rep.singular_values[0][0])
