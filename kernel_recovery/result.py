"""The one result type every method returns, and what solvers hand back to build it."""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .conv import conv1d
from .problem import ConvConfig

if TYPE_CHECKING:  # the report is computed above this layer; results only hold one
    from .determinacy import DeterminacyReport


@dataclass
class Solution:
    """What a solver returns, in the canonical space: one entry per block (group).

    ``kernels[b]`` is ``(taps, channels, O_b)``, ``biases[b]`` ``(O_b,)`` (None without bias).
    ``options`` records the options actually used, automatic choices included; ``diagnostics`` holds
    method-specific numbers (they are copied to :attr:`KernelResult.diagnostics`).
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

    def predict(self, x):
        """``conv1d(x, kernel, bias)`` with the configuration the kernel was recovered under."""
        c = self.config
        return conv1d(
            x, self.kernel, self.bias, stride=c.stride, padding=c.padding, dilation=c.dilation, groups=c.groups,
            layout=c.layout, flip=c.flip,
        )

    def confidence_interval(self, level: float = 0.95, *, bias: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Student-t intervals ``estimate -+ t * stderr`` for the kernel (or bias); needs :attr:`stderr`.

        See :func:`kernel_recovery.result.confidence_interval`.
        """
        return confidence_interval(self, level, bias=bias)

    def plot(self, x=None, y=None, *, true_kernel=None):
        """A figure of the kernel (95 % bands where ``stderr`` is known), residuals, loss and spectrum.

        See :func:`kernel_recovery.plotting.plot_result`; needs matplotlib.
        """
        from .plotting import plot_result

        return plot_result(self, x, y, true_kernel=true_kernel)

    def to_torch(self, *, dtype=None) -> dict:
        """A state dict for ``torch.nn.Conv1d.load_state_dict``; see :func:`kernel_recovery.export.to_torch`."""
        from .export import to_torch

        return to_torch(self, dtype=dtype)

    def to_keras(self, *, dtype: str = "float32") -> list[np.ndarray]:
        """The list for ``keras.layers.Conv1D.set_weights``; see :func:`kernel_recovery.export.to_keras`."""
        from .export import to_keras

        return to_keras(self, dtype=dtype)

    def to_scipy(self) -> np.ndarray:
        """The impulse response for ``scipy.signal.convolve``; see :func:`kernel_recovery.export.to_scipy`."""
        from .export import to_scipy

        return to_scipy(self)

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


def confidence_interval(result, level: float = 0.95, *, bias: bool = False) -> tuple[np.ndarray, np.ndarray]:
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
    >>> from kernel_recovery.result import confidence_interval
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
