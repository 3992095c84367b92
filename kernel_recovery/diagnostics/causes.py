"""Plain-words reasons why the data leave a group's kernel undetermined, and what extra data would fix them."""

from __future__ import annotations

import numpy as np

from ..model.design import design_rows, n_columns
from ..model.problem import Block, CanonicalProblem
from ..model.spectrum import BlockSpectrum
from .geometry import shape_causes, user_taps


def _frequencies(spec: BlockSpectrum, cols: np.ndarray, order: int, dilation: int) -> list[float]:
    """Frequencies (radians per sample) of a channel that excites ``order`` < kernel_size directions.

    The first ``order + 1`` taps then have one null direction: the coefficients of the polynomial that
    annihilates the signal, whose roots on the unit circle are ``exp(+-i omega)`` of its frequencies.
    """
    sub = spec.coordinates[:, cols[: order + 1]]
    if np.any(cols[: order + 1] < 0):
        return []
    _, s, vt = np.linalg.svd(sub)
    roots = np.roots(vt[-1][::-1])
    on_circle = roots[np.abs(np.abs(roots) - 1) < 1e-4]
    if len(on_circle) != order:
        return []
    return sorted({round(float(abs(np.angle(z))) / dilation, 4) for z in on_circle})


def _column_ranges(block: Block, use_bias: bool) -> tuple[np.ndarray, np.ndarray]:
    """Smallest and largest entry of each design column (one streamed pass; cached on the block)."""
    key = ("column_ranges", use_bias)
    if key not in block.cache:
        p = n_columns(block, use_bias)
        lo, hi = np.full(p, np.inf), np.full(p, -np.inf)
        for x in block.xs:
            m = len(x) - block.taps + 1
            for start in range(0, m, 1 << 14):
                rows = design_rows(block, x, use_bias, start, start + (1 << 14))
                lo, hi = np.minimum(lo, rows.min(axis=0)), np.maximum(hi, rows.max(axis=0))
        block.cache[key] = (lo, hi)
    return block.cache[key]


def _is_constant(block: Block, use_bias: bool, columns: np.ndarray) -> bool:
    lo, hi = _column_ranges(block, use_bias)
    return bool(np.all(lo[columns] == hi[columns]) and np.ptp(lo[columns]) == 0)


def _gram_proportional(coords: np.ndarray, cols_a: np.ndarray, cols_b: np.ndarray) -> bool:
    """Whether every tap column of one channel is (to rounding) parallel to the same tap of another (prefilter)."""
    ma, mb = coords[:, cols_a], coords[:, cols_b]
    na, nb = np.linalg.norm(ma, axis=0), np.linalg.norm(mb, axis=0)
    return bool(np.all(np.abs(np.sum(ma * mb, axis=0)) >= (1 - 1e-6) * na * nb))


#: ``(code, cause, advice)``: a short code, the reason in plain words, and what extra data would fix it.
Cause = tuple[str, str, str]


def diagnose(
    problem: CanonicalProblem,
    grp: int,
    block: Block,
    spec: BlockSpectrum,
    cols: np.ndarray,
    ranks_c: list[int],
    geometry: np.ndarray,
) -> list[Cause]:
    """Plain-words reasons for one group's rank deficiency: ``(code, cause, advice)``.

    In order: what the shapes decide (:func:`~.geometry.shape_causes`), each input channel on its own (zero,
    zero at some taps, constant, too few frequencies), pairs of channels (identical, proportional), channels
    related through several taps, the bias; "unexcited" when none of these explains the rank.
    """
    cfg = problem.config
    n_eq = block.n_equations
    out = shape_causes(cfg, problem.lengths, n_eq, geometry)
    if geometry.all():  # every tap reads only padding zeros: the geometry is the whole story
        return out
    norms = np.linalg.norm(spec.coordinates, axis=0)
    dead = np.zeros(cfg.in_per_group, dtype=bool)
    constant = np.zeros(cfg.in_per_group, dtype=bool)
    for c in range(cfg.in_per_group):
        found, dead[c], constant[c] = _channel_causes(problem, grp, c, block, spec, cols, ranks_c[c], geometry, norms)
        out += found
    pairs, explained = _pair_causes(cfg.in_per_group, grp, block, spec.coordinates, cols[~geometry], dead)
    out += pairs
    joint = spec.column_rank(cols.ravel())
    if joint < min(n_eq, int(sum(ranks_c))):
        out += _related_causes(grp, spec, cols, ranks_c, n_eq, explained)
    if cfg.use_bias and not constant.any() and spec.rank < min(n_eq, joint + 1):
        out.append(
            (
                "bias_confounded",
                "the bias is confounded with the taps: some combination of the inputs is constant (e.g. channels that "
                "sum to a constant, or a channel constant on every stride phase).",
                "use inputs with no constant combination, or set use_bias=False.",
            )
        )
    if not out:
        p = n_columns(block, cfg.use_bias)
        out.append(
            (
                "unexcited",
                f"the input does not excite every kernel direction: the design has rank {spec.rank} for {p} unknowns.",
                "use a broadband input (white noise, a chirp) on every channel.",
            )
        )
    return out


def _channel_causes(
    problem: CanonicalProblem,
    grp: int,
    c: int,
    block: Block,
    spec: BlockSpectrum,
    cols: np.ndarray,
    rank_c: int,
    geometry: np.ndarray,
    norms: np.ndarray,
) -> tuple[list[Cause], bool, bool]:
    """The causes that input channel ``c`` of the group shows on its own, and whether it is zero, or constant."""
    cfg = problem.config
    k = cfg.kernel_size
    user_c = grp * cfg.in_per_group + c
    live = ~geometry
    zero_taps = live & (norms[cols[:, c]] <= spec.tolerance)
    if zero_taps[live].all():
        return (
            [
                (
                    "zero_channel",
                    f"input channel {user_c} is zero: its taps have no effect on y.",
                    f"drive input channel {user_c} with a nonzero, broadband signal, or leave it out of the model.",
                )
            ],
            True,
            False,
        )
    out = []
    if zero_taps.any():
        out.append(
            (
                "zero_taps",
                f"input channel {user_c} is zero at every sample that tap(s) "
                f"{user_taps(cfg, np.flatnonzero(zero_taps))}"
                " read: those coefficients have no effect on y.",
                f"record input channel {user_c} where it is nonzero at the samples those taps read (a longer record).",
            )
        )
    # a constant channel excites one direction; only then is the (streamed) range check needed
    if rank_c <= 1 and _is_constant(block, cfg.use_bias, cols[:, c][live]):
        bias = " and with the bias" if cfg.use_bias else ""
        out.append(
            (
                "constant_channel",
                f"input channel {user_c} is constant: its taps are confounded with each other{bias} "
                "(only their sum is seen); a constant excites 1 direction.",
                f"make input channel {user_c} vary (a broadband signal such as white noise or a chirp).",
            )
        )
        return out, False, True
    if rank_c < min(int((live & ~zero_taps).sum()), block.n_equations):
        freqs = _frequencies(spec, cols[:, c], rank_c, cfg.dilation) if not geometry.any() else []
        out.append(_few_frequencies(user_c, rank_c, k, freqs))
    return out, False, False


def _few_frequencies(user_c: int, rank_c: int, k: int, freqs: list[float]) -> Cause:
    """The cause for input channel ``user_c`` exciting only ``rank_c`` of its ``k`` tap directions."""
    seen = f" (its frequencies: {', '.join(map(str, freqs))} rad/sample)" if freqs else ""
    return (
        "few_frequencies",
        f"input channel {user_c} has too few distinct frequencies: it excites only {rank_c} of its {k} tap "
        f"directions (order of persistent excitation {rank_c} < kernel_size={k}){seen}; a sinusoid "
        "excites only 2 directions, a constant 1.",
        f"drive input channel {user_c} with a broadband input (white noise, a chirp, or at least "
        f"{-(-k // 2)} sinusoids of distinct frequencies) so that it excites all {k} taps.",
    )


def _pair_causes(
    cin: int, grp: int, block: Block, coords: np.ndarray, live_cols: np.ndarray, dead: np.ndarray
) -> tuple[list[Cause], set[int]]:
    """Pairs of the group's input channels that are identical or proportional, and the channels they explain.

    ``live_cols`` are the design columns of the taps that read data, ``(live taps, cin)``.
    """
    out: list[Cause] = []
    explained = set()
    data = None
    for c in range(cin):
        for c2 in range(c + 1, cin):
            if dead[c] or dead[c2] or not _gram_proportional(coords, live_cols[:, c], live_cols[:, c2]):
                continue
            if data is None:
                data = np.concatenate(block.xs) if block.xs else np.zeros((0, block.channels))
            if len(data):
                a, b = data[:, c::cin].ravel(), data[:, c2::cin].ravel()
                na, nb, dot = np.linalg.norm(a), np.linalg.norm(b), float(np.dot(a, b))
            else:  # streamed statistics kept no rows: the Gram's columns of the first live tap tell the ratio
                i, j = live_cols[0, c], live_cols[0, c2]
                g = coords[:, [i, j]].T @ coords[:, [i, j]]
                na, nb, dot = np.sqrt(g[0, 0]), np.sqrt(g[1, 1]), float(g[0, 1])
            if abs(dot) < (1 - 1e-12) * na * nb:
                continue
            ratio = dot / na**2
            u, v = grp * cin + c, grp * cin + c2
            explained.add(c2)
            if abs(ratio - 1) < 1e-12:
                code, what = "identical_channels", f"input channels {u} and {v} are identical"
                seen = f"only the sum of their kernels (w{u} + w{v}) is seen"
            else:
                code = "proportional_channels"
                what = f"input channels {u} and {v} are proportional (channel {v} = {ratio:.4g} x channel {u})"
                seen = f"only w{u} + {ratio:.4g} w{v} is seen"
            out.append(
                (
                    code,
                    f"{what}: {seen}, not each kernel.",
                    f"record input channels {u} and {v} with independent signals.",
                )
            )
    return out, explained


def _related_causes(
    grp: int, spec: BlockSpectrum, cols: np.ndarray, ranks_c: list[int], n_eq: int, explained: set[int]
) -> list[Cause]:
    """Channels (not already explained by a pair) that add fewer directions than they excite on their own."""
    cin = cols.shape[1]
    related: list[int] = []
    previous: list[int] = []
    for c in range(cin):
        before = spec.column_rank(cols[:, previous].ravel()) if previous else 0
        after = spec.column_rank(cols[:, previous + [c]].ravel())
        if after < min(n_eq, before + ranks_c[c]) and c not in explained:
            related.append(grp * cin + c)
        previous.append(c)
    if not related:
        return []
    names = ", ".join(map(str, related))
    return [
        (
            "related_channels",
            f"input channel(s) {names} are linearly related to the other channels within kernel_size={len(cols)} taps "
            "(a delayed, filtered, scaled or summed copy): only combinations of their kernels are seen.",
            "record the input channels with independent signals (or leave out the redundant channel).",
        )
    ]
