"""
A room impulse response with an unknown delay
=============================================

An acoustics measurement: one second of white noise played by a loudspeaker, recorded
by a microphone across a noisy room (15 dB signal-to-noise ratio), at 8 kHz. The
recording ``y`` is on the same clock as the played signal ``x`` but starts late by an
unknown delay (the sound's travel time plus the sound card's latency), and the response
then rings for a few hundred samples.

Instead of guessing a ``kernel_size`` and a padding, ``lags="auto"`` chooses the first
and the last lag of the response from the data (:func:`kernel_recovery.select_lags`:
a prewhitened cross-correlation, then nested least-squares fits scored by BIC), and
fits it. The room is simulated with `pyroomacoustics
<https://github.com/LCAV/pyroomacoustics>`_ (image sources) when it is installed (the
``test`` extra), else the response is exponentially decaying noise after a direct path.
"""

import time

import matplotlib.pyplot as plt
import numpy as np

import kernel_recovery as kr

fs, n, latency = 8000, 8000, 150  # 1 s of noise; 150 samples of sound-card latency
rng = np.random.default_rng(0)


def room_response():
    """A 4 x 3 x 2.5 m room's response, from its direct sound on."""
    try:
        import pyroomacoustics as pra
    except ImportError:  # a synthetic reverberation tail instead
        h = rng.standard_normal(500) * np.exp(-np.arange(500) / 60.0) * 0.3
        h[:40] = 0.0
        h[0] = 1.0
        return h, "synthetic (pyroomacoustics is not installed)"
    room = pra.ShoeBox([4.0, 3.0, 2.5], fs=fs, materials=pra.Material(0.7), max_order=6)
    room.add_source([1.0, 1.0, 1.5])
    room.add_microphone([3.0, 2.2, 1.2])
    room.compute_rir()
    h = np.asarray(room.rir[0][0], dtype=float)
    start = int(np.argmax(np.abs(h))) - 10  # the direct sound (with its sinc's lead)
    return h[start:], "pyroomacoustics image sources"


h, source = room_response()
x = rng.standard_normal(n)
clean = np.concatenate([np.zeros(latency), np.convolve(x, h)[: n - latency]])
y = clean + 10 ** (-15 / 20) * clean.std() * rng.standard_normal(n)  # 15 dB SNR
print(f"response: {source}, {len(h)} taps after a delay of {latency} samples")

# %%
# Delay and length from the data
# ------------------------------
#
# ``flip=True``: a physical convolution, ``y[t] = sum_l h[l] x[t - l]``, so that
# ``kernel[i]`` is the response at lag ``res.lags[i]``. ``regularization="tc"`` (the
# tuned/correlated prior of MATLAB's ``impulseest``: a response that decays along the
# lag) also gives the posterior covariance of the taps, which the bands below need
# (plain least squares of a kernel this long runs by conjugate gradients on the Toeplitz
# Gram, without factoring it, and has no standard errors). The chosen length ends where
# the reverberation tail sinks under the noise: BIC keeps the taps the data determine.
t0 = time.perf_counter()
res = kr.recover_kernel(x, y, lags="auto", flip=True, regularization="tc")
elapsed = time.perf_counter() - t0
choice = res.diagnostics["lags"]
first, last = res.lags[0], res.lags[-1]
print(f"chosen lags {first}..{last} ({len(res.lags)} taps) in {elapsed:.2f} s")
print(f"true delay {latency}; res.delay {res.delay} (the first tap above 5 stderr)")
print(f"the lag search: onset at lag {choice['onset']}, peak at {choice['peak']}")
print(f"noise {choice['noise_std']:.4f}, residual rms {res.residual_rms:.4f}")

# The true response on the chosen lags (zero outside its support), to compare with
true = np.zeros(len(res.lags))
inside = (res.lags >= latency) & (res.lags < latency + len(h))
true[inside] = h[res.lags[inside] - latency]
error = np.linalg.norm(res.kernel.ravel() - true) / np.linalg.norm(h)
print(f"relative error of the response: {error:.3f}")

# %%
# The response
# ------------
#
# Over the chosen lags (in ms), with the 95 % band of every tap: the bulk delay before
# the direct sound, then the early reflections and the reverberation tail.
lo, hi = res.confidence_interval(0.95)
t_ms = res.lags / fs * 1e3
fig, ax = plt.subplots(figsize=(8, 3.4), layout="constrained")
band = dict(color="C0", alpha=0.3, lw=0, label="95 % band")
ax.fill_between(t_ms, lo.ravel(), hi.ravel(), **band)
ax.plot(t_ms, res.kernel.ravel(), color="C0", lw=0.8, label="recovered")
ax.plot(t_ms, true, color="C3", lw=0.6, ls="--", label="true")
ax.set_xlabel("lag (ms)")
ax.set_ylabel("response")
ax.legend(loc="upper right", fontsize=8)
plt.show()

# %%
# The frequency response and its bands
# ------------------------------------
#
# ``res.frequency_response(fs=fs)`` evaluates ``H(f) = sum_l h[l] exp(-2j pi f l / fs)``
# with pointwise bands propagated from the covariance of the taps (delta method). The
# true response lies inside the band at most frequencies, as a 95 % pointwise band
# should.
#
# In the Bode plot the phase of a delayed response turns by ``-360 f D / fs`` degrees:
# here tens of thousands of degrees, which hide the room. ``remove_delay=True`` takes
# the bulk delay ``D`` out of the phase before unwrapping it (the lag of the largest
# tap, the direct sound; the title says which); ``fs`` puts the axis in Hz. Near a deep
# notch the unwrapped phases of the estimate and of the truth may part by 360 degrees (a
# branch of the unwrapping, not an error: the wrapped phases agree).
fr = res.frequency_response(fs=fs)
true_response = np.exp(-2j * np.pi * np.outer(fr.freqs / fs, res.lags)) @ true
inside_band = fr.contains(true_response[:, None, None]).mean()
print(f"{len(fr.freqs)} frequencies, bands from the {fr.band_source}")
print(f"true response inside the 95 % band at {inside_band:.0%} of them")

fig = res.plot(kind="bode", fs=fs, remove_delay=True, true_kernel=true)
plt.show()
