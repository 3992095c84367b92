"""One pipeline from a canonical problem to a :class:`KernelResult`, behind every entry point.

``recover_kernel`` (in memory), :meth:`NormalEquations.solve` and the out-of-core path all call :func:`run`:

1. the solver is resolved from the registry and its options checked (:mod:`.solvers`);
2. the report reads the spectrum the operator caches on each block (the same factorization the solver uses);
3. the solver returns a :class:`Solution` in the canonical space;
4. :func:`finish` maps it back, takes the residual from the solver or the statistics (a forward pass only
   where those are not accurate), runs the post-fit checks on the reduced problem where its rows are
   retained (and records why when they are not), and builds the result: the same fields and diagnostics
   keys for every path.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from .. import solvers
from ..diagnostics import checks as postfit
from ..diagnostics.analysis import report_for
from ..diagnostics.determinacy import DeterminacyReport
from ..model import toeplitz
from ..model.operator import block_residuals, forward
from ..model.problem import CanonicalProblem, check_feasible
from ..model.result import KernelResult, Solution
from ..model.statistics import block_statistics, rss_from_statistics
from ..model.threads import TINY_DESIGN, SerialBLAS, tiny_problem
from ..model.validation import check_choice
from ..model.whitening import filtered_block, whitening_filters
from .lstsq import cached_solve_path

#: The residual sum of squares is read off the statistics (``y'y - 2 w'A'y + w'A'Aw``) when a bound on its rounding
#: error is below this share of it (``residual_rms`` then has ~7 correct digits); otherwise a pass over the data
#: recomputes it (noiseless fits, whose residual is rounding).
RSS_RELATIVE_ERROR = 1e-6
#: Methods that solve from the statistics ``A'A``, ``A'Y`` (the report then reads the same Gram).
STATISTICS_METHODS = ("lstsq", "adam")


#: Order of the autoregressive filter of ``prewhiten`` (as MATLAB's impulseest prewhitens with a 10th-order AR filter).
PREWHITEN_ORDER = 10
PREWHITEN = ("input", "noise")


def prewhiten(problem: CanonicalProblem, how: str, *, order: int = PREWHITEN_ORDER) -> tuple[CanonicalProblem, dict]:
    """The problem with ``x`` and ``y`` filtered by one AR prediction-error filter per group (the kernel is unchanged).

    ``how="input"``: the filter whitens the input (impulseest's prewhitening: a better-conditioned design for a
    coloured input).  ``how="noise"``: it whitens the residual of a first least-squares fit, a two-step feasible
    generalized least squares: with coloured noise the estimate is then efficient and its standard errors hold
    (they assume white noise).  Returns the filtered problem and what was done (``method``, ``order``,
    ``filters`` per group, ``equations_dropped``).  The equations reading the filter's start-up are dropped; with
    a bias the filter is scaled to unit gain at frequency 0, so the bias is the caller's.
    """
    import dataclasses

    how = check_choice(how, "prewhiten", PREWHITEN)
    if not all(block.retains_rows for block in problem.blocks):
        raise ValueError("`prewhiten` needs the data in memory (streamed statistics keep no rows to filter).")
    use_bias = problem.config.use_bias
    blocks, filters = [], []
    for block in problem.blocks:
        if how == "input":
            seqs = [x[:, [c]] - x[:, c].mean() for x in block.xs for c in range(block.channels)]
        else:
            with SerialBLAS():
                first = solvers.resolve("lstsq")[1](dataclasses.replace(problem, blocks=[block]))
            w = first.kernels[0]
            b = first.biases[0] if use_bias and first.biases is not None else None
            seqs = [(y - f)[:, [o]] for y, f in zip(block.outputs, forward(block, w, b)) for o in range(y.shape[1])]
        filt = whitening_filters(seqs, order)[:, 0]
        if use_bias:  # unit gain at frequency 0, so that the bias column stays a column of ones (and the bias)
            gain = float(filt.sum())
            if abs(gain) < 1e-6 * float(np.abs(filt).sum()):
                raise ValueError(
                    f"`prewhiten`={how!r} with use_bias=True: the whitening filter removes the mean (zero gain at "
                    "frequency 0), so the bias would not be seen; fit without the bias or without prewhitening."
                )
            filt = filt / gain
        filters.append(filt)
        blocks.append(filtered_block(block, filt))
        if not blocks[-1].n_equations:
            longest = max(len(y) for y in block.outputs)
            raise ValueError(
                f"`prewhiten`={how!r} drops the first {order} equations of every sequence (they read the AR({order}) "
                f"filter's start-up), and the longest sequence has {longest} equations: none would be left. Record "
                f"at least {order + 1} output samples per sequence, or fit without prewhitening."
            )
    dropped = int(problem.n_equations - sum(b.n_equations for b in blocks) // max(len(blocks), 1))
    info = {"method": how, "order": order, "filters": filters, "equations_dropped": dropped}
    return dataclasses.replace(problem, blocks=blocks), info


def run(
    problem: CanonicalProblem,
    method: str | Callable[..., Solution],
    options: dict[str, Any],
    *,
    warn: bool = True,
    stacklevel: int = 2,
    report: DeterminacyReport | None = None,
    checks: str = "budget",
) -> KernelResult:
    """Report, solve and finish ``problem`` with ``method`` (a registered name or a callable solver); ``checks`` is
    the level of the post-fit checks (:data:`kernel_recovery.diagnostics.checks.LEVELS`).

    The whole call runs with serial BLAS (one scope, so the many small factorizations inside do not each pay
    for switching threadpools; the long passes over the data use their own Python threads or FFT workers).
    """
    with tiny_problem(_is_tiny(problem)), SerialBLAS():
        return _run(problem, method, options, warn=warn, stacklevel=stacklevel + 1, report=report, checks=checks)


def _is_tiny(problem: CanonicalProblem) -> bool:
    """Whether every BLAS call of this fit is far too small for BLAS threads (:data:`TINY_DESIGN`)."""
    columns = problem.config.unknowns_per_output
    return (
        all(block.retains_rows for block in problem.blocks)
        and problem.n_equations * columns * len(problem.blocks) <= TINY_DESIGN
    )


def _run(problem, method, options, *, warn, stacklevel, report, checks):
    name, solver = solvers.resolve(method)
    solvers.check_options(name, solver, options)
    check_feasible(problem)  # Grams that cannot fit in memory, values whose squares overflow: refused first
    if name in STATISTICS_METHODS:  # one pass computes A'A and A'Y together, for the report and the solver
        for block in problem.blocks:
            path = cached_solve_path(block, problem.config.use_bias, toeplitz.LONG_KERNEL)
            if block.ys is not None and path == "normal_equations":
                block_statistics(block, problem.config.use_bias)
    if report is None:
        report = report_for(problem)
    if warn:
        report.warn(stacklevel=stacklevel + 1, method=name if name in solvers.METHODS else "custom")
    sol = solver(problem, **options)
    return finish(problem, name, sol, report, stacklevel=stacklevel + 1, checks=checks)


def finish(
    problem: CanonicalProblem,
    method: str,
    sol: Solution,
    report: DeterminacyReport,
    *,
    stacklevel: int = 2,
    checks: str = "budget",
) -> KernelResult:
    """Build the :class:`KernelResult` of a solver's :class:`Solution` (the one place results are made)."""
    cfg = problem.config
    kernel = problem.from_canonical(sol.kernels).astype(np.float64, copy=False)
    bias = problem.from_canonical_bias(sol.biases) if cfg.use_bias and sol.biases is not None else None
    rss_per_output, equations, yty, source = _residual_sums(problem, sol)
    rss, count = float(np.add.reduce(rss_per_output, axis=None)), int(np.add.reduce(equations, axis=None))
    residual_rms = float(np.sqrt(rss / count)) if count else 0.0
    success, message = bool(sol.success), sol.message
    if not np.isfinite(kernel).all() or (bias is not None and not np.isfinite(bias).all()):
        success, message = False, f"the solver returned non-finite values ({sol.message})"
    diagnostics = {"solver": [method] * len(problem.blocks), **sol.diagnostics}  # a user's solver: its name
    dof = equations - cfg.unknowns_per_output
    if dof.min() > 0:  # (the usual fit: the lines below give these values, without their scope and where)
        diagnostics["noise_std"] = np.sqrt(rss_per_output / dof)
    else:
        with np.errstate(invalid="ignore", divide="ignore"):  # no degrees of freedom left: nan
            diagnostics["noise_std"] = np.where(dof > 0, np.sqrt(rss_per_output / np.maximum(dof, 1)), np.nan)
    retained = all(block.retains_rows for block in problem.blocks)
    stderr = None if sol.kernel_stderr is None else problem.from_canonical(sol.kernel_stderr)
    relative = residual_rms / np.sqrt(yty / count) if yty > 0 and count else 0.0
    level = check_choice(checks, "checks", postfit.LEVELS)
    fit = postfit.Fit(kernel, stderr, relative, report, retained, level=level)
    records = postfit.run_checks(problem, sol, fit)
    for record in records:  # what the checks found, told as each says (the order of CHECKS)
        if record.diagnostics:
            diagnostics.update(record.diagnostics)
        if record.flagged and record.message is not None:
            if record.in_message:
                message = f"{message}; {record.message}"
            elif record.warning is not None:
                warnings.warn(record.message, record.warning, stacklevel=stacklevel + 1)
    diagnostics["checks"] = {"level": level, "residual": source, **{record.name: record.line for record in records}}
    diagnostics["streamed"] = not retained or problem.inputs is None
    diagnostics["input"] = "arrays" if problem.inputs is not None else "statistics"  # out-of-core: its reader
    return KernelResult(
        kernel=kernel,
        bias=bias,
        method=method,
        report=report,
        residual_rms=residual_rms,
        success=success,
        message=message,
        config=cfg,
        stderr=stderr,
        bias_stderr=None if sol.bias_stderr is None else problem.from_canonical_bias(sol.bias_stderr),
        n_iterations=sol.n_iterations,
        loss_history=sol.loss_history,
        options=dict(sol.options),
        diagnostics=diagnostics,
        covariance=None if sol.covariance is None else _user_covariance(problem, sol.covariance),
    )


def _user_covariance(problem: CanonicalProblem, covariance: list[np.ndarray]) -> list[np.ndarray]:
    """Per-block covariances over the design's columns as one per output channel over ``(kernel[:, :, o], bias)``."""
    cfg = problem.config
    n_kernel = cfg.kernel_size * cfg.in_per_group
    if not cfg.flip and problem.tap_layout()[0] == 1 and all(b.n_free == b.mask.size for b in problem.blocks):
        # the canonical columns are the user's (no polyphase split, no reversal): each covariance as it is
        out_direct: list[np.ndarray] = [np.empty(0)] * cfg.out_channels
        for block, cov in zip(problem.blocks, covariance):
            for o, c in zip(block.out_channels, cov):
                out_direct[o] = np.array(c, dtype=float)
        return out_direct
    index = np.broadcast_to(np.arange(n_kernel, dtype=float).reshape(cfg.kernel_shape[:2] + (1,)), cfg.kernel_shape)
    out: list[np.ndarray] = [np.empty(0)] * cfg.out_channels
    for block, canon, cov in zip(problem.blocks, problem.to_canonical(index.copy()), covariance):
        cols = np.rint(canon[:, :, 0][block.mask]).astype(int)
        if cfg.use_bias:
            cols = np.concatenate([cols, [n_kernel]])
        for o, c in zip(block.out_channels, cov):
            full = np.zeros((n_kernel + int(cfg.use_bias),) * 2)
            full[np.ix_(cols, cols)] = c
            out[o] = full
    return out


def _residual_sums(problem: CanonicalProblem, sol: Solution) -> tuple[np.ndarray, np.ndarray, float, str]:
    """Per output channel the RSS and the equations, then ``y'y`` and the source: from the solver or the
    statistics, a pass over the data where those would not be accurate."""
    use_bias = problem.config.use_bias
    n_out = problem.config.out_channels
    rss_out = np.zeros(n_out)
    equations = np.zeros(n_out, dtype=np.int64)
    yty_total = 0.0
    sources = set()
    for i, block in enumerate(problem.blocks):
        key = ("statistics", use_bias)
        stats = block.cache.get(key)
        if stats is None and not block.retains_rows:
            stats = block_statistics(block, use_bias)
        yty = stats.yty if stats is not None and stats.yty is not None else None
        if yty is None:
            if block.ys is None:
                raise ValueError("the residual needs the outputs `y`: this problem was built without them.")
            ys = block.ys
            yty = np.einsum("ij,ij->j", ys[0], ys[0]) if len(ys) == 1 else sum(np.einsum("ij,ij->j", y, y) for y in ys)
        rss = None
        if sol.rss is not None and sol.rss[i] is not None:  # computed from the data by the solver
            rss, src = np.asarray(sol.rss[i], dtype=float), "solver"
        elif stats is not None and stats.cross is not None:
            coef = _columns(block, sol, i, use_bias)
            rss, src = rss_from_statistics(stats, coef), "statistics"
            if block.retains_rows and np.any(_rounding_bound(stats, coef) > RSS_RELATIVE_ERROR * np.abs(rss)):
                rss = None  # too small to read off sums of squares: recompute from the data
        if rss is None:
            coef = _columns(block, sol, i, use_bias)
            rss = sum(np.einsum("ij,ij->j", r, r) for r in block_residuals(block, use_bias, coef))
            src = "data"
        sources.add(src)
        # (nan_policy="omit" may split a channel's rows); a slice where the block has every channel (the usual fit)
        oc = slice(None) if len(block.out_channels) == n_out else block.out_channels
        rss_out[oc] += np.maximum(rss, 0.0)
        equations[oc] += block.n_equations
        yty_total += float(np.add.reduce(yty, axis=None))  # (ndarray.sum's reduction, without its wrapper)
    return rss_out, equations, yty_total, "+".join(sorted(sources))


def _rounding_bound(stats, coef: np.ndarray) -> np.ndarray:
    """A bound on the rounding error of ``y'y - 2 w'A'y + w'A'Aw`` (terms of size ``T``, sums over ``n`` rows)."""
    terms = (
        stats.yty
        + 2 * np.abs(np.einsum("ij,ij->j", coef, stats.cross))
        + np.abs(np.einsum("ij,ij->j", coef, stats.gram @ coef))
    )
    return 8 * np.finfo(np.float64).eps * max(np.log2(max(stats.n_rows, 2)), 1.0) * terms


def _columns(block, sol: Solution, i: int, use_bias: bool) -> np.ndarray:
    """One block's coefficients over the design's columns ``(P, O)`` (free taps, then the bias)."""
    k = sol.kernels[i]
    coef = k.reshape(-1, k.shape[-1])[block.mask.ravel()]
    if use_bias:
        b = sol.biases[i] if sol.biases is not None else np.zeros(k.shape[-1])
        coef = np.concatenate([coef, np.asarray(b, dtype=coef.dtype)[None]])
    return coef
