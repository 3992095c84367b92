"""Post-fit specification tests of a grid fit: is ``y`` a linear convolution of ``x`` (with the given bias) at all?

The three tests of :mod:`.specification` (saturation, missing bias, RESET nonlinearity), each on the first
:data:`~.specification.ROWS` equations of each output channel (the design's row-major order: the last spatial axis
is the one the Newey-West lags follow), with the same levels: flagged below ``specification.ALPHA`` (Bonferroni over
channels), warned (:class:`~kernel_recovery.ModelMisfitWarning`) below ``checks.SPECIFICATION_WARN``.  Real data
only (the tests read orders and signs); complex fits record why they did not run.  Cost: one forward pass over at
most ``ROWS`` rows per group.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..exceptions import ModelMisfitWarning
from ..model.grid import GridProblem, design_rows, group_targets, row_chunks
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
