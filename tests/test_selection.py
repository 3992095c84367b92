"""select_kernel_size: criteria against explicit least squares, cross-validation against brute force."""

import io
import json
import sys

import numpy as np
import pytest

import kernel_recovery as kr


def causal_design(x, k):
    xp = np.concatenate([np.zeros(k - 1), x])
    return np.lib.stride_tricks.sliding_window_view(xp, k)


@pytest.fixture
def causal_data():
    rng = np.random.default_rng(3)
    x = rng.standard_normal(600)
    w = np.array([0.8, -0.5, 0.3, 0.9])
    y = kr.conv1d(x, w, padding="causal") + 0.05 * rng.standard_normal(600)
    return x, y


@pytest.mark.parametrize("criterion", ["aic", "bic", "cv"])
def test_picks_the_true_size_on_noisy_data(criterion, causal_data):
    x, y = causal_data
    sel = kr.select_kernel_size(x, y, range(1, 11), criterion=criterion, padding="causal")
    assert sel.criterion == criterion and sel.candidates == tuple(range(1, 11)) and sel.scores.shape == (10,)
    if criterion == "cv":  # CV, like AIC, may take a spare tap; it must never miss one
        assert sel.kernel_size >= 4 and sel.scores[3] <= 1.01 * sel.scores.min()
        assert np.all(sel.scores[:3] > 1.5 * sel.scores[3])
    else:
        assert sel.kernel_size == 4 and sel.result.kernel.shape == (4, 1, 1)


def test_aic_and_bic_against_explicit_least_squares(causal_data):
    x, y = causal_data
    n = len(y)
    for criterion in ("aic", "bic"):
        sel = kr.select_kernel_size(x, y, [2, 4, 6], criterion=criterion, padding="causal")
        for k, score, rss in zip(sel.candidates, sel.scores, sel.rss):
            a = causal_design(x, k)
            ref_rss = np.sum((y - a @ np.linalg.lstsq(a, y, rcond=None)[0]) ** 2)
            penalty = 2 * k if criterion == "aic" else k * np.log(n)
            np.testing.assert_allclose(rss, ref_rss, rtol=1e-9)
            np.testing.assert_allclose(score, n * np.log(ref_rss / n) + penalty, rtol=1e-9)


def test_cv_score_against_brute_force(causal_data):
    x, y = causal_data
    sel = kr.select_kernel_size(x, y, [3, 5], criterion="cv", folds=4, padding="causal")
    for k, score in zip(sel.candidates, sel.scores):
        a = causal_design(x, k)
        edges = np.linspace(0, len(y), 5).astype(int)
        sse = 0.0
        for f in range(4):
            test = np.zeros(len(y), dtype=bool)
            test[edges[f] : edges[f + 1]] = True
            coef = np.linalg.lstsq(a[~test], y[~test], rcond=None)[0]
            sse += np.sum((y[test] - a[test] @ coef) ** 2)
        np.testing.assert_allclose(score, sse / len(y), rtol=1e-8)


def test_valid_padding_noiseless_picks_the_smallest_exact(rng):
    x = rng.standard_normal(300)
    y = kr.conv1d(x, [1.0, -2.0, 0.5, 0.0, 0.0, 0.0])  # a 3-tap kernel in a 6-tap valid window
    sel = kr.select_kernel_size(x, y, range(1, 10))
    assert sel.kernel_size == 3
    np.testing.assert_allclose(sel.result.kernel.ravel(), [1.0, -2.0, 0.5], atol=1e-10)
    assert np.all(np.isinf(sel.scores[6:])) and sel.status[6:] == ("too long for y",) * 3
    assert any("valid" in n for n in sel.notes)
    d = json.loads(json.dumps(sel.to_dict()))
    assert d["kernel_size"] == 3 and len(d["scores"]) == 9
    assert "<-" in str(sel) and "too long for y" in str(sel)


def test_true_convolution_full_padding(rng):
    x = rng.standard_normal(200)
    h = np.array([0.5, 1.0, -0.7])
    y = np.convolve(x, h) + 1e-3 * rng.standard_normal(202)
    sel = kr.select_kernel_size(x, y, [1, 2, 3], padding="full", flip=True, criterion="bic")
    assert sel.kernel_size == 3
    np.testing.assert_allclose(sel.result.kernel.ravel(), h, atol=1e-2)


def test_multichannel_bias_and_groups(rng):
    x = rng.standard_normal((800, 4))
    w = rng.standard_normal((3, 2, 2))
    y = kr.conv1d(x, w, [0.3, -0.1], padding="same", groups=2) + 0.05 * rng.standard_normal((800, 2))
    sel = kr.select_kernel_size(x, y, [1, 3, 5, 7], padding="same", groups=2, use_bias=True, criterion="bic")
    assert sel.kernel_size == 3
    assert sel.n_params.tolist() == [k * 2 * 2 + 2 for k in (1, 3, 5, 7)]
    assert sel.n_samples == 1600


def test_underdetermined_candidates_score_inf(rng):
    x = rng.standard_normal(12)
    y = kr.conv1d(x, [1.0, 2.0], padding="same")
    sel = kr.select_kernel_size(x, y, [2, 20], padding="same")
    assert sel.kernel_size == 2 and np.isinf(sel.scores[1]) and sel.status[1] == "underdetermined"


@pytest.mark.parametrize(
    "kwargs, err, match",
    [
        (dict(candidates=[]), ValueError, "candidates"),
        (dict(candidates=[0, 2]), ValueError, "candidates"),
        (dict(candidates=None), TypeError, "candidates"),
        (dict(criterion="mdl"), ValueError, "criterion"),
        (dict(criterion="cv", folds=1), ValueError, "folds"),
        (dict(candidates=[50]), ValueError, "no candidate"),
    ],
)
def test_bad_input(kwargs, err, match, rng):
    x = rng.standard_normal(40)
    args = dict(candidates=[1, 2, 3])
    args.update(kwargs)
    with pytest.raises(err, match=match):
        kr.select_kernel_size(x, kr.conv1d(x, [1.0, 2.0], padding="same"), padding="same", **args)


# -- progress, the method's case, the repr ----------------------------------------------------------


def test_progress_keyword(causal_data, monkeypatch):
    pytest.importorskip("tqdm")
    x, y = causal_data
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    quiet = kr.select_kernel_size(x, y, [2, 4, 6], padding="causal", progress=False)
    assert stream.getvalue() == ""
    shown = kr.select_kernel_size(x, y, [2, 4, 6], padding="causal", progress=True)
    assert "select_kernel_size" in stream.getvalue()  # the bar over the candidates' fits
    np.testing.assert_array_equal(shown.scores, quiet.scores)
    with pytest.raises(TypeError, match="`progress` must be True or False"):
        kr.select_kernel_size(x, y, [2, 4], padding="causal", progress=1)


def test_progress_reaches_the_fits(causal_data, monkeypatch):
    # a regularized fit takes progress (this was "method 'lstsq' got an unexpected option 'progress'")
    from kernel_recovery.solvers import priors

    asked = []
    real = priors.progress_bar
    monkeypatch.setattr(priors, "progress_bar", lambda progress, *a, **k: asked.append(progress) or real(False))
    x, y = causal_data
    kr.select_kernel_size(x, y, [3, 4], padding="causal", regularization="tc", progress=False)
    assert asked == [False, False, False]  # two candidates, then the chosen size's fit
    asked.clear()
    rng = np.random.default_rng(1)
    xl = rng.standard_normal(3000)
    yl = np.concatenate([np.zeros(20), np.convolve(xl, 0.7 ** np.arange(6))[: 3000 - 20]])
    sel = kr.select_lags(xl, yl + 0.01 * rng.standard_normal(3000), regularization="tc", progress=False)
    assert asked == [False] and sel.lags[0] == 20


def test_method_name_in_any_case_takes_the_nested_path(causal_data, monkeypatch):
    from kernel_recovery import selection

    calls = []
    real = selection._nested_rss
    monkeypatch.setattr(selection, "_nested_rss", lambda *a: calls.append(1) or real(*a))
    x, y = causal_data
    upper = kr.select_kernel_size(x, y, range(1, 13), padding="causal", method="LSTSQ")
    assert calls == [1]
    lower = kr.select_kernel_size(x, y, range(1, 13), padding="causal", method="lstsq")
    np.testing.assert_allclose(upper.scores, lower.scores, rtol=1e-12)
    design = causal_design(x, 4)[:, ::-1]  # columns in the kernel's (cross-correlation) order
    rss4 = np.sum((y - design @ np.linalg.lstsq(design, y, rcond=None)[0]) ** 2)
    np.testing.assert_allclose(upper.rss[3], rss4, rtol=1e-9)


def test_repr_is_one_short_line(causal_data):
    x, y = causal_data
    sel = kr.select_kernel_size(x, y, range(1, 40), padding="causal")
    text = repr(sel)
    assert len(text) < 250 and "[" not in text and "\n" not in text
    assert text.startswith(f"KernelSizeSelection(kernel_size={sel.kernel_size}, criterion='aic', candidates=1..39")
    assert "candidates=3 sizes in 2..8" in repr(kr.select_kernel_size(x, y, [2, 5, 8], padding="causal"))


def test_under_a_shown_bar_the_fits_draw_none_by_default(causal_data, monkeypatch):
    pytest.importorskip("tqdm")
    from kernel_recovery.solvers import priors

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    asked = []
    real = priors.progress_bar
    monkeypatch.setattr(priors, "progress_bar", lambda progress, *a, **k: asked.append(progress) or real(False))
    monkeypatch.setattr(sys, "stderr", Terminal())
    x, y = causal_data
    kr.select_kernel_size(x, y, [3, 4], padding="causal", regularization="tc")
    assert "select_kernel_size" in sys.stderr.getvalue()
    assert asked == [False, False, None]  # the candidates' fits under the bar, then the final fit's default


# -- long candidates: every prefix from the convolution's structure, against explicit least squares -------------


def prefix_rss_reference(xs, ys, taps, use_bias):
    """RSS of the fit on the first k columns (bias first), k = 0..taps(+1), by numpy.linalg.lstsq on the explicit
    design of the sequences stacked."""
    a = np.concatenate([np.lib.stride_tricks.sliding_window_view(x, taps) for x in xs])
    if use_bias:
        a = np.concatenate([np.ones((len(a), 1)), a], axis=1)
    y = np.concatenate(ys)
    out = [float(np.sum(y**2))]
    for k in range(1, a.shape[1] + 1):
        coef = np.linalg.lstsq(a[:, :k], y, rcond=None)[0]
        out.append(float(np.sum((y - a[:, :k] @ coef) ** 2)))
    return np.array(out)


@pytest.mark.parametrize("sequences", [1, 3])
@pytest.mark.parametrize("outputs", [1, 2])
@pytest.mark.parametrize("use_bias", [False, True])
@pytest.mark.parametrize("pole", [0.0, 0.95])
def test_structured_prefix_scan_against_explicit_least_squares(sequences, outputs, use_bias, pole):
    import scipy.signal

    from kernel_recovery.diagnostics.nested import convolution_prefix_fit

    rng = np.random.default_rng(sequences + 10 * outputs)
    taps = 24
    xs = [scipy.signal.lfilter([1.0], [1.0, -pole], rng.standard_normal(n)) + 0.5 for n in (160, 131, 97)[:sequences]]
    w = rng.standard_normal((taps, outputs)) * 0.8 ** np.arange(taps)[:, None]
    ys = [
        np.lib.stride_tricks.sliding_window_view(x, taps) @ w
        + 0.3
        + 0.05 * rng.standard_normal((len(x) - taps + 1, outputs))
        for x in xs
    ]
    fit = convolution_prefix_fit(xs, ys, taps, use_bias)
    ref = prefix_rss_reference(xs, ys, taps, use_bias)
    assert fit is not None and fit.rank == taps + use_bias
    np.testing.assert_allclose(fit.rss, ref, rtol=1e-8, atol=1e-12 * ref[0])


def test_structured_prefix_scan_leaves_a_deficient_design_to_the_cholesky_path():
    from kernel_recovery.diagnostics.nested import convolution_prefix_fit

    x = np.sin(0.3 * np.arange(400))  # excites 2 directions of 40 taps
    y = np.lib.stride_tricks.sliding_window_view(x, 40) @ np.ones(40)
    assert convolution_prefix_fit([x], [y[:, None]], 40) is None


def brute_force_choice(x, y, candidates, criterion, padding, flip, use_bias):
    """The criterion of each candidate from numpy.linalg.lstsq on its explicit design, and the argmin."""
    m = len(y)
    scores = []
    for k in candidates:
        if padding == "causal":
            xk = np.concatenate([np.zeros(k - 1), x])
        else:  # valid: y's length fixes the receptive field, the first (or, flipped, last) m + k - 1 samples
            xk = x[len(x) - (m + k - 1) :] if flip else x[: m + k - 1]
        a = np.lib.stride_tricks.sliding_window_view(xk, k)
        if use_bias:
            a = np.concatenate([a, np.ones((m, 1))], axis=1)
        rss = float(np.sum((y - a @ np.linalg.lstsq(a, y, rcond=None)[0]) ** 2))
        p = a.shape[1]
        scores.append(m * np.log(rss / m) + (2 * p if criterion == "aic" else p * np.log(m)))
    return candidates[int(np.argmin(scores))], np.array(scores)


@pytest.mark.parametrize(
    "padding, flip, use_bias, criterion",
    [("valid", False, False, "aic"), ("valid", True, True, "bic"), ("causal", False, False, "bic"),
     ("causal", True, True, "aic")],
)  # fmt: skip
def test_long_candidates_choose_as_a_loop_of_explicit_fits(padding, flip, use_bias, criterion, monkeypatch):
    from kernel_recovery import selection

    used = []
    real = selection.convolution_prefix_fit
    monkeypatch.setattr(selection, "convolution_prefix_fit", lambda *a: used.append(a[2]) or real(*a))
    monkeypatch.setattr(selection, "STRUCTURED_FROM", 16)  # the structured scan from 16 taps (a cost threshold)
    rng = np.random.default_rng(7)
    taps = 37
    w = rng.standard_normal(taps) * 0.9 ** np.arange(taps)
    x = rng.standard_normal(400)
    y = (
        kr.conv1d(x, w, padding=padding, flip=flip)
        + 0.3 * use_bias
        + 0.05 * rng.standard_normal(len(x) if padding == "causal" else len(x) - taps + 1)
    )
    if padding == "valid":
        y = y[: len(x) - 50 + 1]  # the largest candidate's length (a shorter kernel reads fewer samples)
    candidates = list(range(20, 51))
    sel = kr.select_kernel_size(x, y, candidates, criterion=criterion, padding=padding, flip=flip, use_bias=use_bias)
    best, scores = brute_force_choice(x, y, candidates, criterion, padding, flip, use_bias)
    assert used == [50]  # one structured scan, of the largest candidate
    assert sel.kernel_size == best
    np.testing.assert_allclose(sel.scores, scores, rtol=1e-9)


def test_sequences_too_short_for_one_output_are_left_out_of_the_selection():
    """A ragged batch may hold a sequence whose y is empty (too short for one output): it gives no equations, so the
    selection equals the one without it (it used to crash once candidates outgrew that sequence)."""
    rng = np.random.default_rng(0)
    w = np.array([1.0, -0.5, 0.25])
    xs = [rng.standard_normal(n) for n in (200, 150, 2)]
    ys = [kr.conv1d(x, w) + 0.01 * rng.standard_normal(len(x) - 2) for x in xs[:2]] + [np.zeros(0)]
    sel = kr.select_kernel_size(xs, ys, [1, 2, 3, 4, 5, 6])
    ref = kr.select_kernel_size(xs[:2], ys[:2], [1, 2, 3, 4, 5, 6])
    assert sel.kernel_size == ref.kernel_size == 3
    np.testing.assert_allclose(sel.scores, ref.scores)
    assert any("were left out" in n for n in sel.notes)
    with pytest.raises(ValueError, match="every sequence of `y` is empty"):
        kr.select_kernel_size([xs[2]], [np.zeros(0)], [1, 2])
