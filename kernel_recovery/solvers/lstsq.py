"""Linear least squares on the Toeplitz (im2col) system: ``method="lstsq"``.

Paths, chosen per block (group) and recorded in ``diagnostics["solver"]``:

* ``"svd"``: small systems, an SVD of the explicit design (``numpy.linalg.lstsq``), backward stable;
* ``"normal_equations"``: the exact streamed Gram ``A^T A`` and ``A^T Y`` (see :mod:`..statistics`), solved
  through the eigendecomposition the analyzer already computed; when the Gram's condition number exceeds
  ``1e4`` the answer is refined with residuals computed from the data (``"+refined"``), and above ``1e12``
  the block is solved by a chunked Householder QR of ``[A | Y]`` instead (``"orthogonal"``);
* ``"toeplitz_cg"``: single-input blocks with at least ``LONG_KERNEL`` taps; preconditioned conjugate
  gradients on the Gram written as Toeplitz minus two edge terms, every product by FFT, so time is
  ``O(N log K + iterations * K log K)`` and memory ``O(chunk + K)``; standard errors from the Gram's
  displacement structure (``O(K)`` after ``2 r + 1`` more solves, ``r = 4`` for one record) and the covariance
  in ``O(K^2)``;
* ``"gcv"``, ``"ml"``, ``"tc"``, ``"dc"``, ``"ss"``, ``"di"``, ``"prior"``: automatically regularized estimates
  from the statistics, with their posterior covariance (see :mod:`.priors`);
* ``"lp"`` / ``"irls"``: robust losses.
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple, cast

import numpy as np

from ..model.design import CHUNK_ROWS, EXPLICIT_LIMIT, design_matrix, design_rows, n_columns, unpack_columns
from ..model.operator import adjoint, block_residuals
from ..model.problem import Block, CanonicalProblem
from ..model.result import Solution
from ..model.spectrum import block_spectrum, explicit_design, rank_tolerance
from ..model.statistics import Statistics, block_statistics, rss_from_statistics
from ..model.threads import SerialBLAS
from ..model.toeplitz import (
    LONG_KERNEL,
    ToeplitzGram,
    inverse_accurate,
    inverse_diagonal,
    inverse_generators,
    inverse_matrix,
    pcg,
    solve_path,
)
from ..model.validation import check_bool, check_choice, check_int, check_real
from . import priors
from .priors import REGULARIZATIONS, PriorArg, Regularization

#: Refine normal-equation solutions (residuals from the data) when the Gram's condition number exceeds this: the
#: normal equations lose ~cond * eps, so above 1e4 they could not give ~1e-12 relative on noiseless data.
REFINE_ABOVE = 1e4
#: Solve by orthogonal factorization of the design when the Gram's condition number exceeds this.
ORTHOGONAL_ABOVE = 1e12
#: Largest LP (design entries) solved exactly for ``loss="mae"``; larger problems use IRLS.
LP_LIMIT = 1 << 21

#: Default iteration caps: conjugate gradients of long single-input kernels, IRLS sweeps of the robust losses.
CG_MAX_ITER = 2000
#: The Toeplitz CG path keeps its covariance (``O_b * P^2`` entries) up to this many entries: it costs ``O(r P^2)``
#: there (displacement structure), so memory alone bounds it (128 MiB: one output channel with 4096 taps).
TOEPLITZ_COVARIANCE_LIMIT = 1 << 24
#: Where the displacement inverse fails its check, the exact Gram is inverted (``O(P^3)``) up to this many columns.
TOEPLITZ_DENSE_LIMIT = 4096
#: The Huber threshold, in units of a robust noise scale, when ``huber_delta`` is None.
HUBER_DELTA = 1.345
IRLS_MAX_ITER = 200

Loss = Literal["mse", "mae", "huber"]
LOSSES: tuple[Loss, ...] = ("mse", "mae", "huber")


def solve(
    problem: CanonicalProblem,
    *,
    ridge: float = 0.0,
    regularization: Regularization | None = None,
    prior: PriorArg | None = None,
    share_hyperparameters: bool = False,
    loss: Loss = "mse",
    huber_delta: float | None = None,
    max_iter: int | None = None,
    progress: bool | None = None,
) -> Solution:
    """Least squares per output channel: exact, optionally regularized or robust.

    Options
    -------
    ridge : float, >= 0
        Adds ``ridge * ||kernel||^2`` to the squared residual (the bias is not penalized).
    regularization : {None, "gcv", "ml", "tc", "dc", "ss", "di"}
        Automatic regularization, tuned per output channel and recorded in ``options``: ``"gcv"`` ridge with
        ``lambda`` by generalized cross-validation; the others are Gaussian kernel priors of regularized FIR
        identification (Chen, Ohlsson and Ljung, Automatica 2012) with hyperparameters by marginal likelihood
        (empirical Bayes, a continuous L-BFGS-B optimization from the sufficient statistics): ``"ml"`` a white
        prior (ridge), ``"di"`` diagonal, ``"tc"`` tuned/correlated, ``"dc"`` diagonal/correlated and ``"ss"`` the
        second-order stable spline.  The priors decay along the physical lag (:meth:`ConvConfig.tap_lags`), so
        ``flip=True`` and ``flip=False`` give mirror-image kernels.  Hyperparameters are per input channel
        (per input-output pair) unless ``share_hyperparameters=True``: ``options["prior_scale"]``,
        ``options["decay"]``, ``options["correlation"]`` and ``options["ridge"]`` (noise variance over prior
        scale) are ``(out_channels, in_channels // groups)``, ``options["noise_variance"]`` ``(out_channels,)``;
        ``diagnostics["log_evidence"]`` and ``diagnostics["n_evaluations"]`` are per output channel.  With a bias
        and one equation per output channel (none left for the noise once the bias is fitted) nothing can be
        tuned: the kernel is the prior mean (zero), the bias fits the equation, the tuned values are NaN, there is
        no covariance, and the solution is not a success (its message says how many samples are needed).
    prior : array or callable, optional
        A user's prior covariance shape for each input channel's kernel: a ``(kernel_size, kernel_size)`` matrix
        over the lags in ascending order (``np.sort(config.tap_lags())``), or a callable given those lags
        returning it.  Its scale is tuned by marginal likelihood per input (as for ``regularization``).
    share_hyperparameters : bool
        One set of prior hyperparameters for all input channels of an output (default: one per input).
    loss : {"mse", "mae", "huber"}
        ``"mae"``: least absolute deviations, an exact linear program (scipy HiGHS) when the design has at
        most ``LP_LIMIT`` entries, otherwise iteratively reweighted least squares.  ``"huber"``: Huber loss by
        IRLS to convergence.
    huber_delta : float, optional
        Huber threshold in units of a robust noise scale (``1.4826 * MAD`` of the least-squares residual),
        the meaning it has for every method; None means 1.345 (95% efficiency under Gaussian noise).  Only
        with ``loss="huber"``; the thresholds in the outputs' units are in ``diagnostics["huber_threshold"]``.
    max_iter : int, optional
        The iteration cap of the iterative paths: conjugate gradients of long single-input kernels (default
        2000 steps) and IRLS sweeps of the robust losses (default 200).  Reaching it is not a success
        (``success=False``); ``n_iterations`` says how many were taken.
    progress : bool, optional
        A progress bar (tqdm, the ``progress`` extra) over the evidence evaluations of the ``regularization`` or
        ``prior`` tuning, the part that takes seconds (each evaluation factors a ``P x P`` matrix; ``P >= 1000``
        takes seconds).  None (default): shown when stderr is a terminal and a group has at least
        ``priors.PROGRESS_FROM`` (300) coefficients; True: always (an ImportError names the extra without tqdm);
        False: never.  A display choice, not recorded in ``options``.

    Notes
    -----
    Standard errors ``sqrt(diag(sigma^2 (A^T A)^-1))``, ``sigma^2 = RSS / (n - P)``, are returned for plain
    full-rank least squares; ``diagnostics["dof"]`` holds ``n - P`` for confidence intervals (see
    :func:`confidence_interval`).  Regularized fits (``ridge``, ``regularization``, ``prior``) return the posterior
    standard deviations of the Gaussian prior they imply (``ridge``: ``w ~ N(0, sigma^2 / ridge I)``), with
    ``diagnostics["dof"] = inf`` so that :func:`confidence_interval` gives the normal-quantile credible band.
    ``Solution.covariance`` holds the full covariance per block (the posterior one, or ``sigma^2 (A^T A)^-1``)
    where it is at most ``priors.COVARIANCE_LIMIT`` entries.  On the ``"toeplitz_cg"`` path the inverse comes from
    the Gram's displacement structure (a few more CG solves, then ``O(P)`` for the standard errors and ``O(P^2)``
    for the covariance; never the ``O(P^3)`` factorization), so the covariance is kept up to
    ``TOEPLITZ_COVARIANCE_LIMIT`` entries (one output with 4096 taps) and the standard errors always; a solve
    stopped at ``max_iter`` has neither.
    """
    ridge = check_real(ridge, "ridge", low=0.0)
    if regularization is not None:
        regularization = check_choice(regularization, "regularization", REGULARIZATIONS)
    priors.check_prior(prior)
    share = check_bool(share_hyperparameters, "share_hyperparameters")
    loss = check_choice(loss, "loss", LOSSES)
    if huber_delta is not None:
        huber_delta = check_real(huber_delta, "huber_delta", low=0.0, low_open=True)
    if max_iter is not None:
        max_iter = check_int(max_iter, "max_iter", 1)
    if prior is not None and regularization is not None:
        raise ValueError(f"give either `prior` or `regularization` (={regularization!r}), not both.")
    if prior is not None and (ridge > 0 or loss != "mse"):
        raise ValueError("`prior` cannot be combined with `ridge` or a robust `loss`.")
    if regularization is not None and ridge > 0:
        raise ValueError(f"give either `ridge` (={ridge!r}) or `regularization` (={regularization!r}), not both.")
    if loss != "mse" and (regularization is not None or ridge > 0):
        raise ValueError(f"`loss`={loss!r} cannot be combined with `ridge` or `regularization`.")
    if huber_delta is not None and loss != "huber":
        raise ValueError(f"`huber_delta` applies to loss='huber' only, got loss={loss!r}.")
    if progress is not None:
        progress = check_bool(progress, "progress")
    delta = HUBER_DELTA if huber_delta is None else huber_delta
    return solve_blocks(problem, Options(ridge, regularization, prior, share, loss, delta, max_iter, progress))


def cached_solve_path(block: Block, use_bias: bool, long_kernel: int) -> str:
    """:func:`~kernel_recovery.model.toeplitz.solve_path`, kept on the block (the pipeline asks it first, then the
    solver; keyed by ``long_kernel`` too, which tests lower)."""
    key = ("solve_path", use_bias, long_kernel)
    path = block.cache.get(key)
    if path is None:
        path = block.cache[key] = solve_path(block, use_bias, long_kernel)
    return path


class Options(NamedTuple):
    """The options of :func:`solve`, validated (``huber_delta`` given its default)."""

    ridge: float = 0.0
    regularization: Regularization | None = None
    prior: PriorArg | None = None
    share_hyperparameters: bool = False
    loss: Loss = "mse"
    huber_delta: float = HUBER_DELTA
    max_iter: int | None = None
    progress: bool | None = None  # the tuning's bar (not recorded)


def solve_blocks(problem: CanonicalProblem, opts: Options) -> Solution:
    """The solver behind :func:`solve`; blocks that do not retain their rows use the cached statistics only."""
    use_bias = problem.config.use_bias
    ridge, regularization, prior, loss, max_iter = opts.ridge, opts.regularization, opts.prior, opts.loss, opts.max_iter
    out = _Collector(problem)
    tuned = regularization is not None or prior is not None
    for block in problem.blocks:
        data = block.retains_rows
        if loss != "mse" and not data:
            raise ValueError(f"`loss`={loss!r} needs every row of the data; these statistics were streamed.")
        if loss != "mse":
            coef, info = _robust(block, use_bias, loss, opts.huber_delta, max_iter or IRLS_MAX_ITER)
            out.add(block, coef, info, None, None)
            continue
        if tuned:
            kind = regularization if regularization is not None else "custom"
            coef, info, cov = priors.regularized(
                problem, block, kind, prior=prior, share=opts.share_hyperparameters, progress=opts.progress
            )
            out.add(block, coef, info, None, None, cov)
            continue
        path = cached_solve_path(block, use_bias, LONG_KERNEL)
        if path == "toeplitz_cg":
            coef, info, rss, unit = _toeplitz_cg(block, use_bias, ridge, max_iter=max_iter or CG_MAX_ITER)
            inv_diag, inv = unit
            if ridge > 0:
                out.add(block, coef, info, rss, None, _toeplitz_ridge_covariance(block, use_bias, ridge, rss, unit))
            else:
                out.add(block, coef, info, rss, inv_diag, inv)
            continue
        if path == "explicit":
            coef, info, rss = _explicit(block, use_bias, ridge)
        else:
            coef, info, rss = _normal_equations(block, use_bias, ridge, data)
        if ridge > 0:
            small = len(block.out_channels) * n_columns(block, use_bias) ** 2 <= priors.COVARIANCE_LIMIT
            cov = priors.ridge_covariance(block, use_bias, ridge, coef) if small else None
            out.add(block, coef, info, rss, None, cov)
        else:
            unit = _ols_unit_covariance(block, use_bias)
            inv_diag = _inverse_diagonal(block, use_bias) if unit is None else np.diagonal(unit).copy()
            out.add(block, coef, info, rss, inv_diag, unit)
    if prior is not None:
        message = "solved with a user's prior covariance (prior=)"
    elif regularization is not None:
        message = f"solved with regularization={regularization!r}"
    elif loss != "mse":
        message = f"solved with loss={loss!r}"
    else:
        message = "solved" if ridge == 0 else f"solved with ridge={ridge:g}"
    options: dict[str, Any] = {"ridge": ridge, "regularization": regularization, "loss": loss, "max_iter": max_iter}
    if tuned:
        options["prior"] = prior
        options["share_hyperparameters"] = opts.share_hyperparameters
    if loss == "huber":
        options["huber_delta"] = opts.huber_delta
    return out.solution(message, options, bayesian=tuned or ridge > 0)


class _Collector:
    """Gathers per-block coefficients and diagnostics into one :class:`Solution`."""

    def __init__(self, problem: CanonicalProblem) -> None:
        self.problem = problem
        self.use_bias = problem.config.use_bias
        self.kernels: list[np.ndarray] = []
        self.biases: list[np.ndarray] = []  # filled only with a bias
        self.stderr: list[np.ndarray] = []
        self.bias_err: list[np.ndarray] = []
        self.unknown: list[int] = []  # blocks without standard errors (no degrees of freedom left, ...)
        self.infos: list[dict[str, Any]] = []
        self.sigma2: list[np.ndarray] = []
        self.dof: list[int] = []
        self.rss: list[np.ndarray | None] = []
        self.covariance: list[np.ndarray | None] = []

    def add(
        self,
        block: Block,
        coef: np.ndarray,
        info: dict[str, Any],
        rss: np.ndarray | None,
        inv_diag: np.ndarray | None,
        cov: np.ndarray | None = None,
    ) -> None:
        """``cov``: a posterior covariance ``(O_b, P, P)``; with ``inv_diag`` (plain least squares) the unit one
        ``(A^T A)^{-1}`` ``(P, P)``, scaled here by each output's noise variance."""
        k, b = unpack_columns(block, coef, self.use_bias)
        self.kernels.append(k)
        if b is not None:
            self.biases.append(b)
        self.infos.append(info)
        from_data = rss is not None and not info["solver"].startswith("normal_equations") or "refined" in info["solver"]
        self.rss.append(np.asarray(rss, dtype=float) if from_data else None)  # else finish() reads the statistics
        p = n_columns(block, self.use_bias)
        n = info.get("n_rows", block.n_equations)
        dof = n - p
        self.dof.append(dof)
        if inv_diag is None and cov is not None:  # a posterior: its own standard deviations
            se = np.sqrt(np.clip(np.einsum("opp->po", cov), 0.0, None))
            self._stderr(block, se)
            self.covariance.append(cov)
            self.sigma2.append(np.full(coef.shape[1], np.nan))
        elif rss is not None and inv_diag is not None and dof > 0:
            sigma2 = np.maximum(rss, 0.0) / dof
            self.sigma2.append(sigma2)
            self._stderr(block, np.sqrt(inv_diag.ravel()[:, None] * sigma2.ravel()[None, :]))  # (np.outer's product)
            self.covariance.append(None if cov is None else sigma2[:, None, None] * cov[None])
        else:
            self.sigma2.append(np.full(coef.shape[1], np.nan))
            self.covariance.append(None)
            self.unknown.append(len(self.stderr))  # NaN for this block if others have theirs
            self._stderr(block, np.full((p, coef.shape[1]), np.nan))

    def _stderr(self, block: Block, se: np.ndarray) -> None:
        ks, bs = unpack_columns(block, se, self.use_bias)
        self.stderr.append(ks)
        if bs is not None:
            self.bias_err.append(bs)

    def solution(self, message: str, options: dict[str, Any], bayesian: bool = False) -> Solution:
        blocks = self.problem.blocks
        # a block without standard errors gives NaN ones (unknown), unless no block has any: then there are none
        full = len(self.stderr) == len(blocks) and len(self.unknown) < len(blocks)
        diagnostics: dict[str, Any] = {"solver": [i["solver"] for i in self.infos]}
        present = set().union(*self.infos)  # every key some block's info has (one pass, not one per key)
        for key in ("gram_condition", "design_condition", "refinement_steps", "iterations"):
            if key in present:
                diagnostics[key] = [i.get(key) for i in self.infos]
        # a posterior band is a normal-quantile one: dof = inf makes confidence_interval's t quantile the normal
        diagnostics["dof"] = float("inf") if bayesian and full else int(min(self.dof))
        iterations = [i["iterations"] for i in self.infos if "iterations" in i] if "iterations" in present else []
        capped = [i["solver"] for i in self.infos if not i.get("converged", True)] if "converged" in present else []
        if capped:
            message = f"{message}, but {capped[0]} stopped at its iteration cap before converging"
        untuned = [i["untuned"] for i in self.infos if "untuned" in i]  # (see priors.regularized)
        if untuned:
            message = f"{message}, but {untuned[0]}"
        hyper: dict[str, np.ndarray] = {}
        for key in ("ridge", "prior_scale", "decay", "correlation", "noise_variance", "huber_delta"):
            if key in present:
                hyper[key] = self._per_output([i.get(key) for i in self.infos])
        for key in ("log_evidence", "n_evaluations"):
            if key in present:
                diagnostics[key] = self._per_output([i.get(key) for i in self.infos])
        options = dict(options)
        if "huber_delta" in hyper:  # the thresholds in the outputs' units (huber_delta x the robust scale)
            diagnostics["huber_threshold"] = hyper.pop("huber_delta")
        if options.get("regularization") is not None or options.get("prior") is not None:
            options.update(hyper)
        if options.get("loss") == "mae":
            options["mae_solver"] = [i["solver"] for i in self.infos]
        covariance = self.covariance if all(c is not None for c in self.covariance) else None
        return Solution(
            kernels=self.kernels,
            biases=self.biases if self.use_bias else None,
            message=message,
            kernel_stderr=self.stderr if full else None,
            bias_stderr=self.bias_err if full and self.use_bias else None,
            options=options,
            diagnostics=diagnostics,
            success=not capped and not untuned,
            n_iterations=max(iterations) if iterations else None,
            rss=self.rss,
            covariance=cast("list[np.ndarray]", covariance),
        )

    def _per_output(self, values: list[Any]) -> np.ndarray:
        """Per-block values ``(O_b,)`` or ``(O_b, inputs)`` (NaN where missing) as one ``(out_channels, ...)`` array."""
        blocks = self.problem.blocks
        arrays = [None if v is None else np.asarray(v, dtype=float) for v in values]
        tail = next((a.shape[1:] for a in arrays if a is not None and a.ndim > 1), ())
        out = np.full((self.problem.config.out_channels,) + tail, np.nan)
        for a, b in zip(arrays, blocks):
            if a is not None:
                out[b.out_channels] = np.broadcast_to(a, (len(b.out_channels),) + tail)
        return out


# ----------------------------------------------------------------------------------------------
# Plain least squares
# ----------------------------------------------------------------------------------------------


def _fitted_statistics(block: Block, use_bias: bool) -> tuple[Statistics, np.ndarray, np.ndarray]:
    """The block's statistics with their output parts ``cross = A^T Y`` and ``yty`` (present given outputs)."""
    stats = block_statistics(block, use_bias)
    if stats.cross is None or stats.yty is None:
        raise ValueError("method='lstsq' needs the outputs `y`: these statistics were built without them.")
    return stats, stats.cross, stats.yty


def _penalty(block: Block, use_bias: bool) -> np.ndarray:
    pen = np.ones(n_columns(block, use_bias))
    if use_bias:
        pen[-1] = 0.0
    return pen


def _explicit(block: Block, use_bias: bool, ridge: float):
    with SerialBLAS():  # a design of at most SVD_LIMIT entries: OpenBLAS threads only slow it down
        return _explicit_solve(block, use_bias, ridge)


def _explicit_solve(block: Block, use_bias: bool, ridge: float):
    a = explicit_design(block, use_bias)  # (the report's SVD read the same design)
    y = np.concatenate(block.outputs)
    if ridge > 0:
        p = a.shape[1]
        a_aug = np.concatenate([a, np.diag(np.sqrt(ridge * _penalty(block, use_bias)))])
        coef = np.linalg.lstsq(a_aug, np.concatenate([y, np.zeros((p, y.shape[1]))]), rcond=None)[0]
    else:  # minimum norm, from the report's SVD of the same design (its rank rule is lstsq's rcond=None)
        spec = block_spectrum(block, use_bias)
        k, uty = spec.rank, spec.left_products(y)
        if uty is None:  # (a spectrum not from this design's SVD)
            coef = np.linalg.lstsq(a, y, rcond=None)[0]
        else:
            coef = spec.vectors[:, :k] @ (uty[:k] / spec.singular_values[:k, None])
    r = y - a @ coef
    return coef, {"solver": "svd"}, np.einsum("ij,ij->j", r, r)


def _normal_equations(block: Block, use_bias: bool, ridge: float, data: bool):
    stats, cross, _ = _fitted_statistics(block, use_bias)
    info: dict[str, Any] = {"solver": "normal_equations", "n_rows": stats.n_rows}
    if ridge > 0:
        import scipy.linalg

        g = stats.gram + np.diag(ridge * _penalty(block, use_bias))
        coef = scipy.linalg.cho_solve(scipy.linalg.cho_factor(g), cross)
        return coef, info, rss_from_statistics(stats, coef)
    with SerialBLAS():
        spec = block_spectrum(block, use_bias)
    keep = spec.singular_values > spec.tolerance
    s_keep = spec.singular_values[keep]
    cond = float((s_keep[0] / s_keep[-1]) ** 2) if len(s_keep) else np.inf
    info["gram_condition"] = cond if keep.all() else np.inf
    factor = spec.cholesky if keep.all() else None
    if factor is not None:
        from scipy.linalg.lapack import dpotrs

        def apply_inverse(rhs: np.ndarray) -> np.ndarray:
            return dpotrs(factor, rhs, lower=False)[0]

    else:
        v = spec.vectors[:, keep]

        def apply_inverse(rhs: np.ndarray) -> np.ndarray:
            return v @ ((v.T @ rhs) / s_keep[:, None] ** 2)

    coef = apply_inverse(cross)
    if not data or (cond <= REFINE_ABOVE and (keep.all() or spec.exact)):
        if cond > REFINE_ABOVE or not keep.all():
            info["solver"] = "normal_equations (not refined: streamed statistics only)"
        return coef, info, rss_from_statistics(stats, coef)
    if cond > ORTHOGONAL_ABOVE or not keep.all():
        # also when the Gram's eigenvalues cannot resolve the rank: the QR of the design can
        coef, rss, cond_r = _orthogonal(block, use_bias)
        info["solver"] = "orthogonal"
        info["design_condition"] = cond_r
        return coef, info, rss
    steps = 0
    for steps in range(1, 4):  # noqa: B007 (corrected semi-normal equations: residuals from the data)
        resid = block_residuals(block, use_bias, coef)
        step = apply_inverse(adjoint(block, use_bias, resid))
        coef = coef + step
        if np.max(np.abs(step)) <= 1e-15 * max(np.max(np.abs(coef)), 1e-300):
            break
    resid = block_residuals(block, use_bias, coef)
    info["solver"] = "normal_equations+refined"
    info["refinement_steps"] = steps
    return coef, info, sum(np.einsum("ij,ij->j", r, r) for r in resid)


def _ols_unit_covariance(block: Block, use_bias: bool) -> np.ndarray | None:
    """``(A^T A)^{-1}`` from the cached spectrum (None when rank-deficient or too large to keep)."""
    spec = block_spectrum(block, use_bias)
    p = len(spec.singular_values)
    if spec.rank < p or len(block.out_channels) * p * p > priors.COVARIANCE_LIMIT:
        return None
    return spec.inverse()


def _inverse_diagonal(block: Block, use_bias: bool) -> np.ndarray | None:
    """``diag((A^T A)^-1)``, or None when the design is rank-deficient."""
    spec = block_spectrum(block, use_bias)
    if spec.rank < len(spec.singular_values):
        return None
    return spec.inverse_diagonal()


def _orthogonal(block: Block, use_bias: bool):
    """Minimum-norm least squares from a chunked Householder QR of ``[A | Y]`` (TSQR), then an SVD of ``R``."""
    p = n_columns(block, use_bias)
    ys = block.outputs
    r_aug: np.ndarray | None = None
    for i, x in enumerate(block.xs):
        m = len(x) - block.taps + 1
        for start in range(0, m, CHUNK_ROWS):
            rows = np.concatenate(
                [design_rows(block, x, use_bias, start, start + CHUNK_ROWS), ys[i][start : start + CHUNK_ROWS]],
                axis=1,
            )
            stack = rows if r_aug is None else np.concatenate([r_aug, rows])
            # numpy's stubs type every mode as QRResult; mode="r" returns the R factor alone
            r_aug = cast(np.ndarray, np.linalg.qr(stack, mode="r"))
    assert r_aug is not None  # a feasible problem has at least one equation
    r, qty = r_aug[:p, :p], r_aug[:p, p:]
    u, s, vt = np.linalg.svd(r)
    keep = s > rank_tolerance(s[0], block.n_equations, p)
    coef = vt[keep].T @ ((u[:, keep].T @ qty) / s[keep, None])
    resid = block_residuals(block, use_bias, coef)
    cond = float(s[0] / s[-1]) if keep.all() else np.inf
    return coef, sum(np.einsum("ij,ij->j", q, q) for q in resid), cond


# ----------------------------------------------------------------------------------------------
# Long kernels: conjugate gradients on Toeplitz-plus-edges, by FFT
# ----------------------------------------------------------------------------------------------


def _toeplitz_cg(block: Block, use_bias: bool, ridge: float, tol: float = 1e-13, max_iter: int = 2000):
    """Kernel (and bias) by PCG on the Toeplitz Gram; ``(coef, info, rss, (inverse diagonal, inverse))``.

    The RSS comes from the sums, or from a pass over the data where rounding would dominate those; the inverse of
    the Gram over the design's columns (see :func:`_toeplitz_inverse`) from the displacement structure.
    """
    op = ToeplitzGram(block, use_bias, ridge)
    rhs = op.cross - (np.outer(op.sums, op.ysum) / op.n_rows if use_bias else 0.0)
    coefs, iters = [], []
    converged = True
    yty = sum((np.einsum("ij,ij->j", y, y) for y in block.outputs), np.zeros(rhs.shape[1]))
    if use_bias:
        yty = yty - op.ysum**2 / op.n_rows
    rss = np.zeros(rhs.shape[1])
    for o in range(rhs.shape[1]):
        w, it = pcg(op, rhs[:, o], tol, max_iter)
        converged = converged and it < max_iter
        # ||y - A w||^2 from the sums (the Gram applied once more), unless rounding would dominate it
        gw = op.matvec(w) - ridge * w
        terms = yty[o] + 2 * abs(w @ rhs[:, o]) + abs(w @ gw)
        rss[o] = yty[o] - 2 * (w @ rhs[:, o]) + w @ gw
        if 8 * np.finfo(float).eps * np.log2(max(op.n_rows, 2)) * terms > 1e-6 * abs(rss[o]):
            rss[o] = np.nan
        if use_bias:
            w = np.concatenate([w, [(op.ysum[o] - op.sums @ w) / op.n_rows]])
        coefs.append(w)
        iters.append(it)
    info = {"solver": "toeplitz_cg", "iterations": max(iters), "n_rows": op.n_rows, "converged": converged}
    coef = np.stack(coefs, axis=1)
    if np.isnan(rss).any():  # rounding dominates the sums (a near-exact fit): the residual from the data
        rss = sum((np.einsum("ij,ij->j", r, r) for r in block_residuals(block, use_bias, coef)), np.zeros(len(rss)))
    if not converged:  # not the least-squares estimate: its residual would give wrong standard errors
        return coef, info, rss, (None, None)
    return coef, info, rss, _toeplitz_inverse(block, use_bias, op, tol, max_iter)


def _toeplitz_inverse(
    block: Block, use_bias: bool, op: ToeplitzGram, tol: float, max_iter: int
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``diag(M^{-1})`` and ``M^{-1}`` (None above ``TOEPLITZ_COVARIANCE_LIMIT``) for ``M = A^T A + ridge D``.

    From the displacement generators of the bias-eliminated Gram ``G = M_kk - s s^T / n``
    (:func:`~kernel_recovery.model.toeplitz.inverse_generators`: ``2 r + 1`` CG solves, then ``O(r K)`` for the
    diagonal and ``O(r K^2)`` for the matrix); the bias by the Schur complement (``-G^{-1} s / n`` against the
    kernel, ``1 / n + s^T G^{-1} s / n^2`` itself).  Where a solve does not converge or the recursion disagrees
    with a direct solve, the inverse of the exact Gram from the statistics (``O(K^3)``) instead, when at most
    ``TOEPLITZ_DENSE_LIMIT`` columns; (None, None) when that is not affordable or the Gram is singular.
    """

    def solve(b: np.ndarray) -> np.ndarray | None:
        x, it = pcg(op, b, tol, max_iter)
        return x if it < max_iter else None

    p = n_columns(block, use_bias)
    keep = len(block.out_channels) * p * p <= TOEPLITZ_COVARIANCE_LIMIT
    gen = inverse_generators(op, solve)
    diag = None if gen is None else inverse_diagonal(gen)
    if gen is None or diag is None or not inverse_accurate(gen, diag):
        return _dense_inverse(block, use_bias, op.ridge, keep)
    inv = inverse_matrix(gen) if keep else None
    if not use_bias:
        return diag, inv
    assert gen.c_sums is not None  # solved with a bias
    n = op.n_rows
    bias_var = 1.0 / n + (op.sums @ gen.c_sums) / n**2
    diag = np.concatenate([diag, [bias_var]])
    if inv is not None:
        cross = -gen.c_sums / n
        inv = np.block([[inv, cross[:, None]], [cross[None, :], np.array([[bias_var]])]])
    return diag, inv


def _dense_inverse(
    block: Block, use_bias: bool, ridge: float, keep: bool
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The fallback of :func:`_toeplitz_inverse`: invert the exact Gram from the statistics."""
    p = n_columns(block, use_bias)
    if p > TOEPLITZ_DENSE_LIMIT:
        return None, None
    gram = block_statistics(block, use_bias).gram + np.diag(ridge * _penalty(block, use_bias))
    try:
        inv = np.linalg.inv(gram)
    except np.linalg.LinAlgError:
        return None, None
    diag = np.diag(inv).copy()
    if not np.isfinite(inv).all() or (diag <= 0).any():
        return None, None
    return diag, inv if keep else None


def _toeplitz_ridge_covariance(
    block: Block,
    use_bias: bool,
    ridge: float,
    rss: np.ndarray | None,
    unit: tuple[np.ndarray | None, np.ndarray | None],
) -> np.ndarray | None:
    """The ridge posterior ``sigma^2 (A^T A + ridge D)^{-1}``, ``sigma^2 = RSS / (n - df)`` with
    ``df = P - ridge * trace of the kernel part of the inverse`` (as :func:`priors.ridge_covariance`)."""
    inv_diag, inv = unit
    if rss is None or inv_diag is None or inv is None:
        return None
    n_kernel = n_columns(block, use_bias) - int(use_bias)
    df = len(inv_diag) - ridge * float(np.sum(inv_diag[:n_kernel]))
    sigma2 = np.clip(rss, 0.0, None) / max(block.n_equations - df, 1e-12)
    return sigma2[:, None, None] * inv[None]


# ----------------------------------------------------------------------------------------------
# Robust losses
# ----------------------------------------------------------------------------------------------


def _robust(block: Block, use_bias: bool, loss: str, delta: float, max_iter: int):
    p = n_columns(block, use_bias)
    n = block.n_equations
    y = np.concatenate(block.outputs)
    if loss == "mae" and n * p <= LP_LIMIT:
        return _lad_linprog(design_matrix(block, use_bias), y), {"solver": "lp"}
    coef = np.linalg.lstsq(design_matrix(block, use_bias), y, rcond=None)[0] if n * p <= EXPLICIT_LIMIT else None
    if coef is None:
        coef, _, _ = _normal_equations(block, use_bias, 0.0, True)
    resid = np.concatenate(block_residuals(block, use_bias, coef))
    deltas = np.zeros(y.shape[1])
    iters, converged = 0, True
    for o in range(y.shape[1]):
        if loss == "huber":
            scale = 1.4826 * np.median(np.abs(resid[:, o] - np.median(resid[:, o])))
            deltas[o] = delta * max(scale, 1e-12 * np.max(np.abs(y[:, o])), 1e-300)
        coef[:, o], it, done = irls(block, use_bias, y[:, o], coef[:, o], loss, deltas[o], max_iter)
        iters = max(iters, it)
        converged = converged and bool(done)
    info = {"solver": "irls", "iterations": iters, "converged": converged}
    if loss == "huber":
        info["huber_delta"] = deltas
    return coef, info


def _lad_linprog(a: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least absolute deviations through the dual LP ``max y^T d`` s.t. ``A^T d = 0``, ``-1 <= d <= 1`` (HiGHS).

    The dual has ``P`` equality constraints instead of the primal's ``n``; the coefficients are the
    (sign-flipped) multipliers of those constraints.
    """
    from scipy.optimize import linprog

    p = a.shape[1]
    out = np.zeros((p, y.shape[1]))
    for o in range(y.shape[1]):
        res = linprog(-y[:, o], A_eq=a.T, b_eq=np.zeros(p), bounds=(-1, 1), method="highs")
        if res.status != 0:
            raise RuntimeError(f"the least-absolute-deviations linear program failed: {res.message}")
        out[:, o] = -res.eqlin.marginals
    return out


def irls(block: Block, use_bias: bool, y: np.ndarray, w: np.ndarray, loss: str, delta: float, max_iter: int = 200):
    """Iteratively reweighted least squares for one output channel, from the coefficients ``w``.

    Minimizes the sum of ``|r|`` (``loss="mae"``) or the Huber loss of threshold ``delta`` (outputs' units) over
    the block's design, the weighted Gram built in chunks of rows; at most ``max_iter`` sweeps.  Returns
    ``(coefficients, sweeps, converged)``.
    """
    eps = 1e-10 * max(np.max(np.abs(y)), 1e-300)
    it, done = 0, False
    for it in range(1, max_iter + 1):  # noqa: B007
        p = len(w)
        g = np.zeros((p, p))
        c = np.zeros(p)
        start_row = 0
        for x in block.xs:
            m = len(x) - block.taps + 1
            for start in range(0, m, CHUNK_ROWS):
                a = design_rows(block, x, use_bias, start, start + CHUNK_ROWS)
                yc = y[start_row + start : start_row + start + len(a)]
                r = np.abs(yc - a @ w)
                wt = 1.0 / np.maximum(r, eps) if loss == "mae" else np.minimum(1.0, delta / np.maximum(r, 1e-300))
                g += a.T @ (wt[:, None] * a)
                c += a.T @ (wt * yc)
            start_row += m
        w_new = np.linalg.lstsq(g, c, rcond=None)[0]
        done = np.max(np.abs(w_new - w)) <= 1e-12 * max(np.max(np.abs(w_new)), 1e-300)
        w = w_new
        if done:
            break
    return w, it, done
