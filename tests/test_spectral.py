"""method="fft": exact cases, least-squares agreement, Wiener regularization, diagnostics, warnings, options."""

import warnings

import numpy as np
import pytest
import scipy.signal
from hypothesis import given, settings
from hypothesis import strategies as st

import kernel_recovery as kr
from kernel_recovery.exceptions import KernelSizeWarning, SpectralWarning, UnderdeterminedWarning


def flat(y):
    """A batch, one sequence or a list of sequences as one vector (C order, sequence after sequence)."""
    return np.concatenate([np.ravel(v) for v in y]) if isinstance(y, list) else np.ravel(y)


def probed_design(x, kernel_shape, out_channels, use_bias, **conf):
    """The linear map (kernel, bias) -> y as an explicit matrix, one conv1d per unit coefficient.

    Columns: kernel coefficients in C order of ``kernel_shape``, then one bias per output channel; rows: y
    flattened in C order.  (conv1d itself is checked against jax.lax.conv_general_dilated in test_conv.)
    """
    cols = []
    for i in range(int(np.prod(kernel_shape))):
        unit = np.zeros(int(np.prod(kernel_shape)))
        unit[i] = 1.0
        cols.append(flat(kr.conv1d(x, unit.reshape(kernel_shape), **conf)))
    if use_bias:
        zero = np.zeros(kernel_shape)
        for o in range(out_channels):
            b = np.zeros(out_channels)
            b[o] = 1.0
            cols.append(flat(kr.conv1d(x, zero, b, **conf)))
    return np.column_stack(cols)


def reference_lstsq(x, y, kernel_shape, out_channels, use_bias, ridge=None, **conf):
    """numpy.linalg.lstsq on the probed design (ridge: per output channel, kernel coefficients only)."""
    a = probed_design(x, kernel_shape, out_channels, use_bias, **conf)
    yy = flat(y)
    n_k = int(np.prod(kernel_shape))
    if ridge is not None:
        lam = np.broadcast_to(ridge, (out_channels,))
        pen = np.zeros(a.shape[1])
        pen[:n_k] = np.sqrt(np.tile(lam, n_k // out_channels))  # C order: the output channel varies fastest
        a = np.concatenate([a, np.diag(pen)])
        yy = np.concatenate([yy, np.zeros(a.shape[1])])
    coef = np.linalg.lstsq(a, yy, rcond=None)[0]
    return coef[:n_k].reshape(kernel_shape), (coef[n_k:] if use_bias else None)


def rel(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


# ----------------------------------------------------------------------------------------------
# Exact cases
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("flip", [False, True])
@pytest.mark.parametrize("cin, cout, k", [(1, 1, 7), (1, 1, 64), (3, 2, 9)])
def test_exact_on_full_data(cin, cout, k, flip, rng):
    x = rng.standard_normal((2, 300, cin))
    w = rng.standard_normal((k, cin, cout))
    taps = w if flip else w[::-1]  # flip=True is a true convolution
    y = np.stack(
        [[sum(np.convolve(xb[:, c], taps[:, c, o]) for c in range(cin)) for o in range(cout)] for xb in x]
    ).transpose(0, 2, 1)
    res = kr.recover_kernel(x, y, k, padding="full", flip=flip, method="fft")
    assert res.success
    assert rel(res.kernel, w) < 1e-10
    assert res.diagnostics["out_of_support_energy"].max() < 1e-20
    assert np.all(res.options["noise_level"] < 1e-10)


def test_exact_on_circular_data(rng):
    n, k = 500, 31
    x = rng.standard_normal(n)
    w = rng.standard_normal(k)
    h = np.zeros(n)
    h[:k] = w
    y = np.real(np.fft.ifft(np.fft.fft(x) * np.fft.fft(h)))  # circular convolution
    wrapped = np.concatenate([x[n - k + 1 :], x])  # one period of history makes circular data valid data
    res = kr.recover_kernel(wrapped, y, k, flip=True, method="fft")
    assert rel(res.kernel.ravel(), w) < 1e-10


@pytest.mark.parametrize("padding", ["valid", "same", "causal"])
@pytest.mark.parametrize("color", [0.0, 0.95])
def test_noiseless_long_records_with_unseen_edges(padding, color, rng):
    # the naive division errs by about taps / length here (1e-2); the edge refinement must not
    n, k = 8000, 64
    x = scipy.signal.lfilter([1.0], [1.0, -color], rng.standard_normal(n))
    w = rng.standard_normal(k)
    y = kr.conv1d(x, w, padding=padding)
    res = kr.recover_kernel(x, y, k, padding=padding, method="fft")
    assert res.success
    assert rel(res.kernel.ravel(), w) < 1e-8
    assert res.diagnostics["edge_iterations"][0] > 0


def test_naive_division_is_not_enough_on_valid_data(rng):
    # naive spectral division of valid data (y zero-padded) errs by about taps / length; fft is exact
    n, k = 2000, 16
    x = rng.standard_normal(n)
    w = rng.standard_normal(k)
    y = kr.conv1d(x, w)  # y[t] = sum_j x[t + j] w[j], so Y = X conj(W) up to the missing edges
    size = 4096
    naive = np.fft.irfft(np.conj(np.fft.rfft(y, size) / np.fft.rfft(x, size)), size)[:k]
    res = kr.recover_kernel(x, y, k, method="fft")
    assert 1e-4 < rel(naive, w) < 0.5
    assert rel(res.kernel.ravel(), w) < 1e-10


# ----------------------------------------------------------------------------------------------
# Least squares
# ----------------------------------------------------------------------------------------------


@st.composite
def configs(draw):
    groups = draw(st.integers(1, 2))
    cin = groups * draw(st.integers(1, 2))
    cout = groups * draw(st.integers(1, 2))
    k = draw(st.integers(1, 6))
    stride = draw(st.integers(1, 3))
    dilation = draw(st.integers(1, 3))
    use_bias = draw(st.booleans())
    unknowns = k * cin // groups + use_bias
    span = (k - 1) * dilation + 1
    lengths = draw(
        st.lists(st.integers(span + stride * (unknowns + 4), span + stride * (unknowns + 30)), min_size=1, max_size=3)
    )
    return dict(
        groups=groups, cin=cin, cout=cout, k=k, stride=stride, dilation=dilation, use_bias=use_bias, lengths=lengths,
        padding=draw(st.sampled_from(["valid", "same", "causal", "full", 2, (1, 3)])),
        layout=draw(st.sampled_from(["nwc", "ncw"])), flip=draw(st.booleans()),
        noise=draw(st.sampled_from([0.0, 1e-3, 0.3])), seed=draw(st.integers(0, 2**31)),
    )  # fmt: skip


@settings(max_examples=40, deadline=None)
@given(configs())
def test_equals_least_squares_over_random_configurations(c):
    rng = np.random.default_rng(c["seed"])
    conf = {key: c[key] for key in ("stride", "padding", "dilation", "groups", "layout", "flip")}
    shape = (c["k"], c["cin"] // c["groups"], c["cout"])
    w = rng.standard_normal(shape)
    b = rng.standard_normal(c["cout"]) if c["use_bias"] else None
    x = [rng.standard_normal((n, c["cin"]) if c["layout"] == "nwc" else (c["cin"], n)) for n in c["lengths"]]
    y = [v + c["noise"] * rng.standard_normal(v.shape) for v in kr.conv1d(x, w, b, **conf)]
    ref_k, ref_b = reference_lstsq(x, y, shape, c["cout"], c["use_bias"], **conf)
    res = kr.recover_kernel(x, y, c["k"], use_bias=c["use_bias"], method="fft", wiener=False, **conf)
    assert res.success and res.report.ok
    np.testing.assert_allclose(res.kernel, ref_k, rtol=1e-8, atol=1e-8 * np.abs(ref_k).max())
    if b is not None:
        np.testing.assert_allclose(res.bias, ref_b, rtol=1e-8, atol=1e-8 * np.abs(ref_b).max())


@pytest.mark.parametrize("padding", ["valid", "same", "causal", "full"])
def test_noisy_error_within_twice_least_squares(padding):
    rng = np.random.default_rng(11)
    n, k = 3000, 24
    ratios = []
    for _ in range(4):
        x = scipy.signal.lfilter([1.0], [1.0, -0.9], rng.standard_normal(n))
        w = rng.standard_normal(k)
        y = kr.conv1d(x, w, padding=padding, flip=True)
        y = y + 0.05 * np.std(y) * rng.standard_normal(y.shape)
        ref, _ = reference_lstsq(x, y, (k, 1, 1), 1, False, padding=padding, flip=True)
        res = kr.recover_kernel(x, y, k, padding=padding, flip=True, method="fft")
        ratios.append(rel(res.kernel.ravel(), w) / rel(ref.ravel(), w))
    assert max(ratios) < 2.0
    assert np.mean(ratios) < 1.1


def test_multichannel_single_long_record(rng):
    # one record, correlated input channels: the per-frequency systems are 3 x 3, accumulated over segments
    n, k, cin, cout = 6000, 12, 3, 2
    x = scipy.signal.lfilter([1.0], [1.0, -0.7], rng.standard_normal((n, cin)), axis=0) @ rng.standard_normal(
        (cin, cin)
    )
    w = rng.standard_normal((k, cin, cout))
    y = kr.conv1d(x, w, padding="causal") + 0.01 * rng.standard_normal((n, cout))
    ref, _ = reference_lstsq(x, y, w.shape, cout, False, padding="causal")
    res = kr.recover_kernel(x, y, k, padding="causal", method="fft", wiener=False)
    assert rel(res.kernel, ref) < 1e-9
    assert res.diagnostics["singular_frequencies"] == [0]


def test_records_cut_in_overlap_save_segments_give_least_squares(rng, monkeypatch):
    # the statistics and residuals are summed over short segments of each record: small segments here, so that
    # records of several lengths (one segment or many, sequences of one length together) are cut, with a bias
    from kernel_recovery.solvers import spectral

    monkeypatch.setattr(spectral, "SEGMENT_MIN", 48)
    monkeypatch.setattr(spectral, "SEGMENT_FACTOR", 1)
    monkeypatch.setattr(spectral, "SEGMENT_CHUNK", 3000)  # several chunks per length group too
    cut = []
    real = spectral._Segments

    def segments(*args):
        cut.append(args[2].shape[0])
        return real(*args)

    monkeypatch.setattr(spectral, "_Segments", segments)
    k, cin, cout = 5, 2, 2
    x = [rng.standard_normal((n, cin)) + 3.0 for n in (700, 700, 333, 40)]
    w = rng.standard_normal((k, cin, cout))
    y = [kr.conv1d(v, w, np.array([0.5, -1.0])) + 0.1 * rng.standard_normal((len(v) - k + 1, cout)) for v in x]
    ref, ref_bias = reference_lstsq(x, y, w.shape, cout, True)
    res = kr.recover_kernel(x, y, k, use_bias=True, method="fft", wiener=False, checks="none")
    assert len(cut) > 3 and sum(cut) > 30  # several chunks, 15 segments of each 700-sample record
    assert rel(res.kernel, ref) < 1e-9
    np.testing.assert_allclose(res.bias, ref_bias, rtol=1e-9)
    rss = sum(np.sum((v - kr.conv1d(u, ref, ref_bias)) ** 2, axis=0) for u, v in zip(x, y))
    dof = sum(len(v) for v in y) - k * cin - 1
    np.testing.assert_allclose(res.options["noise_level"], np.sqrt(rss / dof), rtol=1e-8)


def test_welch_pools_sequences_as_scipy_averages_their_segments(rng):
    # sequences of one length are transformed together, the mean removed after the transform: against scipy's
    # csd per sequence (mean removed per segment), weighted by its segments, with a large offset on the input
    from kernel_recovery.solvers import welch

    nperseg = 64
    xs = [rng.standard_normal((n, 1)) + 1e6 for n in (1000, 1000, 1000, 700, 50)]
    ys = [np.convolve(x[:, 0], [1.0, -0.5, 0.25], "same")[:, None] + rng.standard_normal((len(x), 1)) for x in xs]
    got = welch.welch_transfer(xs, ys, nperseg)
    sums = {"xx": 0.0, "xy": 0.0, "yy": 0.0}
    segments = 0
    for x, y in zip(xs[:-1], ys[:-1]):  # the last is shorter than a segment: left out
        count = (len(x) - nperseg) // (nperseg // 2) + 1
        for key, (a, b) in {"xx": (x, x), "xy": (x, y), "yy": (y, y)}.items():
            f, s = scipy.signal.csd(a[:, 0], b[:, 0], window="hann", nperseg=nperseg, detrend="constant")
            sums[key] = sums[key] + count * s
        segments += count
    assert got["segments"] == segments
    np.testing.assert_allclose(got["freqs"], f, atol=1e-15)
    np.testing.assert_allclose(got["h1"][:, 0, 0], sums["xy"] / sums["xx"].real, rtol=1e-9)
    coherence = np.abs(sums["xy"]) ** 2 / (sums["xx"].real * sums["yy"].real)
    np.testing.assert_allclose(got["coherence"][:, 0], coherence, rtol=1e-9)


# ----------------------------------------------------------------------------------------------
# Regularization and the noise level
# ----------------------------------------------------------------------------------------------


def test_noise_level_is_estimated_and_recorded(rng):
    n, k, sigma = 8000, 16, np.array([0.05, 0.2])
    x = rng.standard_normal((n, 2))
    w = rng.standard_normal((k, 2, 2))
    y = kr.conv1d(x, w) + sigma * rng.standard_normal((n - k + 1, 2))
    res = kr.recover_kernel(x, y, k, method="fft")
    assert res.diagnostics["noise_level_source"] == "estimated"
    np.testing.assert_allclose(res.options["noise_level"], sigma, rtol=0.05)


def test_wiener_regularization_is_the_ridge_solution(rng):
    # independent reference: ridge lstsq with lambda = sigma^2 / mean squared tap of the lstsq kernel
    n, k, sigma = 400, 20, 0.5
    x = scipy.signal.lfilter([1.0], [1.0, -0.9], rng.standard_normal(n))
    w = rng.standard_normal(k) * 0.3
    y = kr.conv1d(x, w, padding="same") + sigma * rng.standard_normal(n)
    ref_ls, _ = reference_lstsq(x, y, (k, 1, 1), 1, False, padding="same")
    lam = sigma**2 / np.mean(ref_ls**2)
    ref, _ = reference_lstsq(x, y, (k, 1, 1), 1, False, ridge=lam, padding="same")
    res = kr.recover_kernel(x, y, k, padding="same", method="fft", noise_level=sigma)
    assert res.diagnostics["noise_level_source"] == "given"
    np.testing.assert_allclose(res.options["noise_level"], [sigma])
    np.testing.assert_allclose(res.diagnostics["ridge"], [lam], rtol=1e-8)
    assert rel(res.kernel, ref) < 1e-8
    assert rel(res.kernel, ref_ls) > 1e-3  # the regularization did something


def test_zero_noise_level_gives_plain_least_squares(rng):
    x = rng.standard_normal(300)
    w = rng.standard_normal(8)
    y = kr.conv1d(x, w) + 0.1 * rng.standard_normal(293)
    ref, _ = reference_lstsq(x, y, (8, 1, 1), 1, False)
    res = kr.recover_kernel(x, y, 8, method="fft", noise_level=0.0)
    assert res.diagnostics["ridge"].tolist() == [0.0]
    assert rel(res.kernel, ref) < 1e-10


def test_bias_is_recovered(rng):
    x = rng.standard_normal((3, 500, 2))
    w = rng.standard_normal((5, 2, 3))
    b = rng.standard_normal(3)
    y = kr.conv1d(x, w, b, padding="same", stride=2)
    res = kr.recover_kernel(x, y, 5, padding="same", stride=2, use_bias=True, method="fft")
    assert rel(res.kernel, w) < 1e-10
    np.testing.assert_allclose(res.bias, b, rtol=1e-10)


# ----------------------------------------------------------------------------------------------
# Diagnostics and warnings
# ----------------------------------------------------------------------------------------------


def test_out_of_support_energy_flags_a_kernel_size_too_small(rng):
    n = 20_000
    x = rng.standard_normal(n)
    w = rng.standard_normal(24)
    y = kr.conv1d(x, w, padding="causal") + 0.01 * rng.standard_normal(n)
    with pytest.warns(KernelSizeWarning):  # the analyzer's own check agrees
        short = kr.recover_kernel(x, y, 12, padding="causal", method="fft")
    energy = {k: kr.recover_kernel(x, y, k, padding="causal", method="fft") for k in (24, 32)}
    energy = {k: r.diagnostics["out_of_support_energy"][0] for k, r in energy.items()}
    energy[12] = short.diagnostics["out_of_support_energy"][0]
    # causal: the taps kernel_size=12 misses are the oldest half, about half the energy
    expected = np.sum(w[:12] ** 2) / np.sum(w**2)
    assert energy[12] == pytest.approx(expected, rel=0.1)
    assert energy[24] < 1e-6 and energy[32] < 1e-6


def test_singular_per_frequency_systems_warn(rng):
    x = rng.standard_normal((2000, 2))
    x = np.concatenate([x, x[:, :1]], axis=1)  # channel 2 repeats channel 0 at every frequency
    w = rng.standard_normal((6, 3, 1))
    y = kr.conv1d(x, w)
    ref, _ = reference_lstsq(x, y, w.shape, 1, False)
    with pytest.warns(UnderdeterminedWarning), pytest.warns(SpectralWarning, match="singular at 13 of 13"):
        res = kr.recover_kernel(x, y, 6, method="fft")
    assert res.success
    assert res.diagnostics["singular_frequencies"] == [13]
    assert len(res.diagnostics["warnings"]) == 1
    assert rel(res.kernel, ref) < 1e-8  # the minimum-norm kernel, as lstsq


def test_max_iter_exhausted_is_reported(rng):
    x = scipy.signal.lfilter([1.0], [1.0, -0.99], rng.standard_normal(3000))
    w = rng.standard_normal(64)
    y = kr.conv1d(x, w)
    res = kr.recover_kernel(x, y, 64, method="fft", max_iter=1)
    assert not res.success
    assert "max_iter=1" in res.message


def test_no_warning_on_good_data(rng):
    x = rng.standard_normal((4, 200, 3))
    w = rng.standard_normal((4, 3, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = kr.recover_kernel(x, kr.conv1d(x, w), 4, method="fft")
    assert res.diagnostics["warnings"] == []
    assert res.options["segment_length"] == 16
    assert res.method == "fft"


# ----------------------------------------------------------------------------------------------
# Options
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options, error, match",
    [
        ({"regularization": "none"}, TypeError, "unexpected option 'regularization'; its options are: .*wiener"),
        ({"wiener": "none"}, TypeError, "`wiener` must be True or False, got 'none'"),
        ({"noise_level": -1.0}, ValueError, "`noise_level` must be finite and >= 0, got -1.0"),
        ({"noise_level": [0.1, 0.2, 0.3]}, ValueError, r"one entry per output channel \(2\), got shape \(3,\)"),
        ({"noise_level": "auto"}, TypeError, "`noise_level` must be None, a number"),
        ({"segment_length": 8}, ValueError, "`segment_length` must be >= 9, got 8"),
        ({"segment_length": 32.0}, TypeError, "`segment_length` must be an integer"),
        ({"tol": 0.0}, ValueError, r"`tol` must be in \(0, 1\), got 0.0"),
        ({"max_iter": 0}, ValueError, "`max_iter` must be >= 1, got 0"),
        ({"workers": 0}, ValueError, "`workers` must be a positive number of threads or -1"),
        ({"ridge": 1.0}, TypeError, "method 'fft' got an unexpected option 'ridge'"),
    ],
)
def test_bad_options(options, error, match, rng):
    x = rng.standard_normal((100, 1))
    y = rng.standard_normal((96, 2))
    with pytest.raises(error, match=match):
        kr.recover_kernel(x, y, 5, method="fft", **options)


def test_given_segment_length_is_used(rng):
    x = rng.standard_normal(1000)
    w = rng.standard_normal(10)
    res = kr.recover_kernel(x, kr.conv1d(x, w), 10, method="fft", segment_length=19, workers=1)
    assert res.options["segment_length"] == 19 and res.options["workers"] == 1
    assert res.diagnostics["frequencies"] == [10]
    assert rel(res.kernel.ravel(), w) < 1e-10


def test_the_underdetermined_warning_says_which_kernel_fft_returns():
    # before: "The returned kernel is the minimum-norm one that fits the data", and fft returned another one
    rng = np.random.default_rng(0)
    x = rng.standard_normal(6)
    y = np.correlate(x, rng.standard_normal(4), mode="valid")
    with pytest.warns(
        kr.UnderdeterminedWarning,
        match=r"method='fft' returns a least-squares kernel .* not "
        r"necessarily the minimum-norm one",
    ) as record:
        res = kr.recover_kernel(x, y, 4, method="fft", wiener=False)
    assert "set ridge>0 with method='lstsq'" in str(record[0].message)
    a = np.lib.stride_tricks.sliding_window_view(x, 4)
    np.testing.assert_allclose(a @ res.kernel.ravel(), y, atol=1e-9)  # it fits the data, as it says
    with pytest.warns(kr.UnderdeterminedWarning, match="The returned kernel is the minimum-norm one"):
        exact = kr.recover_kernel(x, y, 4)
    np.testing.assert_allclose(exact.kernel.ravel(), np.linalg.pinv(a) @ y, atol=1e-9)
