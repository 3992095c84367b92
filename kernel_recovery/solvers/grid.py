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
from .grid_constraints import (
    ConstraintsArg,
    SmoothnessArg,
    check_constraints,
    check_smoothness,
    fit_group,
)


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


def solve_lstsq(
    problem: GridProblem,
    *,
    ridge: float = 0.0,
    constraints: ConstraintsArg = None,
    smoothness: SmoothnessArg = None,
) -> GridSolution:
    """Exact least squares per group (minimum norm when rank-deficient); ``ridge`` adds ``ridge * ||kernel||^2``.

    The unit covariance is ``(A^H A)^+`` (with a ridge, the sandwich ``M^-1 A^H A M^-1``, ``M = A^H A + ridge D``).

    ``constraints`` (``"nonnegative"``, ``"sum_to_one"`` or both: a PSF, per output channel's kernel, the bias
    free; real data only) and ``smoothness`` (``"auto"``: the weight of ``||L w||^2``, ``L`` the N-D Laplacian
    over the kernel axes, chosen by GCV per output channel; or a weight ``>= 0``) are solved exactly on the
    normal equations by :mod:`kernel_recovery.solvers.grid_constraints`; ``options["smoothness"]`` records the
    weight per output channel.  With constraints the covariance is conditional on the active set (the
    coefficients held at zero fixed; ``diagnostics["covariance"]`` says so).
    """
    ridge = check_real(ridge, "ridge", low=0.0)
    kinds = check_constraints(constraints)
    smooth = check_smoothness(smoothness)
    if kinds or smooth is not None:
        if smooth is not None and ridge:
            raise ValueError(
                f"give `ridge` (={ridge!r}) or `smoothness` (={smoothness!r}), not both: each is a penalty whose "
                "weight the other would change."
            )
        return _solve_constrained(problem, ridge, kinds, smooth)
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


def _solve_constrained(
    problem: GridProblem, ridge: float, kinds: tuple[str, ...], smooth: str | float | None
) -> GridSolution:
    """``solve_lstsq`` with constraints and/or the smoothness prior: one :func:`fit_group` per group."""
    fits = [
        fit_group(problem, g, constraints=kinds, smoothness=smooth, ridge=ridge)  # type: ignore[arg-type]
        for g in range(problem.config.groups)
    ]
    options: dict[str, Any] = {"ridge": ridge, "constraints": kinds or None, "smoothness": None}
    diagnostics: dict[str, Any] = {"solver": ["normal equations"] * len(fits)}
    if smooth is not None:
        options["smoothness"] = np.concatenate([f.weights for f in fits if f.weights is not None])
        diagnostics["smoothness"] = {
            "choice": "gcv" if smooth == "auto" else "given",
            "weights": options["smoothness"],
            "gcv": np.concatenate([f.gcv for f in fits if f.gcv is not None]) if smooth == "auto" else None,
            "penalty": "weight * ||L w||^2, L the N-D Laplacian over the kernel axes (zero outside), per channel",
        }
    converged = all(f.converged for f in fits)
    if kinds:
        diagnostics["constraints"] = {
            "constraints": kinds,
            "n_active": [n for f in fits for n in f.n_active],
            "sum_multiplier": [m for f in fits for m in f.multipliers],
            "kkt_residual": [r for f in fits for r in f.kkt_residual],
            "n_iterations": sum(f.n_iterations for f in fits),
            "converged": converged,
        }
    notes = {f.covariance_note for f in fits}
    diagnostics["covariance"] = notes.pop() if len(notes) == 1 else "; ".join(sorted(notes))
    covs = [f.unit_covariance for f in fits]
    return GridSolution(
        [f.coefs for f in fits],
        [c for c in covs if c is not None] if all(c is not None for c in covs) else None,
        success=converged,
        message="solved" if converged else "the active-set iterations stopped before the KKT conditions held",
        options=options,
        diagnostics=diagnostics,
        n_iterations=sum(f.n_iterations for f in fits) if kinds else None,
        dof_used=[f.dof_used for f in fits],
    )


#: Grid method name -> solver (fft and adam register theirs in their own modules, imported lazily).
GRID_METHODS: dict[str, str] = {
    "lstsq": "kernel_recovery.solvers.grid:solve_lstsq",
    "fft": "kernel_recovery.solvers.grid_spectral:solve",
    "adam": "kernel_recovery.solvers.grid_gradient:solve",
}
