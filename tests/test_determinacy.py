"""The analyzer beyond counting: causes, invisible directions, excitation, accuracy, planning, kernel-size check."""

import json
import warnings

import numpy as np
import pytest

import kernel_recovery as kr
from kernel_recovery.model import spectrum


def reference_design(x, kernel_size, use_bias=False, **cfg):
    """The design built column by column from the forward model: column (k, c) = conv1d(x, unit kernel)."""
    x2 = np.asarray(x, dtype=float).reshape(len(x), -1)
    cin = x2.shape[1] // cfg.get("groups", 1)
    cols = []
    for k in range(kernel_size):
        for c in range(cin):
            e = np.zeros((kernel_size, cin, 1))
            e[k, c, 0] = 1.0
            cols.append(np.asarray(kr.conv1d(x2, e, **cfg)).reshape(-1))
    if use_bias:
        cols.append(np.ones_like(cols[0]))
    return np.column_stack(cols)


def null_basis(a):
    _, s, vt = np.linalg.svd(a, full_matrices=True)
    tol = s[0] * max(a.shape) * np.finfo(float).eps
    return vt[int((s > tol).sum()) :].T


def check_null_space(rep, x, use_bias=False, **cfg):
    """The report's null space is exactly invisible and spans the reference design's null space."""
    k = rep.config.kernel_size
    a = reference_design(x, k, use_bias, **cfg)
    ref = null_basis(a)
    null = rep.null_space[0]
    assert null.shape[0] == ref.shape[1] == rep.unknowns[0] - rep.rank[0]
    scale = np.linalg.norm(a, 2)
    vecs = []
    for i, v in enumerate(null):
        b = rep.null_space_bias[0][i] if use_bias else None
        out = np.asarray(kr.conv1d(x, v[:, :, None], None if b is None else [b], **cfg))
        assert np.max(np.abs(out)) < 1e-11 * scale  # exactly invisible on these data
        vecs.append(np.append(v.ravel(), b) if use_bias else v.ravel())
    if vecs:
        vecs = np.array(vecs).T
        np.testing.assert_allclose(vecs.T @ vecs, np.eye(vecs.shape[1]), atol=1e-10)  # orthonormal
        np.testing.assert_allclose(vecs @ vecs.T, ref @ ref.T, atol=1e-8)  # same subspace


def analyze_quiet(*args, **kwargs):
    with pytest.warns(kr.UnderdeterminedWarning):
        return kr.analyze(*args, **kwargs)


# --- causes ---------------------------------------------------------------------------------


def test_constant_channel_is_confounded_with_bias(rng):
    x = np.column_stack([rng.standard_normal(200), np.full(200, 3.0)])
    rep = analyze_quiet(x, None, 4, use_bias=True)
    assert rep.cause_codes == ("constant_channel",)
    assert "input channel 1 is constant" in rep.causes[0] and "bias" in rep.causes[0]
    assert rep.rank[0] == 9 - 4  # 3 tap differences + (tap sum vs bias)
    assert rep.excitation_order.tolist() == [4, 1]
    check_null_space(rep, x, use_bias=True)


def test_zero_channel(rng):
    x = np.column_stack([np.zeros(100), rng.standard_normal(100)])
    rep = analyze_quiet(x, None, 3)
    assert rep.cause_codes == ("zero_channel",) and "input channel 0 is zero" in rep.causes[0]
    check_null_space(rep, x)
    # taps of the live channel are still determined: per-coefficient error against the reference
    k = rep.kernel_error_per_unit_noise[:, :, 0]
    assert np.all(np.isinf(k[:, 0]))
    a1 = reference_design(x[:, 1], 3)
    np.testing.assert_allclose(k[:, 1], np.sqrt(np.diag(np.linalg.inv(a1.T @ a1))), rtol=1e-9)


@pytest.mark.parametrize("ratio, code", [(1.0, "identical_channels"), (-2.5, "proportional_channels")])
def test_identical_and_proportional_channels(ratio, code, rng):
    a = rng.standard_normal(150)
    x = np.column_stack([a, rng.standard_normal(150), ratio * a])
    rep = analyze_quiet(x, None, 3)
    assert rep.cause_codes == (code,)
    assert "input channels 0 and 2" in rep.causes[0]
    assert rep.rank[0] == 6 and rep.excitation_order.tolist() == [3, 3, 3]
    check_null_space(rep, x)


def test_delayed_copy_is_a_related_channel(rng):
    a = rng.standard_normal(201)
    x = np.column_stack([a[1:], a[:-1]])  # channel 1 is channel 0 one sample later
    rep = analyze_quiet(x, None, 4)
    assert rep.cause_codes == ("related_channels",) and "input channel(s) 1" in rep.causes[0]
    assert rep.rank[0] == 5  # 4 + 4 taps see only 5 distinct samples
    check_null_space(rep, x)


@pytest.mark.parametrize("freqs, order", [((0.3,), 2), ((0.3, 1.1), 4), ((0.0, 0.7), 3)])
def test_too_few_frequencies(freqs, order):
    t = np.arange(300)
    x = sum(np.cos(f * t + 0.4) for f in freqs)
    rep = analyze_quiet(x, None, 6)
    assert rep.cause_codes == ("few_frequencies",) and rep.rank[0] == order
    assert rep.excitation_order.tolist() == [order] and rep.joint_excitation_order.tolist() == [order]
    assert f"excites only {order} of its 6 tap directions" in rep.causes[0]
    for f in freqs:  # the frequencies are named, recovered from the annihilating polynomial
        assert f"{f:g}" in rep.causes[0]
    check_null_space(rep, x)


def test_too_short_record_and_the_data_needed(rng):
    x = rng.standard_normal((9, 2))
    rep = analyze_quiet(x, None, 5, use_bias=True)
    assert rep.cause_codes == ("too_short",) and rep.status == "underdetermined"
    # 11 unknowns: one sequence of L gives L - 4 equations
    assert rep.min_length == 15 and rep.min_sequences == 3
    assert "a record of at least 15 samples, or 3 sequences of 9 samples" in str(rep)
    check_null_space(rep, x, use_bias=True)
    assert kr.analyze(rng.standard_normal((15, 2)), None, 5, use_bias=True).status == "determined"
    assert kr.analyze([rng.standard_normal((9, 2)) for _ in range(3)], None, 5, use_bias=True).ok


def test_padding_and_stride_leave_taps_untouched(rng):
    # frames of 2 samples, 'same' padding, stride 2: one output per frame reads samples -1..3
    xs = rng.standard_normal((40, 2, 1))
    rep = analyze_quiet(xs, None, 5, padding="same", stride=2)
    assert rep.untouched_taps == (0, 3, 4) and "untouched_taps" in rep.cause_codes
    assert "tap(s) [0, 3, 4] untouched" in " ".join(rep.causes)
    a = np.concatenate([reference_design(x, 5, padding="same", stride=2) for x in xs])
    assert np.flatnonzero(~a.any(axis=0)).tolist() == [0, 3, 4]
    assert rep.rank[0] == np.linalg.matrix_rank(a) == 2
    n = rep.min_length  # the shortest frame length that reaches every tap with 40 frames
    assert kr.analyze(rng.standard_normal((40, n, 1)), None, 5, padding="same", stride=2).ok
    with pytest.warns(kr.UnderdeterminedWarning, match="untouched"):
        kr.analyze(rng.standard_normal((40, n - 1, 1)), None, 5, padding="same", stride=2)
    flipped = analyze_quiet(xs, None, 5, padding="same", stride=2, flip=True)
    assert flipped.untouched_taps == (0, 1, 4)


def test_bias_confounded_by_channels_that_sum_to_a_constant(rng):
    a = rng.standard_normal(120)
    x = np.column_stack([a, 1.0 - a])
    rep = analyze_quiet(x, None, 1, use_bias=True)
    assert rep.cause_codes == ("bias_confounded",)
    assert kr.analyze(x, None, 1).ok  # without the bias the channels are independent
    check_null_space(rep, x, use_bias=True)


def test_several_causes_and_their_advice(rng):
    t = np.arange(200)
    x = np.column_stack([np.sin(0.5 * t), np.zeros(200), rng.standard_normal(200)])
    rep = analyze_quiet(x, None, 4)
    assert set(rep.cause_codes) == {"few_frequencies", "zero_channel"}
    assert any("broadband" in a for a in rep.advice) and any("input channel 1" in a for a in rep.advice)
    check_null_space(rep, x)


def test_stride_dilation_groups_null_space_is_invisible(rng):
    x = np.column_stack([np.ones(80), rng.standard_normal(80)])
    cfg = dict(stride=2, dilation=3)
    rep = analyze_quiet(x, None, 3, **cfg)
    assert "constant_channel" in rep.cause_codes
    check_null_space(rep, x, **cfg)


@pytest.mark.parametrize("qr_budget", [0.0, 4e9])
def test_large_record_uses_the_gram_and_finds_the_sinusoid(qr_budget, monkeypatch):
    # the Gram's eigenvalues alone (no QR), or settled by a QR of the design
    monkeypatch.setattr(spectrum, "QR_BUDGET", qr_budget)
    t = np.arange(300_000)
    x = np.sin(0.2 * t) + 0.5 * np.sin(0.9 * t)
    rep = analyze_quiet(x, None, 16)
    assert rep.exact_rank == (qr_budget > 0)
    assert rep.rank.tolist() == [4] and rep.excitation_order.tolist() == [4]
    assert rep.cause_codes == ("few_frequencies",)
    for v in rep.null_space[0][:3]:
        out = kr.conv1d(x[:5000], v[:, :, None])
        assert np.max(np.abs(out)) < 1e-6


# --- excitation and accuracy ------------------------------------------------------------------


def test_excitation_orders_against_explicit_ranks(rng):
    t = np.arange(300)
    x = np.column_stack([rng.standard_normal(300), np.cos(0.4 * t), np.cos(0.4 * t + 1.0)])
    rep = analyze_quiet(x, None, 5)
    a = reference_design(x, 5).reshape(-1, 5, 3)
    assert rep.excitation_order.tolist() == [np.linalg.matrix_rank(a[:, :, c]) for c in range(3)] == [5, 2, 2]
    joint = max(n for n in range(6) if np.linalg.matrix_rank(a[:, :n, :].reshape(len(a), -1)) == 3 * n)
    assert rep.joint_excitation_order.tolist() == [joint] == [1]


def test_error_per_unit_noise_predicts_the_monte_carlo_error(rng):
    x = rng.standard_normal((60, 2))
    w = rng.standard_normal((3, 2, 1))
    rep = kr.analyze(x, None, 3, use_bias=True, noise_level=0.2)
    y0 = kr.conv1d(x, w, [0.5])
    errs = []
    for _ in range(400):
        res = kr.recover_kernel(x, y0 + 0.2 * rng.standard_normal(y0.shape), 3, use_bias=True)
        errs.append(np.sum((res.kernel - w) ** 2) + (res.bias[0] - 0.5) ** 2)
    np.testing.assert_allclose(np.sqrt(np.mean(errs)), rep.expected_error[0], rtol=0.1)
    a = reference_design(x, 3, use_bias=True)
    inv = np.linalg.inv(a.T @ a)
    np.testing.assert_allclose(rep.kernel_error_per_unit_noise.ravel(), np.sqrt(np.diag(inv))[:6], rtol=1e-9)
    np.testing.assert_allclose(rep.bias_error_per_unit_noise, np.sqrt(inv[6, 6]), rtol=1e-9)


def test_noise_level_per_channel_and_samples_for_error(rng):
    x = rng.standard_normal(500)
    rep = kr.analyze(x, rng.standard_normal((496, 2)), 5, noise_level=[0.1, 0.3])
    np.testing.assert_allclose(rep.expected_error, [0.1, 0.3] * rep.error_per_unit_noise)
    need = rep.samples_for_error(0.01)
    longer = kr.analyze(rng.standard_normal(int(need[1]) + 4), None, 5, noise_level=0.3)
    assert longer.expected_error[0] == pytest.approx(0.01, rel=0.1)


@pytest.mark.parametrize(
    "bad, err",
    [
        (0.0, ValueError),
        (-0.1, ValueError),
        (np.inf, ValueError),
        (np.nan, ValueError),
        (True, TypeError),
        ("0.1", TypeError),
    ],
)
def test_samples_for_error_bad_target(bad, err):
    rep = kr.plan(5, lengths=100, noise_level=0.1)
    with pytest.raises(err, match="`target_error`"):
        rep.samples_for_error(bad)


def test_report_dict_json_and_text(rng):
    t = np.arange(100)
    rep = analyze_quiet(np.sin(0.3 * t), None, 4, noise_level=0.1)
    d = json.loads(rep.to_json())
    assert d["cause_codes"] == ["few_frequencies"] and d["excitation_order"] == [2]
    assert np.array(d["null_space"][0]).shape == (2, 4, 1) and d["source"] == "data"
    text = str(rep)
    for piece in (
        "RANK-DEFICIENT",
        "excitation order",
        "invisible directions: 2",
        "cause: input channel 0 has too few",
        "what to do:",
        "singular values",
    ):
        assert piece in text
    spec = rep.spectrum()
    assert spec["rank"] == [2] and len(spec["singular_values"][0]) == 4


@pytest.mark.parametrize("bad", [-1.0, [0.1, 0.2], "x", np.nan])
def test_bad_noise_level(bad, rng):
    with pytest.raises(ValueError, match="noise_level"):
        kr.analyze(rng.standard_normal(20), None, 3, noise_level=bad)


# --- planning -----------------------------------------------------------------------------------

PLANS = [
    dict(kernel_size=5, lengths=300),
    dict(kernel_size=4, lengths=[40, 55, 70], in_channels=2, use_bias=True),
    dict(kernel_size=6, lengths=200, batch=3, in_channels=4, out_channels=2, groups=2, padding="same", stride=2),
    dict(kernel_size=3, lengths=150, in_channels=3, dilation=2, padding="causal", use_bias=True),
    dict(kernel_size=7, lengths=9, padding="full", stride=3),
    dict(kernel_size=5, lengths=2, batch=40, padding="same", stride=2),
    dict(kernel_size=4, lengths=6, in_channels=2, padding=(1, 2)),
]


@pytest.mark.parametrize("spec", PLANS, ids=range(len(PLANS)))
def test_plan_agrees_with_analyze_on_white_noise(spec, rng):
    spec = dict(spec)
    k = spec.pop("kernel_size")
    lengths, batch = spec.pop("lengths"), spec.pop("batch", None)
    cin, cout = spec.pop("in_channels", 1), spec.pop("out_channels", None)
    rep_plan = kr.plan(k, lengths=lengths, batch=batch, in_channels=cin, out_channels=cout, **spec)
    lens = [lengths] * (batch or 1) if isinstance(lengths, int) else lengths
    xs = [rng.standard_normal((n, cin)) for n in lens]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", kr.UnderdeterminedWarning)
        rep = kr.analyze(xs, None, k, out_channels=cout, **spec)
    for name in ("equations", "unknowns", "rank"):
        assert getattr(rep_plan, name).tolist() == getattr(rep, name).tolist(), name
    assert (rep_plan.status, rep_plan.channel_status) == (rep.status, rep.channel_status)
    assert (rep_plan.min_length, rep_plan.min_sequences, rep_plan.untouched_taps) == (
        rep.min_length,
        rep.min_sequences,
        rep.untouched_taps,
    )
    assert rep_plan.cause_codes == rep.cause_codes
    assert [n.shape for n in rep_plan.null_space] == [n.shape for n in rep.null_space] or not rep.ok
    if rep.ok and rep.equations[0] > 20 * rep.unknowns[0]:
        np.testing.assert_allclose(rep_plan.error_per_unit_noise, rep.error_per_unit_noise, rtol=0.15)
        np.testing.assert_allclose(rep_plan.condition_number, rep.condition_number, rtol=0.3)


def test_plan_min_length_is_the_threshold(rng):
    for spec in PLANS:
        spec = {k: v for k, v in spec.items() if k not in ("lengths", "batch")}
        k = spec.pop("kernel_size")
        n = kr.plan(k, lengths=100, batch=2, **spec).min_length
        assert kr.plan(k, lengths=n, batch=2, **spec).ok
        if n > 1:
            try:
                short = kr.plan(k, lengths=n - 1, batch=2, **spec)
            except ValueError:
                continue  # shorter than one receptive field
            assert not short.ok


def test_plan_text_and_expected_error():
    rep = kr.plan(8, lengths=1000, in_channels=2, noise_level=0.05, use_bias=True)
    assert rep.source == "plan" and rep.ok
    np.testing.assert_allclose(rep.expected_error, 0.05 * np.sqrt(17 / (993 - 18)))
    text = str(rep)
    assert (
        "Planned determinacy" in text and "white-noise input" in text and "data needed: a record of at least 24" in text
    )
    n = rep.samples_for_error(0.002)[0]
    assert kr.plan(8, lengths=int(n) + 7, in_channels=2, noise_level=0.05, use_bias=True).expected_error[0] <= 0.002
    json.dumps(rep.to_dict())


@pytest.mark.parametrize(
    "kwargs, err, match",
    [
        (dict(lengths=0), ValueError, "lengths"),
        (dict(lengths="10"), TypeError, "lengths"),
        (dict(lengths=[10, 20], batch=3), ValueError, "batch"),
        (dict(lengths=2), ValueError, "too short"),
        (dict(lengths=10, input_std=0), ValueError, "input_std"),
        (dict(lengths=10, in_channels=3, groups=2), ValueError, "groups"),
    ],
)
def test_plan_bad_input(kwargs, err, match):
    with pytest.raises(err, match=match):
        kr.plan(4, **kwargs)


def test_plan_warns_when_asked():
    with pytest.warns(kr.UnderdeterminedWarning, match="too short a record"):
        kr.plan(10, lengths=12, warn=True)


# --- the kernel-size check in recover_kernel -------------------------------------------------------

CONFIGS = [
    dict(),
    dict(padding="same", use_bias=True),
    dict(padding="causal", stride=2),
    dict(dilation=2, padding=(3, 1)),
    dict(flip=True, padding="full"),
]


@pytest.mark.parametrize("cfg", CONFIGS, ids=range(len(CONFIGS)))
@pytest.mark.parametrize("noise", [0.0, 0.3])
def test_no_kernel_size_warning_at_the_right_size(cfg, noise):
    rng = np.random.default_rng(7)
    for _ in range(3):
        x = rng.standard_normal((3000, 2))
        w = rng.standard_normal((5, 2, 3))
        y = kr.conv1d(
            x, w, [0.1, 0.2, 0.3] if cfg.get("use_bias") else None, **{k: v for k, v in cfg.items() if k != "use_bias"}
        )
        y = y + noise * rng.standard_normal(y.shape)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            kr.recover_kernel(x, y, 5, **cfg)


@pytest.mark.parametrize(
    "cfg, side",
    [
        (dict(), "after tap 3"),
        (dict(padding="causal"), "before tap 0"),
        (dict(flip=True), "before tap 0"),
        (dict(padding="same", stride=2), ""),
    ],
)
def test_kernel_size_warning_when_the_kernel_is_longer(cfg, side, rng):
    x = rng.standard_normal(4000)
    w = np.exp(-np.arange(7) / 2.0)
    if cfg.get("padding") in ("causal", "same"):
        y = kr.conv1d(x, w, **cfg)
    else:
        y = kr.conv1d(x, w, **cfg)
        x = x[: len(y) + 3]  # y of a 7-tap kernel, read as a 4-tap one
    y = y + 0.01 * rng.standard_normal(y.shape)
    with pytest.warns(kr.KernelSizeWarning, match=f"longer than kernel_size=4.*{side}"):
        kr.recover_kernel(x, y, 4, **cfg)


def test_large_designs_use_a_spectral_estimate(rng):
    x = rng.standard_normal(60_000)
    rep = kr.analyze(x, None, 4096, warn=False)
    assert rep.status == "overdetermined" and rep.rank.tolist() == [4096] and not rep.exact_rank
    assert 1 < rep.condition_number[0] < 10
    t = np.arange(60_000)
    with pytest.warns(kr.UnderdeterminedWarning, match="excites 4 of the 4096"):
        rep = kr.analyze(np.sin(0.3 * t) + np.sin(1.1 * t), None, 4096)
    assert rep.status == "rank_deficient" and rep.rank.tolist() == [4]  # counted from the Gram, not the estimate


def test_spectral_estimate_agrees_with_the_exact_spectrum(rng, monkeypatch):
    x = np.column_stack([rng.standard_normal(200_000), rng.standard_normal(200_000)])
    exact = kr.analyze(x, None, 64, warn=False)
    monkeypatch.setattr(spectrum, "APPROXIMATE_ABOVE", 16)
    approx = kr.analyze(x, None, 64, warn=False)
    assert not approx.exact_rank and approx.rank.tolist() == exact.rank.tolist() == [128]
    np.testing.assert_allclose(approx.singular_values[0], exact.singular_values[0], rtol=0.1)
    np.testing.assert_allclose(approx.error_per_unit_noise, exact.error_per_unit_noise, rtol=0.05)


@pytest.mark.parametrize("chunk", [600_000, 65_536])
def test_streamed_statistics_without_all_rows_name_proportional_channels(chunk, rng):
    # NormalEquations keeps no (or only the first) rows of a long record: the diagnosis must use the Gram
    a = rng.standard_normal(600_000)
    x = np.column_stack([a, 2 * a])
    y = kr.conv1d(x, rng.standard_normal((4, 2, 1)))
    acc = kr.NormalEquations(4)
    for i in range(0, len(x), chunk):
        acc.update(x[i : i + chunk], y[i : i + chunk])
    with pytest.warns(kr.UnderdeterminedWarning, match="proportional"):
        res = acc.solve()
    assert res.report.cause_codes == ("proportional_channels",) and res.report.rank.tolist() == [4]
    assert np.max(np.abs(kr.conv1d(x, res.kernel) - y)) < 1e-9


# --- every tap reads only padding zeros ------------------------------------------------------------


def test_all_taps_on_padding_recover_is_undetermined():
    # x = [3], padding 1 each side, stride 2: outputs read the padded samples 0 and 2, both zeros
    with pytest.warns(kr.UnderdeterminedWarning, match="untouched"):
        res = kr.recover_kernel([3.0], [0.0, 0.0], 1, stride=2, padding=1)
    assert res.report.status in ("rank_deficient", "underdetermined")
    assert res.report.rank.tolist() == [0]
    np.testing.assert_array_equal(res.kernel, np.zeros((1, 1, 1)))  # the minimum-norm kernel


def test_all_taps_on_padding_analyze_is_undetermined():
    with pytest.warns(kr.UnderdeterminedWarning, match="untouched"):
        rep = kr.analyze([3.0], [0.0, 0.0], 1, stride=2, padding=1)
    assert rep.status in ("rank_deficient", "underdetermined")
    assert rep.rank.tolist() == [0]
    assert rep.untouched_taps == (0,)
