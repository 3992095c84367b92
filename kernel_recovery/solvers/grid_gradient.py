"""Gradient descent on grid problems (N-D kernels) in JAX + optax: ``method="adam"``.

The N-D counterpart of :mod:`.gradient`, on a :class:`~kernel_recovery.model.grid.GridProblem` (real data only).
The forward pass is :func:`jax.lax.conv_general_dilated` on the problem's *padded* inputs with ``"VALID"``
padding, the layer's ``window_strides`` (stride), ``rhs_dilation`` (dilation) and ``feature_group_count``
(groups), and the kernel in correlation order (``flip`` is applied when the coefficients are given back as the
user's kernel), so the padding, stride, dilation, groups and flip semantics are those of the design rows.
The whole optimization (steps, Adam's plateau schedule, the stopping rule, restarts side by side) is the compiled
loop of :func:`.gradient.optimize` (``lax.while_loop`` over ``lax.scan`` blocks), float64 by default, with
``jax.enable_x64`` scoped to the call.

By default the descent runs in whitened coordinates (``precondition=True``), as for sequences: with the design's
singular values and right singular vectors (:func:`~kernel_recovery.model.grid_spectrum.grid_spectrum`, the
factorization the report reads) the coefficients are ``V diag(c / s) u`` (``c`` the outputs' spread), so an
ill-conditioned design (a smooth image) does not slow some directions down; directions the data do not see are
frozen at zero, so rank-deficient data give the minimum-norm kernel.

Success, as for sequences: the mean step fell below ``tol`` and the loss is within 1% (``MINIMUM_RTOL``) of a
reference minimum (least squares for ``"mse"``; for ``"mae"``/``"huber"`` IRLS started from Adam's answer, to
convergence on small designs and ``REFERENCE_STEPS`` sweeps on larger ones), or below the loss of residuals
``MINIMUM_FLOOR`` times the outputs.

JAX and optax are imported here (and in :mod:`.gradient`) only; the registry loads this module when
``method="adam"`` is first used on a grid problem.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ..model.design import EXPLICIT_LIMIT
from ..model.grid import GridProblem, design_rows, group_targets, row_chunks
from ..model.grid_spectrum import grid_spectrum
from ..model.threads import SerialBLAS
from .gradient import (
    MAX_GAIN,
    MINIMUM_FLOOR,
    MINIMUM_RTOL,
    Model,
    check_descent_options,
    coefficient_size,
    elementwise_loss,
    end_message,
    glorot_draws,
    glorot_limit,
    optimize,
)
from .grid import GridSolution, solve_lstsq

#: IRLS sweeps of the robust references on designs of at most ``EXPLICIT_LIMIT`` entries (to convergence) ...
REFERENCE_SWEEPS = 200
#: ... and on larger ones.
REFERENCE_STEPS = 3
_SPATIAL = {1: "W", 2: "HW", 3: "DHW"}


def solve(
    problem: GridProblem,
    *,
    loss: Literal["mae", "mse", "huber"] = "mse",
    learning_rate: float | None = None,
    max_iter: int = 2000,
    tol: float = 1e-6,
    seed: int = 0,
    init: Literal["glorot_uniform", "zeros", "lstsq"] = "glorot_uniform",
    optimizer: optax.GradientTransformation | None = None,
    restarts: int = 1,
    dtype: str = "float64",
    huber_delta: float | None = None,
    precondition: bool = True,
) -> GridSolution:
    """Adam (optax) on an N-D convolution's loss, the forward pass by ``jax.lax.conv_general_dilated``.

    Options
    -------
    loss : {"mse", "mae", "huber"}
        Mean squared error, mean absolute error (robust to outliers) or Huber with threshold ``huber_delta``,
        averaged over every output sample and channel.
    learning_rate : float, default 0.05 (0.001 with ``init="lstsq"``)
        Initial step of the default optimizer (Adam); halved, with Adam's moments restarted, whenever a block
        of 25 steps oscillates or stalls.  Not allowed with ``optimizer=``.
    max_iter : int
        The most steps taken (reaching it is not a success).
    tol : float
        Stop when the mean step over a block is at most ``tol`` times the largest coefficient (at least a
        typical one, ``|y - mean y| / s_max``).  A stop is a success only if the loss is also at the minimum
        (see the module docstring).
    seed : int
        Seeds the initial kernel.
    init : {"glorot_uniform", "zeros", "lstsq"}
        Keras' glorot-uniform kernel (zero bias; with ``precondition`` in units of a typical coefficient), zeros,
        or the least-squares kernel (a good start for ``loss="mae"``).
    optimizer : optax.GradientTransformation, optional
        Replaces Adam and its schedule.
    restarts : int
        Independent starts run side by side; the one with the lowest final loss is kept.
    dtype : {"float64", "float32"}
        Working precision; float64 is enabled inside this call only.
    huber_delta : float, optional
        The Huber threshold in units of a robust noise scale (``1.4826 * MAD`` of the least-squares residual, at
        least 1e-3 of the outputs' rms); None means 1.345.  In the outputs' units in
        ``diagnostics["huber_threshold"]``.
    precondition : bool
        Descend in whitened coordinates (see the module docstring); False descends on the kernel, as Keras does.

    Returns
    -------
    GridSolution
        ``unit_covariance`` None (a descent has no covariance; ``method="lstsq"`` or ``"fft"`` gives one).
        ``diagnostics``: ``solver`` (``"gradient_conv"`` per group), ``final_loss``, ``restart``,
        ``restart_losses``, ``reference_loss`` and ``reference`` (what the success test compared with),
        ``huber_threshold`` (Huber only).
    """
    if problem.is_complex:
        raise ValueError("method='adam' does not take complex signals; use method='lstsq' or 'fft'.")
    if problem.ys is None:
        raise ValueError("method='adam' needs the outputs `y`: the problem was built without them.")
    o = check_descent_options(
        loss=loss, learning_rate=learning_rate, max_iter=max_iter, tol=tol, seed=seed, init=init, optimizer=optimizer,
        restarts=restarts, dtype=dtype, huber_delta=huber_delta, precondition=precondition,
    )  # fmt: skip
    loss_name, init_name, optimizer, learning_rate, steps, tol = (o.loss, o.init, o.optimizer, o.learning_rate,
                                                                  o.max_iter, o.tol)  # fmt: skip
    seed, restarts, dtype, relative_delta, precondition = o.seed, o.restarts, o.dtype, o.huber_delta, o.precondition
    options = {
        "loss": loss_name,
        "learning_rate": learning_rate,
        "max_iter": steps,
        "tol": tol,
        "seed": seed,
        "init": init_name,
        "optimizer": "adam" if optimizer is None else optimizer,
        "restarts": restarts,
        "dtype": dtype,
        "huber_delta": relative_delta if loss_name == "huber" else None,
        "precondition": precondition,
    }
    diagnostics: dict[str, Any] = {"solver": ["gradient_conv"] * problem.config.groups}
    delta = 1.0
    if loss_name == "huber":
        delta = relative_delta * _robust_scale(problem)
        diagnostics["huber_threshold"] = delta
    with SerialBLAS():
        p, p_inv, floor = _parametrization(problem, precondition)
    coef0 = _initial_coefficients(problem, init_name, restarts, seed, floor if precondition else 1.0)
    u0 = np.einsum("gpq,rgqo->rgpo", p_inv, coef0)
    model, data = _model(problem, loss_name, delta, p, floor, dtype)
    with jax.enable_x64(dtype == "float64"):
        params, final, histories, n_steps, converged = optimize(
            model, u0.astype(dtype), data, optimizer=optimizer, learning_rate=learning_rate, steps=steps,
            tol=tol, seed=seed, progress=False,
        )  # fmt: skip
    final = np.where(np.isfinite(final), final, np.inf)
    best = int(np.argmin(final))
    coefs = np.einsum("gpq,gqo->gpo", p, np.asarray(params[best], dtype=np.float64))
    diagnostics.update(final_loss=float(final[best]), restart=best, restart_losses=final.astype(float).tolist())
    ok = bool(converged[best])
    message = end_message(ok, int(n_steps[best]), steps, tol)
    if ok:
        ok, message = _check_minimum(problem, list(coefs), message, loss_name, delta, diagnostics)
    return GridSolution(
        coefs=list(coefs),
        unit_covariance=None,
        success=ok,
        message=message,
        options=options,
        diagnostics=diagnostics,
        n_iterations=int(n_steps[best]),
        loss_history=histories[best],
    )


# ----------------------------------------------------------------------------------------------
# The model: conv_general_dilated on the padded inputs
# ----------------------------------------------------------------------------------------------


def _conv_model(
    kernel_size: tuple[int, ...],
    in_per_group: int,
    groups: int,
    stride: tuple[int, ...],
    dilation: tuple[int, ...],
    use_bias: bool,
    loss: str,
    delta: float,
) -> tuple[Callable[..., Any], ...]:
    """``(batch_loss, full_loss, size)`` of parameters ``u`` (G, P, O_g) with coefficients ``C u`` (see
    :func:`.gradient.coefficient_size`); ``data["X"]`` holds the padded inputs stacked by shape, ``data["Y"]``
    the outputs, ``data["count"]`` the number of output values."""
    elementwise = elementwise_loss(loss, delta)
    spatial = _SPATIAL[len(kernel_size)]
    numbers = ("N" + spatial + "C", spatial + "IO", "N" + spatial + "C")
    n_kernel = int(np.prod(kernel_size)) * in_per_group

    def predict(u, data, x):
        coef = jnp.einsum("gpq,gqo->gpo", data["C"], u) + data["offset"]
        g, _, o = coef.shape
        k = coef[:, :n_kernel].reshape((g,) + kernel_size + (in_per_group, o))
        kernel = jnp.moveaxis(k, 0, -2).reshape(kernel_size + (in_per_group, g * o))  # group-major outputs
        pred = jax.lax.conv_general_dilated(
            x, kernel, window_strides=stride, padding="VALID", rhs_dilation=dilation,
            dimension_numbers=numbers, feature_group_count=groups,
        )  # fmt: skip
        if use_bias:
            pred = pred + coef[:, n_kernel].reshape(g * o)
        return pred

    def full_loss(u, data):
        total = sum(jnp.sum(elementwise(y - predict(u, data, x))) for x, y in zip(data["X"], data["Y"]))
        return total / data["count"]

    return (lambda u, data, key: full_loss(u, data)), full_loss, coefficient_size


def _model(
    problem: GridProblem, loss: str, delta: float, p: np.ndarray, floor: float, dtype: str
) -> tuple[Model, dict[str, Any]]:
    """The :class:`.gradient.Model` and its data: the padded inputs and outputs stacked by spatial shape."""
    cfg = problem.config
    assert problem.ys is not None
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for i, x in enumerate(problem.xs):
        by_shape.setdefault(x.shape, []).append(i)
    xs = tuple(np.asarray(np.stack([problem.xs[i] for i in idx]), dtype) for idx in by_shape.values())
    ys = tuple(np.asarray(np.stack([problem.ys[i] for i in idx]), dtype) for idx in by_shape.values())
    data = {
        "X": xs,
        "Y": ys,
        "C": np.asarray(p, dtype),
        "offset": np.zeros((cfg.groups, problem.n_columns, cfg.out_per_group), dtype),
        "floor": np.asarray(floor, dtype),
        "count": np.asarray(float(problem.n_equations * cfg.out_channels), dtype),
    }
    args = (cfg.kernel_size, cfg.in_per_group, cfg.groups, cfg.stride, cfg.dilation, cfg.use_bias, loss, float(delta))
    return Model(_conv_model, args), data


# ----------------------------------------------------------------------------------------------
# Parametrization and start
# ----------------------------------------------------------------------------------------------


def _output_spread(problem: GridProblem) -> float:
    """``|y - mean y|`` over every item, root mean square over output channels (``|y|`` if that vanishes)."""
    assert problem.ys is not None
    ys = np.concatenate([y.reshape(-1, y.shape[-1]) for y in problem.ys])
    spread = float(np.sqrt(((ys - ys.mean(axis=0)) ** 2).sum(axis=0).mean()))
    whole = float(np.sqrt((ys**2).sum(axis=0).mean()))
    return spread if spread > 1e-8 * whole else whole


def _parametrization(problem: GridProblem, whiten: bool) -> tuple[np.ndarray, np.ndarray, float]:
    """``(P, P_inv, floor)``: coefficients ``P u`` per group (whitened: ``V diag(c / s)`` on the directions the
    data see, zero on the others), ``u = P_inv coef``, and the size of a typical coefficient ``c / s_max``."""
    cfg = problem.config
    g, p = cfg.groups, problem.n_columns
    ps = np.tile(np.eye(p), (g, 1, 1))
    inverses = ps.copy()
    spread = _output_spread(problem)
    floors = []
    for i in range(g):
        spec = grid_spectrum(problem, i)
        s, v = spec.singular_values, np.real(spec.vectors)
        s_max = float(s.max(initial=0.0))
        if s_max > 0 and spread > 0:
            floors.append(spread / s_max)
        if not whiten:
            continue
        if s_max == 0:
            ps[i], inverses[i] = 0.0, 0.0
            continue
        c = spread if spread > 0 else s_max
        seen = s > spec.tolerance
        s = np.maximum(s, s_max / MAX_GAIN)
        ps[i] = v * np.where(seen, c / s, 0.0)
        inverses[i] = np.where(seen, s / c, 0.0)[:, None] * v.T
    return ps, inverses, max(floors, default=1.0)


def _initial_coefficients(problem: GridProblem, init: str, restarts: int, seed: int, scale: float) -> np.ndarray:
    """``(restarts, G, P, O_g)`` starting coefficients; restarts after the first add a glorot draw to zeros/lstsq."""
    cfg = problem.config
    n_kernel = cfg.taps * cfg.in_per_group
    limit = glorot_limit(cfg.taps, cfg.in_per_group, cfg.out_channels)
    draws = np.zeros((restarts, cfg.groups, problem.n_columns, cfg.out_per_group))
    draws[:, :, :n_kernel] = scale * glorot_draws(seed, limit, (restarts, cfg.groups, n_kernel, cfg.out_per_group))
    if init == "glorot_uniform":
        return draws
    base = np.zeros(draws.shape[1:])
    if init == "lstsq":
        base = np.stack(solve_lstsq(problem).coefs).real
    draws[0] = 0.0
    return base[None] + draws


# ----------------------------------------------------------------------------------------------
# The success test: the loss against a reference minimum
# ----------------------------------------------------------------------------------------------


def _chunks(problem: GridProblem, g: int):
    for i in range(len(problem.xs)):
        for start, stop in row_chunks(problem, i):
            yield design_rows(problem, i, g, start, stop), group_targets(problem, i, g, start, stop)


def _loss_total(problem: GridProblem, coefs: list[np.ndarray], rho: Callable[[np.ndarray], np.ndarray]) -> float:
    return float(sum(np.sum(rho(t - a @ c)) for g, c in enumerate(coefs) for a, t in _chunks(problem, g)))


def _robust_scale(problem: GridProblem) -> float:
    """``1.4826 * MAD`` of the least-squares residual (the unit of ``huber_delta``), at least 1e-3 of the
    outputs' rms."""
    coefs = solve_lstsq(problem).coefs
    r = np.concatenate([(t - a @ c).ravel() for g, c in enumerate(coefs) for a, t in _chunks(problem, g)])
    scale = 1.4826 * float(np.median(np.abs(r - np.median(r)))) if r.size else 0.0
    assert problem.ys is not None
    y_rms = float(np.sqrt(np.mean(np.concatenate([y.ravel() for y in problem.ys]) ** 2)))
    return max(scale, 1e-3 * y_rms, 1e-300)


def _irls(problem: GridProblem, g: int, coef: np.ndarray, loss: str, delta: float, sweeps: int) -> np.ndarray:
    """Iteratively reweighted least squares for the absolute or Huber loss from ``coef`` (P, O_g), per column."""
    coef = coef.copy()
    eps = 1e-9 * delta
    for _ in range(sweeps):
        grams = np.zeros((coef.shape[1],) + (coef.shape[0],) * 2)
        rhs = np.zeros(coef.shape[::-1])
        for a, t in _chunks(problem, g):
            r = np.abs(t - a @ coef)
            w = 1.0 / np.maximum(r, eps) if loss == "mae" else np.minimum(1.0, delta / np.maximum(r, eps))
            grams += np.einsum("no,np,nq->opq", w, a, a)
            rhs += np.einsum("no,np,no->op", w, a, t)
        new = np.stack([np.linalg.lstsq(gm, b, rcond=None)[0] for gm, b in zip(grams, rhs)], axis=1)
        step = np.max(np.abs(new - coef))
        coef = new
        if step <= 1e-10 * max(np.max(np.abs(coef)), 1e-300):
            break
    return coef


def _check_minimum(
    problem: GridProblem, coefs: list[np.ndarray], message: str, loss: str, delta: float, diagnostics: dict
) -> tuple[bool, str]:
    """Adam's steps look converged: is its loss also within ``MINIMUM_RTOL`` of the reference minimum?"""
    rho = elementwise_loss(loss, delta, np)
    value = _loss_total(problem, coefs, rho)
    if loss == "mse":
        ref = solve_lstsq(problem).coefs
        what = "the least-squares minimum"
    else:
        small = problem.n_equations * problem.n_columns <= EXPLICIT_LIMIT
        sweeps = REFERENCE_SWEEPS if small else REFERENCE_STEPS
        ref = [_irls(problem, g, c, loss, delta, sweeps) for g, c in enumerate(coefs)]
        name = "least-absolute-deviations" if loss == "mae" else "Huber"
        what = (
            f"the {name} minimum (IRLS from Adam's answer)" if small else f"the {name} loss after {sweeps} IRLS steps"
        )
    minimum = min(_loss_total(problem, ref, rho), value)
    diagnostics.update(reference_loss=minimum, reference=what)
    assert problem.ys is not None
    floor = float(sum(np.sum(rho(MINIMUM_FLOOR * y)) for y in problem.ys))
    if value <= minimum * (1 + MINIMUM_RTOL) + floor:
        return True, message
    measure = {"mse": "squared residual", "mae": "absolute residual", "huber": "Huber loss"}[loss]
    return False, (
        f"{message}, but at a {measure} {value / max(minimum, 1e-300):.3g} times {what} (raise max_iter, lower "
        "tol or learning_rate, or use method='lstsq')"
    )
