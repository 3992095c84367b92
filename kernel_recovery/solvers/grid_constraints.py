"""Constraints and a smoothness prior for grid kernels (image blurs, PSFs), solved exactly on the normal equations.

A point-spread function is non-negative and sums to one; a blur kernel is smooth.  Per group, from the Gram
``G = A^T A``, ``c = A^T Y`` and ``Y^T Y`` of :func:`~kernel_recovery.model.grid.grid_statistics` (the design is
never formed), each output channel's kernel ``w`` (its ``taps * in_channels // groups`` coefficients; a bias is
unconstrained and unpenalized, profiled out exactly) solves

    minimize  ||y - A w - b||^2 + lambda ||L w||^2    subject to  w >= 0  and/or  sum(w) = 1

* ``constraints``: ``"nonnegative"``, ``"sum_to_one"`` or both, solved by a primal active-set method (Lawson and
  Hanson's NNLS, with the equality kept exactly in the KKT system of the free coefficients) that stops at the
  KKT point: the free coefficients solve their equality-constrained least-squares problem and every coefficient
  held at zero has a non-negative multiplier.  The problem is convex, so that point is the optimum.
* ``smoothness``: ``L`` is the N-D discrete Laplacian over the kernel axes, per input channel, zero outside the
  kernel (the ``2N + 1``-point stencil, :func:`laplacian`): the kernel is expected to fall smoothly to zero at its
  edges.  With Dirichlet edges ``L`` is invertible, so in the coordinates ``u = L w`` the prior is a ridge on
  ``A L^{-1}`` and ``"auto"`` chooses ``lambda`` per output channel by generalized cross-validation with the
  conventions of the 1-D ridge (:mod:`kernel_recovery.solvers.priors`): ``V(lambda) = n RSS / (n - df)^2``
  (``n`` the equations less one for a bias), directions under the one rank rule (``"gram"``) unresolved, searched
  over ``[eps d_min, d_max / eps]`` (the eigenvalues of ``L^{-T} G L^{-1}``) on 8 points per decade, then by a
  bounded scalar search between the best point's neighbours.  With constraints the weight is chosen on the
  unconstrained problem (GCV needs a linear smoother), then the constrained problem is solved with it.

Complex data take the smoothness prior (Hermitian normal equations) but not the constraints (an order on complex
numbers has no meaning): a ``ValueError``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from ..model.grid import GridProblem, grid_statistics
from ..model.spectrum import rank_tolerance
from ..model.validation import check_choice, check_real

Constraint = Literal["nonnegative", "sum_to_one"]
#: The constraints a grid kernel takes.
CONSTRAINTS: tuple[Constraint, ...] = ("nonnegative", "sum_to_one")
#: What ``constraints=`` and ``smoothness=`` accept.
ConstraintsArg = Constraint | tuple[Constraint, ...] | list[Constraint] | None
SmoothnessArg = Literal["auto"] | float | None
#: GCV's grid over ``log lambda``: points per decade (as ``priors.GCV_PER_DECADE`` for the 1-D ridge).
GCV_PER_DECADE = 8
EPS = float(np.finfo(float).eps)
#: Active-set iterations allowed per kernel coefficient (each adds or drops one coefficient).
ITERATIONS_PER_COEFFICIENT = 3
#: What the standard errors of a constrained fit mean.
CONDITIONAL_NOTE = (
    "conditional on the active set: the covariance of the free coefficients (and the bias) of the equality-"
    "constrained least squares on the coefficients the solution leaves free, the ones held at zero fixed "
    "(standard error 0); a classical covariance does not exist at an active bound"
)


def check_constraints(constraints: object) -> tuple[Constraint, ...]:
    """``constraints`` as a tuple in :data:`CONSTRAINTS` order (``()`` for None).

    Examples
    --------
    >>> check_constraints(("sum_to_one", "NonNegative"))
    ('nonnegative', 'sum_to_one')
    >>> check_constraints("positive")
    Traceback (most recent call last):
    ...
    ValueError: `constraints` must be 'nonnegative' or 'sum_to_one', got 'positive'.
    """
    if constraints is None:
        return ()
    if isinstance(constraints, str):
        return (check_choice(constraints, "constraints", CONSTRAINTS),)
    if isinstance(constraints, (tuple, list)) and constraints:
        names = {check_choice(c, "constraints", CONSTRAINTS) for c in constraints}
        return tuple(c for c in CONSTRAINTS if c in names)
    raise TypeError(f"`constraints` must be 'nonnegative', 'sum_to_one', a tuple of them or None, got {constraints!r}.")


def check_smoothness(smoothness: object) -> Literal["auto"] | float | None:
    """``smoothness`` as ``"auto"``, a weight ``>= 0`` or None."""
    if smoothness is None:
        return None
    if isinstance(smoothness, str):
        check_choice(smoothness, "smoothness", ("auto",))
        return "auto"
    return check_real(smoothness, "smoothness", low=0.0)


def laplacian(kernel_size: tuple[int, ...], channels: int = 1) -> np.ndarray:
    """The N-D discrete Laplacian over the kernel axes, zero outside the kernel, per channel: ``(P, P)``.

    Columns follow the design's kernel columns, ``(k_1, ..., k_N, c)`` row-major: ``L = sum_i I x .. x D_i x .. x
    I_C`` with ``D_i = tridiag(1, -2, 1)`` of size ``kernel_size[i]``.  ``L`` is negative definite, so invertible.

    Examples
    --------
    >>> laplacian((3,))
    array([[-2.,  1.,  0.],
           [ 1., -2.,  1.],
           [ 0.,  1., -2.]])
    """
    total: np.ndarray = np.zeros((math.prod(kernel_size),) * 2)
    for axis, k in enumerate(kernel_size):
        d = -2.0 * np.eye(k) + np.eye(k, k=1) + np.eye(k, k=-1)
        term: np.ndarray = np.ones((1, 1))
        for j, kj in enumerate(kernel_size):
            term = np.kron(term, d if j == axis else np.eye(kj))
        total += term
    return np.kron(total, np.eye(channels))


@dataclass
class ConstrainedGroup:
    """One group's fit: ``coefs`` ``(P, O_g)`` over the design's columns (bias last), its unit covariance."""

    coefs: np.ndarray
    unit_covariance: np.ndarray | None
    covariance_note: str
    dof_used: float
    weights: np.ndarray | None  # the smoothness weight per output channel
    gcv: np.ndarray | None  # V(lambda) at the chosen weight, per output channel
    n_active: list[int] = field(default_factory=list)  # coefficients held at zero, per output channel
    multipliers: list[float] = field(default_factory=list)  # the sum-to-one multiplier, per output channel
    kkt_residual: list[float] = field(default_factory=list)  # the largest KKT violation (relative), per output
    n_iterations: int = 0
    converged: bool = True


def fit_group(
    problem: GridProblem,
    group: int,
    *,
    constraints: tuple[Constraint, ...],
    smoothness: Literal["auto"] | float | None,
    ridge: float = 0.0,
) -> ConstrainedGroup:
    """The constrained and/or smoothed fit of one group's output channels (see the module's docstring)."""
    if problem.is_complex and constraints:
        raise ValueError(
            f"`constraints`={constraints!r} of method='lstsq' need real data (a PSF is non-negative); x or y is "
            "complex: leave constraints=None."
        )
    cfg = problem.config
    stats = grid_statistics(problem, group)
    if stats.cross is None or stats.yty is None:
        raise ValueError("method='lstsq' needs the outputs `y`: these statistics were built without them.")
    nk = cfg.taps * cfg.in_per_group
    gram, cross = stats.gram, stats.cross
    h, c, yy, n = gram[:nk, :nk], cross[:nk], stats.yty.copy(), stats.n_rows
    if cfg.use_bias:  # profile the unpenalized, unconstrained bias out (as priors.centered)
        s, ys = gram[:nk, nk], cross[nk]
        h = h - np.outer(s, s.conj()) / n
        c = c - np.outer(s, ys) / n
        yy = yy - np.abs(ys) ** 2 / n
        n = n - 1
    n_out = c.shape[1]
    lap = laplacian(cfg.kernel_size, cfg.in_per_group)
    penalty = lap.T @ lap
    weights = gcv = None
    if smoothness == "auto":
        weights, gcv = gcv_weights(h, c, yy, n, lap)
    elif smoothness is not None:
        weights = np.full(n_out, float(smoothness))
    w = np.zeros(c.shape, dtype=c.dtype)
    n_active, mults, kkts, iters, converged = [], [], [], 0, True
    frees: list[np.ndarray] = []
    for o in range(n_out):
        m = h + ridge * np.eye(nk) + (0.0 if weights is None else weights[o] * penalty)
        if constraints:
            qp = active_set_qp(m.real, c[:, o].real, "nonnegative" in constraints, "sum_to_one" in constraints)
            w[:, o] = qp.w
            frees.append(qp.free)
            n_active.append(int(nk - qp.free.sum()))
            mults.append(qp.multiplier)
            kkts.append(qp.kkt_residual)
            iters += qp.n_iterations
            converged = converged and qp.converged
        else:
            w[:, o] = _solve_psd(m, c[:, o])
            frees.append(np.ones(nk, dtype=bool))
    if cfg.use_bias:
        b = (cross[nk] - gram[:nk, nk].conj() @ w) / stats.n_rows
        w = np.concatenate([w, b[None]])
    cov, note, dof = _unit_covariance(gram, nk, cfg.use_bias, ridge, penalty, weights, frees, constraints)
    return ConstrainedGroup(w, cov, note, dof, weights, gcv, n_active, mults, kkts, iters, converged)


def _solve_psd(m: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """``m^{-1} rhs`` for a positive semi-definite ``m`` (Cholesky; the pseudo-inverse where it is singular)."""
    import scipy.linalg

    try:
        return scipy.linalg.cho_solve(scipy.linalg.cho_factor(m), rhs)
    except np.linalg.LinAlgError:
        return np.linalg.pinv(m, hermitian=True) @ rhs


def _unit_covariance(
    gram: np.ndarray,
    nk: int,
    use_bias: bool,
    ridge: float,
    penalty: np.ndarray,
    weights: np.ndarray | None,
    frees: list[np.ndarray],
    constraints: tuple[Constraint, ...],
) -> tuple[np.ndarray | None, str, float]:
    """The group's covariance per unit noise variance, what it means, and the fit's degrees of freedom.

    The estimate of the free coefficients ``F`` (and the bias) is linear in ``c_F = A_F^T y``:
    ``w_F = K c_F + const``, ``K = M^{-1} - M^{-1} a (a^T M^{-1} a)^{-1} a^T M^{-1}`` (``a`` the sum-to-one row,
    ``M`` the penalized Gram of ``F``), so its covariance is ``K G_FF K^T`` and its degrees of freedom
    ``tr(K G_FF)``.  One matrix serves a group, so outputs of one group with different active sets or weights
    have none (``None``, with the reason); the degrees of freedom are then the largest of the outputs'.
    """
    p = len(gram)
    covs, dofs = [], []
    for o, free in enumerate(frees):
        cols = np.flatnonzero(np.concatenate([free, [True] * int(use_bias)]))
        pen = np.zeros((p, p))
        pen[:nk, :nk] = ridge * np.eye(nk) + (0.0 if weights is None else weights[o] * penalty)
        g_ff = gram[np.ix_(cols, cols)]
        m_inv = np.linalg.pinv(g_ff + pen[np.ix_(cols, cols)], hermitian=True)
        if "sum_to_one" in constraints:
            a = (cols < nk).astype(float)
            ma = m_inv @ a
            m_inv = m_inv - np.outer(ma, ma.conj()) / float(np.real(a @ ma))
        full = np.zeros((p, p), dtype=gram.dtype)
        full[np.ix_(cols, cols)] = m_inv @ g_ff @ m_inv.conj().T
        covs.append(full)
        dofs.append(float(np.real(np.trace(m_inv @ g_ff))))
    same = all(np.array_equal(f, frees[0]) for f in frees) and (weights is None or np.all(weights == weights[0]))
    if constraints:
        note = CONDITIONAL_NOTE
    elif weights is not None:
        note = "the sandwich M^-1 A^T A M^-1 of the penalized estimate, M = A^T A + lambda L^T L (0 on the bias)"
    else:
        note = "the sandwich M^-1 A^T A M^-1 of the penalized estimate, M = A^T A + ridge I (0 on the bias)"
    if not same:
        note = (
            "none: the output channels of a group have different active sets or smoothness weights, and a result "
            "holds one covariance per group; fit the output channels one at a time for theirs"
        )
        return None, note, max(dofs)
    return covs[0], note, max(dofs)


# -- the active-set solver -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QPSolution:
    """``minimize 1/2 w^T M w - c^T w`` under the constraints: the solution, its free set and KKT record."""

    w: np.ndarray
    free: np.ndarray  # bool: coefficients not held at zero
    multiplier: float  # of sum(w) = 1 (NaN without it)
    bound_multipliers: np.ndarray  # nu = M w - c + mu, >= 0 where held at zero
    kkt_residual: float  # the largest violation, relative to ||M|| ||w|| + ||c||
    n_iterations: int
    converged: bool


def active_set_qp(m: np.ndarray, c: np.ndarray, nonnegative: bool, sum_to_one: bool) -> QPSolution:
    """``minimize 1/2 w^T M w - c^T w`` subject to ``w >= 0`` (``nonnegative``) and ``sum(w) = 1`` (``sum_to_one``).

    Lawson and Hanson's primal active-set method on the normal equations (``M = A^T A`` is NNLS), generalized to
    the equality: a free set ``F`` (the other coefficients held at zero); each step solves the KKT system of
    ``F``, ``[[M_FF, 1], [1^T, 0]] [w_F; mu] = [c_F; 1]``, moves from the current feasible point towards it as far
    as the bounds allow (a coefficient that reaches zero leaves ``F``), and once it is feasible adds the held
    coefficient of most negative multiplier ``nu = M w - c + mu``.  It stops when every ``nu`` of ``A`` is
    ``>= -tol`` (``tol``: the rounding of ``nu``): the KKT conditions of a convex problem, so the optimum.  The
    start is ``w = 0`` (NNLS) or the best vertex ``e_k`` of the simplex.  Without ``nonnegative`` the equality
    alone is one KKT solve.
    """
    p = len(c)
    ones = np.ones(p)

    def eqp(free: np.ndarray) -> tuple[np.ndarray, float]:
        idx = np.flatnonzero(free)
        z = np.zeros(p)
        if not len(idx):
            return z, 0.0
        mf = m[np.ix_(idx, idx)]
        if sum_to_one:
            kkt = np.block([[mf, ones[idx, None]], [ones[None, idx], np.zeros((1, 1))]])
            rhs = np.concatenate([c[idx], [1.0]])
        else:
            kkt, rhs = mf, c[idx]
        try:
            sol = np.linalg.solve(kkt, rhs)
        except np.linalg.LinAlgError:
            sol = np.linalg.lstsq(kkt, rhs, rcond=None)[0]
        z[idx] = sol[: len(idx)]
        return z, float(sol[-1]) if sum_to_one else 0.0

    scale = float(np.abs(m).sum(axis=1).max(initial=0.0))
    if not nonnegative:
        w, mu = eqp(np.ones(p, dtype=bool))
        return _qp_result(m, c, w, np.ones(p, dtype=bool), mu, sum_to_one, scale, 1, True, False)
    if sum_to_one:
        k = int(np.argmin(0.5 * np.diag(m) - c))
        free = np.zeros(p, dtype=bool)
        free[k] = True
        w = np.zeros(p)
        w[k] = 1.0
    else:
        free, w = np.zeros(p, dtype=bool), np.zeros(p)
    mu, it, converged = 0.0, 0, False
    limit = ITERATIONS_PER_COEFFICIENT * p + 10
    z, mu = eqp(free)
    while it < limit:
        it += 1
        infeasible = free & (z <= 0)
        if infeasible.any():  # step towards z until the first bound; drop what reached zero
            idx = np.flatnonzero(infeasible)
            ratios = w[idx] / (w[idx] - z[idx])  # (w > 0 >= z on these: positive denominators)
            first = int(np.argmin(ratios))
            w = w + float(ratios[first]) * (z - w)
            w[idx[first]] = 0.0
            free &= w > 0
            w[~free] = 0.0
            z, mu = eqp(free)
            continue
        w = z
        nu = m @ w - c + (mu if sum_to_one else 0.0)
        tol = _tolerance(p, scale, w, c)
        held = ~free & (nu < -tol)
        if not held.any():
            converged = True
            break
        j = int(np.argmin(np.where(held, nu, np.inf)))
        free[j] = True
        z, mu = eqp(free)
        if z[j] <= 0:  # rounding: the multiplier's sign was noise; nothing can be gained by freeing it
            free[j] = False
            z, mu = eqp(free)
            converged = True
            break
    return _qp_result(m, c, w, free, mu, sum_to_one, scale, it, converged, True)


def _tolerance(p: int, scale: float, w: np.ndarray, c: np.ndarray) -> float:
    """The rounding of ``nu = M w - c + mu``: ``sqrt(p) * 64 eps (||M||_inf ||w||_inf + ||c||_inf)``."""
    return float(np.sqrt(p) * 64 * EPS * (scale * np.abs(w).max(initial=0.0) + np.abs(c).max(initial=0.0)))


def _qp_result(
    m: np.ndarray,
    c: np.ndarray,
    w: np.ndarray,
    free: np.ndarray,
    mu: float,
    sum_to_one: bool,
    scale: float,
    it: int,
    converged: bool,
    nonnegative: bool,
) -> QPSolution:
    nu = m @ w - c + (mu if sum_to_one else 0.0)
    size = scale * np.abs(w).max(initial=0.0) + np.abs(c).max(initial=0.0)
    viol = [np.abs(nu[free]).max(initial=0.0), -nu[~free].min(initial=0.0)]
    if nonnegative:
        viol.append(-w.min(initial=0.0) * scale)
    if sum_to_one:
        viol.append(abs(w.sum() - 1.0) * scale)
    return QPSolution(
        w=w,
        free=free.copy(),
        multiplier=float(mu) if sum_to_one else float("nan"),
        bound_multipliers=np.where(free, 0.0, nu),
        kkt_residual=float(max(viol) / size) if size > 0 else 0.0,
        n_iterations=it,
        converged=converged,
    )


# -- the smoothness weight -------------------------------------------------------------------------------------


def gcv_weights(h: np.ndarray, c: np.ndarray, yy: np.ndarray, n: int, lap: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per output channel the weight ``lambda`` of ``||L w||^2`` minimizing GCV, and ``V`` there.

    In ``u = L w`` the problem is a ridge with Gram ``G' = L^{-T} H L^{-1} = V diag(d) V^H`` and ``z = V^H
    L^{-T} c``; with ``e_k = |z_k|^2 / d_k`` over the ``r`` directions the rank rule resolves::

        RSS(lambda) = RSS_0 + sum_k e_k (lambda / (d_k + lambda))^2
        n - df(lambda) = (n - r) + sum_k lambda / (d_k + lambda)

    (no cancellation, as :func:`kernel_recovery.solvers.priors._gcv`), ``V = n RSS / (n - df)^2``.
    """
    from scipy.optimize import minimize_scalar

    linv = np.linalg.inv(lap)
    gp = linv.T @ h @ linv
    d, v = np.linalg.eigh((gp + gp.conj().T) / 2)
    d = np.clip(d, 0.0, None)
    z = v.conj().T @ (linv.T @ c)
    p, n_out = len(h), c.shape[1]
    kept = np.zeros(p, dtype=bool)
    if d.max(initial=0.0) > 0:
        kept = np.sqrt(d) > rank_tolerance(np.sqrt(d.max()), n, p, "gram")
    rank, dk = int(kept.sum()), d[kept]
    lo, hi = (np.log(EPS * dk.min()), np.log(dk.max() / EPS)) if rank else (0.0, 0.0)
    grid = np.linspace(lo, hi, max(int(np.ceil((hi - lo) / np.log(10.0) * GCV_PER_DECADE)), 1) + 1)
    weights, values = np.zeros(n_out), np.zeros(n_out)
    for o in range(n_out):
        crit = gcv_criterion(d[kept], np.abs(z[kept, o]) ** 2 / dk, float(yy[o]), n, rank)
        vals = crit(grid)
        i = int(np.argmin(vals))
        lg, best = float(grid[i]), float(vals[i])
        if rank and 0 < i < len(grid) - 1:
            found = minimize_scalar(crit, bounds=(grid[i - 1], grid[i + 1]), method="bounded", options={"xatol": 1e-6})
            if found.fun < best:
                lg, best = float(found.x), float(found.fun)
        weights[o], values[o] = np.exp(lg), best
    return weights, values


def gcv_criterion(dk: np.ndarray, e2: np.ndarray, yy: float, n: int, rank: int) -> Callable[[Any], np.ndarray]:
    """``V(log lambda) = n RSS / (n - df)^2`` of a ridge in the eigenbasis (see :func:`gcv_weights`)."""
    rss0 = 0.0 if rank >= n else max(yy - float(np.sum(e2)), 0.0)

    def crit(loglam: Any) -> np.ndarray:
        lam = np.exp(np.asarray(loglam, dtype=float))[..., None]
        shrink = lam / (dk + lam)
        rss = rss0 + np.sum(e2 * shrink**2, axis=-1)
        dof = (n - rank) + np.sum(shrink, axis=-1)
        return n * rss / np.maximum(dof, 1e-300) ** 2

    return crit
