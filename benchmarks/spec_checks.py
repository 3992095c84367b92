"""Cost of the specification tests and the whiteness check (issue 27), side by side in one process.

For L = 1e3 / 1e4 / 1e5 single-channel lstsq fits (K = 8 / 32 / 128, white input, 1% noise) it times, interleaved and
best of ``--repeat``:

- ``none``: ``recover_kernel(x, y, K, checks="none")``, the call without post-fit checks;
- ``four``: :func:`kernel_recovery.diagnostics.checks.run_checks` over ``saturation, missing_bias, nonlinearity,
  whiteness`` on that fit's problem and solution (a fresh ``Fit`` each time: the shared residual rows are recomputed),
  the runner's own overhead included;
- each of the four alone (its record's ``seconds`` in that run).

``--against REV`` loads the package of git revision ``REV`` (``git archive``) beside the working tree's and times both
in the same loop, so that the ratios compare like with like on a shared machine.  The goal of the issue: the four
together at most ~10% of the ``none`` call.

    python benchmarks/spec_checks.py [--against HEAD] [--repeat 200] [--quick]
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
from harness import checks_inputs, package_at

NAMES = ("saturation", "missing_bias", "nonlinearity", "whiteness")
SIZES = ((1000, 8), (10_000, 32), (100_000, 128))


def capture(pkg, x, y, k):
    """The problem, solution and Fit that one budgeted call hands to run_checks, and the four checks."""
    checks, problem, sol, fit = checks_inputs(pkg, x, y, k)
    return checks, problem, sol, fit, tuple(getattr(checks, n) for n in NAMES)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--against", default=None, help="a git revision to time beside the working tree")
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="3 repeats (a smoke run: the script does not rot)")
    args = parser.parse_args()
    if args.quick:
        args.repeat = 3
    pkgs = {"tree": package_at(None)}
    if args.against:
        pkgs[args.against] = package_at(args.against)
    rng = np.random.default_rng(0)
    print(f"| L | K | package | none ms | four ms | four / none | {' | '.join(NAMES)} (ms) |")
    print("|---|---|---|---|---|---|" + "---|" * len(NAMES))
    for n, k in SIZES:
        x = rng.standard_normal(n)
        w = rng.standard_normal(k)
        y = np.convolve(x, w[::-1], mode="valid")
        y = y + 0.01 * y.std() * rng.standard_normal(len(y))
        setups = {name: capture(pkg, x, y, k) for name, pkg in pkgs.items()}
        best = {name: {"none": np.inf, "four": np.inf, **{c: np.inf for c in NAMES}} for name in pkgs}
        for _ in range(args.repeat):
            for name, pkg in pkgs.items():  # interleaved: the machine's drift hits both alike
                checks, problem, sol, fit, four = setups[name]
                start = time.perf_counter()
                pkg.recover_kernel(x, y, k, checks="none")
                best[name]["none"] = min(best[name]["none"], time.perf_counter() - start)
                fresh = dataclasses.replace(fit, shared={})
                start = time.perf_counter()
                records = checks.run_checks(problem, sol, fresh, four)
                best[name]["four"] = min(best[name]["four"], time.perf_counter() - start)
                for record in records:
                    best[name][record.name] = min(best[name][record.name], record.seconds)
        for name in pkgs:
            b = best[name]
            each = " | ".join(f"{1e3 * b[c]:.3f}" for c in NAMES)
            print(
                f"| {n} | {k} | {name} | {1e3 * b['none']:.3f} | {1e3 * b['four']:.3f} | {b['four'] / b['none']:.3f} "
                f"| {each} |"
            )


if __name__ == "__main__":
    main()
