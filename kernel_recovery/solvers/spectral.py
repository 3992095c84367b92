"""Frequency-domain deconvolution: ``method="fft"``.

The convolution theorem turns the canonical correlation ``y = A w`` into one small system per
frequency.  Dividing spectra is exact only for circular data, so this solver uses the spectra in two
roles, and solves the *same* least-squares problem as ``method="lstsq"``:

1. **Statistics in one pass, O(N log taps).**  Short real FFTs over overlap-save segments of each record
   (about four lag windows long, products summed in the frequency domain) give the correlation lags
   ``R(d) = sum_s x[s] x[s+d]^T``, ``|d| < taps``, and the cross-correlation ``r(j) = sum_t x[t+j] y[t]^T``
   over the lag window of step 2.  The normal matrix of the valid data is *exactly* ``A^T A = Toeplitz(R) -
   E^T E``: the Toeplitz part is the Gram of the "full" correlation, and ``E`` holds the ``2 (taps - 1)`` rows
   per sequence that valid data do not see (the unseen edge outputs).  Both parts are applied by FFTs of length
   about ``2 taps``, so after the pass over the data no step costs more than ``O(taps log taps)``, whatever
   the record length.
2. **Per-frequency least squares (Welch).**  The cross-spectral matrices ``S(f)`` (``C x C`` per
   frequency, ``C`` input channels) are accumulated over the batch and over every shift of a
   rectangular segment of ``taps`` samples (Welch with maximal overlap, computed exactly from the
   lags: the Bartlett-tapered correlogram), on ``segment_length`` frequencies.  ``S(f)^-1 S_xy(f)`` per
   frequency is the classic spectral estimate of the kernel; its in-support part starts step 3.
   Frequencies where ``S(f)`` is numerically singular (no independent input power) raise
   :class:`SpectralWarning` and are left out of the division (a pseudo-inverse) rather than amplified.
3. **Edge refinement.**  Preconditioned conjugate gradients on the exact normal equations, with the
   per-frequency inverse ``S(f)^-1`` as the preconditioner: each step predicts what the current
   kernel does at the unseen edges (``E^T E w``) and divides by the spectra again.  For long records
   ``S`` is close to ``A^T A`` and a few steps reach the least-squares answer to ``tol``.  One more
   pass over the data computes the residual ``y - A w``; a correction solved from ``A^T (y - A w)``
   (iterative refinement, repeated while it matters) keeps the rounding error at about
   ``cond(A) * eps`` instead of the ``cond(A)^2 * eps`` of normal equations.
4. **Wiener/Tikhonov regularization.**  With ``wiener=True`` (the default) the normal equations get
   ``lambda = sigma^2 / tau^2`` on the diagonal (the Wiener filter for a white kernel prior), with
   ``sigma`` the noise level (given, or estimated from the least-squares residual) and ``tau^2`` the
   mean squared tap of the least-squares kernel.  The bias, if any, is eliminated exactly (centering).
5. **Out-of-support energy.**  The unconstrained estimate over the ``segment_length`` lags around the
   support is the least-squares kernel plus the per-frequency estimate of what its residual still
   correlates with; its share of energy outside the kernel's taps is reported per output channel.  It
   is noise-sized when ``kernel_size`` covers the true kernel and large when it does not.

6. **The method's own transfer estimates.**  Welch cross-spectra of the data give the non-parametric
   estimates ``H1``, ``H2`` and the (multiple) coherence per frequency (:mod:`.welch`).  A low coherence where
   the input has power is reported in words, not warned: noise lowers it as much as a nonlinearity does.

What is exact and what is approximate: the answer is the (regularized) least-squares kernel of the
valid data, to the tolerance ``tol`` of the refinement (``diagnostics["edge_residual"]``); the
spectral division only preconditions it, so its approximations (edges ignored, a smoothed spectrum)
cost iterations, not accuracy.  The out-of-support energy is approximate (the circular per-frequency
division on a finite lag window).  For rank-deficient data the refinement returns the minimum-norm
kernel when the deficiency is the same at every frequency (duplicate or silent channels), otherwise
*a* least-squares kernel, not necessarily the minimum-norm one of ``"lstsq"``.  The noise level is
estimated from the least-squares residual with ``equations - unknowns`` degrees of freedom.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import scipy.fft as sfft
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import ArrayLike

from ..exceptions import SpectralWarning
from ..model.problem import Block, CanonicalProblem
from ..model.result import Solution
from ..model.validation import check_bool, check_int, check_real
from .welch import canonical_spectra

#: Smallest default lag window of the per-frequency estimate, in taps.
WINDOW_FACTOR = 4
#: Restart the recurrences of conjugate gradients from the true residual this often.
RESTART_EVERY = 50
#: Most passes over the data that polish the solution with residuals (iterative refinement).
POLISH_STEPS = 4
#: A polishing correction smaller than this (relative) ends the polishing.
POLISH_TOL = 1e-10
#: Relative tolerance of each polishing correction.
POLISH_INNER_TOL = 1e-6


# ----------------------------------------------------------------------------------------------
# The solver
# ----------------------------------------------------------------------------------------------


def solve(
    problem: CanonicalProblem,
    *,
    noise_level: ArrayLike | None = None,
    wiener: bool = True,
    segment_length: int | None = None,
    tol: float = 1e-12,
    max_iter: int = 500,
    workers: int | None = -1,
) -> Solution:
    """Frequency-domain deconvolution, refined to the least-squares kernel of the valid data.

    Options
    -------
    noise_level : float, array of shape (out_channels,), or None
        Standard deviation of the noise in ``y``.  None estimates it per output channel from the
        residual of the least-squares fit (``sqrt(RSS / (equations - unknowns))``).  The value used is
        recorded in ``options["noise_level"]``.
    wiener : bool
        True adds ``noise_level**2 / mean(kernel**2)`` times ``||kernel||^2`` to the squared residual
        (Wiener deconvolution with a white kernel prior; the bias is not penalized); it vanishes for
        noiseless data.  False returns the plain least-squares kernel.
    segment_length : int, optional
        Length of the per-frequency systems (the lag window of the spectral estimate); at least
        ``2 * taps - 1``.  Default: ``scipy.fft.next_fast_len(4 * taps)``.
    tol : float
        Relative residual ``||A^T (y - A w)|| / ||A^T y||`` of the normal equations at which the edge
        refinement (conjugate gradients) stops: the meaning ``tol`` has for every linear solve.
    max_iter : int
        Most conjugate-gradient steps per solve (the iteration cap, as for every method).
    workers : int or None
        Threads for :mod:`scipy.fft` (``-1``: all cores).

    Notes
    -----
    See the module docstring: one FFT pass over the data, the per-frequency least-squares estimate
    (Welch cross-spectral matrices), then preconditioned conjugate gradients on the exact normal
    equations ``(A^T A + lambda I) w = A^T y`` with ``A^T A = Toeplitz(R) - E^T E`` applied by short
    FFTs, polished with residuals from one more pass over the data.  Time: ``O(N log taps)`` for ``N``
    samples (FFTs over segments of a few lag windows), plus ``O(taps log taps)`` per refinement step.

    ``options`` records ``noise_level`` (per output channel, given or estimated), ``wiener``,
    ``segment_length``, ``tol``, ``max_iter`` and ``workers``.  ``diagnostics`` holds ``solver``
    (``"spectral_pcg"`` per group: conjugate gradients preconditioned by the spectra), ``noise_level_source``
    ("given" or "estimated"), ``ridge`` (lambda per output channel), ``out_of_support_energy`` (per output
    channel, the share of the unconstrained estimate's energy outside the kernel's taps: a large share says
    ``kernel_size`` is too small), ``edge_iterations``, ``edge_residual`` and ``polish_steps`` (per group),
    ``singular_frequencies`` and ``frequencies`` (per group), ``warnings`` (the texts of the
    :class:`SpectralWarning` issued) and ``spectra``, the Welch estimates of step 6: ``freqs`` (cycles per
    canonical sample, ``0 .. 1/2``), ``h1`` ``(n_freqs, channels, out_channels)``, ``h2`` ``(n_freqs, 1,
    out_channels)`` (one input channel only, else None), ``coherence`` ``(n_freqs, out_channels)``,
    ``unexplained_power`` (per output channel, the share of the output power at frequencies where the input has
    power that the coherence leaves unexplained), ``nperseg``, ``segments``, ``message`` (about a low coherence,
    or None) and ``skipped`` (why there are no estimates: sequences shorter than a segment; else None).  With
    ``stride=1`` and ``dilation=1``, ``h1`` and ``h2`` estimate :meth:`KernelResult.frequency_response` at
    ``freqs`` (the physical lags of ``config.tap_lags()``); otherwise they are the responses of the canonical
    problem (its channels are the stride's polyphase components, its samples every ``dilation``-th).

    Examples
    --------
    >>> import numpy as np
    >>> import kernel_recovery as kr
    >>> x = np.random.default_rng(0).standard_normal(200)
    >>> y = kr.conv1d(x, np.array([1.0, -2.0, 0.5]), padding="same")
    >>> res = kr.recover_kernel(x, y, 3, padding="same", method="fft")
    >>> res.kernel.ravel().round(10)
    array([ 1. , -2. ,  0.5])
    """
    opts = _check_options(problem, noise_level, wiener, segment_length, tol, max_iter, workers)
    fits = []
    for b in range(len(problem.blocks)):  # a loop, not a comprehension: the warnings' stacklevel counts frames
        fits.append(_fit_block(problem, b, opts))
    # low coherence is reported, not warned: noise lowers it as much as a nonlinearity does, and correct linear
    # data at a low signal-to-noise ratio (whose kernel is still well determined by a long record) must not warn
    spectra = canonical_spectra(problem, opts.workers)
    return _solution(problem, fits, opts, spectra)


class _Options(NamedTuple):
    """The solver's options, validated; ``noise`` is the given noise level per output channel (or None)."""

    noise: np.ndarray | None
    wiener: bool
    window: int
    tol: float
    max_iter: int
    workers: int | None


class _BlockFit(NamedTuple):
    """One block's kernel and what the solve reports about it (per output channel of the block)."""

    kernel: np.ndarray  # (T, C, O)
    bias: np.ndarray | None  # (O,), with a bias
    noise: np.ndarray  # the noise level used
    ridge: np.ndarray  # the Wiener term lambda
    outside: np.ndarray  # the out-of-support energy
    iterations: int
    polish: int
    residual: float
    converged: bool
    singular: int  # singular frequencies ...
    frequencies: int  # ... of this many
    warning: str | None


def _check_options(
    problem: CanonicalProblem,
    noise_level: ArrayLike | None,
    wiener: object,
    segment_length: object,
    tol: object,
    max_iter: object,
    workers: object,
) -> _Options:
    wiener = check_bool(wiener, "wiener")
    tol = check_real(tol, "tol", low=0.0, high=1.0, low_open=True, high_open=True)
    max_iter = check_int(max_iter, "max_iter", 1)
    if workers is not None:
        workers = check_int(workers, "workers", None)
        if workers == 0:
            raise ValueError("`workers` must be a positive number of threads or -1 (all cores), got 0.")
    given_noise = _check_noise(noise_level, problem.config.out_channels)
    taps = problem.blocks[0].taps
    if segment_length is None:
        window = sfft.next_fast_len(max(WINDOW_FACTOR * taps, 16), real=True)
    else:
        window = check_int(segment_length, "segment_length", 2 * taps - 1)
    return _Options(given_noise, wiener, int(window), tol, max_iter, workers)


def _singular_warning(stats: _Spectra, b: int, n_blocks: int) -> str | None:
    """Warn (and return the text) when the per-frequency systems of block ``b`` are singular somewhere."""
    n_singular = int(np.sum(stats.singular))
    if not n_singular:
        return None
    where = "" if n_blocks == 1 else f" (group {b})"
    text = (
        f"the per-frequency cross-spectral systems{where} are singular at {n_singular} of "
        f"{len(stats.singular)} frequencies: the input channels carry no independent power there, so the "
        "data do not determine the kernel's response at those frequencies (it is left at its smallest "
        "norm, or set by the Wiener regularization). Use a broadband input on every channel, or drop "
        "duplicate or silent channels."
    )
    warnings.warn(text, SpectralWarning, stacklevel=5)  # solve -> _fit_block -> here: the caller of solve's caller
    return text


def _fit_block(problem: CanonicalProblem, b: int, opts: _Options) -> _BlockFit:
    """Steps 1-5 of the module docstring for block ``b``: statistics, estimate, refinement, Wiener term."""
    block, use_bias = problem.blocks[b], problem.config.use_bias
    tol, max_iter = opts.tol, opts.max_iter
    stats = _fft_statistics(block, use_bias, opts.window, opts.workers)
    oc = block.out_channels
    text = _singular_warning(stats, b, len(problem.blocks))
    estimate = _spectral_estimate(stats)
    w0 = np.where(stats.mask[:, :, None], estimate[: stats.taps], 0.0)

    zero = np.zeros(len(oc))
    w, its, res, ok, steps, rss, resid_cross = _least_squares(block, stats, w0, zero, tol, max_iter, None)
    outside = _outside_energy(stats, w, resid_cross)
    if opts.noise is None:
        dof = block.n_equations - stats.n_free - int(use_bias)
        sigma = np.sqrt(np.maximum(rss, 0.0) / dof) if dof > 0 else np.zeros(len(oc))
    else:
        sigma = opts.noise[oc]
    lam = zero
    if opts.wiener:
        power = np.einsum("tco,tco->o", w, w) / stats.n_free
        lam = np.divide(sigma**2, power, out=np.zeros(len(oc)), where=power > 0)
        if np.any(lam > 0):
            w, its2, res, ok2, steps2, _, _ = _least_squares(block, stats, w, lam, tol, max_iter, steps > 1)
            its, ok, steps = its + its2, ok and ok2, steps + steps2
    bias = None
    if stats.window_sums is not None:  # present exactly with a bias
        bias = (stats.y_sum - np.einsum("tc,tco->o", stats.window_sums, w)) / stats.n_rows
    n_singular, n_freq = int(np.sum(stats.singular)), len(stats.singular)
    return _BlockFit(w, bias, sigma, lam, outside, its, steps, float(res), ok, n_singular, n_freq, text)


def _solution(problem: CanonicalProblem, fits: list[_BlockFit], opts: _Options, spectra: dict[str, Any]) -> Solution:
    """The blocks' fits as one :class:`Solution` (per-output-channel values assembled over the blocks)."""
    cfg = problem.config
    per_output = {name: np.zeros(cfg.out_channels) for name in ("noise", "ridge", "outside")}
    for block, fit in zip(problem.blocks, fits):
        for name, values in per_output.items():
            values[block.out_channels] = getattr(fit, name)
    converged = all(fit.converged for fit in fits)
    residuals = [fit.residual for fit in fits]
    message = (
        "refined to the least-squares kernel"
        if not opts.wiener or not np.any(per_output["ridge"])
        else "refined to the Wiener-regularized least-squares kernel"
    )
    if not converged:
        message = (
            f"the edge refinement stopped after max_iter={opts.max_iter} steps at a relative residual of "
            f"{max(residuals):.3g} (tol={opts.tol:g}); raise max_iter, or use method='lstsq'"
        )
    return Solution(
        kernels=[fit.kernel for fit in fits],
        biases=[fit.bias for fit in fits if fit.bias is not None] if cfg.use_bias else None,
        success=bool(converged),
        message=message,
        n_iterations=int(sum(fit.iterations for fit in fits)),
        options={
            "noise_level": per_output["noise"],
            "wiener": bool(opts.wiener),
            "segment_length": int(opts.window),
            "tol": float(opts.tol),
            "max_iter": int(opts.max_iter),
            "workers": opts.workers,
        },
        diagnostics={
            "solver": ["spectral_pcg"] * len(fits),
            "noise_level_source": "estimated" if opts.noise is None else "given",
            "ridge": per_output["ridge"],
            "out_of_support_energy": per_output["outside"],
            "edge_iterations": [fit.iterations for fit in fits],
            "edge_residual": residuals,
            "polish_steps": [fit.polish for fit in fits],
            "singular_frequencies": [fit.singular for fit in fits],
            "frequencies": [fit.frequencies for fit in fits],
            "warnings": [fit.warning for fit in fits if fit.warning is not None],
            "spectra": spectra,
        },
    )


# ----------------------------------------------------------------------------------------------
# Option checks
# ----------------------------------------------------------------------------------------------


def _check_noise(noise_level: ArrayLike | None, n_out: int) -> np.ndarray | None:
    if noise_level is None:
        return None
    if isinstance(noise_level, (bool, np.bool_, str)):
        raise TypeError(f"`noise_level` must be None, a number or an array of {n_out} numbers, got {noise_level!r}.")
    try:
        arr = np.asarray(noise_level, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(
            f"`noise_level` must be None, a number or an array of {n_out} numbers, got {noise_level!r}."
        ) from None
    if arr.ndim > 1 or (arr.ndim == 1 and arr.shape[0] != n_out):
        raise ValueError(
            f"`noise_level` must be a number or have one entry per output channel ({n_out}), got shape {arr.shape}."
        )
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ValueError(f"`noise_level` must be finite and >= 0, got {noise_level!r}.")
    return np.broadcast_to(arr, (n_out,)).copy()


# ----------------------------------------------------------------------------------------------
# One pass over the data
# ----------------------------------------------------------------------------------------------


@dataclass
class _Spectra:
    """What one block's solve needs, from one FFT pass over its data (``T`` taps, ``C`` channels, ``O`` outputs)."""

    taps: int
    mask: np.ndarray  # (T, C) free coefficients
    n_rows: int  # equations per output channel
    n_toeplitz: int  # FFT length of the normal operator, >= 2T - 1
    toeplitz: np.ndarray  # (F, C, C): conj of the DFT of R(d), |d| < T, so that (R w)^ = toeplitz @ w^
    edges: np.ndarray  # (E, F, C): DFTs of the unseen edge windows, zero-padded
    rhs: np.ndarray  # (T, C, O): A^T y, centered when there is a bias
    window_sums: np.ndarray | None  # (T, C): A^T 1, with a bias
    y_sum: np.ndarray  # (O,)
    window: int  # length of the per-frequency systems
    eigenvalues: np.ndarray  # (Fw, C): of the Welch (Bartlett) cross-spectral matrices, clipped at 0
    eigenvectors: np.ndarray  # (Fw, C, C)
    floor: float  # added to the spectrum's eigenvalues so that it can be inverted
    singular: np.ndarray  # (Fw,) bool
    cross: np.ndarray  # (window, C, O): cross-correlation lags of the window, circular order
    transforms: list  # _Segments: the input's segment transforms (overlap-save), for the residual passes
    workers: int | None

    @property
    def n_free(self) -> int:
        return int(self.mask.sum())


def _fft_statistics(block: Block, use_bias: bool, window: int, workers: int | None) -> _Spectra:
    """Step 1 and the spectra of step 2 for one block: one FFT pass over its data, then short FFTs only."""
    taps = block.taps
    acc = _data_pass(block, window, workers)
    lags_r, cross, sums, y_sum = acc.lags, acc.cross, acc.window_sums, acc.y_sum
    n_rows = block.n_equations
    rhs = cross[:taps].copy()
    if use_bias:
        rhs -= sums[:, :, None] * (y_sum / n_rows)
        mean_sum = sums.mean(axis=0)
        centered = lags_r - np.outer(mean_sum, mean_sum)[None] / n_rows
        cross[taps:] -= mean_sum[None, :, None] * (y_sum / n_rows)
        cross[:taps] = rhs
    else:
        centered = lags_r
    n_t, toeplitz, edge_hat = _normal_parts(lags_r, acc.edges, taps, workers)
    eig, vec, floor, singular = _bartlett_spectrum(centered, taps, window, workers)
    return _Spectra(
        taps=taps,
        mask=block.mask,
        n_rows=n_rows,
        n_toeplitz=n_t,
        toeplitz=toeplitz,
        edges=edge_hat,
        rhs=rhs,
        window_sums=sums if use_bias else None,
        y_sum=y_sum,
        window=window,
        eigenvalues=eig,
        eigenvectors=vec,
        floor=floor,
        singular=singular,
        cross=cross,
        transforms=acc.transforms,
        workers=workers,
    )


@dataclass
class _Sums:
    """What the pass over one block's data accumulates (``T`` taps, ``C`` channels, ``O`` outputs)."""

    lags: np.ndarray  # (2T - 1, C, C): R(d) at index d + T - 1
    cross: np.ndarray  # (window, C, O): cross-correlation lags of the window, circular order
    window_sums: np.ndarray  # (T, C): A^T 1
    y_sum: np.ndarray  # (O,)
    edges: list  # the unseen edge windows, (B, 2T - 2, C) per length group and side
    transforms: list  # _Segments per chunk of segments, for the residual passes


class _Segments(NamedTuple):
    """A chunk of segments of ``length`` outputs, transformed for overlap-save FFTs of ``size`` samples.

    A segment starting at output ``t0`` spans the input from ``t0 - before`` (``before`` the lags of the window
    below 0) over ``length + window - 1`` samples, zeros outside the record: every lag of the window of each of
    its outputs.  Short FFTs over segments cost ``O(N log window)`` and stay in cache, where one FFT of a whole
    record costs ``O(N log N)`` and does not (4x faster at a million samples).
    """

    length: int
    size: int
    spans: np.ndarray  # (S, C, size // 2 + 1): the spans' transforms
    outputs: np.ndarray  # (S, O, length): y, zero past the record's end
    valid: np.ndarray  # (S,): outputs of each segment within the record


#: Outputs per overlap-save segment: about this many times the lag window, and at least ``SEGMENT_MIN``.
SEGMENT_FACTOR = 4
SEGMENT_MIN = 4096
#: Samples per chunk of segments transformed together (bounds the temporaries of the passes).
SEGMENT_CHUNK = 1 << 21


def _data_pass(block: Block, window: int, workers: int | None) -> _Sums:
    """The correlation lags, cross-correlations, window sums and edge windows; sequences of one length together."""
    taps, n_ch = block.taps, block.channels
    n_out = len(block.out_channels)
    acc = _Sums(
        lags=np.zeros((2 * taps - 1, n_ch, n_ch)),
        cross=np.zeros((window, n_ch, n_out)),
        window_sums=np.zeros((taps, n_ch)),
        y_sum=np.zeros(n_out),
        edges=[],
        transforms=[],
    )
    by_length: dict[int, list[int]] = {}
    for i, x in enumerate(block.xs):
        by_length.setdefault(len(x), []).append(i)
    for n, idx in by_length.items():
        _add_length_group(acc, block, n, idx, window, workers)
    return acc


def _add_length_group(acc: _Sums, block: Block, n: int, idx: list[int], window: int, workers: int | None) -> None:
    """Add the sequences ``idx`` of the block, all ``n`` samples long, to ``acc``, by overlap-save segments.

    For the outputs ``t0 <= t < t0 + length`` of a segment and its span ``s[v] = x[t0 - before + v]``, the
    correlation ``sum_u h[u] s[u + l]`` of the segment's inputs ``h[u] = x[t0 + u]`` holds ``R(d)`` at ``l =
    before + d``, and that of its outputs the cross-correlation lag ``j`` at ``l = before + j``; the products
    are summed over the segments in the frequency domain, then transformed back once.  A record in one
    segment needs no transform of ``h``: the span's own autocorrelation holds ``R(d)`` at ``l = d`` (the FFT
    length, ``n + window - 1`` at least, leaves no wrap-around).
    """
    taps, n_ch = block.taps, block.channels
    n_out, n_b = len(block.out_channels), len(idx)
    before = window - taps - (window - taps) // 2
    n_seg = -(-n // max(SEGMENT_FACTOR * window, SEGMENT_MIN))
    length = -(-n // n_seg)  # segments of equal length, covering the record
    size = sfft.next_fast_len(length + window - 1, real=True)
    m = n - taps + 1
    xs = np.stack([block.xs[i] for i in idx])  # (B, n, C)
    ys = np.stack([block.outputs[i] for i in idx])  # (B, m, O)
    xp = np.zeros((n_b, before + n_seg * length + window - 1, n_ch))
    xp[:, before : before + n] = xs
    yp = np.zeros((n_b, n_seg * length, n_out))
    yp[:, :m] = ys
    spans = sliding_window_view(xp, length + window - 1, axis=1)[:, 0 : n_seg * length : length]  # (B, S, C, w)
    heads = xp[:, before : before + n_seg * length].reshape(n_b, n_seg, length, n_ch)
    outs = yp.reshape(n_b, n_seg, length, n_out)
    valid = np.clip(m - length * np.arange(n_seg), 0, length)
    lags_f = np.zeros((size // 2 + 1, n_ch, n_ch), dtype=complex)
    cross_f = np.zeros((size // 2 + 1, n_ch, n_out), dtype=complex)
    rows_b, rows_s = np.divmod(np.arange(n_b * n_seg), n_seg)
    per_chunk = max(SEGMENT_CHUNK // (size * (n_ch + n_out)), 1)
    for c0 in range(0, len(rows_b), per_chunk):
        b, j = rows_b[c0 : c0 + per_chunk], rows_s[c0 : c0 + per_chunk]
        sf = sfft.rfft(spans[b, j], size, axis=2, workers=workers)  # (S, C, F)
        if n_seg == 1:  # the span is the whole record, shifted: its own autocorrelation holds R(d) at l = d
            hf = sf.conj()
        else:  # (transforms used only conjugated are conjugated in place: no copy)
            hf = sfft.rfft(heads[b, j].transpose(0, 2, 1), size, axis=2, workers=workers)
            np.conjugate(hf, out=hf)
        out = np.ascontiguousarray(outs[b, j].transpose(0, 2, 1))  # (S, O, length)
        yf = sfft.rfft(out, size, axis=2, workers=workers)
        lags_f += np.einsum("scf,sdf->fcd", hf, sf)
        cross_f += np.einsum("scf,sof->fco", sf, np.conjugate(yf, out=yf))
        acc.transforms.append(_Segments(length, size, sf, out, valid[j]))
    at = 0 if n_seg == 1 else before
    positive = sfft.irfft(lags_f, size, axis=0, workers=workers)[at : at + taps]  # R(d), d >= 0
    acc.lags += np.concatenate([positive[:0:-1].transpose(0, 2, 1), positive])  # R(-d) = R(d)^T
    acc.cross += np.roll(sfft.irfft(cross_f, size, axis=0, workers=workers)[:window], -before, axis=0)
    # A^T 1 from the ends only: the sum over all samples less those the rows of each tap do not reach
    head, tail = xs[:, : taps - 1], xs[:, m:]
    first = np.concatenate([np.zeros((n_b, 1, n_ch)), np.cumsum(head, axis=1)], axis=1)
    last = np.concatenate([np.cumsum(tail[:, ::-1], axis=1)[:, ::-1], np.zeros((n_b, 1, n_ch))], axis=1)
    acc.window_sums += (xs.sum(axis=1)[:, None] - first - last).sum(axis=0)
    acc.y_sum += ys.sum(axis=(0, 1))
    if taps > 1:
        pad = np.zeros((n_b, taps - 1, n_ch))
        acc.edges.append(np.concatenate([pad, head], axis=1))  # rows t = -(T-1) .. -1
        acc.edges.append(np.concatenate([tail, pad], axis=1))  # rows t = m .. n-1


def _normal_parts(
    lags_r: np.ndarray, edges: list, taps: int, workers: int | None
) -> tuple[int, np.ndarray, np.ndarray]:
    """``(n_t, toeplitz, edges^)``: the DFTs (length ``n_t >= 2T - 1``) that apply ``A^T A = Toeplitz(R) - E^T E``."""
    n_ch = lags_r.shape[1]
    n_t = sfft.next_fast_len(2 * taps - 1, real=True)
    circ = np.zeros((n_t, n_ch, n_ch))
    circ[:taps] = lags_r[taps - 1 :]
    circ[n_t - taps + 1 :] = lags_r[: taps - 1]
    toeplitz = sfft.rfft(circ, axis=0, workers=workers).conj()
    if edges:
        edge_arr = np.concatenate(edges)
        edge_hat = sfft.rfft(edge_arr, n_t, axis=1, workers=workers)
    else:
        edge_hat = np.zeros((0, n_t // 2 + 1, n_ch), dtype=complex)
    return n_t, toeplitz, edge_hat


def _bartlett_spectrum(
    centered: np.ndarray, taps: int, window: int, workers: int | None
) -> tuple[np.ndarray, np.ndarray, float, np.ndarray]:
    """``(eigenvalues, eigenvectors, floor, singular)`` of the cross-spectral matrices on ``window`` frequencies.

    Welch with every shift of a rectangular segment of ``T`` samples is the Bartlett-tapered correlogram.
    """
    n_ch = centered.shape[1]
    taper = 1.0 - np.abs(np.arange(-(taps - 1), taps)) / taps
    circ = np.zeros((window, n_ch, n_ch))
    tapered = centered * taper[:, None, None]
    circ[:taps] = tapered[taps - 1 :]
    circ[window - taps + 1 :] += tapered[: taps - 1]
    spectrum = sfft.rfft(circ, axis=0, workers=workers).conj()
    spectrum = 0.5 * (spectrum + spectrum.conj().transpose(0, 2, 1))
    eig, vec = np.linalg.eigh(spectrum)
    eig = np.clip(eig, 0.0, None)
    top = float(eig.max()) if eig.size else 0.0
    tiny = top * window * n_ch * np.finfo(np.float64).eps
    singular = eig[:, 0] <= tiny
    floor = max(tiny, np.finfo(np.float64).tiny)
    return eig, vec, floor, singular


# ----------------------------------------------------------------------------------------------
# Operators
# ----------------------------------------------------------------------------------------------


def _normal_apply(stats: _Spectra, w: np.ndarray, ridge: np.ndarray) -> np.ndarray:
    """``(A^T A + ridge) w`` on the free coefficients, ``w`` of shape ``(T, C, O)``; centered with a bias."""
    taps, n_t, workers = stats.taps, stats.n_toeplitz, stats.workers
    wf = sfft.rfft(w, n_t, axis=0, workers=workers)  # (F, C, O)
    out = np.matmul(stats.toeplitz, wf)
    if len(stats.edges):
        # the unseen edge outputs of the current kernel, then their correlation with the edge inputs
        z = sfft.irfft(np.einsum("efc,fco->efo", stats.edges, wf.conj()), n_t, axis=1, workers=workers)
        z[:, taps - 1 :] = 0.0
        zf = sfft.rfft(z, axis=1, workers=workers)
        out -= np.einsum("efc,efo->fco", stats.edges, zf.conj())
    g = sfft.irfft(out, n_t, axis=0, workers=workers)[:taps]
    if stats.window_sums is not None:
        s = stats.window_sums
        g -= s[:, :, None] * (np.einsum("tc,tco->o", s, w) / stats.n_rows)
    g += ridge * w
    return np.where(stats.mask[:, :, None], g, 0.0)


def _spectral_solve(stats: _Spectra, r: np.ndarray, ridge: np.ndarray, length: int) -> np.ndarray:
    """Per-frequency least squares: the circulant (Welch) inverse applied to ``r``, ``length`` lags out."""
    workers = stats.workers
    rf = sfft.rfft(r, stats.window, axis=0, workers=workers)  # (Fw, C, O)
    mu, u = stats.eigenvalues, stats.eigenvectors
    uh_r = np.matmul(u.conj().transpose(0, 2, 1), rf)
    level = mu[:, :, None] + ridge[None, None, :]
    # a pseudo-inverse: directions without power are left alone rather than amplified
    uh_r *= np.divide(1.0, level, out=np.zeros_like(level), where=level > stats.floor)
    return sfft.irfft(np.matmul(u, uh_r), stats.window, axis=0, workers=workers)[:length]


def _spectral_estimate(stats: _Spectra) -> np.ndarray:
    """The per-frequency (Welch) estimate over the lag window, ``(window, C, O)`` in circular lag order."""
    return _spectral_solve(stats, stats.cross, np.zeros(stats.cross.shape[2]), stats.window)


def _outside_energy(stats: _Spectra, w: np.ndarray, resid_cross: np.ndarray) -> np.ndarray:
    """Per output channel, the share of the unconstrained estimate's energy outside the kernel's free taps.

    The unconstrained estimate over the lag window is the least-squares kernel plus the per-frequency
    estimate of what its residual still correlates with; the latter is only noise when ``kernel_size``
    covers the true kernel.
    """
    extra = _spectral_solve(stats, resid_cross, np.zeros(w.shape[2]), stats.window)
    free = np.zeros(extra.shape[:2], dtype=bool)
    free[: stats.taps] = stats.mask
    inside = extra[: stats.taps] + w
    within = np.einsum("tco,tco->o", inside, inside * free[: stats.taps, :, None])
    outside = np.einsum("tco,tco->o", extra, extra * ~free[:, :, None])
    total = within + outside
    return np.divide(outside, total, out=np.zeros_like(total), where=total > 0)


def _least_squares(block, stats, w0, ridge, tol, max_iter, polish):
    """Solve ``(A^T A + ridge) w = A^T y`` by :func:`_refine`, then polish it with residuals from the data.

    Forming ``A^T y`` and ``A^T A w`` separately loses accuracy as ``cond(A)^2``; a correction solved from
    the residual ``A^T (y - A w)``, computed over the record, loses only ``cond(A)`` (iterative refinement).
    ``polish`` None: polish until the correction is negligible (at most ``POLISH_STEPS`` passes); True or
    False: polish or not.  Returns ``(w, iterations, residual, converged, passes, rss, residual_cross)``.
    """
    w, its, res, ok = _refine(stats, w0, ridge, tol, max_iter, stats.rhs)
    rss = cross = None
    steps = 0
    while (polish is None or polish) and steps < POLISH_STEPS:
        rss, cross = _residual_pass(block, stats, w)
        steps += 1
        rhs = cross[: stats.taps] - ridge * w
        # each correction only needs to shrink the error, not to reach tol
        delta, its2, rel, _ = _refine(stats, np.zeros_like(w), ridge, max(tol, POLISH_INNER_TOL), max_iter, rhs)
        its += its2
        if not (rel < 1.0 and np.all(np.isfinite(delta))):
            # no progress: the residual's correlation is rounding noise in directions the data barely see (a
            # singular Gram); conjugate gradients on it diverge (|kernel| 1e88 on a constant input with lags)
            break
        w = w + delta
        if np.all(np.linalg.norm(delta, axis=(0, 1)) <= POLISH_TOL * np.linalg.norm(w, axis=(0, 1))):
            break
    if rss is None and polish is None:
        rss, cross = _residual_pass(block, stats, w)
    return w, its, res, ok, steps, rss, cross


def _refine(stats: _Spectra, w0: np.ndarray, ridge: np.ndarray, tol: float, max_iter: int, rhs: np.ndarray):
    """Preconditioned conjugate gradients on ``(A^T A + ridge) w = rhs``, one column per output channel.

    Returns ``(w, iterations, relative residual, converged)``.
    """
    mask = stats.mask[:, :, None]
    b = np.where(mask, rhs, 0.0)

    def dot(a, c):
        return np.einsum("tco,tco->o", a, c)

    def precondition(r):
        return np.where(mask, _spectral_solve(stats, r, ridge, stats.taps), 0.0)

    b_norm = np.sqrt(dot(b, b))
    scale = np.where(b_norm > 0, b_norm, 1.0)
    w = np.where(mask, w0, 0.0)
    r = b - _normal_apply(stats, w, ridge)
    rel = np.sqrt(dot(r, r)) / scale
    if np.all(b_norm == 0):
        return np.zeros_like(w), 0, 0.0, True
    z = precondition(r)
    p = z.copy()
    rz = dot(r, z)
    best = rel.copy()
    stalled = 0
    it = 0
    while it < max_iter and np.any(rel > tol):
        it += 1
        active = rel > tol
        q = _normal_apply(stats, p, ridge)
        pq = dot(p, q)
        alpha = np.where(active & (pq > 0), rz / np.where(pq > 0, pq, 1.0), 0.0)
        w += alpha * p
        if it % RESTART_EVERY == 0:
            r = b - _normal_apply(stats, w, ridge)
        else:
            r -= alpha * q
        rel = np.sqrt(dot(r, r)) / scale
        z = precondition(r)
        rz_new = dot(r, z)
        beta = np.where(rz > 0, rz_new / np.where(rz > 0, rz, 1.0), 0.0)
        p = z + beta * p
        rz = rz_new
        # stop at the rounding floor: no progress for a while below 1e-9
        if np.all(rel >= 0.5 * best) and np.max(rel) < 1e-9:
            stalled += 1
            if stalled >= 10:
                break
        else:
            stalled = 0
        best = np.minimum(best, rel)
    rel_max = float(np.max(rel))
    return w, it, rel_max, bool(rel_max <= max(tol, 1e-9))


def _residual_pass(block: Block, stats: _Spectra, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One pass over the segments: ``||y - A w - bias||^2`` per output channel (no cancellation), and the
    residual's cross-correlation with the input over the lag window, ``(window, C, O)`` in circular lag order."""
    taps, window, workers = stats.taps, stats.window, stats.workers
    before = window - taps - (window - taps) // 2
    n_out = w.shape[2]
    if stats.window_sums is not None:
        bias = (stats.y_sum - np.einsum("tc,tco->o", stats.window_sums, w)) / stats.n_rows
    else:
        bias = np.zeros(n_out)
    rss = np.zeros(n_out)
    cross = np.zeros((window, w.shape[1], n_out))
    sums: dict[int, np.ndarray] = {}  # per FFT length: the residual's cross-correlation, transformed
    kernels: dict[int, np.ndarray] = {}  # per FFT length: the kernel at the span's offset of lag 0, transformed
    for seg in stats.transforms:
        if seg.size not in kernels:
            shifted = np.zeros((seg.size,) + w.shape[1:])
            shifted[before : before + taps] = w
            kernels[seg.size] = sfft.rfft(shifted, axis=0, workers=workers).conj()  # (F, C, O)
            sums[seg.size] = np.zeros((seg.size // 2 + 1, w.shape[1], n_out), dtype=complex)
        pred = sfft.irfft(np.einsum("scf,fco->sof", seg.spans, kernels[seg.size]), seg.size, axis=2, workers=workers)
        resid = seg.outputs - pred[:, :, : seg.length] - bias[None, :, None]
        resid *= (np.arange(seg.length) < seg.valid[:, None])[:, None, :]  # no outputs past the record's end
        rss += np.einsum("sot,sot->o", resid, resid)
        rf = sfft.rfft(resid, seg.size, axis=2, workers=workers)
        sums[seg.size] += np.einsum("scf,sof->fco", seg.spans, np.conjugate(rf, out=rf))
    for size, total in sums.items():
        cross += np.roll(sfft.irfft(total, size, axis=0, workers=workers)[:window], -before, axis=0)
    return rss, cross
