"""The forward model: Keras ``Conv1D`` / PyTorch ``nn.Conv1d`` semantics on NumPy arrays."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from .arrays import check_array_dtype, check_array_finite, restore_form
from .config import Layout, Padding
from .operator import forward
from .problem import build_problem


def conv1d(
    x: ArrayLike,
    kernel: ArrayLike,
    bias: ArrayLike | None = None,
    *,
    stride: int = 1,
    padding: Padding = "valid",
    dilation: int = 1,
    groups: int = 1,
    layout: Layout = "nwc",
    flip: bool = False,
    lags: tuple[int, int] | None = None,
) -> np.ndarray | list[np.ndarray]:
    """Apply a 1-D convolution layer exactly as Keras ``Conv1D`` and PyTorch ``nn.Conv1d`` do.

    Parameters
    ----------
    x : array_like or list of array_like
        Input.  ``layout="nwc"``: ``(batch, length, in_channels)``, one sequence ``(length, in_channels)``,
        or ``(length,)`` for one channel.  ``layout="ncw"``: ``(batch, in_channels, length)`` or
        ``(in_channels, length)``.  A list of arrays is a batch of sequences of different lengths.
    kernel : array_like
        ``(kernel_size, in_channels // groups, out_channels)`` (the Keras layout, whatever ``layout``);
        a 1-D kernel is ``(kernel_size,)`` with one input and one output channel.
    bias : array_like, optional
        ``(out_channels,)``.
    stride, dilation, groups : int
        As in Keras/PyTorch.  ``in_channels`` and ``out_channels`` must be divisible by ``groups``.
    padding : {"valid", "same", "causal", "full"}, int or (int, int)
        Output length for an input of ``L`` samples, with ``span = (kernel_size - 1) * dilation + 1``:

        - ``"valid"``: no padding, ``floor((L - span) / stride) + 1``.
        - ``"same"``: TensorFlow's rule, ``ceil(L / stride)``; the total padding
          ``max((out - 1) * stride + span - L, 0)`` is split with the extra zero on the right.
        - ``"causal"``: ``span - 1`` zeros on the left, ``ceil(L / stride)`` (Keras).
        - ``"full"``: ``span - 1`` zeros on both sides, ``floor((L + span - 2) / stride) + 1``
          (``scipy.signal.convolve(mode="full")`` at stride 1).
        - an int ``p`` or a pair ``(left, right)``: explicit zeros (PyTorch),
          ``floor((L + left + right - span) / stride) + 1``.
    layout : {"nwc", "ncw"}
        Channels-last (Keras) or channels-first (PyTorch).
    flip : bool
        False: cross-correlation (deep-learning convention).  True: true convolution, the kernel reversed
        along its taps (``scipy.signal.convolve``).
    lags : (int, int), optional
        ``(first, last)``: the kernel is a response at the physical lags ``first..last`` (``first`` may be
        negative) and the output is on the input's time axis, ``y[t] = sum_l h[l] x[t - l]`` with ``x`` zero
        outside the record; it replaces ``padding`` (stride and dilation 1).  With ``flip=True``,
        ``kernel[i]`` is the response at lag ``first + i``.

    Returns
    -------
    y : ndarray or list of ndarray
        Same form as ``x`` (a 1-D ``x`` with one output channel gives a 1-D ``y``), dtype the result type
        of ``x``, ``kernel`` and float32.  Computed in float64.

    Notes
    -----
    ``y[b, t, o] = bias[o] + sum_k sum_c xpad[b, t*stride + k*dilation, group(o)*Cin_g + c] * kernel[k, c, o]``,
    where ``xpad`` is ``x`` with the padding's zeros and ``Cin_g = in_channels // groups``.

    Examples
    --------
    >>> import kernel_recovery as kr
    >>> kr.conv1d([0.0, 3.0, 4.0, 5.0], [1.0, 2.0])
    array([ 6., 11., 14.])
    >>> kr.conv1d([1.0, 2.0, 3.0], [1.0, 10.0], padding="full", flip=True)  # as numpy.convolve
    array([ 1., 12., 23., 30.])
    """
    w = np.asarray(kernel)
    check_array_dtype(w, "kernel")
    if w.ndim == 1:
        w = w[:, None, None]
    if w.ndim != 3:
        raise ValueError(
            f"`kernel` must be (kernel_size, in_channels // groups, out_channels) or 1-D, got shape {w.shape}."
        )
    if w.size == 0:
        raise ValueError(f"`kernel` is empty (shape {w.shape}).")
    check_array_finite(w, "kernel")
    problem = build_problem(
        x,
        None,
        w.shape[0],
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        layout=layout,
        out_channels=w.shape[2],
        flip=flip,
        lags=lags,
    )
    cfg = problem.config
    if w.shape[1] != cfg.in_per_group:
        raise ValueError(
            f"`kernel` has shape {w.shape}, but x has {cfg.in_channels} channels and groups={cfg.groups}, so "
            f"kernel.shape[1] must be in_channels // groups = {cfg.in_per_group}."
        )
    biases = None
    if bias is not None:
        b = np.asarray(bias)
        check_array_dtype(b, "bias")
        if b.shape != (cfg.out_channels,):
            raise ValueError(f"`bias` must have shape (out_channels,) = ({cfg.out_channels},), got {b.shape}.")
        check_array_finite(b, "bias")
        biases = problem.to_canonical_bias(b.astype(np.float64))
    kernels = problem.to_canonical(w.astype(np.float64))
    outs = [
        forward(block, k, None if biases is None else biases[i])
        for i, (block, k) in enumerate(zip(problem.blocks, kernels))
    ]
    dtype = np.result_type(problem.dtype, w.dtype, np.float32, *([] if bias is None else [np.asarray(bias).dtype]))
    return restore_form(problem.assemble_outputs(outs), problem.x_form, cfg.layout, dtype, problem.x_item_ndims)
