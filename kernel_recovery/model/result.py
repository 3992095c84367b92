"""The one result type every method returns, and what solvers hand back to build it."""

from __future__ import annotations

import dataclasses
import json
import numbers
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import ArrayLike

from .arrays import jsonable
from .config import ConvConfig
from .conv import conv1d

if TYPE_CHECKING:  # the report is computed above this layer; results only hold one
    from matplotlib.figure import Figure

    from ..diagnostics.determinacy import DeterminacyReport


@dataclass
class Solution:
    """What a solver returns, in the canonical space: one entry per block (group).

    ``kernels[b]`` is ``(taps, channels, O_b)``, ``biases[b]`` ``(O_b,)`` (None without bias).
    ``options`` records the options actually used, automatic choices included; ``diagnostics`` holds
    method-specific numbers (they are copied to :attr:`KernelResult.diagnostics`).

    Notes
    -----
    A method is a function ``solve(problem, *, option=default, ...) -> Solution``; pass it as
    ``recover_kernel(..., method=solve)``.  It receives a :class:`~kernel_recovery.model.problem.CanonicalProblem`
    in which padding, stride, dilation and groups are already reduced to one valid, stride-1, undilated
    cross-correlation per block (group): ``block.xs[i]`` ``(len_i, channels)`` and ``block.ys[i]``
    ``(len_i - taps + 1, O_b)``.  :func:`kernel_recovery.model.design.design_matrix` gives a block's explicit
    design (its columns: the free taps, row-major ``(tap, channel)``, then the bias), and
    :func:`kernel_recovery.model.design.unpack_columns` maps coefficients over those columns back to a block
    kernel and bias.  The solver's keyword-only parameters are its options: an option it does not take
    is a ``TypeError``.  :func:`recover_kernel` maps the solution back to the user's layout and computes the
    report, residuals and post-fit checks, as for the built-in methods.

    Examples
    --------
    Ridge regression on each block's explicit design, as a user-written method:

    >>> import numpy as np, kernel_recovery as kr
    >>> from kernel_recovery.model.design import design_matrix, unpack_columns
    >>> def ridge_solver(problem, *, alpha=0.0):
    ...     use_bias = problem.config.use_bias
    ...     kernels, biases = [], []
    ...     for block in problem.blocks:
    ...         a = design_matrix(block, use_bias)  # (n_equations, P)
    ...         y = np.concatenate(block.ys)  # (n_equations, O_b), rows in the same order
    ...         coef = np.linalg.solve(a.T @ a + alpha * np.eye(a.shape[1]), a.T @ y)
    ...         kernel, bias = unpack_columns(block, coef, use_bias)
    ...         kernels.append(kernel)
    ...         biases.append(bias)
    ...     return kr.Solution(kernels, biases if use_bias else None, options={"alpha": alpha})
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal((200, 2))
    >>> w = rng.standard_normal((3, 2, 1))
    >>> y = kr.conv1d(x, w, [0.5], stride=2) + 0.01 * rng.standard_normal((99, 1))
    >>> res = kr.recover_kernel(x, y, 3, stride=2, use_bias=True, method=ridge_solver)
    >>> res.method, res.options, res.kernel.shape
    ('ridge_solver', {'alpha': 0.0}, (3, 2, 1))
    >>> ref = kr.recover_kernel(x, y, 3, stride=2, use_bias=True)  # with alpha=0: plain least squares
    >>> bool(np.allclose(res.kernel, ref.kernel) and np.allclose(res.bias, ref.bias))
    True
    >>> kr.recover_kernel(x, y, 3, stride=2, use_bias=True, method=ridge_solver, alpha=10.0).options
    {'alpha': 10.0}
    """

    kernels: list[np.ndarray]
    biases: list[np.ndarray] | None = None
    success: bool = True
    message: str = "converged"
    kernel_stderr: list[np.ndarray] | None = None
    bias_stderr: list[np.ndarray] | None = None
    n_iterations: int | None = None
    loss_history: np.ndarray | None = None
    options: dict[str, Any] = field(default_factory=dict)
    diagnostics: dict[str, Any] = field(default_factory=dict)
    #: Optional, per block: the residual sum of squares ``(O_b,)`` the solver already has (saves a pass).
    rss: list[np.ndarray | None] | None = None
    #: Optional, per block: the coefficient covariance ``(O_b, P, P)`` over the design's columns (free taps, then the
    #: bias): the posterior one of a regularized fit, ``sigma^2 (A^T A)^{-1}`` of plain least squares.
    covariance: list[np.ndarray] | None = None


@dataclass(frozen=True, eq=False)
class KernelResult:
    """The recovered kernel, with the same fields whatever the method.

    Attributes
    ----------
    kernel : ndarray, shape (kernel_size, in_channels // groups, out_channels)
        The recovered kernel, float64, in the Keras layout.
    bias : ndarray, shape (out_channels,), or None
        The recovered bias (None unless ``use_bias=True``).
    method : str
        The method that produced it.
    report : DeterminacyReport
        What the data determine (see :func:`analyze`).
    residual_rms : float
        Root mean square of ``y - conv1d(x, kernel, bias)`` over all outputs.
    success : bool
        Whether the solver reached its answer (False e.g. when gradient descent hit its step limit).
    message : str
        How the solver ended, in words.
    stderr, bias_stderr : ndarray or None
        Standard errors, shaped like ``kernel`` and ``bias``, where the method provides them.
    n_iterations : int or None
        Iterations taken, for iterative methods.
    loss_history : ndarray or None
        Loss per step, for gradient descent.
    options : dict
        The options used, automatic choices included.
    diagnostics : dict
        Method-specific numbers (how the system was solved, noise estimates, ...).
    config : ConvConfig
        The configuration (kernel_size, stride, padding, ...), for :meth:`predict` and exports.

    Notes
    -----
    ``repr(result)`` is one line (method, kernel shape, success, status, residual and largest standard
    error); ``print(result)`` adds the message, kernel and bias; the full arrays are the fields above.
    :meth:`to_dict` and :meth:`to_json` give everything as strict JSON (NaN and ``inf`` as ``null``).
    """

    kernel: np.ndarray
    bias: np.ndarray | None
    method: str
    report: DeterminacyReport
    residual_rms: float
    success: bool
    message: str
    config: ConvConfig
    stderr: np.ndarray | None = None
    bias_stderr: np.ndarray | None = None
    n_iterations: int | None = None
    loss_history: np.ndarray | None = None
    options: dict[str, Any] = field(default_factory=dict)
    diagnostics: dict[str, Any] = field(default_factory=dict)
    #: Per output channel ``o``, the covariance of ``(kernel[:, :, o].ravel(), bias[o])`` (the bias last, with
    #: ``use_bias``): the posterior (credible) covariance of regularized fits, ``sigma^2 (A^T A)^{-1}`` of plain least
    #: squares; None where the method or path does not provide it (see the uncertainty guide).
    covariance: list[np.ndarray] | None = None

    def predict(self, x: ArrayLike) -> np.ndarray | list[np.ndarray]:
        """``conv1d(x, kernel, bias)`` with the configuration the kernel was recovered under."""
        c = self.config
        return conv1d(
            x, self.kernel, self.bias, stride=c.stride, padding="valid" if c.lags else c.padding,
            dilation=c.dilation, groups=c.groups, layout=c.layout, flip=c.flip, lags=c.lags,
        )  # fmt: skip

    @property
    def lags(self) -> np.ndarray:
        """The physical lag of each kernel index (``config.tap_lags()``): ``kernel[i]`` responds at ``lags[i]``."""
        return self.config.tap_lags()

    def confidence_interval(self, level: float = 0.95, *, bias: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Student-t intervals ``estimate -+ t * stderr`` for the kernel (or bias); needs :attr:`stderr`.

        See :func:`kernel_recovery.model.result.confidence_interval`.
        """
        return confidence_interval(self, level, bias=bias)

    def plot(
        self,
        x: ArrayLike | None = None,
        y: ArrayLike | None = None,
        *,
        true_kernel: ArrayLike | None = None,
        kind: Literal["result", "bode"] = "result",
    ) -> Figure:
        """A figure of the kernel (95 % bands where ``stderr`` is known), residuals, loss and spectrum.

        ``kind="result"`` (the default): see :func:`kernel_recovery.plotting.plot_result`.  ``kind="bode"``:
        the frequency response, magnitude in dB and phase, with 95 % bands (and the true kernel's response),
        see :func:`kernel_recovery.plotting.plot_bode`; ``x`` and ``y`` are not used there.  Needs matplotlib.
        """
        if kind == "bode":
            if x is not None or y is not None:
                raise ValueError("`x` and `y` are not used by kind='bode'; leave them out.")
            from ..plotting import plot_bode

            return plot_bode(self, true_kernel=true_kernel)
        if kind != "result":
            raise ValueError(f"`kind` must be 'result' or 'bode', got {kind!r}.")
        from ..plotting import plot_result

        return plot_result(self, x, y, true_kernel=true_kernel)

    def frequency_response(
        self, n: int | None = None, *, freqs: ArrayLike | None = None, fs: float = 1.0, level: float = 0.95
    ) -> FrequencyResponse:
        """The kernel's frequency response with pointwise ``level`` bands; see
        :func:`kernel_recovery.model.result.frequency_response`."""
        return frequency_response(self, n, freqs=freqs, fs=fs, level=level)

    def to_torch(self, *, dtype: Any = None) -> dict[str, Any]:
        """A state dict for ``torch.nn.Conv1d.load_state_dict``; see :func:`kernel_recovery.export.to_torch`."""
        from ..export import to_torch

        return to_torch(self, dtype=dtype)

    def to_keras(self, *, dtype: str = "float32") -> list[np.ndarray]:
        """The list for ``keras.layers.Conv1D.set_weights``; see :func:`kernel_recovery.export.to_keras`."""
        from ..export import to_keras

        return to_keras(self, dtype=dtype)

    def to_scipy(self) -> np.ndarray:
        """The impulse response for ``scipy.signal.convolve``; see :func:`kernel_recovery.export.to_scipy`."""
        from ..export import to_scipy

        return to_scipy(self)

    def to_dict(self) -> dict[str, Any]:
        """The result in plain JSON types (what the command line's ``--json`` prints).

        Arrays become nested lists (``kernel`` in the Keras layout), ``config`` a dict of its settings and
        ``report`` :meth:`DeterminacyReport.to_dict`.  Non-finite numbers become None (JSON ``null``): NaN
        means not available (e.g. ``diagnostics["noise_std"]`` with no degrees of freedom left), ``inf``
        unbounded (e.g. the condition number of a rank-deficient design).  Options and diagnostics that are
        not numbers, strings, arrays or containers of them (a user's optax transform) appear as their ``repr``.

        Returns
        -------
        dict
            Keys ``method``, ``success``, ``message``, ``kernel``, ``bias``, ``stderr``, ``bias_stderr``,
            ``residual_rms``, ``n_iterations``, ``loss_history``, ``options``, ``diagnostics``, ``config``
            and ``report``.

        Examples
        --------
        >>> import numpy as np, kernel_recovery as kr
        >>> x = np.random.default_rng(0).standard_normal(50)
        >>> d = kr.recover_kernel(x, kr.conv1d(x, [1.0, -0.5]), 2).to_dict()
        >>> np.round(d["kernel"], 6).ravel().tolist(), d["config"]["kernel_size"], d["report"]["status"]
        ([1.0, -0.5], 2, 'overdetermined')
        """
        entries = {
            "method": self.method,
            "success": self.success,
            "message": self.message,
            "kernel": self.kernel,
            "bias": self.bias,
            "stderr": self.stderr,
            "bias_stderr": self.bias_stderr,
            "residual_rms": self.residual_rms,
            "n_iterations": self.n_iterations,
            "loss_history": self.loss_history,
            "options": self.options,
            "diagnostics": self.diagnostics,
            "config": dataclasses.asdict(self.config),
            "report": self.report.to_dict(),
        }
        return {name: jsonable(value) for name, value in entries.items()}

    def to_json(self, **kwargs: Any) -> str:
        """:meth:`to_dict` as strict JSON: ``null`` for NaN and ``inf``, never the ``NaN``/``Infinity`` tokens.

        ``kwargs`` go to :func:`json.dumps` (``indent=1``, ...).
        """
        return json.dumps(self.to_dict(), **{"allow_nan": False, **kwargs})

    def __repr__(self) -> str:
        parts = [
            f"method={self.method!r}",
            f"kernel_shape={self.kernel.shape}",
            f"success={self.success}",
            f"status={self.report.status!r}",
            f"residual_rms={self.residual_rms:.3g}",
        ]
        if self.stderr is not None:
            parts.append(f"max_stderr={float(np.max(self.stderr)):.3g}")
        return f"KernelResult({', '.join(parts)})"

    def __str__(self) -> str:
        k = np.array2string(self.kernel.squeeze(), precision=6, suppress_small=True)
        lines = [
            f"KernelResult(method={self.method!r}, success={self.success}, status={self.report.status!r})",
            f"  message: {self.message}",
            f"  kernel {self.kernel.shape}: {k}",
        ]
        if self.bias is not None:
            lines.append(f"  bias: {np.array2string(self.bias, precision=6, suppress_small=True)}")
        lines.append(f"  residual_rms: {self.residual_rms:.3g}")
        return "\n".join(lines)


def confidence_interval(
    result: KernelResult, level: float = 0.95, *, bias: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Two-sided confidence intervals for the kernel (or bias) of a least-squares :class:`KernelResult`.

    ``estimate -+ t_{dof, (1 + level) / 2} * stderr`` with ``dof = n - P`` (Student's t: exact under
    Gaussian noise for a full-rank design).

    Parameters
    ----------
    result : KernelResult
        From ``recover_kernel(..., method="lstsq")`` (or :class:`NormalEquations`), with standard errors.
    level : float
        Coverage, in (0, 1).
    bias : bool
        Intervals for the bias instead of the kernel.

    Returns
    -------
    lower, upper : ndarray
        Shaped like ``result.kernel`` (or ``result.bias``).

    Examples
    --------
    >>> import numpy as np, kernel_recovery as kr
    >>> from kernel_recovery.model.result import confidence_interval
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal(500)
    >>> y = kr.conv1d(x, [1.0, -0.5]) + 0.1 * rng.standard_normal(499)
    >>> lo, hi = confidence_interval(kr.recover_kernel(x, y, 2))
    >>> bool(np.all((lo.ravel() < [1.0, -0.5]) & ([1.0, -0.5] < hi.ravel())))
    True
    """
    from scipy.stats import t as student_t

    if not (isinstance(level, numbers.Real) and 0 < level < 1):
        raise ValueError(f"`level` must be a number in (0, 1), got {level!r}.")
    se = result.bias_stderr if bias else result.stderr
    est = result.bias if bias else result.kernel
    if se is None or est is None:
        what = "bias" if bias else "kernel"
        raise ValueError(
            f"this result has no standard errors for its {what} (method={result.method!r}); they come from plain "
            "least squares with a full-rank design and more equations than unknowns."
        )
    dof = result.diagnostics.get("dof")
    q = student_t.ppf(0.5 + level / 2, dof) if dof else np.inf
    return est - q * se, est + q * se


# ----------------------------------------------------------------------------------------------
# The frequency response, with pointwise bands propagated from the kernel's covariance
# ----------------------------------------------------------------------------------------------

#: Frequencies of :meth:`KernelResult.frequency_response` by default, from 0 to fs / 2 inclusive.
DEFAULT_FREQUENCIES = 512


@dataclass(frozen=True, eq=False)
class FrequencyResponse:
    """The frequency response of a recovered kernel, per (input channel in the group, output channel).

    Attributes
    ----------
    freqs : ndarray, shape (n_freqs,)
        Frequencies, in the units of ``fs`` (cycles per sample with ``fs=1``).
    response : ndarray of complex, shape (n_freqs, in_channels // groups, out_channels)
        ``H(f) = sum_i kernel[i] exp(-2j pi f lag_i / fs)`` over the physical lags ``config.tap_lags()``.
    covariance : ndarray, shape (n_freqs, in_channels // groups, out_channels, 2, 2), or None
        The covariance of ``(Re H, Im H)`` at each frequency, propagated from the kernel's covariance
        (None when the result has no standard errors).
    level : float
        Coverage of the pointwise bands.
    quantile : float
        Their half-width in standard errors: Student's t with ``diagnostics["dof"]`` degrees of freedom
        where the result has them (as :meth:`KernelResult.confidence_interval`), else the normal quantile.
    fs : float
        The sampling rate the frequencies are measured in.
    band_source : {"covariance", "stderr", "none"}
        What the bands come from: the full coefficient covariance, the standard errors alone (taps taken as
        uncorrelated, see Notes), or nothing.

    Notes
    -----
    ``H(f) = a(f)^T k`` is linear in the kernel, so ``(Re H, Im H)`` has the covariance
    ``[Re a, Im a]^T C [Re a, Im a]`` for a coefficient covariance ``C``: exact, and Gaussian when the
    kernel is (least squares under Gaussian noise).  The pointwise bands of the magnitude and the phase use
    the delta method (their gradients ``(Re H, Im H) / |H|`` and ``(-Im H, Re H) / |H|^2``): accurate where
    ``|H|`` is many standard errors from 0.  Where ``|H| <= quantile * sqrt(lambda_max)`` (``lambda_max`` the
    larger eigenvalue of :attr:`covariance`: the band reaches 0 anyway) the magnitude's band is
    ``[0, |H| + quantile * sqrt(lambda_max)]`` instead, and the phase is barely determined; there
    :meth:`contains` (the elliptical ``level`` region of the complex value, from the chi-square law with
    2 degrees of freedom) stays exact.  With standard errors only, correlations between taps are ignored:
    right for white inputs (``A^T A`` nearly diagonal), not for coloured ones.
    """

    freqs: np.ndarray
    response: np.ndarray
    covariance: np.ndarray | None
    level: float
    quantile: float
    fs: float
    band_source: str

    @property
    def magnitude(self) -> np.ndarray:
        """``|H(f)|``."""
        return np.abs(self.response)

    @property
    def db(self) -> np.ndarray:
        """``20 log10 |H(f)|`` (``-inf`` where the response is 0)."""
        return _db(self.magnitude)

    @property
    def phase(self) -> np.ndarray:
        """The phase in radians, unwrapped along the frequencies."""
        return np.unwrap(np.angle(self.response), axis=0)

    @property
    def magnitude_stderr(self) -> np.ndarray | None:
        """Standard error of ``|H|`` by the delta method; near 0 (see Notes) the larger axis of the covariance."""
        if self.covariance is None:
            return None
        mag = self.magnitude
        safe = np.where(mag > 0, mag, 1.0)
        g = np.stack([self.response.real, self.response.imag], axis=-1) / safe[..., None]
        var = np.einsum("...i,...ij,...j->...", g, self.covariance, g)
        widest = np.clip(np.linalg.eigvalsh(self.covariance)[..., -1], 0.0, None)
        # where the band reaches 0 along the covariance's major axis the gradient's direction means nothing
        var = np.where(mag > self.quantile * np.sqrt(widest), var, widest)
        return np.sqrt(np.clip(var, 0.0, None))

    @property
    def phase_stderr(self) -> np.ndarray | None:
        """Standard error of the phase in radians by the delta method (``inf`` where ``H = 0``)."""
        if self.covariance is None:
            return None
        mag2 = self.magnitude**2
        safe = np.where(mag2 > 0, mag2, 1.0)
        g = np.stack([-self.response.imag, self.response.real], axis=-1) / safe[..., None]
        var = np.einsum("...i,...ij,...j->...", g, self.covariance, g)
        return np.where(mag2 > 0, np.sqrt(np.clip(var, 0.0, None)), np.inf)

    @property
    def lower(self) -> np.ndarray | None:
        """Lower end of the pointwise ``level`` band of ``|H|`` (at least 0)."""
        se = self.magnitude_stderr
        return None if se is None else np.clip(self.magnitude - self.quantile * se, 0.0, None)

    @property
    def upper(self) -> np.ndarray | None:
        """Upper end of the pointwise ``level`` band of ``|H|``."""
        se = self.magnitude_stderr
        return None if se is None else self.magnitude + self.quantile * se

    def contains(self, values: ArrayLike) -> np.ndarray:
        """Whether complex ``values`` (shaped like :attr:`response`) lie in the elliptical ``level`` regions.

        The region of each frequency and channel pair is ``(z - H)^T S^-1 (z - H) <= chi2_2(level)``
        (``S`` its :attr:`covariance`): exact coverage for a Gaussian kernel estimate, near zeros too.
        """
        if self.covariance is None:
            raise ValueError("this response has no covariance (the result has no standard errors).")
        z = np.asarray(values)
        if z.shape != self.response.shape:
            raise ValueError(f"`values` must have the response's shape {self.response.shape}, got {z.shape}.")
        d = np.stack([(z - self.response).real, (z - self.response).imag], axis=-1)
        radius = -2.0 * np.log1p(-self.level)  # the chi-square quantile with 2 degrees of freedom
        inv = np.linalg.pinv(self.covariance, hermitian=True)
        return np.einsum("...i,...ij,...j->...", d, inv, d) <= radius

    def plot(self, *, fig: Any = None, true_response: ArrayLike | None = None) -> Figure:
        """A Bode plot (magnitude in dB and phase over frequency, with the bands); see
        :func:`kernel_recovery.plotting.plot_bode`; needs matplotlib."""
        from ..plotting import plot_bode

        return plot_bode(self, fig=fig, true_response=true_response)


def _db(magnitude: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return 20.0 * np.log10(magnitude)


def _kernel_covariances(result: KernelResult) -> tuple[list[np.ndarray] | None, str]:
    """Per output channel the covariance over the kernel's entries ``(K * Cin_g)^2``, row-major ``(tap, channel)``.

    From :attr:`KernelResult.covariance` (per output channel over ``(kernel[:, :, o].ravel(), bias[o])``: the
    bias, last, is left out), else from :attr:`KernelResult.stderr` as a diagonal.
    """
    n_k = result.kernel.shape[0] * result.kernel.shape[1]
    covariance = getattr(result, "covariance", None)
    if covariance is not None:
        return [np.asarray(c, dtype=np.float64)[:n_k, :n_k] for c in covariance], "covariance"
    if result.stderr is not None:
        se = np.asarray(result.stderr, dtype=np.float64)
        return [np.diag(se[:, :, o].ravel() ** 2) for o in range(se.shape[2])], "stderr"
    return None, "none"


def frequency_response(
    result: KernelResult,
    n: int | None = None,
    *,
    freqs: ArrayLike | None = None,
    fs: float = 1.0,
    level: float = 0.95,
) -> FrequencyResponse:
    """The frequency response of a recovered kernel with pointwise ``level`` bands.

    Parameters
    ----------
    result : KernelResult
        From :func:`kernel_recovery.recover_kernel`.
    n : int, optional
        Number of frequencies, evenly spaced from 0 to ``fs / 2`` inclusive (default 512).
    freqs : array_like, optional
        The frequencies instead, in the units of ``fs`` (give ``n`` or ``freqs``, not both).
    fs : float
        Sampling rate: 1 (the default) measures frequencies in cycles per sample.
    level : float
        Coverage of the pointwise bands, in (0, 1).

    Returns
    -------
    FrequencyResponse

    Notes
    -----
    ``H(f) = sum_i kernel[i] exp(-2j pi f lag_i / fs)`` with the physical lags ``result.config.tap_lags()``
    (``i * dilation`` for ``flip=True``; reversed for the cross-correlation order ``flip=False``), so it is
    the response of the filter ``y = h * x`` whatever the order the kernel is stored in; the bias is left
    out.  The band comes from ``result.covariance`` when the result has one, otherwise from ``result.stderr``
    as if the taps were uncorrelated (see :class:`FrequencyResponse`).

    Examples
    --------
    >>> import numpy as np, kernel_recovery as kr
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal(2000)
    >>> y = kr.conv1d(x, [0.5, 0.5]) + 0.01 * rng.standard_normal(1999)
    >>> fr = kr.recover_kernel(x, y, 2).frequency_response(freqs=[0.0, 0.25, 0.5])
    >>> fr.magnitude.ravel().round(2), fr.band_source
    (array([1.  , 0.71, 0.  ]), 'covariance')
    >>> bool(np.all((fr.lower <= fr.magnitude) & (fr.magnitude <= fr.upper)))
    True
    """
    from scipy.stats import norm
    from scipy.stats import t as student_t

    if not (isinstance(level, numbers.Real) and 0 < level < 1):
        raise ValueError(f"`level` must be a number in (0, 1), got {level!r}.")
    if isinstance(fs, (bool, np.bool_)) or not isinstance(fs, numbers.Real) or not (0 < fs < np.inf):
        raise ValueError(f"`fs` must be a positive number, got {fs!r}.")
    if freqs is not None:
        if n is not None:
            raise ValueError(f"give `n` (={n!r}) or `freqs`, not both.")
        f = np.asarray(freqs, dtype=np.float64)
        if f.ndim > 1 or not np.all(np.isfinite(f)):
            raise ValueError(f"`freqs` must be a 1-D array of finite numbers, got shape {f.shape}.")
        f = np.atleast_1d(f)
    else:
        if n is None:
            n = DEFAULT_FREQUENCIES
        if isinstance(n, (bool, np.bool_)) or not isinstance(n, numbers.Integral) or n < 1:
            raise ValueError(f"`n` must be a positive integer, got {n!r}.")
        f = np.linspace(0.0, fs / 2, int(n))
    lags = np.asarray(result.config.tap_lags(), dtype=np.float64)
    phasor = np.exp(-2j * np.pi * np.outer(f / fs, lags))  # (F, K)
    kernel = np.asarray(result.kernel, dtype=np.float64)
    response = np.einsum("fk,kco->fco", phasor, kernel)
    covs, source = _kernel_covariances(result)
    cov = None
    if covs is not None:
        k_size, cin, cout = kernel.shape
        cov = np.zeros(response.shape + (2, 2))
        parts = (phasor.real, phasor.imag)
        for o, c_o in enumerate(covs):
            c4 = c_o.reshape(k_size, cin, k_size, cin)
            for c in range(cin):
                block = c4[:, c, :, c]  # taps of one input channel: the response of (c, o) reads only those
                for i in range(2):
                    left = parts[i] @ block
                    for j in range(i, 2):
                        cov[:, c, o, i, j] = cov[:, c, o, j, i] = np.einsum("fk,fk->f", left, parts[j])
    dof = result.diagnostics.get("dof")
    q = float(student_t.ppf(0.5 + level / 2, dof)) if dof else float(norm.ppf(0.5 + level / 2))
    return FrequencyResponse(
        freqs=f, response=response, covariance=cov, level=float(level), quantile=q, fs=float(fs), band_source=source
    )
