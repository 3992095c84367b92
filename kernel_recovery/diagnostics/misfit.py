"""Misconfiguration help: does another Conv1D setting explain data that the given one does not?

A large residual has two causes: noise, or data that are not a convolution with the given settings (the
padding aligns ``y`` differently, the layer had a bias, the kernel is one tap longer, the taps are
dilated).  Noise cannot be fitted away; a wrong setting can.  :func:`diagnose` refits, by least squares
on a bounded sample of rows, the alternatives whose output lengths agree with ``y``, and speaks only
when one of them removes most of the residual (``MISFIT_FACTOR``).  Data that are a convolution with the
given settings, noisy or not, are never flagged: no alternative fits noise much better than the right
model does.

Two settings are not among the alternatives, because the residual cannot tell them apart: ``flip`` (a true
convolution is a cross-correlation with the reversed kernel, so both fit any data equally well; the kernel
comes out reversed) and ``layout`` (reading ``(channels, length)`` as ``(length, channels)`` swaps the two,
and both readings cannot be overdetermined at once; a wrong layout shows as a length error, which names
it, or as an underdetermined report).

Alignment on the rows used: output ``t`` of a sequence of ``L`` samples reads
``x[t * stride - left + k * dilation]`` for ``k < kernel_size``, where ``left`` is the padding's left zeros;
only rows that read no padding are used, so every alternative is a plain least-squares fit of the same
data.  :func:`~kernel_recovery.model.problem.length_hint` names the settings that would give the lengths ``y``
has, for the length error.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, TypedDict

import numpy as np

from ..model.config import PADDING_MODES, ConvConfig, PaddingMode
from ..model.design import window_rows
from ..model.problem import CanonicalProblem
from ..model.threads import SerialBLAS

#: The check runs when the residual rms exceeds this share of y's rms: a misconfigured fit leaves a large share;
#: a correct fit to data with an SNR above 26 dB leaves less, and pays nothing for the check.
MISFIT_GATE = 0.05
#: An alternative must bring the residual sum of squares below this share of the given setting's.
MISFIT_FACTOR = 0.25
#: Rows per fit, at most (evenly spaced over the sequences; fewer for small fits).
SAMPLE_ROWS = 4096
#: Fits with more unknowns per output channel than this are skipped (the check stays cheap).
MAX_UNKNOWNS = 512
#: Explicit paddings tried: shifts of the given alignment by at most this many samples (besides the named modes).
MAX_SHIFT = 2
#: Dilations tried when the lengths allow it.
DILATIONS = (1, 2, 3)


class Suggestion(TypedDict):
    """Another setting that fits: the keyword arguments to change, in words, and its relative residual rms."""

    setting: dict[str, Any]
    label: str
    relative_residual: float


class Misconfiguration(TypedDict):
    """What :func:`diagnose` finds (see there)."""

    relative_residual: float
    sample_relative_residual: float
    suggestions: list[Suggestion]
    message: str


@dataclasses.dataclass(frozen=True)
class _Candidate:
    label: str
    setting: dict[str, Any]
    config: ConvConfig
    xs: tuple[np.ndarray, ...]


def _out_lengths_match(cfg: ConvConfig, lengths: Sequence[int], y_lengths: Sequence[int]) -> bool:
    return all(cfg.output_length(n) == m for n, m in zip(lengths, y_lengths))


def _padding_label(padding: PaddingMode | tuple[int, int]) -> str:
    return f"padding={padding!r}"


def _candidates(cfg: ConvConfig, xs: Sequence[np.ndarray], ys: Sequence[np.ndarray]) -> list[_Candidate]:
    """The alternative settings whose output lengths equal those of ``y``."""
    lengths = [len(a) for a in xs]
    y_lengths = [len(a) for a in ys]
    cands: list[_Candidate] = []
    seen = {tuple(cfg.pads(n)[0] for n in lengths)}

    def add(label: str, setting: dict[str, Any], new_cfg: ConvConfig) -> None:
        cands.append(_Candidate(label, setting, new_cfg, tuple(xs)))

    if cfg.lags is not None:  # a lag range: the same range shifted, or one lag longer at either end
        first, last = cfg.lags
        ranges = [(first + d, last + d) for d in range(-MAX_SHIFT, MAX_SHIFT + 1) if d]
        ranges += [(first - 1, last), (first, last + 1)]
        for lags in ranges:
            alt = ConvConfig.create(None, cfg.in_channels, cfg.out_channels, groups=cfg.groups, use_bias=cfg.use_bias,
                                    layout=cfg.layout, flip=cfg.flip, lags=lags)  # fmt: skip
            add(f"lags={lags}", {"lags": lags}, alt)
        if not cfg.use_bias:
            add("use_bias=True", {"use_bias": True}, dataclasses.replace(cfg, use_bias=True))
        return cands
    # padding: the named modes, then explicit shifts by up to MAX_SHIFT samples with the same total padding
    totals = {sum(cfg.pads(n)) for n in lengths}
    options: list[PaddingMode | tuple[int, int]] = list(PADDING_MODES)
    if len(totals) == 1:
        total, left0 = totals.pop(), cfg.pads(lengths[0])[0]
        lefts = range(max(left0 - MAX_SHIFT, 0), min(left0 + MAX_SHIFT, total) + 1)
        options += [(left, total - left) for left in lefts]
    for padding in options:
        alt = dataclasses.replace(cfg, padding=padding)
        if not _out_lengths_match(alt, lengths, y_lengths):
            continue
        alt_lefts = tuple(alt.pads(n)[0] for n in lengths)
        if alt_lefts in seen:
            continue
        seen.add(alt_lefts)
        add(_padding_label(padding), {"padding": padding}, alt)
    if not cfg.use_bias:
        add("use_bias=True", {"use_bias": True}, dataclasses.replace(cfg, use_bias=True))
    longer = dataclasses.replace(cfg, kernel_size=cfg.kernel_size + 1)
    if _out_lengths_match(longer, lengths, y_lengths):
        add(f"kernel_size={cfg.kernel_size + 1}", {"kernel_size": cfg.kernel_size + 1}, longer)
    for d in DILATIONS:
        alt = dataclasses.replace(cfg, dilation=d)
        if d != cfg.dilation and _out_lengths_match(alt, lengths, y_lengths):
            add(f"dilation={d}", {"dilation": d}, alt)
    return cands


def _relative_rss(cfg: ConvConfig, xs: Sequence[np.ndarray], ys: Sequence[np.ndarray]) -> float | None:
    """``RSS / sum(y^2)`` of the least-squares fit of ``cfg`` on a sample of rows that read no padding."""
    cin, cout, k, s, d = cfg.in_per_group, cfg.out_per_group, cfg.kernel_size, cfg.stride, cfg.dilation
    unknowns = k * cin + int(cfg.use_bias)
    if unknowns > MAX_UNKNOWNS:
        return None
    spans = []
    for x, y in zip(xs, ys):
        left = cfg.pads(len(x))[0]
        first = max(-(-left // s), 0)  # t * s - left >= 0 (a negative left padding crops)
        last = min((len(x) - 1 + left - (k - 1) * d) // s, len(y) - 1)
        spans.append((first, max(last - first + 1, 0)))
    usable = sum(n for _, n in spans)
    if usable < 4 * unknowns + 10:
        return None
    n_rows = min(usable, SAMPLE_ROWS, max(6 * unknowns, 512))  # 6 rows per unknown: enough to tell fits apart
    wanted = np.unique(np.linspace(0, usable - 1, n_rows).astype(np.int64))
    rss = yty = 0.0
    for g in range(cfg.groups):
        rows, targets = [], []
        offset = 0
        for (first, n), x, y in zip(spans, xs, ys):
            t = wanted[(wanted >= offset) & (wanted < offset + n)] - offset + first
            offset += n
            if not len(t):
                continue
            span = (k - 1) * d + 1
            rows_all = window_rows(x[:, g * cin : (g + 1) * cin], span, t * s - cfg.pads(len(x))[0])
            a = rows_all.reshape(len(t), span, cin)[:, ::d].reshape(len(t), k * cin)  # taps 0, d, 2d, ...
            if cfg.use_bias:
                a = np.concatenate([a, np.ones((len(t), 1))], axis=1)
            rows.append(a)
            targets.append(y[t][:, g * cout : (g + 1) * cout])
        a, b = np.concatenate(rows), np.concatenate(targets)
        good = np.isfinite(a).all(axis=1) & np.isfinite(b).all(axis=1)  # nan_policy="omit" data
        a, b = a[good], b[good]
        if len(a) < 4 * unknowns + 10:
            return None
        with SerialBLAS():  # small LAPACK calls: OpenBLAS threads only slow them down on shared cores
            coef = _least_squares(a, b)
        rss += float(np.sum((b - a @ coef) ** 2))
        yty += float(np.sum(b**2))
    return rss / yty if yty > 0 else None


#: The normal equations serve a refit whose Cholesky factor has diagonal entries within this ratio (the design's
#: condition number about its square root at most: coefficients to ~1e-8, residuals to rounding); others take SVD.
CHOLESKY_RANGE = 1e5


def _least_squares(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Least-squares coefficients of ``a x = b``: by a Cholesky factor of ``a^T a`` (several times faster than an
    SVD at the sizes refitted here: 0.35 vs 2.5 ms at 774 x 129) where it is well conditioned, else by SVD."""
    import scipy.linalg

    try:
        factor = scipy.linalg.cho_factor(a.T @ a, check_finite=False)
    except np.linalg.LinAlgError:
        return np.linalg.lstsq(a, b, rcond=None)[0]
    diagonal = np.abs(np.diag(factor[0]))
    if not diagonal.min() > diagonal.max() / CHOLESKY_RANGE:
        return np.linalg.lstsq(a, b, rcond=None)[0]
    return scipy.linalg.cho_solve(factor, a.T @ b, check_finite=False)


def diagnose(problem: CanonicalProblem, relative_residual: float) -> Misconfiguration | None:
    """Alternative settings that fit the problem's data much better than ``problem.config``, or None.

    Parameters
    ----------
    problem : CanonicalProblem
        The problem (its configuration is the one questioned); the sequences it was read from
        (``problem.inputs``) are refitted with the other settings.
    relative_residual : float
        ``residual_rms / rms(y)`` of the result; at most ``MISFIT_GATE`` returns None at once.

    Returns
    -------
    dict or None
        ``relative_residual`` (of the given setting, from the result), ``sample_relative_residual`` (of its
        least-squares fit on the sampled rows), ``suggestions`` (a list of dicts with ``setting`` (the keyword
        arguments to change), ``label`` and ``relative_residual``, best first) and ``message`` (one sentence).

    Examples
    --------
    >>> import numpy as np, kernel_recovery as kr
    >>> x = np.random.default_rng(0).standard_normal(300)
    >>> y = kr.conv1d(x, [1.0, 2.0, -1.0, 0.5, 0.25], padding="causal")
    >>> import warnings
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore", kr.KernelSizeWarning)  # it points at the alignment too
    ...     res = kr.recover_kernel(x, y, 5, padding="same")
    >>> res.diagnostics["misconfiguration"]["suggestions"][0]["setting"]
    {'padding': 'causal'}
    """
    if not relative_residual > MISFIT_GATE:
        return None
    cfg = problem.config
    if problem.inputs is None:
        return None
    xs, ys = problem.inputs
    if ys is None:
        return None
    current = _relative_rss(cfg, xs, ys)
    if current is None or current <= MISFIT_GATE**2:
        return None
    found: list[Suggestion] = []
    for cand in _candidates(cfg, xs, ys):
        rel = _relative_rss(cand.config, cand.xs, ys)
        if rel is not None and rel < MISFIT_FACTOR * current:
            found.append({"setting": cand.setting, "label": cand.label, "relative_residual": float(np.sqrt(rel))})
    if not found:
        return None
    found.sort(key=lambda f: f["relative_residual"])
    best = found[0]
    others = ", ".join(f["label"] for f in found[1:4] if f["relative_residual"] <= 2 * best["relative_residual"] + 1e-9)
    message = (
        f"the data do not match a convolution with {cfg.describe()}, layout={cfg.layout!r}: the residual is "
        f"{relative_residual:.2g} of y's rms, while {best['label']} fits them to {best['relative_residual']:.2g}; "
        f"try {best['label']}" + (f" (also better: {others})" if others else "") + "."
    )
    return {
        "relative_residual": float(relative_residual),
        "sample_relative_residual": float(np.sqrt(current)),
        "suggestions": found,
        "message": message,
    }
