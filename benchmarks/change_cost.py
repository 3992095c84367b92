"""The change test's cost against the fit it checks (issue 27: diagnostics with a budget, not a tax).

For each size, one process and interleaved repeats (best of ``--repeat``): the whole ``recover_kernel`` call with
``checks="none"``; the change test alone (``changes.find_change`` on one canonical problem, with the arguments the
default checks pass it); and the change test inside the default call (``find_change``'s own time in each
``recover_kernel``: a fresh problem every call, so what the fit's objects compute on demand is paid, as a user
pays it).  On a white record (the exact score test at K <= 32, the projected one at K=128) and on a record whose
residual is coloured (AR(0.7) noise: the test prewhitens first), with serial BLAS as inside ``recover_kernel``.
The ratio is the change test's share of the call without checks.  ``--against REV`` also times the change test of
git revision ``REV`` (its ``diagnostics/changes.py``, loaded beside the package's) in the same interleaved loops,
alone and inside the call (each call's check from one module or the other in turn): the speed-up of the working
tree's test, one process.

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
    z = np.asarray(kr.conv1d(x, rng.standard_normal(k))).ravel()
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


def _in_call(x: np.ndarray, y: np.ndarray, k: int, module: types.ModuleType, times: list[float]) -> None:
    """One default ``recover_kernel`` call whose change test is ``module.find_change``, its own time appended."""
    original, target = changes.find_change, module.find_change

    def timed(problem, **kwargs):
        t0 = time.perf_counter()
        out = target(problem, **kwargs)
        times.append(time.perf_counter() - t0)
        return out

    changes.find_change = timed
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            kr.recover_kernel(x, y, k)
    finally:
        changes.find_change = original


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
            modules = [(changes, "now")] + ([] if old is None else [(old, "rev")])
            alone: dict[str, list[float]] = {name: [] for _, name in modules}
            inside: dict[str, list[float]] = {name: [] for _, name in modules}
            for i in range(repeat):
                t0 = time.perf_counter()
                kr.recover_kernel(x, y, k, checks="none")
                none.append(time.perf_counter() - t0)
                for module, name in modules[:: 1 if i % 2 else -1]:  # (each first after the call in turn)
                    with SerialBLAS():  # (as inside recover_kernel, where the checks run)
                        t0 = time.perf_counter()
                        module.find_change(problem, **kwargs)
                        alone[name].append(time.perf_counter() - t0)
                    _in_call(x, y, k, module, inside[name])
            best_none = min(none)
            row = {
                "L": n,
                "K": k,
                "residual": "coloured (prewhitened)" if kwargs.get("whiten") else "white",
                'recover_kernel(checks="none")': f"{1e3 * best_none:.2f} ms",
                "change test alone": f"{1e3 * min(alone['now']):.3f} ms",
                "in the call": f"{1e3 * min(inside['now']):.3f} ms",
                "in the call / none": f"{min(inside['now']) / best_none:.2f}",
            }
            if old is not None:
                row[f"alone at {against}"] = f"{1e3 * min(alone['rev']):.3f} ms"
                row[f"in the call at {against}"] = f"{1e3 * min(inside['rev']):.3f} ms"
                row[f"now / {against} (alone, in the call)"] = (
                    f"{min(alone['now']) / min(alone['rev']):.2f}, {min(inside['now']) / min(inside['rev']):.2f}"
                )
            rows.append(row)
    return rows


COLUMNS = [
    "L",
    "K",
    "residual",
    'recover_kernel(checks="none")',
    "change test alone",
    "in the call",
    "in the call / none",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--quick", action="store_true", help="5 repeats")
    parser.add_argument("--against", help="a git revision whose change test is timed beside the working tree's")
    args = parser.parse_args()
    rows = measure(5 if args.quick else args.repeat, args.against)
    extra = [f"alone at {args.against}", f"in the call at {args.against}", f"now / {args.against} (alone, in the call)"]
    columns = COLUMNS + ([] if args.against is None else extra)
    body = f"One process, best of {5 if args.quick else args.repeat} interleaved calls.\n\n" + markdown_table(
        rows, columns
    )
    write_result("change_cost", "The change test's cost", body, quick=args.quick)


if __name__ == "__main__":
    main()
