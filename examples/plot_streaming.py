"""
Streaming: chunks, workers and records larger than memory
=========================================================

Least squares needs only a few sufficient statistics of the data (``A^T A``, ``A^T Y``,
``Y^T Y`` and a row count), and they add up over any partition of the output samples.
:class:`kernel_recovery.NormalEquations` accumulates them chunk by chunk, exactly across
chunk boundaries, so a live recording can be solved at any moment and a long one never
has to fit in memory.

Here a 2-input, 2-output sensor with 16 taps and ``padding="same"`` streams 200 000
samples in chunks of irregular sizes, with noise of standard deviation 0.05.
"""

import os
import tempfile

import matplotlib.pyplot as plt
import numpy as np

import kernel_recovery as kr

rng = np.random.default_rng(0)
K, L, noise = 16, 200_000, 0.05
w = rng.standard_normal((K, 2, 2)) * np.exp(-np.arange(K) / 5.0)[:, None, None]
x = rng.standard_normal((L, 2))
y = kr.conv1d(x, w, padding="same") + noise * rng.standard_normal((L, 2))


def chunks(x, y, rng):
    """A live source: pieces of random length (cut at the same places in x and y here;
    they need not be)."""
    i = 0
    while i < len(x):
        n = int(rng.integers(500, 5000))
        yield x[i : i + n], y[i : i + n]
        i += n


# %%
# Solve as the data arrive
# ------------------------
#
# ``solve()`` can be called at any point; the error falls as one over the square root of
# the samples seen, as the plan predicts for this noise level.
acc = kr.NormalEquations(K, padding="same")
n, seen, errors = 0, [], []
for xc, yc in chunks(x, y, np.random.default_rng(1)):
    acc.update(xc, yc)
    n += len(xc)
    if not seen or n >= 1.5 * seen[-1]:  # solve at roughly log-spaced checkpoints
        errors.append(np.sqrt(((acc.solve().kernel - w) ** 2).sum(axis=(0, 1))).max())
        seen.append(n)
final = acc.solve()
full = kr.recover_kernel(x, y, K, padding="same")


def gap(a, b):
    """Largest difference between the kernels of two results."""
    return np.abs(a.kernel - b.kernel).max()


print(f"streamed vs in-memory: max difference {gap(final, full):.1e}")

lengths = np.logspace(np.log10(seen[0]), np.log10(L), 30)
predicted = [
    kr.plan(K, lengths=int(n), in_channels=2, noise_level=noise).expected_error.max()
    for n in lengths
]

# %%
# Two workers, one answer
# -----------------------
#
# Two accumulators that saw different sequences (here: the two halves of the record as
# separate sequences) merge into one; the merged solve equals the solve on both
# sequences together.
a, b = kr.NormalEquations(K, padding="same"), kr.NormalEquations(K, padding="same")
a.update(x[: L // 2], y[: L // 2])
b.update(x[L // 2 :], y[L // 2 :])
a.merge(b)
halves = [x[: L // 2], x[L // 2 :]], [y[: L // 2], y[L // 2 :]]
both = kr.recover_kernel(*halves, K, padding="same")
print(f"merged vs a batch of the two halves: max difference {gap(a.solve(), both):.1e}")

# %%
# recover_kernel on a stream or a file
# ------------------------------------
#
# ``recover_kernel`` takes an iterator of ``(x_chunk, y_chunk)`` pairs (with ``y=None``)
# and arrays mapped from disk (``numpy.memmap``, zarr, Dask) directly, and streams them
# through the same statistics.
res = kr.recover_kernel(chunks(x, y, np.random.default_rng(2)), None, K, padding="same")
print(f"from a generator: max difference {gap(res, full):.1e}")

with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "x.f64")
    x.tofile(path)
    xm = np.memmap(path, np.float64, "r", shape=x.shape)
    res = kr.recover_kernel(xm, y, K, padding="same", chunk_size=1 << 15)
    del xm  # release the mapping before the file is removed
print(f"from a memmap, 32768 samples at a time: max difference {gap(res, full):.1e}")

# %%
# The error against the samples seen
# ----------------------------------
fig, ax = plt.subplots(figsize=(6, 3.6), layout="constrained")
ax.loglog(seen, errors, "o-", ms=4, label="streamed solve")
ax.loglog(lengths, predicted, "--", label="kr.plan: expected error")
ax.set_xlabel("samples seen")
ax.set_ylabel("kernel error (root-sum-square, worst output)")
ax.legend(fontsize=8)
plt.show()
