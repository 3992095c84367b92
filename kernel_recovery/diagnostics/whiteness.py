"""Is the residual white?  A Ljung-Box test per output channel (:func:`whiteness_check`)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TypedDict

import numpy as np

from ..model.problem import CanonicalProblem
from ..model.result import Solution
from .specification import Rows, block_rows, centred_products, special

#: Residual rows per block the whiteness check uses at most (the first rows of the sequences, in order).
WHITENESS_ROWS = 1 << 14
#: Lags of the Ljung-Box statistic: ``min(WHITENESS_LAGS, n // 5)`` (statsmodels' default).
WHITENESS_LAGS = 10
#: Family-wise level (over the output channels, Bonferroni) below which the residual is called not white.
WHITENESS_ALPHA = 1e-3
#: Output channels whose residual rms is at most this share of y's are at rounding level (noiseless data): skipped.
WHITENESS_ROUNDING = 1e-8
#: Fewest residual rows per output channel for the test.
WHITENESS_MIN_ROWS = 50


class Whiteness(TypedDict):
    """What :func:`whiteness_check` finds (see there)."""

    statistic: np.ndarray
    p_value: np.ndarray
    lags: int
    rows: int
    alpha: float
    message: str | None


def ljung_box(residuals: Sequence[np.ndarray], lags: int) -> np.ndarray:
    """The Ljung-Box statistic ``Q`` per column of residual sequences ``(n_i, O)``.

    ``Q = n (n + 2) sum_{k=1}^{h} r_k^2 / n_k`` with ``r_k = sum_i sum_t e_t e_{t+k} / sum e^2`` (the mean
    removed, pooled over the sequences; products never cross from one sequence to the next) and ``n_k``
    the number of products at lag ``k``; for one sequence ``n_k = n - k``, the textbook statistic (as
    statsmodels' ``acorr_ljungbox``).  Under white noise ``Q`` is about chi-square with ``h`` degrees of freedom.
    """
    lengths = [len(e) for e in residuals]
    stacked = np.concatenate(residuals)
    return np.array([ljung_box_statistic(np.ascontiguousarray(c), lengths, lags) for c in stacked.T])


def ljung_box_statistic(e: np.ndarray, lengths: Sequence[int], lags: int) -> float:
    """:func:`ljung_box`'s ``Q`` of one output channel's residual ``e`` (1-D, the sequences of ``lengths``
    concatenated): the lagged products of the centred residual in one ``numpy.correlate`` per sequence."""
    n = len(e)
    if n == 0:
        return 0.0
    return ljung_box_of(centred_products(e, lengths, lags)[1], n, lengths, lags)


def ljung_box_of(gamma: np.ndarray, n: int, lengths: Sequence[int], lags: int) -> float:
    """:func:`ljung_box_statistic` from the centred residual's lagged products ``gamma`` (at least ``lags + 1``,
    :func:`.specification.centred_products`) of ``n`` rows in sequences of ``lengths``."""
    if not gamma[0] > 0:
        return 0.0
    r = gamma[1 : lags + 1] / gamma[0]
    return float(n * (n + 2) * (r * r).dot(_inverse_pairs(tuple(lengths), lags)))


@functools.lru_cache(maxsize=64)
def _inverse_pairs(lengths: tuple[int, ...], lags: int) -> np.ndarray:
    """``1 / n_k`` for ``k = 1 .. lags``: the products at lag ``k`` within the sequences (0 where there are none).
    Read-only."""
    pairs = np.maximum(np.asarray(lengths)[:, None] - np.arange(1, lags + 1), 0).sum(axis=0)
    inverse = np.divide(1.0, pairs, out=np.zeros(lags), where=pairs > 0)
    inverse.flags.writeable = False
    return inverse


def whiteness_check(
    problem: CanonicalProblem,
    sol: Solution,
    max_rows: int = WHITENESS_ROWS,
    rows: Sequence[Rows | None] | None = None,
) -> tuple[Whiteness | None, str | None]:
    """A Ljung-Box test of the residual's whiteness, per output channel, or why it could not run.

    The residual ``y - A w`` of the solution is computed on at most ``max_rows`` rows of each block
    (one forward pass over those rows, :func:`.specification.block_rows`, or the first ``max_rows`` of ``rows``
    where the caller has them: the specification tests read the same); its autocorrelation at lags ``1 .. h``
    (``h = min(10, n // 5)``) gives :func:`ljung_box`'s ``Q``, with p-values from the chi-square law with ``h``
    degrees of freedom.  A p-value below ``WHITENESS_ALPHA`` (over all output channels, Bonferroni) says the
    residual is not white: the noise is coloured, or the model leaves structure in ``y``.  The standard errors, the
    intervals and the report's expected errors assume white noise; the message says so.

    Returns
    -------
    dict or None
        ``statistic`` and ``p_value`` per output channel (NaN where skipped: a residual at rounding level),
        ``lags``, ``rows`` (per output channel), ``alpha`` and ``message`` (None when white); None when no
        output channel could be tested.
    str or None
        Why no output channel could be tested (None when one was).

    Notes
    -----
    The chi-square law ignores the fitted coefficients (exact for a regression on an input independent of
    the noise as ``n`` grows; ARMA fits would subtract their parameters from ``h``).  The check does not warn:
    at ``WHITENESS_ALPHA`` it would still fire on one white record in a thousand, and a coloured noise does
    not bias the least-squares kernel, only its standard errors.
    """
    found: dict[int, tuple[float, int]] = {}  # output channel: (Q, its lags)
    n_rows = 0
    lags = 0
    reason = "the residual is at rounding level (noiseless data)"
    for b, block in enumerate(problem.blocks):
        if not block.retains_rows or block.ys is None:
            return None, "the rows are not retained (streamed statistics only)"
        sample = rows[b] if rows is not None else None
        if sample is None:  # (with the caller's sample, a block of too few rows is told below: the same sentence)
            equations = block.n_equations
            if equations < WHITENESS_MIN_ROWS:  # (its sample holds every row: too few, without a forward pass)
                reason = f"too few residuals ({equations} per output channel, at least {WHITENESS_MIN_ROWS} needed)"
                continue
            sample = block_rows(problem, sol, b, max_rows)
            if sample is None:
                return None, "the solution is not finite"
        n = sample.y.shape[1]
        if n > max_rows:
            sample, n = sample.head(max_rows), max_rows
        h = min(WHITENESS_LAGS, n // 5)
        if n < WHITENESS_MIN_ROWS or h < 1:
            reason = f"too few residuals ({n} per output channel, at least {WHITENESS_MIN_ROWS} needed)"
            continue
        tested = False
        resid, ys, products, lengths = sample.resid, sample.y, sample.products, sample.lengths
        for j, o in enumerate(block.out_channels.tolist()):
            e, y = resid[j], ys[j]
            if float(e.dot(e)) > WHITENESS_ROUNDING**2 * float(y.dot(y)):  # else at rounding level: skipped
                gamma = products[j][1] if j in products else None  # (the bias test's, on these rows)
                if gamma is None or len(gamma) <= h:
                    gamma = centred_products(e, lengths, h)[1]
                found[o] = ljung_box_of(gamma, n, lengths, h), h
                tested = True
        if tested:
            n_rows, lags = max(n_rows, n), max(lags, h)
    if not found:
        return None, reason
    stat, pval = np.full((2, problem.config.out_channels), np.nan)
    chdtrc, tests = special().chdtrc, len(found)
    flagged = []
    for o, (q, h) in found.items():  # (a channel or two: scalars, not the arrays' fancy indexing)
        stat[o] = q
        pval[o] = p = float(chdtrc(h, q))
        if p * tests < WHITENESS_ALPHA:
            flagged.append(o)
    message = _whiteness_message(np.array(sorted(flagged), dtype=int), pval, lags) if flagged else None
    entry: Whiteness = {
        "statistic": stat,
        "p_value": pval,
        "lags": int(lags),
        "rows": int(n_rows),
        "alpha": WHITENESS_ALPHA,
        "message": message,
    }
    return entry, None


def _whiteness_message(flagged: np.ndarray, pval: np.ndarray, lags: int) -> str:
    """The sentence of a whiteness flag: the output channels, the smallest p-value and what to do."""
    chans = ", ".join(map(str, flagged))
    worst = float(np.min(pval[flagged]))
    p_text = f"p={worst:.1e}" if worst >= 1e-300 else "p<1e-300"
    return (
        f"the residual of output channel(s) {chans} is not white (Ljung-Box over {lags} lags, {p_text}): the "
        "noise is coloured, or the model leaves structure in y. The standard errors and intervals assume white "
        "noise and are not to be trusted; prewhiten x and y with the same filter (e.g. an AR model fitted to "
        "the residual) and recover again, or use a noise model."
    )
