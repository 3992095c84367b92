"""Kernels over time: :func:`track_kernel` and its :class:`KernelTrack`.

The record is cut into steps of ``step`` output samples.  For each block (group) the augmented rows
``z_t = [a_t, y_t]`` of a step give one Gram ``B_j = sum_t w_t z_t z_t^T`` (a batched GEMM over many steps); the
statistics of the estimate at the end of step ``j`` are

* forgetting ``lambda``: ``S_j = lambda^n S_{j-1} + B_j`` with ``w_t = lambda^(t_end - t)`` inside the step, the
  exponentially weighted statistics (the exact RLS solution at every step end, without RLS's initial ``delta I``);
* a window of ``W`` equations: the sum of the last ``W / g`` blocks of ``g = gcd(step, W)`` equations (a running
  sum, re-added from the blocks every window, so rounding does not build up);
* neither: the growing sum.

The normal equations of all steps are solved together (batched inverse, one refinement step); a step whose Gram
fails the screen ``1 / trace(G^-1) > tol^2`` (``tol`` from :func:`~kernel_recovery.model.spectrum.rank_tolerance`, the
one rank rule) is solved by its eigendecomposition with that rule (minimum-norm, stderr NaN when deficient).
"""

from __future__ import annotations

import dataclasses
import math
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

from . import solvers
from .diagnostics import changes
from .model.config import SETTING_DEFAULTS, ConvConfig, ConvSettings, ConvSpec
from .model.design import design_rows, n_columns, unpack_columns
from .model.problem import Block, CanonicalProblem, build_problem
from .model.progress import progress_bar
from .model.spectrum import rank_tolerance
from .model.statistics import CHUNK_ENTRIES
from .model.validation import check_choice, check_int, check_real
from .solvers.priors import REGULARIZATIONS
from .streaming.accumulator import check_memory

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from typing_extensions import Unpack


@dataclass(frozen=True, eq=False)
class KernelTrack:
    """Kernels over time, from :func:`track_kernel`.

    Attributes
    ----------
    times : ndarray (n_times,)
        The output sample of the newest equation in each estimate.
    kernels, stderr : ndarray (n_times, kernel_size, in_channels // groups, out_channels)
        The estimates and their standard errors (NaN where the data of that time do not determine the kernel).
    bias, bias_stderr : ndarray (n_times, out_channels) or None
    rank : ndarray (n_times, groups)
        The numerical rank of each estimate's design.
    changes : tuple of int
        Output samples near which one kernel stops explaining the record (the change test of
        :func:`recover_kernel`); empty when none was found or the test did not apply (``change_check`` says).
    change : dict or None
        The change test's report.
    config : ConvConfig
    options : dict
        ``window``, ``forgetting``, ``step``, ``memory`` (equations an estimate effectively averages), ``ridge``.
    """

    times: np.ndarray
    kernels: np.ndarray
    stderr: np.ndarray
    bias: np.ndarray | None
    bias_stderr: np.ndarray | None
    rank: np.ndarray
    changes: tuple[int, ...]
    change: dict[str, Any] | None
    change_check: str
    config: ConvConfig
    options: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.times)

    def __repr__(self) -> str:  # the kernels over time can be millions of numbers: shapes and settings only
        t = self.times
        times = f"{int(t[0])}..{int(t[-1])}" if len(t) else "none"
        settings = ", ".join(
            f"{k}={self.options[k]:.4g}" if isinstance(self.options[k], float) else f"{k}={self.options[k]!r}"
            for k in ("window", "forgetting", "step", "memory")
            if self.options.get(k) is not None
        )
        changes = self.changes if len(self.changes) <= 4 else f"({', '.join(map(str, self.changes[:4]))}, ...)"
        return (
            f"KernelTrack(n_times={len(t)}, times={times}, kernel_shape={self.kernels.shape[1:]}, "
            f"{settings + ', ' if settings else ''}changes={changes})"
        )

    def plot(self, ax: Axes | None = None, **kwargs: Any) -> Figure:
        """The kernel over time (:func:`kernel_recovery.plotting.plot_track`)."""
        from .plotting import plot_track

        return plot_track(self, ax=ax, **kwargs)


def _rows(block: Block, use_bias: bool, t0: int, t1: int, interleave: int) -> np.ndarray:
    """Augmented rows ``[a_t, y_t]`` of output samples ``t0 <= t < t1`` in time order, ``(t1 - t0, P + O)``."""
    p = n_columns(block, use_bias)
    ys = block.outputs
    z = np.empty((t1 - t0, p + ys[0].shape[1]))
    for r in range(min(interleave, len(block.xs))):
        i0, i1 = -(-(t0 - r) // interleave), -(-(t1 - r) // interleave)
        if i1 <= i0:
            continue
        where = slice(r + i0 * interleave - t0, r + (i1 - 1) * interleave - t0 + 1, interleave)
        z[where, :p] = design_rows(block, block.xs[r], use_bias, i0, i1)
        z[where, p:] = ys[r][i0:i1]
    return z


def _solve(g: np.ndarray, c: np.ndarray, n_eff: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Batched ``G w = C``: coefficients ``(n, P, O)``, ``diag(G^-1)`` ``(n, P)`` (NaN if deficient), ranks."""
    n, p, _ = g.shape
    with np.errstate(all="ignore"):
        try:
            inv = np.linalg.inv(g)
        except np.linalg.LinAlgError:
            inv = np.full_like(g, np.nan)
            for i in range(n):
                try:
                    inv[i] = np.linalg.inv(g[i])
                except np.linalg.LinAlgError:
                    pass
        coef = inv @ c
        coef += inv @ (c - g @ coef)  # one step of refinement
        tr_inv = np.trace(inv, axis1=1, axis2=2)
        tol = np.array(
            [
                rank_tolerance(math.sqrt(max(t, 0.0)), max(int(k), 1), p, "gram")
                for t, k in zip(np.trace(g, axis1=1, axis2=2), n_eff)
            ]
        )
        ok = np.isfinite(tr_inv) & (tr_inv > 0) & (1.0 / tr_inv > tol**2) & np.all(np.isfinite(coef), axis=(1, 2))
    diag = np.diagonal(inv, axis1=1, axis2=2).copy()
    rank = np.full(n, p)
    for i in map(int, np.flatnonzero(~ok)):  # the exact rank rule on the eigenvalues
        lam, v = np.linalg.eigh(g[i])
        s = np.sqrt(np.clip(lam, 0.0, None))
        keep = s > rank_tolerance(s.max(), max(int(n_eff[i]), 1), p, "gram")
        vk = v[:, keep]
        coef[i] = vk @ ((vk.T @ c[i]) / lam[keep, None])
        rank[i] = int(keep.sum())
        diag[i] = (vk**2 / lam[keep]).sum(axis=1) if keep.all() else np.nan
    return coef, diag, rank


def track_kernel(
    x: ArrayLike,
    y: ArrayLike,
    kernel_size: int | None = None,
    *,
    window: int | None = None,
    forgetting: float | None = None,
    step: int | None = None,
    ridge: float = 0.0,
    regularization: str | None = None,
    detect_changes: bool = True,
    progress: bool | None = None,
    **settings: Unpack[ConvSettings],
) -> KernelTrack:
    """Recover the kernel of a drifting system over time, from one record ``x``, ``y``.

    Parameters
    ----------
    x, y : array_like
        One sequence each (1-D, or 2-D ``(length, channels)``), as for :func:`recover_kernel`.
    kernel_size, stride, padding, dilation, groups, use_bias, layout, flip, lags
        The configuration, as for :func:`recover_kernel`.
    window : int, optional
        Each estimate uses the last ``window`` equations (output samples) only.
    forgetting : float in (0, 1], optional
        Each estimate weighs the equation ``k`` samples before the newest by ``forgetting ** k`` (exponentially
        weighted least squares: the RLS solution).  Not with ``window``; with neither, the estimates grow.
    step : int, optional
        Output samples between estimates (default: a twentieth of the memory, at least the unknowns per output).
    ridge : float, >= 0
        Each estimate minimizes its (weighted) squared residual plus ``ridge * ||kernel||^2`` (the bias is not
        penalized), as ``ridge`` of :func:`recover_kernel`; the standard errors are then the posterior ones,
        ``kappa sigma^2 (G + ridge I)^-1``.  For short windows of noisy data.
    regularization : None
        Not applied per step (a ``ValueError`` says what to do): the tuned regularizations of
        :func:`recover_kernel` (``"gcv"``, ``"tc"``, ``"dc"``, ``"ss"``, ...) choose their hyperparameters by an
        optimization per fit, which per estimate would cost more than the whole track.  Tune once on the record
        and pass the ridge it chose: ``ridge=float(kr.recover_kernel(x, y, ..., regularization="gcv").options
        ["ridge"][0])``.
    detect_changes : bool
        Run the change test of one kernel over the whole record (``changes``, ``change``).
    progress : bool, optional
        A tqdm progress bar (extra ``progress``); default: on a terminal, for long records.

    Returns
    -------
    KernelTrack

    Notes
    -----
    Cost: ``2 (P + O)^2`` flops per sample for the step Grams, plus ``O(P^3)`` per step for the solves, with ``P``
    the unknowns per output.  The standard errors treat the noise as white with a variance from the weighted
    residual, ``kappa sigma^2 G^-1`` with ``kappa = sum w^2 / sum w`` (exact for a window; see
    :func:`kernel_recovery.streaming.accumulator.forgetting_stderr_scale`).

    Examples
    --------
    >>> import numpy as np, kernel_recovery as kr
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal(4000)
    >>> y = np.concatenate([kr.conv1d(x[:2000], [1.0, 0.5], padding="causal"),
    ...                     kr.conv1d(x[2000:], [1.0, -0.5], padding="causal")])
    >>> track = kr.track_kernel(x, y, 2, window=500, step=250, padding="causal")
    >>> track.times[[0, -1]].tolist(), track.kernels[-1].ravel().round(6).tolist()
    ([249, 3999], [1.0, -0.5])
    >>> track.changes  # the change, at sample 2000
    (2001,)
    """
    forgetting, window = check_memory(forgetting, window)
    ridge = _check_ridge(ridge, regularization)
    for name in settings:  # a misspelled keyword: the nearest setting or parameter of track_kernel
        if name not in SETTING_DEFAULTS:
            hint = solvers.did_you_mean(name, [*SETTING_DEFAULTS, *solvers.parameter_names(track_kernel)])
            raise TypeError(f"track_kernel() got an unexpected keyword argument {name!r}{hint}.")
    spec = ConvSpec.create(kernel_size, **settings)
    problem = build_problem(x, y, **dataclasses.asdict(spec))
    if len(problem.out_lengths) != 1:
        raise ValueError(f"`x` must be one sequence (a record over time), got {len(problem.out_lengths)} sequences.")
    cfg = problem.config
    schedule, memory = _schedule(cfg, problem.out_lengths[0], step, window, forgetting)
    sum_w, sum_w2 = schedule.weight_sums()
    total_steps = len(schedule.ends) * len(problem.blocks)
    bar = progress_bar(progress, total=total_steps, worth_showing=total_steps >= 200, unit="step", desc="track_kernel")
    blocks_out = []
    for block in problem.blocks:
        stats = _step_statistics(block, cfg.use_bias, schedule, bar)
        coef, se, rank = _estimates(stats, n_columns(block, cfg.use_bias), sum_w, sum_w2, ridge, cfg.use_bias)
        blocks_out.append((block, coef, se, rank))
    bar.close()
    kernels, kernel_se, bias, bias_se = _user_layout(problem, blocks_out)
    change, change_check = None, "not run (detect_changes=False)"
    if detect_changes:
        change, change_check = changes.detect(problem, [], None)
    options = {
        "window": window, "forgetting": forgetting, "step": schedule.step, "memory": float(memory), "ridge": ridge
    }  # fmt: skip
    return KernelTrack(
        times=schedule.ends - 1,
        kernels=kernels,
        stderr=kernel_se,
        bias=bias,
        bias_stderr=bias_se,
        rank=np.stack([r for *_, r in blocks_out], axis=1),
        changes=tuple(change["times"]) if change else (),
        change=change,
        change_check=change_check,
        config=cfg,
        options=options,
    )


def _check_ridge(ridge: object, regularization: object) -> float:
    """``ridge`` as a float >= 0; any ``regularization`` a ValueError saying why it is not per step and what to do."""
    if regularization is not None:
        name = check_choice(regularization, "regularization", REGULARIZATIONS)
        raise ValueError(
            f"`regularization`={name!r} is not applied per step: it tunes its hyperparameters by an optimization for "
            "each fit, which for every estimate of the track would cost far more than the track itself.  Tune it once "
            f"on the record, e.g. r = kr.recover_kernel(x, y, ..., regularization='gcv'), and pass the ridge it "
            "chose: track_kernel(..., ridge=float(r.options['ridge'][0]))."
        )
    return check_real(ridge, "ridge", low=0.0)


@dataclass(frozen=True)
class _Schedule:
    """When the estimates are made and how the equations are weighed."""

    #: Exclusive ends of the steps (output samples).
    ends: np.ndarray
    step: int
    #: Equations per Gram block: the step, or ``gcd(step, window)`` with a window.
    base: int
    window: int | None
    #: The forgetting factor (1: none).
    lam: float
    #: Sequences of the canonical problem interleaved in time (``dilation / gcd(stride, dilation)``).
    interleave: int

    def weight_sums(self) -> tuple[np.ndarray, np.ndarray]:
        """``sum w`` and ``sum w^2`` over the equations of each estimate."""
        counts = self.ends.astype(float) if self.window is None else np.minimum(self.ends, self.window).astype(float)
        lam = self.lam
        if lam < 1:
            return (1 - lam**self.ends) / (1 - lam), (1 - lam ** (2 * self.ends)) / (1 - lam**2)
        return counts, counts


def _schedule(
    cfg: ConvConfig, m: int, step: int | None, window: int | None, forgetting: float | None
) -> tuple[_Schedule, float]:
    """The steps over ``m`` output samples (default: a twentieth of the memory), and the memory in equations."""
    p = cfg.unknowns_per_output
    memory = window or (1.0 / (1.0 - forgetting) if forgetting is not None and forgetting < 1 else m)
    step = max(p, int(memory) // 20, 1) if step is None else check_int(step, "step")
    step = min(step, m)
    if window is not None:
        base = math.gcd(step, window)
        held = window // base + 1
        if held * (p + cfg.out_per_group) ** 2 * 8 > 1 << 30:
            raise ValueError(
                f"`window` (={window}) in blocks of gcd(step, window) = {base} equations would hold {held} Grams: "
                "choose a `step` that divides the window."
            )
    else:
        base = step
    ends = np.append(np.arange(step, m, step), m)
    interleave = cfg.dilation // math.gcd(cfg.stride, cfg.dilation)
    lam = 1.0 if forgetting is None else forgetting
    return _Schedule(ends, step, base, window, lam, interleave), memory


def _step_statistics(block: Block, use_bias: bool, schedule: _Schedule, bar: Any) -> np.ndarray:
    """The weighted augmented Gram ``[A y]^T W [A y]`` of each estimate, ``(n_times, P + O, P + O)``."""
    pb = n_columns(block, use_bias)
    q = pb + len(block.out_channels)
    ends, step = schedule.ends, schedule.step
    n_times = len(ends)
    per_chunk = max(CHUNK_ENTRIES * 8 // (step * q), 1)  # steps per batched GEMM
    memory = _Memory(block, use_bias, schedule, q)
    stats = np.empty((n_times, q, q))
    for j0 in range(0, n_times, per_chunk):
        j1 = min(n_times, j0 + per_chunk)
        t0, t1 = j0 * step, int(ends[j1 - 1])
        pos, j = t0, j0
        for part, count in _block_grams(block, use_bias, schedule, t0, t1, q):
            total = memory.add(part, count, pos)
            pos += count
            if pos == ends[j]:
                stats[j] = total
                j += 1
        bar.update(j1 - j0)
    return stats


def _block_grams(
    block: Block, use_bias: bool, schedule: _Schedule, t0: int, t1: int, q: int
) -> list[tuple[np.ndarray, int]]:
    """The weighted Grams of the blocks of ``base`` equations in ``t0 <= t < t1`` (one batched GEMM), with sizes."""
    base, lam = schedule.base, schedule.lam
    z = _rows(block, use_bias, t0, t1, schedule.interleave)
    full = (t1 - t0) // base
    zb = z[: full * base].reshape(full, base, q)
    zw = zb * (lam ** np.arange(base - 1, -1, -1.0))[None, :, None] if lam < 1 else zb
    parts = [(gram, base) for gram in np.matmul(zw.transpose(0, 2, 1), zb)]
    if full * base < t1 - t0:  # the last, shorter step
        rest = z[full * base :]
        w = lam ** np.arange(len(rest) - 1, -1, -1.0)
        parts.append(((rest * w[:, None]).T @ rest, len(rest)))
    return parts


class _Memory:
    """The statistics of the equations an estimate remembers: a forgetting (or growing) sum, or a window."""

    def __init__(self, block: Block, use_bias: bool, schedule: _Schedule, q: int) -> None:
        self.block, self.use_bias, self.schedule = block, use_bias, schedule
        self.total = np.zeros((q, q))
        self.held: deque[np.ndarray] = deque()
        self.since_resum = 0

    def add(self, part: np.ndarray, count: int, pos: int) -> np.ndarray:
        """Add the Gram of the ``count`` equations from ``pos`` on; return the statistics after them."""
        window, base = self.schedule.window, self.schedule.base
        if window is None:
            self.total = self.schedule.lam**count * self.total + part
        elif count < base:  # the short last step: its window, from its rows
            last = _rows(self.block, self.use_bias, max(pos + count - window, 0), pos + count, self.schedule.interleave)
            self.total = last.T @ last
        else:
            self.held.append(part)
            self.total = self.total + part
            if len(self.held) > window // base:
                self.total = self.total - self.held.popleft()
            self.since_resum += 1
            if self.since_resum >= window // base:  # re-add the held blocks: no rounding build-up
                self.total, self.since_resum = np.sum(np.array(self.held), axis=0), 0
        return self.total


def _estimates(
    stats: np.ndarray, pb: int, sum_w: np.ndarray, sum_w2: np.ndarray, ridge: float = 0.0, use_bias: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Coefficients ``(n, P, O)``, their standard errors and the ranks, from the augmented Grams.

    With a ``ridge`` the coefficients solve ``(G + ridge D) w = C`` (``D`` the identity on the kernel's columns,
    zero on the bias), ``diag((G + ridge D)^-1)`` scales the standard errors and the fit uses
    ``df = trace((G + ridge D)^-1 G) = P - ridge trace(D (G + ridge D)^-1)`` degrees of freedom (as
    :func:`recover_kernel`'s ridge); the ranks stay those of ``G``.
    """
    g, c = stats[:, :pb, :pb], stats[:, :pb, pb:]
    yty = np.diagonal(stats[:, pb:, pb:], axis1=1, axis2=2)
    coef, diag, rank = _solve(g, c, sum_w)
    df = np.full(len(g), float(pb))
    if ridge > 0:
        penalty = np.full(pb, ridge)
        if use_bias:
            penalty[-1] = 0.0
        coef, diag, _ = _solve(g + np.diag(penalty), c, sum_w)
        df = pb - diag @ penalty
    rss = yty - 2 * np.einsum("tpo,tpo->to", coef, c) + np.einsum("tpo,tpo->to", coef, g @ coef)
    kappa = sum_w2 / sum_w
    with np.errstate(invalid="ignore", divide="ignore"):
        left = sum_w - kappa * df
        sigma2 = np.clip(rss, 0.0, None) / np.where(left > 0, left, np.nan)[:, None]
        se = np.sqrt(diag[:, :, None] * (kappa[:, None] * sigma2)[:, None, :])
    return coef, se, rank


def _user_layout(problem: CanonicalProblem, blocks_out):
    """Per-time block coefficients ``(n, P_b, O_b)`` as user kernels ``(n, K, Cin/groups, Cout)`` and biases."""
    use_bias = problem.config.use_bias
    kernel_ids, bias_ids, flats, flats_se = [], [], [], []
    offset = 1  # index 0 is the zero of the masked taps
    for block, coef, se, _ in blocks_out:
        n, pb, ob = coef.shape
        ids = (offset + np.arange(pb * ob, dtype=float)).reshape(pb, ob)
        k_ids, b_ids = unpack_columns(block, ids, use_bias)
        kernel_ids.append(k_ids)
        bias_ids.append(b_ids)
        flats.append(coef.reshape(n, -1))
        flats_se.append(se.reshape(n, -1))
        offset += pb * ob
    n = flats[0].shape[0]
    flat = np.concatenate([np.zeros((n, 1))] + flats, axis=1)
    flat_se = np.concatenate([np.zeros((n, 1))] + flats_se, axis=1)
    where = problem.from_canonical(kernel_ids).astype(np.int64)
    kernels, kernel_se = flat[:, where], flat_se[:, where]
    if not use_bias:
        return kernels, kernel_se, None, None
    bwhere = problem.from_canonical_bias([b for b in bias_ids if b is not None]).astype(np.int64)
    return kernels, kernel_se, flat[:, bwhere], flat_se[:, bwhere]
