"""Linear least squares on the Toeplitz (im2col) system: ``method="lstsq"``."""

from __future__ import annotations

import numbers

import numpy as np

from ..determinacy import block_spectrum
from ..problem import CanonicalProblem
from ..result import Solution
from ..statistics import EXPLICIT_LIMIT, block_statistics, design_matrix, n_columns, unpack_columns


def solve(problem: CanonicalProblem, *, ridge: float = 0.0) -> Solution:
    """Minimum-norm least squares, per output channel, optionally with Tikhonov regularization.

    Options
    -------
    ridge : float, >= 0
        Adds ``ridge * ||kernel||^2`` to the squared residual (the bias is not penalized).

    Notes
    -----
    Small systems (at most ``EXPLICIT_LIMIT`` design entries) are solved by an SVD of the explicit
    design (``numpy.linalg.lstsq``), which is backward stable.  Larger ones use the normal equations
    ``A^T A w = A^T y`` built in chunks, solved through the eigendecomposition of ``A^T A`` with the
    analyzer's rank tolerance, so a rank-deficient design still gives the minimum-norm answer.
    """
    if isinstance(ridge, (bool, np.bool_)) or not isinstance(ridge, numbers.Real) or not np.isfinite(ridge) or ridge < 0:
        raise ValueError(f"`ridge` must be a finite number >= 0, got {ridge!r}.")
    use_bias = problem.config.use_bias
    kernels, biases, stderr, bias_err, paths = [], [], [], [], []
    for block in problem.blocks:
        p = n_columns(block, use_bias)
        n = block.n_equations
        penalty = np.ones(p)
        if use_bias:
            penalty[-1] = 0.0
        if n * p <= EXPLICIT_LIMIT:
            a = design_matrix(block, use_bias)
            y = np.concatenate(block.ys)
            if ridge > 0:
                a = np.concatenate([a, np.diag(np.sqrt(ridge * penalty))])
                y = np.concatenate([y, np.zeros((p, y.shape[1]))])
            coef = np.linalg.lstsq(a, y, rcond=None)[0]
            paths.append("svd")
        else:
            stats = block_statistics(block, use_bias)
            if ridge > 0:
                coef = np.linalg.solve(stats.gram + np.diag(ridge * penalty), stats.cross)
            else:
                spec = block_spectrum(block, use_bias)
                keep = spec.singular_values > spec.tolerance
                v = spec.right_vectors[:, keep]
                coef = v @ ((v.T @ stats.cross) / spec.singular_values[keep, None] ** 2)
            paths.append("normal_equations")
        k, b = unpack_columns(block, coef, use_bias)
        kernels.append(k)
        biases.append(b)
        se = _standard_errors(problem, block, coef, ridge)
        if se is not None:
            ks, bs = unpack_columns(block, se, use_bias)
            stderr.append(ks)
            bias_err.append(bs)
    full = len(stderr) == len(problem.blocks)
    return Solution(
        kernels=kernels,
        biases=biases if use_bias else None,
        message="solved" if ridge == 0 else f"solved with ridge={ridge:g}",
        kernel_stderr=stderr if full else None,
        bias_stderr=bias_err if full and use_bias else None,
        options={"ridge": float(ridge)},
        diagnostics={"solver": paths},
    )


def _standard_errors(problem, block, coef, ridge) -> np.ndarray | None:
    """``sqrt(diag(sigma^2 (A^T A)^-1))`` with ``sigma^2 = RSS / (n - P)``; None when undefined."""
    use_bias = problem.config.use_bias
    p = n_columns(block, use_bias)
    n = block.n_equations
    spec = block_spectrum(block, use_bias)
    if ridge > 0 or n <= p or spec.rank < p:
        return None
    k, b = unpack_columns(block, coef, use_bias)
    resid = np.concatenate([y - f for y, f in zip(block.ys, block.forward(k, b))])
    sigma2 = np.einsum("ij,ij->j", resid, resid) / (n - p)
    v, s = spec.right_vectors, spec.singular_values
    diag_inv = np.einsum("ij,j->i", v**2, 1.0 / s**2)
    return np.sqrt(np.outer(diag_inv, sigma2))
