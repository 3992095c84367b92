"""
The blur kernel of a photograph
===============================

Given a sharp photograph and its blurred copy, what was the blur? The usual answer
divides their Fourier transforms; it assumes the blur wraps around the image's edges
and amplifies the noise wherever the photograph has little energy. Least squares on
the valid part of the blurred image has neither problem, and a point-spread function
is non-negative and sums to one, which ``constraints=`` enforces exactly.

The photograph is scikit-image's camera man (``skimage.data.camera()``, shipped with
scikit-image), cropped to 256x256 to keep this example fast; the blur a 15x15 motion
kernel (a line of 11 pixels at 30 degrees); the noise 1 % of the blurred image's
standard deviation.
"""

import time

import matplotlib.pyplot as plt
import numpy as np
import skimage.data

import kernel_recovery as kr

rng = np.random.default_rng(0)
sharp = skimage.data.camera()[128:384, 128:384].astype(float) / 255.0


def motion_kernel(size, length, angle):
    """A line of ``length`` pixels through the centre at ``angle`` degrees, sum 1."""
    k = np.zeros((size, size))
    c = (size - 1) / 2
    t = np.linspace(-(length - 1) / 2, (length - 1) / 2, 20 * length)
    rows = np.rint(c - t * np.sin(np.radians(angle))).astype(int)
    cols = np.rint(c + t * np.cos(np.radians(angle))).astype(int)
    np.add.at(k, (rows, cols), 1.0)
    return k / k.sum()


psf = motion_kernel(15, 11, 30.0)
# a true convolution (flip=True), as a camera blurs; "valid": no wrap-around, no edge
blurred = kr.conv(sharp, psf[:, :, None, None], flip=True)
noise_std = 0.01 * blurred.std()
blurred = blurred + noise_std * rng.standard_normal(blurred.shape)
print("sharp", sharp.shape, "-> blurred", blurred.shape)

# %%
# The methods
# -----------
#
# Three fits by :func:`kernel_recovery.recover_kernel` (``flip=True``: the kernel in
# convolution orientation, as a PSF), and the two classic divisions. FFT division
# cuts the sharp image to the blurred one's size (the part under the valid outputs)
# and divides their transforms, as if the blur wrapped around; Wiener division adds
# the noise-to-signal ratio, here with the true noise level and the true kernel's
# mean power (an advantage the other methods do not get).
k = 15
m = blurred.shape[0]
c = k // 2
sharp_f = np.fft.fft2(sharp[c : c + m, c : c + m])
psf_power = np.mean(np.abs(np.fft.fft2(psf, s=blurred.shape)) ** 2)


def spectral(regularization):
    ratio = (
        np.fft.fft2(blurred) * sharp_f.conj() / (np.abs(sharp_f) ** 2 + regularization)
    )
    h = np.fft.ifft2(ratio).real
    taps = (np.arange(k) - (k - 1 - c)) % m  # the circular kernel's taps, around 0
    return h[np.ix_(taps, taps)]


estimates, seconds = {}, {}


def fit(name, func):
    t0 = time.perf_counter()
    estimates[name] = func()
    seconds[name] = time.perf_counter() - t0


def lstsq(**options):
    res = kr.recover_kernel(sharp, blurred, (k, k), flip=True, **options)
    return res.kernel[:, :, 0, 0]


fit("lstsq", lstsq)
fit("lstsq, PSF constraints", lambda: lstsq(constraints=("nonnegative", "sum_to_one")))
fit("fft (exact)", lambda: lstsq(method="fft"))
fit("FFT division", lambda: spectral(1e-12 * np.abs(sharp_f).max() ** 2))
fit("Wiener division", lambda: spectral(m * m * noise_std**2 / psf_power))

errors = {
    name: np.linalg.norm(e - psf) / np.linalg.norm(psf) for name, e in estimates.items()
}
for name, e in errors.items():
    print(f"{name:24s} relative error {e:.4f}   {seconds[name] * 1e3:7.0f} ms")

# %%
# Side by side
# ------------
#
# One colour scale for every kernel (the true one's range): the divisions spread
# noise over the whole kernel, least squares leaves a faint haze, and the PSF
# constraints clear it (every coefficient the data do not support is held at zero).
fig, axes = plt.subplots(1, len(estimates) + 1, figsize=(14, 3.0), layout="constrained")
top = psf.max()
for ax, (name, kernel) in zip(axes, [("true", psf), *estimates.items()]):
    im = ax.imshow(kernel, cmap="RdBu_r", vmin=-top, vmax=top, interpolation="nearest")
    title = name if name == "true" else f"{name}\nerror {errors[name]:.3f}"
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
fig.colorbar(im, ax=axes, shrink=0.8)
plt.show()

# %%
# The photograph, blurred, and the blurred copy predicted by the constrained
# kernel: its residual is the noise.
psf_constraints = ("nonnegative", "sum_to_one")
res = kr.recover_kernel(sharp, blurred, (k, k), flip=True, constraints=psf_constraints)
fig, axes = plt.subplots(1, 3, figsize=(10, 3.6), layout="constrained")
residual = blurred - res.predict(sharp)
images = [("sharp", sharp), ("blurred + 1 % noise", blurred), ("residual", residual)]
for ax, (name, img) in zip(axes, images):
    ax.imshow(img, cmap="gray")
    ax.set_title(name, fontsize=9)
    ax.set_axis_off()
print(f"residual std {residual.std():.2e} (noise std {noise_std:.2e})")
print(res.diagnostics["constraints"]["n_active"], "coefficients held at zero of", k * k)
plt.show()
