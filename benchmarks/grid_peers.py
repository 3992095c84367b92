"""2-D kernels from images: kernel_recovery's lstsq against what users do today, side by side in one process.

    python benchmarks/grid_peers.py            # full run (~3 minutes on 2 cores): 256/512 (and 2048) images
    python benchmarks/grid_peers.py --quick    # smoke run, seconds: a 128x128 crop, 5x5 and 9x9 kernels

The problem: the scikit-image camera photograph (``skimage.data.camera()``, 512x512, scaled to [0, 1]; its
top-left 256x256 crop, and for 2048x2048 4x4 mirrored copies of it), blurred by a motion
kernel (a line of length k at 30 degrees, slightly smoothed, summing to one) of size 5x5, 15x15 or 31x31 as a
``"valid"`` cross-correlation (``kr.conv``, the model of a Conv2D layer and of a blur without wrap-around), plus
white noise of 1 % of the blurred image's standard deviation.  Every method gets the sharp and the blurred image
and returns the kernel; the error is ``||k_est - k|| / ||k||``.

The methods:

- ``kr lstsq``: ``kr.recover_kernel(x, y, (k, k))`` (exact least squares, the default method);
- ``numpy FFT division``: the kernel as ``ifft2(fft2(y) / fft2(x_c))`` with ``x_c`` the part of the sharp image
  under the valid outputs (the usual answer: it takes the blur as circular; a floor of ``1e-12 max|X|^2`` keeps it
  finite), read at the k x k kernel's offsets;
- ``pylops lsqr``: PyLops ``Convolve2D`` with the image as the operator's filter and the (reversed, zero-padded)
  kernel as the unknown, restricted to the valid window, solved by ``pylops.optimization.basic.lsqr``
  (``LSQR_ITERATIONS`` iterations, from zero);
- ``torch Adam``: a ``torch.nn.Conv2d(1, 1, k, bias=False)`` (float32, CPU, weight from zero) trained on the
  mean squared error by ``torch.optim.Adam(lr=ADAM_LR)`` for ``ADAM_STEPS`` full-image steps, on one thread
  (``torch.set_num_threads(1)``: on a shared machine its two threads spin-wait, 50x slower at 256x256).

Each time is one run after a warm-up on a small problem (the machine is shared: read the ratios, which come from
the same run).  A peer whose time, estimated from a short probe, would exceed its share of the budget is skipped
with the estimate printed, as is the 2048x2048 image when the 512x512 times say it would not fit.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from harness import fmt_time, markdown_table, versions, write_result

import kernel_recovery as kr

LSQR_ITERATIONS = 100
ADAM_STEPS = 300
ADAM_LR = 1e-3
NOISE = 0.01
#: Seconds one peer may take on one problem (estimated by a probe before it runs).
PEER_BUDGET = 30.0


def image(n: int) -> np.ndarray:
    import skimage.data

    cam = skimage.data.camera().astype(np.float64) / 255.0
    if n <= cam.shape[0]:
        return np.ascontiguousarray(cam[:n, :n])
    # mirrored copies: the photograph's detail at every scale and no seams (an upsampled copy is smooth and leaves
    # high spatial frequencies unseen: a 15x15 kernel was rank 216 of 225 on the bilinear 4x resize)
    return np.pad(cam, ((0, n - cam.shape[0]), (0, n - cam.shape[1])), mode="symmetric")


def motion_kernel(k: int, angle: float = 30.0) -> np.ndarray:
    """A line of length ``k`` through the centre at ``angle`` degrees, drawn by supersampling, lightly smoothed."""
    w = np.zeros((k, k))
    c = (k - 1) / 2
    t = np.linspace(-c, c, 40 * k)
    rows = np.clip(np.rint(c - t * np.sin(np.radians(angle))).astype(int), 0, k - 1)
    cols = np.clip(np.rint(c + t * np.cos(np.radians(angle))).astype(int), 0, k - 1)
    np.add.at(w, (rows, cols), 1.0)
    if k >= 5:
        import scipy.ndimage

        w = scipy.ndimage.gaussian_filter(w, 0.5)
    return w / w.sum()


def problem(n: int, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x, w = image(n), motion_kernel(k)
    y = kr.conv(x, w[:, :, None, None])
    return x, y + NOISE * y.std() * rng.standard_normal(y.shape), w


# -- the methods ----------------------------------------------------------------------------------------------


def kr_lstsq(x: np.ndarray, y: np.ndarray, k: int) -> np.ndarray:
    return kr.recover_kernel(x, y, (k, k)).kernel[:, :, 0, 0]


def fft_division(x: np.ndarray, y: np.ndarray, k: int) -> np.ndarray:
    """The usual answer: the sharp image cut to the blurred one's size (``c = k // 2`` pixels off each start, the
    part under the valid outputs) and ``h = ifft2(fft2(y) / fft2(x_c))``.  Circularly, ``y[i] = sum_a x_c[i + a - c]
    w[a]`` is ``y = h * x_c`` with ``h[c - a] = w[a]``: the kernel is ``h`` read at ``(c - a) mod m``."""
    c = k // 2
    m0, m1 = y.shape
    xf = np.fft.fft2(x[c : c + m0, c : c + m1])
    power = np.abs(xf) ** 2
    h = np.fft.ifft2(np.fft.fft2(y) * np.conj(xf) / np.maximum(power, 1e-12 * power.max())).real
    rows, cols = (c - np.arange(k)) % m0, (c - np.arange(k)) % m1
    return h[np.ix_(rows, cols)]


def pylops_operator(x: np.ndarray, k: int):
    """``A v = y``: ``v`` the kernel reversed (k, k), zero-padded to x's size, convolved with the image, cut."""
    import pylops

    n0, n1 = x.shape
    pad = pylops.Pad((k, k), ((0, n0 - k), (0, n1 - k)))
    conv = pylops.signalprocessing.Convolve2D((n0, n1), h=x, offset=(0, 0), method="fft")
    m0, m1 = n0 - k + 1, n1 - k + 1
    window = (np.arange(k - 1, k - 1 + m0)[:, None] * n1 + np.arange(k - 1, k - 1 + m1)[None, :]).ravel()
    return pylops.Restriction(n0 * n1, window) @ conv @ pad


def pylops_lsqr(x: np.ndarray, y: np.ndarray, k: int, niter: int = LSQR_ITERATIONS) -> np.ndarray:
    from pylops.optimization.basic import lsqr

    op = pylops_operator(x, k)
    v = lsqr(op, y.ravel(), x0=np.zeros(k * k), niter=niter, show=False)[0]
    return v.reshape(k, k)[::-1, ::-1]


def torch_adam(x: np.ndarray, y: np.ndarray, k: int, steps: int = ADAM_STEPS) -> np.ndarray:
    import torch

    torch.set_num_threads(1)
    xt = torch.tensor(x[None, None], dtype=torch.float32)
    yt = torch.tensor(y[None, None], dtype=torch.float32)
    layer = torch.nn.Conv2d(1, 1, k, bias=False)
    torch.nn.init.zeros_(layer.weight)
    opt = torch.optim.Adam(layer.parameters(), lr=ADAM_LR)
    for _ in range(steps):
        opt.zero_grad()
        loss = torch.mean((layer(xt) - yt) ** 2)
        loss.backward()
        opt.step()
    return layer.weight.detach().numpy()[0, 0].astype(np.float64)


METHODS = {
    "kr lstsq": kr_lstsq,
    "numpy FFT division": fft_division,
    "pylops lsqr": pylops_lsqr,
    "torch Adam": torch_adam,
}


def available(name: str) -> str | None:
    """Why a peer cannot run (not installed), or None."""
    module = {"pylops lsqr": "pylops", "torch Adam": "torch"}.get(name)
    if module is None:
        return None
    try:
        __import__(module)
    except ImportError:
        return f"{module} not installed"
    return None


def probe(name: str, x: np.ndarray, y: np.ndarray, k: int) -> float | None:
    """Estimated seconds of an iterative peer, from a few of its iterations (None: not iterative)."""
    if name == "torch Adam":
        t0 = time.perf_counter()
        torch_adam(x, y, k, steps=5)
        return (time.perf_counter() - t0) / 5 * ADAM_STEPS
    if name == "pylops lsqr":
        t0 = time.perf_counter()
        pylops_lsqr(x, y, k, niter=5)
        return (time.perf_counter() - t0) / 5 * LSQR_ITERATIONS
    return None


def run_case(n: int, k: int, budget: float, estimates: dict[str, float] | None = None) -> list[dict]:
    x, y, w = problem(n, k)
    rows, ours = [], None
    for name, func in METHODS.items():
        row = {"image": f"{n}x{n}", "kernel": f"{k}x{k}", "method": name}
        why = available(name)
        guess = None if estimates is None else estimates.get(name)
        if why is None and guess is None:
            guess = probe(name, x, y, k)
        if why is None and guess is not None and guess > budget:
            why = (
                f"skipped: ~{fmt_time(guess)} estimated (budget {fmt_time(budget)})"
                if np.isfinite(guess)
                else "skipped: over budget at 512x512"
            )
        if why is not None:
            row.update(time="-", error="-", ratio="-", note=why)
            rows.append(row)
            print(f"  {row['image']} {row['kernel']} {name}: {why}", flush=True)
            continue
        t0 = time.perf_counter()
        est = func(x, y, k)
        elapsed = time.perf_counter() - t0
        err = float(np.linalg.norm(est - w) / np.linalg.norm(w))
        if name == "kr lstsq":
            ours = elapsed
        ratio = f"{elapsed / ours:.2g}x" if ours else "-"
        row.update(time=fmt_time(elapsed), error=f"{err:.3g}", ratio=ratio, seconds=elapsed, note="")
        rows.append(row)
        print(f"  {row['image']} {row['kernel']} {name}: {fmt_time(elapsed)}, error {err:.3g}", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a 128x128 crop, 5x5 and 9x9 kernels")
    args = parser.parse_args()
    # warm-up: imports, first calls (JIT-free paths, but BLAS threads and FFT plans)
    for name, func in METHODS.items():
        if available(name) is None:
            xw, yw, _ = problem(32, 3)
            func(xw, yw, 3)
    sizes = [128] if args.quick else [256, 512]
    kernels = [5, 9] if args.quick else [5, 15, 31]
    rows: list[dict] = []
    for n in sizes:
        for k in kernels:
            rows += run_case(n, k, PEER_BUDGET)
    notes = []
    if not args.quick:
        # 2048x2048 has 16x the pixels of 512x512: a method's 512x512 time x 16 estimates its time there; it runs
        # when that fits its budget and the 2048x2048 runs together keep to ~2 minutes
        big_budget, big_spent = 120.0, 0.0
        for k in kernels:
            last = {
                r["method"]: r.get("seconds") for r in rows if r["image"] == "512x512" and r["kernel"] == f"{k}x{k}"
            }
            guess = {m: (16.0 * t if t is not None else float("inf")) for m, t in last.items()}
            if guess["kr lstsq"] > min(PEER_BUDGET, big_budget - big_spent):
                note = (
                    f"2048x2048, {k}x{k}: skipped, kr lstsq ~{fmt_time(guess['kr lstsq'])} estimated from "
                    f"512x512 x 16 ({fmt_time(big_budget - big_spent)} left of ~2 minutes for this size)"
                )
                print("  " + note, flush=True)
                notes.append(note)
                continue
            t0 = time.perf_counter()
            rows += run_case(2048, k, min(PEER_BUDGET, big_budget - big_spent), guess)
            big_spent += time.perf_counter() - t0
    table = markdown_table(rows, ["image", "kernel", "method", "time", "error", "ratio", "note"])
    body = (
        "Sharp image x and blurred image y (motion kernel, valid cross-correlation, 1 % white noise); error = "
        "||k_est - k|| / ||k||; ratio = time / kr lstsq's time on the same problem (same run).\n\n"
        f"Settings: pylops lsqr {LSQR_ITERATIONS} iterations; torch Adam {ADAM_STEPS} steps, lr {ADAM_LR} "
        f"(float32, CPU, one thread); peers estimated above {PEER_BUDGET:.0f} s per problem are skipped.  "
        f"Versions: {versions('pylops', 'torch', 'scikit-image')}.\n\n"
        + table
        + ("\n\n" + "\n".join(f"- {n}" for n in notes) if notes else "")
    )
    write_result("grid_peers", "2-D kernels from images: peers side by side", body, args.quick)


if __name__ == "__main__":
    main()
