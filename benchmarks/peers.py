"""Peers, side by side in one process on the same data: what users do today against kernel_recovery.

    python benchmarks/peers.py            # full run (a few minutes; uses torch/keras/pylops when installed)
    python benchmarks/peers.py --quick    # smoke run, seconds, no peers required

Problems: the tutorial's three examples; a noisy single-channel record (L=1e4, K=32); a noisy multichannel
record (L=1e5 full / 2e3 quick, Cin=Cout=4, K=32).  Every row reports the median time over repeats (after a
warm-up), the max absolute kernel error against the true kernel, and the time ratio to kernel_recovery's lstsq
on the same problem.  A peer that is not installed is listed as such.
"""

from __future__ import annotations

import argparse
import os
import warnings

os.environ.setdefault("KERAS_BACKEND", "jax")  # the tutorial's Keras 3 on JAX (before any keras import)

import numpy as np
import scipy.fft
import scipy.linalg
from harness import fmt_time, markdown_table, measure, write_result

import kernel_recovery as kr
from kernel_recovery import datasets, solvers


def im2col(x: np.ndarray, k: int) -> np.ndarray:
    """(L, C) -> (L - k + 1, k * C) valid-mode design, tap-major."""
    w = np.lib.stride_tricks.sliding_window_view(x, k, axis=0)  # (m, C, k)
    return w.transpose(0, 2, 1).reshape(len(w), -1)


# -- peers ------------------------------------------------------------------------------------------


def numpy_lstsq(x, y, k, **_):
    a = im2col(x, k)
    return np.linalg.lstsq(a, y, rcond=None)[0].reshape(k, x.shape[1], y.shape[1])


def normal_equations(x, y, k, **_):
    a = im2col(x, k)
    return np.linalg.solve(a.T @ a, a.T @ y).reshape(k, x.shape[1], y.shape[1])


def solve_toeplitz(x, y, k, **_):
    """Single channel: Wiener/Yule-Walker normal equations with a Toeplitz Gram (edge terms ignored)."""
    if x.shape[1] != 1 or y.shape[1] != 1:
        return None
    x0, y0 = x[:, 0], y[:, 0]
    n = len(x0)
    r = np.array([x0[: n - j] @ x0[j:] for j in range(k)])
    c = np.array([x0[j : j + len(y0)] @ y0 for j in range(k)])
    return scipy.linalg.solve_toeplitz(r, c).reshape(k, 1, 1)


def naive_spectral(x, y, k, **_):
    """Single channel: divide spectra of valid-mode data and keep the first k taps."""
    if x.shape[1] != 1 or y.shape[1] != 1:
        return None
    n = len(x)
    # y[t] = sum_j x[t + j] w[j]  ->  Y = X * conj(W) circularly on the valid part (edges ignored)
    yf = np.zeros(n)
    yf[: len(y)] = y[:, 0]
    ratio = scipy.fft.rfft(yf) / scipy.fft.rfft(x[:, 0])
    h = scipy.fft.irfft(np.conj(ratio), n)
    return h[:k].reshape(k, 1, 1)


def pylops_lsqr(x, y, k, **_):
    """Single channel: lsqr on Restriction @ Convolve1D(h=x) @ Pad, the model being the reversed kernel."""
    import pylops

    if x.shape[1] != 1 or y.shape[1] != 1:
        return None
    n = len(x)
    op = (
        pylops.Restriction(n, np.arange(len(y)))
        @ pylops.signalprocessing.Convolve1D(n, h=x[:, 0], offset=k - 1)
        @ pylops.Pad(k, (0, n - k))
    )
    sol = pylops.optimization.basic.lsqr(op, y[:, 0], x0=np.zeros(k), niter=10 * k, atol=1e-14, btol=1e-14)[0]
    return sol[::-1].reshape(k, 1, 1)


def torch_loop(x, y, k, steps=500, lr=5e-2, loss="mae", **_):
    import torch

    torch.manual_seed(0)
    xt = torch.tensor(x.T[None], dtype=torch.float32)
    yt = torch.tensor(y.T[None], dtype=torch.float32)
    layer = torch.nn.Conv1d(x.shape[1], y.shape[1], k, bias=False)
    opt = torch.optim.Adam(layer.parameters(), lr=lr)
    lossf = torch.nn.L1Loss() if loss == "mae" else torch.nn.MSELoss()
    for _ in range(steps):
        opt.zero_grad()
        out = lossf(layer(xt), yt)
        out.backward()
        opt.step()
    return layer.weight.detach().numpy().transpose(2, 1, 0).astype(np.float64)


def keras_loop(x, y, k, steps=500, lr=5e-2, **_):
    """The classic tutorial: Sequential Conv1D, Adam(5e-2), MAE, model.fit one epoch at a time."""
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((x.shape[0], x.shape[1])), keras.layers.Conv1D(y.shape[1], k, use_bias=False)]
    )
    model.compile(optimizer=keras.optimizers.Adam(lr), loss="mae")
    for _ in range(steps):
        model.fit(x[None], y[None], epochs=1, verbose=0)
    return np.asarray(model.layers[0].get_weights()[0], dtype=np.float64)


PEERS = {
    "numpy.linalg.lstsq (im2col)": (numpy_lstsq, None),
    "normal equations (im2col)": (normal_equations, None),
    "scipy.linalg.solve_toeplitz": (solve_toeplitz, None),
    "naive spectral division": (naive_spectral, None),
    "PyLops lsqr (Convolve1D)": (pylops_lsqr, "pylops"),
    "PyTorch loop (Conv1d + Adam, MAE)": (torch_loop, "torch"),
    "Keras 3 loop (tutorial, JAX backend)": (keras_loop, "keras"),
}


def installed(module: str | None) -> bool:
    if module is None:
        return True
    try:
        __import__(module)
    except ImportError:
        return False
    return True


# -- problems ---------------------------------------------------------------------------------------


def problems(quick: bool):
    out = []
    for ex in datasets.tutorial_examples():
        x = np.asarray(ex.x, float).reshape(len(ex.x), -1)
        y = np.asarray(ex.y, float).reshape(len(ex.y), -1)
        out.append((f"tutorial: {ex.name}", x, y, ex.kernel_size, ex.kernel, 1000))
    rng = np.random.default_rng(0)
    for name, length, c, k in [
        ("noisy 1ch", 2_000 if quick else 10_000, 1, 32),
        ("noisy 4ch", 2_000 if quick else 100_000, 4, 32),
    ]:
        w = rng.standard_normal((k, c, c)) / np.sqrt(k * c)
        x = rng.standard_normal((length, c))
        y = kr.conv1d(x, w) + 1e-3 * rng.standard_normal((length - k + 1, c))
        out.append((f"{name}: L={length}, Cin=Cout={c}, K={k}", x, y, k, w, 500))
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, no optional peers")
    args = parser.parse_args(argv)
    quick = args.quick
    rows = []
    for pname, x, y, k, w, steps in problems(quick):
        repeat = 1 if quick else 3
        results = []
        for method in solvers.METHODS:

            def ours(method=method, x=x, y=y, k=k):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    return kr.recover_kernel(x, y, k, method=method).kernel

            m = measure(ours, repeat=repeat, warmup=1)
            results.append((f"kernel_recovery {method}", m["median"], m["value"]))
        for label, (fn, module) in PEERS.items():
            slow = "loop" in label
            if not installed(module) or (quick and module is not None):
                results.append((label, None, "not installed" if not installed(module) else "skipped (--quick)"))
                continue
            if slow and "Keras" in label and x.shape[0] * steps > 5e6:
                results.append((label, None, "skipped (too slow at this size)"))
                continue
            kw = {"steps": steps}
            m = measure(
                lambda fn=fn, kw=kw, x=x, y=y, k=k: fn(x, y, k, **kw),
                repeat=1 if slow else repeat,
                warmup=0 if slow else 1,
            )
            results.append((label, m["median"], m["value"]))
        base = next(t for lab, t, _ in results if lab == "kernel_recovery lstsq")
        for label, t, val in results:
            if isinstance(val, str):
                rows.append({"problem": pname, "method": label, "time": "-", "max abs error": val, "time / ours": "-"})
            elif val is None:
                rows.append(
                    {
                        "problem": pname,
                        "method": label,
                        "time": "-",
                        "max abs error": "n/a (multichannel)",
                        "time / ours": "-",
                    }
                )
            else:
                err = float(np.max(np.abs(np.asarray(val).reshape(w.shape) - w)))
                rows.append(
                    {
                        "problem": pname,
                        "method": label,
                        "time": fmt_time(t),
                        "max abs error": f"{err:.1e}",
                        "time / ours": f"{t / base:.1f}x",
                    }
                )
    body = (
        "Time: median over repeats after a warm-up (gradient loops: one run). Error: max |kernel - true kernel|. "
        "Ratio: time over kernel_recovery lstsq on the same problem.\n\n"
        + markdown_table(rows, ["problem", "method", "time", "max abs error", "time / ours"])
    )
    write_result("peers", "Peers side by side", body, quick)


if __name__ == "__main__":
    main()
