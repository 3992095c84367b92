"""Post-fit specification tests of a grid fit: is ``y`` a linear convolution of ``x`` (with the given bias) at all?

The three tests of :mod:`.specification` (saturation, missing bias, RESET nonlinearity), each on the first
:data:`~.specification.ROWS` equations of each output channel (the design's row-major order: the last spatial axis
is the one the Newey-West lags follow), with the same levels: flagged below ``specification.ALPHA`` (Bonferroni over
channels), warned (:class:`~kernel_recovery.ModelMisfitWarning`) below ``checks.SPECIFICATION_WARN``.  Real data
only (the tests read orders and signs); complex fits record why they did not run.  Cost: one forward pass over at
most ``ROWS`` rows per group.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..exceptions import KernelSizeWarning, ModelMisfitWarning
from ..model.grid import GridProblem, design_rows, grid_statistics, group_targets, row_chunks
from . import specification
from .checks import SPECIFICATION_WARN

#: A fit whose residual is below this share of y (in norm) explains y: nothing is left for a misfit test to read.
EXACT_FIT = 1e-6


@dataclass
class GridCheck:
    """One test's outcome: its line for ``diagnostics["checks"]``, its entry, and a warning to issue (or None)."""

    name: str
    line: str
    entry: dict[str, Any] = field(default_factory=dict)
    message: str | None = None
    warning: type[Warning] | None = None


def _first_rows(problem: GridProblem, coefs: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per output channel, fitted values and outputs of the first ``ROWS`` equations (1-D arrays)."""
    cfg = problem.config
    fitted: list[list[np.ndarray]] = [[] for _ in range(cfg.out_channels)]
    outputs: list[list[np.ndarray]] = [[] for _ in range(cfg.out_channels)]
    per = cfg.out_per_group
    for g, coef in enumerate(coefs):
        left = specification.ROWS
        for i in range(len(problem.xs)):
            for start, stop in row_chunks(problem, i):
                if left <= 0:
                    break
                f = design_rows(problem, i, g, start, stop)[:left] @ coef
                t = group_targets(problem, i, g, start, stop)[:left]
                left -= len(f)
                for j in range(per):
                    fitted[g * per + j].append(f[:, j])
                    outputs[g * per + j].append(t[:, j])
    return [np.concatenate(f) for f in fitted], [np.concatenate(t) for t in outputs]


def run_grid_checks(problem: GridProblem, coefs: list[np.ndarray]) -> list[GridCheck]:
    """The specification tests of a grid fit (see the module docstring)."""
    names = ("saturation", "missing_bias", "nonlinearity")
    if problem.is_complex:
        return [GridCheck(n, "not run: complex data (the tests read the order and sign of real values)") for n in names]
    if not all(np.all(np.isfinite(c)) for c in coefs):
        return [GridCheck(n, "skipped: the solution is not finite") for n in names]
    fitted, outputs = _first_rows(problem, coefs)
    if min(len(t) for t in outputs) < specification.MIN_ROWS:
        return [
            GridCheck(n, f"skipped: fewer than {specification.MIN_ROWS} residuals per output channel") for n in names
        ]
    resid = sum(float(np.sum((t - f) ** 2)) for f, t in zip(fitted, outputs))
    if resid <= EXACT_FIT**2 * sum(float(np.sum(t**2)) for t in outputs):
        return [
            GridCheck(n, f"passed: the fit explains y to {EXACT_FIT:g} (repeated values follow the convolution)")
            for n in names
        ]
    n_out = len(outputs)
    out = [_saturation(outputs, n_out)]
    if problem.config.use_bias:
        out.append(GridCheck("missing_bias", "not needed: the fit has a bias"))
    else:
        tests = [specification.bias_test([t - f]) for f, t in zip(fitted, outputs)]
        p = np.minimum(1.0, np.array([q for _, _, q in tests]) * n_out)
        out.append(
            _flagged(
                "missing_bias",
                p,
                {"mean": np.array([m for m, _, _ in tests])},
                "the residual's mean is not zero: y has an offset the kernel cannot give; fit with use_bias=True.",
            )
        )
    reset = [specification.reset_test([f], [t - f]) for f, t in zip(fitted, outputs)]
    p = np.minimum(1.0, np.array([q for _, q in reset]) * n_out)
    out.append(
        _flagged(
            "nonlinearity",
            p,
            {"statistic": np.array([s for s, _ in reset])},
            "the residual depends on powers of the fitted values (RESET): y is not a linear convolution of x (an "
            "activation, a nonlinear sensor); the kernel is the best linear fit, not the system's.",
        )
    )
    if out[0].warning is not None:  # a clipped output explains the other misfits: one warning, the cause
        for check in out[1:]:
            if check.warning is not None:
                check.warning, check.line = None, "flagged, not warned: explained by the saturation"
    return out


def _saturation(outputs: list[np.ndarray], n_out: int) -> GridCheck:
    found = [specification.saturation_test(t) for t in outputs]
    tests = max(1, sum(f["tests"] for f in found))
    p = np.array([min(1.0, f["p_value"] * tests) for f in found])
    hit = [o for o, f in enumerate(found) if p[o] < specification.ALPHA and f["share"] >= specification.MIN_SHARE]
    entry = {"p_value": p, "share": np.array([f["share"] for f in found]), "alpha": specification.ALPHA}
    if not hit:
        return GridCheck("saturation", "passed", entry)
    o = max(hit, key=lambda c: found[c]["share"])
    f = found[o]
    message = (
        f"y of output channel {o} equals {f['value']:.6g} in {f['share']:.1%} of its samples: the output is "
        "clipped, saturated or rectified (a ReLU), and those samples do not follow the convolution; drop them from y "
        "(fit the others) or record the layer's output before its activation."
    )
    return GridCheck("saturation", "flagged", entry, message, ModelMisfitWarning)


def _flagged(name: str, p: np.ndarray, values: dict[str, Any], text: str) -> GridCheck:
    entry = {**values, "p_value": p, "alpha": specification.ALPHA}
    hit = np.flatnonzero(p < specification.ALPHA)
    if not len(hit):
        return GridCheck(name, "passed", entry)
    worst = float(p[hit].min())
    message = f"output channel(s) {', '.join(map(str, hit))}: {text} (p={worst:.1e})"
    if worst >= SPECIFICATION_WARN:
        return GridCheck(name, f"flagged, not warned: p >= {SPECIFICATION_WARN:g}", entry, message)
    return GridCheck(name, "flagged", entry, message, ModelMisfitWarning)


#: The kernel-size check refits with this many more kernel positions on each side of every axis.
WIDER = 1
#: ... and says so when the wider kernel leaves at most this share of the residual (a material gain) ...
MATERIAL_GAIN = 0.99


def kernel_size_check(problem: GridProblem) -> GridCheck:
    """Does a kernel ``2 * WIDER`` larger along every axis, over the same outputs (the padding widened with it), explain
    ``y`` better?  Both least-squares fits from the statistics (the FFT Gram of the wider design where it is cheap);
    an F-test of the nested models per output channel, warned (:class:`KernelSizeWarning`) below
    ``checks.SPECIFICATION_WARN`` (Bonferroni over channels) when the wider kernel also removes more than 1 % of the
    residual.  Independent of the method's own solution (constraints and priors included)."""
    name = "kernel_size"
    cfg = problem.config
    if problem.ys is None:
        return GridCheck(name, "skipped: no outputs")
    grow = tuple(WIDER * d for d in cfg.dilation)
    wider_cfg = dataclasses.replace(cfg, kernel_size=tuple(k + 2 * WIDER for k in cfg.kernel_size))
    wider = dataclasses.replace(
        problem, config=wider_cfg, xs=tuple(np.pad(x, tuple((g, g) for g in grow) + ((0, 0),)) for x in problem.xs),
        cache={},
    )  # fmt: skip
    n = problem.n_equations
    q = wider.n_columns - problem.n_columns
    dof = n - wider.n_columns
    if dof <= 0:
        return GridCheck(
            name, f"skipped: {n} equations leave no degrees of freedom for a kernel {wider_cfg.kernel_size}"
        )
    rss, rss_wider = [], []
    for g in range(cfg.groups):
        rss.append(_least_squares_rss(grid_statistics(problem, g)))
        rss_wider.append(_least_squares_rss(grid_statistics(wider, g)))
    small, large = np.concatenate(rss), np.concatenate(rss_wider)
    scale = np.concatenate([grid_statistics(problem, g).yty for g in range(cfg.groups)])
    if np.all(small <= EXACT_FIT**2 * scale):
        return GridCheck(name, f"passed: the fit explains y to {EXACT_FIT:g}")
    from scipy.special import fdtrc

    with np.errstate(divide="ignore", invalid="ignore"):
        f = ((small - large) / q) / np.maximum(large / dof, np.finfo(float).tiny)
    p = np.minimum(1.0, fdtrc(q, dof, np.maximum(f, 0.0)) * len(small))
    entry = {
        "p_value": p,
        "wider_kernel_size": wider_cfg.kernel_size,
        "residual_share": large / np.maximum(small, 1e-300),
    }
    hit = np.flatnonzero((p < SPECIFICATION_WARN) & (large < MATERIAL_GAIN * small))
    if not len(hit):
        return GridCheck(name, "passed", entry)
    o = int(hit[np.argmin(large[hit] / small[hit])])
    message = (
        f"the residual says the kernel is larger than kernel_size={cfg.kernel_size}: a {wider_cfg.kernel_size} kernel "
        f"over the same outputs leaves {large[o] / small[o]:.1%} of output channel {o}'s residual (F-test p="
        f"{max(float(p[o]), 1e-300):.1e}); fit a larger kernel_size."
    )
    return GridCheck(name, "flagged", entry, message, KernelSizeWarning)


def _least_squares_rss(stats: Any) -> np.ndarray:
    """Per output channel the least-squares residual sum of squares from ``A^H A``, ``A^H Y``, ``Y^H Y``."""
    import scipy.linalg

    gram, cross = stats.gram, stats.cross
    try:  # a Cholesky solve (P^3 / 3); a singular Gram takes the minimum-norm least squares
        w = scipy.linalg.solve(gram, cross, assume_a="pos", check_finite=False)
    except (np.linalg.LinAlgError, scipy.linalg.LinAlgError):
        w = np.linalg.lstsq(gram, cross, rcond=None)[0]
    return np.clip(stats.yty - np.einsum("ij,ij->j", cross.conj(), w).real, 0.0, None)
