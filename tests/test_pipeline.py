"""One pipeline: the in-memory, NormalEquations and out-of-core paths give the same fields for the same data."""

import dataclasses
import warnings

import numpy as np
import pytest

import kernel_recovery as kr
from kernel_recovery.model.problem import build_problem
from kernel_recovery.solvers import lstsq


def _data(length, rng, bias=True):
    x = rng.standard_normal((length, 2))
    w = rng.standard_normal((5, 2, 3))
    y = kr.conv1d(x, w, [0.1, 0.2, 0.3] if bias else None) + 0.01 * rng.standard_normal((length - 4, 3))
    return x, y


def _three_paths(x, y, **options):
    memory = kr.recover_kernel(x, y, 5, use_bias=True, **options)
    acc = kr.NormalEquations(5, use_bias=True)
    for i in range(0, len(x), 30000):
        acc.update(x[i : i + 30000], y[i : i + 30000])
    accumulated = acc.solve(**options)
    chunks = ((x[i : i + 30000], y[i : i + 30000]) for i in range(0, len(x), 30000))
    streamed = kr.recover_kernel(chunks, None, 5, use_bias=True, **options)
    return memory, accumulated, streamed


@pytest.mark.parametrize("length", [400, 120000])
@pytest.mark.parametrize("options", [{}, {"ridge": 0.5}, {"regularization": "gcv"}])
def test_three_paths_give_the_same_fields_and_diagnostics(length, options, rng):
    x, y = _data(length, rng)
    results = _three_paths(x, y, **options)
    memory = results[0]
    fields = [f.name for f in dataclasses.fields(kr.KernelResult)]
    for res in results:
        assert [f.name for f in dataclasses.fields(res)] == fields
        assert sorted(res.diagnostics) == sorted(memory.diagnostics)
        assert res.diagnostics["solver"] == memory.diagnostics["solver"]
        assert res.success == memory.success and res.message == memory.message
        assert res.method == "lstsq" and sorted(res.options) == sorted(memory.options)
        for key, value in memory.options.items():
            if isinstance(value, (str, type(None))):
                assert res.options[key] == value
            elif options.get("regularization") is None:  # GCV's criterion is flat at tiny ridges: not compared
                np.testing.assert_allclose(res.options[key], value, rtol=1e-8)
        tol = 1e-6 if options.get("regularization") else 1e-9  # (GCV's own choice of ridge is flat at tiny values)
        np.testing.assert_allclose(res.kernel, memory.kernel, rtol=tol, atol=1e-12)
        np.testing.assert_allclose(res.bias, memory.bias, rtol=tol, atol=1e-12)
        assert res.residual_rms == pytest.approx(memory.residual_rms, rel=1e-9)
        assert res.report.status == memory.report.status and res.report.rank.tolist() == memory.report.rank.tolist()
        assert (res.stderr is None) == (memory.stderr is None)
        if res.stderr is not None:
            np.testing.assert_allclose(res.stderr, memory.stderr, rtol=1e-8)
    # what differs is said: where the data came from, and which checks could run on it
    assert memory.diagnostics["input"] == "arrays" and not memory.diagnostics["streamed"]
    assert results[1].diagnostics["input"] == "statistics" and results[2].diagnostics["input"] == "stream"
    if length > 100000:  # the rows are not all retained: the kernel-size check cannot run, and says so
        for res in results[1:]:
            assert res.diagnostics["checks"]["kernel_size"].startswith("skipped: the rows are not retained")


def test_residual_is_computed_once_and_matches_a_forward_pass(rng):
    x, y = _data(200000, rng)
    res = kr.recover_kernel(x, y, 5, use_bias=True)
    assert res.diagnostics["checks"]["residual"] == "statistics"  # no pass over the data after the solve
    direct = np.sqrt(np.mean((y - res.predict(x)) ** 2))
    assert res.residual_rms == pytest.approx(direct, rel=1e-7)
    # a noiseless fit's residual is rounding: the statistics cannot give it, a pass over the data does
    y0 = kr.conv1d(x, res.kernel, res.bias)
    exact = kr.recover_kernel(x, y0, 5, use_bias=True)
    assert exact.diagnostics["checks"]["residual"] == "data" and exact.residual_rms < 1e-12


def test_solver_success_comes_from_the_solver(rng, monkeypatch):
    # CG on the Toeplitz Gram stopped at its iteration cap: not a success, and the iterations are counted
    x = rng.standard_normal(20000)
    y = kr.conv1d(x, rng.standard_normal(100)) + 0.01 * rng.standard_normal(19901)
    monkeypatch.setattr(lstsq, "LONG_KERNEL", 64)
    res = kr.recover_kernel(x, y, 100)
    assert res.success and res.n_iterations >= 1 and res.diagnostics["solver"] == ["toeplitz_cg"]
    capped = kr.recover_kernel(x, y, 100, max_iter=2)
    assert not capped.success and capped.n_iterations == 2 and "iteration cap" in capped.message


def test_irls_at_its_cap_is_not_a_success(rng, monkeypatch):
    x = rng.standard_normal(3000)
    y = kr.conv1d(x, [1.0, -0.5, 0.25]) + rng.laplace(size=2998)
    monkeypatch.setattr(lstsq, "LP_LIMIT", 0)  # IRLS instead of the exact LP
    res = kr.recover_kernel(x, y, 3, loss="mae", max_iter=2)
    assert not res.success and res.n_iterations == 2 and "iteration cap" in res.message
    assert kr.recover_kernel(x, y, 3, loss="mae").success


def test_custom_solver_goes_through_the_same_finish(rng):
    x, y = _data(3000, rng, bias=False)

    def my_lstsq(problem):
        return lstsq.solve(problem)

    res = kr.recover_kernel(x, y, 5, method=my_lstsq)
    ref = kr.recover_kernel(x, y, 5)
    assert res.method == "my_lstsq" and sorted(res.diagnostics) == sorted(ref.diagnostics)
    np.testing.assert_allclose(res.kernel, ref.kernel)
    assert res.residual_rms == pytest.approx(ref.residual_rms)


def test_out_of_core_dispatch_uses_the_registry(rng):
    x, y = _data(2000, rng)
    chunks = ((x[i : i + 500], y[i : i + 500]) for i in range(0, 2000, 500))
    with pytest.raises(TypeError, match="unexpected option 'steps'"):
        kr.recover_kernel(chunks, None, 5, steps=3)
    problem = build_problem(x, y, 5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert lstsq.solve(problem).success


@pytest.mark.parametrize("use_bias", [False, True])
def test_toeplitz_path_residual_from_its_sums_matches_a_forward_pass(use_bias, rng):
    x = rng.standard_normal(60000) + 0.5
    w = rng.standard_normal(2048) / 40
    y = kr.conv1d(x, w, [0.3] if use_bias else None) + 0.05 * rng.standard_normal(60000 - 2047)
    res = kr.recover_kernel(x, y, 2048, use_bias=use_bias)
    assert res.diagnostics["solver"] == ["toeplitz_cg"] and res.diagnostics["checks"]["residual"] == "solver"
    direct = np.sqrt(np.mean((y - res.predict(x)) ** 2))
    assert res.residual_rms == pytest.approx(direct, rel=1e-7)


def test_warnings_point_at_the_callers_line(rng):
    x = rng.standard_normal((300, 2))
    x[:, 1] = 2 * x[:, 0]
    y = kr.conv1d(x, rng.standard_normal((3, 2, 1)))
    for call in (
        lambda: kr.recover_kernel(x, y, 3),
        lambda: kr.analyze(x, y, 3),
    ):
        with pytest.warns(kr.UnderdeterminedWarning) as rec:
            call()
        assert rec[0].filename == __file__
    acc = kr.NormalEquations(3)
    acc.update(x, y)
    with pytest.warns(kr.UnderdeterminedWarning) as rec:
        acc.solve()
    assert rec[0].filename == __file__


def test_post_fit_warnings_point_at_the_callers_line(rng):
    x = rng.standard_normal(3000)
    w = np.exp(-np.arange(40) / 6.0) * rng.standard_normal(40)
    y = kr.conv1d(x, w, padding="causal") + 0.01 * rng.standard_normal(3000)
    with pytest.warns(kr.KernelSizeWarning) as rec:
        kr.recover_kernel(x, y, 20, padding="causal")
    assert rec[0].filename == __file__
    acc = kr.NormalEquations(20, padding="causal")
    acc.update(x, y)
    with pytest.warns(kr.KernelSizeWarning) as rec:
        acc.solve()
    assert rec[0].filename == __file__


@pytest.mark.parametrize(
    "stride, flip, use_bias", [(1, False, True), (1, False, False), (2, False, True), (1, True, True)]
)
def test_covariance_is_sigma2_times_the_explicit_inverse_gram(stride, flip, use_bias):
    """Per output channel, ``covariance[o]`` over ``(kernel[:, :, o].ravel(), bias)`` equals ``sigma_o^2 (A'A)^-1``
    of the explicit design in the user's kernel order (whichever way the columns were reduced: stride 1 takes them
    as they are, stride 2 splits them into phases, flip reverses them)."""
    rng = np.random.default_rng(3)
    k, cin = 4, 2
    x = rng.standard_normal((60, cin))
    y = kr.conv1d(x, rng.standard_normal((k, cin, 2)), stride=stride, flip=flip)
    y = y + 0.1 * rng.standard_normal(y.shape)
    res = kr.recover_kernel(x, y, k, stride=stride, flip=flip, use_bias=use_bias)
    windows = np.lib.stride_tricks.sliding_window_view(x, k, axis=0)[::stride][: len(y)]  # (t, cin, k)
    if flip:
        windows = windows[:, :, ::-1]
    a = windows.transpose(0, 2, 1).reshape(len(y), k * cin)  # row-major (tap, channel), as kernel[:, :, o]
    if use_bias:
        a = np.concatenate([a, np.ones((len(a), 1))], axis=1)
    inverse = np.linalg.inv(a.T @ a)
    for o in range(2):
        coef = np.linalg.lstsq(a, y[:, o], rcond=None)[0]
        sigma2 = np.sum((y[:, o] - a @ coef) ** 2) / (len(a) - a.shape[1])
        np.testing.assert_allclose(res.covariance[o], sigma2 * inverse, rtol=1e-8, atol=1e-14)


@pytest.mark.parametrize(("groups", "n_in", "n_out"), [(1, 1, 2), (1, 2, 1), (2, 2, 2), (2, 2, 4)])
@pytest.mark.parametrize("use_bias", [False, True])
def test_per_channel_fields_match_explicit_least_squares(groups, n_in, n_out, use_bias, rng):
    """Every output channel's noise_std, coefficient error gains, rank and equations, whether a block holds every
    output channel (one group) or some of them (groups): against numpy.linalg.lstsq on the explicit design."""
    k, length = 4, 60
    x = rng.standard_normal((length, n_in))
    y = rng.standard_normal((length - k + 1, n_out))  # any outputs: the fit's algebra is checked, not a model
    result = kr.recover_kernel(x, y, k, groups=groups, use_bias=use_bias, checks="none")
    cin = n_in // groups
    for o in range(n_out):
        g = o // (n_out // groups)
        xs = x[:, g * cin : (g + 1) * cin]
        # row t: x[t + j, c] for tap j, channel c (cross-correlation, tap-major as the kernel (k, cin, out))
        a = np.stack([xs[j : j + length - k + 1] for j in range(k)], axis=1).reshape(length - k + 1, k * cin)
        if use_bias:
            a = np.hstack([a, np.ones((len(a), 1))])
        coef, rss, rank, _ = np.linalg.lstsq(a, y[:, o], rcond=None)
        assert rank == a.shape[1]
        np.testing.assert_allclose(result.kernel[:, :, o].ravel(), coef[: k * cin], rtol=1e-10, atol=1e-12)
        dof = len(a) - a.shape[1]
        np.testing.assert_allclose(result.diagnostics["noise_std"][o], np.sqrt(rss[0] / dof), rtol=1e-9)
        gains = np.sqrt(np.diag(np.linalg.inv(a.T @ a)))
        np.testing.assert_allclose(
            result.report.kernel_error_per_unit_noise[:, :, o].ravel(), gains[: k * cin], rtol=1e-9
        )
        if use_bias:
            np.testing.assert_allclose(result.report.bias_error_per_unit_noise[o], gains[-1], rtol=1e-9)
            np.testing.assert_allclose(result.bias[o], coef[-1], rtol=1e-10, atol=1e-12)
        assert result.report.rank[o] == a.shape[1]
        assert result.report.equations[o] == len(a)
        np.testing.assert_allclose(result.report.error_per_unit_noise[o], np.sqrt(np.sum(gains**2)), rtol=1e-9)


def test_solve_path_follows_a_lowered_long_kernel_threshold(rng, monkeypatch):
    """The solve path kept on a block is keyed by the threshold: a fit after lowering it takes the CG path."""
    x = rng.standard_normal(3000)
    y = np.convolve(x, rng.standard_normal(24)[::-1], mode="valid")
    assert kr.recover_kernel(x, y, 24, checks="none").diagnostics["solver"] == ["normal_equations"]
    monkeypatch.setattr(lstsq, "LONG_KERNEL", 16)
    assert kr.recover_kernel(x, y, 24, checks="none").diagnostics["solver"] == ["toeplitz_cg"]
