"""The one result type every method returns, and what solvers hand back to build it."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import ArrayLike

from .arrays import jsonable
from .config import ConvConfig
from .conv import conv1d
from .validation import check_real

if TYPE_CHECKING:  # the report is computed above this layer; results only hold one
    from matplotlib.figure import Figure

    from ..diagnostics.determinacy import DeterminacyReport
    from ..diagnostics.frequency import FrequencyResponse


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
        fs: float | None = None,
        remove_delay: bool | float = False,
    ) -> Figure:
        """A figure of the kernel (95 % bands where ``stderr`` is known), residuals, loss and spectrum.

        ``kind="result"`` (the default): see :func:`kernel_recovery.plotting.plot_result` (with ``fs`` the kernel
        is drawn over its lag in seconds).  ``kind="bode"``: the frequency response, magnitude in dB and phase,
        with 95 % bands (and the true kernel's response), over frequency in Hz with ``fs``, the bulk delay removed
        from the phase with ``remove_delay``, see :func:`kernel_recovery.plotting.plot_bode`; ``x`` and ``y`` are
        not used there.  Needs matplotlib.
        """
        if kind == "bode":
            if x is not None or y is not None:
                raise ValueError("`x` and `y` are not used by kind='bode'; leave them out.")
            from ..plotting import plot_bode

            return plot_bode(self, true_kernel=true_kernel, fs=fs, remove_delay=remove_delay)
        if kind != "result":
            raise ValueError(f"`kind` must be 'result' or 'bode', got {kind!r}.")
        if remove_delay is not False:
            raise ValueError(f"`remove_delay` (={remove_delay!r}) applies to kind='bode' (the phase).")
        from ..plotting import plot_result

        return plot_result(self, x, y, true_kernel=true_kernel, fs=fs)

    def frequency_response(
        self, n: int | None = None, *, freqs: ArrayLike | None = None, fs: float = 1.0, level: float = 0.95
    ) -> FrequencyResponse:
        """The kernel's frequency response with pointwise ``level`` bands; see
        :func:`kernel_recovery.diagnostics.frequency.frequency_response`."""
        from ..diagnostics.frequency import frequency_response

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

    level = check_real(level, "level", low=0, high=1, low_open=True, high_open=True)
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
