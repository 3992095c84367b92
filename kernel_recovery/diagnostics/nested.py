"""Nested least squares: the residual of every leading (and trailing) set of columns from one factorization.

:func:`prefix_fit` factors a Gram once (Cholesky) and reads off the residual of every prefix of its columns;
:func:`dropped_rss` the residual of the full fit less each leading set of columns.  For a symmetric Toeplitz
Gram, :func:`levinson_scan` gives every prefix and every suffix in ``O(T^2)`` (:func:`toeplitz_window_scan` from
a window's exact fit).  :func:`convolution_prefix_fit` gives every prefix of a single-input convolution
design exactly in ``O(T^2)`` (a generalized Schur algorithm on its near-Toeplitz Gram).
:func:`information_criterion` scores them.  Shared by the lag search
(:mod:`.lagsearch`) and :func:`~kernel_recovery.select_kernel_size`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..model.spectrum import rank_tolerance
from ..model.statistics import column_sums, lagged_correlations
from ..model.threads import SerialBLAS, fft_workers


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


# ----------------------------------------------------------------------------------------------
# A convolution's Gram: near-Toeplitz, every prefix exactly in O(T^2) (generalized Schur)
# ----------------------------------------------------------------------------------------------

#: From this many taps on, :func:`convolution_prefix_fit` (``O(T^2)``) is used instead of a Cholesky
#: factorization of the Gram (``O(T^3)``, after ``O(T^2)`` to assemble it).
STRUCTURED_FROM = 256
#: Most sequences the structured scan takes (its generator has two columns per sequence).
STRUCTURED_SEQUENCES = 16
#: The structured factor is accepted when ``diag(L L^T)`` matches the Gram's diagonal to this (relative to the
#: largest); otherwise the caller factors the Gram densely.
STRUCTURED_CHECK = 1e-9


@dataclass(frozen=True)
class NestedRSS:
    """``rss[k]`` (``k = 0..rank``): the residual, summed over output channels, of the fit on the first ``k``
    columns; columns from ``rank`` on are not resolved (as in :class:`PrefixFit`, without the factor)."""

    rss: np.ndarray
    rank: int


def schur_prefix_rss(
    first: np.ndarray,
    plus: np.ndarray,
    minus: np.ndarray,
    cross: np.ndarray,
    yty: float,
    tol: float,
    diagonal: np.ndarray,
) -> NestedRSS | None:
    """Every prefix residual under a positive definite Gram ``G`` given by its displacement generators.

    Parameters
    ----------
    first : ndarray, shape (T,)
        ``G[:, 0]``.
    plus, minus : ndarray, shapes (a, T) and (b, T)
        Rows ``p_i`` and ``m_i``, zero at index 0, with
        ``G[i, j] - G[i - 1, j - 1] = sum p[i] p[j] - sum m[i] m[j]`` for ``i, j >= 1``.
    cross : ndarray, shape (O, T)
        ``A^T y`` per output channel.
    yty : float
        ``y^T y`` summed over output channels.
    tol : float
        The scan stops at the first pivot (diagonal entry of the Cholesky factor) at or below ``tol``.
    diagonal : ndarray, shape (T,)
        ``diag(G)``, to check the factor.

    Returns
    -------
    NestedRSS or None
        None where the factor does not reproduce ``diagonal`` to ``STRUCTURED_CHECK`` (rounding in the
        hyperbolic rotations of an ill-conditioned Gram): factor the Gram densely then.

    Notes
    -----
    ``G - Z G Z^T = W J W^T`` (``Z`` the down-shift) with the generator ``W = [g, p_1.., h, m_1..]``, ``g =
    G[:, 0] / sqrt(G[0, 0])``, ``h`` = ``g`` with ``h[0] = 0``, and the signature ``J = diag(1, .., -1, ..)``.
    The generalized Schur algorithm (Kailath & Sayed, *Displacement structure*, SIAM Rev. 1995) turns the
    generator's first row into ``(r, 0, .., 0)`` by Givens rotations within each signature and one hyperbolic
    rotation (in the mixed form of Bojanczyk, Brent, de Hoog & Sweet, 1995, stable for positive definite
    ``G``); its first column is then the next column ``l_k`` of the Cholesky factor, and ``Z l_k`` with the
    other columns the generator of the Schur complement.  With ``z_k = c_k / l_k[k]`` (forward substitution by
    columns, ``c <- c - l_k z_k``) the fit on the first ``k + 1`` columns lowers the residual by ``z_k^2``, as in
    :func:`prefix_fit`.  ``O(T^2 (a + b + O))`` flops, each step a few BLAS level-1 calls.
    """
    import scipy.linalg.blas

    drot, axpy, scal = scipy.linalg.blas.drot, scipy.linalg.blas.daxpy, scipy.linalg.blas.dscal
    t = len(first)
    c = np.array(cross, dtype=float, order="C").reshape(-1, t)  # rows updated in place: contiguous
    if not first[0] > tol * tol:
        return NestedRSS(np.array([yty]), 0)
    # the column Z shifts is stored so that step k reads shifted[: t - k] (its update is the next step's, shifted)
    shifted = np.array(first, dtype=float) / math.sqrt(first[0])
    positive = [np.array(v, dtype=float) for v in plus]
    head = shifted.copy()
    head[0] = 0.0
    negative = [head] + [np.array(v, dtype=float) for v in minus]
    gains = np.zeros(t)
    check = np.zeros(t)
    square = np.empty(t)
    rank = t
    for k in range(t):
        n = t - k
        col = shifted[:n]
        p0 = float(col[0])
        for v in positive:  # Givens rotations: the positive part of the first row into col
            f = float(v[k])
            if f != 0.0:
                r = math.hypot(p0, f)
                drot(col, v[k:], p0 / r, f / r, overwrite_x=1, overwrite_y=1)
                p0 = r
        neg = negative[0][k:]
        q0 = float(neg[0])
        for v in negative[1:]:
            f = float(v[k])
            if f != 0.0:
                r = math.hypot(q0, f)
                drot(neg, v[k:], q0 / r, f / r, overwrite_x=1, overwrite_y=1)
                q0 = r
        if not abs(p0) > abs(q0):  # the Schur complement is not positive definite (rounding): stop here
            rank = k
            break
        rho = q0 / p0
        cc = math.sqrt((1.0 - rho) * (1.0 + rho))
        pivot = (p0 - rho * q0) / cc
        if not abs(pivot) > tol:
            rank = k
            break
        axpy(neg, col, a=-rho)  # the hyperbolic rotation, mixed form: col <- (col - rho neg) / cc,
        scal(1.0 / cc, col)
        scal(cc, neg)  # neg <- cc neg - rho col
        axpy(col, neg, a=-rho)
        for j in range(len(c)):
            z = float(c[j, k]) / pivot
            axpy(col, c[j, k:], a=-z)
            gains[k] += z * z
        np.multiply(col, col, out=square[:n])
        axpy(square[:n], check[k:])
    scale = max(float(np.max(diagonal[:rank])) if rank else 0.0, np.finfo(float).tiny)
    if rank and float(np.max(np.abs(check[:rank] - diagonal[:rank]))) > STRUCTURED_CHECK * scale:
        return None
    return NestedRSS(yty - np.concatenate([[0.0], np.cumsum(gains[:rank])]), rank)


def convolution_prefix_fit(
    xs: list[np.ndarray], ys: list[np.ndarray], taps: int, use_bias: bool = False
) -> NestedRSS | None:
    """Least squares on every leading set of taps of a single-input convolution, exactly, in ``O(T^2)``.

    Parameters
    ----------
    xs : list of ndarray, shapes (n_i,) or (n_i, 1)
        The inputs: row ``t`` of sequence ``i``'s design reads ``xs[i][t : t + taps]`` (tap ``j`` is
        ``x[t + j]``), ``m_i = n_i - taps + 1`` rows.
    ys : list of ndarray, shapes (m_i, O)
        The outputs.
    taps : int
        ``T``.
    use_bias : bool
        A column of ones first (every prefix holds it).

    Returns
    -------
    NestedRSS or None
        ``rss[k]``: the residual of the fit on the first ``k`` columns (the bias, then taps ``0, 1, ..``), as
        :func:`prefix_fit` of the explicit design gives it; None (factor the Gram with :func:`prefix_fit`) where
        the structured factorization is not accurate (see :func:`schur_prefix_rss`), where a pivot is at or
        below the rank tolerance (the design is deficient: its rank is the Cholesky path's to count), or where
        there are more than ``STRUCTURED_SEQUENCES`` sequences.

    Notes
    -----
    Row ``t + 1`` of the design is row ``t`` shifted by one tap, so ``G[i, j] - G[i - 1, j - 1] = x[m + i - 1]
    x[m + j - 1] - x[i - 1] x[j - 1]`` per sequence: one row that enters at the end, one that leaves at the
    start.  The Gram's first column and ``A^T y`` are lagged correlations (FFT); a bias is profiled out first
    (the Schur complement ``G - s s^T / m`` adds the generator rows ``Z s`` and ``s``).  Every pivot must be
    above :func:`rank_tolerance` (``"gram"``, with ``sum_i max_f |X_i(f)|^2``, a bound on the Gram's largest
    eigenvalue, for the scale: at least :func:`prefix_fit`'s tolerance).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal(40)
    >>> a = np.lib.stride_tricks.sliding_window_view(x, 3)
    >>> y = a @ [1.0, 0.5, 0.0] + 0.1 * rng.standard_normal(len(a))
    >>> fit = convolution_prefix_fit([x], [y[:, None]], 3)
    >>> ref = [np.sum((y - a[:, :k] @ np.linalg.lstsq(a[:, :k], y)[0]) ** 2) for k in range(4)]
    >>> bool(np.allclose(fit.rss, ref))
    True
    """
    import scipy.fft

    if len(xs) > STRUCTURED_SEQUENCES or taps < 2 or any(len(x) < taps for x in xs):
        return None
    xs = [np.asarray(x, dtype=float).reshape(len(x), 1) for x in xs]
    ys = [np.asarray(y, dtype=float).reshape(len(y), -1) for y in ys]
    o = ys[0].shape[1]
    first = np.zeros(taps)
    cross = np.zeros((taps, o))
    plus, minus = [], []
    yty = 0.0
    ysum = np.zeros(o)
    sums = np.zeros(taps)
    n_rows = 0
    largest = 0.0
    for x, y in zip(xs, ys):
        m = len(x) - taps + 1
        r, q = lagged_correlations(x, taps, y, method="fft" if m >= 4 * taps else "direct")
        assert q is not None  # asked for, with y
        first += r[:, 0, 0]
        cross += q[:, 0, :]
        enter, leave = np.zeros(taps), np.zeros(taps)
        enter[1:] = x[m : m + taps - 1, 0]
        leave[1:] = x[: taps - 1, 0]
        plus.append(enter)
        minus.append(leave)
        yty += float(np.sum(y * y))
        if use_bias:
            ysum += y.sum(axis=0)
            sums += column_sums(x, taps)[:, 0]
        n_rows += m
        size = scipy.fft.next_fast_len(len(x) + taps, real=True)
        largest += float(np.max(np.abs(scipy.fft.rfft(x[:, 0], size, workers=fft_workers())) ** 2))
    plus_a, minus_a = np.array(plus), np.array(minus)
    diagonal = first[0] + np.concatenate([[0.0], np.cumsum(np.sum(plus_a[:, 1:] ** 2 - minus_a[:, 1:] ** 2, axis=0))])
    head = [yty]
    p = taps + int(use_bias)
    if use_bias:
        largest = (math.sqrt(n_rows) + math.sqrt(largest)) ** 2
        if n_rows == 0:
            return NestedRSS(np.array([yty]), 0)
        shifted = np.concatenate([[0.0], sums[:-1]]) / math.sqrt(n_rows)
        dropped = np.concatenate([[0.0], sums[1:]]) / math.sqrt(n_rows)
        first = first - sums * sums[0] / n_rows
        diagonal = diagonal - sums**2 / n_rows
        plus_a = np.concatenate([plus_a, shifted[None]])
        minus_a = np.concatenate([minus_a, dropped[None]])
        cross = cross - np.outer(sums, ysum) / n_rows
        yty -= float(ysum @ ysum) / n_rows
        head.append(yty)
    tol = rank_tolerance(math.sqrt(largest), n_rows, p, "gram")
    if use_bias and not math.sqrt(n_rows) > tol:
        return NestedRSS(np.array(head[:1]), 0)
    fit = schur_prefix_rss(first, plus_a, minus_a, cross.T, yty, tol, diagonal)
    if fit is None or fit.rank < taps:  # a deficient design: its rank as the Cholesky factorization finds it
        return None
    return NestedRSS(np.concatenate([head[:-1], fit.rss]), fit.rank + int(use_bias))
