"""Geometry: what the configuration and the sequence lengths alone decide (shared by the report and planning).

Which design column holds each tap, which taps only ever meet padding zeros, the least data that give as many
equations as unknowns, and the causes of indeterminacy that the shapes alone decide.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..model.config import ConvConfig
from ..model.problem import Block, CanonicalProblem


def tap_columns(problem: CanonicalProblem, block: Block) -> np.ndarray:
    """Design column of each (tap, input channel of the group), ``(kernel_size, in_channels // groups)``.

    Taps are in correlation order (tap ``k`` reads ``x[t * stride + k * dilation]``), before any ``flip``.
    """
    cfg = problem.config
    s, _ = problem.tap_layout()
    cin = cfg.in_per_group
    index = np.full(block.mask.shape, -1)
    index[block.mask] = np.arange(block.n_free)
    k = np.arange(cfg.kernel_size)[:, None]
    c = np.arange(cin)[None, :]
    return index[k // s, (k % s) * cin + c]


def untouched_taps(config: ConvConfig, lengths: Sequence[int]) -> np.ndarray:
    """Boolean ``(kernel_size,)``, correlation order: taps that never read an input sample, only padding zeros.

    Tap ``k`` of output ``t`` reads sample ``t * stride + k * dilation - left_pad``; a tap is untouched when that
    index falls outside ``[0, L)`` for every output of every sequence.
    """
    k = np.arange(config.kernel_size)
    touched = np.zeros(config.kernel_size, dtype=bool)
    for n in lengths:
        m = config.output_length(n)
        if m < 1:
            continue
        left, _ = config.pads(n)
        offset = k * config.dilation - left  # sample read by output 0
        first = np.maximum(0, -(offset // config.stride))  # ceil(-offset / stride)
        last = np.minimum(m - 1, (n - 1 - offset) // config.stride)
        touched |= first <= last
    return ~touched


def user_taps(config: ConvConfig, taps: np.ndarray) -> list[int]:
    """Correlation-order tap indices as indices into the user's kernel (reversed with ``flip``)."""
    taps = np.asarray(taps, dtype=int)
    return sorted((config.kernel_size - 1 - taps if config.flip else taps).tolist())


def data_needed(config: ConvConfig, lengths: Sequence[int]) -> tuple[int | None, int | None]:
    """``(min_length, min_sequences)``: the least data with as many equations as unknowns and every tap reached.

    ``min_length`` is the shortest common length for ``len(lengths)`` sequences; ``min_sequences`` the number of
    sequences as long as the longest one given (None when such sequences leave taps untouched).  These are
    necessary, not sufficient: the input must also excite every direction (see the excitation orders).
    """
    p = config.unknowns_per_output
    batch = max(len(lengths), 1)

    def enough(n: int) -> bool:
        m = config.output_length(n)
        return m >= 1 and batch * m >= p and not untouched_taps(config, [n]).any()

    hi = max(config.span, 1)
    while not enough(hi):
        hi *= 2
        if hi > 1 << 62:  # pragma: no cover - unreachable for valid configurations
            return None, None
    lo = 0
    while hi - lo > 1:  # the smallest n with enough(n); enough is monotone in n
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if enough(mid) else (mid, hi)
    min_length = hi
    longest = max(lengths) if len(lengths) else min_length
    m = config.output_length(longest)
    min_sequences = None
    if m >= 1 and not untouched_taps(config, [longest]).any():
        min_sequences = -(-p // m)
    return min_length, min_sequences


def needed_text(config: ConvConfig, lengths: Sequence[int]) -> str:
    min_length, min_sequences = data_needed(config, lengths)
    if len(lengths) > 1:
        text = f"{len(lengths)} sequences of at least {min_length} samples each"
    else:
        text = f"a record of at least {min_length} samples"
    if min_sequences is not None and min_sequences > 1:
        text += f", or {min_sequences} sequences of {max(lengths)} samples"
    return text


def shape_causes(
    config: ConvConfig, lengths: Sequence[int], n_eq: int, geometry: np.ndarray
) -> list[tuple[str, str, str]]:
    """The causes that the shapes alone decide (too short a record, taps left untouched): ``(code, cause, advice)``."""
    p = config.unknowns_per_output
    out = []
    if n_eq < p:
        out.append(
            (
                "too_short",
                f"too short a record: {n_eq} output samples per channel for {p} unknowns.",
                f"give {needed_text(config, lengths)}, or reduce kernel_size.",
            )
        )
    if geometry.any():
        taps = user_taps(config, np.flatnonzero(geometry))
        out.append(
            (
                "untouched_taps",
                f"zero padding and stride leave tap(s) {taps} untouched: with padding={config.padding!r}, "
                f"stride={config.stride}, dilation={config.dilation} and sequences of {max(lengths)} samples these "
                "taps "
                "only ever meet padding zeros, so their coefficients have no effect on y.",
                f"use {needed_text(config, lengths)}, less padding, or a smaller kernel_size.",
            )
        )
    return out
