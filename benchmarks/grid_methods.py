"""Grid methods side by side: lstsq, fft and adam on a 2-D blur kernel over an image (issue 29).

    python benchmarks/grid_methods.py            # 15x15 over 512x512 and 5x5 over 256x256, one run each
    python benchmarks/grid_methods.py --quick    # smoke run (7x7 over 64x64, 3x3 over 32x32)

The image is scikit-image's ``camera`` (resized; a white-noise image without scikit-image), blurred by a random
positive kernel ("valid" padding, a bias) plus noise of 1% of the output's standard deviation.  Two timings:

* ``solver``: the method's solver alone on a fresh :class:`~kernel_recovery.model.grid.GridProblem` (nothing
  cached: lstsq forms the Gram; fft chooses its operator by its cost model; adam factorizes the Gram for its
  whitening and compiles its loop);
* ``recover_kernel``: the front door (the determinacy report forms the Gram for every method, so fft reuses it,
  and the residual and checks are computed).

The lstsq and fft solvers: the median of 3 runs after a warm-up on a small problem; adam and the front
door: one run (adam's time includes its JIT compile).  Error: the largest difference from the
lstsq kernel relative to its largest coefficient, and the kernel's relative L2 error against the true kernel.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from harness import fmt_time, markdown_table, write_result

import kernel_recovery as kr
from kernel_recovery.model.grid import GridSpec, build_grid_problem, columns_to_kernel
from kernel_recovery.solvers import grid as grid_solvers
from kernel_recovery.solvers import grid_gradient, grid_spectral

#: name -> (method, options)
SOLVERS = {
    "lstsq": ("lstsq", {}),
    "fft": ("fft", {}),
    "fft operator='fft'": ("fft", {"operator": "fft"}),
    "adam": ("adam", {}),
}
FUNCTIONS = {"lstsq": grid_solvers.solve_lstsq, "fft": grid_spectral.solve, "adam": grid_gradient.solve}
#: adam's front door is not timed above this many pixels (its solver's time plus the report's, ~1.5 min on 2 cores)
DOOR_LIMIT = 300 * 300
#: lstsq and fft solvers: the median of this many runs
REPEAT = 3


def image(n: int, rng: np.random.Generator) -> np.ndarray:
    try:
        from skimage import data
        from skimage.transform import resize

        img = resize(data.camera().astype(float) / 255.0, (n, n), anti_aliasing=True)
    except ImportError:
        img = rng.standard_normal((n, n))
    return img - img.mean()


def case(n: int, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = image(n, rng)
    w = rng.random((k, k))
    w /= w.sum()
    y = kr.conv(x, w[:, :, None, None], np.array([0.1]))
    y = y + 0.01 * y.std() * rng.standard_normal(y.shape)
    return x, y, w


def run(n: int, k: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    x, y, w = case(n, k, rng)
    warm_up = build_grid_problem(x[:32, :32], y[: 32 - k + 1, : 32 - k + 1], GridSpec.create((k, k), use_bias=True))
    for method in ("lstsq", "fft"):  # imports and first-call costs out of the timings
        FUNCTIONS[method](warm_up)
    spec = GridSpec.create((k, k), use_bias=True)
    rows, kernels = [], {}
    for name, (method, options) in SOLVERS.items():
        times = []
        for _ in range(1 if method == "adam" else REPEAT):  # a fresh problem each time: nothing cached
            problem = build_grid_problem(x, y, spec)
            t0 = time.perf_counter()
            sol = FUNCTIONS[method](problem, **options)
            times.append(time.perf_counter() - t0)
        solver_time = float(np.median(times))
        kernels[name] = columns_to_kernel(problem.config, sol.coefs)[0][..., 0, 0]
        door_time, door_ok = float("nan"), True
        if method != "adam" or x.size <= DOOR_LIMIT:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a blurred photograph's kernel is ill-conditioned: said, not timed
                t0 = time.perf_counter()
                res = kr.recover_kernel(x, y, (k, k), use_bias=True, method=method, **options)
                door_time = time.perf_counter() - t0
            door_ok = res.success
        if method == "fft":
            how = f"{sol.diagnostics['operator'][0]}, {sol.diagnostics['iterations'][0]} CG steps"
        elif method == "adam":
            how = f"{sol.n_iterations} steps"
        else:
            how = sol.diagnostics["solver"][0]
        rows.append(
            {
                "problem": f"{k}x{k} over {n}x{n}",
                "method": name,
                "solver": fmt_time(solver_time),
                "how": how,
                "recover_kernel": fmt_time(door_time),
                "success": bool(sol.success and door_ok),
                "_solver": solver_time,
                "_door": door_time,
                "_kernel": kernels[name],
            }
        )
    ref = kernels["lstsq"]
    base = rows[0]
    for r in rows:
        r["vs lstsq (solver)"] = f"{r['_solver'] / base['_solver']:.2f}x"
        r["vs lstsq (door)"] = f"{r['_door'] / base['_door']:.2f}x" if r["_door"] == r["_door"] else "-"
        r["max diff from lstsq"] = f"{np.max(np.abs(r['_kernel'] - ref)) / np.max(np.abs(ref)):.1e}"
        r["error vs true"] = f"{np.linalg.norm(r['_kernel'] - w) / np.linalg.norm(w):.3g}"
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run, seconds")
    args = parser.parse_args()
    sizes = [(64, 7), (32, 3)] if args.quick else [(512, 15), (256, 5)]
    rows = [r for n, k in sizes for r in run(n, k)]
    columns = ["problem", "method", "solver", "vs lstsq (solver)", "how", "recover_kernel", "vs lstsq (door)"]
    columns += ["max diff from lstsq", "error vs true", "success"]
    body = (
        "Solvers lstsq/fft: median of 3; adam and recover_kernel: one run (shared machine: timings drift 2-3x "
        "between runs; the ratios are from the same run). "
        "adam's times include its JIT compile; its front door is not timed on the large image (its solver's time "
        "plus the method-independent report and residual that the lstsq row shows).\n\n" + markdown_table(rows, columns)
    )
    write_result("grid_methods", "Grid methods: lstsq, fft and adam on 2-D blur kernels", body, args.quick)


if __name__ == "__main__":
    main()
