"""kr.KernelEstimator: scikit-learn's own estimator checks, least squares on an explicit lagged design, per-output
ridge, negative lags, grid search over kernel_size and ridge with TimeSeriesSplit, a pipeline, a lazy import."""

import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("sklearn")

from sklearn.base import clone  # noqa: E402
from sklearn.model_selection import GridSearchCV, TimeSeriesSplit  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import kernel_recovery as kr  # noqa: E402
from kernel_recovery.estimator import KernelEstimator  # noqa: E402


def lagged_design(x, first, last, bias=True):
    """Columns x[t - l, c] for l = first..last (zero outside the record), lag-major, then a column of ones."""
    n, channels = x.shape
    columns = []
    for lag in range(first, last + 1):
        shifted = np.zeros_like(x)
        lo, hi = max(lag, 0), min(n, n + lag)
        shifted[lo:hi] = x[lo - lag : hi - lag]
        columns.append(shifted)
    a = np.concatenate(columns, axis=1)
    return np.hstack([a, np.ones((n, 1))]) if bias else a


def ridge_reference(a, y, ridge):
    """argmin ||y - a c||^2 + ridge ||c[:-1]||^2 (the bias, last, not penalized), by lstsq on augmented rows."""
    penalty = np.sqrt(ridge) * np.eye(a.shape[1])[:-1]
    coef, *_ = np.linalg.lstsq(np.vstack([a, penalty]), np.concatenate([y, np.zeros(len(penalty))]), rcond=None)
    return coef


def data(n=400, channels=2, outputs=3, first=0, last=5, noise=0.1, seed=0, offset=0.0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, channels)) + offset
    kernel = rng.standard_normal((last - first + 1, channels, outputs))
    bias = rng.standard_normal(outputs)
    y = lagged_design(x, first, last, bias=False) @ kernel.reshape(-1, outputs) + bias
    return x, y + noise * rng.standard_normal(y.shape), kernel, bias


def expected_failed_checks(estimator):
    if estimator.kernel_size in (None, 1) and estimator.lags in (None, (0, 0)):
        return {}
    why = "a convolution over time: a prediction depends on the samples before (and after) it"
    return {"check_methods_subset_invariance": why, "check_methods_sample_order_invariance": why}


# scikit-learn's checks feed small tabular data, not time series: the package's own warnings (a residual that
# says the kernel is longer, too few samples for the lags) are right about such data and not what is tested here.
@pytest.mark.filterwarnings("ignore::kernel_recovery.KernelSizeWarning")
@pytest.mark.filterwarnings("ignore::kernel_recovery.NonCausalWarning")
@pytest.mark.filterwarnings("ignore::kernel_recovery.UnderdeterminedWarning")
@parametrize_with_checks(
    [
        KernelEstimator(),
        KernelEstimator(use_bias=False),
        KernelEstimator(kernel_size=3),
        KernelEstimator(lags=(-1, 1), ridge=0.1),
        KernelEstimator(kernel_size=2, regularization="gcv"),
    ],
    expected_failed_checks=expected_failed_checks,
)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


def test_defaults_are_linear_regression_with_an_intercept():
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((50, 4)), rng.standard_normal(50)
    est = KernelEstimator().fit(x, y)
    coef, *_ = np.linalg.lstsq(np.hstack([x, np.ones((50, 1))]), y, rcond=None)
    np.testing.assert_allclose(est.kernel_[0, :, 0], coef[:-1], atol=1e-12)
    np.testing.assert_allclose(est.bias_, coef[-1:], atol=1e-12)
    assert est.kernel_.shape == (1, 4, 1) and est.lags_.tolist() == [0]
    np.testing.assert_allclose(est.predict(x), np.hstack([x, np.ones((50, 1))]) @ coef, atol=1e-12)
    residual = y - np.hstack([x, np.ones((50, 1))]) @ coef
    assert est.score(x, y) == pytest.approx(1 - residual @ residual / np.sum((y - y.mean()) ** 2))  # R^2


@pytest.mark.parametrize("use_bias", [True, False])
def test_lags_match_least_squares_on_the_explicit_lagged_design(use_bias):
    x, y, _, _ = data(first=-2, last=3)
    with pytest.warns(kr.NonCausalWarning, match="negative lag"):  # the package's check: signal before the input
        if use_bias:
            est = KernelEstimator(lags=(-2, 3), use_bias=use_bias).fit(x, y)
        else:  # the data have an offset: a fit without a bias is warned so
            with pytest.warns(kr.ModelMisfitWarning, match="use_bias=True"):
                est = KernelEstimator(lags=(-2, 3), use_bias=use_bias).fit(x, y)
    a = lagged_design(x, -2, 3, bias=use_bias)
    coef, *_ = np.linalg.lstsq(a, y, rcond=None)
    n_taps = 6 * 2
    assert est.lags_.tolist() == [-2, -1, 0, 1, 2, 3]
    np.testing.assert_allclose(est.kernel_.reshape(n_taps, 3), coef[:n_taps], atol=1e-10)
    np.testing.assert_allclose(est.bias_, coef[n_taps] if use_bias else np.zeros(3), atol=1e-10)
    np.testing.assert_allclose(est.predict(x), a @ coef, atol=1e-10)
    assert isinstance(est.result_, kr.KernelResult)
    assert est.result_.lags.tolist() == est.lags_.tolist()


def test_negative_lags_recover_a_response_that_leads_the_input():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((300, 1))
    y = np.r_[x[2:, 0], 0.0, 0.0] - 0.5 * x[:, 0]  # y[t] = x[t + 2] - 0.5 x[t]: lags -2 and 0
    with pytest.warns(kr.NonCausalWarning, match="negative lag"):
        est = KernelEstimator(lags=(-3, 1)).fit(x, y)
    np.testing.assert_allclose(est.kernel_[:, 0, 0], [0.0, 1.0, 0.0, -0.5, 0.0], atol=1e-12)
    assert est.predict(x).shape == (300,)
    assert est.score(x, y) == pytest.approx(1.0)


def test_automatic_lags_choose_the_window():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((500, 1))
    y = lagged_design(x, 2, 4) @ [1.0, 0.5, 0.25, 0.0] + 0.05 * rng.standard_normal(500)  # a delay of 2 samples
    est = KernelEstimator(lags="auto").fit(x, y)
    assert est.lags_.tolist() == [2, 3, 4]
    np.testing.assert_allclose(est.kernel_[:, 0, 0], [1.0, 0.5, 0.25], atol=0.02)
    assert est.result_.diagnostics["lags"]["first"] == 2
    with pytest.raises(ValueError, match="`lags`='auto' cannot be combined with a per-output `ridge`"):
        KernelEstimator(lags="auto", ridge=[1.0]).fit(x, y)


def test_kernel_size_is_a_causal_window():
    x, y, _, _ = data(first=0, last=3)
    a, b = KernelEstimator(kernel_size=4).fit(x, y), KernelEstimator(lags=(0, 3)).fit(x, y)
    np.testing.assert_array_equal(a.kernel_, b.kernel_)
    assert a.lags_.tolist() == [0, 1, 2, 3]


def test_per_output_ridge_is_each_outputs_own_ridge_regression():
    x, y, _, _ = data(n=120, noise=1.0)
    ridges = [0.0, 5.0, 50.0]
    est = KernelEstimator(lags=(0, 5), ridge=ridges).fit(x, y)
    a = lagged_design(x, 0, 5)
    for o, ridge in enumerate(ridges):
        coef = ridge_reference(a, y[:, o], ridge)
        np.testing.assert_allclose(est.kernel_[:, :, o].ravel(), coef[:-1], atol=1e-9)
        np.testing.assert_allclose(est.bias_[o], coef[-1], atol=1e-9)
    assert [r.options["ridge"] for r in est.result_] == ridges
    # a scalar ridge is the same penalty for every output, in one fit
    one = KernelEstimator(lags=(0, 5), ridge=5.0).fit(x, y)
    np.testing.assert_allclose(one.kernel_[:, :, 1], est.kernel_[:, :, 1], atol=1e-10)
    assert isinstance(one.result_, kr.KernelResult)


def test_automatic_regularization_records_a_ridge_per_output():
    x, y, _, _ = data(n=120, noise=1.0)
    est = KernelEstimator(lags=(0, 5), regularization="gcv").fit(x, y)
    assert np.shape(est.result_.options["ridge"]) == (3,)


def test_fit_percent_is_the_normalized_rms_fit():
    x, y, _, _ = data(noise=1.0)
    est = KernelEstimator(lags=(0, 5)).fit(x, y)
    error = np.linalg.norm(y - est.predict(x), axis=0)
    np.testing.assert_allclose(est.fit_percent(x, y), 100 * (1 - error / np.linalg.norm(y - y.mean(0), axis=0)))
    single = KernelEstimator(lags=(0, 5)).fit(x, y[:, 0])
    r2 = single.score(x, y[:, 0])  # R^2, scikit-learn's score; fit percent is 100 (1 - sqrt(1 - R^2))
    assert single.fit_percent(x, y[:, 0]) == pytest.approx(100 * (1 - np.sqrt(1 - r2)))


def test_grid_search_with_time_series_split_finds_the_kernel_size():
    x, y, _, _ = data(n=600, channels=1, outputs=1, first=0, last=4, noise=0.3, seed=3)
    search = GridSearchCV(KernelEstimator(), {"kernel_size": [1, 2, 3, 5, 8, 12]}, cv=TimeSeriesSplit(5))
    with pytest.warns(kr.KernelSizeWarning):  # the candidates shorter than the kernel say so
        search.fit(x, y[:, 0])
    assert search.best_params_ == {"kernel_size": 5}
    assert search.best_estimator_.kernel_.shape == (5, 1, 1)


def test_grid_search_prefers_a_ridge_for_a_long_window_on_noisy_data():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((200, 1))
    y = 0.8 ** np.arange(30) @ lagged_design(x, 0, 29, bias=False).T + 2.0 * rng.standard_normal(200)
    search = GridSearchCV(
        KernelEstimator(lags=(0, 29)), {"ridge": [0.0, 1.0, 10.0, 100.0, 1000.0]}, cv=TimeSeriesSplit(4)
    )
    search.fit(x, y)
    assert search.best_params_["ridge"] > 0.0


def test_pipeline_with_a_scaler_predicts_as_the_estimator_alone():
    x, y, _, _ = data(offset=3.0)
    x *= 10.0
    # scaling alone changes the kernel's units, not the fit; centering would also move the rest value assumed
    # before the record (zero), which changes the first `last` equations
    pipe = make_pipeline(StandardScaler(with_mean=False), KernelEstimator(lags=(0, 5))).fit(x, y)
    alone = KernelEstimator(lags=(0, 5)).fit(x, y)
    np.testing.assert_allclose(pipe.predict(x), alone.predict(x), atol=1e-9)
    assert pipe.score(x, y) == pytest.approx(alone.score(x, y))
    np.testing.assert_allclose(pipe[-1].kernel_ / pipe[0].scale_[:, None], alone.kernel_, rtol=1e-9)
    centered = make_pipeline(StandardScaler(), KernelEstimator())
    search = GridSearchCV(centered, {"kernelestimator__kernel_size": [3, 6]}, cv=TimeSeriesSplit(3))
    with pytest.warns(kr.KernelSizeWarning):
        search.fit(x, y)
    assert search.best_params_ == {"kernelestimator__kernel_size": 6} and search.best_score_ > 0.9


def test_parameters_are_stored_unvalidated_and_cloned():
    est = KernelEstimator(kernel_size="3", ridge=[1.0, 2.0], options={"max_iter": 5})
    assert clone(est).get_params() == est.get_params()
    assert est.set_params(kernel_size=4).kernel_size == 4
    assert not hasattr(est, "kernel_")


@pytest.mark.parametrize(
    "params, error, match",
    [
        ({"kernel_size": "3"}, TypeError, "`kernel_size` must be an integer, got '3'"),
        ({"kernel_size": 0}, ValueError, "`kernel_size` must be >= 1, got 0"),
        (
            {"ridge": [1.0, 2.0]},
            ValueError,
            r"`ridge` must be a number or one per output \(shape \(3,\)\), got shape \(2,\)",
        ),
        ({"ridge": -1.0}, ValueError, "`ridge` must be .*, got -1.0"),
        ({"lags": (2, 1)}, ValueError, "`lags` must be"),
        ({"lags": (0, 2), "kernel_size": 5}, ValueError, "`kernel_size` \\(=5\\)"),
        ({"options": {"layout": "ncw"}}, ValueError, r"`options` must not contain \['layout'\]"),
        ({"options": {"ridge": 1.0}}, ValueError, r"`options` must not contain \['ridge'\]"),
        ({"method": "fft", "ridge": 1.0}, TypeError, "ridge"),
        ({"options": {"not_an_option": 1}}, TypeError, "not_an_option"),
    ],
)
def test_bad_parameters_are_errors_at_fit_naming_the_parameter(params, error, match):
    x, y, _, _ = data(n=60)
    with pytest.raises(error, match=match):
        KernelEstimator(**params).fit(x, y)


def test_import_kernel_recovery_does_not_import_scikit_learn():
    code = (
        "import sys, kernel_recovery as kr\n"
        "assert 'sklearn' not in sys.modules, 'import kernel_recovery imported sklearn'\n"
        "assert kr.KernelEstimator.__module__ == 'kernel_recovery.estimator'\n"
        "assert 'sklearn' in sys.modules\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    with pytest.raises(AttributeError, match="has no attribute 'NoSuchName'"):
        kr.NoSuchName  # noqa: B018
