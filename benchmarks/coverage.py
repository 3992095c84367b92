"""Coverage of the standard errors on the Toeplitz CG path (issue 26, item 3): long single-input kernels.

A decaying random response of ``K`` taps (3000 by default: least squares takes the Toeplitz CG path), one input
record (white, or AR(1) 0.9) held fixed, and ``draws`` independent Gaussian noise draws on the output.  For each
fit by ``recover_kernel`` the share of taps whose 95 % Student-t interval (``res.confidence_interval()``) holds
the true tap, and the share of frequencies whose 95 % region of the frequency response (``fr.contains``, from
``res.covariance``) and magnitude band (``fr.lower <= |H| <= fr.upper``) hold the true response.  The target of
the issue is 93-97 % of taps.  Then the cost of the standard errors and covariance (the displacement inverse of
the Gram: ``2 r + 1`` more CG solves and ``O(K^2)``) against the solve, and against ``numpy.linalg.inv`` of the
exact ``K x K`` Gram (the dense route it replaces), measured in the same process.

    python benchmarks/coverage.py [--quick]
"""

from __future__ import annotations

import argparse
import sys
import warnings

import numpy as np
import scipy.signal
from harness import fmt_time, markdown_table, measure, write_result

import kernel_recovery as kr
from kernel_recovery.model.problem import build_problem
from kernel_recovery.model.statistics import block_statistics
from kernel_recovery.model.toeplitz import ToeplitzGram
from kernel_recovery.solvers import lstsq


def coverage_case(kind: str, taps: int, n: int, draws: int, noise: float, rng) -> dict:
    x = rng.standard_normal(n)
    if kind.startswith("AR"):
        x = scipy.signal.lfilter([1.0], [1.0, -0.9], x)
    h = rng.standard_normal(taps) * np.exp(-np.arange(taps) / (taps / 5))
    clean = kr.conv1d(x, h)
    taps_in, region_in, band_in, solvers = [], [], [], set()
    alarms: dict[str, int] = {}
    for _ in range(draws):
        y = clean + noise * clean.std() * rng.standard_normal(len(clean))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = kr.recover_kernel(x, y, taps)
        for w in caught:  # a correct model: any warning is a false alarm, counted and shown
            alarms[w.category.__name__] = alarms.get(w.category.__name__, 0) + 1
        solvers.update(res.diagnostics["solver"])
        lo, hi = res.confidence_interval(0.95)
        taps_in.append(np.mean((lo.ravel() <= h) & (h <= hi.ravel())))
        fr = res.frequency_response(256)
        lags = np.asarray(res.config.tap_lags(), dtype=float)
        truth = np.exp(-2j * np.pi * np.outer(fr.freqs, lags)) @ h
        region_in.append(np.mean(fr.contains(truth[:, None, None])))
        band_in.append(np.mean((fr.lower[:, 0, 0] <= np.abs(truth)) & (np.abs(truth) <= fr.upper[:, 0, 0])))
    per_draw = np.asarray(taps_in)
    return {
        "input": kind,
        "K": taps,
        "N": n,
        "solver": "+".join(sorted(solvers)),
        "draws": draws,
        "taps in 95% CI": f"{100 * per_draw.mean():.1f}%",
        "per draw (min-max)": f"{100 * per_draw.min():.1f}-{100 * per_draw.max():.1f}%",
        "H in 95% region": f"{100 * np.mean(region_in):.1f}%",
        "magnitude in 95% band": f"{100 * np.mean(band_in):.1f}%",
        "band source": fr.band_source,
        "warnings (false alarms)": ", ".join(f"{k} {v}" for k, v in sorted(alarms.items())) or "none",
    }


def cost_case(kind: str, taps: int, n: int, repeat: int, rng) -> dict:
    x = rng.standard_normal(n)
    if kind.startswith("AR"):
        x = scipy.signal.lfilter([1.0], [1.0, -0.9], x)
    y = kr.conv1d(x, rng.standard_normal(taps) * np.exp(-np.arange(taps) / (taps / 5)))
    y = y + 0.1 * y.std() * rng.standard_normal(len(y))
    block = build_problem(x, y, taps).blocks[0]
    total = measure(lambda: lstsq.solve(build_problem(x, y, taps)), repeat=repeat)
    inverse_of_block = lstsq._toeplitz_inverse
    lstsq._toeplitz_inverse = lambda *args: (None, None)  # the same solve without its standard errors
    try:
        bare = measure(lambda: lstsq.solve(build_problem(x, y, taps)), repeat=repeat)
    finally:
        lstsq._toeplitz_inverse = inverse_of_block
    op = ToeplitzGram(block, False, 0.0)
    inverse = measure(lambda: inverse_of_block(block, False, op, 1e-13, lstsq.CG_MAX_ITER), repeat=repeat)
    gram = block_statistics(block, False).gram
    dense = measure(lambda: np.linalg.inv(gram), repeat=1, warmup=0)
    return {
        "input": kind,
        "K": taps,
        "N": n,
        "lstsq.solve without stderr": fmt_time(bare["median"]),
        "with stderr + covariance": fmt_time(total["median"]),
        "the inverse alone": fmt_time(inverse["median"]),
        "inverse / bare solve": f"{inverse['median'] / bare['median']:.1f}",
        "dense inv(A^T A)": fmt_time(dense["median"]),
        "dense / displacement": f"{dense['median'] / inverse['median']:.0f}",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a shorter kernel and a few draws (seconds)")
    args = parser.parse_args(argv)
    taps, n, draws, repeat = (600, 8000, 4, 1) if args.quick else (3000, 30000, 40, 3)
    rng = np.random.default_rng(0)
    kinds = ("white", "AR(1) 0.9")
    rows = [coverage_case(kind, taps, n, draws, 0.3, rng) for kind in kinds]
    costs = [cost_case(kind, taps, n, repeat, rng) for kind in kinds]
    body = (
        f"One input record of {n} samples, a decaying random response of {taps} taps, noise at 0.3 of the clean "
        f"output's rms, {draws} noise draws per input; 95 % intervals from `res.confidence_interval()` (taps) and "
        "`res.frequency_response(256)` (the elliptical region and the magnitude band).  Target: 93-97 % of taps.\n\n"
        + markdown_table(rows, list(rows[0]))
        + f"\n\nCost of the standard errors and covariance (median of {repeat} run(s); the dense inverse once):\n\n"
        + markdown_table(costs, list(costs[0]))
    )
    write_result("coverage", "Coverage of the standard errors on long kernels (Toeplitz CG)", body, args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
