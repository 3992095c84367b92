"""method="fft" and method="adam" on grid problems (N-D kernels; fft also complex) against exact least squares.

The reference is ``numpy.linalg.lstsq`` (minimum norm) on the explicit design of each group, built with
``design_rows``; the data come from ``kr.conv`` (itself checked against torch, JAX and SciPy in test_grid.py).
"""

import warnings

import numpy as np
import pytest

import kernel_recovery as kr
from kernel_recovery.model.grid import GridSpec, build_grid_problem, columns_to_kernel, design_rows, group_targets
from kernel_recovery.solvers import grid_spectral

# (kernel_size, spatial shape, in_channels, out_channels, settings)
CASES = {
    "2d-stride-dilation-same-groups-bias": (
        (3, 4),
        (21, 18),
        4,
        2,
        dict(stride=(2, 1), dilation=(1, 2), padding="same", groups=2, use_bias=True),
    ),
    "2d-nchw-full-flip-bias": ((3, 3), (15, 16), 2, 3, dict(stride=2, padding="full", use_bias=True, flip=True)),
    "2d-explicit-padding": ((2, 5), (12, 20), 1, 1, dict(padding=((2, 0), (1, 3)), dilation=(2, 1))),
    "3d-stride-dilation-explicit-bias": (
        (2, 3, 2),
        (8, 9, 7),
        2,
        2,
        dict(stride=(1, 2, 1), dilation=(2, 1, 1), padding=((1, 0), (2, 1), (0, 1)), use_bias=True),
    ),
    "3d-ncdhw-groups-valid": ((2, 2, 2), (7, 6, 8), 2, 2, dict(groups=2, stride=(1, 1, 2))),
}
CHANNELS_FIRST = {"2d-nchw-full-flip-bias", "3d-ncdhw-groups-valid"}


def _data(name, *, seed=0, complex_=False, noise=0.05, batch=2):
    """``(x, y, spec, kernel, bias)`` of a case; ``x``, ``y`` in the case's layout."""
    k, shape, cin, cout, settings = CASES[name]
    rng = np.random.default_rng(seed)
    layout = "channels_first" if name in CHANNELS_FIRST else "channels_last"
    x = rng.standard_normal((batch, *shape, cin))
    w = rng.standard_normal((*k, cin // settings.get("groups", 1), cout))
    bias = rng.standard_normal(cout) if settings.get("use_bias") else None
    if complex_:
        x = x + 1j * rng.standard_normal(x.shape)
        w = w + 1j * rng.standard_normal(w.shape)
    if layout == "channels_first":
        x = np.moveaxis(x, -1, 1)
    conv_settings = {key: v for key, v in settings.items() if key != "use_bias"}
    y = kr.conv(x, w, bias, layout=layout, **conv_settings)
    y = y + noise * (rng.standard_normal(y.shape) + (1j * rng.standard_normal(y.shape) if complex_ else 0))
    spec = GridSpec.create(k, layout=layout, **settings)
    return x, y, spec, w, bias


def _explicit_lstsq(x, y, spec):
    """Per group: the explicit design (rows cut by ``design_rows``), targets, and numpy's minimum-norm solution."""
    problem = build_grid_problem(x, y, spec)
    out = []
    for g in range(problem.config.groups):
        a = np.concatenate([design_rows(problem, i, g) for i in range(len(problem.xs))])
        t = np.concatenate([group_targets(problem, i, g) for i in range(len(problem.xs))])
        out.append((a, t, np.linalg.lstsq(a, t, rcond=None)[0]))
    return problem.config, out


def _relative(coefs, refs):
    return max(np.max(np.abs(c - r)) / np.max(np.abs(r)) for c, r in zip(coefs, refs))


# ----------------------------------------------------------------------------------------------
# fft
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("operator", ["gram", "fft"])
@pytest.mark.parametrize("name", list(CASES))
def test_fft_is_the_least_squares_kernel(name, operator):
    x, y, spec, _, _ = _data(name)
    _, ref = _explicit_lstsq(x, y, spec)
    sol = grid_spectral.solve(build_grid_problem(x, y, spec), operator=operator)
    assert sol.success, sol.message
    assert sol.diagnostics["operator"] == [operator] * spec.groups
    assert _relative(sol.coefs, [r[2] for r in ref]) < 1e-9
    if operator == "gram":  # the Gram's pseudo-inverse, against the explicit design's
        for cov, (a, _, _) in zip(sol.unit_covariance, ref):
            np.testing.assert_allclose(cov, np.linalg.pinv(a.T @ a), rtol=1e-8, atol=1e-12)
    else:
        assert sol.unit_covariance is None and sol.diagnostics["covariance"].startswith("none")


@pytest.mark.parametrize("operator", ["gram", "fft"])
@pytest.mark.parametrize("name", ["2d-stride-dilation-same-groups-bias", "3d-stride-dilation-explicit-bias"])
def test_fft_complex_data(name, operator):
    x, y, spec, _, _ = _data(name, complex_=True, seed=3)
    _, ref = _explicit_lstsq(x, y, spec)
    sol = grid_spectral.solve(build_grid_problem(x, y, spec), operator=operator)
    assert sol.success, sol.message
    assert all(np.iscomplexobj(c) for c in sol.coefs)
    assert _relative(sol.coefs, [r[2] for r in ref]) < 1e-9


def test_fft_through_recover_kernel_gives_the_user_kernel():
    name = "2d-nchw-full-flip-bias"
    x, y, spec, _, _ = _data(name)
    cfg, ref = _explicit_lstsq(x, y, spec)
    kernel, bias = columns_to_kernel(cfg, [r[2] for r in ref])
    _, _, _, _, settings = CASES[name]
    res = kr.recover_kernel(x, y, spec.kernel_size, layout="nchw", method="fft", **settings)
    assert res.success and res.method == "fft"
    np.testing.assert_allclose(res.kernel, kernel, rtol=0, atol=1e-9 * np.max(np.abs(kernel)))
    np.testing.assert_allclose(res.bias, bias, rtol=0, atol=1e-9 * np.max(np.abs(kernel)))
    # the report formed the Gram: the solver reuses it (and gives standard errors)
    assert res.diagnostics["operator"] == ["gram"] and "already formed" in res.diagnostics["operator_reason"][0]
    assert res.stderr is not None and np.all(res.stderr > 0)


def test_fft_picks_the_fft_operator_for_a_large_strided_kernel_and_matches_lstsq():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((200, 200))
    w = rng.standard_normal((21, 21, 1, 1))
    y = kr.conv(x, w, stride=2)
    y = y + 0.01 * rng.standard_normal(y.shape)
    spec = GridSpec.create((21, 21), stride=2, use_bias=True)
    sol = grid_spectral.solve(build_grid_problem(x, y, spec))
    # a strided design's Gram is im2col sums of rows x P^2: 30 FFT steps are cheaper
    assert sol.diagnostics["operator"] == ["fft"], sol.diagnostics["operator_reason"]
    assert sol.success and sol.unit_covariance is None
    _, ref = _explicit_lstsq(x, y, spec)
    assert _relative(sol.coefs, [ref[0][2]]) < 1e-9
    # the spectral estimate was a start, the refinement did the rest
    assert sol.diagnostics["start_residual"][0] > 1e-6 > sol.diagnostics["residual"][0]
    # a small stride-1 kernel has a cheap (FFT lagged-correlation) Gram, which auto then forms
    y1 = kr.conv(x, w[:7, :7])
    sol1 = grid_spectral.solve(build_grid_problem(x, y1, GridSpec.create((7, 7))))
    assert sol1.diagnostics["operator"] == ["gram"], sol1.diagnostics["operator_reason"]
    assert sol1.unit_covariance is not None


def _deficient(seed=4):
    """Two input channels, the second twice the first: the design has rank 9 + 1 of 19 unknowns."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((2, 14, 13, 1))
    x = np.concatenate([a, 2 * a], axis=-1)
    w = rng.standard_normal((3, 3, 2, 1))
    y = kr.conv(x, w, np.array([0.5])) + 0.05 * rng.standard_normal((2, 12, 11, 1))
    return x, y, GridSpec.create((3, 3), use_bias=True)


def test_fft_rank_deficient_gram_path_returns_the_minimum_norm_kernel():
    x, y, spec = _deficient()
    _, ref = _explicit_lstsq(x, y, spec)
    a, t, w_min = ref[0]
    assert np.linalg.matrix_rank(a) == 10
    sol = grid_spectral.solve(build_grid_problem(x, y, spec), operator="gram")
    assert sol.success
    assert "minimum-norm" in sol.message and "rank 10 of 19" in sol.message
    assert sol.diagnostics["minimum_norm"] == [True]
    np.testing.assert_allclose(sol.coefs[0], w_min, rtol=0, atol=1e-9 * np.max(np.abs(w_min)))


def test_fft_rank_deficient_fft_path_says_it_is_a_least_squares_kernel():
    x, y, spec = _deficient()
    _, ref = _explicit_lstsq(x, y, spec)
    a, t, w_min = ref[0]
    sol = grid_spectral.solve(build_grid_problem(x, y, spec), operator="fft")
    assert sol.success
    assert "not necessarily the minimum-norm" in sol.message
    assert sol.diagnostics["minimum_norm"] == [False]
    coef = sol.coefs[0]
    # true: a least-squares kernel (the same residual as the minimum-norm one) ...
    rss, rss_min = np.sum((t - a @ coef) ** 2), np.sum((t - a @ w_min) ** 2)
    assert abs(rss - rss_min) <= 1e-10 * rss_min
    # ... whose norm is at least the minimum norm (it may carry a null-space part)
    assert np.linalg.norm(coef) >= np.linalg.norm(w_min) * (1 - 1e-12)


def test_fft_rank_deficient_through_recover_kernel_warns_and_returns_the_minimum_norm_kernel():
    x, y, spec = _deficient()
    cfg, ref = _explicit_lstsq(x, y, spec)
    kernel, bias = columns_to_kernel(cfg, [ref[0][2]])
    with pytest.warns(kr.UnderdeterminedWarning):
        res = kr.recover_kernel(x, y, (3, 3), use_bias=True, method="fft")
    assert "minimum-norm" in res.message
    np.testing.assert_allclose(res.kernel, kernel, rtol=0, atol=1e-9 * np.max(np.abs(kernel)))


def test_fft_wiener_is_the_ridge_solution_with_the_documented_weight():
    x, y, spec, _, _ = _data("2d-explicit-padding", noise=0.5)
    _, ref = _explicit_lstsq(x, y, spec)
    a, t, w_ls = ref[0]
    sigma = 0.4
    sol = grid_spectral.solve(build_grid_problem(x, y, spec), wiener=True, noise_level=sigma, operator="gram")
    lam = sigma**2 / np.mean(w_ls**2)
    expected = np.linalg.solve(a.T @ a + lam * np.eye(a.shape[1]), a.T @ t)
    np.testing.assert_allclose(sol.diagnostics["ridge"], [lam], rtol=1e-8)
    np.testing.assert_allclose(sol.coefs[0], expected, rtol=0, atol=1e-9 * np.max(np.abs(expected)))
    assert "Wiener" in sol.message


def test_fft_bad_options_name_the_argument():
    x, y, spec, _, _ = _data("2d-explicit-padding")
    with pytest.raises(ValueError, match="`operator`"):
        kr.recover_kernel(x, y, (2, 5), padding=((2, 0), (1, 3)), dilation=(2, 1), method="fft", operator="qr")
    with pytest.raises(ValueError, match="`tol`"):
        grid_spectral.solve(build_grid_problem(x, y, spec), tol=0.0)
    with pytest.raises(TypeError, match="unexpected option 'ridge'"):
        kr.recover_kernel(x, y, (2, 5), padding=((2, 0), (1, 3)), dilation=(2, 1), method="fft", ridge=1.0)


# ----------------------------------------------------------------------------------------------
# adam
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["2d-stride-dilation-same-groups-bias", "2d-nchw-full-flip-bias", "3d-stride-dilation-explicit-bias"]
)
def test_adam_reaches_the_least_squares_kernel(name):
    from kernel_recovery.solvers import grid_gradient

    x, y, spec, _, _ = _data(name)
    _, ref = _explicit_lstsq(x, y, spec)
    sol = grid_gradient.solve(build_grid_problem(x, y, spec))
    assert sol.success, sol.message
    assert _relative(sol.coefs, [r[2] for r in ref]) < 1e-4
    assert sol.loss_history is not None and len(sol.loss_history) == sol.n_iterations
    # the loss it reached is the least-squares loss, to the documented 1%
    assert sol.diagnostics["final_loss"] <= sol.diagnostics["reference_loss"] / y.size * 1.01 + 1e-12


def test_adam_through_recover_kernel_channels_first_3d_groups():
    name = "3d-ncdhw-groups-valid"
    x, y, spec, _, _ = _data(name)
    cfg, ref = _explicit_lstsq(x, y, spec)
    kernel, _ = columns_to_kernel(cfg, [r[2] for r in ref])
    res = kr.recover_kernel(x, y, spec.kernel_size, layout="ncdhw", method="adam", **CASES[name][4])
    assert res.success and res.method == "adam"
    np.testing.assert_allclose(res.kernel, kernel, rtol=0, atol=1e-4 * np.max(np.abs(kernel)))


def test_adam_mae_resists_outliers_that_pull_least_squares():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((40, 40))
    w = rng.standard_normal((3, 3, 1, 1))
    y = kr.conv(x, w) + 0.01 * rng.standard_normal((38, 38))
    hit = rng.random(y.shape) < 0.05
    y = y + hit * rng.choice([-20.0, 20.0], size=y.shape)
    lstsq = kr.recover_kernel(x, y, (3, 3), method="lstsq")
    mae = kr.recover_kernel(x, y, (3, 3), method="adam", loss="mae", max_iter=4000)
    assert mae.success, mae.message
    err_lstsq = np.max(np.abs(lstsq.kernel - w))
    err_mae = np.max(np.abs(mae.kernel - w))
    assert err_mae < 0.1 * err_lstsq and err_mae < 0.02


def test_adam_refuses_complex_data_by_name():
    from kernel_recovery.solvers import grid_gradient

    x, y, spec, _, _ = _data("2d-explicit-padding", complex_=True)
    with pytest.raises(ValueError, match="method='adam' does not take complex"):
        grid_gradient.solve(build_grid_problem(x, y, spec))
    with pytest.raises(ValueError, match="adam"):
        kr.recover_kernel(x, y, (2, 5), padding=((2, 0), (1, 3)), dilation=(2, 1), method="adam")


def test_adam_bad_options_name_the_argument():
    x, y, _, _, _ = _data("2d-explicit-padding")
    settings = dict(padding=((2, 0), (1, 3)), dilation=(2, 1), method="adam")
    with pytest.raises(ValueError, match="`loss`"):
        kr.recover_kernel(x, y, (2, 5), loss="l1", **settings)
    with pytest.raises(ValueError, match="`huber_delta`"):
        kr.recover_kernel(x, y, (2, 5), huber_delta=2.0, **settings)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(TypeError, match="unexpected option 'batch_size'"):
            kr.recover_kernel(x, y, (2, 5), batch_size=8, **settings)
