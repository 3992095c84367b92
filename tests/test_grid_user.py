"""What a user of N-D kernels and complex signals sees: kernels drawn as images (2-D), slices (3-D), magnitude and
phase (complex), real and imaginary parts with bands (complex 1-D), the residual and spectrum panels, and the
standard errors' meaning for circular complex noise that the guide states."""

import matplotlib
import numpy as np
import pytest

import kernel_recovery as kr
from kernel_recovery.plotting import MAX_SLICES, Z95, plot_kernel, plot_kernel_image, plot_residuals

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _images(fig):
    """(axes, image array) of every image panel, in drawing order."""
    return [(ax, np.asarray(ax.images[0].get_array())) for ax in fig.axes if ax.images]


def _fit_2d(rng, groups=1, cin=2, cout=2, noise=0.01, k=(3, 4)):
    x = rng.standard_normal((2, 18, 17, cin))
    w = rng.standard_normal((*k, cin // groups, cout))
    y = kr.conv(x, w, groups=groups)
    y = y + noise * rng.standard_normal(y.shape)
    return x, y, w, kr.recover_kernel(x, y, k, groups=groups)


def test_2d_kernel_is_one_image_per_channel_pair_and_view(rng):
    x, y, w, res = _fit_2d(rng, groups=2, cin=4, cout=4)
    fig = res.plot()  # plot_result: the images above, the spectrum below
    panels = _images(fig)
    pairs = [(c, o) for o in range(4) for c in range(2)]
    assert len(panels) == len(pairs) * 2  # kernel and stderr per pair
    for p, (c, o) in enumerate(pairs):
        kernel_ax, kernel_img = panels[2 * p]
        _, stderr_img = panels[2 * p + 1]
        np.testing.assert_array_equal(kernel_img, res.kernel[..., c, o])
        np.testing.assert_array_equal(stderr_img, res.stderr[..., c, o])
        assert kernel_ax.get_ylabel() == f"in {(o // 2) * 2 + c} -> out {o}"
    assert [ax.get_title() for ax, _ in panels[:2]] == ["kernel", "stderr"]
    # the kernel's colour scale is symmetric about 0 and covers every pair
    lo, hi = panels[0][0].images[0].get_clim()
    assert lo == -hi and hi == pytest.approx(np.abs(res.kernel).max())
    spectrum = [ax for ax in fig.axes if ax.get_ylabel() == "singular value"]
    assert len(spectrum) == 1


def test_true_kernel_shares_the_kernel_colour_scale(rng):
    _, _, w, res = _fit_2d(rng)
    fig = plot_kernel(res, true_kernel=w)
    panels = _images(fig)
    assert [ax.get_title() for ax, _ in panels[:3]] == ["kernel", "true", "stderr"]
    np.testing.assert_array_equal(panels[1][1], w[..., 0, 0])
    assert panels[0][0].images[0].get_clim() == panels[1][0].images[0].get_clim()
    with pytest.raises(ValueError, match="`true_kernel` must have the kernel's shape"):
        plot_kernel(res, true_kernel=w[..., :1])


def test_max_panels_limits_the_pairs_and_says_so(rng):
    _, _, _, res = _fit_2d(rng, cin=3, cout=3)
    fig = plot_kernel_image(res, max_panels=4)
    assert len(_images(fig)) == 4 * 2
    assert "first 4 of 9 channel pairs" in fig.get_suptitle()


def test_3d_kernel_is_drawn_slice_by_slice(rng):
    x = rng.standard_normal((14, 13, 12, 1))
    w = rng.standard_normal((2, 3, 2, 1, 2))
    y = kr.conv(x, w) + 0.01 * rng.standard_normal((13, 11, 11, 2))
    res = kr.recover_kernel(x, y, (2, 3, 2))
    panels = _images(plot_kernel(res))
    assert len(panels) == 2 * 2 * 2  # (pair, view) rows x 2 slices
    for o in range(2):
        for view, values in enumerate((res.kernel, res.stderr)):
            for s in range(2):
                ax, img = panels[(o * 2 + view) * 2 + s]
                np.testing.assert_array_equal(img, values[s, :, :, 0, o])
                assert ax.get_title().endswith(f"k1={s}")


def test_long_3d_kernel_shows_evenly_spaced_slices(rng):
    k = MAX_SLICES + 4
    x = rng.standard_normal((k + 8, 6, 6))
    w = rng.standard_normal((k, 2, 2, 1, 1))
    res = kr.recover_kernel(x, kr.conv(x, w), (k, 2, 2))
    fig = plot_kernel_image(res)
    titles = [ax.get_title() for ax, _ in _images(fig)]
    shown = [int(t.rsplit("=", 1)[1]) for t in titles if t.startswith("kernel")]
    assert len(shown) == MAX_SLICES and shown[0] == 0 and shown[-1] == k - 1
    assert f"{MAX_SLICES} of {k} slices along k1" in fig.get_suptitle()


def test_complex_2d_kernel_shows_magnitude_and_phase(rng):
    x = rng.standard_normal((24, 22)) + 1j * rng.standard_normal((24, 22))
    w = rng.standard_normal((3, 3, 1, 1)) + 1j * rng.standard_normal((3, 3, 1, 1))
    y = kr.conv(x, w)
    y = y + 0.05 * (rng.standard_normal(y.shape) + 1j * rng.standard_normal(y.shape))
    res = kr.recover_kernel(x, y, (3, 3))
    fig = res.plot(x, y)
    panels = _images(fig)
    assert [ax.get_title() for ax, _ in panels][:2] == ["|kernel|", "phase (rad)"]
    np.testing.assert_allclose(panels[0][1], np.abs(res.kernel[..., 0, 0]))
    np.testing.assert_allclose(panels[1][1], np.angle(res.kernel[..., 0, 0]))
    assert panels[1][0].images[0].get_clim() == (-np.pi, np.pi)
    np.testing.assert_array_equal(panels[2][1], res.stderr[..., 0, 0])
    # the residual panel: real and imaginary parts of y - prediction, row-major over the output samples
    resid_ax = next(ax for ax in fig.axes if ax.get_xlabel().startswith("output sample"))
    lines = resid_ax.get_lines()
    r = (y - res.predict(x)).ravel()
    np.testing.assert_allclose(lines[0].get_ydata(), r.real)
    np.testing.assert_allclose(lines[1].get_ydata(), r.imag)
    assert f"rms {np.sqrt(np.mean(np.abs(r) ** 2)):.3g}" in resid_ax.get_title()


def test_complex_1d_kernel_real_and_imaginary_parts_with_bands(rng):
    x = rng.standard_normal(400) + 1j * rng.standard_normal(400)
    h = rng.standard_normal(5) + 1j * rng.standard_normal(5)
    y = kr.conv(x, h[:, None, None])
    y = y + 0.1 * (rng.standard_normal(y.shape) + 1j * rng.standard_normal(y.shape))
    res = kr.recover_kernel(x, y, 5)
    fig = plot_kernel(res, true_kernel=h)
    ax = fig.axes[0]
    data = {line.get_label(): line.get_ydata() for line in ax.get_lines()}
    np.testing.assert_allclose(data["recovered (real)"], res.kernel[:, 0, 0].real)
    np.testing.assert_allclose(data["recovered (imaginary)"], res.kernel[:, 0, 0].imag)
    np.testing.assert_allclose(data["true (imaginary)"], h.imag)
    # each part's band is 1.96 stderr / sqrt(2): the vertical extent of the shaded polygon at every tap
    band = ax.collections[0].get_paths()[0].vertices
    half = Z95 * res.stderr[:, 0, 0] / np.sqrt(2)
    top = np.array([band[band[:, 0] == t, 1].max() for t in range(5)])
    np.testing.assert_allclose(top, res.kernel[:, 0, 0].real + half)


def test_residuals_of_a_2d_fit_against_the_prediction(rng):
    x, y, _, res = _fit_2d(rng)
    ax = plot_residuals(res, x, y).axes[0]
    flat = (y - kr.conv(x, res.kernel)).reshape(-1, 2)
    for o, line in enumerate(ax.get_lines()[:2]):
        np.testing.assert_allclose(line.get_ydata(), flat[:, o])
    with pytest.raises(ValueError, match="output samples"):
        plot_residuals(res, x, y[:, :-1])


def test_report_plot_of_a_grid_fit_draws_each_groups_singular_values(rng):
    x, _, _, res = _fit_2d(rng, groups=2, cin=2, cout=2)
    report = kr.analyze(x, None, (3, 4), groups=2, out_channels=2, warn=False)
    ax = report.plot().axes[0]
    lines = [line for line in ax.get_lines() if line.get_marker() == "o"]
    assert len(lines) == 2
    for line, s in zip(lines, report.singular_values):
        np.testing.assert_allclose(line.get_ydata(), s)
    np.testing.assert_allclose(report.singular_values[0], res.report.singular_values[0])


def test_plot_errors_name_what_does_not_apply(rng):
    _, _, _, res = _fit_2d(rng)
    with pytest.raises(ValueError, match="`fs`.*1-D kernels"):
        plot_kernel(res, fs=100.0)
    res_1d = kr.recover_kernel([0.0, 3.0, 4.0, 5.0, 1.0], [6.0, 11.0, 14.0, 7.0], kernel_size=2)
    with pytest.raises(ValueError, match="plot_kernel_image draws 2-D and 3-D kernels"):
        plot_kernel_image(res_1d)


def test_complex_stderr_splits_evenly_between_real_and_imaginary_parts():
    """Circular complex noise: over many draws each of the real and imaginary errors of a tap has standard deviation
    stderr / sqrt(2) (the guide's statement), and the 95 % confidence disc |error|^2 <= -ln(0.05) stderr^2 (|error|^2 /
    stderr^2 is chi-square with 2 dof over 2) holds for ~95 % of taps."""
    rng = np.random.default_rng(29)
    h = np.array([1.0 + 0.5j, -0.3j, 0.2 - 0.1j, 0.05 + 0.0j])
    real_z, imag_z, inside = [], [], []
    for _ in range(200):
        x = (rng.choice([-1, 1], 256) + 1j * rng.choice([-1, 1], 256)) / np.sqrt(2)  # QPSK
        y = kr.conv(x, h[:, None, None])
        y = y + 0.3 * (rng.standard_normal(y.shape) + 1j * rng.standard_normal(y.shape)) / np.sqrt(2)
        res = kr.recover_kernel(x, y, 4)
        err, se = res.kernel[:, 0, 0] - h, res.stderr[:, 0, 0]
        real_z.append(err.real / (se / np.sqrt(2)))
        imag_z.append(err.imag / (se / np.sqrt(2)))
        inside.append(np.abs(err) ** 2 <= -np.log(0.05) * se**2)
    assert np.std(real_z) == pytest.approx(1.0, abs=0.1)
    assert np.std(imag_z) == pytest.approx(1.0, abs=0.1)
    assert 0.92 <= np.mean(inside) <= 0.98
