"""Which method when: lstsq, fft and adam side by side at the sizes users meet, in one run (README's table).

Each size draws white-noise inputs, a random kernel and ``y = conv1d(x, w) + 0.01 * noise``; every method fits
the same data in the same process (interleaved, best of a few warm calls, the default post-fit checks included),
beside NumPy's normal equations on the explicit design where that fits in memory.  The error is
``max |kernel - w| / max |w|``.

    python benchmarks/methods.py            # full run (a few minutes), writes results/methods.md
    python benchmarks/methods.py --quick    # small sizes, no result file
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from harness import fmt_time, markdown_table, versions, write_result
from threadpoolctl import threadpool_limits

import kernel_recovery as kr

#: (label, length, in, out, kernel_size, methods); adam runs 500 steps of mse (its loss history is the work).
SIZES = [
    ("toy", 4, 1, 1, 2, ("lstsq", "fft", "adam")),
    ("short record", 1_000, 1, 1, 8, ("lstsq", "fft", "adam")),
    ("L=1e4, K=32", 10_000, 1, 1, 32, ("lstsq", "fft", "adam")),
    ("L=1e5, K=512", 100_000, 1, 1, 512, ("lstsq", "fft", "adam")),
    ("L=1e5, 4x4, K=32", 100_000, 4, 4, 32, ("lstsq", "fft", "adam")),
    ("L=1e6, K=8192", 1_000_000, 1, 1, 8192, ("lstsq", "fft")),
]
QUICK = [
    ("toy", 4, 1, 1, 2, ("lstsq", "fft", "adam")),
    ("short record", 1_000, 1, 1, 8, ("lstsq", "fft", "adam")),
    ("L=1e4, 2x2, K=16", 10_000, 2, 2, 16, ("lstsq", "fft")),
]
OPTIONS = {"adam": {"max_iter": 500}}


def problem(length: int, cin: int, cout: int, k: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    if length == 4:  # the seed's toy
        x = np.array([1.0, 2.0, 3.0, 4.0])
        w = np.array([1.0, 2.0]).reshape(2, 1, 1)
        return x, kr.conv1d(x, w), w
    x = rng.standard_normal((length, cin))
    w = rng.standard_normal((k, cin, cout)) / np.sqrt(k * cin)
    y = kr.conv1d(x, w)
    return x, y + 0.01 * rng.standard_normal(y.shape), w


def numpy_normal_equations(x: np.ndarray, y: np.ndarray, k: int) -> np.ndarray:
    x2 = x.reshape(len(x), -1)
    a = np.lib.stride_tricks.sliding_window_view(x2, k, axis=0).transpose(0, 2, 1).reshape(len(x2) - k + 1, -1)
    return np.linalg.solve(a.T @ a, a.T @ y.reshape(len(a), -1))


def best_of(fn, calls: int) -> float:
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def measure(label: str, length: int, cin: int, cout: int, k: int, methods: tuple[str, ...]) -> dict[str, str]:
    """One size: every method's best time, error and path, and NumPy's normal equations."""
    x, y, w = problem(length, cin, cout, k)
    fits = {m: (lambda m=m: kr.recover_kernel(x, y, k, method=m, **OPTIONS.get(m, {}))) for m in methods}
    times, errors, paths = {}, {}, {}
    for m, fit in fits.items():  # warm-up (adam compiles), and the error
        res = fit()
        errors[m] = float(np.abs(res.kernel - w).max() / np.abs(w).max())
        paths[m] = res.diagnostics["solver"][0]
        times[m] = np.inf
    one = best_of(fits["lstsq"], 1)
    calls = 2 if one > 0.5 else 5 if one > 0.02 else 20
    for _ in range(calls):  # interleaved: each round times every method once
        for m, fit in fits.items():
            times[m] = min(times[m], best_of(fit, 1))
    numpy_time = np.nan
    if length * k * cin <= 5e7:
        numpy_time = best_of(lambda: numpy_normal_equations(x, y, k), calls)
    row = {"size": label, "NumPy normal equations": fmt_time(numpy_time)}
    for m in ("lstsq", "fft", "adam"):
        if m not in times:
            row[m] = "-"
            continue
        ratio = "" if m == "lstsq" else f", {times[m] / times['lstsq']:.2f}x lstsq"
        row[m] = f"{fmt_time(times[m])}{ratio}; error {errors[m]:.1e} ({paths[m]})"
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, no result file")
    args = parser.parse_args(argv)
    rows = []
    start = time.perf_counter()
    with threadpool_limits(1):
        for size in QUICK if args.quick else SIZES:
            rows.append(measure(*size))
            print(rows[-1], flush=True)
    columns = ["size", "lstsq", "fft", "adam", "NumPy normal equations"]
    body = (
        f"{versions('numpy', 'jax')}. Float64 white-noise inputs, `y = conv1d(x, w) + 0.01 noise` (the toy: the "
        "seed's exact 4-sample record); default post-fit checks included; best of 2-20 warm calls, methods "
        "interleaved, one BLAS thread. adam: `max_iter=500`, mse. The error is max |kernel - w| / max |w|; the path "
        "is `diagnostics['solver']`. NumPy normal equations: the explicit design by `sliding_window_view`, "
        f"`np.linalg.solve(A.T @ A, A.T @ y)` (where it fits). Total {time.perf_counter() - start:.0f} s.\n\n"
    ) + markdown_table(rows, columns)
    print(markdown_table(rows, columns))
    write_result("methods", "Which method when: the three methods side by side", body, args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
