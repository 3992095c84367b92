"""Analysis at scale: kr.analyze on long records, from the sufficient statistics, against a memory pass.

analyze() builds the Gram A^T A once (statistics.block_statistics) and then only works on (K*Cin)^2-sized
matrices, so its cost should be a small multiple of one pass over the data.  The baseline an analysis
without sufficient statistics would need, an SVD of the explicit design, is timed where it fits in memory.

    python benchmarks/analyze_speed.py            # 1e6 and 1e7 samples (a few minutes)
    python benchmarks/analyze_speed.py --quick    # 1e5 and 1e6 samples (seconds)
"""

from __future__ import annotations

import argparse
import sys
import warnings

import numpy as np
from harness import RESULTS, fmt_time, machine, markdown_table, measure

import kernel_recovery as kr

EXPLICIT_MAX = 4_000_000  # entries of the explicit design we are willing to SVD (32 MB)


def signal(kind: str, length: int, channels: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "white noise":
        return rng.standard_normal((length, channels))
    t = np.arange(length)[:, None]
    return np.sin(0.3 * t + np.arange(channels)) + 0.5 * np.sin(1.1 * t)  # 2 sinusoids: rank-deficient


def run(length: int, k: int, c: int, kind: str, repeat: int) -> dict:
    x = signal(kind, length, c)
    mem = measure(lambda: float(np.sum(x)), repeat=repeat)["median"]

    def call():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return kr.analyze(x, None, k, warn=False)

    m = measure(call, repeat=repeat)
    rep = m["value"]
    rows = (length - k + 1) * k * c
    if rows <= EXPLICIT_MAX:
        a = np.lib.stride_tricks.sliding_window_view(x, k, axis=0).transpose(0, 2, 1).reshape(length - k + 1, k * c)
        svd = measure(lambda: np.linalg.svd(a, compute_uv=False), repeat=repeat)["median"]
        svd_text = fmt_time(svd)
    else:
        svd_text = f"- (design {rows * 8 / 1e9:.1f} GB)"
    return {
        "L": f"{length:.0e}",
        "K": k,
        "Cin": c,
        "input": kind,
        "analyze": fmt_time(m["median"]),
        "memory pass": fmt_time(mem),
        "ratio": f"{m['median'] / mem:.0f}x",
        "explicit SVD": svd_text,
        "rank": f"{rep.rank[0]}/{rep.unknowns[0]}",
        "exact_rank": rep.exact_rank,
        "causes": ",".join(rep.cause_codes) or "-",
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, a few seconds")
    args = parser.parse_args(argv)
    if args.quick:
        cases, repeat = [(100_000, 16, 1), (1_000_000, 16, 1)], 3
    else:
        cases, repeat = [(1_000_000, 16, 1), (10_000_000, 16, 1), (10_000_000, 8, 4)], 3
    rows = []
    for length, k, c in cases:
        for kind in ("white noise", "two sinusoids"):
            row = run(length, k, c, kind, repeat)
            rows.append(row)
            print(row, file=sys.stderr)
    cols = ["L", "K", "Cin", "input", "analyze", "memory pass", "ratio", "explicit SVD", "rank", "exact_rank", "causes"]
    table = markdown_table(rows, cols)
    name = "analyze_speed_quick" if args.quick else "analyze_speed"
    text = (
        f"# analyze() at scale{' (quick)' if args.quick else ''}\n\n"
        f"Median of {repeat} runs after a warm-up, per call (problem reduction + Gram + spectrum + diagnosis); "
        "'memory pass' is np.sum over x; 'explicit SVD' is numpy's SVD of the explicit design where it fits in "
        f"{EXPLICIT_MAX * 8 // 10**6} MB.\n\n{table}\n\nMachine: {machine()}\n"
    )
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
