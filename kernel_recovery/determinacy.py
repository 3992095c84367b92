"""Determinacy analysis: equations against unknowns, rank, conditioning and invisible kernel directions."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike

from .problem import CanonicalProblem, ConvConfig, Layout, Padding, build_problem
from .statistics import EXPLICIT_LIMIT, block_statistics, design_matrix, n_columns

STATUSES = ("overdetermined", "determined", "underdetermined", "rank_deficient")
#: Above this design condition number a relative error in y may be amplified more than 1e8-fold.
ILL_CONDITIONED = 1e8


class UnderdeterminedWarning(UserWarning):
    """The data do not determine the kernel: too few equations, or a rank-deficient design."""


class IllConditionedWarning(UserWarning):
    """The data determine the kernel, but noise in ``y`` is amplified by a large condition number."""


@dataclass(frozen=True)
class BlockSpectrum:
    singular_values: np.ndarray  # descending
    right_vectors: np.ndarray  # (P, P), columns
    tolerance: float
    exact: bool  # from an SVD of the explicit design (True) or eigenvalues of the Gram (False)

    @property
    def rank(self) -> int:
        return int((self.singular_values > self.tolerance).sum())


def block_spectrum(block, use_bias: bool) -> BlockSpectrum:
    """Singular values and right singular vectors of one block's design (cached on the block)."""
    key = ("spectrum", use_bias)
    if key in block.cache:
        return block.cache[key]
    p = n_columns(block, use_bias)
    n = block.n_equations
    eps = np.finfo(np.float64).eps
    if n * p <= EXPLICIT_LIMIT:
        _, s, vt = np.linalg.svd(design_matrix(block, use_bias), full_matrices=True)
        s = np.concatenate([s, np.zeros(p - len(s))])
        tol = (s[0] if len(s) else 0.0) * max(n, p) * eps
        spec = BlockSpectrum(s, vt.T, tol, True)
    else:
        lam, v = np.linalg.eigh(block_statistics(block, use_bias).gram)
        lam, v = lam[::-1], v[:, ::-1]
        s = np.sqrt(np.clip(lam, 0.0, None))
        # eigenvalues of A^T A carry errors of ~eps * lam_max, so singular values below ~sqrt(eps) s_max are unresolved
        spec = BlockSpectrum(s, v, s[0] * np.sqrt(p * eps), False)
    block.cache[key] = spec
    return spec


@dataclass(frozen=True)
class DeterminacyReport:
    """How well the data determine the kernel, per output channel.

    Attributes
    ----------
    equations, unknowns, rank : ndarray of int, shape (out_channels,)
        Output samples, free coefficients (taps of the channel's group and the bias) and the numerical rank of
        the design matrix, for each output channel.  Output channels are separate systems; those of one
        group share one design matrix.
    condition_number : ndarray of float, shape (out_channels,)
        Ratio of the largest to the smallest singular value of the design (``inf`` when rank-deficient).
    status : str
        The worst over channels: "underdetermined" (fewer equations than unknowns), "rank_deficient"
        (enough equations, but the input does not excite every kernel direction), "determined" (a square,
        full-rank system) or "overdetermined".
    channel_status : tuple of str
        The status of each output channel.
    error_per_unit_noise : ndarray of float, shape (out_channels,)
        ``sqrt(trace((A^T A)^-1))``: the expected root-sum-square kernel error for unit-variance white noise
        in ``y`` (``inf`` when rank-deficient).
    singular_values : list of ndarray
        The design's singular values for each group.
    null_space : list of ndarray
        For each group, ``(n_null, kernel_size, in_channels // groups)``: kernel directions the data
        cannot see (adding any multiple of one leaves the outputs unchanged).
    null_space_bias : list of ndarray or None
        The bias component of each null direction (with ``use_bias``).
    causes, advice : tuple of str
        Plain-words reasons for rank deficiency and what to do.
    """

    config: ConvConfig
    equations: np.ndarray
    unknowns: np.ndarray
    rank: np.ndarray
    condition_number: np.ndarray
    status: str
    channel_status: tuple[str, ...]
    error_per_unit_noise: np.ndarray
    singular_values: list[np.ndarray] = field(repr=False)
    null_space: list[np.ndarray] = field(repr=False)
    null_space_bias: list[np.ndarray] | None = field(repr=False)
    causes: tuple[str, ...] = ()
    advice: tuple[str, ...] = ()
    exact_rank: bool = True

    @property
    def ok(self) -> bool:
        """True when every output channel's kernel is uniquely determined by the data."""
        return self.status in ("overdetermined", "determined")

    def to_dict(self) -> dict:
        """A JSON-serialisable summary."""
        return {
            "status": self.status,
            "channel_status": list(self.channel_status),
            "equations": self.equations.tolist(),
            "unknowns": self.unknowns.tolist(),
            "rank": self.rank.tolist(),
            "condition_number": [float(c) for c in self.condition_number],
            "error_per_unit_noise": [float(e) for e in self.error_per_unit_noise],
            "singular_values": [s.tolist() for s in self.singular_values],
            "causes": list(self.causes),
            "advice": list(self.advice),
            "config": self.config.describe(),
        }

    def __str__(self) -> str:
        cfg = self.config
        lines = [f"Determinacy of a Conv1D kernel ({cfg.describe()}): {self.status.upper().replace('_', '-')}"]
        per_group = cfg.out_per_group
        for grp in range(cfg.groups):
            o = grp * per_group
            chans = f"output channel {o}" if per_group == 1 else f"output channels {o}-{o + per_group - 1}"
            lines.append(
                f"  {chans}: {self.equations[o]} equations, {self.unknowns[o]} unknowns "
                f"({cfg.kernel_size} taps x {cfg.in_per_group} input channel(s)"
                f"{' + bias' if cfg.use_bias else ''}), rank {self.rank[o]}, "
                f"condition number {self.condition_number[o]:.3g} -> {self.channel_status[o]}"
            )
        if cfg.out_per_group > 1 or cfg.groups > 1:
            lines.append("  (each output channel is its own system; channels of one group share the design matrix)")
        for c in self.causes:
            lines.append(f"  cause: {c}")
        for a in self.advice:
            lines.append(f"  what to do: {a}")
        return "\n".join(lines)

    def warn(self, stacklevel: int = 2) -> None:
        """Issue :class:`UnderdeterminedWarning` or :class:`IllConditionedWarning` when they apply."""
        if not self.ok:
            text = self.summary_line()
            warnings.warn(text, UnderdeterminedWarning, stacklevel=stacklevel + 1)
        elif np.max(self.condition_number) > ILL_CONDITIONED:
            warnings.warn(
                f"the design is ill-conditioned (condition number {np.max(self.condition_number):.3g}): noise in y is "
                "amplified into the kernel by up to that factor. Use an input with a flatter spectrum, a longer "
                "record, or regularize (ridge=...).",
                IllConditionedWarning,
                stacklevel=stacklevel + 1,
            )

    def summary_line(self) -> str:
        cfg = self.config
        eq, unk, rank = int(self.equations.min()), int(self.unknowns.max()), int(self.rank.min())
        if self.status == "underdetermined":
            text = (
                f"underdetermined: each output channel has {eq} equations for {unk} unknowns; give at least "
                f"{unk - eq} more output sample(s) per channel (a longer record or more sequences)"
                f"{', fewer taps (kernel_size)' if cfg.kernel_size > 1 else ''}, or set ridge>0."
            )
        else:
            text = f"rank-deficient: the design has rank {rank} for {unk} unknowns."
        if self.causes:
            text += " " + " ".join(self.causes)
        return text + " The returned kernel is the minimum-norm one that fits the data."


def analyze(
    x: ArrayLike,
    y: ArrayLike | None,
    kernel_size: int,
    *,
    stride: int = 1,
    padding: Padding = "valid",
    dilation: int = 1,
    groups: int = 1,
    use_bias: bool = False,
    layout: Layout = "nwc",
    flip: bool = False,
    out_channels: int | None = None,
    warn: bool = True,
) -> DeterminacyReport:
    """Say whether ``x`` (and ``y``) determine a Conv1D kernel, before or without solving.

    Parameters
    ----------
    x, y : array_like
        As in :func:`recover_kernel`.  ``y`` may be None: only ``x`` and the configuration decide the
        counts and the rank; ``y`` then only fixes the number of output channels.
    kernel_size, stride, padding, dilation, groups, use_bias, layout, flip
        The configuration, as in :func:`conv1d`.
    out_channels : int, optional
        Number of output channels when ``y`` is None (default: ``groups``).
    warn : bool
        Issue :class:`UnderdeterminedWarning` / :class:`IllConditionedWarning` when they apply.

    Returns
    -------
    DeterminacyReport

    Notes
    -----
    Each output channel is a separate linear system ``A w = y_o`` whose design ``A`` has one row per
    output sample and ``kernel_size * in_channels // groups (+1 for the bias)`` columns.  The rank and
    singular values come from an SVD of ``A`` when it is small, otherwise from the eigenvalues of
    ``A^T A`` (then singular values below ``sqrt(eps)`` times the largest are treated as zero).

    Examples
    --------
    >>> import kernel_recovery as kr
    >>> rep = kr.analyze([0.0, 3.0, 4.0, 5.0], [[6.0, 12.0], [11.0, 25.0], [14.0, 32.0]], 2)
    >>> rep.status, rep.equations.tolist(), rep.unknowns.tolist()
    ('overdetermined', [3, 3], [2, 2])
    """
    problem = build_problem(
        x, y, kernel_size, stride=stride, padding=padding, dilation=dilation, groups=groups, use_bias=use_bias,
        layout=layout, flip=flip, out_channels=out_channels,
    )
    report = report_for(problem)
    if warn:
        report.warn(stacklevel=2)
    return report


def report_for(problem: CanonicalProblem) -> DeterminacyReport:
    """The :class:`DeterminacyReport` of a canonical problem."""
    cfg = problem.config
    n_out = cfg.out_channels
    equations = np.full(n_out, problem.n_equations, dtype=np.int64)
    unknowns = np.full(n_out, cfg.unknowns_per_output, dtype=np.int64)
    rank = np.zeros(n_out, dtype=np.int64)
    cond = np.zeros(n_out)
    gain = np.zeros(n_out)
    statuses = [""] * n_out
    svals, nulls, null_bias = [], [], []
    exact = True
    for block in problem.blocks:
        spec = block_spectrum(block, cfg.use_bias)
        exact &= spec.exact
        r = spec.rank
        s = spec.singular_values
        p = len(s)
        svals.append(s)
        null_vecs = spec.right_vectors[:, r:].T
        mapped = [problem.free_to_kernel(v) for v in null_vecs]
        nulls.append(np.array([k for k, _ in mapped]).reshape(len(mapped), cfg.kernel_size, cfg.in_per_group))
        null_bias.append(np.array([b for _, b in mapped]))
        if problem.n_equations < p:
            st = "underdetermined"
        elif r < p:
            st = "rank_deficient"
        elif problem.n_equations == p:
            st = "determined"
        else:
            st = "overdetermined"
        oc = block.out_channels
        rank[oc] = r
        cond[oc] = s[0] / s[-1] if r == p and p else np.inf
        gain[oc] = np.sqrt(np.sum(1.0 / s**2)) if r == p and p else np.inf
        for o in oc:
            statuses[o] = st
    order = ("underdetermined", "rank_deficient", "determined", "overdetermined")
    status = next(s for s in order if s in statuses)
    causes = _causes(problem, rank) if status in ("underdetermined", "rank_deficient") else ()
    advice = _advice(problem, status, int(equations[0]), int(unknowns[0]), causes)
    return DeterminacyReport(
        config=cfg, equations=equations, unknowns=unknowns, rank=rank, condition_number=cond, status=status,
        channel_status=tuple(statuses), error_per_unit_noise=gain, singular_values=svals, null_space=nulls,
        null_space_bias=null_bias if cfg.use_bias else None, causes=tuple(causes), advice=tuple(advice),
        exact_rank=exact,
    )


def _causes(problem: CanonicalProblem, rank: np.ndarray) -> list[str]:
    """Plain-words reasons for a rank deficiency, read off the input channels of each group."""
    cfg = problem.config
    causes = []
    if problem.n_equations < cfg.unknowns_per_output:
        causes.append(
            f"too short a record: {problem.n_equations} output samples per channel for {cfg.unknowns_per_output} unknowns."
        )
    cin = cfg.in_per_group
    for grp, block in enumerate(problem.blocks):
        data = np.concatenate(block.xs)
        # canonical channel q*cin + c carries polyphase component q of user channel c
        for c in range(cin):
            cols = data[:, c::cin]
            user_c = grp * cin + c
            if not np.any(cols):
                causes.append(f"input channel {user_c} is zero: its taps have no effect on y.")
            elif np.ptp(cols) == 0:
                what = "with each other and with the bias" if cfg.use_bias else "with each other"
                causes.append(f"input channel {user_c} is constant: its taps are confounded {what} (only their sum is seen).")
        for c in range(cin):
            for c2 in range(c + 1, cin):
                a, b = data[:, c::cin].ravel(), data[:, c2::cin].ravel()
                if np.any(a) and np.any(b) and abs(np.dot(a, b)) >= (1 - 1e-12) * np.linalg.norm(a) * np.linalg.norm(b):
                    causes.append(
                        f"input channels {grp * cin + c} and {grp * cin + c2} are proportional: only a combination of "
                        "their taps is seen."
                    )
    return causes


def _advice(problem, status, eq, unk, causes) -> list[str]:
    if status == "underdetermined":
        return [
            f"record at least {unk - eq} more output sample(s) per channel (longer or more sequences), reduce "
            "kernel_size, or accept the minimum-norm answer (ridge>0 regularizes it)."
        ]
    if status == "rank_deficient":
        return [
            "excite every kernel direction: use a broadband input (white noise, a chirp) on every channel, drop "
            "duplicate or constant channels, or regularize (ridge>0); the null_space attribute lists the directions "
            "the data cannot see."
        ]
    return []
