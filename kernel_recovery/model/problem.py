"""The canonical reduction shared by every solver (the settings are judged in config.py, the arrays read in arrays.py).

Any Conv1D configuration (padding, stride, dilation, groups, layout, flip, bias, ragged batches) is
turned here, in one place, into a :class:`CanonicalProblem`: per group, a *valid, stride-1, undilated*
multichannel cross-correlation

    Y_i[t, o] = bias[o] + sum_j sum_c X_i[t + j, c] * W[j, c, o],    0 <= t < len(X_i) - taps + 1,

with some coefficients of ``W`` fixed at zero (``mask``), plus the map between ``W`` and the user's
kernel.  The factorization, for stride ``s`` and dilation ``d`` with ``g = gcd(s, d)``:

* padding becomes explicit zeros;
* dilation: the outputs split into ``d' = d / g`` interleaved subsequences (a batch) whose inputs are
  ``x[r*s + i*d]``; each is a conv with stride ``s' = s / g`` and no dilation;
* stride: ``s'`` polyphase components ``x_r[i*s' + q]`` become ``s' * Cin`` channels, so kernel tap
  ``k = j*s' + q`` becomes tap ``j`` of channel ``q``; taps ``k >= kernel_size`` are the masked zeros;
* groups become independent blocks; layout and flip become a transpose and a reversal.

The total number of samples is unchanged (each input sample lands in at most one subsequence), so
the reduction costs one copy of the data.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np
from numpy.typing import ArrayLike

from .arrays import SequenceBatch, as_sequences
from .config import PADDING_MODES, ConvConfig, ConvSettings, ConvSpec
from .validation import check_choice, check_int

if TYPE_CHECKING:
    from typing_extensions import Unpack


@dataclass(eq=False)
class Block:
    """One group as a valid, stride-1, undilated cross-correlation (see the module docstring).

    ``xs[i]`` is ``(len_i, channels)``; ``ys[i]`` (or None) is ``(len_i - taps + 1, len(out_channels))``.
    ``mask[j, c]`` is True where the coefficient ``W[j, c, o]`` is free.  ``out_channels`` are the indices
    of the user's output channels that this group produces; a solver returns, per block, a kernel of shape
    ``(taps, channels, len(out_channels))`` with zeros where ``mask`` is False.
    """

    xs: list[np.ndarray]
    ys: list[np.ndarray] | None
    taps: int
    mask: np.ndarray
    out_channels: np.ndarray
    cache: dict = field(default_factory=dict, repr=False)

    @property
    def channels(self) -> int:
        return self.mask.shape[1]

    @property
    def n_free(self) -> int:
        return int(np.count_nonzero(self.mask))  # (asked many times a fit: a count, not a ufunc reduction)

    @property
    def n_equations(self) -> int:
        xs = self.xs
        if len(xs) == 1:  # (asked many times a fit; most blocks hold one sequence)
            return len(xs[0]) - self.taps + 1
        return sum(len(x) - self.taps + 1 for x in xs)

    @property
    def outputs(self) -> list[np.ndarray]:
        """``ys``, for code that needs them (a problem handed to a solver always has them)."""
        if self.ys is None:
            raise ValueError("this needs the outputs `y`: the problem was built without them (y=None).")
        return self.ys

    @property
    def retains_rows(self) -> bool:
        """Whether ``xs``/``ys`` hold every equation (False for streamed statistics that kept only a sample)."""
        return True


@dataclass(eq=False)
class CanonicalProblem:
    """A validated problem: the user's configuration and one :class:`Block` per group.

    This is what a solver receives (``solve(problem, **options) -> Solution``).

    Attributes
    ----------
    config : ConvConfig
        The user's configuration (kernel_size, channels, stride, padding, ..., use_bias).
    blocks : list of Block
        One per group: the canonical inputs, outputs, taps and mask.
    lengths, out_lengths : tuple of int
        Input and output length of each of the user's sequences.
    x_form, x_item_ndims, dtype
        The form, item dimensions and dtype of the user's ``x``, to give outputs back in the same form.
    inputs : tuple or None
        The caller's sequences as read, for the post-fit checks; None for streamed problems.
    """

    config: ConvConfig
    blocks: list[Block]
    lengths: tuple[int, ...]  # user input length of each sequence
    out_lengths: tuple[int, ...]
    x_form: str
    x_item_ndims: tuple[int, ...]
    dtype: np.dtype
    #: The caller's sequences ``(xs, ys)`` as read (``(length, channels)`` views), for the post-fit checks that
    #: refit other settings; None for streamed problems.
    inputs: tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...] | None] | None = field(default=None, repr=False)

    @property
    def n_equations(self) -> int:
        """Equations per output channel (each output sample of that channel is one equation)."""
        return int(sum(self.out_lengths))

    # -- kernel maps --------------------------------------------------------------------------

    def tap_layout(self) -> tuple[int, int]:
        """``(s, taps)``: kernel tap ``k`` (reversed first for ``flip=True``) is canonical tap ``k // s`` of phase
        ``k % s`` (``s = stride / gcd(stride, dilation)``); each block has ``taps = ceil(kernel_size / s)`` taps."""
        s = self.config.stride // math.gcd(self.config.stride, self.config.dilation)
        taps = -(-self.config.kernel_size // s)
        return s, taps

    def to_canonical(self, kernel: np.ndarray) -> list[np.ndarray]:
        """Split a user kernel ``(K, Cin/groups, Cout)`` into canonical block kernels."""
        cfg = self.config
        s, taps = self.tap_layout()
        k = kernel[::-1] if cfg.flip else kernel
        padded = np.zeros((taps * s,) + k.shape[1:], dtype=k.dtype)
        padded[: cfg.kernel_size] = k
        full = padded.reshape(taps, s * cfg.in_per_group, cfg.out_channels)
        return [full[:, :, b.out_channels] for b in self.blocks]

    def from_canonical(self, kernels: Sequence[np.ndarray]) -> np.ndarray:
        """Assemble canonical block kernels back into the user kernel ``(K, Cin/groups, Cout)``."""
        cfg = self.config
        s, taps = self.tap_layout()
        dtype = np.result_type(*kernels)
        if len(self.blocks) == 1 and s == 1 and len(self.blocks[0].out_channels) == cfg.out_channels:
            k = kernels[0][: cfg.kernel_size]  # one block of every output (in order: groups=1): the kernel itself
            return np.array(k[::-1] if cfg.flip else k, dtype=dtype)
        full = np.zeros((taps, s * cfg.in_per_group, cfg.out_channels), dtype=dtype)
        for b, w in zip(self.blocks, kernels):
            full[:, :, b.out_channels] = w
        k = full.reshape(taps * s, cfg.in_per_group, cfg.out_channels)[: cfg.kernel_size]
        return np.ascontiguousarray(k[::-1] if cfg.flip else k)

    def from_canonical_bias(self, biases: Sequence[np.ndarray]) -> np.ndarray:
        out = np.zeros(self.config.out_channels, dtype=np.result_type(*biases))
        for b, v in zip(self.blocks, biases):
            out[b.out_channels] = v
        return out

    def to_canonical_bias(self, bias: np.ndarray) -> list[np.ndarray]:
        return [bias[b.out_channels] for b in self.blocks]

    def free_to_kernel(self, vector: np.ndarray) -> tuple[np.ndarray, float | None]:
        """Map a vector over one block's free coefficients (then the bias) to ``(K, Cin/groups)`` and a bias."""
        cfg = self.config
        s, taps = self.tap_layout()
        mask = self.blocks[0].mask
        n_free = self.blocks[0].n_free
        canon = np.zeros(mask.shape)
        canon[mask] = vector[:n_free]
        k = canon.reshape(taps * s, cfg.in_per_group)[: cfg.kernel_size]
        bias = float(vector[n_free]) if cfg.use_bias else None
        return np.ascontiguousarray(k[::-1] if cfg.flip else k), bias

    # -- output maps --------------------------------------------------------------------------

    def assemble_outputs(self, block_outputs: Sequence[Sequence[np.ndarray]]) -> list[np.ndarray]:
        """Put canonical outputs (per block, per subsequence) back as user ``(out_length, Cout)`` arrays."""
        cfg = self.config
        d_sub = cfg.dilation // math.gcd(cfg.stride, cfg.dilation)
        dtype = np.result_type(*[o for outs in block_outputs for o in outs]) if self.n_equations else np.float64
        outs = [np.zeros((m, cfg.out_channels), dtype=dtype) for m in self.out_lengths]
        for block, outputs in zip(self.blocks, block_outputs):
            it = iter(outputs)
            for i, m in enumerate(self.out_lengths):
                for r in range(min(d_sub, m)):
                    outs[i][r::d_sub, block.out_channels] = next(it)
        return outs


#: Data whose largest magnitude lies outside ``[1 / VALUE_RANGE, VALUE_RANGE]`` are refused by the solvers:
#: sums of their squared products (the Gram, the spectra) would overflow or underflow float64.
VALUE_RANGE = 1e60


def _physical_memory() -> int:
    import os

    try:
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):  # no sysconf (Windows): assume 1 TiB
        return 1 << 40


def _format_bytes(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:.3g} {unit}"
        n /= 1000
    return f"{n:.3g} PB"


def check_gram_memory(cfg: ConvConfig, n_blocks: int | None = None) -> None:
    """Refuse, before allocating, a problem whose ``P x P`` Gram matrices would not fit in memory.

    ``P`` is ``kernel_size * in_channels // groups`` (+1 with a bias); one Gram per group (or per block).  The
    Gram and its eigenvectors need twice its size, so more than half of the physical memory is refused.
    """
    p = cfg.kernel_size * cfg.in_per_group + int(cfg.use_bias)
    blocks = cfg.groups if n_blocks is None else n_blocks
    need = 8.0 * p * p * blocks
    have = _physical_memory()
    if 2 * need > have:
        raise MemoryError(
            f"kernel_size={cfg.kernel_size} with in_channels // groups = {cfg.in_per_group} gives P = {p} unknowns "
            f"per output channel: the {p} x {p} Gram matrix (x {blocks} group(s)) would need "
            f"{_format_bytes(need)}, and twice that to solve, more than this machine's {_format_bytes(have)} of "
            "memory. Use a smaller kernel_size, fewer input channels or more groups."
        )


def check_feasible(problem: CanonicalProblem, *, outputs: bool = True) -> None:
    """Refuse problems a solver cannot handle: Grams too large for memory, values whose squares overflow.

    Single-channel canonical blocks are exempt from the memory check: lstsq and fft solve long kernels from
    FFT products without forming the Gram (adam checks for itself).
    """
    if any(b.channels > 1 for b in problem.blocks):
        check_gram_memory(problem.config, len(problem.blocks))
    checked = [("x", [m for b in problem.blocks if ("feasible", "x") not in b.cache for m in _magnitudes(b, "x")])]
    if outputs:  # (the report reads only x's statistics)
        checked.append(
            ("y", [m for b in problem.blocks if ("feasible", "y") not in b.cache for m in _magnitudes(b, "y")])
        )
    for name, arrays in checked:
        big = max(arrays, default=0.0)
        if big > VALUE_RANGE or 0.0 < big < 1.0 / VALUE_RANGE:
            scales = "the kernel scales by the inverse factor" if name == "x" else "the kernel scales with it"
            raise ValueError(
                f"`{name}` has values of magnitude up to {big:.3g}: sums of their squares would "
                f"{'overflow' if big > 1 else 'underflow'} float64. Rescale `{name}` (e.g. divide it by {big:.3g}); "
                f"{scales}."
            )
    for block in problem.blocks:  # checked once per problem (the report and the solve both ask)
        block.cache[("feasible", "x")] = True
        if outputs:
            block.cache[("feasible", "y")] = True


def _magnitude(a: np.ndarray) -> float:
    """``max(abs(a))`` of a non-empty array, from its extremes (two reductions, no temporary; NaN propagates)."""
    return max(-float(a.min()), float(a.max()))


def _magnitudes(block: Block, name: Literal["x", "y"]) -> list[float]:
    """``max(abs(a))`` of each non-empty array of a block's inputs (``"x"``) or outputs (``"y"``), or the largest of
    them as :func:`problem_for_spec` noted it when the block's arrays are the caller's sequences as read."""
    arrays = block.xs if name == "x" else block.ys or []
    noted = block.cache.get(("magnitude", name))
    if noted is not None and noted[0] is arrays and noted[1] == len(arrays):  # (the same, unchanged list)
        return [noted[2]]
    return [_magnitude(a) for a in arrays if a.size]


def _note_magnitudes(block: Block, xb: SequenceBatch, yb: SequenceBatch | None, kernel_size: int) -> None:
    """Note, for :func:`check_feasible`, the largest magnitude of the everyday block's arrays (the sequences at least
    ``kernel_size`` long, :func:`_reduce`), which reading them found (:attr:`SequenceBatch.magnitudes`)."""
    kept = range(1) if len(xb.arrays) == 1 else [i for i, x in enumerate(xb.arrays) if len(x) >= kernel_size]
    if len(kept) != len(block.xs):
        return
    for name, batch, arrays in (("x", xb, block.xs), ("y", yb, block.ys)):
        if batch is None or arrays is None or len(batch.magnitudes) != len(batch.arrays):
            continue
        found = [batch.magnitudes[i] for i in kept]
        if found and None not in found:
            block.cache[("magnitude", name)] = (arrays, len(arrays), max(m for m in found if m is not None))


def build_problem(
    x: ArrayLike,
    y: ArrayLike | None,
    kernel_size: int | None,
    *,
    out_channels: int | None = None,
    nan_policy: Literal["raise", "omit"] = "raise",
    **settings: Unpack[ConvSettings],
) -> CanonicalProblem:
    """Validate user arrays and configuration and reduce them to a :class:`CanonicalProblem`.

    ``settings`` are those of :class:`~kernel_recovery.model.config.ConvSpec`.  Without ``y``, ``out_channels``
    (default: ``groups``, one filter per group) sizes the problem.  ``nan_policy="omit"`` drops the equations
    (output samples) that are NaN in ``y`` or touch a NaN in ``x``.
    """
    spec = ConvSpec.create(kernel_size, **settings)
    return problem_for_spec(x, y, spec, out_channels=out_channels, nan_policy=nan_policy)


def problem_for_spec(
    x: ArrayLike,
    y: ArrayLike | None,
    spec: ConvSpec,
    *,
    out_channels: int | None = None,
    nan_policy: Literal["raise", "omit"] = "raise",
) -> CanonicalProblem:
    """:func:`build_problem` with settings already validated (a door's :class:`ConvSpec`: judged once)."""
    layout_name = spec.layout
    omit = nan_policy != "raise" and check_choice(nan_policy, "nan_policy", ("raise", "omit")) == "omit"
    xb = as_sequences(x, "x", layout_name, allow_nan=omit)
    yb = None if y is None else as_sequences(y, "y", layout_name, allow_nan=omit)
    if yb is not None:
        if len(yb.arrays) != len(xb.arrays):
            raise ValueError(
                f"`x` and `y` must hold the same number of sequences, got {len(xb.arrays)} and {len(yb.arrays)}."
            )
        out_channels = yb.channels
    elif out_channels is None:
        out_channels = spec.groups
    else:
        out_channels = check_int(out_channels, "out_channels")
    cfg = spec.bind(xb.channels, out_channels)
    lengths, out_lengths = _check_lengths(cfg, xb, yb)
    blocks = _reduce(cfg, xb.arrays, None if yb is None else yb.arrays)
    if omit:
        blocks = _omit_missing_equations(blocks)
    elif _is_everyday(cfg):
        _note_magnitudes(blocks[0], xb, yb, cfg.kernel_size)
    inputs = (xb.arrays, None if yb is None else yb.arrays)
    return CanonicalProblem(cfg, blocks, lengths, out_lengths, xb.form, xb.item_ndims, xb.dtype, inputs)


def _check_lengths(
    cfg: ConvConfig, xb: SequenceBatch, yb: SequenceBatch | None
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The input and output length of each sequence; a ValueError where ``x`` is too short or ``y`` has
    another length than the configuration gives.

    A sequence of a batch too short for one output gives none (its ``y`` is empty, as Keras and PyTorch give an
    empty output): it contributes no equations.  Only a batch where every sequence is too short is refused.
    """
    lengths: tuple[int, ...]
    out_lengths: tuple[int, ...]
    if len(xb.arrays) == 1:  # (one sequence: the everyday call, without the generators)
        lengths = (len(xb.arrays[0]),)
        out_lengths = (max(cfg.output_length(lengths[0]), 0),)
    else:
        lengths = tuple(len(a) for a in xb.arrays)
        out_lengths = tuple(max(cfg.output_length(n), 0) for n in lengths)
    for i, n in enumerate(lengths):
        if n == 0:  # (only a ragged list lets an empty sequence through: it has no samples to pad)
            raise ValueError(f"`x[{i}]` is empty (length 0, {xb.channels} channels).")
    if not any(out_lengths):
        which = "`x`" if len(lengths) == 1 else "every sequence of `x` is too short for one output: the longest"
        raise ValueError(
            f"{which} has {max(lengths)} samples, too short for kernel_size={cfg.kernel_size}, dilation="
            f"{cfg.dilation} with padding={cfg.padding!r}: a receptive field spans {cfg.span} samples."
            f"{_layout_hint(xb, cfg)}"
        )
    if yb is not None:
        for i, (n, m) in enumerate(zip(lengths, out_lengths)):
            if len(yb.arrays[i]) != m:
                where = "" if len(lengths) == 1 else f" (sequence {i})"
                raise ValueError(
                    f"`y`{where} has {len(yb.arrays[i])} samples but {n} input samples with {cfg.describe()} give "
                    f"{m} outputs{length_hint(cfg, n, len(yb.arrays[i]))}; check `padding`, `stride`, `dilation`, "
                    f"`kernel_size` and `layout`.{_layout_hint(xb, cfg)}"
                )
    return lengths, out_lengths


def _omit_missing_equations(blocks: list[Block]) -> list[Block]:
    """``nan_policy="omit"``: each block without the equations that read a NaN (:func:`_omit_missing`); a
    ValueError if an output channel has none left."""
    blocks = [part for block in blocks for part in _omit_missing(block)]
    empty = sorted(int(o) for b in blocks if b.n_equations == 0 for o in b.out_channels)
    if empty:
        raise ValueError(
            f"nan_policy='omit' leaves no equations for output channel(s) {empty}: every output sample is NaN "
            "in `y` or reads a NaN of `x`."
        )
    return blocks


def length_hint(cfg: ConvConfig, length: int, y_length: int) -> str:
    """Settings that turn ``length`` input samples into ``y_length`` outputs, as a sentence ('' if none)."""
    fits = []
    for padding in PADDING_MODES:
        if padding != cfg.padding and dataclasses.replace(cfg, padding=padding).output_length(length) == y_length:
            fits.append(f"padding={padding!r}")
    for k in (cfg.kernel_size - 1, cfg.kernel_size + 1):
        if k >= 1 and dataclasses.replace(cfg, kernel_size=k).output_length(length) == y_length:
            fits.append(f"kernel_size={k}")
    for s in (1, 2, 3, 4):
        if s != cfg.stride and dataclasses.replace(cfg, stride=s).output_length(length) == y_length:
            fits.append(f"stride={s}")
    return f" ({' or '.join(fits)} would give {y_length})" if fits else ""


def _layout_hint(xb: SequenceBatch, cfg: ConvConfig) -> str:
    """A sentence suggesting the other layout when ``x`` looks transposed ('' otherwise)."""
    if xb.form not in ("2d", "3d"):
        return ""
    length, channels = xb.arrays[0].shape
    if length < channels:
        other = "ncw" if cfg.layout == "nwc" else "nwc"
        return (
            f" With layout={cfg.layout!r}, `x` has {length} samples of {channels} channels: if it is "
            f"({'channels, length' if other == 'ncw' else 'length, channels'}), pass layout={other!r}."
        )
    return ""


def _omit_missing(block: Block) -> list[Block]:
    """Drop equations that are NaN in y or touch a NaN in x, by splitting subsequences around them.

    The pieces stay valid stride-1 correlations, so every solver handles missing data unchanged.  Output
    channels whose missing rows differ get blocks of their own (their designs differ).
    """
    n_out = len(block.out_channels)
    missing = []  # per subsequence: (rows, n_out) bool
    xs = []
    for i, x in enumerate(block.xs):
        m = len(x) - block.taps + 1
        miss = np.zeros((m, n_out), dtype=bool)
        if block.ys is not None:
            miss |= np.isnan(block.ys[i])
        nan_rows, nan_cols = np.nonzero(np.isnan(x))
        if len(nan_rows):
            for j in range(block.taps):  # output t uses row t + j of channel c where mask[j, c]
                hit = nan_rows[block.mask[j, nan_cols]] - j
                miss[hit[(hit >= 0) & (hit < m)]] = True
            x = np.where(np.isnan(x), 0.0, x)  # no remaining equation reads these
        missing.append(miss)
        xs.append(x)
    if not any(m.any() for m in missing):  # no equation reads a NaN (those of x, zeroed above, are never read)
        return [block] if all(x is y for x, y in zip(xs, block.xs)) else [dataclasses.replace(block, xs=xs, cache={})]
    same = all((m == m[:, :1]).all() for m in missing)
    groups = [np.arange(n_out)] if same else [np.array([o]) for o in range(n_out)]
    ys = block.ys
    parts = []
    for cols in groups:
        bx: list[np.ndarray] = []
        by: list[np.ndarray] = []  # (unused when the block has no outputs)
        for i, x in enumerate(xs):
            good = ~missing[i][:, cols[0]]
            edges = np.flatnonzero(np.diff(np.concatenate([[0], good.astype(np.int8), [0]])))
            for a, b in zip(edges[::2], edges[1::2]):
                bx.append(x[a : b + block.taps - 1])
                if ys is not None:
                    by.append(ys[i][a:b][:, cols])
        if not bx:  # every equation dropped: keep an empty subsequence so shapes stay defined
            bx.append(np.zeros((block.taps - 1, block.channels)))
            by.append(np.zeros((0, len(cols))))
        parts.append(Block(bx, None if ys is None else by, block.taps, block.mask.copy(), block.out_channels[cols]))
    return parts


def _is_everyday(cfg: ConvConfig) -> bool:
    """Whether the canonical problem is the data as read: one group, stride 1, no dilation, valid padding."""
    return cfg.groups == 1 and cfg.stride == 1 and cfg.dilation == 1 and cfg.padding == "valid"


@functools.lru_cache(maxsize=64)
def _tap_mask(taps: int, s: int, cin: int, kernel_size: int) -> np.ndarray:
    """The free coefficients of a block, ``(taps, s * cin)``: kernel tap ``j * s + q`` exists (read-only: copied per
    block)."""
    mask = (np.arange(taps * s) < kernel_size).reshape(taps, s, 1).repeat(cin, axis=2).reshape(taps, s * cin)
    mask.flags.writeable = False
    return mask


def _reduce(cfg: ConvConfig, xs: Sequence[np.ndarray], ys: Sequence[np.ndarray] | None) -> list[Block]:
    g = math.gcd(cfg.stride, cfg.dilation)
    s, d_sub = cfg.stride // g, cfg.dilation // g
    taps = -(-cfg.kernel_size // s)
    cin = cfg.in_per_group
    mask = _tap_mask(taps, s, cin, cfg.kernel_size)
    if _is_everyday(cfg):
        # the everyday configuration: the canonical problem is the data (views of every sequence long enough for
        # one output, as the general loop below cuts them)
        k = cfg.kernel_size
        views = [x[:] for x in xs if len(x) >= k]
        out_views = None if ys is None else [y[:] for x, y in zip(xs, ys) if len(x) >= k]
        return [Block(views, out_views, taps, mask.copy(), np.arange(cfg.out_channels))]
    blocks = []
    for grp in range(cfg.groups):
        bx: list[np.ndarray] = []
        by: list[np.ndarray] = []  # (unused without outputs)
        out_ch = np.arange(grp * cfg.out_per_group, (grp + 1) * cfg.out_per_group)
        for i, x in enumerate(xs):
            left, right = cfg.pads(len(x))
            xg = x[max(-left, 0) : len(x) - max(-right, 0), grp * cin : (grp + 1) * cin]  # negative pads crop
            if left > 0 or right > 0:
                xg = np.concatenate([np.zeros((max(left, 0), cin)), xg, np.zeros((max(right, 0), cin))])
            m = cfg.output_length(len(x))
            for r in range(min(d_sub, m)):
                m_r = len(range(r, m, d_sub))
                n_c = m_r + taps - 1
                sub = xg[r * cfg.stride :: cfg.dilation]  # x_r[i] = x[r*s + i*d]
                if s == 1:
                    canon = sub[:n_c]
                else:
                    need = n_c * s
                    if len(sub) < need:
                        sub = np.concatenate([sub, np.zeros((need - len(sub), cin))])
                    canon = sub[:need].reshape(n_c, s * cin)  # channel q*cin + c holds x_r[i*s + q, c]
                bx.append(canon)
                if ys is not None:  # a view: the outputs of this group are a slice of the channels
                    by.append(ys[i][r::d_sub, grp * cfg.out_per_group : (grp + 1) * cfg.out_per_group])
        blocks.append(Block(bx, None if ys is None else by, taps, mask.copy(), out_ch))
    return blocks
