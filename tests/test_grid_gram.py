"""The exact FFT Gram of stride-1 grid designs against explicit designs (numpy) and the chunked im2col sums."""

import itertools

import numpy as np
import pytest

import kernel_recovery as kr
from kernel_recovery import grids
from kernel_recovery.model.grid import GridSpec, build_grid_problem, grid_statistics
from kernel_recovery.model.grid_gram import box_sums, lagged_gram


def _explicit_design(x, kernel_size, dilation, use_bias=False):
    """Rows o (row-major over the output box), columns (k_1..k_N, c) row-major, by slicing x at each offset."""
    n = x.ndim - 1
    box = tuple(s - (k - 1) * d for s, k, d in zip(x.shape[:-1], kernel_size, dilation))
    cols = []
    for k in itertools.product(*(range(v) for v in kernel_size)):
        window = x[tuple(slice(ki * di, ki * di + m) for ki, di, m in zip(k, dilation, box))]
        cols.append(window.reshape(-1, x.shape[-1]))
    a = np.stack(cols, axis=1).reshape(int(np.prod(box)), -1)  # (rows, taps, C) -> (rows, taps * C)
    if use_bias:
        a = np.concatenate([a, np.ones((len(a), 1))], axis=1)
    assert a.shape[1] == int(np.prod(kernel_size)) * x.shape[-1] + int(use_bias) and n == len(kernel_size)
    return a


def _relative(a, b):
    return np.max(np.abs(a - b)) / np.max(np.abs(b))


def _random_case(rng, ndim):
    k = tuple(int(v) for v in rng.integers(1, 6 if ndim < 3 else 4, ndim))
    d = tuple(int(v) for v in rng.integers(1, 3, ndim))
    span = tuple((ki - 1) * di for ki, di in zip(k, d))
    shape = tuple(s + int(rng.integers(1, 10 if ndim < 3 else 5)) for s in span)
    c = int(rng.integers(1, 4))
    x = rng.standard_normal(shape + (c,))
    if rng.integers(2):
        x = x + 1j * rng.standard_normal(x.shape)
    return x, k, d


@pytest.mark.parametrize("seed", range(30))
def test_lagged_gram_matches_explicit_design(seed):
    rng = np.random.default_rng(seed)
    x, k, d = _random_case(rng, 1 + seed % 3)
    use_bias = bool(rng.integers(2))
    a = _explicit_design(x, k, d, use_bias)
    y = rng.standard_normal((len(a), 2)) + (1j * rng.standard_normal((len(a), 2)) if np.iscomplexobj(x) else 0)
    box = tuple(s - (ki - 1) * di for s, ki, di in zip(x.shape[:-1], k, d))
    gram, cross = lagged_gram(x, k, d, y.reshape(box + (2,)), use_bias)
    assert _relative(gram, a.conj().T @ a) < 1e-12
    assert _relative(cross, a.conj().T @ y) < 1e-12
    assert gram.dtype == (np.complex128 if np.iscomplexobj(x) else np.float64)


def test_lagged_gram_thin_boxes_and_unit_axes():
    """Output boxes narrower than the edge strips (head and tail regions overlap) and kernels of size 1."""
    rng = np.random.default_rng(7)
    for shape, k, d in [
        ((9, 5, 1), (5, 1), (2, 1)),
        ((4, 12, 2), (4, 3), (1, 5)),
        ((3, 3, 3, 1), (3, 1, 2), (1, 1, 2)),
    ]:
        x = rng.standard_normal(shape)
        a = _explicit_design(x, k, d, True)
        gram, cross = lagged_gram(x, k, d, None, True)
        assert cross is None
        assert _relative(gram, a.T @ a) < 1e-12


def test_box_sums_match_explicit_design():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((11, 9, 2))
    a = _explicit_design(x, (3, 4), (2, 1))
    np.testing.assert_allclose(box_sums(x, (3, 4), (2, 1)).reshape(-1), a.sum(axis=0), rtol=1e-13)


def _settings(rng, ndim):
    k = tuple(int(v) for v in rng.integers(1, 5 if ndim < 3 else 4, ndim))
    padding = rng.choice(["valid", "same", "full", "explicit"])
    if padding == "explicit":
        padding = tuple((int(a), int(b)) for a, b in rng.integers(0, 3, (ndim, 2)))
    groups = int(rng.choice([1, 2]))
    return dict(
        kernel_size=k,
        padding=padding,
        dilation=tuple(int(v) for v in rng.integers(1, 3, ndim)),
        groups=groups,
        use_bias=bool(rng.integers(2)),
        layout=str(rng.choice(["channels_last", "channels_first"])),
    )


@pytest.mark.parametrize("seed", range(24))
def test_fft_statistics_match_im2col(seed):
    """Both paths of grid_statistics on built problems: padding modes, groups, bias, layouts, batches, complex."""
    rng = np.random.default_rng(100 + seed)
    ndim = 1 + seed % 3
    s = _settings(rng, ndim)
    spec = GridSpec.create(s.pop("kernel_size"), **s)
    cin, cout = spec.groups * int(rng.integers(1, 3)), spec.groups * int(rng.integers(1, 3))
    shapes = [tuple(int(v) for v in rng.integers(9, 14 if ndim < 3 else 10, ndim)) for _ in range(2)]
    cplx = bool(rng.integers(2))

    def draw(shape):
        v = rng.standard_normal(shape)
        return v + 1j * rng.standard_normal(shape) if cplx else v

    first = spec.layout == "channels_first"
    xs = [draw((cin,) + sh if first else sh + (cin,)) for sh in shapes]
    w = draw(spec.kernel_size + (cin // spec.groups, cout))
    ys = kr.conv(xs, w, groups=spec.groups, padding=spec.padding, dilation=spec.dilation, layout=spec.layout)
    problem = build_grid_problem(xs, ys, spec)
    for g in range(spec.groups):
        ref = grid_statistics(problem, g, "im2col")
        new = grid_statistics(problem, g, "fft")
        assert (ref.path, new.path) == ("im2col", "fft")
        assert _relative(new.gram, ref.gram) < 1e-12
        assert _relative(new.cross, ref.cross) < 1e-12
        np.testing.assert_allclose(new.yty, ref.yty, rtol=1e-13)
        assert new.n_rows == ref.n_rows
        np.testing.assert_array_equal(new.gram, new.gram.conj().T)


def test_fft_statistics_without_outputs():
    x = np.random.default_rng(1).standard_normal((12, 10, 2))
    problem = build_grid_problem(x, None, GridSpec.create((3, 2), use_bias=True), out_channels=1)
    ref, new = grid_statistics(problem, 0, "im2col"), grid_statistics(problem, 0, "fft")
    assert new.cross is None and new.yty is None
    assert _relative(new.gram, ref.gram) < 1e-12


def test_auto_path_is_recorded_and_picks_by_cost():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((160, 160))
    w = rng.standard_normal((15, 15, 1, 1))
    big = build_grid_problem(x, kr.conv(x, w), GridSpec.create((15, 15)))
    assert grid_statistics(big, 0).path == "fft"  # 146^2 rows x 225^2: the FFT is far cheaper
    small = build_grid_problem(x[:12, :12], kr.conv(x[:12, :12], w[:2, :2]), GridSpec.create((2, 2)))
    assert grid_statistics(small, 0).path == "im2col"
    strided = build_grid_problem(x, kr.conv(x, w, stride=2), GridSpec.create((15, 15), stride=2))
    assert grid_statistics(strided, 0).path == "im2col"  # stride 2: only the im2col path is exact


def test_recovery_on_the_fft_path_matches_numpy_lstsq():
    """A complex 2-D kernel with bias fitted through the front door on the FFT path: numpy.linalg.lstsq's answer."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((72, 64)) + 1j * rng.standard_normal((72, 64))
    w = rng.standard_normal((9, 7, 1, 1)) + 1j * rng.standard_normal((9, 7, 1, 1))
    y = kr.conv(x, w, np.array([0.5 - 0.25j])) + 0.1 * rng.standard_normal((64, 58))
    spec = GridSpec.create((9, 7), use_bias=True)
    res = grids.recover(x, y, spec, method="lstsq", options={}, door=kr.recover_kernel)
    problem = build_grid_problem(x, y, spec)
    assert grid_statistics(problem, 0).path == "fft"
    a = _explicit_design(x[..., None], (9, 7), (1, 1), True)
    coef = np.linalg.lstsq(a, y.reshape(-1), rcond=None)[0]
    assert _relative(res.kernel.reshape(-1), coef[:-1]) < 1e-10
    assert abs(res.bias[0] - coef[-1]) < 1e-10 * np.max(np.abs(coef))


def test_bad_path_is_refused():
    x = np.random.default_rng(0).standard_normal((10, 10))
    problem = build_grid_problem(x, x[:8, :8], GridSpec.create((3, 3)))
    with pytest.raises(ValueError, match="`path`"):
        grid_statistics(problem, 0, "gemm")
    strided = build_grid_problem(x, x[:4, :4], GridSpec.create((3, 3), stride=2))
    with pytest.raises(ValueError, match="stride"):
        grid_statistics(strided, 0, "fft")
