"""One suite, every method: the same behaviour checks for "lstsq", "fft", "adam" and a user's callable.

Modelled on scipy ``optimize/tests/test_least_squares.py``: :class:`BaseMethod` holds the checks (it is not
collected: its name does not start with ``Test``), and each ``Test*`` subclass names a method, its options
and tolerances, and which input kinds it takes.  The references are independent of the library: a Toeplitz
design built here sample by sample and solved by ``numpy.linalg.lstsq``, ``scipy.signal.correlate``, and a
hand-worked example.  Only the public API is used.
"""

import json

import numpy as np
import pytest
from scipy import signal

import kernel_recovery as kr

RESULT_KEYS = {
    "method", "success", "message", "kernel", "bias", "stderr", "bias_stderr", "residual_rms", "n_iterations",
    "loss_history", "options", "diagnostics", "config", "report",
}  # fmt: skip

# ----------------------------------------------------------------------------------------------
# Independent reference: the explicit Toeplitz design, solved by numpy.linalg.lstsq
# ----------------------------------------------------------------------------------------------


def toeplitz_design(x, kernel_size, *, stride=1, dilation=1, left=0, right=0, use_bias=False):
    """Rows = output samples, columns = (tap, channel) row-major (+ a column of ones) of one (length, C) sequence."""
    x = np.asarray(x, dtype=np.float64)
    x = x[:, None] if x.ndim == 1 else x
    xp = np.concatenate([np.zeros((left, x.shape[1])), x, np.zeros((right, x.shape[1]))])
    span = (kernel_size - 1) * dilation + 1
    n_out = (len(xp) - span) // stride + 1
    rows = [
        [xp[t * stride + j * dilation, c] for j in range(kernel_size) for c in range(x.shape[1])]
        + ([1.0] if use_bias else [])
        for t in range(n_out)
    ]
    return np.array(rows)


def reference_lstsq(xs, ys, kernel_size, *, use_bias=False, **design):
    """Kernel ``(K, C, O)`` and bias of ``numpy.linalg.lstsq`` on the stacked designs of the sequences ``xs``."""
    a = np.concatenate([toeplitz_design(x, kernel_size, use_bias=use_bias, **design) for x in xs])
    rhs = np.concatenate([np.asarray(y, dtype=np.float64).reshape(len(y), -1) for y in ys])
    coef = np.linalg.lstsq(a, rhs, rcond=None)[0]
    cin = (a.shape[1] - use_bias) // kernel_size
    kernel = coef[: kernel_size * cin].reshape(kernel_size, cin, rhs.shape[1])
    return kernel, (coef[-1] if use_bias else None)


# Noisy data for the checks against lstsq: 2 input channels, 2 outputs, stride 2, dilation 2, padding (2, 1),
# a bias.  The settings below and the design above describe the same equations.
NOISY_K = 3
NOISY_DESIGN = dict(stride=2, dilation=2, left=2, right=1)
NOISY_SETTINGS = dict(stride=2, dilation=2, padding=(2, 1), use_bias=True)


def noisy_sequence(rng, length, cin=2, cout=2, noise=0.1):
    """One (length, cin) input and its outputs, made by the explicit design (not by the library)."""
    x = rng.standard_normal((length, cin))
    w = rng.standard_normal((NOISY_K * cin, cout))
    a = toeplitz_design(x, NOISY_K, **NOISY_DESIGN)
    y = a @ w + 0.5 + noise * rng.standard_normal((len(a), cout))
    return x, y


# Noiseless round trips: (in_channels, out_channels, kernel_size, settings).
ROUND_TRIPS = [
    (1, 1, 3, dict()),
    (2, 3, 3, dict(stride=2, padding="same", use_bias=True, layout="ncw")),
    (2, 2, 4, dict(padding="causal", dilation=2, flip=True)),
    (4, 2, 2, dict(padding="full", groups=2, use_bias=True, layout="ncw")),
    (4, 4, 3, dict(stride=3, dilation=2, padding=(1, 2), groups=2, flip=True)),
]
ROUND_TRIP_IDS = ["valid", "stride-same-bias-ncw", "causal-dilation-flip", "full-groups-bias-ncw", "stride-dil-groups"]


def lstsq_on_im2col(problem, *, rcond=None):
    """A user's method: per block, numpy.linalg.lstsq on its explicit im2col design (minimum norm)."""
    use_bias = problem.config.use_bias
    kernels, biases = [], []
    for block in problem.blocks:
        rows, targets = [], []
        for x, y in zip(block.xs, block.ys):
            windows = np.lib.stride_tricks.sliding_window_view(x, block.taps, axis=0)  # (t, channels, taps)
            a = windows.transpose(0, 2, 1)[:, block.mask]  # the free (tap, channel) coefficients
            rows.append(np.hstack([a, np.ones((len(a), 1))]) if use_bias else a)
            targets.append(y)
        coef = np.linalg.lstsq(np.concatenate(rows), np.concatenate(targets), rcond=rcond)[0]
        kernel = np.zeros((block.taps, block.channels, len(block.out_channels)))
        kernel[block.mask] = coef[: block.n_free]
        kernels.append(kernel)
        biases.append(coef[block.n_free] if use_bias else None)
    return kr.Solution(kernels=kernels, biases=biases if use_bias else None, options={"rcond": rcond})


# ----------------------------------------------------------------------------------------------
# The shared checks
# ----------------------------------------------------------------------------------------------


class BaseMethod:
    """Behaviour every method shares; a subclass sets the class attributes below."""

    method = None
    #: the name the result reports
    name = None
    #: options passed on every call
    options = {}
    #: options added where the answer is compared with plain least squares on noisy data
    noisy_options = {}
    #: relative tolerance of the kernel (noiseless and noisy), and absolute for values near zero
    rtol = 1e-9
    atol = 1e-9
    #: whether an underdetermined problem gets the minimum-norm kernel (else: any interpolating kernel)
    min_norm = True
    #: whether memmap, Dask, iterator input (streamed least squares) is supported
    streams = False
    #: an option of the method and a value it must refuse (None: the method validates none)
    bad_option = ("max_iter", 0)

    def fit(self, x, y, kernel_size, **settings):
        return kr.recover_kernel(x, y, kernel_size, method=self.method, **{**self.options, **settings})

    def fit_noisy(self, x, y, kernel_size, **settings):
        return self.fit(x, y, kernel_size, **{**self.noisy_options, **settings})

    def assert_kernel(self, got, want, scale=1.0):
        np.testing.assert_allclose(got, want, rtol=self.rtol, atol=self.atol * scale)

    # -- worked examples and round trips -------------------------------------------------------------

    def test_four_sample_toy(self):
        # y[t] = 1 * x[t] + 2 * x[t + 1]: [0 + 6, 3 + 8, 4 + 10]
        x, y = [0.0, 3.0, 4.0, 5.0], [6.0, 11.0, 14.0]
        np.testing.assert_array_equal(signal.correlate(x, [1.0, 2.0], mode="valid"), y)
        res = self.fit(x, y, 2)
        self.assert_kernel(res.kernel.ravel(), [1.0, 2.0])
        assert res.kernel.shape == (2, 1, 1) and res.bias is None
        assert res.report.status == "overdetermined"
        assert res.report.equations.tolist() == [3] and res.report.unknowns.tolist() == [2]
        assert res.residual_rms < 1e3 * self.atol

    def test_matches_scipy_correlate(self, rng):
        x = rng.standard_normal(50)
        w = rng.standard_normal(4)
        res = self.fit(x, signal.correlate(x, w, mode="valid"), 4)
        self.assert_kernel(res.kernel.ravel(), w)
        # flip=True is a true convolution
        res = self.fit(x, signal.convolve(x, w, mode="valid"), 4, flip=True)
        self.assert_kernel(res.kernel.ravel(), w)

    @pytest.mark.parametrize("cin, cout, k, settings", ROUND_TRIPS, ids=ROUND_TRIP_IDS)
    def test_noiseless_round_trip(self, cin, cout, k, settings, rng):
        groups = settings.get("groups", 1)
        ncw = settings.get("layout") == "ncw"
        x = rng.standard_normal((2, cin, 60) if ncw else (2, 60, cin))
        w = rng.standard_normal((k, cin // groups, cout))
        b = rng.standard_normal(cout) if settings.get("use_bias") else None
        conv = {key: v for key, v in settings.items() if key != "use_bias"}
        y = kr.conv1d(x, w, b, **conv)
        res = self.fit(x, y, k, **settings)
        assert res.success, res.message
        self.assert_kernel(res.kernel, w)
        if b is None:
            assert res.bias is None
        else:
            self.assert_kernel(res.bias, b)
        assert res.residual_rms < 1e2 * self.rtol * np.abs(y).max()
        # the report counts one equation per output sample and K * Cin / groups (+ 1) unknowns per output channel
        assert res.report.equations.tolist() == [y.size // cout] * cout
        assert res.report.unknowns.tolist() == [k * cin // groups + (b is not None)] * cout

    @pytest.mark.parametrize("use_bias", [False, True])
    def test_noisy_matches_explicit_lstsq(self, use_bias, rng):
        x, y = noisy_sequence(rng, 120)
        kernel, bias = reference_lstsq([x], [y], NOISY_K, use_bias=use_bias, **NOISY_DESIGN)
        settings = dict(NOISY_SETTINGS, use_bias=use_bias)
        res = self.fit_noisy(x, y, NOISY_K, **settings)
        self.assert_kernel(res.kernel, kernel, scale=np.abs(kernel).max())
        if use_bias:
            self.assert_kernel(res.bias, bias, scale=np.abs(kernel).max())
        else:
            assert res.bias is None
        a = toeplitz_design(x, NOISY_K, use_bias=use_bias, **NOISY_DESIGN)
        coef = np.concatenate([kernel.reshape(-1, 2), bias[None]]) if use_bias else kernel.reshape(-1, 2)
        rms = np.sqrt(np.mean((a @ coef - y) ** 2))
        np.testing.assert_allclose(res.residual_rms, rms, rtol=max(self.rtol, 1e-12))

    # -- the result ----------------------------------------------------------------------------------

    @pytest.mark.parametrize("use_bias", [False, True])
    def test_result_type_and_fields(self, use_bias, rng):
        x = rng.standard_normal((2, 80, 4))
        w = rng.standard_normal((3, 2, 6))
        y = kr.conv1d(x, w, groups=2) + 0.01 * rng.standard_normal((2, 78, 6))
        res = self.fit_noisy(x, y, 3, groups=2, use_bias=use_bias)
        assert type(res) is kr.KernelResult
        assert res.method == self.name
        assert res.kernel.shape == (3, 2, 6) and res.kernel.dtype == np.float64
        if use_bias:
            assert res.bias.shape == (6,) and res.bias.dtype == np.float64
        else:
            assert res.bias is None and res.bias_stderr is None
        assert isinstance(res.residual_rms, float) and 0.0 < res.residual_rms < 0.1
        assert res.success is True
        assert isinstance(res.message, str) and res.message
        assert res.report.status == "overdetermined"
        for key, value in {**self.options, **self.noisy_options}.items():
            assert res.options[key] == value
        d = res.to_dict()
        assert set(d) == RESULT_KEYS
        assert d["method"] == self.name and d["report"]["status"] == "overdetermined"
        np.testing.assert_array_equal(d["kernel"], res.kernel)
        assert (d["bias"] is None) is (not use_bias)
        json.dumps(d, allow_nan=False)  # strict JSON

    def test_predict_reproduces_y(self, rng):
        x = rng.standard_normal((2, 3, 40))
        y = kr.conv1d(x, rng.standard_normal((3, 3, 2)), stride=2, padding="same", layout="ncw")
        res = self.fit(x, y, 3, stride=2, padding="same", layout="ncw")
        np.testing.assert_allclose(res.predict(x), y, rtol=0, atol=1e2 * self.rtol * np.abs(y).max())

    # -- errors and warnings -------------------------------------------------------------------------

    def test_unknown_option_is_a_type_error_naming_it(self):
        with pytest.raises(TypeError, match="unexpected option 'no_such_option'"):
            self.fit([0.0, 3.0, 4.0, 5.0], [6.0, 11.0, 14.0], 2, no_such_option=1)

    def test_bad_option_value_is_a_value_error_naming_it(self):
        if self.bad_option is None:
            pytest.skip("this method validates no option")
        option, value = self.bad_option
        with pytest.raises(ValueError, match=f"`{option}`.*{value!r}"):
            self.fit([0.0, 3.0, 4.0, 5.0], [6.0, 11.0, 14.0], 2, **{option: value})

    @pytest.mark.parametrize(
        "bad, name",
        [
            (dict(kernel_size=0), "kernel_size"),
            (dict(kernel_size=2, stride=0), "stride"),
            (dict(kernel_size=2, dilation=-1), "dilation"),
            (dict(kernel_size=2, padding="sideways"), "padding"),
            (dict(kernel_size=2, layout="wnc"), "layout"),
        ],
    )
    def test_bad_argument_is_a_value_error_naming_it(self, bad, name):
        settings = {key: v for key, v in bad.items() if key != "kernel_size"}
        with pytest.raises(ValueError, match=f"`{name}`"):
            self.fit(np.arange(10.0), np.arange(9.0), bad["kernel_size"], **settings)

    def test_groups_must_divide_channels(self, rng):
        with pytest.raises(ValueError, match="groups"):
            self.fit(rng.standard_normal((20, 3)), rng.standard_normal((19, 2)), 2, groups=2)

    def test_underdetermined_warns(self, rng):
        x = rng.standard_normal(6)
        y = signal.correlate(x, rng.standard_normal(4), mode="valid")
        with pytest.warns(kr.UnderdeterminedWarning, match="3 equations for 4 unknowns"):
            res = self.fit(x, y, 4)
        assert res.report.status == "underdetermined"
        a = toeplitz_design(x, 4)
        # every answer interpolates; the least-squares ones are also the shortest
        np.testing.assert_allclose(a @ res.kernel.ravel(), y, atol=1e2 * self.atol)
        if self.min_norm:
            self.assert_kernel(res.kernel.ravel(), np.linalg.pinv(a) @ y)

    # -- input kinds ---------------------------------------------------------------------------------

    def test_ragged_batch(self, rng):
        xs, ys = zip(*(noisy_sequence(rng, n) for n in (40, 57, 71)))
        kernel, bias = reference_lstsq(xs, ys, NOISY_K, use_bias=True, **NOISY_DESIGN)
        res = self.fit_noisy(list(xs), list(ys), NOISY_K, **NOISY_SETTINGS)
        self.assert_kernel(res.kernel, kernel, scale=np.abs(kernel).max())
        self.assert_kernel(res.bias, bias, scale=np.abs(kernel).max())
        assert res.report.equations.tolist() == [sum(map(len, ys))] * 2

    @pytest.mark.parametrize("kind", ["memmap", "dask", "iterator"])
    def test_streamed_input(self, kind, rng, tmp_path):
        x, y = noisy_sequence(rng, 150)
        if kind == "memmap":
            np.save(tmp_path / "x.npy", x)
            np.save(tmp_path / "y.npy", y)
            args = np.load(tmp_path / "x.npy", mmap_mode="r"), np.load(tmp_path / "y.npy", mmap_mode="r")
        elif kind == "dask":
            da = pytest.importorskip("dask.array")
            args = da.from_array(x, chunks=(40, 2)), da.from_array(y, chunks=(25, 2))
        else:
            pieces = list(zip(np.array_split(x, 4), np.array_split(y, 4)))  # boundaries of x and y differ
            args = iter(pieces), None
        if not self.streams:
            with pytest.raises(ValueError, match="`method`=.*needs the whole record in memory"):
                self.fit(*args, NOISY_K, **NOISY_SETTINGS)
            return
        kernel, bias = reference_lstsq([x], [y], NOISY_K, use_bias=True, **NOISY_DESIGN)
        res = self.fit_noisy(*args, NOISY_K, **NOISY_SETTINGS)
        self.assert_kernel(res.kernel, kernel, scale=np.abs(kernel).max())
        self.assert_kernel(res.bias, bias, scale=np.abs(kernel).max())
        assert type(res) is kr.KernelResult and set(res.to_dict()) == RESULT_KEYS
        assert res.report.equations.tolist() == [len(y)] * 2

    def test_normal_equations(self, rng):
        # NormalEquations always solves by least squares: it equals this method's in-memory answer
        x, y = noisy_sequence(rng, 150)
        acc = kr.NormalEquations(NOISY_K, **NOISY_SETTINGS)
        for xc, yc in zip(np.array_split(x, 5), np.array_split(y, 3) + [y[:0]] * 2):
            acc.update(xc, yc)
        streamed = acc.solve()
        kernel, bias = reference_lstsq([x], [y], NOISY_K, use_bias=True, **NOISY_DESIGN)
        np.testing.assert_allclose(streamed.kernel, kernel, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(streamed.bias, bias, rtol=1e-10, atol=1e-12)
        res = self.fit_noisy(x, y, NOISY_K, **NOISY_SETTINGS)
        self.assert_kernel(res.kernel, streamed.kernel, scale=np.abs(kernel).max())
        assert set(streamed.to_dict()) == set(res.to_dict())


# ----------------------------------------------------------------------------------------------
# One class per method
# ----------------------------------------------------------------------------------------------


class TestLstsq(BaseMethod):
    method = name = "lstsq"
    rtol, atol = 1e-10, 1e-12
    streams = True


class TestFFT(BaseMethod):
    method = name = "fft"
    # the default Wiener term shrinks a noisy kernel; wiener=False is plain least squares
    noisy_options = {"wiener": False}
    rtol, atol = 1e-9, 1e-11
    # documented (solvers/spectral.py): when the deficiency differs between frequencies, *a* least-squares kernel
    min_norm = False

    def test_wiener_default_shrinks_towards_zero(self, rng):
        x, y = noisy_sequence(rng, 120, noise=0.5)
        kernel, _ = reference_lstsq([x], [y], NOISY_K, use_bias=True, **NOISY_DESIGN)
        res = self.fit(x, y, NOISY_K, **NOISY_SETTINGS)
        assert res.options["wiener"] is True
        assert np.linalg.norm(res.kernel) < np.linalg.norm(kernel)
        np.testing.assert_allclose(res.kernel, kernel, rtol=0, atol=0.1 * np.abs(kernel).max())


class TestAdam(BaseMethod):
    method = name = "adam"
    options = {"max_iter": 1000, "seed": 0}
    rtol, atol = 1e-3, 1e-3
    min_norm = False


class TestCustomCallable(BaseMethod):
    method = staticmethod(lstsq_on_im2col)
    name = "lstsq_on_im2col"
    rtol, atol = 1e-10, 1e-12
    bad_option = None

    def test_options_reach_the_callable(self, rng):
        x = rng.standard_normal(30)
        res = self.fit(x, signal.correlate(x, [1.0, 2.0], mode="valid"), 2, rcond=1e-3)
        assert res.options == {"rcond": 1e-3}

    def test_a_callable_taking_any_options_gets_them(self, rng):
        seen = {}

        def solve(problem, **options):
            seen.update(options)
            return lstsq_on_im2col(problem)

        x = rng.standard_normal(30)
        res = kr.recover_kernel(x, signal.correlate(x, [1.0, 2.0], mode="valid"), 2, method=solve, anything=3)
        assert seen == {"anything": 3} and res.method == "solve"
        self.assert_kernel(res.kernel.ravel(), [1.0, 2.0])
