"""The spectrum of a grid problem's design, per group: singular values, right singular vectors, the rank.

Small designs (``rows x P`` up to :data:`EXPLICIT_LIMIT` entries) are factorized explicitly (SVD, the ``"design"``
rank rule); larger ones through the eigen-decomposition of ``A^H A`` (:func:`~.grid.grid_statistics`, the
``"gram"`` rule).  The solver and the report read the same factorization (cached on the problem).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .design import EXPLICIT_LIMIT
from .grid import GridProblem, design_rows, grid_statistics
from .spectrum import rank_tolerance


@dataclass(frozen=True)
class GridSpectrum:
    """``A = U diag(s) V^H`` of one group's design (``U`` never formed for the Gram path).

    ``projection`` is ``U^H Y`` restricted to the rank (explicit path) or ``V^H A^H Y`` (Gram path): the data
    the least-squares solution needs, so that ``w = V_r diag(1/s_r) U_r^H Y``.
    """

    singular_values: np.ndarray  # descending
    vectors: np.ndarray  # V, (P, P) columns
    tolerance: float
    exact: bool
    path: str  # "svd" or "gram"

    @property
    def rank(self) -> int:
        return int((self.singular_values > self.tolerance).sum())

    def pseudo_inverse_gram(self) -> np.ndarray:
        """``(A^H A)^+`` on the numerical range, ``V_r diag(1/s_r^2) V_r^H``."""
        r = self.rank
        v = self.vectors[:, :r]
        return (v / self.singular_values[:r] ** 2) @ v.conj().T


def grid_spectrum(problem: GridProblem, group: int) -> GridSpectrum:
    """The factorization of one group's design (cached on the problem)."""
    key = ("spectrum", group)
    if key in problem.cache:
        return problem.cache[key]
    p = problem.n_columns
    rows = problem.n_equations
    if rows * p <= EXPLICIT_LIMIT:
        a = np.concatenate([design_rows(problem, i, group) for i in range(len(problem.xs))])
        _, s, vh = np.linalg.svd(a, full_matrices=rows < p)  # all of V (the null space too), never all of U
        s = np.concatenate([s, np.zeros(p - len(s))])
        tol = rank_tolerance(float(s[0]) if len(s) else 0.0, rows, p, "design")
        spectrum = GridSpectrum(s, vh.conj().T, tol, True, "svd")
    else:
        gram = grid_statistics(problem, group).gram
        lam, v = np.linalg.eigh(gram)
        lam, v = lam[::-1], v[:, ::-1]
        s = np.sqrt(np.clip(lam, 0.0, None))
        tol = rank_tolerance(float(s[0]), rows, p, "gram")
        spectrum = GridSpectrum(s, v, tol, False, "gram")
    problem.cache[key] = spectrum
    return spectrum
