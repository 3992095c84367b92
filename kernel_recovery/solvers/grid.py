"""Solvers of grid problems (N-D kernels, complex signals): what they return, and exact least squares.

A grid solver is ``solve(problem, *, option=default, ...) -> GridSolution`` on a
:class:`~kernel_recovery.model.grid.GridProblem`; its keyword-only parameters are its options.  Coefficients are
per group over the design's columns (:func:`~kernel_recovery.model.grid.design_rows`): the kernel's
``(k_1, ..., k_N, c)`` in correlation order, then the bias.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..model.grid import GridProblem, design_rows, grid_statistics, group_targets
from ..model.grid_spectrum import grid_spectrum
from ..model.validation import check_real


@dataclass
class GridSolution:
    """Per group: ``coefs[g]`` ``(P, O_g)``; ``covariance[g]`` ``(P, P)`` per unit noise variance (None without)."""

    coefs: list[np.ndarray]
    unit_covariance: list[np.ndarray] | None = None
    success: bool = True
    message: str = "solved"
    options: dict[str, Any] = field(default_factory=dict)
    diagnostics: dict[str, Any] = field(default_factory=dict)
    n_iterations: int | None = None
    loss_history: np.ndarray | None = None
    #: Degrees of freedom used by the fit per group (None: the number of columns, as for plain least squares).
    dof_used: list[float] | None = None


def least_squares(problem: GridProblem, group: int) -> np.ndarray:
    """The minimum-norm least-squares coefficients of one group, ``(P, O_g)``, from its design's factorization.

    Explicit designs: ``w = V_r diag(1/s_r) U_r^H Y`` (no squared condition number); otherwise
    ``w = V_r diag(1/s_r^2) V_r^H A^H Y`` from the Gram's eigen-decomposition.
    """
    spec = grid_spectrum(problem, group)
    r = spec.rank
    v, s = spec.vectors[:, :r], spec.singular_values[:r]
    if spec.path == "svd":
        items = range(len(problem.xs))
        a = np.concatenate([design_rows(problem, i, group) for i in items])
        t = np.concatenate([group_targets(problem, i, group) for i in items])
        u = (a @ v) / s
        return v @ ((u.conj().T @ t) / s[:, None])
    cross = grid_statistics(problem, group).cross
    assert cross is not None  # a solver's problem has outputs
    return v @ ((v.conj().T @ cross) / s[:, None] ** 2)


def solve_lstsq(problem: GridProblem, *, ridge: float = 0.0) -> GridSolution:
    """Exact least squares per group (minimum norm when rank-deficient); ``ridge`` adds ``ridge * ||kernel||^2``.

    The unit covariance is ``(A^H A)^+`` (with a ridge, the sandwich ``M^-1 A^H A M^-1``, ``M = A^H A + ridge D``).
    """
    ridge = check_real(ridge, "ridge", low=0.0)
    coefs, covs, paths = [], [], []
    for g in range(problem.config.groups):
        spec = grid_spectrum(problem, g)
        paths.append(spec.path)
        if ridge == 0.0:
            coefs.append(least_squares(problem, g))
            covs.append(spec.pseudo_inverse_gram())
            continue
        stats = grid_statistics(problem, g)
        penalty = np.full(problem.n_columns, ridge)
        if problem.config.use_bias:
            penalty[-1] = 0.0
        m_inv = np.linalg.pinv(stats.gram + np.diag(penalty), hermitian=True)
        assert stats.cross is not None
        coefs.append(m_inv @ stats.cross)
        covs.append(m_inv @ stats.gram @ m_inv)
    return GridSolution(coefs, covs, options={"ridge": ridge}, diagnostics={"solver": paths})


#: Grid method name -> solver (fft and adam register theirs in their own modules, imported lazily).
GRID_METHODS: dict[str, str] = {
    "lstsq": "kernel_recovery.solvers.grid:solve_lstsq",
    "fft": "kernel_recovery.solvers.grid_spectral:solve",
    "adam": "kernel_recovery.solvers.grid_gradient:solve",
}
