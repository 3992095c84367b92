"""
The tutorial's three examples
=============================

The classic "recover a Conv1D kernel" tutorial trains a Keras model with Adam to find
the weights of a convolution from its inputs and outputs. The problem is linear: each
output sample is one equation in the unknown taps, so least squares gives the kernel
exactly, in one call.

Its three examples are built in (:func:`kernel_recovery.datasets.tutorial_examples`):
one filter over ``x = [0, 3, 4, 5]``, a two-channel input, and two filters over the same
input.
"""

import matplotlib.pyplot as plt
import numpy as np

import kernel_recovery as kr
from kernel_recovery import datasets

# %%
# A single filter
# ---------------
#
# ``y[t] = w[0] x[t] + w[1] x[t + 1]`` (Keras and PyTorch layers are
# cross-correlations): three outputs give three equations in two unknowns.
res = kr.recover_kernel([0, 3, 4, 5], [6, 11, 14], kernel_size=2)
print(res.kernel.ravel())
print(res.report.status, res.report.equations, res.report.unknowns)  # per output

# %%
# Every method, side by side
# --------------------------
#
# ``method=`` picks the strategy; the result has the same fields whatever the method, so
# results compare line by line. ``"lstsq"`` (the default) is exact, ``"fft"`` works in
# the frequency domain, ``"adam"`` is compiled gradient descent (what the tutorial does,
# here to ~1e-6 instead of ~1e-2).
examples = datasets.tutorial_examples()
print(f"{'example':<15} {'method':<6} {'max error':>10} {'residual':>10}  status")
for ex in examples:
    for method in ("lstsq", "fft", "adam"):
        r = kr.recover_kernel(ex.x, ex.y, ex.kernel_size, method=method)
        err = np.abs(r.kernel - ex.kernel).max()
        rms, status = r.residual_rms, r.report.status
        print(f"{ex.name:<15} {method:<6} {err:10.1e} {rms:10.1e}  {status}")

# %%
# The recovered kernels
# ---------------------
#
# One panel per example, the taps of every (input, output) channel pair: the recovered
# values sit on the true ones.
fig, axes = plt.subplots(1, 3, figsize=(10, 3.2), layout="constrained")
for ax, ex in zip(axes, examples):
    r = kr.recover_kernel(ex.x, ex.y, ex.kernel_size)
    taps = np.arange(ex.kernel_size)
    pairs = [(i, o) for i in range(r.kernel.shape[1]) for o in range(r.kernel.shape[2])]
    for n, (i, o) in enumerate(pairs):
        at = taps + 0.15 * (n - (len(pairs) - 1) / 2)  # side by side, one pair each
        (line,) = ax.plot(at, ex.kernel[:, i, o], "o", mfc="none", ms=11)
        label = f"in {i} -> out {o}"
        ax.plot(at, r.kernel[:, i, o], "x", ms=7, color=line.get_color(), label=label)
    ax.set_title(ex.name)
    ax.set_xlabel("tap")
    ax.set_xticks(taps)
    ax.set_xlim(-0.6, ex.kernel_size - 0.4)
    ax.margins(y=0.25)
    ax.legend(fontsize=8, loc="upper left")
axes[0].set_ylabel("weight (o: true, x: recovered)")
plt.show()
