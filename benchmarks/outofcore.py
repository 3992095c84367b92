"""Out of core: recover a Conv1D kernel from a float32 record on disk, in bounded memory.

A record of N samples (Cin = Cout = 2, kernel_size = 32, float32) is written to raw files under /tmp and
recovered three ways, each in a child process so that its peak resident memory (``ru_maxrss``) is its own:

* ``memmap``: ``kr.recover_kernel`` on ``np.memmap`` views (streamed through NormalEquations, chunk by chunk);
* ``dask``: the same files as Dask arrays (``da.from_array(memmap)``), the local threaded scheduler;
* ``in-memory``: the arrays loaded into RAM first (a smaller record: the baseline time per sample).

The ratio compares time per sample, streaming / in-memory.  Target: N = 1e8 streamed with peak RSS <= 500 MB
and a ratio <= 2.

    python benchmarks/outofcore.py            # 1e8 samples streamed, 1e7 in memory (several minutes)
    python benchmarks/outofcore.py --quick    # 1e6 samples (seconds)
"""

from __future__ import annotations

import argparse
import json
import pathlib
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

K, CIN, COUT = 32, 2, 2
NOISE = 0.01
GEN_CHUNK = 1 << 22


def true_kernel() -> np.ndarray:
    return np.random.default_rng(1).standard_normal((K, CIN, COUT)) / np.sqrt(K * CIN)


def write_record(directory: pathlib.Path, n: int) -> tuple[pathlib.Path, pathlib.Path]:
    """x (n, 2) and y (n - K + 1, 2) as raw float32 files, written chunk by chunk (y by scipy's FFT correlate)."""
    import scipy.signal

    w = true_kernel()
    rng = np.random.default_rng(0)
    xp, yp = directory / f"x_{n}.f32", directory / f"y_{n}.f32"
    tail = np.zeros((0, CIN), dtype=np.float32)
    with open(xp, "wb") as fx, open(yp, "wb") as fy:
        for start in range(0, n, GEN_CHUNK):
            x = rng.standard_normal((min(GEN_CHUNK, n - start), CIN)).astype(np.float32)
            fx.write(x.tobytes())
            seg = np.concatenate([tail, x]).astype(np.float64)  # K - 1 samples of halo from the previous chunk
            if len(seg) >= K:
                y = np.stack(
                    [
                        sum(
                            scipy.signal.correlate(seg[:, c], w[:, c, o], mode="valid", method="fft")
                            for c in range(CIN)
                        )
                        for o in range(COUT)
                    ],
                    axis=1,
                )
                y += NOISE * rng.standard_normal(y.shape)
                fy.write(y.astype(np.float32).tobytes())
            tail = seg[-(K - 1) :].astype(np.float32)
    return xp, yp


def child(mode: str, xpath: str, ypath: str, n: int, repeat: int, chunk: int) -> None:
    """Runs in a fresh process: time ``repeat`` recoveries after a warm-up; print JSON with the peak RSS."""
    import kernel_recovery as kr

    xm = np.memmap(xpath, dtype=np.float32, mode="r", shape=(n, CIN))
    ym = np.memmap(ypath, dtype=np.float32, mode="r", shape=(n - K + 1, COUT))
    if mode == "memmap":

        def run():
            return kr.recover_kernel(xm, ym, K, chunk_size=chunk)

    elif mode == "dask":
        import dask
        import dask.array as da

        dask.config.set(scheduler="threads")
        xd, yd = da.from_array(xm, chunks=(chunk, CIN)), da.from_array(ym, chunks=(chunk, COUT))

        def run():
            return kr.recover_kernel(xd, yd, K)

    else:
        x, y = np.array(xm), np.array(ym)  # loaded into RAM (float32, as read from disk)
        del xm, ym

        def run():
            return kr.recover_kernel(x, y, K)

    res = run()  # warm-up (page cache, imports)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        res = run()
        times.append(time.perf_counter() - t0)
    err = float(np.max(np.abs(res.kernel - true_kernel())))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"median": statistics.median(times), "min": min(times), "max": max(times), "rss_mb": rss,
                      "error": err, "solver": res.diagnostics.get("solver")}))  # fmt: skip


def run_child(mode: str, xp, yp, n: int, repeat: int, chunk: int) -> dict:
    cmd = [sys.executable, __file__, "--child", mode, str(xp), str(yp), str(n), str(repeat), str(chunk)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        mode, xp, yp, n, repeat, chunk = sys.argv[2:8]
        child(mode, xp, yp, int(n), int(repeat), int(chunk))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--write":
        write_record(pathlib.Path(sys.argv[2]), int(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1e6 samples (seconds)")
    parser.add_argument("--chunk", type=int, default=1 << 20, help="samples per chunk (default 2**20)")
    args = parser.parse_args()
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
    from harness import RESULTS, fmt_time, machine, markdown_table

    n_stream, n_mem = (10**6, 10**6) if args.quick else (10**8, 10**7)
    repeat = 5 if args.quick else 3
    rows = []
    with tempfile.TemporaryDirectory(dir="/tmp", prefix="kr_outofcore_") as tmp:
        tmp = pathlib.Path(tmp)
        t0 = time.perf_counter()
        # written by a child process: Linux carries a parent's peak RSS into children it spawns (ru_maxrss
        # survives exec), so this process must stay small for the children's figures to be their own
        for n in sorted({n_stream, n_mem}):
            subprocess.run([sys.executable, __file__, "--write", str(tmp), str(n)], check=True)
        files = {n: (tmp / f"x_{n}.f32", tmp / f"y_{n}.f32") for n in sorted({n_stream, n_mem})}
        print(f"wrote {', '.join(f'{n:.0e}' for n in files)} samples to {tmp} in {time.perf_counter() - t0:.1f} s")
        mem = run_child("in-memory", *files[n_mem], n_mem, repeat, args.chunk)
        per_mem = mem["median"] / n_mem
        runs = [("in-memory (np.ndarray)", n_mem, mem)]
        runs.append(
            ("np.memmap, streamed", n_stream, run_child("memmap", *files[n_stream], n_stream, repeat, args.chunk))
        )
        # Dask over the same memmap, on the smaller record (its mapped pages stay resident, see docs/scaling.md)
        runs.append(
            ("Dask array of the memmap (threads)", n_mem, run_child("dask", *files[n_mem], n_mem, repeat, args.chunk))
        )
        for label, n, m in runs:
            per = m["median"] / n
            rows.append({
                "input": label, "samples": f"{n:.0e}", "time (median)": fmt_time(m["median"]),
                "range": f"{fmt_time(m['min'])}-{fmt_time(m['max'])}", "ns/sample": f"{per * 1e9:.1f}",
                "ratio vs in-memory": f"{per / per_mem:.2f}", "peak RSS": f"{m['rss_mb']:.0f} MB",
                "max kernel error": f"{m['error']:.1e}",
            })  # fmt: skip
    cols = ["input", "samples", "time (median)", "range", "ns/sample", "ratio vs in-memory", "peak RSS"]
    cols.append("max kernel error")
    table = markdown_table(rows, cols)
    stream = runs[1][2]
    verdict = (
        f"streamed {n_stream:.0e} samples: peak RSS {stream['rss_mb']:.0f} MB (target <= 500 MB), time per sample "
        f"{stream['median'] / n_stream / per_mem:.2f}x the in-memory path (target <= 2x)"
    )
    print(table)
    print(verdict)
    header = (
        f"# Out-of-core recovery ({'quick' if args.quick else 'full'} run)\n\n"
        f"Cin = Cout = {CIN}, kernel_size = {K}, float32 raw files on disk, noise {NOISE}; chunks of {args.chunk} "
        f"samples; median of {repeat} runs after a warm-up, each mode in its own process (peak RSS = its "
        f"ru_maxrss).\n\n{machine()}\n\n"
    )
    name = "outofcore_quick.md" if args.quick else "outofcore.md"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / name).write_text(header + table + "\n\n" + verdict + "\n")
    print(f"wrote {RESULTS / name}")


if __name__ == "__main__":
    main()
