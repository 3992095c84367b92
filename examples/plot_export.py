"""
Export to PyTorch, Keras and SciPy
==================================

A recovered kernel drops straight into the layer it came from. Here a PyTorch
``nn.Conv1d`` with stride 2, padding 1 and a bias is recovered from its inputs and
outputs, then loaded into a fresh ``nn.Conv1d`` and a Keras ``Conv1D``, which reproduce
the original outputs on new inputs; a single-channel FIR filter goes to
``scipy.signal.convolve``.

PyTorch and Keras are optional (``pip install "kernel_recovery[export]"``): each part of
this example is skipped, with a message, when its framework is not installed.
"""

import os

import matplotlib.pyplot as plt
import numpy as np
import scipy.signal

import kernel_recovery as kr

try:
    import torch
except ImportError:
    torch = None
# Keras reads its backend when first imported; JAX is there already (kernel_recovery
# depends on it).
os.environ.setdefault("KERAS_BACKEND", "jax")
try:
    import keras
except ImportError:
    keras = None

rng = np.random.default_rng(0)
x = rng.standard_normal((2, 3, 200))  # (batch, channels, length): the PyTorch layout
x_new = rng.standard_normal((1, 3, 120))

# %%
# The layer to recover
# --------------------
#
# With PyTorch installed, a real ``nn.Conv1d`` makes the data; without it,
# :func:`kernel_recovery.conv1d` (which matches it exactly) stands in.
if torch is not None:
    torch.manual_seed(0)
    original = torch.nn.Conv1d(3, 5, 4, stride=2, padding=1, dtype=torch.float64)
    with torch.no_grad():
        y = original(torch.from_numpy(x)).numpy()
        y_new = original(torch.from_numpy(x_new)).numpy()
else:
    print("torch is not installed: the data come from kr.conv1d instead of nn.Conv1d.")
    w = rng.standard_normal((4, 3, 5))
    y = kr.conv1d(x, w, np.arange(5.0), stride=2, padding=1, layout="ncw")
    y_new = kr.conv1d(x_new, w, np.arange(5.0), stride=2, padding=1, layout="ncw")

res = kr.recover_kernel(x, y, 4, stride=2, padding=1, use_bias=True, layout="ncw")
print(res.report.status, "kernel", res.kernel.shape, "bias", res.bias.shape)
print("configuration to rebuild the layer with:", res.config.describe())

# %%
# PyTorch
# -------
#
# ``res.to_torch()`` is a state dict: weight ``(out, in // groups, kernel_size)`` and
# bias.
if torch is not None:
    layer = torch.nn.Conv1d(3, 5, 4, stride=2, padding=1, dtype=torch.float64)
    layer.load_state_dict(res.to_torch(dtype=torch.float64))
    with torch.no_grad():
        out = layer(torch.from_numpy(x_new)).numpy()
    print(f"torch: max |rebuilt - original| {np.abs(out - y_new).max():.1e}")
    dw = (layer.weight - original.weight).abs().max().item()
    print(f"weight difference {dw:.1e}")
else:
    print("torch is not installed: skipping the PyTorch export.")

# %%
# Keras
# -----
#
# ``res.to_keras()`` is the ``[kernel, bias]`` list for ``Conv1D.set_weights``; Keras is
# channels-last, so the data are transposed. Keras computes in float32, so it agrees to
# about 1e-6.
if keras is not None:
    conv = keras.layers.Conv1D(5, 4, strides=2, padding="valid", use_bias=True)
    conv.build((None, None, 3))
    conv.set_weights(res.to_keras())
    # Keras pads only "valid", "same" or "causal": padding=1 is applied by hand.
    nwc = x_new.transpose(0, 2, 1).astype("float32")
    padded = np.pad(nwc, ((0, 0), (1, 1), (0, 0)))
    out = np.asarray(conv(padded)).transpose(0, 2, 1)
    err, backend = np.abs(out - y_new).max(), keras.backend.backend()
    print(f"keras: max |rebuilt - original| {err:.1e} ({backend} backend)")
else:
    print("keras is not installed: skipping the Keras export.")

# %%
# SciPy
# -----
#
# ``scipy.signal.convolve`` is a true convolution, so a filter recovered with
# ``flip=True`` exports as is; ``res.to_scipy()`` reverses the taps when the result is a
# cross-correlation.
h_true = np.array([0.5, 1.0, -0.25, 0.1])
u = rng.standard_normal(300)
v = scipy.signal.convolve(u, h_true, mode="valid")
fir = kr.recover_kernel(u, v, 4, flip=True)
h = fir.to_scipy()
print("scipy:", h.round(12), np.allclose(scipy.signal.convolve(u, h, mode="valid"), v))

# %%
# The rebuilt layer's outputs
# ---------------------------
rebuilt = res.predict(x_new)
fig, ax = plt.subplots(figsize=(7, 3.2), layout="constrained")
for o in range(2):
    (line,) = ax.plot(y_new[0, o], lw=2, alpha=0.4, label=f"original, output {o}")
    ax.plot(
        rebuilt[0, o], "--", color=line.get_color(), lw=1, label=f"rebuilt, output {o}"
    )
ax.set_xlabel("output sample")
ax.legend(fontsize=8, ncols=2)
plt.show()
