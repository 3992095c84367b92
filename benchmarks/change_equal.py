"""The change test of the working tree against a git revision's, on random records (issue 27: cheap tests, not
skipped tests): each record's canonical problem, as ``recover_kernel(..., checks="all")`` hands it to
``changes.find_change``, goes to both modules (the revision's ``diagnostics/changes.py`` loaded beside the package's,
as ``change_cost.py --against`` does), and the script prints the largest relative difference of the peak
statistics (flagged or not), p-values, thresholds and reports, and any record whose ranks, tests, times, flags or
messages differ.  Records: lengths 100..1e5 (log-uniform), K 2..128, noise 0 / 1% / 10%, with and without a bias,
1-2 input channels and 1-2 outputs, and misfits (a changed kernel half-way, a longer kernel, a delay, a quadratic
term, a missing bias).

    python change_equal.py [--count N] [--against REV] [--quick]
"""

from __future__ import annotations

import argparse
import collections
import math
import warnings

import numpy as np
from change_cost import _revision
from harness import markdown_table

import kernel_recovery as kr
from kernel_recovery.diagnostics import changes

MISFITS = ["none", "change", "longer", "delay", "quadratic", "missing bias"]


def _record(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, int, dict, str]:
    n = int(10 ** rng.uniform(2, 5))
    k = int(rng.integers(2, 129))
    k = min(k, max(n // 40, 2))
    c, o = int(rng.integers(1, 3)), int(rng.integers(1, 3))
    misfit = MISFITS[int(rng.integers(len(MISFITS)))]
    bias = bool(rng.integers(2))
    noise = float(rng.choice([0.0, 0.01, 0.1]))
    true_k = k + max(k // 2, 2) if misfit in ("longer", "delay") else k
    x = rng.standard_normal((n + true_k - 1, c))
    w = rng.standard_normal((true_k, c, o))
    if misfit == "delay":  # the response starts past the fitted window's first taps
        w[: true_k - k] = 0.0
    z = np.asarray(kr.conv1d(x, w))
    x = x[: n + k - 1]  # (the fitted window: the first k taps)
    if misfit == "change":
        z2 = np.asarray(kr.conv1d(x, w + 0.5 * rng.standard_normal(w.shape)))
        z[len(z) // 2 :] = z2[len(z) // 2 :]
    if misfit == "quadratic":
        z = z + 0.3 * z**2 / z.std()
    if misfit == "missing bias" or bias:
        z = z + 3.0 * z.std()
    y = z + noise * z.std() * rng.standard_normal(z.shape)
    use_bias = bias and misfit != "missing bias"
    return x, y, k, {"use_bias": use_bias}, f"L={n} K={k} C={c} O={o} bias={use_bias} noise={noise} {misfit}"


def _spied(module, name: str, seen: list):
    original = module.__dict__[name]

    def spy(*args, **kwargs):
        out = original(*args, **kwargs)
        seen.append((*out, name))
        return out

    module.__dict__[name] = spy
    return original


def _outcome(module, problem, kwargs) -> tuple[list, tuple]:
    """The peak statistics ``(stat, rank, tests, time)`` of each block and ``find_change``'s answer."""
    seen: list = []
    originals = {name: _spied(module, name, seen) for name in ("_peak_score", "_peak_score_projected")}
    try:
        answer = module.find_change(problem, **kwargs)
    finally:
        module.__dict__.update(originals)
    return seen, answer


def _captured(x: np.ndarray, y: np.ndarray, k: int, options: dict):
    """``(problem, kwargs)`` of ``find_change``'s call in ``recover_kernel(..., checks="all")`` (None: not called)."""
    seen: list = []
    original = changes.find_change

    def capture(problem, **kwargs):
        seen.append((problem, kwargs))
        return original(problem, **kwargs)

    changes.find_change = capture
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            kr.recover_kernel(x, y, k, checks="all", **options)
    finally:
        changes.find_change = original
    return seen[0] if seen else None


def _rel(a: float, b: float) -> float:
    if a == b:
        return 0.0
    return abs(a - b) / max(abs(a), abs(b), 1e-300)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=120)
    parser.add_argument("--against", default="HEAD")
    parser.add_argument("--quick", action="store_true", help="20 records")
    args = parser.parse_args()
    if args.quick:
        args.count = 20
    old = _revision(args.against)
    rng = np.random.default_rng(27)
    worst = {"statistic": 0.0, "p_value": 0.0, "threshold": 0.0}
    compared = flagged = differ = 0
    kinds: collections.Counter = collections.Counter()
    for i in range(args.count):
        x, y, k, options, label = _record(rng)
        captured = _captured(x, y, k, options)
        if captured is None:
            print(f"{i}: {label}: not checked")
            continue
        problem, kwargs = captured
        for alpha in (kwargs.get("alpha", changes.ALPHA), 0.999):
            run = {**kwargs, "alpha": alpha}
            new_scores, (new_report, new_why) = _outcome(changes, problem, run)
            old_scores, (old_report, old_why) = _outcome(old, problem, run)
            same = len(new_scores) == len(old_scores) and new_why == old_why
            same = same and (new_report is None) == (old_report is None)
            for a, b in zip(new_scores, old_scores):
                same = same and a[1:] == b[1:]
                if math.isfinite(a[0]) or math.isfinite(b[0]):
                    worst["statistic"] = max(worst["statistic"], _rel(a[0], b[0]))
            compared += len(new_scores)
            for score in new_scores:
                kinds[score[-1] + (" prewhitened" if run.get("whiten") else "")] += 1
            if new_report is not None and old_report is not None:
                flagged += alpha < 0.5
                for key in worst:
                    worst[key] = max(worst[key], _rel(new_report[key], old_report[key]))
                rest = [key for key in new_report if key not in worst and key != "message"]
                same = same and all(new_report[key] == old_report[key] for key in rest)
                same = same and new_report["message"] == old_report["message"]
            if not same:
                differ += 1
                print(f"{i}: {label} alpha={alpha}: DIFFERS\n  new {new_scores} {new_report} {new_why}")
                print(f"  old {old_scores} {old_report} {old_why}")
    rows = [
        {"": "records", "value": str(args.count)},
        {"": "peak statistics compared (2 alphas)", "value": str(compared)},
        {"": "by test", "value": ", ".join(f"{name} {count}" for name, count in sorted(kinds.items()))},
        {"": "flagged at the default alpha", "value": str(flagged)},
        {"": "differing ranks, tests, times, flags or messages", "value": str(differ)},
    ]
    rows += [{"": f"largest relative difference: {key}", "value": f"{value:.1e}"} for key, value in worst.items()]
    print(f"\nThe working tree's change test against {args.against}'s\n")
    print(markdown_table(rows, ["", "value"]))


if __name__ == "__main__":
    main()
