"""Misfit tests that speak: is a fit that does not fit warned, and a healthy fit left alone?

Misfit bank (issue 26), five draws each, white input, noise at 5% of the output's rms, 4000 samples:

- ``relu``: outputs after a ReLU (Keras ``Conv1D(activation="relu")``, with its bias), fitted with ``use_bias=True``
  (the noise before the ReLU);
- ``saturation``: a sensor clipped at +-0.6 of the output's standard deviation (the noise before the clip);
- ``quadratic``: ``y = z + 0.3 z^2`` (``z`` the convolution, unit rms), fitted with ``use_bias=True``;
- ``missing bias``: a bias of 3 output rms, fitted with ``use_bias=False``;
- ``change K=50``: the kernel (50 taps) changes abruptly half-way through;
- ``drift``: the kernel (16 taps) rotates slowly from one kernel to another over the record.

A draw is *warned* when ``recover_kernel`` issues any warning of the package.  Healthy bank: white and AR(0.9)
inputs, K in {8, 50, 300}, 4000 samples, noise at 10%; a *false alarm* is any warning of the package on one of its
fits.  Cost: the time of all post-fit checks (``checks.run_checks``) against the whole ``recover_kernel`` call at
L=1e3/K=8, L=1e4/K=32 and L=1e5/K=128 (white input, linear, noisy).

    python misfit.py [--quick]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from harness import markdown_table, write_result

import kernel_recovery as kr
from kernel_recovery.diagnostics import checks

LENGTH = 4000


def _conv(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    return kr.conv1d(x, w).ravel()


def misfit_case(kind: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, int, dict]:
    """``x``, ``y``, ``kernel_size`` and the settings of one draw of a misfit."""
    x = rng.standard_normal(LENGTH)
    k = 50 if kind == "change K=50" else 16
    w = rng.standard_normal(k) / np.sqrt(k)
    z = _conv(x, w)
    settings: dict = {}
    noise = 0.05 * z.std() * rng.standard_normal(len(z))
    if kind == "relu":  # the noise inside the nonlinearity: the output is exactly 0 where the ReLU cuts
        y = np.maximum(z + 0.2 + noise, 0.0)
        settings["use_bias"] = True
    elif kind == "saturation":
        y = np.clip(z + noise, -0.6 * z.std(), 0.6 * z.std())
    elif kind == "quadratic":
        z = z / z.std()
        y = z + 0.3 * z**2
        settings["use_bias"] = True
    elif kind == "missing bias":
        y = z + 3.0 * z.std()
    elif kind == "change K=50":
        w2 = rng.standard_normal(k) / np.sqrt(k)
        half = len(z) // 2
        y = np.concatenate([z[:half], _conv(x, w2)[half:]])
    elif kind == "drift":
        w2 = rng.standard_normal(k) / np.sqrt(k)
        rows = np.lib.stride_tricks.sliding_window_view(x, k)
        s = np.linspace(0.0, 0.5 * np.pi, len(rows))[:, None]
        y = np.einsum("tk,tk->t", rows, np.cos(s) * w + np.sin(s) * w2)
    else:
        raise AssertionError(kind)
    if kind not in ("relu", "saturation"):
        y = y + 0.05 * np.std(y) * rng.standard_normal(len(y))
    return x, y, k, settings


def healthy_case(inp: str, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    e = rng.standard_normal(LENGTH + k - 1)
    if inp == "white":
        x = e
    else:
        from scipy.signal import lfilter

        x = lfilter([1.0], [1.0, -0.9], e)
    w = rng.standard_normal(k) * np.exp(-np.arange(k) / max(k / 4, 1))
    z = _conv(x, w)
    return x, z + 0.1 * z.std() * rng.standard_normal(len(z))


def fit(x, y, k, **settings) -> tuple[list[str], dict]:
    """The package's warnings (their class names) and the flagged checks of one fit."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = kr.recover_kernel(x, y, k, **settings)
    names = [type(w.message).__name__ for w in caught if type(w.message).__module__.startswith("kernel_recovery")]
    flagged = {n: v for n, v in res.diagnostics["checks"].items() if str(v).startswith("flagged")}
    return names, flagged


def misfit_bank(draws: int) -> list[dict]:
    rows = []
    kinds = ("relu", "saturation", "quadratic", "missing bias", "change K=50", "drift")
    for i, kind in enumerate(kinds):
        rng = np.random.default_rng(100 + i)
        warned, classes, checks_hit = 0, set(), set()
        for _ in range(draws):
            x, y, k, settings = misfit_case(kind, rng)
            names, flagged = fit(x, y, k, **settings)
            warned += bool(names)
            classes.update(names)
            checks_hit.update(flagged)
        rows.append(
            {
                "misfit": kind,
                "warned": f"{warned}/{draws}",
                "ok (>= 80%)": "yes" if warned >= 0.8 * draws else "NO",
                "warnings": ", ".join(sorted(classes)) or "-",
                "flagged checks": ", ".join(sorted(checks_hit)) or "-",
            }
        )
    return rows


def healthy_bank(draws: int) -> tuple[list[dict], int, int]:
    rows, alarms, fits = [], 0, 0
    for inp in ("white", "AR(0.9)"):
        for k in (8, 50, 300):
            rng = np.random.default_rng(1000 + k + (0 if inp == "white" else 1))
            count, what = 0, set()
            for _ in range(draws):
                x, y = healthy_case(inp, k, rng)
                names, flagged = fit(x, y, k)
                count += bool(names)
                what.update(names)
                what.update(f"{n}: {v}" for n, v in flagged.items() if not names)
            alarms, fits = alarms + count, fits + draws
            rows.append(
                {"input": inp, "K": k, "false alarms": f"{count}/{draws}", "what": ", ".join(sorted(what)) or "-"}
            )
    return rows, alarms, fits


def cost(sizes: list[tuple[int, int]], repeat: int) -> list[dict]:
    rows = []
    original = checks.run_checks
    spent: list[float] = []

    def timed(*args, **kwargs):
        t0 = time.perf_counter()
        out = original(*args, **kwargs)
        spent.append(time.perf_counter() - t0)
        return out

    for n, k in sizes:
        rng = np.random.default_rng(n + k)
        x = rng.standard_normal(n + k - 1)
        z = _conv(x, rng.standard_normal(k))
        y = z + 0.1 * z.std() * rng.standard_normal(len(z))
        totals, in_checks = [], []
        checks.run_checks = timed
        try:
            for _ in range(repeat + 1):
                spent.clear()
                t0 = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    kr.recover_kernel(x, y, k)
                totals.append(time.perf_counter() - t0)
                in_checks.append(sum(spent))
        finally:
            checks.run_checks = original
        total, check = float(np.median(totals[1:])), float(np.median(in_checks[1:]))
        rows.append(
            {
                "L": n,
                "K": k,
                "recover_kernel": f"{1e3 * total:.1f} ms",
                "solve and rest": f"{1e3 * (total - check):.1f} ms",
                "all checks": f"{1e3 * check:.1f} ms",
                "checks / rest": f"{check / max(total - check, 1e-12):.2f}",
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer draws and sizes; no result file")
    args = parser.parse_args()
    draws, healthy_draws = (2, 1) if args.quick else (5, 10)
    sizes = [(1000, 8), (10_000, 32)] if args.quick else [(1000, 8), (10_000, 32), (100_000, 128)]
    misfits = misfit_bank(draws)
    healthy, alarms, fits = healthy_bank(healthy_draws)
    costs = cost(sizes, 1 if args.quick else 3)
    body = (
        "## Misfit bank (warned in at least 4 of 5 draws)\n\n"
        + markdown_table(misfits, ["misfit", "warned", "ok (>= 80%)", "warnings", "flagged checks"])
        + f"\n\n## Healthy bank (false alarms: {alarms}/{fits} = {alarms / fits:.1%}, at most 5%)\n\n"
        + markdown_table(healthy, ["input", "K", "false alarms", "what"])
        + "\n\n## Cost of the post-fit checks (lstsq, white input, median of the calls)\n\n"
        + markdown_table(costs, ["L", "K", "recover_kernel", "solve and rest", "all checks", "checks / rest"])
    )
    if args.quick:
        print(body)
    else:
        write_result("misfit", "Misfit tests: warned misfits, false alarms, cost", body, quick=False)


if __name__ == "__main__":
    main()
