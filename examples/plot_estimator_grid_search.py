"""
Temporal response functions with scikit-learn
=============================================

:class:`kernel_recovery.KernelEstimator` is :func:`kernel_recovery.recover_kernel` as a
scikit-learn regressor (``pip install 'kernel_recovery[sklearn]'``): ``X`` is one
multichannel time series (time along axis 0), ``y`` the outputs on the same time axis,
and the model is a finite impulse response over a window of lags,
``y[t] = b + sum_l h[l] X[t - l]``. So it fits in pipelines, grid searches and
cross-validation like any other regressor; ``score`` is :math:`R^2`.

This is the temporal-response-function (mTRF, MNE ``ReceptiveField``) workflow: a
stimulus with two features drives three recorded channels through smooth responses over
lags -5..30, each channel with its own noise level. The window is long and the record
short and noisy, so the ridge penalty matters, and the best penalty differs per channel.
"""

import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, TimeSeriesSplit

import kernel_recovery as kr

rng = np.random.default_rng(0)
n, lags = 1500, (-5, 30)
lag = np.arange(lags[0], lags[1] + 1)
x = rng.standard_normal((n, 2))  # two stimulus features
x[:, 1] = np.convolve(x[:, 1], np.ones(4) / 2, mode="same")  # a coloured one

# smooth causal responses (zero at negative lags), one per feature and channel
shape = np.where(lag >= 0, np.exp(-lag / 6.0) * np.sin(lag / 3.0), 0.0)
true = np.stack(
    [np.outer(shape, [1.0, 0.6, -0.8]), np.outer(np.roll(shape, 4), [0.5, -1.0, 0.3])],
    axis=1,
)
clean = kr.conv1d(x, true, flip=True, lags=lags)
noise_std = np.array([0.3, 1.0, 2.5])  # the third channel is the noisiest
y = clean + noise_std * rng.standard_normal(clean.shape)
x_train, y_train, x_test, y_test = x[:1000], y[:1000], x[1000:], y[1000:]

# %%
# One ridge for all channels, by cross-validation
# -----------------------------------------------
#
# A time series is not a bag of rows: the folds must be contiguous blocks, as
# :class:`~sklearn.model_selection.TimeSeriesSplit` makes them (each trains on the past
# and tests on the block after it).
cv = TimeSeriesSplit(n_splits=4)
ridges = np.logspace(0, 4, 9)
est = kr.KernelEstimator(lags=lags)
search = GridSearchCV(est, {"ridge": ridges}, cv=cv).fit(x_train, y_train)
print(f"one ridge for all: {search.best_params_['ridge']:.3g}")
print(f"held-out R^2 {search.score(x_test, y_test):.3f}")

# %%
# A ridge per channel
# -------------------
#
# ``ridge`` also takes one value per output. Searching each channel on its own picks
# its own penalty; the noisiest channel wants the most shrinkage.
per_channel = []
for o in range(y.shape[1]):
    per_channel.append(clone(search).fit(x_train, y_train[:, o]).best_params_["ridge"])
per_channel = np.array(per_channel)
own = kr.KernelEstimator(lags=lags, ridge=per_channel).fit(x_train, y_train)
print("ridge per channel:", per_channel.round(3))
print(f"held-out R^2 {own.score(x_test, y_test):.3f}")
print("held-out fit % per channel:", own.fit_percent(x_test, y_test).round(1))

# %%
# The same choice inside one fit: ``regularization="gcv"`` tunes the ridge of each
# channel by generalized cross-validation; the choices are in ``result_.options``.
gcv = kr.KernelEstimator(lags=lags, regularization="gcv").fit(x_train, y_train)
print("GCV ridge per channel:", gcv.result_.options["ridge"].round(3))
print(f"held-out R^2 {gcv.score(x_test, y_test):.3f}")

# %%
# The window, by cross-validation
# -------------------------------
#
# ``kernel_size`` is a causal window (lags ``0 .. kernel_size - 1``) that a grid search
# can choose too; windows shorter than the response say so (``KernelSizeWarning``).
sizes = {"kernel_size": [5, 10, 20, 40], "ridge": [10.0]}
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always", kr.KernelSizeWarning)
    by_size = GridSearchCV(kr.KernelEstimator(), sizes, cv=cv).fit(x_train, y_train)
print(f"kernel_size {by_size.best_params_['kernel_size']}")
print(f"{len(caught)} fits said their window was too short")

# %%
# The responses
# -------------
fig, axes = plt.subplots(2, 3, figsize=(9, 4.6), sharex=True, layout="constrained")
for c in range(2):
    for o in range(3):
        ax = axes[c, o]
        ax.plot(lag, true[:, c, o], "k", lw=2, label="true")
        ax.plot(own.lags_, own.kernel_[:, c, o], label="ridge per channel")
        ax.plot(gcv.lags_, gcv.kernel_[:, c, o], "--", label="GCV")
        ax.set_title(f"feature {c} -> channel {o} (noise {noise_std[o]:g})", fontsize=8)
axes[0, 0].legend(fontsize=7)
for ax in axes[1]:
    ax.set_xlabel("lag (samples)")
plt.show()
