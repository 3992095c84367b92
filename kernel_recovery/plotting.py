"""Pictures of a recovery: the kernel with confidence bands, residuals, the loss curve, the singular-value spectrum.

N-D kernels (Conv2D/Conv3D, image blurs) are drawn as images (:func:`plot_kernel_image`: 3-D kernels slice by
slice, complex ones as magnitude and phase); a complex 1-D kernel as its real and imaginary parts.

matplotlib is an optional dependency (``pip install "kernel_recovery[plot]"``), imported only when a
function here is called.  Every function draws into the axes (or figure) it is given, or a new figure, and
returns the :class:`matplotlib.figure.Figure`; save it with ``fig.savefig("kernel.png")``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, cast

import numpy as np
from numpy.typing import ArrayLike

from .model.arrays import as_sequences
from .model.config import Layout
from .model.grid import GridConfig, read_grid
from .model.validation import check_bool, check_choice, check_int, check_real

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .diagnostics.determinacy import DeterminacyReport
    from .diagnostics.frequency import FrequencyResponse
    from .model.result import KernelResult
    from .tracking import KernelTrack

__all__ = [
    "plot_bode",
    "plot_kernel",
    "plot_kernel_image",
    "plot_loss",
    "plot_residuals",
    "plot_result",
    "plot_spectrum",
    "plot_track",
]

#: z-value of a two-sided 95 % band under a normal approximation.
Z95 = 1.959963984540054
#: Beyond this many (input, output) channel pairs, plot_kernel shows the first ones and says so.
MAX_PANELS = 16
#: Residual traces longer than this are thinned for drawing (every k-th sample, stated in the title).
MAX_POINTS = 20_000
#: A 3-D kernel is drawn as at most this many slices along its first axis (evenly spaced, the title says which).
MAX_SLICES = 8


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError(
            "plotting needs matplotlib: pip install matplotlib (or pip install 'kernel_recovery[plot]')."
        ) from None
    return plt


def _axes(ax, figsize=(6.0, 3.6)):
    """``(figure, axes)``: the given axes, or a new figure with one axes."""
    if ax is not None:
        return ax.figure, ax
    fig, ax = _pyplot().subplots(figsize=figsize, layout="constrained")
    return fig, ax


def _true_kernel(true_kernel: ArrayLike, shape: tuple[int, ...]) -> np.ndarray:
    """The kernel that made the data, as floats of the recovered kernel's ``shape`` (1-D: one channel)."""
    truth = np.asarray(true_kernel)
    truth = truth.astype(np.complex128 if np.iscomplexobj(truth) else float)
    if truth.ndim == 1 and len(shape) == 3:
        truth = truth[:, None, None]
    if truth.shape != shape:
        raise ValueError(f"`true_kernel` must have the kernel's shape {shape}, got {truth.shape}.")
    return truth


def _panel_grid(c_in: int, c_out: int, max_panels: int) -> tuple[int, int, float, float]:
    """Columns and rows of the kernel's panels (one per channel pair, at most ``max_panels``), and their size."""
    cols = min(c_in, max_panels) if c_in > 1 else min(c_out, 4)
    rows = -(-min(c_in * c_out, max_panels) // cols)
    return cols, rows, min(3.3 * cols, 16.0), min(2.5 * rows + 0.6, 14.0)


def _check_result(result: object, name: str = "result") -> None:
    if not hasattr(result, "kernel") or not hasattr(result, "config"):
        raise TypeError(f"`{name}` must be a KernelResult (from recover_kernel), got {type(result).__name__}.")


def plot_kernel(
    result: KernelResult,
    true_kernel: ArrayLike | None = None,
    *,
    fig: Any = None,
    max_panels: int = MAX_PANELS,
    fs: float | None = None,
) -> Figure:
    """Plot the recovered kernel, one panel per (input channel, output channel), with 95 % bands.

    Parameters
    ----------
    result : KernelResult
        From :func:`kernel_recovery.recover_kernel`.  When ``result.stderr`` is set, a band of
        ``kernel +- 1.96 stderr`` is shaded.
    true_kernel : array_like, optional
        The kernel that made the data, ``(kernel_size, in_channels // groups, out_channels)`` (or 1-D for one
        channel), drawn for comparison.
    fig : Figure or SubFigure, optional
        Where to draw (a new figure by default).
    max_panels : int
        At most this many panels; further channel pairs are left out and the title says how many.
    fs : float, optional
        Sampling rate: the horizontal axis is then the physical lag in seconds.

    Returns
    -------
    matplotlib.figure.Figure
        ``fig`` (or a new figure), one axes per channel pair; the legend below the panels, off the data.

    Notes
    -----
    The horizontal axis is the kernel index ("tap") for a Conv1D-style fit, and the physical lag
    ``result.lags`` (``config.tap_lags()``: "lag (samples)") for a fit over ``lags=(first, last)`` or when
    ``fs`` is given ("lag (s)").

    Examples
    --------
    >>> import kernel_recovery as kr
    >>> from kernel_recovery.plotting import plot_kernel
    >>> res = kr.recover_kernel([0.0, 3.0, 4.0, 5.0, 1.0], [6.0, 11.0, 14.0, 7.0], kernel_size=2)
    >>> fig = plot_kernel(res, true_kernel=[1.0, 2.0])
    >>> len(fig.axes)
    1
    >>> import matplotlib.pyplot as plt; plt.close(fig)
    """
    _check_result(result)
    if isinstance(result.config, GridConfig) and result.config.ndim >= 2:
        if fs is not None:
            raise ValueError(
                f"`fs` (={fs!r}) applies to 1-D kernels (a lag axis); this kernel is {result.config.ndim}-D."
            )
        return plot_kernel_image(result, true_kernel, fig=fig, max_panels=max_panels)
    kernel = np.asarray(result.kernel)
    k_size, c_in, c_out = kernel.shape
    truth = None if true_kernel is None else _true_kernel(true_kernel, kernel.shape)
    # complex (circular noise): the real and imaginary parts each have std stderr / sqrt(2)
    is_complex = np.iscomplexobj(kernel)
    parts = (
        [("real", np.real, "C0", "-"), ("imaginary", np.imag, "C1", "--")] if is_complex else [("", np.real, "C0", "-")]
    )
    scale = 1 / np.sqrt(2) if is_complex else 1.0
    cfg = result.config
    taps, x_label = _kernel_axis(result, fs)
    pairs = [(c, o) for o in range(c_out) for c in range(c_in)]
    shown = pairs[:max_panels]
    cols, rows, width, height = _panel_grid(c_in, c_out, max_panels)
    if fig is None:
        fig = _pyplot().figure(figsize=(width, height), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols, sharex=True, squeeze=False)).ravel()
    marker = "o" if k_size <= 48 else None
    widest = Z95 * scale * float(np.max(result.stderr)) if result.stderr is not None and result.stderr.size else 0.0
    for ax, (c, o) in zip(axes, shown):
        group = o // cfg.out_per_group
        ax.axhline(0.0, color="0.75", lw=0.8)
        for name, part, color, ls in parts:
            k = part(kernel[:, c, o])
            suffix = f" ({name})" if name else ""
            if result.stderr is not None:
                band = Z95 * scale * np.asarray(result.stderr)[:, c, o]
                ax.fill_between(
                    taps,
                    k - band,
                    k + band,
                    color=color,
                    alpha=0.25,
                    lw=0,
                    label=f"95% band{suffix} (widest ±{widest:.2g})",
                )
            ax.plot(taps, k, color=color, marker=marker, ms=4, lw=1.5, ls=ls, label=f"recovered{suffix}")
            if truth is not None:
                ax.plot(
                    taps,
                    part(truth[:, c, o]),
                    color="C3" if not name or name == "real" else "C2",
                    marker="x" if marker else None,
                    ms=6,
                    lw=1.0,
                    ls=":" if is_complex else "--",
                    label=f"true{suffix}",
                )
        ax.set_title(f"in {group * c_in + c} -> out {o}", fontsize=9)
        ax.tick_params(labelsize=8)
    for ax in axes[len(shown) :]:
        ax.set_visible(False)
    from matplotlib.ticker import MaxNLocator

    for ax in axes[-cols:]:
        ax.set_xlabel(x_label, fontsize=9)
        if fs is None:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, loc="outside lower center", ncols=min(len(labels), 3))  # below the panels
    title = f"recovered kernel ({result.method}, {result.report.status})"
    if len(shown) < len(pairs):
        title += f": first {len(shown)} of {len(pairs)} channel pairs"
    fig.suptitle(title, fontsize=11)
    return fig


def _image_views(result: KernelResult, truth: np.ndarray | None) -> list[tuple[str, np.ndarray, str, float, float]]:
    """What :func:`plot_kernel_image` draws: ``(title, values (*k, C_g, O), colormap, vmin, vmax)`` per view."""
    kernel = np.asarray(result.kernel)
    views = []

    def symmetric(title: str, a: np.ndarray) -> None:
        top = float(np.nanmax(np.abs(a))) if a.size and np.any(np.isfinite(a)) else 1.0
        views.append((title, a, "RdBu_r", -(top or 1.0), top or 1.0))

    def positive(title: str, a: np.ndarray, cmap: str = "viridis", low: bool = False) -> None:
        if not np.any(np.isfinite(a)):
            return
        top = float(np.nanmax(a)) or 1.0
        bottom = float(np.nanmin(a)) if low else 0.0  # standard errors: their own range, to show where they grow
        views.append((title, a, cmap, bottom if bottom < top else 0.0, top))

    if np.iscomplexobj(kernel):
        positive("|kernel|", np.abs(kernel))
        views.append(("phase (rad)", np.angle(kernel), "twilight", -np.pi, np.pi))
        if truth is not None:
            positive("|true|", np.abs(truth))
        if result.stderr is not None:
            positive("stderr (|.|; each part /√2)", np.asarray(result.stderr, dtype=float), "magma", low=True)
    else:
        symmetric("kernel", kernel)
        if truth is not None:
            top = views[0][4]
            views.append(("true", truth.real, "RdBu_r", -top, top))  # the kernel's colour scale
        if result.stderr is not None:
            positive("stderr", np.asarray(result.stderr, dtype=float), "magma", low=True)
    return views


def plot_kernel_image(
    result: KernelResult,
    true_kernel: ArrayLike | None = None,
    *,
    fig: Any = None,
    max_panels: int = MAX_PANELS,
) -> Figure:
    """Plot an N-D kernel (Conv2D/Conv3D, an image blur) as images, one row per (input, output) channel pair.

    Parameters
    ----------
    result : KernelResult
        From :func:`kernel_recovery.recover_kernel` with a 2-D or 3-D ``kernel_size``.
    true_kernel : array_like, optional
        The kernel that made the data, of the kernel's shape ``(*kernel_size, in_channels // groups,
        out_channels)``, drawn beside it on the same colour scale.
    fig : Figure or SubFigure, optional
        Where to draw (a new figure by default).
    max_panels : int
        At most this many channel pairs; the title says how many were left out.

    Returns
    -------
    matplotlib.figure.Figure
        One column per view and one row per channel pair (2-D kernels); 3-D kernels one row per (pair, view) and
        one column per slice along the first kernel axis (at most ``MAX_SLICES``, evenly spaced).  The views:
        the kernel (a diverging map centred on 0), the true kernel, and the standard errors when
        ``result.stderr`` is set; a complex kernel shows its magnitude and phase instead (each of its real and
        imaginary parts has standard deviation ``stderr / sqrt(2)`` under circular noise).  One colour bar per
        view, shared by its panels.  Row index ``k1`` runs down, ``k2`` across, as in the kernel array.

    Examples
    --------
    >>> import numpy as np, kernel_recovery as kr
    >>> from kernel_recovery.plotting import plot_kernel_image
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal((32, 32))
    >>> w = np.outer([1.0, 2.0, 1.0], [1.0, 0.0, -1.0])[:, :, None, None]  # a Sobel filter
    >>> res = kr.recover_kernel(x, kr.conv(x, w) + 0.01 * rng.standard_normal((30, 30)), (3, 3))
    >>> fig = plot_kernel_image(res, true_kernel=w)
    >>> [ax.get_title() for ax in fig.axes[:3]]
    ['kernel', 'true', 'stderr']
    >>> import matplotlib.pyplot as plt; plt.close(fig)
    """
    _check_result(result)
    cfg = result.config
    if not isinstance(cfg, GridConfig) or cfg.ndim < 2:
        raise ValueError("plot_kernel_image draws 2-D and 3-D kernels; plot a 1-D kernel with plot_kernel.")
    max_panels = check_int(max_panels, "max_panels")
    kernel = np.asarray(result.kernel)
    truth = None if true_kernel is None else _true_kernel(true_kernel, kernel.shape)
    views = _image_views(result, truth)
    c_in, c_out = kernel.shape[-2:]
    pairs = [(c, o) for o in range(c_out) for c in range(c_in)]
    shown = pairs[:max_panels]
    if cfg.ndim == 2:
        slices = [None]
        rows, cols = len(shown), len(views)
    else:
        n0 = kernel.shape[0]
        slices = sorted({int(round(v)) for v in np.linspace(0, n0 - 1, min(n0, MAX_SLICES))})
        rows, cols = len(shown) * len(views), len(slices)
    if fig is None:
        width = min(2.4 * cols + 1.2, 16.0)
        fig = _pyplot().figure(figsize=(width, min(2.2 * rows + 0.8, 14.0)), layout="constrained")
    axes = np.asarray(fig.subplots(rows, cols, squeeze=False))
    from matplotlib.ticker import MaxNLocator

    bars: dict[tuple[int, int], tuple[Any, list[Any], str]] = {}  # one colour bar per column (2-D), per row (3-D)
    for p, (c, o) in enumerate(shown):
        group = o // cfg.out_per_group
        pair = f"in {group * c_in + c} -> out {o}"
        for v, (title, values, cmap, vmin, vmax) in enumerate(views):
            for j, sl in enumerate(slices):
                ax = axes[p, v] if sl is None else axes[p * len(views) + v, j]
                img = values[..., c, o] if sl is None else values[sl, ..., c, o]
                image = ax.imshow(img, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
                key = (-1, v) if sl is None else (p, v)
                bars.setdefault(key, (image, [], title))[1].append(ax)
                ax.xaxis.set_major_locator(MaxNLocator(integer=True))
                ax.yaxis.set_major_locator(MaxNLocator(integer=True))
                if sl is None:
                    ax.set_title(title if p == 0 else "", fontsize=9)
                    if v == 0 and len(pairs) > 1:
                        ax.set_ylabel(pair, fontsize=8)
                else:
                    ax.set_title(f"{title}, k1={sl}", fontsize=8)
                    if j == 0:
                        ax.set_ylabel(pair if len(pairs) > 1 else "k2", fontsize=8)
                ax.tick_params(labelsize=7)
    for image, bar_axes, title in bars.values():
        if cfg.ndim == 2:
            bar = fig.colorbar(image, ax=bar_axes, location="bottom", shrink=0.8, aspect=25, label=title)
        else:
            bar = fig.colorbar(image, ax=bar_axes, shrink=0.9, pad=0.02)
        bar.locator = MaxNLocator(4)
        bar.update_ticks()
        bar.ax.tick_params(labelsize=7)
    shape = "x".join(str(k) for k in cfg.kernel_size)
    heading = f"recovered {shape} kernel ({result.method}, {result.report.status})"
    if len(shown) < len(pairs):
        heading += f": first {len(shown)} of {len(pairs)} channel pairs"
    if cfg.ndim == 3 and len(slices) < kernel.shape[0]:
        heading += f"; {len(slices)} of {kernel.shape[0]} slices along k1"
    fig.suptitle(heading, fontsize=11)
    return fig


def _kernel_axis(result: KernelResult, fs: float | None) -> tuple[np.ndarray, str]:
    """The horizontal axis of the kernel's panels and its label: taps, or physical lags (in seconds with ``fs``)."""
    cfg = result.config
    if isinstance(cfg, GridConfig):  # a 1-D complex kernel: taps dilation apart
        lags = np.arange(result.kernel.shape[0]) * cfg.dilation[0]
        if fs is not None:
            return lags / check_real(fs, "fs", low=0, low_open=True), "lag (s)"
        return np.arange(result.kernel.shape[0]), "tap"
    if fs is not None:
        fs = check_real(fs, "fs", low=0, low_open=True)
        return np.asarray(cfg.tap_lags(), dtype=float) / fs, "lag (s)"
    if cfg.lags is not None:
        return np.asarray(cfg.tap_lags()), "lag (samples)"
    return np.arange(result.kernel.shape[0]), "tap"


def _ordinal(n: int) -> str:
    """``1st``, ``2nd``, ``3rd``, ``4th``, ..., ``11th``, ``12th``, ``13th``, ``21st``, ..."""
    suffix = "th" if n % 100 in (11, 12, 13) else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _sequences(data: ArrayLike, layout: Layout) -> np.ndarray:
    return np.concatenate(as_sequences(data, "y", layout).arrays)


def plot_residuals(result: KernelResult, x: ArrayLike, y: ArrayLike, *, ax: Any = None) -> Figure:
    """Plot ``y - result.predict(x)`` per output channel, over the output samples (sequences concatenated).

    Parameters
    ----------
    result : KernelResult
        From :func:`kernel_recovery.recover_kernel`.
    x, y : array_like
        The data the kernel was recovered from (or fresh data to check it on), as for ``recover_kernel``.
    ax : matplotlib Axes, optional
        Where to draw (a new figure by default).

    Returns
    -------
    matplotlib.figure.Figure
        The figure of ``ax`` (or a new one).

    Examples
    --------
    >>> import kernel_recovery as kr
    >>> from kernel_recovery.plotting import plot_residuals
    >>> x, y = [0.0, 3.0, 4.0, 5.0, 1.0], [6.0, 11.0, 14.0, 7.1]
    >>> fig = plot_residuals(kr.recover_kernel(x, y, kernel_size=2), x, y)
    >>> import matplotlib.pyplot as plt; plt.close(fig)
    """
    _check_result(result)
    cfg = result.config
    if isinstance(cfg, GridConfig):  # every output sample of every item, row-major, channels last

        def flat(a: Any, name: str) -> np.ndarray:
            arrays = read_grid(a, name, cfg.ndim, cfg.channels_last).arrays
            return np.concatenate([v.reshape(-1, v.shape[-1]) for v in arrays])

        y_arr, pred = flat(y, "y"), flat(result.predict(x), "prediction")
    else:
        y_arr = _sequences(y, cfg.layout)
        pred = _sequences(result.predict(x), cfg.layout)
    if pred.shape != y_arr.shape:
        raise ValueError(
            f"`y` has {y_arr.shape} output samples x channels, but the kernel predicts {pred.shape} from `x`."
        )
    res = y_arr - pred
    fig, ax = _axes(ax)
    step = max(1, -(-len(res) // MAX_POINTS))
    t = np.arange(0, len(res), step)
    for o in range(res.shape[1]):
        if np.iscomplexobj(res):
            ax.plot(t, res[::step, o].real, lw=0.8, alpha=0.8, label=f"out {o} (real)")
            ax.plot(t, res[::step, o].imag, lw=0.8, alpha=0.8, ls="--", label=f"out {o} (imaginary)")
        else:
            ax.plot(t, res[::step, o], lw=0.8, alpha=0.8, label=f"out {o}")
    ax.axhline(0.0, color="0.3", lw=0.8)
    rms = float(np.sqrt(np.mean(np.abs(res) ** 2))) if res.size else 0.0
    title = f"residuals y - prediction (rms {rms:.3g})"
    if step > 1:
        title += f", every {_ordinal(step)} sample"
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(
        "output sample" + (" (row-major)" if isinstance(cfg, GridConfig) and cfg.ndim > 1 else ""), fontsize=9
    )
    ax.tick_params(labelsize=8)
    if (
        1 < res.shape[1] * (2 if np.iscomplexobj(res) else 1) <= 8
    ):  # beside the axes: a residual trace fills its axes, any corner would hide some
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    return fig


def plot_loss(result: KernelResult, *, ax: Any = None) -> Figure:
    """Plot the loss per step of an iterative method (``result.loss_history``, e.g. ``method="adam"``).

    Parameters
    ----------
    result : KernelResult
        A result whose ``loss_history`` is set.
    ax : matplotlib Axes, optional
        Where to draw (a new figure by default).

    Returns
    -------
    matplotlib.figure.Figure
        The figure of ``ax`` (or a new one), log scale when the loss spans more than a factor 20.

    Raises
    ------
    ValueError
        When the result has no loss history (direct methods such as ``"lstsq"`` have none).

    Examples
    --------
    >>> import dataclasses, numpy as np, kernel_recovery as kr
    >>> from kernel_recovery.plotting import plot_loss
    >>> res = kr.recover_kernel([0.0, 3.0, 4.0, 5.0], [6.0, 11.0, 14.0], kernel_size=2)
    >>> res = dataclasses.replace(res, loss_history=np.geomspace(1.0, 1e-6, 50))  # as gradient descent fills it
    >>> fig = plot_loss(res)
    >>> import matplotlib.pyplot as plt; plt.close(fig)
    """
    _check_result(result)
    if result.loss_history is None or len(result.loss_history) == 0:
        raise ValueError(
            f"`result` has no loss_history (method {result.method!r} is not iterative); "
            "the loss curve exists for gradient descent (method='adam')."
        )
    loss = np.asarray(result.loss_history, dtype=float)
    fig, ax = _axes(ax)
    ax.plot(np.arange(1, len(loss) + 1), loss, color="C2", lw=1.2)
    finite = loss[np.isfinite(loss)]
    if finite.size and np.all(finite > 0) and finite.max() / finite.min() > 20:
        ax.set_yscale("log")
    ax.set_xlabel("step", fontsize=9)
    ax.set_ylabel("loss", fontsize=9)
    ax.set_title(f"loss ({result.method}, {len(loss)} steps, final {loss[-1]:.3g})", fontsize=10)
    ax.tick_params(labelsize=8)
    return fig


def plot_spectrum(report: DeterminacyReport, *, ax: Any = None, label: str | None = None) -> Figure:
    """Plot the singular values of the design matrix of each group (from :func:`kernel_recovery.analyze`).

    Singular values at zero (kernel directions the data cannot see) are drawn at the bottom of the axis
    as open triangles; the dotted line marks the numerical rank.

    Parameters
    ----------
    report : DeterminacyReport
        From :func:`kernel_recovery.analyze` or ``result.report``.
    ax : matplotlib Axes, optional
        Where to draw (a new figure by default); several reports can share one axes.
    label : str, optional
        Legend label (default: the report's status).

    Returns
    -------
    matplotlib.figure.Figure
        The figure of ``ax`` (or a new one), the spectra on a log scale unless they are narrow and full-rank.

    Examples
    --------
    >>> import numpy as np, kernel_recovery as kr
    >>> from kernel_recovery.plotting import plot_spectrum
    >>> rep = kr.analyze(np.ones(50), None, kernel_size=4, warn=False)  # a constant input: rank 1
    >>> fig = plot_spectrum(rep)
    >>> import matplotlib.pyplot as plt; plt.close(fig)
    """
    if not hasattr(report, "singular_values") or not hasattr(report, "status"):
        raise TypeError(f"`report` must be a DeterminacyReport (from analyze), got {type(report).__name__}.")
    fig, ax = _axes(ax)
    spectra = [np.asarray(s, dtype=float) for s in report.singular_values]
    top = max((s.max() for s in spectra if s.size), default=1.0) or 1.0
    cfg = report.config
    positive = [s[s > top * 1e-15] for s in spectra]
    low = min((p.min() for p in positive if p.size), default=top)
    floor = low / 30.0
    # a narrow, full-rank spectrum reads better on a linear axis from zero than on a log axis
    linear = all(int(r) == len(sp) for r, sp in zip(report.rank[:: cfg.out_per_group], spectra)) and top / low < 30
    linear = linear and (not ax.get_lines() or ax.get_yscale() == "linear")
    if not linear and ax.get_lines() and ax.get_yscale() == "linear":
        ax.set_yscale("log")
        ax.autoscale(axis="y")
    plot = ax.plot if linear else ax.semilogy
    name = label if label is not None else report.status.replace("_", "-")
    offset = len(ax.get_legend_handles_labels()[0])  # reports drawn earlier on this axes keep their colours
    for g, s in enumerate(spectra):
        idx = np.arange(1, len(s) + 1)
        rank = int(report.rank[g * cfg.out_per_group])
        color = f"C{(offset + g) % 10}"
        lab = name if len(spectra) == 1 else f"{name}, group {g}"
        plot(
            idx[:rank],
            np.maximum(s[:rank], floor),
            "o-",
            color=color,
            ms=4,
            lw=1.2,
            label=f"{lab}: rank {rank} of {len(s)}",
        )
        if rank < len(s):
            ax.semilogy(
                idx[rank:],
                np.full(len(s) - rank, floor),
                "v",
                color=color,
                mfc="none",
                ms=7,
                label=f"{len(s) - rank} at zero: directions the data cannot see",
            )
            ax.axvline(rank + 0.5, color=color, ls=":", lw=1.0)
    if linear:
        ax.set_ylim(bottom=0.0)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("index", fontsize=9)
    ax.set_ylabel("singular value", fontsize=9)
    cond = float(np.max(report.condition_number)) if len(report.condition_number) else float("nan")
    if offset:  # several reports on one axes: a title for all of them
        ax.set_title("design spectra", fontsize=10)
    else:
        ax.set_title(f"design spectrum ({report.status.replace('_', '-')}, condition {cond:.3g})", fontsize=10)
    ax.tick_params(labelsize=8)
    ax.legend(fontsize=8, loc="best")
    return fig


def plot_result(
    result: KernelResult,
    x: ArrayLike | None = None,
    y: ArrayLike | None = None,
    *,
    true_kernel: ArrayLike | None = None,
    max_panels: int = MAX_PANELS,
    fs: float | None = None,
) -> Figure:
    """One figure: the kernel (with bands and the true kernel), and below it the residuals (when ``x`` and
    ``y`` are given), the loss curve (when there is one) and the design's singular values.

    Parameters
    ----------
    result : KernelResult
        From :func:`kernel_recovery.recover_kernel`.
    x, y : array_like, optional
        The data, for the residual panel.
    true_kernel : array_like, optional
        Drawn next to the recovered kernel.
    max_panels : int
        As in :func:`plot_kernel`.
    fs : float, optional
        Sampling rate: the kernel is drawn over the physical lag in seconds (see :func:`plot_kernel`).

    Returns
    -------
    matplotlib.figure.Figure
        A new figure: the kernel's panels above, the others below.

    Examples
    --------
    >>> import kernel_recovery as kr
    >>> x, y = [0.0, 3.0, 4.0, 5.0, 1.0], [6.0, 11.0, 14.0, 7.1]
    >>> fig = kr.recover_kernel(x, y, kernel_size=2).plot(x, y)
    >>> import matplotlib.pyplot as plt; plt.close(fig)
    """
    _check_result(result)
    if (x is None) != (y is None):
        raise ValueError("give both `x` and `y` for the residual panel, or neither.")
    plt = _pyplot()
    lower = ["spectrum"]
    if result.loss_history is not None and len(result.loss_history):
        lower.insert(0, "loss")
    if x is not None:
        lower.insert(0, "residuals")
    c_in, c_out = result.kernel.shape[-2:]
    _, _, width, height = _panel_grid(c_in, c_out, max_panels)
    cfg = result.config
    if isinstance(cfg, GridConfig) and cfg.ndim >= 2:  # images: a row per channel pair (and view, in 3-D)
        n_views = 2 + (result.stderr is not None) + (true_kernel is not None)
        rows = min(c_in * c_out, max_panels) * (n_views if cfg.ndim == 3 else 1)
        width, height = 12.0, min(2.2 * rows + 0.8, 12.0)
    fig = plt.figure(figsize=(max(width, 4.2 * len(lower)), height + 3.2), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[height, 3.2])
    plot_kernel(result, true_kernel, fig=top, max_panels=max_panels, fs=fs)
    axes = np.atleast_1d(bottom.subplots(1, len(lower)))
    for ax, what in zip(axes, lower):
        if what == "residuals":
            assert x is not None and y is not None  # the panel is listed only with both
            plot_residuals(result, x, y, ax=ax)
        elif what == "loss":
            plot_loss(result, ax=ax)
        else:
            plot_spectrum(result.report, ax=ax)
    return fig


def plot_bode(
    source: KernelResult | FrequencyResponse,
    *,
    n: int | None = None,
    fs: float | None = None,
    level: float = 0.95,
    remove_delay: bool | float = False,
    true_kernel: ArrayLike | None = None,
    true_response: ArrayLike | None = None,
    fig: Any = None,
    max_pairs: int = MAX_PANELS,
) -> Figure:
    """A Bode plot: magnitude in dB (above) and phase in degrees (below) over frequency, with the bands.

    Parameters
    ----------
    source : KernelResult or FrequencyResponse
        A result (its :meth:`~kernel_recovery.KernelResult.frequency_response` with ``n``, ``fs`` and
        ``level`` is drawn) or a response already computed.
    n, level
        As in :func:`kernel_recovery.diagnostics.frequency.frequency_response`, for a result (``n``: by default
        scaled to the kernel's longest lag, so a long response is not undersampled).
    fs : float, optional
        Sampling rate, for a result: the frequency axis is then in Hz (and the removed delay also in seconds).
        Without it, frequencies are in cycles per sample.  A response keeps the ``fs`` it was computed with.
    remove_delay : bool or float
        Remove a bulk delay ``D`` (in samples) before the phase is unwrapped, i.e. draw the phase of
        ``H(f) exp(2j pi f D / fs)``: ``True`` estimates ``D`` for each channel pair (see Notes), a number is
        that delay.  The title says which delay was removed.  The magnitude and the bands do not change.
    true_kernel : array_like, optional
        The kernel that made the data (for a result): its response is drawn dashed for comparison.
    true_response : array_like, optional
        Or that response itself, shaped like ``response.response``.
    fig : Figure or SubFigure, optional
        Where to draw (a new figure by default).
    max_pairs : int
        At most this many (input, output) channel pairs are drawn; the title says when some are left out.

    Returns
    -------
    matplotlib.figure.Figure
        ``fig`` (or a new figure): magnitude above, phase below; the legend beside the axes, off the data.

    Notes
    -----
    Bands are the pointwise delta-method bands of :class:`~kernel_recovery.diagnostics.frequency.FrequencyResponse`
    (magnitude: ``|H| -+ q se``, drawn in dB; phase: ``phase -+ q se``), shaded where the result has
    standard errors.

    A response delayed by ``D`` samples turns its phase by ``-360 f D / fs`` degrees: ``-180 D`` at the
    Nyquist frequency, so the unwrapped phase of a room's impulse response runs to tens of thousands of
    degrees and hides the shape of the rest.  ``remove_delay=True`` takes ``D`` as the lag of the largest
    ``|kernel|`` coefficient of each channel pair (the direct sound of an impulse response; robust to the noise
    of the taps around it) for a result, and as the least-squares slope of the unwrapped phase weighted by
    ``|H|^2`` for a :class:`FrequencyResponse` (which has no kernel).

    Examples
    --------
    >>> import numpy as np, kernel_recovery as kr
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal(400)
    >>> y = kr.conv1d(x, [1.0, 0.5, 0.25]) + 0.05 * rng.standard_normal(398)
    >>> fig = kr.recover_kernel(x, y, 3).plot(kind="bode", true_kernel=[1.0, 0.5, 0.25])
    >>> [ax.get_ylabel() for ax in fig.axes]
    ['magnitude (dB)', 'phase (degrees)']
    >>> import matplotlib.pyplot as plt; plt.close(fig)

    A delay of 300 samples at 8 kHz, removed before the phase is unwrapped:

    >>> h = np.r_[np.zeros(300), 1.0, -0.6, 0.2]  # lags 0 to 302, in the convolution order (flip=True)
    >>> res = kr.recover_kernel(x, kr.conv1d(x, h, lags=(0, 302), flip=True), lags=(0, 302), flip=True)
    >>> fig = res.plot(kind="bode", fs=8000, remove_delay=True)
    >>> fig.axes[1].get_xlabel(), fig.get_suptitle().splitlines()[-1]
    ('frequency (Hz)', 'delay of 300 samples (37.5 ms) removed: the lag of the peak |kernel|')
    >>> plt.close(fig)
    """
    fr, title, truth_h = _bode_response(source, n, fs, level, true_kernel, true_response)
    delays, removed = _bulk_delays(source, fr, remove_delay)
    if fig is None:
        fig = _pyplot().figure(figsize=(6.4, 5.0), layout="constrained")
    ax_mag, ax_ph = fig.subplots(2, 1, sharex=True, squeeze=True)
    _, c_in, c_out = fr.response.shape
    pairs = [(c, o) for o in range(c_out) for c in range(c_in)]
    shown = pairs[:max_pairs]
    finite = fr.db[np.isfinite(fr.db)]
    floor = (float(finite.min()) if finite.size else 0.0) - 20.0  # where zeros of the response are drawn
    for i, (c, o) in enumerate(shown):
        color = f"C{i % 10}"
        label = f"in {c} -> out {o}" if len(pairs) > 1 else "recovered"
        phase = _bode_pair(ax_mag, ax_ph, fr, (c, o), float(delays[c, o]), color, label, floor)
        if truth_h is not None:
            true_color = color if len(pairs) > 1 else "C3"
            truth = (truth_h[:, c, o], float(delays[c, o]), phase[0])
            _bode_truth(ax_mag, ax_ph, fr, truth, true_color, "true" if i == 0 else None, floor)
    hz = fr.fs != 1.0 if fs is None else True
    ax_ph.set_xlabel(f"frequency ({'Hz' if hz else 'cycles/sample'})", fontsize=9)
    ax_mag.set_ylabel("magnitude (dB)", fontsize=9)
    ax_ph.set_ylabel("phase (degrees)" if removed is None else "phase, delay removed (degrees)", fontsize=9)
    for ax in (ax_mag, ax_ph):
        ax.tick_params(labelsize=8)
    if len(shown) > 1 or truth_h is not None:  # beside the axes, where it hides no curve
        ax_mag.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    if fr.band_source != "none":
        title += f", {fr.level:.0%} bands" + (" (taps taken as uncorrelated)" if fr.band_source == "stderr" else "")
    if len(shown) < len(pairs):
        title += f": first {len(shown)} of {len(pairs)} channel pairs"
    if removed is not None:
        title += "\n" + _delay_text(delays[tuple(zip(*shown))], fr.fs if hz else None, removed)
    fig.suptitle(title, fontsize=10)
    return fig


def _bode_response(
    source: KernelResult | FrequencyResponse,
    n: int | None,
    fs: float | None,
    level: float,
    true_kernel: ArrayLike | None,
    true_response: ArrayLike | None,
) -> tuple[FrequencyResponse, str, np.ndarray | None]:
    """The response to draw, the figure's title and the true response (None without one)."""
    if not hasattr(source, "frequency_response"):  # a FrequencyResponse (duck-typed: plotting imports no result)
        if n is not None or true_kernel is not None:
            raise ValueError("`n` and `true_kernel` apply to a KernelResult; give `true_response` with a response.")
        fr = cast("FrequencyResponse", source)
        if fs is not None and check_real(fs, "fs", low=0, low_open=True) != fr.fs:
            raise ValueError(
                f"`fs` (={fs!r}) applies to a KernelResult; this response was computed with fs={fr.fs:g} "
                "(pass fs to frequency_response instead)."
            )
        title = "frequency response"
    else:
        _check_result(source, "source")
        result = cast("KernelResult", source)
        rate = 1.0 if fs is None else fs
        fr = result.frequency_response(n, fs=rate, level=level)
        title = f"frequency response ({result.method})"
        if true_kernel is not None:
            if true_response is not None:
                raise ValueError("give `true_kernel` or `true_response`, not both.")
            import dataclasses

            true_fit = dataclasses.replace(result, kernel=_true_kernel(true_kernel, result.kernel.shape))
            true_response = true_fit.frequency_response(freqs=fr.freqs, fs=rate).response
    if true_response is None:
        return fr, title, None
    truth_h = np.asarray(true_response)
    if truth_h.shape != fr.response.shape:
        raise ValueError(f"`true_response` must have the response's shape {fr.response.shape}, got {truth_h.shape}.")
    return fr, title, truth_h


def _bulk_delays(
    source: KernelResult | FrequencyResponse, fr: FrequencyResponse, remove_delay: object
) -> tuple[np.ndarray, str | None]:
    """The delay to remove from each channel pair ``(in, out)``, in samples, and how it was chosen (None: none)."""
    shape = fr.response.shape[1:]
    if isinstance(remove_delay, (bool, np.bool_)):
        if not check_bool(remove_delay, "remove_delay"):
            return np.zeros(shape), None
        if hasattr(source, "kernel"):  # a result: the lag of the largest coefficient of each pair
            result = cast("KernelResult", source)
            peak = np.argmax(np.abs(np.asarray(result.kernel)), axis=0)
            return np.asarray(result.config.tap_lags(), dtype=float)[peak], "the lag of the peak |kernel|"
        if len(fr.freqs) < 2:
            raise ValueError("`remove_delay=True` needs a response at 2 frequencies or more; give the delay instead.")
        phase = np.unwrap(np.angle(fr.response), axis=0)
        w = np.abs(fr.response) ** 2
        f = np.broadcast_to((fr.freqs / fr.fs)[:, None, None], phase.shape)
        f_mean = np.sum(w * f, axis=0) / np.sum(w, axis=0)
        p_mean = np.sum(w * phase, axis=0) / np.sum(w, axis=0)
        slope = np.sum(w * (f - f_mean) * (phase - p_mean), axis=0) / np.sum(w * (f - f_mean) ** 2, axis=0)
        return np.nan_to_num(-slope / (2 * np.pi)), "the |H|^2-weighted slope of the phase"
    return np.full(shape, check_real(remove_delay, "remove_delay")), "as given"


def _delay_text(delays: np.ndarray, fs: float | None, how: str) -> str:
    """``delay of 300 samples (37.5 ms) removed: ...`` for the title (a range when the pairs differ)."""

    def seconds(d: float) -> str:
        return "" if fs is None else f" ({d / fs * 1e3:.3g} ms)"

    lo, hi = float(np.min(delays)), float(np.max(delays))
    if np.isclose(lo, hi):
        text = f"delay of {lo:.4g} samples{seconds(lo)} removed"
    else:
        text = f"delays of {lo:.4g}{seconds(lo)} to {hi:.4g} samples{seconds(hi)} removed"
    return text if how == "as given" else f"{text}: {how}"


def _delayed_phase(response: np.ndarray, freqs: np.ndarray, fs: float, delay: float) -> np.ndarray:
    """The unwrapped phase in degrees of ``response exp(2j pi f delay / fs)`` (``delay`` in samples)."""
    if delay:
        response = response * np.exp(2j * np.pi * (freqs / fs) * delay)
    return np.degrees(np.unwrap(np.angle(response)))


def _bode_pair(
    ax_mag: Any,
    ax_ph: Any,
    fr: FrequencyResponse,
    pair: tuple[int, int],
    delay: float,
    color: str,
    label: str,
    floor: float,
) -> np.ndarray:
    """One channel pair's magnitude (dB, zeros at ``floor``) and phase (``delay`` removed), with their bands where
    there are some; returns the phase drawn."""
    c, o = pair
    phase = _delayed_phase(fr.response[:, c, o], fr.freqs, fr.fs, delay)
    ax_mag.plot(fr.freqs, np.maximum(fr.db[:, c, o], floor), color=color, lw=1.4, label=label)
    ax_ph.plot(fr.freqs, phase, color=color, lw=1.4)
    if fr.lower is not None and fr.upper is not None and fr.phase_stderr is not None:
        lo = np.maximum(_decibels(fr.lower[:, c, o]), floor)
        ax_mag.fill_between(fr.freqs, lo, _decibels(fr.upper[:, c, o]), color=color, alpha=0.2, lw=0)
        half = np.degrees(np.minimum(fr.quantile * fr.phase_stderr[:, c, o], np.pi))
        ax_ph.fill_between(fr.freqs, phase - half, phase + half, color=color, alpha=0.2, lw=0)
    return phase


def _bode_truth(
    ax_mag: Any,
    ax_ph: Any,
    fr: FrequencyResponse,
    truth: tuple[np.ndarray, float, float],
    color: str,
    label: str | None,
    floor: float,
) -> None:
    """The true response of one channel pair ``(response, delay removed, the estimate's first phase)``, dashed, its
    phase on the estimate's branch."""
    response, delay, start = truth
    t_db = np.maximum(_decibels(np.abs(response)), floor)
    t_ph = _delayed_phase(response, fr.freqs, fr.fs, delay)
    t_ph += 360.0 * np.round((start - t_ph[0]) / 360.0)  # the same branch as the estimate
    ax_mag.plot(fr.freqs, t_db, color=color, ls="--", lw=1.0, label=label)
    ax_ph.plot(fr.freqs, t_ph, color=color, ls="--", lw=1.0)


def _decibels(magnitude: np.ndarray) -> np.ndarray:
    """``20 log10(magnitude)``, ``-inf`` at 0 without a warning."""
    with np.errstate(divide="ignore"):
        return 20.0 * np.log10(magnitude)


def plot_track(
    track: KernelTrack,
    ax: Any = None,
    *,
    channel: tuple[int, int] = (0, 0),
    kind: Literal["heatmap", "lines"] = "heatmap",
    band: bool = True,
) -> Figure:
    """The kernel over time of a :class:`~kernel_recovery.tracking.KernelTrack`, for one (input, output) pair.

    Parameters
    ----------
    track : KernelTrack
        From :func:`kernel_recovery.track_kernel`.
    ax : matplotlib Axes, optional
        Where to draw (a new figure by default).
    channel : (int, int)
        The input channel (within its group) and the output channel drawn.
    kind : {"heatmap", "lines"}
        ``"heatmap"``: the coefficients as colours over time (across) and lag (up), with a colour bar centred on 0
        (NaN where the data of that time do not determine the kernel are left blank); ``"lines"``: one line per
        tap, with ``+-2`` standard errors shaded (readable up to a dozen taps).
    band : bool
        Shade the standard errors (``kind="lines"`` only).

    Returns
    -------
    matplotlib.figure.Figure
        The figure of ``ax`` (or a new one); the change times found are dashed vertical lines.

    Examples
    --------
    >>> import numpy as np, kernel_recovery as kr
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal(2000)
    >>> y = np.r_[kr.conv1d(x[:1000], [1.0, 0.5, 0.25]), kr.conv1d(x[998:], [0.2, 0.5, 1.0])]
    >>> fig = kr.track_kernel(x, y, 3, window=200, step=50).plot()
    >>> ax = fig.axes[0]; ax.get_xlabel(), ax.get_ylabel()
    ('output sample', 'lag (samples)')
    >>> import matplotlib.pyplot as plt; plt.close(fig)
    """
    if not hasattr(track, "kernels") or not hasattr(track, "times"):
        raise TypeError(f"`track` must be a KernelTrack (from track_kernel), got {type(track).__name__}.")
    kind = check_choice(kind, "kind", ("heatmap", "lines"))
    band = check_bool(band, "band")
    _, k_size, c_in, c_out = track.kernels.shape
    if not (isinstance(channel, (tuple, list)) and len(channel) == 2):
        raise TypeError(f"`channel` must be an (input, output) pair of integers, got {channel!r}.")
    c = check_int(channel[0], "channel[0]", 0, maximum=c_in - 1)
    o = check_int(channel[1], "channel[1]", 0, maximum=c_out - 1)
    fig, ax = _axes(ax, figsize=(8.0, 4.0))
    lags = np.asarray(track.config.tap_lags())
    coef = track.kernels[:, :, c, o]
    if kind == "heatmap":
        order = np.argsort(lags)  # lag upwards whatever order the kernel is stored in
        grid = np.ma.masked_invalid(coef[:, order].T)  # (lag, time)
        top = float(np.max(np.abs(grid))) if grid.count() else 1.0
        mesh = ax.pcolormesh(
            track.times, lags[order], grid, shading="nearest", cmap="RdBu_r", vmin=-top, vmax=top, rasterized=True
        )
        fig.colorbar(mesh, ax=ax, label="coefficient", pad=0.01)
        ax.set_ylabel("lag (samples)", fontsize=9)
    else:
        for k in range(k_size):
            (handle,) = ax.plot(track.times, coef[:, k], lw=1, label=f"lag {lags[k]}")
            if band:
                se = np.nan_to_num(track.stderr[:, k, c, o])
                ax.fill_between(
                    track.times, coef[:, k] - 2 * se, coef[:, k] + 2 * se, color=handle.get_color(), alpha=0.2, lw=0
                )
        ax.set_ylabel("coefficient", fontsize=9)
        if k_size <= 12:
            ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    for t in track.changes:
        ax.axvline(t, color="k", ls="--", lw=1)
    ax.set_xlabel("output sample", fontsize=9)
    ax.tick_params(labelsize=8)
    memory = track.options
    pair = f"in {c} -> out {o}, " if c_in * c_out > 1 else ""
    ax.set_title(
        f"kernel over time ({pair}window={memory.get('window')}, forgetting={memory.get('forgetting')}, "
        f"step={memory.get('step')})",
        fontsize=10,
    )
    return fig
