"""Kernel priors of regularized FIR identification: kernels, marginal likelihood, tuning and the posterior.

The model, per output channel, with ``w`` the free kernel coefficients of one block (a bias, when present, has a
flat prior and is profiled out)::

    y = A w + e,    e ~ N(0, sigma^2 I),    w ~ N(0, Q),    Q = blockdiag_c(lambda_c P(theta_c))

with one block per input channel ``c`` (MISO/MIMO: the inputs are independent a priori, each with its own
scale ``lambda_c`` and shape ``theta_c`` unless ``share_hyperparameters=True``).  The kernels (Chen, Ohlsson and
Ljung, Automatica 2012; Pillonetto and De Nicolao, Automatica 2010) on the lags ``u`` of one input:

* ``"ml"``: ``P = I`` (ridge by marginal likelihood);
* ``"di"`` (diagonal): ``P_ij = delta_ij alpha^{u_i}``;
* ``"tc"`` (tuned/correlated): ``P_ij = alpha^{max(u_i, u_j)}``;
* ``"dc"`` (diagonal/correlated): ``P_ij = alpha^{(u_i + u_j) / 2} rho^{|u_i - u_j|}``;
* ``"ss"`` (second-order stable spline): ``P_ij = alpha^{u_i + u_j + max(u_i, u_j)} / 2 - alpha^{3 max(u_i, u_j)} / 6``;
* a user's matrix (``prior=``), scaled by ``lambda_c``.

``u`` is the physical lag of each coefficient (:meth:`ConvConfig.tap_lags`, whatever ``flip``, padding, stride or
dilation), shifted to start at zero (``u = lag - min(lag)``; with negative lags, ``u = |lag|``).

A two-sided window (lags on both sides of 0) is two one-sided responses: the causal part ``h(l), l >= 0`` and the
anticausal part ``h(-m), m >= 1``, independent a priori (zero prior covariance between opposite sides) and sharing
the input's hyperparameters, each with the kernel above on its own ``u = |lag|``, so each decays from lag 0
outwards.  For TC, DC and SS the prior is thus block diagonal, ``P = blockdiag(P(u_causal), P(u_anticausal))``
(DI and ML have no covariance between lags, so nothing changes for them).  One kernel over ``|lag|`` would tie
``h(-l)`` to ``h(l)`` (for TC ``P_ij = alpha^l`` at ``u_i = u_j = l``: the two coefficients perfectly correlated) and
return a symmetric response for a causal system; a one-sided prior over ``lag - min(lag)`` would make the
response decay from the window's first (most negative) lag instead of from lag 0.

Every prior is used through an exact factor ``lambda_c P(theta_c) = T_c diag(s_c)^2 T_c^T`` written so that as
much as possible is fixed (``T`` is the all-ones triangle for TC, the identity for ML/DI; for DC an AR(1)
recursion in the correlation ``rho sqrt(alpha)``, for SS the Kalman innovations of the integrated Wiener process,
both applied in ``O(P)`` per vector): with
``C = T^T G T`` and ``b = T^T A^T y`` computed once from the sufficient statistics (``G = A^T A``, ``A^T y``,
``y^T y``, ``n``; no ``n x n`` matrix), the profiled evidence is

    -2 log p(y) = n log(2 pi r / n) + n + log det M,    M = I + S C S,    r = y^T y - h^T M^{-1} h,  h = S b

(``sigma^2 = r / n`` maximizes the evidence), one Cholesky factorization of ``M >= I`` per evaluation.  ``r`` is
evaluated as ``||y - A w||^2 + ||z||^2`` at ``z = M^{-1} h`` (one refinement step), ``w = T S z``: equal at the exact
``z``, an upper bound at a rounded one, where ``y^T y - h^T z`` can lose all its digits (``M``'s condition number
reaches 1e14 for SS on rough responses at high SNR).  Its gradient in ``log s`` is analytic
(``2 (1 - (M^{-1})_kk)`` and the data term); hyperparameters that change ``T`` (DC's correlation
``rho sqrt(alpha)``, SS's decay) are differentiated by one finite difference each, ``log s`` held fixed, with a step
sized by ``r``'s rounding estimate.  L-BFGS-B runs on transformed hyperparameters (``log lambda``,
``log(-log alpha)``, ``atanh rho``) from the best of a few scale-free starts, each with its scale profiled, from a
scan over ``log q`` where the profile ended on the no-signal plateau (a signal basin can lie far above it); blocks
of at most ``SCAN_BELOW`` coefficients then check the optimum against a grid over the shape with every scale
(one eigendecomposition per shape) and restart from its better minima.  With ``n <= P`` equations (and the rows in
hand) the evidence is evaluated in its ``n x n`` form ``N = I + A Q A^T / sigma^2``, which keeps its digits where
the fit interpolates.  The posterior mean is ``T S M^{-1} h`` and the posterior covariance ``sigma^2 T S M^{-1} S T^T``.

Large blocks (over ``SINGLE_START_ABOVE`` coefficients, from the statistics), where every evaluation is a ``P^3``
factorization, search by Newton's method instead (:func:`_tune_newton`): the Hessian in ``log s`` is analytic from
``B = M^{-1}`` (``dpotri``, about two Cholesky factorizations more; :meth:`_Evidence._in_log_s`); through ``T``
the slope is analytic too, in whitened form (``T' = T N``, ``Ntilde = S^{-1} N S``: ``dr = -2 z' Ntilde z``,
``d log det M = 2 tr(Ntilde (I - B))``, a few ``O(P)``-per-vector passes and no factorization;
:meth:`_Evidence._through_t`), its curvature and cross terms from one step up (one factorization), and a handful of
steps from a start whose scale is walked downhill by values alone reaches the optimum where L-BFGS-B, learning the
strong coupling between the scale and the decay from gradients, took 20-50 evaluations.  (A structured evidence,
one eigendecomposition of ``S C S`` per shape with the scale profiled in ``O(P)``, as :func:`_scan_shapes` does for
small blocks, costs 15-20 Choleskys per shape with one BLAS thread, its tridiagonalization alone 5: more than a
Newton step.  The curvature through ``T`` in the same whitened form, ``2 tr((dNtilde + Ntilde^2) E) - 2 tr(E Ntilde
E Ntilde) + 2 tr(Ntilde^T E Ntilde B)`` with ``E = I - B`` for ``log det M``, would replace that one factorization by
a few more passes: not yet done.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

import numpy as np

from ..model.design import EXPLICIT_LIMIT, design_matrix
from ..model.problem import Block, CanonicalProblem
from ..model.progress import NoBar, progress_bar
from ..model.spectrum import rank_tolerance
from ..model.statistics import block_statistics

Regularization = Literal["gcv", "ml", "tc", "dc", "ss", "di"]
REGULARIZATIONS: tuple[Regularization, ...] = ("gcv", "ml", "tc", "dc", "ss", "di")
#: A user's prior covariance: a ``(kernel_size, kernel_size)`` array over the lags in ascending order, or a
#: callable ``f(lags) -> (len(lags), len(lags))`` given those lags.
PriorArg = np.ndarray | Callable[[np.ndarray], Any]

#: Local optimizations run from the best starts (of ``len(_DECAY_STARTS)`` x correlations), more for small problems.
N_STARTS = 2
#: Above this many coefficients per block one local optimization is run (each evaluation costs ``~P^3 / 2`` flops).
SINGLE_START_ABOVE = 400
#: L-BFGS-B stops when the relative change of ``-2 log p`` is below this.
FTOL = 1e-10
MAX_EVALUATIONS = 200
#: Above ``SINGLE_START_ABOVE`` coefficients, the search (Newton's, or L-BFGS-B where n <= P) stops at this absolute
#: change of ``-2 log p``.
LARGE_FTOL = 1e-2
#: Machine epsilon, in the rounding estimate of ``-2 log p``.
EPS = float(np.finfo(float).eps)
#: Starts for the decay: the prior's variance falls by these factors over the kernel's lag span.
_DECAY_STARTS = (0.5, 1e-1, 1e-3, 1e-8)  # (0.5: responses that barely decay over the kernel)
_CORRELATION_STARTS = (0.0, 0.9)
#: The scale's start, in ``log q`` above the moment-matched one (see :func:`_start_scale`).
START_ABOVE = np.log(1e4)
#: Step of the scan over ``log q`` that restarts a scale profile that ended on the no-signal plateau.
SCALE_SCAN_STEP = np.log(10.0)
#: SS factors of fewer coefficients are applied as dense matrices (GEMMs), larger ones by their recursion.
DENSE_BELOW = 256
#: Larger SS factors run their recursion over blocks of this many coefficients (a small GEMM each, the state carried
#: between blocks); 0: one coefficient at a time.
SS_BLOCK = 24
#: DC's recursion likewise runs over blocks of this many coefficients (a small GEMM each); 0: one at a time.
DC_BLOCK = 8
#: Blocks of at most this many coefficients also scan the evidence over a grid of shapes (decays, and DC's
#: correlations), each with its scale profiled exactly from one eigendecomposition (:func:`_scan_shapes`), and
#: restart a local search from the grid's best point: the best decay can lie outside every start, and with
#: ``n <= P`` the scale can stall on the flat plateau of interpolating fits (``q -> inf``) above a better basin.
SCAN_BELOW = 100
#: That grid's steps: in ``log kappa`` (the decay rate), in ``atanh rho`` (DC) and in ``log q``.
SCAN_DECAY_STEP = 0.5
SCAN_CORRELATION_STEP = 1.0
SCAN_SCALE_STEP = 0.25
#: Local searches restart from at most this many of the grid's local minima, those within this of the found optimum.
SCAN_RESTARTS = 3
SCAN_SLACK = 1.0
#: Posterior covariances are kept (``Solution.covariance``) when a block's ``O_b * P^2`` is at most this.
COVARIANCE_LIMIT = 1 << 23
#: With ``progress=None`` the tuning shows a bar (on a terminal) from this many coefficients per block on: there
#: each evidence evaluation factors a ``P x P`` matrix and the tuning takes about a second or more.
PROGRESS_FROM = 300


# ----------------------------------------------------------------------------------------------
# Lags of the coefficients
# ----------------------------------------------------------------------------------------------


def prior_lags(problem: CanonicalProblem) -> np.ndarray:
    """Per kernel index, the lag the built-in priors decay along: ``tap_lags() - min`` (``|lag|`` if any is < 0)."""
    lags = problem.config.tap_lags().astype(float)
    return lags - lags.min() if lags.min() >= 0 else np.abs(lags)


def prior_sides(problem: CanonicalProblem) -> np.ndarray:
    """Per kernel index, 1 on the anticausal side of a two-sided window (a lag < 0 while others are >= 0), else 0."""
    lags = problem.config.tap_lags()
    return ((lags < 0) & (lags.max() >= 0)).astype(float)


def coefficient_map(problem: CanonicalProblem, block: Block, per_kernel_index: np.ndarray) -> np.ndarray:
    """A value per kernel index ``(kernel_size,)`` (and per input channel ``(kernel_size, in/groups)``) carried onto
    the block's free design columns by the problem's own reduction (:meth:`CanonicalProblem.to_canonical`)."""
    cfg = problem.config
    values = np.asarray(per_kernel_index, dtype=float)
    if values.ndim == 1:
        values = values[:, None]
    full = np.broadcast_to(values[:, :, None], cfg.kernel_shape).copy()
    i = next(k for k, b in enumerate(problem.blocks) if b is block)
    return problem.to_canonical(full)[i][:, :, 0][block.mask]


def column_layout(problem: CanonicalProblem, block: Block) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The free columns' prior lag ``u``, input channel, and rank of their lag among the kernel's (ascending)."""
    cfg = problem.config
    u = coefficient_map(problem, block, prior_lags(problem))
    chan = coefficient_map(problem, block, np.broadcast_to(np.arange(cfg.in_per_group), cfg.kernel_shape[:2]))
    rank = coefficient_map(problem, block, np.argsort(np.argsort(cfg.tap_lags(), kind="stable"), kind="stable"))
    return u, np.rint(chan).astype(int), np.rint(rank).astype(int)


def column_sides(problem: CanonicalProblem, block: Block) -> np.ndarray:
    """The free columns' side of lag 0 (:func:`prior_sides`): 1 for the anticausal part of a two-sided window."""
    return np.rint(coefficient_map(problem, block, prior_sides(problem))).astype(int)


# ----------------------------------------------------------------------------------------------
# Kernels as factors T diag(s)
# ----------------------------------------------------------------------------------------------


def _sigmoid_rate(t: float) -> float:
    return float(np.exp(t))  # the decay rate kappa = -log(alpha) > 0


@dataclass(frozen=True)
class _Recursion:
    """The lower-triangular ``L`` with ``L_ij = prod_{i >= k > j} a_k`` (an AR(1) filter with step gains ``a``):
    ``(L v)_i = v_i + a_i (L v)_{i-1}``.  Applying ``L`` or ``L^T`` costs ``O(P)`` per vector: over blocks of
    ``DC_BLOCK`` rows, each a small GEMM with ``L``'s own entries (its products of gains, the row carried from the
    block before as one more column), or (``DC_BLOCK = 0``) one row at a time."""

    gains: np.ndarray  # a_1 .. a_{P-1}

    def apply(self, v: np.ndarray, out: np.ndarray | None = None, lower: bool = False) -> np.ndarray:
        """``L v``; ``out`` (of ``v``'s shape; may be ``v``): where it is written (a new ``P x P`` array costs about
        a Cholesky's time on some machines: page faults).  ``lower``: ``v`` is lower triangular (``v_ij = 0`` for
        ``j > i``; so is ``L v``), its zeros skipped."""
        if DC_BLOCK <= 0:
            return _copy_into(self._run(v, self.gains), out)
        res = _start(v, out)
        flat = res.reshape(len(res), -1)
        for lo, hi, blk in self._blocks:  # rows lo..hi-1 from rows lo-1..hi-1 (lo - 1 final): L[lo:hi, lo-1:hi]
            cols = slice(0, hi) if lower else slice(None)
            if lo == 0:
                flat[:hi, cols] = blk[1 : hi + 1, 1 : hi + 1] @ flat[:hi, cols]
            else:
                flat[lo:hi, cols] = blk[1 : hi - lo + 1, : hi - lo + 1] @ flat[lo - 1 : hi, cols]
        return res

    def apply_t(self, v: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """``L^T v``: :meth:`apply`'s blocks transposed, last to first (the row after each carried).  ``out`` as in
        :meth:`apply`."""
        if DC_BLOCK <= 0:
            return _copy_into(self._run(v[::-1], self.gains[::-1])[::-1], out)
        res = _start(v, out)
        flat = res.reshape(len(res), -1)
        for lo, hi, blk in reversed(self._blocks):  # rows lo..hi-1 from rows lo..hi (hi final): L[lo:hi+1, lo:hi]^T
            m = min(hi + 1, len(flat)) - lo
            flat[lo:hi] = blk[1 : m + 1, 1 : hi - lo + 1].T @ flat[lo : lo + m]
        return res

    def right(self, a: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """``a L`` (``a`` a matrix): :meth:`apply_t` on its rows, over blocks of its columns.  ``out`` as in
        :meth:`apply`."""
        if DC_BLOCK <= 0:
            return _copy_into(self._run(a.T[::-1], self.gains[::-1])[::-1].T, out)
        res = _start(a, out)
        for lo, hi, blk in reversed(self._blocks):
            m = min(hi + 1, res.shape[1]) - lo
            res[:, lo:hi] = res[:, lo : lo + m] @ blk[1 : m + 1, 1 : hi - lo + 1]
        return res

    @cached_property
    def _blocks(self) -> list[tuple[int, int, np.ndarray]]:
        """Per block of rows ``lo..hi-1`` (``DC_BLOCK`` of them), ``L[lo-1:hi+1, lo-1:hi+1]`` (rows and columns
        outside ``L`` left zero), all blocks' built at once: row ``i`` is row ``i - 1`` times ``a_i``, then 1 on the
        diagonal (the recursion's own products, in its order)."""
        size, width = len(self.gains) + 1, max(DC_BLOCK, 1)
        count = -(-size // width)
        gains = np.zeros(count * width + 2)  # gains[i + 1] = a_i (a_0 = 0, and 0 past the end)
        gains[2 : size + 1] = self.gains
        first = np.arange(count) * width  # row lo - 1 is the block's row 0
        g = gains[first[:, None] + np.arange(width + 2)]
        blk = np.zeros((count, width + 2, width + 2))
        for i in range(width + 2):
            if i:
                blk[:, i, :i] = blk[:, i - 1, :i] * g[:, i, None]
            blk[:, i, i] = 1.0
        blk[0, 0] = 0.0  # (row -1 does not exist)
        return [(lo, min(lo + width, size), blk[i]) for i, lo in enumerate(range(0, size, width))]

    @staticmethod
    def _run(v: np.ndarray, gains: np.ndarray) -> np.ndarray:
        if len(gains) == 0 or np.all(gains == 0):
            return np.array(v, dtype=float)
        if np.all(gains == gains[0]):
            import scipy.signal

            return scipy.signal.lfilter([1.0], [1.0, -float(gains[0])], v, axis=0)
        out = np.array(v, dtype=float)
        for i, a in enumerate(gains, start=1):
            if a:
                out[i] += a * out[i - 1]
        return out


def _start(a: np.ndarray, out: np.ndarray | None) -> np.ndarray:
    """``out`` (a new array if None) holding ``a``, for a recursion run in place."""
    if out is None:
        return np.array(a, dtype=float)
    if out is not a:
        out[...] = a
    return out


def _copy_into(a: np.ndarray, out: np.ndarray | None) -> np.ndarray:
    if out is None:
        return a
    out[...] = a
    return out


@dataclass(frozen=True)
class _StateSpace:
    """The SS factor ``T = D L D_e^{1/2}`` of the integrated Wiener process sampled at times ``t = alpha^u``:
    its innovations (a Kalman filter on the state ``(f / t^{3/2}, W / t^{1/2})``, run in increasing time ``t``,
    i.e. from the last lag down), ``D = diag(t^{3/2})``.  In those scaled coordinates every step depends only on
    ``1 - alpha^{du}`` (no underflow, no cancellation), and applying ``T`` or ``T^T`` costs ``O(P)`` per vector.
    Arrays are in increasing time: ``ff, fw, ww`` the transition from the previous time, ``gain`` the velocity's
    Kalman gain, ``sd`` the innovations' standard deviations, ``log_t`` the times' logarithms."""

    ff: np.ndarray
    fw: np.ndarray
    ww: np.ndarray
    gain: np.ndarray
    sd: np.ndarray
    log_t: np.ndarray

    @property
    def scale(self) -> np.ndarray:
        return np.exp(1.5 * self.log_t)  # t^{3/2}

    @classmethod
    def create(cls, u: np.ndarray, kappa: float) -> _StateSpace:
        ut = u[::-1]
        gap = np.concatenate([[1.0], -np.expm1(kappa * np.diff(ut))])  # 1 - t_prev / t (1 at the first time)
        r = 1.0 - gap
        ff, fw, ww = r**1.5, gap * np.sqrt(r), np.sqrt(r)
        gain, var = np.zeros(len(u)), np.zeros(len(u))
        v = 0.0  # the velocity's variance given the values so far
        for j in range(len(u)):
            p = gap[j]
            pff = v * fw[j] ** 2 + p**3 / 3
            pfw = v * fw[j] * ww[j] + p**2 / 2
            pww = v * ww[j] ** 2 + p
            var[j] = pff
            if pff > 0:
                gain[j] = pfw / pff
                v = max(pww - pfw * gain[j], 0.0)
            else:
                v = pww
        return cls(ff, fw, ww, gain, np.sqrt(var), -kappa * ut)

    def dense(self) -> np.ndarray:
        """``T`` as a matrix, in closed form: from time ``t_j`` to ``t_i >= t_j`` the scaled state moves by
        ``[[c^{3/2}, (1 - c) c^{1/2}], [0, c^{1/2}]]``, ``c = t_j / t_i``
        (the raw state by ``[[1, t_i - t_j], [0, 1]]``)."""
        ratio = np.exp(np.minimum(self.log_t[None, :] - self.log_t[:, None], 0.0))
        low = np.tril(ratio**1.5 + self.gain[None, :] * (1 - ratio) * np.sqrt(ratio))
        low *= self.sd[None, :]
        low *= self.scale[:, None]
        return low[::-1, ::-1]

    @cached_property
    def _blocks(self) -> list[tuple]:
        """Per block of ``SS_BLOCK`` times, ``T``'s diagonal block and how the block meets the state ``x = (f, w)``
        (scaled coordinates) of the time before it, all in closed form (a move from ``t_k`` to ``t_i`` over ``d = log
        t_k - log t_i <= 0``: ``c^{3/2} = e^{3d/2}``, ``(1 - c) c^{1/2} = -expm1(d) e^{d/2}``), in increasing time
        (from the last coefficient up) and in the coefficients' order within each:
        ``(rows, local, into, read, carry, unit, unit_into, out_w)`` with, for the block's values ``v``,
        ``(T v)_rows = local v + into x`` and the state after it ``x' = read v + carry x``; ``unit`` (the triangle
        ``diag(scale)^{-1} local diag(sd)^{-1}``, unit diagonal), ``unit_into`` and ``out_w`` (the velocity's row of
        ``read``) the same for the innovations ``sd e``; all blocks at once (the last one padded).  A product of the
        one-step moves is the move over their span, so this is the recursion summed in another order (nearer the
        closed form :meth:`dense`: the steps' roundings compound, 1e-14 relative at ``P = 2000``, against 1e-16)."""
        lt, size = self.log_t, len(self.log_t)
        width = max(SS_BLOCK, 1)
        count = -(-size // width)
        pad = count * width - size  # (the last block padded with its last time: no entry of a real one moves)
        t = np.concatenate([lt, np.full(pad, lt[-1])]).reshape(count, width)
        gain = np.concatenate([self.gain, np.zeros(pad)]).reshape(count, width)
        sd = np.concatenate([self.sd, np.zeros(pad)]).reshape(count, width)
        scale = np.concatenate([self.scale, np.zeros(pad)]).reshape(count, width)
        d = np.minimum(t[:, None, :] - t[:, :, None], 0.0)
        unit = np.tril(np.exp(1.5 * d) - gain[:, None, :] * np.expm1(d) * np.exp(0.5 * d))
        out_w = np.exp(0.5 * (t - t[:, -1:])) * gain
        dp = np.concatenate([np.full((1, width), -np.inf), t[:-1, -1:] - t[1:]])  # (the first starts from nothing)
        into = np.stack([np.exp(1.5 * dp), -np.expm1(dp) * np.exp(0.5 * dp)], axis=2)
        into[0] = 0.0
        local = unit * scale[:, :, None] * sd[:, None, :]
        out = []
        for i in range(count):
            m = min(width, size - i * width)  # (the coefficients' order: time decreases along the rows)
            carry = np.array([[into[i, m - 1, 0], into[i, m - 1, 1]], [0.0, np.exp(0.5 * dp[i, m - 1])]])
            read = np.stack([unit[i, m - 1, :m] * sd[i, :m], out_w[i, :m] * sd[i, :m]])
            out.append(
                (
                    slice(size - i * width - m, size - i * width),
                    np.ascontiguousarray(local[i, m - 1 :: -1, m - 1 :: -1]),
                    into[i, m - 1 :: -1] * scale[i, m - 1 :: -1, None],
                    np.ascontiguousarray(read[:, ::-1]),
                    carry,
                    np.ascontiguousarray(unit[i, m - 1 :: -1, m - 1 :: -1]),
                    np.ascontiguousarray(into[i, m - 1 :: -1]),
                    out_w[i, m - 1 :: -1].copy(),
                )
            )
        return out

    @cached_property
    def _inverses(self) -> list[np.ndarray]:
        """The inverses of :attr:`_blocks`' unit triangles (their inverse recursions, bounded), for :meth:`solve`."""
        import scipy.linalg

        return [
            scipy.linalg.solve_triangular(b[5], np.eye(len(b[5])), lower=False, unit_diagonal=True, check_finite=False)
            for b in self._blocks
        ]

    def apply(self, v: np.ndarray, upper: bool = False, out: np.ndarray | None = None) -> np.ndarray:
        """``T v``: blocks of ``SS_BLOCK`` rows (a small GEMM each, the state carried between them).  ``upper``:
        ``v`` is a square upper triangle (as ``T``: so is ``T v``), whose zeros are skipped.  ``out`` (of ``v``'s
        shape; may be ``v``): where ``T v`` is written (a new ``P x P`` array costs a Cholesky's time on some
        machines: page faults)."""
        if SS_BLOCK <= 0:
            return self._apply_steps(v)
        flat = v.reshape(len(v), -1)
        width = flat.shape[1]
        if out is None:
            out = np.zeros(v.shape) if upper else np.empty(v.shape)
        res = out.reshape(flat.shape)
        x = np.zeros((2, width))
        for rows, local, into, read, carry, *_ in self._blocks:
            cols = slice(rows.start, width) if upper else slice(0, width)
            vb = flat[rows, cols]
            blk = local @ vb
            blk += into @ x[:, cols]
            x[:, cols] = read @ vb + carry @ x[:, cols]  # (before res is written: it may be v)
            res[rows, cols] = blk
        return out

    def solve(self, v: np.ndarray, upper: bool = False, out: np.ndarray | None = None) -> np.ndarray:
        """``T^{-1} v``: per block, the inverse of its unit triangle applied after the state's part is taken off
        (``f`` is known at every time, so the velocity ``w`` is the only state to carry).  ``upper`` and ``out`` as
        in :meth:`apply`."""
        if SS_BLOCK <= 0:
            return self._solve_steps(v)
        if out is None:
            out = np.empty(v.shape)
        y = np.divide(v, _col(self.scale[::-1], v), out=out).reshape(len(v), -1)  # (then e, in place, block by block)
        width = y.shape[1]
        x = np.zeros((2, width))
        for (rows, _, _, _, carry, _, into, out_w), inverse in zip(self._blocks, self._inverses):
            cols = slice(rows.start, width) if upper else slice(0, width)
            eb = inverse @ (y[rows, cols] - into @ x[:, cols])
            x[0, cols] = y[rows.start, cols]
            x[1, cols] = out_w @ eb + carry[1, 1] * x[1, cols]
            y[rows, cols] = eb
        return np.divide(out, _col(self.sd[::-1], out), out=out)

    def apply_t(self, v: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """``T^T v``: the blocks of :meth:`apply` transposed, last to first, with the adjoint state (what the times
        after a block read from the state before them).  ``out`` (not ``v``) as in :meth:`apply`."""
        if SS_BLOCK <= 0:
            return self._apply_t_steps(v)
        flat = v.reshape(len(v), -1)
        if out is None:
            out = np.empty(v.shape)
        res = out.reshape(flat.shape)
        lam = np.zeros((2, flat.shape[1]))
        for rows, local, into, read, carry, *_ in reversed(self._blocks):
            vb = flat[rows]
            blk = local.T @ vb
            blk += read.T @ lam
            res[rows] = blk
            lam = into.T @ vb + carry.T @ lam
        return out

    def right(self, a: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """``a T`` (``a`` a matrix): :meth:`apply_t` on the rows of ``a``, over blocks of its columns.  ``out`` (not
        ``a``) as in :meth:`apply`."""
        if SS_BLOCK <= 0:
            return self._apply_t_steps(a.T).T
        res = np.empty(a.shape) if out is None else out
        lam = np.zeros((len(a), 2))
        for cols, local, into, read, carry, *_ in reversed(self._blocks):
            ab = a[:, cols]
            blk = ab @ local
            blk += lam @ read
            res[:, cols] = blk
            lam = ab @ into + lam @ carry
        return res

    def _apply_steps(self, v: np.ndarray) -> np.ndarray:
        """``T v``, one time at a time (``SS_BLOCK = 0``)."""
        e = v[::-1] * _col(self.sd, v)
        out = np.empty_like(e)
        f = np.zeros(e.shape[1:])
        w = np.zeros(e.shape[1:])
        for j in range(len(e)):
            f, w = self.ff[j] * f + self.fw[j] * w + e[j], self.ww[j] * w + self.gain[j] * e[j]
            out[j] = f
        return (out * _col(self.scale, v))[::-1]

    def _solve_steps(self, v: np.ndarray) -> np.ndarray:
        """``T^{-1} v``, one time at a time: the innovations of the values :meth:`apply` would give (``f`` is known
        at every time, so the velocity's estimate ``w`` is the only state to run)."""
        out = v[::-1] / _col(self.scale, v)
        e = np.empty_like(out)
        w = np.zeros(out.shape[1:])
        prev = np.zeros(out.shape[1:])
        for j in range(len(out)):
            e[j] = out[j] - self.ff[j] * prev - self.fw[j] * w
            w = self.ww[j] * w + self.gain[j] * e[j]
            prev = out[j]
        return (e / _col(self.sd, v))[::-1]

    def _apply_t_steps(self, v: np.ndarray) -> np.ndarray:
        """``T^T v``, one time at a time."""
        x = np.ascontiguousarray(v[::-1] * _col(self.scale, v))
        out = np.empty_like(x)
        lf = np.zeros(x.shape[1:])
        lw = np.zeros(x.shape[1:])
        for j in range(len(x) - 1, -1, -1):
            lf = lf + x[j]
            out[j] = lf + self.gain[j] * lw
            lf, lw = self.ff[j] * lf, self.fw[j] * lf + self.ww[j] * lw
        return (out * _col(self.sd, v))[::-1]


@dataclass(frozen=True)
class _Sides:
    """The block-diagonal factor ``blockdiag(T_causal, T_anticausal)`` of a two-sided window: the first ``split``
    coefficients are the causal side, the rest the anticausal side, each with its own one-sided factor (any of
    :func:`_apply`'s kinds), so the prior covariance between opposite sides of lag 0 is zero."""

    split: int
    causal: Any
    anticausal: Any

    def apply(self, v: np.ndarray) -> np.ndarray:
        k = self.split
        return np.concatenate([_apply(self.causal, v[:k]), _apply(self.anticausal, v[k:])])

    def apply_t(self, v: np.ndarray) -> np.ndarray:
        k = self.split
        return np.concatenate([_left_t(self.causal, v[:k]), _left_t(self.anticausal, v[k:])])

    def dense_small(self) -> _Sides:
        """The sides' small SS factors as matrices (see :meth:`_Evidence.transformed`)."""
        return _Sides(self.split, _dense_small(self.causal), _dense_small(self.anticausal))


def _dense_small(t):
    """``t`` with an SS factor of fewer than ``DENSE_BELOW`` coefficients made a matrix: a Python loop per row costs
    more than two small GEMMs."""
    if isinstance(t, _StateSpace) and len(t.sd) < DENSE_BELOW:
        return t.dense()
    return t.dense_small() if isinstance(t, _Sides) else t


def _col(values: np.ndarray, like: np.ndarray) -> np.ndarray:
    """``values`` shaped to scale the rows of ``like``."""
    return values.reshape((-1,) + (1,) * (like.ndim - 1))


@dataclass
class _Kernel:
    """One prior family on one input's sorted lags ``u``: its parameters and factor ``T, log s``.

    Parameters (unconstrained): ``[log q]`` then the shape: ``log kappa`` (``alpha = exp(-kappa)``) and, for DC,
    ``atanh rho``.  ``q`` is the prior scale over the noise variance (``lambda / sigma^2``).  ``T`` depends on the
    shape only through :meth:`tau` (nothing for TC/DI/ML, the correlation ``rho sqrt(alpha)`` for DC, the decay
    for SS); the rest of the shape lives in the cheap diagonal ``s``.
    """

    kind: str
    u: np.ndarray  # sorted ascending (two-sided: the causal side's, then the anticausal side's)
    custom: np.ndarray | None = None  # the user's matrix in the order of u
    split: int = 0  # two-sided (TC, DC, SS): the first `split` coefficients are the causal side (see _Sides)

    @property
    def n_shape(self) -> int:
        return {"ml": 0, "custom": 0, "di": 1, "tc": 1, "ss": 1, "dc": 2}[self.kind]

    def tau(self, shape: np.ndarray) -> np.ndarray:
        """The values ``T`` depends on."""
        if self.kind == "dc":  # alpha^{(u_i + u_j)/2} rho^{u_i - u_j} = alpha^{u_j} (rho sqrt(alpha))^{u_i - u_j}
            return np.array([np.tanh(shape[1]) * np.exp(-0.5 * _sigmoid_rate(shape[0]))])
        if self.kind == "ss":
            return np.array([shape[0]])
        return np.zeros(0)

    def sides(self) -> list[np.ndarray]:
        """The lags of each one-sided part (one part unless two-sided)."""
        return [self.u[: self.split], self.u[self.split :]] if self.split else [self.u]

    def transform(self, tau: np.ndarray) -> np.ndarray | str | _Recursion | _StateSpace | _Sides | None:
        """``T`` (None: identity; "cumsum": the upper all-ones triangle, applied as cumulative sums)."""
        if self.kind in ("ml", "di"):
            return None
        if self.kind == "custom":
            assert self.custom is not None
            return self.custom
        parts = [self._side_transform(tau, u) for u in self.sides()]
        return parts[0] if len(parts) == 1 else _Sides(self.split, parts[0], parts[1])

    def _side_transform(self, tau: np.ndarray, u: np.ndarray) -> str | _Recursion | _StateSpace:
        if self.kind == "tc":
            return "cumsum"
        if self.kind == "dc":
            return _Recursion(np.power(float(tau[0]), np.diff(u)))
        return _StateSpace.create(u, _sigmoid_rate(tau[0]))  # SS

    def log_s(self, log_q: float, shape: np.ndarray) -> np.ndarray:
        if self.split:
            return np.concatenate([self._side_log_s(u, len(u), log_q, shape) for u in self.sides()])
        return self._side_log_s(self.u, self.width(), log_q, shape)

    def _side_log_s(self, u: np.ndarray, width: int, log_q: float, shape: np.ndarray) -> np.ndarray:
        base = np.full(width, 0.5 * log_q)
        if self.kind == "di":
            return base - 0.5 * _sigmoid_rate(shape[0]) * u
        if self.kind == "tc":  # d_k = alpha^{u_k} - alpha^{u_{k+1}}, then alpha^{u_K}
            kappa = _sigmoid_rate(shape[0])
            with np.errstate(divide="ignore"):  # -inf where lags repeat: that coefficient copies the next
                gap = np.concatenate([np.log(-np.expm1(-kappa * np.diff(u))), [0.0]])
            return base + 0.5 * (-kappa * u + gap)
        if self.kind == "dc":  # alpha^{u_j / 2} sqrt(1 - rho^{2 (u_j - u_{j-1})}) (-inf where lags repeat)
            rho = float(np.tanh(shape[1]))
            du = np.diff(u)
            with np.errstate(divide="ignore"):
                gain = np.log(-np.expm1(2 * du * np.log(abs(rho)))) if rho else np.where(du > 0, 0.0, -np.inf)
            return base - 0.5 * _sigmoid_rate(shape[0]) * u + 0.5 * np.concatenate([[0.0], gain])
        return base

    def factor(self, shape: np.ndarray, log_q: float = 0.0) -> np.ndarray:
        """The dense ``T diag(s)`` (``F F^T`` is the prior covariance over the noise variance)."""
        t = self.transform(self.tau(shape))
        s = np.exp(self.log_s(log_q, shape))
        return _apply(t, np.eye(self.width())) * s[None, :]

    def prior_diag(self, shape: np.ndarray) -> np.ndarray:
        """The prior variances ``P_kk`` (``q = 1``)."""
        if self.kind == "ml":
            return np.ones(len(self.u))
        if self.kind == "custom":
            assert self.custom is not None
            return np.sum(self.custom**2, axis=1)
        alpha_u = np.exp(-_sigmoid_rate(shape[0]) * self.u)
        return alpha_u**3 / 3 if self.kind == "ss" else alpha_u

    def width(self) -> int:
        return self.custom.shape[1] if self.kind == "custom" and self.custom is not None else len(self.u)

    def span(self) -> float:
        """The lag span the decay is measured over (at least 1)."""
        return max(float(self.u.max() - self.u.min()) if self.split else float(self.u[-1] - self.u[0]), 1.0)

    def starts(self) -> list[np.ndarray]:
        span = self.span()
        if self.kind in ("ml", "custom"):
            return [np.zeros(0)]
        rates = [np.log(np.log(1 / f) / span) for f in _DECAY_STARTS]
        if self.kind == "ss":  # alpha^{3u}: the variance falls three times as fast
            rates = [r - np.log(3.0) for r in rates]
        if self.kind == "dc":
            return [np.array([r, np.arctanh(c)]) for r in rates for c in _CORRELATION_STARTS]
        return [np.array([r]) for r in rates]

    def bounds(self) -> list[tuple[float, float]]:
        span = self.span()
        out = [(np.log(1e-4 / span), np.log(50.0))] if self.n_shape else []
        if self.kind == "dc":
            out.append((-3.0, 3.0))
        return out


def _custom_factor(matrix: np.ndarray) -> np.ndarray:
    """A factor ``F`` with ``F F^T = matrix`` (symmetric PSD), dropping directions under the rank rule."""
    sym = (matrix + matrix.T) / 2
    e, v = np.linalg.eigh(sym)
    if e.min() < -1e-8 * max(e.max(), 0.0) or e.max() <= 0:
        raise ValueError(
            f"`prior` must be a symmetric positive semidefinite matrix; its smallest eigenvalue is {e.min():.3g} "
            f"(largest {e.max():.3g})."
        )
    root = np.sqrt(np.clip(e, 0.0, None))
    keep = root > rank_tolerance(root.max(), len(e), len(e), "gram")
    return v[:, keep] * root[keep]


def user_prior(prior: PriorArg, lags: np.ndarray) -> np.ndarray:
    """The user's prior covariance over the lags in ascending order, validated."""
    order = np.sort(lags)
    matrix = np.asarray(prior(order.copy()) if callable(prior) else prior, dtype=float)
    k = len(lags)
    if matrix.shape != (k, k):
        raise ValueError(
            f"`prior` must be a ({k}, {k}) matrix over the kernel's lags in ascending order (kernel_size={k}), "
            f"got shape {matrix.shape}."
        )
    if not np.all(np.isfinite(matrix)):
        raise ValueError("`prior` contains NaN or Inf values.")
    return matrix


def check_prior(prior: object) -> None:
    if prior is None or callable(prior):
        return
    try:
        arr = np.asarray(prior, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(
            f"`prior` must be a square array or a callable lags -> matrix, got {type(prior).__name__}."
        ) from None
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1]:
        raise ValueError(f"`prior` must be a square matrix over the kernel's lags, got shape {arr.shape}.")


# ----------------------------------------------------------------------------------------------
# The evidence of one output channel
# ----------------------------------------------------------------------------------------------


class _Evidence:
    """``-2 log p(y)`` (noise profiled) of one output channel as a function of the packed hyperparameters."""

    def __init__(self, kernels, groups, g, c, yy, n, share, bar: Any = None, rows=None):
        self.kernels, self.groups, self.g, self.c, self.yy, self.n = kernels, groups, g, c, yy, n
        #: ``(A, y)``: the design's free columns and this channel's outputs (both centred where the bias is profiled
        #: out), where the evidence is evaluated in its ``n x n`` form (:meth:`_dual`); None: from the statistics
        self.rows = rows
        self._dual_cache: dict[tuple, np.ndarray] = {}
        self.bar = NoBar() if bar is None else bar  # counts the evaluations (see regularized's progress)
        self.share = share
        self.n_in = len(kernels)
        self.per = 1 + kernels[0].n_shape
        self.widths = [k.width() for k in kernels]
        self.offsets = np.concatenate([[0], np.cumsum(self.widths)])
        self._cache: dict[tuple, tuple[np.ndarray, np.ndarray, list]] = {}
        self._sorted: tuple[np.ndarray, np.ndarray] | None = None  # (G, c) in the order of the groups
        self._work = np.zeros((0, 0))  # G T, rebuilt by transformed
        self.evaluations = 0
        self.noise = 0.0  # the rounding error of the last -2 log p (see _refined_solve)
        self._last: tuple[bytes, float, np.ndarray | None, float] | None = None
        #: ``(theta's bytes, through T, (f, grad, hess))`` of the last :meth:`derivatives`
        self._last_derivatives: tuple[bytes, bool, tuple[float, np.ndarray, np.ndarray]] | None = None
        self._base: tuple = ()  # (its part through log s, where it last factored M)
        #: ``(theta's bytes, R^T, z, r, B's lower triangle)`` where :meth:`derivatives` last factored and inverted M
        self._factored: tuple[bytes, np.ndarray, np.ndarray, float, np.ndarray] | None = None
        self._inverse = np.zeros((0, 0))
        #: values (no gradient) factor ``M`` in Fortran order (:meth:`_primal`'s ``lower``), as Newton's search does
        self.fortran = False
        scale = np.trace(g) / max(len(g), 1)
        self.log_q_ref = float(-np.log(scale)) if scale > 0 else 0.0

    def params(self, theta: np.ndarray) -> list[np.ndarray]:
        if self.share:
            return [theta] * self.n_in
        return [theta[i * self.per : (i + 1) * self.per] for i in range(self.n_in)]

    def taus(self, theta: np.ndarray) -> list[np.ndarray]:
        """Per parameter block (one, or one per input), the values its ``T`` depends on (:meth:`_Kernel.tau`)."""
        blocks = 1 if self.share else self.n_in
        return [self.kernels[b].tau(theta[b * self.per + 1 : (b + 1) * self.per]) for b in range(blocks)]

    def transformed(self, taus: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, list]:
        """``C = T^T G T``, ``b = T^T c`` and the ``T``'s, cached on ``taus``."""
        key = tuple(float(v) for t in taus for v in t)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        ts = [_dense_small(k.transform(taus[0 if self.share else i])) for i, k in enumerate(self.kernels)]
        if self._sorted is None:  # G and c in the groups' order, once (a P x P gather costs about a Cholesky)
            order = np.concatenate(self.groups)
            self._sorted = (self.g[np.ix_(order, order)], self.c[order])
        g, c = self._sorted
        if self._work.shape != (len(g), self.offsets[-1]):  # (G T's memory, kept: see apply's out)
            self._work = np.empty((len(g), self.offsets[-1]))
        gt = self._work
        ends = np.cumsum([len(grp) for grp in self.groups])
        rows = [slice(end - len(grp), end) for end, grp in zip(ends, self.groups)]  # (a custom T can be narrower)
        cuts = [slice(self.offsets[i], self.offsets[i + 1]) for i in range(len(ts))]
        blocked = [  # (written in place: see apply's out)
            (isinstance(t, _StateSpace) and SS_BLOCK > 0) or isinstance(t, _Recursion) for t in ts
        ]
        for row, cut, t, inplace in zip(rows, cuts, ts, blocked):
            if inplace:
                t.right(g[:, row], out=gt[:, cut])
            else:
                gt[:, cut] = _right(g[:, row], t)
        cmat = np.empty((self.offsets[-1], self.offsets[-1]))
        bvec = np.empty(self.offsets[-1])
        for row, cut, t, inplace in zip(rows, cuts, ts, blocked):
            if inplace:
                t.apply_t(gt[row], out=cmat[cut])
            else:
                cmat[cut] = _left_t(t, gt[row])
            bvec[cut] = _left_t(t, c[row, None])[:, 0]
        _symmetrize(cmat)
        if len(self._cache) > 8:
            self._cache.clear()
        self._cache[key] = (cmat, bvec, ts)
        return cmat, bvec, ts

    def _through_t(
        self, taus: list[np.ndarray], blk: int, m: int, s: np.ndarray, z: np.ndarray, r: float, inv: np.ndarray
    ) -> float | None:
        """``d f / d tau`` (block ``blk``'s ``tau[m]``, ``log s`` held) analytically at a factored point (``z = M^{-1}
        h``, ``r`` and the lower triangle ``inv`` of ``B = M^{-1}``), no factorization; None where ``T`` or ``S`` is
        singular (repeated lags, an underflowed scale).

        With ``T' = dT / dtau = T N`` and ``Ntilde = S^{-1} N S`` (per input; block diagonal), ``K = S C S = M - I``
        moves by ``dK = Ntilde^T K + K Ntilde`` and ``h = S T^T c`` by ``Ntilde^T h``; as ``h - K z = z`` and
        ``K B = I - B``, ``dr = -2 z^T Ntilde z`` and ``d log det M = tr(B dK) = 2 tr(Ntilde (I - B))``.  In this
        form nothing cancels (``tr(B dK)`` summed entry by entry would lose every digit where ``M`` is
        ill-conditioned: ``B``'s rounding times ``K``'s large entries).  ``T' S`` is the central difference of the
        structured factors applied to ``S`` (``T`` is smooth in ``tau``), ``T^{-1}`` their inverse recursion
        (:func:`_solve`): three ``O(P)``-per-vector passes over a ``P x P`` matrix."""
        tau = float(taus[blk][m])
        h = 1e-6 * max(abs(tau), 1.0)
        dr, dlogdet = 0.0, 0.0
        for i, kern in enumerate(self.kernels):
            if not self.share and i != blk:
                continue  # (its T does not move)
            cut = slice(self.offsets[i], self.offsets[i + 1])
            si = s[cut]
            if not np.all(si > 0):
                return None
            t0 = self.transformed(taus)[2][i]
            with np.errstate(all="ignore"):
                if isinstance(t0, _Recursion) and kern.kind == "dc":
                    # DC: gains a_k = tau^{du_k}, T' = L diag(a') Z L (Z: the shift down), so N = diag(a') Z L
                    du = np.diff(kern.u)
                    slope = np.where(du > 0, du * np.power(tau, du - 1), 0.0)
                    nt = np.zeros((len(si), len(si)))  # (rows 1.. hold (L S)'s first P - 1: L's own, in place)
                    nt[np.arange(1, len(si)), np.arange(len(si) - 1)] = si[:-1]
                    if len(si) > 1:
                        _Recursion(t0.gains[:-1]).apply(nt[1:], out=nt[1:], lower=True)
                    nt[1:] *= slope[:, None]
                    nt /= si[:, None]
                    lower = True  # strictly: tr(Ntilde) = 0
                else:
                    moved = []
                    for sign in (1.0, -1.0):
                        t2 = [t.copy() for t in taus]
                        t2[blk][m] += sign * h
                        moved.append(_dense_small(kern.transform(t2[0 if self.share else i])))
                    ts = np.diag(si)
                    if isinstance(t0, _StateSpace) and SS_BLOCK > 0:  # (upper triangles: their zeros skipped)
                        nt = moved[0].apply(ts, upper=True)
                        nt -= moved[1].apply(ts, upper=True, out=ts)  # (in place: no new P x P arrays)
                        nt /= 2 * h
                        nt = t0.solve(nt, upper=True, out=nt)
                        nt /= si[:, None]
                    else:
                        nt = _solve(t0, (_apply(moved[0], ts) - _apply(moved[1], ts)) / (2 * h)) / si[:, None]
                    lower = kern.kind == "dc"  # (DC's recursions are lower triangles, SS's factors upper ones)
            if not np.all(np.isfinite(nt)):
                return None
            zi = z[cut]
            dr += -2.0 * float(zi @ (nt @ zi))
            # Ntilde is triangular (exact zeros off its triangle), so B's lower triangle, the part `inv` holds, is all
            # tr(Ntilde B) meets: read as is (lower) or transposed (upper), no copy
            met = np.einsum("ij,ij->", nt, inv[cut, cut]) if lower else np.einsum("ij,ji->", nt, inv[cut, cut])
            dlogdet += 2.0 * (float(np.trace(nt)) - float(met))
        return (self.n / r) * dr + dlogdet

    def log_s(self, theta: np.ndarray) -> np.ndarray:
        ps = self.params(theta)
        return np.concatenate([k.log_s(p[0], p[1:]) for k, p in zip(self.kernels, ps)])

    def value(self, theta: np.ndarray, want_grad: bool = False):
        key = np.asarray(theta, dtype=float).tobytes()
        if self._last is not None and self._last[0] == key and (self._last[2] is not None or not want_grad):
            _, f, last, self.noise = self._last  # asked again where it just was (a start's score, L-BFGS's first call)
            return (f, last.copy()) if want_grad and last is not None else f
        taus = self.taus(theta)
        cmat, bvec, ts = self.transformed(taus)
        logs = self.log_s(theta)
        out = self._at(cmat, bvec, ts, logs, want_grad, self.design_t(taus))
        noise = self.noise  # the finite differences below evaluate elsewhere
        if not want_grad:
            self._last = (key, out, None, noise)
            return out
        f, g_logs = out
        grad = np.zeros_like(theta) if not np.isfinite(f) else self._chain(theta, taus, logs, f, g_logs)
        self.noise = noise
        self._last = (key, f, grad, noise)
        return f, grad.copy()

    def design_t(self, taus: list[np.ndarray]) -> np.ndarray | None:
        """``A T`` (``n x P``) with :attr:`rows`, cached on ``taus``; None without rows."""
        if self.rows is None:
            return None
        key = tuple(float(v) for t in taus for v in t)
        hit = self._dual_cache.get(key)
        if hit is None:
            _, _, ts = self.transformed(taus)
            a = self.rows[0]
            hit = np.empty((len(a), self.offsets[-1]))
            for i, (grp, t) in enumerate(zip(self.groups, ts)):
                hit[:, self.offsets[i] : self.offsets[i + 1]] = _right(a[:, grp], t)
            if len(self._dual_cache) > 8:
                self._dual_cache.clear()
            self._dual_cache[key] = hit
        return hit

    def _dual(self, at: np.ndarray, s: np.ndarray):
        """The ``n x n`` form, for ``n <= P``: ``B = A T S``, ``N = I + B B^T = L L^T`` (``det N = det M``),
        ``v = N^{-1} y`` (one refinement step), ``z = B^T v = M^{-1} h``, ``r = v'v + z'z`` (``= y'N^{-1}y``, an upper
        bound at a rounded ``v``) and the refinement's ``e'e``.  In ``P`` dimensions ``M`` has ``P - n`` unit
        eigenvalues beside ones of order ``q``: where ``q`` is large its rounding moves them (``log det M`` off by 0.5
        at ``log q = 33``) and ``y'y - ...`` loses every digit, while ``N``'s eigenvalues are ``1 + q mu``, each to
        its own precision.  None where ``N`` is not positive definite in floating point."""
        import scipy.linalg

        y = self.rows[1]
        b = at * s[None, :]
        nmat = b @ b.T
        nmat.flat[:: len(nmat) + 1] += 1.0
        try:
            low = scipy.linalg.cholesky(nmat, lower=True, check_finite=False)
        except np.linalg.LinAlgError:
            return None
        v = scipy.linalg.cho_solve((low, True), y, check_finite=False)
        e = scipy.linalg.solve_triangular(low, y - nmat @ v, lower=True, check_finite=False)
        v += scipy.linalg.solve_triangular(low, e, lower=True, trans="T", check_finite=False)
        z = b.T @ v
        r = float(v @ v + z @ z) + 1e-300 * max(self.yy, 1e-300)
        return b, low, z, r, float(e @ e)

    def _at(
        self, cmat: np.ndarray, bvec: np.ndarray, ts: list, logs: np.ndarray, want_grad: bool, at: np.ndarray | None
    ):
        """``-2 log p`` (and its gradient in ``log s``) at ``T`` (through ``C, b``, the ``T``'s; ``at``, ``A T``, for
        the ``n x n`` form) and ``log s``."""
        import scipy.linalg

        self.evaluations += 1
        self.bar.update()
        s = np.exp(logs)
        if at is not None:
            dual = self._dual(at, s)
            if dual is None:
                return (np.inf, None) if want_grad else np.inf
            b, low, z, r, err = dual
            n = self.n
            self.noise = n * (err + 4 * EPS * np.sqrt(r * self.yy)) / r  # (no y'y - ... cancellation)
            f = n * np.log(r / n) + 2.0 * np.sum(np.log(np.diag(low)))
            if not want_grad:
                return f
            lb = scipy.linalg.solve_triangular(low, b, lower=True, check_finite=False)
            seen = np.einsum("ij,ij->j", lb, lb)  # 1 - (M^{-1})_kk
            csz = at.T @ (b @ z)
            g_logs = (n / r) * (-2 * s * bvec * z + 2 * s * z * csz) + 2 * seen
            return f, g_logs
        primal = self._primal(cmat, bvec, ts, s, lower=self.fortran and not want_grad)
        if primal is None:
            return (np.inf, None) if want_grad else np.inf
        f, r_up, z, r = primal
        n = self.n
        if not want_grad:
            return f
        rinv = scipy.linalg.lapack.dtrtri(r_up, lower=0)[0]
        minv_diag = np.einsum("ij,ij->i", rinv, rinv)
        csz = cmat @ (s * z)
        # d f / d log s_k = s_k d f / d s_k
        g_logs = (n / r) * (-2 * s * bvec * z + 2 * s * z * csz) + 2 * (1 - minv_diag)
        return f, g_logs

    def _primal(self, cmat: np.ndarray, bvec: np.ndarray, ts: list, s: np.ndarray, lower: bool = False):
        """``(f, R, z, r)`` of the ``P x P`` form at ``T`` (through ``C, b``, the ``T``'s) and ``s``: ``M = R^T R``,
        ``z = M^{-1} h`` (refined), ``r`` (:meth:`residual`), ``f = -2 log p``; None where ``M`` is not positive
        definite in floating point.  ``lower``: ``R^T`` instead of ``R``, factored in Fortran order straight from
        ``M``'s memory (no copy into LAPACK's order; a quarter faster at ``P = 2000``).  Sets :attr:`noise`."""
        import scipy.linalg

        m = _whitened(cmat, s)
        if lower:
            r_up, info = scipy.linalg.lapack.dpotrf(m.T, lower=1, clean=1)  # (M's upper triangle, as R would)
            if info != 0:
                return None
        else:
            try:
                r_up = scipy.linalg.cholesky(m, lower=False, check_finite=False)
            except np.linalg.LinAlgError:
                return None
        z, err = _refined_solve(r_up, m, s * bvec, lower)
        r = self.residual(z, s, ts)
        n = self.n
        self.noise = n * (err + 4 * EPS * self.yy) / r  # the solve's error, then the rounding of y'y - 2c'w + w'Gw
        return n * np.log(r / n) + 2.0 * np.sum(np.log(np.diag(r_up))), r_up, z, r

    def _in_log_s(self, r_up: np.ndarray, z: np.ndarray, r: float, jac: np.ndarray | None = None):
        """The gradient of ``-2 log p`` in ``log s`` (``T`` fixed) and, given ``jac = d log s / d theta`` ``(P, k)``,
        its Hessian in ``log s`` projected on ``jac`` (``jac^T H jac``, ``k x k``), from ``R^T`` (``M = R^T R``, the
        lower factor in Fortran order), ``z`` and ``r``.

        With ``K = S C S``, ``M = I + K``, ``B = M^{-1}``: ``h = S b`` gives ``h - K z = z``, so
        ``d r / d log s_k = -2 z_k^2`` and ``d z_k / d log s_j = z_j (2B - I)_kj``; ``d log det M / d log s_k =
        2 (1 - B_kk)`` and ``d B_kk / d log s_j = -2 B_kj (I - B)_jk``.  Hence, with ``f = n log r + log det M``,
        ``grad = (n / r) g_r + 2 (1 - diag B)``, ``g_r = -2 z^2``, and
        ``H = (n / r) (4 diag(z^2) - 8 (z z^T) o B) - (n / r^2) g_r g_r^T + 4 diag(B) - 4 B o B`` (``o``: entrywise):
        one inverse from the factor (``dpotri``), one entrywise square and two ``P x P x k`` products."""
        import scipy.linalg

        n = self.n
        g_r = -2.0 * z * z
        if jac is None:  # diag B = the column norms of R^{-T}: a triangular inverse, not all of B
            low_inv = scipy.linalg.lapack.dtrtri(r_up, lower=1)[0]
            return (n / r) * g_r + 2.0 * (1.0 - np.einsum("ij,ij->j", low_inv, low_inv)), None
        inv = scipy.linalg.lapack.dpotri(r_up, lower=1, overwrite_c=0)[0]
        d = np.diag(inv).copy()
        grad = (n / r) * g_r + 2.0 * (1.0 - d)
        zj = z[:, None] * jac
        bzj = scipy.linalg.blas.dsymm(1.0, inv, zj, lower=1)
        bbj = scipy.linalg.blas.dsymm(1.0, np.square(inv), jac, lower=1)  # (B o B) jac
        self._inverse = inv  # (the lower triangle of B, for the posterior at this point)
        jr = jac.T @ g_r
        return grad, (
            (n / r) * (4.0 * (zj.T @ zj) - 8.0 * (zj.T @ bzj))
            - (n / r**2) * np.outer(jr, jr)
            + 4.0 * ((jac * d[:, None]).T @ jac)
            - 4.0 * (jac.T @ bbj)
        )

    def _log_s_jacobian(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``d log s / d theta`` ``(P, k)`` and ``d^2 log s / d theta^2`` ``(k, k, P)``, by central differences
        (``log s`` is a smooth closed form in ``theta``; coefficients with ``s = 0``, repeated lags, drop out)."""
        step = 1e-4
        k = len(theta)

        def at(*moves: tuple[int, float]) -> np.ndarray:
            th = theta.copy()
            for i, d in moves:
                th[i] += d
            return self.log_s(th)

        base = self.log_s(theta)
        plus = [at((i, step)) for i in range(k)]
        minus = [at((i, -step)) for i in range(k)]
        curv = np.zeros((k, k, len(base)))
        with np.errstate(invalid="ignore"):  # -inf - -inf where lags repeat
            jac = np.stack([(p - m) / (2 * step) for p, m in zip(plus, minus)], axis=1)
            for i in range(k):
                curv[i, i] = (plus[i] - 2 * base + minus[i]) / step**2
                for j in range(i):
                    curv[i, j] = curv[j, i] = (
                        at((i, step), (j, step))
                        - at((i, step), (j, -step))
                        - at((i, -step), (j, step))
                        + at((i, -step), (j, -step))
                    ) / (4 * step**2)
        return np.where(np.isfinite(jac), jac, 0.0), np.where(np.isfinite(curv), curv, 0.0)

    def derivatives(self, theta: np.ndarray, below: float = np.inf, through_t: bool = True):
        """``(f, grad, hess)`` of ``-2 log p`` in ``theta`` in the ``P x P`` form (the statistics; not :attr:`rows`):
        through ``log s`` analytically (:meth:`_in_log_s`), through ``T`` (DC's correlation, SS's decay: one value
        ``tau``) with the slope analytic (:meth:`_through_t`) and the curvature from ``f`` one step up against that
        slope, the cross terms from the gradient in ``log s`` there (one more factorization; with ``ANALYTIC_T =
        False``, or where the slope's form does not apply, central differences of ``f``: two;
        ``through_t=False`` leaves them out, for steps in the scales alone).  ``(f, None, None)`` where ``f`` is not
        below ``below`` (one factorization, no more)."""
        key = np.asarray(theta, dtype=float).tobytes()
        taus = self.taus(theta)
        hit = self._last_derivatives
        if hit is not None and hit[0] == key and (hit[1] or not through_t or not any(len(t) for t in taus)):
            return hit[2]
        s = np.exp(self.log_s(theta))
        if self._factored is not None and self._factored[0] == key:  # the part through log s, computed here
            _, f, g_ell, jac, grad, hess, noise = self._base
            grad, hess = grad.copy(), hess.copy()
        else:
            self.evaluations += 1
            self.bar.update()
            primal = self._primal(*self.transformed(taus), s, lower=True)
            if primal is None:
                return np.inf, None, None
            f, r_up, z, r = primal
            if not f < below:
                return f, None, None
            noise = self.noise
            jac, curv = self._log_s_jacobian(theta)
            g_ell, hess = self._in_log_s(r_up, z, r, jac)
            self._factored = (key, r_up, z, r, self._inverse)
            grad = jac.T @ g_ell
            hess += curv @ g_ell
            self._base = (key, f, g_ell, jac, grad.copy(), hess.copy(), noise)
        # steps in T (absolute: DC's rho sqrt(alpha) is in (-1, 1), SS's log kappa a logarithm) whose second
        # differences rise above f's rounding (noise / step^2 under |f| noise / (noise / |f|)^{1/2}, cf. _chain)
        step = float(np.clip((noise / max(abs(f), 1.0)) ** 0.25, 1e-3, 0.05))
        moves = [(blk, m, step) for blk, tau in enumerate(taus) for m in range(len(tau))] if through_t else []
        plus, vs = [], []
        if moves and not ANALYTIC_T:
            return self._central_in_t(theta, taus, moves, s, f, jac, g_ell, grad, hess, noise, key)
        slopes: list[float] = []
        if moves:
            assert self._factored is not None
            _, _, z0, r0, inv0 = self._factored
            found = [self._through_t(taus, blk, m, s, z0, r0, inv0) for blk, m, _ in moves]
            if any(d is None for d in found):
                return self._central_in_t(theta, taus, moves, s, f, jac, g_ell, grad, hess, noise, key)
            slopes = [float(d) for d in found if d is not None]
        tangents = [self._tau_derivatives(theta, blk, m) for blk, m, _ in moves]
        for d1, (v, v2) in zip(slopes, tangents):
            grad += d1 * v
            hess += d1 * v2
        for (blk, m, step), d1, (v, _) in zip(moves, slopes, tangents):
            # the slope in T is analytic; its curvature and its cross terms with log s from one step up (one
            # factorization): d2 from f there against the tangent, the cross terms from the gradient in log s there
            at = self._moved_primal(taus, [(blk, m, step)], s)
            if at is None:
                return f, grad, hess  # (the step's edge: no curvature in T from here)
            g_moved = self._in_log_s(at[1], at[2], at[3])[0]
            d2 = 2.0 * (at[0] - f - step * d1) / step**2
            cross = jac.T @ ((g_moved - g_ell) / step)
            hess += d2 * np.outer(v, v) + np.outer(cross, v) + np.outer(v, cross)
            plus.append(at[0])
            vs.append(v)
        self._mixed_in_t(taus, moves, s, f, plus, vs, hess)
        self.noise = noise
        self._last_derivatives = (key, bool(moves), (f, grad, hess))
        return f, grad, hess

    def _central_in_t(self, theta, taus, moves, s, f, jac, g_ell, grad, hess, noise, key):
        """The part of :meth:`derivatives` through ``T`` by central differences of ``f`` (two factorizations per
        value ``T`` depends on, and the gradient in ``log s`` one step up): the search before the analytic slope
        (``ANALYTIC_T = False``, kept for benchmarks/tuning_search.py's comparison)."""
        plus, vs = [], []
        for blk, m, step in moves:
            values, g_moved = [], g_ell
            for sign in (1.0, -1.0):
                at = self._moved_primal(taus, [(blk, m, sign * step)], s)
                if at is None:
                    return f, grad, hess
                values.append(at[0])
                if sign > 0:
                    g_moved = self._in_log_s(at[1], at[2], at[3])[0]
            d1 = (values[0] - values[1]) / (2 * step)
            d2 = (values[0] - 2 * f + values[1]) / step**2
            cross = jac.T @ ((g_moved - g_ell) / step)
            v, v2 = self._tau_derivatives(theta, blk, m)
            grad += d1 * v
            hess += d2 * np.outer(v, v) + np.outer(cross, v) + np.outer(v, cross) + d1 * v2
            plus.append(values[0])
            vs.append(v)
        self._mixed_in_t(taus, moves, s, f, plus, vs, hess)
        self.noise = noise
        self._last_derivatives = (key, bool(moves), (f, grad, hess))
        return f, grad, hess

    def _mixed_in_t(self, taus, moves, s, f, plus, vs, hess) -> None:
        """Add to ``hess`` the cross terms between two values of ``T`` (one per input, unshared): one evaluation
        per pair, both moved, against ``plus`` (``f`` with each moved alone) and their tangents ``vs``."""
        for i in range(len(moves)):
            for j in range(i):
                at = self._moved_primal(taus, [moves[i], moves[j]], s)
                if at is None:
                    continue
                mixed = (at[0] - plus[i] - plus[j] + f) / (moves[i][2] * moves[j][2])
                hess += mixed * (np.outer(vs[i], vs[j]) + np.outer(vs[j], vs[i]))

    def _moved_primal(self, taus: list[np.ndarray], moves: list[tuple[int, int, float]], s: np.ndarray):
        """:meth:`_primal` with ``T``'s values moved (``(block, index, step)``), ``s`` held (one evaluation)."""
        moved = [t.copy() for t in taus]
        for blk, m, step in moves:
            moved[blk][m] += step
        self.evaluations += 1
        self.bar.update()
        return self._primal(*self.transformed(moved), s, lower=True)

    def _tau_derivatives(self, theta: np.ndarray, blk: int, m: int) -> tuple[np.ndarray, np.ndarray]:
        """The gradient and Hessian in ``theta`` of block ``blk``'s ``tau[m]`` (central differences)."""
        step = 1e-4
        sl = slice(blk * self.per + 1, (blk + 1) * self.per)
        kern = self.kernels[blk]
        shape = theta[sl]

        def tau(*moves: tuple[int, float]) -> float:
            sh = shape.copy()
            for i, d in moves:
                sh[i] += d
            return float(kern.tau(sh)[m])

        k = len(shape)
        v, v2 = np.zeros(len(theta)), np.zeros((len(theta), len(theta)))
        base = tau()
        for i in range(k):
            v[sl.start + i] = (tau((i, step)) - tau((i, -step))) / (2 * step)
            v2[sl.start + i, sl.start + i] = (tau((i, step)) - 2 * base + tau((i, -step))) / step**2
            for j in range(i):
                v2[sl.start + i, sl.start + j] = v2[sl.start + j, sl.start + i] = (
                    tau((i, step), (j, step))
                    - tau((i, step), (j, -step))
                    - tau((i, -step), (j, step))
                    + tau((i, -step), (j, -step))
                ) / (4 * step**2)
        return v, v2

    def _chain(self, theta, taus, logs, f0: float, g_logs: np.ndarray) -> np.ndarray:
        """The gradient in ``theta``: through ``log s`` analytically, through ``T`` by one forward difference of
        ``-2 log p`` per value ``T`` depends on (``log s`` held fixed)."""
        step = 1e-6
        # the forward difference in T: a step whose rounding error in f stays below its truncation error
        fd_step = max(step, np.sqrt(self.noise / max(abs(f0), 1.0)))
        grad = np.zeros_like(theta)
        for j in range(len(theta)):
            tp, tm = theta.copy(), theta.copy()
            tp[j] += step
            tm[j] -= step
            with np.errstate(invalid="ignore"):  # -inf - -inf where lags repeat
                d = (self.log_s(tp) - self.log_s(tm)) / (2 * step)
            grad[j] = g_logs @ np.where(np.isfinite(d), d, 0.0)  # coefficients with s = 0 (repeated lags) drop out
        for b, tau in enumerate(taus):
            if not len(tau):
                continue
            sl = slice(b * self.per + 1, (b + 1) * self.per)
            k = self.kernels[b]
            df_dtau = np.zeros(len(tau))
            for m in range(len(tau)):
                h = fd_step * max(abs(float(tau[m])), 1.0)
                moved = [t.copy() for t in taus]
                moved[b][m] += h
                cmat, bvec, ts = self.transformed(moved)
                df_dtau[m] = (self._at(cmat, bvec, ts, logs, False, self.design_t(moved)) - f0) / h
            shape = theta[sl]
            for j in range(len(shape)):
                sp, sm = shape.copy(), shape.copy()
                sp[j] += step
                sm[j] -= step
                grad[sl.start + j] += df_dtau @ ((k.tau(sp) - k.tau(sm)) / (2 * step))
        return grad

    def coefficients(self, v: np.ndarray, ts: list) -> np.ndarray:
        """``w = T v`` in the sorted order (``v`` per column: ``(P,)`` or ``(P, k)``)."""
        out = np.zeros((len(self.g),) + v.shape[1:])
        for i, (grp, t) in enumerate(zip(self.groups, ts)):
            part = v[self.offsets[i] : self.offsets[i + 1]]
            out[grp] = _apply(t, part[:, None])[:, 0] if v.ndim == 1 else _apply(t, part)
        return out

    def residual(self, z: np.ndarray, s: np.ndarray, ts: list) -> float:
        """``r = ||y - A w||^2 + ||z||^2`` at ``w = T S z``, from the statistics in the coefficients' own basis.
        Equal to ``y'y - h'M^{-1}h`` at the exact ``z``, but an upper bound of it at any other: the rounding error
        of an ill-conditioned ``M`` raises ``r`` slightly, it can never make ``r`` small or negative (``y'y - h'z``
        would, by ``eps |z|'|M||z|``, for a smooth prior on a rough response at high SNR)."""
        w = self.coefficients(s * z, ts)
        rss = self.yy - 2.0 * (self.c @ w) + w @ (self.g @ w)
        return max(rss, 0.0) + float(z @ z) + 1e-300 * max(self.yy, 1e-300)

    def posterior(self, theta: np.ndarray):
        """Posterior mean (in the sorted order), its covariance over the noise variance, ``r``, ``-2 log p``."""
        import scipy.linalg

        taus = self.taus(theta)
        cmat, bvec, ts = self.transformed(taus)
        s = np.exp(self.log_s(theta))
        at = self.design_t(taus)
        if at is not None:
            dual = self._dual(at, s)
            if dual is not None:
                b, low, z, r, _ = dual
                factor = self.coefficients(np.diag(s), ts)  # F = T S in the columns' order
                lfb = scipy.linalg.solve_triangular(low, b @ factor.T, lower=True, check_finite=False)
                cov = factor @ factor.T - lfb.T @ lfb  # F M^{-1} F^T = F F^T - F B^T N^{-1} B F^T
                return self.coefficients(s * z, ts), cov, r, 2.0 * np.sum(np.log(np.diag(low)))
        hit = self._factored
        if hit is not None and hit[0] == np.asarray(theta, dtype=float).tobytes():
            # the inverse the last Newton step computed here: F B F^T (F = T S) by applying T, O(P^2) for TC and DC
            _, r_up, z, r, inv = hit
            sbs = np.tril(inv)
            sbs += np.tril(inv, -1).T
            sbs *= s[:, None]
            sbs *= s[None, :]
            half = self.coefficients(sbs, ts)  # F B S, rows in the columns' order
            cov = self.coefficients(np.ascontiguousarray(half.T), ts)
            cov = (cov + cov.T) / 2
            return self.coefficients(s * z, ts), cov, r, 2.0 * np.sum(np.log(np.diag(r_up)))
        m = _whitened(cmat, s)
        r_up = scipy.linalg.cholesky(m, lower=False, check_finite=False)
        z, _ = _refined_solve(r_up, m, s * bvec)
        r = self.residual(z, s, ts)
        rinv = scipy.linalg.lapack.dtrtri(r_up, lower=0)[0]
        mean = self.coefficients(s * z, ts)
        x = self.coefficients(s[:, None] * rinv, ts)
        logdet = 2.0 * np.sum(np.log(np.diag(r_up)))
        return mean, x @ x.T, r, logdet


def _refined_solve(r_up: np.ndarray, m: np.ndarray, h: np.ndarray, lower: bool = False) -> tuple[np.ndarray, float]:
    """``z = M^{-1} h`` from ``M = R^T R`` with one step of iterative refinement, and ``e'e``, ``e = R^{-T}(h - M z)``:
    ``r(z) - r(z*) = (z - z*)' M (z - z*)`` of the unrefined solution, the size of ``r``'s rounding error.
    ``lower``: ``r_up`` holds ``R^T``."""
    import scipy.linalg

    z = scipy.linalg.cho_solve((r_up, lower), h, check_finite=False)
    e = scipy.linalg.solve_triangular(r_up, h - m @ z, trans="N" if lower else "T", lower=lower, check_finite=False)
    z += scipy.linalg.solve_triangular(r_up, e, trans="T" if lower else "N", lower=lower, check_finite=False)
    return z, float(e @ e)


def _symmetrize(a: np.ndarray, rows: int = 256) -> None:
    """``a = (a + a^T) / 2`` in place, a band of rows at a time (no ``P x P`` temporary: see
    :meth:`_StateSpace.apply`'s ``out``); each pair of entries read before either is written."""
    n = len(a)
    for lo in range(0, n, rows):
        hi = min(lo + rows, n)
        band = a[lo:hi, :hi] + a[:hi, lo:hi].T
        band *= 0.5
        a[lo:hi, :hi] = band
        a[:hi, lo:hi] = band.T


def _whitened(cmat: np.ndarray, s: np.ndarray) -> np.ndarray:
    """``M = I + S C S``."""
    m = cmat * s[:, None]
    m *= s[None, :]
    m.flat[:: len(s) + 1] += 1.0
    return m


def _right(a: np.ndarray, t) -> np.ndarray:
    """``a @ T``."""
    if t is None:
        return a.copy()
    if isinstance(t, str):  # upper all-ones: column k sums columns <= k
        return np.cumsum(a, axis=1)
    if isinstance(t, (_StateSpace, _Recursion)):
        return t.right(a)
    if isinstance(t, _Sides):
        return t.apply_t(a.T).T
    return a @ t


def _left_t(t, a: np.ndarray) -> np.ndarray:
    """``T^T @ a``."""
    if t is None:
        return a.copy()
    if isinstance(t, str):
        return np.cumsum(a, axis=0)
    if isinstance(t, (_Recursion, _StateSpace, _Sides)):
        return t.apply_t(a)
    return t.T @ a


def _solve(t, a: np.ndarray) -> np.ndarray:
    """``T^{-1} @ a`` for the factors whose ``T`` moves with the shape (DC's recursion, SS's state space, as matrices
    where small, and two-sided pairs of them): the inverse recursions, ``O(P)`` per vector."""
    if isinstance(t, _Recursion):  # (L v)_i = v_i + a_i (L v)_{i-1}: v_i = y_i - a_i y_{i-1}
        out = np.array(a, dtype=float)
        out[1:] -= _col(t.gains, a[1:]) * a[:-1]
        return out
    if isinstance(t, _StateSpace):
        return t.solve(a)
    if isinstance(t, _Sides):
        k = t.split
        return np.concatenate([_solve(t.causal, a[:k]), _solve(t.anticausal, a[k:])])
    if isinstance(t, np.ndarray):  # (a small SS factor as its matrix: an upper triangle)
        import scipy.linalg

        return scipy.linalg.solve_triangular(t, a, lower=not np.any(np.triu(t, 1)), check_finite=False)
    raise TypeError(f"no inverse recursion for a factor of type {type(t).__name__}")


def _apply(t, a: np.ndarray) -> np.ndarray:
    """``T @ a``."""
    if t is None:
        return a
    if isinstance(t, str):  # row i sums rows >= i
        return np.cumsum(a[::-1], axis=0)[::-1]
    if isinstance(t, (_Recursion, _StateSpace, _Sides)):
        return t.apply(a)
    return t @ a


# ----------------------------------------------------------------------------------------------
# Tuning
# ----------------------------------------------------------------------------------------------


def _tune(ev: _Evidence, theta_starts: list[np.ndarray], bounds: list[tuple[float, float]], n_starts: int, large: bool):
    from scipy.optimize import minimize

    if large:  # each evaluation is a P^3 factorization: one start (the middle decay), a short scale profile
        theta_starts = [theta_starts[len(theta_starts) // 2]]
        if ev.rows is None and NEWTON_SEARCH:
            return _tune_newton(ev, theta_starts[0], bounds)
    theta_starts = [_profile_scales(ev, t, bounds, 6 if large else 20) for t in theta_starts]
    # a profile that slid onto the no-signal plateau (to the scale's lower bound) is restarted from the best scale of
    # a scan: the signal's basin can lie far above the moment-matched scale (SS on slow oscillating responses)
    lowest = bounds[0][0] + 1.0
    theta_starts = [
        _profile_scales(ev, _scan_scale(ev, t, bounds[0]), bounds, 6 if large else 20)
        if np.any(t[:: ev.per] <= lowest)
        else t
        for t in theta_starts
    ]
    scored = sorted(((ev.value(t), i) for i, t in enumerate(theta_starts)), key=lambda fi: fi[0])
    best_f, best_theta = np.inf, theta_starts[scored[0][1]]
    for f0, i in scored[:n_starts]:
        if not np.isfinite(f0):
            continue
        # large problems stop at an absolute change of LARGE_FTOL in -2 log p (far below its sampling noise)
        ftol = max(LARGE_FTOL, ev.noise) / max(abs(f0), 1.0) if large else FTOL
        res = minimize(
            lambda th: ev.value(th, want_grad=True),
            theta_starts[i],
            jac=True,
            method="L-BFGS-B",
            bounds=bounds,
            options={"ftol": ftol, "gtol": 1e-2 if large else 1e-6, "maxfun": MAX_EVALUATIONS},
        )
        if res.fun < best_f:
            best_f, best_theta = float(res.fun), np.asarray(res.x)
    p = len(ev.g)
    if p <= SCAN_BELOW or ev.n <= p:  # (large blocks: the scale only, at the found shape, where n <= P)
        best_theta, best_f = _rescan(ev, best_theta, best_f, bounds, shapes=p <= SCAN_BELOW, large=large)
    return best_theta, best_f


def _tune_newton(ev: _Evidence, theta: np.ndarray, bounds: list[tuple[float, float]]) -> tuple[np.ndarray, float]:
    """Large blocks (from the statistics): Newton's method with the evidence's exact Hessian
    (:meth:`_Evidence.derivatives`), first on the scales at the start's shape, then on everything.  Each step costs
    a factorization and an inverse of ``M`` (two more per value ``T`` depends on), and a few steps reach the
    optimum where L-BFGS-B, learning the curvature from gradients along the ridge between the scale and the decay,
    took 20 to 50 evaluations.  A scale profile that ends on the no-signal plateau is restarted from the best scale
    of a scan, as in :func:`_tune`; where ``n <= P`` the scale is then checked against its grid (:func:`_rescan`)."""
    ev.fortran = True
    theta = _walk_scale(ev, theta, bounds[0])
    if np.any(theta[:: ev.per] <= bounds[0][0] + 1.0):
        theta = _walk_scale(ev, _scan_scale(ev, theta, bounds[0]), bounds[0])
    ftol = LARGE_FTOL
    theta, f = _newton(ev, theta, bounds, ftol, noisy=True)
    if ev.n <= len(ev.g):
        theta, f = _rescan(ev, theta, f, bounds, shapes=False, large=True)
    return theta, f


def _walk_scale(ev: _Evidence, theta: np.ndarray, bound: tuple[float, float]) -> np.ndarray:
    """A start for Newton's method: the scales (all inputs' ``log q`` moved together) walked from ``theta`` downhill,
    first by ``SCALE_SCAN_STEP``, each step 1.5 times the last, until ``-2 log p`` rises, then the vertex of the
    parabola through the last three values.  Values alone (one factorization each, no inverse): the start need not
    be the profile's exact minimum, the search over everything moves the scales again."""
    idx = np.arange(0, len(theta), ev.per)
    lo, hi = bound

    def at(shift: float) -> np.ndarray:
        th = theta.copy()
        th[idx] = np.clip(theta[idx] + shift, lo, hi)
        return th

    def value(shift: float) -> float:
        return float(ev.value(at(shift)))

    xs, fs = [0.0, -SCALE_SCAN_STEP], [value(0.0), value(-SCALE_SCAN_STEP)]
    direction = -1.0
    if not fs[1] < fs[0]:
        xs, fs = [xs[1], xs[0]], [fs[1], fs[0]]  # (uphill below: walk up, the last three stay in order)
        direction = 1.0
    span = float(np.max(theta[idx]) - lo) if direction < 0 else float(hi - np.min(theta[idx]))
    step = SCALE_SCAN_STEP
    while fs[-1] < fs[-2] and abs(xs[-1]) < span:
        step *= 1.5  # (the minimum can lie decades away: a walk of equal steps took up to 8 values)
        xs.append(xs[-1] + direction * step)
        fs.append(value(xs[-1]))
    if not fs[-1] < fs[-2] and len(xs) >= 3 and np.all(np.isfinite(fs[-3:])):
        (x0, x1, x2), (f0, f1, f2) = xs[-3:], fs[-3:]
        den = (x1 - x0) * (f1 - f2) - (x1 - x2) * (f1 - f0)
        best = x1 - 0.5 * ((x1 - x0) ** 2 * (f1 - f2) - (x1 - x2) ** 2 * (f1 - f0)) / den if den else x1
        return at(float(np.clip(best, min(x0, x2), max(x0, x2))))
    return at(xs[int(np.argmin(fs))])


#: Large blocks (over ``SINGLE_START_ABOVE`` coefficients, from the statistics) search by Newton's method
#: (:func:`_tune_newton`); False: by L-BFGS-B as smaller blocks do (kept for benchmarks/tuning_search.py's comparison).
NEWTON_SEARCH = True
#: Newton's derivatives through ``T`` (DC's correlation, SS's decay): the slope analytic and the curvature from one
#: step up (:meth:`_Evidence._through_t`, one factorization per value ``T`` depends on); False: central differences of
#: the value (two), as before (kept for benchmarks/tuning_search.py's comparison).
ANALYTIC_T = True
#: Newton's steps move each unconstrained hyperparameter by at most this (``log q`` down: ``NEWTON_MAX_STEP``, up:
#: ``NEWTON_MAX_RISE``): far from the optimum the evidence is nearly linear in ``log q`` (its curvature there says
#: little about the distance to the minimum), and below it lies the no-signal plateau.
NEWTON_MAX_STEP = float(np.log(10.0))
NEWTON_MAX_RISE = float(np.log(1e3))
#: ... and each shape hyperparameter (``log kappa``, ``atanh rho``) by at most this: away from the optimum the
#: curvature in the shape can be small or negative, and a long step there lands far up the evidence's wall.
NEWTON_MAX_SHAPE_STEP = 0.5
#: The first search, over the scales alone at the start's shape, stops at this predicted change of ``-2 log p``.
SCALE_FTOL = 1.0
NEWTON_MAX_ITER = 50


def _newton(
    ev: _Evidence,
    theta: np.ndarray,
    bounds: list[tuple[float, float]],
    ftol: float,
    free: np.ndarray | None = None,
    noisy: bool = False,
) -> tuple[np.ndarray, float]:
    """Minimize ``-2 log p`` over the ``free`` hyperparameters (all by default) within the bounds by Newton steps on
    the exact Hessian (its eigenvalues taken in absolute value, floored: a saddle is left downhill), capped at
    :data:`NEWTON_MAX_STEP`, shortened until ``f`` decreases; stops where the predicted decrease is under ``ftol``
    (an absolute change of ``-2 log p``) or a step gains less than it."""
    lo = np.array([b[0] for b in bounds])
    hi = np.array([b[1] for b in bounds])
    theta = np.clip(np.asarray(theta, dtype=float), lo, hi)
    through_t = free is None or bool(np.any(free[[i for i in range(len(theta)) if i % ev.per]]))
    f, g, h = ev.derivatives(theta, through_t=through_t)
    if g is None or h is None:
        return theta, f
    for _ in range(NEWTON_MAX_ITER):
        move = np.ones(len(theta), dtype=bool) if free is None else free.copy()
        move &= ~(((theta <= lo) & (g > 0)) | ((theta >= hi) & (g < 0)))  # held at a bound
        if not move.any():
            break
        lam, vec = np.linalg.eigh(h[np.ix_(move, move)])
        lam = np.maximum(np.abs(lam), 1e-8 * max(float(np.abs(lam).max()), 1e-300))
        d = -vec @ ((vec.T @ g[move]) / lam)
        if -0.5 * float(g[move] @ d) <= (max(ftol, ev.noise) if noisy else ftol):
            break
        step = np.zeros(len(theta))
        step[move] = d
        cap = np.full(len(theta), NEWTON_MAX_SHAPE_STEP)
        cap[:: ev.per] = np.where(step[:: ev.per] > 0, NEWTON_MAX_RISE, NEWTON_MAX_STEP)
        step *= min(1.0, float(np.min(cap / np.maximum(np.abs(step), 1e-300))))
        slope = float(g @ step)  # < 0
        for _ in range(8):
            trial = np.clip(theta + step, lo, hi)
            ft, gt, ht = ev.derivatives(trial, below=f, through_t=through_t)
            if gt is not None and ht is not None:
                break
            # shorter: to the minimum of the parabola through f, the slope and ft along the step, kept in [0.1, 0.5]
            rise = ft - f - slope
            step *= float(np.clip(-slope / (2 * rise), 0.1, 0.5)) if np.isfinite(rise) and rise > 0 else 0.1
            slope = float(g @ step)
        else:
            break
        gain = f - ft
        theta, f, g, h = trial, ft, gt, ht
        if gain <= (max(ftol, ev.noise) if noisy else ftol):
            break
    return theta, f


def _rescan(
    ev: _Evidence, theta: np.ndarray, f: float, bounds: list[tuple[float, float]], shapes: bool, large: bool
) -> tuple[np.ndarray, float]:
    """The local searches' optimum ``(theta, f)`` checked against the grid of :func:`_scan_shapes` (``shapes``: of
    every shape, else of ``theta``'s shape only): a local search from each of the grid's best local minima (up to
    ``SCAN_RESTARTS``, within ``SCAN_SLACK`` of ``f``, away from ``theta``) replaces it where it ends lower by more
    than the evidence's rounding; where the local searches already found the optimum the result is theirs."""
    from scipy.optimize import minimize

    ftol = max(LARGE_FTOL, ev.noise) / max(abs(f), 1.0) if large else FTOL
    tol = max(1e-9 * abs(f), 4 * ev.noise)
    here = np.concatenate([[np.mean(theta[:: ev.per])], theta[1 : ev.per]])
    for f_grid, start in _scan_shapes(ev, theta, bounds, every_shape=shapes):
        if f_grid > f + SCAN_SLACK:
            break
        there = np.concatenate([[np.mean(start[:: ev.per])], start[1 : ev.per]])
        if abs(there[0] - here[0]) <= 1.0 and np.all(np.abs(there[1:] - here[1:]) <= SCAN_DECAY_STEP):
            continue  # the basin the local searches ended in
        res = minimize(
            lambda th: ev.value(th, want_grad=True),
            start,
            jac=True,
            method="L-BFGS-B",
            bounds=bounds,
            options={"ftol": ftol, "gtol": 1e-2 if large else 1e-6, "maxfun": MAX_EVALUATIONS},
        )
        if res.fun < f - tol:
            theta, f = np.asarray(res.x), float(res.fun)
    return theta, f


def _scan_shapes(
    ev: _Evidence, theta: np.ndarray, bounds: list[tuple[float, float]], every_shape: bool = True
) -> list[tuple[float, np.ndarray]]:
    """The local minima of ``-2 log p`` on a grid over the shape (every input given the same one) and the common
    scale, within the bounds, best first (at most ``SCAN_RESTARTS``), as ``(value, theta)``.

    At a fixed shape, with ``K = S_1 C S_1`` at ``q = 1``, ``K = V diag(l) V^T`` and ``beta = V^T S_1 b``, the profile
    in ``q`` is explicit, ``r(q) = y'y - sum q beta_k^2 / (1 + q l_k)`` and ``log det M = sum log(1 + q l_k)``: one
    eigendecomposition per shape gives every scale.  ``r`` is summed as ``r_0 + sum beta_k^2 / (l_k (1 + q l_k))``
    with ``r_0 = y'y - sum beta_k^2 / l_k`` (the residual as ``q -> inf``, at least 0), over the directions the rank
    rule resolves: no cancellation as ``q`` grows (where ``n <= P``, ``r -> 0`` and ``y'y - ...`` would be rounding
    noise, a spurious minimum).  A shape's value is its best scale's; the minima are over the shapes."""
    idx = np.arange(0, len(theta), ev.per)
    k0 = ev.kernels[0]
    axes = [theta[1 : ev.per, None]]
    if every_shape and k0.n_shape:
        lo, hi = bounds[1]
        axes = [np.arange(lo, hi + SCAN_DECAY_STEP / 2, SCAN_DECAY_STEP)]
        if k0.n_shape == 2:
            lo, hi = bounds[2]
            axes.append(np.arange(lo, hi + SCAN_CORRELATION_STEP / 2, SCAN_CORRELATION_STEP))
    elif not k0.n_shape:
        axes = []
    lqs = np.arange(bounds[0][0], bounds[0][1] + SCAN_SCALE_STEP / 2, SCAN_SCALE_STEP)
    q = np.exp(lqs)[:, None]
    floor = 1e-300 * max(ev.yy, 1e-300)  # (as in _Evidence.residual)
    shape_grid = tuple(len(a) for a in axes)
    values = np.full(shape_grid, np.inf)
    points = np.empty(shape_grid, dtype=object)
    for pos in np.ndindex(shape_grid):
        th = theta.copy()
        for i in idx:
            th[i + 1 : i + ev.per] = [a[j] for a, j in zip(axes, pos)]
        th[idx] = 0.0
        cmat, bvec, _ = ev.transformed(ev.taus(th))
        s1 = np.exp(ev.log_s(th))
        lam, vec = np.linalg.eigh(cmat * s1[:, None] * s1[None, :])
        if not np.all(np.isfinite(lam)) or lam[-1] <= 0:
            continue
        keep = np.sqrt(np.clip(lam, 0.0, None)) > rank_tolerance(np.sqrt(lam[-1]), ev.n, len(lam), "gram")
        lam, beta2 = lam[keep], (vec[:, keep].T @ (s1 * bvec)) ** 2
        r0 = max(ev.yy - float(np.sum(beta2 / lam)), 0.0)
        r = r0 + np.sum(beta2 / (lam * (1 + q * lam)), axis=1) + floor
        f = ev.n * np.log(r / ev.n) + np.sum(np.log1p(q * lam), axis=1)
        i = int(np.argmin(f))
        values[pos] = f[i]
        th[idx] = lqs[i]
        points[pos] = th
    minima = []
    for pos in np.ndindex(shape_grid):
        around = tuple(slice(max(j - 1, 0), j + 2) for j in pos)
        if np.isfinite(values[pos]) and values[pos] <= values[around].min():
            minima.append((float(values[pos]), points[pos]))
    minima.sort(key=lambda fp: fp[0])
    return minima[:SCAN_RESTARTS]


def _energy(g: np.ndarray, c: np.ndarray, yy: float, n: int) -> float:
    """``||w||^2 / sigma^2`` of a (lightly ridged) least-squares fit: the scale the prior's variance should match."""
    import scipy.linalg

    p = len(g)
    lam = 1e-6 * max(np.trace(g) / max(p, 1), 1e-300) if n > p else 1e-2 * np.trace(g) / max(p, 1)
    try:
        w = scipy.linalg.cho_solve(scipy.linalg.cho_factor(g + lam * np.eye(p), check_finite=False), c)
    except np.linalg.LinAlgError:
        return 1.0
    rss = max(yy - c @ w, 0.0)
    sigma2 = rss / (n - p) if n > 2 * p else max(rss, 1e-3 * yy) / max(n, 1)
    return float(w @ w / max(sigma2, 1e-300 * max(yy, 1e-300)))


def _scan_scale(ev: _Evidence, theta: np.ndarray, bound: tuple[float, float]) -> np.ndarray:
    """The start with its scales (``log q``, all inputs together) set to the best on a grid over the bound: at a
    fixed shape the profile in ``q`` can have two basins, the no-signal plateau (small ``q``) and the signal's, which
    for a smooth prior on a rough response (SS on an oscillating one) lies ``1e5`` above the moment-matched scale."""
    idx = np.arange(0, len(theta), ev.per)
    best_f, best = np.inf, theta
    for lq in np.arange(bound[0] + 1.0, bound[1], SCALE_SCAN_STEP):
        th = theta.copy()
        th[idx] = lq
        f = ev.value(th)
        if f < best_f:
            best_f, best = f, th
    return best


def _profile_scales(
    ev: _Evidence, theta: np.ndarray, bounds: list[tuple[float, float]], maxiter: int = 20
) -> np.ndarray:
    """The start with its scales (``log q`` per input) optimized for its fixed shape: the shape starts are then
    compared at their best scale, and no local search starts where a poor scale makes a plateau look better."""
    from scipy.optimize import minimize

    idx = np.arange(0, len(theta), ev.per)
    if len(idx) == 1 and maxiter < 20:
        return _profile_one_scale(ev, theta, bounds[0], maxiter)

    def fun(lq):
        th = theta.copy()
        th[idx] = lq
        f, g = ev.value(th, want_grad=True)
        return f, g[idx]

    res = minimize(
        fun, theta[idx], jac=True, method="L-BFGS-B", bounds=[bounds[i] for i in idx], options={"maxiter": maxiter}
    )
    out = theta.copy()
    out[idx] = res.x
    return out


def _profile_one_scale(ev: _Evidence, theta: np.ndarray, bound: tuple[float, float], maxiter: int) -> np.ndarray:
    """One scale profiled by a bracketing secant on ``d(-2 log p)/d log q`` with steps of at most ``log 10``:
    a quasi-Newton line search from the far start spends its first evaluations on the no-signal plateau."""

    def deriv(lq):
        th = theta.copy()
        th[0] = lq
        return ev.value(th, want_grad=True)[1][0]

    x, d = float(theta[0]), deriv(float(theta[0]))
    lo = hi = None  # points with d < 0 and d > 0
    for _ in range(maxiter):
        if abs(d) < 0.1:
            break
        lo, hi = ((x, d), hi) if d < 0 else (lo, (x, d))
        if lo is not None and hi is not None:
            (xl, dl), (xh, dh) = lo, hi
            if abs(xh - xl) < 1e-2:
                break
            t = np.clip(dl / (dl - dh), 0.1, 0.9)
            x = xl + t * (xh - xl)
        else:
            x = float(np.clip(x - np.sign(d) * np.log(10.0), *bound))
        d = deriv(x)
    out = theta.copy()
    out[0] = x
    return out


def _start_scale(ev: _Evidence, shape: np.ndarray, energy: float) -> np.ndarray:
    """``log q`` that makes the prior's total variance (summed over inputs) match a least-squares fit's energy."""
    total = float(np.sum(ev.kernels[0].prior_diag(shape)))
    total *= ev.n_in
    # from above: -2 log p rises without bound as q grows, while small q can sit on the plateau of the
    # no-signal model (q -> 0), so the profile in q starts well above the moment-matched scale
    return np.array([np.log(max(energy, 1e-300) / max(total, 1e-300)) + START_ABOVE])


def tune_output(
    kind: str,
    u: np.ndarray,
    chan: np.ndarray,
    rank: np.ndarray,
    g: np.ndarray,
    c: np.ndarray,
    yy: float,
    n: int,
    share: bool,
    custom: np.ndarray | None,
    bar: Any = None,
    side: np.ndarray | None = None,
    rows: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, Any]:
    """Tune one output channel's prior and return its posterior (mean, covariance over sigma^2, hyperparameters);
    ``bar`` (a progress bar) is advanced once per evidence evaluation; ``side`` (:func:`column_sides`) marks the
    anticausal columns of a two-sided window; ``rows`` (:meth:`_Evidence.residual`) the design and this channel's
    outputs."""
    inputs = np.unique(chan)
    groups, kernels = [], []
    for ch in inputs:
        cols = np.flatnonzero(chan == ch)
        split = 0
        if custom is None and kind in ("tc", "dc", "ss") and side is not None and 0 < side[cols].sum() < len(cols):
            cols = cols[np.lexsort((u[cols], side[cols]))]  # the causal side, then the anticausal side
            split = int(np.sum(side[cols] == 0))
        else:
            cols = cols[np.argsort(u[cols], kind="stable")]
        groups.append(cols)
        factor = None
        if custom is not None:
            order = rank[cols]
            factor = _custom_factor(custom[np.ix_(order, order)])
        kernels.append(_Kernel("custom" if custom is not None else kind, u[cols], factor, split))
    ev = _Evidence(kernels, groups, g, c, yy, n, share, bar, rows)
    k0 = kernels[0]
    blocks = 1 if share else len(kernels)
    starts = []
    energy = _energy(g, c, yy, n)
    for shape in k0.starts():
        one = np.concatenate([_start_scale(ev, shape, energy), shape])
        starts.append(np.tile(one, blocks))
    # the scale is searched around the moment-matched one of the middle start: far below it lies the plateau of the
    # no-signal model (q -> 0), which a long first line-search step would otherwise reach
    mid = float(starts[len(starts) // 2][0]) - START_ABOVE
    bounds = [(mid - 12.0, mid + 30.0)] + k0.bounds()
    n_starts = 1 if len(g) > SINGLE_START_ABOVE else N_STARTS
    theta, f = _tune(ev, starts, bounds * blocks, n_starts, len(g) > SINGLE_START_ABOVE)
    mean, cov_unit, r, logdet = ev.posterior(theta)
    sigma2 = r / n
    ps = ev.params(theta)
    q = np.array([np.exp(p[0]) for p in ps])
    out: dict[str, Any] = {
        "mean": mean,
        "cov": sigma2 * cov_unit,
        "sigma2": sigma2,
        "prior_scale": q * sigma2,
        "log_evidence": -0.5 * (n * np.log(2 * np.pi * max(r, 1e-300) / n) + n + logdet),
        "n_evaluations": ev.evaluations,
    }
    if k0.n_shape:
        out["decay"] = np.array([np.exp(-_sigmoid_rate(p[1])) for p in ps])
    if kind == "dc" and custom is None:
        out["correlation"] = np.array([np.tanh(p[2]) for p in ps])
    return out


# ----------------------------------------------------------------------------------------------
# A block
# ----------------------------------------------------------------------------------------------


def centered(block: Block, use_bias: bool):
    """Statistics of the kernel columns with an unpenalized bias profiled out."""
    st = block_statistics(block, use_bias)
    if st.cross is None or st.yty is None:
        raise ValueError("method='lstsq' needs the outputs `y`: these statistics were built without them.")
    nf = block.n_free
    g, c, yy, n = st.gram[:nf, :nf], st.cross[:nf], st.yty.copy(), st.n_rows
    if use_bias:
        s = st.gram[:nf, nf]
        ys = st.cross[nf]
        g = g - np.outer(s, s) / n
        c = c - np.outer(s, ys) / n
        yy = yy - ys**2 / n
        return g, c, yy, n - 1, (s, ys, n)
    return g, c, yy, n, None


def with_bias(w: np.ndarray, cov: np.ndarray | None, sigma2: np.ndarray, bias_parts):
    """Append the profiled bias to coefficients ``(P, O)`` and covariances ``(O, P, P)`` (flat prior on the bias)."""
    if bias_parts is None:
        return w, cov
    s, ys, n_rows = bias_parts
    b = (ys - s @ w) / n_rows
    w = np.concatenate([w, b[None]])
    if cov is None:
        return w, None
    p = cov.shape[1]
    full = np.zeros((cov.shape[0], p + 1, p + 1))
    full[:, :p, :p] = cov
    cs = cov @ s  # (O, P)
    full[:, :p, p] = full[:, p, :p] = -cs / n_rows
    full[:, p, p] = sigma2 / n_rows + np.einsum("op,p->o", cs, s) / n_rows**2
    return w, full


def regularized(
    problem: CanonicalProblem,
    block: Block,
    kind: str,
    *,
    prior: PriorArg | None = None,
    share: bool = False,
    progress: bool | None = None,
) -> tuple[np.ndarray, dict[str, Any], np.ndarray | None]:
    """Tuned regularized estimate of one block: coefficients ``(P, O)``, info, posterior covariances ``(O, P, P)``.

    ``progress``: a bar over the evidence evaluations (None: on a terminal, from ``PROGRESS_FROM`` coefficients).

    With no equation left for the noise once the bias is fitted (``use_bias=True`` and one equation per output
    channel), the data say nothing about the kernel or the noise, so nothing can be tuned: the kernel is the prior
    mean (zero), the bias fits the equation, the hyperparameters, the noise variance and the covariance are unknown
    (NaN, None), and ``info["untuned"]`` says why (the solution is then not a success).
    """
    use_bias = problem.config.use_bias
    g, c, yy, n, bias_parts = centered(block, use_bias)
    if n < 1:
        return _untuned(problem, block, kind, prior, c.shape[1], bias_parts)
    n_out = c.shape[1]
    info: dict[str, Any] = {"solver": "prior" if prior is not None else kind}
    p = len(g)
    cov = np.zeros((n_out, p, p))
    sigma2 = np.zeros(n_out)
    if kind == "gcv":
        w, cov, sigma2, lams = _gcv(g, c, yy, n)
        info["ridge"] = lams
    else:
        u, chan, rank = column_layout(problem, block)
        side = column_sides(problem, block)
        custom = None if prior is None else user_prior(prior, problem.config.tap_lags())
        w = np.zeros_like(c)
        fits = []
        # n <= P: the fit can interpolate, r -> 0 as the scale grows, and the residual is read from the rows
        explicit = block.retains_rows and block.ys is not None and n <= p and block.n_equations * p <= EXPLICIT_LIMIT
        a = design_matrix(block, False) if explicit else None
        ys = np.concatenate(block.ys) if explicit and block.ys is not None else None
        if a is not None and ys is not None and use_bias:  # the bias profiled out: centred rows
            a, ys = a - a.mean(axis=0), ys - ys.mean(axis=0)
        desc = "prior" if prior is not None else f"regularization={kind!r}"
        with progress_bar(progress, worth_showing=p >= PROGRESS_FROM, desc=desc, unit="evaluation") as bar:
            for o in range(n_out):
                if n_out > 1:
                    bar.set_postfix_str(f"output channel {o + 1} of {n_out}")
                rows = None if a is None or ys is None else (a, ys[:, o])
                fit = tune_output(kind, u, chan, rank, g, c[:, o], float(yy[o]), n, share, custom, bar, side, rows)
                w[:, o] = fit["mean"]
                cov[o] = fit["cov"]
                sigma2[o] = fit["sigma2"]
                fits.append(fit)
        info["noise_variance"] = sigma2
        info["prior_scale"] = np.stack([f["prior_scale"] for f in fits])
        info["ridge"] = sigma2[:, None] / info["prior_scale"]
        for key in ("decay", "correlation"):
            if key in fits[0]:
                info[key] = np.stack([f[key] for f in fits])
        info["log_evidence"] = np.array([f["log_evidence"] for f in fits])
        info["n_evaluations"] = np.array([f["n_evaluations"] for f in fits])
        if share:  # one set for all inputs: (O, 1) -> broadcast over the inputs for the record
            cin = problem.config.in_per_group
            for key in ("prior_scale", "ridge", "decay", "correlation"):
                if key in info:
                    info[key] = np.repeat(info[key][:, :1], cin, axis=1)
    w, cov_full = with_bias(w, cov, sigma2, bias_parts)
    info["n_rows"] = block_statistics(block, use_bias).n_rows
    return w, info, cov_full


def _untuned(
    problem: CanonicalProblem, block: Block, kind: str, prior: PriorArg | None, n_out: int, bias_parts
) -> tuple[np.ndarray, dict[str, Any], None]:
    """The answer of :func:`regularized` when the bias leaves no equation: the prior mean (zero) and the bias that
    fits, every tuned value NaN (the same keys as a tuned fit), no covariance."""
    n_rows = block_statistics(block, problem.config.use_bias).n_rows
    w, _ = with_bias(np.zeros((block.n_free, n_out)), None, np.full(n_out, np.nan), bias_parts)
    info: dict[str, Any] = {
        "solver": "prior" if prior is not None else kind,
        "n_rows": n_rows,
        "untuned": (
            f"the regularization could not be tuned: each output channel has {n_rows} equation, taken by the bias, "
            "leaving none to tell the kernel or the noise; the kernel is the prior mean (zero) and the bias fits the "
            "equation, without standard errors: give at least 2 output samples per output channel"
        ),
    }
    nan = np.full(n_out, np.nan)
    if kind == "gcv" and prior is None:
        info["ridge"] = nan
        return w, info, None
    n_in = len(np.unique(column_layout(problem, block)[1]))
    info["noise_variance"] = nan
    info["prior_scale"] = np.full((n_out, n_in), np.nan)
    info["ridge"] = np.full((n_out, n_in), np.nan)
    if prior is None and kind != "ml":
        info["decay"] = np.full((n_out, n_in), np.nan)
    if prior is None and kind == "dc":
        info["correlation"] = np.full((n_out, n_in), np.nan)
    info["log_evidence"] = nan
    info["n_evaluations"] = np.zeros(n_out, dtype=int)
    return w, info, None


#: GCV's grid over ``log lambda``: points per decade (then a bounded scalar search between the best point's neighbours).
GCV_PER_DECADE = 8


def _gcv(g: np.ndarray, c: np.ndarray, yy: np.ndarray, n: int):
    """Ridge by generalized cross-validation, per output: ``lambda`` minimizing
    ``V(lambda) = n RSS(lambda) / (n - df(lambda))^2`` over the whole range where it changes the answer.

    In the eigenbasis of ``G = A^T A = V diag(d) V^T`` (directions with ``d`` under the one rank rule, ``"gram"``, are
    unresolved: ``d = 0``, ``z = 0``), with ``e_k = z_k / sqrt(d_k)`` (``z = V^T A^T y``) the data's coordinates along
    the resolved directions and ``r`` their number::

        RSS(lambda) = RSS_0 + sum_k e_k^2 (lambda / (d_k + lambda))^2
        n - df(lambda) = (n - r) + sum_k lambda / (d_k + lambda)

    with ``RSS_0 = y^T y - sum_k e_k^2`` the least-squares residual (exactly 0 where ``r = n``: the fit interpolates).
    Written so, no term cancels: ``y^T y - sum_k z_k^2 (d_k + 2 lambda) / (d_k + lambda)^2`` loses every digit where
    the residual is small next to ``y^T y`` (low noise, or ``n <= P``), and the minimum found on that rounding noise
    was not the criterion's.  ``lambda`` is searched from ``eps d_min`` (below it the ridge changes no digit of the
    least-squares kernel) to ``d_max / eps`` (above it the kernel is zero to double precision), so a criterion that
    falls all the way to either end (no noise; no signal) is minimized at that end, not at an arbitrary bound.
    """
    from scipy.optimize import minimize_scalar

    d, v = np.linalg.eigh(g)
    d = np.clip(d, 0.0, None)
    z = v.T @ c
    p, n_out = len(g), c.shape[1]
    lams, w = np.zeros(n_out), np.zeros_like(c)
    cov = np.zeros((n_out, p, p))
    sigma2 = np.zeros(n_out)
    if d.max(initial=0.0) <= 0:  # no resolved direction: the kernel is zero for every lambda
        kept = np.zeros(p, dtype=bool)
    else:
        kept = np.sqrt(d) > rank_tolerance(np.sqrt(d.max()), n, p, "gram")
    d = np.where(kept, d, 0.0)
    z[~kept] = 0.0
    rank, dk = int(kept.sum()), d[kept]
    if rank:
        lo, hi = np.log(EPS * dk.min()), np.log(dk.max() / EPS)
    else:
        lo, hi = 0.0, 0.0
    grid = np.linspace(lo, hi, max(int(np.ceil((hi - lo) / np.log(10.0) * GCV_PER_DECADE)), 1) + 1)
    for o in range(n_out):
        e2 = z[kept, o] ** 2 / dk
        rss0 = 0.0 if rank >= n else max(float(yy[o]) - float(np.sum(e2)), 0.0)

        def parts(loglam, e2=e2, rss0=rss0):
            lam = np.exp(np.asarray(loglam, dtype=float))[..., None]
            shrink = lam / (dk + lam)  # 1 - d_k / (d_k + lambda), without the subtraction
            return rss0 + np.sum(e2 * shrink**2, axis=-1), (n - rank) + np.sum(shrink, axis=-1)

        def gcv(loglam):
            rss, dof = parts(loglam)
            return n * rss / np.maximum(dof, 1e-300) ** 2

        values = gcv(grid)
        i = int(np.argmin(values))
        lg = float(grid[i])
        if rank and 0 < i < len(grid) - 1:
            found = minimize_scalar(gcv, bounds=(grid[i - 1], grid[i + 1]), method="bounded", options={"xatol": 1e-6})
            if found.fun < values[i]:
                lg = float(found.x)
        lams[o] = lam = np.exp(lg)
        w[:, o] = v @ (z[:, o] / (d + lam))
        rss, dof = parts(lg)
        sigma2[o] = float(rss) / max(float(dof), 1e-12)
        cov[o] = sigma2[o] * (v / (d + lam)) @ v.T
    return w, cov, sigma2, lams


def ridge_covariance(block: Block, use_bias: bool, ridge: float, coef: np.ndarray) -> np.ndarray | None:
    """``sigma^2 (A^T A + ridge D)^{-1}`` per output (D zero on the bias), ``sigma^2 = RSS / (n - df)``."""
    st = block_statistics(block, use_bias)
    if st.cross is None or st.yty is None:
        return None
    p = len(st.gram)
    pen = np.ones(p)
    if use_bias:
        pen[-1] = 0.0
    inv = np.linalg.inv(st.gram + np.diag(ridge * pen))
    df = float(np.sum(inv * st.gram))
    rss = st.yty - 2 * np.einsum("ij,ij->j", coef, st.cross) + np.einsum("ij,ij->j", coef, st.gram @ coef)
    sigma2 = np.clip(rss, 0.0, None) / max(st.n_rows - df, 1e-12)
    return sigma2[:, None, None] * inv[None]
