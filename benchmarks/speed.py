"""Speed and scale: time and peak memory against length, kernel size and channels, for every method.

    python benchmarks/speed.py            # full sweep (several minutes), table + PNG
    python benchmarks/speed.py --quick    # smoke run, seconds

The physical reference is a memory pass over the data (np.sum of x and y): the ratio column says how many
memory passes each recovery costs.  Peak memory is the peak of NumPy allocations during the call
(tracemalloc; JAX's own buffers are not counted).  Once a method takes longer than the time budget in a sweep,
its larger sizes are skipped (reported as such).
"""

from __future__ import annotations

import argparse
import tracemalloc
import warnings

import numpy as np
from harness import RESULTS, fmt_time, markdown_table, measure, write_result

import kernel_recovery as kr
from kernel_recovery import solvers

BUDGET_S = 5.0


def make(length, k, c, seed=0):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((k, c, c)) / np.sqrt(k * c)
    x = rng.standard_normal((length, c))
    y = kr.conv1d(x, w) + 1e-3 * rng.standard_normal((length - k + 1, c))
    return x, y, w


def run_case(method, x, y, k, repeat):
    def call():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return kr.recover_kernel(x, y, k, method=method)

    tracemalloc.start()
    res = call()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    m = measure(call, repeat=repeat, warmup=0)
    m["value"] = res
    return m, peak


def sweep(label, cases, quick):
    rows, curve = [], {}
    over = set()
    for length, k, c in cases:
        x, y, w = make(length, k, c)
        mem = measure(lambda x=x, y=y: float(np.sum(x)) + float(np.sum(y)), repeat=5, warmup=1)["median"]
        for method in solvers.METHODS:
            row = {"sweep": label, "L": f"{length:.0e}", "K": k, "C": c, "method": method, "memory pass": fmt_time(mem)}
            if method in over:
                row.update(time="skipped (over budget)")
                rows.append(row)
                continue
            m, peak = run_case(method, x, y, k, repeat=1 if quick or length * k * c > 1e7 else 3)
            if m["median"] > BUDGET_S:  # warm time: a first call's compilation does not count
                over.add(method)
            res = m["value"]
            err = float(np.max(np.abs(res.kernel - w)))
            row.update(
                time=fmt_time(m["median"]),
                ratio=f"{m['median'] / mem:.0f}x",
                peak=f"{peak / 2**20:.0f} MB",
                error=f"{err:.1e}",
            )
            rows.append(row)
            curve.setdefault(method, []).append(({"length": length, "kernel size": k, "channels": c}, m["median"]))
    return rows, curve


def plot(curves, path):
    try:
        import matplotlib
        import matplotlib.ticker

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, axes = plt.subplots(1, len(curves), figsize=(4.4 * len(curves), 3.8), squeeze=False)
    for ax, (label, (key, curve)) in zip(axes[0], curves.items()):
        for method, pts in curve.items():
            xs = [p[key] for p, _ in pts]
            ax.loglog(xs, [t for _, t in pts], marker="o", label=method)
        ticks = sorted({p[key] for pts in curve.values() for p, _ in pts})
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.yaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel(key)
        ax.set_title(label, fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("time (s)")
    axes[0][0].legend(fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    q = args.quick
    lengths = [1_000, 10_000] if q else [1_000, 10_000, 100_000, 1_000_000, 10_000_000]
    ksizes = [4, 64] if q else [4, 32, 256, 2048, 8192]
    chans = [1, 2] if q else [1, 2, 4, 8]
    all_rows, curves = [], {}
    for label, key, cases in [
        ("length (K=32, C=1)", "length", [(n, 32, 1) for n in lengths]),
        (
            "kernel size (L=1e5, C=1)" if not q else "kernel size (L=1e4, C=1)",
            "kernel size",
            [(10_000 if q else 100_000, k, 1) for k in ksizes],
        ),
        (
            "channels (L=1e5, K=32)" if not q else "channels (L=1e4, K=32)",
            "channels",
            [(10_000 if q else 100_000, 32, c) for c in chans],
        ),
    ]:
        rows, curve = sweep(label, cases, q)
        all_rows += rows
        curves[label] = (key, curve)
    png = plot(curves, RESULTS / ("speed_quick.png" if q else "speed.png"))
    body = (
        "Median time per call (default options), its ratio to a memory pass over x and y, NumPy peak memory, "
        "and the max kernel error (noise 1e-3).\n\n"
        + markdown_table(all_rows, ["sweep", "L", "K", "C", "method", "time", "memory pass", "ratio", "peak", "error"])
        + (f"\n\n![speed]({png.name})" if png else "")
    )
    write_result("speed", "Speed and scale", body, q)


if __name__ == "__main__":
    main()
