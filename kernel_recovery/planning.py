"""Planning an experiment from shapes alone: ``plan()`` gives the report :func:`analyze` would give on white noise."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple, cast

import numpy as np

from .diagnostics.determinacy import DeterminacyReport, check_noise_level
from .diagnostics.geometry import data_needed, shape_causes, untouched_taps, user_taps
from .exceptions import UnderdeterminedWarning
from .model.config import ConvConfig, ConvSettings, ConvSpec
from .model.grid import GridConfig, GridSpec
from .model.validation import check_int, check_real

if TYPE_CHECKING:
    from typing_extensions import Unpack


def _lengths(lengths: int | Sequence[int], batch: int | None) -> tuple[int, ...]:
    """The input length of each planned sequence: the ``lengths`` given, or one length ``batch`` times."""
    if isinstance(lengths, str) or np.ndim(lengths) == 0:
        n = 1 if batch is None else check_int(batch, "batch")
        return (check_int(lengths, "lengths"),) * n
    out = tuple(check_int(v, "lengths") for v in lengths)  # type: ignore[union-attr]
    if not out:
        raise ValueError("`lengths` is empty: give the length of at least one sequence.")
    if batch is not None and check_int(batch, "batch") != len(out):
        raise ValueError(f"`batch` (={batch}) must equal the number of `lengths` given ({len(out)}), or be None.")
    return out


def plan(
    kernel_size: int | tuple[int, ...],
    *,
    lengths: int | Sequence[int] | Sequence[Sequence[int]],
    in_channels: int = 1,
    out_channels: int | None = None,
    batch: int | None = None,
    noise_level: float | Sequence[float] | None = None,
    input_std: float = 1.0,
    warn: bool = False,
    **settings: Unpack[ConvSettings],
) -> DeterminacyReport:
    """Analyze an experiment before recording it: counts, rank, expected accuracy and the data needed.

    Parameters
    ----------
    kernel_size : int or tuple of int
        Number of taps; a tuple of 2 or 3 entries plans an N-D kernel (Conv2D/Conv3D, see :func:`conv`).
    lengths : int or sequence of int
        Input length of each sequence; an int with ``batch`` means ``batch`` sequences of that length.  For an N-D
        kernel: the spatial shape of the input ``(H, W)`` (``batch`` items of it), or a list of shapes.
    in_channels, out_channels : int
        Channels of ``x`` and ``y`` (``out_channels`` defaults to ``groups``).
    batch : int, optional
        Number of sequences when ``lengths`` is an int (default 1).
    stride, padding, dilation, groups, use_bias, flip, lags
        The configuration, as in :func:`conv1d`.
    noise_level : float or sequence of float, optional
        Standard deviation of white noise in ``y``; the report then gives ``expected_error``.
    input_std : float
        Standard deviation of the planned zero-mean white-noise input (default 1).
    warn : bool
        Issue :class:`UnderdeterminedWarning` when the plan cannot determine the kernel.

    Returns
    -------
    DeterminacyReport
        With ``source="plan"``: the same counts, rank and status that :func:`analyze` gives on a white-noise
        input of these shapes, the expected accuracy, ``min_length`` / ``min_sequences``, the taps that padding
        and stride leave untouched (and their null directions), but no singular values or excitation orders
        (they need data).

    Notes
    -----
    Equations per output channel are ``sum_i output_length(L_i)`` and unknowns ``kernel_size * in_channels //
    groups (+1)``.  A white-noise input excites every tap that reads at least one sample, so the rank is
    ``min(equations, reached coefficients)``.  For Gaussian white noise of standard deviation ``s`` the rows of
    the design are (nearly) independent with covariance ``diag(s^2, ..., s^2, 1)``, so ``E[(A^T A)^-1] =
    diag(1/s^2, ..., 1) / (n - P - 1)`` (the inverse Wishart mean) and the expected error per unit noise is
    ``sqrt((P_taps / s^2 + bias) / (n - P - 1))``; the expected condition number is the Marchenko-Pastur ratio
    ``(1 + sqrt(P / n)) / (1 - sqrt(P / n))``.

    Examples
    --------
    >>> import kernel_recovery as kr
    >>> rep = kr.plan(8, lengths=20, in_channels=2, use_bias=True)
    >>> rep.status, rep.equations.tolist(), rep.unknowns.tolist(), rep.min_length
    ('underdetermined', [13], [17], 24)
    >>> kr.plan(8, lengths=1000, noise_level=0.1).expected_error.round(4).tolist()
    [0.009]
    """
    input_std = check_real(input_std, "input_std", low=0, low_open=True)
    if isinstance(kernel_size, (tuple, list)) and len(kernel_size) >= 2:  # an N-D kernel: lengths are shapes
        settings_nd = {k: v for k, v in settings.items() if k != "lags"}
        spec_nd = GridSpec.create(kernel_size, **settings_nd)
        n_out = spec_nd.groups if out_channels is None else check_int(out_channels, "out_channels")
        cfg_nd = spec_nd.bind(check_int(in_channels, "in_channels"), n_out)
        report = _grid_plan(cfg_nd, _shapes(lengths, batch, cfg_nd.ndim), input_std, noise_level)
        if warn and not report.ok:
            warnings.warn(f"the planned experiment does not determine the kernel: {' '.join(report.causes)}",
                          UnderdeterminedWarning, stacklevel=2)  # fmt: skip
        return report
    n_seq = _lengths(cast("int | Sequence[int]", lengths), batch)
    spec = ConvSpec.create(cast(int, kernel_size), **settings)
    n_out = spec.groups if out_channels is None else check_int(out_channels, "out_channels")
    cfg = spec.bind(check_int(in_channels, "in_channels"), n_out)
    noise = check_noise_level(noise_level, cfg.out_channels)
    n_eq = _equations(cfg, n_seq)
    geometry = untouched_taps(cfg, n_seq)
    reached = (cfg.kernel_size - int(geometry.sum())) * cfg.in_per_group + int(cfg.use_bias)
    r = min(n_eq, reached)
    report = _report(cfg, n_seq, n_eq, r, geometry, _white_noise_accuracy(cfg, n_eq, r, input_std), noise)
    if warn and not report.ok:
        warnings.warn(
            f"the planned experiment does not determine the kernel: {' '.join(report.causes)} "
            f"{' '.join(report.advice)}",
            UnderdeterminedWarning,
            stacklevel=2,
        )
    return report


def _equations(cfg: ConvConfig, lengths: tuple[int, ...]) -> int:
    """Equations per output channel, ``sum_i output_length(L_i)``; every sequence must give one output."""
    out_lengths = [cfg.output_length(n) for n in lengths]
    for i, (n, m) in enumerate(zip(lengths, out_lengths)):
        if m < 1:
            where = "" if len(lengths) == 1 else f" (sequence {i})"
            raise ValueError(
                f"`lengths`{where} gives {n} samples, too short for kernel_size={cfg.kernel_size}, dilation="
                f"{cfg.dilation} with padding={cfg.padding!r}: a receptive field spans {cfg.span} samples."
            )
    return int(sum(out_lengths))


class _Accuracy(NamedTuple):
    """The expected accuracy on a white-noise input (see the Notes of :func:`plan`)."""

    var_tap: float
    var_bias: float
    gain: float
    cond: float


def _white_noise_accuracy(cfg: ConvConfig, n_eq: int, r: int, input_std: float) -> _Accuracy:
    """Error variances per unit noise (inverse Wishart mean) and the Marchenko-Pastur condition number."""
    p = cfg.unknowns_per_output
    spare = n_eq - p - 1
    var_tap = 1.0 / input_std**2 / spare if r == p and spare > 0 else np.inf
    var_bias = 1.0 / spare if r == p and spare > 0 else np.inf
    gain = np.sqrt(cfg.kernel_size * cfg.in_per_group * var_tap + (var_bias if cfg.use_bias else 0.0))
    if r == p and n_eq > p:
        ratio = np.sqrt(p / n_eq)
        cond = (1 + ratio) / (1 - ratio)
        if cfg.use_bias:
            cond *= max(input_std, 1.0) / min(input_std, 1.0)
    else:
        cond = np.inf if r < p else np.nan
    return _Accuracy(var_tap, var_bias, gain, cond)


def _status(n_eq: int, r: int, p: int) -> str:
    if n_eq < p:
        return "underdetermined"
    if r < p:
        return "rank_deficient"
    return "determined" if n_eq == p else "overdetermined"


def _report(
    cfg: ConvConfig,
    lengths: tuple[int, ...],
    n_eq: int,
    r: int,
    geometry: np.ndarray,
    accuracy: _Accuracy,
    noise: np.ndarray | None,
) -> DeterminacyReport:
    """The report of the plan: the same fields :func:`analyze` fills, the spectra left empty."""
    n_out, p = cfg.out_channels, cfg.unknowns_per_output
    status = _status(n_eq, r, p)
    kernel_gain = np.full(cfg.kernel_shape, np.sqrt(accuracy.var_tap))
    user_untouched = user_taps(cfg, np.flatnonzero(geometry))
    kernel_gain[user_untouched] = np.inf
    null = _untouched_directions(cfg, user_untouched)
    diagnosis = shape_causes(cfg, lengths, n_eq, geometry)
    min_length, min_sequences = data_needed(cfg, lengths)
    return DeterminacyReport(
        config=cfg,
        equations=np.full(n_out, n_eq, dtype=np.int64),
        unknowns=np.full(n_out, p, dtype=np.int64),
        rank=np.full(n_out, r, dtype=np.int64),
        condition_number=np.full(n_out, accuracy.cond),
        status=status,
        channel_status=(status,) * n_out,
        error_per_unit_noise=np.full(n_out, accuracy.gain),
        singular_values=[np.zeros(0) for _ in range(cfg.groups)],
        null_space=[null.copy() for _ in range(cfg.groups)],
        null_space_bias=[np.zeros(len(null)) for _ in range(cfg.groups)] if cfg.use_bias else None,
        causes=tuple(c for _, c, _ in diagnosis),
        advice=tuple(a for _, _, a in diagnosis),
        exact_rank=False,
        cause_codes=tuple(code for code, _, _ in diagnosis),
        kernel_error_per_unit_noise=kernel_gain,
        bias_error_per_unit_noise=np.full(n_out, np.sqrt(accuracy.var_bias)) if cfg.use_bias else None,
        noise_level=noise,
        expected_error=None if noise is None else noise * accuracy.gain,
        untouched_taps=tuple(user_untouched),
        min_length=min_length,
        min_sequences=min_sequences,
        lengths=lengths,
        source="plan",
    )


def _untouched_directions(cfg: ConvConfig, taps: list[int]) -> np.ndarray:
    """The null directions of taps no output reads: a unit kernel ``(kernel_size, in_per_group)`` per tap, channel."""
    cin = cfg.in_per_group
    null = []
    for k in taps:
        for c in range(cin):
            v = np.zeros((cfg.kernel_size, cin))
            v[k, c] = 1.0
            null.append(v)
    return np.array(null).reshape(len(null), cfg.kernel_size, cin)


def _shapes(lengths: object, batch: int | None, ndim: int) -> tuple[tuple[int, ...], ...]:
    """The spatial shape of each planned N-D item: one shape (``batch`` times) or a list of shapes."""
    if isinstance(lengths, (tuple, list)) and len(lengths) == ndim and all(np.ndim(v) == 0 for v in lengths):
        shape = tuple(check_int(v, "lengths") for v in lengths)
        return (shape,) * (1 if batch is None else check_int(batch, "batch"))
    if isinstance(lengths, (tuple, list)) and lengths and all(np.ndim(v) == 1 and len(v) == ndim for v in lengths):
        shapes = tuple(tuple(check_int(v, "lengths") for v in item) for item in lengths)
        if batch is not None and check_int(batch, "batch") != len(shapes):
            raise ValueError(f"`batch` (={batch}) must equal the number of shapes given ({len(shapes)}), or be None.")
        return shapes
    raise ValueError(
        f"`lengths` must be a spatial shape of {ndim} ints or a list of them for a {ndim}-D kernel, got {lengths!r}."
    )


def _reached_taps(cfg: GridConfig, shapes: tuple[tuple[int, ...], ...], outs: list[tuple[int, ...]]) -> np.ndarray:
    """``kernel_size`` booleans: a kernel position is seen if some output reads a real (not padding) sample through it
    (per axis, then their product)."""
    reached = np.ones(cfg.kernel_size, dtype=bool)
    for axis, (k, d, st) in enumerate(zip(cfg.kernel_size, cfg.dilation, cfg.stride)):
        seen = np.zeros(k, dtype=bool)
        for s, o in zip(shapes, outs):
            before = cfg.pads(s)[axis][0]
            pos = np.arange(o[axis])[:, None] * st + np.arange(k)[None] * d - before
            seen |= np.any((pos >= 0) & (pos < s[axis]), axis=0)
        shape = [1] * cfg.ndim
        shape[axis] = k
        reached &= seen.reshape(shape)
    return reached


def _grid_plan(
    cfg: GridConfig, shapes: tuple[tuple[int, ...], ...], input_std: float, noise_level: object
) -> DeterminacyReport:
    """The plan of an N-D experiment on white noise: counts, the taps padding leaves unseen, the expected accuracy."""
    outs = [cfg.output_shape(s) for s in shapes]
    for s, o in zip(shapes, outs):
        if min(o) < 1:
            raise ValueError(
                f"`lengths` {s} is too small for kernel_size={cfg.kernel_size} (span {cfg.span}): no output."
            )
    n_eq = int(sum(np.prod(o) for o in outs))
    reached = _reached_taps(cfg, shapes, outs)
    p, cin = cfg.unknowns_per_output, cfg.in_per_group
    r = min(n_eq, int(reached.sum()) * cin + int(cfg.use_bias))
    spare = n_eq - p - 1
    var_tap = 1.0 / input_std**2 / spare if r == p and spare > 0 else np.inf
    var_bias = 1.0 / spare if r == p and spare > 0 else np.inf
    gain = float(np.sqrt(cfg.taps * cin * var_tap + (var_bias if cfg.use_bias else 0.0)))
    cond = (1 + np.sqrt(p / n_eq)) / (1 - np.sqrt(p / n_eq)) if r == p and n_eq > p else (np.inf if r < p else np.nan)
    status = _status(n_eq, r, p)
    spare_seen = n_eq - r - 1  # the coefficients that are seen are determined even when others are not
    kernel_gain = np.full(cfg.kernel_shape, np.sqrt(1.0 / input_std**2 / spare_seen) if spare_seen > 0 else np.inf)
    kernel_gain[~reached] = np.inf
    unseen = [tuple(where) + (c,) for where in np.argwhere(~reached) for c in range(cin)]
    null_space = np.zeros((len(unseen),) + cfg.kernel_size + (cin,))  # a unit kernel per unseen coefficient
    for i, index in enumerate(unseen):
        null_space[(i,) + index] = 1.0
    causes: tuple[str, ...] = ()
    advice: tuple[str, ...] = ()
    codes: tuple[str, ...] = ()
    if status == "underdetermined":
        causes = (f"the planned items give {n_eq} equations per output channel for {p} unknowns.",)
        advice, codes = ("plan larger or more items (batch), or a smaller kernel_size.",), ("too_short",)
    elif status == "rank_deficient":
        causes = (f"padding and stride leave {int((~reached).sum())} kernel position(s) reading only padding zeros.",)
        advice, codes = ("use less padding or a smaller kernel_size.",), ("untouched_taps",)
    n_out = cfg.out_channels
    noise = check_noise_level(noise_level, n_out)  # type: ignore[arg-type]
    return DeterminacyReport(
        config=cfg,  # type: ignore[arg-type]  # a GridConfig reads as a ConvConfig here
        equations=np.full(n_out, n_eq, dtype=np.int64),
        unknowns=np.full(n_out, p, dtype=np.int64),
        rank=np.full(n_out, r, dtype=np.int64),
        condition_number=np.full(n_out, cond),
        status=status,
        channel_status=(status,) * n_out,
        error_per_unit_noise=np.full(n_out, gain),
        singular_values=[np.zeros(0) for _ in range(cfg.groups)],
        null_space=[null_space.copy() for _ in range(cfg.groups)],
        null_space_bias=[np.zeros(len(null_space)) for _ in range(cfg.groups)] if cfg.use_bias else None,
        causes=causes,
        advice=advice,
        exact_rank=False,
        cause_codes=codes,
        kernel_error_per_unit_noise=kernel_gain,
        bias_error_per_unit_noise=np.full(n_out, np.sqrt(var_bias)) if cfg.use_bias else None,
        noise_level=noise,
        expected_error=None if noise is None else noise * gain,
        lengths=tuple(int(np.prod(s)) for s in shapes),
        source="plan",
    )
