"""Computing the determinacy report of a canonical problem from the design's spectrum.

The rank, condition number, error gains and null space of each group are read off the design's spectrum (an SVD
of the explicit design when it is small, otherwise the eigenvalues of the Gram ``A^T A`` that least squares also
uses), so analysing a long record costs one pass to build the sufficient statistics and a few ``(K * Cin)^2``-sized
eigenproblems.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike

from ..model.config import ConvConfig
from ..model.problem import Block, CanonicalProblem, check_feasible
from ..model.spectrum import EXACT_ALWAYS, BlockSpectrum, rank_tolerance, report_spectrum
from ..model.threads import SerialBLAS
from .causes import diagnose
from .determinacy import DeterminacyReport, check_noise_level
from .geometry import data_needed, tap_columns, untouched_taps, user_taps


def report_for(problem: CanonicalProblem, *, noise_level: ArrayLike | None = None) -> DeterminacyReport:
    """The :class:`DeterminacyReport` of a canonical problem."""
    # Grams that cannot fit in memory, inputs whose squares overflow: refused first (outputs: by the solve)
    check_feasible(problem, outputs=False)
    with SerialBLAS():  # many small SVDs: OpenBLAS threads only slow them down on shared cores
        return _report_for(problem, noise_level)


@dataclass
class _Tally:
    """The report's per-channel arrays and per-group lists, filled in one group (block) at a time."""

    equations: np.ndarray
    rank: np.ndarray
    cond: np.ndarray
    gain: np.ndarray
    coef_gain: np.ndarray
    bias_gain: np.ndarray | None
    excitation: np.ndarray
    joint: np.ndarray
    statuses: list[str]
    svals: list[np.ndarray] = field(default_factory=list)
    tols: list[float] = field(default_factory=list)
    #: per group, the null-space basis (free coefficients, then the bias) of each of its blocks: a group is split
    #: into blocks where nan_policy='omit' drops different equations for its output channels
    free_nulls: dict[int, list[np.ndarray]] = field(default_factory=dict)
    diagnosis: list[tuple[str, str, str]] = field(default_factory=list)
    exact: bool = True

    @classmethod
    def start(cls, problem: CanonicalProblem) -> _Tally:
        cfg = problem.config
        n_out = cfg.out_channels
        equations, excitation, joint = (a.copy() for a in _tally_start(cfg, problem.n_equations))
        return cls(
            equations=equations,
            rank=np.zeros(n_out, dtype=np.int64),
            cond=np.zeros(n_out),
            gain=np.zeros(n_out),
            coef_gain=np.zeros(cfg.kernel_shape),
            bias_gain=np.zeros(n_out) if cfg.use_bias else None,
            excitation=excitation,
            joint=joint,
            statuses=[""] * n_out,
        )

    def add_counts(self, block: Block, spec: BlockSpectrum) -> None:
        """The group's equations, rank, condition number, error gain and status (every output channel of it)."""
        s, r, p, n_eq = spec.singular_values, spec.rank, len(spec.singular_values), block.n_equations
        oc = _channels(block, len(self.statuses))
        full = r == p and p
        self.equations[oc] = n_eq
        self.rank[oc] = r
        self.cond[oc] = s[0] / s[-1] if full else np.inf
        self.gain[oc] = np.sqrt(np.add.reduce(1.0 / s**2)) if full else np.inf  # (np.sum's own reduction)
        if n_eq < p:
            st = "underdetermined"
        elif r < p:
            st = "rank_deficient"
        else:
            st = "determined" if n_eq == p else "overdetermined"
        for o in block.out_channels.tolist():
            self.statuses[o] = st

    def add_excitation(self, grp: int, orders: ArrayLike, joint: int) -> None:
        """Lower the group's channels' excitation orders to ``orders`` and its joint order to ``joint``."""
        cin = len(self.excitation) // len(self.joint)
        chans = slice(grp * cin, (grp + 1) * cin)
        self.excitation[chans] = np.minimum(self.excitation[chans], orders)
        self.joint[grp] = min(self.joint[grp], joint)


@functools.lru_cache(maxsize=64)
def _tally_start(cfg: ConvConfig, n_equations: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The tally's filled starting arrays (equations, excitation and joint orders) of a configuration, read-only:
    each fit copies them (a copy costs less than ``np.full``)."""
    arrays = (
        np.full(cfg.out_channels, n_equations, dtype=np.int64),
        np.full(cfg.in_channels, cfg.kernel_size, dtype=np.int64),
        np.full(cfg.groups, cfg.kernel_size, dtype=np.int64),
    )
    for a in arrays:
        a.flags.writeable = False
    return arrays


def _channels(block: Block, n_out: int) -> np.ndarray | slice:
    """The block's output channels as an index: a slice where they are every channel (one block: the usual fit),
    which writes the same entries as the index array without fancy indexing's cost."""
    oc = block.out_channels
    return slice(None) if len(oc) == n_out else oc


@functools.lru_cache(maxsize=256)
def _geometry(
    cfg: ConvConfig, lengths: tuple[int, ...]
) -> tuple[np.ndarray, tuple[int, ...], tuple[int | None, int | None]]:
    """The untouched taps (read-only mask, and as the user's tap indices) and :func:`.geometry.data_needed` of a
    configuration and sequence lengths: what the shapes alone decide, cached (fits repeated on records of one shape
    do not redo their searches)."""
    untouched = untouched_taps(cfg, lengths)
    untouched.flags.writeable = False
    return untouched, tuple(user_taps(cfg, np.flatnonzero(untouched))), data_needed(cfg, lengths)


def _report_for(problem: CanonicalProblem, noise_level: ArrayLike | None) -> DeterminacyReport:
    cfg = problem.config
    noise = check_noise_level(noise_level, cfg.out_channels)
    geometry, untouched, (min_length, min_sequences) = _geometry(cfg, tuple(problem.lengths))
    tally = _Tally.start(problem)
    for block in problem.blocks:
        spec = report_spectrum(block, cfg.use_bias)
        tally.exact &= spec.exact
        tally.svals.append(spec.singular_values)
        tally.tols.append(float(spec.tolerance))
        tally.add_counts(block, spec)
        if not spec.has_vectors:
            _estimated_block(problem, block, spec, tally)
        else:
            _exact_block(problem, block, spec, tally, geometry)
    order = ("underdetermined", "rank_deficient", "determined", "overdetermined")
    status = next(s for s in order if s in tally.statuses)
    codes, causes, advice = _causes_and_advice(tally.diagnosis, status)
    nulls, null_bias = _group_null_spaces(problem, tally)
    return DeterminacyReport(
        config=cfg,
        equations=tally.equations,
        unknowns=np.full(cfg.out_channels, cfg.unknowns_per_output, dtype=np.int64),
        rank=tally.rank,
        condition_number=tally.cond,
        status=status,
        channel_status=tuple(tally.statuses),
        error_per_unit_noise=tally.gain,
        singular_values=tally.svals,
        null_space=nulls,
        null_space_bias=null_bias if cfg.use_bias else None,
        causes=causes,
        advice=advice,
        exact_rank=tally.exact,
        cause_codes=codes,
        excitation_order=tally.excitation,
        joint_excitation_order=tally.joint,
        kernel_error_per_unit_noise=tally.coef_gain,
        bias_error_per_unit_noise=tally.bias_gain,
        noise_level=noise,
        expected_error=None if noise is None else noise * tally.gain,
        untouched_taps=untouched,
        min_length=min_length,
        min_sequences=min_sequences,
        lengths=tuple(problem.lengths),
        rank_tolerance=tuple(tally.tols),
        source="data",
    )


def _group_null_spaces(problem: CanonicalProblem, tally: _Tally) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """One null space per group, ``(n_null, kernel_size, in_channels // groups)``, and its bias components: the
    directions no output channel of the group sees (adding one leaves every output unchanged).  Where the group was
    split into blocks (different equations dropped per output channel), that is the intersection of the blocks' null
    spaces: the null space of the stacked projections onto their complements, under the one rank rule."""
    cfg = problem.config
    nulls, null_bias = [], []
    for grp in range(cfg.groups):
        bases = tally.free_nulls.get(grp, [])
        basis = bases[0] if bases else np.zeros((0, 0))
        if len(bases) > 1 and all(b.shape[1] for b in bases):
            p = bases[0].shape[0]
            stacked = np.vstack([np.eye(p) - b @ b.T for b in bases])
            _, sv, vt = np.linalg.svd(stacked)
            keep = sv > rank_tolerance(sv[0], len(stacked), p, "gram")
            basis = vt[int(keep.sum()) :].T
        elif len(bases) > 1:
            basis = np.zeros((bases[0].shape[0], 0))
        if not basis.shape[1]:  # every direction seen (the usual fit): empty arrays, as the general lines give
            nulls.append(np.zeros((0, cfg.kernel_size, cfg.in_per_group)))
            null_bias.append(np.zeros(0))
            continue
        mapped = [problem.free_to_kernel(v) for v in basis.T]
        nulls.append(np.array([k for k, _ in mapped]).reshape(len(mapped), cfg.kernel_size, cfg.in_per_group))
        null_bias.append(np.array([b for _, b in mapped]))
    return nulls, null_bias


def _causes_and_advice(
    diagnosis: list[tuple[str, str, str]], status: str
) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """``(codes, causes, advice)``: each cause once, in order (groups may repeat one), and the advice to give."""
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
    return tuple(codes), tuple(causes), tuple(advice)


def _exact_block(
    problem: CanonicalProblem, block: Block, spec: BlockSpectrum, tally: _Tally, geometry: np.ndarray
) -> None:
    """Fill one group's null space, coefficient errors, excitation orders and causes from its right vectors."""
    cfg = problem.config
    grp = int(block.out_channels[0]) // cfg.out_per_group
    s, r, p = spec.singular_values, spec.rank, len(spec.singular_values)
    if r == p:  # every coefficient seen; every subset of the columns has full rank: each channel excited at every tap
        tally.free_nulls.setdefault(grp, []).append(np.zeros((p, 0)))
        k_var, b_var = problem.free_to_kernel(spec.inverse_diagonal())
        oc = _channels(block, cfg.out_channels)
        tally.coef_gain[:, :, oc] = np.sqrt(k_var)[:, :, None]
        if tally.bias_gain is not None and b_var is not None:
            tally.bias_gain[oc] = np.sqrt(b_var)
        return
    v = spec.vectors
    tally.free_nulls.setdefault(grp, []).append(v[:, r:])
    # per-coefficient spread: finite only for coefficients with no component in the null space
    var = np.einsum("ij,j->i", v[:, :r] ** 2, 1.0 / s[:r] ** 2)
    var[np.sqrt(np.sum(v[:, r:] ** 2, axis=1)) > 1e-8] = np.inf
    k_var, b_var = problem.free_to_kernel(np.where(np.isfinite(var), var, -1.0))
    tally.coef_gain[:, :, block.out_channels] = np.where(k_var < 0, np.inf, np.sqrt(np.abs(k_var)))[:, :, None]
    if tally.bias_gain is not None and b_var is not None:
        tally.bias_gain[block.out_channels] = np.inf if b_var < 0 else np.sqrt(b_var)
    cols = tap_columns(problem, block)
    ranks_c = [spec.column_rank(cols[:, c]) for c in range(cfg.in_per_group)]
    tally.add_excitation(grp, ranks_c, _joint_order(spec, cols))
    if r < p:
        tally.diagnosis += diagnose(problem, grp, block, spec, cols, ranks_c, geometry)


def _estimated_block(problem: CanonicalProblem, block: Block, spec: BlockSpectrum, tally: _Tally) -> None:
    """Fill one group's entries of the report from a spectral estimate (large designs: no right vectors)."""
    cfg = problem.config
    grp = int(block.out_channels[0]) // cfg.out_per_group
    r, p = spec.rank, len(spec.singular_values)
    oc = block.out_channels
    full = r == p and p
    tally.coef_gain[:, :, oc] = tally.gain[oc][0] / np.sqrt(p) if full else np.inf
    if tally.bias_gain is not None:
        tally.bias_gain[oc] = tally.gain[oc][0] / np.sqrt(p) if full else np.inf
    cin = cfg.in_per_group
    if spec.channel_orders is None:  # (the spectral estimate, the only spectrum without vectors, counts them)
        raise RuntimeError("a spectrum without right vectors must give `channel_orders`.")
    orders = np.minimum(spec.channel_orders.reshape(-1, cin).sum(axis=0), cfg.kernel_size)
    tally.add_excitation(grp, orders, min(cfg.kernel_size, r // max(cin, 1)))
    tally.free_nulls.setdefault(grp, []).append(np.zeros((p, 0)))
    if r < p:
        how = (
            f"about {r} of the {p} directions (estimated from the cross-spectra"
            if spec.counted_rank is None
            else f"{r} of the {p} directions (counted from the Gram's eigenvalues; the spectrum is estimated"
        )
        tally.diagnosis.append(
            (
                "unexcited",
                f"the inputs' spectrum excites {how} because the design has more than {EXACT_ALWAYS} columns): too "
                f"few distinct frequencies for kernel_size={cfg.kernel_size}.",
                "drive the inputs with a broadband signal (white noise, a chirp), or reduce kernel_size.",
            )
        )


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
