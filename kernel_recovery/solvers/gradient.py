"""Gradient descent in JAX + optax: ``method="adam"``.

The whole optimization (every step, the learning-rate schedule and the stopping rule) runs inside one
compiled function (``lax.while_loop`` over blocks of ``lax.scan`` steps), compiled once per shape and
static setting and reused by later calls; the design and frames formulations pad their equations (frames) and
coefficients with zeros up to a shape bucket (:func:`bucket`: 8 sizes per octave), so that nearby problem sizes
share one compilation.  Three formulations of the canonical problem:

* ``"statistics"`` (squared loss, full batch): the loss ``||A w - y||^2 / n`` is rewritten once, in
  float64, as ``||R w - z||^2 / n + const`` with ``R^T R = A^T A`` and ``R^T z = A^T y`` (from the
  chunked statistics), so every step costs ``O(P^2)`` whatever the number of samples ``n``, and the
  iterates are those of gradient descent on the data.
* ``"design"`` (small problems, at most DESIGN_LIMIT design entries): the explicit whitened design
  matrix, so a step is one matrix product each way; the smallest graph, so the fastest to compile.
* ``"frames"`` (every other case): outputs are cut into frames of ``B`` consecutive samples; a frame is
  one row of inputs (``B + taps - 1`` samples) times a block-Toeplitz matrix built from the kernel, so
  the forward pass is one matrix product with ``B * out_channels`` columns.  On a CPU this is several
  times faster than ``lax.conv`` or a plain im2col product (which has only ``out_channels`` columns),
  and it is a plain matrix product on a GPU too.

By default the descent runs in whitened coordinates (``precondition=True``): with the design's singular
values and right singular vectors ``A^T A = V diag(s^2) V^T`` (the spectrum cached on the block and shared
with the report) the coefficients are ``offset + V diag(s_max / s) u``, so an ill-conditioned design no
longer slows some directions down.  The offset takes the outputs' mean out of the data the descent sees,
and with a bias the frames hold mean-free inputs, so that float32 data carry the signal, not a DC offset.
The schedule halves the learning rate, and restarts Adam's moments, whenever a block of steps oscillates or
stalls; the run stops when the mean step, measured on the coefficients (not on ``u``), falls below ``tol``.
Together they take the tutorial's examples to ~1e-6 where a constant-rate Adam stalls near 1e-2.

JAX and optax are imported here only; this module is loaded when ``method="adam"`` is first used.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from numpy.typing import DTypeLike

from ..model.design import EXPLICIT_LIMIT, n_columns, window_rows
from ..model.operator import block_residuals, residuals
from ..model.problem import Block, CanonicalProblem, check_gram_memory
from ..model.result import Solution
from ..model.spectrum import BlockSpectrum, block_spectrum, explicit_design
from ..model.statistics import block_statistics, column_sums, rss_from_statistics
from ..model.threads import SerialBLAS
from ..model.validation import check_bool, check_choice, check_int, check_real
from . import lstsq
from .lstsq import HUBER_DELTA

Loss = Literal["mae", "mse", "huber"]
Init = Literal["glorot_uniform", "zeros", "lstsq"]

LOSSES: tuple[Loss, ...] = ("mae", "mse", "huber")
INITS: tuple[Init, ...] = ("glorot_uniform", "zeros", "lstsq")
DTYPES = ("float32", "float64")

#: Steps per compiled block: the schedule and the stopping rule are checked between blocks.
CHECK_EVERY = 25
#: The default schedule multiplies the learning rate by this when a block oscillates (ends above its own
#: lowest loss) or does not improve the best loss.
PLATEAU_FACTOR = 0.5
#: Problems whose data hold at most this many numbers are compiled with fewer optimizations.
QUICK_COMPILE_SIZE = 1 << 16
#: Further compiler options of small-data loops: XLA's older fusion emitters compile the toys' loops ~3x faster
#: (0.1 s instead of 0.3 s) and run them as fast or faster, with the same iterates at level 0.  An XLA that no
#: longer knows an option refuses it; it is then left out (``_refused_options``).
SMALL_OPTIONS: dict[str, Any] = {"xla_cpu_use_fusion_emitters": False}
_refused_options: set[str] = set()
#: LLVM's optimization level for the small-data loops of the design and frames formulations (see Model.small_level).
SMALL_LEVEL = 1
#: Designs with at most this many entries are used explicitly (one matrix product per step).
DESIGN_LIMIT = 1 << 18
#: Frames aim at this many output columns (frame length x output channels) per matrix product.
FRAME_COLUMNS = 32
#: Whitening amplifies a direction by at most this (``s_max / s`` is capped), so that barely seen directions
#: converge slowly instead of taking huge steps.  Which directions count as seen is the rank rule's decision
#: (``block_spectrum(...).tolerance``), not this cap's.
MAX_GAIN = 1e6
#: Outputs whose spread about their mean is below this share of their size are constant up to rounding.
SPREAD_RTOL = 1e-8

#: A fit is a success when its loss is within this fraction of the reference minimum ...
MINIMUM_RTOL = 1e-2
#: ... or within the loss of residuals this fraction of the outputs (``1e-10 y'y`` for the squared loss).
MINIMUM_FLOOR = 1e-5


# ----------------------------------------------------------------------------------------------
# Option validation
# ----------------------------------------------------------------------------------------------


def check_dtype(dtype: DTypeLike) -> str:
    """Normalise ``dtype`` to "float32" or "float64"."""
    try:
        name = np.dtype(dtype).name
    except TypeError:
        name = None
    if name not in DTYPES:
        raise ValueError(f"`dtype` must be 'float32' or 'float64', got {dtype!r}.")
    return name


def check_optimizer(
    optimizer: optax.GradientTransformation | None, learning_rate: float | None, default: float = 5e-2
) -> tuple[optax.GradientTransformation | None, float | None]:
    """Validate ``optimizer``/``learning_rate``; return ``(optimizer or None, learning_rate)``."""
    if optimizer is None:
        lr = default if learning_rate is None else check_real(learning_rate, "learning_rate", low=0.0, low_open=True)
        return None, lr
    if not (hasattr(optimizer, "init") and hasattr(optimizer, "update")):
        raise TypeError(f"`optimizer` must be an optax.GradientTransformation, got {optimizer!r}.")
    if learning_rate is not None:
        raise ValueError(
            "`learning_rate` applies to the default optimizer only; with `optimizer=` set the learning rate "
            f"inside it (e.g. optax.adam({learning_rate!r})), got learning_rate={learning_rate!r}."
        )
    return optimizer, None


# ----------------------------------------------------------------------------------------------
# The generic compiled loop (shared with recover_stack)
# ----------------------------------------------------------------------------------------------


class Model(NamedTuple):
    """Static description of what is optimized: ``factory(*args)`` returns ``(batch_loss, full_loss)``
    or ``(batch_loss, full_loss, size)``.

    ``batch_loss(params, data, key)`` is the loss a step differentiates (``key`` is None unless the
    model samples minibatches, then a PRNG key); ``full_loss(params, data)`` is the loss on all data,
    used to choose the best restart.  ``size(tree, data, shift)`` is the largest coefficient the
    parameters ``tree`` stand for (``shift=False``: the largest change a step ``tree`` makes), in the
    user's units, for the stopping rule; default: the largest entry of ``tree``.  ``factory`` must be a
    module-level function and ``args`` hashable, so compiled loops are cached per model.

    ``small_level`` is LLVM's optimization level for the loop of small data (at most QUICK_COMPILE_SIZE
    numbers), where compiling dominates a first call: 0 compiles fastest; 1 compiles ~1.5x longer and runs the
    toys' loops 1.2-2.2x faster (1000 steps of the 2-channel seed toy: 0.25 ms instead of 0.55 ms), but rounds
    float32 differently.
    """

    factory: Callable
    args: tuple
    stochastic: bool = False
    small_level: int = 0


class LoopState(NamedTuple):
    """Everything the loop carries; every field but ``step`` has a leading restart axis."""

    params: Any
    best_params: Any  # the iterate with the lowest loss (returned, unless minibatches make losses noisy)
    opt_state: Any
    lr_scale: jax.Array
    best: jax.Array  # lowest loss so far
    prev_best: jax.Array  # lowest loss at the end of the previous block
    path: jax.Array  # summed per-step movement in the current block
    n_steps: jax.Array
    active: jax.Array
    converged: jax.Array
    history: jax.Array  # (restarts, blocks * CHECK_EVERY)
    step: jax.Array  # blocks done (shared)


@functools.lru_cache(maxsize=1)
def _default_optimizer() -> optax.GradientTransformation:
    # Adam's direction; the learning rate and its plateau schedule are applied in the loop.
    return optax.scale_by_adam()


def _leaf_max(tree: Any) -> jax.Array:
    return functools.reduce(jnp.maximum, [jnp.max(jnp.abs(leaf)) for leaf in jax.tree_util.tree_leaves(tree)])


@functools.lru_cache(maxsize=64)
def compiled_loop(
    model: Model, optimizer: optax.GradientTransformation | None, steps: int, quick_compile: bool = False
) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """``(start, resume)``, jitted: ``start(params0, data, hyper, stop)`` builds the state and runs whole
    blocks of CHECK_EVERY steps until step ``stop``; ``resume(state, data, hyper, stop)`` goes on.  Both
    return ``(state, full_losses)``."""
    batch_loss, full_loss, *measure = model.factory(*model.args)
    size = measure[0] if measure else (lambda tree, data, shift: _leaf_max(tree))
    opt = _default_optimizer() if optimizer is None else optimizer
    n_blocks = -(-steps // CHECK_EVERY)
    lp = _Loop(batch_loss, full_loss, size, opt, optimizer is None, steps, n_blocks, model.stochastic)

    def loop(state: LoopState, data, hyper, stop):
        return _run_loop(lp, state, data, hyper, stop)

    def start(params0, data, hyper, stop):
        return _run_loop(lp, _initial_state(lp, params0), data, hyper, stop)

    # small problems: compile time dominates, so skip (some of) LLVM's costly optimizations (see Model.small_level)
    options = None
    if quick_compile:
        options = {"xla_backend_optimization_level": model.small_level}
        options.update((name, value) for name, value in SMALL_OPTIONS.items() if name not in _refused_options)
    return jax.jit(start, compiler_options=options), jax.jit(loop, compiler_options=options)


class _Loop(NamedTuple):
    """The static parts of one compiled loop, closed over by its jitted functions (never traced)."""

    batch_loss: Callable[..., Any]
    full_loss: Callable[..., Any]
    size: Callable[..., Any]
    opt: optax.GradientTransformation
    default: bool  # the default optimizer: the loop applies its learning rate and plateau schedule
    steps: int
    n_blocks: int
    stochastic: bool


def _initial_state(lp: _Loop, params0: Any) -> LoopState:
    restarts = jax.tree_util.tree_leaves(params0)[0].shape[0]
    dtype = jax.tree_util.tree_leaves(params0)[0].dtype
    return LoopState(
        params=params0,
        best_params=params0,
        opt_state=jax.vmap(lp.opt.init)(params0),
        lr_scale=jnp.ones(restarts, dtype),
        best=jnp.full(restarts, jnp.inf, dtype),
        prev_best=jnp.full(restarts, jnp.inf, dtype),
        path=jnp.zeros(restarts, dtype),
        n_steps=jnp.zeros(restarts, jnp.int32),
        active=jnp.ones(restarts, bool),
        converged=jnp.zeros(restarts, bool),
        history=jnp.full((restarts, lp.n_blocks * CHECK_EVERY), jnp.nan, dtype),
        step=jnp.zeros((), jnp.int32),
    )


def _run_loop(lp: _Loop, state: LoopState, data: Any, hyper: dict[str, Any], stop: Any) -> tuple[LoopState, Any]:
    """Whole blocks of steps, every restart side by side (``vmap``), in ``lax.while_loop`` until block
    ``ceil(stop / CHECK_EVERY)`` or until every restart stopped; returns the state and the kept iterates' losses."""
    base = jax.random.key(hyper["seed"]) if lp.stochastic else None
    run_block = functools.partial(_run_block, lp)

    def body(s: LoopState) -> LoopState:
        keys = None
        if base is not None:  # (lp.stochastic)
            keys = jax.random.split(jax.random.fold_in(base, s.step), s.active.shape[0])
        fields = (s.params, s.best_params, s.opt_state, s.lr_scale, s.best, s.path, s.n_steps, s.active)
        in_axes = (0, None if keys is None else 0, None, None)
        carry, losses = jax.vmap(run_block, in_axes=in_axes)(fields, keys, data, hyper)
        return _end_of_block(lp, s, carry, losses, data, hyper)

    stop_block = jnp.minimum(-(-stop // CHECK_EVERY), lp.n_blocks)
    state = jax.lax.while_loop(lambda s: (s.step < stop_block) & jnp.any(s.active), body, state)
    # after a minibatch step the loss is an estimate: keep the last iterate there
    kept = state.params if lp.stochastic else state.best_params
    return state, jax.vmap(lp.full_loss, in_axes=(0, None))(kept, data)


def _run_block(lp: _Loop, fields: tuple, key: Any, data: Any, hyper: dict[str, Any]) -> tuple[tuple, Any]:
    """CHECK_EVERY steps of one restart in ``lax.scan``: ``((params, best_params, opt_state, best, path, n_steps),
    losses)``.  Inactive restarts (converged, or past ``steps``) take zero steps; their optimizer state is unused."""
    params, best_params, opt_state, lr_scale, best, path, n_steps, active = fields

    def step(carry, i):
        params, best_params, opt_state, best, path, n_steps = carry
        go = active & (n_steps < lp.steps)
        sub = None if key is None else jax.random.fold_in(key, i)
        loss, grads = jax.value_and_grad(lp.batch_loss)(params, data, sub)
        lower = go & (loss < best)
        best_params = jax.tree_util.tree_map(lambda p, b: jnp.where(lower, p, b), params, best_params)
        updates, opt_state = lp.opt.update(grads, opt_state, params)
        gain = jnp.where(go, -hyper["learning_rate"] * lr_scale if lp.default else 1.0, 0.0)
        updates = jax.tree_util.tree_map(lambda u: gain * u, updates)
        params = optax.apply_updates(params, updates)
        best = jnp.where(go & jnp.isfinite(loss), jnp.minimum(best, loss), best)
        path = path + lp.size(updates, data, False)
        n_steps = n_steps + go.astype(n_steps.dtype)
        return (params, best_params, opt_state, best, path, n_steps), jnp.where(go, loss, jnp.nan)

    carry = (params, best_params, opt_state, best, path, n_steps)
    return jax.lax.scan(step, carry, n_steps + jnp.arange(CHECK_EVERY))


def _end_of_block(lp: _Loop, s: LoopState, carry: tuple, losses: Any, data: Any, hyper: dict[str, Any]) -> LoopState:
    """The state after a block of steps: the plateau schedule (default optimizer) and the stopping rule applied."""
    params, best_params, opt_state, best, path, n_steps = carry
    taken = n_steps - s.n_steps
    ran = s.active & (taken > 0)
    lr_scale = s.lr_scale
    if lp.default:
        lr_scale, opt_state = _plateau_schedule(lp, s, ran, best, losses, params, opt_state)
    floor = data["floor"] if "floor" in data else 1.0  # (a model of the caller's, e.g. a stack, may have none)
    scale = jnp.maximum(floor, jax.vmap(lambda p: lp.size(p, data, True))(params))
    done = ran & ((path / jnp.maximum(taken, 1) <= hyper["tol"] * scale) | (best <= 0))
    history = jax.lax.dynamic_update_slice(s.history, losses, (jnp.int32(0), s.step * CHECK_EVERY))
    return LoopState(
        params,
        best_params,
        opt_state,
        lr_scale,
        best,
        jnp.where(ran, best, s.prev_best),
        jnp.zeros_like(path),
        n_steps,
        s.active & ~done & (n_steps < lp.steps),
        s.converged | done,
        history,
        s.step + 1,
    )


def _plateau_schedule(
    lp: _Loop, s: LoopState, ran: Any, best: Any, losses: Any, params: Any, opt_state: Any
) -> tuple[Any, Any]:
    """``(lr_scale, opt_state)``: a block that oscillates (ends above its own best) or stalls (does not lower the
    best loss) takes smaller steps from now on, and Adam's moments restart so that its step is not damped by stale
    ones."""
    last = losses[:, -1]
    block_best = jnp.min(jnp.where(jnp.isnan(losses), jnp.inf, losses), axis=1)
    plateau = ~(best < s.prev_best) | (last > block_best)
    cut = ran & plateau
    lr_scale = jnp.where(cut, s.lr_scale * PLATEAU_FACTOR, s.lr_scale)
    fresh = jax.vmap(lp.opt.init)(params)
    opt_state = jax.tree_util.tree_map(
        lambda new, old: jnp.where(cut.reshape((-1,) + (1,) * (old.ndim - 1)), new, old), fresh, opt_state
    )
    return lr_scale, opt_state


def optimize(
    model: Model,
    params0: Any,
    data: dict[str, Any],
    *,
    optimizer: optax.GradientTransformation | None,
    learning_rate: float | None,
    steps: int,
    tol: float,
    seed: int,
    progress: bool,
) -> tuple[Any, np.ndarray, list[np.ndarray], np.ndarray, np.ndarray]:
    """Run the compiled loop from ``params0`` (numpy leaves with a leading restart axis).

    Returns numpy ``(params, final_losses, histories, n_steps, converged)``, per restart.  Call inside
    ``jax.enable_x64(True)`` for float64.
    """
    dtype = jax.tree_util.tree_leaves(params0)[0].dtype
    hyper = {
        "learning_rate": np.asarray(0.0 if learning_rate is None else learning_rate, dtype),
        "tol": np.asarray(tol, dtype),
        "seed": np.asarray(seed, np.uint32),
    }
    quick = sum(np.size(leaf) for leaf in jax.tree_util.tree_leaves(data)) <= QUICK_COMPILE_SIZE
    start, resume = compiled_loop(model, optimizer, steps, quick)
    if not progress:
        state, final = _start(start, (model, optimizer, steps, quick), params0, data, hyper, steps)
    else:
        from tqdm.auto import tqdm

        chunk = max(CHECK_EVERY, steps // 50)
        with tqdm(total=steps, unit="step", desc="adam") as bar:
            state, final = _start(start, (model, optimizer, steps, quick), params0, data, hyper, chunk)
            start, resume = compiled_loop(model, optimizer, steps, quick)
            while True:
                step = int(state.step) * CHECK_EVERY
                bar.update(min(step, steps) - bar.n)
                bar.set_postfix(loss=f"{float(np.nanmin(np.asarray(state.best))):.4g}")
                if step >= steps or not np.any(np.asarray(state.active)):
                    break
                state, final = resume(state, data, hyper, np.int32(min(step + chunk, steps)))
    params = jax.tree_util.tree_map(np.asarray, state.params if model.stochastic else state.best_params)
    n_steps = np.asarray(state.n_steps)
    history = np.asarray(state.history)
    histories = [history[r, : n_steps[r]].astype(np.float64) for r in range(len(n_steps))]
    return params, np.asarray(final), histories, n_steps, np.asarray(state.converged)


def _start(start: Callable[..., Any], key: tuple, params0: Any, data: Any, hyper: Any, stop: int) -> Any:
    """``start(params0, data, hyper, stop)``; if XLA refuses one of SMALL_OPTIONS (an XLA that dropped it), again
    without it."""
    while True:
        try:
            return start(params0, data, hyper, np.int32(stop))
        except jax.errors.JaxRuntimeError as exc:
            refused = [name for name in SMALL_OPTIONS if f"compile option: '{name}'" in str(exc)]
            if not refused or refused[0] in _refused_options:
                raise
            _refused_options.add(refused[0])
            compiled_loop.cache_clear()
            start = compiled_loop(*key)[0]


def end_message(converged: bool, n_steps: int, steps: int, tol: float) -> str:
    if converged:
        return f"converged: the mean step fell below tol={tol:g} (relative to the largest weight) after {n_steps} steps"
    return (
        f"stopped at the step limit (max_iter={steps}) before the tol={tol:g} criterion was met; "
        "increase `max_iter` or `tol`, or adjust `learning_rate`"
    )


def elementwise_loss(loss: str, delta: float, xp: Any = jnp) -> Callable[[Any], Any]:
    """The per-sample loss of a residual ``r`` (``xp``: jax.numpy, or numpy for the checks in float64)."""
    if loss == "mae":
        return xp.abs
    if loss == "mse":
        return xp.square
    return lambda r: xp.where(xp.abs(r) <= delta, 0.5 * r * r, delta * (xp.abs(r) - 0.5 * delta))


# ----------------------------------------------------------------------------------------------
# The canonical problem as a model
# ----------------------------------------------------------------------------------------------


def coefficient_size(u: jax.Array, data: dict[str, Any], shift: bool) -> jax.Array:
    """Largest ``|offset + C u|`` (``shift``), or ``|C u|`` (the change a step ``u`` makes): the stopping rule
    measures steps on the coefficients, since a whitened ``u`` of an ill-conditioned design moves them by up to
    ``s_max / s_min`` times as much."""
    coef = jnp.einsum("gpq,gqo->gpo", data["C"], u)
    return jnp.max(jnp.abs(coef + data["offset"] if shift else coef))


def _statistics_model(n_free: int, use_bias: bool) -> tuple[Callable[..., Any], ...]:
    """Squared loss from ``R`` (G, P, P), ``z`` (G, P, O), ``const`` (G, O) and the equation count."""

    def loss(coef, data):
        r = jnp.einsum("gpq,gqo->gpo", data["R"], coef) - data["z"]
        return (jnp.sum(r * r) + jnp.sum(data["const"])) / data["count"]

    return (lambda coef, data, key: loss(coef, data)), loss, coefficient_size


def _frames_model(
    n_free: int, use_bias: bool, loss: str, delta: float, batch_frames: int
) -> tuple[Callable[..., Any], ...]:
    """Loss on frames: ``X`` (G, F, D) times a block-Toeplitz matrix (``select`` (D, B, n_free)) against ``Y``.

    The parameters are ``u`` with coefficients ``P u`` (``P`` = ``data["P"]``, the preconditioner, applied to
    the frames' mean-free inputs; see :func:`frames_data`).
    """
    elementwise = elementwise_loss(loss, delta)

    def predict(u, p, x, select):
        coef = jnp.einsum("gpq,gqo->gpo", p, u)
        g, _, o = coef.shape
        d, b = select.shape[0], select.shape[1]
        # the block-Toeplitz matrix as a product with a 0/1 selection tensor: cheaper to compile than a gather
        toeplitz = jnp.einsum("dbp,gpo->gdbo", select, coef[:, :n_free]).reshape(g, d, b * o)
        pred = jnp.einsum("gfd,gdk->gfk", x, toeplitz)
        if use_bias:
            pred = pred + jnp.tile(coef[:, n_free], (1, b))[:, None, :]
        return pred

    def weighted(u, p, x, y, w, select):
        err = elementwise(y - predict(u, p, x, select)) * w
        return jnp.sum(err) / jnp.maximum(jnp.sum(w) * u.shape[0], 1.0)

    def full_loss(u, data):
        return weighted(u, data["P"], data["X"], data["Y"], data["W"], data["select"])

    def batch_loss(u, data, key):
        if not batch_frames:
            return full_loss(u, data)
        pick = jax.random.randint(key, (batch_frames,), 0, data["X"].shape[1])
        return weighted(u, data["P"], data["X"][:, pick], data["Y"][:, pick], data["W"][pick], data["select"])

    return batch_loss, full_loss, coefficient_size


def _design_model(loss: str, delta: float, batch_rows: int) -> tuple[Callable[..., Any], ...]:
    """Loss on the explicit, whitened design ``A P`` (G, N, P) against ``Y`` (G, N, O): small problems."""
    elementwise = elementwise_loss(loss, delta)

    def full_loss(u, data):  # the mean over the true equations: padded rows and columns are zeros (see bucket)
        return jnp.sum(elementwise(data["Y"] - jnp.einsum("gnp,gpo->gno", data["A"], u))) / data["count"]

    def batch_loss(u, data, key):
        if not batch_rows:
            return full_loss(u, data)
        pick = jax.random.randint(key, (batch_rows,), 0, data["A"].shape[1])
        return jnp.mean(elementwise(data["Y"][:, pick] - jnp.einsum("gnp,gpo->gno", data["A"][:, pick], u)))

    return batch_loss, full_loss, coefficient_size


class Parametrization(NamedTuple):
    """Coefficients ``offset + P u`` of the descent variables ``u``, per block (leading axis G).

    ``P`` (G, P, P) whitens, ``P_inv`` maps coefficients back (``u = P_inv (coef - offset)`` on the directions
    the data see).  ``offset`` (G, P, O) is the shortest shift that takes the outputs' mean out of the data:
    with the design's mean row ``a = A^T 1 / n``, ``offset = a (a^T coef) / |a|^2 = a mean(y) / |a|^2``, the
    projection of any exact answer on ``a``.  So ``y - A offset`` has mean zero, ``|coef - offset| <= |coef|``
    (float32 ``u`` loses no precision to the shift), and ``a`` lies in the design's row space (a rank-deficient
    design still gives the minimum-norm answer).  ``means`` (G, C) are the input means the frames subtract
    with a bias (see :func:`frames_data`).  ``floor`` is the size of a coefficient that explains the outputs'
    spread along the design's strongest direction (``|y - mean y| / s_max``): the stopping rule measures steps
    relative to the largest coefficient, but never to less than this, so it is free of the units of ``x``, ``y``.
    """

    P: np.ndarray
    P_inv: np.ndarray
    offset: np.ndarray
    means: np.ndarray
    floor: float = 1.0


def _measure(param: Parametrization, dtype: DTypeLike) -> dict[str, np.ndarray]:
    return {
        "C": np.asarray(param.P, dtype),
        "offset": np.asarray(param.offset, dtype),
        "floor": np.asarray(param.floor, dtype),
    }


def bucket(n: int) -> int:
    """``n`` rounded up to one of 8 sizes per octave (exact up to 8; at most 25% more): the shapes a compiled
    loop is made for, so that problems of nearby sizes share one compilation."""
    step = 1 << max(0, (n - 1).bit_length() - 3)
    return -(-n // step) * step


def zero_padded(a: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``a`` in the leading corner of zeros of ``shape``; ``a`` itself if it has that shape (``np.pad`` costs
    ~25 us even when it pads nothing, a tenth of a toy's whole descent)."""
    if a.shape == shape:
        return a
    out = np.zeros(shape, a.dtype)
    out[tuple(slice(0, n) for n in a.shape)] = a
    return out


def design_data(
    problem: CanonicalProblem, dtype: DTypeLike, param: Parametrization, padded: bool = False
) -> dict[str, np.ndarray]:
    """The whitened design ``A P`` and ``y - A offset``, formed in float64 and then cast; ``count`` equations.

    ``padded``: the equations and the coefficients padded with zeros to their :func:`bucket` (``A``, ``Y``,
    ``C``, ``offset``).  A zero row adds nothing to the loss, a zero column gets a zero gradient (its Adam step
    is zero, so its coefficient stays at the zero it starts from) and changes no coefficient, so the descent
    is the same as on the unpadded data, up to float32 rounding of the sums."""
    use_bias = problem.config.use_bias
    a, y = [], []
    for block, pm, off in zip(problem.blocks, param.P, param.offset):
        rows = explicit_design(block, use_bias)  # the design the spectrum was computed from (cached on the block)
        a.append(rows @ pm)
        y.append(np.concatenate(block.outputs) - rows @ off)
    data = {"A": np.stack(a), "Y": np.stack(y), "C": param.P, "offset": param.offset}
    g, n, p = data["A"].shape
    count = float(g * n * data["Y"].shape[2])
    if padded:
        extra_rows, extra_columns = bucket(n) - n, bucket(p) - p
        data["A"] = zero_padded(data["A"], (g, n + extra_rows, p + extra_columns))
        data["Y"] = zero_padded(data["Y"], (g, n + extra_rows, data["Y"].shape[2]))
        data["C"] = zero_padded(data["C"], (g, p + extra_columns, p + extra_columns))
        data["offset"] = zero_padded(data["offset"], (g, p + extra_columns, data["offset"].shape[2]))
    out = {name: np.asarray(value, dtype) for name, value in data.items()}
    return {**out, "floor": np.asarray(param.floor, dtype), "count": np.asarray(count, dtype)}


def frame_length(n_equations: int, out_per_block: int) -> int:
    """Frame length ``B``: ``B * out_channels`` near FRAME_COLUMNS, a power of two, at most ~``n_equations``."""
    target = max(1, -(-FRAME_COLUMNS // out_per_block))
    b = 1 << (target - 1).bit_length()
    cap = 1 << max(0, (n_equations - 1).bit_length())
    return max(1, min(b, cap))


def frames_data(problem: CanonicalProblem, b: int, dtype: DTypeLike, param: Parametrization) -> dict[str, np.ndarray]:
    """Cut every block's subsequences into frames of ``b`` outputs (zero-weighted padding at the ends).

    The frames hold ``x - means`` and ``y - A offset``: with a bias, ``sum_j (x_{t+j} - mu) w_j + b'`` equals
    ``sum_j x_{t+j} w_j + b`` for ``b' = b + sum_j mu w_j``, so the preconditioner applied to the frames is
    ``(I + e_b m^T) P`` (``m``: the mean of each free coefficient's channel), exactly, in float64.
    """
    block0 = problem.blocks[0]
    taps, c, o = block0.taps, block0.channels, len(block0.out_channels)
    n_free = block0.n_free
    width = b + taps - 1
    xs, ys, ws, ps = [], [], [], []
    for block, pm, off, mu in zip(problem.blocks, param.P, param.offset, param.means):
        bx, by, bw = [], [], []
        for x, y in zip(block.xs, block_residuals(block, problem.config.use_bias, off)):
            m = len(x) - taps + 1
            f = -(-m // b)
            xp = np.zeros(((f - 1) * b + width, c))
            xp[: len(x)] = x - mu
            bx.append(window_rows(xp, width, slice(None, None, b)))  # frame i: samples i b .. i b + width - 1
            yp = np.zeros((f * b, o))
            yp[:m] = y
            by.append(yp.reshape(f, b * o))
            wp = np.zeros((f * b, o))
            wp[:m] = 1.0
            bw.append(wp.reshape(f, b * o))
        xs.append(np.concatenate(bx))
        ys.append(np.concatenate(by))
        ws.append(np.concatenate(bw))
        centering = np.eye(len(pm))
        if problem.config.use_bias:
            centering[n_free, :n_free] = np.broadcast_to(mu, (taps, c)).ravel()[block.mask.ravel()]
        ps.append(centering @ pm)
    free = np.flatnonzero(block0.mask.ravel())  # canonical (tap, channel) position of each free coefficient
    select = np.zeros((width * c, b, n_free))
    for u in range(b):
        select[u * c + free, u, np.arange(n_free)] = 1.0  # output u sees input samples u .. u + taps - 1
    return {
        "X": np.asarray(np.stack(xs), dtype),
        "Y": np.asarray(np.stack(ys), dtype),
        "W": np.asarray(ws[0], dtype),
        "select": np.asarray(select, dtype),
        "P": np.asarray(np.stack(ps), dtype),
        **_measure(param, dtype),
    }


def _right_vectors(spec: BlockSpectrum) -> np.ndarray:
    """``V`` of the block's spectrum (:func:`block_spectrum` always computes it; only the report estimates)."""
    if spec.right_vectors is None:
        raise RuntimeError("the preconditioner needs the design's right singular vectors, not an estimate.")
    return spec.right_vectors


def preconditioners(problem: CanonicalProblem, whiten: bool) -> Parametrization:
    """The parametrization ``coef = offset + P u`` (see :class:`Parametrization`).

    Whitening takes ``P = V diag(c / s)`` from the design's spectrum ``A = U diag(s) V^T`` (cached on the
    block by :func:`~kernel_recovery.model.spectrum.block_spectrum`, the one the report reads) and the outputs'
    spread ``c = |y - mean y|`` (root mean square over output channels), so ``A P u = c U u``: the squared loss
    has the Hessian ``2 c^2 I / n`` in ``u``, every direction converges at the same rate, ``|u| <= 1`` at the
    least-squares answer, and the descent is the same whatever the units of ``x`` and ``y`` (scaling either
    scales the kernel and leaves ``u`` unchanged).  Directions the data do not see (at or below the spectrum's
    rank tolerance) are dropped, so rank-deficient data give a kernel without null-space components, like the
    minimum-norm least squares; an input that is all zeros sees none, and its kernel is zero.  Without
    whitening ``P = I`` and there is no offset (the descent is on the kernel, as Keras').
    """
    use_bias = problem.config.use_bias
    block0 = problem.blocks[0]
    g, p = len(problem.blocks), n_columns(block0, use_bias)
    ps = np.tile(np.eye(p), (g, 1, 1))
    inverses = ps.copy()
    offsets = np.zeros((g, p, len(block0.out_channels)))
    means = np.zeros((g, block0.channels))
    floors = []
    for i, block in enumerate(problem.blocks):
        spec = block_spectrum(block, use_bias)
        s, v = spec.singular_values, _right_vectors(spec)
        s_max = s.max(initial=0.0)
        spread = _output_spread(block, use_bias)
        if s_max > 0 and spread > 0:
            floors.append(spread / s_max)
        if not whiten:
            continue
        if s_max == 0:  # the data see no direction: the minimum-norm kernel is zero
            ps[i], inverses[i] = 0.0, 0.0
            continue
        c = spread if spread > 0 else s_max
        # directions the data do not see are frozen (zero columns), so the answer has no component there, as
        # the minimum-norm least-squares kernel; otherwise Adam's normalized steps would wander along them
        seen = s > spec.tolerance
        s = np.maximum(s, s_max / MAX_GAIN)
        ps[i] = v * np.where(seen, c / s, 0.0)
        inverses[i] = np.where(seen, s / c, 0.0)[:, None] * v.T
        if block.retains_rows:
            offsets[i], means[i] = _mean_offset(block, use_bias)
    return Parametrization(ps, inverses, offsets, means, max(floors, default=1.0))


def _output_spread(block: Block, use_bias: bool) -> float:
    """``|y - mean y|`` of the block's outputs, root mean square over its output channels; ``|y|`` where the
    outputs are constant up to rounding (their mean is then the whole signal), or when only statistics are kept."""
    if not block.retains_rows or not block.outputs:
        yty = block_statistics(block, use_bias).yty
        return 0.0 if yty is None else float(np.sqrt(np.mean(yty)))
    ys = np.concatenate(block.outputs)  # from the rows: the statistics (A'A) may not be needed otherwise
    whole = float(np.sqrt(np.mean(np.einsum("ij,ij->j", ys, ys))))
    spread = float(np.sqrt(((ys - ys.mean(axis=0)) ** 2).sum(axis=0).mean()))
    return spread if spread > SPREAD_RTOL * whole else whole


def _mean_offset(block: Block, use_bias: bool) -> tuple[np.ndarray, np.ndarray]:
    """The shortest coefficient shift that takes the outputs' mean out of the data, and the input means (bias)."""
    sums = sum((column_sums(x, block.taps) for x in block.xs), np.zeros(block.mask.shape))
    total = sums.ravel()[block.mask.ravel()]  # A^T 1
    means = np.zeros(block.channels)
    if use_bias:
        total = np.append(total, float(block.n_equations))
        means = np.concatenate(block.xs).mean(axis=0)
    norm = float(total @ total)
    offset = np.zeros((len(total), len(block.out_channels)))
    if norm > 0:
        offset = np.outer(total, sum(y.sum(axis=0) for y in block.outputs) / norm)
    return offset, means


def statistics_data(problem: CanonicalProblem, dtype: DTypeLike, param: Parametrization) -> dict[str, np.ndarray]:
    """``R``, ``z``, ``const`` with ``||A (offset + P u) - y||^2 = ||R u - z||^2 + const``, in float64 from the
    cached statistics and spectrum: ``R = diag(s) V^T P`` and ``z = diag(1/s) V^T A^T (y - A offset)`` on the
    directions above the rank tolerance."""
    use_bias = problem.config.use_bias
    rs, zs, consts = [], [], []
    for block, pm, off in zip(problem.blocks, param.P, param.offset):
        stats = block_statistics(block, use_bias)
        spec = block_spectrum(block, use_bias)
        s, v = spec.singular_values, _right_vectors(spec)
        keep = s > spec.tolerance
        rs.append(spec.coordinates @ pm)
        proj = v.T @ (stats.cross - stats.gram @ off)
        z = np.where(keep[:, None], proj / np.where(keep, s, 1.0)[:, None], 0.0)
        zs.append(z)
        consts.append(np.clip(rss_from_statistics(stats, off) - np.sum(z * z, axis=0), 0.0, None))
    count = problem.n_equations * problem.config.out_channels
    return {
        "R": np.asarray(np.stack(rs), dtype),
        "z": np.asarray(np.stack(zs), dtype),
        "const": np.asarray(np.stack(consts), dtype),
        "count": np.asarray(float(count), dtype),
        **_measure(param, dtype),
    }


def glorot_limit(kernel_size: int, fan_in_channels: int, fan_out_channels: int) -> float:
    """Keras' glorot_uniform bound for a conv kernel: ``sqrt(6 / (K * Cin + K * Cout))``."""
    return float(np.sqrt(6.0 / (kernel_size * (fan_in_channels + fan_out_channels))))


@functools.lru_cache(maxsize=32)
def glorot_draws(seed: int, limit: float, shape: tuple[int, ...]) -> np.ndarray:
    """``uniform(-limit, limit, shape)`` of the generator seeded with ``seed`` (read-only): the same for every fit
    of one seed and shape, so repeated fits do not seed a generator again (~12 us of a toy fit)."""
    draws = np.random.default_rng(seed).uniform(-limit, limit, size=shape)
    draws.flags.writeable = False
    return draws


def _initial_coefficients(
    problem: CanonicalProblem, init: str, restarts: int, seed: int, scale: float = 1.0
) -> np.ndarray:
    """``(restarts, G, P, O)`` starting points; restarts after the first add a glorot draw to zeros/lstsq.

    The glorot draws are multiplied by ``scale`` (whitened descent: the size of a typical coefficient, so that
    the start is the same whatever the units of ``x`` and ``y``)."""
    cfg = problem.config
    use_bias = cfg.use_bias
    block0 = problem.blocks[0]
    g, p, o, n_free = len(problem.blocks), n_columns(block0, use_bias), len(block0.out_channels), block0.n_free
    limit = glorot_limit(cfg.kernel_size, cfg.in_per_group, cfg.out_channels)
    draws = np.zeros((restarts, g, p, o))
    draws[:, :, :n_free] = scale * glorot_draws(seed, limit, (restarts, g, n_free, o))
    if init == "glorot_uniform":
        return draws
    base = np.zeros((g, p, o))
    if init == "lstsq":
        from .lstsq import solve as lstsq_solve

        sol = lstsq_solve(problem)
        for i, (block, k) in enumerate(zip(problem.blocks, sol.kernels)):
            base[i, :n_free] = k.reshape(block.taps * block.channels, o)[block.mask.ravel()]
            if use_bias and sol.biases is not None:
                base[i, n_free] = sol.biases[i]
    draws[0] = 0.0
    return base[None] + draws


#: IRLS sweeps of the robust references: at most this many (to convergence) on designs of at most
#: ``EXPLICIT_LIMIT`` entries ...
REFERENCE_SWEEPS = 200
#: ... and this many on larger ones.
REFERENCE_STEPS = 3


def robust_scale(problem: CanonicalProblem) -> float:
    """``1.4826 * MAD`` of the least-squares residual over every output (the unit of ``huber_delta``).

    At least ``1e-3`` of the outputs' rms: on (nearly) noiseless data every threshold has the same minimizer,
    and a vanishing one would leave gradient descent an absolute-value loss to crawl down.
    """
    ref = lstsq.solve(problem)
    r = np.concatenate([res.ravel() for res in residuals(problem, ref.kernels, ref.biases)])
    scale = 1.4826 * float(np.median(np.abs(r - np.median(r)))) if r.size else 0.0
    ys = [y for b in problem.blocks for y in b.outputs if y.size]
    y_rms = float(np.sqrt(sum(float(np.sum(y**2)) for y in ys) / max(sum(y.size for y in ys), 1)))
    return max(scale, 1e-3 * y_rms, 1e-300)


def _reference(
    problem: CanonicalProblem,
    kernels: list[np.ndarray],
    biases: list[np.ndarray] | None,
    loss: str,
    delta: float,
) -> tuple[list[np.ndarray], list[np.ndarray] | None, str]:
    """The reference minimum's ``(kernels, biases, what)``.

    Squared loss: least squares (``method="lstsq"``).  ``"mae"`` on designs of at most ``EXPLICIT_LIMIT``
    entries: the exact linear program of ``method="lstsq", loss="mae"``.  Otherwise IRLS with Adam's own
    threshold, started at Adam's answer (every sweep lowers the loss): to convergence on small designs, and
    ``REFERENCE_STEPS`` sweeps on larger ones, where a large drop still shows that Adam stopped short.
    """
    if loss == "mse":
        ref = lstsq.solve(problem)
        return ref.kernels, ref.biases, "the least-squares minimum"
    use_bias = problem.config.use_bias
    small = all(block.n_equations * n_columns(block, use_bias) <= EXPLICIT_LIMIT for block in problem.blocks)
    if loss == "mae" and small:
        ref = lstsq.solve(problem, loss="mae")
        return ref.kernels, ref.biases, "the least-absolute-deviations minimum (method='lstsq', loss='mae')"
    sweeps = REFERENCE_SWEEPS if small else REFERENCE_STEPS
    ref_k: list[np.ndarray] = []
    ref_b: list[np.ndarray] = []
    for i, block in enumerate(problem.blocks):
        coef = kernels[i].reshape(-1, kernels[i].shape[-1])[block.mask.ravel()]
        if use_bias and biases is not None:
            coef = np.concatenate([coef, biases[i][None]])
        y = np.concatenate(block.outputs)
        for o in range(coef.shape[1]):
            coef[:, o] = lstsq.irls(block, use_bias, y[:, o], coef[:, o], loss, delta, max_iter=sweeps)[0]
        k = np.zeros((block.taps * block.channels, coef.shape[1]))
        k[block.mask.ravel()] = coef[: block.n_free]
        ref_k.append(k.reshape(kernels[i].shape))
        if use_bias:
            ref_b.append(coef[block.n_free])
    name = "least-absolute-deviations" if loss == "mae" else "Huber"
    what = f"the {name} minimum (IRLS from Adam's answer)" if small else f"the {name} loss after {sweeps} IRLS steps"
    return ref_k, ref_b if use_bias else None, what


def _check_minimum(
    problem: CanonicalProblem,
    kernels: list[np.ndarray],
    biases: list[np.ndarray] | None,
    message: str,
    loss: str = "mse",
    delta: float = 1.0,
) -> tuple[bool, str]:
    """Adam's steps and ``tol`` are absolute, so data of an unusual scale (e.g. ``y ~ 1e-6``) can stall it far
    from the minimum while its steps look converged: compare its loss with a reference minimum (see
    :func:`_reference`) before claiming it.  Success: within ``MINIMUM_RTOL`` of the reference, or below the
    loss of residuals ``MINIMUM_FLOOR`` times the outputs (for the squared loss: ``1e-10 y'y``).

    A loss cannot tell how far the coefficients are along directions the data barely see (e.g. a bias traded
    against the kernel's sum when ``x`` has a large mean): there the accuracy comes from the parametrization
    and the stopping rule measured on the coefficients (see :func:`preconditioners`).
    """
    rho = elementwise_loss(loss, delta, np)

    def total(ks: list[np.ndarray], bs: list[np.ndarray] | None) -> float:
        return sum(float(np.sum(rho(r))) for r in residuals(problem, ks, bs))

    value = total(kernels, biases)
    floor = sum(float(np.sum(rho(MINIMUM_FLOOR * y))) for block in problem.blocks for y in block.outputs)
    if value <= floor:  # every minimum is >= 0, so the test below passes whatever the reference: skip solving it
        return True, message
    ref_k, ref_b, what = _reference(problem, kernels, biases, loss, delta)
    minimum = min(total(ref_k, ref_b), value)
    if value <= minimum * (1 + MINIMUM_RTOL) + floor:
        return True, message
    measure = {"mse": "squared residual", "mae": "mean absolute residual", "huber": "Huber loss"}[loss]
    advice = "rescale x and y to unit scale, or raise steps / lower tol"
    if loss != "mse":
        advice += f"; method='lstsq' with loss={loss!r} solves it directly"
    return False, (
        f"{message}, but at a {measure} {value / max(minimum, 1e-300):.3g} times {what} "
        f"(Adam's step sizes are absolute: {advice})"
    )


def solve(
    problem: CanonicalProblem,
    *,
    loss: Literal["mae", "mse", "huber"] = "mse",
    learning_rate: float | None = None,
    max_iter: int = 2000,
    tol: float = 1e-6,
    seed: int = 0,
    init: Literal["glorot_uniform", "zeros", "lstsq"] = "glorot_uniform",
    optimizer: optax.GradientTransformation | None = None,
    batch_size: int | None = None,
    restarts: int = 1,
    dtype: str = "float32",
    huber_delta: float | None = None,
    precondition: bool = True,
    progress: bool = False,
) -> Solution:
    """Gradient descent with Adam (optax) on the canonical problem, compiled end to end.

    Options
    -------
    loss : {"mse", "mae", "huber"}
        Mean squared error, mean absolute error (the tutorials' choice; robust to outliers) or Huber
        with threshold ``huber_delta``, averaged over every output sample and channel.
    learning_rate : float, default 0.05 (0.001 with ``init="lstsq"``)
        Initial step of the default optimizer (Adam).  The schedule halves it, and restarts Adam's
        moments, whenever a block of 25 steps oscillates (ends above its own lowest loss) or does not
        lower the best loss.  Not allowed with ``optimizer=``, which carries its own.
    max_iter : int
        The most steps taken (the iteration cap, as for every method; reaching it is not a success).
    tol : float
        Stop when the mean step over a block (the largest coefficient change per step, bias included,
        whatever the coordinates descended in) is at most ``tol * max(1, largest |coefficient|)``;
        ``tol=0`` runs every step.  A stop is reported as a success only if the loss is also at the
        minimum: within 1% of a reference (least squares; for ``"mae"``/``"huber"`` the exact LP or IRLS,
        see ``method="lstsq"``), or at most the loss of residuals ``1e-5 y``.
    seed : int
        Seeds the initial kernel and the minibatch draws.
    init : {"glorot_uniform", "zeros", "lstsq"}
        Keras' glorot-uniform kernel (zero bias), zeros, or the least-squares solution (a good start
        for ``loss="mae"``).  With ``precondition=True`` the first two start from the shift that explains the
        outputs' mean, and the glorot draw is in units of a typical coefficient (``|y - mean y| / s_max``), so
        the descent does not depend on the units of ``x`` and ``y``.
    optimizer : optax.GradientTransformation, optional
        Replaces Adam and its schedule; its updates are applied as they are.
    batch_size : int, optional
        Output samples per step (rounded to whole frames, drawn with replacement); default: all.  The
        minibatch losses are noisy, so the default schedule then decays the rate about every block.
    restarts : int
        Independent starts run side by side (vectorized); the one with the lowest final loss is kept.
    dtype : {"float32", "float64"}
        Working precision; float64 is enabled inside this call only.
    huber_delta : float, optional
        Threshold of the Huber loss in units of a robust noise scale (``1.4826 * MAD`` of the least-squares
        residual, pooled over the output channels, at least 1e-3 of the outputs' rms), the meaning it has for
        every method; None means 1.345.
        The threshold in the outputs' units is in ``diagnostics["huber_threshold"]``.
    precondition : bool
        Descend in whitened coordinates ``u`` (coefficients ``offset + V diag(s_max / s) u`` from the
        design's singular values and vectors ``A^T A = V diag(s^2) V^T``; the offset takes the outputs'
        mean out of the data), so that every direction of an ill-conditioned design converges at the same
        rate and float32 data keep their precision under a DC offset; False descends on the kernel itself,
        as Keras does.
    progress : bool
        Show a tqdm bar, updated between compiled blocks of steps.
    """
    o = check_descent_options(
        loss=loss, learning_rate=learning_rate, max_iter=max_iter, tol=tol, seed=seed, init=init, optimizer=optimizer,
        restarts=restarts, dtype=dtype, huber_delta=huber_delta, precondition=precondition,
    )  # fmt: skip
    if batch_size is not None:
        batch_size = check_int(batch_size, "batch_size", 1)
    progress = check_bool(progress, "progress")
    settings = _Settings(
        o.loss,
        o.learning_rate,
        o.max_iter,
        o.tol,
        o.seed,
        o.init,
        o.optimizer,
        batch_size,
        o.restarts,
        o.dtype,
        o.huber_delta,
        o.precondition,
        progress,
    )
    return _descend_blocks(problem, settings)


class DescentOptions(NamedTuple):
    """The options every Adam descent takes (sequences and grids), judged (``huber_delta`` in robust scales)."""

    loss: Literal["mae", "mse", "huber"]
    learning_rate: float | None
    max_iter: int
    tol: float
    seed: int
    init: Literal["glorot_uniform", "zeros", "lstsq"]
    optimizer: optax.GradientTransformation | None
    restarts: int
    dtype: str
    huber_delta: float
    precondition: bool


def check_descent_options(
    *,
    loss: object,
    learning_rate: float | None,
    max_iter: object,
    tol: object,
    seed: object,
    init: object,
    optimizer: optax.GradientTransformation | None,
    restarts: object,
    dtype: str,
    huber_delta: object,
    precondition: object,
) -> DescentOptions:
    """The one place the descent options of ``method="adam"`` are judged, for sequences and grids alike."""
    loss_name = check_choice(loss, "loss", LOSSES)
    init_name = check_choice(init, "init", INITS)
    # from the least-squares answer the first steps should be small: Adam's first step has size ~learning_rate
    opt, rate = check_optimizer(optimizer, learning_rate, 1e-3 if init_name == "lstsq" else 5e-2)
    steps = check_int(max_iter, "max_iter", 1)
    tolerance = check_real(tol, "tol", low=0.0)
    start = check_int(seed, "seed", 0)
    starts = check_int(restarts, "restarts", 1)
    precision = check_dtype(dtype)
    relative_delta = HUBER_DELTA
    if huber_delta is not None:
        relative_delta = check_real(huber_delta, "huber_delta", low=0.0, low_open=True)
    if huber_delta is not None and loss_name != "huber":
        raise ValueError(f"`huber_delta` applies to loss='huber' only, got loss={loss_name!r}.")
    return DescentOptions(
        loss_name, rate, steps, tolerance, start, init_name, opt, starts, precision, relative_delta,
        check_bool(precondition, "precondition"),
    )  # fmt: skip


def _descend_blocks(problem: CanonicalProblem, s: _Settings) -> Solution:
    """:func:`_descend`, block by block where the blocks differ in shape.

    The compiled loop stacks the blocks, so they must have the same output channels and equations; with
    ``nan_policy="omit"`` they need not (a NaN of one group's input drops that group's equations only, and output
    channels missing different samples get blocks of their own).  Each block is then its own descent (the loss,
    its convergence test and the Huber threshold per block) and the solutions are joined: the kernels and biases
    in block order, success if every block succeeded, the loss history the equation-weighted mean of the blocks'
    (each held at its last value once it stopped)."""
    blocks = problem.blocks
    if len({(len(b.out_channels), b.n_equations) for b in blocks}) <= 1:
        return _descend(problem, s)
    parts = [_descend(dataclasses.replace(problem, blocks=[b]), s) for b in blocks]
    weights = np.array([b.n_equations * len(b.out_channels) for b in blocks], dtype=np.float64)
    losses = [np.zeros(1) if p.loss_history is None else np.asarray(p.loss_history) for p in parts]
    steps = max(len(h) for h in losses)
    histories = np.stack([np.pad(h, (0, steps - len(h)), mode="edge") for h in losses])
    failed = [p.message for p in parts if not p.success]
    diagnostics: dict[str, Any] = {"solver": [name for p in parts for name in p.diagnostics["solver"]]}
    for key in ("formulation", "final_loss", "restart", "restart_losses"):
        diagnostics[key] = [p.diagnostics[key] for p in parts]
    return Solution(
        kernels=[k for p in parts for k in p.kernels],
        biases=None if parts[0].biases is None else [b for p in parts for b in p.biases or []],
        success=not failed,
        message=failed[0] if failed else parts[0].message,
        n_iterations=max(int(p.n_iterations or 0) for p in parts),
        loss_history=weights @ histories / max(weights.sum(), 1.0),
        options=parts[0].options,
        diagnostics=diagnostics,
    )


class _Settings(NamedTuple):
    """The options of :func:`solve`, validated (``huber_delta`` in units of the robust scale, default applied)."""

    loss: Loss
    learning_rate: float | None
    max_iter: int
    tol: float
    seed: int
    init: Init
    optimizer: optax.GradientTransformation | None
    batch_size: int | None
    restarts: int
    dtype: str
    huber_delta: float
    precondition: bool
    progress: bool

    def recorded(self) -> dict[str, Any]:
        """``Solution.options``: the default optimizer is named "adam"; ``huber_delta`` only with the Huber loss."""
        options = self._asdict()
        options["optimizer"] = "adam" if self.optimizer is None else self.optimizer
        options["huber_delta"] = self.huber_delta if self.loss == "huber" else None
        return options

    def loop_options(self) -> dict[str, Any]:
        """The keyword arguments of :func:`optimize`."""
        names = ("optimizer", "learning_rate", "tol", "seed", "progress")
        return {"steps": self.max_iter, **{name: getattr(self, name) for name in names}}


def _initial_u(problem: CanonicalProblem, s: _Settings, param: Parametrization) -> np.ndarray:
    """The starting ``u`` of every restart.  Whitened, a zero or glorot start is taken from the offset (the mean
    of the outputs already explained, so the start is as far from the answer as the outputs' spread, whatever
    their mean) with draws in units of a typical coefficient; a least-squares start is that kernel exactly."""
    scale = param.floor if s.precondition else 1.0
    coef0 = _initial_coefficients(problem, s.init, s.restarts, s.seed, scale)
    shift = param.offset if (s.init == "lstsq" or not s.precondition) else 0.0
    return np.einsum("gpq,rgqo->rgpo", param.P_inv, coef0 - shift)


def _descend(problem: CanonicalProblem, s: _Settings) -> Solution:
    """The body of :func:`solve`: start, parametrize, formulate, run the compiled loop, check the minimum."""
    check_gram_memory(problem.config, len(problem.blocks))  # the preconditioner's eigendecomposition needs the Gram
    diagnostics: dict[str, Any] = {}
    delta = 1.0
    if s.loss == "huber":  # the threshold in the outputs' units: huber_delta x a robust scale of the lstsq residual
        delta = s.huber_delta * robust_scale(problem)
        diagnostics["huber_threshold"] = delta
    # small eigendecompositions right after JAX work stall on OpenBLAS threads (shared cores): run them serially
    with SerialBLAS(), jax.enable_x64(s.dtype == "float64"):
        if _uses_statistics(problem, s):  # one pass for A'A and A'Y together; the spectrum then reads this Gram
            for block in problem.blocks:
                block_statistics(block, problem.config.use_bias)
        param = preconditioners(problem, s.precondition)
        u0 = _initial_u(problem, s, param)
        model, data = _formulation(problem, s, param, delta, diagnostics)
        if "A" in data:  # the design's coefficients padded to their bucket: start the padding at zero
            u0 = zero_padded(u0, (*u0.shape[:2], data["A"].shape[2], u0.shape[3]))
        diagnostics["solver"] = [f"gradient_{diagnostics['formulation']}"] * len(problem.blocks)
        params, final, histories, n_steps, converged = optimize(model, u0.astype(s.dtype), data, **s.loop_options())
    final = np.where(np.isfinite(final), final, np.inf)
    best = int(np.argmin(final))
    kernels, biases = _unpack(problem, param, params[best])
    diagnostics.update(final_loss=float(final[best]), restart=best, restart_losses=final.astype(float).tolist())
    success, message = bool(converged[best]), end_message(bool(converged[best]), int(n_steps[best]), s.max_iter, s.tol)
    if success:
        success, message = _check_minimum(problem, kernels, biases, message, s.loss, delta)
    return Solution(
        kernels=kernels,
        biases=biases,
        success=success,
        message=message,
        n_iterations=int(n_steps[best]),
        loss_history=histories[best],
        options=s.recorded(),
        diagnostics=diagnostics,
    )


def _uses_statistics(problem: CanonicalProblem, s: _Settings) -> bool:
    """Whether the squared loss runs on the statistics (full batch): every step ``O(P^2)``."""
    return s.loss == "mse" and (s.batch_size is None or s.batch_size >= problem.blocks[0].n_equations)


def _formulation(
    problem: CanonicalProblem, s: _Settings, param: Parametrization, delta: float, diagnostics: dict[str, Any]
) -> tuple[Model, dict[str, Any]]:
    """``(model, data)`` of the statistics, design or frames formulation (see the module docstring); records which
    (and its batch sizes) in ``diagnostics``."""
    block0 = problem.blocks[0]
    use_bias, n_free, o = problem.config.use_bias, block0.n_free, len(block0.out_channels)
    n_eq, batch_size = block0.n_equations, s.batch_size
    if _uses_statistics(problem, s):
        diagnostics["formulation"] = "statistics"
        # level 0: its iterates are the saved ones (tests/golden; level 1 rounds float32 differently), and level 1
        # gains little here (toys: ~0.2 ms of 1.3 ms warm) for ~1.5x the compile time
        return Model(_statistics_model, (n_free, use_bias)), statistics_data(problem, s.dtype, param)
    if n_eq * n_columns(block0, use_bias) * len(problem.blocks) <= DESIGN_LIMIT:
        batch_rows = 0 if batch_size is None or batch_size >= n_eq else batch_size
        data = design_data(problem, s.dtype, param, padded=not batch_rows)  # minibatches draw from the true rows
        diagnostics.update(formulation="design", batch_rows=batch_rows)
        return Model(_design_model, (s.loss, delta, batch_rows), batch_rows > 0, SMALL_LEVEL), data
    b = frame_length(n_eq, o)
    data = frames_data(problem, b, s.dtype, param)
    frames = int(data["X"].shape[1])
    batch_frames = 0 if batch_size is None else -(-batch_size // b)
    batch_frames = 0 if batch_frames >= frames else batch_frames
    if not batch_frames:  # zero-weighted frames up to the bucket (minibatches draw from the true frames)
        f = bucket(frames)
        x, y, w = data["X"], data["Y"], data["W"]
        data.update(
            X=zero_padded(x, (x.shape[0], f, x.shape[2])),
            Y=zero_padded(y, (y.shape[0], f, y.shape[2])),
            W=zero_padded(w, (f, w.shape[1])),
        )
    diagnostics.update(formulation="frames", frame_length=b, frames=frames, batch_frames=batch_frames)
    return Model(_frames_model, (n_free, use_bias, s.loss, delta, batch_frames), batch_frames > 0, SMALL_LEVEL), data


def _unpack(
    problem: CanonicalProblem, param: Parametrization, u: np.ndarray
) -> tuple[list[np.ndarray], list[np.ndarray] | None]:
    """The kernels and biases (None without a bias) of the descent variables ``u`` (G, P, O)."""
    use_bias = problem.config.use_bias
    block0 = problem.blocks[0]
    n_free, o = block0.n_free, len(block0.out_channels)
    u = u[:, : param.P.shape[2]]  # without the padding (see design_data)
    coef = param.offset + np.einsum("gpq,gqo->gpo", param.P, u.astype(np.float64))
    kernels, biases = [], []
    for i, block in enumerate(problem.blocks):
        k = np.zeros((block.taps * block.channels, o))
        k[block.mask.ravel()] = coef[i, :n_free]
        kernels.append(k.reshape(block.taps, block.channels, o))
        if use_bias:
            biases.append(coef[i, n_free].copy())
    return kernels, biases if use_bias else None
