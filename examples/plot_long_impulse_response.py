"""
A long impulse response
=======================

A room or a loudspeaker seen by a microphone is an FIR filter with thousands of taps:
here 4096 taps of exponentially decaying noise (a reverberation tail) after a direct
path, driven by 60 000 samples of white noise, with a little measurement noise. It is a
true convolution, ``y[t] = sum_d h[d] x[t - d]``, so we pass ``flip=True``
(deep-learning layers are cross-correlations) and ``padding="causal"`` (output ``t``
sees inputs up to ``t``).

An explicit design matrix would hold 60 000 x 4096 numbers (2 GB). kernel_recovery never
builds it: ``method="lstsq"`` forms the Toeplitz normal equations from lagged
correlations and solves them by FFT-preconditioned conjugate gradients, and
``method="fft"`` deconvolves in the frequency domain and then corrects the edges
exactly. Both take a fraction of a second.
"""

import time

import matplotlib.pyplot as plt
import numpy as np
import scipy.signal

import kernel_recovery as kr

rng = np.random.default_rng(0)
K, L, fs = 4096, 60_000, 16_000.0
delay = np.arange(K)
h = rng.standard_normal(K) * np.exp(-delay / 600.0)
h[0] = 1.0  # the direct path
x = rng.standard_normal(L)
clean = scipy.signal.convolve(x, h)[:L]
y = clean + 1e-3 * rng.standard_normal(L)
settings = dict(padding="causal", flip=True)
print("kr.conv1d agrees with scipy:", np.allclose(kr.conv1d(x, h, **settings), clean))

# %%
# Two methods, one call each
# --------------------------
results = {}
for method in ("lstsq", "fft"):
    t0 = time.perf_counter()
    results[method] = res = kr.recover_kernel(x, y, K, method=method, **settings)
    dt = time.perf_counter() - t0
    err, rms = np.abs(res.kernel.ravel() - h).max(), res.residual_rms
    print(f"{method:<6} {dt * 1e3:6.1f} ms, max error {err:.1e}, residual {rms:.1e}")
print("lstsq solved it by", results["lstsq"].diagnostics["solver"])
print("expected error per unit noise:", results["lstsq"].report.error_per_unit_noise)

# %%
# Is the kernel long enough?
# --------------------------
#
# With thousands of taps the refit with a few more taps would cost more than the solve,
# so it is skipped (``diagnostics["checks"]`` says so). The lag scan is not: the residual
# is cross-correlated with the (prewhitened) input at thousands of lags beyond the kernel,
# by FFT, and a response cut short is a ``KernelSizeWarning`` that says where it goes on
# and what to pass. For ``method="fft"`` the share of the response's energy outside the
# kernel is also in ``diagnostics["out_of_support_energy"]`` (per output channel).
import warnings

for k in (1024, K):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", kr.KernelSizeWarning)
        r = kr.recover_kernel(x, y, k, method="fft", **settings)
    outside = r.diagnostics["out_of_support_energy"][0]
    print(f"kernel_size={k}: residual rms {r.residual_rms:.1e}, outside {outside:.1e}")
    print("  lag scan:", r.diagnostics["checks"]["lag_scan"], *(str(w.message) for w in caught))

# %%
# The response and its error
# --------------------------
res = results["lstsq"]
t_ms = delay / fs * 1e3
fig, (ax0, ax1) = plt.subplots(2, 1, figsize=(8, 5), sharex=True, layout="constrained")
ax0.plot(t_ms, h, lw=0.6, label="true")
ax0.plot(t_ms, res.kernel.ravel(), lw=0.6, ls="--", label="recovered (lstsq)")
ax0.set_ylabel("tap weight")
ax0.legend(fontsize=8)
for method, alpha in (("lstsq", 1.0), ("fft", 0.7)):
    error = np.abs(results[method].kernel.ravel() - h)
    ax1.semilogy(t_ms, error, lw=0.4, alpha=alpha, label=method)
ax1.set_xlabel("delay (ms at 16 kHz)")
ax1.set_ylabel("|error|")
ax1.legend(fontsize=8)
plt.show()
