"""
A radio channel from a QPSK training sequence
=============================================

A receiver knows the training symbols it was sent and records what arrived: the
transmitted sequence convolved with the channel (echoes with their delays and phase
shifts) plus noise, all in complex baseband. :func:`kernel_recovery.recover_kernel`
takes complex ``x`` and ``y`` as they are: the convolution stays bilinear (no
conjugate on the kernel), the normal equations are ``A^H A w = A^H y``, and the
standard errors hold for circular complex noise: each of a tap's real and imaginary
parts has standard deviation ``stderr / sqrt(2)``, so a 95 % confidence region is a
disc of radius ``sqrt(ln 20) stderr`` (about 1.73 stderr).
"""

import matplotlib.pyplot as plt
import numpy as np

import kernel_recovery as kr

rng = np.random.default_rng(7)
n_symbols, n_taps = 512, 8


def qpsk(n):
    """Unit-power QPSK symbols: (+-1 +-1j) / sqrt(2)."""
    return (rng.choice([-1.0, 1.0], n) + 1j * rng.choice([-1.0, 1.0], n)) / np.sqrt(2)


# a direct path and a few decaying echoes with random phases
delays = np.arange(n_taps)
channel = np.exp(-delays / 2.5) * np.exp(2j * np.pi * rng.random(n_taps))
channel[2] *= 0.2
snr_db = 12.0
noise_std = np.sqrt(np.sum(np.abs(channel) ** 2) / 10 ** (snr_db / 10))


def received(x):
    """The channel as a true convolution: ``flip=True``, and ``"causal"``
    padding, so that y[t] depends on x[t], x[t-1], ..."""
    y = kr.conv(x, channel[:, None, None], padding="causal", flip=True)
    white = rng.standard_normal(len(y)) + 1j * rng.standard_normal(len(y))
    noise = noise_std * white / np.sqrt(2)  # circular: equal real and imaginary power
    return y + noise


x = qpsk(n_symbols)
y = received(x)
res = kr.recover_kernel(x, y, n_taps, padding="causal", flip=True)
h, se = res.kernel[:, 0, 0], res.stderr[:, 0, 0]
estimated = res.diagnostics["noise_std"][0]
print(f"{res.report.status}; noise std estimated {estimated:.4f}, true {noise_std:.4f}")
for t in range(n_taps):
    error = abs(h[t] - channel[t])
    print(
        f"tap {t}: {h[t]:.3f} +- {se[t]:.3f} (true {channel[t]:.3f}, |err| {error:.3f})"
    )

# %%
# The taps in the complex plane
# -----------------------------
#
# Each estimate with its 95 % disc; the true taps as crosses. Discs of the same
# radius: a white training sequence excites every delay equally.
radius = np.sqrt(np.log(20.0))
fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 4.4), layout="constrained")
for t in range(n_taps):
    centre = (h[t].real, h[t].imag)
    ax.add_patch(plt.Circle(centre, radius * se[t], color=f"C{t}", alpha=0.25, lw=0))
    ax.plot(h[t].real, h[t].imag, "o", color=f"C{t}", ms=4)
    ax.plot(channel[t].real, channel[t].imag, "x", color="k", ms=6)
    ax.annotate(str(t), centre, textcoords="offset points", xytext=(5, 5), fontsize=8)
ax.set_aspect("equal")
ax.axhline(0, color="0.8", lw=0.8)
ax.axvline(0, color="0.8", lw=0.8)
ax.set_xlabel("real")
ax.set_ylabel("imaginary")
ax.set_title("taps with 95 % discs (x: true)", fontsize=10)

# %%
# The magnitude per delay, with the same band as a magnitude interval.
ax2.bar(delays, np.abs(h), color="C0", alpha=0.7, label="|estimate|")
ax2.errorbar(
    delays,
    np.abs(h),
    yerr=radius * se,
    fmt="none",
    color="C0",
    capsize=3,
    label="95 % radius",
)
ax2.plot(delays, np.abs(channel), "kx", label="|true|")
ax2.set_xlabel("delay (symbols)")
ax2.set_title(f"|channel| ({n_symbols} QPSK symbols, SNR {snr_db:.0f} dB)", fontsize=10)
ax2.legend(fontsize=8)
plt.show()

# %%
# Do the discs hold 95 % of the time?
# -----------------------------------
#
# Fresh training sequences and fresh noise, 200 times: the fraction of taps inside
# their disc, and the spread of the real and imaginary errors in units of
# ``stderr / sqrt(2)`` (1 if the standard errors are right).
inside, z_real, z_imag = [], [], []
for _ in range(200):
    xs = qpsk(n_symbols)
    r = kr.recover_kernel(xs, received(xs), n_taps, padding="causal", flip=True)
    err, s = r.kernel[:, 0, 0] - channel, r.stderr[:, 0, 0]
    inside.append(np.abs(err) <= radius * s)
    z_real.append(err.real / (s / np.sqrt(2)))
    z_imag.append(err.imag / (s / np.sqrt(2)))
print(f"coverage of the 95 % discs: {np.mean(inside):.1%} of {np.size(inside)} taps")
print(f"std of real errors / (stderr/sqrt2): {np.std(z_real):.2f}")
print(f"std of imaginary errors / (stderr/sqrt2): {np.std(z_imag):.2f}")
