"""The analyzer's rank on every path: in memory, streamed (NormalEquations), and the explicit design.

    python benchmarks/rank.py            # K = 257, 1000, 4000 (a few minutes)
    python benchmarks/rank.py --quick    # K = 257, 1000 on short records (seconds)

Issue 26, item 2: for white, AR(0.9)-coloured and three-sinusoid inputs, the rank and status that
``analyze(x, None, K)`` reports in memory, the rank and status of the report of ``NormalEquations(K)`` fed the
same record in chunks that keep no rows, and ``numpy.linalg.matrix_rank`` of the explicit design with the
tolerance the streamed report states (where its SVD costs at most ~5e10 flops), with the time of each.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings

import numpy as np
from harness import RESULTS, machine, markdown_table
from scipy.signal import lfilter

import kernel_recovery as kr
from kernel_recovery.diagnostics.analysis import report_for

REFERENCE_FLOPS = 5e10


def make_input(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    if kind == "white":
        return rng.standard_normal(n)
    if kind == "AR(0.9)":
        return lfilter([1.0], [1.0, -0.9], rng.standard_normal(n))
    t = np.arange(n)
    return np.sin(0.3 * t) + 0.5 * np.cos(1.1 * t + 0.2) + 0.25 * np.sin(2.0 * t)


def run(kind: str, k: int, n: int, rng: np.random.Generator, budget: float = REFERENCE_FLOPS) -> dict:
    x = make_input(kind, n, rng)
    y = np.zeros(n - k + 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", kr.UnderdeterminedWarning)
        t0 = time.perf_counter()
        mem = kr.analyze(x, None, k)
        t_mem = time.perf_counter() - t0
        acc = kr.NormalEquations(k)
        for i in range(0, n, n):  # one chunk larger than the rows the accumulator keeps: no rows kept
            acc.update(x[i : i + n], y[i : i + n])
        t0 = time.perf_counter()
        rep = report_for(acc.problem())
        t_stream = time.perf_counter() - t0
    reference, t_ref = "-", "-"
    rows = n - k + 1
    if rows * k * k <= budget:
        t0 = time.perf_counter()
        design = np.lib.stride_tricks.sliding_window_view(x, k)
        reference = int(np.linalg.matrix_rank(design, tol=rep.rank_tolerance[0]))
        t_ref = f"{time.perf_counter() - t0:.2f} s"
    agree = mem.rank[0] == rep.rank[0] and mem.status == rep.status and reference in ("-", rep.rank[0])
    return {
        "input": kind,
        "K": k,
        "L": n,
        "in-memory rank": int(mem.rank[0]),
        "in-memory status": mem.status,
        "in-memory time": f"{t_mem:.2f} s",
        "streamed rank": int(rep.rank[0]),
        "streamed status": rep.status,
        "streamed report time": f"{t_stream:.2f} s",
        "explicit matrix_rank": reference,
        "explicit time": t_ref,
        "agree": "yes" if agree else "NO",
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="K = 257 and 1000 on short records")
    args = parser.parse_args(argv)
    sizes = [257, 1000] if args.quick else [257, 1000, 4000]
    rng = np.random.default_rng(0)
    rows = []
    for k in sizes:
        n = 3 * k if args.quick else 5 * k + 4000
        for kind in ("white", "AR(0.9)", "three sinusoids"):
            row = run(kind, k, n, rng, 1e9 if args.quick else REFERENCE_FLOPS)
            rows.append(row)
            print(row, file=sys.stderr)
    table = markdown_table(rows, list(rows[0]))
    name = "rank_quick" if args.quick else "rank"
    text = (
        f"# The analyzer's rank, in memory and streamed{' (quick)' if args.quick else ''}\n\n"
        "Streamed: NormalEquations(K) fed the record in one chunk (too large to keep its rows), report of its "
        "problem; explicit: numpy.linalg.matrix_rank of the design with the streamed report's tolerance (where "
        f"its SVD costs at most {1e9 if args.quick else REFERENCE_FLOPS:.0e} flops).\n\n{table}\n\n"
        f"All agree: {all(r['agree'] == 'yes' for r in rows)}\n\nMachine: {machine()}\n"
    )
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.md").write_text(text)
    return 0 if all(r["agree"] == "yes" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
