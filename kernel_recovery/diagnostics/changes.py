"""Change detection: do the data stop being explained by one kernel?

The test is the score (Lagrange multiplier) test for one structural break at an unknown time (Andrews' sup-LM,
Bonferroni-calibrated).  With the one-kernel fit's residuals ``r = (I - H) e``, the score of the equations before a
split ``k``, ``S_k = A_k^T r_k``, has under a fixed kernel and white noise the exact covariance
``sigma^2 (G_k - G_k G^-1 G_k)`` (``G_k`` the Gram of those equations, ``G`` the whole Gram), so

    LM_k = S_k^T (G_k - G_k G^-1 G_k)^+ S_k / sigma^2  ~  chi^2(rank)

at every split.  Where the kernel changes at ``tau``, ``S_tau = G_tau (w_before - w_fit)`` grows with the record and
``LM`` peaks there.  The splits are ``SPLITS - 1`` evenly spaced times, then ``SPLITS`` more between the neighbours
of the peak (the change time to ``~n / SPLITS^2``), each with at least ``2 P`` rows on either side (Andrews'
trimming: nearer an end the covariance is rank-deficient and tells little); the threshold is
``chi2.isf(alpha / tests, rank)`` over all tests (splits x outputs), so the false-alarm rate under a fixed kernel
is at most ``alpha`` (the splits are correlated: in practice well below).  The rows are a uniform sample of at
most ``SAMPLE_ROWS`` equations (the covariance above holds for any subset, with the whole ``G``); the Grams and
scores of the stretches between splits are one batched product, and ``G^-1`` is the fit's own factorization.  The
exact ``LM`` is computed at the ``CANDIDATES`` splits of each pass that a proxy ranks highest (the score's
stationary covariance ``tau (1 - tau) G``: no factorization), every split still counted in the correction (the
reported statistic is one of the ``LM_k``, so the false-alarm bound holds), so the check costs
``O(SAMPLE_ROWS P^2 + SPLITS P^2 + CANDIDATES P^3)``.

Where the rows are windows of one sequence (one input record of ``C`` channels, no mask) sampled every ``h``
samples, the Gram of the rows before a split is block Toeplitz up to edge terms, so the product sums only the
scores and the first ``h C`` columns against the rows (``O(rows h C P) = O(n C P)`` instead of ``O(rows P^2)``),
and the Grams at the chosen splits are built from those sums and the few rows after each split
(:func:`.window_grams`: the same products, added in another order, so the same statistic to rounding; the
fine pass's from the coarse peak's Gram and the few rows between, :func:`_grams_near`).  Above
``MAX_UNKNOWNS``, or where the exact test's factorizations cost more than ``WORK_SHARE`` of the fit, the score is
projected on ``PROJECTION`` seeded directions (:func:`_peak_score_projected`), whose cost is the
``PROJECTED_ROWS x P x PROJECTION`` product that forms them.

At everyday sizes the flops are few and the cost is the calls (L=1e3, K=8: ~0.13 ms, about a hundred numpy calls
and 16 LAPACK ones; L=1e4, K=32: ~0.37 ms, of which the passes over the sampled rows ~0.08 ms, the eight exact
factorizations with their products ~0.1 ms and the two Toeplitz Gram assemblies ~0.05 ms): each pass's steps are
batched over its splits, and the two passes' exact statistics are two calls only because the second pass's
splits depend on the first's.  The projected test at L=1e5, K=128 (~1.2 ms) is flops: the product that forms
``[r | Z]`` (4000 x 128 x 33, ~0.63 ms) and the coarse pass's stretch products (31 x 32 x 132 x 33, ~0.2 ms) run
at a core's peak (~50 GFLOP/s).  An exact ``Z`` takes ``P`` multiply-adds an entry (the sampled windows overlap,
but no window's product with ``D`` is another's: only FFTs of the polyphase components share work, and their
per-frequency ``h x d`` contractions cost more than the GEMM here), and the Grams at the candidates alone cost
more than the stretch products (the total Gram, which ranks them, is needed first), so ~0.85 ms is this test's
floor at these constants.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

from ..model.design import n_columns, window_rows
from ..model.operator import block_residuals
from ..model.problem import Block, CanonicalProblem
from ..model.spectrum import rank_tolerance
from ..model.statistics import block_statistics, statistics_flops, window_grams, window_products
from ..model.whitening import filtered_block, whitening_filters

#: The false-alarm rate of the check in :func:`kernel_recovery.recover_kernel` (per call, under a fixed kernel).
ALPHA = 1e-3
#: Split points per pass (the coarse pass, then the refinement around its peak).
SPLITS = 32
#: Equations sampled for the scores.
SAMPLE_ROWS = 8192
#: The projected test (above the exact test's cost) flags at ``alpha`` times this: its chi-square null is an
#: approximation (measured on healthy fits, L=1e5, K=128: Bonferroni p < 1e-3 in 1 of 40, 25x the nominal
#: rate), so it asks for 100x stronger evidence; its reported p-value is scaled to match (p / PROJECTED_LEVEL).
PROJECTED_LEVEL = 1e-2
#: Rows the projected test samples: its cost is ``O(rows P d)``, so that it stays a small share of a large fit
#: (128 rows per projected direction: the chi-square(d) score has ample degrees of freedom for its covariance).
PROJECTED_ROWS = 4096
#: Blocks with more unknowns than this take the projected test (the exact one factors ``P x P`` covariances).
MAX_UNKNOWNS = 256
#: Fewer sampled equations per unknown than this: not checked (too few to split).
MIN_ROWS_PER_UNKNOWN = 16
#: The exact test runs when its cost (multiply-adds: the sampled rows' products and ``2 SPLITS`` factorizations,
#: the bound before the proxy chose ``2 CANDIDATES`` of them; kept as the rule: above it the projected test is the
#: faster one, measured at K=50 and 64 on 4000 rows) is at most this share of the fit's statistics
#: (:func:`~kernel_recovery.model.statistics.statistics_flops`), or at most ``FREE_FLOPS`` whatever the share.
WORK_SHARE = 0.25
FREE_FLOPS = 3e7

_TINY = float(np.finfo(float).tiny)
_EPS = float(np.finfo(float).eps)


def _rows(
    block: Block, use_bias: bool, times: np.ndarray, interleave: int, spare: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Design rows and outputs of the output samples ``times`` (in time order; with one time axis, evenly spaced:
    a slice of :func:`_sample_times`) of a one-sequence block; the rows follow ``spare`` (unset) columns (room for
    the residuals: one buffer, no concatenation)."""
    p = n_columns(block, use_bias)
    ys = block.outputs
    buf = np.empty((len(times), spare + p))
    a = buf[:, spare:]
    if use_bias:
        a[:, p - 1] = 1.0
    if interleave == 1:  # one time axis: the rows are the times (evenly spaced ones are cut as a strided view)
        step = int(times[1] - times[0]) if len(times) > 1 else 1
        evenly = len(times) > 1 and times[-1] == times[0] + step * (len(times) - 1)  # (a slice of _sample_times)
        index = slice(int(times[0]), int(times[-1]) + 1, step) if evenly else times
        rows = window_rows(block.xs[0], block.taps, index)
        a[:, : block.n_free] = rows if block.mask.all() else rows[:, block.mask.ravel()]
        return buf, ys[0][index]
    y = np.empty((len(times), ys[0].shape[1]))
    for r in range(min(interleave, len(block.xs))):
        pick = times % interleave == r
        rows = times[pick] // interleave
        a[pick, : block.n_free] = window_rows(block.xs[r], block.taps, rows)[:, block.mask.ravel()]
        y[pick] = ys[r][rows]
    return buf, y


def _sample_times(m: int, n: int) -> np.ndarray:
    """At most ``n`` output samples evenly spaced over ``0..m-1`` (every one when ``m <= n``)."""
    return np.arange(0, m, -(-m // n), dtype=np.int64)


def _sampled_rows(block: Block, use_bias: bool, m: int, interleave: int, sample_rows: int):
    """The sampled output samples, their design rows (after ``O`` spare columns, see :func:`_rows`) and outputs:
    the fit's cached explicit design where it holds every equation in time order (small problems), else rows cut
    by :func:`_rows`."""
    times = _sample_times(m, sample_rows)
    design = block.cache.get(("design", use_bias))
    y = block.outputs[0]
    if design is not None and len(times) == m == len(design) and interleave == 1 and len(block.xs) == 1:
        return times, np.concatenate([np.empty_like(y), design], axis=1), y
    a, y = _rows(block, use_bias, times, interleave, y.shape[1])
    return times, a, y


def _least_squares(block: Block, use_bias: bool, a: np.ndarray | None, y: np.ndarray | None, every_row: bool):
    """``(H, coef)``: the whole Gram's pseudo-inverse ``G^+ = H H'`` and the least-squares coefficients.

    From the fit's factorization where the block holds it (:func:`~kernel_recovery.model.spectrum.block_spectrum`,
    cached by the report: ``H = V s^-1`` over the singular values above the rank rule's tolerance), else (a
    prewhitened block) from its Gram with the rule's ``"gram"`` tolerance (``H = L^-T`` by a Cholesky factor that
    proves the rank full, else the eigendecomposition).  ``A'A`` and
    ``A'Y`` are products of the rows ``a`` (outputs ``y``) when they are every equation (``every_row``; with
    ``a=None``: the fit's cached explicit design, where it holds every equation), else the block's statistics.
    """
    if a is None:  # (the cached explicit design: every equation of a one-sequence block, in time order)
        a = block.cache.get(("design", use_bias))
        every_row = a is not None and len(block.xs) == 1 and len(a) == block.n_equations
        y = block.outputs[0] if every_row else None
    if every_row:
        assert a is not None and y is not None
        cross = a.T @ y
    else:
        cross = block_statistics(block, use_bias).cross
    spec = block.cache.get(("spectrum", use_bias))
    # a spectrum that holds its Gram and not V (a fit through the normal equations: V would be an eigendecomposition
    # computed on demand, ~40x the cost): L^-T where the Cholesky factor proves every eigenvalue above the rule's
    # "gram" tolerance, which every rank rule then keeps (so the same G^+ as V s^-1)
    held = getattr(spec, "gram", None)
    found = None if held is None else _inverse_factor(held, rank_tolerance(1.0, 1, len(held), "gram") ** 2)
    if found is not None:
        half = found
    elif spec is not None and spec.right_vectors is not None:
        values = spec.singular_values  # (descending: the smallest above the tolerance keeps every direction)
        if values[-1] > spec.tolerance:
            half = spec.right_vectors / values
        else:
            keep = values > spec.tolerance
            half = spec.right_vectors[:, keep] / values[keep]
    else:
        gram = a.T @ a if every_row and a is not None else block_statistics(block, use_bias).gram
        # L^-T where the Cholesky factor proves every singular value above the rule's tolerance (linear in the
        # largest), else the eigendecomposition (10x the cost) drops the unresolved directions
        found = _inverse_factor(gram, rank_tolerance(1.0, block.n_equations, len(gram), "gram") ** 2)
        if found is None:
            lam, v = np.linalg.eigh(gram)
            s = np.sqrt(np.clip(lam, 0.0, None))
            keep = s > rank_tolerance(s.max(), block.n_equations, len(s), "gram")
            found = v[:, keep] / s[keep]
        half = found
    return half, half @ (half.T @ cross)


def _full_rank_forms(cov: np.ndarray, s: np.ndarray, candidates: np.ndarray | None, tol2: float):
    """``s_k' cov_k^-1 s_k`` ``(splits, O)`` from the Cholesky factors of the ``candidates``' covariances (None:
    every split), and which splits it does not settle (True: not a candidate, a failed factorization, or an
    eigenvalue that may lie below ``tol2`` times the largest: ``lambda_min >= 1 / ||L^-1||_F^2`` against
    ``lambda_max <= trace``; a non-finite inverse fails that test too).  ``cov`` is symmetric: each split's is
    factored through its transpose (Fortran order, no copy) by LAPACK, and the factor inverted as a triangle
    (a third of inv's LU), a few microseconds each where numpy's batched wrappers cost more."""
    from scipy.linalg.lapack import dpotrf, dtrtri

    every = candidates is None
    inv = cov.copy() if every else cov[candidates]  # (a fresh array: each split factored and inverted in place)
    traces = np.einsum("kii->k", inv)
    for k in range(len(inv)):
        # (the transpose of a C-ordered split is a Fortran-ordered view: LAPACK writes L, then L^-1, into it, so
        # that inv[k] holds L^-T without a copy)
        factor, info = dpotrf(inv[k].T, lower=1, clean=1, overwrite_a=1)
        if info == 0:
            _, info = dtrtri(factor, lower=1, overwrite_c=1)
        if info != 0:  # (as a failed batched factorization: every split to the eigendecomposition)
            return np.zeros((len(cov), s.shape[2])), np.ones(len(cov), dtype=bool)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):  # (factored: the traces are positive)
        proven = 1.0 / np.einsum("kij,kij->k", inv, inv) > tol2 * traces
        forms = np.square(inv.transpose(0, 2, 1) @ (s if every else s[candidates])).sum(axis=1)
    if every:
        unsettled = ~proven
        if unsettled.any():
            forms[unsettled] = 0.0
        return forms, unsettled
    out = np.zeros((len(cov), s.shape[2]))
    unsettled = np.ones(len(cov), dtype=bool)
    unsettled[candidates] = ~proven
    out[candidates] = np.where(proven[:, None], forms, 0.0)
    return out, unsettled


@functools.lru_cache(maxsize=8)
def _lower_ones(n: int) -> np.ndarray:
    """The ``n x n`` lower triangle of ones (diagonal included; read-only): running sums as one product."""
    out = np.tri(n)
    out.flags.writeable = False
    return out


def _accumulate(parts: np.ndarray, base: np.ndarray | None) -> np.ndarray:
    """``base + np.cumsum(parts, axis=0)`` (``base`` None: zero), the same sums to rounding: small slices by one
    product with a triangle of ones (numpy's cumsum along a leading axis runs ~3-4 ns an entry: 8 us for 31 splits
    of an 8 x 9 product, the product 4 us), large slices added one after another in place (a Python step each)."""
    count = len(parts)
    if parts[0].size < 512:
        out = (_lower_ones(count) @ parts.reshape(count, -1)).reshape(parts.shape)
        if base is not None:
            out += base
        return out
    out = parts  # (a fresh product: added in place)
    if base is not None:
        out[0] += base
    for i in range(1, len(out)):
        out[i] += out[i - 1]
    return out


def _inverse_factor(gram: np.ndarray, tol: float) -> np.ndarray | None:
    """``W`` with ``W W' = gram^-1`` (``L^-T``, ``L`` the Cholesky factor), or None unless the factor proves every
    eigenvalue above ``tol`` times the largest (``lambda_min >= 1 / ||L^-1||_F^2``, ``lambda_max <= trace``)."""
    from scipy.linalg.lapack import dpotrf, dtrtri

    factor, info = dpotrf(gram, lower=1, clean=1)
    if info != 0:
        return None
    inv, info = dtrtri(factor, lower=1)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        proven = info == 0 and 1.0 / np.einsum("ij,ij->", inv, inv) > tol * max(np.trace(gram), 0.0)
    return inv.T if proven else None


def _stretch_sums(a: np.ndarray, b: np.ndarray, start: int, step: int, count: int, base: np.ndarray | None):
    """``a[:k].T @ b[:k]`` at ``k = start + step * i`` for ``i = 1..count``, ``(count, a.shape[1], b.shape[1])``,
    given ``base = a[:start].T @ b[:start]`` (None: zero).  The stretches between splits have one length, so their
    products are one batched matmul of reshaped views (no copies, no Python loop over the splits), summed in order.
    """
    stop = start + step * count
    parts = np.matmul(
        a[start:stop].reshape(count, step, a.shape[1]).transpose(0, 2, 1), b[start:stop].reshape(count, step, -1)
    )
    return _accumulate(parts, base)


def _scores(a: np.ndarray, r: np.ndarray, start: int, step: int, count: int, base: np.ndarray | None) -> np.ndarray:
    """``a[:k].T @ r[:k]`` at ``k = start + step * i`` for ``i = 1..count``, ``(count, a.shape[1], r.shape[1])``,
    given ``base = a[:start].T @ r[:start]`` (None: zero): the scores alone, ``O(rows P)``, for the proxy of the
    fine pass (whose stretches are a few rows: a batched matmul of their Grams was the slowest step; the residuals'
    ``O x step`` products with them cost less than elementwise products summed per stretch: 4 against 7 us)."""
    stop = start + step * count
    rows, res = a[start:stop], r[start:stop]
    parts = np.matmul(res.reshape(count, step, -1).transpose(0, 2, 1), rows.reshape(count, step, -1))
    return _accumulate(parts, None if base is None else base.T).transpose(0, 2, 1)


#: The Grams at the fine pass's points are one masked product over the stretch before the last of them (its rows
#: weighted by 0/1 per point: ``points x rows x lead x P`` multiply-adds) where that is at most this many.
MASKED_GRAM_WORK = 1 << 18


def _grams(a: np.ndarray, points: np.ndarray, start: int, base: np.ndarray | None, lead: int) -> np.ndarray:
    """``a[:k, :lead].T @ a[:k]`` at the ascending ``points`` (all above ``start``), given ``base`` the same over
    ``a[:start]`` (None: zero), ``(len(points), lead, P)``: one masked product for a short stretch (a few numpy
    calls instead of a Python step per point), else one BLAS product per stretch between points."""
    stop = int(points[-1])
    if len(points) * (stop - start) * lead * a.shape[1] <= MASKED_GRAM_WORK:
        rows = a[start:stop]
        mask = np.arange(start, stop) < points[:, None]  # (points, rows): the rows before each point
        # one 2-D GEMM: the rows' first ``lead`` columns, masked per point, against the rows
        out = ((mask[:, None, :] * rows[:, :lead].T).reshape(-1, stop - start) @ rows).reshape(len(points), lead, -1)
        if base is not None:
            out += base
        return out
    out = np.empty((len(points), lead, a.shape[1]))
    total = np.zeros(out.shape[1:]) if base is None else base
    for i, stop in enumerate(points):
        total = total + a[start:stop, :lead].T @ a[start:stop]
        out[i] = total
        start = int(stop)
    return out


def _grams_near(a: np.ndarray, points: np.ndarray, center: int, base: np.ndarray) -> np.ndarray:
    """``a[:k].T @ a[:k]`` at the ascending ``points``, ``(len(points), P, P)``, given ``base`` the same at
    ``center``: the rows between each point and the next one nearer ``center`` added or removed, one symmetric
    product each.  For the fine pass, whose points lie within a coarse step of the coarse peak (a few hundred rows:
    four products cost less than a Toeplitz assembly, :func:`.window_grams`, and the masked product of
    :func:`_grams`); the difference is at most a coarse step of rows, so there is little to cancel."""
    out = np.empty((len(points),) + base.shape)
    below = int(np.searchsorted(points, center))  # points[:below] < center <= points[below:]
    total, stop = base, center
    for i in range(below - 1, -1, -1):
        start = int(points[i])
        total = total - a[start:stop].T @ a[start:stop]
        out[i] = total
        stop = start
    total, start = base, center
    for i in range(below, len(points)):
        stop = int(points[i])
        total = total + a[start:stop].T @ a[start:stop]
        out[i] = total
        start = stop
    return out


def _equal_splits(lo: int, hi: int, n: int) -> tuple[int, int]:
    """``(step, count)`` of at most ``SPLITS`` splits ``lo + step * i`` (``i = 1..count``) spread over ``lo..hi``,
    all before the last of the ``n`` rows."""
    step = max((hi - lo) // SPLITS, 1)
    return step, min(SPLITS, (n - 1 - lo) // step)


def _lm(gk: np.ndarray, s: np.ndarray, splits: np.ndarray, half: np.ndarray, sigma2: np.ndarray, tol2: float):
    """``LM`` ``(len(splits), O)`` at each of the ascending ``splits`` from the Grams ``gk`` and scores ``s`` of the
    rows before it, and the rank of each score's covariance (``half``: ``G^+ = half half'``, the whole Gram's
    pseudo-inverse; ``tol2``: the square of the rank rule's ``'gram'`` tolerance relative to the largest singular
    value, :func:`~kernel_recovery.model.spectrum.rank_tolerance`).

    Every split's covariance ``G_k - G_k G^+ G_k`` is factored by Cholesky (:func:`_full_rank_forms`).  Where the
    factor proves every eigenvalue above the rank tolerance (``lambda_min >= 1 / ||L^-1||_F^2`` against
    ``lambda_max <= trace``), the covariance has full rank and ``LM = ||L^-1 S||^2``; the other splits (or all,
    where a factorization fails) take the eigendecomposition and drop the unresolved directions, as the rank rule
    says.
    """
    n_splits, p = gk.shape[:2]
    gh = (gk.reshape(-1, p) @ half).reshape(n_splits, p, -1)  # G_k V s^-1: one GEMM for every split
    # (not symmetrized: the factorizations read one triangle, the eigendecomposition the other, each of which is
    # the covariance to rounding)
    cov = gk - gh @ gh.transpose(0, 2, 1)
    # (a split after fewer rows than unknowns is rank-deficient: the eigendecomposition)
    fast = None if splits[0] >= 2 * p else splits >= 2 * p
    out, slow = _full_rank_forms(cov, s, fast, tol2)
    out /= sigma2
    ranks = np.full(n_splits, p)
    if slow.any():
        lam, v = np.linalg.eigh(cov[slow])
        keep = lam > tol2 * np.maximum(lam.max(axis=1), 0.0)[:, None]
        z = v.transpose(0, 2, 1) @ s[slow]  # the score in each covariance's eigenbasis
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(keep[:, :, None], z**2 / np.where(keep, lam, 1.0)[:, :, None], 0.0)
        out[slow] = terms.sum(axis=1) / sigma2
        ranks[slow] = keep.sum(axis=1)
    return out, ranks


#: The Grams are built from the products of the rows' first columns (:func:`.window_grams`) where that saves at
#: least this many multiply-adds (below, the full products cost less than the assembly's few dozen small steps).
TOEPLITZ_SAVING = 1e6
#: Order of the autoregressive noise model that prewhitens the test when the residual is coloured.
WHITEN_ORDER = 8


def _whitened(block: Block, use_bias: bool, coef: np.ndarray | None = None) -> Block:
    """The block with ``x`` and ``y`` filtered by the AR prediction-error filter of its least-squares residual.

    Filtering commutes with the convolution (``y_f[t] = sum_j w_j x_f[t + j]`` for ``x_f``, ``y_f`` filtered along
    time), so the kernel and any break in it stay; the noise becomes (nearly) white, as the test's covariance needs.
    The first ``WHITEN_ORDER`` equations, which read the filter's start-up, are dropped.  A bias stays a constant
    column (scaled by the filter's sum).
    """
    if coef is None:  # (the least-squares fit; ``coef``: a given fit's, where the Gram costs too much)
        coef = _least_squares(block, use_bias, None, None, False)[1]
    x, y = block.xs[0], block.outputs[0]
    n = min(len(y), 1 << 16)  # a contiguous stretch of the residual is enough to fit the noise model
    # (the forward model: FFTs for long kernels, where cutting the n design rows cost ~10x the fit's statistics)
    head = Block([x[: n + block.taps - 1]], [y[:n]], block.taps, block.mask, block.out_channels)
    r = block_residuals(head, use_bias, coef)[0]
    return filtered_block(block, whitening_filters([r[:, [o]] for o in range(r.shape[1])], WHITEN_ORDER)[:, 0])


def _not_testable(problem: CanonicalProblem, whiten: bool) -> str | None:
    """Why the record cannot be tested for a break (None when it can): one record, rows in memory, in one piece."""
    cfg = problem.config
    if len(problem.out_lengths) != 1:
        return "several sequences (a change is a time in one record)"
    if not all(b.retains_rows for b in problem.blocks):
        return "the rows are not retained (streamed statistics only)"
    if len(problem.blocks) != cfg.groups:
        return "missing values split the record"
    m = problem.blocks[0].n_equations  # (the caller's output samples, less any dropped by a prewhitening)
    interleave = cfg.dilation // math.gcd(cfg.stride, cfg.dilation)
    if any(len(b.xs) != min(interleave, m) for b in problem.blocks):
        return "the record is held in pieces (streamed chunks or missing values)"
    if whiten and interleave > 1:
        return "the residual is not white and the dilated record interleaves several time axes"
    return None


#: Splits per pass whose ``LM`` is computed exactly (the largest of a cheap proxy); the others are still counted in
#: the Bonferroni correction, so the false-alarm rate stays at most ``alpha``.
CANDIDATES = 4


def _proxy(s: np.ndarray, splits: np.ndarray, n: int, w: np.ndarray, frac: float, sigma2: np.ndarray) -> np.ndarray:
    """``LM`` as if the covariance of the score before each split were its stationary value, ``tau (1 - f tau)``
    times the whole Gram (``tau = k / n``, ``f`` the sampled share of the equations; ``G^+ = w w'`` up to a
    constant): ``O(P)`` per split, no factorization; the largest over the outputs, ``(splits,)``."""
    tau = splits / n
    if s.shape[2] == 1:  # (one output: one product, no largest to take)
        z = s[:, :, 0] @ w
        return np.einsum("kr,kr->k", z, z) / (sigma2[0] * tau * (1.0 - frac * tau))
    forms = np.square(w.T @ s).sum(axis=1)  # s' G^+ s = ||w' s||^2 per split and output
    return (forms / sigma2).max(axis=1) / (tau * (1.0 - frac * tau))


def _top(values: np.ndarray, count: int) -> np.ndarray:
    """Indices of the ``count`` largest ``values`` (all where there are no more), ascending."""
    if len(values) <= count:
        return np.arange(len(values))
    return np.sort(np.argpartition(values, -count)[-count:])


def _inside(first: int, step: int, count: int, edge: int, n: int) -> tuple[int, int]:
    """``(i0, i1)``: the splits ``first + step * i`` (``i = 1..count``) at least ``edge`` from either end of ``n``
    rows are those of ``i0 < i <= i1`` (a slice of the evenly spaced splits: no mask)."""
    i0 = min(max(-(-(edge - first) // step) - 1, 0), count)
    return i0, max(min((n - edge - first) // step, count), i0)


def _scan(ar: np.ndarray, q: int, edge: int, prepare, toeplitz: tuple[int, int] | None = None):
    """The two passes of splits over the rows ``a = ar[:, -q:]`` (time order) with residuals ``r = ar[:, :-q]``:
    ``SPLITS - 1`` evenly spaced splits, then ``SPLITS`` evenly spaced between the coarse peak's neighbours, each at
    least ``edge`` rows from either end.  ``prepare(total)`` (``total``: ``a'[r | a]`` over every row) returns
    ``(lm, proxy)``; ``prepare`` is that pair itself where they need no total (the exact test).  ``lm(gk, s,
    splits)`` scores the ascending splits from the Grams and scores of the rows before each, ``proxy(s, splits)``
    ranks them cheaply, and ``lm`` runs on the ``CANDIDATES`` best of each pass.  ``toeplitz = (window, lead)``:
    the rows are windows of one sequence (see :func:`.window_grams`), so only ``[r | a[:, :lead]]'a`` is summed
    over the rows (one product: the scores and the Grams' first rows) and the Grams at the chosen splits are built
    from it.  Returns the fine pass's values ``(candidates, O)`` and splits, and the tests made (every split)."""
    n, o = len(ar), ar.shape[1] - q
    r, a = ar[:, :o], ar[:, o:]
    step = n // SPLITS
    splits = step * np.arange(1, SPLITS)
    if toeplitz is None:  # (a stretch's Gram and score: one product with ar)
        lead = q
        sums = _stretch_sums(a, ar, 0, step, SPLITS - 1, None)
        scores, firsts = sums[:, :, :o], sums[:, :, o:]
        if callable(prepare):  # (the total only where it is used: the projected test's Z'Z)
            prepare = prepare(sums[-1] + a[step * (SPLITS - 1) :].T @ ar[step * (SPLITS - 1) :])

        def grams(first: np.ndarray, points: np.ndarray) -> np.ndarray:
            return first
    else:
        window, lead = toeplitz
        sums = _stretch_sums(ar[:, : o + lead], a, 0, step, SPLITS - 1, None)
        scores, firsts = sums[:, :o].transpose(0, 2, 1), sums[:, o:]
        if callable(prepare):
            prepare = prepare(None)
        head = window_products(a[: -(-window // lead) - 1], lead)

        def grams(first: np.ndarray, points: np.ndarray) -> np.ndarray:
            return window_grams(a, window, lead, first, points, head)

    lm, proxy = prepare
    i0, i1 = _inside(0, step, SPLITS - 1, edge, n)
    chosen = i0 + _top(proxy(scores[i0:i1], splits[i0:i1]), CANDIDATES)
    coarse = grams(firsts[chosen], splits[chosen])
    values = lm(coarse, scores[chosen], splits[chosen])
    peak = int(np.argmax(values)) // values.shape[1]
    j = int(chosen[peak])
    lo = int(splits[j - 1]) if j > 0 else 0
    hi = int(splits[j + 1]) if j + 1 < len(splits) else n
    fine_step, count = _equal_splits(lo, hi, n)
    # the fine pass: scores at every split (for the proxy), Grams only at the candidates
    k0, k1 = _inside(lo, fine_step, count, edge, n)
    fine_scores = _scores(a, r, lo, fine_step, count, scores[j - 1] if j > 0 else None)[k0:k1]
    fine = lo + fine_step * np.arange(k0 + 1, k1 + 1)
    best = _top(proxy(fine_scores, fine), CANDIDATES)
    points = fine[best]
    if toeplitz is None:
        fine_grams = _grams(a, points, lo, firsts[j - 1] if j > 0 else None, lead)
    else:  # (from the coarse peak's Gram: the few rows between)
        fine_grams = _grams_near(a, points, int(splits[j]), coarse[peak])
    values_fine = lm(fine_grams, fine_scores[best], points)
    return values_fine, points, (i1 - i0 + k1 - k0) * int(values.shape[1])


def _peak_score(
    block: Block, use_bias: bool, m: int, interleave: int, sample_rows: int = SAMPLE_ROWS
) -> tuple[float, int, int, int]:
    """The largest ``LM`` over the splits of one block, its rank, the tests made and the output sample after it.

    The splits are ``SPLITS - 1`` evenly spaced times over a sample of the ``m`` equations, then ``SPLITS`` more
    between the neighbours of the coarse peak.
    """
    p = n_columns(block, use_bias)
    times, ar, y = _sampled_rows(block, use_bias, m, interleave, sample_rows)
    r, a = ar[:, :-p], ar[:, -p:]  # the residuals and, in the same buffer, the rows
    # the least-squares fit (whatever the method's: the null is "one kernel", and a regularized fit's
    # residual is correlated with the rows), from the fit's factorization
    half, coef = _least_squares(block, use_bias, a, y, len(times) == m)
    np.subtract(y, a @ coef, out=r)
    equations = block.n_equations
    rss = np.einsum("ij,ij->j", r, r) * (equations / len(times))  # the sample's estimate of the rss
    dof = equations - p
    sigma2 = np.maximum(rss / max(dof, 1), _TINY)
    ranks: list[np.ndarray] = []
    # the one rank rule on each covariance (its 'gram' tolerance is linear in the largest singular value)
    tol2 = rank_tolerance(1.0, 1, p, "gram") ** 2

    def lm(gk: np.ndarray, s: np.ndarray, splits: np.ndarray) -> np.ndarray:
        values, rank = _lm(gk, s, splits, half, sigma2, tol2)
        ranks.append(rank)
        return values

    frac = len(times) / m

    def proxy(s: np.ndarray, splits: np.ndarray) -> np.ndarray:
        return _proxy(s, splits, len(times), half, frac, sigma2)

    edge = min(2 * p, len(a) // 4)
    # rows of one sequence's windows, sampled every ``step`` samples: the Grams from their first columns' products
    step = int(times[1] - times[0]) if len(times) > 1 else 1
    window, lead = block.n_free, min(step * block.channels, block.n_free)
    plain = len(a) * p * (p - lead) >= TOEPLITZ_SAVING and interleave == 1 and len(block.xs) == 1
    plain = plain and -(-window // lead) <= edge and bool(block.mask.all())
    toeplitz = (window, lead) if plain else None
    values, fine, n_tests = _scan(ar, p, edge, (lm, proxy), toeplitz)
    k, o = divmod(int(np.argmax(values)), values.shape[1])
    return float(values[k, o]), int(ranks[-1][k]), n_tests, int(times[fine[k] - 1]) + 1


#: Random directions of the projected score test (the statistic is chi^2 with this many degrees of freedom).
PROJECTION = 32
#: Design entries formed at a time by the projected test (bounds its memory: 8 MiB).
CHUNK_ENTRIES = 1 << 20


@functools.lru_cache(maxsize=16)
def _directions(p: int, d: int) -> np.ndarray:
    """The projected test's seeded Gaussian directions ``D`` ``(p, d)`` (read-only: drawn once per shape)."""
    out = np.random.default_rng(0).standard_normal((p, d))
    out.flags.writeable = False
    return out


def _peak_score_projected(
    block: Block, use_bias: bool, m: int, interleave: int, coef: np.ndarray
) -> tuple[float, int, int, int]:
    """As :func:`_peak_score`, for any number of unknowns: the score projected on ``d`` random directions.

    With ``Z = A D`` (``D`` a seeded Gaussian ``P x d``, ``d = min(P, PROJECTION)``) the score ``D' S_k`` of the
    sampled rows before a split has covariance ``sigma^2 (Z_k'Z_k - Z_k'A_k G^-1 A_k'Z_k)``.  ``Z_k'Z_k`` is measured;
    the second term is taken as if the design were ``Z`` (``f Z_k'Z_k (Z'Z)^-1 Z_k'Z_k``, ``f`` the sampled share of
    the equations), exact for an input whose statistics do not change over the record, so
    ``LM_k = S_k'D C_k^+ D'S_k / sigma^2 ~ chi^2(d)`` with ``C_k`` that covariance.  Cost:
    ``O(SAMPLE_ROWS P d)`` for ``Z`` and ``O(SAMPLE_ROWS d^2)`` for the scores: no ``P x P`` factorization.  The
    residual is the fit's kernel (``coef``) with the bias refitted on the sample.  (Random signs on disjoint groups
    of columns would make ``Z`` one pass over the rows instead of a GEMM, but lose power: 62 against 69 of 100
    changes found at K=100, L=4000: their captured share of a change varies more from draw to draw.)
    """
    p = n_columns(block, use_bias)
    d = min(p, PROJECTION)
    o = coef.shape[1]
    proj = np.zeros((p, o + d))  # [coef | D]: the fitted output and Z in one product per chunk
    proj[:, o:] = _directions(p, d)
    proj[: block.n_free, :o] = coef[: block.n_free]
    times = _sample_times(m, PROJECTED_ROWS)
    zr = np.empty((o + d, len(times))).T  # (Fortran order: [coef | D]' A' is the faster product, ~6% at K=128)
    chunk = max(CHUNK_ENTRIES // p, 1)
    for start in range(0, len(times), chunk):
        a, y = _rows(block, use_bias, times[start : start + chunk], interleave)
        part = zr[start : start + len(a)]
        np.matmul(proj.T, a.T, out=part.T)
        part[:, :o] = y - part[:, :o]  # (the bias row of proj is zero: refitted below)
    r = zr[:, :o]
    if use_bias:  # refitted on the sample: a prewhitening scales the bias by its filter's gain
        r -= r.mean(axis=0)
    n_s = len(times)
    sigma2 = np.maximum(np.einsum("ij,ij->j", r, r) / max(n_s - p * n_s / m, 1.0), _TINY)

    def prepare(total: np.ndarray):
        # (Z'Z)^+ = vh vh', cut as numpy's pinv cuts (1e-15 of the largest), the sampled share f folded in: L^-T
        # where the Cholesky factor proves every eigenvalue above the cut (the eigendecomposition costs 10x more)
        vh = _inverse_factor(total[:, o:], 1e-15)
        if vh is None:
            lam, v = np.linalg.eigh(total[:, o:])
            keep = lam > 1e-15 * max(lam.max(), 0.0)
            vh = v[:, keep] / np.sqrt(lam[keep])
        vh = vh * math.sqrt(n_s / m)

        def lm(mk: np.ndarray, s: np.ndarray, splits: np.ndarray) -> np.ndarray:
            # Z_k'Z_k measured (sums over the stretches before each split), the projection term as if A were Z
            mh = (mk.reshape(-1, d) @ vh).reshape(len(mk), d, -1)
            cov = mk - mh @ mh.transpose(0, 2, 1)  # (as in _lm, not symmetrized)
            out, slow = _full_rank_forms(cov, s, None if splits[0] >= 2 * d else splits >= 2 * d, _EPS * d)
            if slow.any():  # (the pseudo-inverse's own cut: eps times the dimension, relative to the largest)
                out[slow] = np.einsum("kdo,kdo->ko", s[slow], np.linalg.pinv(cov[slow], hermitian=True) @ s[slow])
            return out / sigma2

        def proxy(s: np.ndarray, splits: np.ndarray) -> np.ndarray:
            return _proxy(s, splits, n_s, vh, n_s / m, sigma2)

        return lm, proxy

    # half a coarse step at least on each side: near an end the covariance of the score vanishes, and the
    # approximation of its projection term with it (a spurious break in the last samples, p=0)
    values, fine, n_tests = _scan(zr, d, min(max((n_s // SPLITS) // 2, 2 * d), n_s // 4), prepare)
    k, o = divmod(int(np.argmax(values)), values.shape[1])
    return float(values[k, o]), d, n_tests, int(times[fine[k] - 1]) + 1


def find_change(
    problem: CanonicalProblem,
    *,
    alpha: float = ALPHA,
    whiten: bool = False,
    coefs: list[np.ndarray] | None = None,
    sample_rows: int = SAMPLE_ROWS,
) -> tuple[dict[str, Any] | None, str | None]:
    """The break test of :func:`detect`: ``(report or None, why it did not run or None)``.

    ``coefs`` (per block, the fit's coefficients over the design's columns ``(P, O)``) allow the projected test
    (:func:`_peak_score_projected`) where the exact one would cost too much; without them such a block is skipped.
    ``sample_rows``: the equations the exact test samples at most.
    """
    from scipy.special import chdtrc, chdtri  # chi^2 survival function and its inverse (scipy.stats: slow import)

    cfg = problem.config
    why = _not_testable(problem, whiten)
    if why is not None:
        return None, why
    m = problem.blocks[0].n_equations
    interleave = cfg.dilation // math.gcd(cfg.stride, cfg.dilation)
    best: tuple[float, int, float, int] | None = None  # (statistic, time, threshold, tests)
    tests, worst_p = 0, 1.0
    shift = 0  # equations dropped at the start by the prewhitening
    for index, block in enumerate(problem.blocks):
        p = n_columns(block, cfg.use_bias)
        cost = 2 * min(m, sample_rows) * p * p + 8 * SPLITS * p**3
        exact = p <= MAX_UNKNOWNS and cost <= max(WORK_SHARE * statistics_flops(block), FREE_FLOPS)
        if not exact and coefs is None:
            return None, f"it would cost more than {WORK_SHARE:.0%} of the fit ({p} unknowns per output)"
        if whiten:
            block = _whitened(block, cfg.use_bias, None if exact or coefs is None else coefs[index])
            shift = WHITEN_ORDER
            m = block.n_equations
        n_sample = min(m, sample_rows)
        if n_sample < MIN_ROWS_PER_UNKNOWN * p or n_sample < 4 * SPLITS:
            return None, f"{m} equations are too few to split for {p} unknowns"
        if exact:
            stat, rank, n_tests, time = _peak_score(block, cfg.use_bias, m, interleave, sample_rows)
        else:
            assert coefs is not None
            stat, rank, n_tests, time = _peak_score_projected(block, cfg.use_bias, m, interleave, coefs[index])
        tests += n_tests
        if rank == 0:
            continue
        level = alpha if exact else alpha * PROJECTED_LEVEL  # the projected score's null is approximate
        p_value = min(1.0, float(chdtrc(rank, stat)) * n_tests) / (1.0 if exact else PROJECTED_LEVEL)
        threshold = float(chdtri(rank, level / n_tests))
        worst_p = min(worst_p, p_value)
        if stat > threshold and (best is None or stat / threshold > best[0] / best[2]):
            best = (stat, time + shift, threshold, rank)
    if best is None:
        return None, None
    return _change_report(best, worst_p, alpha, tests, m + shift, whiten), None


def _change_report(
    best: tuple[float, int, float, int], p_value: float, alpha: float, tests: int, length: int, whiten: bool
) -> dict[str, Any]:
    """The report of :func:`find_change`'s strongest break ``best`` ``(statistic, time, threshold, rank)``."""
    stat, time, threshold, _ = best
    return {
        "times": (time,),
        "statistic": stat,
        "threshold": threshold,
        "p_value": p_value,
        "alpha": alpha,
        "splits": tests,
        "message": (
            f"the system changed near output sample {time} of {length} (score test for a break, p={p_value:.2g}"
            f"{', noise prewhitened' if whiten else ''}): one "
            "kernel does not explain the whole record; use track_kernel or split the record there."
        ),
    }


def detect(
    problem: CanonicalProblem,
    kernels: list[np.ndarray],
    biases: list[np.ndarray] | None,
    *,
    alpha: float = ALPHA,
    whiten: bool = False,
) -> tuple[dict[str, Any] | None, str]:
    """The change test of a one-kernel least-squares fit: ``(report or None, what was done)``.

    ``kernels`` and ``biases`` (a method's canonical solution) are not needed: the test refits by least squares
    from the block statistics, so that regularized or robust fits are judged by the same null hypothesis.

    The report (a dict) has ``times`` (the output samples near which the kernel changed, here at most one: the
    strongest break), ``statistic``, ``threshold``, ``p_value`` (Bonferroni-adjusted), ``alpha``, ``splits`` and
    ``message``; it is None when no change is found or the check does not apply.  The string is ``"flagged"``,
    ``"checked"`` or ``"skipped: <why>"``.
    """
    report, skipped = find_change(problem, alpha=alpha, whiten=whiten)
    return report, "flagged" if report is not None else f"skipped: {skipped}" if skipped else "checked"


#: Fits whose residual is at most this share of ``y``'s rms are not checked: one kernel explains the data.
FIT_GATE = 1e-6
