"""Exact ``A^H A`` and ``A^H Y`` of a stride-1 grid design from lagged correlations (FFTs), without its rows.

With stride 1 along every axis, kernel size ``K``, dilation ``d`` and span ``s + 1`` (``s = (K - 1) d``) per
axis, a padded input ``x`` of spatial shape ``N`` has the output box ``M = N - s``, and the design's Gram entries
are lagged correlations over that box,

    G[(k1, c1), (k2, c2)] = sum_{u in W(a)} conj(x_c1[u]) x_c2[u + delta],   a = k1 d,  delta = (k2 - k1) d,

with the window ``W(a) = prod_i [a_i, a_i + M_i)``.  Along each axis ``W(a)`` is the range ``U_i(delta_i)`` of
every ``u_i`` whose pair ``(u_i, u_i + delta_i)`` lies in the array, less a *head* ``[.., a_i)`` and a *tail*
``[a_i + M_i, ..)``, each narrower than ``s_i``: both members of a head pair lie in the first ``s_i`` planes of
that axis, both of a tail pair in the last ``s_i``.  Inclusion-exclusion over the axes gives

    G = sum_{S subset of axes} (-1)^|S| sum_{sides in {head, tail}^S} E_{S, sides}[a_S, delta],

where ``E`` sums the products over the strips on the axes in ``S`` and over the whole range elsewhere.  For
``S`` empty that is the full lagged correlation (one FFT per channel, one product and inverse per channel pair);
otherwise the correlation along the other axes of every pair ``(p, q)`` of planes of the strip region (FFTs of
the thin slabs), turned into strip sums by running sums along the pair diagonals ``q - p = delta_i`` (prefix sums
for heads, suffix sums for tails); when ``S`` holds every axis the products of the corner boxes are taken
directly.  Every term is an exact sum; the only rounding is the FFTs' (``~eps log(L) ||x||^2``).

``A^H Y`` is the valid correlation ``sum_o conj(x_c[o + k d]) y_j[o]`` (one FFT per output channel), and the bias
column's entries the correlation of ``x`` with ones over the box.  Cost: ``O((C + C^2 + C O) L log L)`` for the
full correlations (``L`` the padded FFT size, about ``prod(N_i + s_i)``), ``O(sum_S 2^|S| prod_{S} s_i^2 C^2
L_S log L_S)`` for the strips and ``2^n P^2`` to assemble, against ``rows x P^2`` for the im2col sum
(:func:`~kernel_recovery.model.grid.grid_statistics` picks the cheaper by :func:`fft_gram_cost` and
:func:`im2col_gram_cost`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
import scipy.fft
from numpy.lib.stride_tricks import sliding_window_view

from .threads import fft_workers

#: Entries of one product block (strip pairs x frequencies) before its inverse FFT: 32 MiB of complex128.
BLOCK_ENTRIES = 1 << 21
#: Cost model weights, in seconds per unit (rates of one core, from ``benchmarks/grid_gram.py --serial``; the choice
#: only matters near the crossover, where both paths are fast): one multiply-add of the im2col GEMM (real, a
#: symmetric rank-k update; complex costs 4), one ``n log2 n`` unit of a complex FFT (real: half), one entry copied
#: or assembled, and the fixed cost of one FFT product block (Python and call overhead).
GEMM_SECONDS = 1.0 / 1.2e10
FFT_SECONDS = 1.0 / 4.0e8
ENTRY_SECONDS = 1.0 / 3.0e8
CALL_SECONDS = 1.0e-4
#: An inverse transform kept at a few lags (:func:`_inverse_lags`) costs about this much of a forward one.
INVERSE_SHARE = 0.5


def _fft_sizes(shape: Sequence[int], span: Sequence[int]) -> tuple[int, ...]:
    """FFT lengths without wrap-around for lags ``|delta_i| <= s_i``: ``L_i >= N_i + s_i``."""
    return tuple(scipy.fft.next_fast_len(n + s, real=True) for n, s in zip(shape, span))


def _forward(a: np.ndarray, axes: Sequence[int], sizes: Sequence[int], real: bool) -> np.ndarray:
    if real:
        return scipy.fft.rfftn(a, s=sizes, axes=axes, workers=fft_workers())
    return scipy.fft.fftn(a, s=sizes, axes=axes, workers=fft_workers())


def _inverse_lags(
    a: np.ndarray, first_axis: int, sizes: Sequence[int], lag_index: Sequence[np.ndarray], real: bool
) -> np.ndarray:
    """The inverse FFT of ``a`` along axes ``first_axis + j`` (lengths ``sizes[j]``) at the lags ``lag_index[j]`` only.

    One axis at a time, keeping only the wanted lags before the next: the later axes transform a few planes, not
    all (a full 2-D inverse costs twice this when the lags are few).  With ``real`` the last axis is the half
    spectrum of :func:`scipy.fft.rfftn`.
    """
    last = len(sizes) - 1
    for j, (n, idx) in enumerate(zip(sizes, lag_index)):
        ax = first_axis + j
        if real and j == last:
            a = scipy.fft.irfft(a, n=n, axis=ax, workers=fft_workers())
        else:
            a = scipy.fft.ifft(a, n=n, axis=ax, workers=fft_workers())
        a = np.take(a, idx, axis=ax)
    return a


def _pair_correlations(
    xr: np.ndarray,
    sizes: Sequence[int],
    lag_index: Sequence[np.ndarray],
    real: bool,
    spec: np.ndarray | None = None,
) -> np.ndarray:
    """``out[p, q, *m, c1, c2] = sum_v conj(xr[p, v, c1]) xr[q, v + m d, c2]`` over the middle axes of ``xr``.

    ``xr`` is ``(R, *N_rest, C)``: ``R`` planes (strip positions) of arrays over the remaining axes.  The lags kept
    are ``lag_index`` (one index array per remaining axis, modulo the FFT lengths ``sizes``).  Pairs ``c1 > c2``
    come from the Hermitian symmetry ``out[p, q, m, c1, c2] = conj(out[q, p, -m, c2, c1])``.  ``spec``: the
    forward FFT of ``xr`` if the caller has it.
    """
    r_count, c = xr.shape[0], xr.shape[-1]
    nrest = xr.ndim - 2
    lag_shape = tuple(len(i) for i in lag_index)
    dtype = np.float64 if real else np.complex128
    out = np.empty((r_count, r_count) + lag_shape + (c, c), dtype=dtype)
    if nrest == 0:
        pairs = xr.conj()[:, None, :, None] * xr[None, :, None, :]
        out[...] = pairs.real if real else pairs
        return out
    if spec is None:
        spec = _forward(xr, tuple(range(1, 1 + nrest)), sizes, real)  # (R, *F, C)
    freqs = math.prod(spec.shape[1:-1])
    step = max(1, BLOCK_ENTRIES // max(1, r_count * freqs))
    for c1 in range(c):
        for c2 in range(c1, c):
            right = spec[None, ..., c2]
            for p0 in range(0, r_count, step):
                prod = spec[p0 : p0 + step, None, ..., c1].conj() * right
                out[p0 : p0 + step, ..., c1, c2] = _inverse_lags(prod, 2, sizes, lag_index, real)
            if c2 > c1:
                flipped = out[(slice(None), slice(None)) + (slice(None, None, -1),) * nrest + (c1, c2)]
                out[..., c2, c1] = np.swapaxes(flipped, 0, 1).conj()
    return out


def _strip_sums(arr: np.ndarray, k: int, d: int, s: int, tail: bool) -> np.ndarray:
    """Turn the leading pair axes ``(p, q)`` (positions in a strip of width ``s``) into ``(k1, k2)``.

    Head: ``out[k1, k2] = sum_{p < k1 d} arr[p, p + (k2 - k1) d]``; tail (positions counted from the strip's
    start): ``sum_{p >= k1 d}``.  Pairs whose ``q`` leaves the strip contribute nothing.
    """
    p = np.arange(s)[:, None]
    m = np.arange(-(k - 1), k)[None, :]
    q = p + m * d
    valid = (q >= 0) & (q < s)
    arr = np.ascontiguousarray(arr)  # the gather below then copies whole blocks of ``rest``
    diag = arr[p, np.clip(q, 0, s - 1)]  # (s, 2K - 1, *rest)
    diag *= valid.reshape(valid.shape + (1,) * (diag.ndim - 2))
    run = np.zeros((s + 1,) + diag.shape[1:], dtype=arr.dtype)
    for i in range(s):  # whole contiguous planes per step (np.cumsum along axis 0 strides through memory)
        if tail:
            np.add(run[s - i], diag[s - 1 - i], out=run[s - 1 - i])
        else:
            np.add(run[i], diag[i], out=run[i + 1])
    k1 = np.arange(k)[:, None]
    k2 = np.arange(k)[None, :]
    return run[k1 * d, k2 - k1 + k - 1]


def _add_term(
    gram: np.ndarray, term: np.ndarray, strip_axes: Sequence[int], ndim: int, kernel_size: Sequence[int], sign: float
) -> None:
    """Add ``sign * term`` into ``gram`` viewed as ``(*K, C, *K, C)``.

    ``term``'s axes: ``k1`` then ``k2`` of each strip axis, the lag ``m = k2 - k1`` of each other axis, ``c1, c2``.
    A lag axis becomes ``(k1, k2)`` as a Toeplitz view (no copy): ``window[i, j] = term[i + j]``, ``i = K - 1 - k1``.
    """
    rest = [j for j in range(ndim) if j not in strip_axes]
    labels: list[tuple[str, int]] = [("k1", i) for i in strip_axes] + [("k2", i) for i in strip_axes]
    labels += [("m", j) for j in rest] + [("c1", 0), ("c2", 0)]
    view = term
    for j in rest:
        ax = labels.index(("m", j))
        view = sliding_window_view(view, kernel_size[j], axis=ax)
        view = np.flip(view, axis=ax)
        labels[ax] = ("k1", j)
        labels.append(("k2", j))
    target = [("k1", i) for i in range(ndim)] + [("c1", 0)] + [("k2", i) for i in range(ndim)] + [("c2", 0)]
    view = view.transpose([labels.index(t) for t in target])
    if sign > 0:
        gram += view
    else:
        gram -= view


def lagged_gram(
    x: np.ndarray,
    kernel_size: Sequence[int],
    dilation: Sequence[int],
    y: np.ndarray | None = None,
    use_bias: bool = False,
) -> tuple[np.ndarray, np.ndarray | None]:
    """``A^H A`` and ``A^H Y`` of one item's stride-1 design, from lagged correlations with exact edges.

    Parameters
    ----------
    x : ndarray
        The padded input ``(*N, C)`` (float64 or complex128), the channels of one group.
    kernel_size, dilation : sequence of int
        Per spatial axis; the output box is ``N_i - (K_i - 1) d_i`` along axis ``i``.
    y : ndarray, optional
        The outputs ``(*M, O)`` (same dtype as ``x``).
    use_bias : bool
        Append the bias column (ones) to the design.

    Returns
    -------
    gram : ndarray
        ``(P, P)``, ``P = prod(K) C (+ 1)``, columns ``(k_1, ..., k_N, c)`` in row-major order, then the bias:
        exactly the Gram of :func:`~kernel_recovery.model.grid.design_rows` (up to FFT rounding).
    cross : ndarray or None
        ``(P, O)``, or None without ``y``.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).standard_normal((9, 8, 2))
    >>> a = np.lib.stride_tricks.sliding_window_view(x, (3, 2), axis=(0, 1))  # (7, 7, C, 3, 2)
    >>> a = np.moveaxis(a, 2, -1).reshape(49, 12)
    >>> gram, _ = lagged_gram(x, (3, 2), (1, 1))
    >>> bool(np.allclose(gram, a.T @ a, rtol=1e-12, atol=1e-12))
    True
    """
    ndim = x.ndim - 1
    shape, c = x.shape[:-1], x.shape[-1]
    k = tuple(int(v) for v in kernel_size)
    d = tuple(int(v) for v in dilation)
    s = tuple((ki - 1) * di for ki, di in zip(k, d))
    box = tuple(n - si for n, si in zip(shape, s))
    if min(box) <= 0:
        raise ValueError(f"`x` of spatial shape {shape} gives no output for kernel_size={k}, dilation={d}.")
    real = not np.iscomplexobj(x)
    dtype = np.float64 if real else np.complex128
    n_kernel = math.prod(k) * c
    p_total = n_kernel + int(use_bias)
    gram = np.zeros((p_total, p_total), dtype=dtype)
    work = np.zeros(k + (c,) + k + (c,), dtype=dtype)  # the kernel block of the Gram, one axis per index
    sizes = _fft_sizes(shape, s)
    full = _forward(x, tuple(range(ndim)), sizes, real)  # shared by the full correlations and A^H Y
    edge_axes = [i for i in range(ndim) if s[i] > 0]
    for count in range(ndim + 1):
        for strip_axes in itertools.combinations(edge_axes, count):
            rest = [j for j in range(ndim) if j not in strip_axes]
            lag_index = [(np.arange(-(k[j] - 1), k[j]) * d[j]) % sizes[j] for j in rest]
            term: np.ndarray | None = None
            for sides in itertools.product((False, True), repeat=count):
                region = [slice(None)] * ndim
                for i, tail in zip(strip_axes, sides):
                    region[i] = slice(shape[i] - s[i], shape[i]) if tail else slice(0, s[i])
                xr = x[tuple(region)].transpose(list(strip_axes) + rest + [ndim])
                width = math.prod(s[i] for i in strip_axes)
                xr = xr.reshape((width,) + tuple(shape[j] for j in rest) + (c,))
                pairs = _pair_correlations(
                    xr, [sizes[j] for j in rest], lag_index, real, full[None] if not count else None
                )
                pairs = pairs.reshape(tuple(s[i] for i in strip_axes) * 2 + pairs.shape[2:])
                for t, (i, tail) in enumerate(zip(strip_axes, sides)):
                    moved = np.moveaxis(pairs, (t, count + t), (0, 1))
                    pairs = np.moveaxis(_strip_sums(moved, k[i], d[i], s[i], tail), (0, 1), (t, count + t))
                term = pairs if term is None else term + pairs
            assert term is not None
            _add_term(work, term, strip_axes, ndim, k, -1.0 if count % 2 else 1.0)
    gram[:n_kernel, :n_kernel] = work.reshape(n_kernel, n_kernel)

    if use_bias:
        sums = box_sums(x, k, d).reshape(-1)
        gram[:n_kernel, -1] = sums.conj()
        gram[-1, :n_kernel] = sums
        gram[-1, -1] = math.prod(box)
    cross = None
    if y is not None:
        cross = valid_correlation(x, y.astype(dtype, copy=False), k, d, sizes, real, full)
        if use_bias:
            cross = np.concatenate([cross, y.reshape(-1, y.shape[-1]).sum(axis=0)[None].astype(dtype)])
    return (gram + gram.conj().T) / 2, cross


def box_sums(x: np.ndarray, kernel_size: Sequence[int], dilation: Sequence[int]) -> np.ndarray:
    """``out[k, c] = sum_{o in box} x_c[o + k d]``, ``(*K, C)``: per axis, the whole sum less a head and a tail."""
    out = x
    for i, (ki, di) in enumerate(zip(kernel_size, dilation)):
        s = (ki - 1) * di
        arr = np.moveaxis(out, i, 0)
        head = np.zeros((s + 1,) + arr.shape[1:], dtype=arr.dtype)
        np.cumsum(arr[:s], axis=0, out=head[1:])
        tail = np.zeros_like(head)
        tail[:s] = np.cumsum(arr[arr.shape[0] - s :][::-1], axis=0)[::-1]
        starts = np.arange(ki) * di
        out = np.moveaxis(arr.sum(axis=0) - head[starts] - tail[starts], 0, i)
    return out


def valid_correlation(
    x: np.ndarray,
    y: np.ndarray,
    kernel_size: Sequence[int],
    dilation: Sequence[int],
    sizes: Sequence[int] | None = None,
    real: bool | None = None,
    xf: np.ndarray | None = None,
) -> np.ndarray:
    """``out[(k, c), j] = sum_{o in box} conj(x_c[o + k d]) y_j[o]`` by FFTs, ``(prod(K) C, O)``.

    ``sizes`` (FFT lengths, at least ``N_i``) and ``xf`` (the FFT of ``x`` at those lengths) if the caller has them.
    """
    ndim = x.ndim - 1
    real = not (np.iscomplexobj(x) or np.iscomplexobj(y)) if real is None else real
    s = tuple((ki - 1) * di for ki, di in zip(kernel_size, dilation))
    sizes = _fft_sizes(x.shape[:-1], s) if sizes is None else sizes
    axes = tuple(range(ndim))
    if xf is None:
        xf = _forward(x, axes, sizes, real)
    yf = _forward(y, axes, sizes, real)
    lag_index = [(-np.arange(kj) * dj) % lj for kj, dj, lj in zip(kernel_size, dilation, sizes)]
    c, o = x.shape[-1], y.shape[-1]
    out = np.empty(tuple(kernel_size) + (c, o), dtype=np.float64 if real else np.complex128)
    for ci in range(c):
        out[..., ci, :] = _inverse_lags(xf[..., ci, None].conj() * yf, 0, sizes, lag_index, real)
    return out.reshape(-1, o)


def _fft_units(n: int) -> float:
    return n * math.log2(max(n, 2))


def fft_gram_cost(
    shape: Sequence[int],
    kernel_size: Sequence[int],
    dilation: Sequence[int],
    channels: int,
    outputs: int,
    is_complex: bool,
) -> float:
    """Estimated seconds of :func:`lagged_gram` for one item (a model: its weights are measured, not exact)."""
    ndim = len(shape)
    s = [(ki - 1) * di for ki, di in zip(kernel_size, dilation)]
    sizes = _fft_sizes(shape, s)
    scale = 1.0 if is_complex else 0.5
    pairs = channels * (channels + 1) / 2
    transforms = channels + outputs + INVERSE_SHARE * (pairs + channels * outputs)
    units = transforms * _fft_units(math.prod(sizes)) * scale
    calls = pairs + channels * outputs
    for count in range(1, ndim + 1):
        for axes in itertools.combinations([i for i in range(ndim) if s[i] > 0], count):
            width = math.prod(s[i] for i in axes)
            rest = math.prod(sizes[j] for j in range(ndim) if j not in axes)
            transforms = width * channels + INVERSE_SHARE * width**2 * pairs
            units += 2**count * transforms * _fft_units(rest) * scale
            calls += 2**count * pairs * (1 + width**2 * rest // BLOCK_ENTRIES)
    p = math.prod(kernel_size) * channels
    return units * FFT_SECONDS + 2**ndim * p * p * ENTRY_SECONDS + calls * CALL_SECONDS


def im2col_gram_cost(rows: int, columns: int, outputs: int, is_complex: bool) -> float:
    """Estimated seconds of the chunked im2col sums (``rows x P x (P + O)`` multiply-adds and the row copies)."""
    per = 4.0 if is_complex else 1.0
    return rows * columns * (columns + outputs) * per * GEMM_SECONDS + rows * columns * ENTRY_SECONDS
