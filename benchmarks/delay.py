"""Delay and length from the data (issue 15): a simulated room impulse response with an unknown bulk delay.

A pyroomacoustics shoebox room (6 x 4 x 3 m, absorption 0.35, image sources to order 12) at 16 kHz gives the
response, trimmed to start at its first sample above 1% of its peak and cut to 2989 taps; the measurement adds a
bulk delay of 350 samples unknown to the caller: ``y[t] = sum_i h[i] x[t - 350 - i]`` on x's time axis, 5 s of
white or AR(1) (0.9) excitation, noise at 40 dB SNR.  ``kr.select_lags`` (prewhitened-correlation seed, nested
scans by Levinson on the Toeplitz Gram, BIC, then the fit) against ``recover_kernel`` with the true lags: the
chosen lags, the kernel error (on the union of the lags, relative to the true kernel) and the time of each, side
by side.

    python benchmarks/delay.py [--quick]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import scipy.signal
from harness import fmt_time, markdown_table, measure, write_result

import kernel_recovery as kr


def room_response(fs: int, taps: int) -> np.ndarray:
    import pyroomacoustics as pra

    room = pra.ShoeBox([6.0, 4.0, 3.0], fs=fs, materials=pra.Material(0.35), max_order=12)
    room.add_source([1.5, 1.2, 1.6])
    room.add_microphone([4.2, 2.9, 1.4])
    room.compute_rir()
    h = np.asarray(room.rir[0][0], dtype=float)
    start = int(np.argmax(np.abs(h) > 1e-2 * np.abs(h).max()))
    return h[start : start + taps]


def kernel_error(kernel: np.ndarray, lags: tuple[int, int], h: np.ndarray, first: int) -> float:
    """``||estimate - truth|| / ||truth||`` over the union of the estimated and the true lags."""
    lo, hi = min(lags[0], first), max(lags[1], first + len(h) - 1)
    est, ref = np.zeros(hi - lo + 1), np.zeros(hi - lo + 1)
    est[lags[0] - lo : lags[1] - lo + 1] = kernel.ravel()
    ref[first - lo : first - lo + len(h)] = h
    return float(np.linalg.norm(est - ref) / np.linalg.norm(h))


def one_case(kind: str, h: np.ndarray, n: int, delay: int, repeat: int, rng) -> dict:
    x = rng.standard_normal(n)
    if kind.startswith("AR(1)"):
        x = scipy.signal.lfilter([1.0], [1.0, -0.9], x)
    clean = np.concatenate([np.zeros(delay), np.convolve(x, h)[: n - delay]])
    y = clean + 10 ** (-40 / 20) * clean.std() * rng.standard_normal(n)
    true = (delay, delay + len(h) - 1)
    ref = measure(lambda: kr.recover_kernel(x, y, lags=true, flip=True), repeat=repeat)
    auto = measure(lambda: kr.select_lags(x, y), repeat=repeat)
    sel = auto["value"]
    e_ref = kernel_error(ref["value"].kernel, true, h, delay)
    e_auto = kernel_error(sel.result.kernel, sel.lags, h, delay)
    return {
        "excitation": kind,
        "true (first, last)": str(true),
        "chosen (first, last)": str(sel.lags),
        "end of response": str(sel.end_of_response),
        "error, true lags": f"{e_ref:.3g}",
        "error, chosen": f"{e_auto:.3g}",
        "error ratio": f"{e_auto / e_ref:.2f}",
        "time, true lags": fmt_time(ref["median"]),
        "time, select_lags": fmt_time(auto["median"]),
        "time ratio": f"{auto['median'] / ref['median']:.1f}",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short record and response (seconds)")
    args = parser.parse_args(argv)
    fs = 16000
    n, taps, delay, repeat = (16000, 600, 350, 1) if args.quick else (5 * fs, 2989, 350, 3)
    h = room_response(fs, taps)
    rng = np.random.default_rng(0)
    rows = [one_case(kind, h, n, delay, repeat, rng) for kind in ("white", "AR(1) 0.9")]
    columns = list(rows[0])
    body = (
        f"Room impulse response of {taps} taps (pyroomacoustics), bulk delay {delay} samples unknown to the caller, "
        f"{n} samples at {fs} Hz, 40 dB SNR.  `select_lags` (seed, nested scans, BIC, the fit) against "
        f"`recover_kernel(..., lags=true)`; median of {repeat} run(s).\n\n" + markdown_table(rows, columns)
    )
    write_result("delay", "Delay and length from the data", body, args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
