"""The frequency response of a recovered kernel, with pointwise bands propagated from the kernel's covariance."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

from ..model.validation import check_int, check_real

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ..model.result import KernelResult

#: Frequencies of :meth:`KernelResult.frequency_response` by default, from 0 to fs / 2 inclusive: at least this
#: many, more for long kernels (see :func:`default_frequencies`).
DEFAULT_FREQUENCIES = 512


def default_frequencies(lags: ArrayLike) -> int:
    """The default number of frequencies for a kernel at physical ``lags``: 512 while ``2 L <= 511``, else
    ``2**ceil(log2(2 L)) + 1``, ``L`` the largest ``|lag|``.

    Between neighbouring frequencies (``fs / (2 (n - 1))`` apart) the phase of the longest lag then turns by at
    most a quarter cycle, so its unwrapped phase follows the delay instead of aliasing (512 frequencies would
    turn a 4000-tap response by two cycles per step), and beyond 512 ``2 (n - 1)`` is a power of two, the length
    of the FFT that evaluates the response.

    Examples
    --------
    >>> default_frequencies([0, 1, 2]), default_frequencies(range(4000)), default_frequencies([-300, 5])
    (512, 8193, 1025)
    """
    longest = int(np.max(np.abs(np.asarray(lags)))) if np.size(lags) else 0
    if 2 * longest <= DEFAULT_FREQUENCIES - 1:
        return DEFAULT_FREQUENCIES
    return (1 << (2 * longest - 1).bit_length()) + 1


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

    def plot(
        self, *, fig: Any = None, true_response: ArrayLike | None = None, remove_delay: bool | float = False
    ) -> Figure:
        """A Bode plot (magnitude in dB and phase over frequency, with the bands; ``remove_delay``: the phase without
        a bulk delay); see :func:`kernel_recovery.plotting.plot_bode`; needs matplotlib."""
        from ..plotting import plot_bode

        return plot_bode(self, fig=fig, true_response=true_response, remove_delay=remove_delay)

    def __repr__(self) -> str:
        f = self.freqs
        span = f"{f.min():.4g}..{f.max():.4g}" if f.size else "none"
        peak = float(np.max(self.db)) if self.response.size else float("nan")
        band = f"{self.band_source} ({self.level:g})" if self.covariance is not None else "none"
        return (
            f"FrequencyResponse(n_freqs={f.size}, freqs={span}, fs={self.fs:g}, pairs={self.response.shape[1:]}, "
            f"peak_db={peak + 0.0:.3g}, band={band})"
        )


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
        Number of frequencies, evenly spaced from 0 to ``fs / 2`` inclusive (default: 512, more for a kernel
        longer than 255 lags, see :func:`default_frequencies`).
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

    level = check_real(level, "level", low=0, high=1, low_open=True, high_open=True)
    fs = check_real(fs, "fs", low=0, low_open=True)
    if freqs is not None:
        if n is not None:
            raise ValueError(f"give `n` (={n!r}) or `freqs`, not both.")
        f = np.asarray(freqs, dtype=np.float64)
        if f.ndim > 1 or not np.all(np.isfinite(f)):
            raise ValueError(f"`freqs` must be a 1-D array of finite numbers, got shape {f.shape}.")
        f = np.atleast_1d(f)
    else:
        n = default_frequencies(result.config.tap_lags()) if n is None else check_int(n, "n")
        f = np.linspace(0.0, fs / 2, n)
    kernel = np.asarray(result.kernel, dtype=np.float64)
    covs, source = _kernel_covariances(result)
    if freqs is None and len(f) > 1:  # the regular grid: FFTs, O(K^2 + F log F) instead of O(F K^2)
        response, cov = _grid_response(result.config.tap_lags(), kernel, covs, 2 * (len(f) - 1))
    else:
        response, cov = _direct_response(result.config.tap_lags(), kernel, covs, f / fs)
    dof = result.diagnostics.get("dof")
    q = float(student_t.ppf(0.5 + level / 2, dof)) if dof else float(norm.ppf(0.5 + level / 2))
    return FrequencyResponse(
        freqs=f, response=response, covariance=cov, level=level, quantile=q, fs=fs, band_source=source
    )


def _grid_response(
    tap_lags: np.ndarray, kernel: np.ndarray, covs: list[np.ndarray] | None, size: int
) -> tuple[np.ndarray, np.ndarray | None]:
    """The response and its ``(Re, Im)`` covariance at ``f / fs = j / size``, ``j = 0 .. size / 2``, by FFTs.

    ``H_j`` is the DFT of the kernel placed at its lags modulo ``size`` (exact: ``exp(-2j pi j l / size)`` has
    period ``size`` in ``l``).  For the covariance ``C`` of one channel pair's taps, ``P = a^H C a`` (the sums of
    ``C`` along its diagonals, at lag differences) and ``Q = a^T C a`` (along its anti-diagonals, at lag sums)
    give ``Var Re H = (P + Re Q) / 2``, ``Var Im H = (P - Re Q) / 2`` and ``Cov(Re H, Im H) = Im Q / 2``.
    """
    lags = np.asarray(tap_lags, dtype=np.int64)
    k_size, cin, cout = kernel.shape
    n_f = size // 2 + 1
    placed = np.zeros((size, cin, cout))
    np.add.at(placed, lags % size, kernel)
    response = np.fft.rfft(placed, axis=0)
    if covs is None:
        return response, None
    cov = np.zeros(response.shape + (2, 2))
    step = int(lags[1] - lags[0]) if k_size > 1 else 0  # the lags are an arithmetic progression
    offsets = np.arange(-(k_size - 1), k_size)
    at_difference = (step * offsets) % size  # C[i, i + q] pairs lags differing by step * q
    at_sum = (2 * lags[0] + step * (k_size - 1 - offsets)) % size  # anti-diagonal o: index sum k_size - 1 - o
    for o, c_o in enumerate(covs):
        c4 = c_o.reshape(k_size, cin, k_size, cin)
        for c in range(cin):
            block = c4[:, c, :, c]
            diagonals = np.zeros(size)
            anti = np.zeros(size)
            np.add.at(diagonals, at_difference, [np.trace(block, q) for q in offsets])
            np.add.at(anti, at_sum, [np.trace(block[:, ::-1], q) for q in offsets])
            p = np.fft.rfft(diagonals).real  # real: the diagonal sums are symmetric in the lag difference
            qq = np.fft.fft(anti)[:n_f]
            cov[:, c, o, 0, 0] = (p + qq.real) / 2
            cov[:, c, o, 1, 1] = (p - qq.real) / 2
            cov[:, c, o, 0, 1] = cov[:, c, o, 1, 0] = qq.imag / 2
    return response, cov


def _direct_response(
    tap_lags: np.ndarray, kernel: np.ndarray, covs: list[np.ndarray] | None, f: np.ndarray
) -> tuple[np.ndarray, np.ndarray | None]:
    """The response and its ``(Re, Im)`` covariance at any frequencies ``f`` (in cycles per sample), summed."""
    lags = np.asarray(tap_lags, dtype=np.float64)
    phasor = np.exp(-2j * np.pi * np.outer(f, lags))  # (F, K)
    response = np.einsum("fk,kco->fco", phasor, kernel)
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
    return response, cov
