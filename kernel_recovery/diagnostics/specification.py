"""Specification tests of a fit: is ``y`` a linear convolution of ``x`` (with the given bias) at all?

Three cheap tests, each on the fit's residual ``e = y - A w (- b)`` and fitted values ``f = A w (+ b)``, with a
stated false-alarm rate (measured by ``benchmarks/misfit.py``):

:func:`saturation_test`
    Mass of ``y`` at one value: the share of samples at ``max(y)``, ``min(y)`` or exactly 0.  A continuous output
    takes each value once; a clipped, saturated or rectified output (a ReLU) takes its limit in many samples.  The
    count ``n_v`` at the value is compared with the count ``c`` at the most frequent other value (1 for continuous
    data; the mode of quantized data): ``p = P(Bin(n_v + c, 1/2) >= n_v)`` is the chance of so many under "the value
    is no more frequent than the mode".  Flagged when ``p`` (Bonferroni over values and channels) is below
    :data:`ALPHA` and the value holds at least :data:`MIN_SHARE` of the samples.  False alarms: none for continuous
    outputs (ties have probability 0); for quantized outputs only where a limit is more frequent than every interior
    value, which a unimodal quantized law does not give.  Cost: a min, a max and three counts of at most :data:`ROWS`
    samples per channel; a sort only where a limit (or 0) occurs more than once.
:func:`reset_test`
    Ramsey's RESET: does the residual depend on powers 2 and 3 of the fitted values?  ``z = [f^2, f^3]`` (``f``
    standardized) is regressed on ``[1, f]`` and the score ``s = z~' e`` is tested with a heteroskedasticity and
    autocorrelation consistent (Newey-West) covariance ``Omega``: ``s' Omega^-1 s ~ chi^2(2)``.  Because ``e`` is
    the residual of a fit whose columns contain ``f``, ``Var(s) = sigma^2 z~'(I - H) z~ <= sigma^2 z~' z~``: the
    test is conservative, its false-alarm rate at most :data:`ALPHA` per call (Bonferroni over channels).
:func:`bias_test`
    With ``use_bias=False``: is the residual's mean nonzero?  ``(sum e)^2 / Omega ~ chi^2(1)``, the same Newey-West
    variance; conservative for the same reason.

The tests read the first :data:`ROWS` equations of each block (contiguous, so that the Newey-West lags are time
lags): :func:`block_rows`, one forward pass over those rows (``O(ROWS x taps)``; one correlation for a
single-channel block), shared with the whiteness check.  Each test is then a few ``O(ROWS)`` passes: the
regression of RESET is a 2 x 2 system from four sums (its columns are standardized), and the Newey-West covariance
is read off the lagged products of the score terms, one ``numpy.correlate`` per pair of terms (``O(ROWS x
NW_LAGS)`` in one call, not a Python loop over the lags).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..model.operator import correlate_valid, forward
from ..model.problem import Block, CanonicalProblem
from ..model.result import Solution

#: Family-wise false-alarm rate of each test per call (over output channels, Bonferroni).
ALPHA = 1e-3
#: The smallest share of samples at one value that the saturation test calls a misfit (a material one).
MIN_SHARE = 0.01
#: Residual rows per block the tests read at most (the first equations of its sequences, in order).
ROWS = 1 << 13
#: Fewest rows for the tests.
MIN_ROWS = 50


@dataclasses.dataclass(frozen=True)
class Rows:
    """The first equations of one block, in order over its sequences (what the specification tests and the
    whiteness check read).

    Attributes
    ----------
    out_channels : ndarray of int
        The user's output channels of the block.
    y, fitted, resid : ndarray, shape (O, n)
        The outputs, the fitted values ``A w (+ b)`` and the residual ``y - fitted``, one contiguous row per output
        channel (the sequences' rows concatenated).
    lengths : tuple of int
        The rows of each sequence, in order (lagged products never cross from one to the next).
    products : dict
        Per output channel (its row), the residual's sum and centred lagged products (:func:`centred_products`),
        computed by the first test that needs them and read by the others on the same rows (the bias test and the
        whiteness check).
    """

    out_channels: np.ndarray
    y: np.ndarray
    fitted: np.ndarray
    resid: np.ndarray
    lengths: tuple[int, ...]
    products: dict[int, tuple[float, np.ndarray]] = dataclasses.field(default_factory=dict, compare=False, repr=False)

    @property
    def n(self) -> int:
        return self.y.shape[1]

    def head(self, count: int) -> Rows:
        """The first ``count`` rows (all of them when there are fewer)."""
        if count >= self.n:
            return self
        lengths, left = [], count
        for m in self.lengths:
            if left <= 0:
                break
            lengths.append(min(m, left))
            left -= m
        return Rows(self.out_channels, self.y[:, :count], self.fitted[:, :count], self.resid[:, :count], tuple(lengths))


def block_rows(problem: CanonicalProblem, sol: Solution, block_index: int, rows: int = ROWS) -> Rows | None:
    """Outputs, fitted values and residuals of the first ``rows`` equations of a block (:class:`Rows`); None where
    the block does not retain its rows or the solution is not finite."""
    block = problem.blocks[block_index]
    if not block.retains_rows or block.ys is None:
        return None
    kernel = sol.kernels[block_index]
    bias = sol.biases[block_index] if problem.config.use_bias and sol.biases is not None else None
    if not np.isfinite(kernel).all() or (bias is not None and not np.isfinite(bias).all()):
        return None
    xs, ys, left = [], [], rows
    for x, y in zip(block.xs, block.ys):
        take = min(len(y), left)
        if take > 0:
            xs.append(x[: take + block.taps - 1])
            ys.append(y[:take])
            left -= take
    lengths = tuple(len(y) for y in ys)
    if not lengths:  # no equations: nothing for a test to read (each says so)
        empty = np.zeros((kernel.shape[2], 0))
        return Rows(block.out_channels, empty, empty, empty, ())
    if kernel.shape[1] == 1 and kernel.shape[2] == 1 and block.mask.all():
        # one input and one output channel: the fitted values are one correlation per sequence (a GEMM over the
        # design rows cut for it was 4-5x slower at 4096 rows)
        w = kernel[:, 0, 0]
        if len(xs) == 1:
            fitted = correlate_valid(xs[0][:, 0], w)
        else:
            fitted = np.concatenate([correlate_valid(x[:, 0], w) for x in xs])
        if bias is not None:
            fitted += bias[0]
        y_all = (ys[0][:, 0] if len(ys) == 1 else np.concatenate([y[:, 0] for y in ys]))[None]
        fitted = fitted[None]
    else:
        parts = forward(Block(xs, None, block.taps, block.mask, block.out_channels), kernel, bias)
        fitted = np.ascontiguousarray(np.concatenate(parts).T)
        y_all = np.ascontiguousarray(np.concatenate(ys).T)
    return Rows(block.out_channels, y_all, fitted, y_all - fitted, lengths)


def _segments(v: np.ndarray, lengths: Sequence[int]) -> list[np.ndarray]:
    """``v`` cut into its sequences."""
    if len(lengths) == 1:
        return [v]
    bounds = np.cumsum((0, *lengths))
    return [v[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


def lagged_products(v: np.ndarray, w: np.ndarray, lengths: Sequence[int], lags: int, both: bool = False) -> np.ndarray:
    """``sum_t v_{t+k} w_t`` for ``k = 0 .. lags`` (``-lags .. lags`` with ``both``), summed over the sequences
    (products never cross from one to the next): one ``numpy.correlate`` per sequence."""
    pad = np.zeros(lags)
    if len(lengths) == 1:
        return np.correlate(np.concatenate((pad, v, pad) if both else (v, pad)), w, mode="valid")
    out = np.zeros(2 * lags + 1 if both else lags + 1)
    for a, b in zip(_segments(v, lengths), _segments(w, lengths)):
        out += np.correlate(np.concatenate((pad, a, pad) if both else (a, pad)), b, mode="valid")
    return out


@functools.lru_cache(maxsize=64)
def _bartlett(lags: int) -> tuple[np.ndarray, np.ndarray]:
    """The Newey-West weights of the lagged products: of ``sum_t u_{t+k} u_t`` for ``k = 0 .. lags`` (``1``, then
    ``2 (1 - k / (lags + 1))``: a lag and its mirror) and of ``sum_t v_{t+k} w_t`` for ``k = -lags .. lags``
    (``1 - |k| / (lags + 1)``).  Read-only."""
    both = 1.0 - np.abs(np.arange(-lags, lags + 1)) / (lags + 1)
    one = 2 * both[lags:]
    one[0] = 1.0
    both.flags.writeable = one.flags.writeable = False
    return one, both


def long_run(u: Sequence[np.ndarray], lengths: Sequence[int], lags: int) -> np.ndarray:
    """The long-run covariance ``Omega = G_0 + sum_k (1 - k/(lags+1)) (G_k + G_k')`` of score terms ``u`` (``q``
    series over the same rows), ``G_k = sum_t u_t u_{t-k}'`` within each sequence."""
    q = len(u)
    one, both = _bartlett(lags)
    omega = np.empty((q, q))
    for i in range(q):
        omega[i, i] = lagged_products(u[i], u[i], lengths, lags) @ one
        for j in range(i + 1, q):
            omega[i, j] = omega[j, i] = lagged_products(u[i], u[j], lengths, lags, both=True) @ both
    return omega


def newey_west(u: list[np.ndarray], lags: int) -> np.ndarray:
    """:func:`long_run` of score terms given as a list of ``(n_i, q)`` sequences."""
    lengths = [len(v) for v in u]
    stacked = np.concatenate(u)
    return long_run([np.ascontiguousarray(c) for c in stacked.T], lengths, lags)


def nw_lags(n: int) -> int:
    """Newey-West lags: ``ceil(n^(1/3))``, at most ``n // 5``."""
    return max(1, min(math.ceil(n ** (1 / 3)), n // 5))


@functools.cache
def special() -> Any:
    """``scipy.special``, imported on first use (~0.2 s), then held: a ``from scipy.special import chdtrc`` in the
    function cost 3 us a call, as much as a test's sums on 1000 rows."""
    import scipy.special

    return scipy.special


def reset_statistic(f: np.ndarray, e: np.ndarray, lengths: Sequence[int]) -> tuple[float, float]:
    """RESET's statistic and p-value for one output channel: fitted values ``f`` and residuals ``e`` (1-D, the
    sequences of ``lengths`` concatenated)."""
    n = len(f)
    if n == 0:
        return 0.0, 1.0
    add = np.add.reduce
    g = f - float(add(f)) / n
    ss = float(g.dot(g))  # (ndarray.dot: the same BLAS dot as @, without matmul's dispatch)
    if not ss > 0:
        return 0.0, 1.0
    g *= math.sqrt(n / ss)  # standardized (population scale): sum g = 0 and sum g^2 = n to rounding
    g2 = g * g
    # [g^2, g^3] regressed on [1, g]: with sum g = 0 and sum g^2 = n the normal equations are diagonal, and
    # z~ = [g^2 - 1 - b2 g, g^3 - a3 - b3 g] with b2 = a3 = sum g^3 / n, b3 = sum g^4 / n (equal to the least-squares
    # coefficients to rounding)
    a3 = float(g.dot(g2)) / n
    b3 = float(g2.dot(g2)) / n
    lags = nw_lags(n)
    single = len(lengths) == 1
    # u1, u2 and u1 + u2 written into the rows of one zero-padded array (one sequence: each row's lagged products are
    # then one numpy.correlate of the row against its first n entries, with no padded copies)
    padded = np.zeros((3, n + lags)) if single else np.empty((3, n))
    u1, u2, u12 = padded[0, :n], padded[1, :n], padded[2, :n]
    u = padded[:2, :n]
    np.subtract(g, a3, out=u1)  # g^2 - 1 - b2 g = g (g - b2) - 1, and g^3 - a3 - b3 g = g (g^2 - b3) - a3: in place
    u1 *= g
    u1 -= 1.0
    u1 *= e
    np.subtract(g2, b3, out=u2)
    u2 *= g
    u2 -= a3
    u2 *= e
    t1, t2 = add(u, axis=1).tolist()  # (each row's own pairwise sum, as add.reduce of the row)
    np.add(u1, u2, out=u12)
    # Omega from three weighted autocovariance sums (the cross term from that of u1 + u2: one one-sided correlation
    # instead of a two-sided one)
    weights = _bartlett(lags)[0]
    if single:
        o11, o22, o = (float(np.correlate(row, row[:n], mode="valid").dot(weights)) for row in padded)
    else:
        o11, o22, o = (float(lagged_products(row, row, lengths, lags).dot(weights)) for row in padded)
    o12 = (o - o11 - o22) / 2
    det = o11 * o22 - o12 * o12
    if det > 1e-10 * o11 * o22:
        stat = (o22 * t1 * t1 - 2 * o12 * t1 * t2 + o11 * t2 * t2) / det
    else:  # (near) singular: the pseudo-inverse, as before
        s = np.array([t1, t2])
        stat = float(s @ np.linalg.pinv(np.array([[o11, o12], [o12, o22]]), hermitian=True) @ s)
    return stat, math.exp(-stat / 2)  # the chi-square law with 2 degrees of freedom (scipy's chdtrc to rounding)


def bias_statistic(
    e: np.ndarray, lengths: Sequence[int], products: tuple[float, np.ndarray] | None = None
) -> tuple[float, float, float]:
    """The residual's mean, the statistic ``(sum e)^2 / Omega`` and its p-value for one output channel (``e`` 1-D,
    the sequences of ``lengths`` concatenated).  ``products``: ``e``'s :func:`centred_products` over at least
    :func:`nw_lags` lags, where the caller has them (``Omega``'s lagged products are then read off them)."""
    n = len(e)
    if n == 0:
        return 0.0, 0.0, 1.0
    lags = nw_lags(n)
    if products is None or len(products[1]) <= lags:
        total = float(np.add.reduce(e))
        omega = float(lagged_products(e, e, lengths, lags) @ _bartlett(lags)[0])
    elif len(lengths) == 1:
        # sum_k w_k S_k with S_k = gamma_k + m (P_k + Q_k) - (n - k) m^2 (:func:`_uncentred`), where
        # sum_k w_k (P_k + Q_k) = 2 W sum e - e[:lags] . r - e[-lags:] . r[::-1], r_t = sum_{k > t} w_k: one dot
        # of e with r at both ends (the weights zero-padded to the products given)
        total, gamma = products
        m = total / n
        weights, edge, sum_w, sum_wn = _bias_weights(n, lags, len(gamma))
        omega = float(gamma.dot(weights)) + m * (2 * sum_w * total - float(e.dot(edge))) - m * m * sum_wn
    else:
        total = products[0]
        omega = float(_uncentred(e, lengths, total / n, products[1][: lags + 1]) @ _bartlett(lags)[0])
    stat = total**2 / omega if omega > 0 else 0.0
    return total / n, stat, math.erfc(math.sqrt(stat / 2))  # chi-square with 1 degree of freedom (3x chdtrc's speed)


@functools.lru_cache(maxsize=16)
def _bias_weights(n: int, lags: int, size: int) -> tuple[np.ndarray, np.ndarray, float, float]:
    """For :func:`bias_statistic` on one sequence of ``n`` rows: the Newey-West weights ``w_k`` (``k = 0 .. lags``,
    zero-padded to ``size``), ``r_t = sum_{k > t} w_k`` at both ends of ``n`` rows (``r_t`` at ``t`` and at
    ``n - 1 - t``, ``t < lags``; zero between), ``sum_k w_k`` and ``sum_k w_k (n - k)``.  Read-only."""
    weights = _bartlett(lags)[0]
    reach = np.cumsum(weights[::-1])[::-1][1:]
    edge = np.zeros(n)
    edge[:lags] = reach
    edge[n - lags :] += reach[::-1]
    padded = np.zeros(size)
    padded[: lags + 1] = weights
    edge.flags.writeable = padded.flags.writeable = False
    return padded, edge, float(weights.sum()), float(weights.dot(n - np.arange(lags + 1)))


def centred_products(e: np.ndarray, lengths: Sequence[int], lags: int) -> tuple[float, np.ndarray]:
    """``sum e`` and the lagged products of the centred residual, ``sum_t (e_{t+k} - m) (e_t - m)`` for ``k = 0 ..
    lags`` within each sequence (``m`` the mean over all of them): one ``numpy.correlate`` per sequence."""
    n = len(e)
    total = float(np.add.reduce(e))
    if len(lengths) == 1:  # the centred residual written into its padded copy: one array, not three
        padded = np.zeros(n + lags)
        centred = np.subtract(e, total / n, out=padded[:n])
        return total, np.correlate(padded, centred, mode="valid")
    centred = e - total / n
    return total, lagged_products(centred, centred, lengths, lags)


def _uncentred(e: np.ndarray, lengths: Sequence[int], m: float, gamma: np.ndarray) -> np.ndarray:
    """``sum_t e_{t+k} e_t`` (``k = 0 .. len(gamma) - 1``, within each sequence) from the centred products ``gamma``
    of :func:`centred_products`: ``gamma_k + m (P_k + Q_k) - N_k m^2``, where ``P_k`` sums each sequence's terms
    from its ``k``-th, ``Q_k`` its terms to its ``k``-th from the end and ``N_k`` counts the products (the first and
    last ``k`` terms' sums: ``O(lags)`` work; equal to the direct sums to rounding, whatever the mean)."""
    lags = len(gamma) - 1
    p_q = np.zeros(lags + 1)
    counts = np.zeros(lags + 1)
    start = 0
    for length in lengths:
        seq = e[start : start + length]
        start += length
        total = float(np.add.reduce(seq))
        head = np.zeros(lags + 1)  # sum of the first k terms, then of the last k (k = 0 .. lags, at most length)
        tail = np.zeros(lags + 1)
        reach = min(lags, length)
        np.cumsum(seq[:reach], out=head[1 : reach + 1])
        np.cumsum(seq[length - reach :][::-1], out=tail[1 : reach + 1])
        head[reach + 1 :] = total
        tail[reach + 1 :] = total
        p_q += (total - head) + (total - tail)
        counts += np.maximum(length - np.arange(lags + 1), 0)
    return gamma + m * p_q - counts * (m * m)


def _joined(parts: Sequence[np.ndarray]) -> tuple[np.ndarray, list[int]]:
    return (parts[0] if len(parts) == 1 else np.concatenate(parts)), [len(p) for p in parts]


def reset_test(fitted: Sequence[np.ndarray], resid: Sequence[np.ndarray]) -> tuple[float, float]:
    """RESET's statistic and p-value for one output channel (1-D sequences of fitted values and residuals)."""
    f, lengths = _joined(fitted)
    return reset_statistic(np.asarray(f, dtype=np.float64), _joined(resid)[0], lengths)


def bias_test(resid: Sequence[np.ndarray]) -> tuple[float, float, float]:
    """The residual's mean, the statistic ``(sum e)^2 / Omega`` and its p-value for one output channel."""
    e, lengths = _joined(resid)
    return bias_statistic(e, lengths)


def saturation_test(y: np.ndarray) -> dict[str, Any]:
    """The value of ``y`` (1-D) with the most excess mass among ``max(y)``, ``min(y)`` and 0: its ``value``,
    ``count``, ``share`` of the samples, ``mode`` (the largest count at another value; None where no candidate
    occurs more than once: the p-value is then 1 whatever the mode, and the sort that counts it is saved) and
    ``p_value``."""
    y = y[:ROWS] if len(y) > ROWS else y
    n = len(y)
    if n >= 3:
        # the least and the greatest value, each once: the first index of each, and nothing equal to it after that
        # (two passes and two partial ones instead of four passes and two boolean temporaries)
        i, j = int(y.argmin()), int(y.argmax())
        lo, hi = float(y[i]), float(y[j])
        if (
            lo < hi
            and (i == n - 1 or float(np.minimum.reduce(y[i + 1 :])) > lo)
            and (j == n - 1 or float(np.maximum.reduce(y[j + 1 :])) < hi)
        ):
            zeros = np.count_nonzero(y == 0.0) if lo < 0.0 < hi else 0
            if zeros <= 1:  # every candidate occurs once: no excess mass anywhere (the common, continuous case)
                tests = 3 if zeros else 2
                return {"value": float(lo), "count": 1, "share": 1 / n, "mode": None, "p_value": 1.0, "tests": tests}
    values, counts = np.unique(y, return_counts=True)
    if len(values) < 3:  # a constant (or two-valued) output: no continuous part to compare a limit's mass with
        return {"value": float("nan"), "count": 0, "share": 0.0, "mode": 0, "p_value": 1.0, "tests": 0}
    candidates = {0: counts[0], len(values) - 1: counts[-1]}
    zero = np.searchsorted(values, 0.0)
    if zero < len(values) and values[zero] == 0.0:
        candidates[int(zero)] = counts[zero]
    best: dict[str, Any] = {"value": float("nan"), "count": 0, "share": 0.0, "mode": 0, "p_value": 1.0}
    for i, count in candidates.items():
        others = np.delete(counts, list(candidates))
        mode = int(others.max()) if len(others) else 1
        p = float(special().bdtrc(int(count) - 1, int(count) + mode, 0.5)) if count > mode else 1.0
        if p < best["p_value"] or (best["count"] == 0 and count > 0):
            best = {"value": float(values[i]), "count": int(count), "share": count / len(y), "mode": mode, "p_value": p}
    best["tests"] = len(candidates)
    return best
