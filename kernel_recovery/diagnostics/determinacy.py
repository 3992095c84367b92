"""Determinacy analysis: what the data determine, what they cannot see, and how accurate the answer can be.

Everything here is read off the design's spectrum (an SVD of the explicit design when it is small, otherwise the
eigenvalues of the Gram ``A^T A`` that least squares also uses), so analysing a long record costs one pass to
build the sufficient statistics and a few ``(K * Cin)^2``-sized eigenproblems.
"""

from __future__ import annotations

import json
import numbers
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

from ..exceptions import IllConditionedWarning, UnderdeterminedWarning
from ..model.arrays import jsonable
from ..model.config import ConvConfig
from ..model.operator import APPROXIMATE_ABOVE, BlockSpectrum, design_rows, n_columns, report_spectrum
from ..model.problem import Block, CanonicalProblem, check_feasible
from ..model.threads import SerialBLAS

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

STATUSES = ("overdetermined", "determined", "underdetermined", "rank_deficient")
#: Above this design condition number a relative error in y may be amplified more than 1e8-fold.
ILL_CONDITIONED = 1e8


# ----------------------------------------------------------------------------------------------
# Geometry: what the configuration alone decides (shared with planning)
# ----------------------------------------------------------------------------------------------


def tap_columns(problem: CanonicalProblem, block: Block) -> np.ndarray:
    """Design column of each (tap, input channel of the group), ``(kernel_size, in_channels // groups)``.

    Taps are in correlation order (tap ``k`` reads ``x[t * stride + k * dilation]``), before any ``flip``.
    """
    cfg = problem.config
    s, _ = problem._tap_layout()
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


def _user_taps(config: ConvConfig, taps: np.ndarray) -> list[int]:
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


def _noise_array(noise_level: ArrayLike | None, n_out: int) -> np.ndarray | None:
    if noise_level is None:
        return None
    try:
        arr = None if isinstance(noise_level, (bool, np.bool_)) else np.asarray(noise_level, dtype=float)
    except (TypeError, ValueError):
        arr = None
    if arr is None or arr.ndim > 1 or (arr.ndim == 1 and arr.shape != (n_out,)):
        raise ValueError(
            f"`noise_level` must be a number or one number per output channel ({n_out}), got {noise_level!r}."
        )
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ValueError(f"`noise_level` must be finite and >= 0, got {noise_level!r}.")
    return np.broadcast_to(arr, (n_out,)).copy()


# ----------------------------------------------------------------------------------------------
# The report
# ----------------------------------------------------------------------------------------------


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
        ``sqrt(trace((A^T A)^-1))``: the expected root-sum-square error of the channel's coefficients (taps and
        bias) for unit-variance white noise in ``y`` (``inf`` when rank-deficient).
    singular_values : list of ndarray
        The design's singular values for each group (the spectrum to plot; see :meth:`spectrum`).
    null_space : list of ndarray
        For each group, ``(n_null, kernel_size, in_channels // groups)``: orthonormal kernel directions the data
        cannot see (adding any multiple of one, with its ``null_space_bias``, leaves every output unchanged).
    null_space_bias : list of ndarray or None
        The bias component of each null direction (with ``use_bias``).
    causes, advice : tuple of str
        Plain-words reasons for rank deficiency, and what extra data would fix them.
    exact_rank : bool
        True when the rank comes from an SVD of the explicit design, False from the Gram's eigenvalues.
    cause_codes : tuple of str
        One short code per cause: "too_short", "untouched_taps", "zero_channel", "zero_taps", "constant_channel",
        "few_frequencies", "identical_channels", "proportional_channels", "related_channels", "bias_confounded",
        "unexcited".
    excitation_order : ndarray of int, shape (in_channels,)
        For each input channel, the number of independent kernel directions it excites among its ``kernel_size``
        taps: its order of persistent excitation as seen by this configuration, capped at ``kernel_size``
        (a constant 1, a sinusoid 2, white noise ``kernel_size``).
    joint_excitation_order : ndarray of int, shape (groups,)
        The largest ``n <= kernel_size`` for which the first ``n`` taps of all the group's channels together
        are excited (the multichannel order of persistent excitation, capped at ``kernel_size``).
    kernel_error_per_unit_noise : ndarray, shape (kernel_size, in_channels // groups, out_channels)
        Standard deviation of each coefficient per unit noise, ``sqrt(diag((A^T A)^+))``; ``inf`` for the
        coefficients that the null space touches (those are not determined).
    bias_error_per_unit_noise : ndarray of shape (out_channels,) or None
        The same for the bias.
    noise_level, expected_error : ndarray of shape (out_channels,) or None
        With ``noise_level`` given (the standard deviation of white noise in ``y``): ``noise_level *
        error_per_unit_noise``, the expected root-sum-square error of the recovered coefficients.
    untouched_taps : tuple of int
        Kernel taps (user indices) that padding and stride leave untouched: they only ever meet padding zeros.
    min_length, min_sequences : int or None
        The shortest common sequence length (for as many sequences as given), or the number of sequences as
        long as the longest one, that give as many equations as unknowns and reach every tap.
    lengths : tuple of int
        Input length of each sequence.
    rank_tolerance : tuple of float
        Per group, the singular value below which a direction counts as invisible.
    source : str
        "data" (from :func:`analyze`) or "plan" (from :func:`plan`: shapes only, white-noise input assumed).
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
    cause_codes: tuple[str, ...] = ()
    excitation_order: np.ndarray | None = field(default=None, repr=False)
    joint_excitation_order: np.ndarray | None = field(default=None, repr=False)
    kernel_error_per_unit_noise: np.ndarray | None = field(default=None, repr=False)
    bias_error_per_unit_noise: np.ndarray | None = field(default=None, repr=False)
    noise_level: np.ndarray | None = field(default=None, repr=False)
    expected_error: np.ndarray | None = field(default=None, repr=False)
    untouched_taps: tuple[int, ...] = ()
    min_length: int | None = None
    min_sequences: int | None = None
    lengths: tuple[int, ...] = ()
    rank_tolerance: tuple[float, ...] = ()
    source: str = "data"

    @property
    def ok(self) -> bool:
        """True when every output channel's kernel is uniquely determined by the data."""
        return self.status in ("overdetermined", "determined")

    def samples_for_error(self, target_error: float, noise_level: ArrayLike | None = None) -> np.ndarray:
        """Output samples per channel needed for an expected coefficient error of ``target_error``.

        Uses the white-noise law ``error^2 = c / (n - P - 1)`` (the mean of an inverse Wishart matrix), with ``c``
        fitted to this report, i.e. more data with the same statistics as these.  ``inf`` where the kernel is not
        determined (more data of the same kind would not help).

        Parameters
        ----------
        target_error : float
            Wanted root-sum-square coefficient error per output channel.
        noise_level : float or array_like, optional
            Noise standard deviation in ``y``; defaults to the report's ``noise_level``.

        Returns
        -------
        ndarray of float, shape (out_channels,)
        """
        if (
            isinstance(target_error, (bool, np.bool_))
            or not isinstance(target_error, numbers.Real)
            or not target_error > 0
            or not np.isfinite(target_error)
        ):
            raise ValueError(f"`target_error` must be a finite number > 0, got {target_error!r}.")
        noise = _noise_array(noise_level, len(self.equations)) if noise_level is not None else self.noise_level
        if noise is None:
            raise ValueError("`noise_level` is needed: give it here or to analyze()/plan().")
        p = self.unknowns.astype(float)
        spare = np.maximum(self.equations - p - 1, 1.0)
        with np.errstate(invalid="ignore"):
            c = np.where(np.isfinite(self.error_per_unit_noise), self.error_per_unit_noise**2 * spare, np.inf)
            need = np.where(np.isfinite(c), np.ceil(p + 1 + c * noise**2 / target_error**2), np.inf)
        return np.maximum(need, p)

    def spectrum(self) -> dict[str, Any]:
        """The singular-value spectrum per group, for plotting: values, rank tolerance and rank."""
        return {
            "singular_values": [s.copy() for s in self.singular_values],
            "tolerance": list(self.rank_tolerance),
            "rank": [int(self.rank[g * self.config.out_per_group]) for g in range(self.config.groups)],
        }

    def plot(self, ax: Axes | None = None) -> Figure:
        """Plot the singular-value spectrum (matplotlib); see :func:`kernel_recovery.plotting.plot_spectrum`."""
        from ..plotting import plot_spectrum

        return plot_spectrum(self, ax=ax)

    def to_dict(self) -> dict[str, Any]:
        """The report in plain JSON types: arrays as nested lists, non-finite numbers as None (JSON ``null``).

        ``null`` in ``condition_number``, ``error_per_unit_noise``, ``kernel_error_per_unit_noise`` and
        ``bias_error_per_unit_noise`` means ``inf``: unbounded, the coefficients are not determined.  Elsewhere
        it means NaN (not available) or a field this report does not have (``noise_level`` unless given).
        """
        d = {
            "status": self.status,
            "channel_status": list(self.channel_status),
            "equations": self.equations.tolist(),
            "unknowns": self.unknowns.tolist(),
            "rank": self.rank.tolist(),
            "condition_number": self.condition_number,
            "error_per_unit_noise": self.error_per_unit_noise,
            "singular_values": list(self.singular_values),
            "causes": list(self.causes),
            "advice": list(self.advice),
            "config": self.config.describe(),
            "source": self.source,
            "cause_codes": list(self.cause_codes),
            "lengths": list(self.lengths),
            "min_length": self.min_length,
            "min_sequences": self.min_sequences,
            "untouched_taps": list(self.untouched_taps),
            "rank_tolerance": list(self.rank_tolerance),
            "exact_rank": self.exact_rank,
            "excitation_order": None if self.excitation_order is None else self.excitation_order.tolist(),
            "joint_excitation_order": (
                None if self.joint_excitation_order is None else self.joint_excitation_order.tolist()
            ),
            "noise_level": None if self.noise_level is None else self.noise_level.tolist(),
            "expected_error": None if self.expected_error is None else self.expected_error.tolist(),
            "kernel_error_per_unit_noise": self.kernel_error_per_unit_noise,
            "bias_error_per_unit_noise": self.bias_error_per_unit_noise,
            "null_space": list(self.null_space),
            "null_space_bias": None if self.null_space_bias is None else list(self.null_space_bias),
        }
        return {name: jsonable(value) for name, value in d.items()}

    def to_json(self, **kwargs: Any) -> str:
        """:meth:`to_dict` as strict JSON: ``null`` for NaN and ``inf``, never the ``NaN``/``Infinity`` tokens.

        ``kwargs`` go to :func:`json.dumps` (``indent=1``, ...).
        """
        return json.dumps(self.to_dict(), **{"allow_nan": False, **kwargs})

    def __repr__(self) -> str:
        cfg = self.config
        return (
            f"DeterminacyReport(status={self.status!r}, source={self.source!r}, kernel_size={cfg.kernel_size}, "
            f"out_channels={cfg.out_channels}, equations={int(self.equations.min())}, "
            f"unknowns={int(self.unknowns.max())}, rank={int(self.rank.min())}, "
            f"condition_number={float(np.max(self.condition_number)):.3g}, "
            f"error_per_unit_noise={float(np.max(self.error_per_unit_noise)):.3g})"
        )

    def __str__(self) -> str:
        cfg = self.config
        head = "Determinacy of a Conv1D kernel" if self.source == "data" else "Planned determinacy of a Conv1D kernel"
        lines = [f"{head} ({cfg.describe()}): {self.status.upper().replace('_', '-')}"]
        if self.source == "plan":
            n_seq = len(self.lengths)
            lens = (
                f"{self.lengths[0]} samples"
                if len(set(self.lengths)) == 1
                else f"{min(self.lengths)}-{max(self.lengths)} samples"
            )
            lines.append(
                f"  plan for {n_seq} sequence(s) of {lens}, {cfg.in_channels} input channel(s), "
                "assuming a white-noise input"
            )
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
        if self.excitation_order is not None and self.joint_excitation_order is not None and self.source == "data":
            parts = []
            for c, r in enumerate(self.excitation_order):
                parts.append(f"{c}: {r}" + ("" if r >= cfg.kernel_size else " (too low)"))
            joint = ", ".join(str(int(j)) for j in self.joint_excitation_order)
            lines.append(
                f"  excitation order (capped at kernel_size={cfg.kernel_size}): input channel "
                f"{', '.join(parts)}; jointly {joint}{' per group' if cfg.groups > 1 else ''}"
            )
        if self.source == "data" and self.singular_values and len(self.singular_values[0]):
            s = self.singular_values[0]
            lines.append(
                f"  singular values{' (group 0)' if cfg.groups > 1 else ''}: largest {s[0]:.3g}, smallest {s[-1]:.3g}, "
                f"{int((s > self.rank_tolerance[0]).sum())} of {len(s)} above the tolerance "
                f"{self.rank_tolerance[0]:.2g}"
            )
        lines.extend(self._accuracy_lines())
        n_null = sum(len(n) for n in self.null_space)
        if n_null:
            shapes = ", ".join(str(n.shape) for n in self.null_space)
            lines.append(
                f"  invisible directions: {n_null} (report.null_space, shape {shapes}): adding any of them to the "
                "kernel leaves y unchanged"
            )
        for cause in self.causes:
            lines.append(f"  cause: {cause}")
        for a in self.advice:
            lines.append(f"  what to do: {a}")
        if self.min_length is not None and (not self.ok or self.source == "plan"):
            lines.append(
                f"  data needed: {_needed_text(self.config, self.lengths)} (as many equations as unknowns, every tap "
                "reached; the input must also excite every direction)"
            )
        return "\n".join(lines)

    def _accuracy_lines(self) -> list[str]:
        err = self.error_per_unit_noise
        if not np.all(np.isfinite(err)):
            if self.kernel_error_per_unit_noise is not None:
                det = np.isfinite(self.kernel_error_per_unit_noise[..., 0])
                if det.any():
                    return [
                        f"  accuracy: only {int(det.sum())} of {det.size} kernel coefficients are determined "
                        "(see kernel_error_per_unit_noise; the rest are inf)"
                    ]
            if self.ok:
                return [
                    "  accuracy: with as few equations as this the expected error diverges (it needs more output "
                    "samples than unknowns + 1); record more"
                ]
            return ["  accuracy: the kernel is not determined, so its error is unbounded"]
        spread = f"{err.min():.3g}" if np.ptp(err) == 0 else f"{err.min():.3g}-{err.max():.3g}"
        how = "expected" if self.source == "data" else "expected for a unit-variance white-noise input"
        line = (
            f"  accuracy: {how} coefficient error (root-sum-square) per unit noise std in y: {spread} "
            "per output channel"
        )
        out = [line]
        if self.expected_error is not None and self.noise_level is not None:
            e = self.expected_error
            nl = self.noise_level
            noise_text = np.array2string(nl, precision=3) if np.ptp(nl) else f"{nl[0]:.3g}"
            out.append(
                f"  with noise_level={noise_text}: "
                f"expected coefficient error {e.min():.3g}" + ("" if np.ptp(e) == 0 else f"-{e.max():.3g}")
            )
        return out

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


def report_for(problem: CanonicalProblem, *, noise_level: ArrayLike | None = None) -> DeterminacyReport:
    """The :class:`DeterminacyReport` of a canonical problem."""
    # Grams that cannot fit in memory, inputs whose squares overflow: refused first (outputs: by the solve)
    check_feasible(problem, outputs=False)
    with SerialBLAS():  # many small SVDs: OpenBLAS threads only slow them down on shared cores
        return _report_for(problem, noise_level)


def _report_for(problem: CanonicalProblem, noise_level: ArrayLike | None) -> DeterminacyReport:
    cfg = problem.config
    n_out = cfg.out_channels
    noise = _noise_array(noise_level, n_out)
    equations = np.full(n_out, problem.n_equations, dtype=np.int64)
    unknowns = np.full(n_out, cfg.unknowns_per_output, dtype=np.int64)
    rank = np.zeros(n_out, dtype=np.int64)
    cond = np.zeros(n_out)
    gain = np.zeros(n_out)
    coef_gain = np.zeros(cfg.kernel_shape)
    bias_gain = np.zeros(n_out) if cfg.use_bias else None
    excitation = np.zeros(cfg.in_channels, dtype=np.int64)
    joint = np.zeros(cfg.groups, dtype=np.int64)
    statuses = [""] * n_out
    svals: list[np.ndarray] = []
    nulls: list[np.ndarray] = []
    null_bias: list[np.ndarray] = []
    tols: list[float] = []
    exact = True
    geometry = untouched_taps(cfg, problem.lengths)
    diagnosis: list[tuple[str, str, str]] = []
    excitation[:] = cfg.kernel_size
    joint[:] = cfg.kernel_size
    for block in problem.blocks:
        grp = int(block.out_channels[0]) // cfg.out_per_group
        n_eq = block.n_equations
        spec = report_spectrum(block, cfg.use_bias)
        exact &= spec.exact
        r = spec.rank
        s = spec.singular_values
        p = len(s)
        svals.append(s)
        tols.append(float(spec.tolerance))
        if spec.right_vectors is None:
            _estimated_block(problem, block, spec, equations, rank, cond, gain, coef_gain, bias_gain, statuses,
                             excitation, joint, diagnosis, nulls, null_bias)
            continue
        null_vecs = spec.right_vectors[:, r:].T
        mapped = [problem.free_to_kernel(v) for v in null_vecs]
        nulls.append(np.array([k for k, _ in mapped]).reshape(len(mapped), cfg.kernel_size, cfg.in_per_group))
        null_bias.append(np.array([b for _, b in mapped]))
        if n_eq < p:
            st = "underdetermined"
        elif r < p:
            st = "rank_deficient"
        elif n_eq == p:
            st = "determined"
        else:
            st = "overdetermined"
        oc = block.out_channels
        equations[oc] = n_eq
        rank[oc] = r
        cond[oc] = s[0] / s[-1] if r == p and p else np.inf
        gain[oc] = np.sqrt(np.sum(1.0 / s**2)) if r == p and p else np.inf
        for o in oc:
            statuses[o] = st
        # per-coefficient spread: finite only for coefficients with no component in the null space
        v_range, v_null = spec.right_vectors[:, :r], spec.right_vectors[:, r:]
        var = np.einsum("ij,j->i", v_range**2, 1.0 / s[:r] ** 2)
        var[np.sqrt(np.sum(v_null**2, axis=1)) > 1e-8] = np.inf
        k_var, b_var = problem.free_to_kernel(np.where(np.isfinite(var), var, -1.0))
        k_sd = np.where(k_var < 0, np.inf, np.sqrt(np.abs(k_var)))
        coef_gain[:, :, oc] = k_sd[:, :, None]
        if bias_gain is not None and b_var is not None:
            bias_gain[oc] = np.inf if b_var < 0 else np.sqrt(b_var)
        cols = tap_columns(problem, block)
        ranks_c = [spec.column_rank(cols[:, c]) for c in range(cfg.in_per_group)]
        chans = slice(grp * cfg.in_per_group, (grp + 1) * cfg.in_per_group)
        excitation[chans] = np.minimum(excitation[chans], ranks_c)
        joint[grp] = min(joint[grp], _joint_order(spec, cols))
        if r < p:
            diagnosis += _diagnose(problem, grp, block, spec, cols, ranks_c, geometry)
    order = ("underdetermined", "rank_deficient", "determined", "overdetermined")
    status = next(s for s in order if s in statuses)
    # deduplicate, keeping order (groups may repeat a cause)
    seen, codes, causes, advice = set(), [], [], []
    for code, cause, adv in diagnosis:
        if cause not in seen:
            seen.add(cause)
            codes.append(code)
            causes.append(cause)
            if adv and adv not in advice:
                advice.append(adv)
    if status in ("underdetermined", "rank_deficient"):
        advice.append(
            "the null_space attribute lists the directions the data cannot see; until more data come, recover_kernel "
            "returns the minimum-norm kernel (ridge>0 regularizes it)."
        )
    min_length, min_sequences = data_needed(cfg, problem.lengths)
    return DeterminacyReport(
        config=cfg,
        equations=equations,
        unknowns=unknowns,
        rank=rank,
        condition_number=cond,
        status=status,
        channel_status=tuple(statuses),
        error_per_unit_noise=gain,
        singular_values=svals,
        null_space=nulls,
        null_space_bias=null_bias if cfg.use_bias else None,
        causes=tuple(causes),
        advice=tuple(advice),
        exact_rank=exact,
        cause_codes=tuple(codes),
        excitation_order=excitation,
        joint_excitation_order=joint,
        kernel_error_per_unit_noise=coef_gain,
        bias_error_per_unit_noise=bias_gain,
        noise_level=noise,
        expected_error=None if noise is None else noise * gain,
        untouched_taps=tuple(_user_taps(cfg, np.flatnonzero(geometry))),
        min_length=min_length,
        min_sequences=min_sequences,
        lengths=tuple(problem.lengths),
        rank_tolerance=tuple(tols),
        source="data",
    )


def _estimated_block(
    problem: CanonicalProblem,
    block: Block,
    spec: BlockSpectrum,
    equations: np.ndarray,
    rank: np.ndarray,
    cond: np.ndarray,
    gain: np.ndarray,
    coef_gain: np.ndarray,
    bias_gain: np.ndarray | None,
    statuses: list[str],
    excitation: np.ndarray,
    joint: np.ndarray,
    diagnosis: list[tuple[str, str, str]],
    nulls: list[np.ndarray],
    null_bias: list[np.ndarray],
) -> None:
    """Fill one group's entries of the report from a spectral estimate (large designs)."""
    cfg = problem.config
    grp = int(block.out_channels[0]) // cfg.out_per_group
    s, r, p, n_eq = spec.singular_values, spec.rank, len(spec.singular_values), block.n_equations
    oc = block.out_channels
    equations[oc] = n_eq
    rank[oc] = r
    full = r == p and p
    cond[oc] = s[0] / s[-1] if full else np.inf
    gain[oc] = np.sqrt(np.sum(1.0 / s**2)) if full else np.inf
    coef_gain[:, :, oc] = gain[oc][0] / np.sqrt(p) if full else np.inf
    if bias_gain is not None:
        bias_gain[oc] = gain[oc][0] / np.sqrt(p) if full else np.inf
    if n_eq < p:
        st = "underdetermined"
    elif r < p:
        st = "rank_deficient"
    else:
        st = "determined" if n_eq == p else "overdetermined"
    for o in oc:
        statuses[o] = st
    cin = cfg.in_per_group
    if spec.channel_orders is None:  # (the spectral estimate, the only spectrum without vectors, counts them)
        raise RuntimeError("a spectrum without right vectors must give `channel_orders`.")
    orders = np.minimum(spec.channel_orders.reshape(-1, cin).sum(axis=0), cfg.kernel_size)
    excitation[grp * cin : (grp + 1) * cin] = np.minimum(excitation[grp * cin : (grp + 1) * cin], orders)
    joint[grp] = min(joint[grp], min(cfg.kernel_size, r // max(cin, 1)))
    nulls.append(np.zeros((0, cfg.kernel_size, cin)))
    null_bias.append(np.zeros(0))
    if r < p:
        diagnosis.append((
            "unexcited",
            f"the inputs' spectrum excites about {r} of the {p} directions (estimated from the cross-spectra "
            f"because the design has more than {APPROXIMATE_ABOVE} columns): too few distinct frequencies for "
            f"kernel_size={cfg.kernel_size}.",
            "drive the inputs with a broadband signal (white noise, a chirp), or reduce kernel_size.",
        ))


def _joint_order(spec: BlockSpectrum, cols: np.ndarray) -> int:
    """Largest n such that the first n taps of every channel together have full column rank (binary search)."""
    k, cin = cols.shape

    def full(n: int) -> bool:
        return spec.column_rank(cols[:n].ravel()) == n * cin

    lo, hi = 0, k  # full(lo) holds; find the largest
    if full(hi):
        return k
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if full(mid) else (lo, mid)
    return lo


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


def _needed_text(config: ConvConfig, lengths: Sequence[int]) -> str:
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
                f"give {_needed_text(config, lengths)}, or reduce kernel_size.",
            )
        )
    if geometry.any():
        taps = _user_taps(config, np.flatnonzero(geometry))
        out.append(
            (
                "untouched_taps",
                f"zero padding and stride leave tap(s) {taps} untouched: with padding={config.padding!r}, "
                f"stride={config.stride}, dilation={config.dilation} and sequences of {max(lengths)} samples these "
                "taps "
                "only ever meet padding zeros, so their coefficients have no effect on y.",
                f"use {_needed_text(config, lengths)}, less padding, or a smaller kernel_size.",
            )
        )
    return out


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


def _diagnose(
    problem: CanonicalProblem,
    grp: int,
    block: Block,
    spec: BlockSpectrum,
    cols: np.ndarray,
    ranks_c: list[int],
    geometry: np.ndarray,
) -> list[tuple[str, str, str]]:
    """Plain-words reasons for one group's rank deficiency: ``(code, cause, advice)``."""
    cfg = problem.config
    cin, k = cfg.in_per_group, cfg.kernel_size
    n_eq = block.n_equations
    p = n_columns(block, cfg.use_bias)
    out = shape_causes(cfg, problem.lengths, n_eq, geometry)
    coords = spec.coordinates
    norms = np.linalg.norm(coords, axis=0)
    data = None

    def channel_data() -> np.ndarray:
        nonlocal data
        if data is None:
            data = np.concatenate(block.xs) if block.xs else np.zeros((0, block.channels))
        return data

    live = ~geometry
    if not live.any():  # every tap reads only padding zeros: the geometry is the whole story
        return out
    constant = np.zeros(cin, dtype=bool)
    dead = np.zeros(cin, dtype=bool)
    for c in range(cin):
        user_c = grp * cin + c
        zero_taps = live & (norms[cols[:, c]] <= spec.tolerance)
        if live.any() and zero_taps[live].all():
            dead[c] = True
            out.append(
                (
                    "zero_channel",
                    f"input channel {user_c} is zero: its taps have no effect on y.",
                    f"drive input channel {user_c} with a nonzero, broadband signal, or leave it out of the model.",
                )
            )
            continue
        if zero_taps.any():
            out.append(
                (
                    "zero_taps",
                    f"input channel {user_c} is zero at every sample that tap(s) "
                    f"{_user_taps(cfg, np.flatnonzero(zero_taps))}"
                    " read: those coefficients have no effect on y.",
                    f"record input channel {user_c} where it is nonzero at the samples those taps read "
                    "(a longer record).",
                )
            )
        taps_c = cols[:, c][live]
        # a constant channel excites one direction; only then is the (streamed) range check needed
        if ranks_c[c] <= 1 and _is_constant(block, cfg.use_bias, taps_c):
            constant[c] = True
            bias = " and with the bias" if cfg.use_bias else ""
            out.append(
                (
                    "constant_channel",
                    f"input channel {user_c} is constant: its taps are confounded with each other{bias} "
                    "(only their sum is seen); a constant excites 1 direction.",
                    f"make input channel {user_c} vary (a broadband signal such as white noise or a chirp).",
                )
            )
            continue
        live_taps = int((live & ~zero_taps).sum())
        if ranks_c[c] < min(live_taps, n_eq):
            freqs = _frequencies(spec, cols[:, c], ranks_c[c], cfg.dilation) if not geometry.any() else []
            seen = f" (its frequencies: {', '.join(map(str, freqs))} rad/sample)" if freqs else ""
            out.append(
                (
                    "few_frequencies",
                    f"input channel {user_c} has too few distinct frequencies: it excites only {ranks_c[c]} of its "
                    f"{k} tap "
                    f"directions (order of persistent excitation {ranks_c[c]} < kernel_size={k}){seen}; a sinusoid "
                    "excites only 2 directions, a constant 1.",
                    f"drive input channel {user_c} with a broadband input (white noise, a chirp, or at least "
                    f"{-(-k // 2)} sinusoids of distinct frequencies) so that it excites all {k} taps.",
                )
            )
    # relations between channels
    explained = set()
    for c in range(cin):
        for c2 in range(c + 1, cin):
            if dead[c] or dead[c2] or not _gram_proportional(coords, cols[live][:, c], cols[live][:, c2]):
                continue
            if len(channel_data()):
                a, b = channel_data()[:, c::cin].ravel(), channel_data()[:, c2::cin].ravel()
                na, nb, dot = np.linalg.norm(a), np.linalg.norm(b), float(np.dot(a, b))
            else:  # streamed statistics kept no rows: the Gram's columns of the first live tap tell the ratio
                i, j = cols[live][0, c], cols[live][0, c2]
                g = coords[:, [i, j]].T @ coords[:, [i, j]]
                na, nb, dot = np.sqrt(g[0, 0]), np.sqrt(g[1, 1]), float(g[0, 1])
            if abs(dot) >= (1 - 1e-12) * na * nb:
                ratio = dot / na**2
                u, v = grp * cin + c, grp * cin + c2
                explained.add(c2)
                if abs(ratio - 1) < 1e-12:
                    code, what = "identical_channels", f"input channels {u} and {v} are identical"
                    seen = f"only the sum of their kernels (w{u} + w{v}) is seen"
                else:
                    code, what = (
                        "proportional_channels",
                        f"input channels {u} and {v} are proportional (channel {v} = {ratio:.4g} x channel {u})",
                    )
                    seen = f"only w{u} + {ratio:.4g} w{v} is seen"
                out.append(
                    (
                        code,
                        f"{what}: {seen}, not each kernel.",
                        f"record input channels {u} and {v} with independent signals.",
                    )
                )
    kernel_cols = cols.ravel()
    joint = spec.column_rank(kernel_cols)
    cap = min(n_eq, int(sum(ranks_c)))
    if joint < cap:
        related: list[int] = []
        previous: list[int] = []
        for c in range(cin):
            before = spec.column_rank(cols[:, previous].ravel()) if previous else 0
            after = spec.column_rank(cols[:, previous + [c]].ravel())
            if after < min(n_eq, before + ranks_c[c]) and c not in explained:
                related.append(grp * cin + c)
            previous.append(c)
        if related:
            names = ", ".join(map(str, related))
            out.append(
                (
                    "related_channels",
                    f"input channel(s) {names} are linearly related to the other channels within kernel_size={k} taps "
                    "(a delayed, filtered, scaled or summed copy): only combinations of their kernels are seen.",
                    "record the input channels with independent signals (or leave out the redundant channel).",
                )
            )
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
        out.append(
            (
                "unexcited",
                f"the input does not excite every kernel direction: the design has rank {spec.rank} for {p} unknowns.",
                "use a broadband input (white noise, a chirp) on every channel.",
            )
        )
    return out
