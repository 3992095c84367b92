"""The grid path of the front door: N-D kernels (Conv2D/Conv3D, image blurs) and complex signals of any dimension.

:func:`~kernel_recovery.recover_kernel` and :func:`~kernel_recovery.analyze` come here when ``kernel_size`` has two
or three entries or when ``x`` or ``y`` is complex (:func:`is_grid`); the result is the same
:class:`~kernel_recovery.model.result.KernelResult` and
:class:`~kernel_recovery.diagnostics.determinacy.DeterminacyReport`, with a
:class:`~kernel_recovery.model.grid.GridConfig` and a kernel ``(*kernel_size, in_channels // groups, out_channels)``.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable
from typing import Any, cast

import numpy as np
from numpy.typing import ArrayLike

from . import solvers
from .diagnostics.determinacy import DeterminacyReport
from .diagnostics.grid import grid_report
from .diagnostics.grid_checks import kernel_size_check, run_grid_checks
from .model.grid import (
    GridConfig,
    GridProblem,
    GridSpec,
    build_grid_problem,
    columns_to_kernel,
    design_rows,
    group_targets,
    row_chunks,
)
from .model.result import KernelResult
from .model.validation import check_choice
from .solvers.grid import GRID_METHODS, GridSolution
from .streaming import outofcore

#: Keywords of the sequence path that grid problems do not take, with what they mean there.
SEQUENCE_ONLY = {
    "lags": None,
    "nan_policy": "raise",
    "prewhiten": None,
    "chunk_size": None,
    "split_every": None,
    "checkpoint": None,
    "progress": None,
}


#: The levels of ``recover_kernel(checks=...)``: the grid path's checks are cheap, so every level but "none" runs them.
CHECK_LEVELS = ("budget", "all", "cheap", "none")


def is_grid(x: object, y: object, kernel_size: object) -> bool:
    """Whether a call goes the grid path: a kernel with 2 or 3 spatial axes, or complex ``x``/``y``."""
    if isinstance(kernel_size, (tuple, list)) and len(kernel_size) >= 2:
        return True
    return _is_complex(x) or _is_complex(y)


def _is_complex(a: object) -> bool:
    dtype = getattr(a, "dtype", None)
    if dtype is not None:
        return getattr(dtype, "kind", "") == "c"
    if isinstance(a, (list, tuple)) and len(a):
        return any(_is_complex(v) if hasattr(v, "dtype") else isinstance(v, complex) for v in a[:64])
    return isinstance(a, complex)


def refuse_sequence_options(x: object, y: object, **given: object) -> None:
    """Out-of-core ``x``/``y`` (a ``TypeError``) and keywords of the sequence path (a ``ValueError`` naming them)
    given to a grid problem."""
    if outofcore.is_out_of_core(x, y):
        raise TypeError(
            "complex and N-D inputs are solved in memory: `x`/`y` are out-of-core arrays (Dask, memory-mapped, "
            "zarr); pass NumPy arrays (the streamed path takes real 1-D sequences)."
        )
    for name, value in given.items():
        default = SEQUENCE_ONLY[name]
        if name == "progress" and value is False:  # no bar asked for: nothing to refuse
            continue
        if not (value is default or (isinstance(value, str) and value == default)):
            raise ValueError(
                f"`{name}` (={value!r}) applies to 1-D real sequences; N-D kernels and complex signals take "
                "in-memory arrays without it."
            )


def resolve(method: str | Callable[..., Any]) -> tuple[str, Callable[..., GridSolution]]:
    """``(name, solver)`` of a grid method name or a user callable."""
    if callable(method):
        return getattr(method, "__name__", type(method).__name__), method
    if not isinstance(method, str) or method.lower() not in solvers.METHODS:
        names = ", ".join(repr(m) for m in solvers.METHODS)
        raise ValueError(f"`method` must be one of {names} or a callable solver, got {method!r}.")
    name = method.lower()
    if name not in GRID_METHODS:
        raise ValueError(f"method={name!r} does not take N-D kernels or complex signals yet; use method='lstsq'.")
    module, func = GRID_METHODS[name].split(":")
    return name, getattr(importlib.import_module(module), func)


def recover(
    x: ArrayLike,
    y: ArrayLike,
    spec: GridSpec,
    *,
    method: str | Callable[..., Any],
    options: dict[str, Any],
    door: Callable[..., Any],
    checks: str = "budget",
    stacklevel: int = 3,
) -> KernelResult:
    """Fit a grid problem: the report, the solver, and the result (the grid counterpart of ``pipeline.run``)."""
    checks = check_choice(checks, "checks", CHECK_LEVELS)
    name, solver = resolve(method)
    for prior in ("regularization", "prior", "share_hyperparameters"):
        if prior in options:
            raise ValueError(
                f"`{prior}` (the decaying impulse-response priors) applies to real 1-D sequences; for N-D kernels and "
                "complex signals use ridge=... (or, for real N-D kernels, smoothness=... and constraints=...)."
            )
    solvers.check_options(name, cast(Any, solver), options, door=door)
    problem = build_grid_problem(x, y, spec)
    if problem.is_complex and name == "adam":
        raise ValueError("method='adam' does not take complex signals; use method='lstsq' or 'fft'.")
    report = grid_report(problem)
    report.warn(stacklevel=stacklevel + 1, method=name if name in solvers.METHODS else "custom")
    sol = solver(problem, **options)
    return finish(problem, name, sol, report, checks=checks, stacklevel=stacklevel + 1)


def report(
    x: ArrayLike, y: ArrayLike | None, spec: GridSpec, *, out_channels: int | None, noise_level: Any
) -> DeterminacyReport:
    """The determinacy report of a grid problem."""
    problem = build_grid_problem(x, y, spec, out_channels=out_channels)
    return grid_report(problem, noise_level=noise_level)


def finish(
    problem: GridProblem,
    method: str,
    sol: GridSolution,
    report: DeterminacyReport,
    *,
    checks: str = "budget",
    stacklevel: int = 2,
) -> KernelResult:
    """The :class:`KernelResult` of a grid solution: kernel, bias, residual, noise, standard errors, covariance."""
    cfg = problem.config
    kernel, bias = columns_to_kernel(cfg, sol.coefs)
    rss = _residual_sums(problem, sol.coefs)
    n = problem.n_equations
    dof_used = sol.dof_used or [float(problem.n_columns)] * cfg.groups
    dof = np.array([n - dof_used[o // cfg.out_per_group] for o in range(cfg.out_channels)])
    with np.errstate(invalid="ignore", divide="ignore"):
        noise_var = np.where(dof > 0, rss / np.maximum(dof, 1e-300), np.nan)
    yty = sum(float(np.sum(np.abs(v) ** 2)) for v in problem.ys or ())
    residual_rms = float(np.sqrt(rss.sum() / (n * cfg.out_channels))) if n else 0.0
    stderr = bias_stderr = covariance = None
    if sol.unit_covariance is not None and np.all(np.isfinite(noise_var)):
        stderr, bias_stderr, covariance = _uncertainty(cfg, sol.unit_covariance, noise_var)
    success, message = bool(sol.success), sol.message
    records = run_grid_checks(problem, sol.coefs) if checks != "none" else []
    if checks in ("budget", "all"):  # the refit with a wider kernel ("cheap" leaves it out, as on sequences)
        records.append(kernel_size_check(problem))
    for check in records:
        if check.warning is not None and check.message is not None:
            warnings.warn(check.message, check.warning, stacklevel=stacklevel + 1)
    if not np.all(np.isfinite(kernel)) or (bias is not None and not np.all(np.isfinite(bias))):
        success, message = False, f"the solver returned non-finite values ({sol.message})"
    diagnostics = {
        "solver": [method] * cfg.groups,
        **sol.diagnostics,
        "noise_std": np.sqrt(noise_var),
        "dof": float(dof.min()) if len(dof) else 0.0,
        "relative_residual": float(np.sqrt(rss.sum() / yty)) if yty > 0 else 0.0,
        "complex": problem.is_complex,
        # how A^H A was summed, per group (the cost model's choice; None where the explicit design was factorized)
        "statistics_path": [getattr(problem.cache.get(("statistics", g)), "path", None) for g in range(cfg.groups)],
        "checks": {"level": checks, "residual": "data", **{c.name: c.line for c in records}},
        "specification": {c.name: c.entry for c in records if c.entry},
        "streamed": False,
        "input": "arrays",
    }
    return KernelResult(
        kernel=kernel,
        bias=bias,
        method=method,
        report=report,
        residual_rms=residual_rms,
        success=success,
        message=message,
        config=cfg,  # type: ignore[arg-type]  # a GridConfig has ConvConfig's attributes
        stderr=stderr,
        bias_stderr=bias_stderr,
        n_iterations=sol.n_iterations,
        loss_history=sol.loss_history,
        options=dict(sol.options),
        diagnostics=diagnostics,
        covariance=covariance,
    )


#: The residual sum of squares is read off the statistics (``y'y - 2 Re w'A'y + w'A'Aw``) when a bound on its rounding
#: error is below this share of it (as the sequence path does); otherwise one pass over the design recomputes it.
RSS_RELATIVE_ERROR = 1e-6


def _residual_sums(problem: GridProblem, coefs: list[np.ndarray]) -> np.ndarray:
    """Per output channel ``sum |y - A w|^2``: from the statistics the fit formed (cached on the problem) where they
    are accurate, else by one pass over the design's row chunks."""
    cfg = problem.config
    rss = np.zeros(cfg.out_channels)
    per = cfg.out_per_group
    for g, coef in enumerate(coefs):
        stats = problem.cache.get(("statistics", g))
        if stats is not None and stats.cross is not None and stats.yty is not None:
            fitted = np.einsum("ij,ij->j", coef.conj(), stats.gram @ coef).real
            cross = np.einsum("ij,ij->j", coef.conj(), stats.cross).real
            from_stats = stats.yty - 2 * cross + fitted
            eps = np.finfo(np.float64).eps
            bound = 8 * eps * max(np.log2(max(stats.n_rows, 2)), 1.0) * (stats.yty + 2 * np.abs(cross) + np.abs(fitted))
            if np.all(bound <= RSS_RELATIVE_ERROR * np.abs(from_stats)):
                rss[g * per : (g + 1) * per] = np.clip(from_stats, 0.0, None)
                continue
        for i in range(len(problem.xs)):
            for start, stop in row_chunks(problem, i):
                r = group_targets(problem, i, g, start, stop) - design_rows(problem, i, g, start, stop) @ coef
                rss[g * per : (g + 1) * per] += np.einsum("ij,ij->j", r.conj(), r).real
    return rss


def _uncertainty(
    cfg: GridConfig, unit_covariance: list[np.ndarray], noise_var: np.ndarray
) -> tuple[np.ndarray, np.ndarray | None, list[np.ndarray]]:
    """Standard errors shaped like the kernel and bias, and per output channel the covariance of
    ``(kernel[..., o].ravel(), bias[o])`` in the user's order (flip applied)."""
    n_kernel = cfg.taps * cfg.in_per_group
    index = np.arange(n_kernel + int(cfg.use_bias), dtype=float)
    order = columns_to_kernel(cfg, [index[:, None]])[0]  # one group's columns, in the user's order
    perm = np.rint(order.ravel()).astype(int)  # user position -> design column
    if cfg.use_bias:
        perm = np.concatenate([perm, [n_kernel]])
    per = cfg.out_per_group
    stderr = np.zeros(cfg.kernel_shape)
    bias_stderr = np.zeros(cfg.out_channels) if cfg.use_bias else None
    covariance = []
    for o in range(cfg.out_channels):
        cov = noise_var[o] * unit_covariance[o // per][np.ix_(perm, perm)]
        covariance.append(cov)
        sd = np.sqrt(np.clip(np.real(np.diag(cov)), 0.0, None))
        stderr[..., o] = sd[:n_kernel].reshape(cfg.kernel_size + (cfg.in_per_group,))
        if bias_stderr is not None:
            bias_stderr[o] = sd[-1]
    return stderr, bias_stderr, covariance
