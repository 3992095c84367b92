"""
Tracking a changing system
==========================

One kernel fitted to a whole record assumes the system stayed the same. Here it did
not: an echo path of 24 taps whose main echo slowly moves from lag 6 to lag 12 over the
first 15 000 samples, and then, at sample 15 000, abruptly changes (a door opened: a
second echo at lag 18 appears). :func:`kernel_recovery.recover_kernel` notices that one
kernel does not explain the record (a ``ChangeWarning`` with the time of the change);
:func:`kernel_recovery.track_kernel` gives the kernel over time, with standard errors,
from a sliding window of the last ``window`` samples (or exponential forgetting, the
recursive-least-squares solution), one estimate every ``step`` samples.
"""

import warnings

import matplotlib.pyplot as plt
import numpy as np

import kernel_recovery as kr

rng = np.random.default_rng(0)
n, taps, change_at = 30_000, 24, 15_000
lags = np.arange(taps)


def echo_path(t):
    """The true kernel at sample ``t``: a direct path, a moving echo, a new one."""
    h = np.zeros(taps)
    h[0] = 1.0
    where = 6 + 6 * min(t, change_at) / change_at  # fractional: shared by two taps
    low = int(where)
    h[low] += 0.6 * (1 - (where - low))
    h[min(low + 1, taps - 1)] += 0.6 * (where - low)
    if t >= change_at:
        h[18] = -0.5
    return h


x = rng.standard_normal(n)
padded = np.concatenate([np.zeros(taps - 1), x])
truth = np.array([echo_path(t) for t in range(n)])  # (n, taps)
# y[t] = sum_d h_t[d] x[t - d]: a true convolution whose kernel changes with t
windows = np.lib.stride_tricks.sliding_window_view(padded, taps)[:, ::-1]
y = np.einsum("td,td->t", windows, truth) + 0.05 * rng.standard_normal(n)

# %%
# One kernel for the whole record
# -------------------------------
#
# The fit is an average of the two systems, and the change test says so.
settings = dict(flip=True, padding="causal")
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always", kr.ChangeWarning)
    res = kr.recover_kernel(x, y, taps, **settings)
for w in caught:
    print(f"{w.category.__name__}: {w.message}")
print("change found near sample", res.diagnostics["change"]["times"])
print(f"residual rms {res.residual_rms:.3f} (the noise is 0.050)")

# %%
# The kernel over time
# --------------------
#
# A window of 2000 samples, an estimate every 250: 120 estimates of 24 taps, each with
# its standard errors, in one call (the statistics of every step are computed together).
# An estimate averages its window: compared with the kernel at the window's centre, its
# error is a few standard errors (the noise's), while the echo moves and after the jump.
window = 2000
track = kr.track_kernel(x, y, taps, window=window, step=250, **settings)
print(f"{len(track)} estimates, changes near {track.changes}")
print("sample  max |error| vs centre  max stderr")
for t in (4_999, 9_999, 14_999, 29_999):
    i = int(np.searchsorted(track.times, t))
    centre = truth[track.times[i] - window // 2]
    err = np.abs(track.kernels[i].ravel() - centre).max()
    print(f"{track.times[i]:>6}  {err:19.3f}  {np.nanmax(track.stderr[i]):10.3f}")

fig = track.plot()
plt.show()

# %%
# The estimates against the truth
# -------------------------------
#
# Four taps over time: the direct path (lag 0, constant), the moving echo passing lag 9
# and arriving at lag 12, and the new echo (lag 18), with their +-2 standard-error bands
# and the true values dashed. A window of 2000 samples lags the truth by about 1000
# samples (its centre) and blurs the jump over 2000.
fig, ax = plt.subplots(figsize=(8, 3.6), layout="constrained")
for k, color in ((0, "C0"), (9, "C1"), (12, "C2"), (18, "C3")):
    est, se = track.kernels[:, k, 0, 0], track.stderr[:, k, 0, 0]
    ax.plot(track.times, est, color=color, label=f"lag {k}")
    band = (est - 2 * se, est + 2 * se)
    ax.fill_between(track.times, *band, color=color, alpha=0.25, lw=0)
    ax.plot(np.arange(n), truth[:, k], color=color, ls="--", lw=1)
ax.axvline(change_at, color="k", lw=0.8, ls=":")
ax.set_xlabel("sample")
ax.set_ylabel("tap weight")
ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
plt.show()
