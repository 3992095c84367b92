"""The one result type every method returns, and what solvers hand back to build it."""

from __future__ import annotations

import dataclasses
import json
import re
import textwrap
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import ArrayLike

from .arrays import as_sequences, jsonable
from .config import ConvConfig
from .conv import conv1d
from .grid import GridConfig, conv, read_grid
from .validation import check_choice, check_int, check_real

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


#: :attr:`KernelResult.delay`: a tap is part of the response where ``|h| > DELAY_Z * stderr`` (two-sided tail 5.7e-7 per
#: tap, the lag search's band: about 0.002 false onsets over 4000 pre-onset taps of a white-noise estimate) ...
DELAY_Z = 5.0
#: ... or, without standard errors, where ``|h| >= DELAY_FRACTION * max |h|`` (20 dB below the peak: the onset rule
#: of room impulse responses, ISO 3382-1 Annex A).
DELAY_FRACTION = 0.1


@dataclass(frozen=True, eq=False)
class StepResponse:
    """The step response of a recovered kernel, per (input channel in the group, output channel).

    Attributes
    ----------
    times : ndarray of int, shape (n,)
        Samples after the step (applied at time 0), from ``min(0, first lag)``; divide by the sampling rate for
        seconds.
    response : ndarray, shape (n, in_channels // groups, out_channels)
        ``s(t) = sum_{lag_i <= t} kernel[i]``: the output of the filter (bias left out) for a unit step input,
        the running sum of the impulse response in physical lag order.
    stderr : ndarray shaped like ``response``, or None
        Its standard error, ``sqrt(diag(S C S^T))`` for the coefficient covariance ``C`` of each output channel
        (None without a covariance: see ``note``).
    level : float
        Coverage of the pointwise bands :attr:`lower`, :attr:`upper`.
    quantile : float
        Their half-width in standard errors: Student's t with ``diagnostics["dof"]`` degrees of freedom where the
        result has them, else the normal quantile (as :meth:`KernelResult.frequency_response`).
    band_source : {"covariance", "none"}
        Where the band comes from.
    note : str
        Why there is no band, when there is none ("" otherwise).

    Notes
    -----
    ``s = S k`` is linear in the kernel ``k`` of one (input, output) pair, with ``S[t, i] = 1`` where
    ``lag_i <= t``, so its covariance is ``S C S^T`` exactly, and the band is Gaussian where the kernel is (least
    squares under Gaussian noise).  The running sum adds correlated taps: the standard errors alone would give a
    wrong band, so a result without :attr:`KernelResult.covariance` gets none.
    """

    times: np.ndarray
    response: np.ndarray
    stderr: np.ndarray | None
    level: float
    quantile: float
    band_source: str
    note: str = ""

    @property
    def lower(self) -> np.ndarray | None:
        """Lower end of the pointwise ``level`` band (None without a band)."""
        return None if self.stderr is None else self.response - self.quantile * self.stderr

    @property
    def upper(self) -> np.ndarray | None:
        """Upper end of the pointwise ``level`` band (None without a band)."""
        return None if self.stderr is None else self.response + self.quantile * self.stderr

    @property
    def final_value(self) -> np.ndarray:
        """``response[-1]``, ``(in_channels // groups, out_channels)``: the static gain once every tap is summed."""
        return self.response[-1]

    def __repr__(self) -> str:
        t = self.times
        gain = _format_numbers(self.final_value.ravel()[:4], 4) + (" ..." if self.final_value.size > 4 else "")
        band = f"{self.band_source} ({self.level:g})" if self.stderr is not None else "none"
        return (
            f"StepResponse(n={len(t)}, times={int(t[0])}..{int(t[-1])}, pairs={self.response.shape[1:]}, "
            f"final_value=[{gain}], band={band})"
        )


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
    error); ``print(result)`` adds the message, kernel and bias (long kernels abridged, negative zeros printed
    as ``0.``); :meth:`summary` is the one-screen table; the full arrays are the fields above.
    :meth:`to_dict` and :meth:`to_json` give everything as strict JSON (NaN and ``inf`` as ``null``).
    On fresh data, :meth:`fit_percent` (MATLAB's ``compare``) and :meth:`score` (R^2) say how well the kernel
    predicts; :meth:`step_response`, :meth:`frequency_response` and :attr:`delay` describe the system.
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
        """``conv1d(x, kernel, bias)`` with the configuration the kernel was recovered under (``conv`` for N-D
        kernels and complex signals)."""
        c = self.config
        if isinstance(c, GridConfig):
            return conv(
                x, self.kernel, self.bias, stride=c.stride, padding=c.padding, dilation=c.dilation, groups=c.groups,
                layout=c.layout, flip=c.flip,
            )  # fmt: skip
        return conv1d(
            x, self.kernel, self.bias, stride=c.stride, padding="valid" if c.lags else c.padding,
            dilation=c.dilation, groups=c.groups, layout=c.layout, flip=c.flip, lags=c.lags,
        )  # fmt: skip

    @property
    def lags(self) -> np.ndarray:
        """The physical lag of each kernel index (``config.tap_lags()``): ``kernel[i]`` responds at ``lags[i]``."""
        return self.config.tap_lags()

    @property
    def delay(self) -> int | None:
        """The dead time: the earliest lag at which any output responds, in samples (None if no tap does).

        The smallest of :meth:`onsets` over the (input, output) pairs (an output with a later onset responds
        later still; ask :meth:`onsets` for each pair).  Measured on the physical lags (:attr:`lags`), so lag fits
        and ``flip`` give the delay of the filter ``y = h * x``, never a kernel index; for a lag fit it is at least
        the fit's first lag (``lags="auto"`` records its chosen window in ``diagnostics["lags"]``, whose first
        lag may sit a few taps before the onset).
        """
        if getattr(self.config, "ndim", 1) > 1:  # an image's or a volume's kernel has no time axis
            return None
        onsets = self.onsets()
        return None if np.all(np.isnan(onsets)) else int(np.nanmin(onsets))

    def onsets(self, *, z: float = DELAY_Z, fraction: float = DELAY_FRACTION) -> np.ndarray:
        """The first lag of each (input, output) pair at which the response is distinguishable from 0.

        Parameters
        ----------
        z : float
            With standard errors: the first lag where ``|h| > z * stderr`` (default 5, the lag search's band:
            two-sided tail 5.7e-7 per tap).
        fraction : float
            Without standard errors (or where a pair's are not all finite, e.g. taps the data do not determine):
            the first lag where ``|h| >= fraction * max |h|`` of the pair (default 0.1: 20 dB below the peak, the
            onset rule of room impulse responses in ISO 3382-1).

        Returns
        -------
        ndarray of float, shape (in_channels // groups, out_channels)
            Lags in samples (physical lags, see :attr:`lags`); NaN for a pair with no such tap (a zero kernel,
            or no tap above ``z`` standard errors).

        Examples
        --------
        >>> import numpy as np, kernel_recovery as kr
        >>> rng = np.random.default_rng(0)
        >>> x = rng.standard_normal(2000)
        >>> h = np.r_[np.zeros(5), 1.0, 0.6, 0.3]  # 5 samples of dead time
        >>> y = kr.conv1d(x, h, flip=True) + 0.01 * rng.standard_normal(1993)
        >>> res = kr.recover_kernel(x, y, 8, flip=True)
        >>> res.onsets(), res.delay
        (array([[5.]]), 5)
        """
        z = check_real(z, "z", low=0, low_open=True)
        fraction = check_real(fraction, "fraction", low=0, high=1, low_open=True)
        order = np.argsort(self.lags, kind="stable")
        lags = self.lags[order]
        mag = np.abs(np.asarray(self.kernel, dtype=np.float64)[order])  # (K, Cin_g, O)
        with np.errstate(invalid="ignore"):
            hit = mag >= fraction * np.max(mag, axis=0, initial=0.0)
            hit &= mag > 0
            if self.stderr is not None:
                se = np.asarray(self.stderr, dtype=np.float64)[order]
                known = np.all(np.isfinite(se), axis=0)  # pairs with a standard error for every tap
                hit = np.where(known, mag > z * np.where(np.isfinite(se), se, 0.0), hit)
        first = np.argmax(hit, axis=0)
        return np.where(hit.any(axis=0), lags[first].astype(np.float64), np.nan)

    def step_response(self, n: int | None = None, *, level: float = 0.95) -> StepResponse:
        """The response to a unit step at time 0 (the running sum of the impulse response), with ``level`` bands.

        Parameters
        ----------
        n : int, optional
            Samples, from ``min(0, first lag)`` (default: through the last lag, where the response settles at
            the sum of the taps; a larger ``n`` continues at that value).
        level : float
            Coverage of the pointwise bands, in (0, 1).

        Returns
        -------
        StepResponse
            ``times`` ``(n,)`` and ``response`` ``(n, in_channels // groups, out_channels)``, with ``stderr``,
            ``lower`` and ``upper`` from the covariance (``S C S^T``; None, with the reason in ``note``, where the
            result has no covariance).  The bias is left out.

        Examples
        --------
        >>> import numpy as np, kernel_recovery as kr
        >>> rng = np.random.default_rng(0)
        >>> x = rng.standard_normal(1000)
        >>> y = kr.conv1d(x, [0.5, 0.3, 0.2], flip=True) + 0.01 * rng.standard_normal(998)
        >>> step = kr.recover_kernel(x, y, 3, flip=True).step_response()
        >>> step.times, step.response.ravel().round(2), step.band_source
        (array([0, 1, 2]), array([0.5, 0.8, 1. ]), 'covariance')
        >>> bool(np.all((step.lower < step.response) & (step.response < step.upper)))
        True
        """
        from scipy.stats import norm
        from scipy.stats import t as student_t

        level = check_real(level, "level", low=0, high=1, low_open=True, high_open=True)
        lags = self.lags
        start = min(0, int(lags.min()))
        n = int(lags.max()) - start + 1 if n is None else check_int(n, "n")
        times = np.arange(start, start + n)
        steps = (lags[None, :] <= times[:, None]).astype(np.float64)  # S: (n, K), over the kernel's own order
        kernel = np.asarray(self.kernel, dtype=np.float64)
        response = np.einsum("tk,kco->tco", steps, kernel)
        stderr, source, note = None, "covariance", ""
        if self.covariance is None:
            source = "none"
            note = (
                f"no band: this result (method={self.method!r}) has no coefficient covariance, and the running sum "
                "adds correlated taps, so the standard errors alone would not give it"
            )
        else:
            k_size, cin, cout = kernel.shape
            var = np.empty(response.shape)
            for o, cov in enumerate(self.covariance):
                c4 = np.asarray(cov, dtype=np.float64)[: k_size * cin, : k_size * cin].reshape(k_size, cin, k_size, cin)
                for c in range(cin):
                    var[:, c, o] = np.einsum("tk,kl,tl->t", steps, c4[:, c, :, c], steps)
            stderr = np.sqrt(np.clip(var, 0.0, None))
        dof = self.diagnostics.get("dof")
        q = float(student_t.ppf(0.5 + level / 2, dof)) if dof else float(norm.ppf(0.5 + level / 2))
        return StepResponse(times, response, stderr, level, q, source, note)

    def fit_percent(self, x: ArrayLike, y: ArrayLike) -> np.ndarray:
        """How well the kernel predicts fresh data: MATLAB ``compare``'s fit, in percent, per output channel.

        ``100 (1 - ||y - y_hat|| / ||y - mean(y)||)`` with ``y_hat = predict(x)``, the norms and the mean taken per
        output channel over every sample (of every sequence).  100 is a perfect prediction, 0 no better than the
        mean of ``y``; it is negative when worse.  ``fit = 100 (1 - sqrt(1 - R^2))`` with :meth:`score`'s ``R^2``.

        Parameters
        ----------
        x, y : array_like or list of array_like
            Fresh inputs and outputs in the form :func:`~kernel_recovery.recover_kernel` took (``y`` shaped like
            ``predict(x)``).

        Returns
        -------
        ndarray, shape (out_channels,)
            Where ``y`` is constant in a channel: 100 if the prediction is exact there, else ``-inf``.

        Examples
        --------
        >>> import numpy as np, kernel_recovery as kr
        >>> rng = np.random.default_rng(0)
        >>> x = rng.standard_normal(500)
        >>> res = kr.recover_kernel(x, kr.conv1d(x, [1.0, -0.5]) + 0.1 * rng.standard_normal(499), 2)
        >>> x_new = rng.standard_normal(300)
        >>> res.fit_percent(x_new, kr.conv1d(x_new, [1.0, -0.5])).round(1)  # noise-free fresh data
        array([99.7])
        """
        rss, tss = self._fresh_sums(x, y)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(tss > 0, np.sqrt(rss / np.where(tss > 0, tss, 1.0)), np.where(rss > 0, np.inf, 0.0))
        return 100.0 * (1.0 - ratio)

    def score(self, x: ArrayLike, y: ArrayLike) -> np.ndarray:
        """The coefficient of determination ``R^2`` of the prediction on fresh data, per output channel.

        ``1 - sum (y - y_hat)^2 / sum (y - mean(y))^2`` with ``y_hat = predict(x)``, per output channel over every
        sample (scikit-learn's ``r2_score(..., multioutput="raw_values")``; :class:`~kernel_recovery.KernelEstimator`
        ``.score`` averages it over the outputs).  Arguments as :meth:`fit_percent`.

        Returns
        -------
        ndarray, shape (out_channels,)
            Where ``y`` is constant in a channel: 1 if the prediction is exact there, else ``-inf``.
        """
        rss, tss = self._fresh_sums(x, y)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(tss > 0, rss / np.where(tss > 0, tss, 1.0), np.where(rss > 0, np.inf, 0.0))
        return 1.0 - ratio

    def _fresh_sums(self, x: ArrayLike, y: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """Per output channel: ``sum (y - predict(x))^2`` and ``sum (y - mean y)^2`` over all samples."""
        layout = self.config.layout
        if isinstance(self.config, GridConfig):
            ndim, last = self.config.ndim, self.config.channels_last
            predicted = tuple(
                a.reshape(-1, a.shape[-1]) for a in read_grid(self.predict(x), "predict(x)", ndim, last).arrays
            )
            observed = tuple(a.reshape(-1, a.shape[-1]) for a in read_grid(y, "y", ndim, last).arrays)
        else:
            predicted = as_sequences(self.predict(x), "predict(x)", layout).arrays
            observed = as_sequences(y, "y", layout).arrays
        if len(observed) != len(predicted) or any(a.shape != b.shape for a, b in zip(observed, predicted)):
            want = ", ".join(str(p.shape) for p in predicted[:3]) + (", ..." if len(predicted) > 3 else "")
            got = ", ".join(str(a.shape) for a in observed[:3]) + (", ..." if len(observed) > 3 else "")
            raise ValueError(
                f"`y` must match predict(x): {len(predicted)} sequence(s) of (length, channels) [{want}], "
                f"got {len(observed)} of [{got}]."
            )
        obs, pred = np.concatenate(observed), np.concatenate(predicted)
        rss = np.sum(np.abs(obs - pred) ** 2, axis=0)
        tss = np.sum(np.abs(obs - obs.mean(axis=0)) ** 2, axis=0)
        return rss, tss

    def summary(self) -> str:
        """A one-screen table: method, configuration, counts and rank, residual, noise, delay, checks, message.

        Per-output numbers are shown as one value, or as ``min..max`` over the output channels.

        Examples
        --------
        >>> import numpy as np, kernel_recovery as kr
        >>> rng = np.random.default_rng(0)
        >>> x = rng.standard_normal(500)
        >>> res = kr.recover_kernel(x, kr.conv1d(x, [1.0, -0.5, 0.25]) + 0.1 * rng.standard_normal(498), 3)
        >>> print(res.summary())  # doctest: +NORMALIZE_WHITESPACE
        KernelResult summary
          method        lstsq (solver: svd)
          success       True: solved
          kernel        (3, 1, 1): kernel_size=3
          equations     498 per output, 3 unknowns, rank 3 (overdetermined), condition number 1.03
          residual rms  0.09388
          noise std     0.09416 (495 degrees of freedom)
          stderr        max 0.004162
          delay         0 samples (first lag with |h| > 5 stderr)
          checks        passed: misconfiguration, kernel_size, lag_scan, saturation, missing_bias, nonlinearity,
                    whiteness, change; not needed: negative_lags
        """
        r, d = self.report, self.diagnostics
        method = self.method
        solver = d.get("solver")
        if solver is not None:
            names = [solver] if isinstance(solver, str) else list(dict.fromkeys(str(s) for s in solver))
            method += f" (solver: {', '.join(names)})"
        extras = [f"{k}={self.options[k]!r}" for k in ("regularization", "prior") if self.options.get(k) is not None]
        ridge = self.options.get("ridge")
        if isinstance(ridge, (int, float)) and ridge:
            extras.append(f"ridge={ridge:g}")
        if self.n_iterations is not None:
            extras.append(f"{self.n_iterations} iterations")
        rows = [("method", method + (f"; {', '.join(extras)}" if extras else ""))]
        rows.append(("success", f"{self.success}: {self.message}"))
        rows.append(("kernel", f"{self.kernel.shape}: {self.config.describe()}"))
        cond = np.asarray(r.condition_number, dtype=float)
        rows.append(
            (
                "equations",
                f"{_span(r.equations)} per output, {_span(r.unknowns)} unknowns, rank {_span(r.rank)} ({r.status}), "
                f"condition number {float(np.max(cond)) if cond.size else float('nan'):.3g}",
            )
        )
        rows.append(("residual rms", f"{self.residual_rms:.4g}"))
        noise = np.asarray(d.get("noise_std", np.nan), dtype=float)
        if noise.size and np.all(np.isfinite(noise)):
            dof = d.get("dof")  # inf for a posterior (regularized) fit: nothing to say
            finite = isinstance(dof, (int, float)) and 0 < dof < np.inf
            rows.append(("noise std", _span(noise) + (f" ({dof} degrees of freedom)" if finite else "")))
        if self.stderr is not None and np.any(np.isfinite(self.stderr)):
            rows.append(("stderr", f"max {float(np.nanmax(self.stderr)):.4g}"))
        else:
            rows.append(("stderr", "not available from this method"))
        delay = self.delay
        rule = (
            f"first lag with |h| > {DELAY_Z:g} stderr"
            if self.stderr is not None and np.all(np.isfinite(self.stderr))
            else f"first lag with |h| >= {DELAY_FRACTION:g} max |h|"
        )
        if getattr(self.config, "ndim", 1) == 1:
            rows.append(("delay", "none: no tap stands out" if delay is None else f"{delay} samples ({rule})"))
        rows.extend(_check_rows(d.get("checks")))
        lines = ["KernelResult summary"]
        for name, text in rows:  # long rows (the checks) wrap under their text, so every line fits 120 columns
            lines += textwrap.wrap(text, 120, initial_indent=f"  {name:<13} ", subsequent_indent=" " * 16) or [name]
        return "\n".join(lines)

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
        kind = check_choice(kind, "kind", ("result", "bode"))  # case-insensitive, as every string option
        if kind == "bode":
            if x is not None or y is not None:
                raise ValueError("`x` and `y` are not used by kind='bode'; leave them out.")
            from ..plotting import plot_bode

            return plot_bode(self, true_kernel=true_kernel, fs=fs, remove_delay=remove_delay)
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
        lines = [
            f"KernelResult(method={self.method!r}, success={self.success}, status={self.report.status!r})",
            f"  message: {self.message}",
            f"  kernel {self.kernel.shape}: {_format_array(self.kernel.squeeze())}",
        ]
        if self.bias is not None:
            lines.append(f"  bias: {_format_array(self.bias)}")
        lines.append(f"  residual_rms: {self.residual_rms:.3g}")
        return "\n".join(lines)


#: Entries above which a printed array is abridged to its first and last few.
PRINT_THRESHOLD = 64
_NEGATIVE_ZERO = re.compile(r"-(0\.?0*)(?![\d.])")


def _format_array(a: np.ndarray, precision: int = 6) -> str:
    """``np.array2string`` for people: small entries as 0, long arrays abridged, and no ``-0.``.

    A value that prints as zero is zero at the precision shown, whatever its sign, so a ``-0.`` (a rounding
    residue such as ``-3e-17``) is printed ``0.``; the arrays themselves are not changed.
    """
    text = np.array2string(
        np.asarray(a), precision=precision, suppress_small=True, threshold=PRINT_THRESHOLD, edgeitems=3
    )
    return _NEGATIVE_ZERO.sub(lambda m: " " + m.group(1), text)


def _format_numbers(values: np.ndarray, digits: int) -> str:
    """Numbers as ``.{digits}g`` separated by spaces, negative zeros as ``0`` (``-0.0 + 0.0`` is ``0.0``)."""
    return " ".join(f"{float(v) + 0.0:.{digits}g}" for v in values)


def _span(values: ArrayLike) -> str:
    """One value, or ``min..max`` over the output channels."""
    a = np.asarray(values).ravel()
    if not a.size:
        return "-"
    lo, hi = a.min(), a.max()
    if np.issubdtype(a.dtype, np.integer):
        return f"{lo}" if lo == hi else f"{lo}..{hi}"
    return f"{lo:.4g}" if lo == hi else f"{lo:.4g}..{hi:.4g}"


def _check_rows(checks: object) -> list[tuple[str, str]]:
    """The ``checks`` row of :meth:`KernelResult.summary` (and a ``flagged`` row) from ``diagnostics["checks"]``."""
    if not isinstance(checks, dict):
        return [("checks", "none ran")]
    groups: dict[str, list[str]] = {"passed": [], "flagged": [], "skipped": [], "not needed": []}
    for name, line in checks.items():
        if name in ("residual", "level"):  # where the residual came from, how much the checks cost: not checks
            continue
        text = str(line)
        if text.startswith("flagged"):
            reason = text[len("flagged") :].lstrip(", ")
            groups["flagged"].append(f"{name} ({reason})" if reason else name)
        elif text.startswith("skipped"):
            groups["skipped"].append(name)
        elif text.startswith("not needed"):
            groups["not needed"].append(name)
        else:
            groups["passed"].append(name)
    parts = [f"{what}: {', '.join(names)}" for what, names in groups.items() if names and what != "flagged"]
    rows = [("checks", "; ".join(parts) if parts else "none ran")]
    if groups["flagged"]:
        rows.append(("flagged", "; ".join(groups["flagged"])))
    return rows


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
