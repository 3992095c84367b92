"""
A noisy multichannel recording
==============================

Three sensors feed two outputs through an 8-tap filter bank with ``padding="same"`` and
a bias per output; the outputs carry white noise (standard deviation 0.01). This is
:func:`kernel_recovery.datasets.noisy_multichannel`.

With noise the kernel is no longer exact, so the questions are how close it is and how
sure we can be: least squares gives standard errors (``res.stderr``) and Student-t
confidence intervals, and the determinacy report predicts the error before solving.
"""

import matplotlib.pyplot as plt
import numpy as np

import kernel_recovery as kr
from kernel_recovery import datasets

ex = datasets.noisy_multichannel()
print(ex.description)
print("x", ex.x.shape, "y", ex.y.shape, "kernel", ex.kernel.shape)
print("settings", ex.settings)

# %%
# Recover kernel and bias
# -----------------------
res = kr.recover_kernel(ex.x, ex.y, ex.kernel_size, **ex.settings)
print(res.report)
print(f"max kernel error {np.abs(res.kernel - ex.kernel).max():.1e}")
print(f"bias {res.bias.round(4)} (true {ex.bias})")
print(f"residual rms {res.residual_rms:.4f} (the noise level is 0.01)")

# %%
# Uncertainty
# -----------
#
# ``stderr`` is the standard error of every coefficient, from the noise level estimated
# off the residual; about 95 % of the true taps fall inside the 95 % intervals.
lo, hi = res.confidence_interval(0.95)
inside = (lo <= ex.kernel) & (ex.kernel <= hi)
print(f"typical stderr {np.median(res.stderr):.1e}")
print(f"true taps inside their 95 % interval: {inside.mean():.0%}")
# Root-sum-square kernel error per output channel: the report's expected value (per unit
# noise, times the noise level), and this one draw, which scatters around it.
print("expected: ", (0.01 * res.report.error_per_unit_noise).round(5))
print("this draw:", np.sqrt(((res.kernel - ex.kernel) ** 2).sum(axis=(0, 1))).round(5))

# %%
# The figure
# ----------
#
# :meth:`~kernel_recovery.KernelResult.plot` draws every (input, output) pair with its
# 95 % band and the true kernel, then the residuals and the design's singular values
# (what the report's status is read from).
fig = res.plot(ex.x, ex.y, true_kernel=ex.kernel)
plt.show()

# %%
# More noise, wider bands
# -----------------------
#
# The error grows in proportion to the noise, the intervals widen with it, and their
# coverage stays near 95 %. (The noise is the same draw scaled, so the coverage is the
# same at every level.)
for noise in (0.01, 0.1, 1.0):
    e = datasets.noisy_multichannel(noise=noise)
    r = kr.recover_kernel(e.x, e.y, e.kernel_size, **e.settings)
    lo, hi = r.confidence_interval(0.95)
    cover = ((lo <= e.kernel) & (e.kernel <= hi)).mean()
    err, width = np.abs(r.kernel - e.kernel).max(), np.median(hi - lo)
    print(f"noise {noise:4.2f}: max error {err:.1e}, interval {width:.1e}, {cover:.0%}")
