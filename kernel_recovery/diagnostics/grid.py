"""The determinacy report of a grid problem (N-D kernels, complex signals), from its design's factorization.

The same :class:`~.determinacy.DeterminacyReport` as for sequences, per output channel: equations, unknowns, rank
(one rank rule: :func:`~kernel_recovery.model.spectrum.rank_tolerance`), condition number, error per unit noise,
the invisible kernel directions shaped like the kernel, and per input channel the order of excitation (the rank
of its columns, capped at the number of kernel positions).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ..model.grid import GridProblem
from ..model.grid_spectrum import grid_spectrum
from .determinacy import DeterminacyReport, check_noise_level


def grid_report(problem: GridProblem, *, noise_level: ArrayLike | None = None) -> DeterminacyReport:
    """How well the data determine the kernel of a grid problem, per output channel."""
    cfg = problem.config
    n_out, per = cfg.out_channels, cfg.out_per_group
    groups = [_group_entries(problem, g) for g in range(cfg.groups)]
    per_output = [groups[o // per] for o in range(n_out)]
    equations = np.full(n_out, problem.n_equations, dtype=np.int64)
    unknowns = np.full(n_out, cfg.unknowns_per_output, dtype=np.int64)
    rank = np.array([e["rank"] for e in per_output], dtype=np.int64)
    err = np.array([e["error"] for e in per_output])
    status = tuple(_status(int(e), int(u), int(r)) for e, u, r in zip(equations, unknowns, rank))
    causes, codes, advice = _causes(problem, equations, unknowns, rank)
    noise = check_noise_level(noise_level, n_out)
    return DeterminacyReport(
        config=cfg,  # type: ignore[arg-type]  # a GridConfig reads as a ConvConfig here
        equations=equations,
        unknowns=unknowns,
        rank=rank,
        condition_number=np.array([e["condition"] for e in per_output]),
        status=_worst(status),
        channel_status=status,
        error_per_unit_noise=err,
        singular_values=[e["singular_values"] for e in groups],
        null_space=[e["null_space"] for e in groups],
        null_space_bias=[e["null_space_bias"] for e in groups] if cfg.use_bias else None,
        causes=causes,
        advice=advice,
        exact_rank=all(e["exact"] for e in groups),
        cause_codes=codes,
        excitation_order=np.minimum(np.concatenate([e["orders"] for e in groups]), cfg.taps),
        joint_excitation_order=np.minimum(np.array([e["joint"] for e in groups], dtype=np.int64), cfg.taps),
        kernel_error_per_unit_noise=np.stack([e["kernel_error"] for e in per_output], axis=-1),
        bias_error_per_unit_noise=np.array([e["bias_error"] for e in per_output]) if cfg.use_bias else None,
        noise_level=noise,
        expected_error=None if noise is None else noise * err,
        lengths=tuple(int(np.prod(s)) for s in problem.shapes),
        rank_tolerance=tuple(e["tolerance"] for e in groups),
    )


def _group_entries(problem: GridProblem, g: int) -> dict[str, Any]:
    """One group's entries of the report, from the factorization its solver shares."""
    cfg = problem.config
    p, n_kernel = cfg.unknowns_per_output, cfg.taps * cfg.in_per_group
    flip = (slice(None, None, -1),) * cfg.ndim if cfg.flip else ()
    spec = grid_spectrum(problem, g)
    r, s = spec.rank, spec.singular_values
    diag = np.sqrt(np.clip(np.real(np.diag(spec.pseudo_inverse_gram())), 0.0, None))
    nulls = spec.vectors[:, r:]
    touched = np.any(np.abs(nulls) > 1e-8, axis=1) if nulls.size else np.zeros(p, dtype=bool)
    diag = np.where(touched, np.inf, diag)  # coefficients a null direction moves are not determined
    directions = nulls[:n_kernel].T.reshape((-1,) + cfg.kernel_size + (cfg.in_per_group,))
    coords = s[:, None] * spec.vectors.conj().T  # diag(s) V^H: columns with the design's singular values
    joint = _column_rank(coords, np.arange(n_kernel), spec.tolerance, r, spec.exact)
    orders = [
        joint
        if cfg.in_per_group == 1
        else _column_rank(coords, np.arange(c, n_kernel, cfg.in_per_group), spec.tolerance, r, spec.exact)
        for c in range(cfg.in_per_group)
    ]
    return {
        "rank": r,
        "condition": s[0] / s[-1] if r == p and s[-1] > 0 else np.inf,
        "error": np.sqrt(np.sum(diag**2)) if r == p else np.inf,
        "kernel_error": diag[:n_kernel].reshape(cfg.kernel_size + (cfg.in_per_group,))[flip],
        "bias_error": diag[-1] if cfg.use_bias else None,
        "null_space": np.ascontiguousarray(directions[(slice(None),) + flip]),
        "null_space_bias": nulls[n_kernel:].T.ravel() if cfg.use_bias else np.zeros(0),
        "singular_values": s.copy(),
        "tolerance": spec.tolerance,
        "orders": np.array(orders, dtype=np.int64),
        "joint": joint,
        "exact": spec.exact,
    }


def _column_rank(coords: np.ndarray, cols: np.ndarray, tol: float, rank: int, exact: bool) -> int:
    """The rank of the design's columns ``cols`` (``coords = diag(s) V^H`` has their singular values) under the
    spectrum's own rule: their singular values above ``tol`` (an explicit design's SVD), or their Gram's eigenvalues
    above ``tol^2`` (a Gram's spectrum, whose tolerance is far above the Gram's rounding); the whole design's rank
    when they are all its columns."""
    if len(cols) == coords.shape[1]:
        return rank
    sub = coords[:, cols]
    if exact:
        return int((np.linalg.svd(sub, compute_uv=False) > tol).sum())
    return int((np.linalg.eigvalsh(sub.conj().T @ sub) > tol**2).sum())


def _status(equations: int, unknowns: int, rank: int) -> str:
    if equations < unknowns:
        return "underdetermined"
    if rank < unknowns:
        return "rank_deficient"
    return "determined" if equations == unknowns else "overdetermined"


def _worst(statuses: tuple[str, ...]) -> str:
    for name in ("underdetermined", "rank_deficient", "determined"):
        if name in statuses:
            return name
    return "overdetermined"


def _causes(
    problem: GridProblem, equations: np.ndarray, unknowns: np.ndarray, rank: np.ndarray
) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """Plain-words causes and advice for an undetermined grid kernel."""
    cfg = problem.config
    if equations.min() < unknowns.max():
        return (
            (
                f"the output has {int(equations.min())} samples per channel for {int(unknowns.max())} unknowns "
                f"(kernel {cfg.kernel_size} x {cfg.in_per_group} input channel(s)"
                f"{' + bias' if cfg.use_bias else ''}).",
            ),
            ("too_short",),
            ("record larger inputs or more of them (a batch), use a smaller kernel_size, or set ridge>0.",),
        )
    if rank.min() < unknowns.max():
        return (
            (
                "the input does not excite every kernel direction (too few distinct spatial frequencies, a "
                "constant or repeated pattern, or channels that are linear combinations of each other).",
            ),
            ("unexcited",),
            (
                "use a broadband input (noise, a textured scene), add items, or constrain the kernel "
                "(constraints=..., ridge>0).",
            ),
        )
    return (), (), ()
