"""The change test's cost against the fit it checks (issue 27: diagnostics with a budget, not a tax).

For each size, one process and interleaved repeats (best of ``--repeat``): the whole ``recover_kernel`` call with
``checks="none"``, and the change test alone (``changes.find_change`` on the same canonical problem, with the
arguments the default checks pass it), on a white record (the exact score test at K <= 32, the projected one at
K=128) and on a record whose residual is coloured (AR(0.7) noise: the test prewhitens first), with serial BLAS as
inside ``recover_kernel``.  The ratio is the change test's share of the call without checks (the issue's target:
~10%).

    python change_cost.py [--repeat N]
"""

from __future__ import annotations

import argparse
import time
import warnings

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


def measure(repeat: int) -> list[dict]:
    rows = []
    for n, k in SIZES:
        for coloured in (False, True):
            rng = np.random.default_rng(n + k)
            x, y = _record(n, k, coloured, rng)
            problem, kwargs = _captured_call(x, y, k)
            if problem is None:
                continue
            none, change = [], []
            for _ in range(repeat):
                t0 = time.perf_counter()
                kr.recover_kernel(x, y, k, checks="none")
                none.append(time.perf_counter() - t0)
                with SerialBLAS():  # (as inside recover_kernel, where the checks run)
                    t0 = time.perf_counter()
                    changes.find_change(problem, **kwargs)
                    change.append(time.perf_counter() - t0)
            rows.append(
                {
                    "L": n,
                    "K": k,
                    "residual": "coloured (prewhitened)" if kwargs.get("whiten") else "white",
                    'recover_kernel(checks="none")': f"{1e3 * min(none):.2f} ms",
                    "change test": f"{1e3 * min(change):.2f} ms",
                    "change / none": f"{min(change) / min(none):.2f}",
                }
            )
    return rows


COLUMNS = ["L", "K", "residual", 'recover_kernel(checks="none")', "change test", "change / none"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--quick", action="store_true", help="5 repeats")
    args = parser.parse_args()
    rows = measure(5 if args.quick else args.repeat)
    body = f"One process, best of {5 if args.quick else args.repeat} interleaved calls.\n\n" + markdown_table(
        rows, COLUMNS
    )
    write_result("change_cost", "The change test's cost", body, quick=args.quick)


if __name__ == "__main__":
    main()
