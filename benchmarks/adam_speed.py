"""Gradient descent, side by side: method="adam" (JAX + optax, compiled end to end) against the tutorial's
Keras loop (Keras 3, JAX backend, Conv1D, Adam(5e-2), MAE, ``model.fit`` once per epoch in a Python loop)
and a PyTorch loop (nn.Conv1d + torch.optim.Adam, one Python iteration per step).

1. The tutorial's three examples, 1000 steps each: warm time (median of repeated runs after a warm-up,
   in one process), cold time (the first run in a fresh process, timed after importing the library and
   its framework: for kernel_recovery after ``import kernel_recovery, jax, optax``, so device start-up and
   compilation are included) and the final kernel error.  kernel_recovery is also shown with its defaults
   (schedule and stopping rule, no fixed step count).
2. L=1e5 samples, Cin=Cout=4, K=32, 500 steps, MSE and MAE, against the PyTorch loop.

Peers missing from the environment are reported as "not installed".

    python benchmarks/adam_speed.py            # a few minutes
    python benchmarks/adam_speed.py --quick    # under a minute: example 1 only (peers at 200 steps), fewer
                                               # repeats, L=1e4 and 50 steps for part 2
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
import warnings

import numpy as np
from harness import fmt_time, markdown_table, versions, write_result

TUTORIAL = [
    ("1 channel, K=2", [0.0, 3, 4, 5], [6.0, 11, 14], 2, [[[1.0]], [[2.0]]]),
    (
        "2 channels, K=3",
        [[0, 0], [3, 6], [4, 7], [5, 8], [1, 2], [4, 5], [2, 0], [0, 1]],
        [14.0, 20, 14, 15, 10, 4],
        3,
        [[[1.0], [0]], [[0], [1]], [[2], [0]]],
    ),
    ("2 filters, K=2", [0.0, 3, 4, 5], [[6.0, 12], [11, 25], [14, 32]], 2, [[[1.0, 3]], [[2, 4]]]),
]
PEERS = {"keras": "keras", "pytorch": "torch"}


def as_nwc(a) -> np.ndarray:
    a = np.asarray(a, dtype=np.float32)
    return a.reshape(1, -1, 1) if a.ndim == 1 else a[None]


# ----------------------------------------------------------------------------------------------
# One fit per library: (x, y) in (1, L, C) channels-last, returns the kernel (K, Cin, Cout)
# ----------------------------------------------------------------------------------------------


def fit_kr(x, y, k, steps, loss, defaults=False):
    import kernel_recovery as kr

    opts = {} if defaults else {"max_iter": steps, "tol": 0.0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return kr.recover_kernel(x[0], y[0], k, method="adam", loss=loss, **opts).kernel


def fit_keras(x, y, k, steps, loss):
    import keras

    model = keras.Sequential([keras.Input(shape=x.shape[1:]), keras.layers.Conv1D(y.shape[2], k, use_bias=False)])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=5e-2), loss=loss)
    for _ in range(steps):  # the tutorial's loop: one fit call per epoch
        model.fit(x, y, epochs=1, verbose=0)
    return np.asarray(model.layers[0].kernel)


def fit_torch(x, y, k, steps, loss):
    import torch

    xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 2, 1)))
    yt = torch.from_numpy(np.ascontiguousarray(y.transpose(0, 2, 1)))
    torch.manual_seed(0)
    if x.shape[1] < 1000:  # tiny examples: threads only add synchronisation (and spin badly on a shared CPU)
        torch.set_num_threads(1)
    conv = torch.nn.Conv1d(x.shape[2], y.shape[2], k, bias=False)
    opt = torch.optim.Adam(conv.parameters(), lr=5e-2)
    criterion = torch.nn.L1Loss() if loss == "mae" else torch.nn.MSELoss()
    for _ in range(steps):
        opt.zero_grad()
        out = criterion(conv(xt), yt)
        out.backward()
        opt.step()
    return conv.weight.detach().numpy().transpose(2, 1, 0)


FITS = {"kernel_recovery": fit_kr, "keras": fit_keras, "pytorch": fit_torch}


def big_problem(length: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((1, length, 4)).astype(np.float32)
    w = (rng.standard_normal((32, 4, 4)) / np.sqrt(128)).astype(np.float32)
    win = np.lib.stride_tricks.sliding_window_view(x[0], 32, axis=0)  # (m, C, K)
    y = np.einsum("mck,kco->mo", win, w)[None].astype(np.float32)
    return x, y, w


# ----------------------------------------------------------------------------------------------
# Worker: run in a fresh process, print JSON
# ----------------------------------------------------------------------------------------------


def worker(lib: str, task: str, steps: int, loss: str, repeat: int, length: int) -> dict:
    if lib == "keras":
        os.environ.setdefault("KERAS_BACKEND", "jax")
        import keras  # noqa: F401
    elif lib == "pytorch":
        import torch  # noqa: F401
    else:
        import jax  # noqa: F401
        import optax  # noqa: F401

        import kernel_recovery  # noqa: F401
    if task.startswith("tutorial"):
        _, x, y, k, true = TUTORIAL[int(task.split(":")[1])]
        x, y, true = as_nwc(x), as_nwc(y), np.asarray(true)
    else:
        x, y, true = big_problem(length)
        k = 32
    defaults = task.endswith(":defaults")
    if defaults:
        fit = lambda: fit_kr(x, y, k, steps, loss, defaults=True)  # noqa: E731
    else:
        fit = lambda: FITS[lib](x, y, k, steps, loss)  # noqa: E731
    if task.endswith(":solver"):
        # the solver alone on the canonical problem (validation and the determinacy report left out);
        # the statistics it needs are recomputed for every call
        from kernel_recovery.model.problem import build_problem
        from kernel_recovery.solvers.gradient import solve

        problem = build_problem(x[0], y[0], k)

        def fit():
            for block in problem.blocks:
                block.cache.clear()
            return problem.from_canonical(solve(problem, loss=loss, max_iter=steps, tol=0.0).kernels)

    t0 = time.perf_counter()
    kernel = fit()
    cold = time.perf_counter() - t0
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        kernel = fit()
        times.append(time.perf_counter() - t0)
    return {"cold": cold, "warm": float(np.median(times)), "error": float(np.max(np.abs(kernel - true)))}


def spawn(lib: str, task: str, steps: int, loss: str, repeat: int, length: int = 0) -> dict:
    if lib in PEERS and importlib.util.find_spec(PEERS[lib]) is None:
        return {"status": "not installed"}
    env = dict(os.environ, KERAS_BACKEND="jax")
    cmd = [sys.executable, __file__, "--worker", lib, task, str(steps), loss, str(repeat), str(length)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode:
        return {"status": "failed: " + (out.stderr.strip().splitlines() or ["?"])[-1][:80]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def cell(r: dict, key: str) -> str:
    if "status" in r:
        return r["status"]
    return fmt_time(r[key]) if key != "error" else f"{r[key]:.1e}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and a smaller part 2")
    args = parser.parse_args()
    quick = args.quick or os.environ.get("CI") == "true"
    repeat = 2 if quick else 5
    length, big_steps = (10_000, 50) if quick else (100_000, 500)
    examples = TUTORIAL[:1] if quick else TUTORIAL
    peer_steps = 200 if quick else 1000

    rows = []
    for i, (name, *_rest) in enumerate(examples):
        kr_fixed = spawn("kernel_recovery", f"tutorial:{i}", 1000, "mae", repeat * 4)
        kr_default = spawn("kernel_recovery", f"tutorial:{i}:defaults", 0, "mse", repeat * 4)
        kr_solver = spawn("kernel_recovery", f"tutorial:{i}:solver", 1000, "mae", repeat * 4)
        peers = {lib: spawn(lib, f"tutorial:{i}", peer_steps, "mae", 1 if lib == "keras" else repeat) for lib in PEERS}
        for label, r in [
            ("adam, mae, 1000 steps", kr_fixed),
            ("adam solver alone, mae, 1000 steps", kr_solver),
            ("adam, defaults (mse, early stop)", kr_default),
            (f"Keras 3 (jax) fit loop, mae, {peer_steps} steps", peers["keras"]),
            (f"PyTorch loop, mae, {peer_steps} steps", peers["pytorch"]),
        ]:
            rows.append({"example": name, "method": label, "warm": cell(r, "warm"), "cold": cell(r, "cold"),
                         "max kernel error": cell(r, "error"), "_r": r})
        base = kr_fixed.get("warm")
        for row in rows[-5:]:
            w = row["_r"].get("warm")
            row["warm vs adam"] = f"{w / base:.2g}x" if w and base else "-"
    part1 = markdown_table(rows, ["example", "method", "warm", "cold", "max kernel error", "warm vs adam"])

    big = []
    for loss in ("mse", "mae"):
        form = "statistics" if loss == "mse" else "frames"
        solver = spawn("kernel_recovery", "big:solver", big_steps, loss, 1 if quick else 3, length)
        ours = spawn("kernel_recovery", "big", big_steps, loss, 1 if quick else 3, length)
        torch_r = spawn("pytorch", "big", big_steps, loss, 1 if quick else 2, length)
        for label, r in [
            (f"adam solver ({form})", solver),
            ("adam, recover_kernel end to end", ours),
            ("PyTorch loop", torch_r),
        ]:
            row = {"loss": loss, "method": label, "warm": cell(r, "warm"), "first call": cell(r, "cold"),
                   "max kernel error": cell(r, "error"), "_r": r}
            if "warm" in r and "warm" in torch_r and r is not torch_r:
                row["speed-up vs PyTorch"] = f"{torch_r['warm'] / r['warm']:.1f}x"
            big.append(row)
    part2 = markdown_table(big, ["loss", "method", "warm", "first call", "max kernel error", "speed-up vs PyTorch"])

    body = (
        f"Peers: {versions('torch', 'keras')}. Warm: median of repeated fits in one process after a first "
        "fit; cold: the first fit in a fresh process, after importing the library (kernel_recovery: "
        "`import kernel_recovery, jax, optax`), so JAX start-up and compilation are included.  Errors are "
        "against the true kernel.  The machine is shared; timings are indicative.\n\n"
        f"## The tutorial's examples\n\n{part1}\n\n"
        f"## L={length:.0e}, Cin=Cout=4, K=32, {big_steps} steps\n\n{part2}\n"
    )
    write_result("adam_speed", "method='adam' against Keras and PyTorch gradient-descent loops", body, quick)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        lib, task, steps, loss, repeat, length = sys.argv[2:8]
        print(json.dumps(worker(lib, task, int(steps), loss, int(repeat), int(length))))
    else:
        main()
