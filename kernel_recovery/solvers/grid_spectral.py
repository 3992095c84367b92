"""Frequency-domain deconvolution of grid problems (N-D kernels, complex signals): ``method="fft"``.

The N-D counterpart of :mod:`.spectral`, on a :class:`~kernel_recovery.model.grid.GridProblem`, per group:

1. **One FFT of every padded input** over its spatial axes (fast lengths from :func:`scipy.fft.next_fast_len`,
   long enough that no correlation used below wraps around; real FFTs for real data, complex ones otherwise).
2. **Per-frequency least squares (Welch).**  The input's correlation at the dilated lags ``delta * dilation``,
   ``|delta| < kernel_size``, Bartlett-tapered and transformed on a window of ``W >= 4 kernel_size`` lags per axis,
   gives one ``C x C`` cross-spectral matrix per frequency (``C`` input channels of the group).  Dividing the
   cross-correlation of the outputs with the inputs over that lag window by it (a pseudo-inverse: frequencies
   without independent input power are left alone) is the classic spectral estimate of the kernel; its part on
   the kernel's support is the first kernel.
3. **The exact least-squares kernel** of the valid (or padded) data is then reached by preconditioned conjugate
   gradients on the normal equations ``A^H P A w = A^H P y`` (``P`` removes the mean when there is a bias: the bias
   is eliminated exactly and recovered as ``mean(y - A w)``), started from the spectral estimate and preconditioned
   by the same per-frequency (circulant) inverse.  ``A^H P A v`` is applied either from the group's Gram
   (:func:`~kernel_recovery.model.grid.grid_statistics`, ``O(P^2)`` a step), when it is already formed (the
   report of ``recover_kernel`` forms it) or costs less than about ``EXPECTED_STEPS`` FFT steps, or matrix-free:
   ``A v`` is one FFT correlation of each padded input with the dilated kernel, read at the strided output
   positions, and ``A^H r`` one FFT correlation of the input with the strided-upsampled ``r``, read at the dilated
   lags, so the edges of the valid/padded problem are exact.  The conjugate-gradient residual is recomputed from
   the data (``A^H P (y - A w)``) at the end, and the iteration restarted from there while it is above ``tol``.

Rank-deficient data: on the Gram path the kernel is projected on the design's numerical range (the rank rule of
:func:`~kernel_recovery.model.grid_spectrum.grid_spectrum`), so it is the **minimum-norm** least-squares kernel,
as ``method="lstsq"`` returns.  On the FFT path no factorization is formed: the kernel is *a* least-squares
kernel (the starting point's null-space part stays), not necessarily the minimum-norm one; the message says so
when the per-frequency systems show missing input power.

Complex data keep the bilinear convolution and the conjugate-transpose normal equations throughout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.fft as sfft
from numpy.typing import ArrayLike

from ..diagnostics.determinacy import check_noise_level
from ..model.grid import GridProblem, grid_statistics
from ..model.grid_gram import FFT_SECONDS, GEMM_SECONDS, fft_gram_cost, im2col_gram_cost
from ..model.grid_spectrum import grid_spectrum
from ..model.threads import SerialBLAS
from ..model.validation import check_bool, check_choice, check_int, check_real
from .grid import GridSolution

#: The lag window of the per-frequency estimate: at least this many times the kernel size per axis.
WINDOW_FACTOR = 4
#: Conjugate-gradient steps the cost model expects of the FFT path (the Gram is formed when cheaper).
EXPECTED_STEPS = 30
#: Restarts of conjugate gradients from the residual recomputed from the data, at most.
RESTARTS = 4
#: Relative normal-equation residual below which rounding, not the iteration, limits the answer.
ROUNDING_FLOOR = 1e-9
Operator = Literal["auto", "gram", "fft"]
OPERATORS: tuple[Operator, ...] = ("auto", "gram", "fft")


def solve(
    problem: GridProblem,
    *,
    noise_level: ArrayLike | None = None,
    wiener: bool = False,
    tol: float = 1e-12,
    max_iter: int = 500,
    operator: Literal["auto", "gram", "fft"] = "auto",
    workers: int | None = -1,
) -> GridSolution:
    """N-D spectral division refined to the exact least-squares kernel (see the module docstring).

    Options
    -------
    noise_level : float, array of shape (out_channels,), or None
        Standard deviation of the noise in ``y``, used by ``wiener=True`` only; None estimates it per output
        channel from the least-squares residual (``sqrt(RSS / (equations - unknowns))``).
    wiener : bool
        True adds ``noise_level**2 / mean(|kernel|**2)`` times ``||kernel||^2`` to the squared residual (Wiener
        deconvolution with a white kernel prior; the bias is not penalized), as ``method="fft"`` does for
        sequences.  False (the default here) returns the plain least-squares kernel.
    tol : float
        Relative residual ``||A^H P (y - A w)|| / ||A^H P y||`` of the normal equations at which conjugate
        gradients stop (at least the rounding floor, 1e-9, counts as converged).
    max_iter : int
        Most conjugate-gradient steps per solve.
    operator : {"auto", "gram", "fft"}
        How ``A^H A v`` is applied: from the Gram (formed if it is not already), matrix-free by FFT
        correlations, or ``"auto"``: the Gram when it is already formed or costs less than about
        ``EXPECTED_STEPS`` FFT steps.  Recorded in ``diagnostics["operator"]``.
    workers : int or None
        Threads for :mod:`scipy.fft` (``-1``: all cores).

    Returns
    -------
    GridSolution
        ``unit_covariance`` is the Gram's pseudo-inverse (with ``wiener``, the sandwich
        ``M^-1 A^H A M^-1``) on the Gram path, None on the FFT path (the Gram is not formed there).
        ``diagnostics``: ``solver`` (``"spectral_pcg"`` per group), ``operator`` and ``operator_reason`` per
        group, ``iterations``, ``residual`` (the final relative normal residual, from the data), ``restarts``,
        ``start_residual`` (that of the spectral estimate), ``singular_frequencies`` and ``frequencies``,
        ``minimum_norm`` (True: the minimum-norm least-squares kernel; False: a least-squares kernel, FFT path),
        ``rank`` (Gram path; None on the FFT path), ``ridge`` (the Wiener term per output channel) and
        ``noise_level_source``.
    """
    wiener = check_bool(wiener, "wiener")
    tol = check_real(tol, "tol", low=0.0, high=1.0, low_open=True, high_open=True)
    max_iter = check_int(max_iter, "max_iter", 1)
    operator = check_choice(operator, "operator", OPERATORS)
    if workers is not None:
        workers = check_int(workers, "workers", None)
        if workers == 0:
            raise ValueError("`workers` must be a positive number of threads or -1 (all cores), got 0.")
    if problem.ys is None:
        raise ValueError("method='fft' needs the outputs `y`: the problem was built without them.")
    noise = check_noise_level(noise_level, problem.config.out_channels)
    fits = [
        _fit_group(problem, g, noise, wiener, tol, max_iter, operator, workers) for g in range(problem.config.groups)
    ]
    return _solution(problem, fits, noise, wiener, tol, max_iter, operator, workers)


# ----------------------------------------------------------------------------------------------
# One group's data in the frequency domain
# ----------------------------------------------------------------------------------------------


@dataclass
class _Group:
    """One group's FFTs and what every step needs (``K`` kernel size, ``C`` input channels, ``O`` outputs)."""

    real: bool
    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    window: tuple[int, ...]
    sizes: list[tuple[int, ...]]  # FFT shape per item
    xf: list[np.ndarray]  # per item, (*F, C): FFT of the padded input
    outs: list[tuple[int, ...]]  # output shape per item
    ys: list[np.ndarray]  # per item, (*out, O), centered with a bias
    y_mean: np.ndarray | None  # (O,), with a bias
    n_rows: int
    eig: np.ndarray  # (*Fw, C): the per-frequency spectrum's eigenvalues ...
    vec: np.ndarray  # (*Fw, C, C): ... and eigenvectors
    floor: float
    singular: int  # frequencies whose spectrum is singular ...
    frequencies: int  # ... of this many
    workers: int | None

    @property
    def axes(self) -> tuple[int, ...]:
        return tuple(range(len(self.kernel_size)))

    def fft(self, a: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        if self.real:
            return sfft.rfftn(a, shape, axes=self.axes, workers=self.workers)
        return sfft.fftn(a, shape, axes=self.axes, workers=self.workers)

    def ifft(self, a: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        if self.real:
            return sfft.irfftn(a, shape, axes=self.axes, workers=self.workers)
        return sfft.ifftn(a, shape, axes=self.axes, workers=self.workers)


def _lag_window(k: int, w: int) -> np.ndarray:
    """The lags of a window of ``w`` around a support of ``k`` taps, in circular order (lag ``m`` at ``m mod w``)."""
    after = (w - k) // 2
    before = w - k - after
    return np.concatenate([np.arange(k + after), np.arange(-before, 0)])


def _group_data(problem: GridProblem, g: int, workers: int | None) -> _Group:
    """Step 1 and the spectra of step 2 for group ``g``."""
    cfg = problem.config
    ks, ds, n = cfg.kernel_size, cfg.dilation, cfg.ndim
    window = tuple(sfft.next_fast_len(max(WINDOW_FACTOR * k, 8), real=True) for k in ks)
    reach = tuple(max(w - k, k) for k, w in zip(ks, window))  # lags beyond the support that must not wrap
    real = not problem.is_complex
    c0, c = g * cfg.in_per_group, cfg.in_per_group
    per = cfg.out_per_group
    assert problem.ys is not None
    ys = [y[..., g * per : (g + 1) * per] for y in problem.ys]
    y_mean = None
    if cfg.use_bias:
        y_mean = sum(y.sum(axis=tuple(range(n))) for y in ys) / problem.n_equations
        ys = [y - y_mean for y in ys]
    grp = _Group(real, ks, cfg.stride, ds, window, [], [], list(problem.out_shapes), ys, y_mean,
                 problem.n_equations, np.zeros(0), np.zeros(0), 0.0, 0, 0, workers)  # fmt: skip
    lags = [np.arange(-(k - 1), k) for k in ks]
    acf: np.ndarray = np.zeros(tuple(2 * k - 1 for k in ks) + (c, c), dtype=problem.kind)
    for x, out in zip(problem.xs, problem.out_shapes):
        x = x[..., c0 : c0 + c]
        size = tuple(sfft.next_fast_len(p + r * d, real=real) for p, r, d in zip(x.shape[:n], reach, ds))
        grp.sizes.append(size)
        grp.xf.append(grp.fft(x, size))
        xc = x - x.mean(axis=tuple(range(n))) if cfg.use_bias else x
        xcf = grp.xf[-1] if xc is x else grp.fft(xc, size)
        # sum_s conj(x_c[s]) x_c'[s + delta d], at the dilated lags
        full = grp.ifft(xcf.conj()[..., :, None] * xcf[..., None, :], size)
        idx = [np.mod(lag * d, s) for lag, d, s in zip(lags, ds, size)]
        acf += full[np.ix_(*idx)] * (math.prod(out) / math.prod(x.shape[:n]))
    taper = np.ones(acf.shape[:n])
    for a, k in enumerate(ks):
        shape = [1] * n
        shape[a] = 2 * k - 1
        taper = taper * (1.0 - np.abs(np.arange(-(k - 1), k)) / k).reshape(shape)
    circ = np.zeros(window + (c, c), dtype=problem.kind)
    circ[np.ix_(*[np.mod(lag, w) for lag, w in zip(lags, window)])] = acf * taper[..., None, None]
    # T(f) = sum_delta R(delta) e^{i w delta}: (R v)^ = T v^ for the correlation (R v)[k] = sum R(delta) v[k+delta]
    spectrum = grp.fft(circ.conj(), window).conj()
    spectrum = 0.5 * (spectrum + np.swapaxes(spectrum.conj(), -1, -2))
    eig, vec = np.linalg.eigh(spectrum)
    eig = np.clip(eig, 0.0, None)
    top = float(eig.max()) if eig.size else 0.0
    tiny = top * math.prod(window) * c * np.finfo(np.float64).eps
    grp.eig, grp.vec = eig, vec
    grp.floor = max(tiny, np.finfo(np.float64).tiny)
    grp.singular, grp.frequencies = int(np.sum(eig[..., 0] <= tiny)), int(np.prod(eig.shape[:-1]))
    return grp


# ----------------------------------------------------------------------------------------------
# Operators: A v, A^H r and the circulant inverse, on kernels shaped (*K, C, O)
# ----------------------------------------------------------------------------------------------


def _forward(grp: _Group, v: np.ndarray) -> list[np.ndarray]:
    """``A v`` per item, ``(*out, O)``: the correlation of the padded input with the dilated kernel, strided."""
    out = []
    spread = tuple(slice(0, (k - 1) * d + 1, d) for k, d in zip(grp.kernel_size, grp.dilation))
    for size, xf, shape in zip(grp.sizes, grp.xf, grp.outs):
        h = np.zeros(size + v.shape[-2:], dtype=v.dtype)
        h[spread] = v
        hf = grp.fft(h.conj(), size).conj()  # sum_m h[m] e^{+i w m}
        z = grp.ifft(np.einsum("...c,...co->...o", xf, hf), size)
        out.append(z[tuple(slice(0, o * s, s) for o, s in zip(shape, grp.stride))])
    return out


def _adjoint(grp: _Group, rs: list[np.ndarray], lags: list[np.ndarray]) -> np.ndarray:
    """``sum_o conj(x[o * stride + m * dilation, c]) r[o, j]`` at the lags ``m`` (one array per axis)."""
    total = None
    for size, xf, shape, r in zip(grp.sizes, grp.xf, grp.outs, rs):
        up = np.zeros(size + r.shape[-1:], dtype=r.dtype)
        up[tuple(slice(0, o * s, s) for o, s in zip(shape, grp.stride))] = r
        rf = grp.fft(up, size)
        full = grp.ifft(xf.conj()[..., :, None] * rf[..., None, :], size)  # at -m: sum_n conj(x[n + m]) r_up[n]
        part = full[np.ix_(*[np.mod(-lag * d, s) for lag, d, s in zip(lags, grp.dilation, size)])]
        total = part if total is None else total + part
    assert total is not None
    return total


def _support(grp: _Group) -> list[np.ndarray]:
    return [np.arange(k) for k in grp.kernel_size]


def _center(grp: _Group, parts: list[np.ndarray]) -> list[np.ndarray]:
    """``P r``: the outputs' mean taken out (with a bias), the bias's elimination."""
    if grp.y_mean is None:
        return parts
    n = len(grp.kernel_size)
    mean = sum(p.sum(axis=tuple(range(n))) for p in parts) / grp.n_rows
    return [p - mean for p in parts]


def _spectral_solve(grp: _Group, r: np.ndarray, ridge: np.ndarray, crop: bool = True) -> np.ndarray:
    """The circulant (Welch) inverse applied to ``r`` over the lag window (``(*W, C, O)``, or cropped to ``K``)."""
    rf = grp.fft(r, grp.window)
    uh_r = np.swapaxes(grp.vec.conj(), -1, -2) @ rf
    level = grp.eig[..., None] + ridge
    uh_r *= np.divide(1.0, level, out=np.zeros_like(level), where=level > grp.floor)
    out = grp.ifft(grp.vec @ uh_r, grp.window)
    return out[tuple(slice(0, k) for k in grp.kernel_size)] if crop else out


def _spectral_estimate(grp: _Group) -> np.ndarray:
    """Step 2: the per-frequency estimate over the lag window, cropped to the kernel's support, ``(*K, C, O)``."""
    lags = [_lag_window(k, w) for k, w in zip(grp.kernel_size, grp.window)]
    cross = _adjoint(grp, grp.ys, lags)  # circular order over the window
    o = cross.shape[-1]
    return _spectral_solve(grp, cross, np.zeros(o))


# ----------------------------------------------------------------------------------------------
# Conjugate gradients
# ----------------------------------------------------------------------------------------------


class _Normal:
    """``(A^H P A + ridge) v`` and the exact residual, from the Gram or by FFTs."""

    def __init__(self, problem: GridProblem, g: int, grp: _Group, use_gram: bool) -> None:
        self.grp, self.use_gram = grp, use_gram
        self.shape = grp.kernel_size + (problem.config.in_per_group,)
        n_kernel = math.prod(self.shape)
        if use_gram:
            stats = grid_statistics(problem, g)
            assert stats.cross is not None
            gram, cross = stats.gram, stats.cross
            if problem.config.use_bias:  # eliminate the bias: A^H P A and A^H P y
                a = gram[:n_kernel, n_kernel]
                gram = gram[:n_kernel, :n_kernel] - np.outer(a, a.conj()) / stats.n_rows
                cross = cross[:n_kernel] - np.outer(a, cross[n_kernel]) / stats.n_rows
            self.gram, self.cross = gram, cross
            self.rhs = cross.reshape(self.shape + (-1,))
        else:
            self.rhs = _adjoint(grp, grp.ys, _support(grp))

    def apply(self, v: np.ndarray, ridge: np.ndarray) -> np.ndarray:
        if self.use_gram:
            out = (self.gram @ v.reshape(self.gram.shape[0], -1)).reshape(v.shape)
        else:
            out = _adjoint(self.grp, _center(self.grp, _forward(self.grp, v)), _support(self.grp))
        return out + ridge * v

    def residual(self, w: np.ndarray, ridge: np.ndarray) -> np.ndarray:
        """``A^H P (y - A w) - ridge w``, from the data on the FFT path (no cancellation in ``A^H y - A^H A w``)."""
        if self.use_gram:
            return self.rhs - self.apply(w, ridge)
        pred = _forward(self.grp, w)
        resid = _center(self.grp, [y - p for y, p in zip(self.grp.ys, pred)])
        return _adjoint(self.grp, resid, _support(self.grp)) - ridge * w


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per output channel ``Re(sum conj(a) b)`` over the kernel's axes."""
    return np.real(np.sum(a.conj() * b, axis=tuple(range(a.ndim - 1))))


def _pcg(
    op: _Normal, w0: np.ndarray, ridge: np.ndarray, tol: float, max_iter: int
) -> tuple[np.ndarray, int, float, int]:
    """Preconditioned conjugate gradients, one column per output channel, restarted from the exact residual.

    Returns ``(w, iterations, relative residual (exact), restarts)``.
    """
    b_norm = np.sqrt(_dot(op.rhs, op.rhs))
    if np.all(b_norm == 0):
        return np.zeros_like(w0), 0, 0.0, 0
    scale = np.where(b_norm > 0, b_norm, 1.0)
    w = w0.copy()
    its, restarts = 0, 0
    r = op.residual(w, ridge)
    rel = np.sqrt(_dot(r, r)) / scale
    goal = max(tol, ROUNDING_FLOOR)
    while True:
        w, its = _cg_run(op, w, r, ridge, tol, max_iter, its, scale)
        start = float(np.max(rel))
        r = op.residual(w, ridge)  # the true residual, from the data
        rel = np.sqrt(_dot(r, r)) / scale
        if np.max(rel) <= goal or its >= max_iter or restarts >= RESTARTS or not np.max(rel) < 0.5 * start:
            break  # converged, out of steps, or a restart would not help (rounding: the recurrence drifted)
        restarts += 1
    return w, its, float(np.max(rel)), restarts


def _cg_run(
    op: _Normal, w: np.ndarray, r: np.ndarray, ridge: np.ndarray, tol: float, max_iter: int, its: int, scale: np.ndarray
) -> tuple[np.ndarray, int]:
    """Conjugate gradients from ``w`` with residual ``r`` until ``tol``, ``max_iter`` or the rounding floor."""
    rel = np.sqrt(_dot(r, r)) / scale
    z = _spectral_solve(op.grp, r, ridge)
    p = z.copy()
    rz = _dot(r, z)
    best, stalled = rel.copy(), 0
    while its < max_iter and np.any(rel > tol):
        its += 1
        active = rel > tol
        q = op.apply(p, ridge)
        pq = _dot(p, q)
        alpha = np.where(active & (pq > 0), rz / np.where(pq > 0, pq, 1.0), 0.0)
        w = w + alpha * p
        r = r - alpha * q
        rel = np.sqrt(_dot(r, r)) / scale
        z = _spectral_solve(op.grp, r, ridge)
        rz_new = _dot(r, z)
        beta = np.where(rz > 0, rz_new / np.where(rz > 0, rz, 1.0), 0.0)
        p = z + beta * p
        rz = rz_new
        if np.all(rel >= 0.5 * best) and np.max(rel) < ROUNDING_FLOOR:  # no progress at the rounding floor
            stalled += 1
            if stalled >= 10:
                break
        else:
            stalled = 0
        best = np.minimum(best, rel)
    return w, its


# ----------------------------------------------------------------------------------------------
# One group's fit, and the solution
# ----------------------------------------------------------------------------------------------


@dataclass
class _GroupFit:
    coefs: np.ndarray  # (P, O)
    covariance: np.ndarray | None
    noise: np.ndarray
    ridge: np.ndarray
    operator: str
    reason: str
    iterations: int
    residual: float
    start_residual: float
    restarts: int
    converged: bool
    minimum_norm: bool
    rank: int | None
    singular: int
    frequencies: int


def _choose(problem: GridProblem, g: int, grp: _Group, operator: str) -> tuple[bool, str]:
    """``(use the Gram, why)``: asked for, already formed, or the cheaper by the cost model.

    The Gram costs what :func:`~kernel_recovery.model.grid.grid_statistics` will spend (the cheaper of its im2col
    sums and, with stride 1, its FFT lagged correlations: the models of :mod:`~kernel_recovery.model.grid_gram`)
    plus its eigendecomposition; the FFT path ``EXPECTED_STEPS`` steps of two correlations each way.
    """
    if operator != "auto":
        return operator == "gram", f"operator={operator!r}"
    if ("statistics", g) in problem.cache or ("spectrum", g) in problem.cache:
        return True, "the Gram (or the design's factorization) was already formed"
    cfg = problem.config
    c, o, p = cfg.in_per_group, cfg.out_per_group, problem.n_columns
    gram = im2col_gram_cost(problem.n_equations, p, o, problem.is_complex)
    if all(s == 1 for s in cfg.stride):
        by_fft = sum(
            fft_gram_cost(x.shape[:-1], cfg.kernel_size, cfg.dilation, c, o, problem.is_complex) for x in problem.xs
        )
        gram = min(gram, by_fft)
    gram += 10.0 * p**3 * GEMM_SECONDS  # its eigendecomposition (the minimum norm, the covariance)
    units = sum(math.prod(s) * math.log2(max(math.prod(s), 2)) for s in grp.sizes) * (2 * c * o + 2 * o)
    fft = EXPECTED_STEPS * units * (1.0 if problem.is_complex else 0.5) * FFT_SECONDS
    if gram <= fft:
        return True, f"forming the Gram (~{gram:.3g} s) costs less than {EXPECTED_STEPS} FFT steps (~{fft:.3g} s)"
    return False, f"{EXPECTED_STEPS} FFT steps (~{fft:.3g} s) cost less than forming the Gram (~{gram:.3g} s)"


def _fit_group(
    problem: GridProblem,
    g: int,
    noise: np.ndarray | None,
    wiener: bool,
    tol: float,
    max_iter: int,
    operator: str,
    workers: int | None,
) -> _GroupFit:
    """Steps 1-3 of the module docstring for group ``g``, then the Wiener term and the bias."""
    cfg = problem.config
    grp = _group_data(problem, g, workers)
    use_gram, reason = _choose(problem, g, grp, operator)
    op = _Normal(problem, g, grp, use_gram)
    per = cfg.out_per_group
    zero = np.zeros(per)
    w0: np.ndarray = _spectral_estimate(grp).astype(problem.kind, copy=False)
    b_norm = np.sqrt(_dot(op.rhs, op.rhs))
    r0 = op.residual(w0, zero)
    start = float(np.max(np.sqrt(_dot(r0, r0)) / np.where(b_norm > 0, b_norm, 1.0)))
    w, its, res, restarts = _pcg(op, w0, zero, tol, max_iter)
    rss = _rss(grp, w)
    if noise is None:
        dof = problem.n_equations - problem.n_columns
        sigma = np.sqrt(np.maximum(rss, 0.0) / dof) if dof > 0 else np.zeros(per)
    else:
        sigma = noise[g * per : (g + 1) * per]
    lam = zero
    if wiener:
        power = np.sum(np.abs(w) ** 2, axis=tuple(range(w.ndim - 1))) / (w.size // per)
        lam = np.divide(sigma**2, power, out=np.zeros(per), where=power > 0)
        if np.any(lam > 0):
            w, its2, res, restarts2 = _pcg(op, w, lam, tol, max_iter)
            its, restarts = its + its2, restarts + restarts2
    n_kernel = w.size // per
    coefs = w.reshape(n_kernel, per)
    if cfg.use_bias:
        assert grp.y_mean is not None
        pred_mean = sum(p.sum(axis=tuple(range(cfg.ndim))) for p in _forward(grp, w)) / grp.n_rows
        coefs = np.concatenate([coefs, (grp.y_mean - pred_mean)[None]])
    covariance, rank, minimum_norm = None, None, False
    if use_gram:
        with SerialBLAS():  # small LAPACK calls slow down many-fold on shared cores with BLAS threads
            spec = grid_spectrum(problem, g)
        rank = spec.rank
        if not np.any(lam > 0):
            v = spec.vectors[:, :rank]
            coefs = v @ (v.conj().T @ coefs)  # the minimum-norm least-squares kernel (the null space removed)
            covariance, minimum_norm = spec.pseudo_inverse_gram(), True
        elif np.all(lam == lam[0]):
            gram = grid_statistics(problem, g).gram
            penalty = np.full(problem.n_columns, lam[0])
            if cfg.use_bias:
                penalty[-1] = 0.0
            m_inv = np.linalg.pinv(gram + np.diag(penalty), hermitian=True)
            covariance = m_inv @ gram @ m_inv
    converged = res <= max(tol, ROUNDING_FLOOR)
    return _GroupFit(coefs, covariance, sigma, lam, "gram" if use_gram else "fft", reason, its, res, start,
                     restarts, bool(converged), minimum_norm, rank, grp.singular, grp.frequencies)  # fmt: skip


def _rss(grp: _Group, w: np.ndarray) -> np.ndarray:
    """``sum |P (y - A w)|^2`` per output channel (the bias's residual, by one FFT pass)."""
    resid = _center(grp, [y - p for y, p in zip(grp.ys, _forward(grp, w))])
    n = len(grp.kernel_size)
    return np.asarray(sum(np.sum(np.abs(r) ** 2, axis=tuple(range(n))) for r in resid))


def _solution(
    problem: GridProblem,
    fits: list[_GroupFit],
    noise: np.ndarray | None,
    wiener: bool,
    tol: float,
    max_iter: int,
    operator: str,
    workers: int | None,
) -> GridSolution:
    """The groups' fits as one :class:`GridSolution`, with a message saying which kernel it is."""
    p = problem.n_columns
    converged = all(f.converged for f in fits)
    ridge = np.concatenate([f.ridge for f in fits])
    if wiener and np.any(ridge > 0):
        message = "refined to the Wiener-regularized least-squares kernel"
    else:
        message = "refined to the least-squares kernel"
    deficient = [f for f in fits if f.rank is not None and f.rank < p]
    if deficient:
        ranks = ", ".join(str(f.rank) for f in deficient)
        what = "Wiener-regularized" if np.any(ridge > 0) else "minimum-norm least-squares"
        message = (
            f"the data do not determine every coefficient (rank {ranks} of {p} unknowns): returned the {what} "
            "kernel (no component along the directions the data do not see)"
        )
    elif any(f.operator == "fft" and (f.singular or problem.n_equations < p) for f in fits):
        message += (
            "; the per-frequency systems show missing input power, so the data may not determine every "
            "coefficient: this is a least-squares kernel, not necessarily the minimum-norm one "
            "(operator='gram' or method='lstsq' gives that)"
        )
    if not converged:
        message = (
            f"conjugate gradients stopped after max_iter={max_iter} steps at a relative residual of "
            f"{max(f.residual for f in fits):.3g} (tol={tol:g}); raise max_iter, or use method='lstsq'"
        )
    covariances = [f.covariance for f in fits]
    unit_covariance = [c for c in covariances if c is not None] if all(c is not None for c in covariances) else None
    return GridSolution(
        coefs=[f.coefs for f in fits],
        unit_covariance=unit_covariance,
        success=converged,
        message=message,
        options={
            "noise_level": np.concatenate([f.noise for f in fits]),
            "wiener": wiener,
            "tol": tol,
            "max_iter": max_iter,
            "operator": operator,
            "workers": workers,
        },
        diagnostics={
            "solver": ["spectral_pcg"] * len(fits),
            "operator": [f.operator for f in fits],
            "operator_reason": [f.reason for f in fits],
            "iterations": [f.iterations for f in fits],
            "residual": [f.residual for f in fits],
            "start_residual": [f.start_residual for f in fits],
            "restarts": [f.restarts for f in fits],
            "singular_frequencies": [f.singular for f in fits],
            "frequencies": [f.frequencies for f in fits],
            "minimum_norm": [f.minimum_norm for f in fits],
            "rank": [f.rank for f in fits],
            "ridge": ridge,
            "noise_level_source": "estimated" if noise is None else "given",
            "covariance": "the Gram's pseudo-inverse"
            if unit_covariance is not None
            else "none: the Gram was not formed (FFT path), or Wiener terms differ between output channels",
        },
        n_iterations=int(sum(f.iterations for f in fits)),
    )
