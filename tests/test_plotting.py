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


# --- item 5 of issue 28: frequency axes in Hz, the bulk delay removed, lag axes, tracking heat maps, legends


def _delayed(delay=1200, taps=(1.0, -0.6, 0.2), n=6000, flip=True):
    """A noise-free lag fit of ``delay`` zero taps then ``taps`` (lags 0 .. delay + len(taps) - 1)."""
    h = np.r_[np.zeros(delay), taps]
    last = len(h) - 1
    x = np.random.default_rng(3).standard_normal(n)
    stored = h if flip else h[::-1]  # flip=False stores the kernel in the cross-correlation order
    y = np.convolve(x, h)[:n]  # y on x's time axis, the system at rest before x
    return h, kr.recover_kernel(x, y, lags=(0, last), flip=flip), stored


def _numpy_response(h, freqs):
    """``H(f) = sum_l h[l] exp(-2j pi f l)`` in cycles per sample, summed by numpy."""
    return np.exp(-2j * np.pi * np.outer(freqs, np.arange(len(h)))) @ h


def test_bode_frequency_axis_in_hz_with_fs(noisy):
    res = noisy[3]
    fig = plotting.plot_bode(res)
    assert fig.axes[1].get_xlabel() == "frequency (cycles/sample)"
    assert fig.axes[0].get_lines()[0].get_xdata()[-1] == 0.5
    fig = res.plot(kind="bode", fs=48_000)
    mag, ph = fig.axes
    assert ph.get_xlabel() == "frequency (Hz)"
    freqs = mag.get_lines()[0].get_xdata()
    assert freqs[0] == 0.0 and freqs[-1] == 24_000.0
    fr = res.frequency_response(fs=8000)  # a response keeps its own fs
    assert fr.plot().axes[1].get_xlabel() == "frequency (Hz)"
    with pytest.raises(ValueError, match=r"`fs` \(=48000\) applies to a KernelResult"):
        plotting.plot_bode(fr, fs=48000)


@pytest.mark.parametrize("flip", [True, False])
def test_bode_remove_delay_leaves_the_short_response(flip):
    h, res, stored = _delayed(flip=flip)
    np.testing.assert_allclose(res.kernel.ravel(), stored, atol=1e-8)
    raw = plotting.plot_bode(res).axes[1].get_lines()[0]
    f = raw.get_xdata()
    # unwrapped through the delay: the phase runs to about -180 * 1200 degrees at the Nyquist frequency
    assert np.ptp(raw.get_ydata()) > 150 * 1200
    want = np.degrees(np.unwrap(np.angle(_numpy_response(h, f) * np.exp(2j * np.pi * f * 1200))))
    assert np.ptp(want) < 90  # 1 - 0.6 z^-1 + 0.2 z^-2 is minimum-phase: its phase stays within +-45 degrees
    for remove in (True, 1200, 1200.0):
        fig = res.plot(kind="bode", remove_delay=remove)
        ph = fig.axes[1]
        np.testing.assert_allclose(ph.get_lines()[0].get_ydata(), want, atol=1e-6)
        assert ph.get_ylabel() == "phase, delay removed (degrees)"
        assert "delay of 1200 samples removed" in fig.get_suptitle()
    assert "the lag of the peak |kernel|" in res.plot(kind="bode", remove_delay=True).get_suptitle()
    fig = res.plot(kind="bode", fs=48_000, remove_delay=True)
    assert "delay of 1200 samples (25 ms) removed" in fig.get_suptitle()
    np.testing.assert_allclose(fig.axes[1].get_lines()[0].get_ydata(), want, atol=1e-6)  # same curve in Hz


def test_bode_remove_delay_of_a_response_from_its_phase_slope():
    h, res, _ = _delayed(delay=300)
    fr = res.frequency_response(2048)
    fig = fr.plot(remove_delay=True)
    f = fr.freqs
    h_f = _numpy_response(h, f)
    slope = np.polyfit(f, np.unwrap(np.angle(h_f)), 1, w=np.abs(h_f))[0]  # residuals weighted by |H|^2
    removed = -slope / (2 * np.pi)
    assert 300.0 <= removed < 301.0  # a minimum-phase tail after 300 zeros: its mean group delay is < 1 sample
    title = fig.get_suptitle().splitlines()[-1]
    assert title == f"delay of {removed:.4g} samples removed: the |H|^2-weighted slope of the phase"
    want = np.degrees(np.unwrap(np.angle(h_f * np.exp(2j * np.pi * f * removed))))
    np.testing.assert_allclose(fig.axes[1].get_lines()[0].get_ydata(), want, atol=0.05)
    assert np.ptp(want) < 180


def test_bode_remove_delay_with_the_true_kernel_on_the_same_branch():
    h, res, stored = _delayed(delay=200)
    fig = res.plot(kind="bode", true_kernel=stored, remove_delay=True)
    est, true = fig.axes[1].get_lines()
    np.testing.assert_allclose(true.get_ydata(), est.get_ydata(), atol=1e-6)


def test_bode_bad_remove_delay():
    res = _delayed(delay=5)[1]
    with pytest.raises(TypeError, match="`remove_delay`"):
        res.plot(kind="bode", remove_delay="yes")
    with pytest.raises(ValueError, match="`remove_delay`"):
        res.plot(kind="bode", remove_delay=np.inf)
    with pytest.raises(ValueError, match=r"`remove_delay` \(=True\) applies to kind='bode'"):
        res.plot(remove_delay=True)


def test_lag_fit_is_drawn_over_its_lags():
    _, res, stored = _delayed(delay=4, flip=False)  # lags 0 .. 6, stored latest lag first
    ax = plotting.plot_kernel(res).axes[0]
    assert ax.get_xlabel() == "lag (samples)"
    line = _line(ax, "recovered")
    np.testing.assert_array_equal(line.get_xdata(), np.arange(6, -1, -1))
    np.testing.assert_allclose(line.get_ydata(), stored, atol=1e-8)
    ax = plotting.plot_kernel(res, fs=1000.0).axes[0]
    assert ax.get_xlabel() == "lag (s)"
    np.testing.assert_allclose(_line(ax, "recovered").get_xdata(), np.arange(6, -1, -1) / 1000.0)
    fig = res.plot(fs=1000.0)  # forwarded to the kernel panels
    assert fig.axes[0].get_xlabel() == "lag (s)"


def test_conv1d_fit_keeps_the_tap_axis(noisy):
    ax = plotting.plot_kernel(noisy[3]).axes[-1]
    assert ax.get_xlabel() == "tap"
    np.testing.assert_array_equal(_line(ax, "recovered").get_xdata(), np.arange(5))


@pytest.mark.parametrize(
    ("max_points", "words"),
    [(198, "every 2nd sample"), (132, "every 3rd sample"), (99, "every 4th sample"), (36, "every 11th sample"),
     (19, "every 21st sample"), (12, "every 33rd sample")],
)  # fmt: skip
def test_thinned_residuals_say_every_nth_sample_in_english(noisy, monkeypatch, max_points, words):
    x, y, _, res = noisy  # 396 output samples
    monkeypatch.setattr(plotting, "MAX_POINTS", max_points)
    ax = plotting.plot_residuals(res, x, y).axes[0]
    assert ax.get_title().endswith(words)
    step = int(words.split()[1][:-2])
    np.testing.assert_array_equal(_line(ax, "out 0").get_xdata(), np.arange(0, 396, step))


def _overlaps_data(fig, legend, ax):
    renderer = fig.canvas.get_renderer()  # laid out by the draw of the test
    return legend.get_window_extent(renderer).overlaps(ax.get_window_extent(renderer))


def test_legends_do_not_cover_the_data(noisy):
    x, y, kernel, res = noisy
    fig = res.plot(x, y, true_kernel=kernel)  # what `kernel-recovery recover --plot` saves
    fig.canvas.draw()
    panels = [ax for ax in fig.axes if ax.get_visible() and ax.get_title().startswith("in ")]
    (legend,) = [lg for sub in fig.subfigs for lg in sub.legends]  # one legend for all kernel panels
    assert [t.get_text() for t in legend.get_texts()][1:] == ["recovered", "true"]
    assert not any(_overlaps_data(fig, legend, ax) for ax in fig.axes if ax.get_visible())
    assert all(ax.get_legend() is None for ax in panels)
    residuals = next(ax for ax in fig.axes if ax.get_title().startswith("residuals"))
    assert not any(_overlaps_data(fig, residuals.get_legend(), ax) for ax in fig.axes if ax.get_visible())
    fig = plotting.plot_bode(res, true_kernel=kernel)  # 6 channel pairs
    fig.canvas.draw()
    legend = fig.axes[0].get_legend()
    assert not any(_overlaps_data(fig, legend, ax) for ax in fig.axes)


@pytest.fixture
def track():
    rng = np.random.default_rng(15)
    x = rng.standard_normal((1500, 2))
    w1, w2 = rng.standard_normal((2, 4, 2, 1))
    y = np.r_[jax_conv1d(x[None, :800], w1)[0], jax_conv1d(x[None, 797:], w2)[0]]
    return kr.track_kernel(x, y + 0.01 * rng.standard_normal(y.shape), 4, window=200, step=25)


def test_track_heat_map_shows_the_kernels_over_time_and_lag(track):
    fig = track.plot(channel=(1, 0))
    ax, bar = fig.axes  # the heat map and its colour bar
    assert ax.get_xlabel() == "output sample" and ax.get_ylabel() == "lag (samples)"
    assert bar.get_ylabel() == "coefficient" and "in 1 -> out 0" in ax.get_title()
    (mesh,) = ax.collections
    # flip=False: the kernel is stored latest lag first; the heat map runs lag 0 upwards
    want = track.kernels[:, ::-1, 1, 0].T  # (lag, time)
    np.testing.assert_array_equal(np.asarray(mesh.get_array()).reshape(want.shape), want)
    lo, hi = mesh.get_clim()
    assert lo == -hi == -np.nanmax(np.abs(want))  # centred on 0
    coords = mesh.get_coordinates()  # cell corners with shading="nearest": midway between times and lags
    np.testing.assert_allclose(coords[0, 1:-1, 0], (track.times[1:] + track.times[:-1]) / 2)
    np.testing.assert_allclose(coords[1:-1, 0, 1], np.arange(4)[:-1] + 0.5)
    changes = [line.get_xdata()[0] for line in ax.get_lines()]
    assert changes == list(track.changes) and track.changes  # the change near sample 800 is marked


def test_track_lines_mode(track):
    ax = track.plot(kind="lines").axes[0]
    ax.figure.canvas.draw()
    assert [line.get_label() for line in ax.get_lines()][:4] == ["lag 3", "lag 2", "lag 1", "lag 0"]
    np.testing.assert_array_equal(ax.get_lines()[0].get_ydata(), track.kernels[:, 0, 0, 0])
    assert len(ax.collections) == 4  # the +-2 stderr bands
    assert ax.get_legend() is not None and not _overlaps_data(ax.figure, ax.get_legend(), ax)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [({"channel": (2, 0)}, ValueError, r"`channel\[0\]`"), ({"channel": (0, 1)}, ValueError, r"`channel\[1\]`"),
     ({"channel": 0}, TypeError, "`channel`"), ({"kind": "line"}, ValueError, "`kind`")],
)  # fmt: skip
def test_track_plot_bad_arguments(track, kwargs, error, match):
    with pytest.raises(error, match=match):
        track.plot(**kwargs)


@pytest.mark.parametrize(("delay", "n_freqs"), [(0, 512), (253, 512), (254, 513), (1021, 2049), (1200, 4097)])
def test_bode_frequencies_scale_with_the_longest_lag(delay, n_freqs):
    h, res, _ = _delayed(delay=delay, n=max(3 * delay, 400))
    longest = delay + 2
    rule = 512 if 2 * longest <= 511 else 2 ** int(np.ceil(np.log2(2 * longest))) + 1  # the documented rule
    assert n_freqs == rule
    line = plotting.plot_bode(res).axes[1].get_lines()[0]
    f = line.get_xdata()
    assert len(f) == n_freqs
    assert np.pi * longest * (f[1] - f[0]) * 2 <= np.pi / 2  # a quarter cycle of the longest lag per step at most
    # not aliased: the unwrapped phase is numpy's response, unwrapped on this grid, and ends at -180 * delay
    want = np.degrees(np.unwrap(np.angle(_numpy_response(h, f))))
    np.testing.assert_allclose(line.get_ydata(), want, atol=1e-6)
    assert np.isclose(want[-1], -180.0 * delay, atol=90.0)


def test_response_and_bands_on_the_default_grid_match_numpy(noisy):
    res = noisy[3]  # 5 taps, 2 -> 3 channels, with a covariance
    fr = res.frequency_response(64)
    f = np.linspace(0.0, 0.5, 64)
    a = np.exp(-2j * np.pi * np.outer(f, np.arange(5)[::-1]))  # flip=False: tap i is lag 4 - i
    for o in range(3):
        cov = res.covariance[o][:10, :10].reshape(5, 2, 5, 2)
        for c in range(2):
            np.testing.assert_allclose(fr.response[:, c, o], a @ res.kernel[:, c, o], atol=1e-12)
            parts = np.stack([a.real, a.imag], axis=1)  # (F, 2, K)
            want = np.einsum("fik,kl,fjl->fij", parts, cov[:, c, :, c], parts)
            np.testing.assert_allclose(fr.covariance[:, c, o], want, atol=1e-15)
