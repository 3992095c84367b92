"""``recover_stack``: fit a stack of Conv1D layers, with optional activations between them, by gradient descent.

A stack is what least squares cannot fit: its outputs are products of the layers' kernels (and, with an
activation, nonlinear in them).  The fit reuses the compiled Adam loop of ``method="adam"``
(:mod:`kernel_recovery.solvers.gradient`); JAX is imported only when ``recover_stack`` is called.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import ArrayLike

from .api import analyze, recover_kernel
from .diagnostics.determinacy import DeterminacyReport
from .model.arrays import SequenceBatch, as_sequences, restore_form
from .model.config import ConvConfig, Layout, check_layout
from .model.conv import conv1d
from .model.validation import check_choice, check_int, check_real

if TYPE_CHECKING:  # (JAX and optax are imported when a stack is fitted)
    import jax
    import optax

#: The activations between layers (or None: a linear stack).
ACTIVATIONS = ("relu", "tanh")
#: The settings of a layer, in the order of its checked dict.
LAYER_KEYS = ("kernel_size", "out_channels", "stride", "padding", "dilation", "use_bias")


@dataclass(frozen=True, eq=False)
class StackResult:
    """A fitted stack of Conv1D layers.

    Attributes
    ----------
    kernels : list of ndarray
        Per layer, ``(kernel_size, in_channels, out_channels)`` (the Keras layout).
    biases : list of (ndarray or None)
        Per layer, ``(out_channels,)``, or None for a layer without bias.
    composite_kernel : ndarray or None
        For a linear stack (no activation) of valid, stride-1, undilated layers: the single kernel
        ``(sum(kernel_size - 1) + 1, in_channels, out_channels)`` the stack is equivalent to.  Unlike the
        per-layer kernels it is identifiable: compare it with ``recover_kernel`` on the same data.
    composite_bias : ndarray or None
        The composite's bias ``(out_channels,)`` when some layer has a bias.
    report : DeterminacyReport or None
        What the data determine about the composite kernel (``analyze`` on the composite problem).
    identifiability : str
        In plain words, what the data can and cannot tell about the layers.
    layers : list of dict
        The layer settings, defaults filled in.
    activation : str or None
    residual_rms : float
        Root mean square of ``y - predict(x)``.
    success, message, n_iterations, loss_history, options, diagnostics
        As in :class:`~kernel_recovery.KernelResult` with ``method="adam"``.
    """

    kernels: list[np.ndarray]
    biases: list[np.ndarray | None]
    composite_kernel: np.ndarray | None
    composite_bias: np.ndarray | None
    report: DeterminacyReport | None
    identifiability: str
    layers: list[dict[str, Any]]
    activation: str | None
    layout: str
    residual_rms: float
    success: bool
    message: str
    n_iterations: int
    loss_history: np.ndarray
    options: dict[str, Any] = field(default_factory=dict)
    diagnostics: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:  # the kernels, loss history and restart losses are arrays: shapes and numbers only
        sizes = tuple(int(k.shape[0]) for k in self.kernels)
        shown = str(sizes) if len(sizes) <= 6 else f"({', '.join(map(str, sizes[:6]))}, ...)"
        comp = "none" if self.composite_kernel is None else str(tuple(self.composite_kernel.shape))
        return (
            f"StackResult(layers={len(self.kernels)}, kernel_sizes={shown}, activation={self.activation!r}, "
            f"composite_kernel={comp}, residual_rms={self.residual_rms:.4g}, success={self.success}, "
            f"n_iterations={self.n_iterations})"
        )

    def predict(self, x: ArrayLike) -> np.ndarray | list[np.ndarray]:
        """The stack's output for ``x`` (NumPy, float64), in the form and layout of ``x``."""
        xb = as_sequences(x, "x", self.layout)
        outs = [_numpy_forward(a, self.kernels, self.biases, self.layers, self.activation) for a in xb.arrays]
        return restore_form(outs, xb.form, self.layout, np.result_type(xb.dtype, np.float32))


def _activate(z: Any, activation: str | None, xp: Any) -> Any:
    if activation == "relu":
        return xp.maximum(z, 0.0)
    if activation == "tanh":
        return xp.tanh(z)
    return z


def _numpy_forward(
    x: np.ndarray,
    kernels: Sequence[np.ndarray],
    biases: Sequence[np.ndarray | None],
    layers: Sequence[Mapping[str, Any]],
    activation: str | None,
) -> np.ndarray:
    z = x
    for i, (w, b, layer) in enumerate(zip(kernels, biases, layers)):
        out = conv1d(z, w, b, stride=layer["stride"], padding=layer["padding"], dilation=layer["dilation"])
        z = np.asarray(out, dtype=np.float64).reshape(len(out), -1)
        if i < len(layers) - 1:
            z = _activate(z, activation, np)
    return z


def _check_layers(layers: object, in_channels: int) -> tuple[list[dict[str, Any]], list[ConvConfig]]:
    if isinstance(layers, Mapping) or not isinstance(layers, Sequence) or not len(layers):
        raise TypeError(
            "`layers` must be a non-empty list of dicts such as [dict(kernel_size=5, out_channels=4), ...], "
            f"got {layers!r}."
        )
    out, configs = [], []
    channels = in_channels
    for i, layer in enumerate(layers):
        if not isinstance(layer, Mapping):
            raise TypeError(f"`layers[{i}]` must be a dict with kernel_size and out_channels, got {layer!r}.")
        if "filters" in layer:
            raise ValueError(
                f"`layers[{i}]` has key 'filters': a layer's number of output channels is `out_channels`, as "
                "everywhere in kernel_recovery (Keras calls it filters), e.g. dict(kernel_size=5, out_channels=4)."
            )
        unknown = [k for k in layer if k not in LAYER_KEYS]
        if unknown:
            raise ValueError(f"`layers[{i}]` has unknown key {unknown[0]!r}; the keys are {', '.join(LAYER_KEYS)}.")
        for key in ("kernel_size", "out_channels"):
            if key not in layer:
                raise ValueError(f"`layers[{i}]` needs {key!r}, got {dict(layer)!r}.")
        n_out = check_int(layer["out_channels"], f"layers[{i}]['out_channels']")
        try:
            cfg = ConvConfig.create(
                layer["kernel_size"],
                channels,
                n_out,
                stride=layer.get("stride", 1),
                padding=layer.get("padding", "valid"),
                dilation=layer.get("dilation", 1),
                use_bias=layer.get("use_bias", False),
            )
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"in `layers[{i}]`: {exc}") from None
        out.append(dict(zip(LAYER_KEYS, (cfg.kernel_size, n_out, cfg.stride, cfg.padding, cfg.dilation, cfg.use_bias))))
        configs.append(cfg)
        channels = n_out
    return out, configs


def _stack_model(
    layers: tuple, activation: str | None, loss: str, delta: float, groups: tuple
) -> tuple[Callable[[Any, Any, Any], Any], Callable[[Any, Any], Any]]:
    """All layers' weights in one flat vector (one Adam update for the whole stack).

    ``layers``: per layer ``(kernel_shape, use_bias, stride, dilation)``; ``groups``: per stack of
    equal-length sequences, the (left, right) padding of each layer.
    """
    import jax.numpy as jnp

    from .solvers.gradient import elementwise_loss

    elementwise = elementwise_loss(loss, delta)

    def unflatten(flat):
        out, at = [], 0
        for shape, use_bias, _, _ in layers:
            size = int(np.prod(shape))
            w = flat[at : at + size].reshape(shape)
            at += size
            b = None
            if use_bias:
                b = flat[at : at + shape[2]]
                at += shape[2]
            out.append((w, b))
        return out

    def forward(params, z, pads):
        for i, ((w, b), (_, _, stride, dilation), pad) in enumerate(zip(params, layers, pads)):
            # im2col by strided slices and one product: faster than lax.conv on CPU, also under vmap
            z = jnp.pad(z, ((0, 0), pad, (0, 0)))
            taps = w.shape[0]
            m = (z.shape[1] - (taps - 1) * dilation - 1) // stride + 1
            patches = jnp.stack(
                [z[:, j * dilation : j * dilation + (m - 1) * stride + 1 : stride] for j in range(taps)], axis=2
            )
            z = jnp.einsum("bmkc,kcf->bmf", patches, w)
            if b is not None:
                z = z + b
            if i < len(layers) - 1:
                z = _activate(z, activation, jnp)
        return z

    def full_loss(flat, data):
        params = unflatten(flat)
        total: jax.Array | float = 0.0
        for (x, y), pads in zip(data["pairs"], groups):
            total = total + jnp.sum(elementwise(y - forward(params, x, pads)))
        return total / data["count"]

    return (lambda flat, data, key: full_loss(flat, data)), full_loss


def composite(
    kernels: Sequence[np.ndarray], biases: Sequence[np.ndarray | None]
) -> tuple[np.ndarray, np.ndarray | None]:
    """The single kernel (and bias) of a linear stack of valid, stride-1, undilated layers.

    ``W[k, c, f] = sum_{j1 + j2 = k} sum_m W1[j1, c, m] W2[j2, m, f]``, applied layer after layer;
    the bias of layer ``i`` passes through the later layers as ``sum_{j, m} b[m] W[j, m, f]``.
    """
    w = kernels[0]
    b = None if biases[0] is None else biases[0]
    for w2, b2 in zip(kernels[1:], biases[1:]):
        out = np.zeros((w.shape[0] + w2.shape[0] - 1, w.shape[1], w2.shape[2]))
        for j in range(w2.shape[0]):
            out[j : j + w.shape[0]] += np.einsum("kcm,mf->kcf", w, w2[j])
        if b is not None:
            b = np.einsum("m,jmf->f", b, w2)
        if b2 is not None:
            b = b2 if b is None else b + b2
        w = out
    return w, b


def _identifiability(
    layers: list[dict[str, Any]], activation: str | None, has_composite: bool, composite_size: int | None
) -> str:
    hidden = [layer["out_channels"] for layer in layers[:-1]]
    if len(layers) == 1:
        return "A single layer is a linear least-squares problem: its kernel is identifiable when kr.analyze says so."
    if activation is None:
        text = (
            "The layers of a linear stack are identifiable only through their composite: between layers i and "
            f"i+1 (hidden widths {hidden}), any invertible matrix M can be absorbed as W_i -> W_i M, "
            "W_(i+1) -> M^-1 W_(i+1) (and b_i -> b_i M), which includes rescaling a layer by s and the next by "
            "1/s, so the per-layer kernels returned are one of infinitely many factorizations that give the same "
            "outputs and will differ from any 'true' ones."
        )
        if has_composite:
            text += (
                f" The composite kernel (length {composite_size}) is what the data determine; compare it with "
                "kr.recover_kernel on the same data, and see `report` for whether the data determine it."
            )
        else:
            text += (
                " (No composite kernel is returned: the stack is a single convolution only for valid, stride-1, "
                "undilated layers.)"
            )
        return text
    symmetry = (
        "a positive rescaling of each hidden channel (its incoming weights by a > 0, outgoing by 1/a)"
        if (activation == "relu")
        else "a sign flip of each hidden channel (tanh is odd: negate its incoming and outgoing weights)"
    )
    return (
        f"With {activation} between layers the loss is not convex and the layers are identifiable at best up to a "
        f"permutation of the hidden channels (widths {hidden}) and {symmetry}; "
        + ("hidden channels that are never active are not determined at all; " if activation == "relu" else "")
        + "different seeds or restarts can give different but equivalent layers, so compare outputs (predict), "
        "not kernels."
    )


def recover_stack(
    x: ArrayLike,
    y: ArrayLike,
    layers: Sequence[Mapping[str, Any]],
    *,
    activation: Literal["relu", "tanh"] | None = None,
    layout: Literal["nwc", "ncw"] = "nwc",
    loss: Literal["mse", "mae", "huber"] = "mse",
    learning_rate: float | None = None,
    max_iter: int = 3000,
    tol: float = 1e-6,
    seed: int = 0,
    restarts: int = 1,
    optimizer: optax.GradientTransformation | None = None,
    dtype: str = "float32",
    huber_delta: float | None = None,
    progress: bool = False,
) -> StackResult:
    """Fit a stack of Conv1D layers (Keras semantics) from inputs ``x`` and outputs ``y`` by gradient descent.

    Parameters
    ----------
    x, y : array_like or list of array_like
        Inputs and outputs of the whole stack, as in :func:`recover_kernel` (sequences of different lengths
        in a list are fitted together).
    layers : list of dict
        One dict per layer with ``kernel_size`` and ``out_channels`` (Keras' ``filters``) and optionally
        ``stride``, ``padding``, ``dilation`` (as in :func:`conv1d`) and ``use_bias`` (default False).  The
        last ``out_channels`` must be
        the number of channels of ``y``.
    activation : {None, "relu", "tanh"}
        Applied between layers (not after the last).
    layout : {"nwc", "ncw"}
        Channels-last (Keras) or channels-first (PyTorch) data.
    loss, learning_rate, max_iter, tol, seed, restarts, optimizer, dtype, huber_delta, progress
        As for ``recover_kernel(method="adam")`` (``huber_delta`` in units of a robust scale of ``y``,
        ``1.4826 * MAD`` of its deviations from the median: a stack has no least-squares residual); the
        layers start from Keras' glorot-uniform kernels (a stack started at zero has zero gradient).

    Returns
    -------
    StackResult
        Per-layer ``kernels`` and ``biases``, the ``composite_kernel`` of a linear stack, the ``report`` on
        the composite problem and an ``identifiability`` note.

    Raises
    ------
    ValueError, TypeError
        Bad layers (unknown keys, missing kernel_size or out_channels), an unknown activation, shapes of ``y``
        inconsistent with the stack, bad options.

    Notes
    -----
    Without activation the stack computes one convolution whose kernel is the layers' kernels convolved
    with each other (summed over hidden channels); only that composite is determined by the data (see
    ``identifiability``).  Least squares on the composite problem (``recover_kernel`` with
    ``kernel_size = sum(kernel_size_i - 1) + 1``) gives the same composite when the stack can represent it.

    Examples
    --------
    >>> import numpy as np
    >>> import kernel_recovery as kr
    >>> x = np.random.default_rng(0).standard_normal(64)
    >>> y = kr.conv1d(kr.conv1d(x, [1.0, 0.5]), [2.0, -1.0])
    >>> fit = kr.recover_stack(x, y, [dict(kernel_size=2, out_channels=1), dict(kernel_size=2, out_channels=1)])
    >>> fit.composite_kernel.ravel().round(3) + 0.0  # the layers differ, their composite is [2, 0, -0.5]
    array([ 2. ,  0. , -0.5])
    """
    from .solvers import gradient

    opts = _check_options(
        activation, layout, loss, learning_rate, max_iter, tol, seed, restarts, optimizer, dtype, huber_delta, progress
    )
    xb, yb, layers, configs = _read(x, y, layers, opts.layout)
    group_pads, pairs = _batches(xb.arrays, yb.arrays, configs, opts.dtype)
    static = tuple((cfg.kernel_shape, cfg.use_bias, cfg.stride, cfg.dilation) for cfg in configs)
    delta = _huber_delta(yb.arrays, opts.relative_delta) if opts.loss == "huber" else 1.0
    model = gradient.Model(_stack_model, (static, opts.activation, opts.loss, delta, tuple(group_pads)))
    params0 = _initial_params(configs, opts.restarts, opts.seed, opts.dtype)
    params, final, histories, n_steps, converged = _optimize(model, params0, pairs, opts)
    final = np.where(np.isfinite(final), final, np.inf)
    best = int(np.argmin(final))
    kernels, biases = _layer_weights(np.asarray(params[best], np.float64), configs)
    comp_w, comp_b, report, comp_size = _composite_fit(x, y, kernels, biases, layers, opts)
    residuals = [
        ya - _numpy_forward(xa, kernels, biases, layers, opts.activation) for xa, ya in zip(xb.arrays, yb.arrays)
    ]
    rss = float(sum(np.sum(r**2) for r in residuals))
    rms = float(np.sqrt(rss / sum(r.size for r in residuals)))
    ok = bool(converged[best]) and np.isfinite(rms)
    message = gradient.end_message(bool(converged[best]), int(n_steps[best]), opts.steps, opts.tol)
    if ok and comp_w is not None and opts.loss == "mse":
        ok, message = _check_composite_loss(x, y, rss, comp_size, comp_b is not None, opts, message)
    return StackResult(
        kernels=kernels,
        biases=biases,
        composite_kernel=comp_w,
        composite_bias=comp_b,
        report=report,
        identifiability=_identifiability(layers, opts.activation, comp_w is not None, comp_size),
        layers=layers,
        activation=opts.activation,
        layout=opts.layout,
        residual_rms=rms,
        success=ok,
        message=message,
        n_iterations=int(n_steps[best]),
        loss_history=histories[best],
        options=opts.to_dict(),
        diagnostics={"final_loss": float(final[best]), "restart": best, "restart_losses": final.tolist()},
    )


@dataclass(frozen=True)
class _StackOptions:
    """The checked options of :func:`recover_stack` (``steps`` is ``max_iter``)."""

    activation: str | None
    layout: Layout
    loss: str
    optimizer: optax.GradientTransformation | None
    learning_rate: float | None
    steps: int
    tol: float
    seed: int
    restarts: int
    relative_delta: float
    dtype: str
    progress: bool

    def to_dict(self) -> dict[str, Any]:
        """The ``options`` of the result."""
        return {
            "loss": self.loss,
            "learning_rate": self.learning_rate,
            "max_iter": self.steps,
            "tol": self.tol,
            "seed": self.seed,
            "restarts": self.restarts,
            "optimizer": "adam" if self.optimizer is None else self.optimizer,
            "dtype": self.dtype,
            "huber_delta": self.relative_delta if self.loss == "huber" else None,
            "progress": self.progress,
        }


def _check_options(
    activation: object,
    layout: object,
    loss: object,
    learning_rate: float | None,
    max_iter: object,
    tol: object,
    seed: object,
    restarts: object,
    optimizer: optax.GradientTransformation | None,
    dtype: str,
    huber_delta: object,
    progress: object,
) -> _StackOptions:
    from .solvers import gradient

    activation_name = None if activation is None else check_choice(activation, "activation", ACTIVATIONS)
    layout_name = check_layout(layout)
    loss_name = check_choice(loss, "loss", gradient.LOSSES)
    optimizer, learning_rate = gradient.check_optimizer(optimizer, learning_rate)
    steps = check_int(max_iter, "max_iter")
    tol = check_real(tol, "tol", low=0)
    restarts = check_int(restarts, "restarts")
    relative_delta = (
        gradient.HUBER_DELTA if huber_delta is None else check_real(huber_delta, "huber_delta", low=0, low_open=True)
    )
    if huber_delta is not None and loss_name != "huber":
        raise ValueError(f"`huber_delta` applies to loss='huber' only, got loss={loss_name!r}.")
    dtype = gradient.check_dtype(dtype)
    seed = check_int(seed, "seed", 0)
    return _StackOptions(
        activation=activation_name,
        layout=layout_name,
        loss=loss_name,
        optimizer=optimizer,
        learning_rate=learning_rate,
        steps=steps,
        tol=tol,
        seed=seed,
        restarts=restarts,
        relative_delta=relative_delta,
        dtype=dtype,
        progress=bool(progress),
    )


def _read(
    x: ArrayLike, y: ArrayLike, layers: object, layout: Layout
) -> tuple[SequenceBatch, SequenceBatch, list[dict[str, Any]], list[ConvConfig]]:
    """The sequences of ``x`` and ``y`` and the checked layers, ``y``'s channels those of the last layer."""
    xb = as_sequences(x, "x", layout)
    yb = as_sequences(y, "y", layout)
    checked, configs = _check_layers(layers, xb.channels)
    if len(xb.arrays) != len(yb.arrays):
        raise ValueError(
            f"`x` and `y` must hold the same number of sequences, got {len(xb.arrays)} and {len(yb.arrays)}."
        )
    if yb.channels != checked[-1]["out_channels"]:
        raise ValueError(
            f"`y` has {yb.channels} channels but the last layer has out_channels={checked[-1]['out_channels']}."
        )
    return xb, yb, checked, configs


def _batches(
    xs: Sequence[np.ndarray], ys: Sequence[np.ndarray], configs: Sequence[ConvConfig], dtype: str
) -> tuple[list[tuple[tuple[int, int], ...]], list[tuple[np.ndarray, np.ndarray]]]:
    """Sequences of equal length stacked together: per stack, each layer's (left, right) padding and ``(x, y)``."""
    by_length: dict[int, list[int]] = {}
    for i, (xa, ya) in enumerate(zip(xs, ys)):
        n = len(xa)
        for j, cfg in enumerate(configs):
            m = cfg.output_length(n)
            if m < 1:
                raise ValueError(
                    f"sequence {i} of `x` ({len(xa)} samples) is too short for layers[{j}] ({cfg.describe()})."
                )
            n = m
        if len(ya) != n:
            raise ValueError(f"`y` sequence {i} has {len(ya)} samples but the stack gives {n} for {len(xa)} inputs.")
        by_length.setdefault(len(xa), []).append(i)
    group_pads, pairs = [], []
    for length, idx in by_length.items():
        n, pads = length, []
        for cfg in configs:
            pads.append(cfg.pads(n))
            n = cfg.output_length(n)
        group_pads.append(tuple(pads))
        pairs.append((np.stack([xs[i] for i in idx]).astype(dtype), np.stack([ys[i] for i in idx]).astype(dtype)))
    return group_pads, pairs


def _initial_params(configs: Sequence[ConvConfig], restarts: int, seed: int, dtype: str) -> np.ndarray:
    """Keras' glorot-uniform kernels and zero biases, one flat row per restart."""
    from .solvers.gradient import glorot_limit

    rng = np.random.default_rng(seed)
    pieces = []
    for cfg in configs:
        limit = glorot_limit(cfg.kernel_size, cfg.in_channels, cfg.out_channels)
        pieces.append(rng.uniform(-limit, limit, size=(restarts, int(np.prod(cfg.kernel_shape)))))
        if cfg.use_bias:
            pieces.append(np.zeros((restarts, cfg.out_channels)))
    return np.concatenate(pieces, axis=1).astype(dtype)


def _huber_delta(ys: Sequence[np.ndarray], relative: float) -> float:
    """``relative`` in units of a robust scale of ``y``: ``1.4826 * MAD`` of its deviations from the median."""
    values = np.concatenate([a.ravel() for a in ys])
    scale = 1.4826 * float(np.median(np.abs(values - np.median(values))))
    return relative * max(scale, 1e-12 * float(np.max(np.abs(values))), 1e-300)


def _optimize(model: Any, params0: np.ndarray, pairs: list[tuple[np.ndarray, np.ndarray]], opts: _StackOptions):
    """The compiled Adam loop of ``method="adam"`` over every restart (in float64 when ``dtype`` says so)."""
    import jax

    from .solvers import gradient

    count = sum(p[1].size for p in pairs)
    with jax.enable_x64(opts.dtype == "float64"):
        data = {"pairs": pairs, "count": np.asarray(float(count), opts.dtype)}
        return gradient.optimize(
            model,
            params0,
            data,
            optimizer=opts.optimizer,
            learning_rate=opts.learning_rate,
            steps=opts.steps,
            tol=opts.tol,
            seed=opts.seed,
            progress=opts.progress,
        )


def _layer_weights(flat: np.ndarray, configs: Sequence[ConvConfig]) -> tuple[list[np.ndarray], list[np.ndarray | None]]:
    """Each layer's kernel and bias (None without) from the flat parameter vector."""
    kernels: list[np.ndarray] = []
    biases: list[np.ndarray | None] = []
    at = 0
    for cfg in configs:
        size = int(np.prod(cfg.kernel_shape))
        kernels.append(flat[at : at + size].reshape(cfg.kernel_shape))
        at += size
        biases.append(flat[at : at + cfg.out_channels] if cfg.use_bias else None)
        at += cfg.out_channels if cfg.use_bias else 0
    return kernels, biases


#: A converged linear stack whose squared residual exceeds the least-squares composite's by more than this share
#: (adam's documented limit for recover_kernel) did not find the least-squares answer.
COMPOSITE_LOSS_RTOL = 0.01


def _check_composite_loss(
    x: ArrayLike, y: ArrayLike, rss: float, size: int, use_bias: bool, opts: _StackOptions, message: str
) -> tuple[bool, str]:
    """``(success, message)`` of a converged linear stack of plain layers, judged against least squares.

    Such a stack is one convolution of ``size`` taps, so least squares on that problem bounds its squared
    residual from below.  A descent that stops well above the bound stopped at a saddle point or a local minimum
    (the composite is a product of the layers' polynomials; 9 of 400 random noiseless two-layer stacks stopped
    with 20% of y unexplained), or the layers cannot represent the least-squares composite: either way the fit is
    not the answer, and ``success`` is False.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the composite fit's own warnings are not the stack's
        ref = recover_kernel(x, y, size, use_bias=use_bias, layout=opts.layout)
    xs, ys = as_sequences(x, "x", opts.layout).arrays, as_sequences(y, "y", opts.layout).arrays
    fitted = [np.asarray(conv1d(xa, ref.kernel, ref.bias)).reshape(ya.shape) for xa, ya in zip(xs, ys)]
    ls = float(sum(np.sum((ya - fa) ** 2) for ya, fa in zip(ys, fitted)))
    scale = float(sum(np.sum(ya**2) for ya in ys))
    if rss <= (1.0 + COMPOSITE_LOSS_RTOL) * ls + 1e-10 * scale:
        return True, message
    return False, (
        f"{message}, but its squared residual is {rss / max(ls, 1e-300):.3g} times that of least squares on the "
        f"composite (recover_kernel(x, y, kernel_size={size}): residual_rms {ref.residual_rms:.3g}): the descent "
        "stopped at a saddle point or local minimum, or the layers cannot represent that kernel; try restarts=5 "
        "or another seed"
    )


def _composite_fit(
    x: ArrayLike,
    y: ArrayLike,
    kernels: list[np.ndarray],
    biases: list[np.ndarray | None],
    layers: list[dict[str, Any]],
    opts: _StackOptions,
) -> tuple[np.ndarray | None, np.ndarray | None, DeterminacyReport | None, int]:
    """The composite kernel and bias of a linear stack of plain layers, the report on it, and its length."""
    plain = all(layer["padding"] == "valid" and layer["stride"] == 1 and layer["dilation"] == 1 for layer in layers)
    comp_size = sum(layer["kernel_size"] - 1 for layer in layers) + 1
    if opts.activation is not None or not plain:
        return None, None, None, comp_size
    comp_w, comp_b = composite(kernels, biases)
    report = analyze(x, y, comp_size, use_bias=comp_b is not None, layout=opts.layout, warn=False)
    return comp_w, comp_b, report, comp_size
