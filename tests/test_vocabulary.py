"""One vocabulary: string options in any case, the nearest name for a misspelled one, ``diagnostics["solver"]``
for every method.  Each upper-case spelling is checked against the result of the lower-case one."""

import warnings

import numpy as np
import pytest

import kernel_recovery as kr
from kernel_recovery import solvers
from kernel_recovery.model.result import Solution

RNG = np.random.default_rng(0)
X = RNG.standard_normal(600)
H = np.array([1.0, 0.5, -0.25])
Y_VALID = kr.conv1d(X, H) + 0.01 * RNG.standard_normal(598)
Y_CAUSAL = kr.conv1d(X, H, padding="causal") + 0.01 * RNG.standard_normal(600)


def fit(**kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", kr.KernelSizeWarning)
        return kr.recover_kernel(X, kwargs.pop("y", Y_VALID), kwargs.pop("kernel_size", 3), **kwargs)


def both(lower, upper):
    """The same kernel and the same recorded options (the canonical lower-case spelling) from both spellings."""
    np.testing.assert_array_equal(upper.kernel, lower.kernel)
    assert {k: repr(v) for k, v in upper.options.items()} == {k: repr(v) for k, v in lower.options.items()}


# --- string options, case-insensitive everywhere ------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, value, extra",
    [
        ("padding", "causal", dict(y=Y_CAUSAL)),
        ("padding", "same", dict(y=kr.conv1d(X, H, padding="same"))),
        ("method", "lstsq", {}),
        ("method", "fft", {}),
        ("nan_policy", "omit", {}),
        ("nan_policy", "raise", {}),
        ("prewhiten", "input", {}),
        ("prewhiten", "noise", {}),
        ("regularization", "tc", {}),
        ("regularization", "gcv", {}),
        ("loss", "mae", {}),
        ("loss", "huber", {}),
    ],
)
def test_recover_kernel_options_in_any_case(name, value, extra):
    lower = fit(**{name: value}, **extra)
    for spelling in (value.upper(), value.capitalize()):
        upper = fit(**{name: spelling}, **extra)
        both(lower, upper)
        assert upper.method == lower.method and upper.config == lower.config
        if name == "prewhiten":
            assert upper.diagnostics["prewhiten"]["method"] == value


def test_layout_in_any_case():
    lower = kr.recover_kernel(X[None, None], Y_VALID[None, None], 3, layout="ncw")
    upper = kr.recover_kernel(X[None, None], Y_VALID[None, None], 3, layout="NCW")
    both(lower, upper)
    assert upper.config.layout == "ncw"
    np.testing.assert_array_equal(kr.conv1d(X[:, None], H, layout="NWC"), kr.conv1d(X[:, None], H, layout="nwc"))
    np.testing.assert_array_equal(kr.conv1d(X[None], H, layout="Ncw"), kr.conv1d(X[None], H, layout="ncw"))
    np.testing.assert_array_equal(kr.conv1d(X, H, padding="Full"), np.convolve(X, H[::-1]))


def test_lags_auto_in_any_case():
    lower = fit(y=Y_CAUSAL, kernel_size=None, lags="auto")
    for spelling in ("AUTO", "Auto"):
        upper = fit(y=Y_CAUSAL, kernel_size=None, lags=spelling)
        both(lower, upper)
        assert upper.lags.tolist() == lower.lags.tolist() and upper.diagnostics["lags"] == lower.diagnostics["lags"]
    with pytest.raises(ValueError, match="`lags` must be a .* or 'auto', got 'automatic'"):
        fit(y=Y_CAUSAL, kernel_size=None, lags="automatic")


def test_lags_auto_with_padding_valid_in_any_case():
    lower = fit(y=Y_CAUSAL, kernel_size=None, lags="auto", padding="valid")
    both(lower, fit(y=Y_CAUSAL, kernel_size=None, lags="auto", padding="VALID"))
    with pytest.raises(ValueError, match="pass neither `kernel_size` nor `padding`"):
        fit(y=Y_CAUSAL, kernel_size=None, lags="auto", padding="same")


@pytest.mark.parametrize("name, value", [("nan_policy", "raise"), ("loss", "mse")])
def test_streamed_options_in_any_case(name, value):
    lower = fit(chunk_size=100, **{name: value})
    both(lower, fit(chunk_size=100, **{name: value.upper()}))
    with pytest.raises(ValueError, match="needs the data in memory"):
        fit(chunk_size=100, **{name: "OMIT" if name == "nan_policy" else "MAE"})


def test_analyze_and_track_kernel_settings_in_any_case():
    lower = kr.analyze(X, Y_VALID, 3, nan_policy="omit")
    upper = kr.analyze(X, Y_VALID, 3, nan_policy="OMIT")
    np.testing.assert_array_equal(upper.equations, lower.equations)
    np.testing.assert_array_equal(upper.singular_values, lower.singular_values)
    lower = kr.track_kernel(X, Y_CAUSAL, 3, window=200, step=100, padding="causal", detect_changes=False)
    upper = kr.track_kernel(X, Y_CAUSAL, 3, window=200, step=100, padding="CAUSAL", detect_changes=False)
    np.testing.assert_array_equal(upper.kernels, lower.kernels)


@pytest.mark.parametrize("criterion", ["aic", "bic", "cv"])
def test_select_kernel_size_criterion_in_any_case(criterion):
    lower = kr.select_kernel_size(X, Y_VALID, [2, 3, 4], criterion=criterion)
    upper = kr.select_kernel_size(X, Y_VALID, [2, 3, 4], criterion=criterion.upper())
    assert upper.criterion == criterion and upper.kernel_size == lower.kernel_size
    np.testing.assert_array_equal(upper.scores, lower.scores)


@pytest.mark.parametrize("criterion", ["aic", "bic"])
def test_select_lags_criterion_in_any_case(criterion):
    lower = kr.select_lags(X, Y_CAUSAL, criterion=criterion)
    upper = kr.select_lags(X, Y_CAUSAL, criterion=criterion.upper())
    assert upper.criterion == criterion and upper.lags == lower.lags
    np.testing.assert_array_equal(upper.result.kernel, lower.result.kernel)


def test_gradient_options_in_any_case():
    pytest.importorskip("jax")
    common = dict(method="adam", max_iter=50, seed=0)
    lower = fit(**common, loss="mae", init="lstsq")
    both(lower, fit(**common, loss="MAE", init="LSTSQ"))
    assert lower.options["loss"] == "mae" and lower.options["init"] == "lstsq"


def test_recover_stack_options_in_any_case():
    pytest.importorskip("jax")
    layers = [dict(kernel_size=2, out_channels=2), dict(kernel_size=2, out_channels=1)]
    common = dict(max_iter=20, seed=0)
    lower = kr.recover_stack(X, Y_VALID, layers, activation="tanh", loss="huber", **common)
    upper = kr.recover_stack(X, Y_VALID, layers, activation="TANH", loss="Huber", layout="NWC", **common)
    assert upper.activation == "tanh" and upper.options["loss"] == "huber"
    for a, b in zip(upper.kernels, lower.kernels):
        np.testing.assert_array_equal(a, b)


# --- a misspelled name: the nearest one (difflib) -----------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(strides=2), r"unexpected option 'strides' \(did you mean 'stride', a parameter of recover_kernel\?\)"),
        (dict(padings="same"), r"unexpected option 'padings' \(did you mean 'padding', a parameter of recover_kernel"),
        (dict(rige=0.1), r"method 'lstsq' got an unexpected option 'rige' \(did you mean 'ridge'\?\); its options"),
        (dict(regularisation="tc"), r"\(did you mean 'regularization'\?\)"),
        (dict(nan_polcy="omit"), r"\(did you mean 'nan_policy', a parameter of recover_kernel\?\)"),
        (dict(method="fft", noise_levl=0.1), r"method 'fft' got an unexpected option 'noise_levl' \(did you mean "),
        (dict(zzzz=1), r"unexpected option 'zzzz'; its options are: ridge, "),  # nothing near: no suggestion
    ],
)
def test_recover_kernel_suggests_the_nearest_name(kwargs, match):
    with pytest.raises(TypeError, match=match):
        fit(**kwargs)


def test_the_suggestion_is_difflibs_nearest():
    import difflib
    import inspect

    names = [*inspect.signature(solvers.resolve("lstsq")[1]).parameters][1:]
    params = [p for p in inspect.signature(kr.recover_kernel).parameters if p != "options"]
    for typo in ("strides", "rige", "chunksize", "progres", "use_biass", "layuot", "max_iters", "dilatation"):
        want = difflib.get_close_matches(typo, names + [p for p in params if p not in names], n=1)[0]
        with pytest.raises(TypeError, match=rf"\(did you mean '{want}'"):
            fit(**{typo: 1})


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: kr.track_kernel(X, Y_CAUSAL, 3, rige=1.0), r"track_kernel\(\) .* 'rige' \(did you mean 'ridge'\?\)"),
        (lambda: kr.track_kernel(X, Y_CAUSAL, 3, windw=50), r"'windw' \(did you mean 'window'\?\)"),
        (lambda: kr.track_kernel(X, Y_CAUSAL, 3, strides=2), r"'strides' \(did you mean 'stride'\?\)"),
        (lambda: kr.analyze(X, Y_VALID, 3, strides=2), r"`strides` \(did you mean `stride`\?\)"),
        (lambda: kr.select_kernel_size(X, Y_VALID, [2, 3], strides=2), r"'strides' \(did you mean 'stride'"),
        (lambda: kr.select_lags(X, Y_CAUSAL, rige=0.1), r"'rige' \(did you mean 'ridge'\?\)"),
    ],
)
def test_other_doors_suggest_the_nearest_name(call, match):
    with pytest.raises(TypeError, match=match):
        call()


def test_an_option_of_another_method_lists_the_methods_own():
    with pytest.raises(
        TypeError, match="method 'fft' got an unexpected option 'regularization'; its options are: .*wiener"
    ):
        fit(method="fft", regularization="tc")


# --- diagnostics["solver"] for every method -----------------------------------------------------------------------


def my_solver(problem, *, scale=1.0):
    """A user's solver: ordinary least squares on the explicit design of each block, no diagnostics."""
    from kernel_recovery.model.design import design_matrix, unpack_columns

    kernels = []
    for block in problem.blocks:
        a = design_matrix(block, False)
        coef = np.linalg.lstsq(a, np.concatenate(block.ys), rcond=None)[0] * scale
        kernels.append(unpack_columns(block, coef, False)[0])
    return Solution(kernels=kernels, biases=None)


@pytest.mark.parametrize(
    "method, options, want",
    [
        ("lstsq", {}, ["svd"]),
        ("lstsq", dict(loss="mae"), ["lp"]),
        ("fft", {}, ["spectral_pcg"]),
        ("adam", dict(max_iter=20), ["gradient_statistics"]),
        (my_solver, {}, ["my_solver"]),
    ],
)
def test_every_method_records_its_solver(method, options, want):
    if method == "adam":
        pytest.importorskip("jax")
    res = fit(method=method, **options)
    assert res.diagnostics["solver"] == want
    assert res.to_dict()["diagnostics"]["solver"] == want
    if method is my_solver:  # the user's solver is least squares: the same kernel as lstsq's
        np.testing.assert_allclose(res.kernel.ravel(), np.linalg.lstsq(_design(), Y_VALID, rcond=None)[0])


def test_solver_is_per_group():
    x = RNG.standard_normal((300, 2))
    y = kr.conv1d(x, RNG.standard_normal((3, 1, 2)), groups=2)
    for method in ("lstsq", "fft"):
        assert len(fit_groups(x, y, method).diagnostics["solver"]) == 2


def fit_groups(x, y, method):
    return kr.recover_kernel(x, y, 3, groups=2, method=method)


def _design():
    """Rows ``[x[t], x[t+1], x[t+2]]`` of the valid correlation (Keras order), built by slicing."""
    return np.stack([X[:-2], X[1:-1], X[2:]], axis=1)
