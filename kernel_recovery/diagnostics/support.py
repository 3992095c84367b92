"""Where the response lies: beyond the kernel's support, or before the input?

:func:`kernel_size_check` refits with a few more taps on a row subsample of the canonical problem and speaks
when an F-test says they explain the residual; :func:`lag_scan` cross-correlates the residual with the input at
lags far outside the kernel; :func:`negative_lag_check` tests the kernel's taps at negative physical lags against
their standard errors.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

from ..model.config import ConvConfig
from ..model.design import window_rows
from ..model.operator import correlate_valid, forward
from ..model.problem import Block, CanonicalProblem
from ..model.result import Solution
from ..model.spectrum import rank_tolerance
from ..model.statistics import statistics_flops
from ..model.threads import SerialBLAS
from ..model.whitening import autocorrelations, prediction_filters

# ----------------------------------------------------------------------------------------------
# Is the kernel longer than kernel_size? (an F-test with a few more taps)
# ----------------------------------------------------------------------------------------------

#: Rows of the canonical design the check uses at most (evenly spaced chunks), and its extra taps per side.
CHECK_ROWS = 1 << 14
CHECK_ROWS_PER_COLUMN = 32
CHECK_EXTRA = 2
#: Most multiply-adds the check's Gram may cost (rows x columns^2), and its share of the statistics' cost: fewer
#: rows for wide designs.  Checks of at most ``CHECK_FREE_FLOPS`` run whatever their share.
CHECK_FLOPS = 2e8
CHECK_WORK = 0.1
CHECK_FREE_FLOPS = 2e6
#: Family-wise false-alarm rate of the F-test, and the least share of the residual a longer kernel must explain.
CHECK_ALPHA = 1e-6
CHECK_EFFECT = 0.01


def check_row_budget(block: Block) -> int:
    """Rows the kernel-size check samples: enough for a powerful F-test, not more.

    The two fits cost ``rows x columns^2``: at most ``CHECK_FLOPS`` and at most ``CHECK_WORK`` times the cost
    of the statistics (:func:`~kernel_recovery.model.statistics.statistics_flops`; or ``CHECK_FREE_FLOPS``), so the
    check stays a small share of the solve.
    """
    cols = (block.taps + 2 * CHECK_EXTRA) * block.channels
    budget = min(CHECK_ROWS, max(CHECK_ROWS // 4, CHECK_ROWS_PER_COLUMN * cols))
    share = max(CHECK_WORK * statistics_flops(block), CHECK_FREE_FLOPS) / cols**2  # tiny checks always run
    return int(min(budget, CHECK_FLOPS / cols**2, share))


#: Per subsequence, its stretches ``(first, stop)`` of rows.
Stretches = tuple[tuple[tuple[int, int], ...], ...]


def _row_stretches(block: Block, e: int) -> Stretches | None:
    """Per subsequence, the stretches ``[first, stop)`` of extended rows (taps -e .. taps+e-1) the check samples:
    evenly spaced chunks over all subsequences' rows together, merged where they overlap (None without outputs or
    rows; :func:`_stretch_plan`)."""
    if block.ys is None:
        return None
    return _stretch_plan(tuple(len(x) - block.taps + 1 - 2 * e for x in block.xs), check_row_budget(block))


@functools.lru_cache(maxsize=256)
def _stretch_plan(spans: tuple[int, ...], budget: int) -> Stretches | None:
    """:func:`_row_stretches` for subsequences of ``spans`` usable rows and a budget of rows (cached: a few
    integers, computed once per layout)."""
    usable = sum(max(n, 0) for n in spans)
    if usable <= 0:
        return None
    per_chunk = max(budget // 8, 1)
    take = min(usable, budget)
    # evenly spaced chunk starts, as numpy.linspace(0, last, count).astype(int) (in Python: a few integers)
    count, last = max(take // per_chunk, 1), usable - min(per_chunk, take)
    step = last / (count - 1) if count > 1 else 0.0
    starts = [int(i * step) for i in range(count - 1)] + [last] if count > 1 else [0]
    intervals: list[list[int]] = []  # the chunks [s0, s0 + per_chunk), merged where they overlap
    for s0 in starts:
        lo, hi = s0, min(s0 + per_chunk, usable)
        if intervals and lo <= intervals[-1][1]:
            intervals[-1][1] = max(intervals[-1][1], hi)
        else:
            intervals.append([lo, hi])
    out: list[tuple[tuple[int, int], ...]] = []
    offset = 0
    for n in spans:
        if n <= 0:
            out.append(())
            continue
        out.append(
            tuple((max(lo - offset, 0), min(hi - offset, n)) for lo, hi in intervals if lo < offset + n and hi > offset)
        )
        offset += n
    return tuple(out)


def _cut_rows(block: Block, e: int, stretches: Stretches) -> tuple[np.ndarray, np.ndarray]:
    """The extended rows of :func:`_row_stretches` and their outputs (each subsequence's rows cut in one gather)."""
    assert block.ys is not None  # (checked by _row_stretches)
    width = block.taps + 2 * e
    rows, ys = [], []
    for x, y, cut in zip(block.xs, block.ys, stretches):
        if len(cut) == 1:  # one stretch (all rows of a short record): a slice
            first, stop = cut[0]
            rows.append(window_rows(x, width, slice(first, stop)))
            ys.append(y[first + e : stop + e])
        elif cut and x.flags.c_contiguous:  # the rows a view (tap and channel axes merged): each stretch a slice
            windows = window_rows(x, width)
            rows.append(np.concatenate([windows[lo:hi] for lo, hi in cut]))
            ys.append(np.concatenate([y[lo + e : hi + e] for lo, hi in cut]))
        elif cut:  # row t (= index + e) of the subsequence reads taps t-e .. t+taps+e-1
            index = np.concatenate([np.arange(lo, hi) for lo, hi in cut])
            rows.append(window_rows(x, width, index))
            ys.append(y[index + e])
    return (rows[0], ys[0]) if len(rows) == 1 else (np.concatenate(rows), np.concatenate(ys))


def _check_rows(block: Block, e: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Extended rows (taps -e .. taps+e-1, all channels; no bias column), restricted column mask (over those
    columns) and y, on a subsample of evenly spaced chunks (:func:`_row_stretches`, :func:`_cut_rows`)."""
    stretches = _row_stretches(block, e)
    if stretches is None:
        return None
    a, y = _cut_rows(block, e, stretches)
    return a, _columns(block.taps, block.channels, e, block.mask.tobytes(), False)[0], y


@functools.lru_cache(maxsize=64)
def _columns(
    taps: int, channels: int, e: int, mask: bytes, use_bias: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The check's columns for a block layout (read-only: cached): the restricted mask over the extended taps, the
    restricted columns (the bias last, after the taps' columns), the order restricted first then the rest, and the
    flat index of the Gram in that order."""
    width = taps + 2 * e
    grid = np.zeros((width, channels), dtype=bool)
    grid[e : e + taps] = np.frombuffer(mask, dtype=bool).reshape(taps, channels)
    keep = grid.ravel()
    inner, outer = np.flatnonzero(keep), np.flatnonzero(~keep)
    if use_bias:
        inner = np.append(inner, width * channels)
    order = np.concatenate([inner, outer])
    flat = (order[:, None] * (width * channels + int(use_bias)) + order[None, :]).ravel()
    for a in (keep, inner, order, flat):
        a.flags.writeable = False
    return keep, inner, order, flat


#: The Gram of the sampled rows is built from its Toeplitz structure (:func:`_stretch_gram`) once the product
#: ``A^T A`` would cost more than this many multiply-adds (rows x columns^2), and kept where its Cholesky pivots clear
#: the rank rule by ``STRUCTURED_MARGIN`` times its tolerance (10 times for the product): nearer the rule, the fits
#: (a pseudo-inverse, or a factor of a nearly singular Gram) follow the Gram's rounding, so they are made from
#: ``A^T A`` itself, as before.
STRUCTURED_GRAM = 1 << 18
STRUCTURED_MARGIN = 1e3


def _bordered(gram: np.ndarray, sums: np.ndarray | None, n: int) -> np.ndarray:
    """The Gram with the bias column's entries (the column sums and the row count) after the taps' (``sums`` None:
    no bias)."""
    if sums is None:
        return gram
    p = len(gram) + 1
    out = np.empty((p, p))
    out[:-1, :-1] = gram
    out[-1, :-1] = out[:-1, -1] = sums
    out[-1, -1] = n
    return out


def _stretch_gram(block: Block, e: int, stretches: Stretches, a: np.ndarray) -> np.ndarray:
    """``A^T A`` of the rows :func:`_cut_rows` cut, from their shift structure: ``O(rows W C^2 + chunks (W C)^2)``
    instead of ``O(rows (W C)^2)`` (``W`` extended taps, ``C`` channels).

    Over a stretch of rows ``[lo, hi)`` the Gram's block ``(i, j)``, ``j >= i``, is ``G0[j - i]`` (the first tap
    against each tap, ``sum_t x[t] x[t + l]^T``) plus ``sum_{s < i} D[s, s + j - i]``, where
    ``D[s, s'] = x[hi + s] x[hi + s']^T - x[lo + s] x[lo + s']^T`` (moving every row one tap on drops row ``lo`` and
    adds row ``hi``): the first block row is one product with the rows, the ``D`` of all stretches one product of
    their ``W - 1``-tap windows at the stretch ends, and the sums over ``s`` one cumulative sum along ``D``'s diagonals.
    """
    c, width = block.channels, block.taps + 2 * e
    g0 = (a[:, :c].T @ a).reshape(c, width, c).transpose(1, 0, 2)  # [l, ci, cj] = sum_t x[t, ci] x[t + l, cj]
    w1 = (width - 1) * c
    flat = np.zeros(w1 * w1 + 1)  # D, then a zero (where s + l runs past the window)
    d = flat[:-1].reshape(w1, w1)
    for x, cut in zip(block.xs, stretches):
        if cut:
            index, sign = _stretch_ends(cut)
            ends = window_rows(x, width - 1, index)  # the windows at lo and hi of each stretch, in turn
            d += (ends * sign).T @ ends  # sum over the stretches of x[hi + s] x[hi + s']^T - x[lo + s] x[lo + s']^T
    index, gather, lower = _stretch_index(width, c)
    sums = lower @ flat[index]  # [s, (l, ci, cj)] = sum_{s' <= s} D[s', s' + l]
    blocks = np.empty((width, width, c, c))  # [i, l] = G0[l] + sum_{s < i} D[s, s + l]
    blocks[:] = g0
    blocks[1:, : width - 1] += sums.reshape(width - 1, width - 1, c, c)
    return blocks.ravel()[gather]


@functools.lru_cache(maxsize=256)
def _stretch_ends(cut: tuple[tuple[int, int], ...]) -> tuple[np.ndarray, np.ndarray]:
    """For :func:`_stretch_gram` (read-only: cached per plan): the rows ``lo, hi`` of each stretch in turn, and their
    signs ``(-1, +1, ...)`` as a column."""
    index = np.ravel(cut)
    sign = np.where(np.arange(len(index)) % 2 == 0, -1.0, 1.0)[:, None]
    for v in (index, sign):
        v.flags.writeable = False
    return index, sign


@functools.lru_cache(maxsize=16)
def _stretch_index(width: int, c: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For :func:`_stretch_gram` (read-only: cached): the flat index of ``D[s, s + l]`` ``(W - 1, (W - 1) C C)`` (the
    zero past the end where ``s + l > W - 2``), of the Gram's entries in ``[i, l, ci, cj]`` ``(W C, W C)`` (each
    entry below the diagonal the one above it), and the lower triangle of ones ``(W - 1, W - 1)``."""
    w1 = width - 1
    s, lag, ci, cj = np.meshgrid(np.arange(w1), np.arange(w1), np.arange(c), np.arange(c), indexing="ij")
    index = np.where(s + lag < w1, (s * c + ci) * (w1 * c) + (s + lag) * c + cj, w1 * c * w1 * c)
    index = index.reshape(w1, w1 * c * c)
    i, ci, j, cj = np.meshgrid(np.arange(width), np.arange(c), np.arange(width), np.arange(c), indexing="ij")
    upper = (i < j) | ((i == j) & (ci <= cj))  # the entries below the diagonal read those above: exactly symmetric
    lo, hi = np.where(upper, i, j), np.where(upper, j, i)
    c_lo, c_hi = np.where(upper, ci, cj), np.where(upper, cj, ci)
    gather = (((lo * width + hi - lo) * c + c_lo) * c + c_hi).reshape(width * c, width * c)
    lower = np.tril(np.ones((w1, w1)))  # a cumulative sum over s as one product
    for v in (index, gather, lower):
        v.flags.writeable = False
    return index, gather, lower


def _gram_solve(gram: np.ndarray, cross: np.ndarray, n_rows: int) -> tuple[np.ndarray, int]:
    """Least squares from ``A^T A`` and ``A^T y``: Cholesky when clearly positive definite, else a pseudo-inverse.

    Returns the coefficients and the rank (by :func:`~kernel_recovery.model.spectrum.rank_tolerance`, ``"gram"``).
    """
    import scipy.linalg

    p = len(gram)
    if p == 0:
        return np.zeros((0,) + cross.shape[1:]), 0
    try:
        factor = scipy.linalg.cho_factor(gram)
        d = np.abs(np.diag(factor[0]))  # ~ the design's singular values, in scale
        if d.min() > 10 * rank_tolerance(d.max(), n_rows, p, "gram"):
            return scipy.linalg.cho_solve(factor, cross), p
    except np.linalg.LinAlgError:
        pass
    return _pinv_solve(gram, cross, n_rows)


def _pinv_solve(gram: np.ndarray, cross: np.ndarray, n_rows: int) -> tuple[np.ndarray, int]:
    """Least squares from ``A^T A`` and ``A^T y`` by an eigendecomposition (rank-deficient Grams)."""
    p = len(gram)
    lam, v = np.linalg.eigh(gram)
    s = np.sqrt(np.clip(lam, 0.0, None))
    keep = s > rank_tolerance(s.max(), n_rows, p, "gram")
    coef = v[:, keep] @ ((v[:, keep].T @ cross) / lam[keep, None])
    return coef, int(keep.sum())


#: A Gram is clearly positive definite where its Cholesky pivots exceed this many times the rank tolerance.
RANK_MARGIN = 10.0


def _nested_solve(
    gram: np.ndarray, cross: np.ndarray, inner: int, n_rows: int, margin: float = RANK_MARGIN
) -> tuple[np.ndarray, np.ndarray] | None:
    """Least squares on all columns and on the first ``inner`` ones from one Cholesky factor (the leading block of
    the factor is the factor of the leading block), where both Grams are clearly positive definite (the rule of
    :func:`_gram_solve`: every pivot above ``margin`` times the rank tolerance); None otherwise.  LAPACK's
    ``potrf``/``potrs`` are called directly (``cho_factor`` and ``cho_solve`` call them too, behind checks that cost
    more than these small solves)."""
    from scipy.linalg.lapack import dpotrf, dpotrs

    p = len(gram)
    factor, info = dpotrf(gram, lower=False, clean=False)
    if info != 0 or inner == 0:
        return None
    d = np.abs(factor.diagonal()).tolist()  # ~ the design's singular values, in scale (a few: Python's min/max)
    if min(d) <= margin * rank_tolerance(max(d), n_rows, p, "gram"):
        return None
    if min(d[:inner]) <= margin * rank_tolerance(max(d[:inner]), n_rows, inner, "gram"):
        return None
    coef, _ = dpotrs(factor, cross, lower=False)
    coef_in, _ = dpotrs(factor[:inner, :inner], cross[:inner], lower=False)
    return coef, coef_in


def _f_test(block: Block, e: int, use_bias: bool, n_out: int) -> dict[str, np.ndarray] | None:
    """One block's fit with ``e`` more canonical taps per side against its fit at ``kernel_size``, on a row sample.

    Per output channel of the block: ``rss`` (of the longer fit), ``yty``, ``share`` (of the residual the longer
    fit explains), ``p`` (the F-test's p-value), ``hit`` (flagged: p below ``CHECK_ALPHA / n_out`` and share at least
    ``CHECK_EFFECT``) and ``ext``, the longer fit's taps ``(taps + 2 e, channels, outputs)``.  None when the rows or
    the ranks leave no test.

    Both fits come from one Gram and one Cholesky factor: the columns are ordered restricted first (then the bias,
    then the extra taps), so the restricted fit is the leading block; the bias enters the Gram through the column
    sums instead of a column of ones.  Wide rows' Gram comes from its shift structure (:func:`_stretch_gram`).
    """
    stretches = _row_stretches(block, e)
    if stretches is None:
        return None
    a, y = _cut_rows(block, e, stretches)
    a = np.ascontiguousarray(a)  # (a slice's rows are a strided view: BLAS would copy it for each product)
    n, taps = a.shape
    _, inner, order, flat = _columns(block.taps, block.channels, e, block.mask.tobytes(), use_bias)
    p = taps + int(use_bias)
    with SerialBLAS():  # small BLAS/LAPACK calls: OpenBLAS threads only slow them down on shared cores
        structured = n * taps * taps > STRUCTURED_GRAM
        sums = a.sum(axis=0) if use_bias else None
        gram = _bordered(_stretch_gram(block, e, stretches, a) if structured else a.T @ a, sums, n)
        cross = a.T @ y
        if use_bias:  # (the bias column after the taps' columns)
            cross = np.concatenate([cross, y.sum(axis=0)[None]])
        both = _nested_solve(
            gram.take(flat).reshape(p, p), cross[order], len(inner), n, STRUCTURED_MARGIN if structured else RANK_MARGIN
        )
        if both is None and structured:  # near the rank rule the fits follow the Gram's rounding: A^T A itself
            gram = _bordered(a.T @ a, sums, n)
            both = _nested_solve(gram.take(flat).reshape(p, p), cross[order], len(inner), n)
        coef_e, coef_r = np.empty_like(cross), np.zeros_like(cross)
        if both is not None:
            coef_e[order], coef_r[inner] = both
            rank_e, rank_r = p, len(inner)
        else:  # rank-deficient: each by a pseudo-inverse, in the columns' own order
            coef_e, rank_e = _gram_solve(gram, cross, n)
            coef_r[inner], rank_r = _gram_solve(gram[np.ix_(inner, inner)], cross[inner], n)
    q, dof = rank_e - rank_r, n - rank_e
    if q <= 0 or dof <= 10:
        return None
    resid_e, resid_r = y - a @ coef_e[:taps], y - a @ coef_r[:taps]
    if use_bias:
        resid_e -= coef_e[taps]
        resid_r -= coef_r[taps]
    rss_e, rss_r, yty = (resid_e * resid_e).sum(axis=0), (resid_r * resid_r).sum(axis=0), (y * y).sum(axis=0)
    share, p_value, hit = _f_statistics(rss_e, rss_r, yty, q, dof, n_out)
    width = block.taps + 2 * e
    ext = coef_e[: width * block.channels].reshape(width, block.channels, -1)
    return {"rss": rss_e, "yty": yty, "share": share, "p": p_value, "hit": hit, "ext": ext}


def _f_statistics(
    rss_e: np.ndarray, rss_r: np.ndarray, yty: np.ndarray, q: int, dof: int, n_out: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per output, from the longer and the restricted fits' rss: the share of the residual the longer fit explains,
    the F-test's p-value (``q`` extra columns, ``dof`` residual degrees of freedom) and the flag (p below
    ``CHECK_ALPHA / n_out``, share at least ``CHECK_EFFECT``, the restricted fit not exact)."""
    from scipy.special import fdtrc  # imported here: scipy.special costs ~0.2 s, tiny problems never get here

    gain = rss_r - rss_e
    if (rss_e > 0).all():  # (the usual case: no division by zero to guard)
        f_stats = (gain / q) / (rss_e / dof)
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            f_stats = np.where(rss_e > 0, (gain / q) / (rss_e / dof), np.inf)
    p_value = fdtrc(q, dof, np.maximum(f_stats, 0.0))
    shares = gain / rss_r if (rss_r > 0).all() else np.where(rss_r > 0, gain / np.where(rss_r > 0, rss_r, 1.0), 0.0)
    hit = (rss_r > 1e-12 * yty) & (p_value < CHECK_ALPHA / n_out) & (shares >= CHECK_EFFECT)
    return shares, p_value, hit


def kernel_size_check(problem: CanonicalProblem) -> tuple[str | None, float, str | None]:
    """Why the residual says the kernel is longer than ``kernel_size`` (None when it does not), and the fit's share.

    Returns the message (or None), the relative residual rms of the longer fit on the flagged output
    channels (``inf`` when none is flagged), so that :func:`kernel_recovery.diagnostics.checks.one_explanation` can
    weigh it against another setting that fits, and why no block could be checked (None when one was).

    On at most ``CHECK_ROWS`` rows, fits the kernel with ``CHECK_EXTRA`` extra canonical taps on each side and
    compares with the fit at ``kernel_size`` by an F-test per output channel; speaks when the longer fit explains
    at least 1% of the residual with p < 1e-6 (over all channels).  Fits exact to 1e-6 (relative rms) are
    left alone.  The cost is that of one Gram of at most ``CHECK_ROWS`` rows (:func:`check_row_budget`; for wide rows
    built from its shift structure, :func:`_stretch_gram`) and one Cholesky factor, whose leading block gives the fit
    at ``kernel_size`` (:func:`_f_test`).
    """
    cfg = problem.config
    e = CHECK_EXTRA
    flagged, shares, pvalues, sides = [], [], [], np.zeros(2)
    rss_flagged = yty_flagged = 0.0
    skipped = None
    checked = False
    for block in problem.blocks:
        if block.ys is None:
            return None, np.inf, "no outputs"
        cols_ext = (block.taps + 2 * e) * block.channels + int(cfg.use_bias)
        if block.n_equations - cols_ext <= 10:
            skipped = "too few equations for an F-test"
            continue
        if cols_ext > 1024 or check_row_budget(block) < 4 * cols_ext + 64:
            skipped = f"{cols_ext} columns: a longer fit would cost too large a share of the solve"
            continue
        checked = True
        test = _f_test(block, e, cfg.use_bias, cfg.out_channels)
        if test is None:
            continue
        for j in np.flatnonzero(test["hit"]):
            rss_flagged += float(test["rss"][j])
            yty_flagged += float(test["yty"][j])
            flagged.append(int(block.out_channels[j]))
            shares.append(float(test["share"][j]))
            pvalues.append(float(test["p"][j]))
            ext = test["ext"]
            sides += [np.sum(ext[:e, :, j] ** 2), np.sum(ext[e + block.taps :, :, j] ** 2)]
    if not flagged:
        return None, np.inf, None if checked else skipped
    relative = float(np.sqrt(rss_flagged / yty_flagged)) if yty_flagged > 0 else 0.0
    return _kernel_size_message(problem, flagged, max(shares), min(pvalues), sides), relative, None


def _kernel_size_message(problem: CanonicalProblem, flagged: list[int], share: float, p: float, sides) -> str:
    """The sentence of a flag: the flagged output channels, the share explained, the p-value and which side."""
    cfg = problem.config
    s, _ = problem.tap_layout()
    before, after = (sides[1], sides[0]) if cfg.flip else (sides[0], sides[1])
    where = []
    if before > 0.1 * (before + after):
        where.append("before tap 0")
    if after > 0.1 * (before + after):
        where.append(f"after tap {cfg.kernel_size - 1}")
    chans = ", ".join(map(str, sorted(flagged)))
    return (
        f"the residual says the kernel is longer than kernel_size={cfg.kernel_size}: allowing {CHECK_EXTRA * s} more "
        f"tap(s) on each side explains {share:.0%} of the residual of output channel(s) {chans} "
        f"(F-test p={max(p, 1e-300):.1e}"
        f"); the missing coefficients lie {' and '.join(where) or 'outside the support'}. Use a larger kernel_size "
        "(kr.select_kernel_size compares candidates), or check the padding and alignment of y."
    )


# ----------------------------------------------------------------------------------------------
# Negative lags: a response before the input arrives
# ----------------------------------------------------------------------------------------------

#: Family-wise false-alarm rate of the test that the response at negative lags is zero.
NONCAUSAL_ALPHA = 1e-6


def negative_lag_check(config: ConvConfig, kernel: np.ndarray, stderr: np.ndarray) -> str | None:
    """A sentence when the kernel is significant at negative physical lags (None otherwise).

    Each coefficient at a negative lag is tested against zero with its standard error (Bonferroni over all of
    them at ``NONCAUSAL_ALPHA``).  A causal system cannot respond before its input: such a response means
    feedback from ``y`` to ``x`` (a closed loop) or an input recorded later than the output.  Kernels without
    negative lags give None.
    """
    lags = config.tap_lags()
    negative = lags < 0
    if not negative.any():
        return None
    from scipy.special import ndtri

    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.abs(kernel[negative]) / stderr[negative]
    z = np.where(np.isnan(z), 0.0, z)  # 0 / 0: an exact zero
    cut = float(-ndtri(NONCAUSAL_ALPHA / (2 * z.size)))
    hit = z > cut
    if not hit.any():
        return None
    found = lags[negative][hit.any(axis=(1, 2))]
    share = float(np.sum(kernel[negative] ** 2) / np.sum(kernel**2))
    return (
        f"the response is significant at negative lag(s) {int(found.min())}..{int(found.max())} ({share:.0%} of the "
        f"kernel's energy, |estimate| / stderr up to {float(z.max()):.3g}): a causal system cannot respond before "
        "its input, so feedback from y to x (a closed loop) or an input recorded later than the output is likely. "
        "Check the alignment of x and y, or model the loop."
    )


# ----------------------------------------------------------------------------------------------
# The lag scan: does the input explain the residual at lags far outside the kernel?
# ----------------------------------------------------------------------------------------------

#: Offsets searched beyond each end of the kernel: this many times its taps, at least ``SCAN_MIN``, at most a
#: quarter of the shortest subsequence (a response longer than that could not be estimated from the record).
SCAN_TAPS = 8
SCAN_MIN = 4096
#: Family-wise false-alarm rate over every (offset, channel, output) tested, and the least share of the residual.
SCAN_ALPHA = 1e-6
SCAN_EFFECT = 0.01
#: Offsets per band: the test sums squared standardized correlations over bands (power for spread-out tails).
SCAN_BAND = 32
#: Equations scanned per block: at most this many divided by its (input, output) channel pairs, at least
#: ``SCAN_MIN_ROWS`` (each pair costs one inverse FFT over the rows scanned).
SCAN_PAIR_ROWS = 1 << 15
SCAN_MIN_ROWS = 1 << 13


#: Order of the autoregressive (Yule-Walker) prewhitening of each input channel before the scan.
SCAN_ORDER = 16


def _fir_energy(filters: np.ndarray, acf: np.ndarray) -> np.ndarray:
    """``sum_t (f * v)[t]^2`` of the full FIR outputs, per column, from the autocorrelations of ``v`` at lags up to
    the filters' order (:func:`~kernel_recovery.model.whitening.autocorrelations`): ``f^T Toeplitz(acf) f``."""
    toeplitz = acf.T[:, _lag_index(len(filters))]  # (columns, taps, taps)
    f = filters.T[:, None, :]
    return (f @ toeplitz @ f.transpose(0, 2, 1)).ravel()


@functools.lru_cache(maxsize=8)
def _lag_index(taps: int) -> np.ndarray:
    """``|i - j|`` for ``i, j < taps`` (read-only: cached)."""
    lags = np.arange(taps)
    index = np.abs(lags[:, None] - lags[None, :])
    index.flags.writeable = False
    return index


#: A block with fewer equations is not scanned (too few for the bands' statistics).
SCAN_MIN_EQUATIONS = 64


def _scan_rows(block: Block, pair_rows: int = SCAN_PAIR_ROWS, min_rows: int = SCAN_MIN_ROWS) -> Block:
    """The block restricted to at most its scan budget of equations, taken from the middle of each subsequence."""
    budget = max(pair_rows // (block.channels * len(block.out_channels)), min_rows)
    xs, ys = [], []
    for x, y in zip(block.xs, block.outputs):
        take = min(len(y), budget)
        if take < 1:
            break
        a = (len(y) - take) // 2
        xs.append(x[a : a + take + block.taps - 1])
        ys.append(y[a : a + take])
        budget -= take
    return Block(xs, ys, block.taps, block.mask, block.out_channels)


def lag_scan(
    problem: CanonicalProblem,
    sol: Solution,
    *,
    pair_rows: int = SCAN_PAIR_ROWS,
    min_rows: int = SCAN_MIN_ROWS,
    min_reach: int = SCAN_MIN,
) -> tuple[str | None, float, str | None, tuple[int, int] | None]:
    """Why the residual says the response reaches beyond the kernel, whatever its size (None when it does not).

    Returns the message (or None), the relative residual rms once the flagged lags are explained, why no block
    could be scanned (None when one was), as :func:`kernel_size_check` does, and for a lag fit the lags that would
    cover the response (:func:`covering_lags`; None otherwise).

    The residual ``r`` of output ``o`` is cross-correlated (FFT) with every canonical input channel at offsets
    ``j`` outside the kernel, ``c(j) = sum_t r[t] x[t + j]``.  A residual that is white noise independent of
    ``x`` gives ``z(j) = c(j) / (sigma sqrt(sum x^2)) ~ N(0, 1)`` whatever the input's colour.  The squares are
    summed over bands of ``SCAN_BAND`` offsets (all input channels; offsets from ``SCAN_ORDER`` beyond each end,
    since whitening the residual spreads the in-support fitting error over the filter's length), chi-square under
    that null; a band is
    flagged above the larger of the chi-square threshold and a robust empirical one (median + MAD over the
    bands searched, since coloured data widen the null), Bonferroni at ``SCAN_ALPHA``.  Flagged bands must
    explain at least ``SCAN_EFFECT`` of the residual (their excess ``sum (z^2 - 1)`` over the equations, exact
    for a white input).  At most ``pair_rows / pairs`` (at least ``min_rows``) equations per block are scanned, at
    offsets up to ``max(SCAN_TAPS * taps, min_reach)`` beyond each end.

    Cost: per subsequence one real FFT of the input and the residual together and one inverse, of a fast length
    that holds the offsets (at least ``len(x) + reach + 2 SCAN_ORDER``: :func:`_scan_length`); the residual by
    :func:`~kernel_recovery.model.operator.correlate_valid` (blocked products) for short kernels and the everyday
    single pair up to ``PAIR_TAPS`` taps (written into the padded array transformed, whose rows give the
    autocorrelations), in that same FFT for long ones (:func:`_scan_spectra`); the prewhitening as one filter on the
    raw correlation and the energies from the autocorrelations (:func:`_whitened_correlations`,
    :func:`_pair_correlations`), no filtering pass.
    """
    cfg = problem.config
    if not sol.success:  # an unconverged kernel leaves correlation inside the support, which spreads out
        return None, np.inf, "the solver did not converge", None
    found: list[tuple[int, float, np.ndarray]] = []  # (output, share, offsets) per flagged output channel
    rss_after = yty_flagged = 0.0
    scanned, skipped = False, None
    biases: Sequence[np.ndarray | None] = sol.biases if sol.biases is not None else [None] * len(problem.blocks)
    for whole, w, b in zip(problem.blocks, sol.kernels, biases):
        if not whole.retains_rows or whole.ys is None:
            return None, np.inf, "the rows are not retained", None
        bias = None if b is None or not cfg.use_bias else b
        if whole.n_equations < SCAN_MIN_EQUATIONS:  # (as _scan_block would find on its rows: none cut)
            flags = None
        else:
            with SerialBLAS():  # its dot products and small GEMMs start OpenBLAS threads, which wait on shared cores
                flags = _scan_block(_scan_rows(whole, pair_rows, min_rows), w, bias, len(problem.blocks), min_reach)
        if flags is None:
            skipped = "too few equations to scan"
            continue
        scanned = True
        for o, share, offsets, rss, yty in flags:
            found.append((o, share, offsets))
            rss_after += rss * (1 - share)
            yty_flagged += yty
    if not found:
        return None, np.inf, None if scanned else skipped, None
    relative = float(np.sqrt(rss_after / yty_flagged)) if yty_flagged > 0 else 0.0
    return _lag_scan_message(problem, found), relative, None, covering_lags(problem, found)


def covering_lags(problem: CanonicalProblem, found: list[tuple[int, float, np.ndarray]]) -> tuple[int, int] | None:
    """For a lag fit, the lags ``(first, last)`` that cover its kernel and where the lag scan found the response
    (None for a Conv1D fit, which names a kernel size instead)."""
    cfg = problem.config
    if cfg.lags is None:
        return None
    lo, hi = _flagged_taps(problem, found)
    first, last = cfg.lags  # correlation index j is lag last - j
    return (min(first, last - hi), max(last, last - lo))


def _flagged_taps(problem: CanonicalProblem, found: list[tuple[int, float, np.ndarray]]) -> tuple[int, int]:
    """The first and last flagged correlation-order indices of the user kernel (canonical index x stride)."""
    s, _ = problem.tap_layout()
    return min(int(f[2].min()) for f in found) * s, max(int(f[2].max()) for f in found) * s + s - 1


@functools.lru_cache(maxsize=64)
def _scan_layout(taps: int, channels: int, reach: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The offsets scanned (from ``SCAN_ORDER`` beyond each end of the kernel, ``reach`` each side), and the first
    and last index into them and the number of N(0, 1) terms of each band (read-only: cached)."""
    # offsets from SCAN_ORDER beyond each end: whitening the residual spreads the in-support fitting error
    # over the filter's length (the refit with CHECK_EXTRA more taps covers the nearest ones)
    g = SCAN_ORDER
    offsets = np.concatenate([np.arange(-reach - g, -g), np.arange(taps + g, taps + g + reach)])
    starts = np.concatenate([np.arange(0, reach, SCAN_BAND), reach + np.arange(0, reach, SCAN_BAND)])
    ends = np.append(starts[1:], 2 * reach) - 1
    sizes = (ends + 1 - starts) * channels
    for a in (offsets, starts, ends, sizes):
        a.flags.writeable = False
    return offsets, starts, ends, sizes


def _median(a: np.ndarray) -> np.ndarray:
    """``numpy.median(a, axis=0)`` for finite ``a`` (one partition: the median's checks and copies cost more than the
    bands)."""
    k = len(a)
    part = np.partition(a, [(k - 1) // 2, k // 2], axis=0)
    return 0.5 * (part[(k - 1) // 2] + part[k // 2])


@functools.lru_cache(maxsize=64)
def _band_cuts(taps: int, channels: int, reach: int, tests: int) -> tuple[np.ndarray, float]:
    """Per band of :func:`_scan_layout`, the upper ``SCAN_ALPHA / tests`` quantile of chi-square with its number of
    terms (read-only: cached; one ``chdtri`` per distinct size, two at most), and the normal one."""
    from scipy.special import chdtri, ndtri  # (imported once a scan runs; not scipy.stats: a slower import)

    sizes = _scan_layout(taps, channels, reach)[3]
    alpha = SCAN_ALPHA / tests
    cut = np.full(len(sizes), chdtri(sizes[0], alpha))
    odd = sizes != sizes[0]
    if odd.any():
        cut[odd] = chdtri(sizes[odd], alpha)
    cut.flags.writeable = False
    return cut, float(-ndtri(alpha))


def _scan_block(
    block: Block, w: np.ndarray, b: np.ndarray | None, n_blocks: int, min_reach: int = SCAN_MIN
) -> list[tuple[int, float, np.ndarray, float, float]] | None:
    """The flagged output channels of one block: ``(output, share, offsets of the flagged bands' ends, rss, y'y)``.

    None when the block has too few equations to scan.
    """
    reach = min(max(SCAN_TAPS * block.taps, min_reach), min(len(x) for x in block.xs) // 4)
    m = block.n_equations
    if reach < 1 or m < SCAN_MIN_EQUATIONS:
        return None
    offsets, starts, ends, sizes = _scan_layout(block.taps, block.channels, reach)
    if _one_pair(block):
        corr, sxx, srr, rss = _pair_correlations(block, w, b, reach, offsets)
    else:
        corr, sxx, srr, rss = _whitened_correlations(block, _scan_spectra(block, w, b, reach), offsets)
    # sum z^2 over each band, z = c / sqrt(sxx srr / m): the squares summed per (channel, output), then scaled
    # (a zero energy has zero correlations: its terms count 0)
    den = sxx[:, None] * srr[None, :]
    scale = m / den if (den > 0).all() else m / np.where(den > 0, den, np.inf)  # (channels, outputs)
    bands = np.einsum("bco,co->bo", np.add.reduceat(corr * corr, starts, axis=0), scale)  # (bands, outputs)
    chi2, normal = _band_cuts(block.taps, block.channels, reach, bands.size * n_blocks)
    if not (bands > chi2[:, None]).any():  # (below the chi-square threshold, below the larger one too)
        return []
    # the larger of the chi-square threshold and a robust empirical one (coloured data widen the null), per output
    centre = _median(bands)
    spread = 1.4826 * _median(np.abs(bands - centre))
    hit = bands > np.maximum(chi2[:, None], centre + normal * spread)
    if not hit.any():
        return []
    excess = np.sum(np.where(hit, bands - sizes[:, None], 0.0), axis=0)
    shares = np.minimum(excess / m, 1.0)  # sum c^2 / sum x^2 over rss
    found = np.flatnonzero(hit.any(axis=0) & (shares >= SCAN_EFFECT))
    if not len(found):
        return []
    yty = np.sum([np.sum(y**2, axis=0) for y in block.outputs], axis=0)
    flags = []
    for j in found:
        if rss[j] <= 1e-12 * yty[j]:  # an exact fit: what is left is rounding
            continue
        h = hit[:, j]
        edges = np.concatenate([offsets[starts[h]], offsets[ends[h]]])
        flags.append((int(block.out_channels[j]), float(shares[j]), edges, rss[j], float(yty[j])))
    return flags


#: Residuals of at most this many taps x channels x outputs are one
#: :func:`~kernel_recovery.model.operator.correlate_valid` per (channel, output) pair (blocked products); longer
#: kernels of at most ``FFT_RESIDUAL_PAIRS`` (channel, output) pairs are applied in the scan's own FFT (its
#: transform of x is needed anyway); the rest, by the forward model (design rows or FFT blocks).
DIRECT_RESIDUAL = 64
FFT_RESIDUAL_PAIRS = 4
#: Single-pair kernels of at most ``PAIR_TAPS`` taps take :func:`_pair_correlations` (their residual by
#: :func:`~kernel_recovery.model.operator.correlate_valid`: at 32,768 rows and 128 taps ~0.23 ms, against ~0.35 ms
#: for the two transforms of the FFT residual).
PAIR_TAPS = 128
#: Arrays of at most this many samples per row are transformed in one call (pocketfft runs two rows as one vector,
#: ~1.15x the time of one); longer rows one at a time (there the vectorized rows leave the cache: 3-4x the time).
BATCHED_FFT = 1 << 14


@functools.lru_cache(maxsize=256)
def _scan_length(least: int) -> int:
    """The scan's FFT length for at least ``least`` samples: of the 5-smooth lengths up to 1.25 times the least one
    (``scipy.fft.next_fast_len``), the one of least ``n log2(n) (0.62 - 0.01 min(twos, 12))``: pocketfft's time per
    ``n log n`` falls with the factors of two (measured, ns: 36864 0.49, 38400 0.52, 37500 0.56-0.60, 13122 0.66):
    38400 instead of 37500 for the L=1e5 scan, ~10 % less per transform."""
    import scipy.fft

    first = scipy.fft.next_fast_len(least, real=True)
    best, cost = first, np.inf
    p3 = 1
    while p3 <= 1.25 * first:
        p35 = p3
        while p35 <= 1.25 * first:
            n, twos = p35, 0
            while n < least:
                n, twos = 2 * n, twos + 1
            if n <= 1.25 * first:
                c = n * np.log2(n) * (0.62 - 0.01 * min(twos, 12))
                if c < cost or (c == cost and n < best):
                    best, cost = n, c
            p35 *= 5
        p3 *= 3
    return int(best)


def _rfft_rows(a: np.ndarray, n: int | None = None) -> np.ndarray:
    """``scipy.fft.rfft(a, n, axis=1)`` of a 2-D array: in one call for rows of at most ``BATCHED_FFT`` samples, else
    row by row (the same transforms)."""
    import scipy.fft

    size = a.shape[1] if n is None else n
    if size <= BATCHED_FFT or len(a) == 1:
        return scipy.fft.rfft(a, n, axis=1)
    return np.stack([scipy.fft.rfft(row, n) for row in a])


def _irfft_rows(a: np.ndarray, n: int) -> np.ndarray:
    """``scipy.fft.irfft(a, n, axis=-1)`` (batched as :func:`_rfft_rows`), the rows over the leading axes."""
    import scipy.fft

    if n <= BATCHED_FFT or a.size == a.shape[-1]:
        return scipy.fft.irfft(a, n, axis=-1)
    flat = a.reshape(-1, a.shape[-1])
    return np.stack([scipy.fft.irfft(row, n) for row in flat]).reshape(a.shape[:-1] + (n,))


def _filtered_offsets(before: np.ndarray, after: np.ndarray, h: np.ndarray) -> np.ndarray:
    """``sum_d h[d + g] c(j + d)`` at the scan's offsets (:func:`_scan_layout`; ``g = SCAN_ORDER``) from the raw
    correlation ``c`` at ``-reach - 2g .. -1`` (``before``) and ``taps .. taps + reach + 2g - 1`` (``after``): one
    :func:`~kernel_recovery.model.operator.correlate_valid` over the two (none over the entries between)."""
    span, taps = len(before), len(h)
    corr = correlate_valid(np.concatenate([before, after]), h)  # (one call: the outputs across the seam dropped)
    return np.concatenate([corr[: span - taps + 1], corr[span:]])


def _scan_spectra(
    block: Block, w: np.ndarray, b: np.ndarray | None, reach: int
) -> list[tuple[int, int, np.ndarray, np.ndarray]]:
    """Per subsequence: the residual's length, the length ``n`` of the scan's FFT (the least that holds the offsets
    of :func:`_whitened_correlations` without wrapping), the spectra ``rfft([x, r], n)`` ``(channels + outputs, f)``
    of the input and the residual ``r = y - forward(block, w, b)``
    (:func:`~kernel_recovery.model.operator.forward`, the same to rounding), and their autocorrelations
    ``(SCAN_ORDER + 1, channels + outputs)`` (:func:`~kernel_recovery.model.whitening.autocorrelations`).

    Short kernels' residuals are written straight into the zero-padded array transformed (one
    :func:`~kernel_recovery.model.operator.correlate_valid` per (channel, output) pair), whose rows then give the
    autocorrelations (one ``numpy.correlate`` each, no copy).
    """
    import scipy.fft

    g = SCAN_ORDER
    c, o = block.channels, len(block.out_channels)
    kernel = w if block.mask.all() else np.where(block.mask[:, :, None], w, 0.0)
    direct = block.taps * c * o <= DIRECT_RESIDUAL
    in_fft = not direct and c * o <= FFT_RESIDUAL_PAIRS
    predictions = None if direct or in_fft else forward(block, w, b)
    out = []
    for i, (x, y) in enumerate(zip(block.xs, block.outputs)):
        n = _scan_length(len(x) + reach + 2 * g)
        m = len(y)
        if in_fft:  # f[t] = sum_j x[t + j] w[j] = irfft(X conj(W))[t]: no wrap for t < len(y), since n > len(x) + taps
            fx = scipy.fft.rfft(x.T, n, axis=1)  # (c, f)
            fw = scipy.fft.rfft(kernel.transpose(1, 2, 0), n, axis=2)  # (c, o, f)
            f = scipy.fft.irfft(np.sum(fx[:, None] * np.conj(fw), axis=0), n, axis=1)[:, :m]
            r = y - f.T
            if b is not None:
                r -= b
            acf = np.concatenate([autocorrelations([x], g), autocorrelations([r], g)], axis=1)
            out.append((m, n, np.concatenate([fx, scipy.fft.rfft(r.T, n, axis=1)]), acf))
            continue
        both = np.zeros((c + o, n))  # [x; r], zero-padded
        both[:c, : len(x)] = x.T
        r = both[c:, :m]
        r[:] = y.T if predictions is None else (y - predictions[i]).T
        if predictions is None:
            for ch in range(c):
                for k in range(o):  # [t] = sum_j x[t + j] w[j] (the padding's zeros past x: no copy)
                    r[k] -= correlate_valid(both[ch], np.ascontiguousarray(kernel[:, ch, k]), m)
            if b is not None:
                r -= b[:, None]
        acf = np.empty((g + 1, c + o))
        for row in range(c + o):  # [lag] = sum_t v[t + lag] v[t] (the padding's zeros past the end)
            length = len(x) if row < c else m
            acf[:, row] = np.correlate(both[row, : length + g], both[row, :length], "valid")
        out.append((m, n, _rfft_rows(both), acf))  # (one call for the input and the residual where short)
    return out


def _whitened_correlations(
    block: Block, spectra: list[tuple[int, int, np.ndarray, np.ndarray]], offsets: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``sum_t r[t] x[t + j]`` at ``offsets`` ``(offsets, channels, outputs)`` of the prewhitened input and residual,
    their energies ``sum x^2`` (scaled to the residual's length) and ``sum r^2``, and the raw residual's ``rss``,
    from the spectra and autocorrelations of :func:`_scan_spectra`.

    Prewhitened (AR prediction errors of x and of r): the standardized correlations are then N(0, 1) and
    uncorrelated across offsets under the null, whatever the colour of the input and of the noise.  The AR fits and
    the energies come from one set of autocorrelations (the energy of a filtered sequence is that of the filter's
    autocorrelation against the sequence's); whitening x by ``wx`` and r by ``wr`` is one filter on their raw
    correlation ``c``: the whitened one at offset ``j`` is ``sum_d h[d] c(j + d)``, ``d = -g .. g``,
    ``h[d] = sum_a wx[a] wr[a + d]``, so ``c`` (one inverse FFT) is taken ``g`` further on each side.
    """

    g = SCAN_ORDER
    c, o = block.channels, len(block.out_channels)
    pooled = spectra[0][3] if len(spectra) == 1 else np.sum([s[3] for s in spectra], axis=0)  # (lags, c + o)
    filters = prediction_filters(pooled)  # both AR fits in one solve
    wx, wr = filters[:, :c], filters[:, c:]
    energies = []
    for (m, _, _, a), x in zip(spectra, block.xs):
        e = _fir_energy(filters, a)
        e[:c] *= m / len(x)  # (the input's energy scaled to the residual's length)
        energies.append(e)
    energy = energies[0] if len(energies) == 1 else np.sum(energies, axis=0)
    lo, hi = int(offsets[0]) - g, int(offsets[-1]) + g + 1  # (offsets ascend: lo < 0 < hi, hi - lo <= n)
    raws = []
    for _, n, both, _ in spectra:
        full = _irfft_rows(both[:c, None] * np.conj(both[None, c:]), n)  # [j] = sum_t r[t] x[t + j]
        raws.append(np.concatenate([full[:, :, n + lo :], full[:, :, :hi]], axis=2))
    raw = raws[0] if len(raws) == 1 else np.sum(raws, axis=0)
    corr = np.empty((len(offsets), c, o))
    span = (len(offsets) // 2) + 2 * g  # (reach + 2g: the raw correlation each side of the kernel)
    for i in range(c):
        for k in range(o):
            h = np.correlate(wr[:, k], wx[:, i], "full")  # [d + g]
            corr[:, i, k] = _filtered_offsets(raw[i, k, :span], raw[i, k, -span:], h)
    return corr, energy[:c], energy[c:], pooled[0, c:]


def _one_pair(block: Block) -> bool:
    """Whether a block is the everyday fit's: one input channel, one output, one subsequence and a kernel short
    enough for a direct residual (at most ``PAIR_TAPS``: :func:`_pair_correlations`)."""
    return len(block.xs) == 1 and block.mask.shape[1] == 1 and len(block.out_channels) == 1 and block.taps <= PAIR_TAPS


def _pair_correlations(
    block: Block, w: np.ndarray, b: np.ndarray | None, reach: int, offsets: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``_whitened_correlations(block, _scan_spectra(block, w, b, reach), offsets)`` for a block of one input
    channel, one output and one subsequence with a short kernel (:func:`_one_pair`): the same operations on 1-D
    arrays, without the loops over channel pairs and subsequences (the same numbers, bit for bit, for kernels of at
    most ``DIRECT_RESIDUAL`` taps; longer ones' residual is direct here, by FFT there: the same to rounding)."""
    import scipy.fft

    g = SCAN_ORDER
    x, y = block.xs[0][:, 0], block.outputs[0][:, 0]
    lx, m = len(x), len(y)
    n = _scan_length(lx + reach + 2 * g)
    kernel = w[:, 0, 0] if block.mask.all() else np.where(block.mask[:, 0], w[:, 0, 0], 0.0)
    both = np.zeros((2, n))  # [x; r], zero-padded
    both[0, :lx] = x
    r = both[1, :m]
    r[:] = y
    r -= correlate_valid(both[0], kernel, m)  # [t] = sum_j x[t + j] w[j] (the padding's zeros past x: no copy)
    if b is not None:
        r -= b[0]
    acf = np.empty((g + 1, 2))  # [lag] = sum_t v[t + lag] v[t] (the padding's zeros past the end)
    acf[:, 0] = np.correlate(both[0, : lx + g], both[0, :lx], "valid")
    acf[:, 1] = np.correlate(both[1, : m + g], r, "valid")
    fx, fr = _rfft_rows(both)
    filters = prediction_filters(acf)
    energy = _fir_energy(filters, acf)
    energy[0] *= m / lx  # (the input's energy scaled to the residual's length)
    lo, hi = int(offsets[0]) - g, int(offsets[-1]) + g + 1
    cross = np.multiply(fx, np.conjugate(fr, out=fr), out=fr)  # (in place)
    full = scipy.fft.irfft(cross, n)  # [j] = sum_t r[t] x[t + j]
    h = np.correlate(filters[:, 1], filters[:, 0], "full")  # [d + g]
    corr = _filtered_offsets(full[n + lo :], full[hi + lo : hi], h)  # (-lo = reach + 2g entries each side)
    return corr[:, None, None], energy[:1], energy[1:], acf[0, 1:]


def _lag_scan_message(problem: CanonicalProblem, found: list[tuple[int, float, np.ndarray]]) -> str:
    """The sentence of a lag-scan flag: where the response lies beyond the kernel, and the setting that covers it."""
    cfg = problem.config
    lo, hi = _flagged_taps(problem, found)
    k = cfg.kernel_size
    chans = ", ".join(str(f[0]) for f in sorted(found))
    share = max(f[1] for f in found)
    new = covering_lags(problem, found)
    if cfg.lags is not None and new is not None:  # correlation index j is lag last - j
        first, last = cfg.lags
        where, fix = f"at lags {last - hi}..{last - lo}", f"Use lags={new} (kr.select_lags chooses them)"
        if new[0] < 0 <= first:
            fix += "; a response at negative lags means feedback from y to x or a misaligned input"
    else:
        parts = []
        before, after = (hi >= k, lo < 0) if cfg.flip else (lo < 0, hi >= k)
        if before:
            parts.append(f"before tap 0 (to about {k - 1 - hi if cfg.flip else lo})")
        if after:
            parts.append(f"after tap {k - 1} (to about {k - 1 - lo if cfg.flip else hi})")
        where = " and ".join(parts)
        longer = k + max(hi - k + 1, 0) + max(-lo, 0)
        fix = f"Use kernel_size={longer} or more (kr.select_kernel_size compares candidates), or check the alignment"
    return (
        f"the response is longer than the kernel ({cfg.describe()}): the input explains {share:.0%} of the residual "
        f"of output channel(s) {chans} at taps outside it, {where}. {fix}."
    )
