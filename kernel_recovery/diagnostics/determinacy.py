"""The determinacy report: what the data determine, what they cannot see, and how accurate the answer can be.

:class:`DeterminacyReport` holds the answer and says it (text, JSON, warnings); :mod:`.analysis` computes it from
data and :func:`~kernel_recovery.plan` from shapes alone.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

from ..exceptions import IllConditionedWarning, UnderdeterminedWarning
from ..model.arrays import jsonable
from ..model.config import ConvConfig
from ..model.validation import check_real
from .geometry import needed_text

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

#: Above this design condition number a relative error in y may be amplified more than 1e8-fold.
ILL_CONDITIONED = 1e8


def check_noise_level(noise_level: ArrayLike | None, n_out: int) -> np.ndarray | None:
    """``noise_level`` (one number, or one per output channel) as an ``(n_out,)`` array; None stays None."""
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
        target_error = check_real(target_error, "target_error", low=0, low_open=True)
        noise = check_noise_level(noise_level, len(self.equations)) if noise_level is not None else self.noise_level
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
        layer = f"Conv{getattr(cfg, 'ndim', 1)}D"  # a grid configuration (2-D, 3-D kernels) has ndim
        head = (
            f"Determinacy of a {layer} kernel" if self.source == "data" else f"Planned determinacy of a {layer} kernel"
        )
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
        lines.extend(self._system_lines())
        if self.source == "data":
            lines.extend(self._excitation_lines())
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
                f"  data needed: {needed_text(self.config, self.lengths)} (as many equations as unknowns, every tap "
                "reached; the input must also excite every direction)"
            )
        return "\n".join(lines)

    def _system_lines(self) -> list[str]:
        """One line per group: equations, unknowns, rank, condition number and status."""
        cfg = self.config
        per_group = cfg.out_per_group
        lines = []
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
        return lines

    def _excitation_lines(self) -> list[str]:
        """The excitation orders and the singular values (what the data, not the shapes, decide)."""
        cfg = self.config
        lines = []
        if self.excitation_order is not None and self.joint_excitation_order is not None:
            parts = []
            for c, r in enumerate(self.excitation_order):
                parts.append(f"{c}: {r}" + ("" if r >= np.prod(cfg.kernel_size) else " (too low)"))
            joint = ", ".join(str(int(j)) for j in self.joint_excitation_order)
            lines.append(
                f"  excitation order (capped at kernel_size={cfg.kernel_size}): input channel "
                f"{', '.join(parts)}; jointly {joint}{' per group' if cfg.groups > 1 else ''}"
            )
        if self.singular_values and len(self.singular_values[0]):
            s = self.singular_values[0]
            lines.append(
                f"  singular values{' (group 0)' if cfg.groups > 1 else ''}: largest {s[0]:.3g}, smallest {s[-1]:.3g}, "
                f"{int((s > self.rank_tolerance[0]).sum())} of {len(s)} above the tolerance "
                f"{self.rank_tolerance[0]:.2g}"
            )
        return lines

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

    def warn(self, stacklevel: int = 2, *, method: str | None = None) -> None:
        """Issue :class:`UnderdeterminedWarning` or :class:`IllConditionedWarning` when they apply.

        ``method``: the method that will solve (its name says which kernel comes back when the data leave some
        directions undetermined); None for the report alone.
        """
        if not self.ok:
            text = self.summary_line(method)
            warnings.warn(text, UnderdeterminedWarning, stacklevel=stacklevel + 1)
        elif np.max(self.condition_number) > ILL_CONDITIONED:
            warnings.warn(
                f"the design is ill-conditioned (condition number {np.max(self.condition_number):.3g}): noise in y is "
                "amplified into the kernel by up to that factor. Use an input with a flatter spectrum, a longer "
                "record, or regularize (ridge=...).",
                IllConditionedWarning,
                stacklevel=stacklevel + 1,
            )

    def summary_line(self, method: str | None = None) -> str:
        """The report in one sentence, ending with which kernel ``method`` returns where the data leave some
        directions undetermined."""
        cfg = self.config
        ridge = "set ridge>0" if method in (None, "lstsq") else "set ridge>0 with method='lstsq'"
        eq, unk, rank = int(self.equations.min()), int(self.unknowns.max()), int(self.rank.min())
        if self.status == "underdetermined":
            text = (
                f"underdetermined: each output channel has {eq} equations for {unk} unknowns; give at least "
                f"{unk - eq} more output sample(s) per channel (a longer record or more sequences)"
                f"{', fewer taps (kernel_size)' if np.prod(cfg.kernel_size) > 1 else ''}, or {ridge}."
            )
        else:
            text = f"rank-deficient: the design has rank {rank} for {unk} unknowns."
        if self.causes:
            text += " " + " ".join(self.causes)
        return text + " " + _which_kernel(method)


def _which_kernel(method: str | None) -> str:
    """Which kernel comes back from ``method`` where the data leave some directions undetermined."""
    if method in (None, "lstsq", "adam"):  # adam freezes the directions the data do not see
        return "The returned kernel is the minimum-norm one that fits the data."
    if method == "fft":
        return (
            "method='fft' returns a least-squares kernel that fits the data, not necessarily the minimum-norm one "
            "(method='lstsq' returns that)."
        )
    return "The kernel is the custom method's; method='lstsq' returns the minimum-norm one that fits the data."
