"""method="adam": gradient descent in JAX + optax on the canonical problem."""

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view
from references import jax_conv1d

import kernel_recovery as kr
from kernel_recovery.model.problem import build_problem

jax = pytest.importorskip("jax")
optax = pytest.importorskip("optax")
gradient = pytest.importorskip("kernel_recovery.solvers.gradient")

TUTORIAL = [
    (np.array([0.0, 3, 4, 5]), np.array([6.0, 11, 14]), 2, np.array([1.0, 2.0]).reshape(2, 1, 1)),
    (
        np.array([[0, 0], [3, 6], [4, 7], [5, 8], [1, 2], [4, 5], [2, 0], [0, 1]], float),
        np.array([14.0, 20, 14, 15, 10, 4]),
        3,
        np.array([[1.0, 0], [0, 1], [2, 0]]).reshape(3, 2, 1),
    ),
    (np.array([0.0, 3, 4, 5]), np.array([[6.0, 12], [11, 25], [14, 32]]), 2, np.array([[[1.0, 3]], [[2, 4]]])),
]


def explicit_design(x: np.ndarray, k: int, bias: bool) -> np.ndarray:
    """Rows ``[x[t, :], x[t+1, :], ..., x[t+k-1, :]]`` (tap-major), then a column of ones."""
    rows = sliding_window_view(x, k, axis=0).transpose(0, 2, 1).reshape(len(x) - k + 1, -1)
    return np.concatenate([rows, np.ones((len(rows), 1))], axis=1) if bias else rows


@pytest.mark.parametrize("loss", ["mse", "mae", "huber"])
@pytest.mark.parametrize("case", range(3))
def test_tutorial_examples_with_defaults(case, loss):
    x, y, k, true = TUTORIAL[case]
    kwargs = {} if loss == "mse" else {"loss": loss}
    res = kr.recover_kernel(x, y, k, method="adam", **kwargs)
    assert np.max(np.abs(res.kernel - true)) <= 1e-3
    assert res.success, res.message
    assert res.method == "adam"
    assert res.n_iterations == len(res.loss_history) <= res.options["max_iter"]
    assert res.options["loss"] == loss and res.options["init"] == "glorot_uniform"
    assert res.options["learning_rate"] == 0.05 and res.options["dtype"] == "float32"


def test_mse_matches_least_squares_on_noisy_data(rng):
    x = rng.standard_normal((300, 2))
    w = rng.standard_normal((4, 2, 3))
    y = jax_conv1d(x[None], w)[0] + 0.5 + 0.1 * rng.standard_normal((297, 3))
    a = explicit_design(x, 4, bias=True)
    ref = np.linalg.lstsq(a, y, rcond=None)[0]
    res = kr.recover_kernel(x, y, 4, method="adam", use_bias=True, dtype="float64", tol=1e-10, max_iter=3000)
    assert res.success, res.message
    np.testing.assert_allclose(res.kernel.reshape(8, 3), ref[:8], atol=1e-6)
    np.testing.assert_allclose(res.bias, ref[8], atol=1e-6)
    assert res.diagnostics["formulation"] == "statistics"
    # the recorded loss is the mean squared residual
    final = np.mean((y - a @ np.concatenate([res.kernel.reshape(8, 3), res.bias[None]])) ** 2)
    assert res.diagnostics["final_loss"] == pytest.approx(final, rel=1e-6)


@pytest.mark.parametrize("formulation", ["design", "frames"])
def test_mae_matches_exact_l1_reference(formulation, rng, monkeypatch):
    if formulation == "frames":
        monkeypatch.setattr(gradient, "DESIGN_LIMIT", 0)
    linprog = pytest.importorskip("scipy.optimize").linprog
    x = rng.standard_normal(120)
    y = np.convolve(x, [0.5, -1.0, 2.0][::-1], mode="valid")
    y = y + 0.05 * rng.standard_normal(len(y))
    y[::10] += 3.0  # outliers, which L1 ignores
    a = explicit_design(x[:, None], 3, bias=False)
    n, p = a.shape
    # min sum(t)  s.t.  -t <= a w - y <= t
    c = np.concatenate([np.zeros(p), np.ones(n)])
    a_ub = np.block([[a, -np.eye(n)], [-a, -np.eye(n)]])
    b_ub = np.concatenate([y, -y])
    lp = linprog(c, A_ub=a_ub, b_ub=b_ub, bounds=[(None, None)] * p + [(0, None)] * n, method="highs")
    assert lp.status == 0
    ref = lp.x[:p]
    res = kr.recover_kernel(x, y, 3, method="adam", loss="mae", max_iter=3000)
    assert res.success, res.message
    np.testing.assert_allclose(res.kernel.ravel(), ref, atol=2e-3)
    l1 = np.mean(np.abs(y - a @ res.kernel.ravel()))
    assert l1 <= lp.fun / n * (1 + 1e-4)
    assert res.diagnostics["formulation"] == formulation


CONFIGS = [
    dict(stride=2, padding="same", use_bias=True),
    dict(stride=3, dilation=2, padding="causal"),
    dict(groups=2, layout="ncw", flip=True, padding=(2, 1)),
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()))
def test_every_configuration_recovers_the_kernel(config, rng):
    groups = config.get("groups", 1)
    cin, cout, k = 2 * groups, 2 * groups, 4
    layout = config.get("layout", "nwc")
    x = rng.standard_normal((2, 200, cin) if layout == "nwc" else (2, cin, 200))
    w = rng.standard_normal((k, cin // groups, cout))
    b = rng.standard_normal(cout) if config.get("use_bias") else None
    y = kr.conv1d(x, w, b, **{key: v for key, v in config.items() if key != "use_bias"})
    res = kr.recover_kernel(x, y, k, method="adam", **config)
    assert res.success, res.message
    np.testing.assert_allclose(res.kernel, w, atol=1e-3)
    if b is not None:
        np.testing.assert_allclose(res.bias, b, atol=1e-3)


@pytest.mark.parametrize("formulation", ["design", "frames"])
def test_masked_coefficients_stay_zero(formulation, rng, monkeypatch):
    if formulation == "frames":
        monkeypatch.setattr(gradient, "DESIGN_LIMIT", 0)
    # stride 3 with kernel_size 4: the canonical kernel has 2 taps x 3 phases, 2 of them fixed at zero
    x = rng.standard_normal(90)
    w = np.array([1.0, -2.0, 0.5, 3.0])
    problem = build_problem(x, kr.conv1d(x, w, stride=3), 4, stride=3)
    mask = problem.blocks[0].mask
    assert not mask.all()
    sol = gradient.solve(problem, loss="mae")
    assert sol.diagnostics["formulation"] == formulation
    assert np.all(sol.kernels[0][~mask] == 0.0)
    np.testing.assert_allclose(problem.from_canonical(sol.kernels).ravel(), w, atol=1e-3)


def test_options_are_recorded_and_step_limit_reported(rng):
    x = rng.standard_normal(64)
    y = np.convolve(x, [1.0, 0.5], mode="valid")
    res = kr.recover_kernel(x, y, 2, method="adam", max_iter=10, loss="huber")
    assert not res.success
    assert "step limit" in res.message and "max_iter=10" in res.message
    assert res.n_iterations == 10 and res.loss_history.shape == (10,)
    assert np.all(np.isfinite(res.loss_history))
    assert set(res.options) >= {
        "loss",
        "learning_rate",
        "max_iter",
        "tol",
        "seed",
        "init",
        "optimizer",
        "batch_size",
        "restarts",
        "dtype",
        "progress",
    }
    assert res.options["optimizer"] == "adam" and res.options["batch_size"] is None


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        (dict(loss="l2"), ValueError, r"`loss` must be 'mae', 'mse' or 'huber', got 'l2'"),
        (dict(init="he_normal"), ValueError, r"`init` must be 'glorot_uniform', 'zeros' or 'lstsq', got 'he_normal'"),
        (dict(max_iter=0), ValueError, r"`max_iter` must be >= 1, got 0"),
        (dict(max_iter=-5), ValueError, r"`max_iter` must be .*got -5"),
        (dict(max_iter=2.5), TypeError, r"`max_iter` must be an integer"),
        (dict(steps=10), TypeError, r"unexpected option 'steps'; its options are: .*max_iter"),
        (dict(learning_rate=0.0), ValueError, r"`learning_rate` must be > 0 and finite, got 0.0"),
        (dict(learning_rate=-1e-3), ValueError, r"`learning_rate` must be .*got -0.001"),
        (dict(tol=-1.0), ValueError, r"`tol` must be .*>= 0"),
        (dict(batch_size=0), ValueError, r"`batch_size` must be"),
        (dict(restarts=0), ValueError, r"`restarts` must be"),
        (dict(dtype="float16"), ValueError, r"`dtype` must be 'float32' or 'float64', got 'float16'"),
        (dict(optimizer="adam"), TypeError, r"`optimizer` must be an optax.GradientTransformation"),
        (dict(learning_rate=0.1, optimizer=optax.sgd(0.1)), ValueError, r"`learning_rate` applies to the default"),
        (dict(momentum=0.9), TypeError, r"unexpected option 'momentum'"),
    ],
)
def test_bad_options_raise(options, error, match):
    with pytest.raises(error, match=match):
        kr.recover_kernel([0.0, 3, 4, 5], [6.0, 11, 14], 2, method="adam", **options)


def test_compiled_loop_is_reused_and_progress_gives_the_same_iterates(rng):
    x = rng.standard_normal(50)
    y = np.convolve(x, [2.0, -1.0, 0.5], mode="valid")
    first = kr.recover_kernel(x, y, 3, method="adam", loss="mae", max_iter=200, tol=0.0)
    hits = gradient.compiled_loop.cache_info().hits
    x2 = rng.standard_normal(50)
    second = kr.recover_kernel(
        x2, np.convolve(x2, [2.0, -1.0, 0.5], mode="valid"), 3, method="adam", loss="mae", max_iter=200, tol=0.0
    )
    assert gradient.compiled_loop.cache_info().hits == hits + 1
    assert second.n_iterations == first.n_iterations == 200
    shown = kr.recover_kernel(x, y, 3, method="adam", loss="mae", max_iter=200, tol=0.0, progress=True)
    np.testing.assert_array_equal(shown.kernel, first.kernel)
    np.testing.assert_array_equal(shown.loss_history, first.loss_history)


@pytest.mark.parametrize("formulation", ["design", "frames"])
def test_nearby_sizes_share_one_compiled_loop_and_the_padding_changes_nothing(formulation, rng, monkeypatch):
    # 280 and 300 equations of 9 taps: one bucket (320 rows and 10 columns; 9 and 10 frames of 32 -> 10), so one
    # compilation
    if formulation == "frames":
        monkeypatch.setattr(gradient, "DESIGN_LIMIT", 0)
    traces = []
    run_loop = gradient._run_loop
    monkeypatch.setattr(gradient, "_run_loop", lambda *args: traces.append(1) or run_loop(*args))
    w = rng.standard_normal(9)
    fits, traced = {}, []
    for n in (288, 308):
        x = rng.standard_normal(n)
        fits[n] = (x, kr.recover_kernel(x, np.convolve(x, w[::-1], mode="valid"), 9, method="adam", loss="mae"))
        traced.append(len(traces))
        assert fits[n][1].diagnostics["formulation"] == formulation
    assert traced[1] == traced[0]  # the second size ran the loop compiled for the first
    for _, res in fits.values():
        assert res.success, res.message
        np.testing.assert_allclose(res.kernel.ravel(), w, atol=1e-4)
    # the same descent without padding: the same iterates up to float32 rounding of the sums
    monkeypatch.setattr(gradient, "bucket", lambda n: n)
    x, padded = fits[288]
    plain = kr.recover_kernel(x, np.convolve(x, w[::-1], mode="valid"), 9, method="adam", loss="mae")
    np.testing.assert_allclose(plain.kernel, padded.kernel, rtol=0, atol=1e-5)
    np.testing.assert_allclose(plain.loss_history[:50], padded.loss_history[:50], rtol=1e-5)


def test_a_compiler_option_xla_refuses_is_left_out(rng, monkeypatch):
    """An XLA without one of the small loops' extra options compiles without it, to the same iterates as a loop
    compiled without any extra options."""
    x = rng.standard_normal(30)
    y = np.convolve(x, [2.0, -1.0, 0.5], mode="valid")
    monkeypatch.setattr(gradient, "SMALL_OPTIONS", {})
    gradient.compiled_loop.cache_clear()
    plain = kr.recover_kernel(x, y, 3, method="adam", loss="mae", max_iter=100, tol=0.0)
    monkeypatch.setattr(gradient, "SMALL_OPTIONS", {"xla_cpu_no_such_option_for_this_test": 1})
    monkeypatch.setattr(gradient, "_refused_options", set())
    gradient.compiled_loop.cache_clear()
    refused = kr.recover_kernel(x, y, 3, method="adam", loss="mae", max_iter=100, tol=0.0)
    assert gradient._refused_options == {"xla_cpu_no_such_option_for_this_test"}
    np.testing.assert_array_equal(refused.kernel, plain.kernel)
    np.testing.assert_array_equal(refused.loss_history, plain.loss_history)
    gradient.compiled_loop.cache_clear()


def test_float64_is_scoped(rng):
    x = rng.standard_normal(40)
    y = np.convolve(x, [2.0, 1.0], mode="valid")  # correlation with [1, 2]
    before = jax.config.jax_enable_x64
    res = kr.recover_kernel(x, y, 2, method="adam", dtype="float64", tol=1e-12, max_iter=2000)
    assert jax.config.jax_enable_x64 == before
    np.testing.assert_allclose(res.kernel.ravel(), [1.0, 2.0], atol=1e-9)
    assert res.options["dtype"] == "float64"


def test_restarts_minibatches_custom_optimizer_and_lstsq_init(rng):
    x = rng.standard_normal((400, 2))
    w = rng.standard_normal((3, 2, 1))
    y = jax_conv1d(x[None], w)[0]
    res = kr.recover_kernel(x, y, 3, method="adam", restarts=3, batch_size=64, loss="mse", max_iter=1500)
    assert len(res.diagnostics["restart_losses"]) == 3
    assert res.diagnostics["restart"] == int(np.argmin(res.diagnostics["restart_losses"]))
    assert res.diagnostics["batch_rows"] == 64
    np.testing.assert_allclose(res.kernel, w, atol=1e-3)
    custom = kr.recover_kernel(x, y, 3, method="adam", optimizer=optax.adam(1e-2), max_iter=800, tol=0.0)
    assert custom.options["learning_rate"] is None and custom.n_iterations == 800
    np.testing.assert_allclose(custom.kernel, w, atol=1e-2)
    cold = kr.recover_kernel(x, y, 3, method="adam", loss="mae")
    warm = kr.recover_kernel(x, y, 3, method="adam", init="lstsq", loss="mae")
    assert warm.success and warm.n_iterations < cold.n_iterations
    assert warm.options["learning_rate"] == 1e-3
    np.testing.assert_allclose(warm.kernel, w, atol=1e-4)


def test_importing_the_package_does_not_import_jax():
    import subprocess
    import sys

    code = "import sys, kernel_recovery; print('jax' in sys.modules, 'optax' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


@pytest.mark.parametrize("case", ["short", "constant", "sinusoid"])
def test_rank_deficient_data_give_the_minimum_norm_kernel(case):
    rng = np.random.default_rng(1)
    k = rng.standard_normal(6)
    x = {"short": rng.standard_normal(10), "constant": np.full(40, 1.5), "sinusoid": np.sin(0.4 * np.arange(60))}[case]
    y = kr.conv1d(x, k)
    a = np.lib.stride_tricks.sliding_window_view(x, 6)
    with pytest.warns(kr.UnderdeterminedWarning):
        res = kr.recover_kernel(x, y, 6, method="adam")
    np.testing.assert_allclose(res.kernel.ravel(), np.linalg.pinv(a) @ y, atol=1e-5)


@pytest.mark.parametrize("ax, by", [(0.01, 1.0), (300.0, 1.0), (1.0, 300.0), (1.0, 1e-3), (40.0, 1e-2)])
def test_the_descent_is_free_of_the_units_of_x_and_y(ax, by):
    # before: x scaled by 0.01 gave a kernel 8.5% off, y scaled by 300 one 50% off, both success=False
    rng = np.random.default_rng(3)
    x = rng.standard_normal(200)
    w = np.array([1.0, -0.5, 0.25])
    y = np.convolve(x, w[::-1], mode="valid") + 0.01 * rng.standard_normal(198)
    reference = np.linalg.lstsq(np.lib.stride_tricks.sliding_window_view(x, 3), y, rcond=None)[0]
    res = kr.recover_kernel(ax * x, by * y, 3, method="adam")
    assert res.success, res.message
    np.testing.assert_allclose(res.kernel.ravel() * ax / by, reference, rtol=1e-5, atol=1e-6)


def test_an_input_of_zeros_gives_the_zero_kernel():
    # before: the random initial kernel came back with success=True (no direction is seen, none moved)
    with pytest.warns(kr.UnderdeterminedWarning):
        res = kr.recover_kernel(np.zeros(50), np.zeros(48), 3, method="adam")
    np.testing.assert_array_equal(res.kernel.ravel(), np.zeros(3))
