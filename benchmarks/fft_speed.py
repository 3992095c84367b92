"""method="fft" against lstsq, PyLops lsqr and naive spectral division: time and error across L and K.

    python benchmarks/fft_speed.py            # full run (a few minutes): headline L=1e6, K=8192 + sweep
    python benchmarks/fft_speed.py --quick    # smoke run, seconds, no optional peers

Every problem is single channel, valid padding, a white input, noise of 1e-3 times the output's standard
deviation (and the headline also without noise), except the multichannel rows.  Solvers are timed on the
canonical problem (``build_problem`` + ``solve``, a fresh problem per run so that no cached statistics are
reused); ``recover_kernel`` adds the analyzer's report and the residual, which are method-independent.
Error: relative L2 error of the kernel against the true kernel.  Times are medians after a warm-up.

Peers: ``lstsq`` is kernel_recovery's own (as it is in this checkout); PyLops: ``lsqr`` on
``Restriction @ Convolve1D(h=x, method="fft") @ Pad`` (the reversed kernel, zero-padded, in; valid outputs out), run to
``atol = btol = 1e-10``; naive: ``irfft(conj(rfft(y) / rfft(x)))`` at a fast length, first K taps.
"""

from __future__ import annotations

import argparse

import numpy as np
import scipy.fft
from harness import fmt_time, markdown_table, measure, write_result

from kernel_recovery.model.problem import build_problem
from kernel_recovery.solvers import lstsq, spectral


def make(rng, length, k, noise, cin=1, cout=1):
    x = rng.standard_normal((length, cin))
    w = rng.standard_normal((k, cin, cout)) / np.sqrt(k * cin)
    size = scipy.fft.next_fast_len(length + k, real=True)
    xf = scipy.fft.rfft(x, size, axis=0)
    wf = scipy.fft.rfft(w, size, axis=0)
    # valid cross-correlation y[t] = sum_j x[t + j] w[j]
    y = scipy.fft.irfft(np.einsum("fc,fco->fo", xf, wf.conj()), size, axis=0)[: length - k + 1]
    y = y + noise * y.std() * rng.standard_normal(y.shape)
    return x, y, w


def run_fft(x, y, k):
    problem = build_problem(x, y, k)
    sol = spectral.solve(problem)
    return problem.from_canonical(sol.kernels), sol


def run_lstsq(x, y, k):
    problem = build_problem(x, y, k)
    sol = lstsq.solve(problem)
    return problem.from_canonical(sol.kernels), sol


def run_naive(x, y, k):
    size = scipy.fft.next_fast_len(len(x), real=True)
    xf = scipy.fft.rfft(x[:, 0], size)
    yf = scipy.fft.rfft(y[:, 0], size)
    return scipy.fft.irfft(yf.conj() / xf.conj(), size)[:k].reshape(k, 1, 1), None  # Y = X conj(W)


def run_pylops(x, y, k):
    import pylops

    n = len(x)
    # the model is the reversed kernel, convolved with x; Restriction keeps the valid outputs
    op = (
        pylops.Restriction(n, np.arange(len(y)))
        @ pylops.signalprocessing.Convolve1D(n, h=x[:, 0], offset=k - 1, method="fft")
        @ pylops.Pad(k, (0, n - k))
    )
    out = pylops.optimization.basic.lsqr(op, y[:, 0], x0=np.zeros(k), niter=500, atol=1e-10, btol=1e-10)
    return out[0][::-1].reshape(k, 1, 1), int(out[2])


def error(kernel, w) -> float:
    return float(np.linalg.norm(kernel - w) / np.linalg.norm(w))


def check_pylops_operator(rng):
    """The PyLops operator must be the same valid correlation as ours (else its timing means nothing)."""
    x, y, w = make(rng, 300, 7, 0.0)
    kernel, _ = run_pylops(x, y, 7)
    assert error(kernel, w) < 1e-8, "the PyLops operator does not match the problem"


def headline(rng, quick: bool):
    length, k = (20_000, 512) if quick else (1_000_000, 8192)
    repeat = 3
    rows = []
    for noise in (0.0, 1e-3):
        x, y, w = make(rng, length, k, noise)
        cases = [("fft", run_fft), ("lstsq", run_lstsq), ("naive division", run_naive)]
        if not quick:
            cases.insert(2, ("PyLops lsqr (Convolve1D)", run_pylops))
        timed = {}
        for name, fn in cases:
            m = measure(lambda fn=fn, x=x, y=y, k=k: fn(x, y, k), repeat=1 if "PyLops" in name else repeat, warmup=1)
            timed[name] = m
        base = timed["fft"]["median"]
        for name, m in timed.items():
            kernel, extra = m["value"]
            note = ""
            if name == "fft":
                note = f"{extra.n_iterations} PCG steps, noise est. {extra.options['noise_level'][0]:.2e}"
            elif name == "lstsq":
                note = f"path {extra.diagnostics.get('solver')}"
            elif "PyLops" in name:
                note = f"{extra} lsqr iterations"
            rows.append(
                {
                    "noise": f"{noise:g}",
                    "method": name,
                    "time": fmt_time(m["median"]),
                    "time / fft": f"{m['median'] / base:.1f}x",
                    "kernel error": f"{error(kernel, w):.2e}",
                    "notes": note,
                }
            )
    title = f"Headline: single channel, valid, L={length:.0e}, K={k}"
    return title, markdown_table(rows, ["noise", "method", "time", "time / fft", "kernel error", "notes"])


def sweep(rng, quick: bool):
    lengths = [10_000] if quick else [10_000, 100_000, 1_000_000]
    kernels = [32, 256] if quick else [32, 512, 8192]
    rows = []
    for length in lengths:
        for k in kernels:
            if 4 * k > length:
                continue
            x, y, w = make(rng, length, k, 1e-3)
            res = {}
            for name, fn in (("fft", run_fft), ("lstsq", run_lstsq), ("naive", run_naive)):
                big = length * k >= 10**8
                res[name] = measure(lambda fn=fn, x=x, y=y, k=k: fn(x, y, k), repeat=2 if big else 5, warmup=1)
            e = {n: error(m["value"][0], w) for n, m in res.items()}
            rows.append(
                {
                    "L": f"{length:.0e}",
                    "K": k,
                    "fft time": fmt_time(res["fft"]["median"]),
                    "lstsq time": fmt_time(res["lstsq"]["median"]),
                    "lstsq / fft": f"{res['lstsq']['median'] / res['fft']['median']:.1f}x",
                    "naive time": fmt_time(res["naive"]["median"]),
                    "fft error": f"{e['fft']:.2e}",
                    "lstsq error": f"{e['lstsq']:.2e}",
                    "naive error": f"{e['naive']:.2e}",
                    "fft / lstsq error": f"{e['fft'] / e['lstsq']:.3f}",
                }
            )
    cols = list(rows[0])
    return markdown_table(rows, cols)


def multichannel(rng, quick: bool):
    configs = [(5_000, 32, 2, 2)] if quick else [(100_000, 64, 4, 4), (100_000, 256, 4, 4)]
    rows = []
    for length, k, cin, cout in configs:
        x, y, w = make(rng, length, k, 1e-3, cin, cout)
        res = {}
        for name, fn in (("fft", run_fft), ("lstsq", run_lstsq)):
            res[name] = measure(lambda fn=fn, x=x, y=y, k=k: fn(x, y, k), repeat=3, warmup=1)
        e = {n: error(m["value"][0], w) for n, m in res.items()}
        rows.append(
            {
                "L": f"{length:.0e}",
                "K": k,
                "Cin x Cout": f"{cin} x {cout}",
                "fft time": fmt_time(res["fft"]["median"]),
                "lstsq time": fmt_time(res["lstsq"]["median"]),
                "lstsq / fft": f"{res['lstsq']['median'] / res['fft']['median']:.1f}x",
                "fft error": f"{e['fft']:.2e}",
                "lstsq error": f"{e['lstsq']:.2e}",
            }
        )
    return markdown_table(rows, list(rows[0]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds, no optional peers")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    if not args.quick:
        check_pylops_operator(rng)
    title, head = headline(rng, args.quick)
    body = [
        f"## {title}",
        "",
        head,
        "",
        "## Sweep: time and error across L and K (noise 1e-3)",
        "",
        sweep(rng, args.quick),
        "",
        "## Multichannel (MIMO), one record, valid (noise 1e-3)",
        "",
        multichannel(rng, args.quick),
        "",
        "Solver time on the canonical problem (build_problem + solve), median after a warm-up; the analyzer's "
        "report that recover_kernel adds is not included. Error: ||w_hat - w|| / ||w||.",
    ]
    write_result("fft_speed", "method='fft': speed and accuracy against lstsq, PyLops and naive division",
                 "\n".join(body), args.quick)  # fmt: skip


if __name__ == "__main__":
    main()
