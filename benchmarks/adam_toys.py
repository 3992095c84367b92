"""Where a warm adam toy fit spends its time, and what the small-loop compiler settings buy, in one run.

The everyday benchmark's adam row (``recover_kernel(x, y, K, method="adam", loss="mae", max_iter=1000, tol=0)``
on the seed's float32 toys) split into its parts, and measured under two settings side by side:

* ``now``: the small design/frames loops compiled as shipped (``gradient.SMALL_LEVEL``, ``gradient.SMALL_OPTIONS``);
* ``level 0``: as before issue 27's adam round (LLVM level 0, XLA's default fusion emitters).

Each (toy, setting) runs in a fresh process (interleaved, ``--rounds`` rounds; the best of each is kept):
``cold`` is the first fit after ``import kernel_recovery, jax, optax``; then, warm, the best of ``--repeat`` calls of

* ``call``: the whole call (post-fit checks as by default), and ``checks=none``;
* ``solver``: ``gradient.solve`` inside the call (validation, parametrization, the compiled loop, the result);
* ``loop``: ``gradient.optimize`` inside it (dispatch, the compiled loop, fetching the results).

The parts: the loop, the solver's Python around it (``solver - loop``), the rest of the call without checks
(canonical problem, report and result assembly: ``checks=none - solver``), and the post-fit checks
(``call - checks=none``).

    python benchmarks/adam_toys.py             # ~1 minute
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
from harness import fmt_time, markdown_table

TOYS = [  # the seed's examples, as in everyday.py
    ("1 channel, K=2", [0.0, 3, 4, 5], [6.0, 11, 14], 2),
    ("2 channels, K=3", [[0, 0], [3, 6], [4, 7], [5, 8], [1, 2], [4, 5], [2, 0], [0, 1]], [14.0, 20, 14, 15, 10, 4], 3),
    ("2 filters, K=2", [0.0, 3, 4, 5], [[6.0, 12], [11, 25], [14, 32]], 2),
]
SETTINGS = ("now", "level 0")
THREADS = {v: "1" for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}


def child(toy: int, setting: str, repeat: int) -> dict:
    """One fresh process: the cold fit, then the warm parts (best of ``repeat``)."""
    import jax  # noqa: F401
    import optax  # noqa: F401

    import kernel_recovery as kr
    from kernel_recovery.solvers import gradient

    if setting == "level 0":
        gradient.SMALL_LEVEL = 0
        gradient.SMALL_OPTIONS = {}
    _, x, y, k = TOYS[toy]
    x32, y32 = np.asarray(x, np.float32), np.asarray(y, np.float32)
    spent: dict[str, float] = {}

    def timed(name, fn):
        def run(*args, **kwargs):
            t0 = time.perf_counter()
            out = fn(*args, **kwargs)
            spent[name] = time.perf_counter() - t0
            return out

        return run

    gradient.solve = timed("solver", gradient.solve)  # the registry resolves it at each call
    gradient.optimize = timed("loop", gradient.optimize)

    def fit(**options):
        return kr.recover_kernel(x32, y32, k, method="adam", loss="mae", max_iter=1000, tol=0.0, **options)

    t0 = time.perf_counter()
    fit()
    out = {"cold": time.perf_counter() - t0}
    best: dict[str, float] = {}
    for _ in range(repeat):
        for name, options in (("call", {}), ("checks=none", {"checks": "none"})):
            t0 = time.perf_counter()
            fit(**options)
            took = {name: time.perf_counter() - t0}
            if name == "checks=none":
                took.update(spent)
            for key, value in took.items():
                best[key] = min(best.get(key, np.inf), value)
    return {**out, **best}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="fresh processes per toy and setting")
    parser.add_argument("--repeat", type=int, default=30, help="warm calls per process")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="one process and 3 warm calls per toy and setting")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.repeat = 1, 3
    if args.child:
        toy, setting = json.loads(args.child)
        print("ROW " + json.dumps(child(toy, setting, args.repeat)), flush=True)
        return 0
    best: dict[tuple[int, str], dict[str, float]] = {}
    for _ in range(args.rounds):
        for toy in range(len(TOYS)):
            for setting in SETTINGS:
                cmd = [sys.executable, os.path.abspath(__file__), "--child", json.dumps([toy, setting])]
                cmd += ["--repeat", str(args.repeat)]
                proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, **THREADS), check=True)
                got = json.loads(next(line[4:] for line in proc.stdout.splitlines() if line.startswith("ROW ")))
                have = best.setdefault((toy, setting), {})
                for key, value in got.items():
                    have[key] = min(have.get(key, np.inf), value)
    rows = []
    for toy, (name, *_) in enumerate(TOYS):
        for setting in SETTINGS:
            m = best[(toy, setting)]
            parts = {
                "loop": m["loop"],
                "solver's Python": m["solver"] - m["loop"],
                "rest of the call": m["checks=none"] - m["solver"],
                "checks": m["call"] - m["checks=none"],
            }
            row = {"toy": name, "setting": setting, "cold": fmt_time(m["cold"]), "call": fmt_time(m["call"])}
            row.update({k: f"{fmt_time(v)} ({v / m['call']:.0%})" for k, v in parts.items()})
            rows.append(row)
        now, before = best[(toy, "now")], best[(toy, "level 0")]
        rows.append({"toy": name, "setting": "level 0 / now",
                     **{k: f"{before[k] / now[k]:.2f}x" for k in ("cold", "call")},
                     "loop": f"{before['loop'] / now['loop']:.2f}x"})  # fmt: skip
    columns = ["toy", "setting", "cold", "call", "loop", "solver's Python", "rest of the call", "checks"]
    print(f"load average {os.getloadavg()[0]:.1f}; best of {args.rounds} processes x {args.repeat} warm calls")
    print(markdown_table([{c: r.get(c, "") for c in columns} for r in rows], columns))
    return 0


if __name__ == "__main__":
    sys.exit(main())
