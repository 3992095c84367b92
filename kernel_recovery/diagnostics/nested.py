"""Nested least squares: the residual of every leading (and trailing) set of columns from one factorization.

:func:`prefix_fit` factors a Gram once (Cholesky) and reads off the residual of every prefix of its columns;
:func:`dropped_rss` the residual of the full fit less each leading set of columns.  For a symmetric Toeplitz
Gram, :func:`levinson_scan` gives every prefix and every suffix in ``O(T^2)`` (:func:`toeplitz_window_scan` from
a window's exact fit).  :func:`information_criterion` scores them.  Shared by the lag search
(:mod:`.lagsearch`) and :func:`~kernel_recovery.select_kernel_size`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..model.spectrum import rank_tolerance
from ..model.threads import SerialBLAS


def information_criterion(
    rss: np.ndarray | float, n_params: np.ndarray | int, n_samples: int, criterion: str, floor: float = 0.0
) -> np.ndarray:
    """``n log(RSS / n) + 2 k`` (``"aic"``) or ``n log(RSS / n) + k log n`` (``"bic"``), the noise variance profiled.

    ``n`` residuals, ``k`` coefficients; the RSS is floored at ``floor`` (an exact fit scores finitely).  The one
    formula of :func:`~kernel_recovery.selection.select_kernel_size` and
    :func:`~kernel_recovery.diagnostics.lagsearch.choose_lags`.

    Examples
    --------
    >>> bool(np.isclose(information_criterion(1.0, 2, 10, "aic"), 10 * np.log(0.1) + 4))
    True
    """
    r = np.maximum(np.asarray(rss, dtype=float), max(floor, np.finfo(float).tiny))
    k = np.asarray(n_params, dtype=float)
    if criterion == "aic":
        penalty = 2.0 * k
    elif criterion == "bic":
        penalty = k * np.log(n_samples)
    else:
        raise ValueError(f"`criterion` must be 'aic' or 'bic', got {criterion!r}.")
    return n_samples * np.log(r / n_samples) + penalty


# ----------------------------------------------------------------------------------------------
# Nested least squares: one factorization, every prefix
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PrefixFit:
    """The Cholesky factor of the leading ``rank`` columns of a Gram and ``z = L^-1 c``.

    ``rss[k]`` (``k = 0..rank``) is the residual, summed over output channels, of the fit on the first ``k``
    columns; columns from ``rank`` on are not resolved (a pivot at or below the rank tolerance).
    """

    factor: np.ndarray  # (rank, rank), lower
    z: np.ndarray  # (rank, O)
    rss: np.ndarray  # (rank + 1,)
    rank: int

    def coefficients(self, k: int | None = None) -> np.ndarray:
        """The least-squares coefficients of the first ``k`` columns (default: all resolved), ``(k, O)``."""
        import scipy.linalg

        k = self.rank if k is None else k
        return scipy.linalg.solve_triangular(self.factor[:k, :k], self.z[:k], lower=True, trans="T")


def _largest_eigenvalue(gram: np.ndarray, steps: int = 12) -> float:
    """A power-iteration estimate of the Gram's largest eigenvalue (its scale, for the rank tolerance)."""
    v = np.ones(len(gram)) / math.sqrt(len(gram))
    lam = 0.0
    for _ in range(steps):
        w = gram @ v
        lam = float(v @ w)
        norm = float(np.linalg.norm(w))
        if norm == 0.0:
            return 0.0
        v = w / norm
    return max(lam, float(np.max(np.diag(gram))))


def prefix_fit(gram: np.ndarray, cross: np.ndarray, yty: np.ndarray | float, n_rows: int) -> PrefixFit:
    """Least squares on every leading set of columns of one Gram, from one Cholesky factorization.

    Parameters
    ----------
    gram : ndarray, shape (P, P)
        ``A^T A`` with the columns in the order they are added.
    cross : ndarray, shape (P, O)
        ``A^T Y``.
    yty : float or ndarray, shape (O,)
        ``Y^T Y`` per output channel.
    n_rows : int
        Rows of ``A`` (for the rank tolerance).

    Returns
    -------
    PrefixFit

    Notes
    -----
    With ``A^T A = L L^T`` and ``z = L^-1 A^T y``, the fit on the first ``k`` columns leaves
    ``RSS_k = y^T y - ||z[:k]||^2``.  The pivot ``L[k, k]`` is the distance of column ``k`` from the span of the
    earlier ones; the scan stops at the first pivot at or below :func:`rank_tolerance` (``"gram"``) of the
    Gram's scale, since every longer prefix is then rank deficient too.

    Examples
    --------
    >>> a = np.array([[1.0, 0.0], [1.0, 1.0], [1.0, 2.0]])
    >>> y = np.array([[1.0], [2.0], [2.0]])
    >>> fit = prefix_fit(a.T @ a, a.T @ y, (y**2).sum(axis=0), 3)
    >>> fit.rss.round(4).tolist()  # nothing, the mean, the line
    [9.0, 0.6667, 0.1667]
    """
    import scipy.linalg
    import scipy.linalg.lapack

    gram = np.asarray(gram, dtype=float)
    cross = np.asarray(cross, dtype=float).reshape(len(gram), -1)
    p = len(gram)
    total = float(np.sum(yty))
    if p == 0:
        return PrefixFit(np.zeros((0, 0)), np.zeros((0, cross.shape[1])), np.array([total]), 0)
    try:
        factor, usable = np.linalg.cholesky(gram), p
    except np.linalg.LinAlgError:  # not positive definite: LAPACK says where the factorization stopped
        factor, info = scipy.linalg.lapack.dpotrf(gram, lower=1, clean=1)
        usable = p if info == 0 else max(int(info) - 1, 0)
    scale = math.sqrt(max(_largest_eigenvalue(gram), 0.0))
    tol = rank_tolerance(scale, n_rows, p, "gram")
    pivots = np.abs(np.diag(factor)[:usable])
    small = np.flatnonzero(~(pivots > tol))
    rank = int(small[0]) if len(small) else usable
    factor = np.ascontiguousarray(factor[:rank, :rank])
    z = scipy.linalg.solve_triangular(factor, cross[:rank], lower=True) if rank else np.zeros((0, cross.shape[1]))
    rss = total - np.concatenate([[0.0], np.cumsum(np.sum(z**2, axis=1))])
    return PrefixFit(factor, z, rss, rank)


def dropped_rss(fit: PrefixFit, columns: np.ndarray) -> np.ndarray:
    """The residual of the full fit less each leading set of ``columns``: ``[RSS without columns[:k]]``, ``k = 0..q``.

    ``columns`` index the resolved columns of ``fit`` (``q`` of them, dropped in that order).  Dropping ``D``
    from a least-squares fit with coefficients ``w`` adds ``w_D^T ((G^-1)_DD)^-1 w_D`` to its residual (per
    output channel); ``(G^-1)_DD`` comes from ``2 q`` triangular solves with the factor, and the nested forms
    for every leading subset of ``D`` from one small Cholesky factorization of it.
    """
    import scipy.linalg

    columns = np.asarray(columns, dtype=int)
    q = len(columns)
    base = float(fit.rss[fit.rank])
    if q == 0:
        return np.array([base])
    w = fit.coefficients()[columns]  # (q, O)
    unit = np.zeros((fit.rank, q))
    unit[columns, np.arange(q)] = 1.0
    inv_cols = scipy.linalg.solve_triangular(
        fit.factor, scipy.linalg.solve_triangular(fit.factor, unit, lower=True), lower=True, trans="T"
    )
    block = inv_cols[columns]  # (G^-1)_DD
    with SerialBLAS():  # a small factorization: threads cost more than they give
        chol = np.linalg.cholesky(0.5 * (block + block.T))
        u = scipy.linalg.solve_triangular(chol, w, lower=True)
    return base + np.concatenate([[0.0], np.cumsum(np.sum(u**2, axis=1))])


# ----------------------------------------------------------------------------------------------
# A symmetric Toeplitz Gram: Levinson, every prefix and suffix in O(T^2)
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ToeplitzScan:
    """Least squares on every leading and every trailing set of lags under a symmetric Toeplitz Gram.

    ``end_rss[k]`` (``k = 0..rank``) is ``y'y - b_k^T R_k^-1 b_k`` for the first ``k`` lags (summed over output
    channels), ``start_rss[k]`` the same for the last ``k``.  Orders from ``rank`` on are not resolved (a
    prediction-error power at or below the tolerance).
    """

    end_rss: np.ndarray  # (rank + 1,)
    start_rss: np.ndarray  # (rank + 1,)
    rank: int


def levinson_scan(r: np.ndarray, cross: np.ndarray, yty: np.ndarray | float, tol: float = 0.0) -> ToeplitzScan:
    """Every prefix and every suffix fit under the symmetric Toeplitz Gram ``R[i, j] = r[|i - j|]``.

    Parameters
    ----------
    r : ndarray, shape (T,)
        The autocorrelation of the input at lags ``0..T-1``.
    cross : ndarray, shape (T,) or (T, O)
        The right-hand sides ``b`` (cross-correlations of the outputs with the input at the window's lags,
        ascending).
    yty : float or ndarray, shape (O,)
        ``y'y`` per output channel.
    tol : float
        The scan stops at the first order whose prediction-error power is at or below ``tol`` (a squared pivot
        of the Toeplitz matrix's Cholesky factor).

    Returns
    -------
    ToeplitzScan

    Notes
    -----
    Levinson's recursion (Golub & Van Loan, Alg. 4.7.2) with the predictor ``a^(k)`` (``R_k a = r[1:k+1]``) and
    error power ``E_k = r_0 - r[1:k+1] . a^(k)``: adding lag ``k`` to the fit on the first ``k`` lowers the
    residual by ``(b_k - a^(k) . b[k-1::-1])^2 / E_k``, which needs neither the solution nor a factor.  ``R`` is
    persymmetric, so the suffix fits are the same recursion with ``b`` reversed; both ride on one predictor.
    ``O(T^2 (O + 1))`` flops, ``T`` numpy steps.

    Examples
    --------
    >>> r = np.array([2.0, 1.0])
    >>> scan = levinson_scan(r, np.array([1.0, 1.0]), 1.0)
    >>> scan.end_rss.round(4).tolist(), scan.start_rss.round(4).tolist()
    ([1.0, 0.5, 0.3333], [1.0, 0.5, 0.3333])
    """
    r = np.asarray(r, dtype=float)
    b = np.asarray(cross, dtype=float).reshape(len(r), -1)
    t, o = b.shape
    total = float(np.sum(yty))
    # one right-hand side matrix: [r[j + 1], b[j], b reversed[j]], stored reversed so each step reads a block
    w = np.zeros((t, 2 * o + 1))
    w[: t - 1, 0] = r[1:t]
    w[:, 1 : o + 1] = b
    w[:, o + 1 :] = b[::-1]
    w_rev = np.ascontiguousarray(w[::-1])
    a = np.zeros(max(t, 1))
    gains = np.zeros((t, 2 * o))
    error = float(r[0]) if t else 0.0
    rank, kappa = 0, 0.0
    if t and error > tol:
        gains[0] = w[0, 1:] ** 2 / error
        kappa = float(w[0, 0]) / error
        rank = t
        for k in range(1, t):
            new_error = error * (1.0 - kappa * kappa)  # E_k
            if not new_error > tol:  # R_{k+1} is not resolved: stop, as the Cholesky path does at a tiny pivot
                rank = k
                break
            head = a[: k - 1]
            head -= kappa * head[::-1]  # the product is a new array: no aliasing
            a[k - 1] = kappa
            error = new_error
            step = w[k] - a[:k] @ w_rev[t - k :]
            gains[k] = step[1:] ** 2 / error
            kappa = float(step[0]) / error
    fwd = np.sum(gains[:rank, :o], axis=1)
    bwd = np.sum(gains[:rank, o:], axis=1)
    end_rss = total - np.concatenate([[0.0], np.cumsum(fwd)])
    start_rss = total - np.concatenate([[0.0], np.cumsum(bwd)])
    return ToeplitzScan(end_rss, start_rss, rank)


def toeplitz_window_scan(r: np.ndarray, largest: float, kernel: np.ndarray, rss: float, n_rows: int) -> ToeplitzScan:
    """Every prefix and suffix residual of a window from its exact fit, with the Toeplitz Gram as the metric.

    Parameters
    ----------
    r : ndarray, shape (>= T,)
        The input's autocorrelation (:func:`~kernel_recovery.diagnostics.lagsearch.input_autocorrelation`).
    largest : float
        A bound on the Toeplitz matrix's largest eigenvalue (for the rank tolerance).
    kernel : ndarray, shape (T, O)
        The exact least-squares fit ``h`` of the window, ascending lags.
    rss : float
        Its residual, summed over output channels.
    n_rows : int
        Rows of the design (for the rank tolerance).

    Notes
    -----
    Nested least squares obey Pythagoras: the fit on a subset ``S`` of the lags leaves
    ``RSS(S) = RSS + min_{w on S} (h - w)^T G (h - w)``, ``G`` the exact Gram.  With ``R`` (the Toeplitz matrix
    of ``r``) for ``G`` this is a Toeplitz least-squares problem with right-hand side ``R h`` and
    ``y'y = RSS + h^T R h``, which :func:`levinson_scan` solves for every prefix and suffix at once; the full
    window keeps its exact residual.  ``R - G`` is the Gram of the rows the record cuts off at its ends
    (``~T`` of ``n``), so the differences carry a relative error of about ``T / n``.  (Zero-padding ``y``
    instead, i.e. ``R`` with the exact cross terms, would be a misfit of those rows by the whole response: at a
    high SNR it swamps the noise.)
    """
    import scipy.linalg

    taps = len(kernel)
    tol = rank_tolerance(math.sqrt(max(largest, 0.0)), n_rows, taps, "gram") ** 2
    cross = scipy.linalg.matmul_toeplitz(r[:taps], kernel)
    return levinson_scan(r[:taps], cross, rss + float(np.sum(kernel * cross)), tol)
