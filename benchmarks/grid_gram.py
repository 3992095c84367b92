"""The exact grid Gram at large sizes (issue 29): chunked im2col sums against lagged correlations by FFT.

For 2-D kernels of 5x5, 15x15 and 31x31 on 256^2 to 2048^2 images (one channel, real, valid padding, with the
outputs: ``A^T A``, ``A^T y`` and ``y^T y``), times :func:`kernel_recovery.model.grid.grid_statistics` on its two
paths side by side in one process, one call each: ``"im2col"`` (the chunked design GEMMs, ``rows x P^2``
multiply-adds) and ``"fft"`` (:mod:`kernel_recovery.model.grid_gram`), and prints which path ``"auto"`` takes
(:func:`~kernel_recovery.model.grid.statistics_path`).  Where both ran, the largest entry of the difference of the
Grams relative to the largest entry is printed.

Before each im2col call its time is predicted from a *strip* of the same image (the first few output rows, about
``--strip`` multiply-adds: at a fixed kernel size the im2col cost is linear in the rows); the call is skipped where
the prediction exceeds ``--limit`` seconds (or once the im2col calls have used ``--budget`` seconds), and the
extrapolated time is printed with "~".  ``--serial`` runs everything on one core (serial BLAS, one FFT worker): the
comparison is steadier on a loaded machine.

    python benchmarks/grid_gram.py                 # full run (about 2-3 minutes), writes results/grid_gram.md
    python benchmarks/grid_gram.py --quick         # 256 and 512 only
"""

from __future__ import annotations

import argparse
import contextlib
import time

import numpy as np
from harness import fmt_time, markdown_table, write_result

from kernel_recovery.model.grid import GridSpec, build_grid_problem, grid_statistics, statistics_path
from kernel_recovery.model.threads import serial_region


def problem(x: np.ndarray, y: np.ndarray, k: int):
    return build_grid_problem(x, y, GridSpec.create((k, k)))


def timed(x: np.ndarray, y: np.ndarray, k: int, path: str):
    pr = problem(x, y, k)
    t0 = time.perf_counter()
    stats = grid_statistics(pr, 0, path)
    return time.perf_counter() - t0, stats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="images of 256 and 512 only")
    ap.add_argument("--limit", type=float, default=60.0, help="skip an im2col call predicted to take longer (s)")
    ap.add_argument("--budget", type=float, default=150.0, help="im2col seconds in all before the rest is skipped")
    ap.add_argument("--strip", type=float, default=1e9, help="multiply-adds of the strip that predicts im2col")
    ap.add_argument("--serial", action="store_true", help="one core: serial BLAS and one FFT worker")
    args = ap.parse_args()
    sizes = (256, 512) if args.quick else (256, 512, 1024, 2048)
    spent = 0.0
    rows = []
    scope = serial_region() if args.serial else contextlib.nullcontext()
    with scope:
        for n in sizes:
            for k in (5, 15, 31):
                rng = np.random.default_rng(n + k)
                m = n - k + 1
                x, y = rng.standard_normal((n, n)), rng.standard_normal((m, m))
                p = k * k
                madds = float(m * m * p * (p + 1))
                t_new, new = timed(x, y, k, "fft")
                auto = statistics_path(problem(x, y, k))
                strip = min(m, max(1, int(args.strip / (m * p * (p + 1)))))
                t_strip, _ = timed(x[: strip + k - 1], y[:strip], k, "im2col")
                predicted = t_strip * m / strip
                if predicted <= args.limit and spent + predicted <= args.budget:
                    t_old, old = timed(x, y, k, "im2col")
                    spent += t_old
                    diff = np.max(np.abs(new.gram - old.gram)) / np.max(np.abs(old.gram))
                    old_s, diff_s, mark = fmt_time(t_old), f"{diff:.1e}", ""
                else:
                    t_old, mark = predicted, "~"
                    old_s, diff_s = f"~{fmt_time(t_old)} ({strip} of {m} output rows x {m / strip:.3g})", "-"
                row = {
                    "kernel": f"{k}x{k}",
                    "image": f"{n}x{n}",
                    "im2col GMadd": f"{madds / 1e9:.3g}",
                    "im2col GMadd/s": f"{madds / t_old / 1e9:.2f}",
                    "im2col (old)": old_s,
                    "fft (new)": fmt_time(t_new),
                    "old / new": f"{mark}{t_old / t_new:.3g}x",
                    "rel. diff": diff_s,
                    "auto": auto,
                }
                rows.append(row)
                print(" | ".join(str(v) for v in row.values()), flush=True)
    rows.sort(key=lambda r: (int(r["kernel"].split("x")[0]), int(r["image"].split("x")[0])))
    columns = list(rows[0])
    body = (
        "`grid_statistics(problem, 0, path)` of a real one-channel image with its valid output (A^T A, A^T y, "
        f"y^T y), one call per path in one process{' on one core (--serial)' if args.serial else ''}. GMadd: the "
        'im2col path\'s multiply-adds, rows x P x (P + 1). "~": not run (predicted over '
        f"{args.limit:g} s, or the im2col budget of {args.budget:g} s spent): the time of a strip of the first "
        "output rows of the same image, scaled by the rows. rel. diff: max |G_fft - G_im2col| / max |G_im2col|. "
        "auto: the path `grid_statistics` picks by its cost model (`statistics_path`).\n\n"
        + markdown_table(rows, columns)
    )
    name = "grid_gram_serial" if args.serial else "grid_gram"
    write_result(name, "Exact grid Gram: im2col sums vs lagged correlations by FFT", body, args.quick)


if __name__ == "__main__":
    main()
