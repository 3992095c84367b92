"""
A custom solver
===============

``method=`` also takes a function ``solve(problem, **options) -> Solution``. It never
sees padding, stride, dilation, groups or layouts:
:func:`kernel_recovery.recover_kernel` validates the data and hands it a
:class:`~kernel_recovery.model.problem.CanonicalProblem`, in which every group is a *valid,
stride-1, undilated* cross-correlation (a :class:`~kernel_recovery.model.problem.Block`). The
solver returns one kernel per block, in that canonical space, as a
:class:`~kernel_recovery.Solution`; ``recover_kernel`` maps it back to the user's kernel
and computes the residual, the report and the checks, so the result is the same
:class:`~kernel_recovery.KernelResult` as for the built-in methods.

Here, a ridge regression on an explicit design matrix, in a dozen lines.
"""

import matplotlib.pyplot as plt
import numpy as np

import kernel_recovery as kr


def ridge_on_im2col(problem, *, alpha=0.0):
    """Least squares with an L2 penalty ``alpha`` on the taps, on the im2col design."""
    use_bias = problem.config.use_bias
    kernels, biases = [], []
    for block in problem.blocks:
        rows, targets = [], []
        for x, y in zip(block.xs, block.ys):
            # (t, channels, taps) windows; keep the free (tap, channel) coefficients
            windows = np.lib.stride_tricks.sliding_window_view(x, block.taps, axis=0)
            a = windows.transpose(0, 2, 1)[:, block.mask]
            rows.append(np.hstack([a, np.ones((len(a), 1))]) if use_bias else a)
            targets.append(y)
        a, y = np.concatenate(rows), np.concatenate(targets)
        penalty = alpha * np.eye(a.shape[1])
        if use_bias:
            penalty[-1, -1] = 0.0  # the bias is not shrunk
        coef = np.linalg.solve(a.T @ a + penalty, a.T @ y)
        n_free = int(block.mask.sum())
        w = np.zeros((block.taps, block.channels, len(block.out_channels)))
        w[block.mask] = coef[:n_free]
        kernels.append(w)
        biases.append(coef[n_free] if use_bias else None)
    biases = biases if use_bias else None
    return kr.Solution(kernels=kernels, biases=biases, options={"alpha": alpha})


# %%
# Any configuration, the same solver
# ----------------------------------
#
# Stride 2, dilation 3, two groups, ``padding="same"``, channels-first data and a bias:
# all of it is in the reduction, none of it in the solver.
rng = np.random.default_rng(0)
x = rng.standard_normal((3, 4, 400))  # (batch, channels, length)
w = rng.standard_normal((5, 2, 4))  # (kernel_size, in_channels // groups, out_channels)
config = dict(stride=2, dilation=3, groups=2, padding="same", layout="ncw")
y = kr.conv1d(x, w, [0.1, 0.2, 0.3, 0.4], **config)
y = y + 0.1 * rng.standard_normal(y.shape)
settings = dict(config, use_bias=True)

mine = kr.recover_kernel(x, y, 5, method=ridge_on_im2col, **settings)
ref = kr.recover_kernel(x, y, 5, **settings)
print(mine.method, mine.success, mine.report.status, mine.options)
print(f"alpha=0 vs method='lstsq': {np.abs(mine.kernel - ref.kernel).max():.1e}")

# %%
# What the solver sees
# --------------------
#
# One block per group. Stride 2 became two polyphase channels per input channel, so 5
# taps of 2 channels became 3 canonical taps of 4 channels, the sixth (nonexistent) tap
# of each input channel held at zero by ``mask``: 10 free coefficients. Dilation 3 split
# each of the 3 sequences into 3 interleaved subsequences, and the padding zeros are
# written out.


def show(problem):
    print(problem.config.describe())
    for i, b in enumerate(problem.blocks):
        print(
            f"block {i}: {len(b.xs)} subsequences of shape {b.xs[0].shape}, "
            f"taps={b.taps}, channels={b.channels}, free coefficients={b.n_free}, "
            f"outputs {b.out_channels.tolist()}"
        )
    return ridge_on_im2col(problem)


_ = kr.recover_kernel(x, y, 5, method=show, **settings)

# %%
# Its options are checked
# -----------------------
#
# The keyword-only parameters of the solver are its options; any other is a
# ``TypeError``.
try:
    kr.recover_kernel(x, y, 5, method=ridge_on_im2col, lam=1.0, **settings)
except TypeError as err:
    print("TypeError:", err)

# %%
# Shrinkage against error
# -----------------------
#
# Here the data are plentiful (hundreds of equations for 11 unknowns per output), so the
# penalty only adds bias: the error grows with ``alpha``. Shrinkage pays on short, noisy
# records; the built-in ``regularization="tc"`` of ``method="lstsq"`` chooses it from
# the data.
alphas = np.logspace(-2, 4, 25)
errors = []
for a in alphas:
    fit = kr.recover_kernel(x, y, 5, method=ridge_on_im2col, alpha=a, **settings)
    errors.append(np.abs(fit.kernel - w).max())
fig, ax = plt.subplots(figsize=(6, 3.4), layout="constrained")
ax.semilogx(alphas, errors, "o-", ms=3)
ax.axhline(np.abs(ref.kernel - w).max(), ls="--", color="gray", label="method='lstsq'")
ax.set_xlabel("alpha")
ax.set_ylabel("max kernel error")
ax.legend(fontsize=8)
plt.show()
