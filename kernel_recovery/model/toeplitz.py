"""Long single-input kernels: when least squares takes the Toeplitz CG path, and that path (the Gram as
Toeplitz minus edges, applied by FFT, and preconditioned conjugate gradients)."""

from __future__ import annotations

from typing import Literal

import numpy as np

from .design import EXPLICIT_LIMIT, n_columns
from .problem import Block
from .spectrum import exact_spectrum_affordable
from .statistics import block_lags, column_sums

#: Single-input blocks with at least this many taps take the Toeplitz CG path (their Gram is never formed).
LONG_KERNEL = 2048


def solve_path(
    block: Block, use_bias: bool, long_kernel: int | None = None
) -> Literal["explicit", "normal_equations", "toeplitz_cg"]:
    """How a block's least squares is computed (every entry point agrees; recorded in ``diagnostics["solver"]``).

    ``"explicit"``: designs of at most ``EXPLICIT_LIMIT`` entries, SVD of the rows; ``"toeplitz_cg"``: one input
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
    if block.n_equations * n_columns(block, use_bias) <= EXPLICIT_LIMIT:
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
        for x, y, (rl, q) in zip(block.xs, block.ys, block_lags(block, outputs=True)):
            assert q is not None  # asked for, and the block has outputs
            m = len(x) - t + 1
            r += rl[:, 0, 0]
            self.cross = self.cross + q[:, 0, :]
            for edge, sign in ((x[: t - 1, 0], -1.0), (x[m : m + t - 1, 0], 1.0)):
                self.edges.append((scipy.fft.rfft(edge, self.size), sign))
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
