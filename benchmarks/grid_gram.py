"""The exact grid Gram at large sizes (issue 29): chunked im2col sums against lagged correlations by FFT.

For 2-D kernels of 5x5, 15x15 and 31x31 on 256^2 to 2048^2 images (one channel, real, valid padding, with the
outputs: ``A^T A``, ``A^T y`` and ``y^T y``), times :func:`kernel_recovery.model.grid.grid_statistics` on its two
paths side by side in one process, one call each: ``"im2col"`` (the chunked design GEMMs, ``rows x P^2``
multiply-adds) and ``"fft"`` (:mod:`kernel_recovery.model.grid_gram`), and prints which path ``"auto"`` takes.
Where both ran, the largest entry of the difference of the Grams relative to the largest entry is printed.

The im2col path is skipped where it would take more than ``--limit`` seconds (or once the im2col calls have used
``--budget`` seconds): its time is then extrapolated from its multiply-add count at the rate of the largest im2col
call measured in this run, and marked "~".

    python benchmarks/grid_gram.py                 # full run (about 2-3 minutes), writes results/grid_gram.md
    python benchmarks/grid_gram.py --quick         # 256 and 512 only
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from harness import fmt_time, markdown_table, write_result

from kernel_recovery.model.grid import GridSpec, build_grid_problem, grid_statistics, statistics_path


def problem(n: int, k: int, rng: np.random.Generator):
    x = rng.standard_normal((n, n))
    y = rng.standard_normal((n - k + 1, n - k + 1))
    return build_grid_problem(x, y, GridSpec.create((k, k)))


def timed(n: int, k: int, path: str, seed: int):
    pr = problem(n, k, np.random.default_rng(seed))
    t0 = time.perf_counter()
    stats = grid_statistics(pr, 0, path)
    return time.perf_counter() - t0, stats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="images of 256 and 512 only")
    ap.add_argument("--limit", type=float, default=60.0, help="skip an im2col call predicted to take longer (s)")
    ap.add_argument("--budget", type=float, default=120.0, help="im2col seconds in all before the rest is skipped")
    args = ap.parse_args()
    sizes = (256, 512) if args.quick else (256, 512, 1024, 2048)
    cases = sorted(((n, k) for k in (5, 15, 31) for n in sizes), key=lambda c: (c[1], c[0]))
    rate = None  # im2col multiply-adds per second, from the largest call measured
    largest, spent = 0.0, 0.0
    rows = []
    for n, k in cases:
        m = n - k + 1
        p = k * k
        madds = float(m * m * p * (p + 1))
        t_new, new = timed(n, k, "fft", 0)
        auto = statistics_path(problem(n, k, np.random.default_rng(0)))
        predicted = madds / rate if rate else 0.0
        if predicted <= args.limit and spent + predicted <= args.budget:
            t_old, old = timed(n, k, "im2col", 0)
            spent += t_old
            if madds >= largest:
                largest, rate = madds, madds / t_old
            diff = np.max(np.abs(new.gram - old.gram)) / np.max(np.abs(old.gram))
            old_s, diff_s = fmt_time(t_old), f"{diff:.1e}"
        else:
            t_old = predicted
            old_s, diff_s = f"~{fmt_time(t_old)} (extrapolated)", "-"
        row = {
            "kernel": f"{k}x{k}",
            "image": f"{n}x{n}",
            "im2col GMadd": f"{madds / 1e9:.3g}",
            "im2col (old)": old_s,
            "fft (new)": fmt_time(t_new),
            "old / new": f"{'~' if diff_s == '-' else ''}{t_old / t_new:.3g}x",
            "rel. diff": diff_s,
            "auto": auto,
        }
        rows.append(row)
        print(" | ".join(str(v) for v in row.values()), flush=True)
    columns = ["kernel", "image", "im2col GMadd", "im2col (old)", "fft (new)", "old / new", "rel. diff", "auto"]
    body = (
        "`grid_statistics(problem, 0, path)` of a real one-channel image with its valid output (A^T A, A^T y, "
        "y^T y), one call per path in one process. GMadd: the im2col path's multiply-adds, rows x P x (P + 1). "
        f'"~": not run (predicted over {args.limit:g} s, or the im2col budget of {args.budget:g} s spent), '
        f"extrapolated at the rate of the largest im2col call measured ({(rate or 0) / 1e9:.2f} GMadd/s). "
        "rel. diff: max |G_fft - G_im2col| / max |G_im2col|. auto: the path `grid_statistics` picks by its cost "
        "model (`statistics_path`).\n\n" + markdown_table(rows, columns)
    )
    write_result("grid_gram", "Exact grid Gram: im2col sums vs lagged correlations by FFT", body, args.quick)


if __name__ == "__main__":
    main()
