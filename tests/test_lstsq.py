"""method="lstsq": exact statistics, accuracy safeguards, uncertainty, robust losses, regularization, long kernels."""

import itertools

import numpy as np
import pytest
import scipy.signal
from numpy.lib.stride_tricks import sliding_window_view

import kernel_recovery as kr
from kernel_recovery.model import design, spectrum, statistics, toeplitz
from kernel_recovery.model.problem import build_problem
from kernel_recovery.model.result import confidence_interval
from kernel_recovery.solvers import lstsq


def im2col(x, taps):
    """Independent explicit design of a valid, stride-1 correlation, columns in (tap, channel) order."""
    return sliding_window_view(x, taps, axis=0).transpose(0, 2, 1).reshape(len(x) - taps + 1, -1)


@pytest.fixture
def streamed(monkeypatch):
    """Force the statistics (normal-equations) path on small problems."""
    for module in (design, spectrum, toeplitz, lstsq):
        for name in ("EXPLICIT_LIMIT", "SVD_LIMIT"):  # the explicit design and the path that solves it
            if hasattr(module, name):
                monkeypatch.setattr(module, name, 16)


# -- exact statistics ---------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["direct", "gemm", "fft", "correlate"])
@pytest.mark.parametrize(
    "n,c,o,taps", [(50, 1, 1, 1), (200, 1, 2, 2), (300, 3, 2, 5), (500, 2, 3, 40), (97, 4, 4, 32), (700, 1, 1, 300)]
)
def test_lagged_correlations_and_gram_against_im2col(rng, monkeypatch, method, n, c, o, taps):
    monkeypatch.setattr(statistics, "CHUNK_ENTRIES", 64)  # chunk boundaries inside the data
    monkeypatch.setattr(statistics, "CORRELATE_ROWS", 64)
    x = rng.standard_normal((n, c))
    y = rng.standard_normal((n - taps + 1, o))
    if method == "correlate" and c > 1:
        with pytest.raises(ValueError, match=f"one input channel; x has {c}"):
            statistics.lagged_correlations(x, taps, y, method=method)
        return
    a = im2col(x, taps)
    r, q = statistics.lagged_correlations(x, taps, y, method=method)
    gram = statistics.gram_from_lags(x, taps, r)
    scale = np.abs(a.T @ a).max()
    assert np.abs(gram - a.T @ a).max() <= 1e-13 * scale
    assert np.abs(q.reshape(-1, o) - a.T @ y).max() <= 1e-13 * scale


@pytest.mark.parametrize(
    "padding,stride,dilation,groups", list(itertools.product(["valid", "same", (1, 3)], [1, 3], [1, 2], [1, 2]))
)
def test_block_statistics_against_explicit_design(rng, padding, stride, dilation, groups):
    x = rng.standard_normal((130, 2 * groups))
    y = rng.standard_normal((1, 2 * groups))
    problem = build_problem(x, None, 4, stride=stride, padding=padding, dilation=dilation, groups=groups)
    for block in problem.blocks:
        block.ys = [rng.standard_normal((len(xc) - block.taps + 1, 2)) for xc in block.xs]
        a = np.concatenate(
            [np.c_[im2col(xc, block.taps)[:, block.mask.ravel()], np.ones(len(xc) - block.taps + 1)] for xc in block.xs]
        )
        yy = np.concatenate(block.ys)
        st = statistics.block_statistics(block, True)
        np.testing.assert_allclose(st.gram, a.T @ a, rtol=1e-12, atol=1e-11)
        np.testing.assert_allclose(st.cross, a.T @ yy, rtol=1e-12, atol=1e-11)
        np.testing.assert_allclose(st.yty, np.sum(yy**2, axis=0), rtol=1e-12)
        assert st.n_rows == len(a)
    assert y.shape  # y unused: statistics without a y come from build_problem(x, None)


# -- accuracy -----------------------------------------------------------------------------------


def test_normal_equations_noiseless_recovery(rng, streamed):
    x = rng.standard_normal((2000, 3))
    w = rng.standard_normal((8, 3, 2))
    res = kr.recover_kernel(x, kr.conv1d(x, w, [0.5, -1.0]), 8, use_bias=True)
    assert res.diagnostics["solver"] == ["normal_equations"]
    assert np.abs(res.kernel - w).max() <= 1e-12 * np.abs(w).max()
    np.testing.assert_allclose(res.bias, [0.5, -1.0], rtol=1e-12)


def test_normal_equations_match_numpy_lstsq_with_noise(rng, streamed):
    x = rng.standard_normal((1500, 2))
    y = kr.conv1d(x, rng.standard_normal((6, 2, 3))) + 0.3 * rng.standard_normal((1495, 3))
    res = kr.recover_kernel(x, y, 6)
    ref = np.linalg.lstsq(im2col(x, 6), y, rcond=None)[0]
    np.testing.assert_allclose(res.kernel.reshape(12, 3), ref, rtol=1e-11, atol=1e-13)


def colored(rng, n, poles):
    """An input whose spectrum is shaped by repeated one-pole low-pass filters (an ill-conditioned design)."""
    import scipy.signal

    x = rng.standard_normal(n)
    for _ in range(poles):
        x = scipy.signal.lfilter([1.0], [1.0, -0.95], x)
    return x


@pytest.mark.parametrize("poles,path", [(3, "normal_equations+refined"), (5, "orthogonal")])
def test_ill_conditioned_designs_are_refined_or_solved_orthogonally(rng, streamed, poles, path):
    x = colored(rng, 4000, poles)
    w = rng.standard_normal(10)
    y = kr.conv1d(x, w)
    block = build_problem(x, y, 10).blocks[0]
    cond_a = np.linalg.cond(im2col(x[:, None], 10))
    if path == "orthogonal":
        # the Gram's eigenvalues cannot resolve this rank (cond(A) ~ 2e7); the analyzer asks a QR of the design
        res = kr.recover_kernel(x, y, 10)
        assert res.report.status == "overdetermined" and res.report.exact_rank
    else:
        res = kr.recover_kernel(x, y, 10)
    assert res.diagnostics["solver"] == [path]
    assert res.diagnostics["gram_condition"][0] == pytest.approx(cond_a**2, rel=0.5) or path == "orthogonal"
    # a backward-stable solve: error of order cond(A) * eps, not cond(A)^2 * eps
    assert np.abs(res.kernel.ravel() - w).max() <= 50 * cond_a * 2.2e-16 * np.abs(w).max()
    assert block.n_free == 10


# -- uncertainty --------------------------------------------------------------------------------


@pytest.mark.parametrize("use_streamed", [False, True])
def test_stderr_against_textbook_formula(rng, request, use_streamed):
    if use_streamed:
        request.getfixturevalue("streamed")
    x = rng.standard_normal((400, 2))
    y = kr.conv1d(x, rng.standard_normal((3, 2, 2)), [1.0, 2.0]) + 0.2 * rng.standard_normal((398, 2))
    res = kr.recover_kernel(x, y, 3, use_bias=True)
    a = np.c_[im2col(x, 3), np.ones(398)]
    coef = np.linalg.lstsq(a, y, rcond=None)[0]
    sigma2 = np.sum((y - a @ coef) ** 2, axis=0) / (398 - 7)
    se = np.sqrt(np.outer(np.diag(np.linalg.inv(a.T @ a)), sigma2))
    np.testing.assert_allclose(res.stderr.reshape(6, 2), se[:6], rtol=1e-8)
    np.testing.assert_allclose(res.bias_stderr, se[6], rtol=1e-8)
    np.testing.assert_allclose(res.diagnostics["noise_std"] ** 2, sigma2, rtol=1e-8)
    assert res.diagnostics["dof"] == 391


def test_confidence_interval_coverage_monte_carlo():
    rng = np.random.default_rng(12345)
    trials, taps = 500, 4
    w = np.array([1.0, -0.5, 0.25, 2.0])
    x = rng.standard_normal(60)
    # each output channel is an independent noisy experiment on the same design
    y = kr.conv1d(x, w)[:, None] + 0.5 * rng.standard_normal((57, trials))
    res = kr.recover_kernel(x, y, taps)
    lo, hi = confidence_interval(res, 0.95)
    covered = (lo[:, 0, :] <= w[:, None]) & (w[:, None] <= hi[:, 0, :])
    assert 0.93 <= covered.mean() <= 0.97


def test_mean_squared_error_attains_the_cramer_rao_bound():
    rng = np.random.default_rng(7)
    trials, sigma = 3000, 0.3
    x = rng.standard_normal((200, 2))
    w = rng.standard_normal((5, 2, 1))
    y = kr.conv1d(x, w) + sigma * rng.standard_normal((196, trials))
    res = kr.recover_kernel(x, y, 5)
    mse = np.mean(np.sum((res.kernel - w) ** 2, axis=(0, 1)))
    a = im2col(x, 5)
    crb = sigma**2 * np.trace(np.linalg.inv(a.T @ a))
    assert abs(mse / crb - 1) < 0.05


def test_confidence_interval_errors(rng):
    x = rng.standard_normal(50)
    # (ridge fits now have posterior standard deviations; a robust fit still has none)
    res = kr.recover_kernel(x, kr.conv1d(x, [1.0, 2.0]) + 0.1 * rng.standard_normal(49), 2, loss="mae")
    with pytest.raises(ValueError, match="no standard errors"):
        confidence_interval(res)
    with pytest.raises(ValueError, match="level"):
        confidence_interval(res, 1.5)


# -- robust losses ------------------------------------------------------------------------------


def test_mae_is_the_exact_least_absolute_deviations_fit(rng):
    from scipy.optimize import linprog

    x = rng.standard_normal(300)
    y = kr.conv1d(x, [1.0, -2.0, 0.5]) + rng.laplace(scale=0.3, size=298)
    res = kr.recover_kernel(x, y, 3, loss="mae")
    a = im2col(x[:, None], 3)
    n = len(a)
    # independent primal LP: min 1^T (u + v) s.t. A w + u - v = y
    ref = linprog(
        np.r_[np.zeros(3), np.ones(2 * n)],
        A_eq=np.c_[a, np.eye(n), -np.eye(n)],
        b_eq=y,
        bounds=[(None, None)] * 3 + [(0, None)] * (2 * n),
        method="highs",
    )
    assert np.sum(np.abs(y - a @ res.kernel.ravel())) == pytest.approx(ref.fun, rel=1e-9)
    assert res.diagnostics["solver"] == ["lp"] and res.options["loss"] == "mae"


def test_huber_matches_scipy_least_squares(rng):
    from scipy.optimize import least_squares

    x = rng.standard_normal((400, 2))
    y = kr.conv1d(x, rng.standard_normal((3, 2, 1)))[:, 0] + rng.standard_t(2, size=398) * 0.2
    res = kr.recover_kernel(x, y, 3, loss="huber", huber_delta=0.3)
    a = im2col(x, 3)
    # huber_delta is in units of a robust scale of the least-squares residual: 0.3 x 1.4826 MAD
    r = y - a @ np.linalg.lstsq(a, y, rcond=None)[0]
    delta = 0.3 * 1.4826 * np.median(np.abs(r - np.median(r)))
    ref = least_squares(
        lambda w: a @ w - y, np.zeros(6), loss="huber", f_scale=delta, xtol=1e-15, ftol=1e-15, gtol=1e-15
    )
    np.testing.assert_allclose(res.kernel.ravel(), ref.x, rtol=1e-7, atol=1e-9)
    assert res.options["huber_delta"] == 0.3
    assert res.diagnostics["huber_threshold"] == pytest.approx([delta], rel=1e-10)


def test_mae_beats_mse_under_laplace_noise():
    rng = np.random.default_rng(3)
    w = np.array([0.5, 1.0, -0.7, 0.2])
    err = {"mse": 0.0, "mae": 0.0}
    for _ in range(40):
        x = rng.standard_normal(200)
        y = kr.conv1d(x, w) + rng.laplace(scale=0.5, size=197)
        for loss in err:
            err[loss] += np.sum((kr.recover_kernel(x, y, 4, loss=loss).kernel.ravel() - w) ** 2)
    assert err["mae"] < 0.85 * err["mse"]


# -- regularization -----------------------------------------------------------------------------


def test_gcv_picks_the_gcv_minimizer(rng):
    x = rng.standard_normal(80)
    y = kr.conv1d(x, rng.standard_normal(20)) + 0.5 * rng.standard_normal(61)
    res = kr.recover_kernel(x, y, 20, regularization="gcv")
    lam = res.options["ridge"][0]
    a = im2col(x[:, None], 20)
    u, s, vt = np.linalg.svd(a, full_matrices=False)

    def gcv(lam_):
        h = u @ np.diag(s**2 / (s**2 + lam_)) @ u.T
        return len(y) * np.sum((y - h @ y) ** 2) / (len(y) - np.trace(h)) ** 2

    grid = lam * np.logspace(-1, 1, 41)
    assert gcv(lam) <= min(gcv(g) for g in grid) * (1 + 1e-6)
    ridge = np.linalg.solve(a.T @ a + lam * np.eye(20), a.T @ y)
    np.testing.assert_allclose(res.kernel.ravel(), ridge, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("kind", ["gcv", "ml", "tc", "dc"])
def test_regularization_beats_plain_least_squares_on_short_noisy_records(kind):
    rng = np.random.default_rng(11)
    taps = 30
    w = 0.8 ** np.arange(taps) * np.cos(0.6 * np.arange(taps))  # a decaying impulse response
    err = {"plain": 0.0, kind: 0.0}
    for _ in range(10):
        x = rng.standard_normal(taps * 3 + taps - 1)
        y = kr.conv1d(x, w, flip=True) + 0.5 * rng.standard_normal(taps * 3)
        err["plain"] += np.sum((kr.recover_kernel(x, y, taps, flip=True).kernel.ravel() - w) ** 2)
        res = kr.recover_kernel(x, y, taps, flip=True, regularization=kind)
        err[kind] += np.sum((res.kernel.ravel() - w) ** 2)
    # the kernel priors know the decay; ridge only shrinks
    assert err[kind] < (0.75 if kind in ("tc", "dc") else 0.99) * err["plain"]
    assert res.options["regularization"] == kind and np.all(res.options["ridge"] > 0)
    if kind in ("tc", "dc"):
        assert 0 < res.options["decay"][0] < 1


def test_regularization_with_bias_and_groups(rng):
    x = rng.standard_normal((60, 4))
    w = rng.standard_normal((5, 2, 2))
    y = kr.conv1d(x, w, [3.0, -3.0], groups=2) + 0.1 * rng.standard_normal((56, 2))
    res = kr.recover_kernel(x, y, 5, groups=2, use_bias=True, regularization="tc")
    assert res.options["ridge"].shape == (2, 2)  # per output channel and input channel (per-input priors)
    assert res.options["noise_variance"].shape == (2,)
    np.testing.assert_allclose(res.bias, [3.0, -3.0], atol=0.3)


# -- long kernels -------------------------------------------------------------------------------


@pytest.mark.parametrize("use_bias,ridge", [(False, 0.0), (True, 0.0), (False, 2.0)])
def test_toeplitz_cg_matches_numpy_lstsq(rng, monkeypatch, use_bias, ridge):
    monkeypatch.setattr(lstsq, "LONG_KERNEL", 64)
    taps = 150
    x = colored(rng, 3000, 1)  # a colored input, so the preconditioner matters
    y = kr.conv1d(x, rng.standard_normal(taps), [0.3] if use_bias else None) + 0.1 * rng.standard_normal(
        3000 - taps + 1
    )
    problem = build_problem(x, y, taps, use_bias=use_bias)
    sol = lstsq.solve(problem, ridge=ridge)
    assert sol.diagnostics["solver"] == ["toeplitz_cg"]
    a = im2col(x[:, None], taps)
    if use_bias:
        a = np.c_[a, np.ones(len(a))]
    pen = np.eye(a.shape[1])
    if use_bias:
        pen[-1, -1] = 0
    ref = np.linalg.solve(a.T @ a + ridge * pen, a.T @ y)
    np.testing.assert_allclose(sol.kernels[0].ravel(), ref[:taps], rtol=1e-8, atol=1e-10 * np.abs(ref).max())
    if use_bias:
        np.testing.assert_allclose(sol.biases[0], ref[-1], rtol=1e-8)


# -- options ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options,match",
    [
        (dict(ridge=-1.0), "ridge"),
        (dict(regularization="lasso"), "regularization"),
        (dict(loss="l1"), "loss"),
        (dict(loss="huber", huber_delta=0.0), "huber_delta"),
        (dict(ridge=1.0, regularization="gcv"), "either"),
        (dict(loss="mae", ridge=1.0), "cannot be combined"),
        (dict(huber_delta=1.0), "huber_delta"),
    ],
)
def test_bad_options(rng, options, match):
    x = rng.standard_normal(30)
    with pytest.raises(ValueError, match=match):
        kr.recover_kernel(x, kr.conv1d(x, [1.0, 2.0]), 2, **options)


# -- progress, the case of string options, the step response's type --------------------------------


@pytest.mark.parametrize("method", ["lstsq", "fft", "LSTSQ"])
@pytest.mark.parametrize("progress", [True, False])
def test_progress_is_taken_by_every_in_memory_method(rng, method, progress):
    """Was a TypeError for lstsq ("unexpected option 'progress'"): progress reaches a method only if it names it."""
    x = rng.standard_normal(60)
    y = kr.conv1d(x, [0.5, -1.0, 2.0])
    res = kr.recover_kernel(x, y, 3, method=method, progress=progress)
    ref = np.linalg.lstsq(im2col(x[:, None], 3), y, rcond=None)[0]
    np.testing.assert_allclose(res.kernel.ravel(), ref, atol=1e-9)
    assert "progress" not in res.options  # a display choice, not an option of the fit


def test_progress_reaches_only_methods_that_name_it(rng):
    x = rng.standard_normal(40)
    y = kr.conv1d(x, [1.0, 2.0])
    seen = {}

    def with_bar(problem, *, progress=None):
        seen["named"] = progress
        return lstsq.solve(problem)

    def catch_all(problem, **options):
        seen["catch_all"] = options
        return lstsq.solve(problem)

    kr.recover_kernel(x, y, 2, method=with_bar, progress=True)
    kr.recover_kernel(x, y, 2, method=catch_all, progress=True)
    assert seen == {"named": True, "catch_all": {}}
    with pytest.raises(TypeError, match="`progress` must be True or False, got 'yes'"):
        kr.recover_kernel(x, y, 2, method="fft", progress="yes")


def test_plot_kind_is_case_insensitive(rng):
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    x = rng.standard_normal(100)
    res = kr.recover_kernel(x, kr.conv1d(x, [1.0, -0.5]) + 0.01 * rng.standard_normal(99), 2)
    lower, upper = res.plot(kind="bode"), res.plot(kind="BODE")
    for a, b in zip(lower.axes, upper.axes, strict=True):
        assert a.get_ylabel() == b.get_ylabel()
        for la, lb in zip(a.get_lines(), b.get_lines(), strict=True):
            np.testing.assert_array_equal(la.get_ydata(), lb.get_ydata())
    assert len(res.plot(kind="Result").axes) == len(res.plot().axes)
    with pytest.raises(ValueError, match=r"`kind` must be 'result' or 'bode', got 'bod' \(did you mean 'bode'\?\)"):
        res.plot(kind="bod")
    plt.close("all")


def test_step_response_type_is_public(rng):
    x = rng.standard_normal(80)
    res = kr.recover_kernel(x, kr.conv1d(x, [1.0, 0.5, 0.25], padding="causal"), 3, padding="causal")
    step = res.step_response()
    assert type(step) is kr.StepResponse and "StepResponse" in kr.__all__
    # a causal cross-correlation's kernel [1, 0.5, 0.25] is the impulse response h = [0.25, 0.5, 1] over lags 0..2
    ref = scipy.signal.lfilter([0.25, 0.5, 1.0], [1.0], np.ones(3))
    np.testing.assert_allclose(step.response.ravel()[:3], ref, atol=1e-12)


@pytest.mark.parametrize("n,taps,c", [(600, 4, 1), (1000, 8, 1), (300, 3, 2), (40, 4, 1)])
@pytest.mark.parametrize("deficient", [False, True])
@pytest.mark.parametrize("use_bias", [False, True])
def test_explicit_design_by_qr_or_svd_against_numpy_lstsq(rng, n, taps, c, deficient, use_bias):
    """Tall explicit designs take the SVD of their R factor (Q kept as reflectors), short ones numpy's SVD of the
    rows: both give numpy.linalg.lstsq's minimum-norm solution on the explicit design and its singular values."""
    x = rng.standard_normal((n, c))
    if deficient:  # a period shorter than the kernel: only `period` directions per channel are excited
        x = np.tile(rng.standard_normal((taps - 1, c)), (n // (taps - 1) + 1, 1))[:n]
    y = rng.standard_normal((n - taps + 1, 2))
    block = build_problem(x, y, taps, use_bias=use_bias).blocks[0]
    a = im2col(x, taps)
    if use_bias:
        a = np.c_[a, np.ones(len(a))]
    spec = spectrum.block_spectrum(block, use_bias)
    explicit = a.size <= design.SVD_LIMIT  # (larger designs: the Gram's spectrum, and lstsq on the rows)
    tall = explicit and len(a) >= spectrum.QR_FIRST_ROWS * a.shape[1] and a.size >= spectrum.QR_FIRST_ENTRIES
    assert (spec.householder is not None) == tall
    s_ref = np.linalg.svd(a, compute_uv=False)
    np.testing.assert_allclose(spec.singular_values[: len(s_ref)], s_ref, rtol=0, atol=1e-12 * s_ref[0])
    coef, info, rss = lstsq._explicit_solve(block, use_bias, 0.0)
    ref, *_ = np.linalg.lstsq(a, y, rcond=None)
    np.testing.assert_allclose(coef, ref, rtol=0, atol=1e-10 * np.abs(ref).max())
    np.testing.assert_allclose(rss, ((y - a @ ref) ** 2).sum(axis=0), rtol=1e-10)
    assert info == {"solver": "svd"}
