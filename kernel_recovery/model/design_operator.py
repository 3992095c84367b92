"""A block's design ``A`` as a :class:`scipy.sparse.linalg.LinearOperator`, for iterative solvers and checks.

The package's own solvers read the sufficient statistics (:mod:`kernel_recovery.model.statistics`) or the
explicit rows (:mod:`kernel_recovery.model.design`); this operator hands the same design, never formed, to
``scipy.sparse.linalg.lsqr``/``lsmr``, to PyLops (``pylops.aslinearoperator``) or to a user's own solver.
Its products are the package's forward model and adjoint (:mod:`kernel_recovery.model.operator`).

This module imports :mod:`scipy.sparse.linalg`, so ``import kernel_recovery`` does not load it.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse.linalg import LinearOperator

from .design import design_rows, n_columns, unpack_columns
from .operator import adjoint, forward
from .problem import Block


class DesignOperator(LinearOperator):
    """One block's design ``A`` (``n_equations x P``) as a SciPy linear operator.

    Columns are the block's free kernel coefficients (row-major ``(tap, channel)``), then the bias column;
    rows are the output samples of each subsequence in turn.  ``A @ w`` runs the forward model (direct or FFT
    correlation) and ``A.T @ v`` the adjoint (lagged cross-correlations), for vectors and for matrices with one
    column per output channel.  ``rows`` cuts explicit rows; ``dottest`` checks ``<A w, v> = <w, A^T v>``.

    Parameters
    ----------
    block : Block
        A block of a :class:`~kernel_recovery.model.problem.CanonicalProblem` that holds its rows.
    use_bias : bool
        Whether the design has the bias column.

    Examples
    --------
    >>> import numpy as np
    >>> from scipy.sparse.linalg import lsqr
    >>> from kernel_recovery.model.problem import build_problem
    >>> x = np.arange(6.0)
    >>> block = build_problem(x, None, 2).blocks[0]
    >>> op = DesignOperator(block, use_bias=False)
    >>> op.shape
    (5, 2)
    >>> (op @ np.array([1.0, 2.0])).tolist()
    [2.0, 5.0, 8.0, 11.0, 14.0]
    >>> np.round(lsqr(op, op @ np.array([1.0, 2.0]), atol=1e-12, btol=1e-12)[0], 8).tolist()
    [1.0, 2.0]
    """

    def __init__(self, block: Block, use_bias: bool) -> None:
        if not block.retains_rows:
            raise ValueError("the design operator needs every row of the block: this one kept only its statistics.")
        self.block = block
        self.use_bias = use_bias
        self._row_ends = np.cumsum([len(x) - block.taps + 1 for x in block.xs])[:-1]
        super().__init__(np.dtype(np.float64), (block.n_equations, n_columns(block, use_bias)))

    def _matmat(self, coef: np.ndarray) -> np.ndarray:
        kernel, bias = unpack_columns(self.block, np.asarray(coef, dtype=float), self.use_bias)
        return np.concatenate(forward(self.block, kernel, bias))

    def _rmatmat(self, values: np.ndarray) -> np.ndarray:
        return adjoint(self.block, self.use_bias, np.split(np.asarray(values, dtype=float), self._row_ends))

    def _matvec(self, coef: np.ndarray) -> np.ndarray:
        return self._matmat(np.reshape(coef, (-1, 1)))[:, 0]

    def _rmatvec(self, values: np.ndarray) -> np.ndarray:
        return self._rmatmat(np.reshape(values, (-1, 1)))[:, 0]

    def rows(self, sequence: int = 0, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Explicit rows ``start:stop`` of subsequence ``sequence``, ``(rows, P)``."""
        return design_rows(self.block, self.block.xs[sequence], self.use_bias, start, stop)

    def dottest(self, n_out: int = 2, rng: np.random.Generator | None = None) -> float:
        """Relative mismatch of ``<A w, v>`` and ``<w, A^T v>`` for random ``w``, ``v`` (PyLops' ``dottest``)."""
        rng = np.random.default_rng(0) if rng is None else rng
        w = rng.standard_normal((self.shape[1], n_out))
        v = rng.standard_normal((self.shape[0], n_out))
        lhs = float(np.sum(self.matmat(w) * v))
        rhs = float(np.sum(w * self.rmatmat(v)))
        return abs(lhs - rhs) / max(abs(lhs), abs(rhs), 1e-300)
