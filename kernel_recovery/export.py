"""Export a recovered kernel to PyTorch, Keras and SciPy so that their layers reproduce the same outputs.

Kernels are stored here as ``(kernel_size, in_channels // groups, out_channels)`` for the configuration they
were recovered under, ``(*kernel_size, in_channels // groups, out_channels)`` for N-D kernels (Conv2D/Conv3D);
``flip=True`` means true convolution (the taps reversed along every spatial axis).  Deep-learning layers compute
cross-correlation and ``scipy.signal.convolve`` true convolution, so each export reverses the taps where the
conventions differ.  PyTorch is imported only inside :func:`to_torch` (and nothing imports Keras).

Complex kernels (from complex signals) go to :func:`to_scipy` and to :func:`to_torch` (PyTorch convolves complex
tensors bilinearly, as this library does); Keras layers are real, so :func:`to_keras` refuses them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .model.grid import GridConfig

if TYPE_CHECKING:
    from .model.result import KernelResult

__all__ = ["to_keras", "to_scipy", "to_torch"]


def _check_result(result: object) -> None:
    for name in ("kernel", "bias", "config"):
        if not hasattr(result, name):
            raise TypeError(f"`result` must be a KernelResult (from recover_kernel), got {type(result).__name__}.")


def _correlation_kernel(result: KernelResult) -> np.ndarray:
    """The kernel as a cross-correlation (deep-learning) kernel: taps reversed when ``flip=True``."""
    if isinstance(result.config, GridConfig):
        k = np.asarray(result.kernel)
        k = k.astype(np.complex128 if np.iscomplexobj(k) else np.float64)
        n = result.config.ndim
        return k[(slice(None, None, -1),) * n] if result.config.flip else k
    k = np.asarray(result.kernel, dtype=np.float64)
    return k[::-1] if result.config.flip else k


def _keras_layer(result: KernelResult) -> str:
    return f"Conv{result.config.ndim if isinstance(result.config, GridConfig) else 1}D"


def to_torch(result: KernelResult, *, dtype: Any = None) -> dict[str, Any]:
    """A state dict that ``torch.nn.Conv1d`` (``Conv2d``, ``Conv3d`` for N-D kernels) ``.load_state_dict`` accepts.

    Parameters
    ----------
    result : KernelResult
        From :func:`kernel_recovery.recover_kernel`.
    dtype : torch.dtype, optional
        Of the tensors (default ``torch.get_default_dtype()``, float32 unless changed; for a complex kernel its
        complex counterpart, complex64 unless changed).  ``load_state_dict`` copies into the layer's own dtype.

    Returns
    -------
    dict
        ``{"weight": Tensor (out_channels, in_channels // groups, *kernel_size)}``, plus ``"bias"``
        ``(out_channels,)`` when the result has a bias.  Build the layer as
        ``nn.Conv1d(in_channels, out_channels, kernel_size, stride=..., dilation=..., groups=...,
        bias=result.bias is not None)`` (``nn.Conv2d``/``nn.Conv3d`` with ``kernel_size``, ``stride`` and
        ``dilation`` tuples for a 2-D/3-D kernel) with the padding of ``result.config`` (PyTorch takes an int,
        one int per axis or ``"valid"``/``"same"`` at stride 1; pad ``"causal"``, asymmetric pairs and TensorFlow's
        strided ``"same"`` yourself with ``torch.nn.functional.pad``).  Channels-first data, as PyTorch wants.

    Raises
    ------
    ImportError
        When PyTorch is not installed (``pip install "kernel_recovery[export]"``).
    ValueError
        When ``dtype`` is real but the kernel is complex.

    Notes
    -----
    ``weight[o, c, k] = kernel[k, c, o]`` (``kernel[K - 1 - k, c, o]`` when the result was recovered with
    ``flip=True``), since ``nn.Conv1d`` is a cross-correlation; in N-D ``weight[o, c, *k] = kernel[*k, c, o]``,
    every spatial axis reversed with ``flip=True``.  PyTorch convolves complex tensors bilinearly (no conjugate
    on the weight), as the kernel was recovered, so a complex kernel exports as it is.

    Examples
    --------
    >>> import kernel_recovery as kr
    >>> res = kr.recover_kernel([0.0, 3.0, 4.0, 5.0], [6.0, 11.0, 14.0], kernel_size=2)
    >>> state = to_torch(res)  # doctest: +SKIP
    >>> torch.nn.Conv1d(1, 1, 2, bias=False).load_state_dict(state)  # doctest: +SKIP
    <All keys matched successfully>
    """
    _check_result(result)
    try:
        import torch
    except ImportError:
        raise ImportError(
            "to_torch needs PyTorch: pip install torch (or pip install 'kernel_recovery[export]')."
        ) from None
    k = _correlation_kernel(result)
    is_complex = np.iscomplexobj(k) or (result.bias is not None and np.iscomplexobj(result.bias))
    if dtype is None:
        dtype = torch.get_default_dtype()
        if is_complex:
            dtype = torch.promote_types(dtype, torch.complex64)
    elif is_complex and not dtype.is_complex:
        raise ValueError(f"`dtype` (={dtype}) is real, but the kernel is complex: give a complex dtype.")
    n = k.ndim - 2
    weight = np.ascontiguousarray(k.transpose(n + 1, n, *range(n)))
    state = {"weight": torch.tensor(weight, dtype=dtype)}
    if result.bias is not None:
        bias = np.asarray(result.bias)
        state["bias"] = torch.tensor(bias.astype(np.complex128 if np.iscomplexobj(bias) else np.float64), dtype=dtype)
    return state


def to_keras(result: KernelResult, *, dtype: str = "float32") -> list[np.ndarray]:
    """The list that ``keras.layers.Conv1D.set_weights`` (``Conv2D``, ``Conv3D``) accepts: ``[kernel]`` or
    ``[kernel, bias]``.

    Parameters
    ----------
    result : KernelResult
        From :func:`kernel_recovery.recover_kernel`.
    dtype : str
        Of the arrays (Keras layers default to float32).

    Returns
    -------
    list of ndarray
        ``kernel`` of shape ``(kernel_size, in_channels // groups, out_channels)`` (taps reversed when the
        result was recovered with ``flip=True``), then ``bias`` ``(out_channels,)`` when there is one.  Build
        the layer as ``Conv1D(out_channels, kernel_size, strides=..., padding=..., dilation_rate=...,
        groups=..., use_bias=result.bias is not None)``; Keras takes ``"valid"``, ``"same"`` and ``"causal"``
        padding and channels-last data.  An N-D kernel is ``(*kernel_size, in_channels // groups,
        out_channels)`` for ``Conv2D``/``Conv3D`` with ``kernel_size``, ``strides`` and ``dilation_rate``
        tuples, ``padding="valid"`` or ``"same"`` (explicit zeros: a ``ZeroPadding2D``/``ZeroPadding3D`` layer
        before it) and ``data_format`` ``"channels_last"`` or ``"channels_first"``: the kernel's layout is
        the same for both.

    Raises
    ------
    ValueError
        When the kernel is complex (Keras layers are real; see :func:`to_scipy` and :func:`to_torch`).

    Examples
    --------
    >>> import kernel_recovery as kr
    >>> res = kr.recover_kernel([0.0, 3.0, 4.0, 5.0], [6.0, 11.0, 14.0], kernel_size=2)
    >>> [w.shape for w in to_keras(res)]
    [(2, 1, 1)]
    >>> res = kr.recover_kernel([0.0, 3.0, 4.0, 5.0], [6.0, 11.0, 14.0], kernel_size=2, flip=True)
    >>> to_keras(res)[0].ravel()  # the layer is a cross-correlation: the taps come back in Keras order
    array([1., 2.], dtype=float32)
    """
    _check_result(result)
    kernel = _correlation_kernel(result)
    if np.iscomplexobj(kernel) or (result.bias is not None and np.iscomplexobj(result.bias)):
        raise ValueError(
            f"to_keras: the kernel is complex, and Keras {_keras_layer(result)} layers are real; "
            "use to_scipy() (scipy.signal.convolve) or to_torch() (complex tensors)."
        )
    weights = [np.ascontiguousarray(kernel, dtype=dtype)]
    if result.bias is not None:
        weights.append(np.asarray(result.bias, dtype=dtype))
    return weights


def to_scipy(result: KernelResult) -> np.ndarray:
    """The impulse response for ``scipy.signal.convolve`` (true convolution): the taps reversed, dilated.

    For ``scipy.signal.convolve`` (and ``fftconvolve``/``oaconvolve``), not ``scipy.signal.correlate``: with
    complex arrays ``correlate`` conjugates its second argument, and the recovered convolution is bilinear.

    Parameters
    ----------
    result : KernelResult
        From :func:`kernel_recovery.recover_kernel`.

    Returns
    -------
    h : ndarray, float64 (complex128 for a complex kernel)
        Shape ``(span,)`` for one input and one output channel, otherwise
        ``(span, in_channels // groups, out_channels)``, with ``span = (kernel_size - 1) * dilation + 1``:
        the kernel in convolution order (reversed, unless recovered with ``flip=True``) with ``dilation - 1``
        zeros between taps.  N-D kernels: ``(*span)`` or ``(*span, in_channels // groups, out_channels)``, every
        spatial axis reversed and dilated.

    Notes
    -----
    With ``xpad`` the input padded by ``result.config.pads(len(x))`` zeros (none for ``"valid"``),
    ``y[:, o] = bias[o] + sum_c scipy.signal.convolve(xpad[:, g * Cin_g + c], h[:, c, o], mode="valid")[::stride]``
    where ``g = o // (out_channels // groups)`` is the output channel's group and ``Cin_g = in_channels // groups``.
    At stride 1, ``padding="full"`` is ``mode="full"`` on the unpadded input.  N-D: the same per axis,
    ``scipy.signal.convolve(xpad[..., g * Cin_g + c], h[..., c, o], mode="valid")[::s_1, ..., ::s_N]`` with
    ``xpad`` padded by ``result.config.pads(spatial_shape)``; complex arrays as they are (no conjugate).

    Examples
    --------
    >>> import numpy as np, scipy.signal
    >>> import kernel_recovery as kr
    >>> x = np.array([0.0, 3.0, 4.0, 5.0])
    >>> res = kr.recover_kernel(x, [6.0, 11.0, 14.0], kernel_size=2)  # y[t] = 1 x[t] + 2 x[t+1]
    >>> h = to_scipy(res)
    >>> h.round(12)
    array([2., 1.])
    >>> scipy.signal.convolve(x, h, mode="valid").round(12)
    array([ 6., 11., 14.])
    """
    _check_result(result)
    cfg = result.config
    if isinstance(cfg, GridConfig):
        n = cfg.ndim
        k = _correlation_kernel(result)[(slice(None, None, -1),) * n]
        h = np.zeros(cfg.span + k.shape[n:], dtype=k.dtype)
        h[tuple(slice(None, None, d) for d in cfg.dilation)] = k
        return h[(Ellipsis, 0, 0)] if h.shape[-2:] == (1, 1) else h
    k = _correlation_kernel(result)[::-1]
    h = np.zeros((cfg.span, *k.shape[1:]))
    h[:: cfg.dilation] = k
    if h.shape[1] == 1 and h.shape[2] == 1:
        return h[:, 0, 0]
    return h
