"""``recover_kernel``: validate once, reduce to the canonical problem, dispatch to a registered solver."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from . import misconfiguration, solvers
from .determinacy import KernelSizeWarning, report_for
from .problem import Layout, Padding, build_problem
from .result import KernelResult
from .selection import kernel_size_message


def recover_kernel(
    x: ArrayLike,
    y: ArrayLike,
    kernel_size: int,
    *,
    method: str | Callable = "lstsq",
    stride: int = 1,
    padding: Padding = "valid",
    dilation: int = 1,
    groups: int = 1,
    use_bias: bool = False,
    layout: Layout = "nwc",
    flip: bool = False,
    nan_policy: Literal["raise", "omit"] = "raise",
    **options,
) -> KernelResult:
    """Recover the kernel (and bias) of a 1-D convolution from its inputs ``x`` and outputs ``y``.

    Parameters
    ----------
    x : array_like or list of array_like
        Inputs: ``(batch, length, in_channels)`` for ``layout="nwc"`` (Keras), ``(batch, in_channels, length)``
        for ``"ncw"`` (PyTorch); a 2-D array is one sequence, a 1-D array one single-channel sequence, a list
        of arrays a batch of sequences of different lengths.
    y : array_like or list of array_like
        Outputs, in the same layout; their lengths must match the configuration (see :func:`conv1d`).
    kernel_size : int
        Number of taps.
    method : {"lstsq"} or callable
        The strategy (see Notes).  A callable ``solve(problem, **options) -> Solution`` is used as a custom
        method.
    stride, padding, dilation, groups, layout, flip
        The configuration of the convolution, exactly as in :func:`conv1d`.
    use_bias : bool
        Also recover a bias per output channel.
    nan_policy : {"raise", "omit"}
        NaN in ``x`` or ``y`` is an error (the message says how many and where), or with ``"omit"`` the
        equations (output samples) that are NaN in ``y`` or read a NaN of ``x`` are dropped; the report then
        counts only the equations that remain.
    **options
        Options of the method (``method="lstsq"``: ``ridge``; ``method="adam"``: ``loss``, ``learning_rate``,
        ``steps``, ``tol``, ``seed``, ``init``, ``optimizer``, ``batch_size``, ``restarts``, ``dtype``,
        ``huber_delta``, ``precondition``, ``progress``).  An option the method does not take is a
        ``TypeError``.

    Returns
    -------
    KernelResult
        ``kernel`` of shape ``(kernel_size, in_channels // groups, out_channels)``, ``bias``, ``report``,
        ``residual_rms``, ``success``, ``message`` and more; the same fields for every method.

    Raises
    ------
    ValueError, TypeError
        Bad shapes, lengths inconsistent with the configuration, invalid settings, NaN/Inf, bad dtypes,
        unknown methods or options.

    Warns
    -----
    UnderdeterminedWarning
        When some output channel has fewer equations than unknowns or a rank-deficient design; the
        minimum-norm kernel is returned.
    IllConditionedWarning
        When the design's condition number exceeds 1e8.
    KernelSizeWarning
        When the residual says the kernel is longer than ``kernel_size`` (a fit with a few more taps explains
        it; see :func:`select_kernel_size`).

    Notes
    -----
    Every output channel ``o`` is the linear system ``y[:, o] = A w_o (+ b_o)``, where ``A`` is the
    Toeplitz (im2col) design of ``x``.  ``"lstsq"`` solves it exactly in the least-squares sense
    (minimum norm when it is rank-deficient).  ``"adam"`` runs gradient descent (JAX + optax, the whole
    loop compiled) on a chosen loss ("mse", "mae" or "huber"); it fills ``loss_history`` and
    ``n_iterations``.

    Examples
    --------
    >>> import kernel_recovery as kr
    >>> res = kr.recover_kernel([0.0, 3.0, 4.0, 5.0], [6.0, 11.0, 14.0], kernel_size=2)
    >>> res.kernel.ravel().round(12)
    array([1., 2.])
    >>> res.report.status
    'overdetermined'
    """
    # Out-of-core input (Dask, memmap, zarr/h5py arrays, iterators of chunks): streamed least squares.
    from . import outofcore

    if outofcore.is_out_of_core(x, y):
        config = dict(stride=stride, padding=padding, dilation=dilation, groups=groups, use_bias=use_bias)
        return outofcore.recover_kernel(
            x, y, kernel_size, method=method, layout=layout, flip=flip, nan_policy=nan_policy, _stacklevel=3,
            **config, **options,
        )  # fmt: skip
    if y is None:
        raise TypeError("`y` is required by recover_kernel; use kr.analyze(x, None, ...) to analyze x alone.")
    name, solver = solvers.resolve(method)
    solvers.check_options(name, solver, options)
    problem = build_problem(
        x,
        y,
        kernel_size,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        use_bias=use_bias,
        layout=layout,
        flip=flip,
        nan_policy=nan_policy,
    )
    report = report_for(problem)
    report.warn(stacklevel=2)
    sol = solver(problem, **options)
    kernel = problem.from_canonical(sol.kernels).astype(np.float64, copy=False)
    bias = problem.from_canonical_bias(sol.biases) if problem.config.use_bias else None
    residuals = problem.residuals(sol.kernels, sol.biases)
    total = sum(float(np.sum(r**2)) for r in residuals)
    count = sum(r.size for r in residuals)
    residual_rms = float(np.sqrt(total / count))
    # Kernel-size check (issue 9): does a fit with a few more taps explain the residual? Cheap: a row subsample.
    if report.ok:
        too_short = kernel_size_message(problem)
        if too_short:
            warnings.warn(too_short, KernelSizeWarning, stacklevel=2)
    success, message = sol.success, sol.message
    if not np.all(np.isfinite(kernel)) or (bias is not None and not np.all(np.isfinite(bias))):
        success, message = False, f"the solver returned non-finite values ({sol.message})"
    # Misconfiguration check: only when the residual is large; lstsq fits of other settings on a row sample.
    diagnostics = dict(sol.diagnostics)
    y_sq = sum(float(np.sum(yb**2)) for block in problem.blocks for yb in block.ys)
    relative = residual_rms / np.sqrt(y_sq / count) if y_sq > 0 else 0.0
    misfit = misconfiguration.diagnose(x, y, problem, relative) if relative > misconfiguration.MISFIT_GATE else None
    diagnostics["misconfiguration"] = misfit
    if misfit is not None:
        message = f"{message}; {misfit['message']}"
    return KernelResult(
        kernel=kernel,
        bias=bias,
        method=name,
        report=report,
        residual_rms=residual_rms,
        success=bool(success),
        message=message,
        config=problem.config,
        stderr=None if sol.kernel_stderr is None else problem.from_canonical(sol.kernel_stderr),
        bias_stderr=None if sol.bias_stderr is None else problem.from_canonical_bias(sol.bias_stderr),
        n_iterations=sol.n_iterations,
        loss_history=sol.loss_history,
        options=dict(sol.options),
        diagnostics=diagnostics,
    )
