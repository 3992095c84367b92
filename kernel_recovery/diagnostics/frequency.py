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
        n = DEFAULT_FREQUENCIES if n is None else check_int(n, "n")
        f = np.linspace(0.0, fs / 2, n)
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
        freqs=f, response=response, covariance=cov, level=level, quantile=q, fs=fs, band_source=source
    )
