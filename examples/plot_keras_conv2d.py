"""
The kernel of a Keras Conv2D layer
==================================

What does this ``Conv2D`` layer compute? Given its inputs and outputs, the weights
come back exactly: :func:`kernel_recovery.recover_kernel` with a 2-D ``kernel_size``
solves the least-squares problem of the layer's convolution (stride, padding,
dilation, groups and bias as Keras defines them), says whether the data determine
every coefficient, and exports the result back to a fresh layer.

Keras runs here on its JAX backend (JAX is there already: kernel_recovery depends on
it). Without Keras (``pip install "kernel_recovery[export]"``) the example makes the
same data with :func:`kernel_recovery.conv`, which matches the layer exactly.
"""

import os

import matplotlib.pyplot as plt
import numpy as np

import kernel_recovery as kr
from kernel_recovery.plotting import plot_kernel_image

# Keras reads its backend when first imported.
os.environ.setdefault("KERAS_BACKEND", "jax")
try:
    import keras
except ImportError:
    keras = None

rng = np.random.default_rng(0)
x = rng.standard_normal((8, 32, 32, 3)).astype("float32")  # (batch, h, w, channels)

# %%
# The layer
# ---------
#
# Three input channels, four filters of 3x5, a stride of 2 down the rows,
# TensorFlow's ``"same"`` padding and a bias: the weights are random, as after
# initialization, or as in a layer someone else trained.
settings = dict(strides=(2, 1), padding="same", use_bias=True)
if keras is not None:
    layer = keras.layers.Conv2D(
        4,
        (3, 5),
        **settings,
        kernel_initializer=keras.initializers.RandomNormal(seed=1),
        bias_initializer=keras.initializers.RandomNormal(seed=2),
    )
    y = np.asarray(layer(x))
    # not get_weights(): Keras' Variable.numpy() trips NumPy 2's copy deprecation
    w_true, b_true = (np.asarray(v.value) for v in layer.weights)
else:
    print("keras is not installed: kr.conv stands in for the layer")
    w_true = rng.standard_normal((3, 5, 3, 4)).astype("float32") * 0.05
    b_true = rng.standard_normal(4).astype("float32") * 0.05
    y = kr.conv(x, w_true, b_true, stride=(2, 1), padding="same").astype("float32")
print("x", x.shape, "-> y", y.shape)

# %%
# Recover the kernel
# ------------------
#
# The same settings as the layer, in the library's vocabulary (``stride``,
# ``use_bias``). Each output sample is one equation per filter; 3x5x3 + 1 = 46
# unknowns per filter against 8 x 16 x 32 = 4096 equations.
res = kr.recover_kernel(x, y, (3, 5), stride=(2, 1), padding="same", use_bias=True)
print(res.report)
rel = np.linalg.norm(res.kernel - w_true) / np.linalg.norm(w_true)
print(f"relative kernel error {rel:.1e}")
print(f"largest bias error {np.abs(res.bias - b_true).max():.1e}")

# %%
# The layer computes in float32: its outputs carry the weights to about 1e-8
# relative (float32's rounding, averaged over 4096 equations), not exactly. The
# standard errors, estimated from the residual, say the same.
print(f"largest standard error {res.stderr.max():.1e}")

# %%
# The kernel as images: one row per (input, output) channel pair, the layer's own
# weights beside it on the same colour scale, and the standard errors.
fig = plot_kernel_image(res, true_kernel=w_true, max_panels=6)
plt.show()

# %%
# Back into a layer
# -----------------
#
# ``res.to_keras()`` gives the list ``Conv2D.set_weights`` takes; a fresh layer
# with the recovered weights reproduces the original on new inputs.
x_new = rng.standard_normal((2, 20, 24, 3)).astype("float32")
if keras is not None:
    fresh = keras.layers.Conv2D(4, (3, 5), **settings)
    fresh.build(x_new.shape)
    fresh.set_weights(res.to_keras())
    gap = np.abs(np.asarray(fresh(x_new)) - np.asarray(layer(x_new))).max()
    print(f"fresh layer vs original on new inputs: max difference {gap:.1e}")
else:
    weights = res.to_keras()
    shapes = [w.shape for w in weights]
    print("keras is not installed: the weights for Conv2D.set_weights:", shapes)
