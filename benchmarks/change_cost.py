"""The change test's cost against the fit it checks (issue 27: diagnostics with a budget, not a tax).

For each size, one process and interleaved repeats (best of ``--repeat``): the whole ``recover_kernel`` call with
``checks="none"``, and the change test alone (``changes.find_change`` on the same canonical problem, with the
arguments the default checks pass it), on a white record (the exact score test at K <= 32, the projected one at
K=128) and on a record whose residual is coloured (AR(0.7) noise: the test prewhitens first), with serial BLAS as
inside ``recover_kernel``.  The ratio is the change test's share of the call without checks (the issue's target:
~10%).  ``--against REV`` also times the change test of git revision ``REV`` (its ``diagnostics/changes.py``, loaded
beside the package's) in the same interleaved loop: the speed-up of the working tree's test, one process.

    python change_cost.py [--repeat N] [--against REV]
"""

from __future__ import annotations

import argparse
import subprocess
import time
import types
import warnings
from pathlib import Path

import numpy as np
from harness import markdown_table, write_result

import kernel_recovery as kr
from kernel_recovery.diagnostics import changes
from kernel_recovery.model.threads import SerialBLAS

SIZES = [(1000, 8), (10000, 32), (100000, 128)]


def _record(n: int, k: int, coloured: bool, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    x = rng.standard_normal(n + k - 1)
    z = kr.conv1d(x, rng.standard_normal(k)).ravel()
    e = rng.standard_normal(len(z))
    if coloured:
        from scipy.signal import lfilter

        e = lfilter([1.0], [1.0, -0.7], e)
    return x, z + 0.1 * z.std() * e / e.std()


def _captured_call(x: np.ndarray, y: np.ndarray, k: int):
    """The canonical problem and the arguments of the default checks' call of ``find_change``."""
    seen = []
    original = changes.find_change

    def spy(problem, **kwargs):
        seen.append((problem, kwargs))
        return original(problem, **kwargs)

    changes.find_change = spy
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            kr.recover_kernel(x, y, k)
    finally:
        changes.find_change = original
    return seen[0] if seen else (None, None)


def _revision(rev: str) -> types.ModuleType:
    """``kernel_recovery.diagnostics.changes`` as it is at git revision ``rev`` (its relative imports resolve in
    the installed package)."""
    root = Path(__file__).resolve().parent.parent
    source = subprocess.run(
        ["git", "show", f"{rev}:kernel_recovery/diagnostics/changes.py"], cwd=root, check=True, capture_output=True
    ).stdout.decode()
    module = types.ModuleType(f"kernel_recovery.diagnostics._changes_at_{rev}")
    module.__package__ = "kernel_recovery.diagnostics"
    exec(compile(source, f"{rev}:changes.py", "exec"), module.__dict__)
    return module


def measure(repeat: int, against: str | None = None) -> list[dict]:
    old = None if against is None else _revision(against)
    rows = []
    for n, k in SIZES:
        for coloured in (False, True):
            rng = np.random.default_rng(n + k)
            x, y = _record(n, k, coloured, rng)
            problem, kwargs = _captured_call(x, y, k)
            if problem is None:
                continue
            none: list[float] = []
            change: list[float] = []
            before: list[float] = []
            tests = [(changes, change)] + ([] if old is None else [(old, before)])
            for i in range(repeat):
                t0 = time.perf_counter()
                kr.recover_kernel(x, y, k, checks="none")
                none.append(time.perf_counter() - t0)
                with SerialBLAS():  # (as inside recover_kernel, where the checks run)
                    for module, times in tests[:: 1 if i % 2 else -1]:  # (each first after the call in turn)
                        t0 = time.perf_counter()
                        module.find_change(problem, **kwargs)
                        times.append(time.perf_counter() - t0)
            row = {
                "L": n,
                "K": k,
                "residual": "coloured (prewhitened)" if kwargs.get("whiten") else "white",
                'recover_kernel(checks="none")': f"{1e3 * min(none):.2f} ms",
                "change test": f"{1e3 * min(change):.2f} ms",
                "change / none": f"{min(change) / min(none):.2f}",
            }
            if old is not None:
                row[f"change test at {against}"] = f"{1e3 * min(before):.2f} ms"
                row[f"now / {against}"] = f"{min(change) / min(before):.2f}"
            rows.append(row)
    return rows


COLUMNS = ["L", "K", "residual", 'recover_kernel(checks="none")', "change test", "change / none"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--quick", action="store_true", help="5 repeats")
    parser.add_argument("--against", help="a git revision whose change test is timed beside the working tree's")
    args = parser.parse_args()
    rows = measure(5 if args.quick else args.repeat, args.against)
    columns = COLUMNS + ([] if args.against is None else [f"change test at {args.against}", f"now / {args.against}"])
    body = f"One process, best of {5 if args.quick else args.repeat} interleaved calls.\n\n" + markdown_table(
        rows, columns
    )
    write_result("change_cost", "The change test's cost", body, quick=args.quick)


if __name__ == "__main__":
    main()
