"""Forgetting and sliding windows in NormalEquations, and track_kernel, against independent references:
``numpy.linalg.lstsq`` on an explicitly weighted design built here from scratch, and padasip's RLS."""

import itertools

import numpy as np
import pytest

import kernel_recovery as kr


def pads(padding, length, kernel_size, stride, dilation):
    span = (kernel_size - 1) * dilation + 1
    if padding == "valid":
        return 0, 0
    if padding == "causal":
        return span - 1, 0
    if padding == "full":
        return span - 1, span - 1
    if padding == "same":
        out = -(-length // stride)
        total = max((out - 1) * stride + span - length, 0)
        return total // 2, total - total // 2
    return padding


def explicit_design(x, kernel_size, *, stride=1, padding="valid", dilation=1, groups=1, use_bias=False):
    """Per group, rows ``[x[t*s + k*d, c] for k, c]`` (+ 1) of each output sample ``t``, by fancy indexing."""
    left, right = pads(padding, len(x), kernel_size, stride, dilation)
    xp = np.concatenate([np.zeros((left, x.shape[1])), x, np.zeros((right, x.shape[1]))])
    span = (kernel_size - 1) * dilation + 1
    m = (len(xp) - span) // stride + 1
    cin = x.shape[1] // groups
    t = np.arange(m)[:, None] * stride + np.arange(kernel_size)[None, :] * dilation  # (m, K)
    designs = []
    for g in range(groups):
        a = xp[t][:, :, g * cin : (g + 1) * cin].reshape(m, kernel_size * cin)  # columns (k, c)
        if use_bias:
            a = np.concatenate([a, np.ones((m, 1))], axis=1)
        designs.append(a)
    return designs


def weighted_fit(x, y, kernel_size, weights, **conv):
    """The kernel (K, Cin/groups, Cout) and bias minimising sum_t weights[t] ||y_t - ...||^2, by lstsq."""
    groups = conv.get("groups", 1)
    cin, opg = x.shape[1] // groups, y.shape[1] // groups
    kernel = np.zeros((kernel_size, cin, y.shape[1]))
    bias = np.zeros(y.shape[1])
    sw = np.sqrt(weights)[:, None]
    for g, a in enumerate(explicit_design(x, kernel_size, **conv)):
        outs = slice(g * opg, (g + 1) * opg)
        coef = np.linalg.lstsq(a * sw, y[:, outs] * sw, rcond=None)[0]
        kernel[:, :, outs] = coef[: kernel_size * cin].reshape(kernel_size, cin, opg)
        if conv.get("use_bias"):
            bias[outs] = coef[-1]
    return kernel, bias


def data(rng, n, cin, cout, kernel_size, noise=0.1, **conv):
    use_bias = conv.pop("use_bias", False)
    x = rng.standard_normal((n, cin))
    w = rng.standard_normal((kernel_size, cin // conv.get("groups", 1), cout))
    y = kr.conv1d(x, w, rng.standard_normal(cout) if use_bias else None, **conv)
    return x, y + noise * rng.standard_normal(y.shape)


def feed(acc, x, y, rng, pieces=6):
    cx = np.sort(rng.choice(np.arange(1, len(x)), pieces, replace=False))
    cy = np.sort(rng.choice(np.arange(1, len(y)), pieces - 1, replace=False))
    xs, ys = np.split(x, cx), np.split(y, cy)
    for i in range(max(len(xs), len(ys))):
        acc.update(xs[i] if i < len(xs) else x[:0], ys[i] if i < len(ys) else y[:0])


CONFIGS = list(itertools.product(["valid", "same", "causal", "full", (2, 1)], [1, 2, 3], [1, 2], [1, 2], [False, True]))


@pytest.mark.parametrize("padding, stride, dilation, groups, use_bias", CONFIGS)
def test_forgetting_is_exact_weighted_least_squares(padding, stride, dilation, groups, use_bias):
    rng = np.random.default_rng(len(str(padding)) + 10 * stride + 100 * dilation + 1000 * groups + use_bias)
    conv = dict(stride=stride, padding=padding, dilation=dilation, groups=groups, use_bias=use_bias)
    x, y = data(rng, 400, 2, 2, 3, **conv)
    lam = 0.98
    acc = kr.NormalEquations(3, forgetting=lam, **conv)
    feed(acc, x, y, rng)
    result = acc.solve(warn=False)
    weights = lam ** np.arange(len(y) - 1, -1, -1.0)
    kernel, bias = weighted_fit(x, y, 3, weights, **conv)
    np.testing.assert_allclose(result.kernel, kernel, rtol=1e-9, atol=1e-10)
    if use_bias:
        np.testing.assert_allclose(result.bias, bias, rtol=1e-9, atol=1e-10)
    acc.end_sequence()  # (the last equations of an open sequence wait for its right padding)
    assert acc.n_equations == len(y)
    assert acc.effective_equations == pytest.approx(weights.sum(), rel=1e-12)


@pytest.mark.parametrize("padding, stride, dilation, groups, use_bias", CONFIGS)
def test_window_is_least_squares_on_the_last_equations(padding, stride, dilation, groups, use_bias):
    rng = np.random.default_rng(7 + len(str(padding)) + 10 * stride + 100 * dilation + 1000 * groups + use_bias)
    conv = dict(stride=stride, padding=padding, dilation=dilation, groups=groups, use_bias=use_bias)
    x, y = data(rng, 400, 2, 2, 3, **conv)
    window = 61
    acc = kr.NormalEquations(3, window=window, **conv)
    feed(acc, x, y, rng)
    result = acc.solve(warn=False)
    weights = (np.arange(len(y)) >= len(y) - window).astype(float)
    kernel, bias = weighted_fit(x, y, 3, weights, **conv)
    np.testing.assert_allclose(result.kernel, kernel, rtol=1e-9, atol=1e-10)
    if use_bias:
        np.testing.assert_allclose(result.bias, bias, rtol=1e-9, atol=1e-10)
    acc.end_sequence()
    assert acc.n_equations == window


def test_window_spans_sequences_and_large_windows_use_statistics():
    rng = np.random.default_rng(3)
    x1, y1 = data(rng, 3000, 1, 1, 4, padding="causal")
    x2 = rng.standard_normal((500, 1))
    y2 = kr.conv1d(x2, rng.standard_normal((4, 1, 1)), padding="causal") + 0.1 * rng.standard_normal((500, 1))
    for window in (700, 40_000 // 4):
        acc = kr.NormalEquations(4, padding="causal", window=window)
        for i in range(0, 3000, 97):
            acc.update(x1[i : i + 97], y1[i : i + 97])
        acc.end_sequence()
        acc.update(x2, y2)
        a = np.concatenate(explicit_design(x1, 4, padding="causal") + explicit_design(x2, 4, padding="causal"))
        yy = np.concatenate([y1, y2])
        last = slice(max(len(yy) - window, 0), None)
        ref = np.linalg.lstsq(a[last], yy[last], rcond=None)[0]
        np.testing.assert_allclose(acc.solve().kernel.ravel(), ref.ravel(), rtol=1e-10)
        assert acc.n_equations == min(window, 3500)


def test_forgetting_continues_across_sequences_and_merge():
    rng = np.random.default_rng(4)
    x, y = data(rng, 600, 1, 1, 3, padding="causal")
    lam = 0.99
    whole = kr.NormalEquations(3, padding="causal", forgetting=lam)
    whole.update(x[:300], y[:300])
    whole.end_sequence()
    whole.update(x[300:], y[300:])
    first = kr.NormalEquations(3, padding="causal", forgetting=lam)
    first.update(x[:300], y[:300])
    second = kr.NormalEquations(3, padding="causal", forgetting=lam)
    second.update(x[300:], y[300:])
    first.merge(second)  # the other's equations follow
    a = np.concatenate(explicit_design(x[:300], 3, padding="causal") + explicit_design(x[300:], 3, padding="causal"))
    sw = np.sqrt(lam ** np.arange(599, -1, -1.0))[:, None]
    ref = np.linalg.lstsq(a * sw, y * sw, rcond=None)[0]
    for acc in (whole, first):
        np.testing.assert_allclose(acc.solve().kernel.ravel(), ref.ravel(), rtol=1e-10)


def test_forgetting_matches_padasip_rls_at_long_times():
    padasip = pytest.importorskip("padasip")
    rng = np.random.default_rng(5)
    x, y = data(rng, 3000, 1, 1, 8, noise=0.2, padding="causal", flip=True)
    lam = 0.99
    acc = kr.NormalEquations(8, padding="causal", flip=True, forgetting=lam)
    acc.update(x, y)
    rows = explicit_design(x, 8, padding="causal")[0]  # columns: x[t - 7], ..., x[t]
    rls = padasip.filters.FilterRLS(8, mu=lam, eps=0.1, w="zeros")
    rls.run(y[:, 0], rows[:, ::-1])  # padasip's regressor: newest sample first (convolution order)
    np.testing.assert_allclose(acc.solve().kernel.ravel(), rls.w, rtol=1e-8, atol=1e-10)


def test_forgetting_stderr_matches_monte_carlo():
    rng = np.random.default_rng(6)
    w = np.array([1.0, -0.5, 0.25])
    lam, n, sigma = 0.98, 800, 0.3
    estimates, errors = [], []
    for _ in range(200):
        x = rng.standard_normal(n)
        y = kr.conv1d(x, w, padding="causal") + sigma * rng.standard_normal(n)
        acc = kr.NormalEquations(3, padding="causal", forgetting=lam)
        acc.update(x, y)
        r = acc.solve(warn=False)
        estimates.append(r.kernel.ravel())
        errors.append(r.stderr.ravel())
    spread = np.std(estimates, axis=0)
    np.testing.assert_allclose(np.mean(errors, axis=0), spread, rtol=0.15)


def test_forgetting_one_is_the_plain_accumulator():
    rng = np.random.default_rng(8)
    x, y = data(rng, 300, 2, 1, 4, use_bias=True)
    plain = kr.NormalEquations(4, use_bias=True)
    ones = kr.NormalEquations(4, use_bias=True, forgetting=1.0)
    for acc in (plain, ones):
        acc.update(x, y)
    np.testing.assert_allclose(ones.solve().kernel, plain.solve().kernel, rtol=1e-10)


def test_stride_above_span_with_outputs_ahead_of_inputs():
    rng = np.random.default_rng(9)
    x = rng.standard_normal(50)
    y = kr.conv1d(x, [0.7], stride=3)
    acc = kr.NormalEquations(1, stride=3)
    acc.update(x[:4], y)
    for i in range(4, 50, 4):
        acc.update(x[i : i + 4], y[:0])
    np.testing.assert_allclose(acc.solve().kernel.ravel(), [0.7], rtol=1e-12)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(forgetting=0.0), ValueError, r"`forgetting` must be in \(0, 1\].*0\.0"),
        (dict(forgetting=1.5), ValueError, r"`forgetting` must be in \(0, 1\].*1\.5"),
        (dict(forgetting="0.9"), TypeError, r"`forgetting` must be a real number"),
        (dict(forgetting=True), TypeError, r"`forgetting` must be a real number"),
        (dict(window=0), ValueError, r"`window` must be >= 1, got 0"),
        (dict(window=2.5), TypeError, r"`window` must be an integer"),
        (dict(window=10, forgetting=0.9), ValueError, r"`forgetting` \(=0.9\) or `window` \(=10\), not both"),
    ],
)
def test_bad_memory_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        kr.NormalEquations(3, **kwargs)


def test_window_accumulators_do_not_merge():
    a, b = kr.NormalEquations(2, window=10), kr.NormalEquations(2, window=10)
    with pytest.raises(ValueError, match="`window`"):
        a.merge(b)
    with pytest.raises(ValueError, match="different memories"):
        kr.NormalEquations(2, forgetting=0.9).merge(kr.NormalEquations(2))


TRACK_CONFIGS = [
    dict(padding="causal"),
    dict(padding="valid", stride=2, dilation=3, groups=2, use_bias=True),
    dict(padding="same", dilation=2),
    dict(padding="full", stride=3, use_bias=True),
]


@pytest.mark.parametrize("conv", TRACK_CONFIGS)
@pytest.mark.parametrize("memory", [dict(forgetting=0.985), dict(window=150), dict(window=170), {}])
def test_track_kernel_is_weighted_least_squares_at_every_time(conv, memory):
    rng = np.random.default_rng(11)
    x, y = data(rng, 900, 2, 2, 3, **dict(conv))
    track = kr.track_kernel(x, y, 3, step=50, **memory, **conv)
    m = len(y)
    assert track.times[-1] == m - 1 and np.all(np.diff(track.times) > 0)
    for j in range(0, len(track), 3):
        t = track.times[j] + 1
        idx = np.arange(m)
        if "forgetting" in memory:
            weights = np.where(idx < t, memory["forgetting"] ** (t - 1.0 - idx), 0.0)
        elif "window" in memory:
            weights = ((idx < t) & (idx >= t - memory["window"])).astype(float)
        else:
            weights = (idx < t).astype(float)
        kernel, bias = weighted_fit(x, y, 3, weights, **conv)
        if track.rank[j].min() == 3 * 2 // conv.get("groups", 1) + conv.get("use_bias", False):
            np.testing.assert_allclose(track.kernels[j], kernel, rtol=1e-8, atol=1e-9)
            if conv.get("use_bias"):
                np.testing.assert_allclose(track.bias[j], bias, rtol=1e-8, atol=1e-9)


def test_track_kernel_stderr_is_the_accumulators():
    rng = np.random.default_rng(12)
    x, y = data(rng, 2000, 1, 1, 4, noise=0.3, padding="causal")
    for memory in (dict(forgetting=0.99), dict(window=400)):
        track = kr.track_kernel(x, y, 4, step=100, padding="causal", **memory)
        acc = kr.NormalEquations(4, padding="causal", **memory)
        acc.update(x[:1200], y[:1200])
        r = acc.solve(warn=False)
        j = int(np.flatnonzero(track.times == 1199)[0])
        np.testing.assert_allclose(track.kernels[j], r.kernel, rtol=1e-10)
        np.testing.assert_allclose(track.stderr[j], r.stderr, rtol=1e-8)


def test_track_kernel_follows_an_abrupt_change_and_reports_it():
    rng = np.random.default_rng(13)
    n, cut = 20000, 12000
    x = rng.standard_normal(n)
    w1, w2 = rng.standard_normal(8), rng.standard_normal(8)
    y = np.where(np.arange(n) < cut, kr.conv1d(x, w1, padding="causal"), kr.conv1d(x, w2, padding="causal"))
    y = y + 0.1 * rng.standard_normal(n)
    track = kr.track_kernel(x, y, 8, window=1000, step=100, padding="causal")
    assert len(track.changes) == 1 and abs(track.changes[0] - cut) < 100  # within a tenth of the window
    after = track.times > cut + 1000
    np.testing.assert_allclose(track.kernels[after, :, 0, 0], np.tile(w2, (after.sum(), 1)), atol=0.02)
    with pytest.warns(kr.ChangeWarning, match=r"changed near output sample 1\d{4}.*track_kernel"):
        result = kr.recover_kernel(x, y, 8, padding="causal")
    assert result.diagnostics["checks"]["change"] == "flagged"
    assert abs(result.diagnostics["change"]["times"][0] - cut) < 200


def test_track_kernel_early_times_are_undetermined():
    rng = np.random.default_rng(14)
    x, y = data(rng, 200, 1, 1, 6)
    track = kr.track_kernel(x, y, 6, step=3, window=60)
    assert track.rank[0, 0] < 6 and np.isnan(track.stderr[0]).all()
    assert track.rank[-1, 0] == 6 and np.isfinite(track.stderr[-1]).all()


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(window=10, forgetting=0.9), ValueError, "not both"),
        (dict(forgetting=2.0), ValueError, r"`forgetting` must be in \(0, 1\]"),
        (dict(step=0), ValueError, "`step` must be >= 1, got 0"),
        (dict(window=-3), ValueError, "`window` must be >= 1"),
    ],
)
def test_track_kernel_bad_arguments(kwargs, error, match):
    x = np.arange(50.0)
    with pytest.raises(error, match=match):
        kr.track_kernel(x, x[2:], 3, **kwargs)


def test_track_kernel_refuses_batches():
    x = np.ones((2, 50, 1))
    with pytest.raises(ValueError, match="`x` must be one sequence"):
        kr.track_kernel(x, x[:, 2:], 3)


def test_track_plot():
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    rng = np.random.default_rng(15)
    x, y = data(rng, 600, 1, 1, 3)
    fig = kr.track_kernel(x, y, 3, window=100, step=20).plot()
    assert fig.axes and fig.axes[0].get_xlabel() == "output sample"


def ridge_fit(x, y, kernel_size, weights, ridge, **conv):
    """argmin sum_t weights[t] ||y_t - A_t w||^2 + ridge ||kernel||^2 (bias free), one output channel, by lstsq on
    the design stacked over sqrt(ridge) rows (the penalty as extra equations)."""
    a = explicit_design(x, kernel_size, **conv)[0]
    n_kernel = kernel_size * x.shape[1]
    penalty = np.sqrt(ridge) * np.eye(a.shape[1])[:n_kernel]
    sw = np.sqrt(weights)[:, None]
    coef = np.linalg.lstsq(np.vstack([a * sw, penalty]), np.concatenate([y[:, 0] * sw[:, 0], np.zeros(n_kernel)]))[0]
    return coef[:n_kernel].reshape(kernel_size, x.shape[1]), coef[n_kernel:]


@pytest.mark.parametrize("conv", [dict(padding="causal"), dict(padding="valid", use_bias=True)])
@pytest.mark.parametrize("memory", [dict(window=60), dict(forgetting=0.97), {}])
def test_track_kernel_ridge_is_a_windowed_ridge_solve(conv, memory):
    rng = np.random.default_rng(21)
    x, y = data(rng, 600, 2, 1, 4, noise=0.5, **dict(conv))
    ridge = 3.0
    track = kr.track_kernel(x, y, 4, step=40, ridge=ridge, **memory, **conv)
    assert track.options["ridge"] == ridge
    plain = kr.track_kernel(x, y, 4, step=40, **memory, **conv)
    np.testing.assert_array_equal(track.rank, plain.rank)  # the ranks are the data's, not the penalty's
    idx = np.arange(len(y))
    for j in range(0, len(track), 2):
        t = track.times[j] + 1
        if "window" in memory:
            weights = ((idx < t) & (idx >= t - memory["window"])).astype(float)
        elif "forgetting" in memory:
            weights = np.where(idx < t, memory["forgetting"] ** (t - 1.0 - idx), 0.0)
        else:
            weights = (idx < t).astype(float)
        kernel, bias = ridge_fit(x, y, 4, weights, ridge, **conv)
        np.testing.assert_allclose(track.kernels[j, :, :, 0], kernel, rtol=1e-8, atol=1e-10)
        if conv.get("use_bias"):
            np.testing.assert_allclose(track.bias[j], bias, rtol=1e-8, atol=1e-10)
    # the penalty shrinks: every estimate is shorter than the unpenalized one of the same data
    shrunk, unpenalized = (np.linalg.norm(t.kernels.reshape(len(t), -1), axis=1) for t in (track, plain))
    assert np.all(shrunk[np.isfinite(unpenalized)] < unpenalized[np.isfinite(unpenalized)])


def test_track_kernel_ridge_stderr_is_recover_kernels_posterior():
    rng = np.random.default_rng(22)
    x, y = data(rng, 1000, 1, 1, 5, noise=0.4, padding="causal")
    track = kr.track_kernel(x, y, 5, step=100, ridge=2.0, padding="causal")  # growing: all equations so far
    j = int(np.flatnonzero(track.times == 599)[0])
    res = kr.recover_kernel(x[:600], y[:600], 5, padding="causal", ridge=2.0)
    np.testing.assert_allclose(track.kernels[j], res.kernel, rtol=1e-9)
    np.testing.assert_allclose(track.stderr[j], res.stderr, rtol=1e-6)


@pytest.mark.parametrize("regularization", ["tc", "GCV", "ss"])
def test_track_kernel_regularization_says_what_to_do(regularization):
    x = np.random.default_rng(23).standard_normal(300)
    match = rf"`regularization`='{regularization.lower()}' is not applied per step.*ridge="
    with pytest.raises(ValueError, match=match):
        kr.track_kernel(x, x[2:], 3, regularization=regularization)
    with pytest.raises(ValueError, match=r"`regularization` must be .* got 'tcc' \(did you mean 'tc'\?\)"):
        kr.track_kernel(x, x[2:], 3, regularization="tcc")


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(ridge=-1.0), ValueError, r"`ridge` must be >= 0"),
        (dict(ridge="big"), TypeError, r"`ridge` must be a real number"),
        (dict(rige=1.0), TypeError, r"unexpected keyword argument 'rige' \(did you mean 'ridge'\?\)"),
        (dict(strides=2), TypeError, r"unexpected keyword argument 'strides' \(did you mean 'stride'\?\)"),
    ],
)
def test_track_kernel_bad_ridge_and_names(kwargs, error, match):
    x = np.arange(50.0)
    with pytest.raises(error, match=match):
        kr.track_kernel(x, x[2:], 3, **kwargs)
