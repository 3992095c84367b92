"""Command line: ``kernel-recovery demo`` (and ``python -m kernel_recovery``)."""

from __future__ import annotations

import argparse
import sys
import time
import warnings

import numpy as np


def run_demo(out=sys.stdout) -> int:
    """Solve the built-in examples with every available method and print a table."""
    from . import datasets, solvers
    from .api import recover_kernel

    header = (
        f"{'example':<20} {'method':<7} {'status':<16} {'eq/unk':>7} {'max |err|':>10} {'resid rms':>10} {'time':>9}"
    )
    print(header, file=out)
    print("-" * len(header), file=out)
    for ex in datasets.all_examples():
        for method in solvers.METHODS:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                t0 = time.perf_counter()
                res = recover_kernel(ex.x, ex.y, ex.kernel_size, method=method, **ex.settings)
                elapsed = time.perf_counter() - t0
            err = np.max(np.abs(res.kernel - ex.kernel)) if ex.kernel is not None else float("nan")
            rep = res.report
            print(
                f"{ex.name:<20} {method:<7} {rep.status:<16} {rep.equations[0]:>3}/{rep.unknowns[0]:<3} "
                f"{err:>10.2e} {res.residual_rms:>10.2e} {elapsed * 1e3:>7.1f}ms",
                file=out,
            )
    print("\nkernel recovered from the tutorial's 2-channel example (lstsq):", file=out)
    ex = datasets.tutorial_examples()[1]
    print(
        np.array2string(recover_kernel(ex.x, ex.y, ex.kernel_size).kernel[:, :, 0], precision=6, suppress_small=True),
        file=out,
    )
    print("\nwhat analyze() says about the underdetermined example:", file=out)
    from .determinacy import analyze

    ex = datasets.underdetermined()
    print(analyze(ex.x, ex.y, ex.kernel_size, warn=False), file=out)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kernel-recovery", description="Recover 1-D convolution kernels from data.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="solve the built-in examples with every method and print a table")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        return run_demo()
    return 2
