"""Long single-input kernels: when least squares takes the Toeplitz CG path, and that path (the Gram as
Toeplitz minus edges, applied by FFT, and preconditioned conjugate gradients), with the exact inverse of that
Gram from its displacement structure (standard errors and covariance in ``O(r K^2)``, never ``O(K^3)``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, NamedTuple

import numpy as np

from .design import SVD_LIMIT, n_columns
from .problem import Block
from .spectrum import exact_spectrum_affordable
from .statistics import block_lags, column_sums

#: Single-input blocks with at least this many taps take the Toeplitz CG path (their Gram is never formed).
LONG_KERNEL = 2048


def solve_path(
    block: Block, use_bias: bool, long_kernel: int | None = None
) -> Literal["explicit", "normal_equations", "toeplitz_cg"]:
    """How a block's least squares is computed (every entry point agrees; recorded in ``diagnostics["solver"]``).

    ``"explicit"``: designs of at most ``SVD_LIMIT`` entries, SVD of the rows; ``"toeplitz_cg"``: one input
    channel and either at least ``LONG_KERNEL`` taps or a Gram too costly to factor exactly (see
    :func:`exact_spectrum_affordable`: the report then uses the spectral estimate too), CG on the Toeplitz Gram
    by FFT, ``O(N log K + iterations K log K)``; ``"normal_equations"``: the streamed statistics otherwise (and
    whenever the rows are not retained).
    """
    if not block.retains_rows:
        return "normal_equations"
    long_kernel = LONG_KERNEL if long_kernel is None else long_kernel
    if block.channels == 1 and (block.taps >= long_kernel or not exact_spectrum_affordable(block, use_bias)):
        return "toeplitz_cg"
    if block.n_equations * n_columns(block, use_bias) <= SVD_LIMIT:
        return "explicit"
    return "normal_equations"


class ToeplitzGram:
    """Products with the Gram of a single-input block: ``Toep(R) - H^T H + E^T E`` (+ bias, ridge) by FFT."""

    def __init__(self, block: Block, use_bias: bool, ridge: float) -> None:
        import scipy.fft

        if block.ys is None:
            raise ValueError("the Toeplitz Gram's right-hand side needs the outputs `y`: this block has none.")
        self.fft = scipy.fft
        t = block.taps
        n_out = len(block.out_channels)
        self.t = t
        self.size = scipy.fft.next_fast_len(2 * t, real=True)
        r = np.zeros(t)
        self.cross = np.zeros((t, n_out))
        self.edges = []
        sums = np.zeros(t)
        ysum = np.zeros(n_out)
        n_rows = 0
        self.heads: list[np.ndarray] = []  # the edge samples themselves, for the displacement of the inverse
        self.tails: list[np.ndarray] = []
        for x, y, (rl, q) in zip(block.xs, block.ys, block_lags(block, outputs=True)):
            assert q is not None  # asked for, and the block has outputs
            m = len(x) - t + 1
            r += rl[:, 0, 0]
            self.cross = self.cross + q[:, 0, :]
            for edge, sign in ((x[: t - 1, 0], -1.0), (x[m : m + t - 1, 0], 1.0)):
                self.edges.append((scipy.fft.rfft(edge, self.size), sign))
            self.heads.append(np.asarray(x[: t - 1, 0], dtype=float))
            self.tails.append(np.asarray(x[m : m + t - 1, 0], dtype=float))
            sums += column_sums(x, t)[:, 0]
            ysum = ysum + y.sum(axis=0)
            n_rows += m
        self.n_rows = n_rows
        circ = np.concatenate([r, np.zeros(self.size - 2 * t + 1), r[:0:-1]])
        self.toeplitz = scipy.fft.rfft(circ)
        # T. Chan's optimal circulant preconditioner of Toep(R)
        k = np.arange(t)
        chan = ((t - k) * r + k * np.concatenate([[0.0], r[:0:-1]])) / t
        eig = scipy.fft.rfft(chan).real
        self.precond = 1.0 / np.maximum(eig + ridge, eig.max() * 1e-12)
        self.ridge = ridge
        self.use_bias = use_bias
        self.sums, self.ysum = sums, ysum

    def matvec(self, w: np.ndarray) -> np.ndarray:
        fft, t, size = self.fft, self.t, self.size
        wf = fft.rfft(w, size)
        out = fft.irfft(self.toeplitz * wf, size)[:t]
        for hf, sign in self.edges:
            v = fft.irfft(np.conj(hf) * wf, size)[:t]  # v[s] = sum_i h_i w_{i+s}
            v[0] = 0.0
            out += sign * fft.irfft(hf * fft.rfft(v, size), size)[:t]
        if self.use_bias:
            out -= self.sums * (self.sums @ w) / self.n_rows
        return out + self.ridge * w

    def precondition(self, v: np.ndarray) -> np.ndarray:
        return self.fft.irfft(self.fft.rfft(v) * self.precond, self.t)


def pcg(op: ToeplitzGram, b: np.ndarray, tol: float, max_iter: int) -> tuple[np.ndarray, int]:
    x = np.zeros_like(b)
    r = b.copy()
    z = op.precondition(r)
    p = z.copy()
    rz = r @ z
    norm_b = np.linalg.norm(b)
    if norm_b == 0:
        return x, 0
    for it in range(1, max_iter + 1):  # noqa: B007
        ap = op.matvec(p)
        alpha = rz / (p @ ap)
        x += alpha * p
        r -= alpha * ap
        if np.linalg.norm(r) <= tol * norm_b:
            return x, it
        z = op.precondition(r)
        rz_new = r @ z
        p = z + (rz_new / rz) * p
        rz = rz_new
    return x, max_iter


# ----------------------------------------------------------------------------------------------
# The inverse of the Gram from its displacement structure
# ----------------------------------------------------------------------------------------------

#: The displacement inverse is accepted when its first diagonal entry, the sum of all ``K`` terms of the
#: recursion, agrees with the direct solve ``(G^{-1} e_0)_0`` to this relative accuracy.
INVERSE_RTOL = 1e-7


class InverseGenerators(NamedTuple):
    """``C - Z^T C Z = X Y^T`` for ``C = G^{-1}`` (``Z`` the down-shift), and ``C`` applied to ``s`` (bias)."""

    x: np.ndarray  # (K, r)
    y: np.ndarray  # (K, r)
    first_column: np.ndarray  # C e_0, solved directly: the check of the recursion
    c_sums: np.ndarray | None  # C s (column sums) with a bias, else None


def _down(v: np.ndarray) -> np.ndarray:
    """``Z v``: the entries moved one place down, a zero on top."""
    return np.concatenate([np.zeros((1,) + v.shape[1:]), v[:-1]])


def _up(v: np.ndarray) -> np.ndarray:
    """``Z^T v``: the entries moved one place up, a zero at the bottom."""
    return np.concatenate([v[1:], np.zeros((1,) + v.shape[1:])])


def inverse_generators(op: ToeplitzGram, solve: Callable[[np.ndarray], np.ndarray | None]) -> InverseGenerators | None:
    """Generators of ``C = G^{-1}`` for the (bias-eliminated, ridged) Gram ``G`` that ``op`` applies.

    ``solve(b)`` returns ``G^{-1} b`` (None when it fails: then so does this).  Costs ``2 r + 1`` solves, ``r``
    the displacement rank (below).

    Notes
    -----
    ``G[j+1, k+1] - G[j, k] = sum_records (a_j a_k - b_j b_k) - (s_{j+1} s_{k+1} - s_j s_k) / n`` with ``b`` a
    record's first ``K - 1`` samples, ``a`` the ``K - 1`` after its last row's start and ``s`` the column sums
    (bias only), so ``D = G - Z G Z^T = U S U^T`` has rank ``r = 2 + 2 * records (+ 2)``: ``U = [e_0, g', Z a,
    Z b, Z s_1, Z s_0]`` with ``g' = G e_0 - G_00 e_0 / 2`` and ``S`` pairing ``e_0`` with ``g'`` and weighting
    the rest ``+1, -1, -1/n, +1/n``.  From ``C G = I``, ``C Z G Z^T = I - C D``, and ``Z^T Z = I - e_L e_L^T``
    (``L = K - 1``) one gets ``C - Z^T C Z = (e_L - Z^T C Z G e_L) (C e_L)^T + (Z^T C U) S (C Z^T U)^T``.
    The inverse follows by summing along diagonals from the bottom right: ``C[j, k] = sum_t (X Y^T)[j+t, k+t]``
    (Gohberg-Semencul / Heinig-Rost for Toeplitz-like matrices).
    """
    t = op.t
    e0 = np.zeros(t)
    e0[0] = 1.0
    g = op.matvec(e0)
    g[0] /= 2.0
    cols = [e0, g]
    weights = [0.0, 0.0]
    for tail, head in zip(op.tails, op.heads):
        cols += [np.concatenate([[0.0], tail]), np.concatenate([[0.0], head])]
        weights += [1.0, -1.0]
    if op.use_bias:
        cols += [np.concatenate([[0.0], op.sums[1:]]), np.concatenate([[0.0], op.sums[:-1]])]
        weights += [-1.0 / op.n_rows, 1.0 / op.n_rows]
    u = np.stack(cols, axis=1)
    s = np.diag(weights)
    s[0, 1] = s[1, 0] = 1.0
    rhs = [u[:, i] for i in range(u.shape[1])] + [_up(u[:, i]) for i in range(1, u.shape[1])]
    e_last = np.zeros(t)
    e_last[-1] = 1.0
    rhs += [e_last, _down(op.matvec(e_last))]
    if op.use_bias:
        rhs.append(op.sums)
    solved = []
    for b in rhs:
        x = solve(b)
        if x is None:
            return None
        solved.append(x)
    r = u.shape[1]
    cu = np.stack(solved[:r], axis=1)
    czu = np.concatenate([np.zeros((t, 1)), np.stack(solved[r : 2 * r - 1], axis=1)], axis=1)
    c_last, czg = solved[2 * r - 1], solved[2 * r]
    x_gen = np.concatenate([(e_last - _up(czg))[:, None], _up(cu) @ s], axis=1)
    y_gen = np.concatenate([c_last[:, None], czu], axis=1)
    return InverseGenerators(x_gen, y_gen, cu[:, 0], solved[-1] if op.use_bias else None)


def inverse_diagonal(gen: InverseGenerators) -> np.ndarray:
    """``diag(G^{-1})`` in ``O(r K)``: ``C[j, j] = sum_{i >= j} (X Y^T)[i, i]``."""
    terms = np.einsum("ij,ij->i", gen.x, gen.y)
    return np.cumsum(terms[::-1])[::-1]


def inverse_matrix(gen: InverseGenerators) -> np.ndarray:
    """``G^{-1}`` in ``O(r K^2)``: row ``j`` is row ``j`` of ``X Y^T`` plus row ``j + 1`` shifted left."""
    m = gen.x @ gen.y.T
    for j in range(len(m) - 2, -1, -1):
        m[j, :-1] += m[j + 1, 1:]
    return m  # symmetric up to rounding (averaging with the transpose would cost more than the recursion)


def inverse_accurate(gen: InverseGenerators, diagonal: np.ndarray) -> bool:
    """Whether the recursion's ``C[0, 0]`` (a sum of ``K`` terms) matches the direct solve to ``INVERSE_RTOL``."""
    direct = gen.first_column[0]
    return bool(np.isfinite(diagonal).all() and abs(diagonal[0] - direct) <= INVERSE_RTOL * abs(direct))
