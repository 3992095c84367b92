"""Welch cross-spectra of a convolution's data: the transfer-function estimates H1, H2 and the coherence.

The non-parametric side of ``method="fft"`` (its ``diagnostics["spectra"]``): Welch cross-spectra of the data
(periodic Hann window, half-overlapping segments of :func:`welch_segment_length` samples, mean removed per
segment: the defaults of :func:`scipy.signal.csd`) give the estimates ``H1 = S_xx^-1 S_xy`` and, for one input,
``H2 = S_yy / S_yx``, and the (multiple) coherence ``S_yx S_xx^-1 S_xy / S_yy`` per frequency
(:func:`welch_transfer`; MATLAB's ``tfestimate`` and ``mscohere``).  A low coherence where the input has power
says that part of ``y`` is not explained by any linear filter of ``x``: noise, or a nonlinearity.  It is reported
in words (:func:`canonical_spectra`), not warned: noise lowers it as much as a nonlinearity does.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import scipy.fft as sfft
from numpy.lib.stride_tricks import sliding_window_view

from ..model.problem import CanonicalProblem

#: Welch segments are at least this many times the kernel's taps long (and at least ``WELCH_MIN`` samples).
WELCH_FACTOR = 8
WELCH_MIN = 256
#: ... but short enough for this many segments (half-overlapping) in the longest sequence.
WELCH_SEGMENTS = 8
#: Frequencies "where the input has power": the trace of ``S_xx`` within this factor of its peak (20 dB).
POWER_FLOOR = 1e-2
#: Share of the output power not explained linearly by the input above which ``spectra["message"]`` says so.
UNEXPLAINED_NOTE = 0.1
#: Samples per batch of Welch segments (bounds the memory of the estimate).
WELCH_BATCH = 1 << 21


def hann(n: int) -> np.ndarray:
    """The periodic Hann window (``scipy.signal.get_window("hann", n)``)."""
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)


def welch_segment_length(taps: int, longest: int) -> int | None:
    """Samples per Welch segment: ``max(WELCH_FACTOR * taps, WELCH_MIN)`` rounded up to a power of two, halved
    until the longest sequence holds ``WELCH_SEGMENTS`` half-overlapping segments; None below ``2 * taps`` or 16."""
    size = 1 << int(np.ceil(np.log2(max(WELCH_FACTOR * taps, WELCH_MIN))))
    while size > 16 and (longest - size // 2) // (size // 2) < WELCH_SEGMENTS:
        size //= 2
    return size if size >= max(2 * taps, 16) and longest >= size else None


def welch_transfer(
    xs: list[np.ndarray], ys: list[np.ndarray], nperseg: int, workers: int | None = None
) -> dict[str, Any]:
    """H1, H2 and the (multiple) coherence of outputs ``ys`` on inputs ``xs`` from Welch cross-spectra.

    Each pair ``xs[i]`` ``(m_i, C)``, ``ys[i]`` ``(m_i, O)`` is cut into segments of ``nperseg`` samples
    overlapping by half; each segment has its mean removed and a periodic Hann window applied (the defaults
    of :func:`scipy.signal.csd`); the periodograms ``conj(X) X^T``, ``conj(X) Y^T`` and ``|Y|^2`` are averaged
    over every segment of every sequence.  Then, per frequency (``S_xy[c, o] = E[conj(X_c) Y_o]``):
    ``H1 = S_xx^+ S_xy`` (``(C, O)``; ``S_xy / S_xx`` for one input), ``H2 = S_yy / S_yx`` (one input only:
    ``(1, O)``; None for several) and the multiple coherence ``S_yx S_xx^+ S_xy / S_yy`` (``(O,)``; the
    ordinary coherence ``|S_xy|^2 / (S_xx S_yy)`` for one input), as MATLAB's ``tfestimate`` and
    ``mscohere`` estimate them.  Frequencies are in cycles per sample.  The DC bin is biased low by the
    per-segment mean removal (which keeps an offset, e.g. a bias, out of the other bins' leakage).

    Returns a dict with ``freqs`` ``(F,)``, ``h1`` ``(F, C, O)``, ``h2`` ``(F, 1, O)`` or None, ``coherence``
    ``(F, O)``, ``input_power`` ``(F,)`` (the trace of ``S_xx``, up to a constant), ``output_power`` ``(F, O)``
    and ``segments`` (how many were averaged).
    """
    n_ch = xs[0].shape[1]
    n_f = nperseg // 2 + 1
    total, count = _periodogram_sums(xs, ys, nperseg, workers)
    sxx = total[:, :n_ch, :n_ch]
    sxy = total[:, :n_ch, n_ch:]
    syy = np.einsum("foo->fo", total[:, n_ch:, n_ch:]).real
    sxx = 0.5 * (sxx + sxx.conj().transpose(0, 2, 1))
    top = float(np.max(np.abs(sxx))) if count else 0.0
    tiny = max(top * n_ch * nperseg * np.finfo(np.float64).eps, np.finfo(np.float64).tiny)
    if n_ch == 1:
        s = sxx[:, 0, 0].real
        h1 = np.divide(sxy, s[:, None, None], out=np.zeros_like(sxy), where=s[:, None, None] > tiny)
    else:  # a pseudo-inverse: directions without input power are left out, not amplified
        lam, vec = np.linalg.eigh(sxx)
        inv = np.divide(1.0, lam, out=np.zeros_like(lam), where=lam > tiny)
        h1 = np.matmul(vec * inv[:, None, :], np.matmul(vec.conj().transpose(0, 2, 1), sxy))
    explained = np.einsum("fco,fco->fo", sxy.conj(), h1).real  # S_yx S_xx^+ S_xy
    y_floor = max(float(syy.max()) if syy.size else 0.0, 0.0) * nperseg * np.finfo(np.float64).eps
    live = syy > max(y_floor, np.finfo(np.float64).tiny)
    coherence = np.clip(np.divide(explained, syy, out=np.full_like(syy, np.nan), where=live), 0.0, 1.0)
    h2 = None
    if n_ch == 1:
        syx = sxy[:, 0, :].conj()
        h2 = np.divide(syy, syx, out=np.zeros_like(syx), where=np.abs(syx) > tiny)[:, None, :]
    return {
        "freqs": np.arange(n_f) / nperseg,
        "h1": h1,
        "h2": h2,
        "coherence": coherence,
        "input_power": np.einsum("fcc->f", sxx).real / max(count, 1),
        "output_power": syy / max(count, 1),
        "segments": count,
    }


def _periodogram_sums(
    xs: list[np.ndarray], ys: list[np.ndarray], nperseg: int, workers: int | None
) -> tuple[np.ndarray, int]:
    """``(sum over segments of conj(Z) Z^T per frequency, segments)`` of ``z = (x, y)``: ``(F, C + O, C + O)``.

    Sequences of one length are transformed together.  The mean is removed after the transform, by linearity:
    ``DFT((z - mean) win) = DFT(z win) - mean DFT(win)``, and the periodic Hann window's DFT is nonzero only at
    bins 0 and 1 (``n/2``, ``-n/4``), so removing it costs two bins, not a pass over the segments; the segments'
    means come from sums over half segments (each record's mean removed first, so that an offset does not cost
    accuracy).
    """
    win = hann(nperseg)
    win_f = sfft.rfft(win)
    bins = np.flatnonzero(np.abs(win_f) > 1e-9 * nperseg)  # 0 and 1 (a few more only for tiny segments)
    step = nperseg - nperseg // 2
    piece = math.gcd(step, nperseg)  # the segments tile pieces of this many samples (half a segment)
    n_ch, n_out = xs[0].shape[1], ys[0].shape[1]
    n_f = nperseg // 2 + 1
    count = 0
    n_all = n_ch + n_out
    total = np.zeros((n_f, n_all, n_all), dtype=complex)  # E[conj(Z) Z^T] of z = (x, y)
    by_length: dict[int, list[int]] = {}
    for i, x in enumerate(xs):
        if len(x) >= nperseg:
            by_length.setdefault(len(x), []).append(i)
    for m, idx in by_length.items():
        z = np.stack([np.concatenate([xs[i].T, ys[i].T]) for i in idx])  # (B, C + O, m): channels contiguous
        z -= z.mean(axis=2, keepdims=True)
        n_seg = (m - nperseg) // step + 1
        n_pieces = ((n_seg - 1) * step + nperseg) // piece
        sums = z[:, :, : n_pieces * piece].reshape(len(idx), n_all, n_pieces, piece).sum(axis=3)
        running = np.concatenate([np.zeros((len(idx), n_all, 1)), np.cumsum(sums, axis=2)], axis=2)
        # bounded memory: whole sequences per pass, or a run of one sequence's segments
        seqs = max(WELCH_BATCH // (n_seg * nperseg * n_all), 1)
        run = n_seg if seqs > 1 else max(WELCH_BATCH // (nperseg * n_all), 1)
        for b0 in range(0, len(idx), seqs):
            for first in range(0, n_seg, run):
                starts = np.arange(first, min(first + run, n_seg)) * step
                segs = sliding_window_view(z[b0 : b0 + seqs], nperseg, axis=2)[:, :, starts]  # (B, C+O, S, n)
                first_piece = starts // piece
                part = running[b0 : b0 + seqs]
                means = (part[:, :, first_piece + nperseg // piece] - part[:, :, first_piece]) / nperseg
                spec = []  # per channel, (B S, F)
                for i in range(n_all):
                    channel = sfft.rfft(segs[:, i] * win, axis=2, workers=workers)
                    channel[:, :, bins] -= means[:, i, :, None] * win_f[bins]
                    spec.append(channel.reshape(-1, n_f))
                if n_all <= 4:  # a few channel pairs: reductions over the segments, no transposed copy
                    for i in range(n_all):
                        conj = spec[i].conj()
                        for j in range(i, n_all):
                            total[:, i, j] += np.einsum("sf,sf->f", conj, spec[j])
                else:
                    stacked = np.stack(spec, axis=2).transpose(1, 2, 0)  # (F, C + O, S)
                    total += np.matmul(stacked.conj(), stacked.transpose(0, 2, 1))
        count += n_seg * len(idx)
    if n_all <= 4:  # only the upper triangle was summed: the rest by Hermitian symmetry
        lower = np.tril_indices(n_all, -1)
        total[:, lower[0], lower[1]] = total[:, lower[1], lower[0]].conj()
    return total, count


def canonical_spectra(problem: CanonicalProblem, workers: int | None) -> dict[str, Any]:
    """``diagnostics["spectra"]`` of ``method="fft"``: the Welch estimates per block, assembled over the output
    channels (see :func:`~kernel_recovery.solvers.spectral.solve` for the keys)."""
    cfg = problem.config
    blocks = problem.blocks
    taps = blocks[0].taps
    longest = max(len(x) - taps + 1 for x in blocks[0].xs)
    nperseg = welch_segment_length(taps, longest)
    if nperseg is None:
        reason = f"the sequences are too short for Welch segments of at least {max(2 * taps, 16)} samples"
        empty = ("freqs", "h1", "h2", "coherence", "unexplained_power", "nperseg", "segments", "message")
        return {**dict.fromkeys(empty), "skipped": reason}
    n_f, n_ch = nperseg // 2 + 1, blocks[0].channels
    h1 = np.zeros((n_f, n_ch, cfg.out_channels), dtype=complex)
    h2 = np.zeros((n_f, 1, cfg.out_channels), dtype=complex) if n_ch == 1 else None
    coherence = np.zeros((n_f, cfg.out_channels))
    unexplained = np.zeros(cfg.out_channels)
    segments = 0
    for block in blocks:
        # x aligned with the newest tap: the canonical correlation is then the causal filter of lags taps-1-j
        xs = [x[taps - 1 :] for x in block.xs]
        got = welch_transfer(xs, block.outputs, nperseg, workers)
        oc = block.out_channels
        h1[:, :, oc] = got["h1"]
        if h2 is not None:
            h2[:, :, oc] = got["h2"]
        coh = np.asarray(got["coherence"])
        coherence[:, oc] = coh
        power = np.asarray(got["input_power"])
        y_power = np.asarray(got["output_power"])
        powered = (power >= POWER_FLOOR * power.max()) if power.max() > 0 else np.zeros(len(power), dtype=bool)
        total = y_power[powered].sum(axis=0)
        share = np.nansum(coh[powered] * y_power[powered], axis=0)
        unexplained[oc] = np.divide(total - share, total, out=np.zeros_like(total), where=total > 0)
        segments = int(got["segments"])  # the same in every group
    freqs = np.arange(n_f) / nperseg
    if cfg.stride == 1 and cfg.dilation == 1:  # in the physical lags of config.tap_lags()
        delay = np.exp(-2j * np.pi * freqs * float(np.min(cfg.tap_lags())))[:, None, None]
        h1 = h1 * delay
        h2 = None if h2 is None else h2 * delay
    worst = float(unexplained.max())
    message = None
    if worst > UNEXPLAINED_NOTE:
        chans = ", ".join(str(o) for o in np.flatnonzero(unexplained > UNEXPLAINED_NOTE))
        message = (
            f"the coherence of y with x is low: {worst:.0%} of the output power (channel(s) {chans}) at the "
            "frequencies where the input has power is not explained linearly by the input: noise, or a "
            "nonlinearity not explained by the kernel (no linear filter of the input explains it)"
        )
    return {
        "freqs": freqs,
        "h1": h1,
        "h2": h2,
        "coherence": coherence,
        "unexplained_power": unexplained,
        "nperseg": nperseg,
        "segments": segments,
        "message": message,
        "skipped": None,
    }
