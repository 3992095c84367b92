"""Choosing ``kernel_size``: information criteria, cross-validation, and the check that warns when it is too small."""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from . import solvers
from .api import recover_kernel
from .diagnostics.lagsearch import LagSelection, choose_lags_for
from .diagnostics.nested import (
    STRUCTURED_FROM,
    NestedRSS,
    PrefixFit,
    convolution_prefix_fit,
    information_criterion,
    prefix_fit,
)
from .exceptions import IllConditionedWarning, KernelSizeWarning, UnderdeterminedWarning
from .model.arrays import as_sequences
from .model.config import SETTING_DEFAULTS, ConvConfig, ConvSpec, Layout, PaddingMode
from .model.design import design_rows, n_columns
from .model.problem import Block, CanonicalProblem, build_problem
from .model.progress import progress_bar, show_progress
from .model.result import KernelResult
from .model.statistics import block_statistics
from .model.validation import check_bool, check_choice, check_int

CRITERIA = ("aic", "bic", "cv")
#: From this many candidates on, AIC/BIC with exact least squares score every size from one factorization.
NESTED_FROM = 12
#: Residuals below this fraction of ``y``'s energy count as an exact fit (the criteria floor the RSS here).
EXACT_FIT = 1e-20


@dataclass(frozen=True, eq=False)
class KernelSizeSelection:
    """The outcome of :func:`select_kernel_size`.

    Attributes
    ----------
    kernel_size : int
        The chosen size (the candidate with the lowest score).
    criterion : str
        "aic", "bic" or "cv".
    candidates : tuple of int
        The sizes compared, ascending.
    scores : ndarray of float
        The criterion for each candidate (lower is better); ``inf`` for a candidate that cannot be fitted (more
        unknowns than equations, or longer than ``y``'s length allows with ``padding="valid"``).
    rss : ndarray of float
        Residual sum of squares of each candidate's fit on all the data (``nan`` where not fitted).
    n_params : ndarray of int
        Coefficients of each candidate (taps of every output channel, plus the biases).
    n_samples : int
        Residuals the criteria count (output samples times output channels).
    status : tuple of str
        The determinacy status of each candidate's fit.
    result : KernelResult
        The fit at the chosen size.
    notes : tuple of str
        How the candidates were made comparable (e.g. how ``x`` was trimmed for ``padding="valid"``).
    """

    kernel_size: int
    criterion: str
    candidates: tuple[int, ...]
    scores: np.ndarray
    rss: np.ndarray
    n_params: np.ndarray
    n_samples: int
    status: tuple[str, ...]
    result: KernelResult = field(repr=False)
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable summary."""
        return {
            "kernel_size": self.kernel_size,
            "criterion": self.criterion,
            "candidates": list(self.candidates),
            "scores": [float(s) for s in self.scores],
            "rss": [float(r) for r in self.rss],
            "n_params": [int(k) for k in self.n_params],
            "n_samples": self.n_samples,
            "status": list(self.status),
            "notes": list(self.notes),
        }

    def __repr__(self) -> str:  # the scores, rss and counts are arrays over every candidate: their range only
        c = self.candidates
        span = f"{c[0]}..{c[-1]}" if len(c) > 1 else f"{c[0]}"
        shown = span if c[-1] - c[0] == len(c) - 1 else f"{len(c)} sizes in {span}"
        finite = int(np.isfinite(self.scores).sum())
        return (
            f"KernelSizeSelection(kernel_size={self.kernel_size}, criterion={self.criterion!r}, candidates={shown}, "
            f"scored={finite}/{len(c)}, n_samples={self.n_samples}, status={self.result.report.status!r})"
        )

    def __str__(self) -> str:
        name = {"aic": "AIC", "bic": "BIC", "cv": "CV mean squared error"}[self.criterion]
        lines = [
            f"kernel_size selected by {name}: {self.kernel_size}",
            f"  {'size':>5} {'params':>7} {'rss':>11} {'score':>13}",
        ]
        for k, p, r, s, st in zip(self.candidates, self.n_params, self.rss, self.scores, self.status):
            mark = "  <-" if k == self.kernel_size else ""
            extra = "" if st in ("overdetermined", "determined") else f"  ({st})"
            lines.append(f"  {k:>5} {p:>7} {r:>11.4g} {s:>13.6g}{mark}{extra}")
        lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(lines)


def _check_candidates(candidates: object) -> tuple[int, ...]:
    """The kernel sizes to compare, ascending and distinct; an int ``n`` means ``1, ..., n``."""
    if not isinstance(candidates, Iterable):
        return tuple(range(1, check_int(candidates, "candidates") + 1))
    try:
        values = list(candidates)
    except TypeError:  # (a 0-d array, an iterator that fails)
        raise TypeError(f"`candidates` must be a sequence of kernel sizes, got {candidates!r}.") from None
    if not values:
        raise ValueError("`candidates` is empty: give at least one kernel size.")
    return tuple(sorted({check_int(v, "candidates") for v in values}))


def select_kernel_size(
    x: ArrayLike,
    y: ArrayLike,
    candidates: Sequence[int] | int,
    *,
    criterion: Literal["aic", "bic", "cv"] = "aic",
    folds: int = 5,
    method: str | Callable = "lstsq",
    progress: bool | None = None,
    **options: Any,
) -> KernelSizeSelection:
    """Choose ``kernel_size`` among ``candidates`` by an information criterion or cross-validation.

    Parameters
    ----------
    x, y : array_like
        Inputs and outputs, as in :func:`recover_kernel`.
    candidates : sequence of int, or int
        Kernel sizes to compare; an int ``n`` means ``1, ..., n``.
    criterion : {"aic", "bic", "cv"}
        ``"aic"``: ``n log(RSS / n) + 2 k``; ``"bic"``: ``n log(RSS / n) + k log n`` (``n`` residuals, ``k``
        coefficients); ``"cv"``: the mean squared prediction error over ``folds`` contiguous blocks of output
        samples, each predicted from a least-squares fit to the others.
    folds : int
        Number of blocks for ``criterion="cv"`` (at least 2).
    method, **options
        The method (and its options) used to fit each candidate, as in :func:`recover_kernel`; the
        cross-validation fits are exact least squares.
    progress : bool, optional
        A progress bar (tqdm, the ``progress`` extra) over the candidates' fits.  None (default): shown when
        stderr is a terminal and more than one candidate is fitted (not when AIC/BIC of exact least squares score
        every size from one factorization); True: always; False: never, nor the bars of the fits themselves.
        The fits (each candidate's and the final one) get ``progress`` as :func:`recover_kernel` does, except
        that under a shown bar of the candidates they draw theirs only when asked (``True``).
    stride, padding, dilation, groups, use_bias, layout, flip
        The configuration, as in :func:`conv1d`.

    Returns
    -------
    KernelSizeSelection
        ``kernel_size``, the ``scores`` of every candidate, their ``rss`` and ``n_params``, and ``result``,
        the :class:`KernelResult` at the chosen size.

    Raises
    ------
    ValueError, TypeError
        Bad candidates, criterion or folds, or data that fit no candidate.

    Notes
    -----
    All candidates are scored on the same output samples.  With ``padding="same"`` or ``"causal"`` the output
    length does not depend on ``kernel_size``.  With ``"valid"``, ``"full"`` or explicit padding, ``y``'s length
    fixes the receptive field: ``x`` is zero-padded as the configuration says, then each candidate reads the
    first ``(M - 1) * stride + (K - 1) * dilation + 1`` samples (the last ones with ``flip=True``), i.e. a
    shorter kernel is the longer one with its trailing taps zero; a candidate longer than ``y`` allows scores
    ``inf``.  A residual that is exact to 1e-10 (relative) counts as exact, so on noiseless data the smallest
    exact candidate wins.

    Examples
    --------
    >>> import numpy as np
    >>> import kernel_recovery as kr
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal(400)
    >>> y = kr.conv1d(x, [0.5, -1.0, 0.25], padding="causal") + 0.01 * rng.standard_normal(400)
    >>> sel = kr.select_kernel_size(x, y, [1, 2, 3, 4, 5, 6], padding="causal")
    >>> sel.kernel_size, sel.scores.argmin()
    (3, np.int64(2))
    """
    cands = _check_candidates(candidates)
    criterion_name = check_choice(criterion, "criterion", CRITERIA)
    folds = check_int(folds, "folds", 2)
    settings = {name: options.pop(name) for name in SETTING_DEFAULTS if name in options}
    spec = ConvSpec.create(cands[-1], **settings)
    xs, ys = _read_pairs(x, y, spec.layout)
    notes: list[str] = []
    if any(len(v) == 0 for v in ys):  # sequences too short for one output: no equations, nothing to score
        kept = [i for i, v in enumerate(ys) if len(v)]
        if not kept:
            raise ValueError("every sequence of `y` is empty (too short for one output): no equations to score.")
        notes.append(
            f"sequence(s) {[i for i in range(len(ys)) if i not in kept]} of y are empty (too short for one output) and "
            "were left out: they give no equations."
        )
        xs, ys = [xs[i] for i in kept], [ys[i] for i in kept]
    xs_for: dict[int, tuple[list[np.ndarray], PaddingMode | tuple[int, int]]]
    if spec.padding in ("same", "causal"):
        xs_for = {k: (list(xs), spec.padding) for k in cands}
    else:
        xs_for = _trimmed_inputs(xs, ys, cands, spec, notes)
    if progress is not None:
        progress = check_bool(progress, "progress")
    nested = None
    if len(cands) >= NESTED_FROM and criterion_name != "cv" and _is_lstsq(method) and not options:
        nested = _nested_rss(xs_for, ys, spec)
    table = _score(
        cands, xs_for, ys, spec, xs[0].shape[1], criterion=criterion_name, folds=folds, nested=nested, method=method,
        options=options, progress=progress,
    )  # fmt: skip
    if not np.isfinite(table.scores).any():
        raise ValueError(
            f"no candidate in {list(cands)} can be fitted to these data (each has more unknowns than equations or "
            "does not fit y's length); give smaller candidates or more data."
        )
    best = cands[int(np.argmin(table.scores))]
    xs_best, pad_best = xs_for[best]
    result = recover_kernel(
        xs_best, ys, method=method, progress=progress, **_candidate(spec, best, pad_best), **options
    )
    return KernelSizeSelection(
        kernel_size=best,
        criterion=criterion_name,
        candidates=cands,
        scores=table.scores,
        rss=table.rss,
        n_params=table.n_params,
        n_samples=int(sum(v.size for v in ys)),
        status=table.status,
        result=result,
        notes=tuple(notes),
    )


def _is_lstsq(method: str | Callable) -> bool:
    """Whether ``method`` names the built-in least squares, in any case ("LSTSQ" too; a callable never does)."""
    return isinstance(method, str) and solvers.resolve(method)[0] == "lstsq"


def _read_pairs(x: ArrayLike, y: ArrayLike, layout: Layout) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The sequences of ``x`` and ``y``, ``(length, channels)`` each, as many of one as of the other."""
    xb = as_sequences(x, "x", layout)
    yb = as_sequences(y, "y", layout)
    if len(xb.arrays) != len(yb.arrays):
        raise ValueError(
            f"`x` and `y` must hold the same number of sequences, got {len(xb.arrays)} and {len(yb.arrays)}."
        )
    return list(xb.arrays), list(yb.arrays)


def _candidate(spec: ConvSpec, k: int, padding: PaddingMode | tuple[int, int]) -> dict[str, Any]:
    """The settings of candidate ``k`` with ``padding``, for sequences already read (channels last)."""
    return dataclasses.asdict(spec.replace(kernel_size=k, padding=padding, layout="nwc"))


def _fit(
    xs: list[np.ndarray],
    ys: list[np.ndarray],
    k: int,
    padding: PaddingMode | tuple[int, int],
    spec: ConvSpec,
    method: str | Callable,
    options: dict[str, Any],
    progress: bool | None = None,
) -> tuple[float, int, str, bool]:
    """RSS, number of coefficients, status and whether the report is ok, of candidate ``k`` fitted by ``method``."""
    with warnings.catch_warnings():
        for category in (UnderdeterminedWarning, IllConditionedWarning, KernelSizeWarning):
            warnings.simplefilter("ignore", category)
        res = recover_kernel(xs, ys, method=method, progress=progress, **_candidate(spec, k, padding), **options)
    r = res.residual_rms**2 * sum(v.size for v in ys)
    kp = res.kernel.size + (res.bias.size if res.bias is not None else 0)
    return r, kp, res.report.status, res.report.ok


class _Scores(NamedTuple):
    scores: np.ndarray
    rss: np.ndarray
    n_params: np.ndarray
    status: tuple[str, ...]


def _score(
    cands: tuple[int, ...],
    xs_for: dict[int, tuple[list[np.ndarray], PaddingMode | tuple[int, int]]],
    ys: list[np.ndarray],
    spec: ConvSpec,
    in_channels: int,
    *,
    criterion: str,
    folds: int,
    nested: dict[int, tuple[float, str]] | None,
    method: str | Callable,
    options: dict[str, Any],
    progress: bool | None = None,
) -> _Scores:
    """Each candidate's criterion (``inf`` where it cannot be fitted), RSS, coefficients and status."""
    yty = sum(float(np.sum(v**2)) for v in ys)
    n_samples = sum(v.size for v in ys)
    scores, rss, n_params, status = [], [], [], []
    fits = nested is None and len(cands) > 1  # (a bar only when each candidate is a fit)
    bar = progress_bar(progress, cands, worth_showing=fits, desc="select_kernel_size", unit="fit")
    # under a shown bar a fit draws its own only when asked (True); False silences every bar
    inner = False if progress is None and fits and show_progress(None) else progress
    for k in bar:
        if k not in xs_for:
            scores.append(np.inf)
            rss.append(np.nan)
            n_params.append(_n_params(k, in_channels, ys[0].shape[1], spec.groups, spec.use_bias))
            status.append("too long for y")
            continue
        xs_k, pad_k = xs_for[k]
        if nested is not None:
            r, st = nested[k]
            kp = _n_params(k, in_channels, ys[0].shape[1], spec.groups, spec.use_bias)
            ok = st in ("overdetermined", "determined")
        else:
            r, kp, st, ok = _fit(xs_k, ys, k, pad_k, spec, method, options, inner)
        rss.append(r)
        n_params.append(kp)
        status.append(st)
        if not ok or kp >= n_samples:
            scores.append(np.inf)
        elif criterion == "cv":
            scores.append(_cv_score(build_problem(xs_k, ys, **_candidate(spec, k, pad_k)), folds))
        else:
            scores.append(np.nan)  # scored below, all at once
    score = np.array(scores, dtype=float)
    rss_a, k_a = np.array(rss, dtype=float), np.array(n_params, dtype=np.int64)
    todo = np.isnan(score)
    if criterion != "cv":
        score[todo] = information_criterion(rss_a[todo], k_a[todo], n_samples, criterion, EXACT_FIT * yty)
    return _Scores(score, rss_a, k_a, tuple(status))


def _nested_rss(
    xs_for: dict[int, tuple[list[np.ndarray], PaddingMode | tuple[int, int]]],
    ys: Sequence[np.ndarray],
    spec: ConvSpec,
) -> dict[int, tuple[float, str]] | None:
    """RSS and status of every fitting candidate from one Cholesky factorization per block (None: not nested).

    Every candidate reads the same output samples, and its columns are a run of the largest candidate's taps
    (``"causal"`` and the trimmed inputs with ``flip``: the last ``k``; ``"same"``: the ones around its centre;
    otherwise the first ``k``), each longer run holding the shorter: in the order the taps join, one
    factorization of the largest Gram gives every candidate's fit
    (:func:`~kernel_recovery.diagnostics.nested.prefix_fit`); a long single-input block whose taps join in order
    (or in reverse) is factored from its displacement structure in ``O(T^2)``, without the Gram
    (:func:`~kernel_recovery.diagnostics.nested.convolution_prefix_fit`).
    """
    if spec.stride != 1 or spec.dilation != 1 or not xs_for:
        return None
    pad = spec.padding
    big = max(xs_for)
    xs_big, pad_big = xs_for[big]

    def offset(k: int) -> int:  # the first of the big candidate's taps that candidate k uses
        if pad == "same":
            return (big - 1) // 2 - (k - 1) // 2
        if pad == "causal" or (pad_big == "valid" and pad not in ("same", "causal") and spec.flip):
            return big - k
        return 0

    order = [offset(1)]
    for k in range(2, big + 1):  # the run of k taps holds the run of k - 1 and one tap more, at either end
        step = offset(k - 1) - offset(k)
        if step not in (0, 1):
            return None
        order.append(offset(k) if step else offset(k) + k - 1)
    problem = build_problem(xs_big, ys, **_candidate(spec, big, pad_big))
    use_bias = spec.use_bias
    fits: list[tuple[Block, int, PrefixFit | NestedRSS]] = []
    for block in problem.blocks:
        if block.n_free != block.taps * block.channels:
            return None
        c = block.channels
        structured = _structured_fit(block, order, use_bias)
        if structured is not None:
            fits.append((block, c, structured))
            continue
        cols = ([block.n_free] if use_bias else []) + [t * c + ch for t in order for ch in range(c)]
        st = block_statistics(block, use_bias)
        assert st.cross is not None and st.yty is not None  # the blocks hold y
        fits.append((block, c, prefix_fit(st.gram[np.ix_(cols, cols)], st.cross[cols], st.yty, block.n_equations)))
    out: dict[int, tuple[float, str]] = {}
    rank_order = ("underdetermined", "rank_deficient", "determined", "overdetermined")
    for k in xs_for:
        total, worst = 0.0, "overdetermined"
        for block, c, fit in fits:
            p = int(use_bias) + k * c
            if block.n_equations < p:
                st_b = "underdetermined"
            elif fit.rank < p:
                st_b = "rank_deficient"
            else:
                st_b = "determined" if block.n_equations == p else "overdetermined"
            worst = min(worst, st_b, key=rank_order.index)
            total += float(fit.rss[p]) if fit.rank >= p else np.nan
        out[k] = (max(total, 0.0) if np.isfinite(total) else np.nan, worst)
    return out


def _structured_fit(block: Block, order: list[int], use_bias: bool) -> NestedRSS | None:
    """Every prefix of a long single-input block in ``O(T^2)`` (None: factor its Gram instead).

    The taps join in canonical order (``0, 1, ..``) or reversed; reversed, the design is that of the
    time-reversed sequences (row ``t`` of one is row ``m - 1 - t`` of the other, its taps reversed).
    """
    taps = block.taps
    if block.channels != 1 or taps < STRUCTURED_FROM or block.ys is None:
        return None
    if order == list(range(taps)):
        xs, ys = list(block.xs), list(block.ys)
    elif order == list(range(taps - 1, -1, -1)):
        xs, ys = [x[::-1] for x in block.xs], [y[::-1] for y in block.ys]
    else:
        return None
    return convolution_prefix_fit(xs, ys, taps, use_bias)


def _n_params(k: int, cin: int, cout: int, groups: int, use_bias: bool) -> int:
    return k * (cin // max(groups, 1)) * cout + (cout if use_bias else 0)


def _trimmed_inputs(
    xs: Sequence[np.ndarray],
    ys: Sequence[np.ndarray],
    cands: Sequence[int],
    spec: ConvSpec,
    notes: list[str],
) -> dict[int, tuple[list[np.ndarray], PaddingMode | tuple[int, int]]]:
    """For length-changing padding: zero-pad ``x`` as ``y``'s length implies, then trim it per candidate."""
    pad, s, d = spec.padding, spec.stride, spec.dilation
    cin, cout = xs[0].shape[1], ys[0].shape[1]
    out: dict[int, tuple[list[np.ndarray], PaddingMode | tuple[int, int]]] = {}
    padded = []
    for x, y in zip(xs, ys):
        m = len(y)
        if pad == "full":
            # 'full' pads depend on the true span: take the largest kernel consistent with y's length
            fits = [
                k
                for k in range(1, len(x) + (m + 1) * s + 1)
                if ConvConfig.create(k, cin, cout, stride=s, padding="full", dilation=d).output_length(len(x)) == m
            ]
            if not fits:
                raise ValueError(
                    f"`y` has {m} samples, which no kernel_size gives with padding='full' for {len(x)} samples."
                )
            left, right = ConvConfig.create(max(fits), cin, cout, padding="full", dilation=d).pads(len(x))
        elif isinstance(pad, tuple):
            left, right = pad
        else:  # "valid" ("same" and "causal" keep the length and are not trimmed)
            left, right = 0, 0
        padded.append(np.concatenate([np.zeros((left, cin)), x, np.zeros((right, cin))]) if left or right else x)
    for k in cands:
        need = [(len(y) - 1) * s + (k - 1) * d + 1 for y in ys]
        if any(n > len(x) for n, x in zip(need, padded)):
            continue
        if spec.flip:
            out[k] = ([x[len(x) - n :] for n, x in zip(need, padded)], "valid")
        else:
            out[k] = ([x[:n] for n, x in zip(need, padded)], "valid")
    anchor = "last" if spec.flip else "first"
    notes.append(
        f"padding={pad!r}: y's length fixes the receptive field, so each candidate was fitted to the {anchor} samples "
        "of the (zero-padded) input that its taps reach; a shorter kernel is a longer one with zero taps at the end."
    )
    return out


def _fold_statistics(block: Block, use_bias: bool, folds: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gram, cross and y^T y of each fold of contiguous rows (concatenated over subsequences)."""
    p = n_columns(block, use_bias)
    n = block.n_equations
    edges = np.linspace(0, n, folds + 1).astype(int)
    grams = np.zeros((folds, p, p))
    cross = np.zeros((folds, p, len(block.out_channels)))
    yty = np.zeros((folds, len(block.out_channels)))
    if block.ys is None:  # (cross-validation builds its problems from x and y)
        raise ValueError("cross-validation needs the outputs `y`.")
    offset = 0
    for x, y in zip(block.xs, block.ys):
        m = len(x) - block.taps + 1
        for f in range(folds):
            lo, hi = max(edges[f] - offset, 0), min(edges[f + 1] - offset, m)
            for start in range(lo, hi, 1 << 14):
                stop = min(start + (1 << 14), hi)
                a = design_rows(block, x, use_bias, start, stop)
                yc = y[start:stop]
                grams[f] += a.T @ a
                cross[f] += a.T @ yc
                yty[f] += np.einsum("ij,ij->j", yc, yc)
        offset += m
    return grams, cross, yty


def _cv_score(problem: CanonicalProblem, folds: int) -> float:
    """Mean squared prediction error of blocked ``folds``-fold cross-validation (exact least squares)."""
    use_bias = problem.config.use_bias
    total, count = 0.0, 0
    for block in problem.blocks:
        grams, cross, yty = _fold_statistics(block, use_bias, folds)
        g_all, c_all = grams.sum(axis=0), cross.sum(axis=0)
        for f in range(folds):
            coef = np.linalg.lstsq(g_all - grams[f], c_all - cross[f], rcond=None)[0]
            err = yty[f] - 2 * np.einsum("ij,ij->j", cross[f], coef) + np.einsum("ij,ik,kj->j", coef, grams[f], coef)
            total += float(np.sum(np.maximum(err, 0.0)))
        count += block.n_equations * len(block.out_channels)
    return total / count


def select_lags(
    x: ArrayLike,
    y: ArrayLike,
    *,
    max_length: int | None = None,
    max_delay: int | None = None,
    criterion: Literal["aic", "bic"] = "bic",
    method: str | Callable = "lstsq",
    use_bias: bool = False,
    layout: Layout = "nwc",
    flip: bool = True,
    progress: bool | None = None,
    **options: Any,
) -> LagSelection:
    """Choose the lags ``(first, last)`` of a response from the data, then fit it there.

    For measurements where ``y`` is on ``x``'s time axis (same length) with an unknown bulk delay and length,
    ``y[t] = sum_{l=first}^{last} h[l] x[t - l]``: the lags are located by a prewhitened cross-correlation and
    chosen by AIC or BIC from nested least-squares scans (see
    :func:`kernel_recovery.diagnostics.lagsearch.choose_lags`),
    then the kernel is recovered with ``recover_kernel(x, y, lags=(first, last), ...)``.

    Parameters
    ----------
    x, y : array_like
        Inputs and outputs of the same length, as in :func:`recover_kernel`.
    max_length : int, optional
        Most taps the response may have (default: ``min(8192, n // 8)``).
    max_delay : int, optional
        Largest ``|first|`` searched (default: a quarter of the shortest sequence).
    criterion : {"aic", "bic"}
        As in :func:`select_kernel_size` (cross-validation is not offered for lags).
    method, **options
        The method of the final fit, as in :func:`recover_kernel`.
    use_bias, layout, flip
        As in :func:`recover_kernel`; ``flip=True`` (the default here) gives ``kernel[i]`` at lag ``first + i``.
    progress : bool, optional
        The final fit's progress bar, as in :func:`recover_kernel` (``method="lstsq"``: the tuning of a
        ``regularization``, by default on a terminal from 300 taps on).  The lag search itself is one pass of
        nested scans, without a bar (0.6 s for 200 000 samples with the default ``max_length``).

    Returns
    -------
    LagSelection
        ``first``, ``last``, ``delay``, ``length``, the scores of every start and end, ``end_of_response`` and
        ``result``, the :class:`KernelResult` with the chosen lags.

    Warns
    -----
    KernelSizeWarning
        When the response is cut by ``max_length`` or ``max_delay``.
    NonCausalWarning
        When the response is significant at negative lags (feedback or a misaligned input).

    Examples
    --------
    >>> import numpy as np
    >>> import kernel_recovery as kr
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal(4000)
    >>> h = rng.standard_normal(12)
    >>> y = np.concatenate([np.zeros(30), np.convolve(x, h)[: 4000 - 30]]) + 0.01 * rng.standard_normal(4000)
    >>> sel = kr.select_lags(x, y)
    >>> sel.lags, sel.result.kernel.shape
    ((30, 41), (12, 1, 1))
    """
    choice = choose_lags_for(
        x, y, layout=layout, use_bias=use_bias, max_length=max_length, max_delay=max_delay, criterion=criterion
    )
    result = recover_kernel(
        x, y, lags=choice.lags, method=method, use_bias=use_bias, layout=layout, flip=flip, progress=progress,
        **options,
    )  # fmt: skip
    result.diagnostics["lags"] = choice.to_dict()
    return dataclasses.replace(choice, result=result)
