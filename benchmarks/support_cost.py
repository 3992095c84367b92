"""Cost of the kernel-size check and the lag scan (issue 27), side by side in one process.

For L = 1e3 / 1e4 / 1e5 single-channel lstsq fits (K = 8 / 32 / 128, white input, 1% noise) it times, interleaved and
best of ``--repeat``:

- ``none``: ``recover_kernel(x, y, K, checks="none")``, the call without post-fit checks;
- ``kernel_size`` and ``lag_scan``: :func:`kernel_recovery.diagnostics.support.kernel_size_check` and
  :func:`~kernel_recovery.diagnostics.support.lag_scan` on that fit's problem and solution (their default samples,
  those of ``checks="budget"``), with serial BLAS as inside a fit.

``--against REV`` loads ``diagnostics/support.py`` of git revision ``REV`` (the package at ``REV``, ``git archive``)
and times its two functions on the same problems and solutions in the same loop, so that the ratios compare like with
like on a shared machine (only the module is taken from ``REV``: the fit is the working tree's); the last columns are
then the tree's time over the revision's.  With ``--against``, a second table times the two checks inside the call:
``recover_kernel(x, y, K)`` (``checks="budget"``) with ``diagnostics.checks``' support module swapped between the
revision's and the tree's, interleaved, each check's own ``Check.seconds`` (where the fit has just left the caches).
The goal of the issue: each of the two at most ~10% of the ``none`` call.  The tables are written to
``benchmarks/results/support_cost.md`` (``_quick`` with ``--quick``).

    python benchmarks/support_cost.py [--against 1138865] [--repeat 100] [--quick]
"""

from __future__ import annotations

import argparse
import importlib
import time

import numpy as np
from harness import checks_inputs, package_at, write_result

NAMES = ("kernel_size", "lag_scan")


def in_call(pkg, modules, x, y, k, repeat):
    """Best ``Check.seconds`` of each check over ``repeat`` default calls per support module, interleaved: the
    ``diagnostics.checks`` module's ``support`` swapped in turn."""
    checks = importlib.import_module(pkg.__name__ + ".diagnostics.checks")
    original_support, original_run = checks.support, checks.run_checks
    seen = {}

    def spy(problem, sol, fit, *args):
        records = original_run(problem, sol, fit, *args)
        seen.update((r.name, r.seconds) for r in records if r.name in NAMES)
        return records

    best = {name: dict.fromkeys(NAMES, np.inf) for name in modules}
    checks.run_checks = spy
    try:
        for i in range(repeat):
            for name, support in list(modules.items())[:: 1 if i % 2 else -1]:
                checks.support = support
                pkg.recover_kernel(x, y, k)
                for c in NAMES:
                    best[name][c] = min(best[name][c], seen[c])
    finally:
        checks.support, checks.run_checks = original_support, original_run
    return best


SIZES = ((1000, 8), (10_000, 32), (100_000, 128))


def capture(pkg, x, y, k):
    """The problem and solution that one budgeted call hands to run_checks."""
    return checks_inputs(pkg, x, y, k)[1:3]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--against", default=None, help="a git revision whose support module is timed beside")
    parser.add_argument("--repeat", type=int, default=100)
    parser.add_argument("--quick", action="store_true", help="the two smaller sizes, 5 repeats")
    args = parser.parse_args()
    sizes, repeat = (SIZES[:2], 5) if args.quick else (SIZES, args.repeat)
    pkg = package_at(None)
    serial = importlib.import_module(pkg.__name__ + ".model.threads").SerialBLAS
    modules = {"tree": importlib.import_module(pkg.__name__ + ".diagnostics.support")}
    if args.against:
        modules[args.against] = importlib.import_module(package_at(args.against).__name__ + ".diagnostics.support")
    rng = np.random.default_rng(0)
    times, shares = " | ".join(f"{c} ms" for c in NAMES), " | ".join(f"{c} / none" for c in NAMES)
    against = " | ".join(f"{c} tree / {args.against}" for c in NAMES) if args.against else ""
    lines = [f"| L | K | support.py | none ms | {times} | {shares} |" + (f" {against} |" if against else "")]
    lines.append("|---|---|---|---|" + "---|" * (2 * len(NAMES) + (len(NAMES) if against else 0)))
    calls = [f"| L | K | support.py | {times} |" + (f" {against} |" if against else ""), "|---|---|---|" + "---|" * 4]
    for n, k in sizes:
        x = rng.standard_normal(n)
        w = rng.standard_normal(k)
        y = np.convolve(x, w[::-1], mode="valid")
        y = y + 0.01 * y.std() * rng.standard_normal(len(y))
        problem, sol = capture(pkg, x, y, k)
        none = np.inf
        best = {name: dict.fromkeys(NAMES, np.inf) for name in modules}
        for i in range(repeat):
            start = time.perf_counter()
            pkg.recover_kernel(x, y, k, checks="none")
            none = min(none, time.perf_counter() - start)
            # interleaved, so that the machine's drift hits both alike, and in turn first after the fit (the second
            # finds the problem's arrays in cache)
            for name, support in list(modules.items())[:: 1 if i % 2 else -1]:
                with serial():
                    start = time.perf_counter()
                    support.kernel_size_check(problem)
                    best[name]["kernel_size"] = min(best[name]["kernel_size"], time.perf_counter() - start)
                    start = time.perf_counter()
                    support.lag_scan(problem, sol)
                    best[name]["lag_scan"] = min(best[name]["lag_scan"], time.perf_counter() - start)
        for name in modules:
            b = best[name]
            each = " | ".join(f"{1e3 * b[c]:.3f}" for c in NAMES)
            share = " | ".join(f"{b[c] / none:.3f}" for c in NAMES)
            tail = ""
            if args.against:  # the tree's time over the revision's, on the tree's row
                cells = [f"{b[c] / best[args.against][c]:.2f}" if name == "tree" else "" for c in NAMES]
                tail = " " + " | ".join(cells) + " |"
            lines.append(f"| {n} | {k} | {name} | {1e3 * none:.3f} | {each} | {share} |" + tail)
        if args.against:
            inside = in_call(pkg, modules, x, y, k, max(repeat // 5, 5))
            for name in modules:
                b = inside[name]
                each = " | ".join(f"{1e3 * b[c]:.3f}" for c in NAMES)
                cells = [f"{b[c] / inside[args.against][c]:.2f}" if name == "tree" else "" for c in NAMES]
                calls.append(f"| {n} | {k} | {name} | {each} | " + " | ".join(cells) + " |")
    body = (
        f"Best of {repeat}, interleaved in one process, serial BLAS (as inside a fit); single-channel lstsq fits, "
        "white input, 1% noise; each check with its default samples (those of checks='budget').\n\n" + "\n".join(lines)
    )
    if args.against:
        body += (
            "\n\nInside the call: recover_kernel(x, y, K) (checks='budget'), the checks' support module swapped in "
            f"turn, best Check.seconds of {max(repeat // 5, 5)} calls each, interleaved.\n\n" + "\n".join(calls)
        )
    write_result("support_cost", "Cost of the kernel-size check and the lag scan", body, args.quick)


if __name__ == "__main__":
    main()
