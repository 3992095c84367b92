"""
An underdetermined design, and its fix
======================================

Ten input samples through a 6-tap filter give only five output samples: five equations
for six unknowns. Infinitely many kernels reproduce ``y`` exactly, and no method can
tell them apart. kernel_recovery says so (:func:`kernel_recovery.analyze`, an
:class:`~kernel_recovery.UnderdeterminedWarning` from
:func:`kernel_recovery.recover_kernel`), names the directions the data cannot see, and
says what data would settle it.
"""

import warnings

import matplotlib.pyplot as plt
import numpy as np

import kernel_recovery as kr
from kernel_recovery import datasets

ex = datasets.underdetermined()
rep = kr.analyze(ex.x, ex.y, ex.kernel_size, warn=False)
print(rep)

# %%
# What recover_kernel does
# ------------------------
#
# It warns, and returns the minimum-norm kernel among those that fit: it fits ``y``
# perfectly and is still wrong, by a multiple of the invisible direction
# ``rep.null_space``.
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    res = kr.recover_kernel(ex.x, ex.y, ex.kernel_size)
for w in caught:
    print(f"{w.category.__name__}: {w.message}")
err = np.abs(res.kernel - ex.kernel).max()
print(f"residual {res.residual_rms:.1e}, max kernel error {err:.2f}")

# null_space[o] is (n_directions, kernel_size, in_channels); here one direction
null = rep.null_space[0][0, :, 0]
miss = (ex.kernel - res.kernel)[:, 0, 0]
coef = float(null @ miss)
print(f"true - recovered = {coef:.3f} x null:", np.allclose(miss, coef * null))

# %%
# The fix: more data
# ------------------
#
# The report asked for a record of at least 11 samples. :func:`kernel_recovery.plan`
# answers the same from shapes alone, before recording, and tells the accuracy to expect
# at a given noise level.
print(kr.plan(ex.kernel_size, lengths=40, noise_level=0.01))

rng = np.random.default_rng(1)
x_long = rng.standard_normal(40)
y_long = kr.conv1d(x_long, ex.kernel)
fixed = kr.recover_kernel(x_long, y_long, ex.kernel_size)
err = np.abs(fixed.kernel - ex.kernel).max()
print(f"40 samples: {fixed.report.status}, max kernel error {err:.1e}")

# %%
# A second cause: an input that does not excite every direction
# --------------------------------------------------------------
#
# Length is not enough: a constant or a single sinusoid, however long, determines only
# one or two combinations of the taps. The report lists the cause per input channel.
t = np.arange(400)
x_poor = np.column_stack([rng.standard_normal(400), np.ones(400), np.sin(0.3 * t)])
poor = kr.analyze(x_poor, None, kernel_size=4, use_bias=True, warn=False)
print(poor.status, "rank", poor.rank, "of", poor.unknowns)
for cause in poor.causes:
    print(" -", cause)

# %%
# The spectra
# -----------
#
# Singular values of the design, from :meth:`~kernel_recovery.DeterminacyReport.plot`:
# the short record has one zero, the long one none; the poorly excited input has six
# below the tolerance.
fig, axes = plt.subplots(1, 3, figsize=(11, 3.4), layout="constrained")
rep.plot(ax=axes[0])
axes[0].set_title("10 samples, K=6")
fixed.report.plot(ax=axes[1])
axes[1].set_title("40 samples, K=6")
poor.plot(ax=axes[2])
axes[2].set_title("noise + constant + sinusoid, K=4")
plt.show()
