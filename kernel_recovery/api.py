"""``recover_kernel``: validate once, reduce to the canonical problem, dispatch to a registered solver."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from numpy.typing import ArrayLike

from . import solvers
from .diagnostics import lagsearch
from .diagnostics.analysis import report_for
from .diagnostics.determinacy import DeterminacyReport
from .model.config import Layout, Padding
from .model.problem import build_problem
from .model.result import KernelResult
from .solvers import pipeline
from .streaming import outofcore

if TYPE_CHECKING:
    from .model.result import Solution


def recover_kernel(
    x: ArrayLike,
    y: ArrayLike,
    kernel_size: int | None = None,
    *,
    method: str | Callable[..., Solution] = "lstsq",
    stride: int = 1,
    padding: Padding = "valid",
    dilation: int = 1,
    groups: int = 1,
    use_bias: bool = False,
    layout: Layout = "nwc",
    flip: bool = False,
    nan_policy: Literal["raise", "omit"] = "raise",
    lags: tuple[int, int] | Literal["auto"] | None = None,
    prewhiten: Literal["input", "noise"] | None = None,
    **options: Any,
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
    kernel_size : int, optional
        Number of taps (required unless ``lags`` is given).
    method : {"lstsq", "fft", "adam"} or callable
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
    lags : (int, int) or "auto", optional
        ``(first, last)``: recover the response at the physical lags ``first..last`` (``first`` may be
        negative: non-causal taps) of a measurement where ``y`` is on ``x``'s time axis (same length) and the
        system is at rest before ``x`` starts, ``y[t] = sum_l h[l] x[t - l]`` (+ bias).  It replaces
        ``kernel_size`` and ``padding`` (stride and dilation stay 1); with ``flip=True`` ``kernel[i]`` is the
        response at lag ``first + i``, otherwise the order is reversed (``result.lags`` pairs them).
        ``"auto"`` chooses the delay and the length from the data by BIC (see :func:`select_lags`, which also
        takes ``max_length``, ``max_delay`` and ``criterion``); the choice is in ``diagnostics["lags"]``.
    prewhiten : {None, "input", "noise"}
        Filter ``x`` and ``y`` by one AR(10) prediction-error filter before solving (the kernel is unchanged: a
        common filter commutes with the convolution; the first 10 equations are dropped).  ``"input"`` whitens
        the input (MATLAB impulseest's prewhitening: a better-conditioned design for a coloured input);
        ``"noise"`` whitens the residual of a first least-squares fit (two-step generalized least squares:
        efficient estimates and valid standard errors under coloured noise).  ``residual_rms`` and the checks
        then refer to the filtered equations; ``diagnostics["prewhiten"]`` holds the filters.
    **options
        Options of the method (``method="lstsq"``: ``ridge``, ``regularization``, ``loss``, ``huber_delta``,
        ``max_iter``; ``method="fft"``: ``noise_level``, ``wiener``, ``segment_length``, ``tol``, ``max_iter``,
        ``workers``; ``method="adam"``: ``loss``, ``learning_rate``, ``max_iter``, ``tol``, ``seed``, ``init``,
        ``optimizer``, ``batch_size``, ``restarts``, ``dtype``, ``huber_delta``, ``precondition``,
        ``progress``); one name means one thing in every method (``max_iter`` the iteration cap,
        ``huber_delta`` in units of a robust noise scale), see the options table of the user guide.  An
        option the method does not take is a ``TypeError``; a renamed one names its new spelling.

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
    (minimum norm when it is rank-deficient).  ``"fft"`` deconvolves in the frequency domain and then
    solves the same normal equations exactly, edges included.  ``"adam"`` runs gradient descent (JAX + optax,
    the whole loop compiled) on a chosen loss ("mse", "mae" or "huber"); it fills ``loss_history`` and
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
    if outofcore.is_out_of_core(x, y):
        if prewhiten is not None:
            raise ValueError(f"`prewhiten`={prewhiten!r} needs the data in memory (it filters the records).")
        return outofcore.recover_kernel(
            x, y, kernel_size, method=method, stride=stride, padding=padding, dilation=dilation, groups=groups,
            use_bias=use_bias, layout=layout, flip=flip, nan_policy=nan_policy, lags=lags, _stacklevel=3, **options,
        )  # fmt: skip
    if y is None:
        raise TypeError("`y` is required by recover_kernel; use kr.analyze(x, None, ...) to analyze x alone.")
    name, solver = solvers.resolve(method)
    solvers.check_options(name, solver, options)
    choice = None
    if isinstance(lags, str):
        if lags != "auto":
            raise ValueError(f"`lags` must be a (first, last) pair of integers or 'auto', got {lags!r}.")
        if kernel_size is not None or padding != "valid":
            raise ValueError("`lags='auto'` chooses the alignment: pass neither `kernel_size` nor `padding`.")
        choice = lagsearch.choose_lags_for(x, y, layout=layout, use_bias=use_bias)
        lags = choice.lags
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
        lags=lags,
    )
    whitened = None
    if prewhiten is not None:
        problem, whitened = pipeline.prewhiten(problem, prewhiten)
    result = pipeline.run(problem, method, options, stacklevel=2)
    if whitened is not None:
        result.diagnostics["prewhiten"] = whitened
    if choice is not None:
        result.diagnostics["lags"] = choice.to_dict()
    return result


def analyze(
    x: ArrayLike,
    y: ArrayLike | None,
    kernel_size: int | None = None,
    *,
    stride: int = 1,
    padding: Padding = "valid",
    dilation: int = 1,
    groups: int = 1,
    use_bias: bool = False,
    layout: Layout = "nwc",
    flip: bool = False,
    out_channels: int | None = None,
    noise_level: float | ArrayLike | None = None,
    warn: bool = True,
    nan_policy: Literal["raise", "omit"] = "raise",
    lags: tuple[int, int] | None = None,
) -> DeterminacyReport:
    """Say whether ``x`` (and ``y``) determine a Conv1D kernel, before or without solving.

    Parameters
    ----------
    x, y : array_like
        As in :func:`recover_kernel`.  ``y`` may be None: only ``x`` and the configuration decide the
        counts and the rank; ``y`` then only fixes the number of output channels.
    kernel_size, stride, padding, dilation, groups, use_bias, layout, flip
        The configuration, as in :func:`conv1d`.
    out_channels : int, optional
        Number of output channels when ``y`` is None (default: ``groups``).
    noise_level : float or array_like of shape (out_channels,), optional
        Standard deviation of white noise in ``y``; the report then gives ``expected_error``.
    warn : bool
        Issue :class:`UnderdeterminedWarning` / :class:`IllConditionedWarning` when they apply.
    nan_policy : {"raise", "omit"}
        As in :func:`recover_kernel`: with ``"omit"`` the equations that are NaN in ``y`` or read a NaN of
        ``x`` (or a masked sample) are dropped, and only the equations that remain are counted.
    lags : (int, int), optional
        The lag range of a measurement, as in :func:`recover_kernel` (replaces ``kernel_size``/``padding``).

    Returns
    -------
    DeterminacyReport
        Counts, rank, condition number, expected error per unit noise, the orders of excitation, the invisible
        kernel directions (``null_space``) and their causes in plain words with what extra data would fix them.

    See Also
    --------
    plan : the same report from shapes alone, before recording any data.

    Notes
    -----
    Each output channel is a separate linear system ``A w = y_o`` whose design ``A`` has one row per
    output sample and ``kernel_size * in_channels // groups (+1 for the bias)`` columns.  The rank and
    singular values come from an SVD of ``A`` when it is small, otherwise from the eigenvalues of
    ``A^T A`` (then singular values below ``4 sqrt(P * eps)`` times the largest are treated as zero), so a long
    record costs one pass to build ``A^T A`` and an eigendecomposition of a ``P x P`` matrix.

    The expected error for white noise of standard deviation ``sigma`` is ``sigma * sqrt(trace((A^T A)^-1))``
    (root-sum-square over the channel's coefficients).  The order of excitation of a channel is the rank of
    the design's columns that belong to its taps (capped at ``kernel_size``): a signal made of ``m``
    distinct sinusoids excites ``2 m`` directions, a constant one, broadband noise all of them.

    Examples
    --------
    >>> import kernel_recovery as kr
    >>> rep = kr.analyze([0.0, 3.0, 4.0, 5.0], [[6.0, 12.0], [11.0, 25.0], [14.0, 32.0]], 2)
    >>> rep.status, rep.equations.tolist(), rep.unknowns.tolist()
    ('overdetermined', [3, 3], [2, 2])
    >>> import numpy as np
    >>> rep = kr.analyze(np.sin(0.3 * np.arange(100)), None, 4, warn=False)
    >>> rep.rank.tolist(), rep.excitation_order.tolist(), rep.cause_codes
    ([2], [2], ('few_frequencies',))
    """
    # Out-of-core input (Dask, memmap, zarr/h5py arrays, iterators of chunks): one streamed pass.
    if outofcore.is_out_of_core(x, y):
        if nan_policy != "raise":
            raise ValueError(f"`nan_policy`={nan_policy!r} needs the data in memory; streamed input must be finite.")
        return outofcore.analyze(
            x, y, kernel_size, stride=stride, padding=padding, dilation=dilation, groups=groups, use_bias=use_bias,
            layout=layout, flip=flip, out_channels=out_channels, noise_level=noise_level, warn=warn, lags=lags,
            _stacklevel=3,
        )  # fmt: skip
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
        out_channels=out_channels,
        nan_policy=nan_policy,
        lags=lags,
    )
    report = report_for(problem, noise_level=noise_level)
    if warn:
        report.warn(stacklevel=2)
    return report
