"""Accuracy: kernel error against noise level for every method, with the Cramer-Rao bound.

    python benchmarks/accuracy.py            # full sweep (a few minutes), table + PNG
    python benchmarks/accuracy.py --quick    # smoke run, seconds

Scenarios: Gaussian and Laplace noise; a short and a long record; a white (well-conditioned) and a colored
(ill-conditioned) input; and underdetermined setups, where we show what each method returns next to the
analyzer's verdict.  The error is the root-mean-square kernel error over Monte Carlo trials; the bound is
the Cramer-Rao bound for Gaussian noise, sigma * sqrt(trace((A^T A)^-1) / n_taps) (from analyze()).
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
import scipy.signal
from harness import RESULTS, markdown_table, write_result

import kernel_recovery as kr
from kernel_recovery import solvers

K = 16


def make_input(rng, length, colored):
    x = rng.standard_normal(length)
    if colored:
        b, a = scipy.signal.butter(4, 0.15)
        x = scipy.signal.lfilter(b, a, x)
        x /= x.std()
    return x


def noise(rng, kind, size, sigma):
    if kind == "gaussian":
        return sigma * rng.standard_normal(size)
    return rng.laplace(scale=sigma / np.sqrt(2), size=size)  # same variance


def run_sweep(quick: bool):
    rng = np.random.default_rng(0)
    kernel = rng.standard_normal(K) * np.exp(-np.arange(K) / 5)
    sigmas = [1e-3, 1e-1] if quick else [1e-4, 1e-3, 1e-2, 1e-1, 1.0]
    trials = 2 if quick else 20
    scenarios = [
        ("white, L=200, gaussian", 200, False, "gaussian"),
        ("white, L=200, laplace", 200, False, "laplace"),
        ("white, L=5000, gaussian", 5000, False, "gaussian"),
        ("colored, L=5000, gaussian", 5000, True, "gaussian"),
    ]
    if quick:
        scenarios = scenarios[:2]
    rows, curves = [], {}
    for name, length, colored, kind in scenarios:
        for sigma in sigmas:
            errs = {m: [] for m in solvers.METHODS}
            bounds = []
            for _ in range(trials):
                x = make_input(rng, length, colored)
                clean = kr.conv1d(x, kernel)
                y = clean + noise(rng, kind, clean.shape, sigma)
                rep = kr.analyze(x, None, K, warn=False)
                bounds.append(sigma * rep.error_per_unit_noise[0] / np.sqrt(K))
                for m in solvers.METHODS:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        res = kr.recover_kernel(x, y, K, method=m)
                    errs[m].append(np.sqrt(np.mean((res.kernel.ravel() - kernel) ** 2)))
            crb = float(np.sqrt(np.mean(np.square(bounds))))
            row = {"scenario": name, "sigma": f"{sigma:g}", "CRB (rms/tap)": f"{crb:.2e}"}
            for m in solvers.METHODS:
                rms = float(np.sqrt(np.mean(np.square(errs[m]))))
                row[m] = f"{rms:.2e} ({rms / crb:.2f}x)"
                curves.setdefault((name, m), []).append((sigma, rms))
            curves.setdefault((name, "CRB"), []).append((sigma, crb))
            rows.append(row)
    return rows, curves


def underdetermined_rows():
    rng = np.random.default_rng(1)
    kernel = rng.standard_normal(6)
    cases = [
        ("5 equations, 6 unknowns", rng.standard_normal(10)),
        ("constant input", np.full(40, 1.5)),
        ("one sinusoid", np.sin(0.4 * np.arange(60))),
    ]
    rows = []
    for name, x in cases:
        y = kr.conv1d(x, kernel)
        rep = kr.analyze(x, y, 6, warn=False)
        for m in solvers.METHODS:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res = kr.recover_kernel(x, y, 6, method=m)
            rows.append(
                {
                    "case": name,
                    "verdict": f"{rep.status} (rank {rep.rank[0]}/{rep.unknowns[0]})",
                    "method": m,
                    "residual rms": f"{res.residual_rms:.1e}",
                    "kernel norm": f"{np.linalg.norm(res.kernel):.3f}",
                    "true norm": f"{np.linalg.norm(kernel):.3f}",
                    "success": res.success,
                }
            )
    return rows


def plot(curves, path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    names = sorted({n for n, _ in curves}, key=lambda n: list(dict.fromkeys(k[0] for k in curves)).index(n))
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.8), squeeze=False)
    for ax, name in zip(axes[0], names):
        for (n, m), pts in curves.items():
            if n != name:
                continue
            s, e = zip(*pts)
            style = dict(color="black", linestyle="--", linewidth=2) if m == "CRB" else dict(marker="o")
            ax.loglog(s, e, label=m, **style)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("noise sigma")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("rms kernel error per tap")
    axes[0][0].legend(fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    rows, curves = run_sweep(args.quick)
    under = underdetermined_rows()
    png = plot(curves, RESULTS / ("accuracy_quick.png" if args.quick else "accuracy.png"))
    body = (
        f"Kernel of {K} taps, {2 if args.quick else 20} Monte Carlo trials per cell. Each method's cell: rms kernel "
        "error per tap (ratio to the Cramer-Rao bound for Gaussian noise).\n\n"
        + markdown_table(rows, ["scenario", "sigma", "CRB (rms/tap)", *solvers.METHODS])
        + "\n\n## Underdetermined setups: what each method returns\n\n"
        + markdown_table(under, ["case", "verdict", "method", "residual rms", "kernel norm", "true norm", "success"])
        + (f"\n\n![accuracy]({png.name})" if png else "\n\n(matplotlib not installed: no plot)")
    )
    write_result("accuracy", "Accuracy against noise, with the Cramer-Rao bound", body, args.quick)


if __name__ == "__main__":
    main()
