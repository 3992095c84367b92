"""Computing the determinacy report of a canonical problem from the design's spectrum.

The rank, condition number, error gains and null space of each group are read off the design's spectrum (an SVD
of the explicit design when it is small, otherwise the eigenvalues of the Gram ``A^T A`` that least squares also
uses), so analysing a long record costs one pass to build the sufficient statistics and a few ``(K * Cin)^2``-sized
eigenproblems.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from ..model.problem import Block, CanonicalProblem, check_feasible
from ..model.spectrum import APPROXIMATE_ABOVE, BlockSpectrum, report_spectrum
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


def _report_for(problem: CanonicalProblem, noise_level: ArrayLike | None) -> DeterminacyReport:
    cfg = problem.config
    n_out = cfg.out_channels
    noise = check_noise_level(noise_level, n_out)
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
            _estimated_block(
                problem,
                block,
                spec,
                equations,
                rank,
                cond,
                gain,
                coef_gain,
                bias_gain,
                statuses,
                excitation,
                joint,
                diagnosis,
                nulls,
                null_bias,
            )
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
            diagnosis += diagnose(problem, grp, block, spec, cols, ranks_c, geometry)
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
        untouched_taps=tuple(user_taps(cfg, np.flatnonzero(geometry))),
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
        diagnosis.append(
            (
                "unexcited",
                f"the inputs' spectrum excites about {r} of the {p} directions (estimated from the cross-spectra "
                f"because the design has more than {APPROXIMATE_ABOVE} columns): too few distinct frequencies for "
                f"kernel_size={cfg.kernel_size}.",
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
