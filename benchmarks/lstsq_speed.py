"""How close method="lstsq" comes to the cost of reading the data, and long kernels against PyLops lsqr.

Part 1 (Cin = Cout = 4, K = 32, Gaussian noise): a memory pass (``np.sum`` of x and y) against the normal
equations built from explicit im2col rows (chunked, so that L = 1e7 fits in memory) and ours: the exact
statistics alone, the solver (statistics + eigendecomposition + solve), and the whole ``recover_kernel``
(which also runs the analyzer and computes the residual).

Part 2 (one channel, L = 1e6, K = 8192): our Toeplitz CG path against PyLops lsqr with FFT-based products,
run for as many iterations as it needs to reach our kernel error.

    python benchmarks/lstsq_speed.py [--quick]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from harness import fmt_time, markdown_table, measure, write_result

import kernel_recovery as kr
from kernel_recovery.model.design import CHUNK_ROWS, design_rows
from kernel_recovery.model.problem import build_problem
from kernel_recovery.model.statistics import block_statistics
from kernel_recovery.solvers import lstsq


def im2col_normal_equations(problem):
    """The baseline: A^T A and A^T Y from explicit im2col rows (chunks of CHUNK_ROWS rows), then a solve."""
    block = problem.blocks[0]
    p = block.n_free
    gram = np.zeros((p, p))
    cross = np.zeros((p, block.ys[0].shape[1]))
    for x, y in zip(block.xs, block.ys):
        for s in range(0, len(y), CHUNK_ROWS):
            a = design_rows(block, x, False, s, s + CHUNK_ROWS)
            gram += a.T @ a
            cross += a.T @ y[s : s + CHUNK_ROWS]
    return np.linalg.solve(gram, cross)


def one_length(n: int, repeat: int, rng) -> list[dict]:
    cin = cout = 4
    k = 32
    x = rng.standard_normal((n, cin))
    w = rng.standard_normal((k, cin, cout))
    y = kr.conv1d(x, w) + 1e-3 * rng.standard_normal((n - k + 1, cout))

    def err(kernel):
        return float(np.linalg.norm(kernel - w) / np.linalg.norm(w))

    slow = dict(repeat=1, warmup=0) if n > 2_000_000 else dict(repeat=repeat)  # seconds per run at 1e7
    mem = measure(lambda: (np.sum(x), np.sum(y)), repeat=max(repeat, 5))
    base = measure(lambda: im2col_normal_equations(build_problem(x, y, k)), **slow)
    stats = measure(lambda: block_statistics(build_problem(x, y, k).blocks[0], False), repeat=repeat)
    solver = measure(lambda: lstsq.solve(build_problem(x, y, k)), repeat=repeat)
    full = measure(lambda: kr.recover_kernel(x, y, k), **slow)
    rows = []
    for name, m, e in (
        ("memory pass (np.sum of x and y)", mem, None),
        ("im2col normal equations (chunked)", base, err(base["value"].reshape(k, cin, cout))),
        ("ours: exact statistics only", stats, None),
        ("ours: lstsq solver (statistics + solve)", solver, err(solver["value"].kernels[0])),
        ("ours: recover_kernel (+ analyzer, residual)", full, err(full["value"].kernel)),
    ):
        rows.append(
            {
                "L": f"{n:.0e}",
                "what": name,
                "median (min-max)": f"{fmt_time(m['median'])} ({fmt_time(m['min'])}-{fmt_time(m['max'])})",
                "x memory pass": f"{m['median'] / mem['median']:.1f}",
                "speed-up vs im2col": f"{base['median'] / m['median']:.1f}",
                "kernel rel. error": "" if e is None else f"{e:.2e}",
            }
        )
    return rows


def part1(lengths, repeat):
    rng = np.random.default_rng(0)
    rows = [row for n in lengths for row in one_length(n, repeat, rng)]
    columns = ["L", "what", "median (min-max)", "x memory pass", "speed-up vs im2col", "kernel rel. error"]
    return markdown_table(rows, columns)


def part2(n, k, repeat):
    import scipy.signal

    rng = np.random.default_rng(1)
    x = rng.standard_normal(n)
    w = np.exp(-np.arange(k) / (k / 5)) * rng.standard_normal(k)
    y = scipy.signal.correlate(x, w, mode="valid", method="fft") + 0.01 * rng.standard_normal(n - k + 1)

    def err(v):
        return float(np.linalg.norm(np.ravel(v) - w) / np.linalg.norm(w))

    ours = measure(lambda: lstsq.solve(build_problem(x, y, k)), repeat=repeat)
    sol = ours["value"]
    ours_err = err(sol.kernels[0])
    rows = [
        {
            "method": f"ours: Toeplitz CG ({sol.diagnostics['iterations'][0]} iterations)",
            "median": fmt_time(ours["median"]),
            "kernel rel. error": f"{ours_err:.3e}",
            "ratio": "1.0",
        }
    ]
    try:
        import pylops
        from pylops.optimization.basic import lsqr
    except ImportError:  # an optional peer
        rows.append({"method": "PyLops lsqr", "median": "not installed"})
        return markdown_table(rows, ["method", "median", "kernel rel. error", "ratio"]), ours_err

    op = pylops.FunctionOperator(
        lambda v: scipy.signal.correlate(x, v, mode="valid", method="fft"),
        lambda r: scipy.signal.correlate(x, r, mode="valid", method="fft"),
        n - k + 1,
        k,
    )
    # fewest iterations that reach our error (within 5 %), then time that run
    niter, got = 2, np.inf
    while niter <= 512:
        got = err(lsqr(op, y, np.zeros(k), niter=niter, atol=0, btol=0)[0])
        if got <= 1.05 * ours_err:
            break
        niter *= 2
    peer = measure(lambda: lsqr(op, y, np.zeros(k), niter=niter, atol=0, btol=0)[0], repeat=max(1, repeat // 2))
    rows.append(
        {
            "method": f"PyLops {pylops.__version__} lsqr, FFT products ({niter} iterations)",
            "median": fmt_time(peer["median"]),
            "kernel rel. error": f"{err(peer['value']):.3e}",
            "ratio": f"{peer['median'] / ours['median']:.1f}",
        }
    )
    return markdown_table(rows, ["method", "median", "kernel rel. error", "ratio"]), ours_err


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, a few seconds")
    args = parser.parse_args(argv)
    if args.quick:
        lengths, repeat, long_n, long_k = [100_000], 3, 50_000, 2048
    else:
        lengths, repeat, long_n, long_k = [1_000_000, 10_000_000], 5, 1_000_000, 8192
    # the im2col baseline and recover_kernel run once (no warm-up) at L = 1e7: seconds each
    t0 = time.perf_counter()
    table1 = part1(lengths, repeat)
    table2, _ = part2(long_n, long_k, repeat)
    body = (
        "## Cin = Cout = 4, K = 32: against a memory pass and im2col normal equations\n\n"
        + table1
        + f"\n\n## One channel, L = {long_n:.0e}, K = {long_k}: long-kernel path against PyLops lsqr\n\n"
        + table2
        + f"\n\nMedians of {repeat} runs after a warm-up; total {time.perf_counter() - t0:.0f} s. The machine is "
        "shared with other jobs, so the spread (min-max) is shown."
    )
    write_result("lstsq_speed", "lstsq speed", body, args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
