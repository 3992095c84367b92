"""Every argument judged at the entry: each entry point (conv1d, recover_kernel with each method, analyze,
NormalEquations, select_kernel_size, plan, recover_stack) given nonsense settings, arrays, dtypes and masks gets a
clear error naming the argument (model/validation.py's validators, model/arrays.py); narrow and integer dtypes are
converted, never a caller's array mutated or aliased; sizes that cannot fit in memory and values whose squares
overflow are refused with their size.

tests/test_errors.py covers recover_kernel(method="lstsq") on nonsense settings, dtypes of x and NaN; here the
same hostility is turned on every other entry point and method.
"""

import numpy as np
import pytest
from references import METHODS

import kernel_recovery as kr
from kernel_recovery.cli import main as cli_main

RNG = np.random.default_rng(7)
X = RNG.standard_normal(40)
W = np.array([1.0, -1.0, 0.5])
Y = kr.conv1d(X, W)
FAST_ADAM = dict(max_iter=5)


# ------------------------------------------------------------------------------------------------
# Nonsense settings, arrays, dtypes and masks at every entry point
# ------------------------------------------------------------------------------------------------


def _stack(x, y, **kw):
    layout = kw.pop("layout", "nwc")
    return kr.recover_stack(
        x, y, [{"kernel_size": kw.pop("kernel_size", 3), "out_channels": 1, **kw}], max_iter=5, layout=layout
    )


# Every entry point that takes a Conv1D configuration, called on valid data with one setting overridden.
ENTRY_POINTS = {
    "conv1d": lambda **kw: kr.conv1d(X, np.ones((kw.pop("kernel_size", 3), 1, 1)), **kw),
    "fft": lambda **kw: kr.recover_kernel(X, Y, kw.pop("kernel_size", 3), method="fft", **kw),
    "adam": lambda **kw: kr.recover_kernel(X, Y, kw.pop("kernel_size", 3), method="adam", **FAST_ADAM, **kw),
    "analyze": lambda **kw: kr.analyze(X, Y, kw.pop("kernel_size", 3), **kw),
    "analyze_x_only": lambda **kw: kr.analyze(X, None, kw.pop("kernel_size", 3), **kw),
    "NormalEquations": lambda **kw: kr.NormalEquations(kw.pop("kernel_size", 3), **kw).update(X, Y),
    "select_kernel_size": lambda **kw: kr.select_kernel_size(X, Y, kw.pop("kernel_size", [3]), **kw),
    "plan": lambda **kw: kr.plan(kw.pop("kernel_size", 3), lengths=40, **kw),
    "recover_stack": lambda **kw: _stack(X, Y, **kw),
}
NONSENSE = [
    ("kernel_size", 0, ValueError, r"`kernel_size` must be >= 1, got 0"),
    ("kernel_size", -3, ValueError, r"`kernel_size` must be >= 1, got -3"),
    ("kernel_size", 2.5, TypeError, r"`kernel_size` must be an integer, got 2.5"),
    ("kernel_size", True, TypeError, r"`kernel_size` must be an integer, got True"),
    ("kernel_size", None, TypeError, r"`kernel_size` must be an integer, got None"),
    ("kernel_size", "3", TypeError, r"`kernel_size` must be an integer, got '3'"),
    ("stride", 0, ValueError, r"`stride` must be >= 1, got 0"),
    ("stride", 1.5, TypeError, r"`stride` must be an integer, got 1.5"),
    ("stride", None, TypeError, r"`stride` must be an integer, got None"),
    ("dilation", -1, ValueError, r"`dilation` must be >= 1, got -1"),
    ("dilation", False, TypeError, r"`dilation` must be an integer, got False"),
    ("dilation", "2", TypeError, r"`dilation` must be an integer, got '2'"),
    ("groups", 0, ValueError, r"`groups` must be >= 1, got 0"),
    ("groups", 2.0, TypeError, r"`groups` must be an integer, got 2.0"),
    ("padding", "middle", ValueError, r"`padding` must be one of 'valid'.*got 'middle'"),
    ("padding", None, TypeError, r"`padding` must be .*got None"),
    ("padding", -2, ValueError, r"`padding` must be non-negative"),
    ("padding", (1.0, 2), TypeError, r"`padding` entries must be integers, got \(1.0, 2\)"),
    ("padding", (True, 1), TypeError, r"`padding` entries must be integers"),
    ("layout", "nhwc", ValueError, r"`layout` must be 'nwc'.*got 'nhwc'"),
    ("layout", None, ValueError, r"`layout` must be 'nwc'.*got None"),
]


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
@pytest.mark.parametrize("name, value, exc, match", NONSENSE, ids=[f"{n}={v!r}" for n, v, _, _ in NONSENSE])
def test_nonsense_settings_everywhere(entry, name, value, exc, match):
    if entry == "plan" and name == "layout":
        pytest.skip("plan takes no layout (it has no arrays)")
    if entry == "conv1d" and name == "kernel_size":
        pytest.skip("conv1d reads kernel_size from the kernel's shape")
    if entry == "recover_stack" and name == "groups":
        pytest.skip("recover_stack layers have no groups")
    if entry == "select_kernel_size" and name == "kernel_size":  # the candidates are checked instead
        exc, match = (TypeError, ValueError), r"`candidates` (must be|is empty)"
    with pytest.raises(exc, match=match):
        ENTRY_POINTS[entry](**{name: value})


@pytest.mark.parametrize("entry", ["fft", "adam", "analyze", "NormalEquations", "select_kernel_size", "plan"])
def test_bool_settings_must_be_bools(entry):
    for name in ("use_bias", "flip"):
        with pytest.raises(TypeError, match=rf"`{name}` must be True or False, got 'yes'"):
            ENTRY_POINTS[entry](**{name: "yes"})


@pytest.mark.parametrize("entry", ["conv1d", "fft", "adam", "analyze", "NormalEquations"])
def test_groups_not_dividing_channels(entry):
    with pytest.raises(ValueError, match=r"`in_channels` \(=1\) must be divisible by `groups` \(=2\)"):
        ENTRY_POINTS[entry](groups=2)


@pytest.mark.parametrize("method", list(METHODS))
def test_unknown_option_for_each_method(method):
    with pytest.raises(TypeError, match=rf"method '{method}' got an unexpected option 'learning_rat'"):
        kr.recover_kernel(X, Y, 3, method=method, learning_rat=0.1)


@pytest.mark.parametrize("method", ["fft", "adam"])
@pytest.mark.parametrize(
    "case, match",
    [
        ("y_short", r"`y` has 37 samples but 40 input samples with kernel_size=3 give 38 outputs"),
        ("batch", r"`x` and `y` must hold the same number of sequences, got 2 and 3"),
        ("ndim", r"`x` must be 1-D .*shape \(1, 2, 3, 4\)"),
        ("ragged_channels", r"all sequences in `y` must have the same number of channels, got \[1, 2\]"),
        ("empty", r"`x` is empty"),
        ("empty_batch", r"`x` has an empty batch"),
        ("nan", r"`y` contains 1 NaN or Inf value\(s\), the first at index \(4, 0\)"),
        ("inf", r"`x` contains 1 NaN or Inf value\(s\), the first at index \(2, 0\)"),
    ],
)
def test_bad_arrays_for_other_methods(method, case, match):
    x, y = X, Y
    if case == "y_short":
        y = Y[:-1]
    elif case == "batch":
        x, y = np.ones((2, 10, 1)), np.ones((3, 8, 1))
    elif case == "ndim":
        x = np.ones((1, 2, 3, 4))
    elif case == "ragged_channels":
        x, y = [X, X[:30]], [Y[:, None], np.ones((28, 2))]
    elif case == "empty":
        x, y = np.ones((0, 1)), np.ones((0, 1))
    elif case == "empty_batch":
        x, y = np.ones((0, 5, 1)), np.ones((0, 3, 1))
    elif case == "nan":
        y = Y.copy()
        y[4] = np.nan
    elif case == "inf":
        x = X.copy()
        x[2] = -np.inf
    with pytest.raises(ValueError, match=match):
        kr.recover_kernel(x, y, 3, method=method, **FAST_ADAM if method == "adam" else {})


BAD_DTYPES = [
    (np.array(["a"] * 38), r"`y` must be a real numeric array, got dtype <U1"),
    (Y > 0, r"`y` must be numeric, got dtype bool"),
    (np.array([1.0, "a"] * 19, dtype=object), r"`y` must be a numeric array, got dtype object"),
    (np.arange(38).astype("datetime64[s]"), r"`y` must be a real numeric array, got dtype datetime64"),
]


@pytest.mark.parametrize("entry", ["lstsq", "fft", "adam", "analyze", "select_kernel_size"])
@pytest.mark.parametrize("y, match", BAD_DTYPES, ids=["str", "bool", "object", "datetime"])
def test_bad_dtypes_of_y(entry, y, match):
    calls = {
        "lstsq": lambda: kr.recover_kernel(X, y, 3),
        "fft": lambda: kr.recover_kernel(X, y, 3, method="fft"),
        "adam": lambda: kr.recover_kernel(X, y, 3, method="adam", **FAST_ADAM),
        "analyze": lambda: kr.analyze(X, y, 3),
        "select_kernel_size": lambda: kr.select_kernel_size(X, y, [3]),
    }
    with pytest.raises(TypeError, match=match):
        calls[entry]()


def test_complex_y_is_a_complex_problem_where_the_method_takes_one():
    """A complex y (once refused everywhere) is fitted by the grid path (lstsq, fft, analyze); the others say so."""
    yc = Y * (1 - 2j)
    assert np.iscomplexobj(kr.recover_kernel(X, yc, 3).kernel)
    assert np.iscomplexobj(kr.recover_kernel(X, yc, 3, method="fft").kernel)
    assert kr.analyze(X, yc, 3).status == "overdetermined"
    with pytest.raises(ValueError, match="method='adam' does not take complex signals"):
        kr.recover_kernel(X, yc, 3, method="adam", **FAST_ADAM)
    with pytest.raises(TypeError, match=r"`y` must be real, got complex"):
        kr.select_kernel_size(X, yc, [3])


def test_bad_dtypes_for_conv1d_and_accumulator():
    with pytest.raises(TypeError, match=r"`kernel` must be real, got complex"):
        kr.conv1d(X, W.astype(complex))
    with pytest.raises(TypeError, match=r"`bias` must be numeric, got dtype bool"):
        kr.conv1d(X, W[:, None, None], np.array([True]))
    with pytest.raises(TypeError, match=r"`x_chunk` must be real, got complex"):
        kr.NormalEquations(3).update(X.astype(complex), Y)
    with pytest.raises(ValueError, match=r"`y_chunk` contains 1 NaN"):
        kr.NormalEquations(3).update(X, np.r_[Y[:-1], np.nan])


@pytest.mark.parametrize("method", list(METHODS))
def test_float16_integer_and_unsigned_inputs_agree_with_float64(method):
    """Narrow and integer inputs are converted to float64: every method answers as for the float64 data."""
    x = np.random.default_rng(1).integers(-4, 5, 60)
    y = kr.conv1d(x, [2.0, -1.0, 3.0])
    ref = kr.recover_kernel(x.astype(np.float64), y, 3, method=method, **METHODS[method]).kernel
    tol = 1e-4 if method == "adam" else 1e-9
    np.testing.assert_allclose(ref.ravel(), [2, -1, 3], atol=tol)
    for xc, yc in [(x.astype(np.float16), y.astype(np.float16)), (x.astype(np.int8), y.astype(np.int32))]:
        res = kr.recover_kernel(xc, yc, 3, method=method, **METHODS[method])
        assert res.kernel.dtype == np.float64
        np.testing.assert_allclose(res.kernel, ref, atol=tol)
    xu = (x + 4).astype(np.uint8)  # unsigned: no wrap-around when converted
    res = kr.recover_kernel(xu, kr.conv1d(xu.astype(float), [2.0, -1.0, 3.0]), 3, method=method, **METHODS[method])
    np.testing.assert_allclose(res.kernel.ravel(), [2, -1, 3], atol=tol)


def test_conv1d_keeps_integer_and_half_inputs_in_float():
    y16 = kr.conv1d(X.astype(np.float16), W.astype(np.float16))
    assert y16.dtype == np.float32  # result type of float16 and float32, computed in float64
    yi = kr.conv1d(np.arange(10), [1, 2])
    assert yi.dtype == np.float64
    np.testing.assert_array_equal(yi, np.convolve(np.arange(10.0), [2.0, 1.0], "valid"))


@pytest.mark.parametrize("method", list(METHODS))
def test_read_only_non_contiguous_inputs_never_mutated_never_aliased(method):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 80, 4))[:, ::2, ::2]  # non-contiguous
    w = rng.standard_normal((3, 2, 2))
    y = np.asfortranarray(kr.conv1d(x, w, [0.5, -0.5]))
    x_copy, y_copy = x.copy(), y.copy()
    x.flags.writeable = y.flags.writeable = False
    res = kr.recover_kernel(x, y, 3, use_bias=True, method=method, **METHODS[method])
    np.testing.assert_allclose(res.kernel, w, atol=1e-4 if method == "adam" else 1e-9)
    np.testing.assert_array_equal(x, x_copy)
    np.testing.assert_array_equal(y, y_copy)
    for out in (res.kernel, res.bias):
        assert not np.shares_memory(out, x) and not np.shares_memory(out, y)
    res.kernel[...] = 0.0  # results are the caller's to modify


def test_writable_inputs_are_not_mutated_by_omit_or_conv1d(rng):
    x = rng.standard_normal(50)
    x[7] = np.nan
    y = kr.conv1d(np.nan_to_num(x), W)
    y[3] = np.nan
    x_copy, y_copy = x.copy(), y.copy()
    kr.recover_kernel(x, y, 3, nan_policy="omit")
    kr.analyze(x, y, 3, nan_policy="omit")
    np.testing.assert_array_equal(x, x_copy)
    np.testing.assert_array_equal(y, y_copy)
    k = W.copy()
    out = kr.conv1d(X, k)
    np.testing.assert_array_equal(k, W)
    assert not np.shares_memory(out, X)


def test_masked_arrays_are_not_silently_unmasked(rng):
    x = rng.standard_normal(60)
    y = kr.conv1d(x, W)
    y[10] = 1e6  # garbage under the mask
    ym = np.ma.masked_array(y, mask=np.arange(58) == 10)
    with pytest.raises(ValueError, match=r"`y` has 1 masked value\(s\); .*nan_policy='omit'"):
        kr.recover_kernel(x, ym, 3)
    with pytest.raises(ValueError, match=r"`y_chunk` has 1 masked value"):
        kr.NormalEquations(3).update(x, ym)
    res = kr.recover_kernel(x, ym, 3, nan_policy="omit")
    np.testing.assert_allclose(res.kernel.ravel(), W, atol=1e-10)
    assert kr.analyze(x, ym, 3, nan_policy="omit").equations[0] == 57
    assert ym.data[10] == 1e6 and ym.mask[10]  # the caller's masked array is untouched


def test_omit_that_drops_every_equation_says_so():
    with pytest.raises(ValueError, match=r"nan_policy='omit' leaves no equations for output channel\(s\) \[0\]"):
        kr.recover_kernel(X, np.full(38, np.nan), 3, nan_policy="omit")
    x = X.copy()
    x[::2] = np.nan  # every window of 3 taps reads a NaN
    with pytest.raises(ValueError, match=r"leaves no equations for output channel\(s\) \[0\]"):
        kr.analyze(x, Y, 3, nan_policy="omit")
    y2 = np.stack([Y, np.full(38, np.nan)], axis=1)
    with pytest.raises(ValueError, match=r"output channel\(s\) \[1\]"):
        kr.recover_kernel(X, y2, 3, nan_policy="omit")


# ------------------------------------------------------------------------------------------------
# Sizes that cannot fit in memory, values that cannot be squared
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("entry", ["lstsq", "fft", "adam", "analyze", "NormalEquations", "cli"])
def test_gram_too_large_for_memory_is_refused_with_its_size(entry, tmp_path, capsys):
    x = np.zeros((5, 400_000))  # kernel_size 3: P = 1.2e6 unknowns, a Gram of terabytes; x itself is 16 MB
    y = np.zeros((3, 1))
    match = r"P = 1200000 unknowns .* Gram matrix .* would need 11\.5 TB"
    if entry == "analyze":
        with pytest.raises(MemoryError, match=match):
            kr.analyze(x, y, 3)
    elif entry == "NormalEquations":
        with pytest.raises(MemoryError, match=match):
            kr.NormalEquations(3).update(x, y)
    elif entry == "cli":
        np.save(tmp_path / "x.npy", x)
        np.save(tmp_path / "y.npy", y)
        assert cli_main(["analyze", str(tmp_path / "x.npy"), str(tmp_path / "y.npy"), "-k", "3"]) == 1
        err = capsys.readouterr().err
        assert "11.5 TB" in err and len(err.strip().splitlines()) == 1
    else:
        with pytest.raises(MemoryError, match=match):
            kr.recover_kernel(x, y, 3, method=entry, **FAST_ADAM if entry == "adam" else {})


def test_long_single_channel_kernels_are_not_refused():
    """One channel: lstsq solves long kernels by FFT products, never forming the Gram; no memory refusal."""
    from kernel_recovery.model.problem import build_problem, check_feasible

    problem = build_problem(np.zeros(10**6), np.zeros(10**6 - 5 * 10**5 + 1), 5 * 10**5)
    check_feasible(problem)  # a 2 TB Gram, but single-channel: allowed
    with pytest.raises(MemoryError, match=r"P = 1000000 unknowns"):
        check_feasible(build_problem(np.zeros((10**6, 2)), np.zeros((5 * 10**5 + 1, 1)), 5 * 10**5))


@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize(
    "sx, sy, match",
    [
        (1e100, 1.0, r"`x` has values of magnitude up to .*e\+100: sums of their squares would overflow"),
        (1e-100, 1.0, r"`x` has values of magnitude up to .*e-100: .* would underflow"),
        (1.0, 1e80, r"`y` has values of magnitude up to .*e\+80: .*overflow.*the kernel scales with it"),
    ],
)
def test_values_whose_squares_overflow_are_refused(method, sx, sy, match):
    with pytest.raises(ValueError, match=match):
        kr.recover_kernel(X * sx, Y * sy, 3, method=method, **FAST_ADAM if method == "adam" else {})


@pytest.mark.parametrize("method", ["lstsq", "fft"])
def test_large_but_representable_scales_are_exact(method):
    for c in (1e-40, 1e40):
        res = kr.recover_kernel(X * c, Y, 3, method=method)
        np.testing.assert_allclose(res.kernel.ravel() * c, W, rtol=1e-8)


@pytest.mark.parametrize("sx, sy", [(1.0, 1e-6), (1e6, 1.0), (1e-10, 1e-10)])
def test_adam_never_claims_success_far_from_the_minimum(sx, sy):
    """Adam's steps are absolute: at unusual scales it stalls; it must then say so instead of 'converged'."""
    res = kr.recover_kernel(X * sx, Y * sy, 3, method="adam", max_iter=300)
    wrong = np.abs(res.kernel.ravel() * sx / sy - W).max() > 1e-3
    assert not (res.success and wrong)
    if not res.success and "least-squares minimum" in res.message:
        assert "rescale x and y" in res.message


@pytest.mark.parametrize(
    "good, bad, exc, match",
    [
        ({"stride": 1}, {"stride": True}, TypeError, r"`stride` must be an integer, got True"),
        ({"use_bias": True}, {"use_bias": 1}, TypeError, r"`use_bias` must be True or False, got 1"),
        ({"padding": (1, 1)}, {"padding": (True, 1)}, TypeError, r"`padding` entries must be integers"),
        ({"lags": (0, 2)}, {"lags": (0.0, 2)}, TypeError, r"`lags` must be a \(first, last\) pair of integers"),
        ({"padding": "valid"}, {"padding": "vald"}, ValueError, r"`padding` must be one of .*got 'vald'"),
    ],
)
def test_settings_judged_once_are_still_judged_by_type(good, bad, exc, match):
    """A door's settings are judged once per process (a cache of plain values): a value equal to one already
    judged but of another type (``True == 1``, ``0.0 == 0``) is judged again, and refused, by every door."""
    from kernel_recovery.model.config import ConvSpec

    kernel_size = None if "lags" in good else 3
    first = ConvSpec.create(kernel_size, **good)
    assert ConvSpec.create(kernel_size, **good) == first  # (read from the cache)
    with pytest.raises(exc, match=match):
        ConvSpec.create(kernel_size, **bad)
    x = np.arange(8.0)
    with pytest.raises(exc, match=match):
        kr.analyze(x, None, kernel_size, warn=False, **bad)


def test_everyday_arrays_reach_the_solver_as_read_only_views():
    """A float64 ndarray is read without a copy (a read-only view of the caller's memory); other dtypes, lists and
    ndarray subclasses are converted (the caller's array is never made read-only or written)."""
    from kernel_recovery.model.problem import build_problem

    x = np.random.default_rng(0).standard_normal((40, 2))
    y = kr.conv1d(x, np.ones((3, 2, 1)))
    problem = build_problem(x, y, 3)
    (bx,), (by,) = problem.blocks[0].xs, problem.blocks[0].ys
    assert np.shares_memory(bx, x) and np.shares_memory(by, y)
    assert not bx.flags.writeable and x.flags.writeable and y.flags.writeable
    np.testing.assert_array_equal(bx, x)

    class Subclass(np.ndarray):
        pass

    for other in (x.astype(np.float32), x.tolist(), x.view(Subclass)):
        xs = build_problem(other, y, 3).blocks[0].xs[0]
        assert type(xs) is np.ndarray and xs.dtype == np.float64 and not xs.flags.writeable
        np.testing.assert_array_equal(xs, np.asarray(other, dtype=np.float64))
