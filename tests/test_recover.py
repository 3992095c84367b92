"""recover_kernel: round trips over every configuration, worked examples, exactness against explicit lstsq."""

import numpy as np
import pytest
import scipy.linalg
from hypothesis import given, settings
from hypothesis import strategies as st

import kernel_recovery as kr
from kernel_recovery.model.design import EXPLICIT_LIMIT


def explicit_design(x, k, stride=1, dilation=1, left=0, right=0, bias=False):
    """Hand-built Toeplitz design of a single-channel sequence, rows = outputs, columns = taps (+ bias)."""
    xp = np.concatenate([np.zeros(left), x, np.zeros(right)])
    span = (k - 1) * dilation + 1
    m = (len(xp) - span) // stride + 1
    a = np.array([[xp[t * stride + j * dilation] for j in range(k)] for t in range(m)])
    return np.column_stack([a, np.ones(m)]) if bias else a


@st.composite
def recovery_configs(draw):
    groups = draw(st.integers(1, 2))
    cin = groups * draw(st.integers(1, 2))
    cout = groups * draw(st.integers(1, 2))
    k = draw(st.integers(1, 5))
    stride = draw(st.integers(1, 3))
    dilation = draw(st.integers(1, 3))
    padding = draw(st.sampled_from(["valid", "same", "causal", "full", 2, (1, 3)]))
    use_bias = draw(st.booleans())
    unknowns = k * cin // groups + use_bias
    span = (k - 1) * dilation + 1
    lengths = draw(
        st.lists(st.integers(span + stride * (unknowns + 4), span + stride * (unknowns + 20)), min_size=1, max_size=3)
    )
    return dict(
        groups=groups,
        cin=cin,
        cout=cout,
        k=k,
        stride=stride,
        dilation=dilation,
        padding=padding,
        use_bias=use_bias,
        lengths=lengths,
        layout=draw(st.sampled_from(["nwc", "ncw"])),
        flip=draw(st.booleans()),
        ragged=draw(st.booleans()),
        seed=draw(st.integers(0, 2**31)),
    )


@settings(max_examples=120, deadline=None)
@given(recovery_configs())
def test_round_trip_every_configuration(c):
    rng = np.random.default_rng(c["seed"])
    conf = dict(
        stride=c["stride"],
        padding=c["padding"],
        dilation=c["dilation"],
        groups=c["groups"],
        layout=c["layout"],
        flip=c["flip"],
    )
    w = rng.standard_normal((c["k"], c["cin"] // c["groups"], c["cout"]))
    b = rng.standard_normal(c["cout"]) if c["use_bias"] else None
    if c["ragged"]:
        x = [rng.standard_normal((n, c["cin"]) if c["layout"] == "nwc" else (c["cin"], n)) for n in c["lengths"]]
    else:
        n = c["lengths"][0]
        x = rng.standard_normal(
            (len(c["lengths"]), n, c["cin"]) if c["layout"] == "nwc" else (len(c["lengths"]), c["cin"], n)
        )
    y = kr.conv1d(x, w, b, **conf)
    res = kr.recover_kernel(x, y, c["k"], use_bias=c["use_bias"], **conf)
    assert res.report.ok and res.success
    np.testing.assert_allclose(res.kernel, w, rtol=1e-9, atol=1e-9)
    if b is not None:
        np.testing.assert_allclose(res.bias, b, rtol=1e-9, atol=1e-9)
    else:
        assert res.bias is None
    assert res.residual_rms < 1e-9


def test_tutorial_single_filter():
    res = kr.recover_kernel([0, 3, 4, 5], [6, 11, 14], 2)
    np.testing.assert_allclose(res.kernel.ravel(), [1, 2], atol=1e-12)
    assert res.report.equations.tolist() == [3] and res.report.unknowns.tolist() == [2]
    assert res.report.status == "overdetermined"


def test_tutorial_two_channel_determined():
    x = [[0, 0], [3, 6], [4, 7], [5, 8], [1, 2], [4, 5], [2, 0], [0, 1]]
    y = [14, 20, 14, 15, 10, 4]
    res = kr.recover_kernel(x, y, 3)
    np.testing.assert_allclose(res.kernel[:, :, 0], [[1, 0], [0, 1], [2, 0]], atol=1e-12)
    assert res.report.status == "determined"
    assert res.report.equations.tolist() == [6] and res.report.unknowns.tolist() == [6]


def test_tutorial_two_filters_are_two_overdetermined_systems():
    res = kr.recover_kernel([0, 3, 4, 5], [[6, 12], [11, 25], [14, 32]], 2)
    np.testing.assert_allclose(res.kernel[:, 0, :], [[1, 3], [2, 4]], atol=1e-12)
    assert res.report.status == "overdetermined"
    assert res.report.equations.tolist() == [3, 3] and res.report.unknowns.tolist() == [2, 2]


def test_same_padding_with_bias_worked_example():
    # x = [1, 2, 3, 4], kernel [1, -1, 2], bias 0.5, 'same' pads one zero each side:
    # y[t] = x[t-1] - x[t] + 2 x[t+1] + 0.5 -> [0-1+4, 1-2+6, 2-3+8, 3-4+0] + 0.5
    y = np.array([3.5, 5.5, 7.5, -0.5])
    np.testing.assert_allclose(kr.conv1d([1, 2, 3, 4], [1, -1, 2], [0.5], padding="same"), y)
    x = np.array([1.0, 2.0, 3.0, 4.0, 0.5, -1.0])
    y = kr.conv1d(x, [1, -1, 2], [0.5], padding="same")
    res = kr.recover_kernel(x, y, 3, padding="same", use_bias=True)
    np.testing.assert_allclose(res.kernel.ravel(), [1, -1, 2], atol=1e-12)
    np.testing.assert_allclose(res.bias, [0.5], atol=1e-12)


@pytest.mark.parametrize("bias", [False, True])
def test_noisy_matches_explicit_lstsq(bias, rng):
    x = rng.standard_normal(60)
    y = kr.conv1d(x, rng.standard_normal(4), padding=(2, 1), stride=2, dilation=2) + 0.1 * rng.standard_normal(29)
    a = explicit_design(x, 4, stride=2, dilation=2, left=2, right=1, bias=bias)
    ref = np.linalg.lstsq(a, y, rcond=None)[0]
    res = kr.recover_kernel(x, y, 4, padding=(2, 1), stride=2, dilation=2, use_bias=bias)
    np.testing.assert_allclose(res.kernel.ravel(), ref[:4], rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(res.residual_rms, np.sqrt(np.mean((a @ ref - y) ** 2)), rtol=1e-12)
    assert res.stderr is not None and res.stderr.shape == (4, 1, 1)


def test_normal_equations_path_matches_explicit_lstsq(rng):
    # large enough that the design is never built explicitly
    n, k, cin = 200_000, 8, 3
    assert n * k * cin > EXPLICIT_LIMIT
    x = rng.standard_normal((n, cin))
    y = kr.conv1d(x, rng.standard_normal((k, cin, 1))) + 0.01 * rng.standard_normal((n - k + 1, 1))
    a = np.lib.stride_tricks.sliding_window_view(x, k, axis=0).transpose(0, 2, 1).reshape(n - k + 1, k * cin)
    ref = np.linalg.lstsq(a, y, rcond=None)[0].reshape(k, cin, 1)
    res = kr.recover_kernel(x, y, k)
    np.testing.assert_allclose(res.kernel, ref, rtol=1e-9, atol=1e-11)


def test_rank_deficient_gives_minimum_norm_and_warns(rng):
    # a constant input: only the sum of the taps is seen
    x = np.full(20, 2.0)
    y = kr.conv1d(x, [1.0, 2.0, 3.0])
    with pytest.warns(kr.UnderdeterminedWarning, match="rank-deficient.*constant"):
        res = kr.recover_kernel(x, y, 3)
    np.testing.assert_allclose(res.kernel.ravel(), [2.0, 2.0, 2.0], atol=1e-12)  # min-norm with sum 6
    assert res.report.status == "rank_deficient" and res.report.rank.tolist() == [1]


def test_underdetermined_gives_minimum_norm_and_warns(rng):
    x = rng.standard_normal(6)
    y = kr.conv1d(x, rng.standard_normal(4))
    with pytest.warns(kr.UnderdeterminedWarning, match="3 equations for 4 unknowns.*at least 1 more"):
        res = kr.recover_kernel(x, y, 4)
    a = explicit_design(x, 4)
    np.testing.assert_allclose(res.kernel.ravel(), np.linalg.pinv(a) @ y, atol=1e-12)
    assert res.residual_rms < 1e-12


def test_ridge_matches_augmented_system(rng):
    x = rng.standard_normal(40)
    y = kr.conv1d(x, rng.standard_normal(5)) + 0.3 * rng.standard_normal(36)
    a = explicit_design(x, 5)
    lam = 2.5
    ref = np.linalg.solve(a.T @ a + lam * np.eye(5), a.T @ y)
    res = kr.recover_kernel(x, y, 5, ridge=lam)
    np.testing.assert_allclose(res.kernel.ravel(), ref, rtol=1e-10)
    assert res.options["ridge"] == lam


def test_custom_method_callable(rng):
    def zeros(problem):
        return kr.Solution(kernels=[np.zeros((b.taps, b.channels, len(b.out_channels))) for b in problem.blocks])

    x = rng.standard_normal(30)
    res = kr.recover_kernel(x, kr.conv1d(x, [1.0, 2.0]), 2, method=zeros)
    assert res.method == "zeros" and np.all(res.kernel == 0)
    assert res.residual_rms > 0


def test_unknown_method_and_option():
    with pytest.raises(ValueError, match="`method` must be one of 'lstsq'"):
        kr.recover_kernel([1.0, 2, 3], [1.0, 2], 2, method="magic")
    with pytest.raises(TypeError, match="method 'lstsq' got an unexpected option 'steps'"):
        kr.recover_kernel([1.0, 2, 3], [1.0, 2], 2, steps=10)


def test_predict_reproduces_y(rng):
    x = rng.standard_normal((2, 3, 40))
    w = rng.standard_normal((3, 3, 2))
    y = kr.conv1d(x, w, stride=2, padding="same", layout="ncw")
    res = kr.recover_kernel(x, y, 3, stride=2, padding="same", layout="ncw")
    np.testing.assert_allclose(res.predict(x), y, atol=1e-10)


def test_inputs_not_mutated_and_results_do_not_alias(rng):
    x = rng.standard_normal((50, 2))
    y = kr.conv1d(x, rng.standard_normal((3, 2, 1)))
    x0, y0 = x.copy(), y.copy()
    res = kr.recover_kernel(x, y, 3)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(y, y0)
    assert x.flags.writeable and y.flags.writeable
    assert not np.shares_memory(res.kernel, x) and not np.shares_memory(res.kernel, y)


def test_confidence_interval_method_is_the_t_interval(rng):
    from scipy.stats import t

    x = rng.standard_normal(300)
    y = kr.conv1d(x, [1.0, -0.5, 0.25]) + 0.1 * rng.standard_normal(298)
    res = kr.recover_kernel(x, y, 3)
    lo, hi = res.confidence_interval(0.9)
    half = t.ppf(0.95, 298 - 3) * res.stderr
    np.testing.assert_allclose(lo, res.kernel - half)
    np.testing.assert_allclose(hi, res.kernel + half)


@pytest.mark.parametrize("method", ["lstsq", "fft", "adam"])
@pytest.mark.parametrize("stride, dilation", [(1, 1), (2, 1), (1, 2)])
def test_ragged_batch_with_a_sequence_too_short_for_any_output(method, stride, dilation, rng):
    # campaign seed 3311: a ragged list whose third sequence is shorter than the receptive field gives it no
    # output (an empty y, as Keras and PyTorch give); it contributes no equations, the others are fitted
    k = 2
    lengths = (23, 31, dilation * (k - 1))  # the last one sample shorter than the receptive field
    xs = [rng.standard_normal((n, 2)) for n in lengths]
    w_true = rng.standard_normal((k, 1, 4))
    conf = dict(stride=stride, dilation=dilation, groups=2, flip=True)
    ys = kr.conv1d(xs, w_true, rng.standard_normal(4), **conf)
    assert [y.shape for y in ys][2] == (0, 4)  # conv1d's output for the short sequence
    ys = [y + 0.1 * rng.standard_normal(y.shape) for y in ys]
    # the reference: explicit lstsq per output channel over the two long sequences (flip: the taps reversed)
    ref = np.zeros((k, 1, 4))
    for o in range(4):
        g = o // 2
        a = np.vstack([explicit_design(x[:, g], k, stride=stride, dilation=dilation, bias=True) for x in xs[:2]])
        coef = np.linalg.lstsq(a, np.concatenate([y[:, o] for y in ys[:2]]), rcond=None)[0]
        ref[:, 0, o] = coef[:k][::-1]
    opts = {"wiener": False} if method == "fft" else {}  # (fft's Wiener ridge is not least squares)
    res = kr.recover_kernel(xs, ys, k, use_bias=True, method=method, **conf, **opts)
    dropped = kr.recover_kernel(xs[:2], ys[:2], k, use_bias=True, method=method, **conf, **opts)
    np.testing.assert_array_equal(res.kernel, dropped.kernel)
    np.testing.assert_array_equal(res.bias, dropped.bias)
    if method != "adam":  # (adam: a few hundred iterations, its own tests bound its loss)
        np.testing.assert_allclose(res.kernel, ref, rtol=1e-9, atol=1e-10)
    n_eq = sum(len(explicit_design(x[:, 0], k, stride=stride, dilation=dilation)) for x in xs[:2])
    np.testing.assert_array_equal(res.report.equations, [n_eq] * 4)
    np.testing.assert_array_equal(kr.analyze(xs, ys, k, use_bias=True, **conf).equations, [n_eq] * 4)
    assert [p.shape for p in res.predict(xs)] == [y.shape for y in ys]


def test_ragged_batch_lengths_judged_together():
    x = [np.ones(6), np.ones(1)]
    with pytest.raises(ValueError, match=r"every sequence of `x` is too short for one output: the longest has 2"):
        kr.recover_kernel([np.ones(2), np.ones(1)], [np.ones(0), np.ones(0)], 3)
    with pytest.raises(ValueError, match=r"every sequence of `x` is too short"):
        kr.conv1d([np.ones(2), np.ones(1)], np.ones(3))
    with pytest.raises(ValueError, match=r"`y` \(sequence 1\) has 1 samples but 1 input samples .* give 0 outputs"):
        kr.recover_kernel(x, [np.ones(4), np.ones(1)], 3)
    with pytest.raises(ValueError, match=r"`x\[1\]` is empty \(length 0, 1 channels\)"):
        kr.recover_kernel([np.ones(6), np.ones(0)], [np.ones(4), np.ones(0)], 3)


@pytest.mark.parametrize("use_bias", [False, True])
def test_analyze_null_space_has_one_entry_per_group_when_omit_splits_a_group(use_bias, rng):
    # issue 26: nan_policy='omit' with NaN at different samples of two output channels of one group gives each its
    # own block (their designs differ); the report listed a null space per block (4 entries for groups=2). One per
    # group: the directions no output channel of the group sees, against scipy's null space of the explicit design
    # with every channel's rows (the union of the equations left)
    k, n = 5, 8
    x = rng.standard_normal((n, 2))
    y = kr.conv1d(x, rng.standard_normal((k, 1, 4)), groups=2)
    y[0, 0] = np.nan  # group 0: channel 0 loses output 0, channel 1 output 2
    y[2, 1] = np.nan
    with pytest.warns(kr.UnderdeterminedWarning):
        report = kr.analyze(x, y, k, groups=2, use_bias=use_bias, nan_policy="omit")
    assert len(report.null_space) == 2 and (not use_bias or len(report.null_space_bias) == 2)
    for g in range(2):
        a = explicit_design(x[:, g], k, bias=use_bias)  # rows: outputs 0..3
        if g == 0:
            a = np.vstack([a[[1, 2, 3]], a[[0, 1, 3]]])  # each channel's remaining rows
        ref = scipy.linalg.null_space(a)
        got = report.null_space[g].reshape(len(report.null_space[g]), -1)
        if use_bias:
            got = np.column_stack([got, report.null_space_bias[g]])
        assert got.shape[0] == ref.shape[1]
        np.testing.assert_allclose(got @ got.T, np.eye(len(got)), atol=1e-10)  # orthonormal
        np.testing.assert_allclose(got.T @ got @ ref, ref, atol=1e-10)  # the same span
