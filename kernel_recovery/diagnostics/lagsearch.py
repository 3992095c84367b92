"""Where a response starts and ends: a delay seed, nested least-squares scans, and the end of the response.

The model is a response over physical lags ``first..last`` (``first`` may be negative) with ``y`` on ``x``'s
time axis and ``x`` zero before its start:

    y[t, o] = sum_{l = first}^{last} sum_c h[l, c, o] x[t - l, c] (+ bias[o]),    0 <= t < n.

Three steps, none of which tries every lag:

1. **Seed.** Each input channel is prewhitened by a short autoregressive fit (Yule-Walker), the same filter is
   applied to ``y``, and the normalized cross-correlation of the two is computed by FFT at every lag.  With a
   white input it is proportional to the response, so the lags where it leaves the null band ``z / sqrt(n)``
   bound the response, however large the bulk delay.
2. **Nested scans.** The Gram of a generous window ``lo..hi`` around the seed is assembled from the lagged
   correlations (never a design matrix).  With columns in ascending lag order its Cholesky factor ``L`` and
   ``z = L^-1 c`` give the residual of every prefix model ``lo..e`` at once: ``RSS(lo, e) = y'y - ||z[:k]||^2``.
   For the starts, the residual of ``s..hi`` is the full window's plus ``w_D' ((G^-1)_DD)^-1 w_D`` for the
   dropped lags ``D = lo..s-1`` (``w`` the full fit): a few triangular solves more, not a second
   factorization.  AIC or BIC on these residuals (noise variance profiled) choose the end and the start.  A
   pivot at or below :func:`~kernel_recovery.model.spectrum.rank_tolerance` stops the scan there.

   With one input channel and at least ``STRUCTURED_FROM`` lags, both scans are exact and ``O(T^2)``, without
   the Gram: the design of a window is a convolution, whose Gram is Toeplitz up to the rows entering and
   leaving at the record's ends, and a generalized Schur algorithm factors it from those generators
   (:func:`~kernel_recovery.diagnostics.nested.convolution_prefix_fit`), once with the lags ascending (the ends)
   and once descending (the starts).  Where that scan declines (a window the input does not resolve, an
   ill-conditioned one, many sequences) and the window holds more than ``SMALL_WINDOW`` lags, the
   ``O(T^3)`` factorization is replaced by an approximate ``O(T^2)`` one: the window's exact fit ``h``
   (Toeplitz CG by FFT) and, by Pythagoras,
   ``RSS(S) = RSS + min_{w on S} (h - w)' G (h - w)`` with the Toeplitz matrix of the input's autocorrelation
   standing in for the Gram ``G``, solved for every prefix and every suffix by one Levinson recursion
   (:func:`toeplitz_window_scan`).  The full window's residual is exact; the differences are off by the
   rows the record cuts at its ends, a relative ``~T / n``.  With a bias, ``x`` is centred for the metric.
3. **Residual check.** The prewhitened residual of the window fit is correlated with the input at every lag: a
   lag outside the window where it leaves the null band (least-squares sensitivity, not the seed's) widens the
   window, and the scans run again (at most ``ROUNDS`` times).

The end of the response is the last lag whose coefficient leaves its confidence band in the fit that ends
there, ``|h_e| > z * stderr_e``, i.e. ``z[e]^2 > z^2 sigma^2`` (the newest tap of a prefix fit has standard
error ``sigma / L[e, e]`` and estimate ``z[e] / L[e, e]``); the start likewise from the start scan.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ..model.statistics import column_sums, gram_from_lags, lagged_correlations
from ..model.threads import fft_workers
from ..model.validation import check_choice, check_int
from ..model.whitening import whitening_filters
from .nested import (
    STRUCTURED_FROM,
    PrefixFit,
    convolution_prefix_fit,
    dropped_rss,
    information_criterion,
    prefix_fit,
    toeplitz_window_scan,
)

if TYPE_CHECKING:
    from ..model.result import KernelResult

Criterion = Literal["aic", "bic"]
#: Order of the autoregressive prewhitening filter (per input channel).
AR_ORDER = 16
#: Confidence band of the kernel, in standard errors (two-sided tail 5.7e-7 per lag).
BAND_Z = 5.0
#: Most lags the window may hold by default (its Gram is ``(lags * channels)^2`` floats).
MAX_WINDOW = 8192
#: Most rounds of widening the window on the residual check.
ROUNDS = 4
#: Probability that a lag with no response leaves the seed's null band, over all the lags searched.
FALSE_ALARM = 0.01
#: Windows with more columns (lags times input channels) than this are scanned by Levinson (one input channel).
SMALL_WINDOW = 512


# ----------------------------------------------------------------------------------------------
# The seed: prewhitened cross-correlation
# ----------------------------------------------------------------------------------------------


def _whiten(v: np.ndarray, filt: np.ndarray) -> np.ndarray:
    import scipy.signal

    return scipy.signal.lfilter(filt, [1.0], v, axis=0)


def whitened_correlation(
    xs: Sequence[np.ndarray],
    ys: Sequence[np.ndarray],
    filters: Sequence[np.ndarray],
    lo: int,
    hi: int,
    cache: dict | None = None,
) -> tuple[np.ndarray, int]:
    """The normalized cross-correlation of prewhitened inputs and outputs at lags ``lo..hi``, ``(lags, C, O)``.

    ``corr[l, c, o] = sum_t e_c[t - l] f_co[t] / (||e_c|| ||f_co||)``, where ``e_c`` is input channel ``c``
    filtered by ``filters[c]`` and ``f_co`` output ``o`` filtered the same way, summed over sequences (zero
    outside each record).  With no response at lag ``l`` it is about ``N(0, 1 / n)`` (``n`` samples).  Also
    returns ``n``.  ``cache`` (a dict, filled on the first call) keeps the whitened inputs' spectra for calls
    with the same ``xs``, ``filters`` and lags.
    """
    import scipy.fft

    c, o = xs[0].shape[1], ys[0].shape[1]
    num = np.zeros((hi - lo + 1, c, o))
    ex2 = np.zeros(c)
    fy2 = np.zeros((c, o))
    n_total = 0
    for x, y in zip(xs, ys):
        n = len(x)
        n_total += n
        size = scipy.fft.next_fast_len(n + max(abs(lo), abs(hi)) + 1, real=True)
        for ch in range(c):
            key = (id(x), ch, size)
            if cache is not None and key in cache:
                e_spec, e2 = cache[key]
            else:
                e = _whiten(x[:, ch] - x[:, ch].mean(), filters[ch])
                e_spec, e2 = np.conj(scipy.fft.rfft(e, size, workers=fft_workers())), float(e @ e)
                if cache is not None:
                    cache[key] = (e_spec, e2)
            f = _whiten(y - y.mean(axis=0), filters[ch])
            ex2[ch] += e2
            fy2[ch] += np.einsum("ij,ij->j", f, f)
            spec = e_spec[:, None] * scipy.fft.rfft(f, size, axis=0, workers=fft_workers())
            cc = scipy.fft.irfft(spec, size, axis=0, workers=fft_workers())  # cc[l] = sum_t e[t - l] f[t]
            num[:, ch, :] += cc[np.arange(lo, hi + 1) % size]
    denom = np.sqrt(np.maximum(ex2[:, None] * fy2, np.finfo(float).tiny))
    return num / denom[None], n_total


def null_threshold(n_samples: int, n_lags: int) -> float:
    """The seed's null band: ``z / sqrt(n)`` with ``z`` such that ``n_lags`` null lags all stay inside with
    probability ``1 - FALSE_ALARM`` (at least 4.5)."""
    import scipy.special

    z = float(scipy.special.ndtri(1.0 - 0.5 * FALSE_ALARM / max(n_lags, 1)))
    return max(z, 4.5) / math.sqrt(max(n_samples, 1))


def significant_lags(corr: np.ndarray, lo: int, threshold: float) -> np.ndarray:
    """Lags where some channel pair leaves the null band ``threshold``.

    (No averaging over neighbouring lags: with a coloured output, neighbouring correlations are correlated, and
    an average of their squares has no simple null band.)
    """
    flat = corr.reshape(len(corr), -1)
    return lo + np.flatnonzero(np.max(np.abs(flat), axis=1) > threshold)


# ----------------------------------------------------------------------------------------------
# The window's statistics
# ----------------------------------------------------------------------------------------------


def _shifted(x: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """``x`` on the canonical axis of lags ``lo..hi``: ``x_pad[i] = x[i - hi]`` (zero outside ``x``), ``n + hi - lo``
    samples, so that canonical tap ``j`` of row ``t`` is ``x[t - (hi - j)]``."""
    n, c = x.shape
    out = np.zeros((n + hi - lo, c))
    a, b = max(hi, 0), min(n + hi, n + hi - lo)
    if b > a:
        out[a:b] = x[a - hi : b - hi]
    return out


def window_statistics(
    xs: Sequence[np.ndarray], ys: Sequence[np.ndarray], lo: int, hi: int, use_bias: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Gram, cross terms and ``y'y`` of the design over lags ``lo..hi`` with columns in *ascending* lag order
    (``lag``-major, then channel; the bias column first), from the lagged correlations.  Also the row count."""
    taps = hi - lo + 1
    c = xs[0].shape[1]
    o = ys[0].shape[1]
    p = taps * c
    gram = np.zeros((p, p))
    cross = np.zeros((p, o))
    yty = np.zeros(o)
    sums = np.zeros(p)
    ysum = np.zeros(o)
    n_rows = 0
    for x, y in zip(xs, ys):
        xp = _shifted(x, lo, hi)
        r, q = lagged_correlations(xp, taps, y)
        assert q is not None  # asked for, with y
        gram += gram_from_lags(xp, taps, r)
        cross += q.reshape(p, o)
        yty += np.einsum("ij,ij->j", y, y)
        if use_bias:
            sums += column_sums(xp, taps).ravel()
            ysum += y.sum(axis=0)
        n_rows += len(y)
    # canonical tap j is lag hi - j: reverse the taps (channels stay in order within a tap)
    order = (np.arange(taps)[::-1, None] * c + np.arange(c)[None, :]).ravel()
    gram = gram[np.ix_(order, order)]
    cross = cross[order]
    if use_bias:
        sums = sums[order]
        gram = np.block([[np.full((1, 1), float(n_rows)), sums[None, :]], [sums[:, None], gram]])
        cross = np.concatenate([ysum[None], cross])
    return gram, cross, yty, n_rows


def input_autocorrelation(xs: Sequence[np.ndarray], taps: int, centre: bool = False) -> tuple[np.ndarray, float]:
    """``r[k] = sum_t x[t] x[t + k]``, ``k = 0..taps-1``, summed over sequences (input channel 0, by FFT), and
    ``sum max_f |X(f)|^2``, a bound on the largest eigenvalue of the Toeplitz matrix of ``r`` (which is
    ``A^T A`` for the convolution ``A`` with ``x``).  ``centre`` removes each sequence's mean first."""
    import scipy.fft

    r = np.zeros(taps)
    largest = 0.0
    for x in xs:
        v = x[:, 0] - x[:, 0].mean() if centre else x[:, 0]
        size = scipy.fft.next_fast_len(len(v) + taps, real=True)
        power = np.abs(scipy.fft.rfft(v, size, workers=fft_workers())) ** 2
        largest += float(power.max())
        r += scipy.fft.irfft(power, size, workers=fft_workers())[:taps]
    return r, largest


# ----------------------------------------------------------------------------------------------
# The choice
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class LagSelection:
    """The lags of a response chosen from the data (:func:`choose_lags`, :func:`~kernel_recovery.select_lags`).

    Attributes
    ----------
    first, last : int
        The chosen lags: the kernel covers ``first..last`` (``first < 0``: non-causal taps).
    criterion : str
        "aic" or "bic".
    starts, ends : ndarray of int
        The candidate first lags (each scored with the end fixed at the window's end) and last lags (each scored
        with the start fixed at the window's start).
    start_scores, end_scores : ndarray of float
        Their criteria (lower is better; ``inf`` where not resolved).
    start_of_response, end_of_response : int or None
        The first and last lag whose coefficient leaves its confidence band (``BAND_Z`` standard errors) in the
        scan's fit that ends (starts) there; None where no lag does.
    onset, peak : int
        The seed: the first lag where the prewhitened cross-correlation leaves its null band, and the lag of its
        largest magnitude.
    window : tuple of int
        The lags of the final scans, ``(lo, hi)``.
    noise_std : float
        The residual standard deviation of the window's fit.
    n_samples : int
        Residuals the criteria count (output samples times output channels).
    notes, warnings : tuple of str
        How the window was found; where the search limits cut the response (issued as
        :class:`~kernel_recovery.KernelSizeWarning` by :meth:`warn`).
    non_causal : str or None
        The message when the response is significant at negative lags (issued as
        :class:`~kernel_recovery.NonCausalWarning`).
    result : KernelResult or None
        The fit with the chosen lags (:func:`~kernel_recovery.select_lags` fills it).
    """

    first: int
    last: int
    criterion: str
    starts: np.ndarray
    start_scores: np.ndarray
    ends: np.ndarray
    end_scores: np.ndarray
    start_of_response: int | None
    end_of_response: int | None
    onset: int
    peak: int
    window: tuple[int, int]
    noise_std: float
    n_samples: int
    notes: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    non_causal: str | None = None
    result: KernelResult | None = field(default=None, repr=False)

    @property
    def lags(self) -> tuple[int, int]:
        """``(first, last)``, as ``recover_kernel(..., lags=...)`` takes it."""
        return (self.first, self.last)

    @property
    def delay(self) -> int:
        """The bulk delay: the chosen first lag."""
        return self.first

    @property
    def length(self) -> int:
        """Taps of the chosen kernel, ``last - first + 1``."""
        return self.last - self.first + 1

    @property
    def candidates(self) -> tuple[np.ndarray, np.ndarray]:
        """``(starts, ends)``."""
        return (self.starts, self.ends)

    @property
    def scores(self) -> tuple[np.ndarray, np.ndarray]:
        """``(start_scores, end_scores)``."""
        return (self.start_scores, self.end_scores)

    def warn(self, stacklevel: int = 2, non_causal: bool = True) -> None:
        """Issue ``warnings`` as :class:`~kernel_recovery.KernelSizeWarning` and, with ``non_causal``, the
        ``non_causal`` message as :class:`~kernel_recovery.NonCausalWarning` (a fit with the chosen lags says that
        one itself)."""
        import warnings as _warnings

        from ..exceptions import KernelSizeWarning, NonCausalWarning

        for message in self.warnings:
            _warnings.warn(message, KernelSizeWarning, stacklevel=stacklevel + 1)
        if non_causal and self.non_causal is not None:
            _warnings.warn(self.non_causal, NonCausalWarning, stacklevel=stacklevel + 1)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable summary (scores: ``None`` for ``inf``)."""

        def scores(a: np.ndarray) -> list[float | None]:
            return [float(s) if np.isfinite(s) else None for s in a]

        return {
            "first": self.first,
            "last": self.last,
            "delay": self.delay,
            "length": self.length,
            "criterion": self.criterion,
            "starts": [int(s) for s in self.starts],
            "start_scores": scores(self.start_scores),
            "ends": [int(e) for e in self.ends],
            "end_scores": scores(self.end_scores),
            "start_of_response": self.start_of_response,
            "end_of_response": self.end_of_response,
            "onset": self.onset,
            "peak": self.peak,
            "window": list(self.window),
            "noise_std": float(self.noise_std),
            "n_samples": self.n_samples,
            "notes": list(self.notes),
            "warnings": list(self.warnings),
            "non_causal": self.non_causal,
        }

    def __str__(self) -> str:
        name = {"aic": "AIC", "bic": "BIC"}[self.criterion]
        lines = [
            f"lags selected by {name}: first={self.first}, last={self.last} ({self.length} taps)",
            f"  seed (prewhitened cross-correlation): onset {self.onset}, peak {self.peak}",
            f"  response leaves its {BAND_Z:g}-sigma band from lag {self.start_of_response} to {self.end_of_response}",
            f"  scanned window: lags {self.window[0]}..{self.window[1]}; noise std {self.noise_std:.4g}",
        ]
        lines.extend(f"  note: {n}" for n in self.notes)
        lines.extend(f"  warning: {w}" for w in self.warnings + ((self.non_causal,) if self.non_causal else ()))
        return "\n".join(lines)

    def __repr__(self) -> str:  # the scores are arrays of every candidate: their counts only
        warned = len(self.warnings) + int(self.non_causal is not None)
        return (
            f"LagSelection(first={self.first}, last={self.last}, length={self.length}, criterion={self.criterion!r}, "
            f"onset={self.onset}, peak={self.peak}, window={self.window}, noise_std={self.noise_std:.4g}, "
            f"candidates=({len(self.starts)}, {len(self.ends)}), warnings={warned})"
        )


def _window_fit(
    xs: Sequence[np.ndarray], ys: Sequence[np.ndarray], lo: int, hi: int, use_bias: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """The least-squares kernel over lags ``lo..hi`` (ascending, ``(taps, C, O)``) and bias, without factoring:
    Toeplitz CG by FFT for one input channel (as ``method="lstsq"`` does for long kernels), else the Gram."""
    from ..model.problem import build_problem
    from ..model.toeplitz import ToeplitzGram, pcg

    taps = hi - lo + 1
    c, o = xs[0].shape[1], ys[0].shape[1]
    if c > 1 or taps < 64:
        gram, cross, yty, n_rows = window_statistics(xs, ys, lo, hi, use_bias)
        coef = np.linalg.lstsq(gram, cross, rcond=None)[0]
        b = int(use_bias)
        return coef[b:].reshape(taps, c, o), (coef[0] if use_bias else None)
    block = build_problem([_shifted(x, lo, hi) for x in xs], list(ys), taps).blocks[0]
    op = ToeplitzGram(block, use_bias, 0.0)
    rhs = op.cross - (np.outer(op.sums, op.ysum) / op.n_rows if use_bias else 0.0)
    kernel = np.zeros((taps, 1, o))
    bias = np.zeros(o) if use_bias else None
    for k in range(o):
        w, _ = pcg(op, rhs[:, k], 1e-10, 10 * taps)
        kernel[:, 0, k] = w[::-1]  # canonical tap j is lag hi - j
        if bias is not None:
            bias[k] = (op.ysum[k] - op.sums @ w) / op.n_rows
    return kernel, bias


def _band_threshold(df: int) -> float:
    """The chi-square level of ``df`` coefficients that matches a two-sided ``BAND_Z`` band for one."""
    import scipy.special

    tail = 2.0 * float(scipy.special.ndtr(-BAND_Z))
    return float(scipy.special.chdtri(df, tail))


def _residuals(xs: Sequence[np.ndarray], ys: Sequence[np.ndarray], coef: np.ndarray, lo: int, bias) -> list[np.ndarray]:
    """``y - sum_l h[l] x[t - l]`` per sequence for a kernel ``coef`` ``(taps, C, O)`` from lag ``lo``."""
    import scipy.signal

    out = []
    taps = len(coef)
    for x, y in zip(xs, ys):
        n = len(x)
        pred = np.zeros_like(y)
        for ch in range(x.shape[1]):
            full = scipy.signal.fftconvolve(x[:, ch, None], coef[:, ch, :], axes=0)  # index t' = t - lo
            # pred[t] = full[t - lo] for 0 <= t - lo < n + taps - 1
            a, b = max(lo, 0), min(n, n + taps - 1 + lo)
            if b > a:
                pred[a:b] += full[a - lo : b - lo]
        if bias is not None:
            pred += bias
        out.append(y - pred)
    return out


def _check_sequences(xs: Sequence[np.ndarray], ys: Sequence[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    xs = [np.asarray(x, dtype=float) for x in xs]
    ys = [np.asarray(y, dtype=float) for y in ys]
    xs = [x[:, None] if x.ndim == 1 else x for x in xs]
    ys = [y[:, None] if y.ndim == 1 else y for y in ys]
    if not xs or len(xs) != len(ys):
        raise ValueError(f"`xs` and `ys` must hold the same number (>= 1) of sequences, got {len(xs)} and {len(ys)}.")
    for i, (x, y) in enumerate(zip(xs, ys)):
        if x.ndim != 2 or y.ndim != 2 or len(x) != len(y):
            raise ValueError(
                f"sequence {i}: `x` {x.shape} and `y` {y.shape} must be (length, channels) arrays of one length "
                "(y on x's time axis)."
            )
        if x.shape[1] != xs[0].shape[1] or y.shape[1] != ys[0].shape[1]:
            raise ValueError(f"sequence {i} has other channel counts than sequence 0.")
    return xs, ys


def choose_lags(
    xs: Sequence[np.ndarray],
    ys: Sequence[np.ndarray],
    *,
    max_length: int | None = None,
    max_delay: int | None = None,
    criterion: Criterion = "bic",
    use_bias: bool = False,
) -> LagSelection:
    """Choose the lags ``(first, last)`` of a response from inputs and outputs on one time axis.

    Parameters
    ----------
    xs, ys : sequence of ndarray, shapes (n_i, C) and (n_i, O)
        Per sequence, the inputs and the outputs on the same time axis (``x`` zero before its start).
    max_length : int, optional
        Most taps the response may have (default: ``min(MAX_WINDOW, n // 8)``, ``n`` the samples of all
        sequences).
    max_delay : int, optional
        Largest ``|first|`` searched, positive (a delay) or negative (a response that leads the input); default:
        a quarter of the shortest sequence.
    criterion : {"aic", "bic"}
        As in :func:`~kernel_recovery.select_kernel_size`.
    use_bias : bool
        Fit a bias per output channel too.

    Returns
    -------
    LagSelection
        The chosen ``first`` and ``last``, every candidate's score, the seed, the end of the response and the
        warnings to issue (:meth:`LagSelection.warn`); ``result`` is None.

    Raises
    ------
    ValueError
        No lag where ``y`` correlates with ``x`` above the noise, or data too short for the search.

    Notes
    -----
    See the module docstring.  Cost: FFT correlations over the ``n + max_delay`` lags and, per round, a fit of
    the window (``T`` lags, ``P = T C`` columns); then the Gram of the final window and one Cholesky
    factorization, ``O(P^3 / 3)``, plus ``O(P^2 q)`` for ``q`` start candidates, or, with one input channel and
    ``T >= STRUCTURED_FROM``, two generalized Schur scans, ``O(T^2 (O + 4))`` each in ``T`` steps of BLAS level-1
    calls; no lag is fitted on its own.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal(4000)
    >>> h = np.zeros(40)
    >>> h[25:40] = rng.standard_normal(15)  # a 15-tap response delayed by 25 samples
    >>> y = np.convolve(x, h)[:4000] + 0.01 * rng.standard_normal(4000)
    >>> choice = choose_lags([x[:, None]], [y[:, None]])
    >>> choice.lags
    (25, 39)
    """
    xs, ys = _check_sequences(xs, ys)
    name = check_choice(criterion, "criterion", ("aic", "bic"))
    max_length, max_delay = _check_limits(xs, ys, max_length, max_delay)
    seed = _seed(xs, ys, max_length, max_delay)
    notes = [seed.note]
    lo, hi, sig_lo, fitted = _window(xs, ys, seed, max_length, use_bias, notes)
    scan = _structured_window_scan(xs, ys, lo, hi, use_bias) if xs[0].shape[1] == 1 else None
    if scan is None and xs[0].shape[1] == 1 and hi - lo + 1 > SMALL_WINDOW:
        scan = _levinson_window_scan(xs, ys, lo, hi, use_bias, fitted, notes)
    elif scan is None:
        scan = _cholesky_window_scan(xs, ys, lo, hi, use_bias, notes)
    hi = scan.hi
    scores = _scores(scan, xs[0].shape[1], ys[0].shape[1], use_bias, name, min(hi, max(sig_lo, lo) + seed.margin))
    first = int(scores.starts[np.argmin(scores.start_scores)])
    last = max(int(scores.ends[np.argmin(scores.end_scores)]), first)
    start_of_response, end_of_response = scores.response(_band_threshold(xs[0].shape[1] * ys[0].shape[1]))
    guard = max(2, seed.margin // 4)
    warn: list[str] = []
    if (last >= hi - guard or (end_of_response is not None and end_of_response >= hi - guard)) and (
        hi >= min(lo + max_length - 1, seed.search[1])
    ):
        warn.append(
            f"the response is cut at the end: it is still significant at lag {max(last, end_of_response or last)}, the "
            f"end of the search (max_length={max_length}); pass a larger max_length (or more data) to see the end."
        )
    if first <= lo + guard and lo <= seed.search[0]:
        warn.append(
            f"the response is cut at the start: it is significant at lag {first}, the start of the search "
            f"(max_delay={max_delay}); pass a larger max_delay."
        )
    return LagSelection(
        first=first,
        last=last,
        criterion=name,
        starts=scores.starts,
        start_scores=scores.start_scores,
        ends=scores.ends,
        end_scores=scores.end_scores,
        start_of_response=start_of_response,
        end_of_response=end_of_response,
        onset=seed.onset,
        peak=seed.peak,
        window=(lo, hi),
        noise_std=math.sqrt(scores.sigma2),
        n_samples=int(scores.n_samples),
        notes=tuple(notes),
        warnings=tuple(warn),
        non_causal=_non_causal_message(start_of_response),
    )


def _check_limits(
    xs: list[np.ndarray], ys: list[np.ndarray], max_length: int | None, max_delay: int | None
) -> tuple[int, int]:
    """``max_length`` and ``max_delay`` checked, or their defaults for these records; records long enough."""
    c, o = xs[0].shape[1], ys[0].shape[1]
    n_total = sum(len(x) for x in xs)
    n_min = min(len(x) for x in xs)
    max_length = max(min(MAX_WINDOW, n_total // 8), 1) if max_length is None else max_length
    max_delay = n_min // 4 if max_delay is None else max_delay
    max_length, max_delay = check_int(max_length, "max_length", 1), check_int(max_delay, "max_delay", 0)
    if n_min < 2 * AR_ORDER or n_total < 4 * (c + 1) * o:
        raise ValueError(f"the lag search needs longer records: the shortest has {n_min} samples.")
    return max_length, max_delay


@dataclass(frozen=True)
class _Seed:
    """Where the prewhitened cross-correlation leaves its null band: the lags to start the window from."""

    order: int  # of the AR prewhitening filters
    filters: list[np.ndarray]  # per input channel
    search: tuple[int, int]  # the lags searched
    threshold: float  # the null band
    onset: int  # the first significant lag
    last: int  # the last significant lag
    peak: int  # the lag of the largest correlation
    whitened: dict  # the whitened inputs' spectra, shared by the seed and the residual checks

    @property
    def margin(self) -> int:
        """Lags the window reaches past the significant ones."""
        return max(2 * self.order, 32)

    @property
    def note(self) -> str:
        return (
            f"seed: prewhitened (AR({self.order})) cross-correlation leaves its null band ({self.threshold:.3g}) from "
            f"lag {self.onset} to {self.last}; peak at lag {self.peak}."
        )


def _seed(xs: list[np.ndarray], ys: list[np.ndarray], max_length: int, max_delay: int) -> _Seed:
    """Step 1: prewhiten, correlate at every lag of the search, and find the lags outside the null band."""
    c, o = xs[0].shape[1], ys[0].shape[1]
    order = min(AR_ORDER, min(len(x) for x in xs) // 8)
    filters = list(whitening_filters([x - x.mean(axis=0) for x in xs], order).T)  # per input channel
    search = (-max_delay, max_delay + max_length - 1)
    whitened: dict = {}
    corr, n = whitened_correlation(xs, ys, filters, *search, cache=whitened)
    threshold = null_threshold(n, len(corr) * c * o)
    sig = significant_lags(corr, search[0], threshold)
    if len(sig) == 0:
        raise ValueError(
            f"`y` does not correlate with `x` above the noise at any lag in {search[0]}..{search[1]} (prewhitened "
            f"cross-correlation below {threshold:.3g}): no response to locate; check that y responds to x, or widen "
            "`max_delay` / `max_length`."
        )
    flat = np.abs(corr.reshape(len(corr), -1)).max(axis=1)
    peak = int(search[0] + np.argmax(flat))
    return _Seed(order, filters, search, threshold, int(sig[0]), int(sig[-1]), peak, whitened)


#: A window's least-squares fit: ``(lo, hi, kernel (taps, C, O), residuals per sequence)``.
_Fitted = tuple[int, int, np.ndarray, list[np.ndarray]]


def _window(
    xs: list[np.ndarray], ys: list[np.ndarray], seed: _Seed, max_length: int, use_bias: bool, notes: list[str]
) -> tuple[int, int, int, _Fitted | None]:
    """Step 3: the window ``(lo, hi)`` around the significant lags, widened while the residual of its fit still
    correlates with ``x`` outside it (a note each time); also the first significant lag and the last fit."""
    search, margin = seed.search, seed.margin
    sig_lo, sig_hi = seed.onset, seed.last
    fitted: _Fitted | None = None
    for round_ in range(ROUNDS):
        lo = max(sig_lo - margin, search[0])
        hi = max(min(sig_hi + max(margin, (sig_hi - sig_lo + 1) // 8), lo + max_length - 1, search[1]), lo)
        if round_ == ROUNDS - 1:
            break
        # the residual of the window's fit, correlated with x at every lag: least-squares sensitivity outside it
        kernel, bias = _window_fit(xs, ys, lo, hi, use_bias)
        residuals = _residuals(xs, ys, kernel, lo, bias)
        fitted = (lo, hi, kernel, residuals)
        rcorr, _ = whitened_correlation(xs, residuals, seed.filters, *search, cache=seed.whitened)
        rsig = significant_lags(rcorr, search[0], seed.threshold)
        outside = rsig[((rsig < lo) & (lo > search[0])) | ((rsig > hi) & (hi < min(lo + max_length - 1, search[1])))]
        if not len(outside):
            break
        notes.append(
            f"round {round_ + 1}: the residual of the fit over lags {lo}..{hi} correlates with x at lags "
            f"{int(outside.min())}..{int(outside.max())}: window widened."
        )
        sig_lo, sig_hi = min(sig_lo, int(outside.min())), max(sig_hi, int(outside.max()))
    return lo, hi, sig_lo, fitted


@dataclass(frozen=True)
class _WindowScan:
    """Step 2's residuals over the window ``lo..hi`` (``hi`` cut back to the last lag the input resolves)."""

    lo: int
    hi: int
    prefix_rss: np.ndarray  # [k]: the fit on lags lo..lo+k-1, k = 0..taps
    n_rows: int
    suffix_rss: np.ndarray | None = None  # [i]: the fit on lags lo+i..hi (the Levinson scan)
    fit: PrefixFit | None = None  # the Cholesky scan's factor, for the starts

    def start_rss(self, q: int, use_bias: bool, channels: int) -> np.ndarray:
        """The residual of the fits on ``s..hi`` for ``s = lo..lo+q-1``."""
        if self.suffix_rss is not None:
            return self.suffix_rss[:q]
        assert self.fit is not None  # the Cholesky scan keeps its factor
        b = int(use_bias)
        return dropped_rss(self.fit, np.arange(b, b + (q - 1) * channels))[::channels]  # k = 0..q-1 lags dropped


def _unresolved(lo: int, hi: int, resolved: int, notes: list[str]) -> int:
    """The window's end cut back to the ``resolved`` lags the input resolves (a note), or an error for none."""
    if resolved < 1:
        raise ValueError(f"the design over lags {lo}..{hi} is rank deficient from its first lag: x does not excite it.")
    notes.append(
        f"the input does not resolve lags past {lo + resolved - 1} in the window {lo}..{hi}: scanned up to there."
    )
    return lo + resolved - 1


def _levinson_window_scan(
    xs: list[np.ndarray],
    ys: list[np.ndarray],
    lo: int,
    hi: int,
    use_bias: bool,
    fitted: _Fitted | None,
    notes: list[str],
) -> _WindowScan:
    """One input channel, a long window: its exact fit (Toeplitz CG), then Levinson for every prefix and suffix."""
    n_rows = sum(len(x) for x in xs)
    r, largest = input_autocorrelation(xs, hi - lo + 1, centre=use_bias)
    for _ in range(2):  # a second pass only where Levinson stopped short of the window's end
        if fitted is None or fitted[:2] != (lo, hi):
            kernel, bias = _window_fit(xs, ys, lo, hi, use_bias)
            fitted = (lo, hi, kernel, _residuals(xs, ys, kernel, lo, bias))
        full_rss = float(sum(np.sum(e * e) for e in fitted[3]))
        scan = toeplitz_window_scan(r, largest, fitted[2][:, 0, :], full_rss, n_rows)
        if scan.rank == hi - lo + 1:
            break
        hi = _unresolved(lo, hi, scan.rank, notes)
    return _WindowScan(lo, hi, scan.end_rss, n_rows, suffix_rss=scan.start_rss[::-1][:-1])


def _structured_window_scan(
    xs: list[np.ndarray], ys: list[np.ndarray], lo: int, hi: int, use_bias: bool
) -> _WindowScan | None:
    """One input channel, from ``STRUCTURED_FROM`` lags: every end and every start exactly, in ``O(T^2)`` each.

    On the canonical axis (:func:`_shifted`) tap ``j`` is lag ``hi - j``, so the fits on ``s..hi`` are the prefixes
    of the canonical taps, and the fits on ``lo..e`` those of the time-reversed sequences (row ``t`` of one is row
    ``n - 1 - t`` of the other, its taps reversed); both from the convolution's structure
    (:func:`~kernel_recovery.diagnostics.nested.convolution_prefix_fit`).  None where that scan declines (a
    deficient or ill-conditioned window, many sequences): the Levinson or Cholesky scan then.
    """
    taps = hi - lo + 1
    if taps < STRUCTURED_FROM:
        return None
    shifted = [_shifted(x, lo, hi) for x in xs]
    b = int(use_bias)
    starts = convolution_prefix_fit(shifted, list(ys), taps, use_bias)
    if starts is None:
        return None
    ends = convolution_prefix_fit([x[::-1] for x in shifted], [y[::-1] for y in ys], taps, use_bias)
    if ends is None:
        return None
    n_rows = sum(len(y) for y in ys)
    return _WindowScan(lo, hi, ends.rss[b:], n_rows, suffix_rss=starts.rss[b:][::-1][:-1])


def _cholesky_window_scan(
    xs: list[np.ndarray], ys: list[np.ndarray], lo: int, hi: int, use_bias: bool, notes: list[str]
) -> _WindowScan:
    """The window's Gram and one Cholesky factorization: every prefix, and the starts by dropping lags."""
    c, b = xs[0].shape[1], int(use_bias)
    gram, cross, yty, n_rows = window_statistics(xs, ys, lo, hi, use_bias)
    fit = prefix_fit(gram, cross, yty, n_rows)
    taps_ok = max((fit.rank - b) // c, 0)
    if taps_ok < hi - lo + 1:
        hi = _unresolved(lo, hi, taps_ok, notes)
    prefix_rss = fit.rss[b + np.arange(hi - lo + 2) * c]  # the prefixes lo..lo+k-1, k = 0..taps
    return _WindowScan(lo, hi, prefix_rss, n_rows, fit=fit)


@dataclass(frozen=True)
class _Scores:
    """The criteria of every end (start fixed at ``lo``) and every start (end fixed at ``hi``), and the gain of
    the newest lag of each, in units of the noise variance ``sigma2``."""

    ends: np.ndarray
    end_scores: np.ndarray
    gain_end: np.ndarray
    starts: np.ndarray
    start_scores: np.ndarray
    gain_start: np.ndarray
    sigma2: float
    n_samples: int

    def response(self, band: float) -> tuple[int | None, int | None]:
        """The first start and the last end whose newest coefficient's gain exceeds ``band`` (None where none)."""
        hit_start = np.flatnonzero(self.gain_start > band)
        hit_end = np.flatnonzero(self.gain_end > band)
        start = int(self.starts[hit_start[0]]) if len(hit_start) else None
        end = int(self.ends[hit_end[-1]]) if len(hit_end) else None
        return start, end


def _scores(scan: _WindowScan, c: int, o: int, use_bias: bool, criterion: str, s_max: int) -> _Scores:
    """Score the ends ``lo..hi`` and the starts ``lo..s_max`` of the scanned window."""
    lo, hi, prefix_rss, b = scan.lo, scan.hi, scan.prefix_rss, int(use_bias)
    full_rss = float(prefix_rss[-1])
    full_cols = b + (hi - lo + 1) * c
    n_samples = scan.n_rows * o
    sigma2 = max(full_rss / max(n_samples - full_cols * o, 1), np.finfo(float).tiny)
    taps = hi - lo + 1
    # ends: prefixes lo..e
    ends = np.arange(lo, hi + 1)
    k_end = (np.arange(1, taps + 1) * c + b) * o
    end_scores = information_criterion(prefix_rss[1:], k_end, n_samples, criterion)
    gain_end = (prefix_rss[:-1] - prefix_rss[1:]) / sigma2
    # starts: lo..hi less lo..s-1, for s up to a margin past the last sign of the onset
    start_rss = scan.start_rss(s_max - lo + 1, use_bias, c)
    starts = np.arange(lo, lo + len(start_rss))
    k_start = ((hi - starts + 1) * c + b) * o
    start_scores = information_criterion(start_rss, k_start, n_samples, criterion)
    gain_start = (start_rss[1:] - start_rss[:-1]) / sigma2  # the coefficient of lag s in the fit s..hi
    return _Scores(ends, end_scores, gain_end, starts, start_scores, gain_start, sigma2, n_samples)


def _non_causal_message(start_of_response: int | None) -> str | None:
    if start_of_response is None or start_of_response >= 0:
        return None
    return (
        f"the response is significant at negative lags (from lag {start_of_response}): the output moves before the "
        "input. Feedback from y to x, or an input recorded late (misaligned with y), is likely; check the "
        "alignment, or keep the non-causal taps (lags with first < 0) if they are real."
    )


def choose_lags_for(
    x: Any,
    y: Any,
    *,
    layout: str = "nwc",
    use_bias: bool = False,
    max_length: int | None = None,
    max_delay: int | None = None,
    criterion: str = "bic",
) -> LagSelection:
    """:func:`choose_lags` on the caller's arrays (read as :func:`~kernel_recovery.recover_kernel` reads them).

    The one reading behind ``recover_kernel(..., lags="auto")`` and :func:`~kernel_recovery.select_lags`: checks
    that ``y`` is on ``x``'s time axis (same lengths), chooses, and issues the choice's warnings (a response cut
    by ``max_length`` or ``max_delay``) as :class:`~kernel_recovery.KernelSizeWarning`.  ``x`` and ``y`` may be
    sequences already read (``as_sequences``), so that the caller reads the data once for the search and the fit.
    """
    from ..model.arrays import as_sequences
    from ..model.config import check_layout
    from ..model.validation import check_bool

    if not isinstance(criterion, str) or criterion.lower() not in ("aic", "bic"):
        raise ValueError(
            f"`criterion` must be 'aic' or 'bic' for the lags, got {criterion!r} (cross-validation is offered for "
            "kernel_size only: select_kernel_size)."
        )
    layout_name = check_layout(layout)
    use_bias = check_bool(use_bias, "use_bias")
    xb = as_sequences(x, "x", layout_name)
    yb = as_sequences(y, "y", layout_name)
    if len(xb.arrays) != len(yb.arrays):
        raise ValueError(
            f"`x` and `y` must hold the same number of sequences, got {len(xb.arrays)} and {len(yb.arrays)}."
        )
    for i, (xa, ya) in enumerate(zip(xb.arrays, yb.arrays)):
        if len(xa) != len(ya):
            where = "" if len(xb.arrays) == 1 else f" (sequence {i})"
            raise ValueError(
                f"`y`{where} has {len(ya)} samples and `x` {len(xa)}: choosing the lags needs y on x's time axis "
                "(same length)."
            )
    name: Criterion = "aic" if criterion.lower() == "aic" else "bic"
    choice = choose_lags(
        xb.arrays, yb.arrays, max_length=max_length, max_delay=max_delay, criterion=name, use_bias=use_bias
    )
    choice.warn(stacklevel=3, non_causal=False)  # the fit with the chosen lags says that one, from its estimates
    return choice
