"""The spectrum of a block's design (singular values, right singular vectors) and the one rank rule.

Exact from an SVD of the explicit design, from the eigenvalues of the Gram (settled by a QR of the design
when the Gram cannot resolve the rank), or, for the report of very wide designs, a Welch/Szego estimate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar, overload

import numpy as np

from .design import SVD_LIMIT, design_matrix, design_r_factor, n_columns
from .problem import Block
from .statistics import block_gram, statistics_flops
from .threads import SerialBLAS, fft_workers

#: When the Gram cannot resolve the rank, an orthogonal factorization of the design settles it if it costs at
#: most this many flops (rows x columns^2).
QR_BUDGET = 4e9
#: Explicit designs of at least this many rows per column and entries take the SVD of their R factor (one
#: Householder QR, then a P x P SVD: 993 x 8 33 against 61 us for numpy's thin SVD, 2000 x 4 24 against 48 us;
#: below, the SVD of the rows costs no more).
QR_FIRST_ROWS = 4
QR_FIRST_ENTRIES = 2048
#: Designs with more columns than this are analyzed from a spectral (Welch/Szego) estimate in the report.
APPROXIMATE_ABOVE = 1024


_T = TypeVar("_T")

#: Machine epsilon of float64 (an ``np.float64``, as ``np.finfo`` gives it: read once, not per call).
_EPS = np.finfo(np.float64).eps

#: Where the singular values come from, for :func:`rank_tolerance`.
SpectrumSource = Literal["design", "gram", "estimate"]


def rank_tolerance(largest: float, n_rows: int, n_cols: int, source: SpectrumSource = "design") -> float:
    """The one rank rule: singular values of the design at or below this are treated as zero.

    * ``"design"`` (an SVD of the design or of its R factor): ``s_max * max(n, P) * eps``, the default of
      ``numpy.linalg.lstsq`` and ``matrix_rank``;
    * ``"gram"`` (eigenvalues of ``A^T A``): those carry errors of ``~eps * s_max^2``, so singular values below
      ``~sqrt(eps) s_max`` are unresolved: ``4 * s_max * sqrt(P * eps)`` (the factor keeps exactly deficient
      designs from looking full rank);
    * ``"estimate"`` (the Welch/Szego spectral estimate of long kernels): its window's leakage floor,
      ``1e-6 * s_max``.

    Every method and the analyzer decide rank with this function.
    """
    eps = _EPS
    if source == "design":
        return float(largest) * max(n_rows, n_cols) * eps
    if source == "gram":
        return 4.0 * float(largest) * float(np.sqrt(n_cols * eps))
    if source == "estimate":
        return float(largest) * 1e-6
    raise ValueError(f"`source` must be 'design', 'gram' or 'estimate', got {source!r}.")


class _cached(Generic[_T]):
    """``functools.cached_property`` without its lock (Python 3.11 takes one on every first read, ~1 us, four times
    a fit): the value is computed once and kept in the instance's ``__dict__``, which later reads find first.  Two
    threads reading it first at once both compute the same value."""

    def __init__(self, func: Callable[[Any], _T]) -> None:
        self.func = func
        self.name = func.__name__
        self.__doc__ = func.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, instance: None, owner: type | None = None) -> _cached[_T]: ...
    @overload
    def __get__(self, instance: object, owner: type | None = None) -> _T: ...
    def __get__(self, instance: object | None, owner: type | None = None) -> _T | _cached[_T]:
        if instance is None:
            return self
        value = instance.__dict__[self.name] = self.func(instance)
        return value


@dataclass(frozen=True)
class BlockSpectrum:
    singular_values: np.ndarray  # descending
    stored_vectors: np.ndarray | None  # (P, P), columns; None for the spectral estimate, or until asked (``gram``)
    tolerance: float
    exact: bool  # from an SVD of the explicit design (True) or eigenvalues of the Gram (False)
    channel_orders: np.ndarray | None = None  # spectral estimate only: excited directions per canonical channel
    counted_rank: int | None = None  # an estimate's rank counted exactly from the Gram (see :func:`gram_rank`)
    #: ``U`` of the explicit design's thin SVD ``(n, min(n, P))``, or of its R factor ``(P, P)`` with ``householder``
    #: the design's QR (LAPACK's reflectors and their scales, ``Q`` implicit): the explicit least squares reads
    #: :meth:`left_products` (None otherwise)
    left_vectors: np.ndarray | None = None
    householder: tuple[np.ndarray, np.ndarray] | None = None
    #: A well-conditioned full-rank Gram whose eigenvalues alone were computed: ``V`` comes from it when asked (the
    #: fit itself solves through :attr:`cholesky`, half the cost of the eigenvectors)
    gram: np.ndarray | None = None

    def left_products(self, y: np.ndarray) -> np.ndarray | None:
        """``U^T y`` ``(min(n, P), O)`` for the design's outputs ``y`` ``(n, O)`` (None without ``U``)."""
        u = self.left_vectors
        if u is None:
            return None
        if self.householder is None:
            return u.T @ y
        from scipy.linalg.lapack import dormqr

        qr, tau = self.householder
        qty, _, info = dormqr("L", "T", qr, tau, y, lwork=64 * max(y.shape[1], 1))
        if info != 0:
            raise RuntimeError(f"LAPACK dormqr failed (info={info}).")
        return u.T @ qty[: len(u)]

    @_cached
    def rank(self) -> int:
        if self.counted_rank is not None:
            return self.counted_rank
        return int((self.singular_values > self.tolerance).sum())

    @property
    def has_vectors(self) -> bool:
        """Whether :attr:`right_vectors` exists (stored, or computed on demand from the Gram): not for estimates."""
        return self.stored_vectors is not None or self.gram is not None

    @_cached
    def right_vectors(self) -> np.ndarray | None:
        """``V`` (P, P), columns in the order of :attr:`singular_values`; None for the spectral estimate."""
        if self.stored_vectors is not None or self.gram is None:
            return self.stored_vectors
        with SerialBLAS():
            return np.linalg.eigh(self.gram)[1][:, ::-1]

    @property
    def vectors(self) -> np.ndarray:
        """``V`` (P, P); a ValueError for the spectral estimate, which has none."""
        if self.right_vectors is None:
            raise ValueError("the spectral estimate of a large design has no singular vectors.")
        return self.right_vectors

    @_cached
    def cholesky(self) -> np.ndarray | None:
        """The upper Cholesky factor of :attr:`gram` (None without one): where the fit solves the normal equations."""
        if self.gram is None:
            return None
        from scipy.linalg.lapack import dpotrf

        c, info = dpotrf(self.gram, lower=False, clean=True)
        return c if info == 0 else None

    @_cached
    def _inverse(self) -> np.ndarray:
        c = self.cholesky
        if c is not None:
            from scipy.linalg.lapack import dpotri

            inv, _ = dpotri(c, lower=False)
            inv = np.triu(inv) + np.triu(inv, 1).T
        else:
            v = self.vectors
            inv = (v / self.singular_values**2) @ v.T
        inv.flags.writeable = False
        return inv

    def inverse(self) -> np.ndarray:
        """``(A^T A)^{-1}`` of a full-rank design (a new array): from the Cholesky factor, else from ``V`` and the
        singular values."""
        return self._inverse.copy()

    def inverse_diagonal(self) -> np.ndarray:
        """``diag((A^T A)^{-1})`` of a full-rank design (the one inverse the fit's covariance also reads)."""
        if self.cholesky is not None:
            return np.diag(self._inverse).copy()
        return np.einsum("ij,j->i", self.vectors**2, 1.0 / self.singular_values**2)

    @property
    def coordinates(self) -> np.ndarray:
        """``diag(s) V^T`` (P, P): any subset of the design's columns has the singular values of these columns."""
        return self.singular_values[:, None] * self.vectors.T

    def column_rank(self, columns: np.ndarray) -> int:
        """Numerical rank of the design restricted to ``columns`` (distinct), with the design's own tolerance."""
        if len(columns) == 0:
            return 0
        if self.counted_rank is None and self.rank == len(self.singular_values):
            return len(columns)  # every subset of a full-rank design's columns has full rank (the usual fit)
        kept = np.zeros(len(self.singular_values), dtype=bool)
        kept[columns] = True
        missing = np.flatnonzero(~kept)  # (a mask, not setdiff1d: this runs a few times per fit)
        if len(missing) == 0:
            return self.rank
        if len(missing) == 1:  # dropping column j lowers the rank iff no invisible direction involves j
            null = self.vectors[missing[0], self.rank :]
            return self.rank - int(not np.sqrt(np.sum(null**2)) > 1e-8)
        s = np.linalg.svd(self.coordinates[:, columns], compute_uv=False)
        return int((s > self.tolerance).sum())


def explicit_design(block: Block, use_bias: bool) -> np.ndarray:
    """:func:`~kernel_recovery.model.design.design_matrix`, cached on the block: the report's SVD and the explicit
    least-squares solve read the same small design (at most ``SVD_LIMIT`` entries).  Read-only."""
    key = ("design", use_bias)
    if key not in block.cache:
        a = design_matrix(block, use_bias)
        a.flags.writeable = False
        block.cache[key] = a
    return block.cache[key]


def block_spectrum(block: Block, use_bias: bool) -> BlockSpectrum:
    """Singular values and right singular vectors of one block's design (cached on the block)."""
    key = ("spectrum", use_bias)
    if key in block.cache:
        return block.cache[key]
    p = n_columns(block, use_bias)
    n = block.n_equations
    if n * p <= SVD_LIMIT and n >= QR_FIRST_ROWS * p and n * p >= QR_FIRST_ENTRIES:
        # a tall design: the SVD of its R factor (the same singular values and right vectors; Q kept as reflectors)
        from scipy.linalg.lapack import dgeqrf

        with SerialBLAS():
            qr, tau, _, info = dgeqrf(explicit_design(block, use_bias))
            if info != 0:
                raise RuntimeError(f"LAPACK dgeqrf failed (info={info}).")
            u, s, vt = np.linalg.svd(np.triu(qr[:p]))
        tolerance = rank_tolerance(s[0] if len(s) else 0.0, n, p)
        spec = BlockSpectrum(s, vt.T, tolerance, True, left_vectors=u, householder=(qr, tau))
    elif n * p <= SVD_LIMIT:
        with SerialBLAS():
            u, s, vt = np.linalg.svd(explicit_design(block, use_bias), full_matrices=n < p)
        if len(s) < p:  # (a wide design: its missing singular values are zeros)
            s = np.concatenate([s, np.zeros(p - len(s))])
        spec = BlockSpectrum(s, vt.T, rank_tolerance(s[0] if len(s) else 0.0, n, p), True, left_vectors=u)
    else:
        gram = block_gram(block, use_bias)
        with SerialBLAS():
            s = np.sqrt(np.clip(np.linalg.eigvalsh(gram)[::-1], 0.0, None))
        spec = BlockSpectrum(s, None, rank_tolerance(s[0], n, p, "gram"), False, gram=gram)
        unresolved = spec.rank < p or s[0] > 1e6 * s[-1]
        if unresolved:  # deficient or ill-conditioned: values and vectors of one eigendecomposition, as the rule reads
            with SerialBLAS():
                lam, v = np.linalg.eigh(gram)
            s = np.sqrt(np.clip(lam[::-1], 0.0, None))
            spec = BlockSpectrum(s, v[:, ::-1], rank_tolerance(s[0], n, p, "gram"), False)
            unresolved = spec.rank < p or s[0] > 1e6 * s[-1]
        covered = bool(block.xs) and sum(len(x) - block.taps + 1 for x in block.xs) == n  # streamed: rows kept?
        if unresolved and covered and n * p * p <= QR_BUDGET:
            # the Gram cannot tell ill-conditioned from deficient here: ask the design itself, via its R factor
            _, s, vt = np.linalg.svd(design_r_factor(block, use_bias))
            spec = BlockSpectrum(s, vt.T, rank_tolerance(s[0], n, p), True)
    block.cache[key] = spec
    return spec


#: Most Welch segments the spectral estimate averages (evenly spread over the record; fewer than a record's worth).
SPECTRAL_SEGMENTS = 512
#: The report's spectrum is always exact up to this many columns (an eigendecomposition of a few ms).
EXACT_ALWAYS = 256


def exact_spectrum_affordable(block: Block, use_bias: bool) -> bool:
    """The cost model of the report's spectrum: exact (an eigendecomposition, ``~10 P^3``) or the estimate.

    Exact up to ``EXACT_ALWAYS`` columns (a few ms) and never above ``APPROXIMATE_ABOVE``.  In between, exact for
    multi-input blocks (their least squares factors the same Gram anyway), and for single-input blocks only
    where it costs no more than the pass over the data (:func:`statistics_flops`): otherwise their least squares
    takes Toeplitz CG, which never forms the factorization.
    """
    if block.mask.size + 1 <= min(EXACT_ALWAYS, APPROXIMATE_ABOVE):  # at most that many columns (without counting)
        return True
    p = n_columns(block, use_bias)
    if p <= min(EXACT_ALWAYS, APPROXIMATE_ABOVE):
        return True
    if p > APPROXIMATE_ABOVE:
        return False
    return block.channels > 1 or 10.0 * p**3 <= statistics_flops(block)


#: A block without its rows (streamed statistics) takes the report's spectrum from its Gram's eigenvalues up to
#: this many columns (``eigvalsh``, ~4/3 P^3); above, the Gram-diagonal estimate with its rank counted (P^3 / 3:
#: 2.5 s instead of ~18 s at 4000 columns on two cores).
GRAM_SPECTRUM_LIMIT = APPROXIMATE_ABOVE
#: An estimated spectrum's rank is counted exactly (inertia of ``G - tol^2 I``, P^3 / 3) up to this many columns.
COUNT_LIMIT = 8192


def report_spectrum(block: Block, use_bias: bool) -> BlockSpectrum:
    """The spectrum the report uses: exact when cheap or already computed, else a spectral estimate.

    For more than ``APPROXIMATE_ABOVE`` columns an eigendecomposition of the Gram costs O(P^3); the
    eigenvalues of the (block-)Toeplitz Gram are then estimated, by Szego's theorem, from the eigenvalues of
    the inputs' cross-spectral matrices at ``taps`` frequencies (Welch: Kaiser windows, 50% overlap, from the
    rows; from the Gram's lag diagonals where the rows were not kept), scaled to the number of equations.
    Condition numbers are then approximate and no null space is given.  The rank is not left to the estimate:

    * a block without its rows (streamed statistics) up to ``GRAM_SPECTRUM_LIMIT`` columns takes the
      eigenvalues of its Gram (the ``"gram"`` rule of :func:`rank_tolerance`);
    * otherwise, wherever the estimate is not from every row or finds the design deficient, and up to
      ``COUNT_LIMIT`` columns, the rank is counted from the Gram with the ``"gram"`` rule (:func:`gram_rank`).
    """
    if ("spectrum", use_bias) in block.cache or exact_spectrum_affordable(block, use_bias):
        return block_spectrum(block, use_bias)
    key = ("spectral_estimate", use_bias)
    if key not in block.cache:
        block.cache[key] = _validated_estimate(block, use_bias)
    return block.cache[key]


def _has_rows(block: Block) -> bool:
    return bool(block.xs) and block.retains_rows


def _validated_estimate(block: Block, use_bias: bool) -> BlockSpectrum:
    p = n_columns(block, use_bias)
    if not _has_rows(block) and p <= GRAM_SPECTRUM_LIMIT:
        return _gram_eigenvalues(block, use_bias)
    spec = _spectral_estimate(block, use_bias) if _has_rows(block) else _gram_diagonal_estimate(block, use_bias)
    if (spec.rank < p or not _has_rows(block)) and p <= COUNT_LIMIT:
        gram = block_gram(block, use_bias)
        rank, tol = gram_rank(gram, block.n_equations)
        spec = BlockSpectrum(spec.singular_values, None, tol, False, _channel_orders(block, gram, rank, tol), rank)
    return spec


def _channel_orders(block: Block, gram: np.ndarray, rank: int, tol: float) -> np.ndarray:
    """Each canonical channel's excitation order: the rank of its own columns (counted with the same ``tol``)."""
    if block.channels == 1:
        return np.array([min(max(rank - (len(gram) - block.n_free), 0), block.n_free)])
    channel = np.nonzero(block.mask)[1]  # the channel of each free column (tap-major order; the bias is last)
    own = [np.flatnonzero(channel == c) for c in range(block.channels)]
    return np.array([_count_above(gram[np.ix_(i, i)], tol) for i in own])


def _largest_eigenvalue(gram: np.ndarray) -> float:
    """The largest eigenvalue of a symmetric positive semi-definite matrix (Lanczos; dense below 64 columns)."""
    if len(gram) < 64 or not np.any(gram):
        return float(np.linalg.eigvalsh(gram)[-1]) if len(gram) < 64 else 0.0
    import scipy.sparse.linalg

    # a fixed generic start: reproducible, and not orthogonal to the top vector as structured ones can be
    start = np.random.default_rng(0).standard_normal(len(gram))
    return float(scipy.sparse.linalg.eigsh(gram, k=1, which="LA", tol=1e-6, v0=start, return_eigenvectors=False)[0])


def gram_rank(gram: np.ndarray, n_rows: int) -> tuple[int, float]:
    """``(rank, tolerance)`` of the design whose Gram is ``gram``, counted with the ``"gram"`` rule.

    The singular values above ``tol`` are the eigenvalues of ``G`` above ``tol^2``; by Sylvester's law of inertia
    they are as many as the positive pivots of an ``L D L^T`` factorization of ``G - tol^2 I`` (Bunch-Kaufman,
    backward stable: the pivots count the eigenvalues of a matrix within ``~eps ||G||`` of ``G``, as precisely
    as ``eigvalsh`` would, for P^3 / 3 flops instead of ~4/3 P^3).
    """

    p = len(gram)
    if p == 0:
        return 0, 0.0
    s_max = float(np.sqrt(max(_largest_eigenvalue(gram), 0.0)))
    tol = rank_tolerance(s_max, max(int(n_rows), 1), p, "gram")
    if s_max == 0.0:
        return 0, tol
    return _count_above(gram, tol), tol


def _count_above(gram: np.ndarray, tol: float) -> int:
    """How many eigenvalues of ``gram`` exceed ``tol^2``: the positive pivots of ``L D L^T = gram - tol^2 I``."""
    import scipy.linalg

    p = len(gram)
    if p == 0:
        return 0
    _, d, _ = scipy.linalg.ldl(gram - tol**2 * np.eye(p), lower=True, check_finite=False)
    off = np.diagonal(d, -1)
    positive, i = 0, 0
    while i < p:
        if i + 1 < p and off[i] != 0.0:  # a 2x2 pivot: one positive and one negative eigenvalue, or two alike
            det = d[i, i] * d[i + 1, i + 1] - off[i] ** 2
            positive += 1 if det < 0 else (2 if det > 0 else 1) * int(d[i, i] + d[i + 1, i + 1] > 0)
            i += 2
        else:
            positive += int(d[i, i] > 0)
            i += 1
    return positive


def _gram_eigenvalues(block: Block, use_bias: bool) -> BlockSpectrum:
    """The spectrum of a block without its rows: the eigenvalues of its Gram (no vectors), the ``"gram"`` rule;
    each channel's excitation order is the rank of its own columns' Gram, with the same tolerance."""
    gram = block_gram(block, use_bias)
    with SerialBLAS():
        s = np.sqrt(np.clip(np.linalg.eigvalsh(gram)[::-1], 0.0, None))
    n, p = block.n_equations, len(s)
    tol = rank_tolerance(s[0] if p else 0.0, n, p, "gram")
    return BlockSpectrum(s, None, tol, False, _channel_orders(block, gram, int((s > tol).sum()), tol))


def _spectral_estimate(block: Block, use_bias: bool) -> BlockSpectrum:
    """Eigenvalues of the (block-)Toeplitz Gram by Szego's theorem: Welch cross-spectral matrices at ``taps``
    frequencies (Kaiser windows, beta 16: sidelobes below -110 dB, so a sinusoid stays a few bins wide; 50%
    overlap), scaled to the number of equations.  Real data: the bins above half are the conjugates of those
    below (same eigenvalues), so only ``taps // 2 + 1`` are formed."""
    import scipy.fft

    t, c = block.taps, block.channels
    window = np.kaiser(t, 16.0)
    nf = t // 2 + 1
    acc = np.zeros((nf, c, c), dtype=complex)
    weight = 0.0
    for x in block.xs:
        if len(x) < t:
            x = np.concatenate([x, np.zeros((t - len(x), c))])
        starts = np.arange(0, len(x) - t + 1, max(t // 2, 1))
        cap = min(SPECTRAL_SEGMENTS, max(64, len(x) // t))  # evenly spread: about one pass over the record
        if len(starts) > cap:
            starts = starts[np.linspace(0, len(starts) - 1, cap).round().astype(int)]
        per = max(1, (1 << 20) // (t * c))  # bounded memory: about 8 MB of segments at a time
        for i in range(0, len(starts), per):
            segs = np.stack([x[a : a + t] for a in starts[i : i + per]]) * window[None, :, None]
            f = scipy.fft.rfft(segs, axis=1, workers=fft_workers())
            if c == 1:
                acc[:, 0, 0] += np.sum(f.real**2 + f.imag**2, axis=0)[:, 0]
            else:
                acc += np.einsum("stc,std->tcd", f.conj(), f)
        weight += len(starts) * np.sum(window**2)
    acc *= block.n_equations / max(weight, 1e-300)
    return _from_cross_spectra(acc, block, use_bias)


def _gram_diagonal_estimate(block: Block, use_bias: bool) -> BlockSpectrum:
    """The Szego estimate of a block without its rows, from its Gram: the lag-``k`` correlation matrices are the
    means of the Gram's ``k``-th block diagonals (over the free taps), weighted by the autocorrelation of the
    Welch estimate's Kaiser window (Blackman-Tukey, so both estimates have the same expectation)."""
    t, c = block.taps, block.channels
    gram = block_gram(block, use_bias)
    free = np.flatnonzero(block.mask.ravel())  # tap-major: column j * c + channel
    full = np.zeros((t * c, t * c))
    seen = np.zeros((t * c, t * c))
    full[np.ix_(free, free)] = gram[: len(free), : len(free)]
    seen[np.ix_(free, free)] = 1.0
    full4, seen4 = full.reshape(t, c, t, c), seen.reshape(t, c, t, c)
    window = np.kaiser(t, 16.0)
    lag_window = np.correlate(window, window, "full")[t - 1 :] / np.sum(window**2)
    lags = np.zeros((2 * t, c, c))  # lags[k] = R_k (x[j + k] against x[j]); lags[2t - k] = R_k^T
    for k in range(t):
        total = np.diagonal(full4, -k, 0, 2).sum(axis=-1)  # sum_j full4[j + k, :, j, :]
        count = np.diagonal(seen4, -k, 0, 2).sum(axis=-1)
        r_k = lag_window[k] * total / np.maximum(count, 1.0)
        lags[k] = r_k
        if k:
            lags[2 * t - k] = r_k.T
    acc = np.fft.fft(lags, axis=0)[: 2 * (t // 2 + 1) : 2]  # frequencies m / t, m = 0 .. t // 2
    acc = (acc + np.conj(np.swapaxes(acc, 1, 2))) / 2
    return _from_cross_spectra(acc, block, use_bias)


def _from_cross_spectra(acc: np.ndarray, block: Block, use_bias: bool) -> BlockSpectrum:
    """The spectrum estimated from the cross-spectral matrices ``acc`` ``(taps // 2 + 1, c, c)`` at ``m / taps``."""
    t = block.taps
    nf = t // 2 + 1
    multiplicity = np.full(nf, 2)
    multiplicity[0] = 1
    if t % 2 == 0:
        multiplicity[-1] = 1
    lam = np.repeat(np.linalg.eigvalsh(acc), multiplicity, axis=0).ravel()
    lam = np.sort(lam)[::-1][: block.n_free]
    if use_bias:
        lam = np.sort(np.concatenate([lam, [float(block.n_equations)]]))[::-1]
    sv = np.sqrt(np.clip(lam, 0.0, None))
    tol = rank_tolerance(sv[0], block.n_equations, len(sv), "estimate") if len(sv) else 0.0
    power = np.repeat(np.real(np.einsum("tcc->tc", acc)), multiplicity, axis=0)
    orders = (np.sqrt(np.clip(power, 0.0, None)) > tol).sum(axis=0)
    return BlockSpectrum(sv, None, tol, False, orders)
