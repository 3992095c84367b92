"""``recover_kernel``: validate once, reduce to the canonical problem, dispatch to a registered solver."""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from numpy.typing import ArrayLike

from . import grids, solvers
from .diagnostics import lagsearch
from .diagnostics.analysis import report_for
from .diagnostics.determinacy import DeterminacyReport
from .model.arrays import as_sequences
from .model.config import ConvSettings, ConvSpec, Layout, Padding, check_layout, check_setting_names
from .model.grid import GridSpec
from .model.problem import CanonicalProblem, problem_for_spec
from .model.result import KernelResult
from .model.validation import check_bool
from .solvers import pipeline
from .streaming import outofcore

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .diagnostics.lagsearch import LagSelection
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
    chunk_size: int | None = None,
    split_every: int | None = None,
    progress: bool | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    checkpoint_every: int = outofcore.DEFAULT_CHECKPOINT_EVERY,
    checks: Literal["budget", "all", "cheap", "none"] = "budget",
    **options: Any,
) -> KernelResult:
    """Recover the kernel (and bias) of a convolution from its inputs ``x`` and outputs ``y``.

    A 1-D convolution (Keras ``Conv1D``) by default; a 2-D or 3-D one (``Conv2D``/``Conv3D``, an image blur) when
    ``kernel_size`` has two or three entries, and complex signals of any dimension (see the grid path in Notes).

    Parameters
    ----------
    x : array_like or list of array_like
        Inputs: ``(batch, length, in_channels)`` for ``layout="nwc"`` (Keras), ``(batch, in_channels, length)``
        for ``"ncw"`` (PyTorch); a 2-D array is one sequence, a 1-D array one single-channel sequence, a list
        of arrays a batch of sequences of different lengths.
    y : array_like or list of array_like
        Outputs, in the same layout; their lengths must match the configuration (see :func:`conv1d`).
    kernel_size : int or tuple of int, optional
        Number of taps (required unless ``lags`` is given); ``(kh, kw)`` or ``(kd, kh, kw)`` for an N-D kernel, whose
        ``x`` and ``y`` are then ``(batch, *spatial, channels)`` (``layout="nhwc"``, the default channels-last) or
        ``(batch, channels, *spatial)`` (``"nchw"``), and whose ``stride``, ``dilation`` and ``padding`` may be given
        per axis, as in :func:`conv`.
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
        takes ``max_length``, ``max_delay`` and ``criterion``); the fit's own lag scan then re-checks the choice,
        and where it finds the response beyond the chosen lags the fit is made again, once, at the lags that
        cover it.  The choice (and any extension, ``"extended"``) is in ``diagnostics["lags"]``.
    prewhiten : {None, "input", "noise"}
        Filter ``x`` and ``y`` by one AR(10) prediction-error filter before solving (the kernel is unchanged: a
        common filter commutes with the convolution; the first 10 equations are dropped).  ``"input"`` whitens
        the input (MATLAB impulseest's prewhitening: a better-conditioned design for a coloured input);
        ``"noise"`` whitens the residual of a first least-squares fit (two-step generalized least squares:
        efficient estimates and valid standard errors under coloured noise).  ``residual_rms`` and the checks
        then refer to the filtered equations; ``diagnostics["prewhiten"]`` holds the filters.
    chunk_size : int, optional
        Streamed input (see Notes): input samples per chunk read from memory-mapped/zarr arrays, and per Dask
        chunk when a non-Dask array is paired with a Dask one (default ``2**20``; Dask arrays keep their own
        chunks).  Given with in-memory arrays, they are streamed too, ``chunk_size`` samples at a time (memory
        ``O(chunk_size + (kernel_size * in_channels)^2)``, ``method="lstsq"`` only).
    split_every : int, optional
        Accumulators merged per node of the tree reduction of Dask input (default 8).
    progress : bool, optional
        Show a progress bar: the streamed pass's (tqdm, or Dask's on the local scheduler; default: when stderr is
        a terminal), or for in-memory input the method's, given to a method whose signature names ``progress``
        (``"lstsq"``: the tuning of ``regularization``/``prior``, by default shown only from 300 coefficients per
        group on; ``"adam"``: the descent); a method without one (``"fft"``) draws none.
    checkpoint : path, optional
        For arrays read chunk by chunk and for streams: every ``checkpoint_every`` chunks the accumulator and the
        position are written to this ``.npz`` (no pickles, atomically).  A run that finds the file resumes from
        it (the same configuration, else a ValueError): array chunks already accumulated are not read again; a
        stream must be restarted from its beginning, and its first chunks are skipped.  The file is kept.
    checkpoint_every : int
        Chunks between checkpoints.
    checks : {"budget", "all", "cheap", "none"}
        The post-fit checks (misfit, change, kernel size, whiteness ...): ``"budget"`` runs every check on bounded
        samples of rows (a small share of a large fit); ``"all"`` on larger samples whatever the cost (more power
        for weak effects in long records); ``"cheap"`` leaves out the refit, the lag scan and the change test;
        ``"none"`` runs none.  ``diagnostics["checks"]`` records the level and what each check did.
    ridge : float, optional
        ``method="lstsq"``: add ``ridge * ||kernel||^2`` to the squared residual (the bias is not penalized;
        default 0).  Passed through ``**options``.
    regularization : {None, "gcv", "ml", "tc", "dc", "ss", "di"}, optional
        ``method="lstsq"``: tune the regularization from the data, per output channel (the tuned values are in
        ``options``): ``"gcv"`` a ridge by generalized cross-validation; ``"ml"`` (white), ``"di"`` (diagonal),
        ``"tc"`` (tuned/correlated), ``"dc"`` (diagonal/correlated) and ``"ss"`` (stable spline) the Gaussian
        kernel priors of regularized FIR identification (MATLAB impulseest's), their hyperparameters by
        marginal likelihood.  The priors decay along the lag: the choice for short, noisy records of a decaying
        response.  Not with ``ridge``.  With ``use_bias=True`` and one equation per output channel the bias takes
        it and nothing is left to tune on: the kernel is then the prior mean (zero), the bias fits the equation, the
        tuned values are NaN, there are no standard errors, and ``success`` is False with a message saying so.
        Passed through ``**options``.
    **options
        Options of the method (``method="lstsq"``: ``ridge``, ``regularization`` (both above), ``prior``,
        ``share_hyperparameters``, ``loss``, ``huber_delta``, ``max_iter``; ``method="fft"``: ``noise_level``,
        ``wiener``, ``segment_length``, ``tol``, ``max_iter``, ``workers``; ``method="adam"``: ``loss``,
        ``learning_rate``, ``max_iter``, ``tol``, ``seed``, ``init``, ``optimizer``, ``batch_size``, ``restarts``,
        ``dtype``, ``huber_delta``, ``precondition``, ``progress``); one name means one thing in every method
        (``max_iter`` the iteration cap, ``huber_delta`` in units of a robust noise scale), see the options table
        of the user guide.  An option the method does not take is a ``TypeError`` that names the nearest
        known one.

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
        it, or the input explains the residual at lags beyond the kernel; see :func:`select_kernel_size`), and
        with ``lags="auto"`` when the chosen lags reach ``max_length`` or ``max_delay``.
    NonCausalWarning
        When the kernel is significant at negative physical lags (``lags`` with ``first < 0``, or a ``padding``
        such as ``"same"`` that puts taps there): feedback from the output to the input, or a misaligned input.
    SpectralWarning
        ``method="fft"``: when the per-frequency systems are singular at some frequencies (an input with no
        energy there); those frequencies are left out.  A subclass of :class:`IllConditionedWarning`.
    ChangeWarning
        When one kernel does not explain the whole record: the system changed during it (the change test's
        times are in ``diagnostics["change"]``; see :func:`track_kernel`).
    ModelMisfitWarning
        When ``y`` is not a linear convolution of ``x``: clipped, saturated or rectified outputs, a nonlinearity
        (RESET), a missing bias with ``use_bias=False``, or a coloured residual (the standard errors assume white
        noise: ``prewhiten="noise"``); p-values in ``diagnostics["specification"]``.  ``success`` stays True (the
        solver solved; the model does not fit): see :mod:`kernel_recovery.diagnostics.checks`.

    Notes
    -----
    Every output channel ``o`` is the linear system ``y[:, o] = A w_o (+ b_o)``, where ``A`` is the
    Toeplitz (im2col) design of ``x``.  ``"lstsq"`` solves it exactly in the least-squares sense
    (minimum norm when it is rank-deficient).  ``"fft"`` deconvolves in the frequency domain and then
    solves the same normal equations exactly, edges included.  ``"adam"`` runs gradient descent (JAX + optax,
    the whole loop compiled) on a chosen loss ("mse", "mae" or "huber"); it fills ``loss_history`` and
    ``n_iterations``.

    The grid path: N-D kernels and complex ``x`` or ``y`` (a radio channel from a training sequence) are reduced to
    one explicit design per group, summed into the normal equations by FFT lagged correlations with exact edges or
    by blocked im2col (a cost model picks; ``diagnostics["statistics_path"]``); the result and report are the same
    types, the kernel ``(*kernel_size, in_channels // groups, out_channels)``.  Complex data keep the bilinear
    convolution and solve ``A^H A w = A^H y``; ``stderr`` is the standard deviation of a tap's complex error under
    circular noise.  ``"lstsq"`` takes ``ridge``, ``constraints`` (``"nonnegative"``, ``"sum_to_one"`` or both: a
    PSF, real data) and ``smoothness`` (``"auto"`` or a weight: a Laplacian prior); ``"fft"`` takes
    ``noise_level``, ``wiener``, ``tol``, ``max_iter``, ``operator``, ``workers``; ``"adam"`` real data only.
    ``lags``, ``nan_policy="omit"``, ``prewhiten``, the 1-D priors and streaming are for real 1-D sequences.

    Streamed input (Dask, memory-mapped, zarr/h5py arrays, an iterator of ``(x_chunk, y_chunk)`` pairs of one
    sequence with ``y=None``, or arrays given a ``chunk_size``) is reduced in one pass to the sufficient
    statistics ``A^T A``, ``A^T Y``, ``Y^T Y`` (:func:`~kernel_recovery.streaming.outofcore.read_problem`) and
    solved by ``"lstsq"`` exactly as in memory; ``residual_rms`` then comes from the statistics.  Other methods,
    robust losses, ``nan_policy="omit"``, ``lags="auto"``, ``prewhiten`` and the kernel-size check need the
    record in memory (a ``ValueError`` says so).

    Examples
    --------
    >>> import kernel_recovery as kr
    >>> res = kr.recover_kernel([0.0, 3.0, 4.0, 5.0], [6.0, 11.0, 14.0], kernel_size=2)
    >>> res.kernel.ravel().round(12)
    array([1., 2.])
    >>> res.report.status
    'overdetermined'

    A record arriving in chunks:

    >>> import numpy as np
    >>> x = np.random.default_rng(0).standard_normal(1000)
    >>> y = kr.conv1d(x, [0.5, -1.0, 2.0])
    >>> pairs = ((x[i : i + 300], y[i : i + 300]) for i in range(0, 1000, 300))
    >>> kr.recover_kernel(pairs, None, 3).kernel.ravel().round(12)
    array([ 0.5, -1. ,  2. ])
    """
    if grids.is_grid(x, y, kernel_size):  # N-D kernels, complex signals
        sequence_only = dict(
            lags=lags, nan_policy=nan_policy, prewhiten=prewhiten, chunk_size=chunk_size, split_every=split_every,
            checkpoint=checkpoint, progress=progress,
        )  # fmt: skip
        settings = dict(
            stride=stride, padding=padding, dilation=dilation, groups=groups, use_bias=use_bias, layout=layout,
            flip=flip,
        )  # fmt: skip
        return _recover_grid(x, y, kernel_size, settings, sequence_only, method, options, checks)
    streamed = outofcore.is_out_of_core(x, y) or chunk_size is not None
    if y is None and outofcore.input_kind(x) != "stream":
        raise TypeError("`y` is required by recover_kernel; use kr.analyze(x, None, ...) to analyze x alone.")
    if progress is not None:  # judged here, whether or not a bar will be drawn
        progress = check_bool(progress, "progress")
    if streamed:
        outofcore.check_streamable(prewhiten=prewhiten, method=method, nan_policy=nan_policy, lags=lags)
    elif split_every is not None or checkpoint is not None:  # (the everyday call passes neither)
        _refuse_streaming(split_every=split_every, checkpoint=checkpoint)
    name, solver = solvers.resolve(method)
    if not streamed and progress is not None and _takes_progress(solver):  # the method's own bar
        options["progress"] = progress
    solvers.check_options(name, solver, options, door=recover_kernel)
    if streamed:
        outofcore.check_streamed_options(options)
    choice = None
    if isinstance(lags, str):  # "auto" (refused above for streamed input)
        x, y, choice = _choose_lags(x, y, lags, kernel_size, padding, layout, use_bias)
        lags = choice.lags
    spec = ConvSpec.create(
        kernel_size, stride=stride, padding=padding, dilation=dilation, groups=groups, use_bias=use_bias,
        layout=layout, flip=flip, lags=lags,
    )  # fmt: skip
    streaming = dict(
        chunk_size=chunk_size, split_every=split_every, progress=progress, checkpoint=checkpoint,
        checkpoint_every=checkpoint_every,
    )  # fmt: skip
    fit = functools.partial(
        _fit, x, y, streamed=streamed, nan_policy=nan_policy, streaming=streaming, prewhiten=prewhiten, method=method,
        options=options, checks=checks,
    )  # fmt: skip
    result = fit(spec, stacklevel=3) if choice is None else _fit_chosen_lags(fit, spec, choice)
    if streamed:
        result.diagnostics["input"] = outofcore.input_kind(x) or outofcore.input_kind(y)
    return result


def _recover_grid(
    x: Any,
    y: Any,
    kernel_size: object,
    settings: dict[str, Any],
    sequence_only: dict[str, Any],
    method: str | Callable[..., Any],
    options: dict[str, Any],
    checks: str,
) -> KernelResult:
    """``recover_kernel`` of an N-D kernel or complex signals: the grid path (:mod:`kernel_recovery.grids`)."""
    grids.refuse_sequence_options(x, y, **sequence_only)
    grid_spec = GridSpec.create(kernel_size, **settings)
    if y is None:
        raise TypeError("`y` is required by recover_kernel; use kr.analyze(x, None, ...) to analyze x alone.")
    return grids.recover(
        x, y, grid_spec, method=method, options=options, door=recover_kernel, checks=checks, stacklevel=3
    )


def _fit(
    x: Any,
    y: Any,
    spec: ConvSpec,
    *,
    streamed: bool,
    nan_policy: Literal["raise", "omit"],
    streaming: dict[str, Any],
    prewhiten: str | None,
    method: str | Callable[..., Solution],
    options: dict[str, Any],
    stacklevel: int,
    checks: str = "budget",
) -> KernelResult:
    """One fit of the caller's data with the settings ``spec`` (warnings at the caller's line: ``stacklevel``)."""
    problem = _canonical_problem(x, y, spec, streamed, nan_policy=nan_policy, streaming=streaming)
    problem, whitened = (problem, None) if prewhiten is None else pipeline.prewhiten(problem, prewhiten)
    result = pipeline.run(problem, method, dict(options), stacklevel=stacklevel, checks=checks)
    if whitened is not None:
        result.diagnostics["prewhiten"] = whitened
    return result


def _fit_chosen_lags(fit: Callable[..., KernelResult], spec: ConvSpec, choice: LagSelection) -> KernelResult:
    """``lags="auto"``: the fit at the chosen lags, re-checked by its own lag scan.  Where the scan finds the
    response beyond them, the fit is made again once at the lags that cover it (the first fit's warnings are then
    dropped), so the choice and the check agree; ``diagnostics["lags"]`` records the choice and any extension."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fit(spec, stacklevel=4)
    wider = result.diagnostics.get("suggested_lags")
    extended = None
    if wider is not None and tuple(wider) != spec.lags:
        extended = {"from": list(choice.lags), "to": list(wider), "why": "the lag scan of the fit at the chosen lags"}
        result = fit(spec.replace(lags=tuple(wider)), stacklevel=4)
    else:
        for w in caught:  # the one fit's warnings, told at the caller's line
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    result.diagnostics["lags"] = {**choice.to_dict(), "extended": extended}
    return result


def analyze(
    x: ArrayLike,
    y: ArrayLike | None,
    kernel_size: int | None = None,
    *,
    out_channels: int | None = None,
    noise_level: float | ArrayLike | None = None,
    warn: bool = True,
    nan_policy: Literal["raise", "omit"] = "raise",
    chunk_size: int | None = None,
    split_every: int | None = None,
    progress: bool | None = None,
    **settings: Unpack[ConvSettings],
) -> DeterminacyReport:
    """Say whether ``x`` (and ``y``) determine a convolution's kernel (Conv1D; Conv2D/Conv3D with a tuple
    ``kernel_size``; complex signals), before or without solving.

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
    chunk_size, split_every, progress
        For streamed input (Dask, memory-mapped, zarr arrays, iterators of chunks, or arrays given a
        ``chunk_size``), as in :func:`recover_kernel`: one streamed pass builds ``A^T A``; ``y`` may be None for
        arrays, and the ranks are then read from the Gram's eigenvalues (``exact_rank`` False for long records).

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
    if grids.is_grid(x, y, kernel_size):  # N-D kernels, complex signals
        grids.refuse_sequence_options(
            x, y,
            lags=settings.get("lags"), nan_policy=nan_policy, chunk_size=chunk_size, split_every=split_every,
            progress=progress,
        )  # fmt: skip
        check_setting_names(settings)
        grid_spec = GridSpec.create(kernel_size, **{k: v for k, v in settings.items() if k != "lags"})
        report = grids.report(x, y, grid_spec, out_channels=out_channels, noise_level=noise_level)
        if check_bool(warn, "warn"):
            report.warn(stacklevel=2)
        return report
    streamed = outofcore.is_out_of_core(x, y) or chunk_size is not None
    if streamed:
        outofcore.check_streamable(nan_policy=nan_policy, lags=settings.get("lags"))
    else:
        _refuse_streaming(split_every=split_every, progress=progress)
    spec = ConvSpec.create(kernel_size, **settings)
    warn = check_bool(warn, "warn")
    streaming = dict(chunk_size=chunk_size, split_every=split_every, progress=progress)
    problem = _canonical_problem(
        x, y, spec, streamed, out_channels=out_channels, nan_policy=nan_policy, streaming=streaming
    )
    report = report_for(problem, noise_level=noise_level)
    if warn:
        report.warn(stacklevel=2)
    return report


def _canonical_problem(
    x: Any,
    y: Any,
    spec: ConvSpec,
    streamed: bool,
    *,
    out_channels: int | None = None,
    nan_policy: Literal["raise", "omit"],
    streaming: dict[str, Any],
) -> CanonicalProblem:
    """The canonical problem of the caller's data: one streamed pass, or the in-memory reduction."""
    if streamed:
        return outofcore.read_problem(x, y, spec, out_channels=out_channels, **streaming)
    return problem_for_spec(x, y, spec, out_channels=out_channels, nan_policy=nan_policy)


def _takes_progress(solver: Callable[..., Solution]) -> bool:
    """Whether a method names a ``progress`` option (a ``**options`` catch-all does not count: it may pass its
    options on to code that knows no ``progress``)."""
    try:
        return "progress" in solvers.parameter_names(solver)
    except (TypeError, ValueError):  # a callable without a signature
        return False


def _refuse_streaming(**given: object) -> None:
    """Options of a streamed pass given with in-memory input (which ``chunk_size`` would stream) are errors."""
    for name, value in given.items():
        if value is not None:
            raise TypeError(
                f"`{name}` (={value!r}) applies to streamed input: Dask, memory-mapped or zarr arrays, iterators of "
                "(x_chunk, y_chunk) pairs, or in-memory arrays given a `chunk_size`."
            )


def _choose_lags(
    x: Any, y: Any, lags: str, kernel_size: object, padding: object, layout: object, use_bias: bool
) -> tuple[Any, Any, LagSelection]:
    """``lags="auto"``: read ``x`` and ``y`` once (as ``SequenceBatch``), choose the lags from them; the
    sequences serve the problem too."""
    if lags.lower() != "auto":  # case-insensitive, as every string option
        raise ValueError(f"`lags` must be a (first, last) pair of integers or 'auto', got {lags!r}.")
    if kernel_size is not None or not (isinstance(padding, str) and padding.lower() == "valid"):
        raise ValueError("`lags='auto'` chooses the alignment: pass neither `kernel_size` nor `padding`.")
    name = check_layout(layout)
    xs, ys = as_sequences(x, "x", name), as_sequences(y, "y", name)
    return xs, ys, lagsearch.choose_lags_for(xs, ys, layout=name, use_bias=use_bias)
