"""What the post-fit checks cost beyond the change test, the lag scan and the kernel-size check (issue 27).

For single-channel lstsq fits (white input, 1% noise) at L = 1e3 / 1e4 / 1e5 (K = 8 / 32 / 128) it times, interleaved
and best of ``--repeat``, :func:`kernel_recovery.diagnostics.checks.run_checks` over every check on the problem,
solution and ``Fit`` of one budgeted call (a fresh ``Fit`` each time: the shared residual rows are recomputed), and
subtracts the ``seconds`` of the three costly checks (``kernel_size``, ``lag_scan``, ``change``, whose bodies live in
``support.py`` and ``changes.py``).  What is left, ``rest``, is the orchestration (the records, the gates, the shared
forward pass) and the small checks (misconfiguration, negative lags, saturation, missing bias, nonlinearity,
whiteness); ``small`` is the four specification and whiteness checks' own ``seconds``.  ``none`` is the call with
``checks="none"``.

``--against REV`` loads the package of git revision ``REV`` beside the working tree's and times both in the same loop,
so that the ratios compare like with like on a shared machine.

    python benchmarks/checks_overhead.py [--against HEAD] [--repeat 300] [--quick]
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
from harness import checks_inputs, package_at

COSTLY = ("kernel_size", "lag_scan", "change")
SMALL = ("saturation", "missing_bias", "nonlinearity", "whiteness")
SIZES = ((1000, 8), (10_000, 32), (100_000, 128))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--against", default=None, help="a git revision to time beside the working tree")
    parser.add_argument("--repeat", type=int, default=300)
    parser.add_argument("--quick", action="store_true", help="3 repeats (a smoke run: the script does not rot)")
    args = parser.parse_args()
    if args.quick:
        args.repeat = 3
    pkgs = {"tree": package_at(None)}
    if args.against:
        pkgs[args.against] = package_at(args.against)
    rng = np.random.default_rng(0)
    print("| L | K | package | none ms | rest ms | small ms | rest / none | rest / tree's |")
    print("|---|---|---|---|---|---|---|---|")
    for n, k in SIZES:
        x = rng.standard_normal(n)
        w = rng.standard_normal(k)
        y = np.convolve(x, w[::-1], mode="valid")
        y = y + 0.01 * y.std() * rng.standard_normal(len(y))
        setups = {name: checks_inputs(pkg, x, y, k) for name, pkg in pkgs.items()}
        best = {name: {"none": np.inf, "rest": np.inf, "small": np.inf} for name in pkgs}
        for _ in range(args.repeat):
            for name, pkg in pkgs.items():  # interleaved: the machine's drift hits both alike
                checks, problem, sol, fit = setups[name]
                start = time.perf_counter()
                pkg.recover_kernel(x, y, k, checks="none")
                best[name]["none"] = min(best[name]["none"], time.perf_counter() - start)
                fresh = dataclasses.replace(fit, shared={})
                start = time.perf_counter()
                records = checks.run_checks(problem, sol, fresh)
                total = time.perf_counter() - start
                seconds = {record.name: record.seconds for record in records}
                rest = total - sum(seconds.get(c, 0.0) for c in COSTLY)
                best[name]["rest"] = min(best[name]["rest"], rest)
                best[name]["small"] = min(best[name]["small"], sum(seconds.get(c, 0.0) for c in SMALL))
        for name in pkgs:
            b = best[name]
            print(
                f"| {n} | {k} | {name} | {1e3 * b['none']:.3f} | {1e3 * b['rest']:.3f} | {1e3 * b['small']:.3f} "
                f"| {b['rest'] / b['none']:.3f} | {b['rest'] / best['tree']['rest']:.2f} |"
            )


if __name__ == "__main__":
    main()
