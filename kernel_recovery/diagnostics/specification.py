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
    value, which a unimodal quantized law does not give.  Cost: a sort of at most :data:`ROWS` samples per channel.
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
lags): one forward pass over those rows, ``O(ROWS x taps)``, and ``O(ROWS x NW_LAGS)`` for the covariance.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..model.operator import forward
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


def newey_west(u: list[np.ndarray], lags: int) -> np.ndarray:
    """The long-run covariance ``Omega = G_0 + sum_k (1 - k/(lags+1)) (G_k + G_k')`` of score terms ``u`` (a list of
    ``(n_i, q)`` sequences; products never cross sequences), ``G_k = sum_t u_t u_{t-k}'``."""
    omega = sum(v.T @ v for v in u)
    for k in range(1, lags + 1):
        g = sum(v[k:].T @ v[:-k] for v in u if len(v) > k)
        if isinstance(g, np.ndarray):
            omega = omega + (1 - k / (lags + 1)) * (g + g.T)
    return np.asarray(omega)


def _lags(n: int) -> int:
    """Newey-West lags: ``ceil(n^(1/3))``, at most ``n // 5``."""
    return max(1, min(math.ceil(n ** (1 / 3)), n // 5))


def residual_rows(
    problem: CanonicalProblem, sol: Solution, block_index: int, rows: int = ROWS
) -> tuple[list, list] | None:
    """Fitted values and residuals ``(n_i, O)`` of the first ``rows`` equations of a block, per sequence."""
    block = problem.blocks[block_index]
    if not block.retains_rows or block.ys is None:
        return None
    kernel = sol.kernels[block_index]
    bias = sol.biases[block_index] if problem.config.use_bias and sol.biases is not None else None
    if not np.all(np.isfinite(kernel)) or (bias is not None and not np.all(np.isfinite(bias))):
        return None
    xs, ys, left = [], [], rows
    for x, y in zip(block.xs, block.ys):
        take = min(len(y), left)
        if take > 0:
            xs.append(x[: take + block.taps - 1])
            ys.append(y[:take])
            left -= take
    fitted = forward(Block(xs, None, block.taps, block.mask, block.out_channels), kernel, bias)
    return fitted, [y - f for y, f in zip(ys, fitted)]


def _chi2_sf(df: int, stat: float) -> float:
    from scipy.special import chdtrc  # scipy.special costs ~0.2 s to import

    return float(chdtrc(df, stat))


def reset_test(fitted: list[np.ndarray], resid: list[np.ndarray]) -> tuple[float, float]:
    """RESET's statistic and p-value for one output channel (1-D sequences of fitted values and residuals)."""
    f = np.concatenate(fitted)
    scale = f.std()
    if not scale > 0:
        return 0.0, 1.0
    mean = f.mean()
    u, z_all = [], []
    for fi in fitted:
        g = (fi - mean) / scale
        z_all.append(np.stack([np.ones_like(g), g, g**2, g**3], axis=1))
    z = np.concatenate(z_all)
    base, powers = z[:, :2], z[:, 2:]
    coef, *_ = np.linalg.lstsq(base, powers, rcond=None)
    for zi, e in zip(z_all, resid):
        u.append((zi[:, 2:] - zi[:, :2] @ coef) * e[:, None])
    s = sum(v.sum(axis=0) for v in u)
    omega = newey_west(u, _lags(len(f)))
    stat = float(s @ np.linalg.pinv(omega, hermitian=True) @ s)
    return stat, _chi2_sf(2, stat)


def bias_test(resid: list[np.ndarray]) -> tuple[float, float, float]:
    """The residual's mean, the statistic ``(sum e)^2 / Omega`` and its p-value for one output channel."""
    u = [e[:, None] for e in resid]
    n = sum(len(e) for e in resid)
    total = float(sum(e.sum() for e in resid))
    omega = float(newey_west(u, _lags(n))[0, 0])
    stat = total**2 / omega if omega > 0 else 0.0
    return total / max(n, 1), stat, _chi2_sf(1, stat)


def saturation_test(y: np.ndarray) -> dict[str, Any]:
    """The value of ``y`` (1-D) with the most excess mass among ``max(y)``, ``min(y)`` and 0: its ``value``,
    ``count``, ``share`` of the samples, ``mode`` (the largest count at another value) and ``p_value``."""
    from scipy.special import bdtrc

    y = y[:ROWS] if len(y) > ROWS else y
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
        p = float(bdtrc(int(count) - 1, int(count) + mode, 0.5)) if count > mode else 1.0
        if p < best["p_value"] or (best["count"] == 0 and count > 0):
            best = {"value": float(values[i]), "count": int(count), "share": count / len(y), "mode": mode, "p_value": p}
    best["tests"] = len(candidates)
    return best
