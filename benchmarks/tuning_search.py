"""The evidence search of large regularized fits (issue 27): Newton's method with the slope through ``T`` analytic
(DC's correlation, SS's decay: ``priors.ANALYTIC_T``, one factorization per step for the curvature there) against
Newton's method with central differences through ``T`` (two) (or, with ``--steps``, with SS's factor and DC's
recursion run one coefficient at a time, ``priors.SS_BLOCK = 0`` and ``priors.DC_BLOCK = 0``, instead of over
blocks) and, with ``--lbfgs``, the L-BFGS-B search both replaced, in one process, each against one K x K Cholesky
factorization measured between them.

everyday.py's tuning row (a slowly decaying response, ``flip=True``, noise 0.1, 12 K samples) and two more systems
(a faster oscillating decay; the same at noise 1e-2), for ``regularization`` tc, dc and ss.  Per fit: the time over
the median of the Cholesky timings taken around it (best of 3 each), the evidence evaluations (one factorization of
``M`` each: Newton's with a derivative also invert it), ``-2 log p`` of the analytic search's optimum minus the
differences' (and L-BFGS-B's) (< 0: the analytic one's is better), and the difference of the hyperparameters
Newton's search returned (``log q``, ``log kappa``, DC's ``atanh rho``; nan: L-BFGS-B's are not recorded).  One BLAS
thread (``*_NUM_THREADS=1`` set before numpy is imported).

    python benchmarks/tuning_search.py                 # K=2000, dc and ss (about 3 minutes)
    python benchmarks/tuning_search.py --lbfgs --kinds tc,dc,ss   # and the L-BFGS-B search (about 8 minutes)
    python benchmarks/tuning_search.py --k 1000 --quick
    python benchmarks/tuning_search.py --steps --kinds ss,dc   # SS's and DC's factors by blocks vs step by step
"""

from __future__ import annotations

import argparse
import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import time  # noqa: E402

import numpy as np  # noqa: E402
import scipy.linalg  # noqa: E402
from harness import markdown_table, write_result  # noqa: E402

import kernel_recovery as kr  # noqa: E402
from kernel_recovery.solvers import priors  # noqa: E402

SYSTEMS = {  # name: (impulse response of lag k, noise)
    "slow decay (everyday.py), noise 0.1": (lambda k, rng: 0.995 ** np.arange(k) * rng.standard_normal(k), 0.1),
    "oscillating decay, noise 0.1": (lambda k, rng: 0.99 ** np.arange(k) * np.cos(0.3 * np.arange(k)), 0.1),
    "oscillating decay, noise 0.01": (lambda k, rng: 0.99 ** np.arange(k) * np.cos(0.3 * np.arange(k)), 0.01),
}


def cholesky_time(spd: np.ndarray) -> float:
    best = np.inf
    for _ in range(3):
        t0 = time.perf_counter()
        scipy.linalg.cho_factor(spd)
        best = min(best, time.perf_counter() - t0)
    return best


BLOCK, DC = priors.SS_BLOCK, priors.DC_BLOCK
SEARCHES = {  # column: (NEWTON_SEARCH, ANALYTIC_T, SS_BLOCK, DC_BLOCK)
    "L-BFGS-B": (False, True, BLOCK, DC),
    "Newton, differences in T": (True, False, BLOCK, DC),
    "Newton, step by step": (True, True, 0, 0),
    "Newton, analytic in T": (True, True, BLOCK, DC),
}


TUNED: list[np.ndarray] = []  # the hyperparameters Newton's search returned (log q, then the shape), per fit
_NEWTON = priors._tune_newton


def _recorded_newton(ev, theta, bounds):
    out = _NEWTON(ev, theta, bounds)
    TUNED.append(np.array(out[0]))
    return out


priors._tune_newton = _recorded_newton


def fit(x, y, k, kind, search: str):
    priors.NEWTON_SEARCH, priors.ANALYTIC_T, priors.SS_BLOCK, priors.DC_BLOCK = SEARCHES[search]
    TUNED.clear()
    try:
        t0 = time.perf_counter()
        res = kr.recover_kernel(x, y, k, flip=True, regularization=kind, progress=False)
        return time.perf_counter() - t0, res
    finally:
        priors.NEWTON_SEARCH, priors.ANALYTIC_T, priors.SS_BLOCK, priors.DC_BLOCK = True, True, BLOCK, DC


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=2000, help="kernel size (12 K samples)")
    parser.add_argument("--quick", action="store_true", help="the first system only")
    parser.add_argument("--lbfgs", action="store_true", help="also the L-BFGS-B search")
    parser.add_argument(
        "--steps",
        action="store_true",
        help="against SS's factor and DC's recursion run one coefficient at a time (SS_BLOCK=0, DC_BLOCK=0) "
        "instead of central differences in T",
    )
    parser.add_argument("--kinds", default="dc,ss", help="regularizations, comma-separated (default dc,ss)")
    args = parser.parse_args()
    k = args.k
    searches = [s for s in SEARCHES if (args.lbfgs or s != "L-BFGS-B")]
    searches.remove("Newton, differences in T" if args.steps else "Newton, step by step")
    new = searches[-1]
    rows = []
    systems = list(SYSTEMS.items())[:1] if args.quick else list(SYSTEMS.items())
    for name, (response, noise) in systems:
        rng = np.random.default_rng(2)
        x = rng.standard_normal(12 * k)
        y = kr.conv1d(x, response(k, rng), flip=True) + noise * rng.standard_normal(11 * k + 1)
        spd = scipy.linalg.toeplitz(np.correlate(x, x[: 11 * k + 1], "valid")[:k]) + np.eye(k)
        for kind in args.kinds.split(","):
            out = {}
            for search in searches:
                before = cholesky_time(spd)
                seconds, res = fit(x, y, k, kind, search)
                chol = float(np.median([before, cholesky_time(spd)]))
                out[search] = (
                    seconds / chol,
                    int(res.diagnostics["n_evaluations"][0]),
                    -2 * float(res.diagnostics["log_evidence"][0]),
                    seconds,
                    TUNED[-1] if TUNED else np.full(1, np.nan),
                )
            row = {"system": name, "kind": kind}
            for search in searches:
                ratio, _, _, seconds, _ = out[search]
                row[search] = f"{ratio:.0f}x ({seconds:.2f} s)"
            row["evaluations"] = " -> ".join(str(out[search][1]) for search in searches)
            for search in searches[:-1]:
                other = {"L-BFGS-B": "L-BFGS-B", "Newton, step by step": "step by step"}.get(search, "differences")
                row[f"-2 log p, analytic - {other}"] = f"{out[new][2] - out[search][2]:+.3g}"
                row[f"tuned (log q, shape), analytic - {other}"] = ", ".join(
                    f"{v:+.2g}" for v in out[new][4] - out[search][4]
                )
            print(row, flush=True)
            rows.append(row)
    cols = list(rows[0])
    body = (
        f"K={k}, {12 * k} samples, flip=True; times in K x K Cholesky factorizations measured around each fit "
        "(best of 3 before and after, their median), one BLAS thread. Shared machine: ratios within a row "
        "are comparable, absolute times drift.\n\n" + markdown_table(rows, cols)
    )
    if args.steps:
        body = (
            f"'Newton, analytic in T' runs SS's factor over blocks of priors.SS_BLOCK={BLOCK} coefficients and DC's "
            f"recursion over blocks of priors.DC_BLOCK={DC}, 'Newton, step by step' both one coefficient at a time "
            "(SS_BLOCK=0, DC_BLOCK=0: DC's recursion by scipy.signal.lfilter where its gains are equal, else a "
            "Python loop), the same search otherwise. " + body
        )
    if args.steps:  # (its own file: the searches' comparison stays in tuning_search_k<K>.md)
        title = "Evidence search of large regularized fits: SS's factor and DC's recursion by blocks vs step by step"
        write_result(f"tuning_search_k{k}_steps", title, body, args.quick)
    else:
        write_result(
            f"tuning_search_k{k}", "Evidence search of large regularized fits: Newton vs L-BFGS-B", body, args.quick
        )


if __name__ == "__main__":
    main()
